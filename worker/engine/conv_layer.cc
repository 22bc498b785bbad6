#include "engine/conv_layer.h"

#include <optional>

#include "common/errors.h"
#include "engine/layer_registry.h"
#include "engine/memory_budget.h"

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

// A primitive descriptor oneDNN may have no implementation for: nullopt (and why)
// when it says unimplemented, or when only its reference kernel would run it (many
// times slower than direct: no reason to ask for Winograd). Any other dnnl::error
// (out of memory, a bad argument) is not about the algorithm and propagates.
template <typename PD, typename Make>
std::optional<PD> try_winograd(const Make& make, std::string* why) {
  try {
    PD pd = make();
    const std::string impl = impl_name(pd);
    if (impl.rfind("ref", 0) == 0) {
      *why = "oneDNN has only its reference kernel for it (" + impl + ")";
      return std::nullopt;
    }
    return pd;
  } catch (const dnnl::error& e) {
    if (e.status != dnnl_unimplemented) throw;
    *why = "oneDNN has no Winograd kernel for it on this CPU (it runs as " + effective_isa_name() +
           "; its Winograd convolutions need avx512_core)";
    return std::nullopt;
  }
}

}  // namespace

const char* conv_algorithm_name(ConvAlgorithm a) {
  switch (a) {
    case ConvAlgorithm::kAuto: return "AUTO";
    case ConvAlgorithm::kWinograd: return "WINOGRAD";
    default: return "DIRECT";
  }
}

bool cpu_has_avx512_core() {
  switch (dnnl::get_effective_cpu_isa()) {
    case cpu_isa::avx512_core:
    case cpu_isa::avx512_core_vnni:
    case cpu_isa::avx512_core_bf16:
    case cpu_isa::avx512_core_amx: return true;
    default: return false;
  }
}

