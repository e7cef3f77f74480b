// The DARTS architecture step with CLR (architect.h).
#include "algorithms/nas/architect.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "autograd/autograd.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/loss.h"
#include "ops/reduce.h"

namespace nabla::nas {

double clr_confidence(int64_t epoch, int64_t epochs, double power) {
  NABLA_CHECK(epochs >= 1 && epoch >= 0 && epoch < epochs, "clr_confidence: epoch ", epoch,
              " must be in [0, epochs = ", epochs, ")");
  NABLA_CHECK(std::isfinite(power) && power >= 0, "clr_confidence: power must be finite and >= 0, got ",
              power);
  return std::pow(static_cast<double>(epoch + 1) / static_cast<double>(epochs), power);
}

namespace {

// Switches requires_grad off for the tensors and back on at scope end.
class FreezeGuard {
 public:
  explicit FreezeGuard(std::vector<Tensor> ts) : ts_(std::move(ts)) {
    for (auto& t : ts_) t.requires_grad_(false);
  }
  ~FreezeGuard() {
    for (auto& t : ts_) t.requires_grad_(true);
  }

 private:
  std::vector<Tensor> ts_;
};

// The loss's value comes back detached and unread (no host synchronisation).
Tensor loss_backward(nn::Module& model, const Tensor& x, const Tensor& y, double scale) {
  Tensor loss = cross_entropy(model.forward(x), y);
  Tensor value = loss.detach();
  (scale == 1.0 ? loss : loss * scale).backward();
  return value;
}

// grad of each tensor (zeros when none arrived), detached copies.
std::vector<Tensor> grads_of(const std::vector<Tensor>& ts) {
  std::vector<Tensor> g;
  for (const Tensor& t : ts) g.push_back(t.grad().defined() ? t.grad().detach().clone() : zeros_like(t));
  return g;
}

void zero_grads(const std::vector<Tensor>& ts) {
  for (const Tensor& t : ts) t.zero_grad();
}

}  // namespace

Architect::Architect(models::darts::SearchNetwork& model, optim::Optimizer& weights_optimizer,
                     ArchitectOptions o)
    : model_(model), weights_optimizer_(weights_optimizer), o_(o) {
  adam_ = std::make_unique<optim::Adam>(
      model.arch_parameters(),
      optim::AdamOptions{.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .weight_decay = o.weight_decay});
}

std::vector<Tensor> Architect::momentum_buffers() const {
  const auto params = model_.parameters();
  std::vector<Tensor> m(params.size());
  // The SGD must hold exactly the network's parameters, in order, in one group (search_darts builds it so).
  const auto& groups = weights_optimizer_.groups();
  if (groups.size() != 1 || groups[0].params.size() != params.size()) return m;
  for (auto& [name, t] : weights_optimizer_.state_tensors()) {
    size_t g = 0, p = 0;
    int used = 0;
    if (std::sscanf(name.c_str(), "group%zu.param%zu.momentum_buffer%n", &g, &p, &used) == 2 &&
        used == static_cast<int>(name.size()) && p < m.size())
      m[p] = t;
  }
  return m;
}

double Architect::first_order_grad(const Tensor& x_val, const Tensor& y_val, double loss_scale) {
  return first_order_grad_lazy(x_val, y_val, loss_scale).item<double>();
}

double Architect::second_order_grad(const Tensor& x_train, const Tensor& y_train, const Tensor& x_val,
                                    const Tensor& y_val, double eta, double loss_scale) {
  return second_order_grad_lazy(x_train, y_train, x_val, y_val, eta, loss_scale).item<double>();
}

Tensor Architect::first_order_grad_lazy(const Tensor& x_val, const Tensor& y_val, double loss_scale) {
  zero_grads(model_.arch_parameters());
  FreezeGuard frozen(model_.parameters());
  return loss_backward(model_, x_val, y_val, loss_scale);
}

Tensor Architect::second_order_grad_lazy(const Tensor& x_train, const Tensor& y_train, const Tensor& x_val,
                                         const Tensor& y_val, double eta, double loss_scale) {
  const std::vector<Tensor> w = model_.parameters(), alphas = model_.arch_parameters();
  // 1. w' = w - eta (grad_w L_train + momentum m + lambda w)
  zero_grads(w);
  zero_grads(alphas);
  {
    Tensor loss = cross_entropy(model_.forward(x_train), y_train);
    loss.backward();
  }
  const std::vector<Tensor> dtheta = grads_of(w), moment = momentum_buffers();
  std::vector<Tensor> saved;
  {
    NoGradGuard ng;
    for (size_t i = 0; i < w.size(); ++i) {
      saved.push_back(w[i].detach().clone());
      Tensor step = dtheta[i] + w[i].detach() * o_.network_weight_decay;
      if (moment[i].defined()) step = step + moment[i] * o_.network_momentum;
      Tensor wi = w[i];
      add_(wi, step, -eta);
    }
  }
  // 2. at w': dalpha = grad_a L_val(w', a), v = grad_w' L_val(w', a)
  zero_grads(w);
  zero_grads(alphas);
  const Tensor val_loss = loss_backward(model_, x_val, y_val, loss_scale);
  std::vector<Tensor> dalpha = grads_of(alphas), v = grads_of(w);
  // 3. restore w; finite-difference Hessian-vector product around it (||v||^2 summed on the device in f64,
  // one host read)
  double norm2 = 0;
  {
    NoGradGuard ng;
    Tensor acc;
    for (size_t i = 0; i < w.size(); ++i) {
      Tensor wi = w[i];
      wi.copy_(saved[i]);
      Tensor vi = v[i].to(DType::f64);
      Tensor sq = (vi * vi).sum();
      acc = acc.defined() ? acc + sq : sq;
    }
    if (acc.defined()) norm2 = acc.item<double>();
  }
  const double r = o_.hvp_r / std::sqrt(norm2);
  auto shift = [&](double by) {
    NoGradGuard ng;
    for (size_t i = 0; i < w.size(); ++i) {
      Tensor wi = w[i];
      add_(wi, v[i], by);
    }
  };
  auto alpha_grads_at = [&]() {
    zero_grads(alphas);
    FreezeGuard frozen(w);
    loss_backward(model_, x_train, y_train, 1.0);
    return grads_of(alphas);
  };
  shift(r);
  const std::vector<Tensor> gp = alpha_grads_at();
  shift(-2 * r);
  const std::vector<Tensor> gn = alpha_grads_at();
  {
    NoGradGuard ng;
    for (size_t i = 0; i < w.size(); ++i) {  // exactly w again (not w + r v - 2 r v + r v)
      Tensor wi = w[i];
      wi.copy_(saved[i]);
    }
  }
  zero_grads(w);
  NoGradGuard ng;
  for (size_t i = 0; i < alphas.size(); ++i) {
    Tensor g = dalpha[i] - (gp[i] - gn[i]) * (eta / (2 * r));
    alphas[i].set_grad(g);
  }
  return val_loss;
}

double Architect::step(const Tensor& x_train, const Tensor& y_train, const Tensor& x_val, const Tensor& y_val,
                       double eta, double confidence) {
  return step_lazy(x_train, y_train, x_val, y_val, eta, confidence).item<double>();
}

Tensor Architect::step_lazy(const Tensor& x_train, const Tensor& y_train, const Tensor& x_val,
                            const Tensor& y_val, double eta, double confidence) {
  Tensor loss;
  if (o_.unrolled) {
    const bool scale_loss = o_.clr && o_.second_order_scales_loss;
    adam_->set_lr(o_.clr && !o_.second_order_scales_loss ? o_.lr * confidence : o_.lr);
    loss = second_order_grad_lazy(x_train, y_train, x_val, y_val, eta, scale_loss ? confidence : 1.0);
  } else {
    loss = first_order_grad_lazy(x_val, y_val, 1.0);
    first_order_update(confidence);
    return loss;
  }
  adam_->step();
  return loss;
}

void Architect::first_order_update(double confidence) {
  adam_->set_lr(o_.clr ? o_.lr * confidence : o_.lr);
  adam_->step();
}

}  // namespace nabla::nas
