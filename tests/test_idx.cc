// IDX reading and data set resolution: valid files (raw and gzip), every kind of
// bad file, normalisation, path containment, shuffling, and the real Fashion-MNIST.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "engine/dataset.h"
#include "common/errors.h"
#include "spec/idx.h"
#include "idx_fixtures.h"

using namespace prelude;
namespace fs = std::filesystem;

namespace {

using testutil::idx_bytes;
using testutil::TempDir;
using testutil::write_gz;
using testutil::write_gzip_bomb;
using testutil::write_raw;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The most memory this process has held so far (ctest runs each test in its own
// process, so this is the test's own peak).
uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<uint64_t>(u.ru_maxrss) * 1024;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

constexpr uint64_t kMiB = 1 << 20;

// The first `items` (0: all), at most `bytes`.
IdxBounds bounds(uint64_t items, uint64_t bytes = UINT64_MAX, const std::string& budget = "") {
  IdxBounds b;
  b.max_items = items;
  b.max_bytes = bytes;
  b.budget = budget;
  return b;
}

}  // namespace

TEST(Idx, ReadsRawAndGzip) {
  TempDir dir;
  std::vector<uint8_t> pixels(2 * 3 * 4);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 10);
  write_raw(dir / "a.idx", idx_bytes({2, 3, 4}, pixels));
  write_gz(dir / "a.idx.gz", idx_bytes({2, 3, 4}, pixels));
  for (const char* name : {"a.idx", "a.idx.gz"}) {
    const IdxArray a = read_idx(dir / name, 3, {});
    EXPECT_EQ(a.dims, (std::vector<uint32_t>{2, 3, 4}));
    EXPECT_EQ(a.items, 2u);
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
    // The bound keeps "huge" (8 GiB announced) from being allocated.
    const std::string msg = error_of([&] { read_idx(dir / file, 3, bounds(0, uint64_t(1) << 30)); });
    EXPECT_NE(msg.find(dir / file), std::string::npos) << msg;
    EXPECT_NE(msg.find(reason), std::string::npos) << file << ": " << msg;
  }
}

// 2e9 bytes of zeros in about 2 MB of gzip: refused from its header, before anything
// is allocated or inflated, when it is more than the budget.
TEST(Idx, GzipBombIsRefusedBeforeInflating) {
  TempDir dir;
  write_gzip_bomb(dir / "bomb.gz", {2000, 1000, 1000});
  write_raw(dir / "labels", idx_bytes({2000}, std::vector<uint8_t>(2000, 0)));
  EXPECT_LT(std::filesystem::file_size(dir / "bomb.gz"), 4 * kMiB);

  std::string msg;
  const double read_s = seconds_of([&] {
    msg = error_of([&] { read_idx(dir / "bomb.gz", 3, bounds(0, 256 * kMiB, "the test's budget of 256 MiB")); });
  });
  EXPECT_TRUE(contains(msg, dir / "bomb.gz")) << msg;
  EXPECT_TRUE(contains(msg, "the header announces 2000x1000x1000 = 2000000000 bytes")) << msg;
  EXPECT_TRUE(contains(msg, "more than the test's budget of 256 MiB")) << msg;

  const MemoryBudget budget{256 * kMiB, "a test budget"};
  const double load_s = seconds_of([&] {
    msg = error_of([&] { load_idx_dataset(dir / "bomb.gz", dir / "labels", 0, 1, 0, 10, budget); });
  });
  EXPECT_TRUE(contains(msg, dir / "bomb.gz")) << msg;
  EXPECT_TRUE(contains(msg, "2000 images of 1000x1000 need")) << msg;  // 8 GB of floats
  EXPECT_TRUE(contains(msg, "this rank's budget of 256 MiB (a test budget)")) << msg;
  EXPECT_TRUE(contains(msg, "dataset.trainLimit")) << msg;
  // Inflating it would take seconds and 2 GB; the header alone takes nothing.
  EXPECT_LT(read_s + load_s, 0.5);
  EXPECT_LT(peak_rss_bytes(), 200 * kMiB);
}

