#include "engine/activation_layer.h"

#include <algorithm>
#include <numeric>

#include "common/errors.h"
#include "engine/layer_registry.h"

namespace prelude {

using namespace dnnl;

namespace {

ActKind act_kind_from(const v1::ActivationSpec& spec) {
  switch (spec.kind()) {
    case v1::ActivationSpec::RELU: return ActKind::kRelu;
    case v1::ActivationSpec::LEAKY_RELU: return ActKind::kLeakyRelu;
    case v1::ActivationSpec::PRELU_SHARED: return ActKind::kPreluShared;
    case v1::ActivationSpec::PRELU_CHANNELWISE: return ActKind::kPreluChannelwise;
    default: throw user_error("model.activation.kind", "must be set");
  }
}

// "<last weight layer>.act" (conv2.act), or act1, act2, ... before the first weight layer.
const LayerRegistration kActivation(v1::LayerSpec::kActivation, LayerNaming::kAfterWeight, "act",
                                    [](const v1::LayerSpec& spec, std::string name) -> std::unique_ptr<Layer> {
                                      const auto& a = spec.activation();
                                      return std::make_unique<ActivationLayer>(std::move(name), act_kind_from(a),
                                                                               a.alpha_init());
                                    });

}  // namespace

const char* act_kind_name(ActKind kind) {
  switch (kind) {
    case ActKind::kRelu: return "relu";
    case ActKind::kLeakyRelu: return "leaky_relu";
    case ActKind::kPreluShared: return "prelu_shared";
    case ActKind::kPreluChannelwise: return "prelu_channelwise";
  }
  return "?";
}

memory::desc ActivationLayer::setup(const memory::desc& src_md, ParamStore& params) {
  auto& eng = Context::get().engine;
  out_md_ = src_md;
  const auto dims = src_md.dims();
  channels_ = dims[1];
  if (!learned()) {
    const float a = kind_ == ActKind::kRelu ? 0.f : static_cast<float>(alpha_);
    eltwise_forward::desc fd(prop_kind::forward_training, algorithm::eltwise_relu, src_md, a, 0.f);
    eltwise_forward::primitive_desc fpd(fd, eng);
    eltwise_backward::desc bd(algorithm::eltwise_relu, src_md, src_md, a, 0.f);
    eltwise_backward::primitive_desc bpd(bd, eng, fpd);
    check_kernel(fpd, "forward");
    check_kernel(bpd, "backward");
    eltwise_fwd_ = eltwise_forward(fpd);
    eltwise_bwd_ = eltwise_backward(bpd);
    return out_md_;
  }
  // Per-channel weights {1, C, 1, 1} (or {1, C} after a fully connected layer) in
  // the layout the primitive picks to match the data (e.g. aBcd8b for nChw8c data):
  // with plain weights over blocked data oneDNN 2.6 falls to its reference kernel.
  // The slopes are f32 in BF16 too (bf16 data, f32 weights and weight gradients).
  dims_t w_dims(dims.size(), 1);
  w_dims[1] = channels_;
  prelu_forward::desc fd(prop_kind::forward_training, src_md, md_of(w_dims, tag::any));
  prelu_forward::primitive_desc fpd(fd, eng);
  weights_md_ = fpd.weights_desc();
  prelu_backward::desc bd(src_md, weights_md_, src_md, weights_md_);
  prelu_backward::primitive_desc bpd(bd, eng, fpd);
  check_kernel(fpd, "forward");
  check_kernel(bpd, "backward");
  prelu_fwd_ = prelu_forward(fpd);
  prelu_bwd_ = prelu_backward(bpd);
  if (kind_ == ActKind::kPreluShared) {
    slope_ = params.add(name_ + ".slope", ParamKind::kSlope, md_of({1}, tag::a));
    expanded_w_ = memory(weights_md_, eng);
    expanded_dw_ = memory(weights_md_, eng);
  } else {
    slope_ = params.add(name_ + ".slope", ParamKind::kSlope, weights_md_);
  }
  slope_->init_value = alpha_;
  return out_md_;
}

void ActivationLayer::forward() {
  auto& s = Context::get().stream;
  if (!learned()) {
    eltwise_fwd_.execute(s, {{DNNL_ARG_SRC, in_->data}, {DNNL_ARG_DST, out_.data}});
    return;
  }
  memory w = slope_->data;
  if (kind_ == ActKind::kPreluShared) {
    // Padding lanes of a blocked layout get the value too; their gradient is zero.
    auto* e = static_cast<float*>(expanded_w_.get_data_handle());
    std::fill(e, e + weights_md_.get_size() / sizeof(float), *slope_->value_ptr);
    w = expanded_w_;
  }
  prelu_fwd_.execute(s, {{DNNL_ARG_SRC, in_->data}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, out_.data}});
}

void ActivationLayer::backward() {
  auto& s = Context::get().stream;
  if (!learned()) {
    if (!need_input_grad_) return;
    eltwise_bwd_.execute(s, {{DNNL_ARG_SRC, in_->data},
                             {DNNL_ARG_DIFF_DST, out_.diff},
                             {DNNL_ARG_DIFF_SRC, in_->diff}});
    return;
  }
  // PReLU backward yields the slope gradient and the input gradient in one pass.
  // The first layer of a network is never an activation, so in_->diff exists.
  const bool shared = kind_ == ActKind::kPreluShared;
  prelu_bwd_.execute(s, {{DNNL_ARG_SRC, in_->data},
                         {DNNL_ARG_WEIGHTS, shared ? expanded_w_ : slope_->data},
                         {DNNL_ARG_DIFF_DST, out_.diff},
                         {DNNL_ARG_DIFF_SRC, in_->diff},
                         {DNNL_ARG_DIFF_WEIGHTS, shared ? expanded_dw_ : slope_->diff}});
  if (shared) {
    s.wait();
    const auto* g = static_cast<const float*>(expanded_dw_.get_data_handle());
    *slope_->grad_ptr = std::accumulate(g, g + weights_md_.get_size() / sizeof(float), 0.f);
  }
}

std::vector<float> ActivationLayer::slopes() const {
  if (!learned()) return {kind_ == ActKind::kRelu ? 0.f : static_cast<float>(alpha_)};
  return to_plain(slope_->data);
}

}  // namespace prelude
