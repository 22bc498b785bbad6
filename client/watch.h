// `prelude watch` (and `submit --watch`): a job's events, as they happen, to its end.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "client/session.h"

namespace prelude::client {

// How a broken event stream (a coordinator restart, a network blip) is resumed:
// one reconnection per entry, after that wait, from the last event seen. Receiving
// an event starts the count again.
struct WatchRetry {
  std::vector<std::chrono::milliseconds> delays = {std::chrono::milliseconds(250), std::chrono::seconds(1),
                                                   std::chrono::seconds(2), std::chrono::seconds(4),
                                                   std::chrono::seconds(8)};
};

// Prints the job's history, then each new event, until the job ends; then its
// final state. On a live console, step events redraw one progress line in place;
// otherwise every shown event is a plain line. Returns kExitOk when the job
// SUCCEEDED and kExitJobFailed when it FAILED or was CANCELLED; throws CallError
// when the job cannot be watched (unknown id, refused, coordinator gone for good).
int watch_job(Session& session, const std::string& job_id, const WatchRetry& retry = {});

}  // namespace prelude::client
