// train_gpt: pretrains a GPT-2-style causal language model on token shards, or instruction-tunes one with
// LoRA (--mode sft). docs/gpt.md has the commands and figures.
//
//   ./build/train_gpt --model small --train-data shards/train_*.bin --val-data shards/val_*.bin \
//       --context 256 --batch-size 32 --max-steps 2000 --lr 1e-3 --device cuda --amp bf16
//   ./build/train_gpt --mode sft --init-from run/hf --sft-data chat.jsonl --adapter-out run/adapter
//
// Pretraining reads like llm.c's main: options -> data (token windows, data/token_shards.h) -> model,
// AdamW, schedule -> resume -> loop {grad-accum x (forward, loss / accum, backward), clip, lr, step, log;
// every --val-every steps the validation loss, every --sample-every a sample, every --checkpoint-every a
// checkpoint} -> final validation, checkpoint, --save-pretrained.
//
// Exact resume: the batch of step s, micro-step m is a pure function of (seed, s, m) (random windows:
// philox draws keyed by the step; sequential windows: their index), so a checkpoint needs only the step
// besides model, AdamW moments and the generator (dropout). Resumed runs are bit-identical to uninterrupted
// ones on the CPU (tests/gpt/test_train_gpt.cpp).
//
// Data-parallel (mpirun -n W, or the launcher of docs/distributed.md): --batch-size is the global
// micro-batch, as in every binary (dist/session.h); each rank takes --batch-size / W of its rows
// (apps/common/gpt_batches.h: rank r the rows r*b ..), the gradients are averaged once per step after the
// last micro-batch (apps::TrainStep::run_accumulated), so a step trains on --batch-size x --grad-accum
// sequences whatever W is, and W ranks give the losses and parameters of one process up to f32 summation
// order (tests/dist/train_gpt_mpirun.sh). The logged and validation losses are means over all ranks; rank
// 0 alone prints, samples, writes metrics and checkpoints. Dropout masks are drawn per rank from the same
// generator, so with --dropout > 0 W ranks are not the same run as one process.
//
// Vocabulary: the shards' ids (GPT-2's 50,257) padded up to a multiple of 64 (50,304, as llm.c does: faster
// GEMMs), so the chat markers <|system|> <|user|> <|assistant|> <|end|> (50257..50260, data/chat.h) have
// embedding rows. --init-from a transformers GPT-2 directory pads its 50,257 rows the same way, with new
// rows drawn N(0, 0.02) from --seed.
//
// SFT (--mode sft): the base model from --init-from (a save_pretrained folder, e.g. what --save-pretrained
// wrote), LoRA adapters on --lora-targets (models/nn/lora.h: every other parameter frozen), the examples of
// --sft-data (JSONL, data/chat.h) in the chat template with the loss on the assistant tokens only, rows
// drawn with philox keyed by the step; the adapter is saved in PEFT's layout to --adapter-out. A step's
// loss is the mean over all its response tokens (every micro-batch, every rank).
//
// Exit codes: 0 done; 1 a failure; 2 a bad command line; 130 / 143 stopped by SIGINT / SIGTERM.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>

#include "algorithms/optim/optimizer.h"
#include "algorithms/optim/schedule.h"
#include "apps/common/gpt_batches.h"
#include "apps/common/options.h"
#include "apps/common/run.h"
#include "apps/common/train_step.h"
#include "data/chat.h"
#include "data/token_shards.h"
#include "data/tokenizer/bpe.h"
#include "engine/safetensors.h"
#include "models/generate.h"
#include "models/gpt.h"
#include "nabla.h"

