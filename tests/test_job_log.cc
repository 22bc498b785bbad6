// The lines a pool keeps of a job's output (worker/job_log.h): kept only between
// start and stop, one LogLine per line of text with the rank that wrote it, bounded
// (the oldest go, and a line says how many), and carried between ranks as bytes that
// come back the same (or are refused, never misread).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "job_log.h"

namespace prelude {
namespace {

std::vector<std::string> texts(const std::vector<v1::LogLine>& lines) {
  std::vector<std::string> out;
  for (const auto& l : lines) out.push_back(l.text());
  return out;
}

TEST(JobLog, KeepsLinesOnlyWhileStartedWithTheirRank) {
  JobLog log;
  log.add("before any job");
  log.start(3);
  log.add("one\ntwo\n");  // two lines; the trailing newline makes no empty third
  log.add("");            // an empty line is a line
  log.stop();
  log.add("after the job");
  const auto lines = log.take();
  EXPECT_EQ(texts(lines), (std::vector<std::string>{"one", "two", ""}));
  for (const auto& l : lines) {
    EXPECT_EQ(l.rank(), 3);
    EXPECT_GT(l.time_unix_ms(), 1'600'000'000'000);  // now, in ms since 1970 (after 2020)
  }
  EXPECT_TRUE(log.take().empty());  // taken once
}

TEST(JobLog, TextIsKeptAsValidUtf8WithoutTerminalControls) {
  // A protobuf string must be UTF-8: one bad byte would make the pool's whole report
  // unreadable to the coordinator.
  JobLog log;
  log.start(0);
  log.add("file \xff\xfe.idx: \x1b[31mred\x1b[0m caf\xc3\xa9");
  const auto lines = log.take();
  ASSERT_EQ(lines.size(), 1u);
  const std::string& t = lines[0].text();
  EXPECT_EQ(t.find('\xff'), std::string::npos) << t;
  EXPECT_EQ(t.find('\x1b'), std::string::npos) << t;
  EXPECT_NE(t.find("caf\xc3\xa9"), std::string::npos) << t;  // valid UTF-8 stays
  v1::LogLine back;
  ASSERT_TRUE(back.ParseFromString(lines[0].SerializeAsString()));
  EXPECT_EQ(back.text(), t);
}

TEST(JobLog, StartingAgainForgetsTheLastJobsLines) {
  JobLog log;
  log.start(0);
  log.add("old job");
  log.start(0);
  log.add("new job");
  EXPECT_EQ(texts(log.take()), (std::vector<std::string>{"new job"}));
}

TEST(JobLog, TooManyLinesDropTheOldestAndSaySoWhereTheyWere) {
  JobLog log(3);
  log.start(1);
  for (int i = 1; i <= 5; ++i) log.add("line " + std::to_string(i));
  const auto lines = log.take();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_NE(lines[0].text().find("2 lines dropped"), std::string::npos) << lines[0].text();
  EXPECT_EQ(texts({lines.begin() + 1, lines.end()}), (std::vector<std::string>{"line 3", "line 4", "line 5"}));
  log.add("later");
  EXPECT_EQ(texts(log.take()), (std::vector<std::string>{"later"}));  // the count was given once
}

TEST(JobLog, AnotherRanksLinesKeepTheirRankAndTime) {
  JobLog theirs, ours;
  theirs.start(1);
  theirs.add("from rank 1");
  const auto sent = theirs.take();
  ours.start(0);
  ours.put(JobLog::parse(JobLog::serialize(sent)));
  const auto got = ours.take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rank(), 1);
  EXPECT_EQ(got[0].time_unix_ms(), sent[0].time_unix_ms());
  EXPECT_EQ(got[0].text(), "from rank 1");
}

TEST(JobLog, BytesComeBackTheSameOrAreRefused) {
  std::vector<v1::LogLine> lines(3);
  lines[0].set_text(std::string(1, '\0') + "NUL and UTF-8: \xc3\xa9");
  lines[1].set_rank(7);
  lines[2].set_text(std::string(100000, 'x'));
  const std::string bytes = JobLog::serialize(lines);
  const auto back = JobLog::parse(bytes);
  ASSERT_EQ(back.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(back[i].SerializeAsString(), lines[i].SerializeAsString());
  EXPECT_TRUE(JobLog::parse("").empty());
  EXPECT_THROW(JobLog::parse(bytes.substr(0, bytes.size() - 1)), std::runtime_error);  // cut short
  EXPECT_THROW(JobLog::parse(bytes.substr(0, 2)), std::runtime_error);                // a length cut short
  std::string bad = bytes;
  bad[4] = '\xff';  // the first line's message is no longer a LogLine
  EXPECT_THROW(JobLog::parse(bad), std::runtime_error);
}

}  // namespace
}  // namespace prelude
