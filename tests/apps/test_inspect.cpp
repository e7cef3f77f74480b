// Inspection: the tracer (engine/trace.h) on a training step, the allocator statistics and the peak's op
// (engine/memory.h), nabla_inspect's summary / checkpoint / ops / graph (apps/common/inspect.h) and its
// command line.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "algorithms/optim/optimizer.h"
#include "apps/common/inspect.h"
#include "engine/memory.h"
#include "engine/profile.h"
#include "engine/safetensors.h"
#include "engine/trace.h"
#include "models/classifiers.h"
#include "testing.h"

using namespace nabla;
namespace fs = std::filesystem;

namespace {

// One SGD step of a small MLP on fresh random data.
void mlp_step(nn::Module& model, optim::Optimizer& opt, int64_t batch = 16) {
  Tensor x = randn({batch, 1, 8, 8});
  Tensor y = randint(0, 10, {batch});
  opt.zero_grad();
  Tensor loss = cross_entropy(model.forward(x), y);
  loss.backward();
  opt.step();
}

struct Interval {
  std::string name, cat;
  double t0, t1;
  int tid;
};

// The trace's ranges and complete events as intervals; checks B/E balance and names on every thread.
std::vector<Interval> intervals_of(const nlohmann::json& trace) {
  std::vector<Interval> out;
  std::map<int, std::vector<Interval>> open;
  for (const auto& e : trace.at("traceEvents")) {
    const std::string ph = e.at("ph");
    if (ph == "M") continue;  // track names
    const int tid = e.at("tid");
    const double ts = e.at("ts");
    EXPECT_TRUE(e.contains("pid"));
    if (ph == "B") {
      open[tid].push_back({e.at("name"), e.at("cat"), ts, 0, tid});
    } else if (ph == "E") {
      EXPECT_FALSE(open[tid].empty()) << "E without B on thread " << tid;
      if (open[tid].empty()) continue;
      Interval i = open[tid].back();
      open[tid].pop_back();
      EXPECT_EQ(e.at("name"), i.name);
      EXPECT_GE(ts, i.t0);
      i.t1 = ts;
      out.push_back(i);
    } else {
      EXPECT_EQ(ph, "X");
      const double dur = e.at("dur");
      EXPECT_GE(dur, 0);
      out.push_back({e.at("name"), e.at("cat"), ts, ts + dur, tid});
    }
  }
  for (auto& [tid, stack] : open)
    EXPECT_TRUE(stack.empty()) << stack.size() << " ranges left open on " << tid;
  return out;
}

bool inside(const Interval& a, const Interval& outer) {
  return a.tid == outer.tid && a.t0 >= outer.t0 && a.t1 <= outer.t1;
}

}  // namespace

