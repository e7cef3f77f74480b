// The element-wise op family: shape/dtype checks, broadcasting, autograd wiring, dispatch.
// Each op's backward sits next to its forward. Saved tensors are detached (see autograd/autograd.h).
#include "ops/elementwise.h"

#include "ops/autocast.h"
#include "ops/factory.h"
#include "ops/reduce.h"
#include "ops/util.h"

namespace nabla {
namespace ops {

const char* unary_op_name(UnaryOp op) {
  static const char* names[] = {"neg",       "abs",  "exp",     "log",  "log1p",      "sqrt",
                                "rsqrt",     "tanh", "sigmoid", "relu", "leaky_relu", "gelu",
                                "gelu_tanh", "silu", "clamp",   "pow",  "sign"};
  return names[static_cast<int>(op)];
}

const char* binary_op_name(BinaryOp op) {
  static const char* names[] = {"add",
                                "sub",
                                "mul",
                                "div",
                                "pow",
                                "maximum",
                                "minimum",
                                "eq",
                                "ne",
                                "lt",
                                "le",
                                "gt",
                                "ge",
                                "relu_grad",
                                "leaky_relu_grad",
                                "gelu_grad",
                                "gelu_tanh_grad",
                                "silu_grad",
                                "clamp_grad",
                                "sigmoid_grad",
                                "tanh_grad",
                                "add_relu"};
  return names[static_cast<int>(op)];
}

Tensor broadcast_view(const Tensor& t, const Shape& shape, const char* op) {
  if (t.shape() == shape) return t;
  NABLA_CHECK(t.dim() <= static_cast<int64_t>(shape.size()), op, ": cannot broadcast ", t.shape(), " to ",
              shape);
  const size_t lead = shape.size() - t.dim();
  Strides st(shape.size(), 0);
  for (size_t d = 0; d < static_cast<size_t>(t.dim()); ++d) {
    int64_t s = t.shape()[d];
    NABLA_CHECK(s == shape[lead + d] || s == 1, op, ": cannot broadcast ", t.shape(), " to ", shape);
    st[lead + d] = (s == 1 && shape[lead + d] != 1) ? 0 : t.strides()[d];
  }
  return raw_view(t, shape, st, t.offset());
}

Tensor contiguous_raw(const Tensor& t, const char* op) {
  if (t.is_contiguous()) return t.detach();
  Tensor c = Tensor::empty(t.shape(), t.dtype(), t.device());
  copy_kernel.get(t.device(), op)(t, c);
  return c;
}

Tensor contiguous_raw(const Tensor& t, const char* op, MemoryFormat format) {
  if (format == MemoryFormat::Contiguous) return contiguous_raw(t, op);
  if (t.is_contiguous(format)) return t.detach();
  Tensor c = Tensor::empty(t.shape(), t.dtype(), t.device(), format);
  copy_kernel.get(t.device(), op)(t, c);
  return c;
}

Tensor empty_preserving(const Tensor& t, DType dtype) {
  if (!t.is_contiguous() && t.is_non_overlapping_and_dense())
    return Tensor::empty_strided(t.shape(), t.strides(), dtype, t.device());
  return Tensor::empty(t.shape(), dtype, t.device());
}
Tensor empty_preserving(const Tensor& t) { return empty_preserving(t, t.dtype()); }

Tensor flat_view(const Tensor& t) {
  // The lowest address of a dense tensor is its offset when all strides are non-negative, which dense
  // strides are.
  return raw_view(t, {t.numel()}, {1}, t.offset());
}

namespace {

// The layout of an element-wise result: the strides of the first input that has the output's shape and
// a dense, non-overlapping, non-row-major layout (a channels-last activation, a transposed matrix), else
// row-major. `flat` says whether every input shares those strides exactly, so that the kernel can walk all
// of them as flat arrays (the vectorised path on CUDA) instead of through strides.
struct ElementwiseLayout {
  Strides strides;  // empty: row-major
  bool flat = false;
};

ElementwiseLayout elementwise_layout(const Shape& shape, std::initializer_list<const Tensor*> inputs) {
  ElementwiseLayout l;
  for (const Tensor* t : inputs)
    if (t->shape() == shape && !t->is_contiguous() && t->is_non_overlapping_and_dense()) {
      l.strides = t->strides();
      break;
    }
  if (l.strides.empty()) return l;
  l.flat = true;
  for (const Tensor* t : inputs) l.flat = l.flat && t->shape() == shape && t->strides() == l.strides;
  return l;
}

Tensor empty_with_layout(const ElementwiseLayout& l, const Shape& shape, DType dtype, Device device) {
  return l.strides.empty() ? Tensor::empty(shape, dtype, device)
                           : Tensor::empty_strided(shape, l.strides, dtype, device);
}

Tensor unary_raw(UnaryOp op, const Tensor& x, ElementwiseParams p = {}) {
  check_defined(unary_op_name(op), x);
  const ElementwiseLayout l = elementwise_layout(x.shape(), {&x});
  Tensor out = empty_with_layout(l, x.shape(), x.dtype(), x.device());
  if (l.flat) {
    Tensor xf = flat_view(x), of = flat_view(out);
    unary_kernel.get(x.device(), unary_op_name(op))(op, xf, of, p);
  } else {
    unary_kernel.get(x.device(), unary_op_name(op))(op, x, out, p);
  }
  return out;
}

Tensor binary_raw(BinaryOp op, const Tensor& a, const Tensor& b, ElementwiseParams p = {}) {
  const char* name = binary_op_name(op);
  check_same(name, a, b);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  bool cmp = op >= BinaryOp::eq && op <= BinaryOp::ge;
  const ElementwiseLayout l = elementwise_layout(shape, {&a, &b});
  Tensor out = empty_with_layout(l, shape, cmp ? DType::b8 : a.dtype(), a.device());
  if (l.flat) {
    Tensor af = flat_view(a), bf = flat_view(b), of = flat_view(out);
    binary_kernel.get(a.device(), name)(op, af, bf, of, p);
  } else {
    binary_kernel.get(a.device(), name)(op, broadcast_view(a, shape, name), broadcast_view(b, shape, name),
                                        out, p);
  }
  return out;
}

// y = op(x), with dy/dx computed as a fused binary kernel of (grad, x) or (grad, y).
Tensor unary_with_grad(UnaryOp op, const Tensor& x, BinaryOp grad_op, bool grad_uses_output,
                       ElementwiseParams p = {}) {
  Tensor y = unary_raw(op, x, p);
  Tensor saved = grad_uses_output ? y.detach() : x.detach();
  autograd::record(unary_op_name(op), y, {x}, [saved, grad_op, p](const Tensor& g) -> std::vector<Tensor> {
    return {binary_raw(grad_op, g, saved, p)};
  });
  return y;
}

}  // namespace
}  // namespace ops

using namespace ops;

Tensor scalar_like(double v, const Tensor& like) {
  Tensor s = Tensor::empty({}, like.dtype(), like.device());
  fill_kernel.get(like.device(), "fill")(s, v);
  return s;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
  NABLA_CHECK(lead >= 0, "sum_to: cannot reduce ", g.shape(), " to ", shape);
  Dims dims;
  for (int64_t d = 0; d < g.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1)) dims.push_back(d);
  Tensor r = dims.empty() ? g : sum(g, dims, /*keepdim=*/true);
  return r.reshape(shape);
}

