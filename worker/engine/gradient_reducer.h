// Averages a network's gradients over the ranks of a data-parallel job, as Horovod
// and PyTorch's DistributedDataParallel do.
//
// Either one fused allreduce over the whole gradient arena once backward returns, or
// the arena split into buckets at parameter boundaries: backward finishes the last
// layers' gradients first, so each bucket's allreduce is started (non-blocking) as
// soon as its gradients are final and runs while backward computes the earlier
// layers'; all are awaited before the optimizer step. Both give the same numbers.
//
// Either in float32, or with bf16 on the wire (as Horovod's fp16 compression): each
// bucket (or the whole arena) rounded into a bf16 arena of the reducer's, summed in
// bf16, and the average turned back into the float32 gradients. Alone, no conversion.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/comm.h"

namespace prelude {

class Network;
class ParamStore;

// A contiguous range of the gradient arena, in floats, reduced as one message.
struct Bucket {
  size_t offset = 0, size = 0;
};

// Splits the arena into buckets of about `bucket_bytes` at parameter boundaries,
// from the last parameter to the first (the order backward finishes them); the
// same on every rank.
std::vector<Bucket> make_buckets(const ParamStore& params, size_t bucket_bytes);

// The number format gradients cross the network in (training.dataParallel.reducePrecision).
enum class ReducePrecision { kFp32, kBf16 };

class GradientReducer {
 public:
  // Plans the reduction of `params`' gradient arena over `comm`'s ranks: buckets of
  // about `bucket_bytes`, or (0) one fused allreduce, in `precision`. Every rank
  // plans alike.
  GradientReducer(Communicator& comm, const ParamStore& params, size_t bucket_bytes,
                  ReducePrecision precision = ReducePrecision::kFp32);

  // The backward pass of `net` (whose parameters the plan was made for); when it
  // returns, every gradient (weights, biases, PReLU slopes) is the ranks' average.
  // Alone, just the backward pass.
  void backward_and_reduce(Network& net);

  // Time spent reducing so far (starting, and waiting for, the allreduces); 0 alone.
  double seconds() const { return seconds_; }
  // Bytes each rank reduces per step: the whole arena (2 bytes a value in bf16); 0 alone.
  double bytes_per_step() const;
  // The plan: empty for one fused allreduce (and alone).
  const std::vector<Bucket>& buckets() const { return buckets_; }

 private:
  void fused(Network& net);
  void bucketed(Network& net);
  // Starts bucket `b`'s average in this reducer's precision.
  Communicator::Pending start(float* grads, const Bucket& b);

  Communicator& comm_;
  size_t total_floats_;
  std::vector<Bucket> buckets_;
  // In bf16: what crosses the network, laid out as the gradient arena (a bucket's
  // values at its offset), so buckets in flight never share values. Empty in fp32.
  std::vector<uint16_t> wire_;
  double seconds_ = 0;
};

}  // namespace prelude
