// Tests of the conv family: f64 gradient checks of every op (strides, paddings, dilation, groups, depthwise,
// 1x1, strided NHWC storage viewed as NCHW), values against naive loops on random inputs (a 7-loop conv2d
// with its own backward, pooling and upsampling loops), hand-computed pooling cases, and error messages.
#include <algorithm>
#include <cmath>
#include <limits>

#include "testing.h"

namespace nabla {
namespace {
using test::randn64;
using In = const std::vector<Tensor>&;

// ---- gradient checks ------------------------------------------------------------------------------------

NABLA_GRADCHECK(conv2d, stride2_padding_dilation_bias) {
  EXPECT_GRADCHECK(
      [](In in) {
        return conv2d(in[0], in[1], in[2], {2, 2}, {1, 1}, {2, 2});
      },
      {randn64({2, 3, 7, 7}), randn64({4, 3, 3, 3}), randn64({4})});
}
NABLA_GRADCHECK(conv2d, groups2) {
  EXPECT_GRADCHECK(
      [](In in) {
        return conv2d(in[0], in[1], in[2], {1, 1}, {1, 1}, {1, 1}, 2);
      },
      {randn64({2, 4, 5, 5}), randn64({6, 2, 3, 3}), randn64({6})});
}
NABLA_GRADCHECK(conv2d, depthwise_multiplier2_no_bias) {
  EXPECT_GRADCHECK(
      [](In in) {
        return conv2d(in[0], in[1], Tensor(), {2, 2}, {1, 1}, {1, 1}, 3);
      },
      {randn64({2, 3, 6, 6}), randn64({6, 1, 3, 3})});
}
NABLA_GRADCHECK(conv2d, depthwise_dilated_bias) {  // the direct depthwise path of ops/cpu/conv.cpp
  EXPECT_GRADCHECK(
      [](In in) {
        return conv2d(in[0], in[1], in[2], {2, 2}, {2, 2}, {2, 2}, 3);
      },
      {randn64({2, 3, 7, 7}), randn64({3, 1, 3, 3}), randn64({3})});
}
NABLA_GRADCHECK(conv2d, batch1_asymmetric_no_bias) {
  EXPECT_GRADCHECK(
      [](In in) {
        return conv2d(in[0], in[1], Tensor(), {1, 2}, {1, 0}, {1, 1});
      },
      {randn64({1, 2, 5, 6}), randn64({3, 2, 2, 3})});
}
NABLA_GRADCHECK(conv2d, pointwise_1x1) {
  EXPECT_GRADCHECK([](In in) { return conv2d(in[0], in[1], in[2]); },
                   {randn64({2, 3, 4, 4}), randn64({5, 3, 1, 1}), randn64({5})});
}
NABLA_GRADCHECK(conv2d, pointwise_1x1_stride2) {
  EXPECT_GRADCHECK(
      [](In in) {
        return conv2d(in[0], in[1], Tensor(), {2, 2});
      },
      {randn64({2, 3, 5, 5}), randn64({4, 3, 1, 1})});
}
NABLA_GRADCHECK(conv2d, nhwc_storage_viewed_as_nchw) {
  // x is stored NHWC and w as [kh, kw, in, out]; both reach conv2d as strided NCHW / OIHW views.
  EXPECT_GRADCHECK(
      [](In in) {
        return conv2d(in[0].permute({0, 3, 1, 2}), in[1].permute({3, 2, 0, 1}), in[2], {1, 1}, {1, 1});
      },
      {randn64({2, 5, 5, 3}), randn64({3, 3, 3, 4}), randn64({4})});
}
NABLA_GRADCHECK(conv2d, only_weight_needs_grad) {
  Tensor x = randn64({2, 3, 5, 5}, /*requires_grad=*/false);
  EXPECT_GRADCHECK(
      [](In in) {
        return conv2d(in[0], in[1], in[2], {1, 1}, {1, 1});
      },
      {x, randn64({2, 3, 3, 3}), randn64({2})});
}
NABLA_GRADCHECK(conv2d, only_input_needs_grad) {
  Tensor w = randn64({2, 3, 3, 3}, /*requires_grad=*/false);
  EXPECT_GRADCHECK(
      [](In in) {
        return conv2d(in[0], in[1], Tensor(), {2, 1}, {0, 1});
      },
      {randn64({2, 3, 5, 5}), w});
}

NABLA_GRADCHECK(max_pool2d, overlapping_stride2_padding) {
  EXPECT_GRADCHECK([](In in) { return max_pool2d(in[0], {3, 3}, {2, 2}, {1, 1}); }, {randn64({2, 3, 6, 6})});
}
NABLA_GRADCHECK(max_pool2d, default_stride_nhwc) {
  EXPECT_GRADCHECK(
      [](In in) {
        return max_pool2d(in[0].permute({0, 3, 1, 2}), {2, 2});
      },
      {randn64({2, 4, 6, 3})});
}
NABLA_GRADCHECK(avg_pool2d, count_include_pad) {
  EXPECT_GRADCHECK([](In in) { return avg_pool2d(in[0], {3, 3}, {2, 2}, {1, 1}); }, {randn64({2, 3, 5, 5})});
}
NABLA_GRADCHECK(avg_pool2d, exclude_pad_rectangular_nhwc) {
  EXPECT_GRADCHECK(
      [](In in) {
        return avg_pool2d(in[0].permute({0, 3, 1, 2}), {2, 3}, {1, 2}, {1, 1}, false);
      },
      {randn64({2, 5, 6, 2})});
}
NABLA_GRADCHECK(adaptive_avg_pool2d, non_divisible) {
  EXPECT_GRADCHECK([](In in) { return adaptive_avg_pool2d(in[0], {3, 2}); }, {randn64({2, 3, 7, 5})});
}
NABLA_GRADCHECK(adaptive_avg_pool2d, larger_output_nhwc) {
  EXPECT_GRADCHECK(
      [](In in) {
        return adaptive_avg_pool2d(in[0].permute({0, 3, 1, 2}), {5, 4});
      },
      {randn64({1, 3, 3, 2})});
}
NABLA_GRADCHECK(upsample_nearest2d, scale2x3_nhwc) {
  EXPECT_GRADCHECK(
      [](In in) {
        return upsample_nearest2d(in[0].permute({0, 3, 1, 2}), {2, 3});
      },
      {randn64({2, 3, 4, 3})});
}

// ---- naive references -------------------------------------------------------------------------------------

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

struct ConvRef {
  Shape y_shape;
  std::vector<double> y, dx, dw, db;
};

// The definition, seven loops deep; with gy it also accumulates dx, dw, db from the same index map.
ConvRef naive_conv(const Tensor& x, const Tensor& w, const Tensor& b, Pair s, Pair p, Pair d, int64_t groups,
                   const Tensor& gy = Tensor()) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t K = w.size(0), CG = w.size(1), KH = w.size(2), KW = w.size(3), KG = K / groups;
  const int64_t OH = out_size(H, KH, s[0], p[0], d[0]), OW = out_size(W, KW, s[1], p[1], d[1]);
  auto xv = x.to_vector(), wv = w.to_vector();
  auto bv = b.defined() ? b.to_vector() : std::vector<double>(K, 0.0);
  auto gv = gy.defined() ? gy.to_vector() : std::vector<double>();
  ConvRef r;
  r.y_shape = {N, K, OH, OW};
  r.y.assign(N * K * OH * OW, 0.0);
  r.dx.assign(xv.size(), 0.0);
  r.dw.assign(wv.size(), 0.0);
  r.db.assign(K, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < K; ++o)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          const int64_t yi = ((n * K + o) * OH + i) * OW + j;
          double acc = bv[o];
          const double g = gy.defined() ? gv[yi] : 0.0;
          r.db[o] += g;
          for (int64_t c = 0; c < CG; ++c)
            for (int64_t a = 0; a < KH; ++a)
              for (int64_t q = 0; q < KW; ++q) {
                const int64_t ih = i * s[0] + a * d[0] - p[0], iw = j * s[1] + q * d[1] - p[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t xi = ((n * C + (o / KG) * CG + c) * H + ih) * W + iw;
                const int64_t wi = ((o * CG + c) * KH + a) * KW + q;
                acc += wv[wi] * xv[xi];
                r.dx[xi] += wv[wi] * g;
                r.dw[wi] += xv[xi] * g;
              }
          r.y[yi] = acc;
        }
  return r;
}

void expect_near_rel(const Tensor& t, const std::vector<double>& ref, double tol, const char* what) {
  auto v = t.to_vector();
  ASSERT_EQ(v.size(), ref.size()) << what;
  double scale = 1.0;
  for (double e : ref) scale = std::max(scale, std::abs(e));
  for (size_t i = 0; i < v.size(); ++i) ASSERT_NEAR(v[i], ref[i], tol * scale) << what << " at element " << i;
}

struct ConvCase {
  Shape x, w;
  bool bias;
  Pair stride, padding, dilation;
  int64_t groups;
};

// Small convs and batch 1 run (batch item, group) items one after another (threaded BLAS, and threaded
// im2col/col2im when big); larger convs with at least as many items as threads run items in parallel with
// per-thread dW accumulators. Every path appears below (the suite runs with 2 threads), in f32 and f64.
const std::vector<ConvCase> kConvCases = {
    {{1, 3, 9, 9}, {8, 3, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 1},
    {{5, 3, 9, 9}, {8, 3, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 1},
    {{3, 4, 11, 10}, {6, 4, 3, 3}, false, {2, 2}, {2, 1}, {2, 2}, 1},
    {{2, 6, 8, 8}, {9, 2, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 3},
    {{3, 8, 7, 7}, {8, 1, 3, 3}, false, {2, 2}, {1, 1}, {1, 1}, 8},    // depthwise
    {{1, 8, 7, 7}, {16, 1, 5, 5}, true, {1, 1}, {2, 2}, {1, 1}, 8},    // depthwise, multiplier 2, batch 1
    {{2, 6, 9, 9}, {6, 1, 5, 5}, false, {1, 1}, {4, 4}, {2, 2}, 6},    // depthwise, dilated (DARTS
                                                                       // dil_conv_5x5)
    {{3, 4, 8, 8}, {4, 1, 3, 3}, true, {2, 2}, {2, 2}, {2, 2}, 4},     // depthwise, strided, dilated, bias
    {{4, 16, 6, 6}, {12, 16, 1, 1}, true, {1, 1}, {0, 0}, {1, 1}, 1},  // 1x1: no im2col
    {{1, 16, 6, 6}, {12, 16, 1, 1}, false, {1, 1}, {0, 0}, {1, 1}, 1},
    {{3, 16, 7, 7}, {8, 16, 1, 1}, false, {2, 2}, {0, 0}, {1, 1}, 1},     // strided 1x1
    {{2, 3, 20, 18}, {4, 3, 7, 7}, true, {2, 2}, {3, 3}, {1, 1}, 1},      // ResNet stem, smaller
    {{2, 2, 6, 9}, {3, 2, 2, 4}, true, {3, 2}, {0, 2}, {2, 1}, 1},        // every knob asymmetric
    {{4, 16, 16, 16}, {16, 16, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 1},   // items in parallel
    {{3, 16, 16, 16}, {32, 8, 3, 3}, true, {2, 2}, {1, 1}, {1, 1}, 2},    // items in parallel, groups
    {{4, 64, 16, 16}, {32, 64, 1, 1}, true, {1, 1}, {0, 0}, {1, 1}, 1},   // items in parallel, 1x1
    {{1, 16, 32, 32}, {16, 16, 3, 3}, false, {1, 1}, {1, 1}, {1, 1}, 1},  // threaded im2col, col2im
};

void check_conv_case(const ConvCase& c, DType dt, double tol) {
  Generator gen{test::next_seed(), 0};
  Tensor x = randn(c.x, {.dtype = dt, .requires_grad = true}, &gen);
  Tensor w = randn(c.w, {.dtype = dt, .requires_grad = true}, &gen);
  Tensor b = c.bias ? randn({c.w[0]}, {.dtype = dt, .requires_grad = true}, &gen) : Tensor();
  Tensor y = conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
  Tensor gy = randn(y.shape(), {.dtype = dt}, &gen);
  ConvRef r = naive_conv(x, w, b, c.stride, c.padding, c.dilation, c.groups, gy);
  ASSERT_EQ(y.shape(), r.y_shape);
  expect_near_rel(y, r.y, tol, "y");
  y.backward(gy);
  expect_near_rel(x.grad(), r.dx, tol, "dx");
  expect_near_rel(w.grad(), r.dw, tol, "dw");
  if (c.bias) expect_near_rel(b.grad(), r.db, tol, "db");
}

TEST(Conv2d, ForwardAndBackwardMatchNaiveLoopsF64) {
  for (size_t i = 0; i < kConvCases.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "case " << i << " x " << shape_str(kConvCases[i].x) << " w "
                                    << shape_str(kConvCases[i].w));
    check_conv_case(kConvCases[i], DType::f64, 1e-12);
  }
}

TEST(Conv2d, ForwardAndBackwardMatchNaiveLoopsF32) {
  for (size_t i = 0; i < kConvCases.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "case " << i << " x " << shape_str(kConvCases[i].x) << " w "
                                    << shape_str(kConvCases[i].w));
    check_conv_case(kConvCases[i], DType::f32, 1e-5);
  }
}

TEST(Conv2d, NonContiguousInputGivesTheSameValues) {
  Tensor nhwc = test::randn32({2, 7, 7, 5});
  Tensor w = test::randn32({4, 5, 3, 3});
  Tensor a = conv2d(nhwc.permute({0, 3, 1, 2}), w, Tensor(), {1, 1}, {1, 1});
  Tensor b = conv2d(nhwc.permute({0, 3, 1, 2}).contiguous(), w, Tensor(), {1, 1}, {1, 1});
  test::expect_close(a, b, 0.0);
}

TEST(Conv2d, OutputSizeFollowsTheFormula) {
  Tensor x = test::randn32({1, 2, 10, 13});
  EXPECT_EQ(conv2d(x, test::randn32({3, 2, 3, 3}), Tensor(), {2, 3}, {1, 2}, {2, 1}).shape(),
            (Shape{1, 3, (10 + 2 - 4 - 1) / 2 + 1, (13 + 4 - 2 - 1) / 3 + 1}));
  EXPECT_EQ(max_pool2d(x, {3, 3}, {2, 2}, {1, 1}).shape(), (Shape{1, 2, 5, 7}));
  EXPECT_EQ(avg_pool2d(x, {2, 2}).shape(), (Shape{1, 2, 5, 6}));
}

// ---- pooling against loops and by hand
// ----------------------------------------------------------------------

// Per output cell, the window's real elements (as flat plane indices) and the divisor of avg_pool2d.
template <class F>
std::vector<double> naive_pool(const Tensor& x, int64_t OH, int64_t OW, F window_reduce) {
  const int64_t P = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  auto xv = x.to_vector();
  std::vector<double> out;
  for (int64_t pl = 0; pl < P; ++pl)
    for (int64_t i = 0; i < OH; ++i)
      for (int64_t j = 0; j < OW; ++j) out.push_back(window_reduce(&xv[pl * H * W], i, j));
  return out;
}

TEST(Pool2d, MaxPoolMatchesLoopsWithPaddingAsMinusInfinity) {
  Tensor x = test::randn32({2, 3, 9, 8}) - 3.0;  // all-negative-ish: a zero pad would win, -inf must not
  const int64_t K = 3, S = 2, P = 1, H = 9, W = 8, OH = (H + 2 - 3) / 2 + 1, OW = (W + 2 - 3) / 2 + 1;
  auto ref = naive_pool(x, OH, OW, [&](const double* pl, int64_t i, int64_t j) {
    double m = -INFINITY;
    for (int64_t a = 0; a < K; ++a)
      for (int64_t b = 0; b < K; ++b) {
        int64_t h = i * S - P + a, w = j * S - P + b;
        if (h >= 0 && h < H && w >= 0 && w < W) m = std::max(m, pl[h * W + w]);
      }
    return m;
  });
  test::expect_close(max_pool2d(x, {K, K}, {S, S}, {P, P}), ref, 0.0);
}

TEST(Pool2d, AvgPoolMatchesLoopsBothPaddingModes) {
  Tensor x = test::randn32({2, 2, 7, 6});
  const int64_t KH = 3, KW = 2, SH = 2, SW = 1, PH = 1, PW = 1, H = 7, W = 6;
  const int64_t OH = (H + 2 * PH - KH) / SH + 1, OW = (W + 2 * PW - KW) / SW + 1;
  for (bool include : {true, false}) {
    auto ref = naive_pool(x, OH, OW, [&](const double* pl, int64_t i, int64_t j) {
      double s = 0;
      int64_t real = 0;
      for (int64_t a = 0; a < KH; ++a)
        for (int64_t b = 0; b < KW; ++b) {
          int64_t h = i * SH - PH + a, w = j * SW - PW + b;
          if (h >= 0 && h < H && w >= 0 && w < W) s += pl[h * W + w], ++real;
        }
      return s / (include ? KH * KW : real);
    });
    test::expect_close(avg_pool2d(x, {KH, KW}, {SH, SW}, {PH, PW}, include), ref, 1e-6);
  }
}

TEST(Pool2d, AvgPoolPaddingModesByHand) {
  Tensor x = from_vector({1, 2, 3, 4}, {1, 1, 2, 2});
  test::expect_close(avg_pool2d(x, {2, 2}, {1, 1}, {1, 1}),
                     {0.25, 0.75, 0.5, 1.0, 2.5, 1.5, 0.75, 1.75, 1.0});
  test::expect_close(avg_pool2d(x, {2, 2}, {1, 1}, {1, 1}, false), {1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4});
}

TEST(Pool2d, AdaptiveAvgPoolUsesFloorCeilWindows) {
  Tensor x = test::randn32({2, 3, 7, 5});
  const int64_t H = 7, W = 5, OH = 3, OW = 2;
  auto ref = naive_pool(x, OH, OW, [&](const double* pl, int64_t i, int64_t j) {
    int64_t h0 = (i * H) / OH, h1 = ((i + 1) * H + OH - 1) / OH;
    int64_t w0 = (j * W) / OW, w1 = ((j + 1) * W + OW - 1) / OW;
    double s = 0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) s += pl[h * W + w];
    return s / double((h1 - h0) * (w1 - w0));
  });
  test::expect_close(adaptive_avg_pool2d(x, {OH, OW}), ref, 1e-6);
  // A 1x1 output is the global mean of each plane.
  test::expect_close(adaptive_avg_pool2d(x, {1, 1}).flatten(), mean(x, {2, 3}).flatten(), 1e-6);
  // Rows 0..6 into 3 cells: [0, 3), [2, 5), [4, 7) overlap.
  Tensor r = from_vector({0, 1, 2, 3, 4, 5, 6}, {1, 1, 7, 1});
  test::expect_close(adaptive_avg_pool2d(r, {3, 1}), {1, 3, 5}, 1e-6);
}

TEST(Pool2d, UpsampleNearestRepeatsBlocks) {
  Tensor x = test::randn32({2, 3, 4, 5});
  Tensor y = upsample_nearest2d(x, {3, 2});
  ASSERT_EQ(y.shape(), (Shape{2, 3, 12, 10}));
  auto xv = x.to_vector(), yv = y.to_vector();
  for (int64_t pl = 0; pl < 6; ++pl)
    for (int64_t i = 0; i < 12; ++i)
      for (int64_t j = 0; j < 10; ++j)
        ASSERT_EQ(yv[(pl * 12 + i) * 10 + j], xv[(pl * 4 + i / 3) * 5 + j / 2]);
}

TEST(Pool2d, MaxPoolBackwardRoutesToTheArgmax) {
  Tensor x =
      from_vector({1, 5, 2, 0, 3, 4, 9, 8, 7, 6, 0, 1, 2, 3, 4, 5}, {1, 1, 4, 4}, {.dtype = DType::f64});
  x.requires_grad_();
  Tensor y = max_pool2d(x, {2, 2});
  test::expect_close(y, {5, 9, 7, 5});
  y.backward(from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, {.dtype = DType::f64}));
  test::expect_close(x.grad(), {0, 1, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 0, 0, 0, 4});
}

TEST(Pool2d, MaxPoolPropagatesNaN) {
  Tensor x = from_vector({1, NAN, 2, 3}, {1, 1, 2, 2});
  EXPECT_TRUE(std::isnan(max_pool2d(x, {2, 2}).item()));
}

// ---- errors
// ---------------------------------------------------------------------------------------------------

TEST(ConvErrors, ShapesAreNamed) {
  Tensor x = Tensor::empty({8, 3, 32, 32}), w = Tensor::empty({64, 64, 3, 3});
  test::expect_error(
      [&] { conv2d(x, w); },
      {"conv2d: input has 3 channels, weight expects 64 (input [8,3,32,32], weight [64,64,3,3])"});
  test::expect_error(
      [] {
        conv2d(Tensor::empty({3, 32, 32}), Tensor::empty({8, 3, 3, 3}));
      },
      {"conv2d", "4-D", "[3,32,32]"});
  test::expect_error(
      [] {
        conv2d(Tensor::empty({1, 3, 8, 8}), Tensor::empty({8, 3, 3}));
      },
      {"conv2d", "weight", "[8,3,3]"});
  test::expect_error(
      [] {
        conv2d(Tensor::empty({1, 6, 8, 8}), Tensor::empty({8, 2, 3, 3}), Tensor(), {1, 1}, {0, 0}, {1, 1}, 4);
      },
      {"conv2d", "groups 4", "6", "[1,6,8,8]", "[8,2,3,3]"});
  test::expect_error(
      [] {
        conv2d(Tensor::empty({1, 3, 4, 4}), Tensor::empty({2, 3, 5, 5}));
      },
      {"conv2d", "kernel 5x5", "larger than the padded input 4x4", "[1,3,4,4]"});
  test::expect_error(
      [] {
        conv2d(Tensor::empty({1, 3, 6, 6}), Tensor::empty({2, 3, 3, 3}), Tensor(), {1, 1}, {0, 0}, {3, 3});
      },
      {"conv2d", "dilated 7x7", "larger than the padded input 6x6"});
  test::expect_error(
      [] {
        conv2d(Tensor::empty({1, 3, 8, 8}), Tensor::empty({2, 3, 3, 3}), Tensor(), {0, 1});
      },
      {"conv2d", "stride must be positive", "0x1"});
  test::expect_error(
      [] {
        conv2d(Tensor::empty({1, 3, 8, 8}), Tensor::empty({2, 3, 3, 3}), Tensor::empty({3}));
      },
      {"conv2d", "bias", "[3]", "[2,3,3,3]"});
  test::expect_error(
      [] {
        conv2d(Tensor::empty({1, 3, 8, 8}), Tensor::empty({2, 3, 3, 3}, DType::f64));
      },
      {"conv2d", "dtype"});
}

TEST(ConvErrors, PoolShapesAreNamed) {
  test::expect_error([] { max_pool2d(Tensor::empty({3, 8, 8}), {2, 2}); }, {"max_pool2d", "4-D", "[3,8,8]"});
  test::expect_error(
      [] {
        max_pool2d(Tensor::empty({1, 1, 3, 3}), {5, 5});
      },
      {"max_pool2d", "kernel 5x5", "larger than the padded input 3x3", "[1,1,3,3]"});
  test::expect_error(
      [] {
        avg_pool2d(Tensor::empty({1, 1, 8, 8}), {2, 2}, {-1, 1});
      },
      {"avg_pool2d", "stride must be positive", "[1,1,8,8]"});
  test::expect_error(
      [] {
        avg_pool2d(Tensor::empty({1, 1, 8, 8}), {2, 2}, {2, 2}, {2, 2});
      },
      {"avg_pool2d", "padding 2x2", "half the kernel"});
  test::expect_error(
      [] {
        adaptive_avg_pool2d(Tensor::empty({1, 1, 8, 8}), {0, 2});
      },
      {"adaptive_avg_pool2d", "output size", "[1,1,8,8]"});
  test::expect_error(
      [] {
        upsample_nearest2d(Tensor::empty({1, 1, 8}), {2, 2});
      },
      {"upsample_nearest2d", "4-D", "[1,1,8]"});
  test::expect_error(
      [] {
        upsample_nearest2d(Tensor::empty({1, 1, 8, 8}), {0, 2});
      },
      {"upsample_nearest2d", "scale", "[1,1,8,8]"});
  test::expect_error(
      [] {
        max_pool2d(Tensor::empty({1, 1, 8, 8}, DType::i64), {2, 2});
      },
      {"max_pool2d", "floating"});
}

}  // namespace
}  // namespace nabla
