// CUDA kernels of batch_norm (forward, backward, training and evaluation). The maths and the slot contracts
// are the CPU kernels' (ops/nn.h, ops/cpu/batch_norm.cpp); every type computes in acc_t<T> (f32 for
// f32/bf16/f16, f64 for f64), and per-channel constants are worked out in f64 as the CPU does.
//
// x viewed as [n, c, s]; every reduction is deterministic and two-stage:
//   1. partials: s >= 32: a 256-thread block per (channel, chunk of n) walks its planes flat (so small s
//      still fills the block); s < 32: x is [n, c*s] and 32 x 8 blocks take 32 columns over a chunk of rows.
//      Forward partials are (count, mean, M2) from per-thread sums shifted by the thread's first value
//      (robust against large means), merged with Chan's formula; backward partials are sum g and
//      sum g (x - mean).
//   2. finalize: a group of 32..256 threads per channel merges its partials in a fixed order in f64 and
//      writes the batch mean/biased variance (training), dweight/dbias, and per-channel coefficients.
//   3. apply: x as [n, c*s], a thread per column (channel computed once) looping over rows: y = x * scale +
//      shift; dx = g * w rstd - kx (x - mean) - k0 (training) or g * w rstd (evaluation).
//   The running statistics are updated in bn_finalize.
// batch_norm_add_relu fuses into the same kernels (BnEpi): the forward apply adds the residual and clamps at
// 0 (or, with a negative slope a, maps v <= 0 to a v: the leaky ReLU of Darknet's conv blocks); the backward
// reads gm = (y > 0 ? g : a g) (y the forward's output) wherever batch_norm reads g, in the
// partials and in the apply, and the apply writes gm as the residual's gradient. So the fused op costs the
// launches and passes of batch_norm alone: no separate add, relu or relu-backward pass over the activations.
// mean/var are read and written in x's dtype, or f32 for a bf16/f16 x (Stat<T>, cuda/rows.cuh).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/rows.cuh"
#include "cuda/vec.cuh"
#include "ops/nn.h"

