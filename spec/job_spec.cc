#include "spec/job_spec.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "common/errors.h"
#include "spec/proto_json_errors.h"
#include "spec/spec_text.h"
#include "spec/strict_json.h"

namespace prelude {

namespace v1 = prelude::v1;
namespace pb = google::protobuf;

namespace {

// ---------------------------------------------------------------------------
// Limits. Anything beyond them is a mistake in the job, not a job to attempt.

constexpr double kMaxEpochs = 1000;
constexpr int kMaxBatch = 65536;
constexpr double kMaxLearningRate = 10;
constexpr int kMaxChannels = 4096;
constexpr int kMaxFeatures = 65536;
constexpr int kMaxKernel = 15;
constexpr int kMaxStride = 8;
constexpr int kMaxWidth = 1024;
constexpr int kMinPlainDepth = 3;
constexpr int kMaxPlainDepth = 200;
constexpr int kMaxLayers = 1000;
constexpr int kMaxStepEpochs = 1000;
constexpr size_t kMaxNameChars = 200;
constexpr size_t kMaxPathBytes = 4096;
constexpr size_t kMaxJobFileBytes = 16 << 20;

constexpr const char* kDefaultDataset = "fashion-mnist";
constexpr const char* kCnnSmall = "cnn-small";
constexpr const char* kPlainPrefix = "plain-";

// ---------------------------------------------------------------------------
// Small helpers.

// Number of characters (UTF-8 code points) in s.
size_t char_count(const std::string& s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// ---------------------------------------------------------------------------
// Defaults.

double default_alpha(v1::ActivationSpec::Kind kind) {
  switch (kind) {
    case v1::ActivationSpec::LEAKY_RELU: return 0.01;
    case v1::ActivationSpec::PRELU_SHARED:
    case v1::ActivationSpec::PRELU_CHANNELWISE: return 0.25;
    default: return 0.0;  // RELU: the slope is 0
  }
}

// The depth N of a "plain-N" preset (digits only, no leading zero), 0 for any
// other string. The range is checked by check_preset.
int plain_depth(const std::string& preset) {
  if (!starts_with(preset, kPlainPrefix)) return 0;
  const std::string digits = preset.substr(std::strlen(kPlainPrefix));
  if (digits.empty() || digits.size() > 4 || digits[0] == '0') return 0;
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return 0;
  return std::stoi(digits);
}

void default_activation(v1::ActivationSpec* a) {
  if (a->kind() == v1::ActivationSpec::KIND_UNSPECIFIED) a->set_kind(v1::ActivationSpec::PRELU_CHANNELWISE);
  if (!a->has_alpha_init()) a->set_alpha_init(default_alpha(a->kind()));
}

// An activation layer: what it leaves out comes from the model's (defaulted) spec;
// a slope only when the kinds agree, since a PReLU start is no Leaky ReLU slope.
void default_layer_activation(v1::ActivationSpec* a, const v1::ActivationSpec& model) {
  if (a->kind() == v1::ActivationSpec::KIND_UNSPECIFIED) a->set_kind(model.kind());
  if (!a->has_alpha_init()) a->set_alpha_init(a->kind() == model.kind() ? model.alpha_init() : default_alpha(a->kind()));
}

void default_layer(v1::LayerSpec* layer, const v1::ActivationSpec& model_activation) {
  switch (layer->layer_case()) {
    case v1::LayerSpec::kConv: {
      auto* c = layer->mutable_conv();
      if (c->kernel() == 0) c->set_kernel(3);
      if (!c->has_padding()) c->set_padding(c->kernel() / 2);
      if (c->stride() == 0) c->set_stride(1);
      break;
    }
    case v1::LayerSpec::kPool: {
      auto* p = layer->mutable_pool();
      if (p->kind() == v1::PoolLayerSpec::KIND_UNSPECIFIED) p->set_kind(v1::PoolLayerSpec::MAX);
      if (p->kind() == v1::PoolLayerSpec::GLOBAL_AVG) break;  // takes no kernel or stride
      if (p->kernel() == 0) p->set_kernel(2);
      if (p->stride() == 0) p->set_stride(p->kernel());
      break;
    }
    case v1::LayerSpec::kActivation:
      default_layer_activation(layer->mutable_activation(), model_activation);
      break;
    default:
      break;  // fc has no defaults; an empty layer is a validation error
  }
}

void default_model(v1::ModelSpec* m) {
  if (m->preset().empty() && m->layers_size() == 0) m->set_preset(kCnnSmall);
  if (plain_depth(m->preset()) > 0 && m->width() == 0) m->set_width(16);
  default_activation(m->mutable_activation());
  auto* init = m->mutable_init();
  if (init->scheme() == v1::InitSpec::SCHEME_UNSPECIFIED) init->set_scheme(v1::InitSpec::KAIMING_NORMAL);
  if (init->mode() == v1::InitSpec::MODE_UNSPECIFIED) init->set_mode(v1::InitSpec::FAN_IN);
  if (init->kaiming_factor() == v1::InitSpec::KAIMING_FACTOR_UNSPECIFIED)
    init->set_kaiming_factor(v1::InitSpec::ONE_PLUS_A_SQUARED);
  for (auto& layer : *m->mutable_layers()) default_layer(&layer, m->activation());
}

void default_dataset(v1::DatasetSpec* d) {
  const bool any_path = !d->train_images().empty() || !d->train_labels().empty() || !d->test_images().empty() ||
                        !d->test_labels().empty();
  if (d->name().empty() && !any_path) d->set_name(kDefaultDataset);
  double mean = 0, std = 1;  // an unknown data set is taken as already normalised
  if (d->name() == "fashion-mnist") {
    mean = 0.2860;
    std = 0.3530;
  } else if (d->name() == "mnist") {
    mean = 0.1307;
    std = 0.3081;
  }
  if (!d->has_mean()) d->set_mean(mean);
  if (!d->has_std()) d->set_std(std);
}

void default_training(v1::TrainingSpec* t) {
  if (!t->has_epochs()) t->set_epochs(1);
  if (!t->has_batch_size()) t->set_batch_size(64);
  if (!t->has_learning_rate()) t->set_learning_rate(0.01);
  if (!t->has_momentum()) t->set_momentum(0.9);
  if (!t->has_weight_decay()) t->set_weight_decay(5e-4);
  if (!t->has_seed()) t->set_seed(1);
  if (!t->has_log_every_steps()) t->set_log_every_steps(50);
  auto* dp = t->mutable_data_parallel();
  if (!dp->has_check_every_steps()) dp->set_check_every_steps(100);
  auto* s = t->mutable_lr_schedule();
  if (s->kind() == v1::LrScheduleSpec::KIND_UNSPECIFIED) s->set_kind(v1::LrScheduleSpec::CONSTANT);
  if (s->kind() == v1::LrScheduleSpec::STEP) {
    if (s->step_epochs() == 0) s->set_step_epochs(1);
    if (!s->has_gamma()) s->set_gamma(0.1);
  }
}

// ---------------------------------------------------------------------------
// Validation. Each check throws a UserError naming the field.

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
    fail(where, "must be at most " + std::to_string(kMaxNameChars) + " characters, got " + std::to_string(char_count(s)));
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

void check_preset(const std::string& preset) {
  if (preset == kCnnSmall) return;
  const int depth = plain_depth(preset);
  if (depth == 0)
    fail("model.preset", "unknown preset " + quoted(preset) + "; valid: cnn-small, plain-N (N from " +
                             std::to_string(kMinPlainDepth) + " to " + std::to_string(kMaxPlainDepth) + ")");
  if (depth < kMinPlainDepth || depth > kMaxPlainDepth)
    fail("model.preset", "plain-N needs N from " + std::to_string(kMinPlainDepth) + " to " +
                             std::to_string(kMaxPlainDepth) + ", got " + quoted(preset));
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
      check_between(where + ".conv.outChannels", c.out_channels(), 1, kMaxChannels);
      check_between(where + ".conv.kernel", c.kernel(), 1, kMaxKernel);
      check_between(where + ".conv.padding", c.has_padding() ? c.padding() : c.kernel() / 2, 0, c.kernel() - 1);
      check_between(where + ".conv.stride", c.stride(), 1, kMaxStride);
      break;
    }
    case v1::LayerSpec::kPool: {
      const auto& p = layer.pool();
      if (p.kind() == v1::PoolLayerSpec::GLOBAL_AVG) break;  // kernel and stride are ignored
      check_between(where + ".pool.kernel", p.kernel(), 1, kMaxKernel);
      check_between(where + ".pool.stride", p.stride(), 1, kMaxStride);
      break;
    }
    case v1::LayerSpec::kFc:
      check_between(where + ".fc.outFeatures", layer.fc().out_features(), 1, kMaxFeatures);
      break;
    case v1::LayerSpec::kActivation:
      check_activation(where + ".activation", layer.activation());
      break;
    default:
      fail(where, "empty layer; give one of conv, activation, pool or fc");
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
  check_between("training.dataParallel.bucketBytes", t.data_parallel().bucket_bytes(), 0, int64_t{1} << 32);
  check_positive("training.dataParallel.checkEverySteps", int64_t{t.data_parallel().check_every_steps()}, INT32_MAX);

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

// ---------------------------------------------------------------------------
// Expansion.

v1::LayerSpec conv3x3(int channels) {
  v1::LayerSpec layer;
  auto* c = layer.mutable_conv();
  c->set_out_channels(channels);
  c->set_kernel(3);
  c->set_padding(1);
  c->set_stride(1);
  return layer;
}

v1::LayerSpec activation(const v1::ActivationSpec& spec) {
  v1::LayerSpec layer;
  *layer.mutable_activation() = spec;
  return layer;
}

v1::LayerSpec pool(v1::PoolLayerSpec::Kind kind) {
  v1::LayerSpec layer;
  auto* p = layer.mutable_pool();
  p->set_kind(kind);
  if (kind != v1::PoolLayerSpec::GLOBAL_AVG) {
    p->set_kernel(2);
    p->set_stride(2);
  }
  return layer;
}

v1::LayerSpec fc(int features) {
  v1::LayerSpec layer;
  layer.mutable_fc()->set_out_features(features);
  return layer;
}

}  // namespace

// ---------------------------------------------------------------------------

v1::JobSpec parse_job_json(const std::string& json, const std::string& source) {
  v1::JobSpec spec;
  parse_strict_json(json, source.empty() ? "job" : source, &spec);
  return spec;
}

std::string read_spec_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw user_error(path, std::string("cannot read: ") + std::strerror(errno));
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    text.append(buf, n);
    if (text.size() > kMaxJobFileBytes) {
      std::fclose(f);
      throw user_error(path, "too large for a job file (more than " + std::to_string(kMaxJobFileBytes >> 20) + " MiB)");
    }
  }
  const int read_errno = std::ferror(f) ? errno : 0;  // e.g. EISDIR for a directory
  std::fclose(f);
  if (read_errno != 0) throw user_error(path, std::string("cannot read: ") + std::strerror(read_errno));
  return text;
}

