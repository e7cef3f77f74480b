// CUDA kernels of layer_norm (forward, backward). The maths and the slot contracts are the CPU kernels'
// (ops/nn.h, ops/cpu/layer_norm.cpp); every type computes in acc_t<T> (f32 for f32/bf16/f16, f64 for f64).
//
// Forward: x viewed as [rows, cols] runs as a row kernel (cuda/rows.cuh): exact two-pass statistics (mean,
//   then centred variance) of the row kept in registers, or mean, variance and write passes for long rows.
// Backward: dx one row per warp/block as above (two row sums: gh and gh * xhat). dweight/dbias:
//   deterministic two-stage reduction: 32-column x 16-row-thread blocks sum a fixed chunk of rows each into
//   partials[chunk, col] (fixed tree over the 16 thread rows), then one thread per column adds the chunks in
//   order. The chunk count depends only on the shape.
// mean/rstd are saved in x's dtype, or f32 for a bf16/f16 x (Stat<T>, cuda/rows.cuh).
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/rows.cuh"
#include "cuda/vec.cuh"
#include "ops/nn.h"

namespace nabla::cuda {
namespace {

template <class T, int EPL, int V, bool WARP>
__global__ void __launch_bounds__(WARP ? 32 * kWarpRowsPerBlock : kMaxBlockThreads)
    layer_norm_fwd_reg(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                       int64_t rows, int64_t cols, acc_t<T> eps, T* __restrict__ y, Stat<T> mean,
                       Stat<T> rstd) {
  using A = acc_t<T>;
  constexpr int P = EPL / V;
  __shared__ A shm[33];
  int t, G;
  int64_t row;
  if (!row_setup<WARP>(rows, t, G, row)) return;
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  A v[EPL];
  A s = 0;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k < cols) {
      load_pack<T, V>(xr + k, v + p * V);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) v[p * V + e] = A(0);
    }
#pragma unroll
    for (int e = 0; e < V; ++e) s += v[p * V + e];
  }
  const A mu = group_allreduce<WARP>(s, SumOp{}, A(0), shm) / static_cast<A>(cols);
  A sq = 0;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    if (static_cast<int64_t>(t + G * p) * V >= cols) continue;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const A d = v[p * V + e] - mu;
      sq += d * d;
    }
  }
  const A var = group_allreduce<WARP>(sq, SumOp{}, A(0), shm) / static_cast<A>(cols);
  const A rs = A(1) / ::sqrt(var + eps);
  if (t == 0) {
    mean.set(row, mu);
    rstd.set(row, rs);
  }
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k >= cols) continue;
    A wv[V], bv[V];
    if (w) load_pack<T, V>(w + k, wv);
    if (b) load_pack<T, V>(b + k, bv);
#pragma unroll
    for (int e = 0; e < V; ++e) {
      A o = (v[p * V + e] - mu) * rs;
      if (w) o *= wv[e];
      if (b) o += bv[e];
      v[p * V + e] = o;
    }
    store_pack<T, V>(yr + k, v + p * V);
  }
}

template <class T>
__global__ void __launch_bounds__(kLoopThreads)
    layer_norm_fwd_loop(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                        int64_t cols, acc_t<T> eps, T* __restrict__ y, Stat<T> mean, Stat<T> rstd) {
  using A = acc_t<T>;
  __shared__ A shm[33];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  A s = 0;
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) s += load(xr[k]);
  const A mu = group_allreduce<false>(s, SumOp{}, A(0), shm) / static_cast<A>(cols);
  A sq = 0;
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
    const A d = load(xr[k]) - mu;
    sq += d * d;
  }
  const A var = group_allreduce<false>(sq, SumOp{}, A(0), shm) / static_cast<A>(cols);
  const A rs = A(1) / ::sqrt(var + eps);
  if (threadIdx.x == 0) {
    mean.set(row, mu);
    rstd.set(row, rs);
  }
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
    A o = (load(xr[k]) - mu) * rs;
    if (w) o *= load(w[k]);
    if (b) o += load(b[k]);
    yr[k] = store<T>(o);
  }
}

// dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)),  gh = g * w,  xhat = (x - mean) * rstd.
template <class T, int EPL, int V, bool WARP>
__global__ void __launch_bounds__(WARP ? 32 * kWarpRowsPerBlock : kMaxBlockThreads)
    layer_norm_bwd_reg(const T* __restrict__ g, const T* __restrict__ x, Stat<T> mean, Stat<T> rstd,
                       const T* __restrict__ w, int64_t rows, int64_t cols, T* __restrict__ dx) {
  using A = acc_t<T>;
  constexpr int P = EPL / V;
  __shared__ A shm[33];
  int t, G;
  int64_t row;
  if (!row_setup<WARP>(rows, t, G, row)) return;
  const A mu = mean.get(row), rs = rstd.get(row);
  const T* gr = g + row * cols;
  const T* xr = x + row * cols;
  T* dr = dx + row * cols;
  A gh[EPL], xh[EPL];
  A sum_gh = 0, sum_ghx = 0;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k < cols) {
      load_pack<T, V>(gr + k, gh + p * V);
      load_pack<T, V>(xr + k, xh + p * V);
      if (w) {
        A wv[V];
        load_pack<T, V>(w + k, wv);
#pragma unroll
        for (int e = 0; e < V; ++e) gh[p * V + e] *= wv[e];
      }
#pragma unroll
      for (int e = 0; e < V; ++e) xh[p * V + e] = (xh[p * V + e] - mu) * rs;
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) gh[p * V + e] = xh[p * V + e] = A(0);
    }
