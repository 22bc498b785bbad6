// The pool's stall watchdog (worker/stall_watchdog.h): what counts as a stall, and
// that the thread reports one once, only while armed, and warns before.
#include "stall_watchdog.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/comm.h"

namespace prelude {
namespace {

using namespace std::chrono_literals;
constexpr int64_t kSecond = 1000000000;

TEST(FindStall, AWaitInACollectiveLongerThanTheLimitIsAStall) {
  const int64_t now = 1000 * kSecond;
  // Waiting 5 s in an allreduce, limit 4 s: stalled, naming the collective.
  auto s = find_stall(now - 5 * kSecond, "MPI_Allreduce", now - 100 * kSecond, now, 4000ms);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(*s, "waited 5 s in MPI_Allreduce for the other ranks: one of them is hung, stopped or dead");
  // 3 s of 4: not yet.
  EXPECT_FALSE(find_stall(now - 3 * kSecond, "MPI_Allreduce", now - 100 * kSecond, now, 4000ms));
  // Exactly the limit: not yet (strictly longer).
  EXPECT_FALSE(find_stall(now - 4 * kSecond, "MPI_Allreduce", now - 100 * kSecond, now, 4000ms));
}

TEST(FindStall, AWaitCountsFromTheJobsStartAtTheEarliest) {
  const int64_t now = 1000 * kSecond;
  // The wait began 60 s ago but the job was armed 2 s ago: 2 s of the job's time.
  EXPECT_FALSE(find_stall(now - 60 * kSecond, "MPI_Bcast", now - 2 * kSecond, now, 4000ms));
  EXPECT_TRUE(find_stall(now - 60 * kSecond, "MPI_Bcast", now - 5 * kSecond, now, 4000ms));
}

TEST(FindStall, ARankNotWaitingIsNeverStalledHoweverLongItWorks) {
  const int64_t now = 1000 * kSecond;
  EXPECT_FALSE(find_stall(0, nullptr, now - 100 * kSecond, now, 4000ms));
}

// An activity record the test drives as a rank's collectives would.
struct Fake {
  Communicator::Activity a;
  void enter(const char* what, int64_t since) {
    a.waiting_in.store(what);
    a.waiting_since_ns.store(since);
  }
  void leave() {
    a.last_done_ns.store(steady_now_ns());
    a.waiting_since_ns.store(0);
  }
};

struct Calls {
  std::mutex mu;
  std::vector<std::string> warned, stalled;
  size_t stalls() {
    std::lock_guard<std::mutex> lock(mu);
    return stalled.size();
  }
};

StallWatchOptions fast(std::chrono::milliseconds timeout, std::chrono::milliseconds warn = 0ms) {
  StallWatchOptions o;
  o.timeout = timeout;
  o.warn_after = warn;
  o.poll = 10ms;
  return o;
}

template <typename Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = 3000ms) {
  for (auto t0 = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t0 < limit;) {
    if (p()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return p();
}

TEST(StallWatchdog, ReportsARankLeftInACollectiveOnceNamingTheJob) {
  Fake f;
  Calls c;
  StallWatchdog w(
      f.a, fast(200ms, 100ms),
      [&](const std::string& m) {
        std::lock_guard<std::mutex> lock(c.mu);
        c.warned.push_back(m);
      },
      [&](const std::string& m) {
        std::lock_guard<std::mutex> lock(c.mu);
        c.stalled.push_back(m);
      });
  w.arm("job-000007");
  f.enter("MPI_Wait (a gradient bucket's allreduce)", steady_now_ns());
  ASSERT_TRUE(eventually([&] { return c.stalls() == 1; }));
  std::this_thread::sleep_for(100ms);  // once per armed job, however long it stays
  std::lock_guard<std::mutex> lock(c.mu);
  ASSERT_EQ(c.stalled.size(), 1u);
  EXPECT_EQ(c.stalled[0].rfind("job-000007: waited ", 0), 0u) << c.stalled[0];
  EXPECT_NE(c.stalled[0].find("in MPI_Wait (a gradient bucket's allreduce) for the other ranks"), std::string::npos);
  ASSERT_EQ(c.warned.size(), 1u);  // the warning came first, saying when the pool gives up
  EXPECT_NE(c.warned[0].find("the pool gives up at 0.2 s"), std::string::npos) << c.warned[0];
}

TEST(StallWatchdog, QuietWhileCollectivesComplete) {
  Fake f;
  Calls c;
  StallWatchdog w(f.a, fast(150ms), nullptr, [&](const std::string& m) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.stalled.push_back(m);
  });
  w.arm("job-000001");
  // 600 ms of short collectives, four times the limit in all.
  for (auto t0 = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t0 < 600ms;) {
    f.enter("MPI_Allreduce", steady_now_ns());
    std::this_thread::sleep_for(5ms);
    f.leave();
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(c.stalls(), 0u);
}

TEST(StallWatchdog, DisarmedItIgnoresWaitsAndRearmingStartsAfresh) {
  Fake f;
  Calls c;
  StallWatchdog w(f.a, fast(100ms), nullptr, [&](const std::string& m) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.stalled.push_back(m);
  });
  // Not armed (a pool waiting for work): a long wait is no stall.
  f.enter("MPI_Allreduce", steady_now_ns() - 10 * kSecond);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(c.stalls(), 0u);
  w.arm("job-000002");
  ASSERT_TRUE(eventually([&] { return c.stalls() == 1; }));
  w.disarm();
  w.arm("job-000003");  // a new job: may be reported again
  ASSERT_TRUE(eventually([&] { return c.stalls() == 2; }));
  std::lock_guard<std::mutex> lock(c.mu);
  EXPECT_EQ(c.stalled[1].rfind("job-000003: ", 0), 0u) << c.stalled[1];
}

}  // namespace
}  // namespace prelude
