// GPU benchmarks of Nabla ops on CUDA device 0, one JSON line per benchmark on stdout, for comparison with
// benchmarks/bench_gpu_torch.py (same names, shapes, work formulas and timing) by benchmarks/compare_gpu.py.
//
// Timing: `warmup` untimed calls (cuBLAS/cuDNN plans, the caching allocator's first cudaMallocs), a device
// synchronisation, then `runs` calls each bracketed by two CUDA events recorded on Nabla's compute stream;
// the reported ms is the median of the `runs` event intervals. There is no host synchronisation between the
// timed calls, so an interval also counts any time the GPU sat idle waiting for the host to launch work
// (the host overhead of the op and autograd layers shows up as it does in a real training loop).
//
// Work per call (the same formulas as bench_gpu_torch.py, so the throughput ratio is the inverse ms ratio):
//   GEMM C[M,N] = A[M,K] B[K,N]:   2 M N K flops
//   conv2d forward:                2 N K OH OW C kh kw flops; forward+backward 3x that (dX and dW), 2x for
//   the
//                                  stem, whose input needs no gradient
//   layer_norm forward+backward:   5 * numel * 4 bytes (read x, write y; read dy and x, write dx)
//   softmax forward:               2 * numel * 4 bytes (read x, write y)
//   add:                           3 * numel * 4 bytes (read a and b, write c); compare with 4.2 TB/s copy
//   MLP step:                      GEMM flops of forward (3 layers) + backward (dW for all, dX for layers 2,
//   3)
// The per-row statistics and the [cols] affine parameters are left out of the byte counts.
//
// Each line: {"impl": "nabla", "name", "shape", "dtype", "tf32", "ms", "tflops" | "gbs", "runs", "warmup"};
// a benchmark that throws (e.g. an op without a CUDA kernel yet) prints {"name", "shape", "error"} and the
// others still run. The first line is {"name": "_meta", ...} (device, library versions).
//
// Usage: bench_gpu [--runs N] [--warmup N] [--filter SUBSTRING] [--only NAME[,NAME...]] [--list]
//   --list prints the benchmark names, one a line (scripts/gpu_check.sh reruns a benchmark in a process of
//   its own when the shared run crashed or left a sticky CUDA error).
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "algorithms/optim/optimizer.h"
#include "cuda/runtime.h"
#include "models/nn/layers.h"
#include "nabla.h"

namespace {
using namespace nabla;
using json = nlohmann::json;

struct Options {
  int runs = 20;
  int warmup = 5;
  std::string filter;             // run the names containing this
  std::vector<std::string> only;  // run exactly these names (empty: all)
};
Options g_opt;

const Device kGpu = Device::cuda(0);

// Owns the 2 * runs events of one measurement (destroyed even when the benchmark throws).
struct EventPairs {
  std::vector<cudaEvent_t> ev;
  explicit EventPairs(int runs) : ev(2 * runs, nullptr) {
    for (auto& e : ev) NABLA_CUDA_CHECK(cudaEventCreate(&e));
  }
  ~EventPairs() {
    for (auto e : ev)
      if (e) cudaEventDestroy(e);
  }
  EventPairs(const EventPairs&) = delete;
  EventPairs& operator=(const EventPairs&) = delete;
};

// The median over g_opt.runs timed calls of fn, in ms (see the file comment).
double median_ms(const std::function<void()>& fn) {
  for (int i = 0; i < g_opt.warmup; ++i) fn();
  cuda::synchronize();
  const int runs = std::max(1, g_opt.runs);
  EventPairs events(runs);
  cudaStream_t s = cuda::current_stream();
  for (int i = 0; i < runs; ++i) {
    NABLA_CUDA_CHECK(cudaEventRecord(events.ev[2 * i], s));
    fn();
    NABLA_CUDA_CHECK(cudaEventRecord(events.ev[2 * i + 1], s));
  }
  NABLA_CUDA_CHECK(cudaEventSynchronize(events.ev.back()));
  std::vector<double> ms(runs);
  for (int i = 0; i < runs; ++i) {
    float t = 0;
    NABLA_CUDA_CHECK(cudaEventElapsedTime(&t, events.ev[2 * i], events.ev[2 * i + 1]));
    ms[i] = t;
  }
  std::sort(ms.begin(), ms.end());
  return runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]);
}