// Under a limit only the items asked for are inflated: the rest of a bomb is never
// read, nor are its trailing bytes looked for.
TEST(Idx, LimitReadsOnlyAPrefix) {
  TempDir dir;
  write_gzip_bomb(dir / "bomb.gz", {2000, 1000, 1000});
  write_raw(dir / "labels", idx_bytes({2000}, std::vector<uint8_t>(2000, 3)));
  IdxArray a;
  const double read_s = seconds_of([&] { a = read_idx(dir / "bomb.gz", 3, bounds(5, 256 * kMiB)); });
  EXPECT_EQ(a.items, 5u);
  EXPECT_EQ(a.dims, (std::vector<uint32_t>{2000, 1000, 1000}));
  EXPECT_EQ(a.data, std::vector<uint8_t>(5000000, 0));

  Dataset d;
  const double load_s = seconds_of(
      [&] { d = load_idx_dataset(dir / "bomb.gz", dir / "labels", 0, 1, 7, 10, MemoryBudget{256 * kMiB, "test"}); });
  EXPECT_EQ(d.n, 7);
  EXPECT_EQ(d.pixel_count(), 7000000u);
  EXPECT_EQ(d.labels, std::vector<int32_t>(7, 3));
  EXPECT_LT(read_s + load_s, 2.0);  // 12 MB inflated, not 2 GB
  EXPECT_LT(peak_rss_bytes(), 200 * kMiB);

  // A file that ends after the items asked for is fine under the limit, truncated
  // without it; trailing bytes are only looked for when everything was read.
  write_raw(dir / "short", idx_bytes({1000, 1, 2}, {1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(read_idx(dir / "short", 3, bounds(3)).data, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(contains(error_of([&] { read_idx(dir / "short", 3, bounds(4)); }),
                       "truncated: expected 8 bytes of data (the first 4 of 1000 items), found 6"));
  EXPECT_TRUE(contains(error_of([&] { read_idx(dir / "short", 3, {}); }),
                       "truncated: expected 2000 bytes of data, found 6"));
  write_raw(dir / "trail", idx_bytes({2, 1, 2}, {1, 2, 3, 4, 5}));
  EXPECT_EQ(read_idx(dir / "trail", 3, bounds(1)).data, (std::vector<uint8_t>{1, 2}));
  EXPECT_TRUE(contains(error_of([&] { read_idx(dir / "trail", 3, {}); }), "trailing bytes"));
}

// Dimensions up to 2^32-1 each: sizes are 64-bit and checked, never wrapped.
TEST(Idx, HugeDimensionsNeitherOverflowNorAllocate) {
  TempDir dir;
  const uint32_t two31 = 1u << 31, max32 = UINT32_MAX;
  // The product of three dimensions of 2^32-1 does not fit in 64 bits.
  write_raw(dir / "overflow", idx_bytes({max32, max32, max32}));
  EXPECT_TRUE(contains(error_of([&] { read_idx(dir / "overflow", 3, {}); }),
                       "dimensions 4294967295x4294967295x4294967295 too large: their product does not fit in 64 bits"));

  // 2^31 labels: more than a budget, and readable under a limit (the file holds 3).
  write_raw(dir / "labels31", idx_bytes({two31}, {1, 2, 3}));
  EXPECT_TRUE(contains(error_of([&] { read_idx(dir / "labels31", 1, bounds(0, 1 << 30)); }),
                       "the header announces 2147483648 = 2147483648 bytes, more than the limit of 1073741824 bytes"));
  EXPECT_EQ(read_idx(dir / "labels31", 1, bounds(3)).data, (std::vector<uint8_t>{1, 2, 3}));
  write_raw(dir / "labels32", idx_bytes({max32}, {4, 5}));
  EXPECT_EQ(read_idx(dir / "labels32", 1, bounds(2)).data, (std::vector<uint8_t>{4, 5}));

  // 2^31 images of 1x1: more than a data set's int32 indices hold (refused before
  // allocating, even with no memory bound), and fine when limited.
  write_raw(dir / "images31", idx_bytes({two31, 1, 1}, {0, 255, 0}));
  const MemoryBudget unbounded{UINT64_MAX, "unbounded"};
  EXPECT_TRUE(contains(error_of([&] { load_idx_dataset(dir / "images31", dir / "labels31", 0, 1, 0, 10, unbounded); }),
                       "2147483648 images, more than the 2147483647 a data set may hold"));
  const Dataset d = load_idx_dataset(dir / "images31", dir / "labels31", 0, 1, 3, 10, unbounded);
  EXPECT_EQ(d.n, 3);
  ASSERT_EQ(d.pixel_count(), 3u);
  EXPECT_FLOAT_EQ(d.normalised(0), 0);
  EXPECT_FLOAT_EQ(d.normalised(1), 1);
  EXPECT_FLOAT_EQ(d.normalised(2), 0);
  EXPECT_EQ(d.labels, (std::vector<int32_t>{1, 2, 3}));

  // Images 2^32-1 pixels wide do not fit the int the network's shapes take.
  write_raw(dir / "wide", idx_bytes({1, 1, max32}));
  write_raw(dir / "one_label", idx_bytes({1}, {0}));
  EXPECT_TRUE(contains(error_of([&] { load_idx_dataset(dir / "wide", dir / "one_label", 0, 1, 0, 10, unbounded); }),
                       "images of 1x4294967295 pixels: height and width may be at most 2147483647"));

  // (2^32-1) x 2^16 x 2^16 pixels fit in 64 bits as bytes, but not with the labels'
  // 4 bytes each: the need saturates instead of wrapping around to something small.
  // The first 2^31-1 of them need 2^63 bytes and more: refused by a budget of 2^62.
  write_raw(dir / "floats", idx_bytes({max32, 65536, 65536}));
  write_raw(dir / "labels_max", idx_bytes({max32}));
  EXPECT_EQ(dataset_bytes(max32, 65536, 65536), UINT64_MAX);
  const std::string msg = error_of([&] {
    load_idx_dataset(dir / "floats", dir / "labels_max", 0, 1, INT32_MAX, 10, MemoryBudget{uint64_t{1} << 62, "b"});
  });
  EXPECT_TRUE(contains(msg, "its first 2147483647 of 4294967295 images of 65536x65536 need")) << msg;
  EXPECT_EQ(dataset_bytes(3, 28, 28), 3u * 28 * 28 + 3 * 4);  // a byte a pixel, an int32 a label
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
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(d.normalised(i), expect[i], 1e-6);
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
  const size_t count = train.pixel_count();
  for (size_t i = 0; i < count; ++i) {
    const float x = train.normalised(i);
    s += x, q += double(x) * x;
  }
  const double mean = s / count, sd = std::sqrt(q / count - mean * mean);
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_NEAR(sd, 1.0, 1e-3);
}
