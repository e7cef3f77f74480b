// Autocast on CUDA tensors (ops/autocast.h): lower-precision GEMMs whose f32 master weights get f32
// gradients close to the f32 computation, f32 softmax/reductions/losses, promotion in binary arithmetic,
// and backward under an active guard. Tests skip without a GPU (and, for ops whose CUDA kernels live in
// another family, without those kernels).
#include "models/nn/layers.h"
#include "parity.h"

namespace nabla {
namespace {

#define REQUIRE_GPU() \
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device"

Tensor on_gpu(const Tensor& t, bool requires_grad = false) {
  Tensor g = t.detach().to(Device::cuda(0));
  return requires_grad ? g.requires_grad_() : g;
}

// f32 results without TF32, for references.
struct NoTf32 {
  bool prev = cuda::tf32_enabled();
  NoTf32() { cuda::set_tf32_enabled(false); }
  ~NoTf32() { cuda::set_tf32_enabled(prev); }
};

TEST(CudaAutocast, MatmulRunsInBf16AndTheF32WeightGetsAnF32GradientCloseToF32) {
  REQUIRE_GPU();
  NoTf32 no_tf32;
  Tensor xh = test::randn32({64, 96}), wh = test::randn32({96, 80});
  // f32 reference.
  Tensor x0 = on_gpu(xh, true), w0 = on_gpu(wh, true);
  Tensor y0 = matmul(x0, w0);
  sum(y0 * y0).backward();
  for (DType dt : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor x = on_gpu(xh, true), w = on_gpu(wh, true);
    Tensor y, loss;
    {
      AutocastGuard guard(dt);
      y = matmul(x, w);
      EXPECT_EQ(y.dtype(), dt);
      EXPECT_TRUE(y.device().is_cuda());
      loss = sum(y * y);  // y * y in dt, the sum in f32
      EXPECT_EQ(loss.dtype(), DType::f32);
      loss.backward();  // under the guard: backward runs with autocast off
      EXPECT_TRUE(autocast_enabled());
    }
    EXPECT_FALSE(autocast_enabled());
    ASSERT_TRUE(w.grad().defined());
    EXPECT_EQ(w.grad().dtype(), DType::f32);
    EXPECT_EQ(x.grad().dtype(), DType::f32);
    // Values ~10, gradients ~1e3: bf16 keeps 8 significant bits.
    const double rel = dt == DType::bf16 ? 3e-2 : 4e-3;
    test::compare_tensors(y0.detach(), y.detach().to(DType::f32), {.atol = 10 * rel, .rtol = rel}, "y");
    test::compare_tensors(w0.grad(), w.grad(), {.atol = 300 * rel, .rtol = rel}, "dL/dw");
    test::compare_tensors(x0.grad(), x.grad(), {.atol = 300 * rel, .rtol = rel}, "dL/dx");
  }
}

TEST(CudaAutocast, SoftmaxUnderAutocastReturnsF32) {
  REQUIRE_GPU();
  if (!ops::softmax_kernel.has(Device::cuda(0))) GTEST_SKIP() << "no CUDA softmax kernel in this build";
  Tensor a = on_gpu(test::randn32({8, 33})), b = on_gpu(test::randn32({33, 40}), true);
  AutocastGuard guard;
  Tensor logits = matmul(a, b);
  ASSERT_EQ(logits.dtype(), DType::bf16);
  Tensor p = softmax(logits, 1);
  EXPECT_EQ(p.dtype(), DType::f32);
  EXPECT_EQ(log_softmax(logits, -1).dtype(), DType::f32);
  EXPECT_EQ(softmax(on_gpu(test::randn32({4, 5})), 1).dtype(), DType::f32);  // f32 stays f32
  sum(p * p).backward();
  EXPECT_EQ(b.grad().dtype(), DType::f32);
  std::vector<double> rows = sum(p, {1}).to(Device::cpu()).to_double_vector();
  for (double r : rows) EXPECT_NEAR(r, 1.0, 1e-5);
}

TEST(CudaAutocast, ReductionsAndLossesComputeInF32) {
  REQUIRE_GPU();
  Tensor h = on_gpu(test::randn32({16, 40})).to(DType::bf16);
  AutocastGuard guard;
  EXPECT_EQ(sum(h).dtype(), DType::f32);
  EXPECT_EQ(mean(h, {1}).dtype(), DType::f32);
  EXPECT_EQ(var(h, {0}).dtype(), DType::f32);
  EXPECT_EQ(norm(h).dtype(), DType::f32);
  EXPECT_EQ(amax(h).dtype(), DType::bf16);  // exact in any dtype: not cast
  Tensor target = on_gpu(test::randn32({16, 40}));
  Tensor pred = h.detach().requires_grad_();
  Tensor loss = mse_loss(pred, target);  // bf16 prediction, f32 target
  EXPECT_EQ(loss.dtype(), DType::f32);
  loss.backward();
  EXPECT_EQ(pred.grad().dtype(), DType::bf16);  // each gradient in its input's dtype
  EXPECT_EQ(l1_loss(h, target).dtype(), DType::f32);
}

TEST(CudaAutocast, BinaryArithmeticPromotesTheHalfOperandToF32) {
  REQUIRE_GPU();
  Tensor h = on_gpu(test::randn32({5, 6})).to(DType::bf16).requires_grad_();
  Tensor f = on_gpu(test::randn32({5, 6}), true);
  Tensor y;
  {
    AutocastGuard guard;
    y = h + f;
    EXPECT_EQ(y.dtype(), DType::f32);
    EXPECT_EQ((f * h).dtype(), DType::f32);
    EXPECT_EQ((h - f).dtype(), DType::f32);
    EXPECT_EQ((f / (h * h + 1.0)).dtype(), DType::f32);
  }
  sum(y).backward();
  EXPECT_EQ(h.grad().dtype(), DType::bf16);
  EXPECT_EQ(f.grad().dtype(), DType::f32);
  // Without autocast mixing dtypes stays an error.
  test::expect_error([&] { add(h, f); }, {"add", "dtype mismatch"});
}

TEST(CudaAutocast, LinearLayerRunsInBf16WithF32MasterWeights) {
  REQUIRE_GPU();
  nn::Linear lin(24, 10);
  lin.weight = on_gpu(lin.weight, true);
  lin.bias = on_gpu(lin.bias, true);
  Tensor x = on_gpu(test::randn32({7, 24}));
  Tensor y;
  {
    AutocastGuard guard;
    y = lin.forward(x);
    EXPECT_EQ(y.dtype(), DType::bf16);
    sum(y).backward();
  }
  EXPECT_EQ(lin.weight.grad().dtype(), DType::f32);
  EXPECT_EQ(lin.bias.grad().dtype(), DType::f32);
  // d sum / d bias = the batch size, exactly representable in bf16.
  EXPECT_EQ(lin.bias.grad().to(Device::cpu()).to_double_vector(), std::vector<double>(10, 7.0));
}

TEST(CudaAutocast, EinsumContractsInBf16) {
  REQUIRE_GPU();
  Tensor a = on_gpu(test::randn32({3, 4, 5})), b = on_gpu(test::randn32({5, 6}), true);
  AutocastGuard guard;
  Tensor c = einsum("ijk,kl->ijl", {a, b});
  EXPECT_EQ(c.dtype(), DType::bf16);
  sum(c).backward();
  EXPECT_EQ(b.grad().dtype(), DType::f32);
}

TEST(CudaAutocast, Conv2dRunsInBf16) {
  REQUIRE_GPU();
  if (!ops::conv2d_forward_kernel.has(Device::cuda(0))) GTEST_SKIP() << "no CUDA conv2d kernel in this build";
  NoTf32 no_tf32;
  Tensor xh = test::randn32({2, 3, 9, 9}), wh = test::randn32({4, 3, 3, 3}), bh = test::randn32({4});
  Tensor x0 = on_gpu(xh), w0 = on_gpu(wh, true), b0 = on_gpu(bh, true);
  Tensor y0 = conv2d(x0, w0, b0, {1, 1}, {1, 1});
  sum(y0).backward();
  Tensor w = on_gpu(wh, true), b = on_gpu(bh, true);
  Tensor y;
  {
    AutocastGuard guard;
    y = conv2d(on_gpu(xh), w, b, {1, 1}, {1, 1});
    EXPECT_EQ(y.dtype(), DType::bf16);
    sum(y).backward();
  }
  EXPECT_EQ(w.grad().dtype(), DType::f32);
  EXPECT_EQ(b.grad().dtype(), DType::f32);
  test::compare_tensors(y0.detach(), y.detach().to(DType::f32), {.atol = 0.3, .rtol = 3e-2}, "conv2d y");
  test::compare_tensors(w0.grad(), w.grad(), {.atol = 1.0, .rtol = 3e-2}, "conv2d dL/dw");
}

TEST(CudaAutocast, BatchNormRunsInItsInputsDtypeWithF32StatisticsAndGradients) {
  REQUIRE_GPU();
  // As under torch.autocast: a bf16 activation stays bf16 through batch_norm (no casts over it), the weight
  // and bias get f32 gradients, and the running statistics stay f32 and match the f32 module's.
  manual_seed(3);
  auto ref = nn::BatchNorm2d(16), amp = nn::BatchNorm2d(16);
  Tensor wh = test::randn32({16}), bh = test::randn32({16});
  for (auto* m : {&ref, &amp}) {
    (*m)->weight.set_data(wh.clone());
    (*m)->bias.set_data(bh.clone());
    (*m)->to(Device::cuda(0));
  }
  Tensor x = on_gpu((test::randn32({8, 16, 6, 6}) * 3.0 + 1.5).contiguous(MemoryFormat::ChannelsLast));
  Tensor r = on_gpu(test::randn32({8, 16, 6, 6}));
  Tensor y0 = ref->forward(x);
  sum(y0 * r).backward();
  Tensor y;
  {
    AutocastGuard guard;
    y = amp->forward(x.to(DType::bf16));
    EXPECT_EQ(y.dtype(), DType::bf16);
    EXPECT_TRUE(y.is_contiguous(MemoryFormat::ChannelsLast));
    sum(y.to(DType::f32) * r).backward();
  }
  EXPECT_EQ(amp->weight.grad().dtype(), DType::f32);
  EXPECT_EQ(amp->bias.grad().dtype(), DType::f32);
  EXPECT_EQ(amp->running_mean.dtype(), DType::f32);
  test::compare_tensors(y0.detach(), y.detach().to(DType::f32), {.atol = 5e-2, .rtol = 2e-2}, "bn y");
  test::compare_tensors(ref->weight.grad(), amp->weight.grad(), {.atol = 0.5, .rtol = 3e-2}, "bn dL/dw");
  test::compare_tensors(ref->bias.grad(), amp->bias.grad(), {.atol = 0.5, .rtol = 3e-2}, "bn dL/db");
  test::compare_tensors(ref->running_mean, amp->running_mean, {.atol = 2e-2, .rtol = 1e-2}, "running_mean");
  test::compare_tensors(ref->running_var, amp->running_var, {.atol = 5e-2, .rtol = 2e-2}, "running_var");
  // Evaluation under autocast reads the f32 running statistics with a bf16 input.
  ref->eval();
  amp->eval();
  AutocastGuard guard;
  Tensor e = amp->forward(x.to(DType::bf16));
  EXPECT_EQ(e.dtype(), DType::bf16);
  test::compare_tensors(ref->forward(x).detach(), e.to(DType::f32), {.atol = 5e-2, .rtol = 2e-2},
                        "bn eval y");
}

TEST(CudaAutocast, F16TrainingStepWithGradScaler) {
  // Autocast f16 forward + scaled backward: the f32 weight's unscaled gradient is close to the f32 one.
  REQUIRE_GPU();
  NoTf32 no_tf32;
  Tensor xh = test::randn32({32, 16}), wh = test::randn32({16, 8});
  Tensor w0 = on_gpu(wh, true);
  mean(matmul(on_gpu(xh), w0)).backward();
  Tensor w = on_gpu(wh, true);
  Tensor loss;
  {
    AutocastGuard guard(DType::f16);
    loss = mean(matmul(on_gpu(xh), w));
  }
  EXPECT_EQ(loss.dtype(), DType::f32);
  (loss * 65536.0).backward();
  Tensor g = w.grad() / 65536.0;
  test::compare_tensors(w0.grad(), g, {.atol = 1e-3, .rtol = 4e-3}, "unscaled f16 gradient");
}

// The cast cache (torch.autocast's): a weight read by two matmuls in one region is cast once (both reads
// see the same bf16 tensor), its gradient is the sum of both uses' (as without the cache), the cache is
// dropped when the outermost guard ends, and activations, no_grad regions and replaced storage are not
// served from it.
TEST(CudaAutocast, CastCacheCastsAWeightOncePerRegion) {
  REQUIRE_GPU();
  NoTf32 no_tf32;
  Tensor xh = test::randn32({16, 32}), wh = test::randn32({32, 32});
  Tensor x = on_gpu(xh), w = on_gpu(wh, true);  // x wants no gradient: only w is a cacheable leaf
  Tensor loss;
  {
    AutocastGuard guard(DType::bf16);
    const Tensor a = autocast_input(w, AutocastKind::lower_precision);
    const Tensor b = autocast_input(w, AutocastKind::lower_precision);
    EXPECT_EQ(a.dtype(), DType::bf16);
    EXPECT_EQ(a.data_ptr(), b.data_ptr()) << "the weight was cast twice in one region";
    EXPECT_EQ(autocast_cache_size(), 1u);
    // An activation (not a leaf) is not cached.
    Tensor h = x * 2.0;
    EXPECT_NE(autocast_input(h, AutocastKind::lower_precision).data_ptr(),
              autocast_input(h, AutocastKind::lower_precision).data_ptr());
    {
      AutocastGuard inner(DType::bf16);  // nested: the cache lives on
      Tensor y = matmul(matmul(x, w), w);
      loss = sum(y.to(DType::f32));
    }
    EXPECT_EQ(autocast_cache_size(), 1u);
    {
      NoGradGuard ng;  // no_grad: cast, but not cached (it would carry no graph)
      autocast_input(on_gpu(wh, true), AutocastKind::lower_precision);
      EXPECT_EQ(autocast_cache_size(), 1u);
    }
  }
  EXPECT_EQ(autocast_cache_size(), 0u);
  loss.backward();
  ASSERT_EQ(w.grad().dtype(), DType::f32);
  // f32 reference of the same two uses.
  Tensor x0 = on_gpu(xh, true), w0 = on_gpu(wh, true);
  sum(matmul(matmul(x0, w0), w0)).backward();
  const double scale = amax(abs(w0.grad())).item();
  EXPECT_LT(amax(abs(w.grad() - w0.grad())).item(), 3e-2 * scale);
  // A weight whose storage is replaced (Module::to, set_data) is cast again, with its new values.
  {
    AutocastGuard guard(DType::bf16);
    const Tensor a = autocast_input(w, AutocastKind::lower_precision);
    {
      NoGradGuard ng;
      w.set_data(on_gpu(wh * 2.0));
    }
    const Tensor b = autocast_input(w, AutocastKind::lower_precision);
    EXPECT_NE(a.data_ptr(), b.data_ptr());
    EXPECT_NEAR(b.to(DType::f32).to(Device::cpu()).to_double_vector()[0], 2.0 * wh.to_double_vector()[0],
                1e-2 * (1 + std::abs(2.0 * wh.to_double_vector()[0])));
  }
}

}  // namespace
}  // namespace nabla
