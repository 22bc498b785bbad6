// Mixed-precision bf16 training (training.precision BF16) against the f32 path:
//  - every layer kind's forward and backward in bf16 against the same layer in f32
//    on the same (bf16-exact) inputs, weights and output gradients;
//  - every primitive of cnn-small in BF16 runs a JIT bf16 kernel, and a reference
//    kernel in BF16 is an error;
//  - without avx512_bf16 (oneDNN capped to AVX2) a BF16 network fails at setup
//    with an error naming the ISA;
//  - a short BF16 run on Fashion-MNIST learns like the FP32 one, and a BF16
//    checkpoint resumes bit-identically.
// Everything but the ISA test skips on a CPU without avx512_bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "artifacts/checkpoint_file.h"
#include "common/errors.h"
#include "engine/activation_layer.h"
#include "engine/conv_layer.h"
#include "engine/fc_layer.h"
#include "engine/model.h"
#include "engine/network.h"
#include "engine/pool_layer.h"
#include "engine/rng.h"
#include "spec/job_spec.h"
#include "test_util.h"

using namespace prelude;
namespace v1 = prelude::v1;

namespace {

using testutil::have_fashion_mnist;
using testutil::kDataRoot;
using testutil::Recorder;
using testutil::spec_from;
using testutil::user_error_of;

#define SKIP_WITHOUT_BF16()                                                                 \
  if (!cpu_has_bf16())                                                                      \
  GTEST_SKIP() << "skipped, because the CPU lacks avx512_bf16 (oneDNN: " << effective_isa_name() << ")"

// Round to the nearest bf16 (ties to even), independent of oneDNN.
float bf16_round(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7fff + ((u >> 16) & 1);
  u &= 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

std::vector<float> rounded_normals(Rng& rng, int64_t n, double scale) {
  std::vector<float> v(n);
  for (auto& x : v) x = bf16_round(static_cast<float>(rng.normal() * scale));
  return v;
}

// Inputs exact in bf16 and distinct within every 2x2 window (a max-pool tie would
// let f32 and bf16 route a gradient to different places): an integer in [-6, 6]
// plus a quarter per position in the window.
std::vector<float> window_distinct(Rng& rng, const dims_t& d) {
  std::vector<float> v(logical_size(md_of(d, tag::nchw)));
  const int64_t h = d[2], w = d[3];
  for (size_t i = 0; i < v.size(); ++i) {
    const int64_t x = i % w, y = (i / w) % h;
    const double whole = std::round(std::max(-6.0, std::min(6.0, rng.normal() * 3)));
    v[i] = static_cast<float>(whole + 0.25 * ((y & 1) * 2 + (x & 1)) - 0.375);
  }
  return v;
}

struct LayerRun {
  dt out_type;
  std::vector<float> out, in_grad;
  std::vector<std::vector<float>> param_grads;
  std::vector<std::string> param_names;
};

using MakeLayer = std::function<std::unique_ptr<Layer>()>;

// One layer alone, input {N, C, H, W} of `in_type`: random (bf16-exact) input,
// weights and output gradient from `seed`, forward, backward.
LayerRun run_layer(const MakeLayer& make, Precision precision, const dims_t& in_dims, dt in_type, bool need_input_grad,
                   uint64_t seed) {
  auto& ctx = Context::get();
  auto layer = make();
  layer->set_precision(precision);
  ParamStore params;
  const dnnl::memory::desc in_md(in_dims, in_type, tag::nchw);
  const auto out_md = layer->setup(in_md, params);
  params.finalize();
  Rng rng(seed);
  for (auto& p : params.params()) {
    const int64_t n = logical_size(p->md);
    std::vector<float> v;
    switch (p->kind) {
      case ParamKind::kWeight: v = rounded_normals(rng, n, 1.0 / std::sqrt(static_cast<double>(p->fan_in))); break;
      case ParamKind::kBias: v = rounded_normals(rng, n, 0.1); break;
      case ParamKind::kSlope:
        for (int64_t i = 0; i < n; ++i) v.push_back(static_cast<float>(rng.uniform(-0.5, 1.5)));
        break;
    }
    from_plain(v, p->data);
  }
  Blob in{dnnl::memory(in_md, ctx.engine), dnnl::memory(in_md, ctx.engine)};
  from_plain(window_distinct(rng, in_dims), in.data);
  layer->bind(&in, need_input_grad);
  layer->refresh_weights();
  layer->forward();
  ctx.stream.wait();
  LayerRun r;
  r.out_type = out_md.data_type();
  r.out = to_plain(layer->output().data);
  from_plain(rounded_normals(rng, logical_size(out_md), 1.0), layer->output().diff);
  layer->backward();
  ctx.stream.wait();
  if (need_input_grad) r.in_grad = to_plain(in.diff);
  for (auto& p : params.params()) {
    r.param_names.push_back(p->name);
    r.param_grads.push_back(to_plain(p->diff));
  }
  return r;
}

// bf16 tolerance: the largest error at most 1% of the largest expected magnitude
// (bf16 keeps 8 significant bits, a relative step of 2^-8 = 0.4%), and expectations
// that are not all zero (a test that compares nothing would pass).
void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what,
                  double tol = 1e-2) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double max_want = 0, max_err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_want = std::max(max_want, std::fabs(static_cast<double>(want[i])));
    max_err = std::max(max_err, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  EXPECT_GT(max_want, 0.0) << what << ": the expectation is all zeros";
  EXPECT_LE(max_err, tol * max_want) << what << ": largest error " << max_err << " against largest value " << max_want;
}

// The layer in BF16 against itself in FP32 (the expectation: the f32 path, fed the
// same bf16-exact values; the bf16 weights are exactly the f32 ones).
void check_layer(const std::string& what, const MakeLayer& make, const dims_t& in_dims, dt bf16_in_type,
                 dt want_out_type, bool need_input_grad = true) {
  SCOPED_TRACE(what);
  const LayerRun want = run_layer(make, Precision::kF32, in_dims, dt::f32, need_input_grad, 42);
  const LayerRun got = run_layer(make, Precision::kBf16, in_dims, bf16_in_type, need_input_grad, 42);
  EXPECT_EQ(got.out_type, want_out_type) << what << ": output type";
  expect_close(got.out, want.out, what + " forward");
  if (need_input_grad) expect_close(got.in_grad, want.in_grad, what + " input gradient");
  ASSERT_EQ(got.param_grads.size(), want.param_grads.size());
  for (size_t i = 0; i < want.param_grads.size(); ++i)
    expect_close(got.param_grads[i], want.param_grads[i], what + " gradient of " + want.param_names[i]);
}

}  // namespace

