// The audit log (server/audit_log.h) on its own: entries recorded and read back
// newest first, filters, pages and their tokens, bad queries named, strings escaped
// and bounded, the newest `keep` rows kept, refusals rate-limited and summarised
// (on a fake clock), a disk that refuses writes, and its table beside the Store's.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "common/status.h"
#include "server/audit_log.h"
#include "server/store.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;
using namespace std::chrono_literals;

constexpr int64_t kT0 = 1767323045000;  // 2026-01-02T03:04:05Z, in ms

// A wall clock that moves only when told to.
struct ManualClock {
  std::shared_ptr<std::atomic<int64_t>> ms = std::make_shared<std::atomic<int64_t>>(kT0);
  std::function<int64_t()> fn() const {
    auto p = ms;
    return [p] { return p->load(); };
  }
  void advance(int64_t d) { ms->fetch_add(d); }
};

AuditEntry entry(const std::string& user, const std::string& action, const std::string& target = "",
                 const std::string& outcome = kOutcomeOk) {
  AuditEntry e;
  e.user = user;
  e.role = "user";
  e.peer = "ipv4:127.0.0.1:40000";
  e.action = action;
  e.target = target;
  e.outcome = outcome;
  return e;
}

AuditEntry refusal(const std::string& peer) {
  AuditEntry e;
  e.peer = peer;
  e.action = kTokenRefused;
  e.outcome = "UNAUTHENTICATED: wrong token";
  return e;
}

