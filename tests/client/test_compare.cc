// `prelude compare` against hand computations: grouping by grid point with the
// seeds pooled, mean and sample standard deviation, steps to a target loss, the
// learned slopes, failures listed with their reasons.
#include <gtest/gtest.h>

#include "client/compare.h"
#include "spec/events.h"

using namespace prelude::client;
namespace v1 = prelude::v1;

namespace {

v1::Job job(const std::string& id, const std::string& point, v1::JobState state, double acc, double loss,
            std::vector<float> slopes = {}) {
  v1::Job j;
  j.set_job_id(id);
  j.set_sweep_point(point);
  j.set_state(state);
  if (state == v1::SUCCEEDED) {
    auto* m = j.mutable_latest_metrics();
    prelude::set_event_kind(m, v1::TrainingEvent::SUMMARY);
    m->set_test_accuracy(acc);
    m->set_test_loss(loss);
    m->set_train_images_per_second(1000);
    if (!slopes.empty()) {
      auto* a = m->add_alphas();
      a->set_layer("conv1.act");
      for (float s : slopes) a->add_values(s);
    }
  } else {
    j.set_error("training stalled: mean loss 2.3026 ...");
  }
  return j;
}

v1::GetMetricsResponse steps(std::vector<std::pair<int, double>> losses) {
  v1::GetMetricsResponse r;
  for (auto [step, loss] : losses) {
    auto* t = r.add_events()->mutable_training();
    prelude::set_event_kind(t, v1::TrainingEvent::STEP);
    t->set_step(step);
    t->set_loss(loss);
  }
  return r;
}

}  // namespace

TEST(Compare, SeedsPooledPerPointWithMeanAndSampleSd) {
  v1::SweepStatus st;
  *st.add_jobs() = job("job-1", "model.activation.kind=RELU training.seed=1", v1::SUCCEEDED, 0.90, 0.30);
  *st.add_jobs() = job("job-2", "model.activation.kind=RELU training.seed=2", v1::SUCCEEDED, 0.92, 0.28);
  *st.add_jobs() = job("job-3", "model.activation.kind=PRELU_CHANNELWISE training.seed=1", v1::SUCCEEDED, 0.93, 0.25,
                       {0.5f, 0.7f});
  *st.add_jobs() = job("job-4", "model.activation.kind=PRELU_CHANNELWISE training.seed=2", v1::FAILED, 0, 0);
  std::map<std::string, v1::GetMetricsResponse> metrics{{"job-1", steps({{50, 0.9}, {100, 0.45}, {150, 0.3}})},
                                                        {"job-2", steps({{50, 0.48}, {100, 0.4}})},
                                                        {"job-3", steps({{50, 0.7}})}};
  const auto rows = compare_rows(st, metrics, 0.5);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].point, "model.activation.kind=RELU");
  EXPECT_EQ(rows[0].jobs, 2);
  EXPECT_EQ(rows[0].succeeded, 2);
  EXPECT_EQ(rows[0].test_accuracy.n, 2);
  EXPECT_NEAR(rows[0].test_accuracy.mean, 0.91, 1e-12);
  EXPECT_NEAR(rows[0].test_accuracy.sd, 0.0141421356, 1e-9);  // sqrt(2 * 0.01^2 / 1)
  EXPECT_NEAR(rows[0].steps_to_target.mean, 75, 1e-12);       // 100 and 50
  EXPECT_EQ(rows[1].point, "model.activation.kind=PRELU_CHANNELWISE");
  EXPECT_EQ(rows[1].succeeded, 1);
  EXPECT_EQ(rows[1].failed, 1);
  EXPECT_EQ(rows[1].steps_to_target.n, 0) << "never reached 0.5";
  ASSERT_EQ(rows[1].slopes.size(), 1u);
  EXPECT_EQ(rows[1].slopes[0].first, "conv1.act");
  EXPECT_NEAR(rows[1].slopes[0].second.mean, 0.6, 1e-6);  // mean over channels
  ASSERT_EQ(rows[1].failures.size(), 1u);
  EXPECT_EQ(rows[1].failures[0], "job-4: training stalled: mean loss 2.3026 ...");

  const std::string md = render_comparison(rows, "markdown", 0.5);
  EXPECT_NE(md.find("| model.activation.kind=RELU | 2/2 | 0.9100 +- 0.0141 | 0.2900 +- 0.0141 | 1000 +- 0 | 75 +- 35 | - |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("|\n\n- failed: job-4: training stalled"), std::string::npos)
      << "a blank line between the table and the list, none inside it: " << md;
  const std::string plain = render_comparison(rows, "markdown", 0);
  EXPECT_EQ(plain.find("STEPS TO"), std::string::npos) << "no target, no column: " << plain;
  EXPECT_NE(plain.find("| model.activation.kind=RELU | 2/2 | 0.9100 +- 0.0141 | 0.2900 +- 0.0141 | 1000 +- 0 | - |"),
            std::string::npos) << plain;
  const std::string csv = render_comparison(rows, "csv", 0.5);
  EXPECT_NE(csv.find("\"model.activation.kind=PRELU_CHANNELWISE\",2,1,1,0.9300,,0.2500,,1000,,\"conv1.act=0.600\""),
            std::string::npos) << csv;
}

TEST(Compare, PointWithoutSeed) {
  EXPECT_EQ(point_without_seed("model.init.scheme=XAVIER_NORMAL training.seed=3 model.preset=plain-30"),
            "model.init.scheme=XAVIER_NORMAL model.preset=plain-30");
  EXPECT_EQ(point_without_seed("training.seed=3"), "(base)");
}
