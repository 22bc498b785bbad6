#include "server/store.h"

#include <functional>

#include <sqlite3.h>

#include <stdexcept>

namespace prelude::server {

namespace v1 = prelude::v1;

namespace {

// Raises a counter in meta to at least `value`.
void raise_counter(sqlite3* db, const char* key, int64_t value) {
  Statement(db, "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)")
      .bind(1, std::string(key))
      .bind(2, value)
      .run();
}

template <typename M>
M parse(const std::string& bytes, const char* what) {
  M m;
  if (!m.ParseFromString(bytes)) throw std::runtime_error(std::string("database: corrupt ") + what);
  return m;
}

}  // namespace

Store::Store(const std::string& path) : path_(path) {
  db_ = open_sqlite(path, "the database");
  try {
    exec("CREATE TABLE IF NOT EXISTS jobs(number INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
         " state INTEGER NOT NULL, job BLOB NOT NULL)");
    exec("CREATE TABLE IF NOT EXISTS events(job_id TEXT NOT NULL, seq INTEGER NOT NULL,"
         " training INTEGER NOT NULL, event BLOB NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,"
         " PRIMARY KEY(job_id, seq)) WITHOUT ROWID");
    add_event_attempts();
    exec("CREATE TABLE IF NOT EXISTS logs(job_id TEXT NOT NULL, seq INTEGER NOT NULL, attempt INTEGER NOT NULL,"
         " line BLOB NOT NULL, PRIMARY KEY(job_id, seq)) WITHOUT ROWID");
    exec("CREATE TABLE IF NOT EXISTS log_drops(job_id TEXT NOT NULL, attempt INTEGER NOT NULL,"
         " dropped INTEGER NOT NULL, PRIMARY KEY(job_id, attempt)) WITHOUT ROWID");
    exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)");
    exec("CREATE TABLE IF NOT EXISTS sweeps(number INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
         " sweep BLOB NOT NULL)");
  } catch (const std::exception& e) {
    sqlite3_close(db_);
    throw std::runtime_error(path + ": " + e.what());
  }
}

Store::~Store() { sqlite3_close(db_); }

void Store::add_event_attempts() {
  {
    Statement columns(db_, "SELECT count(*) FROM pragma_table_info('events') WHERE name = 'attempt'");
    if (columns.step() && columns.int64(0) > 0) return;
  }
  in_transaction([&] {
    exec("ALTER TABLE events ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0");
    std::vector<std::string> jobs;
    {
      Statement ids(db_, "SELECT DISTINCT job_id FROM events");
      while (ids.step()) jobs.push_back(ids.blob(0));
    }
    // A job at a time, read whole before it is written: no update under an open read.
    Statement write(db_, "UPDATE events SET attempt = ?, event = ? WHERE job_id = ? AND seq = ?");
    for (const auto& id : jobs) {
      std::vector<v1::JobEvent> events = this->events(id, 0, false);
      int32_t attempt = 0;
      for (auto& e : events) {
        if (e.state_change().state() == v1::RUNNING) attempt = e.state_change().attempt();
        if (attempt == 0) continue;
        e.set_attempt(attempt);
        write.bind(1, static_cast<int64_t>(attempt)).bind_blob(2, e.SerializeAsString()).bind(3, id).bind(4, e.seq());
        write.run();
      }
    }
  });
}

void Store::exec(const char* sql) { exec_sql(db_, sql, "database"); }

void Store::check_write_fault() const {
  if (!write_fault_) return;
  if (const int code = write_fault_(); code != SQLITE_OK)
    throw_sqlite_error(code, std::string("database: step: ") + sqlite3_errstr(code));
}

int64_t Store::next_boot() {
  const int64_t boot = boots() + 1;
  record_boot(boot);
  return boot;
}

int64_t Store::boots() {
  Statement s(db_, "SELECT value FROM meta WHERE key = 'boots'");
  return s.step() ? s.int64(0) : 0;
}

void Store::record_boot(int64_t boot) {
  check_write_fault();
  raise_counter(db_, "boots", boot);
}

void Store::probe() {
  check_write_fault();
  exec("INSERT INTO meta(key, value) VALUES('probes', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1");
}

void Store::mark_clean_stop() {
  exec("INSERT INTO meta(key, value) VALUES('clean_stop', 1) ON CONFLICT(key) DO UPDATE SET value = 1");
}

