// prelude-bench-watchers: how idle watchers weigh on the pools' reports.
//
//   prelude-bench-watchers [--watchers N,N,...] [--seconds S] [--rounds R]
//
// A coordinator in process (job manager, SQLite store in a temporary file, the gRPC
// services on a loopback TCP port) with one pool running one job. For each count of
// watchers, that many jobs stay queued, each followed by one WatchJob stream that
// receives its history and then waits, idle; meanwhile one client calls
// ReportProgress (one step event a call) as fast as it can for S seconds. Prints
// reports per second; counts are run in interleaved rounds (--rounds, default 3)
// and the median is reported, so a slow moment of the machine does not land on one
// count only.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "prelude/v1/service.grpc.pb.h"
#include "prelude/v1/worker.grpc.pb.h"
#include "server/artifact_store.h"
#include "server/job_manager.h"
#include "server/services.h"
#include "server/store.h"
#include "spec/events.h"

namespace {

namespace v1 = prelude::v1;
namespace fs = std::filesystem;
using namespace prelude::server;

v1::JobSpec spec(const std::string& name) {
  v1::JobSpec s;
  s.set_name(name);
  s.mutable_dataset()->set_name("fashion-mnist");
  s.mutable_training()->set_max_steps(1000000);
  return s;
}

// Reports per second with `watchers` idle WatchJob streams open.
double measure(int watchers, double seconds, const fs::path& dir) {
  const fs::path db = dir / ("bench-" + std::to_string(watchers) + ".db");
  fs::remove(db);
  Store store(db.string());
  ManagerOptions options;
  options.heartbeat_timeout = std::chrono::hours(1);
  JobManager jobs(store, options);
  ArtifactStore artifacts((dir / "artifacts").string());
  JobServiceImpl job_service(jobs, artifacts, nullptr);
  WorkerServiceImpl worker_service(jobs, artifacts, nullptr);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&job_service);
  builder.RegisterService(&worker_service);
  auto server = builder.BuildAndStart();
  if (!server) throw std::runtime_error("cannot start the server");
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto job_stub = v1::JobService::NewStub(channel);
  auto worker_stub = v1::WorkerService::NewStub(channel);

  v1::RegisterPoolRequest reg;
  reg.set_ranks(1);
  reg.set_host("bench");
  const std::string pool = jobs.register_pool(reg).pool_id();
  const std::string running = jobs.submit(spec("running")).job_id();
  if (!jobs.acquire(pool, std::chrono::milliseconds(0))) throw std::runtime_error("no job for the pool");

  // The watchers: each reads its job's history (one event), then waits.
  std::vector<std::string> queued;
  for (int i = 0; i < watchers; ++i) queued.push_back(jobs.submit(spec("idle")).job_id());
  std::atomic<int> ready{0};
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::thread> threads;
  for (const auto& id : queued) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    grpc::ClientContext* ctx = contexts.back().get();
    threads.emplace_back([&, ctx, id] {
      v1::WatchJobRequest req;
      req.set_job_id(id);
      auto reader = job_stub->WatchJob(ctx, req);
      v1::JobEvent e;
      bool counted = false;
      while (reader->Read(&e))
        if (!counted) counted = true, ++ready;
      reader->Finish();
    });
  }
  while (ready.load() < watchers) std::this_thread::sleep_for(std::chrono::milliseconds(10));

  v1::ReportProgressRequest req;
  req.set_pool_id(pool);
  req.set_job_id(running);
  v1::TrainingEvent* step = req.add_events();
  prelude::set_event_kind(step, v1::TrainingEvent::STEP);
  step->set_loss(0.5);
  int calls = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const auto end = t0 + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    step->set_step(++calls);
    grpc::ClientContext ctx;
    v1::ReportProgressResponse resp;
    const grpc::Status s = worker_stub->ReportProgress(&ctx, req, &resp);
    if (!s.ok()) throw std::runtime_error("ReportProgress: " + s.error_message());
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  for (auto& c : contexts) c->TryCancel();
  for (auto& t : threads) t.join();
  jobs.shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return calls / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> counts = {0, 300};
  double seconds = 3;
  int rounds = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--watchers" && has_value) {
      counts.clear();
      std::stringstream list(argv[++i]);
      for (std::string n; std::getline(list, n, ',');) counts.push_back(std::atoi(n.c_str()));
    } else if (a == "--seconds" && has_value) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--rounds" && has_value) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: prelude-bench-watchers [--watchers N,N,...] [--seconds S] [--rounds R]\n");
      return 2;
    }
  }
  const fs::path dir = fs::temp_directory_path() / ("prelude-bench-watchers-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::map<int, std::vector<double>> rates;
  try {
    for (int r = 0; r < rounds; ++r)
      for (int n : counts) {
        const double rate = measure(n, seconds, dir);
        rates[n].push_back(rate);
        std::fprintf(stderr, "round %d: %d watchers: %.0f reports/s\n", r + 1, n, rate);
      }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prelude-bench-watchers: %s\n", e.what());
    fs::remove_all(dir);
    return 1;
  }
  fs::remove_all(dir);
  std::printf("%-10s %s\n", "watchers", "ReportProgress/s (median)");
  for (int n : counts) {
    auto v = rates[n];
    std::sort(v.begin(), v.end());
    std::printf("%-10d %.0f\n", n, v[v.size() / 2]);
  }
  return 0;
}
