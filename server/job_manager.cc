#include "server/job_manager.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "common/errors.h"
#include "common/job_state.h"
#include "common/message_text.h"
#include "common/status.h"
#include "common/text.h"
#include "artifacts/resume_check.h"
#include "server/tokens.h"
#include "spec/data_files.h"
#include "spec/events.h"
#include "spec/job_spec.h"
#include "spec/sweep.h"

namespace prelude::server {

namespace v1 = prelude::v1;
using google::protobuf::util::TimeUtil;

namespace {

constexpr int kDefaultPageSize = 50, kMaxPageSize = 1000;
constexpr int kWatchBatch = 500;
// Worker output: lines a response carries, lines a report may add, bytes a line keeps.
constexpr int kLogBatch = 1000;
constexpr size_t kMaxLogLinesPerReport = 2000, kMaxLogLineBytes = 4096;
std::string log_key(const std::string& job_id) { return "logs/" + job_id; }
// GetMetrics pages: well under the 4 MiB clients accept by default, whatever the events.
constexpr int kDefaultMetricsPage = 5000, kMaxMetricsPage = 20000;
constexpr size_t kMaxMetricsPageBytes = 1 << 20;

std::string job_id_for(int64_t number) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "job-%06" PRId64, number);
  return buf;
}

std::string sweep_id_for(int64_t number) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "sweep-%06" PRId64, number);
  return buf;
}

std::string state_name(v1::JobState s) { return v1::JobState_Name(s); }

std::string seconds_text(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", ms.count() / 1000.0);
  return buf;
}

}  // namespace

JobManager::JobManager(Store& store, ManagerOptions options) : store_(store), options_(std::move(options)) {
  boot_ = store_.boots() + 1;
  try {
    store_.record_boot(boot_);
  } catch (const StorageError& e) {  // a full disk at start: serve degraded, count the boot once it clears
    degrade(e);
    boot_recorded_ = false;
  }
  // A clean stop cut the running attempts short through no fault of their jobs; a
  // crash may have been caused by one, so its attempts count (a job that crashes the
  // coordinator cannot do so forever).
  bool clean_stop = false;
  try {
    clean_stop = store_.take_clean_stop();
  } catch (const std::exception& e) {
    if (options_.log) options_.log(std::string("cannot clear the clean-stop mark (") + e.what() + "): attempts count");
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& stored : store_.load_jobs()) {
    Record r{stored.number, std::move(stored.job), stored.last_seq};
    const std::string id = r.job.job_id();
    next_number_ = std::max(next_number_, r.number + 1);
    by_number_[r.number] = id;
    auto& rec = jobs_[id] = std::move(r);
    if (rec.job.state() == v1::QUEUED) queue_.insert(rec.number);
    if (rec.job.state() != v1::RUNNING) continue;
    if (clean_stop) {
      lose_or_retry(rec, "the coordinator restarted while the job was running", /*uncounted=*/true);
    } else {
      lose_or_retry(rec, "the coordinator restarted after stopping abruptly (a crash or kill) while the job was running");
    }
  }
  for (auto& sweep : store_.load_sweeps()) {
    const std::string id = sweep.sweep_id();
    sweeps_[id] = std::move(sweep);
  }
  // Never an id twice: not after a delete, not after a sweep a crash cut short.
  next_number_ = std::max(next_number_, store_.next_job_number());
  next_sweep_ = store_.next_sweep_number();
  if (options_.reaper_thread) reaper_ = std::thread([this] { reaper_loop(); });
}

JobManager::~JobManager() {
  shutdown();
  if (reaper_.joinable()) reaper_.join();
  try {
    std::lock_guard<std::mutex> lock(mu_);
    store_.mark_clean_stop();
  } catch (const std::exception&) {
    // Unmarked, the next start counts the running attempts as a crash would: the safe side.
  }
}

void JobManager::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
    for (auto& [key, waiters] : waiters_) waiters.cv.notify_all();
    health_ = nullptr;  // the server it reports to is going away
  }
  queue_changed_.notify_all();
  stopping_.notify_all();
}

bool JobManager::wait_for(std::unique_lock<std::mutex>& lock, const std::string& key,
                          SteadyClock::time_point deadline) {
  auto it = waiters_.try_emplace(key).first;  // map nodes stay put while others come and go
  ++it->second.count;
  const bool woken = it->second.cv.wait_until(lock, deadline) == std::cv_status::no_timeout;
  if (--it->second.count == 0) waiters_.erase(it);
  if (woken && options_.on_wakeup) options_.on_wakeup(key);
  return woken;
}

void JobManager::notify(const std::string& key) {
  auto it = waiters_.find(key);
  if (it != waiters_.end()) it->second.cv.notify_all();
}

void JobManager::notify_job(const v1::Job& job) {
  notify(job.job_id());
  notify(log_key(job.job_id()));  // a log reader learns the attempt is over
  if (!job.sweep_id().empty()) notify(job.sweep_id());
}

void JobManager::reaper_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutdown_) {
    stopping_.wait_for(lock, std::chrono::seconds(1));
    if (shutdown_) break;
    lock.unlock();
    probe_store();
    reap_lost_pools();
    lock.lock();
  }
}

// ---------------------------------------------------------------- records

JobManager::Record& JobManager::find(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) throw not_found("job " + echoed(job_id) + " does not exist");
  return it->second;
}

const JobManager::Record& JobManager::find(const std::string& job_id) const {
  return const_cast<JobManager*>(this)->find(job_id);
}

JobManager::Record& JobManager::find(const std::string& job_id, const Caller& who) {
  auto it = jobs_.find(job_id);
  // Another user's job is answered as an unknown one: its existence is not told.
  if (it == jobs_.end() || !who.may_see(it->second.job.owner()))
    throw not_found("job " + echoed(job_id) + " does not exist");
  return it->second;
}

const JobManager::Record& JobManager::find(const std::string& job_id, const Caller& who) const {
  return const_cast<JobManager*>(this)->find(job_id, who);
}

const v1::Sweep& JobManager::find_sweep(const std::string& sweep_id, const Caller& who) const {
  auto it = sweeps_.find(sweep_id);
  if (it == sweeps_.end() || !who.may_see(it->second.owner()))
    throw not_found("sweep " + echoed(sweep_id) + " does not exist");
  return it->second;
}

PoolInfo& JobManager::find_pool(const std::string& pool_id, const Caller& who) {
  auto it = pools_.find(pool_id);
  // A pool is bound to the token that registered it, admins included: another
  // token naming it is told what an unknown pool is told.
  if (it == pools_.end() || it->second.owner != who.name)
    throw not_found("pool " + echoed(pool_id) +
                    " is not registered (the coordinator may have restarted): register again");
  return it->second;
}

namespace {

// Compares two secrets in time that depends only on the expected one's length.
bool same_secret(const std::string& expected, const std::string& given) {
  unsigned char diff = expected.size() == given.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i)
    diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  return diff == 0;
}

}  // namespace

PoolInfo& JobManager::find_holder(const PoolCall& call, const std::string& job_id) {
  PoolInfo& pool = find_pool(call.pool_id, call.who);
  if (pool.job_id != job_id || job_id.empty())
    throw failed_precondition("job " + echoed(job_id) + " is not running on pool " + call.pool_id);
  if (pool.lease.empty() || !same_secret(pool.lease, call.lease))
    throw failed_precondition("job " + echoed(job_id) + " on pool " + call.pool_id +
                              ": the lease does not match the one its attempt was given (a stale attempt?)");
  return pool;
}

void JobManager::check_queue_limit(const Caller& who, size_t adding) const {
  if (who.role != Role::kUser || options_.max_queued_per_user <= 0) return;
  size_t queued = 0;
  for (int64_t number : queue_)
    if (jobs_.at(by_number_.at(number)).job.owner() == who.name) ++queued;
  const auto limit = static_cast<size_t>(options_.max_queued_per_user);
  if (queued + adding > limit)
    throw resource_exhausted(who.name + " has " + std::to_string(queued) + " job" + (queued == 1 ? "" : "s") +
                             " queued; " + (adding == 1 ? "one more" : std::to_string(adding) + " more") +
                             " would pass the limit of " + std::to_string(limit) +
                             " (--max-queued-per-user): wait for some to start, or cancel some");
}