v1::JobSpec load_job_file(const std::string& path) { return parse_job_json(read_spec_file(path), path); }

void apply_defaults(v1::JobSpec* spec) {
  default_dataset(spec->mutable_dataset());
  default_model(spec->mutable_model());
  default_training(spec->mutable_training());
}

void validate_job_spec(const v1::JobSpec& spec) {
  check_enum_values(spec, "");
  check_text("name", spec.name());
  check_dataset(spec.dataset(), spec.training().skip_test());
  check_model(spec.model());
  check_training(spec.training());
}

v1::JobSpec load_and_check_job(const std::string& path) {
  v1::JobSpec spec = load_job_file(path);
  apply_defaults(&spec);
  try {
    validate_job_spec(spec);
  } catch (const UserError& e) {
    throw UserError(path + ": " + e.what());
  }
  return spec;
}

std::vector<v1::LayerSpec> expand_model(const v1::ModelSpec& model, int num_classes) {
  if (num_classes < 1) throw std::invalid_argument("expand_model: num_classes must be positive");
  v1::ModelSpec m = model;
  default_model(&m);  // a no-op for a defaulted spec
  if (m.layers_size() > 0) return {m.layers().begin(), m.layers().end()};

  check_preset(m.preset());
  const v1::ActivationSpec& a = m.activation();
  std::vector<v1::LayerSpec> layers;
  if (m.preset() == kCnnSmall) {
    layers = {conv3x3(32), activation(a), conv3x3(32), activation(a), pool(v1::PoolLayerSpec::MAX),
              conv3x3(64), activation(a), conv3x3(64), activation(a), pool(v1::PoolLayerSpec::MAX),
              fc(256),     activation(a), fc(num_classes)};
    return layers;
  }
  // plain-N, as torch_baseline.py's plain(): N-1 convolutions, then the classifier.
  const int depth = plain_depth(m.preset());
  for (int i = 0; i < depth - 1; ++i) {
    layers.push_back(conv3x3(m.width()));
    layers.push_back(activation(a));
    if (i == depth / 3 || i == 2 * depth / 3) layers.push_back(pool(v1::PoolLayerSpec::MAX));
  }
  layers.push_back(pool(v1::PoolLayerSpec::GLOBAL_AVG));
  layers.push_back(fc(num_classes));
  return layers;
}

