// CUDA conv2d (the conv2d_forward / conv2d_backward slots of ops/conv.h) through cuDNN 9: its graph API by
// default (cuda/cudnn_graph.h: one cached execution plan per shape, about 4x less host time per call than
// the legacy calls), its legacy convolution API for a shape the graph API has no engine for or under
// NABLA_CUDNN_API=legacy; plus two small kernels for the bias.
//
// Maths (cross-correlation, as the CPU kernel):
//   y[n, o, i, j] = b[o] + sum_{c in group(o), p, q}
//                   w[o, c, p, q] * x[n, c, i*s + p*d - pad, j*s + q*d - pad]
//   dx = cudnnConvolutionBackwardData(w, dy),  dw = cudnnConvolutionBackwardFilter(x, dy)
//   db[o] = sum_{n, i, j} dy[n, o, i, j]  (our own deterministic two-stage reduction)
//
// Descriptors: x / dx and y / dy are described with their actual strides (cudnnSetTensorNdDescriptor), so
// an NHWC-strided tensor (a permute of a contiguous [N, H, W, C]) is read in place. Filters: NCHW
// [K, C / groups, kh, kw] row-major, or, when the geometry says channels_last (ops/conv.h: the op layer
// then hands every tensor channels-last), CUDNN_TENSOR_NHWC ([K, kh, kw, C / groups] in memory). cuDNN 9
// has fast tensor-core NHWC kernels, and no backward algorithms at all for NHWC data with an NCHW filter,
// which is why the filter follows the activations. Groups go to cuDNN with cudnnSetConvolutionGroupCount.
//
// Types: f32 (FLOAT data, FLOAT compute; math CUDNN_TENSOR_OP_MATH when tf32_enabled(), which lets cuDNN
// use TF32 tensor cores, else CUDNN_FMA_MATH, full f32), f64 (DOUBLE / DOUBLE, CUDNN_DEFAULT_MATH),
// bf16 and f16 (16-bit data, FLOAT compute, CUDNN_TENSOR_OP_MATH).
//
// Graph API: the same key as below caches the plan; cuda/cudnn_graph.h describes how the engine is chosen
// (heuristics, filtered as below for determinism and TF32, then the best few timed on the call's buffers).
// The legacy descriptors are made for every shape (they check the output size), and used only when the
// graph API has no plan for it.
//
// Legacy algorithms: chosen once per (direction, device, dtype, math type, shapes, strides of x / y, groups,
// padding, stride, dilation, 16-byte alignment of the pointers) and cached with the descriptors in a map,
// so the steady state is one map look-up and one cuDNN call. The choice benchmarks with
// cudnnFind*AlgorithmEx on the call's own buffers (a host synchronisation, first call of a shape only) and
// takes the fastest DETERMINISTIC algorithm that succeeded (a non-deterministic one only when none is;
// NABLA_CUDNN_DETERMINISTIC=0 takes the fastest of all, as PyTorch does by default),
// run with the math type it was timed with (f32 forced back to FMA math while TF32 is off);
// NABLA_CUDNN_FIND=0 uses the heuristics of cudnnGet*Algorithm_v7 instead (no benchmarking). The Find
// workspace is the largest any algorithm asks for, capped at 1 GiB; algorithms needing more are skipped.
// Workspace memory comes from workspace(bytes) (the caching allocator).
//
// Choice cache file (NABLA_CONV_CACHE=path, cuda/conv_cache.h): loaded at the first convolution; a shape
// found there takes its recorded graph-API engine without timing (no host synchronisation); every newly
// timed graph-API choice is added and the file rewritten (temporary file + rename). Legacy-API choices are
// not recorded (they are re-found). NABLA_CONV_REPORT=1 prints every shape's choice when the process exits
// (bench_resnet --report-algos sets it); NABLA_CUDNN_LOG=1 prints each as it is made.
//
// Bias: forward adds b[o] in a separate element-wise pass over y (one thread per element; channel
// (i / OH OW) % K in NCHW, i % K in NHWC). Bias gradient, NCHW: grid (S, K) blocks each sum a contiguous
// slice of channel k's N * OH * OW values (warp shuffles, then shared memory) into partial[k, s]; NHWC (dy
// is [M = N OH OW, K] row-major): grid (S, ceil(K / 32)) blocks of 32 x 8 threads, thread (tx, ty) summing
// column k = 32 bx + tx over rows ty, ty + 8, ... of slice s (coalesced over k), then the 8 row-threads
// added in a fixed order into partial[k, s]. A second kernel adds the S partials of each channel in order,
// so the result does not depend on scheduling; sums accumulate in f64 (the CPU kernel does too).
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/conv_cache.h"
#include "cuda/cudnn_graph.h"
#include "cuda/dtype.cuh"
#include "engine/capture.h"
#include "cuda/loops.cuh"
#include "ops/linalg.h"
#include "ops/conv.h"

