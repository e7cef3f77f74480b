// GSNR statistics for VRGD: the maths and the design are in gsnr.h.
//
// Two paths. Fused (default when every parameter shares dtype and device): the multi-tensor kernels of
// ops/gsnr_kernels.h, one call per accumulate(), reduce() and apply() for all tensors; on CUDA a step is 1
// launch per partition + 3 (reduce; +1 in global scope, +1 with statistics) + 1 (apply), whatever the
// number of tensors (up to 320 per launch). Reference (fused = false, or mixed dtypes/devices): tensor ops
// per parameter: accumulate 2-3 launches per partition (add, square, add); reduce about 9 (scale sum and
// squares, square of the mean, variance, floor, ratio, mean, normalise, clamp); apply 1 (3 more with GSNR
// momentum). Both do no host reads unless statistics are requested. The fused path reuses the buffers
// instead of allocating per op: the sum becomes the .grad, sq receives the raw r (then the normalised r
// when that is the momentum input, then the multiplier), and only the ratio (and the momentum on its
// first update) is allocated per tensor.
#include "algorithms/vrgd/gsnr.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "autograd/autograd.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/gsnr_kernels.h"
#include "ops/reduce.h"
#include "ops/util.h"

namespace nabla::vrgd {

namespace {
// Turns 0/0 into 0 (a gradient that is zero on every partition); far below any f32 variance that matters.
constexpr double kTiny = 1e-30;

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}
}  // namespace

Gsnr::Gsnr(std::vector<Tensor> params, std::vector<std::string> names, GsnrOptions options)
    : params_(std::move(params)), names_(std::move(names)), options_(options) {
  NABLA_CHECK(!params_.empty(), "GSNR: no parameters");
  NABLA_CHECK(names_.empty() || names_.size() == params_.size(), "GSNR: ", names_.size(), " names for ",
              params_.size(), " parameters");
  NABLA_CHECK(options_.gamma > 0 && options_.gamma <= 1, "GSNR: gamma must be in (0, 1], got ",
              options_.gamma);
  NABLA_CHECK(options_.eps > 0 && options_.eps < 1, "GSNR: eps must be in (0, 1), got ", options_.eps);
  NABLA_CHECK(options_.beta3.has_value(), "GSNR: beta3 must be resolved (the VR optimizer sets its default)");
  beta3_ = *options_.beta3;
  NABLA_CHECK(beta3_ >= 0 && beta3_ < 1, "GSNR: beta3 must be in [0, 1), got ", beta3_);
  for (size_t i = 0; i < params_.size(); ++i) {
    NABLA_CHECK(params_[i].defined(), "GSNR: ", label(i), " is undefined");
    NABLA_CHECK(is_floating(params_[i].dtype()), "GSNR: ", label(i), " has dtype ", params_[i].dtype(),
                ", expected a floating type");
  }
  const size_t n = params_.size();
  sum_.resize(n);
  sq_.resize(n);
  count_.assign(n, 0);
  ratio_.resize(n);
  multiplier_.resize(n);
  momentum_.resize(n);
  momentum_step_.assign(n, 0);
}

std::string Gsnr::label(size_t i) const {
  return i < names_.size() ? str_cat("param ", i, " (", names_[i], ")") : str_cat("param ", i);
}

void Gsnr::clear_step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    sum_[i] = Tensor();
    sq_[i] = Tensor();
    count_[i] = 0;
  }
  partitions_ = 0;
  world_ = 1;
  reduced_ = false;
}

bool Gsnr::fusable() const {
  if (!options_.fused) return false;
  const Tensor& first = params_.front();
  for (const Tensor& p : params_)
    if (p.dtype() != first.dtype() || p.device() != first.device()) return false;
  return ops::gsnr_accumulate_kernel.has(first.device()) && ops::gsnr_reduce_kernel.has(first.device()) &&
         ops::gsnr_apply_kernel.has(first.device());
}

