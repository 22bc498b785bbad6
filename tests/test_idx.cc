// IDX reading and data set resolution: valid files (raw and gzip), every kind of
// bad file, normalisation, path containment, shuffling, and the real Fashion-MNIST.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "engine/dataset.h"
#include "common/errors.h"
#include "spec/idx.h"

using namespace prelude;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/prelude-idx-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 255), char((v >> 8) & 255), char(v & 255)};
}

std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data, uint8_t type = 8) {
  std::string s{0, 0, char(type), char(dims.size())};
  for (auto d : dims) s += be32(d);
  s.append(data.begin(), data.end());
  return s;
}

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Idx, ReadsRawAndGzip) {
  TempDir dir;
  std::vector<uint8_t> pixels(2 * 3 * 4);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 10);
  write_raw(dir / "a.idx", idx_bytes({2, 3, 4}, pixels));
  write_gz(dir / "a.idx.gz", idx_bytes({2, 3, 4}, pixels));
  for (const char* name : {"a.idx", "a.idx.gz"}) {
    const IdxArray a = read_idx(dir / name, 3);
    EXPECT_EQ(a.dims, (std::vector<uint32_t>{2, 3, 4}));
    EXPECT_EQ(a.data, pixels);
  }
}

TEST(Idx, BadFilesNameTheFileAndTheReason) {
  TempDir dir;
  write_raw(dir / "magic", "\x1f\x8b\x08\x00garbage");
  write_raw(dir / "short", std::string("\0\0", 2));
  write_raw(dir / "ndim", idx_bytes({5}, {1, 2, 3, 4, 5}));
  write_raw(dir / "type", idx_bytes({2}, {1, 2}, 0x0d));
  write_gz(dir / "trunc.gz", idx_bytes({2, 2, 2}, {1, 2, 3}));
  write_raw(dir / "trail", idx_bytes({1, 1, 2}, {1, 2, 3}));
  write_raw(dir / "zero", idx_bytes({0, 28, 28}, {}));
  write_raw(dir / "huge", idx_bytes({65536, 65536, 2}, {}));
  const std::pair<std::string, std::string> cases[] = {
      {"magic", "magic"}, {"short", "too short"}, {"ndim", "dimensions"}, {"type", "unsigned bytes"},
      {"trunc.gz", "truncated: expected 8 bytes of data, found 3"}, {"trail", "trailing bytes"},
      {"zero", "is 0"}, {"huge", "too large"}, {"missing", "No such file"}};
  for (const auto& [file, reason] : cases) {
    const std::string msg = error_of([&] { read_idx(dir / file, 3); });
    EXPECT_NE(msg.find(dir / file), std::string::npos) << msg;
    EXPECT_NE(msg.find(reason), std::string::npos) << file << ": " << msg;
  }
}

TEST(Dataset, NormalisesAndChecksLabelsAndCounts) {
  TempDir dir;
  write_raw(dir / "img", idx_bytes({3, 1, 2}, {0, 255, 51, 102, 153, 204}));
  write_raw(dir / "lab", idx_bytes({3}, {0, 9, 4}));
  write_raw(dir / "lab2", idx_bytes({2}, {0, 9}));
  write_raw(dir / "lab_bad", idx_bytes({3}, {0, 10, 4}));
  const Dataset d = load_idx_dataset(dir / "img", dir / "lab", 0.5, 0.25);
  EXPECT_EQ(d.n, 3);
  EXPECT_EQ(d.height, 1);
  EXPECT_EQ(d.width, 2);
  // (x/255 - 0.5) / 0.25
  const float expect[] = {-2.0f, 2.0f, -1.2f, -0.4f, 0.4f, 1.2f};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(d.images[i], expect[i], 1e-6);
  EXPECT_EQ(d.labels, (std::vector<int32_t>{0, 9, 4}));
  EXPECT_EQ(load_idx_dataset(dir / "img", dir / "lab", 0, 1, 2).n, 2);

  const std::string count = error_of([&] { load_idx_dataset(dir / "img", dir / "lab2", 0, 1); });
  EXPECT_NE(count.find("3 images"), std::string::npos) << count;
  EXPECT_NE(count.find("2 labels"), std::string::npos) << count;
  const std::string label = error_of([&] { load_idx_dataset(dir / "img", dir / "lab_bad", 0, 1); });
  EXPECT_NE(label.find("lab_bad"), std::string::npos) << label;
  EXPECT_NE(label.find("label 10 at index 1"), std::string::npos) << label;
}