namespace nabla::cuda {
namespace {
using ops::Conv2dGeometry;

enum class Dir : int64_t { fwd = 0, bwd_data = 1, bwd_filter = 2 };

// Benchmarking the candidates (cudnnFind*AlgorithmEx, or timing the graph API's plans) waits for the device:
// not inside a CUDA graph capture, where a shape first met (rare: the warm-up step sees them all) takes
// the heuristics' choice instead.
bool use_find() {
  static const bool on = [] {
    const char* v = std::getenv("NABLA_CUDNN_FIND");
    return !(v && std::string(v) == "0");
  }();
  return on && !capturing_cuda_graph();
}

constexpr size_t kMaxFindWorkspace = size_t(1) << 30;

cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::f32:
      return CUDNN_DATA_FLOAT;
    case DType::f64:
      return CUDNN_DATA_DOUBLE;
    case DType::bf16:
      return CUDNN_DATA_BFLOAT16;
    case DType::f16:
      return CUDNN_DATA_HALF;
    default:
      fail("conv2d: dtype ", t, " is not supported on cuda (expected f32, f64, bf16 or f16)");
  }
}

cudnnMathType_t math_type(DType t) {
  switch (t) {
    case DType::f32:
      return tf32_enabled() ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
    case DType::f64:
      return CUDNN_DEFAULT_MATH;
    default:
      return CUDNN_TENSOR_OP_MATH;
  }
}

// alpha = 1, beta = 0 in the type cuDNN expects for the data type (double for DOUBLE, float otherwise).
struct Scaling {
  float f1 = 1.f, f0 = 0.f;
  double d1 = 1.0, d0 = 0.0;
  const void* one(DType t) const { return t == DType::f64 ? static_cast<const void*>(&d1) : &f1; }
  const void* zero(DType t) const { return t == DType::f64 ? static_cast<const void*>(&d0) : &f0; }
};
const Scaling kScaling{};

int to_int(int64_t v, const char* what) {
  NABLA_CHECK(v >= 0 && v <= INT32_MAX, "conv2d: ", what, " ", v, " does not fit cuDNN's 32-bit descriptors");
  return static_cast<int>(v);
}

// The strides cuDNN sees for a 4-D tensor: its own (contiguous ones canonical, so that a size-1 dim's
// arbitrary stride does not make two equal layouts look different).
std::array<int64_t, 4> strides4(const Tensor& t) {
  if (t.is_contiguous()) {
    const Strides s = contiguous_strides(t.shape());
    return {s[0], s[1], s[2], s[3]};
  }
  if (t.is_contiguous(MemoryFormat::ChannelsLast)) {
    const Strides s = channels_last_strides(t.shape());
    return {s[0], s[1], s[2], s[3]};
  }
  const Strides& s = t.strides();
  return {s[0], s[1], s[2], s[3]};
}

// Owns the descriptors of one (direction, geometry, layout, dtype) and the algorithm chosen for it.
struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;  // x role: x or dx; y role: y or dy
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  int algo = 0;
  size_t ws = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // the math type the chosen algorithm was timed with
  // The graph API's plan (cuda/cudnn_graph.h); when set, it runs instead of the legacy algorithm above.
  std::shared_ptr<cudnn_graph::ConvPlan> graph;
  std::string graph_log;          // NABLA_CUDNN_LOG: how the graph plan was chosen, or why there is none
  int64_t preferred_engine = -1;  // from the NABLA_CONV_CACHE file, -1 if none
  std::string report;             // the shape and its choice, for NABLA_CUDNN_LOG / NABLA_CONV_REPORT
  // Never destroyed: plans live for the process (the map is leaked so that no cuDNN call runs during
  // static destruction, after the library may be gone).
};

using PlanKey = conv_cache::Key;

struct PlanCache {
  std::mutex mu;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
};
PlanCache& plan_cache() {
  static PlanCache* c = new PlanCache();
  return *c;
}

// NABLA_CONV_REPORT=1: the table of every shape's choice on stderr at exit.
bool report_choices() {
  static const bool on = [] {
    const char* v = std::getenv("NABLA_CONV_REPORT");
    return v && std::string(v) == "1";
  }();
  return on;
}

void print_report() {
  PlanCache& cache = plan_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  int64_t graph = 0, from_file = 0;
  for (const auto& [k, p] : cache.plans) {
    graph += p->graph != nullptr;
    from_file += p->graph && cudnn_graph::from_preferred_engine(*p->graph);
  }
  std::fprintf(stderr,
               "NABLA_CONV_REPORT: %zu convolution shapes (direction dtype batch in-channels HxW -> "
               "out-channels HxW): %lld on cuDNN graph-API engines (%lld of them from NABLA_CONV_CACHE), "
               "%lld on the legacy API; 1x1 channels-last convolutions on cuBLAS are not listed\n",
               cache.plans.size(), static_cast<long long>(graph), static_cast<long long>(from_file),
               static_cast<long long>(static_cast<int64_t>(cache.plans.size()) - graph));
  for (const auto& [k, p] : cache.plans) std::fprintf(stderr, "  %s\n", p->report.c_str());
}

void register_report() {
  static const bool registered = std::atexit(print_report) == 0;
  (void)registered;
}

// The process's cache file (NABLA_CONV_CACHE), loaded once. The context ties the choices to the cuDNN
// version and the GPU model.
struct CacheFile {
  std::string path, context;
  conv_cache::Entries entries;
};
CacheFile* cache_file() {
  static CacheFile* f = []() -> CacheFile* {
    const char* v = std::getenv("NABLA_CONV_CACHE");
    if (!v || !*v) return nullptr;
    auto* c = new CacheFile();
    c->path = v;
    cudaDeviceProp prop{};
    NABLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, current_device()));
    c->context = str_cat("cudnn ", static_cast<long long>(cudnnGetVersion()), " sm", prop.major, prop.minor,
                         " ", prop.name);
    for (char& ch : c->context)
      if (ch == '\n' || ch == '\r') ch = ' ';
    c->entries = conv_cache::load(c->path, c->context);
    return c;
  }();
  return f;
}

