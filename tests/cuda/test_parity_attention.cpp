// CPU/CUDA parity of scaled_dot_product_attention, forward and backward (q, k, v gradients): every head-size
// template of cuda/attention.cu (D = 26 and 32 -> 32, 64, 80 and 128 -> 128), partial key and query tiles,
// key-padding mask, causal (square and KV cache, bottom-right), rows without an allowed key, dropout (the
// same Philox mask on both sides), f32 and bf16/f16 (the CPU runs f32 on the inputs rounded to the 16-bit
// type; loose tolerances, as the GPU accumulates in f32 but rounds its output and gradients).
#include <cmath>

#include "parity.h"

namespace nabla {
namespace {
using test::parity_randn;
using In = const std::vector<Tensor>&;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

constexpr test::ParityOptions kF32{.atol = 2e-4, .rtol = 2e-3};
constexpr test::ParityOptions k16{.atol = 6e-2, .rtol = 6e-2};

// [B, Tk] bool, key 0 always kept.
Tensor key_mask(int64_t b, int64_t tk) {
  Tensor u = test::parity_uniform({b, tk}, 0.0, 1.0, false);
  std::vector<double> v = u.to_double_vector();
  for (int64_t i = 0; i < b; ++i) v[i * tk] = 1.0;
  return gt(from_vector(v, {b, tk}), from_vector({0.3}, {1}));
}

// f on q, k, v cast to dt on the GPU; on the CPU, f in f32 on the inputs rounded to dt, its result rounded.
Tensor in_dtype(In in, DType dt, const Fn& f) {
  const bool gpu = in[0].device().is_cuda();
  std::vector<Tensor> c;
  for (size_t i = 0; i < in.size(); ++i) {
    const Tensor& t = in[i];
    const bool cast = t.defined() && is_floating(t.dtype());
    c.push_back(!cast ? t : gpu ? t.to(dt) : t.to(dt).to(DType::f32));
  }
  Tensor y = f(c);
  return gpu ? y.to(DType::f32) : y.to(dt).to(DType::f32);
}

std::vector<Tensor> qkv(int64_t b, int64_t h, int64_t tq, int64_t tk, int64_t d, bool mask) {
  std::vector<Tensor> in = {parity_randn({b, h, tq, d}), parity_randn({b, h, tk, d}),
                            parity_randn({b, h, tk, d})};
  in.push_back(mask ? key_mask(b, tk) : Tensor());
  return in;
}

Tensor sdpa(In in, bool causal, double p = 0.0) {
  Generator g{2024, 3};
  return scaled_dot_product_attention(in[0], in[1], in[2], in[3], causal, p, true, std::nullopt, &g);
}

NABLA_PARITY(scaled_dot_product_attention, bert_shape_mask_d64) {
  EXPECT_PARITY([](In in) { return sdpa(in, false); }, qkv(2, 3, 40, 40, 64, true), kF32);
}
NABLA_PARITY(scaled_dot_product_attention, causal_d32_partial_tiles) {
  EXPECT_PARITY([](In in) { return sdpa(in, true); }, qkv(2, 2, 70, 70, 32, false), kF32);
}
NABLA_PARITY(scaled_dot_product_attention, kv_cache_d128) {
  EXPECT_PARITY([](In in) { return sdpa(in, true); }, qkv(1, 2, 5, 77, 128, false), kF32);
}
NABLA_PARITY(scaled_dot_product_attention, odd_head_sizes) {
  EXPECT_PARITY([](In in) { return sdpa(in, false); }, qkv(2, 2, 19, 23, 26, true), kF32);
  EXPECT_PARITY([](In in) { return sdpa(in, true); }, qkv(1, 3, 33, 33, 80, true), kF32);
}
NABLA_PARITY(scaled_dot_product_attention, long_masked_causal) {
  EXPECT_PARITY([](In in) { return sdpa(in, true); }, qkv(2, 2, 300, 300, 64, true), kF32);
}
NABLA_PARITY(scaled_dot_product_attention, cross_lengths_tq_gt_tk) {
  EXPECT_PARITY([](In in) { return sdpa(in, false); }, qkv(2, 1, 50, 9, 64, true), kF32);
  // causal with Tq > Tk: the first rows see no key (zeros on both sides)
  EXPECT_PARITY([](In in) { return sdpa(in, true); }, qkv(1, 2, 20, 7, 32, false), kF32);
}
NABLA_PARITY(scaled_dot_product_attention, all_keys_padded_row) {
  std::vector<Tensor> in = qkv(2, 2, 9, 6, 32, false);
  in[3] = gt(from_vector({0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1}, {2, 6}), from_vector({0.5}, {1}));
  EXPECT_PARITY([](In x) { return sdpa(x, false); }, in, kF32);
}
NABLA_PARITY(scaled_dot_product_attention, dropout_same_mask) {
  EXPECT_PARITY([](In in) { return sdpa(in, false, 0.2); }, qkv(2, 2, 37, 45, 64, true), kF32);
  EXPECT_PARITY([](In in) { return sdpa(in, true, 0.5); }, qkv(1, 2, 64, 64, 32, false), kF32);
}
NABLA_PARITY(scaled_dot_product_attention, bf16) {
  EXPECT_PARITY([](In in) { return in_dtype(in, DType::bf16, [](In c) { return sdpa(c, false); }); },
                qkv(2, 2, 48, 48, 64, true), k16);
  EXPECT_PARITY([](In in) { return in_dtype(in, DType::bf16, [](In c) { return sdpa(c, true, 0.1); }); },
                qkv(1, 2, 65, 65, 128, false), k16);
}
NABLA_PARITY(scaled_dot_product_attention, f16) {
  EXPECT_PARITY([](In in) { return in_dtype(in, DType::f16, [](In c) { return sdpa(c, true); }); },
                qkv(2, 2, 40, 40, 32, true), k16);
}

TEST(AttentionCuda, AutocastRunsInBf16AndF64IsRefused) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  Tensor q = parity_randn({1, 2, 8, 16}, false).to(Device::cuda(0));
  {
    AutocastGuard guard(DType::bf16);
    EXPECT_EQ(scaled_dot_product_attention(q, q, q).dtype(), DType::bf16);
  }
  test::expect_error(
      [&] { scaled_dot_product_attention(q.to(DType::f64), q.to(DType::f64), q.to(DType::f64)); },
      {"f64", "cuda"});
  test::expect_error(
      [&] {
        Tensor big = parity_randn({1, 1, 4, 160}, false).to(Device::cuda(0));
        scaled_dot_product_attention(big, big, big);
      },
      {"D = 160", "D <= 128"});
}

}  // namespace
}  // namespace nabla
