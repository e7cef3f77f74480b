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
#include <memory>
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

// One bilevel step: the architecture step on `val`, then the weight step on `train` (its lr already set in
// `weights_optimizer`). Its results stay on the device as 0-dim tensors (no host read: a step of many small
// kernels runs ahead of the GPU only if nothing waits for it); clip_grad_norm's one read of the norm is the
// step's only synchronisation. `weights` is model.parameters() (passed in: collected once per epoch).
struct SearchStepResult {
  Tensor train_loss;  // f32, mean cross-entropy of the weight step's batch (before its update)
  Tensor correct;     // f64, correct predictions of that batch
  Tensor arch_loss;   // the validation loss the architecture step saw
};
SearchStepResult search_step(models::darts::SearchNetwork& model, Architect& architect,
                             optim::Optimizer& weights_optimizer, const std::vector<Tensor>& weights,
                             const LabeledBatch& train, const LabeledBatch& val, double lr, double confidence,
                             double grad_clip);

// search_step with its two forward + backward passes replayed from CUDA graphs (runtime::Graph): the
// architecture pass (validation batch, weights frozen, into the alphas' gradients) and the weight pass
// (training batch, into the weights' gradients) are each recorded once, at the second call (the first, eager,
// lets cuDNN choose its algorithms), then replayed with the new batches copied into fixed input tensors.
// Adam, the gradient clip (it reads the norm on the host) and SGD stay eager between the replays. First
// order only; a batch of another shape (an epoch's last), a CPU model, or a step that cannot be captured
// (a note says why, once) runs the eager search_step. The graphs keep their activations in a private pool.
class GraphedSearchStep {
 public:
  GraphedSearchStep();
  ~GraphedSearchStep();
  SearchStepResult operator()(models::darts::SearchNetwork& model, Architect& architect,
                              optim::Optimizer& weights_optimizer, const std::vector<Tensor>& weights,
                              const LabeledBatch& train, const LabeledBatch& val, double lr,
                              double confidence, double grad_clip);
  bool captured() const;
  int64_t replays() const { return replays_; }

 private:
  struct Graphs;
  std::unique_ptr<Graphs> g_;
  int64_t calls_ = 0, replays_ = 0;
  bool disabled_ = false;
};

// `on_step(step_in_epoch, train_loss)` after each step, with the step's loss as a 0-dim device tensor (read
// it only when needed: .item() waits for the GPU); returning false stops the epoch early. The epoch's sums
// are read once, at its end.
SearchEpochStats search_epoch(models::darts::SearchNetwork& model, Architect& architect,
                              optim::Optimizer& weights_optimizer, const BatchSource& train,
                              const BatchSource& val, double lr, double confidence, double grad_clip,
                              const std::function<bool(int64_t, const Tensor&)>& on_step = {},
                              GraphedSearchStep* graphed = nullptr);

struct EvalStats {
  double loss = 0, acc = 0;
  int64_t seen = 0;
};
EvalStats evaluate_search(nn::Module& model, const BatchSource& batches);

}  // namespace nabla::nas