void set_tensor_desc(cudnnTensorDescriptor_t d, cudnnDataType_t dt, const std::array<int64_t, 4>& dims,
                     const std::array<int64_t, 4>& strides) {
  int di[4], si[4];
  for (int k = 0; k < 4; ++k) {
    di[k] = to_int(dims[k], "tensor size");
    si[k] = to_int(strides[k], "tensor stride");
  }
  NABLA_CUDNN_CHECK(cudnnSetTensorNdDescriptor(d, dt, 4, di, si));
}

std::unique_ptr<Plan> make_descriptors(const Conv2dGeometry& g, DType dtype, const std::array<int64_t, 4>& xs,
                                       const std::array<int64_t, 4>& ys) {
  auto p = std::make_unique<Plan>();
  const cudnnDataType_t dt = cudnn_type(dtype);
  const cudnnDataType_t compute = dtype == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  NABLA_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  NABLA_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  NABLA_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  NABLA_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  set_tensor_desc(p->x, dt, {g.n, g.c_in, g.h, g.w}, xs);
  set_tensor_desc(p->y, dt, {g.n, g.c_out, g.oh, g.ow}, ys);
  NABLA_CUDNN_CHECK(cudnnSetFilter4dDescriptor(
      p->w, dt, g.channels_last ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, to_int(g.c_out, "channels"),
      to_int(g.c_in / g.groups, "channels"), to_int(g.kh, "kernel size"), to_int(g.kw, "kernel size")));
  NABLA_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
      p->conv, to_int(g.pad_h, "padding"), to_int(g.pad_w, "padding"), to_int(g.stride_h, "stride"),
      to_int(g.stride_w, "stride"), to_int(g.dil_h, "dilation"), to_int(g.dil_w, "dilation"),
      CUDNN_CROSS_CORRELATION, compute));
  NABLA_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p->conv, to_int(g.groups, "groups")));
  NABLA_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, math_type(dtype)));
  // The output size cuDNN derives must be the op layer's.
  int on, oc, oh, ow;
  NABLA_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &on, &oc, &oh, &ow));
  NABLA_CHECK(on == g.n && oc == g.c_out && oh == g.oh && ow == g.ow, "conv2d: cuDNN output size [", on, ", ",
              oc, ", ", oh, ", ", ow, "] differs from the expected [", g.n, ", ", g.c_out, ", ", g.oh, ", ",
              g.ow, "]");
  return p;
}

// NABLA_CUDNN_DETERMINISTIC=0: take the fastest algorithm whether or not it is deterministic (PyTorch's
// default, torch.backends.cudnn.deterministic = False); by default Nabla keeps its backward reproducible run
// to run, as its own kernels are. Read once, at the first algorithm choice.
bool deterministic_only() {
  static const bool on = [] {
    const char* v = std::getenv("NABLA_CUDNN_DETERMINISTIC");
    return !(v && std::string(v) == "0");
  }();
  return on;
}

// NABLA_CUDNN_LOG=1: one line on stderr per algorithm choice (direction, dtype, geometry; the graph API's
// engine with the candidates' times, or the legacy algorithm, its math type and workspace), so that two
// runs' choices can be compared (docs/cuda.md: ResNet-18's per-process speed).
bool log_choices() {
  static const bool on = [] {
    const char* v = std::getenv("NABLA_CUDNN_LOG");
    return v && std::string(v) == "1";
  }();
  return on;
}

// Picks from benchmark or heuristic results (sorted best first): the first successful deterministic one
// that fits `max_ws`, else the first successful one (with NABLA_CUDNN_DETERMINISTIC=0: the first successful
// one). Returns false when none succeeded.
template <class Perf>
bool pick(const Perf* perf, int count, size_t max_ws, Plan& p) {
  for (int pass = deterministic_only() ? 0 : 1; pass < 2; ++pass)
    for (int i = 0; i < count; ++i) {
      const Perf& r = perf[i];
      if (r.status != CUDNN_STATUS_SUCCESS || r.memory > max_ws) continue;
      if (pass == 0 && r.determinism != CUDNN_DETERMINISTIC) continue;
      p.algo = static_cast<int>(r.algo);
      p.ws = r.memory;
      p.math = r.mathType;
      return true;
    }
  return false;
}

// Runs the chosen algorithm with the math type it was timed with (as PyTorch does), except that f32 never
// gets tensor-op (TF32) math while TF32 is off.
void adopt_math(Plan& p, DType dt) {
  if (dt == DType::f32 && !tf32_enabled()) p.math = CUDNN_FMA_MATH;
  NABLA_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.math));
}

// The largest workspace any algorithm of `count` asks for (capped), for the Find call.
template <class SizeFn>
size_t find_workspace(int count, SizeFn&& size_of) {
  size_t most = 0;
  for (int a = 0; a < count; ++a) {
    size_t s = 0;
    if (size_of(a, &s) == CUDNN_STATUS_SUCCESS && s <= kMaxFindWorkspace) most = std::max(most, s);
  }
  return most;
}

