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
  // BF16: master weights (f32, in the arena) into the bf16 copies forward and
  // backward-data read; one reorder each per step.
  void refresh_weights() override;
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
  // Registers "<name>.weight" in the forward primitive's layout (as f32 master
  // weights when the primitive's are bf16) and "<name>.bias", keeps the primitives,
  // and records the output layout.
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
  // The output gradient in the type and layout the backward primitives read (an fc
  // in BF16 gives f32 but reads its gradient in bf16); the same memory otherwise.
  Edge bwd_diff_dst_;
  // BF16 (the forward primitive's weights are bf16): the weights it reads, converted
  // from the master weights in refresh_weights(); bwd_data_w_ then converts there too.
  bool low_precision_ = false;
  Edge fwd_w_;
};

}  // namespace prelude
