// Learning-rate schedules at chosen steps against values worked out by hand, spec parsing and errors.
#include <cmath>
#include <numbers>

#include "algorithms/optim/schedule.h"
#include "testing.h"

namespace nabla::optim {
namespace {

constexpr double kPi = std::numbers::pi;

TEST(Schedule, ConstantIsTheBaseLrForever) {
  Schedule s({.base_lr = 0.3});
  EXPECT_EQ(s.lr_at(0), 0.3);
  EXPECT_EQ(s.lr_at(123456), 0.3);
  EXPECT_EQ(Schedule().lr_at(7), 1e-3);
}

TEST(Schedule, StepDecaysByGammaEveryKSteps) {
  Schedule s({.kind = ScheduleKind::step, .base_lr = 0.1, .step_size = 3, .gamma = 0.5});
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(2), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(3), 0.05);
  EXPECT_DOUBLE_EQ(s.lr_at(5), 0.05);
  EXPECT_DOUBLE_EQ(s.lr_at(6), 0.025);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 0.1 * 0.125);
}

TEST(Schedule, MultiStepDecaysAtEachMilestone) {
  Schedule s({.kind = ScheduleKind::multi_step, .base_lr = 0.2, .milestones = {2, 5}, .gamma = 0.1});
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.2);
  EXPECT_DOUBLE_EQ(s.lr_at(1), 0.2);
  EXPECT_DOUBLE_EQ(s.lr_at(2), 0.02);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 0.02);
  EXPECT_DOUBLE_EQ(s.lr_at(5), 0.002);
  EXPECT_DOUBLE_EQ(s.lr_at(1000), 0.002);
}

TEST(Schedule, CosineGoesFromBaseToEndOverTotalSteps) {
  Schedule s({.kind = ScheduleKind::cosine, .base_lr = 0.1, .total_steps = 10, .end_lr = 0.01});
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);
  // p = 0.2: 0.01 + 0.09 * (1 + cos(0.2 pi)) / 2, cos(0.2 pi) = 0.80901699437494742
  EXPECT_NEAR(s.lr_at(2), 0.01 + 0.045 * 1.80901699437494742, 1e-15);
  EXPECT_DOUBLE_EQ(s.lr_at(5), 0.055);
  EXPECT_NEAR(s.lr_at(10), 0.01, 1e-15);
  EXPECT_NEAR(s.lr_at(25), 0.01, 1e-15);
}

TEST(Schedule, PolynomialWithPowerToAnEndLr) {
  Schedule s(
      {.kind = ScheduleKind::polynomial, .base_lr = 0.1, .total_steps = 10, .end_lr = 0.001, .power = 2});
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(5), 0.001 + 0.099 * 0.25);
  EXPECT_DOUBLE_EQ(s.lr_at(8), 0.001 + 0.099 * 0.04);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 0.001);
  EXPECT_DOUBLE_EQ(s.lr_at(11), 0.001);
  Schedule linear({.kind = ScheduleKind::polynomial, .base_lr = 1.0, .total_steps = 4});
  EXPECT_DOUBLE_EQ(linear.lr_at(1), 0.75);
}

TEST(Schedule, WarmupThenCosineOverTheRemainingSteps) {
  Schedule s({.kind = ScheduleKind::cosine,
              .base_lr = 0.1,
              .total_steps = 14,
              .end_lr = 0.0,
              .warmup_steps = 4,
              .warmup_start_factor = 0.25});
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.025);
  EXPECT_DOUBLE_EQ(s.lr_at(2), 0.1 * (0.25 + 0.75 * 0.5));
  EXPECT_DOUBLE_EQ(s.lr_at(3), 0.1 * (0.25 + 0.75 * 0.75));
  EXPECT_DOUBLE_EQ(s.lr_at(4), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(9), 0.05);  // half-way through the 10 decay steps
  EXPECT_NEAR(s.lr_at(6), 0.05 * (1 + std::cos(kPi * 0.2)), 1e-15);
  EXPECT_NEAR(s.lr_at(14), 0.0, 1e-15);
}

TEST(Schedule, WarmupFromZeroMultipliesAStepSchedule) {
  Schedule s({.kind = ScheduleKind::step, .base_lr = 0.4, .step_size = 3, .gamma = 0.5, .warmup_steps = 2});
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr_at(1), 0.2);
  EXPECT_DOUBLE_EQ(s.lr_at(2), 0.4);
  EXPECT_DOUBLE_EQ(s.lr_at(3), 0.2);  // milestones count from step 0
}

