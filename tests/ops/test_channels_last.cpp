// Channels-last (MemoryFormat::ChannelsLast) through the ops on the CPU: every op a ResNet uses keeps its
// input's layout and gives the values and gradients of the row-major path (conv2d with either operand
// channels-last, its weight gradient in the weight's layout; batch_norm training and evaluation; the pools;
// element-wise ops, the residual add with mixed layouts, broadcasting; dropout's mask under its layout; cat,
// which a Darknet route layer needs channels-last), plus f64 gradient checks of the channels-last paths
// against finite differences.
#include "testing.h"

namespace nabla {
namespace {
using test::randn64;
using In = const std::vector<Tensor>&;
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

bool is_cl(const Tensor& t) { return t.is_contiguous(kCL) && !t.is_contiguous(); }

// Runs f on row-major inputs and on their channels-last copies (where `cl` says so), back-propagates the same
// random cotangent through both, and checks outputs and every input gradient are equal (to tol). Returns the
// channels-last run's output for layout checks.
Tensor expect_same_as_nchw(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                           const std::vector<Tensor>& inputs, const std::vector<bool>& cl,
                           double tol = 1e-10) {
  std::vector<Tensor> a, b;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor base = inputs[i].detach();
    Tensor ra = base.clone(), rb = cl[i] ? base.contiguous(kCL) : base.clone();
    if (cl[i]) {
      EXPECT_TRUE(rb.is_contiguous(kCL)) << "input " << i;
    }
    if (inputs[i].requires_grad()) {
      ra.requires_grad_(true);
      rb.requires_grad_(true);
    }
    a.push_back(ra);
    b.push_back(rb);
  }
  Tensor ya = f(a), yb = f(b);
  test::expect_close(yb, ya, tol);
  Tensor g = randn64(ya.shape(), false).to(ya.dtype());
  (ya * g).sum().backward();
  (yb * g).sum().backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    SCOPED_TRACE("gradient of input " + std::to_string(i));
    test::expect_close(b[i].grad(), a[i].grad(), tol);
  }
  return yb;
}

// ---- conv2d ----

TEST(ChannelsLast, Conv2dChannelsLastInputGivesChannelsLastOutputAndEqualValues) {
  Tensor y = expect_same_as_nchw(
      [](In in) {
        return conv2d(in[0], in[1], in[2], {2, 1}, {1, 2});
      },
      {randn64({2, 5, 9, 7}), randn64({6, 5, 3, 3}), randn64({6})}, {true, false, false});
  EXPECT_TRUE(is_cl(y));
}

TEST(ChannelsLast, Conv2dChannelsLastWeightAloneSwitchesToChannelsLast) {
  Tensor y = expect_same_as_nchw(
      [](In in) {
        return conv2d(in[0], in[1], Tensor(), {1, 1}, {1, 1});
      },
      {randn64({2, 3, 6, 5}), randn64({4, 3, 3, 3})}, {false, true});
  EXPECT_TRUE(is_cl(y));
}

TEST(ChannelsLast, Conv2dGradientsComeBackInEachOperandsLayout) {
  Tensor x = randn64({2, 4, 7, 6}).detach().contiguous(kCL).requires_grad_(true);
  Tensor w_nchw = randn64({6, 2, 3, 3});
  Tensor w_cl = randn64({6, 2, 3, 3}).detach().contiguous(kCL).requires_grad_(true);
  conv2d(x, w_nchw, Tensor(), {1, 1}, {1, 1}, {1, 1}, 2).sum().backward();
  EXPECT_TRUE(is_cl(x.grad()));
  EXPECT_TRUE(w_nchw.grad().is_contiguous());
  Tensor x2 = randn64({2, 4, 7, 6});
  conv2d(x2, w_cl, Tensor(), {1, 1}, {1, 1}, {1, 1}, 2).sum().backward();
  EXPECT_TRUE(is_cl(w_cl.grad()));
}

TEST(ChannelsLast, Conv2dGroupsDilationAndPointwise) {
  expect_same_as_nchw(
      [](In in) {
        return conv2d(in[0], in[1], in[2], {1, 1}, {2, 2}, {2, 2}, 3);
      },
      {randn64({2, 6, 8, 9}), randn64({9, 2, 3, 3}), randn64({9})}, {true, true, false});
  // 1x1: the weight's layouts coincide; the input decides.
  Tensor y = expect_same_as_nchw(
      [](In in) {
        return conv2d(in[0], in[1], in[2], {2, 2});
      },
      {randn64({3, 8, 5, 5}), randn64({5, 8, 1, 1}), randn64({5})}, {true, true, false});
  EXPECT_TRUE(is_cl(y));
}

