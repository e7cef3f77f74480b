// Fused optimizer kernels: one multi-tensor call updates every parameter of a step (SGD, Adam/AdamW), and
// one call unscales every gradient for mixed precision (optim::GradScaler). Used by
// algorithms/optim/optimizer.cpp and grad_scaler.cpp; CPU kernels in ops/cpu/optim_kernels.cpp (OpenMP),
// CUDA kernels in cuda/optim_kernels.cu (one launch for many tensors).
//
// The element-wise maths of each step is written once below (sgd_element, adam_element), as the sequence of
// roundings the unfused op-by-op step performed (each mul_, add_ or sqrt rounded to the compute type, scalars
// cast from double to it as scalar_like does), so the fused step is bit-for-bit the unfused one on the CPU
// (nothing is contracted into FMAs: the build targets baseline x86-64). The CUDA kernels call the same
// functions, whose arithmetic turns into __fmul_rn/__fadd_rn/__fdiv_rn/__fsqrt_rn (and the double
// versions) in device code, so nvcc cannot contract them either: f32 and f64 steps match the CPU exactly.
// 16-bit parameters (and their buffers) compute in f32 and round once per stored value.
//
//   SGD, per element (d, buf in the compute type):
//     d = wd != 0 ? g + wd * p : g
//     momentum != 0:  buf = d on the tensor's first update, else buf = buf * mu; buf = buf + (1 - dampening)
//     * d
//                     d = nesterov ? d + mu * buf : buf
//     p = p + (-lr) * d
//   Adam / AdamW, per element, with bias1 = 1 - beta1^t, bias2 = 1 - beta2^t of the tensor's own step t:
//     AdamW (decoupled) and wd != 0:  p = p * (1 - lr wd)          Adam and wd != 0:  g = g + wd * p
//     m = m * beta1; m = m + (1 - beta1) * g
//     v = v * beta2; v = v + (1 - beta2) * (g * g)
//     denom = sqrt(v) / sqrt(bias2) + eps
//     p = p + (-lr / bias1) * (m / denom)
//   Unscale (GradScaler): g = g * inv_scale for every element, and found_inf = 1 if any element was inf/NaN.
//
//   Per-tensor L2 norm (LARS, LAMB): norms[i] = sqrt(sum_k x_i[k]^2), as norm(x) = sqrt(sum(x * x)) rounds:
//     each square rounded to the compute type, the squares summed in f64, the sum rounded to the norm's
//     dtype (f64 for f64 tensors, else f32) and its square root taken in that dtype. The CPU sums each
//     tensor sequentially (the CPU reduce kernel's order for a full reduction: bit-for-bit norm(x)); CUDA
//     sums per-chunk f64 partials in a fixed tree order, then each tensor's partials in a fixed order
//     (deterministic, and the same f32 norm but for f64 rounding in the sum).
//   LARS, per element, with local_lr computed in double from the norms w = ||p||, n = ||g|| (read from the
//   norms tensor; no host read):
//     local_lr = adapt && w > 0 && n > 0 ? eta * w / (n + wd * w + eps) : 1
//     d = (wd != 0 ? g + wd * p : g) * local_lr
//     buf = d on the tensor's first update, else buf = buf * mu; buf = buf + d
//     p = p + (-lr) * buf
//   LAMB, two passes. moments (per element, bias1 = 1 - beta1^t, bias2 = 1 - beta2^t):
//     m = m * beta1; m = m + (1 - beta1) * g;   v = v * beta2; v = v + (1 - beta2) * (g * g)
//     u = (m / bias1) / (sqrt(v / bias2) + eps);   wd != 0: u = u + wd * p     (u: a scratch tensor)
//   then norms w = ||p||, r = ||u||, and apply: ratio = adapt && w > 0 && r > 0 ? w / r : 1 (double),
//     p = p + (-lr * ratio) * u
//   The exclusions (dim <= 1 with exclude_1d: wd 0 and no adaptation; a group's exclude_from_adaptation:
//   no adaptation) are decided on the host: wd is passed as the effective one, and a tensor that does not
//   adapt has no norm indices.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "engine/tensor.h"
#include "ops/dispatch.h"

#if defined(__CUDACC__)
#define NABLA_OPTIM_HD __host__ __device__ __forceinline__
#else
#define NABLA_OPTIM_HD inline
#endif

