// The job manager, driven directly (no gRPC): submit and its validation, the FIFO
// queue over pools of different sizes, reports and finishes, cancellation,
// heartbeat loss on a fake clock, restarts over the same database file, watching
// (wait_events) and listing.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/job_manager.h"
#include "server/store.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;
using namespace std::chrono_literals;
namespace v1 = prelude::v1;

constexpr auto kTimeout = std::chrono::milliseconds(1000);

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }

  ManagerOptions options() const {
    ManagerOptions o;
    o.reaper_thread = false;
    o.now = clock_.fn();
    o.heartbeat_timeout = kTimeout;
    o.heartbeat_interval = 250ms;
    o.max_acquire_wait = 5000ms;
    o.max_attempts = max_attempts_;
    o.data_root = data_root_;
    o.expected_pool_ranks = expected_ranks_;
    o.on_wakeup = on_wakeup_;
    return o;
  }
  // (Re)creates the manager over store_ with the current options.
  void start() {
    jm_.reset();
    jm_ = std::make_unique<JobManager>(*store_, options());
  }

  std::string register_pool(int ranks, const std::string& host = "host-a") {
    return jm_->register_pool(pool_request(ranks, host)).pool_id();
  }
  std::string submit(int batch = 0, const std::string& name = "test") {
    return jm_->submit(small_spec(name, batch)).job_id();
  }
  // The job the pool takes without waiting; fails the test when there is none.
  v1::Job take(const std::string& pool) {
    auto job = jm_->acquire(pool, 0ms);
    EXPECT_TRUE(job.has_value()) << pool << " got no job";
    return job.value_or(v1::Job());
  }
  std::vector<v1::JobEvent> history(const std::string& id, int64_t after = 0) {
    bool ended = false;
    std::vector<v1::JobEvent> all;
    for (;;) {  // wait_events hands out bounded batches
      auto batch = jm_->wait_events(id, after, SteadyClock::now(), &ended);
      if (batch.empty()) return all;
      after = batch.back().seq();
      all.insert(all.end(), batch.begin(), batch.end());
    }
  }
  v1::JobEvent last_event(const std::string& id) {
    auto h = history(id);
    EXPECT_FALSE(h.empty());
    return h.empty() ? v1::JobEvent() : h.back();
  }
  const PoolInfo* pool_info(const std::string& pool_id) {
    pools_cache_ = jm_->pools();
    for (const auto& p : pools_cache_)
      if (p.pool_id == pool_id) return &p;
    return nullptr;
  }

  FakeClock clock_;
  int max_attempts_ = 3;
  std::string data_root_ = "/usr/share/datasets";
  std::vector<int> expected_ranks_;
  std::function<void(const std::string&)> on_wakeup_;
  std::unique_ptr<Store> store_ = std::make_unique<Store>(":memory:");
  std::unique_ptr<JobManager> jm_;
  std::vector<PoolInfo> pools_cache_;
};

std::vector<int64_t> seqs(const std::vector<v1::JobEvent>& events) {
  std::vector<int64_t> out;
  for (const auto& e : events) out.push_back(e.seq());
  return out;
}

std::vector<std::string> ids(const std::vector<v1::Job>& jobs) {
  std::vector<std::string> out;
  for (const auto& j : jobs) out.push_back(j.job_id());
  return out;
}

// ================================================================ submit

TEST_F(JobManagerTest, SubmitFillsInDefaultsAndQueuesWithAStateChange) {
  v1::JobSpec spec;
  spec.mutable_dataset()->set_name("fashion-mnist");
  const v1::Job job = jm_->submit(spec);
  EXPECT_EQ(job.job_id(), "job-000001");
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_DOUBLE_EQ(job.spec().training().learning_rate(), 0.01);
  EXPECT_EQ(job.spec().training().batch_size(), 64);
  EXPECT_DOUBLE_EQ(job.spec().training().epochs(), 1);
  EXPECT_DOUBLE_EQ(job.spec().training().momentum(), 0.9);
  EXPECT_DOUBLE_EQ(job.spec().training().weight_decay(), 5e-4);
  EXPECT_EQ(job.spec().training().seed(), 1);
  EXPECT_EQ(job.spec().model().preset(), "cnn-small");
  EXPECT_EQ(job.spec().model().activation().kind(), v1::ActivationSpec::PRELU_CHANNELWISE);
  EXPECT_DOUBLE_EQ(job.spec().model().activation().alpha_init(), 0.25);
  EXPECT_DOUBLE_EQ(job.spec().dataset().mean(), 0.2860);
  EXPECT_EQ(job.attempts(), 0);
  EXPECT_EQ(job.error(), "");
  EXPECT_FALSE(job.cancel_requested());
  EXPECT_GT(job.create_time().seconds(), 0);
  EXPECT_FALSE(job.has_end_time());

  const v1::Job got = jm_->get("job-000001");
  EXPECT_EQ(got.SerializeAsString(), job.SerializeAsString());

  const auto events = history(job.job_id());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].job_id(), "job-000001");
  EXPECT_EQ(events[0].seq(), 1);
  ASSERT_TRUE(events[0].has_state_change());
  EXPECT_EQ(events[0].state_change().state(), v1::QUEUED);
  EXPECT_EQ(events[0].state_change().reason(), "submitted");
  EXPECT_GT(events[0].time().seconds(), 0);
}

TEST_F(JobManagerTest, SubmitKeepsExplicitValues) {
  v1::JobSpec spec = small_spec("explicit", 32);
  spec.mutable_training()->set_learning_rate(0.2);
  const v1::Job job = jm_->submit(spec);
  EXPECT_EQ(job.spec().name(), "explicit");
  EXPECT_EQ(job.spec().training().batch_size(), 32);
  EXPECT_DOUBLE_EQ(job.spec().training().learning_rate(), 0.2);
  EXPECT_EQ(job.spec().training().max_steps(), 10);
}

TEST_F(JobManagerTest, JobIdsAreUniqueAndIncreasing) {
  EXPECT_EQ(submit(), "job-000001");
  EXPECT_EQ(submit(), "job-000002");
  EXPECT_EQ(submit(), "job-000003");
}

TEST_F(JobManagerTest, ConcurrentSubmitsGetDistinctIds) {
  constexpr int kThreads = 4, kEach = 20;
  std::vector<std::future<std::vector<std::string>>> futures;
  for (int t = 0; t < kThreads; ++t)
    futures.push_back(std::async(std::launch::async, [this] {
      std::vector<std::string> out;
      for (int i = 0; i < kEach; ++i) out.push_back(submit());
      return out;
    }));
  std::set<std::string> all;
  for (auto& f : futures)
    for (const auto& id : f.get()) all.insert(id);
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(*all.begin(), "job-000001");
  EXPECT_EQ(*all.rbegin(), "job-000080");
}

TEST_F(JobManagerTest, NonPositiveLearningRateIsInvalidNamingTheField) {
  v1::JobSpec spec = small_spec();
  spec.mutable_training()->set_learning_rate(-1);
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.training.learningRate");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "must be positive, got -1");
  spec.mutable_training()->set_learning_rate(0);  // explicit 0 is an error, not a default
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.training.learningRate");
}

TEST_F(JobManagerTest, ZeroBatchSizeIsInvalidNamingTheField) {
  v1::JobSpec spec = small_spec();
  spec.mutable_training()->set_batch_size(0);
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.training.batchSize");
}

TEST_F(JobManagerTest, UnknownDataSetIsInvalid) {
  v1::JobSpec spec = small_spec();
  spec.mutable_dataset()->set_name("no-such-dataset");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.dataset.name");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "no-such-dataset");
}

TEST_F(JobManagerTest, DataSetMissingUnderTheDataRootIsInvalid) {
  TempDir root;
  data_root_ = root.path().string();
  start();
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec()), ErrorCode::kInvalidArgument, "spec.dataset.name");
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec()), ErrorCode::kInvalidArgument, "no such file");
}

TEST_F(JobManagerTest, TestFilesAreNeededUnlessTheTestIsSkipped) {
  TempDir root;
  fs::create_directories(root.path() / "tiny");
  std::ofstream(root.path() / "tiny" / "train-images-idx3-ubyte.gz") << "x";
  std::ofstream(root.path() / "tiny" / "train-labels-idx1-ubyte.gz") << "x";
  data_root_ = root.path().string();
  start();
  v1::JobSpec spec = small_spec();
  spec.mutable_dataset()->set_name("tiny");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "t10k-images");
  spec.mutable_training()->set_skip_test(true);
  EXPECT_EQ(jm_->submit(spec).state(), v1::QUEUED);
}

TEST_F(JobManagerTest, MissingExplicitFileIsInvalidNamingTheField) {
  v1::JobSpec spec = small_spec();
  spec.mutable_dataset()->set_train_images("fashion-mnist/no-such-file.gz");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.dataset.trainImages");
}

TEST_F(JobManagerTest, PathEscapingTheDataRootIsInvalid) {
  v1::JobSpec spec = small_spec();
  spec.mutable_dataset()->set_train_images("../etc/passwd");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.dataset.trainImages");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "data root");

  spec = small_spec();
  spec.mutable_dataset()->set_test_labels("/etc/passwd");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.dataset.testLabels");

  spec = small_spec();
  spec.mutable_dataset()->set_name("../etc");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.dataset.name");
}

TEST_F(JobManagerTest, SymlinkEscapingTheDataRootIsInvalid) {
  TempDir root, outside;
  std::ofstream(outside.path() / "secret") << "x";
  fs::create_directory_symlink(outside.path(), root.path() / "link");
  data_root_ = root.path().string();
  start();
  v1::JobSpec spec = small_spec();
  spec.mutable_dataset()->set_train_images("link/secret");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.dataset.trainImages");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "escapes the data root");
}

TEST_F(JobManagerTest, AbsurdSizesAreInvalid) {
  v1::JobSpec spec = small_spec();
  spec.mutable_training()->set_epochs(100000);
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.training.epochs");

  spec = small_spec();
  spec.mutable_training()->set_batch_size(10000000);
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.training.batchSize");

  spec = small_spec();
  auto* model = spec.mutable_model();
  model->add_layers()->mutable_conv()->set_out_channels(1000000);
  model->add_layers()->mutable_activation();
  model->add_layers()->mutable_fc()->set_out_features(10);
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.model.layers[0].conv.outChannels");

  spec = small_spec();
  spec.mutable_model()->set_preset("plain-100000");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.model.preset");
}

TEST_F(JobManagerTest, RejectedSubmitsLeaveNoJobAndUseNoId) {
  v1::JobSpec bad = small_spec();
  bad.mutable_training()->set_learning_rate(-1);
  EXPECT_THROW(jm_->submit(bad), ServiceError);
  EXPECT_TRUE(jm_->list(0, "", v1::JOB_STATE_UNSPECIFIED).jobs.empty());
  EXPECT_EQ(submit(), "job-000001");
}