using namespace nabla;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string mode, model, attention, init_from, save_pretrained;
  std::string train_data, val_data, sampling, encoder, vocab_bpe, sample_prompt;
  int64_t context, vocab_size, batch_size, grad_accum, max_steps, warmup_steps;
  int64_t val_every, val_batches, sample_every, sample_tokens, checkpoint_every, stop_at_step;
  double lr, min_lr_ratio, weight_decay, beta1, beta2, clip, dropout;
  // SFT
  std::string sft_data, lora_targets, adapter_out;
  int64_t lora_r;
  double lora_alpha, lora_dropout;
  apps::RunOptions run;
};

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// The model presets: gpt2 (124M) and small ones for experiments and CI. n_positions = --context for the
// small ones, at least 1024 for gpt2.
models::GPTConfig preset(const Options& o, int64_t vocab) {
  models::GPTConfig c;
  if (o.model == "gpt2") {
    c = models::GPTConfig::gpt2();
  } else if (o.model == "small") {  // 6 layers, 384 wide, 6 heads: ~10.7M parameters besides the embeddings
    c.n_layer = 6, c.n_embd = 384, c.n_head = 6;
  } else if (o.model == "mini") {  // 4 layers, 128 wide, 4 heads
    c.n_layer = 4, c.n_embd = 128, c.n_head = 4;
  } else if (o.model == "tiny") {  // CI: 2 layers, 32 wide, 4 heads
    c.n_layer = 2, c.n_embd = 32, c.n_head = 4;
  } else {
    fail("--model ", o.model, ": expected gpt2, small, mini or tiny");
  }
  c.n_positions = o.model == "gpt2" ? std::max<int64_t>(1024, o.context) : o.context;
  c.vocab_size = vocab;
  c.resid_pdrop = c.embd_pdrop = c.attn_pdrop = o.dropout;
  c.fused_attention = o.attention == "fused";
  return c;
}

// A transformers GPT-2 folder (config.json + model.safetensors) in a model of `vocab` >= its rows: the
// extra rows of wte are drawn N(0, initializer_range) from `seed`.
std::shared_ptr<models::GPT> load_init(const Options& o, int64_t vocab) {
  models::GPTConfig c = models::GPTConfig::from_file(o.init_from + "/config.json");
  NABLA_CHECK(vocab >= c.vocab_size, "--vocab-size ", vocab, " is smaller than ", o.init_from, "'s ",
              c.vocab_size);
  const int64_t file_vocab = c.vocab_size;
  c.vocab_size = vocab;
  c.resid_pdrop = c.embd_pdrop = c.attn_pdrop = o.dropout;
  c.fused_attention = o.attention == "fused";
  NABLA_CHECK(c.n_positions >= o.context, "--context ", o.context, " exceeds ", o.init_from,
              "'s n_positions ", c.n_positions);
  auto model = std::make_shared<models::GPT>(c, o.run.seed);
  SafetensorsFile f = load_safetensors(o.init_from + "/model.safetensors");
  for (auto& [name, t] : f.tensors)
    if ((name == "transformer.wte.weight" || name == "wte.weight" || name == "lm_head.weight") &&
        t.dim() == 2 && t.size(0) == file_vocab && vocab > file_vocab) {
      Tensor own = model->transformer->wte->weight.detach();  // rows file_vocab.. keep the model's init
      t = cat({t.to(own.dtype()), own.narrow(0, file_vocab, vocab - file_vocab)}, 0);
    }
  model->load_hf_state_dict(f.tensors);
  return model;
}

data::Gpt2Tokenizer load_tokenizer(const Options& o, data::ChatTokens* ct) {
  data::Gpt2Tokenizer tok = data::Gpt2Tokenizer::from_files(o.encoder, o.vocab_bpe);
  *ct = data::add_chat_tokens(tok);
  return tok;
}

// -log(p) per token of the unigram distribution: the entropy of the training tokens, and the cross-entropy
// of the validation tokens under the training frequencies (add-one smoothed), in nats.
std::pair<double, double> unigram_baseline(const data::TokenWindows& train, const data::TokenWindows* val) {
  const std::vector<int64_t> counts = train.unigram_counts();
  double n = 0;
  for (int64_t c : counts) n += static_cast<double>(c);
  double h = 0;
  for (int64_t c : counts)
    if (c > 0) h -= static_cast<double>(c) / n * std::log(static_cast<double>(c) / n);
  double xent = std::nan("");
  if (val) {
    const double smoothed = n + static_cast<double>(counts.size());
    double sum = 0, m = 0;
    for (auto& s : val->shards())
      for (uint16_t id : s->tokens()) {
        const double c = id < counts.size() ? static_cast<double>(counts[id]) : 0.0;
        sum -= std::log((c + 1) / smoothed);
        ++m;
      }
    xent = m > 0 ? sum / m : xent;
  }
  return {h, xent};
}

