// Tests of batch_norm_add_relu (ops/nn.h): y = relu(batch_norm(x) + residual) in one forward kernel, and its
// backward (batch-norm backward with the ReLU mask formed from the saved output) in one backward kernel.
//   - f64 gradient checks against finite differences: training and evaluation, NCHW, channels-last, a
//     strided residual, no residual, no affine, a residual that alone wants a gradient;
//   - the fused op against the unfused composition relu(batch_norm(x) + residual) on fresh random inputs:
//     outputs, every gradient and the running statistics, f64 (to 1e-12) and f32, NCHW and channels-last,
//     training and evaluation, with and without the residual, sizes large enough for the parallel loops;
//   - the layout of the outputs and gradients (channels-last in, channels-last out), and the errors;
//   - the leaky form (negative_slope > 0, Darknet's conv + BN + leaky): gradient checks and the fused op
//     against batch_norm then leaky_relu, the same ways.
#include <cmath>

#include "testing.h"

namespace nabla {
namespace {
using test::rand64;
using test::randn64;
using In = const std::vector<Tensor>&;
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

// ---- gradient checks -------------------------------------------------------------------------------

NABLA_GRADCHECK(batch_norm_add_relu, training_nchw_residual) {
  Tensor rm = zeros({3}, {.dtype = DType::f64}), rv = ones({3}, {.dtype = DType::f64});
  EXPECT_GRADCHECK([rm, rv](In in) { return batch_norm_add_relu(in[0], in[1], in[2], rm, rv, true, in[3]); },
                   {randn64({2, 3, 3, 4}), randn64({3}), randn64({3}), randn64({2, 3, 3, 4})});
}
NABLA_GRADCHECK(batch_norm_add_relu, training_channels_last_residual) {
  EXPECT_GRADCHECK(
      [](In in) {
        return batch_norm_add_relu(in[0].contiguous(kCL), in[1], in[2], Tensor(), Tensor(), true,
                                   in[3].contiguous(kCL));
      },
      {randn64({2, 4, 3, 3}), randn64({4}), randn64({4}), randn64({2, 4, 3, 3})});
}
NABLA_GRADCHECK(batch_norm_add_relu, training_strided_residual_other_layout) {
  // x channels-last, the residual a permuted view in neither layout: the op brings it to x's layout.
  EXPECT_GRADCHECK(
      [](In in) {
        return batch_norm_add_relu(in[0].contiguous(kCL), in[1], in[2], Tensor(), Tensor(), true,
                                   in[3].permute({0, 3, 1, 2}));
      },
      {randn64({2, 5, 3, 2}), randn64({5}), randn64({5}), randn64({2, 3, 2, 5})});
}
NABLA_GRADCHECK(batch_norm_add_relu, training_no_residual_no_affine_2d) {
  EXPECT_GRADCHECK(
      [](In in) { return batch_norm_add_relu(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
      {randn64({6, 4})});
}
NABLA_GRADCHECK(batch_norm_add_relu, eval_residual) {
  Tensor rm = randn64({3}, false), rv = rand64({3}, 0.5, 2.0, false);
  EXPECT_GRADCHECK([rm, rv](In in) { return batch_norm_add_relu(in[0], in[1], in[2], rm, rv, false, in[3]); },
                   {randn64({2, 3, 2, 3}), randn64({3}), randn64({3}), randn64({2, 3, 2, 3})});
}
NABLA_GRADCHECK(batch_norm_add_relu, training_only_residual_wants_grad) {
  // dx is not wanted: the backward kernel still writes the residual's gradient.
  Tensor x = randn64({3, 2, 4}, false), w = randn64({2}, false), b = randn64({2}, false);
  EXPECT_GRADCHECK([x, w, b](In in) { return batch_norm_add_relu(x, w, b, Tensor(), Tensor(), true, in[0]); },
                   {randn64({3, 2, 4})});
}

NABLA_GRADCHECK(batch_norm_add_relu, leaky_training_nchw) {
  Tensor rm = zeros({3}, {.dtype = DType::f64}), rv = ones({3}, {.dtype = DType::f64});
  EXPECT_GRADCHECK(
      [rm, rv](In in) {
        return batch_norm_add_relu(in[0], in[1], in[2], rm, rv, true, Tensor(), 0.1, 1e-5, 0.1);
      },
      {randn64({2, 3, 3, 4}), randn64({3}), randn64({3})});
}
NABLA_GRADCHECK(batch_norm_add_relu, leaky_training_channels_last_residual) {
  EXPECT_GRADCHECK(
      [](In in) {
        return batch_norm_add_relu(in[0].contiguous(kCL), in[1], in[2], Tensor(), Tensor(), true,
                                   in[3].contiguous(kCL), 0.1, 1e-5, 0.25);
      },
      {randn64({2, 4, 3, 3}), randn64({4}), randn64({4}), randn64({2, 4, 3, 3})});
}
NABLA_GRADCHECK(batch_norm_add_relu, leaky_eval) {
  Tensor rm = randn64({3}, false), rv = rand64({3}, 0.5, 2.0, false);
  EXPECT_GRADCHECK(
      [rm, rv](In in) {
        return batch_norm_add_relu(in[0], in[1], in[2], rm, rv, false, Tensor(), 0.1, 0.0, 0.1);
      },
      {randn64({2, 3, 2, 3}), randn64({3}), randn64({3})});
}

// ---- fused against unfused -------------------------------------------------------------------------

struct BnCase {
  Shape shape;
  DType dtype = DType::f64;
  MemoryFormat format = MemoryFormat::Contiguous;
  bool training = true;
  bool residual = true;
  bool affine = true;
  double slope = 0.0;  // > 0: the leaky form, against leaky_relu(batch_norm(x) + residual, slope)
};

struct BnRun {
  Tensor y, dx, dw, db, dr, rm, rv;
};

Tensor fresh(const Shape& shape, DType dt, bool grad, double scale = 1.0, double shift = 0.0) {
  Generator g{test::next_seed(), 0};
  Tensor t = randn(shape, {.dtype = dt}, &g) * scale + shift;
  return t.detach().requires_grad_(grad);
}

// One run of fused or unfused on copies of the same leaves (the running statistics are cloned, so both
// start from the same values and are compared after).
BnRun run_bn(const BnCase& k, const std::vector<Tensor>& leaves, const Tensor& g, bool fused) {
  std::vector<Tensor> in;
  for (const Tensor& t : leaves)
    in.push_back(t.defined() ? t.detach().clone().requires_grad_(t.requires_grad()) : t);
  const Tensor& x0 = in[0];
  Tensor x = k.format == kCL ? x0.contiguous(kCL) : x0;
  Tensor r = in[3].defined() ? (k.format == kCL ? in[3].contiguous(kCL) : in[3]) : Tensor();
  BnRun out;
  out.rm = in[4].clone();
  out.rv = in[5].clone();
  if (fused) {
    out.y = batch_norm_add_relu(x, in[1], in[2], out.rm, out.rv, k.training, r, 0.1, 1e-5, k.slope);
  } else {
    Tensor h = batch_norm(x, in[1], in[2], out.rm, out.rv, k.training, 0.1, 1e-5);
    if (k.slope > 0)
      out.y = leaky_relu(r.defined() ? h + r : h, k.slope);
    else
      out.y = r.defined() ? add_relu(h, r) : relu(h);
  }
  out.y.backward(g);
  out.dx = in[0].grad();
  if (in[1].defined()) out.dw = in[1].grad();
  if (in[2].defined()) out.db = in[2].grad();
  if (in[3].defined()) out.dr = in[3].grad();
  return out;
}

void expect_fused_matches_unfused(const BnCase& k, double tol) {
  const int64_t c = k.shape[1];
  // The shift keeps some pre-activations negative and some positive in every channel.
  std::vector<Tensor> leaves{fresh(k.shape, k.dtype, true, 1.5, 0.3),
                             k.affine ? fresh({c}, k.dtype, true) : Tensor(),
                             k.affine ? fresh({c}, k.dtype, true) : Tensor(),
                             k.residual ? fresh(k.shape, k.dtype, true) : Tensor(),
                             fresh({c}, k.dtype, false, 0.3),
                             abs(fresh({c}, k.dtype, false, 0.2) + 1.0)};
  Tensor g = fresh(k.shape, k.dtype, false);
  const BnRun f = run_bn(k, leaves, g, true), u = run_bn(k, leaves, g, false);
  // The fused output keeps x's layout, as batch_norm does.
  EXPECT_TRUE(f.y.is_contiguous(k.format)) << "fused output lost the input's layout";
  test::expect_close(f.y, u.y, tol);
  test::expect_close(f.dx, u.dx, tol);
  if (k.affine) {
    test::expect_close(f.dw, u.dw, tol * 10);
    test::expect_close(f.db, u.db, tol * 10);
  }
  if (k.residual) test::expect_close(f.dr, u.dr, tol);
  test::expect_close(f.rm, u.rm, tol);
  test::expect_close(f.rv, u.rv, tol);
  // Not a vacuous pass: the ReLU cut (or, leaky, scaled) some of the outputs and kept some.
  const std::vector<double> yv = f.y.to_double_vector();
  int64_t cut = 0;
  for (double v : yv) cut += k.slope > 0 ? v < 0.0 : v == 0.0;
  EXPECT_GT(cut, 0);
  EXPECT_LT(cut, static_cast<int64_t>(yv.size()));
}

TEST(BatchNormAddRelu, MatchesUnfusedF64NchwTraining) {
  expect_fused_matches_unfused({.shape = {4, 5, 6, 7}}, 1e-12);
}
TEST(BatchNormAddRelu, MatchesUnfusedF64ChannelsLastTraining) {
  expect_fused_matches_unfused({.shape = {3, 8, 5, 4}, .format = kCL}, 1e-12);
}
TEST(BatchNormAddRelu, MatchesUnfusedF64Evaluation) {
  expect_fused_matches_unfused({.shape = {3, 4, 5, 5}, .training = false}, 1e-12);
  expect_fused_matches_unfused({.shape = {3, 4, 5, 5}, .format = kCL, .training = false}, 1e-12);
}
TEST(BatchNormAddRelu, MatchesUnfusedF64NoResidualNoAffine) {
  expect_fused_matches_unfused({.shape = {5, 3, 4, 4}, .residual = false, .affine = false}, 1e-12);
  expect_fused_matches_unfused({.shape = {40, 6}, .residual = false}, 1e-12);
}
TEST(BatchNormAddRelu, MatchesUnfusedF32BothLayoutsLarge) {
  // Large enough for the OpenMP loops of the kernels (and of the unfused ops).
  expect_fused_matches_unfused({.shape = {8, 16, 24, 24}, .dtype = DType::f32}, 2e-5);
  expect_fused_matches_unfused({.shape = {8, 16, 24, 24}, .dtype = DType::f32, .format = kCL}, 2e-5);
  expect_fused_matches_unfused(
      {.shape = {6, 12, 10, 10}, .dtype = DType::f32, .format = kCL, .training = false}, 2e-5);
}

TEST(BatchNormAddRelu, LeakyMatchesUnfusedBothLayouts) {
  expect_fused_matches_unfused({.shape = {4, 5, 6, 7}, .residual = false, .slope = 0.1}, 1e-12);
  expect_fused_matches_unfused({.shape = {3, 8, 5, 4}, .format = kCL, .slope = 0.1}, 1e-12);
  expect_fused_matches_unfused({.shape = {3, 4, 5, 5}, .training = false, .slope = 0.1}, 1e-12);
  expect_fused_matches_unfused({.shape = {40, 6}, .residual = false, .affine = false, .slope = 0.3}, 1e-12);
  expect_fused_matches_unfused(
      {.shape = {8, 16, 24, 24}, .dtype = DType::f32, .format = kCL, .residual = false, .slope = 0.1}, 2e-5);
  expect_fused_matches_unfused({.shape = {8, 16, 24, 24}, .dtype = DType::f32, .slope = 0.1}, 2e-5);
}

TEST(BatchNormAddRelu, BadSlopeIsNamed) {
  Tensor x = test::randn32({2, 3, 4, 4});
  test::expect_error(
      [&] {
        batch_norm_add_relu(x, Tensor(), Tensor(), Tensor(), Tensor(), true, Tensor(), 0.1, 1e-5, -0.1);
      },
      {"batch_norm_add_relu", "negative_slope", "-0.1"});
  test::expect_error(
      [&] {
        batch_norm_add_relu(x, Tensor(), Tensor(), Tensor(), Tensor(), true, Tensor(), 0.1, 1e-5, INFINITY);
      },
      {"batch_norm_add_relu", "negative_slope"});
}

TEST(BatchNormAddRelu, GradientsKeepTheInputLayout) {
  Tensor x = fresh({2, 8, 5, 3}, DType::f32, true), r = fresh({2, 8, 5, 3}, DType::f32, true);
  Tensor y =
      batch_norm_add_relu(x.contiguous(kCL), Tensor(), Tensor(), Tensor(), Tensor(), true, r.contiguous(kCL));
  EXPECT_TRUE(y.is_contiguous(kCL));
  y.backward(fresh({2, 8, 5, 3}, DType::f32, false));
  // The leaves are row-major; their gradients came through the layout conversions, and must be finite.
  for (double v : x.grad().to_double_vector()) ASSERT_TRUE(std::isfinite(v));
  for (double v : r.grad().to_double_vector()) ASSERT_TRUE(std::isfinite(v));
}

TEST(BatchNormAddRelu, BadResidualIsNamed) {
  Tensor x = test::randn32({2, 3, 4, 4});
  test::expect_error(
      [&] {
        batch_norm_add_relu(x, Tensor(), Tensor(), Tensor(), Tensor(), true, test::randn32({2, 3, 4, 5}));
      },
      {"batch_norm_add_relu", "residual", "[2,3,4,4]", "[2,3,4,5]"});
  test::expect_error(
      [&] {
        batch_norm_add_relu(x, Tensor(), Tensor(), Tensor(), Tensor(), true, randn64({2, 3, 4, 4}, false));
      },
      {"batch_norm_add_relu", "residual", "f64"});
  test::expect_error([&] { batch_norm_add_relu(x, test::randn32({4}), Tensor(), Tensor(), Tensor(), true); },
                     {"batch_norm_add_relu", "weight", "[4]", "[3]"});
}

}  // namespace
}  // namespace nabla
