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

}  // namespace

NABLA_REGISTER_KERNEL(embedding_bag_kernel, cuda, embedding_bag_cuda);
NABLA_REGISTER_KERNEL(embedding_bag_backward_kernel, cuda, embedding_bag_backward_cuda);

}  // namespace nabla::cuda
