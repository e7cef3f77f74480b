// Reductions. The kernel reduces the middle dim of a contiguous [outer, r, inner] view; the op layer
// turns "any set of dims" into that form (a permute + copy only when the reduced dims are not adjacent).
//
// Backwards: sum -> broadcast g back; mean -> g / N; amax/amin -> g to the maxima, split between ties;
// max/min(dim) -> g to the argmax; var/std/norm/logsumexp are composites of ops, differentiated through them.
#include "ops/reduce.h"

#include <algorithm>
#include <cmath>

#include "ops/autocast.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/util.h"

namespace nabla {
namespace ops {

Shape reduced_shape(const Shape& shape, const Dims& dims, bool keepdim, Dims* wrapped, const char* op) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  Dims w;
  if (dims.empty()) {
    for (int64_t d = 0; d < nd; ++d) w.push_back(d);
  } else {
    for (int64_t d : dims) w.push_back(wrap_dim(d, nd, op));
  }
  std::sort(w.begin(), w.end());
  NABLA_CHECK(std::adjacent_find(w.begin(), w.end()) == w.end(), op, ": repeated dim in ", Shape(dims));
  if (nd == 0) w.clear();  // a 0-d tensor reduces to itself
  Shape out;
  for (int64_t d = 0; d < nd; ++d) {
    bool red = std::binary_search(w.begin(), w.end(), d);
    if (!red)
      out.push_back(shape[d]);
    else if (keepdim)
      out.push_back(1);
  }
  if (wrapped) *wrapped = w;
  return out;
}

namespace {

// Runs the reduce kernel over `dims` of x; returns values with the keepdim shape (and indices if asked).
Tensor reduce_raw(ReduceOp op, const Tensor& x, const Dims& dims, bool keepdim, const char* name,
                  Tensor* indices = nullptr) {
  check_defined(name, x);
  Dims w;
  Shape out_shape = reduced_shape(x.shape(), dims, keepdim, &w, name);
  Shape keep_shape = reduced_shape(x.shape(), dims, true, nullptr, name);
  if (op != ReduceOp::sum)
    for (int64_t d : w)
      NABLA_CHECK(x.shape()[d] > 0, name, ": cannot reduce over dim ", d, " of size 0 in ", x.shape());
  // Make the reduced dims one adjacent block: [kept-before..., reduced..., kept-after...].
  Tensor src = x;
  bool adjacent = w.empty() || w.back() - w.front() + 1 == static_cast<int64_t>(w.size());
  int64_t first = w.empty() ? x.dim() : w.front();
  if (!adjacent) {
    Dims perm;
    for (int64_t d = 0; d < x.dim(); ++d)
      if (!std::binary_search(w.begin(), w.end(), d)) perm.push_back(d);
    first = static_cast<int64_t>(perm.size());
    perm.insert(perm.end(), w.begin(), w.end());
    Strides st(perm.size());
    Shape sz(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) {
      sz[i] = x.shape()[perm[i]];
      st[i] = x.strides()[perm[i]];
    }
    src = raw_view(x, sz, st, x.offset());
  }
  if (!src.is_contiguous()) {
    Tensor c = Tensor::empty(src.shape(), src.dtype(), src.device());
    copy_kernel.get(src.device(), name)(src, c);
    src = c;
  }
  int64_t outer = 1, r = 1, inner = 1;
  for (int64_t d = 0; d < src.dim(); ++d) {
    if (d < first)
      outer *= src.shape()[d];
    else if (d < first + static_cast<int64_t>(w.size()))
      r *= src.shape()[d];
    else
      inner *= src.shape()[d];
  }
  Tensor out = Tensor::empty(keep_shape, x.dtype(), x.device());
  if (indices) *indices = Tensor::empty(keep_shape, DType::i64, x.device());
  reduce_kernel.get(x.device(), name)(op, src, outer, r, inner, out, indices);
  if (!keepdim) {
    out = raw_view(out, out_shape, contiguous_strides(out_shape), 0);
    if (indices) *indices = raw_view(*indices, out_shape, contiguous_strides(out_shape), 0);
  }
  return out;
}

// g has the reduced shape (keepdim or not); returns it viewed with keepdim, broadcast to x's shape.
Tensor expand_back(const Tensor& g, const Shape& x_shape, const Dims& dims) {
  Shape keep = reduced_shape(x_shape, dims, true, nullptr, "backward");
  return g.reshape(keep).expand(x_shape);
}

Tensor extremum_all(ReduceOp op, const char* name, const Tensor& x, const Dims& dims, bool keepdim) {
  Tensor y = reduce_raw(op, x, dims, keepdim, name);
  autograd::record(name, y, {x},
                   [xs = x.detach(), ys = y.detach(), dims](const Tensor& g) -> std::vector<Tensor> {
                     Tensor mask = eq(xs, expand_back(ys, xs.shape(), dims)).to(xs.dtype());
                     Tensor count = sum(mask, dims, true);
                     return {(expand_back(g, xs.shape(), dims) * mask / count).contiguous()};
                   });
  return y;
}

ValuesIndices extremum_dim(ReduceOp op, const char* name, const Tensor& x, int64_t dim, bool keepdim) {
  Tensor idx;
  int64_t d = wrap_dim(dim, x.dim(), name);
  Tensor y = reduce_raw(op, x, {d}, keepdim, name, &idx);
  autograd::record(
      name, y, {x},
      [shape = x.shape(), dt = x.dtype(), ids = idx.detach(), d](const Tensor& g) -> std::vector<Tensor> {
        // one-hot of the winning index along d, times g broadcast back.
        Shape pos_shape(shape.size(), 1);
        if (!shape.empty()) pos_shape[d] = shape[d];
        Tensor pos = arange(shape.empty() ? 1 : shape[d], {.dtype = DType::i64, .device = g.device()})
                         .reshape(pos_shape);
        Tensor hit = eq(pos, expand_back(ids, shape, {d}).contiguous()).to(dt);
        return {(expand_back(g, shape, {d}) * hit).contiguous()};
      });
  return {y, idx};
}

}  // namespace
}  // namespace ops

