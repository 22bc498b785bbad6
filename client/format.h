// How single values look in the client's output: numbers, times, durations, state
// and model names, and aligned text tables.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <google/protobuf/timestamp.pb.h>

#include "prelude/v1/service.pb.h"

namespace prelude::client {

using Clock = std::chrono::system_clock;

// Fixed decimals for people: fixed(0.45214, 4) = "0.4521"; "nan", "inf".
std::string fixed(double v, int decimals);
// Six significant digits, no trailing zeros: "0.01", "5e-05", "1023.5".
std::string compact(double v);
// The shortest text that reads back as the same double ("0.1", not
// "0.10000000000000001"): for CSV, where numbers are data.
std::string exact(double v);

// A span of time for people: "42s", "3m05s", "1h02m", "2d03h"; "?" when not finite
// or negative.
std::string duration(double seconds);
// How long ago `t` was, coarsely: "42s", "5m", "3h", "2d"; "-" for an unset time.
std::string age(const google::protobuf::Timestamp& t, Clock::time_point now);

bool is_set(const google::protobuf::Timestamp& t);
// RFC 3339 in UTC to the second: "2026-11-23T11:12:00Z"; "-" for an unset time.
std::string timestamp(const google::protobuf::Timestamp& t);
// A line of a job's worker output as `prelude logs` prints it:
// "2026-11-29T21:40:03.125Z rank 1  text".
std::string log_line_text(const prelude::v1::LogLine& line);
double seconds_between(const google::protobuf::Timestamp& from, const google::protobuf::Timestamp& to);
Clock::time_point to_time_point(const google::protobuf::Timestamp& t);

// "QUEUED", "RUNNING", ...; "UNKNOWN" for JOB_STATE_UNSPECIFIED.
std::string state_name(prelude::v1::JobState state);
// A running job whose cancel was requested: it stops at its next step.
bool stopping(const prelude::v1::Job& job);

// The spec with every default of job.proto filled in (a coordinator already sends
// it so; this makes the client independent of that).
prelude::v1::JobSpec with_defaults(const prelude::v1::JobSpec& spec);
// "kaiming-normal", "xavier-uniform", with "/fan-out" and "/(1+a)" when not default.
std::string init_name(const prelude::v1::InitSpec& init);
// The MODEL column: preset (or "custom(N layers)"), activation, init scheme, e.g.
// "cnn-small prelu-cw kaiming-normal" or "plain-30 leaky(a=0.2) xavier-uniform".
std::string model_summary(const prelude::v1::JobSpec& spec);

// At most `max_chars` characters, the end replaced by "..." when cut.
std::string truncate(const std::string& s, size_t max_chars);

// A size for people, in powers of 1024: "812 B", "4.2 KiB", "37 MiB", "1.1 GiB".
std::string byte_size(int64_t bytes);

// Columns separated by two spaces, left-aligned unless set right-aligned (counts,
// so that their digits line up); trailing spaces are dropped.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void align_right(size_t column);
  std::string render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
  std::vector<bool> right_;  // per column; columns past its end are left-aligned
};

}  // namespace prelude::client
