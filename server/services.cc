#include "server/services.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "common/job_state.h"
#include "common/status.h"
#include "common/text.h"
#include "artifacts/checkpoint_file.h"
#include "artifacts/onnx_export.h"
#include "common/errors.h"
#include "server/artifact_store.h"
#include "server/audit_log.h"
#include "server/handle.h"

namespace prelude::server {

namespace v1 = prelude::v1;

namespace {

constexpr std::chrono::milliseconds kSweepWatchInterval{500};
// Models travel in chunks well under gRPC's default 4 MiB message limit.
constexpr size_t kChunkBytes = 1 << 20;

// An id must name something before we look: an empty one is a request error.
const std::string& id_of(const char* field, const std::string& id) {
  if (id.empty()) throw invalid_argument(std::string(field) + ": must be given");
  return id;
}

const std::string& job_id_of(const std::string& id) { return id_of("job_id", id); }

}  // namespace

// ---------------------------------------------------------------- JobService

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext* ctx, const v1::SubmitJobRequest* req, v1::Job* resp) {
  AuditContext audit{audit_, metrics_, "SubmitJob", "submit", {}};
  return handle(ctx, auth_, Allowed::kClients, &audit, [&](const Caller& who) {
    *resp = jobs_.submit(req->spec(), who);
    audit.target = resp->job_id();
  });
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req, v1::Job* resp) {
  AuditContext audit{audit_, metrics_, "GetJob"};
  return handle(ctx, auth_, Allowed::kClients, &audit,
                [&](const Caller& who) { *resp = jobs_.get(job_id_of(req->job_id()), who); });
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                                      v1::ListJobsResponse* resp) {
  AuditContext audit{audit_, metrics_, "ListJobs"};
  return handle(ctx, auth_, Allowed::kClients, &audit, [&](const Caller& who) {
    JobPage page = jobs_.list(req->page_size(), req->page_token(), req->state(), req->sweep_id(), who);
    for (auto& j : page.jobs) *resp->add_jobs() = std::move(j);
    resp->set_next_page_token(page.next_page_token);
  });
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req, v1::Job* resp) {
  AuditContext audit{audit_, metrics_, "CancelJob", "cancel", req->job_id()};
  return handle(ctx, auth_, Allowed::kClients, &audit,
                [&](const Caller& who) { *resp = jobs_.cancel(job_id_of(req->job_id()), who); });
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                                      grpc::ServerWriter<v1::JobEvent>* writer) {
  AuditContext audit{audit_, metrics_, "WatchJob"};
  return handle(ctx, auth_, Allowed::kClients, &audit, [&](const Caller& who) {
    const std::string& id = job_id_of(req->job_id());
    if (req->after_seq() < 0) throw invalid_argument("after_seq: must not be negative");
    int64_t after = req->after_seq();
    // Wake up every second to notice a client that went away.
    for (bool ended = false; !ended && !ctx->IsCancelled();) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      for (const auto& e : jobs_.wait_events(id, after, deadline, &ended, who)) {
        if (!writer->Write(e)) return;  // the client is gone
        after = e.seq();
      }
    }
  });
}

grpc::Status JobServiceImpl::StreamLogs(grpc::ServerContext* ctx, const v1::StreamLogsRequest* req,
                                        grpc::ServerWriter<v1::StreamLogsResponse>* writer) {
  AuditContext audit{audit_, metrics_, "StreamLogs"};
  return handle(ctx, auth_, Allowed::kClients, &audit, [&](const Caller& who) {
    const std::string& id = job_id_of(req->job_id());
    int attempt = req->attempt();
    int64_t after = req->after_seq();
    // Wake up every second to notice a client that went away.
    for (bool first = true; !ctx->IsCancelled();) {
      const auto deadline = req->follow() ? std::chrono::steady_clock::now() + std::chrono::seconds(1)
                                          : std::chrono::steady_clock::time_point();
      LogPage page = jobs_.logs(id, attempt, after, deadline, who);
      if (page.attempt > 0) attempt = page.attempt;  // pinned: the next one only once this one is over
      if (!page.lines.empty() || first) {
        v1::StreamLogsResponse resp;
        resp.set_attempt(page.attempt);
        resp.set_dropped(page.dropped);
        if (!page.lines.empty()) after = page.lines.back().seq();
        for (auto& l : page.lines) *resp.add_lines() = std::move(l);
        if (!writer->Write(resp)) return;  // the client is gone
        first = false;
      }
      // Following the latest attempt of a job that was requeued: on to the next one.
      if (page.ended && req->follow() && req->attempt() == 0 && page.attempt < page.latest_attempt) {
        ++attempt;
        first = true;  // its first response says its attempt, even with no line yet
        continue;
      }
      if (page.ended || (!req->follow() && page.lines.empty())) return;
    }
  });
}