void Gsnr::accumulate() {
  NABLA_CHECK(!reduced_, "GSNR: accumulate() after reduce() and before the optimizer step");
  NABLA_CHECK(world_ == 1, "GSNR: accumulate() after all_reduce() in the same step");
  NoGradGuard no_grad;
  if (partitions_ == 0) step_fused_ = fusable();
  std::vector<ops::GsnrAccumulateTensor> batch;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = params_[i].grad();
    if (!g.defined()) continue;
    NABLA_CHECK(g.shape() == params_[i].shape() && g.dtype() == params_[i].dtype(), "GSNR: ", label(i),
                " is ", params_[i].shape(), " ", params_[i].dtype(), " but its grad is ", g.shape(), " ",
                g.dtype());
    if (step_fused_) {
      const bool first = count_[i] == 0;
      if (first) {
        // The gradient is dropped from the parameter below, so it can serve as the sum buffer (no copy).
        sum_[i] = g.is_non_overlapping_and_dense() ? g : g.contiguous();
        sq_[i] = ops::empty_preserving(sum_[i]);
        g = sum_[i];
      } else if (!ops::same_dense_layout(g, sum_[i])) {  // the kernels index all three as one flat array
        Tensor t = ops::empty_preserving(sum_[i]);
        t.copy_(g);
        g = t;
      }
      batch.push_back({g, sum_[i], sq_[i], first});
    } else if (count_[i] == 0) {
      sum_[i] = g.is_contiguous() ? g : g.contiguous();  // as above
      sq_[i] = g * g;
    } else {
      add_(sum_[i], g);
      add_(sq_[i], g * g);
    }
    ++count_[i];
    params_[i].zero_grad();
  }
  if (!batch.empty()) ops::gsnr_accumulate_kernel.get(batch.front().grad.device(), "gsnr accumulate")(batch);
  ++partitions_;
}

void Gsnr::all_reduce(const AllReduceSum& all_reduce_sum, int64_t world_size) {
  NABLA_CHECK(world_size >= 1, "GSNR: all_reduce: world_size must be >= 1, got ", world_size);
  NABLA_CHECK(partitions_ >= 1, "GSNR: all_reduce() before accumulate()");
  NABLA_CHECK(!reduced_ && world_ == 1, "GSNR: all_reduce() called twice in one step");
  std::vector<Tensor> buffers;
  for (size_t i = 0; i < params_.size(); ++i)
    if (count_[i] > 0) buffers.push_back(sum_[i]);
  for (size_t i = 0; i < params_.size(); ++i)
    if (count_[i] > 0) buffers.push_back(sq_[i]);
  all_reduce_sum(buffers);
  world_ = world_size;
  partitions_ *= world_size;
}

void Gsnr::reduce() {
  NABLA_CHECK(!reduced_, "GSNR: reduce() called twice in one step");
  NABLA_CHECK(partitions_ >= 2,
              "GSNR: needs at least 2 partitions of the batch per step (micro-batches or "
              "ranks), got ",
              partitions_);
  const int64_t local = partitions_ / world_;
  for (size_t i = 0; i < params_.size(); ++i)
    NABLA_CHECK(count_[i] == 0 || count_[i] == local, "GSNR: ", label(i), " got a gradient in ", count_[i],
                " of ", local, " partitions; a parameter needs one in every partition or in none");
  NoGradGuard no_grad;
  stats_.clear();
  if (step_fused_)
    reduce_fused();
  else
    reduce_reference();
  want_stats_ = false;
  reduced_ = true;
}

void Gsnr::reduce_fused() {
  std::vector<ops::GsnrReduceTensor> batch;
  std::vector<size_t> index;
  for (size_t i = 0; i < params_.size(); ++i) {
    ratio_[i] = Tensor();
    if (count_[i] == 0) continue;
    ratio_[i] = ops::empty_preserving(sum_[i]);
    batch.push_back({sum_[i], sq_[i], ratio_[i]});
    index.push_back(i);
  }
  if (batch.empty()) return;
  const Device dev = batch.front().sum.device();
  const ops::GsnrReduceConfig config{
      .partitions = partitions_,
      .eps = options_.eps,
      .gamma = options_.gamma,
      .global_scope = options_.scope == GsnrScope::kGlobal,
      .write_normalized = beta3_ > 0 && options_.momentum_input == GsnrMomentumInput::kNormalized};
  Tensor stats;
  if (want_stats_) stats = Tensor::empty(Shape{static_cast<int64_t>(batch.size()), 3}, DType::f64, dev);
  ops::gsnr_reduce_kernel.get(dev, "gsnr reduce")(config, batch, stats);
  for (size_t j = 0; j < index.size(); ++j) params_[index[j]].set_grad(sum_[index[j]]);
  if (!want_stats_) return;
  const Tensor host = stats.to(Device::cpu()).contiguous();  // the one host read (a device sync)
  const double* v = static_cast<const double*>(host.data_ptr());
  for (size_t j = 0; j < index.size(); ++j) {
    const size_t i = index[j];
    GsnrTensorStats s;
    s.name = i < names_.size() ? names_[i] : str_cat("param", i);
    s.numel = ratio_[i].numel();
    const double n = static_cast<double>(s.numel);
    s.mean_ratio = v[3 * j] / n;
    s.frac_at_gamma = v[3 * j + 1] / n;
    s.frac_at_one = v[3 * j + 2] / n;
    stats_.push_back(std::move(s));
  }
}

