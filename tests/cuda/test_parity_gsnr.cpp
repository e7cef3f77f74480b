// The fused GSNR kernels (ops/gsnr_kernels.h) on CUDA against the CPU kernels, and against the op-by-op
// reference on CUDA (plain tests that skip without a GPU).
//
// Tolerances. Every element-wise result (accumulated sums, mean gradient, raw r) is the same maths on both
// backends, correctly rounded and never contracted into FMA, so the mean gradient must match exactly. The
// per-tensor sums of r are f64 sums in another order (CUDA: per-chunk tree sums, then per-tensor sums of the
// partials; CPU: sequential), which may differ by a few f64 ulps of the sum (about 1e-14 relative for these
// sizes; the worst case bound n * 2^-53 is 2e-12), so the mean m can differ by one ulp of the compute type
// when the sum sits near a rounding boundary: ratios, multipliers and the scaled gradients get a relative
// tolerance of a few ulps: 1e-6 (f32), 1e-11 (f64), 1.6e-2 (bf16: two ulps; a one-ulp change of the f32
// normalised r can flip the bf16 rounding, and the momentum and the product with the gradient can add one
// more). Against the op-by-op reference on CUDA (whose element-wise kernels may contract x + a * y into an
// FMA and whose reduce sums in another order) f32 gets 1e-5.
//
// Shapes: a multi-chunk tensor with an odd tail, a 0-d and an empty tensor, and more tensors than one
// launch takes (kMaxTensors = 320 in cuda/gsnr_kernels.cu), so the cross-launch sums and the global mean are
// tested.
#include <cmath>

#include "algorithms/vrgd/gsnr.h"
#include "ops/gsnr_kernels.h"
#include "parity.h"

