#include "engine/comm.h"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <stdexcept>
#include <thread>

#include "engine/bf16_convert.h"
#include "engine/memory_budget.h"

namespace prelude {

namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw std::runtime_error(std::string(what) + " failed: " + std::string(msg, len));
}

bool started_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_RANK");
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// Marks this rank as waiting in a collective for as long as it lives (two clock
// reads and a few relaxed stores per collective: nothing next to the call itself).
class CollectiveScope {
 public:
  CollectiveScope(Communicator& c, const char* what) : a_(c.activity_) {
    a_.waiting_in.store(what, std::memory_order_relaxed);
    a_.waiting_since_ns.store(steady_ns(), std::memory_order_release);
  }
  ~CollectiveScope() {
    a_.last_done_ns.store(steady_ns(), std::memory_order_relaxed);
    a_.done.fetch_add(1, std::memory_order_relaxed);
    a_.waiting_since_ns.store(0, std::memory_order_release);
  }

 private:
  Communicator::Activity& a_;
};

struct Communicator::Pending::Impl {
  MPI_Request request = MPI_REQUEST_NULL;
  float* data = nullptr;
  uint16_t* wire = nullptr;  // bf16 on the wire: the sum lands here, not in data
  size_t n = 0;
};

namespace {

// The bf16 sum as an MPI operation: MPI calls it with slices of two ranks' (or
// partial sums') bf16 values. Commutative (one float32 addition per element, then
// one rounding), so MPI may combine in any order and still hand every rank the same
// bits it computed once.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  bf16_add(static_cast<const uint16_t*>(in), static_cast<uint16_t*>(inout), static_cast<size_t>(*len));
}

// A 16-bit datatype and the sum over it, made once MPI runs (never freed: they live
// as long as the world, and MPI_Finalize releases them).
struct Bf16Mpi {
  MPI_Datatype type = MPI_DATATYPE_NULL;
  MPI_Op sum = MPI_OP_NULL;
};
const Bf16Mpi& bf16_mpi() {
  static const Bf16Mpi m = [] {
    Bf16Mpi b;
    check(MPI_Type_contiguous(2, MPI_BYTE, &b.type), "MPI_Type_contiguous");
    check(MPI_Type_commit(&b.type), "MPI_Type_commit");
    check(MPI_Op_create(bf16_sum, /*commute=*/1, &b.sum), "MPI_Op_create");
    return b;
  }();
  return m;
}

}  // namespace

Communicator::Pending::Pending() : impl_(std::make_unique<Impl>()) {}
Communicator::Pending::Pending(Pending&&) noexcept = default;
Communicator::Pending::~Pending() = default;

Communicator& Communicator::world(bool force_mpi) {
  static Communicator* w = [force_mpi] {
    auto* c = new Communicator();
    if (!force_mpi && !started_by_mpirun()) return c;
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    std::atexit(finalize_at_exit);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size_);
    c->mpi_ = true;
    // The ranks that share this host share its memory (engine/memory_budget.h).
    MPI_Comm host = MPI_COMM_NULL;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank_, MPI_INFO_NULL, &host) == MPI_SUCCESS &&
        host != MPI_COMM_NULL) {
      int on_host = 1;
      MPI_Comm_size(host, &on_host);
      set_ranks_on_host(on_host);
      MPI_Comm_free(&host);
    }
    return c;
  }();
  return *w;
}

Communicator& Communicator::single_process() {
  static Communicator alone;
  return alone;
}

void Communicator::broadcast(float* data, size_t n, int root) {
  if (!mpi_ || size_ == 1) return;
  CollectiveScope scope(*this, "MPI_Bcast");
  check(MPI_Bcast(data, static_cast<int>(n), MPI_FLOAT, root, MPI_COMM_WORLD), "MPI_Bcast");
}

void Communicator::broadcast_bytes(std::string* bytes, int root) {
  if (!mpi_ || size_ == 1) return;
  CollectiveScope scope(*this, "MPI_Bcast");
  uint64_t len = bytes->size();
  check(MPI_Bcast(&len, 1, MPI_UINT64_T, root, MPI_COMM_WORLD), "MPI_Bcast");
  bytes->resize(len);
  check(MPI_Bcast(bytes->data(), static_cast<int>(len), MPI_CHAR, root, MPI_COMM_WORLD), "MPI_Bcast");
}

std::vector<std::string> Communicator::gather_bytes(const std::string& mine, int root) {
  if (!mpi_ || size_ == 1) return {mine};
  CollectiveScope scope(*this, "MPI_Gatherv");
  const int len = static_cast<int>(mine.size());
  std::vector<int> lens(rank_ == root ? size_ : 0), offsets(lens.size());
  check(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, root, MPI_COMM_WORLD), "MPI_Gather");
  std::string all;
  if (rank_ == root) {
    size_t total = 0;
    for (int r = 0; r < size_; ++r) {
      if (total + static_cast<size_t>(lens[r]) > static_cast<size_t>(std::numeric_limits<int>::max()))
        throw std::runtime_error("MPI_Gatherv: the ranks' bytes add up to more than 2 GiB");
      offsets[r] = static_cast<int>(total);
      total += static_cast<size_t>(lens[r]);
    }
    all.resize(total);
  }
  check(MPI_Gatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(), MPI_CHAR, root,
                    MPI_COMM_WORLD),
        "MPI_Gatherv");
  if (rank_ != root) return {};
  std::vector<std::string> out;
  out.reserve(size_);
  for (int r = 0; r < size_; ++r) out.push_back(all.substr(offsets[r], lens[r]));
  return out;
}

