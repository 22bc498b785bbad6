// Trains one job: data, model, initialisation, the SGD loop, evaluation, and the
// event stream (diagnostics, step, epoch, summary) that every front end consumes.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

#include "prelude/v1/checkpoint.pb.h"
#include "prelude/v1/job.pb.h"

namespace prelude {

class Communicator;
class ParamStore;

// Receives the events of a run. The command line prints them as JSON lines; the
// coordinator's worker forwards them over gRPC.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void on_event(const prelude::v1::TrainingEvent& event) = 0;
  // Human-readable progress (the command line writes it to stderr).
  virtual void on_progress(const std::string& /*line*/) {}
};

struct RunOptions {
  std::string data_root = "/usr/share/datasets";
  // Polled on the first rank between steps; returning true stops every rank at the
  // same step (a cancelled job).
  std::function<bool()> should_stop;
  // The ranks training this job together (data parallel: each takes a slice of every
  // global batch, gradients are averaged with allreduce). nullptr: this process
  // alone (Communicator::single_process()), even inside an MPI job.
  // Only the first rank sends events to the sink.
  Communicator* comm = nullptr;
  // For tests and tools: called on every rank after each optimizer step (1-based
  // step), and once with the final parameters.
  std::function<void(int64_t step, ParamStore& params)> after_step;
  std::function<void(const ParamStore& params)> on_finish;

  // Checkpoints (see proto/prelude/v1/checkpoint.proto), on the first rank only: each
  // one the run takes, after every training.checkpoint.everySteps steps, at the end
  // of every epoch and (with `final` true) after the last step.
  std::function<void(const prelude::v1::Checkpoint& checkpoint, bool final)> on_checkpoint;
  // Continue from a checkpoint instead of from step 0: called once on the first rank
  // (the others may leave it empty and receive the state), while the ranks set up,
  // so that a checkpoint that cannot be had fails every rank alike. The spec must be
  // one the checkpoint may continue under (artifacts/resume_check.h); `resume_source`
  // names it in messages. With the same ranks and threads the run ends bit-identical
  // to one never interrupted.
  std::function<prelude::v1::Checkpoint()> resume_from;
  std::string resume_source;
  // Warm start (model.initFrom): start from a checkpoint's parameters (values only,
  // momentum zero) instead of the initialiser's, at step 0. The checkpoint must be
  // of the same model. Called like resume_from; `init_source` names it.
  std::function<prelude::v1::Checkpoint()> init_from;
  std::string init_source;
  // Recorded in checkpoints: the job's id (under the coordinator).
  std::string job_id;
};

// Thrown on every rank when the ranks' parameters stop agreeing (silent desync).
class DesyncError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown when the loss becomes NaN or infinite: a result of the job, not a bug.
class DivergedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown when the loss stops improving (training.stallWindowSteps): a result of
// the job, like divergence.
class StalledError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown on every rank alike when setting up the job (loading data, building the
// network, restoring a checkpoint) failed on some rank for a reason that is neither
// bad input nor lack of memory (those are UserErrors): the ranks stay in step, so
// the job fails and a pool may take the next one.
class SetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs a defaulted and validated spec (see job_spec.h) and returns the summary
// event, which has also been sent to `sink`. Throws UserError for bad data files,
// shapes or a batch the ranks cannot share, DivergedError when training diverges,
// StalledError when its loss stops improving (when asked to watch for that),
// DesyncError when ranks disagree, SetupError when setting up failed otherwise.
// With several ranks every rank must call it.
prelude::v1::TrainingEvent run_training(const prelude::v1::JobSpec& spec, const RunOptions& options,
                                        EventSink& sink);

// One JSON line (proto field names) for an event.
std::string event_to_json(const prelude::v1::TrainingEvent& event);

}  // namespace prelude
