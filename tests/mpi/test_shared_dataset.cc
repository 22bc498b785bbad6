// The data set shared by the ranks of one host (load_idx_dataset_shared, issue 17):
// run under mpirun at 2 ranks (one host). Both ranks see the same bytes as a private
// load, batches are bit-identical, a bad file on one rank fails both with an error
// (no rank left waiting), and the real training set is held once per host: each
// rank's proportional share of memory (Pss) grows by half of it, not all of it.
//
// Own main, as test_comm.cc: every rank runs every test; the failure count is summed
// over the ranks, so a failure on any rank fails the program on every rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/errors.h"
#include "engine/comm.h"
#include "engine/dataset.h"
#include "../idx_fixtures.h"
#include "mpi_test_main.h"

using namespace prelude;
using testutil::idx_bytes;
using testutil::TempDir;
using testutil::write_gz;
using testutil::write_raw;

namespace {

Communicator* world = nullptr;

int ranks_sharing_host() {
  MPI_Comm host;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world->rank(), MPI_INFO_NULL, &host);
  int n = 1;
  MPI_Comm_size(host, &n);
  MPI_Comm_free(&host);
  return n;
}

// A field of /proc/self/smaps_rollup or /proc/self/status, in bytes (0 if absent).
uint64_t proc_kb(const std::string& file, const std::string& field) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) {
      std::istringstream s(line.substr(field.size() + 1));
      uint64_t kb = 0;
      s >> kb;
      return kb * 1024;
    }
  return 0;
}

// True on every rank when it is true on all.
bool everywhere(bool ok) {
  double bad = ok ? 0 : 1;
  world->allreduce_sum(&bad, 1);
  return bad == 0;
}

}  // namespace

