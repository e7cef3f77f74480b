// GSNR statistics for VRGD (Jiang, Liu, Ding, Guo, Lin, "Accelerating Large Batch Training via Gradient
// Signal to Noise Ratio", arXiv 2309.13681, Algorithm 1 steps 2-9).
//
// The global batch is split into k equal partitions (micro-batches on one device, or the k ranks of a
// data-parallel run). With g_d the mean gradient of partition d, for every parameter tensor (element-wise):
//
//   g~   = (1/k) sum_d g_d                       the global-batch mean gradient (eq. 5)
//   m2   = (1/k) sum_d g_d^2                     mean of squares
//   s2   = max(m2 - g~^2, 0)                     variance over partitions, divisor k (eq. 7); max(.,0)
//                                                removes negative rounding residue of the subtraction
//   r    = g~^2 / (s2 + eps * m2 + tiny)         GSNR (eq. 2)
//   r    = r / (mean_J(r) + tiny)                mean 1 within each tensor (eq. 8; or over the model)
//   r    = clamp(r, gamma, 1)                    eq. 9
//
// then the VR optimizer uses r (or its momentum p^, below) as an element-wise multiplier of g~ (eq. 10).
//
// The epsilon is relative: eps * m2 = eps * (g~^2 + s2). The paper gives none. A relative floor keeps r
// invariant under scaling the loss (r depends on g only through ratios, and s2, m2 scale alike), bounds
// r <= 1/eps when the partitions agree exactly (s2 = 0, e.g. identical partitions), and with the default
// eps = 1e-6 lies above the f32 rounding noise of m2 - g~^2 (about 1e-7 m2), so identical partitions give
// r = 1/eps uniformly, i.e. multiplier 1, instead of amplified rounding noise. `tiny` (1e-30) only
// turns 0/0 (a gradient that is zero on every partition) into r = 0; such elements get gamma, and their
// update is zero anyway.
//
// GSNR momentum (VR-Adam, VR-LAMB; optional for the others), per tensor with its own update count t:
//   p = beta3 p + (1 - beta3) r ;  p^ = p / (1 - beta3^t)   (bias correction optional) ;  multiplier =
//   clamp(p^, gamma, 1). p^ is a weighted mean of values in [gamma, 1], so the final clamp changes nothing
//   but rounding (1 + 1 ulp); it keeps the multiplier in [gamma, 1] exactly, which also makes gamma = 1 give
//   multiplier 1.0 exactly (VR reduces to the base optimizer bit for bit).
//
// Two ways to feed it, same answer for the same split:
//   micro-batches: for d in 0..k-1 { forward(part d); loss_d.backward(); gsnr.accumulate(); }
//                  accumulate() adds each parameter's .grad into a sum buffer and its square into a square
//                  buffer and drops .grad, so memory is two buffers per parameter whatever k is.
//   ranks:         loss.backward(); gsnr.accumulate(); gsnr.all_reduce(all_reduce_sum, world_size);
//                  one collective call over [sums..., squares...] (both in one); the callback sums each
//                  tensor over the ranks in place (the data-parallel communicator's all-reduce). This
//                  replaces data-parallel's own gradient averaging: the ranks must hand GSNR their local
//                  gradients.
//   (Both combine: m micro-batches per rank and world_size ranks give k = m * world_size partitions.)
// reduce() then writes g~ into each parameter's .grad (clipping or unscaling may follow) and computes r;
// the VR optimizer's step() calls reduce() itself if it was not called, multiplies .grad by the multiplier
// and runs the base optimizer.
//
// Two implementations, same maths. Fused (GsnrOptions::fused, the default): the multi-tensor kernels of
// ops/gsnr_kernels.h, one call for all tensors: accumulate 1 launch per partition, reduce 3-5, apply 1 on
// CUDA (the per-tensor means stay on the device). Used when every parameter shares one dtype and device
// (and the device has the kernels); otherwise, or with fused = false, the op-by-op reference: ~10 tensor
// ops per tensor and step, kept as the frozen reference the fused kernels are tested against (on the CPU
// they agree bit for bit for f32/f64 in per-tensor scope; gsnr_kernels.h says where rounding differs).
// Neither reads the device from the host (no syncs) except for the statistics, which read three numbers
// per tensor when asked for (request_stats()); the fused path reads them all in one copy.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace nabla::vrgd {

// Over which elements r is normalised to mean 1 (eq. 8 says "each layer"; the paper does not say whether
// weight and bias are one layer): each parameter tensor (default, as LARS/LAMB define layers), or all
// parameters together.
enum class GsnrScope { kPerTensor, kGlobal };

// Where the GSNR momentum sits relative to the clamp (the paper does not say): momentum of the clamped r
// (default: the average of multipliers is what is applied, and p^ stays in [gamma, 1]), or momentum of the
// normalised r, clamped afterwards.
enum class GsnrMomentumInput { kClamped, kNormalized };

