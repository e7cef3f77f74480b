// Fused multi-tensor kernels of VRGD's GSNR (algorithms/vrgd/gsnr.h has the method): one call covers every
// parameter tensor of a step, so a step costs a handful of launches instead of ~10 small ops per tensor.
// CPU kernels in ops/cpu/gsnr_kernels.cpp (OpenMP), CUDA kernels in cuda/gsnr_kernels.cu (multi-tensor
// launches in the manner of cuda/optim_kernels.cu).
//
//   accumulate, per element of each tensor (one partition's gradient g):
//     first partition:  sum = g (sum may be g's own buffer: then nothing is written), sq = g * g
//     later:            sum = sum + g,  sq = sq + g * g
//   reduce, with k partitions:
//     pass 1 (elements):  mean_g = sum * (1/k) -> written into sum (it becomes the .grad)
//                         mean_sq = sq * (1/k); g2 = mean_g * mean_g; s2 = max(mean_sq - g2, 0)
//                         raw = g2 / ((s2 + eps * mean_sq) + tiny)  -> written into sq
//     per-tensor sums S_i of raw (as stored), accumulated in f64
//     mean:  per tensor  m_i = A(S_i) / A(n_i);  global  m = (sum_i A(S_i), in tensor order, in A) / A(N)
//     pass 2 (elements):  normalised = raw / (m + tiny); ratio = clamp(normalised, gamma, 1) -> ratio
//                         (normalised -> sq when it is the momentum input); statistics when asked: per
//                         tensor sum of ratio, counts of normalised < gamma and > 1
//   apply, per element (beta3 = 0: multiplier = input, the ratio):
//     p = beta3 * p + (1 - beta3) * input   (p read as 0 on the tensor's first update)
//     q = p * (1 / (1 - beta3^t))           (only when bias correction is on and 1 - beta3^t != 1)
//     multiplier = clamp(q, gamma, 1) -> multiplier buffer;  grad = grad * multiplier
//
// A is the compute type: f32 and f64 compute in their own type, bf16/f16 in f32 and round once per stored
// value. For f32/f64 the element maths below is the sequence of roundings of the op-by-op reference in
// gsnr.cpp (each mul, add, div rounded to A, scalars cast from double to A as scalar_like does, the clamps
// written as the clamp kernel writes them), never contracted into FMA (the optim_* helpers of
// optim_kernels.h), and the CPU per-tensor sums are sequential f64 sums in index order as the CPU reduce
// kernel does them: on the CPU the fused f32/f64 step is the reference bit for bit, except in global scope
// for f64 (the reference rounds every element to f32 before summing; the fused step sums them in f64) and
// for channels-last tensors (summed in memory order, the reference in logical order). CUDA sums per-chunk
// f64 partials in a fixed tree order, so S_i may differ from the CPU's in its last f64 bits (m by one ulp of
// A in rare cases). 16-bit tensors differ from the op-by-op reference (which rounds every intermediate to
// 16 bits, and only runs on CUDA) by computing in f32: s2 = mean_sq - g2 in f32 is far more accurate.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"
#include "ops/dispatch.h"
#include "ops/optim_kernels.h"

