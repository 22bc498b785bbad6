#include "engine/trainer.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <new>
#include <numeric>
#include <optional>
#include <stdexcept>

#include <omp.h>

#include "engine/comm.h"
#include "engine/dataset.h"
#include "engine/evaluation.h"
#include "engine/gradient_reducer.h"
#include "engine/memory_budget.h"
#include "common/errors.h"
#include "spec/events.h"
#include "spec/job_spec.h"
#include "engine/model.h"
#include "engine/param_io.h"
#include "engine/sgd.h"
#include "engine/training_state.h"
#include "artifacts/checkpoint_file.h"
#include "artifacts/resume_check.h"
#include "spec/data_files.h"

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
    // From the first step, or from where the checkpoint stopped (prepare() restored
    // its parameters and momentum).
    TrainingState state = prepare();
    if (resumed_)
      emit_resumed_event(state);
    else
      diagnostics(0);
    train(state);
    if (!state.stopped) checkpoint(state, /*final=*/true);
    const v1::TrainingEvent summary = make_summary(state, seconds_since(start));
    if (options_.on_finish) options_.on_finish(net_->params());
    emit(summary);
    return summary;
  }

 private:
  static constexpr int64_t kWarmupSteps = 5;

  // What one step gives every rank.
  struct StepResult {
    LossResult loss;      // the global batch's, summed over the ranks
    bool stop_requested;  // the first rank was asked to stop
    double seconds;       // this rank's time for the step, up to the optimizer's update
  };

  // Everything before the first step, alike on every rank: the share of the global
  // batch, the data and the network, the step counts and the schedule, the optimizer
  // and the gradient reducer, and rank 0's initial parameters and momentum (or the
  // checkpoint's, when resuming). Returns the state training starts from.
  TrainingState prepare() {
    global_batch_ = t_.batch_size();
    const int64_t ranks = comm_.size();
    if (global_batch_ % ranks != 0)
      throw user_error("training.batchSize",
                       fmt("%lld is not divisible by the %lld ranks training the job",
                           static_cast<long long>(global_batch_), static_cast<long long>(ranks)));
    local_batch_ = global_batch_ / ranks;
    // Every rank loads its data and builds its network; a failure on any rank (a
    // missing file on one host, a bad shape) fails them all with the same error,
    // so no rank is left waiting in a collective and a pool can take the next job.
    agree_on([&] {
      load_data();
      build(local_batch_);
      if (comm_.is_root()) restore_parameters();
    });
    const TrainingState start = restored_state();
    count_steps();
    if (start.step > total_steps_)
      throw user_error(t_.max_steps() > 0 && total_steps_ == t_.max_steps() ? "training.maxSteps" : "training.epochs",
                       fmt("the run would end at step %lld, before the checkpoint's step %lld (when resuming, "
                           "epochs and maxSteps may grow, not shrink)",
                           static_cast<long long>(total_steps_), static_cast<long long>(start.step)));
    schedule_ = schedule(steps_per_epoch_, total_steps_);
    ParamStore& params = net_->params();
    sgd_.emplace(params, SgdOptions{t_.momentum(), t_.weight_decay(), t_.weight_decay_on_slopes()});
    // Rank 0's initial state wins, whatever seeds the others used.
    comm_.broadcast(params.values(), params.total_floats());
    comm_.broadcast(params.momentum(), params.total_floats());
    reducer_.emplace(comm_, params, t_.data_parallel().bucket_bytes(),
                     t_.data_parallel().reduce_precision() == v1::DataParallelSpec::BF16 ? ReducePrecision::kBf16
                                                                                         : ReducePrecision::kFp32);
    labels_.resize(local_batch_);
    progress(fmt("%s: %lld steps of batch %lld (%lld per epoch) on %lld rank(s), %lld parameters",
                 spec_.name().c_str(), static_cast<long long>(total_steps_), static_cast<long long>(global_batch_),
                 static_cast<long long>(steps_per_epoch_), static_cast<long long>(ranks),
                 static_cast<long long>(params.logical_count())));
    return start;
  }

  // Rank 0: a checkpoint's parameters replace the initial ones (prepare() then
  // broadcasts them). Resuming, the job must be one the checkpoint may continue, and
  // its momentum and progress come too; warm-starting, only the values.
  void restore_parameters() {
    if (options_.resume_from) {
      resume_ = options_.resume_from();
      check_resume_compatible(spec_, "the job", resume_, options_.resume_source);
      load_params(resume_, options_.resume_source, /*with_momentum=*/true, net_->params());
      has_resume_ = true;
    } else if (options_.init_from) {
      const v1::Checkpoint c = options_.init_from();
      load_params(c, options_.init_source, /*with_momentum=*/false, net_->params());
      progress("model: parameters from " + options_.init_source + " (step " + std::to_string(c.progress().step()) +
               ")");
    }
  }

  // Where training starts on every rank: rank 0's checkpoint's progress, or step 0.
  TrainingState restored_state() {
    std::string progress_bytes;
    if (comm_.is_root() && has_resume_) progress_bytes = resume_.progress().SerializeAsString();
    comm_.broadcast_bytes(&progress_bytes, 0);
    resumed_ = !progress_bytes.empty();
    resume_.Clear();  // its parameters are in the arena now
    if (!resumed_) return TrainingState();
    v1::TrainingProgress p;
    if (!p.ParseFromString(progress_bytes)) throw std::runtime_error("cannot parse the broadcast training progress");
    return from_progress(p);
  }

  // A checkpoint of the run in state `s` (rank 0 builds it, the sink keeps it).
  void checkpoint(const TrainingState& s, bool final) {
    if (!comm_.is_root() || !options_.on_checkpoint) return;
    v1::Checkpoint c;
    c.set_format_version(kCheckpointVersion);
    *c.mutable_spec() = spec_;
    *c.mutable_layers() = {layers_.begin(), layers_.end()};
    v1::ModelIo* io = c.mutable_io();
    io->set_channels(train_.channels);
    io->set_height(train_.height);
    io->set_width(train_.width);
    io->set_num_classes(train_.num_classes);
    io->set_mean(data_files_.mean);
    io->set_std(data_files_.std);
    for (const auto& name : class_names(spec_.dataset(), train_.num_classes)) io->add_class_names(name);
    save_params(net_->params(), /*with_momentum=*/true, &c);
    *c.mutable_progress() = to_progress(s, total_steps_);
    c.mutable_progress()->set_allreduce_seconds(reducer_->seconds());
    c.mutable_progress()->set_finished(final);
    c.set_ranks(comm_.size());
    c.set_threads_per_rank(omp_get_max_threads());
    c.set_job_id(options_.job_id);
    c.set_created_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count());
    options_.on_checkpoint(c, final);
  }

  // Says that the run continues from a checkpoint, and from which step.
  void emit_resumed_event(const TrainingState& s) {
    v1::TrainingEvent e;
    set_event_kind(&e, v1::TrainingEvent::RESUMED);
    e.set_epoch(s.epoch + 1);
    e.set_step(static_cast<int32_t>(s.step));
    e.set_total_steps(static_cast<int32_t>(total_steps_));
    emit(e);
    progress(fmt("resumed from %s at step %lld (epoch %d)", options_.resume_source.c_str(),
                 static_cast<long long>(s.step), s.epoch + 1));
  }

  // An epoch is the whole global batches the training set holds (the rest of it is
  // left out of that epoch); the run is training.epochs of them (fractions allowed),
  // at most training.maxSteps steps.
  void count_steps() {
    steps_per_epoch_ = train_.n / global_batch_;
    if (steps_per_epoch_ == 0)
      throw user_error("training.batchSize", fmt("%lld is larger than the training set (%lld images)",
                                                  static_cast<long long>(global_batch_),
                                                  static_cast<long long>(train_.n)));
    total_steps_ = static_cast<int64_t>(std::ceil(t_.epochs() * steps_per_epoch_));
    if (t_.max_steps() > 0) total_steps_ = std::min<int64_t>(total_steps_, t_.max_steps());
  }

  // Trains from `s` to the last step (or a stop), an epoch at a time. An epoch that
  // has begun is finished and reported even with no step left, so a state taken
  // after an epoch's last step resumes with that epoch's report.
  void train(TrainingState& s) {
    while (s.position > 0 || (s.step < total_steps_ && !s.stopped)) run_epoch(s);
  }

  // Trains epoch s.epoch from its batch s.position to its end, the last step or a
  // stop; then reports it, and `s` moves to the start of the next epoch.
  void run_epoch(TrainingState& s) {
    const auto order = epoch_permutation(train_.n, static_cast<uint64_t>(t_.seed()), s.epoch);
    while (s.position < steps_per_epoch_ && s.step < total_steps_ && !s.stopped) {
      const double lr = schedule_.at(s.step);
      record_step(s, train_step(order.data() + s.position * global_batch_, lr));
      if (s.step % t_.log_every_steps() == 0 || s.step == total_steps_ || s.stopped) {
        emit_step_event(s, lr);
        s.window = Accum();
        s.window_seconds = 0;
      }
      // Every checkpoint.everySteps steps, unless the epoch ends here (its own
      // checkpoint follows its report); and at a stop, before the stopped epoch is
      // reported, so that a run resumed from it goes on as if never stopped.
      const int64_t every = t_.checkpoint().every_steps();
      const bool epoch_ends = s.position == steps_per_epoch_ || s.step == total_steps_;
      if ((every > 0 && s.step % every == 0 && !epoch_ends) || s.stopped) checkpoint(s, false);
    }
    end_epoch(s);
    if (!s.stopped) checkpoint(s, false);
  }

  // One optimizer step on the global batch whose training-set indices start at
  // `batch`, this rank on its slice of it: gather, forward, loss, backward with the
  // gradients averaged over the ranks, SGD. Then one small collective: the global
  // loss and accuracy, and whether the first rank was asked to stop (so every rank
  // stops at the same step).
  StepResult train_step(const int32_t* batch, double lr) {
    const auto t0 = Clock::now();
    const int b = static_cast<int>(local_batch_);
    gather_batch(train_, batch + comm_.rank() * local_batch_, b, net_->input_data(), labels_.data());
    net_->forward();
    const LossResult local = net_->loss(labels_.data(), b, true, static_cast<double>(b));
    reducer_->backward_and_reduce(*net_);
    sgd_->step(lr);
    const double seconds = seconds_since(t0);
    double stats[4] = {local.loss_sum, static_cast<double>(local.correct), static_cast<double>(local.count),
                       comm_.is_root() && options_.should_stop && options_.should_stop() ? 1.0 : 0.0};
    comm_.allreduce_sum(stats, 4);
    return {{stats[0], static_cast<int64_t>(stats[1]), static_cast<int64_t>(stats[2])}, stats[3] > 0, seconds};
  }

  // Counts a finished step into `s` (and shows it to options.after_step) and checks
  // it: the loss must be finite and (when watched) still improving, and the ranks'
  // parameters must still agree.
  void record_step(TrainingState& s, const StepResult& r) {
    if (s.step >= kWarmupSteps) s.train_seconds += r.seconds;
    s.window_seconds += r.seconds;
    ++s.step;
    ++s.position;
    if (!std::isfinite(r.loss.loss_sum))
      throw DivergedError(fmt("training diverged: the loss is %g at step %lld", r.loss.loss_sum,
                              static_cast<long long>(s.step)));
    check_stall(s.stall, s.step, r.loss.count > 0 ? r.loss.loss_sum / static_cast<double>(r.loss.count) : 0.0);
    if (options_.after_step) options_.after_step(s.step, net_->params());
    check_ranks_agree(s.step);
    if (r.stop_requested) {
      progress("stopped at step " + std::to_string(s.step));
      s.stopped = true;
    }
    s.window.add(r.loss);
    s.epoch_sums.add(r.loss);
  }

  // The test set's loss and accuracy, then the epoch's report and diagnostics; `s`
  // moves to the start of the next epoch.
  void end_epoch(TrainingState& s) {
    const TestResult test = evaluate();
    emit_epoch_event(s, test.sums);
    diagnostics(s.epoch + 1);
    s.last_epoch = s.epoch_sums;
    s.last_test = test.sums;
    s.last_confusion = test.confusion;
    s.epoch_sums = Accum();
    ++s.epoch;
    s.position = 0;
  }

  // The step event: loss and accuracy of the steps since the last one.
  void emit_step_event(const TrainingState& s, double lr) {
    v1::TrainingEvent e;
    set_event_kind(&e, v1::TrainingEvent::STEP);
    e.set_epoch(s.epoch + 1);
    e.set_step(static_cast<int32_t>(s.step));
    e.set_loss(s.window.loss());
    e.set_accuracy(s.window.accuracy());
    e.set_learning_rate(lr);
    e.set_total_steps(static_cast<int32_t>(total_steps_));
    if (s.window_seconds > 0) e.set_images_per_second(static_cast<double>(s.window.count) / s.window_seconds);
    emit(e);
    progress(fmt("epoch %d step %lld/%lld loss %.4f acc %.3f lr %.4g", s.epoch + 1, static_cast<long long>(s.step),
                 static_cast<long long>(total_steps_), s.window.loss(), s.window.accuracy(), lr));
  }

  // The epoch event (of s.epoch, before `s` moves on): its training loss and accuracy,
  // the learning rate of its last step, the test set's (when evaluated) and the slopes.
  void emit_epoch_event(const TrainingState& s, const Accum& test) {
    v1::TrainingEvent e;
    set_event_kind(&e, v1::TrainingEvent::EPOCH);
    e.set_epoch(s.epoch + 1);
    e.set_step(static_cast<int32_t>(s.step));
    e.set_train_loss(s.epoch_sums.loss());
    e.set_train_accuracy(s.epoch_sums.accuracy());
    e.set_learning_rate(schedule_.at(std::max<int64_t>(0, s.step - 1)));
    if (test.count > 0) {
      e.set_test_loss(test.loss());
      e.set_test_accuracy(test.accuracy());
    }
    add_alphas(&e);
    emit(e);
    progress(fmt("epoch %d done: train loss %.4f acc %.4f, test loss %.4f acc %.4f", s.epoch + 1,
                 s.epoch_sums.loss(), s.epoch_sums.accuracy(), test.loss(), test.accuracy()));
  }

  // The summary of a run that ended in state `s` after `seconds`: the last epoch's
  // and test set's numbers, the throughput after the warm-up, the slopes, and what
  // reducing the gradients cost.
  v1::TrainingEvent make_summary(const TrainingState& s, double seconds) const {
    v1::TrainingEvent e;
    set_event_kind(&e, v1::TrainingEvent::SUMMARY);
    e.set_name(spec_.name());
    e.set_steps(static_cast<int32_t>(s.step));
    e.set_train_loss(s.last_epoch.loss());
    e.set_train_accuracy(s.last_epoch.accuracy());
    if (!t_.skip_test()) {
      e.set_test_loss(s.last_test.loss());
      e.set_test_accuracy(s.last_test.accuracy());
      add_classes(&e, s.last_confusion);
    }
    const int64_t timed = s.step > kWarmupSteps ? s.step - kWarmupSteps : 0;
    e.set_train_images_per_second(s.train_seconds > 0 ? timed * global_batch_ / s.train_seconds : 0);
    add_alphas(&e);
    e.set_ranks(comm_.size());
    e.set_allreduce_seconds(reducer_->seconds());
    e.set_allreduce_bytes_per_step(reducer_->bytes_per_step());
    e.set_seconds(seconds);
    return e;
  }

  // The test set by class, from its confusion matrix: names, accuracy per class, the matrix.
  void add_classes(v1::TrainingEvent* e, const std::vector<int64_t>& confusion) const {
    const int k = train_.num_classes;
    if (confusion.size() != static_cast<size_t>(k) * k) return;
    for (const auto& name : class_names(spec_.dataset(), k)) e->add_class_names(name);
    for (int i = 0; i < k; ++i) {
      int64_t row = 0;
      for (int j = 0; j < k; ++j) row += confusion[i * k + j];
      e->add_class_accuracy(row ? static_cast<double>(confusion[i * k + i]) / row : 0.0);
    }
    e->mutable_confusion_matrix()->Add(confusion.begin(), confusion.end());
  }

  // Runs `f` on every rank; if it throws on any rank, every rank throws the error of
  // the lowest failing rank (one that failed only because another did, a
  // PeerFailedError, is passed over for that one): a UserError stays a UserError, and so does running out
  // of memory (std::bad_alloc, or std::length_error from a size too large for a
  // vector), which is what a job too large for this host gets; anything else becomes
  // a SetupError. Either way every rank sees the same error, so the job fails and
  // the ranks stay in step for the next one.
  void agree_on(const std::function<void()>& f) {
    std::string error;
    double kind = 0;  // 0 ok, 1 UserError, 2 anything else, 3 PeerFailedError
    try {
      f();
    } catch (const PeerFailedError& e) {
      error = e.what(), kind = 3;
    } catch (const UserError& e) {
      error = e.what(), kind = 1;
    } catch (const std::bad_alloc&) {
      error = "out of memory setting up the job (its data and network need more than this rank's share, " +
              this_rank_memory_budget().describe() + "); keep fewer items or use a smaller model or batch";
      kind = 1;
    } catch (const std::length_error& e) {
      error = std::string("a size too large to allocate setting up the job (") + e.what() + ")", kind = 1;
    } catch (const std::exception& e) {
      error = e.what(), kind = 2;
    }
    std::vector<double> failed(comm_.size(), 0.0);
    failed[comm_.rank()] = kind;
    comm_.allreduce_sum(failed.data(), failed.size());
    auto first = std::find_if(failed.begin(), failed.end(), [](double k) { return k == 1 || k == 2; });
    if (first == failed.end()) first = std::find_if(failed.begin(), failed.end(), [](double k) { return k != 0; });
    if (first == failed.end()) return;
    const int root = static_cast<int>(first - failed.begin());
    comm_.broadcast_bytes(&error, root);
    if (root != 0) error = "rank " + std::to_string(root) + ": " + error;
    if (*first == 1 || *first == 3) throw UserError(error);
    throw SetupError(error);
  }

  // Every training.stallWindowSteps steps: the window's mean loss must be at least
  // 1% below the best earlier window's (the global loss: every rank decides alike).
  void check_stall(StallWatch& w, int64_t step, double loss) const {
    const int64_t n = t_.stall_window_steps();
    if (n <= 0) return;
    w.sum += loss;
    if (step % n != 0) return;
    const double mean = w.sum / static_cast<double>(n);
    w.sum = 0;
    if (std::isfinite(w.best_mean) && !(mean < 0.99 * w.best_mean))
      throw StalledError(fmt("training stalled: mean loss %.4f over steps %lld-%lld is not 1%% below the best "
                             "earlier window's %.4f (steps %lld-%lld)",
                             mean, static_cast<long long>(step - n + 1), static_cast<long long>(step), w.best_mean,
                             static_cast<long long>(w.best_end - n + 1), static_cast<long long>(w.best_end)));
    w.best_mean = mean;
    w.best_end = step;
  }

  // Every dataParallel.checkEverySteps steps: the ranks' parameters must still be
  // bit-identical (a silent desync would otherwise train on unnoticed).
  void check_ranks_agree(int64_t step) {
    if (step % t_.data_parallel().check_every_steps() != 0) return;
    const ParamStore& p = net_->params();
    if (!comm_.all_equal(checksum_bytes(p.values(), p.total_floats() * sizeof(float))))
      throw DesyncError(fmt("rank %d: the ranks' parameters differ after step %lld (silent desync); stopping",
                            comm_.rank(), static_cast<long long>(step)));
  }

  void emit(const v1::TrainingEvent& e) {
    if (comm_.is_root()) sink_.on_event(e);
  }
  void progress(const std::string& line) {
    if (comm_.is_root()) sink_.on_progress(line);
  }

  void load_data() {
    data_files_ = resolve_data_files(spec_.dataset(), options_.data_root, !t_.skip_test());
    const DataFiles& f = data_files_;
    const auto& d = spec_.dataset();
    // This rank's share of the host's (or cgroup's) memory; the test set gets what
    // the training set leaves.
    const MemoryBudget budget = this_rank_memory_budget();
    // The ranks of one host share one copy of the images (engine/dataset.h).
    train_ = load_idx_dataset_shared(comm_, f.train_images, f.train_labels, f.mean, f.std, d.train_limit(),
                                     /*num_classes=*/10, budget);
    const MemoryBudget left{budget.bytes - std::min(budget.bytes, train_.bytes()),
                            "what the training set's " + format_bytes(train_.bytes()) + " leaves of " +
                                budget.describe()};
    if (!t_.skip_test())
      test_ = load_idx_dataset_shared(comm_, f.test_images, f.test_labels, f.mean, f.std, d.test_limit(),
                                      /*num_classes=*/10, left);
    progress(fmt("data: %lld training and %lld test images of %dx%dx%d", static_cast<long long>(train_.n),
                 static_cast<long long>(test_.n), train_.channels, train_.height, train_.width));
  }

  void build(int64_t batch) {
    layers_ = expand_model(spec_.model(), train_.num_classes);
    const auto& layers = layers_;
    net_ = build_network(layers, {batch, train_.channels, train_.height, train_.width}, precision_from(t_.precision()),
                         conv_algorithm_from(t_.conv_algorithm()));
    if (net_->num_classes() != train_.num_classes)
      throw user_error("model", fmt("the last layer gives %lld outputs but the data has %d classes",
                                    static_cast<long long>(net_->num_classes()), train_.num_classes));
    const auto& act = spec_.model().activation();
    assign_rectifier_slopes(*net_, act.kind() == v1::ActivationSpec::RELU ? 0.0 : act.alpha_init());
    initialize(net_->params(), init_options_from(spec_.model().init(), static_cast<uint64_t>(t_.seed())));
    progress("model: " + describe_layers(layers) +
             (net_->precision() == Precision::kBf16 ? " (BF16 on " + effective_isa_name() + ")" : ""));
    // Once per layer at setup (the choice never changes during the run), so a user
    // can see where Winograd runs.
    for (const auto& line : conv_algorithm_choices(*net_))
      progress(std::string("convolution (") + conv_algorithm_name(conv_algorithm_from(t_.conv_algorithm())) +
               ") " + line);
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

  // Loss and accuracy over the whole test set, in batches (the last one padded);
  // count 0 when the test set is skipped.
  // The test set's loss and accuracy, and its confusion matrix (classes x classes,
  // row = true class), over every rank.
  struct TestResult {
    Accum sums;
    std::vector<int64_t> confusion;
  };
  TestResult evaluate() {
    if (t_.skip_test() || test_.n == 0) return {};
    // Each rank evaluates its contiguous share of the test set; the sums are reduced.
    const int64_t b = net_->batch();
    const int64_t begin = test_.n * comm_.rank() / comm_.size();
    const int64_t end = test_.n * (comm_.rank() + 1) / comm_.size();
    std::vector<int32_t> idx(b), labels(b);
    ConfusionMatrix cm(test_.num_classes);
    double sums[3] = {0, 0, 0};
    for (int64_t start = begin; start < end; start += b) {
      const int count = static_cast<int>(std::min<int64_t>(b, end - start));
      std::iota(idx.begin(), idx.begin() + count, static_cast<int32_t>(start));
      gather_batch(test_, idx.data(), count, net_->input_data(), labels.data());
      net_->forward();
      const LossResult r = net_->loss(labels.data(), count, false, 1.0);
      sums[0] += r.loss_sum, sums[1] += r.correct, sums[2] += r.count;
      const std::vector<float> logits = to_plain(net_->logits().data);
      cm.add(logits.data(), labels.data(), count);
    }
    std::vector<double> all(sums, sums + 3);
    all.insert(all.end(), cm.counts.begin(), cm.counts.end());
    comm_.allreduce_sum(all.data(), all.size());
    TestResult out{{all[0], static_cast<int64_t>(all[1]), static_cast<int64_t>(all[2])}, {}};
    for (size_t i = 3; i < all.size(); ++i) out.confusion.push_back(static_cast<int64_t>(all[i]));
    return out;
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
    set_event_kind(&e, v1::TrainingEvent::DIAGNOSTICS);
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
  Communicator& comm_;
  Dataset train_, test_;
  // Set by prepare(), then fixed for the run.
  int64_t global_batch_ = 0, local_batch_ = 0;  // local: this rank's slice of every global batch
  int64_t steps_per_epoch_ = 0, total_steps_ = 0;
  LrSchedule schedule_;
  std::unique_ptr<Network> net_;
  std::optional<Sgd> sgd_;
  std::optional<GradientReducer> reducer_;
  std::vector<int32_t> labels_;  // the labels of this rank's slice of the batch
  std::vector<v1::LayerSpec> layers_;  // the model, expanded
  DataFiles data_files_;
  bool resumed_ = false;     // continuing from a checkpoint
  v1::Checkpoint resume_;    // rank 0, while setting up: the checkpoint resumed from
  bool has_resume_ = false;
};

}  // namespace

v1::TrainingEvent run_training(const v1::JobSpec& spec, const RunOptions& options, EventSink& sink) {
  return Run(spec, options, sink).go();
}

}  // namespace prelude
