#include "testing.h"

namespace nabla {
namespace {
using test::randn64;

TEST(Autograd, GradientsAccumulateAcrossUsesAndCalls) {
  Tensor x = randn64({3});
  Tensor y = (x * x + x * 3.0).sum();  // dy/dx = 2x + 3
  y.backward();
  auto vx = x.to_vector(), g = x.grad().to_vector();
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(g[i], 2 * vx[i] + 3, 1e-12);
  (x * 2.0).sum().backward();  // accumulates: + 2
  g = x.grad().to_vector();
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(g[i], 2 * vx[i] + 5, 1e-12);
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, ExplicitGradientForNonScalarOutputs) {
  Tensor x = randn64({2, 3});
  Tensor y = x * 4.0;
  Tensor g = randn64({2, 3}, false);
  y.backward(g);
  test::expect_close(x.grad(), (g * 4.0).to_vector(), 1e-12);
  test::expect_error([&] { (x * 2.0).backward(); }, {"backward", "[2,3]"});
}

TEST(Autograd, SecondBackwardNeedsRetainGraph) {
  Tensor x = randn64({2});
  Tensor y = exp(x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  test::expect_close(x.grad(), (exp(x.detach()) * 2.0).to_vector(), 1e-12);
  test::expect_error([&] { y.backward(); }, {"second time", "retain_graph"});
}

TEST(Autograd, NoGradRecordsNothingAndDetachCutsHistory) {
  Tensor x = randn64({2});
  {
    NoGradGuard ng;
    Tensor y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
  }
  Tensor d = (x * 2.0).detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_TRUE((x * 2.0).requires_grad());
}

TEST(Autograd, HooksSeeAndReplaceGradients) {
  Tensor x = randn64({3});
  Tensor h = x * 2.0;
  std::vector<double> seen;
  h.register_hook([&](const Tensor& g) {
    seen = g.to_vector();
    return g * 10.0;
  });
  int accumulated = 0;
  x.register_post_accumulate_hook([&](const Tensor& g) { ++accumulated; });
  h.sum().backward();
  EXPECT_EQ(seen, std::vector<double>(3, 1.0));
  EXPECT_EQ(accumulated, 1);
  test::expect_close(x.grad(), {20, 20, 20});
}

TEST(Autograd, RetainGradKeepsIntermediateGradients) {
  Tensor x = randn64({3});
  Tensor h = x * 3.0;
  h.retain_grad();
  (h * h).sum().backward();
  test::expect_close(h.grad(), (h.detach() * 2.0).to_vector(), 1e-12);
}

TEST(Autograd, DeepChainsDoNotOverflowTheStack) {
  Tensor x = randn64({4});
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = y * 1.0;
  y.sum().backward();
  test::expect_close(x.grad(), {1, 1, 1, 1});
}

TEST(Autograd, OnlyFloatTensorsCanRequireGrad) {
  Tensor i = arange(3);
  test::expect_error([&] { i.requires_grad_(); }, {"floating", "i64"});
}

TEST(Gradcheck, CatchesAWrongBackward) {
  // A deliberately wrong derivative (d/dx x^2 reported as x instead of 2x) must fail the check.
  auto wrong_square = [](const std::vector<Tensor>& in) {
    Tensor x = in[0];
    Tensor y = (x * x.detach());  // gradient x instead of 2x
    return y;
  };
  auto r = gradcheck(wrong_square, {randn64({4})});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.report.find("input 0"), std::string::npos);
}

}  // namespace
}  // namespace nabla

namespace nabla {
namespace {
TEST(Autograd, LeavesNeverShareGradientStorage) {
  // add's backward passes the same gradient to both inputs; scaling one leaf's grad must not touch the other.
  Tensor a = test::randn64({3}), b = test::randn64({3});
  (a + b).sum().backward();
  EXPECT_NE(a.grad().storage(), b.grad().storage());
  Tensor g = b.grad();
  {
    NoGradGuard ng;
    mul_(g, 3.0);
  }
  test::expect_close(a.grad(), {1, 1, 1});
  test::expect_close(b.grad(), {3, 3, 3});
}

// autograd/ runs ops only through the hooks ops/autograd_hooks.cpp registers (autograd/autograd.h).
TEST(Autograd, RunsOpsThroughTheHooksOpsRegistered) {
  const autograd::OpHooks saved = autograd::op_hooks();
  int adds = 0;
  static int* counter = nullptr;
  counter = &adds;
  autograd::OpHooks counting = saved;
  counting.add = [](const Tensor& a, const Tensor& b) {
    ++*counter;
    return a + b;
  };
  autograd::set_op_hooks(counting);
  Tensor x = test::randn64({4});
  (x * x + x).sum().backward();  // x reaches the sum by two paths: their gradients are added
  autograd::set_op_hooks(saved);
  EXPECT_GE(adds, 1);
  test::expect_close(x.grad(), (x.detach() * 2.0 + 1.0).to_double_vector());

  autograd::set_op_hooks({});
  test::expect_error([&] { (x * 3.0).sum().backward(); },
                     {"autograd", "not registered", "ops/autograd_hooks.cpp"});
  autograd::set_op_hooks(saved);
  (x * 3.0).sum().backward();  // usable again
}
}  // namespace
}  // namespace nabla
