// BERT pretraining-step benchmark: full training steps of BertForPreTraining (forward, MLM + NSP loss,
// backward, AdamW step) on a random batch made once on the device, one JSON line per case, for comparison
// with benchmarks/bert_torch.py (Hugging Face's BertForPreTraining with SDPA attention, the same shapes and
// optimizer). scripts/gpu_check.sh part "bert" runs both and prints one table.
//
// Cases (the issue's): bert-base batch 32 sequence 128 in TF32 and in bf16 autocast, 4L-312 batch 64
// sequence 128 in TF32. The batch: token ids uniform over the non-reserved vocabulary, segments 0 then 1 at
// the middle, no padding, 15% of the positions labelled for the MLM (a fixed pattern), random NSP labels.
// Weights random (transformers' initialisation); dropout 0.1 as in training. AdamW lr 1e-4, wd 0.01 (not on
// biases and LayerNorm).
// Timing: `warmup` untimed steps, then `runs` steps; each step bracketed by CUDA events on the compute
// stream (on the CPU: the wall clock); the median step gives seq/s = batch / median. Peak memory: the
// caching allocator's high-water mark over the timed steps (0 on the CPU).
//
// Each line: {"impl": "nabla", "attention": "composed" | "fused", "name", "precision": "tf32" | "bf16" |
// "f32", "batch", "seq", "ms", "seq_per_s", "peak_mib"}; a case that throws prints its "error".
// Usage: bench_bert [--device cuda|cpu] [--runs N] [--warmup N] [--attention composed|fused|both]
//                   [--case NAME:PRESET:BATCH:SEQ:PRECISION]...   (the default cases without --case;
//                   --device cpu runs one tiny case, bert-tiny b4 s32 f32, unless cases are given)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "algorithms/optim/optimizer.h"
#include "engine/device_runtime.h"
#include "models/bert/heads.h"
#include "nabla.h"
#include "ops/autocast.h"

namespace {
using namespace nabla;
using json = nlohmann::json;

int g_runs = 20, g_warmup = 5;

struct Case {
  std::string name, preset;
  int64_t batch, seq;
  std::string precision;  // tf32 | bf16 | f32
};

double median_ms(Device dev, const std::function<void()>& fn) {
  for (int i = 0; i < g_warmup; ++i) fn();
  runtime::synchronize(dev);
  runtime::reset_peak_memory_stats(dev);
  const int runs = std::max(1, g_runs);
  std::vector<double> ms(static_cast<size_t>(runs));
  if (dev.is_cpu()) {
    for (int i = 0; i < runs; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      fn();
      ms[static_cast<size_t>(i)] =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
  } else {
    std::vector<std::unique_ptr<runtime::Event>> ev;
    for (int i = 0; i < 2 * runs; ++i) ev.push_back(std::make_unique<runtime::Event>(dev));
    for (int i = 0; i < runs; ++i) {
      ev[2 * i]->record();
      fn();
      ev[2 * i + 1]->record();
    }
    ev.back()->synchronize();
    for (int i = 0; i < runs; ++i) ms[static_cast<size_t>(i)] = ev[2 * i]->elapsed_ms(*ev[2 * i + 1]);
  }
  std::sort(ms.begin(), ms.end());
  return runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]);
}

