#include "models/nn/layers.h"

#include <cmath>

#include "autograd/autograd.h"
#include "ops/autocast.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/linalg.h"
#include "ops/nn.h"

namespace nabla::nn {
namespace {

Tensor uniform_param(const Shape& shape, double bound) {
  return uniform(shape, -bound, bound, {.requires_grad = true});
}

std::string pair_str(Pair p) { return "(" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + ")"; }

}  // namespace

// ---- Linear ----
Linear::Linear(int64_t in, int64_t out, bool has_bias) : Module("Linear") {
  NABLA_CHECK(in > 0 && out > 0, "Linear: features must be positive, got in ", in, " out ", out);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = register_parameter("weight", uniform_param({out, in}, bound));
  if (has_bias) bias = register_parameter("bias", uniform_param({out}, bound));
}

Tensor Linear::forward(const Tensor& x) {
  NABLA_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "Linear: input has ",
              x.dim() >= 1 ? x.size(-1) : 0, " features, expected ", weight.size(1), " (input ", x.shape(),
              ", weight ", weight.shape(), ")");
  // One op: on CUDA the bias add and the bias gradient ride on the GEMMs (cuBLASLt epilogues, ops/linalg.h).
  // Under autocast the bias joins the matmul's dtype, as in torch's linear (ops/autocast.h).
  return linear(x, weight, bias);
}

std::string Linear::extra_repr() const {
  return "in=" + std::to_string(weight.size(1)) + ", out=" + std::to_string(weight.size(0)) +
         (bias.defined() ? "" : ", bias=false");
}

// ---- Conv2d ----
Conv2d::Conv2d(int64_t in, int64_t out, Pair k, Conv2dOptions o) : Module("Conv2d"), options(o) {
  NABLA_CHECK(in > 0 && out > 0 && o.groups > 0 && in % o.groups == 0 && out % o.groups == 0,
              "Conv2d: channels in ", in, " and out ", out, " must be positive multiples of groups ",
              o.groups);
  const int64_t fan_in = in / o.groups * k[0] * k[1];
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  weight = register_parameter("weight", uniform_param({out, in / o.groups, k[0], k[1]}, bound));
  if (o.bias) bias = register_parameter("bias", uniform_param({out}, bound));
}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight, bias, options.stride, options.padding, options.dilation, options.groups);
}

std::string Conv2d::extra_repr() const {
  return std::to_string(weight.size(1) * options.groups) + " -> " + std::to_string(weight.size(0)) +
         ", kernel " + pair_str({weight.size(2), weight.size(3)}) + ", stride " + pair_str(options.stride) +
         ", padding " + pair_str(options.padding) +
         (options.groups > 1 ? ", groups " + std::to_string(options.groups) : "");
}

// ---- BatchNorm ----
BatchNorm::BatchNorm(int64_t c, int64_t sd, double eps_, double momentum_, bool affine, bool track)
    : Module(sd == 2 ? "BatchNorm2d" : "BatchNorm1d"),
      num_features(c),
      spatial_dims(sd),
      eps(eps_),
      momentum(momentum_) {
  NABLA_CHECK(c > 0, type_name(), ": num_features must be positive, got ", c);
  if (affine) {
    weight = register_parameter("weight", ones({c}));
    bias = register_parameter("bias", zeros({c}));
  }
  if (track) {
    running_mean = register_buffer("running_mean", zeros({c}));
    running_var = register_buffer("running_var", ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, {.dtype = DType::i64}));
  }
}

bool BatchNorm::begin_forward(const Tensor& x) {
  const int64_t want = 2 + spatial_dims;
  NABLA_CHECK(x.dim() == want || (spatial_dims == 0 && x.dim() == 3), type_name(), ": expected a ", want,
              "-D input [N, C", spatial_dims == 2 ? ", H, W" : "", "], got ", x.shape());
  const bool use_batch_stats = is_training() || !running_mean.defined();
  if (is_training() && num_batches_tracked.defined()) {
    NoGradGuard ng;
    if (!one_.defined() || one_.device() != num_batches_tracked.device())
      one_ = ones({}, {.dtype = DType::i64, .device = num_batches_tracked.device()});
    add_(num_batches_tracked, one_);
  }
  return use_batch_stats;
}