grpc::Status JobServiceImpl::GetMetrics(grpc::ServerContext* ctx, const v1::GetMetricsRequest* req,
                                        v1::GetMetricsResponse* resp) {
  AuditContext audit{audit_, metrics_, "GetMetrics"};
  return handle(ctx, auth_, Allowed::kClients, &audit, [&](const Caller& who) {
    MetricsPage page = jobs_.metrics_page(job_id_of(req->job_id()), req->attempt(), req->all_attempts(),
                                          req->page_size(), req->page_token(), who);
    *resp->mutable_job() = std::move(page.job);
    for (auto& e : page.events) *resp->add_events() = std::move(e);
    resp->set_next_page_token(page.next_page_token);
    resp->set_attempt(page.attempt);
  });
}

grpc::Status JobServiceImpl::SubmitSweep(grpc::ServerContext* ctx, const v1::SubmitSweepRequest* req,
                                         v1::SweepStatus* resp) {
  AuditContext audit{audit_, metrics_, "SubmitSweep", "submit-sweep", {}};
  return handle(ctx, auth_, Allowed::kClients, &audit, [&](const Caller& who) {
    *resp = jobs_.submit_sweep(req->sweep(), who);
    audit.target = resp->sweep().sweep_id();
  });
}

grpc::Status JobServiceImpl::GetSweep(grpc::ServerContext* ctx, const v1::GetSweepRequest* req, v1::SweepStatus* resp) {
  AuditContext audit{audit_, metrics_, "GetSweep"};
  return handle(ctx, auth_, Allowed::kClients, &audit,
                [&](const Caller& who) { *resp = jobs_.get_sweep(id_of("sweep_id", req->sweep_id()), who); });
}

grpc::Status JobServiceImpl::WatchSweep(grpc::ServerContext* ctx, const v1::WatchSweepRequest* req,
                                        grpc::ServerWriter<v1::SweepStatus>* writer) {
  AuditContext audit{audit_, metrics_, "WatchSweep"};
  return handle(ctx, auth_, Allowed::kClients, &audit, [&](const Caller& who) {
    const std::string& id = id_of("sweep_id", req->sweep_id());
    int64_t version = -1;
    // Wake up every second to notice a client that went away.
    while (!ctx->IsCancelled()) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      const std::optional<v1::SweepStatus> status = jobs_.wait_sweep(id, &version, deadline, who);
      if (!status) continue;
      if (!writer->Write(*status)) return;  // the client is gone
      if (std::all_of(status->jobs().begin(), status->jobs().end(),
                      [](const v1::Job& j) { return is_final(j.state()); }))
        return;
      // Progress of many running jobs arrives many times a second: send at most
      // two statuses a second, each with every change so far.
      std::this_thread::sleep_for(kSweepWatchInterval);
    }
  });
}

grpc::Status JobServiceImpl::CancelSweep(grpc::ServerContext* ctx, const v1::CancelSweepRequest* req,
                                         v1::SweepStatus* resp) {
  AuditContext audit{audit_, metrics_, "CancelSweep", "cancel-sweep", req->sweep_id()};
  return handle(ctx, auth_, Allowed::kClients, &audit,
                [&](const Caller& who) { *resp = jobs_.cancel_sweep(id_of("sweep_id", req->sweep_id()), who); });
}

// ---------------------------------------------------------------- WorkerService

grpc::Status WorkerServiceImpl::RegisterPool(grpc::ServerContext* ctx, const v1::RegisterPoolRequest* req,
                                             v1::RegisterPoolResponse* resp) {
  AuditContext audit{audit_, metrics_, "RegisterPool", "register-pool", {}};
  return handle(ctx, auth_, Allowed::kPools, &audit, [&](const Caller& who) {
    *resp = jobs_.register_pool(*req, who);
    audit.target = resp->pool_id();
  });
}

