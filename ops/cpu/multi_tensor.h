// Helpers of the CPU multi-tensor kernels (the fused optimizer steps in optim_kernels.cpp, the GSNR kernels
// in gsnr_kernels.cpp): the compute type of a storage type (bf16/f16 compute in f32), loads and stores
// through it, and the split of many tensors into chunks that one OpenMP loop runs over (so many small
// tensors cost one fork/join, and a large one is spread over every thread). The dispatch over the four
// float types is engine/dtype.h's visit_floating.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "engine/tensor.h"
#include "ops/cpu/loops.h"

namespace nabla::ops::cpu {

inline constexpr int64_t kMultiTensorChunk = 16384;

template <class T>
struct Compute {
  using type = T;
};
template <>
struct Compute<bf16> {
  using type = float;
};
template <>
struct Compute<f16> {
  using type = float;
};
template <class T>
using compute_t = typename Compute<T>::type;

template <class T>
inline compute_t<T> ld(T v) {
  if constexpr (std::is_same_v<T, bf16>)
    return from_bf16(v);
  else if constexpr (std::is_same_v<T, f16>)
    return from_f16(v);
  else
    return v;
}
template <class T>
inline T st(compute_t<T> v) {
  if constexpr (std::is_same_v<T, bf16>)
    return to_bf16(v);
  else if constexpr (std::is_same_v<T, f16>)
    return to_f16(v);
  else
    return v;
}

struct Piece {
  size_t tensor;
  int64_t begin, end;
};

// The chunks of `sizes`, in order; *total gets the sum of the sizes.
inline std::vector<Piece> pieces_of(const std::vector<int64_t>& sizes, int64_t* total) {
  std::vector<Piece> out;
  *total = 0;
  for (size_t t = 0; t < sizes.size(); ++t) {
    for (int64_t b = 0; b < sizes[t]; b += kMultiTensorChunk)
      out.push_back({t, b, std::min(sizes[t], b + kMultiTensorChunk)});
    *total += sizes[t];
  }
  return out;
}

// Runs f(piece), or f(index, piece), for every piece: one OpenMP loop over all of them when the call has
// kParallelGrain elements or more. Pieces are independent, so the split never changes a result.
template <class F>
void for_each_piece(const std::vector<Piece>& pieces, int64_t total, F&& f) {
  const int64_t np = static_cast<int64_t>(pieces.size());
#pragma omp parallel for schedule(static) if (total >= kParallelGrain)
  for (int64_t k = 0; k < np; ++k) {
    if constexpr (std::is_invocable_v<F&, int64_t, const Piece&>)
      f(k, pieces[k]);
    else
      f(pieces[k]);
  }
}

}  // namespace nabla::ops::cpu
