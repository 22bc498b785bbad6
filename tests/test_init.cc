// Initialisers against the formulas of the notes (He et al. 2015, Glorot & Bengio
// 2010), and the paper's variance argument on a deep plain network at init.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "engine/activation_layer.h"
#include "engine/conv_layer.h"
#include "engine/fc_layer.h"
#include "engine/init.h"
#include "engine/pool_layer.h"
#include "engine/rng.h"

using namespace prelude;

namespace {

using Layers = std::vector<std::unique_ptr<Layer>>;

// conv 3x3 64 -> 64 (fan-in = fan-out = 576) feeding PReLU(0.25), then a classifier.
std::unique_ptr<Network> wide_conv(ActKind act = ActKind::kPreluChannelwise, double a = 0.25) {
  Layers l;
  l.push_back(std::make_unique<ConvLayer>("conv1", 64, 3, 1, 1));  // 1 -> 64: fan-in 9
  l.push_back(std::make_unique<ActivationLayer>("conv1.act", act, a));
  l.push_back(std::make_unique<ConvLayer>("conv2", 128, 3, 1, 1));  // 64 -> 128: fan-in 576, fan-out 1152
  l.push_back(std::make_unique<ActivationLayer>("conv2.act", act, a));
  l.push_back(std::make_unique<PoolLayer>("pool1", PoolKind::kGlobalAvg, 0, 0));
  l.push_back(std::make_unique<FcLayer>("fc1", 10));
  return std::make_unique<Network>(std::move(l), dims_t{1, 1, 4, 4});
}

const Param& param(const Network& net, const std::string& name) {
  for (auto& p : net.params().params())
    if (p->name == name) return *p;
  throw std::runtime_error("no param " + name);
}

void sample_moments(const Param& p, double* mean, double* var, double* maxabs) {
  const auto v = to_plain(p.data);
  double s = 0, q = 0, m = 0;
  for (float x : v) s += x, m = std::max(m, std::fabs(static_cast<double>(x)));
  *mean = s / v.size();
  for (float x : v) q += (x - *mean) * (x - *mean);
  *var = q / v.size();
  *maxabs = m;
}

struct Case {
  InitScheme scheme;
  FanMode mode;
  bool slip;
  double expected_var;  // for conv2: fan_in 576, fan_out 1152, a = 0.25
  bool uniform;
};

}  // namespace

class InitVariance : public ::testing::TestWithParam<Case> {};

TEST_P(InitVariance, SampleVarianceMatchesFormula) {
  const Case c = GetParam();
  auto net = wide_conv();
  assign_rectifier_slopes(*net, 0.25);
  InitOptions opt;
  opt.scheme = c.scheme;
  opt.mode = c.mode;
  opt.one_plus_a_slip = c.slip;
  opt.seed = 42;
  initialize(net->params(), opt);
  const Param& w = param(*net, "conv2.weight");  // 73728 samples
  EXPECT_DOUBLE_EQ(init_variance(w, opt), c.expected_var);
  double mean, var, maxabs;
  sample_moments(w, &mean, &var, &maxabs);
  EXPECT_NEAR(mean, 0.0, 4 * std::sqrt(c.expected_var / 73728));
  EXPECT_NEAR(var / c.expected_var, 1.0, 0.02);
  if (c.uniform) {
    EXPECT_LE(maxabs, std::sqrt(3 * c.expected_var));
  } else {
    EXPECT_GT(maxabs, std::sqrt(3 * c.expected_var));  // a normal's tails pass the uniform bound
  }
}

INSTANTIATE_TEST_SUITE_P(
    Formulas, InitVariance,
    ::testing::Values(
        // Kaiming: 2 / ((1 + a^2) n), a = 0.25 -> 1 + a^2 = 1.0625
        Case{InitScheme::kKaimingNormal, FanMode::kFanIn, false, 2.0 / (1.0625 * 576), false},
        Case{InitScheme::kKaimingUniform, FanMode::kFanIn, false, 2.0 / (1.0625 * 576), true},
        Case{InitScheme::kKaimingNormal, FanMode::kFanOut, false, 2.0 / (1.0625 * 1152), false},
        // the (1 + a) slip: 1.25
        Case{InitScheme::kKaimingNormal, FanMode::kFanIn, true, 2.0 / (1.25 * 576), false},
        // Xavier: 2 / (fan_in + fan_out), independent of a
        Case{InitScheme::kXavierNormal, FanMode::kFanIn, false, 2.0 / (576 + 1152), false},
        Case{InitScheme::kXavierUniform, FanMode::kFanIn, false, 2.0 / (576 + 1152), true}));

