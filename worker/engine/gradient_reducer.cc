#include "engine/gradient_reducer.h"

#include <algorithm>
#include <chrono>

#include "engine/comm.h"
#include "engine/network.h"
#include "engine/params.h"

namespace prelude {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

std::vector<Bucket> make_buckets(const ParamStore& params, size_t bucket_bytes) {
  std::vector<Bucket> out;
  const auto& ps = params.params();
  const size_t target = std::max<size_t>(1, bucket_bytes / sizeof(float));
  Bucket cur;
  for (size_t i = ps.size(); i-- > 0;) {
    // Parameters are contiguous in registration order; walking backwards, each one
    // extends the current bucket downwards.
    cur.offset = ps[i]->offset;
    cur.size += ps[i]->size;
    if (cur.size >= target) {
      out.push_back(cur);
      cur = Bucket();
    }
  }
  if (cur.size > 0) out.push_back(cur);
  return out;
}

GradientReducer::GradientReducer(Communicator& comm, const ParamStore& params, size_t bucket_bytes)
    : comm_(comm), total_floats_(params.total_floats()) {
  // Alone there is nothing to overlap: no plan.
  if (comm_.size() > 1 && bucket_bytes > 0) buckets_ = make_buckets(params, bucket_bytes);
}

double GradientReducer::bytes_per_step() const {
  return comm_.size() > 1 ? static_cast<double>(total_floats_ * sizeof(float)) : 0.0;
}

void GradientReducer::backward_and_reduce(Network& net) {
  // Alone, the gradients already are the average: no reduction to start or time.
  if (comm_.size() == 1) return net.backward();
  if (buckets_.empty()) return fused(net);
  bucketed(net);
}

void GradientReducer::fused(Network& net) {
  net.backward();
  const auto t0 = Clock::now();
  comm_.allreduce_mean(net.params().grads(), total_floats_);
  seconds_ += seconds_since(t0);
}

void GradientReducer::bucketed(Network& net) {
  float* grads = net.params().grads();
  std::vector<Communicator::Pending> pending;
  size_t next = 0;
  // Only the time spent starting buckets counts while backward runs, not backward's own.
  double started = 0;
  net.backward([&](size_t first_final_offset) {
    const auto t0 = Clock::now();
    for (; next < buckets_.size() && buckets_[next].offset >= first_final_offset; ++next)
      pending.push_back(comm_.start_allreduce_mean(grads + buckets_[next].offset, buckets_[next].size));
    started += seconds_since(t0);
  });
  const auto t0 = Clock::now();
  for (; next < buckets_.size(); ++next)  // every bucket is final once backward returns
    pending.push_back(comm_.start_allreduce_mean(grads + buckets_[next].offset, buckets_[next].size));
  for (auto& p : pending) comm_.wait(p);
  seconds_ += started + seconds_since(t0);
}

}  // namespace prelude
