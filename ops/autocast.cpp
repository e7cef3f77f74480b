// Autocast: the thread-local state, the guard and the cast policy (described in ops/autocast.h).
#include "ops/autocast.h"

namespace nabla {
namespace {

struct AutocastState {
  bool enabled = false;
  DType dtype = DType::bf16;
};
thread_local AutocastState t_autocast;

bool is_half(DType t) { return t == DType::bf16 || t == DType::f16; }

}  // namespace

bool autocast_enabled() { return t_autocast.enabled; }
DType autocast_dtype() { return t_autocast.dtype; }
void set_autocast_enabled(bool on) { t_autocast.enabled = on; }

void set_autocast_dtype(DType dtype) {
  NABLA_CHECK(is_half(dtype), "autocast: the lower-precision dtype must be bf16 or f16, got ", dtype);
  t_autocast.dtype = dtype;
}

AutocastGuard::AutocastGuard(DType dtype, bool enabled)
    : prev_enabled_(t_autocast.enabled), prev_dtype_(t_autocast.dtype) {
  set_autocast_dtype(dtype);
  t_autocast.enabled = enabled;
}

AutocastGuard::~AutocastGuard() {
  t_autocast.enabled = prev_enabled_;
  t_autocast.dtype = prev_dtype_;
}

Tensor autocast_input(const Tensor& x, AutocastKind kind) {
  if (!t_autocast.enabled || !x.defined() || !x.device().is_cuda()) return x;
  switch (kind) {
    case AutocastKind::lower_precision:  // f32 and the other 16-bit type (as torch); f64 is left alone
      return x.dtype() == DType::f32 || (is_half(x.dtype()) && x.dtype() != t_autocast.dtype)
                 ? x.to(t_autocast.dtype)
                 : x;
    case AutocastKind::f32:
      return is_half(x.dtype()) ? x.to(DType::f32) : x;
  }
  return x;
}

void autocast_promote(Tensor& a, Tensor& b) {
  if (!t_autocast.enabled || !a.defined() || !b.defined() || !a.device().is_cuda() || !b.device().is_cuda() ||
      a.dtype() == b.dtype())
    return;
  if (a.dtype() == DType::f32 && is_half(b.dtype()))
    b = b.to(DType::f32);
  else if (b.dtype() == DType::f32 && is_half(a.dtype()))
    a = a.to(DType::f32);
}

}  // namespace nabla
