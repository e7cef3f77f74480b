// Convolution and pooling on NCHW tensors.
//
//   conv2d: y[n, o, i, j] = b[o] + sum_{c in group(o), p, q} w[o, c, p, q]
//                                    * x[n, c, i*s + p*d - pad, j*s + q*d - pad]
//     x [N, C, H, W], w [K, C / groups, kh, kw], b [K] (optional), y [N, K, OH, OW]
//     out size = floor((in + 2 pad - d (k - 1) - 1) / s) + 1
//     CPU: per (batch item, group) cols = im2col(x) [C/g * kh * kw, OH * OW], y = W_g @ cols (1x1 stride-1
//     convs use x itself as cols). Backward (one fused kernel, saves x and w): dW = sum_n dY @ cols^T,
//     db = sum of dY over n, i, j, dX = col2im(W^T @ dY).
//   max_pool2d: padding counts as -inf; the forward saves the argmax of each window (flat index h * W + w in
//     its input plane) and backward routes each gradient there.
//   avg_pool2d: count_include_pad = true divides by kh * kw (PyTorch's default); false divides by the number
//     of real (non-padding) elements in the window.
//   adaptive_avg_pool2d: output cell (i, j) averages rows [floor(i H / OH), ceil((i + 1) H / OH)) and the
//     same for columns, so windows may overlap when H is not a multiple of OH.
//   upsample_nearest2d: y[i, j] = x[floor(i / sh), floor(j / sw)] for integer scales; backward sums each
//     sh x sw block.
// Pool paddings must be at most half the kernel (as in PyTorch), so that every window holds a real element.
//
// Channels-last (MemoryFormat::ChannelsLast, memory order N, H, W, C): conv2d runs channels-last when its
// input or its weight is channels-last (PyTorch's rule); then the input and weight are brought to
// channels-last (a copy only when they are not), the output and the input gradient are channels-last, and
// the weight gradient comes back in the weight's own layout. The pools and upsampling keep their input's
// layout (output and input gradient). Kernels get a flag in the geometry: the CUDA ones run cuDNN with NHWC
// descriptors / NHWC-indexed kernels; the CPU ones compute in NCHW and place the results, so both backends
// give the same values and layouts.
#pragma once
#include <array>

#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

using Pair = std::array<int64_t, 2>;

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Pair stride = {1, 1},
              Pair padding = {0, 0}, Pair dilation = {1, 1}, int64_t groups = 1);
Tensor max_pool2d(const Tensor& x, Pair kernel, Pair stride = {0, 0} /* 0: = kernel */,
                  Pair padding = {0, 0});
Tensor avg_pool2d(const Tensor& x, Pair kernel, Pair stride = {0, 0}, Pair padding = {0, 0},
                  bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& x, Pair output_size);
Tensor upsample_nearest2d(const Tensor& x, Pair scale);

}  // namespace nabla

namespace nabla::ops {

// The geometry of one conv2d call (checked by the op layer).
struct Conv2dGeometry {
  int64_t n, c_in, h, w;  // input
  int64_t c_out, kh, kw;  // weight [c_out, c_in / groups, kh, kw]
  int64_t oh, ow;         // output
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int64_t groups;
  // false: x, y, dx, gy row-major NCHW and w, dw row-major [K, C / g, kh, kw]. true: all of them
  // channels-last (x, y, dx, gy with strides {H W C, 1, W C, C}; w, dw with {C/g kh kw, 1, kw C/g, C/g}).
  bool channels_last = false;
};

// x, w contiguous (or channels-last, see the geometry); bias undefined or contiguous [c_out]; y [n, c_out,
// oh, ow] in x's layout (overwritten).
using Conv2dForwardFn = void (*)(const Conv2dGeometry& g, const Tensor& x, const Tensor& w,
                                 const Tensor& bias, Tensor& y);
// gy in the geometry's layout. dx, dw, db: each either undefined (not wanted) or a tensor of the shape of
// x, w (in the geometry's layout) and [c_out] (contiguous), overwritten with the gradient. x is read only
// when dw is wanted, w only when dx is; the other may be undefined.
using Conv2dBackwardFn = void (*)(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& gy,
                                  Tensor& dx, Tensor& dw, Tensor& db);

// The geometry of one pooling call: planes = N * C independent [h, w] -> [oh, ow] maps.
struct Pool2dGeometry {
  int64_t planes, h, w, oh, ow;
  int64_t kh, kw, stride_h, stride_w, pad_h, pad_w;
  bool count_include_pad = true;  // avg_pool2d only
  bool adaptive = false;          // adaptive_avg_pool2d: windows come from h / oh, w / ow, not kh, kw
  // channels_last: every [N, C, *, *] tensor of the call (x, y, indices, gy, dx) is channels-last, and
  // plane p = n * channels + c lives at n * H * W * C + c with its elements C apart. Else planes are
  // contiguous [h, w] blocks.
  bool channels_last = false;
  int64_t channels = 1;
};

// Tensors are contiguous [planes, *, *] or (g.channels_last) channels-last [N, C, *, *]; indices (i64)
// hold the flat in-plane position a * W + b of each window's maximum, in y's layout.
// x; y and indices [planes, oh, ow].
using MaxPool2dForwardFn = void (*)(const Pool2dGeometry& g, const Tensor& x, Tensor& y, Tensor& indices);
// gy, indices contiguous; dx contiguous [planes, h, w] (overwritten).
using MaxPool2dBackwardFn = void (*)(const Pool2dGeometry& g, const Tensor& gy, const Tensor& indices,
                                     Tensor& dx);
// Average pooling, plain or adaptive (g.adaptive): x [planes, h, w] -> y [planes, oh, ow] forward,
// gy -> dx backward (overwritten). All contiguous.
using AvgPool2dFn = void (*)(const Pool2dGeometry& g, const Tensor& in, Tensor& out);
// Nearest upsampling by the integer factors (kh, kw) of the geometry: forward x [h, w] -> y [oh, ow],
// backward gy [oh, ow] -> dx [h, w] (block sums).
using UpsampleNearest2dFn = void (*)(const Pool2dGeometry& g, const Tensor& in, Tensor& out);

inline Kernel<Conv2dForwardFn> conv2d_forward_kernel{"conv2d_forward"};
inline Kernel<Conv2dBackwardFn> conv2d_backward_kernel{"conv2d_backward"};
inline Kernel<MaxPool2dForwardFn> max_pool2d_forward_kernel{"max_pool2d_forward"};
inline Kernel<MaxPool2dBackwardFn> max_pool2d_backward_kernel{"max_pool2d_backward"};
inline Kernel<AvgPool2dFn> avg_pool2d_forward_kernel{"avg_pool2d_forward"};
inline Kernel<AvgPool2dFn> avg_pool2d_backward_kernel{"avg_pool2d_backward"};
inline Kernel<UpsampleNearest2dFn> upsample_nearest2d_forward_kernel{"upsample_nearest2d_forward"};
inline Kernel<UpsampleNearest2dFn> upsample_nearest2d_backward_kernel{"upsample_nearest2d_backward"};

// floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1, the output size along one dim.
inline int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

}  // namespace nabla::ops
