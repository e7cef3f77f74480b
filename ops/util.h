// Helpers shared by the op layer (not part of the public API).
#pragma once
#include "autograd/autograd.h"
#include "engine/capture.h"
#include "engine/tensor.h"

namespace nabla::ops {

inline void check_defined(const char* op, const Tensor& t, const char* what = "input") {
  NABLA_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
}

// Same dtype and device, or an error naming the op and both tensors.
inline void check_same(const char* op, const Tensor& a, const Tensor& b) {
  check_defined(op, a);
  check_defined(op, b);
  NABLA_CHECK(a.device() == b.device(), op, ": tensors on different devices: ", a.device(), " ", a.shape(),
              " and ", b.device(), " ", b.shape());
  NABLA_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.dtype(), " ", a.shape(), " and ", b.dtype(),
              " ", b.shape(), " (cast one with .to(dtype))");
}

// Random numbers on the device inside a CUDA graph capture would repeat on every replay: the generator's
// seed and offset are kernel arguments, frozen at capture (engine/capture.h).
inline void check_random_not_captured(const char* op) {
  NABLA_CHECK(!capturing_cuda_graph(), op,
              ": random numbers inside a CUDA graph capture would be the same on every replay (the "
              "generator's offset is frozen at capture); draw them outside the captured function");
}

inline void check_floating(const char* op, const Tensor& t) {
  NABLA_CHECK(is_floating(t.dtype()), op, ": expected a floating-point tensor, got ", t.dtype(), " ",
              t.shape());
}

inline void check_index_dtype(const char* op, const Tensor& t) {
  NABLA_CHECK(t.dtype() == DType::i64 || t.dtype() == DType::i32, op,
              ": expected an i64 or i32 index tensor, got ", t.dtype(), " ", t.shape());
}

// A broadcast view of t with `shape` (stride 0 along expanded dims), without autograd.
Tensor broadcast_view(const Tensor& t, const Shape& shape, const char* op);

// A contiguous tensor with t's values and no autograd history (t detached when already contiguous, else a
// copy): kernels that need contiguous inputs get them from here.
Tensor contiguous_raw(const Tensor& t, const char* op);
// The same in a memory format (ChannelsLast: 4-D only): t detached when already in it, else a copy.
Tensor contiguous_raw(const Tensor& t, const char* op, MemoryFormat format);

// True when a and b are both dense and non-overlapping with the same element order (equal shapes, equal
// strides on every dim of size > 1): flat kernels (the fused optimizer steps) may then index them as one
// array of numel() elements each, whether row-major or channels-last.
inline bool same_dense_layout(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || !a.is_non_overlapping_and_dense() || !b.is_non_overlapping_and_dense())
    return false;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.size(d) > 1 && a.strides()[d] != b.strides()[d]) return false;
  return true;
}

// A new tensor of t's shape, dtype and device with t's strides when t is dense and non-overlapping (so
// element-wise results keep a channels-last or permuted layout), else row-major: PyTorch's
// memory_format=torch.preserve_format.
Tensor empty_preserving(const Tensor& t);
Tensor empty_preserving(const Tensor& t, DType dtype);

// A 1-D view of all of a dense, non-overlapping tensor's storage span, in memory order: element-wise
// kernels run their flat loop over it whatever the logical order of the dims.
Tensor flat_view(const Tensor& t);

// A view with other sizes/strides/offset over t's storage, without autograd.
inline Tensor raw_view(const Tensor& t, Shape sizes, Strides strides, int64_t offset) {
  return Tensor::make_view(t.storage(), std::move(sizes), std::move(strides), offset, t.dtype());
}

}  // namespace nabla::ops
