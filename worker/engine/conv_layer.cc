#include "engine/conv_layer.h"

#include "engine/errors.h"

namespace prelude {

using namespace dnnl;

memory::desc ConvLayer::setup(const memory::desc& src_md, ParamStore& params) {
  auto& eng = Context::get().engine;
  const auto d = src_md.dims();
  if (d.size() != 4) throw UserError(name_ + ": a convolution needs a 4-D input (it follows a fully connected layer)");
  const int64_t n = d[0], c = d[1], h = d[2], w = d[3];
  const int64_t oh = (h + 2 * pad_ - k_) / stride_ + 1;
  const int64_t ow = (w + 2 * pad_ - k_) / stride_ + 1;
  if (h + 2 * pad_ < k_ || w + 2 * pad_ < k_ || oh <= 0 || ow <= 0)
    throw UserError(name_ + ": input of " + std::to_string(h) + "x" + std::to_string(w) +
                    " is too small for a " + std::to_string(k_) + "x" + std::to_string(k_) +
                    " convolution with padding " + std::to_string(pad_));
  const dims_t src_dims{n, c, h, w}, w_dims{oc_, c, k_, k_}, dst_dims{n, oc_, oh, ow};
  const dims_t strides{stride_, stride_}, padding{pad_, pad_};
  const auto src_any = md_of(src_dims, tag::any), w_any = md_of(w_dims, tag::any);
  const auto b_md = md_of({oc_}, tag::a);

  convolution_forward::desc fd(prop_kind::forward_training, algorithm::convolution_direct, src_any,
                               w_any, b_md, md_of(dst_dims, tag::any), strides, padding, padding);
  fwd_pd_ = convolution_forward::primitive_desc(fd, eng);
  out_md_ = fwd_pd_.dst_desc();

  w_ = params.add(name_ + ".weight", ParamKind::kWeight, fwd_pd_.weights_desc());
  w_->fan_in = c * k_ * k_;
  w_->fan_out = oc_ * k_ * k_;
  b_ = params.add(name_ + ".bias", ParamKind::kBias, b_md);

  // The gradient arriving from the next layer is in the forward output layout;
  // everything else the backward primitives may choose.
  convolution_backward_data::desc bdd(algorithm::convolution_direct, src_any, w_any, out_md_, strides,
                                      padding, padding);
  bwd_data_pd_ = convolution_backward_data::primitive_desc(bdd, eng, fwd_pd_);
  convolution_backward_weights::desc bwd(algorithm::convolution_direct, src_any, w_any, b_md, out_md_,
                                         strides, padding, padding);
  bwd_w_pd_ = convolution_backward_weights::primitive_desc(bwd, eng, fwd_pd_);

  fwd_ = convolution_forward(fwd_pd_);
  bwd_w_ = convolution_backward_weights(bwd_w_pd_);
  warn_if_reference(fwd_pd_, name_ + " forward");
  warn_if_reference(bwd_w_pd_, name_ + " backward-weights");
  return out_md_;
}

void ConvLayer::bind(Blob* input, bool need_input_grad) {
  Layer::bind(input, need_input_grad);
  fwd_src_ = Edge::in(in_->data, fwd_pd_.src_desc());
  // Backward-weights reads the same input; share the forward's copy when layouts agree.
  bwd_w_src_ = bwd_w_pd_.src_desc() == fwd_src_.mem.get_desc() ? Edge{fwd_src_.mem, {}}
                                                                 : Edge::in(in_->data, bwd_w_pd_.src_desc());
  bwd_w_diff_w_ = Edge::out(w_->diff, bwd_w_pd_.diff_weights_desc());
  if (need_input_grad_) {  // the first layer has no input gradient to compute
    warn_if_reference(bwd_data_pd_, name_ + " backward-data");
    bwd_data_ = convolution_backward_data(bwd_data_pd_);
    bwd_data_w_ = Edge::in(w_->data, bwd_data_pd_.weights_desc());
    bwd_data_diff_src_ = Edge::out(in_->diff, bwd_data_pd_.diff_src_desc());
  }
}

void ConvLayer::forward() {
  fwd_src_.run();
  fwd_.execute(Context::get().stream, {{DNNL_ARG_SRC, fwd_src_.mem},
                                       {DNNL_ARG_WEIGHTS, w_->data},
                                       {DNNL_ARG_BIAS, b_->data},
                                       {DNNL_ARG_DST, out_.data}});
}

void ConvLayer::backward() {
  auto& s = Context::get().stream;
  if (bwd_w_src_.mem != fwd_src_.mem) bwd_w_src_.run();
  bwd_w_.execute(s, {{DNNL_ARG_SRC, bwd_w_src_.mem},
                     {DNNL_ARG_DIFF_DST, out_.diff},
                     {DNNL_ARG_DIFF_WEIGHTS, bwd_w_diff_w_.mem},
                     {DNNL_ARG_DIFF_BIAS, b_->diff}});
  bwd_w_diff_w_.run();
  if (!need_input_grad_) return;
  bwd_data_w_.run();
  bwd_data_.execute(s, {{DNNL_ARG_DIFF_DST, out_.diff},
                        {DNNL_ARG_WEIGHTS, bwd_data_w_.mem},
                        {DNNL_ARG_DIFF_SRC, bwd_data_diff_src_.mem}});
  bwd_data_diff_src_.run();
}

}  // namespace prelude
