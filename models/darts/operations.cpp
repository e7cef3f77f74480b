// The DARTS operations as compositions of engine ops (see operations.h for the definitions).
#include "models/darts/operations.h"

#include "autograd/autograd.h"
#include "engine/error.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/linalg.h"

namespace nabla::models::darts {
using namespace nn;

const char* op_name(OpKind op) {
  const int i = static_cast<int>(op);
  NABLA_CHECK(i >= 0 && i < kNumOps, "darts: operation index ", i, " is not in [0, ", kNumOps, ")");
  return kPrimitives[static_cast<size_t>(i)];
}

OpKind op_kind(const std::string& name) {
  for (int i = 0; i < kNumOps; ++i)
    if (name == kPrimitives[static_cast<size_t>(i)]) return static_cast<OpKind>(i);
  std::string known;
  for (const char* p : kPrimitives) known += std::string(known.empty() ? "" : ", ") + p;
  fail("darts: unknown operation '", name, "' (expected one of ", known, ")");
}

bool is_weight_free(OpKind op) {
  return op == OpKind::none || op == OpKind::max_pool_3x3 || op == OpKind::avg_pool_3x3 ||
         op == OpKind::skip_connect;
}

// ---- multiply-add counting ----
namespace {
thread_local MacCounter* g_counter = nullptr;
}
MacCounter::MacCounter() : previous_(g_counter) { g_counter = this; }
MacCounter::~MacCounter() { g_counter = previous_; }
void MacCounter::add(int64_t macs) {
  if (g_counter) g_counter->macs_ += macs;
}

Tensor counted_conv(Conv2d& conv, const Tensor& x) {
  Tensor y = conv.forward(x);
  if (g_counter) {
    const Tensor& w = conv.weight;  // [out, in / groups, kh, kw]
    MacCounter::add(y.numel() / y.size(0) * w.size(1) * w.size(2) * w.size(3));
  }
  return y;
}

Tensor counted_linear(Linear& linear, const Tensor& x) {
  Tensor y = linear.forward(x);
  if (g_counter) MacCounter::add(linear.weight.size(0) * linear.weight.size(1));
  return y;
}

std::shared_ptr<Conv2d> conv_no_bias(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                                     int64_t dilation, int64_t groups) {
  return std::make_shared<Conv2d>(in, out, Pair{k, k},
                                  Conv2dOptions{.stride = {stride, stride},
                                                .padding = {pad, pad},
                                                .dilation = {dilation, dilation},
                                                .groups = groups,
                                                .bias = false});
}

namespace {
std::shared_ptr<BatchNorm> bn2d(int64_t c, bool affine) {
  return std::make_shared<BatchNorm>(c, 2, 1e-5, 0.1, affine);
}
}  // namespace

// ---- ReLUConvBN ----
ReLUConvBN::ReLUConvBN(int64_t c_in, int64_t c_out, int64_t k, int64_t stride, int64_t pad, bool affine)
    : Module("ReLUConvBN") {
  conv = register_module("conv", conv_no_bias(c_in, c_out, k, stride, pad));
  bn = register_module("bn", bn2d(c_out, affine));
}
Tensor ReLUConvBN::forward(const Tensor& x) { return bn->forward(counted_conv(*conv, relu(x))); }

// ---- DilConv ----
DilConv::DilConv(int64_t c_in, int64_t c_out, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                 bool affine)
    : Module("DilConv") {
  depthwise = register_module("depthwise", conv_no_bias(c_in, c_in, k, stride, pad, dilation, c_in));
  pointwise = register_module("pointwise", conv_no_bias(c_in, c_out, 1, 1, 0));
  bn = register_module("bn", bn2d(c_out, affine));
}
Tensor DilConv::forward(const Tensor& x) {
  return bn->forward(counted_conv(*pointwise, counted_conv(*depthwise, relu(x))));
}

// ---- SepConv ----
SepConv::SepConv(int64_t c_in, int64_t c_out, int64_t k, int64_t stride, int64_t pad, bool affine)
    : Module("SepConv") {
  first = register_module("first", std::make_shared<DilConv>(c_in, c_in, k, stride, pad, 1, affine));
  second = register_module("second", std::make_shared<DilConv>(c_in, c_out, k, 1, pad, 1, affine));
}
Tensor SepConv::forward(const Tensor& x) { return second->forward(first->forward(x)); }

// ---- FactorizedReduce ----
FactorizedReduce::FactorizedReduce(int64_t c_in, int64_t c_out, bool affine) : Module("FactorizedReduce") {
  NABLA_CHECK(c_out % 2 == 0, "FactorizedReduce: output channels must be even, got ", c_out);
  conv1 = register_module("conv1", conv_no_bias(c_in, c_out / 2, 1, 2, 0));
  conv2 = register_module("conv2", conv_no_bias(c_in, c_out / 2, 1, 2, 0));
  bn = register_module("bn", bn2d(c_out, affine));
}
Tensor FactorizedReduce::forward(const Tensor& x) {
  NABLA_CHECK(x.dim() == 4 && x.size(2) % 2 == 0 && x.size(3) % 2 == 0,
              "FactorizedReduce: expected [N, C, H, W] with even H and W (the two stride-2 grids then have "
              "the same size), got ",
              x.shape());
  Tensor r = relu(x);
  Tensor shifted = r.narrow(2, 1, r.size(2) - 1).narrow(3, 1, r.size(3) - 1);
  return bn->forward(cat({counted_conv(*conv1, r), counted_conv(*conv2, shifted)}, 1));
}

// ---- Zero, pools ----
Tensor Zero::forward(const Tensor& x) {
  if (stride == 1) return x * 0.0;
  // x[:, :, ::s, ::s] * 0: only the shape matters
  const int64_t h = (x.size(2) + stride - 1) / stride, w = (x.size(3) + stride - 1) / stride;
  return zeros({x.size(0), x.size(1), h, w}, {.dtype = x.dtype(), .device = x.device()});
}

Pool3x3::Pool3x3(bool max_, int64_t c, int64_t stride_, bool search_bn)
    : Module(max_ ? "MaxPool3x3" : "AvgPool3x3"), max(max_), stride(stride_) {
  if (search_bn) bn = register_module("bn", bn2d(c, false));
}
Tensor Pool3x3::forward(const Tensor& x) {
  Tensor y = max ? max_pool2d(x, {3, 3}, {stride, stride}, {1, 1})
                 : avg_pool2d(x, {3, 3}, {stride, stride}, {1, 1}, /*count_include_pad=*/false);
  return bn ? bn->forward(y) : y;
}

std::shared_ptr<Module> make_op(OpKind op, int64_t c, int64_t stride, bool affine, bool search) {
  NABLA_CHECK(stride == 1 || stride == 2, "darts: ", op_name(op), " stride must be 1 or 2, got ", stride);
  switch (op) {
    case OpKind::none:
      return std::make_shared<Zero>(stride);
    case OpKind::max_pool_3x3:
      return std::make_shared<Pool3x3>(true, c, stride, search);
    case OpKind::avg_pool_3x3:
      return std::make_shared<Pool3x3>(false, c, stride, search);
    case OpKind::skip_connect:
      if (stride == 1) return std::make_shared<Identity>();
      return std::make_shared<FactorizedReduce>(c, c, affine);
    case OpKind::sep_conv_3x3:
      return std::make_shared<SepConv>(c, c, 3, stride, 1, affine);
    case OpKind::sep_conv_5x5:
      return std::make_shared<SepConv>(c, c, 5, stride, 2, affine);
    case OpKind::dil_conv_3x3:
      return std::make_shared<DilConv>(c, c, 3, stride, 2, 2, affine);
    case OpKind::dil_conv_5x5:
      return std::make_shared<DilConv>(c, c, 5, stride, 4, 2, affine);
  }
  fail("darts: bad operation ", static_cast<int>(op));
}

Tensor drop_path(const Tensor& x, double p, Generator* gen) {
  NABLA_CHECK(p >= 0 && p < 1, "drop_path: probability must be in [0, 1), got ", p);
  if (p == 0) return x;
  const double keep = 1.0 - p;
  Tensor u = rand({x.size(0), 1, 1, 1}, {.dtype = x.dtype(), .device = x.device()}, gen);
  Tensor mask = lt(u, full_like(u, keep)).to(x.dtype()) * (1.0 / keep);
  return x * mask;
}

// ---- MixedOp ----
MixedOp::MixedOp(int64_t c, int64_t stride_) : Module("MixedOp"), stride(stride_) {
  for (int k = 0; k < kNumOps; ++k) {
    auto op = make_op(static_cast<OpKind>(k), c, stride, /*affine=*/false, /*search=*/true);
    ops.push_back(register_module(std::to_string(k), op));
  }
}

Tensor MixedOp::forward(const Tensor& x, const Tensor& weights) {
  NABLA_CHECK(weights.dim() == 1 && weights.size(0) == kNumOps, "MixedOp: expected ", kNumOps,
              " weights, got ", weights.shape());
  Tensor out;
  for (int k = 1; k < kNumOps; ++k) {  // k = 0 is none: w * 0 adds nothing, and no gradient
    Tensor y = ops[static_cast<size_t>(k)]->forward(x) * weights.select(0, k);
    out = out.defined() ? out + y : y;
  }
  return out;
}

}  // namespace nabla::models::darts
