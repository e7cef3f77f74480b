// GPT-2 speed: a whole training step (forward, loss, backward, clip, AdamW) in tokens/s with its peak
// memory, and KV-cache generation in tokens/s at batch 1 and 32. benchmarks/gpt_torch.py runs the same
// model and shapes in plain PyTorch (scaled_dot_product_attention; eager and torch.compile);
// scripts/gpu_check.sh (GPU_CHECK_PART=gpt) prints both side by side.
//
//   ./build/bench_gpt --device cuda --amp bf16 --attention fused        # the defaults below
//   ./build/bench_gpt --device cpu --model tiny --batch 2 --context 32 --gen-batches 1 --gen-tokens 8
//
// Training: random ids (vocab 50257, as GPT-2), labels = the inputs shifted (the same cross-entropy as
// train_gpt), bf16 autocast with f32 weights and AdamW state, clip 1.0; `--warmup` untimed steps, then the
// median of `--steps` steps, each bracketed by device events. Peak memory: the allocator's high-water mark
// over the timed steps (0 on the CPU).
// Generation: a prompt of --gen-prompt random ids per row, then --gen-tokens greedy tokens with the KV cache
// (models/generate.h); tokens/s = batch x new tokens / wall time of the call (prefill included).
// One JSON line per measurement: {"impl": "nabla_composed" | "nabla_fused", "what": "train" | "generate",
// ...}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "algorithms/optim/clip.h"
#include "algorithms/optim/optimizer.h"
#include "apps/common/options.h"
#include "engine/device_runtime.h"
#include "models/generate.h"
#include "models/gpt.h"
#include "nabla.h"

using namespace nabla;
using json = nlohmann::json;

