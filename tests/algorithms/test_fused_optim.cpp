// The fused SGD, Adam/AdamW, LARS and LAMB steps (ops/optim_kernels.h) against the op-by-op steps, bit for
// bit.
//
// A strided parameter (a transposed leaf) cannot take the fused kernel, so the optimizer updates it op by op;
// its contiguous twin, with the same values and gradients, goes through the fused kernel. Every step must
// leave both with exactly the same parameters and buffers (tolerance 0), in f32 and f64.
#include "algorithms/optim/optimizer.h"
#include "ops/optim_kernels.h"
#include "testing.h"

namespace nabla::optim {
namespace {

struct Twins {
  std::vector<Tensor> fused, strided;  // same values; strided[i] is a transposed (non-contiguous) leaf
};

Twins make_twins(const std::vector<Shape>& shapes, DType dtype) {
  Twins t;
  for (const Shape& s : shapes) {
    Tensor v = test::randn64(s, false).to(dtype);
    t.fused.push_back(v.clone().requires_grad_());
    if (s.size() == 2) {
      // A [r, c] leaf whose memory is laid out as [c, r].
      Tensor storage = v.t().contiguous();
      Tensor view = storage.t();
      EXPECT_FALSE(view.is_contiguous());
      t.strided.push_back(view.requires_grad_());
    } else {
      t.strided.push_back(v.clone().requires_grad_());  // 1-D and 0-d: contiguous, so fused too
    }
  }
  return t;
}

template <class Opt, class Options>
void expect_fused_equals_unfused(const Options& o, DType dtype, int steps = 4) {
  const std::vector<Shape> shapes{{5, 7}, {3, 129}, {11}, {}};
  Twins t = make_twins(shapes, dtype);
  // Two groups with their own lr and weight decay.
  auto groups = [&](const std::vector<Tensor>& p) {
    return std::vector<ParamGroup>{{.params = {p[0], p[2]}},
                                   {.params = {p[1], p[3]}, .lr = 0.03, .weight_decay = 0.2}};
  };
  Opt a(groups(t.fused), o), b(groups(t.strided), o);
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      // Parameter 2 has no gradient in the first step: its own step count lags behind.
      if (s == 0 && i == 2) {
        t.fused[i].zero_grad(), t.strided[i].zero_grad();
        continue;
      }
      Tensor g = test::randn64(shapes[i], false).to(dtype);
      t.fused[i].set_grad(g.clone());
      t.strided[i].set_grad(g.clone());
    }
    a.step();
    b.step();
    for (size_t i = 0; i < shapes.size(); ++i) {
      SCOPED_TRACE("step " + std::to_string(s + 1) + " param " + std::to_string(i));
      test::expect_close(t.fused[i], t.strided[i], 0.0);
    }
  }
  NamedTensors sa = a.state_tensors(), sb = b.state_tensors();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    SCOPED_TRACE(sa[i].first);
    EXPECT_EQ(sa[i].first, sb[i].first);
    test::expect_close(sa[i].second, sb[i].second, 0.0);
  }
}

TEST(OptimFused, CpuHasTheFusedKernels) {
  EXPECT_TRUE(ops::fused_sgd_kernel.has(Device::cpu()));
  EXPECT_TRUE(ops::fused_adam_kernel.has(Device::cpu()));
  EXPECT_TRUE(ops::amp_unscale_kernel.has(Device::cpu()));
  EXPECT_TRUE(ops::multi_tensor_norm_kernel.has(Device::cpu()));
  EXPECT_TRUE(ops::fused_lars_kernel.has(Device::cpu()));
  EXPECT_TRUE(ops::lamb_moments_kernel.has(Device::cpu()));
  EXPECT_TRUE(ops::lamb_apply_kernel.has(Device::cpu()));
}