void choose_forward(Plan& p, const Tensor& x, const Tensor& w, Tensor& y) {
  cudnnHandle_t h = cudnn_handle();
  constexpr int kAlgos = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  int max_results = 0;  // results may list an algorithm once per math type
  NABLA_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_results));
  const int num_results = std::max(max_results, kAlgos);
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf_v(num_results);
  cudnnConvolutionFwdAlgoPerf_t* perf = perf_v.data();
  int n = 0;
  bool ok = false;
  if (use_find()) {
    const size_t ws = find_workspace(kAlgos, [&](int a, size_t* s) {
      return cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, p.conv, p.y,
                                                     static_cast<cudnnConvolutionFwdAlgo_t>(a), s);
    });
    // A failed benchmark falls back to the heuristics below.
    const cudnnStatus_t st = cudnnFindConvolutionForwardAlgorithmEx(
        h, p.x, x.data_ptr(), p.w, w.data_ptr(), p.conv, p.y, y.data_ptr(), num_results, &n, perf,
        ws ? workspace(ws) : nullptr, ws);
    (void)cudaGetLastError();  // an algorithm that failed its trial must not be reported by the next launch
                               // check
    ok = st == CUDNN_STATUS_SUCCESS && pick(perf, n, ws, p);
  }
  if (!ok) {
    NABLA_CUDNN_CHECK(
        cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, p.conv, p.y, num_results, &n, perf));
    ok = pick(perf, n, SIZE_MAX, p);
  }
  NABLA_CHECK(ok, "conv2d: cuDNN has no forward algorithm for input ", x.shape(), " (strides ", x.strides(),
              "), weight ", w.shape(), ", dtype ", x.dtype());
  adopt_math(p, x.dtype());
  size_t need = 0;
  NABLA_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(
      h, p.x, p.w, p.conv, p.y, static_cast<cudnnConvolutionFwdAlgo_t>(p.algo), &need));
  p.ws = std::max(p.ws, need);
}

void choose_backward_data(Plan& p, const Tensor& w, const Tensor& gy, Tensor& dx) {
  cudnnHandle_t h = cudnn_handle();
  constexpr int kAlgos = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  int max_results = 0;  // results may list an algorithm once per math type
  NABLA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_results));
  const int num_results = std::max(max_results, kAlgos);
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf_v(num_results);
  cudnnConvolutionBwdDataAlgoPerf_t* perf = perf_v.data();
  int n = 0;
  bool ok = false;
  if (use_find()) {
    const size_t ws = find_workspace(kAlgos, [&](int a, size_t* s) {
      return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w, p.y, p.conv, p.x,
                                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(a), s);
    });
    // A failed benchmark falls back to the heuristics below.
    const cudnnStatus_t st = cudnnFindConvolutionBackwardDataAlgorithmEx(
        h, p.w, w.data_ptr(), p.y, gy.data_ptr(), p.conv, p.x, dx.data_ptr(), num_results, &n, perf,
        ws ? workspace(ws) : nullptr, ws);
    (void)cudaGetLastError();  // an algorithm that failed its trial must not be reported by the next launch
                               // check
    ok = st == CUDNN_STATUS_SUCCESS && pick(perf, n, ws, p);
  }
  if (!ok) {
    NABLA_CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, p.conv, p.x, num_results, &n, perf));
    ok = pick(perf, n, SIZE_MAX, p);
  }
  NABLA_CHECK(ok, "conv2d: cuDNN has no backward-data algorithm for input gradient ", dx.shape(), ", weight ",
              w.shape(), ", dtype ", w.dtype());
  adopt_math(p, w.dtype());
  size_t need = 0;
  NABLA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
      h, p.w, p.y, p.conv, p.x, static_cast<cudnnConvolutionBwdDataAlgo_t>(p.algo), &need));
  p.ws = std::max(p.ws, need);
}

void choose_backward_filter(Plan& p, const Tensor& x, const Tensor& gy, Tensor& dw) {
  cudnnHandle_t h = cudnn_handle();
  constexpr int kAlgos = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  int max_results = 0;  // results may list an algorithm once per math type
  NABLA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_results));
  const int num_results = std::max(max_results, kAlgos);
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf_v(num_results);
  cudnnConvolutionBwdFilterAlgoPerf_t* perf = perf_v.data();
  int n = 0;
  bool ok = false;
  if (use_find()) {
    const size_t ws = find_workspace(kAlgos, [&](int a, size_t* s) {
      return cudnnGetConvolutionBackwardFilterWorkspaceSize(
          h, p.x, p.y, p.conv, p.w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(a), s);
    });
    // A failed benchmark falls back to the heuristics below.
    const cudnnStatus_t st = cudnnFindConvolutionBackwardFilterAlgorithmEx(
        h, p.x, x.data_ptr(), p.y, gy.data_ptr(), p.conv, p.w, dw.data_ptr(), num_results, &n, perf,
        ws ? workspace(ws) : nullptr, ws);
    (void)cudaGetLastError();  // an algorithm that failed its trial must not be reported by the next launch
                               // check
    ok = st == CUDNN_STATUS_SUCCESS && pick(perf, n, ws, p);
  }
  if (!ok) {
    NABLA_CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, p.conv, p.w, num_results, &n, perf));
    ok = pick(perf, n, SIZE_MAX, p);
  }
  NABLA_CHECK(ok, "conv2d: cuDNN has no backward-filter algorithm for input ", x.shape(), " (strides ",
              x.strides(), "), weight gradient ", dw.shape(), ", dtype ", x.dtype());
  adopt_math(p, x.dtype());
  size_t need = 0;
  NABLA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
      h, p.x, p.y, p.conv, p.w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(p.algo), &need));
  p.ws = std::max(p.ws, need);
}

