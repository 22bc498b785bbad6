// The Slurm dispatcher over the job manager, with a fake Slurm (a SlurmCli that keeps
// its own little queue): batch scripts and sbatch arguments, pending reasons shown as
// waiting reasons, scancel on cancel, a batch job that ends under a running job
// (requeue, then failure after --max-attempts with Slurm's reason), re-attaching after
// a restart, --slurm-max-jobs, sbatch's refusals. Also resources.ranks: validation,
// which pools take such a job, and one-job pools. The real Slurm is
// tests/e2e/slurm_e2e_test.sh's.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "server/job_manager.h"
#include "server/slurm_dispatcher.h"
#include "server/store.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;
using namespace std::chrono_literals;
namespace v1 = prelude::v1;

// A Slurm of one queue: sbatch queues PENDING (reason Priority), the test moves jobs
// on; squeue lists jobs until they end, scontrol shows them after.
class FakeSlurm : public SlurmCli {
 public:
  struct Job {
    std::string state = "PENDING", reason = "Priority", script, exit_code = "0:0";
  };

  CommandResult run(const std::vector<std::string>& argv) override {
    calls.push_back(argv);
    const std::string& cmd = argv.at(0);
    if (cmd == "sbatch") {
      sbatch_argv = argv;
      if (!refuse.empty()) return {1, "", refuse};
      std::ifstream in(argv.back());
      std::stringstream text;
      text << in.rdbuf();
      const std::string id = std::to_string(next_id++);
      jobs[id].script = text.str();
      return {0, id + "\n", ""};
    }
    if (cmd == "squeue") {
      if (down) return {1, "", "squeue: error: Unable to contact slurm controller (connect failure)"};
      const std::string id = argv.at(3);
      auto it = jobs.find(id);
      if (it == jobs.end() || ended(it->second.state))
        return {1, "", "slurm_load_jobs error: Invalid job id specified\n"};
      return {0, id + "|" + it->second.state + "|" + it->second.reason + "\n", ""};
    }
    if (cmd == "scancel") {
      ++scancels;
      end(argv.at(1), "CANCELLED", "0:15");
      return {0, "", ""};
    }
    if (cmd == "scontrol") {
      auto it = jobs.find(argv.at(3));
      if (it == jobs.end()) return {1, "", "slurm_load_jobs error: Invalid job id specified"};
      return {0,
              "JobId=" + argv.at(3) + " JobName=x\n   UserId=root(0) Priority=1\n   JobState=" + it->second.state +
                  " Reason=" + it->second.reason + " Dependency=(null)\n   Requeue=1 ExitCode=" + it->second.exit_code +
                  "\n",
              ""};
    }
    return {127, "", "unknown command"};
  }

  void end(const std::string& id, const std::string& state, const std::string& code = "0:0",
           const std::string& reason = "None") {
    jobs[id].state = state;
    jobs[id].reason = reason;
    jobs[id].exit_code = code;
  }
  static bool ended(const std::string& s) { return s != "PENDING" && s != "RUNNING"; }
  int count(const std::string& cmd) const {
    int n = 0;
    for (const auto& c : calls) n += c.at(0) == cmd;
    return n;
  }

  std::map<std::string, Job> jobs;
  std::vector<std::vector<std::string>> calls;
  std::vector<std::string> sbatch_argv;
  std::string refuse;  // sbatch's stderr when it refuses
  bool down = false;   // squeue cannot reach slurmctld
  int next_id = 100, scancels = 0;
};

class SlurmDispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<Store>(dir_.file("prelude.db"));
    start();
  }

  ManagerOptions manager_options() const {
    ManagerOptions o;
    o.reaper_thread = false;
    o.max_attempts = 2;
    o.slurm = true;
    o.heartbeat_timeout = 5000ms;
    return o;
  }
  SlurmOptions slurm_options() const {
    SlurmOptions o;
    o.coordinator = "head:50051";
    o.worker_binary = "/opt/prelude/bin/prelude-worker";
    o.token_file = "/etc/prelude/pool token";  // a space: the script must quote it
    o.data_root = "/data";
    o.script_dir = dir_.path().string();
    o.partition = "cpu";
    o.max_jobs = max_jobs_;
    return o;
  }
  // (Re)starts the manager and the dispatcher over the same database, as a restart does.
  void start() {
    dispatcher_.reset();
    jm_.reset();
    jm_ = std::make_unique<JobManager>(*store_, manager_options());
    dispatcher_ = std::make_unique<SlurmDispatcher>(*jm_, slurm_, slurm_options());
  }
  std::string submit(int ranks = 0, int threads = 0, int batch = 64) {
    v1::JobSpec spec = small_spec("slurm", batch);
    if (ranks > 0) spec.mutable_resources()->set_ranks(ranks);
    if (threads > 0) spec.mutable_resources()->set_threads_per_rank(threads);
    return jm_->submit(spec).job_id();
  }
  // A one-job pool, as `prelude-worker serve --job ID` registers it.
  std::string one_job_pool(const std::string& job_id, int ranks = 1) {
    v1::RegisterPoolRequest r = pool_request(ranks);
    r.set_job_id(job_id);
    return jm_->register_pool(r).pool_id();
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  FakeSlurm slurm_;
  int max_jobs_ = 0;
  std::unique_ptr<JobManager> jm_;
  std::unique_ptr<SlurmDispatcher> dispatcher_;
};

