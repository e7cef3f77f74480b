// The bilevel search epoch (search.h).
#include "algorithms/nas/search.h"

#include <chrono>
#include <cmath>

#include "algorithms/optim/clip.h"
#include "autograd/autograd.h"
#include "engine/device_runtime.h"
#include "ops/loss.h"
#include "ops/reduce.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"

namespace nabla::nas {

double cosine_epoch_lr(double lr0, double lr_min, int64_t epoch, int64_t epochs) {
  NABLA_CHECK(epochs >= 1 && epoch >= 0 && epoch <= epochs, "cosine_epoch_lr: epoch ", epoch, " not in [0, ",
              epochs, "]");
  constexpr double kPi = 3.14159265358979323846;
  return lr_min +
         (lr0 - lr_min) * (1 + std::cos(kPi * static_cast<double>(epoch) / static_cast<double>(epochs))) / 2;
}

namespace {
Tensor correct_of(const Tensor& logits, const Tensor& labels) {
  Tensor pred = argmax(logits.detach(), 1);
  return eq(pred, labels.to(pred.dtype())).to(DType::f64).sum();
}
}  // namespace

SearchStepResult search_step(models::darts::SearchNetwork& model, Architect& architect,
                             optim::Optimizer& weights_optimizer, const std::vector<Tensor>& weights,
                             const LabeledBatch& train, const LabeledBatch& val, double lr, double confidence,
                             double grad_clip) {
  SearchStepResult r;
  r.arch_loss = architect.step_lazy(train.first, train.second, val.first, val.second, lr, confidence);
  weights_optimizer.zero_grad();
  for (const Tensor& a : model.arch_parameters()) a.zero_grad();
  Tensor logits = model.forward(train.first);
  Tensor loss = cross_entropy(logits, train.second);
  loss.backward();
  if (grad_clip > 0) optim::clip_grad_norm(weights, grad_clip);
  weights_optimizer.step();
  for (const Tensor& a : model.arch_parameters()) a.zero_grad();  // the w step's alpha gradient is unused
  r.train_loss = loss.detach();
  r.correct = correct_of(logits, train.second);
  return r;
}

struct GraphedSearchStep::Graphs {
  explicit Graphs(Device d) : arch(d), weight(d) {}
  runtime::Graph arch, weight;
  Tensor xv, yv, xt, yt;                                // the fixed inputs the graphs read
  Tensor arch_loss, train_loss, logits;                 // written by the replays
  std::vector<std::pair<Tensor, Tensor>> alpha_grads;   // (alpha, the gradient the architecture graph writes)
  std::vector<std::pair<Tensor, Tensor>> weight_grads;  // (weight, the gradient the weight graph writes)
  bool fits(const LabeledBatch& t, const LabeledBatch& v) const {
    return t.first.shape() == xt.shape() && t.second.shape() == yt.shape() && v.first.shape() == xv.shape() &&
           v.second.shape() == yv.shape() && t.first.dtype() == xt.dtype() && t.first.device() == xt.device();
  }
};

GraphedSearchStep::GraphedSearchStep() = default;
GraphedSearchStep::~GraphedSearchStep() = default;
bool GraphedSearchStep::captured() const { return g_ && g_->arch.captured() && g_->weight.captured(); }

SearchStepResult GraphedSearchStep::operator()(models::darts::SearchNetwork& model, Architect& architect,
                                               optim::Optimizer& weights_optimizer,
                                               const std::vector<Tensor>& weights, const LabeledBatch& train,
                                               const LabeledBatch& val, double lr, double confidence,
                                               double grad_clip) {
  const bool eligible = !disabled_ && !architect.options().unrolled && train.first.device().is_cuda();
  if (eligible && !g_ && calls_++ > 0) {  // capture at the second call
    auto g = std::make_unique<Graphs>(train.first.device());
    g->xv = empty_like(val.first);
    g->yv = empty_like(val.second);
    g->xt = empty_like(train.first);
    g->yt = empty_like(train.second);
    const std::vector<Tensor> alphas = model.arch_parameters();
    try {
      g->arch.capture([&] { g->arch_loss = architect.first_order_grad_lazy(g->xv, g->yv); });
      for (const Tensor& a : alphas) g->alpha_grads.emplace_back(a, a.grad());
      g->weight.capture([&] {
        weights_optimizer.zero_grad();
        for (const Tensor& a : alphas) a.zero_grad();
        g->logits = model.forward(g->xt);
        Tensor loss = cross_entropy(g->logits, g->yt);
        loss.backward();
        g->train_loss = loss.detach();
      });
      for (const Tensor& w : weights) g->weight_grads.emplace_back(w, w.grad());
      for (const auto& [a, gr] : g->alpha_grads)
        NABLA_CHECK(gr.defined(),
                    "GraphedSearchStep: the architecture pass left an alpha without a gradient");
      g_ = std::move(g);
    } catch (const Error& e) {
      std::printf("note: cuda graph: the search step cannot be captured, running eagerly: %s\n", e.what());
      disabled_ = true;
      weights_optimizer.zero_grad();
      for (const Tensor& a : alphas) a.zero_grad();
    }
  }
  if (!g_ || disabled_ || !g_->fits(train, val))
    return search_step(model, architect, weights_optimizer, weights, train, val, lr, confidence, grad_clip);
  Graphs& g = *g_;
  SearchStepResult r;
  {
    NoGradGuard ng;
    g.xv.copy_(val.first);
    g.yv.copy_(val.second);
    g.xt.copy_(train.first);
    g.yt.copy_(train.second);
  }
  g.arch.replay();
  for (auto& [a, gr] : g.alpha_grads) a.set_grad(gr);
  architect.first_order_update(confidence);
  g.weight.replay();
  for (auto& [w, gr] : g.weight_grads) w.set_grad(gr);
  if (grad_clip > 0) optim::clip_grad_norm(weights, grad_clip);
  weights_optimizer.step();
  for (const Tensor& a : model.arch_parameters()) a.zero_grad();
  {
    NoGradGuard ng;  // copies: the next replay overwrites the graphs' outputs
    r.arch_loss = g.arch_loss.clone();
    r.train_loss = g.train_loss.clone();
    r.correct = correct_of(g.logits, train.second);
  }
  ++replays_;
  return r;
}

SearchEpochStats search_epoch(models::darts::SearchNetwork& model, Architect& architect,
                              optim::Optimizer& weights_optimizer, const BatchSource& train,
                              const BatchSource& val, double lr, double confidence, double grad_clip,
                              const std::function<bool(int64_t, const Tensor&)>& on_step,
                              GraphedSearchStep* graphed) {
  const auto t0 = std::chrono::steady_clock::now();
  SearchEpochStats s;
  int64_t seen = 0;
  Tensor loss_sum, correct_sum, arch_sum;  // on the device, read at the end
  auto add = [](Tensor& acc, const Tensor& v) { acc = acc.defined() ? acc + v : v; };
  weights_optimizer.set_lr(lr);
  const std::vector<Tensor> weights = model.parameters();
  model.train();
  while (auto batch = train()) {
    auto vb = val();
    NABLA_CHECK(vb.has_value(), "search_epoch: the validation source ran dry");
    SearchStepResult r = graphed ? (*graphed)(model, architect, weights_optimizer, weights, *batch, *vb, lr,
                                              confidence, grad_clip)
                                 : search_step(model, architect, weights_optimizer, weights, *batch, *vb, lr,
                                               confidence, grad_clip);
    const int64_t n = batch->second.numel();
    {
      NoGradGuard ng;
      add(loss_sum, r.train_loss.to(DType::f64) * static_cast<double>(n));
      add(correct_sum, r.correct);
      add(arch_sum, r.arch_loss.to(DType::f64));
    }
    seen += n;
    ++s.steps;
    if (on_step && !on_step(s.steps, r.train_loss)) break;
  }
  if (seen > 0) {
    s.train_loss = loss_sum.item<double>() / static_cast<double>(seen);
    s.train_acc = correct_sum.item<double>() / static_cast<double>(seen);
    s.arch_loss = arch_sum.item<double>() / static_cast<double>(s.steps);
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

EvalStats evaluate_search(nn::Module& model, const BatchSource& batches) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  EvalStats e;
  Tensor loss_sum, correct;  // on the device, read once at the end
  while (auto b = batches()) {
    Tensor logits = model.forward(b->first);
    Tensor l = cross_entropy(logits, b->second).to(DType::f64) * static_cast<double>(b->second.numel());
    Tensor c = correct_of(logits, b->second);
    loss_sum = loss_sum.defined() ? loss_sum + l : l;
    correct = correct.defined() ? correct + c : c;
    e.seen += b->second.numel();
  }
  if (e.seen > 0) {
    e.loss = loss_sum.item<double>() / static_cast<double>(e.seen);
    e.acc = correct.item<double>() / static_cast<double>(e.seen);
  }
  model.train(was_training);
  return e;
}

}  // namespace nabla::nas