namespace nabla::cuda {
namespace {

// (count, mean, M2) of a set of values; Chan et al.'s pairwise merge.
template <class A>
struct Moments {
  A n, mean, m2;
};

template <class A>
__device__ __forceinline__ Moments<A> merge(Moments<A> a, Moments<A> b) {
  if (b.n == A(0)) return a;
  if (a.n == A(0)) return b;
  const A n = a.n + b.n, d = b.mean - a.mean, fb = b.n / n;
  return {n, a.mean + d * fb, a.m2 + b.m2 + d * d * a.n * fb};
}

template <class A>
__device__ __forceinline__ Moments<A> shfl_down(Moments<A> v, int d) {
  return {__shfl_down_sync(kFull, v.n, d), __shfl_down_sync(kFull, v.mean, d),
          __shfl_down_sync(kFull, v.m2, d)};
}

// The fused epilogue of batch_norm_add_relu (all null / false for plain batch_norm). Forward: res is added
// to y and relu maps it to v > 0 ? v : slope v (slope 0: exactly 0). Backward: ym (the forward's output)
// masks g (slope g where ym <= 0), and dres receives the masked g.
template <class T>
struct BnEpi {
  const T* res = nullptr;
  bool relu = false;
  acc_t<T> slope = 0;
  const T* ym = nullptr;
  T* dres = nullptr;
};

// Values in one 16-byte pack: 8 bf16/f16, 4 f32, 2 f64.
template <class T>
constexpr int kBnPack = static_cast<int>(16 / sizeof(T));

// The (leaky) ReLU of the fused epilogue; slope 0 keeps ReLU's exact 0.
template <class A>
__device__ __forceinline__ A leaky(A v, A slope) {
  return v > A(0) ? v : (slope == A(0) ? A(0) : v * slope);
}

// g where the forward's output (ym, when given) is positive, else slope g (0 for ReLU): the ReLU backward.
template <class A>
__device__ __forceinline__ A mask_g(A gv, A yv, A slope) {
  return yv > A(0) ? gv : (slope == A(0) ? A(0) : gv * slope);
}

template <class T>
__device__ __forceinline__ acc_t<T> masked_g(const T* __restrict__ g, const T* __restrict__ ym,
                                             acc_t<T> slope, int64_t off) {
  const acc_t<T> gv = load(g[off]);
  return ym == nullptr ? gv : mask_g(gv, load(ym[off]), slope);
}

// Per-thread accumulation. Forward: sums of (x - k) and (x - k)^2 with k the thread's first value (a shift
// that keeps the sums of squares free of cancellation); backward: sum g and sum g * (x - mu).
template <class A, bool BWD>
struct BnAcc {
  A k = 0, n = 0, s1 = 0, s2 = 0;
  __device__ __forceinline__ void add(A xv, A gv, A mu) {
    if constexpr (BWD) {
      s1 += gv;
      s2 += gv * (xv - mu);
    } else {
      const A d = xv - k;
      n += A(1);
      s1 += d;
      s2 += d * d;
    }
  }
  __device__ __forceinline__ Moments<A> moments() const {
    if (n == A(0)) return {A(0), A(0), A(0)};
    const A m = s1 / n;
    return {n, k + m, s2 - s1 * m > A(0) ? s2 - s1 * m : A(0)};
  }
};

// Writes one thread's (block-merged) partial: forward part[0 | 1 | 2][idx] = count, mean, M2; backward
// part[0 | 1][idx] = sum g, sum g (x - mu). `stride` is the size of one of those planes (c * J).
template <class A, bool BWD>
__device__ __forceinline__ void bn_store_partial(A* part, int64_t stride, int64_t idx, Moments<A> m, A s1,
                                                 A s2) {
  if constexpr (BWD) {
    part[idx] = s1;
    part[stride + idx] = s2;
  } else {
    part[idx] = m.n;
    part[stride + idx] = m.mean;
    part[2 * stride + idx] = m.m2;
  }
}

// The block's partial of the planes kernels: each thread's accumulator merged over its warp (shuffles),
// then the warps in order by thread 0, which stores it at idx (bn_store_partial). Called by all threads.
template <class A, bool BWD>
__device__ __forceinline__ void bn_block_partial(const BnAcc<A, BWD>& acc, A* part, int64_t stride,
                                                 int64_t idx) {
  __shared__ A sh[3][8];
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  Moments<A> m{};
  A s1 = acc.s1, s2 = acc.s2;
  if constexpr (BWD) {
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) {
      s1 += __shfl_down_sync(kFull, s1, d);
      s2 += __shfl_down_sync(kFull, s2, d);
    }
    if (lane == 0) {
      sh[0][w] = s1;
      sh[1][w] = s2;
    }
  } else {
    m = acc.moments();
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) m = merge(m, shfl_down(m, d));
    if (lane == 0) {
      sh[0][w] = m.n;
      sh[1][w] = m.mean;
      sh[2][w] = m.m2;
    }
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  if constexpr (BWD) {
    s1 = sh[0][0];
    s2 = sh[1][0];
    for (int q = 1; q < nw; ++q) {
      s1 += sh[0][q];
      s2 += sh[1][q];
    }
  } else {
    m = {sh[0][0], sh[1][0], sh[2][0]};
    for (int q = 1; q < nw; ++q) m = merge(m, Moments<A>{sh[0][q], sh[1][q], sh[2][q]});
  }
  bn_store_partial<A, BWD>(part, stride, idx, m, s1, s2);
}

// s >= 32: a 256-thread block per (channel, chunk of n); its planes are walked as one flat range.
template <class T, bool BWD>
__global__ void __launch_bounds__(256)
    bn_partial_planes(const T* __restrict__ x, const T* __restrict__ g, const T* __restrict__ ym,
                      acc_t<T> slope, Stat<T> mean, int64_t n, int64_t c, int64_t s, int64_t chunks,
                      acc_t<T>* __restrict__ part) {
  using A = acc_t<T>;
  const int64_t ch = blockIdx.x / chunks, j = blockIdx.x % chunks;
  const int64_t i0 = n * j / chunks, i1 = n * (j + 1) / chunks;
  const int64_t total = (i1 - i0) * s;
  const int B = blockDim.x;
  const int64_t di = B / s, dk = B % s;
  int64_t e = threadIdx.x, i = i0 + e / s, k = e % s;
  BnAcc<A, BWD> acc;
  const A mu = BWD ? mean.get(ch) : A(0);
  if (!BWD && e < total) acc.k = load(x[(i * c + ch) * s + k]);
  for (; e < total; e += B) {
    const int64_t off = (i * c + ch) * s + k;
    acc.add(load(x[off]), BWD ? masked_g(g, ym, slope, off) : A(0), mu);
    k += dk;
    i += di;
    if (k >= s) {
      k -= s;
      ++i;
    }
  }
  bn_block_partial<A, BWD>(acc, part, c * chunks, ch * chunks + j);
}

// bn_partial_planes with 16-byte packs: s a multiple of the pack V (and every pointer 16-byte aligned), so a
// pack never straddles two planes and all its V values are of the block's channel. Each thread walks packs
// (two at a time, so that two loads are in flight) into ONE accumulator. (The scalar kernel read 4-byte
// values: 2.1 TB/s for the f32 forward statistics of ResNet-50 on the H200.)
template <class T, bool BWD>
__device__ __forceinline__ void bn_acc_pack(BnAcc<acc_t<T>, BWD>& acc, const T* __restrict__ x,
                                            const T* __restrict__ g, const T* __restrict__ ym, acc_t<T> slope,
                                            acc_t<T> mu, int64_t off) {
  using A = acc_t<T>;
  constexpr int V = kBnPack<T>;
  A xv[V], gv[V], yv[V];
  load_pack<T, V>(x + off, xv);
  if constexpr (BWD) {
    load_pack<T, V>(g + off, gv);
    if (ym) {
      load_pack<T, V>(ym + off, yv);
#pragma unroll
      for (int e = 0; e < V; ++e) gv[e] = mask_g(gv[e], yv[e], slope);
    }
  }
#pragma unroll
  for (int e = 0; e < V; ++e) acc.add(xv[e], BWD ? gv[e] : A(0), mu);
}

template <class T, bool BWD>
__global__ void __launch_bounds__(256)
    bn_partial_planes_packed(const T* __restrict__ x, const T* __restrict__ g, const T* __restrict__ ym,
                             acc_t<T> slope, Stat<T> mean, int64_t n, int64_t c, int64_t s, int64_t chunks,
                             acc_t<T>* __restrict__ part) {
  using A = acc_t<T>;
  constexpr int V = kBnPack<T>;
  const int64_t ch = blockIdx.x / chunks, j = blockIdx.x % chunks;
  const int64_t i0 = n * j / chunks, i1 = n * (j + 1) / chunks;
  const int64_t sp = s / V;  // packs per plane
  const int64_t total = (i1 - i0) * sp;
  const int B = blockDim.x;
  const int64_t di = B / sp, dk = B % sp;
  BnAcc<A, BWD> acc;
  const A mu = BWD ? mean.get(ch) : A(0);
  // Two cursors, packs e and e + B, each advanced by 2 B: (i, k) = plane and pack within it.
  int64_t e = threadIdx.x, ia = i0 + e / sp, ka = e % sp;
  int64_t ib = ia + di, kb = ka + dk;
  if (kb >= sp) {
    kb -= sp;
    ++ib;
  }
  if (!BWD && e < total) acc.k = load(x[((ia * c + ch) * sp + ka) * V]);
  auto advance2 = [&](int64_t& i, int64_t& k) {
    i += 2 * di;
    k += 2 * dk;
    while (k >= sp) {
      k -= sp;
      ++i;
    }
  };
  for (; e + B < total; e += 2 * B) {
    bn_acc_pack<T, BWD>(acc, x, g, ym, slope, mu, ((ia * c + ch) * sp + ka) * V);
    bn_acc_pack<T, BWD>(acc, x, g, ym, slope, mu, ((ib * c + ch) * sp + kb) * V);
    advance2(ia, ka);
    advance2(ib, kb);
  }
  if (e < total) bn_acc_pack<T, BWD>(acc, x, g, ym, slope, mu, ((ia * c + ch) * sp + ka) * V);
  bn_block_partial<A, BWD>(acc, part, c * chunks, ch * chunks + j);
}

// s < 32: x as [n, Q = c * s]; block (32, 8) takes 32 columns over the rows of chunk blockIdx.y. The partial
// of column q = ch * s + k in chunk ck goes to channel ch's slot ck * s + k (J = chunks * s per channel).
template <class T, bool BWD>
__global__ void __launch_bounds__(256)
    bn_partial_columns(const T* __restrict__ x, const T* __restrict__ g, const T* __restrict__ ym,
                       acc_t<T> slope, Stat<T> mean, int64_t n, int64_t c, int64_t s, int64_t chunks,
                       acc_t<T>* __restrict__ part) {
  using A = acc_t<T>;
  __shared__ A sh[3][8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t Q = c * s;
  const int64_t q = static_cast<int64_t>(blockIdx.x) * 32 + tx;
  const int64_t ck = blockIdx.y;
  const int64_t i0 = n * ck / chunks, i1 = n * (ck + 1) / chunks;
  const bool active = q < Q;
  const int64_t ch = active ? q / s : 0;
  BnAcc<A, BWD> acc;
  if (active) {
    const A mu = BWD ? mean.get(ch) : A(0);
    if (!BWD && i0 + ty < i1) acc.k = load(x[(i0 + ty) * Q + q]);
    for (int64_t i = i0 + ty; i < i1; i += 8)
      acc.add(load(x[i * Q + q]), BWD ? masked_g(g, ym, slope, i * Q + q) : A(0), mu);
  }
  if constexpr (BWD) {
    sh[0][ty][tx] = acc.s1;
    sh[1][ty][tx] = acc.s2;
  } else {
    const Moments<A> m = acc.moments();
    sh[0][ty][tx] = m.n;
    sh[1][ty][tx] = m.mean;
    sh[2][ty][tx] = m.m2;
  }
  __syncthreads();
  if (ty != 0 || !active) return;
  const int64_t J = chunks * s;
  const int64_t idx = ch * J + ck * s + (q - ch * s);
  if constexpr (BWD) {
    A s1 = sh[0][0][tx], s2 = sh[1][0][tx];
    for (int r = 1; r < 8; ++r) {
      s1 += sh[0][r][tx];
      s2 += sh[1][r][tx];
    }
    bn_store_partial<A, BWD>(part, c * J, idx, Moments<A>{}, s1, s2);
  } else {
    Moments<A> m{sh[0][0][tx], sh[1][0][tx], sh[2][0][tx]};
    for (int r = 1; r < 8; ++r) m = merge(m, Moments<A>{sh[0][r][tx], sh[1][r][tx], sh[2][r][tx]});
    bn_store_partial<A, BWD>(part, c * J, idx, m, A(0), A(0));
  }
}

// A group of tpc threads (32, 64, 128 or 256: bn_finalize_threads) per channel, 256 / tpc channels per
// 256-thread block: the group merges the channel's J partials in f64 (thread t of the group takes
// j = t, t + tpc, ...; then the warps' shuffles and the group's warps in order: a fixed order, so the result
// does not depend on scheduling) and its first thread writes the per-channel results. Forward: the batch
// mean/biased variance (training) or the running ones (read), then
//   coef[ch] = scale = w rstd, coef[c + ch] = shift = b - mean * scale.
// Backward: dweight = sum g xhat, dbias = sum g, then coef[0|1|2|3][ch] = w rstd, kx, k0, mean with
//   dx = g w rstd - kx (x - mean) - k0.
// w, b, dweight, dbias, running_mean, running_var: Stats (f32 or T; p == nullptr when absent). Training
// forward with running statistics: running = (1 - momentum) running + momentum batch (unbiased variance),
// in double, rounded once. (One warp per channel took 16 us a call for ResNet-50's channels-last layers,
// whose packed partials give J = 1024 per channel: 0.86 ms of a bf16 step on the H200.)
int bn_finalize_threads(int64_t J) {
  int t = 32;
  while (t < 256 && int64_t(t) * 4 < J) t *= 2;
  return t;
}

template <class T, bool BWD>
__global__ void __launch_bounds__(256)
    bn_finalize(const acc_t<T>* __restrict__ part, int64_t c, int64_t J, int tpc, double count, bool training,
                bool have_sums, double eps, Stat<T> w, Stat<T> b, Stat<T> mean, Stat<T> var,
                acc_t<T>* __restrict__ coef, Stat<T> dweight, Stat<T> dbias, Stat<T> running_mean,
                Stat<T> running_var, double momentum) {
  using A = acc_t<T>;
  __shared__ double sh[3][8];
  const int gl = threadIdx.x % tpc, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t ch = static_cast<int64_t>(blockIdx.x) * (blockDim.x / tpc) + threadIdx.x / tpc;
  const int64_t stride = c * J;
  double s1 = 0, s2 = 0;  // backward sums
  Moments<double> m{0, 0, 0};
  if (have_sums && ch < c) {
    for (int64_t j = gl; j < J; j += tpc) {
      const int64_t idx = ch * J + j;
      if constexpr (BWD) {
        s1 += part[idx];
        s2 += part[stride + idx];
      } else {
        m = merge(m, Moments<double>{part[idx], part[stride + idx], part[2 * stride + idx]});
      }
    }
  }
  if (have_sums) {
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) {
      if constexpr (BWD) {
        s1 += __shfl_down_sync(kFull, s1, d);
        s2 += __shfl_down_sync(kFull, s2, d);
      } else {
        m = merge(m, shfl_down(m, d));
      }
    }
    if (tpc > 32) {  // the group's warps, merged in order by the group's first thread
      if (lane == 0) {
        sh[0][warp] = BWD ? s1 : m.n;
        sh[1][warp] = BWD ? s2 : m.mean;
        sh[2][warp] = BWD ? 0.0 : m.m2;
      }
      __syncthreads();
      if (gl == 0) {
        for (int q = 1; q < tpc / 32; ++q) {
          if constexpr (BWD) {
            s1 += sh[0][warp + q];
            s2 += sh[1][warp + q];
          } else {
            m = merge(m, Moments<double>{sh[0][warp + q], sh[1][warp + q], sh[2][warp + q]});
          }
        }
      }
    }
  }
  if (gl != 0 || ch >= c) return;
  const double wv = w.p ? static_cast<double>(w.get(ch)) : 1.0;
  if constexpr (!BWD) {
    double mu, sigma2;
    if (training) {
      mu = m.mean;
      sigma2 = m.m2 / count;
      mean.set(ch, mu);
      var.set(ch, sigma2);
      if (running_mean.p) {
        running_mean.set(ch, (1.0 - momentum) * static_cast<double>(running_mean.get(ch)) + momentum * mu);
        running_var.set(ch, (1.0 - momentum) * static_cast<double>(running_var.get(ch)) +
                                momentum * sigma2 * count / (count - 1.0));
      }
    } else {
      mu = mean.get(ch);
      sigma2 = var.get(ch);
    }
    const double sc = wv / ::sqrt(sigma2 + eps);
    coef[ch] = static_cast<A>(sc);
    coef[c + ch] = static_cast<A>((b.p ? static_cast<double>(b.get(ch)) : 0.0) - mu * sc);
  } else {
    const double mu = mean.get(ch);
    const double rs = 1.0 / ::sqrt(static_cast<double>(var.get(ch)) + eps);
    s2 *= rs;  // sum g * xhat
    if (dweight.p) dweight.set(ch, s2);
    if (dbias.p) dbias.set(ch, s1);
    const double wr = wv * rs;
    coef[ch] = static_cast<A>(wr);
    coef[c + ch] = static_cast<A>(training ? wr * rs * s2 / count : 0.0);
    coef[2 * c + ch] = static_cast<A>(training ? wr * s1 / count : 0.0);
    coef[3 * c + ch] = static_cast<A>(mu);
  }
}

// x as [n, Q = c * s]: a thread per column q (channel q / s), looping over rows i = blockIdx.y + k gridDim.y.
template <class T, bool BWD>
__global__ void __launch_bounds__(256)
    bn_apply(const T* __restrict__ x, const T* __restrict__ g, const acc_t<T>* __restrict__ coef, int64_t n,
             int64_t c, int64_t s, BnEpi<T> ep, T* __restrict__ out) {
  using A = acc_t<T>;
  const int64_t Q = c * s;
  const int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (q >= Q) return;
  const int64_t ch = q / s;
  if constexpr (BWD) {
    const A wr = coef[ch], kx = coef[c + ch], k0 = coef[2 * c + ch], mu = coef[3 * c + ch];
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
      const int64_t off = i * Q + q;
      const A gv = masked_g(g, ep.ym, ep.slope, off);
      if (ep.dres) ep.dres[off] = store<T>(gv);
      if (out) out[off] = store<T>(gv * wr - kx * (load(x[off]) - mu) - k0);
    }
  } else {
    const A sc = coef[ch], sh = coef[c + ch];
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
      const int64_t off = i * Q + q;
      A v = load(x[off]) * sc + sh;
      if (ep.res) v += load(ep.res[off]);
      if (ep.relu) v = leaky(v, ep.slope);
      out[off] = store<T>(v);
    }
  }
}

