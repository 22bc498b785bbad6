// Softmax cross-entropy over logits {N, K}: oneDNN's log-softmax forward, and the
// closed-form gradient (softmax(y) - onehot) / N written into the logits' diff.
#pragma once

#include <cstdint>

#include "engine/layer.h"

namespace prelude {

struct LossResult {
  double loss_sum = 0;  // sum over the counted rows of -log p(label)
  int64_t correct = 0;  // rows whose arg-max is the label
  int64_t count = 0;
};

class SoftmaxCrossEntropy {
 public:
  void setup(const dnnl::memory::desc& logits_md);
  void bind(Blob* logits) { logits_ = logits; }
  // Uses the first `count` rows (the rest are batch padding and get zero gradient).
  // With `write_grad`, logits.diff = (softmax - onehot) / grad_denominator.
  LossResult compute(const int32_t* labels, int count, bool write_grad, double grad_denominator);

 private:
  Blob* logits_ = nullptr;
  int64_t n_ = 0, k_ = 0;
  dnnl::memory log_probs_;
  dnnl::logsoftmax_forward fwd_;
};

}  // namespace prelude
