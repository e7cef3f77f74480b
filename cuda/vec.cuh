// Helpers of the row kernels (softmax, layer norm, cross-entropy): 16-byte vector loads and stores (a row of
// T is read as Pack<T, kVec<T>> words and converted to acc_t<T> element by element) and the online
// log-sum-exp merge.
#pragma once
#include <cmath>

#include "cuda/dtype.cuh"

namespace nabla::cuda {

// Elements per 16-byte vector load (f64 loads one at a time).
template <class T>
constexpr int kVec = std::is_same_v<T, double> ? 1 : static_cast<int>(16 / sizeof(T));

template <class A>
__device__ __forceinline__ A neg_inf() {
  return -static_cast<A>(INFINITY);
}

template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <class T, int V>
__device__ __forceinline__ void load_pack(const T* p, acc_t<T>* out) {
  if constexpr (V == 1) {
    out[0] = load(p[0]);
  } else {
    const Pack<T, V> k = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
    for (int e = 0; e < V; ++e) out[e] = load(k.v[e]);
  }
}

template <class T, int V>
__device__ __forceinline__ void store_pack(T* p, const acc_t<T>* in) {
  if constexpr (V == 1) {
    p[0] = store<T>(in[0]);
  } else {
    Pack<T, V> k;
#pragma unroll
    for (int e = 0; e < V; ++e) k.v[e] = store<T>(in[e]);
    *reinterpret_cast<Pack<T, V>*>(p) = k;
  }
}

// Online log-sum-exp: (m, s) stands for sum_i exp(x_i) = s * exp(m). Merges (m2, s2) into (m, s); a side
// that saw only -inf (or nothing) has m = -inf and adds nothing.
template <class A>
__device__ __forceinline__ void online_merge(A& m, A& s, A m2, A s2) {
  if (m2 == neg_inf<A>()) return;
  if (m == neg_inf<A>()) {
    m = m2;
    s = s2;
    return;
  }
  const A mn = m < m2 ? m2 : m;
  s = s * ::exp(m - mn) + s2 * ::exp(m2 - mn);
  m = mn;
}

}  // namespace nabla::cuda
