#include "server/audit_log.h"

#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "common/errors.h"
#include "common/text.h"
#include "server/sqlite_db.h"

namespace prelude::server {

namespace {

// Refusals held back are listed by where they came from, this many hosts at most.
constexpr size_t kMaxHeldHosts = 5;
// Errors of its statements start with this.
constexpr const char* kWhat = "audit log";
// A full disk is said at most this often.
constexpr int64_t kComplaintIntervalMs = 60000;

int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// `text` with its control characters escaped, at most `max_bytes` long: cut at a
// character boundary and ended with "..." when longer.
std::string bounded(const std::string& text, size_t max_bytes) {
  std::string out = escape_control(text);
  if (out.size() <= max_bytes) return out;
  size_t cut = max_bytes - 3;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xc0) == 0x80) --cut;
  out.resize(cut);
  return out + "...";
}

// "ipv4:10.0.0.5:51234" -> "ipv4:10.0.0.5", "ipv6:[::1]:5000" -> "ipv6:[::1]": a
// client's connections differ by port only, and a flood is one host's.
std::string host_of(const std::string& peer) {
  if (peer.rfind("ipv4:", 0) != 0 && peer.rfind("ipv6:", 0) != 0) return peer;
  const size_t colon = peer.rfind(':');
  if (colon <= 4 || colon + 1 == peer.size()) return peer;
  if (!std::all_of(peer.begin() + colon + 1, peer.end(), [](char c) { return c >= '0' && c <= '9'; })) return peer;
  return peer.substr(0, colon);
}

// The page_token of ListAudit: the seq the next page starts below.
int64_t parse_page_token(const std::string& token) {
  const auto bad = [&] { return invalid_argument("page_token: not a token from ListAudit: " + echoed(token)); };
  if (token.empty() || token.size() > 19 || !std::all_of(token.begin(), token.end(), [](char c) {
        return c >= '0' && c <= '9';
      }))
    throw bad();
  errno = 0;
  const long long seq = std::strtoll(token.c_str(), nullptr, 10);
  if (errno != 0 || seq <= 0) throw bad();
  return seq;
}

}  // namespace

std::string outcome_text(ErrorCode code, const std::string& message) {
  const char* name = "UNKNOWN";
  switch (code) {  // as gRPC names the code the coordinator answers with (common/grpc_status.h)
    case ErrorCode::kInvalidArgument: name = "INVALID_ARGUMENT"; break;
    case ErrorCode::kNotFound: name = "NOT_FOUND"; break;
    case ErrorCode::kFailedPrecondition: name = "FAILED_PRECONDITION"; break;
    case ErrorCode::kUnauthenticated: name = "UNAUTHENTICATED"; break;
    case ErrorCode::kPermissionDenied: name = "PERMISSION_DENIED"; break;
    case ErrorCode::kResourceExhausted: name = "RESOURCE_EXHAUSTED"; break;
    case ErrorCode::kUnavailable: name = "UNAVAILABLE"; break;
    case ErrorCode::kInternal: name = "INTERNAL"; break;
    case ErrorCode::kTimedOut: name = "DEADLINE_EXCEEDED"; break;
    case ErrorCode::kInterrupted: name = "ABORTED"; break;
    case ErrorCode::kUnsupported: name = "UNIMPLEMENTED"; break;
  }
  return bounded(std::string(name) + ": " + message, kMaxAuditTextBytes);
}

bool is_refusal(const std::string& action) { return action == kTokenRefused || action == kPermissionDenied; }

AuditLog::AuditLog(const std::string& path, AuditOptions options) : path_(path), options_(std::move(options)) {
  if (options_.keep < 1) throw UserError("--audit-keep: must be at least 1, got " + std::to_string(options_.keep));
  if (!options_.now_ms) options_.now_ms = system_now_ms;
  if (!options_.log) options_.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  db_ = open_sqlite(path, "the database for the audit log");
  try {
    exec_sql(db_, "CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL,"
              " user TEXT NOT NULL, role TEXT NOT NULL, peer TEXT NOT NULL, action TEXT NOT NULL,"
              " target TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL)",
            kWhat);
    Statement count(db_, "SELECT count(*), coalesce(max(seq), 0) FROM audit", kWhat);
    if (count.step()) {
      rows_ = count.int64(0);
      last_seq_ = count.int64(1);
    }
  } catch (const std::exception& e) {
    sqlite3_close(db_);
    throw std::runtime_error(path + ": " + e.what());
  }
  {
    // A smaller --audit-keep than the last run's takes effect now; a full disk is no
    // reason not to start (it is said, and tried again with the next entries).
    std::lock_guard<std::mutex> lock(mu_);
    if (rows_ > options_.keep) {
      try {
        prune_locked();
      } catch (const std::exception& e) {
        failed_locked(std::string("cannot prune: ") + e.what());
      }
    }
  }
  if (options_.flush_interval_ms > 0) flusher_ = std::thread([this] { flush_loop(); });
}

