// A whole network in channels-last: Module::to(MemoryFormat) converts 4-D parameters in place (same
// handles), and a CIFAR ResNet-20 in channels-last gives the row-major net's outputs, loss, every parameter
// gradient and, after two SGD steps with momentum, the same parameters and running statistics. On the CPU
// here; the CUDA twin (tests/cuda/test_parity_channels_last.cpp) runs it on the GPU in f32 and bf16.
#include "algorithms/optim/optimizer.h"
#include "models/resnet.h"
#include "testing.h"

namespace nabla {
namespace {
using namespace models;
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

TEST(ChannelsLastModel, ToChannelsLastKeepsParameterHandles) {
  auto net = cifar_resnet(20, {.num_classes = 10});
  std::vector<std::pair<std::string, TensorImpl*>> before;
  for (auto& [n, t] : net->state_dict()) before.push_back({n, t.impl()});
  const NamedTensors values = [&] {
    NamedTensors v;
    for (auto& [n, t] : net->state_dict()) v.push_back({n, t.detach().clone()});
    return v;
  }();
  net->to(kCL);
  const NamedTensors after = net->state_dict();
  ASSERT_EQ(after.size(), before.size());
  int converted = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    const Tensor& t = after[i].second;
    EXPECT_EQ(t.impl(), before[i].second) << after[i].first;  // the optimizer's handle still points here
    test::expect_close(t, values[i].second, 0.0);
    if (t.dim() == 4) {
      EXPECT_TRUE(t.is_contiguous(kCL)) << after[i].first;
      converted += t.is_contiguous() ? 0 : 1;
    }
  }
  EXPECT_GE(converted, 19);  // every 3x3 conv (1x1 shortcut weights are both layouts)
  net->to(MemoryFormat::Contiguous);
  for (auto& [n, t] : net->state_dict()) EXPECT_TRUE(t.is_contiguous()) << n;
}

TEST(ChannelsLastModel, CifarResNetForwardBackwardAndStepsEqualRowMajor) {
  auto a = cifar_resnet(20, {.num_classes = 10});
  auto b = cifar_resnet(20, {.num_classes = 10});
  b->load_state_dict(a->state_dict());
  b->to(kCL);
  optim::Sgd opt_a(a->parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4});
  optim::Sgd opt_b(b->parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4});
  for (int step = 0; step < 2; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    Tensor x = test::randn32({3, 3, 8, 8});
    Tensor labels = test::randint64(0, 10, {3});
    Tensor ya = a->forward(x);
    Tensor yb = b->forward(x.contiguous(kCL));
    test::expect_close(yb, ya, 2e-5);
    Tensor la = cross_entropy(ya, labels), lb = cross_entropy(yb, labels);
    EXPECT_NEAR(lb.item(), la.item(), 1e-5);
    opt_a.zero_grad();
    opt_b.zero_grad();
    la.backward();
    lb.backward();
    const NamedTensors pa = a->named_parameters(), pb = b->named_parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
      ASSERT_TRUE(pb[i].second.grad().defined()) << pb[i].first;
      if (pb[i].second.dim() == 4 && !pb[i].second.is_contiguous()) {
        EXPECT_TRUE(pb[i].second.grad().is_contiguous(kCL)) << pb[i].first;
      }
      test::expect_close(pb[i].second.grad(), pa[i].second.grad(), 2e-4);
    }
    opt_a.step();
    opt_b.step();
  }
  const NamedTensors sa = a->state_dict(), sb = b->state_dict();
  for (size_t i = 0; i < sa.size(); ++i) {
    SCOPED_TRACE(sa[i].first);
    test::expect_close(sb[i].second, sa[i].second, 1e-4);
    if (sb[i].second.dim() == 4) {
      EXPECT_TRUE(sb[i].second.is_contiguous(kCL));
    }
  }
}

}  // namespace
}  // namespace nabla
