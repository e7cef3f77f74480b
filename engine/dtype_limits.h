// Numeric limits of the engine's dtypes that torch.finfo gives in Python.
//
// lowest_finite: the most negative finite value of a 16-bit float dtype, and f32's for f32 and f64. It is
// what an additive attention mask puts on a key that must not be attended to (transformers uses
// finfo(dtype).min), so that masked scores stay finite in every dtype the scores may have.
#pragma once
#include "engine/dtype.h"

namespace nabla {

constexpr double lowest_finite(DType t) {
  switch (t) {
    case DType::bf16:
      return -3.3895313892515355e38;
    case DType::f16:
      return -65504.0;
    default:
      return -3.4028234663852886e38;  // std::numeric_limits<float>::lowest()
  }
}

}  // namespace nabla