int64_t aligned16(const Tensor& t) { return (reinterpret_cast<uintptr_t>(t.data_ptr()) % 16) == 0 ? 1 : 0; }

// The cached plan for this call; on a miss, builds the descriptors and lets `choose` pick the algorithm.
// xt / yt are the tensors in the x and y roles (x or dx, y or dy); the pointers' alignment is part of the
// key because some algorithms need 16-byte aligned data.
template <class Choose>
Plan& get_plan(Dir dir, const Conv2dGeometry& g, DType dtype, const Tensor& xt, const Tensor& wt,
               const Tensor& yt, Choose&& choose) {
  const std::array<int64_t, 4> xs = strides4(xt), ys = strides4(yt);
  PlanKey key{static_cast<int64_t>(dir),
              current_device(),
              static_cast<int64_t>(dtype),
              static_cast<int64_t>(math_type(dtype)),
              g.n,
              g.c_in,
              g.h,
              g.w,
              g.c_out,
              g.kh,
              g.kw,
              g.oh,
              g.ow,
              g.stride_h,
              g.stride_w,
              g.pad_h,
              g.pad_w,
              g.dil_h,
              g.dil_w,
              g.groups,
              xs[0],
              xs[1],
              xs[2],
              xs[3],
              ys[0],
              ys[1],
              ys[2],
              ys[3],
              aligned16(xt) | (aligned16(wt) << 1) | (aligned16(yt) << 2),
              g.channels_last ? 1 : 0};
  PlanCache& cache = plan_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  auto it = cache.plans.find(key);
  if (it != cache.plans.end()) return *it->second;
  std::unique_ptr<Plan> p = make_descriptors(g, dtype, xs, ys);
  CacheFile* file = cache_file();
  if (file) {
    auto e = file->entries.find(key);
    if (e != file->entries.end()) p->preferred_engine = e->second;
  }
  choose(*p);
  // A newly timed graph-API choice goes into the file (one rewrite per new shape: the first steps only).
  // Untimed ones (NABLA_CUDNN_FIND=0, or a shape first met inside a graph capture) are not recorded.
  if (file && use_find() && p->graph && !cudnn_graph::from_preferred_engine(*p->graph) &&
      cudnn_graph::engine_of(*p->graph) >= 0) {
    file->entries[key] = cudnn_graph::engine_of(*p->graph);
    conv_cache::save(file->path, file->context, file->entries);
  }
  if (log_choices() || report_choices()) {
    static const char* dirs[] = {"fwd", "bwd_data", "bwd_filter"};
    char head[256];
    std::snprintf(head, sizeof head,
                  "%s %s n%lld c%lld %lldx%lld -> k%lld %lldx%lld kernel %lldx%lld stride %lld groups %lld%s",
                  dirs[static_cast<int>(dir)], dtype_name(dtype), static_cast<long long>(g.n),
                  static_cast<long long>(g.c_in), static_cast<long long>(g.h), static_cast<long long>(g.w),
                  static_cast<long long>(g.c_out), static_cast<long long>(g.oh), static_cast<long long>(g.ow),
                  static_cast<long long>(g.kh), static_cast<long long>(g.kw),
                  static_cast<long long>(g.stride_h), static_cast<long long>(g.groups),
                  g.channels_last ? " NHWC" : "");
    p->report =
        str_cat(head, ": ",
                p->graph ? p->graph_log
                         : str_cat(p->graph_log.empty() ? "" : p->graph_log + "; ", "legacy algo ", p->algo,
                                   ", math ", static_cast<int>(p->math), ", workspace ", p->ws),
                capturing_cuda_graph() ? " (chosen during a CUDA graph capture)" : "");
    if (log_choices()) std::fprintf(stderr, "NABLA_CUDNN_LOG: %s\n", p->report.c_str());
    if (report_choices()) register_report();
  }
  Plan& ref = *p;
  cache.plans.emplace(key, std::move(p));
  return ref;
}

// Chooses the plan's way to run: the graph API's plan when cudnn_graph::enabled() and an engine is usable,
// else `legacy` (the legacy API's algorithm choice). xt / wt / yt are the x, w and y roles (as get_plan's).
template <class Legacy>
void choose_plan(Plan& pl, Dir dir, const Conv2dGeometry& g, DType dt, const Tensor& xt, const Tensor& wt,
                 const Tensor& yt, Legacy&& legacy) {
  if (cudnn_graph::enabled()) {
    cudnn_graph::ConvDesc d;
    d.dir = dir == Dir::fwd        ? cudnn_graph::ConvDir::fwd
            : dir == Dir::bwd_data ? cudnn_graph::ConvDir::bwd_data
                                   : cudnn_graph::ConvDir::bwd_filter;
    d.dtype = dt;
    d.data_type = cudnn_type(dt);
    d.x_dims = {g.n, g.c_in, g.h, g.w};
    d.x_strides = strides4(xt);
    d.w_dims = {g.c_out, g.c_in / g.groups, g.kh, g.kw};
    const Shape ws{g.c_out, g.c_in / g.groups, g.kh, g.kw};
    const Strides wst = g.channels_last ? channels_last_strides(ws) : contiguous_strides(ws);
    d.w_strides = {wst[0], wst[1], wst[2], wst[3]};
    d.y_dims = {g.n, g.c_out, g.oh, g.ow};
    d.y_strides = strides4(yt);
    d.pad = {g.pad_h, g.pad_w};
    d.stride = {g.stride_h, g.stride_w};
    d.dilation = {g.dil_h, g.dil_w};
    const int64_t item = static_cast<int64_t>(itemsize(dt));
    d.align_x = aligned16(xt) ? 16 : item;
    d.align_w = aligned16(wt) ? 16 : item;
    d.align_y = aligned16(yt) ? 16 : item;
    pl.graph = cudnn_graph::make_conv_plan(
        d, xt.data_ptr(), wt.data_ptr(), yt.data_ptr(), deterministic_only(), tf32_enabled(), use_find(),
        log_choices() || report_choices() ? &pl.graph_log : nullptr, pl.preferred_engine);
    if (pl.graph) return;
  }
  legacy();
}

