#include "engine/conv_layer.h"

#include "common/errors.h"
#include "engine/layer_registry.h"

namespace prelude {

using namespace dnnl;

namespace {

// conv1, conv2, ...; the activation after one is "convK.act".
const LayerRegistration kConv(v1::LayerSpec::kConv, LayerNaming::kWeight, "conv",
                              [](const v1::LayerSpec& spec, std::string name) -> std::unique_ptr<Layer> {
                                const auto& c = spec.conv();
                                return std::make_unique<ConvLayer>(std::move(name), c.out_channels(), c.kernel(),
                                                                   c.padding(), c.stride());
                              });

}  // namespace

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
  const dims_t strides{stride_, stride_}, padding{pad_, pad_};
  // BF16: bf16 input, weights and output (an f32 input, the images before conv1, is
  // reordered into bf16 by the input edge), f32 bias and f32 weight gradients.
  const dt a = act_type();
  const auto src_any = memory::desc({n, c, h, w}, a, tag::any), w_any = memory::desc({oc_, c, k_, k_}, a, tag::any);
  const auto b_md = md_of({oc_}, tag::a);

  convolution_forward::desc fd(prop_kind::forward_training, algorithm::convolution_direct, src_any, w_any,
                               b_md, memory::desc({n, oc_, oh, ow}, a, tag::any), strides, padding, padding);
  convolution_forward::primitive_desc fwd(fd, eng);
  // The gradient arriving from the next layer is in the forward output layout;
  // everything else the backward primitives may choose.
  convolution_backward_data::desc bdd(algorithm::convolution_direct, src_any, w_any, fwd.dst_desc(), strides,
                                      padding, padding);
  convolution_backward_weights::desc bwd(algorithm::convolution_direct, src_any, md_of({oc_, c, k_, k_}, tag::any),
                                         b_md, fwd.dst_desc(), strides, padding, padding);
  finish_setup(params, fwd, convolution_backward_data::primitive_desc(bdd, eng, fwd),
               convolution_backward_weights::primitive_desc(bwd, eng, fwd), c * k_ * k_, oc_ * k_ * k_);
  return out_md_;
}

}  // namespace prelude
