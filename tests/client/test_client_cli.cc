// `prelude` as a user meets it, run in-process against a fake JobService: what is
// sent (spec, token, paging), what is printed, and the exit codes.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli.h"
#include "spec/events.h"
#include "spec/job_spec.h"
#include "cli_fixture.h"
#include "fake_coordinator.h"

namespace prelude::client {
namespace {

namespace v1 = prelude::v1;
using google::protobuf::util::MessageDifferencer;
using testing::ClientCli;
using testing::job;
using testing::kT0;
using testing::Result;
using testing::unused_address;

int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// ---- scripted jobs and events

v1::JobEvent state_event(int64_t seq, v1::JobState state, const std::string& reason = "",
                         const std::string& pool = "", int attempt = 0) {
  v1::JobEvent e;
  e.set_seq(seq);
  e.mutable_time()->set_seconds(kT0 + seq);
  auto* change = e.mutable_state_change();
  change->set_state(state);
  change->set_reason(reason);
  change->set_pool_id(pool);
  change->set_attempt(attempt);
  return e;
}

v1::JobEvent training_event(int64_t seq, const v1::TrainingEvent& t) {
  v1::JobEvent e;
  e.set_seq(seq);
  e.mutable_time()->set_seconds(kT0 + seq);
  *e.mutable_training() = t;
  return e;
}

v1::TrainingEvent diagnostics() {
  v1::TrainingEvent t;
  set_event_kind(&t, v1::TrainingEvent::DIAGNOSTICS);
  t.set_epoch(0);
  t.add_layers("conv1");
  t.add_activation_std(0.98);
  t.add_gradient_std(0.0012);
  t.set_total_steps(100);
  return t;
}

v1::TrainingEvent step_50() {
  v1::TrainingEvent t;
  set_event_kind(&t, v1::TrainingEvent::STEP);
  t.set_epoch(1);
  t.set_step(50);
  t.set_total_steps(100);
  t.set_loss(0.5);
  t.set_accuracy(0.75);
  t.set_learning_rate(0.01);
  t.set_images_per_second(640);  // (100 - 50) * 64 / 640 = 5 s left
  return t;
}

v1::TrainingEvent epoch_1() {
  v1::TrainingEvent t;
  set_event_kind(&t, v1::TrainingEvent::EPOCH);
  t.set_epoch(1);
  t.set_step(100);
  t.set_train_loss(0.4);
  t.set_train_accuracy(0.85);
  t.set_test_loss(0.35);
  t.set_test_accuracy(0.875);
  auto* a = t.add_alphas();
  a->set_layer("act1");
  for (float v : {0.1f, 0.2f, 0.3f, 0.4f, 0.25f, 0.25f}) a->add_values(v);
  return t;
}

v1::TrainingEvent summary() {
  v1::TrainingEvent t;
  set_event_kind(&t, v1::TrainingEvent::SUMMARY);
  t.set_name("tiny");
  t.set_steps(100);
  t.set_train_loss(0.4);
  t.set_test_loss(0.35);
  t.set_test_accuracy(0.875);
  t.set_train_images_per_second(650);
  t.set_seconds(12);
  auto* a = t.add_alphas();
  a->set_layer("act1");
  a->add_values(0.3f);
  return t;
}

// The history of a job that trains and ends in `end` (with `reason`).
std::vector<v1::JobEvent> history(v1::JobState end, const std::string& reason) {
  return {state_event(1, v1::QUEUED),
          state_event(2, v1::RUNNING, "", "pool-a", 1),
          training_event(3, diagnostics()),
          training_event(4, step_50()),
          training_event(5, epoch_1()),
          training_event(6, summary()),
          state_event(7, end, reason)};
}

// What `watch` prints off a terminal for history(SUCCEEDED, "done"), before the final line.
const std::string kWatchedHistory =
    "2026-01-02T03:04:06Z  QUEUED\n"
    "2026-01-02T03:04:07Z  RUNNING on pool pool-a; attempt 1\n"
    "2026-01-02T03:04:09Z  step 50/100  epoch 1/2  loss 0.5000  acc 0.7500  lr 0.01  640 img/s  ETA 5s\n"
    "2026-01-02T03:04:10Z  epoch 1/2  train loss 0.4000 acc 0.8500  test loss 0.3500 acc 0.8750\n"
    "2026-01-02T03:04:11Z  summary  test loss 0.3500 acc 0.8750  train loss 0.4000  100 steps in 12s  650 img/s\n";

// ---- submit

TEST_F(ClientCli, SubmitSendsTheParsedSpecAndPrintsOnlyTheId) {
  const std::string text = R"({ "name": "prelu-run",
    "model": { "preset": "plain-10", "width": 8, "activation": { "kind": "PRELU_SHARED", "alphaInit": 0.1 } },
    "training": { "epochs": 0.5, "batchSize": 32, "learningRate": 0.05 } })";
  const Result r = run({"submit", write_file("good.json", text)});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "job-1\n");
  EXPECT_EQ(r.err, "");
  const auto rec = fake.service.record();
  ASSERT_EQ(rec.submitted.size(), 1u);
  EXPECT_TRUE(MessageDifferencer::Equals(rec.submitted[0], parse_job_json(text, "expected")))
      << rec.submitted[0].DebugString();
  EXPECT_EQ(rec.submitted[0].training().batch_size(), 32);
  EXPECT_EQ(rec.submitted[0].model().activation().kind(), v1::ActivationSpec::PRELU_SHARED);
}