TEST(Trace, TrainingStepIsValidNestedJson) {
  manual_seed(7);
  auto model = models::mlp(64, {32, 16}, 10);
  optim::Sgd opt(model->parameters(), {.lr = 0.1, .momentum = 0.9});
  mlp_step(*model, opt);  // warm-up outside the trace
  ASSERT_FALSE(trace::enabled());
  const bool profiling_before = profile::enabled();
  trace::start();
  mlp_step(*model, opt);
  const std::string text = trace::stop();
  EXPECT_FALSE(trace::enabled());
  EXPECT_EQ(profile::enabled(), profiling_before);  // the tracer gives back the profiler's state

  const nlohmann::json j = nlohmann::json::parse(text);  // throws on invalid JSON
  const std::vector<Interval> iv = intervals_of(j);
  // Every pair on one thread is either disjoint or nested.
  for (size_t a = 0; a < iv.size(); ++a)
    for (size_t b = a + 1; b < iv.size(); ++b) {
      if (iv[a].tid != iv[b].tid) continue;
      const bool disjoint = iv[a].t1 <= iv[b].t0 || iv[b].t1 <= iv[a].t0;
      EXPECT_TRUE(disjoint || inside(iv[a], iv[b]) || inside(iv[b], iv[a]))
          << iv[a].name << " [" << iv[a].t0 << ", " << iv[a].t1 << "] and " << iv[b].name << " [" << iv[b].t0
          << ", " << iv[b].t1 << "] overlap";
    }
  const Interval* backward = nullptr;
  const Interval* step = nullptr;
  for (const auto& i : iv) {
    if (i.name == "backward") backward = &i;
    if (i.name == "SGD step") step = &i;
  }
  ASSERT_NE(backward, nullptr);
  ASSERT_NE(step, nullptr);
  EXPECT_LE(backward->t1, step->t0);
  int nodes = 0, kernels_in_backward = 0, kernels_in_step = 0, kernels = 0;
  for (const auto& i : iv) {
    if (i.cat == "autograd" && i.name != "backward") {
      ++nodes;
      EXPECT_TRUE(inside(i, *backward)) << i.name << " is outside the backward range";
    }
    if (i.cat == "kernel") {
      ++kernels;
      kernels_in_backward += inside(i, *backward);
      kernels_in_step += inside(i, *step);
    }
  }
  EXPECT_GE(nodes, 6);  // 3 linear layers (+ bias, relu) and the loss
  EXPECT_GT(kernels_in_backward, 0);
  EXPECT_GT(kernels_in_step, 0);
  EXPECT_GT(kernels - kernels_in_backward - kernels_in_step, 0);  // the forward's
  // Backward nodes carry their gradient's shape and dtype.
  bool saw_args = false;
  for (const auto& e : j.at("traceEvents"))
    if (e.at("ph") == "B" && e.at("cat") == "autograd" && e.at("name") != "backward") {
      ASSERT_TRUE(e.contains("args"));
      EXPECT_EQ(e.at("args").at("dtype").get<std::string>(), "f32");
      EXPECT_EQ(e.at("args").at("shape").get<std::string>().front(), '[');
      saw_args = true;
    }
  EXPECT_TRUE(saw_args);
  // Kernel events carry the device and each tensor argument's shape and dtype: the first linear layer's
  // forward multiplies the batch [16,64] (flattened from [16,1,8,8]) by its weight, transposed to [64,32],
  // into [16,32].
  int kernel_events = 0;
  bool saw_first_layer = false;
  for (const auto& e : j.at("traceEvents")) {
    if (e.at("ph") == "M") {
      EXPECT_EQ(e.at("pid"), j.at("traceEvents")[0].at("pid"));  // a CPU run: the host process only
      continue;
    }
    if (e.at("cat") != "kernel") continue;
    ++kernel_events;
    ASSERT_TRUE(e.contains("args")) << e.dump();
    const auto& a = e.at("args");
    EXPECT_EQ(a.at("device"), "cpu");
    ASSERT_EQ(a.at("shapes").size(), a.at("dtypes").size()) << e.dump();
    for (const auto& d : a.at("dtypes")) {
      const std::string dt = d;
      EXPECT_TRUE(dt == "f32" || dt == "i64" || dt == "list" || dt == "bool" || dt == "u8") << e.dump();
    }
    std::set<std::string> shapes;
    for (const auto& sh : a.at("shapes")) shapes.insert(sh.get<std::string>());
    saw_first_layer |= shapes.count("[16,64]") && shapes.count("[64,32]") && shapes.count("[16,32]");
  }
  EXPECT_GT(kernel_events, 10);
  EXPECT_TRUE(saw_first_layer) << "no kernel event with shapes [16,64], [64,32] and [16,32]";
}

TEST(Trace, WritesTheFileAndMeasuresItsCost) {
  const fs::path path = fs::temp_directory_path() / ("nabla_trace_" + std::to_string(getpid()) + ".json");
  manual_seed(8);
  auto model = models::mlp(64, {32, 16}, 10);
  optim::Sgd opt(model->parameters(), {.lr = 0.1});
  auto time_steps = [&](int n) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) mlp_step(*model, opt);
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / n;
  };
  time_steps(3);
  const double off = time_steps(20);
  trace::start(path.string());
  const double on = time_steps(20);
  trace::stop();
  std::printf("[ trace cost ] MLP 64-32-16-10, batch 16, SGD step on the CPU: %.1f us off, %.1f us traced\n",
              off, on);
  std::ifstream f(path);
  ASSERT_TRUE(f.good());
  const nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_GT(j.at("traceEvents").size(), 20u * 20u);
  fs::remove(path);
  test::expect_error([] { trace::stop("/nonexistent-dir/x.json"); }, {"/nonexistent-dir/x.json"});
}

