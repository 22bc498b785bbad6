// The process group a job trains on: this process alone, or an MPI world. With one
// process every collective returns at once without an MPI call, so the trainer has
// one code path whatever the number of ranks.
//
// Data-parallel training needs a handful of collectives: a broadcast of rank 0's
// initial state, an in-place average of the gradient arena (fused, or in buckets
// started while backward runs: see gradient_reducer.h; in float32 or bf16), small
// sums for loss/accuracy, and a checksum
// comparison that catches ranks drifting apart. mpi.h stays out of this header.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace prelude {

class Communicator {
 public:
  // The world of this process: MPI when started by mpirun (or when force_mpi),
  // else a single-process group that makes no MPI call at all. Initialised once
  // (MPI_THREAD_FUNNELED); MPI_Finalize runs at exit.
  static Communicator& world(bool force_mpi = false);
  // This process alone, whatever the world is (also on one rank of an MPI job, for a
  // reference run): size 1, and every collective a no-op that makes no MPI call. It
  // has no state that changes, so any number of runs may share it.
  static Communicator& single_process();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }

  void broadcast(float* data, size_t n, int root = 0);
  void broadcast_bytes(std::string* bytes, int root = 0);
  // Every rank's `mine`, at `root`, in rank order (empty on the other ranks). Every
  // rank must call it; each one's bytes must stay under 2 GiB.
  std::vector<std::string> gather_bytes(const std::string& mine, int root = 0);
  // The same, for a broadcast the other ranks may wait long for (a worker pool
  // waiting for its next job): they poll every `poll_ms` and sleep in between
  // instead of spinning a core in MPI's busy wait. Every rank must call this one.
  // `watched`: the wait counts in activity() (a pool whose ranks hear from the
  // root at bounded intervals).
  void broadcast_bytes_idle(std::string* bytes, int root = 0, int poll_ms = 20, bool watched = false);
  // A barrier waited for in the same sleeping poll, watched in activity(): a pool's
  // roll call between jobs (a broadcast alone completes at the root without its
  // receivers, so a stopped rank would go unnoticed while the pool is idle).
  void barrier_idle(int poll_ms = 20);
  void allreduce_sum(float* data, size_t n);
  void allreduce_sum(double* data, size_t n);
  // Sum, then scale by 1/size: the average over the ranks, in place.
  void allreduce_mean(float* data, size_t n);

  // A non-blocking average in flight (MPI_Iallreduce); complete it with wait().
  class Pending {
   public:
    Pending();
    Pending(Pending&&) noexcept;
    ~Pending();

   private:
    friend class Communicator;
    struct Impl;
    std::unique_ptr<Impl> impl_;
  };
  Pending start_allreduce_mean(float* data, size_t n);
  // Completes an average in flight: the average lands in its `data`.
  void wait(Pending& pending);

  // The average over the ranks with bf16 on the wire (engine/bf16_convert.h): `data`
  // rounded into `wire` (n values of the caller's, untouched until done), summed
  // with an MPI operation that adds in float32 and rounds back to bf16, then turned
  // back into float32 and scaled by 1/size into `data`. Half the bytes of the float
  // sum; every rank gets the same bits. Alone: nothing happens (`data` is the mean).
  void allreduce_mean_bf16(float* data, uint16_t* wire, size_t n);
  Pending start_allreduce_mean_bf16(float* data, uint16_t* wire, size_t n);

  // True when every rank passed the same checksum (one small collective).
  bool all_equal(uint64_t checksum);

  // Ends the job on every rank: prints "rank R: <message>" and calls MPI_Abort(code).
  [[noreturn]] void abort(const std::string& message, int code);

  // Bytes this rank has put into allreduces so far (none alone).
  uint64_t bytes_reduced() const { return bytes_reduced_; }

  // Where this rank is in its collectives, for a stall watchdog on another thread
  // (worker/stall_watchdog.h, after Horovod's stall inspector): the collective it
  // waits in now and since when, and when it last left one. Only collectives of a
  // job count: broadcast_bytes_idle only when asked to. Times are
  // steady_clock nanoseconds; 0 means never / not waiting.
  struct Activity {
    std::atomic<int64_t> waiting_since_ns{0};
    std::atomic<const char*> waiting_in{nullptr};  // a static name: "MPI_Allreduce", ...
    std::atomic<int64_t> last_done_ns{0};
    std::atomic<uint64_t> done{0};                // collectives completed
  };
  const Activity& activity() const { return activity_; }

 private:
  friend class CollectiveScope;
  Communicator() = default;
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
  uint64_t bytes_reduced_ = 0;
  Activity activity_;
};

// 64-bit FNV-1a of raw bytes, for comparing parameters across ranks.
uint64_t checksum_bytes(const void* data, size_t n);

}  // namespace prelude
