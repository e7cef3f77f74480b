// ResNets: the ImageNet family as torchvision builds it, and the CIFAR family of He et al. 2016.
//
// ImageNet (He et al. 2015; torchvision.models.resnet*), input [N, C, H, W]:
//   conv 7x7/2 C->64 pad 3 - bn - relu - maxpool 3x3/2 pad 1
//   - layer1..layer4: blocks of base width 64, 128, 256, 512, the first block of layers 2-4 with stride 2
//   - adaptive avg pool 1x1 - flatten - fc (512 * expansion -> classes)
//   resnet18/34: BasicBlock [2,2,2,2] / [3,4,6,3];  resnet50/101/152: Bottleneck [3,4,6,3] / [3,4,23,3] /
//   [3,8,36,3]. Bottleneck is "v1.5": the stride sits on the 3x3 conv, not on the first 1x1.
// CIFAR (He et al. 2016, section 4.2), depth = 6n + 2, input [N, C, 32, 32]:
//   conv 3x3 C->16 pad 1 - bn - relu - layer1..layer3: n BasicBlocks of 16, 32, 64 channels, stride 2 at
//   layers 2 and 3 - global avg pool - fc 64 -> classes. Shortcuts are option B (a conv 1x1 + bn projection
//   where the shape changes, identity elsewhere): ResNet-20 has 272,474 parameters for 10 classes, against
//   269,722 for the paper's option A (zero-padded identity, no parameters): the two projections add
//   16*32 + 2*32 + 32*64 + 2*64 = 2,752.
//
// Blocks, y = relu(F(x) + shortcut(x)) with shortcut = x or downsample(x) = bn(conv1x1/s(x)):
//   BasicBlock (expansion 1): F = bn2(conv3x3(relu(bn1(conv3x3/s(x)))))
//   Bottleneck (expansion 4): F = bn3(conv1x1(relu(bn2(conv3x3/s(relu(bn1(conv1x1(x))))))))
// Fusion: every bn - relu pair and each block's bn - add - relu run as one batch_norm_add_relu (one pass
// forward, one fused batch-norm + ReLU backward) unless NABLA_RESNET_FUSED=0 (or set_resnet_fused(false)):
// the same numbers as the unfused ops up to the roundings of the skipped intermediate tensors.
// Parameter names match torchvision's state_dict ("layer2.0.downsample.0.weight", "fc.bias").
// Init as torchvision: convs kaiming normal (fan_out, relu: std = sqrt(2 / (out * kh * kw))), no conv
// biases, BN weight 1 bias 0, fc PyTorch's default; zero_init_residual sets the last BN gamma of each block
// to 0 so that every block starts as the identity (Goyal et al. 2017).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/nn/layers.h"

namespace nabla::models {

struct ResNetOptions {
  int64_t num_classes = 1000;
  int64_t in_channels = 3;  // 1 for (Fashion-)MNIST
  bool zero_init_residual = false;
};

// A residual block: forward(x) = relu(residual(x) + shortcut(x)). `macs` adds the multiply-adds of its
// convs for an input of h x w and advances h, w to the output size.
class ResidualBlock : public nn::Module {
 public:
  using nn::Module::Module;
  virtual int64_t macs(int64_t& h, int64_t& w) const = 0;
  virtual nn::BatchNorm& last_bn() = 0;        // the BN that zero_init_residual zeroes
  std::shared_ptr<nn::Sequential> downsample;  // null: identity shortcut
};

class BasicBlock : public ResidualBlock {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlock(int64_t in_planes, int64_t planes, int64_t stride);
  Tensor forward(const Tensor& x) override;
  int64_t macs(int64_t& h, int64_t& w) const override;
  nn::BatchNorm& last_bn() override { return *bn2; }
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm> bn1, bn2;
};

class Bottleneck : public ResidualBlock {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t in_planes, int64_t planes, int64_t stride);
  Tensor forward(const Tensor& x) override;
  int64_t macs(int64_t& h, int64_t& w) const override;
  nn::BatchNorm& last_bn() override { return *bn3; }
  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::BatchNorm> bn1, bn2, bn3;
};

enum class BlockKind { basic, bottleneck };

// What distinguishes the members of the family.
struct ResNetSpec {
  BlockKind block = BlockKind::basic;
  std::vector<int64_t> blocks_per_stage;  // 4 stages (ImageNet) or 3 (CIFAR)
  bool cifar = false;                     // CIFAR stem (conv 3x3 16, no maxpool) and widths 16/32/64
};

class ResNet : public nn::Module {
 public:
  ResNet(const ResNetSpec& spec, const ResNetOptions& options);
  Tensor forward(const Tensor& x) override;
  // Multiply-adds (MACs) of every conv and the fc for one image of h x w (see resnet_flops).
  int64_t macs(int64_t h, int64_t w) const;

  ResNetSpec spec;
  ResNetOptions options;
  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm> bn1;
  std::vector<std::vector<std::shared_ptr<ResidualBlock>>> stages;  // registered as layer1.0, layer1.1, ...
  std::shared_ptr<nn::Linear> fc;
};

// Whether ResNet blocks use batch_norm_add_relu: NABLA_RESNET_FUSED (default 1; 0 turns it off), read once;
// set_resnet_fused overrides it for the process (tests compare the two paths).
bool resnet_fused();
void set_resnet_fused(bool on);

std::shared_ptr<ResNet> resnet18(const ResNetOptions& o = {});
std::shared_ptr<ResNet> resnet34(const ResNetOptions& o = {});
std::shared_ptr<ResNet> resnet50(const ResNetOptions& o = {});
std::shared_ptr<ResNet> resnet101(const ResNetOptions& o = {});
std::shared_ptr<ResNet> resnet152(const ResNetOptions& o = {});
// CIFAR ResNet of depth 6n + 2 (20, 32, 44, 56, 110, ...); num_classes as given (10 for CIFAR-10).
std::shared_ptr<ResNet> cifar_resnet(int64_t depth, const ResNetOptions& o = {});

// The spec of a named model: "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet20",
// "resnet32", "resnet44", "resnet56", "resnet110"; throws listing these names otherwise.
ResNetSpec resnet_spec(const std::string& name);
const std::vector<std::string>& resnet_names();
std::shared_ptr<ResNet> make_resnet(const std::string& name, const ResNetOptions& o = {});

// Multiply-accumulates of the convs and the fc for ONE image of h x w; BN, ReLU, pooling and the residual
// adds are not counted. This is the convention behind torchvision's "GFLOPS" column (fvcore counts one
// fused multiply-add as one flop): resnet18 at 224x224 = 1.82 G, resnet50 = 4.11 G. Real flops are 2x.
// The name overload counts a model with options `o` without keeping it.
int64_t resnet_flops(const ResNet& model, int64_t h, int64_t w);
int64_t resnet_flops(const std::string& name, int64_t h, int64_t w, const ResNetOptions& o = {});

}  // namespace nabla::models