void print_line(const json& j) {
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

enum class Unit { tflops, gbs };

// Runs one benchmark: `measure` sets up its tensors and returns median_ms(...); `work` is flops (tflops) or
// bytes (gbs) per call. Exceptions become an "error" line.
void run_case(const std::string& name, const std::string& shape, const std::string& dtype, bool tf32,
              Unit unit, double work, const std::function<double()>& measure) {
  json j = {{"impl", "nabla"}, {"name", name}, {"shape", shape}, {"dtype", dtype}, {"tf32", tf32}};
  try {
    cuda::set_tf32_enabled(tf32);
    const double ms = measure();
    cuda::synchronize();
    j["ms"] = ms;
    if (unit == Unit::tflops)
      j["tflops"] = work / (ms * 1e-3) / 1e12;
    else
      j["gbs"] = work / (ms * 1e-3) / 1e9;
    j["runs"] = g_opt.runs;
    j["warmup"] = g_opt.warmup;
  } catch (const std::exception& e) {
    j["error"] = e.what();
    // Clears a non-sticky CUDA error so that the next benchmark starts clean. A sticky one (e.g. an illegal
    // address) fails every later benchmark of this process: gpu_check.sh reruns those names one per process.
    cudaGetLastError();
  }
  print_line(j);
}

Tensor randn_gpu(const Shape& shape, DType dtype = DType::f32, bool requires_grad = false) {
  Tensor t = randn(shape, {.device = kGpu});
  if (dtype != DType::f32) t = t.to(dtype);
  if (requires_grad) t.requires_grad_();
  return t;
}

// ---- GEMM ----------------------------------------------------------------------------------------------
void bench_gemm(const std::string& name, int64_t n, DType dtype, bool tf32) {
  const std::string shape = std::to_string(n) + "x" + std::to_string(n) + "x" + std::to_string(n);
  run_case(name, shape, dtype_name(dtype), tf32, Unit::tflops, 2.0 * n * n * n, [&] {
    Tensor a = randn_gpu({n, n}, dtype), b = randn_gpu({n, n}, dtype);
    return median_ms([&] { Tensor c = matmul(a, b); });
  });
}

// ---- conv2d (ResNet-50 shapes, batch 128, NCHW, no bias as in ResNet) ------------------------------------
struct ConvShape {
  std::string tag;
  int64_t n, c, h, k, kk, s, p;
};

std::string conv_shape_str(const ConvShape& cs) {
  return std::to_string(cs.n) + "x" + std::to_string(cs.c) + "x" + std::to_string(cs.h) + "x" +
         std::to_string(cs.h) + " k" + std::to_string(cs.k) + " " + std::to_string(cs.kk) + "x" +
         std::to_string(cs.kk) + " s" + std::to_string(cs.s) + " p" + std::to_string(cs.p);
}

std::string conv_name(const ConvShape& cs, bool backward) {
  return std::string(backward ? "conv_fwdbwd_" : "conv_fwd_") + cs.tag;
}

void bench_conv(const ConvShape& cs, bool backward) {
  const int64_t oh = (cs.h + 2 * cs.p - cs.kk) / cs.s + 1;
  const bool stem = cs.c == 3;
  const double fwd = 2.0 * cs.n * cs.k * oh * oh * cs.c * cs.kk * cs.kk;
  const double work = backward ? fwd * (stem ? 2.0 : 3.0) : fwd;
  run_case(conv_name(cs, backward), conv_shape_str(cs), "f32", true, Unit::tflops, work, [&] {
    Tensor x = randn_gpu({cs.n, cs.c, cs.h, cs.h}, DType::f32, backward && !stem);
    Tensor w = randn_gpu({cs.k, cs.c, cs.kk, cs.kk}, DType::f32, backward);
    const Pair stride{cs.s, cs.s}, padding{cs.p, cs.p};
    if (!backward) return median_ms([&] { Tensor y = conv2d(x, w, Tensor(), stride, padding); });
    Tensor gy = randn_gpu({cs.n, cs.k, oh, oh});
    return median_ms([&] {
      w.zero_grad();
      if (!stem) x.zero_grad();
      Tensor y = conv2d(x, w, Tensor(), stride, padding);
      y.backward(gy);
    });
  });
}

// The same shapes in bf16 channels-last (NHWC activations and filters), ResNet-50's layout under
// autocast with model->to(MemoryFormat::ChannelsLast); PyTorch's side uses torch.channels_last.
std::string conv_cl_name(const ConvShape& cs) { return "conv_bf16_cl_fwdbwd_" + cs.tag; }

void bench_conv_cl(const ConvShape& cs) {
  const int64_t oh = (cs.h + 2 * cs.p - cs.kk) / cs.s + 1;
  const bool stem = cs.c == 3;
  const double fwd = 2.0 * cs.n * cs.k * oh * oh * cs.c * cs.kk * cs.kk;
  const double work = fwd * (stem ? 2.0 : 3.0);
  const MemoryFormat cl = MemoryFormat::ChannelsLast;
  run_case(conv_cl_name(cs), conv_shape_str(cs), "bf16", true, Unit::tflops, work, [&] {
    Tensor x = randn_gpu({cs.n, cs.c, cs.h, cs.h}, DType::bf16).contiguous(cl);
    Tensor w = randn_gpu({cs.k, cs.c, cs.kk, cs.kk}, DType::bf16).contiguous(cl);
    if (!stem) x.requires_grad_();
    w.requires_grad_();
    const Pair stride{cs.s, cs.s}, padding{cs.p, cs.p};
    Tensor gy = randn_gpu({cs.n, cs.k, oh, oh}, DType::bf16).contiguous(cl);
    return median_ms([&] {
      w.zero_grad();
      if (!stem) x.zero_grad();
      Tensor y = conv2d(x, w, Tensor(), stride, padding);
      y.backward(gy);
    });
  });
}

// ---- layer_norm, softmax, add --------------------------------------------------------------------------
void bench_layer_norm() {
  const int64_t rows = 8192, cols = 1024;
  run_case("layer_norm_fwdbwd", "8192x1024", "f32", false, Unit::gbs, 5.0 * rows * cols * 4, [&] {
    Tensor x = randn_gpu({rows, cols}, DType::f32, true);
    Tensor w = ones({cols}, {.device = kGpu, .requires_grad = true});
    Tensor b = zeros({cols}, {.device = kGpu, .requires_grad = true});
    Tensor gy = randn_gpu({rows, cols});
    return median_ms([&] {
      x.zero_grad();
      w.zero_grad();
      b.zero_grad();
      Tensor y = layer_norm(x, {cols}, w, b, 1e-5);
      y.backward(gy);
    });
  });
}

void bench_softmax() {
  const int64_t rows = 8192, cols = 4096;
  run_case("softmax_fwd", "8192x4096", "f32", false, Unit::gbs, 2.0 * rows * cols * 4, [&] {
    Tensor x = randn_gpu({rows, cols});
    return median_ms([&] { Tensor y = softmax(x, 1); });
  });
}

void bench_add() {
  const int64_t n = int64_t(256) << 20;  // 268,435,456 elements, 1 GiB per tensor
  run_case("add_f32_256M", std::to_string(n), "f32", false, Unit::gbs, 3.0 * n * 4, [&] {
    Tensor a = randn_gpu({n}), b = randn_gpu({n});
    return median_ms([&] { Tensor c = add(a, b); });
  });
}

// ---- MLP training step -----------------------------------------------------------------------------------
// nn::Module has no to(Device) yet: rebind the Linear's weight and bias members (what forward reads) to
// device copies that are new leaves, and hand those same tensors to the optimizer.
void linear_to(nn::Linear& l, Device d) {
  l.weight = l.weight.detach().to(d).requires_grad_();
  l.bias = l.bias.detach().to(d).requires_grad_();
}

void bench_mlp() {
  const int64_t batch = 4096, width = 4096, classes = 1000;
  const double l1 = 2.0 * batch * width * width, l2 = l1, l3 = 2.0 * batch * width * classes;
  const double work = 3.0 * (l1 + l2 + l3) - l1;  // no dX for the first layer
  run_case("mlp_step", "batch 4096, 4096-4096-4096-1000", "f32", true, Unit::tflops, work, [&] {
    manual_seed(0);
    nn::Linear fc1(width, width), fc2(width, width), fc3(width, classes);
    for (nn::Linear* l : {&fc1, &fc2, &fc3}) linear_to(*l, kGpu);
    optim::Sgd opt(std::vector<Tensor>{fc1.weight, fc1.bias, fc2.weight, fc2.bias, fc3.weight, fc3.bias},
                   optim::SgdOptions{.lr = 0.01, .momentum = 0.9});
    Tensor x = randn_gpu({batch, width});
    Tensor labels = randint(0, classes, {batch}, {.dtype = DType::i64, .device = kGpu});
    return median_ms([&] {
      opt.zero_grad();
      Tensor h = relu(fc1(x));
      h = relu(fc2(h));
      Tensor loss = cross_entropy(fc3(h), labels);
      loss.backward();
      opt.step();
    });
  });
}

void print_meta() {
  cudaDeviceProp prop{};
  NABLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  int runtime = 0, driver = 0, cublas = 0;
  NABLA_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  NABLA_CUDA_CHECK(cudaDriverGetVersion(&driver));
  NABLA_CUBLAS_CHECK(cublasGetVersion(cuda::cublas_handle(), &cublas));
  print_line({{"impl", "nabla"},
              {"name", "_meta"},
              {"device", prop.name},
              {"cuda_runtime", runtime},
              {"cuda_driver", driver},
              {"cublas", cublas},
              {"cudnn", static_cast<int64_t>(cudnnGetVersion())},
              {"runs", g_opt.runs},
              {"warmup", g_opt.warmup}});
}

struct Case {
  std::string name;
  std::function<void()> run;
};

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  auto gemm = [&](const std::string& name, int64_t n, DType dtype, bool tf32) {
    cases.push_back({name, [=] { bench_gemm(name, n, dtype, tf32); }});
  };
  gemm("gemm_f32_4096", 4096, DType::f32, false);
  gemm("gemm_tf32_4096", 4096, DType::f32, true);
  gemm("gemm_bf16_4096", 4096, DType::bf16, false);
  gemm("gemm_bf16_8192", 8192, DType::bf16, false);
  const std::vector<ConvShape> convs = {
      {"64x56_3x3", 128, 64, 56, 64, 3, 1, 1},
      {"256x56_1x1", 128, 256, 56, 64, 1, 1, 0},
      {"128x28_3x3", 128, 128, 28, 128, 3, 1, 1},
      {"stem_7x7s2", 128, 3, 224, 64, 7, 2, 3},
  };
  for (bool backward : {false, true})
    for (const auto& cs : convs)
      cases.push_back({conv_name(cs, backward), [=] { bench_conv(cs, backward); }});
  for (const auto& cs : convs) cases.push_back({conv_cl_name(cs), [=] { bench_conv_cl(cs); }});
  cases.push_back({"layer_norm_fwdbwd", bench_layer_norm});
  cases.push_back({"softmax_fwd", bench_softmax});
  cases.push_back({"add_f32_256M", bench_add});
  cases.push_back({"mlp_step", bench_mlp});
  return cases;
}

