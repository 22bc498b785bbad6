// Layer-level checks against independent expectations: finite differences of the
// loss for every parameter (which also exercises every input gradient between
// layers), the PReLU slope-gradient formula, PReLU(fixed a) == Leaky ReLU(a), and
// convolution against a naive loop.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "engine/activation_layer.h"
#include "engine/conv_layer.h"
#include "engine/fc_layer.h"
#include "engine/init.h"
#include "engine/network.h"
#include "engine/pool_layer.h"
#include "engine/rng.h"

using namespace prelude;

namespace {

using Layers = std::vector<std::unique_ptr<Layer>>;

void fill_input(Network& net, uint64_t seed) {
  Rng rng(seed);
  const int64_t n = logical_size(md_of(net.input_dims(), tag::nchw));
  for (int64_t i = 0; i < n; ++i) net.input_data()[i] = static_cast<float>(rng.normal());
}

// Random weights (Kaiming), random biases and slopes away from zero so every path matters.
void init_random(Network& net, uint64_t seed) {
  InitOptions opt;
  opt.seed = seed;
  initialize(net.params(), opt);
  Rng rng(seed + 7);
  for (auto& p : net.params().params()) {
    if (p->kind == ParamKind::kWeight) continue;
    std::vector<float> v(logical_size(p->md));
    for (auto& x : v)
      x = static_cast<float>(p->kind == ParamKind::kSlope ? rng.uniform(-0.5, 1.5) : rng.uniform(-0.1, 0.1));
    from_plain(v, p->data);
  }
}

double loss_of(Network& net, const std::vector<int32_t>& labels) {
  net.forward();
  const auto r = net.loss(labels.data(), static_cast<int>(labels.size()), false, 1.0);
  return r.loss_sum / labels.size();
}

// Compares analytic gradients of every parameter (a sample of entries each) with
// central differences of the mean loss.
void gradient_check(Network& net, uint64_t seed) {
  init_random(net, seed);
  fill_input(net, seed + 1);
  std::vector<int32_t> labels(net.batch());
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>((i * 7 + 3) % net.num_classes());
  net.forward();
  net.loss(labels.data(), static_cast<int>(labels.size()), true, static_cast<double>(labels.size()));
  net.backward();
  std::vector<float> grads(net.params().grads(), net.params().grads() + net.params().total_floats());

  // Central differences in single precision: a rectifier kink (or a max-pool tie)
  // inside [w - eps, w + eps] spoils the estimate, so an entry is accepted when the
  // estimate agrees at one of three step sizes (Caffe's checker skips kinks instead).
  int checked = 0, bad = 0;
  for (auto& p : net.params().params()) {
    const size_t stride = std::max<size_t>(1, p->size / 12);
    for (size_t j = 0; j < p->size; j += stride) {
      const double ana = grads[p->offset + j];
      float* w = p->value_ptr + j;
      const float orig = *w;
      bool ok = false;
      double num = 0;
      for (double eps : {1e-2, 1e-3, 1e-4}) {
        *w = orig + static_cast<float>(eps);
        const double lp = loss_of(net, labels);
        *w = orig - static_cast<float>(eps);
        const double lm = loss_of(net, labels);
        *w = orig;
        num = (lp - lm) / (2 * eps);
        if (std::fabs(num - ana) <= 1e-3 + 2e-2 * std::fabs(ana)) {
          ok = true;
          break;
        }
      }
      ++checked;
      if (!ok) {
        ++bad;
        ADD_FAILURE() << p->name << "[" << j << "]: analytic " << ana << " numeric " << num;
      }
    }
  }
  EXPECT_GT(checked, 20);
  EXPECT_EQ(bad, 0);
}

Layers stack(ActKind act) {
  Layers l;
  l.push_back(std::make_unique<ConvLayer>("conv1", 8, 3, 1, 1));
  l.push_back(std::make_unique<ActivationLayer>("conv1.act", act, 0.25));
  l.push_back(std::make_unique<PoolLayer>("pool1", PoolKind::kAvg, 2, 2));
  l.push_back(std::make_unique<ConvLayer>("conv2", 16, 3, 1, 2));
  l.push_back(std::make_unique<ActivationLayer>("conv2.act", act, 0.25));
  l.push_back(std::make_unique<PoolLayer>("pool2", PoolKind::kAvg, 2, 2));
  l.push_back(std::make_unique<FcLayer>("fc1", 12));
  l.push_back(std::make_unique<ActivationLayer>("fc1.act", act, 0.25));
  l.push_back(std::make_unique<FcLayer>("fc2", 5));
  return l;
}

}  // namespace

class GradientCheck : public ::testing::TestWithParam<ActKind> {};

