// The web dashboard's side of the coordinator: a JSON API over the JobManager that the
// pages (server/dashboard/, embedded into the binary at build time) poll, and those
// pages' files. Free of gRPC and of HTTP alike: HttpServer (server/http_server.cc)
// authenticates a request, turns it into a path, its query and a Caller, and sends
// back the HttpReply made here. Every call goes through the JobManager with the
// Caller, so the ownership rules of the gRPC API hold as they are: a user sees its own
// jobs only, and another user's job is 404 exactly as an unknown one is.
//
//   GET /api/whoami                    {"name", "role"}
//   GET /api/jobs?state=&sweep=&page_size=&page_token=
//                                      a page of jobs, newest first (ListJobsResponse)
//   GET /api/jobs/ID                   the Job
//   GET /api/jobs/ID/events?after=N    its events with seq > N (at most a batch; poll
//                                      again at once while some come), the job, and
//                                      "ended" once it is final and nothing is left
//   GET /api/jobs/ID/logs?attempt=N&after=S
//                                      its worker output: lines of attempt N (0 or
//                                      none: the latest) with seq > S (at most a batch),
//                                      and "ended" once that attempt is over
//   GET /api/jobs/ID/model?checkpoint=&format=prelude|onnx
//                                      a kept checkpoint's file (or its ONNX export)
//   GET /api/sweeps/ID?target_loss=    the sweep, its jobs and the rows of `prelude compare`
//
// Errors are {"error": {"code": "NOT_FOUND", "message": "..."}} with the HTTP status of
// the gRPC code (http_status()).
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "server/caller.h"

namespace prelude::server {

class JobManager;
class ArtifactStore;

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// A file of the pages, embedded at build time (server/dashboard/*, see server/CMakeLists.txt).
struct DashboardAsset {
  const char* path;  // "/index.html", "/dashboard.js", ...
  const char* content_type;
  const char* data;
  size_t size;
};

class Dashboard {
 public:
  // `artifacts` null: the model endpoint answers that this coordinator serves no models.
  Dashboard(JobManager& jobs, const ArtifactStore* artifacts);

  // A GET of `path` (starting with /api/) with its query parameters, by `who`. Never
  // throws: errors are replies.
  HttpReply api(const std::string& path, const std::map<std::string, std::string>& query, const Caller& who) const;

  // The error reply of a failed call: the HTTP status matching the gRPC code.
  static HttpReply error(ErrorCode code, const std::string& message);
  // NOT_FOUND -> 404, INVALID_ARGUMENT and FAILED_PRECONDITION -> 400, UNAUTHENTICATED
  // -> 401, PERMISSION_DENIED -> 403, RESOURCE_EXHAUSTED -> 429, UNAVAILABLE -> 503,
  // anything else 500: as gRPC's own HTTP mapping (google.rpc.Code) has it.
  static int http_status(ErrorCode code);

  // The pages' files; the page of "/" is "/index.html". Null for a path that is none.
  static const DashboardAsset* asset(const std::string& path);
  static std::vector<const DashboardAsset*> assets();

  // The most jobs one /api/jobs page holds.
  static constexpr int kMaxPageSize = 500;

 private:
  HttpReply route(const std::string& path, const std::map<std::string, std::string>& query, const Caller& who) const;
  HttpReply jobs(const std::map<std::string, std::string>& query, const Caller& who) const;
  HttpReply events(const std::string& job_id, const std::map<std::string, std::string>& query,
                   const Caller& who) const;
  HttpReply logs(const std::string& job_id, const std::map<std::string, std::string>& query,
                 const Caller& who) const;
  HttpReply model(const std::string& job_id, const std::map<std::string, std::string>& query,
                  const Caller& who) const;
  HttpReply sweep(const std::string& sweep_id, const std::map<std::string, std::string>& query,
                  const Caller& who) const;

  JobManager& jobs_;
  const ArtifactStore* artifacts_;
};

}  // namespace prelude::server
