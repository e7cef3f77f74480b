// CUDA graphs (cuda/graph.h): a replay computes what the eager code computes, reads inputs written in
// place, keeps its memory apart from eager tensors, and a capture refuses work it cannot replay with an
// error that leaves the engine usable. Plain tests that skip without a GPU.
#include "algorithms/optim/optimizer.h"
#include "cuda/graph.h"
#include "models/resnet.h"
#include "parity.h"

namespace nabla {
namespace {

#define REQUIRE_GPU() \
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device"

const Device kGpu = Device::cuda(0);

double max_abs_diff(const Tensor& a, const Tensor& b) {
  return amax(abs(a.to(Device::cpu()).to(DType::f64) - b.to(Device::cpu()).to(DType::f64))).item();
}

// TF32 off for the test's lifetime, so that f32 results can be compared tightly with the CPU.
struct NoTf32 {
  bool was = cuda::tf32_enabled();
  NoTf32() { cuda::set_tf32_enabled(false); }
  ~NoTf32() { cuda::set_tf32_enabled(was); }
};

TEST(CudaGraph, ReplayReadsNewDataWrittenIntoTheCapturedInput) {
  REQUIRE_GPU();
  NoTf32 no_tf32;
  const Tensor w = test::randn32({32, 16}), b = test::randn32({16});
  const Tensor dw = w.to(kGpu), db = b.to(kGpu);
  Tensor x = test::randn32({64, 32}).to(kGpu);  // the graph's static input
  Tensor out;
  cuda::Graph graph;
  graph.capture([&] { out = relu(matmul(x, dw) + db) * 2.0; });
  ASSERT_TRUE(graph.captured());
  EXPECT_GE(graph.num_nodes(), 3u);
  for (int i = 0; i < 3; ++i) {
    const Tensor fresh = test::randn32({64, 32});
    x.copy_(fresh.to(kGpu));  // new data, same memory
    graph.replay();
    const Tensor want = relu(matmul(fresh, w) + b) * 2.0;
    EXPECT_LT(max_abs_diff(out, want), 1e-4) << "replay " << i;
  }
}

TEST(CudaGraph, ReplayedTrainingStepsMatchEagerSteps) {
  REQUIRE_GPU();
  NoTf32 no_tf32;
  const Tensor x = test::randn32({8, 3, 16, 16}).to(kGpu);
  const Tensor y = test::randint64(0, 10, {8}).to(kGpu);
  auto make = [&] {
    manual_seed(20261128);
    auto m = models::make_resnet("resnet20", {.num_classes = 10});
    m->to(kGpu);
    return m;
  };
  auto eager = make(), graphed = make();
  const optim::SgdOptions so{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4};
  optim::Sgd opt_eager(eager->parameters(), so), opt_graphed(graphed->parameters(), so);
  auto step = [&](models::ResNet& m, optim::Sgd& opt) {
    opt.zero_grad();
    Tensor loss = cross_entropy(m.forward(x), y);
    loss.backward();
    opt.step();
    return loss;
  };
  std::vector<double> eager_losses;
  for (int i = 0; i < 6; ++i) eager_losses.push_back(step(*eager, opt_eager).item());
  EXPECT_LT(eager_losses.back(), eager_losses.front()) << "the eager run must learn the batch";

  // One eager step (momentum buffers, cuDNN's algorithm choice), then the captured step replayed 5 times.
  EXPECT_NEAR(step(*graphed, opt_graphed).item(), eager_losses[0], 1e-6);
  Tensor loss;
  cuda::Graph graph;
  graph.capture([&] { loss = step(*graphed, opt_graphed); });
  EXPECT_GT(graph.num_nodes(), 100u) << "a ResNet-20 step is hundreds of kernels";
  for (int i = 1; i < 6; ++i) {
    graph.replay();
    EXPECT_NEAR(loss.item(), eager_losses[i], 1e-5 * (1 + std::abs(eager_losses[i]))) << "replay " << i;
  }
  const auto pe = eager->named_parameters(), pg = graphed->named_parameters();
  ASSERT_EQ(pe.size(), pg.size());
  for (size_t i = 0; i < pe.size(); ++i)
    EXPECT_LT(max_abs_diff(pe[i].second, pg[i].second), 1e-5) << pe[i].first;
  // The batch-norm running statistics (buffers updated inside the kernels) follow the same steps.
  const Tensor rm_e = eager->named_buffers()[0].second;  // copies: named_buffers() returns a temporary
  const Tensor rm_g = graphed->named_buffers()[0].second;
  EXPECT_LT(max_abs_diff(rm_e, rm_g), 1e-5);
}

TEST(CudaGraph, EagerTensorsMadeAfterTheCaptureAreNotOverwrittenByReplays) {
  REQUIRE_GPU();
  const int64_t n = 1 << 16;
  const Tensor a = test::randn32({n}).to(kGpu);
  // A block of the shared cache that the captured code writes and then frees (as zero_grad drops last
  // step's gradients): the graph's kernels still write it on every replay, so it must not go back to the
  // shared cache. Temporaries made and freed inside the capture must not either.
  Tensor scratch = a.clone();
  Tensor out;
  cuda::Graph graph;
  graph.capture([&] {
    mul_(scratch, 2.0);
    Tensor t = scratch + 1.0;
    out = t * t;
    scratch = Tensor();
  });
  std::vector<Tensor> keep;
  for (int i = 0; i < 8; ++i) keep.push_back(full({n}, 7.0 + i, {.device = kGpu}));
  for (int r = 0; r < 3; ++r) graph.replay();
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(amax(abs(keep[i] - (7.0 + i))).item(), 0.0) << "eager tensor " << i << " was overwritten";
}

TEST(CudaGraph, RefusesWorkItCannotReplayAndStaysUsable) {
  REQUIRE_GPU();
  const Tensor a = test::randn32({256}).to(kGpu);
  const Tensor host = test::randn32({4});
  cuda::Graph graph;
  test::expect_error([&] { graph.replay(); }, {"replay() before capture()"});
  test::expect_error([&] { graph.capture([&] { (void)sum(a * 2.0).item(); }); },
                     {"inside a CUDA graph capture"});
  EXPECT_FALSE(graph.captured());
  test::expect_error([&] { graph.capture([&] { (void)randn({4}, {.device = kGpu}); }); },
                     {"randn", "random numbers inside a CUDA graph capture"});
  test::expect_error([&] { graph.capture([&] { (void)(host + 1.0); }); },
                     {"CPU kernel inside a CUDA graph capture"});
  test::expect_error([&] { graph.capture([&] { (void)host.to(kGpu); }); },
                     {"copy from cpu to cuda:0", "inside a CUDA graph capture"});
  test::expect_error([&] { graph.capture([&] { cuda::synchronize(); }); }, {"cuda::synchronize()"});
  test::expect_error(
      [&] {
        graph.capture([&] {
          cuda::Graph inner;
          inner.capture([] {});
        });
      },
      {"captures do not nest"});

  // Optimizers: SGD's first step and Adam's bias correction cannot be replayed.
  Tensor p = test::randn32({16}).to(kGpu);
  p.requires_grad_(true);
  auto set_grad = [&] { p.set_grad(full({16}, 0.5, {.device = kGpu})); };
  optim::Sgd sgd({p}, {.lr = 0.1, .momentum = 0.9});
  set_grad();
  test::expect_error([&] { graph.capture([&] { sgd.step(); }); }, {"SGD", "take one eager step"});
  optim::Adam adam({p}, {.lr = 0.1});
  set_grad();
  adam.step();
  test::expect_error([&] { graph.capture([&] { adam.step(); }); }, {"Adam", "bias correction"});
  EXPECT_FALSE(graph.captured());

  // The engine and the Graph still work: eager ops, then a capture and its replay.
  EXPECT_NEAR(sum(a * 2.0).item(), 2.0 * sum(a).item(), 1e-3);
  Tensor out;
  graph.capture([&] { out = a * 3.0 + 1.0; });
  graph.replay();
  EXPECT_LT(max_abs_diff(out, a.to(Device::cpu()) * 3.0 + 1.0), 1e-5);
  test::expect_error([&] { graph.capture([] {}); }, {"already holds a capture"});
  graph.reset();
  EXPECT_FALSE(graph.captured());
  graph.capture([&] { out = a - 1.0; });
  graph.replay();
  EXPECT_LT(max_abs_diff(out, a.to(Device::cpu()) - 1.0), 1e-6);
}

}  // namespace
}  // namespace nabla
