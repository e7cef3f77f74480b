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
// with the stable device radix sort of cuda/sort.h, and the first slot of each run of equal rows owns
// dW[v, :] and adds the run in increasing l: the CPU kernel's order (its counting sort). One thread per
// (sorted slot, column), flat over [L, D], so the g rows are read coalesced; slots that do not start a run
// exit at once. The mean scale is computed as the CPU does (1.0 / |bag| in double, rounded to the type).
//
// Row-wise Adagrad (embedding_bag_sparse_rowwise_adagrad_): the same sort; then one warp per sorted slot,
// and the first slot of each run owns row v: each lane sums G_v[c] over the run for its columns c = lane +
// 32 k (in increasing l, f32 for 16-bit types), keeping up to kRowCache of them in registers (wider rows
// are summed again in the second pass), the squares are reduced across the warp by a butterfly (the same
// order every run: deterministic), and the lanes update state[v] (lane 0) and W[v, :].
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

template <class T>
__global__ void embedding_bag_backward_runs(const T* __restrict__ g, const int64_t* __restrict__ skey,
                                            const int32_t* __restrict__ spos, const int64_t* __restrict__ bag,
                                            const int64_t* __restrict__ off, int64_t B, int64_t L, int64_t D,
                                            bool mean, const T* __restrict__ psw, double scale,
                                            T* __restrict__ dw) {
  using A = acc_t<T>;
  const int64_t total = L * D;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = e % D, j = e / D;
    const int64_t v = skey[j];
    if (j > 0 && skey[j - 1] == v) continue;  // not the first of its run
    T* d = dw + v * D + c;
    A acc = load(*d);
    for (int64_t p = j; p < L && skey[p] == v; ++p) {
      const int64_t l = spos[p], b = bag[l];
      double sd = scale;
      if (mean) sd = 1.0 / static_cast<double>(bag_end(off, b, B, L) - off[b]) * scale;
      A s = static_cast<A>(sd);
      if (psw) s *= load(psw[l]);
      acc += s * load(g[b * D + c]);
    }
    *d = store<T>(acc);
  }
}

constexpr int kRowCache = 8;  // columns a lane keeps in registers: rows up to 256 wide are summed once

template <class T>
__global__ void embedding_bag_rowwise_adagrad_runs(const T* __restrict__ g, const int64_t* __restrict__ skey,
                                                   const int32_t* __restrict__ spos,
                                                   const int64_t* __restrict__ bag,
                                                   const int64_t* __restrict__ off, int64_t B, int64_t L,
                                                   int64_t D, bool mean, const T* __restrict__ psw, double lr,
                                                   double eps, T* __restrict__ w, T* __restrict__ state) {
  using A = acc_t<T>;
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t j = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; j < L; j += warps) {
    const int64_t v = skey[j];
    if (j > 0 && skey[j - 1] == v) continue;  // not the first of its run (uniform over the warp)
    auto run_sum = [&](int64_t c) {
      A acc = A(0);
      for (int64_t p = j; p < L && skey[p] == v; ++p) {
        const int64_t l = spos[p], b = bag[l];
        double sd = 1.0;
        if (mean) sd = 1.0 / static_cast<double>(bag_end(off, b, B, L) - off[b]);
        A s = static_cast<A>(sd);
        if (psw) s *= load(psw[l]);
        acc += s * load(g[b * D + c]);
      }
      return acc;
    };
    A cache[kRowCache];
    A sq = A(0);
#pragma unroll
    for (int k = 0; k < kRowCache; ++k) {
      const int64_t c = k * 32 + lane;
      cache[k] = c < D ? run_sum(c) : A(0);
      sq += cache[k] * cache[k];
    }
    for (int64_t c = kRowCache * 32 + lane; c < D; c += 32) {
      const A a = run_sum(c);
      sq += a * a;
    }
    for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    const A sum = load(state[v]) + sq / static_cast<A>(D);
    const A step = static_cast<A>(lr) / (sqrt(sum) + static_cast<A>(eps));
    __syncwarp();
    if (lane == 0) state[v] = store<T>(sum);
    T* row = w + v * D;
#pragma unroll
    for (int k = 0; k < kRowCache; ++k) {
      const int64_t c = k * 32 + lane;
      if (c < D) row[c] = store<T>(load(row[c]) - step * cache[k]);
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
  embedding_bag_backward_runs<T><<<grid_for(L * D), kBlock, 0, current_stream()>>>(
      ptr<T>(grad), ptr<int64_t>(s.keys), ptr<int32_t>(s.positions), ptr<int64_t>(bag), ptr<int64_t>(offsets),
      B, L, D, mean, psw.defined() ? ptr<T>(psw) : nullptr, scale, ptr<T>(dweight));
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
  visit_cuda_float(weight.dtype(), "embedding_bag rowwise adagrad", [&](auto zero) {
    using T = decltype(zero);
    embedding_bag_rowwise_adagrad_runs<T><<<grid_for(L * 32), kBlock, 0, current_stream()>>>(
        ptr<T>(grad), ptr<int64_t>(s.keys), ptr<int32_t>(s.positions), ptr<int64_t>(bag),
        ptr<int64_t>(offsets), B, L, D, mode == BagMode::mean, psw.defined() ? ptr<T>(psw) : nullptr, lr, eps,
        ptr<T>(weight), ptr<T>(state));
    NABLA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(embedding_bag_kernel, cuda, embedding_bag_cuda);
NABLA_REGISTER_KERNEL(embedding_bag_backward_kernel, cuda, embedding_bag_backward_cuda);
NABLA_REGISTER_KERNEL(embedding_bag_rowwise_adagrad_kernel, cuda, embedding_bag_rowwise_adagrad_cuda);

}  // namespace nabla::cuda