v1::JobEvent JobManager::new_event(Record& r) {
  v1::JobEvent e;
  e.set_job_id(r.job.job_id());
  e.set_seq(++r.last_seq);
  e.set_attempt(r.job.attempts());
  *e.mutable_time() = TimeUtil::GetCurrentTime();
  return e;
}

void JobManager::write(const std::function<void()>& body) {
  try {
    body();
  } catch (const StorageError& e) {
    degrade(e);
    throw unavailable(degraded_);
  }
}

void JobManager::degrade(const StorageError& e) {
  ++refusals_;
  const std::string reason =
      "the coordinator cannot write its database (" + store_.path() + "): " + e.reason() + "; retrying";
  if (degraded_ == reason) return;
  degraded_ = reason;
  const std::string detail = e.what() == "database: " + e.reason() ? "" : std::string(" (") + e.what() + ")";
  if (options_.log) options_.log(reason + " every second" + detail + "; not serving until then");
  if (health_) health_(false, degraded_);
}

std::string JobManager::degraded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return degraded_;
}

void JobManager::set_health_listener(std::function<void(bool, const std::string&)> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return;
  health_ = std::move(listener);
  if (health_) health_(degraded_.empty(), degraded_);
}

void JobManager::probe_store() {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return;
  if (!degraded_.empty()) {
    try {
      store_.probe();
    } catch (const StorageError& e) {
      degrade(e);
      return;
    } catch (const std::exception&) {
      return;  // not the disk's fault (e.g. busy): the next probe tells
    }
  }
  const int64_t refused = refusals_;
  retry_pending();
  if (degraded_.empty() || refusals_ != refused) return;  // refused again: still degraded
  if (options_.log) options_.log("the database takes writes again: serving");
  degraded_.clear();
  if (health_) health_(true, "");
  queue_changed_.notify_all();  // pools wait for work
}

void JobManager::retry_pending() {
  const int64_t refused = refusals_;
  if (!boot_recorded_) {
    try {
      write([&] { store_.record_boot(boot_); });
      boot_recorded_ = true;
    } catch (const std::exception&) {
      return;  // the next second retries
    }
  }
  for (auto it = lost_.begin(); it != lost_.end() && refusals_ == refused;) {
    try {
      auto jit = jobs_.find(it->first);
      if (jit != jobs_.end() && jit->second.job.state() == v1::RUNNING) lose_job(jit->second, it->second.reason, it->second.uncounted);
      it = lost_.erase(it);
    } catch (const std::exception&) {
      ++it;  // the disk refused (the loop ends there) or a fault that may pass: the next second retries
    }
  }
}

void JobManager::lose_or_retry(Record& r, const std::string& reason, bool uncounted) {
  if (degraded_.empty()) {
    try {
      lose_job(r, reason, uncounted);
      return;
    } catch (const std::exception& e) {
      if (options_.log) options_.log(r.job.job_id() + ": cannot requeue it yet (" + e.what() + "); retrying");
    }
  }
  lost_[r.job.job_id()] = Lost{reason, uncounted};
}

void JobManager::commit(Record& r, Record next, const std::vector<v1::JobEvent>& events) {
  write([&] { store_.save(next.number, next.job, events); });  // throws: nothing changed, in memory or on disk
  r = std::move(next);
  if (r.job.state() == v1::QUEUED) {
    if (queue_.insert(r.number).second) queue_changed_.notify_all();  // a job for waiting pools
  } else {
    queue_.erase(r.number);
  }
  notify_job(r.job);
}

void JobManager::transition(Record& r, v1::JobState state, const std::string& reason,
                            const std::function<void(v1::Job&)>& change) {
  Record next = r;
  v1::Job& job = next.job;
  if (change) change(job);
  job.set_state(state);
  const auto now = TimeUtil::GetCurrentTime();
  if (state == v1::RUNNING) *job.mutable_start_time() = now;
  if (is_final(state)) {
    *job.mutable_end_time() = now;
    job.set_cancel_requested(false);
    if (state != v1::SUCCEEDED) job.set_error(reason);
  }
  v1::JobEvent e = new_event(next);
  auto* sc = e.mutable_state_change();
  sc->set_state(state);
  sc->set_reason(reason);
  if (state == v1::RUNNING) {
    sc->set_pool_id(job.pool_id());
    sc->set_attempt(job.attempts());
  }
  commit(r, std::move(next), {e});
  if (options_.log) options_.log(r.job.job_id() + " " + state_name(state) + ": " + reason);
  if (is_final(state) && options_.on_final) options_.on_final(r.job);
}

namespace {

// "attempt 2 of 3"; with attempts a restart cut short, which count:
// "attempt 5 (2 of 3 counted, 3 cut short by coordinator restarts)".
std::string attempt_text(const v1::Job& job, int max_attempts) {
  const int counted = job.attempts() - job.uncounted_attempts();
  if (job.uncounted_attempts() == 0)
    return "attempt " + std::to_string(job.attempts()) + " of " + std::to_string(max_attempts);
  return "attempt " + std::to_string(job.attempts()) + " (" + std::to_string(counted) + " of " +
         std::to_string(max_attempts) + " counted, " + std::to_string(job.uncounted_attempts()) +
         " cut short by coordinator restarts)";
}

}  // namespace

void JobManager::lose_job(Record& r, const std::string& reason, bool uncounted) {
  if (r.job.cancel_requested()) {
    transition(r, v1::CANCELLED, "cancelled; " + reason);
  } else if (uncounted) {
    transition(r, v1::QUEUED,
               reason + "; requeued, attempt " + std::to_string(r.job.attempts()) +
                   " not counted against the limit of " + std::to_string(options_.max_attempts) +
                   " (cut short by the restart)",
               [](v1::Job& job) { job.set_uncounted_attempts(job.uncounted_attempts() + 1); });
  } else if (r.job.attempts() - r.job.uncounted_attempts() >= options_.max_attempts) {
    transition(r, v1::FAILED, reason + " during " + attempt_text(r.job, options_.max_attempts) + "; giving up");
  } else {
    transition(r, v1::QUEUED, reason + "; requeued after " + attempt_text(r.job, options_.max_attempts));
  }
}

// ---------------------------------------------------------------- data sets

namespace {

// The files of the job's data set in the pool's declaration, each the one
// resolve_data_files would read there (a standard file's .gz name before the raw
// one); nullopt when the pool lacks one.
std::optional<std::vector<v1::DataFile>> held_files(const PoolInfo& pool, const v1::JobSpec& spec) {
  std::vector<v1::DataFile> out;
  for (const NeededFile& f : needed_data_files(spec.dataset(), !spec.training().skip_test())) {
    const v1::DataFile* found = nullptr;
    for (const auto& c : f.candidates) {
      auto it = pool.files.find(c);
      if (it != pool.files.end()) {
        found = &it->second;
        break;
      }
    }
    if (!found) return std::nullopt;
    out.push_back(*found);
  }
  return out;
}

std::string short_hash(const std::string& sha256) { return sha256.substr(0, 12); }

// The files the job's first attempt trained on (Job.data_files) that the pool holds
// otherwise (another digest, or not at all): "fashion-mnist/train-images-idx3-ubyte.gz
// (sha256 1c1d0b3e6e11... here, 3aede38d61fe... on pool-1.1-...)"; empty when it holds them all alike.
std::string other_files(const PoolInfo& pool, const v1::Job& job) {
  for (const auto& want : job.data_files()) {
    auto it = pool.files.find(want.path());
    if (it == pool.files.end()) return want.path() + " (missing on " + pool.pool_id + ")";
    if (it->second.sha256() != want.sha256() || it->second.size() != want.size())
      return want.path() + " (sha256 " + short_hash(want.sha256()) + "... trained on, " +
             short_hash(it->second.sha256()) + "... on " + pool.pool_id + ")";
  }
  return "";
}

// The files two pools both declare with different digests: "FILE: sha256 A on pool a
// (host) vs B on pool b (host)" for the first, and how many more; empty when none differ.
std::string differing_files(const PoolInfo& a, const PoolInfo& b) {
  std::string first;
  int more = 0;
  for (const auto& [path, fa] : a.files) {
    auto it = b.files.find(path);
    if (it == b.files.end() || it->second.sha256() == fa.sha256()) continue;
    if (!first.empty()) {
      ++more;
      continue;
    }
    first = path + ": sha256 " + fa.sha256() + " on " + a.pool_id + " (" + a.host + ") vs " + it->second.sha256() +
            " on " + b.pool_id + " (" + b.host + ")";
  }
  if (more > 0) first += " and " + std::to_string(more) + " more file" + (more == 1 ? "" : "s");
  return first;
}

std::string quoted(const std::string& s) { return "\"" + escape_control(s, true) + "\""; }

}  // namespace

