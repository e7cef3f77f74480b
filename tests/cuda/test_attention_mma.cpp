// The tensor-core attention kernels (cuda/attention_mma.cu: bf16 and f16, D 64 and 128, sm_80+) on the GPU:
//   * against the CPU op in f64 on the same rounded inputs and cotangent (the CPU op equals the unfused
//     composition in f64: tests/ops/test_attention.cpp): output and q, k, v gradients, for Tq != Tk, causal
//     (square, KV cache, Tq > Tk with rows that see no key), key-padding masks with fully padded batch rows,
//     odd lengths (1, 77, 129, 513) and dropout;
//   * against the unfused composition on the GPU (matmul, mask, softmax, dropout, matmul in f32) with the
//   same
//     generator, where a sharp softmax (scale 4 / sqrt(D)) and few keys make one wrong dropout bit visible;
//   * against the scalar kernels of cuda/attention.cu (NABLA_ATTENTION_KERNEL=scalar), with and without
//   dropout;
//   * f32 with the TF32 switch on (cuda/attention_tf32.cu): the same CPU f64 comparisons and agreement with
//     the exact scalar kernels;
//   * the dispatch: the tensor-core path is taken on sm_80+, the environment switch and its error.
// Errors are measured as max |gpu - ref| / max |ref| per tensor. Every test skips without a GPU.
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

#include "cuda/attention_mma.h"
#include "parity.h"

namespace nabla {
namespace {

const Device kGpu = Device::cuda(0);

struct Tol {
  double out, grad;
};
Tol tol_for(DType dt) { return dt == DType::bf16 ? Tol{2e-2, 3e-2} : Tol{4e-3, 8e-3}; }

// Sets NABLA_ATTENTION_KERNEL for a scope.
class KernelEnv {
 public:
  explicit KernelEnv(const char* value) {
    const char* old = std::getenv("NABLA_ATTENTION_KERNEL");
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value)
      setenv("NABLA_ATTENTION_KERNEL", value, 1);
    else
      unsetenv("NABLA_ATTENTION_KERNEL");
  }
  ~KernelEnv() {
    if (had_)
      setenv("NABLA_ATTENTION_KERNEL", old_.c_str(), 1);
    else
      unsetenv("NABLA_ATTENTION_KERNEL");
  }

 private:
  bool had_ = false;
  std::string old_;
};

// Sets the engine's TF32 switch for a scope (f32 attention takes the TF32 kernels only while it is on).
class Tf32Switch {
 public:
  explicit Tf32Switch(bool on) : prev_(cuda::tf32_enabled()) { cuda::set_tf32_enabled(on); }
  ~Tf32Switch() { cuda::set_tf32_enabled(prev_); }

