// Tests of the nn family: gradient checks for every op (non-last dims, strided inputs, with and without
// affine parameters, both batch_norm modes), values against naive loops, numerical stability, the running
// statistics update, dropout's reproducible mask, and the shape errors.
#include <omp.h>

#include <cmath>

#include "testing.h"

namespace nabla {
namespace {
using test::rand64;
using test::randn64;
using In = const std::vector<Tensor>&;

// ---- gradient checks -------------------------------------------------------------------------------

NABLA_GRADCHECK(softmax, last_dim) {
  EXPECT_GRADCHECK([](In in) { return softmax(in[0] * 2.0, -1); }, {randn64({3, 5})});
}
NABLA_GRADCHECK(softmax, middle_dim) {
  EXPECT_GRADCHECK([](In in) { return softmax(in[0], 1); }, {randn64({2, 4, 3})});
}
NABLA_GRADCHECK(softmax, noncontiguous) {
  EXPECT_GRADCHECK([](In in) { return softmax(in[0].t(), 1); }, {randn64({5, 3})});
}
NABLA_GRADCHECK(log_softmax, last_dim) {
  EXPECT_GRADCHECK([](In in) { return log_softmax(in[0] * 2.0, 1); }, {randn64({3, 5})});
}
NABLA_GRADCHECK(log_softmax, first_dim) {
  EXPECT_GRADCHECK([](In in) { return log_softmax(in[0], 0); }, {randn64({4, 2, 3})});
}
NABLA_GRADCHECK(log_softmax, noncontiguous_permuted) {
  EXPECT_GRADCHECK([](In in) { return log_softmax(in[0].permute({2, 0, 1}), -1); }, {randn64({3, 4, 2})});
}

NABLA_GRADCHECK(layer_norm, affine_last_dim) {
  EXPECT_GRADCHECK([](In in) { return layer_norm(in[0], {5}, in[1], in[2]); },
                   {randn64({3, 5}), randn64({5}), randn64({5})});
}
NABLA_GRADCHECK(layer_norm, no_affine_two_dims) {
  EXPECT_GRADCHECK([](In in) { return layer_norm(in[0], {3, 4}); }, {randn64({2, 3, 4})});
}
NABLA_GRADCHECK(layer_norm, affine_two_dims_noncontiguous) {
  EXPECT_GRADCHECK(
      [](In in) {
        return layer_norm(in[0].permute({2, 0, 1}), {2, 3}, in[1], in[2], 1e-3);
      },
      {randn64({2, 3, 4}), randn64({2, 3}), randn64({2, 3})});
}
NABLA_GRADCHECK(layer_norm, weight_only) {
  EXPECT_GRADCHECK([](In in) { return layer_norm(in[0], {4}, in[1]); }, {randn64({3, 4}), randn64({4})});
}

NABLA_GRADCHECK(batch_norm, training_2d_affine) {
  Tensor rm = zeros({3}, {.dtype = DType::f64}), rv = ones({3}, {.dtype = DType::f64});
  EXPECT_GRADCHECK([rm, rv](In in) { return batch_norm(in[0], in[1], in[2], rm, rv, true); },
                   {randn64({5, 3}), randn64({3}), randn64({3})});
}
NABLA_GRADCHECK(batch_norm, training_4d_no_affine) {
  EXPECT_GRADCHECK([](In in) { return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
                   {randn64({2, 3, 2, 3})});
}
NABLA_GRADCHECK(batch_norm, training_4d_affine_noncontiguous) {
  EXPECT_GRADCHECK(
      [](In in) {
        return batch_norm(in[0].permute({0, 3, 1, 2}), in[1], in[2], Tensor(), Tensor(), true);
      },
      {randn64({2, 3, 2, 4}), randn64({4}), randn64({4})});
}
NABLA_GRADCHECK(batch_norm, eval_4d_affine) {
  Tensor rm = randn64({3}, false), rv = rand64({3}, 0.5, 2.0, false);
  EXPECT_GRADCHECK([rm, rv](In in) { return batch_norm(in[0], in[1], in[2], rm, rv, false); },
                   {randn64({2, 3, 2, 2}), randn64({3}), randn64({3})});
}
NABLA_GRADCHECK(batch_norm, eval_2d_no_affine) {
  Tensor rm = randn64({4}, false), rv = rand64({4}, 0.5, 2.0, false);
  EXPECT_GRADCHECK([rm, rv](In in) { return batch_norm(in[0], Tensor(), Tensor(), rm, rv, false); },
                   {randn64({3, 4})});
}

NABLA_GRADCHECK(dropout, fixed_generator) {
  const Generator g0{77, 5};
  EXPECT_GRADCHECK(
      [g0](In in) {
        Generator g = g0;  // the same mask in every call
        return dropout(in[0], 0.4, true, &g);
      },
      {randn64({4, 6})});
}
NABLA_GRADCHECK(dropout, noncontiguous) {
  const Generator g0{78, 0};
  EXPECT_GRADCHECK(
      [g0](In in) {
        Generator g = g0;
        return dropout(in[0].t(), 0.5, true, &g);
      },
      {randn64({3, 5})});
}

// ---- softmax / log_softmax values ------------------------------------------------------------------

// Naive softmax of x (f64 values) along `dim` of `shape`.
std::vector<double> naive_softmax(const std::vector<double>& x, const Shape& shape, int64_t dim, bool log) {
  int64_t outer = 1, inner = 1, r = shape[dim];
  for (int64_t i = 0; i < dim; ++i) outer *= shape[i];
  for (size_t i = dim + 1; i < shape.size(); ++i) inner *= shape[i];
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double s = 0;
      for (int64_t k = 0; k < r; ++k) s += std::exp(x[(o * r + k) * inner + i]);
      for (int64_t k = 0; k < r; ++k) {
        double v = x[(o * r + k) * inner + i];
        y[(o * r + k) * inner + i] = log ? v - std::log(s) : std::exp(v) / s;
      }
    }
  return y;
}

TEST(Softmax, RowsSumToOneAndMatchExpOverSum) {
  Tensor x = test::randn32({6, 9});
  Tensor y = softmax(x, 1);
  test::expect_close(y, naive_softmax(x.to_vector(), x.shape(), 1, false), 1e-6);
  test::expect_close(sum(y, {1}), std::vector<double>(6, 1.0), 1e-5);
  Tensor x64 = randn64({4, 7}, false);
  test::expect_close(log_softmax(x64, -1), naive_softmax(x64.to_vector(), x64.shape(), 1, true), 1e-12);
}

TEST(Softmax, NonLastDimAcrossBlockBoundariesMatchesNaive) {
  // inner = 300 crosses the kernel's 256-lane blocks; large enough to run on several threads.
  Tensor x = randn64({3, 40, 300}, false);
  test::expect_close(softmax(x, 1), naive_softmax(x.to_vector(), x.shape(), 1, false), 1e-12);
  test::expect_close(log_softmax(x, 1), naive_softmax(x.to_vector(), x.shape(), 1, true), 1e-12);
  Tensor xt = x.transpose(1, 2);  // strided input, softmax over the original dim 1
  test::expect_close(softmax(xt, 2), softmax(x, 1).transpose(1, 2).contiguous(), 1e-12);
}

TEST(Softmax, LargeInputsDoNotOverflow) {
  Tensor x = from_vector({1000, 1000, -1000, 999}, {1, 4});
  Tensor y = softmax(x, 1);
  const double e = std::exp(-1.0), z = 2 + e;
  test::expect_close(y, {1 / z, 1 / z, 0, e / z}, 1e-6);
  Tensor ly = log_softmax(x, 1);
  test::expect_close(ly, {-std::log(z), -std::log(z), -2000 - std::log(z), -1 - std::log(z)}, 1e-3);
  for (double v : ly.to_vector()) EXPECT_TRUE(std::isfinite(v));
}

TEST(Softmax, BackwardMatchesTheFormulas) {
  Tensor x = randn64({3, 4});
  Tensor g = randn64({3, 4}, false);
  softmax(x, 1).backward(g);
  Tensor y = softmax(x.detach(), 1);
  test::expect_close(x.grad(), y * (g - sum(g * y, {1}, true)), 1e-12);
  x.zero_grad();
  log_softmax(x, 1).backward(g);
  test::expect_close(x.grad(), g - exp(log_softmax(x.detach(), 1)) * sum(g, {1}, true), 1e-12);
}

TEST(Softmax, ZeroDimTensorIsOneRow) {
  Tensor x = from_vector({3.5}, {}, {.dtype = DType::f64});
  test::expect_close(softmax(x, 0), {1.0});
  test::expect_close(log_softmax(x, -1), {0.0});
}

// ---- layer_norm values -----------------------------------------------------------------------------

TEST(LayerNorm, RowsHaveMeanZeroAndVarianceOne) {
  Tensor x = test::randn32({5, 2, 64}) * 3.0 + 1.5;
  Tensor y = layer_norm(x, {2, 64}).reshape({5, 128});
  test::expect_close(mean(y, {1}), std::vector<double>(5, 0.0), 1e-5);
  test::expect_close(var(y, {1}, 0), std::vector<double>(5, 1.0), 1e-3);  // eps shifts it slightly
}

TEST(LayerNorm, AffineMatchesNaive) {
  Tensor x = randn64({4, 6}, false), w = randn64({6}, false), b = randn64({6}, false);
  const double eps = 1e-5;
  auto xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
  std::vector<double> ref;
  for (int r = 0; r < 4; ++r) {
    double m = 0, v = 0;
    for (int j = 0; j < 6; ++j) m += xv[r * 6 + j] / 6;
    for (int j = 0; j < 6; ++j) v += (xv[r * 6 + j] - m) * (xv[r * 6 + j] - m) / 6;
    for (int j = 0; j < 6; ++j) ref.push_back((xv[r * 6 + j] - m) / std::sqrt(v + eps) * wv[j] + bv[j]);
  }
  test::expect_close(layer_norm(x, {6}, w, b, eps), ref, 1e-12);
}

TEST(LayerNorm, FusedBackwardMatchesTheCompositeOnManyRows) {
  // 150 rows: several rows per chunk of the weight/bias gradient; compare with the same math built of ops.
  Tensor x = randn64({150, 7}), w = randn64({7}), b = randn64({7});
  Tensor g = randn64({150, 7}, false);
  layer_norm(x, {7}, w, b).backward(g);
  Tensor dx = x.grad(), dw = w.grad(), db = b.grad();
  x.zero_grad(), w.zero_grad(), b.zero_grad();
  Tensor m = mean(x, {1}, true);
  Tensor composite = (x - m) / sqrt(var(x, {1}, 0, true) + 1e-5) * w + b;
  composite.backward(g);
  test::expect_close(dx, x.grad(), 1e-10);
  test::expect_close(dw, w.grad(), 1e-10);
  test::expect_close(db, b.grad(), 1e-10);
}

TEST(LayerNorm, LargeF32InputUsesThreadsAndStaysCorrect) {
  Tensor x = test::randn32({300, 257});
  Tensor y = layer_norm(x, {257});
  Tensor ref = (x - mean(x, {1}, true)) / sqrt(var(x, {1}, 0, true) + 1e-5);
  test::expect_close(y, ref, 1e-4);
}

// ---- batch_norm values -----------------------------------------------------------------------------

TEST(BatchNorm, TrainingNormalisesPerChannelAndUpdatesRunningStats) {
  Tensor x = test::randn32({4, 3, 5, 5}) * 2.0 + 0.5;
  Tensor rm = test::randn32({3}), rv = test::randn32({3}) * 0.1 + 1.0;
  Tensor old_m = rm.clone(), old_v = rv.clone();
  const double mom = 0.2;
  Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, true, mom);
  // Per-channel statistics over N, H, W.
  Tensor batch_mean = mean(x, {0, 2, 3});
  Tensor batch_var_unbiased = var(x, {0, 2, 3}, 1);
  test::expect_close(rm, (1 - mom) * old_m + mom * batch_mean, 1e-5);
  test::expect_close(rv, (1 - mom) * old_v + mom * batch_var_unbiased, 1e-5);
  // The output uses the biased variance and has mean 0 per channel.
  Tensor ref = (x - batch_mean.reshape({1, 3, 1, 1})) / sqrt(var(x, {0, 2, 3}, 0, true) + 1e-5);
  test::expect_close(y, ref, 1e-4);
  test::expect_close(mean(y, {0, 2, 3}), {0, 0, 0}, 1e-5);
}

TEST(BatchNorm, EvaluationUsesRunningStatsAndLeavesThemAlone) {
  Tensor x = randn64({6, 4}, false), w = randn64({4}, false), b = randn64({4}, false);
  Tensor rm = randn64({4}, false), rv = rand64({4}, 0.5, 2.0, false);
  Tensor old_m = rm.clone();
  Tensor y = batch_norm(x, w, b, rm, rv, false, 0.1, 1e-3);
  test::expect_close(y, (x - rm) / sqrt(rv + 1e-3) * w + b, 1e-12);
  test::expect_close(rm, old_m, 0.0);
}

TEST(BatchNorm, EvalGradientIsScaledByRunningStd) {
  Tensor x = randn64({5, 3, 2}), w = randn64({3}), b = randn64({3});
  Tensor rm = randn64({3}, false), rv = rand64({3}, 0.5, 2.0, false);
  Tensor g = randn64({5, 3, 2}, false);
  batch_norm(x, w, b, rm, rv, false).backward(g);
  Tensor rstd = (1.0 / sqrt(rv + 1e-5)).reshape({1, 3, 1});
  test::expect_close(x.grad(), g * w.reshape({1, 3, 1}) * rstd, 1e-12);
  test::expect_close(b.grad(), sum(g, {0, 2}), 1e-12);
  test::expect_close(w.grad(), sum(g * (x.detach() - rm.reshape({1, 3, 1})) * rstd, {0, 2}), 1e-12);
}

TEST(BatchNorm, LargeTrainingBackwardMatchesTheComposite) {
  // Large enough for the parallel paths; compared with the same math built of ops.
  Tensor x = randn64({8, 4, 40, 40}), w = randn64({4}), b = randn64({4});
  Tensor g = randn64({8, 4, 40, 40}, false);
  batch_norm(x, w, b, Tensor(), Tensor(), true).backward(g);
  Tensor dx = x.grad(), dw = w.grad(), db = b.grad();
  x.zero_grad(), w.zero_grad(), b.zero_grad();
  Tensor composite =
      (x - mean(x, {0, 2, 3}, true)) / sqrt(var(x, {0, 2, 3}, 0, true) + 1e-5) * w.reshape({1, 4, 1, 1}) +
      b.reshape({1, 4, 1, 1});
  composite.backward(g);
  test::expect_close(dx, x.grad(), 1e-9);
  test::expect_close(dw, w.grad(), 1e-8);
  test::expect_close(db, b.grad(), 1e-8);
}

// ---- dropout values --------------------------------------------------------------------------------

TEST(Dropout, KeepsAboutOneMinusPAndScalesThem) {
  Tensor x = full({100000}, 2.0);
  Generator g{123, 0};
  const double p = 0.3;
  Tensor y = dropout(x, p, true, &g);
  int64_t kept = 0;
  for (double v : y.to_vector()) {
    if (v != 0) {
      ++kept;
      EXPECT_NEAR(v, 2.0 / (1 - p), 1e-6);
    }
  }
  EXPECT_NEAR(kept / 100000.0, 1 - p, 0.01);
  EXPECT_EQ(g.offset, 50000u);  // advance(numel) reserves numel / 2 counters
}

TEST(Dropout, SameSeedGivesTheSameMaskWhateverTheThreadCount) {
  Tensor x = test::randn32({300, 200});
  Generator g1{9, 4}, g2{9, 4};
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  Tensor a = dropout(x, 0.5, true, &g1);
  omp_set_num_threads(std::max(2, threads));
  Tensor b = dropout(x, 0.5, true, &g2);
  omp_set_num_threads(threads);
  test::expect_close(a, b, 0.0);
  // The generator moved on: the next draw uses another mask.
  Tensor c = dropout(x, 0.5, true, &g1);
  EXPECT_NE(a.to_vector(), c.to_vector());
}

TEST(Dropout, BackwardUsesTheForwardMask) {
  Tensor x = rand64({50, 40}, 0.5, 1.5);
  Generator gen{31, 0};
  Tensor y = dropout(x, 0.25, true, &gen);
  Tensor g = randn64({50, 40}, false);
  y.backward(g);
  // y = x * mask / (1 - p), so dx = g * y / x.
  test::expect_close(x.grad(), g * y.detach() / x.detach(), 1e-12);
}

TEST(Dropout, EvalAndZeroPReturnTheInputAndOneGivesZeros) {
  Tensor x = test::randn32({4, 5});
  EXPECT_TRUE(dropout(x, 0.5, false).is_same(x));
  EXPECT_TRUE(dropout(x, 0.0, true).is_same(x));
  Tensor xg = randn64({4, 5});
  Tensor y = dropout(xg, 1.0, true);
  test::expect_close(y, std::vector<double>(20, 0.0), 0.0);
  y.backward(randn64({4, 5}, false));
  test::expect_close(xg.grad(), std::vector<double>(20, 0.0), 0.0);
}

// ---- errors ----------------------------------------------------------------------------------------

TEST(NnErrors, SoftmaxBadDimOrDtype) {
  test::expect_error([] { softmax(test::randn32({2, 3}), 2); }, {"softmax", "dim 2"});
  test::expect_error([] { log_softmax(arange(4), 0); }, {"log_softmax", "i64"});
}

TEST(NnErrors, LayerNormShapesThatDoNotMatch) {
  test::expect_error(
      [] {
        layer_norm(test::randn32({2, 3, 4}), {3, 5});
      },
      {"layer_norm", "normalized_shape [3,5]", "[2,3,4]"});
  test::expect_error([] { layer_norm(test::randn32({4}), {2, 4}); }, {"layer_norm", "[2,4]", "[4]"});
  test::expect_error(
      [] {
        layer_norm(test::randn32({2, 4}), {4}, test::randn32({5}));
      },
      {"layer_norm", "weight", "[5]", "[4]", "[2,4]"});
  test::expect_error(
      [] {
        layer_norm(test::randn32({2, 4}), {4}, Tensor(), test::randn32({2, 4}));
      },
      {"layer_norm", "bias", "[2,4]"});
  test::expect_error(
      [] {
        layer_norm(test::randn32({2, 4}), {4}, randn64({4}, false));
      },
      {"layer_norm", "weight", "f64", "f32"});
  test::expect_error([] { layer_norm(test::randn32({2, 4}), {}); }, {"layer_norm", "normalized_shape"});
}

TEST(NnErrors, BatchNormShapesThatDoNotMatch) {
  Tensor x = test::randn32({2, 3, 4, 4});
  test::expect_error([&] { batch_norm(x, test::randn32({4}), Tensor(), Tensor(), Tensor(), true); },
                     {"batch_norm", "weight", "[4]", "[3]", "[2,3,4,4]"});
  test::expect_error(
      [&] {
        batch_norm(x, Tensor(), test::randn32({3, 1}), Tensor(), Tensor(), true);
      },
      {"batch_norm", "bias", "[3,1]"});
  test::expect_error([&] { batch_norm(x, Tensor(), Tensor(), test::randn32({2}), test::randn32({2}), true); },
                     {"batch_norm", "running_mean", "[2]", "[3]"});
  test::expect_error([&] { batch_norm(x, Tensor(), Tensor(), test::randn32({3}), Tensor(), true); },
                     {"batch_norm", "running_var"});
  test::expect_error([&] { batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false); },
                     {"batch_norm", "evaluation", "running_mean"});
  test::expect_error([] { batch_norm(test::randn32({5}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
                     {"batch_norm", "[N, C]", "[5]"});
  test::expect_error(
      [] {
        batch_norm(test::randn32({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true);
      },
      {"batch_norm", "more than 1 value", "[1,3]"});
}

TEST(NnErrors, DropoutProbabilityOutsideZeroOne) {
  test::expect_error([] { dropout(test::randn32({3}), 1.5, true); }, {"dropout", "[0, 1]", "1.5"});
  test::expect_error([] { dropout(test::randn32({3}), -0.1, false); }, {"dropout", "-0.1"});
}

}  // namespace
}  // namespace nabla