TEST(Dataset, ResolvesNamesAndKeepsPathsInsideTheRoot) {
  TempDir root;
  fs::create_directories(root / "fashion-mnist");
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"})
    write_raw(root / (std::string("fashion-mnist/") + f), "x");
  write_raw(root / "fashion-mnist/t10k-labels-idx1-ubyte", "x");  // raw fallback
  prelude::v1::DatasetSpec spec;
  spec.set_name("fashion-mnist");
  const DataFiles f = resolve_data_files(spec, root.path());
  EXPECT_EQ(f.train_images, fs::weakly_canonical(root / "fashion-mnist/train-images-idx3-ubyte.gz").string());
  EXPECT_EQ(f.test_labels, fs::weakly_canonical(root / "fashion-mnist/t10k-labels-idx1-ubyte").string());
  EXPECT_DOUBLE_EQ(f.mean, 0.2860);
  EXPECT_DOUBLE_EQ(f.std, 0.3530);

  auto with_path = [&](const std::string& p) {
    prelude::v1::DatasetSpec s = spec;
    s.set_train_images(p);
    return error_of([&] { resolve_data_files(s, root.path()); });
  };
  EXPECT_NE(with_path("../etc/passwd").find("dataset.trainImages: path ../etc/passwd escapes the data root"),
            std::string::npos);
  EXPECT_NE(with_path("/etc/passwd").find("escapes the data root"), std::string::npos);
  fs::create_symlink("/etc", root / "link");
  EXPECT_NE(with_path("link/passwd").find("escapes the data root"), std::string::npos);
  EXPECT_NE(with_path("fashion-mnist/nope.gz").find("dataset.trainImages: no such file"), std::string::npos);

  prelude::v1::DatasetSpec other;
  other.set_name("mnist");
  EXPECT_NE(error_of([&] { resolve_data_files(other, root.path()); }).find("dataset.name: no such file"),
            std::string::npos);
}

TEST(Dataset, EpochPermutationIsADeterministicPermutation) {
  const auto a = epoch_permutation(1000, 1, 0), b = epoch_permutation(1000, 1, 0);
  EXPECT_EQ(a, b);
  EXPECT_EQ(std::set<int32_t>(a.begin(), a.end()).size(), 1000u);
  EXPECT_EQ(*std::min_element(a.begin(), a.end()), 0);
  EXPECT_EQ(*std::max_element(a.begin(), a.end()), 999);
  EXPECT_NE(a, epoch_permutation(1000, 1, 1));
  EXPECT_NE(a, epoch_permutation(1000, 2, 0));
  // Pinned: the order is ours (xoshiro256** + Fisher-Yates), so it must not change with
  // the compiler or standard library; a change here breaks reproducibility of old runs.
  EXPECT_EQ(epoch_permutation(8, 1, 0), (std::vector<int32_t>{1, 6, 4, 3, 7, 2, 0, 5}));
}

TEST(Dataset, RealFashionMnist) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  if (!fs::exists(dir + "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const Dataset train = load_idx_dataset(dir + "train-images-idx3-ubyte.gz", dir + "train-labels-idx1-ubyte.gz",
                                         0.2860, 0.3530);
  const Dataset test = load_idx_dataset(dir + "t10k-images-idx3-ubyte.gz", dir + "t10k-labels-idx1-ubyte.gz",
                                        0.2860, 0.3530);
  EXPECT_EQ(train.n, 60000);
  EXPECT_EQ(test.n, 10000);
  EXPECT_EQ(train.height, 28);
  EXPECT_EQ(train.width, 28);
  std::vector<int> tr(10), te(10);
  for (int l : train.labels) ++tr[l];
  for (int l : test.labels) ++te[l];
  for (int c = 0; c < 10; ++c) {
    EXPECT_EQ(tr[c], 6000);
    EXPECT_EQ(te[c], 1000);
  }
  double s = 0, q = 0;
  for (float x : train.images) s += x, q += double(x) * x;
  const double mean = s / train.images.size(), sd = std::sqrt(q / train.images.size() - mean * mean);
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_NEAR(sd, 1.0, 1e-3);
}
