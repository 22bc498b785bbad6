// The gRPC services over a real grpc::Server (in-process channel, plus one call
// over loopback TCP), through the generated stubs: status codes and messages,
// token authentication, WatchJob's history-then-live stream and GetMetrics.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "prelude/v1/service.grpc.pb.h"
#include "prelude/v1/worker.grpc.pb.h"
#include "common/bearer.h"
#include "common/errors.h"
#include "common/grpc_status.h"
#include "server/auth.h"
#include "server/handle.h"
#include "server/job_manager.h"
#include "artifacts/checkpoint_file.h"
#include "artifacts/onnx_export.h"
#include "server/artifact_store.h"
#include "server/services.h"
#include "server/store.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;
using namespace std::chrono_literals;
namespace v1 = prelude::v1;

class ServicesTest : public ::testing::Test {
 protected:
  void TearDown() override { stop(); }

  // Starts a server over a fresh manager; `token` non-empty: that token is an admin's,
  // and calls need a token.
  void start(const std::string& token = "", std::unique_ptr<Authenticator> auth = nullptr) {
    store_ = std::make_unique<Store>(":memory:");
    ManagerOptions o;
    o.reaper_thread = false;
    o.now = clock_.fn();
    o.max_acquire_wait = 3000ms;
    jm_ = std::make_unique<JobManager>(*store_, o);
    if (!token.empty()) {
      auth_ = std::make_unique<Authenticator>();
      auth_->add_token(token, Caller{"admin", Role::kAdmin});
    }
    if (auth) auth_ = std::move(auth);
    artifacts_ = std::make_unique<ArtifactStore>(dir_.file("artifacts"));
    job_service_ = std::make_unique<JobServiceImpl>(*jm_, *artifacts_, auth_.get());
    worker_service_ = std::make_unique<WorkerServiceImpl>(*jm_, *artifacts_, auth_.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(job_service_.get());
    builder.RegisterService(worker_service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    channel_ = server_->InProcessChannel(grpc::ChannelArguments());
    jobs_ = v1::JobService::NewStub(channel_);
    workers_ = v1::WorkerService::NewStub(channel_);
  }

  void stop() {
    if (!server_) return;
    jm_->shutdown();  // wakes every watch
    server_->Shutdown(std::chrono::system_clock::now() + 2s);
    jobs_.reset();
    workers_.reset();
    channel_.reset();
    server_.reset();
    worker_service_.reset();
    job_service_.reset();
    jm_.reset();
    store_.reset();
  }

  // A client context carrying `authorization: Bearer <token>` when token is given.
  std::unique_ptr<grpc::ClientContext> ctx(const std::string& token = "",
                                           std::chrono::milliseconds timeout = 10000ms) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + timeout);
    if (!token.empty()) c->AddMetadata("authorization", "Bearer " + token);
    return c;
  }

  v1::Job submit(const v1::JobSpec& spec, const std::string& token = "") {
    v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    v1::Job job;
    const grpc::Status s = jobs_->SubmitJob(ctx(token).get(), req, &job);
    EXPECT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
    return job;
  }

  grpc::Status get_job(const std::string& id, v1::Job* job, const std::string& token = "") {
    v1::GetJobRequest req;
    req.set_job_id(id);
    return jobs_->GetJob(ctx(token).get(), req, job);
  }

