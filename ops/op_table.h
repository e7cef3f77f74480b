// The op table: every op of Nabla, declared once.
//
// Each row is X(name, family, kind). `kind` is Differentiable (the op has a backward and must have an f64
// gradient check registered in tests/ops: tests/ops/test_op_table.cpp fails for any op without one) or
// NonDifferentiable (integer/boolean results, factories, random draws: tested on values). `family` names
// the files that hold the op: ops/<family>.h/.cpp. Its kernels are listed in the kernel-slot table
// (ops/kernel_table.h), with their files ops/cpu/<kernel family>.cpp and cuda/<kernel family>.cu.
// Composite ops (losses, logsumexp, ...) are written with other ops; they are listed too, because users
// call them and they get their own gradient checks.
#pragma once
#include <string>
#include <vector>

#define NABLA_OPS(X)                                                \
  /* views and copies */                                            \
  X(view, view, Differentiable)                                     \
  X(reshape, view, Differentiable)                                  \
  X(permute, view, Differentiable)                                  \
  X(transpose, view, Differentiable)                                \
  X(narrow, view, Differentiable)                                   \
  X(select, view, Differentiable)                                   \
  X(expand, view, Differentiable)                                   \
  X(squeeze, view, Differentiable)                                  \
  X(unsqueeze, view, Differentiable)                                \
  X(flatten, view, Differentiable)                                  \
  X(contiguous, view, Differentiable)                               \
  X(clone, view, Differentiable)                                    \
  X(cast, view, Differentiable)                                     \
  /* element-wise unary */                                          \
  X(neg, elementwise, Differentiable)                               \
  X(abs, elementwise, Differentiable)                               \
  X(exp, elementwise, Differentiable)                               \
  X(log, elementwise, Differentiable)                               \
  X(log1p, elementwise, Differentiable)                             \
  X(sqrt, elementwise, Differentiable)                              \
  X(rsqrt, elementwise, Differentiable)                             \
  X(tanh, elementwise, Differentiable)                              \
  X(sigmoid, elementwise, Differentiable)                           \
  X(relu, elementwise, Differentiable)                              \
  X(leaky_relu, elementwise, Differentiable)                        \
  X(gelu, elementwise, Differentiable)                              \
  X(gelu_tanh, elementwise, Differentiable)                         \
  X(silu, elementwise, Differentiable)                              \
  X(clamp, elementwise, Differentiable)                             \
  /* element-wise binary, with broadcasting */                      \
  X(add, elementwise, Differentiable)                               \
  X(add_relu, elementwise, Differentiable)                          \
  X(sub, elementwise, Differentiable)                               \
  X(mul, elementwise, Differentiable)                               \
  X(div, elementwise, Differentiable)                               \
  X(pow, elementwise, Differentiable)                               \
  X(maximum, elementwise, Differentiable)                           \
  X(minimum, elementwise, Differentiable)                           \
  X(where, elementwise, Differentiable)                             \
  X(eq, elementwise, NonDifferentiable)                             \
  X(ne, elementwise, NonDifferentiable)                             \
  X(lt, elementwise, NonDifferentiable)                             \
  X(le, elementwise, NonDifferentiable)                             \
  X(gt, elementwise, NonDifferentiable)                             \
  X(ge, elementwise, NonDifferentiable)                             \
  /* reductions over any dims, keepdim */                           \
  X(sum, reduce, Differentiable)                                    \
  X(mean, reduce, Differentiable)                                   \
  X(amax, reduce, Differentiable)                                   \
  X(amin, reduce, Differentiable)                                   \
  X(max, reduce, Differentiable)                                    \
  X(min, reduce, Differentiable)                                    \
  X(argmax, reduce, NonDifferentiable)                              \
  X(argmin, reduce, NonDifferentiable)                              \
  X(var, reduce, Differentiable)                                    \
  X(std_dev, reduce, Differentiable)                                \
  X(norm, reduce, Differentiable)                                   \
  X(logsumexp, reduce, Differentiable)                              \
  /* linear algebra */                                              \
  X(matmul, linalg, Differentiable)                                 \
  X(einsum, linalg, Differentiable)                                 \
  X(tensordot, linalg, Differentiable)                              \
  X(linear, linalg, Differentiable)                                 \
  /* normalisation, activation layers */                            \
  X(softmax, nn, Differentiable)                                    \
  X(log_softmax, nn, Differentiable)                                \
  X(layer_norm, nn, Differentiable)                                 \
  X(batch_norm, nn, Differentiable)                                 \
  X(batch_norm_add_relu, nn, Differentiable)                        \
  X(dropout, nn, Differentiable)                                    \
  /* fused attention (ops/attention.h) */                           \
  X(scaled_dot_product_attention, attention, Differentiable)        \
  /* embeddings */                                                  \
  X(embedding, embedding, Differentiable)                           \
  X(embedding_bag, embedding, Differentiable)                       \
  X(multi_embedding_bag, multi_embedding, Differentiable)           \
  /* convolution and pooling */                                     \
  X(conv2d, conv, Differentiable)                                   \
  X(max_pool2d, conv, Differentiable)                               \
  X(avg_pool2d, conv, Differentiable)                               \
  X(adaptive_avg_pool2d, conv, Differentiable)                      \
  X(upsample_nearest2d, conv, Differentiable)                       \
  /* joining, splitting, indexing */                                \
  X(cat, index, Differentiable)                                     \
  X(stack, index, Differentiable)                                   \
  X(split, index, Differentiable)                                   \
  X(chunk, index, Differentiable)                                   \
  X(index_select, index, Differentiable)                            \
  X(gather, index, Differentiable)                                  \
  X(scatter_add, index, Differentiable)                             \
  X(masked_fill, index, Differentiable)                             \
  X(one_hot, index, NonDifferentiable)                              \
  /* losses */                                                      \
  X(cross_entropy, loss, Differentiable)                            \
  X(nll_loss, loss, Differentiable)                                 \
  X(mse_loss, loss, Differentiable)                                 \
  X(l1_loss, loss, Differentiable)                                  \
  X(smooth_l1_loss, loss, Differentiable)                           \
  X(binary_cross_entropy_with_logits, loss, Differentiable)         \
  X(kl_div, loss, Differentiable)                                   \
  /* factories and random draws (engine/random.h, ops/factory.h) */ \
  X(empty, factory, NonDifferentiable)                              \
  X(zeros, factory, NonDifferentiable)                              \
  X(ones, factory, NonDifferentiable)                               \
  X(full, factory, NonDifferentiable)                               \
  X(arange, factory, NonDifferentiable)                             \
  X(linspace, factory, NonDifferentiable)                           \
  X(rand, factory, NonDifferentiable)                               \
  X(randn, factory, NonDifferentiable)                              \
  X(randint, factory, NonDifferentiable)                            \
  X(normal, factory, NonDifferentiable)                             \
  X(uniform, factory, NonDifferentiable)

namespace nabla::ops {

enum class OpKind { Differentiable, NonDifferentiable };

struct OpInfo {
  const char* name;
  const char* family;
  OpKind kind;
};

inline const std::vector<OpInfo>& op_table() {
#define NABLA_OP_ROW(name, family, kind) OpInfo{#name, #family, OpKind::kind},
  static const std::vector<OpInfo> table = {NABLA_OPS(NABLA_OP_ROW)};
#undef NABLA_OP_ROW
  return table;
}

}  // namespace nabla::ops
