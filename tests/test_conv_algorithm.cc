// The convolution algorithm per layer and pass (training.convAlgorithm):
//  - Winograd forward, backward-data (and the direct backward-weights next to them)
//    against the DIRECT path of the same layer and a naive loop convolution in
//    double, on a small shape and on cnn-small's conv2-4 shapes;
//  - central differences through a Winograd convolution;
//  - AUTO's choice per layer of cnn-small on this CPU (Winograd for conv2-4 forward
//    and backward-data, direct for conv1 and every backward-weights), direct in BF16,
//    and under oneDNN capped to AVX2 direct everywhere while WINOGRAD fails naming
//    training.convAlgorithm, the layer and the reason;
//  - WINOGRAD's errors for what it cannot run (BF16, a 5x5 or strided convolution);
//  - a short training run on Fashion-MNIST with WINOGRAD whose loss tracks DIRECT's.
// Everything that needs Winograd kernels skips on a CPU without AVX-512.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/errors.h"
#include "engine/conv_layer.h"
#include "engine/model.h"
#include "engine/network.h"
#include "engine/rng.h"
#include "engine/trainer.h"
#include "gradient_check.h"
#include "spec/job_spec.h"
#include "spec/model_expansion.h"
#include "test_util.h"

using namespace prelude;
namespace v1 = prelude::v1;

namespace {

using testutil::have_fashion_mnist;
using testutil::kDataRoot;
using testutil::Recorder;
using testutil::spec_from;
using testutil::user_error_of;

#define SKIP_WITHOUT_AVX512()                                                                                   \
  if (!cpu_has_avx512_core())                                                                                  \
  GTEST_SKIP() << "skipped, because oneDNN's Winograd convolutions need AVX-512 and this CPU runs oneDNN as " \
               << effective_isa_name()

struct ConvShape {
  int64_t n, c, h, w;
  int oc;
};

// Values, gradients and, per entry, the sum of |terms| each one adds up (the scale
// float32 rounding errors of any summation order are proportional to).
struct ConvResult {
  std::vector<double> out, in_grad, w_grad, b_grad;
  std::vector<double> out_scale, in_grad_scale, w_grad_scale, b_grad_scale;
};

// 3x3, padding 1, stride 1, plain NCHW / OIHW, in double: the reference.
ConvResult naive_conv(const ConvShape& s, const std::vector<float>& x, const std::vector<float>& wt,
                      const std::vector<float>& b, const std::vector<float>& dy) {
  const int64_t n = s.n, c = s.c, h = s.h, w = s.w, oc = s.oc;
  ConvResult r;
  r.out.assign(n * oc * h * w, 0);
  r.out_scale.assign(r.out.size(), 0);
  r.in_grad.assign(n * c * h * w, 0);
  r.in_grad_scale.assign(r.in_grad.size(), 0);
  r.w_grad.assign(oc * c * 9, 0);
  r.w_grad_scale.assign(r.w_grad.size(), 0);
  r.b_grad.assign(oc, 0);
  r.b_grad_scale.assign(oc, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < oc; ++o)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t xx = 0; xx < w; ++xx) {
          const int64_t oi = ((i * oc + o) * h + y) * w + xx;
          double sum = b[o], scale = std::fabs(b[o]);
          const double g = dy[oi];
          r.b_grad[o] += g;
          r.b_grad_scale[o] += std::fabs(g);
          for (int64_t ci = 0; ci < c; ++ci)
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx) {
                const int64_t iy = y + ky - 1, ix = xx + kx - 1;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                const int64_t ii = ((i * c + ci) * h + iy) * w + ix, wi = ((o * c + ci) * 3 + ky) * 3 + kx;
                sum += static_cast<double>(x[ii]) * wt[wi];
                scale += std::fabs(static_cast<double>(x[ii]) * wt[wi]);
                r.in_grad[ii] += g * wt[wi];
                r.in_grad_scale[ii] += std::fabs(g * wt[wi]);
                r.w_grad[wi] += g * x[ii];
                r.w_grad_scale[wi] += std::fabs(g * x[ii]);
              }
          r.out[oi] = sum;
          r.out_scale[oi] = scale;
        }
  return r;
}

