// The DARTS candidate operations (Liu et al. 2019; the B-DARTS / BNASv2 code uses exactly these), the
// mixed operation of the search supernet, drop-path, and a multiply-add counter for the networks built
// from them. Everything is a composition of engine ops (conv2d with groups and dilation, max/avg pooling
// with count_include_pad = false, batch norm with or without affine), so every backward is the engine's.
//
//   none           Zero(stride):  0 (stride 2: 0 on the [::2, ::2] grid)
//   max_pool_3x3   max_pool 3x3, stride s, pad 1                         (+ BN(affine=False) in search)
//   avg_pool_3x3   avg_pool 3x3, stride s, pad 1, count_include_pad=False (+ BN(affine=False) in search)
//   skip_connect   identity (s = 1) | FactorizedReduce(C, C) (s = 2)
//   sep_conv_kxk   ReLU, dw kxk/s pad k/2, pw 1x1, BN, ReLU, dw kxk/1, pw 1x1, BN     (k = 3, 5)
//   dil_conv_kxk   ReLU, dw kxk/s dilation 2 pad k-1, pw 1x1, BN                     (k = 3, 5)
//   ReLUConvBN     ReLU, conv kxk/s (no bias), BN
//   FactorizedReduce(C_in, C_out): ReLU, cat(conv1x1/2(x), conv1x1/2(x[:, :, 1:, 1:])) on C_out/2 each, BN
//   MixedOp        o(x) = sum_k softmax(alpha)_k op_k(x)   (the weights come in already softmaxed)
//   drop_path      x * m / keep, m ~ Bernoulli(keep) per example (training only)
//
// `affine` is the flag of every BN inside an op: False in the search supernet, True in evaluation networks.
// dw = depthwise conv (groups = channels), pw = pointwise 1x1 conv; no conv has a bias.
#pragma once
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "engine/random.h"
#include "models/nn/layers.h"

namespace nabla::models::darts {

// The order of DARTS's PRIMITIVES (the columns of alpha).
enum class OpKind : int {
  none = 0,
  max_pool_3x3,
  avg_pool_3x3,
  skip_connect,
  sep_conv_3x3,
  sep_conv_5x5,
  dil_conv_3x3,
  dil_conv_5x5
};
inline constexpr int kNumOps = 8;
inline constexpr std::array<const char*, kNumOps> kPrimitives = {
    "none",         "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"};

const char* op_name(OpKind op);
// Throws naming the eight known names when `name` is not one of them.
OpKind op_kind(const std::string& name);
// none, the pools and skip_connect: the operations without learned weights (whose dominance is the
// "performance collapse" CLR is meant to prevent). FactorizedReduce (skip at stride 2) has weights but is
// still counted as skip_connect, as the papers count it.
bool is_weight_free(OpKind op);

// Multiply-add counting: while a MacCounter lives on this thread, every conv and linear run through
// counted_conv / counted_linear adds its multiply-adds per example (output elements x fan-in / batch).
class MacCounter {
 public:
  MacCounter();
  ~MacCounter();
  MacCounter(const MacCounter&) = delete;
  MacCounter& operator=(const MacCounter&) = delete;
  int64_t macs() const { return macs_; }
  static void add(int64_t macs);

 private:
  int64_t macs_ = 0;
  MacCounter* previous_;
};
Tensor counted_conv(nn::Conv2d& conv, const Tensor& x);
Tensor counted_linear(nn::Linear& linear, const Tensor& x);

std::shared_ptr<nn::Conv2d> conv_no_bias(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                                         int64_t dilation = 1, int64_t groups = 1);

class ReLUConvBN : public nn::Module {
 public:
  ReLUConvBN(int64_t c_in, int64_t c_out, int64_t k, int64_t stride, int64_t pad, bool affine = true);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm> bn;
};

class DilConv : public nn::Module {
 public:
  DilConv(int64_t c_in, int64_t c_out, int64_t k, int64_t stride, int64_t pad, int64_t dilation, bool affine);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> depthwise, pointwise;
  std::shared_ptr<nn::BatchNorm> bn;
};

class SepConv : public nn::Module {
 public:
  SepConv(int64_t c_in, int64_t c_out, int64_t k, int64_t stride, int64_t pad, bool affine);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<DilConv> first, second;  // each ReLU, dw, pw, BN (dilation 1)
};

class FactorizedReduce : public nn::Module {
 public:
  FactorizedReduce(int64_t c_in, int64_t c_out, bool affine = true);
  Tensor forward(const Tensor& x) override;  // needs even H and W
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm> bn;
};

class Identity : public nn::Module {
 public:
  Identity() : nn::Module("Identity") {}
  Tensor forward(const Tensor& x) override { return x; }
};

class Zero : public nn::Module {
 public:
  explicit Zero(int64_t stride) : nn::Module("Zero"), stride(stride) {}
  Tensor forward(const Tensor& x) override;
  int64_t stride;
};

class Pool3x3 : public nn::Module {
 public:
  // max: max pooling, else average pooling without the padding in the count. search_bn: the BN(affine=False)
  // the search supernet puts after each pool.
  Pool3x3(bool max, int64_t c, int64_t stride, bool search_bn);
  Tensor forward(const Tensor& x) override;
  bool max;
  int64_t stride;
  std::shared_ptr<nn::BatchNorm> bn;  // null outside the search supernet
};

// The operation `op` on c channels with `stride` (1 or 2); `search`: pools get BN(affine=False) (DARTS's
// MixedOp) and `affine` is false in search.
std::shared_ptr<nn::Module> make_op(OpKind op, int64_t c, int64_t stride, bool affine, bool search = false);

// x * Bernoulli(1 - p) / (1 - p), one draw per example ([N, 1, 1, 1] mask); x itself when p == 0.
Tensor drop_path(const Tensor& x, double p, Generator* gen = nullptr);

// All eight operations on one edge. forward(x, w) with w [8] the softmax of the edge's alpha row.
class MixedOp : public nn::Module {
 public:
  MixedOp(int64_t c, int64_t stride);
  Tensor forward(const Tensor& x, const Tensor& weights);
  // The none operation contributes w_none * 0: it is skipped (its output and gradient are exactly 0).
  std::vector<std::shared_ptr<nn::Module>> ops;  // in kPrimitives order
  int64_t stride;
};

}  // namespace nabla::models::darts
