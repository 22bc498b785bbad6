// What a pool declares (worker/data_declaration.h): its data sets found under the data
// root by the files' IDX magic, each file's SHA-256 (as sha256sum computes it), the
// digest cache (used again, not for a changed file, ignored when corrupt) and its CPU.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "data_declaration.h"
#include "engine/context.h"

namespace prelude {
namespace {

namespace fs = std::filesystem;
namespace v1 = prelude::v1;

class TempTree {
 public:
  TempTree() {
    std::string tmpl = (fs::temp_directory_path() / "prelude-decl-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempTree() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

// An IDX file of unsigned bytes with one dimension of n.
std::string idx1(const std::string& payload) {
  std::string s("\0\0\x08\x01", 4);
  const uint32_t n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) s += static_cast<char>((n >> shift) & 0xff);
  return s + payload;
}

// sha256sum's digest of the file, when the tool is there ("" otherwise).
std::string sha256sum(const fs::path& p) {
  FILE* f = popen(("sha256sum '" + p.string() + "' 2>/dev/null").c_str(), "r");
  if (!f) return "";
  char buf[65] = "";
  const size_t got = std::fread(buf, 1, 64, f);
  pclose(f);
  return got == 64 ? std::string(buf, 64) : "";
}

TEST(Sha256File, MatchesTheKnownVectorAndSha256sum) {
  TempTree t;
  write_file(t.path() / "abc", "abc");
  EXPECT_EQ(sha256_file((t.path() / "abc").string()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");  // FIPS 180-2, "abc"
  std::string big(3 << 20, '\0');  // spans several reads
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7919 % 251);
  write_file(t.path() / "big", big);
  const std::string expected = sha256sum(t.path() / "big");
  if (expected.empty()) GTEST_SKIP() << "skipped, because sha256sum is not installed";
  EXPECT_EQ(sha256_file((t.path() / "big").string()), expected);
}

TEST(Sha256File, AnUnreadableFileIsNamed) {
  EXPECT_THROW(
      {
        try {
          sha256_file("/nonexistent/prelude/file");
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find("/nonexistent/prelude/file"), std::string::npos);
          throw;
        }
      },
      std::runtime_error);
}

class DeclarationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = t_.path() / "data";
    cache_ = (t_.path() / "cache" / "data-sha256.tsv").string();
    write_file(root_ / "toy" / "train-images-idx3-ubyte", idx1("images"));
    write_file(root_ / "toy" / "train-labels-idx1-ubyte", idx1("labels"));
    write_file(root_ / "toy" / "README", "not an IDX file");
    write_file(root_ / "toy" / "extra" / "more-idx1-ubyte", idx1("nested"));
    write_file(root_ / "notes" / "readme.txt", "no IDX files here");
    write_file(root_ / "loose-idx1-ubyte", idx1("at the root: not a data set"));
  }
  std::vector<v1::DataSetDeclaration> declare(DeclarationStats* stats) {
    return declare_data_sets(root_.string(), cache_, stats);
  }

  TempTree t_;
  fs::path root_;
  std::string cache_;
};

TEST_F(DeclarationTest, DeclaresDirectoriesOfIdxFilesWithSizesAndDigests) {
  DeclarationStats stats;
  const auto sets = declare(&stats);
  // "notes" holds no IDX file: no data set. Files at the top are ".", for jobs naming them by path.
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(sets[0].name(), ".");
  ASSERT_EQ(sets[0].files_size(), 1);
  EXPECT_EQ(sets[0].files(0).path(), "loose-idx1-ubyte");
  EXPECT_EQ(sets[1].name(), "toy");
  ASSERT_EQ(sets[1].files_size(), 4);  // every file of it, so a damaged one is still found (and reported) by path
  EXPECT_EQ(sets[1].files(0).path(), "toy/README");
  EXPECT_EQ(sets[1].files(1).path(), "toy/extra/more-idx1-ubyte");
  EXPECT_EQ(sets[1].files(2).path(), "toy/train-images-idx3-ubyte");
  EXPECT_EQ(sets[1].files(3).path(), "toy/train-labels-idx1-ubyte");
  for (const auto& f : sets[1].files()) {
    EXPECT_EQ(f.size(), static_cast<int64_t>(fs::file_size(root_ / f.path())));
    const std::string expected = sha256sum(root_ / f.path());
    if (!expected.empty()) {
      EXPECT_EQ(f.sha256(), expected) << f.path();
    }
    EXPECT_EQ(f.sha256(), sha256_file((root_ / f.path()).string()));
  }
  EXPECT_EQ(stats.files, 5);
  EXPECT_EQ(stats.hashed, 5);
  EXPECT_TRUE(stats.cache_note.empty()) << stats.cache_note;
  EXPECT_TRUE(fs::exists(cache_));
}

TEST_F(DeclarationTest, TheCacheIsUsedTheSecondTimeAndNotForAChangedFile) {
  DeclarationStats stats;
  const auto first = declare(&stats);
  EXPECT_EQ(stats.hashed, 5);
  const auto second = declare(&stats);
  EXPECT_EQ(stats.hashed, 0);  // every digest from the cache
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[1].SerializeAsString(), first[1].SerializeAsString());

