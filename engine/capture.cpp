#include "engine/capture.h"

namespace nabla {
namespace {
thread_local bool t_capturing = false;  // per thread: other threads' work is not in the capture
}  // namespace

bool capturing_cuda_graph() { return t_capturing; }
void set_capturing_cuda_graph(bool on) { t_capturing = on; }

}  // namespace nabla