struct LayerOutcome {
  std::vector<float> out, in_grad, w_grad, b_grad;
  std::vector<std::pair<std::string, std::string>> kernels;
  bool fwd_winograd = false, bwd_data_winograd = false;
};

// One ConvLayer alone with `algorithm`: forward, then backward (with the input
// gradient, as a layer that is not the first).
LayerOutcome run_conv(const ConvShape& s, ConvAlgorithm algorithm, const std::vector<float>& x,
                      const std::vector<float>& wt, const std::vector<float>& b, const std::vector<float>& dy) {
  auto& ctx = Context::get();
  ConvLayer layer("conv", s.oc, 3, 1, 1);
  layer.set_algorithm(algorithm);
  ParamStore params;
  const auto in_md = md_of({s.n, s.c, s.h, s.w}, tag::nchw);
  layer.setup(in_md, params);
  params.finalize();
  Blob input{dnnl::memory(in_md, ctx.engine), dnnl::memory(in_md, ctx.engine)};
  layer.bind(&input, /*need_input_grad=*/true);
  from_plain(x, input.data);
  from_plain(wt, layer.weight()->data);
  from_plain(b, layer.bias()->data);
  from_plain(dy, layer.output().diff);
  layer.refresh_weights();
  layer.forward();
  layer.backward();
  ctx.stream.wait();
  return {to_plain(layer.output().data), to_plain(input.diff), to_plain(layer.weight()->diff),
          to_plain(layer.bias()->diff), layer.kernels(), layer.forward_winograd(), layer.backward_data_winograd()};
}

std::vector<float> normals(Rng& rng, int64_t n) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// The gradient check's tolerance (rel 1e-3, abs 1e-5), with the magnitude of the
// terms summed as the scale: an entry that sums to near 0 from large terms may
// carry the rounding of those terms. Returns the worst |got - want| / allowed.
double worst_ratio(const std::string& what, const std::vector<float>& got, const std::vector<double>& want,
                   const std::vector<double>& scale) {
  EXPECT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  size_t bad = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const double allowed = 1e-5 + 1e-3 * scale[i];
    const double ratio = std::fabs(got[i] - want[i]) / allowed;
    worst = std::max(worst, ratio);
    if (!(ratio <= 1) && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: " << got[i] << " against " << want[i] << " (terms sum to " << scale[i]
                    << ")";
  }
  return worst;
}

double worst_diff_ratio(const std::string& what, const std::vector<float>& a, const std::vector<float>& b,
                        const std::vector<double>& scale) {
  std::vector<double> bd(b.begin(), b.end());
  // Both sides round: twice the one-sided allowance.
  std::vector<double> twice(scale.size());
  for (size_t i = 0; i < scale.size(); ++i) twice[i] = 2 * scale[i];
  return worst_ratio(what, a, bd, twice);
}

void check_against_direct_and_naive(const ConvShape& s, uint64_t seed) {
  Rng rng(seed);
  const auto x = normals(rng, s.n * s.c * s.h * s.w), wt = normals(rng, int64_t{s.oc} * s.c * 9),
             b = normals(rng, s.oc), dy = normals(rng, s.n * s.oc * s.h * s.w);
  const ConvResult want = naive_conv(s, x, wt, b, dy);
  const LayerOutcome direct = run_conv(s, ConvAlgorithm::kDirect, x, wt, b, dy);
  const LayerOutcome wino = run_conv(s, ConvAlgorithm::kWinograd, x, wt, b, dy);

  ASSERT_TRUE(wino.fwd_winograd && wino.bwd_data_winograd);
  EXPECT_FALSE(direct.fwd_winograd || direct.bwd_data_winograd);
  for (const auto& [pass, impl] : wino.kernels) {
    if (pass == "backward-weights") EXPECT_EQ(impl.find("wino"), std::string::npos) << impl;
    else EXPECT_NE(impl.find("jit_wino"), std::string::npos) << pass << ": " << impl;
  }
  std::printf("%lldx%lldx%lldx%lld -> %d: worst error / allowed (1e-5 + 1e-3 * sum|terms|):\n",
              static_cast<long long>(s.n), static_cast<long long>(s.c), static_cast<long long>(s.h),
              static_cast<long long>(s.w), s.oc);
  std::printf("  winograd vs naive: forward %.3f backward-data %.3f backward-weights %.3f bias %.3f\n",
              worst_ratio("winograd forward", wino.out, want.out, want.out_scale),
              worst_ratio("winograd backward-data", wino.in_grad, want.in_grad, want.in_grad_scale),
              worst_ratio("winograd-layer backward-weights", wino.w_grad, want.w_grad, want.w_grad_scale),
              worst_ratio("winograd-layer bias", wino.b_grad, want.b_grad, want.b_grad_scale));
  std::printf("  direct vs naive:   forward %.3f backward-data %.3f\n",
              worst_ratio("direct forward", direct.out, want.out, want.out_scale),
              worst_ratio("direct backward-data", direct.in_grad, want.in_grad, want.in_grad_scale));
  std::printf("  winograd vs direct: forward %.3f backward-data %.3f backward-weights %.3f\n",
              worst_diff_ratio("winograd vs direct forward", wino.out, direct.out, want.out_scale),
              worst_diff_ratio("winograd vs direct backward-data", wino.in_grad, direct.in_grad, want.in_grad_scale),
              worst_diff_ratio("winograd vs direct backward-weights", wino.w_grad, direct.w_grad, want.w_grad_scale));
}

}  // namespace