using namespace ops;

Tensor sum(const Tensor& x_in, const Dims& dims, bool keepdim) {
  const Tensor x = autocast_input(x_in, AutocastKind::f32);
  Tensor y = reduce_raw(ReduceOp::sum, x, dims, keepdim, "sum");
  autograd::record("sum", y, {x}, [shape = x.shape(), dims](const Tensor& g) -> std::vector<Tensor> {
    return {expand_back(g, shape, dims).contiguous()};
  });
  return y;
}

Tensor mean(const Tensor& x_in, const Dims& dims, bool keepdim) {
  const Tensor x = autocast_input(x_in, AutocastKind::f32);
  check_floating("mean", x);
  Shape s = reduced_shape(x.shape(), dims, keepdim, nullptr, "mean");
  int64_t count = x.numel() / std::max<int64_t>(1, numel_of(s));
  if (numel_of(s) == 0) count = 0;
  return sum(x, dims, keepdim) / static_cast<double>(count);
}

Tensor amax(const Tensor& x, const Dims& dims, bool keepdim) {
  return extremum_all(ReduceOp::max, "amax", x, dims, keepdim);
}
Tensor amin(const Tensor& x, const Dims& dims, bool keepdim) {
  return extremum_all(ReduceOp::min, "amin", x, dims, keepdim);
}
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_dim(ReduceOp::max, "max", x, dim, keepdim);
}
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_dim(ReduceOp::min, "min", x, dim, keepdim);
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  Tensor idx;
  reduce_raw(ReduceOp::max, x.detach(), {wrap_dim(dim, x.dim(), "argmax")}, keepdim, "argmax", &idx);
  return idx;
}

Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  Tensor idx;
  reduce_raw(ReduceOp::min, x.detach(), {wrap_dim(dim, x.dim(), "argmin")}, keepdim, "argmin", &idx);
  return idx;
}

Tensor var(const Tensor& x_in, const Dims& dims, int64_t correction, bool keepdim) {
  const Tensor x = autocast_input(x_in, AutocastKind::f32);
  check_floating("var", x);
  Shape s = reduced_shape(x.shape(), dims, keepdim, nullptr, "var");
  int64_t n = x.numel() / std::max<int64_t>(1, numel_of(s));
  Tensor centred = x - mean(x, dims, true);
  return sum(centred * centred, dims, keepdim) / static_cast<double>(std::max<int64_t>(0, n - correction));
}

Tensor std_dev(const Tensor& x, const Dims& dims, int64_t correction, bool keepdim) {
  return sqrt(var(x, dims, correction, keepdim));
}

Tensor norm(const Tensor& x_in, double p, const Dims& dims, bool keepdim) {
  const Tensor x = autocast_input(x_in, AutocastKind::f32);
  check_floating("norm", x);
  NABLA_CHECK(p > 0, "norm: p must be > 0, got ", p);
  if (std::isinf(p)) return amax(abs(x), dims, keepdim);
  if (p == 1.0) return sum(abs(x), dims, keepdim);
  if (p == 2.0) return sqrt(sum(x * x, dims, keepdim));
  return pow(sum(pow(abs(x), p), dims, keepdim), 1.0 / p);
}

Tensor logsumexp(const Tensor& x_in, const Dims& dims, bool keepdim) {
  const Tensor x = autocast_input(x_in, AutocastKind::f32);
  check_floating("logsumexp", x);
  Tensor m = amax(x.detach(), dims, true);
  // A slice that is all -inf would give inf - inf: shift it by 0 instead.
  m = where(eq(abs(m), scalar_like(INFINITY, m)), zeros_like(m), m);
  Tensor y = log(sum(exp(x - m), dims, true)) + m;
  if (keepdim) return y;
  return y.reshape(reduced_shape(x.shape(), dims, false, nullptr, "logsumexp"));
}

}  // namespace nabla
