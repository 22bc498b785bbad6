// The client's connection to the coordinator's JobService: a plain-text or TLS
// channel, the bearer token on every call, a deadline on unary calls, and failed calls
// turned into CallErrors that say what went wrong. Whatever comes back (messages,
// stream messages, error messages) has its control characters escaped here, once
// for every command: nothing from the server drives the user's terminal.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "client/options.h"
#include "common/message_text.h"
#include "prelude/v1/service.grpc.pb.h"

namespace prelude::client {

// A call the coordinator refused or could not answer (exit 3). what() is
// "<CODE>: <message>", e.g. "NOT_FOUND: job-7: no such job".
class CallError : public std::runtime_error {
 public:
  CallError(grpc::StatusCode code, const std::string& message);
  grpc::StatusCode code() const { return code_; }
  // The message without the code name.
  const std::string& message() const { return message_; }

 private:
  grpc::StatusCode code_;
  std::string message_;
};

class Coordinator {
 public:
  // Creates the channel, reading the TLS files (UserError naming a bad one); nothing
  // is sent until the first call. Calls do not wait
  // for the coordinator to come up: one that is down fails at once (UNAVAILABLE).
  explicit Coordinator(const GlobalOptions& options);

  // Each throws CallError when the call fails.
  prelude::v1::Job submit_job(const prelude::v1::JobSpec& spec);
  prelude::v1::Job get_job(const std::string& job_id);
  prelude::v1::ListJobsResponse list_jobs(const prelude::v1::ListJobsRequest& request);
  prelude::v1::Job cancel_job(const std::string& job_id);
  // The job's training history, every page of it: of the latest attempt, of
  // `attempt` (> 0), or of all attempts. The response's job is the last page's.
  prelude::v1::GetMetricsResponse get_metrics(const std::string& job_id, int attempt = 0, bool all_attempts = false);
  prelude::v1::SweepStatus submit_sweep(const prelude::v1::SweepSpec& sweep);
  prelude::v1::SweepStatus get_sweep(const std::string& sweep_id);
  prelude::v1::SweepStatus cancel_sweep(const std::string& sweep_id);
  void delete_job(const std::string& job_id);
  // One page of the audit trail (ListAudit, admins only).
  prelude::v1::ListAuditResponse list_audit(const prelude::v1::ListAuditRequest& request);

  // A server stream: WatchJob's events, WatchSweep's statuses, DownloadModel's
  // chunks or StreamLogs' lines. No deadline: a job may train for hours, a sweep for days, and a large
  // model take long on a slow link.
  template <typename Message>
  class Stream {
   public:
    // A stream dropped before finish() (its reader gave up on it, an exception) is
    // cancelled and its status collected, so the call ends cleanly.
    ~Stream() {
      if (!reader_ || finished_) return;
      context_.TryCancel();
      reader_->Finish();
    }
    // False at the end of the stream; then finish() tells why. Control characters
    // in its strings are escaped (it may be printed on a terminal).
    bool next(Message* message) {
      if (!reader_->Read(message)) return false;
      escape_strings(message, /*keep_layout=*/true);
      return true;
    }
    grpc::Status finish() {
      finished_ = true;
      return reader_->Finish();
    }

   private:
    friend class Coordinator;
    grpc::ClientContext context_;
    std::unique_ptr<grpc::ClientReader<Message>> reader_;
    bool finished_ = false;
  };
  using EventStream = Stream<prelude::v1::JobEvent>;
  using SweepStream = Stream<prelude::v1::SweepStatus>;
  using ModelStream = Stream<prelude::v1::DownloadModelChunk>;
  using LogStream = Stream<prelude::v1::StreamLogsResponse>;

  std::unique_ptr<EventStream> watch_job(const std::string& job_id, int64_t after_seq);
  std::unique_ptr<SweepStream> watch_sweep(const std::string& sweep_id);
  std::unique_ptr<ModelStream> download_model(const prelude::v1::DownloadModelRequest& request);
  std::unique_ptr<LogStream> stream_logs(const prelude::v1::StreamLogsRequest& request);

  // The CallError for a failed status, with the help a user needs: the address of
  // a coordinator that cannot be reached, the deadline that passed, how to give a
  // token when none was sent.
  CallError error(const grpc::Status& status) const;

 private:
  template <typename Request, typename Response, typename Method>
  Response unary(Method method, const Request& request);
  void add_token(grpc::ClientContext* context) const;
  // A stream's context: the token, and no waiting for a coordinator that is down.
  template <typename Message>
  std::unique_ptr<Stream<Message>> open_stream() const;

  GlobalOptions options_;
  std::unique_ptr<prelude::v1::JobService::Stub> stub_;
};

}  // namespace prelude::client
