// One optimizer step of a training loop, the same call whichever of its three forms runs:
//
//   eager        zero_grad, forward + loss (bf16 autocast with --amp bf16), backward, [gradient all-reduce],
//                [clip], optimizer step
//   device graph --cuda-graph: the forward and backward recorded once as a CUDA graph (runtime::Graph of
//                engine/device_runtime.h; apps/ never includes cuda/) at the run's second step,
//                after the first chose cuDNN's algorithms, and replayed for every batch of the recorded
//                shape; the optimizer step stays eager, so every optimizer, schedule and --clip work as they
//                do eagerly. A batch of another shape (an epoch's last) runs eagerly. Work a graph cannot
//                replay (dropout, a CPU op) makes the capture fail: the run says so and stays eager.
//                Not with data-parallel (the gradient all-reduce hooks into backward on a stream of its
//                own) nor the VR optimizers (one forward and backward per partition, host reads).
//   accumulated  run_accumulated: k micro-batches, each loss scaled by 1/k and backward (the gradient
//                all-reduce held back by no_sync until the last), then [clip] and the optimizer step; with
//                W ranks of b sequences this is the step of one process on W * b (train_gpt --grad-accum)
//   VR           the VR optimizers (algorithms/vrgd): k forward/backward passes over the batch's partitions,
//                the GSNR statistics (summed over the ranks in data-parallel runs: rank mode), then the
//                step (apps/common/vrgd_step.h)
//
//   apps::TrainStep step(*model, *optimizer, session, apps::classifier_forward(0.1),
//                        {.amp = amp, .clip = 1.0, .cuda_graph = true, .vr_partitions = 8});
//   while (auto b = batches.next()) { auto r = step.run(b->inputs, b->labels, schedule.lr_at(s), s); ... }
//
// The forward function makes the step work for any model: it returns the mean loss and the logits that
// top-1 hits are counted on (StepResult::correct; a model without classes returns no logits).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "algorithms/optim/optimizer.h"
#include "apps/common/vrgd_step.h"
#include "dist/session.h"
#include "models/nn/module.h"

namespace nabla::apps {

// Cross-entropy over the model's logits, with label smoothing.
ForwardFn classifier_forward(double label_smoothing);

struct StepOptions {
  bool amp = false;           // bf16 autocast for forward and loss (weights and optimizer stay f32)
  double clip = 0;            // clip gradients to this global L2 norm (0: off)
  bool cuda_graph = false;    // replay forward + backward from a device graph
  int64_t vr_partitions = 8;  // VR optimizers: GSNR partitions per step over all ranks
  // false: the eager/graph step does not read its loss and hits to the host (no synchronisation per step);
  // StepResult::loss is NaN and correct -1, and the caller sums StepResult::loss_device on the device
  bool read_results = true;
};

struct StepResult {
  double loss = 0;       // this rank's mean loss over its batch
  int64_t correct = 0;   // top-1 hits over this rank's batch
  double grad_norm = 0;  // the global L2 norm of the (averaged) gradient before clipping (0: --clip off)
  Tensor loss_device;    // the mean loss as a 0-d tensor on the device (eager and graph steps)
};

// Micro-batch m of a step (0 <= m < the step's micro-batches): its inputs and targets, on the device.
using MicroBatchFn = std::function<std::pair<Tensor, Tensor>(int64_t m)>;

class TrainStep {
 public:
  // Wraps `model` for data-parallel training when `session` is active. Throws when the VR partitions do
  // not split over the ranks.
  TrainStep(nn::Module& model, optim::Optimizer& optimizer, const dist::Session& session, ForwardFn forward,
            StepOptions options);
  ~TrainStep();

  // One step at learning rate `lr`: the parameters are updated when it returns. want_stats: VR optimizers
  // compute the per-layer GSNR statistics (gsnr_record()).
  StepResult run(const Tensor& inputs, const Tensor& targets, double lr, bool want_stats = false);
  // One step over `micro_batches` micro-batches (gradient accumulation): loss = their mean loss (this
  // rank's). Eager only (no device graph, not the VR optimizers).
  StepResult run_accumulated(int64_t micro_batches, const MicroBatchFn& batch, double lr);
  // After an epoch, before evaluating: every rank takes rank 0's buffers (batch-norm statistics).
  void sync_buffers();
  // A line saying how the steps run ("VRGD: 8 partitions of 8 examples per step (micro-batches), gamma
  // 0.1"), or "" for plain steps.
  std::string describe(int64_t local_batch) const;
  // The GSNR statistics of the last step that wanted them, as a metrics record (VR optimizers only).
  nlohmann::json gsnr_record(int64_t step) const;
  bool is_vr() const { return vr_ != nullptr; }

 private:
  class Graphed;
  StepResult eager(const Tensor& inputs, const Tensor& targets);
  StepResult vr_step(const Tensor& inputs, const Tensor& targets, bool want_stats);

  nn::Module& model_;
  optim::Optimizer& optimizer_;
  const dist::Session& session_;
  ForwardFn forward_;
  StepOptions o_;
  std::unique_ptr<dist::DataParallel> dp_;  // null in a single process
  vrgd::VrOptimizer* vr_ = nullptr;         // the optimizer, when it is a VR one
  int64_t vr_local_partitions_ = 0;
  std::unique_ptr<Graphed> graph_;
  int64_t steps_run_ = 0;
  nlohmann::json gsnr_record_;
};

// Stops the run with a clear error when the loss is NaN or infinite (a diverged run), naming the step;
// `allow` (--allow-nonfinite) lets it go on.
void check_loss(double loss, int64_t step, bool allow);

}  // namespace nabla::apps
