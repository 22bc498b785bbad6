#include "worker/model_commands.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "artifacts/checkpoint_file.h"
#include "artifacts/onnx_export.h"
#include "common/errors.h"
#include "common/flags.h"
#include "engine/evaluation.h"
#include "spec/data_files.h"
#include "spec/idx.h"

namespace prelude {

namespace v1 = prelude::v1;

namespace {

constexpr const char* kModelUsage =
    "usage: prelude-worker export CKPT --format onnx|prelude -o FILE\n"
    "       prelude-worker eval CKPT [--data-root DIR] [--dataset NAME] [--threads N]\n"
    "       prelude-worker predict CKPT --images IDX [--top K] [--limit N] [--threads N]\n"
    "\n"
    "  export   writes the model as ONNX (opset 13: input 'pixels' N x C x H x W in [0, 1],\n"
    "           output 'logits') or as a Prelude checkpoint without optimizer state\n"
    "  eval     prints one JSON object: test loss and accuracy, per-class accuracy and the\n"
    "           confusion matrix (rows: true class, columns: predicted), on the job's test set\n"
    "           or on another installed data set (--dataset NAME)\n"
    "  predict  prints one JSON line per image of an IDX file: its logits and its top K\n"
    "           classes (default 3) with probabilities\n";

// The flags of one command: name -> value (flags without values map to "").
struct Args {
  std::string ckpt;
  std::map<std::string, std::string> flags;
  std::string get(const std::string& f, const std::string& fallback = "") const {
    auto it = flags.find(f);
    return it == flags.end() ? fallback : it->second;
  }
};

Args parse(int argc, char** argv, const std::vector<std::string>& valued) {
  Args a;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') {
      if (std::find(valued.begin(), valued.end(), arg) == valued.end())
        throw UserError("unknown option '" + arg + "'");
      if (i + 1 >= argc) throw UserError(arg + ": needs a value");
      a.flags[arg] = argv[++i];
    } else if (a.ckpt.empty()) {
      a.ckpt = arg;
    } else {
      throw UserError("more than one checkpoint given");
    }
  }
  if (a.ckpt.empty()) throw UserError("missing CKPT (a checkpoint file)");
  if (a.flags.count("--threads")) omp_set_num_threads(parse_threads(a.flags["--threads"]));
  return a;
}

// JSON output with the keys in a fixed, readable order.
// Doubles with all their digits; floats (logits) with the 9 that round-trip a float.
std::string jnum(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
std::string jfloat(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}
std::string jstr(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}
template <typename T, typename F>
std::string jlist(const std::vector<T>& items, F&& each) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + each(items[i]);
  return out + "]";
}

