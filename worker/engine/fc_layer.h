// Fully connected layer (oneDNN inner product) with bias. Accepts a 4-D input
// in whatever layout the previous layer produced (it is flattened per image); the
// weights follow that layout. Backward primitives choose their weight layouts and
// Edges reorder where they differ from the arena's (as in ConvLayer).
#pragma once

#include "engine/layer.h"

namespace prelude {

class FcLayer : public Layer {
 public:
  FcLayer(std::string name, int out_features) : Layer(std::move(name)), oc_(out_features) {}

  const char* type() const override { return "fc"; }
  bool is_weight_layer() const override { return true; }
  dnnl::memory::desc setup(const dnnl::memory::desc& src_md, ParamStore& params) override;
  void bind(Blob* input, bool need_input_grad) override;
  void forward() override;
  void backward() override;

  Param* weight() const { return w_; }
  Param* bias() const { return b_; }

 private:
  int oc_;
  Param* w_ = nullptr;
  Param* b_ = nullptr;
  dnnl::inner_product_backward_data::primitive_desc bwd_data_pd_;
  dnnl::inner_product_backward_weights::primitive_desc bwd_w_pd_;
  dnnl::inner_product_forward fwd_;
  dnnl::inner_product_backward_data bwd_data_;
  dnnl::inner_product_backward_weights bwd_w_;
  Edge bwd_w_diff_w_, bwd_data_w_;
};

}  // namespace prelude
