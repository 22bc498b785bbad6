#include "engine/fc_layer.h"

namespace prelude {

using namespace dnnl;

memory::desc FcLayer::setup(const memory::desc& src_md, ParamStore& params) {
  auto& eng = Context::get().engine;
  dims_t w_dims = src_md.dims();  // {N, C[, H, W]} -> weights {OC, C[, H, W]}
  const int64_t n = w_dims[0];
  w_dims[0] = oc_;
  int64_t fan_in = 1;
  for (size_t i = 1; i < w_dims.size(); ++i) fan_in *= w_dims[i];
  const auto w_any = md_of(w_dims, tag::any), b_md = md_of({oc_}, tag::a);
  const auto dst_md = md_of({n, oc_}, tag::nc);

  // The input is taken in the layout the previous layer produced (no reorder).
  inner_product_forward::desc fd(prop_kind::forward_training, src_md, w_any, b_md, dst_md);
  inner_product_forward::primitive_desc fwd_pd(fd, eng);
  out_md_ = fwd_pd.dst_desc();

  w_ = params.add(name_ + ".weight", ParamKind::kWeight, fwd_pd.weights_desc());
  w_->fan_in = fan_in;
  w_->fan_out = oc_;
  b_ = params.add(name_ + ".bias", ParamKind::kBias, b_md);

  inner_product_backward_data::desc bdd(src_md, w_any, out_md_);
  bwd_data_pd_ = inner_product_backward_data::primitive_desc(bdd, eng, fwd_pd);
  inner_product_backward_weights::desc bwd(src_md, w_any, b_md, out_md_);
  bwd_w_pd_ = inner_product_backward_weights::primitive_desc(bwd, eng, fwd_pd);
  warn_if_reference(fwd_pd, name_ + " forward");
  warn_if_reference(bwd_w_pd_, name_ + " backward-weights");
  fwd_ = inner_product_forward(fwd_pd);
  bwd_w_ = inner_product_backward_weights(bwd_w_pd_);
  return out_md_;
}

void FcLayer::bind(Blob* input, bool need_input_grad) {
  Layer::bind(input, need_input_grad);
  bwd_w_diff_w_ = Edge::out(w_->diff, bwd_w_pd_.diff_weights_desc());
  if (need_input_grad_) {
    warn_if_reference(bwd_data_pd_, name_ + " backward-data");
    bwd_data_ = inner_product_backward_data(bwd_data_pd_);
    bwd_data_w_ = Edge::in(w_->data, bwd_data_pd_.weights_desc());
  }
}

void FcLayer::forward() {
  fwd_.execute(Context::get().stream, {{DNNL_ARG_SRC, in_->data},
                                       {DNNL_ARG_WEIGHTS, w_->data},
                                       {DNNL_ARG_BIAS, b_->data},
                                       {DNNL_ARG_DST, out_.data}});
}

void FcLayer::backward() {
  auto& s = Context::get().stream;
  bwd_w_.execute(s, {{DNNL_ARG_SRC, in_->data},
                     {DNNL_ARG_DIFF_DST, out_.diff},
                     {DNNL_ARG_DIFF_WEIGHTS, bwd_w_diff_w_.mem},
                     {DNNL_ARG_DIFF_BIAS, b_->diff}});
  bwd_w_diff_w_.run();
  if (!need_input_grad_) return;
  bwd_data_w_.run();
  bwd_data_.execute(s, {{DNNL_ARG_DIFF_DST, out_.diff},
                        {DNNL_ARG_WEIGHTS, bwd_data_w_.mem},
                        {DNNL_ARG_DIFF_SRC, in_->diff}});
}

}  // namespace prelude
