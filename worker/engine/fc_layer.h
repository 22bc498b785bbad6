// Fully connected layer (oneDNN inner product) with bias. Accepts a 4-D input in
// whatever layout the previous layer produced (it is flattened per image); the
// weights follow that layout.
#pragma once

#include "engine/weight_layer.h"

namespace prelude {

class FcLayer : public WeightLayer {
 public:
  FcLayer(std::string name, int out_features) : WeightLayer(std::move(name)), oc_(out_features) {}

  const char* type() const override { return "fc"; }
  dnnl::memory::desc setup(const dnnl::memory::desc& src_md, ParamStore& params) override;

 private:
  int oc_;
};

}  // namespace prelude
