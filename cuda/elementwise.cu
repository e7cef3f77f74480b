// CUDA kernels of the element-wise family (unary, binary with fused activation backwards, where). The maths
// of each op is the CPU kernel's (ops/cpu/elementwise.cpp); 16-bit floats compute in f32.
//
// Float operands of one dtype that share a dense layout (row-major, channels-last, any permutation) and are
// 16-byte aligned take the packed path: each thread moves 16 bytes per operand (4 f32, 8 bf16/f16, 2 f64),
// which is what it takes to get near the copy bandwidth of HBM; with one 2-byte load per thread a bf16 add
// ran at about a quarter of it (issue 5's profile). Everything else uses the strided launcher.
#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/vec.cuh"
#include "ops/elementwise.h"
#include "ops/util.h"

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
    case UnaryOp::neg:
      return -v;
    case UnaryOp::abs:
      return v < A(0) ? -v : v;
    case UnaryOp::exp:
      return ::exp(v);
    case UnaryOp::log:
      return ::log(v);
    case UnaryOp::log1p:
      return ::log1p(v);
    case UnaryOp::sqrt:
      return ::sqrt(v);
    case UnaryOp::rsqrt:
      return A(1) / ::sqrt(v);
    case UnaryOp::tanh:
      return ::tanh(v);
    case UnaryOp::sigmoid:
      return A(1) / (A(1) + ::exp(-v));
    case UnaryOp::relu:
      return v > A(0) ? v : A(0);
    case UnaryOp::leaky_relu:
      return v > A(0) ? v : v * alpha;
    case UnaryOp::gelu:
      return A(0.5) * v * (A(1) + ::erf(v * A(kInvSqrt2)));
    case UnaryOp::gelu_tanh:
      return A(0.5) * v * (A(1) + ::tanh(A(kSqrt2OverPi) * (v + A(0.044715) * v * v * v)));
    case UnaryOp::silu:
      return v / (A(1) + ::exp(-v));
    case UnaryOp::clamp:
      return v < alpha ? alpha : (v > beta ? beta : v);
    case UnaryOp::pow:
      return ::pow(v, alpha);
    case UnaryOp::sign:
      return A((v > A(0)) - (v < A(0)));
  }
  return v;
}

template <class A>
__device__ __forceinline__ A binary_fn(BinaryOp op, A x, A y, A alpha, A beta) {
  switch (op) {
    case BinaryOp::add:
      return x + alpha * y;
    case BinaryOp::sub:
      return x - alpha * y;
    case BinaryOp::mul:
      return x * y;
    case BinaryOp::div:
      return x / y;
    case BinaryOp::pow:
      return ::pow(x, y);
    case BinaryOp::maximum:
      return x >= y ? x : y;
    case BinaryOp::minimum:
      return x <= y ? x : y;
    case BinaryOp::relu_grad:
      return y > A(0) ? x : A(0);
    case BinaryOp::leaky_relu_grad:
      return y > A(0) ? x : x * alpha;
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
    case BinaryOp::clamp_grad:
      return (y >= alpha && y <= beta) ? x : A(0);
    case BinaryOp::sigmoid_grad_from_y:
      return x * y * (A(1) - y);
    case BinaryOp::tanh_grad_from_y:
      return x * (A(1) - y * y);
    case BinaryOp::add_relu: {
      const A s = x + y;
      return s > A(0) ? s : A(0);
    }
    default:
      return A(0);  // comparisons are handled separately
  }
}

// Integer arithmetic: only the ops that make sense on integers (the op layer forwards the others as errors).
template <class A>
__device__ __forceinline__ A int_binary_fn(BinaryOp op, A x, A y, A alpha) {
  switch (op) {
    case BinaryOp::add:
      return x + alpha * y;
    case BinaryOp::sub:
      return x - alpha * y;
    case BinaryOp::mul:
      return x * y;
    case BinaryOp::div:
      return y == A(0) ? A(0) : x / y;
    case BinaryOp::maximum:
      return x >= y ? x : y;
    case BinaryOp::minimum:
      return x <= y ? x : y;
    default:
      return A(0);
  }
}

