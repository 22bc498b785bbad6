// The coordinator's gRPC services: thin adapters from requests to the JobManager.
// Every handler runs through handle() (handle.h): the caller learned from its token
// and its role checked first, one mapping of errors to status codes. The core gets
// the caller and decides what it may see (its own jobs for a user).
#pragma once

#include "prelude/v1/service.grpc.pb.h"
#include "prelude/v1/worker.grpc.pb.h"
#include "server/job_manager.h"

namespace prelude::server {

class ArtifactStore;
class AuditLog;
class Authenticator;
class RpcMetrics;

class JobServiceImpl final : public prelude::v1::JobService::Service {
 public:
  // `audit` may be null: ListAudit then answers FAILED_PRECONDITION.
  JobServiceImpl(JobManager& jobs, ArtifactStore& artifacts, const Authenticator* auth, AuditLog* audit = nullptr,
                 RpcMetrics* metrics = nullptr)
      : jobs_(jobs), artifacts_(artifacts), auth_(auth), audit_(audit), metrics_(metrics) {}

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
  grpc::Status StreamLogs(grpc::ServerContext* ctx, const prelude::v1::StreamLogsRequest* req,
                          grpc::ServerWriter<prelude::v1::StreamLogsResponse>* writer) override;
  grpc::Status DeleteJob(grpc::ServerContext* ctx, const prelude::v1::DeleteJobRequest* req,
                         prelude::v1::DeleteJobResponse* resp) override;
  grpc::Status ListAudit(grpc::ServerContext* ctx, const prelude::v1::ListAuditRequest* req,
                         prelude::v1::ListAuditResponse* resp) override;

 private:
  JobManager& jobs_;
  ArtifactStore& artifacts_;
  const Authenticator* auth_;
  AuditLog* audit_;
  RpcMetrics* metrics_;  // may be null: calls are not counted
};

class WorkerServiceImpl final : public prelude::v1::WorkerService::Service {
 public:
  WorkerServiceImpl(JobManager& jobs, ArtifactStore& artifacts, const Authenticator* auth, AuditLog* audit = nullptr,
                    RpcMetrics* metrics = nullptr)
      : jobs_(jobs), artifacts_(artifacts), auth_(auth), audit_(audit), metrics_(metrics) {}

  grpc::Status RegisterPool(grpc::ServerContext* ctx, const prelude::v1::RegisterPoolRequest* req,
                            prelude::v1::RegisterPoolResponse* resp) override;
  grpc::Status AcquireJob(grpc::ServerContext* ctx, const prelude::v1::AcquireJobRequest* req,
                          prelude::v1::AcquireJobResponse* resp) override;
  grpc::Status ReportProgress(grpc::ServerContext* ctx, const prelude::v1::ReportProgressRequest* req,
                              prelude::v1::ReportProgressResponse* resp) override;
  grpc::Status FinishJob(grpc::ServerContext* ctx, const prelude::v1::FinishJobRequest* req,
                         prelude::v1::FinishJobResponse* resp) override;
  grpc::Status UploadCheckpoint(grpc::ServerContext* ctx,
                                grpc::ServerReader<prelude::v1::UploadCheckpointRequest>* reader,
                                prelude::v1::UploadCheckpointResponse* resp) override;
  grpc::Status FetchCheckpoint(grpc::ServerContext* ctx, const prelude::v1::FetchCheckpointRequest* req,
                               grpc::ServerWriter<prelude::v1::CheckpointChunk>* writer) override;

 private:
  JobManager& jobs_;
  ArtifactStore& artifacts_;
  const Authenticator* auth_;
  AuditLog* audit_;
  RpcMetrics* metrics_;  // may be null: calls are not counted
};

}  // namespace prelude::server
