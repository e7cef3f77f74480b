// Checked integer arithmetic for sizes that come from outside the program (file headers, data
// dimensions, command lines): a product that does not fit is an error naming what was being computed,
// never a wrapped number that fails later with nonsense ("features must be positive, got -103079214960").
//
//   int64_t bytes = checked_mul(rows, cols, "idx: train-images: rows x cols");   // throws on overflow
//   int64_t n = checked_product(dims, "idx: dims");                                // every factor >= 0
//
// All functions take and return int64_t (the type of sizes in Nabla) and use the compiler's
// __builtin_*_overflow, so the check costs one flag test.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/error.h"

namespace nabla {

// a * b, or nabla::Error "what: a x b does not fit in 64 bits (overflow)".
inline int64_t checked_mul(int64_t a, int64_t b, std::string_view what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    fail(what, ": ", a, " x ", b, " does not fit in a signed 64-bit size");
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, std::string_view what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    fail(what, ": ", a, " + ", b, " does not fit in a signed 64-bit size");
  return r;
}

// The product of sizes, each of which must be >= 0. A zero anywhere still checks that the other factors'
// product fits: strides of a shape [0, 2^32-1, 2^32-1] would overflow even though it holds no element.
inline int64_t checked_product(const std::vector<int64_t>& sizes, std::string_view what) {
  int64_t nonzero = 1;
  bool any_zero = false;
  for (int64_t s : sizes) {
    NABLA_CHECK(s >= 0, what, ": sizes must be non-negative, got ", s);
    if (s == 0) {
      any_zero = true;
      continue;
    }
    if (__builtin_mul_overflow(nonzero, s, &nonzero)) {
      std::string shape = "[";
      for (size_t i = 0; i < sizes.size(); ++i) shape += (i ? "," : "") + std::to_string(sizes[i]);
      fail(what, ": the product of sizes ", shape, "] does not fit in a signed 64-bit size");
    }
  }
  return any_zero ? 0 : nonzero;
}

}  // namespace nabla
