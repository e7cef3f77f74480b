// CUDA kernels of VRGD's fused GSNR step (slots, contracts and the element maths in ops/gsnr_kernels.h; the
// element functions are shared with the CPU kernels and never contracted into FMA in device code, so every
// element-wise result matches the CPU bit for bit given the same per-tensor mean).
//
// Launch shape: the multi-tensor apply of cuda/optim_kernels.cu. Every tensor is cut into chunks of kChunk
// elements, one block of kThreads threads per chunk, one launch for up to kMaxTensors tensors (ResNet-50's
// 161 fit in one). The per-tensor metadata (pointers, sizes, the tensor's index in the call, the index of its
// first block, a flag word and one scalar) travels in a __grid_constant__ parameter block of about 20 KB, so
// a launch needs no host-to-device copy; a block finds its tensor by binary search over the first-block
// indices. The slots are smaller than optim_kernels.cu's (four pointers, no per-tensor constant struct), so
// more tensors fit in one launch; the few lines of the search and the block sum are repeated here rather than
// shared, to leave cuda/optim_kernels.cu alone.
//
// Launches per step (tensors <= kMaxTensors): accumulate 1 per partition; reduce 3 (raw r with per-block f64
// partial sums; per-tensor sums of the partials, which also write each tensor's mean; normalise and clamp)
// + 1 in global scope (one thread sums the tensors' sums in tensor order) + 1 with statistics (per-tensor
// sums of the per-block statistics partials); apply 1. No atomics anywhere: each block sums its values in a
// fixed order (thread-strided, a fixed shuffle tree, the warps in order) and each tensor its blocks' partials
// the same way, so results are identical run to run. The per-tensor means stay on the device (a small f64
// array the normalise pass reads); only the statistics, when asked for, are read by the host.
#include <climits>
#include <vector>

#include "cuda/dtype.cuh"
#include "cuda/multi_tensor.cuh"
#include "cuda/runtime.h"
#include "ops/gsnr_kernels.h"
#include "ops/util.h"

namespace nabla::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunk = 16384;  // elements per block: 64 per thread
constexpr int kMaxTensors = 320;

// Flag bits of a slot.
constexpr int kFirst = 1;     // accumulate: first partition; apply: first momentum update
constexpr int kWriteSum = 2;  // accumulate, first partition: sum is not grad's buffer
constexpr int kHasBias = 4;   // apply: multiply p by the bias correction

struct Slot {
  void*
      ptr[4];  // accumulate: grad, sum, sq; reduce: sum, sq, ratio; apply: grad, input, momentum, multiplier
  int64_t n;
  int64_t first_block;
  int index;  // the tensor's position in the call (sums, means, statistics)
  int flags;
  double scale;  // apply: 1 / (1 - beta3^t)
};

template <class C>
struct Meta {
  C c;
  int count;
  Slot slot[kMaxTensors];
};
static_assert(sizeof(Meta<ops::GsnrApplyConsts<double>>) <= 32764,
              "kernel parameters are limited to 32764 bytes");

template <class C>
__device__ __forceinline__ const Slot& slot_of(const Meta<C>& meta, int64_t b) {
  return meta.slot[multi_tensor_slot(meta.slot, meta.count, b)];
}

__device__ __forceinline__ double block_sum(double v) { return cuda::block_sum<kThreads>(v); }

// The element range of block b.
struct Range {
  int64_t start, end;
};
__device__ __forceinline__ Range range_of(const Slot& s, int64_t b) {
  const int64_t start = (b - s.first_block) * kChunk;
  return {start, start + kChunk < s.n ? start + kChunk : s.n};
}

template <class T>
struct RoundTo {  // storage rounding: the multiplier applied is the one stored
  __host__ __device__ acc_t<T> operator()(acc_t<T> v) const { return load(store<T>(v)); }
};

struct NoConsts {};

// ---- kernels ----

template <class T>
__global__ void __launch_bounds__(kThreads) gsnr_accumulate(const __grid_constant__ Meta<NoConsts> meta) {
  using A = acc_t<T>;
  const Slot& s = slot_of(meta, blockIdx.x);
  const Range r = range_of(s, blockIdx.x);
  const T* g = static_cast<const T*>(s.ptr[0]);
  T* sum = static_cast<T*>(s.ptr[1]);
  T* sq = static_cast<T*>(s.ptr[2]);
  const bool first = s.flags & kFirst, write_sum = !first || (s.flags & kWriteSum);
  for (int64_t i = r.start + threadIdx.x; i < r.end; i += blockDim.x) {
    A sv = first ? A(0) : load(sum[i]), qv = first ? A(0) : load(sq[i]);
    ops::gsnr_accumulate_element<A>(load(g[i]), sv, qv, first);
    if (write_sum) sum[i] = store<T>(sv);
    sq[i] = store<T>(qv);
  }
}

