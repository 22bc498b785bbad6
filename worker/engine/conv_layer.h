// 2-D convolution (oneDNN direct or Winograd convolution) with bias.
//
// Forward, backward-data and backward-weights each choose their own layouts
// (format_tag::any; the backward ones hinted by the forward one); WeightLayer's
// Edges reorder where a choice differs from what the neighbours hold. On AVX2 that
// is, e.g., the weights for backward-data (OIhw8o8i against the forward OIhw8i8o)
// and the first layer's single-channel input for backward-weights.
//
// The algorithm (training.convAlgorithm) is chosen per layer and per pass once, in
// setup(): forward and backward-data may be Winograd (oneDNN's jit_wino_4x3, f32,
// AVX-512, 3x3 stride 1); backward-weights is always direct (Winograd measured
// slower there inside the training step). Scratchpads stay oneDNN's own (library
// mode), as for every other primitive.
#pragma once

#include <string>

#include "engine/weight_layer.h"

namespace prelude {

// training.convAlgorithm. kAuto: Winograd for forward and backward-data where the
// rule of auto_winograd() says it wins, direct elsewhere. kWinograd: Winograd for
// both passes of every convolution, or a UserError on training.convAlgorithm naming
// the layer and why it cannot. The engine's default is kDirect (a layer built on its
// own); the job spec's is AUTO.
enum class ConvAlgorithm { kAuto, kDirect, kWinograd };

const char* conv_algorithm_name(ConvAlgorithm a);

// The least number of input channels from which AUTO picks Winograd (measured on an
// AMD EPYC Zen 5, see conv_layer.cc).
constexpr int64_t kAutoWinogradMinChannels = 32;

// AUTO's rule, without trying oneDNN: an empty string when Winograd should run this
// convolution here, else why not ("BF16", "5x5", "only 1 input channel", ...).
std::string auto_winograd_refusal(Precision precision, int64_t in_channels, int kernel, int stride);

// Whether oneDNN runs at AVX-512 (avx512_core or above) here, where its Winograd
// convolutions live.
bool cpu_has_avx512_core();

class ConvLayer : public WeightLayer {
 public:
  ConvLayer(std::string name, int out_channels, int kernel, int padding, int stride)
      : WeightLayer(std::move(name)), oc_(out_channels), k_(kernel), pad_(padding), stride_(stride) {}

  const char* type() const override { return "conv"; }
  // Before setup(): the algorithm to build forward and backward-data with.
  void set_algorithm(ConvAlgorithm a) { algorithm_ = a; }
  ConvAlgorithm algorithm() const { return algorithm_; }
  dnnl::memory::desc setup(const dnnl::memory::desc& src_md, ParamStore& params) override;

  // After setup(): whether forward and backward-data run Winograd, and one line for
  // the log: "conv2: forward winograd, backward-data winograd, backward-weights
  // direct" (AUTO adds why a pass stays direct).
  bool forward_winograd() const { return fwd_winograd_; }
  bool backward_data_winograd() const { return bwd_data_winograd_; }
  const std::string& algorithm_choice() const { return choice_; }

 private:
  int oc_, k_, pad_, stride_;
  ConvAlgorithm algorithm_ = ConvAlgorithm::kDirect;
  bool fwd_winograd_ = false, bwd_data_winograd_ = false;
  std::string choice_;
};

}  // namespace prelude
