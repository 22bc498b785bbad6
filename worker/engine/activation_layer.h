// The rectifier family f(y) = max(0, y) + a * min(0, y).
//
//  - RELU (a = 0) and LEAKY_RELU (a fixed) run on oneDNN's eltwise ReLU, whose
//    `alpha` is exactly that negative slope; nothing is learned.
//  - PRELU_SHARED (one learned a per layer) and PRELU_CHANNELWISE (one learned a
//    per channel, or per output unit after a fully connected layer) run on oneDNN's
//    PReLU primitive. dE/da_i = sum over y_i < 0 of dE/df * y_i.
//
// oneDNN's PReLU with a single broadcast weight ({1,1,1,1}) falls to a reference
// kernel about 70x slower, so the shared slope is expanded to a per-channel vector
// for the primitive and its per-channel gradient is summed back into the scalar.
#pragma once

#include <vector>

#include "engine/layer.h"

namespace prelude {

enum class ActKind { kRelu, kLeakyRelu, kPreluShared, kPreluChannelwise };

const char* act_kind_name(ActKind kind);

class ActivationLayer : public Layer {
 public:
  // `alpha` is the fixed slope (RELU: 0) or the initial learned slope.
  ActivationLayer(std::string name, ActKind kind, double alpha)
      : Layer(std::move(name)), kind_(kind), alpha_(alpha) {}

  const char* type() const override { return act_kind_name(kind_); }
  dnnl::memory::desc setup(const dnnl::memory::desc& src_md, ParamStore& params) override;
  void forward() override;
  void backward() override;

  ActKind kind() const { return kind_; }
  bool learned() const { return kind_ == ActKind::kPreluShared || kind_ == ActKind::kPreluChannelwise; }
  // The slope at initialisation (what Kaiming's (1 + a^2) uses).
  double initial_slope() const { return alpha_; }
  // The learned slope parameter (nullptr for RELU / LEAKY_RELU).
  Param* slope() const { return slope_; }
  // Current slope values: one for shared, one per channel for channel-wise, the fixed one otherwise.
  std::vector<float> slopes() const;

 private:
  ActKind kind_;
  double alpha_;
  int64_t channels_ = 0;
  Param* slope_ = nullptr;
  // eltwise (fixed slope)
  dnnl::eltwise_forward eltwise_fwd_;
  dnnl::eltwise_backward eltwise_bwd_;
  // prelu (learned slope)
  dnnl::prelu_forward prelu_fwd_;
  dnnl::prelu_backward prelu_bwd_;
  dnnl::memory::desc weights_md_;
  // Channel-shared only: the scalar expanded to all channels, and its per-channel gradient.
  dnnl::memory expanded_w_, expanded_dw_;
};

}  // namespace prelude
