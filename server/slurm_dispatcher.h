// `prelude-coordinator --slurm`: queued jobs are dispatched to Slurm as batch jobs.
//
// Each queued job becomes one sbatch script of resources.ranks tasks, each with
// resources.threadsPerRank CPUs, whose tasks start with `srun --mpi=pmix` and serve
// exactly that job (`prelude-worker serve --job ID`). Slurm decides where and when;
// the coordinator keeps its API, store, events and checkpoints. Every poll round
// (a second by default) the dispatcher
//   - asks squeue about each Slurm job it watches: a PENDING one's reason becomes the
//     job's waiting reason ("Slurm: Resources (Slurm job 12 is PENDING)");
//   - runs scancel on a Slurm job whose Prelude job was cancelled (or ended, or moved
//     on to another batch job);
//   - tells the manager of a Slurm job that ended without its Prelude job ending
//     (an outside scancel, a node failure, a time limit: Slurm's words, from
//     `scontrol show job`), which requeues the job (it resumes from its latest
//     checkpoint) or fails it after --max-attempts;
//   - submits queued jobs that have no Slurm job yet (at most max_jobs in flight).
// Slurm job ids are stored with the jobs: a restarted coordinator watches the ones it
// had submitted instead of submitting again. Accounting may be off (no sacct): the
// state comes from squeue and, for an ended job, scontrol.
//
// No gRPC here: the dispatcher drives JobManager's Slurm calls and runs the Slurm
// commands through SlurmCli, which tests replace with a fake.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/tls.h"
#include "prelude/v1/service.pb.h"

namespace prelude::server {

class JobManager;

// What a command said.
struct CommandResult {
  int exit_code = 0;  // -1: it could not be started, or timed out (err says which)
  std::string out, err;
};

// Runs Slurm's commands: argv[0] is the command (sbatch, squeue, scancel, scontrol).
class SlurmCli {
 public:
  virtual ~SlurmCli() = default;
  virtual CommandResult run(const std::vector<std::string>& argv) = 0;
};

// The real one: fork and exec with the argument vector (no shell), stdin from
// /dev/null, stdout and stderr read in full; a command still running after `timeout`
// is killed. `bin_dir`, when set, is where the commands are (else $PATH).
class ExecSlurmCli : public SlurmCli {
 public:
  explicit ExecSlurmCli(std::string bin_dir = "", std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : bin_dir_(std::move(bin_dir)), timeout_(timeout) {}
  CommandResult run(const std::vector<std::string>& argv) override;

 private:
  std::string bin_dir_;
  std::chrono::milliseconds timeout_;
};

struct SlurmOptions {
  std::string partition, account;    // empty: Slurm's default
  int max_jobs = 0;                  // Slurm jobs in flight at once; 0: no limit
  std::string coordinator;           // the address the workers dial (host:port)
  std::string worker_binary;         // prelude-worker, as the nodes see it
  std::string token_file;            // the workers' token file (empty: none), as the nodes see it
  std::string data_root;             // passed to the workers (empty: their default)
  ClientTls tls;                      // how the workers dial a TLS coordinator (files as the nodes see them)
  std::string script_dir;            // where the sbatch scripts and the jobs' output go
  std::string time_limit;            // sbatch --time (empty: the partition's)
  double stall_timeout_seconds = 0;  // > 0: passed as serve --stall-timeout
  std::chrono::milliseconds poll_interval{1000};
  std::function<void(const std::string&)> log;
};

// The batch script of a job (its resources filled in by the manager).
std::string sbatch_script(const prelude::v1::Job& job, const SlurmOptions& options);

// `text` in single quotes for a POSIX shell.
std::string shell_quoted(const std::string& text);

class SlurmDispatcher {
 public:
  // Watches the Slurm jobs the store knows of (re-attaching after a restart).
  SlurmDispatcher(JobManager& jobs, SlurmCli& cli, SlurmOptions options);
  ~SlurmDispatcher();  // stops the thread

  // Polls every poll_interval on a thread of its own until destroyed.
  void start();
  // Polls now (the thread's next round comes sooner): after a submit or a cancel.
  void wake();
  // One round, on the caller's thread (tests drive it).
  void poll_once();

  // sbatch calls that gave a job id, since this dispatcher started.
  int submissions() const { return submissions_; }

 private:
  // One watched Slurm job: its Prelude job, and whether scancel was run on it.
  struct Watched {
    std::string job_id;
    bool cancelled = false;
    // When its job was first seen ended (SUCCEEDED or FAILED) while the batch job still
    // ran: its worker exits by itself once it has reported the end; scancel only if it
    // has not after a grace period.
    std::chrono::steady_clock::time_point ended_at{};
  };
  void watch_all();
  void submit_queued();
  bool submit(const prelude::v1::Job& job);
  // Slurm's account of an ended job: "CANCELLED, reason None", from scontrol.
  std::string end_reason(const std::string& slurm_id);
  void scancel(const std::string& slurm_id);
  void log(const std::string& line) const;

  JobManager& jobs_;
  SlurmCli& cli_;
  const SlurmOptions options_;
  std::map<std::string, Watched> watched_;  // by Slurm job id
  std::atomic<int> submissions_{0};
  std::mutex mu_;  // for the thread's wake-ups
  std::condition_variable cv_;
  bool stop_ = false, woken_ = false;
  std::thread thread_;
};

}  // namespace prelude::server
