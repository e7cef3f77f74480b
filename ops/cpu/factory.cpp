// CPU kernels for ranges and Philox random draws (element i depends only on seed, offset and i).
#include <cmath>

#include "ops/cpu/loops.h"
#include "ops/factory.h"

namespace nabla::ops::cpu {
namespace {

void random_cpu(Tensor& dst, RandomKind kind, uint64_t seed, uint64_t offset, double a, double b) {
  const int64_t n = dst.numel();
  visit_dtype(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* p = base<T>(dst);
#pragma omp parallel for if (n >= kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double v = 0;
      switch (kind) {
        case RandomKind::uniform:
          v = a + (b - a) * philox_uniform(seed, offset, i);
          break;
        case RandomKind::normal:
          v = a + b * philox_normal(seed, offset, i);
          break;
        case RandomKind::randint: {
          uint64_t range = static_cast<uint64_t>(b - a);
          v = a + static_cast<double>(philox_bits64(seed, offset, i) % range);
          break;
        }
      }
      T t = from_double<T>(v);
      // Rounding a double just below `b` to f32 can give `b` itself; uniform draws stay in [a, b).
      if constexpr (std::is_same_v<T, float>)
        if (kind == RandomKind::uniform && a < b && t >= static_cast<float>(b))
          t = std::nextafter(static_cast<float>(b), static_cast<float>(a));
      p[i] = t;
    }
  });
}

void arange_cpu(Tensor& dst, double start, double step) {
  const int64_t n = dst.numel();
  visit_dtype(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* p = base<T>(dst);
    for (int64_t i = 0; i < n; ++i) p[i] = from_double<T>(start + static_cast<double>(i) * step);
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(random_kernel, cpu, random_cpu);
NABLA_REGISTER_KERNEL(arange_kernel, cpu, arange_cpu);

}  // namespace nabla::ops::cpu
