#include "engine/trainer.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <optional>

#include "engine/comm.h"
#include "engine/dataset.h"
#include "engine/gradient_reducer.h"
#include "common/errors.h"
#include "spec/job_spec.h"
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
      : spec_(spec), options_(options), sink_(sink), t_(spec.training()),
        comm_(options.comm ? *options.comm : Communicator::single_process()) {}

  v1::TrainingEvent go() {
    const auto start = Clock::now();
    const int64_t global = t_.batch_size(), ranks = comm_.size();
    if (global % ranks != 0)
      throw user_error("training.batchSize", fmt("%lld is not divisible by the %lld ranks training the job",
                                                  static_cast<long long>(global), static_cast<long long>(ranks)));
    const int64_t b = global / ranks;  // this rank's slice of every global batch
    // Every rank loads its data and builds its network; a failure on any rank (a
    // missing file on one host, a bad shape) fails them all with the same error,
    // so no rank is left waiting in a collective and a pool can take the next job.
    agree_on([&] {
      load_data();
      build(b);
    });
    const int64_t steps_per_epoch = train_.n / global;
    if (steps_per_epoch == 0)
      throw user_error("training.batchSize", fmt("%lld is larger than the training set (%d images)",
                                                  static_cast<long long>(global), train_.n));
    int64_t total = static_cast<int64_t>(std::ceil(t_.epochs() * steps_per_epoch));
    if (t_.max_steps() > 0) total = std::min<int64_t>(total, t_.max_steps());
    LrSchedule sched = schedule(steps_per_epoch, total);
    ParamStore& params = net_->params();
    Sgd sgd(params, {t_.momentum(), t_.weight_decay(), t_.weight_decay_on_slopes()});
    // Rank 0's initial state wins, whatever seeds the others used.
    comm_.broadcast(params.values(), params.total_floats());
    comm_.broadcast(params.momentum(), params.total_floats());
    reducer_.emplace(comm_, params, t_.data_parallel().bucket_bytes());
    progress(fmt("%s: %lld steps of batch %lld (%lld per epoch) on %lld rank(s), %lld parameters",
                 spec_.name().c_str(), static_cast<long long>(total), static_cast<long long>(global),
                 static_cast<long long>(steps_per_epoch), static_cast<long long>(ranks),
                 static_cast<long long>(params.logical_count())));
    total_steps_ = total;
    diagnostics(0);

    std::vector<int32_t> labels(b);
    int64_t step = 0;
    double train_seconds = 0;
    bool stop = false;
    Accum window, epoch_acc, last_epoch;
    double window_seconds = 0;  // training time of the steps in `window`
    for (int epoch = 0; step < total && !stop; ++epoch) {
      const auto perm = epoch_permutation(train_.n, static_cast<uint64_t>(t_.seed()), epoch);
      epoch_acc = Accum();
      for (int64_t i = 0; i < steps_per_epoch && step < total && !stop; ++i) {
        const double lr = sched.at(step);
        const auto t0 = Clock::now();
        gather_batch(train_, perm.data() + i * global + comm_.rank() * b, static_cast<int>(b),
                     net_->input_data(), labels.data());
        net_->forward();
        const LossResult local = net_->loss(labels.data(), static_cast<int>(b), true, static_cast<double>(b));
        reducer_->backward_and_reduce(*net_);
        sgd.step(lr);
        const double step_seconds = seconds_since(t0);
        if (step >= kWarmupSteps) train_seconds += step_seconds;
        window_seconds += step_seconds;
        ++step;
        // One small collective per step: the global loss and accuracy, and whether
        // the first rank was asked to stop (so every rank stops at the same step).
        double stats[4] = {local.loss_sum, static_cast<double>(local.correct), static_cast<double>(local.count),
                           comm_.is_root() && options_.should_stop && options_.should_stop() ? 1.0 : 0.0};
        comm_.allreduce_sum(stats, 4);
        const LossResult r{stats[0], static_cast<int64_t>(stats[1]), static_cast<int64_t>(stats[2])};
        if (!std::isfinite(r.loss_sum))
          throw DivergedError(fmt("training diverged: the loss is %g at step %lld", r.loss_sum,
                                  static_cast<long long>(step)));
        check_stall(step, r.count > 0 ? r.loss_sum / static_cast<double>(r.count) : 0.0);
        if (options_.after_step) options_.after_step(step, params);
        if (step % t_.data_parallel().check_every_steps() == 0) {
          if (!comm_.all_equal(checksum_bytes(params.values(), params.total_floats() * sizeof(float))))
            throw DesyncError(fmt("rank %d: the ranks' parameters differ after step %lld (silent desync); stopping",
                                  comm_.rank(), static_cast<long long>(step)));
        }
        if (stats[3] > 0) {
          progress("stopped at step " + std::to_string(step));
          stop = true;
        }
        window.add(r);
        epoch_acc.add(r);
        if (step % t_.log_every_steps() == 0 || step == total || stop) {
          v1::TrainingEvent e;
          e.set_event("step");
          e.set_epoch(epoch + 1);
          e.set_step(static_cast<int32_t>(step));
          e.set_loss(window.loss());
          e.set_accuracy(window.accuracy());
          e.set_learning_rate(lr);
          e.set_total_steps(static_cast<int32_t>(total));
          if (window_seconds > 0) e.set_images_per_second(static_cast<double>(window.count) / window_seconds);
          emit(e);
          progress(fmt("epoch %d step %lld/%lld loss %.4f acc %.3f lr %.4g", epoch + 1,
                       static_cast<long long>(step), static_cast<long long>(total), window.loss(),
                       window.accuracy(), lr));
          window = Accum();
          window_seconds = 0;
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
      emit(e);
      progress(fmt("epoch %d done: train loss %.4f acc %.4f, test loss %.4f acc %.4f", epoch + 1,
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
    s.set_train_images_per_second(train_seconds > 0 ? timed * global / train_seconds : 0);
    add_alphas(&s);
    s.set_ranks(static_cast<int32_t>(ranks));
    s.set_allreduce_seconds(reducer_->seconds());
    s.set_allreduce_bytes_per_step(reducer_->bytes_per_step());
    s.set_seconds(seconds_since(start));
    if (options_.on_finish) options_.on_finish(params);
    emit(s);
    return s;
  }

 private:
  static constexpr int64_t kWarmupSteps = 5;

  // Runs `f` on every rank; if it throws on any rank, every rank throws the error of
  // the lowest failing rank (a UserError stays a UserError; anything else becomes a
  // std::runtime_error with its message).
  void agree_on(const std::function<void()>& f) {
    std::string error;
    double kind = 0;  // 0 ok, 1 UserError, 2 anything else
    try {
      f();
    } catch (const UserError& e) {
      error = e.what(), kind = 1;
    } catch (const std::exception& e) {
      error = e.what(), kind = 2;
    }
    std::vector<double> failed(comm_.size(), 0.0);
    failed[comm_.rank()] = kind;
    comm_.allreduce_sum(failed.data(), failed.size());
    const auto first = std::find_if(failed.begin(), failed.end(), [](double k) { return k != 0; });
    if (first == failed.end()) return;
    const int root = static_cast<int>(first - failed.begin());
    comm_.broadcast_bytes(&error, root);
    if (root != 0) error = "rank " + std::to_string(root) + ": " + error;
    if (*first == 1) throw UserError(error);
    throw std::runtime_error(error);
  }

  // Every training.stallWindowSteps steps: the window's mean loss must be at least
  // 1% below the best earlier window's (the global loss: every rank decides alike).
  void check_stall(int64_t step, double loss) {
    const int64_t w = t_.stall_window_steps();
    if (w <= 0) return;
    stall_sum_ += loss;
    if (step % w != 0) return;
    const double mean = stall_sum_ / static_cast<double>(w);
    stall_sum_ = 0;
    if (std::isfinite(best_window_) && !(mean < 0.99 * best_window_))
      throw StalledError(fmt("training stalled: mean loss %.4f over steps %lld-%lld is not 1%% below the best "
                             "earlier window's %.4f (steps %lld-%lld)",
                             mean, static_cast<long long>(step - w + 1), static_cast<long long>(step), best_window_,
                             static_cast<long long>(best_window_end_ - w + 1),
                             static_cast<long long>(best_window_end_)));
    best_window_ = mean;
    best_window_end_ = step;
  }

  void emit(const v1::TrainingEvent& e) {
    if (comm_.is_root()) sink_.on_event(e);
  }
  void progress(const std::string& line) {
    if (comm_.is_root()) sink_.on_progress(line);
  }

  void load_data() {
    const DataFiles f = resolve_data_files(spec_.dataset(), options_.data_root, !t_.skip_test());
    const auto& d = spec_.dataset();
    train_ = load_idx_dataset(f.train_images, f.train_labels, f.mean, f.std, d.train_limit());
    if (!t_.skip_test()) test_ = load_idx_dataset(f.test_images, f.test_labels, f.mean, f.std, d.test_limit());
    progress(fmt("data: %d training and %d test images of %dx%dx%d", train_.n, test_.n, train_.channels,
                 train_.height, train_.width));
  }

  void build(int64_t batch) {
    const auto layers = expand_model(spec_.model(), train_.num_classes);
    net_ = build_network(layers, {batch, train_.channels, train_.height, train_.width});
    if (net_->num_classes() != train_.num_classes)
      throw user_error("model", fmt("the last layer gives %lld outputs but the data has %d classes",
                                    static_cast<long long>(net_->num_classes()), train_.num_classes));
    const auto& act = spec_.model().activation();
    assign_rectifier_slopes(*net_, act.kind() == v1::ActivationSpec::RELU ? 0.0 : act.alpha_init());
    initialize(net_->params(), init_options_from(spec_.model().init(), static_cast<uint64_t>(t_.seed())));
    progress("model: " + describe_layers(layers));
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
    // Each rank evaluates its contiguous share of the test set; the sums are reduced.
    const int64_t b = net_->batch();
    const int64_t begin = test_.n * comm_.rank() / comm_.size();
    const int64_t end = test_.n * (comm_.rank() + 1) / comm_.size();
    std::vector<int32_t> idx(b), labels(b);
    double sums[3] = {0, 0, 0};
    for (int64_t start = begin; start < end; start += b) {
      const int count = static_cast<int>(std::min<int64_t>(b, end - start));
      std::iota(idx.begin(), idx.begin() + count, static_cast<int32_t>(start));
      gather_batch(test_, idx.data(), count, net_->input_data(), labels.data());
      net_->forward();
      const LossResult r = net_->loss(labels.data(), count, false, 1.0);
      sums[0] += r.loss_sum, sums[1] += r.correct, sums[2] += r.count;
    }
    comm_.allreduce_sum(sums, 3);
    e->set_test_loss(sums[2] > 0 ? sums[0] / sums[2] : 0);
    e->set_test_accuracy(sums[2] > 0 ? sums[1] / sums[2] : 0);
  }

  // Standard deviations per weight layer on the first training batch (unshuffled;
  // with several ranks, the first rank's slice of it); parameters are not changed.
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
    e.set_total_steps(static_cast<int32_t>(total_steps_));
    for (size_t i = 0; i < st.layers.size(); ++i) {
      e.add_layers(st.layers[i]);
      e.add_activation_std(st.activation_std[i]);
      e.add_gradient_std(st.gradient_std[i]);
    }
    emit(e);
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
  Communicator& comm_;
  std::unique_ptr<Network> net_;
  std::optional<GradientReducer> reducer_;
  int64_t total_steps_ = 0;
  double stall_sum_ = 0, best_window_ = std::numeric_limits<double>::infinity();
  int64_t best_window_end_ = 0;
  double last_test_loss_ = 0, last_test_acc_ = 0;
};

}  // namespace

v1::TrainingEvent run_training(const v1::JobSpec& spec, const RunOptions& options, EventSink& sink) {
  return Run(spec, options, sink).go();
}

}  // namespace prelude
