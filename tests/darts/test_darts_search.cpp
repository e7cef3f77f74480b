// The DARTS / B-DARTS search: CLR values, the architecture step's direction, the second-order gradient
// against finite differences of the unrolled objective, the weight step, and a tiny search whose
// validation loss falls.
#include <cmath>
#include <tuple>

#include "algorithms/nas/architect.h"
#include "algorithms/nas/search.h"
#include "algorithms/optim/clip.h"
#include "algorithms/optim/optimizer.h"
#include "engine/device_runtime.h"
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

// A smooth f64 stand-in for a supernet, so that finite differences are exact to ~1e-8: logits =
// sum_k softmax(a_0)_k tanh(x W_k) + sum_k softmax(a_1)_k (x V_k), with a_0, a_1 rows of the two alpha
// matrices. (The real supernets' ReLU and BatchNorm over tiny batches make the unrolled objective too rough
// for central differences at f32; the architect only sees forward() and the tensors, so this checks its
// mathematics.)
class SmoothNet : public SearchNetwork {
 public:
  SmoothNet() : SearchNetwork("SmoothNet") {
    W = register_parameter("W", test::randn64({kNumOps, 5, 3}, false));
    V = register_parameter("V", test::randn64({kNumOps, 5, 3}, false) * 0.3);
    alphas_normal = register_buffer("alphas_normal", test::randn64({14, kNumOps}));
    alphas_reduce = register_buffer("alphas_reduce", test::randn64({14, kNumOps}));
  }
  Tensor forward(const Tensor& x) override {
    Tensor a = softmax(alphas_normal.select(0, 0), 0), b = softmax(alphas_reduce.select(0, 3), 0);
    Tensor out;
    for (int k = 0; k < kNumOps; ++k) {
      Tensor t =
          tanh(matmul(x, W.select(0, k))) * a.select(0, k) + matmul(x, V.select(0, k)) * b.select(0, k);
      out = out.defined() ? out + t : t;
    }
    return out;
  }
  Tensor W, V;
};

// L_val(w - xi (grad_w L_train(w, a) + m + lambda w), a), evaluated without changing w.
double unrolled_objective(SearchNetwork& net, const nas::LabeledBatch& t, const nas::LabeledBatch& v,
                          double xi, double lambda) {
  const auto w = net.parameters();
  for (auto& p : w) p.zero_grad();
  cross_entropy(net.forward(t.first), t.second).backward();
  std::vector<Tensor> saved;
  NoGradGuard ng;
  for (auto p : w) {
    saved.push_back(p.detach().clone());
    Tensor g = p.grad() + p.detach() * lambda;
    add_(p, g, -xi);
  }
  const double loss = cross_entropy(net.forward(v.first), v.second).item<double>();
  for (size_t i = 0; i < w.size(); ++i) {
    Tensor p = w[i];
    p.copy_(saved[i]);
    p.zero_grad();
  }
  return loss;
}