// bn_apply with 16-byte packs (c s a multiple of the pack, every pointer 16-byte aligned): x as [n, Q / V]
// packs, a thread per pack column (all V values of one channel when s is a multiple of V), looping over
// rows.
template <class T, bool BWD>
__global__ void __launch_bounds__(256)
    bn_apply_planes_packed(const T* __restrict__ x, const T* __restrict__ g,
                           const acc_t<T>* __restrict__ coef, int64_t n, int64_t c, int64_t s, BnEpi<T> ep,
                           T* __restrict__ out) {
  using A = acc_t<T>;
  constexpr int V = kBnPack<T>;
  const int64_t Qp = c * s / V;
  const int64_t qp = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (qp >= Qp) return;
  // The channel of each of the pack's columns: one for all when s is a multiple of V, else per column (a
  // pack may then straddle two planes, e.g. ResNet-50's 7 x 7 planes in f32).
  int64_t ch[V];
#pragma unroll
  for (int e = 0; e < V; ++e) ch[e] = s % V == 0 ? qp / (s / V) : (qp * V + e) / s;
  A xv[V], gv[V], tv[V];
  if constexpr (BWD) {
    A wr[V], kx[V], k0[V], mu[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      wr[e] = coef[ch[e]];
      kx[e] = coef[c + ch[e]];
      k0[e] = coef[2 * c + ch[e]];
      mu[e] = coef[3 * c + ch[e]];
    }
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
      const int64_t off = (i * Qp + qp) * V;
      load_pack<T, V>(g + off, gv);
      if (ep.ym) {
        load_pack<T, V>(ep.ym + off, tv);
#pragma unroll
        for (int e = 0; e < V; ++e) gv[e] = mask_g(gv[e], tv[e], ep.slope);
      }
      if (ep.dres) store_pack<T, V>(ep.dres + off, gv);
      if (out == nullptr) continue;
      load_pack<T, V>(x + off, xv);
#pragma unroll
      for (int e = 0; e < V; ++e) xv[e] = gv[e] * wr[e] - kx[e] * (xv[e] - mu[e]) - k0[e];
      store_pack<T, V>(out + off, xv);
    }
  } else {
    A sc[V], sh[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      sc[e] = coef[ch[e]];
      sh[e] = coef[c + ch[e]];
    }
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
      const int64_t off = (i * Qp + qp) * V;
      load_pack<T, V>(x + off, xv);
#pragma unroll
      for (int e = 0; e < V; ++e) xv[e] = xv[e] * sc[e] + sh[e];
      if (ep.res) {
        load_pack<T, V>(ep.res + off, tv);
#pragma unroll
        for (int e = 0; e < V; ++e) xv[e] += tv[e];
      }
      if (ep.relu) {
#pragma unroll
        for (int e = 0; e < V; ++e) xv[e] = leaky(xv[e], ep.slope);
      }
      store_pack<T, V>(out + off, xv);
    }
  }
}

