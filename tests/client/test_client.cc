// The client's formatting against hand-written expectations, and its command
// line's errors (usage, bad job files, an unreachable coordinator).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli.h"
#include "client/render.h"

using namespace prelude::client;
namespace v1 = prelude::v1;

namespace {

v1::JobEvent training(int64_t seq, const v1::TrainingEvent& t) {
  v1::JobEvent e;
  e.set_seq(seq);
  *e.mutable_training() = t;
  return e;
}

struct Run {
  int code;
  std::string out, err;
};

Run cli(std::vector<std::string> args) {
  args.insert(args.begin(), "prelude");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  const int code = run_cli(static_cast<int>(argv.size()), argv.data(), out, err, false);
  return {code, out.str(), err.str()};
}

}  // namespace

TEST(Render, MetricsCsvHasOneRowPerStepEpochAndSummaryWithEmptyCellsForUnsetValues) {
  v1::TrainingEvent diag, step, epoch, summary;
  diag.set_event("diagnostics");
  step.set_event("step"), step.set_epoch(1), step.set_step(50), step.set_loss(0.5), step.set_accuracy(0.75);
  step.set_learning_rate(0.01), step.set_images_per_second(900);
  epoch.set_event("epoch"), epoch.set_epoch(1), epoch.set_step(100), epoch.set_train_loss(0.4);
  epoch.set_train_accuracy(0.8), epoch.set_test_loss(0.3), epoch.set_test_accuracy(0.9);
  summary.set_event("summary"), summary.set_steps(100), summary.set_test_accuracy(0.9);
  summary.set_train_images_per_second(950.25);
  const std::string csv = metrics_csv({training(1, diag), training(2, step), training(3, epoch), training(4, summary)});
  EXPECT_EQ(csv,
            "event,epoch,step,loss,accuracy,learning_rate,train_loss,train_accuracy,test_loss,test_accuracy,"
            "images_per_second\n"
            "step,1,50,0.5,0.75,0.01,,,,,900.0\n"
            "epoch,1,100,,,,0.4,0.8,0.3,0.9,\n"
            "summary,,100,,,,,,,0.9,950.2\n");
}

TEST(Render, ProgressLineShowsBarAndEtaFromImagesPerSecond) {
  v1::JobSpec spec;
  spec.mutable_training()->set_epochs(3);
  spec.mutable_training()->set_batch_size(64);
  v1::TrainingEvent t;
  t.set_epoch(2), t.set_step(250), t.set_total_steps(1000), t.set_loss(0.25), t.set_accuracy(0.9);
  t.set_images_per_second(640);
  // 750 steps left x 64 images / 640 images/s = 75 s.
  EXPECT_EQ(progress_line(t, spec, 8), "epoch 2/3 [##......] step 250/1000 loss 0.2500 acc 0.900 640 img/s ETA 1m15s");
}

TEST(Render, DurationsAndEventLines) {
  EXPECT_EQ(format_duration(42), "42s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3720), "1h02m");
  v1::JobEvent e;
  e.mutable_state_change()->set_state(v1::QUEUED);
  e.mutable_state_change()->set_reason("pool pool-1.1 stopped responding; requeued");
  EXPECT_EQ(event_line(e), "QUEUED pool pool-1.1 stopped responding; requeued");
  v1::TrainingEvent d;
  d.set_event("diagnostics");
  EXPECT_EQ(event_line(training(1, d)), "");
}

TEST(Render, JobTextSummarisesLearnedSlopesPerLayer) {
  v1::Job job;
  job.set_job_id("job-000007");
  job.set_state(v1::SUCCEEDED);
  auto* m = job.mutable_latest_metrics();
  m->set_event("summary"), m->set_train_loss(0.2), m->set_train_accuracy(0.93);
  auto* a = m->add_alphas();
  a->set_layer("conv1.act");
  for (float v : {0.5f, 0.75f, 1.0f}) a->add_values(v);
  const std::string text = job_text(job);
  EXPECT_NE(text.find("state      SUCCEEDED"), std::string::npos) << text;
  EXPECT_NE(text.find("conv1.act      0.7500   0.5000   1.0000  (3)"), std::string::npos) << text;
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(cli({}).code, kUsage);
  const Run bad = cli({"frobnicate"});
  EXPECT_EQ(bad.code, kUsage);
  EXPECT_NE(bad.err.find("unknown command 'frobnicate'"), std::string::npos) << bad.err;
  EXPECT_EQ(cli({"get"}).code, kUsage);
  EXPECT_EQ(cli({"metrics", "job-1", "--format", "xml"}).code, kUsage);
  EXPECT_EQ(cli({"--help"}).code, kOk);
}

TEST(Cli, MalformedJobFileIsReportedWithItsLineBeforeAnyCall) {
  const std::string path = testing::TempDir() + "bad-job.json";
  std::ofstream(path) << "{\n  \"training\": {\"epochs\": 1,}\n}\n";
  // An address nothing listens on: the file error must come first.
  const Run r = cli({"--coordinator", "127.0.0.1:1", "submit", path});
  EXPECT_EQ(r.code, kUsage);
  EXPECT_NE(r.err.find("bad-job.json:2:"), std::string::npos) << r.err;
}

TEST(Cli, UnreachableCoordinatorExitsThreeWithUnavailable) {
  const Run r = cli({"--coordinator", "127.0.0.1:1", "get", "job-000001"});
  EXPECT_EQ(r.code, kServerError);
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
}

TEST(Cli, UnreadableTokenFileNamesTheFile) {
  const Run r = cli({"--token-file", "/nonexistent/token", "list"});
  EXPECT_EQ(r.code, kUsage);
  EXPECT_NE(r.err.find("/nonexistent/token"), std::string::npos) << r.err;
}
