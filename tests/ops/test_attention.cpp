// scaled_dot_product_attention on the CPU: values and gradients against the unfused composition
// (matmul, mask, softmax, dropout, matmul) in f64 and f32, with and without key-padding mask, causal mask
// (square and KV-cache Tq < Tk, bottom-right aligned), dropout (the same Philox draw as dropout() on the
// probabilities, so the composition matches bit for bit in f64), custom scale and strided inputs; dropout's
// statistics and reproducibility; rows with no allowed key; f64 gradient checks (registered for the op
// table); errors. CPU/CUDA parity is in tests/cuda/test_parity_attention.cpp.
#include <cmath>
#include <optional>

#include "testing.h"

namespace nabla {
namespace {
using In = const std::vector<Tensor>&;
using test::randn64;

struct Case {
  int64_t b = 2, h = 3, tq = 5, tk = 5, d = 4;
  bool mask = false, causal = false;
  double p = 0.0;
  std::optional<double> scale;
};

// [B, Tk] bool, true = keep; key 0 is always kept so that no row is empty (the composition would give NaN).
Tensor random_key_mask(int64_t b, int64_t tk) {
  Generator g{test::next_seed(), 0};
  Tensor u = uniform({b, tk}, 0.0, 1.0, {.dtype = DType::f64}, &g);
  std::vector<double> v = u.to_double_vector();
  for (int64_t i = 0; i < b; ++i) v[i * tk] = 1.0;
  return gt(from_vector(v, {b, tk}, {.dtype = DType::f64}), scalar_like(0.3, u));
}

// The unfused reference: softmax(q k^T * scale, masked to -inf) -> dropout -> @ v. Masks: key padding
// (kpm [B, Tk], true = keep) and the bottom-right causal rule j <= i + Tk - Tq.
Tensor reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kpm, bool causal, double p,
                 Generator* gen, std::optional<double> scale = std::nullopt) {
  const int64_t b = q.size(0), tq = q.size(2), tk = k.size(2), d = q.size(3);
  const double sc = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(d));
  Tensor s = matmul(q, k.transpose(-1, -2)) * sc;
  std::vector<double> keep_mask = kpm.defined() ? kpm.to(DType::f64).to_double_vector()
                                                : std::vector<double>(static_cast<size_t>(b * tk), 1.0);
  std::vector<double> allow(static_cast<size_t>(b * tq * tk));
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t i = 0; i < tq; ++i)
      for (int64_t j = 0; j < tk; ++j)
        allow[(bi * tq + i) * tk + j] = keep_mask[bi * tk + j] != 0 && (!causal || j <= i + tk - tq) ? 1 : 0;
  Tensor a = gt(from_vector(allow, {b, 1, tq, tk}, {.dtype = DType::f64}),
                from_vector({0.5}, {1}, {.dtype = DType::f64}));
  s = where(a.expand(s.shape()), s, scalar_like(-INFINITY, s));
  Tensor pr = softmax(s, -1);
  if (p > 0) pr = dropout(pr, p, true, gen);
  return matmul(pr, v);
}

Tensor leaf(const Tensor& t) {
  Tensor c = t.detach().clone();
  c.requires_grad_(true);
  return c;
}

// Fused against reference: outputs and the gradients of q, k, v for one random cotangent.
void expect_matches_reference(const Case& c, DType dtype, double tol) {
  Generator g0{test::next_seed(), 0};
  auto make = [&](int64_t t) {
    Tensor x = randn({c.b, c.h, t, c.d}, {.dtype = dtype}, &g0);
    x.requires_grad_(true);
    return x;
  };
  Tensor q = make(c.tq), k = make(c.tk), v = make(c.tk);
  Tensor kpm = c.mask ? random_key_mask(c.b, c.tk) : Tensor();
  Tensor q2 = leaf(q), k2 = leaf(k), v2 = leaf(v);
  const Generator dropout_gen{991, 17};
  Generator ga = dropout_gen, gb = dropout_gen;
  Tensor y = scaled_dot_product_attention(q, k, v, kpm, c.causal, c.p, true, c.scale, &ga);
  Tensor r = reference(q2, k2, v2, kpm, c.causal, c.p, &gb, c.scale);
  EXPECT_EQ(ga.offset, gb.offset) << "the fused op must advance the generator as dropout() on [B, H, Tq, Tk]";
  ASSERT_EQ(y.shape(), (Shape{c.b, c.h, c.tq, c.d}));
  test::expect_close(y, r, tol);
  Tensor cot = randn(y.shape(), {.dtype = dtype}, &g0);
  y.backward(cot);
  r.backward(cot);
  test::expect_close(q.grad(), q2.grad(), tol);
  test::expect_close(k.grad(), k2.grad(), tol);
  test::expect_close(v.grad(), v2.grad(), tol);
}

