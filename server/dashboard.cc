#include "server/dashboard.h"

#include <google/protobuf/util/json_util.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "artifacts/checkpoint_file.h"
#include "artifacts/onnx_export.h"
#include "client/compare.h"
#include "common/errors.h"
#include "common/text.h"
#include "server/artifact_store.h"
#include "server/job_manager.h"

namespace prelude::server {

// The embedded pages (generated at build time from server/dashboard/ by embed_assets.cmake).
extern const DashboardAsset kDashboardAssets[];
extern const size_t kDashboardAssetCount;

namespace v1 = prelude::v1;

namespace {

const char* code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case ErrorCode::kNotFound: return "NOT_FOUND";
    case ErrorCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case ErrorCode::kUnauthenticated: return "UNAUTHENTICATED";
    case ErrorCode::kPermissionDenied: return "PERMISSION_DENIED";
    case ErrorCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case ErrorCode::kUnavailable: return "UNAVAILABLE";
    case ErrorCode::kTimedOut: return "DEADLINE_EXCEEDED";
    case ErrorCode::kInterrupted: return "ABORTED";
    case ErrorCode::kUnsupported: return "UNIMPLEMENTED";
    case ErrorCode::kInternal: break;
  }
  return "INTERNAL";
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Lower camel case field names, as `prelude get --format json` and job spec files have them.
std::string to_json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok())
    throw std::runtime_error("cannot print " + message.GetTypeName() + " as JSON: " + std::string(status.message()));
  return json;
}

// A job as lists show it: without the per-channel slopes and per-class tables of its
// latest events, which a page of 500 jobs would carry for nothing (the job's own page
// reads them from /api/jobs/ID and its events).
v1::Job listed(v1::Job job) {
  for (v1::TrainingEvent* e : {job.mutable_latest_metrics(), job.mutable_progress()}) {
    e->clear_alphas();
    e->clear_class_names();
    e->clear_class_accuracy();
    e->clear_confusion_matrix();
  }
  return job;
}

const std::string& param(const std::map<std::string, std::string>& query, const std::string& name) {
  static const std::string kNone;
  auto it = query.find(name);
  return it == query.end() ? kNone : it->second;
}

// A whole number in [lo, hi] from query parameter `name` (`fallback` when absent).
int64_t integer(const std::map<std::string, std::string>& query, const std::string& name, int64_t fallback, int64_t lo,
                int64_t hi) {
  const std::string& text = param(query, name);
  if (text.empty()) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (*end || errno || v < lo || v > hi)
    throw invalid_argument(name + ": must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                           ", got " + echoed(text));
  return v;
}

v1::JobState state_param(const std::string& text) {
  if (text.empty()) return v1::JOB_STATE_UNSPECIFIED;
  std::string upper;
  for (char c : text) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper == "ALL") return v1::JOB_STATE_UNSPECIFIED;
  v1::JobState state;
  if (!v1::JobState_Parse(upper, &state) || state == v1::JOB_STATE_UNSPECIFIED)
    throw invalid_argument("state: must be QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED, got " + echoed(text));
  return state;
}

bool final_state(v1::JobState s) { return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED; }

// Splits "/api/jobs/ID/events" into its parts after "/api/": {"jobs", "ID", "events"}.
std::vector<std::string> segments(const std::string& path) {
  std::vector<std::string> out;
  size_t at = 5;  // after "/api/"
  while (at <= path.size()) {
    const size_t slash = path.find('/', at);
    const size_t end = slash == std::string::npos ? path.size() : slash;
    out.push_back(path.substr(at, end - at));
    if (slash == std::string::npos) break;
    at = slash + 1;
  }
  return out;
}

}  // namespace

Dashboard::Dashboard(JobManager& jobs, const ArtifactStore* artifacts) : jobs_(jobs), artifacts_(artifacts) {}

int Dashboard::http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kFailedPrecondition: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kUnauthenticated: return 401;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kResourceExhausted: return 429;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kTimedOut: return 504;
    case ErrorCode::kUnsupported: return 501;
    case ErrorCode::kInterrupted: return 409;
    case ErrorCode::kInternal: break;
  }
  return 500;
}

HttpReply Dashboard::error(ErrorCode code, const std::string& message) {
  HttpReply r;
  r.status = http_status(code);
  r.body = "{\"error\": {\"code\": \"" + std::string(code_name(code)) + "\", \"message\": " +
           json_string(escape_control(message, /*keep_layout=*/true)) + "}}\n";
  return r;
}

