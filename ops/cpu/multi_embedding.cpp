// CPU kernels of multi_embedding_bag (ops/multi_embedding.h): F tables, fixed bags of n ids.
//
//   forward   out[b, f, :] = s * sum_{k < n} W_f[ids[b, f, k], :]        s = 1 (sum) or 1 / n (mean)
//   backward  dst_f[v, :] += scale * s * sum_{(b, k) : ids[b, f, k] = v} g[b, f, :]
//             (scale 1 into zeroed gradients; -lr into the tables themselves for the sparse SGD)
// The ids were checked by the op layer. Forward: one (b, f) bag per task. Backward: one table per task,
// walking b (then k) in increasing order, so every row's sum has the order of the CUDA kernel (which sorts
// the positions stably by row): deterministic, and no two tasks write one table.
#include <algorithm>
#include <vector>

#include "ops/cpu/loops.h"
#include "ops/multi_embedding.h"

namespace nabla::ops::cpu {
namespace {

void multi_embedding_bag_cpu(const std::vector<Tensor>& tables, const Tensor& ids, BagMode mode,
                             uint32_t /*check_id*/, Tensor& out) {
  const int64_t B = ids.shape()[0], F = ids.shape()[1], n = ids.shape()[2], D = out.shape()[2];
  const int64_t so = out.stride(0), sf = out.stride(1);
  const int64_t* pi = base<int64_t>(ids);
  visit_float(out.dtype(), "multi_embedding_bag", [&](auto zero) {
    using T = decltype(zero);
    std::vector<const T*> pw(F);
    for (int64_t f = 0; f < F; ++f) pw[f] = base<T>(tables[f]);
    T* po = base<T>(out);
    const T s = mode == BagMode::mean ? static_cast<T>(1.0 / static_cast<double>(n)) : T(1);
#pragma omp parallel for if (B * F * n * D >= kParallelGrain) schedule(static)
    for (int64_t bf = 0; bf < B * F; ++bf) {
      const int64_t b = bf / F, f = bf % F;
      T* row = po + b * so + f * sf;
      std::fill(row, row + D, T(0));
      for (int64_t k = 0; k < n; ++k) {
        const T* w = pw[f] + pi[bf * n + k] * D;
        for (int64_t c = 0; c < D; ++c) row[c] += w[c];
      }
      if (mode == BagMode::mean)
        for (int64_t c = 0; c < D; ++c) row[c] *= s;
    }
  });
}

void multi_embedding_bag_backward_cpu(const Tensor& grad, const Tensor& ids, BagMode mode, double scale,
                                      uint32_t /*check_id*/, std::vector<Tensor>& dst) {
  const int64_t B = ids.shape()[0], F = ids.shape()[1], n = ids.shape()[2], D = grad.shape()[2];
  const int64_t s0 = grad.stride(0), s1 = grad.stride(1);
  const int64_t* pi = base<int64_t>(ids);
  const double s = mode == BagMode::mean ? 1.0 / static_cast<double>(n) * scale : scale;
  visit_float(grad.dtype(), "multi_embedding_bag backward", [&](auto zero) {
    using T = decltype(zero);
    const T* pg = base<T>(grad);
    const T st = static_cast<T>(s);
#pragma omp parallel for if (B * n * D >= kParallelGrain) schedule(dynamic, 1)
    for (int64_t f = 0; f < F; ++f) {
      T* pd = base<T>(dst[f]);
      for (int64_t b = 0; b < B; ++b) {
        const T* g = pg + b * s0 + f * s1;
        for (int64_t k = 0; k < n; ++k) {
          T* d = pd + pi[(b * F + f) * n + k] * D;
          for (int64_t c = 0; c < D; ++c) d[c] += st * g[c];
        }
      }
    }
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(multi_embedding_bag_kernel, cpu, multi_embedding_bag_cpu);
NABLA_REGISTER_KERNEL(multi_embedding_bag_backward_kernel, cpu, multi_embedding_bag_backward_cpu);

}  // namespace nabla::ops::cpu