void Gsnr::reduce_reference() {
  const double inv_k = 1.0 / static_cast<double>(partitions_);
  std::vector<Tensor> raw(params_.size());  // r before normalisation
  for (size_t i = 0; i < params_.size(); ++i) {
    ratio_[i] = Tensor();
    if (count_[i] == 0) continue;
    Tensor& mean_g = mul_(sum_[i], inv_k);
    Tensor& mean_sq = mul_(sq_[i], inv_k);
    Tensor g2 = mean_g * mean_g;
    Tensor var = clamp(mean_sq - g2, 0.0);
    raw[i] = g2 / (add(var, mean_sq, options_.eps) + kTiny);
    params_[i].set_grad(mean_g);
  }
  // Normalise to mean 1 (eq. 8): per tensor, or over every element of the model.
  Tensor global_mean;
  if (options_.scope == GsnrScope::kGlobal) {
    Tensor total;
    int64_t n = 0;
    for (const Tensor& r : raw) {
      if (!r.defined()) continue;
      Tensor s = sum(r.to(DType::f32));
      total = total.defined() ? total + s : s;
      n += r.numel();
    }
    if (total.defined()) global_mean = total / static_cast<double>(n);
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!raw[i].defined()) continue;
    Tensor m = options_.scope == GsnrScope::kGlobal ? global_mean.to(raw[i].dtype()) : mean(raw[i]);
    Tensor normalised = raw[i] / (m + kTiny);
    ratio_[i] = clamp(normalised, options_.gamma, 1.0);
    if (beta3_ > 0 && options_.momentum_input == GsnrMomentumInput::kNormalized) raw[i] = normalised;
    if (want_stats_) {
      GsnrTensorStats s;
      s.name = i < names_.size() ? names_[i] : str_cat("param", i);
      s.numel = normalised.numel();
      s.mean_ratio = mean(ratio_[i]).item();
      s.frac_at_gamma = mean(lt(normalised, scalar_like(options_.gamma, normalised)).to(DType::f32)).item();
      s.frac_at_one = mean(gt(normalised, scalar_like(1.0, normalised)).to(DType::f32)).item();
      stats_.push_back(std::move(s));
    }
  }
  // The momentum input: the clamped r (default) or the normalised r kept in raw[] above.
  for (size_t i = 0; i < params_.size(); ++i)
    if (raw[i].defined() && !(beta3_ > 0 && options_.momentum_input == GsnrMomentumInput::kNormalized))
      raw[i] = ratio_[i];
  sq_ = std::move(raw);  // the squares are spent; keep the momentum input until apply()
}

void Gsnr::apply() {
  NABLA_CHECK(reduced_, "GSNR: apply() before reduce()");
  NoGradGuard no_grad;
  if (step_fused_)
    apply_fused();
  else
    apply_reference();
  clear_step();
}

void Gsnr::apply_fused() {
  const bool momentum = beta3_ > 0;
  const bool normalized_input = momentum && options_.momentum_input == GsnrMomentumInput::kNormalized;
  std::vector<ops::GsnrApplyTensor> batch;
  for (size_t i = 0; i < params_.size(); ++i) {
    multiplier_[i] = Tensor();
    if (!ratio_[i].defined()) continue;
    Tensor grad = params_[i].grad();
    NABLA_CHECK(grad.defined(), "GSNR: ", label(i), " lost its gradient between reduce() and the step");
    NABLA_CHECK(grad.shape() == ratio_[i].shape() && grad.dtype() == ratio_[i].dtype(), "GSNR: ", label(i),
                "'s gradient became ", grad.shape(), " ", grad.dtype(),
                " between reduce() and the step, expected ", ratio_[i].shape(), " ", ratio_[i].dtype());
    if (!ops::same_dense_layout(grad, ratio_[i])) {  // replaced (e.g. by clipping) in another layout
      Tensor t = ops::empty_preserving(ratio_[i]);
      t.copy_(grad);
      grad = t;
      params_[i].set_grad(grad);
    }
    ops::GsnrApplyTensor t;
    t.grad = grad;
    t.input = normalized_input ? sq_[i] : ratio_[i];
    if (momentum) {
      t.first = !momentum_[i].defined();
      if (t.first) {
        momentum_[i] = ops::empty_preserving(grad);              // written, not read, on the first update
      } else if (!ops::same_dense_layout(momentum_[i], grad)) {  // e.g. restored from a checkpoint
        Tensor m = ops::empty_preserving(grad);
        m.copy_(momentum_[i]);
        momentum_[i] = m;
      }
      t.momentum = momentum_[i];
      t.multiplier = sq_[i];  // the raw r is spent (with a normalised input: read, then overwritten)
      t.step = ++momentum_step_[i];
    }
    multiplier_[i] = momentum ? sq_[i] : ratio_[i];
    batch.push_back(std::move(t));
  }
  if (batch.empty()) return;
  const ops::GsnrApplyConfig config{
      .gamma = options_.gamma, .beta3 = beta3_, .bias_correction = options_.bias_correction};
  ops::gsnr_apply_kernel.get(batch.front().grad.device(), "gsnr apply")(config, batch);
}

