// CPU kernels of the index family: index_select (row copies), index_add (its backward), gather and
// scatter_add.
//
//   index_select  out[o, i, :] = x[o, idx[i], :]              over contiguous [outer, n|k, inner] views
//   index_add     dst[o, idx[i], :] += src[o, i, :]
//   gather        out[p] = x[p with coordinate d replaced by idx[p]]
//   scatter_add   dst[p with coordinate d replaced by idx[p]] += src[p]
//
// The two add kernels are deterministic: the work is split so that each destination element is owned by one
// thread, which adds its contributions in increasing source position. index_add groups the source rows by
// destination row first (a counting sort, O(k + n)), so it stays parallel even when outer == 1, as in an
// embedding-style backward. scatter_add splits over the coordinates other than d (distinct destinations) and
// walks d serially.
#include <algorithm>

#include "ops/cpu/loops.h"
#include "ops/index.h"

namespace nabla::ops::cpu {
namespace {

void index_select_cpu(const Tensor& x, const Tensor& index, Tensor& out, int64_t outer, int64_t n,
                      int64_t inner) {
  visit_dtype(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = base<T>(x);
    const int64_t* pi = base<int64_t>(index);
    T* po = base<T>(out);
    const int64_t k = index.numel(), rows = outer * k;
#pragma omp parallel for if (rows * inner >= kParallelGrain) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t o = r / k, i = r % k;
      std::copy_n(px + (o * n + pi[i]) * inner, inner, po + r * inner);
    }
  });
}

// Source positions grouped by destination row: the j-th row hit is rows[j], and its positions, in
// increasing order, are pos[start[j] .. start[j + 1]).
struct RowGroups {
  std::vector<int64_t> rows, start, pos;
};

RowGroups group_by_row(const int64_t* idx, int64_t k, int64_t n) {
  std::vector<int64_t> first(n + 1, 0);
  for (int64_t i = 0; i < k; ++i) ++first[idx[i] + 1];
  for (int64_t v = 0; v < n; ++v) first[v + 1] += first[v];
  RowGroups g;
  g.pos.resize(k);
  std::vector<int64_t> cursor(first.begin(), first.end() - 1);
  for (int64_t i = 0; i < k; ++i) g.pos[cursor[idx[i]]++] = i;
  for (int64_t v = 0; v < n; ++v)
    if (first[v + 1] > first[v]) {
      g.rows.push_back(v);
      g.start.push_back(first[v]);
    }
  g.start.push_back(k);
  return g;
}

void index_add_cpu(const Tensor& src, const Tensor& index, Tensor& dst, int64_t outer, int64_t n,
                   int64_t inner) {
  const int64_t k = index.numel();
  if (k == 0 || outer == 0 || inner == 0) return;
  const RowGroups g = group_by_row(base<int64_t>(index), k, n);
  visit_arith(dst.dtype(), "index_add", [&](auto zero) {
    using T = decltype(zero);
    const T* ps = base<T>(src);
    T* pd = base<T>(dst);
    const int64_t nrows = static_cast<int64_t>(g.rows.size()), tasks = outer * nrows;
#pragma omp parallel for if (outer * k * inner >= kParallelGrain) schedule(dynamic, 16)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t o = t / nrows, j = t % nrows;
      T* d = pd + (o * n + g.rows[j]) * inner;
      for (int64_t p = g.start[j]; p < g.start[j + 1]; ++p) {
        const T* s = ps + (o * k + g.pos[p]) * inner;
        for (int64_t c = 0; c < inner; ++c) d[c] = static_cast<T>(d[c] + s[c]);
      }
    }
  });
}

void gather_cpu(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  visit_dtype(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* px = base<T>(x);
    const int64_t* pi = base<int64_t>(index);
    T* po = base<T>(out);
    // Walk x with stride 0 along dim; the index value supplies that coordinate.
    Strides xs = x.strides();
    const int64_t sd = xs[dim];
    xs[dim] = 0;
    strided_for_each<3>(index.shape(), {&out.strides(), &index.strides(), &xs},
                        [&](const std::array<int64_t, 3>& o) { po[o[0]] = px[o[2] + pi[o[1]] * sd]; });
  });
}

Strides drop(const Strides& s, int64_t d) {
  Strides r = s;
  r.erase(r.begin() + d);
  return r;
}

void scatter_add_cpu(Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t len = index.shape()[dim];
  if (len == 0 || index.numel() == 0) return;
  visit_arith(dst.dtype(), "scatter_add", [&](auto zero) {
    using T = decltype(zero);
    T* pd = base<T>(dst);
    const int64_t* pi = base<int64_t>(index);
    const T* ps = base<T>(src);
    const int64_t dd = dst.strides()[dim], di = index.strides()[dim], ds = src.strides()[dim];
    const Shape rest = drop(index.shape(), dim);
    const Strides std_ = drop(dst.strides(), dim), sti = drop(index.strides(), dim),
                  sts = drop(src.strides(), dim);
    // Distinct `rest` coordinates never share a destination, so the outer loop may run in parallel.
    strided_for_each<3>(rest, {&std_, &sti, &sts}, [&](const std::array<int64_t, 3>& o) {
      for (int64_t j = 0; j < len; ++j) {
        T& d = pd[o[0] + pi[o[1] + j * di] * dd];
        d = static_cast<T>(d + ps[o[2] + j * ds]);
      }
    });
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(index_select_kernel, cpu, index_select_cpu);
NABLA_REGISTER_KERNEL(index_add_kernel, cpu, index_add_cpu);
NABLA_REGISTER_KERNEL(gather_kernel, cpu, gather_cpu);
NABLA_REGISTER_KERNEL(scatter_add_kernel, cpu, scatter_add_cpu);

}  // namespace nabla::ops::cpu
