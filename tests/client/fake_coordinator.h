// An in-process JobService for the client's tests: jobs held in memory, scripted
// event histories for WatchJob and GetMetrics, scripted failures, and a record of
// every request (and its authorization metadata) for the tests to check.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "prelude/v1/service.grpc.pb.h"

namespace prelude::client::testing {

class FakeJobService final : public prelude::v1::JobService::Service {
 public:
  // ---- the script (set before the client runs)
  // Non-empty: every call must carry `authorization: Bearer <required_token>`.
  std::string required_token;
  // Jobs by id; ListJobs lists them in `newest_first` order.
  std::map<std::string, prelude::v1::Job> jobs;
  std::vector<std::string> newest_first;
  // Each job's history: WatchJob sends those after after_seq, GetMetrics the
  // training ones.
  std::map<std::string, std::vector<prelude::v1::JobEvent>> events;
  // Returned by SubmitJob instead of queueing the job when not OK.
  grpc::Status submit_status = grpc::Status::OK;
  // ListJobs returns at most this many jobs a page, whatever the client asks.
  int max_page_size = 1000;
  // >= 0: the first WatchJob call sends this many events, then fails UNAVAILABLE.
  int break_first_watch_after = -1;

  // ---- what the client did
  struct Record {
    int calls = 0;
    std::vector<std::string> authorization;  // per call: the metadata value, "" when absent
    std::vector<prelude::v1::JobSpec> submitted;
    std::vector<prelude::v1::ListJobsRequest> list_requests;
    std::vector<prelude::v1::WatchJobRequest> watch_requests;
    std::vector<std::string> cancelled;
  };
  Record record() const;

  // Adds a job (and its place in listings, newest first).
  void add_job(const prelude::v1::Job& job);

  grpc::Status SubmitJob(grpc::ServerContext* ctx, const prelude::v1::SubmitJobRequest* req,
                         prelude::v1::Job* resp) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const prelude::v1::GetJobRequest* req,
                      prelude::v1::Job* resp) override;
  grpc::Status ListJobs(grpc::ServerContext* ctx, const prelude::v1::ListJobsRequest* req,
                        prelude::v1::ListJobsResponse* resp) override;
  grpc::Status CancelJob(grpc::ServerContext* ctx, const prelude::v1::CancelJobRequest* req,
                         prelude::v1::Job* resp) override;
  grpc::Status WatchJob(grpc::ServerContext* ctx, const prelude::v1::WatchJobRequest* req,
                        grpc::ServerWriter<prelude::v1::JobEvent>* writer) override;
  grpc::Status GetMetrics(grpc::ServerContext* ctx, const prelude::v1::GetMetricsRequest* req,
                          prelude::v1::GetMetricsResponse* resp) override;

 private:
  // Counts the call, records its metadata and checks the token.
  grpc::Status begin_call(grpc::ServerContext* ctx);
  grpc::Status find_job(const std::string& id, prelude::v1::Job* job) const;

  mutable std::mutex mu_;
  Record record_;
  int watch_calls_ = 0;
};

// The fake service on 127.0.0.1 at a port the system picks.
class FakeCoordinator {
 public:
  FakeCoordinator();
  ~FakeCoordinator();
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  FakeJobService service;

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// An address on which nothing listens (a port the system handed out, then freed).
std::string unused_address();

}  // namespace prelude::client::testing