bool selected(const std::string& name) {
  if (!g_opt.filter.empty() && name.find(g_opt.filter) == std::string::npos) return false;
  return g_opt.only.empty() || std::find(g_opt.only.begin(), g_opt.only.end(), name) != g_opt.only.end();
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

int parse_int(const char* flag, const char* v) {
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || x < 0) {
    std::fprintf(stderr, "bench_gpu: %s expects a non-negative integer, got '%s'\n", flag, v);
    std::exit(2);
  }
  return static_cast<int>(x);
}

}  // namespace

int main(int argc, char** argv) {
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--runs") && has_value) {
      g_opt.runs = std::max(1, parse_int("--runs", argv[++i]));
    } else if (!std::strcmp(argv[i], "--warmup") && has_value) {
      g_opt.warmup = parse_int("--warmup", argv[++i]);
    } else if (!std::strcmp(argv[i], "--filter") && has_value) {
      g_opt.filter = argv[++i];
    } else if (!std::strcmp(argv[i], "--only") && has_value) {
      for (auto& n : split_commas(argv[++i])) g_opt.only.push_back(n);
    } else if (!std::strcmp(argv[i], "--list")) {
      list = true;
    } else {
      std::fprintf(
          stderr,
          "usage: bench_gpu [--runs N] [--warmup N] [--filter SUBSTRING] [--only NAME[,NAME...]] [--list]\n");
      return 2;
    }
  }
  const std::vector<Case> cases = all_cases();
  if (list) {
    for (const auto& c : cases)
      if (selected(c.name)) std::printf("%s\n", c.name.c_str());
    return 0;
  }
  for (const auto& n : g_opt.only) {
    if (std::none_of(cases.begin(), cases.end(), [&](const Case& c) { return c.name == n; })) {
      std::fprintf(stderr, "bench_gpu: no benchmark named '%s' (see --list)\n", n.c_str());
      return 2;
    }
  }
  if (!cuda::available()) {
    print_line({{"impl", "nabla"}, {"name", "_meta"}, {"error", "no CUDA device"}});
    return 1;
  }
  try {
    print_meta();
  } catch (const std::exception& e) {
    print_line({{"impl", "nabla"}, {"name", "_meta"}, {"error", e.what()}});
  }
  for (const auto& c : cases)
    if (selected(c.name)) c.run();
  return 0;
}
