// prune_abcp: ABCP (joint block and channel pruning by an LSTM controller trained with REINFORCE) on a
// Darknet network. Two models:
//   --model yolo: a Darknet YOLO cfg (builtin:yolov3-mini on the CPU, builtin:yolov3 or a .cfg file) on a
//     detection set (--data synthetic writes the coloured-rectangle set; else a Darknet image list / folder
//     with --val). Per candidate: reset to the pretrained weights, mask, fine-tune briefly (all layers, masks
//     re-applied), validation mAP@0.5 (or YOLO loss); R = mAP - lambda FLOPs / FLOPs_full under an optional
//     FLOPs / parameter budget. Then the best candidate within the budget and the uniform-ratio net at the
//     same FLOPs are shrunk and fine-tuned like the unpruned net, and a table compares mAP@0.5, parameters,
//     FLOPs and img/s; the best is exported as Darknet .cfg + .weights (train_yolo and Darknet load them).
//   --model proxy: the CPU classification proxy of the brief (§4.1): a residual Darknet-cfg network
//     (stride-2 stem + 8 residual blocks in 3 stages, widths 16/32/64 by default) on a Fashion-MNIST subset.
//
// Proxy: parse options -> build + pretrain the proxy -> search (controller and/or random search, same
// budget):
//     per candidate: reset to the pretrained weights, mask (|gamma|), re-estimate the BN statistics
//     (--bn-recalibrate), fine-tune the classifier head, validation loss, R = -(L_val + lambda MACs /
//     MACs_full), archive line, checkpoint (--checkpoint: controller, Adam, baseline, generators and
//     archives after every candidate; --resume continues it exactly)
//   -> best candidate by R and the uniform-ratio net at the same MACs: shrink, fine-tune all layers, test
//      accuracy -> export the best as Darknet .cfg + .weights.
// docs/abcp.md has the commands and figures.
#include <omp.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <sstream>

#include "algorithms/optim/optimizer.h"
#include "algorithms/pruning/abcp_controller.h"
#include "algorithms/pruning/abcp_search.h"
#include "algorithms/pruning/abcp_yolo.h"
#include "algorithms/pruning/darknet_pruning.h"
#include "apps/common/checkpoint.h"
#include "apps/common/options.h"
#include "apps/common/run.h"
#include "autograd/autograd.h"
#include "data/idx.h"
#include "data/synthetic_detection.h"
#include "data/yolo_dataset.h"
#include "models/darknet/cfg.h"
#include "models/darknet/network.h"
#include "models/darknet/weights.h"
#include <nlohmann/json.hpp>
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/loss.h"
#include "ops/reduce.h"

using namespace nabla;
using namespace nabla::algorithms::pruning;
using namespace nabla::models::darknet;

