// CUDA kernels of the fused optimizer steps (SGD, Adam/AdamW, LARS, LAMB), of the per-tensor L2 norms LARS
// and LAMB need, and of GradScaler's unscale-and-check
// (slots, contracts and the element maths in ops/optim_kernels.h; the element functions are shared with
// the CPU kernels, and their arithmetic is correctly rounded without FMA contraction in device code, so f32
// and f64 steps match the CPU bit for bit).
//
// Launch shape: a "multi-tensor apply" in the manner of apex. Every tensor of the call is cut into chunks
// of kChunk elements; one block of kThreads threads handles one chunk, and one launch covers up to
// kMaxTensors tensors (all their chunks). The per-tensor metadata (pointers, sizes, the per-tensor scalars
// already cast to the compute type, and the index of the tensor's first block) travels in the kernel's
// parameter block, passed as a __grid_constant__ struct of about 9-29 KB (kernel parameters up to 32 KB are
// supported since CUDA 12.1 on Volta and newer; 192 tensors, so that ResNet-50's 161 parameters take one
// launch, not two), so a step needs no host-to-device copy, no device
// allocation and no synchronisation. A block finds its tensor by binary search over the first-block
// indices (uniform across the block: constant-cache broadcasts). Within a chunk the threads stride by
// blockDim, so every load is coalesced; f32 launches whose pointers are all 16-byte aligned move float4s.
// 16-bit tensors load to f32, compute, and round once on store.
//
// LARS, LAMB: the element passes run through the same multi_tensor_step; an op's prepare() runs once per
// thread before its loop and turns the per-tensor constants into the step's (LARS: local_lr, LAMB: the step
// factor -lr * ratio), reading the norms from device memory (a broadcast load of two values), so the trust
// ratio never goes through the host. LAMB's moments pass writes the direction u into a scratch tensor (the
// fifth operand). Norms: two launches per kMaxTensors tensors. Pass 1: one block per chunk sums its squares
// (rounded to the compute type, summed in f64: thread-strided, then a fixed warp-shuffle tree and a fixed
// cross-warp sum) into partials[block]; pass 2: one block per tensor sums that tensor's partials in the same
// fixed way, rounds to the norm dtype and takes the square root. No atomics: deterministic run to run.
//
// Unscale: the same chunking over the gradients of one dtype; a thread that saw an inf/NaN writes 1 to the
// found_inf flag (a plain store: every writer stores the same value), which GradScaler reads back once.
#include <climits>
#include <functional>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/multi_tensor.cuh"
#include "ops/util.h"
#include "ops/optim_kernels.h"

