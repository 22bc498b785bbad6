// An in-process JobService for the client's tests: jobs and sweeps held in memory,
// scripted event histories for WatchJob and GetMetrics, scripted sweep changes for
// WatchSweep, scripted failures, and a record of every request (and its
// authorization metadata) for the tests to check.
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
  // training ones of the attempt asked for (JobEvent.attempt; 0, the default, is the
  // job's `attempts`) in pages of at most metrics_page_size.
  std::map<std::string, std::vector<prelude::v1::JobEvent>> events;
  int metrics_page_size = 5000;
  // Returned by SubmitJob instead of queueing the job when not OK.
  grpc::Status submit_status = grpc::Status::OK;
  // ListJobs returns at most this many jobs a page, whatever the client asks.
  int max_page_size = 1000;
  // >= 0: the first WatchJob call sends this many events, then fails UNAVAILABLE.
  int break_first_watch_after = -1;
  // Sweeps by id; their jobs are in `jobs` (by Sweep.job_ids), so every sweep call
  // answers with the jobs as they are then.
  std::map<std::string, prelude::v1::Sweep> sweeps;
  // WatchSweep's script per sweep: the stream sends the sweep's status, then for each
  // entry applies it to `jobs` (each Job merged into the job of its id: set fields
  // replace the job's) and sends the status again. It ends after a status in which
  // every job has ended, or when the script runs out. The script is played once over
  // all calls: a later call starts from the jobs as they are, as a restarted
  // coordinator does.
  std::map<std::string, std::vector<std::vector<prelude::v1::Job>>> sweep_changes;
  // >= 0: the first WatchSweep call sends this many statuses, then fails
  // UNAVAILABLE (the entry after the last status sent is already applied).
  int break_first_sweep_watch_after = -1;
  // DownloadModel serves these bytes per job id, whatever checkpoint and format are
  // asked for (the record says what was asked), in chunks of download_chunk_bytes.
  // The first chunk announces the checkpoint chosen among the job's (Job.checkpoints:
  // "final", "latest", a step; none named: the final one if kept, else the latest),
  // the length and the SHA-256; no such checkpoint is NOT_FOUND listing those kept.
  std::map<std::string, std::string> models;
  size_t download_chunk_bytes = 1000;
  // A download gone wrong: non-empty, announced instead of the bytes' SHA-256;
  // >= 0, announced instead of their length; >= 0, the stream ends with
  // cut_download_status once this many bytes are sent (an OK status: it just stops).
  std::string announced_sha256;
  int64_t announced_bytes = -1;
  int64_t cut_download_after = -1;
  grpc::Status cut_download_status = grpc::Status::OK;
  // ListAudit pages through these as they are (newest first), at most max_page_size
  // a page; its filters are recorded, not applied. Not OK: ListAudit answers this
  // instead (PERMISSION_DENIED for a caller who is not an admin, say).
  std::vector<prelude::v1::AuditEntry> audit;
  grpc::Status audit_status = grpc::Status::OK;

  // ---- what the client did
  struct Record {
    int calls = 0;
    std::vector<std::string> authorization;  // per call: the metadata value, "" when absent
    std::vector<prelude::v1::JobSpec> submitted;
    std::vector<prelude::v1::ListJobsRequest> list_requests;
    std::vector<prelude::v1::WatchJobRequest> watch_requests;
    std::vector<prelude::v1::GetMetricsRequest> metrics_requests;
    std::vector<std::string> cancelled;
    std::vector<prelude::v1::SweepSpec> submitted_sweeps;
    // Sweep ids per call.
    std::vector<std::string> got_sweeps, watched_sweeps, cancelled_sweeps;
    std::vector<prelude::v1::DownloadModelRequest> downloads;
    std::vector<std::string> deleted;  // job ids DeleteJob removed
    std::vector<prelude::v1::ListAuditRequest> audit_requests;
  };
  Record record() const;

  // Adds a job (and its place in listings, newest first).
  void add_job(const prelude::v1::Job& job);
  // Adds a sweep with these jobs, in grid order (their sweep_id set to its id).
  void add_sweep(const prelude::v1::Sweep& sweep, const std::vector<prelude::v1::Job>& sweep_jobs);

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
  grpc::Status SubmitSweep(grpc::ServerContext* ctx, const prelude::v1::SubmitSweepRequest* req,
                           prelude::v1::SweepStatus* resp) override;
  grpc::Status GetSweep(grpc::ServerContext* ctx, const prelude::v1::GetSweepRequest* req,
                        prelude::v1::SweepStatus* resp) override;
  grpc::Status CancelSweep(grpc::ServerContext* ctx, const prelude::v1::CancelSweepRequest* req,
                           prelude::v1::SweepStatus* resp) override;
  grpc::Status WatchSweep(grpc::ServerContext* ctx, const prelude::v1::WatchSweepRequest* req,
                          grpc::ServerWriter<prelude::v1::SweepStatus>* writer) override;
  grpc::Status DownloadModel(grpc::ServerContext* ctx, const prelude::v1::DownloadModelRequest* req,
                             grpc::ServerWriter<prelude::v1::DownloadModelChunk>* writer) override;
  // As the coordinator: NOT_FOUND for an unknown job, FAILED_PRECONDITION for one
  // that has not ended; otherwise the job, its place in listings and its events go.
  grpc::Status DeleteJob(grpc::ServerContext* ctx, const prelude::v1::DeleteJobRequest* req,
                         prelude::v1::DeleteJobResponse* resp) override;
  grpc::Status ListAudit(grpc::ServerContext* ctx, const prelude::v1::ListAuditRequest* req,
                         prelude::v1::ListAuditResponse* resp) override;

 private:
  // Counts the call, records its metadata and checks the token.
  grpc::Status begin_call(grpc::ServerContext* ctx);
  grpc::Status find_job(const std::string& id, prelude::v1::Job* job) const;
  // The sweep and its jobs now; NOT_FOUND as the coordinator says it.
  grpc::Status sweep_status(const std::string& id, prelude::v1::SweepStatus* status) const;

  mutable std::mutex mu_;
  Record record_;
  int watch_calls_ = 0;
  int sweep_watch_calls_ = 0;
  std::map<std::string, size_t> next_sweep_change_;  // per sweep: the script entry to apply next
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