// Rows of the table as SQLite counts them, through a connection of the test's own.
int64_t count_rows(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM audit", -1, &s, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
  const int64_t n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

// Every entry matching `q`, page after page.
std::vector<AuditEntry> all_pages(AuditLog& log, AuditQuery q) {
  std::vector<AuditEntry> out;
  for (int pages = 0; pages < 10000; ++pages) {
    AuditPage p = log.page(q);
    out.insert(out.end(), p.entries.begin(), p.entries.end());
    if (p.next_page_token.empty()) break;
    q.page_token = p.next_page_token;
  }
  return out;
}

class AuditLogTest : public ::testing::Test {
 protected:
  AuditOptions options() {
    AuditOptions o;
    o.now_ms = clock_.fn();
    o.log = [this](const std::string& line) { log_lines_.push_back(line); };
    return o;
  }
  std::unique_ptr<AuditLog> open(AuditOptions o, const std::string& path = ":memory:") {
    return std::make_unique<AuditLog>(path, std::move(o));
  }
  ManualClock clock_;
  std::vector<std::string> log_lines_;
  TempDir dir_;
};

TEST_F(AuditLogTest, RecordsEntriesAndReadsThemBackNewestFirstWithSeqAndTime) {
  auto log = open(options());
  log->record(entry("alice", "submit", "job-000001"));
  clock_.advance(1500);
  AuditEntry e = entry("bob", "cancel", "job-000001", outcome_text(ErrorCode::kNotFound, "no job 'job-000009'"));
  e.role = "admin";
  e.peer = "ipv6:[::1]:5000";
  e.detail = "from the test";
  e.seq = 77;        // the log numbers entries itself
  e.time_ms = 1234;  // and times them
  log->record(e);

  const AuditPage page = log->page({});
  ASSERT_EQ(page.entries.size(), 2u);
  EXPECT_EQ(page.next_page_token, "");
  const AuditEntry& b = page.entries[0];
  EXPECT_EQ(b.seq, 2);
  EXPECT_EQ(b.time_ms, kT0 + 1500);
  EXPECT_EQ(b.user, "bob");
  EXPECT_EQ(b.role, "admin");
  EXPECT_EQ(b.peer, "ipv6:[::1]:5000");
  EXPECT_EQ(b.action, "cancel");
  EXPECT_EQ(b.target, "job-000001");
  EXPECT_EQ(b.outcome, "NOT_FOUND: no job 'job-000009'");
  EXPECT_EQ(b.detail, "from the test");
  const AuditEntry& a = page.entries[1];
  EXPECT_EQ(a.seq, 1);
  EXPECT_EQ(a.time_ms, kT0);
  EXPECT_EQ(a.user, "alice");
  EXPECT_EQ(a.outcome, "ok");
  EXPECT_EQ(log->dropped(), 0);
}

TEST_F(AuditLogTest, OutcomeTextNamesTheCodeAsGrpcDoes) {
  EXPECT_EQ(outcome_text(ErrorCode::kInvalidArgument, "training.batchSize: must be positive"),
            "INVALID_ARGUMENT: training.batchSize: must be positive");
  EXPECT_EQ(outcome_text(ErrorCode::kFailedPrecondition, "x"), "FAILED_PRECONDITION: x");
  EXPECT_EQ(outcome_text(ErrorCode::kUnauthenticated, "wrong token"), "UNAUTHENTICATED: wrong token");
  EXPECT_EQ(outcome_text(ErrorCode::kUnavailable, "x"), "UNAVAILABLE: x");
  EXPECT_EQ(outcome_text(ErrorCode::kInternal, "x"), "INTERNAL: x");
  const std::string long_one = outcome_text(ErrorCode::kInternal, std::string(5000, 'e'));
  EXPECT_EQ(long_one.size(), kMaxAuditTextBytes);
  EXPECT_EQ(long_one.substr(long_one.size() - 3), "...");
  EXPECT_TRUE(is_refusal("token-refused"));
  EXPECT_TRUE(is_refusal("permission-denied"));
  EXPECT_FALSE(is_refusal("submit"));
}

TEST_F(AuditLogTest, FiltersByUserActionAndSince) {
  auto log = open(options());
  log->record(entry("alice", "submit", "job-000001"));
  clock_.advance(60000);
  log->record(entry("bob", "submit", "job-000002"));
  log->record(entry("alice", "cancel", "job-000001"));
  clock_.advance(60000);
  log->record(entry("alice", "submit", "job-000003"));

  auto targets = [&](AuditQuery q) {
    std::vector<std::string> t;
    for (const auto& e : all_pages(*log, q)) t.push_back(e.user + " " + e.action + " " + e.target);
    return t;
  };
  AuditQuery q;
  q.user = "alice";
  EXPECT_EQ(targets(q), (std::vector<std::string>{"alice submit job-000003", "alice cancel job-000001",
                                                  "alice submit job-000001"}));
  q.action = "submit";
  EXPECT_EQ(targets(q), (std::vector<std::string>{"alice submit job-000003", "alice submit job-000001"}));
  q = {};
  q.action = "submit";
  q.since_ms = kT0 + 60000;  // at or after
  EXPECT_EQ(targets(q), (std::vector<std::string>{"alice submit job-000003", "bob submit job-000002"}));
  q = {};
  q.user = "carol";
  EXPECT_TRUE(targets(q).empty());
}

TEST_F(AuditLogTest, PagesFollowTheirTokensToTheEndWithoutRepeatsOrAnEmptyLastPage) {
  auto log = open(options());
  for (int i = 1; i <= 250; ++i) log->record(entry(i % 2 ? "odd" : "even", "submit", "job-" + std::to_string(i)));

  AuditQuery q;
  AuditPage p = log->page(q);
  EXPECT_EQ(p.entries.size(), 100u);  // the default page size
  EXPECT_EQ(p.entries.front().seq, 250);
  ASSERT_FALSE(p.next_page_token.empty());

  q.page_size = 100;
  std::vector<size_t> sizes;
  std::vector<int64_t> seqs;
  for (q.page_token = "";;) {
    p = log->page(q);
    sizes.push_back(p.entries.size());
    for (const auto& e : p.entries) seqs.push_back(e.seq);
    if (p.next_page_token.empty()) break;
    q.page_token = p.next_page_token;
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{100, 100, 50}));
  ASSERT_EQ(seqs.size(), 250u);
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], 250 - static_cast<int64_t>(i));

  // 125 "even" entries in pages of 25: exactly five full pages, no sixth empty one.
  AuditQuery even;
  even.user = "even";
  even.page_size = 25;
  int pages = 0;
  size_t total = 0;
  for (;; ++pages) {
    p = log->page(even);
    total += p.entries.size();
    for (const auto& e : p.entries) EXPECT_EQ(e.user, "even");
    if (p.next_page_token.empty()) break;
    even.page_token = p.next_page_token;
  }
  EXPECT_EQ(pages + 1, 5);
  EXPECT_EQ(total, 125u);

  q = {};
  q.page_size = 1000;
  EXPECT_EQ(log->page(q).entries.size(), 250u);
}

