// CUDA kernels for copies (any strides, any dtype pair, host <-> device) and fills. The CPU twin is
// ops/cpu/copy.cpp; ranges and Philox draws are in cuda/factory.cu.
//
// Transfers: the bytes cross with cudaMemcpyAsync on the compute stream, contiguous and in the source
// dtype; strides and dtype conversion are then done by a device kernel (or, device -> host, before the
// transfer on the device). Copies to the host synchronise the stream, so the host may read the data at once.
// Casts between f32, bf16 and f16 of two tensors with one dense layout (contiguous, or both channels-last:
// autocast's weight casts and their gradients' casts back) take a packed kernel, 4 elements a thread with
// 16-byte (f32) and 8-byte (16-bit) accesses, instead of the generic element loop.
#include <algorithm>
#include <cstdint>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/vec.cuh"
#include "engine/capture.h"
#include "ops/elementwise.h"

namespace nabla::cuda {
namespace {

// (Device lambdas may not sit inside generic lambdas, so each typed body is a function template.)
template <class S, class D>
void convert_typed(const Tensor& src, Tensor& dst) {
  const S* ps = ptr<S>(src);
  D* pd = ptr<D>(dst);
  launch_elementwise<2>(
      dst.shape(), {&dst.strides(), &src.strides()},
      [=] __device__(const std::array<int64_t, 2>& o) { pd[o[0]] = store<D>(load(ps[o[1]])); });
}

// d[i] = s[i] over n elements: packs of 4 (the first block also does the n % 4 tail).
template <class S, class D>
__global__ void __launch_bounds__(256)
    convert_dense_kernel(const S* __restrict__ s, D* __restrict__ d, int64_t n) {
  constexpr int V = 4;
  const int64_t packs = n / V;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < packs;
       p += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const Pack<S, V> a = reinterpret_cast<const Pack<S, V>*>(s)[p];
    Pack<D, V> b;
#pragma unroll
    for (int e = 0; e < V; ++e) b.v[e] = store<D>(load(a.v[e]));
    reinterpret_cast<Pack<D, V>*>(d)[p] = b;
  }
  const int64_t t = packs * V + threadIdx.x;
  if (blockIdx.x == 0 && t < n) d[t] = store<D>(load(s[t]));
}

bool is_float_16_32(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

// The packed cast applies: f32/bf16/f16 to another of them, one dense layout, both 4-element aligned.
bool dense_float_cast(const Tensor& src, const Tensor& dst) {
  return src.dtype() != dst.dtype() && is_float_16_32(src.dtype()) && is_float_16_32(dst.dtype()) &&
         src.shape() == dst.shape() && src.strides() == dst.strides() && src.is_non_overlapping_and_dense() &&
         reinterpret_cast<uintptr_t>(src.data_ptr()) % (4 * src.itemsize()) == 0 &&
         reinterpret_cast<uintptr_t>(dst.data_ptr()) % (4 * dst.itemsize()) == 0;
}

template <class S, class D>
void convert_dense(const Tensor& src, Tensor& dst) {
  const int64_t n = src.numel();
  convert_dense_kernel<S, D>
      <<<grid_for(std::max<int64_t>(1, n / 4)), kBlock, 0, current_stream()>>>(ptr<S>(src), ptr<D>(dst), n);
  NABLA_CUDA_LAUNCH_CHECK();
}

// dst = convert(src), both on the same CUDA device, any strides.
void convert_on_device(const Tensor& src, Tensor& dst) {
  if (dense_float_cast(src, dst)) {
    visit_cuda_float(src.dtype(), "cast", [&](auto zs) {
      visit_cuda_float(dst.dtype(), "cast", [&](auto zd) {
        if constexpr (!std::is_same_v<decltype(zs), double> && !std::is_same_v<decltype(zd), double>)
          convert_dense<decltype(zs), decltype(zd)>(src, dst);
      });
    });
    return;
  }
  visit_all(src.dtype(), [&](auto zs) {
    visit_all(dst.dtype(), [&](auto zd) { convert_typed<decltype(zs), decltype(zd)>(src, dst); });
  });
}

bool same_layout_contiguous(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.is_contiguous() && b.is_contiguous();
}

void copy_cuda(const Tensor& src, Tensor& dst) {
  const size_t nbytes = src.numel() * src.itemsize();
  if (src.numel() == 0) return;
  if (src.device().is_cuda() && dst.device().is_cuda()) {
    NABLA_CHECK(src.device() == dst.device(), "copy: between two CUDA devices (", src.device(), " -> ",
                dst.device(), ") is not supported; go through the host");
    DeviceGuard g(dst.device().index);
    if (same_layout_contiguous(src, dst))
      NABLA_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), nbytes, cudaMemcpyDeviceToDevice,
                                       current_stream()));
    else
      convert_on_device(src, dst);
    return;
  }
  // Between host and device inside a CUDA graph capture, the host buffer would be read or written once, at
  // capture, and the copy replayed into or out of memory that is gone (engine/capture.h).
  NABLA_CHECK(!capturing_cuda_graph(), "copy from ", src.device(), " to ", dst.device(), " (", src.shape(),
              " ", src.dtype(),
              ") inside a CUDA graph capture: the host side would be read or written once, at "
              "capture; make the tensor on the device before capturing, and read results (item(), "
              "to(cpu)) after replay()");
  if (dst.device().is_cuda()) {  // host -> device
    DeviceGuard g(dst.device().index);
    Tensor host = src.is_contiguous() ? src : src.contiguous();
    if (same_layout_contiguous(host, dst)) {
      NABLA_CUDA_CHECK(
          cudaMemcpyAsync(dst.data_ptr(), host.data_ptr(), nbytes, cudaMemcpyHostToDevice, current_stream()));
      // The host buffer may be freed when this returns: wait for the (pageable) copy to finish reading it.
      NABLA_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
      return;
    }
    Tensor staged = Tensor::empty(host.shape(), host.dtype(), dst.device());
    NABLA_CUDA_CHECK(cudaMemcpyAsync(staged.data_ptr(), host.data_ptr(), nbytes, cudaMemcpyHostToDevice,
                                     current_stream()));
    NABLA_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
    convert_on_device(staged, dst);
    return;
  }
  // device -> host
  DeviceGuard g(src.device().index);
  Tensor dev = src;
  if (!same_layout_contiguous(src, dst) || !src.is_contiguous()) {
    Tensor c = Tensor::empty(src.shape(), dst.dtype(), src.device());
    convert_on_device(src, c);
    dev = c;
  }
  if (dst.is_contiguous()) {
    NABLA_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), dev.data_ptr(), nbytes / src.itemsize() * dst.itemsize(),
                                     cudaMemcpyDeviceToHost, current_stream()));
    NABLA_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
    raise_async_errors(src.device().index);
  } else {
    Tensor host = Tensor::empty(dst.shape(), dst.dtype(), Device::cpu());
    NABLA_CUDA_CHECK(cudaMemcpyAsync(host.data_ptr(), dev.data_ptr(), host.nbytes(), cudaMemcpyDeviceToHost,
                                     current_stream()));
    NABLA_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
    raise_async_errors(src.device().index);
    ops::copy_kernel.get(Device::cpu())(host, dst);
  }
}

template <class T>
void fill_typed(Tensor& dst, double value) {
  T* p = ptr<T>(dst);
  const T v = store<T>(value);
  launch_elementwise<1>(dst.shape(), {&dst.strides()},
                        [=] __device__(const std::array<int64_t, 1>& o) { p[o[0]] = v; });
}

void fill_cuda(Tensor& dst, double value) {
  DeviceGuard g(dst.device().index);
  visit_all(dst.dtype(), [&](auto zero) { fill_typed<decltype(zero)>(dst, value); });
}

}  // namespace

NABLA_REGISTER_KERNEL(copy_kernel, cuda, copy_cuda);
NABLA_REGISTER_KERNEL(fill_kernel, cuda, fill_cuda);

}  // namespace nabla::cuda
