// The coordinator's /metrics: the exposition of a manager with jobs in every state and
// pools idle and busy; RPCs counted and timed by handle(); the HTTP endpoint's tokens.
#include <httplib.h>

#include <cmath>
#include <sstream>

#include "common/errors.h"
#include "server/auth.h"
#include "server/handle.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace std::chrono_literals;
using namespace testing;

// The value of the sample `series` (a name with its labels, exactly as exposed), or NaN
// when the exposition has no such line.
double sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.compare(0, series.size() + 1, series + " ") == 0) return std::stod(line.substr(series.size() + 1));
  return std::nan("");
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ManagerOptions o;
    o.reaper_thread = false;
    o.now = clock_.fn();
    o.on_final = [this](const v1::Job& job) { metrics_.observe_job_end(job); };
    jm_ = std::make_unique<JobManager>(store_, o);
    metrics_.set_stats([this] { return jm_->stats(); });
  }
  std::string submit(const std::string& name) { return jm_->submit(small_spec(name)).job_id(); }
  std::string take(const std::string& pool) {
    auto job = jm_->acquire(pool, 0ms);
    EXPECT_TRUE(job.has_value());
    return job ? job->job_id() : "";
  }

  FakeClock clock_;
  Store store_{":memory:"};
  Metrics metrics_;
  std::unique_ptr<JobManager> jm_;
};