TEST_P(GradientCheck, EveryParameterMatchesFiniteDifferences) {
  Network net(stack(GetParam()), {3, 2, 12, 12});
  gradient_check(net, 11);
}

INSTANTIATE_TEST_SUITE_P(AllRectifiers, GradientCheck,
                         ::testing::Values(ActKind::kRelu, ActKind::kLeakyRelu, ActKind::kPreluShared,
                                           ActKind::kPreluChannelwise),
                         [](const auto& info) { return std::string(act_kind_name(info.param)); });

TEST(GradientCheck, GlobalAveragePoolAndStridedConv) {
  Layers l;
  l.push_back(std::make_unique<ConvLayer>("conv1", 16, 3, 0, 2));
  l.push_back(std::make_unique<ActivationLayer>("conv1.act", ActKind::kPreluChannelwise, 0.25));
  l.push_back(std::make_unique<ConvLayer>("conv2", 32, 1, 0, 1));
  l.push_back(std::make_unique<ActivationLayer>("conv2.act", ActKind::kPreluShared, 0.25));
  l.push_back(std::make_unique<PoolLayer>("pool1", PoolKind::kGlobalAvg, 0, 0));
  l.push_back(std::make_unique<FcLayer>("fc1", 10));
  Network net(std::move(l), {4, 3, 9, 9});
  gradient_check(net, 5);
}

// dE/da_c = sum over positions with y < 0 of dE/df * y (channel-wise), and the sum
// over all channels for the shared slope: computed here from the blobs themselves.
TEST(Prelu, SlopeGradientIsTheSumOverNegativeInputs) {
  for (ActKind kind : {ActKind::kPreluChannelwise, ActKind::kPreluShared}) {
    Layers l;
    l.push_back(std::make_unique<ConvLayer>("conv1", 16, 3, 1, 1));
    l.push_back(std::make_unique<ActivationLayer>("conv1.act", kind, 0.25));
    l.push_back(std::make_unique<FcLayer>("fc1", 4));
    Network net(std::move(l), {2, 3, 5, 5});
    init_random(net, 3);
    fill_input(net, 4);
    std::vector<int32_t> labels{1, 3};
    net.forward();
    net.loss(labels.data(), 2, true, 2.0);
    net.backward();
    auto* act = net.activations().at(0);
    const auto y = to_plain(act->input()->data);      // nchw
    const auto dout = to_plain(act->output().diff);
    std::vector<double> expect(16, 0.0);
    for (int n = 0; n < 2; ++n)
      for (int c = 0; c < 16; ++c)
        for (int i = 0; i < 25; ++i) {
          const size_t k = (n * 16 + c) * 25 + i;
          if (y[k] < 0) expect[c] += dout[k] * y[k];
        }
    Param* s = act->slope();
    if (kind == ActKind::kPreluShared) {
      double total = 0;
      for (double e : expect) total += e;
      EXPECT_NEAR(*s->grad_ptr, total, 1e-5 + 1e-4 * std::fabs(total));
    } else {
      for (int c = 0; c < 16; ++c) EXPECT_NEAR(s->grad_ptr[c], expect[c], 1e-5 + 1e-4 * std::fabs(expect[c]));
    }
    // And the input gradient is dE/df * (1 if y > 0 else a).
    const auto din = to_plain(act->input()->diff);
    const auto a = act->slopes();
    for (size_t k = 0; k < y.size(); ++k) {
      const int c = static_cast<int>((k / 25) % 16);
      const double slope = kind == ActKind::kPreluShared ? a[0] : a[c];
      EXPECT_NEAR(din[k], dout[k] * (y[k] > 0 ? 1.0 : slope), 1e-6);
    }
  }
}