// scripts/trace_to_svg.py (the picture of a trace without a browser) on a traced training step.
TEST(Trace, RendersAsAnSvgTimeline) {
  if (std::system("python3 -c 'import json' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  const std::string dir = fs::temp_directory_path() / ("nabla_svg_" + std::to_string(getpid()));
  fs::create_directories(dir);
  manual_seed(9);
  auto model = models::mlp(64, {32, 16}, 10);
  optim::Sgd opt(model->parameters(), {.lr = 0.1});
  trace::start(dir + "/t.json");
  mlp_step(*model, opt);
  mlp_step(*model, opt);
  const nlohmann::json j = nlohmann::json::parse(trace::stop());
  int kernels_in_trace = 0;
  for (const auto& e : j.at("traceEvents")) kernels_in_trace += e.value("cat", "") == "kernel";
  auto run = [&](const std::string& args) {
    const std::string cmd =
        "python3 " + std::string(NABLA_SOURCE_DIR) + "/scripts/trace_to_svg.py " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    return std::make_pair(WEXITSTATUS(pclose(p)), out);
  };
  auto [rc, out] = run(dir + "/t.json " + dir + "/all.svg --min-px 0");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("host / thread"), std::string::npos) << out;
  std::ifstream f(dir + "/all.svg");
  const std::string svg((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("SGD step"), std::string::npos);
  EXPECT_NE(svg.find("backward"), std::string::npos);
  // One box (a <title> tooltip) per event: every kernel, range and optimizer step.
  size_t boxes = 0;
  for (size_t at = svg.find("<title>"); at != std::string::npos; at = svg.find("<title>", at + 1)) ++boxes;
  EXPECT_GE(boxes, static_cast<size_t>(kernels_in_trace));
  // --step 2: the second step only, so fewer boxes; --step 3 does not exist.
  std::tie(rc, out) = run(dir + "/t.json " + dir + "/step.svg --step 2 --min-px 0");
  ASSERT_EQ(rc, 0) << out;
  std::ifstream g(dir + "/step.svg");
  const std::string step((std::istreambuf_iterator<char>(g)), std::istreambuf_iterator<char>());
  size_t step_boxes = 0;
  for (size_t at = step.find("<title>"); at != std::string::npos; at = step.find("<title>", at + 1))
    ++step_boxes;
  EXPECT_GT(step_boxes, 10u);
  EXPECT_LT(step_boxes, boxes);
  std::tie(rc, out) = run(dir + "/t.json " + dir + "/x.svg --step 3");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("--step 3: expected 1..2"), std::string::npos) << out;
  std::ofstream(dir + "/bad.json") << "{not json";
  std::tie(rc, out) = run(dir + "/bad.json " + dir + "/x.svg");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("is not JSON"), std::string::npos) << out;
  fs::remove_all(dir);
}

TEST(Trace, CostOfTracingATrainingStep) {
  const apps::TraceCost c = apps::measure_trace_cost("mlp", 8, 3, "cpu");
  EXPECT_FALSE(trace::enabled());
  EXPECT_EQ(c.device, "cpu");
  EXPECT_EQ(c.pairs, 3);
  EXPECT_GT(c.untraced_ms, 0);
  EXPECT_GT(c.traced_ms, 0);
  // The MLP's step: its forward, backward nodes and kernels, and the SGD step, all on the host.
  EXPECT_GT(c.events_per_step, 20);
  EXPECT_EQ(c.device_events_per_step, 0);
  const std::string line = apps::format_trace_cost(c);
  EXPECT_NE(line.find("mlp, batch 8, cpu, 3 pairs"), std::string::npos) << line;
  EXPECT_NE(line.find(std::to_string(c.events_per_step) + " events per traced step"), std::string::npos)
      << line;
  test::expect_error([] { apps::measure_trace_cost("resnet19", 2, 1, "cpu"); }, {"resnet19", "lenet5"});
  test::expect_error([] { apps::measure_trace_cost("mlp", 0, 1, "cpu"); }, {"batch", ">= 1", "0"});
  trace::start();
  test::expect_error([] { apps::measure_trace_cost("mlp", 2, 1, "cpu"); }, {"already recording"});
  trace::stop();
}