#pragma unroll
    for (int e = 0; e < V; ++e) {
      sum_gh += gh[p * V + e];
      sum_ghx += gh[p * V + e] * xh[p * V + e];
    }
  }
  const A a = group_allreduce<WARP>(sum_gh, SumOp{}, A(0), shm) / static_cast<A>(cols);
  const A bb = group_allreduce<WARP>(sum_ghx, SumOp{}, A(0), shm) / static_cast<A>(cols);
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k >= cols) continue;
#pragma unroll
    for (int e = 0; e < V; ++e) gh[p * V + e] = rs * (gh[p * V + e] - a - xh[p * V + e] * bb);
    store_pack<T, V>(dr + k, gh + p * V);
  }
}

template <class T>
__global__ void __launch_bounds__(kLoopThreads)
    layer_norm_bwd_loop(const T* __restrict__ g, const T* __restrict__ x, Stat<T> mean, Stat<T> rstd,
                        const T* __restrict__ w, int64_t cols, T* __restrict__ dx) {
  using A = acc_t<T>;
  __shared__ A shm[33];
  const int64_t row = blockIdx.x;
  const A mu = mean.get(row), rs = rstd.get(row);
  const int64_t base = row * cols;
  A sum_gh = 0, sum_ghx = 0;
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
    const A gh = w ? load(g[base + k]) * load(w[k]) : load(g[base + k]);
    sum_gh += gh;
    sum_ghx += gh * (load(x[base + k]) - mu) * rs;
  }
  const A a = group_allreduce<false>(sum_gh, SumOp{}, A(0), shm) / static_cast<A>(cols);
  const A bb = group_allreduce<false>(sum_ghx, SumOp{}, A(0), shm) / static_cast<A>(cols);
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
    const A gh = w ? load(g[base + k]) * load(w[k]) : load(g[base + k]);
    const A xh = (load(x[base + k]) - mu) * rs;
    dx[base + k] = store<T>(rs * (gh - a - xh * bb));
  }
}

// Stage 1 of dweight/dbias: block (32, 16) sums columns [32 blockIdx.x, +32) over the rows of chunk
// blockIdx.y; part_w/part_b[chunk * cols + j].
template <class T>
__global__ void __launch_bounds__(512)
    layer_norm_param_partial(const T* __restrict__ g, const T* __restrict__ x, Stat<T> mean, Stat<T> rstd,
                             int64_t rows, int64_t cols, int64_t chunks, acc_t<T>* __restrict__ part_w,
                             acc_t<T>* __restrict__ part_b) {
  using A = acc_t<T>;
  __shared__ A sw[16][33], sb[16][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * 32 + tx;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = rows * chunk / chunks, r1 = rows * (chunk + 1) / chunks;
  A aw = 0, ab = 0;
  if (j < cols)
    for (int64_t row = r0 + ty; row < r1; row += 16) {
      const A gv = load(g[row * cols + j]);
      aw += gv * ((load(x[row * cols + j]) - mean.get(row)) * rstd.get(row));
      ab += gv;
    }
  sw[ty][tx] = aw;
  sb[ty][tx] = ab;
  __syncthreads();
  for (int st = 8; st > 0; st >>= 1) {
    if (ty < st) {
      sw[ty][tx] += sw[ty + st][tx];
      sb[ty][tx] += sb[ty + st][tx];
    }
    __syncthreads();
  }
  if (ty == 0 && j < cols) {
    part_w[chunk * cols + j] = sw[0][tx];
    part_b[chunk * cols + j] = sb[0][tx];
  }
}

// Stage 2: one thread per column adds the chunks in order.
template <class T>
__global__ void layer_norm_param_final(const acc_t<T>* __restrict__ part_w,
                                       const acc_t<T>* __restrict__ part_b, int64_t cols, int64_t chunks,
                                       T* __restrict__ dw, T* __restrict__ db) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  double aw = 0, ab = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    aw += part_w[c * cols + j];
    ab += part_b[c * cols + j];
  }
  if (dw) dw[j] = store<T>(aw);
  if (db) db[j] = store<T>(ab);
}

