// conv2d through cuDNN's graph (backend) API: one execution plan per convolution shape, built and chosen
// once, then run with cudnnBackendExecute. Internal to cuda/conv.cu, which falls back to the legacy API
// (cudnnConvolutionForward and friends) for a shape whose graph has no usable engine.
//
// Why: cuDNN 9's legacy calls cost about 40 µs of host time each (NABLA_PROFILE=host on ResNet-18 at 32²:
// conv2d was 79% of the step's host time, and the step was bound by the host). A cached execution plan
// runs for the cost of one variant pack and one cudnnBackendExecute, as PyTorch's cuDNN path does.
//
// Choosing the engine: the heuristics (CUDNN_HEUR_MODE_A, then the fallback list) rank the engine
// configurations. Filtered out:
//   - engines compiled at run time (seconds on first use);
//   - engines that down-convert their inputs;
//   - with TF32 off, f32 engines on tensor cores;
//   - unless NABLA_CUDNN_DETERMINISTIC=0, non-deterministic engines (as the legacy path).
// Then up to 6 plans that finalise (NABLA_CONV_CANDIDATES=N: N), with a workspace of at most 1 GiB, are
// each run once and timed over 3 runs (NABLA_CONV_TIMING_RUNS) on the call's own buffers (a host
// synchronisation at the first call of a shape), and the fastest is kept. NABLA_CONV_HEUR=b,fallback (any
// comma list of a, b, instant, fallback) changes the heuristics modes asked, in order. NABLA_CUDNN_FIND=0
// takes the heuristics' first instead, the same in every process. NABLA_CUDNN_API=legacy sends every
// convolution to the legacy API. A preferred engine (from the NABLA_CONV_CACHE file, cuda/conv_cache.h) that
// is among the filtered candidates is taken without timing.
#pragma once
#include <cudnn.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/dtype.h"

namespace nabla::cuda::cudnn_graph {

enum class ConvDir { fwd, bwd_data, bwd_filter };

// One convolution: the x role (x or dx), the w role (w or dw) and the y role (y or dy), NCHW dims with the
// tensors' actual strides, and the byte alignment of each pointer.
struct ConvDesc {
  ConvDir dir = ConvDir::fwd;
  DType dtype = DType::f32;
  cudnnDataType_t data_type = CUDNN_DATA_FLOAT;  // dtype's cuDNN type (cuda/conv.cu's cudnn_type)
  std::array<int64_t, 4> x_dims{}, x_strides{}, w_dims{}, w_strides{}, y_dims{}, y_strides{};
  std::array<int64_t, 2> pad{}, stride{}, dilation{};
  int64_t align_x = 16, align_w = 16, align_y = 16;
};

struct ConvPlan;  // the descriptors and the chosen execution plan

bool enabled();  // NABLA_CUDNN_API is not "legacy"

// Builds, filters and (with timing) benchmarks the candidates on the given buffers. Null when no engine
// configuration finalises for this convolution; `log` (if not null) gets one line on the choice.
// preferred_engine >= 0: the first candidate of that engine (global index) is taken without timing when
// there is one; otherwise the choice proceeds as without it.
std::shared_ptr<ConvPlan> make_conv_plan(const ConvDesc& d, void* x, void* w, void* y, bool deterministic,
                                         bool allow_tf32, bool time_candidates, std::string* log,
                                         int64_t preferred_engine = -1);
int64_t workspace_size(const ConvPlan& p);
int64_t engine_of(const ConvPlan& p);           // the chosen engine's global index (-1 if cuDNN gave none)
bool from_preferred_engine(const ConvPlan& p);  // chosen as make_conv_plan's preferred_engine
// Queues the convolution on the compute stream (workspace: at least workspace_size bytes, or null if 0).
void execute(const ConvPlan& p, void* x, void* w, void* y, void* workspace);

// ---- a forward convolution with a scale-bias-ReLU prologue (issue 27, experimental) ----
// y = conv(relu(x * scale + bias), w) as ONE cuDNN operation graph: three pointwise operations (MUL, ADD,
// RELU_FWD) on virtual f32 tensors feed the convolution's input, so relu(x * scale + bias) is never
// written to memory (the "BN-ReLU-Conv" prologue: batch norm's apply with its per-channel scale and bias
// folded into the next convolution). scale and bias are f32 [1, C, 1, 1]; x, w and y are d's tensors.
// cuDNN serves this graph with runtime-fusion engines only (compiled at the first use of a shape: seconds),
// so runtime-compiled engines are allowed here; the heuristics' first configuration that finalises is
// taken, untimed. Null, with the reason in `why`, when none does.
struct ProloguePlan;
std::shared_ptr<ProloguePlan> make_prologue_conv_plan(const ConvDesc& d, std::string* why);
int64_t workspace_size(const ProloguePlan& p);
void execute_prologue(const ProloguePlan& p, void* x, void* scale, void* bias, void* w, void* y,
                      void* workspace);

}  // namespace nabla::cuda::cudnn_graph
