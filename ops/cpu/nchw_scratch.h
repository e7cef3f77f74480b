// Channels-last calls of the CPU conv and pool kernels (ops/cpu/conv.cpp, ops/cpu/pool.cpp) are computed in
// NCHW: inputs copied to row-major scratch, the NCHW kernel run, results copied into the caller's
// channels-last outputs.
#pragma once
#include "engine/tensor.h"
#include "ops/elementwise.h"
#include "ops/util.h"

namespace nabla::ops::cpu {

// A row-major copy of a (channels-last) input; undefined stays undefined.
inline Tensor nchw_in(const Tensor& t) { return t.defined() ? contiguous_raw(t, "channels_last") : Tensor(); }
// Row-major scratch for a (channels-last) output; undefined (not wanted) stays undefined.
inline Tensor nchw_out(const Tensor& t) {
  return t.defined() ? Tensor::empty(t.shape(), t.dtype(), t.device()) : Tensor();
}
// Copies the scratch result into the caller's output, in its layout.
inline void place(const Tensor& scratch, Tensor& out) {
  if (out.defined()) copy_kernel.get(out.device(), "channels_last")(scratch, out);
}

}  // namespace nabla::ops::cpu