// A PReLU whose slope stays at 0.25 computes exactly what Leaky ReLU(0.25) computes,
// forward and backward (two different oneDNN primitives).
TEST(Prelu, FixedSlopeEqualsLeakyRelu) {
  auto make = [](ActKind kind) {
    Layers l;
    l.push_back(std::make_unique<ConvLayer>("conv1", 16, 3, 1, 1));
    l.push_back(std::make_unique<ActivationLayer>("conv1.act", kind, 0.25));
    l.push_back(std::make_unique<ConvLayer>("conv2", 16, 3, 1, 1));
    l.push_back(std::make_unique<ActivationLayer>("conv2.act", kind, 0.25));
    l.push_back(std::make_unique<FcLayer>("fc1", 32));
    l.push_back(std::make_unique<ActivationLayer>("fc1.act", kind, 0.25));
    l.push_back(std::make_unique<FcLayer>("fc2", 10));
    auto net = std::make_unique<Network>(std::move(l), dims_t{4, 1, 8, 8});
    InitOptions opt;
    opt.seed = 9;
    initialize(net->params(), opt);
    fill_input(*net, 10);
    std::vector<int32_t> labels{0, 1, 2, 3};
    net->forward();
    net->loss(labels.data(), 4, true, 4.0);
    net->backward();
    return net;
  };
  auto leaky = make(ActKind::kLeakyRelu);
  auto prelu = make(ActKind::kPreluChannelwise);
  const auto la = to_plain(leaky->logits().data), pa = to_plain(prelu->logits().data);
  ASSERT_EQ(la.size(), pa.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_FLOAT_EQ(la[i], pa[i]);
  // Same weight/bias gradients, parameter by parameter (slopes exist only in PReLU).
  for (auto& lp : leaky->params().params()) {
    const Param* match = nullptr;
    for (auto& pp : prelu->params().params())
      if (pp->name == lp->name) match = pp.get();
    ASSERT_NE(match, nullptr) << lp->name;
    const auto lg = to_plain(lp->diff), pg = to_plain(match->diff);
    for (size_t i = 0; i < lg.size(); ++i) EXPECT_NEAR(lg[i], pg[i], 1e-6 + 1e-5 * std::fabs(lg[i])) << lp->name;
  }
}

// Max pooling is checked by hand rather than by finite differences: near-ties in a
// window make central differences of the loss unreliable in single precision.
TEST(MaxPool, ForwardTakesTheMaximumAndBackwardRoutesToIt) {
  Layers l;
  l.push_back(std::make_unique<ConvLayer>("conv1", 16, 3, 1, 1));
  l.push_back(std::make_unique<PoolLayer>("pool1", PoolKind::kMax, 2, 2));
  l.push_back(std::make_unique<ConvLayer>("conv2", 16, 3, 1, 1));
  l.push_back(std::make_unique<FcLayer>("fc1", 3));
  Network net(std::move(l), {2, 1, 6, 6});
  init_random(net, 31);
  fill_input(net, 32);
  std::vector<int32_t> labels{0, 2};
  net.forward();
  net.loss(labels.data(), 2, true, 2.0);
  net.backward();
  auto* pool = net.layers()[1].get();
  const auto x = to_plain(pool->input()->data), y = to_plain(pool->output().data);
  const auto dx = to_plain(pool->input()->diff), dy = to_plain(pool->output().diff);
  for (int nc = 0; nc < 2 * 16; ++nc)
    for (int oh = 0; oh < 3; ++oh)
      for (int ow = 0; ow < 3; ++ow) {
        int best = -1;
        float m = -1e30f;
        for (int kh = 0; kh < 2; ++kh)
          for (int kw = 0; kw < 2; ++kw) {
            const int i = (nc * 6 + oh * 2 + kh) * 6 + ow * 2 + kw;
            if (x[i] > m) m = x[i], best = i;
          }
        const int o = (nc * 3 + oh) * 3 + ow;
        EXPECT_EQ(y[o], m);
        for (int kh = 0; kh < 2; ++kh)
          for (int kw = 0; kw < 2; ++kw) {
            const int i = (nc * 6 + oh * 2 + kh) * 6 + ow * 2 + kw;
            EXPECT_EQ(dx[i], i == best ? dy[o] : 0.f);
          }
      }
}

// Convolution against a direct loop, with stride, padding and bias.
TEST(Conv, MatchesNaiveLoop) {
  const int N = 2, C = 3, H = 7, W = 6, OC = 5, K = 3, P = 1, S = 2;
  Layers l;
  l.push_back(std::make_unique<ConvLayer>("conv1", OC, K, P, S));
  l.push_back(std::make_unique<PoolLayer>("pool1", PoolKind::kGlobalAvg, 0, 0));
  l.push_back(std::make_unique<FcLayer>("fc1", 2));
  Network net(std::move(l), {N, C, H, W});
  init_random(net, 21);
  fill_input(net, 22);
  net.forward();
  auto* conv = dynamic_cast<ConvLayer*>(net.layers()[0].get());
  const auto w = to_plain(conv->weight()->data), b = to_plain(conv->bias()->data);
  const auto out = to_plain(conv->output().data);
  const float* x = net.input_data();
  const int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
  ASSERT_EQ(out.size(), static_cast<size_t>(N * OC * OH * OW));
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o)
      for (int oh = 0; oh < OH; ++oh)
        for (int ow = 0; ow < OW; ++ow) {
          double acc = b[o];
          for (int c = 0; c < C; ++c)
            for (int kh = 0; kh < K; ++kh)
              for (int kw = 0; kw < K; ++kw) {
                const int ih = oh * S - P + kh, iw = ow * S - P + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += static_cast<double>(w[((o * C + c) * K + kh) * K + kw]) * x[((n * C + c) * H + ih) * W + iw];
              }
          EXPECT_NEAR(out[((n * OC + o) * OH + oh) * OW + ow], acc, 1e-4);
        }
}
