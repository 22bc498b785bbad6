// Every layer kind on its own against central differences (tests/gradient_check.h):
// its input gradient and each parameter gradient, entry by entry, on the input
// layouts it meets in a network. And the checker itself: a layer whose gradient is
// 1% off must fail it, by the name of that gradient.
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/activation_layer.h"
#include "engine/conv_layer.h"
#include "engine/fc_layer.h"
#include "engine/pool_layer.h"
#include "gradient_check.h"

using namespace prelude;

namespace {

using Names = std::vector<std::string>;

// The layout a layer after a convolution receives: what a 3x3 "same" convolution
// to dims[1] channels produces (blocked on AVX2 and AVX-512, e.g. nChw16c, padded
// when the channels are not a multiple of the block).
dnnl::memory::desc after_conv(const dims_t& dims) {
  ConvLayer conv("producer", static_cast<int>(dims[1]), 3, 1, 1);
  ParamStore params;
  return conv.setup(md_of(dims, tag::nchw), params);
}

// What a layer after a fully connected one receives: FcLayer always gives plain {N, C}.
dnnl::memory::desc after_fc(int64_t n, int64_t c) { return md_of({n, c}, tag::nc); }

// Checks one layer and that the input and exactly `params` were checked.
void expect_gradients_match(std::unique_ptr<Layer> layer, const dnnl::memory::desc& src_md, const Names& params) {
  const std::string name = layer->name();
  const auto report = check_layer_gradients(std::move(layer), src_md);
  Names expected{"input"};
  for (const auto& p : params) expected.push_back(name + "." + p);
  EXPECT_EQ(report.tensors, expected);
  EXPECT_TRUE(report.ok()) << report.describe();
}

}  // namespace

// ---- convolution: stride and padding variants, from a plain input (a first layer)
// and from a convolution's blocked output.

struct ConvCase {
  const char* name;
  int out_channels, kernel, padding, stride;
  bool blocked_input;
};

class ConvGradients : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvGradients, MatchFiniteDifferences) {
  const ConvCase c = GetParam();
  const auto src = c.blocked_input ? after_conv({2, 16, 5, 5}) : md_of({2, 3, 7, 7}, tag::nchw);
  expect_gradients_match(std::make_unique<ConvLayer>("conv1", c.out_channels, c.kernel, c.padding, c.stride), src,
                         {"weight", "bias"});
}

