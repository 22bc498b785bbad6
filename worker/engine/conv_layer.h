// 2-D convolution (oneDNN direct convolution) with bias.
//
// Forward, backward-data and backward-weights each choose their own layouts
// (format_tag::any; the backward ones hinted by the forward one). Where a choice
// differs from what the neighbours hold (the input blob, the parameter arena), an
// Edge reorders; on AVX2 that is, e.g., the weights for backward-data (OIhw8o8i
// against the forward OIhw8i8o) and the first layer's single-channel input.
#pragma once

#include "engine/layer.h"

namespace prelude {

class ConvLayer : public Layer {
 public:
  ConvLayer(std::string name, int out_channels, int kernel, int padding, int stride)
      : Layer(std::move(name)), oc_(out_channels), k_(kernel), pad_(padding), stride_(stride) {}

  const char* type() const override { return "conv"; }
  bool is_weight_layer() const override { return true; }
  dnnl::memory::desc setup(const dnnl::memory::desc& src_md, ParamStore& params) override;
  void bind(Blob* input, bool need_input_grad) override;
  void forward() override;
  void backward() override;

  Param* weight() const { return w_; }
  Param* bias() const { return b_; }

 private:
  int oc_, k_, pad_, stride_;
  Param* w_ = nullptr;
  Param* b_ = nullptr;
  dnnl::convolution_forward::primitive_desc fwd_pd_;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd_;
  dnnl::convolution_backward_weights::primitive_desc bwd_w_pd_;
  dnnl::convolution_forward fwd_;
  dnnl::convolution_backward_data bwd_data_;
  dnnl::convolution_backward_weights bwd_w_;
  Edge fwd_src_, bwd_w_src_, bwd_w_diff_w_, bwd_data_w_, bwd_data_diff_src_;
};

}  // namespace prelude
