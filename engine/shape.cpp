// Shapes and strides (shape.h). Every product of sizes is checked (engine/checked.h): shapes often come
// from file headers, and a product that wraps around would allocate a small buffer for a huge tensor.
#include "engine/shape.h"

#include <algorithm>

#include "engine/checked.h"
#include "engine/error.h"

namespace nabla {

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape)
    if (__builtin_mul_overflow(n, s, &n)) checked_product(shape, "shape");  // throws, naming the shape
  return n;
}

int64_t nbytes_of(const Shape& shape, int64_t itemsize) {
  int64_t n = checked_product(shape, "shape");
  int64_t bytes;
  NABLA_CHECK(!__builtin_mul_overflow(n, itemsize, &bytes), "shape ", shape, ": ", n, " elements of ",
              itemsize, " bytes do not fit in a signed 64-bit size");
  return bytes;
}

Strides contiguous_strides(const Shape& shape) {
  Strides st(shape.size());
  int64_t acc = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    st[d] = acc;
    // The last product is never used as a stride; it still must fit for numel to (checked there).
    if (d > 0 && shape[d] != 0 && __builtin_mul_overflow(acc, shape[d], &acc))
      checked_product(shape, "contiguous strides of shape");  // throws, naming the shape
  }
  return st;
}

Strides channels_last_strides(const Shape& shape) {
  NABLA_CHECK(shape.size() == 4, "channels_last: expected a 4-D [N, C, H, W] shape, got ", shape);
  const int64_t c = shape[1], h = shape[2], w = shape[3];
  checked_product(shape, "channels_last strides of shape");
  const int64_t wc = checked_mul(w, c, "channels_last strides"),
                hwc = checked_mul(h, wc, "channels_last strides");
  return {hwc, 1, wc, c};
}

bool is_non_overlapping_and_dense(const Shape& shape, const Strides& strides) {
  std::vector<size_t> dims;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return true;  // no elements: nothing to overlap or leave out
    if (shape[d] != 1) dims.push_back(d);
  }
  // Innermost first; equal strides (only possible when overlapping) fail the check below.
  std::sort(dims.begin(), dims.end(), [&](size_t a, size_t b) { return strides[a] < strides[b]; });
  int64_t expected = 1;
  for (size_t d : dims) {
    if (strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  NABLA_CHECK(dim >= lo && dim <= hi, op, ": dim ", dim, " is out of range for a tensor of ", ndim,
              " dims (expected ", lo, "..", hi, ")");
  return dim < 0 ? dim + (ndim == 0 ? 1 : ndim) : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    NABLA_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b, " do not broadcast (dim ", i,
                ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ",";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

}  // namespace nabla
