// The CUDA backend's runtime: devices, the compute stream, library handles, the caching allocator and
// error checks. Host code only (no kernels); compiled when the build has CUDA (NABLA_HAS_CUDA).
//
// Streams: one compute stream per device; every kernel, copy, cuBLAS and cuDNN call of the backend goes on
// it, so work is ordered without host synchronisation. NABLA_SYNC=1 synchronises after every launch so
// that an error is reported by the op that caused it.
//
// Caching allocator: freed blocks go back to per-device free lists keyed by size; a request takes the
// smallest cached block that fits (sizes rounded up to 512 bytes, or to 2 MiB above 1 MiB), so a training
// step that repeats the same shapes calls cudaMalloc only in its first iteration. Out of memory frees the
// cache and tries again, then throws naming the bytes asked and the bytes in use.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>

#include "engine/error.h"

namespace nabla::cuda {

bool available();  // a CUDA device is present and the driver works (cached)
int device_count();
int current_device();
void set_device(int device);

class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_;
};

cudaStream_t stream(int device);  // the compute stream

// A CUDA event on the current device: record() on the compute stream, then elapsed_ms() between two
// events, synchronize(), or make another stream wait for it. Timing enabled (benchmarks use it).
class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record();  // on the current device's compute stream
  void record(cudaStream_t stream);
  void synchronize() const;              // the host waits until the event has happened
  bool done() const;                     // non-blocking query
  void wait(cudaStream_t stream) const;  // `stream` waits for the event (no host sync)
  float elapsed_ms(const Event& later) const;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
  int device_ = 0;
};
cudaStream_t current_stream();
void synchronize();    // waits for the current device's compute stream
bool sync_every_op();  // NABLA_SYNC=1

// Asynchronous checks (engine/async_check.h). A check kernel writes its first failure into this record,
// in device memory, with one 64-bit compare-and-swap on `id` (0: no failure) so one failure wins whole.
struct AsyncCheckRecord {
  unsigned long long id;
  long long position;
  long long value;
};
// The record of `device`, for a check kernel about to be launched (marks the device as having a check to
// look at on the next synchronisation).
AsyncCheckRecord* async_check_record(int device);
// Reads the record of `device` (the caller has just synchronised with its compute stream) and throws the
// described error if a check failed, clearing the record first so the next step starts clean.
void raise_async_errors(int device);

cublasHandle_t cublas_handle();
cublasLtHandle_t cublaslt_handle();
cudnnHandle_t cudnn_handle();

// TF32 tensor-core math for f32 GEMM and convolution (default on, as PyTorch's cuDNN default and the
// matmul precision "high"); off gives full f32 math. NABLA_TF32=0 in the environment turns it off.
bool tf32_enabled();
void set_tf32_enabled(bool on);

struct AllocatorStats {
  size_t allocated = 0;       // bytes handed out now
  size_t reserved = 0;        // bytes held from cudaMalloc (allocated + cached)
  size_t peak_allocated = 0;  // high-water mark of `allocated`
  uint64_t allocations = 0;   // requests served
  uint64_t cuda_mallocs = 0;  // requests that needed cudaMalloc
};
AllocatorStats allocator_stats(int device = -1);
void reset_peak_stats(int device = -1);
void empty_cache();  // returns cached blocks to the driver

// Scratch memory for cuBLAS/cuDNN, from the caching allocator, valid until the next call on this device.
void* workspace(size_t bytes);

// For cuda/graph.cpp: while `device` captures a graph, the calling thread's allocations come from the
// graph's private pool (the returned id) instead of the shared cache (runtime.cpp explains why).
namespace graph_detail {
uint64_t begin_allocator_capture(int device);
void end_allocator_capture(int device);
void release_graph_pool(int device, uint64_t pool);  // the graph is gone: its memory joins the shared cache
}  // namespace graph_detail

[[noreturn]] void fail_cuda(const char* what, const char* expr, const char* file, int line);
void check_launch(const char* file, int line);

}  // namespace nabla::cuda

#define NABLA_CUDA_CHECK(expr)                                                             \
  do {                                                                                     \
    cudaError_t nabla_err_ = (expr);                                                       \
    if (nabla_err_ != cudaSuccess)                                                         \
      ::nabla::cuda::fail_cuda(cudaGetErrorString(nabla_err_), #expr, __FILE__, __LINE__); \
  } while (0)
#define NABLA_CUBLAS_CHECK(expr)                                                             \
  do {                                                                                       \
    cublasStatus_t nabla_st_ = (expr);                                                       \
    if (nabla_st_ != CUBLAS_STATUS_SUCCESS)                                                  \
      ::nabla::cuda::fail_cuda(cublasGetStatusString(nabla_st_), #expr, __FILE__, __LINE__); \
  } while (0)
#define NABLA_CUDNN_CHECK(expr)                                                            \
  do {                                                                                     \
    cudnnStatus_t nabla_st_ = (expr);                                                      \
    if (nabla_st_ != CUDNN_STATUS_SUCCESS)                                                 \
      ::nabla::cuda::fail_cuda(cudnnGetErrorString(nabla_st_), #expr, __FILE__, __LINE__); \
  } while (0)
// After every kernel launch: reports launch errors, and with NABLA_SYNC=1 errors of the kernel itself.
#define NABLA_CUDA_LAUNCH_CHECK() ::nabla::cuda::check_launch(__FILE__, __LINE__)
