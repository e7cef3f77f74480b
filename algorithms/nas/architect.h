// The architecture step of DARTS (Liu et al. 2019) with B-DARTS's Confident Learning Rate (CLR), as
// zixiangding/BNASv2 BNASv2CLR/architect_confidence.py and train_search_b_confidence.py do it.
//
//   bilevel:      min_a L_val(w*(a), a)   s.t.  w*(a) = argmin_w L_train(w, a)
//   first order:  g = grad_a L_val(w, a)
//   second order: w' = w - xi (grad_w L_train(w, a) + momentum * m + lambda w)     (xi = the weights' lr,
//                 m the SGD momentum buffer, lambda its weight decay: one virtual SGD step)
//                 g = grad_a L_val(w', a) - xi [grad_a L_train(w+, a) - grad_a L_train(w-, a)] / (2 eps)
//                 w+- = w +- eps v,  v = grad_w' L_val(w', a),  eps = 0.01 / ||v||
//                 (a finite-difference Hessian-vector product: no double backward)
//   update:       a <- Adam(g), betas (0.5, 0.999), L2 weight decay 1e-3 added to g, lr eta_a
//   CLR:          confidence(e) = ((e + 1) / E)^p     (e 0-based epoch, E epochs, p = 2 by default)
//                 first order:  eta_a(e) = eta_a0 confidence(e)          (the Adam lr is reset every step)
//                 second order: the code scales the unrolled validation loss by confidence(e) instead and
//                 leaves eta_a at eta_a0 (with Adam nearly scale-free); `second_order_scales_loss` picks
//                 that (default, as the code) or the lr scaling of the first-order path.
//
// The weights are the network's parameters(); in the second-order step they are moved to w', w+ and w-
// in place and restored bit for bit afterwards (the code builds a copy of the network instead; the
// BatchNorm running statistics, which only evaluation reads, also see the w' forward here).
// In the first-order step the weights' requires_grad is switched off for the backward, so only the
// alphas' gradient is computed (the code also accumulates weight gradients there and discards them).
#pragma once
#include <memory>
#include <vector>

#include "algorithms/optim/optimizer.h"
#include "models/darts/cells.h"

namespace nabla::nas {

double clr_confidence(int64_t epoch, int64_t epochs, double power);

struct ArchitectOptions {
  double lr = 3e-4;  // eta_a0
  double beta1 = 0.5, beta2 = 0.999;
  double weight_decay = 1e-3;
  bool unrolled = false;  // second order
  bool clr = true;        // B-DARTS's confident learning rate; false: plain DARTS
  double power = 2.0;     // p
  bool second_order_scales_loss = true;
  double network_momentum = 0.9, network_weight_decay = 3e-4;  // of the weights' SGD (w' above)
  double hvp_r = 1e-2;                                         // eps = hvp_r / ||v||
};

class Architect {
 public:
  // `weights_optimizer` is the weights' SGD: its momentum buffers enter w' (absent before its first step).
  Architect(models::darts::SearchNetwork& model, optim::Optimizer& weights_optimizer, ArchitectOptions o);
  // One architecture step. eta: the weights' current lr (xi); confidence: clr_confidence of the epoch (used
  // only when o.clr). Returns the validation loss (at w for first order, at w' for second order, unscaled).
  double step(const Tensor& x_train, const Tensor& y_train, const Tensor& x_val, const Tensor& y_val,
              double eta, double confidence);
  // The same step, the loss left on the device as a 0-dim tensor (no host read: the search loop sums the
  // losses on the device and reads them once per epoch).
  Tensor step_lazy(const Tensor& x_train, const Tensor& y_train, const Tensor& x_val, const Tensor& y_val,
                   double eta, double confidence);
  // The gradients alone (left in the alphas' .grad()), for tests.
  double first_order_grad(const Tensor& x_val, const Tensor& y_val, double loss_scale = 1.0);
  double second_order_grad(const Tensor& x_train, const Tensor& y_train, const Tensor& x_val,
                           const Tensor& y_val, double eta, double loss_scale = 1.0);
  // The first-order step in its two halves (step_lazy runs both; GraphedSearchStep replays the first from a
  // CUDA graph): the alphas' gradient of the validation loss with the weights frozen, returning the loss
  // unread; then Adam at the first-order CLR lr of `confidence` on the alphas' gradients.
  Tensor first_order_grad_lazy(const Tensor& x_val, const Tensor& y_val, double loss_scale = 1.0);
  void first_order_update(double confidence);
  optim::Adam& optimizer() { return *adam_; }
  double current_lr() const { return adam_->lr(); }
  const ArchitectOptions& options() const { return o_; }

 private:
  std::vector<Tensor> momentum_buffers() const;
  Tensor second_order_grad_lazy(const Tensor& x_train, const Tensor& y_train, const Tensor& x_val,
                                const Tensor& y_val, double eta, double loss_scale);
  models::darts::SearchNetwork& model_;
  optim::Optimizer& weights_optimizer_;
  ArchitectOptions o_;
  std::unique_ptr<optim::Adam> adam_;
};

}  // namespace nabla::nas
