#include "engine/fc_layer.h"

#include "engine/layer_registry.h"

namespace prelude {

using namespace dnnl;

namespace {

// fc1, fc2, ...; the activation after one is "fcK.act".
const LayerRegistration kFc(v1::LayerSpec::kFc, LayerNaming::kWeight, "fc",
                            [](const v1::LayerSpec& spec, std::string name) -> std::unique_ptr<Layer> {
                              return std::make_unique<FcLayer>(std::move(name), spec.fc().out_features());
                            });

}  // namespace

memory::desc FcLayer::setup(const memory::desc& src_md, ParamStore& params) {
  auto& eng = Context::get().engine;
  dims_t w_dims = src_md.dims();  // {N, C[, H, W]} -> weights {OC, C[, H, W]}
  const int64_t n = w_dims[0];
  w_dims[0] = oc_;
  int64_t fan_in = 1;
  for (size_t i = 1; i < w_dims.size(); ++i) fan_in *= w_dims[i];
  // BF16 and a bf16 input (after a convolution or pooling): bf16 weights, f32 output
  // (the logits, or an activation before the next fc, stay f32) and f32 weight
  // gradients; the output gradient goes back into bf16 for the backward primitives.
  // An f32 input (after another fc) keeps the layer in f32.
  const dt a = src_md.data_type() == dt::bf16 ? dt::bf16 : dt::f32;
  const auto w_any = memory::desc(w_dims, a, tag::any), b_md = md_of({oc_}, tag::a);
  const auto diff_dst_md = memory::desc({n, oc_}, a, tag::nc);

  // The input is taken in the layout the previous layer produced (no reorder).
  inner_product_forward::desc fd(prop_kind::forward_training, src_md, w_any, b_md, md_of({n, oc_}, tag::nc));
  inner_product_forward::primitive_desc fwd(fd, eng);
  inner_product_backward_data::desc bdd(src_md, w_any, diff_dst_md);
  inner_product_backward_weights::desc bwd(src_md, md_of(w_dims, tag::any), b_md, diff_dst_md);
  finish_setup(params, fwd, inner_product_backward_data::primitive_desc(bdd, eng, fwd),
               inner_product_backward_weights::primitive_desc(bwd, eng, fwd), fan_in, oc_);
  return out_md_;
}

}  // namespace prelude
