// Max, average and global-average pooling (oneDNN pooling).
#pragma once

#include "engine/layer.h"

namespace prelude {

enum class PoolKind { kMax, kAvg, kGlobalAvg };

class PoolLayer : public Layer {
 public:
  PoolLayer(std::string name, PoolKind kind, int kernel, int stride)
      : Layer(std::move(name)), kind_(kind), k_(kernel), stride_(stride) {}

  const char* type() const override;
  dnnl::memory::desc setup(const dnnl::memory::desc& src_md, ParamStore& params) override;
  void forward() override;
  void backward() override;

 private:
  void on_bind() override;

  PoolKind kind_;
  int k_, stride_;
  dnnl::pooling_forward::primitive_desc fwd_pd_;
  dnnl::pooling_forward fwd_;
  dnnl::pooling_backward bwd_;
  dnnl::memory workspace_;  // max pooling: where each maximum came from
};

}  // namespace prelude