// Runs a plan's graph API plan on the x, w and y roles' buffers.
void run_graph(const Plan& p, const Tensor& xt, const Tensor& wt, const Tensor& yt) {
  const int64_t ws = cudnn_graph::workspace_size(*p.graph);
  cudnn_graph::execute(*p.graph, xt.data_ptr(), wt.data_ptr(), yt.data_ptr(),
                       ws ? workspace(static_cast<size_t>(ws)) : nullptr);
  NABLA_CUDA_LAUNCH_CHECK();
}

// ---- bias kernels ----

// y[n, k, e] += b[k] over a contiguous [N, K, OH*OW] output (NHWC: over [N*OH*OW, K], k = i % K).
template <class T, class I, bool NHWC>
__global__ void add_bias_kernel(T* __restrict__ y, const T* __restrict__ b, I total, I ohw, I k_count) {
  for (I i = blockIdx.x * static_cast<I>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<I>(blockDim.x) * gridDim.x) {
    const I k = NHWC ? i % k_count : (i / ohw) % k_count;
    y[i] = store<T>(load(y[i]) + load(b[k]));
  }
}

// NHWC: dy is [M, K] row-major (M = N * OH * OW). partial[k * S + s] = sum of dy[m, k] over the s-th of S
// row slices. grid (S, ceil(K / 32)), block (32, 8).
template <class T, class I>
__global__ void bias_grad_partial_nhwc(const T* __restrict__ gy, double* __restrict__ partial, I m_count,
                                       I k_count, I chunk) {
  __shared__ double sums[8][33];
  const I s = blockIdx.x, k = static_cast<I>(blockIdx.y) * 32 + threadIdx.x;
  const I r0 = s * chunk, r1 = chunk > m_count - r0 ? m_count : r0 + chunk;  // no overflow
  double acc = 0;
  if (k < k_count)
    for (I r = r0 + threadIdx.y; r < r1; r += 8) acc += static_cast<double>(load(gy[r * k_count + k]));
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || k >= k_count) return;
  double total = sums[0][threadIdx.x];
  for (int q = 1; q < 8; ++q) total += sums[q][threadIdx.x];
  partial[static_cast<int64_t>(k) * gridDim.x + s] = total;
}

// partial[k * S + s] = sum of dy[n, k, e] over the s-th of S slices of the per-channel range t = n * ohw + e.
// grid (S, K), 256 threads.
template <class T, class I>
__global__ void bias_grad_partial(const T* __restrict__ gy, double* __restrict__ partial, I n, I k_count,
                                  I ohw, I chunk) {
  __shared__ double warp_sums[8];
  const I k = blockIdx.y, s = blockIdx.x, per_channel = n * ohw;
  const I t0 = s * chunk, t1 = chunk > per_channel - t0 ? per_channel : t0 + chunk;  // no overflow
  double acc = 0;
  for (I t = t0 + threadIdx.x; t < t1; t += blockDim.x) {
    const I nn = t / ohw, e = t - nn * ohw;
    acc += static_cast<double>(load(gy[(nn * k_count + k) * ohw + e]));
  }
  for (int d = 16; d > 0; d /= 2) acc += __shfl_down_sync(0xffffffffu, acc, d);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += warp_sums[w];
    partial[static_cast<int64_t>(k) * gridDim.x + s] = total;
  }
}

// db[k] = sum over s of partial[k * S + s], in order.
template <class T>
__global__ void bias_grad_finish(const double* __restrict__ partial, T* __restrict__ db, int64_t k_count,
                                 int64_t slices) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= k_count) return;
  double s = 0;
  for (int64_t i = 0; i < slices; ++i) s += partial[k * slices + i];
  db[k] = store<T>(s);
}

template <class T, class I>
void add_bias_typed(Tensor& y, const Tensor& b, const Conv2dGeometry& g) {
  const I total = static_cast<I>(y.numel());
  if (g.channels_last)
    add_bias_kernel<T, I, true><<<grid_for(total), kBlock, 0, current_stream()>>>(
        ptr<T>(y), ptr<T>(b), total, static_cast<I>(g.oh * g.ow), static_cast<I>(g.c_out));
  else
    add_bias_kernel<T, I, false><<<grid_for(total), kBlock, 0, current_stream()>>>(
        ptr<T>(y), ptr<T>(b), total, static_cast<I>(g.oh * g.ow), static_cast<I>(g.c_out));
  NABLA_CUDA_LAUNCH_CHECK();
}