TEST_F(JobManagerTest, BatchNoRegisteredPoolDividesIsInvalid) {
  EXPECT_EQ(jm_->submit(small_spec("any", 7)).state(), v1::QUEUED);  // no pool known: anything goes
  register_pool(3);
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec("b64", 64)), ErrorCode::kInvalidArgument, "spec.training.batchSize");
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec("b64", 64)), ErrorCode::kInvalidArgument, "(3)");
  EXPECT_EQ(jm_->submit(small_spec("b63", 63)).state(), v1::QUEUED);
  register_pool(2);  // now 64 fits the 2-rank pool
  EXPECT_EQ(jm_->submit(small_spec("b64", 64)).state(), v1::QUEUED);
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec("b7", 7)), ErrorCode::kInvalidArgument, "(2, 3)");
}

TEST_F(JobManagerTest, BatchNoExpectedPoolDividesIsInvalid) {
  expected_ranks_ = {4};
  start();
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec("b6", 6)), ErrorCode::kInvalidArgument, "spec.training.batchSize");
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec("b6", 6)), ErrorCode::kInvalidArgument, "(4)");
  EXPECT_EQ(jm_->submit(small_spec("b8", 8)).state(), v1::QUEUED);
  register_pool(3);  // expected and registered sizes both count
  EXPECT_EQ(jm_->submit(small_spec("b9", 9)).state(), v1::QUEUED);
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec("b10", 10)), ErrorCode::kInvalidArgument, "(3, 4)");
}

TEST_F(JobManagerTest, EveryStateChangeIsLogged) {
  auto lines = std::make_shared<std::vector<std::string>>();
  jm_.reset();
  ManagerOptions o = options();
  o.log = [lines](const std::string& line) { lines->push_back(line); };
  jm_ = std::make_unique<JobManager>(*store_, o);
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  jm_->finish(held(*jm_, p), id, v1::FAILED, "boom");
  ASSERT_EQ(lines->size(), 3u);
  EXPECT_EQ((*lines)[0], "job-000001 QUEUED: submitted");
  EXPECT_TRUE(contains((*lines)[1], "job-000001 RUNNING: ")) << (*lines)[1];
  EXPECT_TRUE(contains((*lines)[1], p)) << (*lines)[1];
  EXPECT_EQ((*lines)[2], "job-000001 FAILED: boom");
}

TEST_F(JobManagerTest, SubmitAfterShutdownIsUnavailable) {
  jm_->shutdown();
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec()), ErrorCode::kUnavailable, "shutting down");
}

// ================================================================ unknown ids

TEST_F(JobManagerTest, UnknownJobIdIsNotFound) {
  submit();
  bool ended = false;
  EXPECT_SERVICE_ERROR(jm_->get("job-000042"), ErrorCode::kNotFound, "job-000042");
  EXPECT_SERVICE_ERROR(jm_->cancel("job-000042"), ErrorCode::kNotFound, "job-000042");
  EXPECT_SERVICE_ERROR(jm_->metrics("job-000042"), ErrorCode::kNotFound, "job-000042");
  EXPECT_SERVICE_ERROR(jm_->wait_events("job-000042", 0, SteadyClock::now() + 1s, &ended), ErrorCode::kNotFound,
                       "job-000042");
  EXPECT_SERVICE_ERROR(jm_->get(""), ErrorCode::kNotFound, "does not exist");
}

TEST_F(JobManagerTest, UnknownPoolIdIsNotFound) {
  const std::string job = submit();
  EXPECT_SERVICE_ERROR(jm_->acquire("pool-9.9", 0ms), ErrorCode::kNotFound, "pool-9.9");
  EXPECT_SERVICE_ERROR(jm_->report(held(*jm_, "pool-9.9"), job, {step_event(1, 1.0)}), ErrorCode::kNotFound, "pool-9.9");
  EXPECT_SERVICE_ERROR(jm_->report(held(*jm_, "pool-9.9"), "", {}), ErrorCode::kNotFound, "register again");
  EXPECT_SERVICE_ERROR(jm_->finish(held(*jm_, "pool-9.9"), job, v1::SUCCEEDED, ""), ErrorCode::kNotFound, "pool-9.9");
  EXPECT_EQ(history(job).size(), 1u);  // nothing recorded
  EXPECT_EQ(jm_->get(job).state(), v1::QUEUED);
}

// ================================================================ why a job waits

TEST_F(JobManagerTest, AQueuedJobSaysItsPlaceAndWhyItWaits) {
  const std::string a = submit(64, "a"), b = submit(64, "b"), c = submit(48, "c");
  v1::Job job = jm_->get(a);
  EXPECT_EQ(job.queue_position(), 1);
  EXPECT_TRUE(contains(job.waiting_reason(), "none is registered")) << job.waiting_reason();
  EXPECT_EQ(jm_->get(c).queue_position(), 3);

  // A pool whose ranks divide none of the batches: each says so, with the sizes.
  const std::string five = register_pool(5);
  job = jm_->get(b);
  EXPECT_EQ(job.waiting_reason(),
            "no registered pool can run it: its batch of 64 is not divisible by their ranks (5); it waits for a pool "
            "that fits");

  // A pool of 2 takes the oldest; the others wait behind the busy pool.
  const std::string two = register_pool(2);
  EXPECT_EQ(take(two).job_id(), a);
  EXPECT_EQ(jm_->get(a).queue_position(), 0);  // running: no place, no reason
  EXPECT_EQ(jm_->get(a).waiting_reason(), "");
  EXPECT_EQ(jm_->get(b).queue_position(), 1);
  EXPECT_EQ(jm_->get(b).waiting_reason(), "every pool that can run it is busy (1 pool); it is next");
  EXPECT_EQ(jm_->get(c).waiting_reason(), "every pool that can run it is busy (1 pool); 1 job is ahead of it");
  // The list carries the same, and the listing order is newest first.
  const JobPage page = jm_->list(0, "", v1::QUEUED);
  ASSERT_EQ(page.jobs.size(), 2u);
  EXPECT_EQ(page.jobs[0].queue_position(), 2);
  EXPECT_EQ(page.jobs[1].queue_position(), 1);

  // Another fitting pool, idle: the next job is being taken.
  register_pool(4);
  EXPECT_EQ(jm_->get(b).waiting_reason(), "an idle pool is taking it");
  EXPECT_EQ(jm_->get(c).waiting_reason(), "1 job is ahead of it; an idle pool takes them in turn");
  (void)five;
}

// ================================================================ pools and FIFO

TEST_F(JobManagerTest, RegisterPoolNamesPoolsByBootAndChecksRanks) {
  const auto r1 = jm_->register_pool(pool_request(2, "node-1"));
  const auto r2 = jm_->register_pool(pool_request(4, "node-2"));
  EXPECT_TRUE(is_pool_id(r1.pool_id(), "pool-1.1")) << r1.pool_id();
  EXPECT_TRUE(is_pool_id(r2.pool_id(), "pool-1.2")) << r2.pool_id();
  EXPECT_EQ(r1.heartbeat_interval_ms(), 250);
  const PoolInfo* p = pool_info(r2.pool_id());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->ranks, 4);
  EXPECT_EQ(p->host, "node-2");
  EXPECT_EQ(p->job_id, "");
  EXPECT_SERVICE_ERROR(jm_->register_pool(pool_request(0)), ErrorCode::kInvalidArgument, "ranks");
  EXPECT_SERVICE_ERROR(jm_->register_pool(pool_request(-3)), ErrorCode::kInvalidArgument, "ranks");
  EXPECT_EQ(jm_->pools().size(), 2u);
}

TEST_F(JobManagerTest, AcquireHandsOutTheOldestJobFirst) {
  const std::string p1 = register_pool(1), p2 = register_pool(2);
  const std::string a = submit(64, "a"), b = submit(64, "b"), c = submit(64, "c");

  const v1::Job ja = take(p1);
  EXPECT_EQ(ja.job_id(), a);
  EXPECT_EQ(ja.state(), v1::RUNNING);
  EXPECT_EQ(ja.pool_id(), p1);
  EXPECT_EQ(ja.ranks(), 1);
  EXPECT_EQ(ja.attempts(), 1);
  EXPECT_TRUE(ja.has_start_time());

  const v1::Job jb = take(p2);
  EXPECT_EQ(jb.job_id(), b);
  EXPECT_EQ(jb.pool_id(), p2);
  EXPECT_EQ(jb.ranks(), 2);
  EXPECT_EQ(jm_->get(c).state(), v1::QUEUED);

  jm_->finish(held(*jm_, p1), a, v1::SUCCEEDED, "");
  EXPECT_EQ(take(p1).job_id(), c);

  // The RUNNING event names the pool and the attempt.
  const v1::JobEvent running = history(a)[1];
  ASSERT_TRUE(running.has_state_change());
  EXPECT_EQ(running.seq(), 2);
  EXPECT_EQ(running.state_change().state(), v1::RUNNING);
  EXPECT_EQ(running.state_change().pool_id(), p1);
  EXPECT_EQ(running.state_change().attempt(), 1);
  EXPECT_TRUE(contains(running.state_change().reason(), p1)) << running.state_change().reason();
}

TEST_F(JobManagerTest, PoolSkipsJobsWhoseBatchItsRanksDoNotDivide) {
  const std::string p2 = register_pool(2), p3 = register_pool(3);
  const std::string a = submit(64, "a"), b = submit(63, "b"), c = submit(66, "c");
  // The 3-rank pool cannot split 64: it takes the later job of batch 63.
  const v1::Job jb = take(p3);
  EXPECT_EQ(jb.job_id(), b);
  EXPECT_EQ(jb.ranks(), 3);
  EXPECT_EQ(jm_->get(a).state(), v1::QUEUED);
  // The 2-rank pool cannot split 63 either, but a (64) is still the oldest for it.
  EXPECT_EQ(take(p2).job_id(), a);
  jm_->finish(held(*jm_, p3), b, v1::SUCCEEDED, "");
  EXPECT_EQ(take(p3).job_id(), c);
}

TEST_F(JobManagerTest, PoolThatCannotDivideAnyQueuedBatchGetsNothing) {
  const std::string p2 = register_pool(2);
  submit(64);
  const std::string p3 = register_pool(3);
  EXPECT_FALSE(jm_->acquire(p3, 0ms).has_value());
  EXPECT_TRUE(jm_->acquire(p2, 0ms).has_value());
}

TEST_F(JobManagerTest, AcquireWithNothingQueuedReturnsNothingAfterTheWait) {
  const std::string p = register_pool(2);
  EXPECT_FALSE(jm_->acquire(p, 0ms).has_value());
  const auto t0 = SteadyClock::now();
  EXPECT_FALSE(jm_->acquire(p, 50ms).has_value());
  EXPECT_GE(ms_since(t0), 45);
  const PoolInfo* info = pool_info(p);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->waiting, 0);
}

