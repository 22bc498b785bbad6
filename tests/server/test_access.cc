// Who may see and do what, in the job manager (no gRPC): jobs and sweeps belong to
// the user who submitted them and are NOT_FOUND to every other user (exactly as an
// unknown id); admins see all; per-user queue limits; pools bound to the token that
// registered them; a lease per attempt, without which no call about the job changes
// anything (the forged report and finish of issue 13 among them).
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"
#include "server/job_manager.h"
#include "server/store.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;
using namespace std::chrono_literals;
namespace v1 = prelude::v1;

const Caller kAlice{"alice", Role::kUser};
const Caller kBob{"bob", Role::kUser};
const Caller kAdmin{"root", Role::kAdmin};
const Caller kPoolA{"pool-a", Role::kPool};
const Caller kPoolB{"pool-b", Role::kPool};

v1::SweepSpec two_point_sweep() {
  v1::SweepSpec s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(
                  R"({"name": "s", "base": {"dataset": {"name": "fashion-mnist"}, "training": {"maxSteps": 10}},
                      "seeds": [1, 2]})",
                  &s)
                  .ok());
  return s;
}

class AccessTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void start() {
    ManagerOptions o;
    o.reaper_thread = false;
    o.now = clock_.fn();
    o.max_queued_per_user = max_queued_;
    jm_.reset();
    jm_ = std::make_unique<JobManager>(*store_, o);
  }
  std::string register_pool(const Caller& who) { return jm_->register_pool(pool_request(1, "h"), who).pool_id(); }
  // Takes the oldest job; returns its lease.
  std::string take(const std::string& pool, const Caller& who, std::string* job_id = nullptr) {
    std::string lease;
    auto job = jm_->acquire(pool, 0ms, nullptr, who, &lease);
    EXPECT_TRUE(job.has_value());
    if (job_id && job) *job_id = job->job_id();
    return lease;
  }
  // The message of the ServiceError `f` throws, with its code checked.
  template <typename F>
  std::string refusal(F f, ErrorCode code) {
    try {
      f();
    } catch (const ServiceError& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "no error";
    return "";
  }

  FakeClock clock_;
  int max_queued_ = 0;
  std::unique_ptr<Store> store_ = std::make_unique<Store>(":memory:");
  std::unique_ptr<JobManager> jm_;
};

TEST_F(AccessTest, AJobIsItsSubmittersAndAnotherUsersIdIsAnsweredAsAnUnknownOne) {
  const v1::Job mine = jm_->submit(small_spec("a"), kAlice);
  EXPECT_EQ(mine.owner(), "alice");
  const std::string id = mine.job_id();
  EXPECT_EQ(jm_->get(id, kAlice).owner(), "alice");
  EXPECT_EQ(jm_->get(id, kAdmin).job_id(), id);

  // Bob is told exactly what he would be told of a job that does not exist.
  const std::string unknown = "job-000099";
  const auto same_as_unknown = [&](auto call_with) {
    const std::string theirs = refusal([&] { call_with(id); }, ErrorCode::kNotFound);
    const std::string none = refusal([&] { call_with(unknown); }, ErrorCode::kNotFound);
    EXPECT_EQ(theirs.substr(0, theirs.find(id)) + theirs.substr(theirs.find(id) + id.size()),
              none.substr(0, none.find(unknown)) + none.substr(none.find(unknown) + unknown.size()));
  };
  same_as_unknown([&](const std::string& j) { jm_->get(j, kBob); });
  same_as_unknown([&](const std::string& j) { jm_->cancel(j, kBob); });
  same_as_unknown([&](const std::string& j) { jm_->metrics(j, kBob); });
  same_as_unknown([&](const std::string& j) { jm_->metrics_page(j, 0, false, 0, "", kBob); });
  same_as_unknown([&](const std::string& j) { jm_->checkpoint(j, "", kBob); });
  same_as_unknown([&](const std::string& j) { jm_->remove(j, kBob); });
  same_as_unknown([&](const std::string& j) {
    bool ended = false;
    jm_->wait_events(j, 0, SteadyClock::now(), &ended, kBob);
  });
  // Bob's refused cancel changed nothing.
  EXPECT_EQ(jm_->get(id).state(), v1::QUEUED);

  // Listing: each user their own, an admin everything.
  const std::string bobs = jm_->submit(small_spec("b"), kBob).job_id();
  const auto listed = [&](const Caller& who) {
    std::vector<std::string> out;
    for (const auto& j : jm_->list(0, "", v1::JOB_STATE_UNSPECIFIED, "", who).jobs) out.push_back(j.job_id());
    return out;
  };
  EXPECT_EQ(listed(kAlice), std::vector<std::string>{id});
  EXPECT_EQ(listed(kBob), std::vector<std::string>{bobs});
  EXPECT_EQ(listed(kAdmin), (std::vector<std::string>{bobs, id}));
  // A pool token is no user: it sees no jobs (the services refuse it JobService anyway).
  EXPECT_TRUE(listed(kPoolA).empty());

  // Alice may cancel and delete her own.
  EXPECT_EQ(jm_->cancel(id, kAlice).state(), v1::CANCELLED);
  jm_->remove(id, kAlice);
  EXPECT_EQ(listed(kAdmin), std::vector<std::string>{bobs});
}