TEST(Bf16Layers, ConvolutionForwardAndBackward) {
  SKIP_WITHOUT_BF16();
  check_layer("conv 3x3 pad 1", [] { return std::make_unique<ConvLayer>("conv", 32, 3, 1, 1); }, {8, 16, 12, 12},
              dt::bf16, dt::bf16);
  check_layer("conv 5x5 stride 2", [] { return std::make_unique<ConvLayer>("conv", 32, 5, 2, 2); }, {4, 16, 15, 15},
              dt::bf16, dt::bf16);
  // The first layer: f32 images converted by the layer, no input gradient.
  check_layer("conv on f32 images", [] { return std::make_unique<ConvLayer>("conv", 32, 3, 1, 1); }, {8, 1, 28, 28},
              dt::f32, dt::bf16, /*need_input_grad=*/false);
}

TEST(Bf16Layers, PoolingForwardAndBackward) {
  SKIP_WITHOUT_BF16();
  check_layer("maxpool", [] { return std::make_unique<PoolLayer>("pool", PoolKind::kMax, 2, 2); }, {8, 32, 12, 12},
              dt::bf16, dt::bf16);
  check_layer("avgpool", [] { return std::make_unique<PoolLayer>("pool", PoolKind::kAvg, 2, 2); }, {8, 32, 12, 12},
              dt::bf16, dt::bf16);
  check_layer("global avgpool", [] { return std::make_unique<PoolLayer>("pool", PoolKind::kGlobalAvg, 0, 0); },
              {8, 32, 6, 6}, dt::bf16, dt::bf16);
}

