// The fused GSNR kernels (ops/gsnr_kernels.h, CPU) against the op-by-op reference (GsnrOptions::fused =
// false) on fresh random gradients: several partitions and steps, both scopes, with and without GSNR
// momentum (both momentum inputs, with and without bias correction), statistics, tensor sizes with odd
// tails and more than one chunk, a 0-d and an empty tensor. For f32 and f64 in per-tensor scope (and f32 in
// global scope) the fused step is the reference bit for bit (gsnr_kernels.h says why); f64 global scope and
// channels-last gradients differ in the order or precision of the sum, so they get a tolerance. bf16 has no
// CPU reference (the CPU element-wise ops are f32/f64 only), so it is checked against the f32 fused step
// on the same (bf16-exact) gradients and by exact properties of what it stores.
#include <cmath>
#include <array>
#include <cstring>

#include "algorithms/vrgd/gsnr.h"
#include "ops/gsnr_kernels.h"
#include "testing.h"

namespace nabla::vrgd {
namespace {

using Vec = std::vector<double>;

Vec values(const Tensor& t) {
  Tensor c = t.to(DType::f64).contiguous();
  const double* p = static_cast<const double*>(c.data_ptr());
  return Vec(p, p + c.numel());
}

// Bit-level equality of the values (NaN-free here), with the first mismatch in the message.
void expect_same(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.defined(), b.defined()) << what;
  if (!a.defined()) return;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  const Vec x = values(a), y = values(b);
  for (size_t i = 0; i < x.size(); ++i)
    if (std::memcmp(&x[i], &y[i], sizeof(double)) != 0 && !(x[i] == 0 && y[i] == 0)) {
      ADD_FAILURE() << what << ": element " << i << " is " << x[i] << ", reference " << y[i];
      return;
    }
}

void expect_near(const Tensor& a, const Tensor& b, double rtol, const std::string& what) {
  ASSERT_EQ(a.defined(), b.defined()) << what;
  if (!a.defined()) return;
  const Vec x = values(a), y = values(b);
  ASSERT_EQ(x.size(), y.size()) << what;
  for (size_t i = 0; i < x.size(); ++i)
    if (!(std::abs(x[i] - y[i]) <= rtol * std::max(std::abs(y[i]), 1e-30))) {
      ADD_FAILURE() << what << ": element " << i << " is " << x[i] << ", reference " << y[i];
      return;
    }
}

const std::vector<Shape> kShapes{{37, 53}, {7}, {16385}, {3, 129}, {}, {0}, {2, 5}};

std::vector<Tensor> make_params(DType dtype, const std::vector<Shape>& shapes = kShapes) {
  std::vector<Tensor> ps;
  for (const Shape& s : shapes) ps.push_back(test::randn64(s, false).to(dtype).requires_grad_(true));
  return ps;
}

std::vector<Tensor> copies(const std::vector<Tensor>& ps) {
  std::vector<Tensor> out;
  for (const Tensor& p : ps) out.push_back(p.detach().clone().requires_grad_(true));
  return out;
}

// One step's partition gradients, grads[d][i]: a per-element shared mean mu ~ N(0, 1) plus noise of
// scale 0.7, so the GSNR spreads over decades; tensor 0's first element is the same in every partition
// (variance 0) and its second is zero in every partition (0/0).
std::vector<std::vector<Tensor>> step_grads(const std::vector<Tensor>& params, int64_t k, DType dtype) {
  std::vector<Tensor> mu;
  for (const Tensor& p : params) mu.push_back(test::randn64(p.shape(), false));
  std::vector<std::vector<Tensor>> out(static_cast<size_t>(k));
  for (auto& part : out)
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor g = (mu[i] + test::randn64(params[i].shape(), false) * 0.7).to(dtype);
      if (i == 0) {
        Tensor f = g.flatten();
        f.narrow(0, 0, 1).fill_(0.8);
        f.narrow(0, 1, 1).fill_(0.0);
      }
      part.push_back(g);
    }
  return out;
}