TEST_F(AccessTest, SweepsBelongToTheirSubmitterAndTheirJobsToo) {
  const v1::SweepStatus st = jm_->submit_sweep(two_point_sweep(), kAlice);
  const std::string sweep = st.sweep().sweep_id();
  EXPECT_EQ(st.sweep().owner(), "alice");
  ASSERT_EQ(st.jobs_size(), 2);
  for (const auto& j : st.jobs()) EXPECT_EQ(j.owner(), "alice");
  EXPECT_EQ(jm_->get_sweep(sweep, kAlice).jobs_size(), 2);
  EXPECT_EQ(jm_->get_sweep(sweep, kAdmin).jobs_size(), 2);
  refusal([&] { jm_->get_sweep(sweep, kBob); }, ErrorCode::kNotFound);
  refusal([&] { jm_->cancel_sweep(sweep, kBob); }, ErrorCode::kNotFound);
  int64_t version = -1;
  refusal([&] { jm_->wait_sweep(sweep, &version, SteadyClock::now(), kBob); }, ErrorCode::kNotFound);
  // Bob listing the sweep's jobs by its id sees none of them.
  EXPECT_TRUE(jm_->list(0, "", v1::JOB_STATE_UNSPECIFIED, sweep, kBob).jobs.empty());
  const v1::SweepStatus after = jm_->get_sweep(sweep);
  for (const auto& j : after.jobs()) EXPECT_EQ(j.state(), v1::QUEUED);
  EXPECT_EQ(jm_->cancel_sweep(sweep, kAlice).jobs(0).state(), v1::CANCELLED);
}