TEST(Architect, SecondOrderGradientMatchesFiniteDifferencesOfTheUnrolledObjective) {
  SmoothNet net;
  optim::Sgd sgd(net.parameters(), {.lr = 0.3});
  const double xi = 0.3, lambda = 3e-4;
  nas::Architect arch(net, sgd, {.unrolled = true, .network_momentum = 0.9, .network_weight_decay = lambda});
  auto batch = [](uint64_t seed) {
    Generator g{seed, 0};
    return nas::LabeledBatch{randn({12, 5}, {.dtype = DType::f64}, &g),
                             randint(0, 3, {12}, {.dtype = DType::i64}, &g)};
  };
  const auto t = batch(21), v = batch(22);
  arch.second_order_grad(t.first, t.second, v.first, v.second, xi);
  const Tensor g2n = net.alphas_normal.grad().detach().clone(),
               g2r = net.alphas_reduce.grad().detach().clone();
  arch.first_order_grad(v.first, v.second);
  const Tensor g1n = net.alphas_normal.grad().detach().clone();
  double err2 = 0, err1 = 0, scale = 0;
  for (auto [alphas, row, g2, g1] :
       {std::tuple{net.alphas_normal, 0, g2n, g1n}, std::tuple{net.alphas_reduce, 3, g2r, Tensor()}})
    for (int k = 0; k < kNumOps; ++k) {
      Tensor entry = alphas.select(0, row).select(0, k);  // a view of the alphas
      const double a0 = entry.item<double>(), h = 1e-5;
      auto at = [&](double value) {
        {
          NoGradGuard ng;
          entry.fill_(value);
        }
        return unrolled_objective(net, t, v, xi, lambda);
      };
      const double fd = (at(a0 + h) - at(a0 - h)) / (2 * h);
      at(a0);
      err2 = std::max(err2, std::abs(g2.select(0, row).select(0, k).item<double>() - fd));
      if (g1.defined()) err1 = std::max(err1, std::abs(g1.select(0, row).select(0, k).item<double>() - fd));
      scale = std::max(scale, std::abs(fd));
    }
  // the finite-difference Hessian-vector product (eps = 0.01 / |v|) is accurate to ~eps^2
  EXPECT_LT(err2, 1e-4 * scale) << "second order " << err2 << " first order " << err1 << " |fd| " << scale;
  EXPECT_GT(err1, 100 * err2);  // the implicit term matters here
  for (const Tensor& p : net.parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(Architect, SecondOrderOnTheBcnnSupernetRestoresTheWeightsExactly) {
  auto net = tiny_bcnn();
  optim::Sgd sgd(net->parameters(), {.lr = 0.1, .momentum = 0.9});
  const auto t = planted_batch(8, 41), v = planted_batch(8, 42);
  {  // one weight step, so that the momentum buffers exist and enter w'
    cross_entropy(net->forward(t.first), t.second).backward();
    sgd.step();
    sgd.zero_grad();
  }
  std::vector<Tensor> before;
  for (const Tensor& p : net->parameters()) before.push_back(p.detach().clone());
  nas::Architect arch(*net, sgd, {.unrolled = true});
  const Tensor a0 = net->alphas_normal.detach().clone();
  const double loss = arch.step(t.first, t.second, v.first, v.second, 0.1, 0.5);
  EXPECT_TRUE(std::isfinite(loss));
  const auto after = net->parameters();
  for (size_t i = 0; i < after.size(); ++i) test::expect_close(after[i], before[i], 0);
  EXPECT_GT(amax(abs(net->alphas_normal.detach() - a0)).item<double>(), 0.0);
  EXPECT_DOUBLE_EQ(arch.current_lr(), 3e-4);  // second order: CLR scales the loss, not the lr (as the code)
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

// search_step is exactly the architecture step followed by the clipped SGD step (what the loop ran before it
// was factored out), and leaves its results on the device: the same alphas and weights bit for bit as the
// steps done by hand on a twin network, the train loss and the correct count of the pre-update logits.
TEST(Search, SearchStepEqualsTheArchitectureStepThenTheWeightStep) {
  const auto tb = planted_batch(16, 51), vb = planted_batch(16, 52);
  manual_seed(7);
  auto a = tiny_bcnn();
  manual_seed(7);
  auto b = tiny_bcnn();
  optim::Sgd sgd_a(a->parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 3e-4});
  optim::Sgd sgd_b(b->parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 3e-4});
  nas::Architect arch_a(*a, sgd_a, {.lr = 3e-2}), arch_b(*b, sgd_b, {.lr = 3e-2});
  const auto weights_a = a->parameters(), weights_b = b->parameters();
  for (int step = 0; step < 2; ++step) {  // the second step sees momentum and Adam state
    nas::SearchStepResult r = nas::search_step(*a, arch_a, sgd_a, weights_a, tb, vb, 0.1, 0.5, 0.05);
    EXPECT_EQ(r.train_loss.dim(), 0);
    const double arch_loss = arch_b.step(tb.first, tb.second, vb.first, vb.second, 0.1, 0.5);
    sgd_b.zero_grad();
    for (const Tensor& al : b->arch_parameters()) al.zero_grad();
    Tensor logits = b->forward(tb.first);
    Tensor loss = cross_entropy(logits, tb.second);
    loss.backward();
    optim::clip_grad_norm(weights_b, 0.05);  // small: the clip acts
    sgd_b.step();
    EXPECT_EQ(r.arch_loss.item<double>(), arch_loss);
    EXPECT_EQ(r.train_loss.item<double>(), loss.item<double>());
    const double correct = eq(argmax(logits.detach(), 1), tb.second).to(DType::f64).sum().item<double>();
    EXPECT_EQ(r.correct.item<double>(), correct);
    for (size_t i = 0; i < weights_a.size(); ++i) test::expect_close(weights_a[i], weights_b[i], 0);
    test::expect_close(a->alphas_normal, b->alphas_normal, 0);
    test::expect_close(a->alphas_reduce, b->alphas_reduce, 0);
    EXPECT_FALSE(a->alphas_normal.grad().defined() &&
                 abs(a->alphas_normal.grad()).sum().item<double>() > 0);  // the w step's alpha grads cleared
  }
}

// GraphedSearchStep: on the CPU it is the eager step (bit for bit); on a CUDA device (the GPU suite) it
// captures at its second call and replays, and the alphas, weights and losses follow the eager step's to
// within float noise over 4 steps (cuDNN may pick other algorithms in the capture, so not bit for bit).
void graphed_matches_eager(Device dev, double tol) {
  const auto tb0 = planted_batch(16, 61), vb0 = planted_batch(16, 62);
  const nas::LabeledBatch tb{tb0.first.to(dev), tb0.second.to(dev)},
      vb{vb0.first.to(dev), vb0.second.to(dev)};
  manual_seed(9);
  auto a = tiny_bcnn();
  manual_seed(9);
  auto b = tiny_bcnn();
  a->to(dev);
  b->to(dev);
  optim::Sgd sgd_a(a->parameters(), {.lr = 0.1, .momentum = 0.9}),
      sgd_b(b->parameters(), {.lr = 0.1, .momentum = 0.9});
  nas::Architect arch_a(*a, sgd_a, {.lr = 3e-2}), arch_b(*b, sgd_b, {.lr = 3e-2});
  const auto wa = a->parameters(), wb = b->parameters();
  nas::GraphedSearchStep graphed;
  for (int step = 0; step < 4; ++step) {
    const double c = 0.25 * (step + 1);  // the CLR lr changes between replays
    auto ra = graphed(*a, arch_a, sgd_a, wa, tb, vb, 0.1, c, 5.0);
    auto rb = nas::search_step(*b, arch_b, sgd_b, wb, tb, vb, 0.1, c, 5.0);
    EXPECT_NEAR(ra.train_loss.item<double>(), rb.train_loss.item<double>(), tol) << "step " << step;
    EXPECT_NEAR(ra.arch_loss.item<double>(), rb.arch_loss.item<double>(), tol) << "step " << step;
    EXPECT_NEAR(ra.correct.item<double>(), rb.correct.item<double>(), tol > 0 ? 1 : 0) << "step " << step;
  }
  for (size_t i = 0; i < wa.size(); ++i)
    test::expect_close(wa[i].to(Device::cpu()), wb[i].to(Device::cpu()), tol);
  test::expect_close(a->alphas_normal.to(Device::cpu()), b->alphas_normal.to(Device::cpu()), tol);
  test::expect_close(a->alphas_reduce.to(Device::cpu()), b->alphas_reduce.to(Device::cpu()), tol);
  if (dev.is_cuda()) {
    EXPECT_TRUE(graphed.captured());
    EXPECT_EQ(graphed.replays(), 3);  // the first call ran eagerly
  } else {
    EXPECT_EQ(graphed.replays(), 0);
  }
}

TEST(Search, GraphedStepIsTheEagerStepOnTheCpu) { graphed_matches_eager(Device::cpu(), 0); }

TEST(Search, GraphedStepReplaysAndFollowsTheEagerStepOnCuda) {
  if (!runtime::available(DeviceType::cuda)) GTEST_SKIP() << "no CUDA device";
  graphed_matches_eager(Device::cuda(0), 1e-3);
}

// The validation loss is the one the architecture steps see (training-mode BatchNorm, as the search uses
// it); a few epochs on 3 batches of planted data bring it down.
TEST(Search, TinyBcnnSearchLowersTheValidationLoss) {
  manual_seed(5);
  auto net = tiny_bcnn();
  optim::Sgd sgd(net->parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 3e-4});
  nas::Architect arch(*net, sgd, {.lr = 3e-3});
  std::vector<nas::LabeledBatch> train_batches, val_batches;
  for (int i = 0; i < 3; ++i) train_batches.push_back(planted_batch(16, 100 + i));
  for (int i = 0; i < 3; ++i) val_batches.push_back(planted_batch(16, 200 + i));
  size_t vi = 0;
  nas::BatchSource val = [&]() -> std::optional<nas::LabeledBatch> { return val_batches[vi++ % 3]; };
  const int64_t epochs = 4;
  std::vector<double> val_loss;
  for (int64_t e = 0; e < epochs; ++e) {
    size_t ti = 0;
    nas::BatchSource train = [&]() -> std::optional<nas::LabeledBatch> {
      if (ti == train_batches.size()) return std::nullopt;
      return train_batches[ti++];
    };
    val_loss.push_back(nas::search_epoch(*net, arch, sgd, train, val, nas::cosine_epoch_lr(0.1, 0, e, epochs),
                                         nas::clr_confidence(e, epochs, 2), 5.0)
                           .arch_loss);
  }
  EXPECT_LT(val_loss.back(), val_loss.front() * 0.7) << val_loss.front() << " -> " << val_loss.back();
  Genotype g = net->genotype();
  EXPECT_EQ(g.normal.size(), 8u);
  EXPECT_NO_THROW(g.validate());
}

}  // namespace
}  // namespace nabla