// Next-token cross-entropy: logits of inputs [B, T] against targets [B, T] (already shifted by one; -100
// ignored). sum_scale > 0: the sum over the targets times sum_scale instead of their mean.
Tensor lm_loss(models::GPT& model, const Tensor& inputs, const Tensor& targets, double sum_scale = 0) {
  const int64_t b = inputs.size(0), t = inputs.size(1);
  Tensor logits = model.logits(inputs);
  Tensor flat = logits.reshape({b * t, logits.size(2)}), labels = targets.contiguous().reshape({b * t});
  if (sum_scale > 0)
    return cross_entropy(flat, labels, {.reduction = Reduction::sum, .ignore_index = -100}) * sum_scale;
  return cross_entropy(flat, labels, {.ignore_index = -100});
}

// The targets that count (not -100) in a CPU tensor of labels.
int64_t counted_targets(const Tensor& labels) {
  const std::vector<int64_t> v = labels.contiguous().to_vector<int64_t>();
  return static_cast<int64_t>(std::count_if(v.begin(), v.end(), [](int64_t y) { return y != -100; }));
}

// The mean next-token loss of the first --val-batches global batches of sequential validation windows,
// each rank taking its rows (the ranks' means averaged: every row has T targets).
double validation_loss(models::GPT& model, const apps::GptBatches& batches, const apps::BatchSlice& slice,
                       const Options& o, const dist::Session& ds, Device dev, bool amp) {
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  double sum = 0;
  const int64_t n = batches.val_batches(o.val_batches, slice);
  for (int64_t i = 0; i < n; ++i) {
    Tensor w = batches.val_batch(i, slice).to(dev);
    const int64_t t = w.size(1) - 1;
    AutocastGuard ac(DType::bf16, amp);
    sum += lm_loss(model, w.narrow(1, 0, t).contiguous(), w.narrow(1, 1, t).contiguous()).item_double();
  }
  ds.sum(sum);
  model.train(was_training);
  return sum / static_cast<double>(n * slice.world);
}

void print_sample(models::GPT& model, const data::Gpt2Tokenizer& tok, const Options& o, int64_t step) {
  std::vector<int64_t> prompt;
  if (o.sample_prompt.empty()) {
    prompt.push_back(tok.eot_id());
  } else {
    for (int32_t id : tok.encode(o.sample_prompt)) prompt.push_back(id);
  }
  const int64_t room = model.config().n_positions - static_cast<int64_t>(prompt.size());
  if (room <= 0) return;
  models::GenerationConfig g;
  g.max_new_tokens = std::min(o.sample_tokens, room);
  g.do_sample = true;
  g.temperature = 0.8;
  g.top_k = 40;
  g.seed = o.run.seed + static_cast<uint64_t>(step);
  g.stop_token_ids = {tok.eot_id()};
  g.decode = [&](const std::vector<int64_t>& ids) {
    std::vector<int32_t> v;
    for (int64_t id : ids)
      if (id < tok.vocab_size()) v.push_back(static_cast<int32_t>(id));
    return tok.decode(v);
  };
  models::GenerationResult r = models::generate(model, {prompt}, g);
  std::printf("sample at step %lld: %s%s\n", static_cast<long long>(step), o.sample_prompt.c_str(),
              r.texts[0].c_str());
  std::fflush(stdout);
}

