// A pool's output during one job, kept for the coordinator (`prelude logs`): every
// line the worker writes while a job runs (progress, warnings, errors), with its rank
// and time. Rank 0 sends its own lines with each report; the other ranks' are gathered
// to rank 0 when the attempt ends. No gRPC here: lines are LogLine messages.
#pragma once

#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "prelude/v1/job.pb.h"

namespace prelude {

class JobLog {
 public:
  // At most `max_lines` wait to be taken; beyond that the oldest go, and a line saying
  // how many went takes their place when they are next taken.
  explicit JobLog(size_t max_lines = 5000) : max_lines_(max_lines) {}

  // The process's log (serve.cc's `log` writes to it).
  static JobLog& process();

  // From now on lines are kept, as written by `rank`; what was kept before is dropped.
  void start(int rank);
  // Lines are no longer kept (between jobs).
  void stop();
  // Keeps `text` (one line per '\n'-separated part, control characters and bytes that
  // are not UTF-8 escaped as common/text.h does) when started; otherwise nothing.
  void add(const std::string& text);
  // Keeps lines as they are (another rank's, with their rank and time) when started.
  void put(std::vector<prelude::v1::LogLine> lines);
  // The lines kept since the last take, oldest first.
  std::vector<prelude::v1::LogLine> take();

  // Lines to bytes and back (gathering the other ranks' lines); parse throws
  // std::runtime_error on bytes that are not such lines.
  static std::string serialize(const std::vector<prelude::v1::LogLine>& lines);
  static std::vector<prelude::v1::LogLine> parse(const std::string& bytes);

 private:
  const size_t max_lines_;
  std::mutex mu_;
  bool on_ = false;
  int rank_ = 0;
  std::deque<prelude::v1::LogLine> lines_;
  size_t dropped_ = 0;
};

}  // namespace prelude
