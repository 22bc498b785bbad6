// prelude-worker serve: one worker pool of the coordinator.
//
//   mpirun -np N prelude-worker serve --coordinator ADDR [--token-file F] [--job ID]
//                                     [--tls | --tls-ca F] [--tls-cert F --tls-key F]
//
// With --job (how a Slurm batch job starts its ranks: srun --mpi=pmix ... --job ID) the
// pool serves that one job: the coordinator gives it that job or nothing, and the pool
// exits once the job has ended, 0 when it SUCCEEDED, 1 otherwise (2 when the job
// had ended, or does not exist, before the pool got it). A job taken away from it
// (the coordinator restarted) is asked for again and resumed.
//
// Rank 0 registers the pool (N ranks), asks the coordinator for jobs (long poll),
// broadcasts each job to every rank, and while all ranks train it data-parallel,
// streams the training events back (each report is also the pool's heartbeat) and
// stops the job at the next step when the coordinator says so (cancelled). Errors
// that every rank sees alike (bad data, too little memory, any error while setting
// up, divergence, desync) fail the job and the
// pool takes the next one; anything else ends the pool (MPI_Abort) and the
// coordinator requeues its job when the heartbeats stop. A rank left waiting in a
// collective past --stall-timeout (another rank hung) ends the pool too, rank 0
// first telling the coordinator, which requeues the job (stall_watchdog.h).
#include "serve.h"

#include <grpcpp/grpcpp.h>
#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/bearer.h"
#include "common/errors.h"
#include "artifacts/checkpoint_file.h"
#include "common/flags.h"
#include "common/grpc_status.h"
#include "common/tls.h"
#include "common/token.h"
#include "data_declaration.h"
#include "engine/comm.h"
#include "engine/trainer.h"
#include "prelude/v1/worker.grpc.pb.h"
#include "job_log.h"
#include "stall_watchdog.h"

namespace prelude {

namespace v1 = prelude::v1;
using namespace std::chrono_literals;

namespace {

const std::vector<FlagSpec> kServeFlags = {
    {"--coordinator", "ADDR", "the coordinator (default $PRELUDE_COORDINATOR or localhost:50051)"},
    {"--token-file", "F", "the coordinator's token (default $PRELUDE_TOKEN)"},
    {"--data-root", "DIR", "where data sets live (default $PRELUDE_DATA_ROOT or /usr/share/datasets)"},
    {"--threads", "N", "compute threads per rank (default: OMP_NUM_THREADS or all cores)"},
    {"--quiet", "", "no training progress on stderr"},
    {"--job", "ID", "serve only this job, then exit: 0 when it succeeded (how Slurm batch jobs run pools)"},
    {"--stall-timeout", "S",
     "a rank waiting S seconds in one collective (another rank hung) ends the pool; its job is requeued "
     "(default 300)"},
};

std::string serve_usage() {
  std::vector<FlagSpec> flags = kServeFlags;
  flags.insert(flags.end(), client_tls_flags().begin(), client_tls_flags().end());
  return "usage: [mpirun -np N] prelude-worker serve [--coordinator ADDR] [--token-file F]\n"
         "                                          [--data-root DIR] [--threads N] [--quiet] [--job ID]\n"
         "                                          [--stall-timeout SECONDS]\n"
         "                                          [--tls | --tls-ca F] [--tls-cert F --tls-key F]\n"
         "\n"
         "Runs a worker pool of the coordinator: rank 0 takes jobs, every rank trains them.\n" +
         flag_list(flags);
}

struct ServeOptions {
  std::string coordinator = "localhost:50051";
  std::string token;
  std::string data_root = "/usr/share/datasets";
  bool quiet = false;
  std::string only_job;  // --job: a one-job pool
  std::chrono::milliseconds stall_timeout{300000};
  ClientTls tls;
};

// To stderr, and to the running job's log (job_log.h) for `prelude logs`.
void log(const std::string& line) {
  std::fprintf(stderr, "prelude-worker: %s\n", line.c_str());
  JobLog::process().add(line);
}

// How long a pool keeps trying to hand in a job's result (its final model, its end)
// while the coordinator is unreachable or cannot write (a full disk).
constexpr std::chrono::minutes kKeepTrying{30};

// Rank 0's connection to the coordinator: the pool's registration and its calls.
class CoordinatorLink {
 public:
  explicit CoordinatorLink(const ServeOptions& o)
      : options_(o),
        stub_(v1::WorkerService::NewStub(grpc::CreateChannel(o.coordinator, channel_credentials(o.tls)))) {}

