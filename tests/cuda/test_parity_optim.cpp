// The fused optimizer steps and GradScaler's unscale on CUDA against the CPU (not op-table ops: plain tests
// that skip without a GPU).
//
// The CUDA kernels (cuda/optim_kernels.cu) run the same element functions as the CPU kernels
// (ops/optim_kernels.h) with correctly rounded, never-contracted arithmetic, so the parameters and buffers
// after each step must be bit-for-bit the CPU's, in f32, f64 and bf16 (tolerance 0). A mismatch therefore
// means an indexing or dispatch bug, not rounding. The shapes cover: several 16384-element chunks with a tail
// that is not a multiple of 4 (the float4 path and its scalar tail), odd small sizes, 0-d and empty
// parameters, more tensors than one launch takes (192), parameters without a gradient in a step (their own
// step count), and a misaligned f32 parameter (which moves its whole launch to the scalar path).
#include <cmath>

#include "algorithms/optim/clip.h"
#include "algorithms/optim/grad_scaler.h"
#include "algorithms/optim/optimizer.h"
#include "ops/optim_kernels.h"
#include "parity.h"

namespace nabla::optim {
namespace {

#define REQUIRE_GPU() \
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device"

struct Params {
  std::vector<Tensor> cpu, gpu;
};

// Leaves with the same values on both devices. misaligned: the second parameter is a view that starts one
// element into its storage (4 bytes for f32), so it is not 16-byte aligned.
Params make_params(const std::vector<Shape>& shapes, DType dtype, bool misaligned = false) {
  Params p;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Tensor v = test::parity_randn(shapes[i], false).to(dtype);
    p.cpu.push_back(v.clone().requires_grad_());
    if (misaligned && i == 1) {
      Tensor flat = test::parity_randn({v.numel() + 1}, false).to(dtype).to(Device::cuda(0));
      Tensor view = flat.narrow(0, 1, v.numel()).reshape(v.shape());
      view.copy_(v.to(Device::cuda(0)));
      EXPECT_TRUE(view.is_contiguous());
      p.gpu.push_back(view.requires_grad_());
    } else {
      p.gpu.push_back(v.to(Device::cuda(0)).requires_grad_());
    }
  }
  return p;
}

// Same gradients on both devices; parameter `skip` gets none in the first step.
void set_grads(Params& p, int step, size_t skip) {
  for (size_t i = 0; i < p.cpu.size(); ++i) {
    if (step == 0 && i == skip) {
      p.cpu[i].zero_grad(), p.gpu[i].zero_grad();
      continue;
    }
    Tensor g = test::parity_randn(p.cpu[i].shape(), false).to(p.cpu[i].dtype());
    p.cpu[i].set_grad(g);
    p.gpu[i].set_grad(g.to(Device::cuda(0)));
  }
}

void expect_bitwise(const Tensor& cpu, const Tensor& gpu, const std::string& what) {
  ASSERT_EQ(cpu.shape(), gpu.shape()) << what;
  ASSERT_EQ(cpu.dtype(), gpu.dtype()) << what;
  EXPECT_TRUE(gpu.device().is_cuda()) << what;
  std::vector<double> a = cpu.to_double_vector(), b = gpu.to(Device::cpu()).to_double_vector();
  int64_t bad = 0, first = -1;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
      worst = std::max(worst, std::abs(a[i] - b[i]));
    }
  EXPECT_EQ(bad, 0) << what << " " << cpu.shape() << ": " << bad << " elements differ, first at " << first
                    << " (cpu " << (first >= 0 ? a[first] : 0) << ", cuda " << (first >= 0 ? b[first] : 0)
                    << "), worst |diff| " << worst;
}

std::vector<ParamGroup> two_groups(const std::vector<Tensor>& p) {
  ParamGroup a, b;
  for (size_t i = 0; i < p.size(); ++i) (i % 2 ? b : a).params.push_back(p[i]);
  b.lr = 0.03;
  b.weight_decay = 0.2;
  return {a, b};
}

const std::vector<Shape> kShapes{{37, 53}, {100003}, {7}, {}, {0}, {3, 129}, {16384}, {5, 4, 3}};