  // The cache is what is read: a digest planted in it is believed while size and mtime hold.
  std::ifstream in(cache_);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string real = first[1].files(2).sha256();
  text.replace(text.find(real), 64, std::string(64, 'f'));
  std::ofstream(cache_, std::ios::trunc) << text;
  auto planted = declare(&stats);
  EXPECT_EQ(planted[1].files(2).sha256(), std::string(64, 'f'));

  // Another size: hashed again.
  write_file(root_ / "toy" / "train-images-idx3-ubyte", idx1("images, more of them"));
  auto changed = declare(&stats);
  EXPECT_EQ(stats.hashed, 1);
  EXPECT_EQ(changed[1].files(2).sha256(), sha256_file((root_ / "toy" / "train-images-idx3-ubyte").string()));
  EXPECT_NE(changed[1].files(2).sha256(), real);

  // The same size, another modification time: hashed again.
  write_file(root_ / "toy" / "train-labels-idx1-ubyte", idx1("LABELS"));
  struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (root_ / "toy" / "train-labels-idx1-ubyte").c_str(), times, 0), 0);
  auto touched = declare(&stats);
  EXPECT_EQ(stats.hashed, 1);
  EXPECT_EQ(touched[1].files(3).sha256(), sha256_file((root_ / "toy" / "train-labels-idx1-ubyte").string()));
}

TEST_F(DeclarationTest, ACorruptCacheIsIgnoredAndRebuilt) {
  DeclarationStats stats;
  const auto first = declare(&stats);
  for (const std::string& garbage : {std::string("garbage\n"), std::string("prelude data sha256 cache v1\nxx\t1\n"),
                                     std::string("")}) {
    std::ofstream(cache_, std::ios::trunc) << garbage;
    const auto again = declare(&stats);
    EXPECT_EQ(stats.hashed, 5) << "cache: " << garbage;
    EXPECT_EQ(again[1].SerializeAsString(), first[1].SerializeAsString());
    if (!garbage.empty()) {
      EXPECT_NE(stats.cache_note.find("ignored the digest cache"), std::string::npos);
    }
    declare(&stats);
    EXPECT_EQ(stats.hashed, 0) << "rebuilt after: " << garbage;
  }
}

TEST_F(DeclarationTest, AReadOnlyCacheDirectoryOnlyCostsHashingAgain) {
  if (geteuid() == 0) GTEST_SKIP() << "skipped, because root writes through read-only permissions";
  fs::create_directories(fs::path(cache_).parent_path());
  fs::permissions(fs::path(cache_).parent_path(), fs::perms::owner_read | fs::perms::owner_exec);
  DeclarationStats stats;
  EXPECT_EQ(declare(&stats).size(), 2u);
  EXPECT_NE(stats.cache_note.find("cannot write the digest cache"), std::string::npos);
  fs::permissions(fs::path(cache_).parent_path(), fs::perms::owner_all);
}

TEST_F(DeclarationTest, CapabilitiesCarryTheEnginesCpuFacts) {
  DeclarationStats stats;
  const v1::PoolCapabilities caps = pool_capabilities(root_.string(), cache_, &stats);
  EXPECT_EQ(caps.isa(), effective_isa_name());
  EXPECT_EQ(caps.bf16(), cpu_has_bf16());
  EXPECT_EQ(caps.data_sets_size(), 2);
  const std::string line = declaration_summary(caps, stats);
  EXPECT_NE(line.find("declared 2 data sets (.: 1 file, toy: 4 files), CPU " + effective_isa_name()), std::string::npos)
      << line;
  EXPECT_NE(line.find("hashed 5 of 5 files"), std::string::npos) << line;
}

}  // namespace
}  // namespace prelude
