// The index family's op layer: joining (cat, stack), splitting (split, chunk), indexing (index_select,
// gather, scatter_add), masked_fill and one_hot. Shape/dtype/range checks, autograd wiring, dispatch.
//
// cat writes each input into its slice of the output with the copy kernel, and masked_fill is the where
// kernel with a broadcast scalar, so neither needs a kernel of its own; split/chunk return narrow views and
// one_hot is eq(idx[..., None], arange(n)). Index values of CPU tensors are checked on the host before
// any kernel runs; those of GPU tensors by a kernel that replaces bad values by 0 and reports the first at
// the next synchronisation (engine/async_check.h): no kernel ever sees an out-of-range index.
#include "ops/index.h"

#include <algorithm>

#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/util.h"

namespace nabla {
namespace ops {
namespace {

// A contiguous i64 copy of an index tensor on the CPU, for host-side checks.
Tensor host_i64(const Tensor& index) {
  return contiguous_raw(index.detach().to(DType::i64).to(Device::cpu()), "index");
}

// The multi-dim position of flat element i of `shape`, for error messages.
Shape unravel(int64_t i, const Shape& shape) {
  Shape pos(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    pos[d] = shape[d] ? i % shape[d] : 0;
    i = shape[d] ? i / shape[d] : 0;
  }
  return pos;
}

void check_index_device(const char* op, const Tensor& x, const Tensor& index) {
  check_defined(op, index, "index");
  NABLA_CHECK(index.device() == x.device(), op, ": index on ", index.device(), " ", index.shape(),
              ", input on ", x.device(), " ", x.shape());
}

Shape x_shape_with(const Shape& s, int64_t d, int64_t v) {
  Shape r = s;
  r[d] = v;
  return r;
}

// [outer, n, inner] factorisation of shape around dim d.
void outer_inner(const Shape& s, int64_t d, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int64_t k = 0; k < d; ++k) outer *= s[k];
  for (int64_t k = d + 1; k < static_cast<int64_t>(s.size()); ++k) inner *= s[k];
}

}  // namespace

Tensor checked_values(const Tensor& index, int64_t size, int64_t allowed, AsyncCheckMessage message) {
  if (index.device().is_cpu()) {
    Tensor host = host_i64(index);
    const int64_t* p = host.data<int64_t>();
    for (int64_t i = 0, n = host.numel(); i < n; ++i)
      NABLA_CHECK(p[i] == allowed || (p[i] >= 0 && p[i] < size), message(i, p[i]));
    return host.data_ptr() == index.data_ptr() ? index.detach() : host;
  }
  Tensor out = Tensor::empty(index.shape(), DType::i64, index.device());
  if (index.numel() == 0) return out;
  // With nothing in range every value is bad: say so now, no kernel needed to know it.
  NABLA_CHECK(size > 0 || allowed != kNoAllowedValue,
              message(0, static_cast<int64_t>(index.reshape({-1}).narrow(0, 0, 1).item())));
  const uint32_t id = register_async_check(std::move(message));
  index_check_kernel.get(index.device(), "index check")(contiguous_raw(index.detach(), "index check"), out,
                                                        size, allowed, id);
  return out;
}

Tensor checked_index(const char* op, const Tensor& index, int64_t size, int64_t dim, const Shape& x_shape) {
  check_defined(op, index, "index");
  check_index_dtype(op, index);
  return checked_values(
      index, size, kNoAllowedValue,
      [op = std::string(op), ishape = index.shape(), size, dim, x_shape](int64_t pos, int64_t v) {
        return str_cat(op, ": index ", v, " at position ", unravel(pos, ishape), " of index ", ishape,
                       " is out of range for dim ", dim, " of size ", size, " (input ", x_shape, ")");
      });
}

}  // namespace ops

using namespace ops;

