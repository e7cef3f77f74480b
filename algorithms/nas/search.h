// One epoch of the DARTS / B-DARTS bilevel search (brief §3.6, train_search_b_confidence.py train()):
//
//   for each training batch (x_t, y_t) of the weights' half:
//     draw a validation batch (x_v, y_v) of the architecture half
//     architecture step (architect.h; first or second order, CLR confidence of this epoch)
//     weight step: grad_w CE(f(x_t; w, a), y_t), clip to grad_clip, SGD (momentum, weight decay) at lr
//
// The weights' lr is constant within an epoch (the code steps its cosine schedule once per epoch):
// cosine_epoch_lr gives it. evaluate_search() is the code's infer(): loss and accuracy in eval mode.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <utility>

#include "algorithms/nas/architect.h"

namespace nabla::nas {

using LabeledBatch = std::pair<Tensor, Tensor>;  // inputs [B, C, H, W], labels i64 [B]
using BatchSource = std::function<std::optional<LabeledBatch>()>;

// lr_min + (lr0 - lr_min) (1 + cos(pi e / E)) / 2: PyTorch's CosineAnnealingLR(T_max = E) at epoch e.
double cosine_epoch_lr(double lr0, double lr_min, int64_t epoch, int64_t epochs);

struct SearchEpochStats {
  double train_loss = 0, train_acc = 0;  // of the weight steps (before each step's update)
  double arch_loss = 0;                  // mean validation loss seen by the architecture steps
  int64_t steps = 0;
  double seconds = 0;
};

// `on_step(step_in_epoch, train_loss)` after each step; returning false stops the epoch early.
SearchEpochStats search_epoch(models::darts::SearchNetwork& model, Architect& architect,
                              optim::Optimizer& weights_optimizer, const BatchSource& train,
                              const BatchSource& val, double lr, double confidence, double grad_clip,
                              const std::function<bool(int64_t, double)>& on_step = {});

struct EvalStats {
  double loss = 0, acc = 0;
  int64_t seen = 0;
};
EvalStats evaluate_search(nn::Module& model, const BatchSource& batches);

}  // namespace nabla::nas