TEST(Memory, PeakOfAKnownSequence) {
  const Device cpu = Device::cpu();
  memory::reset_peak(cpu);
  const memory::Stats s0 = memory::stats(cpu);
  EXPECT_EQ(s0.peak_allocated, s0.allocated);
  {
    Tensor a = Tensor::empty({1000}, DType::f32);  // 4000 bytes
    Tensor b = Tensor::empty({2000}, DType::f32);  // 8000
    const memory::Stats s1 = memory::stats(cpu);
    EXPECT_EQ(s1.allocated - s0.allocated, 12000u);
    EXPECT_EQ(s1.reserved - s0.reserved, 4032u + 8000u);  // 64-byte blocks
    EXPECT_DOUBLE_EQ(s1.fragmentation(), double(s1.reserved - s1.allocated) / double(s1.reserved));
    EXPECT_EQ((s1.reserved - s1.allocated) - (s0.reserved - s0.allocated), 32u);  // a's 32 rounding bytes
    a = Tensor();
    Tensor c = Tensor::empty({500}, DType::f64);  // 4000
    const memory::Stats s2 = memory::stats(cpu);
    EXPECT_EQ(s2.allocated - s0.allocated, 12000u);
    EXPECT_EQ(s2.peak_allocated - s0.allocated, 12000u);
    EXPECT_EQ(s2.allocations - s0.allocations, 3u);
    EXPECT_EQ(s2.device_mallocs, s2.allocations);
    Tensor d = Tensor::empty({1001}, DType::f32);  // 4004: a new peak
    EXPECT_EQ(memory::stats(cpu).peak_allocated - s0.allocated, 16004u);
  }
  EXPECT_EQ(memory::stats(cpu).allocated, s0.allocated);
  EXPECT_EQ(memory::stats(cpu).peak_allocated - s0.allocated, 16004u);
}

TEST(Memory, PeakIsAttributedToTheOpThatReachedIt) {
  const Device cpu = Device::cpu();
  Tensor x = randn({1 << 16});
  memory::set_tracking(true);
  memory::reset_peak(cpu);
  EXPECT_EQ(memory::peak_op(cpu), "");
  {
    Tensor y = exp(x);  // 256 KiB more: the peak
  }
  Tensor s = sum(x);                      // 4 bytes after y was freed: no new peak
  Tensor z = x.narrow(0, 0, 1024) * 2.0;  // 4 KiB: no new peak either
  memory::set_tracking(false);
  EXPECT_EQ(memory::peak_op(cpu), "exp");
  const std::string r = memory::report();
  EXPECT_NE(r.find("cpu:0"), std::string::npos) << r;
  EXPECT_NE(r.find("(reached in 'exp')"), std::string::npos) << r;
  EXPECT_NE(r.find("% free)"), std::string::npos) << r;
  EXPECT_EQ(memory::Stats{}.fragmentation(), 0.0);
  const memory::Stats half{.allocated = 100, .reserved = 400};
  EXPECT_DOUBLE_EQ(half.fragmentation(), 0.75);
}

TEST(Inspect, ResNetSummariesMatchThePublishedCounts) {
  const apps::Summary r18 = apps::summarize_model("resnet18");
  EXPECT_EQ(r18.total_params, 11689512);
  EXPECT_EQ(r18.total_macs, 1814073344);  // torchvision: 1.81 GFLOPS (multiply-adds)
  int64_t params = 0, macs = 0;
  for (const auto& row : r18.rows) {
    params += row.params;
    macs += row.macs;
  }
  EXPECT_EQ(params, r18.total_params);
  EXPECT_EQ(macs, r18.total_macs);
  EXPECT_EQ(r18.rows.back().shape, "[1,1000]");
  EXPECT_EQ(r18.rows[0].shape, "[1,64,112,112]");
  // Hand count of the stem: 64 filters of 3x7x7 over 112x112 outputs.
  EXPECT_EQ(r18.rows[0].macs, int64_t{112} * 112 * 64 * 3 * 7 * 7);
  const apps::Summary r50 = apps::summarize_model("resnet50");
  EXPECT_EQ(r50.total_params, 25557032);
  EXPECT_NEAR(r50.total_macs / 1e9, 4.1, 0.05);
  const std::string table = apps::format_summary(r50);
  EXPECT_NE(table.find("25,557,032"), std::string::npos) << table;
  const apps::Summary c20 = apps::summarize_model("resnet20", 0, 10);
  EXPECT_EQ(c20.total_params, 272474);  // He et al.: 0.27M
  test::expect_error([] { apps::summarize_model("resnet19"); }, {"resnet19", "lenet5", ".cfg"});
}

