// CPU kernels of copies (any strides, any dtype pair: the conversion of a cast) and fills. CPU tensors only:
// transfers to and from a GPU are the CUDA backend's copy kernel (cuda/copy.cu, the CUDA twin of this file).
#include <type_traits>

#include "ops/cpu/loops.h"
#include "ops/elementwise.h"

namespace nabla::ops::cpu {
namespace {

void copy_cpu(const Tensor& src, Tensor& dst) {
  NABLA_CHECK(src.device().is_cpu() && dst.device().is_cpu(),
              "copy: the cpu backend copies cpu tensors only, got ", src.device(), " -> ", dst.device());
  visit_dtype(src.dtype(), [&](auto zs) {
    using S = decltype(zs);
    visit_dtype(dst.dtype(), [&](auto zd) {
      using D = decltype(zd);
      const S* ps = base<S>(src);
      D* pd = base<D>(dst);
      strided_for_each<2>(
          dst.shape(), {&dst.strides(), &src.strides()}, [&](const std::array<int64_t, 2>& o) {
            if constexpr (std::is_same_v<S, D>)
              pd[o[0]] = ps[o[1]];
            else if constexpr (std::is_arithmetic_v<S> && std::is_arithmetic_v<D> && !std::is_same_v<D, bool>)
              pd[o[0]] = static_cast<D>(ps[o[1]]);
            else
              pd[o[0]] = from_double<D>(to_double(ps[o[1]]));
          });
    });
  });
}

void fill_cpu(Tensor& dst, double value) {
  visit_dtype(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T v = from_double<T>(value);
    T* pd = base<T>(dst);
    strided_for_each<1>(dst.shape(), {&dst.strides()},
                        [&](const std::array<int64_t, 1>& o) { pd[o[0]] = v; });
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(copy_kernel, cpu, copy_cpu);
NABLA_REGISTER_KERNEL(fill_kernel, cpu, fill_cpu);

}  // namespace nabla::ops::cpu
