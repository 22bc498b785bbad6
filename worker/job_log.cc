#include "job_log.h"

#include <chrono>
#include <cstdint>
#include <stdexcept>

#include "common/text.h"


namespace prelude {

namespace {

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

JobLog& JobLog::process() {
  static JobLog log;
  return log;
}

void JobLog::start(int rank) {
  std::lock_guard<std::mutex> lock(mu_);
  on_ = true;
  rank_ = rank;
  lines_.clear();
  dropped_ = 0;
}

void JobLog::stop() {
  std::lock_guard<std::mutex> lock(mu_);
  on_ = false;
}

void JobLog::add(const std::string& text) {
  const int64_t now = now_unix_ms();
  std::lock_guard<std::mutex> lock(mu_);
  if (!on_) return;
  for (size_t begin = 0; begin <= text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    if (end > begin || text.empty()) {
      v1::LogLine& l = lines_.emplace_back();
      l.set_rank(rank_);
      l.set_time_unix_ms(now);
      // Valid UTF-8 (a protobuf string must be), without terminal controls.
      l.set_text(escape_control(std::string_view(text).substr(begin, end - begin)));
      if (lines_.size() > max_lines_) {
        lines_.pop_front();
        ++dropped_;
      }
    }
    begin = end + 1;
  }
}

void JobLog::put(std::vector<v1::LogLine> lines) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!on_) return;
  for (auto& l : lines) {
    lines_.push_back(std::move(l));
    if (lines_.size() > max_lines_) {
      lines_.pop_front();
      ++dropped_;
    }
  }
}

std::vector<v1::LogLine> JobLog::take() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::LogLine> out;
  out.reserve(lines_.size() + 1);
  if (dropped_ > 0) {
    v1::LogLine& l = out.emplace_back();
    l.set_rank(rank_);
    l.set_time_unix_ms(lines_.empty() ? now_unix_ms() : lines_.front().time_unix_ms());
    l.set_text("(" + std::to_string(dropped_) + " lines dropped here: written faster than they could be sent)");
    dropped_ = 0;
  }
  for (auto& l : lines_) out.push_back(std::move(l));
  lines_.clear();
  return out;
}

// Each line as a 4-byte little-endian length and its message.
std::string JobLog::serialize(const std::vector<v1::LogLine>& lines) {
  std::string out;
  for (const auto& l : lines) {
    const std::string bytes = l.SerializeAsString();
    const uint32_t n = static_cast<uint32_t>(bytes.size());
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    out += bytes;
  }
  return out;
}

std::vector<v1::LogLine> JobLog::parse(const std::string& bytes) {
  std::vector<v1::LogLine> out;
  for (size_t at = 0; at < bytes.size();) {
    if (bytes.size() - at < 4) throw std::runtime_error("a rank's log lines did not arrive intact");
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
    at += 4;
    if (bytes.size() - at < n || !out.emplace_back().ParseFromArray(bytes.data() + at, static_cast<int>(n)))
      throw std::runtime_error("a rank's log lines did not arrive intact");
    at += n;
  }
  return out;
}

}  // namespace prelude
