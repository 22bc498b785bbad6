// The job manager over a store whose writes fail as a full disk fails them (SQLITE_FULL
// or SQLITE_IOERR, through Store::set_write_fault): every refused change leaves memory
// as it leaves the database (nothing stuck RUNNING, no attempt counted twice), the
// manager says it is degraded (UNAVAILABLE with the reason, health NOT_SERVING), and
// once a probe write works it does what waited and serves again.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "artifacts/checkpoint_file.h"
#include "server/artifact_store.h"
#include "server/job_manager.h"
#include "server/store.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;
using namespace std::chrono_literals;
namespace v1 = prelude::v1;

constexpr auto kTimeout = std::chrono::milliseconds(1000);
const char* const kFull = "database or disk is full";

class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }

  // (Re)opens the store on the same file, its writes failing while fault_ is set, and
  // a manager over it.
  void open() {
    jm_.reset();
    store_ = std::make_unique<Store>(dir_.file("prelude.db"));
    store_->set_write_fault([this] {
      ++writes_;
      return fault_.load();
    });
    ManagerOptions o;
    o.reaper_thread = false;
    o.now = clock_.fn();
    o.heartbeat_timeout = kTimeout;
    o.max_attempts = max_attempts_;
    jm_ = std::make_unique<JobManager>(*store_, o);
    jm_->set_health_listener([this](bool serving, const std::string& reason) {
      health_.emplace_back(serving, reason);
    });
  }
  void fill_disk(int code = SQLITE_FULL) { fault_ = code; }
  void free_disk() { fault_ = SQLITE_OK; }

  std::string register_pool(int ranks = 1) { return jm_->register_pool(pool_request(ranks)).pool_id(); }
  std::string submit(const std::string& name = "test") { return jm_->submit(small_spec(name)).job_id(); }
  v1::Job take(const std::string& pool) {
    auto job = jm_->acquire(pool, 0ms);
    EXPECT_TRUE(job.has_value()) << pool << " got no job";
    return job.value_or(v1::Job());
  }
  const PoolInfo* pool_info(const std::string& pool_id) {
    pools_cache_ = jm_->pools();
    for (const auto& p : pools_cache_)
      if (p.pool_id == pool_id) return &p;
    return nullptr;
  }
  // The job as the database has it, read through a second connection.
  v1::Job on_disk(const std::string& id) {
    Store reader(dir_.file("prelude.db"));
    for (auto& j : reader.load_jobs())
      if (j.job.job_id() == id) return j.job;
    ADD_FAILURE() << id << " is not in the database";
    return {};
  }
  // Memory and the database agree on every job: nothing changed in one but not the other.
  void expect_memory_is_disk(const std::string& when) {
    Store reader(dir_.file("prelude.db"));
    const auto stored = reader.load_jobs();
    EXPECT_EQ(stored.size(), jm_->list(1000, "", v1::JOB_STATE_UNSPECIFIED).jobs.size()) << when;
    for (const auto& j : stored) {
      // A queued job's place and reason are worked out when read, never stored.
      EXPECT_TRUE(j.job.queue_position() == 0 && j.job.waiting_reason().empty()) << when << ": " << j.job.job_id();
      v1::Job in_memory = jm_->get(j.job.job_id());
      in_memory.clear_queue_position();
      in_memory.clear_waiting_reason();
      EXPECT_EQ(in_memory.SerializeAsString(), j.job.SerializeAsString())
          << when << ": " << j.job.job_id() << " in memory differs from the database";
    }
  }
  std::string full_reason() const {
    return "the coordinator cannot write its database (" + dir_.file("prelude.db") + "): " + kFull + "; retrying";
  }

  TempDir dir_;
  FakeClock clock_;
  int max_attempts_ = 3;
  std::atomic<int> fault_{SQLITE_OK};
  std::atomic<int> writes_{0};  // writes tried, refused or not
  std::vector<std::pair<bool, std::string>> health_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<JobManager> jm_;
  std::vector<PoolInfo> pools_cache_;
};

