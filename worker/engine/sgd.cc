#include "engine/sgd.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

namespace prelude {

namespace {
// The one definition of the per-element arithmetic; each wrapper below inlines it
// under its own target so the compiler vectorises it for that ISA. The order of
// operations is the serial code's: ((momentum * v) + g) + (decay * w), then w - lr * v.
__attribute__((always_inline)) inline void update_body(float* __restrict w, const float* __restrict g,
                                                       float* __restrict v, size_t n, float lr, float momentum,
                                                       float decay) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    v[i] = momentum * v[i] + g[i] + decay * w[i];
    w[i] -= lr * v[i];
  }
}

__attribute__((target("avx512f"))) void update_avx512(float* w, const float* g, float* v, size_t n, float lr,
                                                      float momentum, float decay) {
  update_body(w, g, v, n, lr, momentum, decay);
}
__attribute__((target("avx2"))) void update_avx2(float* w, const float* g, float* v, size_t n, float lr,
                                                 float momentum, float decay) {
  update_body(w, g, v, n, lr, momentum, decay);
}
void update_baseline(float* w, const float* g, float* v, size_t n, float lr, float momentum, float decay) {
  update_body(w, g, v, n, lr, momentum, decay);
}

// A stretch of the arena with one decay (the parameters are contiguous and in
// order, so consecutive ones with the same decay merge into one stretch).
struct Run {
  size_t begin, end;
  float decay;
};

// Below this many floats the update takes a few microseconds on one thread, less
// than waking the others would cost.
constexpr size_t kParallelMin = 1 << 15;
// Each thread's share starts on a 64-byte line, so no two threads write one line.
constexpr size_t kAlign = 16;
}  // namespace

const std::vector<SgdKernelVariant>& sgd_kernels() {
  static const std::vector<SgdKernelVariant> k = isa_variants<SgdKernel>(update_avx512, update_avx2, update_baseline);
  return k;
}

void Sgd::step(double lr) {
  const float decay = static_cast<float>(opt_.weight_decay);
  std::vector<Run> runs;
  for (auto& p : params_.params()) {
    if (p->size == 0) continue;
    const float d = p->kind != ParamKind::kSlope || opt_.decay_slopes ? decay : 0.f;
    if (!runs.empty() && runs.back().end == p->offset && runs.back().decay == d)
      runs.back().end += p->size;
    else
      runs.push_back({p->offset, p->offset + p->size, d});
  }
  if (runs.empty()) return;
  const size_t total = runs.back().end;
  float* w = params_.values();
  const float* g = params_.grads();
  float* v = params_.momentum();
  const SgdKernel kernel = sgd_kernels().front().fn;
  const float lr_f = static_cast<float>(lr), momentum = static_cast<float>(opt_.momentum);
  // Each thread takes one slice of the arena and runs the kernel over the parts of
  // the runs that fall in it: elementwise, so the split changes nothing in the result.
  const int threads = total < kParallelMin ? 1 : std::max(1, omp_get_max_threads());
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const size_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const size_t per = (total + nt - 1) / nt;
    const size_t lo = std::min(total, (t * per + kAlign - 1) / kAlign * kAlign);
    const size_t hi = t + 1 == nt ? total : std::min(total, ((t + 1) * per + kAlign - 1) / kAlign * kAlign);
    for (const Run& r : runs) {
      const size_t b = std::max(lo, r.begin), e = std::min(hi, r.end);
      if (b < e) kernel(w + b, g + b, v + b, e - b, lr_f, momentum, r.decay);
    }
  }
}

double LrSchedule::at(int64_t step) const {
  switch (kind) {
    case LrScheduleKind::kConstant:
      return base_lr;
    case LrScheduleKind::kStep:
      return base_lr * std::pow(gamma, static_cast<double>(step / std::max<int64_t>(1, step_every)));
    case LrScheduleKind::kCosine: {
      const double t = std::min(1.0, static_cast<double>(step) / std::max<int64_t>(1, total_steps));
      return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * t));
    }
  }
  return base_lr;
}

}  // namespace prelude