// s == 1 (a channels-last input seen as [N H W, C], or [N, C]): flat over the n * c elements, channel
// e % c; a grid-stride loop over all elements keeps every thread busy whatever c is (the column kernel
// above would leave most of a 256-thread block idle for c = 64).
template <class T, bool BWD, class I>
__global__ void __launch_bounds__(256)
    bn_apply_flat(const T* __restrict__ x, const T* __restrict__ g, const acc_t<T>* __restrict__ coef,
                  I total, I c, BnEpi<T> ep, T* __restrict__ out) {
  using A = acc_t<T>;
  for (I e = blockIdx.x * static_cast<I>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<I>(blockDim.x) * gridDim.x) {
    const I ch = e % c;
    if constexpr (BWD) {
      const A gv = masked_g(g, ep.ym, ep.slope, e);
      if (ep.dres) ep.dres[e] = store<T>(gv);
      if (out)
        out[e] = store<T>(gv * coef[ch] - coef[c + ch] * (load(x[e]) - coef[3 * c + ch]) - coef[2 * c + ch]);
    } else {
      A v = load(x[e]) * coef[ch] + coef[c + ch];
      if (ep.res) v += load(ep.res[e]);
      if (ep.relu) v = leaky(v, ep.slope);
      out[e] = store<T>(v);
    }
  }
}