void Communicator::broadcast_bytes_idle(std::string* bytes, int root, int poll_ms, bool watched) {
  if (!mpi_ || size_ == 1) return;
  std::optional<CollectiveScope> scope;
  if (watched) scope.emplace(*this, "MPI_Ibcast (the pool's next job)");
  uint64_t len = bytes->size();
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Ibcast(&len, 1, MPI_UINT64_T, root, MPI_COMM_WORLD, &request), "MPI_Ibcast");
  for (int done = 0;;) {
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
  bytes->resize(len);
  check(MPI_Bcast(bytes->data(), static_cast<int>(len), MPI_CHAR, root, MPI_COMM_WORLD), "MPI_Bcast");
}

void Communicator::barrier_idle(int poll_ms) {
  if (!mpi_ || size_ == 1) return;
  CollectiveScope scope(*this, "MPI_Ibarrier (the pool's roll call between jobs)");
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Ibarrier(MPI_COMM_WORLD, &request), "MPI_Ibarrier");
  for (int done = 0;;) {
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
}

void Communicator::allreduce_sum(float* data, size_t n) {
  if (!mpi_ || size_ == 1) return;
  bytes_reduced_ += n * sizeof(float);
  CollectiveScope scope(*this, "MPI_Allreduce");
  check(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
        "MPI_Allreduce");
}

void Communicator::allreduce_sum(double* data, size_t n) {
  if (!mpi_ || size_ == 1) return;
  bytes_reduced_ += n * sizeof(double);
  CollectiveScope scope(*this, "MPI_Allreduce");
  check(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
        "MPI_Allreduce");
}

void Communicator::allreduce_mean(float* data, size_t n) {
  if (!mpi_ || size_ == 1) return;
  allreduce_sum(data, n);
  const float inv = 1.0f / static_cast<float>(size_);
  for (size_t i = 0; i < n; ++i) data[i] *= inv;
}

Communicator::Pending Communicator::start_allreduce_mean(float* data, size_t n) {
  Pending p;
  p.impl_->data = data;
  p.impl_->n = n;
  if (!mpi_ || size_ == 1) return p;
  bytes_reduced_ += n * sizeof(float);
  check(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                       &p.impl_->request),
        "MPI_Iallreduce");
  return p;
}

void Communicator::wait(Pending& p) {
  if (!mpi_ || size_ == 1 || p.impl_->request == MPI_REQUEST_NULL) return;
  CollectiveScope scope(*this, "MPI_Wait (a gradient bucket's allreduce)");
  check(MPI_Wait(&p.impl_->request, MPI_STATUS_IGNORE), "MPI_Wait");
  const float inv = 1.0f / static_cast<float>(size_);
  if (p.impl_->wire) return bf16_to_f32(p.impl_->wire, p.impl_->data, p.impl_->n, inv);
  for (size_t i = 0; i < p.impl_->n; ++i) p.impl_->data[i] *= inv;
}

void Communicator::allreduce_mean_bf16(float* data, uint16_t* wire, size_t n) {
  if (!mpi_ || size_ == 1) return;
  const Bf16Mpi& b = bf16_mpi();
  f32_to_bf16(data, wire, n);
  bytes_reduced_ += n * sizeof(uint16_t);
  {
    CollectiveScope scope(*this, "MPI_Allreduce");
    check(MPI_Allreduce(MPI_IN_PLACE, wire, static_cast<int>(n), b.type, b.sum, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  bf16_to_f32(wire, data, n, 1.0f / static_cast<float>(size_));
}

Communicator::Pending Communicator::start_allreduce_mean_bf16(float* data, uint16_t* wire, size_t n) {
  Pending p;
  p.impl_->data = data;
  p.impl_->wire = wire;
  p.impl_->n = n;
  if (!mpi_ || size_ == 1) return p;
  const Bf16Mpi& b = bf16_mpi();
  f32_to_bf16(data, wire, n);
  bytes_reduced_ += n * sizeof(uint16_t);
  check(MPI_Iallreduce(MPI_IN_PLACE, wire, static_cast<int>(n), b.type, b.sum, MPI_COMM_WORLD, &p.impl_->request),
        "MPI_Iallreduce");
  return p;
}

bool Communicator::all_equal(uint64_t checksum) {
  if (!mpi_ || size_ == 1) return true;
  // min and max in one call: a checksum and its complement, both minimised.
  uint64_t v[2] = {checksum, ~checksum};
  CollectiveScope scope(*this, "MPI_Allreduce");
  check(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
  return v[0] == checksum && ~v[1] == checksum;
}

void Communicator::abort(const std::string& message, int code) {
  std::fprintf(stderr, "rank %d: %s\n", rank_, message.c_str());
  std::fflush(stderr);
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

uint64_t checksum_bytes(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

}  // namespace prelude
