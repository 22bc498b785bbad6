// SGD with momentum and weight decay (PyTorch's form), and learning-rate schedules.
//
//   v <- momentum * v + (g + decay * w);   w <- w - lr * v
//
// PReLU slopes get no weight decay (decay pulls a towards 0 and turns PReLU back
// into ReLU) unless `decay_slopes` is set, for ablations.
//
// The update runs over the whole parameter arena at once, split among the OpenMP
// threads, with a kernel compiled for each ISA we know (AVX-512, AVX2, the x86-64
// baseline) and the widest this CPU runs chosen at startup (engine/isa_dispatch.h).
// Every kernel does the same float operations per element in the same order (no FMA
// contraction: this file is built with -ffp-contract=off), so results are
// bit-identical whatever the ISA or the number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/isa_dispatch.h"
#include "engine/params.h"

namespace prelude {

struct SgdOptions {
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool decay_slopes = false;
};

class Sgd {
 public:
  Sgd(ParamStore& params, const SgdOptions& opt) : params_(params), opt_(opt) {}
  void step(double lr);

 private:
  ParamStore& params_;
  SgdOptions opt_;
};

// One compiled form of the elementwise update over n floats:
//   v[i] = momentum * v[i] + g[i] + decay * w[i];   w[i] -= lr * v[i]
using SgdKernel = void (*)(float* w, const float* g, float* v, size_t n, float lr, float momentum, float decay);
using SgdKernelVariant = IsaVariant<SgdKernel>;  // .isa: "avx512f", "avx2" or "baseline"
// The kernels this CPU can run, widest first; Sgd::step uses the first. For tests
// (each must match a scalar reference bit for bit) and the benchmark.
const std::vector<SgdKernelVariant>& sgd_kernels();

enum class LrScheduleKind { kConstant, kStep, kCosine };

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::kConstant;
  double base_lr = 0.01;
  int64_t step_every = 1;  // kStep: optimizer steps between decays
  double gamma = 0.1;      // kStep
  double min_lr = 0;       // kCosine
  int64_t total_steps = 1; // kCosine

  // Learning rate for the optimizer step with 0-based index `step`.
  double at(int64_t step) const;
};

}  // namespace prelude