// ---- unary ----
Tensor neg(const Tensor& x) {
  Tensor y = unary_raw(UnaryOp::neg, x);
  autograd::record("neg", y, {x},
                   [](const Tensor& g) -> std::vector<Tensor> { return {unary_raw(UnaryOp::neg, g)}; });
  return y;
}

Tensor abs(const Tensor& x) {
  Tensor y = unary_raw(UnaryOp::abs, x);
  autograd::record("abs", y, {x}, [xs = x.detach()](const Tensor& g) -> std::vector<Tensor> {
    return {binary_raw(BinaryOp::mul, g, unary_raw(UnaryOp::sign, xs))};
  });
  return y;
}

Tensor exp(const Tensor& x) {
  Tensor y = unary_raw(UnaryOp::exp, x);
  autograd::record("exp", y, {x}, [ys = y.detach()](const Tensor& g) -> std::vector<Tensor> {
    return {binary_raw(BinaryOp::mul, g, ys)};
  });
  return y;
}

Tensor log(const Tensor& x) {
  Tensor y = unary_raw(UnaryOp::log, x);
  autograd::record("log", y, {x}, [xs = x.detach()](const Tensor& g) -> std::vector<Tensor> {
    return {binary_raw(BinaryOp::div, g, xs)};
  });
  return y;
}

