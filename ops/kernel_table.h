// The kernel-slot table: every kernel slot of Nabla (ops/dispatch.h), declared once, beside the op table
// (ops/op_table.h) that lists the ops users call.
//
// Each row is X(name, header, family, availability, ops):
//   name          the slot's name, as in `inline Kernel<Fn> <name>_kernel{"<name>"};`
//   header        the header under ops/ that declares the slot: ops/<header>.h
//   family        the kernel files: the CPU kernel lives in ops/cpu/<family>.cpp, the CUDA one in
//                 cuda/<family>.cu (cuda/<family>.cpp for host-only CUDA code: cuBLAS). Pairing the names
//                 makes a kernel findable from either side.
//   availability  AllBackends: registered on the CPU and, in a CUDA build, on CUDA (a missing one is a bug);
//                 DeviceOnly:  registered on CUDA only; the CPU does the work without a kernel (e.g. it
//                              checks indices on the spot where the GPU needs an asynchronous check);
//                 FastPath:    an optional fused kernel; the op layer asks has() and composes the op from
//                              other slots when it is absent (today: cuBLASLt epilogues on CUDA).
//   ops           what calls the slot (ops of ops/op_table.h, optimizers, ...), for people.
//
// tests/ops/test_kernel_slots.cpp holds the table to the code: each slot of ops/*.h has a row and each row a
// slot; every registration (each NABLA_REGISTER_KERNEL records its slot, device and file) names a slot of
// the table and comes from the row's family file; availability holds on the CPU and, in CUDA builds, on
// CUDA; and docs/internals.md prints this table as it is.
#pragma once
#include <vector>