template <class Opt, class Options>
void expect_cuda_matches_cpu(const Options& o, DType dtype, const std::vector<Shape>& shapes = kShapes,
                             bool misaligned = false, int steps = 3) {
  Params p = make_params(shapes, dtype, misaligned);
  Opt cpu(two_groups(p.cpu), o), gpu(two_groups(p.gpu), o);
  for (int s = 0; s < steps; ++s) {
    set_grads(p, s, 2);
    cpu.step();
    gpu.step();
    for (size_t i = 0; i < shapes.size(); ++i)
      expect_bitwise(p.cpu[i].detach(), p.gpu[i].detach(),
                     str_cat(dtype_name(dtype), " step ", s + 1, " param ", i));
  }
  NamedTensors sc = cpu.state_tensors(), sg = gpu.state_tensors();
  ASSERT_EQ(sc.size(), sg.size());
  for (size_t i = 0; i < sc.size(); ++i) {
    EXPECT_EQ(sc[i].first, sg[i].first);
    if (sc[i].second.dtype() == DType::i64)
      EXPECT_EQ(sc[i].second.item(), sg[i].second.item()) << sc[i].first;
    else
      expect_bitwise(sc[i].second, sg[i].second, sc[i].first);
  }
}

TEST(FusedOptimParity, CudaHasTheFusedKernels) {
  REQUIRE_GPU();
  EXPECT_TRUE(ops::fused_sgd_kernel.has(Device::cuda(0)));
  EXPECT_TRUE(ops::fused_adam_kernel.has(Device::cuda(0)));
  EXPECT_TRUE(ops::amp_unscale_kernel.has(Device::cuda(0)));
}

TEST(FusedOptimParity, ThreeAdamStepsMatchTheCpuBitForBit) {
  REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    expect_cuda_matches_cpu<Adam>(AdamOptions{.lr = 0.01}, dt);
    expect_cuda_matches_cpu<Adam>(
        AdamOptions{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1}, dt);
    expect_cuda_matches_cpu<AdamW>(AdamWOptions{.lr = 0.02, .weight_decay = 0.3}, dt);
  }
}

TEST(FusedOptimParity, ThreeSgdStepsMatchTheCpuBitForBit) {
  REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    expect_cuda_matches_cpu<Sgd>(SgdOptions{.lr = 0.1}, dt);
    expect_cuda_matches_cpu<Sgd>(SgdOptions{.lr = 0.1, .weight_decay = 0.01}, dt);
    expect_cuda_matches_cpu<Sgd>(
        SgdOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.02}, dt);
    expect_cuda_matches_cpu<Sgd>(
        SgdOptions{.lr = 0.1, .momentum = 0.8, .weight_decay = 1e-3, .nesterov = true}, dt);
  }
}

TEST(FusedOptimParity, MisalignedF32ParameterTakesTheScalarPath) {
  REQUIRE_GPU();
  expect_cuda_matches_cpu<Adam>(AdamOptions{.lr = 0.01, .weight_decay = 0.1}, DType::f32, kShapes, true);
  expect_cuda_matches_cpu<Sgd>(SgdOptions{.lr = 0.1, .momentum = 0.9}, DType::f32, kShapes, true);
}

TEST(FusedOptimParity, MoreTensorsThanOneLaunchTakes) {
  REQUIRE_GPU();
  std::vector<Shape> many;
  for (int i = 0; i < 400; ++i) many.push_back({1 + (i * 37) % 101});
  many.push_back({40000});  // a multi-chunk tensor after two full launches
  expect_cuda_matches_cpu<Adam>(AdamOptions{.lr = 0.01}, DType::f32, many);
  expect_cuda_matches_cpu<Sgd>(SgdOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true}, DType::f32, many);
}

TEST(FusedOptimParity, StridedParameterFallsBackToTheOpsOnCuda) {
  // A transposed leaf cannot take the fused kernel; its op-by-op step (CUDA element-wise kernels, which may
  // contract into FMA) stays within rounding of the CPU.
  REQUIRE_GPU();
  Tensor v = test::parity_randn({31, 17}, false);
  Tensor cpu = v.clone().requires_grad_();
  Tensor gpu = v.t().contiguous().to(Device::cuda(0)).t().requires_grad_();
  ASSERT_FALSE(gpu.is_contiguous());
  Adam a({cpu}, {.lr = 0.01, .weight_decay = 0.1}), b({gpu}, {.lr = 0.01, .weight_decay = 0.1});
  for (int s = 0; s < 3; ++s) {
    Tensor g = test::parity_randn({31, 17}, false);
    cpu.set_grad(g);
    gpu.set_grad(g.to(Device::cuda(0)));
    a.step();
    b.step();
  }
  test::compare_tensors(cpu.detach(), gpu.detach(), {.atol = 1e-6, .rtol = 1e-5}, "strided Adam parameter");
}

// ---- GradScaler on CUDA -----------------------------------------------------------------------------------