Tensor log1p(const Tensor& x) {
  Tensor y = unary_raw(UnaryOp::log1p, x);
  autograd::record("log1p", y, {x}, [xs = x.detach()](const Tensor& g) -> std::vector<Tensor> {
    return {binary_raw(BinaryOp::div, g, binary_raw(BinaryOp::add, xs, scalar_like(1.0, xs)))};
  });
  return y;
}

Tensor sqrt(const Tensor& x) {
  Tensor y = unary_raw(UnaryOp::sqrt, x);
  autograd::record("sqrt", y, {x}, [ys = y.detach()](const Tensor& g) -> std::vector<Tensor> {
    return {
        binary_raw(BinaryOp::div, g, binary_raw(BinaryOp::mul, ys, scalar_like(2.0, ys)))};  // g / (2 sqrt x)
  });
  return y;
}

Tensor rsqrt(const Tensor& x) {
  Tensor y = unary_raw(UnaryOp::rsqrt, x);
  autograd::record("rsqrt", y, {x}, [ys = y.detach()](const Tensor& g) -> std::vector<Tensor> {
    Tensor y3 = unary_raw(UnaryOp::pow, ys, {.alpha = 3.0});  // d/dx x^-1/2 = -0.5 y^3
    return {binary_raw(BinaryOp::mul, g, binary_raw(BinaryOp::mul, y3, scalar_like(-0.5, ys)))};
  });
  return y;
}

Tensor tanh(const Tensor& x) { return unary_with_grad(UnaryOp::tanh, x, BinaryOp::tanh_grad_from_y, true); }
Tensor sigmoid(const Tensor& x) {
  return unary_with_grad(UnaryOp::sigmoid, x, BinaryOp::sigmoid_grad_from_y, true);
}
Tensor relu(const Tensor& x) { return unary_with_grad(UnaryOp::relu, x, BinaryOp::relu_grad, false); }
Tensor leaky_relu(const Tensor& x, double slope) {
  return unary_with_grad(UnaryOp::leaky_relu, x, BinaryOp::leaky_relu_grad, false, {.alpha = slope});
}
Tensor gelu(const Tensor& x) { return unary_with_grad(UnaryOp::gelu, x, BinaryOp::gelu_grad, false); }
Tensor gelu_tanh(const Tensor& x) {
  return unary_with_grad(UnaryOp::gelu_tanh, x, BinaryOp::gelu_tanh_grad, false);
}
Tensor silu(const Tensor& x) { return unary_with_grad(UnaryOp::silu, x, BinaryOp::silu_grad, false); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  NABLA_CHECK(!(lo > hi), "clamp: lo ", lo, " is greater than hi ", hi);
  return unary_with_grad(UnaryOp::clamp, x, BinaryOp::clamp_grad, false, {.alpha = lo, .beta = hi});
}

