// CUDA GEMM through cuBLAS. Our tensors are row-major and cuBLAS is column-major, so
//   C[n, m] = op(A) op(B)  (row-major)   is computed as   C^T[m, n] = op(B)^T op(A)^T  (column-major),
// which is the same memory: swap the operands and their flags, pass m before n. One strided-batched call
// covers every batch (a batch stride of 0 reuses one matrix). f32 uses TF32 tensor cores unless
// set_tf32_enabled(false) / NABLA_TF32=0; bf16 and f16 accumulate in f32.
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
    default: fail("matmul: dtype ", a.dtype(), " is not supported on cuda (expected f32, f64, bf16 or f16)");
  }
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int64_t lda = g.trans_a ? g.n : g.k, ldb = g.trans_b ? g.k : g.m;
  cublasHandle_t h = cublas_handle();
  NABLA_CUBLAS_CHECK(cublasSetWorkspace(h, workspace(32 << 20), 32 << 20));
  NABLA_CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, op_b, op_a, static_cast<int>(g.m), static_cast<int>(g.n),
                                                static_cast<int>(g.k), alpha, b.data_ptr(), type, static_cast<int>(ldb),
                                                g.stride_b, a.data_ptr(), type, static_cast<int>(lda), g.stride_a, beta,
                                                c.data_ptr(), type, static_cast<int>(g.m), g.stride_c,
                                                static_cast<int>(g.batch), compute, CUBLAS_GEMM_DEFAULT));
  NABLA_CUDA_LAUNCH_CHECK();
}

}  // namespace

NABLA_REGISTER_KERNEL(gemm_kernel, cuda, gemm_cuda);

}  // namespace nabla::cuda
