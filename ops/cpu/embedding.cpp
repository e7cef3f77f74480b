// CPU kernels of embedding_bag (plain embedding runs on the index family's kernels).
//
//   forward   out[b, :] = s_b * sum_{l in bag b} p_l W[idx[l], :],   s_b = 1 / |bag b| (mean) or 1 (sum),
//             p_l = per_sample_weights[l] (1 without); bag b = [offsets[b], offsets[b + 1]) (the last to L);
//             an empty bag gives zeros.
//   backward  dW[v, :] += scale * sum_{l : idx[l] = v} s_bag(l) p_l g[bag(l), :]
//             (scale 1 for the backward; -lr for the sparse SGD, with dW the weight itself)
//   row-wise Adagrad  G_v = sum_{l : idx[l] = v} s_bag(l) p_l g[bag(l), :];  state[v] += mean_c G_v[c]^2;
//             W[v, :] -= lr G_v / (sqrt(state[v]) + eps), for the touched rows v only
// Forward runs one bag per task. Backward groups the positions l by row v (a counting sort, O(L + V)) and
// runs one row per task, adding in increasing l: deterministic, and parallel even when many indices repeat.
// Row-wise Adagrad groups them by a stable sort of the positions (O(L log L), nothing of size V: the tables
// may have millions of rows) and runs one touched row per task, G summed in increasing l as the backward.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/loops.h"
#include "ops/cpu/rowwise_adagrad.h"
#include "ops/embedding.h"

