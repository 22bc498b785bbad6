#include "engine/dataset.h"

#include <cmath>
#include <algorithm>
#include <climits>
#include <cstring>
#include <exception>
#include <functional>

#include <mpi.h>

#include "common/errors.h"
#include "engine/comm.h"
#include "spec/idx.h"
#include "engine/rng.h"

namespace prelude {

uint64_t dataset_bytes(uint64_t n, uint64_t height, uint64_t width) {
  uint64_t pixels = 0, bytes = 0, label_bytes = 0;
  if (__builtin_mul_overflow(n, height, &pixels) || __builtin_mul_overflow(pixels, width, &pixels) ||
      __builtin_mul_overflow(pixels, sizeof(uint8_t), &bytes) ||
      __builtin_mul_overflow(n, sizeof(int32_t), &label_bytes) ||
      __builtin_add_overflow(bytes, label_bytes, &bytes))
    return UINT64_MAX;
  return bytes;
}

namespace {
// Where the pixels go: called once every check has passed and the labels are read,
// with the byte count; returns the buffer to inflate into (and sets d.pixels and
// d.pixel_store), or nullptr when this process is not the one to read them.
using PixelDestination = std::function<uint8_t*(uint64_t bytes, Dataset& d)>;

Dataset load_into(const std::string& images_path, const std::string& labels_path, double mean, double std,
                  int64_t limit, int num_classes, const MemoryBudget& budget, const PixelDestination& destination) {
  if (!(std > 0) || !std::isfinite(std) || !std::isfinite(mean))
    throw user_error("dataset.std", "must be positive and finite, got " + std::to_string(std));
  // Headers first: every size is known, and checked, before any data is read.
  IdxReader images(images_path, 3);
  IdxReader labels(labels_path, 1);
  if (images.items() != labels.items())
    throw UserError(images_path + " has " + std::to_string(images.items()) + " images but " + labels_path +
                    " has " + std::to_string(labels.items()) + " labels");
  const uint64_t n = images.take(limit > 0 ? static_cast<uint64_t>(limit) : 0);
  labels.take(n);
  const uint64_t height = images.dims()[1], width = images.dims()[2];
  if (n > static_cast<uint64_t>(INT32_MAX))
    throw user_error(images_path, std::to_string(n) + " images, more than the " + std::to_string(INT32_MAX) +
                                      " a data set may hold; keep fewer (dataset.trainLimit, dataset.testLimit)");
  if (height > static_cast<uint64_t>(INT32_MAX) || width > static_cast<uint64_t>(INT32_MAX))
    throw user_error(images_path, "images of " + std::to_string(height) + "x" + std::to_string(width) +
                                      " pixels: height and width may be at most " + std::to_string(INT32_MAX));
  const uint64_t need = dataset_bytes(n, height, width);
  if (need > budget.bytes)
    throw user_error(images_path, (n < images.items() ? "its first " + std::to_string(n) + " of " : "") +
                                      std::to_string(images.items()) + " images of " + std::to_string(height) + "x" +
                                      std::to_string(width) + " need " +
                                      (need == UINT64_MAX ? "more than 2^64 bytes" : format_bytes(need)) +
                                      " in memory, more than this rank's budget of " + budget.describe() +
                                      "; keep fewer (dataset.trainLimit, dataset.testLimit) or run fewer ranks on "
                                      "this host");

  Dataset d;
  d.n = static_cast<int64_t>(n);
  d.height = static_cast<int>(height);
  d.width = static_cast<int>(width);
  d.num_classes = num_classes;
  {
    std::vector<uint8_t> raw(n);
    labels.read(raw.data(), n);
    labels.finish();
    d.labels.resize(n);
    for (uint64_t i = 0; i < n; ++i) {
      if (raw[i] >= num_classes)
        throw user_error(labels_path, "label " + std::to_string(raw[i]) + " at index " + std::to_string(i) +
                                          " is outside [0, " + std::to_string(num_classes) + ")");
      d.labels[i] = raw[i];
    }
  }
  // The float operations of the loader before issue 17, which normalised everything
  // up front: batches are bit-identical to what it held (tests/test_dataset.cc).
  d.scale = static_cast<float>(1.0 / (255.0 * std));
  d.shift = static_cast<float>(mean / std);
  // Inflated straight into the bytes kept; normalised only per batch (gather_batch).
  const uint64_t pixels = n * height * width;
  if (uint8_t* out = destination(pixels, d)) {
    images.read(out, pixels);
    images.finish();
  }
  return d;
}

// MPI_Win_free and MPI_Comm_free are collective over the host's ranks: every rank
// drops its last copy of the data set together (at the end of a job), and never
// after MPI_Finalize.
struct SharedWindow {
  MPI_Win win = MPI_WIN_NULL;
  MPI_Comm host = MPI_COMM_NULL;
  ~SharedWindow() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (win != MPI_WIN_NULL) {
      MPI_Win_unlock_all(win);
      MPI_Win_free(&win);
    }
    if (host != MPI_COMM_NULL) MPI_Comm_free(&host);
  }
};

// True on every rank of `comm` when `ok` is true on all of them.
bool all_ok(MPI_Comm comm, bool ok) {
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm);
  return all == 1;
}
}  // namespace

Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, double mean,
                         double std, int64_t limit, int num_classes, const MemoryBudget& budget) {
  return load_into(images_path, labels_path, mean, std, limit, num_classes, budget, [](uint64_t bytes, Dataset& d) {
    auto store = std::make_shared<std::vector<uint8_t>>(bytes);
    d.pixels = store->data();
    d.pixel_store = std::move(store);
    return const_cast<uint8_t*>(d.pixels);
  });
}

