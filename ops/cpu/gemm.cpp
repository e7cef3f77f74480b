// CPU GEMM through CBLAS (OpenBLAS). Row-major: C[n, m] = op(A) @ op(B).
// Many small matrices run in parallel over the batch (OpenBLAS runs single-threaded inside an OpenMP
// parallel region); large ones loop over the batch and let OpenBLAS use every thread.
#include <cblas.h>

#include "ops/cpu/loops.h"
#include "ops/linalg.h"

namespace nabla::ops::cpu {
namespace {

template <class T>
void gemm_one(bool ta, bool tb, int64_t n, int64_t m, int64_t k, const T* a, const T* b, T* c) {
  const CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  const int64_t lda = ta ? n : k, ldb = tb ? k : m;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, TA, TB, n, m, k, 1.0f, a, lda, b, ldb, 0.0f, c, m);
  else
    cblas_dgemm(CblasRowMajor, TA, TB, n, m, k, 1.0, a, lda, b, ldb, 0.0, c, m);
}

void gemm_cpu(const GemmArgs& g, const Tensor& a, const Tensor& b, Tensor& c) {
  visit_float(a.dtype(), "matmul", [&](auto zero) {
    using T = decltype(zero);
    const T* pa = base<T>(a);
    const T* pb = base<T>(b);
    T* pc = base<T>(c);
    const bool small = g.n * g.m * g.k < 64 * 64 * 64;
    if (g.batch > 1 && small) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < g.batch; ++i)
        gemm_one<T>(g.trans_a, g.trans_b, g.n, g.m, g.k, pa + i * g.stride_a, pb + i * g.stride_b,
                    pc + i * g.stride_c);
    } else {
      for (int64_t i = 0; i < g.batch; ++i)
        gemm_one<T>(g.trans_a, g.trans_b, g.n, g.m, g.k, pa + i * g.stride_a, pb + i * g.stride_b,
                    pc + i * g.stride_c);
    }
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(gemm_kernel, cpu, gemm_cpu);

}  // namespace nabla::ops::cpu