namespace nabla::ops::cpu {
namespace {

int64_t bag_end(const int64_t* off, int64_t b, int64_t B, int64_t L) { return b + 1 < B ? off[b + 1] : L; }

void embedding_bag_cpu(const Tensor& weight, const Tensor& indices, const Tensor& offsets, BagMode mode,
                       const Tensor& per_sample_weights, Tensor& out) {
  visit_float(weight.dtype(), "embedding_bag", [&](auto zero) {
    using T = decltype(zero);
    const T* pw = base<T>(weight);
    const int64_t* pi = base<int64_t>(indices);
    const int64_t* po = base<int64_t>(offsets);
    T* pout = base<T>(out);
    const T* pp = per_sample_weights.defined() ? base<T>(per_sample_weights) : nullptr;
    const int64_t D = weight.shape()[1], L = indices.numel(), B = offsets.numel();
#pragma omp parallel for if (L * D >= kParallelGrain) schedule(dynamic, 8)
    for (int64_t b = 0; b < B; ++b) {
      T* row = pout + b * D;
      std::fill(row, row + D, T(0));
      const int64_t begin = po[b], end = bag_end(po, b, B, L);
      for (int64_t l = begin; l < end; ++l) {
        const T* w = pw + pi[l] * D;
        if (pp) {
          const T s = pp[l];
          for (int64_t c = 0; c < D; ++c) row[c] += s * w[c];
        } else {
          for (int64_t c = 0; c < D; ++c) row[c] += w[c];
        }
      }
      if (mode == BagMode::mean && end > begin) {
        const T s = T(1) / static_cast<T>(end - begin);
        for (int64_t c = 0; c < D; ++c) row[c] *= s;
      }
    }
  });
}

// The backward kernels' view of the bags: bag[l] is the bag of position l, scale[b] the factor of bag b's
// gradient (scale_all, divided by the bag's length in mean mode).
void bags_of_positions(const int64_t* po, int64_t B, int64_t L, BagMode mode, double scale_all,
                       std::vector<int64_t>& bag, std::vector<double>& scale) {
  bag.assign(L, 0);
  scale.assign(B, scale_all);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t begin = po[b], end = bag_end(po, b, B, L);
    for (int64_t l = begin; l < end; ++l) bag[l] = b;
    if (mode == BagMode::mean && end > begin) scale[b] = 1.0 / static_cast<double>(end - begin) * scale_all;
  }
}

void embedding_bag_backward_cpu(const Tensor& grad, const Tensor& indices, const Tensor& offsets,
                                BagMode mode, const Tensor& per_sample_weights, double scale_all,
                                Tensor& dweight) {
  const int64_t V = dweight.shape()[0], D = dweight.shape()[1], L = indices.numel(), B = offsets.numel();
  if (L == 0 || D == 0) return;
  const int64_t* pi = base<int64_t>(indices);
  std::vector<int64_t> bag;
  std::vector<double> scale;
  bags_of_positions(base<int64_t>(offsets), B, L, mode, scale_all, bag, scale);
  // Counting sort of positions by row (the same grouping as the index family's index_add kernel).
  std::vector<int64_t> first(V + 1, 0), pos(L), rows;
  for (int64_t l = 0; l < L; ++l) ++first[pi[l] + 1];
  for (int64_t v = 0; v < V; ++v) first[v + 1] += first[v];
  std::vector<int64_t> cursor(first.begin(), first.end() - 1);
  for (int64_t l = 0; l < L; ++l) pos[cursor[pi[l]]++] = l;
  for (int64_t v = 0; v < V; ++v)
    if (first[v + 1] > first[v]) rows.push_back(v);
  visit_float(dweight.dtype(), "embedding_bag backward", [&](auto zero) {
    using T = decltype(zero);
    const T* pg = base<T>(grad);
    T* pd = base<T>(dweight);
    const T* pp = per_sample_weights.defined() ? base<T>(per_sample_weights) : nullptr;
    const int64_t nrows = static_cast<int64_t>(rows.size());
#pragma omp parallel for if (L * D >= kParallelGrain) schedule(dynamic, 16)
    for (int64_t j = 0; j < nrows; ++j) {
      const int64_t v = rows[j];
      T* d = pd + v * D;
      for (int64_t p = first[v]; p < first[v + 1]; ++p) {
        const int64_t l = pos[p], b = bag[l];
        const T s = pp ? static_cast<T>(scale[b]) * pp[l] : static_cast<T>(scale[b]);
        const T* g = pg + b * D;
        for (int64_t c = 0; c < D; ++c) d[c] += s * g[c];
      }
    }
  });
}

// The positions 0..L-1 ordered by row, ties in increasing position; `starts` gets the first slot of every
// run of equal rows and, last, L.
std::vector<int64_t> positions_by_row(const int64_t* rows, int64_t L, std::vector<int64_t>& starts) {
  std::vector<int64_t> pos(L);
  for (int64_t l = 0; l < L; ++l) pos[l] = l;
  std::stable_sort(pos.begin(), pos.end(), [rows](int64_t a, int64_t b) { return rows[a] < rows[b]; });
  starts.clear();
  for (int64_t j = 0; j < L; ++j)
    if (j == 0 || rows[pos[j]] != rows[pos[j - 1]]) starts.push_back(j);
  starts.push_back(L);
  return pos;
}

void embedding_bag_rowwise_adagrad_cpu(const Tensor& grad, const Tensor& indices, const Tensor& offsets,
                                       BagMode mode, const Tensor& per_sample_weights, double lr, double eps,
                                       Tensor& weight, Tensor& state) {
  const int64_t D = weight.shape()[1], L = indices.numel(), B = offsets.numel();
  if (L == 0 || D == 0) return;
  const int64_t* pi = base<int64_t>(indices);
  std::vector<int64_t> bag;
  std::vector<double> scale;
  bags_of_positions(base<int64_t>(offsets), B, L, mode, 1.0, bag, scale);
  std::vector<int64_t> starts;
  const std::vector<int64_t> pos = positions_by_row(pi, L, starts);
  visit_float(weight.dtype(), "embedding_bag rowwise adagrad", [&](auto zero) {
    using T = decltype(zero);
    const T* pg = base<T>(grad);
    T* pw = base<T>(weight);
    T* ps = base<T>(state);
    const T* pp = per_sample_weights.defined() ? base<T>(per_sample_weights) : nullptr;
    const int64_t runs = static_cast<int64_t>(starts.size()) - 1;
    const T lr_t = static_cast<T>(lr), eps_t = static_cast<T>(eps);
#pragma omp parallel if (L * D >= kParallelGrain)
    {
      std::vector<T> G(D);
#pragma omp for schedule(dynamic, 16)
      for (int64_t r = 0; r < runs; ++r) {
        const int64_t v = pi[pos[starts[r]]];
        std::fill(G.begin(), G.end(), T(0));
        for (int64_t j = starts[r]; j < starts[r + 1]; ++j) {
          const int64_t l = pos[j], b = bag[l];
          const T s = pp ? static_cast<T>(scale[b]) * pp[l] : static_cast<T>(scale[b]);
          const T* g = pg + b * D;
          for (int64_t c = 0; c < D; ++c) G[c] += s * g[c];
        }
        rowwise_adagrad_row(G.data(), D, lr_t, eps_t, ps[v], pw + v * D);
      }
    }
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(embedding_bag_kernel, cpu, embedding_bag_cpu);
NABLA_REGISTER_KERNEL(embedding_bag_backward_kernel, cpu, embedding_bag_backward_cpu);
NABLA_REGISTER_KERNEL(embedding_bag_rowwise_adagrad_kernel, cpu, embedding_bag_rowwise_adagrad_cpu);

}  // namespace nabla::ops::cpu
