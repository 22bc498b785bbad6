#include "server/db_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/errors.h"

namespace prelude::server {

DatabaseLock::DatabaseLock(const std::string& db_path) {
  if (db_path == ":memory:" || db_path.empty()) return;
  const std::string path = db_path + ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw user_error("--db " + db_path, "cannot create its lock file " + path + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char holder[256] = "";
    const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
    std::string who(holder, n > 0 ? static_cast<size_t>(n) : 0);
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) throw user_error("--db " + db_path, std::string("cannot lock ") + path + ": " + std::strerror(err));
    throw user_error("--db " + db_path, "in use by another coordinator" + (who.empty() ? "" : " (" + who + ")") +
                                            "; stop it first or give another --db");
  }
  // Who holds it, for the message a second coordinator prints.
  char host[128] = "";
  ::gethostname(host, sizeof host - 1);
  const std::string who = "pid " + std::to_string(::getpid()) + " on " + host + "\n";
  if (::ftruncate(fd_, 0) == 0) (void)::pwrite(fd_, who.data(), who.size(), 0);
}

DatabaseLock::~DatabaseLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

}  // namespace prelude::server
