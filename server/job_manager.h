// The coordinator's core: jobs, their state machine, the FIFO queue over worker
// pools, heartbeats and histories. It knows nothing of gRPC: the services in
// job_service.cc and worker_service.cc are thin adapters over it, and tests drive
// it directly. Errors are ServiceErrors (common/status.h).
//
// Job states: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED, and
// RUNNING -> QUEUED when the pool running it is lost (or the coordinator restarted)
// and the job has attempts left; out of attempts it FAILS with the reason. Every
// change is a StateChange event in the job's history, next to its training events,
// and is written to the store before anyone is told.
//
// A write the disk refuses (full, I/O error) changes nothing in memory either, and
// degrades the manager: until a probe write works again (every second, on the
// manager's thread), submits are refused UNAVAILABLE with the reason, pools are
// handed no jobs, health says NOT_SERVING, and requeues that could not be written
// wait; then they are done and health says SERVING again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "prelude/v1/worker.pb.h"
#include "server/caller.h"
#include "server/store.h"

namespace prelude::server {

using SteadyClock = std::chrono::steady_clock;

struct ManagerOptions {
  // Where data sets live, for checking a spec's data files at submit.
  std::string data_root = "/usr/share/datasets";
  // Whether data under data_root counts as held at submit: it is what the coordinator's
  // own pool (--spawn-workers) or Slurm's nodes read. Otherwise only what registered
  // pools declare counts (main turns it off unless it spawns a pool or uses Slurm).
  bool local_data = true;
  // How many times a job may be started before losing its pool fails it (attempts a
  // clean coordinator restart cut short are not counted).
  int max_attempts = 3;
  // A pool silent for longer than this is dropped and its job requeued.
  std::chrono::milliseconds heartbeat_timeout{15000};
  // How often pools are asked to report.
  std::chrono::milliseconds heartbeat_interval{2000};
  // The longest an AcquireJob long poll may wait.
  std::chrono::milliseconds max_acquire_wait{10000};
  // Pool sizes (MPI ranks) known to be coming, e.g. the coordinator's own spawned
  // pool: with these or registered pools, a batch no pool can divide is refused at
  // submit.
  std::vector<int> expected_pool_ranks;
  // The clock for heartbeats (tests pass a fake one).
  std::function<SteadyClock::time_point()> now = [] { return SteadyClock::now(); };
  // Run reap_lost_pools() every second on a thread of the manager (tests that
  // drive the clock themselves turn it off and call it).
  bool reaper_thread = true;
  // The largest sweep accepted, in jobs.
  int max_sweep_points = 1000;
  // The most jobs a `user` may have QUEUED at once (sweeps included); 0: no limit.
  // Admins are not limited.
  int max_queued_per_user = 0;
  // A cancelled job whose pool has not confirmed the stop this long after the cancel
  // ends CANCELLED anyway and its pool is dropped: a cancel wins even over a hung
  // pool. (The pool's own stall watchdog normally ends a hung pool sooner.)
  std::chrono::milliseconds cancel_grace{315000};
  // Checkpoints kept per job besides its final model: the newest ones.
  int keep_checkpoints = 2;
  // Lines of worker output kept per attempt of a job: the newest ones.
  int64_t max_log_lines = 10000;
  // Told of every state change ("job-000003 QUEUED: submitted"), for the log.
  std::function<void(const std::string&)> log;
  // For tests: told each time a waiter is woken before its deadline, with what it
  // waits for: the job id (wait_events), the sweep id (wait_sweep) or the pool id
  // (acquire). Called with the manager's lock held.
  std::function<void(const std::string&)> on_wakeup;
  // Told of each job once it reaches a final state (SUCCEEDED, FAILED, CANCELLED), after
  // the change is stored; for the metrics. Called with the manager's lock held: it must
  // not call the manager.
  std::function<void(const prelude::v1::Job&)> on_final;
  // Jobs are dispatched through Slurm (server/slurm_dispatcher.h): a job without
  // resources.ranks gets 1, the batch is not checked against registered pools, and a
  // queued job's waiting reason is Slurm's.
  bool slurm = false;
};

// The numbers the metrics read at each scrape (stats()).
struct ManagerStats {
  std::map<prelude::v1::JobState, int64_t> jobs;  // by state: every state, 0 included
  int64_t queue_depth = 0;                         // QUEUED jobs
  int pools_idle = 0, pools_busy = 0;              // registered pools without / with a job
  // RUNNING jobs with a step event: job id -> that event's images per second.
  std::vector<std::pair<std::string, double>> images_per_second;
  int64_t checkpoint_bytes = 0;  // of every checkpoint kept, final models included
};

struct JobPage {
  std::vector<prelude::v1::Job> jobs;
  std::string next_page_token;
};

// One page of a job's training events (GetMetrics).
struct MetricsPage {
  prelude::v1::Job job;
  std::vector<prelude::v1::JobEvent> events;
  std::string next_page_token;  // empty on the last page
  int attempt = 0;              // whose events: 0 for all attempts (or none yet)
};

// Lines of a job's worker output (StreamLogs).
struct LogPage {
  std::vector<prelude::v1::LogLine> lines;
  int attempt = 0;      // whose lines (0: the job has not started)
  int latest_attempt = 0;
  int64_t dropped = 0;  // lines of the attempt no longer kept (given when after_seq is 0)
  bool ended = false;   // the attempt is over and no line is left after these
};

struct PoolInfo {
  std::string pool_id, host, job_id;
  std::string owner;  // the name of the token that registered it: only it may act as the pool
  std::string lease;  // the secret of its current job's attempt (empty without a job)
  int ranks = 0, threads_per_rank = 0;
  // A one-job pool (RegisterPoolRequest.job_id): it is given this job or nothing.
  std::string only_job;
  SteadyClock::time_point last_seen;
  int waiting = 0;  // AcquireJob calls in progress (a waiting pool is alive)
  // What it declared at registration (RegisterPoolRequest.capabilities). A pool that
  // declared nothing (an older worker) is matched as before: any data, any precision.
  bool declared = false;
  std::vector<std::string> data_sets;            // names, sorted
  std::map<std::string, prelude::v1::DataFile> files;  // by path relative to its data root
  std::string isa;
  bool bf16 = false;
};

// A worker pool's call: its id, the lease of the job it holds (for calls about that
// job) and who calls (the pool's id is bound to the token that registered it).
struct PoolCall {
  std::string pool_id;
  std::string lease;
  Caller who;
};

class JobManager {
 public:
  // Loads every job from the store. Jobs that were RUNNING when the coordinator
  // stopped are requeued with that reason: after a clean stop (the last manager was
  // destroyed; it marks the store) without counting the attempt cut short, after a
  // crash or kill as a lost pool is (failed, out of attempts).
  JobManager(Store& store, ManagerOptions options);
  ~JobManager();

