// The data set held as the IDX file's bytes (issue 17): batches normalised on the way
// out are bit for bit what the float loader held, and the set takes a byte a pixel.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include "engine/dataset.h"
#include "engine/memory_budget.h"
#include "idx_fixtures.h"

using namespace prelude;
using testutil::idx_bytes;
using testutil::TempDir;
using testutil::write_gz;
using testutil::write_raw;

namespace {
// The loader before issue 17 normalised every pixel up front, in these float
// operations (engine/dataset.cc then: `chunk[i] * scale - shift`).
float old_loader_value(uint8_t x, double mean, double std) {
  const float scale = static_cast<float>(1.0 / (255.0 * std)), shift = static_cast<float>(mean / std);
  return x * scale - shift;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }
}  // namespace

// Every byte value, in shuffled batches, for the normalisations of the presets and
// some others: each float equals the old loader's bit for bit (and is within float
// rounding of (x/255 - mean)/std computed in double).
TEST(Dataset, BatchesAreBitIdenticalToTheFloatLoader) {
  TempDir dir;
  const int n = 300, h = 5, w = 7;
  std::vector<uint8_t> px(n * h * w);
  std::mt19937 gen(7);
  for (size_t i = 0; i < px.size(); ++i) px[i] = i < 256 ? static_cast<uint8_t>(i) : static_cast<uint8_t>(gen());
  std::vector<uint8_t> lab(n);
  for (int i = 0; i < n; ++i) lab[i] = static_cast<uint8_t>(gen() % 10);
  write_gz(dir / "img.gz", idx_bytes({n, h, w}, px));
  write_raw(dir / "lab", idx_bytes({n}, lab));
  const std::pair<double, double> norms[] = {{0.2860, 0.3530}, {0.1307, 0.3081}, {0, 1}, {0.5, 0.25}, {-3, 1e-3}};
  for (auto [mean, std] : norms) {
    const Dataset d = load_idx_dataset(dir / "img.gz", dir / "lab", mean, std);
    ASSERT_EQ(d.n, n);
    ASSERT_EQ(d.pixel_count(), px.size());
    EXPECT_EQ(std::memcmp(d.pixels, px.data(), px.size()), 0);  // the file's bytes, as they are
    const auto order = epoch_permutation(n, 3, 1);
    const int batch = 64;
    std::vector<float> out(batch * h * w);
    std::vector<int32_t> labels(batch);
    int mismatches = 0;
    for (int first = 0; first < n; first += batch) {
      const int count = std::min(batch, n - first);
      gather_batch(d, order.data() + first, count, out.data(), labels.data());
      for (int i = 0; i < count; ++i) {
        const int item = order[first + i];
        EXPECT_EQ(labels[i], lab[item]);
        for (int j = 0; j < h * w; ++j) {
          const uint8_t x = px[item * h * w + j];
          const float got = out[i * h * w + j];
          if (!same_bits(got, old_loader_value(x, mean, std))) ++mismatches;
          const double exact = (x / 255.0 - mean) / std;
          EXPECT_NEAR(got, exact, 1e-6 * std::max(1.0, std::fabs(exact)));
        }
      }
    }
    EXPECT_EQ(mismatches, 0) << "mean " << mean << " std " << std;
    for (size_t i = 0; i < px.size(); ++i)
      if (!same_bits(d.normalised(i), old_loader_value(px[i], mean, std))) ADD_FAILURE() << "normalised(" << i << ")";
  }
}

// A copy shares the bytes rather than duplicating them, and keeps them alive.
TEST(Dataset, CopiesShareThePixels) {
  TempDir dir;
  write_raw(dir / "img", idx_bytes({2, 1, 2}, {1, 2, 3, 4}));
  write_raw(dir / "lab", idx_bytes({2}, {0, 1}));
  Dataset copy;
  {
    const Dataset d = load_idx_dataset(dir / "img", dir / "lab", 0, 1);
    copy = d;
    EXPECT_EQ(copy.pixels, d.pixels);
  }
  EXPECT_EQ(copy.pixels[3], 4);
  EXPECT_EQ(copy.bytes(), 4u + 2 * sizeof(int32_t));
}

// The real training set takes 60000 x 784 bytes of pixels and 60000 int32 labels
// (47 MB; 188 MB as floats), both as the object counts it and as the process's
// resident set grows when it is loaded.
TEST(Dataset, RealFashionMnistFootprint) {
  const std::string root = "/usr/share/datasets/fashion-mnist/";
  if (!std::ifstream(root + "train-images-idx3-ubyte.gz")) {
    std::printf("skipped, because the Fashion-MNIST files are not in %s (package dataset-fashion-mnist)\n",
                root.c_str());
    GTEST_SKIP() << "skipped, because dataset-fashion-mnist is not installed";
  }
  const uint64_t before = resident_bytes();
  ASSERT_GT(before, 0u) << "no /proc/self/statm";
  const Dataset train = load_idx_dataset(root + "train-images-idx3-ubyte.gz", root + "train-labels-idx1-ubyte.gz",
                                         0.2860, 0.3530);
  const uint64_t after = resident_bytes();
  EXPECT_EQ(train.n, 60000);
  EXPECT_EQ(train.pixel_count(), 60000u * 28 * 28);
  EXPECT_EQ(train.bytes(), 60000u * 28 * 28 + 60000u * 4);
  EXPECT_EQ(dataset_bytes(60000, 28, 28), train.bytes());
  const double grown_mb = (after - std::min(after, before)) / 1e6;
  std::printf("resident set grew by %.1f MB loading the training set (the object counts %.1f MB)\n", grown_mb,
              train.bytes() / 1e6);
  EXPECT_GT(grown_mb, 40.0);  // the bytes really are held ...
  EXPECT_LT(grown_mb, 60.0);  // ... and only once, as bytes (floats would be 188 MB)
}
