// Image classification data in memory: loading IDX pairs, per-epoch shuffling and
// batch gathering. Which files a DatasetSpec names is spec/data_files.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/memory_budget.h"
#include "spec/data_files.h"

namespace prelude {

struct Dataset {
  int64_t n = 0;  // at most INT32_MAX: shuffled indices are int32_t
  int channels = 1, height = 0, width = 0, num_classes = 10;
  std::vector<float> images;    // n * channels * height * width, NCHW, (x/255 - mean) / std
  std::vector<int32_t> labels;  // n, each in [0, num_classes)

  // The memory the data set holds.
  uint64_t bytes() const { return images.size() * sizeof(float) + labels.size() * sizeof(int32_t); }
};

// Loads an image IDX file (3-D) and a label IDX file (1-D). The counts must match,
// every label must be below num_classes, std must be positive; limit > 0 keeps the
// first `limit` items, and only they are read (the rest of a file is never
// inflated). What the items will take in memory is checked against `budget` before
// anything is allocated. Errors are UserErrors naming the file(s).
Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, double mean,
                         double std, int64_t limit = 0, int num_classes = 10,
                         const MemoryBudget& budget = this_rank_memory_budget());

// The memory a data set of n images of height x width takes (saturating at
// UINT64_MAX instead of wrapping around).
uint64_t dataset_bytes(uint64_t n, uint64_t height, uint64_t width);

// A permutation of [0, n) that depends only on (seed, epoch): Fisher-Yates over our
// own generator, so every machine, library and rank computes the same order.
std::vector<int32_t> epoch_permutation(int64_t n, uint64_t seed, int epoch);

// Copies the images and labels of indices[0, count) into batch buffers (NCHW).
void gather_batch(const Dataset& d, const int32_t* indices, int count, float* images_out, int32_t* labels_out);

}  // namespace prelude