grpc::Status WorkerServiceImpl::AcquireJob(grpc::ServerContext* ctx, const v1::AcquireJobRequest* req,
                                           v1::AcquireJobResponse* resp) {
  AuditContext audit{audit_, metrics_, "AcquireJob"};
  return handle(ctx, auth_, Allowed::kPools, &audit, [&](const Caller& who) {
    std::string lease;
    if (auto job = jobs_.acquire(
            req->pool_id(), std::chrono::milliseconds(req->wait_ms()), [ctx] { return ctx->IsCancelled(); }, who,
            &lease)) {
      resp->set_lease(lease);
      // A job that trained before resumes from its latest checkpoint; one that
      // warm-starts is told its pinned checkpoint (if that is gone by now, the pool's
      // fetch fails the job saying so).
      const v1::InitFromSpec& from = job->spec().model().init_from();
      if (job->checkpoints_size() > 0) {
        *resp->mutable_resume_from() = jobs_.checkpoint(job->job_id(), "latest");
      } else if (!from.job_id().empty()) {
        v1::CheckpointInfo* info = resp->mutable_init_from();
        try {
          *info = jobs_.checkpoint(from.job_id(), from.checkpoint());
        } catch (const ServiceError&) {
          info->set_final(from.checkpoint() == "final");
          if (!info->final()) info->set_step(std::strtoll(from.checkpoint().c_str(), nullptr, 10));
        }
      }
      *resp->mutable_job() = std::move(*job);
    }
  });
}

grpc::Status WorkerServiceImpl::ReportProgress(grpc::ServerContext* ctx, const v1::ReportProgressRequest* req,
                                               v1::ReportProgressResponse* resp) {
  AuditContext audit{audit_, metrics_, "ReportProgress"};
  return handle(ctx, auth_, Allowed::kPools, &audit, [&](const Caller& who) {
    resp->set_stop(
        jobs_.report({req->pool_id(), req->lease(), who}, req->job_id(), {req->events().begin(), req->events().end()},
                     {req->log().begin(), req->log().end()}));
  });
}

grpc::Status WorkerServiceImpl::FinishJob(grpc::ServerContext* ctx, const v1::FinishJobRequest* req,
                                          v1::FinishJobResponse*) {
  AuditContext audit{audit_, metrics_, "FinishJob", "finish", req->job_id()};
  return handle(ctx, auth_, Allowed::kPools, &audit, [&](const Caller& who) {
    if (req->pool_hung()) {
      jobs_.pool_hung({req->pool_id(), req->lease(), who}, req->job_id(), req->error());
    } else {
      jobs_.finish({req->pool_id(), req->lease(), who}, req->job_id(), req->state(), req->error());
    }
  });
}

grpc::Status WorkerServiceImpl::UploadCheckpoint(grpc::ServerContext* ctx,
                                                 grpc::ServerReader<v1::UploadCheckpointRequest>* reader,
                                                 v1::UploadCheckpointResponse* resp) {
  AuditContext audit{audit_, metrics_, "UploadCheckpoint"};
  return handle(ctx, auth_, Allowed::kPools, &audit, [&](const Caller& who) {
    v1::UploadCheckpointRequest first;
    if (!reader->Read(&first)) throw invalid_argument("an upload needs at least one message");
    const std::string& job_id = job_id_of(first.job_id());
    if (first.total_bytes() <= 0 || static_cast<uint64_t>(first.total_bytes()) > kMaxCheckpointBytes)
      throw invalid_argument("total_bytes: must be between 1 and " + std::to_string(kMaxCheckpointBytes) + ", got " +
                             std::to_string(first.total_bytes()));
    // Refuse a stale or foreign attempt before taking its bytes.
    const PoolCall pool{first.pool_id(), first.lease(), who};
    jobs_.check_holds(pool, job_id);
    std::string bytes = first.data();
    bytes.reserve(static_cast<size_t>(first.total_bytes()));
    for (v1::UploadCheckpointRequest more; reader->Read(&more);) {
      if (bytes.size() + more.data().size() > static_cast<size_t>(first.total_bytes()))
        throw invalid_argument("the upload is longer than its total_bytes");
      bytes += more.data();
    }
    v1::CheckpointInfo announced;
    announced.set_step(first.step());
    announced.set_epoch(first.epoch());
    announced.set_final(first.final());
    announced.set_bytes(first.total_bytes());
    announced.set_sha256(first.sha256());
    const v1::CheckpointInfo info = artifacts_.put(job_id, announced, bytes);
    try {
      for (const auto& old : jobs_.add_checkpoint(pool, job_id, info)) artifacts_.remove(job_id, old);
    } catch (...) {
      // Not listed, so not kept (unless it replaced its namesake, whose file it now is).
      if (!info.final()) artifacts_.remove(job_id, info);
      throw;
    }
    *resp->mutable_checkpoint() = info;
  });
}