AuditLog::~AuditLog() {
  if (flusher_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(stop_mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    flusher_.join();
  }
  flush(/*all=*/true);
  sqlite3_close(db_);
}

void AuditLog::flush_loop() {
  std::unique_lock<std::mutex> lock(stop_mu_);
  while (!stop_cv_.wait_for(lock, std::chrono::milliseconds(options_.flush_interval_ms), [this] { return stopping_; }))
    flush();
}

void AuditLog::set_write_fault(std::function<int()> fault) {
  std::lock_guard<std::mutex> lock(mu_);
  write_fault_ = std::move(fault);
}

int64_t AuditLog::dropped() const { return dropped_.load(); }

int64_t AuditLog::summarised() const {
  std::lock_guard<std::mutex> lock(mu_);
  return summarised_;
}

void AuditLog::record(AuditEntry e) {
  try {
    e.seq = 0;
    e.user = bounded(e.user, kMaxAuditNameBytes);
    e.role = bounded(e.role, kMaxAuditNameBytes);
    e.peer = bounded(e.peer, kMaxAuditNameBytes);
    e.action = bounded(e.action, kMaxAuditNameBytes);
    e.target = bounded(e.target, kMaxAuditTargetBytes);
    e.outcome = bounded(e.outcome, kMaxAuditTextBytes);
    e.detail = bounded(e.detail, kMaxAuditTextBytes);
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = options_.now_ms();
    e.time_ms = now;
    flush_locked(now, false);  // what a past second held back goes before this entry
    if (is_refusal(e.action)) {
      const int64_t second = now / 1000;
      if (second != second_) {
        second_ = second;
        refusals_written_ = 0;
      }
      if (refusals_written_ >= options_.max_refusals_per_second) {
        Held& held = held_[e.action];
        ++held.count;
        held.last_time_ms = now;
        held.last_outcome = e.outcome;
        const std::string host = host_of(e.peer);
        if (held.hosts.count(host) || held.hosts.size() < kMaxHeldHosts) {
          ++held.hosts[host];
        } else {
          ++held.other_hosts;
        }
        ++summarised_;
        return;
      }
      ++refusals_written_;
    }
    write_locked(e);
  } catch (...) {  // out of memory, a mutex that failed: the call goes on without its entry
    ++dropped_;
  }
}

void AuditLog::flush(bool all) {
  try {
    std::lock_guard<std::mutex> lock(mu_);
    flush_locked(options_.now_ms(), all);
  } catch (...) {
    ++dropped_;
  }
}

void AuditLog::flush_locked(int64_t now_ms, bool all) {
  if (held_.empty() || (!all && now_ms / 1000 == second_)) return;
  for (const auto& [action, held] : held_) {
    AuditEntry summary;
    summary.time_ms = held.last_time_ms;
    summary.action = action;
    summary.outcome = held.last_outcome;
    const std::string listed = std::to_string(held.hosts.size());
    summary.peer = held.other_hosts > 0       ? "over " + listed + " peers"
                   : held.hosts.size() == 1 ? held.hosts.begin()->first
                                            : listed + " peers";
    std::string from;
    for (const auto& [host, n] : held.hosts)
      from += (from.empty() ? "" : ", ") + host + " (" + std::to_string(n) + ")";
    if (held.other_hosts > 0) from += " and other peers (" + std::to_string(held.other_hosts) + ")";
    summary.detail = bounded(std::to_string(held.count) + " more refusals from " + from +
                                 ", not recorded one by one (over " +
                                 std::to_string(options_.max_refusals_per_second) + " a second)",
                             kMaxAuditTextBytes);
    write_locked(summary);
  }
  held_.clear();
}

void AuditLog::write_locked(const AuditEntry& e) {
  try {
    insert_locked(e);
  } catch (const std::exception& ex) {
    ++dropped_;
    failed_locked(std::string("cannot write an entry: ") + ex.what());
    return;
  }
  // Deleting a batch at a time: one statement per batch of inserts, not one per insert.
  const int64_t batch = std::clamp<int64_t>(options_.keep / 10, 1, 1000);
  if (rows_ < options_.keep + batch) return;
  try {
    prune_locked();
  } catch (const std::exception& ex) {
    failed_locked(std::string("cannot prune: ") + ex.what());
  }
}

void AuditLog::insert_locked(const AuditEntry& e) {
  if (write_fault_) {
    if (const int code = write_fault_(); code != SQLITE_OK)
      throw std::runtime_error(std::string("audit log: step: ") + sqlite3_errstr(code));
  }
  Statement s(db_, "INSERT INTO audit(time_ms, user, role, peer, action, target, outcome, detail)"
                   " VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
              kWhat);
  s.bind(1, e.time_ms).bind(2, e.user).bind(3, e.role).bind(4, e.peer).bind(5, e.action).bind(6, e.target);
  s.bind(7, e.outcome).bind(8, e.detail).step();
  last_seq_ = sqlite3_last_insert_rowid(db_);
  ++rows_;
}

void AuditLog::prune_locked() {
  if (write_fault_) {
    if (const int code = write_fault_(); code != SQLITE_OK)
      throw std::runtime_error(std::string("audit log: step: ") + sqlite3_errstr(code));
  }
  Statement s(db_, "DELETE FROM audit WHERE seq <= ?", kWhat);
  s.bind(1, last_seq_ - options_.keep).step();
  rows_ = std::max<int64_t>(0, rows_ - sqlite3_changes(db_));
}

void AuditLog::failed_locked(const std::string& what) {
  const int64_t now = options_.now_ms();
  if (last_complaint_ms_ != INT64_MIN && now - last_complaint_ms_ < kComplaintIntervalMs) return;
  last_complaint_ms_ = now;
  options_.log("prelude-coordinator: audit log (" + path_ + "): " + what + "; " + std::to_string(dropped_.load()) +
               " entries dropped so far");
}

AuditPage AuditLog::page(const AuditQuery& q) {
  if (q.page_size < 0 || q.page_size > kMaxPageSize)
    throw invalid_argument("page_size: must be between 0 and " + std::to_string(kMaxPageSize) + ", got " +
                           std::to_string(q.page_size));
  if (q.user.size() > kMaxAuditNameBytes)
    throw invalid_argument("user: at most " + std::to_string(kMaxAuditNameBytes) + " bytes, got " + echoed(q.user));
  if (q.action.size() > kMaxAuditNameBytes)
    throw invalid_argument("action: at most " + std::to_string(kMaxAuditNameBytes) + " bytes, got " +
                           echoed(q.action));
  if (q.since_ms < 0) throw invalid_argument("since: must not be before 1970, got " + std::to_string(q.since_ms) + " ms");
  const int64_t below = q.page_token.empty() ? INT64_MAX : parse_page_token(q.page_token);
  const int size = q.page_size == 0 ? kDefaultPageSize : q.page_size;

  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, "SELECT seq, time_ms, user, role, peer, action, target, outcome, detail FROM audit"
                   " WHERE seq < ?1 AND (?2 = '' OR user = ?2) AND (?3 = '' OR action = ?3) AND time_ms >= ?4"
                   " ORDER BY seq DESC LIMIT ?5",
              kWhat);
  s.bind(1, below).bind(2, q.user).bind(3, q.action).bind(4, q.since_ms).bind(5, static_cast<int64_t>(size) + 1);
  AuditPage page;
  while (s.step()) {
    if (static_cast<int>(page.entries.size()) == size) {  // one more than asked for: there is a next page
      page.next_page_token = std::to_string(page.entries.back().seq);
      break;
    }
    AuditEntry e;
    e.seq = s.int64(0);
    e.time_ms = s.int64(1);
    e.user = s.text(2);
    e.role = s.text(3);
    e.peer = s.text(4);
    e.action = s.text(5);
    e.target = s.text(6);
    e.outcome = s.text(7);
    e.detail = s.text(8);
    page.entries.push_back(std::move(e));
  }
  return page;
}

}  // namespace prelude::server