Dataset load_idx_dataset_shared(const Communicator& comm, const std::string& images_path,
                                const std::string& labels_path, double mean, double std, int64_t limit,
                                int num_classes, const MemoryBudget& budget) {
  if (comm.size() <= 1) return load_idx_dataset(images_path, labels_path, mean, std, limit, num_classes, budget);
  auto shared = std::make_shared<SharedWindow>();
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, comm.rank(), MPI_INFO_NULL, &shared->host);
  int host_rank = 0, host_size = 1;
  MPI_Comm_rank(shared->host, &host_rank);
  MPI_Comm_size(shared->host, &host_size);
  if (host_size == 1) return load_idx_dataset(images_path, labels_path, mean, std, limit, num_classes, budget);

  // Every rank checks the files and reads the labels (small) itself; the ranks agree
  // that all of them passed before the window's collective allocation, and that the
  // host's first rank read the pixels before any rank uses them, so a bad file fails
  // every rank with an error instead of leaving some waiting in a collective.
  // Each rank votes once on the checks: from destination when they passed, from the
  // catch below when they did not; only when all passed do the ranks go on together.
  enum class Checks { kNotVoted, kSomeFailed, kAllPassed } checks = Checks::kNotVoted;
  auto destination = [&](uint64_t bytes, Dataset& d) -> uint8_t* {
    checks = Checks::kSomeFailed;
    if (!all_ok(shared->host, true))
      throw PeerFailedError(images_path + ": another rank on this host could not load the data set (see its error)");
    checks = Checks::kAllPassed;
    const MPI_Aint mine = host_rank == 0 ? static_cast<MPI_Aint>(bytes) : 0;
    uint8_t* base = nullptr;
    if (MPI_Win_allocate_shared(mine, 1, MPI_INFO_NULL, shared->host, &base, &shared->win) != MPI_SUCCESS)
      throw user_error(images_path, "could not allocate " + format_bytes(bytes) + " of memory shared by the " +
                                        std::to_string(host_size) + " ranks on this host");
    MPI_Win_lock_all(MPI_MODE_NOCHECK, shared->win);
    MPI_Aint size = 0;
    int disp = 1;
    MPI_Win_shared_query(shared->win, 0, &size, &disp, &base);
    d.pixels = base;
    d.pixel_store = std::shared_ptr<const void>(shared, base);
    return host_rank == 0 ? base : nullptr;
  };
  Dataset d;
  std::exception_ptr error;
  try {
    d = load_into(images_path, labels_path, mean, std, limit, num_classes, budget, destination);
  } catch (...) {
    error = std::current_exception();
  }
  if (checks == Checks::kNotVoted) all_ok(shared->host, false);  // the other ranks wait for this rank's word
  if (checks != Checks::kAllPassed) std::rethrow_exception(error);
  // The host's first rank wrote the pixels; make them visible, and agree it succeeded.
  if (shared->win != MPI_WIN_NULL) MPI_Win_sync(shared->win);
  const bool ok = all_ok(shared->host, !error);
  if (shared->win != MPI_WIN_NULL) MPI_Win_sync(shared->win);
  if (error) std::rethrow_exception(error);
  if (!ok) throw PeerFailedError(images_path + ": the host's first rank could not read the images (see its error)");
  return d;
}

std::vector<int32_t> epoch_permutation(int64_t n, uint64_t seed, int epoch) {
  std::vector<int32_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(i);
  uint64_t s = seed * 0x9e3779b97f4a7c15ULL ^ (static_cast<uint64_t>(epoch) + 0x632be59bd9b4e019ULL);
  Rng rng(splitmix64(s));
  for (int64_t i = n - 1; i > 0; --i) {
    // Unbiased draw in [0, i] by rejection.
    const uint64_t bound = static_cast<uint64_t>(i) + 1;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do r = rng.next(); while (r >= limit);
    std::swap(p[i], p[r % bound]);
  }
  return p;
}

void gather_batch(const Dataset& d, const int32_t* indices, int count, float* images_out, int32_t* labels_out) {
  const size_t per = static_cast<size_t>(d.channels) * d.height * d.width;
  const float scale = d.scale, shift = d.shift;
  for (int i = 0; i < count; ++i) {
    const uint8_t* __restrict in = d.pixels + static_cast<size_t>(indices[i]) * per;
    float* __restrict out = images_out + i * per;
    for (size_t j = 0; j < per; ++j) out[j] = in[j] * scale - shift;
    labels_out[i] = d.labels[indices[i]];
  }
}

}  // namespace prelude