std::optional<int> parse(int argc, char** argv, Options& o) {
  apps::OptionSet cli("train_gpt", "Pretrains a GPT on token shards, or instruction-tunes one with LoRA.");
  cli.section("Model");
  cli.add("mode", &o.mode, "pretrain", "pretrain: next-token loss on shards; sft: LoRA instruction tuning")
      .one_of({"pretrain", "sft"});
  cli.add("model", &o.model, "small", "preset: gpt2 (124M), small (6x384), mini (4x128), tiny (2x32)")
      .one_of({"gpt2", "small", "mini", "tiny"});
  cli.add("attention", &o.attention, "fused",
          "causal attention: composed (matmul + mask + softmax + matmul) or fused (ops/attention.h)")
      .one_of({"composed", "fused"});
  cli.add("context", &o.context, 256, "tokens per training sequence (T)").in_range(2, 1 << 20).unit("tokens");
  cli.add("vocab-size", &o.vocab_size, 0,
          "embedding rows (0: the shards' vocabulary padded to a multiple of 64; 50304 for GPT-2's)")
      .in_range(0, 1 << 24);
  cli.add("dropout", &o.dropout, 0.0, "dropout of embeddings, attention and residuals")
      .in_range(0, 1, apps::Bound::open_high);
  cli.add("init-from", &o.init_from, "",
          "start from a transformers GPT-2 folder (config.json, model.safetensors)")
      .value_name("DIR");
  cli.add("save-pretrained", &o.save_pretrained, "",
          "at the end, write the model as a transformers folder (serve_gpt --model-dir reads it)")
      .value_name("DIR");
  cli.section("Data");
  cli.add("train-data", &o.train_data, "", "training shards: a .bin file, a folder or a glob")
      .value_name("PATTERN");
  cli.add("val-data", &o.val_data, "", "validation shards (optional)").value_name("PATTERN");
  cli.add("sampling", &o.sampling, "random", "random windows, or sequential ones (tiling the shards)")
      .one_of({"random", "sequential"});
  cli.add("encoder", &o.encoder, ".cache/tokenizers/gpt2/encoder.json",
          "GPT-2's encoder.json (samples and --mode sft; scripts/prepare_tokenizers.sh)")
      .value_name("FILE");
  cli.add("vocab-bpe", &o.vocab_bpe, ".cache/tokenizers/gpt2/vocab.bpe", "GPT-2's vocab.bpe")
      .value_name("FILE");
  cli.section("Training");
  cli.add("batch-size", &o.batch_size, 8,
          "sequences per micro-batch over all ranks (each of W data-parallel ranks takes batch / W); a step "
          "trains on batch x grad-accum sequences")
      .in_range(1, 1 << 20)
      .unit("sequences");
  cli.add("grad-accum", &o.grad_accum, 1, "micro-batches per optimizer step").in_range(1, 1 << 20);
  cli.add("max-steps", &o.max_steps, 1000, "optimizer steps").positive().unit("steps");
  cli.add("lr", &o.lr, 6e-4, "peak learning rate").positive();
  cli.add("min-lr-ratio", &o.min_lr_ratio, 0.1, "cosine decay ends at this fraction of --lr").in_range(0, 1);
  cli.add("warmup-steps", &o.warmup_steps, 100, "linear warm-up").non_negative().unit("steps");
  cli.add("weight-decay", &o.weight_decay, 0.1, "AdamW weight decay (not on biases and LayerNorm)")
      .non_negative();
  cli.add("beta1", &o.beta1, 0.9, "AdamW beta1").in_range(0, 1, apps::Bound::open_high);
  cli.add("beta2", &o.beta2, 0.95, "AdamW beta2").in_range(0, 1, apps::Bound::open_high);
  cli.add("clip", &o.clip, 1.0, "clip gradients to this global L2 norm (0: off)").non_negative();
  cli.add("stop-at-step", &o.stop_at_step, 0,
          "stop after this step as a signal would (checkpoint, exit 143); for tests and preemptible jobs (0: "
          "off)")
      .non_negative();
  cli.section("Evaluation, samples, checkpoints");
  cli.add("val-every", &o.val_every, 100, "validation loss every N steps (and at the end)").positive();
  cli.add("val-batches", &o.val_batches, 20, "validation micro-batches (sequential windows)").positive();
  cli.add("sample-every", &o.sample_every, 0,
          "print a sample every N steps (0: only at the end, if a tokenizer)")
      .non_negative();
  cli.add("sample-tokens", &o.sample_tokens, 64, "tokens per sample").positive();
  cli.add("sample-prompt", &o.sample_prompt, "", "text the samples continue (default: <|endoftext|>)");
  cli.add("checkpoint-every", &o.checkpoint_every, 0, "write --checkpoint every N steps (0: --val-every)")
      .non_negative();
  cli.section("Instruction tuning (--mode sft)");
  cli.add("sft-data", &o.sft_data, "", "JSONL: {instruction, input, output} or {messages: [...]} per line")
      .value_name("FILE");
  cli.add("lora-r", &o.lora_r, 8, "LoRA rank").in_range(1, 4096);
  cli.add("lora-alpha", &o.lora_alpha, 16, "LoRA alpha (scaling alpha / r)").positive();
  cli.add("lora-dropout", &o.lora_dropout, 0.0, "dropout on the adapters' input")
      .in_range(0, 1, apps::Bound::open_high);
  cli.add("lora-targets", &o.lora_targets, "c_attn,c_proj", "layers that get adapters (PEFT's name rule)");
  cli.add("adapter-out", &o.adapter_out, "", "folder for adapter_model.safetensors + adapter_config.json")
      .value_name("DIR");
  apps::add_run_options(cli, o.run);
  cli.example("--model tiny --train-data shards/train_000.bin --max-steps 50 --context 64",
              "a tiny model for a smoke test");
  cli.example(
      "--model small --train-data shards/train_*.bin --val-data shards/val_*.bin --context 256 --batch-size "
      "32 "
      "--max-steps 3000 --lr 1e-3 --sample-every 500 --device cuda --amp bf16 --save-pretrained run/hf",
      "the experiment of scripts/gpt_experiments.sh");
  cli.example(
      "--model gpt2 --context 1024 --batch-size 16 --grad-accum 32 --train-data shards --device cuda --amp "
      "bf16",
      "GPT-2 124M with 0.5M-token steps");
  cli.example("--model small --train-data shards/train_*.bin --batch-size 32 --grad-accum 2 --max-steps 100",
              "under mpirun -n 4: data-parallel, 4 ranks of 8 sequences per micro-batch; a step trains on 64 "
              "sequences "
              "as in one process");
  cli.example(
      "--mode sft --init-from run/hf --sft-data chat.jsonl --adapter-out run/adapter --max-steps 200 --lr "
      "1e-3",
      "LoRA instruction tuning of that model");
  return cli.parse(argc, argv, [&] {
    apps::check_run_options(o.run);
    if (o.mode == "pretrain") {
      NABLA_CHECK(!o.train_data.empty(), "--train-data is required for --mode pretrain");
    } else {
      NABLA_CHECK(!o.sft_data.empty(), "--sft-data is required for --mode sft");
      NABLA_CHECK(!o.init_from.empty(), "--mode sft needs a base model: --init-from DIR");
    }
  });
}

