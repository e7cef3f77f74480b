// CPU kernels of the element-wise family: unary, binary (with fused activation backwards) and where. Inputs
// arrive already broadcast to the output's shape; any strides. Copies and fills are in ops/cpu/copy.cpp. The
// CUDA twin is cuda/elementwise.cu.
#include <cmath>

#include "ops/cpu/loops.h"
#include "ops/elementwise.h"

namespace nabla::ops::cpu {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

template <class T, class F>
void map1(const Tensor& x, Tensor& out, F f) {
  const T* px = base<T>(x);
  T* po = base<T>(out);
  strided_for_each<2>(out.shape(), {&out.strides(), &x.strides()},
                      [&](const std::array<int64_t, 2>& o) { po[o[0]] = f(px[o[1]]); });
}

template <class TO, class T, class F>
void map2(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const T* pa = base<T>(a);
  const T* pb = base<T>(b);
  TO* po = base<TO>(out);
  strided_for_each<3>(out.shape(), {&out.strides(), &a.strides(), &b.strides()},
                      [&](const std::array<int64_t, 3>& o) { po[o[0]] = f(pa[o[1]], pb[o[2]]); });
}

void unary_cpu(UnaryOp op, const Tensor& x, Tensor& out, ElementwiseParams p) {
  visit_float(x.dtype(), unary_op_name(op), [&](auto zero) {
    using T = decltype(zero);
    const T alpha = static_cast<T>(p.alpha), beta = static_cast<T>(p.beta);
    switch (op) {
      case UnaryOp::neg:
        return map1<T>(x, out, [](T v) { return -v; });
      case UnaryOp::abs:
        return map1<T>(x, out, [](T v) { return std::abs(v); });
      case UnaryOp::exp:
        return map1<T>(x, out, [](T v) { return std::exp(v); });
      case UnaryOp::log:
        return map1<T>(x, out, [](T v) { return std::log(v); });
      case UnaryOp::log1p:
        return map1<T>(x, out, [](T v) { return std::log1p(v); });
      case UnaryOp::sqrt:
        return map1<T>(x, out, [](T v) { return std::sqrt(v); });
      case UnaryOp::rsqrt:
        return map1<T>(x, out, [](T v) { return T(1) / std::sqrt(v); });
      case UnaryOp::tanh:
        return map1<T>(x, out, [](T v) { return std::tanh(v); });
      case UnaryOp::sigmoid:
        return map1<T>(x, out, [](T v) { return T(1) / (T(1) + std::exp(-v)); });
      case UnaryOp::relu:
        return map1<T>(x, out, [](T v) { return v > T(0) ? v : T(0); });
      case UnaryOp::leaky_relu:
        return map1<T>(x, out, [=](T v) { return v > T(0) ? v : v * alpha; });
      case UnaryOp::gelu:
        return map1<T>(x, out, [](T v) { return T(0.5) * v * (T(1) + std::erf(v * T(kInvSqrt2))); });
      case UnaryOp::gelu_tanh:
        return map1<T>(x, out, [](T v) {
          return T(0.5) * v * (T(1) + std::tanh(T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v)));
        });
      case UnaryOp::silu:
        return map1<T>(x, out, [](T v) { return v / (T(1) + std::exp(-v)); });
      case UnaryOp::clamp:
        return map1<T>(x, out, [=](T v) { return v < alpha ? alpha : (v > beta ? beta : v); });
      case UnaryOp::pow:
        return map1<T>(x, out, [=](T v) { return std::pow(v, alpha); });
      case UnaryOp::sign:
        return map1<T>(x, out, [](T v) { return T((v > T(0)) - (v < T(0))); });
    }
  });
}

