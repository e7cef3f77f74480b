// The DARTS / B-DARTS search: CLR values, the architecture step's direction, the second-order gradient
// against finite differences of the unrolled objective, the weight step, and a tiny search whose
// validation loss falls.
#include <cmath>

#include "algorithms/nas/architect.h"
#include "algorithms/nas/search.h"
#include "algorithms/optim/optimizer.h"
#include "models/bcnn.h"
#include "testing.h"

namespace nabla {
namespace {
using namespace models;
using namespace models::darts;

// A labelled batch with a learnable signal: class k brightens quadrant k of a noisy 8 x 8 image.
nas::LabeledBatch planted_batch(int64_t n, uint64_t seed, int64_t size = 8) {
  Generator g{seed, 0};
  Tensor x = randn({n, 1, size, size}, {}, &g) * 0.5;
  Tensor y = randint(0, 4, {n}, {.dtype = DType::i64}, &g);
  NoGradGuard ng;
  const int64_t h = size / 2;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = y.select(0, i).item<int64_t>();
    Tensor q = x.select(0, i).select(0, 0).narrow(0, (k / 2) * h, h).narrow(1, (k % 2) * h, h);
    q.copy_(q + 1.5);
  }
  return {x, y};
}

std::shared_ptr<BcnnSearch> tiny_bcnn() {
  return std::make_shared<BcnnSearch>(BcnnOptions{.c = 2, .num_classes = 4, .in_channels = 1});
}

TEST(Clr, ConfidenceGrowsAsAPowerOfTheEpochFraction) {
  EXPECT_DOUBLE_EQ(nas::clr_confidence(0, 50, 2), 1.0 / 2500);
  EXPECT_DOUBLE_EQ(nas::clr_confidence(24, 50, 2), 0.25);
  EXPECT_DOUBLE_EQ(nas::clr_confidence(49, 50, 2), 1.0);
  EXPECT_DOUBLE_EQ(nas::clr_confidence(3, 8, 1), 0.5);
  EXPECT_DOUBLE_EQ(nas::clr_confidence(3, 8, 0), 1.0);  // p = 0: plain DARTS
  test::expect_error([] { nas::clr_confidence(50, 50, 2); }, {"epoch 50", "[0, epochs = 50)"});
  EXPECT_DOUBLE_EQ(nas::cosine_epoch_lr(0.1, 0.0, 0, 50), 0.1);
  EXPECT_NEAR(nas::cosine_epoch_lr(0.1, 0.0, 25, 50), 0.05, 1e-15);
}

TEST(Architect, FirstOrderStepUsesTheClrLearningRateAndOpposesTheGradient) {
  auto net = tiny_bcnn();
  optim::Sgd sgd(net->parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 3e-4});
  nas::Architect arch(*net, sgd, {.lr = 3e-4, .clr = true, .power = 2});
  auto [xv, yv] = planted_batch(8, 11);
  const Tensor w0 = net->parameters()[3].detach().clone();
  const Tensor a0 = net->alphas_normal.detach().clone();
  arch.first_order_grad(xv, yv);
  const Tensor g = net->alphas_normal.grad().detach().clone();
  EXPECT_GT(abs(g).sum().item<double>(), 0.0);
  for (const Tensor& p : net->parameters()) EXPECT_FALSE(p.grad().defined());  // weights frozen
  arch.step(xv, yv, xv, yv, 0.1, nas::clr_confidence(4, 10, 2));
  EXPECT_DOUBLE_EQ(arch.current_lr(), 3e-4 * 0.25);
  Tensor delta = net->alphas_normal.detach() - a0;
  // Adam's first step moves each alpha by about lr against its gradient's sign (decay adds 1e-3 alpha).
  EXPECT_LT((delta * g).sum().item<double>(), 0.0);
  EXPECT_NEAR(amax(abs(delta)).item<double>(), 3e-4 * 0.25, 3e-4 * 0.25 * 0.05);
  test::expect_close(net->parameters()[3], w0, 0);  // the architecture step leaves the weights alone
  nas::Architect plain(*net, sgd, {.lr = 3e-4, .clr = false});
  plain.step(xv, yv, xv, yv, 0.1, 0.01);
  EXPECT_DOUBLE_EQ(plain.current_lr(), 3e-4);
}

// L_val(w - xi grad_w L_train(w, a), a) (no momentum, no weight decay), evaluated without changing w.
double unrolled_objective(BcnnSearch& net, const nas::LabeledBatch& t, const nas::LabeledBatch& v, double xi) {
  const auto w = net.parameters();
  for (auto& p : w) p.zero_grad();
  cross_entropy(net.forward(t.first), t.second).backward();
  std::vector<Tensor> saved;
  {
    NoGradGuard ng;
    for (auto p : w) {
      saved.push_back(p.detach().clone());
      Tensor g = p.grad();
      add_(p, g, -xi);
    }
  }
  double loss;
  {
    NoGradGuard ng;
    loss = cross_entropy(net.forward(v.first), v.second).item<double>();
    for (size_t i = 0; i < w.size(); ++i) {
      Tensor p = w[i];
      p.copy_(saved[i]);
      p.zero_grad();
    }
  }
  return loss;
}