 private:
  bool prev_;
};

struct Case {
  int64_t b = 2, h = 2, tq = 64, tk = 64, d = 64;
  bool mask = false, causal = false;
  double p = 0.0;
  std::optional<double> scale = std::nullopt;
  bool padded_batch = false;  // batch row 0 has every key padded (its outputs and gradients are 0)
};

std::string describe(const Case& c, DType dt) {
  return std::string(dtype_name(dt)) + " B" + std::to_string(c.b) + " H" + std::to_string(c.h) + " Tq" +
         std::to_string(c.tq) + " Tk" + std::to_string(c.tk) + " D" + std::to_string(c.d) +
         (c.mask ? " mask" : "") + (c.causal ? " causal" : "") + (c.p > 0 ? " p" + std::to_string(c.p) : "") +
         (c.padded_batch ? " padded-batch" : "");
}

// Fresh inputs: q, k, v, cotangent as f64 CPU tensors already rounded to dt; the mask as bool CPU [B, Tk].
struct Inputs {
  Tensor q, k, v, cot, mask;
};
Inputs make_inputs(const Case& c, DType dt) {
  auto rnd = [&](const Shape& s) { return test::parity_randn(s, false).to(dt).to(DType::f64); };
  Inputs in{rnd({c.b, c.h, c.tq, c.d}), rnd({c.b, c.h, c.tk, c.d}), rnd({c.b, c.h, c.tk, c.d}),
            rnd({c.b, c.h, c.tq, c.d}), Tensor()};
  if (c.mask || c.padded_batch) {
    std::vector<double> u = test::parity_uniform({c.b, c.tk}, 0.0, 1.0, false).to_double_vector();
    std::vector<double> keep(u.size());
    for (int64_t bi = 0; bi < c.b; ++bi)
      for (int64_t j = 0; j < c.tk; ++j) {
        double x = c.mask ? (u[bi * c.tk + j] > 0.3 || j == 0 ? 1.0 : 0.0) : 1.0;
        if (c.padded_batch && bi == 0) x = 0.0;
        keep[bi * c.tk + j] = x;
      }
    in.mask = gt(from_vector(keep, {c.b, c.tk}), from_vector({0.5}, {1}));
  }
  return in;
}

struct Result {
  Tensor out, dq, dk, dv;  // f64 CPU
};

// The fused op on `device` in dtype `dt` (f64 on the CPU), forward with a copy of `gen`, backward of `cot`.
Result run_fused(const Inputs& in, const Case& c, Device device, DType dt, const Generator& gen) {
  auto leaf = [&](const Tensor& x) {
    Tensor y = x.to(device).to(dt);
    y.requires_grad_(true);
    return y;
  };
  Tensor q = leaf(in.q), k = leaf(in.k), v = leaf(in.v);
  Tensor mask = in.mask.defined() ? in.mask.to(device) : Tensor();
  Generator g = gen;
  Tensor out = scaled_dot_product_attention(q, k, v, mask, c.causal, c.p, true, c.scale, &g);
  out.backward(in.cot.to(device).to(dt));
  auto host = [](const Tensor& x) { return x.to(Device::cpu()).to(DType::f64); };
  return {host(out), host(q.grad()), host(k.grad()), host(v.grad())};
}

// max |a - b| / max |b| (b the reference; 1 when b is all zero).
double rel_err(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_double_vector(), y = b.to_double_vector();
  EXPECT_EQ(x.size(), y.size());
  double diff = 0, mx = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    diff = std::max(diff, std::abs(x[i] - y[i]));
    if (std::isnan(x[i]) != std::isnan(y[i])) diff = INFINITY;
    mx = std::max(mx, std::abs(y[i]));
  }
  return diff / (mx > 0 ? mx : 1.0);
}

void expect_results_close(const Result& got, const Result& ref, Tol tol, const std::string& what) {
  EXPECT_LE(rel_err(got.out, ref.out), tol.out) << what << ": output";
  EXPECT_LE(rel_err(got.dq, ref.dq), tol.grad) << what << ": dq";
  EXPECT_LE(rel_err(got.dk, ref.dk), tol.grad) << what << ": dk";
  EXPECT_LE(rel_err(got.dv, ref.dv), tol.grad) << what << ": dv";
}

bool mma_on_this_gpu() { return cuda::available() && cuda::attention_mma_supports(DType::bf16, 64, 0); }

#define SKIP_WITHOUT_MMA()                                                       \
  do {                                                                           \
    if (!cuda::available()) GTEST_SKIP() << "no CUDA device";                    \
    if (!mma_on_this_gpu()) GTEST_SKIP() << "GPU older than sm_80: no mma path"; \
  } while (0)

// GPU (tensor cores) against the CPU f64 op on the same rounded inputs.
void expect_matches_cpu_f64(const Case& c, DType dt) {
  KernelEnv env(nullptr);
  const Inputs in = make_inputs(c, dt);
  const Generator gen{4242, 7};
  const Result gpu = run_fused(in, c, kGpu, dt, gen);
  const Result ref = run_fused(in, c, Device::cpu(), DType::f64, gen);
  expect_results_close(gpu, ref, tol_for(dt), describe(c, dt));
}