  // Registers (again), retrying until the coordinator answers. A refused token is
  // final: it throws UserError.
  void register_pool(int ranks) {
    ranks_ = ranks;
    // What the pool holds and can do, worked out once: the coordinator sends it only
    // jobs whose data it holds (and BF16 ones only when the CPU runs BF16).
    DeclarationStats stats;
    capabilities_ = pool_capabilities(options_.data_root, default_hash_cache_file(), &stats);
    if (!stats.cache_note.empty()) log(stats.cache_note);
    log(declaration_summary(capabilities_, stats) + " under " + options_.data_root);
    for (int attempt = 0;; ++attempt) {
      try {
        register_once(ranks, attempt);
        return;
      } catch (const RegisterFailed&) {
        std::this_thread::sleep_for(std::min(5000ms, 200ms * (attempt + 1)));
      }
    }
  }

  // Not registered this time, but worth trying again.
  struct RegisterFailed {};

  // One registration call: returns registered, throws RegisterFailed to try again
  // later, or UserError when the coordinator refuses the pool for good.
  void register_once(int ranks, int attempt) {
    v1::RegisterPoolRequest req;
    req.set_ranks(ranks);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    req.set_host(host);
    req.set_threads_per_rank(omp_get_max_threads());
    req.set_job_id(options_.only_job);
    *req.mutable_capabilities() = capabilities_;
    v1::RegisterPoolResponse resp;
    auto ctx = context(10s);
    const grpc::Status s = stub_->RegisterPool(ctx.get(), req, &resp);
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      pool_id_ = resp.pool_id();
      interval_ = std::chrono::milliseconds(std::max(100, resp.heartbeat_interval_ms()));
      log("registered as " + pool_id_ + " (" + std::to_string(ranks) + " ranks) with " + options_.coordinator);
      return;
    }
    const ErrorCode kind = from_grpc(s.error_code());
    if (kind == ErrorCode::kUnauthenticated || kind == ErrorCode::kPermissionDenied ||
        kind == ErrorCode::kInvalidArgument || kind == ErrorCode::kFailedPrecondition)
      throw UserError("the coordinator at " + options_.coordinator + " refused the pool: " + status_text(s));
    if (attempt % 10 == 0)
      log("waiting for the coordinator at " + options_.coordinator + ": " + status_text(s) +
          (kind == ErrorCode::kUnavailable ? tls_failure_hint(options_.coordinator, options_.tls, s.error_message())
                                           : ""));
    throw RegisterFailed{};
  }

  // One round of at most about 40 s: registers again when the coordinator forgot the
  // pool (one try), then asks for a job (long poll). nullopt: none this round. Rank 0
  // calls it in a loop and broadcasts after every round, job or not, so the other
  // ranks hear from it at bounded intervals (their stall watchdog tells a hung rank 0).
  std::optional<v1::AcquireJobResponse> poll_job() {
    if (unregistered_) {
      const int ranks = ranks_;
      bool refused = false;
      try {
        register_once(ranks, failures_);
      } catch (const RegisterFailed&) {
        refused = true;
      }
      if (refused) {
        ++failures_;
        std::this_thread::sleep_for(std::min(5000ms, 200ms * failures_));
        return std::nullopt;
      }
      unregistered_ = false;
      failures_ = 0;
    }
    v1::AcquireJobRequest req;
    req.set_pool_id(pool_id());
    req.set_wait_ms(10000);
    v1::AcquireJobResponse resp;
    auto ctx = context(30s);
    const grpc::Status s = stub_->AcquireJob(ctx.get(), req, &resp);
    if (s.ok()) {
      failures_ = 0;
      if (resp.has_job()) {
        std::lock_guard<std::mutex> lock(mu_);
        lease_job_ = resp.job().job_id();
        lease_ = resp.lease();
        return resp;
      }
      return std::nullopt;
    }
    const ErrorCode kind = from_grpc(s.error_code());
    if (kind == ErrorCode::kNotFound) {  // the coordinator forgot the pool (it restarted): register again
      log(status_text(s));
      unregistered_ = true;
      return std::nullopt;
    }
    if (kind == ErrorCode::kUnauthenticated || kind == ErrorCode::kPermissionDenied) throw UserError(status_text(s));
    // A one-job pool whose job has ended (cancelled while it started, say): nothing will come.
    if (kind == ErrorCode::kFailedPrecondition && !options_.only_job.empty()) throw UserError(status_text(s));
    if (failures_++ % 10 == 0) log("cannot reach the coordinator: " + status_text(s));
    std::this_thread::sleep_for(std::min(5000ms, 200ms * failures_));
    return std::nullopt;
  }