TEST_F(AuditLogTest, BadQueriesAreInvalidArgumentNamingTheField) {
  auto log = open(options());
  log->record(entry("alice", "submit"));
  auto message = [&](const AuditQuery& q) -> std::string {
    try {
      log->page(q);
    } catch (const ServiceError& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      return e.what();
    }
    return "(no error)";
  };
  AuditQuery q;
  q.page_size = -1;
  EXPECT_EQ(message(q), "page_size: must be between 0 and 1000, got -1");
  q.page_size = 1001;
  EXPECT_EQ(message(q), "page_size: must be between 0 and 1000, got 1001");
  q = {};
  for (const std::string token : {"abc", "-5", "0", "12x", "99999999999999999999", " 7"}) {
    q.page_token = token;
    EXPECT_EQ(message(q).rfind("page_token: not a token from ListAudit: '", 0), 0u) << token;
  }
  q.page_token = std::string(10000, '9');
  const std::string long_token = message(q);
  EXPECT_EQ(long_token.rfind("page_token: not a token from ListAudit: '", 0), 0u);
  EXPECT_LT(long_token.size(), 200u);  // echoed bounded
  q = {};
  q.user = std::string(200, 'u');
  EXPECT_EQ(message(q).rfind("user: at most 128 bytes", 0), 0u);
  q = {};
  q.action = std::string(200, 'a');
  EXPECT_EQ(message(q).rfind("action: at most 128 bytes", 0), 0u);
  q = {};
  q.since_ms = -1;
  EXPECT_EQ(message(q).rfind("since: ", 0), 0u);
}

TEST_F(AuditLogTest, StringsAreStoredWithControlCharactersEscapedAndBounded) {
  auto log = open(options());
  AuditEntry e = entry("\x1b[31mmallory", "submit", std::string(10000, 't'));
  e.peer = "ipv4:1.2.3.4:5\n";
  e.detail = std::string(3000, 'd');
  e.outcome = "INVALID_ARGUMENT: \x9b bad";
  log->record(e);
  const AuditEntry got = log->page({}).entries.at(0);
  EXPECT_EQ(got.user, "\\x1b[31mmallory");
  EXPECT_EQ(got.peer, "ipv4:1.2.3.4:5\\x0a");
  EXPECT_EQ(got.target.size(), kMaxAuditTargetBytes);
  EXPECT_EQ(got.target, std::string(kMaxAuditTargetBytes - 3, 't') + "...");
  EXPECT_EQ(got.detail.size(), kMaxAuditTextBytes);
  EXPECT_EQ(got.outcome, "INVALID_ARGUMENT: \\x9b bad");  // a lone byte that is not UTF-8
  // A character is never cut in half.
  AuditEntry wide = entry(std::string(124, 'a') + "\xc3\xa9" + "xxxx", "submit");  // é at bytes 124-125
  log->record(wide);
  const std::string user = log->page({}).entries.at(0).user;
  EXPECT_LE(user.size(), kMaxAuditNameBytes);
  EXPECT_EQ(user, std::string(124, 'a') + "...");
}

TEST_F(AuditLogTest, KeepsTheNewestRowsPruningInBatches) {
  const std::string path = dir_.file("audit.db");
  AuditOptions o = options();
  o.keep = 50;  // batches of 5
  auto log = open(o, path);
  for (int i = 1; i <= 54; ++i) log->record(entry("u", "submit", std::to_string(i)));
  EXPECT_EQ(count_rows(path), 54);  // not pruned one row at a time
  log->record(entry("u", "submit", "55"));
  EXPECT_EQ(count_rows(path), 50);
  for (int i = 56; i <= 200; ++i) log->record(entry("u", "submit", std::to_string(i)));
  const int64_t rows = count_rows(path);
  EXPECT_GE(rows, 50);
  EXPECT_LT(rows, 55);
  AuditQuery q;
  q.page_size = 1000;
  const std::vector<AuditEntry> kept = log->page(q).entries;
  ASSERT_EQ(static_cast<int64_t>(kept.size()), rows);
  for (size_t i = 0; i < kept.size(); ++i) EXPECT_EQ(kept[i].target, std::to_string(200 - i));
  EXPECT_EQ(log->dropped(), 0);

  // A smaller keep at the next start applies at once; seqs go on from where they were.
  log.reset();
  o.keep = 10;
  log = open(o, path);
  EXPECT_EQ(count_rows(path), 10);
  log->record(entry("u", "submit", "201"));
  EXPECT_EQ(log->page({}).entries.at(0).seq, 201);
  EXPECT_THROW(AuditLog(":memory:", [] {
                 AuditOptions bad;
                 bad.keep = 0;
                 return bad;
               }()),
               UserError);
}

