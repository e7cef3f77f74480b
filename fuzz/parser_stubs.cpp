// The fuzz build links the parsers without ops/ and autograd/ (nabla_fuzz_parsers in CMakeLists.txt), so
// the few Tensor methods that engine/ declares and those layers define are stubs here. The parsers never
// reach them: they build contiguous CPU tensors and no graph (these serve device copies, strided copies,
// set_data, the test encoders and TensorDataset). Reaching one is a finding, and aborts.
#include <cstdio>
#include <cstdlib>

#include "engine/tensor.h"

namespace nabla {

[[noreturn]] static void not_in_fuzz_build(const char* what) {
  std::fprintf(stderr, "fuzz build: %s is not linked into the parser fuzzers\n", what);
  std::abort();
}

Tensor Tensor::contiguous() const { not_in_fuzz_build("Tensor::contiguous"); }
Tensor Tensor::to(Device) const { not_in_fuzz_build("Tensor::to(Device)"); }
bool Tensor::is_leaf() const { not_in_fuzz_build("Tensor::is_leaf"); }
Tensor Tensor::unsqueeze(int64_t) const { not_in_fuzz_build("Tensor::unsqueeze"); }  // the encoders
Tensor Tensor::select(int64_t, int64_t) const { not_in_fuzz_build("Tensor::select"); }

}  // namespace nabla
