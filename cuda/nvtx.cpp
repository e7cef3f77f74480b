// NVTX ranges for the tracer (engine/trace.h): under the CUDA build, every range the tracer opens (the
// backward, each backward node, optimizer steps, data-loader waits, trace::Scope of your own) is also an
// NVTX range, so Nsight Systems (nsys profile -t cuda,nvtx ...) shows the same names on its timeline.
// NVTX v3 is header-only (it finds the tool's injection library at run time; without a tool attached a
// push/pop is a few nanoseconds). Kernel calls are not NVTX ranges: Nsight shows the kernels themselves.
#if __has_include(<nvtx3/nvToolsExt.h>)
#include <nvtx3/nvToolsExt.h>

#include "engine/trace.h"

namespace {

void push(const char* name) { nvtxRangePushA(name); }
void pop() { nvtxRangePop(); }

[[maybe_unused]] const bool g_registered = [] {
  nabla::trace::set_range_hooks(&push, &pop);
  return true;
}();

}  // namespace
#endif
