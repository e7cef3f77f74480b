// Page-locked ("pinned") host memory and a side stream for host-to-device copies: the two pieces an input
// pipeline needs to move batches to the GPU while the compute stream keeps working.
//
// Why pinned: cudaMemcpyAsync from pageable memory is staged by the driver through its own pinned bounce
// buffer and does not overlap with the caller; from page-locked memory the DMA engine reads the buffer
// directly and the copy runs asynchronously on its stream, at full PCIe/NVLink-C2C speed. Page-locking is
// slow (it maps and locks every page), so buffers are allocated once and reused: PinnedBuffer grows only
// when a larger batch comes.
//
// Why a side stream: the backend puts every kernel on one compute stream (cuda/runtime.h). A copy on that
// stream would wait for the step before it; on CopyStream it runs beside the step, and the compute stream
// waits for it with an event (cuda::Event::wait), not the host.
//
// Host code only; compiled when the build has CUDA (NABLA_HAS_CUDA).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

namespace nabla::cuda {

// A page-locked host block (cudaHostAlloc, portable), freed with cudaFreeHost. Move-only.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t nbytes) { reserve(nbytes); }
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& o) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  // Makes room for `nbytes` (contents are lost when it has to grow). The caller must know that no copy
  // still reads the old block.
  void reserve(size_t nbytes);
  void* data() const { return data_; }
  size_t capacity() const { return capacity_; }

 private:
  void release();
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

// Whether a host pointer is page-locked memory that CUDA knows (cudaPointerGetAttributes).
bool is_pinned(const void* p);

// A non-blocking stream on the current device, destroyed (after it drains) with the object.
class CopyStream {
 public:
  CopyStream();
  ~CopyStream();
  CopyStream(const CopyStream&) = delete;
  CopyStream& operator=(const CopyStream&) = delete;
  cudaStream_t get() const { return stream_; }
  int device() const { return device_; }
  void synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
};

}  // namespace nabla::cuda