  // ---- clients
  // Defaults and validates the spec (INVALID_ARGUMENT naming the field), checks its
  // data files under the data root and that some pool can divide its batch, then
  // queues it.
  // The job is the caller's (Job.owner). A `user` at max_queued_per_user is refused
  // RESOURCE_EXHAUSTED.
  //
  // Every call about a job or sweep takes the caller: a `user` sees only its own,
  // and another user's id is NOT_FOUND exactly as an unknown one is.
  prelude::v1::Job submit(prelude::v1::JobSpec spec, const Caller& who = Caller{});
  prelude::v1::Job get(const std::string& job_id, const Caller& who = Caller{}) const;
  // Newest first; state JOB_STATE_UNSPECIFIED lists all.
  // A non-empty sweep_id lists only that sweep's jobs.
  JobPage list(int page_size, const std::string& page_token, prelude::v1::JobState state,
               const std::string& sweep_id = "", const Caller& who = Caller{}) const;
  // QUEUED: cancelled at once. RUNNING: its pool is told to stop at the next step
  // (cancel_requested until it confirms). CANCELLED: returned as is. Any other
  // final state: FAILED_PRECONDITION.
  prelude::v1::Job cancel(const std::string& job_id, const Caller& who = Caller{});
  // Expands the sweep (INVALID_ARGUMENT naming the axis, value or grid point; every
  // point checked as submit checks a job) and queues its jobs in grid order.
  prelude::v1::SweepStatus submit_sweep(prelude::v1::SweepSpec spec, const Caller& who = Caller{});
  prelude::v1::SweepStatus get_sweep(const std::string& sweep_id, const Caller& who = Caller{}) const;
  // Cancels (as cancel does) every job of the sweep that has not ended.
  prelude::v1::SweepStatus cancel_sweep(const std::string& sweep_id, const Caller& who = Caller{});
  // The sweep's status once its version (a count that grows with every event of
  // its jobs and every cancel request) exceeds `*version`, which is then updated;
  // waits until it does, `deadline` passes (nullopt) or the manager shuts down
  // (UNAVAILABLE). Start from *version = -1 to get the current status at once.
  std::optional<prelude::v1::SweepStatus> wait_sweep(const std::string& sweep_id, int64_t* version,
                                                     SteadyClock::time_point deadline, const Caller& who = Caller{});
  // Every training event of the job, of every attempt.
  std::vector<prelude::v1::JobEvent> metrics(const std::string& job_id, const Caller& who = Caller{}) const;
  // A page of the job's training events: of `attempt` (0: the latest one) or of
  // all of them. page_size 0 is the default (5000), at most 20000; a page also ends
  // once it holds 1 MiB. The token carries the attempt of the first page.
  // INVALID_ARGUMENT naming a bad page_size, attempt or page_token.
  MetricsPage metrics_page(const std::string& job_id, int attempt, bool all_attempts, int page_size,
                           const std::string& page_token, const Caller& who = Caller{}) const;