// Pass 1: mean gradient and raw r; partials[block] = the block's sum of raw r as stored.
template <class T>
__global__ void __launch_bounds__(kThreads)
    gsnr_raw(const __grid_constant__ Meta<ops::GsnrReduceConsts<acc_t<T>>> meta,
             double* __restrict__ partials) {
  using A = acc_t<T>;
  const Slot& s = slot_of(meta, blockIdx.x);
  const Range r = range_of(s, blockIdx.x);
  T* sum = static_cast<T*>(s.ptr[0]);
  T* sq = static_cast<T*>(s.ptr[1]);
  double acc = 0;
  for (int64_t i = r.start + threadIdx.x; i < r.end; i += blockDim.x) {
    A sv = load(sum[i]), qv = load(sq[i]);
    ops::gsnr_raw_element<A>(sv, qv, meta.c);
    sum[i] = store<T>(sv);
    const T stored = store<T>(qv);
    sq[i] = stored;
    acc += static_cast<double>(load(stored));
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// One block per tensor of the launch: the sum of its blocks' partials -> sums[index], and the tensor's
// mean + tiny (per-tensor scope) -> means[index].
template <class A, class C>
__global__ void __launch_bounds__(kThreads)
    gsnr_tensor_sums(const __grid_constant__ Meta<C> meta, const double* __restrict__ partials,
                     double* __restrict__ sums, double* __restrict__ means) {
  const Slot& s = meta.slot[blockIdx.x];
  const int64_t nb = (s.n + kChunk - 1) / kChunk;
  double acc = 0;
  for (int64_t j = threadIdx.x; j < nb; j += blockDim.x) acc += partials[s.first_block + j];
  acc = block_sum(acc);
  if (threadIdx.x == 0) {
    sums[s.index] = acc;
    means[s.index] = static_cast<double>(ops::gsnr_mean_plus_tiny<A>(acc, s.n));
  }
}

// Global scope: the sum of the tensors' sums in tensor order in A, over all elements -> means[0].
template <class A>
__global__ void gsnr_global_mean(const double* __restrict__ sums, int n, int64_t total,
                                 double* __restrict__ means) {
  A all = A(0);
  for (int i = 0; i < n; ++i) all = ops::optim_add(all, static_cast<A>(sums[i]));
  means[0] = static_cast<double>(
      ops::optim_add(ops::optim_div(all, static_cast<A>(total)), static_cast<A>(ops::kGsnrTiny)));
}

struct RatioConsts {
  bool global, write_normalized;
};
template <class A>
struct RatioDev {
  RatioConsts k;
  A gamma;
};

// Pass 2: normalise and clamp; with Stats, partials[3 b + j] = the block's sum of the ratio, count below
// gamma, count above 1.
template <class T, bool Stats>
__global__ void __launch_bounds__(kThreads)
    gsnr_ratio(const __grid_constant__ Meta<RatioDev<acc_t<T>>> meta, const double* __restrict__ means,
               double* __restrict__ partials) {
  using A = acc_t<T>;
  const Slot& s = slot_of(meta, blockIdx.x);
  const Range r = range_of(s, blockIdx.x);
  T* sq = static_cast<T*>(s.ptr[1]);
  T* ratio = static_cast<T*>(s.ptr[2]);
  const A m = static_cast<A>(means[meta.c.k.global ? 0 : s.index]);
  const A gamma = meta.c.gamma;
  double ratio_sum = 0, below = 0, above = 0;
  for (int64_t i = r.start + threadIdx.x; i < r.end; i += blockDim.x) {
    A normalised, rv;
    ops::gsnr_ratio_element<A>(load(sq[i]), m, gamma, normalised, rv);
    const T stored = store<T>(rv);
    ratio[i] = stored;
    if (meta.c.k.write_normalized) sq[i] = store<T>(normalised);
    if constexpr (Stats) {
      ratio_sum += static_cast<double>(load(stored));
      below += normalised < gamma ? 1.0 : 0.0;
      above += normalised > A(1) ? 1.0 : 0.0;
    }
  }
  if constexpr (Stats) {
    ratio_sum = block_sum(ratio_sum);
    below = block_sum(below);
    above = block_sum(above);
    if (threadIdx.x == 0) {
      partials[3 * blockIdx.x] = ratio_sum;
      partials[3 * blockIdx.x + 1] = below;
      partials[3 * blockIdx.x + 2] = above;
    }
  }
}

// One block per tensor: its blocks' statistics partials -> stats[3 index + j].
template <class C>
__global__ void __launch_bounds__(kThreads)
    gsnr_stats_finish(const __grid_constant__ Meta<C> meta, const double* __restrict__ partials,
                      double* __restrict__ stats) {
  const Slot& s = meta.slot[blockIdx.x];
  const int64_t nb = (s.n + kChunk - 1) / kChunk;
  for (int j = 0; j < 3; ++j) {
    double acc = 0;
    for (int64_t b = threadIdx.x; b < nb; b += blockDim.x) acc += partials[3 * (s.first_block + b) + j];
    acc = block_sum(acc);
    if (threadIdx.x == 0) stats[3 * s.index + j] = acc;
  }
}

template <class A>
struct ApplyDev {
  A beta3, one_minus_beta3, gamma;
  bool momentum;
};

template <class T>
__global__ void __launch_bounds__(kThreads)
    gsnr_apply(const __grid_constant__ Meta<ApplyDev<acc_t<T>>> meta) {
  using A = acc_t<T>;
  const Slot& s = slot_of(meta, blockIdx.x);
  const Range r = range_of(s, blockIdx.x);
  const ops::GsnrApplyConsts<A> c{meta.c.beta3,           meta.c.one_minus_beta3, static_cast<A>(s.scale),
                                  meta.c.gamma,           meta.c.momentum,        (s.flags & kHasBias) != 0,
                                  (s.flags & kFirst) != 0};
  T* g = static_cast<T*>(s.ptr[0]);
  const T* in = static_cast<const T*>(s.ptr[1]);
  T* p = static_cast<T*>(s.ptr[2]);
  T* mult = static_cast<T*>(s.ptr[3]);
  for (int64_t i = r.start + threadIdx.x; i < r.end; i += blockDim.x) {
    A gv = load(g[i]), pv = c.momentum && !c.first ? load(p[i]) : A(0), mv = A(0);
    const A iv = load(in[i]);  // read before mult is written: they may share a buffer
    ops::gsnr_apply_element<A>(gv, iv, pv, mv, c, RoundTo<T>{});
    g[i] = store<T>(gv);
    if (c.momentum) {
      p[i] = store<T>(pv);
      mult[i] = store<T>(mv);
    }
  }
}

// ---- host side ----

template <class C>
struct Launch {
  Meta<C> meta;
  int blocks = 0;
};

// Cuts `n` tensors into launches of at most kMaxTensors non-empty tensors. fill(i, slot) sets the slot's
// pointers, flags and scale and returns the tensor's element count.
template <class C, class Fill>
std::vector<Launch<C>> plan(const C& c, size_t n, Fill fill) {
  std::vector<Launch<C>> out;
  int64_t blocks = 0;
  for (size_t i = 0; i < n; ++i) {
    Slot s{};
    s.index = static_cast<int>(i);
    s.n = fill(i, s);
    if (s.n == 0) continue;
    if (out.empty() || out.back().meta.count == kMaxTensors) {
      if (!out.empty()) out.back().blocks = static_cast<int>(blocks);
      out.emplace_back();
      out.back().meta.c = c;
      out.back().meta.count = 0;
      blocks = 0;
    }
    s.first_block = blocks;
    blocks += (s.n + kChunk - 1) / kChunk;
    NABLA_CHECK(blocks <= INT_MAX, "gsnr: ", blocks, " blocks exceed one launch");
    out.back().meta.slot[out.back().meta.count++] = s;
  }
  if (!out.empty()) out.back().blocks = static_cast<int>(blocks);
  return out;
}

void check_first(const char* op, const Tensor& t, const Tensor& first, size_t i) {
  NABLA_CHECK(
      t.defined() && t.device() == first.device() && t.dtype() == first.dtype() &&
          t.is_non_overlapping_and_dense(),
      op, ": tensor ", i, " must be dense and share the call's device and dtype (", first.dtype(), " on ",
      first.device(), "), got ",
      t.defined() ? str_cat(t.shape(), " ", t.dtype(), " on ", t.device()) : std::string("undefined"));
}

void check_like(const char* op, const Tensor& t, const Tensor& like, const char* what, size_t i) {
  NABLA_CHECK(
      t.defined() && t.device() == like.device() && t.dtype() == like.dtype() &&
          ops::same_dense_layout(t, like),
      op, ": tensor ", i, ": ", what, " must be a dense tensor laid out like ", like.shape(), " ",
      like.dtype(), " on ", like.device(), ", got ",
      t.defined() ? str_cat(t.shape(), " ", t.dtype(), " on ", t.device()) : std::string("undefined"));
}

// ---- accumulate ----

template <class T>
void accumulate_typed(const std::vector<ops::GsnrAccumulateTensor>& tensors) {
  auto launches = plan(NoConsts{}, tensors.size(), [&](size_t i, Slot& s) {
    const auto& t = tensors[i];
    s.ptr[0] = t.grad.data_ptr();
    s.ptr[1] = t.sum.data_ptr();
    s.ptr[2] = t.sq.data_ptr();
    s.flags = (t.first ? kFirst : 0) | (t.sum.data_ptr() != t.grad.data_ptr() ? kWriteSum : 0);
    return t.grad.numel();
  });
  for (const auto& l : launches) {
    gsnr_accumulate<T><<<l.blocks, kThreads, 0, current_stream()>>>(l.meta);
    NABLA_CUDA_LAUNCH_CHECK();
  }
}

void gsnr_accumulate_cuda(const std::vector<ops::GsnrAccumulateTensor>& tensors) {
  if (tensors.empty()) return;
  const Tensor& first = tensors.front().grad;
  for (size_t i = 0; i < tensors.size(); ++i) {
    check_first("gsnr_accumulate", tensors[i].grad, first, i);
    check_like("gsnr_accumulate", tensors[i].sum, tensors[i].grad, "sum", i);
    check_like("gsnr_accumulate", tensors[i].sq, tensors[i].grad, "sq", i);
  }
  DeviceGuard g(first.device().index);
  visit_cuda_float(first.dtype(), "gsnr_accumulate",
                   [&](auto zero) { accumulate_typed<decltype(zero)>(tensors); });
}

// ---- reduce ----

template <class T>
void reduce_typed(const ops::GsnrReduceConfig& config, const std::vector<ops::GsnrReduceTensor>& tensors,
                  Tensor& stats) {
  using A = acc_t<T>;
  const Device dev = tensors.front().sum.device();
  const size_t n = tensors.size();
  int64_t total = 0;
  bool any_empty = false;
  for (const auto& t : tensors) {
    total += t.sum.numel();
    any_empty = any_empty || t.sum.numel() == 0;
  }
  auto fill = [&](size_t i, Slot& s) {
    s.ptr[0] = tensors[i].sum.data_ptr();
    s.ptr[1] = tensors[i].sq.data_ptr();
    s.ptr[2] = tensors[i].ratio.data_ptr();
    return tensors[i].sum.numel();
  };
  // sums[0, n) and means[n, 2n) of every tensor of the call (across launches); an empty tensor's sum is 0.
  Tensor work = Tensor::empty(Shape{static_cast<int64_t>(2 * n)}, DType::f64, dev);
  double* sums = static_cast<double*>(work.data_ptr());
  double* means = sums + n;
  if (any_empty) NABLA_CUDA_CHECK(cudaMemsetAsync(sums, 0, n * sizeof(double), current_stream()));

  const auto raw_launches = plan(ops::gsnr_reduce_consts<A>(config), n, fill);
  for (const auto& l : raw_launches) {
    Tensor partials = Tensor::empty(Shape{l.blocks}, DType::f64, dev);
    double* part = static_cast<double*>(partials.data_ptr());
    gsnr_raw<T><<<l.blocks, kThreads, 0, current_stream()>>>(l.meta, part);
    NABLA_CUDA_LAUNCH_CHECK();
    gsnr_tensor_sums<A><<<l.meta.count, kThreads, 0, current_stream()>>>(l.meta, part, sums, means);
    NABLA_CUDA_LAUNCH_CHECK();
  }
  if (config.global_scope) {
    gsnr_global_mean<A><<<1, 1, 0, current_stream()>>>(sums, static_cast<int>(n), total, means);
    NABLA_CUDA_LAUNCH_CHECK();
  }

  const RatioDev<A> rc{{config.global_scope, config.write_normalized}, static_cast<A>(config.gamma)};
  double* stats_out = stats.defined() ? static_cast<double*>(stats.data_ptr()) : nullptr;
  if (stats_out && any_empty)
    NABLA_CUDA_CHECK(cudaMemsetAsync(stats_out, 0, 3 * n * sizeof(double), current_stream()));
  for (const auto& l : plan(rc, n, fill)) {
    if (stats_out) {
      Tensor partials = Tensor::empty(Shape{3 * static_cast<int64_t>(l.blocks)}, DType::f64, dev);
      double* part = static_cast<double*>(partials.data_ptr());
      gsnr_ratio<T, true><<<l.blocks, kThreads, 0, current_stream()>>>(l.meta, means, part);
      NABLA_CUDA_LAUNCH_CHECK();
      gsnr_stats_finish<<<l.meta.count, kThreads, 0, current_stream()>>>(l.meta, part, stats_out);
      NABLA_CUDA_LAUNCH_CHECK();
    } else {
      gsnr_ratio<T, false><<<l.blocks, kThreads, 0, current_stream()>>>(l.meta, means, nullptr);
      NABLA_CUDA_LAUNCH_CHECK();
    }
  }
}

void gsnr_reduce_cuda(const ops::GsnrReduceConfig& config, const std::vector<ops::GsnrReduceTensor>& tensors,
                      Tensor& stats) {
  NABLA_CHECK(config.partitions >= 1, "gsnr_reduce: partitions must be >= 1, got ", config.partitions);
  if (tensors.empty()) return;
  const Tensor& first = tensors.front().sum;
  for (size_t i = 0; i < tensors.size(); ++i) {
    check_first("gsnr_reduce", tensors[i].sum, first, i);
    check_like("gsnr_reduce", tensors[i].sq, tensors[i].sum, "sq", i);
    check_like("gsnr_reduce", tensors[i].ratio, tensors[i].sum, "ratio", i);
  }
  if (stats.defined())
    NABLA_CHECK(stats.device() == first.device() && stats.dtype() == DType::f64 && stats.is_contiguous() &&
                    stats.numel() == static_cast<int64_t>(3 * tensors.size()),
                "gsnr_reduce: stats must be a contiguous f64 tensor of ", 3 * tensors.size(), " elements on ",
                first.device(), ", got ", stats.shape(), " ", stats.dtype(), " on ", stats.device());
  DeviceGuard g(first.device().index);
  visit_cuda_float(first.dtype(), "gsnr_reduce",
                   [&](auto zero) { reduce_typed<decltype(zero)>(config, tensors, stats); });
}

// ---- apply ----

template <class T>
void apply_typed(const ops::GsnrApplyConfig& config, const std::vector<ops::GsnrApplyTensor>& tensors) {
  using A = acc_t<T>;
  const ApplyDev<A> c{static_cast<A>(config.beta3), static_cast<A>(1.0 - config.beta3),
                      static_cast<A>(config.gamma), config.beta3 > 0};
  auto launches = plan(c, tensors.size(), [&](size_t i, Slot& s) {
    const auto& t = tensors[i];
    s.ptr[0] = t.grad.data_ptr();
    s.ptr[1] = t.input.data_ptr();
    if (c.momentum) {
      // The same scalars as the CPU kernel's (gsnr_apply_consts), the bias factor cast to A on the device.
      const ops::GsnrApplyConsts<double> d = ops::gsnr_apply_consts<double>(config, t.step, t.first);
      s.ptr[2] = t.momentum.data_ptr();
      s.ptr[3] = t.multiplier.data_ptr();
      s.scale = d.inv_bias;
      s.flags = (t.first ? kFirst : 0) | (d.has_bias ? kHasBias : 0);
    }
    return t.grad.numel();
  });
  for (const auto& l : launches) {
    gsnr_apply<T><<<l.blocks, kThreads, 0, current_stream()>>>(l.meta);
    NABLA_CUDA_LAUNCH_CHECK();
  }
}

void gsnr_apply_cuda(const ops::GsnrApplyConfig& config, const std::vector<ops::GsnrApplyTensor>& tensors) {
  NABLA_CHECK(config.beta3 >= 0 && config.beta3 < 1, "gsnr_apply: beta3 must be in [0, 1), got ",
              config.beta3);
  if (tensors.empty()) return;
  const Tensor& first = tensors.front().grad;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    check_first("gsnr_apply", t.grad, first, i);
    check_like("gsnr_apply", t.input, t.grad, "input", i);
    if (config.beta3 > 0) {
      NABLA_CHECK(t.step >= 1, "gsnr_apply: tensor ", i, ": step must be >= 1, got ", t.step);
      check_like("gsnr_apply", t.momentum, t.grad, "momentum", i);
      check_like("gsnr_apply", t.multiplier, t.grad, "multiplier", i);
    }
  }
  DeviceGuard g(first.device().index);
  visit_cuda_float(first.dtype(), "gsnr_apply",
                   [&](auto zero) { apply_typed<decltype(zero)>(config, tensors); });
}

}  // namespace

NABLA_REGISTER_KERNEL(gsnr_accumulate_kernel, cuda, gsnr_accumulate_cuda);
NABLA_REGISTER_KERNEL(gsnr_reduce_kernel, cuda, gsnr_reduce_cuda);
NABLA_REGISTER_KERNEL(gsnr_apply_kernel, cuda, gsnr_apply_cuda);

}  // namespace nabla::cuda
