// The dashboard's JSON API, over HTTP: an HttpServer on a port of its own with a real
// JobManager (jobs submitted, taken, reported and ended by a pool as the gRPC side does)
// and tokens, asked with httplib::Client. The numbers it answers are compared with the
// manager's own; ownership and roles as the gRPC API has them; 1000 jobs paged.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <httplib.h>

#include <cmath>
#include <set>

#include "artifacts/checkpoint_file.h"
#include "client/compare.h"
#include "server/artifact_store.h"
#include "server/auth.h"
#include "server/dashboard.h"
#include "server/http_server.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace std::chrono_literals;
using namespace testing;
namespace pb = google::protobuf;

// `json` as message M; the test fails on JSON that is not M's (unknown fields included).
template <typename M>
M parse(const std::string& json) {
  M m;
  const auto status = pb::util::JsonStringToMessage(json, &m);
  EXPECT_TRUE(status.ok()) << status.message() << " in " << json.substr(0, 400);
  return m;
}

// A field of a JSON object, printed back as JSON (for parsing it as a message).
std::string member(const pb::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  if (it == s.fields().end()) {
    ADD_FAILURE() << "no field " << name;
    return "null";
  }
  std::string out;
  EXPECT_TRUE(pb::util::MessageToJsonString(it->second, &out).ok());
  return out;
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ManagerOptions o;
    o.reaper_thread = false;
    o.now = clock_.fn();
    jm_ = std::make_unique<JobManager>(store_, o);
    artifacts_ = std::make_unique<ArtifactStore>(dir_.file("models"));
    dashboard_ = std::make_unique<Dashboard>(*jm_, artifacts_.get());
    auth_.add_token("alice-token", Caller{"alice", Role::kUser});
    auth_.add_token("bob-token", Caller{"bob", Role::kUser});
    auth_.add_token("root-token", Caller{"root", Role::kAdmin});
    auth_.add_token("pool-token", Caller{"pool-a", Role::kPool});
    HttpOptions ho;
    ho.address = "127.0.0.1:0";
    ho.auth = &auth_;
    ho.dashboard = dashboard_.get();
    http_ = std::make_unique<HttpServer>(ho, [] { return std::string("x 1\n"); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", http_->port());
  }

  // GET `path` with `token` (none when empty); status and body.
  std::pair<int, std::string> get(const std::string& path, const std::string& token) {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    auto res = client_->Get(path, headers);
    if (!res) {
      ADD_FAILURE() << "no answer to GET " << path;
      return {0, ""};
    }
    return {res->status, res->body};
  }
  // The body of a GET that must succeed.
  std::string ok(const std::string& path, const std::string& token) {
    auto [status, body] = get(path, token);
    EXPECT_EQ(status, 200) << path << ": " << body;
    return body;
  }
  // The error of a GET that must fail with `status`: {"code", "message"}.
  std::pair<std::string, std::string> refused(const std::string& path, const std::string& token, int status) {
    auto [got, body] = get(path, token);
    EXPECT_EQ(got, status) << path << ": " << body;
    const pb::Struct s = parse<pb::Struct>(body);
    const pb::Struct e = s.fields().at("error").struct_value();
    return {e.fields().at("code").string_value(), e.fields().at("message").string_value()};
  }

  std::string submit(const std::string& name, const std::string& owner) {
    return jm_->submit(small_spec(name), Caller{owner, Role::kUser}).job_id();
  }
  std::string take(const std::string& pool) {
    auto job = jm_->acquire(pool, 0ms);
    EXPECT_TRUE(job.has_value());
    return job ? job->job_id() : "";
  }

  TempDir dir_;
  FakeClock clock_;
  Store store_{":memory:"};
  std::unique_ptr<JobManager> jm_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::unique_ptr<Dashboard> dashboard_;
  Authenticator auth_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(DashboardTest, JobsListHasTheManagersNumbersAndOnlyTheCallersJobs) {
  const std::string pool = jm_->register_pool(pool_request(1)).pool_id();
  const std::string a1 = submit("a1", "alice"), a2 = submit("a2", "alice"), b1 = submit("b1", "bob");
  const std::string a3 = submit("a3", "alice");
  ASSERT_EQ(take(pool), a1);
  v1::TrainingEvent step = step_event(7, 0.61);
  step.set_images_per_second(1234.5);
  step.set_total_steps(10);
  jm_->report(held(*jm_, pool), a1, {step, epoch_event(1, 0.8125)});

  const auto page = parse<v1::ListJobsResponse>(ok("/api/jobs", "alice-token"));
  ASSERT_EQ(page.jobs_size(), 3);  // bob's job is not listed
  const std::vector<std::string> newest_first{a3, a2, a1};
  for (int i = 0; i < 3; ++i) {
    const v1::Job& shown = page.jobs(i);
    const v1::Job want = jm_->get(newest_first[i], Caller{"alice", Role::kUser});
    EXPECT_EQ(shown.job_id(), want.job_id());
    EXPECT_EQ(shown.state(), want.state());
    EXPECT_EQ(shown.owner(), "alice");
    EXPECT_EQ(shown.queue_position(), want.queue_position()) << shown.job_id();
    EXPECT_EQ(shown.waiting_reason(), want.waiting_reason()) << shown.job_id();
    EXPECT_EQ(shown.progress().step(), want.progress().step());
    EXPECT_EQ(shown.progress().images_per_second(), want.progress().images_per_second());
    EXPECT_EQ(shown.latest_metrics().test_accuracy(), want.latest_metrics().test_accuracy());
  }
  // The running job's numbers are the ones reported; the queued ones say where they wait.
  EXPECT_EQ(page.jobs(2).state(), v1::RUNNING);
  EXPECT_EQ(page.jobs(2).progress().step(), 7);
  EXPECT_EQ(page.jobs(2).progress().images_per_second(), 1234.5);
  EXPECT_EQ(page.jobs(2).latest_metrics().test_accuracy(), 0.8125);
  EXPECT_EQ(page.jobs(1).queue_position(), 1);  // a2, the oldest queued job
  EXPECT_EQ(page.jobs(0).queue_position(), 3);  // a3, behind a2 and bob's b1
  EXPECT_FALSE(page.jobs(0).waiting_reason().empty());
  // Lists leave the per-channel slopes to the job's own page.
  EXPECT_EQ(page.jobs(2).latest_metrics().alphas_size(), 0);
  EXPECT_EQ(jm_->get(a1).latest_metrics().alphas_size(), 1);

  // An admin sees every job; filters by state.
  EXPECT_EQ(parse<v1::ListJobsResponse>(ok("/api/jobs", "root-token")).jobs_size(), 4);
  const auto queued = parse<v1::ListJobsResponse>(ok("/api/jobs?state=queued", "root-token"));
  ASSERT_EQ(queued.jobs_size(), 3);
  for (const auto& j : queued.jobs()) EXPECT_EQ(j.state(), v1::QUEUED);
  EXPECT_EQ(parse<v1::ListJobsResponse>(ok("/api/jobs?state=RUNNING", "bob-token")).jobs_size(), 0);
  const auto bobs = parse<v1::ListJobsResponse>(ok("/api/jobs?state=QUEUED", "bob-token"));
  ASSERT_EQ(bobs.jobs_size(), 1);
  EXPECT_EQ(bobs.jobs(0).job_id(), b1);

  // The job itself, whole.
  const v1::Job job = parse<v1::Job>(ok("/api/jobs/" + a1, "alice-token"));
  EXPECT_EQ(job.SerializeAsString(), jm_->get(a1).SerializeAsString());
}

TEST_F(DashboardTest, AnotherUsersJobIsNotFoundExactlyAsAnUnknownOne) {
  const std::string a1 = submit("a1", "alice");
  const std::string sweep =
      jm_->submit_sweep([] {
            v1::SweepSpec s;
            *s.mutable_base() = small_spec("s");
            s.add_seeds(1);
            return s;
          }(),
                        Caller{"alice", Role::kUser})
          .sweep().sweep_id();
  for (const std::string& suffix : {"", "/events", "/model"}) {
    const auto theirs = refused("/api/jobs/" + a1 + suffix, "bob-token", 404);
    const auto unknown = refused("/api/jobs/job-999999" + suffix, "bob-token", 404);
    EXPECT_EQ(theirs.first, "NOT_FOUND");
    EXPECT_EQ(unknown.first, "NOT_FOUND");
    // The same message but for the id: nothing tells that the job exists.
    std::string masked = theirs.second;
    masked.replace(masked.find(a1), a1.size(), "job-999999");
    EXPECT_EQ(masked, unknown.second) << suffix;
  }
  const auto theirs = refused("/api/sweeps/" + sweep, "bob-token", 404);
  const auto unknown = refused("/api/sweeps/sweep-999999", "bob-token", 404);
  std::string masked = theirs.second;
  masked.replace(masked.find(sweep), sweep.size(), "sweep-999999");
  EXPECT_EQ(masked, unknown.second);
  // Alice and an admin see them.
  EXPECT_EQ(parse<v1::Job>(ok("/api/jobs/" + a1, "alice-token")).owner(), "alice");
  EXPECT_EQ(parse<v1::Job>(ok("/api/jobs/" + a1, "root-token")).job_id(), a1);
  ok("/api/sweeps/" + sweep, "alice-token");
}

TEST_F(DashboardTest, TokensAndRolesAsTheGrpcApiHasThem) {
  EXPECT_EQ(refused("/api/jobs", "", 401).first, "UNAUTHENTICATED");
  EXPECT_EQ(refused("/api/jobs", "no-such-token", 401).first, "UNAUTHENTICATED");
  const auto pool = refused("/api/jobs", "pool-token", 403);
  EXPECT_EQ(pool.first, "PERMISSION_DENIED");
  EXPECT_NE(pool.second.find("pool-a"), std::string::npos) << pool.second;
  // The token is never echoed.
  EXPECT_EQ(get("/api/jobs", "no-such-token").second.find("no-such-token"), std::string::npos);
  const pb::Struct me = parse<pb::Struct>(ok("/api/whoami", "alice-token"));
  EXPECT_EQ(me.fields().at("name").string_value(), "alice");
  EXPECT_EQ(me.fields().at("role").string_value(), "user");

  // The pages need no token (they hold no data), and forbid scripts from elsewhere.
  for (const std::string path : {"/", "/index.html", "/job.html", "/sweep.html", "/dashboard.js", "/style.css"}) {
    auto res = client_->Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 200) << path;
    EXPECT_FALSE(res->body.empty()) << path;
    EXPECT_NE(res->get_header_value("Content-Security-Policy").find("default-src 'self'"), std::string::npos);
  }
  auto index = client_->Get("/");
  EXPECT_EQ(index->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(index->body.find("<script src=\"/dashboard.js\""), std::string::npos);
  EXPECT_EQ(client_->Get("/dashboard.js")->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(client_->Get("/no-such-page.html")->status, 404);
  // Every embedded file is the one in the source tree, byte for byte.
  const char* src = std::getenv("PRELUDE_SOURCE_DIR");
  if (!src) GTEST_SKIP() << "skipped, because PRELUDE_SOURCE_DIR is not set (ctest sets it)";
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(src) / "server" / "dashboard")) {
    const std::string name = "/" + entry.path().filename().string();
    const DashboardAsset* asset = Dashboard::asset(name);
    ASSERT_NE(asset, nullptr) << name << " is in server/dashboard/ but not embedded (server/CMakeLists.txt)";
    EXPECT_EQ(std::string(asset->data, asset->size), read_whole_file(entry.path().string(), 1 << 20)) << name;
    ++files;
  }
  EXPECT_EQ(files, Dashboard::assets().size());
}

TEST_F(DashboardTest, EventsAfterASeqAreTheManagersAndEndWithTheJob) {
  const std::string pool = jm_->register_pool(pool_request(1)).pool_id();
  const std::string id = submit("watched", "alice");
  ASSERT_EQ(take(pool), id);
  jm_->report(held(*jm_, pool), id, {step_event(1, 2.3), step_event(2, 2.1)});

  auto events_after = [&](int64_t after) {
    return parse<pb::Struct>(ok("/api/jobs/" + id + "/events?after=" + std::to_string(after), "alice-token"));
  };
  const std::vector<v1::JobEvent> all = jm_->metrics(id);  // the training events
  pb::Struct first = events_after(0);
  const auto& list = first.fields().at("events").list_value();
  // QUEUED, RUNNING and the two steps, as the manager stored them.
  ASSERT_EQ(list.values_size(), 4);
  std::vector<v1::JobEvent> got;
  for (const auto& v : list.values()) {
    std::string json;
    ASSERT_TRUE(pb::util::MessageToJsonString(v, &json).ok());
    got.push_back(parse<v1::JobEvent>(json));
  }
  EXPECT_EQ(got[0].state_change().state(), v1::QUEUED);
  EXPECT_EQ(got[1].state_change().state(), v1::RUNNING);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(got[2].SerializeAsString(), all[0].SerializeAsString());
  EXPECT_EQ(got[3].SerializeAsString(), all[1].SerializeAsString());
  const int64_t last = got[3].seq();
  EXPECT_EQ(first.fields().at("last").number_value(), last);
  EXPECT_FALSE(first.fields().at("ended").bool_value());
  EXPECT_EQ(parse<v1::Job>(member(first, "job")).state(), v1::RUNNING);

  // Nothing new: an empty batch at once (no waiting), not ended.
  const auto t0 = SteadyClock::now();
  pb::Struct none = events_after(last);
  EXPECT_LT(ms_since(t0), 2000);
  EXPECT_EQ(none.fields().at("events").list_value().values_size(), 0);
  EXPECT_EQ(none.fields().at("last").number_value(), last);
  EXPECT_FALSE(none.fields().at("ended").bool_value());

  jm_->report(held(*jm_, pool), id, {step_event(3, 1.9)});
  jm_->finish(held(*jm_, pool), id, v1::SUCCEEDED, "");
  pb::Struct rest = events_after(last);
  ASSERT_EQ(rest.fields().at("events").list_value().values_size(), 2);  // the step, SUCCEEDED
  const int64_t end = static_cast<int64_t>(rest.fields().at("last").number_value());
  pb::Struct over = events_after(end);
  EXPECT_TRUE(over.fields().at("ended").bool_value());
  EXPECT_EQ(parse<v1::Job>(member(over, "job")).state(), v1::SUCCEEDED);

  const auto bad = refused("/api/jobs/" + id + "/events?after=-1", "alice-token", 400);
  EXPECT_EQ(bad.first, "INVALID_ARGUMENT");
  EXPECT_EQ(bad.second.rfind("after: ", 0), 0u) << bad.second;
  EXPECT_EQ(refused("/api/jobs/" + id + "/events?after=x", "alice-token", 400).second.rfind("after: ", 0), 0u);
}

TEST_F(DashboardTest, LogsAreTheManagersLinesOfTheAttemptAndOnlyTheOwners) {
  const std::string pool = jm_->register_pool(pool_request(1)).pool_id();
  const std::string id = submit("logged", "alice");
  ASSERT_EQ(take(pool), id);
  std::vector<v1::LogLine> lines(2);
  lines[0].set_text("job started");
  lines[0].set_time_unix_ms(1'700'000'000'123);
  lines[1].set_text("epoch 1 <b>not markup</b>");
  lines[1].set_rank(1);
  jm_->report(held(*jm_, pool), id, {}, lines);

  const auto logs_after = [&](int64_t after) {
    return parse<pb::Struct>(ok("/api/jobs/" + id + "/logs?after=" + std::to_string(after), "alice-token"));
  };
  const LogPage expected = jm_->logs(id, 0, 0);
  pb::Struct first = logs_after(0);
  EXPECT_EQ(first.fields().at("attempt").number_value(), 1);
  EXPECT_EQ(first.fields().at("latestAttempt").number_value(), 1);
  EXPECT_EQ(first.fields().at("dropped").number_value(), 0);
  EXPECT_FALSE(first.fields().at("ended").bool_value());
  const auto& got = first.fields().at("lines").list_value();
  ASSERT_EQ(got.values_size(), 2);
  for (int i = 0; i < 2; ++i) {
    std::string json;
    ASSERT_TRUE(pb::util::MessageToJsonString(got.values(i), &json).ok());
    EXPECT_EQ(parse<v1::LogLine>(json).SerializeAsString(), expected.lines[i].SerializeAsString());
  }
  const int64_t last = static_cast<int64_t>(first.fields().at("last").number_value());
  EXPECT_EQ(last, expected.lines[1].seq());
  EXPECT_EQ(logs_after(last).fields().at("lines").list_value().values_size(), 0);

  jm_->finish(held(*jm_, pool), id, v1::SUCCEEDED, "");
  EXPECT_TRUE(logs_after(last).fields().at("ended").bool_value());
  EXPECT_EQ(refused("/api/jobs/" + id + "/logs", "bob-token", 404).first, "NOT_FOUND");
  EXPECT_EQ(refused("/api/jobs/" + id + "/logs?attempt=2", "alice-token", 404).first, "NOT_FOUND");
  EXPECT_EQ(refused("/api/jobs/" + id + "/logs?after=-1", "alice-token", 400).second.rfind("after: ", 0), 0u);
}

TEST_F(DashboardTest, ThousandJobsPageByPageNewestFirst) {
  const Caller admin{"root", Role::kAdmin};
  std::vector<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.push_back(jm_->submit(small_spec("j" + std::to_string(i)), admin).job_id());
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  size_t largest = 0;
  const auto t0 = SteadyClock::now();
  do {
    const std::string body =
        ok("/api/jobs?page_size=100" + (token.empty() ? "" : "&page_token=" + token), "root-token");
    largest = std::max(largest, body.size());
    const auto page = parse<v1::ListJobsResponse>(body);
    EXPECT_LE(page.jobs_size(), 100);
    for (const auto& j : page.jobs()) seen.push_back(j.job_id());
    token = page.next_page_token();
    ASSERT_LT(++pages, 20);
  } while (!token.empty());
  const int64_t took = ms_since(t0);
  EXPECT_EQ(pages, 10);
  ASSERT_EQ(seen.size(), 1000u);
  EXPECT_EQ(seen, std::vector<std::string>(ids.rbegin(), ids.rend()));  // each once, newest first
  // The default page is 50 jobs, and a page of jobs stays small.
  EXPECT_EQ(parse<v1::ListJobsResponse>(ok("/api/jobs", "root-token")).jobs_size(), 50);
  EXPECT_LT(largest, 200u * 1024) << "a page of 100 jobs";
  std::printf("1000 jobs in %d pages of 100: %lld ms in all, the largest page %zu bytes\n", pages,
              static_cast<long long>(took), largest);
  EXPECT_LT(took, 10000);

  // The queue positions shown are the manager's: the oldest job is first in the queue.
  const auto last_page = parse<v1::ListJobsResponse>(ok("/api/jobs?page_size=1&page_token=2", "root-token"));
  ASSERT_EQ(last_page.jobs_size(), 1);
  EXPECT_EQ(last_page.jobs(0).job_id(), ids[0]);
  EXPECT_EQ(last_page.jobs(0).queue_position(), 1);
  EXPECT_EQ(last_page.jobs(0).queue_position(), jm_->get(ids[0]).queue_position());

  const auto too_big = refused("/api/jobs?page_size=100000", "root-token", 400);
  EXPECT_EQ(too_big.second.rfind("page_size: ", 0), 0u) << too_big.second;
  EXPECT_EQ(refused("/api/jobs?page_token=zz", "root-token", 400).second.rfind("page_token: ", 0), 0u);
  EXPECT_EQ(refused("/api/jobs?state=SLEEPING", "root-token", 400).second.rfind("state: ", 0), 0u);
}

TEST_F(DashboardTest, SweepRowsAreThoseOfPreludeCompare) {
  // Two grid points (rectifiers) of two seeds each; one job of the second point fails.
  v1::SweepSpec spec;
  spec.set_name("rect");
  *spec.mutable_base() = small_spec("rect");
  auto* axis = spec.add_grid();
  axis->set_field("model.activation.kind");
  axis->add_values()->set_string_value("RELU");
  axis->add_values()->set_string_value("PRELU_CHANNELWISE");
  spec.add_seeds(1);
  spec.add_seeds(2);
  const Caller alice{"alice", Role::kUser};
  const v1::SweepStatus st = jm_->submit_sweep(spec, alice);
  ASSERT_EQ(st.jobs_size(), 4);
  const std::string pool = jm_->register_pool(pool_request(1)).pool_id();
  const double acc[] = {0.80, 0.84, 0.90, 0};
  for (int i = 0; i < 4; ++i) {
    const std::string id = take(pool);
    ASSERT_EQ(id, st.jobs(i).job_id());
    if (i == 3) {
      jm_->finish(held(*jm_, pool), id, v1::FAILED, "training diverged: the loss is nan at step 3");
      continue;
    }
    v1::TrainingEvent s = summary_event(10, acc[i]);
    s.set_train_images_per_second(100 + i);
    jm_->report(held(*jm_, pool), id, {s});
    jm_->finish(held(*jm_, pool), id, v1::SUCCEEDED, "");
  }
  const std::string id = st.sweep().sweep_id();
  const pb::Struct body = parse<pb::Struct>(ok("/api/sweeps/" + id, "alice-token"));
  EXPECT_EQ(parse<v1::Sweep>(member(body, "sweep")).sweep_id(), id);
  EXPECT_EQ(body.fields().at("jobs").list_value().values_size(), 4);
  const auto& rows = body.fields().at("rows").list_value();
  ASSERT_EQ(rows.values_size(), 2);
  const auto& relu = rows.values(0).struct_value().fields();
  const auto& prelu = rows.values(1).struct_value().fields();
  EXPECT_EQ(relu.at("point").string_value(), "model.activation.kind=RELU");
  EXPECT_EQ(relu.at("succeeded").number_value(), 2);
  EXPECT_NEAR(relu.at("test_accuracy").struct_value().fields().at("mean").number_value(), 0.82, 1e-6);
  EXPECT_NEAR(relu.at("test_accuracy").struct_value().fields().at("sd").number_value(), std::sqrt(0.0008), 1e-6);
  EXPECT_EQ(prelu.at("succeeded").number_value(), 1);
  EXPECT_EQ(prelu.at("failed").number_value(), 1);
  EXPECT_NEAR(prelu.at("test_accuracy").struct_value().fields().at("mean").number_value(), 0.90, 1e-6);
  ASSERT_EQ(prelu.at("failures").list_value().values_size(), 1);
  EXPECT_EQ(prelu.at("failures").list_value().values(0).string_value(),
            st.jobs(3).job_id() + ": training diverged: the loss is nan at step 3");
  // The same rows as `prelude compare --format json` prints them from the same code.
  const std::string cli =
      prelude::client::render_comparison(prelude::client::compare_rows(jm_->get_sweep(id, alice), {}, 0), "json", 0);
  std::string cli_rows;
  for (size_t at = 0, nl; (nl = cli.find('\n', at)) != std::string::npos; at = nl + 1)
    cli_rows += (cli_rows.empty() ? "" : ",") + cli.substr(at, nl - at);
  EXPECT_TRUE(pb::util::MessageDifferencer::Equals(body.fields().at("rows").list_value(),
                                                  parse<pb::ListValue>("[" + cli_rows + "]")))
      << member(body, "rows") << "\n" << cli;
  // The jobs of the sweep, filtered from the list.
  EXPECT_EQ(parse<v1::ListJobsResponse>(ok("/api/jobs?sweep=" + id, "alice-token")).jobs_size(), 4);
  EXPECT_EQ(refused("/api/sweeps/" + id + "?target_loss=-1", "alice-token", 400).second.rfind("target_loss: ", 0),
            0u);
}

// The pages poll: an answer that has not changed is a 304 without a body when the
// browser sends back its tag, and a changed one is the whole answer under a new tag.
TEST_F(DashboardTest, AnUnchangedAnswerIsNotSentAgain) {
  const std::string pool = jm_->register_pool(pool_request(1)).pool_id();
  const std::string id = submit("polled", "alice");
  httplib::Headers alice{{"Authorization", "Bearer alice-token"}};
  auto first = client_->Get("/api/jobs/" + id, alice);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200);
  const std::string tag = first->get_header_value("ETag");
  ASSERT_EQ(tag.size(), 18u) << tag;  // a quoted 64-bit hash
  EXPECT_EQ(first->get_header_value_count("Cache-Control"), 1u);
  EXPECT_EQ(first->get_header_value("Cache-Control"), "private, no-cache");

  httplib::Headers again = alice;
  again.emplace("If-None-Match", tag);
  auto unchanged = client_->Get("/api/jobs/" + id, again);
  ASSERT_TRUE(unchanged);
  EXPECT_EQ(unchanged->status, 304);
  EXPECT_TRUE(unchanged->body.empty());
  EXPECT_EQ(unchanged->get_header_value("ETag"), tag);

  ASSERT_EQ(take(pool), id);  // QUEUED -> RUNNING: another answer
  auto changed = client_->Get("/api/jobs/" + id, again);
  ASSERT_TRUE(changed);
  EXPECT_EQ(changed->status, 200);
  EXPECT_NE(changed->get_header_value("ETag"), tag);
  EXPECT_EQ(parse<v1::Job>(changed->body).state(), v1::RUNNING);

  // Bob's copy of the tag gets him nothing: his answer is the 404 of an unknown job.
  httplib::Headers bob{{"Authorization", "Bearer bob-token"}, {"If-None-Match", changed->get_header_value("ETag")}};
  auto theirs = client_->Get("/api/jobs/" + id, bob);
  ASSERT_TRUE(theirs);
  EXPECT_EQ(theirs->status, 404);
  EXPECT_TRUE(theirs->get_header_value("ETag").empty());
}

