// CPU kernel of dropout (forward and backward: the backward redraws the mask; the math is in ops/nn.h).
//
// Element i keeps its value when philox_uniform(seed, offset, i) >= p; any thread count draws the same
// mask. The CUDA twin is cuda/dropout.cu.
#include <cstdint>

#include "ops/cpu/loops.h"
#include "ops/nn.h"

namespace nabla::ops::cpu {
namespace {

void dropout_cpu(const Tensor& in, double p, double scale, uint64_t seed, uint64_t offset, Tensor& out) {
  visit_float(in.dtype(), "dropout", [&](auto zero) {
    using T = decltype(zero);
    const T* pi = base<T>(in);
    T* po = base<T>(out);
    const T sc = static_cast<T>(scale);
    const int64_t numel = in.numel();
    // Philox costs far more than the multiply, so even small tensors are worth spreading over threads.
#pragma omp parallel for if (numel >= kParallelGrain / 8) schedule(static)
    for (int64_t i = 0; i < numel; ++i) po[i] = philox_uniform(seed, offset, i) >= p ? pi[i] * sc : T(0);
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(dropout_kernel, cpu, dropout_cpu);

}  // namespace nabla::ops::cpu
