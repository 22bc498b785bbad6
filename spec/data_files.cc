#include "spec/data_files.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>

#include "common/errors.h"

namespace prelude {

namespace fs = std::filesystem;

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

namespace {

// An IDX file of unsigned bytes (gzip or raw: zlib reads both): magic 00 00 08 <dims>.
bool is_idx_file(const fs::path& p) {
  gzFile f = gzopen(p.c_str(), "rb");
  if (!f) return false;
  unsigned char head[4] = {1, 1, 1, 1};
  const int got = gzread(f, head, 4);
  gzclose(f);
  return got == 4 && head[0] == 0 && head[1] == 0 && head[2] == 0x08 && head[3] >= 1 && head[3] <= 4;
}

}  // namespace

std::vector<DataSetFiles> scan_data_sets(const std::string& data_root) {
  std::vector<DataSetFiles> out;
  std::error_code ec;
  const fs::path root(data_root);
  DataSetFiles top{kTopLevelDataSet, {}};
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code file_ec;
    if (it->is_regular_file(file_ec)) {
      top.files.push_back(name);
      continue;
    }
    if (!it->is_directory(file_ec)) continue;
    DataSetFiles set;
    set.name = name;
    bool idx = false;
    std::error_code walk_ec;
    const auto opts = fs::directory_options::follow_directory_symlink | fs::directory_options::skip_permission_denied;
    for (fs::recursive_directory_iterator f(it->path(), opts, walk_ec), fend; !walk_ec && f != fend;
         f.increment(walk_ec)) {
      if (f.depth() >= 4) f.disable_recursion_pending();
      if (f->path().filename().string().rfind('.', 0) == 0) {
        f.disable_recursion_pending();
        continue;
      }
      if (!f->is_regular_file(file_ec)) continue;
      idx = idx || is_idx_file(f->path());
      set.files.push_back(fs::path(set.name) / f->path().lexically_relative(it->path()));
    }
    if (!idx) continue;
    std::sort(set.files.begin(), set.files.end());
    out.push_back(std::move(set));
  }
  if (!top.files.empty()) {
    std::sort(top.files.begin(), top.files.end());
    out.push_back(std::move(top));
  }
  std::sort(out.begin(), out.end(), [](const DataSetFiles& a, const DataSetFiles& b) { return a.name < b.name; });
  return out;
}

std::vector<NeededFile> needed_data_files(const prelude::v1::DatasetSpec& spec, bool need_test) {
  struct Item { const char* field; const std::string& explicit_path; const char* standard; bool needed; };
  const Item items[] = {{"dataset.trainImages", spec.train_images(), "train-images-idx3-ubyte", true},
                        {"dataset.trainLabels", spec.train_labels(), "train-labels-idx1-ubyte", true},
                        {"dataset.testImages", spec.test_images(), "t10k-images-idx3-ubyte", need_test},
                        {"dataset.testLabels", spec.test_labels(), "t10k-labels-idx1-ubyte", need_test}};
  std::vector<NeededFile> out;
  for (const auto& it : items) {
    if (!it.needed) continue;
    NeededFile f{it.field, {}};
    if (!it.explicit_path.empty()) {
      f.candidates.push_back(fs::path(it.explicit_path).lexically_normal().string());
    } else if (!spec.name().empty()) {
      const fs::path dir = fs::path(spec.name()).lexically_normal();
      f.candidates.push_back((dir / (std::string(it.standard) + ".gz")).string());
      f.candidates.push_back((dir / it.standard).string());
    } else {
      continue;  // validation asks for it
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::string data_set_label(const prelude::v1::DatasetSpec& spec) {
  return spec.name().empty() ? spec.train_images() : spec.name();
}

std::vector<std::string> class_names(const prelude::v1::DatasetSpec& spec, int num_classes) {
  static const char* const kFashion[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                         "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  std::vector<std::string> out;
  for (int i = 0; i < num_classes; ++i) {
    if (spec.name() == "fashion-mnist" && num_classes == 10)
      out.push_back(kFashion[i]);
    else if (spec.name() == "mnist" && num_classes == 10)
      out.push_back(std::to_string(i));
    else
      out.push_back("class " + std::to_string(i));
  }
  return out;
}

}  // namespace prelude
