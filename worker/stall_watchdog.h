// A pool's stall watchdog, after Horovod's stall inspector: while a job trains, a
// thread on every rank watches the rank's collectives (Communicator::Activity). A
// rank that waits in one collective longer than the stall timeout has been left
// there by another rank (hung, stopped or dead): the job cannot go on, and nothing
// inside MPI will end the wait: the watchdog reports it (rank 0 tells the coordinator, which
// requeues the job to resume from its checkpoint) and ends the pool, which its
// supervisor (the coordinator's spawner, or whatever started it) restarts.
//
// No gRPC here: what is done about a stall is the caller's callback.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "engine/comm.h"

namespace prelude {

struct StallWatchOptions {
  // A wait in one collective longer than this is a stall.
  std::chrono::milliseconds timeout{300000};
  // A line in the log once a wait passes this (0: no warning), as Horovod warns at 60 s.
  std::chrono::milliseconds warn_after{60000};
  // How often the thread looks.
  std::chrono::milliseconds poll{500};
};

// What a look at a rank's activity finds at `now_ns`, its job having started at
// `armed_ns` (steady_clock nanoseconds): a description of the stall when the rank
// has waited in one collective (since `waiting_since_ns`, 0: not waiting) longer
// than `limit`, else nullopt. Pure, for tests.
//
// Only waits count. A rank that hangs outside the collectives (its own compute or
// I/O) leaves the others waiting in the next one, and their watchdogs fire; a rank
// busy for long alone (loading a large data set) is not taken for hung.
std::optional<std::string> find_stall(int64_t waiting_since_ns, const char* waiting_in, int64_t armed_ns,
                                      int64_t now_ns, std::chrono::milliseconds limit);

class StallWatchdog {
 public:
  // `on_warn` and `on_stall` run on the watchdog's thread; on_stall at most once
  // per armed job (it normally ends the process).
  StallWatchdog(const Communicator::Activity& activity, StallWatchOptions options,
                std::function<void(const std::string&)> on_warn, std::function<void(const std::string&)> on_stall);
  ~StallWatchdog();
  StallWatchdog(const StallWatchdog&) = delete;
  StallWatchdog& operator=(const StallWatchdog&) = delete;

  // A job starts: progress counts from now. `what` names it in messages.
  void arm(const std::string& what);
  // The job ended (or the pool waits for work, which is no stall).
  void disarm();

 private:
  void loop();

  const Communicator::Activity& activity_;
  const StallWatchOptions options_;
  std::function<void(const std::string&)> on_warn_, on_stall_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false, armed_ = false, warned_ = false, fired_ = false;
  int64_t armed_ns_ = 0;
  std::string what_;
  std::thread thread_;
};

int64_t steady_now_ns();

}  // namespace prelude
