// View ops (share storage, change sizes/strides/offset) and copies, with their backwards.
//
//   permute(x, p): sizes'[i] = sizes[p[i]], strides'[i] = strides[p[i]]        backward: permute by p^-1
//   narrow(x, d, s, n): offset += s * strides[d], sizes[d] = n                 backward: zero-pad back
//   select(x, d, i): offset += i * strides[d], drop dim d                      backward: zero-fill, set slice
//   expand(x, shape): stride 0 along dims of size 1 that grow                  backward: sum_to
//   view(x, shape): new strides over the same memory, when the layout allows   backward: reshape back
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/reduce.h"
#include "ops/util.h"

namespace nabla {
using namespace ops;

namespace {

// Resolves one -1 in `shape` against numel.
Shape infer_shape(const Shape& in, int64_t numel, const char* op) {
  Shape s = in;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      NABLA_CHECK(infer < 0, op, ": only one dim can be -1, got ", in);
      infer = static_cast<int64_t>(i);
    } else {
      NABLA_CHECK(s[i] >= 0, op, ": negative size in ", in);
      known *= s[i];
    }
  }
  if (infer >= 0) {
    NABLA_CHECK(known != 0 && numel % known == 0, op, ": cannot infer -1 in ", in, " for ", numel,
                " elements");
    s[infer] = numel / known;
  }
  NABLA_CHECK(numel_of(s) == numel, op, ": shape ", in, " is invalid for a tensor of ", numel, " elements");
  return s;
}

