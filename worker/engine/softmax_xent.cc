#include "engine/softmax_xent.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace prelude {

using namespace dnnl;

void SoftmaxCrossEntropy::setup(const memory::desc& logits_md) {
  const auto d = logits_md.dims();
  if (d.size() != 2 || logits_md != md_of(d, tag::nc))
    throw std::logic_error("softmax cross-entropy needs plain {N, K} logits");
  n_ = d[0];
  k_ = d[1];
  auto& eng = Context::get().engine;
  logsoftmax_forward::desc fd(prop_kind::forward_inference, logits_md, 1);
  logsoftmax_forward::primitive_desc pd(fd, eng);
  fwd_ = logsoftmax_forward(pd);
  log_probs_ = memory(pd.dst_desc(), eng);
}

LossResult SoftmaxCrossEntropy::compute(const int32_t* labels, int count, bool write_grad,
                                        double grad_denominator) {
  auto& s = Context::get().stream;
  fwd_.execute(s, {{DNNL_ARG_SRC, logits_->data}, {DNNL_ARG_DST, log_probs_}});
  s.wait();
  const auto* lp = static_cast<const float*>(log_probs_.get_data_handle());
  auto* diff = static_cast<float*>(logits_->diff.get_data_handle());
  LossResult r;
  r.count = count;
  const float inv = static_cast<float>(1.0 / grad_denominator);
  for (int64_t i = 0; i < n_; ++i) {
    const float* row = lp + i * k_;
    if (i >= count) {
      if (write_grad) std::memset(diff + i * k_, 0, k_ * sizeof(float));
      continue;
    }
    const int32_t y = labels[i];
    r.loss_sum -= row[y];
    int64_t best = 0;
    for (int64_t j = 1; j < k_; ++j)
      if (row[j] > row[best]) best = j;
    r.correct += best == y;
    if (write_grad)
      for (int64_t j = 0; j < k_; ++j)
        diff[i * k_ + j] = (std::exp(row[j]) - (j == y ? 1.f : 0.f)) * inv;
  }
  return r;
}

}  // namespace prelude