Tensor BatchNorm::forward(const Tensor& x) {
  const bool use_batch_stats = begin_forward(x);
  return batch_norm(x, weight, bias, running_mean, running_var, use_batch_stats, momentum, eps);
}

Tensor BatchNorm::forward_add_relu(const Tensor& x, const Tensor& residual, double negative_slope) {
  const bool use_batch_stats = begin_forward(x);
  return batch_norm_add_relu(x, weight, bias, running_mean, running_var, use_batch_stats, residual, momentum,
                             eps, negative_slope);
}

std::string BatchNorm::extra_repr() const { return std::to_string(num_features); }

// ---- LayerNorm ----
LayerNorm::LayerNorm(Shape shape, double eps_, bool affine)
    : Module("LayerNorm"), normalized_shape(shape), eps(eps_) {
  if (affine) {
    weight = register_parameter("weight", ones(shape));
    bias = register_parameter("bias", zeros(shape));
  }
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, normalized_shape, weight, bias, eps); }

// ---- Embedding ----
Embedding::Embedding(int64_t n, int64_t dim, int64_t pad) : Module("Embedding"), padding_idx(pad) {
  Tensor w = randn({n, dim});
  if (pad >= 0) w.select(0, pad).fill_(0.0);
  weight = register_parameter("weight", w);
}

Tensor Embedding::forward(const Tensor& indices) { return embedding(weight, indices, padding_idx); }

EmbeddingBag::EmbeddingBag(int64_t n, int64_t dim, BagMode m, bool init) : Module("EmbeddingBag"), mode(m) {
  weight = register_parameter("weight",
                              init ? randn({n, dim}) : Tensor::empty({n, dim}, DType::f32, Device::cpu()));
}

Tensor EmbeddingBag::forward(const Tensor& indices, const Tensor& offsets) {
  return embedding_bag(weight, indices, offsets, mode);
}

// ---- Dropout and stateless layers ----
Dropout::Dropout(double p_) : Module("Dropout"), p(p_) {
  NABLA_CHECK(p >= 0.0 && p <= 1.0, "Dropout: p must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, is_training()); }

std::shared_ptr<Module> ReLU() {
  return std::make_shared<Lambda>("ReLU", [](const Tensor& x) { return relu(x); });
}
std::shared_ptr<Module> GELU() {
  return std::make_shared<Lambda>("GELU", [](const Tensor& x) { return gelu(x); });
}
std::shared_ptr<Module> Tanh() {
  return std::make_shared<Lambda>("Tanh", [](const Tensor& x) { return tanh(x); });
}
std::shared_ptr<Module> Sigmoid() {
  return std::make_shared<Lambda>("Sigmoid", [](const Tensor& x) { return sigmoid(x); });
}
std::shared_ptr<Module> SiLU() {
  return std::make_shared<Lambda>("SiLU", [](const Tensor& x) { return silu(x); });
}
std::shared_ptr<Module> LeakyReLU(double s) {
  return std::make_shared<Lambda>("LeakyReLU", [s](const Tensor& x) { return leaky_relu(x, s); });
}
std::shared_ptr<Module> Flatten(int64_t start) {
  return std::make_shared<Lambda>("Flatten", [start](const Tensor& x) { return x.flatten(start); });
}
std::shared_ptr<Module> MaxPool2d(Pair k, Pair s, Pair p) {
  return std::make_shared<Lambda>("MaxPool2d", [=](const Tensor& x) { return max_pool2d(x, k, s, p); });
}
std::shared_ptr<Module> AvgPool2d(Pair k, Pair s, Pair p) {
  return std::make_shared<Lambda>("AvgPool2d", [=](const Tensor& x) { return avg_pool2d(x, k, s, p); });
}
std::shared_ptr<Module> AdaptiveAvgPool2d(Pair o) {
  return std::make_shared<Lambda>("AdaptiveAvgPool2d",
                                  [=](const Tensor& x) { return adaptive_avg_pool2d(x, o); });
}

// ---- Sequential ----
Sequential::Sequential(std::vector<std::shared_ptr<Module>> layers) : Module("Sequential") {
  for (auto& l : layers) add(std::move(l));
}

Sequential& Sequential::add(std::shared_ptr<Module> layer) {
  register_module(std::to_string(layers_.size()), layer);
  layers_.push_back(std::move(layer));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& l : layers_) h = l->forward(h);
  return h;
}

}  // namespace nabla::nn