void JobManager::check_data(const v1::JobSpec& spec) const {
  const auto needed = needed_data_files(spec.dataset(), !spec.training().skip_test());
  bool declaring = false;
  std::set<std::string> available;
  for (const auto& [id, pool] : pools_) {
    if (!pool.declared) continue;
    declaring = true;
    if (held_files(pool, spec)) return;
    available.insert(pool.data_sets.begin(), pool.data_sets.end());
  }
  if (options_.local_data) {
    try {
      resolve_data_files(spec.dataset(), options_.data_root, !spec.training().skip_test());
      return;
    } catch (const UserError&) {
      if (!declaring) throw;  // as without pools that declare: what is missing where
    }
    for (const auto& set : scan_data_sets(options_.data_root))
      if (set.name != kTopLevelDataSet) available.insert(set.name);
  } else if (!declaring) {
    return;  // no pool has said what it holds yet: the job waits for one
  }
  std::string list;
  for (const auto& n : available) list += (list.empty() ? "" : ", ") + escape_control(n, true);
  if (list.empty()) list = "none";
  const std::string& name = spec.dataset().name();
  if (!name.empty() && !available.count(name))
    throw user_error("dataset.name", "no worker pool holds data set " + quoted(name) + "; available: " + list);
  // The data set is there, or the files are given by path: name the first file no pool holds.
  for (const auto& f : needed) {
    bool held = false;
    for (const auto& [id, pool] : pools_)
      for (const auto& c : f.candidates) held = held || pool.files.count(c) > 0;
    if (!held)
      throw user_error(f.field, "no worker pool holds the file " + quoted(f.candidates.front()) +
                                    "; data sets available: " + list);
  }
  throw user_error(name.empty() ? "dataset.trainImages" : "dataset.name",
                   "no worker pool holds all the files of data set " + quoted(data_set_label(spec.dataset())) +
                       " (each is held by some pool, but no pool holds every one); available: " + list);
}

// ---------------------------------------------------------------- clients

void JobManager::check_submittable(v1::JobSpec* spec, const Caller& who) const {
  try {
    apply_defaults(spec);
    // Slurm starts a batch job of exactly resources.ranks tasks: one unless asked.
    if (options_.slurm && !spec->resources().has_ranks()) spec->mutable_resources()->set_ranks(1);
    validate_job_spec(*spec);
    check_data(*spec);
  } catch (const UserError& e) {
    throw invalid_argument(std::string("spec.") + e.what());
  }
  check_init_from(spec, who);
  // A job that names its ranks waits for a pool of that size (validation checked
  // that they divide the batch); Slurm makes one for it.
  if (spec->resources().has_ranks()) return;
  std::set<int> sizes(options_.expected_pool_ranks.begin(), options_.expected_pool_ranks.end());
  for (const auto& [id, pool] : pools_) sizes.insert(pool.ranks);
  if (sizes.empty()) return;  // no pool known yet: the queue waits for one that fits
  const int batch = spec->training().batch_size();
  for (int n : sizes)
    if (n > 0 && batch % n == 0) return;
  std::string list;
  for (int n : sizes) list += (list.empty() ? "" : ", ") + std::to_string(n);
  throw invalid_argument("spec.training.batchSize: " + std::to_string(batch) +
                         " is not divisible by the ranks of any worker pool (" + list + ")");
}

namespace {

// A job spec is a few hundred bytes; the largest a valid one can be (1,000 layers,
// long names) is far below this. A pool receives a job in one message of at most
// 4 MiB, with room to spare under this bound.
constexpr size_t kMaxSpecBytes = 256 << 10;

// Fields this coordinator does not know are dropped where requests come in: kept,
// they would be stored, copied into every point of a sweep and sent to pools.
template <typename Message>
void drop_unknown_fields(Message* m, const char* what) {
  m->DiscardUnknownFields();
  if (m->ByteSizeLong() > kMaxSpecBytes)
    throw invalid_argument(std::string(what) + ": " + std::to_string(m->ByteSizeLong()) + " bytes, more than the " +
                           std::to_string(kMaxSpecBytes) + " one may have");
}

}  // namespace

v1::Job JobManager::submit(v1::JobSpec spec, const Caller& who) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) throw unavailable("the coordinator is shutting down");
  drop_unknown_fields(&spec, "spec");
  check_submittable(&spec, who);
  check_queue_limit(who, 1);
  if (!degraded_.empty()) throw unavailable(degraded_);
  return shown(add_job(std::move(spec), who.name));
}

JobManager::Record JobManager::new_queued(int64_t number, v1::JobSpec spec, const std::string& owner,
                                          const std::string& sweep_id, const std::string& point,
                                          std::vector<v1::JobEvent>* events) {
  Record r;
  r.number = number;
  r.job.set_job_id(job_id_for(number));
  r.job.set_owner(owner);
  *r.job.mutable_spec() = std::move(spec);
  *r.job.mutable_create_time() = TimeUtil::GetCurrentTime();
  r.job.set_sweep_id(sweep_id);
  r.job.set_sweep_point(point);
  r.job.set_state(v1::QUEUED);
  v1::JobEvent e = new_event(r);
  e.mutable_state_change()->set_state(v1::QUEUED);
  e.mutable_state_change()->set_reason("submitted");
  events->push_back(std::move(e));
  return r;
}

JobManager::Record& JobManager::insert(Record r) {
  const std::string id = r.job.job_id();
  by_number_[r.number] = id;
  queue_.insert(r.number);
  next_number_ = std::max(next_number_, r.number + 1);
  if (options_.log) options_.log(id + " QUEUED: submitted");
  Record& stored = jobs_[id] = std::move(r);
  queue_changed_.notify_all();
  return stored;
}

JobManager::Record& JobManager::add_job(v1::JobSpec spec, const std::string& owner) {
  std::vector<v1::JobEvent> events;
  Record r = new_queued(next_number_, std::move(spec), owner, "", "", &events);
  write([&] { store_.save(r.number, r.job, events); });  // written before it exists for anyone
  return insert(std::move(r));
}

v1::SweepStatus JobManager::submit_sweep(v1::SweepSpec spec, const Caller& who) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) throw unavailable("the coordinator is shutting down");
  drop_unknown_fields(&spec, "sweep");
  std::vector<SweepPoint> points;
  try {
    points = expand_sweep(spec, options_.max_sweep_points);
  } catch (const UserError& e) {
    throw invalid_argument(std::string("sweep.") + e.what());
  }
  for (auto& p : points) {  // every point must be runnable before any is queued
    try {
      check_submittable(&p.spec, who);
    } catch (const ServiceError& e) {
      throw invalid_argument("sweep: grid point " + p.label + ": " + e.what());
    }
  }
  check_queue_limit(who, points.size());
  if (!degraded_.empty()) throw unavailable(degraded_);
  v1::Sweep sweep;
  const int64_t number = next_sweep_;
  sweep.set_sweep_id(sweep_id_for(number));
  sweep.set_owner(who.name);
  *sweep.mutable_spec() = spec;
  *sweep.mutable_create_time() = TimeUtil::GetCurrentTime();
  // The sweep and all its jobs in one transaction: a crash leaves all or nothing.
  std::vector<Store::NewJob> jobs;
  for (auto& p : points) {
    std::vector<v1::JobEvent> events;
    Record r = new_queued(next_number_ + static_cast<int64_t>(jobs.size()), std::move(p.spec), who.name,
                          sweep.sweep_id(), p.label, &events);
    sweep.add_job_ids(r.job.job_id());
    jobs.push_back({r.number, r.job, std::move(events)});
  }
  write([&] { store_.save_sweep_with_jobs(number, sweep, jobs); });  // throws: nothing changed
  ++next_sweep_;
  for (auto& j : jobs) insert(Record{j.number, std::move(j.job), 1});
  sweeps_[sweep.sweep_id()] = sweep;
  return sweep_status(sweep.sweep_id());
}