TEST_F(JobManagerTest, WaitingAcquireWakesUpForANewJob) {
  const std::string p = register_pool(2);
  auto taken = std::async(std::launch::async, [&] { return jm_->acquire(p, 4000ms); });
  ASSERT_TRUE(wait_for([&] { return pool_info(p) && pool_info(p)->waiting == 1; }));
  const auto t0 = SteadyClock::now();
  const std::string id = submit();
  ASSERT_EQ(taken.wait_for(3s), std::future_status::ready);
  EXPECT_LT(ms_since(t0), 2000);
  auto job = taken.get();
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->job_id(), id);
  EXPECT_EQ(job->state(), v1::RUNNING);
  EXPECT_EQ(pool_info(p)->waiting, 0);
}

TEST_F(JobManagerTest, ShutdownEndsAWaitingAcquire) {
  const std::string p = register_pool(2);
  auto taken = std::async(std::launch::async, [&] { return jm_->acquire(p, 4000ms); });
  ASSERT_TRUE(wait_for([&] { return pool_info(p) && pool_info(p)->waiting == 1; }));
  jm_->shutdown();
  ASSERT_EQ(taken.wait_for(3s), std::future_status::ready);
  EXPECT_FALSE(taken.get().has_value());
}

// ================================================================ report and finish

TEST_F(JobManagerTest, ReportAppendsTrainingEventsAndTracksProgressAndMetrics) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);  // events 1 QUEUED, 2 RUNNING

  EXPECT_FALSE(jm_->report(held(*jm_, p), id, {step_event(1, 2.3), step_event(2, 2.1)}));
  v1::Job job = jm_->get(id);
  EXPECT_EQ(event_kind(job.progress()), v1::TrainingEvent::STEP);
  EXPECT_EQ(job.progress().step(), 2);
  EXPECT_DOUBLE_EQ(job.progress().loss(), 2.1);
  EXPECT_FALSE(job.has_latest_metrics());

  EXPECT_FALSE(jm_->report(held(*jm_, p), id, {epoch_event(0, 0.81)}));
  job = jm_->get(id);
  EXPECT_EQ(event_kind(job.latest_metrics()), v1::TrainingEvent::EPOCH);
  EXPECT_DOUBLE_EQ(job.latest_metrics().test_accuracy(), 0.81);
  ASSERT_EQ(job.latest_metrics().alphas_size(), 1);
  EXPECT_EQ(job.latest_metrics().alphas(0).layer(), "act1");
  EXPECT_EQ(job.progress().step(), 2);  // an epoch event is not progress

  EXPECT_FALSE(jm_->report(held(*jm_, p), id, {step_event(3, 1.9), summary_event(3, 0.83)}));
  job = jm_->get(id);
  EXPECT_EQ(job.progress().step(), 3);
  EXPECT_EQ(event_kind(job.latest_metrics()), v1::TrainingEvent::SUMMARY);
  EXPECT_DOUBLE_EQ(job.latest_metrics().test_accuracy(), 0.83);

  EXPECT_FALSE(jm_->report(held(*jm_, p), id, {}));  // a bare heartbeat adds nothing

  const auto events = history(id);
  EXPECT_EQ(seqs(events), (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7}));
  ASSERT_TRUE(events[2].has_training());
  EXPECT_EQ(events[2].training().step(), 1);
  EXPECT_EQ(events[2].job_id(), id);
  EXPECT_EQ(event_kind(events[6].training()), v1::TrainingEvent::SUMMARY);

  const auto metrics = jm_->metrics(id);
  EXPECT_EQ(seqs(metrics), (std::vector<int64_t>{3, 4, 5, 6, 7}));
  for (const auto& e : metrics) EXPECT_TRUE(e.has_training());
}

// What a pool reports reaches terminals (`prelude get`, `metrics`, `watch`): its
// strings are stored with their control characters escaped, ESC sequences included.
TEST_F(JobManagerTest, StringsFromPoolsAreStoredWithoutControlCharacters) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  v1::TrainingEvent diag;
  set_event_kind(&diag, v1::TrainingEvent::DIAGNOSTICS);
  diag.add_layers("conv1\x1b[2J\x1b[H");
  diag.add_activation_std(1.0);
  v1::TrainingEvent summary = summary_event(10, 0.9);
  summary.add_class_names("T-shirt\xc2\x9b" "31m");
  summary.add_class_names("Trouser\r");
  summary.set_name("run\x1b]0;pwned\x07");
  auto* alpha = summary.add_alphas();
  alpha->set_layer("act\x7f\x1b[31m");
  alpha->add_values(0.25f);
  jm_->report(held(*jm_, p), id, {diag, summary});
  const auto events = jm_->metrics(id);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].training().layers(0), "conv1\\x1b[2J\\x1b[H");
  const v1::TrainingEvent& got = events[1].training();
  EXPECT_EQ(got.class_names(0), "T-shirt\\u009b31m");
  EXPECT_EQ(got.class_names(1), "Trouser\\x0d");
  EXPECT_EQ(got.name(), "run\\x1b]0;pwned\\x07");
  EXPECT_EQ(got.alphas(0).layer(), "act\\x7f\\x1b[31m");
  EXPECT_EQ(jm_->get(id).latest_metrics().SerializeAsString(), got.SerializeAsString());

  // The error of a finish keeps its lines and loses its escapes.
  jm_->finish(held(*jm_, p), id, v1::FAILED, "bad input: line 1\n\tline 2\x1b[2J");
  EXPECT_EQ(jm_->get(id).error(), "bad input: line 1\n\tline 2\\x1b[2J");
  EXPECT_EQ(last_event(id).state_change().reason(), "bad input: line 1\n\tline 2\\x1b[2J");
  // And a pool's host name, which every RUNNING reason quotes.
  EXPECT_EQ(jm_->register_pool(pool_request(2, "vm\x1b[2J")).pool_id().empty(), false);
  bool found = false;
  for (const auto& info : jm_->pools())
    if (info.host == "vm\\x1b[2J") found = true;
  EXPECT_TRUE(found);
}

TEST_F(JobManagerTest, EventsNamingTheirKindOnlyTrackProgressAndMetricsAlike) {
  const std::string p = register_pool(1);
  const std::string id = submit();
  take(p);
  ASSERT_EQ(name_only(step_event(1, 2.3)).kind(), v1::TrainingEvent::KIND_UNSPECIFIED);

  EXPECT_FALSE(jm_->report(held(*jm_, p), id, {name_only(step_event(1, 2.3))}));
  v1::Job job = jm_->get(id);
  EXPECT_EQ(job.progress().step(), 1);
  EXPECT_FALSE(job.has_latest_metrics());
  EXPECT_FALSE(jm_->report(held(*jm_, p), id, {name_only(epoch_event(0, 0.8))}));
  EXPECT_DOUBLE_EQ(jm_->get(id).latest_metrics().test_accuracy(), 0.8);
  EXPECT_FALSE(jm_->report(held(*jm_, p), id, {name_only(step_event(2, 2.0)), name_only(summary_event(2, 0.85))}));
  job = jm_->get(id);
  EXPECT_EQ(job.progress().step(), 2);
  EXPECT_EQ(event_kind(job.latest_metrics()), v1::TrainingEvent::SUMMARY);
  EXPECT_DOUBLE_EQ(job.latest_metrics().test_accuracy(), 0.85);
  // Stored as sent: the coordinator does not rewrite a worker's events.
  EXPECT_EQ(job.latest_metrics().kind(), v1::TrainingEvent::KIND_UNSPECIFIED);
  EXPECT_EQ(job.latest_metrics().event(), "summary");
}

TEST_F(JobManagerTest, IdleHeartbeatAndReportsForOtherJobs) {
  const std::string p1 = register_pool(1), p2 = register_pool(1);
  const std::string a = submit(), b = submit();
  EXPECT_FALSE(jm_->report(held(*jm_, p1), "", {}));  // idle pool: nothing to stop
  take(p1);
  take(p2);
  // p1 reporting p2's job is told to stop, and nothing is recorded.
  EXPECT_TRUE(jm_->report(held(*jm_, p1), b, {step_event(1, 1.0)}));
  EXPECT_EQ(history(b).size(), 2u);
  EXPECT_FALSE(jm_->get(b).has_progress());
  EXPECT_FALSE(jm_->report(held(*jm_, p1), a, {step_event(1, 1.0)}));
}

TEST_F(JobManagerTest, FinishSucceededSetsStateEndTimeAndFinalEvent) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  jm_->report(held(*jm_, p), id, {step_event(10, 0.5), summary_event(10, 0.9)});
  jm_->finish(held(*jm_, p), id, v1::SUCCEEDED, "");
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::SUCCEEDED);
  EXPECT_EQ(job.error(), "");
  EXPECT_TRUE(job.has_end_time());
  EXPECT_GE(job.end_time().seconds(), job.start_time().seconds());
  EXPECT_EQ(job.pool_id(), p);  // the last pool that ran it
  EXPECT_EQ(event_kind(job.latest_metrics()), v1::TrainingEvent::SUMMARY);
  const v1::JobEvent last = last_event(id);
  EXPECT_EQ(last.seq(), 5);
  ASSERT_TRUE(last.has_state_change());
  EXPECT_EQ(last.state_change().state(), v1::SUCCEEDED);
  EXPECT_EQ(pool_info(p)->job_id, "");
  // A finished job cannot be finished again, nor reported on.
  EXPECT_SERVICE_ERROR(jm_->finish(held(*jm_, p), id, v1::SUCCEEDED, ""), ErrorCode::kFailedPrecondition, id);
  EXPECT_TRUE(jm_->report(held(*jm_, p), id, {step_event(11, 0.4)}));
  EXPECT_EQ(history(id).size(), 5u);
}

TEST_F(JobManagerTest, FinishFailedRecordsTheError) {
  const std::string p = register_pool(2);
  const std::string a = submit(), b = submit();
  take(p);
  jm_->finish(held(*jm_, p), a, v1::FAILED, "training diverged at step 12: loss is nan");
  v1::Job job = jm_->get(a);
  EXPECT_EQ(job.state(), v1::FAILED);
  EXPECT_EQ(job.error(), "training diverged at step 12: loss is nan");
  EXPECT_TRUE(job.has_end_time());
  v1::JobEvent last = last_event(a);
  ASSERT_TRUE(last.has_state_change());
  EXPECT_EQ(last.state_change().state(), v1::FAILED);
  EXPECT_EQ(last.state_change().reason(), "training diverged at step 12: loss is nan");

  // The pool takes the next job; a failure without a reason still gets one.
  EXPECT_EQ(take(p).job_id(), b);
  jm_->finish(held(*jm_, p), b, v1::FAILED, "");
  EXPECT_FALSE(jm_->get(b).error().empty());
}