std::string describe_layers(const std::vector<v1::LayerSpec>& layers) {
  std::string out;
  for (const auto& layer : layers) {
    std::string item;
    switch (layer.layer_case()) {
      case v1::LayerSpec::kConv: {
        const auto& c = layer.conv();
        const int padding = c.has_padding() ? c.padding() : c.kernel() / 2;
        item = "conv" + std::to_string(c.kernel()) + "x" + std::to_string(c.kernel()) + "(" +
               std::to_string(c.out_channels());
        if (c.stride() > 1) item += ",s" + std::to_string(c.stride());
        if (padding != c.kernel() / 2) item += ",p" + std::to_string(padding);
        item += ")";
        break;
      }
      case v1::LayerSpec::kActivation: {
        const auto& a = layer.activation();
        switch (a.kind()) {
          case v1::ActivationSpec::RELU: item = "relu"; break;
          case v1::ActivationSpec::LEAKY_RELU: item = "leaky"; break;
          case v1::ActivationSpec::PRELU_SHARED: item = "prelu-shared"; break;
          case v1::ActivationSpec::PRELU_CHANNELWISE: item = "prelu-cw"; break;
          default: item = "activation"; break;
        }
        if (a.has_alpha_init() && a.alpha_init() != default_alpha(a.kind()))
          item += "(a=" + format_number(a.alpha_init()) + ")";
        break;
      }
      case v1::LayerSpec::kPool: {
        const auto& p = layer.pool();
        if (p.kind() == v1::PoolLayerSpec::GLOBAL_AVG) {
          item = "globalavgpool";
          break;
        }
        item = (p.kind() == v1::PoolLayerSpec::AVG ? "avgpool" : "maxpool") + std::to_string(p.kernel());
        if (p.stride() != p.kernel()) item += "(s" + std::to_string(p.stride()) + ")";
        break;
      }
      case v1::LayerSpec::kFc:
        item = "fc" + std::to_string(layer.fc().out_features());
        break;
      default:
        item = "?";
        break;
    }
    if (!out.empty()) out += ' ';
    out += item;
  }
  return out;
}

}  // namespace prelude