TEST(Init, BiasesZeroSlopesAtAlphaAndSeedsReproducible) {
  auto a = wide_conv(ActKind::kPreluShared, 0.3), b = wide_conv(ActKind::kPreluShared, 0.3);
  InitOptions opt;
  opt.seed = 5;
  initialize(a->params(), opt);
  initialize(b->params(), opt);
  for (auto& p : a->params().params()) {
    const auto v = to_plain(p->data);
    for (float x : v) {
      if (p->kind == ParamKind::kBias) {
        EXPECT_EQ(x, 0.f);
      } else if (p->kind == ParamKind::kSlope) {
        EXPECT_FLOAT_EQ(x, 0.3f);
      }
    }
  }
  EXPECT_EQ(to_plain(param(*a, "conv2.weight").data), to_plain(param(*b, "conv2.weight").data));
  opt.seed = 6;
  initialize(b->params(), opt);
  EXPECT_NE(to_plain(param(*a, "conv2.weight").data), to_plain(param(*b, "conv2.weight").data));
}

TEST(Init, RectifierSlopeIsTheOneTheLayerFeeds) {
  Layers l;
  l.push_back(std::make_unique<ConvLayer>("conv1", 8, 3, 1, 1));
  l.push_back(std::make_unique<ActivationLayer>("conv1.act", ActKind::kRelu, 0.0));
  l.push_back(std::make_unique<ConvLayer>("conv2", 8, 3, 1, 1));
  l.push_back(std::make_unique<PoolLayer>("pool1", PoolKind::kMax, 2, 2));
  l.push_back(std::make_unique<ActivationLayer>("conv2.act", ActKind::kLeakyRelu, 0.1));
  l.push_back(std::make_unique<FcLayer>("fc1", 10));
  Network net(std::move(l), {1, 1, 4, 4});
  assign_rectifier_slopes(net, 0.7);
  EXPECT_EQ(param(net, "conv1.weight").rectifier_slope, 0.0);
  EXPECT_DOUBLE_EQ(param(net, "conv2.weight").rectifier_slope, 0.1);
  EXPECT_DOUBLE_EQ(param(net, "fc1.weight").rectifier_slope, 0.1);  // classifier: the last one before it
}

// The paper's argument made measurable: a plain 30-layer network (torch_baseline's
// plain(30, 64): 29 conv3x3 with max-pools after conv 10 and 20, global average
// pool, fc10) with PReLU(0.25) at init, on unit-variance input. PyTorch on the same
// net: last/first conv output std 0.4-0.6 (Kaiming), 1e-4 (Xavier), 0.05-0.07 (1+a).
namespace {
double last_over_first_conv_std(InitScheme scheme, bool slip) {
  const int depth = 30, width = 64;
  Layers l;
  for (int i = 0; i < depth - 1; ++i) {
    const std::string name = "conv" + std::to_string(i + 1);
    l.push_back(std::make_unique<ConvLayer>(name, width, 3, 1, 1));
    l.push_back(std::make_unique<ActivationLayer>(name + ".act", ActKind::kPreluChannelwise, 0.25));
    if (i == depth / 3 || i == 2 * depth / 3)
      l.push_back(std::make_unique<PoolLayer>("pool" + std::to_string(i), PoolKind::kMax, 2, 2));
  }
  l.push_back(std::make_unique<PoolLayer>("gap", PoolKind::kGlobalAvg, 0, 0));
  l.push_back(std::make_unique<FcLayer>("fc1", 10));
  Network net(std::move(l), {8, 1, 28, 28});
  assign_rectifier_slopes(net, 0.25);
  InitOptions opt;
  opt.scheme = scheme;
  opt.one_plus_a_slip = slip;
  opt.seed = 1;
  initialize(net.params(), opt);
  Rng rng(3);
  for (int i = 0; i < 8 * 28 * 28; ++i) net.input_data()[i] = static_cast<float>(rng.normal());
  net.forward();
  const auto convs = net.weight_layers();
  const double first = stddev(to_plain(convs.front()->output().data));
  const double last = stddev(to_plain(convs[convs.size() - 2]->output().data));  // conv29
  return last / first;
}
}  // namespace

TEST(PlainNet30, KaimingKeepsActivationScaleXavierLosesIt) {
  const double kaiming = last_over_first_conv_std(InitScheme::kKaimingNormal, false);
  const double xavier = last_over_first_conv_std(InitScheme::kXavierNormal, false);
  const double slip = last_over_first_conv_std(InitScheme::kKaimingNormal, true);
  RecordProperty("kaiming", std::to_string(kaiming));
  RecordProperty("xavier", std::to_string(xavier));
  RecordProperty("slip", std::to_string(slip));
  std::printf("last/first conv std: kaiming %.3g, xavier %.3g, (1+a) slip %.3g\n", kaiming, xavier, slip);
  EXPECT_GT(kaiming, 0.25);
  EXPECT_LT(kaiming, 4.0);
  EXPECT_LT(xavier, 0.01);
  // (1+a) instead of (1+a^2): each layer keeps 1.0625/1.25 of the variance, ~0.1x over 28 layers.
  EXPECT_GT(slip / kaiming, 0.03);
  EXPECT_LT(slip / kaiming, 0.3);
}
