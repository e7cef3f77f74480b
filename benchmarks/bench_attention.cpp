// Attention benchmark on CUDA device 0: scaled_dot_product_attention (fused: cuda/attention_mma.cu's
// tensor-core kernels for bf16/f16 and TF32 f32 with D 64 or 128, cuda/attention.cu's scalar kernels
// otherwise), the same op forced onto the scalar kernels (NABLA_ATTENTION_KERNEL=scalar, for A/B), and the
// unfused composition (matmul, additive mask, softmax, matmul: models/bert/attention.cpp's maths), forward
// and forward+backward, one JSON line per case, for comparison with benchmarks/attention_torch.py (the same
// cases with torch.nn.functional.scaled_dot_product_attention).
//
// f32 runs with TF32 on (the engine's default), so its fused line is the TF32 tensor-core kernels.
// Cases: BERT-base (B 32, H 12, T 128, D 64, key-padding mask with the last quarter of each sequence padded),
// GPT-2 (B 16, H 12, T 1024, D 64, causal) and a D 128 causal case (B 8, H 16, T 1024), in f32 (TF32 on for
// the composition's GEMMs), bf16 and f16.
// Timing: `warmup` untimed calls, then `runs` calls each bracketed by CUDA events on the compute stream;
// the median interval. forward+backward = forward, then backward of sum(out * cotangent) into q, k, v.
// Work: forward 4 B H Tq Tk D flops (two GEMMs; half for causal), forward+backward 3.5x that (the backward
// has five GEMM-sized products, one of them the recomputed scores), the flash-attention convention.
//
// Each line: {"impl": "nabla_fused" | "nabla_fused_scalar" | "nabla_unfused", "name", "dtype", "shape",
// "pass": "fwd" | "fwd_bwd", "ms", "tflops"}; a case that throws prints its "error".
// Usage: bench_attention [--runs N] [--warmup N]

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/device_runtime.h"
#include "nabla.h"

namespace {
using namespace nabla;
using json = nlohmann::json;

int g_runs = 20, g_warmup = 5;
const Device kGpu = Device::cuda(0);

double median_ms(const std::function<void()>& fn) {
  for (int i = 0; i < g_warmup; ++i) fn();
  runtime::synchronize(kGpu);
  const int runs = std::max(1, g_runs);
  std::vector<std::unique_ptr<runtime::Event>> ev;
  for (int i = 0; i < 2 * runs; ++i) ev.push_back(std::make_unique<runtime::Event>(kGpu));
  for (int i = 0; i < runs; ++i) {
    ev[2 * i]->record();
    fn();
    ev[2 * i + 1]->record();
  }
  ev.back()->synchronize();
  std::vector<double> ms(runs);
  for (int i = 0; i < runs; ++i) ms[i] = ev[2 * i]->elapsed_ms(*ev[2 * i + 1]);
  std::sort(ms.begin(), ms.end());
  return runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]);
}

struct Shape4 {
  const char* name;
  int64_t b, h, t, d;
  bool causal;
};

// The composition: softmax(q k^T * scale + additive mask) @ v.
Tensor unfused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& additive) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  Tensor s = matmul(q, k.transpose(-1, -2)) * scale + additive;
  return matmul(softmax(s, -1), v);
}

enum class Impl { fused, fused_scalar, unfused };
const char* impl_name(Impl i) {
  return i == Impl::fused ? "nabla_fused" : i == Impl::fused_scalar ? "nabla_fused_scalar" : "nabla_unfused";
}

void run(const Shape4& c, DType dtype, Impl impl) {
  const bool fused = impl != Impl::unfused;
  // The environment switch is read at each call (cuda/attention_mma.h).
  if (impl == Impl::fused_scalar)
    setenv("NABLA_ATTENTION_KERNEL", "scalar", 1);
  else
    unsetenv("NABLA_ATTENTION_KERNEL");
  const std::string shape =
      std::to_string(c.b) + "x" + std::to_string(c.h) + "x" + std::to_string(c.t) + "x" + std::to_string(c.d);
  const double fwd_flops = 4.0 * c.b * c.h * c.t * c.t * c.d * (c.causal ? 0.5 : 1.0);
  for (const char* pass : {"fwd", "fwd_bwd"}) {
    json j = {{"impl", impl_name(impl)},
              {"name", c.name},
              {"dtype", dtype_name(dtype)},
              {"shape", shape},
              {"pass", pass}};
    try {
      runtime::set_tf32_enabled(true);
      const bool bwd = std::strcmp(pass, "fwd_bwd") == 0;
      auto make = [&] {
        Tensor t = randn({c.b, c.h, c.t, c.d}, {.device = kGpu}).to(dtype);
        if (bwd) t.requires_grad_(true);
        return t;
      };
      Tensor q = make(), k = make(), v = make();
      // BERT: the last quarter of every sequence is padding; GPT: no padding, causal.
      std::vector<double> keep(static_cast<size_t>(c.b * c.t), 1.0);
      if (!c.causal)
        for (int64_t bi = 0; bi < c.b; ++bi)
          for (int64_t x = c.t * 3 / 4; x < c.t; ++x) keep[bi * c.t + x] = 0.0;
      Tensor keep_t = from_vector(keep, {c.b, c.t}).to(kGpu);
      Tensor kpm = c.causal ? Tensor() : gt(keep_t, scalar_like(0.5, keep_t));
      Tensor additive;
      if (!fused) {
        if (c.causal) {
          std::vector<double> m(static_cast<size_t>(c.t * c.t));
          for (int64_t i = 0; i < c.t; ++i)
            for (int64_t x = 0; x < c.t; ++x) m[i * c.t + x] = x <= i ? 0.0 : -1e30;
          additive = from_vector(m, {1, 1, c.t, c.t}).to(kGpu).to(dtype == DType::f32 ? dtype : DType::f32);
        } else {
          additive = ((keep_t - 1.0) * 1e30).reshape({c.b, 1, 1, c.t});
        }
        if (dtype != DType::f32) additive = clamp(additive, -3e38).to(dtype);
        if (dtype == DType::f16) additive = clamp(additive.to(DType::f32), -6e4).to(dtype);
      }
      Tensor cot = randn({c.b, c.h, c.t, c.d}, {.device = kGpu}).to(dtype);
      auto step = [&] {
        Tensor out =
            fused ? scaled_dot_product_attention(q, k, v, kpm, c.causal) : unfused(q, k, v, additive);
        if (bwd) {
          out.backward(cot);
          q.zero_grad(), k.zero_grad(), v.zero_grad();
        }
      };
      const double ms = median_ms(step);
      j["ms"] = ms;
      j["tflops"] = (bwd ? 3.5 : 1.0) * fwd_flops / (ms * 1e-3) / 1e12;
      j["runs"] = g_runs;
    } catch (const std::exception& e) {
      j["error"] = e.what();
    }
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
      g_runs = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
      g_warmup = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_attention [--runs N] [--warmup N] (got %s)\n", argv[i]);
      return 2;
    }
  }
  if (!runtime::available(DeviceType::cuda)) {
    std::fprintf(stderr, "bench_attention: no CUDA device\n");
    return 1;
  }
  const Shape4 cases[] = {{"bert_base", 32, 12, 128, 64, false},
                          {"gpt2", 16, 12, 1024, 64, true},
                          {"causal_d128", 8, 16, 1024, 128, true}};
  for (const auto& c : cases)
    for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
      run(c, dt, Impl::fused);
      run(c, dt, Impl::fused_scalar);
      run(c, dt, Impl::unfused);
    }
  unsetenv("NABLA_ATTENTION_KERNEL");
  return 0;
}
