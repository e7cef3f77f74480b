// Matrix products and general tensor contraction.
//
//   matmul(a, b): 1-D x 1-D is a dot product; 2-D x 2-D is [n,k] @ [k,m] = [n,m]; a 1-D operand is
//   promoted to a matrix and the added dim removed after; beyond 2-D the leading (batch) dims broadcast
//   (NumPy/PyTorch matmul rules). Backward: dA = dC @ B^T, dB = A^T @ dC, summed over broadcast batches.
//   einsum("ij,jk->ik", {a, b}): implicit-free Einstein summation over any number of operands (each label
//   one lowercase or uppercase letter; repeated labels within an operand take the diagonal are not
//   supported; "..." is not supported). Contracts pairwise with matmul, so it is as fast as the GEMM.
//   tensordot(a, b, dims_a, dims_b): contracts dims_a of a with dims_b of b; the result has a's free dims
//   then b's.
//   linear(x, w, b, relu): y = act(x @ w^T + b) over the last dim of x (w [out, in], b [out] or undefined,
//   act = relu or identity), nn::Linear's forward. Backward: gz = relu ? g * (y > 0) : g,
//   dx = gz @ w, dw = gz^T @ x, db = sum of gz over the rows. A backend may fuse the bias (and ReLU) into
//   the forward GEMM and the bias gradient into the dw GEMM (CUDA: cuBLASLt epilogues BIAS / RELU_BIAS and
//   BGRADB); where it has no fused kernel, or the kernel declines the call (a dtype or shape its library
//   has no algorithm for), the op is composed from matmul, add and relu: the same values either way.
#pragma once
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

Tensor matmul(const Tensor& a, const Tensor& b);
Tensor einsum(const std::string& equation, const std::vector<Tensor>& operands);
Tensor tensordot(const Tensor& a, const Tensor& b, const std::vector<int64_t>& dims_a,
                 const std::vector<int64_t>& dims_b);
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), bool relu = false);

}  // namespace nabla

namespace nabla::ops {

// Batched GEMM: for each batch index, c[b] = op(a[b]) @ op(b[b]) with op = transpose when the flag is set.
// a: [batch, n, k] (or [batch, k, n] when trans_a), b: [batch, k, m] (or [batch, m, k]), c: [batch, n, m];
// all contiguous; a batch stride of 0 reuses one matrix for every batch.
struct GemmArgs {
  int64_t batch, n, m, k;
  bool trans_a = false, trans_b = false;
  int64_t stride_a, stride_b, stride_c;  // batch strides, in elements
};
using GemmKernelFn = void (*)(const GemmArgs& args, const Tensor& a, const Tensor& b, Tensor& c);
inline Kernel<GemmKernelFn> gemm_kernel{"gemm"};

// linear's optional fused kernels. x [rows, in], w [out, in], y / gy [rows, out], all contiguous and of one
// floating dtype; bias / db contiguous [out] or undefined. Each returns false, having written nothing, when
// it cannot take the call, and the op layer then composes the op from matmul, add and relu.
struct LinearArgs {
  int64_t rows, in, out;
  bool relu = false;
};
// y = act(x @ w^T + bias).
using LinearForwardFn = bool (*)(const LinearArgs& args, const Tensor& x, const Tensor& w, const Tensor& bias,
                                 Tensor& y);
// dw = gy^T @ x and, when db is defined, db = sum of gy over the rows, in one GEMM.
using LinearWeightGradFn = bool (*)(const LinearArgs& args, const Tensor& gy, const Tensor& x, Tensor& dw,
                                    Tensor& db);
inline Kernel<LinearForwardFn> linear_forward_kernel{"linear_forward"};
inline Kernel<LinearWeightGradFn> linear_weight_grad_kernel{"linear_weight_grad"};

}  // namespace nabla::ops