// ---- s == 1 with 16-byte packs (channels-last activations: [N H W, C] with C a multiple of the pack) ----
// The column kernel above gives a warp 32 channels of one row: 64 bytes per bf16 load, one value per thread,
// which left the channels-last batch norms of ResNet-50 behind PyTorch's. Here a thread owns a pack of V
// consecutive channels (16 bytes: 8 bf16/f16, 4 f32, 2 f64) and keeps V accumulators; the `tpr` threads of
// a row cover min(c / V, 32) packs, so a warp reads whole rows (C = 64 bf16: 8 threads per row, 4 rows per
// warp), and a block walks 256 / tpr rows at a time. Partials go to the same planes as the column kernel's
// (channel ch, chunk ck at ch * J + ck, J = chunks), so bn_finalize is shared.

template <class T, bool BWD>
__global__ void __launch_bounds__(256)
    bn_partial_rows_packed(const T* __restrict__ x, const T* __restrict__ g, const T* __restrict__ ym,
                           acc_t<T> slope, Stat<T> mean, int64_t n, int64_t c, int64_t chunks,
                           acc_t<T>* __restrict__ part) {
  using A = acc_t<T>;
  constexpr int V = kBnPack<T>;
  __shared__ A sh[BWD ? 2 : 3][256 * V];
  const int64_t packs = c / V;
  const int tpr = packs < 32 ? static_cast<int>(packs) : 32;  // threads per row
  const int rows = 256 / tpr;                                 // rows per block iteration
  const int t = threadIdx.x, r = t / tpr, pk = t % tpr;
  const int64_t pack = static_cast<int64_t>(blockIdx.x) * 32 + pk;
  const bool active = r < rows && pack < packs;
  const int64_t ck = blockIdx.y, i0 = n * ck / chunks, i1 = n * (ck + 1) / chunks;
  BnAcc<A, BWD> acc[V];
  if (active) {
    A mu[V], xv[V], gv[V], yv[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      mu[e] = BWD ? mean.get(pack * V + e) : A(0);
      gv[e] = A(0);
    }
    if (!BWD && i0 + r < i1) {
      load_pack<T, V>(x + (i0 + r) * c + pack * V, xv);
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e].k = xv[e];
    }
    // Forward: two rows an iteration, their loads issued before either is used (one load in flight per
    // warp left the forward statistics at 1.7 TB/s on the H200); the rows are still added in increasing
    // order, so the sums are those of a row-by-row loop. The backward reads 3 tensors a row and stays row by
    // row (unrolled, it took 9% longer).
    using P = Pack<T, V>;
    const int64_t col = pack * V;
    int64_t i = i0 + r;
    for (; !BWD && i + rows < i1; i += 2 * rows) {
      const P xa = *reinterpret_cast<const P*>(x + i * c + col);
      const P xb = *reinterpret_cast<const P*>(x + (i + rows) * c + col);
      P ga{}, gb{}, ya{}, yb{};
      if constexpr (BWD) {
        ga = *reinterpret_cast<const P*>(g + i * c + col);
        gb = *reinterpret_cast<const P*>(g + (i + rows) * c + col);
        if (ym) {
          ya = *reinterpret_cast<const P*>(ym + i * c + col);
          yb = *reinterpret_cast<const P*>(ym + (i + rows) * c + col);
        }
      }
#pragma unroll
      for (int e = 0; e < V; ++e) {
        A gvv = A(0);
        if constexpr (BWD) gvv = ym ? mask_g(load(ga.v[e]), load(ya.v[e]), slope) : load(ga.v[e]);
        acc[e].add(load(xa.v[e]), gvv, mu[e]);
      }
#pragma unroll
      for (int e = 0; e < V; ++e) {
        A gvv = A(0);
        if constexpr (BWD) gvv = ym ? mask_g(load(gb.v[e]), load(yb.v[e]), slope) : load(gb.v[e]);
        acc[e].add(load(xb.v[e]), gvv, mu[e]);
      }
    }
    for (; i < i1; i += rows) {  // the backward's rows (3 loads in flight already), the forward's last
      load_pack<T, V>(x + i * c + col, xv);
      if constexpr (BWD) {
        load_pack<T, V>(g + i * c + col, gv);
        if (ym) {  // the ReLU backward of batch_norm_add_relu
          load_pack<T, V>(ym + i * c + col, yv);
#pragma unroll
          for (int e = 0; e < V; ++e) gv[e] = mask_g(gv[e], yv[e], slope);
        }
      }
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e].add(xv[e], gv[e], mu[e]);
    }
  }