TEST(AttentionMma, TakenForBf16AndF16WithHeadSize64And128) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  int major = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  for (DType dt : {DType::bf16, DType::f16})
    for (int64_t d : {64, 128})
      EXPECT_EQ(cuda::attention_mma_supports(dt, d, 0), major >= 8) << dtype_name(dt);
  {
    Tf32Switch tf32(false);
    EXPECT_FALSE(cuda::attention_mma_supports(DType::f32, 64, 0));  // exact f32: the scalar kernels
  }
  {
    Tf32Switch tf32(true);
    EXPECT_EQ(cuda::attention_mma_supports(DType::f32, 128, 0), major >= 8);
  }
  EXPECT_FALSE(cuda::attention_mma_supports(DType::bf16, 32, 0));
  EXPECT_FALSE(cuda::attention_mma_supports(DType::bf16, 80, 0));
  {
    KernelEnv env("scalar");
    EXPECT_FALSE(cuda::attention_mma_enabled());
  }
  {
    KernelEnv env("mma");
    EXPECT_TRUE(cuda::attention_mma_enabled());
  }
  {
    KernelEnv env("tensor");
    test::expect_error([] { cuda::attention_mma_enabled(); }, {"NABLA_ATTENTION_KERNEL=tensor", "scalar"});
  }
}

TEST(AttentionMma, MatchesCpuF64ForHeadSizes64And128) {
  SKIP_WITHOUT_MMA();
  for (DType dt : {DType::bf16, DType::f16})
    for (int64_t d : {64, 128}) {
      expect_matches_cpu_f64({.b = 2, .h = 3, .tq = 128, .tk = 128, .d = d, .mask = true}, dt);  // BERT-like
      expect_matches_cpu_f64({.b = 1, .h = 2, .tq = 129, .tk = 129, .d = d, .causal = true}, dt);
    }
}

TEST(AttentionMma, MatchesCpuF64ForOddAndUnequalLengths) {
  SKIP_WITHOUT_MMA();
  for (int64_t d : {64, 128}) {
    expect_matches_cpu_f64({.b = 2, .h = 1, .tq = 77, .tk = 129, .d = d, .mask = true}, DType::bf16);
    expect_matches_cpu_f64({.b = 1, .h = 2, .tq = 1, .tk = 77, .d = d}, DType::bf16);
    expect_matches_cpu_f64({.b = 1, .h = 2, .tq = 1, .tk = 513, .d = d, .causal = true},
                           DType::f16);  // decode
    expect_matches_cpu_f64({.b = 1, .h = 1, .tq = 513, .tk = 513, .d = d, .mask = true, .causal = true},
                           DType::bf16);
    expect_matches_cpu_f64({.b = 1, .h = 2, .tq = 77, .tk = 513, .d = d, .causal = true},
                           DType::f16);  // KV cache
    expect_matches_cpu_f64({.b = 2, .h = 1, .tq = 129, .tk = 1, .d = d, .mask = false}, DType::bf16);
  }
}

TEST(AttentionMma, RowsWithoutAnAllowedKeyGiveZeros) {
  SKIP_WITHOUT_MMA();
  for (int64_t d : {64, 128}) {
    // Batch row 0: every key padded. Causal with Tq > Tk: the first Tq - Tk rows see no key.
    const Case padded{.b = 2, .h = 2, .tq = 70, .tk = 77, .d = d, .mask = true, .padded_batch = true};
    const Case early{.b = 1, .h = 2, .tq = 129, .tk = 77, .d = d, .causal = true};
    for (const Case& c : {padded, early}) {
      expect_matches_cpu_f64(c, DType::bf16);
      const Inputs in = make_inputs(c, DType::bf16);
      const Result r = run_fused(in, c, kGpu, DType::bf16, Generator{});
      std::vector<double> out = r.out.to_double_vector(), dq = r.dq.to_double_vector();
      const int64_t empty_rows = c.padded_batch ? c.h * c.tq : c.tq - c.tk;  // per head for `early`
      for (int64_t hh = 0; hh < (c.padded_batch ? 1 : c.h); ++hh)
        for (int64_t x = 0; x < empty_rows * d; ++x) {
          const int64_t at = (c.padded_batch ? 0 : hh * c.tq * d) + x;
          ASSERT_EQ(out[at], 0.0) << describe(c, DType::bf16) << " at " << at;
          ASSERT_EQ(dq[at], 0.0) << describe(c, DType::bf16) << " at " << at;
        }
      if (c.padded_batch) {  // keys of batch row 0 get no gradient
        std::vector<double> dk = r.dk.to_double_vector(), dv = r.dv.to_double_vector();
        for (int64_t x = 0; x < c.h * c.tk * d; ++x) ASSERT_TRUE(dk[x] == 0.0 && dv[x] == 0.0) << x;
      }
    }
  }
}

