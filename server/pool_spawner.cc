#include "server/pool_spawner.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

namespace prelude::server {

using namespace std::chrono_literals;

namespace {

void log(const std::string& line) { std::fprintf(stderr, "prelude-coordinator: %s\n", line.c_str()); }

std::string join(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

std::vector<std::string> pool_command(const SpawnOptions& o, bool as_root) {
  std::vector<std::string> cmd;
  if (o.ranks > 1) {
    cmd = {"mpirun"};
    if (as_root) cmd.push_back("--allow-run-as-root");
    cmd.insert(cmd.end(), {"--oversubscribe", "--bind-to", "none", "-np", std::to_string(o.ranks), "-x",
                           "OMP_NUM_THREADS=" + std::to_string(o.threads_per_rank)});
  }
  cmd.insert(cmd.end(), {o.worker_binary, "serve", "--coordinator", o.coordinator, "--data-root", o.data_root,
                         "--threads", std::to_string(o.threads_per_rank)});
  if (!o.token_file.empty()) cmd.insert(cmd.end(), {"--token-file", o.token_file});
  if (o.stall_timeout_seconds > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", o.stall_timeout_seconds);
    cmd.insert(cmd.end(), {"--stall-timeout", buf});
  }
  const auto tls = client_tls_args(o.tls);
  cmd.insert(cmd.end(), tls.begin(), tls.end());
  return cmd;
}

std::string default_worker_binary() {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "prelude-worker";
  std::string dir(self, n);
  dir = dir.substr(0, dir.rfind('/'));
  for (const std::string& candidate : {dir + "/prelude-worker", dir + "/../worker/prelude-worker"})
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  return "prelude-worker";  // from PATH
}

PoolSpawner::PoolSpawner(SpawnOptions options) : options_(std::move(options)) {
  thread_ = std::thread([this] { supervise(); });
}

PoolSpawner::~PoolSpawner() {
  pid_t child;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    child = child_;
  }
  stop_cv_.notify_all();
  if (child > 0) {
    kill(-child, SIGTERM);
    for (int i = 0; i < 50 && kill(-child, 0) == 0; ++i) std::this_thread::sleep_for(100ms);
    kill(-child, SIGKILL);
  }
  thread_.join();
}

pid_t PoolSpawner::start() {
  const auto cmd = pool_command(options_, geteuid() == 0);
  std::vector<char*> argv;
  for (const auto& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  log("starting a local pool of " + std::to_string(options_.ranks) + " rank(s): " + join(cmd));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // its own group: stopping the pool stops mpirun and every rank
    // The pool dies with its coordinator, even one killed by SIGKILL: mpirun gets
    // SIGTERM and ends its ranks (else it would register again beside the pool of
    // the next coordinator, or retry a dead address forever).
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);  // the coordinator died before prctl
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "prelude-coordinator: cannot start %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  if (pid > 0) setpgid(pid, pid);
  return pid;
}

void PoolSpawner::supervise() {
  for (int restarts = 0;; ++restarts) {
    const auto started = std::chrono::steady_clock::now();
    pid_t pid;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      pid = child_ = start();
      if (pid < 0) log(std::string("cannot fork the worker pool: ") + std::strerror(errno));
    }
    int status = 0;
    if (pid > 0) waitpid(pid, &status, 0);
    std::unique_lock<std::mutex> lock(mu_);
    child_ = -1;
    if (stopping_) return;
    const std::string how = WIFEXITED(status) ? "exited with code " + std::to_string(WEXITSTATUS(status))
                                              : "was killed by signal " + std::to_string(WTERMSIG(status));
    // A pool that ran for a while restarts at once; one that keeps dying backs off.
    if (std::chrono::steady_clock::now() - started > 60s) restarts = 0;
    const auto delay = std::min<std::chrono::milliseconds>(30s, 500ms * (1 << std::min(restarts, 6)));
    log("the local worker pool " + how + "; restarting it in " + std::to_string(delay.count()) + " ms");
    stop_cv_.wait_for(lock, delay, [&] { return stopping_; });
  }
}

}  // namespace prelude::server