// ---- joining ----
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  NABLA_CHECK(!tensors.empty(), "cat: expected at least one tensor, got an empty list");
  for (size_t i = 0; i < tensors.size(); ++i)
    NABLA_CHECK(tensors[i].defined(), "cat: tensor ", i, " is undefined");
  const Tensor& t0 = tensors[0];
  NABLA_CHECK(t0.dim() > 0, "cat: cannot concatenate 0-d tensors (use stack), got ", t0.shape());
  const int64_t d = wrap_dim(dim, t0.dim(), "cat");
  Shape out_shape = t0.shape();
  out_shape[d] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    NABLA_CHECK(t.device() == t0.device(), "cat: tensor ", i, " is on ", t.device(), ", tensor 0 on ",
                t0.device());
    NABLA_CHECK(t.dtype() == t0.dtype(), "cat: tensor ", i, " has dtype ", t.dtype(), " ", t.shape(),
                ", tensor 0 has ", t0.dtype(), " ", t0.shape(), " (cast with .to(dtype))");
    bool match = t.dim() == t0.dim();
    for (int64_t k = 0; match && k < t.dim(); ++k) match = k == d || t.shape()[k] == t0.shape()[k];
    NABLA_CHECK(match, "cat: sizes must match except along dim ", d, ": tensor 0 is ", t0.shape(),
                ", tensor ", i, " is ", t.shape());
    out_shape[d] += t.shape()[d];
  }
  // 4-D tensors of which one is channels-last (and none has another non-row-major layout) give a
  // channels-last result, as PyTorch's cat keeps its inputs' memory format: a route layer of a channels-last
  // Darknet network stays NHWC for the convolution after it.
  bool channels_last = t0.dim() == 4, any_cl = false;
  for (const Tensor& t : tensors) {
    const bool cl = t.suggest_memory_format() == MemoryFormat::ChannelsLast;
    any_cl = any_cl || cl;
    channels_last = channels_last && (cl || t.is_contiguous());
  }
  const MemoryFormat f = channels_last && any_cl ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
  Tensor out = Tensor::empty(out_shape, t0.dtype(), t0.device(), f);
  auto copy = copy_kernel.get(t0.device(), "cat");
  std::vector<int64_t> starts;
  int64_t start = 0;
  for (const Tensor& t : tensors) {
    Tensor slice = raw_view(out, t.shape(), out.strides(), out.offset() + start * out.strides()[d]);
    copy(t, slice);
    starts.push_back(start);
    start += t.shape()[d];
  }
  std::vector<Shape> shapes;
  for (const Tensor& t : tensors) shapes.push_back(t.shape());
  autograd::record("cat", out, tensors, [d, starts, shapes](const Tensor& g) -> std::vector<Tensor> {
    std::vector<Tensor> grads;
    for (size_t i = 0; i < shapes.size(); ++i)
      grads.push_back(raw_view(g, shapes[i], g.strides(), g.offset() + starts[i] * g.strides()[d]));
    return grads;
  });
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  NABLA_CHECK(!tensors.empty(), "stack: expected at least one tensor, got an empty list");
  for (size_t i = 0; i < tensors.size(); ++i) {
    NABLA_CHECK(tensors[i].defined(), "stack: tensor ", i, " is undefined");
    NABLA_CHECK(tensors[i].shape() == tensors[0].shape(),
                "stack: all tensors must have the same shape: tensor 0 is ", tensors[0].shape(), ", tensor ",
                i, " is ", tensors[i].shape());
  }
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> unsqueezed;
  for (const Tensor& t : tensors) unsqueezed.push_back(t.unsqueeze(d));
  return cat(unsqueezed, d);
}