bool Store::take_clean_stop() {
  bool clean = false;
  {
    Statement s(db_, "SELECT value FROM meta WHERE key = 'clean_stop'");
    clean = s.step() && s.int64(0) == 1;
  }
  exec("DELETE FROM meta WHERE key = 'clean_stop'");
  return clean;
}

std::vector<StoredJob> Store::load_jobs() {
  std::vector<StoredJob> jobs;
  {
    Statement s(db_, "SELECT number, job FROM jobs ORDER BY number");
    while (s.step()) jobs.push_back({s.int64(0), parse<v1::Job>(s.blob(1), "job"), 0});
  }
  Statement last(db_, "SELECT MAX(seq) FROM events WHERE job_id = ?");
  for (auto& j : jobs) {
    last.bind(1, j.job.job_id());
    if (last.step()) j.last_seq = last.int64(0);
    last.reset();
  }
  return jobs;
}

void Store::put_job(int64_t number, const v1::Job& job, const std::vector<v1::JobEvent>& events) {
  Statement put(db_, "INSERT INTO jobs(number, id, state, job) VALUES(?, ?, ?, ?)"
                     " ON CONFLICT(number) DO UPDATE SET state = excluded.state, job = excluded.job");
  put.bind(1, number).bind(2, job.job_id()).bind(3, static_cast<int64_t>(job.state()));
  put.bind_blob(4, job.SerializeAsString()).run();
  Statement add(db_, "INSERT INTO events(job_id, seq, training, event, attempt) VALUES(?, ?, ?, ?, ?)");
  for (const auto& e : events) {
    add.bind(1, e.job_id()).bind(2, e.seq()).bind(3, e.has_training() ? 1 : 0);
    add.bind_blob(4, e.SerializeAsString()).bind(5, static_cast<int64_t>(e.attempt())).run();
  }
  raise_counter(db_, "next_job", number + 1);
}