void feed(Gsnr& gsnr, const std::vector<Tensor>& params, const std::vector<std::vector<Tensor>>& grads) {
  for (const auto& part : grads) {
    for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(part[i].clone());
    gsnr.accumulate();
  }
}

struct Case {
  GsnrScope scope = GsnrScope::kPerTensor;
  double beta3 = 0;
  GsnrMomentumInput input = GsnrMomentumInput::kClamped;
  bool bias_correction = true;
};

std::string describe(const Case& c, DType dt, int64_t k) {
  return str_cat(dtype_name(dt), " k=", k, c.scope == GsnrScope::kGlobal ? " global" : " per-tensor",
                 " beta3=", c.beta3, c.input == GsnrMomentumInput::kNormalized ? " normalised" : " clamped",
                 c.bias_correction ? "" : " no-bias");
}

// Three steps of the fused and the reference GSNR on copies of the same parameters and gradients;
// `exact`: bit for bit, else within rtol.
void expect_fused_matches_reference(const Case& c, DType dt, int64_t k, bool exact, double rtol = 0) {
  const std::string what = describe(c, dt, k);
  std::vector<Tensor> pf = make_params(dt), pr = copies(pf);
  GsnrOptions o{.gamma = 0.1,
                .beta3 = c.beta3,
                .bias_correction = c.bias_correction,
                .scope = c.scope,
                .momentum_input = c.input};
  Gsnr fused(pf, {}, o);
  o.fused = false;
  Gsnr ref(pr, {}, o);
  int inside = 0;
  for (int step = 0; step < 3; ++step) {
    const auto grads = step_grads(pf, k, dt);
    feed(fused, pf, grads);
    feed(ref, pr, grads);
    ASSERT_TRUE(fused.step_fused()) << what;
    ASSERT_FALSE(ref.step_fused()) << what;
    fused.request_stats();
    ref.request_stats();
    fused.reduce();
    ref.reduce();
    ASSERT_EQ(fused.last_stats().size(), ref.last_stats().size()) << what;
    for (size_t i = 0; i < pf.size(); ++i) {
      const std::string at = str_cat(what, " step ", step, " param ", i, " ", pf[i].shape());
      if (exact) {
        expect_same(pf[i].grad(), pr[i].grad(), at + " mean grad");
        expect_same(fused.ratios()[i], ref.ratios()[i], at + " ratio");
      } else {
        expect_near(pf[i].grad(), pr[i].grad(), rtol, at + " mean grad");
        expect_near(fused.ratios()[i], ref.ratios()[i], rtol, at + " ratio");
      }
      const GsnrTensorStats &sf = fused.last_stats()[i], &sr = ref.last_stats()[i];
      EXPECT_EQ(sf.name, sr.name);
      EXPECT_EQ(sf.numel, sr.numel);
      if (sf.numel == 0) continue;
      EXPECT_NEAR(sf.mean_ratio, sr.mean_ratio, 1e-6 * sr.mean_ratio + rtol) << at;
      EXPECT_NEAR(sf.frac_at_gamma, sr.frac_at_gamma, 1e-6) << at;
      EXPECT_NEAR(sf.frac_at_one, sr.frac_at_one, 1e-6) << at;
      inside += sf.frac_at_gamma > 0 && sf.frac_at_one > 0 && sf.frac_at_gamma + sf.frac_at_one < 1;
    }
    fused.apply();
    ref.apply();
    for (size_t i = 0; i < pf.size(); ++i) {
      const std::string at = str_cat(what, " step ", step, " param ", i, " after apply");
      if (exact) {
        expect_same(pf[i].grad(), pr[i].grad(), at + " grad");
        expect_same(fused.multipliers()[i], ref.multipliers()[i], at + " multiplier");
      } else {
        expect_near(pf[i].grad(), pr[i].grad(), rtol, at + " grad");
        expect_near(fused.multipliers()[i], ref.multipliers()[i], rtol, at + " multiplier");
      }
    }
  }
  // Not degenerate: elements at both clamps and inside, in several tensors and steps.
  EXPECT_GE(inside, 4) << what;
  // The checkpoint state agrees too.
  const NamedTensors sf = fused.state_tensors(), sr = ref.state_tensors();
  ASSERT_EQ(sf.size(), sr.size()) << what;
  for (size_t i = 0; i < sf.size(); ++i) {
    EXPECT_EQ(sf[i].first, sr[i].first);
    if (exact)
      expect_same(sf[i].second, sr[i].second, what + " " + sf[i].first);
    else
      expect_near(sf[i].second, sr[i].second, rtol, what + " " + sf[i].first);
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (GsnrScope scope : {GsnrScope::kPerTensor, GsnrScope::kGlobal}) {
    out.push_back({.scope = scope});
    out.push_back({.scope = scope, .beta3 = 0.9});
    out.push_back({.scope = scope, .beta3 = 0.8, .input = GsnrMomentumInput::kNormalized});
    out.push_back({.scope = scope, .beta3 = 0.9, .bias_correction = false});
  }
  return out;
}

TEST(GsnrFused, CpuKernelsAreRegistered) {
  EXPECT_TRUE(ops::gsnr_accumulate_kernel.has(Device::cpu()));
  EXPECT_TRUE(ops::gsnr_reduce_kernel.has(Device::cpu()));
  EXPECT_TRUE(ops::gsnr_apply_kernel.has(Device::cpu()));
}

TEST(GsnrFused, F32IsTheReferenceBitForBit) {
  for (const Case& c : all_cases())
    for (int64_t k : {2, 5}) expect_fused_matches_reference(c, DType::f32, k, true);
}

TEST(GsnrFused, F64PerTensorIsTheReferenceBitForBit) {
  for (const Case& c : all_cases())
    if (c.scope == GsnrScope::kPerTensor) expect_fused_matches_reference(c, DType::f64, 3, true);
}

// The reference rounds every raw r to f32 before the global sum (sum(r.to(f32))); the fused step sums
// them in f64, so the global mean differs by about one f32 rounding.
TEST(GsnrFused, F64GlobalScopeMatchesTheReferenceToF32Rounding) {
  for (const Case& c : all_cases())
    if (c.scope == GsnrScope::kGlobal) expect_fused_matches_reference(c, DType::f64, 4, false, 1e-6);
}

// Channels-last gradients: the fused step keeps their layout and sums each tensor in memory order, the
// reference in logical order, so the means differ in the last bits.
TEST(GsnrFused, ChannelsLastGradientsMatchTheReference) {
  const Shape shape{3, 4, 5, 5};
  for (GsnrScope scope : {GsnrScope::kPerTensor, GsnrScope::kGlobal}) {
    std::vector<Tensor> pf{test::randn64(shape, false).to(DType::f32).requires_grad_(true),
                           test::randn64({9}, false).to(DType::f32).requires_grad_(true)};
    std::vector<Tensor> pr = copies(pf);
    GsnrOptions o{.gamma = 0.2, .beta3 = 0.9, .scope = scope};
    Gsnr fused(pf, {}, o);
    o.fused = false;
    Gsnr ref(pr, {}, o);
    for (int step = 0; step < 2; ++step) {
      for (int d = 0; d < 3; ++d) {
        Tensor mean = test::randn64({3, 5, 5, 4}, false);
        Tensor g0 = (mean + test::randn64({3, 5, 5, 4}, false)).to(DType::f32).permute({0, 3, 1, 2});
        ASSERT_FALSE(g0.is_contiguous());
        Tensor g1 = test::randn64({9}, false).to(DType::f32);
        pf[0].set_grad(g0.clone());
        pf[1].set_grad(g1.clone());
        pr[0].set_grad(g0.clone());
        pr[1].set_grad(g1.clone());
        fused.accumulate();
        ref.accumulate();
      }
      ASSERT_TRUE(fused.step_fused());
      fused.reduce();
      ref.reduce();
      fused.apply();
      ref.apply();
      for (size_t i = 0; i < 2; ++i) {
        expect_near(pf[i].grad(), pr[i].grad(), 1e-6, str_cat("step ", step, " param ", i, " grad"));
        expect_near(fused.ratios()[i], ref.ratios()[i], 1e-6, str_cat("step ", step, " param ", i, " ratio"));
        expect_near(fused.multipliers()[i], ref.multipliers()[i], 1e-6, str_cat("param ", i, " multiplier"));
      }
    }
  }
}

// bf16 parameters have no op-by-op CPU reference (the CPU element-wise ops are f32/f64 only), so the fused
// step is checked against a scalar emulation written here of what gsnr_kernels.h specifies for 16-bit
// storage: every value loaded to f32, the maths in f32, each stored value rounded once to bf16, the
// per-tensor sums in f64 in index order. That is exact, so the comparison is bit for bit.
struct Bf16Emulation {
  double gamma, eps, beta3;
  std::vector<std::vector<float>> momentum;
  std::vector<int64_t> steps;

  static float r(float v) { return from_bf16(to_bf16(v)); }  // round to bf16 and back

  // parts[d][e]: partition d's gradient of one tensor. Returns {mean grad, ratio, multiplier, final grad}.
  std::array<std::vector<float>, 4> step(size_t tensor, const std::vector<std::vector<float>>& parts) {
    const size_t n = parts[0].size(), k = parts.size();
    std::vector<float> sum = parts[0], sq(n), mean(n), raw(n), ratio(n), mult(n), grad(n);
    for (size_t e = 0; e < n; ++e) sq[e] = r(parts[0][e] * parts[0][e]);
    for (size_t d = 1; d < k; ++d)
      for (size_t e = 0; e < n; ++e) {
        const float g = parts[d][e];
        sq[e] = r(sq[e] + g * g);
        sum[e] = r(sum[e] + g);
      }
    const float inv_k = static_cast<float>(1.0 / static_cast<double>(k)), fe = static_cast<float>(eps),
                tiny = static_cast<float>(1e-30), lo = static_cast<float>(gamma);
    double total = 0;
    for (size_t e = 0; e < n; ++e) {
      const float mg = sum[e] * inv_k, ms = sq[e] * inv_k, g2 = mg * mg, dv = ms - g2;
      const float var = dv < 0 ? 0.0f : dv;
      mean[e] = r(mg);
      raw[e] = r(g2 / ((var + fe * ms) + tiny));
      total += raw[e];
    }
    const float m = static_cast<float>(total) / static_cast<float>(n) + tiny;
    auto clamp = [&](float v) { return v < lo ? lo : (v > 1.0f ? 1.0f : v); };
    for (size_t e = 0; e < n; ++e) ratio[e] = r(clamp(raw[e] / m));
    if (beta3 > 0) {
      if (momentum.size() <= tensor) momentum.resize(tensor + 1), steps.resize(tensor + 1, 0);
      std::vector<float>& p = momentum[tensor];
      if (p.empty()) p.assign(n, 0.0f);
      const int64_t t = ++steps[tensor];
      const float b = static_cast<float>(beta3), omb = static_cast<float>(1.0 - beta3),
                  inv_bias = static_cast<float>(1.0 / (1.0 - std::pow(beta3, static_cast<double>(t))));
      for (size_t e = 0; e < n; ++e) {
        const float pv = p[e] * b + omb * ratio[e];
        p[e] = r(pv);
        mult[e] = r(clamp(pv * inv_bias));
      }
    } else {
      mult = ratio;
    }
    for (size_t e = 0; e < n; ++e) grad[e] = r(mean[e] * mult[e]);
    return {mean, ratio, mult, grad};
  }
};

std::vector<float> floats(const Tensor& t) {
  const Vec v = values(t);
  return std::vector<float>(v.begin(), v.end());
}

void expect_floats(const Tensor& got, const std::vector<float>& want, const std::string& what) {
  const Vec v = values(got);
  ASSERT_EQ(v.size(), want.size()) << what;
  for (size_t e = 0; e < v.size(); ++e)
    if (v[e] != static_cast<double>(want[e])) {
      ADD_FAILURE() << what << ": element " << e << " is " << v[e] << ", expected " << want[e];
      return;
    }
}

TEST(GsnrFused, Bf16ParamsMatchAnF32EmulationBitForBit) {
  for (double beta3 : {0.0, 0.9}) {
    std::vector<Tensor> params = make_params(DType::bf16);
    const GsnrOptions o{.gamma = 0.1, .beta3 = beta3};
    Gsnr gsnr(params, {}, o);
    Bf16Emulation emu{.gamma = 0.1, .eps = o.eps, .beta3 = beta3};
    int inside = 0;
    for (int step = 0; step < 3; ++step) {
      const auto grads = step_grads(params, 4, DType::bf16);
      feed(gsnr, params, grads);
      ASSERT_TRUE(gsnr.step_fused());
      gsnr.reduce();
      std::vector<Tensor> mean;
      for (const Tensor& p : params) mean.push_back(p.grad().clone());
      gsnr.apply();
      for (size_t i = 0; i < params.size(); ++i) {
        std::vector<std::vector<float>> parts;
        for (const auto& part : grads) parts.push_back(floats(part[i]));
        const auto want = emu.step(i, parts);
        const std::string at = str_cat("beta3 ", beta3, " step ", step, " param ", i);
        expect_floats(mean[i], want[0], at + " mean grad");
        expect_floats(gsnr.ratios()[i], want[1], at + " ratio");
        expect_floats(gsnr.multipliers()[i], want[2], at + " multiplier");
        expect_floats(params[i].grad(), want[3], at + " grad");
        for (float x : want[1]) {
          EXPECT_GE(x, 0.1f);
          EXPECT_LE(x, 1.0f);
          inside += x > 0.11f && x < 1.0f;
        }
      }
    }
    EXPECT_GT(inside, 100);
  }
}

// Mixed dtypes cannot share one kernel call: fused = true falls back to the reference and agrees with it.
TEST(GsnrFused, MixedDtypesFallBackToTheReference) {
  std::vector<Tensor> pf{test::randn64({5, 4}, false).requires_grad_(true),
                         test::randn64({6}, false).to(DType::f32).requires_grad_(true)};
  std::vector<Tensor> pr = copies(pf);
  GsnrOptions o{.gamma = 0.1, .beta3 = 0.9};
  Gsnr fused(pf, {}, o);
  o.fused = false;
  Gsnr ref(pr, {}, o);
  const auto grads = step_grads(pf, 3, DType::f64);
  std::vector<std::vector<Tensor>> typed = grads;
  for (auto& part : typed) part[1] = part[1].to(DType::f32);
  feed(fused, pf, typed);
  feed(ref, pr, typed);
  EXPECT_FALSE(fused.step_fused());
  fused.reduce();
  ref.reduce();
  fused.apply();
  ref.apply();
  for (size_t i = 0; i < 2; ++i) {
    expect_same(pf[i].grad(), pr[i].grad(), str_cat("param ", i));
    expect_same(fused.multipliers()[i], ref.multipliers()[i], str_cat("param ", i, " multiplier"));
  }
}

TEST(GsnrFused, KernelsRejectMismatchedTensors) {
  Tensor a = test::randn32({4, 3}), b = test::randn32({4, 3}), c = test::randn32({3, 4});
  Tensor d = test::randn64({4, 3}, false);
  test::expect_error(
      [&] {
        ops::gsnr_accumulate_kernel.get(Device::cpu())({{a, b, c, true}});
      },
      {"gsnr_accumulate", "tensor 0", "sq", "[3,4]"});
  test::expect_error(
      [&] {
        ops::gsnr_accumulate_kernel.get(Device::cpu())({{a, b, b.clone(), true}, {d, d, d, true}});
      },
      {"gsnr_accumulate", "tensor 1", "f64"});
  Tensor bad_stats = Tensor::empty(Shape{2}, DType::f64);
  test::expect_error(
      [&] {
        ops::gsnr_reduce_kernel.get(Device::cpu())({}, {{a, b, b.clone()}}, bad_stats);
      },
      {"gsnr_reduce", "stats", "3 elements"});
  test::expect_error(
      [&] {
        ops::gsnr_apply_kernel.get(Device::cpu())({.beta3 = 0.9}, {{a, b, Tensor(), b}});
      },
      {"gsnr_apply", "momentum", "undefined"});
}

}  // namespace
}  // namespace nabla::vrgd