TEST_F(DashboardTest, ModelDownloadIsTheKeptFile) {
  const std::string pool = jm_->register_pool(pool_request(1)).pool_id();
  const std::string id = submit("model", "alice");
  ASSERT_EQ(take(pool), id);
  EXPECT_EQ(refused("/api/jobs/" + id + "/model", "alice-token", 404).first, "NOT_FOUND");  // nothing kept yet
  const std::string bytes = encode_checkpoint(tiny_checkpoint(5));
  v1::CheckpointInfo announced;
  announced.set_step(5), announced.set_final(true), announced.set_bytes(static_cast<int64_t>(bytes.size()));
  announced.set_sha256(sha256_hex(bytes));
  jm_->add_checkpoint(held(*jm_, pool), id, artifacts_->put(id, announced, bytes));
  jm_->finish(held(*jm_, pool), id, v1::SUCCEEDED, "");

  httplib::Headers headers{{"Authorization", "Bearer alice-token"}};
  auto res = client_->Get("/api/jobs/" + id + "/model?checkpoint=final", headers);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, bytes);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/octet-stream");
  EXPECT_EQ(res->get_header_value("X-Checkpoint-Sha256"), sha256_hex(bytes));
  EXPECT_EQ(res->get_header_value("Content-Disposition"), "attachment; filename=\"" + id + "-final.ckpt\"");
  EXPECT_EQ(refused("/api/jobs/" + id + "/model?format=zip", "alice-token", 400).second.rfind("format: ", 0), 0u);
  EXPECT_EQ(refused("/api/jobs/" + id + "/model?checkpoint=77", "alice-token", 404).first, "NOT_FOUND");
  EXPECT_EQ(refused("/api/nothing", "alice-token", 404).first, "NOT_FOUND");
}

}  // namespace
}  // namespace prelude::server