void Store::in_transaction(const std::function<void()>& body) {
  check_write_fault();
  exec("BEGIN IMMEDIATE");
  try {
    body();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void Store::save(int64_t number, const v1::Job& job, const std::vector<v1::JobEvent>& events) {
  in_transaction([&] { put_job(number, job, events); });
}

void Store::save_sweep_with_jobs(int64_t number, const v1::Sweep& sweep, const std::vector<NewJob>& jobs) {
  in_transaction([&] {
    for (const auto& j : jobs) put_job(j.number, j.job, j.events);
    save_sweep(number, sweep);
  });
}

int64_t Store::next_job_number() {
  Statement s(db_, "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'next_job'), 1),"
                   " coalesce((SELECT max(number) + 1 FROM jobs), 1))");
  return s.step() ? s.int64(0) : 1;
}

int64_t Store::next_sweep_number() {
  Statement s(db_, "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'next_sweep'), 1),"
                   " coalesce((SELECT max(number) + 1 FROM sweeps), 1))");
  return s.step() ? s.int64(0) : 1;
}

void Store::remove(const std::string& job_id) {
  in_transaction([&] {
    Statement(db_, "DELETE FROM events WHERE job_id = ?").bind(1, job_id).run();
    Statement(db_, "DELETE FROM logs WHERE job_id = ?").bind(1, job_id).run();
    Statement(db_, "DELETE FROM log_drops WHERE job_id = ?").bind(1, job_id).run();
    Statement(db_, "DELETE FROM jobs WHERE id = ?").bind(1, job_id).run();
  });
}

std::vector<v1::Sweep> Store::load_sweeps() {
  std::vector<v1::Sweep> sweeps;
  Statement s(db_, "SELECT sweep FROM sweeps ORDER BY number");
  while (s.step()) sweeps.push_back(parse<v1::Sweep>(s.blob(0), "sweep"));
  return sweeps;
}

void Store::save_sweep(int64_t number, const v1::Sweep& sweep) {
  Statement put(db_, "INSERT INTO sweeps(number, id, sweep) VALUES(?, ?, ?)"
                     " ON CONFLICT(number) DO UPDATE SET sweep = excluded.sweep");
  put.bind(1, number).bind(2, sweep.sweep_id()).bind_blob(3, sweep.SerializeAsString()).run();
  raise_counter(db_, "next_sweep", number + 1);
}

std::vector<v1::JobEvent> Store::events(const std::string& job_id, int64_t after_seq, bool training_only,
                                        int limit) {
  Statement s(db_, training_only
                       ? "SELECT event FROM events WHERE job_id = ? AND seq > ? AND training = 1 ORDER BY seq LIMIT ?"
                       : "SELECT event FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?");
  s.bind(1, job_id).bind(2, after_seq).bind(3, limit > 0 ? static_cast<int64_t>(limit) : -1);
  std::vector<v1::JobEvent> out;
  while (s.step()) out.push_back(parse<v1::JobEvent>(s.blob(0), "event"));
  return out;
}

std::vector<v1::JobEvent> Store::training_events(const std::string& job_id, int attempt, int64_t after_seq,
                                                 int limit, size_t max_bytes, bool* more) {
  Statement s(db_, attempt == kAllAttempts
                       ? "SELECT event FROM events WHERE job_id = ? AND seq > ? AND training = 1 ORDER BY seq LIMIT ?"
                       : "SELECT event FROM events WHERE job_id = ? AND seq > ? AND training = 1 AND attempt = ?"
                         " ORDER BY seq LIMIT ?");
  s.bind(1, job_id).bind(2, after_seq);
  if (attempt == kAllAttempts) {
    s.bind(3, static_cast<int64_t>(limit) + 1);
  } else {
    s.bind(3, static_cast<int64_t>(attempt)).bind(4, static_cast<int64_t>(limit) + 1);
  }
  std::vector<v1::JobEvent> out;
  size_t bytes = 0;
  *more = false;
  while (s.step()) {
    const std::string blob = s.blob(0);
    if (static_cast<int>(out.size()) == limit || (!out.empty() && bytes + blob.size() > max_bytes)) {
      *more = true;
      break;
    }
    bytes += blob.size();
    out.push_back(parse<v1::JobEvent>(blob, "event"));
  }
  return out;
}

void Store::append_logs(const std::string& job_id, int attempt, const std::vector<v1::LogLine>& lines,
                        int64_t keep) {
  if (lines.empty()) return;
  in_transaction([&] {
    Statement put(db_, "INSERT INTO logs(job_id, seq, attempt, line) VALUES(?, ?, ?, ?)");
    for (const auto& l : lines) {
      put.bind(1, job_id).bind(2, l.seq()).bind(3, static_cast<int64_t>(attempt)).bind_blob(4, l.SerializeAsString());
      put.run();
    }
    // The attempt's newest `keep` lines stay: the end of a run says most about how it ended.
    Statement count(db_, "SELECT count(*) FROM logs WHERE job_id = ? AND attempt = ?");
    count.bind(1, job_id).bind(2, static_cast<int64_t>(attempt));
    const int64_t over = (count.step() ? count.int64(0) : 0) - keep;
    if (over <= 0) return;
    Statement(db_, "DELETE FROM logs WHERE job_id = ? AND attempt = ? AND seq IN (SELECT seq FROM logs"
                   " WHERE job_id = ? AND attempt = ? ORDER BY seq LIMIT ?)")
        .bind(1, job_id).bind(2, static_cast<int64_t>(attempt)).bind(3, job_id).bind(4, static_cast<int64_t>(attempt))
        .bind(5, over).run();
    Statement(db_, "INSERT INTO log_drops(job_id, attempt, dropped) VALUES(?, ?, ?)"
                   " ON CONFLICT(job_id, attempt) DO UPDATE SET dropped = dropped + excluded.dropped")
        .bind(1, job_id).bind(2, static_cast<int64_t>(attempt)).bind(3, over).run();
  });
}

int64_t Store::last_log_seq(const std::string& job_id) {
  Statement s(db_, "SELECT coalesce(max(seq), 0) FROM logs WHERE job_id = ?");
  s.bind(1, job_id);
  return s.step() ? s.int64(0) : 0;
}

std::vector<v1::LogLine> Store::logs(const std::string& job_id, int attempt, int64_t after_seq, int limit) {
  Statement s(db_, "SELECT line FROM logs WHERE job_id = ? AND attempt = ? AND seq > ? ORDER BY seq LIMIT ?");
  s.bind(1, job_id).bind(2, static_cast<int64_t>(attempt)).bind(3, after_seq).bind(4, static_cast<int64_t>(limit));
  std::vector<v1::LogLine> out;
  while (s.step()) out.push_back(parse<v1::LogLine>(s.blob(0), "log line"));
  return out;
}

int64_t Store::dropped_logs(const std::string& job_id, int attempt) {
  Statement s(db_, "SELECT dropped FROM log_drops WHERE job_id = ? AND attempt = ?");
  s.bind(1, job_id).bind(2, static_cast<int64_t>(attempt));
  return s.step() ? s.int64(0) : 0;
}

}  // namespace prelude::server