TEST_F(ClientCli, SubmitReadsStandardInputForDash) {
  stdin_text = R"({ "name": "from-stdin", "training": { "maxSteps": 7 } })";
  const Result r = run({"submit", "-"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "job-1\n");
  const auto rec = fake.service.record();
  ASSERT_EQ(rec.submitted.size(), 1u);
  EXPECT_EQ(rec.submitted[0].name(), "from-stdin");
  EXPECT_EQ(rec.submitted[0].training().max_steps(), 7);
}

TEST_F(ClientCli, MalformedJobFileIsExit2WithFileAndLineAndNoCall) {
  const std::string path = write_file("malformed.json", "{ \"name\": \"x\",\n  \"training\": { \"batchSize\": 64, }\n}\n");
  const Result r = run({"submit", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("prelude: " + path + ":2:", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("malformed JSON"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(fake.service.record().calls, 0);
}

TEST_F(ClientCli, UnknownFieldInJobFileIsExit2NamingTheFieldAndNoCall) {
  const std::string path = write_file("unknown-field.json", R"({ "training": { "batchSise": 64 } })");
  const Result r = run({"submit", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("batchSise"), std::string::npos) << r.err;
  EXPECT_EQ(fake.service.record().calls, 0);
}

TEST_F(ClientCli, MissingJobFileIsExit2NamingTheFile) {
  const Result r = run({"submit", "/nonexistent/job.json"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "prelude: /nonexistent/job.json: cannot read: No such file or directory\n");
  EXPECT_EQ(fake.service.record().calls, 0);
}

TEST_F(ClientCli, ServerInvalidArgumentIsExit3WithTheServersMessage) {
  fake.service.submit_status =
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "training.batchSize: must be positive, got 0");
  const Result r = run({"submit", write_file("zero-batch.json", R"({ "training": { "batchSize": 0 } })")});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "prelude: INVALID_ARGUMENT: training.batchSize: must be positive, got 0\n");
}

TEST_F(ClientCli, SubmitWatchPrintsTheIdThenFollowsTheJobAndExits4WhenItFails) {
  fake.service.events["job-1"] = history(v1::FAILED, "diverged at step 60: loss is nan");
  const Result r = run({"submit", write_file("watched.json", R"({ "training": { "epochs": 2, "batchSize": 64 } })"), "--watch"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_EQ(r.out, "job-1\n" + kWatchedHistory +
                       "2026-01-02T03:04:12Z  FAILED diverged at step 60: loss is nan\n"
                       "job job-1 FAILED: diverged at step 60: loss is nan\n");
}

// ---- get

TEST_F(ClientCli, GetUnknownIdIsExit3NotFound) {
  const Result r = run({"get", "job-404"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "prelude: NOT_FOUND: job-404: no such job\n");
}

TEST_F(ClientCli, GetShowsStateErrorPoolMetricsAndSlopesPerLayer) {
  v1::Job j = job("job-7", v1::FAILED);
  j.set_error("pool-a stopped responding during attempt 3 of 3");
  j.set_pool_id("pool-a");
  j.set_ranks(2);
  j.set_attempts(3);
  j.mutable_start_time()->set_seconds(kT0 + 10);
  j.mutable_end_time()->set_seconds(kT0 + 195);
  *j.mutable_progress() = step_50();
  *j.mutable_latest_metrics() = epoch_1();
  auto* one = j.mutable_latest_metrics()->add_alphas();
  one->set_layer("act2");
  one->add_values(0.3f);
  fake.service.add_job(j);

  const Result r = run({"get", "job-7"});
  EXPECT_EQ(r.code, 0) << r.err;
  for (const std::string line : {
           "ID         job-7\n",
           "Name       tiny\n",
           "State      FAILED\n",
           "Error      pool-a stopped responding during attempt 3 of 3\n",
           "Model      cnn-small prelu-cw kaiming-normal\n",
           "Dataset    fashion-mnist\n",
           "Training   2 epochs, batch 64, lr 0.01, momentum 0.9, weight decay 0.0005, seed 1\n",
           "Pool       pool-a (2 ranks)\n",
           "Attempts   3\n",
           "Started    2026-01-02T03:04:15Z (",
           "Ended      2026-01-02T03:07:20Z (",
           "ran 3m05s\n",
           "Progress   step 50/100  epoch 1/2  loss 0.5000  acc 0.7500  lr 0.01  640 img/s\n",
           "Metrics    epoch 1/2  train loss 0.4000 acc 0.8500  test loss 0.3500 acc 0.8750\n",
           "Slopes     learned per activation layer, after epoch 1:\n",
           "  act1  6 channels: mean 0.2500, min 0.1000, max 0.4000\n",
           "  act2  0.3000\n",
       })
    EXPECT_NE(r.out.find(line), std::string::npos) << "missing: " << line << "in:\n" << r.out;
}

TEST_F(ClientCli, GetJsonIsTheJobInProtobufJson) {
  v1::Job j = job("job-3", v1::SUCCEEDED);
  *j.mutable_latest_metrics() = summary();
  j.set_ranks(2);
  fake.service.add_job(j);
  const Result r = run({"get", "job-3", "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  v1::Job parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &parsed).ok()) << r.out;
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, j)) << r.out;
  EXPECT_NE(r.out.find("\"state\": \"SUCCEEDED\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"ranks\": 2"), std::string::npos) << r.out;
}

// ---- token

TEST_F(ClientCli, TokenFlagIsSentAsBearerMetadata) {
  fake.service.required_token = "s3cret";
  const Result r = run({"list", "--token", "s3cret"});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto rec = fake.service.record();
  ASSERT_EQ(rec.authorization.size(), 1u);
  EXPECT_EQ(rec.authorization[0], "Bearer s3cret");
}

TEST_F(ClientCli, TokenFileAndEnvironmentAreSentAsBearerMetadata) {
  fake.service.required_token = "s3cret";
  const std::string file = write_file("token", "  s3cret\n");
  EXPECT_EQ(run({"--token-file", file, "list"}).code, 0);
  env["PRELUDE_TOKEN"] = "s3cret";
  EXPECT_EQ(run({"list"}).code, 0);
  const auto rec = fake.service.record();
  EXPECT_EQ(rec.authorization, (std::vector<std::string>{"Bearer s3cret", "Bearer s3cret"}));
}

TEST_F(ClientCli, MissingTokenIsExit3UnauthenticatedWithAHint) {
  fake.service.required_token = "s3cret";
  const Result r = run({"list"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err.rfind("prelude: UNAUTHENTICATED: this coordinator needs a token", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("--token-file"), std::string::npos) << r.err;
  EXPECT_EQ(fake.service.record().authorization, std::vector<std::string>{""});
}

TEST_F(ClientCli, WrongTokenIsExit3Unauthenticated) {
  fake.service.required_token = "s3cret";
  const Result r = run({"get", "job-1", "--token", "guess"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "prelude: UNAUTHENTICATED: wrong token\n");
}

TEST_F(ClientCli, UnreadableTokenFileIsExit2NamingTheFileWithoutACall) {
  const Result r = run({"list", "--token-file", "/nonexistent/token"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/nonexistent/token"), std::string::npos) << r.err;
  EXPECT_EQ(fake.service.record().calls, 0);
}

// ---- list

TEST_F(ClientCli, ListFollowsNextPageTokenNewestFirst) {
  for (int i = 1; i <= 5; ++i) fake.service.add_job(job("job-" + std::to_string(i), v1::QUEUED));
  fake.service.max_page_size = 2;
  const Result r = run({"list"});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto rec = fake.service.record();
  ASSERT_EQ(rec.list_requests.size(), 3u);
  EXPECT_EQ(rec.list_requests[0].page_token(), "");
  EXPECT_EQ(rec.list_requests[1].page_token(), "2");
  EXPECT_EQ(rec.list_requests[2].page_token(), "4");
  EXPECT_EQ(rec.list_requests[0].page_size(), 50);
  ASSERT_EQ(count_lines(r.out), 6) << r.out;
  std::vector<std::string> ids;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) ids.push_back(line.substr(0, line.find(' ')));
  EXPECT_EQ(ids, (std::vector<std::string>{"ID", "job-5", "job-4", "job-3", "job-2", "job-1"}));
}

TEST_F(ClientCli, ListStopsAtTheLimitAndFiltersByState) {
  for (int i = 1; i <= 5; ++i) fake.service.add_job(job("job-" + std::to_string(i), v1::RUNNING));
  fake.service.max_page_size = 2;
  const Result r = run({"list", "--limit", "3", "--state", "running"});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto rec = fake.service.record();
  ASSERT_EQ(rec.list_requests.size(), 2u);
  EXPECT_EQ(rec.list_requests[0].page_size(), 3);
  EXPECT_EQ(rec.list_requests[1].page_size(), 1);
  EXPECT_EQ(rec.list_requests[0].state(), v1::RUNNING);
  EXPECT_EQ(count_lines(r.out), 4) << r.out;
}

TEST_F(ClientCli, ListShowsModelProgressAccuracyAndPool) {
  v1::Job j = job("job-1", v1::SUCCEEDED);
  j.mutable_spec()->mutable_model()->set_preset("plain-30");
  j.mutable_spec()->mutable_model()->mutable_activation()->set_kind(v1::ActivationSpec::LEAKY_RELU);
  j.mutable_spec()->mutable_model()->mutable_activation()->set_alpha_init(0.2);
  j.mutable_spec()->mutable_model()->mutable_init()->set_scheme(v1::InitSpec::XAVIER_UNIFORM);
  j.set_pool_id("pool-a");
  *j.mutable_progress() = step_50();
  *j.mutable_latest_metrics() = summary();
  fake.service.add_job(j);
  const Result r = run({"list"});
  EXPECT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string header, row;
  std::getline(lines, header);
  std::getline(lines, row);
  EXPECT_EQ(header.substr(0, header.find("NAME")), "ID     STATE      ");
  for (const std::string column : {"ID", "STATE", "NAME", "MODEL", "PROGRESS", "TEST ACC", "POOL", "AGE"})
    EXPECT_NE(header.find(column), std::string::npos) << header;
  EXPECT_EQ(row.rfind("job-1  SUCCEEDED  tiny  plain-30 leaky(a=0.2) xavier-uniform  100/100   0.8750    pool-a  ", 0), 0u)
      << row;
}

TEST_F(ClientCli, ListWithNoJobsSaysSoOnStderr) {
  const Result r = run({"list", "--state", "FAILED"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "no jobs in state FAILED\n");
}

// ---- metrics

// What `metrics` prints for history(...).
const std::string kMetricsCsv =
    "event,epoch,step,loss,accuracy,learning_rate,train_loss,train_accuracy,test_loss,test_accuracy,"
    "images_per_second\n"
    "step,1,50,0.5,0.75,0.01,,,,,640\n"
    "epoch,1,100,,,,0.4,0.85,0.35,0.875,\n"
    "summary,,100,,,,0.4,,0.35,0.875,650\n";

TEST_F(ClientCli, MetricsCsvHasTheHeaderAndOneRowPerStepEpochAndSummary) {
  fake.service.add_job(job("job-1", v1::SUCCEEDED));
  fake.service.events["job-1"] = history(v1::SUCCEEDED, "done");
  const Result r = run({"metrics", "job-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, kMetricsCsv);
}

// Events stored before TrainingEvent.kind existed (and those the trainer still
// sends) give their kind by name only: watched and exported as if it were set.
TEST_F(ClientCli, EventsNamingTheirKindOnlyAreWatchedAndExportedTheSame) {
  fake.service.add_job(job("job-1", v1::SUCCEEDED));
  fake.service.events["job-1"] = history(v1::SUCCEEDED, "done");
  live = true;  // the step is the progress line
  const Result live_by_kind = run({"watch", "job-1"});
  EXPECT_NE(live_by_kind.out.find("\rRUNNING  epoch 1/2  [###"), std::string::npos) << live_by_kind.out;

  for (auto& e : fake.service.events["job-1"])
    if (e.has_training()) e.mutable_training()->clear_kind();
  const Result live_by_name = run({"watch", "job-1"});
  EXPECT_EQ(live_by_name.code, 0) << live_by_name.err;
  EXPECT_EQ(live_by_name.out, live_by_kind.out);
  live = false;
  const Result plain = run({"watch", "job-1"});
  EXPECT_EQ(plain.code, 0) << plain.err;
  EXPECT_EQ(plain.out, kWatchedHistory + "2026-01-02T03:04:12Z  SUCCEEDED\njob job-1 SUCCEEDED\n");
  const Result csv = run({"metrics", "job-1"});
  EXPECT_EQ(csv.code, 0) << csv.err;
  EXPECT_EQ(csv.out, kMetricsCsv);
}

TEST_F(ClientCli, MetricsJsonIsOneTrainingEventPerLineWithProtoNamesDiagnosticsAndAlphas) {
  fake.service.add_job(job("job-1", v1::SUCCEEDED));
  fake.service.events["job-1"] = history(v1::SUCCEEDED, "done");
  const Result r = run({"metrics", "job-1", "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  const std::vector<v1::TrainingEvent> expected = {diagnostics(), step_50(), epoch_1(), summary()};
  std::istringstream lines(r.out);
  std::vector<std::string> got;
  for (std::string line; std::getline(lines, line);) got.push_back(line);
  ASSERT_EQ(got.size(), expected.size()) << r.out;
  for (size_t i = 0; i < got.size(); ++i) {
    v1::TrainingEvent parsed;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(got[i], &parsed).ok()) << got[i];
    EXPECT_TRUE(MessageDifferencer::Equals(parsed, expected[i])) << got[i];
  }
  EXPECT_NE(got[0].find("\"activation_std\""), std::string::npos) << got[0];
  EXPECT_NE(got[2].find("\"alphas\":[{\"layer\":\"act1\""), std::string::npos) << got[2];
  EXPECT_NE(got[3].find("\"test_accuracy\":0.875"), std::string::npos) << got[3];
}

TEST_F(ClientCli, MetricsOfALongJobPassGrpcsDefault4MBMessageLimit) {
  fake.service.add_job(job("job-1", v1::SUCCEEDED));
  auto& events = fake.service.events["job-1"];
  v1::GetMetricsResponse size_check;
  for (int i = 1; i <= 80000; ++i) {
    v1::TrainingEvent t = step_50();
    t.set_step(i);
    events.push_back(training_event(i, t));
    *size_check.add_events() = events.back();
  }
  ASSERT_GT(size_check.ByteSizeLong(), 4u << 20);
  fake.service.metrics_page_size = 7000;
  const Result r = run({"metrics", "job-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 80001);
  // In pages, followed to the end: 11 full ones and the rest.
  const auto requests = fake.service.record().metrics_requests;
  ASSERT_EQ(requests.size(), 12u);
  EXPECT_EQ(requests[0].page_token(), "");
  EXPECT_EQ(requests[11].page_token(), "77000");
}

// A requeued job trains again: by default only its latest attempt is printed.
TEST_F(ClientCli, MetricsShowTheLatestAttemptUnlessAskedForOneOrAll) {
  v1::Job j = job("job-1", v1::SUCCEEDED);
  j.set_attempts(2);
  fake.service.add_job(j);
  auto& events = fake.service.events["job-1"];
  int64_t seq = 0;
  for (int attempt : {1, 2})
    for (int step : attempt == 1 ? std::vector<int>{5, 10, 15} : std::vector<int>{5, 10}) {
      v1::TrainingEvent t = step_50();
      t.set_step(step);
      events.push_back(training_event(++seq, t));
      events.back().set_attempt(attempt);
    }
  const auto steps = [](const std::string& csv, size_t column) {
    std::vector<std::string> out;
    std::istringstream lines(csv);
    std::string line;
    std::getline(lines, line);  // the header
    while (std::getline(lines, line)) {
      std::istringstream cells(line);
      std::string cell;
      for (size_t i = 0; i <= column; ++i) std::getline(cells, cell, ',');
      out.push_back(cell);
    }
    return out;
  };
  Result r = run({"metrics", "job-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(steps(r.out, 2), (std::vector<std::string>{"5", "10"})) << r.out;
  EXPECT_EQ(r.err, "prelude: job-1: attempt 2 of 2 (--attempt N or --attempt all for the others)\n");
  r = run({"metrics", "job-1", "--attempt", "1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(steps(r.out, 2), (std::vector<std::string>{"5", "10", "15"})) << r.out;
  EXPECT_EQ(r.err, "");
  r = run({"metrics", "job-1", "--attempt", "all"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')),
            "attempt,event,epoch,step,loss,accuracy,learning_rate,train_loss,train_accuracy,test_loss,test_accuracy,"
            "images_per_second");
  EXPECT_EQ(steps(r.out, 0), (std::vector<std::string>{"1", "1", "1", "2", "2"})) << r.out;
  EXPECT_EQ(steps(r.out, 3), (std::vector<std::string>{"5", "10", "15", "5", "10"})) << r.out;
  r = run({"metrics", "job-1", "--attempt", "all", "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("{\"attempt\":1,\"event\":\"step\"", 0), 0u) << r.out;
  EXPECT_EQ(count_lines(r.out), 5);
  for (const char* bad : {"0", "x", "-1", ""}) {
    r = run({"metrics", "job-1", "--attempt", bad});
    EXPECT_EQ(r.code, 2) << bad << ": " << r.err;
    EXPECT_NE(r.err.find("--attempt"), std::string::npos) << r.err;
  }
  const auto requests = fake.service.record().metrics_requests;
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests[0].attempt(), 0);
  EXPECT_FALSE(requests[0].all_attempts());
}

// Nothing from the server drives the terminal: control characters in what the
// client prints (names, errors, reasons, layer names, error messages) are escaped.
TEST_F(ClientCli, ControlCharactersFromTheServerAreEscapedBeforePrinting) {
  v1::Job j = job("job-1", v1::FAILED);
  j.mutable_spec()->set_name("evil\x1b]0;owned\x07");
  j.set_error("diverged\x1b[2J\x1b[H at step 3\xc2\x9b" "31m");
  j.set_pool_id("pool\x1b[31m");
  fake.service.add_job(j);
  v1::TrainingEvent t = diagnostics();
  t.set_layers(0, "conv\x1b[5m1");
  fake.service.events["job-1"] = {state_event(1, v1::QUEUED, "submitted\x1b[2J"),
                                  training_event(2, t), training_event(3, step_50()),
                                  state_event(4, v1::FAILED, "diverged\x1b[2J")};
  const auto no_escapes = [](const Result& r, const std::string& what) {
    for (const std::string* text : {&r.out, &r.err})
      for (unsigned char c : *text)
        if (c == 0x1b || c == 0x07 || c == 0x9b) {
          ADD_FAILURE() << what << " printed a control character: " << *text;
          return;
        }
  };
  Result r = run({"get", "job-1"});
  no_escapes(r, "get");
  EXPECT_NE(r.out.find("diverged\\x1b[2J\\x1b[H at step 3\\u009b31m"), std::string::npos) << r.out;
  no_escapes(run({"get", "job-1", "--format", "json"}), "get --format json");
  no_escapes(run({"list"}), "list");
  r = run({"metrics", "job-1", "--format", "json"});
  no_escapes(r, "metrics");
  EXPECT_NE(r.out.find("conv\\\\x1b[5m1"), std::string::npos) << r.out;  // a backslash, escaped in JSON
  r = run({"watch", "job-1"});
  no_escapes(r, "watch");
  EXPECT_NE(r.out.find("diverged\\x1b[2J"), std::string::npos) << r.out;
  r = run({"get", "job-\x1b[2J"});  // the fake's NOT_FOUND echoes the id
  EXPECT_EQ(r.code, 3);
  no_escapes(r, "an error");
  EXPECT_NE(r.err.find("job-\\x1b[2J"), std::string::npos) << r.err;
}

TEST_F(ClientCli, MetricsOfAnUnknownJobIsExit3NotFound) {
  const Result r = run({"metrics", "job-9", "--format", "csv"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "prelude: NOT_FOUND: job-9: no such job\n");
}

// ---- watch

TEST_F(ClientCli, WatchOffATerminalPrintsPlainLinesAndExits0WhenTheJobSucceeds) {
  fake.service.add_job(job("job-1", v1::SUCCEEDED));
  fake.service.events["job-1"] = history(v1::SUCCEEDED, "done");
  const Result r = run({"watch", "job-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, kWatchedHistory + "2026-01-02T03:04:12Z  SUCCEEDED\njob job-1 SUCCEEDED\n");
  EXPECT_EQ(r.out.find_first_of("\r\x1b"), std::string::npos);
  EXPECT_EQ(r.err, "");
}

TEST_F(ClientCli, WatchExits4WithTheErrorWhenTheJobFails) {
  fake.service.add_job(job("job-2", v1::FAILED));
  fake.service.events["job-2"] = history(v1::FAILED, "diverged at step 60: loss is nan");
  const Result r = run({"watch", "job-2"});
  EXPECT_EQ(r.code, 4);
  EXPECT_EQ(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1),
            "job job-2 FAILED: diverged at step 60: loss is nan\n");
}

TEST_F(ClientCli, WatchExits4WhenTheJobIsCancelled) {
  fake.service.add_job(job("job-3", v1::CANCELLED));
  fake.service.events["job-3"] = {state_event(1, v1::QUEUED), state_event(2, v1::CANCELLED, "cancelled by a client")};
  const Result r = run({"watch", "job-3"});
  EXPECT_EQ(r.code, 4);
  EXPECT_EQ(r.out,
            "2026-01-02T03:04:06Z  QUEUED\n"
            "2026-01-02T03:04:07Z  CANCELLED cancelled by a client\n"
            "job job-3 CANCELLED: cancelled by a client\n");
}

TEST_F(ClientCli, WatchResumesAfterTheLastEventSeenWhenTheStreamBreaks) {
  fake.service.add_job(job("job-1", v1::SUCCEEDED));
  fake.service.events["job-1"] = history(v1::SUCCEEDED, "done");
  fake.service.break_first_watch_after = 4;
  const Result r = run({"watch", "job-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  // Every event exactly once, as without the break.
  EXPECT_EQ(r.out, kWatchedHistory + "2026-01-02T03:04:12Z  SUCCEEDED\njob job-1 SUCCEEDED\n");
  const auto rec = fake.service.record();
  ASSERT_EQ(rec.watch_requests.size(), 2u);
  EXPECT_EQ(rec.watch_requests[0].after_seq(), 0);
  EXPECT_EQ(rec.watch_requests[1].after_seq(), 4);
  EXPECT_NE(r.err.find("lost the event stream of job-1 (UNAVAILABLE"), std::string::npos) << r.err;
}

TEST_F(ClientCli, WatchOnATerminalRedrawsOneProgressLineAndKeepsEpochLines) {
  live = true;
  fake.service.add_job(job("job-1", v1::SUCCEEDED));
  fake.service.events["job-1"] = history(v1::SUCCEEDED, "done");
  const Result r = run({"watch", "job-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  const std::string progress =
      "\rRUNNING  epoch 1/2  [##########----------]  50/100  loss 0.5000  acc 0.7500  lr 0.01  640 img/s  ETA 5s"
      "\x1b[K";
  EXPECT_NE(r.out.find(progress), std::string::npos) << r.out;
  // The epoch line replaces the progress line and stays.
  EXPECT_NE(r.out.find(progress + "\r\x1b[K2026-01-02T03:04:10Z  epoch 1/2  train loss 0.4000"), std::string::npos)
      << r.out;
  const std::string end = "SUCCEEDED\njob job-1 SUCCEEDED\n";
  ASSERT_GE(r.out.size(), end.size());
  EXPECT_EQ(r.out.substr(r.out.size() - end.size()), end) << r.out;
}

TEST_F(ClientCli, WatchOfAnUnknownJobIsExit3NotFound) {
  const Result r = run({"watch", "job-404"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "prelude: NOT_FOUND: job-404: no such job\n");
}

// ---- cancel

TEST_F(ClientCli, CancelARunningJobSaysItStopsAtItsNextStep) {
  fake.service.add_job(job("job-2", v1::RUNNING));
  const Result r = run({"cancel", "job-2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "job-2 RUNNING: cancel requested, stopping at its next step\n");
  EXPECT_EQ(fake.service.record().cancelled, std::vector<std::string>{"job-2"});
}

TEST_F(ClientCli, CancelAQueuedJobPrintsCancelled) {
  fake.service.add_job(job("job-1", v1::QUEUED));
  const Result r = run({"cancel", "job-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "job-1 CANCELLED\n");
}

TEST_F(ClientCli, CancelAnEndedJobIsExit3FailedPrecondition) {
  fake.service.add_job(job("job-1", v1::SUCCEEDED));
  const Result r = run({"cancel", "job-1"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "prelude: FAILED_PRECONDITION: job-1: has already ended (SUCCEEDED)\n");
}

// ---- sweeps

// A job of a sweep at its grid point.
v1::Job sweep_job(const std::string& id, const std::string& point, v1::JobState state,
                  const std::string& error = "") {
  v1::Job j = job(id, state);
  j.set_sweep_point(point);
  j.set_error(error);
  return j;
}

// An entry of a WatchSweep script: what changes in a job (fields left unset stay).
v1::Job change(const std::string& id, v1::JobState state, const std::string& error = "") {
  v1::Job j;
  j.set_job_id(id);
  j.set_state(state);
  j.set_error(error);
  return j;
}

v1::Job with_progress(v1::Job j, int step) {
  set_event_kind(j.mutable_progress(), v1::TrainingEvent::STEP);
  j.mutable_progress()->set_step(step);
  j.mutable_progress()->set_total_steps(100);
  return j;
}

constexpr const char* kRelu = "model.activation.kind=RELU";
constexpr const char* kLeaky = "model.activation.kind=LEAKY_RELU";
constexpr const char* kPrelu = "model.activation.kind=PRELU_SHARED";

class ClientSweep : public ClientCli {
 protected:
  // sweep-1 "rectifiers": job-1..job-3 at the three points, all queued, then (if
  // watched) each runs and succeeds in turn, with a progress-only update between.
  void add_queued_sweep() {
    v1::Sweep sweep;
    sweep.set_sweep_id("sweep-1");
    sweep.mutable_spec()->set_name("rectifiers");
    sweep.mutable_create_time()->set_seconds(kT0);
    fake.service.add_sweep(sweep, {sweep_job("job-1", kRelu, v1::QUEUED), sweep_job("job-2", kLeaky, v1::QUEUED),
                                   sweep_job("job-3", kPrelu, v1::QUEUED)});
    fake.service.sweep_changes["sweep-1"] = {
        {change("job-1", v1::RUNNING)},
        {with_progress(change("job-1", v1::RUNNING), 50)},  // no state change: no line
        {change("job-1", v1::SUCCEEDED), change("job-2", v1::RUNNING)},
        {change("job-2", v1::SUCCEEDED), change("job-3", v1::RUNNING)},
        {change("job-3", v1::SUCCEEDED)},
    };
  }
};

// What `watch sweep-1` prints for add_queued_sweep(): each state change once.
const std::string kWatchedSweep =
    "job-1  QUEUED  model.activation.kind=RELU\n"
    "job-2  QUEUED  model.activation.kind=LEAKY_RELU\n"
    "job-3  QUEUED  model.activation.kind=PRELU_SHARED\n"
    "job-1  RUNNING  model.activation.kind=RELU\n"
    "job-1  SUCCEEDED  model.activation.kind=RELU\n"
    "job-2  RUNNING  model.activation.kind=LEAKY_RELU\n"
    "job-2  SUCCEEDED  model.activation.kind=LEAKY_RELU\n"
    "job-3  RUNNING  model.activation.kind=PRELU_SHARED\n"
    "job-3  SUCCEEDED  model.activation.kind=PRELU_SHARED\n"
    "sweep-1: 3 of 3 jobs succeeded; `prelude compare sweep-1` compares them\n";

TEST_F(ClientSweep, GetShowsCountsAndEveryJobInGridOrderWithPointsProgressAndErrors) {
  v1::Sweep sweep;
  sweep.set_sweep_id("sweep-000001");
  sweep.mutable_spec()->set_name("rectifiers");
  sweep.mutable_create_time()->set_seconds(kT0);
  v1::Job done = with_progress(sweep_job("job-000001", kRelu, v1::SUCCEEDED), 100);
  *done.mutable_latest_metrics() = summary();
  v1::Job failed = with_progress(sweep_job("job-000002", kLeaky, v1::FAILED, "diverged at step 60: loss is nan"), 60);
  v1::Job stopping = with_progress(sweep_job("job-000003", kPrelu, v1::RUNNING), 50);
  stopping.set_cancel_requested(true);
  fake.service.add_sweep(sweep, {done, failed, stopping, sweep_job("job-000004", kRelu, v1::QUEUED),
                                 sweep_job("job-000005", kLeaky, v1::QUEUED)});

  const Result r = run({"get", "sweep-000001"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  for (const std::string part : {
           "ID         sweep-000001\n",
           "Name       rectifiers\n",
           "Created    2026-01-02T03:04:05Z (",
           "Jobs       5 jobs: 1 succeeded, 1 failed, 1 running, 2 queued\n",
           "\n"
           "ID          STATE               POINT                               PROGRESS  TEST ACC\n"
           "job-000001  SUCCEEDED           model.activation.kind=RELU          100/100   0.8750\n"
           "job-000002  FAILED              model.activation.kind=LEAKY_RELU    60/100    -\n"
           "job-000003  RUNNING (stopping)  model.activation.kind=PRELU_SHARED  50/100    -\n"
           "job-000004  QUEUED              model.activation.kind=RELU          -         -\n"
           "job-000005  QUEUED              model.activation.kind=LEAKY_RELU    -         -\n",
           "\nFailed:\n  job-000002  diverged at step 60: loss is nan\n",
           "prelude compare sweep-000001\n",
       })
    EXPECT_NE(r.out.find(part), std::string::npos) << "missing: " << part << "in:\n" << r.out;
  // One GetSweep, no job calls.
  const auto rec = fake.service.record();
  EXPECT_EQ(rec.got_sweeps, std::vector<std::string>{"sweep-000001"});
  EXPECT_EQ(rec.calls, 1);
}

TEST_F(ClientSweep, GetJsonIsTheSweepStatusInProtobufJson) {
  add_queued_sweep();
  const Result r = run({"get", "sweep-1", "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  v1::SweepStatus parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &parsed).ok()) << r.out;
  EXPECT_EQ(parsed.sweep().sweep_id(), "sweep-1");
  EXPECT_EQ(parsed.sweep().spec().name(), "rectifiers");
  ASSERT_EQ(parsed.jobs_size(), 3);
  EXPECT_TRUE(MessageDifferencer::Equals(parsed.jobs(1), fake.service.jobs.at("job-2"))) << r.out;
}

TEST_F(ClientSweep, AnUnknownSweepIsExit3NotFoundWithTheServersMessage) {
  for (const std::string command : {"get", "watch", "cancel"}) {
    const Result r = run({command, "sweep-404"});
    EXPECT_EQ(r.code, 3) << command;
    EXPECT_EQ(r.out, "") << command;
    EXPECT_EQ(r.err, "prelude: NOT_FOUND: sweep 'sweep-404' does not exist\n") << command;
  }
  // A job id still goes to the job calls.
  EXPECT_EQ(run({"get", "job-404"}).err, "prelude: NOT_FOUND: job-404: no such job\n");
}

TEST_F(ClientSweep, WatchPrintsEachStateChangeOnceThenTheSummaryAndExits0WhenAllSucceeded) {
  add_queued_sweep();
  const Result r = run({"watch", "sweep-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, kWatchedSweep);
  EXPECT_EQ(r.out.find_first_of("\r\x1b"), std::string::npos);  // no live line off a terminal
  EXPECT_EQ(r.err, "");
  const auto rec = fake.service.record();
  EXPECT_EQ(rec.watched_sweeps, std::vector<std::string>{"sweep-1"});
  EXPECT_TRUE(rec.got_sweeps.empty());  // the stream, no polling
}

TEST_F(ClientSweep, WatchExits4WithTheErrorWhenAJobFails) {
  add_queued_sweep();
  fake.service.sweep_changes["sweep-1"] = {
      {change("job-1", v1::RUNNING), change("job-2", v1::RUNNING), change("job-3", v1::RUNNING)},
      {change("job-1", v1::SUCCEEDED), change("job-2", v1::FAILED, "diverged at step 60: loss is nan")},
      {change("job-3", v1::SUCCEEDED)},
  };
  const Result r = run({"watch", "sweep-1"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.out.find("\njob-2  FAILED  model.activation.kind=LEAKY_RELU: diverged at step 60: loss is nan\n"),
            std::string::npos)
      << r.out;
  const std::string last = "sweep-1: 2 of 3 jobs succeeded; `prelude compare sweep-1` compares them\n";
  ASSERT_GE(r.out.size(), last.size());
  EXPECT_EQ(r.out.substr(r.out.size() - last.size()), last) << r.out;
  EXPECT_EQ(count_lines(r.out), 3 + 3 + 3 + 1) << r.out;  // queued, running, ended, summary
}

TEST_F(ClientSweep, WatchExits4WhenAJobIsCancelledAndShowsTheCancelRequest) {
  add_queued_sweep();
  v1::Job asked = change("job-1", v1::RUNNING);
  asked.set_cancel_requested(true);
  fake.service.sweep_changes["sweep-1"] = {
      {change("job-1", v1::RUNNING)},
      {asked},
      {change("job-1", v1::CANCELLED, "cancelled by a client"), change("job-2", v1::CANCELLED, "cancelled before it started"),
       change("job-3", v1::CANCELLED, "cancelled before it started")},
  };
  const Result r = run({"watch", "sweep-1"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.out.find("job-1  RUNNING  model.activation.kind=RELU\n"
                       "job-1  RUNNING  model.activation.kind=RELU: cancel requested, stopping at its next step\n"
                       "job-1  CANCELLED  model.activation.kind=RELU: cancelled by a client\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("sweep-1: 0 of 3 jobs succeeded;"), std::string::npos) << r.out;
}

TEST_F(ClientSweep, WatchReconnectsAfterUnavailableWithoutPrintingALineTwice) {
  add_queued_sweep();
  // Two statuses (all queued; job-1 running), then the coordinator restarts; the new
  // stream starts with the whole sweep again, whose states were all printed already.
  fake.service.break_first_sweep_watch_after = 2;
  const Result r = run({"watch", "sweep-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, kWatchedSweep);
  EXPECT_NE(r.err.find("prelude: lost the status stream of sweep-1 (UNAVAILABLE: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("reconnecting in 0.25s (1/5)"), std::string::npos) << r.err;
  EXPECT_EQ(fake.service.record().watched_sweeps, (std::vector<std::string>{"sweep-1", "sweep-1"}));
}

TEST_F(ClientSweep, WatchOnATerminalRedrawsOneProgressLineForTheSweep) {
  live = true;
  add_queued_sweep();
  const Result r = run({"watch", "sweep-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  // After job-1 reached step 50 of 100: half a job of three done.
  EXPECT_NE(r.out.find("\rsweep-1  [###-----------------]  16%  3 jobs: 1 running, 2 queued\x1b[K"), std::string::npos)
      << r.out;
  // A state line clears the live line first.
  EXPECT_NE(r.out.find("\r\x1b[Kjob-1  SUCCEEDED  model.activation.kind=RELU\n"), std::string::npos) << r.out;
  const std::string end = "\r\x1b[Ksweep-1: 3 of 3 jobs succeeded; `prelude compare sweep-1` compares them\n";
  ASSERT_GE(r.out.size(), end.size());
  EXPECT_EQ(r.out.substr(r.out.size() - end.size()), end) << r.out;
}

TEST_F(ClientSweep, CancelSaysWhatWasCancelledStoppingAndAlreadyEnded) {
  v1::Sweep sweep;
  sweep.set_sweep_id("sweep-1");
  fake.service.add_sweep(sweep, {sweep_job("job-1", kRelu, v1::SUCCEEDED), sweep_job("job-2", kLeaky, v1::RUNNING),
                                 sweep_job("job-3", kPrelu, v1::QUEUED), sweep_job("job-4", kRelu, v1::QUEUED),
                                 sweep_job("job-5", kLeaky, v1::FAILED, "stalled")});
  const Result r = run({"cancel", "sweep-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "job-2 RUNNING: cancel requested, stopping at its next step\n"
            "job-3 CANCELLED\n"
            "job-4 CANCELLED\n"
            "sweep-1: 2 cancelled, 1 stopping at its next step, 2 had already ended (1 succeeded, 1 failed)\n");
  const auto rec = fake.service.record();
  EXPECT_EQ(rec.cancelled_sweeps, std::vector<std::string>{"sweep-1"});
  EXPECT_TRUE(rec.cancelled.empty());  // CancelSweep, not one CancelJob per job

  // Again: the jobs cancelled a moment ago count as ended, the running one is still stopping.
  const Result again = run({"cancel", "sweep-1"});
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.out,
            "job-2 RUNNING: cancel requested, stopping at its next step\n"
            "sweep-1: 1 stopping at its next step, 4 had already ended (1 succeeded, 1 failed, 2 cancelled)\n");
}

TEST_F(ClientSweep, CancelOfASweepThatHasEndedHasNothingToCancel) {
  v1::Sweep sweep;
  sweep.set_sweep_id("sweep-1");
  fake.service.add_sweep(sweep, {sweep_job("job-1", kRelu, v1::SUCCEEDED), sweep_job("job-2", kLeaky, v1::CANCELLED)});
  const Result r = run({"cancel", "sweep-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "sweep-1: nothing to cancel; all 2 jobs had already ended (1 succeeded, 1 cancelled)\n");
}

TEST_F(ClientSweep, SweepWatchSubmitsThenFollowsTheStatusStream) {
  const std::string path = write_file("acts.json", R"({ "name": "acts", "base": { "training": { "maxSteps": 5 } },
    "grid": [ { "field": "model.activation.kind", "values": ["RELU", "PRELU_SHARED"] } ] })");
  fake.service.sweep_changes["sweep-1"] = {
      {change("job-1", v1::RUNNING)},
      {change("job-1", v1::SUCCEEDED), change("job-2", v1::RUNNING)},
      {change("job-2", v1::FAILED, "diverged at step 3: loss is nan")},
  };
  const Result r = run({"sweep", path, "--watch"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_EQ(r.out,
            "sweep-1\n"
            "job-1  QUEUED  model.activation.kind=RELU\n"
            "job-2  QUEUED  model.activation.kind=PRELU_SHARED\n"
            "job-1  RUNNING  model.activation.kind=RELU\n"
            "job-1  SUCCEEDED  model.activation.kind=RELU\n"
            "job-2  RUNNING  model.activation.kind=PRELU_SHARED\n"
            "job-2  FAILED  model.activation.kind=PRELU_SHARED: diverged at step 3: loss is nan\n"
            "sweep-1: 1 of 2 jobs succeeded; `prelude compare sweep-1` compares them\n");
  EXPECT_EQ(r.err, "job-1  model.activation.kind=RELU\njob-2  model.activation.kind=PRELU_SHARED\n");
  const auto rec = fake.service.record();
  ASSERT_EQ(rec.submitted_sweeps.size(), 1u);
  EXPECT_EQ(rec.submitted_sweeps[0].name(), "acts");
  EXPECT_EQ(rec.watched_sweeps, std::vector<std::string>{"sweep-1"});
  EXPECT_TRUE(rec.got_sweeps.empty());  // no polling
}

TEST_F(ClientSweep, HelpSaysGetWatchAndCancelTakeSweepIds) {
  for (const std::string command : {"get", "watch", "cancel"}) {
    const Result r = run_raw({command, "--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("ID is a job id (job-"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("a sweep id (sweep-000001)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("  prelude " + command + " sweep-000001\n"), std::string::npos) << r.out;
  }
  EXPECT_NE(run_raw({"watch", "--help"}).out.find("4 the job (or a job of the sweep) ended FAILED or CANCELLED"),
            std::string::npos);
  EXPECT_EQ(fake.service.record().calls, 0);
}

// ---- addresses and global flags

TEST_F(ClientCli, UnreachableCoordinatorIsExit3Quickly) {
  const std::string address = unused_address();
  const auto start = std::chrono::steady_clock::now();
  const Result r = run_raw({"--coordinator", address, "get", "job-1"});
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err.rfind("prelude: UNAVAILABLE: cannot reach the coordinator at " + address + ": ", 0), 0u) << r.err;
  EXPECT_LT(seconds, 5.0);
}

TEST_F(ClientCli, GlobalFlagsMayFollowTheCommand) {
  fake.service.add_job(job("job-1", v1::QUEUED));
  const Result r = run_raw({"get", "job-1", "--format=json", "--coordinator=" + fake.address()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"jobId\": \"job-1\""), std::string::npos) << r.out;
}

TEST_F(ClientCli, CoordinatorAddressComesFromTheEnvironment) {
  fake.service.add_job(job("job-1", v1::QUEUED));
  env["PRELUDE_COORDINATOR"] = fake.address();
  const Result r = run_raw({"cancel", "job-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "job-1 CANCELLED\n");
}

// ---- usage

TEST_F(ClientCli, UsageErrorsAreExit2NamingTheProblemWithoutACall) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "prelude: missing command"},
      {{"launch"}, "prelude: unknown command 'launch'"},
      {{"list", "--bogus"}, "prelude: unknown option '--bogus' for 'list'"},
      {{"get"}, "prelude: get: missing ID"},
      {{"get", "job-1", "job-2"}, "prelude: get: unexpected argument 'job-2'"},
      {{"submit"}, "prelude: submit: missing JOB.json"},
      {{"list", "--limit"}, "prelude: --limit: needs a value (N)"},
      {{"list", "--limit", "many"}, "prelude: --limit: must be a whole number from 1 to 1000000, got 'many'"},
      {{"list", "--state", "done"}, "prelude: --state: must be one of queued, running, succeeded, failed, cancelled"},
      {{"get", "job-1", "--format", "yaml"}, "prelude: --format: must be one of text, json, got 'yaml'"},
      {{"metrics", "job-1", "--format", "text"}, "prelude: --format: must be one of csv, json, got 'text'"},
      {{"watch", "job-1", "--watch"}, "prelude: unknown option '--watch' for 'watch'"},
      {{"metrics", "sweep-1"}, "prelude: ID: metrics takes a job id, not a sweep id ('sweep-1'); `prelude compare sweep-1`"},
      {{"cancel", "job-1", "--timeout", "0"}, "prelude: --timeout: must be a number of seconds above 0"},
      {{"list", "--token", "a", "--token-file", "f"}, "prelude: --token and --token-file: give only one of them"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = run(args);
    EXPECT_EQ(r.code, 2) << ::testing::PrintToString(args);
    EXPECT_EQ(r.err.rfind(message, 0), 0u) << ::testing::PrintToString(args) << " -> " << r.err;
    EXPECT_NE(r.err.find("--help` for usage"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_EQ(fake.service.record().calls, 0);
}

TEST_F(ClientCli, HelpForEachCommandIsExit0OnStdout) {
  const Result global = run_raw({"--help"});
  EXPECT_EQ(global.code, 0);
  for (const std::string part : {"usage: prelude", "submit JOB.json", "metrics ID", "--coordinator ADDR",
                                 "PRELUDE_TOKEN", "exit codes:", "  4  the watched job ended FAILED or CANCELLED"})
    EXPECT_NE(global.out.find(part), std::string::npos) << part;
  for (const std::string command : {"submit", "list", "get", "watch", "cancel", "metrics"}) {
    const Result r = run_raw({command, "--help"});
    EXPECT_EQ(r.code, 0) << command;
    EXPECT_EQ(r.out.rfind("usage: prelude " + command, 0), 0u) << r.out;
    EXPECT_NE(r.out.find("exit codes:"), std::string::npos) << r.out;
    EXPECT_EQ(run_raw({"help", command}).out, r.out);
  }
  EXPECT_NE(run_raw({"list", "-h"}).out.find("--state STATE"), std::string::npos);
  EXPECT_NE(run_raw({"submit", "--help"}).out.find("--watch"), std::string::npos);
  EXPECT_EQ(fake.service.record().calls, 0);
}

}  // namespace
}  // namespace prelude::client
