// CPU kernels of the fused optimizer steps and of GradScaler's unscale (slots and maths in
// ops/optim_kernels.h).
//
// Work split: every tensor of the call is cut into chunks of kChunk elements and one OpenMP loop runs over
// all chunks of all tensors (static schedule), so many small parameters cost one fork/join, not one each,
// and a large one is spread over every thread. Each element is independent, so the split does not change
// any result. f32/f64 compute in their own type; bf16/f16 load to f32, compute, and round once when stored.
#include <cmath>

#include "ops/cpu/loops.h"
#include "ops/optim_kernels.h"

namespace nabla::ops::cpu {
namespace {

constexpr int64_t kChunk = 16384;

template <class T>
struct Compute {
  using type = T;
};
template <>
struct Compute<bf16> {
  using type = float;
};
template <>
struct Compute<f16> {
  using type = float;
};
template <class T>
using compute_t = typename Compute<T>::type;

template <class T>
inline compute_t<T> ld(T v) {
  if constexpr (std::is_same_v<T, bf16>)
    return from_bf16(v);
  else if constexpr (std::is_same_v<T, f16>)
    return from_f16(v);
  else
    return v;
}
template <class T>
inline T st(compute_t<T> v) {
  if constexpr (std::is_same_v<T, bf16>)
    return to_bf16(v);
  else if constexpr (std::is_same_v<T, f16>)
    return to_f16(v);
  else
    return v;
}

template <class F>
decltype(auto) visit_floating(DType t, const char* what, F&& f) {
  switch (t) {
    case DType::f32:
      return f(float{});
    case DType::f64:
      return f(double{});
    case DType::bf16:
      return f(bf16{});
    case DType::f16:
      return f(f16{});
    default:
      fail(what, ": dtype ", t, " is not a floating type");
  }
}

struct Piece {
  size_t tensor;
  int64_t begin, end;
};

// The chunks of `sizes`, in order.
std::vector<Piece> pieces_of(const std::vector<int64_t>& sizes, int64_t* total) {
  std::vector<Piece> out;
  *total = 0;
  for (size_t t = 0; t < sizes.size(); ++t) {
    for (int64_t b = 0; b < sizes[t]; b += kChunk) out.push_back({t, b, std::min(sizes[t], b + kChunk)});
    *total += sizes[t];
  }
  return out;
}

void check_member(const char* op, const Tensor& t, const Tensor& param, const char* what) {
  NABLA_CHECK(t.defined() && t.device().is_cpu() && t.dtype() == param.dtype() &&
                  t.shape() == param.shape() && t.is_contiguous(),
              op, ": ", what, " must be a contiguous cpu tensor like its parameter ", param.shape(), " ",
              param.dtype());
}

// ---- SGD ----

template <class T>
void fused_sgd_typed(const SgdConfig& config, const std::vector<SgdTensor>& tensors) {
  using A = compute_t<T>;
  std::vector<int64_t> sizes;
  std::vector<SgdConsts<A>> consts;
  for (const SgdTensor& t : tensors) {
    sizes.push_back(t.param.numel());
    consts.push_back(sgd_consts<A>(sgd_scalars(config, t.lr, t.weight_decay, t.first_update)));
  }
  int64_t total = 0;
  const std::vector<Piece> pieces = pieces_of(sizes, &total);
  const int64_t np = static_cast<int64_t>(pieces.size());
#pragma omp parallel for schedule(static) if (total >= kParallelGrain)
  for (int64_t k = 0; k < np; ++k) {
    const Piece& pc = pieces[k];
    const SgdTensor& t = tensors[pc.tensor];
    const SgdConsts<A> c = consts[pc.tensor];
    T* p = base<T>(t.param);
    const T* g = base<T>(t.grad);
    T* b = c.has_momentum ? base<T>(t.momentum_buffer) : nullptr;
    for (int64_t i = pc.begin; i < pc.end; ++i) {
      A pv = ld(p[i]);
      A bv = b && !c.first ? ld(b[i]) : A(0);
      sgd_element<A>(pv, ld(g[i]), bv, c);
      p[i] = st<T>(pv);
      if (b) b[i] = st<T>(bv);
    }
  }
}

void fused_sgd_cpu(const SgdConfig& config, const std::vector<SgdTensor>& tensors) {
  if (tensors.empty()) return;
  const DType dt = tensors.front().param.dtype();
  for (const SgdTensor& t : tensors) {
    NABLA_CHECK(t.param.dtype() == dt, "fused_sgd: parameters of one call must share a dtype, got ", dt,
                " and ", t.param.dtype());
    check_member("fused_sgd", t.param, t.param, "param");
    check_member("fused_sgd", t.grad, t.param, "grad");
    if (config.momentum != 0) check_member("fused_sgd", t.momentum_buffer, t.param, "momentum_buffer");
  }
  visit_floating(dt, "fused_sgd", [&](auto zero) { fused_sgd_typed<decltype(zero)>(config, tensors); });
}

// ---- Adam ----

template <class T>
void fused_adam_typed(const AdamConfig& config, const std::vector<AdamTensor>& tensors) {
  using A = compute_t<T>;
  std::vector<int64_t> sizes;
  std::vector<AdamConsts<A>> consts;
  for (const AdamTensor& t : tensors) {
    sizes.push_back(t.param.numel());
    consts.push_back(adam_consts<A>(adam_scalars(config, t.lr, t.weight_decay, t.step)));
  }
  int64_t total = 0;
  const std::vector<Piece> pieces = pieces_of(sizes, &total);
  const int64_t np = static_cast<int64_t>(pieces.size());
#pragma omp parallel for schedule(static) if (total >= kParallelGrain)
  for (int64_t k = 0; k < np; ++k) {
    const Piece& pc = pieces[k];
    const AdamTensor& t = tensors[pc.tensor];
    const AdamConsts<A> c = consts[pc.tensor];
    T* p = base<T>(t.param);
    const T* g = base<T>(t.grad);
    T* m = base<T>(t.exp_avg);
    T* v = base<T>(t.exp_avg_sq);
    for (int64_t i = pc.begin; i < pc.end; ++i) {
      A pv = ld(p[i]), mv = ld(m[i]), vv = ld(v[i]);
      adam_element<A>(pv, ld(g[i]), mv, vv, c);
      p[i] = st<T>(pv);
      m[i] = st<T>(mv);
      v[i] = st<T>(vv);
    }
  }
}

void fused_adam_cpu(const AdamConfig& config, const std::vector<AdamTensor>& tensors) {
  if (tensors.empty()) return;
  const DType dt = tensors.front().param.dtype();
  for (const AdamTensor& t : tensors) {
    NABLA_CHECK(t.param.dtype() == dt, "fused_adam: parameters of one call must share a dtype, got ", dt,
                " and ", t.param.dtype());
    NABLA_CHECK(t.step >= 1, "fused_adam: step must be >= 1, got ", t.step);
    check_member("fused_adam", t.param, t.param, "param");
    check_member("fused_adam", t.grad, t.param, "grad");
    check_member("fused_adam", t.exp_avg, t.param, "exp_avg");
    check_member("fused_adam", t.exp_avg_sq, t.param, "exp_avg_sq");
  }
  visit_floating(dt, "fused_adam", [&](auto zero) { fused_adam_typed<decltype(zero)>(config, tensors); });
}

// ---- unscale ----

template <class T>
bool unscale_range(T* g, int64_t begin, int64_t end, double inv_scale) {
  using A = compute_t<T>;
  const A s = static_cast<A>(inv_scale);
  bool bad = false;
  for (int64_t i = begin; i < end; ++i) {
    const A v = ld(g[i]);
    bad |= !std::isfinite(v);
    g[i] = st<T>(v * s);
  }
  return bad;
}

void amp_unscale_cpu(const std::vector<Tensor>& grads, double inv_scale, Tensor& found_inf) {
  NABLA_CHECK(found_inf.defined() && found_inf.device().is_cpu() && found_inf.dtype() == DType::f32 &&
                  found_inf.numel() == 1,
              "amp_unscale: found_inf must be a one-element f32 cpu tensor");
  std::vector<int64_t> sizes;
  for (const Tensor& g : grads) {
    NABLA_CHECK(g.defined() && g.device().is_cpu() && is_floating(g.dtype()) && g.is_contiguous(),
                "amp_unscale: every grad must be a contiguous floating cpu tensor, got ", g.shape(), " ",
                g.dtype(), " on ", g.device());
    sizes.push_back(g.numel());
  }
  int64_t total = 0;
  const std::vector<Piece> pieces = pieces_of(sizes, &total);
  const int64_t np = static_cast<int64_t>(pieces.size());
  bool found = false;
#pragma omp parallel for schedule(static) reduction(|| : found) if (total >= kParallelGrain)
  for (int64_t k = 0; k < np; ++k) {
    const Piece& pc = pieces[k];
    const Tensor& g = grads[pc.tensor];
    const bool bad = visit_floating(g.dtype(), "amp_unscale", [&](auto zero) {
      using T = decltype(zero);
      return unscale_range<T>(base<T>(g), pc.begin, pc.end, inv_scale);
    });
    found = found || bad;
  }
  if (found) *base<float>(found_inf) = 1.0f;
}

}  // namespace

NABLA_REGISTER_KERNEL(fused_sgd_kernel, cpu, fused_sgd_cpu);
NABLA_REGISTER_KERNEL(fused_adam_kernel, cpu, fused_adam_cpu);
NABLA_REGISTER_KERNEL(amp_unscale_kernel, cpu, amp_unscale_cpu);

}  // namespace nabla::ops::cpu