INSTANTIATE_TEST_SUITE_P(Variants, ConvGradients,
                         ::testing::Values(ConvCase{"k3_same", 16, 3, 1, 1, false},
                                           ConvCase{"k3_valid", 16, 3, 0, 1, false},
                                           ConvCase{"k3_stride2", 16, 3, 0, 2, false},
                                           ConvCase{"k3_same_stride2", 16, 3, 1, 2, false},
                                           ConvCase{"k5_pad1_stride3", 16, 5, 1, 3, false},
                                           ConvCase{"k1", 16, 1, 0, 1, false},
                                           ConvCase{"k3_same_after_conv", 16, 3, 1, 1, true},
                                           ConvCase{"k3_same_stride2_after_conv", 16, 3, 1, 2, true}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- inner product: after a convolution (4-D, blocked) and after another fc (2-D).

TEST(FcGradients, AfterConvMatchFiniteDifferences) {
  expect_gradients_match(std::make_unique<FcLayer>("fc1", 5), after_conv({2, 16, 3, 3}), {"weight", "bias"});
}

TEST(FcGradients, AfterFcMatchFiniteDifferences) {
  expect_gradients_match(std::make_unique<FcLayer>("fc2", 4), after_fc(3, 10), {"weight", "bias"});
}

// ---- pooling, on a convolution's output.

struct PoolCase {
  const char* name;
  PoolKind kind;
  int kernel, stride;
};

class PoolGradients : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolGradients, MatchFiniteDifferences) {
  const PoolCase c = GetParam();
  expect_gradients_match(std::make_unique<PoolLayer>("pool1", c.kind, c.kernel, c.stride), after_conv({2, 16, 6, 6}),
                         {});
}

INSTANTIATE_TEST_SUITE_P(Kinds, PoolGradients,
                         ::testing::Values(PoolCase{"max_k2_s2", PoolKind::kMax, 2, 2},
                                           PoolCase{"max_k3_s2_overlapping", PoolKind::kMax, 3, 2},
                                           PoolCase{"avg_k2_s2", PoolKind::kAvg, 2, 2},
                                           PoolCase{"avg_k3_s1_overlapping", PoolKind::kAvg, 3, 1},
                                           PoolCase{"global_avg", PoolKind::kGlobalAvg, 0, 0}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- rectifiers, after a convolution (4-D) and after an fc (2-D). 24 channels do not
// fill whole blocks of 16 (or 8): padding lanes must neither count nor move.

struct ActCase {
  ActKind kind;
  bool after_conv;
};

class ActivationGradients : public ::testing::TestWithParam<ActCase> {};

TEST_P(ActivationGradients, MatchFiniteDifferences) {
  const ActCase c = GetParam();
  auto layer = std::make_unique<ActivationLayer>(c.after_conv ? "conv1.act" : "fc1.act", c.kind, 0.1);
  const Names params = layer->learned() ? Names{"slope"} : Names{};
  expect_gradients_match(std::move(layer), c.after_conv ? after_conv({2, 24, 3, 3}) : after_fc(4, 24), params);
}

INSTANTIATE_TEST_SUITE_P(
    Rectifiers, ActivationGradients,
    ::testing::Values(ActCase{ActKind::kRelu, true}, ActCase{ActKind::kRelu, false},
                      ActCase{ActKind::kLeakyRelu, true}, ActCase{ActKind::kLeakyRelu, false},
                      ActCase{ActKind::kPreluShared, true}, ActCase{ActKind::kPreluShared, false},
                      ActCase{ActKind::kPreluChannelwise, true}, ActCase{ActKind::kPreluChannelwise, false}),
    [](const auto& info) {
      return std::string(act_kind_name(info.param.kind)) + (info.param.after_conv ? "_after_conv" : "_after_fc");
    });

// ---- the checker can fail: one gradient 1% too large is caught, and named.

namespace {

void scale(const dnnl::memory& m, float factor) {
  auto v = to_plain(m);
  for (auto& x : v) x *= factor;
  from_plain(v, m);
}

enum class Off { kInput, kWeight, kBias, kSlope };

// A layer whose backward pass is right but for one gradient, scaled by 1.01.
template <class Base>
class OnePercentOff : public Base {
 public:
  template <class... Args>
  explicit OnePercentOff(Off off, Args&&... args) : Base(std::forward<Args>(args)...), off_(off) {}

  void backward() override {
    Base::backward();
    Context::get().stream.wait();
    scale(wrong_gradient(), 1.01f);
  }

 private:
  const dnnl::memory& wrong_gradient() {
    if (off_ == Off::kInput) return this->in_->diff;
    if constexpr (std::is_base_of_v<WeightLayer, Base>) {
      if (off_ == Off::kWeight) return this->weight()->diff;
      if (off_ == Off::kBias) return this->bias()->diff;
    }
    if constexpr (std::is_same_v<ActivationLayer, Base>) {
      if (off_ == Off::kSlope) return this->slope()->diff;
    }
    throw std::logic_error("no such gradient");
  }

  Off off_;
};

std::set<std::string> failing(std::unique_ptr<Layer> layer, const dnnl::memory::desc& src_md) {
  const auto report = check_layer_gradients(std::move(layer), src_md);
  // Every failure line names the layer.
  if (!report.ok()) {
    EXPECT_NE(report.describe().find("\n  " + report.layer + " "), std::string::npos);
  }
  return report.failing_tensors();
}

}  // namespace

TEST(GradientChecker, CatchesAGradientOnePercentOffAndNamesIt) {
  using S = std::set<std::string>;
  const auto conv_src = md_of({2, 3, 7, 7}, tag::nchw);
  EXPECT_EQ(failing(std::make_unique<OnePercentOff<ConvLayer>>(Off::kInput, "conv1", 16, 3, 1, 2), conv_src),
            S{"input"});
  EXPECT_EQ(failing(std::make_unique<OnePercentOff<ConvLayer>>(Off::kWeight, "conv1", 16, 3, 1, 2), conv_src),
            S{"conv1.weight"});
  EXPECT_EQ(failing(std::make_unique<OnePercentOff<FcLayer>>(Off::kBias, "fc1", 5), after_fc(3, 10)),
            S{"fc1.bias"});
  for (ActKind kind : {ActKind::kPreluShared, ActKind::kPreluChannelwise}) {
    EXPECT_EQ(failing(std::make_unique<OnePercentOff<ActivationLayer>>(Off::kSlope, "conv1.act", kind, 0.1),
                      after_conv({2, 24, 3, 3})),
              S{"conv1.act.slope"})
        << act_kind_name(kind);
  }
  EXPECT_EQ(failing(std::make_unique<OnePercentOff<ActivationLayer>>(Off::kInput, "fc1.act", ActKind::kRelu, 0.0),
                    after_fc(4, 24)),
            S{"input"});
}
