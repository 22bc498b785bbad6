#include "client/watch.h"

#include <thread>

#include "client/render.h"

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
    console_.out << '\r' << live_text << "\x1b[K" << std::flush;
    progress_shown_ = true;
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
  Console& console_;
  bool progress_shown_ = false;
};

// Codes after which the same call may well work a moment later.
bool worth_retrying(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:  // the coordinator shut down while streaming
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

std::string seconds_text(std::chrono::milliseconds d) {
  return compact(static_cast<double>(d.count()) / 1000) + "s";
}

}  // namespace

int watch_job(Session& session, const std::string& job_id, const WatchRetry& retry) {
  Coordinator& coordinator = session.coordinator();
  // The spec gives the epoch count and batch size that progress and ETA need.
  const JobShape shape = job_shape(coordinator.get_job(job_id).spec());

  Display display(session.console());
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  std::string reason;
  int64_t last_seq = 0;
  size_t failures = 0;  // reconnections since the last event
  while (true) {
    auto stream = coordinator.watch_job(job_id, last_seq);
    v1::JobEvent event;
    while (stream->next(&event)) {
      last_seq = event.seq();
      failures = 0;
      if (event.has_state_change()) {
        state = event.state_change().state();
        reason = event.state_change().reason();
      }
      if (event.has_training() && event.training().event() == "step") {
        display.progress(progress_line(state, event.training(), shape, session.console().columns),
                         event_line(event, shape));
        continue;
      }
      const std::string text = event_line(event, shape);
      if (!text.empty()) display.line(text);
    }
    grpc::Status status = stream->finish();
    if (is_final(state)) break;
    // The stream ends after the final event; ending before it is a break too.
    if (status.ok()) status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the event stream ended before the job did");
    if (!worth_retrying(status.error_code())) {
      display.clear_progress();
      throw coordinator.error(status);
    }
    const CallError error = coordinator.error(status);
    if (failures >= retry.delays.size()) {
      display.clear_progress();
      throw CallError(error.code(), "gave up watching " + job_id + " after " + std::to_string(failures) +
                                        " reconnections; last error: " + error.message());
    }
    const auto delay = retry.delays[failures++];
    display.note("prelude: lost the event stream of " + job_id + " (" + error.what() + "); reconnecting in " +
                 seconds_text(delay) + " (" + std::to_string(failures) + "/" + std::to_string(retry.delays.size()) +
                 ")");
    std::this_thread::sleep_for(delay);
  }
  display.line(final_line(job_id, state, reason));
  return state == v1::SUCCEEDED ? kExitOk : kExitJobFailed;
}

}  // namespace prelude::client
