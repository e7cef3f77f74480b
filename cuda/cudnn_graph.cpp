#include "cuda/cudnn_graph.h"

#include <cudnn.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "cuda/runtime.h"
#include "engine/error.h"

// CUDNN_ATTR_OPERATIONGRAPH_HANDLE and CUDNN_ATTR_EXECUTION_PLAN_HANDLE are marked deprecated in the newest
// headers, but the cuDNN 9.14 that the GPU machine runs needs them.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace nabla::cuda::cudnn_graph {
namespace {

// An integer from the environment in [lo, hi], else (unset, not a number, out of range) the default.
int env_int(const char* name, int lo, int hi, int fallback) {
  const char* v = std::getenv(name);
  const int k = v ? std::atoi(v) : 0;
  return k >= lo && k <= hi ? k : fallback;
}
// How many filtered candidates are timed: NABLA_CONV_CANDIDATES (1..64, default 6).
int timed_candidates() {
  static const int n = env_int("NABLA_CONV_CANDIDATES", 1, 64, 6);
  return n;
}
// Timed runs per candidate (after one warm-up run): NABLA_CONV_TIMING_RUNS (1..100, default 3).
int timing_runs() {
  static const int n = env_int("NABLA_CONV_TIMING_RUNS", 1, 100, 3);
  return n;
}
// The heuristics modes asked, in order: NABLA_CONV_HEUR, a comma list of a, b, instant and fallback
// (default "a,fallback"; an unknown word is ignored, an empty list means the default).
const std::vector<cudnnBackendHeurMode_t>& heur_modes() {
  static const std::vector<cudnnBackendHeurMode_t> modes = [] {
    std::vector<cudnnBackendHeurMode_t> m;
    const char* v = std::getenv("NABLA_CONV_HEUR");
    std::string s = v ? v : "";
    size_t at = 0;
    while (at <= s.size() && !s.empty()) {
      const size_t end = std::min(s.find(',', at), s.size());
      const std::string w = s.substr(at, end - at);
      if (w == "a") m.push_back(CUDNN_HEUR_MODE_A);
      if (w == "b") m.push_back(CUDNN_HEUR_MODE_B);
      if (w == "instant") m.push_back(CUDNN_HEUR_MODE_INSTANT);
      if (w == "fallback") m.push_back(CUDNN_HEUR_MODE_FALLBACK);
      at = end + 1;
    }
    if (m.empty()) m = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
    return m;
  }();
  return modes;
}
constexpr int64_t kMaxWorkspace = int64_t(1) << 30;
constexpr int64_t kUidX = 1, kUidW = 2, kUidY = 3;

// An owned backend descriptor.
class Desc {
 public:
  explicit Desc(cudnnBackendDescriptorType_t type) {
    NABLA_CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d_));
  }
  ~Desc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }
  cudnnBackendDescriptor_t* ptr() { return &d_; }

  template <class T>
  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
           const T* values) {
    NABLA_CUDNN_CHECK(cudnnBackendSetAttribute(d_, name, type, count, values));
  }
  void finalize() { NABLA_CUDNN_CHECK(cudnnBackendFinalize(d_)); }
  cudnnStatus_t try_finalize() { return cudnnBackendFinalize(d_); }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

std::unique_ptr<Desc> make_tensor(int64_t uid, cudnnDataType_t dt, const std::array<int64_t, 4>& dims,
                                  const std::array<int64_t, 4>& strides, int64_t alignment,
                                  bool is_virtual = false) {
  auto t = std::make_unique<Desc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  t->set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
  t->set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data());
  t->set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data());
  t->set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  t->set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
  if (is_virtual) {
    const bool v = true;
    t->set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v);
  }
  t->finalize();
  return t;
}

template <class Note>
bool has_note(const std::vector<Note>& notes, Note n) {
  return std::find(notes.begin(), notes.end(), n) != notes.end();
}

}  // namespace

struct ConvPlan {
  std::unique_ptr<Desc> x, w, y, conv, op, graph, cfg, plan;
  int64_t workspace = 0;
  int64_t engine = -1;
  bool preferred = false;
};

bool enabled() {
  static const bool on = [] {
    const char* v = std::getenv("NABLA_CUDNN_API");
    return !(v && std::string(v) == "legacy");
  }();
  return on;
}