TEST(AmpUnscaleParity, UnscaleMatchesTheCpuAndFindsPlantedInf) {
  REQUIRE_GPU();
  const std::vector<Shape> shapes{{100003}, {37, 53}, {5}, {}};
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64}) {
    for (int planted = -1; planted < static_cast<int>(shapes.size()); ++planted) {
      SCOPED_TRACE(str_cat(dtype_name(dt), " planted in ", planted));
      Params p = make_params(shapes, dt);
      for (size_t i = 0; i < shapes.size(); ++i) {
        Tensor g = (test::parity_randn(shapes[i], false) * 1024.0).to(dt);
        if (static_cast<int>(i) == planted) {
          std::vector<double> v = g.to_double_vector();
          v[v.size() / 2] = i % 2 ? NAN : INFINITY;
          g = from_vector(v, shapes[i]).to(dt);
        }
        p.cpu[i].set_grad(g);
        p.gpu[i].set_grad(g.to(Device::cuda(0)));
      }
      Sgd oc(p.cpu, {.lr = 0.1}), og(p.gpu, {.lr = 0.1});
      GradScaler sc({.init_scale = 1024.0}), sg({.init_scale = 1024.0});
      const bool stepped_cpu = sc.step(oc), stepped_gpu = sg.step(og);
      EXPECT_EQ(stepped_cpu, planted < 0);
      EXPECT_EQ(stepped_gpu, stepped_cpu);
      for (size_t i = 0; i < shapes.size(); ++i) {
        expect_bitwise(p.cpu[i].grad(), p.gpu[i].grad(), str_cat("grad ", i));
        expect_bitwise(p.cpu[i].detach(), p.gpu[i].detach(), str_cat("param ", i));
      }
      sc.update();
      sg.update();
      EXPECT_EQ(sg.get_scale(), sc.get_scale());
    }
  }
}

TEST(AmpUnscaleParity, MixedDtypeGradientsOnOneDevice) {
  REQUIRE_GPU();
  Tensor a = test::parity_randn({1000}, false).to(Device::cuda(0)).requires_grad_();
  Tensor b = test::parity_randn({999}, false).to(DType::f16).to(Device::cuda(0)).requires_grad_();
  a.set_grad(full({1000}, 8.0, {.device = Device::cuda(0)}));
  std::vector<double> hv(999, 8.0);
  hv[998] = INFINITY;
  b.set_grad(from_vector(hv, {999}).to(DType::f16).to(Device::cuda(0)));
  Sgd opt({a, b}, {.lr = 0.1});
  GradScaler scaler({.init_scale = 8.0});
  scaler.unscale(opt);
  EXPECT_TRUE(scaler.found_inf(opt));
  EXPECT_EQ(a.grad().to(Device::cpu()).to_double_vector(), std::vector<double>(1000, 1.0));
  EXPECT_FALSE(scaler.step(opt));
}

// clip_grad_norm on CUDA (one multi-tensor norm launch per bucket) against the CPU: the same total norm
// within f32 rounding of the per-tensor norms, the same clipped grads, for f32 and bf16 grads (the CPU side
// holds the bf16 values in f32: the CPU has no bf16 arithmetic) with a parameter without a grad, a large
// one (several chunks) and an empty one.
TEST(ClipGradNormParity, MatchesCpu) {
  REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16}) {
    Params p = make_params({{70000}, {3, 5}, {0}, {129, 7}, {1}}, dt);
    set_grads(p, 0, 1);  // parameter 1 has no grad
    for (Tensor& t : p.cpu)
      if (t.grad().defined()) t.set_grad(t.grad().to(DType::f32));
    const double n_cpu = clip_grad_norm(p.cpu, 0.5), n_gpu = clip_grad_norm(p.gpu, 0.5);
    EXPECT_NEAR(n_gpu, n_cpu, (dt == DType::bf16 ? 1e-3 : 1e-5) * n_cpu) << dt;  // bf16: squares rounded to bf16
    EXPECT_GT(n_cpu, 0.5);  // so the grads were clipped
    for (size_t i = 0; i < p.cpu.size(); ++i) {
      if (!p.cpu[i].grad().defined()) continue;
      SCOPED_TRACE(str_cat(dt, " grad ", i));
      test::expect_close(p.gpu[i].grad().to(Device::cpu()).to(DType::f32), p.cpu[i].grad(),
                         dt == DType::bf16 ? 1e-4 : 1e-7);
    }
  }
}

}  // namespace
}  // namespace nabla::optim
