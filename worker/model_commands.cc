#include "worker/model_commands.h"

#include <omp.h>

#include <algorithm>
#include <climits>
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
#include "engine/memory_budget.h"
#include "spec/data_files.h"
#include "spec/idx.h"

namespace prelude {

namespace v1 = prelude::v1;

namespace {

const std::vector<FlagSpec> kExportFlags = {
    {"--format", "F", "onnx (opset 13: input 'pixels' N x C x H x W in [0, 1], output 'logits'), or prelude "
                      "(the checkpoint without optimizer state)"},
    {"-o", "FILE", "where to write it (atomically)"},
};
const std::vector<FlagSpec> kEvalFlags = {
    {"--data-root", "DIR", "where data sets live (default $PRELUDE_DATA_ROOT or /usr/share/datasets)"},
    {"--dataset", "NAME", "evaluate on this installed data set's test files instead of the job's"},
    {"--threads", "N", "compute threads (default: OMP_NUM_THREADS or all cores)"},
};
const std::vector<FlagSpec> kPredictFlags = {
    {"--images", "IDX", "an IDX image file (gzip or raw), of the model's image size"},
    {"--top", "K", "classes to list per image, most probable first (default 3)"},
    {"--limit", "N", "only the first N images (default all)"},
    {"--threads", "N", "compute threads (default: OMP_NUM_THREADS or all cores)"},
};

struct Command {
  const char* name;
  const char* synopsis;
  const char* what;
  const std::vector<FlagSpec>& flags;
};
const Command kExport{"export", "export CKPT --format onnx|prelude -o FILE", "Writes a trained model for other tools.\n",
                      kExportFlags};
const Command kEval{"eval", "eval CKPT [--data-root DIR] [--dataset NAME] [--threads N]",
                    "Prints one JSON object: test loss and accuracy, per-class accuracy and the confusion\n"
                    "matrix (rows: true class, columns: predicted).\n",
                    kEvalFlags};
const Command kPredict{"predict", "predict CKPT --images IDX [--top K] [--limit N] [--threads N]",
                       "Prints one JSON line per image: its logits and its top K classes with probabilities.\n",
                       kPredictFlags};

// A command's checkpoint and flag values (the last of a flag given twice counts).
struct Args {
  std::string ckpt;
  std::map<std::string, std::string> flags;
  bool help = false;
  std::string get(const std::string& f, const std::string& fallback = "") const {
    auto it = flags.find(f);
    return it == flags.end() ? fallback : it->second;
  }
};

Args parse(const Command& cmd, int argc, char** argv) {
  Args a;
  FlagReader reader({argv, argv + argc}, cmd.flags);
  while (const auto item = reader.next()) {
    switch (item->kind) {
      case FlagReader::Item::kHelp:
        a.help = true;
        return a;
      case FlagReader::Item::kUnknown:
        throw UserError("unknown option '" + item->text + "'");
      case FlagReader::Item::kArgument:
        if (!a.ckpt.empty()) throw UserError("more than one checkpoint given");
        a.ckpt = item->text;
        break;
      case FlagReader::Item::kFlag:
        a.flags[item->text] = item->value;
        break;
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

// Runs a command: --help, or its body with the exit code of what went wrong.
int run(const Command& cmd, int argc, char** argv, const std::function<void(const Args&)>& body) {
  try {
    const Args a = parse(cmd, argc, argv);
    if (a.help) {
      std::printf("usage: prelude-worker %s\n\n%s%s", cmd.synopsis, cmd.what, flag_list(cmd.flags).c_str());
      return 0;
    }
    body(a);
    return 0;
  } catch (const UserError& e) {
    std::fprintf(stderr, "prelude-worker %s: %s\n", cmd.name, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prelude-worker %s: internal error: %s\n", cmd.name, e.what());
    return 1;
  }
}

}  // namespace

int export_main(int argc, char** argv) {
  return run(kExport, argc, argv, [](const Args& a) {
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
  });
}

int eval_main(int argc, char** argv) {
  return run(kEval, argc, argv, [](const Args& a) {
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
  });
}

int predict_main(int argc, char** argv) {
  return run(kPredict, argc, argv, [](const Args& a) {
    const std::string images_path = a.get("--images");
    if (images_path.empty()) throw UserError("--images: an IDX image file is required");
    const v1::Checkpoint c = read_checkpoint_file(a.ckpt);
    const int k = c.io().num_classes();
    const int top = static_cast<int>(parse_whole_number("--top", a.get("--top", "3"), 1, k));
    const long limit = parse_whole_number("--limit", a.get("--limit", "0"), 0, 1L << 30);
    // Only the first --limit images are read, and no more than this process may hold.
    const MemoryBudget budget = this_rank_memory_budget();
    const IdxArray idx = read_idx(images_path, 3,
                                  {static_cast<uint64_t>(limit), budget.bytes, "this process's memory budget of " +
                                                                                    budget.describe()});
    if (static_cast<int>(idx.dims[1]) != c.io().height() || static_cast<int>(idx.dims[2]) != c.io().width())
      throw user_error(images_path, "images of " + std::to_string(idx.dims[1]) + "x" + std::to_string(idx.dims[2]) +
                                        ", the model takes " + std::to_string(c.io().height()) + "x" +
                                        std::to_string(c.io().width()));
    if (idx.items > static_cast<uint64_t>(INT32_MAX))
      throw user_error(images_path,
                       std::to_string(idx.items) + " images, too many to predict in one go; give a --limit");
    const int n = static_cast<int>(idx.items);
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
  });
}

}  // namespace prelude