TEST_F(SlurmDispatcherTest, SubmitsAQueuedJobAsABatchJobOfItsRanksAndThreads) {
  const std::string id = submit(2, 3);
  dispatcher_->poll_once();
  ASSERT_EQ(slurm_.count("sbatch"), 1);
  EXPECT_EQ(slurm_.sbatch_argv.at(1), "--parsable");
  EXPECT_EQ(slurm_.sbatch_argv.at(2), "--partition=cpu");
  EXPECT_EQ(slurm_.sbatch_argv.back(), dir_.file(id + ".sbatch"));
  const std::string script = slurm_.jobs.at("100").script;
  EXPECT_TRUE(contains(script, "#SBATCH --ntasks=2\n")) << script;
  EXPECT_TRUE(contains(script, "#SBATCH --cpus-per-task=3\n")) << script;
  EXPECT_TRUE(contains(script, "export OMP_NUM_THREADS=3\n")) << script;
  EXPECT_TRUE(contains(script, "exec srun --mpi=pmix '/opt/prelude/bin/prelude-worker' serve --coordinator "
                               "'head:50051' --job " + id + " --threads 3 --token-file '/etc/prelude/pool token' "
                               "--data-root '/data'\n"))
      << script;
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.slurm_job_id(), "100");
  EXPECT_EQ(job.slurm_submissions(), 1);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(dispatcher_->submissions(), 1);
  // Polled again: watched, not submitted twice; Slurm's reason is why it waits.
  slurm_.jobs["100"].reason = "Resources";
  dispatcher_->poll_once();
  EXPECT_EQ(slurm_.count("sbatch"), 1);
  EXPECT_EQ(jm_->get(id).waiting_reason(), "Slurm: Resources (Slurm job 100 is PENDING)");
}

// A TLS coordinator's batch jobs: the workers are told the CA (and, under mutual TLS,
// their certificate and key) with the flags `prelude-worker serve` reads, quoted; with
// the system's roots, --tls alone.
TEST(SlurmScript, TellsTheWorkersTheCoordinatorsTls) {
  v1::Job job;
  job.set_job_id("job-000007");
  SlurmOptions o;
  o.coordinator = "head:50051";
  o.worker_binary = "/opt/prelude-worker";
  EXPECT_FALSE(contains(sbatch_script(job, o), "--tls"));
  o.tls.enabled = true;
  EXPECT_TRUE(contains(sbatch_script(job, o), "--job job-000007 --threads 1 --tls\n")) << sbatch_script(job, o);
  o.tls.ca.path = "/etc/prelude/ca dir/ca.pem";
  o.tls.cert.path = "/etc/prelude/pool.pem";
  o.tls.key.path = "/etc/prelude/pool.key";
  const std::string script = sbatch_script(job, o);
  EXPECT_TRUE(contains(script, " --tls-ca '/etc/prelude/ca dir/ca.pem' --tls-cert '/etc/prelude/pool.pem' "
                               "--tls-key '/etc/prelude/pool.key'\n"))
      << script;
  EXPECT_FALSE(contains(script, " --tls ")) << script;
}

