// CUDA kernels for ranges and Philox random draws (element i depends only on seed, offset and i, so the
// draws equal the CPU's: engine/random.h). The CPU twin is ops/cpu/factory.cpp.
#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "engine/random.h"
#include "ops/factory.h"

namespace nabla::cuda {
namespace {

template <class T>
void random_typed(Tensor& dst, ops::RandomKind kind, uint64_t seed, uint64_t offset, double a, double b) {
  {
    T* p = ptr<T>(dst);
    launch_elementwise<1>(dst.shape(), {&dst.strides()}, [=] __device__(const std::array<int64_t, 1>& o) {
      const int64_t i = o[0];  // contiguous: the element index is the offset
      double v;
      if (kind == ops::RandomKind::uniform)
        v = a + (b - a) * philox_uniform(seed, offset, i);
      else if (kind == ops::RandomKind::normal)
        v = a + b * philox_normal(seed, offset, i);
      else
        v = a + static_cast<double>(philox_bits64(seed, offset, i) % static_cast<uint64_t>(b - a));
      T t = store<T>(v);
      if constexpr (std::is_same_v<T, float>)
        if (kind == ops::RandomKind::uniform && a < b && t >= static_cast<float>(b))
          t = nextafterf(static_cast<float>(b), static_cast<float>(a));
      p[i] = t;
    });
  }
}

void random_cuda(Tensor& dst, ops::RandomKind kind, uint64_t seed, uint64_t offset, double a, double b) {
  DeviceGuard g(dst.device().index);
  visit_all(dst.dtype(), [&](auto zero) { random_typed<decltype(zero)>(dst, kind, seed, offset, a, b); });
}

template <class T>
void arange_typed(Tensor& dst, double start, double step) {
  T* p = ptr<T>(dst);
  launch_elementwise<1>(dst.shape(), {&dst.strides()}, [=] __device__(const std::array<int64_t, 1>& o) {
    p[o[0]] = store<T>(start + static_cast<double>(o[0]) * step);
  });
}

void arange_cuda(Tensor& dst, double start, double step) {
  DeviceGuard g(dst.device().index);
  visit_all(dst.dtype(), [&](auto zero) { arange_typed<decltype(zero)>(dst, start, step); });
}

}  // namespace

NABLA_REGISTER_KERNEL(random_kernel, cuda, random_cuda);
NABLA_REGISTER_KERNEL(arange_kernel, cuda, arange_cuda);

}  // namespace nabla::cuda