TEST(Bf16Layers, RectifiersForwardAndBackward) {
  SKIP_WITHOUT_BF16();
  const dims_t d{8, 32, 10, 10};
  check_layer("relu", [] { return std::make_unique<ActivationLayer>("act", ActKind::kRelu, 0.0); }, d, dt::bf16,
              dt::bf16);
  check_layer("leaky relu", [] { return std::make_unique<ActivationLayer>("act", ActKind::kLeakyRelu, 0.1); }, d,
              dt::bf16, dt::bf16);
  // The slopes and their gradients stay f32 (compared like the weights' gradients).
  check_layer("prelu shared", [] { return std::make_unique<ActivationLayer>("act", ActKind::kPreluShared, 0.25); },
              d, dt::bf16, dt::bf16);
  check_layer("prelu channel-wise",
              [] { return std::make_unique<ActivationLayer>("act", ActKind::kPreluChannelwise, 0.25); }, d, dt::bf16,
              dt::bf16);
}

TEST(Bf16Layers, FullyConnectedGivesF32) {
  SKIP_WITHOUT_BF16();
  // After a bf16 pooling: bf16 input and weights, f32 output (the logits stay f32).
  check_layer("fc", [] { return std::make_unique<FcLayer>("fc", 64); }, {8, 32, 4, 4}, dt::bf16, dt::f32);
  // After another fc (f32): stays f32.
  check_layer("fc after fc", [] { return std::make_unique<FcLayer>("fc", 10); }, {8, 64, 1, 1}, dt::f32, dt::f32);
}

TEST(Bf16Network, EveryPrimitiveOfCnnSmallIsAJitBf16Kernel) {
  SKIP_WITHOUT_BF16();
  for (const char* act : {"PRELU_CHANNELWISE", "PRELU_SHARED", "RELU"}) {
    SCOPED_TRACE(act);
    const auto spec = spec_from(std::string(R"({"name":"k","dataset":{"name":"fashion-mnist"},
        "model":{"preset":"cnn-small","activation":{"kind":")") +
                                act + R"("}},"training":{"precision":"BF16"}})");
    auto net = build_network(expand_model(spec.model(), 10), {64, 1, 28, 28}, Precision::kBf16);
    int convs = 0;
    for (auto& l : net->layers()) {
      ASSERT_FALSE(l->kernels().empty()) << l->name();
      for (const auto& [what, impl] : l->kernels()) {
        std::printf("%s %-10s %-16s %s\n", act, l->name().c_str(), what.c_str(), impl.c_str());
        EXPECT_NE(impl.rfind("ref", 0), 0u) << l->name() << " " << what << ": " << impl;
        if (std::string(l->type()) == "conv") {
          ++convs;
          EXPECT_NE(impl.find("bf16"), std::string::npos) << l->name() << " " << what << " is no bf16 kernel: " << impl;
        }
      }
      // Activations between the convolution and pooling layers are bf16.
      if (l->name() != "fc1" && l->name() != "fc1.act" && l->name() != "fc2")
        EXPECT_EQ(l->output_desc().data_type(), dt::bf16) << l->name();
    }
    EXPECT_EQ(convs, 4 * 3 - 1);  // conv1 has no backward-data
    EXPECT_EQ(net->logits().md().data_type(), dt::f32);
  }
}

