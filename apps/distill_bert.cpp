// distill_bert: knowledge distillation of BERT classifiers on GLUE-style TSV tasks (docs/skd.md): the
// student alone, single-teacher KD, SKD (one teacher drawn per step: UD, TRD, SRD), WKD (a weighted average
// of the teachers' soft labels), and the average-of-teachers ensemble; TAKD is kd run twice.
//
//   ./build/train_bert --mode finetune ... --best-dir out/t0          # teachers: fine-tuned BERT folders
//   ./build/distill_bert --mode skd --teachers out/t0,out/t1,out/t2 --sampling trd --layers 4 --hidden 312
//   ...
//   ./build/distill_bert --mode ensemble-eval --teachers out/t0,out/t1,out/t2
//
// run() reads like train_bert's fine-tuning: options -> set-up -> data -> teachers (frozen) -> student,
// optimizer, step -> resume -> loop {draw a teacher, step, log, evaluate, stop on a signal} -> test, save.
// The step is apps::TrainStep with a forward that computes the distillation loss; a batch's targets are the
// examples' indices, through which the forward finds the hard labels and (with --logit-cache) the teachers'
// cached logits. The teacher of step t is a pure function of (--seed, t), so --resume continues exactly.
//
// Exit codes: 0 done; 1 a failure (bad data, a missing or mismatched teacher, a diverged loss, a bad
// checkpoint); 2 a bad command line; 130 / 143 stopped by SIGINT / SIGTERM (after writing the checkpoint).
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "algorithms/distill/kd_loss.h"
#include "algorithms/distill/teacher_sampler.h"
#include "algorithms/distill/teachers.h"
#include "apps/common/bert_task.h"
#include "apps/common/options.h"
#include "apps/common/run.h"
#include "apps/common/train_step.h"
#include "autograd/autograd.h"
#include "data/dataset.h"
#include "data/glue_tsv.h"
#include "data/loader.h"
#include "data/tokenizer/wordpiece.h"
#include "models/bert/heads.h"
#include "nabla.h"
#include "ops/index.h"
#include "ops/loss.h"
#include "ops/nn.h"

using namespace nabla;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string mode, teachers, sampling, rank_map, scores, logit_cache;
  apps::BertShape shape;
  std::string vocab, init_from, save_pretrained, best_dir;
  std::string train_tsv, dev_tsv, test_tsv, text_a, text_b, label;
  int64_t num_labels, limit_train, limit_dev;
  double temperature, hard_weight, softmax_tau;
  bool no_t2 = false;
  int64_t seq_len, batch_size, max_steps, epochs, warmup_steps, eval_every, eval_batch_size, stop_at_step;
  std::string optimizer;
  double lr, weight_decay, clip;
  apps::RunOptions run;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<double> parse_scores(const std::string& s) {
  std::vector<double> out;
  for (const std::string& part : apps::split_list(s)) {
    double v = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    NABLA_CHECK(ec == std::errc() && end == part.data() + part.size() && std::isfinite(v), "--scores: '",
                part,
                "' is not a finite number (expected one score per teacher, comma-separated, e.g. 0.81,0.84)");
    out.push_back(v);
  }
  return out;
}

// A teacher argument: a folder with config.json + model.safetensors (train_bert --best-dir or
// --save-pretrained), or the model.safetensors inside one. Returns the folder.
std::string teacher_dir(const std::string& arg) {
  NABLA_CHECK(fs::exists(arg), "--teachers: '", arg,
              "' does not exist (expected a fine-tuned BERT folder or its model.safetensors)");
  const fs::path dir = fs::is_directory(arg) ? fs::path(arg) : fs::path(arg).parent_path();
  NABLA_CHECK(fs::is_regular_file(dir / "config.json"), "--teachers: '", arg, "': no config.json in '",
              dir.string(), "' (expected a folder written by train_bert --best-dir / --save-pretrained)");
  NABLA_CHECK(fs::is_regular_file(dir / "model.safetensors"), "--teachers: '", arg,
              "': no model.safetensors in '", dir.string(), "'");
  if (!fs::is_directory(arg))
    NABLA_CHECK(fs::path(arg).filename() == "model.safetensors", "--teachers: '", arg,
                "' is a file other than model.safetensors (expected the folder or its model.safetensors)");
  return dir.string();
}