TEST_F(DiskFullTest, SubmitsAreRefusedUnavailableWithTheReasonAndHealthFlipsBothWays) {
  ASSERT_EQ(health_.size(), 1u);
  EXPECT_EQ(health_[0], std::make_pair(true, std::string()));
  fill_disk();
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec("a")), ErrorCode::kUnavailable, full_reason());
  EXPECT_EQ(jm_->degraded(), full_reason());
  ASSERT_EQ(health_.size(), 2u);
  EXPECT_EQ(health_[1], std::make_pair(false, full_reason()));

  // Degraded, a submit or a sweep is refused without trying the disk again.
  const int tried = writes_;
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec("b")), ErrorCode::kUnavailable, full_reason());
  v1::SweepSpec sweep;
  sweep.set_name("s");
  *sweep.mutable_base() = small_spec("base");
  sweep.add_seeds(1), sweep.add_seeds(2);
  EXPECT_SERVICE_ERROR(jm_->submit_sweep(sweep), ErrorCode::kUnavailable, kFull);
  EXPECT_EQ(writes_, tried);
  // A bad spec is still told so.
  v1::JobSpec bad = small_spec("bad");
  bad.mutable_training()->set_learning_rate(-1);
  EXPECT_SERVICE_ERROR(jm_->submit(bad), ErrorCode::kInvalidArgument, "spec.training.learningRate");

  // The probe fails while the disk is full: nothing changes.
  jm_->probe_store();
  EXPECT_EQ(jm_->degraded(), full_reason());
  EXPECT_EQ(health_.size(), 2u);

  free_disk();
  jm_->probe_store();
  EXPECT_EQ(jm_->degraded(), "");
  ASSERT_EQ(health_.size(), 3u);
  EXPECT_EQ(health_[2], std::make_pair(true, std::string()));
  // No id was used by the refused submits.
  EXPECT_EQ(submit(), "job-000001");
  EXPECT_EQ(jm_->submit_sweep(sweep).jobs_size(), 2);
  expect_memory_is_disk("after recovery");
}

TEST_F(DiskFullTest, AnIoErrorDegradesTooWithItsOwnReason) {
  const std::string id = submit();
  fill_disk(SQLITE_IOERR);
  EXPECT_SERVICE_ERROR(jm_->cancel(id), ErrorCode::kUnavailable, "(" + dir_.file("prelude.db") + "): disk I/O error");
  EXPECT_EQ(jm_->get(id).state(), v1::QUEUED);
  EXPECT_FALSE(health_.back().first);
  free_disk();
  jm_->probe_store();
  EXPECT_TRUE(health_.back().first);
  EXPECT_EQ(jm_->cancel(id).state(), v1::CANCELLED);
}

TEST_F(DiskFullTest, AFailureThatIsNotTheDisksDoesNotDegrade) {
  const std::string id = submit();
  fill_disk(SQLITE_CONSTRAINT);
  EXPECT_ANY_THROW(jm_->cancel(id));
  EXPECT_EQ(jm_->degraded(), "");
  EXPECT_EQ(health_.size(), 1u);
}

TEST_F(DiskFullTest, AFinishThatCannotBeWrittenLeavesTheJobRunningOnItsPoolUntilItIs) {
  const std::string p = register_pool(), id = submit(), other = submit("other");
  take(p);
  fill_disk();
  EXPECT_SERVICE_ERROR(jm_->finish(held(*jm_, p), id, v1::SUCCEEDED, ""), ErrorCode::kUnavailable, kFull);
  EXPECT_EQ(jm_->get(id).state(), v1::RUNNING);
  EXPECT_EQ(pool_info(p)->job_id, id) << "the pool was freed for other jobs while its job stays RUNNING";
  // Degraded, no pool is handed a job (its start could not be written).
  const std::string q = register_pool();
  EXPECT_FALSE(jm_->acquire(q, 0ms).has_value());
  EXPECT_EQ(jm_->get(other).attempts(), 0);
  expect_memory_is_disk("degraded");

  free_disk();
  jm_->probe_store();
  jm_->finish(held(*jm_, p), id, v1::SUCCEEDED, "");  // the pool's retry
  EXPECT_EQ(jm_->get(id).state(), v1::SUCCEEDED);
  EXPECT_EQ(jm_->get(id).attempts(), 1);
  EXPECT_EQ(pool_info(p)->job_id, "");
  EXPECT_EQ(take(q).job_id(), other);
  expect_memory_is_disk("after recovery");
}

TEST_F(DiskFullTest, APoolWaitingForWorkIsWokenWhenTheDiskRecovers) {
  const std::string p = register_pool(), id = submit();
  fill_disk();
  EXPECT_ANY_THROW(jm_->cancel(id));  // any refused write degrades
  free_disk();
  std::thread prober([this] {
    std::this_thread::sleep_for(100ms);
    jm_->probe_store();
  });
  const auto t0 = SteadyClock::now();
  const auto job = jm_->acquire(p, 3000ms);
  prober.join();
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->job_id(), id);
  EXPECT_LT(ms_since(t0), 2000) << "the waiting pool was not woken by the recovery";
}