Tensor pow(const Tensor& x, double e) {
  Tensor y = unary_raw(UnaryOp::pow, x, {.alpha = e});
  autograd::record("pow", y, {x}, [xs = x.detach(), e](const Tensor& g) -> std::vector<Tensor> {
    Tensor d = binary_raw(BinaryOp::mul, unary_raw(UnaryOp::pow, xs, {.alpha = e - 1.0}), scalar_like(e, xs));
    return {binary_raw(BinaryOp::mul, g, d)};
  });
  return y;
}

// ---- binary ----
Tensor add(const Tensor& a_in, const Tensor& b_in, double alpha) {
  Tensor a = a_in, b = b_in;
  autocast_promote(a, b);  // f32 with bf16/f16 under autocast: up to f32 (ops/autocast.h)
  Tensor y = binary_raw(BinaryOp::add, a, b, {.alpha = alpha});
  autograd::record("add", y, {a, b},
                   [sa = a.shape(), sb = b.shape(), alpha](const Tensor& g) -> std::vector<Tensor> {
                     return {sum_to(g, sa), sum_to(alpha == 1.0 ? g : g * alpha, sb)};
                   });
  return y;
}

Tensor add_relu(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in, b = b_in;
  autocast_promote(a, b);  // as add
  check_floating("add_relu", a);
  Tensor y = binary_raw(BinaryOp::add_relu, a, b);
  autograd::record(
      "add_relu", y, {a, b},
      [y_saved = y.detach(), sa = a.shape(), sb = b.shape()](const Tensor& g) -> std::vector<Tensor> {
        // relu'(a + b) is (y > 0): one mask pass, shared by both inputs.
        Tensor gm = binary_raw(BinaryOp::relu_grad, g, y_saved);
        return {sum_to(gm, sa), sum_to(gm, sb)};
      });
  return y;
}

Tensor sub(const Tensor& a_in, const Tensor& b_in, double alpha) {
  Tensor a = a_in, b = b_in;
  autocast_promote(a, b);  // f32 with bf16/f16 under autocast: up to f32 (ops/autocast.h)
  Tensor y = binary_raw(BinaryOp::sub, a, b, {.alpha = alpha});
  autograd::record("sub", y, {a, b},
                   [sa = a.shape(), sb = b.shape(), alpha](const Tensor& g) -> std::vector<Tensor> {
                     return {sum_to(g, sa), sum_to(g * -alpha, sb)};
                   });
  return y;
}

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in, b = b_in;
  autocast_promote(a, b);  // f32 with bf16/f16 under autocast: up to f32 (ops/autocast.h)
  Tensor y = binary_raw(BinaryOp::mul, a, b);
  bool ga = a.requires_grad(), gb = b.requires_grad();
  autograd::record("mul", y, {a, b},
                   [as = gb ? a.detach() : Tensor(), bs = ga ? b.detach() : Tensor(), sa = a.shape(),
                    sb = b.shape()](const Tensor& g) -> std::vector<Tensor> {
                     return {bs.defined() ? sum_to(binary_raw(BinaryOp::mul, g, bs), sa) : Tensor(),
                             as.defined() ? sum_to(binary_raw(BinaryOp::mul, g, as), sb) : Tensor()};
                   });
  return y;
}

Tensor div(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in, b = b_in;
  autocast_promote(a, b);  // f32 with bf16/f16 under autocast: up to f32 (ops/autocast.h)
  Tensor y = binary_raw(BinaryOp::div, a, b);
  autograd::record(
      "div", y, {a, b},
      [bs = b.detach(), ys = y.detach(), sa = a.shape(),
       sb = b.shape()](const Tensor& g) -> std::vector<Tensor> {
        Tensor ga = binary_raw(BinaryOp::div, g, bs);
        // d(a/b)/db = -a/b^2 = -y/b
        return {sum_to(ga, sa), sum_to(unary_raw(UnaryOp::neg, binary_raw(BinaryOp::mul, ga, ys)), sb)};
      });
  return y;
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor y = binary_raw(BinaryOp::pow, a, b);
  autograd::record(
      "pow", y, {a, b},
      [as = a.detach(), bs = b.detach(), ys = y.detach()](const Tensor& g) -> std::vector<Tensor> {
        // d/da a^b = b a^(b-1);  d/db a^b = a^b log a
        Tensor da = bs * binary_raw(BinaryOp::pow, as, bs - 1.0);
        Tensor db = ys * unary_raw(UnaryOp::log, as);
        return {sum_to(g * da, as.shape()), sum_to(g * db, bs.shape())};
      });
  return y;
}

