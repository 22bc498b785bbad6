#include "engine/weight_layer.h"

namespace prelude {

using namespace dnnl;

void WeightLayer::finish_setup(ParamStore& params, const primitive_desc& fwd, const primitive_desc& bwd_data,
                               const primitive_desc& bwd_weights, int64_t fan_in, int64_t fan_out) {
  fwd_pd_ = fwd;
  bwd_data_pd_ = bwd_data;
  bwd_w_pd_ = bwd_weights;
  out_md_ = fwd.dst_desc();
  low_precision_ = fwd.weights_desc().data_type() != dt::f32;
  // The arena holds f32 master weights in the layout the forward primitive chose
  // (for bf16 weights, the same blocking in f32), so the optimizer, the reducer and
  // checkpoints never see bf16.
  w_ = params.add(name_ + ".weight", ParamKind::kWeight, with_type(fwd.weights_desc(), dt::f32));
  w_->fan_in = fan_in;
  w_->fan_out = fan_out;
  b_ = params.add(name_ + ".bias", ParamKind::kBias, fwd.weights_desc(1));
  check_kernel(fwd_pd_, "forward");
  check_kernel(bwd_w_pd_, "backward-weights");
  fwd_ = primitive(fwd_pd_);
  bwd_w_ = primitive(bwd_w_pd_);
}

void WeightLayer::on_bind() {
  fwd_src_ = Edge::in(in_->data, fwd_pd_.src_desc());
  fwd_w_ = Edge::in(w_->data, fwd_pd_.weights_desc());
  // Backward-weights reads the same input; share the forward's copy when layouts agree.
  bwd_w_src_ = bwd_w_pd_.src_desc() == fwd_src_.mem.get_desc() ? Edge{fwd_src_.mem, {}}
                                                                 : Edge::in(in_->data, bwd_w_pd_.src_desc());
  bwd_w_diff_w_ = Edge::out(w_->diff, bwd_w_pd_.diff_weights_desc());
  bwd_diff_dst_ = Edge::in(out_.diff, bwd_w_pd_.diff_dst_desc());
  if (need_input_grad_) {  // the first layer has no input gradient to compute
    check_kernel(bwd_data_pd_, "backward-data");
    if (bwd_data_pd_.diff_dst_desc() != bwd_diff_dst_.mem.get_desc())
      throw std::logic_error(name_ + ": backward-data and backward-weights read the output gradient differently");
    bwd_data_ = primitive(bwd_data_pd_);
    // In BF16 from the forward's bf16 copy (a change of layout only, exact).
    bwd_data_w_ = Edge::in(low_precision_ ? fwd_w_.mem : w_->data, bwd_data_pd_.weights_desc());
    bwd_data_diff_src_ = Edge::out(in_->diff, bwd_data_pd_.diff_src_desc());
  }
}

void WeightLayer::refresh_weights() {
  if (!low_precision_) return;
  fwd_w_.run();
  if (need_input_grad_) bwd_data_w_.run();
}

void WeightLayer::forward() {
  fwd_src_.run();
  fwd_.execute(Context::get().stream, {{DNNL_ARG_SRC, fwd_src_.mem},
                                       {DNNL_ARG_WEIGHTS, fwd_w_.mem},
                                       {DNNL_ARG_BIAS, b_->data},
                                       {DNNL_ARG_DST, out_.data}});
}

void WeightLayer::backward() {
  auto& s = Context::get().stream;
  if (bwd_w_src_.mem != fwd_src_.mem) bwd_w_src_.run();
  bwd_diff_dst_.run();
  bwd_w_.execute(s, {{DNNL_ARG_SRC, bwd_w_src_.mem},
                     {DNNL_ARG_DIFF_DST, bwd_diff_dst_.mem},
                     {DNNL_ARG_DIFF_WEIGHTS, bwd_w_diff_w_.mem},
                     {DNNL_ARG_DIFF_BIAS, b_->diff}});
  bwd_w_diff_w_.run();
  if (!need_input_grad_) return;
  if (!low_precision_) bwd_data_w_.run();  // BF16 converted it in refresh_weights()
  bwd_data_.execute(s, {{DNNL_ARG_DIFF_DST, bwd_diff_dst_.mem},
                        {DNNL_ARG_WEIGHTS, bwd_data_w_.mem},
                        {DNNL_ARG_DIFF_SRC, bwd_data_diff_src_.mem}});
  bwd_data_diff_src_.run();
}

}  // namespace prelude