// ---- splitting ----
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  check_defined("split", x);
  NABLA_CHECK(x.dim() > 0, "split: cannot split a 0-d tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  const int64_t len = x.shape()[d];
  NABLA_CHECK(split_size > 0 || (split_size == 0 && len == 0), "split: split_size must be positive, got ",
              split_size, " for dim ", d, " of size ", len, " (shape ", x.shape(), ")");
  if (len == 0) return {x.narrow(d, 0, 0)};
  std::vector<Tensor> pieces;
  for (int64_t start = 0; start < len; start += split_size)
    pieces.push_back(x.narrow(d, start, std::min(split_size, len - start)));
  return pieces;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  check_defined("split", x);
  NABLA_CHECK(x.dim() > 0, "split: cannot split a 0-d tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    NABLA_CHECK(s >= 0, "split: negative size in ", Shape(sizes));
    total += s;
  }
  NABLA_CHECK(total == x.shape()[d], "split: sizes ", Shape(sizes), " sum to ", total, ", but dim ", d,
              " has size ", x.shape()[d], " (shape ", x.shape(), ")");
  std::vector<Tensor> pieces;
  int64_t start = 0;
  for (int64_t s : sizes) {
    pieces.push_back(x.narrow(d, start, s));
    start += s;
  }
  return pieces;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check_defined("chunk", x);
  NABLA_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  NABLA_CHECK(x.dim() > 0, "chunk: cannot chunk a 0-d tensor");
  const int64_t len = x.shape()[wrap_dim(dim, x.dim(), "chunk")];
  return split(x, (len + chunks - 1) / chunks, dim);
}