#pragma unroll
  for (int e = 0; e < V; ++e) {
    if constexpr (BWD) {
      sh[0][t * V + e] = acc[e].s1;
      sh[1][t * V + e] = acc[e].s2;
    } else {
      const Moments<A> m = acc[e].moments();
      sh[0][t * V + e] = m.n;
      sh[1][t * V + e] = m.mean;
      sh[2][t * V + e] = m.m2;
    }
  }
  __syncthreads();
  // Thread t merges channel e of pack column q (t = q * V + e) over the block's rows, in row order.
  const int q = t / V, e = t % V;
  const int64_t my_pack = static_cast<int64_t>(blockIdx.x) * 32 + q;
  if (q >= tpr || my_pack >= packs) return;
  const int64_t ch = my_pack * V + e, stride = c * chunks, idx = ch * chunks + ck;
  if constexpr (BWD) {
    A s1 = 0, s2 = 0;
    for (int rr = 0; rr < rows; ++rr) {
      s1 += sh[0][(rr * tpr + q) * V + e];
      s2 += sh[1][(rr * tpr + q) * V + e];
    }
    part[idx] = s1;
    part[stride + idx] = s2;
  } else {
    Moments<A> m{0, 0, 0};
    for (int rr = 0; rr < rows; ++rr) {
      const int src = (rr * tpr + q) * V + e;
      m = merge(m, Moments<A>{sh[0][src], sh[1][src], sh[2][src]});
    }
    part[idx] = m.n;
    part[stride + idx] = m.mean;
    part[2 * stride + idx] = m.m2;
  }
}

// V per-channel coefficients (acc_t values) from coef + ch0: 16-byte loads when they are f32 and the
// address allows (ch0 is a multiple of V; coef is an allocation's start plus multiples of c), else one by
// one. (Scalar loads were 4 x 8 instructions per thread for the bf16 backward apply.)
template <class A, int V>
__device__ __forceinline__ void load_coefs(const A* __restrict__ p, A* out) {
  if constexpr (std::is_same_v<A, float> && V % 4 == 0) {
    if (reinterpret_cast<uintptr_t>(p) % 16 == 0) {
#pragma unroll
      for (int e = 0; e < V; e += 4) {
        const float4 q = *reinterpret_cast<const float4*>(p + e);
        out[e] = q.x;
        out[e + 1] = q.y;
        out[e + 2] = q.z;
        out[e + 3] = q.w;
      }
      return;
    }
  }
#pragma unroll
  for (int e = 0; e < V; ++e) out[e] = p[e];
}

// The element pass of s == 1 by packs: pack p covers channels (p mod c / V) * V ... + V - 1 of one row.
template <class T, bool BWD, class I>
__global__ void __launch_bounds__(256)
    bn_apply_packed(const T* __restrict__ x, const T* __restrict__ g, const acc_t<T>* __restrict__ coef,
                    I total_packs, I row_packs, I c, BnEpi<T> ep, T* __restrict__ out) {
  using A = acc_t<T>;
  constexpr int V = kBnPack<T>;
  for (I p = blockIdx.x * static_cast<I>(blockDim.x) + threadIdx.x; p < total_packs;
       p += static_cast<I>(blockDim.x) * gridDim.x) {
    const I ch0 = (p % row_packs) * V;
    A xv[V], gv[V], tv[V];
    load_pack<T, V>(x + p * V, xv);
    if constexpr (BWD) {
      load_pack<T, V>(g + p * V, gv);
      if (ep.ym) {  // the ReLU backward: gm = g where the forward's output is positive
        load_pack<T, V>(ep.ym + p * V, tv);
#pragma unroll
        for (int e = 0; e < V; ++e) gv[e] = mask_g(gv[e], tv[e], ep.slope);
      }
      if (ep.dres) store_pack<T, V>(ep.dres + p * V, gv);
      if (out == nullptr) continue;
      A wr[V], kx[V], k0[V], mu[V];
      load_coefs<A, V>(coef + ch0, wr);
      load_coefs<A, V>(coef + c + ch0, kx);
      load_coefs<A, V>(coef + 2 * c + ch0, k0);
      load_coefs<A, V>(coef + 3 * c + ch0, mu);
#pragma unroll
      for (int e = 0; e < V; ++e) xv[e] = gv[e] * wr[e] - kx[e] * (xv[e] - mu[e]) - k0[e];
    } else {
      A sc[V], sh[V];
      load_coefs<A, V>(coef + ch0, sc);
      load_coefs<A, V>(coef + c + ch0, sh);
#pragma unroll
      for (int e = 0; e < V; ++e) xv[e] = xv[e] * sc[e] + sh[e];
      if (ep.res) {
        load_pack<T, V>(ep.res + p * V, tv);
#pragma unroll
        for (int e = 0; e < V; ++e) xv[e] += tv[e];
      }
      if (ep.relu) {
#pragma unroll
        for (int e = 0; e < V; ++e) xv[e] = leaky(xv[e], ep.slope);
      }
    }
    store_pack<T, V>(out + p * V, xv);
  }
}

// Every pointer (null ones aside) 16-byte aligned, s == 1 and C a multiple of the pack.
template <class T>
bool bn_packable(int64_t c, int64_t s, std::initializer_list<const void*> ptrs) {
  bool ok = s == 1 && c % kBnPack<T> == 0;
  for (const void* q : ptrs) ok = ok && (q == nullptr || reinterpret_cast<uintptr_t>(q) % 16 == 0);
  return ok;
}

// s > 1 a multiple of the pack and every pointer 16-byte aligned: the planes' packed kernels
// (bn_partial_planes_packed, bn_apply_planes_packed). NABLA_BN_PACKED_PLANES=0 keeps the scalar ones.
// (The apply also takes c s a multiple of the pack: bn_planes_packable<T>(c * s, ...) there.)
template <class T>
bool bn_planes_packable(int64_t s, std::initializer_list<const void*> ptrs) {
  static const bool enabled = [] {
    const char* v = std::getenv("NABLA_BN_PACKED_PLANES");
    return !(v && std::string(v) == "0");
  }();
  bool ok = enabled && s > 1 && s % kBnPack<T> == 0;
  for (const void* q : ptrs) ok = ok && (q == nullptr || reinterpret_cast<uintptr_t>(q) % 16 == 0);
  return ok;
}

// The stage-1 layout of a batch_norm reduction over [n, c, s].
struct BnPlan {
  bool planes = false, packed = false;
  int64_t chunks = 0, J = 0;  // chunks of n; partials per channel
  dim3 grid, block;
};