namespace nabla::vrgd {
namespace {

#define REQUIRE_GPU() \
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device"

std::vector<Shape> shapes() {
  std::vector<Shape> s{{70001}, {37, 53}, {}, {0}, {16384}, {3, 129}};
  for (int i = 0; i < 330; ++i) s.push_back({1 + (i * 37) % 101});
  s.push_back({40000});
  return s;
}

struct Pair {
  std::vector<Tensor> a, b;  // the same values on two backends (or two copies)
};

Pair make_params(const std::vector<Shape>& sh, DType dt, Device da, Device db) {
  Pair p;
  for (const Shape& s : sh) {
    Tensor v = test::parity_randn(s, false).to(dt);
    p.a.push_back(v.to(da).requires_grad_(true));
    p.b.push_back(v.to(db).requires_grad_(true));
  }
  return p;
}

// k partitions: a shared per-element mean plus noise, so r spreads over decades.
void feed_both(Gsnr& ga, Gsnr& gb, Pair& p, int64_t k, DType dt) {
  std::vector<Tensor> mu;
  for (const Tensor& t : p.a) mu.push_back(test::parity_randn(t.shape(), false));
  for (int64_t d = 0; d < k; ++d) {
    for (size_t i = 0; i < p.a.size(); ++i) {
      Tensor g = (mu[i] + test::parity_randn(p.a[i].shape(), false) * 0.7).to(dt);
      p.a[i].set_grad(g.to(p.a[i].device()));
      p.b[i].set_grad(g.to(p.b[i].device()));
    }
    ga.accumulate();
    gb.accumulate();
  }
}

test::ParityOptions ratio_tol(DType dt) {
  if (dt == DType::f64) return {.atol = 0, .rtol = 1e-11};
  if (dt == DType::f32) return {.atol = 0, .rtol = 1e-6};
  return {.atol = 0, .rtol = 1.6e-2};
}

struct Case {
  GsnrScope scope;
  double beta3;
  GsnrMomentumInput input;
  bool bias_correction;
};

void expect_cuda_matches_cpu(DType dt, const Case& c) {
  const std::string what =
      str_cat(dtype_name(dt), c.scope == GsnrScope::kGlobal ? " global" : " per-tensor", " beta3 ", c.beta3,
              c.input == GsnrMomentumInput::kNormalized ? " normalised" : " clamped",
              c.bias_correction ? "" : " no-bias");
  const std::vector<Shape> sh = shapes();
  Pair p = make_params(sh, dt, Device::cpu(), Device::cuda(0));
  const GsnrOptions o{.gamma = 0.1,
                      .beta3 = c.beta3,
                      .bias_correction = c.bias_correction,
                      .scope = c.scope,
                      .momentum_input = c.input};
  Gsnr cpu(p.a, {}, o), gpu(p.b, {}, o);
  const test::ParityOptions exact{.atol = 0, .rtol = 0}, tol = ratio_tol(dt);
  for (int step = 0; step < 3; ++step) {
    feed_both(cpu, gpu, p, 3, dt);
    ASSERT_TRUE(cpu.step_fused() && gpu.step_fused()) << what;
    cpu.request_stats();
    gpu.request_stats();
    cpu.reduce();
    gpu.reduce();
    for (size_t i = 0; i < sh.size(); ++i) {
      const std::string at = str_cat(what, " step ", step, " param ", i);
      test::compare_tensors(p.a[i].grad(), p.b[i].grad(), exact, at + " mean grad");
      test::compare_tensors(cpu.ratios()[i], gpu.ratios()[i], tol, at + " ratio");
    }
    ASSERT_EQ(cpu.last_stats().size(), gpu.last_stats().size());
    for (size_t i = 0; i < sh.size(); ++i) {
      const GsnrTensorStats &a = cpu.last_stats()[i], &b = gpu.last_stats()[i];
      EXPECT_EQ(a.numel, b.numel);
      if (a.numel == 0) continue;
      EXPECT_NEAR(a.mean_ratio, b.mean_ratio, 2 * tol.rtol) << what << " param " << i;
      // A one-ulp change of m can move an element across gamma or 1.
      EXPECT_NEAR(a.frac_at_gamma, b.frac_at_gamma, 2.0 / a.numel + 1e-12) << what << " param " << i;
      EXPECT_NEAR(a.frac_at_one, b.frac_at_one, 2.0 / a.numel + 1e-12) << what << " param " << i;
    }
    cpu.apply();
    gpu.apply();
    for (size_t i = 0; i < sh.size(); ++i) {
      const std::string at = str_cat(what, " step ", step, " param ", i);
      test::compare_tensors(cpu.multipliers()[i], gpu.multipliers()[i], tol, at + " multiplier");
      test::compare_tensors(p.a[i].grad(), p.b[i].grad(), tol, at + " grad after apply");
    }
  }
  const NamedTensors sa = cpu.state_tensors(), sb = gpu.state_tensors();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i)
    if (sa[i].second.dtype() != DType::i64)
      test::compare_tensors(sa[i].second, sb[i].second, tol, what + " " + sa[i].first);
}

const std::vector<Case> kCases{
    {GsnrScope::kPerTensor, 0.0, GsnrMomentumInput::kClamped, true},
    {GsnrScope::kPerTensor, 0.9, GsnrMomentumInput::kClamped, true},
    {GsnrScope::kGlobal, 0.0, GsnrMomentumInput::kClamped, true},
    {GsnrScope::kGlobal, 0.8, GsnrMomentumInput::kNormalized, false},
};

TEST(GsnrFusedParity, CudaHasTheKernels) {
  REQUIRE_GPU();
  EXPECT_TRUE(ops::gsnr_accumulate_kernel.has(Device::cuda(0)));
  EXPECT_TRUE(ops::gsnr_reduce_kernel.has(Device::cuda(0)));
  EXPECT_TRUE(ops::gsnr_apply_kernel.has(Device::cuda(0)));
}

TEST(GsnrFusedParity, F32MatchesTheCpu) {
  REQUIRE_GPU();
  for (const Case& c : kCases) expect_cuda_matches_cpu(DType::f32, c);
}

TEST(GsnrFusedParity, F64MatchesTheCpu) {
  REQUIRE_GPU();
  for (const Case& c : kCases) expect_cuda_matches_cpu(DType::f64, c);
}

TEST(GsnrFusedParity, Bf16MatchesTheCpu) {
  REQUIRE_GPU();
  for (const Case& c : kCases) expect_cuda_matches_cpu(DType::bf16, c);
}

// On the GPU, fused against the op-by-op reference (both CUDA, f32).
TEST(GsnrFusedParity, FusedMatchesTheOpByOpReferenceOnCuda) {
  REQUIRE_GPU();
  for (const Case& c : kCases) {
    std::vector<Shape> sh{{70001}, {37, 53}, {}, {16384}, {3, 129}, {7}};
    Pair p = make_params(sh, DType::f32, Device::cuda(0), Device::cuda(0));
    GsnrOptions o{.gamma = 0.1,
                  .beta3 = c.beta3,
                  .bias_correction = c.bias_correction,
                  .scope = c.scope,
                  .momentum_input = c.input};
    Gsnr fused(p.a, {}, o);
    o.fused = false;
    Gsnr ref(p.b, {}, o);
    const test::ParityOptions tol{.atol = 0, .rtol = 1e-5};
    for (int step = 0; step < 2; ++step) {
      feed_both(fused, ref, p, 4, DType::f32);
      ASSERT_TRUE(fused.step_fused());
      ASSERT_FALSE(ref.step_fused());
      fused.reduce();
      ref.reduce();
      fused.apply();
      ref.apply();
      for (size_t i = 0; i < sh.size(); ++i) {
        const std::string at = str_cat("step ", step, " param ", i, " beta3 ", c.beta3);
        // compare_tensors takes (cpu, gpu); both are on the GPU here, so compare host copies.
        auto host = [](const Tensor& t) { return t.to(Device::cpu()); };
        std::vector<double> a = host(fused.ratios()[i]).to_double_vector(),
                            b = host(ref.ratios()[i]).to_double_vector();
        std::vector<double> ga = host(p.a[i].grad()).to_double_vector(),
                            gb = host(p.b[i].grad()).to_double_vector();
        ASSERT_EQ(a.size(), b.size());
        for (size_t e = 0; e < a.size(); ++e) {
          ASSERT_NEAR(a[e], b[e], tol.rtol * std::abs(b[e])) << at << " ratio element " << e;
          ASSERT_NEAR(ga[e], gb[e], tol.rtol * std::abs(gb[e]) + 1e-30) << at << " grad element " << e;
        }
      }
    }
  }
}

}  // namespace
}  // namespace nabla::vrgd
