// CUDA kernels of embedding_bag (ops/embedding.h); plain embedding runs on the index family's
// index_select / index_add kernels (cuda/index.cu).
//
//   forward   out[b, :] = s_b * sum_{l in bag b} p_l W[idx[l], :],   s_b = 1 / |bag b| (mean) or 1 (sum),
//             p_l = per_sample_weights[l] (1 without); bag b = [offsets[b], offsets[b + 1]) (the last to L);
//             an empty bag gives zeros.
//   backward  dW[v, :] += scale * sum_{l : idx[l] = v} s_bag(l) p_l g[bag(l), :]
//             (scale 1 for the backward; -lr for the sparse SGD of ops/embedding.h, dW being the weight)
//
// Forward: one thread per output element (b, c), flat over [B, D]: consecutive threads read consecutive
// columns of one weight row (coalesced) and each sums its bag serially in increasing l, in f32 for the
// 16-bit types (f64 for f64), then scales once by 1 / |bag| as the CPU does.
//
// Backward, deterministic without atomics: bag(l) is found for every position by a binary search of the
// offsets (the last bag starting at or before l, which skips empty bags); positions are grouped by row v
// with the stable device radix sort of cuda/sort.h and the runs of equal rows found by runs_of_sorted_keys;
// one warp per run owns dW[v, :]: its lanes split the columns and, for rows narrower than 32, the run's
// positions (a run can be thousands long: a table of 3 rows), each lane summing its positions in increasing
// l and a fixed xor butterfly adding the lanes' sums (deterministic; not bit-equal to the CPU's sequential
// order). The mean scale is computed as the CPU does (1.0 / |bag| in double, rounded to the type).
//
// Row-wise Adagrad (embedding_bag_sparse_rowwise_adagrad_): the same sort and runs; one warp per run owns
// row v: lanes over columns (up to kRowCache a lane, in registers; wider rows are summed again in the
// second pass) and positions, G_v summed in f32 for 16-bit types, the squares reduced across the warp by a
// butterfly (the same order every run: deterministic), and the lanes update state[v] (lane 0) and W[v, :].
#include <bit>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/sort.h"
#include "ops/embedding.h"

namespace nabla::cuda {
namespace {

__device__ __forceinline__ int64_t bag_end(const int64_t* off, int64_t b, int64_t B, int64_t L) {
  return b + 1 < B ? off[b + 1] : L;
}

template <class T>
__global__ void embedding_bag_forward(const T* __restrict__ w, const int64_t* __restrict__ idx,
                                      const int64_t* __restrict__ off, int64_t B, int64_t L, int64_t D,
                                      bool mean, const T* __restrict__ psw, T* __restrict__ out) {
  using A = acc_t<T>;
  const int64_t total = B * D;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = e % D, b = e / D;
    const int64_t begin = off[b], end = bag_end(off, b, B, L);
    A acc = A(0);
    if (psw)
      for (int64_t l = begin; l < end; ++l) acc += load(psw[l]) * load(w[idx[l] * D + c]);
    else
      for (int64_t l = begin; l < end; ++l) acc += load(w[idx[l] * D + c]);
    if (mean && end > begin) acc *= A(1) / static_cast<A>(end - begin);
    out[e] = store<T>(acc);
  }
}

// bag[l] = the last b with off[b] <= l (offsets start at 0 and do not decrease).
__global__ void bag_of_positions(const int64_t* __restrict__ off, int64_t B, int64_t L,
                                 int64_t* __restrict__ bag) {
  for (int64_t l = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; l < L;
       l += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t lo = 0, hi = B;  // first b with off[b] > l, in [lo, hi]
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (off[mid] <= l)
        lo = mid + 1;
      else
        hi = mid;
    }
    bag[l] = lo - 1;
  }
}

// The factor of position l: scale * s_bag(l) * p_l, computed as the CPU does (1.0 / |bag| in double).
template <class T>
__device__ __forceinline__ acc_t<T> position_scale(int64_t l, const int64_t* __restrict__ bag,
                                                   const int64_t* __restrict__ off, int64_t B, int64_t L,
                                                   bool mean, const T* __restrict__ psw, double scale,
                                                   int64_t* b_out) {
  const int64_t b = bag[l];
  *b_out = b;
  double sd = scale;
  if (mean) sd = 1.0 / static_cast<double>(bag_end(off, b, B, L) - off[b]) * scale;
  acc_t<T> s = static_cast<acc_t<T>>(sd);
  if (psw) s *= load(psw[l]);
  return s;
}