namespace {

struct Options {
  std::string model = "proxy", finetune = "auto", search = "both",
              data_dir = "/usr/share/datasets/fashion-mnist", archive, export_prefix;
  // YOLO mode
  std::string cfg = "builtin:yolov3-mini", weights, data = "synthetic", val, synthetic_dir, reward = "map",
              device = "cpu", summary, save_pretrained;
  int64_t size = 0, classes = 0, synthetic_train = 256, synthetic_val = 64, synthetic_size = 64,
          bench_batch = 16, bench_reps = 3, bn_recalibrate = 8;
  double flops_budget = 0, params_budget = 0, finetune_lr = 1e-3, pretrain_lr = 1e-3;
  int64_t iterations = 100, pretrain_steps = 400, finetune_steps = 20, final_steps = 200, batch = 64;
  int64_t width = 16, train_size = 10000, val_size = 1000, test_size = 2000, threads = 0;
  double lambda = 1.0, controller_lr = 1e-3, entropy_weight = 1e-4;
  bool original_bugs = false, resume = false;
  std::string checkpoint;
  int64_t stop_after = 0;
  uint64_t seed = 1;
};

std::optional<int> parse(int argc, char** argv, Options& o) {
  apps::OptionSet cli(
      "prune_abcp",
      "ABCP joint block and channel pruning search (Darknet YOLO, or the CPU classification proxy)");
  cli.section("Model");
  cli.add("model", &o.model, "proxy", "yolo (a Darknet YOLO cfg, mAP reward) | proxy (Fashion-MNIST ResNet)")
      .one_of({"yolo", "proxy"});
  cli.section("Search");
  cli.add("search", &o.search, "both", "controller | random | both (same budget each)")
      .one_of({"controller", "random", "both"});
  cli.add("iterations", &o.iterations, 100, "candidates evaluated per search").positive();
  cli.add("lambda", &o.lambda, 1.0, "reward weight of MACs / MACs_full").non_negative();
  cli.add("controller-lr", &o.controller_lr, 1e-3, "Adam learning rate of the controller").positive();
  cli.add("entropy-weight", &o.entropy_weight, 1e-4, "entropy bonus in the reward").non_negative();
  cli.add_switch("original-bugs", &o.original_bugs,
                 "reproduce the original code's REINFORCE sign / credit / missing log-probs (docs/abcp.md)");
  cli.add("archive", &o.archive, "", "append every candidate as JSONL to FILE (search name added)")
      .value_name("FILE");
  cli.add("export", &o.export_prefix, "", "write the best shrunk net as PREFIX.cfg + PREFIX.weights")
      .value_name("PREFIX");
  cli.add("reward", &o.reward, "map",
          "yolo: map (R = mAP@0.5 - lambda F/F_full) | loss (R = -(L_val + lambda F/F_full))")
      .one_of({"map", "loss"});
  cli.add("flops-budget", &o.flops_budget, 0,
          "yolo: candidates above this fraction of the full FLOPs are "
          "penalised, not evaluated, and never selected (0: no budget)")
      .in_range(0, 1);
  cli.add("params-budget", &o.params_budget, 0, "yolo: the same for the parameters (0: no budget)")
      .in_range(0, 1);
  cli.section("YOLO");
  cli.add("cfg", &o.cfg, "builtin:yolov3-mini",
          "Darknet .cfg, or builtin:yolov3 / builtin:yolov3-mini (Darknet-53 layout, 7 blocks, 1/4 width)")
      .value_name("CFG");
  cli.add("weights", &o.weights, "", "pretrained Darknet .weights (then --pretrain-steps add to them)")
      .value_name("FILE");
  cli.add("data", &o.data, "synthetic",
          "training images: synthetic (written to --synthetic-dir) or a Darknet "
          "image list / folder")
      .value_name("LIST");
  cli.add("val", &o.val, "", "validation images (the reward's mAP; needed unless --data synthetic)")
      .value_name("LIST");
  cli.add("synthetic-dir", &o.synthetic_dir, "",
          "where --data synthetic writes train/ and val/ (default: "
          "abcp_synthetic in the working directory)")
      .value_name("DIR");
  cli.add("synthetic-train", &o.synthetic_train, 256, "synthetic training images").positive();
  cli.add("synthetic-val", &o.synthetic_val, 64, "synthetic validation images").positive();
  cli.add("synthetic-size", &o.synthetic_size, 64, "synthetic image width and height")
      .in_range(16, 4096)
      .unit("pixels");
  cli.add("size", &o.size, 0, "network input width and height (0: the synthetic size, else the cfg's)")
      .in_range(0, 8192)
      .unit("pixels");
  cli.add("classes", &o.classes, 0, "set the [yolo] classes (0: 2 for synthetic, else the cfg's)")
      .in_range(0, 100000);
  cli.add("finetune-lr", &o.finetune_lr, 1e-3,
          "yolo: Adam learning rate of the per-candidate and final "
          "fine-tunes")
      .positive();
  cli.add("pretrain-lr", &o.pretrain_lr, 1e-3, "yolo: Adam learning rate of pretraining").positive();
  cli.add("bn-recalibrate", &o.bn_recalibrate, 8,
          "batches that re-estimate the BN statistics of each masked candidate (yolo: after each all-layer "
          "fine-tune; proxy: before a head fine-tune, after an all-layer one); 0: none, the original")
      .non_negative();
  cli.add("device", &o.device, "cpu", "yolo: cpu | cuda | cuda:N").value_name("DEV");
  cli.add("bench-batch", &o.bench_batch, 16, "yolo: batch of the img/s measurement").positive();
  cli.add("bench-reps", &o.bench_reps, 3, "yolo: timed passes of the img/s measurement").positive();
  cli.add("summary", &o.summary, "", "yolo: write the final table as JSON to FILE").value_name("FILE");
  cli.add("save-pretrained", &o.save_pretrained, "",
          "yolo: write the pretrained unpruned net as Darknet "
          ".weights (reuse with --weights --pretrain-steps 0)")
      .value_name("FILE");
  cli.section("Proxy training");
  cli.add("data-dir", &o.data_dir, "/usr/share/datasets/fashion-mnist", "Fashion-MNIST IDX files")
      .value_name("DIR");
  cli.add("train-size", &o.train_size, 10000, "training images used").positive();
  cli.add("val-size", &o.val_size, 1000, "validation images (the reward's loss), from the test file")
      .positive();
  cli.add("test-size", &o.test_size, 2000, "held-out test images (final accuracy), after the validation ones")
      .positive();
  cli.add("pretrain-steps", &o.pretrain_steps, 400, "SGD (yolo: Adam) steps of pretraining").non_negative();
  cli.add("finetune", &o.finetune, "auto",
          "per-candidate fine-tune: head (the classifier conv / the [yolo] output convs, as the original) | "
          "all "
          "(every layer, masks re-applied after each step; proxy: BN in evaluation mode, yolo: BN statistics "
          "recalibrated) | auto (proxy: head, yolo: all)")
      .one_of({"head", "all", "auto"});
  cli.add("finetune-steps", &o.finetune_steps, 20, "fine-tuning steps per candidate").non_negative();
  cli.add("final-steps", &o.final_steps, 200,
          "all-layer steps for the selected, uniform (and, yolo, unpruned) nets")
      .non_negative();
  cli.add("batch", &o.batch, 64, "batch size").positive();
  cli.add("width", &o.width, 16, "proxy widths: stem and stage 1 W, stage 2 2W, stage 3 4W")
      .in_range(2, 1024);
  cli.add("checkpoint", &o.checkpoint, "",
          "write the search state (controller, Adam, baseline, generators, archives) to FILE after "
          "every candidate")
      .value_name("FILE");
  cli.add_switch("resume", &o.resume,
                 "continue the search saved in --checkpoint (same options; the pretraining is redone "
                 "and checked against the saved one)");
  cli.add("stop-after", &o.stop_after, 0,
          "exit after this many candidates in all (a simulated interruption, for tests; 0: never)")
      .non_negative();
  cli.section("Run");
  cli.add("threads", &o.threads, 0, "CPU threads (0: OMP default)").in_range(0, 4096);
  cli.add("seed", &o.seed, 1, "seed of everything");
  cli.example("--iterations 100 --lambda 1 --archive abcp.jsonl", "controller and random search, 100 each");
  cli.example("--search controller --lambda 4 --iterations 60", "a larger FLOPs weight: blocks get dropped");
  cli.example("--model yolo --cfg builtin:yolov3-mini --data synthetic --flops-budget 0.5 --iterations 20",
              "YOLO: a search on the synthetic detection set under half the FLOPs");
  return cli.parse(argc, argv, [&] {
    NABLA_CHECK(o.val_size + o.test_size <= 10000,
                "--val-size + --test-size must be <= 10000 (the test file)");
    NABLA_CHECK(o.model == "yolo" || o.data == "synthetic",
                "--data is for --model yolo (the proxy reads --data-dir)");
    NABLA_CHECK(o.model != "yolo" || o.data == "synthetic" || !o.val.empty(),
                "--model yolo with --data LIST needs --val LIST");
    NABLA_CHECK(o.model != "yolo" || o.pretrain_steps > 0 || !o.weights.empty(),
                "--pretrain-steps 0 needs --weights (the search prunes a pretrained net)");
    NABLA_CHECK(!o.resume || !o.checkpoint.empty(), "--resume needs --checkpoint FILE");
  });
}

// The proxy: Darknet cfg text of a small residual network for 28 x 28 x 1 inputs.
std::string proxy_cfg(int w) {
  std::string s = "[net]\nwidth=28\nheight=28\nchannels=1\n\n";
  auto conv = [&](int filters, int size, int stride) {
    s += "[convolutional]\nbatch_normalize=1\nfilters=" + std::to_string(filters) +
         "\nsize=" + std::to_string(size) + "\nstride=" + std::to_string(stride) +
         "\npad=1\nactivation=leaky\n\n";
  };
  auto block = [&](int c) {
    conv(c / 2, 1, 1);
    conv(c, 3, 1);
    s += "[shortcut]\nfrom=-3\nactivation=linear\n\n";
  };
  conv(w, 3, 2);  // 14 x 14
  for (int i = 0; i < 2; ++i) block(w);
  conv(2 * w, 3, 2);  // 7 x 7
  for (int i = 0; i < 3; ++i) block(2 * w);
  conv(4 * w, 3, 2);  // 4 x 4
  for (int i = 0; i < 3; ++i) block(4 * w);
  s += "[convolutional]\nfilters=10\nsize=1\nstride=1\npad=1\nactivation=linear\n\n[avgpool]\n";
  return s;
}

struct Split {
  Tensor x, y;  // [N, 1, 28, 28] f32 normalised, [N] i64
};

Split take(const data::LabeledImages& d, int64_t start, int64_t n) {
  NABLA_CHECK(start + n <= d.size(), "fashion-mnist: asked for images ", start, "..", start + n, " of ",
              d.size());
  Tensor x = d.images.narrow(0, start, n).to(DType::f32).reshape({n, 1, 28, 28});
  x = (x / 255.0 - 0.286) / 0.353;
  return {x.contiguous(), d.labels.narrow(0, start, n).to(DType::i64).contiguous()};
}

Tensor logits(DarknetNetwork& net, const Tensor& x) { return net.forward(x).reshape({x.size(0), 10}); }

struct EvalResult {
  double loss = 0, accuracy = 0;
};
EvalResult evaluate(DarknetNetwork& net, const Split& d) {
  NoGradGuard ng;
  net.eval();
  double loss = 0, correct = 0;
  const int64_t n = d.x.size(0), chunk = 500;
  for (int64_t i = 0; i < n; i += chunk) {
    const int64_t m = std::min(chunk, n - i);
    Tensor z = logits(net, d.x.narrow(0, i, m));
    Tensor y = d.y.narrow(0, i, m);
    loss += cross_entropy(z, y).item<double>() * m;
    correct += sum(eq(argmax(z, 1), y).to(DType::f32)).item<double>();
  }
  return {loss / n, correct / n};
}

// `steps` SGD steps on `params` (momentum 0.9); the network in train mode or eval mode (head-only).
void train_steps(DarknetNetwork& net, const Split& d, const std::vector<Tensor>& params, int64_t steps,
                 double lr, int64_t batch, bool train_mode, std::mt19937_64& rng) {
  if (steps == 0) return;
  optim::Sgd opt(params, {.lr = lr, .momentum = 0.9, .weight_decay = 5e-4});
  std::uniform_int_distribution<int64_t> pick(0, d.x.size(0) - 1);
  net.train(train_mode);
  for (int s = 0; s < steps; ++s) {
    std::vector<double> idx(batch);
    for (auto& v : idx) v = static_cast<double>(pick(rng));
    Tensor ix = from_vector(idx, {batch}, {.dtype = DType::i64});
    Tensor loss = cross_entropy(logits(net, index_select(d.x, 0, ix)), index_select(d.y, 0, ix));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
}

void set_trainable(DarknetNetwork& net, bool all, int head) {
  for (auto& [name, p] : net.named_parameters())
    p.requires_grad_(all || name.rfind(std::to_string(head) + ".", 0) == 0);
}

// The options a saved YOLO search depends on (a resumed run must have the same).
// The options a saved search depends on (a resumed run must have the same), per mode.
std::string proxy_fingerprint(const Options& o) {
  std::ostringstream f;
  f << "width " << o.width << " train " << o.train_size << " val " << o.val_size << " test " << o.test_size
    << " pretrain " << o.pretrain_steps << " batch " << o.batch << " finetune " << o.finetune << "/"
    << o.finetune_steps << " bn " << o.bn_recalibrate << " iterations " << o.iterations << " lambda "
    << double_to_string(o.lambda) << " lr " << double_to_string(o.controller_lr) << " entropy "
    << double_to_string(o.entropy_weight) << " bugs " << (o.original_bugs ? 1 : 0) << " seed " << o.seed
    << " search " << o.search;
  return f.str();
}

// The controller and both searches' states, fresh. The controller exists in every mode, so that a checkpoint
// always holds one (random search leaves it be).
struct Searches {
  std::shared_ptr<AbcpController> controller;
  std::map<std::string, SearchState> states;
};
Searches fresh_searches(const Options& o, const ActionLayout& layout) {
  Searches r;
  r.controller =
      std::make_shared<AbcpController>(layout, ControllerOptions{.entropy_weight = o.entropy_weight,
                                                                 .lr = o.controller_lr,
                                                                 .original_bugs = o.original_bugs,
                                                                 .seed = o.seed});
  for (std::string kind : {"controller", "random"})
    r.states[kind] = SearchState{{}, std::mt19937_64(o.seed + 17)};
  return r;
}

std::string yolo_fingerprint(const Options& o) {
  std::ostringstream f;
  f << "cfg " << o.cfg << " weights " << o.weights << " data " << o.data << " val " << o.val << " size "
    << o.size << " classes " << o.classes << " synthetic " << o.synthetic_train << "/" << o.synthetic_val
    << "/" << o.synthetic_size << " pretrain " << o.pretrain_steps << "/" << double_to_string(o.pretrain_lr)
    << " batch " << o.batch << " finetune " << o.finetune << "/" << o.finetune_steps << "/"
    << double_to_string(o.finetune_lr) << " bn " << o.bn_recalibrate << " iterations " << o.iterations
    << " lambda " << double_to_string(o.lambda) << " lr " << double_to_string(o.controller_lr) << " entropy "
    << double_to_string(o.entropy_weight) << " bugs " << o.original_bugs << " seed " << o.seed << " search "
    << o.search << " reward " << o.reward << " budget " << double_to_string(o.flops_budget) << "/"
    << double_to_string(o.params_budget);
  return f.str();
}

// --checkpoint / --resume of the searches: after every candidate, the controller (parameters, Adam state,
// baseline, generator), both searches' states (archive, generator), the caller's evaluation state (its
// data generator or seed counter, as text) and the candidate count are written through
// apps::save_checkpoint (tmp file, fsync, rename). A resumed run checks the options and the pretrained net
// against the file first. --stop-after exits once that many candidates are checkpointed.
class SearchCheckpoint {
 public:
  SearchCheckpoint(const Options& o, std::string fingerprint, std::string pretrained,
                   AbcpController& controller, std::map<std::string, SearchState>& states,
                   std::function<std::string()> save_eval,
                   std::function<void(const std::string&, const std::string&)> load_eval)
      : o_(o),
        fingerprint_(std::move(fingerprint)),
        pretrained_(std::move(pretrained)),
        controller_(controller),
        states_(states),
        save_eval_(std::move(save_eval)),
        load_eval_(std::move(load_eval)) {}

  void start() {
    if (o_.checkpoint.empty()) return;
    apps::remove_stale_temporary(o_.checkpoint);
    if (o_.resume) load();
  }

  void candidate_done() {
    ++done_;
    if (!o_.checkpoint.empty()) save();
  }

  void maybe_stop() const {
    if (o_.stop_after > 0 && done_ >= o_.stop_after) {
      std::printf("stopped after %lld candidates (--stop-after)\n", static_cast<long long>(done_));
      std::fflush(stdout);
      std::exit(0);
    }
  }

 private:
  void load() {
    apps::check_checkpoint_file(o_.checkpoint, "--resume");
    apps::TrainState ts = apps::load_checkpoint(o_.checkpoint, controller_, controller_.optimizer());
    const std::string where = "checkpoint " + o_.checkpoint;
    auto field = [&](const std::string& key) -> const std::string& {
      auto it = ts.extra.find(key);
      NABLA_CHECK(it != ts.extra.end(), where, ": has no field '", key, "' (not a prune_abcp checkpoint?)");
      return it->second;
    };
    NABLA_CHECK(field("abcp.options") == fingerprint_, where, ": saved by a run with other options ('",
                field("abcp.options"), "'), this run has '", fingerprint_, "'");
    NABLA_CHECK(field("abcp.pretrained") == pretrained_, where, ": the pretrained net differs (saved ",
                field("abcp.pretrained"), ", now ", pretrained_, ")");
    controller_.load_state(ts.extra, "abcp.policy.", where);
    load_eval_(field("abcp.eval"), where + ": field 'abcp.eval'");
    done_ = 0;
    for (auto& [kind, st] : states_) {
      st.rng = rng_from_string(field("abcp." + kind + ".rng"), where + ": field 'abcp." + kind + ".rng'");
      st.archive.clear();
      std::istringstream lines(field("abcp." + kind + ".archive"));
      int i = 0;
      for (std::string l; std::getline(lines, l); ++i) {
        st.archive.push_back(candidate_from_json(
            l, where + ": field 'abcp." + kind + ".archive' line " + std::to_string(i + 1)));
        NABLA_CHECK(st.archive.back().iteration == i, where, ": field 'abcp.", kind, ".archive' line ", i + 1,
                    " is iteration ", st.archive.back().iteration, ", expected ", i);
      }
      done_ += static_cast<int64_t>(st.archive.size());
    }
    NABLA_CHECK(done_ == ts.step, where, ": field 'step' is ", ts.step, " but the archives hold ", done_,
                " candidates");
    std::printf("resumed from %s: %lld candidates done\n", o_.checkpoint.c_str(),
                static_cast<long long>(done_));
  }

  void save() const {
    apps::TrainState ts;
    ts.step = done_;
    ts.rng = default_generator();
    ts.extra["abcp.options"] = fingerprint_;
    ts.extra["abcp.pretrained"] = pretrained_;
    controller_.save_state(ts.extra, "abcp.policy.");
    ts.extra["abcp.eval"] = save_eval_();
    for (auto& [kind, st] : states_) {
      ts.extra["abcp." + kind + ".rng"] = rng_to_string(st.rng);
      std::string lines;
      for (const Candidate& c : st.archive) lines += candidate_json(c) + "\n";
      ts.extra["abcp." + kind + ".archive"] = lines;
    }
    apps::save_checkpoint(o_.checkpoint, controller_, controller_.optimizer(), ts);
  }

  const Options& o_;
  std::string fingerprint_, pretrained_;
  AbcpController& controller_;
  std::map<std::string, SearchState>& states_;
  std::function<std::string()> save_eval_;
  std::function<void(const std::string&, const std::string&)> load_eval_;
  int64_t done_ = 0;  // candidates evaluated in all (both searches)
};

// A resumed search rewrites its archive from the checkpoint (lines written after it are dropped).
void rewrite_archive(const std::string& path, const SearchState& state) {
  if (path.empty()) return;
  std::ofstream f(path, std::ios::trunc);
  NABLA_CHECK(f.good(), "--archive: cannot write ", path);
  for (const Candidate& c : state.archive) f << candidate_json(c) << "\n";
}

int run_proxy(const Options& o) {
  if (o.threads > 0) omp_set_num_threads(o.threads);
  std::mt19937_64 rng(o.seed);
  const Cfg cfg = parse_cfg(proxy_cfg(static_cast<int>(o.width)), "abcp-proxy.cfg");
  auto net = std::make_shared<DarknetNetwork>(cfg);
  const int head = static_cast<int>(net->layers.size()) - 2;  // the 1x1 classifier conv before [avgpool]
  data::LabeledImages train_all = data::load_fashion_mnist(o.data_dir, true);
  data::LabeledImages test_all = data::load_fashion_mnist(o.data_dir, false);
  const Split train = take(train_all, 0, o.train_size), val = take(test_all, 0, o.val_size),
              test = take(test_all, o.val_size, o.test_size);
  const PruneStructure s = analyze(*net);
  const Cost full = count_cost(*net);
  std::printf(
      "proxy: %zu layers, %zu prunable convs, %zu blocks, %zu tie groups, %.4f MFLOPs (2 MACs), %lld "
      "params\n",
      net->layers.size(), s.convs.size(), s.blocks.size(), s.tie_groups.size(), 2e-6 * full.macs,
      static_cast<long long>(full.params));
  auto t0 = std::chrono::steady_clock::now();
  auto secs = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  train_steps(*net, train, net->parameters(), o.pretrain_steps, 0.05, o.batch, true, rng);
  const EvalResult pre = evaluate(*net, test), pre_val = evaluate(*net, val);
  std::printf("pretrained: val loss %.4f | test acc %.2f%% | %.1f s\n", pre_val.loss, 100 * pre.accuracy,
              secs());
  const NamedTensors pretrained = [&] {
    NamedTensors st;
    for (auto& [k, v] : net->state_dict()) st.emplace_back(k, v.clone());
    return st;
  }();

  set_trainable(*net, false, head);
  std::vector<Tensor> head_params{net->layers[head].conv->conv->weight, net->layers[head].conv->conv->bias};
  EvaluateFn eval_candidate = [&](const PruneAction& a) {
    net->load_state_dict(pretrained);
    ChannelPlan plan = plan_channels(*net, s, a);
    apply_masks(*net, plan);
    // BN statistics of the masked net: `--bn-recalibrate` random training batches, cumulative average
    auto recalibrate = [&] {
      if (o.bn_recalibrate == 0) return;
      std::uniform_int_distribution<int64_t> pick(0, train.x.size(0) - 1);
      recalibrate_bn(*net, static_cast<int>(o.bn_recalibrate), [&](int) {
        std::vector<double> idx(o.batch);
        for (auto& v : idx) v = static_cast<double>(pick(rng));
        Tensor ix = from_vector(idx, {o.batch}, {.dtype = DType::i64});
        (void)net->forward(index_select(train.x, 0, ix));
      });
    };
    if (o.finetune != "all") {
      recalibrate();
      train_steps(*net, train, head_params, o.finetune_steps, 0.02, o.batch, false, rng);
    } else {
      set_trainable(*net, true, head);
      for (int64_t k = 0; k < o.finetune_steps; ++k) {
        train_steps(*net, train, net->parameters(), 1, 0.02, o.batch, false, rng);
        apply_masks(*net, plan);
      }
      set_trainable(*net, false, head);
      recalibrate();
    }
    return Evaluation{evaluate(*net, val).loss, count_cost(*net, &plan)};
  };
  std::vector<std::pair<std::string, std::vector<Candidate>>> results;
  Searches searches = fresh_searches(o, ActionLayout::from(s));
  std::shared_ptr<AbcpController>& controller = searches.controller;
  std::map<std::string, SearchState>& states = searches.states;
  // What the saved search depends on: a resumed run must have the same, and the same pretrained net.
  const std::string fingerprint = proxy_fingerprint(o), pretrained_loss = double_to_string(pre_val.loss);
  SearchCheckpoint ck{
      o,
      fingerprint,
      pretrained_loss,
      *controller,
      states,
      [&] { return rng_to_string(rng); },
      [&](const std::string& text, const std::string& what) { rng = rng_from_string(text, what); }};
  ck.start();
  for (std::string kind : {"controller", "random"}) {
    if (o.search != "both" && o.search != kind) continue;
    SearchOptions so{.iterations = static_cast<int>(o.iterations),
                     .lambda = o.lambda,
                     .random_search = kind == "random",
                     .archive = o.archive.empty() ? "" : o.archive + "." + kind + ".jsonl",
                     .seed = o.seed + 17};
    SearchState& state = states[kind];
    rewrite_archive(so.archive, state);
    if (state.archive.size() < static_cast<size_t>(o.iterations)) {
      abcp_search(
          s, kind == "controller" ? controller.get() : nullptr, eval_candidate, full, so,
          [&](const Candidate& c) {
            ck.candidate_done();
            if (c.iteration % 10 == 0 || c.iteration + 1 == o.iterations)
              std::printf("%s %d/%d | reward %.4f | val loss %.4f | flops %.1f%% | blocks %d/%zu | %.0f s\n",
                          kind.c_str(), c.iteration + 1, static_cast<int>(o.iterations), c.reward, c.loss,
                          100 * c.flops_fraction, c.blocks_kept, s.blocks.size(), secs());
            ck.maybe_stop();
          },
          &state);
    }
    results.emplace_back(kind, state.archive);
  }
  // reward by fifths of the search, for the docs' table
  for (auto& [kind, a] : results) {
    const int n = static_cast<int>(a.size()), w = std::max(1, n / 5);
    std::printf("%s mean reward by fifth:", kind.c_str());
    for (int f = 0; f < 5 && f * w < n; ++f) {
      double m = 0;
      int k = 0;
      for (int i = f * w; i < std::min(n, (f + 1) * w); ++i) m += a[i].reward, ++k;
      std::printf(" %.4f", m / k);
    }
    const Candidate& b = best_candidate(a);
    std::printf(" | best %.4f (iter %d, val loss %.4f, flops %.1f%%, blocks %d)\n", b.reward, b.iteration,
                b.loss, 100 * b.flops_fraction, b.blocks_kept);
  }
  if (o.search != "random") {
    PruneAction m = resolve(s, controller->mode());
    int kept = static_cast<int>(s.blocks.size());
    for (int p : m.prune_block) kept -= p;
    std::printf("controller mode: blocks kept %d/%zu\n", kept, s.blocks.size());
  }

  // the best candidate overall against uniform-ratio pruning at the same MACs, both shrunk and fine-tuned
  const Candidate* best = nullptr;
  for (auto& [kind, a] : results)
    if (!best || best_candidate(a).reward > best->reward) best = &best_candidate(a);
  set_trainable(*net, true, head);
  net->load_state_dict(pretrained);
  const PruneAction uniform = uniform_action_for_macs(*net, s, best->cost.macs);
  for (auto [name, action] :
       {std::pair<const char*, PruneAction>{"abcp-best", best->action}, {"uniform", uniform}}) {
    net->load_state_dict(pretrained);
    ChannelPlan plan = plan_channels(*net, s, action);
    auto small = shrink(cfg, *net, plan);
    const EvalResult before = evaluate(*small, test);
    train_steps(*small, train, small->parameters(), o.final_steps, 0.02, o.batch, true, rng);
    const EvalResult after = evaluate(*small, test);
    const Cost c = count_cost(*small);
    std::printf(
        "%s: %.1f%% of the MACs, %.1f%% of the params, %zu layers | test acc %.2f%% before, %.2f%% after "
        "%d steps (unpruned %.2f%%)\n",
        name, 100.0 * c.macs / full.macs, 100.0 * c.params / full.params, small->layers.size(),
        100 * before.accuracy, 100 * after.accuracy, static_cast<int>(o.final_steps), 100 * pre.accuracy);
    if (!o.export_prefix.empty() && std::string(name) == "abcp-best") {
      export_darknet(shrink_cfg(cfg, *net, plan), *small, o.export_prefix);
      std::printf("wrote %s.cfg and %s.weights\n", o.export_prefix.c_str(), o.export_prefix.c_str());
    }
  }
  std::printf("total %.1f s\n", secs());
  return 0;
}

// ---- YOLO mode
// ----------------------------------------------------------------------------------------------

struct YoloRow {
  std::string name;
  double map = 0, map_before = 0, img_s = 0;
  Cost cost;
  int blocks = 0, layers = 0;
};

NamedTensors state_on(DarknetNetwork& net, Device device) {
  NamedTensors st;
  for (auto& [k, v] : net.state_dict()) st.emplace_back(k, v.to(device).clone());
  return st;
}

void set_yolo_trainable(DarknetNetwork& net, const std::vector<Tensor>& params) {
  for (auto& p : net.parameters()) p.requires_grad_(false);
  for (Tensor p : params) p.requires_grad_(true);
}

// The [yolo] output convs (the original's per-candidate fine-tune trains only these).
std::vector<Tensor> head_params(DarknetNetwork& net) {
  std::vector<Tensor> out;
  for (int y : net.yolo_layers()) {
    NABLA_CHECK(y > 0 && net.layers[y - 1].conv,
                "--finetune head needs a [convolutional] before each [yolo]");
    auto& c = *net.layers[y - 1].conv;
    out.push_back(c.conv->weight);
    if (c.conv->bias.defined()) out.push_back(c.conv->bias);
    if (c.bn) out.push_back(c.bn->weight), out.push_back(c.bn->bias);
  }
  return out;
}

int run_yolo(const Options& o) {
  apps::RunOptions ro;
  ro.device = o.device, ro.threads = o.threads, ro.seed = o.seed;
  int64_t global_batch = 1;
  apps::Run run = apps::Run::start(ro, global_batch);
  const Device dev = run.device();
  const auto t0 = std::chrono::steady_clock::now();
  auto secs = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };

  // data: the synthetic set is written once per seed and size (the train_yolo tests' generator)
  std::string train_list = o.data, val_list = o.val;
  int classes = static_cast<int>(o.classes), size = static_cast<int>(o.size);
  if (o.data == "synthetic") {
    const std::string dir = o.synthetic_dir.empty() ? "abcp_synthetic" : o.synthetic_dir;
    const int w = static_cast<int>(o.synthetic_size);
    data::write_synthetic_detection_set(dir + "/train", static_cast<int>(o.synthetic_train), w, w,
                                        static_cast<uint32_t>(o.seed));
    data::write_synthetic_detection_set(dir + "/val", static_cast<int>(o.synthetic_val), w, w,
                                        static_cast<uint32_t>(o.seed + 1000003));
    train_list = dir + "/train/images", val_list = dir + "/val/images";
    if (classes == 0) classes = 2;
    if (size == 0) size = w;
    std::printf("synthetic set: %lld train + %lld val images of %d x %d in %s\n",
                static_cast<long long>(o.synthetic_train), static_cast<long long>(o.synthetic_val), w, w,
                dir.c_str());
  }
  Cfg cfg;
  if (o.cfg.rfind("builtin:", 0) == 0) {
    const std::string name = o.cfg.substr(8);
    cfg = parse_cfg(
        builtin_yolo_cfg(name, size > 0 ? size : 416, size > 0 ? size : 416, classes > 0 ? classes : 80),
        name + ".cfg");
  } else {
    cfg = read_cfg(o.cfg);
  }
  override_cfg(cfg, size, size, classes);
  auto cpu_net = std::make_shared<DarknetNetwork>(cfg);  // the pretrained weights on the host: masks, shrink
  if (!o.weights.empty()) load_weights(*cpu_net, o.weights);
  const int ncls = cpu_net->layers[cpu_net->yolo_layers().at(0)].yolo.classes;
  const int W = cpu_net->net.width, H = cpu_net->net.height;
  const DetectionData train = load_detection_data(data::YoloDataset(train_list, ncls), W, H);
  const DetectionData val = load_detection_data(data::YoloDataset(val_list, ncls), W, H);
  const PruneStructure s = analyze(*cpu_net);
  const Cost full = count_cost(*cpu_net);
  std::printf(
      "yolo: %s at %d x %d, %d classes | %zu layers, %zu prunable convs, %zu blocks, %zu tie groups | %.4f "
      "GFLOPs, %lld params | %lld train / %lld val images | %s\n",
      o.cfg.c_str(), W, H, ncls, cpu_net->layers.size(), s.convs.size(), s.blocks.size(), s.tie_groups.size(),
      full.gflops(), static_cast<long long>(full.params), static_cast<long long>(train.size()),
      static_cast<long long>(val.size()), dev.str().c_str());

  auto net = std::make_shared<DarknetNetwork>(cfg);
  net->load_state_dict(cpu_net->state_dict());
  net->to(dev);
  const bool all = o.finetune != "head";
  auto ft = [&](int64_t steps, uint64_t seed, bool bn_train) {
    return FinetuneOptions{.steps = steps,
                           .batch = o.batch,
                           .lr = o.finetune_lr,
                           .bn_train = bn_train,
                           .seed = seed,
                           .recalibrate = static_cast<int>(o.bn_recalibrate)};
  };
  if (o.pretrain_steps > 0) {
    FinetuneOptions p = ft(o.pretrain_steps, o.seed, true);
    p.lr = o.pretrain_lr;
    const double l = detection_finetune(*net, train, net->parameters(), p);
    std::printf("pretrained %lld steps: train loss %.3f | %.1f s\n", static_cast<long long>(o.pretrain_steps),
                l, secs());
  }
  const NamedTensors pretrained = state_on(*net, dev);
  cpu_net->load_state_dict(state_on(*net, Device::cpu()));
  if (!o.save_pretrained.empty()) {
    save_weights(*cpu_net, o.save_pretrained);
    std::printf("wrote %s\n", o.save_pretrained.c_str());
  }
  const double map0 = detection_map(*net, val).map, loss0 = detection_loss(*net, val);
  std::printf("pretrained: val mAP@0.5 %.2f%% | val loss %.3f | %.1f s\n", 100 * map0, loss0, secs());

  const bool use_map = o.reward == "map";
  uint64_t eval_seed = o.seed * 7919;
  EvaluateFn eval_candidate = [&](const PruneAction& a) {
    net->load_state_dict(pretrained);
    const ChannelPlan plan = plan_channels(*cpu_net, s, a);
    apply_masks(*net, plan);
    std::vector<Tensor> params = all ? net->parameters() : head_params(*net);
    set_yolo_trainable(*net, params);
    detection_finetune(*net, train, params, ft(o.finetune_steps, ++eval_seed, all), &plan);
    for (auto& p : net->parameters()) p.requires_grad_(true);
    Evaluation e;
    e.cost = count_cost(*cpu_net, &plan);
    if (use_map)
      e.map = detection_map(*net, val).map;
    else
      e.loss = detection_loss(*net, val);
    return e;
  };
  const bool budget = o.flops_budget > 0 || o.params_budget > 0;
  std::vector<std::pair<std::string, std::vector<Candidate>>> results;
  Searches searches = fresh_searches(o, ActionLayout::from(s));
  std::shared_ptr<AbcpController>& controller = searches.controller;
  std::map<std::string, SearchState>& states = searches.states;
  const std::string fingerprint = yolo_fingerprint(o);
  SearchCheckpoint ck{o,
                      fingerprint,
                      "val mAP " + double_to_string(map0) + " loss " + double_to_string(loss0),
                      *controller,
                      states,
                      [&] { return std::to_string(eval_seed); },
                      [&](const std::string& text, const std::string& what) {
                        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), eval_seed);
                        NABLA_CHECK(ec == std::errc() && end == text.data() + text.size(), what, " is '",
                                    text, "', expected an unsigned integer");
                      }};
  ck.start();
  for (std::string kind : {"controller", "random"}) {
    if (o.search != "both" && o.search != kind) continue;
    SearchOptions so{.iterations = static_cast<int>(o.iterations),
                     .lambda = o.lambda,
                     .random_search = kind == "random",
                     .start_unpruned = !budget,
                     .archive = o.archive.empty() ? "" : o.archive + "." + kind + ".jsonl",
                     .seed = o.seed + 17,
                     .reward = use_map ? RewardKind::map : RewardKind::loss,
                     .flops_budget = o.flops_budget,
                     .params_budget = o.params_budget,
                     .over_budget_score = use_map ? 0.0 : 2 * loss0 + 1,
                     .cost = [&](const PruneAction& a) {
                       const ChannelPlan plan = plan_channels(*cpu_net, s, a);
                       return count_cost(*cpu_net, &plan);
                     }};
    SearchState& state = states[kind];
    rewrite_archive(so.archive, state);
    if (state.archive.size() < static_cast<size_t>(o.iterations))
      abcp_search(
          s, kind == "controller" ? controller.get() : nullptr, eval_candidate, full, so,
          [&](const Candidate& c) {
            ck.candidate_done();
            std::printf(
                "%s %d/%d | reward %.4f | %s %.4f | flops %.1f%% params %.1f%% | blocks %d/%zu%s | %.0f s\n",
                kind.c_str(), c.iteration + 1, static_cast<int>(o.iterations), c.reward,
                use_map ? "val mAP" : "val loss", use_map ? c.map : c.loss, 100 * c.flops_fraction,
                100 * c.params_fraction, c.blocks_kept, s.blocks.size(),
                c.within_budget ? "" : " | over budget", secs());
            ck.maybe_stop();
          },
          &state);
    results.emplace_back(kind, state.archive);
  }
  nlohmann::json summary;
  for (auto& [kind, a] : results) {
    const int n = static_cast<int>(a.size()), w = std::max(1, n / 5);
    std::vector<double> fifths;
    for (int f = 0; f < 5 && f * w < n; ++f) {
      double m = 0;
      int k = 0;
      for (int i = f * w; i < (f == 4 ? n : std::min(n, (f + 1) * w)); ++i) m += a[i].reward, ++k;
      fifths.push_back(m / k);
    }
    int within = 0;
    for (const Candidate& c : a) within += c.within_budget;
    const Candidate& b = best_candidate(a);
    std::printf("%s: mean reward by fifth", kind.c_str());
    for (double f : fifths) std::printf(" %.4f", f);
    std::printf(" | %d/%d within budget | best %.4f (iter %d, %s %.4f, flops %.1f%%, blocks %d)\n", within, n,
                b.reward, b.iteration, use_map ? "mAP" : "loss", use_map ? b.map : b.loss,
                100 * b.flops_fraction, b.blocks_kept);
    summary["search"][kind] = {
        {"fifths", fifths}, {"within_budget", within}, {"best", nlohmann::json::parse(candidate_json(b))}};
  }
  const Candidate* best = nullptr;
  for (auto& [kind, a] : results) {
    const Candidate& b = best_candidate(a);
    if (!best || (b.within_budget && !best->within_budget) ||
        (b.within_budget == best->within_budget && b.reward > best->reward))
      best = &b;
  }
  NABLA_CHECK(best, "no search ran");
  if (!best->within_budget)
    std::printf("warning: no candidate met the budget; the best one overall is used\n");

  // The unpruned, the best and the uniform-ratio net at the best's FLOPs: shrunk, fine-tuned alike, measured.
  const PruneAction uniform = uniform_action_for_macs(*cpu_net, s, best->cost.macs);
  PruneAction none;
  none.ratios.assign(s.convs.size(), 0.0);
  none.prune_block.assign(s.blocks.size(), 0);
  std::vector<YoloRow> rows;
  for (auto [name, action] : {std::pair<const char*, PruneAction>{"unpruned", resolve(s, none)},
                              {"abcp-best", best->action},
                              {"uniform", uniform}}) {
    const ChannelPlan plan = plan_channels(*cpu_net, s, action);
    auto small = shrink(cfg, *cpu_net, plan);
    small->to(dev);
    YoloRow r;
    r.name = name;
    r.map_before = detection_map(*small, val).map;
    detection_finetune(*small, train, small->parameters(), ft(o.final_steps, o.seed + 99, true));
    r.map = detection_map(*small, val).map;
    r.img_s = detection_throughput(*small, val, o.bench_batch, static_cast<int>(o.bench_reps));
    r.cost = count_cost(*small);
    r.layers = static_cast<int>(small->layers.size());
    r.blocks = static_cast<int>(s.blocks.size());
    for (int p : action.prune_block) r.blocks -= p;
    std::printf("%s: mAP@0.5 %.2f%% before, %.2f%% after %lld steps | %.1f%% FLOPs | %.1f img/s | %.0f s\n",
                name, 100 * r.map_before, 100 * r.map, static_cast<long long>(o.final_steps),
                100.0 * r.cost.macs / full.macs, r.img_s, secs());
    if (!o.export_prefix.empty() && r.name == "abcp-best") {
      small->to(Device::cpu());
      export_darknet(shrink_cfg(cfg, *cpu_net, plan), *small, o.export_prefix);
      std::printf("wrote %s.cfg and %s.weights\n", o.export_prefix.c_str(), o.export_prefix.c_str());
    }
    rows.push_back(r);
  }
  std::printf(
      "\nABCP on %s, %d x %d, %s: %lld candidates per search, %lld fine-tune steps each, reward %s, lambda "
      "%g, FLOPs budget %g, params budget %g; every net fine-tuned %lld steps after the search\n",
      o.cfg.c_str(), W, H, dev.str().c_str(), static_cast<long long>(o.iterations),
      static_cast<long long>(o.finetune_steps), o.reward.c_str(), o.lambda, o.flops_budget, o.params_budget,
      static_cast<long long>(o.final_steps));
  std::printf(
      "| net | mAP@0.5 | mAP@0.5 before fine-tune | params | GFLOPs | FLOPs | blocks | layers | img/s |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (const YoloRow& r : rows) {
    std::printf("| %s | %.2f%% | %.2f%% | %lld | %.4f | %.1f%% | %d/%zu | %d | %.1f |\n", r.name.c_str(),
                100 * r.map, 100 * r.map_before, static_cast<long long>(r.cost.params), r.cost.gflops(),
                100.0 * r.cost.macs / full.macs, r.blocks, s.blocks.size(), r.layers, r.img_s);
    summary["rows"].push_back({{"name", r.name},
                               {"map", r.map},
                               {"map_before", r.map_before},
                               {"params", r.cost.params},
                               {"macs", r.cost.macs},
                               {"gflops", r.cost.gflops()},
                               {"flops_fraction", static_cast<double>(r.cost.macs) / full.macs},
                               {"blocks", r.blocks},
                               {"layers", r.layers},
                               {"img_s", r.img_s}});
  }
  summary["full"] = {{"macs", full.macs}, {"params", full.params}, {"blocks", s.blocks.size()}};
  summary["pretrained_map"] = map0;
  summary["flops_budget"] = o.flops_budget;
  summary["params_budget"] = o.params_budget;
  summary["seconds"] = secs();
  if (!o.summary.empty()) {
    std::ofstream f(o.summary);
    NABLA_CHECK(f.good(), "--summary ", o.summary, ": cannot open for writing");
    f << summary.dump(1) << "\n";
  }
  std::printf("total %.1f s\n", secs());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines through pipes too
  Options o;
  if (std::optional<int> code = parse(argc, argv, o)) return *code;
  try {
    return o.model == "yolo" ? run_yolo(o) : run_proxy(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prune_abcp: %s\n", e.what());
  }
  return apps::kExitFailure;
}
