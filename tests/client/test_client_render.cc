// How the client shows values, jobs and progress: pure functions, no coordinator.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "client/format.h"
#include "client/render.h"
#include "spec/events.h"
#include "spec/job_spec.h"

namespace prelude::client {
namespace {

namespace v1 = prelude::v1;

v1::TrainingEvent step(int done, int total, double images_per_second) {
  v1::TrainingEvent e;
  set_event_kind(&e, v1::TrainingEvent::STEP);
  e.set_epoch(2);
  e.set_step(done);
  e.set_total_steps(total);
  e.set_loss(0.25);
  e.set_images_per_second(images_per_second);
  return e;
}

TEST(ClientFormat, DurationsReadAsPeopleSayThem) {
  EXPECT_EQ(duration(0), "0s");
  EXPECT_EQ(duration(42.4), "42s");
  EXPECT_EQ(duration(185), "3m05s");
  EXPECT_EQ(duration(3720), "1h02m");
  EXPECT_EQ(duration(2 * 86400 + 3 * 3600), "2d03h");
  EXPECT_EQ(duration(-1), "?");
}

TEST(ClientFormat, ExactNumbersAreTheShortestThatReadBack) {
  EXPECT_EQ(exact(0.1), "0.1");
  EXPECT_EQ(exact(0.4521), "0.4521");
  EXPECT_EQ(exact(640), "640");
  EXPECT_EQ(exact(1e-5), "1e-05");
  EXPECT_EQ(exact(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(std::stod(exact(0.1 + 0.2)), 0.1 + 0.2);
}

TEST(ClientFormat, TimestampsAreUtcAndAgesCoarse) {
  google::protobuf::Timestamp t;
  EXPECT_EQ(timestamp(t), "-");
  t.set_seconds(1767323045);
  EXPECT_EQ(timestamp(t), "2026-01-02T03:04:05Z");
  const auto then = to_time_point(t);
  EXPECT_EQ(age(t, then + std::chrono::seconds(42)), "42s");
  EXPECT_EQ(age(t, then + std::chrono::seconds(90)), "1m");
  EXPECT_EQ(age(t, then + std::chrono::hours(5)), "5h");
  EXPECT_EQ(age(t, then + std::chrono::hours(49)), "2d");
}

// A log line: UTC to the millisecond (1767323045 s is 2026-01-02T03:04:05Z), the rank,
// the text; a time before 1970 is floored to its second, not rounded toward zero.
TEST(ClientFormat, LogLinesHaveTheirTimeToTheMillisecondAndTheirRank) {
  v1::LogLine line;
  line.set_time_unix_ms(1767323045125);
  line.set_rank(1);
  line.set_text("epoch 1 done");
  EXPECT_EQ(log_line_text(line), "2026-01-02T03:04:05.125Z rank 1  epoch 1 done");
  line.set_time_unix_ms(1767323045000);
  EXPECT_EQ(log_line_text(line), "2026-01-02T03:04:05.000Z rank 1  epoch 1 done");
  line.set_time_unix_ms(-1);
  line.set_rank(0);
  EXPECT_EQ(log_line_text(line), "1969-12-31T23:59:59.999Z rank 0  epoch 1 done");
}

TEST(ClientFormat, ModelSummaryNamesPresetActivationAndInit) {
  EXPECT_EQ(model_summary(v1::JobSpec()), "cnn-small prelu-cw kaiming-normal");
  v1::JobSpec spec;
  spec.mutable_model()->set_preset("plain-30");
  spec.mutable_model()->mutable_activation()->set_kind(v1::ActivationSpec::PRELU_SHARED);
  spec.mutable_model()->mutable_init()->set_scheme(v1::InitSpec::XAVIER_NORMAL);
  spec.mutable_model()->mutable_init()->set_mode(v1::InitSpec::FAN_OUT);
  EXPECT_EQ(model_summary(spec), "plain-30 prelu-shared xavier-normal/fan-out");
  v1::JobSpec layers = parse_job_json(
      R"({ "model": { "activation": { "kind": "RELU" },
                      "layers": [ { "fc": { "outFeatures": 32 } }, { "activation": {} }, { "fc": { "outFeatures": 10 } } ] } })",
      "test");
  EXPECT_EQ(model_summary(layers), "custom(3 layers) relu kaiming-normal");
}

TEST(ClientFormat, TablesAlignColumnsWithoutTrailingSpaces) {
  Table t({"ID", "STATE"});
  t.add({"job-10", "RUNNING"});
  t.add({"job-9", "QUEUED"});
  EXPECT_EQ(t.render(), "ID      STATE\njob-10  RUNNING\njob-9   QUEUED\n");
  EXPECT_EQ(truncate("a-very-long-job-name", 10), "a-very-...");
  EXPECT_EQ(truncate("short", 10), "short");
}

TEST(ClientFormat, RightAlignedColumnsLineUpTheirDigits) {
  Table t({"STEP", "FINAL", "SIZE"});
  t.align_right(0);
  t.align_right(2);
  t.add({"50", "-", "900 B"});
  t.add({"1200", "yes", "4.2 MiB"});
  EXPECT_EQ(t.render(),
            "STEP  FINAL     SIZE\n"
            "  50  -        900 B\n"
            "1200  yes    4.2 MiB\n");
}

TEST(ClientFormat, ByteSizesReadInPowersOf1024) {
  EXPECT_EQ(byte_size(0), "0 B");
  EXPECT_EQ(byte_size(1023), "1023 B");
  EXPECT_EQ(byte_size(1024), "1.0 KiB");
  EXPECT_EQ(byte_size(10123), "9.9 KiB");
  EXPECT_EQ(byte_size(4404019), "4.2 MiB");
  EXPECT_EQ(byte_size(int64_t{37} << 20), "37 MiB");
  EXPECT_EQ(byte_size((int64_t{1} << 20) - 1), "1.0 MiB") << "not 1024 KiB";
  EXPECT_EQ(byte_size(int64_t{3} << 30), "3.0 GiB");
}

// A summary of `n` classes, `per_class` test images each, all predicted right.
v1::TrainingEvent perfect_summary(int n, int per_class) {
  v1::TrainingEvent e;
  set_event_kind(&e, v1::TrainingEvent::SUMMARY);
  for (int i = 0; i < n; ++i) {
    e.add_class_names("class-" + std::to_string(i));
    e.add_class_accuracy(1.0);
    for (int predicted = 0; predicted < n; ++predicted) e.add_confusion_matrix(predicted == i ? per_class : 0);
  }
  return e;
}

TEST(ClientRender, ClassTableLeavesOutAMatrixTooWideToReadWithANote) {
  const std::string narrow = class_table(perfect_summary(3, 1000));
  EXPECT_EQ(narrow,
            "#  CLASS    TEST ACC     0     1     2\n"
            "0  class-0    1.0000  1000     0     0\n"
            "1  class-1    1.0000     0  1000     0\n"
            "2  class-2    1.0000     0     0  1000\n");
  const std::string wide = class_table(perfect_summary(20, 1000));
  EXPECT_EQ(wide.rfind(" #  CLASS     TEST ACC\n 0  class-0     1.0000\n", 0), 0u) << wide;
  EXPECT_NE(wide.find("\n(the 20 x 20 confusion matrix is too wide to show here: see --format json, "
                      "latestMetrics.confusionMatrix)\n"),
            std::string::npos)
      << wide;
}

TEST(ClientRender, ClassTableWithoutASquareMatrixOrNamesShowsWhatThereIs) {
  v1::TrainingEvent e;
  set_event_kind(&e, v1::TrainingEvent::SUMMARY);
  EXPECT_EQ(class_table(e), "") << "no class data";
  e.add_class_accuracy(0.5);
  e.add_class_accuracy(0.75);
  e.add_confusion_matrix(1);  // not 2 x 2
  EXPECT_EQ(class_table(e),
            "#  CLASS  TEST ACC\n"
            "0  -        0.5000\n"
            "1  -        0.7500\n");
}

TEST(ClientRender, EtaIsRemainingStepsTimesBatchOverImagesPerSecond) {
  JobShape shape;
  shape.batch_size = 64;
  EXPECT_DOUBLE_EQ(*eta_seconds(step(100, 1100, 640), shape), 100.0);  // 1000 * 64 / 640
  EXPECT_FALSE(eta_seconds(step(100, 1100, 0), shape).has_value());
  v1::TrainingEvent no_total = step(100, 1100, 640);
  no_total.clear_total_steps();
  EXPECT_FALSE(eta_seconds(no_total, shape).has_value());
}

TEST(ClientRender, ProgressLineHasEpochBarStepLossSpeedAndEta) {
  JobShape shape;
  shape.epochs = 3;
  shape.batch_size = 64;
  EXPECT_EQ(progress_line(v1::RUNNING, step(550, 1100, 640), shape, 0),
            "RUNNING  epoch 2/3  [##########----------]  550/1100  loss 0.2500  640 img/s  ETA 55s");
  // Narrow terminals lose the least useful parts first, whole.
  EXPECT_EQ(progress_line(v1::RUNNING, step(550, 1100, 640), shape, 80),
            "RUNNING  epoch 2/3  [##########----------]  550/1100  loss 0.2500  ETA 55s");
  EXPECT_EQ(progress_line(v1::RUNNING, step(550, 1100, 640), shape, 40), "RUNNING  550/1100  loss 0.2500  ETA 55s");
  EXPECT_EQ(progress_line(v1::RUNNING, step(550, 1100, 640), shape, 12), "RUNNING  55");
  shape.epochs = 0.5;
  EXPECT_NE(progress_line(v1::RUNNING, step(1, 1100, 640), shape, 0).find("epoch 2/0.5"), std::string::npos);
}

TEST(ClientRender, SlopesShowOneValueAFewOrMeanMinMax) {
  v1::LayerSlopes s;
  s.set_layer("act1");
  s.add_values(0.25f);
  EXPECT_EQ(slopes_text(s), "0.2500");
  s.add_values(0.5f);
  EXPECT_EQ(slopes_text(s), "0.2500 0.5000");
  for (float v : {0.0f, 1.0f, 0.25f}) s.add_values(v);
  EXPECT_EQ(slopes_text(s), "5 channels: mean 0.4000, min 0.0000, max 1.0000");
}

TEST(ClientRender, StateChangesSayPoolAttemptAndReason) {
  v1::StateChange c;
  c.set_state(v1::RUNNING);
  c.set_pool_id("pool-b");
  c.set_attempt(2);
  EXPECT_EQ(state_change_text(c), "RUNNING on pool pool-b; attempt 2");
  c.set_reason("started on pool-b (2 ranks on vm)");
  EXPECT_EQ(state_change_text(c), "RUNNING started on pool-b (2 ranks on vm); attempt 2");
  c.Clear();
  c.set_state(v1::QUEUED);
  c.set_reason("pool-a stopped responding; requeued after attempt 1 of 3");
  EXPECT_EQ(state_change_text(c), "QUEUED pool-a stopped responding; requeued after attempt 1 of 3");
  c.Clear();
  c.set_state(v1::SUCCEEDED);
  c.set_reason("done");
  EXPECT_EQ(state_change_text(c), "SUCCEEDED");
  EXPECT_EQ(final_line("job-1", v1::FAILED, "bad data"), "job job-1 FAILED: bad data");
}

TEST(ClientRender, EventLinesHaveNoControlCharactersAndSkipDiagnostics) {
  v1::JobEvent e;
  e.mutable_state_change()->set_state(v1::FAILED);
  e.mutable_state_change()->set_reason("line one\nline two\r");
  EXPECT_EQ(event_line(e, JobShape()), "FAILED line one line two ");
  v1::JobEvent d;
  set_event_kind(d.mutable_training(), v1::TrainingEvent::DIAGNOSTICS);
  EXPECT_EQ(event_line(d, JobShape()), "");
}

TEST(ClientRender, JobJsonSpecIsAJobFileAgain) {
  v1::Job job;
  job.set_job_id("job-1");
  *job.mutable_spec() = parse_job_json(
      R"({ "name": "again", "model": { "preset": "plain-10", "activation": { "kind": "LEAKY_RELU", "alphaInit": 0.2 } },
           "training": { "epochs": 2, "batchSize": 32, "lrSchedule": { "kind": "COSINE" } } })",
      "test");
  apply_defaults(job.mutable_spec());
  const std::string json = job_json(job);
  const size_t start = json.find("\"spec\": ");
  ASSERT_NE(start, std::string::npos) << json;
  // The "spec" object: from its brace to the matching one.
  size_t open = json.find('{', start), depth = 0, end = open;
  for (; end < json.size(); ++end) {
    if (json[end] == '{') ++depth;
    if (json[end] == '}' && --depth == 0) break;
  }
  const v1::JobSpec again = parse_job_json(json.substr(open, end - open + 1), "spec");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again, job.spec())) << json;
}