  // Sends events (possibly none: a heartbeat). Sets *stop when the job must stop.
  // Returns false when the call failed and should be retried.
  bool report(const std::string& job_id, const std::vector<v1::TrainingEvent>& events,
              const std::vector<v1::LogLine>& log_lines, bool* stop) {
    v1::ReportProgressRequest req;
    req.set_pool_id(pool_id());
    req.set_job_id(job_id);
    req.set_lease(lease_of(job_id));
    for (const auto& e : events) *req.add_events() = e;
    for (const auto& l : log_lines) *req.add_log() = l;
    v1::ReportProgressResponse resp;
    auto ctx = context(10s);
    const grpc::Status s = stub_->ReportProgress(ctx.get(), req, &resp);
    if (s.ok()) {
      *stop = resp.stop();
      return true;
    }
    if (from_grpc(s.error_code()) == ErrorCode::kNotFound) {  // the coordinator forgot us: the job is lost
      log(status_text(s) + "; stopping job " + job_id);
      *stop = true;
      return true;
    }
    log("reporting progress failed (will retry): " + status_text(s));
    return false;
  }

  // True when the coordinator took the end; false when the job is no longer the
  // pool's (requeued, or the coordinator restarted) or it could not be told.
  bool finish(const std::string& job_id, v1::JobState state, const std::string& error) {
    v1::FinishJobRequest req;
    req.set_pool_id(pool_id());
    req.set_job_id(job_id);
    req.set_lease(lease_of(job_id));
    req.set_state(state);
    req.set_error(error);
    // Repeated while no answer comes (the coordinator is down or too slow) or it
    // cannot write (a full disk: UNAVAILABLE), for up to kKeepTrying: a job whose end
    // is not recorded would be trained again. Each refused call still counts as the
    // pool's heartbeat.
    const auto give_up = std::chrono::steady_clock::now() + kKeepTrying;
    for (int attempt = 1;; ++attempt) {
      v1::FinishJobResponse resp;
      auto ctx = context(10s);
      const grpc::Status s = stub_->FinishJob(ctx.get(), req, &resp);
      if (s.ok()) return true;
      const ErrorCode kind = from_grpc(s.error_code());
      if (kind != ErrorCode::kUnavailable && kind != ErrorCode::kTimedOut) {
        log("the coordinator did not take the end of job " + job_id + ": " + status_text(s));
        if (kind == ErrorCode::kNotFound) unregistered_ = true;  // it restarted: register again to ask for the job
        return false;  // the job is no longer ours (requeued or the coordinator restarted)
      }
      if (std::chrono::steady_clock::now() >= give_up) break;
      if (attempt % 10 == 1) log("reporting the end of job " + job_id + " (will retry): " + status_text(s));
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(5000ms, 500ms * attempt));
    }
    log("gave up reporting the end of job " + job_id);
    return false;
  }

  // Tells the coordinator that this pool hung on the job and is going down (the
  // job is requeued). Tries for about 10 s: the pool ends either way.
  void report_hung(const std::string& job_id, const std::string& reason) {
    v1::FinishJobRequest req;
    req.set_pool_id(pool_id());
    req.set_job_id(job_id);
    req.set_lease(lease_of(job_id));
    req.set_state(v1::FAILED);
    req.set_error(reason);
    req.set_pool_hung(true);
    for (int attempt = 0; attempt < 10; ++attempt) {
      v1::FinishJobResponse resp;
      auto ctx = context(3s);
      const grpc::Status s = stub_->FinishJob(ctx.get(), req, &resp);
      if (s.ok()) return;
      const ErrorCode kind = from_grpc(s.error_code());
      if (kind != ErrorCode::kUnavailable && kind != ErrorCode::kTimedOut) {
        log("the coordinator did not take the stall of job " + job_id + ": " + status_text(s));
        return;
      }
      std::this_thread::sleep_for(500ms);
    }
    log("could not tell the coordinator that job " + job_id + " stalled");
  }

