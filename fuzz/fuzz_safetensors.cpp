// libFuzzer target: safetensors headers and data (engine/safetensors.h), from bytes. Every input must
// load or throw nabla::Error; a file that loads must save and load back to the same tensors.
#include <cstring>

#include "engine/error.h"
#include "engine/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  for (bool allow : {false, true}) {
    try {
      nabla::SafetensorsFile f = nabla::load_safetensors_from_bytes(
          bytes, "fuzz", {.allow_non_finite = allow, .verify_checksums = !allow});
      nabla::SafetensorsFile g = nabla::load_safetensors_from_bytes(
          nabla::save_safetensors_to_bytes(f.tensors, f.metadata), "again", {.allow_non_finite = true});
      if (g.tensors.size() != f.tensors.size()) __builtin_trap();
      for (size_t i = 0; i < f.tensors.size(); ++i) {
        const nabla::Tensor& a = f.get(g.tensors[i].first);
        const nabla::Tensor& b = g.tensors[i].second;
        if (a.shape() != b.shape() || a.dtype() != b.dtype() || a.nbytes() != b.nbytes() ||
            (a.nbytes() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) != 0))
          __builtin_trap();
      }
    } catch (const nabla::Error&) {
    }
  }
  return 0;
}
