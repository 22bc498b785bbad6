// 2-D convolution (oneDNN direct convolution) with bias.
//
// Forward, backward-data and backward-weights each choose their own layouts
// (format_tag::any; the backward ones hinted by the forward one); WeightLayer's
// Edges reorder where a choice differs from what the neighbours hold. On AVX2 that
// is, e.g., the weights for backward-data (OIhw8o8i against the forward OIhw8i8o)
// and the first layer's single-channel input for backward-weights.
#pragma once

#include "engine/weight_layer.h"

namespace prelude {

class ConvLayer : public WeightLayer {
 public:
  ConvLayer(std::string name, int out_channels, int kernel, int padding, int stride)
      : WeightLayer(std::move(name)), oc_(out_channels), k_(kernel), pad_(padding), stride_(stride) {}

  const char* type() const override { return "conv"; }
  dnnl::memory::desc setup(const dnnl::memory::desc& src_md, ParamStore& params) override;

 private:
  int oc_, k_, pad_, stride_;
};

}  // namespace prelude
