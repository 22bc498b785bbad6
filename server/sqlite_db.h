// SQLite as the coordinator uses it: the store and the audit log each keep a
// connection of their own to the same database file, opened alike and read through
// the same prepared-statement wrapper.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace prelude::server {

// The database refused a write because of the disk or the file system under it
// (SQLITE_FULL, SQLITE_IOERR): nothing was written, and the same write may work once
// space returns. The job manager degrades on it and probes until writes work again.
class StorageError : public std::runtime_error {
 public:
  StorageError(int code, const std::string& reason, const std::string& message)
      : std::runtime_error(message), code_(code), reason_(reason) {}
  int code() const { return code_; }                    // SQLite's primary result code
  const std::string& reason() const { return reason_; }  // SQLite's text: "database or disk is full"

 private:
  int code_;
  std::string reason_;
};

// Throws StorageError for a disk fault (SQLITE_FULL, SQLITE_IOERR and their extended
// codes), std::runtime_error(message) otherwise.
[[noreturn]] void throw_sqlite_error(int code, const std::string& message);

// Opens (creating) the database at `path` for a connection that shares the file: WAL,
// synchronous=NORMAL, and a 5 s wait for the other connection's lock. Throws
// std::runtime_error "PATH: cannot open WHAT: why".
sqlite3* open_sqlite(const std::string& path, const std::string& what);

// Runs SQL without results; errors throw as throw_sqlite_error, the message starting
// with `prefix` ("database", "audit log").
void exec_sql(sqlite3* db, const char* sql, const char* prefix);

// One prepared statement, finalized on scope exit; errors throw as throw_sqlite_error
// with "PREFIX: prepare|bind|step: SQLite's text".
class Statement {
 public:
  Statement(sqlite3* db, const char* sql, const char* prefix = "database");
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v);
  Statement& bind(int i, const std::string& v);
  Statement& bind_blob(int i, const std::string& v);
  // True while there is a row.
  bool step();
  // Steps once and resets, for a statement without rows.
  void run();
  void reset();
  int64_t int64(int col) const;
  std::string blob(int col) const;
  std::string text(int col) const;

 private:
  [[noreturn]] void fail(const char* what) const;
  sqlite3* db_;
  const char* prefix_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace prelude::server