v1::SweepStatus JobManager::sweep_status(const std::string& sweep_id) const {
  auto it = sweeps_.find(sweep_id);
  if (it == sweeps_.end()) throw not_found("sweep " + echoed(sweep_id) + " does not exist");
  v1::SweepStatus status;
  *status.mutable_sweep() = it->second;
  for (const auto& id : it->second.job_ids())
    if (jobs_.count(id)) *status.add_jobs() = shown(find(id));  // deleted jobs drop out
  return status;
}

v1::SweepStatus JobManager::get_sweep(const std::string& sweep_id, const Caller& who) const {
  std::lock_guard<std::mutex> lock(mu_);
  find_sweep(sweep_id, who);
  return sweep_status(sweep_id);
}

int64_t JobManager::sweep_version(const v1::Sweep& sweep) const {
  int64_t version = 0;
  for (const auto& id : sweep.job_ids()) {
    if (!jobs_.count(id)) continue;  // deleted
    const Record& r = find(id);
    version += r.last_seq + (r.job.cancel_requested() ? 1 : 0);
  }
  return version;
}

std::optional<v1::SweepStatus> JobManager::wait_sweep(const std::string& sweep_id, int64_t* version,
                                                      SteadyClock::time_point deadline, const Caller& who) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    const int64_t now = sweep_version(find_sweep(sweep_id, who));
    if (now > *version) {
      *version = now;
      return sweep_status(sweep_id);
    }
    if (shutdown_) throw unavailable("the coordinator is shutting down");
    if (!wait_for(lock, sweep_id, deadline)) return std::nullopt;
  }
}

v1::SweepStatus JobManager::cancel_sweep(const std::string& sweep_id, const Caller& who) {
  std::lock_guard<std::mutex> lock(mu_);
  find_sweep(sweep_id, who);
  const v1::SweepStatus before = sweep_status(sweep_id);
  for (const auto& job : before.jobs())
    if (!is_final(job.state())) cancel_locked(find(job.job_id()));
  return sweep_status(sweep_id);
}

v1::Job JobManager::get(const std::string& job_id, const Caller& who) const {
  std::lock_guard<std::mutex> lock(mu_);
  return shown(find(job_id, who));
}

JobPage JobManager::list(int page_size, const std::string& page_token, v1::JobState state,
                         const std::string& sweep_id, const Caller& who) const {
  if (page_size < 0 || page_size > kMaxPageSize)
    throw invalid_argument("page_size: must be between 0 and " + std::to_string(kMaxPageSize) + ", got " +
                           std::to_string(page_size));
  if (!v1::JobState_IsValid(state)) throw invalid_argument("state: unknown job state " + std::to_string(state));
  if (page_size == 0) page_size = kDefaultPageSize;
  int64_t below = INT64_MAX;
  if (!page_token.empty()) {
    char* end = nullptr;
    below = std::strtoll(page_token.c_str(), &end, 10);
    if (*end || below <= 0) throw invalid_argument("page_token: not a token from ListJobs: " + echoed(page_token));
  }
  std::lock_guard<std::mutex> lock(mu_);
  JobPage page;
  for (auto it = by_number_.lower_bound(below); it != by_number_.begin();) {
    --it;
    const Record& r = jobs_.at(it->second);
    const v1::Job& job = r.job;
    if (state != v1::JOB_STATE_UNSPECIFIED && job.state() != state) continue;
    if (!sweep_id.empty() && job.sweep_id() != sweep_id) continue;
    if (!who.may_see(job.owner())) continue;
    if (static_cast<int>(page.jobs.size()) == page_size) {
      page.next_page_token = std::to_string(it->first + 1);
      break;
    }
    page.jobs.push_back(shown(r));
  }
  return page;
}

v1::Job JobManager::cancel(const std::string& job_id, const Caller& who) {
  std::lock_guard<std::mutex> lock(mu_);
  Record& r = find(job_id, who);
  if (r.job.state() != v1::CANCELLED && is_final(r.job.state()))
    throw failed_precondition("job " + echoed(job_id) + " has already ended (" + state_name(r.job.state()) + ")");
  cancel_locked(r);
  return r.job;
}

void JobManager::cancel_locked(Record& r) {
  if (r.job.state() == v1::QUEUED) {
    transition(r, v1::CANCELLED, "cancelled before it started");
  } else if (r.job.state() == v1::RUNNING && !r.job.cancel_requested()) {
    Record next = r;
    next.job.set_cancel_requested(true);
    commit(r, std::move(next), {});
    cancel_asked_[r.job.job_id()] = options_.now();
  }
}

std::vector<v1::JobEvent> JobManager::metrics(const std::string& job_id, const Caller& who) const {
  std::lock_guard<std::mutex> lock(mu_);
  find(job_id, who);
  return store_.events(job_id, 0, true);
}

MetricsPage JobManager::metrics_page(const std::string& job_id, int attempt, bool all_attempts, int page_size,
                                     const std::string& page_token, const Caller& who) const {
  if (page_size < 0 || page_size > kMaxMetricsPage)
    throw invalid_argument("page_size: must be between 0 and " + std::to_string(kMaxMetricsPage) + ", got " +
                           std::to_string(page_size));
  if (attempt < 0) throw invalid_argument("attempt: must not be negative, got " + std::to_string(attempt));
  if (page_size == 0) page_size = kDefaultMetricsPage;
  std::lock_guard<std::mutex> lock(mu_);
  MetricsPage page;
  page.job = find(job_id, who).job;
  int64_t after = 0;
  if (!page_token.empty()) {
    // "<attempt>.<seq>" or "all.<seq>": the page ended at seq.
    const size_t dot = page_token.find('.');
    const std::string which = page_token.substr(0, dot);
    char* end = nullptr;
    after = dot == std::string::npos ? -1 : std::strtoll(page_token.c_str() + dot + 1, &end, 10);
    long token_attempt = 0;
    if (which == "all") {
      all_attempts = true;
    } else {
      char* attempt_end = nullptr;
      token_attempt = std::strtol(which.c_str(), &attempt_end, 10);
      if (which.empty() || *attempt_end || token_attempt < 1) after = -1;
      all_attempts = false;
      attempt = static_cast<int>(token_attempt);
    }
    if (after <= 0 || *end) throw invalid_argument("page_token: not a token from GetMetrics: " + echoed(page_token));
  } else if (!all_attempts) {
    if (attempt > page.job.attempts())
      throw invalid_argument("attempt: job " + job_id + " has had " + std::to_string(page.job.attempts()) +
                             " attempt" + (page.job.attempts() == 1 ? "" : "s") + ", not " + std::to_string(attempt));
    if (attempt == 0) attempt = page.job.attempts();
  }
  page.attempt = all_attempts ? 0 : attempt;
  if (!all_attempts && attempt == 0) return page;  // never started: no training yet
  bool more = false;
  page.events = store_.training_events(job_id, all_attempts ? Store::kAllAttempts : attempt, after, page_size,
                                       kMaxMetricsPageBytes, &more);
  if (more)
    page.next_page_token = (all_attempts ? std::string("all") : std::to_string(attempt)) + "." +
                           std::to_string(page.events.back().seq());
  return page;
}