TEST_F(AccessTest, AUserMayWarmStartOnlyFromAJobItMaySee) {
  // Alice's job trains to the end with a final checkpoint.
  const std::string source = jm_->submit(small_spec("src"), kAlice).job_id();
  const std::string pool = register_pool(kPoolA);
  const std::string lease = take(pool, kPoolA);
  v1::CheckpointInfo info;
  info.set_final(true);
  info.set_step(10);
  info.set_bytes(1);
  jm_->add_checkpoint({pool, lease, kPoolA}, source, info);
  jm_->finish({pool, lease, kPoolA}, source, v1::SUCCEEDED, "");

  v1::JobSpec spec = small_spec("warm");
  spec.mutable_model()->mutable_init_from()->set_job_id(source);
  const std::string bobs = refusal([&] { jm_->submit(spec, kBob); }, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(contains(bobs, "spec.model.initFrom.jobId: no job")) << bobs;
  EXPECT_EQ(jm_->submit(spec, kAlice).spec().model().init_from().checkpoint(), "final");
  EXPECT_EQ(jm_->submit(spec, kAdmin).spec().model().init_from().checkpoint(), "final");
}

TEST_F(AccessTest, AUserMayQueueAtMostTheLimitAndAdminsAreNotLimited) {
  max_queued_ = 3;
  start();
  jm_->submit(small_spec(), kAlice);
  jm_->submit(small_spec(), kAlice);
  // A two-point sweep would make four.
  const std::string why = refusal([&] { jm_->submit_sweep(two_point_sweep(), kAlice); },
                                  ErrorCode::kResourceExhausted);
  EXPECT_TRUE(contains(why, "alice has 2 jobs queued")) << why;
  EXPECT_TRUE(contains(why, "limit of 3 (--max-queued-per-user)")) << why;
  const std::string third = jm_->submit(small_spec(), kAlice).job_id();
  refusal([&] { jm_->submit(small_spec(), kAlice); }, ErrorCode::kResourceExhausted);
  // Nothing of the refused ones was queued.
  EXPECT_EQ(jm_->list(0, "", v1::QUEUED, "", kAlice).jobs.size(), 3u);
  // Other users have limits of their own; admins none.
  jm_->submit_sweep(two_point_sweep(), kBob);
  for (int i = 0; i < 5; ++i) jm_->submit(small_spec(), kAdmin);
  // A job that starts or ends leaves room.
  jm_->cancel(third, kAlice);
  EXPECT_EQ(jm_->submit(small_spec(), kAlice).owner(), "alice");
}

TEST_F(AccessTest, APoolIdIsUnguessableAndBoundToTheTokenThatRegisteredIt) {
  const std::string pool = register_pool(kPoolA);
  EXPECT_TRUE(is_pool_id(pool, "pool-1.1")) << pool;
  EXPECT_NE(register_pool(kPoolA).substr(9), pool.substr(9));  // the random parts differ
  jm_->submit(small_spec(), kAlice);
  // Another token naming the pool is told it is unknown: it can neither take jobs
  // under it nor beat its heart.
  const std::string other = refusal([&] { jm_->acquire(pool, 0ms, nullptr, kPoolB); }, ErrorCode::kNotFound);
  EXPECT_TRUE(contains(other, "is not registered")) << other;
  refusal([&] { jm_->acquire(pool, 0ms, nullptr, kAdmin); }, ErrorCode::kNotFound);
  refusal([&] { jm_->report({pool, "", kPoolB}, "", {}); }, ErrorCode::kNotFound);
  EXPECT_EQ(jm_->get("job-000001").state(), v1::QUEUED);
  // Its own token takes the job.
  std::string job;
  EXPECT_EQ(take(pool, kPoolA, &job).size(), 32u);  // 128 bits of lease, in hex
  EXPECT_EQ(jm_->get(job).pool_id(), pool);
}

// Issue 13: under the old single shared token, a forged ReportProgress (accuracy
// 0.999) and FinishJob(SUCCEEDED) under a guessed pool id marked another job
// SUCCEEDED at step 0 and stopped its real pool. Now the pool id is bound to its
// token and every call about the job needs the attempt's lease.
TEST_F(AccessTest, AForgedReportAndFinishChangeNothing) {
  const std::string id = jm_->submit(small_spec("victim"), kAlice).job_id();
  const std::string pool = register_pool(kPoolA);
  const std::string lease = take(pool, kPoolA);
  EXPECT_FALSE(jm_->report({pool, lease, kPoolA}, id, {step_event(5, 1.5)}));
  const int64_t events_before = static_cast<int64_t>(jm_->metrics(id).size());

  v1::TrainingEvent forged = summary_event(0, 0.999);
  // Another pool token, knowing even the pool id: NOT_FOUND.
  refusal([&] { jm_->report({pool, lease, kPoolB}, id, {forged}); }, ErrorCode::kNotFound);
  refusal([&] { jm_->finish({pool, lease, kPoolB}, id, v1::SUCCEEDED, ""); }, ErrorCode::kNotFound);
  // The pool's own token without the lease, or with a wrong one: FAILED_PRECONDITION.
  for (const std::string& wrong : {std::string(), std::string(32, '0'), lease.substr(0, 31), lease + "0"}) {
    const std::string why =
        refusal([&] { jm_->report({pool, wrong, kPoolA}, id, {forged}); }, ErrorCode::kFailedPrecondition);
    EXPECT_TRUE(contains(why, "lease")) << why;
    EXPECT_EQ(why.find(lease), std::string::npos) << "the lease must never be echoed: " << why;
    refusal([&] { jm_->finish({pool, wrong, kPoolA}, id, v1::SUCCEEDED, ""); }, ErrorCode::kFailedPrecondition);
    refusal([&] { jm_->pool_hung({pool, wrong, kPoolA}, id, "x"); }, ErrorCode::kFailedPrecondition);
    refusal([&] { jm_->check_holds({pool, wrong, kPoolA}, id); }, ErrorCode::kFailedPrecondition);
    v1::CheckpointInfo info;
    info.set_step(3);
    refusal([&] { jm_->add_checkpoint({pool, wrong, kPoolA}, id, info); }, ErrorCode::kFailedPrecondition);
  }
  // Nothing changed: still RUNNING at step 5 on its pool, no event added.
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::RUNNING);
  EXPECT_EQ(job.progress().step(), 5);
  EXPECT_EQ(job.checkpoints_size(), 0);
  EXPECT_EQ(static_cast<int64_t>(jm_->metrics(id).size()), events_before);
  // The real pool goes on and ends it.
  EXPECT_FALSE(jm_->report({pool, lease, kPoolA}, id, {step_event(10, 0.5)}));
  jm_->finish({pool, lease, kPoolA}, id, v1::SUCCEEDED, "");
  EXPECT_EQ(jm_->get(id).state(), v1::SUCCEEDED);
}

// A pool that asks for a new job has given up its old one; if the old job comes back
// to it, the old attempt's lease no longer counts.
TEST_F(AccessTest, AStaleAttemptsLeaseIsRefusedEvenOnTheSamePoolAndJob) {
  const std::string id = jm_->submit(small_spec(), kAlice).job_id();
  const std::string pool = register_pool(kPoolA);
  const std::string first = take(pool, kPoolA);
  const std::string second = take(pool, kPoolA);  // the same job again: its first attempt was lost
  EXPECT_EQ(jm_->get(id).attempts(), 2);
  EXPECT_NE(first, second);
  refusal([&] { jm_->report({pool, first, kPoolA}, id, {step_event(1, 1.0)}); }, ErrorCode::kFailedPrecondition);
  refusal([&] { jm_->finish({pool, first, kPoolA}, id, v1::SUCCEEDED, ""); }, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(jm_->get(id).state(), v1::RUNNING);
  jm_->finish({pool, second, kPoolA}, id, v1::SUCCEEDED, "");
  EXPECT_EQ(jm_->get(id).state(), v1::SUCCEEDED);
}

}  // namespace
}  // namespace prelude::server
