#include "engine/pool_layer.h"

#include "common/errors.h"
#include "engine/layer_registry.h"

namespace prelude {

using namespace dnnl;

namespace {

PoolKind pool_kind_from(const v1::PoolLayerSpec& spec) {
  switch (spec.kind()) {
    case v1::PoolLayerSpec::AVG: return PoolKind::kAvg;
    case v1::PoolLayerSpec::GLOBAL_AVG: return PoolKind::kGlobalAvg;
    default: return PoolKind::kMax;  // KIND_UNSPECIFIED means MAX
  }
}

// pool1, pool2, ...
const LayerRegistration kPool(v1::LayerSpec::kPool, LayerNaming::kCounted, "pool",
                              [](const v1::LayerSpec& spec, std::string name) -> std::unique_ptr<Layer> {
                                const auto& p = spec.pool();
                                return std::make_unique<PoolLayer>(std::move(name), pool_kind_from(p), p.kernel(),
                                                                   p.stride());
                              });

}  // namespace

const char* PoolLayer::type() const {
  switch (kind_) {
    case PoolKind::kMax: return "maxpool";
    case PoolKind::kAvg: return "avgpool";
    case PoolKind::kGlobalAvg: return "global_avgpool";
  }
  return "?";
}

memory::desc PoolLayer::setup(const memory::desc& src_md, ParamStore&) {
  auto& eng = Context::get().engine;
  const auto d = src_md.dims();
  if (d.size() != 4) throw UserError(name_ + ": pooling needs a 4-D input (it follows a fully connected layer)");
  const int64_t h = d[2], w = d[3];
  dims_t kernel{k_, k_}, strides{stride_, stride_};
  if (kind_ == PoolKind::kGlobalAvg) {
    kernel = {h, w};
    strides = {1, 1};
  } else if (h < k_ || w < k_) {
    throw UserError(name_ + ": input of " + std::to_string(h) + "x" + std::to_string(w) +
                    " is too small for a " + std::to_string(k_) + "x" + std::to_string(k_) + " pooling");
  }
  const int64_t oh = (h - kernel[0]) / strides[0] + 1, ow = (w - kernel[1]) / strides[1] + 1;
  const dims_t pad{0, 0};
  const auto dst_any = memory::desc({d[0], d[1], oh, ow}, src_md.data_type(), tag::any);  // bf16 in BF16
  const auto algo = kind_ == PoolKind::kMax ? algorithm::pooling_max : algorithm::pooling_avg_exclude_padding;
  pooling_forward::desc fd(prop_kind::forward_training, algo, src_md, dst_any, strides, kernel, pad, pad);
  fwd_pd_ = pooling_forward::primitive_desc(fd, eng);
  out_md_ = fwd_pd_.dst_desc();
  pooling_backward::desc bd(algo, src_md, out_md_, strides, kernel, pad, pad);
  pooling_backward::primitive_desc bpd(bd, eng, fwd_pd_);
  check_kernel(fwd_pd_, "forward");
  check_kernel(bpd, "backward");
  fwd_ = pooling_forward(fwd_pd_);
  bwd_ = pooling_backward(bpd);
  return out_md_;
}

void PoolLayer::on_bind() {
  if (kind_ == PoolKind::kMax) workspace_ = memory(fwd_pd_.workspace_desc(), Context::get().engine);
}

void PoolLayer::forward() {
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, in_->data}, {DNNL_ARG_DST, out_.data}};
  if (workspace_) args.insert({DNNL_ARG_WORKSPACE, workspace_});
  fwd_.execute(Context::get().stream, args);
}

void PoolLayer::backward() {
  if (!need_input_grad_) return;
  std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, out_.diff}, {DNNL_ARG_DIFF_SRC, in_->diff}};
  if (workspace_) args.insert({DNNL_ARG_WORKSPACE, workspace_});
  bwd_.execute(Context::get().stream, args);
}

}  // namespace prelude
