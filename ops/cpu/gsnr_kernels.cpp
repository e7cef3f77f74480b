// CPU kernels of VRGD's fused GSNR step (slots and maths in ops/gsnr_kernels.h).
//
// Element passes: every tensor of the call is cut into chunks (multi_tensor.h) and one OpenMP loop runs
// over all chunks of all tensors, so a step's 161 ResNet-50 tensors cost one fork/join per pass. Each
// element is independent, so the split does not change any result.
//
// The per-tensor sums of raw r are the one place where order matters: each tensor's sum is taken
// sequentially in index order in f64 (one tensor per task), which is what the CPU reduce kernel does for a
// full reduction, so the per-tensor and global means are the op-by-op reference's bit for bit (f32, f64).
// This costs a second read of the raw r (a pass over the sq buffers) and gives up the element-level
// parallelism inside one tensor for the sum; the CPU path is for tests and small models, where that is
// cheap. The statistics are per-chunk partials summed per tensor in chunk order (deterministic; they are
// diagnostics, not compared bit for bit).
#include <cmath>

#include "ops/cpu/loops.h"
#include "ops/cpu/multi_tensor.h"
#include "ops/gsnr_kernels.h"
#include "ops/util.h"

namespace nabla::ops::cpu {
namespace {

void check_like(const char* op, const Tensor& t, const Tensor& like, const char* what, size_t i) {
  NABLA_CHECK(t.defined() && t.device().is_cpu() && t.dtype() == like.dtype() && same_dense_layout(t, like),
              op, ": tensor ", i, ": ", what, " must be a dense cpu tensor laid out like ", like.shape(), " ",
              like.dtype(), ", got ",
              t.defined() ? str_cat(t.shape(), " ", t.dtype(), " on ", t.device()) : "undefined");
}

void check_first(const char* op, const Tensor& t, DType dt, size_t i) {
  NABLA_CHECK(t.defined() && t.device().is_cpu() && t.dtype() == dt && t.is_non_overlapping_and_dense(), op,
              ": tensor ", i, " must be a dense cpu tensor of the call's dtype ", dt, ", got ",
              t.defined() ? str_cat(t.shape(), " ", t.dtype(), " on ", t.device()) : "undefined");
}

// ---- accumulate ----

template <class T>
void accumulate_typed(const std::vector<GsnrAccumulateTensor>& tensors) {
  using A = compute_t<T>;
  std::vector<int64_t> sizes;
  for (const auto& t : tensors) sizes.push_back(t.grad.numel());
  int64_t total = 0;
  const std::vector<Piece> pieces = pieces_of(sizes, &total);
  for_each_piece(pieces, total, [&](const Piece& pc) {
    const GsnrAccumulateTensor& t = tensors[pc.tensor];
    const T* g = base<T>(t.grad);
    T* s = base<T>(t.sum);
    T* q = base<T>(t.sq);
    const bool write_sum = !t.first || s != g;
    for (int64_t i = pc.begin; i < pc.end; ++i) {
      A sv = t.first ? A(0) : ld(s[i]), qv = t.first ? A(0) : ld(q[i]);
      gsnr_accumulate_element<A>(ld(g[i]), sv, qv, t.first);
      if (write_sum) s[i] = st<T>(sv);
      q[i] = st<T>(qv);
    }
  });
}

void gsnr_accumulate_cpu(const std::vector<GsnrAccumulateTensor>& tensors) {
  if (tensors.empty()) return;
  const DType dt = tensors.front().grad.dtype();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GsnrAccumulateTensor& t = tensors[i];
    check_first("gsnr_accumulate", t.grad, dt, i);
    check_like("gsnr_accumulate", t.sum, t.grad, "sum", i);
    check_like("gsnr_accumulate", t.sq, t.grad, "sq", i);
  }
  visit_floating(dt, "gsnr_accumulate", [&](auto zero) { accumulate_typed<decltype(zero)>(tensors); });
}

// ---- reduce ----

template <class T>
void reduce_typed(const GsnrReduceConfig& config, const std::vector<GsnrReduceTensor>& tensors,
                  Tensor& stats) {
  using A = compute_t<T>;
  const GsnrReduceConsts<A> c = gsnr_reduce_consts<A>(config);
  const int64_t n = static_cast<int64_t>(tensors.size());
  std::vector<int64_t> sizes;
  for (const auto& t : tensors) sizes.push_back(t.sum.numel());
  int64_t total = 0;
  const std::vector<Piece> pieces = pieces_of(sizes, &total);
  const int64_t np = static_cast<int64_t>(pieces.size());

  // Pass 1: mean gradient and raw r.
  for_each_piece(pieces, total, [&](const Piece& pc) {
    T* s = base<T>(tensors[pc.tensor].sum);
    T* q = base<T>(tensors[pc.tensor].sq);
    for (int64_t i = pc.begin; i < pc.end; ++i) {
      A sv = ld(s[i]), qv = ld(q[i]);
      gsnr_raw_element<A>(sv, qv, c);
      s[i] = st<T>(sv);
      q[i] = st<T>(qv);
    }
  });

  // Per-tensor sums of raw r as stored, sequential in f64 (the CPU reduce kernel's order).
  std::vector<double> sums(static_cast<size_t>(n), 0.0);
#pragma omp parallel for schedule(dynamic, 1) if (total >= kParallelGrain && n > 1)
  for (int64_t i = 0; i < n; ++i) {
    const T* q = base<T>(tensors[i].sq);
    double acc = 0;
    for (int64_t e = 0; e < sizes[i]; ++e) acc += static_cast<double>(ld(q[e]));
    sums[i] = acc;
  }
  std::vector<A> mean_plus_tiny(static_cast<size_t>(n));
  if (config.global_scope) {
    A all = A(0);
    for (int64_t i = 0; i < n; ++i) all = optim_add(all, static_cast<A>(sums[i]));  // total + s, in order
    const A m = optim_add(optim_div(all, static_cast<A>(total)), c.tiny);
    std::fill(mean_plus_tiny.begin(), mean_plus_tiny.end(), m);
  } else {
    for (int64_t i = 0; i < n; ++i) mean_plus_tiny[i] = gsnr_mean_plus_tiny<A>(sums[i], sizes[i]);
  }

  // Pass 2: normalise and clamp; statistics per chunk.
  const bool want_stats = stats.defined();
  std::vector<double> part(want_stats ? 3 * pieces.size() : 0, 0.0);
  for_each_piece(pieces, total, [&](int64_t k, const Piece& pc) {
    const GsnrReduceTensor& t = tensors[pc.tensor];
    const A m = mean_plus_tiny[pc.tensor];
    T* q = base<T>(t.sq);
    T* r = base<T>(t.ratio);
    double ratio_sum = 0, below = 0, above = 0;
    for (int64_t i = pc.begin; i < pc.end; ++i) {
      A normalised, ratio;
      gsnr_ratio_element<A>(ld(q[i]), m, c.gamma, normalised, ratio);
      const T stored = st<T>(ratio);
      r[i] = stored;
      if (config.write_normalized) q[i] = st<T>(normalised);
      if (want_stats) {
        ratio_sum += static_cast<double>(ld(stored));
        below += normalised < c.gamma;
        above += normalised > c.one;
      }
    }
    if (want_stats) {
      part[3 * k] = ratio_sum;
      part[3 * k + 1] = below;
      part[3 * k + 2] = above;
    }
  });
  if (want_stats) {
    double* out = base<double>(stats);
    std::fill(out, out + 3 * n, 0.0);
    for (int64_t k = 0; k < np; ++k)
      for (int j = 0; j < 3; ++j) out[3 * pieces[k].tensor + j] += part[3 * k + j];
  }
}

void check_stats(const Tensor& stats, Device dev, size_t n) {
  if (!stats.defined()) return;
  NABLA_CHECK(stats.device() == dev && stats.dtype() == DType::f64 && stats.is_contiguous() &&
                  stats.numel() == static_cast<int64_t>(3 * n),
              "gsnr_reduce: stats must be a contiguous f64 tensor of ", 3 * n, " elements on ", dev, ", got ",
              stats.shape(), " ", stats.dtype(), " on ", stats.device());
}

void gsnr_reduce_cpu(const GsnrReduceConfig& config, const std::vector<GsnrReduceTensor>& tensors,
                     Tensor& stats) {
  NABLA_CHECK(config.partitions >= 1, "gsnr_reduce: partitions must be >= 1, got ", config.partitions);
  if (tensors.empty()) return;
  const DType dt = tensors.front().sum.dtype();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GsnrReduceTensor& t = tensors[i];
    check_first("gsnr_reduce", t.sum, dt, i);
    check_like("gsnr_reduce", t.sq, t.sum, "sq", i);
    check_like("gsnr_reduce", t.ratio, t.sum, "ratio", i);
  }
  check_stats(stats, Device::cpu(), tensors.size());
  visit_floating(dt, "gsnr_reduce", [&](auto zero) { reduce_typed<decltype(zero)>(config, tensors, stats); });
}