// Measured with oneDNN 2.6.3 on an AMD EPYC Zen 5 (batch 64, one layer alone,
// best of 100 runs on a shared machine; README, "Precision"): jit_wino_4x3's cost
// hardly grows with the input channels up to 16 (its tile transforms dominate:
// forward on 28x28 to 32 channels 2.8-2.9 ms for 1, 4, 8 or 16 input channels),
// while the direct jit:avx512_core kernel's grows with them (0.27 ms for 1, 2.6 ms
// for 16): direct wins clearly below 16 channels (conv1, 1 channel: 10x), ties at
// 16, and Winograd wins from 32 (cnn-small's conv2-4; the issue measured the step
// 17% faster with both passes of those). Backward-data follows the same pattern.
// BF16 and AVX2 have no Winograd kernel at all.
std::string auto_winograd_refusal(Precision precision, int64_t in_channels, int kernel, int stride) {
  if (precision != Precision::kF32) return "BF16 (Winograd is f32 only)";
  if (kernel != 3 || stride != 1)
    return std::to_string(kernel) + "x" + std::to_string(kernel) + " stride " + std::to_string(stride) +
           " (Winograd is 3x3 stride 1 only)";
  if (!cpu_has_avx512_core()) return "no AVX-512 (oneDNN runs " + effective_isa_name() + ")";
  if (in_channels < kAutoWinogradMinChannels)
    return "only " + std::to_string(in_channels) + " input channel" + (in_channels == 1 ? "" : "s") +
           " (Winograd wins from " + std::to_string(kAutoWinogradMinChannels) + ")";
  return "";
}

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
  const auto dst_any = memory::desc({n, oc_, oh, ow}, a, tag::any);

  auto fwd_of = [&](dnnl::algorithm alg) {
    return convolution_forward::primitive_desc(
        convolution_forward::desc(prop_kind::forward_training, alg, src_any, w_any, b_md, dst_any, strides, padding,
                                  padding),
        eng);
  };
  // WINOGRAD: a pass that cannot have it is an error naming the layer, never a quiet
  // direct one. AUTO: the rule first (so the choice is the same on every run of one
  // machine type), then whether oneDNN has the kernel.
  const std::string shape = std::to_string(c) + "->" + std::to_string(oc_) + " channels, " + std::to_string(k_) +
                            "x" + std::to_string(k_) + " stride " + std::to_string(stride_) + " on " +
                            std::to_string(h) + "x" + std::to_string(w);
  auto refuse = [&](const std::string& pass, const std::string& why) {
    return user_error("training.convAlgorithm", "WINOGRAD cannot run " + name_ + " " + pass + " (" + shape +
                                                    "): " + why + "; use AUTO or DIRECT");
  };
  std::string why_direct;
  if (algorithm_ == ConvAlgorithm::kWinograd) {
    if (precision_ != Precision::kF32)
      throw refuse("forward", "oneDNN has no bf16 Winograd convolution (training.precision is BF16)");
    if (k_ != 3 || stride_ != 1) throw refuse("forward", "oneDNN's Winograd convolution is 3x3 stride 1 only");
  } else if (algorithm_ == ConvAlgorithm::kAuto) {
    why_direct = auto_winograd_refusal(precision_, c, k_, stride_);
  } else {
    why_direct = "DIRECT";
  }

  std::optional<convolution_forward::primitive_desc> fwd;
  if (why_direct.empty()) {
    fwd = try_winograd<convolution_forward::primitive_desc>(
        [&] { return fwd_of(dnnl::algorithm::convolution_winograd); }, &why_direct);
    if (!fwd && algorithm_ == ConvAlgorithm::kWinograd) throw refuse("forward", why_direct);
  }
  fwd_winograd_ = fwd.has_value();
  if (!fwd) fwd = fwd_of(dnnl::algorithm::convolution_direct);

  // The gradient arriving from the next layer is in the forward output layout;
  // everything else the backward primitives may choose.
  auto bwd_data_of = [&](dnnl::algorithm alg) {
    return convolution_backward_data::primitive_desc(
        convolution_backward_data::desc(alg, src_any, w_any, fwd->dst_desc(), strides, padding, padding), eng, *fwd);
  };
  std::optional<convolution_backward_data::primitive_desc> bwd_data;
  std::string why_bwd_direct = why_direct;
  if (why_bwd_direct.empty()) {
    bwd_data = try_winograd<convolution_backward_data::primitive_desc>(
        [&] { return bwd_data_of(dnnl::algorithm::convolution_winograd); }, &why_bwd_direct);
    if (!bwd_data && algorithm_ == ConvAlgorithm::kWinograd) throw refuse("backward-data", why_bwd_direct);
  }
  bwd_data_winograd_ = bwd_data.has_value();
  if (!bwd_data) bwd_data = bwd_data_of(dnnl::algorithm::convolution_direct);

  // Winograd's scratchpad grows with the batch (722 GB for 1024 channels at batch
  // 50,000), and oneDNN allocates it when it creates the primitive, before Network's
  // memory check. More than half of this rank's budget: AUTO takes direct (which
  // needs none), WINOGRAD says so.
  if (fwd_winograd_ || bwd_data_winograd_) {
    primitive_attr user;
    user.set_scratchpad_mode(scratchpad_mode::user);
    uint64_t bytes = 0;
    if (fwd_winograd_)
      bytes += convolution_forward::primitive_desc(
                   convolution_forward::desc(prop_kind::forward_training, dnnl::algorithm::convolution_winograd,
                                             src_any, w_any, b_md, dst_any, strides, padding, padding),
                   user, eng)
                   .scratchpad_desc()
                   .get_size();
    if (bwd_data_winograd_)
      bytes += convolution_backward_data::primitive_desc(
                   convolution_backward_data::desc(dnnl::algorithm::convolution_winograd, src_any, w_any,
                                                   fwd->dst_desc(), strides, padding, padding),
                   user, eng, *fwd)
                   .scratchpad_desc()
                   .get_size();
    const MemoryBudget budget = this_rank_memory_budget();
    if (bytes > budget.bytes / 2) {
      const std::string why = "its scratchpad of " + format_bytes(bytes) + " is more than half of this rank's " +
                              "memory budget of " + budget.describe();
      if (algorithm_ == ConvAlgorithm::kWinograd)
        throw refuse(fwd_winograd_ ? "forward" : "backward-data",
                     "at batch " + std::to_string(n) + " " + why);
      why_direct = why_bwd_direct = why;
      fwd_winograd_ = bwd_data_winograd_ = false;
      fwd = fwd_of(dnnl::algorithm::convolution_direct);
      bwd_data = bwd_data_of(dnnl::algorithm::convolution_direct);
    }
  }

  // AUTO says why a pass stays direct; DIRECT and WINOGRAD are what was asked for.
  const bool why = algorithm_ == ConvAlgorithm::kAuto;
  auto pass = [&](bool winograd, const std::string& reason) {
    return std::string(winograd ? "winograd" : "direct") + (winograd || !why ? "" : " (" + reason + ")");
  };
  if (fwd_winograd_ == bwd_data_winograd_ && why_direct == why_bwd_direct)
    choice_ = name_ + ": forward and backward-data " + pass(fwd_winograd_, why_direct);
  else
    choice_ = name_ + ": forward " + pass(fwd_winograd_, why_direct) + ", backward-data " +
              pass(bwd_data_winograd_, why_bwd_direct);
  choice_ += ", backward-weights direct";
  convolution_backward_weights::desc bwd(dnnl::algorithm::convolution_direct, src_any,
                                         md_of({oc_, c, k_, k_}, tag::any), b_md, fwd->dst_desc(), strides, padding,
                                         padding);
  finish_setup(params, *fwd, *bwd_data, convolution_backward_weights::primitive_desc(bwd, eng, *fwd), c * k_ * k_,
               oc_ * k_ * k_);
  return out_md_;
}

}  // namespace prelude