const DashboardAsset* Dashboard::asset(const std::string& path) {
  const std::string& want = path == "/" ? std::string("/index.html") : path;
  for (size_t i = 0; i < kDashboardAssetCount; ++i)
    if (want == kDashboardAssets[i].path) return &kDashboardAssets[i];
  return nullptr;
}

std::vector<const DashboardAsset*> Dashboard::assets() {
  std::vector<const DashboardAsset*> out;
  for (size_t i = 0; i < kDashboardAssetCount; ++i) out.push_back(&kDashboardAssets[i]);
  return out;
}

HttpReply Dashboard::api(const std::string& path, const std::map<std::string, std::string>& query,
                         const Caller& who) const {
  HttpReply reply;
  try {
    reply = route(path, query, who);
  } catch (const ServiceError& e) {
    reply = error(e.code(), e.what());
  } catch (const UserError& e) {
    reply = error(ErrorCode::kInvalidArgument, e.what());
  } catch (const std::exception& e) {
    reply = error(ErrorCode::kInternal, std::string("internal error: ") + e.what());
  }
  // Data a page polls for: kept by the browser only to be revalidated on every poll
  // (the HTTP server tags each answer, and one that has not changed is a 304 without a
  // body); private, as it was asked with a token.
  reply.headers.emplace_back("Cache-Control", "private, no-cache");
  return reply;
}

HttpReply Dashboard::route(const std::string& path, const std::map<std::string, std::string>& query,
                           const Caller& who) const {
  const std::vector<std::string> s = segments(path);
  const size_t n = s.size();
  HttpReply reply;
  if (n == 1 && s[0] == "whoami") {
    reply.body = "{\"name\": " + json_string(who.name) + ", \"role\": \"" + role_name(who.role) + "\"}\n";
    return reply;
  }
  if (n == 1 && s[0] == "jobs") return jobs(query, who);
  if (n >= 2 && s[0] == "jobs" && s[1].empty()) throw invalid_argument("job_id: must be given");
  if (n == 2 && s[0] == "jobs") {
    reply.body = to_json(jobs_.get(s[1], who));
    return reply;
  }
  if (n == 3 && s[0] == "jobs" && s[2] == "events") return events(s[1], query, who);
  if (n == 3 && s[0] == "jobs" && s[2] == "model") return model(s[1], query, who);
  if (n == 3 && s[0] == "jobs" && s[2] == "logs") return logs(s[1], query, who);
  if (n == 2 && s[0] == "sweeps") {
    if (s[1].empty()) throw invalid_argument("sweep_id: must be given");
    return sweep(s[1], query, who);
  }
  throw not_found("no such API: " + echoed(path, 200) +
                  " (there are /api/whoami, /api/jobs, /api/jobs/ID, /api/jobs/ID/events, /api/jobs/ID/logs, /api/jobs/ID/model, "
                  "/api/sweeps/ID)");
}

HttpReply Dashboard::jobs(const std::map<std::string, std::string>& query, const Caller& who) const {
  const v1::JobState state = state_param(param(query, "state"));
  const int size = static_cast<int>(integer(query, "page_size", 50, 1, kMaxPageSize));
  const JobPage page = jobs_.list(size, param(query, "page_token"), state, param(query, "sweep"), who);
  v1::ListJobsResponse out;
  for (const v1::Job& job : page.jobs) *out.add_jobs() = listed(job);
  out.set_next_page_token(page.next_page_token);
  HttpReply reply;
  reply.body = to_json(out);
  return reply;
}

HttpReply Dashboard::events(const std::string& job_id, const std::map<std::string, std::string>& query,
                            const Caller& who) const {
  const int64_t after = integer(query, "after", 0, 0, INT64_MAX);
  bool ended = false;
  // A deadline already past: what there is now, without waiting (pages poll).
  const std::vector<v1::JobEvent> events = jobs_.wait_events(job_id, after, SteadyClock::now(), &ended, who);
  // The job after its events were read: a page that sees it final has seen them all.
  const v1::Job job = listed(jobs_.get(job_id, who));
  std::string body = "{\"job\": " + to_json(job) + ", \"events\": [";
  int64_t last = after;
  for (size_t i = 0; i < events.size(); ++i) {
    body += (i ? ",\n" : "\n") + to_json(events[i]);
    last = std::max<int64_t>(last, events[i].seq());
  }
  body += "], \"last\": " + std::to_string(last) + ", \"ended\": " +
          (ended || (events.empty() && final_state(job.state())) ? "true" : "false") + "}\n";
  HttpReply reply;
  reply.body = std::move(body);
  return reply;
}