  // The job's worker output: lines of `attempt` (0: the latest) with seq > after_seq.
  // With none yet and the attempt not over, waits for some until `deadline` (a
  // default one: does not wait). INVALID_ARGUMENT for a negative attempt or after_seq,
  // NOT_FOUND for an attempt the job has not had.
  LogPage logs(const std::string& job_id, int attempt, int64_t after_seq, SteadyClock::time_point deadline = {},
               const Caller& who = Caller{});

  // Events with seq > after_seq; when there are none yet, waits until there are,
  // the job has ended, `deadline` passes or the manager shuts down. `ended` is set
  // when the job is final and nothing after after_seq remains: the watch is over.
  std::vector<prelude::v1::JobEvent> wait_events(const std::string& job_id, int64_t after_seq,
                                                 SteadyClock::time_point deadline, bool* ended,
                                                 const Caller& who = Caller{});

  // ---- worker pools
  // A new pool, bound to `who`: its id ("pool-<boot>.<n>-<16 random hex digits>") is
  // unguessable, and called by anyone else it is NOT_FOUND as an unknown one is.
  prelude::v1::RegisterPoolResponse register_pool(const prelude::v1::RegisterPoolRequest& request,
                                                  const Caller& who = Caller{});
  // The oldest queued job the pool can run (its batch divisible by the pool's
  // ranks), now RUNNING on it; waits up to `wait` (capped) for one. nullopt: none.
  // `caller_gone`, polled while waiting: the pool's call was cancelled (deadline,
  // death); it is then given nothing. `*lease` (when given) is set to the attempt's
  // lease, a fresh 128-bit secret every later call about the job must carry.
  std::optional<prelude::v1::Job> acquire(const std::string& pool_id, std::chrono::milliseconds wait,
                                          const std::function<bool()>& caller_gone = nullptr,
                                          const Caller& who = Caller{}, std::string* lease = nullptr);
  // The calls about the pool's job below refuse a job the pool does not hold, or a
  // lease that is not the one its attempt was given (a stale attempt, a forgery),
  // with FAILED_PRECONDITION, and change nothing.
  //
  // Heartbeat, with new training events of the pool's job. Returns true when the
  // pool must stop that job (cancelled, or no longer its job). An empty job_id is a
  // bare heartbeat (no lease needed).
  // Lines of the job's worker output come with it (`log`): numbered, filed under the
  // current attempt and kept (its newest max_log_lines).
  bool report(const PoolCall& pool, const std::string& job_id, const std::vector<prelude::v1::TrainingEvent>& events,
              const std::vector<prelude::v1::LogLine>& log = {});
  // The pool's job ended: SUCCEEDED, FAILED (with error) or CANCELLED.
  void finish(const PoolCall& pool, const std::string& job_id, prelude::v1::JobState state, const std::string& error);

