#include "client/format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iterator>

#include "common/job_state.h"
#include "spec/job_spec.h"

namespace prelude::client {

namespace v1 = prelude::v1;

namespace {

std::string printf_double(const char* format, int precision, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, precision, v);
  return buf;
}

}  // namespace

std::string fixed(double v, int decimals) { return printf_double("%.*f", decimals, v); }

std::string compact(double v) { return printf_double("%.*g", 6, v); }

std::string exact(double v) {
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof buf, v);  // shortest round trip: "640", "0.1", "1e-05"
  return std::string(buf, result.ptr);
}

std::string duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = std::llround(seconds);
  char buf[48];
  if (s < 60) std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else if (s < 86400) std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s % 3600 / 60);
  else std::snprintf(buf, sizeof buf, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
  return buf;
}

std::string age(const google::protobuf::Timestamp& t, Clock::time_point now) {
  if (!is_set(t)) return "-";
  const auto s = std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(now - to_time_point(t)).count());
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

bool is_set(const google::protobuf::Timestamp& t) { return t.seconds() != 0 || t.nanos() != 0; }

namespace {

// "2026-11-29T21:40:03" and, given, ".125", then "Z": UTC, whole seconds floored.
std::string utc_text(int64_t seconds, int millis) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buf[48];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  if (millis >= 0) n += std::snprintf(buf + n, sizeof buf - n, ".%03d", millis);
  std::snprintf(buf + n, sizeof buf - n, "Z");
  return buf;
}

}  // namespace

std::string timestamp(const google::protobuf::Timestamp& t) {
  return is_set(t) ? utc_text(t.seconds(), -1) : "-";
}

std::string log_line_text(const v1::LogLine& line) {
  const int64_t ms = line.time_unix_ms();
  const int64_t seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  return utc_text(seconds, static_cast<int>(ms - seconds * 1000)) + " rank " + std::to_string(line.rank()) + "  " +
         line.text();
}

double seconds_between(const google::protobuf::Timestamp& from, const google::protobuf::Timestamp& to) {
  return static_cast<double>(to.seconds() - from.seconds()) + (to.nanos() - from.nanos()) * 1e-9;
}

Clock::time_point to_time_point(const google::protobuf::Timestamp& t) {
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
      std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos())));
}

std::string state_name(v1::JobState state) {
  if (state == v1::JOB_STATE_UNSPECIFIED || !v1::JobState_IsValid(state)) return "UNKNOWN";
  return v1::JobState_Name(state);
}

bool stopping(const v1::Job& job) { return job.cancel_requested() && !is_final(job.state()); }

v1::JobSpec with_defaults(const v1::JobSpec& spec) {
  v1::JobSpec copy = spec;
  try {
    apply_defaults(&copy);
  } catch (const std::exception&) {
    return spec;  // a spec the coordinator accepted but this client cannot default: show it as sent
  }
  return copy;
}

std::string init_name(const v1::InitSpec& init) {
  std::string name;
  switch (init.scheme()) {
    case v1::InitSpec::XAVIER_UNIFORM: name = "xavier-uniform"; break;
    case v1::InitSpec::XAVIER_NORMAL: name = "xavier-normal"; break;
    case v1::InitSpec::KAIMING_NORMAL: name = "kaiming-normal"; break;
    case v1::InitSpec::KAIMING_UNIFORM: name = "kaiming-uniform"; break;
    default: name = "init?"; break;
  }
  if (init.mode() == v1::InitSpec::FAN_OUT) name += "/fan-out";
  if (init.kaiming_factor() == v1::InitSpec::ONE_PLUS_A) name += "/(1+a)";
  return name;
}

std::string model_summary(const v1::JobSpec& spec) {
  const v1::ModelSpec model = with_defaults(spec).model();
  std::string base = model.preset();
  if (base.empty()) base = "custom(" + std::to_string(model.layers_size()) + " layers)";
  v1::LayerSpec activation;
  *activation.mutable_activation() = model.activation();
  // describe_layers names an activation as the engine does: "prelu-cw", "leaky(a=0.2)".
  return base + " " + describe_layers({activation}) + " " + init_name(model.init());
}

std::string truncate(const std::string& s, size_t max_chars) {
  if (s.size() <= max_chars) return s;
  if (max_chars <= 3) return s.substr(0, max_chars);
  size_t cut = max_chars - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
  return s.substr(0, cut) + "...";
}

std::string byte_size(int64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static const char* const units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (v >= 1023.5 && unit + 1 < std::size(units)) {  // 1023.6 KiB reads as 1.0 MiB, not 1024 KiB
    v /= 1024;
    ++unit;
  }
  // One decimal while it says something ("4.2 MiB"), none from 10 on ("37 MiB").
  return (v < 9.95 ? fixed(v, 1) : fixed(v, 0)) + " " + units[unit];
}

void Table::align_right(size_t column) {
  if (right_.size() <= column) right_.resize(column + 1, false);
  right_[column] = true;
}

std::string Table::render() const {
  std::vector<size_t> widths;
  for (const auto& row : rows_)
    for (size_t c = 0; c < row.size(); ++c) {
      if (widths.size() <= c) widths.push_back(0);
      widths[c] = std::max(widths[c], row[c].size());
    }
  std::string text;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string padding(widths[c] - row[c].size(), ' ');
      const bool right = c < right_.size() && right_[c];
      line += right ? padding + row[c] : row[c];
      if (c + 1 < row.size()) line += (right ? "" : padding) + "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    text += line + "\n";
  }
  return text;
}

}  // namespace prelude::client
