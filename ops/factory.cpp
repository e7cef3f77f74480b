// Factories: allocation plus a fill, range or random kernel of the target device.
#include "ops/factory.h"

#include "engine/memory.h"

#include <cmath>

#include "ops/elementwise.h"
#include "ops/util.h"

namespace nabla {
using namespace ops;

namespace {
Tensor finish(Tensor t, const TensorOptions& o) {
  if (o.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor random_tensor(const Shape& shape, RandomKind kind, double a, double b, TensorOptions o, Generator* gen,
                     const char* op) {
  check_random_not_captured(op);
  Tensor t = Tensor::empty(shape, o.dtype, o.device);
  Generator& g = gen ? *gen : default_generator();
  uint64_t at = g.advance(t.numel());
  random_kernel.get(o.device, op)(t, kind, g.seed, at, a, b);
  if (o.memory_format != MemoryFormat::Contiguous) t = ops::contiguous_raw(t, op, o.memory_format);
  return finish(t, o);
}
}  // namespace

Tensor empty(const Shape& shape, TensorOptions o) {
  return finish(Tensor::empty(shape, o.dtype, o.device, o.memory_format), o);
}
Tensor zeros(const Shape& shape, TensorOptions o) { return full(shape, 0.0, o); }
Tensor ones(const Shape& shape, TensorOptions o) { return full(shape, 1.0, o); }

Tensor full(const Shape& shape, double value, TensorOptions o) {
  Tensor t = Tensor::empty(shape, o.dtype, o.device, o.memory_format);
  fill_kernel.get(o.device, "full")(t, value);
  return finish(t, o);
}

Tensor arange(double start, double end, double step, TensorOptions o) {
  NABLA_CHECK(step != 0.0, "arange: step must be non-zero");
  NABLA_CHECK((end - start) / step >= 0, "arange: range [", start, ", ", end,
              ") is empty or reversed for step ", step);
  int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  Tensor t = Tensor::empty({n}, o.dtype, o.device);
  arange_kernel.get(o.device, "arange")(t, start, step);
  return finish(t, o);
}

Tensor arange(int64_t end, TensorOptions o) { return arange(0.0, static_cast<double>(end), 1.0, o); }

Tensor linspace(double start, double end, int64_t steps, TensorOptions o) {
  NABLA_CHECK(steps >= 0, "linspace: steps must be >= 0, got ", steps);
  Tensor t = Tensor::empty({steps}, o.dtype, o.device);
  arange_kernel.get(o.device, "linspace")(t, start,
                                          steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0);
  return finish(t, o);
}

Tensor rand(const Shape& shape, TensorOptions o, Generator* gen) {
  return random_tensor(shape, RandomKind::uniform, 0.0, 1.0, o, gen, "rand");
}
Tensor randn(const Shape& shape, TensorOptions o, Generator* gen) {
  return random_tensor(shape, RandomKind::normal, 0.0, 1.0, o, gen, "randn");
}
Tensor uniform(const Shape& shape, double lo, double hi, TensorOptions o, Generator* gen) {
  NABLA_CHECK(lo <= hi, "uniform: lo ", lo, " > hi ", hi);
  return random_tensor(shape, RandomKind::uniform, lo, hi, o, gen, "uniform");
}
Tensor normal(const Shape& shape, double mean, double stddev, TensorOptions o, Generator* gen) {
  NABLA_CHECK(stddev >= 0, "normal: stddev must be >= 0, got ", stddev);
  return random_tensor(shape, RandomKind::normal, mean, stddev, o, gen, "normal");
}
Tensor randint(int64_t lo, int64_t hi, const Shape& shape, TensorOptions o, Generator* gen) {
  NABLA_CHECK(lo < hi, "randint: empty range [", lo, ", ", hi, ")");
  return random_tensor(shape, RandomKind::randint, static_cast<double>(lo), static_cast<double>(hi), o, gen,
                       "randint");
}

Tensor from_vector(const std::vector<double>& values, const Shape& shape, TensorOptions o) {
  NABLA_CHECK(static_cast<int64_t>(values.size()) == numel_of(shape), "from_vector: ", values.size(),
              " values for shape ", shape, " (", numel_of(shape), " elements)");
  memory::CreatorScope creator("from_vector");  // live-tensor snapshots (engine/memory.h)
  Tensor host = Tensor::empty(shape, DType::f64, Device::cpu());
  std::copy(values.begin(), values.end(), host.data<double>());
  Tensor t = Tensor::empty(shape, o.dtype, o.device);
  t.copy_(host);
  return finish(t, o);
}

Tensor empty_like(const Tensor& t) { return ops::empty_preserving(t); }
Tensor full_like(const Tensor& t, double v) {
  Tensor r = ops::empty_preserving(t);
  fill_kernel.get(t.device(), "full_like")(r, v);
  return r;
}
Tensor zeros_like(const Tensor& t) { return full_like(t, 0.0); }
Tensor ones_like(const Tensor& t) { return full_like(t, 1.0); }

namespace {
Tensor& random_inplace(Tensor& t, RandomKind kind, double a, double b, Generator* gen, const char* op) {
  NABLA_CHECK(!autograd::grad_enabled() || !t.requires_grad(), op,
              ": in-place fill of a tensor that requires grad; do it under NoGradGuard");
  check_random_not_captured(op);
  Tensor dst = t.is_contiguous() ? t : Tensor::empty(t.shape(), t.dtype(), t.device());
  Generator& g = gen ? *gen : default_generator();
  random_kernel.get(t.device(), op)(dst, kind, g.seed, g.advance(t.numel()), a, b);
  if (!dst.is_same(t)) t.copy_(dst);
  return t;
}
}  // namespace

Tensor& uniform_(Tensor& t, double lo, double hi, Generator* gen) {
  return random_inplace(t, RandomKind::uniform, lo, hi, gen, "uniform_");
}
Tensor& normal_(Tensor& t, double mean, double stddev, Generator* gen) {
  return random_inplace(t, RandomKind::normal, mean, stddev, gen, "normal_");
}

}  // namespace nabla