  // Sends a checkpoint of the job in 1 MiB chunks. Returns the call's status.
  grpc::Status upload_checkpoint(const std::string& job_id, const v1::Checkpoint& c, const std::string& bytes) {
    auto ctx = context(120s);
    v1::UploadCheckpointResponse resp;
    auto writer = stub_->UploadCheckpoint(ctx.get(), &resp);
    v1::UploadCheckpointRequest m;
    m.set_pool_id(pool_id());
    m.set_job_id(job_id);
    m.set_lease(lease_of(job_id));
    m.set_step(c.progress().step());
    m.set_epoch(c.progress().epoch());
    m.set_final(c.progress().finished());
    m.set_total_bytes(static_cast<int64_t>(bytes.size()));
    m.set_sha256(sha256_hex(bytes));
    constexpr size_t kChunk = 1 << 20;
    for (size_t at = 0; at < bytes.size(); at += kChunk) {
      m.set_data(bytes.substr(at, kChunk));
      if (!writer->Write(m)) break;
      m.Clear();
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // A checkpoint of the job this pool holds (or, with `from_job`, of the job it
  // warm-starts from), decoded. UserError when the coordinator has no such checkpoint.
  v1::Checkpoint fetch_checkpoint(const std::string& job_id, const std::string& from_job, int64_t step,
                                  const std::string& source) {
    v1::FetchCheckpointRequest req;
    req.set_pool_id(pool_id());
    req.set_job_id(job_id);
    req.set_lease(lease_of(job_id));
    req.set_step(step);
    req.set_from_job_id(from_job);
    auto ctx = context(120s);
    auto reader = stub_->FetchCheckpoint(ctx.get(), req);
    std::string bytes;
    for (v1::CheckpointChunk chunk; reader->Read(&chunk);) bytes += chunk.data();
    const grpc::Status s = reader->Finish();
    if (from_grpc(s.error_code()) == ErrorCode::kNotFound) throw user_error(source, status_text(s));
    if (!s.ok()) throw std::runtime_error(source + ": " + status_text(s));
    return decode_checkpoint(bytes, source);
  }

  std::chrono::milliseconds interval() const {
    std::lock_guard<std::mutex> lock(mu_);
    return interval_;
  }

 private:
  std::string pool_id() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pool_id_;
  }
  // The lease the coordinator gave with the job (AcquireJobResponse.lease).
  std::string lease_of(const std::string& job_id) const {
    std::lock_guard<std::mutex> lock(mu_);
    return job_id == lease_job_ ? lease_ : "";
  }
  std::unique_ptr<grpc::ClientContext> context(std::chrono::milliseconds timeout) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    add_bearer_token(ctx.get(), options_.token);
    return ctx;
  }

  const ServeOptions& options_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  mutable std::mutex mu_;
  std::string pool_id_;
  std::string lease_job_, lease_;  // the job last acquired and its lease
  std::chrono::milliseconds interval_{2000};
  int ranks_ = 1;
  bool unregistered_ = false;  // poll_job: register again first
  v1::PoolCapabilities capabilities_;  // sent with every registration
  int failures_ = 0;           // poll_job: calls failed in a row
};

// Rank 0's side of one running job: queues the training events and sends them
// from its own thread (so training never waits on the network), at least every
// heartbeat interval, and remembers when the coordinator asks to stop.
class JobReporter : public EventSink {
 public:
  JobReporter(CoordinatorLink& link, std::string job_id, bool quiet)
      : link_(link), job_id_(std::move(job_id)), quiet_(quiet), thread_([this] { loop(); }) {}
  ~JobReporter() override { close(); }