  // The pool's stall watchdog fired: its job cannot go on there (a rank hung) and
  // the pool is going down. The pool is dropped and the job requeued (it resumes from
  // its latest checkpoint), failed when out of attempts, or CANCELLED when a cancel
  // was waiting. FAILED_PRECONDITION when the pool does not hold the job.
  void pool_hung(const PoolCall& pool, const std::string& job_id, const std::string& reason);

  // Drops pools silent for longer than the heartbeat timeout; their jobs are
  // requeued or failed. Ends cancelled jobs whose pools did not stop within
  // cancel_grace. Called every second by the manager's own thread.
  void reap_lost_pools();

  // Checkpoints (their files are the ArtifactStore's; the manager keeps the list in
  // each Job, so it is stored with the job).
  // Throws unless `pool_id` holds `job_id` now (NOT_FOUND for an unknown pool or job,
  // FAILED_PRECONDITION for a job it does not hold): uploads and fetches of a stale
  // or foreign attempt are refused.
  void check_holds(const PoolCall& pool, const std::string& job_id) const;
  // Lists a checkpoint whose file is in place (replacing one of the same step, or the
  // final one); keeps the newest keep_checkpoints plus the final model. Returns the
  // checkpoints no longer kept, whose files the caller removes. A failed write
  // changes nothing.
  std::vector<prelude::v1::CheckpointInfo> add_checkpoint(const PoolCall& pool, const std::string& job_id,
                                                          const prelude::v1::CheckpointInfo& info);
  // A kept checkpoint: "final", "latest", "" (final if there is one, else latest)
  // or a step number. NOT_FOUND names what the job keeps.
  prelude::v1::CheckpointInfo checkpoint(const std::string& job_id, const std::string& which,
                                         const Caller& who = Caller{}) const;
  // Removes an ended job, its record and events (FAILED_PRECONDITION for one that
  // has not ended). Returns it, for the caller to remove its files.
  prelude::v1::Job remove(const std::string& job_id, const Caller& who = Caller{});
  std::vector<PoolInfo> pools() const;
  // Counts for the metrics, all at one instant (the lock taken once).
  ManagerStats stats() const;

  // ---- Slurm (server/slurm_dispatcher.h drives these; ids are Slurm's job ids)
  // QUEUED jobs not submitted to Slurm yet, oldest first, at most `limit`.
  std::vector<prelude::v1::Job> slurm_unsubmitted(size_t limit) const;
  // Jobs that have not ended and have a Slurm job: the ones to watch (after a
  // restart too: the ids are stored with the jobs).
  std::vector<prelude::v1::Job> slurm_attached() const;
  // Records that `slurm_id` was submitted for the job (stored). False when the job is
  // no longer QUEUED without a Slurm job (cancelled meanwhile): the caller scancels it.
  bool set_slurm_job(const std::string& job_id, const std::string& slurm_id);
  // What Slurm says of the job's batch job ("Slurm: Resources (Slurm job 12 is
  // PENDING)"): its waiting reason while QUEUED. Not stored.
  void set_slurm_status(const std::string& job_id, const std::string& slurm_id, const std::string& status);
  // The job's Slurm job `slurm_id` ended (`reason`: how, in Slurm's words) and the job
  // has not: a RUNNING job loses its pool (requeued or failed, as a lost pool is); a
  // QUEUED one whose batch job never took it is submitted again, or fails after
  // max_attempts submissions. A cancelled job ends CANCELLED. Nothing when the job has
  // ended or has another Slurm job by now.
  void slurm_job_ended(const std::string& job_id, const std::string& slurm_id, const std::string& reason);
  // sbatch refused the job: for good (`permanent`: the job FAILS with the reason) or
  // for now (the reason is shown while it waits; the dispatcher tries again).
  void slurm_submit_failed(const std::string& job_id, const std::string& reason, bool permanent);