TEST(Schedule, PurePieces) {
  EXPECT_DOUBLE_EQ(step_decay(1.0, 0.1, 10, 25), 0.01);
  EXPECT_DOUBLE_EQ(multi_step_decay(1.0, 0.5, {3, 4, 9}, 4), 0.25);
  EXPECT_DOUBLE_EQ(cosine_decay(1.0, 0.0, 0.5), 0.5);
  EXPECT_DOUBLE_EQ(polynomial_decay(2.0, 0.0, 3.0, 0.5), 0.25);
  EXPECT_DOUBLE_EQ(warmup_factor(10, 0.1, 5), 0.55);
  EXPECT_DOUBLE_EQ(warmup_factor(10, 0.1, 10), 1.0);
  EXPECT_DOUBLE_EQ(warmup_factor(0, 0.0, 0), 1.0);
}

TEST(Schedule, ParsesSpecsOverDefaults) {
  Schedule cosine = Schedule::parse("cosine", {.base_lr = 0.5, .total_steps = 100});
  EXPECT_EQ(cosine.options().kind, ScheduleKind::cosine);
  EXPECT_DOUBLE_EQ(cosine.lr_at(50), 0.25);

  Schedule multi = Schedule::parse("multistep:milestones=30/60/80,gamma=0.2,lr=0.1");
  EXPECT_EQ(multi.options().milestones, (std::vector<int64_t>{30, 60, 80}));
  EXPECT_DOUBLE_EQ(multi.lr_at(59), 0.02);
  EXPECT_DOUBLE_EQ(multi.lr_at(80), 0.1 * 0.2 * 0.2 * 0.2);

  Schedule poly = Schedule::parse("poly:power=2,total=110,warmup=10,warmup_start=0.1,end=1e-4,lr=0.01");
  EXPECT_DOUBLE_EQ(poly.lr_at(5), 0.01 * 0.55);
  EXPECT_DOUBLE_EQ(poly.lr_at(60), 1e-4 + (0.01 - 1e-4) * 0.25);

  Schedule step = Schedule::parse("step:every=30,gamma=0.1", {.base_lr = 1.0});
  EXPECT_DOUBLE_EQ(step.lr_at(65), 0.01);
  EXPECT_DOUBLE_EQ(Schedule::parse("cosine:min_lr=0.1,total=2,lr=0.3").lr_at(2), 0.1);
}

TEST(Schedule, StrParsesBackToTheSameSchedule) {
  for (const char* spec :
       {"constant:lr=0.3", "step:every=7,gamma=0.3,lr=0.1,warmup=3", "multistep:milestones=5/9,lr=0.2",
        "cosine:total=50,end=0.001,warmup=5,warmup_start=0.2", "poly:total=40,power=1.5,lr=0.05"}) {
    Schedule s = Schedule::parse(spec);
    Schedule back = Schedule::parse(s.str());
    for (int64_t step : {0, 1, 4, 6, 10, 33, 49, 60})
      EXPECT_EQ(s.lr_at(step), back.lr_at(step)) << spec << " -> " << s.str();
  }
}

TEST(Schedule, ErrorsNameTheScheduleAndTheBadValue) {
  using test::expect_error;
  expect_error([] { Schedule::parse("linear"); }, {"schedule 'linear'", "unknown kind 'linear'"});
  expect_error([] { Schedule::parse("step:every=3,power=2"); },
               {"unknown key 'power' for step", "every, gamma"});
  expect_error([] { Schedule::parse("cosine:total=1e3"); }, {"total=1e3", "not a valid integer"});
  // Non-finite numbers are refused where they are parsed (from_chars reads "inf" and "nan").
  expect_error([] { Schedule::parse("cosine:end=inf"); },
               {"schedule 'cosine:end=inf': end=inf is not a finite number"});
  expect_error([] { Schedule::parse("step:every=2,gamma=nan"); }, {"gamma=nan is not a finite number"});
  expect_error([] { Schedule::parse("cosine:total"); }, {"expected key=value, got 'total'"});
  expect_error([] { Schedule::parse("poly:power=two,total=5"); }, {"power=two", "not a valid number"});
  expect_error([] { Schedule::parse("step"); }, {"schedule step", "every must be > 0, got 0"});
  expect_error([] { Schedule::parse("multistep"); }, {"schedule multistep", "no milestones"});
  expect_error([] { Schedule::parse("multistep:milestones=5/5"); }, {"strictly increasing", "5 then 5"});
  expect_error([] { Schedule::parse("cosine:total=10,warmup=10"); },
               {"schedule cosine", "total (10)", "warmup (10)"});
  expect_error([] { Schedule::parse("poly:total=10,power=0"); }, {"schedule poly", "power must be > 0"});
  expect_error([] { Schedule::parse("constant:warmup_start=1.5"); },
               {"warmup_start must be in [0, 1]", "1.5"});
  expect_error([] { Schedule({.base_lr = -0.1}); }, {"schedule constant", "lr must be >= 0", "-0.1"});
  expect_error([] { Schedule({.kind = ScheduleKind::step, .step_size = 2, .gamma = 0}); },
               {"gamma must be > 0"});
  expect_error([] { Schedule().lr_at(-1); }, {"step must be >= 0, got -1"});
}

}  // namespace
}  // namespace nabla::optim