template <class T>
void layer_norm_typed(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t rows, int64_t cols,
                      double eps, Tensor& y, Tensor& mean, Tensor& rstd) {
  using A = acc_t<T>;
  const T* px = ptr<T>(x);
  const T* pw = ptr_or_null<T>(weight);
  const T* pb = ptr_or_null<T>(bias);
  T* py = ptr<T>(y);
  const Stat<T> sm = stat_of<T>(mean, "layer_norm", "mean"), sr = stat_of<T>(rstd, "layer_norm", "rstd");
  const A e = static_cast<A>(eps);
  cudaStream_t st = current_stream();
  const bool aligned = aligned16(px) && aligned16(py) && (!pw || aligned16(pw)) && (!pb || aligned16(pb));
  const RowPlan p = plan_rows(rows, cols, kVec<T>, aligned);
  if (p.reg) {
    dispatch_reg<T>(p, [&]<int E, int V, bool W>() {
      layer_norm_fwd_reg<T, E, V, W>
          <<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(px, pw, pb, rows, cols, e, py, sm, sr);
    });
  } else {
    layer_norm_fwd_loop<T>
        <<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(px, pw, pb, cols, e, py, sm, sr);
  }
  NABLA_CUDA_LAUNCH_CHECK();
}

void layer_norm_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t rows, int64_t cols,
                     double eps, Tensor& y, Tensor& mean, Tensor& rstd) {
  DeviceGuard g(x.device().index);
  if (rows == 0) return;
  if (cols == 0) {  // the CPU kernel's statistics of an empty row
    mean.fill_(0.0);
    rstd.fill_(1.0 / std::sqrt(eps));
    return;
  }
  visit_cuda_float(x.dtype(), "layer_norm", [&](auto zero) {
    layer_norm_typed<decltype(zero)>(x, weight, bias, rows, cols, eps, y, mean, rstd);
  });
}

template <class T>
void layer_norm_backward_typed(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                               const Tensor& weight, int64_t rows, int64_t cols, Tensor& dx, Tensor& dweight,
                               Tensor& dbias) {
  using A = acc_t<T>;
  const T* pg = ptr<T>(g);
  const T* px = ptr<T>(x);
  const T* pw = ptr_or_null<T>(weight);
  const Stat<T> sm = stat_of<T>(mean, "layer_norm", "mean"), sr = stat_of<T>(rstd, "layer_norm", "rstd");
  cudaStream_t st = current_stream();
  if (dx.defined()) {
    T* pd = ptr<T>(dx);
    const bool aligned = aligned16(pg) && aligned16(px) && aligned16(pd) && (!pw || aligned16(pw));
    const RowPlan p = plan_rows(rows, cols, kVec<T>, aligned);
    if (p.reg) {
      dispatch_reg<T>(p, [&]<int E, int V, bool W>() {
        layer_norm_bwd_reg<T, E, V, W>
            <<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(pg, px, sm, sr, pw, rows, cols, pd);
      });
    } else {
      layer_norm_bwd_loop<T>
          <<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(pg, px, sm, sr, pw, cols, pd);
    }
    NABLA_CUDA_LAUNCH_CHECK();
  }
  if (!dweight.defined() && !dbias.defined()) return;
  // Row chunks: about 1024 blocks of 32 columns, at least 16 rows a chunk; fixed by the shape alone.
  const int64_t tiles = ceil_div(cols, 32);
  const int64_t chunks = std::clamp<int64_t>(ceil_div(1024, tiles), 1, ceil_div(rows, 16));
  NABLA_CHECK(tiles <= INT32_MAX, "layer_norm: cuda grid limit: ", cols, " columns");
  Tensor part =
      Tensor::empty({2 * chunks * cols}, std::is_same_v<A, double> ? DType::f64 : DType::f32, x.device());
  A* pw_part = ptr<A>(part);
  A* pb_part = pw_part + chunks * cols;
  layer_norm_param_partial<T>
      <<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(chunks)), dim3(32, 16), 0, st>>>(
          pg, px, sm, sr, rows, cols, chunks, pw_part, pb_part);
  NABLA_CUDA_LAUNCH_CHECK();
  layer_norm_param_final<T><<<static_cast<unsigned>(ceil_div(cols, 256)), 256, 0, st>>>(
      pw_part, pb_part, cols, chunks, dweight.defined() ? ptr<T>(dweight) : nullptr,
      dbias.defined() ? ptr<T>(dbias) : nullptr);
  NABLA_CUDA_LAUNCH_CHECK();
}

void layer_norm_backward_cuda(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                              const Tensor& weight, int64_t rows, int64_t cols, Tensor& dx, Tensor& dweight,
                              Tensor& dbias) {
  DeviceGuard guard(x.device().index);
  if (cols == 0) return;
  if (rows == 0) {  // sums over no rows
    if (dweight.defined()) dweight.fill_(0.0);
    if (dbias.defined()) dbias.fill_(0.0);
    return;
  }
  visit_cuda_float(x.dtype(), "layer_norm", [&](auto zero) {
    layer_norm_backward_typed<decltype(zero)>(g, x, mean, rstd, weight, rows, cols, dx, dweight, dbias);
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(layer_norm_kernel, cuda, layer_norm_cuda);
NABLA_REGISTER_KERNEL(layer_norm_backward_kernel, cuda, layer_norm_backward_cuda);

}  // namespace nabla::cuda