NABLA_GRADCHECK(conv2d, channels_last_input_and_weight) {
  EXPECT_GRADCHECK(
      [](In in) {
        return conv2d(in[0].contiguous(kCL), in[1].contiguous(kCL), in[2], {2, 2}, {1, 1});
      },
      {randn64({2, 3, 6, 5}), randn64({4, 3, 3, 3}), randn64({4})});
}

// ---- batch_norm ----

TEST(ChannelsLast, BatchNormTrainingMatchesNchwWithRunningStatistics) {
  Tensor rm_a = randn64({5}, false), rv_a = test::rand64({5}, 0.5, 2.0, false);
  Tensor rm_b = rm_a.clone(), rv_b = rv_a.clone();
  bool first = true;  // the row-major run updates rm_a / rv_a, the channels-last one rm_b / rv_b
  Tensor y = expect_same_as_nchw(
      [&](In in) {
        Tensor out =
            batch_norm(in[0], in[1], in[2], first ? rm_a : rm_b, first ? rv_a : rv_b, true, 0.1, 1e-5);
        first = false;
        return out;
      },
      {randn64({3, 5, 4, 6}) * 2.0 + 1.0, randn64({5}), randn64({5})}, {true, false, false});
  EXPECT_TRUE(is_cl(y));
  test::expect_close(rm_b, rm_a, 1e-12);
  test::expect_close(rv_b, rv_a, 1e-12);
}

TEST(ChannelsLast, BatchNormEvaluationMatchesNchw) {
  Tensor rm = randn64({4}, false), rv = test::rand64({4}, 0.5, 2.0, false);
  Tensor y =
      expect_same_as_nchw([&](In in) { return batch_norm(in[0], in[1], in[2], rm, rv, false, 0.1, 1e-5); },
                          {randn64({2, 4, 3, 5}), randn64({4}), randn64({4})}, {true, false, false});
  EXPECT_TRUE(is_cl(y));
}

NABLA_GRADCHECK(batch_norm, channels_last_training) {
  EXPECT_GRADCHECK(
      [](In in) { return batch_norm(in[0].contiguous(kCL), in[1], in[2], Tensor(), Tensor(), true); },
      {randn64({3, 4, 3, 2}), randn64({4}), randn64({4})});
}

// ---- pools ----

TEST(ChannelsLast, PoolsKeepTheLayoutAndValues) {
  Tensor x = randn64({2, 5, 9, 8});
  EXPECT_TRUE(is_cl(expect_same_as_nchw(
      [](In in) {
        return max_pool2d(in[0], {3, 3}, {2, 2}, {1, 1});
      },
      {x}, {true})));
  EXPECT_TRUE(is_cl(expect_same_as_nchw(
      [](In in) {
        return avg_pool2d(in[0], {3, 2}, {2, 1}, {1, 1}, false);
      },
      {randn64({2, 5, 9, 8})}, {true})));
  EXPECT_TRUE(is_cl(expect_same_as_nchw(
      [](In in) {
        return adaptive_avg_pool2d(in[0], {3, 2});
      },
      {randn64({2, 5, 7, 8})}, {true})));
  EXPECT_TRUE(is_cl(expect_same_as_nchw(
      [](In in) {
        return upsample_nearest2d(in[0], {2, 3});
      },
      {randn64({2, 5, 3, 4})}, {true})));
  // Global pooling (ResNet's head): [N, C, 1, 1] is both layouts, and flattening it is a plain view.
  Tensor g = expect_same_as_nchw(
      [](In in) {
        return adaptive_avg_pool2d(in[0], {1, 1}).flatten(1);
      },
      {randn64({3, 6, 4, 5})}, {true});
  EXPECT_EQ(g.shape(), (Shape{3, 6}));
}

NABLA_GRADCHECK(max_pool2d, channels_last) {
  EXPECT_GRADCHECK(
      [](In in) {
        return max_pool2d(in[0].contiguous(kCL), {3, 3}, {2, 2}, {1, 1});
      },
      {randn64({2, 3, 7, 6})});
}