void run(const Case& c, const std::string& attention, Device dev) {
  json j = {{"impl", "nabla"},  {"attention", attention}, {"name", c.name},     {"precision", c.precision},
            {"batch", c.batch}, {"seq", c.seq},           {"device", dev.str()}};
  try {
    runtime::set_tf32_enabled(c.precision == "tf32");
    manual_seed(1234);
    models::BertConfig cfg = models::BertConfig::preset(c.preset);
    cfg.attention_impl = attention;
    auto model = std::make_shared<models::BertForPreTraining>(cfg);
    model->to(dev);
    model->train();
    optim::AdamW opt(optim::split_decay_groups(model->named_parameters(), 0.01, 1e-4),
                     optim::AdamWOptions{.lr = 1e-4, .weight_decay = 0.01});
    const int64_t b = c.batch, s = c.seq;
    Generator g{42, 0};
    Tensor ids = randint(999, cfg.vocab_size, {b, s}, {.dtype = DType::i64}, &g);
    std::vector<double> types(static_cast<size_t>(b * s)), labels(static_cast<size_t>(b * s), -100.0);
    std::vector<int64_t> host_ids = ids.to_vector<int64_t>();
    for (int64_t i = 0; i < b * s; ++i) {
      types[static_cast<size_t>(i)] = (i % s) >= s / 2 ? 1.0 : 0.0;
      if ((i * 7 + 3) % 20 < 3 && i % s != 0)
        labels[static_cast<size_t>(i)] = static_cast<double>(host_ids[static_cast<size_t>(i)]);
    }
    Tensor input_ids = ids.to(dev);
    Tensor type_ids = from_vector(types, {b, s}, {.dtype = DType::i64, .device = dev});
    Tensor mask = ones({b, s}, {.dtype = DType::i64, .device = dev});
    Tensor mlm = from_vector(labels, {b, s}, {.dtype = DType::i64, .device = dev});
    Tensor nsp = randint(0, 2, {b}, {.dtype = DType::i64}, &g).to(dev);
    const bool bf16 = c.precision == "bf16";
    auto step = [&] {
      opt.zero_grad();
      Tensor loss;
      {
        AutocastGuard autocast(DType::bf16, bf16);
        loss = model->loss(input_ids, type_ids, mask, mlm, nsp);
      }
      loss.backward();
      opt.step();
    };
    const double ms = median_ms(dev, step);
    j["ms"] = ms;
    j["seq_per_s"] = static_cast<double>(b) / (ms * 1e-3);
    j["peak_mib"] = static_cast<double>(runtime::memory_stats(dev).peak_allocated) / (1 << 20);
    j["runs"] = g_runs;
  } catch (const std::exception& e) {
    j["error"] = e.what();
  }
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

Case parse_case(const std::string& spec) {
  std::vector<std::string> f;
  std::stringstream in(spec);
  std::string part;
  while (std::getline(in, part, ':')) f.push_back(part);
  if (f.size() != 5) {
    std::fprintf(stderr, "bench_bert: --case %s: expected NAME:PRESET:BATCH:SEQ:PRECISION\n", spec.c_str());
    std::exit(2);
  }
  return {f[0], f[1], std::atoll(f[2].c_str()), std::atoll(f[3].c_str()), f[4]};
}

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cuda", attention = "both";
  std::vector<Case> cases;
  for (int i = 1; i < argc; ++i) {
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_bert: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (std::strcmp(argv[i], "--runs") == 0)
      g_runs = std::atoi(value("--runs"));
    else if (std::strcmp(argv[i], "--warmup") == 0)
      g_warmup = std::atoi(value("--warmup"));
    else if (std::strcmp(argv[i], "--device") == 0)
      device = value("--device");
    else if (std::strcmp(argv[i], "--attention") == 0)
      attention = value("--attention");
    else if (std::strcmp(argv[i], "--case") == 0)
      cases.push_back(parse_case(value("--case")));
    else {
      std::fprintf(
          stderr,
          "usage: bench_bert [--device cuda|cpu] [--runs N] [--warmup N] [--attention composed|fused|both] "
          "[--case NAME:PRESET:BATCH:SEQ:PRECISION]... (got %s)\n",
          argv[i]);
      return 2;
    }
  }
  const Device dev = Device::parse(device);
  if (!runtime::available(dev.type)) {
    std::fprintf(stderr, "bench_bert: no %s device\n", device.c_str());
    return 1;
  }
  if (cases.empty()) {
    if (dev.is_cpu())
      cases = {{"bert_tiny_b4_s32", "bert-tiny", 4, 32, "f32"}};
    else
      cases = {{"bert_base_b32_s128", "bert-base", 32, 128, "tf32"},
               {"bert_base_b32_s128", "bert-base", 32, 128, "bf16"},
               {"4l312_b64_s128", "4L-312", 64, 128, "tf32"}};
  }
  std::vector<std::string> impls;
  if (attention == "both")
    impls = {"composed", "fused"};
  else
    impls = {attention};
  for (const Case& c : cases)
    for (const std::string& a : impls) run(c, a, dev);
  return 0;
}