// ---- apply ----

template <class T>
void apply_typed(const GsnrApplyConfig& config, const std::vector<GsnrApplyTensor>& tensors) {
  using A = compute_t<T>;
  std::vector<int64_t> sizes;
  std::vector<GsnrApplyConsts<A>> consts;
  for (const auto& t : tensors) {
    sizes.push_back(t.grad.numel());
    consts.push_back(gsnr_apply_consts<A>(config, t.step, t.first));
  }
  int64_t total = 0;
  const std::vector<Piece> pieces = pieces_of(sizes, &total);
  const auto round = [](A v) { return ld(st<T>(v)); };
  for_each_piece(pieces, total, [&](const Piece& pc) {
    const GsnrApplyTensor& t = tensors[pc.tensor];
    const GsnrApplyConsts<A> c = consts[pc.tensor];
    T* g = base<T>(t.grad);
    const T* in = base<T>(t.input);
    T* p = c.momentum ? base<T>(t.momentum) : nullptr;
    T* m = c.momentum ? base<T>(t.multiplier) : nullptr;
    for (int64_t i = pc.begin; i < pc.end; ++i) {
      A gv = ld(g[i]), pv = p && !c.first ? ld(p[i]) : A(0), mv = A(0);
      gsnr_apply_element<A>(gv, ld(in[i]), pv, mv, c, round);
      g[i] = st<T>(gv);
      if (p) {
        p[i] = st<T>(pv);
        m[i] = st<T>(mv);
      }
    }
  });
}

