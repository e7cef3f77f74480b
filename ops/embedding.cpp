// The embedding family's op layer: checks, autograd wiring, dispatch.
//
//   embedding:      out[l, :] = W[idx[l], :] with idx flattened to [L], viewed back as [..., D]. Forward and
//                   backward reuse the index family's index_select and index_add kernels (a lookup is
//                   index_select along dim 0); the padding row of dW is zeroed afterwards.
//   embedding_bag:  its own kernels (ops/cpu/embedding.cpp); offsets are checked on the host.
#include "ops/embedding.h"

#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/util.h"

namespace nabla {
namespace ops {
namespace {

Tensor contiguous_copy_raw(const Tensor& t, const char* op) {
  if (t.is_contiguous()) return t.detach();
  Tensor c = Tensor::empty(t.shape(), t.dtype(), t.device());
  copy_kernel.get(t.device(), op)(t, c);
  return c;
}

void check_weight(const char* op, const Tensor& weight, const Tensor& indices) {
  check_defined(op, weight, "weight");
  check_defined(op, indices, "indices");
  NABLA_CHECK(weight.dim() == 2, op, ": weight must be 2-D [num_embeddings, embedding_dim], got ",
              weight.shape());
  check_floating(op, weight);
  NABLA_CHECK(indices.device() == weight.device(), op, ": indices on ", indices.device(), " ",
              indices.shape(), ", weight on ", weight.device(), " ", weight.shape());
}

}  // namespace
}  // namespace ops

using namespace ops;

Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx) {
  check_weight("embedding", weight, indices);
  const int64_t V = weight.shape()[0], D = weight.shape()[1];
  NABLA_CHECK(padding_idx < V, "embedding: padding_idx ", padding_idx, " is out of range for weight ",
              weight.shape(), " (", V, " embeddings)");
  Tensor idx = contiguous_copy_raw(checked_index("embedding", indices, V, 0, weight.shape()), "embedding");
  const int64_t L = idx.numel();
  idx = raw_view(idx, {L}, {1}, idx.offset());
  Tensor out = Tensor::empty({L, D}, weight.dtype(), weight.device());
  index_select_kernel.get(weight.device(), "embedding")(contiguous_copy_raw(weight, "embedding"), idx, out, 1,
                                                        V, D);
  Shape out_shape = indices.shape();
  out_shape.push_back(D);
  out = raw_view(out, out_shape, contiguous_strides(out_shape), 0);
  autograd::record("embedding", out, {weight},
                   [V, D, L, idx, padding_idx](const Tensor& g) -> std::vector<Tensor> {
                     Tensor dw = zeros({V, D}, {.dtype = g.dtype(), .device = g.device()});
                     Tensor gc = contiguous_copy_raw(g, "embedding backward");
                     index_add_kernel.get(g.device(), "embedding backward")(
                         raw_view(gc, {L, D}, {D, 1}, gc.offset()), idx, dw, 1, V, D);
                     if (padding_idx >= 0) dw.select(0, padding_idx).zero_();
                     return {dw};
                   });
  return out;
}

Tensor embedding_bag(const Tensor& weight, const Tensor& indices, const Tensor& offsets, BagMode mode) {
  check_weight("embedding_bag", weight, indices);
  check_defined("embedding_bag", offsets, "offsets");
  NABLA_CHECK(indices.dim() == 1, "embedding_bag: indices must be 1-D [L], got ", indices.shape());
  NABLA_CHECK(offsets.dim() == 1, "embedding_bag: offsets must be 1-D [B], got ", offsets.shape());
  check_index_dtype("embedding_bag", offsets);
  NABLA_CHECK(offsets.device() == weight.device(), "embedding_bag: offsets on ", offsets.device(),
              ", weight on ", weight.device());
  const int64_t V = weight.shape()[0], D = weight.shape()[1], L = indices.shape()[0], B = offsets.shape()[0];
  Tensor off = contiguous_copy_raw(offsets.detach().to(DType::i64), "embedding_bag");
  {
    Tensor host = contiguous_copy_raw(off.to(Device::cpu()), "embedding_bag");
    const int64_t* p = host.data<int64_t>();
    NABLA_CHECK(B > 0 && p[0] == 0, "embedding_bag: offsets must start with 0, got ",
                B > 0 ? str_cat(p[0]) : std::string("an empty tensor"), " (offsets ", offsets.shape(), ")");
    for (int64_t b = 1; b < B; ++b)
      NABLA_CHECK(p[b] >= p[b - 1], "embedding_bag: offsets must be non-decreasing, but offsets[", b,
                  "] = ", p[b], " < offsets[", b - 1, "] = ", p[b - 1]);
    NABLA_CHECK(p[B - 1] <= L, "embedding_bag: offsets[", B - 1, "] = ", p[B - 1], " is beyond the ", L,
                " indices");
  }
  Tensor idx =
      contiguous_copy_raw(checked_index("embedding_bag", indices, V, 0, weight.shape()), "embedding_bag");
  Tensor out = Tensor::empty({B, D}, weight.dtype(), weight.device());
  embedding_bag_kernel.get(weight.device(), "embedding_bag")(contiguous_copy_raw(weight, "embedding_bag"),
                                                             idx, off, mode, out);
  autograd::record("embedding_bag", out, {weight},
                   [V, D, idx, off, mode](const Tensor& g) -> std::vector<Tensor> {
                     Tensor dw = zeros({V, D}, {.dtype = g.dtype(), .device = g.device()});
                     embedding_bag_backward_kernel.get(g.device(), "embedding_bag backward")(
                         contiguous_copy_raw(g, "embedding_bag backward"), idx, off, mode, dw);
                     return {dw};
                   });
  return out;
}

}  // namespace nabla