TEST(Inspect, ResNet18SummaryMatchesAHandCount) {
  // ResNet-18 at 224x224 from its layers: the 7x7 stem, then per stage two basic blocks of two 3x3
  // convolutions, the first block of stages 2-4 halving the side and adding a 1x1 projection; every
  // convolution is followed by batch norm (scale and shift), none has a bias; then the 512 -> 1000 layer.
  struct Conv {
    int64_t in, out, k, side;  // side: of the output
  };
  std::vector<Conv> convs = {{3, 64, 7, 112}};
  int64_t in = 64, side = 56;
  for (int64_t out : {64, 128, 256, 512}) {
    if (out != 64) side /= 2;
    for (int block = 0; block < 2; ++block) {
      convs.push_back({block == 0 ? in : out, out, 3, side});
      convs.push_back({out, out, 3, side});
      if (block == 0 && in != out) convs.push_back({in, out, 1, side});
    }
    in = out;
  }
  EXPECT_EQ(convs.size(), 20u);  // 1 + 16 + 3 projections
  int64_t params = 512 * 1000 + 1000, macs = 512 * 1000;
  for (const Conv& c : convs) {
    params += c.out * c.in * c.k * c.k + 2 * c.out;
    macs += c.side * c.side * c.out * c.in * c.k * c.k;
  }
  const apps::Summary s = apps::summarize_model("resnet18");
  EXPECT_EQ(s.total_params, params);
  EXPECT_EQ(s.total_macs, macs);
  EXPECT_EQ(params, 11689512);  // torchvision's resnet18: 11,689,512 parameters
  EXPECT_EQ(macs, 1814073344);  // and 1.81 G multiply-adds
}

TEST(Inspect, YoloV3TinySummaryMatchesAHandCount) {
  const apps::Summary s =
      apps::summarize_model(std::string(NABLA_SOURCE_DIR) + "/tests/yolo/fixtures/yolov3-tiny.cfg");
  // The convolutions of yolov3-tiny.cfg: in channels, filters, size, output side, batch-normalised.
  struct Conv {
    int64_t in, out, k, side;
    bool bn;
  };
  const std::vector<Conv> convs = {
      {3, 16, 3, 416, true},   {16, 32, 3, 208, true},   {32, 64, 3, 104, true},   {64, 128, 3, 52, true},
      {128, 256, 3, 26, true}, {256, 512, 3, 13, true},  {512, 1024, 3, 13, true}, {1024, 256, 1, 13, true},
      {256, 512, 3, 13, true}, {512, 255, 1, 13, false}, {256, 128, 1, 13, true},  {384, 256, 3, 26, true},
      {256, 255, 1, 26, false}};
  int64_t params = 0, macs = 0;
  for (const Conv& c : convs) {
    params += c.out * c.in * c.k * c.k + (c.bn ? 2 * c.out : c.out);  // BN: scale and shift; else bias
    macs += c.side * c.side * c.out * c.in * c.k * c.k;
  }
  EXPECT_EQ(params, 8852366);  // + 2 * 3184 running statistics = Darknet's 8,858,734 weights
  EXPECT_EQ(s.total_params, params);
  EXPECT_EQ(s.total_macs, macs);
  EXPECT_EQ(s.rows.size(), 24u);
  EXPECT_EQ(s.rows[16].type, "yolo");
  EXPECT_EQ(s.rows[22].shape, "[1,255,26,26]");
}

TEST(Inspect, CheckpointStatistics) {
  const fs::path path =
      fs::temp_directory_path() / ("nabla_inspect_" + std::to_string(getpid()) + ".safetensors");
  manual_seed(11);
  Tensor w = randn({4, 3});
  Tensor idx = randint(-5, 5, {7}, {.dtype = DType::i64});
  save_safetensors(path.string(), {{"layer.weight", w}, {"idx", idx}});
  const std::string out = apps::describe_checkpoint(path.string());
  fs::remove(path);
  char expect[256];
  std::snprintf(expect, sizeof expect, "%12.5g %12.5g %12.5g %12.5g", mean(w).item_double(),
                std_dev(w).item_double(), amin(w).item_double(), amax(w).item_double());
  EXPECT_NE(out.find("layer.weight"), std::string::npos) << out;
  EXPECT_NE(out.find(expect), std::string::npos) << out << "\nexpected " << expect;
  EXPECT_NE(out.find(" i64 "), std::string::npos) << out;
  EXPECT_NE(out.find("[4,3]"), std::string::npos) << out;
  EXPECT_NE(out.find("2 tensors, 19 elements"), std::string::npos) << out;
  test::expect_error([] { apps::describe_checkpoint("/nonexistent.safetensors"); },
                     {"/nonexistent.safetensors"});
}