TEST(Bf16Network, AReferenceKernelIsAnError) {
  SKIP_WITHOUT_BF16();
  // PReLU with one broadcast weight over blocked data: oneDNN 2.6 has only its
  // reference kernel for it (activation_layer.h).
  auto& eng = Context::get().engine;
  const dnnl::memory::desc src({8, 32, 6, 6}, dt::bf16, tag::nChw16c);
  dnnl::prelu_forward::desc fd(dnnl::prop_kind::forward_training, src, md_of({1, 1, 1, 1}, tag::abcd));
  dnnl::prelu_forward::primitive_desc pd(fd, eng);
  ASSERT_EQ(impl_name(pd).rfind("ref", 0), 0u) << "expected a reference kernel, got " << impl_name(pd);
  const std::string err = user_error_of([&] { check_kernel(pd, "act forward", Precision::kBf16); });
  EXPECT_NE(err.find("training.precision"), std::string::npos) << err;
  EXPECT_NE(err.find("reference kernel"), std::string::npos) << err;
  EXPECT_EQ(user_error_of([&] { check_kernel(pd, "act forward", Precision::kF32); }), "");  // FP32 only warns
}

// In a fresh process (the death test re-runs this binary for this test alone), with
// oneDNN capped to AVX2 before it creates anything: the class of CPU without bf16.
TEST(Bf16Network, WithoutAvx512Bf16SetupFailsNamingTheIsa) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx2);
        const auto spec = spec_from(R"({"name":"k","dataset":{"name":"fashion-mnist"},
            "training":{"precision":"BF16"}})");
        const std::string err = user_error_of(
            [&] { build_network(expand_model(spec.model(), 10), {64, 1, 28, 28}, Precision::kBf16); });
        std::fprintf(stderr, "error: %s\n", err.c_str());
        const bool ok = err.rfind("training.precision: ", 0) == 0 && err.find("avx512_bf16") != std::string::npos &&
                        err.find("avx2") != std::string::npos;
        // And FP32 still builds there.
        build_network(expand_model(spec.model(), 10), {64, 1, 28, 28}, Precision::kF32);
        std::exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "training.precision: BF16 needs a CPU with AVX-512 BF16");
}

namespace {

struct RunOutcome {
  std::vector<v1::TrainingEvent> steps;
  v1::TrainingEvent summary;
  std::map<int64_t, v1::Checkpoint> checkpoints;
  std::vector<float> values, momentum;
};

RunOutcome train(const v1::JobSpec& spec, const v1::Checkpoint* resume = nullptr) {
  RunOutcome out;
  Recorder rec;
  RunOptions opt;
  opt.data_root = kDataRoot;
  if (resume) opt.resume_from = [resume] { return *resume; };
  opt.resume_source = "test.ckpt";
  opt.on_checkpoint = [&](const v1::Checkpoint& c, bool final) {
    out.checkpoints[final ? -1 : c.progress().step()] = decode_checkpoint(encode_checkpoint(c), "mem");
  };
  opt.on_finish = [&](const ParamStore& p) {
    out.values.assign(p.values(), p.values() + p.total_floats());
    out.momentum.assign(p.momentum(), p.momentum() + p.total_floats());
  };
  out.summary = run_training(spec, opt, rec);
  out.steps = rec.of("step");
  return out;
}

}  // namespace