// The naive loop is independent of oneDNN; a wrong Winograd transform, a dropped
// tile or border, or a gradient routed to the wrong channel is off by whole terms,
// orders of magnitude beyond the allowance.
TEST(ConvAlgorithmLayer, WinogradMatchesDirectAndANaiveLoopOnASmallShape) {
  SKIP_WITHOUT_AVX512();
  check_against_direct_and_naive({2, 16, 9, 7, 16}, 1);  // odd sizes: partial 4x4 tiles at the borders
}

TEST(ConvAlgorithmLayer, WinogradMatchesDirectOnCnnSmallShapes) {
  SKIP_WITHOUT_AVX512();
  check_against_direct_and_naive({4, 1, 28, 28, 32}, 2);   // conv1 (AUTO keeps it direct; WINOGRAD runs it)
  check_against_direct_and_naive({4, 32, 28, 28, 32}, 3);  // conv2
  check_against_direct_and_naive({4, 32, 14, 14, 64}, 4);  // conv3
  check_against_direct_and_naive({4, 64, 14, 14, 64}, 5);  // conv4
}

// Central differences through a Winograd convolution (tests/gradient_check.h). The
// checker's inputs make a direct convolution exact in float32; Winograd's transforms
// multiply by non-dyadic constants and round, and a central difference divides that
// rounding of the loss by 2 * 2^-7: the numeric side is off by up to ~2.5e-4 here
// (measured; 12x the default absolute tolerance of 1e-5). Hence abs_tol 1e-3 (rel_tol
// stays 1e-3): a gradient 1% off still fails wherever |g| > 0.1, and the analytic
// Winograd gradients are held to the default tolerance against the naive loop above.
TEST(ConvAlgorithmLayer, WinogradGradientsMatchCentralDifferences) {
  SKIP_WITHOUT_AVX512();
  auto conv = std::make_unique<ConvLayer>("wconv", 8, 3, 1, 1);
  conv->set_algorithm(ConvAlgorithm::kWinograd);
  GradientCheckOptions opt;
  opt.abs_tol = 1e-3;
  const auto report = check_layer_gradients(std::move(conv), md_of({1, 8, 6, 6}, tag::nchw), opt);
  EXPECT_TRUE(report.ok()) << report.describe();
  EXPECT_EQ(report.tensors, (std::vector<std::string>{"input", "wconv.weight", "wconv.bias"}));
  std::printf("winograd gradient check: %zu entries, worst %.3f of the tolerance\n", report.entries, report.worst);
}

namespace {

std::unique_ptr<Network> cnn_small(Precision precision, ConvAlgorithm algorithm, int64_t batch = 64) {
  const auto spec = spec_from(R"({"name":"k","dataset":{"name":"fashion-mnist"},
      "model":{"preset":"cnn-small","activation":{"kind":"PRELU_CHANNELWISE"}}})");
  return build_network(expand_model(spec.model(), 10), {batch, 1, 28, 28}, precision, algorithm);
}

