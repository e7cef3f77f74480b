// Element types and the 16-bit float formats.
//
// f32 and f64 run everywhere (f64 exists for gradient checks); bf16 and f16 are storage types on the CPU
// (cast them to f32 to compute) and compute types on CUDA; i32, i64 hold indices; u8 holds bytes; b8 is
// bool (one byte, 0 or 1).
//
// bf16 is the top half of an IEEE f32 (8 exponent bits, 7 mantissa bits); f16 is IEEE half (5 exponent
// bits, 10 mantissa bits). Both convert from f32 with round-to-nearest-even.
#pragma once
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string_view>

#include "engine/error.h"

namespace nabla {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64, u8, b8 };

inline constexpr int kNumDTypes = 8;

constexpr size_t itemsize(DType t) {
  switch (t) {
    case DType::f32:
      return 4;
    case DType::f64:
      return 8;
    case DType::bf16:
      return 2;
    case DType::f16:
      return 2;
    case DType::i32:
      return 4;
    case DType::i64:
      return 8;
    case DType::u8:
      return 1;
    case DType::b8:
      return 1;
  }
  return 0;
}

constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "f32";
    case DType::f64:
      return "f64";
    case DType::bf16:
      return "bf16";
    case DType::f16:
      return "f16";
    case DType::i32:
      return "i32";
    case DType::i64:
      return "i64";
    case DType::u8:
      return "u8";
    case DType::b8:
      return "bool";
  }
  return "?";
}

constexpr bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16;
}
constexpr bool is_integral(DType t) { return !is_floating(t); }

inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

// ---- 16-bit floats ------------------------------------------------------------------------------
struct bf16 {
  uint16_t bits = 0;
};
struct f16 {
  uint16_t bits = 0;
};

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline bf16 to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x40)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return bf16{static_cast<uint16_t>(u >> 16)};
}
inline float from_bf16(bf16 h) { return f32_from_bits(static_cast<uint32_t>(h.bits) << 16); }

inline f16 to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return f16{static_cast<uint16_t>(sign | 0x7e00u)};   // NaN
  if (abs >= 0x477ff000u) return f16{static_cast<uint16_t>(sign | 0x7c00u)};  // overflow -> inf
  if (abs < 0x38800000u) {                                                    // subnormal or zero
    // value * 2^24 rounded to nearest even gives the subnormal mantissa.
    float v = f32_from_bits(abs) * 16777216.0f;
    uint32_t m = static_cast<uint32_t>(v);
    float rem = v - static_cast<float>(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return f16{static_cast<uint16_t>(sign | m)};
  }
  uint32_t mant_round = abs + 0xfffu + ((abs >> 13) & 1u);  // round to nearest even at bit 13
  uint32_t h = ((mant_round >> 13) - (112u << 10));         // rebias exponent 127 -> 15
  return f16{static_cast<uint16_t>(sign | h)};
}
inline float from_f16(f16 h) {
  uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1fu;
  uint32_t mant = h.bits & 0x3ffu;
  if (exp == 0) {
    float v = static_cast<float>(mant) / 16777216.0f;  // mant * 2^-24
    return sign ? -v : v;
  }
  if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (mant << 13));
  return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

// ---- C++ type <-> DType -------------------------------------------------------------------------
template <class T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::f32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::f64;
};
template <>
struct DTypeOf<bf16> {
  static constexpr DType value = DType::bf16;
};
template <>
struct DTypeOf<f16> {
  static constexpr DType value = DType::f16;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::i32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::i64;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType value = DType::u8;
};
template <>
struct DTypeOf<bool> {
  static constexpr DType value = DType::b8;
};
template <class T>
inline constexpr DType dtype_of = DTypeOf<T>::value;

// Value conversions used by casts and printing: every type goes through double, 16-bit floats
// through float.
template <class T>
inline double to_double(T v) {
  if constexpr (std::is_same_v<T, bf16>)
    return from_bf16(v);
  else if constexpr (std::is_same_v<T, f16>)
    return from_f16(v);
  else
    return static_cast<double>(v);
}
template <class T>
inline T from_double(double v) {
  if constexpr (std::is_same_v<T, bf16>)
    return to_bf16(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, f16>)
    return to_f16(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, bool>)
    return v != 0.0;
  else
    return static_cast<T>(v);
}

// Calls f(T{}) with T the C++ type of `t`. The `what` names the caller in the error for dtypes the
// caller does not accept.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32:
      return f(float{});
    case DType::f64:
      return f(double{});
    case DType::bf16:
      return f(bf16{});
    case DType::f16:
      return f(f16{});
    case DType::i32:
      return f(int32_t{});
    case DType::i64:
      return f(int64_t{});
    case DType::u8:
      return f(uint8_t{});
    case DType::b8:
      return f(bool{});
  }
  fail("visit_dtype: bad dtype code ", static_cast<int>(t));
}

// f32 and f64 only: the compute types of the CPU kernels.
template <class F>
decltype(auto) visit_float(DType t, std::string_view what, F&& f) {
  if (t == DType::f32) return f(float{});
  if (t == DType::f64) return f(double{});
  fail(what, ": dtype ", t, " is not supported on this backend (expected f32 or f64)");
}

// f32, f64, bf16, f16: the floating types (the fused multi-tensor kernels, which compute 16-bit types in
// f32).
template <class F>
decltype(auto) visit_floating(DType t, std::string_view what, F&& f) {
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

// f32, f64, i32, i64, u8, bool: the types element-wise CPU kernels handle.
template <class F>
decltype(auto) visit_arith(DType t, std::string_view what, F&& f) {
  switch (t) {
    case DType::f32:
      return f(float{});
    case DType::f64:
      return f(double{});
    case DType::i32:
      return f(int32_t{});
    case DType::i64:
      return f(int64_t{});
    case DType::u8:
      return f(uint8_t{});
    case DType::b8:
      return f(bool{});
    default:
      fail(what, ": dtype ", t, " is not supported on the CPU (cast bf16/f16 to f32 first)");
  }
}

}  // namespace nabla