std::vector<v1::JobEvent> JobManager::wait_events(const std::string& job_id, int64_t after_seq,
                                                  SteadyClock::time_point deadline, bool* ended,
                                                  const Caller& who) {
  std::unique_lock<std::mutex> lock(mu_);
  *ended = false;
  for (;;) {
    const Record& r = find(job_id, who);
    if (r.last_seq > after_seq) return store_.events(job_id, after_seq, false, kWatchBatch);
    if (is_final(r.job.state())) {
      *ended = true;
      return {};
    }
    if (shutdown_) throw unavailable("the coordinator is shutting down");
    if (!wait_for(lock, job_id, deadline)) return {};
  }
}

LogPage JobManager::logs(const std::string& job_id, int attempt, int64_t after_seq, SteadyClock::time_point deadline,
                         const Caller& who) {
  if (attempt < 0) throw invalid_argument("attempt: must not be negative, got " + std::to_string(attempt));
  if (after_seq < 0) throw invalid_argument("after_seq: must not be negative, got " + std::to_string(after_seq));
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    const Record& r = find(job_id, who);
    const int attempts = r.job.attempts();
    if (attempt > attempts)
      throw not_found("job " + job_id + " has had " + std::to_string(attempts) + " attempt" +
                      (attempts == 1 ? "" : "s") + ", not " + std::to_string(attempt));
    LogPage page;
    page.attempt = attempt > 0 ? attempt : attempts;
    page.latest_attempt = attempts;
    if (page.attempt > 0) {
      page.lines = store_.logs(job_id, page.attempt, after_seq, kLogBatch);
      if (after_seq == 0) page.dropped = store_.dropped_logs(job_id, page.attempt);
    }
    // An earlier attempt is over; the latest once the job is final (a requeued job's
    // next attempt has not started: its reader waits for it, as `attempt` 0 follows on).
    const bool over = page.attempt < attempts || is_final(r.job.state());
    page.ended = over && static_cast<int>(page.lines.size()) < kLogBatch;
    if (!page.lines.empty() || over || SteadyClock::now() >= deadline) return page;
    if (shutdown_) throw unavailable("the coordinator is shutting down");
    if (!wait_for(lock, log_key(job_id), deadline)) deadline = {};  // look once more, then return
  }
}

void JobManager::append_logs(Record& r, const std::vector<v1::LogLine>& in) {
  const std::string& id = r.job.job_id();
  if (r.log_seq < 0) r.log_seq = store_.last_log_seq(id);
  const int attempt = r.job.attempts();
  std::vector<v1::LogLine> lines;
  lines.reserve(std::min(in.size(), kMaxLogLinesPerReport));
  int64_t seq = r.log_seq;
  for (const auto& l : in) {
    if (lines.size() == kMaxLogLinesPerReport) break;
    v1::LogLine& k = lines.emplace_back();
    k.set_seq(++seq);
    k.set_attempt(attempt);
    k.set_rank(std::max(0, l.rank()));
    k.set_time_unix_ms(l.time_unix_ms());
    // A pool's words reach terminals: one line, no escape sequences, bounded.
    k.set_text(escape_control(std::string_view(l.text()).substr(0, kMaxLogLineBytes)));
  }
  write([&] { store_.append_logs(id, attempt, lines, options_.max_log_lines); });
  r.log_seq = seq;
  notify(log_key(id));
}

// ---------------------------------------------------------------- pools

v1::RegisterPoolResponse JobManager::register_pool(const v1::RegisterPoolRequest& request, const Caller& who) {
  if (request.ranks() < 1 || request.ranks() > 65536)
    throw invalid_argument("ranks: must be between 1 and 65536, got " + std::to_string(request.ranks()));
  std::lock_guard<std::mutex> lock(mu_);
  PoolInfo pool;
  // Readable in its first part; unguessable in its last (64 random bits).
  pool.pool_id = "pool-" + std::to_string(boot_) + "." + std::to_string(next_pool_++) + "-" + random_hex(8);
  pool.owner = who.name;
  pool.host = escape_control(request.host().substr(0, 256));
  pool.ranks = request.ranks();
  pool.threads_per_rank = request.threads_per_rank();
  if (!request.job_id().empty()) {
    auto it = jobs_.find(request.job_id());
    if (it == jobs_.end() || !who.may_see(it->second.job.owner()))
      throw invalid_argument("job_id: no job " + echoed(request.job_id()) + " for this pool to serve");
    if (is_final(it->second.job.state()))
      throw failed_precondition("job_id: job " + echoed(request.job_id()) + " has already ended (" +
                                state_name(it->second.job.state()) + ")");
    pool.only_job = request.job_id();
  }
  if (request.has_capabilities()) {
    const v1::PoolCapabilities& caps = request.capabilities();
    pool.declared = true;
    pool.isa = escape_control(caps.isa().substr(0, 64), true);
    if (pool.isa.empty()) pool.isa = "unknown";
    pool.bf16 = caps.bf16();
    for (int i = 0; i < caps.data_sets_size(); ++i) {
      const auto& d = caps.data_sets(i);
      const std::string at = "capabilities.dataSets[" + std::to_string(i) + "]";
      if (d.name().empty() || d.name().size() > 256)
        throw invalid_argument(at + ".name: a directory name of 1 to 256 bytes, got " + echoed(d.name()));
      if (d.name() != kTopLevelDataSet) pool.data_sets.push_back(d.name());  // files named by path only
      for (int j = 0; j < d.files_size(); ++j) {
        const auto& f = d.files(j);
        const std::string fat = at + ".files[" + std::to_string(j) + "]";
        if (f.path().empty() || f.path().size() > 4096)
          throw invalid_argument(fat + ".path: a path of 1 to 4096 bytes, got " + echoed(f.path()));
        if (f.sha256().size() != 64 || f.sha256().find_first_not_of("0123456789abcdef") != std::string::npos)
          throw invalid_argument(fat + ".sha256: 64 lowercase hex digits, got " + echoed(f.sha256()));
        pool.files[f.path()] = f;
      }
    }
    std::sort(pool.data_sets.begin(), pool.data_sets.end());
    pool.data_sets.erase(std::unique(pool.data_sets.begin(), pool.data_sets.end()), pool.data_sets.end());
  }
  pool.last_seen = options_.now();
  // Two pools with different files under one name: said now, and never mixed within a
  // job (a job keeps the digests of its first attempt: Job.data_files).
  if (pool.declared && options_.log)
    for (const auto& [id, other] : pools_)
      if (other.declared) {
        const std::string diff = differing_files(other, pool);
        if (!diff.empty())
          options_.log("warning: pools " + other.pool_id + " and " + pool.pool_id +
                       " hold different files under the same name: " + escape_control(diff, true) +
                       "; a job runs only on pools with the files of its first attempt");
      }
  pools_[pool.pool_id] = pool;
  v1::RegisterPoolResponse response;
  response.set_pool_id(pool.pool_id);
  response.set_heartbeat_interval_ms(static_cast<int32_t>(options_.heartbeat_interval.count()));
  return response;
}

JobManager::Misfit JobManager::misfit(const PoolInfo& pool, const Record& r) const {
  // A one-job pool serves its job only; a job submitted to Slurm goes only to the pool
  // its batch job started (another pool taking it would leave that batch job idle).
  if (!pool.only_job.empty()) {
    if (pool.only_job != r.job.job_id()) return Misfit::kNotItsJob;
  } else if (!r.job.slurm_job_id().empty()) {
    return Misfit::kNotItsJob;
  }
  const auto& resources = r.job.spec().resources();
  if (resources.has_ranks() ? pool.ranks != resources.ranks() : r.job.spec().training().batch_size() % pool.ranks != 0)
    return Misfit::kRanks;
  // A pool that declared nothing is taken at its word as before; a one-job pool is where
  // Slurm started the job, on the nodes' shared data (checked under data_root at submit).
  if (!pool.declared || !pool.only_job.empty()) return Misfit::kFits;
  if (!held_files(pool, r.job.spec())) return Misfit::kNoData;
  if (!other_files(pool, r.job).empty()) return Misfit::kOtherFiles;
  if (r.job.spec().training().precision() == v1::TrainingSpec::BF16 && !pool.bf16) return Misfit::kNoBf16;
  return Misfit::kFits;
}

