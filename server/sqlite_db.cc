#include "server/sqlite_db.h"

#include <sqlite3.h>

namespace prelude::server {

void throw_sqlite_error(int code, const std::string& message) {
  const int primary = code & 0xff;  // the primary code of an extended one
  if (primary == SQLITE_FULL || primary == SQLITE_IOERR) throw StorageError(primary, sqlite3_errstr(primary), message);
  throw std::runtime_error(message);
}

sqlite3* open_sqlite(const std::string& path, const std::string& what) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    const std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw std::runtime_error(path + ": cannot open " + what + ": " + why);
  }
  // Two connections write to the same file, each waiting its turn.
  sqlite3_busy_timeout(db, 5000);
  try {
    exec_sql(db, "PRAGMA journal_mode=WAL", "database");
    exec_sql(db, "PRAGMA synchronous=NORMAL", "database");
  } catch (const std::exception& e) {
    sqlite3_close(db);
    throw std::runtime_error(path + ": cannot open " + what + ": " + e.what());
  }
  return db;
}

void exec_sql(sqlite3* db, const char* sql, const char* prefix) {
  char* err = nullptr;
  if (const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err); rc != SQLITE_OK) {
    const std::string why = err ? err : "unknown error";
    sqlite3_free(err);
    throw_sqlite_error(rc, std::string(prefix) + ": " + why);
  }
}

Statement::Statement(sqlite3* db, const char* sql, const char* prefix) : db_(db), prefix_(prefix) {
  if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail("prepare");
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int i, int64_t v) {
  if (sqlite3_bind_int64(stmt_, i, v) != SQLITE_OK) fail("bind");
  return *this;
}

Statement& Statement::bind(int i, const std::string& v) {
  if (sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) != SQLITE_OK) fail("bind");
  return *this;
}

Statement& Statement::bind_blob(int i, const std::string& v) {
  if (sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) != SQLITE_OK) fail("bind");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) fail("step");
  return false;
}

void Statement::run() {
  step();
  reset();
}

void Statement::reset() { sqlite3_reset(stmt_); }

int64_t Statement::int64(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Statement::blob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, col)) : std::string();
}

std::string Statement::text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col)) : std::string();
}

void Statement::fail(const char* what) const {
  throw_sqlite_error(sqlite3_errcode(db_), std::string(prefix_) + ": " + what + ": " + sqlite3_errmsg(db_));
}

}  // namespace prelude::server
