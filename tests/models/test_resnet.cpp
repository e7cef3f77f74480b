#include <cmath>

#include "algorithms/optim/optimizer.h"
#include "models/resnet.h"
#include "testing.h"

namespace nabla {
namespace {
using namespace models;

bool has_name(const nn::Module& m, const std::string& name) {
  for (auto& [n, t] : m.state_dict())
    if (n == name) return true;
  return false;
}

TEST(ResNet, ImageNetParameterCountsEqualTorchvision) {
  EXPECT_EQ(resnet18()->num_parameters(), 11689512);
  EXPECT_EQ(resnet34()->num_parameters(), 21797672);
  EXPECT_EQ(resnet50()->num_parameters(), 25557032);
}

TEST(ResNet, DeepBottleneckParameterCountsEqualTorchvision) {
  EXPECT_EQ(resnet101()->num_parameters(), 44549160);
  EXPECT_EQ(resnet152()->num_parameters(), 60192808);
}

// Option B adds two conv1x1 + BN projections to option A's 269,722: 16*32 + 2*32 + 32*64 + 2*64 = 2,752.
TEST(ResNet, CifarParameterCountsWithProjectionShortcuts) {
  EXPECT_EQ(cifar_resnet(20, {.num_classes = 10})->num_parameters(), 269722 + 2752);
  EXPECT_EQ(make_resnet("resnet56", {.num_classes = 10})->num_parameters(), 853018 + 2752);
  EXPECT_EQ(make_resnet("resnet110", {.num_classes = 10})->num_parameters(), 1727962 + 2752);
}

TEST(ResNet, StateDictNamesFollowTorchvision) {
  auto r18 = resnet18(), r50 = resnet50();
  EXPECT_TRUE(has_name(*r18, "layer2.0.downsample.0.weight"));
  EXPECT_TRUE(has_name(*r18, "layer2.0.downsample.1.running_var"));
  EXPECT_FALSE(has_name(*r18, "layer1.0.downsample.0.weight"));  // 64 -> 64, stride 1: identity
  EXPECT_TRUE(has_name(*r50, "layer1.0.downsample.0.weight"));   // 64 -> 256: projection
  EXPECT_TRUE(has_name(*r50, "layer4.2.bn3.weight"));
  EXPECT_TRUE(has_name(*r50, "fc.bias"));
  EXPECT_FALSE(has_name(*r50, "conv1.bias"));
  // v1.5: the stride is on the 3x3 conv of the first bottleneck of layers 2-4, not on the 1x1.
  auto& b = static_cast<Bottleneck&>(*r50->stages[1][0]);
  EXPECT_EQ(b.conv1->options.stride, (Pair{1, 1}));
  EXPECT_EQ(b.conv2->options.stride, (Pair{2, 2}));
}

TEST(ResNet, FlopsAreTorchvisionMacs) {
  const double r18 = static_cast<double>(resnet_flops("resnet18", 224, 224));
  const double r50 = static_cast<double>(resnet_flops("resnet50", 224, 224));
  EXPECT_NEAR(r18 / 1.82e9, 1.0, 0.02) << r18;
  EXPECT_NEAR(r50 / 4.11e9, 1.0, 0.02) << r50;
  // ResNet-20 by hand: stem 3*16*9*32^2 + stage 1 6*16*16*9*32^2 + stages 2, 3 (16*32*9 + 5*32*32*9 +
  // 16*32)*16^2 and (32*64*9 + 5*64*64*9 + 32*64)*8^2 + fc 64*10.
  EXPECT_EQ(resnet_flops("resnet20", 32, 32, {.num_classes = 10}), 40813184);
  auto model = cifar_resnet(20, {.num_classes = 10});
  EXPECT_EQ(resnet_flops(*model, 32, 32), 40813184);
}

TEST(ResNet, ForwardShapes) {
  auto r18 = resnet18();
  EXPECT_EQ(r18->forward(test::randn32({2, 3, 64, 64})).shape(), (Shape{2, 1000}));
  auto r20 = make_resnet("resnet20", {.num_classes = 10, .in_channels = 1});
  EXPECT_EQ(r20->forward(test::randn32({2, 1, 32, 32})).shape(), (Shape{2, 10}));
  test::expect_error([&] { r20->forward(test::randn32({2, 3, 32, 32})); }, {"ResNet", "[N, 1, H, W]"});
}

TEST(ResNet, BackwardReachesEveryParameter) {
  // A one-block-per-stage bottleneck net covers the Bottleneck path cheaply; ResNet-20 the BasicBlock path.
  auto bottleneck = std::make_shared<ResNet>(ResNetSpec{BlockKind::bottleneck, {1, 1, 1, 1}},
                                             ResNetOptions{.num_classes = 5});
  auto basic = cifar_resnet(20, {.num_classes = 10});
  for (auto& [net, classes, size] : {std::tuple{std::static_pointer_cast<nn::Module>(bottleneck), 5, 64},
                                     std::tuple{std::static_pointer_cast<nn::Module>(basic), 10, 16}}) {
    Tensor y = net->forward(test::randn32({4, 3, size, size}));
    ASSERT_EQ(y.shape(), (Shape{4, classes}));
    cross_entropy(y, test::randint64(0, classes, {4})).backward();
    for (auto& [n, p] : net->named_parameters()) {
      ASSERT_TRUE(p.grad().defined()) << n;
      EXPECT_GT(amax(abs(p.grad())).item(), 0.0) << n;
    }
  }
}

TEST(ResNet, ZeroInitResidualZeroesTheLastGammaOfEachBlock) {
  auto net = make_resnet("resnet50", {.zero_init_residual = true});
  int zeroed = 0;
  for (auto& [n, p] : net->named_parameters()) {
    const bool last_gamma = n.ends_with(".bn3.weight");
    const double m = amax(abs(p)).item();
    if (last_gamma) {
      ++zeroed;
      EXPECT_EQ(m, 0.0) << n;
    } else if (n.ends_with("bn1.weight") || n.ends_with("bn2.weight")) {
      EXPECT_EQ(m, 1.0) << n;
    }
  }
  EXPECT_EQ(zeroed, 3 + 4 + 6 + 3);
  auto r20 = cifar_resnet(20, {.num_classes = 10, .zero_init_residual = true});
  for (auto& stage : r20->stages)
    for (auto& block : stage) EXPECT_EQ(amax(abs(block->last_bn().weight)).item(), 0.0);
  // Every block is then the identity before its ReLU: the output still depends on the input.
  Tensor y = r20->forward(test::randn32({2, 3, 32, 32}));
  EXPECT_EQ(y.shape(), (Shape{2, 10}));
}

TEST(ResNet, ConvsAreKaimingNormalFanOut) {
  auto net = resnet18();
  const Tensor w = net->stages[3][1]->named_parameters()[0].second;  // layer4.1.conv1 [512, 512, 3, 3]
  ASSERT_EQ(w.shape(), (Shape{512, 512, 3, 3}));
  const double want = std::sqrt(2.0 / (512 * 9));
  const double std_dev = std::sqrt(mean(w * w).item());
  EXPECT_NEAR(std_dev / want, 1.0, 0.02) << std_dev;
  EXPECT_LT(std::abs(mean(w).item()), want * 0.01);
}

TEST(ResNet, MakeResnetListsKnownNames) {
  test::expect_error([] { make_resnet("resnet19"); },
                     {"resnet19", "resnet18", "resnet152", "resnet20", "resnet110"});
  test::expect_error([] { cifar_resnet(21); }, {"6n + 2", "21"});
}

TEST(ResNet, Resnet20LossHalvesOnASmallFixedBatch) {
  manual_seed(5);
  auto net = cifar_resnet(20, {.num_classes = 10});
  Tensor x = test::randn32({8, 3, 32, 32});
  Tensor t = test::randint64(0, 10, {8});
  optim::Adam opt(net->parameters(), {.lr = 2e-3});
  double first = 0, last = 0;
  for (int step = 0; step < 15; ++step) {
    Tensor loss = cross_entropy(net->forward(x), t);
    opt.zero_grad();
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  EXPECT_LT(last, first * 0.5) << "first " << first << " last " << last;
}

// ---- fusion (batch_norm_add_relu in the blocks, NABLA_RESNET_FUSED) ----

// Restores the process-wide switch.
struct FusedSwitch {
  bool saved = resnet_fused();
  ~FusedSwitch() { set_resnet_fused(saved); }
};

// A module's output, every parameter gradient and every buffer after one forward + backward on x with the
// cotangent g; the buffers (running statistics) are put back afterwards, so the next run starts the same.
std::vector<Tensor> run_module(nn::Module& m, const Tensor& x, const Tensor& g, bool fused) {
  set_resnet_fused(fused);
  std::vector<Tensor> saved;
  for (auto& [n, b] : m.named_buffers()) saved.push_back(b.clone());
  for (auto& p : m.parameters()) p.zero_grad();
  Tensor y = m.forward(x);
  y.backward(g);
  std::vector<Tensor> out{y.detach()};
  for (auto& p : m.parameters()) out.push_back(p.grad());
  size_t i = 0;
  for (auto& [n, b] : m.named_buffers()) {
    out.push_back(b.clone());
    NoGradGuard ng;
    b.copy_(saved[i++]);
  }
  return out;
}

// |a - b| <= tol (1 + |b|) everywhere.
void expect_near_rel(const Tensor& a, const Tensor& b, double tol, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  const std::vector<double> u = a.to_double_vector(), v = b.to_double_vector();
  int bad = 0;
  for (size_t k = 0; k < u.size(); ++k) bad += !(std::abs(u[k] - v[k]) <= tol * (1 + std::abs(v[k])));
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << u.size() << " elements differ";
}

void expect_fused_same_as_unfused(nn::Module& m, const Shape& xshape, bool training) {
  FusedSwitch keep;
  m.train(training);
  Tensor x = test::randn32(xshape);
  const Tensor probe = m.forward(x);  // the output's shape (and, in training, one step of the statistics)
  Tensor g = test::randn32(probe.shape());
  const std::vector<Tensor> f = run_module(m, x, g, true), u = run_module(m, x, g, false);
  ASSERT_EQ(f.size(), u.size());
  // Not vacuous: some outputs are cut by the ReLU, some kept.
  const double kept = mean(gt(f[0], scalar_like(0.0, f[0])).to(DType::f32)).item();
  EXPECT_GT(kept, 0.05);
  EXPECT_LT(kept, 0.95);
  for (size_t i = 0; i < f.size(); ++i) expect_near_rel(f[i], u[i], 1e-5, "tensor " + std::to_string(i));
}

TEST(ResNetFused, BasicBlockWithProjectionMatchesUnfused) {
  BasicBlock block(8, 16, 2);
  expect_fused_same_as_unfused(block, {4, 8, 10, 10}, true);
  expect_fused_same_as_unfused(block, {4, 8, 10, 10}, false);
}

TEST(ResNetFused, BottleneckIdentityAndProjectionMatchUnfused) {
  Bottleneck identity(16, 4, 1), projection(8, 4, 2);
  expect_fused_same_as_unfused(identity, {3, 16, 9, 9}, true);
  expect_fused_same_as_unfused(projection, {3, 8, 9, 9}, true);
  expect_fused_same_as_unfused(projection, {3, 8, 9, 9}, false);
}

TEST(ResNetFused, ChannelsLastBottleneckMatchesUnfused) {
  Bottleneck block(32, 8, 1);
  block.to(MemoryFormat::ChannelsLast);
  FusedSwitch keep;
  Tensor x = test::randn32({2, 32, 6, 6}).contiguous(MemoryFormat::ChannelsLast);
  Tensor g = test::randn32({2, 32, 6, 6});
  const std::vector<Tensor> f = run_module(block, x, g, true), u = run_module(block, x, g, false);
  EXPECT_TRUE(f[0].is_contiguous(MemoryFormat::ChannelsLast));
  for (size_t i = 0; i < f.size(); ++i) expect_near_rel(f[i], u[i], 1e-5, "tensor " + std::to_string(i));
}

TEST(ResNetFused, Resnet20LossAndGradientsMatchUnfused) {
  FusedSwitch keep;
  auto net = cifar_resnet(20, {.num_classes = 10, .in_channels = 1});
  Tensor x = test::randn32({4, 1, 16, 16});
  Tensor target = test::randint64(0, 10, {4});
  std::vector<std::vector<Tensor>> runs;
  for (bool fused : {true, false}) {
    set_resnet_fused(fused);
    for (auto& p : net->parameters()) p.zero_grad();
    Tensor loss = cross_entropy(net->forward(x), target);
    loss.backward();
    std::vector<Tensor> r{loss.detach()};
    for (auto& p : net->parameters()) r.push_back(p.grad());
    runs.push_back(r);
  }
  for (size_t i = 0; i < runs[0].size(); ++i)
    expect_near_rel(runs[0][i], runs[1][i], 1e-4, std::to_string(i));
}

TEST(ResNetFused, SetResnetFusedOverridesTheEnvironment) {
  FusedSwitch keep;
  set_resnet_fused(false);
  EXPECT_FALSE(resnet_fused());
  set_resnet_fused(true);
  EXPECT_TRUE(resnet_fused());
}

}  // namespace
}  // namespace nabla