TEST_F(JobManagerTest, FinishRejectsNonFinalStatesAndJobsNotOnThePool) {
  const std::string p1 = register_pool(2), p2 = register_pool(2);
  const std::string a = submit(), b = submit();
  take(p1);
  EXPECT_SERVICE_ERROR(jm_->finish(held(*jm_, p1), a, v1::RUNNING, ""), ErrorCode::kInvalidArgument, "state");
  EXPECT_SERVICE_ERROR(jm_->finish(held(*jm_, p1), a, v1::QUEUED, ""), ErrorCode::kInvalidArgument, "state");
  EXPECT_SERVICE_ERROR(jm_->finish(held(*jm_, p2), a, v1::SUCCEEDED, ""), ErrorCode::kFailedPrecondition, p2);
  EXPECT_SERVICE_ERROR(jm_->finish(held(*jm_, p1), b, v1::SUCCEEDED, ""), ErrorCode::kFailedPrecondition, b);
  EXPECT_EQ(jm_->get(a).state(), v1::RUNNING);
  EXPECT_EQ(jm_->get(b).state(), v1::QUEUED);
}

// ================================================================ cancel

TEST_F(JobManagerTest, CancelQueuedJobCancelsAtOnce) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  const v1::Job job = jm_->cancel(id);
  EXPECT_EQ(job.state(), v1::CANCELLED);
  EXPECT_FALSE(job.error().empty());
  EXPECT_TRUE(job.has_end_time());
  EXPECT_FALSE(job.cancel_requested());
  const v1::JobEvent last = last_event(id);
  EXPECT_EQ(last.seq(), 2);
  EXPECT_EQ(last.state_change().state(), v1::CANCELLED);
  // It is never handed out.
  EXPECT_FALSE(jm_->acquire(p, 0ms).has_value());
  // Cancelling again is idempotent: same state, no new event.
  const v1::Job again = jm_->cancel(id);
  EXPECT_EQ(again.state(), v1::CANCELLED);
  EXPECT_EQ(history(id).size(), 2u);
}

TEST_F(JobManagerTest, CancelRunningJobAsksThePoolToStop) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  EXPECT_FALSE(jm_->report(held(*jm_, p), id, {step_event(7, 1.0)}));

  const v1::Job asked = jm_->cancel(id);
  EXPECT_EQ(asked.state(), v1::RUNNING);
  EXPECT_TRUE(asked.cancel_requested());
  EXPECT_TRUE(jm_->get(id).cancel_requested());
  EXPECT_EQ(jm_->cancel(id).state(), v1::RUNNING);  // asking twice changes nothing

  // Every report now says stop (and still records the events).
  EXPECT_TRUE(jm_->report(held(*jm_, p), id, {step_event(8, 0.9)}));
  EXPECT_TRUE(jm_->report(held(*jm_, p), id, {}));
  EXPECT_EQ(jm_->get(id).progress().step(), 8);

  jm_->finish(held(*jm_, p), id, v1::CANCELLED, "stopped at step 8");
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::CANCELLED);
  EXPECT_FALSE(job.cancel_requested());
  EXPECT_TRUE(job.has_end_time());
  EXPECT_EQ(job.error(), "cancelled; stopped at step 8");
  const v1::JobEvent last = last_event(id);
  EXPECT_EQ(last.state_change().state(), v1::CANCELLED);
  EXPECT_EQ(last.state_change().reason(), "cancelled; stopped at step 8");
  EXPECT_EQ(jm_->cancel(id).state(), v1::CANCELLED);
}

TEST_F(JobManagerTest, CancelledFinishWithoutReasonSaysCancelled) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  jm_->cancel(id);
  jm_->finish(held(*jm_, p), id, v1::CANCELLED, "");
  EXPECT_EQ(jm_->get(id).state(), v1::CANCELLED);
  EXPECT_EQ(jm_->get(id).error(), "cancelled");
}

TEST_F(JobManagerTest, CancelEndedJobIsFailedPrecondition) {
  const std::string p = register_pool(2);
  const std::string a = submit(), b = submit();
  take(p);
  jm_->finish(held(*jm_, p), a, v1::SUCCEEDED, "");
  EXPECT_SERVICE_ERROR(jm_->cancel(a), ErrorCode::kFailedPrecondition, "SUCCEEDED");
  take(p);
  jm_->finish(held(*jm_, p), b, v1::FAILED, "boom");
  EXPECT_SERVICE_ERROR(jm_->cancel(b), ErrorCode::kFailedPrecondition, "FAILED");
  EXPECT_EQ(jm_->get(a).state(), v1::SUCCEEDED);
  EXPECT_EQ(jm_->get(b).error(), "boom");
}

// ================================================================ heartbeats

TEST_F(JobManagerTest, SilentPoolIsReapedAndItsJobRequeuedForAnotherPool) {
  const std::string p1 = register_pool(2), p2 = register_pool(2);
  const std::string id = submit();
  EXPECT_EQ(take(p1).job_id(), id);
  jm_->report(held(*jm_, p1), id, {step_event(1, 2.0)});

  clock_.advance(kTimeout);  // silent for exactly the timeout: still alive
  jm_->reap_lost_pools();
  EXPECT_EQ(jm_->pools().size(), 2u);
  EXPECT_EQ(jm_->get(id).state(), v1::RUNNING);

  clock_.advance(1ms);
  EXPECT_FALSE(jm_->report(held(*jm_, p2), "", {}));  // p2 heartbeats, p1 does not
  jm_->reap_lost_pools();
  EXPECT_EQ(pool_info(p1), nullptr);
  EXPECT_NE(pool_info(p2), nullptr);

  v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.attempts(), 1);
  EXPECT_FALSE(job.has_end_time());
  const v1::JobEvent requeued = last_event(id);
  EXPECT_EQ(requeued.seq(), 4);
  ASSERT_TRUE(requeued.has_state_change());
  EXPECT_EQ(requeued.state_change().state(), v1::QUEUED);
  EXPECT_TRUE(contains(requeued.state_change().reason(), p1)) << requeued.state_change().reason();

  // The lost pool is told to register again.
  EXPECT_SERVICE_ERROR(jm_->report(held(*jm_, p1), id, {step_event(2, 1.0)}), ErrorCode::kNotFound, p1);

  job = take(p2);
  EXPECT_EQ(job.job_id(), id);
  EXPECT_EQ(job.attempts(), 2);
  EXPECT_EQ(job.pool_id(), p2);
  const v1::JobEvent running = last_event(id);
  EXPECT_EQ(running.state_change().state(), v1::RUNNING);
  EXPECT_EQ(running.state_change().attempt(), 2);
  EXPECT_EQ(running.state_change().pool_id(), p2);
}

TEST_F(JobManagerTest, ReportsKeepAPoolAlive) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  for (int i = 0; i < 5; ++i) {
    clock_.advance(kTimeout - 100ms);
    jm_->report(held(*jm_, p), id, {step_event(i, 1.0)});
    jm_->reap_lost_pools();
  }
  EXPECT_NE(pool_info(p), nullptr);
  EXPECT_EQ(jm_->get(id).state(), v1::RUNNING);
}

TEST_F(JobManagerTest, IdlePoolIsReapedWithoutTouchingJobs) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  clock_.advance(kTimeout + 1ms);
  jm_->reap_lost_pools();
  EXPECT_TRUE(jm_->pools().empty());
  EXPECT_EQ(jm_->get(id).state(), v1::QUEUED);
  EXPECT_EQ(history(id).size(), 1u);
}

TEST_F(JobManagerTest, JobLostMaxAttemptsTimesFails) {
  const std::string id = submit();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    const std::string p = register_pool(2);
    const v1::Job job = take(p);
    EXPECT_EQ(job.attempts(), attempt);
    clock_.advance(kTimeout + 1ms);
    jm_->reap_lost_pools();
    if (attempt < 3) {
      EXPECT_EQ(jm_->get(id).state(), v1::QUEUED) << "after attempt " << attempt;
    }
  }
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::FAILED);
  EXPECT_EQ(job.attempts(), 3);
  EXPECT_TRUE(job.has_end_time());
  EXPECT_TRUE(contains(job.error(), "3 of 3")) << job.error();
  EXPECT_TRUE(contains(job.error(), "pool-1.3")) << job.error();
  const v1::JobEvent last = last_event(id);
  EXPECT_EQ(last.state_change().state(), v1::FAILED);
  EXPECT_EQ(last.state_change().reason(), job.error());
  // QUEUED, then three times RUNNING + lost.
  EXPECT_EQ(history(id).size(), 7u);
  // It is not handed out again.
  const std::string p = register_pool(2);
  EXPECT_FALSE(jm_->acquire(p, 0ms).has_value());
}

TEST_F(JobManagerTest, MaxAttemptsOneFailsOnFirstLoss) {
  max_attempts_ = 1;
  start();
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  clock_.advance(kTimeout + 1ms);
  jm_->reap_lost_pools();
  EXPECT_EQ(jm_->get(id).state(), v1::FAILED);
  EXPECT_TRUE(contains(jm_->get(id).error(), "1 of 1")) << jm_->get(id).error();
}

TEST_F(JobManagerTest, PoolWaitingInAcquireIsNotReaped) {
  const std::string p = register_pool(2);
  auto taken = std::async(std::launch::async, [&] { return jm_->acquire(p, 4000ms); });
  ASSERT_TRUE(wait_for([&] { return pool_info(p) && pool_info(p)->waiting == 1; }));
  clock_.advance(10 * kTimeout);
  jm_->reap_lost_pools();
  ASSERT_NE(pool_info(p), nullptr) << "a pool waiting for work was reaped";

  const std::string id = submit();
  ASSERT_EQ(taken.wait_for(3s), std::future_status::ready);
  auto job = taken.get();
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->job_id(), id);
  // The acquire counts as a heartbeat when it returns...
  jm_->reap_lost_pools();
  EXPECT_NE(pool_info(p), nullptr);
  // ...and the pool goes silent from there.
  clock_.advance(kTimeout + 1ms);
  jm_->reap_lost_pools();
  EXPECT_EQ(pool_info(p), nullptr);
  EXPECT_EQ(jm_->get(id).state(), v1::QUEUED);
}

TEST_F(JobManagerTest, CancelRequestedJobWhosePoolIsLostIsCancelled) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  jm_->cancel(id);
  clock_.advance(kTimeout + 1ms);
  jm_->reap_lost_pools();
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::CANCELLED);
  EXPECT_FALSE(job.cancel_requested());
  EXPECT_TRUE(job.has_end_time());
}

// ================================================================ hung pools (stall watchdog, cancel grace)

TEST_F(JobManagerTest, HungPoolIsDroppedAndItsJobRequeuedForAnotherPool) {
  const std::string p1 = register_pool(2), p2 = register_pool(2);
  const std::string id = submit();
  take(p1);
  jm_->report(held(*jm_, p1), id, {step_event(40, 1.0)});
  jm_->pool_hung(held(*jm_, p1), id, "rank 0 waited 4 s in MPI_Allreduce for the other ranks");
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.attempts(), 1);
  const std::string reason = last_event(id).state_change().reason();
  EXPECT_TRUE(contains(reason, "pool " + p1 + " hung (rank 0 waited 4 s in MPI_Allreduce")) << reason;
  EXPECT_TRUE(contains(reason, "requeued after attempt 1 of 3")) << reason;
  // The pool is gone at once (it is going down): it cannot take the job back.
  EXPECT_EQ(pool_info(p1), nullptr);
  EXPECT_SERVICE_ERROR(jm_->acquire(p1, 0ms), ErrorCode::kNotFound, p1);
  EXPECT_EQ(take(p2).attempts(), 2);
}