int64_t workspace_size(const ConvPlan& p) { return p.workspace; }
int64_t engine_of(const ConvPlan& p) { return p.engine; }
bool from_preferred_engine(const ConvPlan& p) { return p.preferred; }

void execute(const ConvPlan& p, void* x, void* w, void* y, void* workspace) {
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  const int64_t uids[3] = {kUidX, kUidW, kUidY};
  void* ptrs[3] = {x, w, y};
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids);
  pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, ptrs);
  pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  pack.finalize();
  NABLA_CUDNN_CHECK(cudnnBackendExecute(cudnn_handle(), p.plan->get(), pack.get()));
}

std::shared_ptr<ConvPlan> make_conv_plan(const ConvDesc& d, void* x, void* w, void* y, bool deterministic,
                                         bool allow_tf32, bool time_candidates, std::string* log,
                                         int64_t preferred_engine) {
  cudnnHandle_t handle = cudnn_handle();
  const cudnnDataType_t dt = d.data_type;
  const cudnnDataType_t compute = d.dtype == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  // The op graph, shared by every candidate (each plan below refers to it).
  auto base = std::make_shared<ConvPlan>();
  base->x = make_tensor(kUidX, dt, d.x_dims, d.x_strides, d.align_x);
  base->w = make_tensor(kUidW, dt, d.w_dims, d.w_strides, d.align_w);
  base->y = make_tensor(kUidY, dt, d.y_dims, d.y_strides, d.align_y);
  base->conv = std::make_unique<Desc>(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  {
    const int64_t dims = 2;
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    Desc& c = *base->conv;
    c.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
    c.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
    c.set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims);
    c.set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, d.dilation.data());
    c.set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, d.stride.data());
    c.set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, d.pad.data());
    c.set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, d.pad.data());
    c.finalize();
  }
  // alpha = 1, beta = 0, in double for double data and float otherwise.
  const float f1 = 1.f, f0 = 0.f;
  const double d1 = 1.0, d0 = 0.0;
  const bool dbl = d.dtype == DType::f64;
  const cudnnBackendAttributeType_t st = dbl ? CUDNN_TYPE_DOUBLE : CUDNN_TYPE_FLOAT;
  const void* one = dbl ? static_cast<const void*>(&d1) : &f1;
  const void* zero = dbl ? static_cast<const void*>(&d0) : &f0;
  cudnnBackendDescriptor_t xd = base->x->get(), wd = base->w->get(), yd = base->y->get(),
                           cd = base->conv->get();
  switch (d.dir) {
    case ConvDir::fwd:
      base->op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &xd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &wd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &yd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &cd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, st, 1, one);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, st, 1, zero);
      break;
    case ConvDir::bwd_data:
      base->op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &xd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &wd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &yd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &cd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, st, 1, one);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA, st, 1, zero);
      break;
    case ConvDir::bwd_filter:
      base->op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &xd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &wd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &yd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &cd);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, st, 1, one);
      base->op->set(CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA, st, 1, zero);
      break;
  }
  if (base->op->try_finalize() != CUDNN_STATUS_SUCCESS) return nullptr;
  base->graph = std::make_unique<Desc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  {
    cudnnBackendDescriptor_t od = base->op->get();
    base->graph->set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    base->graph->set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &od);
    if (base->graph->try_finalize() != CUDNN_STATUS_SUCCESS) return nullptr;
  }

  // Candidates: the heuristics' ranked engine configurations (mode A, then the fallback list), filtered.
  struct Candidate {
    std::unique_ptr<Desc> cfg, plan;
    int64_t workspace = 0, engine = -1;
    float ms = std::numeric_limits<float>::infinity();
  };
  std::vector<Candidate> candidates;
  int considered = 0;
  // A preferred engine may be any of the timed candidates, so they are all enumerated then.
  const int wanted = time_candidates || preferred_engine >= 0 ? timed_candidates() : 1;
  for (cudnnBackendHeurMode_t mode : heur_modes()) {
    if (static_cast<int>(candidates.size()) >= wanted) break;
    Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    cudnnBackendDescriptor_t gd = base->graph->get();
    heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &gd);
    heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    if (heur.try_finalize() != CUDNN_STATUS_SUCCESS) continue;
    int64_t count = 0;
    if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                 &count, nullptr) != CUDNN_STATUS_SUCCESS ||
        count <= 0)
      continue;
    std::vector<std::unique_ptr<Desc>> cfgs;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < count; ++i) {
      cfgs.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
      raw.push_back(cfgs.back()->get());
    }
    int64_t got = 0;
    if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                 count, &got, raw.data()) != CUDNN_STATUS_SUCCESS)
      continue;
    for (int64_t i = 0; i < got; ++i) {
      if (static_cast<int>(candidates.size()) >= wanted) break;
      ++considered;
      Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
      int64_t n = 0;
      cudnnBackendDescriptor_t ed = engine.get();
      if (cudnnBackendGetAttribute(raw[i], CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                                   &ed) != CUDNN_STATUS_SUCCESS)
        continue;
      std::vector<cudnnBackendNumericalNote_t> notes(CUDNN_NUMERICAL_NOTE_TYPE_COUNT);
      int64_t nn = 0;
      if (cudnnBackendGetAttribute(ed, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                   CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &nn,
                                   notes.data()) != CUDNN_STATUS_SUCCESS)
        nn = 0;
      notes.resize(static_cast<size_t>(nn));
      std::vector<cudnnBackendBehaviorNote_t> behavior(CUDNN_BEHAVIOR_NOTE_TYPE_COUNT);
      int64_t nb = 0;
      if (cudnnBackendGetAttribute(ed, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                                   CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &nb,
                                   behavior.data()) != CUDNN_STATUS_SUCCESS)
        nb = 0;
      behavior.resize(static_cast<size_t>(nb));
      if (has_note(behavior, CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION)) continue;
      if (has_note(notes, CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS)) continue;
      if (deterministic && has_note(notes, CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC)) continue;
      if (d.dtype == DType::f32 && !allow_tf32 && has_note(notes, CUDNN_NUMERICAL_NOTE_TENSOR_CORE)) continue;
      Candidate c;
      c.plan = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      c.plan->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
      c.plan->set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw[i]);
      if (c.plan->try_finalize() != CUDNN_STATUS_SUCCESS) continue;
      if (cudnnBackendGetAttribute(c.plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                                   1, &n, &c.workspace) != CUDNN_STATUS_SUCCESS ||
          c.workspace < 0 || c.workspace > kMaxWorkspace)
        continue;
      if (cudnnBackendGetAttribute(ed, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &c.engine) !=
          CUDNN_STATUS_SUCCESS)
        c.engine = -1;
      c.cfg = std::move(cfgs[i]);  // the plan refers to its configuration: keep it alive
      candidates.push_back(std::move(c));
    }
  }
  (void)cudaGetLastError();
  if (candidates.empty()) {
    if (log) *log = str_cat("no usable engine among ", considered, " (legacy API)");
    return nullptr;
  }

  size_t best = 0;
  bool preferred = false;
  for (size_t i = 0; i < candidates.size() && preferred_engine >= 0 && !preferred; ++i)
    if (candidates[i].engine == preferred_engine) {
      best = i;
      preferred = true;
    }
  if (!preferred && time_candidates && candidates.size() > 1) {
    int64_t most = 0;
    for (const Candidate& c : candidates) most = std::max(most, c.workspace);
    void* ws = most ? workspace(static_cast<size_t>(most)) : nullptr;
    const cudaStream_t s = current_stream();
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    NABLA_CUDA_CHECK(cudaEventCreate(&e0));
    NABLA_CUDA_CHECK(cudaEventCreate(&e1));
    for (Candidate& c : candidates) {
      ConvPlan probe;
      probe.plan = std::move(c.plan);
      bool ok = true;
      try {
        execute(probe, x, w, y, ws);  // warm-up (and a check that it runs)
        NABLA_CUDA_CHECK(cudaEventRecord(e0, s));
        const int runs = timing_runs();
        for (int r = 0; r < runs; ++r) execute(probe, x, w, y, ws);
        NABLA_CUDA_CHECK(cudaEventRecord(e1, s));
        NABLA_CUDA_CHECK(cudaEventSynchronize(e1));
        float ms = 0;
        NABLA_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        c.ms = ms / runs;
      } catch (const Error&) {
        ok = false;
      }
      (void)cudaGetLastError();
      if (!ok) c.ms = std::numeric_limits<float>::infinity();
      c.plan = std::move(probe.plan);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    for (size_t i = 1; i < candidates.size(); ++i)
      if (candidates[i].ms < candidates[best].ms) best = i;
    if (!(candidates[best].ms < std::numeric_limits<float>::infinity())) {
      if (log) *log = str_cat("none of ", candidates.size(), " candidates ran (legacy API)");
      return nullptr;
    }
  }
  Candidate& c = candidates[best];
  if (log) {
    *log = str_cat("graph API engine ", c.engine, " (candidate ", best + 1, " of ", candidates.size(),
                   " in heuristics order");
    if (preferred) {
      *log += ", taken from the NABLA_CONV_CACHE file, not timed";
    } else if (time_candidates && candidates.size() > 1) {
      *log += ", ms";
      for (const Candidate& k : candidates) *log += str_cat(" ", k.ms);
    }
    *log += str_cat("), workspace ", c.workspace);
  }
  base->cfg = std::move(c.cfg);
  base->plan = std::move(c.plan);
  base->workspace = c.workspace;
  base->engine = c.engine;
  base->preferred = preferred;
  return base;
}