  // The pool side, through the WorkerService stub.
  std::string register_pool(int ranks) {
    v1::RegisterPoolRequest req = pool_request(ranks, "test-host");
    v1::RegisterPoolResponse resp;
    const grpc::Status s = workers_->RegisterPool(ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.pool_id();
  }
  v1::AcquireJobResponse acquire(const std::string& pool, int wait_ms = 0) {
    v1::AcquireJobRequest req;
    req.set_pool_id(pool);
    req.set_wait_ms(wait_ms);
    v1::AcquireJobResponse resp;
    const grpc::Status s = workers_->AcquireJob(ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (resp.has_job()) leases_[pool] = resp.lease();  // sent back as a pool does
    return resp;
  }
  bool report(const std::string& pool, const std::string& job, const std::vector<v1::TrainingEvent>& events) {
    v1::ReportProgressRequest req;
    req.set_pool_id(pool);
    req.set_job_id(job);
    req.set_lease(leases_[pool]);
    for (const auto& e : events) *req.add_events() = e;
    v1::ReportProgressResponse resp;
    const grpc::Status s = workers_->ReportProgress(ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.stop();
  }
  grpc::Status finish(const std::string& pool, const std::string& job, v1::JobState state,
                      const std::string& error = "") {
    v1::FinishJobRequest req;
    req.set_pool_id(pool);
    req.set_job_id(job);
    req.set_lease(leases_[pool]);
    req.set_state(state);
    req.set_error(error);
    v1::FinishJobResponse resp;
    return workers_->FinishJob(ctx().get(), req, &resp);
  }

  // Reads a whole WatchJob stream: its events and final status.
  std::pair<std::vector<v1::JobEvent>, grpc::Status> watch_all(const std::string& id, int64_t after_seq = 0,
                                                                const std::string& token = "") {
    v1::WatchJobRequest req;
    req.set_job_id(id);
    req.set_after_seq(after_seq);
    auto c = ctx(token);
    auto reader = jobs_->WatchJob(c.get(), req);
    std::vector<v1::JobEvent> events;
    v1::JobEvent e;
    while (reader->Read(&e)) events.push_back(e);
    return {events, reader->Finish()};
  }

  FakeClock clock_;
  TempDir dir_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<JobManager> jm_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::map<std::string, std::string> leases_;  // by pool: the lease of the job it acquired last
};

std::vector<int64_t> seqs(const std::vector<v1::JobEvent>& events) {
  std::vector<int64_t> out;
  for (const auto& e : events) out.push_back(e.seq());
  return out;
}

// ================================================================ Authenticator and handle(), without a server

std::multimap<grpc::string_ref, grpc::string_ref> metadata(const std::string& key, const std::string& value) {
  std::multimap<grpc::string_ref, grpc::string_ref> m;
  m.emplace(grpc::string_ref(key), grpc::string_ref(value));
  return m;
}

TEST(TokenAuthTest, AcceptsOnlyTheExactBearerToken) {
  Authenticator auth;
  auth.add_token("s3cret", Caller{"admin", Role::kAdmin});
  const std::string key = "authorization";
  const std::string right = "Bearer s3cret", wrong = "Bearer s3creT", shorter = "Bearer s3cre",
                    longer = "Bearer s3cret2", no_scheme = "s3cret", empty = "Bearer ";
  EXPECT_NO_THROW(auth.authenticate(metadata(key, right)));
  EXPECT_SERVICE_ERROR(auth.authenticate({}), ErrorCode::kUnauthenticated, "Bearer");
  EXPECT_SERVICE_ERROR(auth.authenticate(metadata(key, wrong)), ErrorCode::kUnauthenticated, "wrong token");
  EXPECT_SERVICE_ERROR(auth.authenticate(metadata(key, shorter)), ErrorCode::kUnauthenticated, "wrong token");
  EXPECT_SERVICE_ERROR(auth.authenticate(metadata(key, longer)), ErrorCode::kUnauthenticated, "wrong token");
  EXPECT_SERVICE_ERROR(auth.authenticate(metadata(key, no_scheme)), ErrorCode::kUnauthenticated, "Bearer");
  EXPECT_SERVICE_ERROR(auth.authenticate(metadata(key, empty)), ErrorCode::kUnauthenticated, "wrong token");
  const std::string other_key = "x-token";
  EXPECT_SERVICE_ERROR(auth.authenticate(metadata(other_key, right)), ErrorCode::kUnauthenticated, "Bearer");
}

TEST(TokenAuthTest, FromFileTrimsWhiteSpaceAndNamesABadFile) {
  TempDir dir;
  const std::string path = dir.file("token");
  std::ofstream(path) << "  s3cret\n";
  Authenticator auth;
  auth.add_admin_token_file(path);
  const std::string key = "authorization", value = "Bearer s3cret";
  EXPECT_NO_THROW(auth.authenticate(metadata(key, value)));

  const std::string missing = dir.file("missing-token");
  try {
    Authenticator().add_admin_token_file(missing);
    ADD_FAILURE() << "read a missing token file";
  } catch (const UserError& e) {
    EXPECT_TRUE(contains(e.what(), missing)) << e.what();
  }
  const std::string blank = dir.file("blank");
  std::ofstream(blank) << " \n";
  EXPECT_THROW(Authenticator().add_admin_token_file(blank), UserError);
}

// The one mapping of error kinds to and from gRPC codes (common/grpc_status.h).
constexpr ErrorCode kAllKinds[] = {ErrorCode::kInvalidArgument, ErrorCode::kNotFound,  ErrorCode::kFailedPrecondition,
                                   ErrorCode::kUnauthenticated, ErrorCode::kUnavailable, ErrorCode::kInternal,
                                   ErrorCode::kTimedOut,        ErrorCode::kInterrupted, ErrorCode::kUnsupported,
                                   ErrorCode::kPermissionDenied, ErrorCode::kResourceExhausted};

TEST(GrpcStatusTest, EveryKindGoesOutAsItsCodeAndComesBackAsItself) {
  EXPECT_EQ(to_grpc(ErrorCode::kInvalidArgument), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(to_grpc(ErrorCode::kNotFound), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(to_grpc(ErrorCode::kFailedPrecondition), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(to_grpc(ErrorCode::kUnauthenticated), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(to_grpc(ErrorCode::kUnavailable), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(to_grpc(ErrorCode::kInternal), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(to_grpc(ErrorCode::kTimedOut), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(to_grpc(ErrorCode::kPermissionDenied), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(to_grpc(ErrorCode::kResourceExhausted), grpc::StatusCode::RESOURCE_EXHAUSTED);
  for (ErrorCode kind : kAllKinds) EXPECT_EQ(from_grpc(to_grpc(kind)), kind) << status_code_name(to_grpc(kind));
}

TEST(GrpcStatusTest, CallersRetryWhatMayPassAndNeverARefusal) {
  for (grpc::StatusCode code : {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::DEADLINE_EXCEEDED,
                                grpc::StatusCode::CANCELLED, grpc::StatusCode::ABORTED, grpc::StatusCode::INTERNAL,
                                grpc::StatusCode::UNKNOWN})
    EXPECT_TRUE(is_retryable(from_grpc(code))) << status_code_name(code);
  for (grpc::StatusCode code : {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::NOT_FOUND,
                                grpc::StatusCode::FAILED_PRECONDITION, grpc::StatusCode::UNAUTHENTICATED,
                                grpc::StatusCode::UNIMPLEMENTED, grpc::StatusCode::ALREADY_EXISTS,
                                grpc::StatusCode::PERMISSION_DENIED, grpc::StatusCode::OUT_OF_RANGE,
                                grpc::StatusCode::DATA_LOSS, grpc::StatusCode::RESOURCE_EXHAUSTED})
    EXPECT_FALSE(is_retryable(from_grpc(code))) << status_code_name(code);
  // Codes the coordinator never sends are not taken for one it does.
  EXPECT_EQ(from_grpc(grpc::StatusCode::ALREADY_EXISTS), ErrorCode::kUnsupported);
  EXPECT_EQ(from_grpc(grpc::StatusCode::OUT_OF_RANGE), ErrorCode::kUnsupported);
}

TEST(GrpcStatusTest, CodesReadByName) {
  EXPECT_EQ(status_text(grpc::StatusCode::NOT_FOUND, "job-7: no such job"), "NOT_FOUND: job-7: no such job");
  EXPECT_EQ(status_text(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong token")),
            "UNAUTHENTICATED: wrong token");
  EXPECT_STREQ(status_code_name(grpc::StatusCode::DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
}

TEST(BearerTest, TheTokenGoesOutAsBearerMetadataAndIsReadBack) {
  EXPECT_EQ(bearer_token("Bearer s3cret"), std::optional<std::string>("s3cret"));
  EXPECT_EQ(bearer_token("Bearer "), std::optional<std::string>(""));
  EXPECT_EQ(bearer_token("bearer s3cret"), std::nullopt);
  EXPECT_EQ(bearer_token("Basic czNjcmV0"), std::nullopt);
  EXPECT_EQ(bearer_token("s3cret"), std::nullopt);
}

TEST(GrpcStatusTest, EveryErrorHasItsStatusCode) {
  grpc::ServerContext context;
  struct Case {
    std::function<void()> body;
    grpc::StatusCode code;
  } cases[] = {
      {[] {}, grpc::StatusCode::OK},
      {[] { throw invalid_argument("spec.x: bad"); }, grpc::StatusCode::INVALID_ARGUMENT},
      {[] { throw not_found("job 'x' does not exist"); }, grpc::StatusCode::NOT_FOUND},
      {[] { throw failed_precondition("ended"); }, grpc::StatusCode::FAILED_PRECONDITION},
      {[] { throw unauthenticated("no token"); }, grpc::StatusCode::UNAUTHENTICATED},
      {[] { throw unavailable("shutting down"); }, grpc::StatusCode::UNAVAILABLE},
      {[] { throw UserError("training.batchSize: must be positive"); }, grpc::StatusCode::INVALID_ARGUMENT},
      {[] { throw std::runtime_error("database: disk I/O error"); }, grpc::StatusCode::INTERNAL},
  };
  for (const auto& c : cases) {
    const grpc::Status s = handle(&context, nullptr, Allowed::kClients, [&](const Caller&) { c.body(); });
    EXPECT_EQ(s.error_code(), c.code) << s.error_message();
  }
  EXPECT_EQ(handle(&context, nullptr, Allowed::kClients, [](const Caller&) {
              throw not_found("job 'job-000007' does not exist");
            }).error_message(),
            "job 'job-000007' does not exist");
  EXPECT_TRUE(contains(
      handle(&context, nullptr, Allowed::kClients, [](const Caller&) { throw std::runtime_error("disk"); })
          .error_message(),
      "disk"));

  // With an Authenticator the token is checked first: the body does not run.
  Authenticator auth;
  auth.add_token("s3cret", Caller{"admin", Role::kAdmin});
  bool ran = false;
  const grpc::Status s = handle(&context, &auth, Allowed::kClients, [&](const Caller&) { ran = true; });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_FALSE(ran);
}

// ================================================================ JobService errors

TEST_F(ServicesTest, SubmitJobWithBadSpecIsInvalidArgumentNamingTheField) {
  start();
  v1::SubmitJobRequest req;
  *req.mutable_spec() = small_spec();
  req.mutable_spec()->mutable_training()->set_learning_rate(-1);
  v1::Job job;
  const grpc::Status s = jobs_->SubmitJob(ctx().get(), req, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(contains(s.error_message(), "spec.training.learningRate")) << s.error_message();

  req.mutable_spec()->mutable_training()->set_learning_rate(0.1);
  req.mutable_spec()->mutable_dataset()->set_train_images("../etc/passwd");
  const grpc::Status escaping = jobs_->SubmitJob(ctx().get(), req, &job);
  EXPECT_EQ(escaping.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(contains(escaping.error_message(), "spec.dataset.trainImages")) << escaping.error_message();
}

TEST_F(ServicesTest, SubmitAndGetJob) {
  start();
  const v1::Job job = submit(small_spec("via-grpc"));
  EXPECT_EQ(job.job_id(), "job-000001");
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.spec().name(), "via-grpc");
  EXPECT_EQ(job.spec().training().batch_size(), 64);
  v1::Job got;
  ASSERT_TRUE(get_job(job.job_id(), &got).ok());
  EXPECT_EQ(got.SerializeAsString(), job.SerializeAsString());
}

TEST_F(ServicesTest, UnknownJobIsNotFound) {
  start();
  v1::Job job;
  grpc::Status s = get_job("job-000123", &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(contains(s.error_message(), "job-000123")) << s.error_message();

  v1::CancelJobRequest cancel;
  cancel.set_job_id("job-000123");
  EXPECT_EQ(jobs_->CancelJob(ctx().get(), cancel, &job).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::GetMetricsRequest metrics;
  metrics.set_job_id("job-000123");
  v1::GetMetricsResponse metrics_resp;
  EXPECT_EQ(jobs_->GetMetrics(ctx().get(), metrics, &metrics_resp).error_code(), grpc::StatusCode::NOT_FOUND);

  const auto [events, status] = watch_all("job-000123");
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

// An id is echoed in the error, but bounded: a 10 KB one in full would fill the
// status message (sent as metadata: clients refuse trailers over 8 KB by default).
TEST_F(ServicesTest, AHugeIdIsEchoedCutShort) {
  start();
  const std::string huge = "job-" + std::string(10240, 'x');
  const auto check = [&](const grpc::Status& s, grpc::StatusCode code, const char* call) {
    EXPECT_EQ(s.error_code(), code) << call << ": " << s.error_message();
    EXPECT_LT(s.error_message().size(), 300u) << call << ": " << s.error_message().substr(0, 300);
    EXPECT_TRUE(contains(s.error_message(), "job-xxxxxxxx")) << call << ": " << s.error_message();
    EXPECT_TRUE(contains(s.error_message(), "(10244 bytes)")) << call << ": " << s.error_message();
  };
  v1::Job job;
  check(get_job(huge, &job), grpc::StatusCode::NOT_FOUND, "GetJob");
  v1::CancelJobRequest cancel;
  cancel.set_job_id(huge);
  check(jobs_->CancelJob(ctx().get(), cancel, &job), grpc::StatusCode::NOT_FOUND, "CancelJob");
  v1::GetMetricsRequest metrics;
  metrics.set_job_id(huge);
  v1::GetMetricsResponse metrics_resp;
  check(jobs_->GetMetrics(ctx().get(), metrics, &metrics_resp), grpc::StatusCode::NOT_FOUND, "GetMetrics");
  check(watch_all(huge).second, grpc::StatusCode::NOT_FOUND, "WatchJob");
  v1::GetSweepRequest sweep;
  sweep.set_sweep_id(huge);
  v1::SweepStatus sweep_resp;
  check(jobs_->GetSweep(ctx().get(), sweep, &sweep_resp), grpc::StatusCode::NOT_FOUND, "GetSweep");
  v1::ListJobsRequest list;
  list.set_page_token(huge);
  v1::ListJobsResponse list_resp;
  check(jobs_->ListJobs(ctx().get(), list, &list_resp), grpc::StatusCode::INVALID_ARGUMENT, "ListJobs");
  v1::DownloadModelRequest download;
  download.set_job_id(huge);
  auto c = ctx();
  auto reader = jobs_->DownloadModel(c.get(), download);
  v1::DownloadModelChunk chunk;
  while (reader->Read(&chunk)) {
  }
  check(reader->Finish(), grpc::StatusCode::NOT_FOUND, "DownloadModel");
  check(finish(huge, "job-1", v1::FAILED), grpc::StatusCode::NOT_FOUND, "FinishJob (pool id)");
  // A checkpoint name, of a job that exists.
  const std::string id = submit(small_spec()).job_id();
  download.set_job_id(id);
  download.set_checkpoint(huge);
  auto c2 = ctx();
  auto reader2 = jobs_->DownloadModel(c2.get(), download);
  while (reader2->Read(&chunk)) {
  }
  check(reader2->Finish(), grpc::StatusCode::INVALID_ARGUMENT, "DownloadModel (checkpoint)");
}

TEST_F(ServicesTest, EmptyJobIdIsInvalidArgument) {
  start();
  v1::Job job;
  const grpc::Status s = get_job("", &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(contains(s.error_message(), "job_id")) << s.error_message();
}

TEST_F(ServicesTest, CancelJobOverGrpc) {
  start();
  const std::string pool = register_pool(2);
  const std::string a = submit(small_spec("a")).job_id(), b = submit(small_spec("b")).job_id();
  v1::CancelJobRequest req;
  v1::Job job;
  // Queued: cancelled at once.
  req.set_job_id(b);
  ASSERT_TRUE(jobs_->CancelJob(ctx().get(), req, &job).ok());
  EXPECT_EQ(job.state(), v1::CANCELLED);
  // Running: cancel_requested, and the pool's next report says stop.
  ASSERT_EQ(acquire(pool).job().job_id(), a);
  req.set_job_id(a);
  ASSERT_TRUE(jobs_->CancelJob(ctx().get(), req, &job).ok());
  EXPECT_EQ(job.state(), v1::RUNNING);
  EXPECT_TRUE(job.cancel_requested());
  EXPECT_TRUE(report(pool, a, {step_event(3, 1.0)}));
  ASSERT_TRUE(finish(pool, a, v1::CANCELLED).ok());
  ASSERT_TRUE(get_job(a, &job).ok());
  EXPECT_EQ(job.state(), v1::CANCELLED);
}

TEST_F(ServicesTest, CancelEndedJobIsFailedPrecondition) {
  start();
  const std::string pool = register_pool(1);
  const std::string id = submit(small_spec()).job_id();
  acquire(pool);
  ASSERT_TRUE(finish(pool, id, v1::SUCCEEDED).ok());
  v1::CancelJobRequest req;
  req.set_job_id(id);
  v1::Job job;
  const grpc::Status s = jobs_->CancelJob(ctx().get(), req, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(contains(s.error_message(), "SUCCEEDED")) << s.error_message();
}

TEST_F(ServicesTest, ListJobsPagesNewestFirst) {
  start();
  for (int i = 0; i < 3; ++i) submit(small_spec());
  v1::ListJobsRequest req;
  req.set_page_size(2);
  v1::ListJobsResponse resp;
  ASSERT_TRUE(jobs_->ListJobs(ctx().get(), req, &resp).ok());
  ASSERT_EQ(resp.jobs_size(), 2);
  EXPECT_EQ(resp.jobs(0).job_id(), "job-000003");
  EXPECT_EQ(resp.jobs(1).job_id(), "job-000002");
  ASSERT_FALSE(resp.next_page_token().empty());
  req.set_page_token(resp.next_page_token());
  v1::ListJobsResponse second;
  ASSERT_TRUE(jobs_->ListJobs(ctx().get(), req, &second).ok());
  ASSERT_EQ(second.jobs_size(), 1);
  EXPECT_EQ(second.jobs(0).job_id(), "job-000001");
  EXPECT_TRUE(second.next_page_token().empty());

  req.set_page_token("not-a-token");
  const grpc::Status s = jobs_->ListJobs(ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(contains(s.error_message(), "page_token")) << s.error_message();
}

// ================================================================ WorkerService errors

TEST_F(ServicesTest, WorkerServiceErrors) {
  start();
  v1::RegisterPoolResponse reg;
  grpc::Status s = workers_->RegisterPool(ctx().get(), pool_request(0), &reg);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(contains(s.error_message(), "ranks")) << s.error_message();

  v1::ReportProgressRequest rep;
  rep.set_pool_id("pool-7.7");
  v1::ReportProgressResponse rep_resp;
  EXPECT_EQ(workers_->ReportProgress(ctx().get(), rep, &rep_resp).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::AcquireJobRequest acq;
  acq.set_pool_id("pool-7.7");
  v1::AcquireJobResponse acq_resp;
  EXPECT_EQ(workers_->AcquireJob(ctx().get(), acq, &acq_resp).error_code(), grpc::StatusCode::NOT_FOUND);

  EXPECT_EQ(finish("pool-7.7", "job-000001", v1::SUCCEEDED).error_code(), grpc::StatusCode::NOT_FOUND);
  const std::string pool = register_pool(2);
  s = finish(pool, "job-000001", v1::RUNNING);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(contains(s.error_message(), "state")) << s.error_message();

  // Nothing queued: OK without a job.
  const v1::AcquireJobResponse none = acquire(pool, 0);
  EXPECT_FALSE(none.has_job());
}

// A pool that gives up on its AcquireJob call (deadline, crash, scale-down) must
// not be handed a job: it will never learn of it, so the job would sit RUNNING
// until the heartbeat timeout and then lose an attempt.
TEST_F(ServicesTest, AcquireJobWhoseCallerHasGoneDoesNotStartTheJob) {
  start();
  const std::string pool = register_pool(1);
  auto call = std::async(std::launch::async, [&] {
    v1::AcquireJobRequest req;
    req.set_pool_id(pool);
    req.set_wait_ms(2500);
    v1::AcquireJobResponse resp;
    return workers_->AcquireJob(ctx("", 300ms).get(), req, &resp);
  });
  ASSERT_TRUE(wait_for([&] {
    const auto pools = jm_->pools();
    return pools.size() == 1 && pools[0].waiting == 1;
  }));
  ASSERT_EQ(call.wait_for(3s), std::future_status::ready);
  EXPECT_EQ(call.get().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);

  // The caller is gone; a job arrives while the handler may still be waiting.
  const std::string id = submit(small_spec()).job_id();
  ASSERT_TRUE(wait_for([&] {
    const auto pools = jm_->pools();
    return pools.size() == 1 && pools[0].waiting == 0;
  }));
  v1::Job job;
  ASSERT_TRUE(get_job(id, &job).ok());
  EXPECT_EQ(job.state(), v1::QUEUED) << "the job was started on " << job.pool_id()
                                     << ", whose AcquireJob call had already ended";
  EXPECT_EQ(job.attempts(), 0);
}

TEST_F(ServicesTest, WatchJobEndsWithUnavailableWhenTheCoordinatorShutsDown) {
  start();
  const std::string id = submit(small_spec()).job_id();
  auto watched = std::async(std::launch::async, [&] { return watch_all(id); });
  std::this_thread::sleep_for(50ms);
  jm_->shutdown();
  ASSERT_EQ(watched.wait_for(5s), std::future_status::ready);
  const auto [events, status] = watched.get();
  EXPECT_EQ(seqs(events), (std::vector<int64_t>{1}));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

// ================================================================ auth

TEST_F(ServicesTest, TokenIsRequiredOnEveryService) {
  start("s3cret");
  v1::SubmitJobRequest req;
  *req.mutable_spec() = small_spec();
  v1::Job job;

  grpc::Status s = jobs_->SubmitJob(ctx().get(), req, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  s = jobs_->SubmitJob(ctx("wrong").get(), req, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  s = jobs_->SubmitJob(ctx("s3cre").get(), req, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << "a prefix of the token must not pass";
  s = jobs_->SubmitJob(ctx("s3cretX").get(), req, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << "a longer token must not pass";
  {
    auto c = ctx();
    c->AddMetadata("authorization", "Basic s3cret");
    EXPECT_EQ(jobs_->SubmitJob(c.get(), req, &job).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // Nothing was submitted by the refused calls.
  v1::ListJobsResponse list;
  ASSERT_TRUE(jobs_->ListJobs(ctx("s3cret").get(), v1::ListJobsRequest(), &list).ok());
  EXPECT_EQ(list.jobs_size(), 0);

  s = jobs_->SubmitJob(ctx("s3cret").get(), req, &job);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(job.state(), v1::QUEUED);

  // The token is checked before anything else: an unknown job without a token is
  // UNAUTHENTICATED, not NOT_FOUND; a bad spec without a token is not validated.
  EXPECT_EQ(get_job("job-000999", &job).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(get_job("job-000999", &job, "s3cret").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(get_job("job-000001", &job, "s3cret").error_code(), grpc::StatusCode::OK);
  req.mutable_spec()->mutable_training()->set_batch_size(0);
  EXPECT_EQ(jobs_->SubmitJob(ctx().get(), req, &job).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // WorkerService too.
  v1::RegisterPoolResponse reg;
  EXPECT_EQ(workers_->RegisterPool(ctx().get(), pool_request(2), &reg).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(workers_->RegisterPool(ctx("nope").get(), pool_request(2), &reg).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(workers_->RegisterPool(ctx("s3cret").get(), pool_request(2), &reg).ok());
  EXPECT_EQ(jm_->pools().size(), 1u);

  // And the WatchJob stream.
  auto [events, status] = watch_all("job-000001", 0, "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(events.empty());
}

// Roles over the wire: a pool token may not use JobService, a user token may not act
// as a pool, a user sees only its own jobs, and the forgery of issue 13 (a report of
// accuracy 0.999 and a SUCCEEDED under another pool's id) changes nothing.
TEST_F(ServicesTest, EachTokenMakesOnlyItsRolesCallsAndSeesOnlyItsOwnJobs) {
  auto auth = std::make_unique<Authenticator>();
  auth->add_token("alice-t", Caller{"alice", Role::kUser});
  auth->add_token("bob-t", Caller{"bob", Role::kUser});
  auth->add_token("pool-t", Caller{"pool-a", Role::kPool});
  auth->add_token("evil-pool-t", Caller{"pool-evil", Role::kPool});
  auth->add_token("admin-t", Caller{"root", Role::kAdmin});
  start("", std::move(auth));

  // A pool token cannot submit; a user token cannot register a pool.
  v1::SubmitJobRequest submit_req;
  *submit_req.mutable_spec() = small_spec("victim");
  v1::Job job;
  grpc::Status s = jobs_->SubmitJob(ctx("pool-t").get(), submit_req, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  v1::RegisterPoolResponse reg;
  s = workers_->RegisterPool(ctx("alice-t").get(), pool_request(1, "h"), &reg);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_TRUE(contains(s.error_message(), "alice")) << s.error_message();

  // Alice's job: Bob is told it does not exist, the admin sees it.
  ASSERT_TRUE(jobs_->SubmitJob(ctx("alice-t").get(), submit_req, &job).ok());
  EXPECT_EQ(job.owner(), "alice");
  v1::Job got;
  EXPECT_EQ(get_job(job.job_id(), &got, "bob-t").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(get_job(job.job_id(), &got, "admin-t").ok());
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.job_id());
  EXPECT_EQ(jobs_->CancelJob(ctx("bob-t").get(), cancel, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ListJobsResponse listed;
  ASSERT_TRUE(jobs_->ListJobs(ctx("bob-t").get(), v1::ListJobsRequest(), &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 0);

  // The real pool takes it with its lease.
  ASSERT_TRUE(workers_->RegisterPool(ctx("pool-t").get(), pool_request(1, "h"), &reg).ok());
  v1::AcquireJobRequest acq;
  acq.set_pool_id(reg.pool_id());
  v1::AcquireJobResponse taken;
  ASSERT_TRUE(workers_->AcquireJob(ctx("pool-t").get(), acq, &taken).ok());
  ASSERT_EQ(taken.job().job_id(), job.job_id());
  EXPECT_EQ(taken.lease().size(), 32u);

  // The forgery, by another pool token that even knows the pool id, then by the
  // pool's own token without the lease.
  v1::ReportProgressRequest forged;
  forged.set_pool_id(reg.pool_id());
  forged.set_job_id(job.job_id());
  *forged.add_events() = summary_event(0, 0.999);
  v1::FinishJobRequest done;
  done.set_pool_id(reg.pool_id());
  done.set_job_id(job.job_id());
  done.set_state(v1::SUCCEEDED);
  v1::ReportProgressResponse rr;
  v1::FinishJobResponse fr;
  EXPECT_EQ(workers_->ReportProgress(ctx("evil-pool-t").get(), forged, &rr).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(workers_->FinishJob(ctx("evil-pool-t").get(), done, &fr).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(workers_->ReportProgress(ctx("pool-t").get(), forged, &rr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(workers_->FinishJob(ctx("pool-t").get(), done, &fr).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(get_job(job.job_id(), &got, "alice-t").ok());
  EXPECT_EQ(got.state(), v1::RUNNING);
  EXPECT_FALSE(got.has_latest_metrics());

  // With the lease, the pool's report and finish count.
  forged.set_lease(taken.lease());
  done.set_lease(taken.lease());
  ASSERT_TRUE(workers_->ReportProgress(ctx("pool-t").get(), forged, &rr).ok());
  ASSERT_TRUE(workers_->FinishJob(ctx("pool-t").get(), done, &fr).ok());
  ASSERT_TRUE(get_job(job.job_id(), &got, "alice-t").ok());
  EXPECT_EQ(got.state(), v1::SUCCEEDED);
}

TEST_F(ServicesTest, TokenWorksOverLoopbackTcp) {
  start("s3cret");
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials());
  auto stub = v1::JobService::NewStub(channel);
  v1::ListJobsResponse list;
  EXPECT_EQ(stub->ListJobs(ctx("bad").get(), v1::ListJobsRequest(), &list).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status s = stub->ListJobs(ctx("s3cret").get(), v1::ListJobsRequest(), &list);
  EXPECT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
}

// ================================================================ WatchJob and GetMetrics

TEST_F(ServicesTest, WatchJobStreamsHistoryThenLiveEventsAndEndsAfterTheFinalState) {
  start();
  const std::string id = submit(small_spec("watched")).job_id();

  std::promise<std::string> pool_running;  // the driver has started the job and reported once
  std::promise<void> history_read;         // the watcher has read the history
  std::thread driver([&] {
    const std::string pool = register_pool(2);
    const v1::AcquireJobResponse got = acquire(pool, 1000);
    EXPECT_EQ(got.job().job_id(), id);
    report(pool, id, {step_event(1, 2.3)});
    pool_running.set_value(pool);
    history_read.get_future().wait();
    std::this_thread::sleep_for(20ms);  // let the watcher block in Read
    report(pool, id, {step_event(2, 2.0), epoch_event(0, 0.7)});
    EXPECT_TRUE(finish(pool, id, v1::SUCCEEDED).ok());
  });

  const std::string pool = pool_running.get_future().get();
  v1::WatchJobRequest req;
  req.set_job_id(id);
  auto c = ctx();
  auto reader = jobs_->WatchJob(c.get(), req);
  std::vector<v1::JobEvent> events;
  v1::JobEvent e;
  for (int i = 0; i < 3 && reader->Read(&e); ++i) events.push_back(e);
  ASSERT_EQ(events.size(), 3u);
  history_read.set_value();
  while (reader->Read(&e)) events.push_back(e);
  const grpc::Status status = reader->Finish();
  driver.join();

  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  ASSERT_EQ(seqs(events), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  for (const auto& ev : events) EXPECT_EQ(ev.job_id(), id);
  EXPECT_EQ(events[0].state_change().state(), v1::QUEUED);
  EXPECT_EQ(events[1].state_change().state(), v1::RUNNING);
  EXPECT_EQ(events[1].state_change().pool_id(), pool);
  EXPECT_EQ(events[2].training().step(), 1);
  EXPECT_EQ(events[3].training().step(), 2);
  EXPECT_EQ(event_kind(events[4].training()), v1::TrainingEvent::EPOCH);
  ASSERT_TRUE(events[5].has_state_change());
  EXPECT_EQ(events[5].state_change().state(), v1::SUCCEEDED);
}

TEST_F(ServicesTest, WatchJobStartedOnAQueuedJobFollowsItToTheEnd) {
  start();
  const std::string id = submit(small_spec()).job_id();
  auto watched = std::async(std::launch::async, [&] { return watch_all(id); });
  std::this_thread::sleep_for(20ms);
  const std::string pool = register_pool(1);
  acquire(pool, 1000);
  report(pool, id, {step_event(1, 1.0)});
  ASSERT_TRUE(finish(pool, id, v1::FAILED, "diverged").ok());
  ASSERT_EQ(watched.wait_for(5s), std::future_status::ready);
  const auto [events, status] = watched.get();
  EXPECT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(seqs(events), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(events[3].state_change().state(), v1::FAILED);
  EXPECT_EQ(events[3].state_change().reason(), "diverged");
}

TEST_F(ServicesTest, WatchSweepStreamsStatusesUntilEveryJobHasEnded) {
  start();
  v1::SubmitSweepRequest sreq;
  *sreq.mutable_sweep()->mutable_base() = small_spec("swept");
  sreq.mutable_sweep()->add_seeds(1);
  sreq.mutable_sweep()->add_seeds(2);
  v1::SweepStatus submitted;
  ASSERT_TRUE(jobs_->SubmitSweep(ctx().get(), sreq, &submitted).ok());
  const std::string sweep = submitted.sweep().sweep_id();
  ASSERT_EQ(submitted.jobs_size(), 2);

  std::promise<void> first_read;
  std::thread driver([&] {
    first_read.get_future().wait();
    const std::string pool = register_pool(1);
    for (const v1::JobState end : {v1::SUCCEEDED, v1::FAILED}) {
      const std::string id = acquire(pool, 1000).job().job_id();
      report(pool, id, {step_event(1, 2.0)});
      EXPECT_TRUE(finish(pool, id, end, end == v1::FAILED ? "training stalled" : "").ok());
    }
  });

  v1::WatchSweepRequest req;
  req.set_sweep_id(sweep);
  auto c = ctx();
  auto reader = jobs_->WatchSweep(c.get(), req);
  std::vector<v1::SweepStatus> statuses(1);
  ASSERT_TRUE(reader->Read(&statuses[0]));
  first_read.set_value();
  for (v1::SweepStatus st; reader->Read(&st);) statuses.push_back(st);
  const grpc::Status status = reader->Finish();
  driver.join();

  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  ASSERT_GE(statuses.size(), 2u) << "the status at once, then at least the final one";
  // Six changes (2 x RUNNING, step, end) arrive in at most a few statuses: at most
  // two a second, each with everything so far.
  EXPECT_LE(statuses.size(), 7u);
  EXPECT_EQ(statuses.front().sweep().sweep_id(), sweep);
  EXPECT_EQ(statuses.front().jobs(0).state(), v1::QUEUED);
  EXPECT_EQ(statuses.front().jobs(1).state(), v1::QUEUED);
  const v1::SweepStatus& last = statuses.back();
  EXPECT_EQ(last.jobs(0).state(), v1::SUCCEEDED);
  EXPECT_EQ(last.jobs(1).state(), v1::FAILED);
  EXPECT_EQ(last.jobs(1).error(), "training stalled");

  // An ended sweep: one status, then the end. Unknown and empty ids are refused.
  auto c2 = ctx();
  auto again = jobs_->WatchSweep(c2.get(), req);
  v1::SweepStatus st;
  EXPECT_TRUE(again->Read(&st));
  EXPECT_FALSE(again->Read(&st));
  EXPECT_TRUE(again->Finish().ok());
  req.set_sweep_id("sweep-000099");
  auto c3 = ctx();
  auto missing = jobs_->WatchSweep(c3.get(), req);
  EXPECT_FALSE(missing->Read(&st));
  EXPECT_EQ(missing->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  req.clear_sweep_id();
  auto c4 = ctx();
  auto empty = jobs_->WatchSweep(c4.get(), req);
  EXPECT_FALSE(empty->Read(&st));
  const grpc::Status e = empty->Finish();
  EXPECT_EQ(e.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(e.error_message().find("sweep_id"), std::string::npos) << e.error_message();
}

TEST_F(ServicesTest, WatchJobResumesAfterSeqAndEndsAtOnceForEndedJobs) {
  start();
  const std::string pool = register_pool(1);
  const std::string id = submit(small_spec()).job_id();
  acquire(pool);
  report(pool, id, {step_event(1, 1.0), step_event(2, 0.5)});
  ASSERT_TRUE(finish(pool, id, v1::SUCCEEDED).ok());

  auto [all, s1] = watch_all(id, 0);
  EXPECT_TRUE(s1.ok());
  EXPECT_EQ(seqs(all), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  auto [rest, s2] = watch_all(id, 3);
  EXPECT_TRUE(s2.ok());
  EXPECT_EQ(seqs(rest), (std::vector<int64_t>{4, 5}));
  const auto t0 = std::chrono::steady_clock::now();
  auto [none, s3] = watch_all(id, 5);
  EXPECT_TRUE(s3.ok());
  EXPECT_TRUE(none.empty());
  EXPECT_LT(ms_since(t0), 900);

  auto [bad, s4] = watch_all(id, -1);
  EXPECT_EQ(s4.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(contains(s4.error_message(), "after_seq")) << s4.error_message();
}

TEST_F(ServicesTest, GetMetricsReturnsOnlyTrainingEvents) {
  start();
  const std::string pool = register_pool(2);
  const std::string id = submit(small_spec()).job_id();
  acquire(pool);
  report(pool, id, {step_event(1, 2.0), step_event(2, 1.8)});
  report(pool, id, {epoch_event(0, 0.75), summary_event(2, 0.75)});
  ASSERT_TRUE(finish(pool, id, v1::SUCCEEDED).ok());

  v1::GetMetricsRequest req;
  req.set_job_id(id);
  v1::GetMetricsResponse resp;
  const grpc::Status s = jobs_->GetMetrics(ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.job().job_id(), id);
  EXPECT_EQ(resp.job().state(), v1::SUCCEEDED);
  EXPECT_EQ(event_kind(resp.job().latest_metrics()), v1::TrainingEvent::SUMMARY);
  EXPECT_EQ(resp.job().progress().step(), 2);
  ASSERT_EQ(resp.events_size(), 4);
  const EventKind kinds[] = {v1::TrainingEvent::STEP, v1::TrainingEvent::STEP, v1::TrainingEvent::EPOCH,
                             v1::TrainingEvent::SUMMARY};
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(resp.events(i).has_training()) << i;
    EXPECT_EQ(event_kind(resp.events(i).training()), kinds[i]);
    EXPECT_EQ(resp.events(i).seq(), 3 + i);
  }
}

}  // namespace
}  // namespace prelude::server

// ================================================================ models: upload, resume, download, delete

namespace prelude::server {
namespace {

// A small but real checkpoint of a model ONNX can take: conv3x3(2) PReLU-cw,
// global average pool, fc10 on 1x4x4 images.
v1::Checkpoint tiny_checkpoint(int64_t step, bool final) {
  v1::Checkpoint c;
  c.set_format_version(kCheckpointVersion);
  *c.mutable_spec() = small_spec("tiny");
  auto* conv = c.add_layers()->mutable_conv();
  conv->set_out_channels(2), conv->set_kernel(3), conv->set_padding(1), conv->set_stride(1);
  auto* act = c.add_layers()->mutable_activation();
  act->set_kind(v1::ActivationSpec::PRELU_CHANNELWISE), act->set_alpha_init(0.25);
  c.add_layers()->mutable_pool()->set_kind(v1::PoolLayerSpec::GLOBAL_AVG);
  c.add_layers()->mutable_fc()->set_out_features(10);
  auto io = c.mutable_io();
  io->set_channels(1), io->set_height(4), io->set_width(4), io->set_num_classes(10), io->set_mean(0.5), io->set_std(1);
  auto tensor = [&](const char* name, v1::Tensor::Kind kind, std::vector<int64_t> dims) {
    v1::Tensor* t = c.add_params();
    t->set_name(name), t->set_kind(kind);
    int64_t n = 1;
    for (int64_t d : dims) t->add_dims(d), n *= d;
    for (int64_t i = 0; i < n; ++i) t->add_values(0.01f * static_cast<float>(i + step)), t->add_momentum(0);
  };
  tensor("conv1.weight", v1::Tensor::WEIGHT, {2, 1, 3, 3});
  tensor("conv1.bias", v1::Tensor::BIAS, {2});
  tensor("conv1.act.slope", v1::Tensor::SLOPE, {2});
  tensor("fc1.weight", v1::Tensor::WEIGHT, {10, 2});
  tensor("fc1.bias", v1::Tensor::BIAS, {10});
  c.mutable_progress()->set_step(step);
  c.mutable_progress()->set_total_steps(100);
  c.mutable_progress()->set_finished(final);
  return c;
}

class ModelsTest : public ServicesTest {
 protected:
  // Uploads `bytes` as the checkpoint of `step` in chunks of `chunk` bytes; the
  // announced length and SHA-256 are the bytes' own unless overridden.
  grpc::Status upload(const std::string& pool, const std::string& job, int64_t step, bool final,
                      const std::string& bytes, size_t chunk = 1000, std::string sha = "", int64_t total = -1) {
    auto c = ctx();
    v1::UploadCheckpointResponse resp;
    auto writer = workers_->UploadCheckpoint(c.get(), &resp);
    v1::UploadCheckpointRequest first;
    first.set_pool_id(pool), first.set_job_id(job), first.set_step(step), first.set_final(final);
    first.set_lease(leases_[pool]);
    first.set_total_bytes(total >= 0 ? total : static_cast<int64_t>(bytes.size()));
    first.set_sha256(sha.empty() ? sha256_hex(bytes) : sha);
    for (size_t at = 0; at < bytes.size() || at == 0; at += chunk) {
      v1::UploadCheckpointRequest m = at == 0 ? first : v1::UploadCheckpointRequest();
      m.set_data(bytes.substr(at, chunk));
      if (!writer->Write(m)) break;
      if (bytes.empty()) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }
  std::string upload_ok(const std::string& pool, const std::string& job, int64_t step, bool final = false) {
    const std::string bytes = encode_checkpoint(tiny_checkpoint(step, final));
    const grpc::Status s = upload(pool, job, step, final, bytes);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return bytes;
  }
  // DownloadModel's content, the first chunk's metadata and the status.
  std::tuple<std::string, v1::DownloadModelChunk, grpc::Status> download(const std::string& job,
                                                                          const std::string& which,
                                                                          v1::DownloadModelRequest::Format f = {}) {
    v1::DownloadModelRequest req;
    req.set_job_id(job), req.set_checkpoint(which), req.set_format(f);
    auto c = ctx();
    auto reader = jobs_->DownloadModel(c.get(), req);
    std::string bytes;
    v1::DownloadModelChunk chunk, first;
    for (bool head = true; reader->Read(&chunk); head = false) {
      if (head) first = chunk;
      bytes += chunk.data();
    }
    return {bytes, first, reader->Finish()};
  }
  std::vector<int64_t> kept_steps(const std::string& job) {
    v1::Job j;
    EXPECT_TRUE(get_job(job, &j).ok());
    std::vector<int64_t> out;
    for (const auto& c : j.checkpoints()) out.push_back(c.final() ? -c.step() : c.step());
    return out;
  }
};

TEST_F(ModelsTest, UploadsAreVerifiedKeptAndPrunedAndAResumedAttemptIsToldItsCheckpoint) {
  start();
  const std::string pool = register_pool(1);
  const std::string job = submit(small_spec("models")).job_id();
  ASSERT_TRUE(acquire(pool).has_job());
  for (int64_t step : {10, 20, 30}) upload_ok(pool, job, step);
  // The newest 2 (the default) are kept; step 10's file is gone.
  EXPECT_EQ(kept_steps(job), (std::vector<int64_t>{20, 30}));
  EXPECT_FALSE(fs::exists(artifacts_->path(job, [] { v1::CheckpointInfo i; i.set_step(10); return i; }())));
  v1::Job j;
  ASSERT_TRUE(get_job(job, &j).ok());
  EXPECT_EQ(j.checkpoints(1).sha256(), sha256_hex(encode_checkpoint(tiny_checkpoint(30, false))));
  EXPECT_GT(j.checkpoints(1).bytes(), 500);

  // A damaged upload, a short one, a wrong announced checksum: refused, nothing listed.
  std::string bytes = encode_checkpoint(tiny_checkpoint(40, false));
  std::string corrupted = bytes;
  corrupted[100] ^= 1;
  grpc::Status s = upload(pool, job, 40, false, corrupted, 1000, sha256_hex(corrupted));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(contains(s.error_message(), "checksum mismatch")) << s.error_message();
  s = upload(pool, job, 40, false, bytes.substr(0, 300), 1000, sha256_hex(bytes), static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(contains(s.error_message(), "300 bytes arrived")) << s.error_message();
  s = upload(pool, job, 40, false, bytes, 1000, std::string(64, '0'));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(kept_steps(job), (std::vector<int64_t>{20, 30}));

  // Another pool may not upload for this job.
  const std::string other = register_pool(1);
  EXPECT_EQ(upload(other, job, 50, false, bytes).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // The pool is lost: the next attempt is told to resume from step 30, and can fetch it.
  clock_.advance(60s);
  jm_->reap_lost_pools();
  const std::string pool2 = register_pool(1);
  const v1::AcquireJobResponse again = acquire(pool2);
  ASSERT_TRUE(again.has_job());
  EXPECT_EQ(again.job().attempts(), 2);
  EXPECT_EQ(again.resume_from().step(), 30);
  v1::FetchCheckpointRequest fetch;
  fetch.set_pool_id(pool2), fetch.set_job_id(job), fetch.set_step(30), fetch.set_lease(leases_[pool2]);
  auto c = ctx();
  auto reader = workers_->FetchCheckpoint(c.get(), fetch);
  std::string fetched;
  for (v1::CheckpointChunk chunk; reader->Read(&chunk);) fetched += chunk.data();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(fetched, encode_checkpoint(tiny_checkpoint(30, false)));
  // The lost pool's stale attempt may not fetch or upload any more.
  fetch.set_pool_id(pool);
  auto c2 = ctx();
  auto stale = workers_->FetchCheckpoint(c2.get(), fetch);
  v1::CheckpointChunk ignored;
  while (stale->Read(&ignored)) {
  }
  EXPECT_EQ(stale->Finish().error_code(), grpc::StatusCode::NOT_FOUND);

  // The final model is kept besides the newest two.
  upload_ok(pool2, job, 40);
  const std::string final_bytes = upload_ok(pool2, job, 50, true);
  upload_ok(pool2, job, 50);
  EXPECT_EQ(kept_steps(job), (std::vector<int64_t>{40, 50, -50}));
}

TEST_F(ModelsTest, DownloadsAsCheckpointOrOnnxAndDeleteRemovesEverything) {
  start();
  const std::string pool = register_pool(1);
  const std::string job = submit(small_spec("models")).job_id();
  ASSERT_TRUE(acquire(pool).has_job());
  // No checkpoint yet: NOT_FOUND saying so.
  auto [none, none_head, none_status] = download(job, "");
  EXPECT_EQ(none_status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(contains(none_status.error_message(), "keeps none yet")) << none_status.error_message();

  const std::string step20 = upload_ok(pool, job, 20);
  const std::string final_bytes = upload_ok(pool, job, 25, true);
  // Default: the final model; "latest" is the newest step (the final one here); a step by number.
  auto [bytes, head, status] = download(job, "");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(bytes, final_bytes);
  EXPECT_TRUE(head.checkpoint().final());
  EXPECT_EQ(head.total_bytes(), static_cast<int64_t>(final_bytes.size()));
  EXPECT_EQ(head.sha256(), sha256_hex(final_bytes));
  EXPECT_EQ(std::get<0>(download(job, "20")), step20);
  auto missing = download(job, "21");
  EXPECT_EQ(std::get<2>(missing).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(contains(std::get<2>(missing).error_message(), "it keeps step 20, final (step 25)"))
      << std::get<2>(missing).error_message();
  EXPECT_EQ(std::get<2>(download(job, "soon")).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // ONNX: converted by the coordinator; a valid ModelProto naming the job.
  auto [onnx, onnx_head, onnx_status] = download(job, "final", v1::DownloadModelRequest::ONNX);
  ASSERT_TRUE(onnx_status.ok()) << onnx_status.error_message();
  EXPECT_EQ(onnx_head.sha256(), sha256_hex(onnx));
  EXPECT_EQ(onnx, export_onnx(tiny_checkpoint(25, true), "x"));

  // A file damaged on disk is never served.
  {
    v1::CheckpointInfo info;
    info.set_step(20);
    std::fstream f(artifacts_->path(job, info), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x7f');
  }
  EXPECT_NE(std::get<2>(download(job, "20")).error_code(), grpc::StatusCode::OK);

  // Delete: refused while running; then everything goes.
  v1::DeleteJobRequest del;
  del.set_job_id(job);
  v1::DeleteJobResponse del_resp;
  grpc::Status s = jobs_->DeleteJob(ctx().get(), del, &del_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(contains(s.error_message(), "RUNNING")) << s.error_message();
  ASSERT_TRUE(finish(pool, job, v1::SUCCEEDED).ok());
  ASSERT_TRUE(jobs_->DeleteJob(ctx().get(), del, &del_resp).ok());
  v1::Job gone;
  EXPECT_EQ(get_job(job, &gone).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(fs::exists(fs::path(artifacts_->dir()) / job));
  EXPECT_EQ(jobs_->DeleteJob(ctx().get(), del, &del_resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ModelsTest, WarmStartIsCheckedAtSubmitPinnedAndFetchedFromTheSourceJob) {
  start();
  const std::string pool = register_pool(1);
  const std::string source = submit(small_spec("source")).job_id();
  ASSERT_TRUE(acquire(pool).has_job());
  upload_ok(pool, source, 10);
  const std::string final_bytes = upload_ok(pool, source, 10, true);
  ASSERT_TRUE(finish(pool, source, v1::SUCCEEDED).ok());

  auto submit_status = [&](const v1::JobSpec& spec, v1::Job* job) {
    v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    return jobs_->SubmitJob(ctx().get(), req, job);
  };
  v1::Job job;
  v1::JobSpec spec = small_spec("fine-tune");
  spec.mutable_training()->set_learning_rate(0.001);
  spec.mutable_model()->mutable_init_from()->set_job_id("job-000099");
  grpc::Status s = submit_status(spec, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "spec.model.initFrom.jobId: no job 'job-000099'");
  spec.mutable_model()->mutable_init_from()->set_job_id(source);
  spec.mutable_model()->mutable_init_from()->set_checkpoint("7");
  s = submit_status(spec, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(contains(s.error_message(), "spec.model.initFrom.checkpoint: job '" + source +
                                              "' has no checkpoint '7' (it keeps step 10, final (step 10))"))
      << s.error_message();
  v1::JobSpec other = spec;
  other.mutable_model()->mutable_activation()->set_kind(v1::ActivationSpec::RELU);
  other.mutable_model()->mutable_init_from()->clear_checkpoint();
  s = submit_status(other, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(contains(s.error_message(), "spec.model.activation.kind: differs from the model of " + source))
      << s.error_message();

  // Accepted, pinned to the final model; its pool is told so and may fetch exactly that.
  spec.mutable_model()->mutable_init_from()->clear_checkpoint();
  ASSERT_TRUE(submit_status(spec, &job).ok());
  EXPECT_EQ(job.spec().model().init_from().checkpoint(), "final");
  const v1::AcquireJobResponse acquired = acquire(pool);
  ASSERT_EQ(acquired.job().job_id(), job.job_id());
  EXPECT_FALSE(acquired.has_resume_from());
  EXPECT_TRUE(acquired.init_from().final());
  EXPECT_EQ(acquired.init_from().step(), 10);
  auto fetch = [&](const std::string& from) {
    v1::FetchCheckpointRequest req;
    req.set_pool_id(pool), req.set_job_id(job.job_id()), req.set_step(10), req.set_from_job_id(from);
    req.set_lease(leases_[pool]);
    auto c = ctx();
    auto reader = workers_->FetchCheckpoint(c.get(), req);
    std::string bytes;
    for (v1::CheckpointChunk chunk; reader->Read(&chunk);) bytes += chunk.data();
    return std::make_pair(bytes, reader->Finish());
  };
  const auto [bytes, status] = fetch(source);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // Step 10's checkpoint and the final one hold the same step: either is that model.
  EXPECT_EQ(decode_checkpoint(bytes, "x").progress().step(), 10);
  // Only the job it starts from: another job's checkpoints stay out of reach.
  const std::string unrelated = submit(small_spec("unrelated")).job_id();
  EXPECT_EQ(fetch(unrelated).second.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace prelude::server