// ---- indexing ----
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined("index_select", x);
  check_index_device("index_select", x, index);
  NABLA_CHECK(x.dim() > 0, "index_select: cannot index a 0-d tensor");
  NABLA_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got ", index.shape());
  const int64_t d = wrap_dim(dim, x.dim(), "index_select");
  Tensor idx =
      contiguous_raw(checked_index("index_select", index, x.shape()[d], d, x.shape()), "index_select");
  const int64_t k = idx.numel();
  int64_t outer, inner;
  outer_inner(x.shape(), d, outer, inner);
  const int64_t n = x.shape()[d];
  Tensor out = Tensor::empty(x_shape_with(x.shape(), d, k), x.dtype(), x.device());
  index_select_kernel.get(x.device(), "index_select")(contiguous_raw(x, "index_select"), idx, out, outer, n,
                                                      inner);
  autograd::record("index_select", out, {x},
                   [xs = x.shape(), idx, outer, n, inner](const Tensor& g) -> std::vector<Tensor> {
                     Tensor dx = zeros(xs, {.dtype = g.dtype(), .device = g.device()});
                     index_add_kernel.get(g.device(), "index_select backward")(
                         contiguous_raw(g, "index_select"), idx, dx, outer, n, inner);
                     return {dx};
                   });
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined("gather", x);
  check_index_device("gather", x, index);
  NABLA_CHECK(x.dim() > 0, "gather: cannot gather from a 0-d tensor");
  NABLA_CHECK(index.dim() == x.dim(), "gather: index must have the rank of the input: input ", x.shape(),
              ", index ", index.shape());
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  for (int64_t k = 0; k < x.dim(); ++k)
    NABLA_CHECK(k == d || index.shape()[k] <= x.shape()[k], "gather: index ", index.shape(),
                " is larger than input ", x.shape(), " in dim ", k, " (only dim ", d, " may be larger)");
  Tensor idx = checked_index("gather", index, x.shape()[d], d, x.shape());
  Tensor out = Tensor::empty(index.shape(), x.dtype(), x.device());
  gather_kernel.get(x.device(), "gather")(x, d, idx, out);
  autograd::record("gather", out, {x}, [xs = x.shape(), idx, d](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = zeros(xs, {.dtype = g.dtype(), .device = g.device()});
    scatter_add_kernel.get(g.device(), "gather backward")(dx, d, idx, g);
    return {dx};
  });
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  check_same("scatter_add", x, src);
  check_index_device("scatter_add", x, index);
  NABLA_CHECK(x.dim() > 0, "scatter_add: cannot scatter into a 0-d tensor");
  NABLA_CHECK(index.dim() == x.dim() && src.dim() == x.dim(),
              "scatter_add: input, index and src must have one rank: input ", x.shape(), ", index ",
              index.shape(), ", src ", src.shape());
  const int64_t d = wrap_dim(dim, x.dim(), "scatter_add");
  for (int64_t k = 0; k < x.dim(); ++k) {
    NABLA_CHECK(index.shape()[k] <= src.shape()[k], "scatter_add: index ", index.shape(),
                " is larger than src ", src.shape(), " in dim ", k);
    NABLA_CHECK(k == d || index.shape()[k] <= x.shape()[k], "scatter_add: index ", index.shape(),
                " is larger than input ", x.shape(), " in dim ", k, " (only dim ", d, " may be larger)");
  }
  Tensor idx = checked_index("scatter_add", index, x.shape()[d], d, x.shape());
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  copy_kernel.get(x.device(), "scatter_add")(x, out);
  // Only the part of src that index covers takes part.
  Tensor src_used = raw_view(src, index.shape(), src.strides(), src.offset());
  scatter_add_kernel.get(x.device(), "scatter_add")(out, d, idx, src_used);
  autograd::record(
      "scatter_add", out, {x, src},
      [idx, d, ss = src.shape(), need_src = src.requires_grad()](const Tensor& g) -> std::vector<Tensor> {
        if (!need_src) return {g, Tensor()};
        Tensor dsrc = Tensor::empty(idx.shape(), g.dtype(), g.device());
        gather_kernel.get(g.device(), "scatter_add backward")(g, d, idx, dsrc);
        if (ss != idx.shape()) {
          Tensor z = zeros(ss, {.dtype = g.dtype(), .device = g.device()});
          Tensor covered = raw_view(z, idx.shape(), z.strides(), 0);
          copy_kernel.get(g.device(), "scatter_add backward")(dsrc, covered);
          dsrc = z;
        }
        return {g, dsrc};
      });
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_defined("masked_fill", x);
  check_defined("masked_fill", mask, "mask");
  NABLA_CHECK(mask.dtype() == DType::b8, "masked_fill: mask must be bool, got ", mask.dtype(), " ",
              mask.shape());
  NABLA_CHECK(mask.device() == x.device(), "masked_fill: mask on ", mask.device(), ", input on ", x.device());
  bool fits = mask.dim() <= x.dim();
  for (int64_t k = 0; fits && k < mask.dim(); ++k) {
    int64_t m = mask.shape()[k], s = x.shape()[x.dim() - mask.dim() + k];
    fits = m == s || m == 1;
  }
  NABLA_CHECK(fits, "masked_fill: mask ", mask.shape(), " does not broadcast to input ", x.shape());
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  where_kernel.get(x.device(), "masked_fill")(broadcast_view(mask, x.shape(), "masked_fill"),
                                              broadcast_view(scalar_like(value, x), x.shape(), "masked_fill"),
                                              x, out);
  autograd::record("masked_fill", out, {x}, [m = mask.detach()](const Tensor& g) -> std::vector<Tensor> {
    return {masked_fill(g, m, 0.0)};
  });
  return out;
}

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  check_defined("one_hot", indices, "indices");
  check_index_dtype("one_hot", indices);
  if (num_classes == -1) {
    Tensor host = host_i64(indices);  // inferring the count needs the values on the host anyway
    NABLA_CHECK(host.numel() > 0, "one_hot: cannot infer num_classes from an empty tensor ", indices.shape());
    const int64_t* p = host.data<int64_t>();
    num_classes = *std::max_element(p, p + host.numel()) + 1;
  }
  NABLA_CHECK(num_classes > 0, "one_hot: num_classes must be positive (or -1 to infer), got ", num_classes);
  Tensor idx = checked_values(indices, num_classes, kNoAllowedValue,
                              [ishape = indices.shape(), num_classes](int64_t pos, int64_t v) {
                                return str_cat("one_hot: index ", v, " at position ", unravel(pos, ishape),
                                               " of indices ", ishape, " is out of range for num_classes ",
                                               num_classes);
                              })
                   .unsqueeze(-1);
  Tensor classes = arange(num_classes, {.dtype = DType::i64, .device = indices.device()});
  return eq(idx, classes).to(DType::i64);
}

}  // namespace nabla
