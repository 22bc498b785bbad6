// The audit trail of the coordinator: every mutation (a submit, a cancel, a delete,
// ...) and every refused call, with who made it, when and from where, in the table
// `audit` of the coordinator's own database. Admins read it with ListAudit
// (`prelude audit`). No gRPC here: the handlers fill AuditEntries from their context
// and the outcome of the call (outcome_text).
//
// The log has its own SQLite connection to the database (WAL, like the Store's), so
// it neither waits for the job manager's lock nor holds it, and its own mutex.
// Writing an entry never fails the call it records: an entry the disk refuses is
// counted (dropped()) and said on the log at most once a minute.
//
// Refusals cost an attacker nothing, so they are bounded: at most
// max_refusals_per_second refusal rows a second; the rest of that second's are
// counted per action and written as one summary row each ("1234 more refusals from
// ipv4:10.0.0.5 (1200), ...") once the second is over (at the next record or flush).
// The table keeps the newest `keep` rows; older ones are deleted in batches.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

struct sqlite3;

namespace prelude::server {

struct AuditEntry {
  int64_t seq = 0;      // from 1, in the order written (set by the log)
  int64_t time_ms = 0;  // Unix time in milliseconds (set by the log)
  std::string user;     // who: the caller's name, "" when unauthenticated
  std::string role;     // the caller's role ("admin", "user", "pool"), "" when none
  std::string peer;     // where from: gRPC's peer, "ipv4:10.0.0.5:51234"
  std::string action;   // "submit", "cancel", "delete", "token-refused", ...
  std::string target;   // what: a job or sweep id, a pool id; "" when none
  std::string outcome;  // "ok", or the code and message: "NOT_FOUND: no job 'job-000009'"
  std::string detail;   // anything else worth keeping (a spec's name); never a token
};

// The outcome of a call that succeeded, and of one that failed with `code`:
// "NOT_FOUND: no job 'job-000009'" (the name as gRPC spells the code).
constexpr const char* kOutcomeOk = "ok";
std::string outcome_text(ErrorCode code, const std::string& message);

// The actions that are refusals, and so rate-limited.
constexpr const char* kTokenRefused = "token-refused";
constexpr const char* kPermissionDenied = "permission-denied";
bool is_refusal(const std::string& action);

// What each field keeps at most, in bytes (control characters escaped first; a
// longer one is cut at a character boundary and ends in "...").
constexpr size_t kMaxAuditNameBytes = 128;    // user, role, peer, action
constexpr size_t kMaxAuditTargetBytes = 256;  // target
constexpr size_t kMaxAuditTextBytes = 1024;   // outcome, detail

struct AuditQuery {
  int page_size = 0;       // 0: 100; at most 1000
  std::string page_token;  // from the previous page's next_page_token; "" for the first
  std::string user;        // only this user's entries ("" for all)
  std::string action;      // only this action's entries ("" for all)
  int64_t since_ms = 0;    // only entries at or after this Unix time in ms (0 for all)
};

struct AuditPage {
  std::vector<AuditEntry> entries;  // newest first
  std::string next_page_token;      // empty on the last page
};

struct AuditOptions {
  int64_t keep = 100000;             // the newest rows kept
  int max_refusals_per_second = 20;  // refusal rows written a second; the rest summarised
  // Unix time in milliseconds; tests pass a fake one. Default: the system clock.
  std::function<int64_t()> now_ms;
  // Where the log's own troubles go (one line each). Default: stderr.
  std::function<void(const std::string&)> log;
  // > 0: a thread writes the summary of a past second's refusals this often, even
  // when nothing else is recorded. 0 (tests): only record(), flush() and the
  // destructor do.
  int flush_interval_ms = 0;
};

class AuditLog {
 public:
  static constexpr int kDefaultPageSize = 100;
  static constexpr int kMaxPageSize = 1000;

  // Opens (or creates) the database at `path` (":memory:" for tests) and the table.
  // Throws std::runtime_error naming the path and SQLite's reason, UserError for a
  // `keep` below 1.
  explicit AuditLog(const std::string& path, AuditOptions options = {});
  // Writes what is held back (the summary of refusals) and stops the flush thread.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Records `e` (its seq and time set here, its strings bounded). Never throws.
  void record(AuditEntry e);

  // Writes the summary rows of refusals held back from a second that is over (all of
  // them with `all`, as the destructor does).
  void flush(bool all = false);

  // Entries newest first, filtered. Throws ServiceError(kInvalidArgument) naming a
  // bad page_size, page_token, user, action or since_ms; std::runtime_error when the
  // database cannot be read.
  AuditPage page(const AuditQuery& q);

  // Entries the disk refused (or that failed to be written otherwise), and refusals
  // not written one by one (counted in summary rows instead).
  int64_t dropped() const;
  int64_t summarised() const;

  // For tests: called before every write; a non-zero SQLite result code (SQLITE_FULL,
  // ...) fails that write as SQLite would. As Store::set_write_fault.
  void set_write_fault(std::function<int()> fault);

 private:
  // The refusals of one action held back in the current second.
  struct Held {
    int64_t count = 0;
    int64_t last_time_ms = 0;
    std::string last_outcome;
    std::map<std::string, int64_t> hosts;  // peer without its port -> refusals (a few)
    int64_t other_hosts = 0;               // refusals from hosts past the few listed
  };

  void write_locked(const AuditEntry& e);     // never throws
  void insert_locked(const AuditEntry& e);    // throws what SQLite says
  void prune_locked();                        // throws what SQLite says
  void flush_locked(int64_t now_ms, bool all);
  void failed_locked(const std::string& what);
  void flush_loop();

  sqlite3* db_ = nullptr;
  std::string path_;
  AuditOptions options_;
  mutable std::mutex mu_;
  int64_t rows_ = 0;      // rows in the table, as far as this log knows
  int64_t last_seq_ = 0;  // the newest row's seq
  std::atomic<int64_t> dropped_{0};
  int64_t summarised_ = 0;
  int64_t last_complaint_ms_ = INT64_MIN;
  int64_t second_ = INT64_MIN;  // the second (time_ms / 1000) refusals are counted in
  int refusals_written_ = 0;    // refusal rows written in that second
  std::map<std::string, Held> held_;  // by action
  std::function<int()> write_fault_;

  // The flush thread.
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread flusher_;
};

}  // namespace prelude::server