TEST(Attention, MatchesCompositionF64) { expect_matches_reference({}, DType::f64, 1e-12); }
TEST(Attention, MatchesCompositionF64KeyPaddingMask) {
  expect_matches_reference({.b = 3, .h = 2, .tq = 7, .tk = 7, .d = 5, .mask = true}, DType::f64, 1e-12);
}
TEST(Attention, MatchesCompositionF64Causal) {
  expect_matches_reference({.b = 2, .h = 2, .tq = 9, .tk = 9, .d = 3, .causal = true}, DType::f64, 1e-12);
}
TEST(Attention, MatchesCompositionF64CausalKvCacheBottomRight) {
  expect_matches_reference({.b = 2, .h = 2, .tq = 3, .tk = 8, .d = 4, .causal = true}, DType::f64, 1e-12);
  expect_matches_reference({.b = 1, .h = 2, .tq = 1, .tk = 6, .d = 4, .causal = true}, DType::f64, 1e-12);
}
TEST(Attention, MatchesCompositionF64MaskAndCausalAndCrossLengths) {
  expect_matches_reference({.b = 2, .h = 3, .tq = 6, .tk = 10, .d = 4, .mask = true, .causal = true},
                           DType::f64, 1e-12);
  expect_matches_reference({.b = 2, .h = 1, .tq = 7, .tk = 3, .d = 2, .mask = true}, DType::f64, 1e-12);
}
TEST(Attention, MatchesCompositionF64Dropout) {
  // Same generator state: the same Philox elements as dropout() on the [B, H, Tq, Tk] probabilities.
  expect_matches_reference({.b = 2, .h = 2, .tq = 6, .tk = 7, .d = 3, .mask = true, .p = 0.3}, DType::f64,
                           1e-12);
  expect_matches_reference({.b = 1, .h = 3, .tq = 8, .tk = 8, .d = 4, .causal = true, .p = 0.5}, DType::f64,
                           1e-12);
}
TEST(Attention, MatchesCompositionF64CustomScale) {
  expect_matches_reference({.b = 1, .h = 2, .tq = 4, .tk = 5, .d = 3, .scale = 0.7}, DType::f64, 1e-12);
}
TEST(Attention, MatchesCompositionF32) {
  expect_matches_reference({.b = 2, .h = 4, .tq = 33, .tk = 33, .d = 16, .mask = true}, DType::f32, 2e-5);
  expect_matches_reference({.b = 2, .h = 2, .tq = 17, .tk = 40, .d = 32, .causal = true, .p = 0.1},
                           DType::f32, 2e-5);
}

TEST(Attention, StridedInputsFromBTHDLayout) {
  // The model's layout: [B, T, H, D] projections permuted to [B, H, T, D] views.
  Tensor qb = randn64({2, 5, 3, 4}), kb = randn64({2, 6, 3, 4}), vb = randn64({2, 6, 3, 4});
  Tensor q = qb.permute({0, 2, 1, 3}), k = kb.permute({0, 2, 1, 3}), v = vb.permute({0, 2, 1, 3});
  Tensor y = scaled_dot_product_attention(q, k, v);
  Tensor r = reference(q.contiguous(), k.contiguous(), v.contiguous(), Tensor(), false, 0.0, nullptr);
  test::expect_close(y, r, 1e-12);
}

TEST(Attention, EvaluationIgnoresDropout) {
  Tensor q = randn64({1, 2, 4, 3}), k = randn64({1, 2, 4, 3}), v = randn64({1, 2, 4, 3});
  Generator g{5, 0};
  Tensor y =
      scaled_dot_product_attention(q, k, v, Tensor(), false, 0.5, /*training=*/false, std::nullopt, &g);
  EXPECT_EQ(g.offset, 0u);
  test::expect_close(y, scaled_dot_product_attention(q, k, v), 0.0);
}

TEST(Attention, DropoutSameSeedSameOutputOtherOffsetOther) {
  Tensor q = randn64({2, 2, 8, 4}), k = randn64({2, 2, 8, 4}), v = randn64({2, 2, 8, 4});
  Generator g1{42, 0}, g2{42, 0};
  Tensor a = scaled_dot_product_attention(q, k, v, Tensor(), false, 0.4, true, std::nullopt, &g1);
  Tensor b = scaled_dot_product_attention(q, k, v, Tensor(), false, 0.4, true, std::nullopt, &g2);
  test::expect_close(a, b, 0.0);
  Tensor c =
      scaled_dot_product_attention(q, k, v, Tensor(), false, 0.4, true, std::nullopt, &g1);  // advanced
  EXPECT_GT(amax(abs(a - c)).item<double>(), 1e-3);
}

TEST(Attention, DropoutKeepsTheExpectedFractionAndIsUnbiased) {
  // q = 0: every allowed key gets P = 1/Tk; v = 1: out = (kept keys / Tk) / (1 - p), mean 1.
  const int64_t b = 4, h = 4, t = 64, d = 2;
  const double p = 0.3;
  Tensor q = zeros({b, h, t, d}, {.dtype = DType::f64});
  Tensor k = randn64({b, h, t, d}, false);
  Tensor v = ones({b, h, t, d}, {.dtype = DType::f64});
  Generator g{123, 0};
  Tensor y = scaled_dot_product_attention(q, k, v, Tensor(), false, p, true, std::nullopt, &g);
  std::vector<double> yv = y.to_double_vector();
  double mean = 0;
  for (double x : yv) mean += x;
  mean /= static_cast<double>(yv.size());
  // Each row is the mean of 64 Bernoulli(0.7) / 0.7 draws; 1024 rows: the overall mean's sd is ~0.0085.
  EXPECT_NEAR(mean, 1.0, 0.04);
  // A row's value is kept / (Tk (1 - p)): the kept fraction ~ 0.7 overall.
  EXPECT_NEAR(mean * (1 - p), 1 - p, 0.03);
}