namespace {

std::string count_of(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

std::string JobManager::waiting_reason(const Record& r, int64_t ahead) const {
  if (!degraded_.empty()) return degraded_;
  auto status = slurm_status_.find(r.job.job_id());
  if (status != slurm_status_.end()) return status->second;
  if (!r.job.slurm_job_id().empty()) return "submitted to Slurm as job " + r.job.slurm_job_id();
  if (options_.slurm)
    return "waiting to be submitted to Slurm" +
           (ahead == 0 ? std::string() : " (" + count_of(ahead, "job is", "jobs are") + " ahead of it)");
  if (pools_.empty()) {
    if (!options_.expected_pool_ranks.empty())
      return "waiting for a worker pool: none has registered yet (the coordinator's own pool of " +
             count_of(options_.expected_pool_ranks.front(), "rank", "ranks") + " is starting)";
    return "waiting for a worker pool: none is registered (start one: mpirun -np N prelude-worker serve "
           "--coordinator ADDR)";
  }
  int fitting = 0, idle = 0;
  std::set<int> sizes;
  std::set<Misfit> misfits;
  for (const auto& [id, pool] : pools_) {
    sizes.insert(pool.ranks);
    const Misfit m = misfit(pool, r);
    misfits.insert(m);
    if (m != Misfit::kFits) continue;
    ++fitting;
    if (pool.job_id.empty()) ++idle;
  }
  if (fitting == 0 && misfits.count(Misfit::kNoBf16)) {
    std::set<std::string> isas;
    for (const auto& [id, pool] : pools_) isas.insert(pool.declared ? pool.isa : "unknown");
    std::string list;
    for (const auto& isa : isas) list += (list.empty() ? "" : ", ") + isa;
    return "no pool whose CPU runs BF16 (registered pools: " + list + "); it waits for one";
  }
  if (fitting == 0 && (misfits.count(Misfit::kOtherFiles) || misfits.count(Misfit::kNoData)))
    return data_waiting_reason(r, misfits.count(Misfit::kOtherFiles) > 0);
  if (fitting == 0) {
    std::string list;
    for (int n : sizes) list += (list.empty() ? "" : ", ") + std::to_string(n);
    const auto& resources = r.job.spec().resources();
    if (resources.has_ranks())
      return "no pool with " + count_of(resources.ranks(), "rank", "ranks") + " (registered pools have " + list +
             "); it waits for one";
    return "no registered pool can run it: its batch of " + std::to_string(r.job.spec().training().batch_size()) +
           " is not divisible by their ranks (" + list + "); it waits for a pool that fits";
  }
  const std::string behind = ahead == 0 ? "it is next" : count_of(ahead, "job is", "jobs are") + " ahead of it";
  if (idle > 0) return ahead == 0 ? "an idle pool is taking it" : behind + "; an idle pool takes them in turn";
  return "every pool that can run it is busy (" + count_of(fitting, "pool", "pools") + "); " + behind;
}

std::string JobManager::data_waiting_reason(const Record& r, bool other) const {
  const std::string label = escape_control(data_set_label(r.job.spec().dataset()), true);
  if (other) {
    // Pools hold the data set, but not the files its first attempt trained on.
    for (const auto& [id, pool] : pools_) {
      if (misfit(pool, r) != Misfit::kOtherFiles) continue;
      return "no pool with the files of data set " + label + " its first attempt trained on (" +
             escape_control(other_files(pool, r.job), true) + "); it waits for one";
    }
  }
  std::set<std::string> held;
  for (const auto& [id, pool] : pools_) held.insert(pool.data_sets.begin(), pool.data_sets.end());
  std::string list;
  for (const auto& n : held) list += (list.empty() ? "" : ", ") + escape_control(n, true);
  return "no pool with its data set " + label + " (registered pools hold " + (list.empty() ? "none" : list) +
         "); it waits for one";
}

v1::Job JobManager::shown(const Record& r) const {
  v1::Job job = r.job;
  if (job.state() != v1::QUEUED) return job;
  const int64_t ahead = std::distance(queue_.begin(), queue_.find(r.number));
  job.set_queue_position(static_cast<int32_t>(ahead + 1));
  job.set_waiting_reason(waiting_reason(r, ahead));
  return job;
}

std::optional<v1::Job> JobManager::acquire(const std::string& pool_id, std::chrono::milliseconds wait,
                                           const std::function<bool()>& caller_gone, const Caller& who,
                                           std::string* lease) {
  wait = std::clamp(wait, std::chrono::milliseconds(0), options_.max_acquire_wait);
  const auto deadline = SteadyClock::now() + wait;
  std::unique_lock<std::mutex> lock(mu_);
  {
    PoolInfo& pool = find_pool(pool_id, who);
    pool.last_seen = options_.now();
    if (!pool.job_id.empty()) {  // it asks for work: whatever it had is over
      auto it = jobs_.find(pool.job_id);
      if (it != jobs_.end() && it->second.job.state() == v1::RUNNING)
        lose_job(it->second, "pool " + pool_id + " asked for a new job without finishing this one");
      pool.job_id.clear();  // not before: if the write fails, the job stays the pool's for the next call
      pool.lease.clear();
    }
    ++pool.waiting;
  }
  // However this ends (a job, the deadline, an error), the pool is no longer waiting.
  struct Done {
    JobManager* m;
    const std::string& id;
    ~Done() {
      auto pit = m->pools_.find(id);
      if (pit == m->pools_.end()) return;
      --pit->second.waiting;
      pit->second.last_seen = m->options_.now();
    }
  } done{this, pool_id};
  std::optional<v1::Job> taken;
  for (;;) {
    // A pool whose call has gone (deadline, death, scale-down) must not be given a job.
    if (caller_gone && caller_gone()) break;
    auto pit = pools_.find(pool_id);
    if (pit == pools_.end()) break;  // dropped meanwhile
    PoolInfo& pool = pit->second;
    if (!pool.only_job.empty()) {  // its job ended (cancelled, say): nothing will ever come
      auto jit = jobs_.find(pool.only_job);
      if (jit == jobs_.end()) throw failed_precondition("job " + echoed(pool.only_job) + " was deleted");
      if (is_final(jit->second.job.state()))
        throw failed_precondition("job " + echoed(pool.only_job) + " has ended (" +
                                  state_name(jit->second.job.state()) + "): this pool serves only it");
    }
    for (int64_t number : queue_) {
      if (!degraded_.empty()) break;  // no job can start while the store takes no writes: wait for the probe
      Record& r = jobs_.at(by_number_.at(number));
      if (!pool_can_run(pool, r)) continue;
      // The pool and the attempt are part of the change to RUNNING: a failed write
      // leaves the job queued as it was, and the pool without it.
      // The first attempt on a pool that declares its data fixes the job's files: later
      // attempts go only to pools with the same ones (misfit: kOtherFiles).
      std::vector<v1::DataFile> files;
      std::string note;
      if (pool.declared && r.job.data_files().empty()) {
        if (auto held = held_files(pool, r.job.spec())) files = std::move(*held);
        v1::Job fixed = r.job;
        for (const auto& f : files) *fixed.add_data_files() = f;
        for (const auto& [other_id, other] : pools_) {
          if (other_id == pool_id || !other.declared || !held_files(other, r.job.spec())) continue;
          const std::string diff = other_files(other, fixed);
          if (!diff.empty()) {
            note = "; pool " + other_id + " holds other files of data set " +
                   escape_control(data_set_label(r.job.spec().dataset()), true) + " (" + diff +
                   "): later attempts do not go there";
            break;
          }
        }
      }
      transition(r, v1::RUNNING,
                 "started on " + pool_id + " (" + std::to_string(pool.ranks) + " ranks on " + pool.host + ")" + note,
                 [&](v1::Job& job) {
                   job.set_pool_id(pool_id);
                   job.set_ranks(pool.ranks);
                   job.set_attempts(job.attempts() + 1);
                   for (const auto& f : files) *job.add_data_files() = f;
                 });
      pool.job_id = r.job.job_id();
      slurm_status_.erase(pool.job_id);
      pool.lease = random_hex(16);
      if (lease) *lease = pool.lease;
      taken = r.job;
      break;
    }
    if (taken || shutdown_ || SteadyClock::now() >= deadline) break;
    // Wake at least every 100 ms to notice a caller that has gone.
    // Woken by a job entering the queue only: not by every report of every job.
    if (queue_changed_.wait_until(lock, std::min(deadline, SteadyClock::now() + std::chrono::milliseconds(100))) ==
            std::cv_status::no_timeout &&
        options_.on_wakeup)
      options_.on_wakeup(pool_id);
  }
  return taken;
}

bool JobManager::report(const PoolCall& call, const std::string& job_id, const std::vector<v1::TrainingEvent>& events,
                        const std::vector<v1::LogLine>& log) {
  std::lock_guard<std::mutex> lock(mu_);
  PoolInfo& pool = find_pool(call.pool_id, call.who);
  pool.last_seen = options_.now();
  if (job_id.empty()) return false;
  if (pool.job_id != job_id) return true;  // not (or no longer) this pool's job
  find_holder(call, job_id);
  Record& r = find(job_id);
  // Lines first: when the events cannot be stored, the pool sends both again, and a
  // line told twice does less harm than an event counted twice.
  if (!log.empty()) append_logs(r, log);
  if (!events.empty()) {
    Record next = r;
    std::vector<v1::JobEvent> out;
    out.reserve(events.size());
    for (const auto& t : events) {
      v1::JobEvent e = new_event(next);
      *e.mutable_training() = t;
      e.mutable_training()->DiscardUnknownFields();
      // Layer and class names, the run's name: shown on terminals, never a way to drive them.
      escape_strings(e.mutable_training(), false);
      const v1::TrainingEvent& kept = e.training();
      const EventKind kind = event_kind(kept);
      if (kind == v1::TrainingEvent::STEP) *next.job.mutable_progress() = kept;
      if (kind == v1::TrainingEvent::EPOCH || kind == v1::TrainingEvent::SUMMARY)
        *next.job.mutable_latest_metrics() = kept;
      out.push_back(std::move(e));
    }
    commit(r, std::move(next), out);
  }
  return r.job.cancel_requested();
}

void JobManager::finish(const PoolCall& call, const std::string& job_id, v1::JobState state,
                        const std::string& error) {
  if (state != v1::SUCCEEDED && state != v1::FAILED && state != v1::CANCELLED)
    throw invalid_argument("state: must be SUCCEEDED, FAILED or CANCELLED, got " + state_name(state));
  std::lock_guard<std::mutex> lock(mu_);
  find_pool(call.pool_id, call.who).last_seen = options_.now();
  PoolInfo& pool = find_holder(call, job_id);
  Record& r = find(job_id);
  // A pool's message (its lines are meaningful) reaches terminals: no escape sequences.
  std::string reason = escape_control(error, true);
  if (state == v1::SUCCEEDED) reason = "done";
  if (state == v1::CANCELLED) reason = "cancelled" + (reason.empty() ? "" : "; " + reason);
  if (state == v1::FAILED && reason.empty()) reason = "failed without a reason";
  transition(r, state, reason);
  pool.job_id.clear();  // not before: if the write fails, the job stays running on the pool
  pool.lease.clear();
}

void JobManager::reap_lost_pools() {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = options_.now();
  for (auto it = pools_.begin(); it != pools_.end();) {
    PoolInfo& pool = it->second;
    if (pool.waiting > 0 || now - pool.last_seen <= options_.heartbeat_timeout) {
      ++it;
      continue;
    }
    const std::string job_id = pool.job_id, pool_id = pool.pool_id;
    it = pools_.erase(it);
    auto jit = jobs_.find(job_id);
    // A requeue the disk refuses waits in lost_: the job is not left RUNNING on a pool that is gone.
    if (jit != jobs_.end() && jit->second.job.state() == v1::RUNNING)
      lose_or_retry(jit->second, "pool " + pool_id + " stopped responding (no heartbeat for " +
                                     seconds_text(options_.heartbeat_timeout) + ")");
  }
  expire_cancels();
}

void JobManager::pool_hung(const PoolCall& call, const std::string& job_id, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  find_holder(call, job_id);
  Record& r = find(job_id);
  lose_job(r, "pool " + call.pool_id + " hung (" +
                  (reason.empty() ? std::string("no reason given") : escape_control(reason, true)) + ")");
  pools_.erase(call.pool_id);  // not before: if the write fails, the pool keeps its job for the next call
}

void JobManager::expire_cancels() {
  const auto now = options_.now();
  for (auto it = cancel_asked_.begin(); it != cancel_asked_.end();) {
    auto jit = jobs_.find(it->first);
    if (jit == jobs_.end() || jit->second.job.state() != v1::RUNNING || !jit->second.job.cancel_requested()) {
      it = cancel_asked_.erase(it);  // ended (or requeued and started afresh) meanwhile
      continue;
    }
    if (now - it->second <= options_.cancel_grace) {
      ++it;
      continue;
    }
    Record& r = jit->second;
    const std::string pool_id = r.job.pool_id();
    try {
      transition(r, v1::CANCELLED,
                 "cancelled; pool " + pool_id + " did not stop the job within " +
                     seconds_text(options_.cancel_grace) + " and is dropped");
    } catch (const ServiceError&) {
      ++it;  // not written: nothing changed; tried again on the next round
      continue;
    }
    it = cancel_asked_.erase(it);
    auto pit = pools_.find(pool_id);
    if (pit != pools_.end() && pit->second.job_id == r.job.job_id()) pools_.erase(pit);
  }
}

std::vector<PoolInfo> JobManager::pools() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<PoolInfo> out;
  for (const auto& [id, p] : pools_) out.push_back(p);
  return out;
}

ManagerStats JobManager::stats() const {
  ManagerStats s;
  for (int state = v1::JobState_MIN; state <= v1::JobState_MAX; ++state)
    if (state != v1::JOB_STATE_UNSPECIFIED && v1::JobState_IsValid(state)) s.jobs[static_cast<v1::JobState>(state)] = 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, r] : jobs_) {
    ++s.jobs[r.job.state()];
    for (const auto& c : r.job.checkpoints()) s.checkpoint_bytes += c.bytes();
    if (r.job.state() == v1::RUNNING && r.job.has_progress() && r.job.progress().has_images_per_second())
      s.images_per_second.emplace_back(id, r.job.progress().images_per_second());
  }
  s.queue_depth = static_cast<int64_t>(queue_.size());
  for (const auto& [id, p] : pools_) ++(p.job_id.empty() ? s.pools_idle : s.pools_busy);
  return s;
}

