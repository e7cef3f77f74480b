// CUDA GEMM through cuBLAS. Our tensors are row-major and cuBLAS is column-major, so
//   C[n, m] = op(A) op(B)  (row-major)   is computed as   C^T[m, n] = op(B)^T op(A)^T  (column-major),
// which is the same memory: swap the operands and their flags, pass m before n. One strided-batched call
// covers every batch (a batch stride of 0 reuses one matrix). f32 uses TF32 tensor cores unless
// set_tf32_enabled(false) / NABLA_TF32=0; bf16 and f16 accumulate in f32.
//
// linear's fused kernels (ops/linalg.h) go through cuBLASLt, in the same column-major reading:
//   forward       y^T[out, rows] = W[out, in] (A: W's memory, [in, out] col-major, op T)
//                               . x^T[in, rows] (B: x's memory, op N)
//                 epilogue BIAS (b[out] per row of D, i.e. per column of y) or RELU_BIAS.
//   weight grad   dW^T[in, out]  = x^T[in, rows] (A: x's memory, op N) . gy[rows, out] (B: gy's memory,
//                 [out, rows] col-major, op T); epilogue BGRADB sums B over the GEMM's k (= rows) into
//                 db[out], the bias gradient, in the same kernel (DEFAULT when db is not wanted).
// f32 (TF32 compute when enabled, as the plain GEMM), bf16 and f16 (f32 compute); f64 and anything
// cuBLASLt's heuristic finds no algorithm for return false and the op layer composes the op. Each
// (direction, dtype, math, shape, epilogue, pointer alignment) gets its descriptors, layouts and heuristic
// algorithm once, cached; a call then sets the pointers and runs. The workspace (32 MiB) is the runtime's.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "cuda/runtime.h"
#include "ops/linalg.h"

namespace nabla::cuda {
namespace {

void gemm_cuda(const ops::GemmArgs& g, const Tensor& a, const Tensor& b, Tensor& c) {
  DeviceGuard guard(a.device().index);
  cudaDataType_t type;
  cublasComputeType_t compute;
  float alpha_f = 1.f, beta_f = 0.f;
  double alpha_d = 1.0, beta_d = 0.0;
  const void *alpha = &alpha_f, *beta = &beta_f;
  switch (a.dtype()) {
    case DType::f32:
      type = CUDA_R_32F;
      compute = tf32_enabled() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      break;
    case DType::f64:
      type = CUDA_R_64F;
      compute = CUBLAS_COMPUTE_64F;
      alpha = &alpha_d;
      beta = &beta_d;
      break;
    case DType::bf16:
      type = CUDA_R_16BF;
      compute = CUBLAS_COMPUTE_32F;
      break;
    case DType::f16:
      type = CUDA_R_16F;
      compute = CUBLAS_COMPUTE_32F;
      break;
    default:
      fail("matmul: dtype ", a.dtype(), " is not supported on cuda (expected f32, f64, bf16 or f16)");
  }
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                          op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int64_t lda = g.trans_a ? g.n : g.k, ldb = g.trans_b ? g.k : g.m;
  cublasHandle_t h = cublas_handle();
  NABLA_CUBLAS_CHECK(cublasSetWorkspace(h, workspace(32 << 20), 32 << 20));
  NABLA_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      h, op_b, op_a, static_cast<int>(g.m), static_cast<int>(g.n), static_cast<int>(g.k), alpha, b.data_ptr(),
      type, static_cast<int>(ldb), g.stride_b, a.data_ptr(), type, static_cast<int>(lda), g.stride_a, beta,
      c.data_ptr(), type, static_cast<int>(g.m), g.stride_c, static_cast<int>(g.batch), compute,
      CUBLAS_GEMM_DEFAULT));
  NABLA_CUDA_LAUNCH_CHECK();
}

// ---- cuBLASLt with epilogues (linear) ----

constexpr size_t kLtWorkspace = size_t(32) << 20;

// The largest power of two, up to 256, that divides the address: cuBLASLt's heuristic must not pick an
// algorithm that assumes more alignment than the pointers have.
int64_t alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  int64_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool ok = false;  // false: no algorithm (the call declines)
  // Never destroyed: plans live for the process (as cuda/conv.cu's).
};

using LtKey = std::array<int64_t, 14>;

struct LtCache {
  std::mutex mu;
  std::map<LtKey, std::unique_ptr<LtPlan>> plans;
};
LtCache& lt_cache() {
  static LtCache* c = new LtCache();
  return *c;
}

