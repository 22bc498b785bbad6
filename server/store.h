// Durable jobs and their histories in SQLite (WAL): what survives a restart.
//
// Two tables: `jobs` (one row per job: its creation number, id, state and the whole
// Job message) and `events` (every JobEvent of every job, keyed by (job, seq), with
// its attempt beside it for GetMetrics to pick).
// A job's new state and the events that led to it are written in one transaction,
// so after a crash the history and the state agree. Not thread-safe: the job
// manager serialises calls.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "prelude/v1/service.pb.h"
#include "server/sqlite_db.h"  // StorageError

struct sqlite3;

namespace prelude::server {


struct StoredJob {
  int64_t number = 0;  // creation order, from 1
  prelude::v1::Job job;
  int64_t last_seq = 0;  // seq of its last event, 0 when none
};

class Store {
 public:
  // Opens or creates the database at `path` (":memory:" for tests). Throws
  // std::runtime_error naming the path and SQLite's reason. Every method throws
  // StorageError for a write the disk refused, std::runtime_error for other faults.
  explicit Store(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }

  // Counts coordinator starts (1 for a new database); used to name pools uniquely.
  int64_t next_boot();
  // A coordinator that stops cleanly marks the database so; the next one takes (reads
  // and clears) the mark: without it, the last one crashed or was killed.
  void mark_clean_stop();
  bool take_clean_stop();
  // The same in two steps, for a start on a full disk: the count so far, and raising
  // it to at least `boot` once writes work.
  int64_t boots();
  void record_boot(int64_t boot);

  // A tiny write (one counter), to learn whether the database takes writes again.
  void probe();

  // For tests: called before every write; a non-zero SQLite result code (SQLITE_FULL,
  // SQLITE_IOERR, ...) fails that write as SQLite would fail it. Nothing by default.
  void set_write_fault(std::function<int()> fault) { write_fault_ = std::move(fault); }

  // Every job, in creation order.
  std::vector<StoredJob> load_jobs();

  // Inserts or updates the job and appends its new events, in one transaction.
  void save(int64_t number, const prelude::v1::Job& job, const std::vector<prelude::v1::JobEvent>& events);

  // A sweep and all its new jobs (each with its events), in one transaction: after a
  // crash there is either the whole sweep or nothing of it.
  struct NewJob {
    int64_t number;
    prelude::v1::Job job;
    std::vector<prelude::v1::JobEvent> events;
  };
  void save_sweep_with_jobs(int64_t number, const prelude::v1::Sweep& sweep, const std::vector<NewJob>& jobs);

  // The numbers after the highest job and sweep numbers ever saved (deleted ones
  // included): ids are never given twice.
  int64_t next_job_number();
  int64_t next_sweep_number();

  // Removes a job and its events, in one transaction.
  void remove(const std::string& job_id);

  // Sweeps, in creation order; save_sweep inserts or replaces one.
  std::vector<prelude::v1::Sweep> load_sweeps();
  void save_sweep(int64_t number, const prelude::v1::Sweep& sweep);

  // The job's events with seq > after_seq, in order; at most `limit` (0: all).
  // With training_only, state changes are left out.
  std::vector<prelude::v1::JobEvent> events(const std::string& job_id, int64_t after_seq, bool training_only,
                                            int limit = 0);

  // The job's training events of `attempt` (kAllAttempts: of every one) with
  // seq > after_seq, in order: at most `limit`, and no more once they hold
  // `max_bytes` (at least one). `*more`: some are left after them.
  static constexpr int kAllAttempts = -1;
  std::vector<prelude::v1::JobEvent> training_events(const std::string& job_id, int attempt, int64_t after_seq,
                                                     int limit, size_t max_bytes, bool* more);

  // Worker output (LogLine, numbered by the caller). append_logs adds lines of one
  // attempt and keeps only its newest `keep` lines, counting the ones it drops.
  void append_logs(const std::string& job_id, int attempt, const std::vector<prelude::v1::LogLine>& lines,
                   int64_t keep);
  // The highest seq of the job's lines (0: none).
  int64_t last_log_seq(const std::string& job_id);
  // Lines of `attempt` with seq > after_seq, in order, at most `limit`.
  std::vector<prelude::v1::LogLine> logs(const std::string& job_id, int attempt, int64_t after_seq, int limit);
  // How many lines of the attempt append_logs dropped.
  int64_t dropped_logs(const std::string& job_id, int attempt);

 private:
  void exec(const char* sql);
  // Databases from before JobEvent.attempt: the column added, and every event given
  // its attempt from the RUNNING state changes before it. Once.
  void add_event_attempts();
  // Throws what the write fault (tests) asks for.
  void check_write_fault() const;
  void in_transaction(const std::function<void()>& body);
  // The job's row, its events and the job counter; inside a transaction.
  void put_job(int64_t number, const prelude::v1::Job& job, const std::vector<prelude::v1::JobEvent>& events);
  sqlite3* db_ = nullptr;
  std::string path_;
  std::function<int()> write_fault_;
};

}  // namespace prelude::server
