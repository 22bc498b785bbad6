// What the client prints for jobs, metrics and events: pure functions of the API's
// messages, so they are tested without a coordinator.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "client/format.h"
#include "prelude/v1/service.pb.h"

namespace prelude::client {

// What showing a job's progress needs from its spec (defaults applied).
struct JobShape {
  double epochs = 1;   // training.epochs; fractions allowed
  int batch_size = 64; // training.batchSize, the global batch
};
JobShape job_shape(const prelude::v1::JobSpec& spec);

// ---- list / get

// `prelude list`: ID, STATE, NAME, MODEL, PROGRESS, TEST ACC, POOL, AGE; one row
// per job, in the order given.
std::string jobs_table(const std::vector<prelude::v1::Job>& jobs, Clock::time_point now);

// `prelude get`: the job's fields, one "Label  value" line each (unset ones left
// out), then the learned slopes per activation layer, the test results by class (of
// a summary that has them) and the kept checkpoints.
std::string job_details(const prelude::v1::Job& job, Clock::time_point now);

// A summary's test results by class, one row per class: its number, name and test
// accuracy, then the confusion matrix (rows true class, columns predicted, headed by
// class numbers). A matrix wider than kMaxClassTableWidth columns is left out, with a
// note pointing to the JSON. "" when the event has no class data.
constexpr size_t kMaxClassTableWidth = 100;
std::string class_table(const prelude::v1::TrainingEvent& summary);

// `prelude get --format json`: the Job in protobuf JSON (camelCase, as job files),
// indented, ending with a newline.
std::string job_json(const prelude::v1::Job& job);

// One activation layer's slopes: "0.2500" for one value, all of them for a few,
// "32 channels: mean 0.2512, min 0.1023, max 0.4410" for many.
std::string slopes_text(const prelude::v1::LayerSlopes& slopes);

// ---- checkpoints and models

// `prelude checkpoints`: STEP, EPOCHS (completed when it was written), FINAL, SIZE,
// SHA256 (its first 12 hex digits) and CREATED (UTC), a row per checkpoint in the
// order the coordinator keeps them (oldest first).
std::string checkpoints_table(const prelude::v1::Job& job);
// `prelude checkpoints --format json`: the checkpoints as a JSON array of
// CheckpointInfo in protobuf JSON (camelCase), every field present, one a line.
std::string checkpoints_json(const prelude::v1::Job& job);
// "job-1 has no checkpoints yet" (a job that has ended: "... has no checkpoints").
std::string no_checkpoints_line(const prelude::v1::Job& job);

// What `prelude download` wrote, for stderr: "wrote model.onnx: job-1 step 2811
// (final) as ONNX, 1.1 MiB (1153024 bytes)".
std::string download_line(const std::string& written_to, const std::string& job_id, const std::string& format,
                          const prelude::v1::CheckpointInfo& checkpoint, int64_t bytes);

// ---- audit

// `prelude audit`: TIME (UTC), USER, ROLE, PEER, ACTION, TARGET and OUTCOME, one row
// per entry in the order given ("-" for an empty field), and DETAIL when an entry has
// one. OUTCOME and DETAIL are cut to kMaxAuditCellChars characters.
constexpr size_t kMaxAuditCellChars = 100;
std::string audit_table(const std::vector<prelude::v1::AuditEntry>& entries);
// `prelude audit --format json`: one AuditEntry a line in protobuf JSON, every field
// present ("seq" as a string, as int64 fields are; "time" in RFC 3339).
std::string audit_json_lines(const std::vector<prelude::v1::AuditEntry>& entries);

// ---- metrics

// The CSV header and the columns of `prelude metrics --format csv`.
extern const char* const kMetricsCsvHeader;
// One row per training event of kind step, epoch or summary (diagnostics are left
// out), unset values as empty cells. A summary row gives its `steps` as the step and
// its `train_images_per_second` as images_per_second. with_attempt (the events of
// every attempt): a first column, `attempt`.
std::string metrics_csv(const prelude::v1::GetMetricsResponse& metrics, bool with_attempt = false);
// One JSON object per line per training event (every kind), with proto field names:
// the same lines `prelude-worker run` prints; with_attempt, each begins with
// "attempt": N.
std::string metrics_json_lines(const prelude::v1::GetMetricsResponse& metrics, bool with_attempt = false);

// ---- watch

// Seconds left: (total_steps - step) * batch size / images_per_second; nullopt when
// the step event does not carry what it takes.
std::optional<double> eta_seconds(const prelude::v1::TrainingEvent& step, const JobShape& shape);

// A training event as text, without time: step, epoch and summary events (e.g.
// "epoch 1/3  train loss 0.3837 acc 0.8700  test loss 0.2927 acc 0.8959"); "" for
// others (diagnostics).
std::string training_text(const prelude::v1::TrainingEvent& event, const JobShape& shape);
// A state change as text, "<STATE> <reason>": "RUNNING started on pool-1.1 (2 ranks
// on vm); attempt 2", "FAILED diverged at step 60: loss is nan", "SUCCEEDED".
std::string state_change_text(const prelude::v1::StateChange& change);

// A watch line for the event: its time (UTC), then the state change or training
// event. "" for events that get no line (diagnostics). No control characters.
std::string event_line(const prelude::v1::JobEvent& event, const JobShape& shape);

// The live line on a terminal, for the latest step event:
// "RUNNING  epoch 1/3  [#####---------------]  350/2811  loss 0.4521  acc 0.8412  1023 img/s  ETA 2m31s".
// When columns > 0 it fits in columns - 1 characters: the learning rate, accuracy,
// speed, bar and epoch are left out, in that order, as needed.
std::string progress_line(prelude::v1::JobState state, const prelude::v1::TrainingEvent& step, const JobShape& shape,
                          int columns);

// The last line of a watch: "job job-1 SUCCEEDED", "job job-1 FAILED: <reason>".
std::string final_line(const std::string& job_id, prelude::v1::JobState state, const std::string& reason);

// What `prelude cancel` says of a job: "job-1 CANCELLED", "job-2 RUNNING: cancel
// requested, stopping at its next step".
std::string cancel_line(const prelude::v1::Job& job);

// ---- sweeps

// "12 jobs: 3 succeeded, 1 failed, 2 running, 6 queued": how many jobs are in each
// state, in the order succeeded, failed, cancelled, running, queued; states no job
// is in are left out.
std::string sweep_counts(const prelude::v1::SweepStatus& status);

// `prelude get SWEEP_ID`: the sweep's id, name, creation time and job counts, a
// table of its jobs in grid order (ID, STATE, POINT, PROGRESS, TEST ACC), the
// errors of the failed ones, and a pointer to `prelude compare`.
std::string sweep_details(const prelude::v1::SweepStatus& status, Clock::time_point now);

// `prelude get SWEEP_ID --format json`: the SweepStatus in protobuf JSON, indented.
std::string sweep_json(const prelude::v1::SweepStatus& status);

// A sweep watch line for a job's state: "job-000003  FAILED  model.preset=plain-22
// training.seed=1: diverged at step 60: loss is nan"; a running job whose cancel was
// requested says so. No control characters.
std::string sweep_job_line(const prelude::v1::Job& job);

// The live line of a sweep watch on a terminal: "sweep-000001  [####----------------]
// 23%  12 jobs: 2 succeeded, 2 running, 8 queued", the percentage counting ended
// jobs whole and running ones by their steps. When columns > 0 it fits in
// columns - 1 characters (the bar goes first).
std::string sweep_progress_line(const prelude::v1::SweepStatus& status, int columns);

// The last line of a sweep watch: "sweep-000001: 9 of 10 jobs succeeded; `prelude
// compare sweep-000001` compares them".
std::string sweep_final_line(const prelude::v1::SweepStatus& status);

// What `prelude cancel SWEEP_ID` did, from the sweep before and after CancelSweep:
// one line per job it cancelled or asked to stop (as `prelude cancel JOB` prints
// them), then "sweep-000001: 6 cancelled, 2 stopping at their next step, 4 had
// already ended (3 succeeded, 1 failed)".
std::string sweep_cancel_text(const prelude::v1::SweepStatus& before, const prelude::v1::SweepStatus& after);

}  // namespace prelude::client
