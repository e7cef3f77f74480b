// Autocast: the thread-local state, the guard and the cast policy (described in ops/autocast.h).
#include "ops/autocast.h"

#include <map>
#include <utility>

#include "autograd/autograd.h"

namespace nabla {
namespace {

// A cached cast of a leaf weight. The source tensor and its storage as they were are both kept alive, so
// neither address can be reused while the entry lives: a weight whose data was replaced (Module::to,
// set_data) has another data address and is cast again.
struct CastEntry {
  Tensor src, storage;  // the weight, and a detached view holding the storage it had
  const void* data = nullptr;
  Tensor cast;
};

struct AutocastState {
  bool enabled = false;
  DType dtype = DType::bf16;
  int depth = 0;  // AutocastGuards alive; the cache is dropped when the outermost one ends
  std::map<std::pair<const TensorImpl*, DType>, CastEntry> cache;
};
thread_local AutocastState t_autocast;

// PyTorch's rule for caching a cast: an f32 leaf that requires grad (a weight), with grad mode on.
bool cacheable(const Tensor& x) {
  return x.dtype() == DType::f32 && x.requires_grad() && x.is_leaf() && autograd::grad_enabled();
}

bool is_half(DType t) { return t == DType::bf16 || t == DType::f16; }

}  // namespace

bool autocast_enabled() { return t_autocast.enabled; }
DType autocast_dtype() { return t_autocast.dtype; }
void set_autocast_enabled(bool on) {
  t_autocast.enabled = on;
  if (!on) clear_autocast_cache();
}

void clear_autocast_cache() { t_autocast.cache.clear(); }

size_t autocast_cache_size() { return t_autocast.cache.size(); }

void set_autocast_dtype(DType dtype) {
  NABLA_CHECK(is_half(dtype), "autocast: the lower-precision dtype must be bf16 or f16, got ", dtype);
  t_autocast.dtype = dtype;
}

AutocastGuard::AutocastGuard(DType dtype, bool enabled)
    : prev_enabled_(t_autocast.enabled), prev_dtype_(t_autocast.dtype) {
  set_autocast_dtype(dtype);
  t_autocast.enabled = enabled;
  ++t_autocast.depth;
}

AutocastGuard::~AutocastGuard() {
  t_autocast.enabled = prev_enabled_;
  t_autocast.dtype = prev_dtype_;
  if (--t_autocast.depth == 0) clear_autocast_cache();
}

Tensor autocast_input(const Tensor& x, AutocastKind kind) {
  if (!t_autocast.enabled || !x.defined() || !x.device().is_cuda()) return x;
  switch (kind) {
    case AutocastKind::lower_precision: {  // f32 and the other 16-bit type (as torch); f64 is left alone
      if (!(x.dtype() == DType::f32 || (is_half(x.dtype()) && x.dtype() != t_autocast.dtype))) return x;
      if (t_autocast.depth == 0 || !cacheable(x)) return x.to(t_autocast.dtype);
      CastEntry& e = t_autocast.cache[{x.impl(), t_autocast.dtype}];
      const void* data = x.data_ptr();
      if (!e.cast.defined() || e.data != data) e = CastEntry{x, x.detach(), data, x.to(t_autocast.dtype)};
      return e.cast;
    }
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
