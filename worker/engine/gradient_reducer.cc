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

GradientReducer::GradientReducer(Communicator& comm, const ParamStore& params, size_t bucket_bytes,
                                 ReducePrecision precision)
    : comm_(comm), total_floats_(params.total_floats()) {
  // Alone there is nothing to overlap or convert: no plan, no bf16 arena.
  if (comm_.size() == 1) return;
  if (bucket_bytes > 0) buckets_ = make_buckets(params, bucket_bytes);
  if (precision == ReducePrecision::kBf16) wire_.resize(total_floats_);
}

double GradientReducer::bytes_per_step() const {
  if (comm_.size() == 1) return 0.0;
  return static_cast<double>(total_floats_ * (wire_.empty() ? sizeof(float) : sizeof(uint16_t)));
}

Communicator::Pending GradientReducer::start(float* grads, const Bucket& b) {
  if (wire_.empty()) return comm_.start_allreduce_mean(grads + b.offset, b.size);
  return comm_.start_allreduce_mean_bf16(grads + b.offset, wire_.data() + b.offset, b.size);
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
  if (wire_.empty())
    comm_.allreduce_mean(net.params().grads(), total_floats_);
  else
    comm_.allreduce_mean_bf16(net.params().grads(), wire_.data(), total_floats_);
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
      pending.push_back(start(grads, buckets_[next]));
    started += seconds_since(t0);
  });
  const auto t0 = Clock::now();
  for (; next < buckets_.size(); ++next)  // every bucket is final once backward returns
    pending.push_back(start(grads, buckets_[next]));
  for (auto& p : pending) comm_.wait(p);
  seconds_ += started + seconds_since(t0);
}

}  // namespace prelude