TEST(OptimFused, SgdIsBitForBitTheUnfusedStep) {
  for (DType dt : {DType::f32, DType::f64}) {
    SCOPED_TRACE(dtype_name(dt));
    expect_fused_equals_unfused<Sgd>(SgdOptions{.lr = 0.1}, dt);
    expect_fused_equals_unfused<Sgd>(SgdOptions{.lr = 0.1, .weight_decay = 0.01}, dt);
    expect_fused_equals_unfused<Sgd>(
        SgdOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.02}, dt);
    expect_fused_equals_unfused<Sgd>(
        SgdOptions{.lr = 0.1, .momentum = 0.8, .weight_decay = 1e-3, .nesterov = true}, dt);
  }
}

TEST(OptimFused, AdamAndAdamWAreBitForBitTheUnfusedStep) {
  for (DType dt : {DType::f32, DType::f64}) {
    SCOPED_TRACE(dtype_name(dt));
    expect_fused_equals_unfused<Adam>(AdamOptions{.lr = 0.01}, dt);
    expect_fused_equals_unfused<Adam>(
        AdamOptions{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1}, dt);
    expect_fused_equals_unfused<AdamW>(AdamWOptions{.lr = 0.02, .weight_decay = 0.3}, dt);
    expect_fused_equals_unfused<AdamW>(AdamWOptions{.lr = 0.02, .weight_decay = 0.0}, dt);
  }
}

TEST(OptimFused, LargeParametersSpanSeveralChunksAndThreads) {
  // 100,003 elements: several 16384-element chunks, an odd tail, and the OpenMP path.
  expect_fused_equals_unfused<Adam>(AdamOptions{.lr = 0.01, .weight_decay = 0.1}, DType::f32, 2);
  Tensor p = test::randn64({100003}, false).to(DType::f32).requires_grad_();
  Tensor q = test::randn64({317, 315}, false).to(DType::f32);
  Tensor r = q.t().contiguous().t().requires_grad_();  // strided twin of q
  Tensor qq = q.clone().requires_grad_();
  Sgd a({p, qq}, {.lr = 0.1, .momentum = 0.9}), b({r}, {.lr = 0.1, .momentum = 0.9});
  for (int s = 0; s < 3; ++s) {
    p.set_grad(test::randn64({100003}, false).to(DType::f32));
    Tensor g = test::randn64({317, 315}, false).to(DType::f32);
    qq.set_grad(g.clone());
    r.set_grad(g.clone());
    a.step();
    b.step();
    test::expect_close(qq, r, 0.0);
  }
}

TEST(OptimFused, SixteenBitCpuParametersComputeInF32) {
  // bf16/f16 parameters on the CPU (which has no 16-bit arithmetic) step through the fused kernel in f32,
  // rounding once: the result is the f32 step rounded to the parameter's dtype.
  for (DType dt : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor p32 = test::randn64({6, 5}, false).to(dt).to(DType::f32);
    Tensor g32 = test::randn64({6, 5}, false).to(dt).to(DType::f32);
    Tensor p = p32.to(dt).requires_grad_(), ref = p32.clone().requires_grad_();
    p.set_grad(g32.to(dt));
    ref.set_grad(g32);
    Sgd a({p}, {.lr = 0.1}), b({ref}, {.lr = 0.1});
    a.step();
    b.step();
    EXPECT_EQ(p.dtype(), dt);
    test::expect_close(p, ref.detach().to(dt), 0.0);
  }
}

// LARS and LAMB: the fused norms sum each tensor's squares in the order the CPU reduce kernel does, so the
// trust ratios, and with them every step, are bit for bit the op-by-op ones (group 1 has weight decay 0.2;
// the 1-D and 0-d parameters are excluded by dim unless exclude_1d is off).
TEST(OptimFused, LarsIsBitForBitTheUnfusedStep) {
  for (DType dt : {DType::f32, DType::f64}) {
    SCOPED_TRACE(dtype_name(dt));
    expect_fused_equals_unfused<Lars>(
        LarsOptions{.lr = 0.5, .momentum = 0.9, .weight_decay = 0.05, .eta = 0.02}, dt);
    expect_fused_equals_unfused<Lars>(
        LarsOptions{.lr = 0.5, .momentum = 0.9, .eta = 0.02, .eps = 1e-8, .exclude_1d = false}, dt);
    expect_fused_equals_unfused<Lars>(LarsOptions{.lr = 0.1, .momentum = 0.0, .weight_decay = 0.01}, dt);
  }
}

