// CPU kernels of the fused optimizer steps (SGD, Adam/AdamW, LARS, LAMB), of the per-tensor L2 norms LARS
// and LAMB need, and of GradScaler's unscale (slots and maths in ops/optim_kernels.h).
//
// Work split: every tensor of the call is cut into chunks of kMultiTensorChunk elements (multi_tensor.h) and
// one OpenMP loop runs over all chunks of all tensors (static schedule), so many small parameters cost one
// fork/join, not one each, and a large one is spread over every thread. Each element is independent, so the
// split does not change any result. f32/f64 compute in their own type; bf16/f16 load to f32, compute, and
// round once when stored. The norms are the exception: each tensor's squares are summed sequentially (the
// order of the CPU reduce kernel for a full reduction, so the norm is bit-for-bit norm(x)), one tensor per
// task.
#include <cmath>

#include "ops/cpu/loops.h"
#include "ops/cpu/multi_tensor.h"
#include "ops/util.h"
#include "ops/optim_kernels.h"

namespace nabla::ops::cpu {
namespace {

void check_member(const char* op, const Tensor& t, const Tensor& param, const char* what) {
  NABLA_CHECK(t.defined() && t.device().is_cpu() && t.dtype() == param.dtype() && same_dense_layout(t, param),
              op, ": ", what, " must be a dense cpu tensor laid out like its parameter ", param.shape(), " ",
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
  for_each_piece(pieces, total, [&](const Piece& pc) {
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
  });
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
  for_each_piece(pieces, total, [&](const Piece& pc) {
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
  });
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

// ---- per-tensor norms ----

template <class T>
void norms_typed(const std::vector<Tensor>& tensors, Tensor& norms) {
  using A = compute_t<T>;
  using N = std::conditional_t<std::is_same_v<T, double>, double, float>;
  N* out = base<N>(norms);
  const int64_t n = static_cast<int64_t>(tensors.size());
  int64_t total = 0;
  for (const Tensor& t : tensors) total += t.numel();
#pragma omp parallel for schedule(dynamic, 1) if (total >= kParallelGrain && n > 1)
  for (int64_t i = 0; i < n; ++i) {
    const T* x = base<T>(tensors[i]);
    const int64_t len = tensors[i].numel();
    double acc = 0;  // sum(x * x): squares rounded to A, summed in f64 in index order
    for (int64_t k = 0; k < len; ++k) {
      const A v = ld(x[k]);
      acc += static_cast<double>(optim_mul(v, v));
    }
    out[i] = std::sqrt(static_cast<N>(acc));  // rounded to the norm's dtype, then sqrt there
  }
}

void multi_tensor_norm_cpu(const std::vector<Tensor>& tensors, Tensor& norms) {
  if (tensors.empty()) return;
  const DType dt = tensors.front().dtype();
  for (const Tensor& t : tensors)
    NABLA_CHECK(t.defined() && t.device().is_cpu() && t.dtype() == dt && t.is_non_overlapping_and_dense(),
                "multi_tensor_norm: tensors must be dense cpu tensors of one dtype, got ", t.shape(), " ",
                t.dtype(), " on ", t.device(), ", first is ", dt);
  NABLA_CHECK(norms.defined() && norms.device().is_cpu() && norms.dtype() == norm_dtype(dt) &&
                  norms.is_contiguous() && norms.numel() == static_cast<int64_t>(tensors.size()),
              "multi_tensor_norm: norms must be a contiguous cpu ", norm_dtype(dt), " tensor of ",
              tensors.size(), " elements, got ", norms.shape(), " ", norms.dtype());
  visit_floating(dt, "multi_tensor_norm", [&](auto zero) { norms_typed<decltype(zero)>(tensors, norms); });
}

// norms[i] as a double (the value norm(x).item() gives).
double norm_at(const Tensor& norms, int64_t i) {
  NABLA_CHECK(norms.defined() && i >= 0 && i < norms.numel(), "fused LARS/LAMB: norm index ", i,
              " out of range of a norms tensor of ", norms.defined() ? norms.numel() : 0, " elements");
  return norms.dtype() == DType::f64 ? base<double>(norms)[i] : static_cast<double>(base<float>(norms)[i]);
}

void check_norms(const char* op, const Tensor& norms, const Tensor& param) {
  NABLA_CHECK(norms.device().is_cpu() && norms.dtype() == norm_dtype(param.dtype()) && norms.is_contiguous(),
              op, ": norms must be a contiguous cpu ", norm_dtype(param.dtype()), " tensor, got ",
              norms.dtype(), " on ", norms.device());
}

// ---- LARS ----

template <class T>
void fused_lars_typed(const LarsConfig& config, const std::vector<LarsTensor>& tensors, const Tensor& norms) {
  using A = compute_t<T>;
  std::vector<int64_t> sizes;
  std::vector<LarsConsts<A>> consts;
  std::vector<A> local_lr;
  for (const LarsTensor& t : tensors) {
    sizes.push_back(t.param.numel());
    consts.push_back(lars_consts<A>(config, t));
    const LarsConsts<A>& c = consts.back();
    local_lr.push_back(static_cast<A>(
        c.w_norm < 0
            ? 1.0
            : lars_local_lr(norm_at(norms, c.w_norm), norm_at(norms, c.g_norm), c.eta, c.wd_d, c.eps)));
  }
  int64_t total = 0;
  const std::vector<Piece> pieces = pieces_of(sizes, &total);
  for_each_piece(pieces, total, [&](const Piece& pc) {
    const LarsTensor& t = tensors[pc.tensor];
    const LarsConsts<A> c = consts[pc.tensor];
    const A llr = local_lr[pc.tensor];
    T* p = base<T>(t.param);
    const T* g = base<T>(t.grad);
    T* b = base<T>(t.momentum_buffer);
    for (int64_t i = pc.begin; i < pc.end; ++i) {
      A pv = ld(p[i]);
      A bv = c.first ? A(0) : ld(b[i]);
      lars_element<A>(pv, ld(g[i]), bv, llr, c);
      p[i] = st<T>(pv);
      b[i] = st<T>(bv);
    }
  });
}

void fused_lars_cpu(const LarsConfig& config, const std::vector<LarsTensor>& tensors, const Tensor& norms) {
  if (tensors.empty()) return;
  const DType dt = tensors.front().param.dtype();
  for (const LarsTensor& t : tensors) {
    NABLA_CHECK(t.param.dtype() == dt, "fused_lars: parameters of one call must share a dtype, got ", dt,
                " and ", t.param.dtype());
    check_member("fused_lars", t.param, t.param, "param");
    check_member("fused_lars", t.grad, t.param, "grad");
    check_member("fused_lars", t.momentum_buffer, t.param, "momentum_buffer");
    NABLA_CHECK((t.w_norm < 0) == (t.g_norm < 0),
                "fused_lars: w_norm and g_norm must both be set or both -1");
    if (t.w_norm >= 0) check_norms("fused_lars", norms, t.param);
  }
  visit_floating(dt, "fused_lars",
                 [&](auto zero) { fused_lars_typed<decltype(zero)>(config, tensors, norms); });
}

// ---- LAMB ----

template <class T>
void lamb_moments_typed(const LambConfig& config, const std::vector<LambTensor>& tensors) {
  using A = compute_t<T>;
  std::vector<int64_t> sizes;
  std::vector<LambConsts<A>> consts;
  for (const LambTensor& t : tensors) {
    sizes.push_back(t.param.numel());
    consts.push_back(lamb_consts<A>(config, t));
  }
  int64_t total = 0;
  const std::vector<Piece> pieces = pieces_of(sizes, &total);
  for_each_piece(pieces, total, [&](const Piece& pc) {
    const LambTensor& t = tensors[pc.tensor];
    const LambConsts<A> c = consts[pc.tensor];
    const T* p = base<T>(t.param);
    const T* g = base<T>(t.grad);
    T* m = base<T>(t.exp_avg);
    T* v = base<T>(t.exp_avg_sq);
    T* u = base<T>(t.update);
    for (int64_t i = pc.begin; i < pc.end; ++i) {
      A mv = ld(m[i]), vv = ld(v[i]), uv;
      lamb_moments_element<A>(ld(p[i]), ld(g[i]), mv, vv, uv, c);
      m[i] = st<T>(mv);
      v[i] = st<T>(vv);
      u[i] = st<T>(uv);
    }
  });
}

void check_lamb(const char* op, const std::vector<LambTensor>& tensors, bool apply) {
  const DType dt = tensors.front().param.dtype();
  for (const LambTensor& t : tensors) {
    NABLA_CHECK(t.param.dtype() == dt, op, ": parameters of one call must share a dtype, got ", dt, " and ",
                t.param.dtype());
    NABLA_CHECK(t.step >= 1, op, ": step must be >= 1, got ", t.step);
    check_member(op, t.param, t.param, "param");
    check_member(op, t.update, t.param, "update");
    if (!apply) {
      check_member(op, t.grad, t.param, "grad");
      check_member(op, t.exp_avg, t.param, "exp_avg");
      check_member(op, t.exp_avg_sq, t.param, "exp_avg_sq");
    }
    NABLA_CHECK((t.w_norm < 0) == (t.u_norm < 0), op, ": w_norm and u_norm must both be set or both -1");
  }
}

void lamb_moments_cpu(const LambConfig& config, const std::vector<LambTensor>& tensors) {
  if (tensors.empty()) return;
  check_lamb("lamb_moments", tensors, false);
  visit_floating(tensors.front().param.dtype(), "lamb_moments",
                 [&](auto zero) { lamb_moments_typed<decltype(zero)>(config, tensors); });
}

template <class T>
void lamb_apply_typed(const std::vector<LambTensor>& tensors, const Tensor& norms) {
  using A = compute_t<T>;
  std::vector<int64_t> sizes;
  std::vector<A> alpha;
  for (const LambTensor& t : tensors) {
    sizes.push_back(t.param.numel());
    alpha.push_back(
        static_cast<A>(t.w_norm < 0 ? lamb_alpha(-t.lr, 0.0, 0.0)
                                    : lamb_alpha(-t.lr, norm_at(norms, t.w_norm), norm_at(norms, t.u_norm))));
  }
  int64_t total = 0;
  const std::vector<Piece> pieces = pieces_of(sizes, &total);
  for_each_piece(pieces, total, [&](const Piece& pc) {
    const LambTensor& t = tensors[pc.tensor];
    const A a = alpha[pc.tensor];
    T* p = base<T>(t.param);
    const T* u = base<T>(t.update);
    for (int64_t i = pc.begin; i < pc.end; ++i) p[i] = st<T>(optim_add(ld(p[i]), optim_mul(a, ld(u[i]))));
  });
}

void lamb_apply_cpu(const std::vector<LambTensor>& tensors, const Tensor& norms) {
  if (tensors.empty()) return;
  check_lamb("lamb_apply", tensors, true);
  for (const LambTensor& t : tensors)
    if (t.w_norm >= 0) check_norms("lamb_apply", norms, t.param);
  visit_floating(tensors.front().param.dtype(), "lamb_apply",
                 [&](auto zero) { lamb_apply_typed<decltype(zero)>(tensors, norms); });
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
    NABLA_CHECK(
        g.defined() && g.device().is_cpu() && is_floating(g.dtype()) && g.is_non_overlapping_and_dense(),
        "amp_unscale: every grad must be a contiguous floating cpu tensor, got ", g.shape(), " ", g.dtype(),
        " on ", g.device());
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
NABLA_REGISTER_KERNEL(multi_tensor_norm_kernel, cpu, multi_tensor_norm_cpu);
NABLA_REGISTER_KERNEL(fused_lars_kernel, cpu, fused_lars_cpu);
NABLA_REGISTER_KERNEL(lamb_moments_kernel, cpu, lamb_moments_cpu);
NABLA_REGISTER_KERNEL(lamb_apply_kernel, cpu, lamb_apply_cpu);

}  // namespace nabla::ops::cpu
