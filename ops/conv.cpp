// The conv family's op layer: shape checks, output sizes, autograd wiring and dispatch.
//
// Kernels see contiguous NCHW tensors, or channels-last ones when the input (or conv2d's weight) is
// channels-last (ops/conv.h); a strided input is copied once here, outside autograd, so its gradient still
// flows through the caller's view. conv2d's backward is one fused kernel (dX, dW and db in
// a single pass over the batch) that saves only x and w: the im2col buffer is rebuilt in backward rather
// than kept alive between forward and backward. max_pool2d saves its argmax indices; the average pools and
// upsampling save only shapes.
#include "ops/conv.h"

#include "ops/autocast.h"
#include "ops/elementwise.h"
#include "ops/util.h"

namespace nabla {
using namespace ops;

namespace {

void check_nchw(const char* op, const Tensor& x) {
  check_defined(op, x);
  check_floating(op, x);
  NABLA_CHECK(x.dim() == 4, op, ": expected a 4-D NCHW input, got ", x.shape());
}

// Pools keep their input's layout: channels-last in, channels-last out.
MemoryFormat layout_of(const Pool2dGeometry& g) {
  return g.channels_last ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
}
void set_layout(Pool2dGeometry& g, const Tensor& x) {
  g.channels_last = x.suggest_memory_format() == MemoryFormat::ChannelsLast;
  g.channels = x.size(1);
}

// Checks the pooling window against the input and returns the geometry (strides of 0 mean = kernel).
Pool2dGeometry pool_geometry(const char* op, const Tensor& x, Pair kernel, Pair stride, Pair padding) {
  check_nchw(op, x);
  Pair s = {stride[0] == 0 ? kernel[0] : stride[0], stride[1] == 0 ? kernel[1] : stride[1]};
  NABLA_CHECK(kernel[0] > 0 && kernel[1] > 0, op, ": kernel must be positive, got ", kernel[0], "x",
              kernel[1], " (input ", x.shape(), ")");
  NABLA_CHECK(s[0] > 0 && s[1] > 0, op, ": stride must be positive, got ", stride[0], "x", stride[1],
              " (input ", x.shape(), ")");
  NABLA_CHECK(
      padding[0] >= 0 && padding[1] >= 0 && 2 * padding[0] <= kernel[0] && 2 * padding[1] <= kernel[1], op,
      ": padding ", padding[0], "x", padding[1], " must be between 0 and half the kernel ", kernel[0], "x",
      kernel[1], " (input ", x.shape(), ")");
  const int64_t h = x.size(2), w = x.size(3);
  NABLA_CHECK(kernel[0] <= h + 2 * padding[0] && kernel[1] <= w + 2 * padding[1], op, ": kernel ", kernel[0],
              "x", kernel[1], " is larger than the padded input ", h + 2 * padding[0], "x",
              w + 2 * padding[1], " (input ", x.shape(), ", padding ", padding[0], "x", padding[1], ")");
  Pool2dGeometry g{};
  g.planes = x.size(0) * x.size(1);
  set_layout(g, x);
  g.h = h;
  g.w = w;
  g.kh = kernel[0];
  g.kw = kernel[1];
  g.stride_h = s[0];
  g.stride_w = s[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.oh = conv_out_size(h, g.kh, g.stride_h, g.pad_h, 1);
  g.ow = conv_out_size(w, g.kw, g.stride_w, g.pad_w, 1);
  return g;
}

Shape nchw(const Tensor& x, int64_t h, int64_t w) { return {x.size(0), x.size(1), h, w}; }

// y = fwd(x) and dx = bwd(gy) for the pools whose backward needs only the geometry.
Tensor geometry_only_op(const char* op, const Tensor& x, const Pool2dGeometry& g, Kernel<AvgPool2dFn>& fwd,
                        Kernel<AvgPool2dFn>& bwd) {
  const MemoryFormat f = layout_of(g);
  Tensor xc = contiguous_raw(x, op, f);
  Tensor y = Tensor::empty(nchw(x, g.oh, g.ow), x.dtype(), x.device(), f);
  fwd.get(x.device(), op)(g, xc, y);
  autograd::record(op, y, {x}, [g, &bwd, op, f, shape = x.shape(), dt = x.dtype()](const Tensor& gy) {
    Tensor dx = Tensor::empty(shape, dt, gy.device(), f);
    bwd.get(gy.device(), op)(g, contiguous_raw(gy, op, f), dx);
    return std::vector<Tensor>{dx};
  });
  return y;
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, Pair stride, Pair padding,
              Pair dilation, int64_t groups) {
  const Tensor x = autocast_input(x_in, AutocastKind::lower_precision);
  const Tensor weight = autocast_input(weight_in, AutocastKind::lower_precision);
  const Tensor bias = autocast_input(bias_in, AutocastKind::lower_precision);
  check_nchw("conv2d", x);
  check_same("conv2d", x, weight);
  NABLA_CHECK(weight.dim() == 4, "conv2d: expected a 4-D weight [out, in / groups, kh, kw], got ",
              weight.shape(), " (input ", x.shape(), ")");
  NABLA_CHECK(groups >= 1, "conv2d: groups must be positive, got ", groups);
  const int64_t c_in = x.size(1), c_out = weight.size(0);
  NABLA_CHECK(c_in % groups == 0 && c_out % groups == 0, "conv2d: groups ", groups,
              " must divide both the input channels ", c_in, " and the output channels ", c_out, " (input ",
              x.shape(), ", weight ", weight.shape(), ")");
  NABLA_CHECK(weight.size(1) * groups == c_in, "conv2d: input has ", c_in, " channels, weight expects ",
              weight.size(1) * groups, " (input ", x.shape(), ", weight ", weight.shape(),
              groups > 1 ? str_cat(", groups ", groups, ")") : std::string(")"));
  NABLA_CHECK(stride[0] > 0 && stride[1] > 0, "conv2d: stride must be positive, got ", stride[0], "x",
              stride[1], " (input ", x.shape(), ")");
  NABLA_CHECK(dilation[0] > 0 && dilation[1] > 0, "conv2d: dilation must be positive, got ", dilation[0], "x",
              dilation[1], " (input ", x.shape(), ")");
  NABLA_CHECK(padding[0] >= 0 && padding[1] >= 0, "conv2d: padding must be non-negative, got ", padding[0],
              "x", padding[1], " (input ", x.shape(), ")");
  if (bias.defined()) {
    check_same("conv2d", x, bias);
    NABLA_CHECK(bias.dim() == 1 && bias.size(0) == c_out, "conv2d: bias must be [", c_out, "], got ",
                bias.shape(), " (weight ", weight.shape(), ")");
  }
  Conv2dGeometry g{};
  g.n = x.size(0);
  g.c_in = c_in;
  g.h = x.size(2);
  g.w = x.size(3);
  g.c_out = c_out;
  g.kh = weight.size(2);
  g.kw = weight.size(3);
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.dil_h = dilation[0];
  g.dil_w = dilation[1];
  g.groups = groups;
  const int64_t ekh = g.dil_h * (g.kh - 1) + 1, ekw = g.dil_w * (g.kw - 1) + 1;  // dilated extent
  NABLA_CHECK(g.kh > 0 && g.kw > 0 && ekh <= g.h + 2 * g.pad_h && ekw <= g.w + 2 * g.pad_w, "conv2d: kernel ",
              g.kh, "x", g.kw, " (dilated ", ekh, "x", ekw, ") is larger than the padded input ",
              g.h + 2 * g.pad_h, "x", g.w + 2 * g.pad_w, " (input ", x.shape(), ", weight ", weight.shape(),
              ", padding ", padding[0], "x", padding[1], ")");
  g.oh = conv_out_size(g.h, g.kh, g.stride_h, g.pad_h, g.dil_h);
  g.ow = conv_out_size(g.w, g.kw, g.stride_w, g.pad_w, g.dil_w);

  // Channels-last when the input or the weight is (PyTorch's rule): everything then goes channels-last.
  g.channels_last = x.suggest_memory_format() == MemoryFormat::ChannelsLast ||
                    weight.suggest_memory_format() == MemoryFormat::ChannelsLast;
  const MemoryFormat f = g.channels_last ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
  // The weight gradient is returned in the weight's own layout.
  const MemoryFormat wf = weight.is_contiguous(f) ? f : weight.suggest_memory_format();
  Tensor xc = contiguous_raw(x, "conv2d", f), wc = contiguous_raw(weight, "conv2d", f);
  Tensor bc = bias.defined() ? contiguous_raw(bias, "conv2d") : Tensor();
  Tensor y = Tensor::empty({g.n, c_out, g.oh, g.ow}, x.dtype(), x.device(), f);
  conv2d_forward_kernel.get(x.device(), "conv2d")(g, xc, wc, bc, y);

  // dX needs only w and dW only x: save just what the wanted gradients need.
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad(),
             need_b = bias.defined() && bias.requires_grad();
  autograd::record(
      "conv2d", y, {x, weight, bias},
      [g, f, wf, xs = need_w ? xc : Tensor(), ws = need_x ? wc : Tensor(), need_x, need_w, need_b,
       dt = x.dtype()](const Tensor& gy) -> std::vector<Tensor> {
        const Device dev = gy.device();
        Tensor dx = need_x ? Tensor::empty({g.n, g.c_in, g.h, g.w}, dt, dev, f) : Tensor();
        Tensor dw = need_w ? Tensor::empty({g.c_out, g.c_in / g.groups, g.kh, g.kw}, dt, dev, f) : Tensor();
        Tensor db = need_b ? Tensor::empty({g.c_out}, dt, dev) : Tensor();
        conv2d_backward_kernel.get(dev, "conv2d")(g, xs, ws, contiguous_raw(gy, "conv2d", f), dx, dw, db);
        if (need_w && wf != f) dw = contiguous_raw(dw, "conv2d", wf);
        return {dx, dw, db};
      });
  return y;
}

Tensor max_pool2d(const Tensor& x, Pair kernel, Pair stride, Pair padding) {
  Pool2dGeometry g = pool_geometry("max_pool2d", x, kernel, stride, padding);
  const MemoryFormat f = layout_of(g);
  Tensor xc = contiguous_raw(x, "max_pool2d", f);
  Tensor y = Tensor::empty(nchw(x, g.oh, g.ow), x.dtype(), x.device(), f);
  Tensor idx = Tensor::empty(y.shape(), DType::i64, x.device(), f);
  max_pool2d_forward_kernel.get(x.device(), "max_pool2d")(g, xc, y, idx);
  autograd::record("max_pool2d", y, {x},
                   [g, f, idx, shape = x.shape(), dt = x.dtype()](const Tensor& gy) -> std::vector<Tensor> {
                     Tensor dx = Tensor::empty(shape, dt, gy.device(), f);
                     max_pool2d_backward_kernel.get(gy.device(), "max_pool2d")(
                         g, contiguous_raw(gy, "max_pool2d", f), idx, dx);
                     return {dx};
                   });
  return y;
}

Tensor avg_pool2d(const Tensor& x, Pair kernel, Pair stride, Pair padding, bool count_include_pad) {
  Pool2dGeometry g = pool_geometry("avg_pool2d", x, kernel, stride, padding);
  g.count_include_pad = count_include_pad;
  return geometry_only_op("avg_pool2d", x, g, avg_pool2d_forward_kernel, avg_pool2d_backward_kernel);
}

Tensor adaptive_avg_pool2d(const Tensor& x, Pair output_size) {
  check_nchw("adaptive_avg_pool2d", x);
  NABLA_CHECK(output_size[0] > 0 && output_size[1] > 0,
              "adaptive_avg_pool2d: output size must be positive, got ", output_size[0], "x", output_size[1],
              " (input ", x.shape(), ")");
  NABLA_CHECK(x.size(2) > 0 && x.size(3) > 0, "adaptive_avg_pool2d: input has an empty plane: ", x.shape());
  Pool2dGeometry g{};
  g.planes = x.size(0) * x.size(1);
  set_layout(g, x);
  g.h = x.size(2);
  g.w = x.size(3);
  g.oh = output_size[0];
  g.ow = output_size[1];
  g.adaptive = true;
  return geometry_only_op("adaptive_avg_pool2d", x, g, avg_pool2d_forward_kernel, avg_pool2d_backward_kernel);
}

Tensor upsample_nearest2d(const Tensor& x, Pair scale) {
  check_nchw("upsample_nearest2d", x);
  NABLA_CHECK(scale[0] > 0 && scale[1] > 0, "upsample_nearest2d: scale must be a positive integer, got ",
              scale[0], "x", scale[1], " (input ", x.shape(), ")");
  Pool2dGeometry g{};
  g.planes = x.size(0) * x.size(1);
  set_layout(g, x);
  g.h = x.size(2);
  g.w = x.size(3);
  g.kh = scale[0];
  g.kw = scale[1];
  g.oh = g.h * scale[0];
  g.ow = g.w * scale[1];
  return geometry_only_op("upsample_nearest2d", x, g, upsample_nearest2d_forward_kernel,
                          upsample_nearest2d_backward_kernel);
}

}  // namespace nabla
