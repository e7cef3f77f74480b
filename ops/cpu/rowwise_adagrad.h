// The row update of row-wise Adagrad, shared by the CPU kernels of embedding_bag and multi_embedding_bag
// (ops/cpu/embedding.cpp, ops/cpu/multi_embedding.cpp): given G, the row's summed gradient (D columns),
//   state += mean(G^2);   w -= lr / (sqrt(state) + eps) * G
// (TorchRec's EXACT_ROWWISE_ADAGRAD, the reference's rwsadagrad).
#pragma once
#include <cmath>
#include <cstdint>

namespace nabla::ops::cpu {

template <class T>
inline void rowwise_adagrad_row(const T* G, int64_t D, T lr, T eps, T& state, T* w) {
  T sq = T(0);
  for (int64_t c = 0; c < D; ++c) sq += G[c] * G[c];
  state += sq / static_cast<T>(D);
  const T step = lr / (std::sqrt(state) + eps);
  for (int64_t c = 0; c < D; ++c) w[c] -= step * G[c];
}

}  // namespace nabla::ops::cpu