namespace nabla::ops {

// ---- slots ---------------------------------------------------------------------------------------------

// One parameter of a fused SGD step. param, grad and momentum_buffer (undefined when momentum == 0) are
// contiguous, of one shape, dtype and device; every tensor of one call shares dtype and device.
struct SgdTensor {
  Tensor param, grad, momentum_buffer;
  double lr = 0, weight_decay = 0;  // its group's
  bool first_update = false;        // momentum_buffer is written (buf = d), not read
};
struct SgdConfig {
  double momentum = 0, dampening = 0;
  bool nesterov = false;
};
using FusedSgdKernelFn = void (*)(const SgdConfig& config, const std::vector<SgdTensor>& tensors);

// One parameter of a fused Adam/AdamW step; same rules as SgdTensor. `step` is its own update count t >= 1.
struct AdamTensor {
  Tensor param, grad, exp_avg, exp_avg_sq;
  double lr = 0, weight_decay = 0;
  int64_t step = 1;
};
struct AdamConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool decoupled = false;  // AdamW
};
using FusedAdamKernelFn = void (*)(const AdamConfig& config, const std::vector<AdamTensor>& tensors);

// Every grad (floating, contiguous, all on found_inf's device; dtypes may differ) is multiplied in place by
// inv_scale; found_inf (one f32 element) is set to 1 when any element of any grad is inf or NaN, and is
// left alone otherwise (the caller zeroes it first).
using AmpUnscaleKernelFn = void (*)(const std::vector<Tensor>& grads, double inv_scale, Tensor& found_inf);

// Per-tensor L2 norms of `tensors` (floating, contiguous, one dtype and device; an empty tensor's norm is
// 0) into norms[0..n) (contiguous, 1-D with n elements, dtype norm_dtype(their dtype), on their device).
using MultiTensorNormKernelFn = void (*)(const std::vector<Tensor>& tensors, Tensor& norms);
inline DType norm_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

// One parameter of a fused LARS step; param, grad, momentum_buffer as SgdTensor's (the buffer is always
// there). weight_decay is the effective one (0 for an excluded dim <= 1 parameter). w_norm and g_norm index
// ||param|| and ||grad|| in the norms tensor (of norm_dtype(param dtype), on the params' device); both -1:
// the tensor does not adapt (local_lr 1).
struct LarsTensor {
  Tensor param, grad, momentum_buffer;
  double lr = 0, weight_decay = 0;
  bool first_update = false;
  int64_t w_norm = -1, g_norm = -1;
};
struct LarsConfig {
  double momentum = 0.9, eta = 1e-3, eps = 0;
};
// norms may be undefined when no tensor adapts.
using FusedLarsKernelFn = void (*)(const LarsConfig& config, const std::vector<LarsTensor>& tensors,
                                   const Tensor& norms);

// One parameter of a fused LAMB step. update is a contiguous scratch tensor like param: lamb_moments
// writes u into it, lamb_apply reads it. weight_decay is the effective one; w_norm and u_norm index ||param||
// and ||update|| in the norms tensor, both -1: ratio 1. step is the tensor's own update count t >= 1.
struct LambTensor {
  Tensor param, grad, exp_avg, exp_avg_sq, update;
  double lr = 0, weight_decay = 0;
  int64_t step = 1;
  int64_t w_norm = -1, u_norm = -1;
};
struct LambConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-6;
};
using LambMomentsKernelFn = void (*)(const LambConfig& config, const std::vector<LambTensor>& tensors);
using LambApplyKernelFn = void (*)(const std::vector<LambTensor>& tensors, const Tensor& norms);

inline Kernel<MultiTensorNormKernelFn> multi_tensor_norm_kernel{"multi_tensor_norm"};
inline Kernel<FusedLarsKernelFn> fused_lars_kernel{"fused_lars"};
inline Kernel<LambMomentsKernelFn> lamb_moments_kernel{"lamb_moments"};
inline Kernel<LambApplyKernelFn> lamb_apply_kernel{"lamb_apply"};
inline Kernel<FusedSgdKernelFn> fused_sgd_kernel{"fused_sgd"};
inline Kernel<FusedAdamKernelFn> fused_adam_kernel{"fused_adam"};
inline Kernel<AmpUnscaleKernelFn> amp_unscale_kernel{"amp_unscale"};

// ---- the shared element maths ---------------------------------------------------------------------------

// Correctly rounded arithmetic that is never contracted into FMA (see the file comment).
template <class A>
NABLA_OPTIM_HD A optim_mul(A a, A b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<A, float>)
    return __fmul_rn(a, b);
  else
    return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
template <class A>
NABLA_OPTIM_HD A optim_sub(A a, A b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<A, float>)
    return __fsub_rn(a, b);
  else
    return __dsub_rn(a, b);
#else
  return a - b;
#endif
}

template <class A>
NABLA_OPTIM_HD A optim_add(A a, A b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<A, float>)
    return __fadd_rn(a, b);
  else
    return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
