// CUDA kernels of the element-wise family (unary, binary with fused activation backwards, where). The maths
// of each op is the CPU kernel's (ops/cpu/elementwise.cpp); 16-bit floats compute in f32.
//
// Contiguous same-dtype f32 inputs take a vectorised path: each thread moves 16 bytes (float4) per operand,
// which is what it takes to get near the copy bandwidth of HBM; everything else uses the strided launcher.
#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "ops/elementwise.h"

namespace nabla::cuda {
namespace {
using ops::BinaryOp;
using ops::ElementwiseParams;
using ops::UnaryOp;

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

template <class A>
__device__ __forceinline__ A unary_fn(UnaryOp op, A v, A alpha, A beta) {
  switch (op) {
    case UnaryOp::neg: return -v;
    case UnaryOp::abs: return v < A(0) ? -v : v;
    case UnaryOp::exp: return ::exp(v);
    case UnaryOp::log: return ::log(v);
    case UnaryOp::log1p: return ::log1p(v);
    case UnaryOp::sqrt: return ::sqrt(v);
    case UnaryOp::rsqrt: return A(1) / ::sqrt(v);
    case UnaryOp::tanh: return ::tanh(v);
    case UnaryOp::sigmoid: return A(1) / (A(1) + ::exp(-v));
    case UnaryOp::relu: return v > A(0) ? v : A(0);
    case UnaryOp::leaky_relu: return v > A(0) ? v : v * alpha;
    case UnaryOp::gelu: return A(0.5) * v * (A(1) + ::erf(v * A(kInvSqrt2)));
    case UnaryOp::gelu_tanh: return A(0.5) * v * (A(1) + ::tanh(A(kSqrt2OverPi) * (v + A(0.044715) * v * v * v)));
    case UnaryOp::silu: return v / (A(1) + ::exp(-v));
    case UnaryOp::clamp: return v < alpha ? alpha : (v > beta ? beta : v);
    case UnaryOp::pow: return ::pow(v, alpha);
    case UnaryOp::sign: return A((v > A(0)) - (v < A(0)));
  }
  return v;
}

template <class A>
__device__ __forceinline__ A binary_fn(BinaryOp op, A x, A y, A alpha, A beta) {
  switch (op) {
    case BinaryOp::add: return x + alpha * y;
    case BinaryOp::sub: return x - alpha * y;
    case BinaryOp::mul: return x * y;
    case BinaryOp::div: return x / y;
    case BinaryOp::pow: return ::pow(x, y);
    case BinaryOp::maximum: return x >= y ? x : y;
    case BinaryOp::minimum: return x <= y ? x : y;
    case BinaryOp::relu_grad: return y > A(0) ? x : A(0);
    case BinaryOp::leaky_relu_grad: return y > A(0) ? x : x * alpha;
    case BinaryOp::gelu_grad: {
      A cdf = A(0.5) * (A(1) + ::erf(y * A(kInvSqrt2)));
      A pdf = A(kInvSqrt2Pi) * ::exp(A(-0.5) * y * y);
      return x * (cdf + y * pdf);
    }
    case BinaryOp::gelu_tanh_grad: {
      A inner = A(kSqrt2OverPi) * (y + A(0.044715) * y * y * y);
      A th = ::tanh(inner);
      A dinner = A(kSqrt2OverPi) * (A(1) + A(3 * 0.044715) * y * y);
      return x * (A(0.5) * (A(1) + th) + A(0.5) * y * (A(1) - th * th) * dinner);
    }
    case BinaryOp::silu_grad: {
      A s = A(1) / (A(1) + ::exp(-y));
      return x * s * (A(1) + y * (A(1) - s));
    }
    case BinaryOp::clamp_grad: return (y >= alpha && y <= beta) ? x : A(0);
    case BinaryOp::sigmoid_grad_from_y: return x * y * (A(1) - y);
    case BinaryOp::tanh_grad_from_y: return x * (A(1) - y * y);
    default: return A(0);  // comparisons are handled separately
  }
}

// Integer arithmetic: only the ops that make sense on integers (the op layer forwards the others as errors).
template <class A>
__device__ __forceinline__ A int_binary_fn(BinaryOp op, A x, A y, A alpha) {
  switch (op) {
    case BinaryOp::add: return x + alpha * y;
    case BinaryOp::sub: return x - alpha * y;
    case BinaryOp::mul: return x * y;
    case BinaryOp::div: return y == A(0) ? A(0) : x / y;
    case BinaryOp::maximum: return x >= y ? x : y;
    case BinaryOp::minimum: return x <= y ? x : y;
    default: return A(0);
  }
}

__device__ __forceinline__ bool compare_fn(BinaryOp op, double x, double y) {
  switch (op) {
    case BinaryOp::eq: return x == y;
    case BinaryOp::ne: return x != y;
    case BinaryOp::lt: return x < y;
    case BinaryOp::le: return x <= y;
    case BinaryOp::gt: return x > y;
    case BinaryOp::ge: return x >= y;
    default: return false;
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

__global__ void unary_f32_vec4(UnaryOp op, const float4* __restrict__ x, float4* __restrict__ out, int64_t n4, float a,
                               float b) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    float4 v = x[i];
    v.x = unary_fn(op, v.x, a, b);
    v.y = unary_fn(op, v.y, a, b);
    v.z = unary_fn(op, v.z, a, b);
    v.w = unary_fn(op, v.w, a, b);
    out[i] = v;
  }
}

__global__ void binary_f32_vec4(BinaryOp op, const float4* __restrict__ x, const float4* __restrict__ y,
                                float4* __restrict__ out, int64_t n4, float a, float b) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    float4 u = x[i], v = y[i];
    u.x = binary_fn(op, u.x, v.x, a, b);
    u.y = binary_fn(op, u.y, v.y, a, b);
    u.z = binary_fn(op, u.z, v.z, a, b);
    u.w = binary_fn(op, u.w, v.w, a, b);
    out[i] = u;
  }
}