  void on_event(const v1::TrainingEvent& e) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.push_back(e);
    }
    wake_.notify_one();
  }
  void on_progress(const std::string& line) override {
    if (!quiet_) {
      log(job_id_ + ": " + line);
    } else {
      JobLog::process().add(job_id_ + ": " + line);  // quiet on the terminal, not in the job's log
    }
  }
  bool stop_requested() const { return stop_; }

  // Sends what is left, then ends the thread.
  void close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_) return;
      closing_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    std::chrono::steady_clock::time_point closed_at;
    for (int failures = 0;;) {
      wake_.wait_for(lock, link_.interval(), [&] { return closing_ || !pending_.empty(); });
      std::vector<v1::TrainingEvent> batch(pending_.begin(), pending_.end());
      for (auto& l : JobLog::process().take()) pending_log_.push_back(std::move(l));
      // A coordinator out of reach for long: its oldest lines go first.
      while (pending_log_.size() > kMaxPendingLines) pending_log_.pop_front();
      std::vector<v1::LogLine> lines(pending_log_.begin(), pending_log_.end());
      const bool last = closing_;
      lock.unlock();
      bool stop = false;
      const bool sent = link_.report(job_id_, batch, lines, &stop);
      lock.lock();
      if (sent) {
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(batch.size()));
        pending_log_.erase(pending_log_.begin(), pending_log_.begin() + static_cast<long>(lines.size()));
        if (stop) stop_ = true;
        failures = 0;
      } else if (++failures > 1) {
        lock.unlock();
        std::this_thread::sleep_for(std::min(5000ms, 250ms * failures));
        lock.lock();
      }
      // Closing: what is left (the summary above all) is tried for as long as the
      // coordinator may recover; it takes no report while its disk is full.
      if (last && closed_at == std::chrono::steady_clock::time_point()) closed_at = std::chrono::steady_clock::now();
      if (last && ((pending_.empty() && pending_log_.empty()) || std::chrono::steady_clock::now() - closed_at > kKeepTrying))
        return;
    }
  }

  CoordinatorLink& link_;
  const std::string job_id_;
  const bool quiet_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<v1::TrainingEvent> pending_;
  static constexpr size_t kMaxPendingLines = 20000;
  std::deque<v1::LogLine> pending_log_;  // taken from JobLog, not yet sent (touched by the thread only)
  bool closing_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Rank 0's checkpoints of one running job, uploaded from their own thread so that
// training never waits on the network. Only the newest checkpoint waiting matters:
// a newer one replaces an older one not yet sent (the final model is never
// replaced). A failed upload is tried 3 times, then given up with a line in the log:
// a job does not fail because a checkpoint could not be kept.
class CheckpointUploader {
 public:
  CheckpointUploader(CoordinatorLink& link, std::string job_id)
      : link_(link), job_id_(std::move(job_id)), thread_([this] { loop(); }) {}
  ~CheckpointUploader() { close(); }

  void add(const v1::Checkpoint& c) {
    const auto t0 = std::chrono::steady_clock::now();
    Item item{c, encode_checkpoint(c), 0};
    item.encode_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!pending_.empty() && !pending_.back().checkpoint.progress().finished()) pending_.pop_back();
      pending_.push_back(std::move(item));
    }
    wake_.notify_one();
  }

  // After close(): why the final model could not be kept ("" when it was, or when
  // there was none).
  std::string final_error() const { return final_error_; }

  // Sends what is waiting (the final model above all), then ends the thread.
  void close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_) return;
      closing_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

 private:
  struct Item {
    v1::Checkpoint checkpoint;
    std::string bytes;
    double encode_ms;  // in the training thread
  };

  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [&] { return closing_ || !pending_.empty(); });
      if (pending_.empty()) return;  // closing, nothing left
      Item item = std::move(pending_.front());
      pending_.pop_front();
      lock.unlock();
      send(item);
      lock.lock();
    }
  }

  void send(const Item& item) {
    const auto started = std::chrono::steady_clock::now();
    const auto& p = item.checkpoint.progress();
    const std::string what = std::string(p.finished() ? "final checkpoint" : "checkpoint") + " of step " +
                             std::to_string(p.step()) + " (" + std::to_string(item.bytes.size() >> 10) + " KiB)";
    for (int attempt = 1;; ++attempt) {
      const auto t0 = std::chrono::steady_clock::now();
      const grpc::Status s = link_.upload_checkpoint(job_id_, item.checkpoint, item.bytes);
      if (s.ok()) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
        log(job_id_ + ": kept " + what + ": encoded in " + std::to_string(static_cast<int>(item.encode_ms)) +
            " ms, uploaded in " + std::to_string(ms.count()) + " ms");
        return;
      }
      // A checkpoint along the way is tried 3 times: a newer one follows. The final
      // model is the job's result: it is tried for as long as the coordinator may
      // recover (a full disk makes it answer UNAVAILABLE until space returns).
      const ErrorCode kind = from_grpc(s.error_code());
      const bool final = p.finished();
      if (!is_retryable(kind) || (!final && attempt == 3) ||
          (final && std::chrono::steady_clock::now() - started >= kKeepTrying)) {
        log(job_id_ + ": could not keep " + what + ": " + status_text(s));
        if (final) final_error_ = status_text(s);
        return;
      }
      if (final && attempt % 10 == 1) log(job_id_ + ": keeping the " + what + " (will retry): " + status_text(s));
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(5000ms, 500ms * attempt));
    }
  }

  CoordinatorLink& link_;
  const std::string job_id_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Item> pending_;
  bool closing_ = false;
  std::string final_error_;  // written by the thread, read after it ended
  std::thread thread_;
};

