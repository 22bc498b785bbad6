// The optimiser and schedules against hand computations.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/sgd.h"

using namespace prelude;

namespace {
struct Store {
  ParamStore ps;
  Param *w, *b, *a;
  Store() {
    w = ps.add("fc1.weight", ParamKind::kWeight, md_of({2}, tag::a));
    b = ps.add("fc1.bias", ParamKind::kBias, md_of({1}, tag::a));
    a = ps.add("fc1.act.slope", ParamKind::kSlope, md_of({1}, tag::a));
    ps.finalize();
    w->value_ptr[0] = 1.0f, w->value_ptr[1] = -2.0f, b->value_ptr[0] = 0.5f, a->value_ptr[0] = 0.25f;
  }
  void grads(float g) {
    w->grad_ptr[0] = g, w->grad_ptr[1] = g, b->grad_ptr[0] = g, a->grad_ptr[0] = g;
  }
};
}  // namespace

TEST(Sgd, MomentumAndDecayButNoDecayOnSlopes) {
  Store s;
  Sgd sgd(s.ps, {0.9, 0.1, false});
  s.grads(1.0f);
  sgd.step(0.5);
  // v = g + wd*w; w -= lr*v
  EXPECT_FLOAT_EQ(s.w->value_ptr[0], 1.0f - 0.5f * (1.0f + 0.1f * 1.0f));    // 0.45
  EXPECT_FLOAT_EQ(s.w->value_ptr[1], -2.0f - 0.5f * (1.0f - 0.1f * 2.0f));   // -2.4
  EXPECT_FLOAT_EQ(s.b->value_ptr[0], 0.5f - 0.5f * (1.0f + 0.1f * 0.5f));    // decayed too
  EXPECT_FLOAT_EQ(s.a->value_ptr[0], 0.25f - 0.5f * 1.0f);                   // slope: no decay
  s.grads(0.0f);
  sgd.step(0.5);
  // second step: v = 0.9 v + wd*w
  const float v1 = 1.0f + 0.1f * 1.0f, w1 = 1.0f - 0.5f * v1;
  EXPECT_FLOAT_EQ(s.w->value_ptr[0], w1 - 0.5f * (0.9f * v1 + 0.1f * w1));
  EXPECT_FLOAT_EQ(s.a->value_ptr[0], -0.25f - 0.5f * 0.9f * 1.0f);
}

TEST(Sgd, SlopeDecayOnlyWhenAsked) {
  Store s;
  Sgd sgd(s.ps, {0.0, 0.1, true});
  s.grads(0.0f);
  sgd.step(1.0);
  EXPECT_FLOAT_EQ(s.a->value_ptr[0], 0.25f - 0.1f * 0.25f);
}

namespace {
// The update as the serial code wrote it, one element at a time: what every kernel,
// ISA and thread count must reproduce bit for bit.
void reference_update(float* w, const float* g, float* v, size_t n, float lr, float momentum, float decay) {
  for (size_t i = 0; i < n; ++i) {
    const float mv = momentum * v[i];
    const float sum = mv + g[i];
    const float dw = decay * w[i];
    v[i] = sum + dw;
    const float step = lr * v[i];
    w[i] = w[i] - step;
  }
}

// Values of every magnitude, signs, zeros and subnormals.
std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::uniform_int_distribution<int> e(-40, 10);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::ldexp(u(gen), e(gen));
    if (i % 97 == 0) x[i] = 0.f;
    if (i % 101 == 0) x[i] = -0.f;
    if (i % 103 == 0) x[i] = 1e-40f;  // subnormal
  }
  return x;
}

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }
}  // namespace

