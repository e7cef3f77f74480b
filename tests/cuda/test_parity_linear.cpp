// Parity of linear (ops/linalg.h): on CUDA the fused cuBLASLt path (BIAS / RELU_BIAS epilogue in the
// forward GEMM, BGRADB epilogue giving db in the dW GEMM), on the CPU the composition matmul + add + relu.
// Odd sizes (not multiples of 4 or 32), 3-D inputs, no bias, ReLU, a frozen weight (bias gradient without
// the dW GEMM), f32 (TF32 off in parity runs) and bf16. A plain test checks that the fused path really ran
// (the result's node is "linear", not the composition's "add"/"relu") for f32 and bf16, with TF32 on and
// off, and that nn::Linear uses it.
#include "autograd/autograd.h"
#include "models/nn/layers.h"
#include "parity.h"

namespace nabla {
namespace {
using test::parity_randn;
using In = const std::vector<Tensor>&;

constexpr test::ParityOptions kTol{.atol = 2e-3, .rtol = 1e-4};
constexpr test::ParityOptions kBf16Tol{.atol = 1e-1, .rtol = 2e-2};

Tensor bf16_or_rounded(const Tensor& t) {
  Tensor b = t.to(DType::bf16);
  return t.device().is_cuda() ? b : b.to(DType::f32);
}

NABLA_PARITY(linear, bias_odd_sizes) {
  EXPECT_PARITY([](In in) { return linear(in[0], in[1], in[2]); },
                {parity_randn({37, 65}), parity_randn({129, 65}), parity_randn({129})}, kTol);
}
NABLA_PARITY(linear, relu_bias_3d_input) {
  EXPECT_PARITY([](In in) { return linear(in[0], in[1], in[2], true); },
                {parity_randn({3, 11, 48}), parity_randn({40, 48}), parity_randn({40})}, kTol);
}
NABLA_PARITY(linear, no_bias_relu) {
  EXPECT_PARITY([](In in) { return linear(in[0], in[1], Tensor(), true); },
                {parity_randn({64, 33}), parity_randn({17, 33})}, kTol);
}
NABLA_PARITY(linear, frozen_weight) {
  EXPECT_PARITY([](In in) { return linear(in[0], in[1], in[2]); },
                {parity_randn({20, 24}), parity_randn({8, 24}, false), parity_randn({8})}, kTol);
}
// Large layers whose widths are not multiples of 8 (GPT-2's 50,257-word classifier and DLRM's 479 top-MLP
// inputs in miniature, over ops/linalg.cpp's padding threshold of 2^20 elements): on CUDA they run on
// zero-padded operands (output width to 576, input width to 48) and return a narrowed view; values and
// gradients must be the CPU's, with and without bias, and with a ReLU.
NABLA_PARITY(linear, padded_output_width) {
  EXPECT_PARITY([](In in) { return linear(in[0], in[1], in[2]) * 0.5 + linear(in[0], in[1]) * 0.25; },
                {parity_randn({2, 1024, 40}), parity_randn({515, 40}), parity_randn({515})}, kTol);
}
NABLA_PARITY(linear, padded_input_width) {
  EXPECT_PARITY([](In in) { return linear(in[0], in[1], in[2], true); },
                {parity_randn({4096, 259}), parity_randn({96, 259}), parity_randn({96})}, kTol);
}
NABLA_PARITY(linear, padded_both_widths) {
  EXPECT_PARITY([](In in) { return linear(in[0], in[1], in[2]); },
                {parity_randn({2048, 45}), parity_randn({577, 45}), parity_randn({577})}, kTol);
}
NABLA_PARITY(linear, large_rows_bias_gradient) {
  EXPECT_PARITY([](In in) { return linear(in[0], in[1], in[2]); },
                {parity_randn({4099, 64}), parity_randn({96, 64}), parity_randn({96})},
                {.atol = 5e-3, .rtol = 1e-4});
}
NABLA_PARITY(linear, bf16_relu_bias) {
  EXPECT_PARITY(
      [](In in) {
        return linear(bf16_or_rounded(in[0]), bf16_or_rounded(in[1]), bf16_or_rounded(in[2]), true)
            .to(DType::f32);
      },
      {parity_randn({96, 128}), parity_randn({72, 128}), parity_randn({72})}, kBf16Tol);
}

TEST(CudaLinear, FusedPathRunsForF32AndBf16) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  const bool prev = cuda::tf32_enabled();
  const Device d = Device::cuda(0);
  for (DType dt : {DType::f32, DType::bf16})
    for (bool tf32 : {false, true}) {
      cuda::set_tf32_enabled(tf32);
      Tensor x = parity_randn({64, 96}, false).to(d).to(dt).requires_grad_();
      Tensor w = parity_randn({32, 96}, false).to(d).to(dt).requires_grad_();
      Tensor b = parity_randn({32}, false).to(d).to(dt).requires_grad_();
      for (bool relu : {false, true}) {
        Tensor y = linear(x, w, b, relu);
        ASSERT_TRUE(y.grad_fn() != nullptr);
        EXPECT_EQ(y.grad_fn()->name, "linear")
            << dt << " tf32 " << tf32 << " relu " << relu << ": cuBLASLt declined, the composition ran";
      }
    }
  nn::Linear fc(96, 32);
  fc.to(d);
  EXPECT_EQ(fc(parity_randn({8, 96}, false).to(d)).grad_fn()->name, "linear");
  cuda::set_tf32_enabled(prev);
}

}  // namespace
}  // namespace nabla
