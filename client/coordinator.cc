#include "client/coordinator.h"

#include <chrono>
#include <cstdio>
#include <set>

#include "common/bearer.h"
#include "common/grpc_status.h"
#include "common/status.h"
#include "common/text.h"
#include "common/tls.h"

namespace prelude::client {

namespace v1 = prelude::v1;

CallError::CallError(grpc::StatusCode code, const std::string& message)
    : std::runtime_error(status_text(code, escape_control(message, true))),
      code_(code),
      message_(escape_control(message, true)) {}

namespace {

std::shared_ptr<grpc::Channel> make_channel(const GlobalOptions& options) {
  grpc::ChannelArguments args;
  // A long job's full history (GetMetrics) can pass gRPC's default 4 MB limit.
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(options.coordinator, channel_credentials(options.tls), args);
}

}  // namespace

Coordinator::Coordinator(const GlobalOptions& options)
    : options_(options), stub_(v1::JobService::NewStub(make_channel(options))) {}

void Coordinator::add_token(grpc::ClientContext* context) const { add_bearer_token(context, options_.token); }

template <typename Request, typename Response, typename Method>
Response Coordinator::unary(Method method, const Request& request) {
  grpc::ClientContext context;
  add_token(&context);
  context.set_wait_for_ready(false);
  context.set_deadline(std::chrono::system_clock::now() + options_.timeout);
  Response response;
  const grpc::Status status = ((*stub_).*method)(&context, request, &response);
  if (!status.ok()) throw error(status);
  escape_strings(&response, /*keep_layout=*/true);
  return response;
}

v1::Job Coordinator::submit_job(const v1::JobSpec& spec) {
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  return unary<v1::SubmitJobRequest, v1::Job>(&v1::JobService::Stub::SubmitJob, request);
}

v1::Job Coordinator::get_job(const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  return unary<v1::GetJobRequest, v1::Job>(&v1::JobService::Stub::GetJob, request);
}

v1::ListJobsResponse Coordinator::list_jobs(const v1::ListJobsRequest& request) {
  return unary<v1::ListJobsRequest, v1::ListJobsResponse>(&v1::JobService::Stub::ListJobs, request);
}

v1::Job Coordinator::cancel_job(const std::string& job_id) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  return unary<v1::CancelJobRequest, v1::Job>(&v1::JobService::Stub::CancelJob, request);
}

v1::GetMetricsResponse Coordinator::get_metrics(const std::string& job_id, int attempt, bool all_attempts) {
  v1::GetMetricsRequest request;
  request.set_job_id(job_id);
  request.set_attempt(attempt);
  request.set_all_attempts(all_attempts);
  v1::GetMetricsResponse all;
  std::set<std::string> tokens_seen;  // a coordinator that hands out a token twice would loop forever
  for (bool first = true;; first = false) {
    v1::GetMetricsResponse page =
        unary<v1::GetMetricsRequest, v1::GetMetricsResponse>(&v1::JobService::Stub::GetMetrics, request);
    if (first) all.set_attempt(page.attempt());
    *all.mutable_job() = std::move(*page.mutable_job());
    for (auto& e : *page.mutable_events()) *all.add_events() = std::move(e);
    const std::string& token = page.next_page_token();
    if (token.empty() || !tokens_seen.insert(token).second) break;
    request.set_page_token(token);
  }
  return all;
}

v1::SweepStatus Coordinator::submit_sweep(const v1::SweepSpec& sweep) {
  v1::SubmitSweepRequest request;
  *request.mutable_sweep() = sweep;
  return unary<v1::SubmitSweepRequest, v1::SweepStatus>(&v1::JobService::Stub::SubmitSweep, request);
}

v1::SweepStatus Coordinator::get_sweep(const std::string& sweep_id) {
  v1::GetSweepRequest request;
  request.set_sweep_id(sweep_id);
  return unary<v1::GetSweepRequest, v1::SweepStatus>(&v1::JobService::Stub::GetSweep, request);
}

v1::SweepStatus Coordinator::cancel_sweep(const std::string& sweep_id) {
  v1::CancelSweepRequest request;
  request.set_sweep_id(sweep_id);
  return unary<v1::CancelSweepRequest, v1::SweepStatus>(&v1::JobService::Stub::CancelSweep, request);
}

void Coordinator::delete_job(const std::string& job_id) {
  v1::DeleteJobRequest request;
  request.set_job_id(job_id);
  unary<v1::DeleteJobRequest, v1::DeleteJobResponse>(&v1::JobService::Stub::DeleteJob, request);
}

v1::ListAuditResponse Coordinator::list_audit(const v1::ListAuditRequest& request) {
  return unary<v1::ListAuditRequest, v1::ListAuditResponse>(&v1::JobService::Stub::ListAudit, request);
}

template <typename Message>
std::unique_ptr<Coordinator::Stream<Message>> Coordinator::open_stream() const {
  auto stream = std::make_unique<Stream<Message>>();
  add_token(&stream->context_);
  stream->context_.set_wait_for_ready(false);
  return stream;
}

std::unique_ptr<Coordinator::EventStream> Coordinator::watch_job(const std::string& job_id, int64_t after_seq) {
  auto stream = open_stream<v1::JobEvent>();
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_after_seq(after_seq);
  stream->reader_ = stub_->WatchJob(&stream->context_, request);
  return stream;
}

std::unique_ptr<Coordinator::SweepStream> Coordinator::watch_sweep(const std::string& sweep_id) {
  auto stream = open_stream<v1::SweepStatus>();
  v1::WatchSweepRequest request;
  request.set_sweep_id(sweep_id);
  stream->reader_ = stub_->WatchSweep(&stream->context_, request);
  return stream;
}

std::unique_ptr<Coordinator::ModelStream> Coordinator::download_model(const v1::DownloadModelRequest& request) {
  auto stream = open_stream<v1::DownloadModelChunk>();
  stream->reader_ = stub_->DownloadModel(&stream->context_, request);
  return stream;
}

std::unique_ptr<Coordinator::LogStream> Coordinator::stream_logs(const v1::StreamLogsRequest& request) {
  auto stream = open_stream<v1::StreamLogsResponse>();
  stream->reader_ = stub_->StreamLogs(&stream->context_, request);
  return stream;
}

CallError Coordinator::error(const grpc::Status& status) const {
  const std::string& message = status.error_message();
  switch (from_grpc(status.error_code())) {
    case ErrorCode::kUnavailable:
      return CallError(status.error_code(), "cannot reach the coordinator at " + options_.coordinator + ": " + message +
                                                tls_failure_hint(options_.coordinator, options_.tls, message));
    case ErrorCode::kTimedOut: {
      const double seconds = static_cast<double>(options_.timeout.count()) / 1000;
      char limit[32];
      std::snprintf(limit, sizeof limit, "%g", seconds);
      return CallError(status.error_code(), "the coordinator at " + options_.coordinator + " did not answer within " +
                                                limit + " s (--timeout)");
    }
    case ErrorCode::kUnauthenticated:
      if (options_.token.empty())
        return CallError(status.error_code(),
                         message + " (no token was sent: give one with --token-file, --token or $PRELUDE_TOKEN)");
      return CallError(status.error_code(), message);
    default:
      return CallError(status.error_code(), message);
  }
}

}  // namespace prelude::client