  // ---- the database
  // Empty while the store takes writes; else why not: "the coordinator cannot write
  // its database (jobs.db): database or disk is full; retrying".
  std::string degraded() const;
  // Told whether the coordinator serves (false while degraded), with the reason: at
  // once, then at every change, in order (for the gRPC health service). Not after
  // shutdown().
  void set_health_listener(std::function<void(bool serving, const std::string& reason)> listener);
  // While degraded, tries a tiny write and, once one works, leaves that state; then
  // does what waited for a write (requeues of jobs whose pool is gone). Called every
  // second by the manager's own thread.
  void probe_store();

  // Wakes every waiter and refuses further waits (UNAVAILABLE).
  void shutdown();

 private:
  struct Record {
    int64_t number = 0;
    prelude::v1::Job job;
    int64_t last_seq = 0;
    int64_t log_seq = -1;  // the last log line's seq; -1: not yet read from the store
  };

  Record& find(const std::string& job_id);
  const Record& find(const std::string& job_id) const;
  // The job or sweep, if `who` may see it; else NOT_FOUND as for an unknown id.
  Record& find(const std::string& job_id, const Caller& who);
  const Record& find(const std::string& job_id, const Caller& who) const;
  const prelude::v1::Sweep& find_sweep(const std::string& sweep_id, const Caller& who) const;
  // The pool, if `who` registered it; else NOT_FOUND as for an unknown id.
  PoolInfo& find_pool(const std::string& pool_id, const Caller& who);
  // The pool, holding `job_id` under `lease` (FAILED_PRECONDITION otherwise).
  PoolInfo& find_holder(const PoolCall& call, const std::string& job_id);
  // RESOURCE_EXHAUSTED when `who` is a user with max_queued_per_user jobs queued
  // (counting `adding` more).
  void check_queue_limit(const Caller& who, size_t adding) const;
  void check_submittable(prelude::v1::JobSpec* spec, const Caller& who) const;
  // model.initFrom: the job (one `who` may see) and its checkpoint exist and the model
  // is the same; pins the checkpoint ("final" or its step).
  void check_init_from(prelude::v1::JobSpec* spec, const Caller& who) const;
  static prelude::v1::CheckpointInfo find_checkpoint(const prelude::v1::Job& job, const std::string& which);
  Record& add_job(prelude::v1::JobSpec spec, const std::string& owner);
  // A new QUEUED job numbered `number` and its "submitted" event, not yet stored;
  // insert() takes a stored one into memory (the id map, the queue).
  Record new_queued(int64_t number, prelude::v1::JobSpec spec, const std::string& owner, const std::string& sweep_id,
                    const std::string& point, std::vector<prelude::v1::JobEvent>* events);
  Record& insert(Record r);
  void cancel_locked(Record& r);
  prelude::v1::SweepStatus sweep_status(const std::string& sweep_id) const;
  int64_t sweep_version(const prelude::v1::Sweep& sweep) const;
  // Why a pool cannot run a job (kFits: it can): another pool's job (a one-job pool,
  // Slurm's), its ranks, its data (the data set missing, or other files than those of
  // the job's first attempt), its CPU (BF16).
  enum class Misfit { kFits, kNotItsJob, kRanks, kNoData, kOtherFiles, kNoBf16 };
  Misfit misfit(const PoolInfo& pool, const Record& r) const;
  bool pool_can_run(const PoolInfo& pool, const Record& r) const { return misfit(pool, r) == Misfit::kFits; }
  // The spec's data set is held by a declaring pool or (local_data) under data_root; or
  // no pool has declared anything yet (the job waits for one). A UserError naming the
  // field and listing the data sets available otherwise.
  void check_data(const prelude::v1::JobSpec& spec) const;
  // Why a job whose data is the reason it waits waits: no pool with its data set, or
  // none with the files its first attempt trained on.
  std::string data_waiting_reason(const Record& r, bool other_files) const;
  // A copy of the job as clients see it: a QUEUED one with its place in the queue
  // and why it waits.
  prelude::v1::Job shown(const Record& r) const;
  std::string waiting_reason(const Record& r, int64_t ahead) const;
  // Changes the job's state (and whatever `change` sets with it), records the
  // StateChange event, saves and notifies; all on a copy committed as one.
  void transition(Record& r, prelude::v1::JobState state, const std::string& reason,
                  const std::function<void(prelude::v1::Job&)>& change = nullptr);
  // The job's pool was lost (or the coordinator restarted): requeue or fail it.
  // `uncounted`: the attempt was cut short by a clean coordinator restart, through
  // no fault of the job; it does not count against max_attempts.
  // Detaching it from its pool is the caller's part.
  void lose_job(Record& r, const std::string& reason, bool uncounted = false);
  prelude::v1::JobEvent new_event(Record& r);
  // Numbers, bounds and stores lines of r's current attempt, and wakes their readers.
  void append_logs(Record& r, const std::vector<prelude::v1::LogLine>& lines);
  // Writes `next` (the record's new version) and its events to the store, and
  // only then replaces `r` with it, updates the queue and wakes waiters: a failed
  // write changes nothing.
  void commit(Record& r, Record next, const std::vector<prelude::v1::JobEvent>& events);
  // Runs a store write. A fault of the disk (StorageError) degrades the manager and
  // is thrown as UNAVAILABLE with the reason; other errors pass unchanged.
  void write(const std::function<void()>& body);
  void degrade(const StorageError& e);
  // lose_job(), or, when its write fails, keeps the job in lost_ to retry.
  void lose_or_retry(Record& r, const std::string& reason, bool uncounted = false);
  // The boot count and the jobs in lost_; stops at the first write the disk refuses.
  void retry_pending();
  void reaper_loop();
  // Part of reap_lost_pools: cancels that waited past cancel_grace win.
  void expire_cancels();

