// Element-wise ops: unary maths and activations, binary arithmetic with NumPy broadcasting, where,
// comparisons.
//
//   binary:  out[i] = f(a[bcast(i)], b[bcast(i)])      out.shape = broadcast(a.shape, b.shape)
//   backward of a broadcast input sums the gradient over the dims it was broadcast along (sum_to).
//
// Both tensor inputs must have the same dtype and device (no silent promotion: cast with .to(dtype));
// a scalar operand takes the tensor's dtype. Comparisons return bool tensors.
#pragma once
#include <limits>

#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

// ---- unary ----
Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
// Exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
Tensor gelu(const Tensor& x);
// Tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
Tensor gelu_tanh(const Tensor& x);
Tensor silu(const Tensor& x);
// Pass -inf or +inf for a one-sided clamp. Gradient flows where lo <= x <= hi.
Tensor clamp(const Tensor& x, double lo = -std::numeric_limits<double>::infinity(),
             double hi = std::numeric_limits<double>::infinity());
Tensor pow(const Tensor& x, double exponent);

// ---- binary ----
Tensor add(const Tensor& a, const Tensor& b, double alpha = 1.0);  // a + alpha * b
// relu(a + b) in one pass: a ResNet block's shortcut sum and activation, without the intermediate sum
// (one read and one write of the activation less; backward: g * (y > 0) to both, from the output y).
Tensor add_relu(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b, double alpha = 1.0);  // a - alpha * b
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  // ties send the gradient half to each side
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // cond: bool
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

// A 0-d tensor holding `v` with the dtype and device of `like`.
Tensor scalar_like(double v, const Tensor& like);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// Sums g over the dims that broadcasting expanded, so the result has `shape` (backward of broadcast).
Tensor sum_to(const Tensor& g, const Shape& shape);

// ---- in place (no autograd; for optimizers and initialisers, under no_grad) ----
Tensor& add_(Tensor& self, const Tensor& other, double alpha = 1.0);  // self += alpha * other
Tensor& mul_(Tensor& self, const Tensor& other);
Tensor& mul_(Tensor& self, double s);

}  // namespace nabla

namespace nabla::ops {

enum class UnaryOp : uint8_t {
  neg,
  abs,
  exp,
  log,
  log1p,
  sqrt,
  rsqrt,
  tanh,
  sigmoid,
  relu,
  leaky_relu,
  gelu,
  gelu_tanh,
  silu,
  clamp,
  pow,
  sign,  // internal: the backward of abs
};
enum class BinaryOp : uint8_t {
  add,
  sub,
  mul,
  div,
  pow,
  maximum,
  minimum,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
  // fused backward helpers: out = g * f'(x) with a = g and b = the forward input x (or output y)
  relu_grad,
  leaky_relu_grad,
  gelu_grad,
  gelu_tanh_grad,
  silu_grad,
  clamp_grad,
  sigmoid_grad_from_y,
  tanh_grad_from_y,
  add_relu,  // max(a + b, 0); float types only
};

struct ElementwiseParams {
  double alpha = 1.0;  // add/sub scale, leaky_relu slope, pow exponent, clamp lo
  double beta = 0.0;   // clamp hi
};

// out = op(x); out may alias x (in place) and may be strided.
using UnaryKernelFn = void (*)(UnaryOp op, const Tensor& x, Tensor& out, ElementwiseParams p);
// a, b already expanded to out's shape (stride 0 along broadcast dims). Comparisons write bool.
using BinaryKernelFn = void (*)(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out,
                                ElementwiseParams p);
// out = cond ? a : b, all expanded to out's shape.
using WhereKernelFn = void (*)(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);
// dst = src converted to dst's dtype; same shape, any strides; the devices may differ (the backend of the
// non-CPU side handles transfers).
using CopyKernelFn = void (*)(const Tensor& src, Tensor& dst);
using FillKernelFn = void (*)(Tensor& dst, double value);

inline Kernel<UnaryKernelFn> unary_kernel{"unary"};
inline Kernel<BinaryKernelFn> binary_kernel{"binary"};
inline Kernel<WhereKernelFn> where_kernel{"where"};
inline Kernel<CopyKernelFn> copy_kernel{"copy"};
inline Kernel<FillKernelFn> fill_kernel{"fill"};

const char* unary_op_name(UnaryOp op);
const char* binary_op_name(BinaryOp op);

}  // namespace nabla::ops
