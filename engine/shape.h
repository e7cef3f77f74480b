// Shapes and strides.
//
// A tensor of sizes [n0, n1, ..., nk] with strides [s0, ..., sk] (in elements, not bytes) finds element
// (i0, ..., ik) at storage_offset + i0*s0 + ... + ik*sk. Contiguous (row-major) strides are
// s_k = 1, s_{d} = s_{d+1} * n_{d+1}. A stride of 0 repeats one element along a dimension: that is how
// expand() and broadcasting work without copying.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace nabla {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

// The product of the sizes; throws nabla::Error naming the shape when it does not fit in int64_t (shapes
// come from file headers too). nbytes_of: numel * itemsize, checked the same way (sizes must be >= 0).
int64_t numel_of(const Shape& shape);
int64_t nbytes_of(const Shape& shape, int64_t itemsize);
Strides contiguous_strides(const Shape& shape);
// Channels-last strides of a 4-D [N, C, H, W] shape: {H*W*C, 1, W*C, C} (memory order N, H, W, C).
Strides channels_last_strides(const Shape& shape);
// True when the strides place every element at its own offset and the offsets fill [0, numel) with no
// gap: a permutation of some contiguous layout (size-1 dims may carry any stride). Element-wise kernels may
// then walk such tensors as flat arrays.
bool is_non_overlapping_and_dense(const Shape& shape, const Strides& strides);
// Wraps a possibly negative dim into [0, ndim); throws naming `op` when out of range.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
// NumPy broadcasting of two shapes; throws naming `op` and both shapes when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
std::string shape_str(const Shape& s);

}  // namespace nabla

namespace std {
// So that error messages can stream shapes: "got [2,3] and [4]".
inline ostream& operator<<(ostream& os, const vector<int64_t>& s) { return os << nabla::shape_str(s); }
}  // namespace std