TEST_F(MetricsTest, ExpositionCountsJobsPoolsSpeedAndCheckpoints) {
  // Two pools take the first two jobs: one trains on (its speed reported), one ends its
  // job. A third job is cancelled while queued; two more wait.
  const std::string busy = jm_->register_pool(pool_request(1)).pool_id();
  const std::string idle = jm_->register_pool(pool_request(1)).pool_id();
  const std::string running = submit("running"), done = submit("done");
  ASSERT_EQ(take(busy), running);
  ASSERT_EQ(take(idle), done);
  v1::TrainingEvent step = step_event(5, 1.5);
  step.set_images_per_second(123.5);
  jm_->report(held(*jm_, busy), running, {step});
  v1::CheckpointInfo info;
  info.set_step(5);
  info.set_bytes(1000);
  jm_->add_checkpoint(held(*jm_, busy), running, info);
  info.set_final(true);
  info.set_step(10);
  info.set_bytes(234);
  jm_->add_checkpoint(held(*jm_, idle), done, info);
  jm_->finish(held(*jm_, idle), done, v1::SUCCEEDED, "");
  jm_->cancel(submit("cancelled"));
  submit("queued-1");
  submit("queued-2");

  const std::string text = metrics_.exposition();
  EXPECT_EQ(sample(text, "prelude_jobs{state=\"QUEUED\"}"), 2) << text;
  EXPECT_EQ(sample(text, "prelude_jobs{state=\"RUNNING\"}"), 1);
  EXPECT_EQ(sample(text, "prelude_jobs{state=\"SUCCEEDED\"}"), 1);
  EXPECT_EQ(sample(text, "prelude_jobs{state=\"FAILED\"}"), 0);
  EXPECT_EQ(sample(text, "prelude_jobs{state=\"CANCELLED\"}"), 1);
  EXPECT_EQ(sample(text, "prelude_queue_depth"), 2);
  EXPECT_EQ(sample(text, "prelude_pools{state=\"busy\"}"), 1);
  EXPECT_EQ(sample(text, "prelude_pools{state=\"idle\"}"), 1);
  EXPECT_EQ(sample(text, "prelude_training_images_per_second{job_id=\"" + running + "\"}"), 123.5);
  EXPECT_TRUE(std::isnan(sample(text, "prelude_training_images_per_second{job_id=\"" + done + "\"}")));
  EXPECT_EQ(sample(text, "prelude_checkpoint_bytes"), 1234);
  // One job ended after running; the one cancelled while queued never ran.
  EXPECT_EQ(sample(text, "prelude_job_duration_seconds_count{state=\"SUCCEEDED\"}"), 1);
  EXPECT_EQ(sample(text, "prelude_job_duration_seconds_bucket{state=\"SUCCEEDED\",le=\"+Inf\"}"), 1);
  EXPECT_EQ(sample(text, "prelude_job_duration_seconds_count{state=\"CANCELLED\"}"), 0);
  EXPECT_NE(text.find("# TYPE prelude_job_duration_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("# TYPE prelude_jobs gauge"), std::string::npos);

  // The running job ends: its speed series goes, its duration is observed.
  jm_->finish(held(*jm_, busy), running, v1::FAILED, "diverged");
  const std::string after = metrics_.exposition();
  EXPECT_TRUE(std::isnan(sample(after, "prelude_training_images_per_second{job_id=\"" + running + "\"}"))) << after;
  EXPECT_EQ(sample(after, "prelude_job_duration_seconds_count{state=\"FAILED\"}"), 1);
  EXPECT_EQ(sample(after, "prelude_pools{state=\"idle\"}"), 2);
  EXPECT_EQ(sample(after, "prelude_jobs{state=\"RUNNING\"}"), 0);
}

TEST_F(MetricsTest, JobDurationIsFromStartToEnd) {
  v1::Job job;
  job.set_state(v1::SUCCEEDED);
  job.mutable_start_time()->set_seconds(1000);
  job.mutable_end_time()->set_seconds(1042);
  metrics_.observe_job_end(job);
  const std::string text = metrics_.exposition();
  EXPECT_EQ(sample(text, "prelude_job_duration_seconds_sum{state=\"SUCCEEDED\"}"), 42) << text;
  EXPECT_EQ(sample(text, "prelude_job_duration_seconds_bucket{state=\"SUCCEEDED\",le=\"30\"}"), 0);
  EXPECT_EQ(sample(text, "prelude_job_duration_seconds_bucket{state=\"SUCCEEDED\",le=\"60\"}"), 1);
}

TEST_F(MetricsTest, HandleCountsEveryCallByMethodAndCode) {
  grpc::ServerContext ctx;
  AuditContext ok{nullptr, &metrics_, "GetJob"};
  EXPECT_TRUE(handle(&ctx, nullptr, Allowed::kClients, &ok, [](const Caller&) {}).ok());
  EXPECT_TRUE(handle(&ctx, nullptr, Allowed::kClients, &ok, [](const Caller&) {}).ok());
  AuditContext bad{nullptr, &metrics_, "SubmitJob"};
  EXPECT_EQ(handle(&ctx, nullptr, Allowed::kClients, &bad, [](const Caller&) { throw UserError("spec: bad"); })
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A refused token is counted too: the call never reaches its body.
  Authenticator auth;
  auth.add_token("secret", Caller{"alice", Role::kUser});
  EXPECT_EQ(handle(&ctx, &auth, Allowed::kClients, &bad, [](const Caller&) { ADD_FAILURE(); }).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  const std::string text = metrics_.exposition();
  EXPECT_EQ(sample(text, "prelude_rpc_requests_total{code=\"OK\",method=\"GetJob\"}"), 2) << text;
  EXPECT_EQ(sample(text, "prelude_rpc_requests_total{code=\"INVALID_ARGUMENT\",method=\"SubmitJob\"}"), 1);
  EXPECT_EQ(sample(text, "prelude_rpc_requests_total{code=\"UNAUTHENTICATED\",method=\"SubmitJob\"}"), 1);
  EXPECT_EQ(sample(text, "prelude_rpc_duration_seconds_count{method=\"GetJob\"}"), 2);
  EXPECT_EQ(sample(text, "prelude_rpc_duration_seconds_count{method=\"SubmitJob\"}"), 2);
}

// ---------------------------------------------------------------- HTTP

TEST(HttpServerTest, ServesMetricsToAdminAndPoolTokensOnly) {
  Authenticator auth;
  auth.add_token("admin-token", Caller{"root", Role::kAdmin});
  auth.add_token("pool-token", Caller{"pool-a", Role::kPool});
  auth.add_token("user-token", Caller{"alice", Role::kUser});
  HttpOptions o;
  o.address = "127.0.0.1:0";
  o.auth = &auth;
  HttpServer http(o, [] { return std::string("prelude_queue_depth 7\n"); });
  ASSERT_GT(http.port(), 0);
  httplib::Client client("127.0.0.1", http.port());
  const auto get = [&](const std::string& token) {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return client.Get("/metrics", headers);
  };
  auto none = get("");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(get("wrong")->status, 401);
  auto user = get("user-token");
  EXPECT_EQ(user->status, 403);
  EXPECT_NE(user->body.find("alice"), std::string::npos) << user->body;
  for (const char* token : {"admin-token", "pool-token"}) {
    auto r = get(token);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << token;
    EXPECT_EQ(r->body, "prelude_queue_depth 7\n");
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  }
  EXPECT_EQ(client.Get("/nothing-here", {{"Authorization", "Bearer admin-token"}})->status, 404);
}

TEST(HttpServerTest, WithoutTokensAnyoneMayScrape) {
  Authenticator no_tokens;
  HttpOptions o;
  o.address = "127.0.0.1:0";
  o.auth = &no_tokens;
  HttpServer http(o, [] { return std::string("x 1\n"); });
  httplib::Client client("127.0.0.1", http.port());
  auto r = client.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "x 1\n");
}

TEST(HttpServerTest, BadOrTakenAddressesNameTheFlag) {
  const auto message = [](const std::string& address) {
    HttpOptions o;
    o.address = address;
    try {
      HttpServer http(o, [] { return std::string(); });
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("localhost").find("--http localhost: must be HOST:PORT"), std::string::npos);
  EXPECT_NE(message("127.0.0.1:99999").find("the port must be a number from 0 to 65535"), std::string::npos);
  HttpOptions o;
  o.address = "127.0.0.1:0";
  HttpServer first(o, [] { return std::string(); });
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());
  EXPECT_NE(message(taken).find("--http " + taken + ": cannot listen"), std::string::npos) << message(taken);
}

}  // namespace
}  // namespace prelude::server
