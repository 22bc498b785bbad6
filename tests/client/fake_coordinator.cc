#include "fake_coordinator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "artifacts/checkpoint_file.h"
#include "common/errors.h"
#include "common/job_state.h"
#include "spec/sweep.h"

namespace prelude::client::testing {

namespace v1 = prelude::v1;

namespace {

// "step 100, step 200 (final)": the checkpoints a job keeps, for NOT_FOUND messages.
std::string kept_list(const v1::Job& job) {
  std::string list;
  for (const auto& c : job.checkpoints())
    list += (list.empty() ? "" : ", ") + ("step " + std::to_string(c.step())) + (c.final() ? " (final)" : "");
  return list;
}

// The checkpoint DownloadModel names, as the coordinator chooses it.
grpc::Status choose_checkpoint(const v1::Job& job, const std::string& which, v1::CheckpointInfo* chosen) {
  if (job.checkpoints_size() == 0)
    return grpc::Status(grpc::StatusCode::NOT_FOUND, job.job_id() + " has no checkpoints");
  const auto& kept = job.checkpoints();
  const auto final_one = std::find_if(kept.begin(), kept.end(), [](const v1::CheckpointInfo& c) { return c.final(); });
  const v1::CheckpointInfo* found = nullptr;
  if (which.empty()) found = final_one != kept.end() ? &*final_one : &*kept.rbegin();
  else if (which == "final") found = final_one != kept.end() ? &*final_one : nullptr;
  else if (which == "latest") found = &*kept.rbegin();
  else
    for (const auto& c : kept)
      if (std::to_string(c.step()) == which) found = &c;
  if (found == nullptr)
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        job.job_id() + ": no checkpoint '" + which + "'; kept: " + kept_list(job));
  *chosen = *found;
  return grpc::Status::OK;
}

}  // namespace

FakeJobService::Record FakeJobService::record() const {
  std::lock_guard<std::mutex> lock(mu_);
  return record_;
}

void FakeJobService::add_job(const v1::Job& job) {
  jobs[job.job_id()] = job;
  newest_first.insert(newest_first.begin(), job.job_id());
}

void FakeJobService::add_sweep(const v1::Sweep& sweep, const std::vector<v1::Job>& sweep_jobs) {
  v1::Sweep copy = sweep;
  copy.clear_job_ids();
  for (v1::Job job : sweep_jobs) {
    job.set_sweep_id(sweep.sweep_id());
    copy.add_job_ids(job.job_id());
    add_job(job);
  }
  sweeps[sweep.sweep_id()] = copy;
}

grpc::Status FakeJobService::begin_call(grpc::ServerContext* ctx) {
  std::lock_guard<std::mutex> lock(mu_);
  ++record_.calls;
  const auto& metadata = ctx->client_metadata();
  const auto it = metadata.find("authorization");
  const std::string given = it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
  record_.authorization.push_back(given);
  if (required_token.empty()) return grpc::Status::OK;
  if (given.empty())
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "this coordinator needs a token");
  if (given != "Bearer " + required_token) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong token");
  return grpc::Status::OK;
}

grpc::Status FakeJobService::find_job(const std::string& id, v1::Job* job) const {
  const auto it = jobs.find(id);
  if (it == jobs.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, id + ": no such job");
  *job = it->second;
  return grpc::Status::OK;
}

grpc::Status FakeJobService::sweep_status(const std::string& id, v1::SweepStatus* status) const {
  const auto it = sweeps.find(id);
  if (it == sweeps.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "sweep '" + id + "' does not exist");
  *status->mutable_sweep() = it->second;
  for (const auto& job_id : it->second.job_ids()) *status->add_jobs() = jobs.at(job_id);
  return grpc::Status::OK;
}

grpc::Status FakeJobService::SubmitJob(grpc::ServerContext* ctx, const v1::SubmitJobRequest* req, v1::Job* resp) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  record_.submitted.push_back(req->spec());
  if (!submit_status.ok()) return submit_status;
  v1::Job job;
  job.set_job_id("job-" + std::to_string(jobs.size() + 1));
  *job.mutable_spec() = req->spec();
  job.set_state(v1::QUEUED);
  add_job(job);
  *resp = job;
  return grpc::Status::OK;
}

grpc::Status FakeJobService::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req, v1::Job* resp) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  return find_job(req->job_id(), resp);
}

grpc::Status FakeJobService::ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                                      v1::ListJobsResponse* resp) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  record_.list_requests.push_back(*req);
  std::vector<const v1::Job*> matching;
  for (const auto& id : newest_first) {
    const v1::Job& job = jobs.at(id);
    if (req->state() == v1::JOB_STATE_UNSPECIFIED || job.state() == req->state()) matching.push_back(&job);
  }
  size_t start = 0;
  if (!req->page_token().empty()) {
    try {
      start = std::stoul(req->page_token());
    } catch (const std::exception&) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token: not one of ours");
    }
  }
  const size_t size = std::min<size_t>(req->page_size() > 0 ? req->page_size() : 50, max_page_size);
  const size_t end = std::min(matching.size(), start + size);
  for (size_t i = start; i < end; ++i) *resp->add_jobs() = *matching[i];
  if (end < matching.size()) resp->set_next_page_token(std::to_string(end));
  return grpc::Status::OK;
}