// What other ranks use as the sink: events are rank 0's business.
class NullSink : public EventSink {
 public:
  void on_event(const v1::TrainingEvent&) override {}
};

// How one job went, on rank 0: its end, and whether the coordinator took it.
struct JobOutcome {
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  bool recorded = false;
};

// Trains one job on every rank; rank 0 reports it. Returns normally unless the
// pool must end (then every rank has been aborted).
JobOutcome run_job(const v1::AcquireJobResponse& acquired, Communicator& comm, CoordinatorLink* link,
             const ServeOptions& o, StallWatchdog* watchdog) {
  const v1::Job& job = acquired.job();
  std::unique_ptr<JobReporter> reporter;
  std::unique_ptr<CheckpointUploader> uploader;
  NullSink null_sink;
  JobLog::process().start(comm.rank());  // this attempt's lines, on every rank
  struct StopLog {
    ~StopLog() { JobLog::process().stop(); }
  } stop_log;
  if (link) {
    reporter = std::make_unique<JobReporter>(*link, job.job_id(), o.quiet);
    uploader = std::make_unique<CheckpointUploader>(*link, job.job_id());
    log("job " + job.job_id() + " (" + job.spec().name() + "): attempt " + std::to_string(job.attempts()));
  }
  RunOptions options;
  options.data_root = o.data_root;
  options.comm = &comm;
  options.job_id = job.job_id();
  options.should_stop = [&] { return reporter && reporter->stop_requested(); };
  if (uploader) options.on_checkpoint = [&](const v1::Checkpoint& c, bool) { uploader->add(c); };
  v1::JobState state = v1::SUCCEEDED;
  std::string error;
  // An earlier attempt left a checkpoint, or the job warm-starts from another job's:
  // rank 0 fetches it while the ranks set up (a checkpoint that cannot be had fails
  // every rank alike), and the trainer hands what it needs to the others.
  if (link && acquired.has_resume_from()) {
    const int64_t step = acquired.resume_from().step();
    options.resume_source = job.job_id() + "'s checkpoint of step " + std::to_string(step);
    options.resume_from = [&, step] { return link->fetch_checkpoint(job.job_id(), "", step, options.resume_source); };
  } else if (link && acquired.has_init_from()) {
    const std::string& from = job.spec().model().init_from().job_id();
    const int64_t step = acquired.init_from().step();
    options.init_source = from + "'s checkpoint of step " + std::to_string(step);
    options.init_from = [&, step] { return link->fetch_checkpoint(job.job_id(), from, step, options.init_source); };
  }
  // Watched from here until training returns on this rank (a stall ends the pool).
  struct Armed {
    StallWatchdog* w;
    ~Armed() {
      if (w) w->disarm();
    }
  } armed{watchdog};
  if (watchdog) watchdog->arm(job.job_id());
  try {
    const auto summary = run_training(job.spec(), options, reporter ? static_cast<EventSink&>(*reporter) : null_sink);
    if (reporter && reporter->stop_requested())
      state = v1::CANCELLED, error = "stopped at step " + std::to_string(summary.steps());
  } catch (const UserError& e) {
    state = v1::FAILED, error = std::string("bad input: ") + e.what();
  } catch (const DivergedError& e) {
    state = v1::FAILED, error = e.what();
  } catch (const StalledError& e) {
    state = v1::FAILED, error = e.what();
  } catch (const DesyncError& e) {
    state = v1::FAILED, error = e.what();
  } catch (const SetupError& e) {
    // Every rank has it (the trainer agrees on setup errors): the pool stays.
    state = v1::FAILED, error = std::string("internal error: ") + e.what();
  } catch (const std::exception& e) {
    // Not known to be seen alike by every rank: end the pool rather than hang it.
    if (comm.size() > 1) comm.abort(std::string("prelude-worker: internal error in job ") + job.job_id() + ": " + e.what(), 1);
    state = v1::FAILED, error = std::string("internal error: ") + e.what();
  }
  // The other ranks' lines, to rank 0, which sends them with its last report (theirs
  // come at the end of the attempt; rank 0's as they are written).
  if (comm.size() > 1) {
    const auto all = comm.gather_bytes(comm.is_root() ? std::string() : JobLog::serialize(JobLog::process().take()));
    for (size_t r = 1; r < all.size(); ++r) {
      try {
        JobLog::process().put(JobLog::parse(all[r]));
      } catch (const std::exception& e) {
        log("rank " + std::to_string(r) + ": " + e.what());
      }
    }
  }
  if (watchdog) watchdog->disarm();
  if (!reporter) return {state, false};
  uploader->close();  // the final model is kept before the job is said to be done
  if (state == v1::SUCCEEDED && !uploader->final_error().empty())
    state = v1::FAILED, error = "training finished, but its final model could not be kept: " + uploader->final_error();
  reporter->close();
  const bool recorded = link->finish(job.job_id(), state, error);
  log("job " + job.job_id() + ": " + v1::JobState_Name(state) + (error.empty() ? "" : " (" + error + ")"));
  return {state, recorded};
}

}  // namespace

