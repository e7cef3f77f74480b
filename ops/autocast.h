// Autocast: automatic mixed precision for CUDA tensors, like torch.autocast("cuda", dtype=torch.bfloat16).
//
//   {
//     AutocastGuard guard(DType::bf16);   // or DType::f16 (with optim::GradScaler for the loss)
//     Tensor logits = model.forward(x);   // matmuls and convs run in bf16 on the tensor cores
//     Tensor loss = cross_entropy(logits, y);  // computed in f32
//   }
//   loss.backward();   // the f32 master weights get f32 gradients
//
// The state (on/off and the lower-precision dtype) is thread-local; guards nest and restore what they found.
// Each op that takes part calls autocast_input() on its floating inputs before anything else:
//
//   AutocastKind::lower_precision  matmul (so einsum and tensordot, which contract through it), conv2d
//                                  (input, weight, bias), nn::Linear's bias: a CUDA f32 input (or one of
//                                  the other 16-bit type) is cast to the autocast dtype; f64 is left alone.
//   batch_norm                     runs in its input's dtype (as in PyTorch): under autocast a CUDA bf16/f16
//                                  input keeps its dtype, weight and bias are cast to it, the batch and
//                                  running statistics stay f32 (ops/nn.cpp).
//   AutocastKind::f32              softmax, log_softmax, layer_norm, the
//                                  accumulating reductions (sum, mean, var, std_dev, norm, logsumexp) and
//                                  every loss: a CUDA bf16/f16 input is cast up to f32. (max/min/argmax are
//                                  exact in any dtype and keep it.)
//   binary arithmetic              add, sub, mul, div (and their operators) of a CUDA f32 tensor with a CUDA
//                                  bf16/f16 tensor cast the 16-bit one up to f32 (autocast_promote), as
//                                  PyTorch's type promotion would; nabla has no implicit promotion otherwise.
//
// The casts go through Tensor::to(dtype), which records a "cast" node, so in backward each gradient is cast
// back to its input's dtype: an f32 weight used by a bf16 matmul gets an f32 gradient. Backward itself runs
// with autocast off (autograd/engine.cpp suspends it), so backward formulas see the dtypes forward
// recorded.
//
// Cast cache (torch.autocast's cache_enabled=True): inside an AutocastGuard, the lower-precision cast of an
// f32 leaf that requires grad (a weight), made with grad mode on, is kept until the outermost guard ends, so
// a weight used by several convolutions or matmuls of one forward is cast once, and its gradient is cast
// back to f32 once (the uses' gradients meet on the cast's output first). Like PyTorch's, the cache assumes
// that weights are not changed in place inside the region (an optimizer step belongs after it); a weight
// whose storage was replaced (Module::to, set_data) is cast again. Activations, no_grad regions and
// set_autocast_enabled without a guard are never cached. A network that uses each weight once per step
// (YOLOv3, ResNet) already makes one cast per weight per step, and one cast of its gradient back: the cache
// saves nothing there; a fused multi-tensor cast of all weights would save only launches (3% of a YOLOv3
// bf16 training step on the H200 went to 169 casts, which the packed cast kernel of cuda/copy.cu shortens).
//
// On the CPU autocast is a no-op: bf16/f16 are storage types there (the CPU kernels compute in f32/f64),
// so CPU tensors pass through autocast_input unchanged, whatever the state. With autocast off nothing
// changes for any tensor.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace nabla {

enum class AutocastKind : uint8_t {
  lower_precision,  // CUDA f32 (and the other 16-bit type) -> the autocast dtype (GEMM-heavy ops)
  f32,              // CUDA bf16/f16 -> f32 (ops that need range or accurate accumulation)
};

bool autocast_enabled();
DType autocast_dtype();              // bf16 unless a guard said f16
void set_autocast_enabled(bool on);  // off also drops the cast cache
// The cast cache (above): drop it now, and its number of entries (for tests).
void clear_autocast_cache();
size_t autocast_cache_size();
void set_autocast_dtype(DType dtype);  // bf16 or f16

// RAII: autocast on (or off, with enabled = false) with `dtype` inside the scope; restores the previous
// state.
class AutocastGuard {
 public:
  explicit AutocastGuard(DType dtype = DType::bf16, bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool prev_enabled_;
  DType prev_dtype_;
};

// x cast by the policy of `kind` when autocast is on and x is a CUDA tensor; x itself otherwise (also when
// x is undefined or not floating).
Tensor autocast_input(const Tensor& x, AutocastKind kind);

// For binary arithmetic: when autocast is on and a, b are CUDA floating tensors of which one is f32 and the
// other bf16/f16, the 16-bit one is cast up to f32. Otherwise leaves both alone.
void autocast_promote(Tensor& a, Tensor& b);

}  // namespace nabla
