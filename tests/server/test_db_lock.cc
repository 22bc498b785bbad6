// One coordinator per database (server/db_lock.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include "common/errors.h"
#include "server/db_lock.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;

TEST(DatabaseLock, ASecondHolderIsRefusedNamingTheFirstUntilItLetsGo) {
  TempDir dir;
  const std::string db = dir.file("jobs.db");
  auto first = std::make_unique<DatabaseLock>(db);
  char host[128] = "";
  gethostname(host, sizeof host - 1);
  std::string message;
  try {
    DatabaseLock second(db);
  } catch (const UserError& e) {
    message = e.what();
  }
  EXPECT_EQ(message, "--db " + db + ": in use by another coordinator (pid " + std::to_string(getpid()) + " on " +
                         host + "); stop it first or give another --db");
  first.reset();
  DatabaseLock again(db);  // released: taken at once
  DatabaseLock memory(":memory:");  // nothing to lock
}

}  // namespace
}  // namespace prelude::server
