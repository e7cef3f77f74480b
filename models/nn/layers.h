// The standard layers. Initialisation follows PyTorch's defaults so that results are comparable:
//   Linear/Conv2d: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))  (kaiming_uniform with a = sqrt 5)
//   Embedding: N(0, 1); BatchNorm/LayerNorm: weight 1, bias 0.
// Shapes: Linear [*, in] -> [*, out]; Conv2d / BatchNorm2d / pools NCHW; BatchNorm1d [N, C] or [N, C, L].
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "models/nn/module.h"
#include "ops/conv.h"
#include "ops/embedding.h"

namespace nabla::nn {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;  // weight [out, in]

 protected:
  std::string extra_repr() const override;
};

struct Conv2dOptions {
  Pair stride{1, 1}, padding{0, 0}, dilation{1, 1};
  int64_t groups = 1;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Pair kernel, Conv2dOptions o = {});
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;  // weight [out, in / groups, kh, kw]
  Conv2dOptions options;

 protected:
  std::string extra_repr() const override;
};

// BatchNorm over dim 1 of [N, C, ...]; `spatial_dims` is 0 (BatchNorm1d on [N, C]), 1 or 2 (BatchNorm2d).
class BatchNorm : public Module {
 public:
  BatchNorm(int64_t num_features, int64_t spatial_dims, double eps = 1e-5, double momentum = 0.1,
            bool affine = true, bool track_running_stats = true);
  Tensor forward(const Tensor& x) override;
  // relu(forward(x) + residual) (residual may be undefined) through the fused batch_norm_add_relu op;
  // negative_slope > 0 makes the ReLU leaky (v > 0 ? v : negative_slope v).
  Tensor forward_add_relu(const Tensor& x, const Tensor& residual = Tensor(), double negative_slope = 0.0);
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  int64_t num_features, spatial_dims;
  double eps, momentum;

 protected:
  std::string extra_repr() const override;

 private:
  bool begin_forward(const Tensor& x);  // checks x, counts the batch; true: normalise with batch statistics
  Tensor one_;  // the i64 1 added to num_batches_tracked, made once per device rather than every step
};
inline std::shared_ptr<BatchNorm> BatchNorm1d(int64_t c) { return std::make_shared<BatchNorm>(c, 0); }
inline std::shared_ptr<BatchNorm> BatchNorm2d(int64_t c) { return std::make_shared<BatchNorm>(c, 2); }

class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool affine = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
  Shape normalized_shape;
  double eps;
};

class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, int64_t padding_idx = -1);
  Tensor forward(const Tensor& indices) override;
  Tensor weight;
  int64_t padding_idx;
};

class EmbeddingBag : public Module {
 public:
  // init: weight ~ N(0, 1); false leaves it uninitialised (empty) for the caller to fill.
  EmbeddingBag(int64_t num_embeddings, int64_t dim, BagMode mode = BagMode::mean, bool init = true);
  Tensor forward(const Tensor& indices, const Tensor& offsets);
  Tensor weight;
  BagMode mode;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override;
  double p;
};

// An element-wise activation or other stateless function of one tensor.
class Lambda : public Module {
 public:
  Lambda(std::string name, std::function<Tensor(const Tensor&)> fn)
      : Module(std::move(name)), fn_(std::move(fn)) {}
  Tensor forward(const Tensor& x) override { return fn_(x); }

 private:
  std::function<Tensor(const Tensor&)> fn_;
};
std::shared_ptr<Module> ReLU();
std::shared_ptr<Module> GELU();
std::shared_ptr<Module> Tanh();
std::shared_ptr<Module> Sigmoid();
std::shared_ptr<Module> SiLU();
std::shared_ptr<Module> LeakyReLU(double slope = 0.01);
std::shared_ptr<Module> Flatten(int64_t start_dim = 1);
std::shared_ptr<Module> MaxPool2d(Pair kernel, Pair stride = {0, 0}, Pair padding = {0, 0});
std::shared_ptr<Module> AvgPool2d(Pair kernel, Pair stride = {0, 0}, Pair padding = {0, 0});
std::shared_ptr<Module> AdaptiveAvgPool2d(Pair output_size);

// Runs its children in order; children are named "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  explicit Sequential(std::vector<std::shared_ptr<Module>> layers);
  Sequential& add(std::shared_ptr<Module> layer);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  std::shared_ptr<Module> operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace nabla::nn