// "conv1 forward jit:avx512_core, ..." per convolution, for messages.
std::string conv_kernels(const Network& net) {
  std::string out;
  for (const auto& l : net.layers())
    if (std::string(l->type()) == "conv")
      for (const auto& [what, impl] : l->kernels()) out += l->name() + " " + what + " " + impl + "\n";
  return out;
}

}  // namespace

// AUTO's rule on an AVX-512 CPU in FP32: conv1 (1 input channel) direct, conv2-4
// Winograd for forward and backward-data, every backward-weights direct.
TEST(ConvAlgorithmAuto, CnnSmallRunsWinogradForConv2To4) {
  SKIP_WITHOUT_AVX512();
  auto net = cnn_small(Precision::kF32, ConvAlgorithm::kAuto);
  const auto choices = conv_algorithm_choices(*net);
  for (const auto& c : choices) std::printf("%s\n", c.c_str());
  ASSERT_EQ(choices.size(), 4u);
  EXPECT_EQ(choices[0],
            "conv1: forward and backward-data direct (only 1 input channel (Winograd wins from 32)), "
            "backward-weights direct");
  for (int i = 1; i < 4; ++i)
    EXPECT_EQ(choices[i], "conv" + std::to_string(i + 1) +
                              ": forward and backward-data winograd, backward-weights direct");
  const std::string kernels = conv_kernels(*net);
  std::printf("%s", kernels.c_str());
  for (const auto& l : net->layers()) {
    auto* conv = dynamic_cast<ConvLayer*>(l.get());
    if (!conv) continue;
    const bool wino = conv->name() != "conv1";
    EXPECT_EQ(conv->forward_winograd(), wino) << conv->name();
    EXPECT_EQ(conv->backward_data_winograd(), wino) << conv->name();
    for (const auto& [what, impl] : conv->kernels()) {
      const bool want = wino && what != "backward-weights";
      EXPECT_EQ(impl.find("jit_wino") != std::string::npos, want) << conv->name() << " " << what << ": " << impl;
      EXPECT_NE(impl.rfind("ref", 0), 0u) << conv->name() << " " << what << ": " << impl;
    }
  }
  // DIRECT is direct everywhere.
  auto direct = cnn_small(Precision::kF32, ConvAlgorithm::kDirect);
  EXPECT_EQ(conv_kernels(*direct).find("wino"), std::string::npos) << conv_kernels(*direct);
}

TEST(ConvAlgorithmAuto, Bf16StaysDirect) {
  if (!cpu_has_bf16())
    GTEST_SKIP() << "skipped, because the CPU lacks avx512_bf16 (oneDNN: " << effective_isa_name() << ")";
  auto net = cnn_small(Precision::kBf16, ConvAlgorithm::kAuto);
  for (const auto& c : conv_algorithm_choices(*net)) {
    EXPECT_NE(c.find("forward and backward-data direct (BF16"), std::string::npos) << c;
  }
  EXPECT_EQ(conv_kernels(*net).find("wino"), std::string::npos) << conv_kernels(*net);
  // WINOGRAD in BF16 fails at setup naming the first convolution (validation stops it
  // earlier in a job; this is the engine's own check).
  const std::string err = user_error_of([] { cnn_small(Precision::kBf16, ConvAlgorithm::kWinograd); });
  EXPECT_EQ(err.rfind("training.convAlgorithm: WINOGRAD cannot run conv1 forward", 0), 0u) << err;
  EXPECT_NE(err.find("bf16"), std::string::npos) << err;
}

// In a fresh process (the death test re-runs this binary for this test alone), with
// oneDNN capped to AVX2 before it creates anything: the class of CPU without AVX-512.
TEST(ConvAlgorithmAuto, OnAvx2AutoIsDirectAndWinogradFailsNamingTheLayer) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx2);
        if (dnnl::get_effective_cpu_isa() != dnnl::cpu_isa::avx2) {
          std::fprintf(stderr, "skipped, because this CPU has no AVX2\n");
          std::exit(0);
        }
        auto net = cnn_small(Precision::kF32, ConvAlgorithm::kAuto);
        bool ok = conv_kernels(*net).find("wino") == std::string::npos;
        for (const auto& c : conv_algorithm_choices(*net)) {
          std::fprintf(stderr, "%s\n", c.c_str());
          ok = ok && c.find("forward and backward-data direct") != std::string::npos;
        }
        const std::string err = user_error_of([] { cnn_small(Precision::kF32, ConvAlgorithm::kWinograd); });
        std::fprintf(stderr, "error: %s\n", err.c_str());
        ok = ok && err.find("avx2") != std::string::npos;
        std::exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "error: training.convAlgorithm: WINOGRAD cannot run conv1 forward \\(1->32 "
                                    "channels, 3x3 stride 1 on 28x28\\): oneDNN has no Winograd kernel for it on "
                                    "this CPU");
}

