#include "client/watch.h"

#include <algorithm>
#include <map>
#include <thread>
#include <utility>

#include "client/render.h"
#include "common/grpc_status.h"
#include "common/job_state.h"
#include "spec/events.h"

namespace prelude::client {

namespace v1 = prelude::v1;

namespace {

// The watch's output: permanent lines, and on a live console one progress line
// redrawn in place below them.
class Display {
 public:
  explicit Display(Console& console) : console_(console) {}
  ~Display() { clear_progress(); }

  void line(const std::string& text) {
    clear_progress();
    console_.out << text << '\n' << std::flush;
  }

  // A step: redrawn in place on a live console, a plain line otherwise.
  void progress(const std::string& live_text, const std::string& plain_text) {
    if (!console_.live) {
      line(plain_text);
      return;
    }
    redraw(live_text);
  }

  // Redrawn in place on a live console; nothing otherwise (a summary that would
  // only repeat the lines in a log).
  void live_only(const std::string& live_text) {
    if (console_.live) redraw(live_text);
  }

  // A message on stderr; clears the progress line first (both may be the terminal).
  void note(const std::string& text) {
    clear_progress();
    console_.err << text << '\n' << std::flush;
  }

  void clear_progress() {
    if (!progress_shown_) return;
    console_.out << "\r\x1b[K" << std::flush;
    progress_shown_ = false;
  }

 private:
  void redraw(const std::string& text) {
    console_.out << '\r' << text << "\x1b[K" << std::flush;
    progress_shown_ = true;
  }

  Console& console_;
  bool progress_shown_ = false;
};

std::string seconds_text(std::chrono::milliseconds d) {
  return compact(static_cast<double>(d.count()) / 1000) + "s";
}

// What follows a broken stream, for both watches: give up (a CallError) when the
// error will not pass or the retries are spent, else a note on stderr and a wait
// before the caller opens the stream again.
class Reconnection {
 public:
  // `stream` names it in notes ("the event stream of job-1"); `id` what is watched.
  Reconnection(Coordinator& coordinator, Display& display, const WatchRetry& retry, std::string stream,
               std::string id)
      : coordinator_(coordinator), display_(display), retry_(retry), stream_(std::move(stream)), id_(std::move(id)) {}

  // A message arrived: the stream works again, the count starts again.
  void received() { failures_ = 0; }

  // The stream ended with `status` before what it watches did (an OK status too:
  // the stream should not have ended). Throws or waits.
  void after_break(grpc::Status status, const std::string& ended_early) {
    if (status.ok()) status = grpc::Status(grpc::StatusCode::UNAVAILABLE, ended_early);
    if (!is_retryable(from_grpc(status.error_code()))) {
      display_.clear_progress();
      throw coordinator_.error(status);
    }
    const CallError error = coordinator_.error(status);
    if (failures_ >= retry_.delays.size()) {
      display_.clear_progress();
      throw CallError(error.code(), "gave up watching " + id_ + " after " + std::to_string(failures_) +
                                        " reconnections; last error: " + error.message());
    }
    const auto delay = retry_.delays[failures_++];
    display_.note("prelude: lost " + stream_ + " (" + error.what() + "); reconnecting in " + seconds_text(delay) +
                  " (" + std::to_string(failures_) + "/" + std::to_string(retry_.delays.size()) + ")");
    std::this_thread::sleep_for(delay);
  }

 private:
  Coordinator& coordinator_;
  Display& display_;
  const WatchRetry& retry_;
  std::string stream_, id_;
  size_t failures_ = 0;  // reconnections since the last message
};

bool all_ended(const v1::SweepStatus& status) {
  return std::all_of(status.jobs().begin(), status.jobs().end(), [](const v1::Job& j) { return is_final(j.state()); });
}

}  // namespace

int watch_job(Session& session, const std::string& job_id, const WatchRetry& retry) {
  Coordinator& coordinator = session.coordinator();
  // The spec gives the epoch count and batch size that progress and ETA need.
  const JobShape shape = job_shape(coordinator.get_job(job_id).spec());

  Display display(session.console());
  Reconnection reconnection(coordinator, display, retry, "the event stream of " + job_id, job_id);
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  std::string reason;
  int64_t last_seq = 0;
  while (true) {
    auto stream = coordinator.watch_job(job_id, last_seq);
    v1::JobEvent event;
    while (stream->next(&event)) {
      last_seq = event.seq();
      reconnection.received();
      if (event.has_state_change()) {
        state = event.state_change().state();
        reason = event.state_change().reason();
      }
      if (event.has_training() && event_kind(event.training()) == v1::TrainingEvent::STEP) {
        display.progress(progress_line(state, event.training(), shape, session.console().columns),
                         event_line(event, shape));
        continue;
      }
      const std::string text = event_line(event, shape);
      if (!text.empty()) display.line(text);
    }
    const grpc::Status status = stream->finish();
    if (is_final(state)) break;
    // The stream ends after the final event; ending before it is a break too.
    reconnection.after_break(status, "the event stream ended before the job did");
  }
  display.line(final_line(job_id, state, reason));
  return state == v1::SUCCEEDED ? kExitOk : kExitJobFailed;
}

int watch_sweep(Session& session, const std::string& sweep_id, const WatchRetry& retry) {
  Coordinator& coordinator = session.coordinator();
  Display display(session.console());
  Reconnection reconnection(coordinator, display, retry, "the status stream of " + sweep_id, sweep_id);
  // Each job's state as last printed (and whether it was stopping then): every status
  // carries every job, and a restarted coordinator starts over with the whole sweep.
  std::map<std::string, std::pair<v1::JobState, bool>> shown;
  v1::SweepStatus latest;
  bool received = false;
  while (true) {
    auto stream = coordinator.watch_sweep(sweep_id);
    v1::SweepStatus status;
    while (stream->next(&status)) {
      reconnection.received();
      received = true;
      for (const v1::Job& job : status.jobs()) {
        const std::pair<v1::JobState, bool> now = {job.state(), stopping(job)};
        const auto it = shown.find(job.job_id());
        if (it != shown.end() && it->second == now) continue;
        shown[job.job_id()] = now;
        display.line(sweep_job_line(job));
      }
      display.live_only(sweep_progress_line(status, session.console().columns));
      latest = std::move(status);
    }
    const grpc::Status status_of_stream = stream->finish();
    if (received && all_ended(latest)) break;
    // The stream ends after the status in which every job has ended; ending before it is a break too.
    reconnection.after_break(status_of_stream, "the status stream ended before the sweep did");
  }
  display.line(sweep_final_line(latest));
  const bool all_succeeded = std::all_of(latest.jobs().begin(), latest.jobs().end(),
                                         [](const v1::Job& j) { return j.state() == v1::SUCCEEDED; });
  return all_succeeded ? kExitOk : kExitJobFailed;
}

}  // namespace prelude::client