TEST(ClientRender, JobsTableRowsInTheOrderGiven) {
  v1::Job a, b;
  a.set_job_id("job-2");
  a.set_state(v1::RUNNING);
  a.mutable_spec()->set_name("a-name-far-too-long-for-the-name-column");
  a.mutable_create_time()->set_seconds(1000);
  *a.mutable_progress() = step(10, 100, 500);
  b.set_job_id("job-1");
  b.set_state(v1::QUEUED);
  b.mutable_create_time()->set_seconds(900);
  const auto now = Clock::time_point(std::chrono::seconds(1090));
  EXPECT_EQ(jobs_table({a, b}, now),
            "ID     STATE    NAME                      MODEL                              PROGRESS  TEST ACC  POOL  AGE\n"
            "job-2  RUNNING  a-name-far-too-long-f...  cnn-small prelu-cw kaiming-normal  10/100    -         -     1m\n"
            "job-1  QUEUED   -                         cnn-small prelu-cw kaiming-normal  -         -         -     3m\n");
}

// Events stored before TrainingEvent.kind existed (and those the trainer still
// sends) give their kind by name only: they read as if it were set.
TEST(ClientRender, EventsNamingTheirKindOnlyReadTheSame) {
  const v1::TrainingEvent by_kind = step(50, 100, 640);
  v1::TrainingEvent by_name = by_kind;
  by_name.clear_kind();
  ASSERT_EQ(by_name.event(), "step");
  EXPECT_EQ(training_text(by_name, JobShape()), training_text(by_kind, JobShape()));
  EXPECT_NE(training_text(by_name, JobShape()), "");

  // A finished job's PROGRESS cell and the "at the end" of its slopes come from its summary.
  v1::Job job;
  job.set_job_id("job-1");
  job.set_state(v1::SUCCEEDED);
  job.mutable_create_time()->set_seconds(1000);
  v1::TrainingEvent* summary = job.mutable_latest_metrics();
  summary->set_event("summary");
  summary->set_steps(321);
  auto* a = summary->add_alphas();
  a->set_layer("act1");
  a->add_values(0.25f);
  const auto now = Clock::time_point(std::chrono::seconds(1090));
  EXPECT_NE(jobs_table({job}, now).find("  321  "), std::string::npos) << jobs_table({job}, now);
  EXPECT_NE(job_details(job, now).find("Slopes     learned per activation layer, at the end:\n"), std::string::npos)
      << job_details(job, now);
}

