// Validation: validate_job_spec (spec/job_spec.h), the limits a job must keep and the
// checks of a defaulted JobSpec, each throwing a UserError that names the field in
// JSON path form. Preset names are checked by model_expansion.cc, which knows them.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <utility>

#include "common/errors.h"
#include "spec/job_spec.h"
#include "spec/model_expansion.h"
#include "spec/proto_json_errors.h"
#include "spec/spec_text.h"

namespace prelude {

namespace {

// Limits. Anything beyond them is a mistake in the job, not a job to attempt.
constexpr double kMaxEpochs = 1000;
constexpr int kMaxBatch = 65536;
constexpr double kMaxLearningRate = 10;
constexpr int kMaxChannels = 4096;
constexpr int kMaxFeatures = 65536;
constexpr int kMaxKernel = 15;
constexpr int kMaxStride = 8;
constexpr int kMaxWidth = 1024;
constexpr int kMaxLayers = 1000;
constexpr int kMaxStepEpochs = 1000;
constexpr size_t kMaxNameChars = 200;
constexpr size_t kMaxPathBytes = 4096;

// Number of characters (UTF-8 code points) in s.
size_t char_count(const std::string& s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

[[noreturn]] void fail(const std::string& where, const std::string& reason) { throw user_error(where, reason); }

void check_finite(const std::string& where, double v) {
  if (!std::isfinite(v)) fail(where, "must be a finite number, got " + format_number(v));
}

// 0 < v <= max (and finite).
void check_positive(const std::string& where, double v, double max) {
  check_finite(where, v);
  if (v <= 0) fail(where, "must be positive, got " + format_number(v));
  if (v > max) fail(where, "must be at most " + format_number(max) + ", got " + format_number(v));
}

void check_positive(const std::string& where, int64_t v, int64_t max) {
  if (v <= 0) fail(where, "must be positive, got " + std::to_string(v));
  if (v > max) fail(where, "must be at most " + std::to_string(max) + ", got " + std::to_string(v));
}

void check_not_negative(const std::string& where, double v) {
  check_finite(where, v);
  if (v < 0) fail(where, "must not be negative, got " + format_number(v));
}

void check_not_negative(const std::string& where, int64_t v) {
  if (v < 0) fail(where, "must not be negative, got " + std::to_string(v));
}

void check_between(const std::string& where, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    fail(where, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + std::to_string(v));
}

void check_text(const std::string& where, const std::string& s) {
  if (char_count(s) > kMaxNameChars)
    fail(where,
         "must be at most " + std::to_string(kMaxNameChars) + " characters, got " + std::to_string(char_count(s)));
  if (std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; }))
    fail(where, "must not contain control characters or line breaks");
}

// A file below the data root: relative, and no ".." that could leave it.
void check_data_path(const std::string& where, const std::string& path) {
  if (path.size() > kMaxPathBytes) fail(where, "must be at most " + std::to_string(kMaxPathBytes) + " bytes long");
  if (path.find('\0') != std::string::npos) fail(where, "must not contain NUL characters");
  if (path[0] == '/') fail(where, "must be relative to the data root, got " + quoted(path));
  for (size_t begin = 0; begin <= path.size();) {
    size_t end = path.find('/', begin);
    if (end == std::string::npos) end = path.size();
    if (path.compare(begin, end - begin, "..") == 0)
      fail(where, "must stay inside the data root (no \"..\"), got " + quoted(path));
    begin = end + 1;
  }
}

void check_activation(const std::string& where, const v1::ActivationSpec& a) {
  if (a.kind() == v1::ActivationSpec::KIND_UNSPECIFIED)
    fail(where + ".kind", "must be set; valid: " + enum_value_names(v1::ActivationSpec::Kind_descriptor()));
  if (!a.has_alpha_init()) return;
  check_finite(where + ".alphaInit", a.alpha_init());
  // apply_defaults gives RELU an alpha_init of 0, so 0 is what "absent" looks like.
  if (a.kind() == v1::ActivationSpec::RELU && a.alpha_init() != 0)
    fail(where + ".alphaInit", "not allowed for RELU (its slope is 0)");
}

const char* layer_kind_name(const v1::LayerSpec& layer) {
  switch (layer.layer_case()) {
    case v1::LayerSpec::kConv: return "conv";
    case v1::LayerSpec::kActivation: return "activation";
    case v1::LayerSpec::kPool: return "pool";
    case v1::LayerSpec::kFc: return "fc";
    default: return "an empty layer";
  }
}

void check_layer(const std::string& where, const v1::LayerSpec& layer) {
  switch (layer.layer_case()) {
    case v1::LayerSpec::kConv: {
      const auto& c = layer.conv();
      check_between(join_path(where, "conv.outChannels"), c.out_channels(), 1, kMaxChannels);
      check_between(join_path(where, "conv.kernel"), c.kernel(), 1, kMaxKernel);
      check_between(join_path(where, "conv.padding"), c.has_padding() ? c.padding() : c.kernel() / 2, 0,
                    c.kernel() - 1);
      check_between(join_path(where, "conv.stride"), c.stride(), 1, kMaxStride);
      break;
    }
    case v1::LayerSpec::kPool: {
      const auto& p = layer.pool();
      if (p.kind() == v1::PoolLayerSpec::GLOBAL_AVG) break;  // kernel and stride are ignored
      check_between(join_path(where, "pool.kernel"), p.kernel(), 1, kMaxKernel);
      check_between(join_path(where, "pool.stride"), p.stride(), 1, kMaxStride);
      break;
    }
    case v1::LayerSpec::kFc:
      check_between(join_path(where, "fc.outFeatures"), layer.fc().out_features(), 1, kMaxFeatures);
      break;
    case v1::LayerSpec::kActivation:
      check_activation(join_path(where, "activation"), layer.activation());
      break;
    default:
      fail(where.empty() ? "layer" : where, "empty layer; give one of conv, activation, pool or fc");
  }
}

void check_model(const v1::ModelSpec& m) {
  check_activation("model.activation", m.activation());
  if (!m.preset().empty() && m.layers_size() > 0)
    fail("model", "give either preset or layers, not both (preset is " + quoted(m.preset()) + ")");
  if (m.preset().empty() && m.layers_size() == 0) fail("model", "give a preset or layers");
  if (!m.preset().empty()) check_preset(m.preset());
  if (plain_depth(m.preset()) > 0)
    check_between("model.width", m.width(), 1, kMaxWidth);
  else if (m.width() != 0)
    fail("model.width", "only used by plain-N presets, got " + std::to_string(m.width()));

  if (m.layers_size() == 0) return;
  if (m.layers_size() > kMaxLayers)
    fail("model.layers", "at most " + std::to_string(kMaxLayers) + " layers, got " + std::to_string(m.layers_size()));
  for (int i = 0; i < m.layers_size(); ++i) check_layer(indexed("model.layers", i), m.layers(i));
  const int last = m.layers_size() - 1;
  if (m.layers(last).layer_case() != v1::LayerSpec::kFc)
    fail(indexed("model.layers", last), std::string("the last layer must be fc (its outFeatures are the class "
                                                    "count), got ") + layer_kind_name(m.layers(last)));
}

void check_dataset(const v1::DatasetSpec& d, bool skip_test) {
  if (!d.name().empty()) {
    check_text("dataset.name", d.name());
    const bool plain_name =
        d.name()[0] != '.' && std::all_of(d.name().begin(), d.name().end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        });
    if (!plain_name)
      fail("dataset.name", "must be a data set directory name such as \"fashion-mnist\" (letters, digits, "
                           "'-', '_', '.'), got " + quoted(d.name()));
  }
  const std::pair<const char*, const std::string*> files[] = {{"dataset.trainImages", &d.train_images()},
                                                              {"dataset.trainLabels", &d.train_labels()},
                                                              {"dataset.testImages", &d.test_images()},
                                                              {"dataset.testLabels", &d.test_labels()}};
  for (size_t i = 0; i < 4; ++i) {
    const auto& [where, path] = files[i];
    const bool needed = d.name().empty() && (i < 2 || !skip_test);
    if (path->empty() && needed) fail(where, "required when dataset.name is not given");
    if (!path->empty()) check_data_path(where, *path);
  }
  if (d.has_mean()) check_finite("dataset.mean", d.mean());
  if (d.has_std()) check_positive("dataset.std", d.std(), HUGE_VAL);
  check_not_negative("dataset.trainLimit", int64_t{d.train_limit()});
  check_not_negative("dataset.testLimit", int64_t{d.test_limit()});
}