void gsnr_apply_cpu(const GsnrApplyConfig& config, const std::vector<GsnrApplyTensor>& tensors) {
  NABLA_CHECK(config.beta3 >= 0 && config.beta3 < 1, "gsnr_apply: beta3 must be in [0, 1), got ",
              config.beta3);
  if (tensors.empty()) return;
  const DType dt = tensors.front().grad.dtype();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GsnrApplyTensor& t = tensors[i];
    check_first("gsnr_apply", t.grad, dt, i);
    check_like("gsnr_apply", t.input, t.grad, "input", i);
    if (config.beta3 > 0) {
      NABLA_CHECK(t.step >= 1, "gsnr_apply: tensor ", i, ": step must be >= 1, got ", t.step);
      check_like("gsnr_apply", t.momentum, t.grad, "momentum", i);
      check_like("gsnr_apply", t.multiplier, t.grad, "multiplier", i);
    }
  }
  visit_floating(dt, "gsnr_apply", [&](auto zero) { apply_typed<decltype(zero)>(config, tensors); });
}

}  // namespace

NABLA_REGISTER_KERNEL(gsnr_accumulate_kernel, cpu, gsnr_accumulate_cpu);
NABLA_REGISTER_KERNEL(gsnr_reduce_kernel, cpu, gsnr_reduce_cpu);
NABLA_REGISTER_KERNEL(gsnr_apply_kernel, cpu, gsnr_apply_cpu);

}  // namespace nabla::ops::cpu
