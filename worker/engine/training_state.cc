#include "engine/training_state.h"

#include <cmath>

namespace prelude {

namespace v1 = prelude::v1;

namespace {

void put(const Accum& a, double seconds, v1::RunningSums* out) {
  out->set_loss_sum(a.loss_sum);
  out->set_correct(a.correct);
  out->set_count(a.count);
  out->set_seconds(seconds);
}

Accum get(const v1::RunningSums& in) {
  Accum a;
  a.loss_sum = in.loss_sum();
  a.correct = in.correct();
  a.count = in.count();
  return a;
}

}  // namespace

v1::TrainingProgress to_progress(const TrainingState& s, int64_t total_steps) {
  v1::TrainingProgress p;
  p.set_step(s.step);
  p.set_epoch(s.epoch);
  p.set_step_in_epoch(s.position);
  p.set_total_steps(total_steps);
  put(s.window, s.window_seconds, p.mutable_window());
  put(s.epoch_sums, 0, p.mutable_epoch_sums());
  put(s.last_epoch, 0, p.mutable_last_epoch());
  put(s.last_test, 0, p.mutable_last_test());
  p.mutable_last_confusion()->Add(s.last_confusion.begin(), s.last_confusion.end());
  p.set_stall_sum(s.stall.sum);
  if (std::isfinite(s.stall.best_mean)) p.set_stall_best_mean(s.stall.best_mean);
  p.set_stall_best_end(s.stall.best_end);
  p.set_train_seconds(s.train_seconds);
  return p;
}

TrainingState from_progress(const v1::TrainingProgress& p) {
  TrainingState s;
  s.step = p.step();
  s.epoch = p.epoch();
  s.position = p.step_in_epoch();
  s.window = get(p.window());
  s.window_seconds = p.window().seconds();
  s.epoch_sums = get(p.epoch_sums());
  s.last_epoch = get(p.last_epoch());
  s.last_test = get(p.last_test());
  s.last_confusion.assign(p.last_confusion().begin(), p.last_confusion().end());
  s.stall.sum = p.stall_sum();
  if (p.has_stall_best_mean()) s.stall.best_mean = p.stall_best_mean();
  s.stall.best_end = p.stall_best_end();
  s.train_seconds = p.train_seconds();
  return s;  // not stopped: a stop ended the run that wrote it, not this one
}

}  // namespace prelude