// The files a job's first attempt trained on, as its pool declared them: path, size,
// the whole digest (to compare with `sha256sum` on a pool's host).
TEST(ClientRender, GetShowsTheDataFilesOfTheFirstAttempt) {
  v1::Job job;
  job.set_job_id("job-1");
  job.set_state(v1::RUNNING);
  const auto now = Clock::time_point(std::chrono::seconds(1090));
  EXPECT_EQ(job_details(job, now).find("Files"), std::string::npos) << "no files declared: no section";
  auto* f = job.add_data_files();
  f->set_path("fashion-mnist/train-images-idx3-ubyte.gz");
  f->set_size(26421880);
  f->set_sha256(std::string(64, 'a'));
  f = job.add_data_files();
  f->set_path("fashion-mnist/train-labels-idx1-ubyte.gz");
  f->set_size(29515);
  f->set_sha256(std::string(64, 'b'));
  const std::string text = job_details(job, now);
  EXPECT_NE(text.find("\nFiles      of the data set as its first attempt trained on them"), std::string::npos) << text;
  EXPECT_NE(text.find("  fashion-mnist/train-images-idx3-ubyte.gz  25 MiB  " + std::string(64, 'a') + "\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  fashion-mnist/train-labels-idx1-ubyte.gz  29 KiB  " + std::string(64, 'b') + "\n"),
            std::string::npos)
      << text;
}

