// The training-loop side of VRGD (algorithms/vrgd) for the classifier binaries: one step's k forward and
// backward passes over equal micro-batches of the batch, and the GSNR statistics as a metrics record.
//
// Micro-batches change what batch norm sees (statistics of batch/k examples, k running-average updates per
// step), as per-device batch norm does in the paper's data-parallel runs.
#pragma once
#include <cstdint>
#include <functional>

#include <nlohmann/json.hpp>

#include "algorithms/vrgd/vr_optimizer.h"
#include "models/nn/module.h"

namespace nabla::apps {

// The model's mean loss on (inputs, targets), and the logits that top-1 hits are counted on.
struct ForwardOutput {
  Tensor loss, logits;
};
using ForwardFn =
    std::function<ForwardOutput(nn::Module& model, const Tensor& inputs, const Tensor& targets)>;

struct VrStepResult {
  double loss = 0;      // mean cross-entropy over the batch
  int64_t correct = 0;  // top-1 hits over the batch
};

// Runs forward/backward on `k` equal strided parts of (inputs, labels) (part j: examples j, j + k, ...,
// the data-parallel loader's split), accumulates the GSNR statistics and reduces
// them (the mean gradient is then in .grad, ready for clipping and optimizer.step()). want_stats: compute
// the per-tensor GSNR statistics (host reads).
// Data-parallel (rank mode): `ranks` sums the statistics of the `world_size` ranks (each ran its own k
// micro-batches on its local batch, with the data-parallel gradient averaging off) before the reduce, so
// the GSNR is taken over k * world_size partitions.
// `forward` gives each part's loss and logits (train_classifier: cross-entropy with label smoothing).
VrStepResult vr_forward_backward(vrgd::Gsnr& gsnr, nn::Module& model, const Tensor& inputs,
                                 const Tensor& labels, int64_t k, const ForwardFn& forward, bool want_stats,
                                 const vrgd::AllReduceSum& ranks = {}, int64_t world_size = 1);

// {"kind": "gsnr", "step", "mean_ratio", "frac_at_gamma", "frac_at_one" (element-weighted over the model),
//  "layers": {name: [mean_ratio, frac_at_gamma, frac_at_one]}, "numel": {name: elements}} from the last
//  reduce's statistics.
nlohmann::json gsnr_stats_record(const vrgd::Gsnr& gsnr, int64_t step);

}  // namespace nabla::apps