TEST_F(AuditLogTest, RefusalsOverTheLimitASecondAreCountedAndSummarisedInOneRow) {
  AuditOptions o = options();
  o.max_refusals_per_second = 20;
  auto log = open(o);
  clock_.advance(1000 - kT0 % 1000);  // the start of a second
  for (int i = 0; i < 25; ++i) log->record(refusal("ipv4:10.0.0.5:" + std::to_string(40000 + i)));
  for (int i = 0; i < 5; ++i) log->record(refusal("ipv4:10.0.0.6:" + std::to_string(50000 + i)));
  clock_.advance(999);  // the same second
  log->record(entry("alice", "submit", "job-000001"));  // not a refusal: never held back
  log->flush();                                         // the second is not over: nothing yet

  AuditQuery refused;
  refused.action = kTokenRefused;
  refused.page_size = 1000;
  EXPECT_EQ(log->page(refused).entries.size(), 20u);
  EXPECT_EQ(log->summarised(), 10);
  EXPECT_EQ(log->page({}).entries.at(0).user, "alice");

  clock_.advance(1);  // the next second
  log->flush();       // (the flush thread's call)
  std::vector<AuditEntry> rows = log->page(refused).entries;
  ASSERT_EQ(rows.size(), 21u);
  const AuditEntry& summary = rows[0];
  EXPECT_EQ(summary.action, kTokenRefused);
  EXPECT_EQ(summary.peer, "2 peers");
  EXPECT_EQ(summary.outcome, "UNAUTHENTICATED: wrong token");
  EXPECT_EQ(summary.detail,
            "10 more refusals from ipv4:10.0.0.5 (5), ipv4:10.0.0.6 (5), not recorded one by one (over 20 a second)");
  EXPECT_EQ(summary.time_ms, clock_.ms->load() - 1000);  // the last one held back: at the start of that second
  log->flush();
  EXPECT_EQ(log->page(refused).entries.size(), 21u);  // written once

  // The new second has its own 20.
  for (int i = 0; i < 22; ++i) log->record(refusal("ipv4:10.0.0.7:1"));
  EXPECT_EQ(log->page(refused).entries.size(), 41u);
  // Its held-back ones are summarised by the next second's first refusal, before it.
  clock_.advance(1000);
  AuditEntry denied = refusal("ipv4:10.0.0.7:2");
  denied.action = kPermissionDenied;
  denied.user = "bob";
  log->record(denied);
  rows = log->page({}).entries;
  ASSERT_GE(rows.size(), 2u);
  EXPECT_EQ(rows[0].action, kPermissionDenied);
  EXPECT_EQ(rows[0].user, "bob");
  EXPECT_EQ(rows[1].action, kTokenRefused);
  EXPECT_EQ(rows[1].peer, "ipv4:10.0.0.7");  // one host, whatever its ports
  EXPECT_EQ(rows[1].detail.rfind("2 more refusals from ipv4:10.0.0.7 (2),", 0), 0u);
  EXPECT_EQ(log->summarised(), 12);
  EXPECT_EQ(log->dropped(), 0);
}

TEST_F(AuditLogTest, AFloodFromManyHostsListsAFewAndCountsTheOthers) {
  AuditOptions o = options();
  o.max_refusals_per_second = 2;
  auto log = open(o);
  clock_.advance(1000 - kT0 % 1000);
  for (int i = 0; i < 1002; ++i) log->record(refusal("ipv4:10.0.1." + std::to_string(i % 8) + ":99"));
  clock_.advance(1000);
  log->flush();
  AuditQuery q;
  q.page_size = 1000;
  const auto rows = log->page(q).entries;
  ASSERT_EQ(rows.size(), 3u);  // 2 one by one, then 1000 in one row
  EXPECT_EQ(rows[0].peer, "over 5 peers");
  EXPECT_EQ(rows[0].detail.rfind("1000 more refusals from ipv4:10.0.1.", 0), 0u) << rows[0].detail;
  EXPECT_NE(rows[0].detail.find(" and other peers ("), std::string::npos) << rows[0].detail;
}

TEST_F(AuditLogTest, TheFlushThreadWritesASummaryWhenNothingElseComes) {
  AuditOptions o = options();
  o.max_refusals_per_second = 1;
  o.flush_interval_ms = 10;
  auto log = open(o);
  log->record(refusal("ipv4:10.0.0.5:1"));
  log->record(refusal("ipv4:10.0.0.5:2"));
  clock_.advance(1000);
  std::vector<AuditEntry> rows;
  for (auto deadline = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < deadline;) {
    rows = log->page({}).entries;
    if (rows.size() == 2) break;
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].detail.rfind("1 more refusals from ipv4:10.0.0.5 (1)", 0), 0u) << rows[0].detail;
}