template <class T>
void unary_typed(UnaryOp op, const Tensor& x, Tensor& out, ElementwiseParams p) {
  using A = acc_t<T>;
  const T* px = ptr<T>(x);
  T* po = ptr<T>(out);
  const A a = static_cast<A>(p.alpha), b = static_cast<A>(p.beta);
  launch_elementwise<2>(out.shape(), {&out.strides(), &x.strides()}, [=] __device__(const std::array<int64_t, 2>& o) {
    po[o[0]] = store<T>(unary_fn<A>(op, load(px[o[1]]), a, b));
  });
}

void unary_cuda(UnaryOp op, const Tensor& x, Tensor& out, ElementwiseParams p) {
  DeviceGuard g(x.device().index);
  const int64_t n = out.numel();
  if (x.dtype() == DType::f32 && x.is_contiguous() && out.is_contiguous() && n % 4 == 0 && aligned16(x.data_ptr()) &&
      aligned16(out.data_ptr())) {
    unary_f32_vec4<<<grid_for(n / 4), kBlock, 0, current_stream()>>>(
        op, static_cast<const float4*>(x.data_ptr()), static_cast<float4*>(out.data_ptr()), n / 4,
        static_cast<float>(p.alpha), static_cast<float>(p.beta));
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  visit_cuda_float(x.dtype(), ops::unary_op_name(op), [&](auto zero) { unary_typed<decltype(zero)>(op, x, out, p); });
}

template <class T>
void binary_typed(BinaryOp op, bool cmp, const Tensor& a, const Tensor& b, Tensor& out, ElementwiseParams p) {
  using A = acc_t<T>;
  const T* pa = ptr<T>(a);
  const T* pb = ptr<T>(b);
  if (cmp) {
    bool* po = ptr<bool>(out);
    launch_elementwise<3>(out.shape(), {&out.strides(), &a.strides(), &b.strides()},
                          [=] __device__(const std::array<int64_t, 3>& o) {
                            po[o[0]] = compare_fn(op, static_cast<double>(load(pa[o[1]])), static_cast<double>(load(pb[o[2]])));
                          });
    return;
  }
  T* po = ptr<T>(out);
  const A alpha = static_cast<A>(p.alpha), beta = static_cast<A>(p.beta);
  if constexpr (std::is_floating_point_v<A>) {
    launch_elementwise<3>(out.shape(), {&out.strides(), &a.strides(), &b.strides()},
                          [=] __device__(const std::array<int64_t, 3>& o) {
                            po[o[0]] = store<T>(binary_fn<A>(op, load(pa[o[1]]), load(pb[o[2]]), alpha, beta));
                          });
  } else {
    NABLA_CHECK(op <= BinaryOp::minimum && op != BinaryOp::pow, ops::binary_op_name(op), ": dtype ", a.dtype(),
                " is not supported (expected a float type)");
    launch_elementwise<3>(out.shape(), {&out.strides(), &a.strides(), &b.strides()},
                          [=] __device__(const std::array<int64_t, 3>& o) {
                            po[o[0]] = store<T>(int_binary_fn<A>(op, load(pa[o[1]]), load(pb[o[2]]), alpha));
                          });
  }
}

void binary_cuda(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out, ElementwiseParams p) {
  DeviceGuard g(a.device().index);
  const bool cmp = op >= BinaryOp::eq && op <= BinaryOp::ge;
  const int64_t n = out.numel();
  if (!cmp && a.dtype() == DType::f32 && a.is_contiguous() && b.is_contiguous() && out.is_contiguous() &&
      a.shape() == out.shape() && b.shape() == out.shape() && n % 4 == 0 && aligned16(a.data_ptr()) &&
      aligned16(b.data_ptr()) && aligned16(out.data_ptr()) && a.strides() == out.strides() && b.strides() == out.strides()) {
    binary_f32_vec4<<<grid_for(n / 4), kBlock, 0, current_stream()>>>(
        op, static_cast<const float4*>(a.data_ptr()), static_cast<const float4*>(b.data_ptr()),
        static_cast<float4*>(out.data_ptr()), n / 4, static_cast<float>(p.alpha), static_cast<float>(p.beta));
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  visit_all(a.dtype(), [&](auto zero) { binary_typed<decltype(zero)>(op, cmp, a, b, out, p); });
}

template <class T>
void where_typed(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  const bool* pc = ptr<bool>(cond);
  const T* pa = ptr<T>(a);
  const T* pb = ptr<T>(b);
  T* po = ptr<T>(out);
  launch_elementwise<4>(out.shape(), {&out.strides(), &cond.strides(), &a.strides(), &b.strides()},
                        [=] __device__(const std::array<int64_t, 4>& o) { po[o[0]] = pc[o[1]] ? pa[o[2]] : pb[o[3]]; });
}

void where_cuda(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  DeviceGuard g(a.device().index);
  visit_all(a.dtype(), [&](auto zero) { where_typed<decltype(zero)>(cond, a, b, out); });
}

}  // namespace

NABLA_REGISTER_KERNEL(unary_kernel, cuda, unary_cuda);
NABLA_REGISTER_KERNEL(binary_kernel, cuda, binary_cuda);
NABLA_REGISTER_KERNEL(where_kernel, cuda, where_cuda);

}  // namespace nabla::cuda
