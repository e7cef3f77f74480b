// CPU benchmarks (Google Benchmark), f32.
//
// 1. GEMM: nabla::matmul against cblas_sgemm called directly on the same shapes (square 256/512/1024 and
//    the [B*H*W, C] x [C, K] products of ResNet convs), in GFLOP/s = 2 M N K / time. matmul is a thin
//    wrapper over the same call, so the two columns should agree; the wrapper adds an output allocation
//    and the autograd bookkeeping per call.
// 2. conv2d forward and forward+backward at ResNet-50-like layer shapes (batch 8; the 7x7 stem with
//    batch 2), in GFLOP/s of useful multiply-adds: forward 2 * N * K * OH * OW * C/g * kh * kw, backward
//    twice that (dW and dX; the stem's input needs no gradient, so its backward is dW only).
// Run: OMP_NUM_THREADS=2 ./build/bench_cpu --benchmark_min_time=0.2
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <vector>

#include "nabla.h"

namespace {
using namespace nabla;

Tensor random_f32(const Shape& shape, uint64_t seed, bool requires_grad = false) {
  Generator g{seed, 0};
  return randn(shape, {.requires_grad = requires_grad}, &g);
}

double gemm_flops(const benchmark::State& s) {
  return 2.0 * static_cast<double>(s.range(0)) * static_cast<double>(s.range(1)) *
         static_cast<double>(s.range(2));
}

void set_gflops(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Args: M, K, N for C[M, N] = A[M, K] @ B[K, N].
void gemm_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N"});
  for (int64_t n : {256, 512, 1024}) b->Args({n, n, n});
  b->Args({3136, 576, 64});   // 64x56x56 3x3 conv of batch 1: [56*56, 64*9] x [64*9, 64]
  b->Args({784, 1152, 128});  // 128x28x28 3x3 conv of batch 1
  b->Args({25088, 576, 64});  // the same 64-channel layer with batch 8 folded into M
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

void BM_gemm_nabla_matmul(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Tensor a = random_f32({m, k}, 1), b = random_f32({k, n}, 2);
  for (auto _ : state) {
    Tensor c = matmul(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  set_gflops(state, gemm_flops(state));
}
BENCHMARK(BM_gemm_nabla_matmul)->Apply(gemm_args);

void BM_gemm_cblas_sgemm(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Tensor a = random_f32({m, k}, 1), b = random_f32({k, n}, 2);
  std::vector<float> c(m * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data<float>(), k, b.data<float>(),
                n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, gemm_flops(state));
}
BENCHMARK(BM_gemm_cblas_sgemm)->Apply(gemm_args);

// Args: N, C, H (= W), K, k (square kernel), stride, padding.
void conv_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "K", "k", "s", "p"});
  b->Args({8, 64, 56, 64, 3, 1, 1});
  b->Args({8, 128, 28, 128, 3, 1, 1});
  b->Args({8, 256, 14, 1024, 1, 1, 0});
  b->Args({2, 3, 224, 64, 7, 2, 3});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

struct ConvSetup {
  Tensor x, w, b, gy;
  Pair stride, padding;
  double fwd_flops;
  bool stem;  // the network input: no gradient wanted for x
};

ConvSetup conv_setup(const benchmark::State& state, bool with_grad) {
  const int64_t n = state.range(0), c = state.range(1), h = state.range(2), k = state.range(3),
                kk = state.range(4), s = state.range(5), p = state.range(6);
  ConvSetup cs;
  cs.stem = c == 3;
  cs.x = random_f32({n, c, h, h}, 3, with_grad && !cs.stem);
  cs.w = random_f32({k, c, kk, kk}, 4, with_grad);
  cs.b = random_f32({k}, 5, with_grad);
  cs.stride = {s, s};
  cs.padding = {p, p};
  const int64_t oh = ops::conv_out_size(h, kk, s, p, 1);
  cs.gy = random_f32({n, k, oh, oh}, 6);
  cs.fwd_flops = 2.0 * n * k * oh * oh * c * kk * kk;
  return cs;
}

void BM_conv2d_forward(benchmark::State& state) {
  ConvSetup cs = conv_setup(state, false);
  for (auto _ : state) {
    Tensor y = conv2d(cs.x, cs.w, cs.b, cs.stride, cs.padding);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  set_gflops(state, cs.fwd_flops);
}
BENCHMARK(BM_conv2d_forward)->Apply(conv_args);

void BM_conv2d_forward_backward(benchmark::State& state) {
  ConvSetup cs = conv_setup(state, true);
  for (auto _ : state) {
    Tensor y = conv2d(cs.x, cs.w, cs.b, cs.stride, cs.padding);
    y.backward(cs.gy);
    benchmark::DoNotOptimize(cs.w.grad().data_ptr());
    cs.w.zero_grad();
    cs.b.zero_grad();
    if (!cs.stem) cs.x.zero_grad();
  }
  set_gflops(state, cs.fwd_flops * (cs.stem ? 2.0 : 3.0));
}
BENCHMARK(BM_conv2d_forward_backward)->Apply(conv_args);

// The stem's pool: 8 x 64 x 112 x 112, 3x3 stride 2 padding 1.
void BM_max_pool2d_forward_backward(benchmark::State& state) {
  Tensor x = random_f32({8, 64, 112, 112}, 7, true);
  Tensor gy = random_f32({8, 64, 56, 56}, 8);
  for (auto _ : state) {
    Tensor y = max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
    y.backward(gy);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.zero_grad();
  }
}
BENCHMARK(BM_max_pool2d_forward_backward)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