// A convolution Winograd cannot do: WINOGRAD names it; AUTO runs it direct.
TEST(ConvAlgorithmWinograd, AShapeItCannotRunIsAnErrorNamingTheLayer) {
  SKIP_WITHOUT_AVX512();
  const auto spec = spec_from(R"({"name":"k","dataset":{"name":"fashion-mnist"},"model":{"layers":[
      {"conv":{"outChannels":16,"kernel":3,"padding":1}},{"activation":{}},
      {"conv":{"outChannels":16,"kernel":3,"padding":1,"stride":2}},{"activation":{}},{"fc":{"outFeatures":10}}]}})");
  const auto layers = expand_model(spec.model(), 10);
  const std::string err =
      user_error_of([&] { build_network(layers, {8, 1, 28, 28}, Precision::kF32, ConvAlgorithm::kWinograd); });
  EXPECT_EQ(err, "training.convAlgorithm: WINOGRAD cannot run conv2 forward (16->16 channels, 3x3 stride 2 on 28x28): "
                 "oneDNN's Winograd convolution is 3x3 stride 1 only; use AUTO or DIRECT");
  auto net = build_network(layers, {8, 1, 28, 28}, Precision::kF32, ConvAlgorithm::kAuto);
  const auto choices = conv_algorithm_choices(*net);
  ASSERT_EQ(choices.size(), 2u);
  EXPECT_NE(choices[0].find("direct (only 1 input channel"), std::string::npos) << choices[0];
  EXPECT_NE(choices[1].find("direct (3x3 stride 2 (Winograd is 3x3 stride 1 only))"), std::string::npos)
      << choices[1];
}

TEST(ConvAlgorithmSpec, DefaultsToAutoAndRejectsWinogradWithBf16) {
  EXPECT_EQ(spec_from(R"({"name":"p","dataset":{"name":"fashion-mnist"}})").training().conv_algorithm(),
            v1::TrainingSpec::AUTO);
  EXPECT_EQ(spec_from(R"({"name":"p","dataset":{"name":"fashion-mnist"},"training":{"convAlgorithm":"WINOGRAD"}})")
                .training()
                .conv_algorithm(),
            v1::TrainingSpec::WINOGRAD);
  EXPECT_EQ(conv_algorithm_from(v1::TrainingSpec::CONV_ALGORITHM_UNSPECIFIED), ConvAlgorithm::kAuto);
  std::string err = user_error_of([] {
    spec_from(R"({"name":"p","dataset":{"name":"fashion-mnist"},"training":{"convAlgorithm":"FFT"}})");
  });
  EXPECT_NE(err.find("convAlgorithm"), std::string::npos) << err;
  err = user_error_of([] {
    spec_from(R"({"name":"p","dataset":{"name":"fashion-mnist"},"training":{"convAlgorithm":7}})");
  });
  EXPECT_NE(err.find("training.convAlgorithm"), std::string::npos) << err;
  err = user_error_of([] {
    spec_from(R"({"name":"p","dataset":{"name":"fashion-mnist"},
                  "training":{"convAlgorithm":"WINOGRAD","precision":"BF16"}})");
  });
  EXPECT_EQ(err, "training.convAlgorithm: WINOGRAD needs training.precision FP32 (oneDNN has no bf16 Winograd "
                 "convolution); use AUTO or DIRECT with BF16");
}

namespace {

struct ProgressRecorder : Recorder {
  std::vector<std::string> lines;
  void on_progress(const std::string& line) override { lines.push_back(line); }
};

}  // namespace