void check_training(const v1::TrainingSpec& t) {
  check_positive("training.epochs", t.epochs(), kMaxEpochs);
  check_positive("training.batchSize", int64_t{t.batch_size()}, kMaxBatch);
  check_positive("training.learningRate", t.learning_rate(), kMaxLearningRate);
  check_finite("training.momentum", t.momentum());
  if (t.momentum() < 0 || t.momentum() >= 1)
    fail("training.momentum", "must be in [0, 1), got " + format_number(t.momentum()));
  check_not_negative("training.weightDecay", t.weight_decay());
  check_not_negative("training.maxSteps", t.max_steps());
  check_positive("training.logEverySteps", int64_t{t.log_every_steps()}, INT32_MAX);
  check_between("training.stallWindowSteps", int64_t{t.stall_window_steps()}, 0, 1000000);
  check_between("training.checkpoint.everySteps", int64_t{t.checkpoint().every_steps()}, 0, INT32_MAX);
  check_between("training.dataParallel.bucketBytes", t.data_parallel().bucket_bytes(), 0, int64_t{1} << 32);
  check_positive("training.dataParallel.checkEverySteps", int64_t{t.data_parallel().check_every_steps()}, INT32_MAX);
  // A number in the JSON reaches an open proto3 enum unchecked.
  if (!v1::TrainingSpec::ConvAlgorithm_IsValid(t.conv_algorithm()))
    fail("training.convAlgorithm", "must be AUTO, DIRECT or WINOGRAD, got " + std::to_string(t.conv_algorithm()));
  // Known before any CPU is: oneDNN 2.6 has Winograd convolutions in f32 only.
  if (t.conv_algorithm() == v1::TrainingSpec::WINOGRAD && t.precision() == v1::TrainingSpec::BF16)
    fail("training.convAlgorithm", "WINOGRAD needs training.precision FP32 (oneDNN has no bf16 Winograd "
                                   "convolution); use AUTO or DIRECT with BF16");

  const auto& s = t.lr_schedule();
  if (s.kind() == v1::LrScheduleSpec::STEP) {
    check_between("training.lrSchedule.stepEpochs", s.step_epochs(), 1, kMaxStepEpochs);
    check_positive("training.lrSchedule.gamma", s.gamma(), 1.0);
  } else {
    if (s.step_epochs() != 0) fail("training.lrSchedule.stepEpochs", "only used by the STEP schedule");
    if (s.has_gamma()) fail("training.lrSchedule.gamma", "only used by the STEP schedule");
  }
  if (s.kind() == v1::LrScheduleSpec::COSINE) {
    check_not_negative("training.lrSchedule.minLr", s.min_lr());
    if (s.min_lr() > t.learning_rate())
      fail("training.lrSchedule.minLr", "must not exceed training.learningRate (" +
                                            format_number(t.learning_rate()) + "), got " + format_number(s.min_lr()));
  } else if (s.min_lr() != 0) {
    fail("training.lrSchedule.minLr", "only used by the COSINE schedule");
  }
}

