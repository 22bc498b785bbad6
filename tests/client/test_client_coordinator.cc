// `prelude metrics` against a real coordinator in process (job manager, store, gRPC
// services on loopback TCP): a 200,000-event history, far over the 4 MiB a gRPC
// client accepts in one message by default, arrives whole in pages.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli.h"
#include "prelude/v1/service.grpc.pb.h"
#include "server/artifact_store.h"
#include "server/job_manager.h"
#include "server/services.h"
#include "server/store.h"
#include "server_test_util.h"

namespace prelude::client {
namespace {

namespace v1 = prelude::v1;
using namespace prelude::server;
using namespace prelude::server::testing;

constexpr int kEvents = 200000, kBatch = 2000;

class RealCoordinator : public ::testing::Test {
 protected:
  void SetUp() override {
    ManagerOptions o;
    o.reaper_thread = false;
    jm_ = std::make_unique<JobManager>(store_, o);
    artifacts_ = std::make_unique<ArtifactStore>(dir_.file("artifacts"));
    jobs_ = std::make_unique<JobServiceImpl>(*jm_, *artifacts_, nullptr);
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
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Runs `prelude --coordinator ADDRESS ARGS...`; returns the exit code.
  int run(const std::vector<std::string>& args, std::string* out, std::string* err) {
    std::vector<std::string> all = {"prelude", "--coordinator", address()};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::istringstream in;
    std::ostringstream o, e;
    Console console{in, o, e};
    const int code = run_cli(static_cast<int>(all.size()), argv.data(), console);
    *out = o.str();
    *err = e.str();
    return code;
  }

  TempDir dir_;
  Store store_{":memory:"};
  std::unique_ptr<JobManager> jm_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::unique_ptr<JobServiceImpl> jobs_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(RealCoordinator, A200kEventHistoryArrivesWholeInPagesUnder4MiB) {
  const std::string pool = jm_->register_pool(pool_request(2)).pool_id();
  const std::string id = jm_->submit(small_spec()).job_id();
  ASSERT_TRUE(jm_->acquire(pool, std::chrono::milliseconds(0)).has_value());
  for (int done = 0; done < kEvents;) {
    std::vector<v1::TrainingEvent> batch;
    for (int i = 0; i < kBatch; ++i) {
      ++done;  // not in the call: the order its arguments are evaluated in is unspecified
      v1::TrainingEvent t = step_event(done, 1.0 / done);
      t.set_epoch(done / 1000);
      t.set_accuracy(0.5);
      t.set_learning_rate(0.01);
      t.set_images_per_second(1234.5);
      batch.push_back(t);
    }
    jm_->report(held(*jm_, pool), id, batch);
  }
  jm_->finish(held(*jm_, pool), id, v1::SUCCEEDED, "");

  // The history is over the limit in one message...
  v1::GetMetricsResponse whole;
  for (auto& e : jm_->metrics(id)) *whole.add_events() = std::move(e);
  ASSERT_EQ(whole.events_size(), kEvents);
  ASSERT_GT(whole.ByteSizeLong(), 4u << 20);

  // ... and a client with gRPC's default limits follows the pages to the end.
  auto stub = v1::JobService::NewStub(grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
  v1::GetMetricsRequest request;
  request.set_job_id(id);
  int pages = 0, events = 0;
  int64_t last_seq = 0;
  do {
    grpc::ClientContext ctx;
    v1::GetMetricsResponse page;
    const grpc::Status s = stub->GetMetrics(&ctx, request, &page);
    ASSERT_TRUE(s.ok()) << "page " << pages << ": " << s.error_code() << " " << s.error_message();
    EXPECT_LT(page.ByteSizeLong(), 2u << 20);
    EXPECT_EQ(page.attempt(), 1);
    for (const auto& e : page.events()) {
      ASSERT_GT(e.seq(), last_seq);
      last_seq = e.seq();
    }
    events += page.events_size();
    ++pages;
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty() && pages < 1000);
  EXPECT_EQ(events, kEvents);
  EXPECT_GT(pages, 1);

  // `prelude metrics` prints every step.
  std::string out, err;
  ASSERT_EQ(run({"metrics", id}, &out, &err), 0) << err;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), kEvents + 1);
  EXPECT_NE(out.find("\nstep,0,1,"), std::string::npos) << out.substr(0, 300);
  EXPECT_NE(out.find("\nstep,200,200000,"), std::string::npos) << out.substr(out.size() - 300);
}

}  // namespace
}  // namespace prelude::client
