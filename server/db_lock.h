// One coordinator per database: an exclusive lock on <db>.lock, held for the
// coordinator's life. A second coordinator on the same database would requeue the
// first one's running jobs under it; it is refused at once instead, naming the
// holder. The kernel releases the lock when the holder dies, even by kill -9.
#pragma once

#include <string>

namespace prelude::server {

class DatabaseLock {
 public:
  // Takes the lock of `db_path` (":memory:" needs none). Throws UserError naming the
  // database and, when known, the holder's pid and host: "--db jobs.db: in use by
  // another coordinator (pid 4242 on host-a)".
  explicit DatabaseLock(const std::string& db_path);
  ~DatabaseLock();
  DatabaseLock(const DatabaseLock&) = delete;
  DatabaseLock& operator=(const DatabaseLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace prelude::server