TEST(Inspect, OpsAndGraph) {
  const std::string ops = apps::describe_ops();
  EXPECT_NE(ops.find("conv2d"), std::string::npos);
  // The backends column: "cpu" in a CPU-only build, "cpu,cuda" where the CUDA backend is compiled in.
  EXPECT_TRUE(ops.find(" cpu ") != std::string::npos || ops.find(" cpu,cuda ") != std::string::npos) << ops;
  const fs::path path = fs::temp_directory_path() / ("nabla_inspect_" + std::to_string(getpid()) + ".dot");
  const int64_t nodes = apps::write_step_graph("lenet5", path.string());
  std::ifstream f(path);
  const std::string dot((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  fs::remove(path);
  EXPECT_EQ(dot.rfind("digraph", 0), 0u) << dot.substr(0, 100);
  EXPECT_GE(nodes, 10);
  EXPECT_NE(dot.find("conv2d"), std::string::npos);
}

namespace {
std::pair<int, std::string> run_inspect(const std::string& args) {
  const std::string cmd = std::string(NABLA_BINARY_DIR) + "/nabla_inspect " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}
}  // namespace

TEST(Inspect, CommandLine) {
  if (!fs::exists(std::string(NABLA_BINARY_DIR) + "/nabla_inspect"))
    GTEST_SKIP() << "nabla_inspect not built";
  auto [rc, out] = run_inspect("summary --model lenet5");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("total params 61,706"), std::string::npos) << out;
  std::tie(rc, out) = run_inspect("summary --bogus 1");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("--bogus"), std::string::npos) << out;
  std::tie(rc, out) = run_inspect("summary --image-size -3");
  EXPECT_EQ(rc, 2) << out;
  std::tie(rc, out) = run_inspect("frobnicate");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("expected summary, checkpoint, ops, graph, trace-cost or memory"), std::string::npos)
      << out;
  std::tie(rc, out) = run_inspect("");
  EXPECT_EQ(rc, 2) << out;
  std::tie(rc, out) = run_inspect("summary --model resnet19");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("unknown model 'resnet19'"), std::string::npos) << out;
  std::tie(rc, out) = run_inspect("checkpoint");
  EXPECT_EQ(rc, 2) << out;
}

TEST(Inspect, TraceAndMemoryFromTheEnvironment) {
  if (!fs::exists(std::string(NABLA_BINARY_DIR) + "/nabla_inspect"))
    GTEST_SKIP() << "nabla_inspect not built";
  const fs::path path = fs::temp_directory_path() / ("nabla_env_trace_" + std::to_string(getpid()) + ".json");
  const std::string cmd = "NABLA_TRACE=" + path.string() + " NABLA_MEMORY=1 " +
                          std::string(NABLA_BINARY_DIR) +
                          "/nabla_inspect graph --model mlp --out /dev/null 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(WEXITSTATUS(pclose(p)), 0) << out;
  EXPECT_NE(out.find("trace written to " + path.string()), std::string::npos) << out;
  EXPECT_NE(out.find("cpu:0  allocated"), std::string::npos) << out;
  EXPECT_NE(out.find("(reached in '"), std::string::npos) << out;
  std::ifstream f(path);
  ASSERT_TRUE(f.good()) << out;
  const nlohmann::json j = nlohmann::json::parse(f);
  fs::remove(path);
  std::set<std::string> names;
  for (const auto& e : j.at("traceEvents")) names.insert(e.at("name").get<std::string>());
  EXPECT_TRUE(names.count("matmul") || names.count("linear") || names.count("gemm"))
      << j.dump().substr(0, 500);
  EXPECT_TRUE(names.count("randn"));
}

