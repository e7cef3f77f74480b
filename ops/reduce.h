// Reductions over any set of dims, with keepdim.
//
//   sum(x, dims)[o] = sum_{r} x[o, r]        (r runs over the reduced dims)
//   var(x, dims) = sum (x - mean)^2 / (N - correction)
//   norm(x, p) = (sum |x|^p)^(1/p)   (p = inf: max |x|)
//   logsumexp(x) = m + log(sum exp(x - m)), m = max x (stable)
// An empty `dims` reduces over all dims. Negative dims count from the end.
// max/min over one dim return values and their indices (i64); ties pick the first index and the
// gradient goes to that element. amax/amin over several dims split the gradient evenly between ties.
#pragma once
#include <limits>
#include <vector>

#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

using Dims = std::vector<int64_t>;

Tensor sum(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
Tensor amax(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const Dims& dims = {}, bool keepdim = false);

struct ValuesIndices {
  Tensor values;
  Tensor indices;
};
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim = false);
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);

Tensor var(const Tensor& x, const Dims& dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor std_dev(const Tensor& x, const Dims& dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor norm(const Tensor& x, double p = 2.0, const Dims& dims = {}, bool keepdim = false);
Tensor logsumexp(const Tensor& x, const Dims& dims = {}, bool keepdim = false);

}  // namespace nabla

namespace nabla::ops {

enum class ReduceOp : uint8_t { sum, max, min };
// x viewed as [outer, r, inner] (contiguous): out[o, i] = reduce_{k<r} x[o, k, i]. `indices` (i64, may be
// undefined) receives the argmax/argmin position k for max/min.
using ReduceKernelFn = void (*)(ReduceOp op, const Tensor& x, int64_t outer, int64_t r, int64_t inner,
                                Tensor& out, Tensor* indices);
inline Kernel<ReduceKernelFn> reduce_kernel{"reduce"};

// The sizes of x with `dims` removed (or set to 1 when keepdim), and the sorted, wrapped dims.
Shape reduced_shape(const Shape& shape, const Dims& dims, bool keepdim, Dims* wrapped, const char* op);

}  // namespace nabla::ops
