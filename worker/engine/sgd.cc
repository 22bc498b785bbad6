#include "engine/sgd.h"

#include <algorithm>
#include <cmath>

namespace prelude {

namespace {
void update(float* __restrict w, const float* __restrict g, float* __restrict v, size_t n, float lr,
            float momentum, float decay) {
  for (size_t i = 0; i < n; ++i) {
    v[i] = momentum * v[i] + g[i] + decay * w[i];
    w[i] -= lr * v[i];
  }
}
}  // namespace

void Sgd::step(double lr) {
  for (auto& p : params_.params()) {
    const bool decay = p->kind != ParamKind::kSlope || opt_.decay_slopes;
    update(p->value_ptr, p->grad_ptr, p->momentum_ptr, p->size, static_cast<float>(lr),
           static_cast<float>(opt_.momentum), decay ? static_cast<float>(opt_.weight_decay) : 0.f);
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
