// conv2d with a scale-bias-ReLU prologue (cuda/conv_prologue.h): argument checks, the plan cache (one cuDNN
// plan per shape, or the reason there is none, kept so that a shape is tried once), the launch.
#include "cuda/conv_prologue.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "cuda/cudnn_graph.h"
#include "cuda/runtime.h"
#include "engine/error.h"

namespace nabla::cuda {
namespace {

struct Entry {
  std::shared_ptr<cudnn_graph::ProloguePlan> plan;  // null: no engine
  std::string why;
};

std::mutex g_mu;
std::map<std::vector<int64_t>, Entry>& plans() {
  static auto* m = new std::map<std::vector<int64_t>, Entry>();  // leaked: no cuDNN calls at exit
  return *m;
}

cudnnDataType_t data_type(DType t) {
  switch (t) {
    case DType::bf16:
      return CUDNN_DATA_BFLOAT16;
    case DType::f16:
      return CUDNN_DATA_HALF;
    case DType::f32:
      return CUDNN_DATA_FLOAT;
    default:
      fail("conv2d_scale_bias_relu: dtype ", t, " is not supported (expected bf16, f16 or f32)");
  }
}

std::array<int64_t, 4> arr(const Strides& s) { return {s[0], s[1], s[2], s[3]}; }

}  // namespace

Tensor conv2d_scale_bias_relu(const Tensor& x, const Tensor& scale, const Tensor& bias, const Tensor& w,
                              std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
                              std::string* why) {
  const char* v = std::getenv("NABLA_CONV_PROLOGUE");
  if (!(v && std::string(v) == "1")) {
    if (why) *why = "NABLA_CONV_PROLOGUE is not 1";
    return Tensor();
  }
  const char* op = "conv2d_scale_bias_relu";
  NABLA_CHECK(x.defined() && w.defined() && scale.defined() && bias.defined(), op,
              ": x, scale, bias and w must all be given");
  NABLA_CHECK(x.dim() == 4 && w.dim() == 4, op, ": expected x [N, C, H, W] and w [K, C, kh, kw], got ",
              x.shape(), " and ", w.shape());
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t k = w.size(0), kh = w.size(2), kw = w.size(3);
  NABLA_CHECK(w.size(1) == c, op, ": x has ", c, " channels, w expects ", w.size(1), " (x ", x.shape(),
              ", w ", w.shape(), ")");
  NABLA_CHECK(x.device().is_cuda() && w.device() == x.device() && scale.device() == x.device() &&
                  bias.device() == x.device(),
              op, ": every tensor must be on one CUDA device, got x on ", x.device(), ", w on ", w.device(),
              ", scale on ", scale.device(), ", bias on ", bias.device());
  NABLA_CHECK(w.dtype() == x.dtype(), op, ": x is ", x.dtype(), ", w is ", w.dtype());
  NABLA_CHECK(scale.dtype() == DType::f32 && bias.dtype() == DType::f32 && scale.shape() == Shape{c} &&
                  bias.shape() == Shape{c} && scale.is_contiguous() && bias.is_contiguous(),
              op, ": scale and bias must be contiguous f32 [", c, "], got ", scale.dtype(), " ",
              scale.shape(), " and ", bias.dtype(), " ", bias.shape());
  NABLA_CHECK(x.is_contiguous(MemoryFormat::ChannelsLast) && w.is_contiguous(MemoryFormat::ChannelsLast), op,
              ": x and w must be channels-last (x strides ", x.strides(), ", w strides ", w.strides(), ")");
  NABLA_CHECK(stride[0] > 0 && stride[1] > 0 && padding[0] >= 0 && padding[1] >= 0, op, ": stride ",
              stride[0], "x", stride[1], " must be positive and padding ", padding[0], "x", padding[1],
              " non-negative");
  const int64_t oh = (h + 2 * padding[0] - kh) / stride[0] + 1,
                ow = (wd + 2 * padding[1] - kw) / stride[1] + 1;
  NABLA_CHECK(oh > 0 && ow > 0, op, ": the output would be empty (x ", x.shape(), ", w ", w.shape(), ")");
  DeviceGuard guard(x.device().index);
  Tensor y = Tensor::empty({n, k, oh, ow}, x.dtype(), x.device(), MemoryFormat::ChannelsLast);

  const auto al = [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; };
  cudnn_graph::ConvDesc d;
  d.dir = cudnn_graph::ConvDir::fwd;
  d.dtype = x.dtype();
  d.data_type = data_type(x.dtype());
  d.x_dims = {n, c, h, wd};
  d.x_strides = arr(channels_last_strides(x.shape()));
  d.w_dims = {k, c, kh, kw};
  d.w_strides = arr(channels_last_strides(w.shape()));
  d.y_dims = {n, k, oh, ow};
  d.y_strides = arr(channels_last_strides(y.shape()));
  d.pad = {padding[0], padding[1]};
  d.stride = {stride[0], stride[1]};
  d.dilation = {1, 1};
  const int64_t item = static_cast<int64_t>(itemsize(x.dtype()));
  d.align_x = al(x) ? 16 : item;
  d.align_w = al(w) ? 16 : item;
  d.align_y = al(y) ? 16 : item;
  const std::vector<int64_t> key{current_device(),
                                 static_cast<int64_t>(x.dtype()),
                                 n,
                                 c,
                                 h,
                                 wd,
                                 k,
                                 kh,
                                 kw,
                                 stride[0],
                                 stride[1],
                                 padding[0],
                                 padding[1],
                                 d.align_x,
                                 d.align_w,
                                 d.align_y};
  std::shared_ptr<cudnn_graph::ProloguePlan> plan;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = plans().find(key);
    if (it == plans().end()) {
      Entry e;
      try {
        e.plan = cudnn_graph::make_prologue_conv_plan(d, &e.why);
      } catch (const Error& err) {  // an attribute this cuDNN does not take: no fused path for the shape
        e.plan = nullptr;
        e.why = err.what();
      }
      it = plans().emplace(key, std::move(e)).first;
    }
    plan = it->second.plan;
    if (!plan) {
      if (why) *why = "cuDNN: " + it->second.why;
      return Tensor();
    }
  }
  const int64_t ws = cudnn_graph::workspace_size(*plan);
  cudnn_graph::execute_prologue(*plan, x.data_ptr(), scale.data_ptr(), bias.data_ptr(), w.data_ptr(),
                                y.data_ptr(), ws ? workspace(static_cast<size_t>(ws)) : nullptr);
  NABLA_CUDA_LAUNCH_CHECK();
  return y;
}

}  // namespace nabla::cuda