// ---- sweeps

v1::Job sweep_job(const std::string& id, v1::JobState state, const std::string& point = "") {
  v1::Job j;
  j.set_job_id(id);
  j.set_state(state);
  j.set_sweep_point(point);
  return j;
}

v1::SweepStatus sweep_of(const std::vector<v1::Job>& jobs) {
  v1::SweepStatus s;
  s.mutable_sweep()->set_sweep_id("sweep-000001");
  for (const auto& j : jobs) *s.add_jobs() = j;
  return s;
}

TEST(ClientRender, SweepCountsGoOutcomesFirstAndLeaveEmptyStatesOut) {
  EXPECT_EQ(sweep_counts(sweep_of({sweep_job("j1", v1::QUEUED), sweep_job("j2", v1::RUNNING),
                                   sweep_job("j3", v1::SUCCEEDED), sweep_job("j4", v1::QUEUED),
                                   sweep_job("j5", v1::FAILED), sweep_job("j6", v1::SUCCEEDED)})),
            "6 jobs: 2 succeeded, 1 failed, 1 running, 2 queued");
  EXPECT_EQ(sweep_counts(sweep_of({sweep_job("j1", v1::CANCELLED)})), "1 job: 1 cancelled");
  EXPECT_EQ(sweep_counts(sweep_of({sweep_job("j1", v1::JOB_STATE_UNSPECIFIED), sweep_job("j2", v1::QUEUED)})),
            "2 jobs: 1 queued, 1 in an unknown state");
  EXPECT_EQ(sweep_counts(sweep_of({})), "0 jobs");
}

