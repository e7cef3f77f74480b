// The inspection commands of apps/nabla_inspect (apps/common/inspect.h).
#include "apps/common/inspect.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "algorithms/optim/optimizer.h"
#include "autograd/autograd.h"
#include "autograd/graph_dot.h"
#include "engine/device_runtime.h"
#include "engine/error.h"
#include "engine/memory.h"
#include "engine/safetensors.h"
#include "engine/trace.h"
#include "models/classifiers.h"
#include "models/darknet/network.h"
#include "models/resnet.h"
#include "ops/dispatch.h"
#include "ops/factory.h"
#include "ops/kernel_table.h"
#include "ops/loss.h"
#include "ops/op_table.h"
#include "ops/reduce.h"

namespace nabla::apps {
namespace {

bool is_cfg(const std::string& m) { return m.size() > 4 && m.substr(m.size() - 4) == ".cfg"; }

std::string shape_text(std::vector<int64_t> dims) { return shape_str(Shape(dims.begin(), dims.end())); }

// MACs of a conv or linear module for its output `out` of one image: each output element is a dot product
// over weight.numel() / out_channels inputs.
int64_t weighted_macs(const nn::Module& m, const Tensor& out) {
  if (auto* c = dynamic_cast<const nn::Conv2d*>(&m))
    return out.numel() * (c->weight.numel() / c->weight.size(0));
  if (auto* l = dynamic_cast<const nn::Linear*>(&m)) return out.numel() * l->weight.size(1);
  return 0;
}

Summary summarize_resnet(const models::ResNet& net, const std::string& name, int64_t hw) {
  Summary s;
  s.model = name;
  s.input = shape_text({1, net.options.in_channels, hw, hw});
  int64_t h = hw, w = hw;
  // Stem: conv 7x7/2 pad 3 (+ maxpool 3x3/2 pad 1) for ImageNet, conv 3x3/1 pad 1 for CIFAR.
  if (!net.spec.cifar) h = w = (hw + 6 - 7) / 2 + 1;
  const int64_t c0 = net.conv1->weight.size(0);
  s.rows.push_back({"conv1", "Conv2d", shape_text({1, c0, h, w}), net.conv1->num_parameters(),
                    h * w * net.conv1->weight.numel()});
  s.rows.push_back({"bn1", "BatchNorm", shape_text({1, c0, h, w}), net.bn1->num_parameters(), 0});
  if (!net.spec.cifar) {
    h = w = (h + 2 - 3) / 2 + 1;
    s.rows.push_back({"maxpool", "max_pool2d", shape_text({1, c0, h, w}), 0, 0});
  }
  for (size_t si = 0; si < net.stages.size(); ++si)
    for (size_t bi = 0; bi < net.stages[si].size(); ++bi) {
      const auto& b = net.stages[si][bi];
      const int64_t macs = b->macs(h, w);  // advances h, w to the block's output
      const auto& last = std::dynamic_pointer_cast<models::Bottleneck>(b)
                             ? std::dynamic_pointer_cast<models::Bottleneck>(b)->conv3
                             : std::dynamic_pointer_cast<models::BasicBlock>(b)->conv2;
      s.rows.push_back({"layer" + std::to_string(si + 1) + "." + std::to_string(bi), b->type_name(),
                        shape_text({1, last->weight.size(0), h, w}), b->num_parameters(), macs});
    }
  s.rows.push_back({"avgpool", "adaptive_avg_pool2d", shape_text({1, net.fc->weight.size(1)}), 0, 0});
  s.rows.push_back({"fc", "Linear", shape_text({1, net.fc->weight.size(0)}), net.fc->num_parameters(),
                    net.fc->weight.numel()});
  s.total_params = net.num_parameters();
  s.total_macs = net.macs(hw, hw);
  return s;
}

Summary summarize_sequential(const nn::Sequential& seq, const std::string& name, int64_t channels,
                             int64_t hw) {
  Summary s;
  s.model = name;
  NoGradGuard no_grad;
  Tensor x = randn({1, channels, hw, hw});
  s.input = shape_str(x.shape());
  for (size_t i = 0; i < seq.size(); ++i) {
    const auto& m = seq[i];
    x = m->forward(x);
    const int64_t macs = weighted_macs(*m, x);
    s.rows.push_back({std::to_string(i), m->type_name(), shape_str(x.shape()), m->num_parameters(), macs});
    s.total_macs += macs;
  }
  s.total_params = seq.num_parameters();
  return s;
}

Summary summarize_darknet(const std::string& path, int64_t hw) {
  auto net = models::darknet::DarknetNetwork::from_file(path, true);
  Summary s;
  s.model = path;
  const int64_t h = hw ? hw : net->net.height, w = hw ? hw : net->net.width;
  NABLA_CHECK(!hw || (hw == net->net.height && hw == net->net.width), "summary: --image-size ", hw,
              " differs from the cfg's [net] ", net->net.width, "x", net->net.height,
              "; edit the cfg to change it");
  s.input = shape_text({1, net->net.channels, h, w});
  for (const auto& l : net->layers) {
    int64_t params = 0, macs = 0;
    if (l.conv) {
      params = l.conv->num_parameters();
      macs = int64_t{l.out_c} * l.out_h * l.out_w * (l.in_c / l.groups) * l.size * l.size;
    }
    s.rows.push_back({std::to_string(l.index), models::darknet::layer_type_name(l.type),
                      shape_text({1, l.out_c, l.out_h, l.out_w}), params, macs});
    s.total_macs += macs;
  }
  s.total_params = net->num_parameters();
  return s;
}

std::string thousands(int64_t v) {
  std::string d = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return (v < 0 ? "-" : "") + out;
}

}  // namespace

Summary summarize_model(const std::string& model, int64_t image_size, int64_t num_classes) {
  NABLA_CHECK(image_size >= 0 && num_classes >= 0, "summary: image size and classes must be >= 0, got ",
              image_size, " and ", num_classes);
  if (is_cfg(model)) return summarize_darknet(model, image_size);
  const auto& names = models::resnet_names();
  if (std::find(names.begin(), names.end(), model) != names.end()) {
    models::ResNetOptions o;
    if (num_classes) o.num_classes = num_classes;
    auto net = models::make_resnet(model, o);
    return summarize_resnet(*net, model, image_size ? image_size : (net->spec.cifar ? 32 : 224));
  }
  NABLA_CHECK(model == "lenet5" || model == "mlp", "summary: unknown model '", model,
              "'; expected a ResNet (resnet18..resnet152, resnet20..resnet110), lenet5, mlp or a Darknet "
              ".cfg path");
  const int64_t hw = image_size ? image_size : 28;
  auto m = models::make_classifier(model, 1, hw, num_classes ? num_classes : 10);
  auto seq = std::dynamic_pointer_cast<nn::Sequential>(m);
  NABLA_CHECK(seq != nullptr, "summary: ", model, " is not a Sequential");
  return summarize_sequential(*seq, model, 1, hw);
}

std::string format_summary(const Summary& s) {
  std::ostringstream os;
  char line[256];
  os << "model " << s.model << ", input " << s.input << "\n";
  std::snprintf(line, sizeof line, "%-16s %-22s %-22s %14s %16s\n", "layer", "type", "output shape", "params",
                "multiply-adds");
  os << line << std::string(94, '-') << "\n";
  for (const auto& r : s.rows) {
    std::snprintf(line, sizeof line, "%-16s %-22s %-22s %14s %16s\n", r.name.c_str(), r.type.c_str(),
                  r.shape.c_str(), thousands(r.params).c_str(), thousands(r.macs).c_str());
    os << line;
  }
  os << std::string(94, '-') << "\n";
  std::snprintf(line, sizeof line, "total params %s (%.2f M), multiply-adds %s (%.3f G) per image\n",
                thousands(s.total_params).c_str(), s.total_params / 1e6, thousands(s.total_macs).c_str(),
                s.total_macs / 1e9);
  os << line;
  return os.str();
}

std::string describe_checkpoint(const std::string& path) {
  const SafetensorsFile f = load_safetensors(path);
  std::ostringstream os;
  char line[512];
  std::snprintf(line, sizeof line, "%-40s %-8s %-20s %12s %12s %12s %12s\n", "tensor", "dtype", "shape",
                "mean", "std", "min", "max");
  os << line;
  int64_t elements = 0;
  size_t bytes = 0;
  for (const auto& [name, t] : f.tensors) {
    elements += t.numel();
    bytes += t.nbytes();
    if (t.numel() == 0 || t.dtype() == DType::b8) {
      std::snprintf(line, sizeof line, "%-40s %-8s %-20s\n", name.c_str(), dtype_name(t.dtype()),
                    shape_str(t.shape()).c_str());
    } else {
      const Tensor d = t.to(DType::f64);
      const double sd = t.numel() > 1 ? std_dev(d).item_double() : 0.0;
      std::snprintf(line, sizeof line, "%-40s %-8s %-20s %12.5g %12.5g %12.5g %12.5g\n", name.c_str(),
                    dtype_name(t.dtype()), shape_str(t.shape()).c_str(), mean(d).item_double(), sd,
                    amin(d).item_double(), amax(d).item_double());
    }
    os << line;
  }
  os << f.tensors.size() << " tensors, " << thousands(elements) << " elements, " << thousands(bytes)
     << " bytes";
  if (!f.metadata.empty()) {
    os << "; metadata:";
    for (const auto& [k, v] : f.metadata) os << " " << k << "=" << v;
  }
  os << "\n";
  return os.str();
}

std::string describe_ops() {
  std::ostringstream os;
  os << "ops (ops/op_table.h): " << ops::op_table().size() << "\n";
  char line[512];
  for (const auto& op : ops::op_table()) {
    std::snprintf(line, sizeof line, "  %-28s %-14s %s\n", op.name, op.family,
                  op.kind == ops::OpKind::Differentiable ? "differentiable" : "not differentiable");
    os << line;
  }
  std::map<std::string, std::set<std::string>> backends;  // slot -> device types that registered it
  for (const auto& r : ops::kernel_registrations()) backends[r.slot].insert(device_type_name(r.device));
  os << "kernel slots (ops/kernel_table.h): " << ops::kernel_slot_table().size()
     << "; backends: the kernels this build registered\n";
  for (const auto& k : ops::kernel_slot_table()) {
    std::string have;
    for (const auto& b : backends[k.name]) have += (have.empty() ? "" : ",") + b;
    std::snprintf(line, sizeof line, "  %-28s %-12s %-10s %-18s %s\n", k.name, k.family,
                  have.empty() ? "-" : have.c_str(), ops::slot_availability_name(k.availability), k.ops);
    os << line;
  }
  return os.str();
}

// The model and a random input batch of one training step: LeNet-5 / the MLP on 28² grey images, or a
// ResNet on `image_size`² colour images (0: 32 for the CIFAR ones, `default_side` otherwise). `what` names
// the command in the error for an unknown model.
namespace {
struct StepSetup {
  std::shared_ptr<nn::Module> model;
  Tensor input;
  int64_t classes = 10;
};

StepSetup step_setup(const std::string& model, int64_t batch, int64_t image_size, int64_t default_side,
                     const char* what) {
  StepSetup s;
  if (model == "lenet5" || model == "mlp") {
    s.model = models::make_classifier(model, 1, 28, s.classes);
    s.input = randn({batch, 1, 28, 28});
    return s;
  }
  const auto& names = models::resnet_names();
  NABLA_CHECK(std::find(names.begin(), names.end(), model) != names.end(), what, ": unknown model '", model,
              "'; expected lenet5, mlp or a ResNet name");
  auto net = models::make_resnet(model, {});
  s.classes = net->fc->weight.size(0);
  const int64_t side = image_size > 0 ? image_size : (net->spec.cifar ? 32 : default_side);
  s.input = randn({batch, 3, side, side});
  s.model = net;
  return s;
}
}  // namespace

int64_t write_step_graph(const std::string& model, const std::string& path, int64_t batch) {
  NABLA_CHECK(batch >= 1, "graph: batch must be >= 1, got ", batch);
  StepSetup setup = step_setup(model, batch, 0, 64, "graph");
  std::shared_ptr<nn::Module> m = setup.model;
  Tensor x = setup.input;
  const int64_t classes = setup.classes;
  Tensor loss = cross_entropy(m->forward(x), randint(0, classes, {batch}));
  const std::string dot = autograd::graph_to_dot(loss);
  std::ofstream f(path);
  NABLA_CHECK(f.good(), "graph: cannot open '", path, "' for writing");
  f << dot;
  NABLA_CHECK(f.good(), "graph: writing '", path, "' failed");
  int64_t nodes = 0;
  for (size_t p = dot.find("label="); p != std::string::npos; p = dot.find("label=", p + 1)) ++nodes;
  return nodes;
}

TraceCost measure_trace_cost(const std::string& model, int64_t batch, int64_t pairs,
                             const std::string& device, int64_t image_size) {
  NABLA_CHECK(batch >= 1, "trace-cost: batch must be >= 1, got ", batch);
  NABLA_CHECK(pairs >= 1, "trace-cost: pairs must be >= 1, got ", pairs);
  NABLA_CHECK(!trace::enabled(),
              "trace-cost: a trace is already recording (NABLA_TRACE is set?); run without it");
  const Device dev = Device::parse(device);
  runtime::require_device(dev, "trace-cost --device");
  StepSetup setup = step_setup(model, batch, image_size, 224, "trace-cost");
  std::shared_ptr<nn::Module> m = setup.model;
  Tensor x = setup.input;
  const int64_t classes = setup.classes;
  m->to(dev);
  x = x.to(dev);
  const Tensor y = randint(0, classes, {batch}).to(dev);
  optim::Sgd opt(m->parameters(), {.lr = 0.01, .momentum = 0.9});
  auto step_ms = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    opt.zero_grad();
    Tensor loss = cross_entropy(m->forward(x), y);
    loss.backward();
    opt.step();
    (void)loss.item();  // waits for the device
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  TraceCost c{model, dev.str(), batch, pairs};
  auto traced_ms = [&] {
    trace::start();
    const double ms = step_ms();
    const nlohmann::json j = nlohmann::json::parse(trace::stop());
    c.events_per_step = c.device_events_per_step = 0;
    for (const auto& e : j.at("traceEvents")) {
      if (e.at("ph") == "M" || e.at("ph") == "E") continue;  // a B/E range counts once
      ++c.events_per_step;
      c.device_events_per_step += e.at("pid").get<int64_t>() >= trace::kDevicePid;
    }
    return ms;
  };
  for (int i = 0; i < 2; ++i) {
    step_ms();
    traced_ms();
  }
  std::vector<double> off, on;
  for (int64_t i = 0; i < pairs; ++i) {
    if (i % 2 == 0) {
      off.push_back(step_ms());
      on.push_back(traced_ms());
    } else {
      on.push_back(traced_ms());
      off.push_back(step_ms());
    }
  }
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  c.untraced_ms = median(off);
  c.traced_ms = median(on);
  return c;
}

std::string format_trace_cost(const TraceCost& c) {
  char line[512];
  const double per_event_us =
      c.events_per_step > 0 ? 1e3 * (c.traced_ms - c.untraced_ms) / static_cast<double>(c.events_per_step)
                            : 0;
  std::snprintf(
      line, sizeof line,
      "trace cost: %s, batch %lld, %s, %lld pairs of SGD steps: median step %.3f ms untraced, %.3f ms "
      "traced (%+.1f%%); %lld events per traced step (%lld on device tracks), %+.2f us per event\n",
      c.model.c_str(), static_cast<long long>(c.batch), c.device.c_str(), static_cast<long long>(c.pairs),
      c.untraced_ms, c.traced_ms, 100.0 * (c.traced_ms / c.untraced_ms - 1.0),
      static_cast<long long>(c.events_per_step), static_cast<long long>(c.device_events_per_step),
      per_event_us);
  return line;
}

StepMemory measure_step_memory(const std::string& model, int64_t batch, const std::string& device,
                               int64_t image_size) {
  NABLA_CHECK(batch >= 1, "memory: batch must be >= 1, got ", batch);
  NABLA_CHECK(
      !memory::live_tracking(),
      "memory: live tensors are already tracked (NABLA_MEMORY=live or NABLA_MEMORY_SNAPSHOT is set?); "
      "run without it");
  const Device dev = Device::parse(device);
  runtime::require_device(dev, "memory --device");
  StepMemory r{model, dev.str(), batch, {}, {}};
  memory::set_live_tracking(true);
  struct Off {
    ~Off() { memory::set_live_tracking(false); }
  } off;
  StepSetup setup = step_setup(model, batch, image_size, 224, "memory");
  std::shared_ptr<nn::Module> m = setup.model;
  Tensor x = setup.input;
  const int64_t classes = setup.classes;
  m->to(dev);
  x = x.to(dev);
  const Tensor y = randint(0, classes, {batch}).to(dev);
  optim::Sgd opt(m->parameters(), {.lr = 0.01, .momentum = 0.9});
  {
    Tensor loss = cross_entropy(m->forward(x), y);
    (void)loss.item();  // the device has finished (a CUDA allocator frees only what is done)
    r.after_forward = memory::snapshot();
    loss.backward();
  }
  opt.step();
  runtime::synchronize(dev);
  r.after_step = memory::snapshot();
  return r;
}

std::string format_step_memory(const StepMemory& m, size_t max_rows) {
  std::ostringstream os;
  os << "live tensors of one training step: " << m.model << ", batch " << m.batch << ", " << m.device
     << " (the tracked storages: the model, the batch, and what the step made)\n\n";
  os << "after forward and loss (the activations kept for backward):\n"
     << memory::snapshot_text(m.after_forward, max_rows);
  os << "\nafter backward and the SGD step (parameters, gradients, momentum):\n"
     << memory::snapshot_text(m.after_step, 10);
  return os.str();
}

std::string step_memory_json(const StepMemory& m) {
  return nlohmann::json{{"model", m.model},
                        {"device", m.device},
                        {"batch", m.batch},
                        {"after_forward", nlohmann::json::parse(memory::snapshot_json(m.after_forward))},
                        {"after_step", nlohmann::json::parse(memory::snapshot_json(m.after_step))}}
      .dump();
}

}  // namespace nabla::apps