// 150 steps of cnn-small (batch 64) on 4,800 Fashion-MNIST images, the same seed
// and order in FP32 and BF16. bf16 rounding sends the runs apart after the first
// steps, so they are compared as two runs of one experiment: the BF16 loss must fall
// as FP32's does, the mean loss of the last 50 steps (two windows of 25, which
// average out most of the batch-to-batch noise) must be within 0.06 of FP32's, and
// the test accuracy within 0.03. Measured on the Zen 5 machine: the BF16 losses
// stayed within 0.01 of FP32's at every logged step (last 50 steps 0.427 against
// 0.435) and test accuracy 0.846 against 0.857. 0.06 is about 15% of that loss, well
// beyond the measured gap yet far below what a broken bf16 path costs (stale bf16
// weights or a lost gradient leave the loss near ln 10 = 2.3); 0.03 is three
// standard errors of an accuracy on 1,000 test images.
TEST(Bf16Training, LossFallsLikeFp32) {
  SKIP_WITHOUT_BF16();
  if (!have_fashion_mnist()) GTEST_SKIP() << "skipped, because Fashion-MNIST is not installed";
  const std::string base = R"({"name":"bf16","dataset":{"name":"fashion-mnist","trainLimit":4800,"testLimit":1000},
      "model":{"preset":"cnn-small","activation":{"kind":"PRELU_CHANNELWISE"}},
      "training":{"epochs":2,"batchSize":64,"learningRate":0.01,"logEverySteps":25,"precision":")";
  const RunOutcome f32 = train(spec_from(base + R"(FP32"}})"));
  const RunOutcome bf16 = train(spec_from(base + R"(BF16"}})"));
  ASSERT_EQ(bf16.steps.size(), 6u);
  ASSERT_EQ(f32.steps.size(), 6u);
  auto tail_mean = [](const RunOutcome& r) { return (r.steps[4].loss() + r.steps[5].loss()) / 2; };  // steps 101-150
  for (size_t i = 0; i < 6; ++i)
    std::printf("step %3d  FP32 %.4f  BF16 %.4f\n", bf16.steps[i].step(), f32.steps[i].loss(), bf16.steps[i].loss());
  std::printf("last 50 steps: FP32 %.4f  BF16 %.4f; test accuracy FP32 %.4f  BF16 %.4f\n", tail_mean(f32),
              tail_mean(bf16), f32.summary.test_accuracy(), bf16.summary.test_accuracy());
  EXPECT_GT(bf16.steps.front().loss(), 1.0);
  EXPECT_LT(bf16.steps.back().loss(), 0.75 * bf16.steps.front().loss());
  EXPECT_NEAR(tail_mean(bf16), tail_mean(f32), 0.06);
  EXPECT_NEAR(bf16.summary.test_accuracy(), f32.summary.test_accuracy(), 0.03);
  EXPECT_GT(bf16.summary.test_accuracy(), 0.70);
}

// Checkpoints hold the f32 master weights: a BF16 run resumed from one ends with
// the parameters and momentum of the run never interrupted, bit for bit.
TEST(Bf16Training, ACheckpointResumesExactly) {
  SKIP_WITHOUT_BF16();
  if (!have_fashion_mnist()) GTEST_SKIP() << "skipped, because Fashion-MNIST is not installed";
  const auto spec = spec_from(R"({"name":"bf16resume","dataset":{"name":"fashion-mnist","trainLimit":1280,
      "testLimit":300},"model":{"preset":"cnn-small"},
      "training":{"epochs":1,"batchSize":64,"logEverySteps":5,"precision":"BF16","checkpoint":{"everySteps":7}}})");
  const RunOutcome full = train(spec);
  ASSERT_TRUE(full.checkpoints.count(7));
  const RunOutcome resumed = train(spec, &full.checkpoints.at(7));
  ASSERT_EQ(resumed.values.size(), full.values.size());
  size_t value_diffs = 0, momentum_diffs = 0;
  for (size_t i = 0; i < full.values.size(); ++i) {
    value_diffs += resumed.values[i] != full.values[i];
    momentum_diffs += resumed.momentum[i] != full.momentum[i];
  }
  EXPECT_EQ(value_diffs, 0u);
  EXPECT_EQ(momentum_diffs, 0u);
  EXPECT_EQ(resumed.summary.steps(), 20);
}

TEST(Bf16Spec, DefaultsToFp32AndNamesABadValue) {
  EXPECT_EQ(spec_from(R"({"name":"p","dataset":{"name":"fashion-mnist"}})").training().precision(),
            v1::TrainingSpec::FP32);
  EXPECT_EQ(spec_from(R"({"name":"p","dataset":{"name":"fashion-mnist"},"training":{"precision":"BF16"}})")
                .training()
                .precision(),
            v1::TrainingSpec::BF16);
  const std::string err = user_error_of(
      [] { spec_from(R"({"name":"p","dataset":{"name":"fashion-mnist"},"training":{"precision":"FP16"}})"); });
  EXPECT_NE(err.find("precision"), std::string::npos) << err;
  EXPECT_NE(err.find("FP16"), std::string::npos) << err;
}