TEST(ClientRender, SweepJobLinesNameThePointAndTheErrorOnOneLine) {
  v1::Job failed = sweep_job("job-000003", v1::FAILED, "model.preset=plain-22 training.seed=1");
  failed.set_error("diverged at step 60:\nloss is nan");
  EXPECT_EQ(sweep_job_line(failed), "job-000003  FAILED  model.preset=plain-22 training.seed=1: diverged at step 60: loss is nan");
  EXPECT_EQ(sweep_job_line(sweep_job("job-1", v1::QUEUED)), "job-1  QUEUED");  // no point, no trailing blanks
  v1::Job stopping = sweep_job("job-2", v1::RUNNING, "a=1");
  stopping.set_cancel_requested(true);
  EXPECT_EQ(sweep_job_line(stopping), "job-2  RUNNING  a=1: cancel requested, stopping at its next step");
  stopping.set_state(v1::CANCELLED);
  stopping.set_error("cancelled by a client");
  EXPECT_EQ(sweep_job_line(stopping), "job-2  CANCELLED  a=1: cancelled by a client");
}

TEST(ClientRender, SweepProgressCountsEndedJobsWholeAndRunningOnesByTheirSteps) {
  v1::Job running = sweep_job("j2", v1::RUNNING);
  *running.mutable_progress() = step(50, 100, 500);
  v1::Job queued_with_old_progress = sweep_job("j4", v1::QUEUED);  // requeued: starts over
  *queued_with_old_progress.mutable_progress() = step(90, 100, 500);
  const v1::SweepStatus s = sweep_of({sweep_job("j1", v1::FAILED), running, sweep_job("j3", v1::QUEUED),
                                      queued_with_old_progress});
  // (1 + 0.5) / 4 = 37.5%: 8 of 20 bar cells (7.5 rounds up), the percentage rounded down.
  EXPECT_EQ(sweep_progress_line(s, 0),
            "sweep-000001  [########------------]  37%  4 jobs: 1 failed, 1 running, 2 queued");
  // A narrow terminal loses the bar first, then the end of the line.
  EXPECT_EQ(sweep_progress_line(s, 60), "sweep-000001  37%  4 jobs: 1 failed, 1 running, 2 queued");
  EXPECT_EQ(sweep_progress_line(s, 21), "sweep-000001  37%  4");  // columns - 1 characters
}

TEST(ClientRender, SweepCancelCountsOnlyWhatThisCallCancelled) {
  const v1::SweepStatus before = sweep_of({sweep_job("j1", v1::CANCELLED), sweep_job("j2", v1::RUNNING),
                                           sweep_job("j3", v1::QUEUED), sweep_job("j4", v1::RUNNING)});
  v1::Job stopping = sweep_job("j4", v1::RUNNING);
  stopping.set_cancel_requested(true);
  // j1 was cancelled before; j2 succeeded by itself while the call ran.
  const v1::SweepStatus after = sweep_of({sweep_job("j1", v1::CANCELLED), sweep_job("j2", v1::SUCCEEDED),
                                          sweep_job("j3", v1::CANCELLED), stopping});
  EXPECT_EQ(sweep_cancel_text(before, after),
            "j3 CANCELLED\n"
            "j4 RUNNING: cancel requested, stopping at its next step\n"
            "sweep-000001: 1 cancelled, 1 stopping at its next step, 2 had already ended (1 succeeded, 1 cancelled)\n");
  EXPECT_EQ(sweep_cancel_text(sweep_of({}), sweep_of({})), "sweep-000001: nothing to cancel; it has no jobs\n");
}

TEST(ClientRender, SweepFinalLineCountsSucceededJobsAndPointsToCompare) {
  EXPECT_EQ(sweep_final_line(sweep_of({sweep_job("j1", v1::SUCCEEDED), sweep_job("j2", v1::FAILED),
                                       sweep_job("j3", v1::SUCCEEDED)})),
            "sweep-000001: 2 of 3 jobs succeeded; `prelude compare sweep-000001` compares them");
}

}  // namespace
}  // namespace prelude::client
