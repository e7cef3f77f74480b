// PinnedBuffer and CopyStream (pinned.h).
#include "cuda/pinned.h"

#include <utility>

#include "cuda/runtime.h"

namespace nabla::cuda {

PinnedBuffer::~PinnedBuffer() { release(); }

PinnedBuffer::PinnedBuffer(PinnedBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), capacity_(std::exchange(o.capacity_, 0)) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
  }
  return *this;
}

void PinnedBuffer::release() {
  if (data_) cudaFreeHost(data_);  // in a destructor: no throwing; a failure here leaks at worst
  data_ = nullptr;
  capacity_ = 0;
}

void PinnedBuffer::reserve(size_t nbytes) {
  if (nbytes <= capacity_) return;
  release();
  // Round up to 1 MiB so that batches of slightly different sizes (a short last batch, then a full one)
  // do not re-pin.
  const size_t rounded = (nbytes + (size_t{1} << 20) - 1) >> 20 << 20;
  void* p = nullptr;
  cudaError_t e = cudaHostAlloc(&p, rounded, cudaHostAllocPortable);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    fail("pinned memory: cudaHostAlloc of ", rounded, " bytes failed: ", cudaGetErrorString(e));
  }
  data_ = p;
  capacity_ = rounded;
}

bool is_pinned(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeHost;
}

CopyStream::CopyStream() : device_(current_device()) {
  NABLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

CopyStream::~CopyStream() {
  if (!stream_) return;
  // Raw calls, not DeviceGuard: a destructor must not throw.
  int prev = 0;
  cudaGetDevice(&prev);
  if (prev != device_) cudaSetDevice(device_);
  cudaStreamSynchronize(stream_);
  cudaStreamDestroy(stream_);
  if (prev != device_) cudaSetDevice(prev);
}

void CopyStream::synchronize() const { NABLA_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

}  // namespace nabla::cuda