int serve_main(int argc, char** argv) {
  ServeOptions o;
  if (const char* v = std::getenv("PRELUDE_COORDINATOR")) o.coordinator = v;
  if (const char* v = std::getenv("PRELUDE_TOKEN")) o.token = v;
  if (const char* v = std::getenv("PRELUDE_DATA_ROOT")) o.data_root = v;
  try {
    std::map<std::string, std::string> tls_flags;
    FlagReader reader({argv, argv + argc}, kServeFlags);
    reader.accept(client_tls_flags());
    while (const auto item = reader.next()) {
      if (item->kind == FlagReader::Item::kHelp) {
        std::fputs(serve_usage().c_str(), stdout);
        return 0;
      }
      // serve takes no arguments: anything but its flags is unknown.
      if (item->kind != FlagReader::Item::kFlag) throw UserError("unknown argument '" + item->text + "'");
      const std::string& a = item->text;  // a flag given twice: the last one counts
      if (a == "--coordinator") o.coordinator = item->value;
      if (a == "--token-file") o.token = read_token_file(item->value);
      if (a == "--data-root") o.data_root = item->value;
      if (a == "--threads") omp_set_num_threads(parse_threads(item->value));
      if (a == "--quiet") o.quiet = true;
      if (a == "--job") {
        if (item->value.empty() || item->value.size() > 200) throw UserError("--job: a job id such as job-000001");
        o.only_job = item->value;
      }
      if (a == "--stall-timeout") {
        char* end = nullptr;
        const double sec = std::strtod(item->value.c_str(), &end);
        if (item->value.empty() || *end || !(sec >= 1 && sec <= 86400))
          throw UserError("--stall-timeout: must be a number of seconds from 1 to 86400, got '" + item->value + "'");
        o.stall_timeout = std::chrono::milliseconds(static_cast<long>(sec * 1000));
      }
      if (a.rfind("--tls", 0) == 0) tls_flags[a] = item->value;
    }
    const auto flag = [&tls_flags](const std::string& name) -> std::optional<std::string> {
      const auto it = tls_flags.find(name);
      return it == tls_flags.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    const auto env = [](const std::string& name) -> std::optional<std::string> {
      const char* v = std::getenv(name.c_str());
      return v ? std::optional<std::string>(v) : std::nullopt;
    };
    o.tls = resolve_client_tls(flag, env);  // the files are read by rank 0 only, which connects
  } catch (const UserError& e) {
    std::fprintf(stderr, "prelude-worker: %s\n%s", e.what(), serve_usage().c_str());
    return 2;
  }

  Communicator& comm = Communicator::world();
  std::unique_ptr<CoordinatorLink> link;
  // The stall watchdog (stall_watchdog.h): with more than one rank, a rank left
  // waiting in a collective ends the pool. Rank 0 looks first and tells the
  // coordinator; the others give it 15 s more (when rank 0 itself is what hangs, the
  // coordinator learns it from the missing heartbeats).
  std::mutex job_mu;
  std::string current_job;
  std::unique_ptr<StallWatchdog> watchdog;
  if (comm.size() > 1) {
    StallWatchOptions wo;
    wo.timeout = o.stall_timeout + (comm.is_root() ? 0s : 15s);
    wo.warn_after = std::min<std::chrono::milliseconds>(60s, o.stall_timeout / 2);
    const std::string rank = "rank " + std::to_string(comm.rank());
    watchdog = std::make_unique<StallWatchdog>(
        comm.activity(), wo, [rank](const std::string& m) { log(rank + ", " + m); },
        [&, rank](const std::string& m) {
          std::string job;
          {
            std::lock_guard<std::mutex> lock(job_mu);
            job = current_job;
          }
          // m starts with the job's id: "job-000003: waited 300 s in MPI_Allreduce ...".
          const std::string what = rank + " " + m.substr(m.find(": ") == std::string::npos ? 0 : m.find(": ") + 2);
          log(job + ": " + what + "; ending the pool");
          if (link && !job.empty()) link->report_hung(job, what);
          comm.abort("prelude-worker: " + job + ": " + what + "; the pool ends", 3);
        });
  }
  try {
    if (comm.is_root()) {
      link = std::make_unique<CoordinatorLink>(o);
      link->register_pool(comm.size());
    }
    // Rank 0 broadcasts after every poll round, job or not (empty: none), and the
    // watchdog watches that broadcast too: a rank stopped while the pool is idle
    // leaves rank 0 waiting to hand out the next job, and a rank 0 that stopped
    // leaves the others without news. The others start watching once they have heard
    // from rank 0 once: the roll call right after it registered (before that, it may
    // be waiting for a coordinator to start).
    comm.barrier_idle();
    for (;;) {
      std::string bytes, job_id;
      if (link) {
        if (auto next = link->poll_job()) {
          bytes = next->SerializeAsString();
          job_id = next->job().job_id();
        }
      }
      {
        std::lock_guard<std::mutex> lock(job_mu);
        current_job = job_id;  // a stall while handing the job out is reported against it
      }
      if (watchdog) watchdog->arm(job_id.empty() ? "waiting for the next job" : job_id);
      comm.broadcast_bytes_idle(&bytes, 0, 20, /*watched=*/true);
      if (bytes.empty()) comm.barrier_idle();  // every rank answers the roll call
      if (watchdog) watchdog->disarm();
      if (bytes.empty()) continue;  // no job this round
      v1::AcquireJobResponse acquired;
      if (!acquired.ParseFromString(bytes)) throw std::runtime_error("a job did not reach every rank intact");
      {
        std::lock_guard<std::mutex> lock(job_mu);
        current_job = acquired.job().job_id();
      }
      const JobOutcome outcome = run_job(acquired, comm, link.get(), o, watchdog.get());
      if (o.only_job.empty()) continue;
      // A one-job pool ends with its job: rank 0, which knows how it went, tells the
      // others whether to stop ("0"/"1": the exit code) or to ask for the job again
      // (empty: it was taken away, e.g. by a coordinator restart, and comes back).
      std::string verdict;
      if (link && outcome.recorded) verdict = outcome.state == v1::SUCCEEDED ? "0" : "1";
      comm.broadcast_bytes_idle(&verdict, 0, 20);
      if (verdict.empty()) continue;
      if (link) log("served job " + o.only_job + "; exiting");
      return verdict == "0" ? 0 : 1;
    }
  } catch (const std::exception& e) {
    const int code = dynamic_cast<const UserError*>(&e) ? 2 : 1;
    if (comm.size() > 1) comm.abort(std::string("prelude-worker: error: ") + e.what(), code);
    std::fprintf(stderr, "prelude-worker: error: %s\n", e.what());
    return code;
  }
}

}  // namespace prelude
