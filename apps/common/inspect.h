// What apps/nabla_inspect prints, as functions the tests call: a model summary (per-layer output shape,
// parameters and multiply-adds, like torchinfo), a checkpoint's tensors with statistics, the op table with
// each backend's kernels, and the autograd graph of one training step.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/memory.h"

namespace nabla::apps {

struct SummaryRow {
  std::string name;   // dotted module name ("layer1.0") or Darknet's "3 convolutional"
  std::string type;   // module type or Darknet layer type
  std::string shape;  // output shape for one input, e.g. [1, 64, 56, 56]
  int64_t params = 0;
  int64_t macs = 0;  // multiply-adds of convolutions and linear layers (BN, activations, pooling: 0)
};

struct Summary {
  std::string model;
  std::string input;  // the input shape
  std::vector<SummaryRow> rows;
  int64_t total_params = 0;  // the model's num_parameters() (rows may not add up to it for a tree)
  int64_t total_macs = 0;
};

// `model`: a ResNet name (resnet18..resnet152, resnet20..resnet110), "lenet5", "mlp", or the path of a
// Darknet .cfg. image_size 0: the model's own (224 ImageNet ResNets, 32 CIFAR ResNets, 28 lenet5/mlp, the
// cfg's [net] size). Throws nabla::Error naming the known models for anything else.
Summary summarize_model(const std::string& model, int64_t image_size = 0, int64_t num_classes = 0);
std::string format_summary(const Summary& s);

// One line per tensor of a safetensors file: name, dtype, shape, mean, std, min, max; then totals.
std::string describe_checkpoint(const std::string& path);

// The op table (ops/op_table.h) and the kernel slots (ops/kernel_table.h) with the backends that
// registered each (ops/dispatch.h kernel_registrations()).
std::string describe_ops();

// Builds `model` (as summarize_model), runs forward and a cross-entropy loss on a random batch and writes
// the loss's autograd graph as Graphviz to `path`. Returns the number of nodes written.
int64_t write_step_graph(const std::string& model, const std::string& path, int64_t batch = 2);

// The cost of tracing on a training step: SGD steps (momentum 0.9, cross-entropy on a fixed random batch)
// of `model` (a ResNet name, lenet5 or mlp) on `device`, alternating an untraced step with a traced one
// (trace::start() before it, trace::stop() after it, both outside the timing; the order inside a pair
// swaps every pair), so that a machine's drifting load falls on both alike. Each step ends by reading the
// loss (a device synchronisation). Medians of `pairs` steps each, after 2 warm-up steps of each kind.
// Refuses to run while a trace is recording (NABLA_TRACE): it would be cut into pieces.
struct TraceCost {
  std::string model, device;
  int64_t batch = 0, pairs = 0;
  double untraced_ms = 0, traced_ms = 0;  // medians
  int64_t events_per_step = 0;            // of the last traced step (metadata not counted)
  int64_t device_events_per_step = 0;     // of those, on a GPU's tracks
};
TraceCost measure_trace_cost(const std::string& model, int64_t batch, int64_t pairs,
                             const std::string& device, int64_t image_size = 0);
std::string format_trace_cost(const TraceCost& c);

// The live tensors of one training step (engine/memory.h snapshot()): with live tracking on, builds
// `model` (as measure_trace_cost), moves it to `device`, runs forward and a cross-entropy loss on a random
// batch and takes a snapshot (the parameters and the activations the graph keeps for backward: the step's
// high-water mark), then backward and an SGD step with momentum, and another snapshot (parameters,
// gradients, momentum buffers). Refuses to run while live tracking is already on (NABLA_MEMORY=live).
struct StepMemory {
  std::string model, device;
  int64_t batch = 0;
  memory::Snapshot after_forward, after_step;
};
StepMemory measure_step_memory(const std::string& model, int64_t batch, const std::string& device,
                               int64_t image_size = 0);
// The after-forward table (its `max_rows` largest storages) and the per-creator totals of both snapshots.
std::string format_step_memory(const StepMemory& m, size_t max_rows = 25);
// {"model", "device", "batch", "after_forward": snapshot_json, "after_step": snapshot_json}
std::string step_memory_json(const StepMemory& m);

}  // namespace nabla::apps