TEST(Attention, RowWithoutAllowedKeysGivesZerosNotNaN) {
  Tensor q = randn64({2, 2, 3, 4}), k = randn64({2, 2, 5, 4}), v = randn64({2, 2, 5, 4});
  // Batch 0: every key padded; batch 1: keys 0..2 kept.
  Tensor kpm = gt(from_vector({0, 0, 0, 0, 0, 1, 1, 1, 0, 0}, {2, 5}, {.dtype = DType::f64}),
                  from_vector({0.5}, {1}, {.dtype = DType::f64}));
  Tensor y = scaled_dot_product_attention(q, k, v, kpm);
  for (double x : y.narrow(0, 0, 1).contiguous().to_double_vector()) EXPECT_EQ(x, 0.0);
  Tensor r = reference(q.narrow(0, 1, 1), k.narrow(0, 1, 1), v.narrow(0, 1, 1),
                       kpm.narrow(0, 1, 1).contiguous(), false, 0.0, nullptr);
  test::expect_close(y.narrow(0, 1, 1).contiguous(), r, 1e-12);
  sum(y).backward();
  for (double x : q.grad().to_double_vector()) EXPECT_TRUE(std::isfinite(x));
  for (double x : k.grad().narrow(0, 0, 1).contiguous().to_double_vector()) EXPECT_EQ(x, 0.0);
  // Causal with Tq > Tk: the first Tq - Tk rows see no key.
  Tensor q3 = randn64({1, 1, 4, 2}), k3 = randn64({1, 1, 2, 2}), v3 = randn64({1, 1, 2, 2});
  Tensor y3 = scaled_dot_product_attention(q3, k3, v3, Tensor(), true);
  std::vector<double> y3v = y3.to_double_vector();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y3v[i], 0.0) << i;
  EXPECT_NE(y3v[4], 0.0);
}

TEST(Attention, BadInputsNameWhatWasExpected) {
  Tensor q = randn64({1, 2, 3, 4}), k = randn64({1, 2, 5, 4});
  test::expect_error([&] { scaled_dot_product_attention(q.reshape({2, 3, 4}), k, k); }, {"[B, H, Tq, D]"});
  test::expect_error([&] { scaled_dot_product_attention(q, randn64({1, 2, 5, 3}), k); }, {"disagree"});
  test::expect_error([&] { scaled_dot_product_attention(q, k, k.to(DType::f32)); }, {"dtype"});
  test::expect_error(
      [&] {
        scaled_dot_product_attention(q, k, k, randn64({1, 5}, false));
      },
      {"key_padding_mask", "bool or u8"});
  Tensor m = gt(randn64({1, 4}, false), scalar_like(0.0, randn64({1}, false)));
  test::expect_error([&] { scaled_dot_product_attention(q, k, k, m); }, {"[B, Tk] = [1,5]", "got [1,4]"});
  test::expect_error([&] { scaled_dot_product_attention(q, k, k, Tensor(), false, 1.5, true); },
                     {"dropout_p", "1.5"});
}

// ---- gradient checks (the op table's cases) ---------------------------------------------------------------

NABLA_GRADCHECK(scaled_dot_product_attention, plain) {
  EXPECT_GRADCHECK([](In in) { return scaled_dot_product_attention(in[0], in[1], in[2]); },
                   {randn64({1, 2, 3, 4}), randn64({1, 2, 5, 4}), randn64({1, 2, 5, 4})});
}
NABLA_GRADCHECK(scaled_dot_product_attention, key_padding_mask_and_causal) {
  Tensor m = gt(from_vector({1, 0, 1, 1, 0, 1, 1, 0, 1, 0}, {2, 5}, {.dtype = DType::f64}),
                from_vector({0.5}, {1}, {.dtype = DType::f64}));
  EXPECT_GRADCHECK(
      [m](In in) { return scaled_dot_product_attention(in[0], in[1], in[2], m, /*causal=*/true); },
      {randn64({2, 2, 4, 3}), randn64({2, 2, 5, 3}), randn64({2, 2, 5, 3})});
}
NABLA_GRADCHECK(scaled_dot_product_attention, dropout_fixed_generator) {
  const Generator g0{314, 9};
  EXPECT_GRADCHECK(
      [g0](In in) {
        Generator g = g0;  // the same mask in every call
        return scaled_dot_product_attention(in[0], in[1], in[2], Tensor(), false, 0.3, true, 0.6, &g);
      },
      {randn64({1, 2, 4, 3}), randn64({1, 2, 4, 3}), randn64({1, 2, 4, 3})});
}

}  // namespace
}  // namespace nabla
