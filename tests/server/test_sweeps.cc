// Sweeps in the job manager: one queued job per grid point, grouped by sweep id,
// refused whole when any point is bad, cancelled together, kept across a restart.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "common/status.h"
#include "server/job_manager.h"
#include "server_test_util.h"

using namespace prelude::server;
using prelude::ErrorCode;
using namespace prelude::server::testing;

namespace {

v1::SweepSpec sweep_json(const std::string& json) {
  v1::SweepSpec s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok()) << json;
  return s;
}

const char* kRectifiers = R"({"name": "rect",
  "base": {"dataset": {"name": "fashion-mnist"}, "training": {"maxSteps": 10}},
  "grid": [{"field": "model.activation.kind", "values": ["RELU", "PRELU_CHANNELWISE"]}],
  "seeds": [1, 2]})";

ManagerOptions quiet_options() {
  ManagerOptions o;
  o.reaper_thread = false;
  return o;
}

}  // namespace

TEST(Sweeps, SubmitQueuesOneJobPerPointInGridOrder) {
  Store store(":memory:");
  JobManager m(store, quiet_options());
  const v1::SweepStatus st = m.submit_sweep(sweep_json(kRectifiers));
  EXPECT_EQ(st.sweep().sweep_id(), "sweep-000001");
  ASSERT_EQ(st.jobs_size(), 4);
  ASSERT_EQ(st.sweep().job_ids_size(), 4);
  const char* points[] = {"model.activation.kind=RELU training.seed=1", "model.activation.kind=RELU training.seed=2",
                          "model.activation.kind=PRELU_CHANNELWISE training.seed=1",
                          "model.activation.kind=PRELU_CHANNELWISE training.seed=2"};
  for (int i = 0; i < 4; ++i) {
    const v1::Job& j = st.jobs(i);
    EXPECT_EQ(j.job_id(), st.sweep().job_ids(i));
    EXPECT_EQ(j.state(), v1::QUEUED);
    EXPECT_EQ(j.sweep_id(), "sweep-000001");
    EXPECT_EQ(j.sweep_point(), points[i]);
    EXPECT_EQ(j.spec().training().learning_rate(), 0.01) << "defaults applied";
  }
  // Listed by sweep; a lone job is not in it.
  m.submit(small_spec("alone"));
  EXPECT_EQ(m.list(0, "", v1::JOB_STATE_UNSPECIFIED, "sweep-000001").jobs.size(), 4u);
  EXPECT_EQ(m.list(0, "", v1::JOB_STATE_UNSPECIFIED).jobs.size(), 5u);
  // The pool takes them in grid order.
  const auto pool = m.register_pool(pool_request(2)).pool_id();
  EXPECT_EQ(m.acquire(pool, std::chrono::milliseconds(0))->job_id(), st.jobs(0).job_id());
}

TEST(Sweeps, BadGridOrPointIsRefusedWholeNamingThePlace) {
  Store store(":memory:");
  JobManager m(store, quiet_options());
  EXPECT_SERVICE_ERROR(
      m.submit_sweep(sweep_json(R"({"grid": [{"field": "model.activation.kind", "values": ["RELUX"]}]})")),
      ErrorCode::kInvalidArgument, "sweep.grid[0].values[0]: model.activation.kind: unknown value 'RELUX'");
  EXPECT_SERVICE_ERROR(m.submit_sweep(sweep_json(R"({"grid": [{"field": "training.learningRate",
                                                               "values": [0.1, -1]}]})")),
                       ErrorCode::kInvalidArgument, "grid point training.learningRate=-1: training.learningRate");
  // A point whose data set does not exist: checked like a submit, nothing queued.
  EXPECT_SERVICE_ERROR(m.submit_sweep(sweep_json(R"({"grid": [{"field": "dataset.name",
                                                               "values": ["fashion-mnist", "no-such-set"]}]})")),
                       ErrorCode::kInvalidArgument, "grid point dataset.name=no-such-set: spec.dataset");
  EXPECT_TRUE(m.list(0, "", v1::JOB_STATE_UNSPECIFIED).jobs.empty());
  EXPECT_SERVICE_ERROR(m.get_sweep("sweep-000009"), ErrorCode::kNotFound, "sweep-000009");
}