// clang-format off
#define NABLA_KERNEL_SLOTS(X)                                                                                    \
  /* element-wise, copies, fills (ops/elementwise.h) */                                                         \
  X(unary, elementwise, elementwise, AllBackends, "neg abs exp log log1p sqrt rsqrt tanh sigmoid relu leaky_relu gelu gelu_tanh silu clamp, their backwards") \
  X(binary, elementwise, elementwise, AllBackends, "add add_relu sub mul div pow maximum minimum, comparisons, fused activation backwards") \
  X(where, elementwise, elementwise, AllBackends, "where, masked_fill")                                         \
  X(copy, elementwise, copy, AllBackends, "contiguous clone cast copy_ to(device), every op's contiguous input") \
  X(fill, elementwise, copy, AllBackends, "zeros ones full fill_")                                              \
  /* factories and random draws (ops/factory.h) */                                                              \
  X(random, factory, factory, AllBackends, "rand randn randint normal uniform")                                 \
  X(arange, factory, factory, AllBackends, "arange linspace")                                                   \
  /* reductions (ops/reduce.h) */                                                                               \
  X(reduce, reduce, reduce, AllBackends, "sum mean amax amin max min argmax argmin var std_dev norm logsumexp") \
  /* linear algebra (ops/linalg.h) */                                                                           \
  X(gemm, linalg, gemm, AllBackends, "matmul einsum tensordot linear")                                          \
  X(linear_forward, linalg, gemm, FastPath, "linear (bias and relu in the GEMM epilogue)")                      \
  X(linear_weight_grad, linalg, gemm, FastPath, "linear backward (dweight and dbias in one GEMM)")              \
  /* normalisation, activation layers (ops/nn.h) */                                                             \
  X(softmax, nn, softmax, AllBackends, "softmax log_softmax")                                                   \
  X(softmax_backward, nn, softmax, AllBackends, "softmax log_softmax backward")                                 \
  X(layer_norm, nn, layer_norm, AllBackends, "layer_norm")                                                      \
  X(layer_norm_backward, nn, layer_norm, AllBackends, "layer_norm backward")                                    \
  X(batch_norm, nn, batch_norm, AllBackends, "batch_norm (training and evaluation, running statistics), batch_norm_add_relu") \
  X(batch_norm_backward, nn, batch_norm, AllBackends, "batch_norm backward, batch_norm_add_relu backward (ReLU mask fused)") \
  X(dropout, nn, dropout, AllBackends, "dropout and its backward (the mask redrawn)")                           \
  /* fused attention (ops/attention.h) */                                                                        \
  X(attention_forward, attention, attention, AllBackends, "scaled_dot_product_attention")                       \
  X(attention_backward, attention, attention, AllBackends, "scaled_dot_product_attention backward")             \
  /* embeddings (ops/embedding.h) */                                                                            \
  X(embedding_bag, embedding, embedding, AllBackends, "embedding_bag")                                          \
  X(embedding_bag_backward, embedding, embedding, AllBackends, "embedding_bag backward")                        \
  X(multi_embedding_bag, multi_embedding, multi_embedding, AllBackends, "multi_embedding_bag")                 \
  X(multi_embedding_bag_backward, multi_embedding, multi_embedding, AllBackends, "multi_embedding_bag backward, multi_embedding_bag_sparse_sgd_") \
  X(embedding_bag_rowwise_adagrad, embedding, embedding, AllBackends, "embedding_bag_sparse_rowwise_adagrad_") \
  X(multi_embedding_bag_rowwise_adagrad, multi_embedding, multi_embedding, AllBackends, "multi_embedding_bag_sparse_rowwise_adagrad_") \
  /* convolution, pooling, upsampling (ops/conv.h) */                                                           \
  X(conv2d_forward, conv, conv, AllBackends, "conv2d")                                                          \
  X(conv2d_backward, conv, conv, AllBackends, "conv2d backward")                                                \
  X(max_pool2d_forward, conv, pool, AllBackends, "max_pool2d")                                                  \
  X(max_pool2d_backward, conv, pool, AllBackends, "max_pool2d backward")                                        \
  X(avg_pool2d_forward, conv, pool, AllBackends, "avg_pool2d adaptive_avg_pool2d")                              \
  X(avg_pool2d_backward, conv, pool, AllBackends, "avg_pool2d adaptive_avg_pool2d backward")                    \
  X(upsample_nearest2d_forward, conv, pool, AllBackends, "upsample_nearest2d")                                  \
  X(upsample_nearest2d_backward, conv, pool, AllBackends, "upsample_nearest2d backward")                        \
  /* indexing (ops/index.h) */                                                                                  \
  X(index_select, index, index, AllBackends, "index_select embedding")                          \
  X(index_add, index, index, AllBackends, "index_select embedding backward")                                    \
  X(gather, index, index, AllBackends, "gather, scatter_add backward")                                                        \
  X(scatter_add, index, index, AllBackends, "scatter_add, gather backward")                                     \
  X(index_check, index, index, DeviceOnly, "every index argument on a GPU (asynchronous bounds check)")         \
  /* losses (ops/loss.h) */                                                                                     \
  X(cross_entropy, loss, loss, AllBackends, "cross_entropy (hard targets)")                                     \
  X(cross_entropy_backward, loss, loss, AllBackends, "cross_entropy backward")                                  \
  /* fused optimizer steps (ops/optim_kernels.h) */                                                             \
  X(multi_tensor_norm, optim_kernels, optim_kernels, AllBackends, "LARS/LAMB per-tensor norms (trust ratios)") \
  X(fused_lars, optim_kernels, optim_kernels, AllBackends, "LARS step")                                         \
  X(lamb_moments, optim_kernels, optim_kernels, AllBackends, "LAMB step (moments)")                             \
  X(lamb_apply, optim_kernels, optim_kernels, AllBackends, "LAMB step (update)")                                \
  X(fused_sgd, optim_kernels, optim_kernels, AllBackends, "SGD step (momentum, Nesterov)")                      \
  X(fused_adam, optim_kernels, optim_kernels, AllBackends, "Adam/AdamW step")                                   \
  X(amp_unscale, optim_kernels, optim_kernels, AllBackends, "GradScaler unscale and inf/NaN check")             \
  /* VRGD's GSNR statistics (ops/gsnr_kernels.h) */                                                             \
  X(gsnr_accumulate, gsnr_kernels, gsnr_kernels, AllBackends, "VRGD: per-partition gradient moments")           \
  X(gsnr_reduce, gsnr_kernels, gsnr_kernels, AllBackends, "VRGD: GSNR per element, normalised")                 \
  X(gsnr_apply, gsnr_kernels, gsnr_kernels, AllBackends, "VRGD: gradient scaled by GSNR")                     \
  /* Darknet's [yolo] training delta (ops/yolo_loss.h) */                                                       \
  X(yolo_loss, yolo_loss, yolo_loss, AllBackends, "models/darknet yolo_loss (delta, loss and Region stats)")
// clang-format on

namespace nabla::ops {

enum class SlotAvailability { AllBackends, DeviceOnly, FastPath };

struct KernelSlotInfo {
  const char* name;
  const char* header;  // ops/<header>.h
  const char* family;  // ops/cpu/<family>.cpp, cuda/<family>.cu
  SlotAvailability availability;
  const char* ops;
};

inline const std::vector<KernelSlotInfo>& kernel_slot_table() {
#define NABLA_KERNEL_SLOT_ROW(name, header, family, availability, ops) \
  KernelSlotInfo{#name, #header, #family, SlotAvailability::availability, ops},
  static const std::vector<KernelSlotInfo> table = {NABLA_KERNEL_SLOTS(NABLA_KERNEL_SLOT_ROW)};
#undef NABLA_KERNEL_SLOT_ROW
  return table;
}

inline const char* slot_availability_name(SlotAvailability a) {
  switch (a) {
    case SlotAvailability::AllBackends:
      return "all backends";
    case SlotAvailability::DeviceOnly:
      return "CUDA only (the CPU needs no kernel)";
    case SlotAvailability::FastPath:
      return "optional fast path";
  }
  return "?";
}

}  // namespace nabla::ops
