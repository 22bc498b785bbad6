// Defaults: apply_defaults (its list of defaults is in spec/job_spec.h) and the
// pieces of it that model expansion reuses (spec/defaults.h). Only absent values
// are filled in; whether explicit values make sense is validate.cc's business.
#include "spec/defaults.h"

#include "spec/job_spec.h"
#include "spec/model_expansion.h"

namespace prelude {

namespace {

constexpr const char* kDefaultDataset = "fashion-mnist";

void default_activation(v1::ActivationSpec* a) {
  if (a->kind() == v1::ActivationSpec::KIND_UNSPECIFIED) a->set_kind(v1::ActivationSpec::PRELU_CHANNELWISE);
  if (!a->has_alpha_init()) a->set_alpha_init(default_alpha(a->kind()));
}

// An activation layer: what it leaves out comes from the model's (defaulted) spec;
// a slope only when the kinds agree, since a PReLU start is no Leaky ReLU slope.
void default_layer_activation(v1::ActivationSpec* a, const v1::ActivationSpec& model) {
  if (a->kind() == v1::ActivationSpec::KIND_UNSPECIFIED) a->set_kind(model.kind());
  if (!a->has_alpha_init())
    a->set_alpha_init(a->kind() == model.kind() ? model.alpha_init() : default_alpha(a->kind()));
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
  if (t->precision() == v1::TrainingSpec::PRECISION_UNSPECIFIED) t->set_precision(v1::TrainingSpec::FP32);
  if (t->conv_algorithm() == v1::TrainingSpec::CONV_ALGORITHM_UNSPECIFIED)
    t->set_conv_algorithm(v1::TrainingSpec::AUTO);
  auto* dp = t->mutable_data_parallel();
  if (!dp->has_check_every_steps()) dp->set_check_every_steps(100);
  if (dp->reduce_precision() == v1::DataParallelSpec::REDUCE_PRECISION_UNSPECIFIED)
    dp->set_reduce_precision(v1::DataParallelSpec::FP32);
  auto* s = t->mutable_lr_schedule();
  if (s->kind() == v1::LrScheduleSpec::KIND_UNSPECIFIED) s->set_kind(v1::LrScheduleSpec::CONSTANT);
  if (s->kind() == v1::LrScheduleSpec::STEP) {
    if (s->step_epochs() == 0) s->set_step_epochs(1);
    if (!s->has_gamma()) s->set_gamma(0.1);
  }
}

// ranks stays absent: absent means "any pool whose ranks divide the batch", which
// keeps hand-started pools of any size working; the Slurm dispatcher fills in 1.
void default_resources(v1::ResourcesSpec* r) {
  if (!r->has_threads_per_rank()) r->set_threads_per_rank(1);
}

}  // namespace

double default_alpha(v1::ActivationSpec::Kind kind) {
  switch (kind) {
    case v1::ActivationSpec::LEAKY_RELU: return 0.01;
    case v1::ActivationSpec::PRELU_SHARED:
    case v1::ActivationSpec::PRELU_CHANNELWISE: return 0.25;
    default: return 0.0;  // RELU: the slope is 0
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

void apply_defaults(v1::JobSpec* spec) {
  default_dataset(spec->mutable_dataset());
  default_model(spec->mutable_model());
  default_training(spec->mutable_training());
  default_resources(spec->mutable_resources());
}

}  // namespace prelude
