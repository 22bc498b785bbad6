// The common part of the layers with weights and a bias (convolution and inner
// product): parameter registration, layout edges, and the forward/backward
// sequence. A subclass's setup() builds its three primitive descriptors and calls
// finish_setup(); everything else is shared.
#pragma once

#include "engine/layer.h"

namespace prelude {

class WeightLayer : public Layer {
 public:
  using Layer::Layer;

  bool is_weight_layer() const override { return true; }
  void forward() override;
  // Weight and bias gradients first (into the arena), then the input gradient.
  void backward() override;

  Param* weight() const { return w_; }
  Param* bias() const { return b_; }

 protected:
  // Input-side reorders, and the backward-data primitive unless this is the first
  // layer. Final: a subclass extending it would have to remember to call it, the
  // trap bind() exists to close; conv and fc differ only in what setup() builds.
  void on_bind() final;
  // Registers "<name>.weight" in the forward primitive's layout and "<name>.bias",
  // keeps the primitives, and records the output layout.
  void finish_setup(ParamStore& params, const dnnl::primitive_desc& fwd, const dnnl::primitive_desc& bwd_data,
                    const dnnl::primitive_desc& bwd_weights, int64_t fan_in, int64_t fan_out);

 private:
  Param* w_ = nullptr;
  Param* b_ = nullptr;
  dnnl::primitive_desc fwd_pd_, bwd_data_pd_, bwd_w_pd_;
  dnnl::primitive fwd_, bwd_data_, bwd_w_;
  // Where a primitive's chosen layout differs from its neighbour's: the input for
  // forward and backward-weights, the weights for backward-data, and the two
  // gradients it writes (weights, input).
  Edge fwd_src_, bwd_w_src_, bwd_w_diff_w_, bwd_data_w_, bwd_data_diff_src_;
};

}  // namespace prelude