namespace nabla::cuda {
namespace {
using ops::AdamConsts;
using ops::SgdConsts;

constexpr int kThreads = 256;
constexpr int64_t kChunk = 16384;  // elements per block: 64 per thread
constexpr int kMaxTensors = 192;
constexpr int kPtrs = 5;

template <class C>
struct Slot {
  void* ptr[kPtrs];     // SGD: param, grad, momentum_buffer; Adam: param, grad, exp_avg, exp_avg_sq;
                        // LARS: param, grad, momentum_buffer; LAMB: param, grad, exp_avg, exp_avg_sq, update
                        // (the moments pass) or param, update (the apply pass); norms: the tensor
  int64_t n;            // elements
  int64_t first_block;  // blocks of the launch before this tensor's
  C c;                  // per-tensor constants in the compute type
};

template <class C>
struct Meta {
  int count;
  Slot<C> slot[kMaxTensors];
};
static_assert(sizeof(Meta<AdamConsts<double>>) <= 32764, "kernel parameters are limited to 32764 bytes");
static_assert(sizeof(Meta<ops::LambConsts<double>>) <= 32764, "kernel parameters are limited to 32764 bytes");
static_assert(sizeof(Meta<ops::LarsConsts<double>>) <= 32764, "kernel parameters are limited to 32764 bytes");

// The tensor of block `b` (cuda/multi_tensor.cuh).
template <class C>
__device__ __forceinline__ int slot_of(const Meta<C>& meta, int64_t b) {
  return multi_tensor_slot(meta.slot, meta.count, b);
}

// ---- the element ops: which of the four operands they read and write, and the maths ----

struct SgdOp {
  template <class C>
  __device__ static C prepare(const C& c) {
    return c;
  }
  template <class A>
  __device__ static bool reads(int k, const SgdConsts<A>& c) {
    return k < 2 || (k == 2 && c.has_momentum && !c.first);
  }
  template <class A>
  __device__ static bool writes(int k, const SgdConsts<A>& c) {
    return k == 0 || (k == 2 && c.has_momentum);
  }
  template <class A>
  __device__ static void apply(A* v, const SgdConsts<A>& c) {
    ops::sgd_element<A>(v[0], v[1], v[2], c);
  }
};

struct AdamOp {
  template <class C>
  __device__ static C prepare(const C& c) {
    return c;
  }
  template <class A>
  __device__ static bool reads(int k, const AdamConsts<A>&) {
    return k < 4;
  }
  template <class A>
  __device__ static bool writes(int k, const AdamConsts<A>&) {
    return k != 1 && k < 4;
  }
  template <class A>
  __device__ static void apply(A* v, const AdamConsts<A>& c) {
    ops::adam_element<A>(v[0], v[1], v[2], v[3], c);
  }
};

// A norm from the norms tensor (f32 or f64) as a double.
__device__ __forceinline__ double norm_at(const void* norms, bool f64, int64_t i) {
  return f64 ? static_cast<const double*>(norms)[i]
             : static_cast<double>(static_cast<const float*>(norms)[i]);
}

template <class A>
struct LarsDev {
  ops::LarsConsts<A> k;
  const void* norms;  // null when the tensor does not adapt
  bool norms_f64;
  A local_lr;  // set by prepare()
};
struct LarsOp {
  template <class A>
  __device__ static LarsDev<A> prepare(LarsDev<A> c) {
    const double lr = c.k.w_norm < 0 ? 1.0
                                     : ops::lars_local_lr(norm_at(c.norms, c.norms_f64, c.k.w_norm),
                                                          norm_at(c.norms, c.norms_f64, c.k.g_norm), c.k.eta,
                                                          c.k.wd_d, c.k.eps);
    c.local_lr = static_cast<A>(lr);
    return c;
  }
  template <class A>
  __device__ static bool reads(int k, const LarsDev<A>& c) {
    return k < 2 || (k == 2 && !c.k.first);
  }
  template <class A>
  __device__ static bool writes(int k, const LarsDev<A>&) {
    return k == 0 || k == 2;
  }
  template <class A>
  __device__ static void apply(A* v, const LarsDev<A>& c) {
    ops::lars_element<A>(v[0], v[1], v[2], c.local_lr, c.k);
  }
};

struct LambMomentsOp {
  template <class C>
  __device__ static C prepare(const C& c) {
    return c;
  }
  template <class A>
  __device__ static bool reads(int k, const ops::LambConsts<A>&) {
    return k < 4;
  }
  template <class A>
  __device__ static bool writes(int k, const ops::LambConsts<A>&) {
    return k >= 2;
  }
  template <class A>
  __device__ static void apply(A* v, const ops::LambConsts<A>& c) {
    ops::lamb_moments_element<A>(v[0], v[1], v[2], v[3], v[4], c);
  }
};

template <class A>
struct LambApplyDev {
  double neg_lr;
  int64_t w_norm, u_norm;
  const void* norms;
  bool norms_f64;
  A alpha;  // set by prepare(): -lr * ratio
};
struct LambApplyOp {
  template <class A>
  __device__ static LambApplyDev<A> prepare(LambApplyDev<A> c) {
    const double a = c.w_norm < 0 ? ops::lamb_alpha(c.neg_lr, 0.0, 0.0)
                                  : ops::lamb_alpha(c.neg_lr, norm_at(c.norms, c.norms_f64, c.w_norm),
                                                    norm_at(c.norms, c.norms_f64, c.u_norm));
    c.alpha = static_cast<A>(a);
    return c;
  }
  template <class A>
  __device__ static bool reads(int k, const LambApplyDev<A>&) {
    return k < 2;
  }
  template <class A>
  __device__ static bool writes(int k, const LambApplyDev<A>&) {
    return k == 0;
  }
  template <class A>
  __device__ static void apply(A* v, const LambApplyDev<A>& c) {
    v[0] = ops::optim_add(v[0], ops::optim_mul(c.alpha, v[1]));  // add_(p, r, -lr * ratio)
  }
};

static_assert(sizeof(Meta<LarsDev<double>>) <= 32764, "kernel parameters are limited to 32764 bytes");
static_assert(sizeof(Meta<ops::LambConsts<double>>) <= 32764, "kernel parameters are limited to 32764 bytes");

template <class T, class Op, class C>
__device__ __forceinline__ void step_element(const Slot<C>& s, const C& c, int64_t i) {
  using A = acc_t<T>;
  A v[kPtrs];
#pragma unroll
  for (int k = 0; k < kPtrs; ++k) v[k] = Op::reads(k, c) ? load(static_cast<const T*>(s.ptr[k])[i]) : A(0);
  Op::apply(v, c);
#pragma unroll
  for (int k = 0; k < kPtrs; ++k)
    if (Op::writes(k, c)) static_cast<T*>(s.ptr[k])[i] = store<T>(v[k]);
}

__device__ __forceinline__ float& lane_of(float4& q, int j) {
  return j == 0 ? q.x : j == 1 ? q.y : j == 2 ? q.z : q.w;
}

template <class T, class Op, class C, bool Vec4>
__global__ void __launch_bounds__(kThreads) multi_tensor_step(const __grid_constant__ Meta<C> meta) {
  const int64_t b = blockIdx.x;
  const Slot<C>& s = meta.slot[slot_of(meta, b)];
  const C c = Op::prepare(s.c);
  const int64_t start = (b - s.first_block) * kChunk;
  const int64_t end = start + kChunk < s.n ? start + kChunk : s.n;
  int64_t scalar_from = start;
  if constexpr (Vec4) {
    // f32 only; every pointer is 16-byte aligned and start is a multiple of 4, so i is too.
    const int64_t vec_end = start + ((end - start) & ~int64_t(3));
    for (int64_t i = start + 4 * static_cast<int64_t>(threadIdx.x); i < vec_end;
         i += 4 * int64_t(blockDim.x)) {
      float4 q[kPtrs];
#pragma unroll
      for (int k = 0; k < kPtrs; ++k)
        q[k] = Op::reads(k, c) ? *reinterpret_cast<const float4*>(static_cast<const float*>(s.ptr[k]) + i)
                               : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        float v[kPtrs];
#pragma unroll
        for (int k = 0; k < kPtrs; ++k) v[k] = lane_of(q[k], j);
        Op::apply(v, c);
#pragma unroll
        for (int k = 0; k < kPtrs; ++k) lane_of(q[k], j) = v[k];
      }
#pragma unroll
      for (int k = 0; k < kPtrs; ++k)
        if (Op::writes(k, c)) *reinterpret_cast<float4*>(static_cast<float*>(s.ptr[k]) + i) = q[k];
    }
    scalar_from = vec_end;
  }
  for (int64_t i = scalar_from + threadIdx.x; i < end; i += blockDim.x) step_element<T, Op>(s, c, i);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Host side: add(ptrs, n, consts) appends one tensor (empty ones are skipped) to the parameter block; a full
// block (kMaxTensors tensors) is launched and refilled, and flush() launches the rest.
template <class C>
class MultiTensorLauncher {
 public:
  template <class Launch>
  explicit MultiTensorLauncher(Launch launch) : launch_(launch) {}

