// `prelude watch` (and `submit --watch`, `sweep --watch`): a job's events, or a
// sweep's job states, as they happen, to the end.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "client/session.h"

namespace prelude::client {

// How a broken stream (a coordinator restart, a network blip) is resumed: one
// reconnection per entry, after that wait (a job's events from the last one seen, a
// sweep's status afresh). Receiving an event or a status starts the count again.
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

// Prints one line per change of a sweep job's state (sweep_job_line) as the
// coordinator streams the sweep's status, until every job has ended; then how many
// succeeded (sweep_final_line). The first status shows every job's state; a
// reconnection's status prints only what changed since. On a live console, one
// progress line for the whole sweep is redrawn below the lines. Returns kExitOk when
// every job SUCCEEDED and kExitJobFailed when any FAILED or was CANCELLED; throws
// CallError when the sweep cannot be watched (unknown id, refused, coordinator gone
// for good).
int watch_sweep(Session& session, const std::string& sweep_id, const WatchRetry& retry = {});

}  // namespace prelude::client