template <class A>
NABLA_OPTIM_HD A optim_div(A a, A b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<A, float>)
    return __fdiv_rn(a, b);
  else
    return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
template <class A>
NABLA_OPTIM_HD A optim_sqrt(A a) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<A, float>)
    return __fsqrt_rn(a);
  else
    return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// Per-tensor scalars in double, computed on the host exactly as the unfused step computed them; each is
// cast to the compute type A once (static_cast<A>(double), as scalar_like and the binary kernels' alpha).
struct SgdScalars {
  double neg_lr, weight_decay, momentum, one_minus_dampening;
  bool has_weight_decay, has_momentum, first_update, nesterov;
};
inline SgdScalars sgd_scalars(const SgdConfig& c, double lr, double weight_decay, bool first_update) {
  return {-lr,          weight_decay, c.momentum, 1.0 - c.dampening, weight_decay != 0, c.momentum != 0,
          first_update, c.nesterov};
}

struct AdamScalars {
  double decay_factor;  // 1 - lr wd (AdamW)
  double weight_decay;  // wd (Adam's L2)
  double beta1, one_minus_beta1, beta2, one_minus_beta2;
  double sqrt_bias2;  // sqrt(1 - beta2^t)
  double eps;
  double step_size;  // -lr / (1 - beta1^t)
  bool decoupled_decay, l2_decay;
};
inline AdamScalars adam_scalars(const AdamConfig& c, double lr, double wd, int64_t step) {
  const double bias1 = 1.0 - std::pow(c.beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(c.beta2, static_cast<double>(step));
  return {1.0 - lr * wd,
          wd,
          c.beta1,
          1.0 - c.beta1,
          c.beta2,
          1.0 - c.beta2,
          std::sqrt(bias2),
          c.eps,
          -lr / bias1,
          c.decoupled && wd != 0,
          !c.decoupled && wd != 0};
}

// The scalars cast to the compute type.
template <class A>
struct SgdConsts {
  A neg_lr, wd, mu, omd;
  bool has_wd, has_momentum, first, nesterov;
};
template <class A>
NABLA_OPTIM_HD SgdConsts<A> sgd_consts(const SgdScalars& s) {
  return {static_cast<A>(s.neg_lr),
          static_cast<A>(s.weight_decay),
          static_cast<A>(s.momentum),
          static_cast<A>(s.one_minus_dampening),
          s.has_weight_decay,
          s.has_momentum,
          s.first_update,
          s.nesterov};
}

template <class A>
struct AdamConsts {
  A decay, wd, b1, omb1, b2, omb2, sqrt_bias2, eps, step_size;
  bool decoupled_decay, l2_decay;
};
template <class A>
NABLA_OPTIM_HD AdamConsts<A> adam_consts(const AdamScalars& s) {
  return {static_cast<A>(s.decay_factor),
          static_cast<A>(s.weight_decay),
          static_cast<A>(s.beta1),
          static_cast<A>(s.one_minus_beta1),
          static_cast<A>(s.beta2),
          static_cast<A>(s.one_minus_beta2),
          static_cast<A>(s.sqrt_bias2),
          static_cast<A>(s.eps),
          static_cast<A>(s.step_size),
          s.decoupled_decay,
          s.l2_decay};
}

// One element of an SGD step; buf is read only when has_momentum and not first, written when has_momentum.
template <class A>
NABLA_OPTIM_HD void sgd_element(A& p, A g, A& buf, const SgdConsts<A>& c) {
  A d = c.has_wd ? optim_add(g, optim_mul(c.wd, p)) : g;  // add(grad, p, wd)
  if (c.has_momentum) {
    if (c.first) {
      buf = d;  // d.clone()
    } else {
      buf = optim_mul(buf, c.mu);                 // mul_(buf, mu)
      buf = optim_add(buf, optim_mul(c.omd, d));  // add_(buf, d, 1 - dampening)
    }
    d = c.nesterov ? optim_add(d, optim_mul(c.mu, buf)) : buf;  // add(d, buf, mu) or buf
  }
  p = optim_add(p, optim_mul(c.neg_lr, d));  // add_(p, d, -lr)
}

// One element of an Adam/AdamW step.
template <class A>
NABLA_OPTIM_HD void adam_element(A& p, A g, A& m, A& v, const AdamConsts<A>& c) {
  if (c.decoupled_decay) p = optim_mul(p, c.decay);      // mul_(p, 1 - lr wd)
  if (c.l2_decay) g = optim_add(g, optim_mul(c.wd, p));  // add(grad, p, wd)
  m = optim_mul(m, c.b1);                                // add_(mul_(m, b1), g, 1 - b1)
  m = optim_add(m, optim_mul(c.omb1, g));
  const A gg = optim_mul(g, g);  // g * g
  v = optim_mul(v, c.b2);        // add_(mul_(v, b2), g * g, 1 - b2)
  v = optim_add(v, optim_mul(c.omb2, gg));
  const A denom = optim_add(optim_div(optim_sqrt(v), c.sqrt_bias2), c.eps);  // sqrt(v) / sqrt(bias2) + eps
  p = optim_add(p, optim_mul(c.step_size, optim_div(m, denom)));  // add_(p, m / denom, -lr / bias1)
}

// ---- LARS, LAMB ----

// LARS's trust ratio in double from the norms, as the unfused step wrote it: eta * w / (n + wd * w + eps).
NABLA_OPTIM_HD double lars_local_lr(double w, double n, double eta, double wd, double eps) {
  if (!(w > 0 && n > 0)) return 1.0;
  return optim_div(optim_mul(eta, w), optim_add(optim_add(n, optim_mul(wd, w)), eps));
}
// LAMB's step factor in double: -lr * (w > 0 && r > 0 ? w / r : 1).
NABLA_OPTIM_HD double lamb_alpha(double neg_lr, double w, double r) {
  return optim_mul(neg_lr, (w > 0 && r > 0) ? optim_div(w, r) : 1.0);
}

template <class A>
struct LarsConsts {
  A neg_lr, wd, mu;
  double wd_d, eta, eps;  // for the trust ratio
  int64_t w_norm, g_norm;
  bool has_wd, first;
};
template <class A>
inline LarsConsts<A> lars_consts(const LarsConfig& c, const LarsTensor& t) {
  return {static_cast<A>(-t.lr),
          static_cast<A>(t.weight_decay),
          static_cast<A>(c.momentum),
          t.weight_decay,
          c.eta,
          c.eps,
          t.w_norm,
          t.g_norm,
          t.weight_decay != 0,
          t.first_update};
}

// One element of a LARS step; buf is read only when not first. local_lr is lars_local_lr cast to A.
template <class A>
NABLA_OPTIM_HD void lars_element(A& p, A g, A& buf, A local_lr, const LarsConsts<A>& c) {
  A d = c.has_wd ? optim_add(g, optim_mul(c.wd, p)) : g;  // add(grad, p, wd)
  d = optim_mul(d, local_lr);                             // * local_lr
  if (c.first) {
    buf = d;  // d.clone()
  } else {
    buf = optim_mul(buf, c.mu);  // add_(mul_(buf, mu), d)
    buf = optim_add(buf, d);
  }
  p = optim_add(p, optim_mul(c.neg_lr, buf));  // add_(p, buf, -lr)
}

template <class A>
struct LambConsts {
  A b1, omb1, b2, omb2, bias1, bias2, eps, wd;
  double neg_lr;
  int64_t w_norm, u_norm;
  bool has_wd;
};
template <class A>
inline LambConsts<A> lamb_consts(const LambConfig& c, const LambTensor& t) {
  const double bias1 = 1.0 - std::pow(c.beta1, static_cast<double>(t.step));
  const double bias2 = 1.0 - std::pow(c.beta2, static_cast<double>(t.step));
  return {static_cast<A>(c.beta1),
          static_cast<A>(1.0 - c.beta1),
          static_cast<A>(c.beta2),
          static_cast<A>(1.0 - c.beta2),
          static_cast<A>(bias1),
          static_cast<A>(bias2),
          static_cast<A>(c.eps),
          static_cast<A>(t.weight_decay),
          -t.lr,
          t.w_norm,
          t.u_norm,
          t.weight_decay != 0};
}

// LAMB's first pass for one element: the moments and the update direction u.
template <class A>
NABLA_OPTIM_HD void lamb_moments_element(A p, A g, A& m, A& v, A& u, const LambConsts<A>& c) {
  m = optim_mul(m, c.b1);  // add_(mul_(m, b1), grad, 1 - b1)
  m = optim_add(m, optim_mul(c.omb1, g));
  const A gg = optim_mul(g, g);  // grad * grad
  v = optim_mul(v, c.b2);        // add_(mul_(v, b2), grad * grad, 1 - b2)
  v = optim_add(v, optim_mul(c.omb2, gg));
  const A num = optim_div(m, c.bias1);                                // m / bias1
  const A den = optim_add(optim_sqrt(optim_div(v, c.bias2)), c.eps);  // sqrt(v / bias2) + eps
  u = optim_div(num, den);                                            // r
  if (c.has_wd) u = optim_add(u, optim_mul(c.wd, p));                 // add(r, p, wd)
}

}  // namespace nabla::ops
