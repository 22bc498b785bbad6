#include "server/slurm_dispatcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/errors.h"
#include "common/job_state.h"
#include "common/status.h"
#include "server/job_manager.h"

namespace prelude::server {

namespace v1 = prelude::v1;

// ---------------------------------------------------------------- commands

CommandResult ExecSlurmCli::run(const std::vector<std::string>& argv) {
  CommandResult result;
  if (argv.empty()) return {-1, "", "no command"};
  const std::string program = bin_dir_.empty() ? argv[0] : bin_dir_ + "/" + argv[0];
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return {-1, "", std::string("pipe: ") + std::strerror(errno)};
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]), close(out[1]);
    return {-1, "", std::string("pipe: ") + std::strerror(errno)};
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    const int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // the coordinator blocks SIGINT/SIGTERM for sigwait
    execvp(program.c_str(), args.data());
    const char* why = strerror(errno);
    (void)!write(2, "cannot run it: ", 15);
    (void)!write(2, why, strlen(why));
    _exit(127);
  }
  close(out[1]), close(err[1]);
  if (pid < 0) {
    close(out[0]), close(err[0]);
    return {-1, "", std::string("fork: ") + std::strerror(errno)};
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  bool timed_out = false;
  while (open_fds > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    const int n = poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      const ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        if (sinks[i]->size() < (1 << 20)) sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  if (timed_out) kill(pid, SIGKILL);
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    result.exit_code = -1;
    result.err = argv[0] + ": no answer within " + std::to_string(timeout_.count() / 1000) + " s";
  } else {
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return result;
}

// ---------------------------------------------------------------- scripts

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

// The first line, for messages.
std::string first_line(const std::string& s) {
  const std::string t = trimmed(s);
  return t.substr(0, t.find('\n'));
}

// `key=value` out of scontrol's "Key=Value Key=Value" lines; empty when absent.
std::string scontrol_field(const std::string& text, const std::string& key) {
  for (size_t at = text.find(key + "="); at != std::string::npos; at = text.find(key + "=", at + 1)) {
    if (at > 0 && !std::isspace(static_cast<unsigned char>(text[at - 1])))
      continue;  // "SubmitReason=" is not "Reason="
    const size_t begin = at + key.size() + 1;
    size_t end = begin;
    while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    return text.substr(begin, end - begin);
  }
  return "";
}

// States of a Slurm job that has ended (its tasks are gone or going).
bool slurm_state_ended(const std::string& state) {
  static const std::set<std::string> ended = {"COMPLETED",     "CANCELLED",    "FAILED",    "TIMEOUT",
                                              "NODE_FAIL",     "PREEMPTED",    "BOOT_FAIL", "DEADLINE",
                                              "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED"};
  return ended.count(state) > 0;
}

// How long the worker of a job that ended by itself has to leave before its batch
// job is cancelled.
constexpr std::chrono::seconds kFinishGrace{30};

// sbatch's refusals that no retry mends: the job as asked can never run here.
bool permanent_refusal(const std::string& err) {
  static const char* const kinds[] = {"Requested node configuration is not available",
                                      "Invalid account",
                                      "Invalid partition",
                                      "invalid partition",
                                      "More processors requested than permitted",
                                      "Invalid qos",
                                      "Job violates accounting/QOS policy",
                                      "Invalid generic resource"};
  return std::any_of(std::begin(kinds), std::end(kinds),
                     [&](const char* k) { return err.find(k) != std::string::npos; });
}

}  // namespace

std::string shell_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string sbatch_script(const v1::Job& job, const SlurmOptions& o) {
  const auto& r = job.spec().resources();
  const int ranks = r.has_ranks() ? r.ranks() : 1;
  const int threads = r.has_threads_per_rank() ? r.threads_per_rank() : 1;
  const std::string id = job.job_id();  // job-NNNNNN: no characters a script would mind
  std::string s = "#!/bin/sh\n";
  s += "# Prelude job " + id + ", written by prelude-coordinator --slurm: its ranks serve exactly that job.\n";
  s += "#SBATCH --job-name=prelude-" + id + "\n";
  s += "#SBATCH --ntasks=" + std::to_string(ranks) + "\n";
  s += "#SBATCH --cpus-per-task=" + std::to_string(threads) + "\n";
  if (!o.script_dir.empty()) s += "#SBATCH --output=" + o.script_dir + "/" + id + "-%j.out\n";
  if (!o.time_limit.empty()) s += "#SBATCH --time=" + o.time_limit + "\n";
  s += "export OMP_NUM_THREADS=" + std::to_string(threads) + "\n";
  std::string cmd = "exec srun --mpi=pmix " + shell_quoted(o.worker_binary) + " serve --coordinator " +
                    shell_quoted(o.coordinator) + " --job " + id + " --threads " + std::to_string(threads);
  if (!o.token_file.empty()) cmd += " --token-file " + shell_quoted(o.token_file);
  if (!o.data_root.empty()) cmd += " --data-root " + shell_quoted(o.data_root);
  for (const auto& arg : client_tls_args(o.tls)) cmd += " " + (arg.rfind("--", 0) == 0 ? arg : shell_quoted(arg));
  if (o.stall_timeout_seconds > 0)
    cmd += " --stall-timeout " + std::to_string(static_cast<long>(o.stall_timeout_seconds));
  return s + cmd + "\n";
}

