// CUDA parity of batch_norm_add_relu (cuda/batch_norm.cu with the BnEpi epilogue): the fused op on the GPU
// against the UNFUSED composition relu(batch_norm(x) + residual) on the CPU, values and gradients (x,
// weight, bias, residual) and the running statistics, f32 and bf16 (f64 once), NCHW and channels-last,
// training and evaluation, with and without the residual. The shapes walk every launch path of the kernels:
//   NCHW s >= 32: plane partials + the column apply;  NCHW s < 32 and [N, C]: column partials;
//   channels-last C a multiple of the 16-byte pack (4 f32, 8 bf16): the packed partials and apply (one and
//   several chunks, C = 24 bf16 with 3 threads a row, C = 512 with two tiles);  channels-last with an odd C:
//   the flat apply;  x not requiring a gradient: the apply that writes only the residual's gradient.
// A few cases run the fused op on both sides (the CPU's fused kernel against the GPU's), and two plain tests
// compare a ResNet BasicBlock and Bottleneck on the GPU fused against unfused (NABLA_RESNET_FUSED's switch).
// The leaky form (negative_slope 0.1, Darknet's conv + BN + leaky) runs on the same launch paths against
// leaky_relu(batch_norm(x) (+ residual)) on the CPU.
//
// bf16: the GPU runs the fused op in bf16 (weights too, as batch_norm without autocast needs); the CPU runs
// the unfused composition in f32 on the same bf16-rounded inputs and rounds its result to bf16, so the
// cotangent reaches both sides rounded. The ReLU mask is then the same on both sides except where a
// pre-activation is within f32 rounding of 0.
#include <cmath>

#include "algorithms/optim/optimizer.h"
#include "models/nn/layers.h"
#include "models/resnet.h"
#include "parity.h"