// One warp per run (runs_of_sorted_keys): lane = (ps, cl), cl < gp over columns (tiles of gp), ps < P = 32 /
// gp over the run's positions; lane partial sums in increasing position, added by a fixed xor butterfly.
template <class T>
__global__ void embedding_bag_backward_runs(const T* __restrict__ g, const int64_t* __restrict__ skey,
                                            const int32_t* __restrict__ spos,
                                            const int32_t* __restrict__ starts,
                                            const int32_t* __restrict__ nruns,
                                            const int64_t* __restrict__ bag, const int64_t* __restrict__ off,
                                            int64_t B, int64_t L, int64_t D, bool mean,
                                            const T* __restrict__ psw, double scale, T* __restrict__ dw) {
  using A = acc_t<T>;
  const int lane = threadIdx.x & 31;
  const int gp = lanes_per_position(D), P = 32 / gp, ps = lane / gp, cl = lane % gp;
  const int32_t R = nruns[0];
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; r < R; r += warps) {
    const int32_t j0 = starts[r], j1 = starts[r + 1];
    T* row = dw + skey[j0] * D;
    for (int64_t c0 = 0; c0 < D; c0 += gp) {  // uniform over the warp
      const int64_t c = c0 + cl;
      A acc = A(0);
      if (c < D)
        for (int32_t p = j0 + ps; p < j1; p += P) {
          int64_t b;
          const A s = position_scale<T>(spos[p], bag, off, B, L, mean, psw, scale, &b);
          acc += s * load(g[b * D + c]);
        }
      for (int o = gp; o < 32; o <<= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
      if (ps == 0 && c < D) row[c] = store<T>(load(row[c]) + acc);
    }
  }
}

constexpr int kRowCache = 8;  // columns a lane keeps in registers: rows up to 256 wide are summed once

// Row-wise Adagrad, one warp per run: lanes (ps, cl) with gp = the smallest power of two >= D / kRowCache
// lanes over columns (cl + k gp, k < kRowCache, in registers) and P = 32 / gp over positions.
template <class T>
__global__ void embedding_bag_rowwise_adagrad_runs(
    const T* __restrict__ g, const int64_t* __restrict__ skey, const int32_t* __restrict__ spos,
    const int32_t* __restrict__ starts, const int32_t* __restrict__ nruns, const int64_t* __restrict__ bag,
    const int64_t* __restrict__ off, int64_t B, int64_t L, int64_t D, bool mean, const T* __restrict__ psw,
    double lr, double eps, T* __restrict__ w, T* __restrict__ state) {
  using A = acc_t<T>;
  const int lane = threadIdx.x & 31;
  const int gp = lanes_per_position((D + kRowCache - 1) / kRowCache), P = 32 / gp, ps = lane / gp,
            cl = lane % gp;
  const int32_t R = nruns[0];
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; r < R; r += warps) {
    const int32_t j0 = starts[r], j1 = starts[r + 1];
    const int64_t v = skey[j0];
    A cache[kRowCache];
#pragma unroll
    for (int k = 0; k < kRowCache; ++k) cache[k] = A(0);
    for (int32_t p = j0 + ps; p < j1; p += P) {
      int64_t b;
      const A s = position_scale<T>(spos[p], bag, off, B, L, mean, psw, 1.0, &b);
#pragma unroll
      for (int k = 0; k < kRowCache; ++k) {
        const int64_t c = k * gp + cl;
        if (c < D) cache[k] += s * load(g[b * D + c]);
      }
    }
    A sq = A(0);
#pragma unroll
    for (int k = 0; k < kRowCache; ++k) {
      for (int o = gp; o < 32; o <<= 1) cache[k] += __shfl_xor_sync(0xffffffffu, cache[k], o);
      sq += cache[k] * cache[k];  // zero for columns past D
    }
    // Rows wider than kRowCache * 32 (gp = 32, P = 1): the remaining columns' run sums, summed twice.
    auto run_sum = [&](int64_t c) {
      A acc = A(0);
      for (int32_t p = j0; p < j1; ++p) {
        int64_t b;
        const A s = position_scale<T>(spos[p], bag, off, B, L, mean, psw, 1.0, &b);
        acc += s * load(g[b * D + c]);
      }
      return acc;
    };
    for (int64_t c = kRowCache * 32 + lane; c < D; c += 32) {
      const A a = run_sum(c);
      sq += a * a;
    }
    for (int o = 1; o < gp; o <<= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    const A sum = load(state[v]) + sq / static_cast<A>(D);
    const A step = static_cast<A>(lr) / (sqrt(sum) + static_cast<A>(eps));
    __syncwarp();
    if (lane == 0) state[v] = store<T>(sum);
    T* row = w + v * D;
    if (ps == 0) {
#pragma unroll
      for (int k = 0; k < kRowCache; ++k) {
        const int64_t c = k * gp + cl;
        if (c < D) row[c] = store<T>(load(row[c]) - step * cache[k]);
      }
    }
    for (int64_t c = kRowCache * 32 + lane; c < D; c += 32)
      row[c] = store<T>(load(row[c]) - step * run_sum(c));
  }
}

template <class T>
void forward_typed(const Tensor& weight, const Tensor& indices, const Tensor& offsets, bool mean,
                   const Tensor& psw, Tensor& out) {
  const int64_t D = weight.shape()[1], L = indices.numel(), B = offsets.numel();
  embedding_bag_forward<T><<<grid_for(B * D), kBlock, 0, current_stream()>>>(
      ptr<T>(weight), ptr<int64_t>(indices), ptr<int64_t>(offsets), B, L, D, mean,
      psw.defined() ? ptr<T>(psw) : nullptr, ptr<T>(out));
  NABLA_CUDA_LAUNCH_CHECK();
}

