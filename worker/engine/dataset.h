// Image classification data in memory: loading IDX pairs, per-epoch shuffling and
// batch gathering. Which files a DatasetSpec names is spec/data_files.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/errors.h"
#include "engine/memory_budget.h"
#include "spec/data_files.h"

namespace prelude {

// The images stay the bytes the IDX file holds (a quarter of them as floats) and are
// normalised a batch at a time, as gather_batch copies them out.
struct Dataset {
  int64_t n = 0;  // at most INT32_MAX: shuffled indices are int32_t
  int channels = 1, height = 0, width = 0, num_classes = 10;
  // n * channels * height * width bytes, NCHW, as in the file; `pixel_store` keeps
  // them alive (copies of a Dataset share them).
  const uint8_t* pixels = nullptr;
  std::shared_ptr<const void> pixel_store;
  // A pixel x normalised: x * scale - shift, with scale = 1/(255 std) and shift =
  // mean/std, i.e. (x/255 - mean) / std.
  float scale = 1, shift = 0;
  std::vector<int32_t> labels;  // n, each in [0, num_classes)

  size_t pixel_count() const { return static_cast<size_t>(n) * channels * height * width; }
  // Pixel i normalised, exactly as gather_batch writes it.
  float normalised(size_t i) const { return pixels[i] * scale - shift; }
  // The memory the data set holds.
  uint64_t bytes() const { return pixel_count() + labels.size() * sizeof(int32_t); }
};

// Loads an image IDX file (3-D) and a label IDX file (1-D). The counts must match,
// every label must be below num_classes, std must be positive; limit > 0 keeps the
// first `limit` items, and only they are read (the rest of a file is never
// inflated). What the items will take in memory is checked against `budget` before
// anything is allocated. Errors are UserErrors naming the file(s).
Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, double mean,
                         double std, int64_t limit = 0, int num_classes = 10,
                         const MemoryBudget& budget = this_rank_memory_budget());

// The same, with the pixels held once per host: the ranks of `comm` that share a host
// share one copy in an MPI-3 shared-memory window (MPI_Comm_split_type SHARED,
// MPI_Win_allocate_shared), which the host's first rank inflates the file into. Every
// rank still checks the files and reads the labels. Collective over `comm`: every
// rank calls it, and every rank drops its copies of the result together (freeing
// the window is collective too), before MPI_Finalize. Alone (size 1, or one rank on
// the host) it is load_idx_dataset. A bad file fails every rank with a UserError: the
// rank that found it with its own, the others with a PeerFailedError.
class Communicator;
// This rank could not go on because another one failed (and says why): the error to
// report is the other rank's (the trainer's agree_on prefers it).
class PeerFailedError : public UserError {
 public:
  using UserError::UserError;
};
Dataset load_idx_dataset_shared(const Communicator& comm, const std::string& images_path,
                                const std::string& labels_path, double mean, double std, int64_t limit = 0,
                                int num_classes = 10, const MemoryBudget& budget = this_rank_memory_budget());

// The memory a data set of n images of height x width takes, a byte a pixel and
// an int32 a label (saturating at
// UINT64_MAX instead of wrapping around).
uint64_t dataset_bytes(uint64_t n, uint64_t height, uint64_t width);

// A permutation of [0, n) that depends only on (seed, epoch): Fisher-Yates over our
// own generator, so every machine, library and rank computes the same order.
std::vector<int32_t> epoch_permutation(int64_t n, uint64_t seed, int epoch);

// Copies the images of indices[0, count), normalised to floats, and their labels
// into batch buffers (NCHW).
void gather_batch(const Dataset& d, const int32_t* indices, int count, float* images_out, int32_t* labels_out);

}  // namespace prelude