TEST_F(DiskFullTest, ALostPoolsJobIsRequeuedOnceTheDiskRecoversNotLeftRunning) {
  const std::string p = register_pool(), id = submit();
  take(p);
  fill_disk();
  clock_.advance(kTimeout + 1ms);
  EXPECT_NO_THROW(jm_->reap_lost_pools());
  EXPECT_EQ(pool_info(p), nullptr) << "a silent pool stays registered";
  EXPECT_EQ(jm_->get(id).state(), v1::RUNNING);  // not written yet: as the database has it
  EXPECT_FALSE(health_.back().first);
  jm_->probe_store();
  jm_->reap_lost_pools();
  EXPECT_EQ(jm_->get(id).state(), v1::RUNNING);
  expect_memory_is_disk("degraded");

  free_disk();
  jm_->probe_store();
  v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::QUEUED) << "the job of a pool lost while the disk was full stays RUNNING";
  EXPECT_EQ(job.attempts(), 1);
  EXPECT_TRUE(health_.back().first);
  const std::string q = register_pool();
  job = take(q);
  EXPECT_EQ(job.job_id(), id);
  EXPECT_EQ(job.attempts(), 2);
  jm_->finish(held(*jm_, q), id, v1::SUCCEEDED, "");
  EXPECT_EQ(jm_->get(id).state(), v1::SUCCEEDED);
  // Its history says why it was requeued, once.
  int requeues = 0;
  bool ended = false;
  for (const auto& e : jm_->wait_events(id, 0, SteadyClock::now(), &ended))
    if (e.state_change().state() == v1::QUEUED && contains(e.state_change().reason(), "stopped responding")) ++requeues;
  EXPECT_EQ(requeues, 1);
  expect_memory_is_disk("after recovery");
}

TEST_F(DiskFullTest, ALostJobOutOfAttemptsFailsOnceAfterRecovery) {
  max_attempts_ = 1;
  open();
  const std::string p = register_pool(), id = submit();
  take(p);
  fill_disk();
  clock_.advance(kTimeout + 1ms);
  jm_->reap_lost_pools();
  free_disk();
  jm_->probe_store();
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::FAILED);
  EXPECT_EQ(job.attempts(), 1);
  EXPECT_TRUE(contains(job.error(), "1 of 1")) << job.error();
}

TEST_F(DiskFullTest, APoolAskingAgainWhileTheDiskIsFullKeepsItsJobAndCountsNoAttempt) {
  const std::string p = register_pool(), id = submit();
  take(p);
  fill_disk();
  EXPECT_SERVICE_ERROR(jm_->acquire(p, 0ms), ErrorCode::kUnavailable, kFull);
  EXPECT_SERVICE_ERROR(jm_->acquire(p, 0ms), ErrorCode::kUnavailable, kFull);
  EXPECT_EQ(jm_->get(id).state(), v1::RUNNING);
  EXPECT_EQ(jm_->get(id).attempts(), 1);
  EXPECT_EQ(pool_info(p)->job_id, id);
  EXPECT_EQ(pool_info(p)->waiting, 0);
  free_disk();
  jm_->probe_store();
  const v1::Job job = take(p);  // its old attempt ends (requeued), and the job starts over
  EXPECT_EQ(job.job_id(), id);
  EXPECT_EQ(job.attempts(), 2);
  expect_memory_is_disk("after recovery");
}