// ---- element-wise ----

TEST(ChannelsLast, ElementwiseOpsKeepTheLayout) {
  Tensor y = expect_same_as_nchw([](In in) { return relu(in[0]); }, {randn64({2, 3, 4, 5})}, {true});
  EXPECT_TRUE(is_cl(y));
  y = expect_same_as_nchw([](In in) { return gelu(in[0]) * 3.0 - in[0]; }, {randn64({2, 3, 4, 5})}, {true});
  EXPECT_TRUE(is_cl(y));
  // The residual add: both channels-last, or mixed (the first dense operand decides).
  y = expect_same_as_nchw([](In in) { return add(in[0], in[1]); },
                          {randn64({2, 3, 4, 5}), randn64({2, 3, 4, 5})}, {true, true});
  EXPECT_TRUE(is_cl(y));
  y = expect_same_as_nchw([](In in) { return add(in[0], in[1]); },
                          {randn64({2, 3, 4, 5}), randn64({2, 3, 4, 5})}, {true, false});
  EXPECT_TRUE(is_cl(y));
  y = expect_same_as_nchw([](In in) { return mul(in[0], in[1]); },
                          {randn64({2, 3, 4, 5}), randn64({2, 3, 4, 5})}, {false, true});
  EXPECT_TRUE(is_cl(y));
  // Broadcasting a per-channel [C, 1, 1] tensor over a channels-last activation.
  y = expect_same_as_nchw([](In in) { return in[0] * in[1] + in[1]; },
                          {randn64({2, 3, 4, 5}), randn64({3, 1, 1})}, {true, false});
  EXPECT_TRUE(is_cl(y));
  // Comparisons too (bool output in the same layout).
  Tensor x = randn64({2, 3, 4, 5}, false);
  Tensor c = gt(x.contiguous(kCL), x * 0.0);
  EXPECT_TRUE(is_cl(c));
  test::expect_close(c.to(DType::f64), gt(x, x * 0.0).to(DType::f64), 0.0);
}

TEST(ChannelsLast, CatKeepsChannelsLastAlongEveryDim) {
  // Along channels (Darknet's route), with a row-major input among channels-last ones, and along H and W
  // (Darknet's maxpool padding).
  for (int64_t d : {1, 2, 3}) {
    SCOPED_TRACE("dim " + std::to_string(d));
    Shape a{2, 3, 4, 5}, b{2, 3, 4, 5};
    a[d] = 2;
    Tensor y = expect_same_as_nchw(
        [d](In in) {
          return cat({in[0], in[1], in[2]}, d);
        },
        {randn64(a), randn64(b), randn64(a)}, {true, false, true});
    EXPECT_TRUE(is_cl(y));
  }
  // Row-major inputs stay row-major; so do 3-D ones.
  EXPECT_TRUE(cat({randn64({2, 3, 4, 5}), randn64({2, 1, 4, 5})}, 1).is_contiguous());
  EXPECT_TRUE(cat({randn64({3, 4, 5}), randn64({3, 4, 5})}, 0).is_contiguous());
}

TEST(ChannelsLast, DropoutKeepsTheLayoutAndItsMaskMeetsTheGradient) {
  Tensor x = (test::rand64({2, 4, 5, 3}, 0.5, 1.5, false)).contiguous(kCL).requires_grad_(true);
  Generator gen{77, 0};
  const double p = 0.3;
  Tensor y = dropout(x, p, true, &gen);
  EXPECT_TRUE(is_cl(y));
  Tensor w = randn64({2, 4, 5, 3}, false);
  (y * w).sum().backward();
  EXPECT_TRUE(is_cl(x.grad()));
  const std::vector<double> xv = x.to_double_vector(), yv = y.to_double_vector(), wv = w.to_double_vector(),
                            gv = x.grad().to_double_vector();
  int kept = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] != 0.0) {
      ++kept;
      EXPECT_NEAR(yv[i], xv[i] / (1 - p), 1e-12) << i;
      EXPECT_NEAR(gv[i], wv[i] / (1 - p), 1e-12) << i;
    } else {
      EXPECT_EQ(gv[i], 0.0) << i;  // x > 0, so y == 0 means dropped
    }
  }
  EXPECT_GT(kept, 60);  // of 120 at p = 0.3
  EXPECT_LT(kept, 110);
}

}  // namespace
}  // namespace nabla
