// Factories: new tensors filled with constants, ranges or random draws.
//
// Random draws use a Philox Generator (engine/random.h): element i of a draw depends only on the seed,
// the generator's offset and i, so results do not depend on the thread count or the backend.
#pragma once
#include "engine/random.h"
#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

struct TensorOptions {
  DType dtype = DType::f32;
  Device device = Device::cpu();
  bool requires_grad = false;
  // ChannelsLast (4-D shapes only) lays the new tensor out N, H, W, C; values are the same either way
  // (random draws are made in row-major order, then placed).
  MemoryFormat memory_format = MemoryFormat::Contiguous;
};

Tensor empty(const Shape& shape, TensorOptions o = {});
Tensor zeros(const Shape& shape, TensorOptions o = {});
Tensor ones(const Shape& shape, TensorOptions o = {});
Tensor full(const Shape& shape, double value, TensorOptions o = {});
// [start, end) in steps of `step`: ceil((end - start) / step) elements.
Tensor arange(double start, double end, double step = 1.0, TensorOptions o = {.dtype = DType::i64});
Tensor arange(int64_t end, TensorOptions o = {.dtype = DType::i64});
// `steps` evenly spaced values from start to end inclusive.
Tensor linspace(double start, double end, int64_t steps, TensorOptions o = {});
Tensor rand(const Shape& shape, TensorOptions o = {}, Generator* gen = nullptr);   // U[0, 1)
Tensor randn(const Shape& shape, TensorOptions o = {}, Generator* gen = nullptr);  // N(0, 1)
Tensor uniform(const Shape& shape, double lo, double hi, TensorOptions o = {}, Generator* gen = nullptr);
Tensor normal(const Shape& shape, double mean, double stddev, TensorOptions o = {}, Generator* gen = nullptr);
// Integers uniform in [lo, hi).
Tensor randint(int64_t lo, int64_t hi, const Shape& shape, TensorOptions o = {.dtype = DType::i64},
               Generator* gen = nullptr);
// A tensor with the given values (row-major), for tests and small constants.
Tensor from_vector(const std::vector<double>& values, const Shape& shape, TensorOptions o = {});

// The *_like factories keep t's layout when it is dense and non-overlapping (a channels-last tensor gives a
// channels-last one), as PyTorch's default memory_format=torch.preserve_format; otherwise row-major.
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor empty_like(const Tensor& t);

// In place: fill `t` with draws (initialisers use these under no_grad).
Tensor& uniform_(Tensor& t, double lo, double hi, Generator* gen = nullptr);
Tensor& normal_(Tensor& t, double mean, double stddev, Generator* gen = nullptr);

}  // namespace nabla

namespace nabla::ops {

enum class RandomKind : uint8_t { uniform, normal, randint };
// dst (contiguous) element i = draw(seed, offset, i) mapped to [a, b) (uniform, randint) or a + b * N(0,1).
using RandomKernelFn = void (*)(Tensor& dst, RandomKind kind, uint64_t seed, uint64_t offset, double a,
                                double b);
// dst (contiguous) element i = start + i * step.
using ArangeKernelFn = void (*)(Tensor& dst, double start, double step);

inline Kernel<RandomKernelFn> random_kernel{"random"};
inline Kernel<ArangeKernelFn> arange_kernel{"arange"};

}  // namespace nabla::ops
