// DataParallel against one process: W ranks, each with B/W rows of every global batch, must end with the
// parameters of a single process that trains on the whole batch B (up to f32 rounding: the averaged
// gradient sums in another order). Each rank computes the single-process reference itself.
//
// The model is an MLP without BatchNorm on purpose: BatchNorm normalises with the statistics of the local
// batch (B/W rows), so data-parallel and single-process runs differ by design (that would need
// SyncBatchNorm). The run mixes plain steps, a step of two micro-batches accumulated under no_sync, a bucket
// cap small enough to give several buckets, and SGD with momentum and weight decay, then AdamW.
#include <gtest/gtest.h>

#include "algorithms/optim/optimizer.h"
#include "dist/data_parallel.h"
#include "dist/dist_test.h"
#include "models/nn/layers.h"
#include "nabla.h"
#ifdef NABLA_HAS_CUDA
#include "cuda/runtime.h"
#endif

namespace nabla {
namespace {
using dist_test::comm;

// Full f32 matmuls on the GPU, so that both runs round alike (TF32 would leave ~1e-3 differences).
void cuda_tf32_off_for_test() {
#ifdef NABLA_HAS_CUDA
  cuda::set_tf32_enabled(false);
#endif
}

constexpr int64_t kIn = 12, kClasses = 5, kBatch = 16;  // kBatch: a multiple of 1, 2 and 4 ranks

std::shared_ptr<nn::Sequential> make_mlp(Device dev) {
  manual_seed(42);  // the same initial weights on every rank (DataParallel broadcasts rank 0's anyway)
  auto m = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(kIn, 32), nn::Tanh(), std::make_shared<nn::Linear>(32, 24), nn::ReLU(),
      std::make_shared<nn::Linear>(24, kClasses)});
  m->to(dev);
  return m;
}

struct Batch {
  Tensor x, y;
};
Batch global_batch(int64_t step, int64_t micro, Device dev) {
  Generator g{static_cast<uint64_t>(7777 + step * 31 + micro), 0};
  return {randn({kBatch, kIn}, {}, &g).to(dev),
          randint(0, kClasses, {kBatch}, {.dtype = DType::i64}, &g).to(dev)};
}

std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& kind, nn::Module& m) {
  if (kind == "sgd")
    return std::make_unique<optim::Sgd>(m.parameters(),
                                        optim::SgdOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3});
  return std::make_unique<optim::AdamW>(m.parameters(),
                                        optim::AdamWOptions{.lr = 3e-3, .weight_decay = 1e-2});
}

// Steps 0, 1, 3: one batch; step 2: two micro-batches (gradient accumulation, each loss halved).
constexpr int64_t kSteps = 4, kAccumulateStep = 2;

void train_reference(nn::Module& m, optim::Optimizer& opt, Device dev) {
  for (int64_t s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    const int64_t micros = s == kAccumulateStep ? 2 : 1;
    for (int64_t k = 0; k < micros; ++k) {
      Batch b = global_batch(s, k, dev);
      Tensor loss = cross_entropy(m.forward(b.x), b.y) * scalar_like(1.0 / micros, b.x);
      loss.backward();
    }
    opt.step();
  }
}

void train_data_parallel(dist::DataParallel& dp, optim::Optimizer& opt, Device dev) {
  const int64_t w = comm().world_size(), local = kBatch / w, r = comm().rank();
  for (int64_t s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    const int64_t micros = s == kAccumulateStep ? 2 : 1;
    for (int64_t k = 0; k < micros; ++k) {
      Batch b = global_batch(s, k, dev);
      Tensor x = b.x.narrow(0, r * local, local), y = b.y.narrow(0, r * local, local);
      Tensor loss = cross_entropy(dp.module().forward(x), y) * scalar_like(1.0 / micros, x);
      if (k + 1 < micros) {
        auto guard = dp.no_sync();
        loss.backward();
      } else {
        loss.backward();
      }
    }
    dp.finish();
    opt.step();
  }
}