namespace nabla::ops {

// ---- slots ---------------------------------------------------------------------------------------------

// One parameter's buffers for accumulate(): grad, sum, sq dense, of one shape and layout; every tensor of
// one call shares dtype and device. first: this is the parameter's first partition of the step (sq is
// written, not read; sum is written unless it is grad's own buffer).
struct GsnrAccumulateTensor {
  Tensor grad, sum, sq;
  bool first = false;
};
using GsnrAccumulateKernelFn = void (*)(const std::vector<GsnrAccumulateTensor>& tensors);

struct GsnrReduceConfig {
  int64_t partitions = 2;  // k
  double eps = 1e-6, gamma = 0.1;
  bool global_scope = false;      // one mean over every element of the call
  bool write_normalized = false;  // the normalised r is the momentum input: written into sq
};
// sum, sq (from accumulate) and ratio (written): dense, one layout. stats: undefined, or an f64 tensor of
// [n, 3] elements (contiguous, on the tensors' device) that receives per tensor the sum of the clamped r and
// the counts of elements whose normalised r was below gamma and above 1.
struct GsnrReduceTensor {
  Tensor sum, sq, ratio;
};
using GsnrReduceKernelFn = void (*)(const GsnrReduceConfig& config,
                                    const std::vector<GsnrReduceTensor>& tensors, Tensor& stats);

struct GsnrApplyConfig {
  double gamma = 0.1, beta3 = 0;  // beta3 == 0: no momentum, grad *= input
  bool bias_correction = true;
};
// grad *= multiplier. With momentum: momentum (p) and multiplier (written; may be input's own buffer) are
// dense like grad; step is the tensor's update count t >= 1 after this update; first: p is written, not
// read. Without momentum only grad and input are used.
struct GsnrApplyTensor {
  Tensor grad, input, momentum, multiplier;
  int64_t step = 1;
  bool first = false;
};
using GsnrApplyKernelFn = void (*)(const GsnrApplyConfig& config,
                                   const std::vector<GsnrApplyTensor>& tensors);

inline Kernel<GsnrAccumulateKernelFn> gsnr_accumulate_kernel{"gsnr_accumulate"};
inline Kernel<GsnrReduceKernelFn> gsnr_reduce_kernel{"gsnr_reduce"};
inline Kernel<GsnrApplyKernelFn> gsnr_apply_kernel{"gsnr_apply"};

// ---- the shared element maths ---------------------------------------------------------------------------

// Turns 0/0 into 0 (a gradient that is zero on every partition); the reference's kTiny.
inline constexpr double kGsnrTiny = 1e-30;

// The clamp kernel's expression (NaN passes through, as there).
template <class A>
NABLA_OPTIM_HD A gsnr_clamp(A v, A lo, A hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

template <class A>
struct GsnrReduceConsts {
  A inv_k, eps, tiny, gamma, one;
};
template <class A>
inline GsnrReduceConsts<A> gsnr_reduce_consts(const GsnrReduceConfig& c) {
  return {static_cast<A>(1.0 / static_cast<double>(c.partitions)), static_cast<A>(c.eps),
          static_cast<A>(kGsnrTiny), static_cast<A>(c.gamma), A(1)};
}

template <class A>
NABLA_OPTIM_HD void gsnr_accumulate_element(A g, A& sum, A& sq, bool first) {
  sq = first ? optim_mul(g, g) : optim_add(sq, optim_mul(g, g));  // g * g; add_(sq, g * g)
  sum = first ? g : optim_add(sum, g);                            // add_(sum, g)
}

// Pass 1: sum -> mean_g, sq -> raw r.
template <class A>
NABLA_OPTIM_HD void gsnr_raw_element(A& sum, A& sq, const GsnrReduceConsts<A>& c) {
  const A mean_g = optim_mul(sum, c.inv_k);  // mul_(sum, 1/k)
  const A mean_sq = optim_mul(sq, c.inv_k);  // mul_(sq, 1/k)
  const A g2 = optim_mul(mean_g, mean_g);
  const A d = optim_sub(mean_sq, g2);
  const A var = d < A(0) ? A(0) : d;  // clamp(., 0): the clamp kernel's expression with hi = inf
  const A den = optim_add(optim_add(var, optim_mul(c.eps, mean_sq)), c.tiny);  // add(var, msq, eps) + tiny
  sum = mean_g;
  sq = optim_div(g2, den);
}

// The per-tensor mean m + tiny from the sum of raw r over n elements (per-tensor scope).
template <class A>
NABLA_OPTIM_HD A gsnr_mean_plus_tiny(double sum, int64_t n) {
  return optim_add(optim_div(static_cast<A>(sum), static_cast<A>(n)), static_cast<A>(kGsnrTiny));
}

// Pass 2: the normalised r and the clamped ratio.
template <class A>
NABLA_OPTIM_HD void gsnr_ratio_element(A raw, A mean_plus_tiny, A gamma, A& normalised, A& ratio) {
  normalised = optim_div(raw, mean_plus_tiny);
  ratio = gsnr_clamp(normalised, gamma, A(1));
}

template <class A>
struct GsnrApplyConsts {
  A beta3, one_minus_beta3, inv_bias, gamma;
  bool momentum, has_bias, first;
};
template <class A>
inline GsnrApplyConsts<A> gsnr_apply_consts(const GsnrApplyConfig& c, int64_t step, bool first) {
  const double bias = c.bias_correction ? 1.0 - std::pow(c.beta3, static_cast<double>(step)) : 1.0;
  return {static_cast<A>(c.beta3),
          static_cast<A>(1.0 - c.beta3),
          static_cast<A>(1.0 / bias),
          static_cast<A>(c.gamma),
          c.beta3 > 0,
          bias != 1.0,
          first};
}

// One element of apply(); p and mult are touched only with momentum. `round` rounds a value to the storage
// type and back (identity for f32/f64): the multiplier applied is the one stored.
template <class A, class Round>
NABLA_OPTIM_HD void gsnr_apply_element(A& g, A input, A& p, A& mult, const GsnrApplyConsts<A>& c,
                                       Round round) {
  if (!c.momentum) {
    g = optim_mul(g, input);  // mul_(grad, ratio)
    return;
  }
  const A old = c.first ? A(0) : p;  // zeros_like on the first update
  p = optim_add(optim_mul(old, c.beta3), optim_mul(c.one_minus_beta3, input));  // mul_, add_(p, in, 1-b3)
  const A q = c.has_bias ? optim_mul(p, c.inv_bias) : p;                        // p * (1 / bias)
  mult = round(gsnr_clamp(q, c.gamma, A(1)));
  g = optim_mul(g, mult);
}

}  // namespace nabla::ops