TEST(SharedDataset, EveryRankSeesTheFilesBytesOnce) {
  ASSERT_EQ(world->size(), 2) << "run at 2 ranks";
  ASSERT_EQ(ranks_sharing_host(), 2) << "both ranks on one host";
  TempDir dir;  // each rank writes the same files into its own directory
  const int n = 500, h = 6, w = 5;
  std::vector<uint8_t> px(n * h * w), lab(n);
  std::mt19937 gen(11);
  for (auto& x : px) x = static_cast<uint8_t>(gen());
  for (auto& l : lab) l = static_cast<uint8_t>(gen() % 10);
  write_gz(dir / "img.gz", idx_bytes({n, h, w}, px));
  write_raw(dir / "lab", idx_bytes({n}, lab));

  const Dataset own = load_idx_dataset(dir / "img.gz", dir / "lab", 0.2860, 0.3530);
  const Dataset shared = load_idx_dataset_shared(*world, dir / "img.gz", dir / "lab", 0.2860, 0.3530);
  EXPECT_EQ(shared.n, n);
  EXPECT_EQ(shared.height, h);
  EXPECT_EQ(shared.width, w);
  EXPECT_EQ(shared.labels, own.labels);
  ASSERT_EQ(shared.pixel_count(), px.size());
  EXPECT_EQ(std::memcmp(shared.pixels, px.data(), px.size()), 0) << "rank " << world->rank();
  EXPECT_TRUE(world->all_equal(checksum_bytes(shared.pixels, shared.pixel_count())));
  EXPECT_NE(shared.pixels, own.pixels);
  // Batches from the shared bytes equal those from a private copy, bit for bit.
  const auto order = epoch_permutation(n, 5, 0);
  std::vector<float> a(64 * h * w), b(64 * h * w);
  std::vector<int32_t> la(64), lb(64);
  for (int first = 0; first + 64 <= n; first += 64) {
    gather_batch(own, order.data() + first, 64, a.data(), la.data());
    gather_batch(shared, order.data() + first, 64, b.data(), lb.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
    EXPECT_EQ(la, lb);
  }
  // A copy shares the window; the last copy on every rank frees it together.
  Dataset copy = shared;
  EXPECT_EQ(copy.pixels, shared.pixels);
}

// A file only one rank cannot read: both ranks fail with a UserError, and the one
// that could read it says another rank could not.
TEST(SharedDataset, ABadFileOnOneRankFailsEveryRank) {
  TempDir dir;
  write_raw(dir / "img", idx_bytes({2, 1, 2}, {1, 2, 3, 4}));
  write_raw(dir / "lab", idx_bytes({2}, {0, 1}));
  const std::string images = world->rank() == 1 ? dir / "missing" : dir / "img";
  std::string error = "(no error)";
  try {
    load_idx_dataset_shared(*world, images, dir / "lab", 0, 1);
  } catch (const UserError& e) {
    error = e.what();
  }
  if (world->rank() == 1)
    EXPECT_NE(error.find("missing"), std::string::npos) << error;
  else
    EXPECT_NE(error.find("another rank on this host could not load the data set"), std::string::npos) << error;
  // Truncated pixels only the host's first rank reads: both fail.
  write_raw(dir / "short", idx_bytes({2, 1, 2}, {1, 2, 3}));
  error = "(no error)";
  try {
    load_idx_dataset_shared(*world, dir / "short", dir / "lab", 0, 1);
  } catch (const UserError& e) {
    error = e.what();
  }
  EXPECT_NE(error, "(no error)") << "rank " << world->rank();
  // And the ranks still work together afterwards.
  EXPECT_TRUE(everywhere(true));
}

// The real training set: held privately, each rank's proportional set size grows by
// all of its 47 MB; shared, by half (Pss divides a shared page among its sharers),
// once every rank has touched every pixel.
TEST(SharedDataset, RealFashionMnistIsHeldOncePerHost) {
  const std::string root = "/usr/share/datasets/fashion-mnist/";
  const bool have = static_cast<bool>(std::ifstream(root + "train-images-idx3-ubyte.gz"));
  if (!everywhere(have)) {
    if (world->is_root())
      std::printf("skipped, because the Fashion-MNIST files are not in %s on every rank\n", root.c_str());
    GTEST_SKIP() << "skipped, because dataset-fashion-mnist is not installed";
  }
  const std::string rollup = "/proc/self/smaps_rollup";
  if (!everywhere(proc_kb(rollup, "Pss") > 0)) {
    if (world->is_root()) std::printf("skipped, because %s has no Pss here\n", rollup.c_str());
    GTEST_SKIP() << "skipped, because /proc/self/smaps_rollup is not readable";
  }
  auto touch_all = [](const Dataset& d) {
    uint64_t sum = 0;
    for (size_t i = 0; i < d.pixel_count(); ++i) sum += d.pixels[i];
    return sum;
  };
  const std::string img = root + "train-images-idx3-ubyte.gz", lab = root + "train-labels-idx1-ubyte.gz";
  double grown[2];
  uint64_t sums[2];
  {
    everywhere(true);
    const uint64_t before = proc_kb(rollup, "Pss");
    const Dataset d = load_idx_dataset_shared(*world, img, lab, 0.2860, 0.3530);
    sums[0] = touch_all(d);
    everywhere(true);  // both ranks have touched every page before either measures
    grown[0] = (proc_kb(rollup, "Pss") - std::min(proc_kb(rollup, "Pss"), before)) / 1e6;
    EXPECT_EQ(d.bytes(), 60000u * 784 + 60000u * 4);
  }
  {
    const uint64_t before = proc_kb(rollup, "Pss");
    const Dataset d = load_idx_dataset(img, lab, 0.2860, 0.3530);
    sums[1] = touch_all(d);
    grown[1] = (proc_kb(rollup, "Pss") - std::min(proc_kb(rollup, "Pss"), before)) / 1e6;
  }
  EXPECT_EQ(sums[0], sums[1]);
  std::printf("rank %d: Pss grew by %.1f MB with the shared training set, %.1f MB with its own copy\n",
              world->rank(), grown[0], grown[1]);
  EXPECT_GT(grown[1], 45.0);  // a private copy: all 47 MB
  // Shared by 2: about 23.5 MB each (27 here), against 47 for a private copy. As a
  // fraction of the private copy's growth, so that an allocator's own overhead (ASan's
  // in the sanitizer build: 34.5 against 52) does not decide it.
  EXPECT_LT(grown[0], 0.75 * grown[1]);
  EXPECT_GT(grown[0], 18.0);  // ... and really held
}

int main(int argc, char** argv) {
  world = &Communicator::world(/*force_mpi=*/true);
  ::testing::InitGoogleTest(&argc, argv);
  return prelude::testutil::run_tests_on_every_rank(*world, "test_shared_dataset");
}