TEST_F(DiskFullTest, ReportsCancelsCheckpointsAndDeletesChangeNothingUntilTheDiskRecovers) {
  const std::string p = register_pool(), id = submit(), queued = submit("queued"), done = submit("done");
  jm_->cancel(done);
  take(p);
  const v1::Job before = jm_->get(id);
  fill_disk();
  EXPECT_SERVICE_ERROR(jm_->report(held(*jm_, p), id, {step_event(1, 2.0)}), ErrorCode::kUnavailable, kFull);
  EXPECT_FALSE(jm_->report(held(*jm_, p), id, {})) << "a heartbeat needs no write";
  EXPECT_SERVICE_ERROR(jm_->cancel(id), ErrorCode::kUnavailable, kFull);
  EXPECT_SERVICE_ERROR(jm_->cancel(queued), ErrorCode::kUnavailable, kFull);
  v1::CheckpointInfo info;
  info.set_step(5);
  EXPECT_SERVICE_ERROR(jm_->add_checkpoint(held(*jm_, p), id, info), ErrorCode::kUnavailable, kFull);
  EXPECT_SERVICE_ERROR(jm_->remove(done), ErrorCode::kUnavailable, kFull);
  EXPECT_EQ(jm_->get(id).SerializeAsString(), before.SerializeAsString());
  EXPECT_EQ(jm_->get(queued).state(), v1::QUEUED);
  EXPECT_EQ(jm_->get(done).state(), v1::CANCELLED);
  bool ended = false;
  EXPECT_EQ(jm_->wait_events(id, 0, SteadyClock::now(), &ended).size(), 2u);
  expect_memory_is_disk("degraded");

  free_disk();
  jm_->probe_store();
  EXPECT_FALSE(jm_->report(held(*jm_, p), id, {step_event(1, 2.0)}));
  EXPECT_EQ(jm_->get(id).progress().step(), 1);
  jm_->add_checkpoint(held(*jm_, p), id, info);
  EXPECT_EQ(jm_->get(id).checkpoints_size(), 1);
  EXPECT_TRUE(jm_->cancel(id).cancel_requested());
  EXPECT_EQ(jm_->cancel(queued).state(), v1::CANCELLED);
  jm_->remove(done);
  EXPECT_SERVICE_ERROR(jm_->get(done), ErrorCode::kNotFound, done);
  expect_memory_is_disk("after recovery");
}

TEST_F(DiskFullTest, ARestartOnAFullDiskServesDegradedAndRequeuesOnceItCan) {
  const std::string p = register_pool(), id = submit(), cancelled = submit("c");
  take(p);
  EXPECT_TRUE(is_pool_id(p, "pool-1.1")) << p;
  fill_disk();
  open();  // must not throw: the coordinator starts, degraded
  EXPECT_EQ(jm_->degraded(), full_reason());
  ASSERT_FALSE(health_.empty());
  EXPECT_FALSE(health_.back().first);
  EXPECT_EQ(jm_->get(id).state(), v1::RUNNING);
  EXPECT_SERVICE_ERROR(jm_->submit(small_spec()), ErrorCode::kUnavailable, kFull);
  const std::string q = register_pool();
  EXPECT_TRUE(is_pool_id(q, "pool-2.1")) << q;
  EXPECT_FALSE(jm_->acquire(q, 0ms).has_value());

  free_disk();
  jm_->probe_store();
  EXPECT_EQ(jm_->degraded(), "");
  EXPECT_TRUE(health_.back().first);
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.attempts(), 1);
  bool ended = false;
  const auto events = jm_->wait_events(id, 2, SteadyClock::now(), &ended);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].state_change().state(), v1::QUEUED);
  EXPECT_TRUE(contains(events[0].state_change().reason(), "restarted")) << events[0].state_change().reason();
  EXPECT_EQ(take(q).attempts(), 2);
  expect_memory_is_disk("after recovery");
  // The boot was counted once the disk recovered: the next start names pools anew.
  open();
  EXPECT_TRUE(is_pool_id(register_pool(), "pool-3.1")) << register_pool();
}