template <class T>
void binary_float_only(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out, ElementwiseParams p) {
  const T alpha = static_cast<T>(p.alpha), beta = static_cast<T>(p.beta);
  switch (op) {
    case BinaryOp::pow:
      return map2<T, T>(a, b, out, [](T x, T y) { return std::pow(x, y); });
    case BinaryOp::relu_grad:
      return map2<T, T>(a, b, out, [](T g, T x) { return x > T(0) ? g : T(0); });
    case BinaryOp::add_relu:
      return map2<T, T>(a, b, out, [](T x, T y) {
        const T s = x + y;
        return s > T(0) ? s : T(0);
      });
    case BinaryOp::leaky_relu_grad:
      return map2<T, T>(a, b, out, [=](T g, T x) { return x > T(0) ? g : g * alpha; });
    case BinaryOp::gelu_grad:
      return map2<T, T>(a, b, out, [](T g, T x) {
        T cdf = T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2)));
        T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
        return g * (cdf + x * pdf);
      });
    case BinaryOp::gelu_tanh_grad:
      return map2<T, T>(a, b, out, [](T g, T x) {
        T inner = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
        T th = std::tanh(inner);
        T dinner = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x * x);
        return g * (T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * dinner);
      });
    case BinaryOp::silu_grad:
      return map2<T, T>(a, b, out, [](T g, T x) {
        T s = T(1) / (T(1) + std::exp(-x));
        return g * s * (T(1) + x * (T(1) - s));
      });
    case BinaryOp::clamp_grad:
      return map2<T, T>(a, b, out, [=](T g, T x) { return (x >= alpha && x <= beta) ? g : T(0); });
    case BinaryOp::sigmoid_grad_from_y:
      return map2<T, T>(a, b, out, [](T g, T y) { return g * y * (T(1) - y); });
    case BinaryOp::tanh_grad_from_y:
      return map2<T, T>(a, b, out, [](T g, T y) { return g * (T(1) - y * y); });
    default:
      fail("binary kernel: op ", binary_op_name(op), " is not a float-only op");
  }
}

void binary_cpu(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out, ElementwiseParams p) {
  visit_arith(a.dtype(), binary_op_name(op), [&](auto zero) {
    using T = decltype(zero);
    // Arithmetic on bool is done in int so that true + true does not wrap into something odd.
    using C = std::conditional_t<std::is_same_v<T, bool>, int, T>;
    const C alpha = static_cast<C>(p.alpha);
    switch (op) {
      case BinaryOp::add:
        return map2<T, T>(a, b, out, [=](T x, T y) { return T(C(x) + alpha * C(y)); });
      case BinaryOp::sub:
        return map2<T, T>(a, b, out, [=](T x, T y) { return T(C(x) - alpha * C(y)); });
      case BinaryOp::mul:
        return map2<T, T>(a, b, out, [](T x, T y) { return T(C(x) * C(y)); });
      case BinaryOp::div:
        return map2<T, T>(a, b, out, [](T x, T y) { return T(C(x) / C(y)); });
      case BinaryOp::maximum:
        return map2<T, T>(a, b, out, [](T x, T y) { return x >= y ? x : y; });
      case BinaryOp::minimum:
        return map2<T, T>(a, b, out, [](T x, T y) { return x <= y ? x : y; });
      case BinaryOp::eq:
        return map2<bool, T>(a, b, out, [](T x, T y) { return x == y; });
      case BinaryOp::ne:
        return map2<bool, T>(a, b, out, [](T x, T y) { return x != y; });
      case BinaryOp::lt:
        return map2<bool, T>(a, b, out, [](T x, T y) { return x < y; });
      case BinaryOp::le:
        return map2<bool, T>(a, b, out, [](T x, T y) { return x <= y; });
      case BinaryOp::gt:
        return map2<bool, T>(a, b, out, [](T x, T y) { return x > y; });
      case BinaryOp::ge:
        return map2<bool, T>(a, b, out, [](T x, T y) { return x >= y; });
      default:
        if constexpr (std::is_floating_point_v<T>)
          return binary_float_only<T>(op, a, b, out, p);
        else
          fail(binary_op_name(op), ": dtype ", a.dtype(), " is not supported (expected f32 or f64)");
    }
  });
}

void where_cpu(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  visit_dtype(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const bool* pc = base<bool>(cond);
    const T* pa = base<T>(a);
    const T* pb = base<T>(b);
    T* po = base<T>(out);
    strided_for_each<4>(out.shape(), {&out.strides(), &cond.strides(), &a.strides(), &b.strides()},
                        [&](const std::array<int64_t, 4>& o) { po[o[0]] = pc[o[1]] ? pa[o[2]] : pb[o[3]]; });
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(unary_kernel, cpu, unary_cpu);
NABLA_REGISTER_KERNEL(binary_kernel, cpu, binary_cpu);
NABLA_REGISTER_KERNEL(where_kernel, cpu, where_cpu);

}  // namespace nabla::ops::cpu