// ---------------------------------------------------------------- the dispatcher

SlurmDispatcher::SlurmDispatcher(JobManager& jobs, SlurmCli& cli, SlurmOptions options)
    : jobs_(jobs), cli_(cli), options_(std::move(options)) {
  for (const auto& job : jobs_.slurm_attached()) {
    watched_[job.slurm_job_id()] = Watched{job.job_id(), false};
    log(job.job_id() + ": watching its Slurm job " + job.slurm_job_id() + " again (submitted before a restart)");
  }
}

SlurmDispatcher::~SlurmDispatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SlurmDispatcher::start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      try {
        poll_once();
      } catch (const std::exception& e) {
        log(std::string("a Slurm poll failed (retrying): ") + e.what());
      }
      lock.lock();
      cv_.wait_for(lock, options_.poll_interval, [this] { return stop_ || woken_; });
      woken_ = false;
    }
  });
}

void SlurmDispatcher::wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void SlurmDispatcher::log(const std::string& line) const {
  if (options_.log) options_.log(line);
}

void SlurmDispatcher::poll_once() {
  watch_all();
  submit_queued();
}

void SlurmDispatcher::scancel(const std::string& slurm_id) {
  const CommandResult r = cli_.run({"scancel", slurm_id});
  if (r.exit_code != 0)
    log("scancel " + slurm_id + ": " + first_line(r.err) + " (retrying)");
  else
    watched_[slurm_id].cancelled = true;
}

std::string SlurmDispatcher::end_reason(const std::string& slurm_id) {
  const CommandResult r = cli_.run({"scontrol", "show", "job", slurm_id});
  const std::string state = scontrol_field(r.out, "JobState");
  if (r.exit_code != 0 || state.empty()) return "no longer known to Slurm";
  std::string reason = state;
  const std::string why = scontrol_field(r.out, "Reason"), code = scontrol_field(r.out, "ExitCode");
  if (!why.empty() && why != "None") reason += ", reason " + why;
  if (!code.empty()) reason += ", exit code " + code;
  return reason;
}

void SlurmDispatcher::watch_all() {
  // Jobs the manager knows under Slurm that this round does not watch yet (none,
  // normally: submissions are added as they are made).
  for (const auto& job : jobs_.slurm_attached())
    if (!watched_.count(job.slurm_job_id())) watched_[job.slurm_job_id()] = Watched{job.job_id(), false};
  for (auto it = watched_.begin(); it != watched_.end();) {
    const std::string slurm_id = it->first, job_id = it->second.job_id;
    bool gone = false;  // the Prelude job was deleted
    v1::Job job;
    try {
      job = jobs_.get(job_id);
    } catch (const ServiceError&) {
      gone = true;
    }
    // Its Slurm job is no longer wanted: the job ended, was cancelled or has moved on.
    const bool unwanted = gone || is_final(job.state()) || job.cancel_requested() || job.slurm_job_id() != slurm_id;
    const CommandResult q = cli_.run({"squeue", "-h", "-j", slurm_id, "-o", "%i|%T|%r"});
    std::string state, reason;
    bool listed = false;
    if (q.exit_code == 0) {
      const std::string line = first_line(q.out);
      const size_t a = line.find('|'), b = line.find('|', a == std::string::npos ? a : a + 1);
      if (a != std::string::npos && b != std::string::npos && line.substr(0, a) == slurm_id) {
        listed = true;
        state = line.substr(a + 1, b - a - 1);
        reason = line.substr(b + 1);
      }
    } else if (q.err.find("Invalid job id") == std::string::npos) {
      // Slurm did not answer (slurmctld down or busy): nothing is known; next round.
      log("squeue -j " + slurm_id + ": " + first_line(q.err) + " (retrying)");
      ++it;
      continue;
    }
    const bool ended = !listed || slurm_state_ended(state);
    if (!ended) {
      // A job that ended by itself: its worker is on its way out.
      const bool finishing =
          !gone && (job.state() == v1::SUCCEEDED || job.state() == v1::FAILED) && job.slurm_job_id() == slurm_id;
      if (finishing && it->second.ended_at == std::chrono::steady_clock::time_point{})
        it->second.ended_at = std::chrono::steady_clock::now();
      const bool grace =
          finishing && (state == "COMPLETING" || std::chrono::steady_clock::now() - it->second.ended_at < kFinishGrace);
      if (unwanted && !grace) {
        if (!it->second.cancelled) {
          const char* why = gone                                                     ? " (the job was deleted)"
                            : job.state() == v1::CANCELLED || job.cancel_requested() ? " (the job was cancelled)"
                            : is_final(job.state())                                  ? " (the job has ended)"
                                                    : " (the job has another Slurm job)";
          log(job_id + ": scancel " + slurm_id + why);
          scancel(slurm_id);
        }
      } else if (unwanted) {
        // finishing: wait for it
      } else if (state == "PENDING") {
        jobs_.set_slurm_status(job_id, slurm_id, "Slurm: " + reason + " (Slurm job " + slurm_id + " is PENDING)");
      } else {
        jobs_.set_slurm_status(job_id, slurm_id, "Slurm job " + slurm_id + " is " + state + ": its worker is starting");
      }
      ++it;
      continue;
    }
    // Ended. A job still holding it (running, queued, or cancelled and waiting for its
    // pool) learns how; the manager ignores it when the job ended or moved on.
    if (!gone && !is_final(job.state()) && job.slurm_job_id() == slurm_id)
      jobs_.slurm_job_ended(job_id, slurm_id, end_reason(slurm_id));
    it = watched_.erase(it);
  }
}