// Writes fail at random (a seeded third of them) while pools take, report, finish and
// go silent: after every step memory is the database, no job is started more than
// max_attempts times, and once the disk recovers no job is left RUNNING without a pool.
TEST_F(DiskFullTest, UnderFlakyWritesAttemptsNeverExceedTheMaximumAndNothingIsStuck) {
  std::mt19937 rng(12);
  store_->set_write_fault([&] {
    ++writes_;
    if (fault_ != SQLITE_OK) return fault_.load();
    return std::uniform_int_distribution<int>(0, 2)(rng) == 0 ? SQLITE_FULL : SQLITE_OK;
  });
  std::vector<std::string> jobs;
  int refused = 0;
  auto attempt = [&](const std::function<void()>& f) {
    try {
      f();
    } catch (const ServiceError& e) {
      if (e.code() != ErrorCode::kUnavailable) throw;
      ++refused;
    }
  };
  std::vector<std::string> pools;
  for (int round = 0; round < 60; ++round) {
    attempt([&] { jobs.push_back(submit("j" + std::to_string(round))); });
    if (pools.size() < 3) pools.push_back(register_pool());
    for (size_t i = 0; i < pools.size(); ++i) {
      const std::string pool = pools[i];
      const PoolInfo* info = pool_info(pool);
      if (!info) {  // reaped: a new one registers
        pools[i] = register_pool();
        continue;
      }
      const std::string job = info->job_id;
      switch (std::uniform_int_distribution<int>(0, 4)(rng)) {
        case 0: attempt([&] { jm_->acquire(pool, 0ms); }); break;
        case 1: if (!job.empty()) attempt([&] { jm_->report(held(*jm_, pool), job, {step_event(round, 1.0)}); }); break;
        case 2: if (!job.empty()) attempt([&] { jm_->finish(held(*jm_, pool), job, v1::SUCCEEDED, ""); }); break;
        case 3: if (!job.empty()) attempt([&] { jm_->cancel(job); }); break;
        default: break;  // silent this round
      }
    }
    clock_.advance(300ms);  // pools silent for 4 rounds are lost
    jm_->probe_store();
    jm_->reap_lost_pools();
    for (const auto& pool : pools)  // the ones that acted this round stay
      if (const PoolInfo* info = pool_info(pool); info && std::uniform_int_distribution<int>(0, 1)(rng))
        attempt([&] { jm_->report(held(*jm_, pool), info->job_id, {}); });
    for (const auto& id : jobs) ASSERT_LE(jm_->get(id).attempts(), max_attempts_) << id << " in round " << round;
    expect_memory_is_disk("round " + std::to_string(round));
    if (::testing::Test::HasFailure()) return;
  }
  EXPECT_GT(refused, 20) << "the fault hardly struck: the test proves little";

  // The disk recovers; every pool goes silent and is lost.
  free_disk();
  store_->set_write_fault(nullptr);
  clock_.advance(10 * kTimeout);
  jm_->probe_store();
  jm_->reap_lost_pools();
  jm_->probe_store();
  EXPECT_EQ(jm_->degraded(), "");
  EXPECT_TRUE(jm_->pools().empty());
  int running = 0, ended = 0;
  for (const auto& id : jobs) {
    const v1::Job job = jm_->get(id);
    EXPECT_LE(job.attempts(), max_attempts_) << id;
    if (job.state() == v1::RUNNING) ++running;
    if (job.state() == v1::SUCCEEDED || job.state() == v1::FAILED || job.state() == v1::CANCELLED) ++ended;
  }
  EXPECT_EQ(running, 0) << "jobs left RUNNING with no pool after the disk recovered";
  EXPECT_GT(ended, 0);
  expect_memory_is_disk("at the end");
}

// The manager's own thread probes every second: with the real clock, a job of a pool
// lost while the disk is full is requeued and health restored within a few seconds of
// the disk's recovery, and the thread survives refused writes.
TEST(DiskFullReaperThreadTest, TheManagersThreadProbesRecoversAndRequeues) {
  TempDir dir;
  Store store(dir.file("prelude.db"));
  std::atomic<int> fault{SQLITE_OK};
  store.set_write_fault([&] { return fault.load(); });
  ManagerOptions o;
  o.heartbeat_timeout = 300ms;
  JobManager jm(store, o);
  std::atomic<int> serving{-1};
  jm.set_health_listener([&](bool s, const std::string&) { serving = s ? 1 : 0; });
  EXPECT_EQ(serving, 1);
  const std::string p = jm.register_pool(pool_request(1)).pool_id();
  const std::string id = jm.submit(small_spec()).job_id();
  ASSERT_TRUE(jm.acquire(p, 0ms).has_value());
  fault = SQLITE_FULL;
  EXPECT_TRUE(wait_for([&] { return jm.pools().empty(); }, 4000ms)) << "the silent pool was not dropped";
  EXPECT_EQ(serving, 0);
  std::this_thread::sleep_for(1200ms);  // a probe or two, refused
  EXPECT_EQ(jm.get(id).state(), v1::RUNNING);
  fault = SQLITE_OK;
  const auto t0 = SteadyClock::now();
  EXPECT_TRUE(wait_for([&] { return jm.get(id).state() == v1::QUEUED; }, 4000ms)) << "not requeued after recovery";
  EXPECT_TRUE(wait_for([&] { return serving == 1; }, 1000ms));
  EXPECT_LT(ms_since(t0), 2500);
}

// ================================================================ a real full disk