// Strides that view `old` (sizes/strides) as `shape` without copying, or false when impossible
// (the layout would need a copy). Walks groups of old dims that are contiguous with each other.
bool view_strides(const Shape& old_sizes, const Strides& old_strides, const Shape& shape, Strides& out) {
  out.assign(shape.size(), 0);
  if (numel_of(old_sizes) == 0 || old_sizes.empty()) {
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_sizes.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_sizes[d];
    if (d == 0 || (old_sizes[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Tensor reshape_backward_node(const char* name, Tensor y, const Tensor& x) {
  autograd::record(name, y, {x},
                   [s = x.shape()](const Tensor& g) -> std::vector<Tensor> { return {g.reshape(s)}; });
  return y;
}

}  // namespace

Tensor Tensor::view(const Shape& shape) const {
  Shape s = infer_shape(shape, numel(), "view");
  Strides st;
  NABLA_CHECK(view_strides(this->shape(), strides(), s, st), "view: cannot view a tensor of shape ",
              this->shape(), " and strides ", strides(), " as ", s, " without a copy; use reshape()");
  return reshape_backward_node("view", raw_view(*this, s, st, offset()), *this);
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = infer_shape(shape, numel(), "reshape");
  Strides st;
  if (view_strides(this->shape(), strides(), s, st))
    return reshape_backward_node("reshape", raw_view(*this, s, st, offset()), *this);
  return contiguous().view(s);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  int64_t a = wrap_dim(start_dim, dim(), "flatten"), b = wrap_dim(end_dim, dim(), "flatten");
  NABLA_CHECK(a <= b, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape s(shape().begin(), shape().begin() + a);
  int64_t n = 1;
  for (int64_t d = a; d <= b; ++d) n *= shape()[d];
  s.push_back(n);
  s.insert(s.end(), shape().begin() + b + 1, shape().end());
  return reshape(s);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  NABLA_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: got ", dims.size(), " dims ", Shape(dims),
              " for a tensor of ", dim(), " dims ", shape());
  Shape s(dim());
  Strides st(dim());
  std::vector<int64_t> inverse(dim(), -1);
  for (int64_t i = 0; i < dim(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    NABLA_CHECK(inverse[d] < 0, "permute: dim ", d, " repeats in ", Shape(dims));
    inverse[d] = i;
    s[i] = shape()[d];
    st[i] = strides()[d];
  }
  Tensor y = raw_view(*this, s, st, offset());
  autograd::record("permute", y, {*this},
                   [inverse](const Tensor& g) -> std::vector<Tensor> { return {g.permute(inverse)}; });
  return y;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> p(dim());
  for (int64_t i = 0; i < dim(); ++i) p[i] = i;
  if (dim() > 0) std::swap(p[wrap_dim(d0, dim(), "transpose")], p[wrap_dim(d1, dim(), "transpose")]);
  return permute(p);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  NABLA_CHECK(dim() > 0, "narrow: cannot narrow a 0-d tensor");
  d = wrap_dim(d, dim(), "narrow");
  if (start < 0) start += shape()[d];
  NABLA_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], "narrow: range [", start, ", ",
              start + length, ") is out of bounds for dim ", d, " of size ", shape()[d], " (shape ", shape(),
              ")");
  Shape s = shape();
  s[d] = length;
  Tensor y = raw_view(*this, s, strides(), offset() + start * strides()[d]);
  autograd::record("narrow", y, {*this},
                   [in = shape(), dt = dtype(), d, start, length](const Tensor& g) -> std::vector<Tensor> {
                     Tensor z = zeros(in, {.dtype = dt, .device = g.device()});
                     z.narrow(d, start, length).copy_(g);
                     return {z};
                   });
  return y;
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  NABLA_CHECK(dim() > 0, "select: cannot select from a 0-d tensor");
  d = wrap_dim(d, dim(), "select");
  int64_t i = index < 0 ? index + shape()[d] : index;
  NABLA_CHECK(i >= 0 && i < shape()[d], "select: index ", index, " is out of range for dim ", d, " of size ",
              shape()[d], " (shape ", shape(), ")");
  Shape s = shape();
  Strides st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  Tensor y = raw_view(*this, s, st, offset() + i * strides()[d]);
  autograd::record("select", y, {*this},
                   [in = shape(), dt = dtype(), d, i](const Tensor& g) -> std::vector<Tensor> {
                     Tensor z = zeros(in, {.dtype = dt, .device = g.device()});
                     z.select(d, i).copy_(g);
                     return {z};
                   });
  return y;
}

Tensor Tensor::expand(const Shape& shape_in) const {
  NABLA_CHECK(static_cast<int64_t>(shape_in.size()) >= dim(), "expand: cannot expand ", shape(), " to ",
              shape_in, " (fewer dims)");
  Shape s = shape_in;
  const size_t lead = s.size() - dim();
  for (size_t i = lead; i < s.size(); ++i)
    if (s[i] == -1) s[i] = shape()[i - lead];
  Tensor y = broadcast_view(*this, s, "expand");
  if (y.is_same(*this)) y = raw_view(*this, shape(), strides(), offset());
  autograd::record("expand", y, {*this},
                   [in = shape()](const Tensor& g) -> std::vector<Tensor> { return {sum_to(g, in)}; });
  return y;
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (shape()[d] != 1)
    return reshape_backward_node("squeeze", raw_view(*this, shape(), strides(), offset()), *this);
  Shape s = shape();
  Strides st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return reshape_backward_node("squeeze", raw_view(*this, s, st, offset()), *this);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  Strides st = strides();
  int64_t new_stride = d < dim() ? strides()[d] * shape()[d] : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, new_stride);
  return reshape_backward_node("unsqueeze", raw_view(*this, s, st, offset()), *this);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor y = Tensor::empty(shape(), dtype(), device());
  copy_kernel.get(device(), "contiguous")(*this, y);
  autograd::record("contiguous", y, {*this}, [](const Tensor& g) -> std::vector<Tensor> { return {g}; });
  return y;
}

Tensor Tensor::contiguous(MemoryFormat format) const {
  if (format == MemoryFormat::Contiguous) return contiguous();
  NABLA_CHECK(dim() == 4, "contiguous(channels_last): expected a 4-D [N, C, H, W] tensor, got ", shape());
  if (is_contiguous(format)) return *this;
  Tensor y = Tensor::empty(shape(), dtype(), device(), format);
  copy_kernel.get(device(), "contiguous")(*this, y);
  autograd::record("contiguous", y, {*this}, [](const Tensor& g) -> std::vector<Tensor> { return {g}; });
  return y;
}

Tensor Tensor::clone() const {
  Tensor y = Tensor::empty(shape(), dtype(), device());
  copy_kernel.get(device(), "clone")(*this, y);
  autograd::record("clone", y, {*this}, [](const Tensor& g) -> std::vector<Tensor> { return {g}; });
  return y;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  // Casts and moves keep a channels-last layout (autocast of a channels-last activation or weight, a
  // channels-last model moved to the GPU); other layouts come out row-major.
  Tensor y = Tensor::empty(shape(), dt, device(), suggest_memory_format());
  copy_kernel.get(device(), "cast")(*this, y);
  if (is_floating(dt))
    autograd::record("cast", y, {*this},
                     [src = dtype()](const Tensor& g) -> std::vector<Tensor> { return {g.to(src)}; });
  return y;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor y = Tensor::empty(shape(), dtype(), dev, suggest_memory_format());
  Device backend = dev.is_cpu() ? device() : dev;  // the non-CPU side's backend moves the bytes
  copy_kernel.get(backend, "to(device)")(*this, y);
  autograd::record("to_device", y, {*this},
                   [src = device()](const Tensor& g) -> std::vector<Tensor> { return {g.to(src)}; });
  return y;
}

Tensor Tensor::sum() const { return nabla::sum(*this); }
Tensor Tensor::mean() const { return nabla::mean(*this); }

Tensor& Tensor::copy_(const Tensor& src) {
  check_defined("copy_", src, "source");
  NABLA_CHECK(!autograd::grad_enabled() || !requires_grad(),
              "copy_: in-place copy into a tensor that requires grad; do it under NoGradGuard");
  Tensor s = broadcast_view(src, shape(), "copy_");
  Device backend = device().is_cpu() ? src.device() : device();
  copy_kernel.get(backend, "copy_")(s, *this);
  return *this;
}

Tensor& Tensor::fill_(double value) {
  NABLA_CHECK(!autograd::grad_enabled() || !requires_grad(),
              "fill_: in-place fill of a tensor that requires grad; do it under NoGradGuard");
  fill_kernel.get(device(), "fill_")(*this, value);
  return *this;
}

}  // namespace nabla