TEST(OptimFused, LambIsBitForBitTheUnfusedStep) {
  for (DType dt : {DType::f32, DType::f64}) {
    SCOPED_TRACE(dtype_name(dt));
    expect_fused_equals_unfused<Lamb>(
        LambOptions{.lr = 0.01, .beta1 = 0.85, .beta2 = 0.99, .weight_decay = 0.1}, dt);
    expect_fused_equals_unfused<Lamb>(LambOptions{.lr = 0.05, .weight_decay = 0.0, .exclude_1d = false}, dt);
  }
}

// Channels-last convolution weights (Module::to(MemoryFormat::ChannelsLast)) take the fused kernels too: the
// kernels index dense tensors flat, and the parameter, its gradient and its buffers share one layout. The
// result must equal the row-major twin's element for element.
template <class Opt, class Options>
void expect_channels_last_equals_row_major(const Options& o) {
  const Shape shape{6, 5, 3, 3};
  Tensor v = test::randn64(shape, false).to(DType::f32);
  Tensor rm = v.clone().requires_grad_();
  Tensor cl = v.contiguous(MemoryFormat::ChannelsLast).requires_grad_();
  ASSERT_FALSE(cl.is_contiguous());
  Opt a(std::vector<Tensor>{rm}, o), b(std::vector<Tensor>{cl}, o);
  for (int s = 0; s < 3; ++s) {
    Tensor g = test::randn64(shape, false).to(DType::f32);
    rm.set_grad(g.clone());
    cl.set_grad(g.contiguous(MemoryFormat::ChannelsLast));
    a.step();
    b.step();
    EXPECT_TRUE(cl.is_contiguous(MemoryFormat::ChannelsLast)) << "the step kept the layout";
    EXPECT_EQ(cl.contiguous().to_vector(), rm.to_vector()) << "step " << s + 1;
  }
}

TEST(OptimFused, ChannelsLastParametersStepLikeRowMajorOnes) {
  expect_channels_last_equals_row_major<Sgd>(SgdOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2});
  expect_channels_last_equals_row_major<AdamW>(AdamWOptions{.lr = 1e-2, .weight_decay = 0.1});
  expect_channels_last_equals_row_major<Lars>(LarsOptions{.lr = 0.1, .weight_decay = 1e-3});
  expect_channels_last_equals_row_major<Lamb>(LambOptions{.lr = 1e-2, .weight_decay = 1e-2});
}

TEST(OptimFused, LarsAndLambZeroGradientKeepRatioOne) {
  // A zero gradient (LARS: ||g|| = 0) and a zero weight (both: ||p|| = 0) take the ratio-1 rule, fused or
  // not.
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor a = zeros({3, 4}, {.dtype = dt, .requires_grad = true});
    Tensor b = zeros({4, 3}, {.dtype = dt}).t().requires_grad_();
    Tensor c = test::randn64({2, 5}, false).to(dt).requires_grad_();
    Tensor d = c.detach().t().contiguous().t().requires_grad_();
    Lars la({a, c}, {.lr = 0.1, .weight_decay = 0.1}), lb({b, d}, {.lr = 0.1, .weight_decay = 0.1});
    for (int s = 0; s < 2; ++s) {
      Tensor g = test::randn64({3, 4}, false).to(dt);
      a.set_grad(g.clone()), b.set_grad(g.clone());
      c.set_grad(zeros({2, 5}, {.dtype = dt})), d.set_grad(zeros({2, 5}, {.dtype = dt}));
      la.step();
      lb.step();
      test::expect_close(a, b, 0.0);
      test::expect_close(c, d, 0.0);
    }
  }
}

}  // namespace
}  // namespace nabla::optim