// A small tmpfs (needs mount rights: root, not in every container), unmounted at the end.
class SmallDisk {
 public:
  explicit SmallDisk(const std::string& size) : path_(dir_.file("disk")) {
    fs::create_directory(path_);
    mounted_ = std::system(("mount -t tmpfs -o size=" + size + " tmpfs " + path_ + " 2>/dev/null").c_str()) == 0;
  }
  ~SmallDisk() {
    if (mounted_) (void)std::system(("umount -l " + path_).c_str());
  }
  bool mounted() const { return mounted_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes zeros to `name` until the disk is full.
  void fill(const std::string& name) {
    std::ofstream out(file(name), std::ios::binary);
    const std::string block(64 << 10, '\0');
    while (out.write(block.data(), static_cast<std::streamsize>(block.size())) && out.flush()) {
    }
    // The last bytes: one at a time, so that no block is left half free.
    while (out.clear(), out.put('\0') && out.flush()) {
    }
  }

 private:
  TempDir dir_;
  std::string path_;
  bool mounted_ = false;
};

TEST(RealFullDiskTest, SQLiteRefusesWithStorageErrorAndTheManagerRecoversOnceSpaceReturns) {
  SmallDisk disk("2m");
  if (!disk.mounted()) GTEST_SKIP() << "skipped, because this machine does not allow mounting a small tmpfs";
  Store store(disk.file("prelude.db"));
  ManagerOptions o;
  o.reaper_thread = false;
  JobManager jm(store, o);
  const std::string p = jm.register_pool(pool_request(1)).pool_id();
  const std::string id = jm.submit(small_spec()).job_id();
  ASSERT_TRUE(jm.acquire(p, 0ms).has_value());

  disk.fill("filler");
  // Reports go on until the database needs a page the disk does not have.
  std::string error;
  for (int step = 1; step <= 2000 && error.empty(); ++step) {
    try {
      jm.report(held(jm, p), id, {step_event(step, 1.0)});
    } catch (const ServiceError& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
      error = e.what();
    }
  }
  ASSERT_FALSE(error.empty()) << "2000 reports fitted on a full disk";
  EXPECT_EQ(error, "the coordinator cannot write its database (" + disk.file("prelude.db") +
                       "): database or disk is full; retrying");
  EXPECT_EQ(jm.degraded(), error);
  const int64_t step_before = jm.get(id).progress().step();
  EXPECT_SERVICE_ERROR(jm.finish(held(jm, p), id, v1::SUCCEEDED, ""), ErrorCode::kUnavailable, "disk is full");
  jm.probe_store();
  EXPECT_EQ(jm.degraded(), error);

  fs::remove(disk.file("filler"));
  jm.probe_store();
  EXPECT_EQ(jm.degraded(), "");
  jm.report(held(jm, p), id, {step_event(static_cast<int>(step_before) + 1, 1.0)});
  jm.finish(held(jm, p), id, v1::SUCCEEDED, "");
  EXPECT_EQ(jm.get(id).state(), v1::SUCCEEDED);
  EXPECT_EQ(jm.get(id).attempts(), 1);
  // What memory says is what the database says.
  Store reader(disk.file("prelude.db"));
  const auto stored = reader.load_jobs();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].job.SerializeAsString(), jm.get(id).SerializeAsString());
  EXPECT_EQ(stored[0].job.progress().step(), step_before + 1);
}

TEST(RealFullDiskTest, ACheckpointThatDoesNotFitIsRefusedUnavailableAndLeavesNothing) {
  SmallDisk disk("256k");
  if (!disk.mounted()) GTEST_SKIP() << "skipped, because this machine does not allow mounting a small tmpfs";
  ArtifactStore artifacts(disk.file("models"));
  const std::string bytes = encode_checkpoint(tiny_checkpoint(5, 40000));  // 320 KB: more than the disk
  v1::CheckpointInfo info;
  info.set_step(5), info.set_bytes(static_cast<int64_t>(bytes.size())), info.set_sha256(sha256_hex(bytes));
  EXPECT_SERVICE_ERROR(artifacts.put("job-000001", info, bytes), ErrorCode::kUnavailable,
                       "the coordinator cannot keep the checkpoint: " + disk.file("models") +
                           "/job-000001/step-5.ckpt: cannot write: No space left on device");
  EXPECT_TRUE(fs::is_empty(disk.file("models") + "/job-000001")) << "a partial file was left";
}

}  // namespace
}  // namespace prelude::server