BnPlan plan_bn(int64_t n, int64_t c, int64_t s, int pack = 0) {
  BnPlan p;
  if (pack > 0) {  // bn_partial_rows_packed: tiles of 32 packs, about 1024 blocks, >= 4 block-rows each
    p.packed = true;
    const int64_t packs = c / pack, tiles = ceil_div(packs, 32);
    const int64_t rows = 256 / std::min<int64_t>(packs, 32);
    NABLA_CHECK(tiles <= INT32_MAX, "batch_norm: cuda grid limit: ", c, " channels");
    p.chunks = std::clamp<int64_t>(ceil_div(1024, tiles), 1,
                                   std::min<int64_t>(65535, std::max<int64_t>(1, n / (4 * rows))));
    p.J = p.chunks;
    p.grid = dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(p.chunks));
    p.block = dim3(256);
  } else if (s >= 32) {
    p.planes = true;
    // About 1024 blocks, each at least 4096 elements (or one plane).
    p.chunks = std::clamp<int64_t>(ceil_div(1024, c), 1, std::max<int64_t>(1, std::min(n, n * s / 4096)));
    p.J = p.chunks;
    NABLA_CHECK(c * p.chunks <= INT32_MAX, "batch_norm: cuda grid limit: ", c, " channels");
    p.grid = dim3(static_cast<unsigned>(c * p.chunks));
    p.block = dim3(256);
  } else {
    const int64_t tiles = ceil_div(c * s, 32);
    NABLA_CHECK(tiles <= INT32_MAX, "batch_norm: cuda grid limit: ", c, " x ", s);
    p.chunks = std::clamp<int64_t>(ceil_div(512, tiles), 1, ceil_div(n, 32));
    p.J = p.chunks * s;
    p.grid = dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(p.chunks));
    p.block = dim3(32, 8);
  }
  return p;
}

template <class T, bool BWD>
void bn_launch_apply(const T* x, const T* g, const acc_t<T>* coef, int64_t n, int64_t c, int64_t s,
                     BnEpi<T> ep, T* out) {
  if (bn_packable<T>(c, s, {x, g, out, ep.res, ep.ym, ep.dres})) {
    constexpr int V = kBnPack<T>;
    const int64_t total = n * c / V;
    const int blocks = static_cast<int>(std::min<int64_t>(ceil_div(total, 256), 65535LL * 8));
    if (total + int64_t(256) * 65535 * 8 < INT32_MAX)
      bn_apply_packed<T, BWD, int32_t><<<blocks, 256, 0, current_stream()>>>(
          x, g, coef, static_cast<int32_t>(total), static_cast<int32_t>(c / V), static_cast<int32_t>(c), ep,
          out);
    else
      bn_apply_packed<T, BWD, int64_t>
          <<<blocks, 256, 0, current_stream()>>>(x, g, coef, total, c / V, c, ep, out);
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  if (s == 1) {
    const int64_t total = n * c;
    const int blocks = static_cast<int>(std::min<int64_t>(ceil_div(total, 256), 65535LL * 8));
    if (total + int64_t(256) * 65535 * 8 < INT32_MAX)
      bn_apply_flat<T, BWD, int32_t><<<blocks, 256, 0, current_stream()>>>(
          x, g, coef, static_cast<int32_t>(total), static_cast<int32_t>(c), ep, out);
    else
      bn_apply_flat<T, BWD, int64_t><<<blocks, 256, 0, current_stream()>>>(x, g, coef, total, c, ep, out);
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  if (s > 1 && bn_planes_packable<T>(c * s, {x, g, out, ep.res, ep.ym, ep.dres})) {
    const int64_t gx = ceil_div(c * s / kBnPack<T>, 256);
    NABLA_CHECK(gx <= INT32_MAX, "batch_norm: cuda grid limit: ", c, " x ", s);
    const int64_t gy = std::clamp<int64_t>(ceil_div(4096, gx), 1, std::min<int64_t>(n, 65535));
    bn_apply_planes_packed<T, BWD>
        <<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), 256, 0, current_stream()>>>(
            x, g, coef, n, c, s, ep, out);
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  const int64_t gx = ceil_div(c * s, 256);
  NABLA_CHECK(gx <= INT32_MAX, "batch_norm: cuda grid limit: ", c, " x ", s);
  const int64_t gy = std::clamp<int64_t>(ceil_div(4096, gx), 1, std::min<int64_t>(n, 65535));
  bn_apply<T, BWD><<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), 256, 0, current_stream()>>>(
      x, g, coef, n, c, s, ep, out);
  NABLA_CUDA_LAUNCH_CHECK();
}

template <class T>
DType acc_dtype() {
  return std::is_same_v<acc_t<T>, double> ? DType::f64 : DType::f32;
}

template <class T>
void batch_norm_typed(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual,
                      bool relu, double slope, bool training, int64_t n, int64_t c, int64_t s, double eps,
                      double momentum, Tensor& mean, Tensor& var, Tensor& running_mean, Tensor& running_var,
                      Tensor& y) {
  using A = acc_t<T>;
  const T* px = ptr<T>(x);
  const Stat<T> sm = stat_of<T>(mean, "batch_norm", "mean"), sv = stat_of<T>(var, "batch_norm", "var");
  cudaStream_t st = current_stream();
  const bool have_sums = training && n * s > 0;
  BnPlan p;
  Tensor part;
  if (have_sums) {
    p = plan_bn(n, c, s, bn_packable<T>(c, s, {px}) ? kBnPack<T> : 0);
    part = Tensor::empty({3 * c * p.J}, acc_dtype<T>(), x.device());
    if (p.packed)
      bn_partial_rows_packed<T, false>
          <<<p.grid, p.block, 0, st>>>(px, nullptr, nullptr, A(0), sm, n, c, p.chunks, ptr<A>(part));
    else if (p.planes && bn_planes_packable<T>(s, {px}))
      bn_partial_planes_packed<T, false>
          <<<p.grid, p.block, 0, st>>>(px, nullptr, nullptr, A(0), sm, n, c, s, p.chunks, ptr<A>(part));
    else if (p.planes)
      bn_partial_planes<T, false>
          <<<p.grid, p.block, 0, st>>>(px, nullptr, nullptr, A(0), sm, n, c, s, p.chunks, ptr<A>(part));
    else
      bn_partial_columns<T, false>
          <<<p.grid, p.block, 0, st>>>(px, nullptr, nullptr, A(0), sm, n, c, s, p.chunks, ptr<A>(part));
    NABLA_CUDA_LAUNCH_CHECK();
  }
  Tensor coef = Tensor::empty({2 * c}, acc_dtype<T>(), x.device());
  const int ftpc = bn_finalize_threads(have_sums ? p.J : 0);
  bn_finalize<T, false><<<static_cast<unsigned>(ceil_div(c, 256 / ftpc)), 256, 0, st>>>(
      have_sums ? ptr<A>(part) : nullptr, c, p.J, ftpc, static_cast<double>(n * s), training, have_sums, eps,
      stat_or_null<T>(weight, "batch_norm", "weight"), stat_or_null<T>(bias, "batch_norm", "bias"), sm, sv,
      ptr<A>(coef), Stat<T>{nullptr, false}, Stat<T>{nullptr, false},
      stat_or_null<T>(training && have_sums ? running_mean : Tensor(), "batch_norm", "running_mean"),
      stat_or_null<T>(training && have_sums ? running_var : Tensor(), "batch_norm", "running_var"), momentum);
  NABLA_CUDA_LAUNCH_CHECK();
  BnEpi<T> ep;
  ep.res = residual.defined() ? ptr<T>(residual) : nullptr;
  ep.relu = relu;
  ep.slope = static_cast<A>(slope);
  if (n * s > 0) bn_launch_apply<T, false>(px, nullptr, ptr<A>(coef), n, c, s, ep, ptr<T>(y));
}

void batch_norm_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual,
                     bool relu, double slope, bool training, int64_t n, int64_t c, int64_t s, double eps,
                     double momentum, Tensor& mean, Tensor& var, Tensor& running_mean, Tensor& running_var,
                     Tensor& y) {
  DeviceGuard g(x.device().index);
  if (c == 0) return;
  visit_cuda_float(x.dtype(), "batch_norm", [&](auto zero) {
    batch_norm_typed<decltype(zero)>(x, weight, bias, residual, relu, slope, training, n, c, s, eps, momentum,
                                     mean, var, running_mean, running_var, y);
  });
}