// Each kernel this CPU runs (AVX-512, AVX2, baseline) against the scalar reference,
// at lengths and offsets that leave vector tails and unaligned starts.
TEST(Sgd, EveryKernelMatchesTheScalarReferenceBitForBit) {
  ASSERT_FALSE(sgd_kernels().empty());
  EXPECT_STREQ(sgd_kernels().back().isa, "baseline");
  for (const auto& k : sgd_kernels()) {
    for (size_t n : {1u, 7u, 15u, 16u, 17u, 33u, 1000u, 4099u}) {
      for (size_t off : {0u, 1u, 3u}) {
        const auto w0 = random_floats(n + off, 1), g = random_floats(n + off, 2), v0 = random_floats(n + off, 3);
        auto w = w0, v = v0, rw = w0, rv = v0;
        for (float decay : {5e-4f, 0.f}) {
          k.fn(w.data() + off, g.data() + off, v.data() + off, n, 0.05f, 0.9f, decay);
          reference_update(rw.data() + off, g.data() + off, rv.data() + off, n, 0.05f, 0.9f, decay);
          EXPECT_TRUE(same_bits(w.data(), rw.data(), n + off)) << k.isa << " n=" << n << " off=" << off;
          EXPECT_TRUE(same_bits(v.data(), rv.data(), n + off)) << k.isa << " n=" << n << " off=" << off;
        }
      }
    }
  }
}

// Sgd::step over a store large enough to be split among threads, with weights,
// biases and slopes interleaved (slopes undecayed): bit-identical to the reference
// applied parameter by parameter, for 1, 2 and 3 threads, over several steps.
TEST(Sgd, StepIsBitIdenticalToTheSerialUpdateAtAnyThreadCount) {
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    for (bool decay_slopes : {false, true}) {
      ParamStore ps;
      const int64_t sizes[] = {20000, 31, 1, 50000, 17, 1, 64, 12345, 10, 3};
      const ParamKind kinds[] = {ParamKind::kWeight, ParamKind::kBias,   ParamKind::kSlope, ParamKind::kWeight,
                                 ParamKind::kBias,   ParamKind::kSlope,  ParamKind::kSlope, ParamKind::kWeight,
                                 ParamKind::kBias,   ParamKind::kSlope};
      for (int i = 0; i < 10; ++i) ps.add("p" + std::to_string(i), kinds[i], md_of({sizes[i]}, tag::a));
      ps.finalize();
      const size_t n = ps.total_floats();
      ASSERT_GT(n, 65536u);  // above the size where the step goes parallel
      auto w0 = random_floats(n, 4), v0 = random_floats(n, 5);
      std::copy(w0.begin(), w0.end(), ps.values());
      std::copy(v0.begin(), v0.end(), ps.momentum());
      std::vector<float> rw = w0, rv = v0;
      Sgd sgd(ps, {0.9, 5e-4, decay_slopes});
      omp_set_num_threads(threads);
      for (int step = 0; step < 3; ++step) {
        const auto g = random_floats(n, 10 + step);
        std::copy(g.begin(), g.end(), ps.grads());
        const double lr = 0.1 / (step + 1);
        sgd.step(lr);
        for (auto& p : ps.params()) {
          const bool decayed = p->kind != ParamKind::kSlope || decay_slopes;
          reference_update(rw.data() + p->offset, g.data() + p->offset, rv.data() + p->offset, p->size,
                           static_cast<float>(lr), 0.9f, decayed ? 5e-4f : 0.f);
        }
        EXPECT_TRUE(same_bits(ps.values(), rw.data(), n)) << threads << " threads, step " << step;
        EXPECT_TRUE(same_bits(ps.momentum(), rv.data(), n)) << threads << " threads, step " << step;
      }
    }
  }
  omp_set_num_threads(saved);
}

TEST(LrSchedule, ConstantStepCosine) {
  LrSchedule c;
  c.base_lr = 0.1;
  EXPECT_DOUBLE_EQ(c.at(1000), 0.1);
  LrSchedule st = c;
  st.kind = LrScheduleKind::kStep;
  st.step_every = 10;
  st.gamma = 0.5;
  EXPECT_DOUBLE_EQ(st.at(9), 0.1);
  EXPECT_DOUBLE_EQ(st.at(10), 0.05);
  EXPECT_DOUBLE_EQ(st.at(25), 0.025);
  LrSchedule cs = c;
  cs.kind = LrScheduleKind::kCosine;
  cs.total_steps = 100;
  cs.min_lr = 0.001;
  EXPECT_DOUBLE_EQ(cs.at(0), 0.1);
  EXPECT_NEAR(cs.at(50), 0.001 + 0.099 * 0.5, 1e-12);
  EXPECT_NEAR(cs.at(100), 0.001, 1e-12);
}