int run(const char* name, int argc, char** argv, const std::function<int(int, char**)>& body) {
  for (int i = 0; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::fputs(kModelUsage, stdout);
      return 0;
    }
  try {
    return body(argc, argv);
  } catch (const UserError& e) {
    std::fprintf(stderr, "prelude-worker %s: %s\n", name, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prelude-worker %s: internal error: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace

int export_main(int argc, char** argv) {
  return run("export", argc, argv, [](int argc, char** argv) {
    const Args a = parse(argc, argv, {"--format", "-o"});
    const std::string format = a.get("--format", "onnx"), out = a.get("-o");
    if (out.empty()) throw UserError("-o: the output file is required");
    v1::Checkpoint c = read_checkpoint_file(a.ckpt);
    if (format == "onnx") {
      write_file_atomically(out, export_onnx(c, a.ckpt));
    } else if (format == "prelude") {
      for (auto& t : *c.mutable_params()) t.clear_momentum();
      write_file_atomically(out, encode_checkpoint(c));
    } else {
      throw UserError("--format: must be onnx or prelude, got '" + format + "'");
    }
    std::fprintf(stderr, "prelude-worker export: wrote %s (%s, step %lld)\n", out.c_str(), format.c_str(),
                 static_cast<long long>(c.progress().step()));
    return 0;
  });
}

int eval_main(int argc, char** argv) {
  return run("eval", argc, argv, [](int argc, char** argv) {
    const Args a = parse(argc, argv, {"--data-root", "--dataset", "--threads"});
    const v1::Checkpoint c = read_checkpoint_file(a.ckpt);
    std::string root = a.get("--data-root", std::getenv("PRELUDE_DATA_ROOT") ? std::getenv("PRELUDE_DATA_ROOT")
                                                                              : "/usr/share/datasets");
    v1::DatasetSpec ds = c.spec().dataset();
    if (a.flags.count("--dataset")) {
      ds = v1::DatasetSpec();
      ds.set_name(a.get("--dataset"));
    }
    const DataFiles f = resolve_data_files(ds, root, /*need_test=*/true);
    // The model's own normalisation, whatever data set it is evaluated on.
    const Dataset test = load_idx_dataset(f.test_images, f.test_labels, c.io().mean(), c.io().std(),
                                          a.flags.count("--dataset") ? 0 : ds.test_limit(), c.io().num_classes());
    TrainedModel model(c, a.ckpt, 256);
    const ConfusionMatrix cm = model.evaluate(test);
    const std::vector<std::string> names(c.io().class_names().begin(), c.io().class_names().end());
    const std::vector<double> per_class = cm.per_class_accuracy();
    std::vector<int> classes(cm.k);
    std::iota(classes.begin(), classes.end(), 0);
    const std::string out =
        "{\"checkpoint\":" + jstr(a.ckpt) + ",\"step\":" + std::to_string(c.progress().step()) +
        ",\"images\":" + std::to_string(cm.total()) + ",\"test_loss\":" + jnum(cm.total() ? cm.loss_sum / cm.total() : 0) +
        ",\"test_accuracy\":" + jnum(cm.accuracy()) + ",\"per_class_accuracy\":" + jlist(classes, [&](int i) {
          return "{\"class\":" + jstr(i < static_cast<int>(names.size()) ? names[i] : "class " + std::to_string(i)) +
                 ",\"accuracy\":" + jnum(per_class[i]) + "}";
        }) +
        ",\"confusion_matrix\":" + jlist(classes, [&](int i) {
          return jlist(classes, [&](int j) { return std::to_string(cm.counts[i * cm.k + j]); });
        }) +
        "}";
    std::printf("%s\n", out.c_str());
    return 0;
  });
}

int predict_main(int argc, char** argv) {
  return run("predict", argc, argv, [](int argc, char** argv) {
    const Args a = parse(argc, argv, {"--images", "--top", "--limit", "--threads"});
    const std::string images_path = a.get("--images");
    if (images_path.empty()) throw UserError("--images: an IDX image file is required");
    const v1::Checkpoint c = read_checkpoint_file(a.ckpt);
    const int k = c.io().num_classes();
    const int top = static_cast<int>(parse_whole_number("--top", a.get("--top", "3"), 1, k));
    const long limit = parse_whole_number("--limit", a.get("--limit", "0"), 0, 1L << 30);
    const IdxArray idx = read_idx(images_path, 3);
    if (static_cast<int>(idx.dims[1]) != c.io().height() || static_cast<int>(idx.dims[2]) != c.io().width())
      throw user_error(images_path, "images of " + std::to_string(idx.dims[1]) + "x" + std::to_string(idx.dims[2]) +
                                        ", the model takes " + std::to_string(c.io().height()) + "x" +
                                        std::to_string(c.io().width()));
    const int n = static_cast<int>(limit > 0 ? std::min<long>(limit, idx.dims[0]) : idx.dims[0]);
    const size_t per = static_cast<size_t>(idx.dims[1]) * idx.dims[2];
    TrainedModel model(c, a.ckpt, std::min(n, 256));
    const float scale = static_cast<float>(1.0 / (255.0 * c.io().std()));
    const float shift = static_cast<float>(c.io().mean() / c.io().std());
    std::vector<float> batch;
    for (int start = 0; start < n; start += model.batch()) {
      const int count = std::min(model.batch(), n - start);
      batch.resize(per * count);
      for (size_t i = 0; i < per * count; ++i) batch[i] = idx.data[per * start + i] * scale - shift;
      const std::vector<float> logits = model.logits(batch.data(), count);
      for (int r = 0; r < count; ++r) {
        const float* row = logits.data() + static_cast<size_t>(r) * k;
        const std::vector<double> lp = log_softmax(row, k);
        std::vector<int> order(k);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return lp[x] > lp[y]; });
        const std::vector<float> row_values(row, row + k);
        const std::vector<int> best(order.begin(), order.begin() + top);
        const std::string line =
            "{\"index\":" + std::to_string(start + r) +
            ",\"logits\":" + jlist(row_values, [](float v) { return jfloat(v); }) + ",\"top\":" + jlist(best, [&](int j) {
              return "{\"class\":" +
                     jstr(j < c.io().class_names_size() ? c.io().class_names(j) : "class " + std::to_string(j)) +
                     ",\"label\":" + std::to_string(j) + ",\"probability\":" + jnum(std::exp(lp[j])) + "}";
            }) +
            "}";
        std::printf("%s\n", line.c_str());
      }
    }
    return 0;
  });
}

}  // namespace prelude