  void add(void* const (&ptrs)[kPtrs], int64_t n, const C& c) {
    if (n == 0) return;
    if (meta_.count == kMaxTensors) flush();
    Slot<C>& s = meta_.slot[meta_.count++];
    for (int k = 0; k < kPtrs; ++k) {
      s.ptr[k] = ptrs[k];
      if (ptrs[k] && !aligned16(ptrs[k])) aligned_ = false;
    }
    s.n = n;
    s.first_block = blocks_;
    s.c = c;
    blocks_ += (n + kChunk - 1) / kChunk;
  }

  void flush() {
    if (meta_.count == 0) return;
    NABLA_CHECK(blocks_ <= INT_MAX, "fused optimizer: ", blocks_, " blocks exceed one launch");
    launch_(meta_, static_cast<int>(blocks_), aligned_);
    meta_.count = 0;
    blocks_ = 0;
    aligned_ = true;
  }

 private:
  std::function<void(const Meta<C>&, int, bool)> launch_;
  Meta<C> meta_{};
  int64_t blocks_ = 0;
  bool aligned_ = true;
};

template <class T, class Op, class C>
void launch_step(const Meta<C>& meta, int blocks, bool aligned) {
  if constexpr (std::is_same_v<T, float>) {
    if (aligned) {
      multi_tensor_step<T, Op, C, true><<<blocks, kThreads, 0, current_stream()>>>(meta);
      NABLA_CUDA_LAUNCH_CHECK();
      return;
    }
  }
  multi_tensor_step<T, Op, C, false><<<blocks, kThreads, 0, current_stream()>>>(meta);
  NABLA_CUDA_LAUNCH_CHECK();
}

// Every parameter of one launch shares the first one's device and dtype (shapes differ).
void check_param(const char* op, const Tensor& p, const Tensor& first) {
  NABLA_CHECK(p.defined() && p.device() == first.device() && p.dtype() == first.dtype() &&
                  p.is_non_overlapping_and_dense(),
              op, ": parameters of one fused step must be dense and share device and dtype: got ", p.shape(),
              " ", p.dtype(), " on ", p.device(), ", first is ", first.dtype(), " on ", first.device());
}

void check_member(const char* op, const Tensor& t, const Tensor& param, const char* what) {
  NABLA_CHECK(t.defined() && t.device() == param.device() && t.dtype() == param.dtype() &&
                  ops::same_dense_layout(t, param),
              op, ": ", what, " must be a dense tensor laid out like its parameter ", param.shape(), " ",
              param.dtype(), " on ", param.device());
}

// ---- SGD ----

template <class T>
void fused_sgd_typed(const ops::SgdConfig& config, const std::vector<ops::SgdTensor>& tensors) {
  using A = acc_t<T>;
  using C = SgdConsts<A>;
  MultiTensorLauncher<C> launcher(&launch_step<T, SgdOp, C>);
  for (const ops::SgdTensor& t : tensors) {
    const C c = ops::sgd_consts<A>(ops::sgd_scalars(config, t.lr, t.weight_decay, t.first_update));
    void* const ptrs[kPtrs] = {t.param.data_ptr(), t.grad.data_ptr(),
                               c.has_momentum ? t.momentum_buffer.data_ptr() : nullptr, nullptr, nullptr};
    launcher.add(ptrs, t.param.numel(), c);
  }
  launcher.flush();
}

void fused_sgd_cuda(const ops::SgdConfig& config, const std::vector<ops::SgdTensor>& tensors) {
  if (tensors.empty()) return;
  const Tensor& first = tensors.front().param;
  for (const ops::SgdTensor& t : tensors) {
    NABLA_CHECK(t.param.device() == first.device() && t.param.dtype() == first.dtype(),
                "fused_sgd: parameters of one call must share device and dtype, got ", first.device(), " ",
                first.dtype(), " and ", t.param.device(), " ", t.param.dtype());
    check_param("fused_sgd", t.param, first);
    check_member("fused_sgd", t.grad, t.param, "grad");
    if (config.momentum != 0) check_member("fused_sgd", t.momentum_buffer, t.param, "momentum_buffer");
  }
  DeviceGuard g(first.device().index);
  visit_cuda_float(first.dtype(), "fused_sgd",
                   [&](auto zero) { fused_sgd_typed<decltype(zero)>(config, tensors); });
}

// ---- Adam ----

template <class T>
void fused_adam_typed(const ops::AdamConfig& config, const std::vector<ops::AdamTensor>& tensors) {
  using A = acc_t<T>;
  using C = AdamConsts<A>;
  MultiTensorLauncher<C> launcher(&launch_step<T, AdamOp, C>);
  for (const ops::AdamTensor& t : tensors) {
    const C c = ops::adam_consts<A>(ops::adam_scalars(config, t.lr, t.weight_decay, t.step));
    void* const ptrs[kPtrs] = {t.param.data_ptr(), t.grad.data_ptr(), t.exp_avg.data_ptr(),
                               t.exp_avg_sq.data_ptr(), nullptr};
    launcher.add(ptrs, t.param.numel(), c);
  }
  launcher.flush();
}

void fused_adam_cuda(const ops::AdamConfig& config, const std::vector<ops::AdamTensor>& tensors) {
  if (tensors.empty()) return;
  const Tensor& first = tensors.front().param;
  for (const ops::AdamTensor& t : tensors) {
    NABLA_CHECK(t.param.device() == first.device() && t.param.dtype() == first.dtype(),
                "fused_adam: parameters of one call must share device and dtype, got ", first.device(), " ",
                first.dtype(), " and ", t.param.device(), " ", t.param.dtype());
    NABLA_CHECK(t.step >= 1, "fused_adam: step must be >= 1, got ", t.step);
    check_param("fused_adam", t.param, first);
    check_member("fused_adam", t.grad, t.param, "grad");
    check_member("fused_adam", t.exp_avg, t.param, "exp_avg");
    check_member("fused_adam", t.exp_avg_sq, t.param, "exp_avg_sq");
  }
  DeviceGuard g(first.device().index);
  visit_cuda_float(first.dtype(), "fused_adam",
                   [&](auto zero) { fused_adam_typed<decltype(zero)>(config, tensors); });
}

// ---- per-tensor norms ----

struct NormConsts {
  int64_t out;  // index in the norms tensor
};

__device__ __forceinline__ double block_sum(double v) { return cuda::block_sum<kThreads>(v); }

template <class T>
__global__ void __launch_bounds__(kThreads)
    multi_tensor_sumsq(const __grid_constant__ Meta<NormConsts> meta, double* __restrict__ partials) {
  using A = acc_t<T>;
  const int64_t b = blockIdx.x;
  const Slot<NormConsts>& s = meta.slot[slot_of(meta, b)];
  const T* x = static_cast<const T*>(s.ptr[0]);
  const int64_t start = (b - s.first_block) * kChunk;
  const int64_t end = start + kChunk < s.n ? start + kChunk : s.n;
  double acc = 0;
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
    const A v = load(x[i]);
    acc += static_cast<double>(ops::optim_mul(v, v));  // the square rounded to A, as x * x
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[b] = acc;
}

// One block per tensor of the launch: the sum of its blocks' partials, rounded to N, square-rooted in N.
template <class N>
__global__ void __launch_bounds__(kThreads)
    multi_tensor_norm_finish(const __grid_constant__ Meta<NormConsts> meta,
                             const double* __restrict__ partials, N* __restrict__ norms) {
  const Slot<NormConsts>& s = meta.slot[blockIdx.x];
  const int64_t nb = (s.n + kChunk - 1) / kChunk;
  double acc = 0;
  for (int64_t j = threadIdx.x; j < nb; j += blockDim.x) acc += partials[s.first_block + j];
  acc = block_sum(acc);
  if (threadIdx.x == 0) norms[s.c.out] = ops::optim_sqrt(static_cast<N>(acc));
}

template <class T>
void norms_typed(const std::vector<Tensor>& tensors, Tensor& norms) {
  using N = std::conditional_t<std::is_same_v<T, double>, double, float>;
  N* out = static_cast<N*>(norms.data_ptr());
  const Device dev = norms.device();
  MultiTensorLauncher<NormConsts> launcher([out, dev](const Meta<NormConsts>& meta, int blocks, bool) {
    Tensor partials = Tensor::empty(Shape{blocks}, DType::f64, dev);
    double* part = static_cast<double*>(partials.data_ptr());
    multi_tensor_sumsq<T><<<blocks, kThreads, 0, current_stream()>>>(meta, part);
    NABLA_CUDA_LAUNCH_CHECK();
    multi_tensor_norm_finish<N><<<meta.count, kThreads, 0, current_stream()>>>(meta, part, out);
    NABLA_CUDA_LAUNCH_CHECK();
  });
  // Empty tensors get no block: their norm is 0 (all-zero bits in f32 and f64). Zeroed before any launch
  // (add() may launch a full parameter block).
  bool any_empty = false;
  for (const Tensor& t : tensors) any_empty = any_empty || t.numel() == 0;
  if (any_empty) NABLA_CUDA_CHECK(cudaMemsetAsync(out, 0, tensors.size() * sizeof(N), current_stream()));
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    void* const ptrs[kPtrs] = {t.data_ptr(), nullptr, nullptr, nullptr, nullptr};
    launcher.add(ptrs, t.numel(), NormConsts{static_cast<int64_t>(i)});
  }
  launcher.flush();
}

void multi_tensor_norm_cuda(const std::vector<Tensor>& tensors, Tensor& norms) {
  if (tensors.empty()) return;
  const Tensor& first = tensors.front();
  for (const Tensor& t : tensors)
    NABLA_CHECK(t.defined() && t.device() == first.device() && t.dtype() == first.dtype() &&
                    t.is_non_overlapping_and_dense(),
                "multi_tensor_norm: tensors must be contiguous and share device and dtype, got ", t.shape(),
                " ", t.dtype(), " on ", t.device(), ", first is ", first.dtype(), " on ", first.device());
  NABLA_CHECK(norms.defined() && norms.device() == first.device() &&
                  norms.dtype() == ops::norm_dtype(first.dtype()) && norms.is_contiguous() &&
                  norms.numel() == static_cast<int64_t>(tensors.size()),
              "multi_tensor_norm: norms must be a contiguous ", ops::norm_dtype(first.dtype()), " tensor of ",
              tensors.size(), " elements on ", first.device(), ", got ", norms.shape(), " ", norms.dtype(),
              " on ", norms.device());
  DeviceGuard g(first.device().index);
  visit_cuda_float(first.dtype(), "multi_tensor_norm",
                   [&](auto zero) { norms_typed<decltype(zero)>(tensors, norms); });
}

void check_norms(const char* op, const Tensor& norms, const Tensor& param, int64_t a, int64_t b) {
  NABLA_CHECK((a < 0) == (b < 0), op, ": both norm indices must be set or both -1, got ", a, " and ", b);
  if (a < 0) return;
  NABLA_CHECK(norms.defined() && norms.device() == param.device() &&
                  norms.dtype() == ops::norm_dtype(param.dtype()) && norms.is_contiguous(),
              op, ": norms must be a contiguous ", ops::norm_dtype(param.dtype()), " tensor on ",
              param.device());
  NABLA_CHECK(a < norms.numel() && b < norms.numel(), op, ": norm indices ", a, ", ", b, " out of range of ",
              norms.numel(), " norms");
}

// ---- LARS ----

template <class T>
void fused_lars_typed(const ops::LarsConfig& config, const std::vector<ops::LarsTensor>& tensors,
                      const Tensor& norms) {
  using A = acc_t<T>;
  using C = LarsDev<A>;
  MultiTensorLauncher<C> launcher(&launch_step<T, LarsOp, C>);
  const void* np = norms.defined() ? norms.data_ptr() : nullptr;
  const bool f64 = norms.defined() && norms.dtype() == DType::f64;
  for (const ops::LarsTensor& t : tensors) {
    const C c{ops::lars_consts<A>(config, t), np, f64, A(1)};
    void* const ptrs[kPtrs] = {t.param.data_ptr(), t.grad.data_ptr(), t.momentum_buffer.data_ptr(), nullptr,
                               nullptr};
    launcher.add(ptrs, t.param.numel(), c);
  }
  launcher.flush();
}

void fused_lars_cuda(const ops::LarsConfig& config, const std::vector<ops::LarsTensor>& tensors,
                     const Tensor& norms) {
  if (tensors.empty()) return;
  const Tensor& first = tensors.front().param;
  for (const ops::LarsTensor& t : tensors) {
    check_param("fused_lars", t.param, first);
    check_member("fused_lars", t.grad, t.param, "grad");
    check_member("fused_lars", t.momentum_buffer, t.param, "momentum_buffer");
    check_norms("fused_lars", norms, t.param, t.w_norm, t.g_norm);
  }
  DeviceGuard g(first.device().index);
  visit_cuda_float(first.dtype(), "fused_lars",
                   [&](auto zero) { fused_lars_typed<decltype(zero)>(config, tensors, norms); });
}

// ---- LAMB ----

template <class T>
void lamb_moments_typed(const ops::LambConfig& config, const std::vector<ops::LambTensor>& tensors) {
  using A = acc_t<T>;
  using C = ops::LambConsts<A>;
  MultiTensorLauncher<C> launcher(&launch_step<T, LambMomentsOp, C>);
  for (const ops::LambTensor& t : tensors) {
    void* const ptrs[kPtrs] = {t.param.data_ptr(), t.grad.data_ptr(), t.exp_avg.data_ptr(),
                               t.exp_avg_sq.data_ptr(), t.update.data_ptr()};
    launcher.add(ptrs, t.param.numel(), ops::lamb_consts<A>(config, t));
  }
  launcher.flush();
}

void check_lamb(const char* op, const std::vector<ops::LambTensor>& tensors, bool apply) {
  const Tensor& first = tensors.front().param;
  for (const ops::LambTensor& t : tensors) {
    NABLA_CHECK(t.step >= 1, op, ": step must be >= 1, got ", t.step);
    check_param(op, t.param, first);
    check_member(op, t.update, t.param, "update");
    if (!apply) {
      check_member(op, t.grad, t.param, "grad");
      check_member(op, t.exp_avg, t.param, "exp_avg");
      check_member(op, t.exp_avg_sq, t.param, "exp_avg_sq");
    }
  }
}

void lamb_moments_cuda(const ops::LambConfig& config, const std::vector<ops::LambTensor>& tensors) {
  if (tensors.empty()) return;
  check_lamb("lamb_moments", tensors, false);
  const Tensor& first = tensors.front().param;
  DeviceGuard g(first.device().index);
  visit_cuda_float(first.dtype(), "lamb_moments",
                   [&](auto zero) { lamb_moments_typed<decltype(zero)>(config, tensors); });
}

template <class T>
void lamb_apply_typed(const std::vector<ops::LambTensor>& tensors, const Tensor& norms) {
  using A = acc_t<T>;
  using C = LambApplyDev<A>;
  MultiTensorLauncher<C> launcher(&launch_step<T, LambApplyOp, C>);
  const void* np = norms.defined() ? norms.data_ptr() : nullptr;
  const bool f64 = norms.defined() && norms.dtype() == DType::f64;
  for (const ops::LambTensor& t : tensors) {
    const C c{-t.lr, t.w_norm, t.u_norm, np, f64, A(0)};
    void* const ptrs[kPtrs] = {t.param.data_ptr(), t.update.data_ptr(), nullptr, nullptr, nullptr};
    launcher.add(ptrs, t.param.numel(), c);
  }
  launcher.flush();
}

void lamb_apply_cuda(const std::vector<ops::LambTensor>& tensors, const Tensor& norms) {
  if (tensors.empty()) return;
  check_lamb("lamb_apply", tensors, true);
  for (const ops::LambTensor& t : tensors) check_norms("lamb_apply", norms, t.param, t.w_norm, t.u_norm);
  const Tensor& first = tensors.front().param;
  DeviceGuard g(first.device().index);
  visit_cuda_float(first.dtype(), "lamb_apply",
                   [&](auto zero) { lamb_apply_typed<decltype(zero)>(tensors, norms); });
}

// ---- unscale and check ----

template <class A>
struct UnscaleConsts {
  A inv_scale;
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    multi_tensor_unscale(const __grid_constant__ Meta<UnscaleConsts<acc_t<T>>> meta,
                         float* __restrict__ found_inf) {
  using A = acc_t<T>;
  const int64_t b = blockIdx.x;
  const auto& s = meta.slot[slot_of(meta, b)];
  const A inv = s.c.inv_scale;
  T* g = static_cast<T*>(s.ptr[0]);
  const int64_t start = (b - s.first_block) * kChunk;
  const int64_t end = start + kChunk < s.n ? start + kChunk : s.n;
  bool bad = false;
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
    const A v = load(g[i]);
    bad |= !::isfinite(v);
    g[i] = store<T>(ops::optim_mul(v, inv));
  }
  if (bad) *found_inf = 1.0f;
}

template <class T>
void unscale_typed(const std::vector<const Tensor*>& grads, double inv_scale, float* found_inf) {
  using A = acc_t<T>;
  using C = UnscaleConsts<A>;
  MultiTensorLauncher<C> launcher([found_inf](const Meta<C>& meta, int blocks, bool) {
    multi_tensor_unscale<T><<<blocks, kThreads, 0, current_stream()>>>(meta, found_inf);
    NABLA_CUDA_LAUNCH_CHECK();
  });
  for (const Tensor* t : grads) {
    void* const ptrs[kPtrs] = {t->data_ptr(), nullptr, nullptr, nullptr, nullptr};
    launcher.add(ptrs, t->numel(), C{static_cast<A>(inv_scale)});
  }
  launcher.flush();
}

void amp_unscale_cuda(const std::vector<Tensor>& grads, double inv_scale, Tensor& found_inf) {
  NABLA_CHECK(found_inf.defined() && found_inf.device().is_cuda() && found_inf.dtype() == DType::f32 &&
                  found_inf.numel() == 1,
              "amp_unscale: found_inf must be a one-element f32 cuda tensor");
  for (const Tensor& g : grads)
    NABLA_CHECK(g.defined() && g.device() == found_inf.device() && is_floating(g.dtype()) &&
                    g.is_non_overlapping_and_dense(),
                "amp_unscale: every grad must be a contiguous floating tensor on ", found_inf.device(),
                ", got ", g.shape(), " ", g.dtype(), " on ", g.device());
  DeviceGuard guard(found_inf.device().index);
  float* flag = static_cast<float*>(found_inf.data_ptr());
  // One launch (per kMaxTensors) per dtype present, usually just f32.
  for (DType dt : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
    std::vector<const Tensor*> same;
    for (const Tensor& g : grads)
      if (g.dtype() == dt) same.push_back(&g);
    if (same.empty()) continue;
    visit_cuda_float(dt, "amp_unscale",
                     [&](auto zero) { unscale_typed<decltype(zero)>(same, inv_scale, flag); });
  }
}

}  // namespace

NABLA_REGISTER_KERNEL(fused_sgd_kernel, cuda, fused_sgd_cuda);
NABLA_REGISTER_KERNEL(fused_adam_kernel, cuda, fused_adam_cuda);
NABLA_REGISTER_KERNEL(amp_unscale_kernel, cuda, amp_unscale_cuda);
NABLA_REGISTER_KERNEL(multi_tensor_norm_kernel, cuda, multi_tensor_norm_cuda);
NABLA_REGISTER_KERNEL(fused_lars_kernel, cuda, fused_lars_cuda);
NABLA_REGISTER_KERNEL(lamb_moments_kernel, cuda, lamb_moments_cuda);
NABLA_REGISTER_KERNEL(lamb_apply_kernel, cuda, lamb_apply_cuda);

}  // namespace nabla::cuda
