// The bilevel search epoch (search.h).
#include "algorithms/nas/search.h"

#include <chrono>
#include <cmath>

#include "algorithms/optim/clip.h"
#include "autograd/autograd.h"
#include "ops/loss.h"
#include "ops/reduce.h"
#include "ops/elementwise.h"
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

SearchEpochStats search_epoch(models::darts::SearchNetwork& model, Architect& architect,
                              optim::Optimizer& weights_optimizer, const BatchSource& train,
                              const BatchSource& val, double lr, double confidence, double grad_clip,
                              const std::function<bool(int64_t, const Tensor&)>& on_step) {
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
    SearchStepResult r =
        search_step(model, architect, weights_optimizer, weights, *batch, *vb, lr, confidence, grad_clip);
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