TEST_F(JobManagerTest, HungPoolOfACancelledJobEndsItCancelled) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  jm_->cancel(id);
  jm_->pool_hung(held(*jm_, p), id, "rank 0 waited 4 s in MPI_Wait");
  EXPECT_EQ(jm_->get(id).state(), v1::CANCELLED);
  EXPECT_TRUE(contains(jm_->get(id).error(), "hung")) << jm_->get(id).error();
}

TEST_F(JobManagerTest, HungPoolOnTheLastAttemptFailsTheJob) {
  max_attempts_ = 1;
  start();
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  jm_->pool_hung(held(*jm_, p), id, "rank 0 waited 4 s in MPI_Allreduce");
  EXPECT_EQ(jm_->get(id).state(), v1::FAILED);
  EXPECT_TRUE(contains(jm_->get(id).error(), "attempt 1 of 1; giving up")) << jm_->get(id).error();
}

TEST_F(JobManagerTest, HungReportForAJobThePoolDoesNotHoldIsRefused) {
  const std::string p1 = register_pool(2), p2 = register_pool(2);
  const std::string a = submit(), b = submit();
  take(p1);
  take(p2);
  EXPECT_SERVICE_ERROR(jm_->pool_hung(held(*jm_, p1), b, "x"), ErrorCode::kFailedPrecondition, b);
  EXPECT_SERVICE_ERROR(jm_->pool_hung(held(*jm_, "pool-9.9"), a, "x"), ErrorCode::kNotFound, "pool-9.9");
  EXPECT_EQ(jm_->get(a).state(), v1::RUNNING);
  EXPECT_EQ(jm_->get(b).state(), v1::RUNNING);
  EXPECT_NE(pool_info(p1), nullptr);
}

TEST_F(JobManagerTest, CancelWinsOverAPoolThatKeepsReportingButNeverStops) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  jm_->cancel(id);
  // The pool heartbeats (its reporter thread lives) but training never reaches a
  // step: the cancel waits out the grace, then wins.
  const auto grace = ManagerOptions().cancel_grace;
  for (auto waited = 0ms; waited + kTimeout <= grace; waited += kTimeout) {
    clock_.advance(kTimeout);
    EXPECT_TRUE(jm_->report(held(*jm_, p), id, {}));
    jm_->reap_lost_pools();
    ASSERT_EQ(jm_->get(id).state(), v1::RUNNING) << "after " << waited.count() << " ms";
  }
  clock_.advance(grace % kTimeout + 1ms);
  EXPECT_TRUE(jm_->report(held(*jm_, p), id, {}));
  jm_->reap_lost_pools();
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::CANCELLED);
  EXPECT_TRUE(contains(job.error(), "did not stop the job within 315 s and is dropped")) << job.error();
  // The pool is dropped: it is told so and stops whatever it was doing.
  EXPECT_EQ(pool_info(p), nullptr);
  EXPECT_SERVICE_ERROR(jm_->report(held(*jm_, p), id, {}), ErrorCode::kNotFound, p);
}

TEST_F(JobManagerTest, CancelGraceCountsFromTheCancelNotTheStart) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  const auto grace = ManagerOptions().cancel_grace;
  for (auto t = 0ms; t <= grace; t += kTimeout) {  // a long healthy run first
    clock_.advance(kTimeout);
    jm_->report(held(*jm_, p), id, {step_event(1, 1.0)});
  }
  jm_->cancel(id);
  clock_.advance(kTimeout);
  jm_->report(held(*jm_, p), id, {});
  jm_->reap_lost_pools();
  EXPECT_EQ(jm_->get(id).state(), v1::RUNNING);  // still its pool's to stop
  jm_->finish(held(*jm_, p), id, v1::CANCELLED, "stopped at step 2");
  EXPECT_EQ(jm_->get(id).error(), "cancelled; stopped at step 2");
}

TEST_F(JobManagerTest, PoolAskingForWorkWhileHoldingAJobLosesIt) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  // The pool restarted (or lost track) and asks again: the old attempt is over.
  const v1::Job again = take(p);
  EXPECT_EQ(again.job_id(), id);
  EXPECT_EQ(again.attempts(), 2);
  const auto events = history(id);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2].state_change().state(), v1::QUEUED);
  EXPECT_TRUE(contains(events[2].state_change().reason(), p)) << events[2].state_change().reason();
  EXPECT_EQ(events[3].state_change().state(), v1::RUNNING);
}

// ================================================================ restart

class JobManagerRestartTest : public JobManagerTest {
 protected:
  void SetUp() override {
    store_ = std::make_unique<Store>(dir_.file("prelude.db"));
    start();
  }
  // Destroys the manager and the store, and opens both again on the same file.
  void restart() {
    jm_.reset();
    store_.reset();
    store_ = std::make_unique<Store>(dir_.file("prelude.db"));
    start();
  }
  // As restart(), but as if the coordinator had been killed: no clean-stop mark.
  void crash_restart() {
    jm_.reset();
    store_.reset();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.file("prelude.db").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, "DELETE FROM meta WHERE key = 'clean_stop'", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    store_ = std::make_unique<Store>(dir_.file("prelude.db"));
    start();
  }
  TempDir dir_;
};

TEST_F(JobManagerRestartTest, RunningJobIsRequeuedWithItsHistoryIntact) {
  const std::string p = register_pool(2);
  const std::string a = submit(0, "a"), b = submit(0, "b");
  take(p);
  jm_->report(held(*jm_, p), a, {step_event(1, 2.0), step_event(2, 1.5)});
  const auto before = history(a);
  ASSERT_EQ(before.size(), 4u);

  restart();

  v1::Job job = jm_->get(a);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.attempts(), 1);
  EXPECT_EQ(job.progress().step(), 2);
  EXPECT_EQ(job.spec().name(), "a");
  const auto after = history(a);
  ASSERT_EQ(after.size(), 5u);
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_EQ(after[i].SerializeAsString(), before[i].SerializeAsString()) << "event " << i;
  EXPECT_EQ(after[4].seq(), 5);
  EXPECT_EQ(after[4].state_change().state(), v1::QUEUED);
  EXPECT_TRUE(contains(after[4].state_change().reason(), "restart")) << after[4].state_change().reason();
  EXPECT_EQ(jm_->get(b).state(), v1::QUEUED);
  EXPECT_EQ(jm_->metrics(a).size(), 2u);

  // The old pool is unknown; a new one gets a new boot's id and the oldest job first.
  EXPECT_SERVICE_ERROR(jm_->report(held(*jm_, p), a, {}), ErrorCode::kNotFound, p);
  const std::string q = register_pool(2);
  EXPECT_TRUE(is_pool_id(q, "pool-2.1")) << q;
  job = take(q);
  EXPECT_EQ(job.job_id(), a);
  EXPECT_EQ(job.attempts(), 2);
  EXPECT_EQ(last_event(a).seq(), 6);
  // Numbering goes on after the stored jobs.
  EXPECT_EQ(submit(), "job-000003");
}

TEST_F(JobManagerRestartTest, RunningJobOutOfAttemptsFailsOnACrashRestart) {
  max_attempts_ = 1;
  start();
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  crash_restart();
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::FAILED);
  EXPECT_TRUE(job.has_end_time());
  EXPECT_TRUE(contains(job.error(), "restart")) << job.error();
  EXPECT_TRUE(contains(job.error(), "1 of 1")) << job.error();
}

// A clean restart is not the job's fault: the attempt it cut short is not held
// against --max-attempts (3 restarts used to fail a healthy job).
TEST_F(JobManagerRestartTest, CleanRestartsDoNotUseUpAttempts) {
  ASSERT_EQ(max_attempts_, 3);
  const std::string id = submit();
  for (int i = 1; i <= 4; ++i) {
    const std::string p = register_pool(2);
    EXPECT_EQ(take(p).attempts(), i);
    jm_->report(held(*jm_, p), id, {step_event(i, 1.0)});
    restart();
    const v1::Job job = jm_->get(id);
    ASSERT_EQ(job.state(), v1::QUEUED) << "restart " << i << ": " << job.error();
    EXPECT_EQ(job.uncounted_attempts(), i);
    const std::string reason = last_event(id).state_change().reason();
    EXPECT_TRUE(contains(reason, "restart")) << reason;
    EXPECT_TRUE(contains(reason, "attempt " + std::to_string(i) + " not counted")) << reason;
  }
  const std::string p = register_pool(2);
  const v1::Job running = take(p);
  EXPECT_EQ(running.attempts(), 5);
  EXPECT_EQ(last_event(id).state_change().attempt(), 5);
  jm_->report(held(*jm_, p), id, {summary_event(10, 0.9)});
  jm_->finish(held(*jm_, p), id, v1::SUCCEEDED, "");
  EXPECT_EQ(jm_->get(id).state(), v1::SUCCEEDED);
}

// Lost pools still count, after restarts too, and the reason says which count.
TEST_F(JobManagerRestartTest, AfterCleanRestartsLostPoolsStillCount) {
  max_attempts_ = 2;
  start();
  const std::string id = submit();
  take(register_pool(2));
  restart();  // attempt 1: not counted
  take(register_pool(2));
  clock_.advance(kTimeout + 1ms);
  jm_->reap_lost_pools();  // attempt 2: counted, 1 of 2
  v1::Job job = jm_->get(id);
  ASSERT_EQ(job.state(), v1::QUEUED);
  EXPECT_TRUE(contains(last_event(id).state_change().reason(),
                       "attempt 2 (1 of 2 counted, 1 cut short by coordinator restarts)"))
      << last_event(id).state_change().reason();
  take(register_pool(2));
  clock_.advance(kTimeout + 1ms);
  jm_->reap_lost_pools();  // attempt 3: 2 of 2
  job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::FAILED);
  EXPECT_TRUE(contains(job.error(), "giving up")) << job.error();
  EXPECT_TRUE(contains(job.error(), "2 of 2 counted")) << job.error();
}

// A crash may be the job's doing (one that kills the coordinator must not do so
// forever): its attempt counts.
TEST_F(JobManagerRestartTest, ACrashRestartCountsTheAttempt) {
  const std::string id = submit();
  take(register_pool(2));
  crash_restart();
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.uncounted_attempts(), 0);
  const std::string reason = last_event(id).state_change().reason();
  EXPECT_TRUE(contains(reason, "abruptly")) << reason;
  EXPECT_TRUE(contains(reason, "attempt 1 of 3")) << reason;
}