void SlurmDispatcher::submit_queued() {
  size_t room = SIZE_MAX;
  if (options_.max_jobs > 0)
    room = watched_.size() >= static_cast<size_t>(options_.max_jobs) ? 0 : options_.max_jobs - watched_.size();
  size_t submitted = 0;
  for (const auto& job : jobs_.slurm_unsubmitted(SIZE_MAX)) {
    if (submitted == room) {  // the rest wait for room, and say so
      jobs_.set_slurm_status(job.job_id(), "",
                             "waiting to be submitted to Slurm: " + std::to_string(options_.max_jobs) +
                                 " batch jobs are in flight (--slurm-max-jobs)");
      continue;
    }
    if (!submit(job)) break;  // Slurm refuses for now: the others would be refused too
    ++submitted;
  }
}

bool SlurmDispatcher::submit(const v1::Job& job) {
  namespace fs = std::filesystem;
  const std::string path = (fs::path(options_.script_dir) / (job.job_id() + ".sbatch")).string();
  {
    std::ofstream out(path, std::ios::trunc);
    out << sbatch_script(job, options_);
    if (!out) {
      jobs_.slurm_submit_failed(job.job_id(), "cannot write its batch script " + path, false);
      return false;
    }
  }
  std::vector<std::string> argv = {"sbatch", "--parsable"};
  if (!options_.partition.empty()) argv.push_back("--partition=" + options_.partition);
  if (!options_.account.empty()) argv.push_back("--account=" + options_.account);
  argv.push_back(path);
  const CommandResult r = cli_.run(argv);
  // --parsable: "ID" or "ID;CLUSTER".
  const std::string out = first_line(r.out);
  const std::string slurm_id = out.substr(0, out.find(';'));
  const bool numeric = !slurm_id.empty() && std::all_of(slurm_id.begin(), slurm_id.end(), ::isdigit);
  if (r.exit_code != 0 || !numeric) {
    const std::string why =
        "sbatch: " +
        (r.err.empty() ? "exit code " + std::to_string(r.exit_code) + ", printed '" + out + "'" : first_line(r.err));
    const bool permanent = r.exit_code > 0 && permanent_refusal(r.err);
    log(job.job_id() + ": " + why + (permanent ? "" : " (retrying)"));
    jobs_.slurm_submit_failed(job.job_id(), why, permanent);
    return permanent;
  }
  ++submissions_;
  watched_[slurm_id] = Watched{job.job_id(), false};
  // Cancelled between the listing and now, or not recorded (the disk refused): the
  // next round's watch cancels the Slurm job, and the job, still queued, is submitted again.
  try {
    if (!jobs_.set_slurm_job(job.job_id(), slurm_id))
      log(job.job_id() + ": no longer queued; cancelling Slurm job " + slurm_id);
  } catch (const std::exception& e) {
    log(job.job_id() + ": cannot record Slurm job " + slurm_id + " (" + e.what() + "); cancelling it");
    return false;
  }
  return true;
}

}  // namespace prelude::server