// D[m, n] (col-major, ld m) = op_a(A) . op_b(B) with the epilogue; bias: the epilogue's vector (read for
// BIAS / RELU_BIAS, written for BGRADB) or null. A is stored [m, k] (op N) or [k, m] (op T) col-major, B
// [k, n] or [n, k]. Returns false when cuBLASLt has no algorithm for it.
bool lt_matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const Tensor& a, const Tensor& b,
               Tensor& d, cublasLtEpilogue_t epilogue, void* bias) {
  cudaDataType_t type;
  cublasComputeType_t compute;
  switch (d.dtype()) {
    case DType::f32:
      type = CUDA_R_32F;
      compute = tf32_enabled() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      break;
    case DType::bf16:
      type = CUDA_R_16BF;
      compute = CUBLAS_COMPUTE_32F;
      break;
    case DType::f16:
      type = CUDA_R_16F;
      compute = CUBLAS_COMPUTE_32F;
      break;
    default:
      return false;
  }
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) return false;
  const int64_t al_a = alignment(a.data_ptr()), al_b = alignment(b.data_ptr()),
                al_d = alignment(d.data_ptr()), al_bias = bias ? alignment(bias) : 256;
  const LtKey key{current_device(),
                  static_cast<int64_t>(d.dtype()),
                  static_cast<int64_t>(compute),
                  trans_a,
                  trans_b,
                  m,
                  n,
                  k,
                  static_cast<int64_t>(epilogue),
                  al_a,
                  al_b,
                  al_d,
                  al_bias,
                  0};
  LtCache& cache = lt_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  auto it = cache.plans.find(key);
  if (it == cache.plans.end()) {
    auto p = std::make_unique<LtPlan>();
    const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                            op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    NABLA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, compute, CUDA_R_32F));
    NABLA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
    NABLA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
    NABLA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    if (bias) {  // the bias vector in D's type (the default bias data type), set here for the heuristic
      NABLA_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    }
    NABLA_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&p->a, type, trans_a ? k : m, trans_a ? m : k, trans_a ? k : m));
    NABLA_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&p->b, type, trans_b ? n : k, trans_b ? k : n, trans_b ? n : k));
    NABLA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, type, m, n, m));
    cublasLtMatmulPreference_t pref = nullptr;
    NABLA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = kLtWorkspace;
    NABLA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                            &ws, sizeof(ws)));
    const uint32_t aa = static_cast<uint32_t>(al_a), ab = static_cast<uint32_t>(al_b),
                   ad = static_cast<uint32_t>(al_d);
    NABLA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                            &aa, sizeof(aa)));
    NABLA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                            &ab, sizeof(ab)));
    NABLA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                            &ad, sizeof(ad)));
    NABLA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                            &ad, sizeof(ad)));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(cublaslt_handle(), p->desc, p->a, p->b, p->d,
                                                             p->d, pref, 1, &result, &found);
    NABLA_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    p->ok = st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS;
    if (p->ok) p->algo = result.algo;
    it = cache.plans.emplace(key, std::move(p)).first;
  }
  LtPlan& p = *it->second;
  if (!p.ok) return false;
  if (bias)
    NABLA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  const float alpha = 1.f, beta = 0.f;
  NABLA_CUBLAS_CHECK(cublasLtMatmul(cublaslt_handle(), p.desc, &alpha, a.data_ptr(), p.a, b.data_ptr(), p.b,
                                    &beta, d.data_ptr(), p.d, d.data_ptr(), p.d, &p.algo,
                                    workspace(kLtWorkspace), kLtWorkspace, current_stream()));
  NABLA_CUDA_LAUNCH_CHECK();
  return true;
}

bool linear_forward_cuda(const ops::LinearArgs& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                         Tensor& y) {
  DeviceGuard guard(x.device().index);
  const cublasLtEpilogue_t epi = bias.defined()
                                     ? (g.relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                                     : (g.relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
  // D = y^T [out, rows]; A = W's memory [in, out] op T; B = x's memory [in, rows] op N.
  return lt_matmul(true, false, g.out, g.rows, g.in, w, x, y, epi,
                   bias.defined() ? bias.data_ptr() : nullptr);
}

bool linear_weight_grad_cuda(const ops::LinearArgs& g, const Tensor& gy, const Tensor& x, Tensor& dw,
                             Tensor& db) {
  DeviceGuard guard(gy.device().index);
  // D = dW^T [in, out]; A = x's memory [in, rows] op N; B = gy's memory [out, rows] op T; k = rows.
  return lt_matmul(false, true, g.in, g.out, g.rows, x, gy, dw,
                   db.defined() ? CUBLASLT_EPILOGUE_BGRADB : CUBLASLT_EPILOGUE_DEFAULT,
                   db.defined() ? db.data_ptr() : nullptr);
}

}  // namespace

NABLA_REGISTER_KERNEL(gemm_kernel, cuda, gemm_cuda);
NABLA_REGISTER_KERNEL(linear_forward_kernel, cuda, linear_forward_cuda);
NABLA_REGISTER_KERNEL(linear_weight_grad_kernel, cuda, linear_weight_grad_cuda);

}  // namespace nabla::cuda