TEST_F(JobManagerRestartTest, EndedAndQueuedJobsSurviveUnchanged) {
  const std::string p = register_pool(2);
  const std::string a = submit(), b = submit(), c = submit();
  take(p);
  jm_->report(held(*jm_, p), a, {summary_event(10, 0.9)});
  jm_->finish(held(*jm_, p), a, v1::SUCCEEDED, "");
  jm_->cancel(b);
  const v1::Job a_before = jm_->get(a), b_before = jm_->get(b), c_before = jm_->get(c);

  restart();

  EXPECT_EQ(jm_->get(a).SerializeAsString(), a_before.SerializeAsString());
  EXPECT_EQ(jm_->get(b).SerializeAsString(), b_before.SerializeAsString());
  // The queued one keeps its place; why it waits is worked out anew (its pool is gone).
  v1::Job c_after = jm_->get(c), c_then = c_before;
  EXPECT_EQ(c_after.queue_position(), 1);
  EXPECT_TRUE(contains(c_after.waiting_reason(), "none is registered")) << c_after.waiting_reason();
  c_after.clear_waiting_reason();
  c_then.clear_waiting_reason();
  EXPECT_EQ(c_after.SerializeAsString(), c_then.SerializeAsString());
  EXPECT_EQ(history(a).size(), 4u);
  bool ended = false;
  EXPECT_TRUE(jm_->wait_events(a, 4, SteadyClock::now() + 1s, &ended).empty());
  EXPECT_TRUE(ended);
  EXPECT_EQ(ids(jm_->list(0, "", v1::JOB_STATE_UNSPECIFIED).jobs), (std::vector<std::string>{c, b, a}));
  const std::string q = register_pool(2);
  EXPECT_EQ(take(q).job_id(), c);
}

TEST_F(JobManagerRestartTest, CancelRequestedRunningJobIsCancelledOnRestart) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  jm_->cancel(id);
  restart();
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::CANCELLED);
  EXPECT_FALSE(job.cancel_requested());
}

// ================================================================ store failures

// A write the store refuses (disk full, I/O error, a lock held past the busy
// timeout) must leave no trace: the caller gets the error, and neither the job
// table in memory nor the event numbering may move ahead of the database. The
// refusal is provoked by planting, through a second connection, the event row the
// manager is about to write, so its INSERT fails at once.
class JobManagerStoreFailureTest : public JobManagerRestartTest {
 protected:
  void plant_event(const std::string& job_id, int64_t seq) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.file("prelude.db").c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    const std::string sql = "INSERT INTO events(job_id, seq, training, event) VALUES('" + job_id + "', " +
                            std::to_string(seq) + ", 0, x'')";
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }
  void remove_event(const std::string& job_id, int64_t seq) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.file("prelude.db").c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    const std::string sql =
        "DELETE FROM events WHERE job_id = '" + job_id + "' AND seq = " + std::to_string(seq);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
};

TEST_F(JobManagerStoreFailureTest, SubmitWhoseWriteFailsLeavesNoJob) {
  const std::string a = submit();
  plant_event("job-000002", 1);  // the QUEUED event of the next job cannot be written
  EXPECT_ANY_THROW(jm_->submit(small_spec("lost")));
  remove_event("job-000002", 1);

  // The client was told the submit failed: the job must not exist, run, or be listed.
  EXPECT_SERVICE_ERROR(jm_->get("job-000002"), ErrorCode::kNotFound, "job-000002");
  EXPECT_EQ(ids(jm_->list(0, "", v1::JOB_STATE_UNSPECIFIED).jobs), (std::vector<std::string>{a}));
  const std::string p1 = register_pool(1), p2 = register_pool(1);
  EXPECT_EQ(take(p1).job_id(), a);
  EXPECT_FALSE(jm_->acquire(p2, 0ms).has_value()) << "a job whose submit failed was handed to a pool";
}

TEST_F(JobManagerStoreFailureTest, ASweepWhoseWriteFailsLeavesNothingAndUsesNoId) {
  v1::SweepSpec sweep;
  sweep.set_name("atomic");
  *sweep.mutable_base() = small_spec("base");
  for (int64_t seed : {1, 2, 3, 4}) sweep.add_seeds(seed);
  plant_event("job-000003", 1);  // the third point's QUEUED event cannot be written
  EXPECT_ANY_THROW(jm_->submit_sweep(sweep));
  remove_event("job-000003", 1);
  // Nothing of it: no job, no sweep, in memory or (after a restart) on disk.
  EXPECT_TRUE(jm_->list(0, "", v1::JOB_STATE_UNSPECIFIED).jobs.empty());
  EXPECT_SERVICE_ERROR(jm_->get_sweep("sweep-000001"), ErrorCode::kNotFound, "sweep-000001");
  restart();
  EXPECT_TRUE(jm_->list(0, "", v1::JOB_STATE_UNSPECIFIED).jobs.empty());
  const v1::SweepStatus st = jm_->submit_sweep(sweep);
  EXPECT_EQ(st.sweep().sweep_id(), "sweep-000001");
  ASSERT_EQ(st.jobs_size(), 4);
  EXPECT_EQ(st.jobs(0).job_id(), "job-000001");
  EXPECT_EQ(st.jobs(3).job_id(), "job-000004");
}

TEST_F(JobManagerRestartTest, IdsAreNeverGivenTwiceNotAfterADeleteNorARestart) {
  submit(0, "a");
  const std::string b = submit(0, "b");
  jm_->cancel(b);
  jm_->remove(b);  // the newest job
  restart();
  EXPECT_EQ(submit(0, "c"), "job-000003");
  v1::SweepSpec sweep;
  sweep.set_name("s");
  *sweep.mutable_base() = small_spec("base");
  const std::string first = jm_->submit_sweep(sweep).sweep().sweep_id();
  restart();
  EXPECT_NE(jm_->submit_sweep(sweep).sweep().sweep_id(), first);
}

TEST_F(JobManagerStoreFailureTest, ReportWhoseWriteFailsLeavesNoGapInTheHistory) {
  const std::string p = register_pool(1);
  const std::string id = submit();
  take(p);                 // seq 1 QUEUED, 2 RUNNING
  plant_event(id, 3);      // the next event cannot be written
  EXPECT_ANY_THROW(jm_->report(held(*jm_, p), id, {step_event(1, 2.0)}));
  remove_event(id, 3);

  // Nothing of the refused report is visible: no progress, and a watcher at seq 2
  // waits for the next real event instead of spinning.
  EXPECT_FALSE(jm_->get(id).has_progress()) << "progress of a report that was not stored";
  bool ended = true;
  const auto t0 = SteadyClock::now();
  EXPECT_TRUE(jm_->wait_events(id, 2, SteadyClock::now() + 100ms, &ended).empty());
  EXPECT_GE(ms_since(t0), 90) << "wait_events returned at once with nothing: a watcher would spin";

  // The next report continues the numbering without a hole.
  EXPECT_FALSE(jm_->report(held(*jm_, p), id, {step_event(2, 1.5)}));
  EXPECT_EQ(seqs(history(id)), (std::vector<int64_t>{1, 2, 3}));
}

TEST_F(JobManagerStoreFailureTest, AcquireWhoseWriteFailsLeavesTheJobQueuedAndThePoolFree) {
  const std::string p = register_pool(2);
  const std::string id = submit();  // seq 1 QUEUED
  const v1::Job before = jm_->get(id);
  plant_event(id, 2);  // its RUNNING event cannot be written
  EXPECT_ANY_THROW(jm_->acquire(p, 0ms));
  remove_event(id, 2);

  // The job is as it was: queued, on no pool, no attempt counted.
  const v1::Job after = jm_->get(id);
  EXPECT_EQ(after.state(), v1::QUEUED);
  EXPECT_EQ(after.pool_id(), "");
  EXPECT_EQ(after.ranks(), 0);
  EXPECT_EQ(after.attempts(), 0);
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
  // The pool holds nothing and waits no more.
  const PoolInfo* pool = pool_info(p);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->job_id, "");
  EXPECT_EQ(pool->waiting, 0);
  EXPECT_TRUE(jm_->report(held(*jm_, p), id, {})) << "the pool may report on a job it was never given";

  // Taken again, it is the first attempt, with no hole in the history.
  const v1::Job job = take(p);
  EXPECT_EQ(job.job_id(), id);
  EXPECT_EQ(job.attempts(), 1);
  EXPECT_EQ(job.pool_id(), p);
  EXPECT_EQ(seqs(history(id)), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(pool_info(p)->job_id, id);
}

TEST_F(JobManagerStoreFailureTest, AcquireWhoseRequeueWriteFailsLeavesThePoolItsJob) {
  const std::string p = register_pool(1);
  const std::string id = submit();
  take(p);             // seq 1 QUEUED, 2 RUNNING
  plant_event(id, 3);  // the pool asks for work again, but the requeue cannot be written
  EXPECT_ANY_THROW(jm_->acquire(p, 0ms));
  remove_event(id, 3);

  EXPECT_EQ(jm_->get(id).state(), v1::RUNNING);
  EXPECT_EQ(jm_->get(id).attempts(), 1);
  EXPECT_EQ(pool_info(p)->job_id, id) << "the job would stay RUNNING with no pool to lose it";
  EXPECT_EQ(pool_info(p)->waiting, 0);
  // Asking again requeues it and starts it over.
  const v1::Job job = take(p);
  EXPECT_EQ(job.job_id(), id);
  EXPECT_EQ(job.attempts(), 2);
  EXPECT_EQ(seqs(history(id)), (std::vector<int64_t>{1, 2, 3, 4}));
}

TEST_F(JobManagerStoreFailureTest, FinishWhoseWriteFailsLeavesTheJobRunningOnThePool) {
  const std::string p = register_pool(1);
  const std::string id = submit();
  take(p);             // seq 1 QUEUED, 2 RUNNING
  plant_event(id, 3);  // the SUCCEEDED event cannot be written
  EXPECT_ANY_THROW(jm_->finish(held(*jm_, p), id, v1::SUCCEEDED, ""));
  remove_event(id, 3);

  EXPECT_EQ(jm_->get(id).state(), v1::RUNNING);
  EXPECT_EQ(pool_info(p)->job_id, id);
  // The pool's next try is taken.
  jm_->finish(held(*jm_, p), id, v1::SUCCEEDED, "");
  EXPECT_EQ(jm_->get(id).state(), v1::SUCCEEDED);
  EXPECT_EQ(pool_info(p)->job_id, "");
  EXPECT_EQ(seqs(history(id)), (std::vector<int64_t>{1, 2, 3}));
}

// ================================================================ reaper thread

TEST(JobManagerReaperThreadTest, ReaperThreadRequeuesTheJobOfASilentPool) {
  Store store(":memory:");
  ManagerOptions o;
  o.reaper_thread = true;  // the real clock and the manager's own thread
  o.heartbeat_timeout = 200ms;
  JobManager jm(store, o);
  const std::string p = jm.register_pool(pool_request(1)).pool_id();
  const std::string id = jm.submit(small_spec()).job_id();
  ASSERT_TRUE(jm.acquire(p, 0ms).has_value());
  EXPECT_TRUE(wait_for([&] { return jm.get(id).state() == v1::QUEUED; }, 4000ms))
      << "the silent pool's job was not requeued";
  EXPECT_TRUE(jm.pools().empty());
}