void check_equivalence(Device dev, const std::string& optimizer) {
  auto ref = make_mlp(dev);
  auto ref_opt = make_optimizer(optimizer, *ref);
  train_reference(*ref, *ref_opt, dev);

  auto model = make_mlp(dev);
  // 512 bytes: the six tensors (biases and weights of 5x24, 24x32, 32x12) fall into three buckets.
  dist::DataParallel dp(*model, std::shared_ptr<dist::Communicator>(&comm(), [](dist::Communicator*) {}),
                        {.bucket_cap_mb = 0.5 / 1024});
  EXPECT_GE(dp.num_buckets(), 3);
  auto opt = make_optimizer(optimizer, *model);
  train_data_parallel(dp, *opt, dev);

  auto want = ref->named_parameters(), got = model->named_parameters();
  ASSERT_EQ(want.size(), got.size());
  double moved = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    auto a = want[i].second.to_vector<double>(), b = got[i].second.to_vector<double>();
    for (size_t j = 0; j < a.size(); ++j)
      ASSERT_NEAR(a[j], b[j], 2e-5) << optimizer << ": " << want[i].first << "[" << j << "] on rank "
                                    << comm().rank() << " of " << comm().world_size() << " (" << dev << ")";
  }
  // Training really moved the weights (so the comparison is not between two untouched copies).
  auto init = make_mlp(dev)->named_parameters();
  for (size_t i = 0; i < want.size(); ++i) {
    auto a = init[i].second.to_vector<double>(), b = got[i].second.to_vector<double>();
    for (size_t j = 0; j < a.size(); ++j) moved = std::max(moved, std::abs(a[j] - b[j]));
  }
  EXPECT_GT(moved, 1e-3);
}

TEST(DataParallel, MatchesOneProcessWithTheGlobalBatchSgdMomentumCpu) {
  SKIP_WITHOUT_CPU_COLLECTIVES();
  check_equivalence(Device::cpu(), "sgd");
}
TEST(DataParallel, MatchesOneProcessWithTheGlobalBatchAdamWCpu) {
  SKIP_WITHOUT_CPU_COLLECTIVES();
  check_equivalence(Device::cpu(), "adamw");
}
TEST(DataParallel, MatchesOneProcessWithTheGlobalBatchSgdMomentumCuda) {
  SKIP_WITHOUT_GPU_COLLECTIVES();
  cuda_tf32_off_for_test();
  check_equivalence(dist_test::gpu(), "sgd");
}
TEST(DataParallel, MatchesOneProcessWithTheGlobalBatchAdamWCuda) {
  SKIP_WITHOUT_GPU_COLLECTIVES();
  cuda_tf32_off_for_test();
  check_equivalence(dist_test::gpu(), "adamw");
}

// A parameter that only rank 0 uses (data-dependent control flow) must not deadlock the others, and its
// gradient after finish() is rank 0's divided by W; a parameter no rank uses ends with a zero gradient.
void check_unused_parameters(Device dev) {
  manual_seed(5);
  auto used = std::make_shared<nn::Linear>(kIn, kClasses);
  auto sometimes = std::make_shared<nn::Linear>(kIn, 1);
  auto never = std::make_shared<nn::Linear>(kIn, 3);
  nn::Sequential holder;
  holder.add(used).add(sometimes).add(never);
  holder.to(dev);
  dist::DataParallel dp(holder, std::shared_ptr<dist::Communicator>(&comm(), [](dist::Communicator*) {}),
                        {.bucket_cap_mb = 1e-4});
  Batch b = global_batch(0, 0, dev);
  Tensor loss = cross_entropy(used->forward(b.x), b.y);
  if (comm().rank() == 0) loss = loss + sometimes->forward(b.x).sum();
  loss.backward();
  dp.finish();
  // Rank 0's gradient of sum(x W^T + b) wrt W is the column sums of x: sum_i x_i.
  Tensor want = sum(b.x, {0}).reshape({1, kIn}).to(Device::cpu()) *
                scalar_like(1.0 / comm().world_size(), b.x.to(Device::cpu()));
  auto g = sometimes->weight.grad().to_vector<double>(), e = want.to_vector<double>();
  for (size_t j = 0; j < g.size(); ++j) ASSERT_NEAR(g[j], e[j], 1e-5) << j;
  ASSERT_TRUE(never->weight.grad().defined());
  for (double v : never->weight.grad().to_vector<double>()) ASSERT_EQ(v, 0.0);
}

TEST(DataParallel, ParametersWithoutGradientOnSomeRanksDoNotDeadlockCpu) {
  SKIP_WITHOUT_CPU_COLLECTIVES();
  check_unused_parameters(Device::cpu());
}
TEST(DataParallel, ParametersWithoutGradientOnSomeRanksDoNotDeadlockCuda) {
  SKIP_WITHOUT_GPU_COLLECTIVES();
  check_unused_parameters(dist_test::gpu());
}

TEST(DataParallel, FinishInsideNoSyncIsAnError) {
  SKIP_WITHOUT_CPU_COLLECTIVES();
  auto m = make_mlp(Device::cpu());
  dist::DataParallel dp(*m, std::shared_ptr<dist::Communicator>(&comm(), [](dist::Communicator*) {}));
  auto guard = dp.no_sync();
  EXPECT_THROW(dp.finish(), Error);
}

}  // namespace
}  // namespace nabla
