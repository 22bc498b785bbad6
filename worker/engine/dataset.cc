#include "engine/dataset.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "engine/errors.h"
#include "engine/idx.h"
#include "engine/rng.h"

namespace prelude {

namespace fs = std::filesystem;

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

namespace {

// <root>/<rel>, checked to stay inside root once links and ".." are resolved.
std::string inside_root(const fs::path& root, const std::string& rel, const std::string& field) {
  const fs::path p = fs::path(rel).is_absolute() ? fs::path(rel) : root / rel;
  std::error_code ec;
  const fs::path canon = fs::weakly_canonical(p, ec);
  const fs::path canon_root = fs::weakly_canonical(root, ec);
  const auto mismatch = std::mismatch(canon_root.begin(), canon_root.end(), canon.begin(), canon.end());
  if (ec || mismatch.first != canon_root.end())
    throw user_error(field, "path " + rel + " escapes the data root " + root.string());
  return canon.string();
}

std::string standard_file(const fs::path& dir, const std::string& gz_name) {
  const fs::path gz = dir / gz_name;
  const fs::path raw = dir / gz_name.substr(0, gz_name.size() - 3);
  if (!fs::exists(gz) && fs::exists(raw)) return raw.string();
  return gz.string();
}

}  // namespace

DataFiles resolve_data_files(const prelude::v1::DatasetSpec& spec, const std::string& data_root, bool need_test) {
  const fs::path root(data_root);
  DataFiles f;
  f.mean = spec.has_mean() ? spec.mean() : 0.0;
  f.std = spec.has_std() ? spec.std() : 1.0;
  const std::string& name = spec.name();
  if (!name.empty()) {
    const fs::path dir = fs::path(inside_root(root, name, "dataset.name"));
    if (name == "fashion-mnist" || name == "mnist") {
      if (!spec.has_mean()) f.mean = name == "mnist" ? 0.1307 : 0.2860;
      if (!spec.has_std()) f.std = name == "mnist" ? 0.3081 : 0.3530;
    }
    f.train_images = standard_file(dir, "train-images-idx3-ubyte.gz");
    f.train_labels = standard_file(dir, "train-labels-idx1-ubyte.gz");
    f.test_images = standard_file(dir, "t10k-images-idx3-ubyte.gz");
    f.test_labels = standard_file(dir, "t10k-labels-idx1-ubyte.gz");
  }
  struct Item { const char* field; const std::string& rel; std::string* out; bool needed; };
  const Item items[] = {{"dataset.trainImages", spec.train_images(), &f.train_images, true},
                        {"dataset.trainLabels", spec.train_labels(), &f.train_labels, true},
                        {"dataset.testImages", spec.test_images(), &f.test_images, need_test},
                        {"dataset.testLabels", spec.test_labels(), &f.test_labels, need_test}};
  for (const auto& it : items) {
    if (!it.rel.empty()) *it.out = inside_root(root, it.rel, it.field);
    if (!it.needed) continue;
    if (it.out->empty()) throw user_error(it.field, "required when dataset.name is not given");
    if (!fs::is_regular_file(*it.out)) {
      const std::string where = it.rel.empty() ? "dataset.name" : it.field;
      throw user_error(where, "no such file " + *it.out +
                                  (it.rel.empty() ? " (is the data set installed under " + root.string() +
                                                        "? Debian: apt-get install dataset-fashion-mnist)"
                                                  : ""));
    }
  }
  return f;
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