// ---- a forward convolution with a scale-bias-ReLU prologue ----

namespace {
constexpr int64_t kUidScale = 4, kUidBias = 5, kUidT1 = 101, kUidT2 = 102, kUidT3 = 103;
}  // namespace

struct ProloguePlan {
  std::unique_ptr<Desc> x, s, b, t1, t2, t3, w, y;      // tensors (t1..t3 virtual)
  std::unique_ptr<Desc> pw_mul, pw_add, pw_relu, conv;  // pointwise and convolution descriptors
  std::unique_ptr<Desc> op_mul, op_add, op_relu, op_conv, graph, cfg, plan;
  int64_t workspace = 0;
};

int64_t workspace_size(const ProloguePlan& p) { return p.workspace; }

std::shared_ptr<ProloguePlan> make_prologue_conv_plan(const ConvDesc& d, std::string* why) {
  const auto no = [&](const std::string& reason) -> std::shared_ptr<ProloguePlan> {
    if (why) *why = reason;
    (void)cudaGetLastError();
    return nullptr;
  };
  cudnnHandle_t handle = cudnn_handle();
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  auto p = std::make_shared<ProloguePlan>();
  const int64_t c = d.x_dims[1];
  // [1, C, 1, 1] per-channel operands, channels-last strides (any are equal for the size-1 dims).
  const std::array<int64_t, 4> cdims{1, c, 1, 1}, cstrides{c, 1, c, c};
  p->x = make_tensor(kUidX, d.data_type, d.x_dims, d.x_strides, d.align_x);
  p->s = make_tensor(kUidScale, f32, cdims, cstrides, 16);
  p->b = make_tensor(kUidBias, f32, cdims, cstrides, 16);
  p->t1 = make_tensor(kUidT1, f32, d.x_dims, d.x_strides, 16, true);
  p->t2 = make_tensor(kUidT2, f32, d.x_dims, d.x_strides, 16, true);
  p->t3 = make_tensor(kUidT3, f32, d.x_dims, d.x_strides, 16, true);
  p->w = make_tensor(kUidW, d.data_type, d.w_dims, d.w_strides, d.align_w);
  p->y = make_tensor(kUidY, d.data_type, d.y_dims, d.y_strides, d.align_y);

  const auto pointwise = [&](cudnnPointwiseMode_t mode) {
    auto pw = std::make_unique<Desc>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    pw->set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    pw->set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    pw->finalize();
    return pw;
  };
  p->pw_mul = pointwise(CUDNN_POINTWISE_MUL);
  p->pw_add = pointwise(CUDNN_POINTWISE_ADD);
  p->pw_relu = pointwise(CUDNN_POINTWISE_RELU_FWD);
  // out = pw(in, in2) (in2 null for the unary RELU_FWD).
  const auto pointwise_op = [](const Desc& pw, const Desc& in, const Desc* in2, const Desc& out) {
    auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    cudnnBackendDescriptor_t pd = pw.get(), xd = in.get(), yd = out.get();
    op->set(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pd);
    op->set(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &xd);
    if (in2) {
      cudnnBackendDescriptor_t bd = in2->get();
      op->set(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &bd);
    }
    op->set(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &yd);
    return op;
  };
  p->op_mul = pointwise_op(*p->pw_mul, *p->x, p->s.get(), *p->t1);
  p->op_add = pointwise_op(*p->pw_add, *p->t1, p->b.get(), *p->t2);
  p->op_relu = pointwise_op(*p->pw_relu, *p->t2, nullptr, *p->t3);
  for (Desc* op : {p->op_mul.get(), p->op_add.get(), p->op_relu.get()})
    if (op->try_finalize() != CUDNN_STATUS_SUCCESS) return no("a pointwise operation did not finalise");

  p->conv = std::make_unique<Desc>(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  {
    const int64_t dims = 2;
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    Desc& cv = *p->conv;
    cv.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    cv.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
    cv.set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims);
    cv.set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, d.dilation.data());
    cv.set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, d.stride.data());
    cv.set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, d.pad.data());
    cv.set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, d.pad.data());
    if (cv.try_finalize() != CUDNN_STATUS_SUCCESS) return no("the convolution descriptor did not finalise");
  }
  {
    const float one = 1.f, zero = 0.f;
    cudnnBackendDescriptor_t xd = p->t3->get(), wd = p->w->get(), yd = p->y->get(), cd = p->conv->get();
    p->op_conv = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
    Desc& op = *p->op_conv;
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &xd);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &wd);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &yd);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cd);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &one);
    op.set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &zero);
    if (op.try_finalize() != CUDNN_STATUS_SUCCESS) return no("the convolution operation did not finalise");
  }
  p->graph = std::make_unique<Desc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  {
    cudnnBackendDescriptor_t ops[4] = {p->op_mul->get(), p->op_add->get(), p->op_relu->get(),
                                       p->op_conv->get()};
    p->graph->set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    p->graph->set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 4, ops);
    if (p->graph->try_finalize() != CUDNN_STATUS_SUCCESS) return no("the operation graph did not finalise");
  }
  int considered = 0;
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    cudnnBackendDescriptor_t gd = p->graph->get();
    heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &gd);
    heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    if (heur.try_finalize() != CUDNN_STATUS_SUCCESS) continue;
    int64_t count = 0;
    if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                 &count, nullptr) != CUDNN_STATUS_SUCCESS ||
        count <= 0)
      continue;
    std::vector<std::unique_ptr<Desc>> cfgs;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < count; ++i) {
      cfgs.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
      raw.push_back(cfgs.back()->get());
    }
    int64_t got = 0;
    if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                 count, &got, raw.data()) != CUDNN_STATUS_SUCCESS)
      continue;
    for (int64_t i = 0; i < got; ++i) {
      ++considered;
      auto plan = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      plan->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
      plan->set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw[i]);
      if (plan->try_finalize() != CUDNN_STATUS_SUCCESS) continue;
      int64_t n = 0, ws = 0;
      if (cudnnBackendGetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                   &n, &ws) != CUDNN_STATUS_SUCCESS ||
          ws < 0 || ws > kMaxWorkspace)
        continue;
      p->cfg = std::move(cfgs[i]);  // the plan refers to its configuration: keep it alive
      p->plan = std::move(plan);
      p->workspace = ws;
      (void)cudaGetLastError();
      return p;
    }
  }
  return no(str_cat("no engine configuration finalised (", considered, " considered)"));
}

void execute_prologue(const ProloguePlan& p, void* x, void* scale, void* bias, void* w, void* y,
                      void* workspace) {
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  const int64_t uids[5] = {kUidX, kUidW, kUidY, kUidScale, kUidBias};
  void* ptrs[5] = {x, w, y, scale, bias};
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 5, uids);
  pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 5, ptrs);
  pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  pack.finalize();
  NABLA_CUDNN_CHECK(cudnnBackendExecute(cudnn_handle(), p.plan->get(), pack.get()));
}

}  // namespace nabla::cuda::cudnn_graph
