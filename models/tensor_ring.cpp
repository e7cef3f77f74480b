// Tensor-ring layers and networks: models/tensor_ring.h has the maths and the contraction orders.
#include "models/tensor_ring.h"

#include <charconv>
#include <cmath>
#include <functional>

#include "engine/checked.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/linalg.h"

namespace nabla::models {
using namespace nn;

namespace {

std::string join(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

void check_dims(const char* who, const char* what, const std::vector<int64_t>& v) {
  NABLA_CHECK(!v.empty(), who, ": ", what, " must not be empty");
  for (int64_t d : v) NABLA_CHECK(d >= 1, who, ": every ", what, " entry must be >= 1, got ", join(v));
}

Tensor normal_core(const Shape& shape, double std, const TRLayerOptions& o) {
  return normal(shape, 0.0, std, {.dtype = o.dtype, .requires_grad = true}, o.generator);
}

// Multiply-adds of tr_merge_cores over cores with ranks r[0..m] and mode sizes n[0..m-1].
int64_t merge_macs(const std::vector<int64_t>& r, const std::vector<int64_t>& n) {
  int64_t total = 0, rows = r[0] * n[0];
  for (size_t j = 1; j < n.size(); ++j) {
    total += rows * r[j] * n[j] * r[j + 1];
    rows *= n[j];
  }
  return total;
}

// Registers cores "<prefix><k>" [r[k], n[k], r[k+1]]: the first with std first_std, the later ones
// Kaiming fan-in with linear gain (std 1 / sqrt(r[k])).
std::vector<Tensor> make_cores(const std::function<Tensor(const std::string&, Tensor)>& reg,
                               const std::string& prefix, const std::vector<int64_t>& r,
                               const std::vector<int64_t>& n, double first_std, const TRLayerOptions& o) {
  std::vector<Tensor> cores;
  for (size_t k = 0; k < n.size(); ++k) {
    const double std = k == 0 ? first_std : 1.0 / std::sqrt(static_cast<double>(r[k]));
    cores.push_back(reg(prefix + std::to_string(k), normal_core({r[k], n[k], r[k + 1]}, std, o)));
  }
  return cores;
}

}  // namespace

TRContraction parse_tr_contraction(const std::string& name) {
  if (name == "paper") return TRContraction::paper;
  if (name == "full_weight") return TRContraction::full_weight;
  if (name == "cheapest") return TRContraction::cheapest;
  fail("tensor ring: unknown contraction order '", name, "' (expected paper, full_weight or cheapest)");
}

Tensor tr_merge_cores(const std::vector<Tensor>& cores) {
  NABLA_CHECK(!cores.empty(), "tr_merge_cores: no cores");
  const int64_t r_first = cores[0].size(0);
  Tensor acc = cores[0].reshape({r_first * cores[0].size(1), cores[0].size(2)});
  int64_t n = cores[0].size(1), r = cores[0].size(2);
  for (size_t j = 1; j < cores.size(); ++j) {
    const Tensor& z = cores[j];
    NABLA_CHECK(z.dim() == 3 && z.size(0) == r, "tr_merge_cores: core ", j, " has shape ", z.shape(),
                ", expected [", r, ", n, R]");
    r = z.size(2);
    acc = matmul(acc.reshape({-1, z.size(0)}), z.reshape({z.size(0), z.size(1) * z.size(2)}));
    n *= z.size(1);
  }
  return acc.reshape({r_first, n, cores.back().size(2)});
}

// ---- TRLinear ----
TRLinear::TRLinear(std::vector<int64_t> in_shape, std::vector<int64_t> out_shape, std::vector<int64_t> ranks,
                   TRLayerOptions o)
    : Module("TRLinear"),
      options(o),
      in_shape_(std::move(in_shape)),
      out_shape_(std::move(out_shape)),
      ranks_(std::move(ranks)) {
  check_dims("TRLinear", "input shape", in_shape_);
  check_dims("TRLinear", "output shape", out_shape_);
  check_dims("TRLinear", "rank", ranks_);
  const size_t a = in_shape_.size(), b = out_shape_.size();
  NABLA_CHECK(ranks_.size() == a + b, "TRLinear: ", a, " input and ", b, " output modes need ", a + b,
              " ranks, got ", ranks_.size(), " ", join(ranks_));
  in_features_ = checked_product(in_shape_, "TRLinear: input features");
  out_features_ = checked_product(out_shape_, "TRLinear: output features");
  // The ring of ranks: input nodes use ranks[0..a], output nodes ranks[a..a+b] with ranks[a+b] = ranks[0].
  std::vector<int64_t> rin(ranks_.begin(), ranks_.begin() + a + 1);
  std::vector<int64_t> rout(ranks_.begin() + a, ranks_.end());
  rout.push_back(ranks_[0]);
  auto reg = [this](const std::string& n, Tensor t) { return register_parameter(n, std::move(t)); };
  in_cores = make_cores(reg, "in_core", rin, in_shape_, std::sqrt(1.0 / in_features_), o);
  const double gain = o.init == TRInit::lenet ? 2.0 : 1.0;
  out_cores = make_cores(reg, "out_core", rout, out_shape_,
                         std::sqrt(gain / static_cast<double>(ranks_[a] * ranks_[0])), o);
  if (o.bias)
    bias = register_parameter("bias", zeros({out_features_}, {.dtype = o.dtype, .requires_grad = true}));
}

Tensor TRLinear::full_weight() const {
  // W[o, i] = sum_{r, a} U[r, i, a] V[a, o, r]
  return einsum("ria,aor->oi", {tr_merge_cores(in_cores), tr_merge_cores(out_cores)});
}

TRContraction TRLinear::resolved_order(int64_t batch) const {
  if (options.order != TRContraction::cheapest) return options.order;
  const int64_t rr = ranks_[0] * ranks_[in_shape_.size()];
  const int64_t paper = rr * (in_features_ + out_features_) + batch * rr;
  const int64_t full = rr * (in_features_ + out_features_) + in_features_ * out_features_;
  return full < paper ? TRContraction::full_weight : TRContraction::paper;
}

Tensor TRLinear::forward(const Tensor& x) {
  NABLA_CHECK(x.dim() >= 1 && x.size(-1) == in_features_, "TRLinear: input has ",
              x.dim() >= 1 ? x.size(-1) : 0, " features, expected ", in_features_, " (input ", x.shape(),
              ")");
  const int64_t rows = x.numel() / in_features_;
  if (resolved_order(rows) == TRContraction::full_weight) return linear(x, full_weight(), bias);
  const int64_t r0 = ranks_[0], ra = ranks_[in_shape_.size()];
  Tensor u = tr_merge_cores(in_cores).permute({0, 2, 1}).reshape({r0 * ra, in_features_});    // [R0 Ra, I]
  Tensor v = tr_merge_cores(out_cores).permute({1, 2, 0}).reshape({out_features_, r0 * ra});  // [O, R0 Ra]
  return linear(linear(x, u), v, bias);
}

int64_t TRLinear::tr_params() const {
  int64_t n = 0;
  for (auto& c : in_cores) n += c.numel();
  for (auto& c : out_cores) n += c.numel();
  return n;
}

int64_t TRLinear::dense_params() const { return in_features_ * out_features_; }

int64_t TRLinear::macs(int64_t batch, TRContraction order) const {
  const size_t a = in_shape_.size();
  std::vector<int64_t> rin(ranks_.begin(), ranks_.begin() + a + 1);
  std::vector<int64_t> rout(ranks_.begin() + a, ranks_.end());
  rout.push_back(ranks_[0]);
  const int64_t rr = ranks_[0] * ranks_[a];
  const int64_t merges = merge_macs(rin, in_shape_) + merge_macs(rout, out_shape_);
  if (order == TRContraction::cheapest) order = resolved_order(batch);
  if (order == TRContraction::full_weight)
    return merges + out_features_ * rr * in_features_ + batch * in_features_ * out_features_;
  return merges + batch * rr * (in_features_ + out_features_);
}

std::string TRLinear::extra_repr() const {
  return join(in_shape_) + " -> " + join(out_shape_) + ", ranks " + join(ranks_) + ", compression " +
         std::to_string(compression()).substr(0, 6) + (bias.defined() ? "" : ", bias=false");
}

// ---- TRConv2d ----
TRConv2d::TRConv2d(std::vector<int64_t> in_shape, std::vector<int64_t> out_shape,
                   std::vector<int64_t> in_ranks, std::vector<int64_t> out_ranks, int64_t kernel,
                   int64_t stride, int64_t padding, TRLayerOptions o)
    : Module("TRConv2d"),
      options(o),
      in_shape_(std::move(in_shape)),
      out_shape_(std::move(out_shape)),
      in_ranks_(std::move(in_ranks)),
      out_ranks_(std::move(out_ranks)),
      kernel_(kernel),
      stride_(stride),
      padding_(padding) {
  check_dims("TRConv2d", "input shape", in_shape_);
  check_dims("TRConv2d", "output shape", out_shape_);
  check_dims("TRConv2d", "input rank", in_ranks_);
  check_dims("TRConv2d", "output rank", out_ranks_);
  NABLA_CHECK(in_ranks_.size() == in_shape_.size() + 1, "TRConv2d: ", in_shape_.size(), " input modes need ",
              in_shape_.size() + 1, " input ranks, got ", join(in_ranks_));
  NABLA_CHECK(out_ranks_.size() == out_shape_.size(), "TRConv2d: ", out_shape_.size(), " output modes need ",
              out_shape_.size(), " output ranks, got ", join(out_ranks_));
  NABLA_CHECK(kernel >= 1 && stride >= 1 && padding >= 0, "TRConv2d: kernel ", kernel, " and stride ", stride,
              " must be >= 1, padding ", padding, " >= 0");
  c_in_ = checked_product(in_shape_, "TRConv2d: input channels");
  c_out_ = checked_product(out_shape_, "TRConv2d: output channels");
  const int64_t r0 = in_ranks_.front(), ra = in_ranks_.back(), rb = out_ranks_.front();
  std::vector<int64_t> rout = out_ranks_;
  rout.push_back(r0);
  auto reg = [this](const std::string& n, Tensor t) { return register_parameter(n, std::move(t)); };
  in_cores = make_cores(reg, "in_core", in_ranks_, in_shape_, std::sqrt(1.0 / c_in_), o);
  const double gain = o.init == TRInit::lenet ? 1.0 : std::sqrt(2.0);
  kernel_core = register_parameter(
      "kernel", normal_core({rb, ra, kernel, kernel},
                            std::sqrt((o.init == TRInit::lenet ? 2.0 : 1.0) / (ra * kernel * kernel)), o));
  out_cores =
      make_cores(reg, "out_core", rout, out_shape_, std::sqrt(gain / static_cast<double>(r0 * rb)), o);
  if (o.bias) bias = register_parameter("bias", zeros({c_out_}, {.dtype = o.dtype, .requires_grad = true}));
}

Tensor TRConv2d::full_weight() const {
  // W[o, c, p, q] = sum_{r, a, b} U[r, c, a] K[b, a, p, q] V[b, o, r]
  return einsum("rca,bapq,bor->ocpq", {tr_merge_cores(in_cores), kernel_core, tr_merge_cores(out_cores)});
}

TRContraction TRConv2d::resolved_order(int64_t batch, int64_t h, int64_t w) const {
  if (options.order != TRContraction::cheapest) return options.order;
  const int64_t r0 = in_ranks_.front(), ra = in_ranks_.back(), rb = out_ranks_.front();
  const int64_t oh = out_size(h), ow = out_size(w);
  // Intermediates held: paper: the two merged weights and the activations [B, R0 Ra, H, W],
  // [B R0, Rb, H', W']; full weight: the merged cores, U K [R0, C_in, k^2, Rb] and W.
  const int64_t merged = r0 * ra * c_in_ + rb * c_out_ * r0;
  const int64_t paper = merged + batch * r0 * (ra * h * w + rb * oh * ow);
  const int64_t full = merged + (r0 * c_in_ * rb + c_out_ * c_in_) * kernel_ * kernel_;
  return full < paper ? TRContraction::full_weight : TRContraction::paper;
}

Tensor TRConv2d::forward(const Tensor& x) {
  NABLA_CHECK(x.dim() == 4 && x.size(1) == c_in_, "TRConv2d: expected input [N, ", c_in_, ", H, W], got ",
              x.shape());
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  if (resolved_order(b, h, w) == TRContraction::full_weight)
    return conv2d(x, full_weight(), bias, {stride_, stride_}, {padding_, padding_});
  const int64_t r0 = in_ranks_.front(), ra = in_ranks_.back(), rb = out_ranks_.front();
  Tensor u = tr_merge_cores(in_cores).permute({0, 2, 1}).reshape({r0 * ra, c_in_, 1, 1});
  Tensor v = tr_merge_cores(out_cores).permute({1, 2, 0}).reshape({c_out_, r0 * rb, 1, 1});
  Tensor t = conv2d(x, u).reshape({b * r0, ra, h, w});                             // steps 1-2
  t = conv2d(t, kernel_core, Tensor(), {stride_, stride_}, {padding_, padding_});  // step 3
  t = t.reshape({b, r0 * rb, t.size(2), t.size(3)});                               // step 4
  return conv2d(t, v, bias);                                                       // step 5
}

int64_t TRConv2d::tr_params() const {
  int64_t n = kernel_core.numel();
  for (auto& c : in_cores) n += c.numel();
  for (auto& c : out_cores) n += c.numel();
  return n;
}

int64_t TRConv2d::dense_params() const { return c_in_ * c_out_ * kernel_ * kernel_; }

int64_t TRConv2d::macs(int64_t batch, int64_t h, int64_t w, TRContraction order) const {
  const int64_t r0 = in_ranks_.front(), ra = in_ranks_.back(), rb = out_ranks_.front();
  std::vector<int64_t> rout = out_ranks_;
  rout.push_back(r0);
  const int64_t merges = merge_macs(in_ranks_, in_shape_) + merge_macs(rout, out_shape_);
  const int64_t kk = kernel_ * kernel_, pix = out_size(h) * out_size(w);
  if (order == TRContraction::cheapest) order = resolved_order(batch, h, w);
  if (order == TRContraction::full_weight)
    return merges + r0 * c_in_ * ra * kk * rb + c_out_ * r0 * rb * c_in_ * kk +
           batch * pix * c_out_ * c_in_ * kk;
  return merges + batch * (h * w * c_in_ * r0 * ra + r0 * pix * ra * rb * kk + pix * r0 * rb * c_out_);
}

std::string TRConv2d::extra_repr() const {
  return join(in_shape_) + " -> " + join(out_shape_) + ", kernel " + std::to_string(kernel_) + ", stride " +
         std::to_string(stride_) + ", padding " + std::to_string(padding_) + ", ranks in " + join(in_ranks_) +
         " out " + join(out_ranks_) + ", compression " + std::to_string(compression()).substr(0, 6);
}

// ---- TR-LeNet5 ----
TRLeNet5::TRLeNet5(const std::vector<int64_t>& r, TRLeNet5Options o) : Module("TRLeNet5") {
  NABLA_CHECK(static_cast<int64_t>(r.size()) == kNumRanks, "TRLeNet5: expected ", kNumRanks, " ranks, got ",
              r.size(), " ", join(r));
  NABLA_CHECK(o.num_classes >= 1, "TRLeNet5: num_classes must be >= 1, got ", o.num_classes);
  // fc5 factors 1250 = 50 x 5 x 5 inputs: 28x28 images (conv pad 2, pool, conv 5x5, pool).
  NABLA_CHECK(o.image_size == 28, "TRLeNet5: image size must be 28 (fc5 has 1250 = 50 x 5 x 5 inputs), got ",
              o.image_size);
  c1 = register_module("c1", std::make_shared<TRConv2d>(std::vector<int64_t>{1}, std::vector<int64_t>{4, 5},
                                                        std::vector<int64_t>{r[0], r[1]},
                                                        std::vector<int64_t>{r[2], r[3]}, 5, 1, 2, o.layer));
  c3 = register_module(
      "c3", std::make_shared<TRConv2d>(std::vector<int64_t>{4, 5}, std::vector<int64_t>{5, 10},
                                       std::vector<int64_t>{r[4], r[5], r[6]},
                                       std::vector<int64_t>{o.c3_rank7_fixed_to_2 ? 2 : r[7], r[8]}, 5, 1, 0,
                                       o.layer));
  fc5 = register_module(
      "fc5", std::make_shared<TRLinear>(std::vector<int64_t>{5, 5, 5, 10}, std::vector<int64_t>{5, 8, 8},
                                        std::vector<int64_t>(r.begin() + 9, r.begin() + 16), o.layer));
  fc6 = register_module(
      "fc6", std::make_shared<TRLinear>(std::vector<int64_t>{5, 8, 8}, std::vector<int64_t>{o.num_classes},
                                        std::vector<int64_t>(r.begin() + 16, r.end()), o.layer));
}

Tensor TRLeNet5::forward(const Tensor& x) {
  Tensor h = max_pool2d(relu(c1->forward(x)), {2, 2});
  h = max_pool2d(relu(c3->forward(h)), {2, 2});
  h = relu(fc5->forward(h.flatten(1)));
  return fc6->forward(h);
}

DenseLeNet5::DenseLeNet5(int64_t num_classes) : Module("DenseLeNet5") {
  NABLA_CHECK(num_classes >= 1, "DenseLeNet5: num_classes must be >= 1, got ", num_classes);
  c1 = register_module("c1",
                       std::make_shared<nn::Conv2d>(1, 20, Pair{5, 5}, nn::Conv2dOptions{.padding = {2, 2}}));
  c3 = register_module("c3", std::make_shared<nn::Conv2d>(20, 50, Pair{5, 5}));
  fc5 = register_module("fc5", std::make_shared<nn::Linear>(1250, 320));
  fc6 = register_module("fc6", std::make_shared<nn::Linear>(320, num_classes));
}

Tensor DenseLeNet5::forward(const Tensor& x) {
  NABLA_CHECK(x.dim() == 4 && x.size(1) == 1 && x.size(2) == 28 && x.size(3) == 28,
              "DenseLeNet5: expected input [N, 1, 28, 28], got ", x.shape());
  Tensor h = max_pool2d(relu(c1->forward(x)), {2, 2});
  h = max_pool2d(relu(c3->forward(h)), {2, 2});
  h = relu(fc5->forward(h.flatten(1)));
  return fc6->forward(h);
}

double TRLeNet5::min_compression() const {
  return std::min({c1->compression(), c3->compression(), fc5->compression(), fc6->compression()});
}

int64_t TRLeNet5::dense_network_params() const {
  const int64_t k = fc6->out_features();
  return (25 * 20 + 20) + (20 * 25 * 50 + 50) + (1250 * 320 + 320) + (320 * k + k);
}

double TRLeNet5::network_compression() const {
  return static_cast<double>(dense_network_params()) / num_parameters();
}

// ---- TR-ResNet ----
namespace {

std::vector<int64_t> channel_factors(int64_t c) {
  if (c == 16) return {4, 4};
  if (c == 32) return {4, 8};
  if (c == 64) return {8, 8};
  return {c};
}

std::shared_ptr<TRConv2d> tr_conv3x3(int64_t c_in, int64_t c_out, int64_t stride, int64_t r_in, int64_t r_out,
                                     const TRLayerOptions& o) {
  auto fi = channel_factors(c_in), fo = channel_factors(c_out);
  return std::make_shared<TRConv2d>(fi, fo, std::vector<int64_t>(fi.size() + 1, r_in),
                                    std::vector<int64_t>(fo.size(), r_out), 3, stride, 1, o);
}

class TRBasicBlock : public Module {
 public:
  TRBasicBlock(int64_t in, int64_t planes, int64_t stride, int64_t r_in, int64_t r_out,
               const TRLayerOptions& o, std::vector<std::shared_ptr<TRConv2d>>& convs)
      : Module("TRBasicBlock") {
    conv1 = register_module("conv1", tr_conv3x3(in, planes, stride, r_in, r_out, o));
    bn1 = register_module("bn1", BatchNorm2d(planes));
    conv2 = register_module("conv2", tr_conv3x3(planes, planes, 1, r_in, r_out, o));
    bn2 = register_module("bn2", BatchNorm2d(planes));
    convs.push_back(conv1);
    convs.push_back(conv2);
    if (stride != 1 || in != planes) {
      downsample = register_module("downsample", std::make_shared<Sequential>());
      downsample
          ->add(std::make_shared<Conv2d>(in, planes, Pair{1, 1},
                                         Conv2dOptions{.stride = {stride, stride}, .bias = false}))
          .add(BatchNorm2d(planes));
    }
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = relu(bn1->forward(conv1->forward(x)));
    h = bn2->forward(conv2->forward(h));
    return add_relu(h, downsample ? downsample->forward(x) : x);
  }
  std::shared_ptr<TRConv2d> conv1, conv2;
  std::shared_ptr<BatchNorm> bn1, bn2;
  std::shared_ptr<Sequential> downsample;
};

}  // namespace

TRResNet::TRResNet(const std::vector<int64_t>& r, TRResNetOptions o) : Module("TRResNet"), o_(o) {
  NABLA_CHECK(static_cast<int64_t>(r.size()) == kNumRanks, "TRResNet: expected ", kNumRanks,
              " ranks [stem, s1_in, s1_out, s2_in, s2_out, s3_in, s3_out], got ", r.size(), " ", join(r));
  NABLA_CHECK(o.depth >= 8 && (o.depth - 2) % 6 == 0, "TRResNet: depth must be 6n + 2 (20, 32, ...), got ",
              o.depth);
  NABLA_CHECK(o.num_classes >= 1 && o.in_channels >= 1, "TRResNet: num_classes ", o.num_classes,
              " and in_channels ", o.in_channels, " must be >= 1");
  stem_ = register_module(
      "conv1", std::make_shared<TRConv2d>(std::vector<int64_t>{o.in_channels}, std::vector<int64_t>{4, 4},
                                          std::vector<int64_t>{r[0], r[0]}, std::vector<int64_t>{r[0], r[0]},
                                          3, 1, 1, o.layer));
  tr_convs.push_back(stem_);
  stem_bn_ = register_module("bn1", BatchNorm2d(16));
  const int64_t n = (o.depth - 2) / 6;
  int64_t in = 16;
  for (int64_t s = 0; s < 3; ++s) {
    const int64_t planes = 16 << s;
    auto stage = register_module("layer" + std::to_string(s + 1), std::make_shared<Sequential>());
    for (int64_t b = 0; b < n; ++b) {
      auto block = std::make_shared<TRBasicBlock>(in, planes, (b == 0 && s > 0) ? 2 : 1, r[1 + 2 * s],
                                                  r[2 + 2 * s], o.layer, tr_convs);
      stage->add(block);
      blocks_.push_back(block);
      in = planes;
    }
  }
  fc_ = register_module("fc", std::make_shared<Linear>(64, o.num_classes));
}

Tensor TRResNet::forward(const Tensor& x) {
  NABLA_CHECK(x.dim() == 4 && x.size(1) == o_.in_channels, "TRResNet: expected input [N, ", o_.in_channels,
              ", H, W], got ", x.shape());
  Tensor h = relu(stem_bn_->forward(stem_->forward(x)));
  for (auto& b : blocks_) h = b->forward(h);
  return fc_->forward(adaptive_avg_pool2d(h, {1, 1}).flatten(1));
}

double TRResNet::min_compression() const {
  double m = tr_convs.front()->compression();
  for (auto& c : tr_convs) m = std::min(m, c->compression());
  return m;
}

int64_t TRResNet::dense_network_params() const {
  int64_t dense = num_parameters();
  for (auto& c : tr_convs) dense += c->dense_params() - c->tr_params();
  return dense;
}

double TRResNet::network_compression() const {
  return static_cast<double>(dense_network_params()) / num_parameters();
}

std::vector<int64_t> parse_ranks(const std::string& text, int64_t expected) {
  std::vector<int64_t> ranks;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ',' || text[i] == ' ' || text[i] == '[' || text[i] == ']')) ++i;
    if (i == text.size()) break;
    size_t j = i;
    while (j < text.size() && text[j] != ',' && text[j] != ' ' && text[j] != ']') ++j;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data() + i, text.data() + j, v);
    NABLA_CHECK(ec == std::errc() && p == text.data() + j && v >= 1 && v <= 4096, "ranks: entry ",
                ranks.size() + 1, " '", text.substr(i, j - i), "' is not an integer in [1, 4096] (in '", text,
                "')");
    ranks.push_back(v);
    i = j;
  }
  NABLA_CHECK(!ranks.empty(), "ranks: no ranks in '", text, "'");
  NABLA_CHECK(expected <= 0 || static_cast<int64_t>(ranks.size()) == expected, "ranks: expected ", expected,
              " ranks, got ", ranks.size(), " in '", text, "'");
  return ranks;
}

}  // namespace nabla::models
