// The tracer's device timer for CUDA (engine/trace.h, "device time"): a pair of CUDA events around each
// kernel on the compute stream, and around each runtime::copy_async on its stream, turned into events on
// the "GPU <i>" tracks of the trace. Registered with trace::set_device_timer at load; the op layer reaches
// it through trace::device_begin / device_end (ops/dispatch.h), cuda/device_runtime.cpp calls
// begin_on_stream / end directly for copies, and dist/nccl_backend.cpp for NCCL's collectives (track 3).
#pragma once
#include <cuda_runtime_api.h>

#include <string>

namespace nabla::cuda::trace_timing {

// A start mark on `stream` of `device` (recorded now, read back later); -1 when not tracing or capturing.
// `track`: the GPU track of its event (trace::kComputeTrack, kCopyTrack, kCommTrack); 0 picks compute for
// the compute stream and copy for any other.
int begin_on_stream(int device, cudaStream_t stream, int track = 0);
// The end mark of `token`, named `name` with `args` (a JSON object's text) in the trace.
void end(int token, const char* name, const std::string& args);
// Waits for every mark recorded so far and adds its event to the trace (trace::json / stop call it).
void flush();

}  // namespace nabla::cuda::trace_timing