  // Waiters on one job or one sweep, by its id: woken by its changes only (every
  // event waking every watcher cost 300 idle watchers two thirds of the reports).
  struct Waiters {
    std::condition_variable cv;
    int count = 0;
  };
  // Waits on the waiters of `key` until a change of it, shutdown or `deadline`;
  // false at the deadline.
  bool wait_for(std::unique_lock<std::mutex>& lock, const std::string& key, SteadyClock::time_point deadline);
  // Wakes the waiters of `key` (wait_for), if any.
  void notify(const std::string& key);
  // Wakes the waiters of the job (its events and its log lines, and its sweep).
  void notify_job(const prelude::v1::Job& job);

  Store& store_;
  const ManagerOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, Waiters> waiters_;  // by job or sweep id; entries only while waited on
  std::condition_variable queue_changed_;   // a job queued or shutdown: for acquire
  std::condition_variable stopping_;        // shutdown: for the reaper
  std::map<std::string, Record> jobs_;
  std::map<int64_t, std::string> by_number_;  // every job, for listing
  std::set<int64_t> queue_;                    // numbers of QUEUED jobs: FIFO
  std::map<std::string, PoolInfo> pools_;
  std::map<std::string, SteadyClock::time_point> cancel_asked_;  // RUNNING jobs with a cancel pending
  std::map<std::string, prelude::v1::Sweep> sweeps_;
  int64_t next_sweep_ = 1;
  int64_t next_number_ = 1, next_pool_ = 1, boot_ = 1;
  bool shutdown_ = false;
  std::string degraded_;  // why the store takes no writes; empty while it does
  int64_t refusals_ = 0;  // writes the disk refused, ever
  std::function<void(bool, const std::string&)> health_;
  // RUNNING jobs whose pool is gone (lost, or the coordinator restarted) and whose
  // requeue could not be written yet: job id -> why it is lost (and whether the
  // attempt counts).
  struct Lost {
    std::string reason;
    bool uncounted = false;
  };
  std::map<std::string, Lost> lost_;
  // QUEUED jobs under Slurm: what Slurm (or sbatch) last said of them, by job id.
  std::map<std::string, std::string> slurm_status_;
  bool boot_recorded_ = true;
  std::thread reaper_;
};

}  // namespace prelude::server