int run(Options& o) {
  // 1. set-up
  const int64_t global_batch = o.batch_size;
  apps::Run r = apps::Run::start(o.run, o.batch_size);  // --batch-size becomes this rank's share
  const dist::Session& ds = r.session();
  const apps::BatchSlice slice{.rows = o.batch_size, .rank = ds.rank(), .world = ds.world_size()};
  const Device dev = r.device();
  const bool sft = o.mode == "sft";

  // 2. data
  apps::GptBatches batches;
  batches.seed = o.run.seed;
  batches.random = o.sampling == "random";
  data::ChatTokens ct;
  std::unique_ptr<data::Gpt2Tokenizer> tok;
  if (sft || std::filesystem::exists(o.encoder))
    tok = std::make_unique<data::Gpt2Tokenizer>(load_tokenizer(o, &ct));
  int64_t data_vocab = 0;
  if (!sft) {
    batches.train = std::make_unique<data::TokenWindows>(data::list_token_shards(o.train_data), o.context);
    if (!o.val_data.empty())
      batches.val = std::make_unique<data::TokenWindows>(data::list_token_shards(o.val_data), o.context);
    data_vocab = batches.train->vocab_size();
    if (tok) data_vocab = std::max<int64_t>(data_vocab, tok->vocab_size());
  } else {
    std::vector<data::SftExample> examples;
    for (auto& conv : data::read_instruction_file(o.sft_data))
      examples.push_back(data::tokenize_chat(*tok, ct, conv));
    int64_t dropped = 0;
    batches.sft = data::pack_sft_examples(examples, o.context + 1, ct.eot, &dropped);
    NABLA_CHECK(batches.sft.rows > 0, o.sft_data, ": no example keeps a response token within --context ",
                o.context);
    std::printf(
        "sft data: %lld examples of %lld tokens%s\n", static_cast<long long>(batches.sft.rows),
        static_cast<long long>(o.context),
        dropped ? str_cat(" (", dropped, " dropped: no response token within the context)").c_str() : "");
    data_vocab = tok->vocab_size();
  }
  const int64_t vocab = o.vocab_size > 0 ? o.vocab_size : round_up(data_vocab, 64);
  NABLA_CHECK(vocab >= data_vocab, "--vocab-size ", vocab, " is below the data's vocabulary ", data_vocab);

  // 3. model, optimizer, schedule
  std::shared_ptr<models::GPT> model =
      o.init_from.empty() ? std::make_shared<models::GPT>(preset(o, vocab), o.run.seed) : load_init(o, vocab);
  NABLA_CHECK(model->config().n_positions >= o.context, "--context ", o.context, " exceeds n_positions ",
              model->config().n_positions);
  nn::LoraConfig lora;
  if (sft) {
    lora.r = o.lora_r, lora.lora_alpha = o.lora_alpha, lora.lora_dropout = o.lora_dropout;
    lora.target_modules = apps::split_list(o.lora_targets);
    lora.fan_in_fan_out = true;
    lora.base_model_name_or_path = o.init_from;
    lora.seed = o.run.seed;
    const auto adapted = nn::apply_lora(*model, lora);
    std::printf("lora: r %lld, alpha %g on %zu layers (%s); %s trainable parameters of %s\n",
                static_cast<long long>(o.lora_r), o.lora_alpha, adapted.size(), o.lora_targets.c_str(),
                apps::with_commas(static_cast<double>(model->num_parameters(true))).c_str(),
                apps::with_commas(static_cast<double>(model->num_parameters())).c_str());
  }
  model->to(dev);
  NamedTensors trainable;
  for (auto& [name, t] : model->named_parameters())
    if (t.requires_grad()) trainable.emplace_back(name, t);
  optim::AdamW optimizer(
      optim::split_decay_groups(trainable, o.weight_decay, o.lr),
      {.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = 1e-8, .weight_decay = o.weight_decay});
  int64_t warmup = o.warmup_steps;
  if (warmup >= o.max_steps) warmup = o.max_steps / 10;
  const optim::Schedule schedule =
      optim::Schedule::parse(str_cat("cosine:end=", o.lr * o.min_lr_ratio),
                             {.base_lr = o.lr, .total_steps = o.max_steps, .warmup_steps = warmup});
  // SFT: a step's loss is the mean over ALL its response tokens (every micro-batch of every rank), as one
  // process with the whole batch computes it; micro-batches and ranks hold different numbers of them, so
  // each micro-batch's loss is its sum times W * accum / (the step's tokens): TrainStep's 1/accum and the
  // all-reduce's 1/W then leave sum / tokens. Pretraining rows all have T targets: plain means.
  double sft_scale = 0;
  apps::ForwardFn forward = [&model, &sft_scale](nn::Module&, const Tensor& inputs, const Tensor& targets) {
    apps::ForwardOutput f;
    f.loss = lm_loss(*model, inputs, targets, sft_scale);
    return f;
  };
  apps::TrainStep train_step(*model, optimizer, ds, forward, {.amp = r.amp(), .clip = o.clip});
  const int64_t t_len = o.context;
  const int64_t tokens_per_step = global_batch * o.grad_accum * t_len;
  std::printf(
      "model %s: %s parameters (vocab %lld, context %lld, %s attention) | %s | %s tokens/step "
      "(%lld x %lld x %lld%s) | AdamW, %s%s\n",
      o.init_from.empty() ? o.model.c_str() : o.init_from.c_str(),
      apps::with_commas(static_cast<double>(model->num_parameters())).c_str(), static_cast<long long>(vocab),
      static_cast<long long>(o.context), o.attention.c_str(),
      sft ? str_cat("sft on ", o.sft_data).c_str()
          : str_cat(apps::with_commas(static_cast<double>(batches.train->num_tokens())), " train tokens",
                    batches.val
                        ? str_cat(", ", apps::with_commas(static_cast<double>(batches.val->num_tokens())),
                                  " val tokens")
                        : "")
                .c_str(),
      apps::with_commas(static_cast<double>(tokens_per_step)).c_str(), static_cast<long long>(global_batch),
      static_cast<long long>(o.grad_accum), static_cast<long long>(t_len),
      ds.active() ? str_cat("; ", ds.world_size(), " ranks x ", o.batch_size, " sequences").c_str() : "",
      schedule.str().c_str(), r.amp() ? " | bf16 autocast" : "");

  // 4. resume (the data position is the step: see the top of the file)
  apps::TrainState state = r.resume(*model, optimizer, o.max_steps, 1);
  state.extra["mode"] = o.mode;
  state.extra["model"] = o.init_from.empty() ? o.model : o.init_from;
  apps::TrainLog log(r, o.max_steps, 1, "tok/s");
  if (!sft && state.step == 0 && r.is_main()) {
    const auto [h, xent] = unigram_baseline(*batches.train, batches.val.get());
    std::printf("unigram baseline: entropy of the training tokens %.4f nats/token%s\n", h,
                std::isnan(xent) ? "" : str_cat("; on the validation tokens ", xent, " nats/token").c_str());
    log.write({{"kind", "unigram"},
               {"train_entropy", h},
               {"val_xent", std::isnan(xent) ? nlohmann::json() : nlohmann::json(xent)}});
  }
  std::fflush(stdout);
  const int64_t ck_every = o.checkpoint_every > 0 ? o.checkpoint_every : o.val_every;
  auto snapshot = [&](int64_t step) {
    apps::TrainState s = state;
    s.step = step;
    s.loader = {0, step};
    s.rng = default_generator();
    return s;
  };
  auto validate = [&](int64_t step) {
    if (!batches.val) return;
    const double v = validation_loss(*model, batches, slice, o, ds, dev, r.amp());
    log.finish_line();
    std::printf("step %lld | val loss %.4f | %s elapsed\n", static_cast<long long>(step), v,
                apps::format_duration(log.elapsed()).c_str());
    std::fflush(stdout);
    log.write({{"kind", "val"}, {"step", step}, {"val_loss", v}, {"elapsed_s", log.elapsed()}});
  };

  // 5. the loop
  model->train();
  int64_t step = state.step;
  while (step < o.max_steps) {
    const auto t0 = Clock::now();
    const double lr = schedule.lr_at(step);
    std::vector<std::pair<Tensor, Tensor>> micro;
    for (int64_t m = 0; m < o.grad_accum; ++m) micro.push_back(batches.get(step, m, o.grad_accum, slice));
    if (sft) {
      double tokens = 0;
      for (auto& [ids, labels] : micro) tokens += static_cast<double>(counted_targets(labels));
      ds.sum(tokens);
      sft_scale = static_cast<double>(ds.world_size() * o.grad_accum) / std::max(tokens, 1.0);
    }
    const apps::StepResult res = train_step.run_accumulated(
        o.grad_accum,
        [&](int64_t m) {
          return std::pair{micro[m].first.to(dev), micro[m].second.to(dev)};
        },
        lr);
    double loss_sum = res.loss;
    ds.sum(loss_sum);  // the mean over the ranks (the same number of rows each)
    loss_sum /= static_cast<double>(ds.world_size());
    const double norm = res.grad_norm;
    apps::check_loss(loss_sum, ++step, o.run.allow_nonfinite);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    log.step(step, 0, loss_sum, lr, tokens_per_step, secs);
    if (log.records(step)) log.write({{"kind", "grad"}, {"step", step}, {"grad_norm", norm}});
    if (step % o.val_every == 0 && step < o.max_steps) validate(step);
    if (tok && r.is_main() && o.sample_every > 0 && step % o.sample_every == 0 && step < o.max_steps) {
      log.finish_line();
      print_sample(*model, *tok, o, step);
    }
    if (step % ck_every == 0 && step < o.max_steps) r.save(*model, optimizer, snapshot(step));
    if (o.stop_at_step > 0 && step == o.stop_at_step && step < o.max_steps) {
      log.finish_line();
      std::printf("stopping at step %lld (--stop-at-step)\n", static_cast<long long>(step));
      r.save(*model, optimizer, snapshot(step));
      return apps::kExitSignalBase + 15;
    }
    if (r.stop_requested(step)) {
      log.finish_line();
      r.save(*model, optimizer, snapshot(step));
      return r.stop_code();
    }
  }
  log.finish_line();

  // 6. the end: validation, a sample, checkpoint, exports
  validate(step);
  if (tok && !sft && r.is_main()) print_sample(*model, *tok, o, step);
  r.save(*model, optimizer, snapshot(step));
  log.summary();
  if (!o.save_pretrained.empty() && r.is_main()) {
    model->to(Device::cpu());
    if (sft) nn::merge_lora(*model);  // a standalone model: the adapters folded into the weights
    model->save_pretrained(o.save_pretrained);
    if (sft) nn::unmerge_lora(*model);
    std::printf("model written to %s (transformers layout)\n", o.save_pretrained.c_str());
  }
  if (sft && !o.adapter_out.empty() && r.is_main()) {
    model->to(Device::cpu());
    nn::save_lora(*model, lora, o.adapter_out);
    std::printf("adapter written to %s (PEFT layout)\n", o.adapter_out.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (std::optional<int> code = parse(argc, argv, o)) return *code;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_gpt: %s\n", e.what());
  }
  return apps::kExitFailure;
}