TEST_F(SlurmDispatcherTest, AJobSubmittedToSlurmGoesOnlyToItsBatchJobsPool) {
  const std::string id = submit();
  const std::string other = jm_->register_pool(pool_request(1)).pool_id();  // a hand-started pool
  dispatcher_->poll_once();
  EXPECT_FALSE(jm_->acquire(other, 0ms)) << "its batch job would be left idle";
  const std::string pool = one_job_pool(id);
  auto job = jm_->acquire(pool, 0ms);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->job_id(), id);
  // It succeeds; its worker exits by itself: the batch job is left to end, not cancelled.
  slurm_.jobs["100"].state = "RUNNING";
  jm_->finish(held(*jm_, pool), id, v1::SUCCEEDED, "");
  dispatcher_->poll_once();
  EXPECT_EQ(slurm_.scancels, 0);
  slurm_.end("100", "COMPLETED");
  dispatcher_->poll_once();
  dispatcher_->poll_once();
  EXPECT_EQ(slurm_.scancels, 0);
  EXPECT_EQ(slurm_.count("sbatch"), 1);
  EXPECT_EQ(jm_->get(id).state(), v1::SUCCEEDED);
}

TEST_F(SlurmDispatcherTest, AJobWithoutRanksGetsOneUnderSlurm) {
  const std::string id = submit();
  EXPECT_EQ(jm_->get(id).spec().resources().ranks(), 1);
  EXPECT_EQ(jm_->get(id).spec().resources().threads_per_rank(), 1);
  EXPECT_EQ(jm_->get(id).waiting_reason(), "waiting to be submitted to Slurm");
}

TEST_F(SlurmDispatcherTest, CancellingAPendingJobRunsScancel) {
  const std::string id = submit();
  dispatcher_->poll_once();
  jm_->cancel(id);
  EXPECT_EQ(jm_->get(id).state(), v1::CANCELLED);
  dispatcher_->poll_once();
  EXPECT_EQ(slurm_.scancels, 1);
  EXPECT_EQ(slurm_.jobs.at("100").state, "CANCELLED");
  dispatcher_->poll_once();  // gone from squeue: no longer watched, not cancelled twice
  EXPECT_EQ(slurm_.scancels, 1);
  EXPECT_EQ(slurm_.count("sbatch"), 1);
  EXPECT_EQ(jm_->get(id).slurm_job_id(), "100");  // still shown
}

TEST_F(SlurmDispatcherTest, CancellingARunningJobEndsItsBatchJobAndTheJob) {
  const std::string id = submit();
  dispatcher_->poll_once();
  slurm_.jobs["100"].state = "RUNNING";
  const std::string pool = one_job_pool(id);
  ASSERT_TRUE(jm_->acquire(pool, 0ms));
  jm_->cancel(id);
  dispatcher_->poll_once();  // scancel
  EXPECT_EQ(slurm_.scancels, 1);
  dispatcher_->poll_once();  // its batch job is gone: the pool with it
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::CANCELLED);
  EXPECT_TRUE(contains(job.error(), "Slurm job 100 ended (CANCELLED")) << job.error();
  EXPECT_TRUE(jm_->pools().empty());
}

TEST_F(SlurmDispatcherTest, ABatchJobEndingUnderARunningJobRequeuesItThenFailsItWithSlurmsReason) {
  const std::string id = submit();
  for (int attempt = 1; attempt <= 2; ++attempt) {
    dispatcher_->poll_once();
    const std::string slurm_id = jm_->get(id).slurm_job_id();
    ASSERT_EQ(slurm_id, std::to_string(99 + attempt));
    slurm_.jobs[slurm_id].state = "RUNNING";
    dispatcher_->poll_once();
    EXPECT_TRUE(contains(jm_->get(id).waiting_reason(), "is RUNNING: its worker is starting"))
        << jm_->get(id).waiting_reason();
    const std::string pool = one_job_pool(id);
    ASSERT_TRUE(jm_->acquire(pool, 0ms));
    jm_->report(held(*jm_, pool), id, {step_event(5, 2.0)});
    slurm_.end(slurm_id, attempt == 1 ? "CANCELLED" : "TIMEOUT", "0:15", attempt == 1 ? "None" : "TimeLimit");
    dispatcher_->poll_once();
    const v1::Job job = jm_->get(id);
    EXPECT_TRUE(jm_->pools().empty()) << "the batch job's pool is gone with it";
    if (attempt == 1) {
      EXPECT_EQ(job.state(), v1::QUEUED);
      EXPECT_EQ(job.attempts(), 1);
      // Submitted again in the same round: a new batch job, never the old one's id.
      EXPECT_EQ(job.slurm_job_id(), "101");
      EXPECT_EQ(job.slurm_submissions(), 2);
      EXPECT_EQ(slurm_.count("sbatch"), 2);
    } else {
      EXPECT_EQ(job.state(), v1::FAILED);
      EXPECT_TRUE(contains(job.error(), "Slurm job 101 ended (TIMEOUT, reason TimeLimit, exit code 0:15)"))
          << job.error();
      EXPECT_TRUE(contains(job.error(), "attempt 2 of 2; giving up")) << job.error();
    }
  }
  EXPECT_EQ(slurm_.count("sbatch"), 2);
}