// A pool is one MPI world on one or more hosts; beyond these a job is a mistake.
constexpr int kMaxRanks = 65536;
constexpr int kMaxThreadsPerRank = 1024;

void check_resources(const v1::ResourcesSpec& r, const v1::TrainingSpec& t) {
  if (r.has_ranks()) {
    check_between("resources.ranks", r.ranks(), 1, kMaxRanks);
    // Every rank trains an equal share of the global batch.
    if (t.batch_size() % r.ranks() != 0)
      fail("resources.ranks", "training.batchSize (" + std::to_string(t.batch_size()) +
                                  ") must divide by the ranks, got " + std::to_string(r.ranks()) + " ranks");
  }
  if (r.has_threads_per_rank()) check_between("resources.threadsPerRank", r.threads_per_rank(), 1, kMaxThreadsPerRank);
}

}  // namespace

void validate_layer(const v1::LayerSpec& layer, const std::string& where) {
  check_enum_values(layer, where);
  check_layer(where, layer);
}

void validate_job_spec(const v1::JobSpec& spec) {
  check_enum_values(spec, "");
  check_text("name", spec.name());
  check_dataset(spec.dataset(), spec.training().skip_test());
  check_model(spec.model());
  check_training(spec.training());
  check_resources(spec.resources(), spec.training());
}

}  // namespace prelude
