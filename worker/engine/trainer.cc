#include "engine/trainer.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "engine/dataset.h"
#include "engine/errors.h"
#include "engine/job_spec.h"
#include "engine/model.h"
#include "engine/sgd.h"

namespace prelude {

namespace v1 = prelude::v1;
using Clock = std::chrono::steady_clock;

std::string event_to_json(const v1::TrainingEvent& event) {
  google::protobuf::util::JsonPrintOptions opt;
  opt.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(event, &out, opt);
  return out;
}

namespace {

struct Accum {
  double loss_sum = 0;
  int64_t correct = 0, count = 0;
  void add(const LossResult& r) {
    loss_sum += r.loss_sum;
    correct += r.correct;
    count += r.count;
  }
  double loss() const { return count ? loss_sum / count : 0; }
  double accuracy() const { return count ? static_cast<double>(correct) / count : 0; }
};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

template <typename... Args>
std::string fmt(const char* f, Args... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

class Run {
 public:
  Run(const v1::JobSpec& spec, const RunOptions& options, EventSink& sink)
      : spec_(spec), options_(options), sink_(sink), t_(spec.training()) {}

  v1::TrainingEvent go() {
    const auto start = Clock::now();
    load_data();
    build();
    const int64_t b = t_.batch_size();
    const int64_t steps_per_epoch = train_.n / b;
    if (steps_per_epoch == 0)
      throw user_error("training.batchSize", fmt("%lld is larger than the training set (%d images)",
                                                  static_cast<long long>(b), train_.n));
    int64_t total = static_cast<int64_t>(std::ceil(t_.epochs() * steps_per_epoch));
    if (t_.max_steps() > 0) total = std::min<int64_t>(total, t_.max_steps());
    LrSchedule sched = schedule(steps_per_epoch, total);
    Sgd sgd(net_->params(), {t_.momentum(), t_.weight_decay(), t_.weight_decay_on_slopes()});
    sink_.on_progress(fmt("%s: %lld steps of batch %lld (%lld per epoch), %lld parameters",
                          spec_.name().c_str(), static_cast<long long>(total), static_cast<long long>(b),
                          static_cast<long long>(steps_per_epoch),
                          static_cast<long long>(net_->params().logical_count())));
    diagnostics(0);

    std::vector<int32_t> labels(b);
    int64_t step = 0;
    double train_seconds = 0;
    Accum window, epoch_acc, last_epoch;
    for (int epoch = 0; step < total; ++epoch) {
      const auto perm = epoch_permutation(train_.n, static_cast<uint64_t>(t_.seed()), epoch);
      epoch_acc = Accum();
      for (int64_t i = 0; i < steps_per_epoch && step < total; ++i) {
        if (options_.should_stop && options_.should_stop()) {
          sink_.on_progress("stopped at step " + std::to_string(step));
          total = step;
          break;
        }
        const double lr = sched.at(step);
        const auto t0 = Clock::now();
        gather_batch(train_, perm.data() + i * b, static_cast<int>(b), net_->input_data(), labels.data());
        net_->forward();
        const LossResult r = net_->loss(labels.data(), static_cast<int>(b), true, static_cast<double>(b));
        net_->backward();
        sgd.step(lr);
        if (step >= kWarmupSteps) train_seconds += seconds_since(t0);
        ++step;
        if (!std::isfinite(r.loss_sum))
          throw DivergedError(fmt("training diverged: the loss is %g at step %lld", r.loss_sum,
                                  static_cast<long long>(step)));
        window.add(r);
        epoch_acc.add(r);
        if (step % t_.log_every_steps() == 0 || step == total) {
          v1::TrainingEvent e;
          e.set_event("step");
          e.set_epoch(epoch + 1);
          e.set_step(static_cast<int32_t>(step));
          e.set_loss(window.loss());
          e.set_accuracy(window.accuracy());
          e.set_learning_rate(lr);
          sink_.on_event(e);
          sink_.on_progress(fmt("epoch %d step %lld/%lld loss %.4f acc %.3f lr %.4g", epoch + 1,
                                static_cast<long long>(step), static_cast<long long>(total), window.loss(),
                                window.accuracy(), lr));
          window = Accum();
        }
      }
      if (epoch_acc.count == 0) break;
      last_epoch = epoch_acc;
      v1::TrainingEvent e;
      e.set_event("epoch");
      e.set_epoch(epoch + 1);
      e.set_step(static_cast<int32_t>(step));
      e.set_train_loss(epoch_acc.loss());
      e.set_train_accuracy(epoch_acc.accuracy());
      e.set_learning_rate(sched.at(std::max<int64_t>(0, step - 1)));
      evaluate(&e);
      add_alphas(&e);
      sink_.on_event(e);
      sink_.on_progress(fmt("epoch %d done: train loss %.4f acc %.4f, test loss %.4f acc %.4f", epoch + 1,
                            epoch_acc.loss(), epoch_acc.accuracy(), e.test_loss(), e.test_accuracy()));
      diagnostics(epoch + 1);
      last_test_loss_ = e.test_loss();
      last_test_acc_ = e.test_accuracy();
    }

    v1::TrainingEvent s;
    s.set_event("summary");
    s.set_name(spec_.name());
    s.set_steps(static_cast<int32_t>(step));
    s.set_train_loss(last_epoch.loss());
    s.set_train_accuracy(last_epoch.accuracy());
    if (!t_.skip_test()) {
      s.set_test_loss(last_test_loss_);
      s.set_test_accuracy(last_test_acc_);
    }
    const int64_t timed = step > kWarmupSteps ? step - kWarmupSteps : 0;
    s.set_train_images_per_second(train_seconds > 0 ? timed * b / train_seconds : 0);
    add_alphas(&s);
    s.set_ranks(1);
    s.set_allreduce_seconds(0);
    s.set_seconds(seconds_since(start));
    sink_.on_event(s);
    return s;
  }

 private:
  static constexpr int64_t kWarmupSteps = 5;

  void load_data() {
    const DataFiles f = resolve_data_files(spec_.dataset(), options_.data_root, !t_.skip_test());
    const auto& d = spec_.dataset();
    train_ = load_idx_dataset(f.train_images, f.train_labels, f.mean, f.std, d.train_limit());
    if (!t_.skip_test()) test_ = load_idx_dataset(f.test_images, f.test_labels, f.mean, f.std, d.test_limit());
    sink_.on_progress(fmt("data: %d training and %d test images of %dx%dx%d", train_.n, test_.n,
                          train_.channels, train_.height, train_.width));
  }

  void build() {
    const auto layers = expand_model(spec_.model(), train_.num_classes);
    net_ = build_network(layers, {t_.batch_size(), train_.channels, train_.height, train_.width});
    if (net_->num_classes() != train_.num_classes)
      throw user_error("model", fmt("the last layer gives %lld outputs but the data has %d classes",
                                    static_cast<long long>(net_->num_classes()), train_.num_classes));
    const auto& act = spec_.model().activation();
    assign_rectifier_slopes(*net_, act.kind() == v1::ActivationSpec::RELU ? 0.0 : act.alpha_init());
    initialize(net_->params(), init_options_from(spec_.model().init(), static_cast<uint64_t>(t_.seed())));
    sink_.on_progress("model: " + describe_layers(layers));
  }

  LrSchedule schedule(int64_t steps_per_epoch, int64_t total) const {
    LrSchedule s;
    s.base_lr = t_.learning_rate();
    const auto& ls = t_.lr_schedule();
    switch (ls.kind()) {
      case v1::LrScheduleSpec::STEP:
        s.kind = LrScheduleKind::kStep;
        s.step_every = std::max<int64_t>(1, ls.step_epochs()) * steps_per_epoch;
        s.gamma = ls.gamma();
        break;
      case v1::LrScheduleSpec::COSINE:
        s.kind = LrScheduleKind::kCosine;
        s.min_lr = ls.min_lr();
        s.total_steps = total;
        break;
      default:
        break;
    }
    return s;
  }

  // Loss and accuracy over the whole test set, in batches (the last one padded).
  void evaluate(v1::TrainingEvent* e) {
    if (t_.skip_test() || test_.n == 0) return;
    const int64_t b = net_->batch();
    std::vector<int32_t> idx(b), labels(b);
    Accum acc;
    for (int64_t start = 0; start < test_.n; start += b) {
      const int count = static_cast<int>(std::min<int64_t>(b, test_.n - start));
      std::iota(idx.begin(), idx.begin() + count, static_cast<int32_t>(start));
      gather_batch(test_, idx.data(), count, net_->input_data(), labels.data());
      net_->forward();
      acc.add(net_->loss(labels.data(), count, false, 1.0));
    }
    e->set_test_loss(acc.loss());
    e->set_test_accuracy(acc.accuracy());
  }

  // Standard deviations per weight layer on the first training batch (unshuffled);
  // parameters are not changed.
  void diagnostics(int epoch) {
    const int64_t b = net_->batch();
    std::vector<int32_t> idx(b), labels(b);
    std::iota(idx.begin(), idx.end(), 0);
    gather_batch(train_, idx.data(), static_cast<int>(b), net_->input_data(), labels.data());
    net_->forward();
    net_->loss(labels.data(), static_cast<int>(b), true, static_cast<double>(b));
    net_->backward();
    const LayerStats st = net_->weight_layer_stats();
    v1::TrainingEvent e;
    e.set_event("diagnostics");
    e.set_epoch(epoch);
    for (size_t i = 0; i < st.layers.size(); ++i) {
      e.add_layers(st.layers[i]);
      e.add_activation_std(st.activation_std[i]);
      e.add_gradient_std(st.gradient_std[i]);
    }
    sink_.on_event(e);
  }

  void add_alphas(v1::TrainingEvent* e) const {
    for (auto* a : net_->activations()) {
      auto* ls = e->add_alphas();
      ls->set_layer(a->name());
      for (float v : a->slopes()) ls->add_values(v);
    }
  }

  const v1::JobSpec& spec_;
  const RunOptions& options_;
  EventSink& sink_;
  const v1::TrainingSpec& t_;
  Dataset train_, test_;
  std::unique_ptr<Network> net_;
  double last_test_loss_ = 0, last_test_acc_ = 0;
};

}  // namespace

v1::TrainingEvent run_training(const v1::JobSpec& spec, const RunOptions& options, EventSink& sink) {
  return Run(spec, options, sink).go();
}

}  // namespace prelude
