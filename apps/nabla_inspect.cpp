// nabla_inspect: look inside models, checkpoints, the op table and an autograd graph (docs/inspect.md).
//
//   ./build/nabla_inspect summary --model resnet50                 # per-layer shapes, params, multiply-adds
//   ./build/nabla_inspect summary --model tests/yolo/fixtures/yolov3-tiny.cfg
//   ./build/nabla_inspect checkpoint --file model.safetensors      # tensors with dtype, shape, statistics
//   ./build/nabla_inspect ops                                      # ops and the kernels each backend has
//   ./build/nabla_inspect graph --model lenet5 --out step.dot      # autograd graph of one training step
//   ./build/nabla_inspect trace-cost --model resnet20 --batch 32   # step time untraced vs NABLA_TRACE-d
//   ./build/nabla_inspect memory --model resnet20 --batch 32       # live tensors of a step, by creating op
//
// The first argument is the command; the rest are its options (apps/common/options.h: --help, exit 2 on a
// mistake). The work is in apps/common/inspect.cpp.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

#include "apps/common/inspect.h"
#include "apps/common/options.h"

using namespace nabla;

namespace {

constexpr const char* kUsage =
    "usage: nabla_inspect COMMAND [options]   (nabla_inspect COMMAND --help for its options)\n"
    "commands:\n"
    "  summary     a model's layers with output shape, parameters and multiply-adds\n"
    "  checkpoint  a safetensors file's tensors with dtype, shape, mean, std, min, max\n"
    "  ops         the op table and the kernel slots with the backends that implement them\n"
    "  graph       the autograd graph of one training step, as Graphviz\n"
    "  trace-cost  the step time of a model's training step untraced and traced, alternating\n"
    "  memory      the live tensors of a training step (size, dtype, shape, device, creating op)\n";

int run(const std::string& command, int argc, char** argv) {
  const std::string program = "nabla_inspect " + command;
  if (command == "summary") {
    std::string model;
    int64_t image_size, classes;
    apps::OptionSet cli(program, "per-layer output shape, parameters and multiply-adds of a model");
    cli.add("model", &model, "resnet18",
            "resnet18..resnet152, resnet20..resnet110, lenet5, mlp, or a Darknet .cfg path");
    cli.add("image-size", &image_size, 0, "input height = width (0: the model's own)").non_negative();
    cli.add("classes", &classes, 0, "classes of the classifier (0: the model's default)").non_negative();
    cli.example("--model resnet50", "ResNet-50 at 224x224");
    if (auto code = cli.parse(argc, argv)) return *code;
    std::cout << apps::format_summary(apps::summarize_model(model, image_size, classes));
    return 0;
  }
  if (command == "checkpoint") {
    std::string file;
    apps::OptionSet cli(program, "the tensors of a safetensors file with statistics");
    cli.add("file", &file, "", "the .safetensors file (required)").value_name("FILE");
    if (auto code = cli.parse(argc, argv, [&] {
          if (file.empty()) throw apps::UsageError("option '--file' is required (a .safetensors file)");
        }))
      return *code;
    std::cout << apps::describe_checkpoint(file);
    return 0;
  }
  if (command == "ops") {
    apps::OptionSet cli(program, "the op table and each kernel slot's backends");
    if (auto code = cli.parse(argc, argv)) return *code;
    std::cout << apps::describe_ops();
    return 0;
  }
  if (command == "graph") {
    std::string model, out;
    int64_t batch;
    apps::OptionSet cli(program, "the autograd graph of one training step (forward + loss) as Graphviz");
    cli.add("model", &model, "lenet5", "lenet5, mlp or a ResNet name");
    cli.add("out", &out, "step.dot", "the .dot file to write (dot -Tsvg step.dot -o step.svg)");
    cli.add("batch", &batch, 2, "batch size").in_range(1, 1024);
    if (auto code = cli.parse(argc, argv)) return *code;
    const int64_t nodes = apps::write_step_graph(model, out, batch);
    std::cout << "wrote " << out << " (" << nodes << " labelled nodes)\n";
    return 0;
  }
  if (command == "trace-cost") {
    std::string model, device;
    int64_t batch, pairs, image_size;
    apps::OptionSet cli(program,
                        "training-step time untraced and traced (engine/trace.h), alternating steps");
    cli.add("model", &model, "resnet20", "lenet5, mlp or a ResNet name");
    cli.add("batch", &batch, 32, "batch size").in_range(1, 1 << 16);
    cli.add("pairs", &pairs, 10, "untraced/traced step pairs to time").in_range(1, 100000);
    cli.add("device", &device, "cpu", "cpu or cuda[:i]");
    cli.add("image-size", &image_size, 0, "ResNets: input side (0: 32 for CIFAR ResNets, else 224)")
        .non_negative();
    cli.example("--model resnet50 --batch 64 --device cuda", "ResNet-50 at 224x224 on the GPU");
    if (auto code = cli.parse(argc, argv)) return *code;
    std::cout << apps::format_trace_cost(apps::measure_trace_cost(model, batch, pairs, device, image_size));
    return 0;
  }
  if (command == "memory") {
    std::string model, device, json;
    int64_t batch, image_size, rows;
    apps::OptionSet cli(program, "the live tensors of one training step (engine/memory.h snapshot)");
    cli.add("model", &model, "resnet20", "lenet5, mlp or a ResNet name");
    cli.add("batch", &batch, 32, "batch size").in_range(1, 1 << 16);
    cli.add("device", &device, "cpu", "cpu or cuda[:i]");
    cli.add("image-size", &image_size, 0, "ResNets: input side (0: 32 for CIFAR ResNets, else 224)")
        .non_negative();
    cli.add("rows", &rows, 25, "largest storages to list (0: all)").non_negative();
    cli.add("json", &json, "", "also write both snapshots as JSON to this file").value_name("FILE");
    cli.example("--model resnet50 --batch 64 --device cuda --json live.json",
                "ResNet-50 at 224x224 on the GPU");
    if (auto code = cli.parse(argc, argv)) return *code;
    const apps::StepMemory m = apps::measure_step_memory(model, batch, device, image_size);
    std::cout << apps::format_step_memory(m, static_cast<size_t>(rows));
    if (!json.empty()) {
      std::ofstream f(json);
      if (!(f << apps::step_memory_json(m) << "\n")) {
        std::fprintf(stderr, "nabla_inspect memory: cannot write '%s'\n", json.c_str());
        return 1;
      }
      std::cout << "wrote " << json << "\n";
    }
    return 0;
  }
  std::fprintf(stderr,
               "nabla_inspect: unknown command '%s'; expected summary, checkpoint, ops, graph, trace-cost or "
               "memory\n%s",
               command.c_str(), kUsage);
  return apps::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? apps::kExitUsage : 0;
  }
  try {
    return run(argv[1], argc - 1, argv + 1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nabla_inspect %s: %s\n", argv[1], e.what());
    return 1;
  }
}