// ---------------------------------------------------------------- Slurm

std::vector<v1::Job> JobManager::slurm_unsubmitted(size_t limit) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::Job> out;
  for (int64_t number : queue_) {
    if (out.size() >= limit) break;
    const Record& r = jobs_.at(by_number_.at(number));
    if (r.job.slurm_job_id().empty()) out.push_back(r.job);
  }
  return out;
}

std::vector<v1::Job> JobManager::slurm_attached() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::Job> out;
  for (const auto& [id, r] : jobs_)
    if (!is_final(r.job.state()) && !r.job.slurm_job_id().empty()) out.push_back(r.job);
  return out;
}

bool JobManager::set_slurm_job(const std::string& job_id, const std::string& slurm_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.job.state() != v1::QUEUED || !it->second.job.slurm_job_id().empty())
    return false;
  Record& r = it->second;
  Record next = r;
  next.job.set_slurm_job_id(slurm_id);
  next.job.set_slurm_submissions(r.job.slurm_submissions() + 1);
  commit(r, std::move(next), {});
  slurm_status_[job_id] = "submitted to Slurm as job " + slurm_id;
  if (options_.log) options_.log(job_id + ": submitted to Slurm as job " + slurm_id);
  return true;
}

void JobManager::set_slurm_status(const std::string& job_id, const std::string& slurm_id, const std::string& status) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.job.slurm_job_id() != slurm_id) return;
  if (it->second.job.state() != v1::QUEUED) {
    slurm_status_.erase(job_id);
    return;
  }
  auto& kept = slurm_status_[job_id];
  if (kept == status) return;
  kept = status;
  notify_job(it->second.job);  // watchers of a queued job see why it waits
}

