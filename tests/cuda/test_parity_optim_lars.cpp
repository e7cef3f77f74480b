// The fused LARS and LAMB steps and the multi-tensor norm on CUDA against the CPU (plain tests that skip
// without a GPU).
//
// The element passes share their maths with the CPU kernels (ops/optim_kernels.h, never contracted into
// FMA), but the norms sum their squares in another order (per-chunk tree sums, then per-tensor sums of the
// partials, against the CPU's sequential f64 sum): the f64 sums may differ in their last bits, which can
// move an f32 norm by one ulp, and with it the trust ratio. So parameters and buffers are compared with a
// relative tolerance of about 1e-6 (f32) and 1e-12 (f64), not bit for bit. The shapes cover 2-D weights
// (adapted), 1-D biases (excluded by dim), a multi-chunk tensor with an odd tail, a 0-d and an empty
// parameter, a parameter whose gradient is all zeros (LARS: ||g|| = 0, local_lr 1), a zero weight, a group
// excluded from adaptation, and more tensors than one launch takes.
#include <cmath>

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

// Parameter `zero_weight` starts at 0; parameter `zero_grad` always gets an all-zero gradient.
constexpr size_t kZeroWeight = 3, kZeroGrad = 1;

Params make_params(const std::vector<Shape>& shapes, DType dtype) {
  Params p;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Tensor v = test::parity_randn(shapes[i], false).to(dtype);
    if (i == kZeroWeight) v = zeros(shapes[i], {.dtype = dtype});
    p.cpu.push_back(v.clone().requires_grad_());
    p.gpu.push_back(v.to(Device::cuda(0)).requires_grad_());
  }
  return p;
}

void set_grads(Params& p) {
  for (size_t i = 0; i < p.cpu.size(); ++i) {
    Tensor g = test::parity_randn(p.cpu[i].shape(), false).to(p.cpu[i].dtype());
    if (i == kZeroGrad) g = zeros(p.cpu[i].shape(), {.dtype = p.cpu[i].dtype()});
    p.cpu[i].set_grad(g);
    p.gpu[i].set_grad(g.to(Device::cuda(0)));
  }
}

test::ParityOptions tol_of(DType dt) {
  return dt == DType::f64 ? test::ParityOptions{.atol = 1e-12, .rtol = 1e-10}
                          : test::ParityOptions{.atol = 1e-6, .rtol = 2e-6};
}

// Group 0: defaults; group 1: its own lr and weight decay; group 2: excluded from adaptation.
std::vector<ParamGroup> three_groups(const std::vector<Tensor>& p) {
  ParamGroup a, b, c;
  for (size_t i = 0; i < p.size(); ++i) (i % 3 == 0 ? a : i % 3 == 1 ? b : c).params.push_back(p[i]);
  b.lr = 0.03;
  b.weight_decay = 0.2;
  c.exclude_from_adaptation = true;
  c.weight_decay = 0.05;
  std::vector<ParamGroup> out;
  for (ParamGroup* g : {&a, &b, &c})
    if (!g->params.empty()) out.push_back(*g);
  return out;
}

// 2-D (adapted) and 1-D (excluded by dim) params; index 1 gets zero grads, index 3 is a zero weight
// (both adapted, in groups 1 and 0); index 5 (multi-chunk) is in the group excluded from adaptation.
const std::vector<Shape> kShapes{{37, 53}, {19, 7}, {64}, {6, 5}, {7}, {300, 131}, {}, {0}, {3, 129}, {129}};

template <class Opt, class Options>
void expect_cuda_close_to_cpu(const Options& o, DType dtype, const std::vector<Shape>& shapes = kShapes,
                              int steps = 3) {
  Params p = make_params(shapes, dtype);
  Opt cpu(three_groups(p.cpu), o), gpu(three_groups(p.gpu), o);
  for (int s = 0; s < steps; ++s) {
    set_grads(p);
    cpu.step();
    gpu.step();
    for (size_t i = 0; i < shapes.size(); ++i)
      test::compare_tensors(p.cpu[i].detach(), p.gpu[i].detach(), tol_of(dtype),
                            str_cat(dtype_name(dtype), " step ", s + 1, " param ", i, " ", shapes[i]));
  }
  NamedTensors sc = cpu.state_tensors(), sg = gpu.state_tensors();
  ASSERT_EQ(sc.size(), sg.size());
  for (size_t i = 0; i < sc.size(); ++i) {
    EXPECT_EQ(sc[i].first, sg[i].first);
    if (sc[i].second.dtype() == DType::i64)
      EXPECT_EQ(sc[i].second.item(), sg[i].second.item()) << sc[i].first;
    else
      test::compare_tensors(sc[i].second, sg[i].second, tol_of(dtype), sc[i].first);
  }
}

TEST(FusedLarsLambParity, CudaHasTheKernels) {
  REQUIRE_GPU();
  EXPECT_TRUE(ops::multi_tensor_norm_kernel.has(Device::cuda(0)));
  EXPECT_TRUE(ops::fused_lars_kernel.has(Device::cuda(0)));
  EXPECT_TRUE(ops::lamb_moments_kernel.has(Device::cuda(0)));
  EXPECT_TRUE(ops::lamb_apply_kernel.has(Device::cuda(0)));
}