grpc::Status WorkerServiceImpl::FetchCheckpoint(grpc::ServerContext* ctx, const v1::FetchCheckpointRequest* req,
                                                grpc::ServerWriter<v1::CheckpointChunk>* writer) {
  AuditContext audit{audit_, metrics_, "FetchCheckpoint"};
  return handle(ctx, auth_, Allowed::kPools, &audit, [&](const Caller& who) {
    const std::string& job_id = job_id_of(req->job_id());
    jobs_.check_holds({req->pool_id(), req->lease(), who}, job_id);
    // Its own checkpoint, or the one of the job it warm-starts from (and no other).
    std::string source = job_id;
    if (!req->from_job_id().empty()) {
      if (jobs_.get(job_id).spec().model().init_from().job_id() != req->from_job_id())
        throw failed_precondition("job " + echoed(job_id) + " does not start from job " + echoed(req->from_job_id()));
      source = req->from_job_id();
    }
    const std::string bytes = artifacts_.get(source, jobs_.checkpoint(source, std::to_string(req->step())));
    v1::CheckpointChunk chunk;
    for (size_t at = 0; at < bytes.size(); at += kChunkBytes) {
      chunk.set_data(bytes.substr(at, kChunkBytes));
      if (!writer->Write(chunk)) return;
    }
  });
}

// ---------------------------------------------------------------- models

grpc::Status JobServiceImpl::DownloadModel(grpc::ServerContext* ctx, const v1::DownloadModelRequest* req,
                                           grpc::ServerWriter<v1::DownloadModelChunk>* writer) {
  AuditContext audit{audit_, metrics_, "DownloadModel"};
  return handle(ctx, auth_, Allowed::kClients, &audit, [&](const Caller& who) {
    const std::string& job_id = job_id_of(req->job_id());
    const v1::CheckpointInfo info = jobs_.checkpoint(job_id, req->checkpoint(), who);
    std::string bytes = artifacts_.get(job_id, info);
    if (req->format() == v1::DownloadModelRequest::ONNX) {
      const std::string name = job_id + (info.final() ? " final" : " step " + std::to_string(info.step()));
      bytes = export_onnx(decode_checkpoint(bytes, name), name);
    }
    v1::DownloadModelChunk chunk;
    *chunk.mutable_checkpoint() = info;
    chunk.set_total_bytes(static_cast<int64_t>(bytes.size()));
    chunk.set_sha256(sha256_hex(bytes));
    for (size_t at = 0; at < bytes.size(); at += kChunkBytes) {
      chunk.set_data(bytes.substr(at, kChunkBytes));
      if (!writer->Write(chunk)) return;
      chunk.Clear();
    }
  });
}

grpc::Status JobServiceImpl::DeleteJob(grpc::ServerContext* ctx, const v1::DeleteJobRequest* req,
                                       v1::DeleteJobResponse*) {
  AuditContext audit{audit_, metrics_, "DeleteJob", "delete", req->job_id()};
  return handle(ctx, auth_, Allowed::kClients, &audit, [&](const Caller& who) {
    const std::string& job_id = job_id_of(req->job_id());
    jobs_.remove(job_id, who);
    artifacts_.remove_job(job_id);
  });
}

// ---------------------------------------------------------------- audit

grpc::Status JobServiceImpl::ListAudit(grpc::ServerContext* ctx, const v1::ListAuditRequest* req,
                                       v1::ListAuditResponse* resp) {
  AuditContext audit{audit_, metrics_, "ListAudit"};
  return handle(ctx, auth_, Allowed::kAdmins, &audit, [&](const Caller&) {
    if (!audit_) throw failed_precondition("this coordinator keeps no audit trail");
    AuditQuery q;
    q.page_size = req->page_size();
    q.page_token = req->page_token();
    q.user = req->user();
    q.action = req->action();
    if (req->has_since()) {
      // Years 1970 to 9999, so that the milliseconds fit.
      const auto& since = req->since();
      if (since.seconds() < 0 || since.seconds() > 253402300799 || since.nanos() < 0 || since.nanos() > 999999999)
        throw invalid_argument("since: must be a time from 1970 to 9999, got " + std::to_string(since.seconds()) +
                               " s " + std::to_string(since.nanos()) + " ns");
      q.since_ms = since.seconds() * 1000 + since.nanos() / 1000000;
    }
    // A full page of the longest entries is under 3 MiB: within gRPC's default 4 MiB.
    AuditPage page = audit_->page(q);
    for (auto& e : page.entries) {
      v1::AuditEntry* out = resp->add_entries();
      out->set_seq(e.seq);
      out->mutable_time()->set_seconds(e.time_ms / 1000);
      out->mutable_time()->set_nanos(static_cast<int32_t>(e.time_ms % 1000) * 1000000);
      out->set_user(std::move(e.user));
      out->set_role(std::move(e.role));
      out->set_peer(std::move(e.peer));
      out->set_action(std::move(e.action));
      out->set_target(std::move(e.target));
      out->set_outcome(std::move(e.outcome));
      out->set_detail(std::move(e.detail));
    }
    resp->set_next_page_token(page.next_page_token);
  });
}

}  // namespace prelude::server