// ================================================================ wait_events

TEST_F(JobManagerTest, WaitEventsReturnsExistingEventsAtOnce) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  jm_->report(held(*jm_, p), id, {step_event(1, 2.0), step_event(2, 1.0)});
  bool ended = true;
  const auto t0 = SteadyClock::now();
  auto events = jm_->wait_events(id, 0, SteadyClock::now() + 5s, &ended);
  EXPECT_LT(ms_since(t0), 1000);
  EXPECT_FALSE(ended);
  EXPECT_EQ(seqs(events), (std::vector<int64_t>{1, 2, 3, 4}));
  events = jm_->wait_events(id, 2, SteadyClock::now() + 5s, &ended);
  EXPECT_EQ(seqs(events), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(events[0].training().step(), 1);
}

TEST_F(JobManagerTest, WaitEventsBlocksUntilAReportArrives) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  std::thread reporter([&] {
    std::this_thread::sleep_for(50ms);
    jm_->report(held(*jm_, p), id, {step_event(1, 2.0)});
  });
  bool ended = true;
  const auto t0 = SteadyClock::now();
  const auto events = jm_->wait_events(id, 2, SteadyClock::now() + 5s, &ended);
  const int64_t waited = ms_since(t0);
  reporter.join();
  EXPECT_GE(waited, 40);  // it did wait for the report...
  EXPECT_LT(waited, 4000);   // ...and not for the deadline
  EXPECT_FALSE(ended);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].seq(), 3);
  EXPECT_EQ(events[0].training().step(), 1);
}

TEST_F(JobManagerTest, WaitEventsWakesForTheFinalStateAndThenEnds) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  auto waiter = std::async(std::launch::async, [&] {
    bool ended = true;
    auto events = jm_->wait_events(id, 2, SteadyClock::now() + 5s, &ended);
    return std::make_pair(events, ended);
  });
  std::this_thread::sleep_for(20ms);
  jm_->finish(held(*jm_, p), id, v1::SUCCEEDED, "");
  ASSERT_EQ(waiter.wait_for(3s), std::future_status::ready);
  const auto [events, ended] = waiter.get();
  EXPECT_FALSE(ended);  // the final event is still to be consumed
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].state_change().state(), v1::SUCCEEDED);

  bool now_ended = false;
  const auto t0 = SteadyClock::now();
  EXPECT_TRUE(jm_->wait_events(id, 3, SteadyClock::now() + 5s, &now_ended).empty());
  EXPECT_TRUE(now_ended);
  EXPECT_LT(ms_since(t0), 1000);
  // A watcher that starts over still gets the whole history first.
  EXPECT_EQ(seqs(jm_->wait_events(id, 0, SteadyClock::now() + 5s, &now_ended)), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_FALSE(now_ended);
}

TEST_F(JobManagerTest, WaitEventsEndsForACancelledQueuedJob) {
  const std::string id = submit();
  jm_->cancel(id);
  bool ended = false;
  EXPECT_EQ(jm_->wait_events(id, 0, SteadyClock::now() + 5s, &ended).size(), 2u);
  EXPECT_FALSE(ended);
  EXPECT_TRUE(jm_->wait_events(id, 2, SteadyClock::now() + 5s, &ended).empty());
  EXPECT_TRUE(ended);
}

TEST_F(JobManagerTest, WaitEventsReturnsNothingAtTheDeadline) {
  const std::string id = submit();
  bool ended = true;
  const auto t0 = SteadyClock::now();
  EXPECT_TRUE(jm_->wait_events(id, 1, SteadyClock::now() + 60ms, &ended).empty());
  const int64_t waited = ms_since(t0);
  EXPECT_FALSE(ended);
  EXPECT_GE(waited, 55);
  EXPECT_LT(waited, 2000);
  // A deadline already past returns at once.
  EXPECT_TRUE(jm_->wait_events(id, 1, SteadyClock::now() - 1s, &ended).empty());
  EXPECT_FALSE(ended);
}

TEST_F(JobManagerTest, WaitEventsIsNotWokenForOtherJobsEvents) {
  const std::string p = register_pool(2);
  const std::string a = submit(), b = submit();
  take(p);
  auto waiter = std::async(std::launch::async, [&] {
    bool ended = true;
    return jm_->wait_events(b, 1, SteadyClock::now() + 300ms, &ended);
  });
  for (int i = 0; i < 5; ++i) jm_->report(held(*jm_, p), a, {step_event(i, 1.0)});
  EXPECT_TRUE(waiter.get().empty());
}

// Every event used to wake every watcher of every job: 300 idle watchers cut
// ReportProgress to a third. A watcher, a sweep watcher and a waiting pool are woken
// by what they wait for only.
TEST_F(JobManagerTest, WaitersAreWokenOnlyByWhatTheyWaitFor) {
  std::mutex mu;
  std::map<std::string, int> wakeups;
  on_wakeup_ = [&](const std::string& key) {
    std::lock_guard<std::mutex> lock(mu);
    ++wakeups[key];
  };
  start();
  const std::string p = register_pool(2), idle = register_pool(4);
  // Batches of 6: the pool of 4 ranks takes none of these jobs.
  const std::string a = submit(6), b = submit(6);
  v1::SweepSpec sweep_spec;
  *sweep_spec.mutable_base() = small_spec("s", 6);
  sweep_spec.add_seeds(1);
  const std::string sweep = jm_->submit_sweep(sweep_spec).sweep().sweep_id();
  EXPECT_EQ(take(p).job_id(), a);
  int64_t version = -1;
  jm_->wait_sweep(sweep, &version, SteadyClock::now());  // the current version
  auto watcher = std::async(std::launch::async, [&] {
    bool ended = true;
    return jm_->wait_events(b, 1, SteadyClock::now() + 400ms, &ended);
  });
  auto sweep_watcher = std::async(std::launch::async, [&] {
    int64_t v = version;
    return jm_->wait_sweep(sweep, &v, SteadyClock::now() + 400ms);
  });
  auto pool_waiter = std::async(std::launch::async, [&] { return jm_->acquire(idle, 400ms); });
  std::this_thread::sleep_for(50ms);  // all three waiting
  for (int i = 0; i < 20; ++i) jm_->report(held(*jm_, p), a, {step_event(i, 1.0)});
  EXPECT_TRUE(watcher.get().empty());
  EXPECT_FALSE(sweep_watcher.get().has_value());
  EXPECT_FALSE(pool_waiter.get().has_value());
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(wakeups[b], 0);
  EXPECT_EQ(wakeups[sweep], 0);
  EXPECT_EQ(wakeups[idle], 0);
}

// ... and are woken by it.
TEST_F(JobManagerTest, WaitersAreWokenByTheirOwnJobSweepOrQueue) {
  const std::string p = register_pool(2);
  v1::SweepSpec sweep_spec;
  *sweep_spec.mutable_base() = small_spec("s");
  sweep_spec.add_seeds(1);
  const v1::SweepStatus status = jm_->submit_sweep(sweep_spec);
  const std::string sweep = status.sweep().sweep_id(), job = status.jobs(0).job_id();
  EXPECT_EQ(take(p).job_id(), job);
  int64_t version = -1;
  jm_->wait_sweep(sweep, &version, SteadyClock::now());
  const auto t0 = SteadyClock::now();
  auto sweep_watcher = std::async(std::launch::async, [&] {
    int64_t v = version;
    return jm_->wait_sweep(sweep, &v, SteadyClock::now() + 5s);
  });
  auto watcher = std::async(std::launch::async, [&] {
    bool ended = true;
    return jm_->wait_events(job, 2, SteadyClock::now() + 5s, &ended);
  });
  const std::string q = register_pool(2);
  auto pool_waiter = std::async(std::launch::async, [&] { return jm_->acquire(q, 5000ms); });
  std::this_thread::sleep_for(50ms);
  jm_->report(held(*jm_, p), job, {step_event(1, 1.0)});
  EXPECT_EQ(watcher.get().size(), 1u);
  EXPECT_TRUE(sweep_watcher.get().has_value());
  const std::string queued = submit();
  const auto taken = pool_waiter.get();
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->job_id(), queued);
  EXPECT_LT(ms_since(t0), 2000);
}

std::vector<int> steps_of(const std::vector<v1::JobEvent>& events) {
  std::vector<int> out;
  for (const auto& e : events) out.push_back(e.training().step());
  return out;
}

