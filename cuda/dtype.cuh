// DType dispatch for CUDA kernels. The 16-bit floats use CUDA's own types (same bit layout as
// nabla::bf16/f16) and compute in f32: load -> float -> op -> store.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string_view>

#include "engine/dtype.h"

namespace nabla::cuda {

template <class T>
struct Acc {
  using type = T;
};
template <>
struct Acc<__nv_bfloat16> {
  using type = float;
};
template <>
struct Acc<__half> {
  using type = float;
};
template <>
struct Acc<bool> {
  using type = int;
};
template <class T>
using acc_t = typename Acc<T>::type;

template <class T>
__host__ __device__ __forceinline__ acc_t<T> load(T v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v);
  else if constexpr (std::is_same_v<T, __half>) return __half2float(v);
  else return static_cast<acc_t<T>>(v);
}

template <class T, class V>
__host__ __device__ __forceinline__ T store(V v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, __half>) return __float2half(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, bool>) return v != V(0);
  else return static_cast<T>(v);
}

// Float types of the CUDA backend: f32, f64, bf16, f16.
template <class F>
decltype(auto) visit_cuda_float(DType t, std::string_view what, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::bf16: return f(__nv_bfloat16{});
    case DType::f16: return f(__half{});
    default: fail(what, ": dtype ", t, " is not supported on cuda (expected f32, f64, bf16 or f16)");
  }
}

// Every dtype.
template <class F>
decltype(auto) visit_all(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::bf16: return f(__nv_bfloat16{});
    case DType::f16: return f(__half{});
    case DType::i32: return f(int32_t{});
    case DType::i64: return f(int64_t{});
    case DType::u8: return f(uint8_t{});
    case DType::b8: return f(bool{});
  }
  fail("cuda: bad dtype code ", static_cast<int>(t));
}

}  // namespace nabla::cuda