__device__ __forceinline__ bool compare_fn(BinaryOp op, double x, double y) {
  switch (op) {
    case BinaryOp::eq:
      return x == y;
    case BinaryOp::ne:
      return x != y;
    case BinaryOp::lt:
      return x < y;
    case BinaryOp::le:
      return x <= y;
    case BinaryOp::gt:
      return x > y;
    case BinaryOp::ge:
      return x >= y;
    default:
      return false;
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Elements per 16-byte pack on the packed path.
template <class T>
constexpr int kPack = static_cast<int>(16 / sizeof(T));

// True when `out` and every input share one dtype and one dense, non-overlapping layout, all 16-byte
// aligned: the operands are then `numel` consecutive elements from their data pointers, in the same order.
bool packable(const Tensor& out, std::initializer_list<const Tensor*> inputs) {
  if (!out.is_non_overlapping_and_dense() || !aligned16(out.data_ptr())) return false;
  for (const Tensor* t : inputs)
    if (t->dtype() != out.dtype() || !ops::same_dense_layout(*t, out) || !aligned16(t->data_ptr()))
      return false;
  return true;
}

// No __restrict__: in-place ops (relu_, add_) pass out == x; each element is read and written by one thread.
template <class T>
__global__ void unary_packed(UnaryOp op, const T* x, T* out, int64_t n, acc_t<T> a, acc_t<T> b) {
  using A = acc_t<T>;
  constexpr int V = kPack<T>;
  const int64_t packs = n / V, step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  for (int64_t i = first; i < packs; i += step) {
    A v[V];
    load_pack<T, V>(x + i * V, v);
#pragma unroll
    for (int e = 0; e < V; ++e) v[e] = unary_fn<A>(op, v[e], a, b);
    store_pack<T, V>(out + i * V, v);
  }
  for (int64_t i = packs * V + first; i < n; i += step) out[i] = store<T>(unary_fn<A>(op, load(x[i]), a, b));
}

template <class T>
__global__ void binary_packed(BinaryOp op, const T* x, const T* y, T* out, int64_t n, acc_t<T> a,
                              acc_t<T> b) {
  using A = acc_t<T>;
  constexpr int V = kPack<T>;
  const int64_t packs = n / V, step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  for (int64_t i = first; i < packs; i += step) {
    A u[V], v[V];
    load_pack<T, V>(x + i * V, u);
    load_pack<T, V>(y + i * V, v);
#pragma unroll
    for (int e = 0; e < V; ++e) u[e] = binary_fn<A>(op, u[e], v[e], a, b);
    store_pack<T, V>(out + i * V, u);
  }
  for (int64_t i = packs * V + first; i < n; i += step)
    out[i] = store<T>(binary_fn<A>(op, load(x[i]), load(y[i]), a, b));
}

template <class T>
void unary_typed(UnaryOp op, const Tensor& x, Tensor& out, ElementwiseParams p) {
  using A = acc_t<T>;
  const T* px = ptr<T>(x);
  T* po = ptr<T>(out);
  const A a = static_cast<A>(p.alpha), b = static_cast<A>(p.beta);
  if (packable(out, {&x})) {
    const int64_t n = out.numel();
    if (n == 0) return;
    unary_packed<T>
        <<<grid_for((n + kPack<T> - 1) / kPack<T>), kBlock, 0, current_stream()>>>(op, px, po, n, a, b);
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  launch_elementwise<2>(out.shape(), {&out.strides(), &x.strides()},
                        [=] __device__(const std::array<int64_t, 2>& o) {
                          po[o[0]] = store<T>(unary_fn<A>(op, load(px[o[1]]), a, b));
                        });
}

void unary_cuda(UnaryOp op, const Tensor& x, Tensor& out, ElementwiseParams p) {
  DeviceGuard g(x.device().index);
  visit_cuda_float(x.dtype(), ops::unary_op_name(op),
                   [&](auto zero) { unary_typed<decltype(zero)>(op, x, out, p); });
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
                            po[o[0]] = compare_fn(op, static_cast<double>(load(pa[o[1]])),
                                                  static_cast<double>(load(pb[o[2]])));
                          });
    return;
  }
  T* po = ptr<T>(out);
  const A alpha = static_cast<A>(p.alpha), beta = static_cast<A>(p.beta);
  if constexpr (std::is_floating_point_v<A>) {
    if (packable(out, {&a, &b})) {
      const int64_t n = out.numel();
      if (n == 0) return;
      binary_packed<T><<<grid_for((n + kPack<T> - 1) / kPack<T>), kBlock, 0, current_stream()>>>(
          op, pa, pb, po, n, alpha, beta);
      NABLA_CUDA_LAUNCH_CHECK();
      return;
    }
    launch_elementwise<3>(out.shape(), {&out.strides(), &a.strides(), &b.strides()},
                          [=] __device__(const std::array<int64_t, 3>& o) {
                            po[o[0]] =
                                store<T>(binary_fn<A>(op, load(pa[o[1]]), load(pb[o[2]]), alpha, beta));
                          });
  } else {
    NABLA_CHECK(op <= BinaryOp::minimum && op != BinaryOp::pow, ops::binary_op_name(op), ": dtype ",
                a.dtype(), " is not supported (expected a float type)");
    launch_elementwise<3>(out.shape(), {&out.strides(), &a.strides(), &b.strides()},
                          [=] __device__(const std::array<int64_t, 3>& o) {
                            po[o[0]] = store<T>(int_binary_fn<A>(op, load(pa[o[1]]), load(pb[o[2]]), alpha));
                          });
  }
}

void binary_cuda(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out, ElementwiseParams p) {
  DeviceGuard g(a.device().index);
  const bool cmp = op >= BinaryOp::eq && op <= BinaryOp::ge;
  visit_all(a.dtype(), [&](auto zero) { binary_typed<decltype(zero)>(op, cmp, a, b, out, p); });
}

template <class T>
void where_typed(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  const bool* pc = ptr<bool>(cond);
  const T* pa = ptr<T>(a);
  const T* pb = ptr<T>(b);
  T* po = ptr<T>(out);
  launch_elementwise<4>(
      out.shape(), {&out.strides(), &cond.strides(), &a.strides(), &b.strides()},
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