TEST(FusedLarsLambParity, MultiTensorNormMatchesTheCpu) {
  REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    std::vector<Shape> shapes{{100003}, {37, 53}, {}, {0}, {16384}, {16385}, {1}};
    for (int i = 0; i < 200; ++i) shapes.push_back({1 + (i * 37) % 101});  // two launches
    shapes.push_back({40000});
    std::vector<Tensor> c, g;
    for (const Shape& s : shapes) {
      c.push_back(test::parity_randn(s, false).to(dt));
      g.push_back(c.back().to(Device::cuda(0)));
    }
    const DType nd = ops::norm_dtype(dt);
    Tensor nc = Tensor::empty(Shape{static_cast<int64_t>(shapes.size())}, nd);
    Tensor ng = Tensor::empty(Shape{static_cast<int64_t>(shapes.size())}, nd, Device::cuda(0));
    ops::multi_tensor_norm_kernel.get(Device::cpu(), "test")(c, nc);
    ops::multi_tensor_norm_kernel.get(Device::cuda(0), "test")(g, ng);
    test::compare_tensors(nc, ng, tol_of(dt), str_cat("norms ", dtype_name(dt)));
    // And the CPU kernel is bit for bit norm(x) for f32/f64.
    if (dt != DType::bf16) {
      for (size_t i = 0; i < shapes.size(); ++i)
        EXPECT_EQ(nc.to_double_vector()[i], norm(c[i]).item()) << dtype_name(dt) << " tensor " << i;
    }
    // Deterministic: a second run gives the same bits.
    Tensor ng2 = Tensor::empty(Shape{static_cast<int64_t>(shapes.size())}, nd, Device::cuda(0));
    ops::multi_tensor_norm_kernel.get(Device::cuda(0), "test")(g, ng2);
    EXPECT_EQ(ng.to(Device::cpu()).to_double_vector(), ng2.to(Device::cpu()).to_double_vector());
  }
}

TEST(FusedLarsLambParity, ThreeLarsStepsMatchTheCpu) {
  REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    expect_cuda_close_to_cpu<Lars>(LarsOptions{.lr = 0.5, .momentum = 0.9, .weight_decay = 0.05, .eta = 0.02},
                                   dt);
    expect_cuda_close_to_cpu<Lars>(
        LarsOptions{
            .lr = 0.5, .momentum = 0.9, .weight_decay = 0.01, .eta = 0.02, .eps = 1e-8, .exclude_1d = false},
        dt);
    expect_cuda_close_to_cpu<Lars>(LarsOptions{.lr = 0.1, .momentum = 0.0}, dt);
  }
}

TEST(FusedLarsLambParity, ThreeLambStepsMatchTheCpu) {
  REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    expect_cuda_close_to_cpu<Lamb>(LambOptions{.lr = 0.01, .beta1 = 0.85, .beta2 = 0.99, .weight_decay = 0.1},
                                   dt);
    expect_cuda_close_to_cpu<Lamb>(LambOptions{.lr = 0.05, .weight_decay = 0.02, .exclude_1d = false}, dt);
    expect_cuda_close_to_cpu<Lamb>(LambOptions{.lr = 0.01, .weight_decay = 0.0}, dt);
  }
}

TEST(FusedLarsLambParity, Bf16StepsStayClose) {
  // bf16 parameters compute in f32 on both devices and round once per stored value; a one-ulp norm
  // difference can flip a bf16 rounding, so the tolerance is bf16's.
  REQUIRE_GPU();
  const std::vector<Shape> shapes{{37, 53}, {19, 7}, {64}, {3, 129}};
  Params p = make_params(shapes, DType::bf16);
  Lars cpu(p.cpu, {.lr = 0.5, .momentum = 0.9, .weight_decay = 0.05, .eta = 0.02}),
      gpu(p.gpu, {.lr = 0.5, .momentum = 0.9, .weight_decay = 0.05, .eta = 0.02});
  for (int s = 0; s < 3; ++s) {
    set_grads(p);
    cpu.step();
    gpu.step();
    for (size_t i = 0; i < shapes.size(); ++i)
      test::compare_tensors(p.cpu[i].detach(), p.gpu[i].detach(), {.atol = 2e-2, .rtol = 2e-2},
                            str_cat("bf16 LARS step ", s + 1, " param ", i));
  }
}

TEST(FusedLarsLambParity, MoreTensorsThanOneLaunchTakes) {
  REQUIRE_GPU();
  std::vector<Shape> many;
  for (int i = 0; i < 250; ++i)
    many.push_back(i % 2 ? Shape{1 + (i * 37) % 101} : Shape{3, 1 + (i * 13) % 41});
  many.push_back({200, 201});  // multi-chunk, after a full launch
  expect_cuda_close_to_cpu<Lars>(LarsOptions{.lr = 0.5, .momentum = 0.9, .weight_decay = 0.05, .eta = 0.02},
                                 DType::f32, many);
  expect_cuda_close_to_cpu<Lamb>(LambOptions{.lr = 0.01, .weight_decay = 0.1}, DType::f32, many);
}

TEST(FusedLarsLambParity, StridedParameterFallsBackToTheOpsOnCuda) {
  REQUIRE_GPU();
  Tensor v = test::parity_randn({31, 17}, false);
  Tensor cpu = v.clone().requires_grad_();
  Tensor gpu = v.t().contiguous().to(Device::cuda(0)).t().requires_grad_();
  ASSERT_FALSE(gpu.is_contiguous());
  Lamb a({cpu}, {.lr = 0.01, .weight_decay = 0.1}), b({gpu}, {.lr = 0.01, .weight_decay = 0.1});
  for (int s = 0; s < 3; ++s) {
    Tensor g = test::parity_randn({31, 17}, false);
    cpu.set_grad(g);
    gpu.set_grad(g.to(Device::cuda(0)));
    a.step();
    b.step();
  }
  test::compare_tensors(cpu.detach(), gpu.detach(), {.atol = 1e-6, .rtol = 1e-5}, "strided LAMB parameter");
}

}  // namespace
}  // namespace nabla::optim