TEST_F(AuditLogTest, WhatIsHeldBackIsWrittenWhenTheLogCloses) {
  const std::string path = dir_.file("audit.db");
  AuditOptions o = options();
  o.max_refusals_per_second = 3;
  open(o, path);  // opened and closed: an empty table
  {
    auto log = open(o, path);
    for (int i = 0; i < 10; ++i) log->record(refusal("ipv4:10.0.0.5:1"));
  }
  EXPECT_EQ(count_rows(path), 4);
  auto log = open(o, path);
  EXPECT_EQ(log->page({}).entries.at(0).detail.rfind("7 more refusals", 0), 0u);
}

TEST_F(AuditLogTest, AWriteTheDiskRefusesIsCountedAndSaidOnceAMinuteAndTheCallerGoesOn) {
  const std::string path = dir_.file("audit.db");
  auto log = open(options(), path);
  log->record(entry("alice", "submit", "before"));
  std::atomic<int> fault{SQLITE_FULL};
  log->set_write_fault([&] { return fault.load(); });
  for (int i = 0; i < 3; ++i) EXPECT_NO_THROW(log->record(entry("alice", "submit", "lost")));
  EXPECT_EQ(log->dropped(), 3);
  ASSERT_EQ(log_lines_.size(), 1u);
  EXPECT_NE(log_lines_[0].find("database or disk is full"), std::string::npos) << log_lines_[0];
  EXPECT_NE(log_lines_[0].find(path), std::string::npos) << log_lines_[0];
  clock_.advance(59000);
  log->record(entry("alice", "submit", "lost"));
  EXPECT_EQ(log_lines_.size(), 1u);
  clock_.advance(1000);
  fault = SQLITE_IOERR;
  log->record(entry("alice", "submit", "lost"));
  ASSERT_EQ(log_lines_.size(), 2u);
  EXPECT_NE(log_lines_[1].find("disk I/O error"), std::string::npos) << log_lines_[1];
  EXPECT_NE(log_lines_[1].find("5 entries dropped"), std::string::npos) << log_lines_[1];

  fault = SQLITE_OK;  // space again
  log->record(entry("alice", "submit", "after"));
  const auto rows = log->page({}).entries;
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].target, "after");
  EXPECT_EQ(rows[1].target, "before");
  EXPECT_EQ(count_rows(path), 2);
  EXPECT_EQ(log->dropped(), 5);
}

TEST_F(AuditLogTest, LivesInTheCoordinatorsDatabaseBesideTheStore) {
  const std::string path = dir_.file("prelude.db");
  {
    Store store(path);
    auto log = open(options(), path);
    v1::Job job;
    job.set_job_id("job-000001");
    std::atomic<bool> done{false};
    // Two connections writing at once: each waits for the other (busy timeout), none fails.
    std::thread writer([&] {
      for (int i = 0; i < 200; ++i) log->record(entry("alice", "submit", "job-" + std::to_string(i)));
      done = true;
    });
    for (int i = 0; i < 200; ++i) store.save(1, job, {});
    writer.join();
    EXPECT_TRUE(done);
    EXPECT_EQ(log->dropped(), 0);
  }
  Store store(path);
  EXPECT_EQ(store.load_jobs().size(), 1u);
  EXPECT_EQ(count_rows(path), 200);
  auto log = open(options(), path);
  log->record(entry("alice", "delete", "job-000001"));
  EXPECT_EQ(log->page({}).entries.at(0).seq, 201);
}

TEST_F(AuditLogTest, ManyThreadsRecordingAtOnceLoseNothing) {
  auto log = open(options());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 250; ++i) log->record(entry("user" + std::to_string(t), "submit", std::to_string(i)));
    });
  for (auto& t : threads) t.join();
  AuditQuery q;
  q.page_size = 1000;
  const auto rows = all_pages(*log, q);
  ASSERT_EQ(rows.size(), 1000u);
  std::set<int64_t> seqs;
  for (const auto& e : rows) seqs.insert(e.seq);
  EXPECT_EQ(seqs.size(), 1000u);
  EXPECT_EQ(*seqs.begin(), 1);
  EXPECT_EQ(*seqs.rbegin(), 1000);
}

}  // namespace
}  // namespace prelude::server
