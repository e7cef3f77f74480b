// GradScaler on CPU tensors: scaling, unscaling, skipped steps on planted inf/NaN gradients, the growth and
// backoff of the scale, misuse errors, checkpoints, and a training step that matches the unscaled one
// exactly (scaling by a power of two commutes with rounding).
#include <cmath>

#include "algorithms/optim/grad_scaler.h"
#include "testing.h"

namespace nabla::optim {
namespace {

using Vec = std::vector<double>;

Tensor leaf(const Vec& v) { return from_vector(v, {static_cast<int64_t>(v.size())}).requires_grad_(); }

TEST(GradScaler, ScaleMultipliesTheLossAndItsGradients) {
  GradScaler scaler({.init_scale = 1024.0});
  Tensor w = leaf({1.0, -2.0, 3.0});
  Tensor loss = sum(w * w);
  Tensor scaled = scaler.scale(loss);
  EXPECT_EQ(scaled.dtype(), DType::f32);
  EXPECT_EQ(scaled.item(), loss.item() * 1024.0);
  scaled.backward();
  test::expect_close(w.grad(), Vec{2048.0, -4096.0, 6144.0}, 0.0);
  // A 16-bit loss is scaled in f32 (65536 does not fit in f16).
  GradScaler big;
  Tensor h = from_vector({2.0}, {}, {.dtype = DType::f16});
  Tensor s = big.scale(h);
  EXPECT_EQ(s.dtype(), DType::f32);
  EXPECT_EQ(s.item(), 131072.0);
}

TEST(GradScaler, CleanStepUnscalesStepsAndCounts) {
  GradScaler scaler({.init_scale = 8.0, .growth_interval = 3});
  Tensor w = leaf({1.0, 2.0}), b = leaf({0.5});
  Sgd opt({w, b}, {.lr = 0.5});
  w.set_grad(from_vector({8.0, -16.0}, {2}));
  b.set_grad(from_vector({4.0}, {1}));
  EXPECT_TRUE(scaler.step(opt));
  EXPECT_FALSE(scaler.found_inf(opt));
  test::expect_close(w.grad(), Vec{1.0, -2.0}, 0.0);  // unscaled in place
  test::expect_close(w, Vec{0.5, 3.0}, 0.0);
  test::expect_close(b, Vec{0.25}, 0.0);
  EXPECT_EQ(opt.step_count(), 1);
  scaler.update();
  EXPECT_EQ(scaler.get_scale(), 8.0);
  EXPECT_EQ(scaler.growth_tracker(), 1);
}

TEST(GradScaler, PlantedInfOrNanSkipsTheStepAndBacksOff) {
  for (double bad : Vec{INFINITY, -INFINITY, NAN}) {
    SCOPED_TRACE(bad);
    GradScaler scaler({.init_scale = 64.0});
    Tensor w = leaf({1.0, 2.0, 3.0}), b = leaf({4.0});
    Adam opt({w, b}, {.lr = 0.1});
    w.set_grad(from_vector({1.0, 2.0, 3.0}, {3}));
    b.set_grad(from_vector({bad}, {1}));  // only one gradient of one parameter is bad
    EXPECT_FALSE(scaler.step(opt));
    EXPECT_TRUE(scaler.found_inf(opt));
    test::expect_close(w, Vec{1.0, 2.0, 3.0}, 0.0);  // nothing moved
    test::expect_close(b, Vec{4.0}, 0.0);
    EXPECT_EQ(opt.step_count(), 0);
    EXPECT_TRUE(opt.state_tensors().size() == 1);  // only "step": no buffers were made
    scaler.update();
    EXPECT_EQ(scaler.get_scale(), 32.0);
    EXPECT_EQ(scaler.growth_tracker(), 0);
    EXPECT_FALSE(scaler.found_inf(opt));  // forgotten after update
  }
}

TEST(GradScaler, ScaleGrowsAfterGrowthIntervalCleanStepsAndBackoffResetsTheCount) {
  GradScaler scaler({.init_scale = 4.0, .growth_factor = 2.0, .backoff_factor = 0.25, .growth_interval = 3});
  Tensor w = leaf({1.0});
  Sgd opt({w}, {.lr = 0.0});
  auto iteration = [&](double g) {
    w.set_grad(from_vector({g}, {1}));
    scaler.step(opt);
    scaler.update();
  };
  iteration(1.0), iteration(1.0);
  EXPECT_EQ(scaler.get_scale(), 4.0);
  EXPECT_EQ(scaler.growth_tracker(), 2);
  iteration(1.0);  // third clean step: grow
  EXPECT_EQ(scaler.get_scale(), 8.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  iteration(1.0), iteration(1.0);
  iteration(NAN);  // overflow just before the interval: back off and restart the count
  EXPECT_EQ(scaler.get_scale(), 2.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  iteration(1.0), iteration(1.0), iteration(1.0);
  EXPECT_EQ(scaler.get_scale(), 4.0);
}

TEST(GradScaler, GrowthThatWouldOverflowKeepsTheScale) {
  GradScaler scaler({.init_scale = 1e308, .growth_factor = 10.0, .growth_interval = 1});
  Tensor w = leaf({1.0});
  Sgd opt({w}, {.lr = 0.0});
  w.set_grad(from_vector({0.0}, {1}));
  scaler.step(opt);
  scaler.update();
  EXPECT_EQ(scaler.get_scale(), 1e308);
  EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(GradScaler, ExplicitUnscaleBeforeStepIsNotRepeated) {
  GradScaler scaler({.init_scale = 4.0});
  Tensor w = leaf({2.0});
  Sgd opt({w}, {.lr = 1.0});
  w.set_grad(from_vector({4.0}, {1}));
  scaler.unscale(opt);
  test::expect_close(w.grad(), Vec{1.0}, 0.0);
  EXPECT_TRUE(scaler.step(opt));  // does not divide again
  test::expect_close(w, Vec{1.0}, 0.0);
  scaler.update();
}

TEST(GradScaler, SharedGradientTensorIsUnscaledOnce) {
  // d(a + b)/da and d(a + b)/db are the same tensor: autograd hands the incoming gradient to both.
  GradScaler scaler({.init_scale = 16.0});
  Tensor a = leaf({1.0, 2.0}), b = leaf({3.0, 4.0});
  scaler.scale(sum(a + b)).backward();
  Sgd opt({a, b}, {.lr = 1.0});
  scaler.unscale(opt);
  test::expect_close(a.grad(), Vec{1.0, 1.0}, 0.0);
  test::expect_close(b.grad(), Vec{1.0, 1.0}, 0.0);
}

TEST(GradScaler, MisuseIsAClearError) {
  GradScaler scaler;
  Tensor w = leaf({1.0});
  Sgd opt({w}, {.lr = 0.1});
  test::expect_error([&] { scaler.update(); }, {"GradScaler::update", "no inf checks"});
  w.set_grad(from_vector({1.0}, {1}));
  scaler.unscale(opt);
  test::expect_error([&] { scaler.unscale(opt); }, {"GradScaler::unscale", "already called", "SGD"});
  scaler.step(opt);
  test::expect_error([&] { scaler.step(opt); }, {"GradScaler::step", "already called"});
  scaler.update();
  w.set_grad(from_vector({1.0}, {1}));
  scaler.step(opt);
  test::expect_error([&] { scaler.unscale(opt); }, {"GradScaler::unscale", "after step()"});
  test::expect_error([] { GradScaler({.backoff_factor = 1.5}); }, {"backoff_factor"});
  test::expect_error([] { GradScaler({.growth_factor = 1.0}); }, {"growth_factor"});
  test::expect_error([] { GradScaler({.init_scale = 0.0}); }, {"init_scale"});
  test::expect_error([] { GradScaler({.growth_interval = 0}); }, {"growth_interval"});
}

TEST(GradScaler, DisabledScalerPassesEverythingThrough) {
  GradScaler scaler({.enabled = false});
  Tensor w = leaf({1.0});
  Sgd opt({w}, {.lr = 1.0});
  Tensor loss = sum(w * 3.0);
  EXPECT_EQ(scaler.scale(loss).item(), 3.0);
  w.set_grad(from_vector({INFINITY}, {1}));
  EXPECT_TRUE(scaler.step(opt));  // no check: the step runs
  EXPECT_TRUE(std::isinf(w.item()));
  scaler.update();  // no error without checks
  EXPECT_EQ(scaler.get_scale(), 65536.0);
}

TEST(GradScaler, StateRoundTripAndLoadErrors) {
  GradScaler a({.init_scale = 32.0, .growth_interval = 5});
  Tensor w = leaf({1.0});
  Sgd opt({w}, {.lr = 0.0});
  for (double g : Vec{1.0, INFINITY, 1.0, 1.0}) {
    w.set_grad(from_vector({g}, {1}));
    a.step(opt);
    a.update();
  }
  EXPECT_EQ(a.get_scale(), 16.0);
  EXPECT_EQ(a.growth_tracker(), 2);
  GradScaler b;
  b.load_state_tensors(a.state_tensors());
  EXPECT_EQ(b.get_scale(), 16.0);
  EXPECT_EQ(b.growth_tracker(), 2);
  for (int i = 0; i < 3; ++i) {  // b continues where a stopped: 3 more clean steps reach interval 5
    w.set_grad(from_vector({1.0}, {1}));
    b.step(opt);
    b.update();
  }
  EXPECT_EQ(b.get_scale(), 32.0);
  NamedTensors bad = a.state_tensors();
  bad.erase(bad.begin());  // scale
  bad.emplace_back("bogus", from_vector({1.0}, {}));
  test::expect_error([&] { b.load_state_tensors(bad); },
                     {"GradScaler", "load_state_tensors", "missing [scale]", "unexpected [bogus]"});
  EXPECT_EQ(b.get_scale(), 32.0);  // unchanged by the failed load
}

TEST(GradScaler, ScaledTrainingStepEqualsTheUnscaledOneExactly) {
  // A small MLP in f32: loss * 2^k, backward, unscale and step give the same parameters as the plain step,
  // bit for bit (no gradient overflows or underflows at this scale).
  auto make = [] {
    Generator g{42, 0};
    return std::vector<Tensor>{randn({8, 5}, {.requires_grad = true}, &g),
                               randn({5}, {.requires_grad = true}, &g),
                               randn({5, 3}, {.requires_grad = true}, &g)};
  };
  Generator gx{7, 0};
  Tensor x = randn({16, 8}, {}, &gx);
  Tensor y = randint(0, 3, {16}, {.dtype = DType::i64}, &gx);
  auto loss_of = [&](const std::vector<Tensor>& p) {
    return cross_entropy(matmul(relu(matmul(x, p[0]) + p[1]), p[2]), y);
  };
  std::vector<Tensor> plain = make(), scaled = make();
  Adam opt_plain(plain, {.lr = 0.01}), opt_scaled(scaled, {.lr = 0.01});
  GradScaler scaler({.init_scale = 4096.0});
  for (int step = 0; step < 3; ++step) {
    opt_plain.zero_grad();
    loss_of(plain).backward();
    opt_plain.step();
    opt_scaled.zero_grad();
    scaler.scale(loss_of(scaled)).backward();
    EXPECT_TRUE(scaler.step(opt_scaled));
    scaler.update();
    for (size_t i = 0; i < plain.size(); ++i) test::expect_close(scaled[i], plain[i], 0.0);
  }
}

}  // namespace
}  // namespace nabla::optim