// A string that changes when the teacher file, the training file or the encoding changes: the logit cache's
// key.
std::string fingerprint(const std::string& teacher, const Options& o, int64_t n) {
  auto stamp = [](const fs::path& p) {
    return str_cat(fs::canonical(p).string(), ":", fs::file_size(p), ":",
                   fs::last_write_time(p).time_since_epoch().count());
  };
  return str_cat("teacher ", stamp(fs::path(teacher) / "model.safetensors"), " | train ", stamp(o.train_tsv),
                 " | text ", o.text_a, "/", o.text_b, " | seq_len ", o.seq_len, " | examples ", n, " | amp ",
                 o.run.amp);
}

Tensor bert_logits(nn::Module& m, const Tensor& inputs) {
  apps::BertInputs u = apps::unpack_bert_inputs(inputs);
  return static_cast<models::BertForSequenceClassification&>(m).forward(u.ids, u.types, u.mask);
}

int run(Options& o) {
  // 1. set-up
  apps::Run r = apps::Run::start(o.run, o.batch_size);
  const dist::Session& ds = r.session();
  const Device dev = r.device();

  // 2. data
  const data::BertTokenizer tok = data::BertTokenizer::from_file(o.vocab);
  const data::GlueTsvOptions to{.text_a = o.text_a, .text_b = o.text_b, .label = o.label};
  const data::GlueExamples train_ex = data::read_glue_tsv(o.train_tsv, to);
  const data::GlueExamples dev_ex = data::read_glue_tsv(o.dev_tsv, to);
  const apps::EncodedGlue train =
      apps::first_examples(apps::encode_glue(train_ex, tok, o.seq_len, false), o.limit_train);
  const apps::EncodedGlue dev_set =
      apps::first_examples(apps::encode_glue(dev_ex, tok, o.seq_len, false), o.limit_dev);
  const int64_t num_labels = o.num_labels > 0
                                 ? o.num_labels
                                 : std::max<int64_t>(2, std::max(train_ex.num_classes, dev_ex.num_classes));
  NABLA_CHECK(std::max(train_ex.num_classes, dev_ex.num_classes) <= num_labels, "--num-labels ", num_labels,
              ": the files hold labels up to ", std::max(train_ex.num_classes, dev_ex.num_classes) - 1);
  const int64_t n_train = train.inputs.size(0);

  // 3. teachers, frozen
  distill::TeacherTeam team(bert_logits);
  std::vector<std::string> teacher_dirs;
  for (const std::string& arg : apps::split_list(o.teachers)) {
    teacher_dirs.push_back(teacher_dir(arg));
    auto t = models::BertForSequenceClassification::from_pretrained(teacher_dirs.back());
    NABLA_CHECK(t->config.num_labels == num_labels, "--teachers: '", arg, "' has ", t->config.num_labels,
                " labels, the task ", num_labels);
    NABLA_CHECK(t->config.vocab_size >= tok.vocab_size(), "--teachers: '", arg, "' has a vocabulary of ",
                t->config.vocab_size, ", --vocab ", tok.vocab_size(), " tokens");
    NABLA_CHECK(o.seq_len <= t->config.max_position_embeddings, "--seq-len ", o.seq_len, " exceeds teacher '",
                arg, "''s max_position_embeddings ", t->config.max_position_embeddings);
    apps::set_bert_attention(*t->bert, o.shape.attention);
    t->to(dev);
    const models::BertConfig& c = t->config;
    team.add(str_cat("T", team.size(), " ", c.num_hidden_layers, "L-", c.hidden_size, "H (", arg, ")"), t);
  }
  auto teacher = [&](int64_t k) -> models::BertForSequenceClassification& {
    return static_cast<models::BertForSequenceClassification&>(team.model(k));
  };
  apps::MetricsLog early_metrics;  // before TrainLog exists (ensemble-eval, teacher scores)
  std::vector<nlohmann::json> pending;

  // Each teacher's dev score (ensemble-eval, and TRD without --scores).
  std::vector<double> teacher_scores;
  if (o.mode == "ensemble-eval" || (o.sampling == "trd" && o.scores.empty() && team.size() > 0)) {
    for (int64_t k = 0; k < team.size(); ++k) {
      apps::DevResult e =
          apps::evaluate_bert_classifier(teacher(k), dev_set, o.eval_batch_size, dev, r.amp(), false);
      teacher_scores.push_back(e.accuracy);
      if (r.is_main())
        std::printf("teacher %s: dev accuracy %.2f%% | F1 %.4f | %s parameters\n", team.name(k).c_str(),
                    100 * e.accuracy, e.f1,
                    apps::with_commas(static_cast<double>(team.model(k).num_parameters())).c_str());
      pending.push_back({{"kind", "teacher"},
                         {"teacher", k},
                         {"path", teacher_dirs[static_cast<size_t>(k)]},
                         {"accuracy", e.accuracy},
                         {"f1", e.f1},
                         {"parameters", team.model(k).num_parameters()}});
    }
  }
  if (o.mode == "ensemble-eval") {
    auto ensemble = [&](const apps::EncodedGlue& set) {
      std::vector<Tensor> probs;
      for (int64_t first = 0; first < set.inputs.size(0); first += o.eval_batch_size) {
        const int64_t m = std::min(o.eval_batch_size, set.inputs.size(0) - first);
        AutocastGuard autocast(DType::bf16, r.amp());
        probs.push_back(
            team.ensemble_probabilities(set.inputs.narrow(0, first, m).to(dev)).to(Device::cpu()));
      }
      return apps::classification_metrics(cat(probs, 0), set.classes);
    };
    apps::DevResult e = ensemble(dev_set);
    std::printf("ensemble (mean of the %lld teachers' probabilities): dev accuracy %.2f%% | F1 %.4f\n",
                static_cast<long long>(team.size()), 100 * e.accuracy, e.f1);
    pending.push_back({{"kind", "ensemble"}, {"split", "dev"}, {"accuracy", e.accuracy}, {"f1", e.f1}});
    if (!o.test_tsv.empty()) {
      const apps::EncodedGlue test =
          apps::encode_glue(data::read_glue_tsv(o.test_tsv, to), tok, o.seq_len, false);
      for (int64_t k = 0; k < team.size(); ++k) {
        apps::DevResult t =
            apps::evaluate_bert_classifier(teacher(k), test, o.eval_batch_size, dev, r.amp(), false);
        std::printf("teacher %s: test accuracy %.2f%%\n", team.name(k).c_str(), 100 * t.accuracy);
        pending.push_back({{"kind", "teacher_test"}, {"teacher", k}, {"accuracy", t.accuracy}, {"f1", t.f1}});
      }
      apps::DevResult t = ensemble(test);
      std::printf("ensemble: test accuracy %.2f%% | F1 %.4f\n", 100 * t.accuracy, t.f1);
      pending.push_back({{"kind", "ensemble"}, {"split", "test"}, {"accuracy", t.accuracy}, {"f1", t.f1}});
    }
    if (r.is_main() && !o.run.metrics.empty()) {
      apps::MetricsLog m(o.run.metrics);
      for (const auto& j : pending) m.write(j);
    }
    return 0;
  }

  // 4. what the student learns from: the teacher distribution (SKD draws, WKD weights)
  const bool kd = o.mode != "student";
  std::vector<double> probabilities;
  if (o.mode == "skd" || o.mode == "wkd") {
    std::vector<double> scores = o.scores.empty() ? teacher_scores : parse_scores(o.scores);
    probabilities = distill::teacher_probabilities(distill::parse_teacher_sampling(o.sampling),
                                                   distill::parse_rank_mapping(o.rank_map), scores,
                                                   team.size(), o.softmax_tau);
  } else if (o.mode == "kd") {
    probabilities = {1.0};
  }
  const distill::TeacherSampler sampler(kd ? probabilities : std::vector<double>{1.0}, o.run.seed);
  const distill::KdLossOptions kdo{
      .temperature = o.temperature, .t2_scaling = !o.no_t2, .hard_weight = o.hard_weight};
  std::vector<Tensor> cached;  // per teacher: f32 [N, C] on the device, row i = example i
  if (kd && !o.logit_cache.empty()) {
    for (int64_t k = 0; k < team.size(); ++k) {
      const std::string fp = fingerprint(teacher_dirs[static_cast<size_t>(k)], o, n_train);
      char name[40];
      std::snprintf(name, sizeof name, "logits-%016zx.safetensors", std::hash<std::string>{}(fp));
      const auto t0 = Clock::now();
      AutocastGuard autocast(DType::bf16, r.amp());
      cached.push_back(team.all_logits(k, train.inputs, o.eval_batch_size, dev,
                                       (fs::path(o.logit_cache) / name).string(), fp)
                           .to(dev));
      if (r.is_main())
        std::printf("teacher %lld logits for %lld examples: %s (%.1f s)\n", static_cast<long long>(k),
                    static_cast<long long>(n_train), (fs::path(o.logit_cache) / name).c_str(),
                    seconds_since(t0));
    }
  }

  // 5. student, optimizer, step
  std::shared_ptr<models::BertForSequenceClassification> model;
  if (!o.init_from.empty()) {
    models::BertLoadReport report;
    model = models::BertForSequenceClassification::from_pretrained(o.init_from, false, &report);
    if (model->config.num_labels != num_labels) {
      models::BertConfig c = model->config;
      c.num_labels = num_labels;
      model = std::make_shared<models::BertForSequenceClassification>(c);
      report = models::load_bert_safetensors(*model, o.init_from + "/model.safetensors", false);
    }
    apps::set_bert_attention(*model->bert, o.shape.attention);
    if (r.is_main() && !report.clean())
      std::printf("init from %s: %s\n", o.init_from.c_str(), report.str().c_str());
  } else {
    models::BertConfig c = apps::make_bert_config(o.shape, tok.vocab_size());
    c.num_labels = num_labels;
    model = std::make_shared<models::BertForSequenceClassification>(c);
  }
  NABLA_CHECK(o.seq_len <= model->config.max_position_embeddings, "--seq-len ", o.seq_len,
              " exceeds the student's max_position_embeddings ", model->config.max_position_embeddings);
  model->to(dev);
  model->train();
  auto optimizer = apps::make_bert_optimizer(o.optimizer, *model, o.lr, o.weight_decay, 0.1);

  auto dataset = std::make_shared<data::TensorDataset>(train.inputs, arange(n_train));
  data::DataLoader loader(dataset, {.batch_size = o.batch_size,
                                    .shuffle = true,
                                    .drop_last = true,
                                    .seed = o.run.seed,
                                    .num_replicas = ds.world_size(),
                                    .rank = ds.rank()});
  NABLA_CHECK(loader.num_batches() >= 1, "--batch-size ", o.batch_size * ds.world_size(),
              " is larger than the ", n_train, " training examples");
  const Tensor labels_dev = train.labels.to(dev);
  int64_t current_teacher = 0;
  apps::ForwardFn forward = [&](nn::Module&, const Tensor& inputs, const Tensor& index) {
    apps::BertInputs u = apps::unpack_bert_inputs(inputs);
    Tensor logits = model->forward(u.ids, u.types, u.mask);
    Tensor y = index_select(labels_dev, 0, index);
    apps::ForwardOutput f;
    if (!kd) {
      f.loss = cross_entropy(logits.to(DType::f32), y);
    } else if (o.mode == "wkd") {
      Tensor p;
      if (cached.empty()) {
        p = team.weighted_soft_labels(inputs, probabilities, o.temperature);
      } else {
        for (size_t k = 0; k < cached.size(); ++k) {
          Tensor q =
              distill::soft_labels(index_select(cached[k], 0, index), o.temperature) * probabilities[k];
          p = p.defined() ? p + q : q;
        }
      }
      f.loss = distill::kd_loss_from_soft_labels(logits, p, y, kdo);
    } else {
      Tensor z = cached.empty() ? team.logits(current_teacher, inputs)
                                : index_select(cached[static_cast<size_t>(current_teacher)], 0, index);
      f.loss = distill::kd_loss(logits, z, y, kdo);
    }
    return f;
  };
  apps::TrainStep train_step(*model, *optimizer, ds, forward, {.amp = r.amp(), .clip = o.clip});
  const int64_t spe = loader.num_batches();
  const int64_t total_steps = apps::total_steps(spe, o.epochs, o.max_steps);
  const optim::Schedule schedule = apps::make_bert_schedule(o.lr, o.warmup_steps, 1.0, total_steps);
  if (r.is_main()) {
    const models::BertConfig& c = model->config;
    std::printf("student BERT %lldL-%lldH-%lldA-%lldI: %s parameters%s | mode %s",
                static_cast<long long>(c.num_hidden_layers), static_cast<long long>(c.hidden_size),
                static_cast<long long>(c.num_attention_heads), static_cast<long long>(c.intermediate_size),
                apps::with_commas(static_cast<double>(model->num_parameters())).c_str(),
                o.init_from.empty() ? " (from scratch)" : str_cat(" (from ", o.init_from, ")").c_str(),
                o.mode.c_str());
    if (o.mode == "skd" || o.mode == "wkd") {
      std::printf(" | %s %s (%s), p =", o.mode == "skd" ? "sampling" : "weights", o.sampling.c_str(),
                  o.rank_map.c_str());
      for (double p : probabilities) std::printf(" %.3f", p);
    }
    if (kd)
      std::printf(" | T %g%s, hard weight %g%s", o.temperature, o.no_t2 ? "" : " (x T^2)", o.hard_weight,
                  cached.empty() ? " | teachers run every step" : " | cached teacher logits");
    std::printf("\n%lld train, %lld dev | %lld steps/epoch, %lld steps | %s, %s%s\n",
                static_cast<long long>(n_train), static_cast<long long>(dev_set.inputs.size(0)),
                static_cast<long long>(spe), static_cast<long long>(total_steps), optimizer->name().c_str(),
                schedule.str().c_str(), r.amp() ? " | bf16 autocast (teachers too)" : "");
    std::fflush(stdout);
  }

  // 6. resume
  apps::TrainState state = r.resume(*model, *optimizer, spe, o.epochs);
  loader.set_position(state.loader);
  state.extra["mode"] = "distill-" + o.mode;
  apps::TrainLog log(r, total_steps, o.epochs, "seq/s");
  for (const auto& j : pending) log.write(j);
  log.write({{"kind", "student"}, {"parameters", model->num_parameters()}});
  if (kd)
    log.write(
        {{"kind", "teacher_distribution"}, {"mode", o.mode}, {"sampling", o.sampling}, {"p", probabilities}});
  double best = -std::numeric_limits<double>::infinity();
  if (auto it = state.extra.find("best_metric"); it != state.extra.end()) best = std::stod(it->second);
  NamedTensors best_state;  // the best dev model, for --test-tsv (after a resume: --best-dir's, if any)
  auto evaluate = [&](int64_t step, int64_t epoch) {
    apps::DevResult e =
        apps::evaluate_bert_classifier(*model, dev_set, o.eval_batch_size, dev, r.amp(), false);
    if (!r.is_main()) return;
    log.finish_line();
    const bool improved = e.accuracy > best;
    if (improved) {
      best = e.accuracy;
      best_state.clear();
      for (auto& [name, t] : model->state_dict()) best_state.emplace_back(name, t.detach().clone());
      if (!o.best_dir.empty()) model->save_pretrained(o.best_dir);
    }
    std::printf("step %lld | dev loss %.4f | accuracy %.2f%% | F1 %.4f%s\n", static_cast<long long>(step),
                e.loss, 100 * e.accuracy, e.f1, improved ? " | best" : "");
    std::fflush(stdout);
    log.write({{"kind", "eval"},
               {"step", step},
               {"epoch", epoch},
               {"dev_loss", e.loss},
               {"accuracy", e.accuracy},
               {"f1", e.f1},
               {"matthews", e.matthews},
               {"best", best}});
    state.extra["best_metric"] = str_cat(best);
  };

  // 7. the loop
  int64_t step = state.step;
  for (int64_t epoch = loader.position().epoch; epoch < o.epochs && step < total_steps; ++epoch) {
    while (auto batch = loader.next()) {
      const auto t0 = Clock::now();
      if (o.mode == "skd") current_teacher = sampler.draw(step);
      Tensor inputs = batch->inputs.to(dev), index = batch->labels.to(dev);
      const double lr = schedule.lr_at(step);
      const double loss = train_step.run(inputs, index, lr).loss;
      apps::check_loss(loss, ++step, o.run.allow_nonfinite);
      log.step(step, epoch, loss, lr, batch->labels.numel() * ds.world_size(), seconds_since(t0));
      if (o.mode == "skd" || o.mode == "kd")
        log.write({{"kind", "draw"}, {"step", step}, {"teacher", current_teacher}});
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
  if (r.is_main()) std::printf("best dev accuracy: %.4f\n", best);

  // 8. the best dev model on --test-tsv (never used for choices), then save
  if (!o.test_tsv.empty() && r.is_main()) {
    const apps::EncodedGlue test =
        apps::encode_glue(data::read_glue_tsv(o.test_tsv, to), tok, o.seq_len, false);
    NamedTensors last;
    for (auto& [name, t] : model->state_dict()) last.emplace_back(name, t.detach().clone());
    std::string which = "last";
    if (!best_state.empty()) {
      model->load_state_dict(best_state), which = "best dev";
    } else if (!o.best_dir.empty() && fs::exists(fs::path(o.best_dir) / "model.safetensors")) {
      models::load_bert_safetensors(*model, (fs::path(o.best_dir) / "model.safetensors").string(), true);
      which = "best dev";
    }
    apps::DevResult t = apps::evaluate_bert_classifier(*model, test, o.eval_batch_size, dev, r.amp(), false);
    std::printf("test (%s, %s model): accuracy %.2f%% | F1 %.4f\n", o.test_tsv.c_str(), which.c_str(),
                100 * t.accuracy, t.f1);
    log.write({{"kind", "test"}, {"accuracy", t.accuracy}, {"f1", t.f1}, {"model", which}});
    model->load_state_dict(last);
  }
  if (!o.save_pretrained.empty() && r.is_main()) {
    model->save_pretrained(o.save_pretrained);
    std::printf("saved %s (the last student, transformers' BertForSequenceClassification)\n",
                o.save_pretrained.c_str());
  }
  log.summary();
  return 0;
}

// ---- options --------------------------------------------------------------------------------------------

void check_options(const Options& o, const apps::OptionSet& cli) {
  apps::check_run_options(o.run);
  const int64_t n = static_cast<int64_t>(apps::split_list(o.teachers).size());
  const std::string& m = o.mode;
  if (m == "student") NABLA_CHECK(n == 0, "--mode student trains without teachers, but --teachers names ", n);
  if (m == "kd") NABLA_CHECK(n == 1, "--mode kd needs exactly one teacher in --teachers, got ", n);
  if (m == "skd" || m == "wkd")
    NABLA_CHECK(n >= 2, "--mode ", m, " needs at least two teachers in --teachers (comma-separated), got ",
                n);
  if (m == "ensemble-eval") NABLA_CHECK(n >= 1, "--mode ensemble-eval needs --teachers, got none");
  NABLA_CHECK(!cli.given("sampling") || m == "skd" || m == "wkd", "--sampling is for --mode skd or wkd, not ",
              m);
  if (!o.scores.empty()) {
    NABLA_CHECK(m == "skd" || m == "wkd", "--scores is for --mode skd or wkd, not ", m);
    NABLA_CHECK(o.sampling != "ud", "--scores has no use with --sampling ud (every teacher 1/N)");
    const std::vector<double> s = parse_scores(o.scores);
    NABLA_CHECK(static_cast<int64_t>(s.size()) == n, "--scores gives ", s.size(), " scores for ", n,
                " teachers");
  }
  NABLA_CHECK(
      o.sampling != "srd" || !o.scores.empty() || (m != "skd" && m != "wkd"),
      "--sampling srd needs --scores: for each teacher, the dev accuracy of a student distilled from it "
      "alone (--mode kd runs; docs/skd.md)");
  if (o.shape.hidden > 0 || o.shape.layers > 0 || o.shape.heads > 0) {
    models::BertConfig c = models::BertConfig::preset(o.shape.preset);
    if (o.shape.hidden > 0) c.hidden_size = o.shape.hidden;
    if (o.shape.heads > 0) c.num_attention_heads = o.shape.heads;
    c.validate();
  }
}

std::optional<int> parse(int argc, char** argv, Options& o) {
  apps::OptionSet cli("distill_bert",
                      "knowledge distillation of BERT classifiers: student alone, KD, SKD (UD/TRD/SRD), WKD, "
                      "ensemble (docs/skd.md)");
  cli.section("Distillation");
  cli.add("mode", &o.mode, "skd",
          "student (no teacher) | kd (one teacher) | skd (one teacher drawn per step) | wkd (weighted "
          "average of "
          "the teachers' soft labels) | ensemble-eval (the teachers and their average on dev, no training)")
      .one_of({"student", "kd", "skd", "wkd", "ensemble-eval"});
  cli.add("teachers", &o.teachers, "",
          "fine-tuned BERT folders (config.json + model.safetensors) or their model.safetensors, "
          "comma-separated")
      .value_name("DIRS");
  cli.add("sampling", &o.sampling, "ud",
          "skd: the teacher distribution; wkd: the weights. ud (uniform) | trd (by each teacher's dev score; "
          "measured here unless --scores) | srd (by --scores: dev scores of students distilled from each "
          "alone)")
      .one_of({"ud", "trd", "srd"});
  cli.add("rank-map", &o.rank_map, "linear",
          "scores to probabilities: linear (p ~ rank, 1 = worst) | softmax (p ~ exp(score / --softmax-tau))")
      .one_of({"linear", "softmax"});
  cli.add("softmax-tau", &o.softmax_tau, 0.01, "--rank-map softmax: the temperature over scores in [0, 1]")
      .positive();
  cli.add("scores", &o.scores, "",
          "one score per teacher, comma-separated (trd: overrides the measured ones)")
      .value_name("X,Y,...");
  cli.add("temperature", &o.temperature, 1.0, "T of the soft labels softmax(z / T)").positive();
  cli.add_switch("no-t2", &o.no_t2, "do not multiply the soft loss by T^2");
  cli.add("hard-weight", &o.hard_weight, 0.0,
          "weight a of the hard-label cross-entropy; the soft term gets 1 - a")
      .in_range(0, 1);
  cli.add("logit-cache", &o.logit_cache, "",
          "compute each teacher's logits over the training set once and keep them in this folder (keyed by "
          "teacher file, data and --seq-len); empty: teachers run every step")
      .value_name("DIR");
  cli.section("Student");
  cli.add("init-from", &o.init_from, "", "start from a BERT folder (pretrained or general-distilled)")
      .value_name("DIR");
  cli.add("preset", &o.shape.preset, "bert-tiny",
          "shape without --init-from: bert-tiny, 4L-312, 6L-768, bert-base")
      .one_of({"bert-tiny", "4L-312", "6L-768", "bert-base", "bert-large"});
  cli.add("layers", &o.shape.layers, 0, "encoder layers (0: the preset's)").in_range(0, 256);
  cli.add("hidden", &o.shape.hidden, 0, "hidden size (0: the preset's; feed-forward 4x unless given)")
      .in_range(0, 65536);
  cli.add("heads", &o.shape.heads, 0, "attention heads (0: the preset's)").in_range(0, 1024);
  cli.add("intermediate", &o.shape.intermediate, 0, "feed-forward size (0: the preset's, or 4 x --hidden)")
      .in_range(0, 1 << 20);
  cli.add("max-position", &o.shape.max_position, 0, "position embeddings (0: the preset's 512)")
      .in_range(0, 1 << 16);
  cli.add("dropout", &o.shape.dropout, 0.1, "hidden and attention dropout")
      .in_range(0, 1, apps::Bound::open_high);
  cli.add("attention", &o.shape.attention, "fused", "composed | fused (students and teachers)")
      .one_of({"composed", "fused"});
  cli.add("save-pretrained", &o.save_pretrained, "",
          "at the end, write the student here (transformers' format)")
      .value_name("DIR");
  cli.add("best-dir", &o.best_dir, "",
          "keep the best dev student here (a TAKD assistant: the next run's teacher)")
      .value_name("DIR");
  cli.section("Data");
  cli.add("vocab", &o.vocab, ".cache/tokenizers/bert-base-uncased/vocab.txt", "WordPiece vocab.txt")
      .value_name("FILE");
  cli.add("train-tsv", &o.train_tsv, "/work/shared/data/sentiment/standard/SST2/glue/train.tsv",
          "training TSV")
      .value_name("FILE");
  cli.add("dev-tsv", &o.dev_tsv, "/work/shared/data/sentiment/standard/SST2/glue/dev.tsv",
          "dev TSV: picks the best student, scores TRD's teachers")
      .value_name("FILE");
  cli.add("test-tsv", &o.test_tsv, "", "at the end, score the best dev student on this TSV")
      .value_name("FILE");
  cli.add("text-a", &o.text_a, "sentence", "column of the first text").value_name("NAME");
  cli.add("text-b", &o.text_b, "", "column of the second text of a pair task").value_name("NAME");
  cli.add("label", &o.label, "label", "column of the class label").value_name("NAME");
  cli.add("num-labels", &o.num_labels, 0, "classes (0: from the files)").in_range(0, 1 << 20);
  cli.add("limit-train", &o.limit_train, 0, "use only the first N training examples (0: all)").non_negative();
  cli.add("limit-dev", &o.limit_dev, 0, "use only the first N dev examples (0: all)").non_negative();
  cli.section("Training");
  cli.add("seq-len", &o.seq_len, 64, "sequence length").in_range(8, 1 << 16).unit("tokens");
  cli.add("batch-size", &o.batch_size, 32, "sequences per step, global").in_range(1, int64_t{1} << 30);
  cli.add("epochs", &o.epochs, 3, "passes over the training set").positive();
  cli.add("max-steps", &o.max_steps, 0, "a cap on the steps of all epochs (0: none)")
      .non_negative()
      .unit("steps");
  cli.add("optimizer", &o.optimizer, "adamw", "adamw | lamb").one_of({"adamw", "lamb"});
  cli.add("lr", &o.lr, 1e-4, "peak learning rate").positive();
  cli.add("weight-decay", &o.weight_decay, 0.01, "decoupled weight decay (not on biases and LayerNorm)")
      .non_negative();
  cli.add("warmup-steps", &o.warmup_steps, 100, "linear warm-up, then linear decay to 0")
      .non_negative()
      .unit("steps");
  cli.add("clip", &o.clip, 1.0, "clip gradients to this global L2 norm (0: off)").non_negative();
  cli.add("eval-every", &o.eval_every, 0, "evaluate on dev every N steps (0: each epoch)")
      .non_negative()
      .unit("steps");
  cli.add("eval-batch-size", &o.eval_batch_size, 64, "evaluation (and teacher-logit) batch")
      .in_range(1, int64_t{1} << 30);
  cli.add("stop-at-step", &o.stop_at_step, 0, "stop after step N as on SIGTERM, exit 0 (0: never)")
      .non_negative();
  apps::add_run_options(cli, o.run);
  cli.example(
      "--mode student --layers 4 --hidden 312 --heads 12 --intermediate 1200 --epochs 2 --best-dir out/s",
      "the student alone (fine-tuning)");
  cli.example(
      "--mode kd --teachers out/t2 --layers 4 --hidden 312 --heads 12 --intermediate 1200",
      "single-teacher KD; run twice (teacher -> assistant --best-dir, assistant -> student) for TAKD");
  cli.example(
      "--mode skd --teachers out/t0,out/t1,out/t2 --sampling trd --rank-map linear --logit-cache out/cache",
      "SKD, teachers drawn by their own dev rank, logits computed once");
  cli.example("--mode skd --teachers out/t0,out/t1,out/t2 --sampling srd --scores 0.86,0.87,0.85",
              "SKD by the ranks of single-teacher students");
  cli.example("--mode wkd --teachers out/t0,out/t1,out/t2 --temperature 2",
              "WKD: the teachers' averaged soft labels");
  cli.example("--mode ensemble-eval --teachers out/t0,out/t1,out/t2 --test-tsv test.tsv",
              "each teacher and the average-of-teachers ensemble");
  return cli.parse(argc, argv, [&] { check_options(o, cli); });
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (std::optional<int> code = parse(argc, argv, o)) return *code;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distill_bert: %s\n", e.what());
  }
  return apps::kExitFailure;
}
