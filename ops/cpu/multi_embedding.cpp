// CPU kernels of multi_embedding_bag (ops/multi_embedding.h): F tables, fixed bags of n ids.
//
//   forward   out[b, f, :] = s * sum_{k < n} W_f[ids[b, f, k], :]        s = 1 (sum) or 1 / n (mean)
//   backward  dst_f[v, :] += scale * s * sum_{(b, k) : ids[b, f, k] = v} g[b, f, :]
//             (scale 1 into zeroed gradients; -lr into the tables themselves for the sparse SGD)
//   row-wise Adagrad  G = the rows of dst_f above (scale 1); state_f[v] += mean_c G[c]^2;
//             W_f[v] -= lr G / (sqrt(state_f[v]) + eps), touched rows only
// The ids were checked by the op layer. Forward: one (b, f) bag per task. Backward: one table per task,
// walking b (then k) in increasing order, so every row's sum has the order of the CUDA kernel (which sorts
// the positions stably by row): deterministic, and no two tasks write one table.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/loops.h"
#include "ops/cpu/rowwise_adagrad.h"
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

// Row-wise Adagrad: one table per task; its positions (b, k) stably sorted by row, so each row's G is summed
// in increasing b then k (the backward's order), then the row and its accumulator are updated once.
void multi_embedding_bag_rowwise_adagrad_cpu(const Tensor& grad, const Tensor& ids, BagMode mode, double lr,
                                             double eps, uint32_t /*check_id*/, std::vector<Tensor>& tables,
                                             std::vector<Tensor>& states) {
  const int64_t B = ids.shape()[0], F = ids.shape()[1], n = ids.shape()[2], D = grad.shape()[2];
  if (B == 0 || D == 0) return;
  const int64_t s0 = grad.stride(0), s1 = grad.stride(1), Lf = B * n;
  const int64_t* pi = base<int64_t>(ids);
  const double s = mode == BagMode::mean ? 1.0 / static_cast<double>(n) : 1.0;
  visit_float(grad.dtype(), "multi_embedding_bag rowwise adagrad", [&](auto zero) {
    using T = decltype(zero);
    const T* pg = base<T>(grad);
    const T st = static_cast<T>(s), lr_t = static_cast<T>(lr), eps_t = static_cast<T>(eps);
#pragma omp parallel for if (B * n * D >= kParallelGrain) schedule(dynamic, 1)
    for (int64_t f = 0; f < F; ++f) {
      T* pw = base<T>(tables[f]);
      T* ps = base<T>(states[f]);
      // q = b n + k: the id of position (b, k) of table f
      auto id = [&](int64_t q) { return pi[((q / n) * F + f) * n + q % n]; };
      std::vector<int64_t> pos(Lf);
      for (int64_t q = 0; q < Lf; ++q) pos[q] = q;
      std::stable_sort(pos.begin(), pos.end(), [&](int64_t a, int64_t b) { return id(a) < id(b); });
      std::vector<T> G(D);
      for (int64_t j = 0; j < Lf;) {
        const int64_t v = id(pos[j]);
        std::fill(G.begin(), G.end(), T(0));
        for (; j < Lf && id(pos[j]) == v; ++j) {
          const T* g = pg + (pos[j] / n) * s0 + f * s1;
          for (int64_t c = 0; c < D; ++c) G[c] += st * g[c];
        }
        rowwise_adagrad_row(G.data(), D, lr_t, eps_t, ps[v], pw + v * D);
      }
    }
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(multi_embedding_bag_kernel, cpu, multi_embedding_bag_cpu);
NABLA_REGISTER_KERNEL(multi_embedding_bag_backward_kernel, cpu, multi_embedding_bag_backward_cpu);
NABLA_REGISTER_KERNEL(multi_embedding_bag_rowwise_adagrad_kernel, cpu,
                      multi_embedding_bag_rowwise_adagrad_cpu);

}  // namespace nabla::ops::cpu