namespace {
// Gradient mask of maximum/minimum for the first operand: 1 where it wins, 0.5 at ties, 0 where it loses.
Tensor winner_mask(BinaryOp win, const Tensor& a, const Tensor& b) {
  Tensor w = binary_raw(win, a, b).to(a.dtype());
  Tensor tie = binary_raw(BinaryOp::eq, a, b).to(a.dtype());
  return w + tie * 0.5;
}

Tensor extremum(BinaryOp op, BinaryOp win, const char* name, const Tensor& a, const Tensor& b) {
  Tensor y = binary_raw(op, a, b);
  autograd::record(name, y, {a, b},
                   [as = a.detach(), bs = b.detach(), win](const Tensor& g) -> std::vector<Tensor> {
                     return {sum_to(g * winner_mask(win, as, bs), as.shape()),
                             sum_to(g * winner_mask(win, bs, as), bs.shape())};
                   });
  return y;
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return extremum(BinaryOp::maximum, BinaryOp::gt, "maximum", a, b);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return extremum(BinaryOp::minimum, BinaryOp::lt, "minimum", a, b);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same("where", a, b);
  NABLA_CHECK(cond.dtype() == DType::b8, "where: condition must be bool, got ", cond.dtype(), " ",
              cond.shape());
  NABLA_CHECK(cond.device() == a.device(), "where: condition on ", cond.device(), ", values on ", a.device());
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor y = Tensor::empty(shape, a.dtype(), a.device());
  where_kernel.get(a.device(), "where")(broadcast_view(cond, shape, "where"),
                                        broadcast_view(a, shape, "where"), broadcast_view(b, shape, "where"),
                                        y);
  autograd::record(
      "where", y, {a, b},
      [c = cond.detach(), sa = a.shape(), sb = b.shape()](const Tensor& g) -> std::vector<Tensor> {
        Tensor z = scalar_like(0.0, g);
        return {sum_to(where(c, g, z), sa), sum_to(where(c, z, g), sb)};
      });
  return y;
}

Tensor eq(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::ge, a, b); }

// ---- operators ----
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }

// ---- in place ----
namespace {
void check_inplace(const char* op, const Tensor& self, const Tensor& other) {
  check_same(op, self, other);
  NABLA_CHECK(!autograd::grad_enabled() || !self.requires_grad(), op,
              ": in-place update of a tensor that requires grad; do it under NoGradGuard");
  NABLA_CHECK(broadcast_shapes(self.shape(), other.shape(), op) == self.shape(), op, ": cannot broadcast ",
              other.shape(), " into ", self.shape());
}
}  // namespace

Tensor& add_(Tensor& self, const Tensor& other, double alpha) {
  check_inplace("add_", self, other);
  binary_kernel.get(self.device(), "add_")(BinaryOp::add, self, broadcast_view(other, self.shape(), "add_"),
                                           self, {.alpha = alpha});
  return self;
}

Tensor& mul_(Tensor& self, const Tensor& other) {
  check_inplace("mul_", self, other);
  binary_kernel.get(self.device(), "mul_")(BinaryOp::mul, self, broadcast_view(other, self.shape(), "mul_"),
                                           self, {});
  return self;
}

Tensor& mul_(Tensor& self, double s) { return mul_(self, scalar_like(s, self)); }

}  // namespace nabla