struct GsnrOptions {
  double gamma = 0.1;  // lower clamp, "normalisation strength"; 1 turns VR off
  double eps = 1e-6;   // relative variance floor (see the file comment)
  // GSNR momentum; nullopt: the VR optimizer's default (0.9 for VR-Adam/VR-LAMB as in the paper, 0 for
  // VR-SGD/VR-Momentum/VR-LARS, where the paper only says "similar to VR-SGD"). 0 disables it.
  std::optional<double> beta3 = std::nullopt;
  bool bias_correction = true;  // p^ = p / (1 - beta3^t), as Adam corrects its moments
  GsnrScope scope = GsnrScope::kPerTensor;
  GsnrMomentumInput momentum_input = GsnrMomentumInput::kClamped;
  // Fused multi-tensor kernels when the parameters allow (see the file comment); false: the op-by-op
  // reference always (for tests and comparisons).
  bool fused = true;
};

// One parameter tensor's statistics of the last reduce(): the mean of the clamped r, and the fractions of
// elements whose normalised r was below gamma (raised to gamma) and above 1 (cut to 1).
struct GsnrTensorStats {
  std::string name;
  int64_t numel = 0;
  double mean_ratio = 0, frac_at_gamma = 0, frac_at_one = 0;
};

// The collective: sums every tensor over the ranks, in place.
using AllReduceSum = std::function<void(std::vector<Tensor>& tensors)>;

class Gsnr {
 public:
  // `names`: empty or one per parameter (used in messages and statistics). beta3 must be resolved (the VR
  // optimizer does that).
  Gsnr(std::vector<Tensor> params, std::vector<std::string> names, GsnrOptions options);

  // Adds every parameter's current .grad to the statistics as one partition, then drops the .grad (so the
  // next backward writes a fresh one). Parameters without a .grad are skipped; a parameter must have a
  // gradient in all partitions of a step or in none.
  void accumulate();
  // Rank mode: sums the statistics over `world_size` ranks with one call of `all_reduce_sum` (over the sum
  // buffers, then the square buffers, of the parameters that have statistics, in parameter order).
  void all_reduce(const AllReduceSum& all_reduce_sum, int64_t world_size);
  // Partitions seen so far this step (after all_reduce: the global count).
  int64_t partitions() const { return partitions_; }

  // Steps 5-9: writes g~ into each parameter's .grad and computes the clamped r. Needs >= 2 partitions.
  void reduce();
  bool reduced() const { return reduced_; }
  // Whether the current (or last) step runs the fused kernels (decided at its first accumulate()).
  bool step_fused() const { return step_fused_; }
  // Multiplies each .grad by its multiplier (r, or the GSNR momentum p^), advancing the momentum, and starts
  // the next step's statistics. Called by the VR optimizer's step() after reduce().
  void apply();

  // Statistics of the next reduce() (host reads: one device sync per tensor). Cleared by reduce().
  void request_stats() { want_stats_ = true; }
  const std::vector<GsnrTensorStats>& last_stats() const { return stats_; }

  // The clamped r of the last reduce() and the multipliers of the last apply(), per parameter (undefined
  // for a parameter without a gradient). For tests and inspection.
  const std::vector<Tensor>& ratios() const { return ratio_; }
  const std::vector<Tensor>& multipliers() const { return multiplier_; }

  const GsnrOptions& options() const { return options_; }
  const std::vector<Tensor>& params() const { return params_; }

  // The GSNR momentum buffers and counts, for checkpoints: "param<i>.gsnr_momentum", "param<i>.gsnr_step".
  NamedTensors state_tensors() const;
  // Restores state_tensors(); throws listing missing/unexpected/mismatched names.
  void load_state_tensors(const NamedTensors& state);

 private:
  std::string label(size_t i) const;
  void clear_step();
  bool fusable() const;  // every parameter shares dtype and device, which has the fused kernels
  void reduce_reference();
  void reduce_fused();
  void apply_reference();
  void apply_fused();

  std::vector<Tensor> params_;
  std::vector<std::string> names_;
  GsnrOptions options_;
  double beta3_ = 0;
  // per parameter: sum of g_d, sum of g_d^2; after reduce() the sum is the .grad and sq holds the
  // momentum input (reference) or the raw/normalised r, then the multiplier (fused)
  std::vector<Tensor> sum_, sq_;
  std::vector<int64_t> count_;  // partitions that reached each parameter (local)
  std::vector<Tensor> ratio_, multiplier_;
  std::vector<Tensor> momentum_;        // GSNR momentum p
  std::vector<int64_t> momentum_step_;  // its t
  int64_t partitions_ = 0, world_ = 1;
  bool reduced_ = false, want_stats_ = false;
  bool step_fused_ = false;  // this step runs the fused kernels (decided at its first accumulate())
  std::vector<GsnrTensorStats> stats_;
};

// Micro-batch mode, one optimizer step's forward/backward passes: splits `batch_size` examples into k equal
// parts (k must divide it) and, for each, calls loss_of(start, length) (a forward pass over those examples
// returning the part's mean loss), back-propagates it and accumulates it into `gsnr`. Returns the mean of
// the part losses (the loss of the whole batch for a mean loss). Clears gradients first.
double accumulate_micro_batches(Gsnr& gsnr, int64_t batch_size, int64_t k,
                                const std::function<Tensor(int64_t start, int64_t length)>& loss_of);

}  // namespace nabla::vrgd