TEST(Architect, SecondOrderGradientMatchesFiniteDifferencesOfTheUnrolledObjective) {
  auto net = tiny_bcnn();
  optim::Sgd sgd(net->parameters(), {.lr = 0.5});
  nas::Architect arch(*net, sgd, {.unrolled = true, .network_momentum = 0, .network_weight_decay = 0});
  {  // larger alphas than 1e-3 N(0, 1), so the architecture matters
    NoGradGuard ng;
    net->alphas_normal.copy_(test::randn32({14, kNumOps}));
    net->alphas_reduce.copy_(test::randn32({14, kNumOps}));
  }
  const auto t = planted_batch(16, 21), v = planted_batch(16, 22);
  const double xi = 0.5;
  arch.second_order_grad(t.first, t.second, v.first, v.second, xi);
  const Tensor g2 = net->alphas_normal.grad().detach().clone();
  arch.first_order_grad(v.first, v.second);
  const Tensor g1 = net->alphas_normal.grad().detach().clone();
  // central differences on the entries with the largest second-order gradient
  double err2 = 0, err1 = 0, scale = 0;
  Tensor flat = abs(g2).flatten();
  for (int pick = 0; pick < 4; ++pick) {
    const int64_t idx = argmax(flat, 0).item<int64_t>();
    {
      NoGradGuard ng;
      flat.select(0, idx).fill_(-1.0);
    }
    const double h = 2e-2;
    Tensor a = net->alphas_normal.flatten();  // a view of the alphas
    const double a0 = a.select(0, idx).item<double>();
    auto at = [&](double value) {
      {
        NoGradGuard ng;
        a.select(0, idx).fill_(value);
      }
      return unrolled_objective(*net, t, v, xi);
    };
    const double fd = (at(a0 + h) - at(a0 - h)) / (2 * h);
    at(a0);
    const double s2 = g2.flatten().select(0, idx).item<double>(), s1 = g1.flatten().select(0, idx).item<double>();
    err2 += std::abs(s2 - fd);
    err1 += std::abs(s1 - fd);
    scale += std::abs(fd);
  }
  EXPECT_LT(err2, 0.1 * scale) << "second order " << err2 << " first order " << err1 << " |fd| " << scale;
  EXPECT_LT(err2, err1);  // the implicit term brings the gradient closer to the unrolled objective's
}

TEST(Search, OneStepUpdatesAlphasAndWeightsAndTheTrainLossFalls) {
  auto net = tiny_bcnn();
  optim::Sgd sgd(net->parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 3e-4});
  nas::Architect arch(*net, sgd, {.lr = 3e-2, .clr = false});
  const auto tb = planted_batch(32, 31), vb = planted_batch(32, 32);
  auto loss_on = [&](const nas::LabeledBatch& b) {
    NoGradGuard ng;
    return cross_entropy(net->forward(b.first), b.second).item<double>();
  };
  const double before = loss_on(tb), val_before = loss_on(vb);
  const Tensor a0 = net->alphas_reduce.detach().clone(), w0 = net->classifier->weight.detach().clone();
  int calls = 0;
  nas::BatchSource train = [&]() -> std::optional<nas::LabeledBatch> {
    if (calls++ > 0) return std::nullopt;
    return tb;
  };
  nas::BatchSource val = [&]() -> std::optional<nas::LabeledBatch> { return vb; };
  auto stats = nas::search_epoch(*net, arch, sgd, train, val, 0.05, 1.0, 5.0);
  EXPECT_EQ(stats.steps, 1);
  EXPECT_GT(abs(net->alphas_reduce.detach() - a0).sum().item<double>(), 0.0);
  EXPECT_GT(abs(net->classifier->weight.detach() - w0).sum().item<double>(), 0.0);
  EXPECT_LT(loss_on(tb), before);
  EXPECT_NEAR(stats.arch_loss, val_before, 0.05);
}

TEST(Search, TinyBcnnSearchLowersTheValidationLoss) {
  manual_seed(5);
  auto net = tiny_bcnn();
  optim::Sgd sgd(net->parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 3e-4});
  nas::Architect arch(*net, sgd, {.lr = 3e-3});
  std::vector<nas::LabeledBatch> train_batches, val_batches;
  for (int i = 0; i < 4; ++i) train_batches.push_back(planted_batch(32, 100 + i));
  for (int i = 0; i < 4; ++i) val_batches.push_back(planted_batch(32, 200 + i));
  auto source = [](const std::vector<nas::LabeledBatch>& v, size_t& i, bool cycle) {
    return [&v, &i, cycle]() -> std::optional<nas::LabeledBatch> {
      if (i == v.size()) {
        if (!cycle) return std::nullopt;
        i = 0;
      }
      return v[i++];
    };
  };
  size_t vi = 0, ei = 0;
  const auto val0 = nas::evaluate_search(*net, source(val_batches, ei, false));
  const int64_t epochs = 4;
  for (int64_t e = 0; e < epochs; ++e) {
    size_t ti = 0;
    nas::search_epoch(*net, arch, sgd, source(train_batches, ti, false), source(val_batches, vi, true),
                      nas::cosine_epoch_lr(0.05, 0, e, epochs), nas::clr_confidence(e, epochs, 2), 5.0);
  }
  ei = 0;
  const auto val1 = nas::evaluate_search(*net, source(val_batches, ei, false));
  EXPECT_LT(val1.loss, val0.loss * 0.8) << val0.loss << " -> " << val1.loss;
  EXPECT_GT(val1.acc, 0.4);
  Genotype g = net->genotype();
  EXPECT_EQ(g.normal.size(), 8u);
  EXPECT_NO_THROW(g.validate());
}

}  // namespace
}  // namespace nabla
