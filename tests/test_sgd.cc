// The optimiser and schedules against hand computations.
#include <gtest/gtest.h>

#include <cmath>

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
