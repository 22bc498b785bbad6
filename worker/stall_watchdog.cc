#include "stall_watchdog.h"

#include <cstdio>

namespace prelude {

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

std::string seconds(int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", static_cast<double>(ns) / 1e9);
  return buf;
}

}  // namespace

std::optional<std::string> find_stall(int64_t waiting_since_ns, const char* waiting_in, int64_t armed_ns,
                                      int64_t now_ns, std::chrono::milliseconds limit) {
  if (waiting_since_ns == 0) return std::nullopt;  // computing, loading, writing: not waiting on anyone
  const int64_t limit_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(limit).count();
  // A wait that began before the job did is not the job's (it cannot be: the pool's
  // idle wait is not watched); count from the later of the two.
  const int64_t since = std::max(waiting_since_ns, armed_ns);
  if (now_ns - since <= limit_ns) return std::nullopt;
  return std::string("waited ") + seconds(now_ns - since) + " in " + (waiting_in ? waiting_in : "a collective") +
         " for the other ranks: one of them is hung, stopped or dead";
}

StallWatchdog::StallWatchdog(const Communicator::Activity& activity, StallWatchOptions options,
                             std::function<void(const std::string&)> on_warn,
                             std::function<void(const std::string&)> on_stall)
    : activity_(activity),
      options_(options),
      on_warn_(std::move(on_warn)),
      on_stall_(std::move(on_stall)),
      thread_([this] { loop(); }) {}

StallWatchdog::~StallWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void StallWatchdog::arm(const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = true;
  warned_ = fired_ = false;
  armed_ns_ = steady_now_ns();
  what_ = what;
}

void StallWatchdog::disarm() {
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = false;
}

void StallWatchdog::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    wake_.wait_for(lock, options_.poll);
    if (stopping_ || !armed_ || fired_) continue;
    const int64_t waiting_since = activity_.waiting_since_ns.load(std::memory_order_acquire);
    const char* waiting_in = activity_.waiting_in.load(std::memory_order_relaxed);
    const int64_t now = steady_now_ns();
    if (auto stall = find_stall(waiting_since, waiting_in, armed_ns_, now, options_.timeout)) {
      fired_ = true;
      const std::string message = what_ + ": " + *stall;
      lock.unlock();  // the callback may take long (it talks to the coordinator)
      on_stall_(message);
      lock.lock();
      continue;
    }
    if (!warned_ && options_.warn_after.count() > 0 && options_.warn_after < options_.timeout) {
      if (auto slow = find_stall(waiting_since, waiting_in, armed_ns_, now, options_.warn_after)) {
        warned_ = true;
        const std::string message = what_ + ": " + *slow + " (the pool gives up at " +
                                    seconds(std::chrono::duration_cast<std::chrono::nanoseconds>(options_.timeout).count()) +
                                    ")";
        lock.unlock();
        if (on_warn_) on_warn_(message);
        lock.lock();
      }
    }
  }
}

}  // namespace prelude