// A requeued job trains again: GetMetrics used to mix its attempts (steps 5, 10, 15,
// 5, 10). Events carry their attempt; metrics give the latest one unless asked.
TEST_F(JobManagerTest, EventsCarryTheirAttemptAndMetricsKeepAttemptsApart) {
  const std::string id = submit();
  EXPECT_EQ(jm_->metrics_page(id, 0, false, 0, "").attempt, 0);  // never started: nothing
  const std::string p = register_pool(2);
  take(p);
  jm_->report(held(*jm_, p), id, {step_event(5, 1.0), step_event(10, 0.9), step_event(15, 0.8)});
  clock_.advance(kTimeout + 1ms);
  jm_->reap_lost_pools();
  const std::string q = register_pool(2);
  take(q);
  jm_->report(held(*jm_, q), id, {step_event(5, 1.0), step_event(10, 0.9)});

  std::vector<int> attempts;
  for (const auto& e : history(id)) attempts.push_back(e.attempt());
  // submitted, RUNNING, 3 steps, requeued (the end of attempt 1), RUNNING, 2 steps
  EXPECT_EQ(attempts, (std::vector<int>{0, 1, 1, 1, 1, 1, 2, 2, 2}));

  MetricsPage page = jm_->metrics_page(id, 0, false, 0, "");
  EXPECT_EQ(page.attempt, 2);
  EXPECT_EQ(steps_of(page.events), (std::vector<int>{5, 10}));
  EXPECT_EQ(page.next_page_token, "");
  EXPECT_EQ(page.job.attempts(), 2);
  page = jm_->metrics_page(id, 1, false, 0, "");
  EXPECT_EQ(page.attempt, 1);
  EXPECT_EQ(steps_of(page.events), (std::vector<int>{5, 10, 15}));
  page = jm_->metrics_page(id, 0, true, 0, "");
  EXPECT_EQ(page.attempt, 0);
  EXPECT_EQ(steps_of(page.events), (std::vector<int>{5, 10, 15, 5, 10}));

  // Pages of 2 over every attempt: 2 + 2 + 1, the token carrying on.
  std::vector<int> all;
  std::string token;
  int pages = 0;
  do {
    page = jm_->metrics_page(id, 0, true, 2, token);
    EXPECT_LE(page.events.size(), 2u);
    const auto s = steps_of(page.events);
    all.insert(all.end(), s.begin(), s.end());
    token = page.next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(all, (std::vector<int>{5, 10, 15, 5, 10}));

  // The token keeps the attempt it started with, whatever starts meanwhile.
  page = jm_->metrics_page(id, 0, false, 1, "");
  ASSERT_EQ(steps_of(page.events), (std::vector<int>{5}));
  ASSERT_FALSE(page.next_page_token.empty());
  clock_.advance(kTimeout + 1ms);
  jm_->reap_lost_pools();
  const std::string r = register_pool(2);
  take(r);
  jm_->report(held(*jm_, r), id, {step_event(1, 1.0)});
  page = jm_->metrics_page(id, 0, false, 0, page.next_page_token);
  EXPECT_EQ(page.attempt, 2);
  EXPECT_EQ(steps_of(page.events), (std::vector<int>{10}));
  EXPECT_EQ(steps_of(jm_->metrics_page(id, 0, false, 0, "").events), (std::vector<int>{1}));

  EXPECT_SERVICE_ERROR(jm_->metrics_page(id, 0, false, 20001, ""), ErrorCode::kInvalidArgument, "page_size");
  EXPECT_SERVICE_ERROR(jm_->metrics_page(id, -1, false, 0, ""), ErrorCode::kInvalidArgument, "attempt");
  EXPECT_SERVICE_ERROR(jm_->metrics_page(id, 4, false, 0, ""), ErrorCode::kInvalidArgument, "has had 3 attempts");
  for (const char* bad : {"x", "2.", "0.5", "all.abc", ".5", "2.5x", "-1.3"})
    EXPECT_SERVICE_ERROR(jm_->metrics_page(id, 0, false, 0, bad), ErrorCode::kInvalidArgument, "page_token");
}

TEST_F(JobManagerTest, ShutdownWakesWaitersWithUnavailable) {
  const std::string id = submit();
  auto waiter = std::async(std::launch::async, [&] {
    bool ended = false;
    return jm_->wait_events(id, 1, SteadyClock::now() + 5s, &ended);
  });
  std::this_thread::sleep_for(20ms);
  const auto t0 = SteadyClock::now();
  jm_->shutdown();
  ASSERT_EQ(waiter.wait_for(3s), std::future_status::ready);
  EXPECT_LT(ms_since(t0), 2000);
  EXPECT_SERVICE_ERROR(waiter.get(), ErrorCode::kUnavailable, "shutting down");
}

TEST_F(JobManagerTest, LongHistoryArrivesInOrderOverSeveralCalls) {
  const std::string p = register_pool(2);
  const std::string id = submit();
  take(p);
  std::vector<v1::TrainingEvent> many;
  for (int i = 1; i <= 1200; ++i) many.push_back(step_event(i, 1.0 / i));
  jm_->report(held(*jm_, p), id, many);
  bool ended = false;
  int64_t after = 0;
  int calls = 0;
  for (;;) {
    const auto batch = jm_->wait_events(id, after, SteadyClock::now(), &ended);
    if (batch.empty()) break;
    ++calls;
    for (const auto& e : batch) EXPECT_EQ(e.seq(), ++after);
  }
  EXPECT_EQ(after, 1202);
  EXPECT_GE(calls, 1);
  EXPECT_EQ(jm_->metrics(id).size(), 1200u);
}

// ================================================================ list

class JobManagerListTest : public JobManagerTest {
 protected:
  void SetUp() override {
    JobManagerTest::SetUp();
    for (int i = 0; i < 5; ++i) submit();
  }
};

TEST_F(JobManagerListTest, NewestFirstWithPaging) {
  JobPage page = jm_->list(2, "", v1::JOB_STATE_UNSPECIFIED);
  EXPECT_EQ(ids(page.jobs), (std::vector<std::string>{"job-000005", "job-000004"}));
  ASSERT_FALSE(page.next_page_token.empty());
  page = jm_->list(2, page.next_page_token, v1::JOB_STATE_UNSPECIFIED);
  EXPECT_EQ(ids(page.jobs), (std::vector<std::string>{"job-000003", "job-000002"}));
  ASSERT_FALSE(page.next_page_token.empty());
  page = jm_->list(2, page.next_page_token, v1::JOB_STATE_UNSPECIFIED);
  EXPECT_EQ(ids(page.jobs), (std::vector<std::string>{"job-000001"}));
  EXPECT_TRUE(page.next_page_token.empty());
}

TEST_F(JobManagerListTest, ExactlyFullLastPageHasNoToken) {
  JobPage page = jm_->list(5, "", v1::JOB_STATE_UNSPECIFIED);
  EXPECT_EQ(page.jobs.size(), 5u);
  EXPECT_TRUE(page.next_page_token.empty());
  page = jm_->list(4, "", v1::JOB_STATE_UNSPECIFIED);
  EXPECT_EQ(page.jobs.size(), 4u);
  page = jm_->list(4, page.next_page_token, v1::JOB_STATE_UNSPECIFIED);
  EXPECT_EQ(ids(page.jobs), (std::vector<std::string>{"job-000001"}));
  EXPECT_TRUE(page.next_page_token.empty());
}

TEST_F(JobManagerListTest, DefaultPageSizeListsAll) {
  const JobPage page = jm_->list(0, "", v1::JOB_STATE_UNSPECIFIED);
  EXPECT_EQ(ids(page.jobs),
            (std::vector<std::string>{"job-000005", "job-000004", "job-000003", "job-000002", "job-000001"}));
  EXPECT_TRUE(page.next_page_token.empty());
}

TEST_F(JobManagerListTest, NewJobsDoNotShiftLaterPages) {
  JobPage page = jm_->list(2, "", v1::JOB_STATE_UNSPECIFIED);
  submit();
  page = jm_->list(2, page.next_page_token, v1::JOB_STATE_UNSPECIFIED);
  EXPECT_EQ(ids(page.jobs), (std::vector<std::string>{"job-000003", "job-000002"}));
  EXPECT_EQ(ids(jm_->list(1, "", v1::JOB_STATE_UNSPECIFIED).jobs), (std::vector<std::string>{"job-000006"}));
}

TEST_F(JobManagerListTest, StateFilter) {
  jm_->cancel("job-000002");
  jm_->cancel("job-000004");
  const std::string p = register_pool(1);
  take(p);  // job-000001 runs
  EXPECT_EQ(ids(jm_->list(0, "", v1::CANCELLED).jobs), (std::vector<std::string>{"job-000004", "job-000002"}));
  EXPECT_EQ(ids(jm_->list(0, "", v1::RUNNING).jobs), (std::vector<std::string>{"job-000001"}));
  EXPECT_TRUE(jm_->list(0, "", v1::SUCCEEDED).jobs.empty());
  EXPECT_TRUE(jm_->list(0, "", v1::SUCCEEDED).next_page_token.empty());

  JobPage page = jm_->list(1, "", v1::QUEUED);
  EXPECT_EQ(ids(page.jobs), (std::vector<std::string>{"job-000005"}));
  ASSERT_FALSE(page.next_page_token.empty());
  page = jm_->list(1, page.next_page_token, v1::QUEUED);
  EXPECT_EQ(ids(page.jobs), (std::vector<std::string>{"job-000003"}));
  EXPECT_TRUE(page.next_page_token.empty()) << "no QUEUED job is left after job-000003";
}

TEST_F(JobManagerListTest, InvalidArgumentsAreRejected) {
  for (const char* token : {"abc", "-1", "0", "12x", "3 "})
    EXPECT_SERVICE_ERROR(jm_->list(2, token, v1::JOB_STATE_UNSPECIFIED), ErrorCode::kInvalidArgument, "page_token");
  EXPECT_SERVICE_ERROR(jm_->list(-1, "", v1::JOB_STATE_UNSPECIFIED), ErrorCode::kInvalidArgument, "page_size");
  EXPECT_SERVICE_ERROR(jm_->list(1001, "", v1::JOB_STATE_UNSPECIFIED), ErrorCode::kInvalidArgument, "page_size");
  EXPECT_SERVICE_ERROR(jm_->list(2, "", static_cast<v1::JobState>(42)), ErrorCode::kInvalidArgument, "state");
  EXPECT_EQ(jm_->list(1000, "", v1::JOB_STATE_UNSPECIFIED).jobs.size(), 5u);
}

}  // namespace
}  // namespace prelude::server

namespace prelude::server {
namespace {

// Adds field 1000 (unknown to JobSpec, SweepSpec and TrainingEvent) with `bytes` bytes.
template <typename Message>
void add_unknown_field(Message* m, size_t bytes) {
  m->GetReflection()->MutableUnknownFields(m)->AddLengthDelimited(1000, std::string(bytes, 'x'));
}

template <typename Message>
bool has_unknown_fields(const Message& m) {
  return !m.GetReflection()->GetUnknownFields(m).empty();
}

TEST_F(JobManagerTest, UnknownFieldsAreDroppedAtTheBoundaryNotStoredOrMultiplied) {
  // 1 MiB of an unknown field: dropped, so neither stored nor sent to pools.
  v1::JobSpec spec = small_spec("bloated");
  add_unknown_field(&spec, 1 << 20);
  const v1::Job job = jm_->submit(spec);
  EXPECT_FALSE(has_unknown_fields(job.spec()));
  EXPECT_LT(job.ByteSizeLong(), 4096u);
  EXPECT_FALSE(has_unknown_fields(jm_->get(job.job_id()).spec()));
  // In a sweep's base: no point carries it.
  v1::SweepSpec sweep;
  sweep.set_name("bloated");
  *sweep.mutable_base() = small_spec("base");
  add_unknown_field(sweep.mutable_base(), 1 << 20);
  for (int64_t seed : {1, 2, 3}) sweep.add_seeds(seed);
  const v1::SweepStatus st = jm_->submit_sweep(sweep);
  ASSERT_EQ(st.jobs_size(), 3);
  for (const auto& j : st.jobs()) EXPECT_FALSE(has_unknown_fields(j.spec())) << j.job_id();
  EXPECT_FALSE(has_unknown_fields(st.sweep().spec().base()));
  // In the events a pool reports.
  const std::string pool = register_pool(1);
  const auto taken = jm_->acquire(pool, std::chrono::milliseconds(0));
  ASSERT_TRUE(taken);
  v1::TrainingEvent e = step_event(5, 1.5);
  add_unknown_field(&e, 1 << 20);
  jm_->report(held(*jm_, pool), taken->job_id(), {e});
  for (const auto& stored : jm_->metrics(taken->job_id())) EXPECT_FALSE(has_unknown_fields(stored.training()));
  EXPECT_FALSE(has_unknown_fields(jm_->get(taken->job_id()).progress()));
}

TEST_F(JobManagerTest, ASpecLargerThanAnyValidOneIsRefusedBeforeItIsLookedAt) {
  v1::JobSpec spec = small_spec("huge");
  spec.mutable_dataset()->set_train_images(std::string(300 << 10, 'a'));
  try {
    jm_->submit(spec);
    FAIL() << "accepted a 300 KiB spec";
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(std::string(e.what()), "spec: " + std::to_string(spec.ByteSizeLong()) +
                                         " bytes, more than the 262144 one may have");
  }
  EXPECT_TRUE(jm_->list(10, "", v1::JOB_STATE_UNSPECIFIED).jobs.empty());
}

}  // namespace
}  // namespace prelude::server
