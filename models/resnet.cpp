#include "models/resnet.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "autograd/autograd.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/nn.h"

namespace nabla::models {
using namespace nn;
namespace {

// torchvision: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"), no bias.
std::shared_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
  auto c = std::make_shared<Conv2d>(
      in, out, Pair{k, k},
      Conv2dOptions{.stride = {stride, stride}, .padding = {k / 2, k / 2}, .bias = false});
  NoGradGuard ng;
  normal_(c->weight, 0.0, std::sqrt(2.0 / static_cast<double>(out * k * k)));
  return c;
}

std::shared_ptr<Sequential> projection(int64_t in, int64_t out, int64_t stride) {
  return std::make_shared<Sequential>(
      std::vector<std::shared_ptr<Module>>{conv(in, out, 1, stride), BatchNorm2d(out)});
}

// Multiply-adds of `c` on an h x w input; advances h, w to the output size.
int64_t conv_macs(const Conv2d& c, int64_t& h, int64_t& w) {
  const auto& o = c.options;
  const int64_t kh = c.weight.size(2), kw = c.weight.size(3);
  h = (h + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
  w = (w + 2 * o.padding[1] - o.dilation[1] * (kw - 1) - 1) / o.stride[1] + 1;
  return h * w * c.weight.size(0) * c.weight.size(1) * kh * kw;  // weight.size(1) = in / groups
}

int64_t shortcut_macs(const std::shared_ptr<Sequential>& ds, int64_t h, int64_t w) {
  return ds ? conv_macs(static_cast<const Conv2d&>(*(*ds)[0]), h, w) : 0;
}

// -1: not read yet; 0 / 1: off / on.
std::atomic<int> g_fused{-1};

// relu(bn(h)): one fused pass, or the two ops.
Tensor bn_relu(BatchNorm& bn, const Tensor& h) {
  return resnet_fused() ? bn.forward_add_relu(h) : relu(bn.forward(h));
}

// relu(bn(h) + shortcut(x)): the block's end. Fused, the shortcut is added inside batch_norm_add_relu (when
// it has h's dtype; under autocast both are the convolutions' dtype); otherwise bn, then add_relu.
Tensor bn_add_shortcut(BatchNorm& bn, const Tensor& h, const std::shared_ptr<Sequential>& ds,
                       const Tensor& x) {
  const Tensor shortcut = ds ? ds->forward(x) : x;
  if (resnet_fused() && shortcut.dtype() == h.dtype()) return bn.forward_add_relu(h, shortcut);
  return add_relu(bn.forward(h), shortcut);  // relu(residual + shortcut), one pass
}

}  // namespace

bool resnet_fused() {
  int v = g_fused.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* e = std::getenv("NABLA_RESNET_FUSED");
    v = (e && std::strcmp(e, "0") == 0) ? 0 : 1;
    g_fused.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

void set_resnet_fused(bool on) { g_fused.store(on ? 1 : 0, std::memory_order_relaxed); }

// ---- BasicBlock ----
BasicBlock::BasicBlock(int64_t in_planes, int64_t planes, int64_t stride) : ResidualBlock("BasicBlock") {
  conv1 = register_module("conv1", conv(in_planes, planes, 3, stride));
  bn1 = register_module("bn1", BatchNorm2d(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, 1));
  bn2 = register_module("bn2", BatchNorm2d(planes));
  if (stride != 1 || in_planes != planes * kExpansion)
    downsample = register_module("downsample", projection(in_planes, planes * kExpansion, stride));
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor h = bn_relu(*bn1, conv1->forward(x));
  return bn_add_shortcut(*bn2, conv2->forward(h), downsample, x);
}

int64_t BasicBlock::macs(int64_t& h, int64_t& w) const {
  int64_t total = shortcut_macs(downsample, h, w);
  total += conv_macs(*conv1, h, w);
  return total + conv_macs(*conv2, h, w);
}

// ---- Bottleneck ----
Bottleneck::Bottleneck(int64_t in_planes, int64_t planes, int64_t stride) : ResidualBlock("Bottleneck") {
  conv1 = register_module("conv1", conv(in_planes, planes, 1, 1));
  bn1 = register_module("bn1", BatchNorm2d(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, stride));  // v1.5: the stride is here
  bn2 = register_module("bn2", BatchNorm2d(planes));
  conv3 = register_module("conv3", conv(planes, planes * kExpansion, 1, 1));
  bn3 = register_module("bn3", BatchNorm2d(planes * kExpansion));
  if (stride != 1 || in_planes != planes * kExpansion)
    downsample = register_module("downsample", projection(in_planes, planes * kExpansion, stride));
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor h = bn_relu(*bn1, conv1->forward(x));
  h = bn_relu(*bn2, conv2->forward(h));
  return bn_add_shortcut(*bn3, conv3->forward(h), downsample, x);
}

int64_t Bottleneck::macs(int64_t& h, int64_t& w) const {
  int64_t total = shortcut_macs(downsample, h, w);
  total += conv_macs(*conv1, h, w);
  total += conv_macs(*conv2, h, w);
  return total + conv_macs(*conv3, h, w);
}

// ---- ResNet ----
ResNet::ResNet(const ResNetSpec& s, const ResNetOptions& o) : Module("ResNet"), spec(s), options(o) {
  const size_t want_stages = s.cifar ? 3 : 4;
  NABLA_CHECK(s.blocks_per_stage.size() == want_stages, "ResNet: ", s.cifar ? "CIFAR" : "ImageNet",
              " spec needs ", want_stages, " stages, got ", s.blocks_per_stage.size());
  NABLA_CHECK(o.num_classes > 0 && o.in_channels > 0, "ResNet: num_classes ", o.num_classes,
              " and in_channels ", o.in_channels, " must be positive");
  const int64_t base = s.cifar ? 16 : 64;
  conv1 =
      register_module("conv1", s.cifar ? conv(o.in_channels, base, 3, 1) : conv(o.in_channels, base, 7, 2));
  bn1 = register_module("bn1", BatchNorm2d(base));
  const int64_t expansion = s.block == BlockKind::basic ? BasicBlock::kExpansion : Bottleneck::kExpansion;
  int64_t in_planes = base;
  for (size_t i = 0; i < s.blocks_per_stage.size(); ++i) {
    const int64_t planes = base << i;
    auto layer = std::make_shared<Sequential>();
    std::vector<std::shared_ptr<ResidualBlock>> blocks;
    for (int64_t b = 0; b < s.blocks_per_stage[i]; ++b) {
      const int64_t stride = (b == 0 && i > 0) ? 2 : 1;
      std::shared_ptr<ResidualBlock> block;
      if (s.block == BlockKind::basic)
        block = std::make_shared<BasicBlock>(in_planes, planes, stride);
      else
        block = std::make_shared<Bottleneck>(in_planes, planes, stride);
      if (o.zero_init_residual) {
        NoGradGuard ng;
        block->last_bn().weight.zero_();
      }
      layer->add(block);
      blocks.push_back(block);
      in_planes = planes * expansion;
    }
    register_module("layer" + std::to_string(i + 1), layer);
    stages.push_back(std::move(blocks));
  }
  fc = register_module("fc", std::make_shared<Linear>(in_planes, o.num_classes));
}

Tensor ResNet::forward(const Tensor& x) {
  NABLA_CHECK(x.dim() == 4 && x.size(1) == options.in_channels, "ResNet: expected input [N, ",
              options.in_channels, ", H, W], got ", x.shape());
  Tensor h = bn_relu(*bn1, conv1->forward(x));
  if (!spec.cifar) h = max_pool2d(h, {3, 3}, {2, 2}, {1, 1});
  for (auto& stage : stages)
    for (auto& block : stage) h = block->forward(h);
  return fc->forward(adaptive_avg_pool2d(h, {1, 1}).flatten(1));
}

int64_t ResNet::macs(int64_t h, int64_t w) const {
  int64_t total = conv_macs(*conv1, h, w);
  if (!spec.cifar) {  // maxpool 3x3/2 pad 1
    h = (h + 2 - 3) / 2 + 1;
    w = (w + 2 - 3) / 2 + 1;
  }
  for (auto& stage : stages)
    for (auto& block : stage) total += block->macs(h, w);
  return total + fc->weight.size(0) * fc->weight.size(1);
}

// ---- Factory ----
std::shared_ptr<ResNet> resnet18(const ResNetOptions& o) { return make_resnet("resnet18", o); }
std::shared_ptr<ResNet> resnet34(const ResNetOptions& o) { return make_resnet("resnet34", o); }
std::shared_ptr<ResNet> resnet50(const ResNetOptions& o) { return make_resnet("resnet50", o); }
std::shared_ptr<ResNet> resnet101(const ResNetOptions& o) { return make_resnet("resnet101", o); }
std::shared_ptr<ResNet> resnet152(const ResNetOptions& o) { return make_resnet("resnet152", o); }

std::shared_ptr<ResNet> cifar_resnet(int64_t depth, const ResNetOptions& o) {
  NABLA_CHECK(depth >= 8 && (depth - 2) % 6 == 0,
              "cifar_resnet: depth must be 6n + 2 (20, 32, 44, 56, 110), got ", depth);
  const int64_t n = (depth - 2) / 6;
  return std::make_shared<ResNet>(
      ResNetSpec{.block = BlockKind::basic, .blocks_per_stage = {n, n, n}, .cifar = true}, o);
}

const std::vector<std::string>& resnet_names() {
  static const std::vector<std::string> names{"resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                                              "resnet20", "resnet32", "resnet44", "resnet56",  "resnet110"};
  return names;
}

ResNetSpec resnet_spec(const std::string& name) {
  using B = BlockKind;
  if (name == "resnet18") return {B::basic, {2, 2, 2, 2}};
  if (name == "resnet34") return {B::basic, {3, 4, 6, 3}};
  if (name == "resnet50") return {B::bottleneck, {3, 4, 6, 3}};
  if (name == "resnet101") return {B::bottleneck, {3, 4, 23, 3}};
  if (name == "resnet152") return {B::bottleneck, {3, 8, 36, 3}};
  for (int64_t depth : {20, 32, 44, 56, 110}) {
    const int64_t n = (depth - 2) / 6;
    if (name == "resnet" + std::to_string(depth)) return {B::basic, {n, n, n}, true};
  }
  std::string known;
  for (const auto& k : resnet_names()) known += (known.empty() ? "" : ", ") + k;
  fail("make_resnet: unknown model '", name, "' (known: ", known, ")");
}

std::shared_ptr<ResNet> make_resnet(const std::string& name, const ResNetOptions& o) {
  return std::make_shared<ResNet>(resnet_spec(name), o);
}

int64_t resnet_flops(const ResNet& model, int64_t h, int64_t w) {
  NABLA_CHECK(h > 0 && w > 0, "resnet_flops: image size must be positive, got ", h, "x", w);
  return model.macs(h, w);
}

int64_t resnet_flops(const std::string& name, int64_t h, int64_t w, const ResNetOptions& o) {
  return resnet_flops(*make_resnet(name, o), h, w);
}

}  // namespace nabla::models