TEST_F(SlurmDispatcherTest, ABatchJobThatEndsBeforeItsWorkerTookTheJobIsSubmittedAgainThenFails) {
  const std::string id = submit();
  dispatcher_->poll_once();
  slurm_.end("100", "FAILED", "1:0", "NonZeroExitCode");
  dispatcher_->poll_once();
  EXPECT_EQ(jm_->get(id).state(), v1::QUEUED);
  EXPECT_EQ(jm_->get(id).slurm_job_id(), "101");
  slurm_.end("101", "NODE_FAIL", "0:0", "NodeDown");
  dispatcher_->poll_once();
  const v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::FAILED);
  EXPECT_TRUE(contains(job.error(), "Slurm job 101 ended (NODE_FAIL, reason NodeDown")) << job.error();
  EXPECT_TRUE(contains(job.error(), "after 2 submissions")) << job.error();
}

TEST_F(SlurmDispatcherTest, ARestartedCoordinatorWatchesItsBatchJobsInsteadOfSubmittingAgain) {
  const std::string queued = submit(), running = submit();
  dispatcher_->poll_once();
  ASSERT_EQ(slurm_.count("sbatch"), 2);
  slurm_.jobs["101"].state = "RUNNING";
  const std::string pool = one_job_pool(running);
  ASSERT_TRUE(jm_->acquire(pool, 0ms));
  start();  // the coordinator restarts over the same database
  dispatcher_->poll_once();
  dispatcher_->poll_once();
  EXPECT_EQ(slurm_.count("sbatch"), 2) << "no second submission";
  EXPECT_EQ(slurm_.scancels, 0);
  EXPECT_EQ(jm_->get(queued).slurm_job_id(), "100");
  // The running job was requeued by the restart but keeps its batch job, whose
  // worker registers again and takes it back.
  v1::Job job = jm_->get(running);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.slurm_job_id(), "101");
  const std::string again = one_job_pool(running);
  ASSERT_TRUE(jm_->acquire(again, 0ms));
  EXPECT_EQ(jm_->get(running).state(), v1::RUNNING);
  EXPECT_EQ(jm_->get(running).attempts(), 2);
}

TEST_F(SlurmDispatcherTest, MaxJobsBoundsTheBatchJobsInFlight) {
  max_jobs_ = 1;
  start();
  const std::string a = submit(), b = submit();
  dispatcher_->poll_once();
  EXPECT_EQ(slurm_.count("sbatch"), 1);
  EXPECT_TRUE(jm_->get(b).slurm_job_id().empty());
  EXPECT_EQ(jm_->get(b).waiting_reason(),
            "waiting to be submitted to Slurm: 1 batch jobs are in flight (--slurm-max-jobs)");
  slurm_.end("100", "COMPLETED");
  dispatcher_->poll_once();  // 100 ended (a's job is requeued: its worker never took it), room for one
  EXPECT_EQ(slurm_.count("sbatch"), 2);
}

TEST_F(SlurmDispatcherTest, SbatchRefusalsForGoodFailTheJobAndForNowAreRetried) {
  const std::string id = submit();
  slurm_.refuse = "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)";
  dispatcher_->poll_once();
  v1::Job job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_TRUE(contains(job.waiting_reason(), "Slurm: cannot submit it yet (sbatch: sbatch: error: Batch job "))
      << job.waiting_reason();
  slurm_.refuse = "sbatch: error: Batch job submission failed: Requested node configuration is not available";
  dispatcher_->poll_once();
  job = jm_->get(id);
  EXPECT_EQ(job.state(), v1::FAILED);
  EXPECT_TRUE(contains(job.error(), "Slurm refused the job: sbatch: sbatch: error: Batch job submission failed: "
                                    "Requested node configuration is not available"))
      << job.error();
}

TEST_F(SlurmDispatcherTest, SlurmNotAnsweringChangesNothing) {
  const std::string id = submit();
  dispatcher_->poll_once();
  slurm_.down = true;
  slurm_.jobs["100"].state = "RUNNING";
  dispatcher_->poll_once();
  EXPECT_EQ(jm_->get(id).state(), v1::QUEUED);
  EXPECT_EQ(jm_->get(id).slurm_job_id(), "100");
  EXPECT_EQ(slurm_.count("sbatch"), 1);
}

