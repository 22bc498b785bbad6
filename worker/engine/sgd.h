// SGD with momentum and weight decay (PyTorch's form), and learning-rate schedules.
//
//   v <- momentum * v + (g + decay * w);   w <- w - lr * v
//
// PReLU slopes get no weight decay (decay pulls a towards 0 and turns PReLU back
// into ReLU) unless `decay_slopes` is set, for ablations.
#pragma once

#include <cstdint>

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
