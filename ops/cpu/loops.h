// Strided loops for CPU kernels.
//
// strided_for_each(shape, {strides of t0, strides of t1, ...}, f) calls f(offsets) once per element of
// `shape` in row-major order, where offsets[k] is the element's offset (in elements) inside tensor k.
// Broadcast inputs pass stride 0 along broadcast dims. The range is split across OpenMP threads; each
// thread walks its chunk with an odometer, so the cost per element is a few adds.
// When every tensor is contiguous the loop is a flat `for` the compiler vectorises.
#pragma once
#include <omp.h>

#include <array>
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace nabla::ops::cpu {

// Below this many elements a loop runs on one thread: waking threads costs more than it saves.
inline constexpr int64_t kParallelGrain = 32768;

template <size_t N, class F>
void strided_for_each(const Shape& shape, const std::array<const Strides*, N>& strides, F&& f) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const int64_t nd = static_cast<int64_t>(shape.size());
  bool all_contig = true;
  const Strides cs = contiguous_strides(shape);
  for (size_t k = 0; k < N; ++k)
    for (int64_t d = 0; d < nd; ++d)
      if (shape[d] != 1 && (*strides[k])[d] != cs[d]) all_contig = false;
  if (all_contig) {
#pragma omp parallel for if (n >= kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      std::array<int64_t, N> off;
      off.fill(i);
      f(off);
    }
    return;
  }
  const int nthreads = n >= kParallelGrain ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(nthreads)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = n * tid / nt, end = n * (tid + 1) / nt;
    if (begin < end) {
      std::vector<int64_t> idx(nd);
      std::array<int64_t, N> off{};
      int64_t rem = begin;
      for (int64_t d = nd - 1; d >= 0; --d) {
        idx[d] = rem % shape[d];
        rem /= shape[d];
        for (size_t k = 0; k < N; ++k) off[k] += idx[d] * (*strides[k])[d];
      }
      for (int64_t i = begin; i < end; ++i) {
        f(off);
        for (int64_t d = nd - 1; d >= 0; --d) {
          for (size_t k = 0; k < N; ++k) off[k] += (*strides[k])[d];
          if (++idx[d] < shape[d]) break;
          for (size_t k = 0; k < N; ++k) off[k] -= shape[d] * (*strides[k])[d];
          idx[d] = 0;
        }
      }
    }
  }
}

// Typed base pointer of a tensor's first element.
template <class T>
inline T* base(const Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

}  // namespace nabla::ops::cpu