template <class T, class I>
void bias_grad_nhwc_typed(const Tensor& gy, Tensor& db, const Conv2dGeometry& g) {
  const int64_t rows = g.n * g.oh * g.ow, col_tiles = (g.c_out + 31) / 32;
  // About 1024 blocks, but slices of at least 256 rows (8 per thread-row).
  const int64_t want = std::max<int64_t>(1, 1024 / col_tiles);
  const int64_t slices = std::clamp<int64_t>((rows + 255) / 256, 1, std::min<int64_t>(want, 65535));
  const int64_t chunk = (rows + slices - 1) / slices;
  NABLA_CHECK(col_tiles <= 65535, "conv2d: bias gradient of more than ", 65535 * 32, " channels (", g.c_out,
              ") on cuda");
  Tensor partial = Tensor::empty({g.c_out * slices}, DType::f64, gy.device());
  bias_grad_partial_nhwc<T, I><<<dim3(static_cast<unsigned>(slices), static_cast<unsigned>(col_tiles)),
                                 dim3(32, 8), 0, current_stream()>>>(
      ptr<T>(gy), ptr<double>(partial), static_cast<I>(rows), static_cast<I>(g.c_out), static_cast<I>(chunk));
  NABLA_CUDA_LAUNCH_CHECK();
  bias_grad_finish<T><<<static_cast<unsigned>((g.c_out + 127) / 128), 128, 0, current_stream()>>>(
      ptr<double>(partial), ptr<T>(db), g.c_out, slices);
  NABLA_CUDA_LAUNCH_CHECK();
}

template <class T, class I>
void bias_grad_typed(const Tensor& gy, Tensor& db, const Conv2dGeometry& g) {
  const int64_t ohw = g.oh * g.ow, per_channel = g.n * ohw;
  // Enough blocks to fill the GPU (~1024), but slices of at least 4096 values.
  const int64_t want = std::max<int64_t>(1, 1024 / std::max<int64_t>(g.c_out, 1));
  const int64_t slices = std::clamp<int64_t>((per_channel + 4095) / 4096, 1, want);
  const int64_t chunk = (per_channel + slices - 1) / slices;
  NABLA_CHECK(g.c_out <= 65535, "conv2d: bias gradient of more than 65535 channels (", g.c_out, ") on cuda");
  Tensor partial = Tensor::empty({g.c_out * slices}, DType::f64, gy.device());
  dim3 grid(static_cast<unsigned>(slices), static_cast<unsigned>(g.c_out));
  bias_grad_partial<T, I><<<grid, 256, 0, current_stream()>>>(ptr<T>(gy), ptr<double>(partial),
                                                              static_cast<I>(g.n), static_cast<I>(g.c_out),
                                                              static_cast<I>(ohw), static_cast<I>(chunk));
  NABLA_CUDA_LAUNCH_CHECK();
  bias_grad_finish<T><<<static_cast<unsigned>((g.c_out + 127) / 128), 128, 0, current_stream()>>>(
      ptr<double>(partial), ptr<T>(db), g.c_out, slices);
  NABLA_CUDA_LAUNCH_CHECK();
}

// 32-bit indexing when no index (including a grid-stride loop's last step past the end) can overflow.
bool fits_i32(int64_t n) { return n + int64_t(kBlock) * 65535 * 8 < INT32_MAX; }

void add_bias(Tensor& y, const Tensor& b, const Conv2dGeometry& g) {
  visit_cuda_float(y.dtype(), "conv2d", [&](auto zero) {
    using T = decltype(zero);
    if (fits_i32(y.numel()))
      add_bias_typed<T, int32_t>(y, b, g);
    else
      add_bias_typed<T, int64_t>(y, b, g);
  });
}

void bias_grad(const Tensor& gy, Tensor& db, const Conv2dGeometry& g) {
  if (gy.numel() == 0) {
    db.fill_(0.0);
    return;
  }
  visit_cuda_float(gy.dtype(), "conv2d", [&](auto zero) {
    using T = decltype(zero);
    if (g.channels_last) {
      if (fits_i32(gy.numel()))
        bias_grad_nhwc_typed<T, int32_t>(gy, db, g);
      else
        bias_grad_nhwc_typed<T, int64_t>(gy, db, g);
    } else if (fits_i32(gy.numel())) {
      bias_grad_typed<T, int32_t>(gy, db, g);
    } else {
      bias_grad_typed<T, int64_t>(gy, db, g);
    }
  });
}

// ---- pointwise (1x1) convolutions in channels-last as GEMMs ------------------------------------------
// A 1x1 convolution with stride 1, no padding and one group, on channels-last tensors, is a matrix product
// over the P = N*H*W pixels: x is a row-major [P, C] matrix, y [P, K], w (for a 1x1 filter its NCHW and
// NHWC layouts are the same memory) [K, C]:
//   y  = x · wᵀ        dx = gy · w        dw = gyᵀ · x
// cuBLAS runs these at the memory-bound rate of the three tensors; cuDNN's legacy API (the one this backend
// uses, cuDNN <= 9.14) picked algorithms for the bf16 NHWC case of ResNet-50's bottlenecks that took 1.8x
// PyTorch's time (bench_gpu conv_bf16_cl_fwdbwd_256x56_1x1), so these shapes go to cuBLAS.
// NABLA_CONV_GEMM=0 sends them back to cuDNN.
bool pointwise_gemm(const Conv2dGeometry& g) {
  static const bool enabled = [] {
    const char* v = std::getenv("NABLA_CONV_GEMM");
    return !(v && std::string(v) == "0");
  }();
  return enabled && g.channels_last && g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 &&
         g.pad_h == 0 && g.pad_w == 0 && g.dil_h == 1 && g.dil_w == 1 && g.groups == 1 && g.oh == g.h &&
         g.ow == g.w && g.n * g.h * g.w <= INT32_MAX && g.c_in <= INT32_MAX && g.c_out <= INT32_MAX;
}

