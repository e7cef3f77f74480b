// CUDA kernel of dropout (forward and backward are one kernel: the backward redraws the mask). The slot
// contract is ops/nn.h's; the CPU twin is ops/cpu/dropout.cpp.
//
// Element i keeps in[i] * scale when philox_uniform(seed, offset, i) >= p. One thread per counter:
// elements 2j and 2j + 1 share counter offset + j, so one Philox call serves both (the same words and bit
// recipe as engine/random.h's philox_uniform: the mask equals the CPU one bit for bit).
#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "engine/random.h"
#include "ops/nn.h"

namespace nabla::cuda {
namespace {

// philox_uniform's 53-bit recipe (engine/random.h) on the word pair (hi, lo).
__device__ __forceinline__ double uniform_from_words(uint32_t hi, uint32_t lo) {
  const uint64_t bits = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);
  return static_cast<double>(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Thread j handles elements 2j (words 0, 1) and 2j + 1 (words 2, 3) of counter offset + j.
template <class T>
__global__ void dropout_kernel_cuda(const T* __restrict__ in, T* __restrict__ out, int64_t numel, double p,
                                    acc_t<T> scale, uint64_t seed, uint64_t offset) {
  const int64_t pairs = (numel + 1) / 2;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < pairs;
       j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const auto w = philox4x32(offset + static_cast<uint64_t>(j), seed);
    const int64_t i = 2 * j;
    out[i] = uniform_from_words(w[0], w[1]) >= p ? store<T>(load(in[i]) * scale) : store<T>(0);
    if (i + 1 < numel)
      out[i + 1] = uniform_from_words(w[2], w[3]) >= p ? store<T>(load(in[i + 1]) * scale) : store<T>(0);
  }
}

template <class T>
void dropout_typed(const Tensor& in, double p, double scale, uint64_t seed, uint64_t offset, Tensor& out) {
  const int64_t numel = in.numel();
  const int64_t pairs = (numel + 1) / 2;
  dropout_kernel_cuda<T><<<grid_for(pairs), kBlock, 0, current_stream()>>>(
      ptr<T>(in), ptr<T>(out), numel, p, static_cast<acc_t<T>>(scale), seed, offset);
  NABLA_CUDA_LAUNCH_CHECK();
}

void dropout_cuda(const Tensor& in, double p, double scale, uint64_t seed, uint64_t offset, Tensor& out) {
  DeviceGuard g(in.device().index);
  if (in.numel() == 0) return;
  visit_cuda_float(in.dtype(), "dropout",
                   [&](auto zero) { dropout_typed<decltype(zero)>(in, p, scale, seed, offset, out); });
}

}  // namespace

NABLA_REGISTER_KERNEL(dropout_kernel, cuda, dropout_cuda);

}  // namespace nabla::cuda