TEST(Memory, LiveTensorsOfATrainingStep) {
  const int64_t batch = 3 + static_cast<int64_t>(test::next_seed() % 6);
  const apps::StepMemory m = apps::measure_step_memory("mlp", batch, "cpu");
  auto mlp = models::make_classifier("mlp", 1, 28, 10);
  size_t param_bytes = 0;
  for (const Tensor& p : mlp->parameters()) param_bytes += p.nbytes();
  // After forward: the parameters, the batch, and activations made by ops, the logits [batch, 10] among them.
  bool logits = false;
  size_t by_ops = 0;
  for (const auto& t : m.after_forward.tensors) {
    logits |= t.shape == Shape{batch, 10} && t.creator != "user";
    if (t.creator != "user" && t.creator != "uniform" && t.creator != "randn" && t.creator != "randint")
      by_ops += t.nbytes;
  }
  EXPECT_TRUE(logits) << memory::snapshot_text(m.after_forward, 0);
  EXPECT_GT(by_ops, 0u);
  // After the step: parameters, gradients and momentum buffers (3x the parameters), plus the batch.
  EXPECT_GE(m.after_step.total_bytes, 3 * param_bytes) << memory::snapshot_text(m.after_step, 0);
  EXPECT_LT(m.after_step.total_bytes, 3 * param_bytes + 4 * static_cast<size_t>(batch) * 28 * 28 + 4096);
  const nlohmann::json j = nlohmann::json::parse(apps::step_memory_json(m));
  EXPECT_EQ(j.at("after_step").at("total_bytes").get<size_t>(), m.after_step.total_bytes);
  EXPECT_EQ(j.at("after_forward").at("count").get<size_t>(), m.after_forward.tensors.size());
  const std::string text = apps::format_step_memory(m);
  EXPECT_NE(text.find("after forward and loss"), std::string::npos) << text;
  EXPECT_FALSE(memory::live_tracking());
  test::expect_error([] { apps::measure_step_memory("mlp", 0, "cpu"); }, {"batch", ">= 1", "0"});
  test::expect_error([] { apps::measure_step_memory("resnet19", 2, "cpu"); }, {"unknown model 'resnet19'"});
}

TEST(Memory, LiveTensorsFromTheEnvironment) {
  if (!fs::exists(std::string(NABLA_BINARY_DIR) + "/nabla_inspect"))
    GTEST_SKIP() << "nabla_inspect not built";
  const fs::path path = fs::temp_directory_path() / ("nabla_env_live_" + std::to_string(getpid()) + ".json");
  const std::string cmd = "NABLA_MEMORY=live NABLA_MEMORY_SNAPSHOT=" + path.string() + " " +
                          std::string(NABLA_BINARY_DIR) +
                          "/nabla_inspect graph --model mlp --out /dev/null 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(WEXITSTATUS(pclose(p)), 0) << out;
  EXPECT_NE(out.find("cpu:0  allocated"), std::string::npos) << out;
  EXPECT_NE(out.find("live tensors (engine/memory.h)"), std::string::npos) << out;
  EXPECT_NE(out.find("by creator:"), std::string::npos) << out;
  EXPECT_NE(out.find("wrote the live-tensor snapshot to " + path.string()), std::string::npos) << out;
  std::ifstream f(path);
  ASSERT_TRUE(f.good()) << out;
  const nlohmann::json j = nlohmann::json::parse(f);
  fs::remove(path);
  size_t sum = 0;
  for (const auto& t : j.at("tensors")) sum += t.at("bytes").get<size_t>();
  EXPECT_EQ(sum, j.at("total_bytes").get<size_t>());
  // The memory command: its text, and its JSON file.
  const fs::path json = fs::temp_directory_path() / ("nabla_step_live_" + std::to_string(getpid()) + ".json");
  auto [rc, text] = run_inspect("memory --model mlp --batch 4 --rows 5 --json " + json.string());
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("after backward and the SGD step"), std::string::npos) << text;
  std::ifstream jf(json);
  ASSERT_TRUE(jf.good()) << text;
  const nlohmann::json step = nlohmann::json::parse(jf);
  fs::remove(json);
  EXPECT_EQ(step.at("batch"), 4);
  EXPECT_GT(step.at("after_forward").at("count").get<int64_t>(), 0);
  std::tie(rc, text) = run_inspect("memory --batch 0");
  EXPECT_EQ(rc, 2) << text;
}