void JobManager::slurm_job_ended(const std::string& job_id, const std::string& slurm_id, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  Record& r = it->second;
  if (is_final(r.job.state()) || r.job.slurm_job_id() != slurm_id) return;
  const std::string why = "Slurm job " + slurm_id + " ended (" + reason + ")";
  if (r.job.state() == v1::RUNNING) {
    const std::string pool_id = r.job.pool_id();
    lose_job(r, why + " while its pool " + pool_id + " ran the job");
    auto pit = pools_.find(pool_id);
    if (pit != pools_.end() && pit->second.job_id == job_id) pools_.erase(pit);  // its ranks are gone
    if (r.job.state() == v1::QUEUED) {  // requeued: the next submission is a new batch job
      Record next = r;
      next.job.clear_slurm_job_id();
      commit(r, std::move(next), {});
    }
  } else if (r.job.cancel_requested()) {
    transition(r, v1::CANCELLED, "cancelled; " + why);
  } else if (r.job.slurm_submissions() >= options_.max_attempts) {
    transition(r, v1::FAILED,
               why + " before its worker took the job, after " +
                   count_of(r.job.slurm_submissions(), "submission", "submissions") + " to Slurm; giving up");
  } else {
    Record next = r;
    next.job.clear_slurm_job_id();  // the next submission is a new batch job
    v1::JobEvent e = new_event(next);
    e.mutable_state_change()->set_state(v1::QUEUED);
    e.mutable_state_change()->set_reason(why + " before its worker took the job; submitting it again");
    commit(r, std::move(next), {e});
    if (options_.log) options_.log(job_id + " QUEUED: " + e.state_change().reason());
  }
  slurm_status_.erase(job_id);
}

void JobManager::slurm_submit_failed(const std::string& job_id, const std::string& reason, bool permanent) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.job.state() != v1::QUEUED || !it->second.job.slurm_job_id().empty()) return;
  if (permanent) {
    slurm_status_.erase(job_id);
    transition(it->second, v1::FAILED, "Slurm refused the job: " + reason);
    return;
  }
  slurm_status_[job_id] = "Slurm: cannot submit it yet (" + reason + "); retrying";
}

// ---------------------------------------------------------------- checkpoints

void JobManager::check_holds(const PoolCall& call, const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto* self = const_cast<JobManager*>(this);
  self->find_pool(call.pool_id, call.who);
  find(job_id);
  self->find_holder(call, job_id);
}

std::vector<v1::CheckpointInfo> JobManager::add_checkpoint(const PoolCall& call, const std::string& job_id,
                                                           const v1::CheckpointInfo& info) {
  std::lock_guard<std::mutex> lock(mu_);
  find_pool(call.pool_id, call.who).last_seen = options_.now();
  find_holder(call, job_id);
  Record& r = find(job_id);
  Record next = r;
  // The list, oldest first: the new one replaces its namesake, then only the newest
  // keep_checkpoints of the others and the final model stay.
  std::vector<v1::CheckpointInfo> all;
  for (const auto& c : r.job.checkpoints())
    if (c.final() != info.final() || (!c.final() && c.step() != info.step())) all.push_back(c);
  all.push_back(info);
  std::stable_sort(all.begin(), all.end(), [](const v1::CheckpointInfo& a, const v1::CheckpointInfo& b) {
    return a.final() != b.final() ? b.final() : a.step() < b.step();
  });
  int others = 0;
  for (const auto& c : all) others += c.final() ? 0 : 1;
  std::vector<v1::CheckpointInfo> dropped;
  next.job.clear_checkpoints();
  for (const auto& c : all) {
    if (!c.final() && others > options_.keep_checkpoints) {
      --others;
      dropped.push_back(c);
      continue;
    }
    *next.job.add_checkpoints() = c;
  }
  commit(r, std::move(next), {});
  // A replaced namesake's file was overwritten by the new one: not the caller's to remove.
  return dropped;
}

v1::CheckpointInfo JobManager::checkpoint(const std::string& job_id, const std::string& which,
                                          const Caller& who) const {
  std::lock_guard<std::mutex> lock(mu_);
  return find_checkpoint(find(job_id, who).job, which);
}

v1::CheckpointInfo JobManager::find_checkpoint(const v1::Job& job, const std::string& which) {
  const v1::CheckpointInfo* found = nullptr;
  const v1::CheckpointInfo* latest = nullptr;
  const v1::CheckpointInfo* final = nullptr;
  for (const auto& c : job.checkpoints()) {
    if (c.final()) final = &c;
    if (!latest || c.step() > latest->step() || (c.step() == latest->step() && c.final())) latest = &c;
  }
  if (which == "final") {
    found = final;
  } else if (which == "latest") {
    found = latest;
  } else if (which.empty()) {
    found = final ? final : latest;
  } else {
    char* end = nullptr;
    const long long step = std::strtoll(which.c_str(), &end, 10);
    if (*end != '\0' || step < 0)
      throw invalid_argument("checkpoint: 'final', 'latest' or a step number, got " + echoed(which));
    for (const auto& c : job.checkpoints())
      if (c.step() == step && (!found || !c.final())) found = &c;
  }
  if (found) return *found;
  std::string kept;
  for (const auto& c : job.checkpoints())
    kept += (kept.empty() ? "" : ", ") + (c.final() ? std::string("final (step ") + std::to_string(c.step()) + ")"
                                                    : "step " + std::to_string(c.step()));
  throw not_found("job '" + job.job_id() + "' has no " +
                  (which.empty() ? std::string("checkpoint") : "checkpoint " + echoed(which)) +
                  (kept.empty() ? " (it keeps none yet)" : " (it keeps " + kept + ")"));
}

void JobManager::check_init_from(v1::JobSpec* spec, const Caller& who) const {
  v1::InitFromSpec* from = spec->mutable_model()->mutable_init_from();
  if (from->job_id().empty()) return;
  auto it = jobs_.find(from->job_id());
  if (it == jobs_.end() || !who.may_see(it->second.job.owner())) throw invalid_argument("spec.model.initFrom.jobId: no job " + echoed(from->job_id()));
  const v1::Job& source = it->second.job;
  v1::CheckpointInfo info;
  try {
    info = find_checkpoint(source, from->checkpoint());
  } catch (const ServiceError& e) {
    throw invalid_argument(std::string("spec.model.initFrom.checkpoint: ") + e.what());
  }
  // The same model: everything of `model` but how it is initialised.
  const std::string differs =
      first_difference(spec->model(), source.spec().model(), [](const std::string& path) {
        return path == "init" || path == "initFrom" || path.rfind("init.", 0) == 0 || path.rfind("initFrom.", 0) == 0;
      });
  if (!differs.empty())
    throw invalid_argument("spec.model." + differs + ": differs from the model of " + from->job_id() +
                           ", whose weights the job would start from");
  // Pinned: the job starts from this checkpoint whatever the source keeps later.
  from->set_checkpoint(info.final() ? "final" : std::to_string(info.step()));
}

v1::Job JobManager::remove(const std::string& job_id, const Caller& who) {
  std::lock_guard<std::mutex> lock(mu_);
  Record& r = find(job_id, who);
  if (!is_final(r.job.state()))
    throw failed_precondition("job " + echoed(job_id) + " is " + state_name(r.job.state()) +
                              ": cancel it and wait for it to end before deleting it");
  const v1::Job job = r.job;
  write([&] { store_.remove(job_id); });  // throws: nothing changed
  by_number_.erase(r.number);
  notify_job(job);  // its watchers learn it is gone
  jobs_.erase(job_id);
  if (options_.log) options_.log(job_id + " deleted");
  return job;
}

}  // namespace prelude::server