// 30 steps of cnn-small (batch 64, channel-wise PReLU) on 1,920 Fashion-MNIST
// images, the same seed and order with DIRECT and WINOGRAD. The two differ only by
// float32 rounding, which early SGD (the loss starts near 4) amplifies about 2x every
// 5 steps: measured here 2e-5 at step 5, 8e-4 at step 10, 0.011 at step 30 (and 0.011
// at step 40). The loss at each logged step must stay within 0.05 of DIRECT's;
// a wrong Winograd gradient leaves the loss near ln 10 = 2.3 or far off DIRECT's
// ~0.8. And the worker's log names each layer's algorithm once.
TEST(ConvAlgorithmTraining, WinogradLossTracksDirect) {
  SKIP_WITHOUT_AVX512();
  if (!have_fashion_mnist()) GTEST_SKIP() << "skipped, because Fashion-MNIST is not installed";
  auto train = [](const char* algorithm, ProgressRecorder& rec) {
    const auto spec = spec_from(std::string(R"({"name":"wino","dataset":{"name":"fashion-mnist","trainLimit":1920},
        "model":{"preset":"cnn-small","activation":{"kind":"PRELU_CHANNELWISE"}},
        "training":{"epochs":1,"batchSize":64,"learningRate":0.01,"logEverySteps":5,"skipTest":true,
        "convAlgorithm":")") + algorithm + R"("}})");
    RunOptions opt;
    opt.data_root = kDataRoot;
    run_training(spec, opt, rec);
    return rec.of("step");
  };
  ProgressRecorder drec, wrec;
  const auto direct = train("DIRECT", drec);
  const auto wino = train("WINOGRAD", wrec);
  ASSERT_EQ(direct.size(), 6u);
  ASSERT_EQ(wino.size(), direct.size());
  double worst = 0;
  for (size_t i = 0; i < direct.size(); ++i) {
    std::printf("step %3d  DIRECT %.5f  WINOGRAD %.5f\n", direct[i].step(), direct[i].loss(), wino[i].loss());
    EXPECT_NEAR(wino[i].loss(), direct[i].loss(), 0.05) << "step " << direct[i].step();
    worst = std::max(worst, std::fabs(wino[i].loss() - direct[i].loss()));
  }
  std::printf("largest loss difference: %.2e\n", worst);
  EXPECT_LT(direct.back().loss(), 0.8 * direct.front().loss());  // it trained at all

  auto lines_with = [](const ProgressRecorder& r, const std::string& s) {
    int count = 0;
    for (const auto& l : r.lines) count += l.find(s) != std::string::npos;
    return count;
  };
  EXPECT_EQ(lines_with(wrec, "convolution (WINOGRAD) conv2: forward and backward-data winograd"), 1);
  EXPECT_EQ(lines_with(wrec, "convolution (WINOGRAD) "), 4);
  EXPECT_EQ(lines_with(drec, "convolution (DIRECT) conv4: forward and backward-data direct, backward-weights direct"),
            1);
}

// Winograd's scratchpad grows with the batch and oneDNN allocates it when it creates
// the primitive: 1024 channels at batch 50,000 would need ~700 GB. AUTO takes direct
// there (saying why); WINOGRAD is an error naming the scratchpad, not an internal
// "could not create a primitive".
TEST(ConvAlgorithmWinograd, AScratchpadBeyondTheMemoryBudget) {
  SKIP_WITHOUT_AVX512();
  const auto in_md = md_of({50000, 1024, 28, 28}, tag::nchw);
  ConvLayer wino("big", 1024, 3, 1, 1);
  wino.set_algorithm(ConvAlgorithm::kWinograd);
  ParamStore p1;
  const std::string err = user_error_of([&] { wino.setup(in_md, p1); });
  EXPECT_EQ(err.rfind("training.convAlgorithm: WINOGRAD cannot run big forward", 0), 0u) << err;
  EXPECT_NE(err.find("at batch 50000 its scratchpad of"), std::string::npos) << err;
  ConvLayer autol("big", 1024, 3, 1, 1);
  autol.set_algorithm(ConvAlgorithm::kAuto);
  ParamStore p2;
  autol.setup(in_md, p2);
  EXPECT_FALSE(autol.forward_winograd() || autol.backward_data_winograd());
  EXPECT_NE(autol.algorithm_choice().find("direct (its scratchpad of"), std::string::npos) << autol.algorithm_choice();
  std::printf("%s\n%s\n", err.c_str(), autol.algorithm_choice().c_str());
}