void Gsnr::apply_reference() {
  for (size_t i = 0; i < params_.size(); ++i) {
    multiplier_[i] = Tensor();
    if (!ratio_[i].defined()) continue;
    Tensor grad = params_[i].grad();
    NABLA_CHECK(grad.defined(), "GSNR: ", label(i), " lost its gradient between reduce() and the step");
    Tensor mult = ratio_[i];
    if (beta3_ > 0) {
      if (!momentum_[i].defined()) momentum_[i] = zeros_like(params_[i]);
      ++momentum_step_[i];
      Tensor& p = mul_(momentum_[i], beta3_);
      add_(p, sq_[i], 1.0 - beta3_);
      const double bias =
          options_.bias_correction ? 1.0 - std::pow(beta3_, static_cast<double>(momentum_step_[i])) : 1.0;
      mult = clamp(bias == 1.0 ? p : p * (1.0 / bias), options_.gamma, 1.0);
    }
    mul_(grad, mult);
    multiplier_[i] = mult;
  }
}

NamedTensors Gsnr::state_tensors() const {
  NoGradGuard no_grad;
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (momentum_step_[i] == 0) continue;
    out.emplace_back(str_cat("param", i, ".gsnr_step"),
                     from_vector({static_cast<double>(momentum_step_[i])}, {}, {.dtype = DType::i64}));
    out.emplace_back(str_cat("param", i, ".gsnr_momentum"), momentum_[i].clone());
  }
  return out;
}

void Gsnr::load_state_tensors(const NamedTensors& state) {
  NoGradGuard no_grad;
  std::vector<std::string> unexpected, mismatched, missing;
  std::vector<Tensor> momentum(params_.size());
  std::vector<int64_t> steps(params_.size(), 0);
  std::set<std::string> seen;
  for (const auto& [name, t] : state) {
    size_t i = 0;
    int used = 0;
    if (!seen.insert(name).second || !t.defined() ||
        std::sscanf(name.c_str(), "param%zu.%n", &i, &used) != 1 || used == 0 || i >= params_.size()) {
      unexpected.push_back(name);
      continue;
    }
    const std::string key = name.substr(used);
    if (key == "gsnr_step" && t.numel() == 1 && t.item<int64_t>() >= 1) {
      steps[i] = t.item<int64_t>();
    } else if (key == "gsnr_momentum" && t.shape() == params_[i].shape() && t.dtype() == params_[i].dtype()) {
      momentum[i] = empty_like(params_[i]);
      momentum[i].copy_(t);
    } else if (key == "gsnr_step" || key == "gsnr_momentum") {
      mismatched.push_back(str_cat(name, " (", t.shape(), " ", t.dtype(), ")"));
    } else {
      unexpected.push_back(name);
    }
  }
  for (size_t i = 0; i < params_.size(); ++i)
    if ((steps[i] > 0) != momentum[i].defined())
      missing.push_back(str_cat("param", i, steps[i] > 0 ? ".gsnr_momentum" : ".gsnr_step"));
  NABLA_CHECK(missing.empty() && unexpected.empty() && mismatched.empty(),
              "GSNR: load_state_tensors: missing [", join(missing), "], unexpected [", join(unexpected),
              "], mismatched [", join(mismatched), "]");
  momentum_ = std::move(momentum);
  momentum_step_ = std::move(steps);
}

double accumulate_micro_batches(Gsnr& gsnr, int64_t batch_size, int64_t k,
                                const std::function<Tensor(int64_t start, int64_t length)>& loss_of) {
  // k = 1 is a data-parallel rank's share (the statistics are then summed over ranks before reduce(),
  // which checks that the step saw >= 2 partitions in all).
  NABLA_CHECK(k >= 1, "VRGD micro-batches: need k >= 1 partitions, got ", k);
  NABLA_CHECK(batch_size % k == 0, "VRGD micro-batches: the batch of ", batch_size, " does not split into ",
              k, " equal partitions");
  for (const Tensor& p : gsnr.params()) p.zero_grad();
  const int64_t part = batch_size / k;
  Tensor total;
  for (int64_t d = 0; d < k; ++d) {
    Tensor loss = loss_of(d * part, part);
    NABLA_CHECK(loss.defined() && loss.numel() == 1, "VRGD micro-batches: the loss of partition ", d,
                " must be a scalar, got ", loss.defined() ? str_cat(loss.shape()) : std::string("undefined"));
    loss.backward();
    gsnr.accumulate();
    Tensor l = loss.detach();
    total = total.defined() ? total + l : l;
  }
  return total.item() / static_cast<double>(k);
}

}  // namespace nabla::vrgd