TEST_F(SlurmDispatcherTest, TheRealCommandsRunWithoutAShell) {
  ExecSlurmCli cli;
  const CommandResult echo = cli.run({"echo", "a b", "$HOME", ";", "c"});
  EXPECT_EQ(echo.exit_code, 0);
  EXPECT_EQ(echo.out, "a b $HOME ; c\n");
  const CommandResult missing = cli.run({"no-such-slurm-command-here"});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_TRUE(contains(missing.err, "cannot run it")) << missing.err;
  const CommandResult err = cli.run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(err.exit_code, 3);
  EXPECT_EQ(err.out, "out\n");
  EXPECT_EQ(err.err, "err\n");
  ExecSlurmCli slow("", 200ms);
  const CommandResult hung = slow.run({"sleep", "5"});
  EXPECT_EQ(hung.exit_code, -1);
  EXPECT_TRUE(contains(hung.err, "no answer")) << hung.err;
}

// ---- resources.ranks and one-job pools, without Slurm

class ResourcesTest : public ::testing::Test {
 protected:
  ResourcesTest() {
    ManagerOptions o;
    o.reaper_thread = false;
    jm_ = std::make_unique<JobManager>(store_, o);
  }
  Store store_{":memory:"};
  std::unique_ptr<JobManager> jm_;
};

TEST_F(ResourcesTest, RanksMustDivideTheBatch) {
  v1::JobSpec spec = small_spec("r", 64);
  spec.mutable_resources()->set_ranks(3);
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument,
                       "spec.resources.ranks: training.batchSize (64) must divide by the ranks, got 3 ranks");
  spec.mutable_resources()->set_ranks(0);
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.resources.ranks: must be between 1 and");
  spec.mutable_resources()->set_ranks(2);
  spec.mutable_resources()->set_threads_per_rank(0);
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument,
                       "spec.resources.threadsPerRank: must be between 1 and");
}

TEST_F(ResourcesTest, AJobWithRanksGoesOnlyToAPoolOfThatSize) {
  const std::string one = jm_->register_pool(pool_request(1)).pool_id();
  v1::JobSpec spec = small_spec("r", 64);
  spec.mutable_resources()->set_ranks(4);
  const std::string id = jm_->submit(spec).job_id();  // no pool of 4 yet: it waits, not refused
  EXPECT_EQ(jm_->get(id).waiting_reason(), "no pool with 4 ranks (registered pools have 1); it waits for one");
  EXPECT_FALSE(jm_->acquire(one, 0ms));
  const std::string two = jm_->register_pool(pool_request(2)).pool_id();
  EXPECT_FALSE(jm_->acquire(two, 0ms)) << "2 divides the batch, but the job asks for 4";
  const std::string four = jm_->register_pool(pool_request(4)).pool_id();
  auto job = jm_->acquire(four, 0ms);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->job_id(), id);
  // Without resources.ranks any pool whose ranks divide the batch takes it, as before.
  const std::string plain = jm_->submit(small_spec("plain", 64)).job_id();
  EXPECT_FALSE(jm_->get(plain).spec().resources().has_ranks());
  job = jm_->acquire(two, 0ms);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->job_id(), plain);
}

TEST_F(ResourcesTest, AOneJobPoolGetsItsJobOrNothing) {
  const std::string first = jm_->submit(small_spec("first")).job_id();
  const std::string second = jm_->submit(small_spec("second")).job_id();
  v1::RegisterPoolRequest r = pool_request(1);
  r.set_job_id(second);
  const std::string pool = jm_->register_pool(r).pool_id();
  auto job = jm_->acquire(pool, 0ms);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->job_id(), second) << "not the older job ahead of it";
  jm_->finish(held(*jm_, pool), second, v1::SUCCEEDED, "");
  // Its job has ended: asking again is an error the pool exits on, not an endless wait.
  EXPECT_SERVICE_ERROR(jm_->acquire(pool, 0ms), ErrorCode::kFailedPrecondition, "has ended (SUCCEEDED)");
  EXPECT_EQ(jm_->get(first).state(), v1::QUEUED);
  r.set_job_id("job-999999");
  EXPECT_SERVICE_ERROR(jm_->register_pool(r), ErrorCode::kInvalidArgument, "job_id: no job 'job-999999'");
  r.set_job_id(second);
  EXPECT_SERVICE_ERROR(jm_->register_pool(r), ErrorCode::kFailedPrecondition, "has already ended (SUCCEEDED)");
}

}  // namespace
}  // namespace prelude::server