TEST(AttentionMma, DropoutMatchesCpuF64) {
  SKIP_WITHOUT_MMA();
  for (int64_t d : {64, 128}) {
    // Odd Tk: row starts alternate between even and odd element indices (both Philox pairings).
    expect_matches_cpu_f64({.b = 2, .h = 2, .tq = 77, .tk = 77, .d = d, .mask = true, .p = 0.2}, DType::bf16);
    expect_matches_cpu_f64({.b = 1, .h = 2, .tq = 129, .tk = 129, .d = d, .causal = true, .p = 0.1},
                           DType::f16);
  }
}

// Fused (tensor cores, bf16) against the unfused composition on the GPU in f32 on the same rounded inputs,
// with the same generator. scale 4 / sqrt(D) and Tk <= 24 make each probability large, so a dropout bit that
// differs from dropout()'s moves the output by far more than the tolerance.
Tensor composition(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kpm, bool causal,
                   double p, double scale, Generator* gen) {
  const int64_t b = q.size(0), tq = q.size(2), tk = k.size(2);
  std::vector<double> keep = kpm.defined() ? kpm.to(Device::cpu()).to(DType::f64).to_double_vector()
                                           : std::vector<double>(static_cast<size_t>(b * tk), 1.0);
  std::vector<double> allow(static_cast<size_t>(b * tq * tk));
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t i = 0; i < tq; ++i)
      for (int64_t j = 0; j < tk; ++j)
        allow[(bi * tq + i) * tk + j] = keep[bi * tk + j] != 0 && (!causal || j <= i + tk - tq) ? 1.0 : 0.0;
  Tensor a = gt(from_vector(allow, {b, 1, tq, tk}), from_vector({0.5}, {1})).to(q.device());
  Tensor s = matmul(q, k.transpose(-1, -2)) * scale;
  s = where(a.expand(s.shape()), s, scalar_like(-INFINITY, s));
  Tensor pr = softmax(s, -1);
  if (p > 0) pr = dropout(pr, p, true, gen);
  return matmul(pr, v);
}

TEST(AttentionMma, DropoutEqualsTheComposition) {
  SKIP_WITHOUT_MMA();
  Tf32Switch no_tf32(false);
  KernelEnv env(nullptr);
  for (int64_t d : {64, 128})
    for (const Case& c : {Case{.b = 2, .h = 3, .tq = 37, .tk = 23, .d = d, .mask = true, .p = 0.3},
                          Case{.b = 1, .h = 2, .tq = 24, .tk = 24, .d = d, .causal = true, .p = 0.5},
                          Case{.b = 2, .h = 2, .tq = 70, .tk = 17, .d = d, .p = 0.2}}) {
      const double scale = 4.0 / std::sqrt(static_cast<double>(d));
      Case cs = c;
      cs.scale = scale;
      const Inputs in = make_inputs(cs, DType::bf16);
      const Generator gen{77, 5};
      Generator g1 = gen, g2 = gen;
      Tensor mask = in.mask.defined() ? in.mask.to(kGpu) : Tensor();
      Tensor q = in.q.to(kGpu).to(DType::bf16), k = in.k.to(kGpu).to(DType::bf16),
             v = in.v.to(kGpu).to(DType::bf16);
      Tensor fused = scaled_dot_product_attention(q, k, v, mask, c.causal, c.p, true, scale, &g1);
      Tensor ref =
          composition(q.to(DType::f32), k.to(DType::f32), v.to(DType::f32), mask, c.causal, c.p, scale, &g2);
      EXPECT_EQ(g1.offset, g2.offset);
      EXPECT_LE(rel_err(fused.to(Device::cpu()).to(DType::f64), ref.to(Device::cpu()).to(DType::f64)), 2e-2)
          << describe(cs, DType::bf16);
    }
}