void embedding_bag_cuda(const Tensor& weight, const Tensor& indices, const Tensor& offsets, BagMode mode,
                        const Tensor& psw, Tensor& out) {
  DeviceGuard g(weight.device().index);
  if (out.numel() == 0) return;
  visit_cuda_float(weight.dtype(), "embedding_bag", [&](auto zero) {
    forward_typed<decltype(zero)>(weight, indices, offsets, mode == BagMode::mean, psw, out);
  });
}

template <class T>
void backward_typed(const Tensor& grad, const SortedByKey& s, const Tensor& bag, const Tensor& offsets,
                    bool mean, const Tensor& psw, double scale, int64_t L, Tensor& dweight) {
  const int64_t D = dweight.shape()[1], B = offsets.numel();
  const SortedRuns runs = runs_of_sorted_keys(ptr<int64_t>(s.keys), L, -1, dweight.device());
  embedding_bag_backward_runs<T><<<grid_for(L * 32), kBlock, 0, current_stream()>>>(
      ptr<T>(grad), ptr<int64_t>(s.keys), ptr<int32_t>(s.positions), ptr<int32_t>(runs.starts),
      ptr<int32_t>(runs.count), ptr<int64_t>(bag), ptr<int64_t>(offsets), B, L, D, mean,
      psw.defined() ? ptr<T>(psw) : nullptr, scale, ptr<T>(dweight));
  NABLA_CUDA_LAUNCH_CHECK();
}

void embedding_bag_backward_cuda(const Tensor& grad, const Tensor& indices, const Tensor& offsets,
                                 BagMode mode, const Tensor& psw, double scale, Tensor& dweight) {
  DeviceGuard g(dweight.device().index);
  const int64_t V = dweight.shape()[0], D = dweight.shape()[1], L = indices.numel(), B = offsets.numel();
  if (L == 0 || D == 0) return;
  Tensor bag = Tensor::empty({L}, DType::i64, dweight.device());
  bag_of_positions<<<grid_for(L), kBlock, 0, current_stream()>>>(ptr<int64_t>(offsets), B, L,
                                                                 ptr<int64_t>(bag));
  NABLA_CUDA_LAUNCH_CHECK();
  const SortedByKey s =
      sort_positions_by_key(ptr<int64_t>(indices), L,
                            static_cast<int>(std::bit_width(static_cast<uint64_t>(V - 1))), dweight.device());
  visit_cuda_float(dweight.dtype(), "embedding_bag backward", [&](auto zero) {
    backward_typed<decltype(zero)>(grad, s, bag, offsets, mode == BagMode::mean, psw, scale, L, dweight);
  });
}

void embedding_bag_rowwise_adagrad_cuda(const Tensor& grad, const Tensor& indices, const Tensor& offsets,
                                        BagMode mode, const Tensor& psw, double lr, double eps,
                                        Tensor& weight, Tensor& state) {
  DeviceGuard g(weight.device().index);
  const int64_t V = weight.shape()[0], D = weight.shape()[1], L = indices.numel(), B = offsets.numel();
  if (L == 0 || D == 0) return;
  NABLA_CHECK(L < (int64_t{1} << 31), "embedding_bag_sparse_rowwise_adagrad_: ", L,
              " indices, at most 2^31 - 1 on cuda");
  Tensor bag = Tensor::empty({L}, DType::i64, weight.device());
  bag_of_positions<<<grid_for(L), kBlock, 0, current_stream()>>>(ptr<int64_t>(offsets), B, L,
                                                                 ptr<int64_t>(bag));
  NABLA_CUDA_LAUNCH_CHECK();
  const SortedByKey s =
      sort_positions_by_key(ptr<int64_t>(indices), L,
                            static_cast<int>(std::bit_width(static_cast<uint64_t>(V - 1))), weight.device());
  const SortedRuns runs = runs_of_sorted_keys(ptr<int64_t>(s.keys), L, -1, weight.device());
  visit_cuda_float(weight.dtype(), "embedding_bag rowwise adagrad", [&](auto zero) {
    using T = decltype(zero);
    embedding_bag_rowwise_adagrad_runs<T><<<grid_for(L * 32), kBlock, 0, current_stream()>>>(
        ptr<T>(grad), ptr<int64_t>(s.keys), ptr<int32_t>(s.positions), ptr<int32_t>(runs.starts),
        ptr<int32_t>(runs.count), ptr<int64_t>(bag), ptr<int64_t>(offsets), B, L, D, mode == BagMode::mean,
        psw.defined() ? ptr<T>(psw) : nullptr, lr, eps, ptr<T>(weight), ptr<T>(state));
    NABLA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(embedding_bag_kernel, cuda, embedding_bag_cuda);
NABLA_REGISTER_KERNEL(embedding_bag_backward_kernel, cuda, embedding_bag_backward_cuda);
NABLA_REGISTER_KERNEL(embedding_bag_rowwise_adagrad_kernel, cuda, embedding_bag_rowwise_adagrad_cuda);

}  // namespace nabla::cuda
