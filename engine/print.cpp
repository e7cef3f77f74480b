// Readable printing, PyTorch-like:
//   tensor([[ 0.1234, -1.5000],
//           [ 2.0000,  3.0000]], dtype=f32, shape=[2,2])
// Large tensors show the first and last 3 entries of each dim with "..." between.
#include <cmath>
#include <iomanip>
#include <sstream>

#include "engine/tensor.h"

namespace nabla {
namespace {

constexpr int64_t kSummariseAbove = 1000;
constexpr int64_t kEdge = 3;

void print_rec(std::ostringstream& os, const std::vector<double>& v, const Shape& shape, const Strides& st,
               int64_t d, int64_t off, bool summarise, bool floating, int indent) {
  if (d == static_cast<int64_t>(shape.size())) {
    double x = v[off];
    if (floating)
      os << std::setw(9) << std::fixed << std::setprecision(4) << x;
    else
      os << static_cast<int64_t>(x);
    return;
  }
  os << "[";
  const int64_t n = shape[d];
  const bool cut = summarise && n > 2 * kEdge;
  for (int64_t i = 0; i < n; ++i) {
    if (cut && i == kEdge) {
      const std::string pad(indent + 1, ' ');
      if (d + 1 == static_cast<int64_t>(shape.size())) os << " ..., ";
      else os << "\n" << pad << "...,\n" << pad;
      i = n - kEdge;
    }
    print_rec(os, v, shape, st, d + 1, off + i * st[d], summarise, floating, indent + 1);
    if (i + 1 < n) {
      os << ",";
      if (d + 1 < static_cast<int64_t>(shape.size()))
        os << "\n" << std::string(indent + 1, ' ');
      else
        os << " ";
    }
  }
  os << "]";
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::vector<double> v = to_double_vector();
  std::ostringstream os;
  os << "tensor(";
  print_rec(os, v, shape(), contiguous_strides(shape()), 0, 0, numel() > kSummariseAbove,
            is_floating(dtype()), 7);
  os << ", dtype=" << dtype() << ", shape=" << shape_str(shape());
  if (!device().is_cpu()) os << ", device=" << device();
  if (requires_grad()) os << ", requires_grad";
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace nabla
