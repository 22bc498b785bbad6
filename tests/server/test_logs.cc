// A job's worker output in the job manager (no gRPC): lines a pool reports are
// numbered, filed under the attempt that wrote them, bounded per attempt (the newest
// kept, the dropped ones counted), escaped, shown only to the job's owner, and woken
// readers see them; a pool without the job's lease adds nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/job_manager.h"
#include "server/store.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;
using namespace std::chrono_literals;
namespace v1 = prelude::v1;

const Caller kAlice{"alice", Role::kUser};
const Caller kBob{"bob", Role::kUser};
const Caller kPool{"pool", Role::kPool};

std::vector<v1::LogLine> lines(std::initializer_list<std::string> texts, int rank = 0) {
  std::vector<v1::LogLine> out;
  int64_t t = 1'700'000'000'000;
  for (const auto& text : texts) {
    v1::LogLine& l = out.emplace_back();
    l.set_rank(rank);
    l.set_time_unix_ms(t++);
    l.set_text(text);
    l.set_seq(999);     // the coordinator's to set: ignored
    l.set_attempt(42);  // likewise
  }
  return out;
}

std::vector<std::string> texts(const LogPage& page) {
  std::vector<std::string> out;
  for (const auto& l : page.lines) out.push_back(l.text());
  return out;
}

class LogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ManagerOptions o;
    o.reaper_thread = false;
    o.now = clock_.fn();
    o.heartbeat_timeout = 5s;
    o.max_log_lines = 4;
    jm_ = std::make_unique<JobManager>(*store_, o);
    job_ = jm_->submit(small_spec(), kAlice).job_id();
    pool_ = jm_->register_pool(pool_request(1, "h"), kPool).pool_id();
    std::string lease;
    ASSERT_TRUE(jm_->acquire(pool_, 0ms, nullptr, kPool, &lease).has_value());
  }
  void report(const std::vector<v1::LogLine>& log) { jm_->report(held(*jm_, pool_), job_, {}, log); }

  FakeClock clock_;
  std::unique_ptr<Store> store_ = std::make_unique<Store>(":memory:");
  std::unique_ptr<JobManager> jm_;
  std::string job_, pool_;
};

