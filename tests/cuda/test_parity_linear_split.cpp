// Parity of linear's split weight gradient (ops/linalg.cpp, weight_grad_chunks): a layer with many rows and
// an output of few 128 x 128 tiles takes dW as a batched GEMM over S chunks of rows and a sum, on CUDA only
// (here 32,768 rows: S = 32 chunks of 1,024; DLRM's top MLP at batch 65,536 in miniature). Values and every
// gradient must be the CPU's (one GEMM over all rows), with bias and ReLU, without bias, and with a width of
// one output (DLRM's last layer).
#include "parity.h"

namespace nabla {
namespace {
using test::parity_randn;
using In = const std::vector<Tensor>&;
// Sums over 32,768 rows in another order: relative differences of ~1e-6, absolute up to ~1e-4 on sums of
// magnitude ~200.
const test::ParityOptions kTol{.atol = 2e-3, .rtol = 2e-4};

NABLA_PARITY(linear, split_weight_gradient_many_rows) {
  EXPECT_PARITY([](In in) { return linear(in[0], in[1], in[2], true); },
                {parity_randn({32768, 64}), parity_randn({96, 64}), parity_randn({96})}, kTol);
  EXPECT_PARITY([](In in) { return linear(in[0], in[1]); },
                {parity_randn({32768, 48}), parity_randn({1, 48})}, kTol);
}

}  // namespace
}  // namespace nabla
