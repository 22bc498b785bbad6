// `prelude audit`: against the fake coordinator, what is printed (the table, JSON
// lines), what is sent (filters, --since as a time, pages up to --limit) and the
// errors; then against a real coordinator in process (audit log, JobService on
// loopback TCP), entries recorded by the log and filtered by the coordinator.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli_fixture.h"
#include "client/cli.h"
#include "fake_coordinator.h"
#include "prelude/v1/service.grpc.pb.h"
#include "server/artifact_store.h"
#include "server/audit_log.h"
#include "server/job_manager.h"
#include "server/services.h"
#include "server/store.h"
#include "server_test_util.h"

namespace prelude::client {
namespace {

namespace v1 = prelude::v1;
using testing::ClientCli;
using testing::kT0;
using testing::Result;

v1::AuditEntry audit_entry(int64_t seq, int64_t seconds, const std::string& user, const std::string& role,
                           const std::string& peer, const std::string& action, const std::string& target,
                           const std::string& outcome, const std::string& detail = "") {
  v1::AuditEntry e;
  e.set_seq(seq);
  e.mutable_time()->set_seconds(seconds);
  e.set_user(user);
  e.set_role(role);
  e.set_peer(peer);
  e.set_action(action);
  e.set_target(target);
  e.set_outcome(outcome);
  e.set_detail(detail);
  return e;
}

// Three entries, newest first: a delete by an admin, a summary of refused tokens, a submit.
std::vector<v1::AuditEntry> three_entries() {
  return {audit_entry(3, kT0 + 120, "root", "admin", "ipv4:10.0.0.5:51234", "delete", "job-000002", "ok"),
          audit_entry(2, kT0 + 60, "", "", "ipv4:10.0.0.9:40000", "token-refused", "", "UNAUTHENTICATED: wrong token",
                      "1234 more refusals from ipv4:10.0.0.9 (1234), not recorded one by one (over 20 a second)"),
          audit_entry(1, kT0, "alice", "user", "ipv6:[::1]:5000", "submit", "job-000001", "ok")};
}

int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

using ClientAudit = ClientCli;

TEST_F(ClientAudit, PrintsATableNewestFirstWithUtcTimesAndDashesForEmptyFields) {
  fake.service.audit = three_entries();
  const Result r = run({"audit"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "TIME                  USER   ROLE   PEER                 ACTION         TARGET      OUTCOME              "
            "         DETAIL\n"
            "2026-01-02T03:06:05Z  root   admin  ipv4:10.0.0.5:51234  delete         job-000002  ok                   "
            "         -\n"
            "2026-01-02T03:05:05Z  -      -      ipv4:10.0.0.9:40000  token-refused  -           UNAUTHENTICATED: "
            "wrong token  1234 more refusals from ipv4:10.0.0.9 (1234), not recorded one by one (over 20 a second)\n"
            "2026-01-02T03:04:05Z  alice  user   ipv6:[::1]:5000      submit         job-000001  ok                   "
            "         -\n");
  const auto requests = fake.service.record().audit_requests;
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].page_size(), 100);  // the default --limit
  EXPECT_EQ(requests[0].user(), "");
  EXPECT_EQ(requests[0].action(), "");
  EXPECT_FALSE(requests[0].has_since());
}

TEST_F(ClientAudit, NoDetailColumnWhenNoEntryHasOneAndLongOutcomesAreCut) {
  fake.service.audit = {audit_entry(1, kT0, "alice", "user", "ipv4:127.0.0.1:1", "submit", "job-000001",
                                    "INVALID_ARGUMENT: " + std::string(200, 'x'))};
  const Result r = run({"audit"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "TIME                  USER   ROLE  PEER              ACTION  TARGET      OUTCOME\n"
            "2026-01-02T03:04:05Z  alice  user  ipv4:127.0.0.1:1  submit  job-000001  INVALID_ARGUMENT: " +
                std::string(100 - 18 - 3, 'x') + "...\n");
}

TEST_F(ClientAudit, FiltersAreSentAndSinceIsATimeAgoADateOrAUtcTime) {
  fake.service.audit = three_entries();
  Result r = run({"audit", "--user", "alice", "--action", "submit", "--since", "2026-01-02T03:04:05Z"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = run({"audit", "--since", "2026-01-02"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = run({"audit", "--since", "2026-01-02T04:04:05+01:00"});
  EXPECT_EQ(r.code, 0) << r.err;
  const int64_t before = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
  r = run({"audit", "--since", "1h30m"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = run({"audit", "--since=7d"});
  EXPECT_EQ(r.code, 0) << r.err;
  const int64_t after = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();

  const auto requests = fake.service.record().audit_requests;
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[0].user(), "alice");
  EXPECT_EQ(requests[0].action(), "submit");
  EXPECT_EQ(requests[0].since().seconds(), kT0);
  EXPECT_EQ(requests[1].since().seconds(), kT0 - (3 * 3600 + 4 * 60 + 5));  // midnight UTC
  EXPECT_EQ(requests[2].since().seconds(), kT0);                            // the same instant
  EXPECT_EQ(requests[1].user(), "");
  EXPECT_GE(requests[3].since().seconds(), before - 5400);
  EXPECT_LE(requests[3].since().seconds(), after - 5400);
  EXPECT_GE(requests[4].since().seconds(), before - 7 * 86400);
  EXPECT_LE(requests[4].since().seconds(), after - 7 * 86400);
}

TEST_F(ClientAudit, LimitFollowsPagesAndStopsThere) {
  for (int i = 250; i >= 1; --i)
    fake.service.audit.push_back(audit_entry(i, kT0 + i, "alice", "user", "ipv4:127.0.0.1:1", "submit",
                                             "job-" + std::to_string(i), "ok"));
  fake.service.max_page_size = 100;
  Result r = run({"audit", "--limit", "150"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 151);  // the header and 150 entries
  EXPECT_NE(r.out.find(" job-250 "), std::string::npos);
  EXPECT_NE(r.out.find(" job-101 "), std::string::npos);
  EXPECT_EQ(r.out.find(" job-100 "), std::string::npos);
  auto requests = fake.service.record().audit_requests;
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].page_size(), 150);
  EXPECT_EQ(requests[1].page_size(), 50);
  EXPECT_EQ(requests[1].page_token(), "100");

  r = run({"audit", "--limit", "1000000"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 251);  // every one, then no further page
  requests = fake.service.record().audit_requests;
  EXPECT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[2].page_size(), 1000);  // the coordinator's most
}

TEST_F(ClientAudit, JsonIsOneAuditEntryALineWithEveryField) {
  fake.service.audit = three_entries();
  const Result r = run({"audit", "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::vector<v1::AuditEntry> parsed;
  for (std::string line; std::getline(lines, line);) {
    v1::AuditEntry e;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &e).ok()) << line;
    parsed.push_back(e);
  }
  ASSERT_EQ(parsed.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(parsed[i].SerializeAsString(), three_entries()[i].SerializeAsString());
  const std::string first = r.out.substr(0, r.out.find('\n'));
  for (const std::string field : {"\"seq\":\"3\"", "\"time\":\"2026-01-02T03:06:05Z\"", "\"user\":\"root\"",
                                  "\"detail\":\"\""})  // empty fields too
    EXPECT_NE(first.find(field), std::string::npos) << field << " in " << first;
  EXPECT_NE(r.out.find("\"user\":\"\",\"role\":\"\""), std::string::npos) << r.out;
}

TEST_F(ClientAudit, NoEntriesIsSaidOnStderrAndExit0) {
  Result r = run({"audit"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "no audit entries\n");
  r = run({"audit", "--user", "nobody"});
  EXPECT_EQ(r.err, "no audit entries match\n");
  r = run({"audit", "--format", "json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
}

TEST_F(ClientAudit, BadFlagsAreExit2NamingTheFlagWithoutACall) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"audit", "--since", "yesterday"}, "prelude: --since: must be a time ago (90s, 30m, 2h, 7d, 2w, 1h30m), a "
                                          "date (2026-01-02) or a UTC time (2026-01-02T03:04:05Z), got 'yesterday'"},
      {{"audit", "--since", "5"}, "prelude: --since: "},
      {{"audit", "--since", "5y"}, "prelude: --since: "},
      {{"audit", "--since", "h"}, "prelude: --since: "},
      {{"audit", "--since", ""}, "prelude: --since: "},
      {{"audit", "--since", "99999999999999999999s"}, "prelude: --since: "},
      {{"audit", "--since", "2026-13-01"}, "prelude: --since: "},
      {{"audit", "--since", "2026-01-02T03:04:05"}, "prelude: --since: "},
      {{"audit", "--limit", "0"}, "prelude: --limit: "},
      {{"audit", "--format", "csv"}, "prelude: --format: "},
      {{"audit", "job-000001"}, "prelude: audit: unexpected argument 'job-000001'"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = run(args);
    EXPECT_EQ(r.code, 2) << ::testing::PrintToString(args);
    EXPECT_EQ(r.err.rfind(message, 0), 0u) << ::testing::PrintToString(args) << " -> " << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_EQ(fake.service.record().calls, 0);
}

TEST_F(ClientAudit, ACallerWhoIsNotAnAdminIsExit3WithTheCoordinatorsMessage) {
  fake.service.audit = three_entries();
  fake.service.audit_status = grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "ListAudit: admins only");
  const Result r = run({"audit"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "prelude: PERMISSION_DENIED: ListAudit: admins only\n");
}

TEST_F(ClientAudit, ControlCharactersFromTheCoordinatorAreEscaped) {
  fake.service.audit = {audit_entry(1, kT0, "\x1b[2Jmallory", "user", "ipv4:127.0.0.1:1", "submit", "job\xc2\x9b", "ok")};
  const Result r = run({"audit"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
  EXPECT_NE(r.out.find("\\x1b[2Jmallory"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("job\\u009b"), std::string::npos) << r.out;
}

TEST_F(ClientAudit, HelpDescribesTheCommandAndItsFlags) {
  const Result global = run_raw({"--help"});
  EXPECT_NE(global.out.find("  audit "), std::string::npos) << global.out;
  const Result r = run_raw({"audit", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("usage: prelude audit [--user USER] [--action ACTION] [--since WHEN] [--limit N] "
                        "[--format FORMAT]\n",
                        0),
            0u)
      << r.out;
  for (const std::string part : {"admin", "PERMISSION_DENIED", "token-refused", "2026-01-02T03:04:05Z", "exit codes:"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part;
  EXPECT_EQ(fake.service.record().calls, 0);
}

// ---- against a real coordinator

class AuditRealCoordinator : public ::testing::Test {
 protected:
  void SetUp() override {
    server::ManagerOptions o;
    o.reaper_thread = false;
    jm_ = std::make_unique<server::JobManager>(store_, o);
    artifacts_ = std::make_unique<server::ArtifactStore>(dir_.file("artifacts"));
    server::AuditOptions ao;
    ao.now_ms = [] { return kT0 * 1000; };
    audit_ = std::make_unique<server::AuditLog>(dir_.file("prelude.db"), ao);
    jobs_ = std::make_unique<server::JobServiceImpl>(*jm_, *artifacts_, nullptr, audit_.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(jobs_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    jm_->shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  Result run(const std::vector<std::string>& args) {
    std::vector<std::string> all = {"prelude", "--coordinator", "127.0.0.1:" + std::to_string(port_)};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    std::istringstream in;
    std::ostringstream out, err;
    Console console{in, out, err};
    Result r;
    r.code = run_cli(static_cast<int>(all.size()), argv.data(), console);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  void record(const std::string& user, const std::string& action, const std::string& target,
              const std::string& outcome) {
    server::AuditEntry e;
    e.user = user;
    e.role = user.empty() ? "" : "user";
    e.peer = "ipv4:10.0.0.5:1234";
    e.action = action;
    e.target = target;
    e.outcome = outcome;
    audit_->record(e);
  }

  server::testing::TempDir dir_;
  server::Store store_{":memory:"};
  std::unique_ptr<server::JobManager> jm_;
  std::unique_ptr<server::ArtifactStore> artifacts_;
  std::unique_ptr<server::AuditLog> audit_;
  std::unique_ptr<server::JobServiceImpl> jobs_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(AuditRealCoordinator, WhatTheLogRecordedIsPrintedAndFilteredByTheCoordinator) {
  record("alice", "submit", "job-000001", "ok");
  record("bob", "cancel", "job-000001", server::outcome_text(ErrorCode::kFailedPrecondition, "job-000001 has ended"));
  record("", server::kTokenRefused, "", server::outcome_text(ErrorCode::kUnauthenticated, "wrong token"));
  for (int i = 2; i <= 300; ++i) record("alice", "submit", "job-" + std::to_string(i), "ok");

  Result r = run({"audit", "--user", "bob"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "TIME                  USER  ROLE  PEER                ACTION  TARGET      OUTCOME\n"
            "2026-01-02T03:04:05Z  bob   user  ipv4:10.0.0.5:1234  cancel  job-000001  FAILED_PRECONDITION: job-000001 "
            "has ended\n");
  r = run({"audit", "--action", "token-refused"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "TIME                  USER  ROLE  PEER                ACTION         TARGET  OUTCOME\n"
            "2026-01-02T03:04:05Z  -     -     ipv4:10.0.0.5:1234  token-refused  -       UNAUTHENTICATED: wrong token\n");
  r = run({"audit", "--user", "alice", "--limit", "1000"});  // in pages of the coordinator's
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 301);
  r = run({"audit", "--since", "2030-01-01"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "no audit entries match\n");
}

}  // namespace
}  // namespace prelude::client