namespace {

struct Options {
  std::string device, model, amp, attention, gen_batches;
  int64_t batch, context, steps, warmup, gen_tokens, gen_prompt, vocab;
};

Tensor random_ids(int64_t b, int64_t t, int64_t vocab, uint64_t seed, Device dev) {
  Generator g{seed, 0};
  return randint(0, vocab, {b, t}, {.dtype = DType::i64}, &g).to(dev);
}

int run(const Options& o) {
  const Device dev = Device::parse(o.device);
  runtime::require_device(dev, ("--device " + o.device).c_str());
  const bool amp = o.amp == "bf16";
  models::GPTConfig c = models::GPTConfig::preset(o.model);
  c.vocab_size = o.vocab;
  c.n_positions = std::max(c.n_positions, o.context);
  c.resid_pdrop = c.embd_pdrop = c.attn_pdrop = 0;  // as gpt_torch.py (dropout 0: llm.c's setting)
  c.fused_attention = o.attention == "fused";
  const std::string impl = "nabla_" + o.attention;
  models::GPT model(c, 1);
  model.to(dev);
  model.train();
  std::vector<Tensor> params = model.parameters();
  optim::AdamW opt(optim::split_decay_groups(model.named_parameters(), 0.1, 6e-4),
                   {.lr = 6e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1});
  Tensor w = random_ids(o.batch, o.context + 1, c.vocab_size, 7, dev);
  Tensor x = w.narrow(1, 0, o.context).contiguous(), y = w.narrow(1, 1, o.context).contiguous();
  auto step = [&] {
    opt.zero_grad();
    Tensor loss;
    {
      AutocastGuard ac(DType::bf16, amp);
      // The model's own classifier + cross entropy (models/gpt.h: on CUDA over the vocabulary padded to a
      // multiple of 64, as llm.c), on all T positions against the shifted ids, as benchmarks/gpt_torch.py.
      loss = model.classifier_loss(model.hidden(x), y);
    }
    loss.backward();
    optim::clip_grad_norm(params, 1.0);
    opt.step();
    return loss;
  };
  for (int64_t i = 0; i < o.warmup; ++i) step();
  runtime::synchronize(dev);
  runtime::reset_peak_memory_stats(dev);
  std::vector<double> ms;
  double last_loss = 0;
  for (int64_t i = 0; i < o.steps; ++i) {
    runtime::Event a(dev), b(dev);
    a.record();
    Tensor loss = step();
    b.record();
    b.synchronize();
    ms.push_back(a.elapsed_ms(b));
    last_loss = loss.item_double();
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  const double peak_gib = static_cast<double>(runtime::memory_stats(dev).peak_allocated) / (1 << 30);
  std::printf("%s\n", json({{"impl", impl},
                            {"what", "train"},
                            {"model", o.model},
                            {"params", model.num_parameters()},
                            {"batch", o.batch},
                            {"context", o.context},
                            {"amp", o.amp},
                            {"ms", med},
                            {"tok_per_s", static_cast<double>(o.batch * o.context) / (med / 1e3)},
                            {"peak_mem_gib", peak_gib},
                            {"loss", last_loss}})
                          .dump()
                          .c_str());
  std::fflush(stdout);
  opt.zero_grad();
  // Generation.
  std::stringstream ss(o.gen_batches);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const int64_t b = std::stoll(item);
    Tensor p = random_ids(b, o.gen_prompt, c.vocab_size, 11, Device::cpu());
    auto pv = p.to_vector<int64_t>();
    std::vector<std::vector<int64_t>> prompts(static_cast<size_t>(b));
    for (int64_t r = 0; r < b; ++r)
      prompts[r].assign(pv.begin() + r * o.gen_prompt, pv.begin() + (r + 1) * o.gen_prompt);
    models::GenerationConfig g;
    g.max_new_tokens = o.gen_tokens;
    AutocastGuard ac(DType::bf16, amp);
    (void)models::generate(model, prompts, {.max_new_tokens = 2});  // warm-up
    runtime::synchronize(dev);
    const auto t0 = std::chrono::steady_clock::now();
    models::GenerationResult res = models::generate(model, prompts, g);
    runtime::synchronize(dev);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s\n", json({{"impl", impl},
                              {"what", "generate"},
                              {"batch", b},
                              {"prompt", o.gen_prompt},
                              {"new_tokens", o.gen_tokens},
                              {"s", s},
                              {"tok_per_s", static_cast<double>(b * o.gen_tokens) / s}})
                            .dump()
                            .c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  apps::OptionSet cli("bench_gpt", "GPT-2 training-step and generation speed (JSON lines).");
  cli.add("device", &o.device, "cuda", "cpu | cuda | cuda:N").value_name("DEV");
  cli.add("model", &o.model, "gpt2", "GPTConfig preset").one_of({"gpt2", "gpt2-medium", "tiny"});
  cli.add("vocab", &o.vocab, 50257, "vocabulary size (50304: llm.c's padded one)").in_range(2, 1 << 20);
  cli.add("amp", &o.amp, "bf16", "off | bf16 autocast").one_of({"off", "bf16"});
  cli.add("attention", &o.attention, "fused", "composed or fused causal attention")
      .one_of({"composed", "fused"});
  cli.add("batch", &o.batch, 16, "training batch").positive();
  cli.add("context", &o.context, 1024, "training sequence length").positive();
  cli.add("steps", &o.steps, 10, "timed training steps").positive();
  cli.add("warmup", &o.warmup, 3, "untimed training steps first").non_negative();
  cli.add("gen-batches", &o.gen_batches, "1,32", "generation batch sizes, comma-separated");
  cli.add("gen-tokens", &o.gen_tokens, 128, "new tokens per row").positive();
  cli.add("gen-prompt", &o.gen_prompt, 64, "prompt tokens per row").positive();
  cli.example(
      "--device cpu --model tiny --batch 2 --context 32 --gen-batches 1,2 --gen-tokens 8 --gen-prompt 4 "
      "--steps 2",
      "a CPU smoke run");
  if (auto code = cli.parse(argc, argv)) return *code;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpt: %s\n", e.what());
  }
  return 1;
}