TEST(Sweeps, CancelStopsEveryJobThatHasNotEnded) {
  Store store(":memory:");
  JobManager m(store, quiet_options());
  const v1::SweepStatus st = m.submit_sweep(sweep_json(kRectifiers));
  const auto pool = m.register_pool(pool_request(2)).pool_id();
  const auto first = m.acquire(pool, std::chrono::milliseconds(0));  // job 1 runs...
  m.finish(held(m, pool), first->job_id(), v1::SUCCEEDED, "");                 // ...and ends
  const auto second = m.acquire(pool, std::chrono::milliseconds(0));  // job 2 runs
  const v1::SweepStatus after = m.cancel_sweep(st.sweep().sweep_id());
  EXPECT_EQ(after.jobs(0).state(), v1::SUCCEEDED) << "an ended job is left alone";
  EXPECT_EQ(after.jobs(1).state(), v1::RUNNING);
  EXPECT_TRUE(after.jobs(1).cancel_requested()) << "a running job stops at its next step";
  EXPECT_EQ(after.jobs(2).state(), v1::CANCELLED);
  EXPECT_EQ(after.jobs(3).state(), v1::CANCELLED);
  EXPECT_TRUE(m.report(held(m, pool), second->job_id(), {}));
}

TEST(Sweeps, KeptAcrossARestart) {
  TempDir dir;
  std::string sweep_id;
  {
    Store store(dir.file("jobs.db"));
    JobManager m(store, quiet_options());
    sweep_id = m.submit_sweep(sweep_json(kRectifiers)).sweep().sweep_id();
  }
  Store store(dir.file("jobs.db"));
  JobManager m(store, quiet_options());
  const v1::SweepStatus st = m.get_sweep(sweep_id);
  EXPECT_EQ(st.jobs_size(), 4);
  EXPECT_EQ(st.sweep().spec().name(), "rect");
  EXPECT_EQ(m.submit_sweep(sweep_json(kRectifiers)).sweep().sweep_id(), "sweep-000002") << "ids keep counting";
}

TEST(Sweeps, WaitSweepReturnsOnlyWhenOneOfItsJobsChanged) {
  Store store(":memory:");
  JobManager m(store, quiet_options());
  const std::string id = m.submit_sweep(sweep_json(kRectifiers)).sweep().sweep_id();
  const std::string other = m.submit(small_spec("alone")).job_id();
  const auto soon = [] { return SteadyClock::now() + std::chrono::milliseconds(50); };

  int64_t version = -1;
  auto st = m.wait_sweep(id, &version, soon());
  ASSERT_TRUE(st.has_value()) << "the current status at once";
  EXPECT_EQ(st->jobs_size(), 4);
  const int64_t first = version;
  EXPECT_GE(first, 4) << "each queued job has its QUEUED event";
  EXPECT_FALSE(m.wait_sweep(id, &version, soon()).has_value()) << "nothing changed: waits, then nullopt";

  m.cancel(other);  // a job outside the sweep: no new status
  EXPECT_FALSE(m.wait_sweep(id, &version, soon()).has_value());

  const auto pool = m.register_pool(pool_request(2)).pool_id();
  const auto job = m.acquire(pool, std::chrono::milliseconds(0));
  st = m.wait_sweep(id, &version, soon());
  ASSERT_TRUE(st.has_value()) << "a job of the sweep started";
  EXPECT_EQ(st->jobs(0).state(), v1::RUNNING);
  EXPECT_GT(version, first);

  // A cancel request on a running job is a change too, though it records no event.
  const int64_t before_cancel = version;
  m.cancel(job->job_id());
  st = m.wait_sweep(id, &version, soon());
  ASSERT_TRUE(st.has_value()) << "the running job's cancel request";
  EXPECT_TRUE(st->jobs(0).cancel_requested());
  EXPECT_EQ(st->jobs(0).state(), v1::RUNNING);
  EXPECT_GT(version, before_cancel);
  m.cancel_sweep(id);
  st = m.wait_sweep(id, &version, soon());
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->jobs(1).state(), v1::CANCELLED);

  EXPECT_SERVICE_ERROR(m.wait_sweep("sweep-000077", &version, soon()), ErrorCode::kNotFound, "sweep-000077");
  m.shutdown();
  EXPECT_SERVICE_ERROR(m.wait_sweep(id, &version, soon()), ErrorCode::kUnavailable, "shutting down");
}
