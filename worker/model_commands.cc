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

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/struct.pb.h>

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

std::string json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

google::protobuf::Value num(double v) {
  google::protobuf::Value x;
  x.set_number_value(v);
  return x;
}
google::protobuf::Value str(const std::string& v) {
  google::protobuf::Value x;
  x.set_string_value(v);
  return x;
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
    google::protobuf::Struct out;
    auto& fields = *out.mutable_fields();
    fields["checkpoint"] = str(a.ckpt);
    fields["step"] = num(static_cast<double>(c.progress().step()));
    fields["images"] = num(static_cast<double>(cm.total()));
    fields["test_loss"] = num(cm.total() ? cm.loss_sum / cm.total() : 0.0);
    fields["test_accuracy"] = num(cm.accuracy());
    const std::vector<std::string> names(c.io().class_names().begin(), c.io().class_names().end());
    const std::vector<double> per_class = cm.per_class_accuracy();
    auto* pc = fields["per_class_accuracy"].mutable_list_value();
    auto* matrix = fields["confusion_matrix"].mutable_list_value();
    for (int i = 0; i < cm.k; ++i) {
      google::protobuf::Value entry;
      auto& e = *entry.mutable_struct_value()->mutable_fields();
      e["class"] = str(i < static_cast<int>(names.size()) ? names[i] : "class " + std::to_string(i));
      e["accuracy"] = num(per_class[i]);
      *pc->add_values() = entry;
      auto* row = matrix->add_values()->mutable_list_value();
      for (int j = 0; j < cm.k; ++j) *row->add_values() = num(static_cast<double>(cm.counts[i * cm.k + j]));
    }
    std::printf("%s\n", json(out).c_str());
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
        google::protobuf::Struct line;
        auto& f = *line.mutable_fields();
        f["index"] = num(start + r);
        auto* l = f["logits"].mutable_list_value();
        for (int j = 0; j < k; ++j) *l->add_values() = num(row[j]);
        auto* t = f["top"].mutable_list_value();
        for (int j = 0; j < top; ++j) {
          google::protobuf::Value e;
          auto& ef = *e.mutable_struct_value()->mutable_fields();
          ef["class"] = str(order[j] < c.io().class_names_size() ? c.io().class_names(order[j])
                                                                 : "class " + std::to_string(order[j]));
          ef["label"] = num(order[j]);
          ef["probability"] = num(std::exp(lp[order[j]]));
          *t->add_values() = e;
        }
        std::printf("%s\n", json(line).c_str());
      }
    }
    return 0;
  });
}

}  // namespace prelude