HttpReply Dashboard::logs(const std::string& job_id, const std::map<std::string, std::string>& query,
                          const Caller& who) const {
  const int attempt = static_cast<int>(integer(query, "attempt", 0, 0, 1000000));
  const int64_t after = integer(query, "after", 0, 0, INT64_MAX);
  // No deadline: what there is now (pages poll).
  const LogPage page = jobs_.logs(job_id, attempt, after, {}, who);
  std::string body = "{\"attempt\": " + std::to_string(page.attempt) +
                     ", \"latestAttempt\": " + std::to_string(page.latest_attempt) +
                     ", \"dropped\": " + std::to_string(page.dropped) + ", \"lines\": [";
  int64_t last = after;
  for (size_t i = 0; i < page.lines.size(); ++i) {
    body += (i ? ",\n" : "\n") + to_json(page.lines[i]);
    last = std::max<int64_t>(last, page.lines[i].seq());
  }
  body += "], \"last\": " + std::to_string(last) + ", \"ended\": " + (page.ended ? "true" : "false") + "}\n";
  HttpReply reply;
  reply.body = std::move(body);
  return reply;
}

HttpReply Dashboard::model(const std::string& job_id, const std::map<std::string, std::string>& query,
                           const Caller& who) const {
  const std::string& format = param(query, "format");
  if (!format.empty() && format != "prelude" && format != "onnx")
    throw invalid_argument("format: must be prelude or onnx, got " + echoed(format));
  const v1::CheckpointInfo info = jobs_.checkpoint(job_id, param(query, "checkpoint"), who);
  if (!artifacts_) throw ServiceError(ErrorCode::kUnsupported, "this coordinator serves no models over HTTP");
  std::string bytes = artifacts_->get(job_id, info);
  const std::string which = info.final() ? "final" : "step-" + std::to_string(info.step());
  HttpReply reply;
  reply.content_type = "application/octet-stream";
  if (format == "onnx") {
    const std::string name = job_id + (info.final() ? " final" : " step " + std::to_string(info.step()));
    bytes = export_onnx(decode_checkpoint(bytes, name), name);
    reply.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + job_id + "-" + which + ".onnx\"");
  } else {
    reply.headers.emplace_back("X-Checkpoint-Sha256", info.sha256());
    reply.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + job_id + "-" + which + ".ckpt\"");
  }
  reply.body = std::move(bytes);
  return reply;
}

HttpReply Dashboard::sweep(const std::string& sweep_id, const std::map<std::string, std::string>& query,
                           const Caller& who) const {
  double target = 0;
  if (const std::string& t = param(query, "target_loss"); !t.empty()) {
    char* end = nullptr;
    target = std::strtod(t.c_str(), &end);
    if (*end || !(target > 0) || target > 1e9)
      throw invalid_argument("target_loss: must be a positive number, got " + echoed(t));
  }
  const v1::SweepStatus status = jobs_.get_sweep(sweep_id, who);
  // The events are read only for steps to the target loss, as `prelude compare` does.
  std::map<std::string, v1::GetMetricsResponse> metrics;
  if (target > 0)
    for (const v1::Job& job : status.jobs()) {
      v1::GetMetricsResponse& m = metrics[job.job_id()];
      for (v1::JobEvent& e : jobs_.metrics(job.job_id(), who)) *m.add_events() = std::move(e);
    }
  // The same rows and the same JSON as `prelude compare --format json` (one object a line).
  const std::string rows = prelude::client::render_comparison(prelude::client::compare_rows(status, metrics, target),
                                                              "json", target);
  std::string body = "{\"sweep\": " + to_json(status.sweep()) + ", \"jobs\": [";
  for (int i = 0; i < status.jobs_size(); ++i) body += (i ? ",\n" : "\n") + to_json(listed(status.jobs(i)));
  body += "], \"rows\": [";
  std::istringstream lines(rows);
  std::string line;
  bool first = true;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    body += (first ? "\n" : ",\n") + line;
    first = false;
  }
  body += "]}\n";
  HttpReply reply;
  reply.body = std::move(body);
  return reply;
}

}  // namespace prelude::server