TEST(AttentionMma, MatchesTheScalarKernels) {
  SKIP_WITHOUT_MMA();
  for (DType dt : {DType::bf16, DType::f16})
    for (int64_t d : {64, 128})
      for (const Case& c : {Case{.b = 2, .h = 2, .tq = 100, .tk = 100, .d = d, .mask = true, .causal = true},
                            Case{.b = 1, .h = 3, .tq = 65, .tk = 130, .d = d, .mask = true, .p = 0.15}}) {
        const Inputs in = make_inputs(c, dt);
        const Generator gen{31337, 11};
        Result mma, scalar;
        {
          KernelEnv env("mma");
          mma = run_fused(in, c, kGpu, dt, gen);
        }
        {
          KernelEnv env("scalar");
          scalar = run_fused(in, c, kGpu, dt, gen);
        }
        const Tol t = tol_for(dt);
        expect_results_close(mma, scalar, {2 * t.out, 2 * t.grad}, describe(c, dt) + " (mma vs scalar)");
      }
}

TEST(AttentionMma, Tf32ForF32MatchesCpuF64AndTheScalarKernels) {
  SKIP_WITHOUT_MMA();
  for (int64_t d : {64, 128}) {
    const Case cases[] = {{.b = 2, .h = 2, .tq = 77, .tk = 129, .d = d, .mask = true, .p = 0.2},
                          {.b = 1, .h = 2, .tq = 129, .tk = 129, .d = d, .causal = true},
                          {.b = 1, .h = 2, .tq = 1, .tk = 513, .d = d, .causal = true},
                          {.b = 2, .h = 1, .tq = 70, .tk = 77, .d = d, .mask = true, .padded_batch = true}};
    for (const Case& c : cases) {
      const Inputs in = make_inputs(c, DType::f32);
      const Generator gen{99, 1};
      Result tf32, exact;
      {
        Tf32Switch on(true);
        ASSERT_TRUE(cuda::attention_mma_supports(DType::f32, d, 0));
        tf32 = run_fused(in, c, kGpu, DType::f32, gen);
      }
      {
        Tf32Switch off(false);  // f32 without TF32: the scalar kernels
        exact = run_fused(in, c, kGpu, DType::f32, gen);
      }
      const Result ref = run_fused(in, c, Device::cpu(), DType::f64, gen);
      expect_results_close(tf32, ref, tol_for(DType::f32), describe(c, DType::f32) + " (TF32 vs CPU f64)");
      expect_results_close(exact, ref, {5e-4, 1e-3}, describe(c, DType::f32) + " (scalar f32 vs CPU f64)");
    }
  }
}

TEST(AttentionMma, BertAndGpt2ShapesMatchTheScalarKernels) {
  SKIP_WITHOUT_MMA();
  // One head-batch slice of each benchmark shape: BERT-base (T 128, padded quarter) and GPT-2 (T 1024,
  // causal).
  for (const Case& c : {Case{.b = 4, .h = 12, .tq = 128, .tk = 128, .d = 64, .mask = true, .p = 0.1},
                        Case{.b = 1, .h = 4, .tq = 1024, .tk = 1024, .d = 64, .causal = true}}) {
    const Inputs in = make_inputs(c, DType::bf16);
    Result mma, scalar;
    {
      KernelEnv env("mma");
      mma = run_fused(in, c, kGpu, DType::bf16, Generator{5, 0});
    }
    {
      KernelEnv env("scalar");
      scalar = run_fused(in, c, kGpu, DType::bf16, Generator{5, 0});
    }
    expect_results_close(mma, scalar, {4e-2, 6e-2}, describe(c, DType::bf16) + " (mma vs scalar)");
  }
}

}  // namespace
}  // namespace nabla