grpc::Status FakeJobService::ListAudit(grpc::ServerContext* ctx, const v1::ListAuditRequest* req,
                                       v1::ListAuditResponse* resp) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  record_.audit_requests.push_back(*req);
  if (!audit_status.ok()) return audit_status;
  size_t start = 0;
  if (!req->page_token().empty()) {
    try {
      start = std::stoul(req->page_token());
    } catch (const std::exception&) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token: not one of ours");
    }
  }
  const size_t size = std::min<size_t>(req->page_size() > 0 ? req->page_size() : 100, max_page_size);
  const size_t end = std::min(audit.size(), start + size);
  for (size_t i = start; i < end; ++i) *resp->add_entries() = audit[i];
  if (end < audit.size()) resp->set_next_page_token(std::to_string(end));
  return grpc::Status::OK;
}

grpc::Status FakeJobService::CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req, v1::Job* resp) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto s = find_job(req->job_id(), resp); !s.ok()) return s;
  record_.cancelled.push_back(req->job_id());
  switch (resp->state()) {
    case v1::QUEUED: resp->set_state(v1::CANCELLED); break;
    case v1::RUNNING: resp->set_cancel_requested(true); break;
    default:
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          req->job_id() + ": has already ended (" + v1::JobState_Name(resp->state()) + ")");
  }
  jobs[req->job_id()] = *resp;
  return grpc::Status::OK;
}

grpc::Status FakeJobService::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                                      grpc::ServerWriter<v1::JobEvent>* writer) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  std::vector<v1::JobEvent> to_send;
  int limit = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    record_.watch_requests.push_back(*req);
    v1::Job job;
    if (auto s = find_job(req->job_id(), &job); !s.ok()) return s;
    for (const auto& e : events[req->job_id()])
      if (e.seq() > req->after_seq()) to_send.push_back(e);
    if (watch_calls_++ == 0) limit = break_first_watch_after;
  }
  for (size_t i = 0; i < to_send.size(); ++i) {
    if (limit >= 0 && static_cast<int>(i) == limit)
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is restarting");
    if (!writer->Write(to_send[i])) return grpc::Status::OK;
  }
  return grpc::Status::OK;
}

grpc::Status FakeJobService::GetMetrics(grpc::ServerContext* ctx, const v1::GetMetricsRequest* req,
                                        v1::GetMetricsResponse* resp) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  record_.metrics_requests.push_back(*req);
  if (auto s = find_job(req->job_id(), resp->mutable_job()); !s.ok()) return s;
  // The token: the index of the next event of the job's history.
  const size_t from = req->page_token().empty() ? 0 : std::stoul(req->page_token());
  const int attempt = req->attempt() > 0 ? req->attempt() : resp->job().attempts();
  const int page_size = req->page_size() > 0 ? std::min(req->page_size(), metrics_page_size) : metrics_page_size;
  const auto& history = events[req->job_id()];
  for (size_t i = from; i < history.size(); ++i) {
    const auto& e = history[i];
    if (!e.has_training() || (!req->all_attempts() && e.attempt() != attempt)) continue;
    if (resp->events_size() == page_size) {
      resp->set_next_page_token(std::to_string(i));
      break;
    }
    *resp->add_events() = e;
  }
  resp->set_attempt(req->all_attempts() ? 0 : attempt);
  return grpc::Status::OK;
}

grpc::Status FakeJobService::SubmitSweep(grpc::ServerContext* ctx, const v1::SubmitSweepRequest* req,
                                         v1::SweepStatus* resp) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  record_.submitted_sweeps.push_back(req->sweep());
  std::vector<SweepPoint> points;
  try {
    points = expand_sweep(req->sweep());
  } catch (const UserError& e) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, e.what());
  }
  v1::Sweep sweep;
  sweep.set_sweep_id("sweep-" + std::to_string(sweeps.size() + 1));
  *sweep.mutable_spec() = req->sweep();
  std::vector<v1::Job> sweep_jobs;
  for (const auto& point : points) {
    v1::Job job;
    job.set_job_id("job-" + std::to_string(jobs.size() + sweep_jobs.size() + 1));
    *job.mutable_spec() = point.spec;
    job.set_state(v1::QUEUED);
    job.set_sweep_point(point.label);
    sweep_jobs.push_back(job);
  }
  add_sweep(sweep, sweep_jobs);
  return sweep_status(sweep.sweep_id(), resp);
}

grpc::Status FakeJobService::GetSweep(grpc::ServerContext* ctx, const v1::GetSweepRequest* req,
                                      v1::SweepStatus* resp) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  record_.got_sweeps.push_back(req->sweep_id());
  return sweep_status(req->sweep_id(), resp);
}