TEST_F(LogsTest, LinesAreNumberedInOrderAndFiledUnderTheRunningAttempt) {
  report(lines({"first", "second"}));
  report(lines({"third"}, 1));
  const LogPage page = jm_->logs(job_, 0, 0, {}, kAlice);
  EXPECT_EQ(page.attempt, 1);
  EXPECT_EQ(page.latest_attempt, 1);
  EXPECT_EQ(texts(page), (std::vector<std::string>{"first", "second", "third"}));
  ASSERT_EQ(page.lines.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(page.lines[i].seq(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(page.lines[i].attempt(), 1);
  }
  EXPECT_EQ(page.lines[2].rank(), 1);
  EXPECT_EQ(page.lines[0].time_unix_ms(), 1'700'000'000'000);
  EXPECT_FALSE(page.ended);  // the job still runs
  // after_seq: only what came later.
  EXPECT_EQ(texts(jm_->logs(job_, 0, 2, {}, kAlice)), (std::vector<std::string>{"third"}));
}

TEST_F(LogsTest, AnAttemptKeepsItsNewestLinesAndCountsTheOthers) {
  report(lines({"a", "b", "c"}));
  report(lines({"d", "e", "f"}));  // 6 lines, 4 kept
  const LogPage page = jm_->logs(job_, 0, 0, {}, kAlice);
  EXPECT_EQ(texts(page), (std::vector<std::string>{"c", "d", "e", "f"}));
  EXPECT_EQ(page.dropped, 2);
  EXPECT_EQ(page.lines.front().seq(), 3);  // numbers are not reused
}

TEST_F(LogsTest, APoolsWordsAreOneLineOfPrintableTextOnTheTerminal) {
  report(lines({"\x1b[2Jcleared\nsecond line"}));
  const LogPage page = jm_->logs(job_, 0, 0, {}, kAlice);
  ASSERT_EQ(page.lines.size(), 1u);
  EXPECT_EQ(page.lines[0].text().find('\x1b'), std::string::npos);
  EXPECT_EQ(page.lines[0].text().find('\n'), std::string::npos);
  EXPECT_NE(page.lines[0].text().find("cleared"), std::string::npos);
}

TEST_F(LogsTest, OnlyTheOwnerSeesThemAndAnotherUserGetsTheUnknownJobsAnswer) {
  report(lines({"secret"}));
  std::string bob, unknown;
  try {
    jm_->logs(job_, 0, 0, {}, kBob);
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    bob = e.what();
  }
  try {
    jm_->logs("job-999999", 0, 0, {}, kBob);
  } catch (const ServiceError& e) {
    unknown = e.what();
  }
  ASSERT_FALSE(bob.empty());
  const auto with_id_as = [](std::string text, const std::string& id) {
    const size_t at = text.find(id);
    return at == std::string::npos ? text : text.replace(at, id.size(), "ID");
  };
  EXPECT_EQ(with_id_as(bob, job_), with_id_as(unknown, "job-999999"));
}

TEST_F(LogsTest, APoolWithoutTheLeaseAddsNothing) {
  PoolCall forged = held(*jm_, pool_);
  forged.lease = "00000000000000000000000000000000";
  EXPECT_THROW(jm_->report(forged, job_, {}, lines({"forged"})), ServiceError);
  EXPECT_TRUE(jm_->logs(job_, 0, 0, {}, kAlice).lines.empty());
}

TEST_F(LogsTest, EachAttemptHasItsOwnLinesAndAnEndedAttemptSaysSo) {
  report(lines({"attempt one"}));
  clock_.advance(6s);  // the pool falls silent: the job is requeued
  jm_->reap_lost_pools();
  const std::string pool2 = jm_->register_pool(pool_request(1, "h2"), kPool).pool_id();
  std::string lease;
  ASSERT_TRUE(jm_->acquire(pool2, 0ms, nullptr, kPool, &lease).has_value());
  jm_->report(held(*jm_, pool2), job_, {}, lines({"attempt two"}));

  const LogPage latest = jm_->logs(job_, 0, 0, {}, kAlice);
  EXPECT_EQ(latest.attempt, 2);
  EXPECT_EQ(texts(latest), (std::vector<std::string>{"attempt two"}));
  EXPECT_FALSE(latest.ended);
  const LogPage first = jm_->logs(job_, 1, 0, {}, kAlice);
  EXPECT_EQ(texts(first), (std::vector<std::string>{"attempt one"}));
  EXPECT_TRUE(first.ended);  // a later attempt began: nothing more will come
  try {
    jm_->logs(job_, 3, 0, {}, kAlice);
    ADD_FAILURE() << "attempt 3 of a job with 2";
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("2 attempts"), std::string::npos) << e.what();
  }
  EXPECT_THROW(jm_->logs(job_, -1, 0, {}, kAlice), ServiceError);
  EXPECT_THROW(jm_->logs(job_, 0, -1, {}, kAlice), ServiceError);

  jm_->finish(held(*jm_, pool2), job_, v1::SUCCEEDED, "");
  EXPECT_TRUE(jm_->logs(job_, 0, 0, {}, kAlice).ended);
}

TEST_F(LogsTest, AWaitingReaderIsWokenByNewLines) {
  auto reader = std::async(std::launch::async, [&] {
    return jm_->logs(job_, 0, 0, SteadyClock::now() + 20s, kAlice);  // returns at the first line, not in 20 s
  });
  ASSERT_EQ(reader.wait_for(200ms), std::future_status::timeout);  // nothing yet: it waits
  report(lines({"news"}));
  ASSERT_EQ(reader.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(texts(reader.get()), (std::vector<std::string>{"news"}));
}

TEST_F(LogsTest, DeletingTheJobDeletesItsLines) {
  report(lines({"gone soon"}));
  jm_->finish(held(*jm_, pool_), job_, v1::SUCCEEDED, "");
  jm_->remove(job_, kAlice);
  EXPECT_TRUE(store_->logs(job_, 1, 0, 100).empty());
  EXPECT_EQ(store_->dropped_logs(job_, 1), 0);
}

}  // namespace
}  // namespace prelude::server
