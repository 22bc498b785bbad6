// `prelude-coordinator --spawn-workers N`: a local worker pool of N MPI ranks,
// started with mpirun as a child process group and restarted (with back-off) if
// it exits, so one command gives a working service on one machine.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/tls.h"

namespace prelude::server {

struct SpawnOptions {
  int ranks = 2;
  int threads_per_rank = 1;
  std::string worker_binary;  // prelude-worker
  std::string coordinator;    // address the pool connects to
  std::string token_file;     // empty: none
  std::string data_root;
  double stall_timeout_seconds = 0;  // > 0: passed as serve --stall-timeout
  prelude::ClientTls tls;     // how the pool connects (TLS off: plain text)
};

// The command that starts the pool: the worker alone for one rank, else
// mpirun --oversubscribe --bind-to none -np N -x OMP_NUM_THREADS=T (plus
// --allow-run-as-root as root) around `prelude-worker serve ...` (with the TLS flags
// of `tls` when it is on).
std::vector<std::string> pool_command(const SpawnOptions& options, bool as_root);

class PoolSpawner {
 public:
  explicit PoolSpawner(SpawnOptions options);
  // Terminates the pool's process group (SIGTERM, then SIGKILL after 5 s).
  ~PoolSpawner();

 private:
  void supervise();
  pid_t start();

  SpawnOptions options_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  pid_t child_ = -1;
  std::thread thread_;
};

// The prelude-worker next to this executable (installed side by side), or in the
// build tree's worker/ directory.
std::string default_worker_binary();

}  // namespace prelude::server