grpc::Status FakeJobService::CancelSweep(grpc::ServerContext* ctx, const v1::CancelSweepRequest* req,
                                         v1::SweepStatus* resp) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  record_.cancelled_sweeps.push_back(req->sweep_id());
  v1::SweepStatus before;
  if (auto s = sweep_status(req->sweep_id(), &before); !s.ok()) return s;
  // As the coordinator: queued jobs cancelled at once, running ones asked to stop,
  // ended ones left alone.
  for (const auto& job : before.jobs()) {
    v1::Job& j = jobs.at(job.job_id());
    if (j.state() == v1::QUEUED) {
      j.set_state(v1::CANCELLED);
      j.set_error("cancelled before it started");
    } else if (j.state() == v1::RUNNING) {
      j.set_cancel_requested(true);
    }
  }
  return sweep_status(req->sweep_id(), resp);
}

grpc::Status FakeJobService::WatchSweep(grpc::ServerContext* ctx, const v1::WatchSweepRequest* req,
                                        grpc::ServerWriter<v1::SweepStatus>* writer) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  int limit = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    record_.watched_sweeps.push_back(req->sweep_id());
    if (sweep_watch_calls_++ == 0) limit = break_first_sweep_watch_after;
  }
  for (int sent = 0;; ++sent) {
    v1::SweepStatus status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto s = sweep_status(req->sweep_id(), &status); !s.ok()) return s;
    }
    if (sent == limit) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is restarting");
    if (!writer->Write(status)) return grpc::Status::OK;
    if (std::all_of(status.jobs().begin(), status.jobs().end(), [](const v1::Job& j) {
          return j.state() == v1::SUCCEEDED || j.state() == v1::FAILED || j.state() == v1::CANCELLED;
        }))
      return grpc::Status::OK;
    std::lock_guard<std::mutex> lock(mu_);
    const auto& script = sweep_changes[req->sweep_id()];
    size_t& next = next_sweep_change_[req->sweep_id()];
    if (next >= script.size()) return grpc::Status::OK;
    for (const auto& change : script[next]) jobs.at(change.job_id()).MergeFrom(change);
    ++next;
  }
}

grpc::Status FakeJobService::DownloadModel(grpc::ServerContext* ctx, const v1::DownloadModelRequest* req,
                                           grpc::ServerWriter<v1::DownloadModelChunk>* writer) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  v1::DownloadModelChunk first;
  std::string bytes;
  int64_t cut = -1;
  grpc::Status cut_status;
  size_t chunk_bytes = 1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    record_.downloads.push_back(*req);
    v1::Job job;
    if (auto s = find_job(req->job_id(), &job); !s.ok()) return s;
    if (auto s = choose_checkpoint(job, req->checkpoint(), first.mutable_checkpoint()); !s.ok()) return s;
    bytes = models[req->job_id()];
    first.set_total_bytes(announced_bytes >= 0 ? announced_bytes : static_cast<int64_t>(bytes.size()));
    first.set_sha256(announced_sha256.empty() ? sha256_hex(bytes) : announced_sha256);
    cut = cut_download_after;
    cut_status = cut_download_status;
    chunk_bytes = std::max<size_t>(1, download_chunk_bytes);
  }
  const size_t end = cut >= 0 ? std::min(bytes.size(), static_cast<size_t>(cut)) : bytes.size();
  v1::DownloadModelChunk chunk = first;
  size_t sent = 0;
  do {  // at least the first chunk, even for no bytes
    const size_t n = std::min(chunk_bytes, end - sent);
    chunk.set_data(bytes.substr(sent, n));
    if (!writer->Write(chunk)) return grpc::Status::OK;
    sent += n;
    chunk = v1::DownloadModelChunk();
  } while (sent < end);
  return cut >= 0 ? cut_status : grpc::Status::OK;
}

grpc::Status FakeJobService::DeleteJob(grpc::ServerContext* ctx, const v1::DeleteJobRequest* req,
                                       v1::DeleteJobResponse*) {
  if (auto s = begin_call(ctx); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  v1::Job job;
  if (auto s = find_job(req->job_id(), &job); !s.ok()) return s;
  if (!is_final(job.state()))
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        req->job_id() + " is " + v1::JobState_Name(job.state()) +
                            ": only a job that has ended can be deleted (cancel it first)");
  jobs.erase(req->job_id());
  events.erase(req->job_id());
  newest_first.erase(std::remove(newest_first.begin(), newest_first.end(), req->job_id()), newest_first.end());
  record_.deleted.push_back(req->job_id());
  return grpc::Status::OK;
}

FakeCoordinator::FakeCoordinator() {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(&service);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) throw std::runtime_error("cannot start the fake coordinator");
}

FakeCoordinator::~FakeCoordinator() {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
}

std::string unused_address() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("cannot find a free port");
  close(fd);
  return "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
}

}  // namespace prelude::client::testing