namespace nabla {
namespace {
using test::parity_randn;
using In = const std::vector<Tensor>&;
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;
constexpr test::ParityOptions kF32Tol{.atol = 2e-4, .rtol = 2e-4};
constexpr test::ParityOptions kBf16Tol{.atol = 1.5e-1, .rtol = 3e-2};
// f64 on the GPU: the result is compared in f32 (as the other f64 channels-last batch-norm case).
constexpr test::ParityOptions kF64Tol{.atol = 1e-5, .rtol = 1e-5};

struct Spec {
  DType dtype = DType::f32;  // of the GPU run
  bool channels_last = false;
  bool training = true;
  bool residual = true;
  bool fused_on_cpu = false;  // the CPU runs the fused op too (kernel parity) instead of the composition
  double slope = 0.0;         // > 0: the leaky form
};

// Inputs: x, w, b, residual, running_mean, running_var (the last two constant). The running statistics are
// cloned inside, updated, and added into the output, so their update is compared too.
Tensor fused_or_reference(In in, const Spec& sp) {
  const bool gpu = in[0].device().is_cuda();
  const bool low = sp.dtype == DType::bf16 || sp.dtype == DType::f16;
  const auto prep = [&](const Tensor& t, bool spatial) {
    if (!t.defined()) return t;
    Tensor u = t;
    if (low) u = gpu ? t.to(sp.dtype) : t.to(sp.dtype).to(DType::f32);  // rounded on the CPU
    if (sp.dtype == DType::f64) u = t.to(DType::f64);
    return spatial && sp.channels_last ? u.contiguous(kCL) : u;
  };
  Tensor x = prep(in[0], true), w = prep(in[1], false), b = prep(in[2], false);
  Tensor r = sp.residual ? prep(in[3], true) : Tensor();
  // The running statistics in x's dtype (no autocast here), cloned: both sides start from the same values.
  Tensor rm = prep(in[4], false).clone(), rv = prep(in[5], false).clone();
  Tensor y;
  if (gpu || sp.fused_on_cpu) {
    y = batch_norm_add_relu(x, w, b, rm, rv, sp.training, r, 0.1, 1e-5, sp.slope);
  } else {
    Tensor h = batch_norm(x, w, b, rm, rv, sp.training, 0.1, 1e-5);
    if (sp.slope > 0)
      y = leaky_relu(r.defined() ? h + r : h, sp.slope);
    else
      y = r.defined() ? add_relu(h, r) : relu(h);
  }
  const int64_t c = in[0].size(1);
  Shape st(in[0].dim(), 1);
  st[1] = c;
  y = y.to(DType::f32);
  if (!gpu && low) y = y.to(sp.dtype).to(DType::f32);
  return y + rm.to(DType::f32).reshape(st) * 0.5 + rv.to(DType::f32).reshape(st) * 0.25;
}

// The cases below make them leaves again (x * 1.5 + 0.3 is not one) with the gradients they want.
std::vector<Tensor> inputs(const Shape& x) {
  const int64_t c = x[1];
  return {parity_randn(x) * 1.5 + 0.3,
          parity_randn({c}),
          parity_randn({c}),
          parity_randn(x),
          parity_randn({c}, false) * 0.3,
          test::parity_uniform({c}, 0.5, 2.0, false)};
}

#define FUSED_BN_PARITY(name, xshape, tol, ...)                                \
  NABLA_PARITY(batch_norm_add_relu, name) {                                    \
    static const Spec sp{__VA_ARGS__};                                         \
    std::vector<Tensor> in = inputs(xshape);                                   \
    for (size_t i = 0; i < in.size(); ++i)                                     \
      in[i] = in[i].detach().requires_grad_(i < 3 || (i == 3 && sp.residual)); \
    EXPECT_PARITY([](In v) { return fused_or_reference(v, sp); }, in, tol);    \
  }

// NCHW, f32: plane partials (s >= 32), column partials (s < 32, and [N, C]).
FUSED_BN_PARITY(f32_nchw_planes_train, Shape({6, 5, 9, 9}), kF32Tol, .dtype = DType::f32)
FUSED_BN_PARITY(f32_nchw_planes_chunks_train, Shape({64, 3, 8, 8}), kF32Tol, .dtype = DType::f32)
FUSED_BN_PARITY(f32_nchw_columns_train, Shape({40, 7, 3, 2}), kF32Tol, .dtype = DType::f32)
FUSED_BN_PARITY(f32_2d_columns_train, Shape({300, 16}), kF32Tol, .dtype = DType::f32)
FUSED_BN_PARITY(f32_nchw_eval, Shape({4, 6, 7, 7}), kF32Tol, .dtype = DType::f32, .training = false)
FUSED_BN_PARITY(f32_nchw_no_residual, Shape({5, 6, 8, 8}), kF32Tol, .dtype = DType::f32, .residual = false)
// Channels-last, f32: packed (C % 4 == 0) with one and several chunks, the flat apply (C odd), evaluation.
FUSED_BN_PARITY(f32_cl_packed_c64, Shape({8, 64, 10, 10}), kF32Tol, .dtype = DType::f32,
                .channels_last = true)
FUSED_BN_PARITY(f32_cl_packed_c16_many_rows, Shape({16, 16, 24, 24}), kF32Tol, .dtype = DType::f32,
                .channels_last = true)
FUSED_BN_PARITY(f32_cl_flat_c37, Shape({4, 37, 9, 7}), kF32Tol, .dtype = DType::f32, .channels_last = true)
FUSED_BN_PARITY(f32_cl_packed_eval, Shape({3, 32, 6, 5}), kF32Tol, .dtype = DType::f32, .channels_last = true,
                .training = false)
FUSED_BN_PARITY(f32_cl_packed_no_residual, Shape({4, 24, 7, 7}), kF32Tol, .dtype = DType::f32,
                .channels_last = true, .residual = false)
// bf16: NCHW planes and columns; channels-last packed (C = 64 ResNet's, 24: 3 threads a row, 512: 2 tiles).
FUSED_BN_PARITY(bf16_nchw_planes_train, Shape({8, 8, 9, 9}), kBf16Tol, .dtype = DType::bf16)
// NCHW planes with s a multiple of the pack: the packed partials and apply (bf16 s = 64, f32 s = 36).
FUSED_BN_PARITY(bf16_nchw_planes_packed_train, Shape({8, 8, 8, 8}), kBf16Tol, .dtype = DType::bf16)
FUSED_BN_PARITY(f32_nchw_planes_packed_train, Shape({6, 5, 6, 6}), kF32Tol, .dtype = DType::f32)
FUSED_BN_PARITY(f32_nchw_planes_packed_eval, Shape({6, 5, 6, 6}), kF32Tol, .dtype = DType::f32,
                .training = false)
// c s a multiple of the pack, s not (packs across two planes in the apply): ResNet-50's 7 x 7 layers.
FUSED_BN_PARITY(f32_nchw_packs_straddle_planes, Shape({6, 4, 7, 7}), kF32Tol, .dtype = DType::f32)
FUSED_BN_PARITY(bf16_nchw_columns_eval, Shape({64, 20}), kBf16Tol, .dtype = DType::bf16, .training = false)
FUSED_BN_PARITY(bf16_cl_packed_c64, Shape({4, 64, 16, 16}), kBf16Tol, .dtype = DType::bf16,
                .channels_last = true)
FUSED_BN_PARITY(bf16_cl_packed_c24, Shape({8, 24, 9, 9}), kBf16Tol, .dtype = DType::bf16,
                .channels_last = true)
FUSED_BN_PARITY(bf16_cl_packed_c512, Shape({4, 512, 5, 5}), kBf16Tol, .dtype = DType::bf16,
                .channels_last = true)
FUSED_BN_PARITY(bf16_cl_flat_c33_no_residual, Shape({4, 33, 7, 5}), kBf16Tol, .dtype = DType::bf16,
                .channels_last = true, .residual = false)
FUSED_BN_PARITY(bf16_cl_packed_eval, Shape({4, 64, 6, 6}), kBf16Tol, .dtype = DType::bf16,
                .channels_last = true, .training = false)
// f64: packed (2 a pack) and planes.
FUSED_BN_PARITY(f64_cl_packed, Shape({5, 6, 7, 7}), kF64Tol, .dtype = DType::f64, .channels_last = true)
FUSED_BN_PARITY(f64_nchw_planes, Shape({5, 6, 7, 7}), kF64Tol, .dtype = DType::f64)
// The CPU's fused kernel against the GPU's.
FUSED_BN_PARITY(f32_cpu_fused_nchw, Shape({6, 5, 9, 9}), kF32Tol, .dtype = DType::f32, .fused_on_cpu = true)
FUSED_BN_PARITY(f32_cpu_fused_cl, Shape({6, 32, 5, 5}), kF32Tol, .dtype = DType::f32, .channels_last = true,
                .fused_on_cpu = true)

// The leaky form on every launch path: planes, columns, packed (f32 and bf16), flat, evaluation, and the
// CPU's fused kernel against the GPU's.
FUSED_BN_PARITY(leaky_f32_nchw_planes_train, Shape({6, 5, 9, 9}), kF32Tol, .dtype = DType::f32,
                .residual = false, .slope = 0.1)
FUSED_BN_PARITY(leaky_f32_nchw_columns_train, Shape({40, 7, 3, 2}), kF32Tol, .dtype = DType::f32,
                .slope = 0.1)
FUSED_BN_PARITY(leaky_f32_cl_packed_c64, Shape({8, 64, 10, 10}), kF32Tol, .dtype = DType::f32,
                .channels_last = true, .residual = false, .slope = 0.1)
FUSED_BN_PARITY(leaky_f32_cl_flat_c37, Shape({4, 37, 9, 7}), kF32Tol, .dtype = DType::f32,
                .channels_last = true, .slope = 0.1)
FUSED_BN_PARITY(leaky_f32_cl_packed_eval, Shape({3, 32, 6, 5}), kF32Tol, .dtype = DType::f32,
                .channels_last = true, .training = false, .residual = false, .slope = 0.1)
FUSED_BN_PARITY(leaky_bf16_cl_packed_c64, Shape({4, 64, 16, 16}), kBf16Tol, .dtype = DType::bf16,
                .channels_last = true, .residual = false, .slope = 0.1)
FUSED_BN_PARITY(leaky_bf16_nchw_planes_train, Shape({8, 8, 9, 9}), kBf16Tol, .dtype = DType::bf16,
                .residual = false, .slope = 0.1)
FUSED_BN_PARITY(leaky_f64_cl_packed, Shape({5, 6, 7, 7}), kF64Tol, .dtype = DType::f64, .channels_last = true,
                .slope = 0.1)
FUSED_BN_PARITY(leaky_f32_cpu_fused_cl, Shape({6, 32, 5, 5}), kF32Tol, .dtype = DType::f32,
                .channels_last = true, .fused_on_cpu = true, .slope = 0.1)

// x needs no gradient: the backward apply writes only the residual's (out == nullptr in the kernels).
#define FUSED_BN_PARITY_RESIDUAL_ONLY(name, xshape, tol, ...)                             \
  NABLA_PARITY(batch_norm_add_relu, name) {                                               \
    static const Spec sp{__VA_ARGS__};                                                    \
    std::vector<Tensor> in = inputs(xshape);                                              \
    for (size_t i = 0; i < in.size(); ++i) in[i] = in[i].detach().requires_grad_(i == 3); \
    EXPECT_PARITY([](In v) { return fused_or_reference(v, sp); }, in, tol);               \
  }
FUSED_BN_PARITY_RESIDUAL_ONLY(residual_only_grad_cl_packed, Shape({4, 32, 6, 6}), kF32Tol,
                              .dtype = DType::f32, .channels_last = true)
FUSED_BN_PARITY_RESIDUAL_ONLY(residual_only_grad_nchw_eval, Shape({4, 6, 6, 6}), kF32Tol, .dtype = DType::f32,
                              .training = false)

// ---- ResNet blocks on the GPU: fused against unfused ----

// Restores the process-wide switch.
struct FusedSwitch {
  bool saved = models::resnet_fused();
  ~FusedSwitch() { models::set_resnet_fused(saved); }
};

// out and every parameter gradient of `block` on x (f32, TF32 off), fused or not.
std::vector<Tensor> block_run(nn::Module& block, const Tensor& x, const Tensor& g, bool fused) {
  models::set_resnet_fused(fused);
  for (auto& p : block.parameters()) p.zero_grad();
  Tensor y = block.forward(x);
  y.backward(g);
  std::vector<Tensor> out{y.detach().clone()};
  for (auto& p : block.parameters()) out.push_back(p.grad());
  return out;
}

void expect_block_fused_matches_unfused(nn::Module& block, const Shape& xshape, bool channels_last) {
  FusedSwitch keep;
  const bool tf32 = cuda::tf32_enabled();
  cuda::set_tf32_enabled(false);  // the convolutions in full f32, so only the fusion differs
  block.to(Device::cuda());
  if (channels_last) block.to(kCL);
  Tensor x = parity_randn(xshape, false).to(Device::cuda());
  if (channels_last) x = x.contiguous(kCL);
  Tensor y0 = block.forward(x);
  Tensor g = parity_randn(y0.shape(), false).to(Device::cuda());
  // Both runs from the same running statistics: the first forward above moved them, which is fine as long
  // as the two runs below see the same ones (training mode normalises with the batch's).
  const std::vector<Tensor> f = block_run(block, x, g, true), u = block_run(block, x, g, false);
  ASSERT_EQ(f.size(), u.size());
  // |fused - unfused| <= 2e-4 (1 + |unfused|): the two differ only in the forward's roundings.
  for (size_t i = 0; i < f.size(); ++i)
    test::compare_tensors(u[i].to(Device::cpu()), f[i], {.atol = 2e-4, .rtol = 2e-4},
                          "block tensor " + std::to_string(i));
  cuda::set_tf32_enabled(tf32);
}

TEST(CudaFusedBn, BasicBlockFusedMatchesUnfused) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  models::BasicBlock block(16, 32, 2);  // with the projection shortcut
  expect_block_fused_matches_unfused(block, {4, 16, 12, 12}, false);
}

TEST(CudaFusedBn, BottleneckFusedMatchesUnfusedChannelsLast) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  models::Bottleneck block(64, 16, 1);  // identity shortcut, C = 64 (the packed kernels)
  expect_block_fused_matches_unfused(block, {4, 64, 8, 8}, true);
}

}  // namespace
}  // namespace nabla