void gemm(const Tensor& a, const Tensor& b, Tensor& c, int64_t n, int64_t m, int64_t k, bool ta, bool tb) {
  ops::GemmArgs args{1, n, m, k, ta, tb, 0, 0, 0};
  ops::gemm_kernel.get(c.device(), "conv2d (1x1 as GEMM)")(args, a, b, c);
}

// ---- slots ----

void conv2d_forward_cuda(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                         Tensor& y) {
  DeviceGuard guard(x.device().index);
  if (y.numel() == 0) return;
  if (x.numel() == 0 || w.numel() == 0) {  // nothing to convolve (no input channels, empty planes): y = b
    y.fill_(0.0);
  } else if (pointwise_gemm(g)) {
    gemm(x, w, y, g.n * g.h * g.w, g.c_out, g.c_in, false, true);
  } else {
    const DType dt = x.dtype();
    Plan& p = get_plan(Dir::fwd, g, dt, x, w, y, [&](Plan& pl) {
      choose_plan(pl, Dir::fwd, g, dt, x, w, y, [&] { choose_forward(pl, x, w, y); });
    });
    if (p.graph) {
      run_graph(p, x, w, y);
    } else {
      NABLA_CUDNN_CHECK(cudnnConvolutionForward(
          cudnn_handle(), kScaling.one(dt), p.x, x.data_ptr(), p.w, w.data_ptr(), p.conv,
          static_cast<cudnnConvolutionFwdAlgo_t>(p.algo), p.ws ? workspace(p.ws) : nullptr, p.ws,
          kScaling.zero(dt), p.y, y.data_ptr()));
      NABLA_CUDA_LAUNCH_CHECK();
    }
  }
  if (bias.defined()) {
    NABLA_CHECK(g.channels_last ? y.is_contiguous(MemoryFormat::ChannelsLast) : y.is_contiguous(),
                "conv2d: the cuda bias add needs a ", g.channels_last ? "channels-last" : "contiguous",
                " output, got strides ", y.strides());
    add_bias(y, bias, g);
  }
}

void conv2d_backward_cuda(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& gy,
                          Tensor& dx, Tensor& dw, Tensor& db) {
  DeviceGuard guard(gy.device().index);
  const DType dt = gy.dtype();
  if (db.defined()) {
    NABLA_CHECK(g.channels_last ? gy.is_contiguous(MemoryFormat::ChannelsLast) : gy.is_contiguous(),
                "conv2d: the cuda bias gradient needs a ", g.channels_last ? "channels-last" : "contiguous",
                " output gradient, got strides ", gy.strides());
    bias_grad(gy, db, g);
  }
  const bool empty = gy.numel() == 0 || g.c_in == 0 || g.h * g.w == 0;
  if (dx.defined() && dx.numel() > 0) {
    if (empty) {
      dx.fill_(0.0);
    } else if (pointwise_gemm(g)) {
      gemm(gy, w, dx, g.n * g.h * g.w, g.c_in, g.c_out, false, false);
    } else {
      Plan& p = get_plan(Dir::bwd_data, g, dt, dx, w, gy, [&](Plan& pl) {
        choose_plan(pl, Dir::bwd_data, g, dt, dx, w, gy, [&] { choose_backward_data(pl, w, gy, dx); });
      });
      if (p.graph) {
        run_graph(p, dx, w, gy);
      } else {
        NABLA_CUDNN_CHECK(cudnnConvolutionBackwardData(
            cudnn_handle(), kScaling.one(dt), p.w, w.data_ptr(), p.y, gy.data_ptr(), p.conv,
            static_cast<cudnnConvolutionBwdDataAlgo_t>(p.algo), p.ws ? workspace(p.ws) : nullptr, p.ws,
            kScaling.zero(dt), p.x, dx.data_ptr()));
        NABLA_CUDA_LAUNCH_CHECK();
      }
    }
  }
  if (dw.defined() && dw.numel() > 0) {
    if (empty) {
      dw.fill_(0.0);
    } else if (pointwise_gemm(g)) {
      gemm(gy, x, dw, g.c_out, g.c_in, g.n * g.h * g.w, true, false);
    } else {
      Plan& p = get_plan(Dir::bwd_filter, g, dt, x, dw, gy, [&](Plan& pl) {
        choose_plan(pl, Dir::bwd_filter, g, dt, x, dw, gy, [&] { choose_backward_filter(pl, x, gy, dw); });
      });
      if (p.graph) {
        run_graph(p, x, dw, gy);
      } else {
        NABLA_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
            cudnn_handle(), kScaling.one(dt), p.x, x.data_ptr(), p.y, gy.data_ptr(), p.conv,
            static_cast<cudnnConvolutionBwdFilterAlgo_t>(p.algo), p.ws ? workspace(p.ws) : nullptr, p.ws,
            kScaling.zero(dt), p.w, dw.data_ptr()));
        NABLA_CUDA_LAUNCH_CHECK();
      }
    }
  }
}

}  // namespace

NABLA_REGISTER_KERNEL(conv2d_forward_kernel, cuda, conv2d_forward_cuda);
NABLA_REGISTER_KERNEL(conv2d_backward_kernel, cuda, conv2d_backward_cuda);

}  // namespace nabla::cuda
