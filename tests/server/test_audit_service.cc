// ListAudit over a real grpc::Server (in-process channel) through the generated stub:
// what the audit log recorded comes back newest first with its fields and times,
// filtered and in pages; bad requests are INVALID_ARGUMENT naming the field; a
// coordinator without an audit log says so; the token is checked as for every call;
// a full page of the longest entries fits gRPC's default 4 MiB.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "prelude/v1/service.grpc.pb.h"
#include "server/artifact_store.h"
#include "server/audit_log.h"
#include "server/auth.h"
#include "server/job_manager.h"
#include "server/services.h"
#include "server/store.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;
using namespace std::chrono_literals;
namespace v1 = prelude::v1;

constexpr int64_t kT0 = 1767323045000;  // 2026-01-02T03:04:05Z, in ms

class AuditServiceTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (!server_) return;
    jm_->shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + 2s);
  }

  // A server whose JobService has an audit log (unless with_audit is false) and,
  // when `token` is given, needs it. With `tcp`, the stub's channel is a loopback TCP
  // one with gRPC's default limits (the in-process channel has none).
  void start(bool with_audit = true, const std::string& token = "", bool tcp = false,
             std::unique_ptr<Authenticator> auth = nullptr) {
    ManagerOptions o;
    o.reaper_thread = false;
    jm_ = std::make_unique<JobManager>(store_, o);
    artifacts_ = std::make_unique<ArtifactStore>(dir_.file("artifacts"));
    if (with_audit) {
      AuditOptions ao;
      ao.now_ms = [this] { return now_ms_.load(); };
      audit_ = std::make_unique<AuditLog>(":memory:", ao);
    }
    if (!token.empty()) {
      auth_ = std::make_unique<Authenticator>();
      auth_->add_token(token, Caller{"admin", Role::kAdmin});
    }
    if (auth) auth_ = std::move(auth);
    service_ = std::make_unique<JobServiceImpl>(*jm_, *artifacts_, auth_.get(), audit_.get());
    grpc::ServerBuilder builder;
    int port = 0;
    if (tcp) builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::JobService::NewStub(
        tcp ? grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials())
            : server_->InProcessChannel(grpc::ChannelArguments()));
  }

  grpc::Status list(const v1::ListAuditRequest& req, v1::ListAuditResponse* resp, const std::string& token = "") {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    return stub_->ListAudit(&ctx, req, resp);
  }

  void record(const std::string& user, const std::string& action, const std::string& target,
              const std::string& outcome = kOutcomeOk) {
    AuditEntry e;
    e.user = user;
    e.role = user == "root" ? "admin" : "user";
    e.peer = "ipv4:10.0.0.5:51234";
    e.action = action;
    e.target = target;
    e.outcome = outcome;
    audit_->record(e);
  }

  TempDir dir_;
  Store store_{":memory:"};
  std::atomic<int64_t> now_ms_{kT0};
  std::unique_ptr<JobManager> jm_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<JobServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::JobService::Stub> stub_;
};

TEST_F(AuditServiceTest, ListAuditReturnsWhatWasRecordedNewestFirstWithItsFieldsAndTime) {
  start();
  record("alice", "submit", "job-000001");
  now_ms_ += 2250;
  record("root", "delete", "job-000009", outcome_text(ErrorCode::kNotFound, "no job 'job-000009'"));

  v1::ListAuditResponse resp;
  const grpc::Status s = list({}, &resp);
  ASSERT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
  ASSERT_EQ(resp.entries_size(), 2);
  EXPECT_EQ(resp.next_page_token(), "");
  const v1::AuditEntry& e = resp.entries(0);
  EXPECT_EQ(e.seq(), 2);
  EXPECT_EQ(e.time().seconds(), (kT0 + 2250) / 1000);
  EXPECT_EQ(e.time().nanos(), 250000000);
  EXPECT_EQ(e.user(), "root");
  EXPECT_EQ(e.role(), "admin");
  EXPECT_EQ(e.peer(), "ipv4:10.0.0.5:51234");
  EXPECT_EQ(e.action(), "delete");
  EXPECT_EQ(e.target(), "job-000009");
  EXPECT_EQ(e.outcome(), "NOT_FOUND: no job 'job-000009'");
  EXPECT_EQ(resp.entries(1).seq(), 1);
  EXPECT_EQ(resp.entries(1).user(), "alice");
  EXPECT_EQ(resp.entries(1).time().seconds(), kT0 / 1000);
  EXPECT_EQ(resp.entries(1).outcome(), "ok");
}

