// CPU reduce kernel: out[o, i] = reduce_k x[o, k, i] over a contiguous [outer, r, inner] input.
// Work is split over (o, block of 256 i's); each task walks k and keeps 256 running values, so the inner
// loop reads memory contiguously whatever `inner` is. Sums of f32 accumulate in f64.
#include <algorithm>

#include "ops/cpu/loops.h"
#include "ops/reduce.h"

namespace nabla::ops::cpu {
namespace {

constexpr int64_t kBlock = 256;

template <class T, class Acc>
void reduce_typed(ReduceOp op, const T* x, int64_t outer, int64_t r, int64_t inner, T* out, int64_t* idx) {
  const int64_t nblk = (inner + kBlock - 1) / kBlock;
  const int64_t tasks = outer * nblk;
#pragma omp parallel for if (outer * r * inner >= kParallelGrain) schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / nblk, i0 = (t % nblk) * kBlock, len = std::min(kBlock, inner - i0);
    Acc acc[kBlock];
    int64_t best[kBlock];
    const T* row = x + o * r * inner + i0;
    if (op == ReduceOp::sum) {
      std::fill(acc, acc + len, Acc(0));
      for (int64_t k = 0; k < r; ++k)
        for (int64_t i = 0; i < len; ++i) acc[i] += static_cast<Acc>(row[k * inner + i]);
    } else {
      for (int64_t i = 0; i < len; ++i) {
        acc[i] = static_cast<Acc>(row[i]);
        best[i] = 0;
      }
      const bool is_max = op == ReduceOp::max;
      for (int64_t k = 1; k < r; ++k)
        for (int64_t i = 0; i < len; ++i) {
          Acc v = static_cast<Acc>(row[k * inner + i]);
          // NaN wins (propagates), as in PyTorch; ties keep the first index.
          bool better = is_max ? (v > acc[i]) : (v < acc[i]);
          if (better || (v != v && acc[i] == acc[i])) {
            acc[i] = v;
            best[i] = k;
          }
        }
    }
    for (int64_t i = 0; i < len; ++i) {
      out[o * inner + i0 + i] = static_cast<T>(acc[i]);
      if (idx) idx[o * inner + i0 + i] = best[i];
    }
  }
}

void reduce_cpu(ReduceOp op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, Tensor& out,
                Tensor* indices) {
  int64_t* idx = indices && indices->defined() ? base<int64_t>(*indices) : nullptr;
  visit_arith(x.dtype(), "reduce", [&](auto zero) {
    using T = decltype(zero);
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double,
                                   std::conditional_t<std::is_same_v<T, bool>, int64_t, T>>;
    if (op == ReduceOp::sum && std::is_same_v<T, bool>)
      fail("sum: cannot sum a bool tensor in place of counts; cast it to i64 first");
    reduce_typed<T, Acc>(op, base<T>(x), outer, r, inner, base<T>(out), idx);
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(reduce_kernel, cpu, reduce_cpu);

}  // namespace nabla::ops::cpu
