#include "engine/dataset.h"

#include <cmath>
#include <cstring>

#include "common/errors.h"
#include "spec/idx.h"
#include "engine/rng.h"

namespace prelude {

Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, double mean,
                         double std, int64_t limit, int num_classes) {
  if (!(std > 0) || !std::isfinite(std) || !std::isfinite(mean))
    throw user_error("dataset.std", "must be positive and finite, got " + std::to_string(std));
  IdxArray images = read_idx(images_path, 3);
  IdxArray labels = read_idx(labels_path, 1);
  if (images.dims[0] != labels.dims[0])
    throw UserError(images_path + " has " + std::to_string(images.dims[0]) + " images but " + labels_path +
                    " has " + std::to_string(labels.dims[0]) + " labels");
  Dataset d;
  d.n = static_cast<int>(limit > 0 && limit < images.dims[0] ? limit : images.dims[0]);
  d.height = static_cast<int>(images.dims[1]);
  d.width = static_cast<int>(images.dims[2]);
  d.num_classes = num_classes;
  d.labels.resize(d.n);
  for (int i = 0; i < d.n; ++i) {
    if (labels.data[i] >= num_classes)
      throw user_error(labels_path, "label " + std::to_string(labels.data[i]) + " at index " + std::to_string(i) +
                                        " is outside [0, " + std::to_string(num_classes) + ")");
    d.labels[i] = labels.data[i];
  }
  const size_t pixels = static_cast<size_t>(d.n) * d.height * d.width;
  d.images.resize(pixels);
  const float scale = static_cast<float>(1.0 / (255.0 * std)), shift = static_cast<float>(mean / std);
  for (size_t i = 0; i < pixels; ++i) d.images[i] = images.data[i] * scale - shift;
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
  for (int i = 0; i < count; ++i) {
    std::memcpy(images_out + i * per, d.images.data() + static_cast<size_t>(indices[i]) * per, per * sizeof(float));
    labels_out[i] = d.labels[indices[i]];
  }
}

}  // namespace prelude