TEST_F(AuditServiceTest, FiltersAndPagesAsAsked) {
  start();
  for (int i = 1; i <= 7; ++i) {
    record(i % 2 ? "alice" : "bob", i <= 4 ? "submit" : "cancel", "job-00000" + std::to_string(i));
    now_ms_ += 60000;
  }
  v1::ListAuditRequest req;
  req.set_user("alice");
  req.set_page_size(2);
  std::vector<std::string> targets;
  int pages = 0;
  for (;; ++pages) {
    v1::ListAuditResponse resp;
    ASSERT_TRUE(list(req, &resp).ok());
    EXPECT_LE(resp.entries_size(), 2);
    for (const auto& e : resp.entries()) targets.push_back(e.target());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(pages + 1, 2);
  EXPECT_EQ(targets, (std::vector<std::string>{"job-000007", "job-000005", "job-000003", "job-000001"}));

  req.Clear();
  req.set_action("submit");
  req.mutable_since()->set_seconds((kT0 + 60000) / 1000);  // entries 2 to 7
  req.mutable_since()->set_nanos(0);
  v1::ListAuditResponse resp;
  ASSERT_TRUE(list(req, &resp).ok());
  targets.clear();
  for (const auto& e : resp.entries()) targets.push_back(e.target());
  EXPECT_EQ(targets, (std::vector<std::string>{"job-000004", "job-000003", "job-000002"}));
}

TEST_F(AuditServiceTest, BadRequestsAreInvalidArgumentNamingTheField) {
  start();
  record("alice", "submit", "job-000001");
  auto refused = [&](const v1::ListAuditRequest& req) {
    v1::ListAuditResponse resp;
    const grpc::Status s = list(req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    return s.error_message();
  };
  v1::ListAuditRequest req;
  req.set_page_size(1001);
  EXPECT_EQ(refused(req), "page_size: must be between 0 and 1000, got 1001");
  req.Clear();
  req.set_page_token("job-000001");
  EXPECT_EQ(refused(req), "page_token: not a token from ListAudit: 'job-000001'");
  req.Clear();
  req.mutable_since()->set_seconds(-5);
  EXPECT_EQ(refused(req).rfind("since: must be a time from 1970 to 9999", 0), 0u);
  req.mutable_since()->set_seconds(INT64_MAX);
  EXPECT_EQ(refused(req).rfind("since: ", 0), 0u);
  req.mutable_since()->set_seconds(0);
  req.mutable_since()->set_nanos(-1);
  EXPECT_EQ(refused(req).rfind("since: ", 0), 0u);
  req.Clear();
  req.set_user(std::string(1000, 'u'));
  EXPECT_EQ(refused(req).rfind("user: at most 128 bytes", 0), 0u);
}

TEST_F(AuditServiceTest, ACoordinatorWithoutAnAuditLogSaysSo) {
  start(/*with_audit=*/false);
  v1::ListAuditResponse resp;
  const grpc::Status s = list({}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), "this coordinator keeps no audit trail");
}

TEST_F(AuditServiceTest, TheTokenIsCheckedAsForEveryCall) {
  start(true, "s3cret");
  record("alice", "submit", "job-000001");
  v1::ListAuditResponse resp;
  EXPECT_EQ(list({}, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list({}, &resp, "wrong").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(resp.entries_size(), 0);
  ASSERT_TRUE(list({}, &resp, "s3cret").ok());
  // The two refused calls are in the trail themselves, newest first.
  ASSERT_EQ(resp.entries_size(), 3);
  EXPECT_EQ(resp.entries(0).action(), "token-refused");
  EXPECT_EQ(resp.entries(1).action(), "token-refused");
  EXPECT_EQ(resp.entries(2).action(), "submit");
}

TEST_F(AuditServiceTest, AFullPageOfTheLongestEntriesFitsGrpcsDefault4MiB) {
  start(true, "", /*tcp=*/true);
  AuditEntry big;
  big.user = std::string(500, 'u');
  big.role = std::string(500, 'r');
  big.peer = std::string(500, 'p');
  big.action = std::string(500, 'a');
  big.target = std::string(5000, 't');
  big.outcome = std::string(5000, 'o');
  big.detail = std::string(5000, 'd');
  for (int i = 0; i < 1000; ++i) audit_->record(big);
  v1::ListAuditRequest req;
  req.set_page_size(1000);
  v1::ListAuditResponse resp;
  const grpc::Status s = list(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
  EXPECT_EQ(resp.entries_size(), 1000);
  EXPECT_GT(resp.ByteSizeLong(), 2u << 20);  // the bound is not far off
  EXPECT_LT(resp.ByteSizeLong(), 4u << 20);
}

// The trail handle() writes: mutations with who, from where, what and how it ended;
// refused tokens and roles whatever the call; nothing for reads.
TEST_F(AuditServiceTest, MutationsAndRefusalsAreRecordedWithWhoWhatAndHowItEnded) {
  auto auth = std::make_unique<Authenticator>();
  auth->add_token("alice-t", Caller{"alice", Role::kUser});
  auth->add_token("bob-t", Caller{"bob", Role::kUser});
  auth->add_token("root-t", Caller{"root", Role::kAdmin});
  start(true, "", false, std::move(auth));
  const auto call = [&](const std::string& token) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + 10s);
    if (!token.empty()) c->AddMetadata("authorization", "Bearer " + token);
    return c;
  };
  v1::SubmitJobRequest submit;
  *submit.mutable_spec() = small_spec("audited");
  v1::Job job;
  ASSERT_TRUE(stub_->SubmitJob(call("alice-t").get(), submit, &job).ok());
  v1::Job got;
  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  ASSERT_TRUE(stub_->GetJob(call("alice-t").get(), get, &got).ok());  // a read: not recorded
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.job_id());
  EXPECT_EQ(stub_->CancelJob(call("bob-t").get(), cancel, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ListJobsResponse listed;
  EXPECT_EQ(stub_->ListJobs(call("not-a-real-token-xyz").get(), v1::ListJobsRequest(), &listed).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::ListAuditResponse trail;
  EXPECT_EQ(list({}, &trail, "bob-t").error_code(), grpc::StatusCode::PERMISSION_DENIED);

  ASSERT_TRUE(list({}, &trail, "root-t").ok());
  ASSERT_EQ(trail.entries_size(), 4);  // newest first
  const v1::AuditEntry& denied = trail.entries(0);
  EXPECT_EQ(denied.action(), "permission-denied");
  EXPECT_EQ(denied.user(), "bob");
  EXPECT_EQ(denied.target(), "ListAudit");
  EXPECT_TRUE(denied.outcome().rfind("PERMISSION_DENIED: ", 0) == 0) << denied.outcome();
  const v1::AuditEntry& refused = trail.entries(1);
  EXPECT_EQ(refused.action(), "token-refused");
  EXPECT_EQ(refused.user(), "");
  EXPECT_EQ(refused.target(), "ListJobs");
  EXPECT_EQ(refused.outcome(), "UNAUTHENTICATED: wrong token");
  const v1::AuditEntry& cancelled = trail.entries(2);
  EXPECT_EQ(cancelled.action(), "cancel");
  EXPECT_EQ(cancelled.user(), "bob");
  EXPECT_EQ(cancelled.role(), "user");
  EXPECT_EQ(cancelled.target(), job.job_id());
  EXPECT_EQ(cancelled.outcome(), "NOT_FOUND: job '" + job.job_id() + "' does not exist");
  const v1::AuditEntry& submitted = trail.entries(3);
  EXPECT_EQ(submitted.action(), "submit");
  EXPECT_EQ(submitted.user(), "alice");
  EXPECT_EQ(submitted.target(), job.job_id());
  EXPECT_EQ(submitted.outcome(), "ok");
  EXPECT_FALSE(submitted.peer().empty());
  for (const auto& e : trail.entries()) {
    for (const char* token : {"alice-t", "bob-t", "root-t", "not-a-real-token-xyz"})
      EXPECT_EQ(e.ShortDebugString().find(token), std::string::npos) << "a token in the trail: " << e.ShortDebugString();
  }
}

}  // namespace
}  // namespace prelude::server