template <class T>
void batch_norm_backward_typed(const Tensor& g, const Tensor& x, const Tensor& relu_out, double slope,
                               const Tensor& weight, const Tensor& mean, const Tensor& var, bool training,
                               int64_t n, int64_t c, int64_t s, double eps, Tensor& dx, Tensor& dweight,
                               Tensor& dbias, Tensor& dresidual) {
  using A = acc_t<T>;
  const T* pg = ptr<T>(g);
  const T* px = ptr<T>(x);
  const T* py = relu_out.defined() ? ptr<T>(relu_out) : nullptr;
  const A sl = static_cast<A>(slope);
  const Stat<T> sm = stat_of<T>(mean, "batch_norm", "mean"), sv = stat_of<T>(var, "batch_norm", "var");
  cudaStream_t st = current_stream();
  const bool need_sums = training || dweight.defined() || dbias.defined();
  const bool have_sums = need_sums && n * s > 0;  // with no elements the sums are 0
  BnPlan p;
  Tensor part;
  if (have_sums) {
    p = plan_bn(n, c, s, bn_packable<T>(c, s, {px, pg, py}) ? kBnPack<T> : 0);
    part = Tensor::empty({2 * c * p.J}, acc_dtype<T>(), x.device());
    if (p.packed)
      bn_partial_rows_packed<T, true>
          <<<p.grid, p.block, 0, st>>>(px, pg, py, sl, sm, n, c, p.chunks, ptr<A>(part));
    else if (p.planes && bn_planes_packable<T>(s, {px, pg, py}))
      bn_partial_planes_packed<T, true>
          <<<p.grid, p.block, 0, st>>>(px, pg, py, sl, sm, n, c, s, p.chunks, ptr<A>(part));
    else if (p.planes)
      bn_partial_planes<T, true>
          <<<p.grid, p.block, 0, st>>>(px, pg, py, sl, sm, n, c, s, p.chunks, ptr<A>(part));
    else
      bn_partial_columns<T, true>
          <<<p.grid, p.block, 0, st>>>(px, pg, py, sl, sm, n, c, s, p.chunks, ptr<A>(part));
    NABLA_CUDA_LAUNCH_CHECK();
  }
  Tensor coef = Tensor::empty({4 * c}, acc_dtype<T>(), x.device());
  const int ftpc = bn_finalize_threads(have_sums ? p.J : 0);
  bn_finalize<T, true><<<static_cast<unsigned>(ceil_div(c, 256 / ftpc)), 256, 0, st>>>(
      have_sums ? ptr<A>(part) : nullptr, c, p.J, ftpc, static_cast<double>(n * s), training, have_sums, eps,
      stat_or_null<T>(weight, "batch_norm", "weight"), Stat<T>{nullptr, false}, sm, sv, ptr<A>(coef),
      stat_or_null<T>(dweight, "batch_norm", "weight gradient"),
      stat_or_null<T>(dbias, "batch_norm", "bias gradient"), Stat<T>{nullptr, false}, Stat<T>{nullptr, false},
      0.0);
  NABLA_CUDA_LAUNCH_CHECK();
  BnEpi<T> ep;
  ep.ym = py;
  ep.slope = sl;
  ep.dres = dresidual.defined() ? ptr<T>(dresidual) : nullptr;
  if ((dx.defined() || ep.dres) && n * s > 0)
    bn_launch_apply<T, true>(px, pg, ptr<A>(coef), n, c, s, ep, dx.defined() ? ptr<T>(dx) : nullptr);
}

void batch_norm_backward_cuda(const Tensor& g, const Tensor& x, const Tensor& relu_out, double slope,
                              const Tensor& weight, const Tensor& mean, const Tensor& var, bool training,
                              int64_t n, int64_t c, int64_t s, double eps, Tensor& dx, Tensor& dweight,
                              Tensor& dbias, Tensor& dresidual) {
  DeviceGuard guard(x.device().index);
  if (c == 0) return;
  visit_cuda_float(x.dtype(), "batch_norm", [&](auto zero) {
    batch_norm_backward_typed<decltype(zero)>(g, x, relu_out, slope, weight, mean, var, training, n, c, s,
                                              eps, dx, dweight, dbias, dresidual);
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(batch_norm_kernel, cuda, batch_norm_cuda);
NABLA_REGISTER_KERNEL(batch_norm_backward_kernel, cuda, batch_norm_backward_cuda);

}  // namespace nabla::cuda
