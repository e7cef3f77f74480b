// search_pstrn: PSTRN, the progressive genetic search of tensor-ring ranks (docs/pstrn.md).
//
//   options -> task (synthetic TR-FC, TR-LeNet5 on MNIST-format data, TR-ResNet-20/32 on CIFAR-10, TR-LSTM
//   on the synthetic sequence task of algorithms/pstrn/sequences.h) ->
//   either a search: PstrnSearch::run(fitness) with one JSONL record per generation (the population's best,
//   the Pareto front of the phase) and an atomic checkpoint after each (--checkpoint, --resume);
//   or --retrain RANKS: one network trained from scratch, its test error and compression (--dense: the dense
//   LeNet-5 of TR-LeNet5's shape the same way, the baseline);
//   or --bench N (with --retrain RANKS, image tasks): N networks of those ranks trained one after another
//   in this process exactly as the search evaluates one (train_net), the median seconds per network
//   without the first (which pays cuDNN's plan set-up) -- the search's evaluation throughput;
//   or --baseline: the synthetic experiment's comparisons (equal ranks, a coarse grid, random search, a
//   plain GA over ranks 2..20) on the same fitness; for the TR-LSTM task, equal ranks, random search and
//   the plain GA over ranks 2..--baseline-max-rank.
// Fitness (as the authors' code): train from scratch for --epochs with Adam (--lr, x0.1 at --milestones),
// error = 100 - best validation top-1 over the epochs (synthetic: the best validation MSE), compression =
// the smallest layer ratio (TR-LeNet5, as the reference) or the whole-network ratio (TR-ResNet).
// The validation split is held out of the training set (--val-size); the test set is used by --retrain only.
// The image sets are put on the device once per process (load_images); a network's step reads nothing to
// the host (the loss sums on the device and is checked once per epoch), and --cuda-graph replays the
// forward + backward from a CUDA graph (apps::TrainStep).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "algorithms/optim/optimizer.h"
#include "algorithms/pstrn/pstrn.h"
#include "algorithms/pstrn/sequences.h"
#include "algorithms/pstrn/synthetic.h"
#include "apps/common/evaluate.h"
#include "apps/common/options.h"
#include "apps/common/progress.h"
#include "apps/common/train_step.h"
#include "data/cifar.h"
#include "data/idx.h"
#include "engine/random.h"
#include "models/tensor_ring.h"
#include "models/tr_lstm.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"

using namespace nabla;
using nlohmann::json;

namespace {

struct Options {
  std::string task = "synthetic", baseline = "none", retrain;
  bool dense = false;  // --dense: the dense LeNet-5 of TR-LeNet5's shape, trained as a retrain
  std::string steps, generations;
  int64_t pop_size = 0, offspring = 0, top_k = 5, min_rank = 0, eval_threads = 1, random_evals = 600;
  bool single_objective = false, reinit_each_phase = false, carry_population = false;
  std::string data_dir, dataset = "fashion-mnist";
  int64_t train_size = 0, val_size = 0, epochs = 0, batch_size = 0;
  double lr = 0;
  std::string milestones, order, compression = "min-layer";
  std::string device = "cpu", checkpoint, resume, metrics;
  int64_t threads = 0, bench = 0;
  bool cuda_graph = false;
  uint64_t seed = 0;
  // the TR-LSTM task
  std::string lstm_in_shape = "16,16", lstm_gate_shape = "4,16", seq_sizes = "1500,500,1000";
  int64_t seq_length = 6, seq_motifs = 3, seq_motif_rank = 3, baseline_max_rank = 0;
  double seq_amplitude = 5.0, input_dropout = 0.0;
};

std::vector<int64_t> parse_list(const std::string& s, const char* what) {
  try {
    return models::parse_ranks(s);
  } catch (const Error& e) {
    fail("option '--", what, "': ", e.what());
  }
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    NABLA_CHECK(out, "cannot write ", tmp);
    out << text;
    out.flush();
    NABLA_CHECK(out, "writing ", tmp, " failed");
  }
  std::filesystem::rename(tmp, path);
}

// ---- image tasks: data in memory, normalised, split into train / validation / test ----
struct ImageData {
  Tensor x_train, y_train, x_val, y_val, x_test, y_test;
  int64_t channels = 1, size = 28, classes = 10;
};

Tensor normalise(const Tensor& u8, double mean, double std, int64_t channels) {
  Tensor x = u8.to(DType::f32);
  if (x.dim() == 3) x = x.unsqueeze(1);
  if (channels == 3 && x.size(1) != 3) x = x.permute({0, 3, 1, 2});  // HWC -> CHW if needed
  return mul(add(x, scalar_like(-mean * 255.0, x)), scalar_like(1.0 / (std * 255.0), x)).contiguous();
}

ImageData load_images(const Options& o) {
  data::LabeledImages tr, te;
  ImageData d;
  double mean = 0.2860, std = 0.3530;
  if (o.dataset == "cifar10") {
    tr = data::load_cifar10(o.data_dir, true);
    te = data::load_cifar10(o.data_dir, false);
    d.channels = 3;
    d.size = 32;
    mean = 0.4734;
    std = 0.2516;
  } else {
    tr = o.dataset == "mnist" ? data::load_mnist(o.data_dir, true)
                              : data::load_fashion_mnist(o.data_dir, true);
    te = o.dataset == "mnist" ? data::load_mnist(o.data_dir, false)
                              : data::load_fashion_mnist(o.data_dir, false);
    if (o.dataset == "mnist") mean = 0.1307, std = 0.3081;
  }
  Tensor x = normalise(tr.images, mean, std, d.channels), y = tr.labels;
  const int64_t n = x.size(0);
  NABLA_CHECK(o.val_size < n, "--val-size ", o.val_size, " leaves no training data (", n, " examples)");
  const int64_t n_train = o.train_size > 0 ? std::min(o.train_size, n - o.val_size) : n - o.val_size;
  // A fixed shuffle (seed 233, the authors' seed) before the split, so subsets are class-balanced on average.
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 g(233);
  std::shuffle(perm.begin(), perm.end(), g);
  Tensor idx = from_vector(std::vector<double>(perm.begin(), perm.end()), {n}, {.dtype = DType::i64});
  d.x_val = index_select(x, 0, idx.narrow(0, 0, o.val_size));
  d.y_val = index_select(y, 0, idx.narrow(0, 0, o.val_size));
  d.x_train = index_select(x, 0, idx.narrow(0, o.val_size, n_train));
  d.y_train = index_select(y, 0, idx.narrow(0, o.val_size, n_train));
  d.x_test = normalise(te.images, mean, std, d.channels);
  d.y_test = te.labels;
  // On the device once: every network of the search draws its batches there (index_select on the device).
  const Device dev = Device::parse(o.device);
  for (Tensor* t : {&d.x_train, &d.y_train, &d.x_val, &d.y_val, &d.x_test, &d.y_test})
    if (t->numel() > 0) *t = t->to(dev);  // an empty split (--val-size 0) is never read
  return d;
}

struct NetResult {
  double best_val_error = 100, test_error = NAN, compression = 1, network_compression = 1;
  int64_t params = 0;
};

std::shared_ptr<nn::Module> build_net(const Options& o, const ImageData& d, const pstrn::Ranks& ranks,
                                      Generator* gen, double& min_cr, double& net_cr) {
  models::TRLayerOptions lo{.order = models::parse_tr_contraction(o.order), .generator = gen};
  if (o.dense) {  // the baseline: the same shape with dense layers, initialised from the run's seed
    manual_seed(233 + o.seed);
    auto net = std::make_shared<models::DenseLeNet5>(d.classes);
    min_cr = net_cr = 1.0;
    return net;
  }
  if (o.task == "lenet5") {
    auto net = std::make_shared<models::TRLeNet5>(
        ranks, models::TRLeNet5Options{.num_classes = d.classes, .layer = lo});
    min_cr = net->min_compression();
    net_cr = net->network_compression();
    return net;
  }
  lo.bias = false;
  lo.init = models::TRInit::resnet;
  auto net = std::make_shared<models::TRResNet>(
      ranks, models::TRResNetOptions{.depth = o.task == "resnet32" ? 32 : 20,
                                     .num_classes = d.classes,
                                     .in_channels = d.channels,
                                     .layer = lo});
  min_cr = net->min_compression();
  net_cr = net->network_compression();
  return net;
}

double error_on(nn::Module& net, const Tensor& x, const Tensor& y, Device dev, int64_t batch,
                const dist::Session& s) {
  int64_t at = 0;
  const int64_t n = x.size(0);
  auto acc = apps::evaluate_classifier(
      net,
      [&]() -> std::optional<data::Batch> {
        if (at >= n) return std::nullopt;
        const int64_t b = std::min(batch, n - at);
        data::Batch bt{x.narrow(0, at, b).to(dev), y.narrow(0, at, b).to(dev), {}, 0, 0};  // no-op copies
        at += b;
        return bt;
      },
      10, false, s);
  return 100.0 * (1.0 - acc.top1);
}

// Trains one TR net from scratch (seed 233 for the cores and batch order, as the authors' search).
NetResult train_net(const Options& o, const ImageData& d, const pstrn::Ranks& ranks, bool test) {
  Generator gen{233 + o.seed, 0};
  NetResult r;
  auto net = build_net(o, d, ranks, &gen, r.compression, r.network_compression);
  r.params = net->num_parameters();
  const Device dev = Device::parse(o.device);
  net->to(dev);
  optim::Adam opt(net->parameters(), {.lr = o.lr});
  dist::Session session;
  // No host read per step: the losses sum on the device, checked once per epoch.
  apps::TrainStep step(*net, opt, session, apps::classifier_forward(0.0),
                       {.cuda_graph = o.cuda_graph && dev.is_cuda(), .read_results = false});
  const auto milestones = parse_list(o.milestones, "milestones");
  std::mt19937_64 order(233 + o.seed);
  const int64_t n = d.x_train.size(0);
  std::vector<int64_t> perm(n);
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    double lr = o.lr;
    for (int64_t m : milestones)
      if (epoch >= m) lr *= 0.1;
    net->train();
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), order);
    Tensor idx =
        from_vector(std::vector<double>(perm.begin(), perm.end()), {n}, {.dtype = DType::i64}).to(dev);
    Tensor loss_sum;  // on the device
    for (int64_t s = 0; s < n; s += o.batch_size) {
      Tensor bi = idx.narrow(0, s, std::min(o.batch_size, n - s));
      auto res = step.run(index_select(d.x_train, 0, bi), index_select(d.y_train, 0, bi), lr);
      loss_sum = loss_sum.defined() ? add(loss_sum, res.loss_device) : res.loss_device.clone();
    }
    if (loss_sum.defined()) apps::check_loss(loss_sum.item(), epoch, false);  // one read per epoch
    if (d.x_val.size(0) > 0)
      r.best_val_error = std::min(r.best_val_error, error_on(*net, d.x_val, d.y_val, dev, 1000, session));
  }
  if (test) r.test_error = error_on(*net, d.x_test, d.y_test, dev, 1000, session);
  return r;
}

pstrn::FitnessResult fitness_of(const NetResult& r, const Options& o) {
  return {r.best_val_error, o.compression == "network" ? r.network_compression : r.compression};
}

// ---- synthetic baselines ----
void log_line(apps::MetricsLog& log, const json& j) {
  if (log.enabled()) log.write(j);
}

int run_baseline(const Options& o, int64_t n_ranks, const pstrn::Fitness& fit, apps::MetricsLog& log) {
  std::vector<pstrn::Ranks> cands;
  if (o.baseline == "equal") {
    for (int64_t r = 2; r <= o.baseline_max_rank; ++r) cands.push_back(pstrn::Ranks(n_ranks, r));
  } else if (o.baseline == "grid") {
    const int64_t g[] = {2, 3, 4, 6, 8, 12};
    for (int64_t a : g)
      for (int64_t b : g)
        for (int64_t c : g)
          for (int64_t e : g) cands.push_back({a, b, c, e});
  } else if (o.baseline == "random") {
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<int64_t> u(2, o.baseline_max_rank);
    for (int64_t i = 0; i < o.random_evals; ++i) {
      pstrn::Ranks r(n_ranks);
      for (auto& v : r) v = u(rng);
      cands.push_back(r);
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<pstrn::FitnessResult> res;
  double best = INFINITY;
  int64_t best_i = 0, first_within = -1;
  for (size_t at = 0; at < cands.size(); at += 10) {  // in chunks, so a long baseline logs as it goes
    std::vector<pstrn::Ranks> chunk(cands.begin() + at, cands.begin() + std::min(cands.size(), at + 10));
    auto r = fit(chunk);
    res.insert(res.end(), r.begin(), r.end());
    for (size_t i = at; i < res.size(); ++i) {
      log_line(log, {{"baseline", o.baseline},
                     {"eval", i + 1},
                     {"ranks", cands[i]},
                     {"error", res[i].error},
                     {"compression", res[i].compression}});
      if (res[i].error < best) best = res[i].error, best_i = static_cast<int64_t>(i);
    }
  }
  for (size_t i = 0; i < res.size() && first_within < 0; ++i)
    if (res[i].error <= best + 1e-3) first_within = static_cast<int64_t>(i) + 1;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "baseline %s: %zu evaluations | best error %.4f at ranks [%s] (compression %.1f) | reached at "
      "evaluation %lld | %.1f s\n",
      o.baseline.c_str(), res.size(), best, join(cands[best_i]).c_str(), res[best_i].compression,
      static_cast<long long>(first_within), secs);
  log_line(log, {{"baseline", o.baseline},
                 {"summary", true},
                 {"evaluations", res.size()},
                 {"best_error", best},
                 {"best_ranks", cands[best_i]},
                 {"seconds", secs}});
  return 0;
}

json record_json(const pstrn::Record& r) {
  return {{"ranks", r.ranks}, {"error", r.result.error}, {"compression", r.result.compression}};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  apps::OptionSet cli("search_pstrn", "PSTRN: progressive genetic search of tensor-ring ranks");
  cli.section("Task");
  cli.add("task", &o.task, "synthetic", "what to search: the synthetic TR-FC, TR-LeNet5, TR-ResNet-20/32")
      .one_of({"synthetic", "lenet5", "resnet20", "resnet32", "lstm"});
  cli.add("retrain", &o.retrain, "", "train these ranks (comma-separated) from scratch instead of searching")
      .value_name("RANKS");
  cli.add_switch(
      "dense", &o.dense,
      "task lenet5: train the dense LeNet-5 of TR-LeNet5's shape (1-20-50-320-10, 429,100 "
      "parameters) from scratch instead, as --retrain does: the baseline a TR-LeNet5 is compared with");
  cli.add("baseline", &o.baseline, "none",
          "synthetic task: score a baseline instead of PSTRN (ga: plain NSGA-II "
          "over ranks 2..20, no progression)")
      .one_of({"none", "equal", "grid", "random", "ga"});
  cli.add("random-evals", &o.random_evals, 600, "evaluations of --baseline random").positive();
  cli.add("baseline-max-rank", &o.baseline_max_rank, 0,
          "largest rank of --baseline equal/random/ga (0: 20; lstm 15, phase 1's largest)")
      .non_negative();
  cli.section("Search");
  cli.add("steps", &o.steps, "", "rank step of each phase (default 5,2,1; synthetic 3,2,1 as its logs)");
  cli.add("generations", &o.generations, "",
          "generations of each phase, the initial one included (default "
          "50,30,20; synthetic 10,10,10)");
  cli.add("pop-size", &o.pop_size, 0, "population (0: 30; synthetic 20)").non_negative();
  cli.add("offspring", &o.offspring, 0, "offspring per generation (0: = population)").non_negative();
  cli.add("top-k", &o.top_k, 5, "individuals whose ranks' mode centres the next interest region").positive();
  cli.add("min-rank", &o.min_rank, 0, "smallest decoded rank (0: 2; synthetic 3 as its logs)").non_negative();
  cli.add_switch("single-objective", &o.single_objective, "minimise the error only (PSTRN-S)");
  cli.add_switch("reinit-each-phase", &o.reinit_each_phase,
                 "restart every phase from the seed's population (the synthetic logs do; default there)");
  cli.add_switch("carry-population", &o.carry_population,
                 "synthetic task: carry the population over the phases instead (evolution_search_multi.py)");
  cli.add("eval-threads", &o.eval_threads, 1,
          "synthetic and lstm tasks: networks trained at once (OpenMP, CPU)")
      .positive();
  cli.section("Data and training of one network");
  cli.add("data-dir", &o.data_dir, "",
          "data folder (default: ../shared/data/pstrn-synthetic or "
          "/usr/share/datasets/fashion-mnist)");
  cli.add("dataset", &o.dataset, "fashion-mnist", "image data for lenet5 / resnet")
      .one_of({"fashion-mnist", "mnist", "cifar10"});
  cli.add("train-size", &o.train_size, 0,
          "training examples (0: all but the validation split; synthetic: 4000)")
      .non_negative();
  cli.add("val-size", &o.val_size, 5000, "validation examples held out of the training set").non_negative();
  cli.add("epochs", &o.epochs, 0, "epochs per network (0: 20; synthetic 100)").non_negative();
  cli.add("batch-size", &o.batch_size, 0, "batch (0: 512; synthetic 128)").non_negative();
  cli.add("lr", &o.lr, 0, "Adam learning rate (0: 2e-3; synthetic 1e-2)").non_negative();
  cli.add("milestones", &o.milestones, "",
          "epochs where the lr drops x0.1 (default 5,10,15; synthetic 30,60,90)");
  cli.add("order", &o.order, "",
          "TR contraction order: paper, full_weight or cheapest (the one holding fewer "
          "elements, per layer; default for images: TR-LeNet5's c1 costs 40x more in the paper's order) "
          "(default: synthetic paper, images cheapest)")
      .check([](const std::string& v) {
        return v.empty() || v == "paper" || v == "full_weight" || v == "cheapest"
                   ? std::string()
                   : "'" + v + "' is not one of paper, full_weight, cheapest";
      });
  cli.add("compression", &o.compression, "min-layer",
          "second objective of lenet5 / resnet / lstm: the smallest layer ratio (the reference; lstm: its "
          "one TR layer) or the whole network's")
      .one_of({"min-layer", "network"});
  cli.section(
      "TR-LSTM task (--task lstm: synthetic sequences with planted motifs; UCF11/HMDB51 are not here)");
  cli.add("lstm-in-shape", &o.lstm_in_shape, "16,16", "TR modes of the input features (product = features)");
  cli.add("lstm-gate-shape", &o.lstm_gate_shape, "4,16",
          "TR modes of the 4 gates' outputs (product = 4 x hidden); ranks = input + gate modes");
  cli.add("input-dropout", &o.input_dropout, 0.0, "dropout on the input features (the authors' HMDB51: 0.25)")
      .check([](const double& v) {
        return v >= 0 && v < 1 ? std::string() : "must be in [0, 1), got " + std::to_string(v);
      });
  cli.add("seq-sizes", &o.seq_sizes, "1500,500,1000", "training, validation and test sequences");
  cli.add("seq-length", &o.seq_length, 6, "steps per sequence (>= 2)").positive();
  cli.add("seq-motifs", &o.seq_motifs, 3, "motifs M: classes are ordered pairs, M (M - 1)").positive();
  cli.add("seq-motif-rank", &o.seq_motif_rank, 3, "matrix rank of each motif as a [rows, cols] matrix")
      .positive();
  cli.add("seq-amplitude", &o.seq_amplitude, 5.0, "Frobenius norm of a motif (noise std 1 per feature)")
      .check([](const double& v) { return v >= 0 ? std::string() : "must be >= 0"; });
  cli.section("Run");
  cli.add("device", &o.device, "cpu", "cpu or cuda[:N]");
  cli.add("threads", &o.threads, 0, "OpenMP threads (0: the default)").non_negative();
  cli.add_switch("cuda-graph", &o.cuda_graph,
                 "image tasks on cuda: replay each network's forward + backward from a CUDA graph");
  cli.add("bench", &o.bench, 0,
          "with --retrain, image tasks: train N networks of those ranks one after another in this process, "
          "as the search evaluates them, and print the median seconds per network without the first")
      .non_negative();
  cli.add("seed", &o.seed, 0, "search seed (and offset of the training seed)");
  cli.add("checkpoint", &o.checkpoint, "", "write the search state here after every generation (atomically)");
  cli.add("resume", &o.resume, "", "continue the search saved in this checkpoint");
  cli.add("metrics", &o.metrics, "", "JSONL: one record per generation (or per baseline evaluation)");
  cli.example("", "the synthetic experiment as the authors' logs: 3 phases x 10 generations x 20 networks");
  cli.example("--baseline grid --epochs 30", "the coarse grid {2,3,4,6,8,12}^4 on the synthetic data");
  cli.example("--task lenet5 --train-size 5000 --val-size 1000 --epochs 2 --generations 4,3,3 --pop-size 10",
              "a small TR-LeNet5 search on Fashion-MNIST");
  cli.example("--task lenet5 --retrain 8,14,8,18,14,18,22,28,6,24,20,14,20,20,10,22,20,20,6,20 --val-size 0",
              "retrain the paper's Fashion-MNIST PSTRN-M ranks for 20 epochs");
  cli.example("--task lenet5 --dense --val-size 0", "the dense LeNet-5 of the same shape, for comparison");
  cli.example("--task lstm --eval-threads 2 --threads 1",
              "TR-LSTM search on the synthetic sequence task (156 nets)");
  cli.example("--task lstm --baseline equal", "TR-LSTM with equal ranks 2..15, the enumeration baseline");
  cli.example("--task lstm --retrain 6,3,6,6 --seq-sizes 4000,500,2000", "retrain one TR-LSTM rank vector");
  if (auto code = cli.parse(argc, argv, [&] {
        (void)Device::parse(o.device);
        if (!o.retrain.empty()) (void)parse_list(o.retrain, "retrain");
        if (o.dense && o.task != "lenet5") fail("--dense needs --task lenet5, got task '", o.task, "'");
        if (o.dense && !o.retrain.empty()) fail("--dense trains the dense net: give it no --retrain ranks");
        if (o.dense && o.bench > 0)
          fail("--dense: --bench times TR nets (--retrain RANKS), not the dense one");
        if (o.bench > 0 && (o.retrain.empty() || o.task == "synthetic" || o.task == "lstm"))
          fail("--bench needs --retrain RANKS and an image task (lenet5, resnet20, resnet32), got task '",
               o.task, "'", o.retrain.empty() ? " and no --retrain" : "");
        if (o.bench == 1) fail("--bench: at least 2 networks (the first is the warm-up), got 1");
        if (o.baseline != "none" && o.task != "synthetic" && o.task != "lstm")
          fail("--baseline needs --task synthetic or lstm");
        if (o.baseline == "grid" && o.task != "synthetic") fail("--baseline grid needs --task synthetic");
        if (o.task == "lstm") {
          const auto in = parse_list(o.lstm_in_shape, "lstm-in-shape");
          const auto gate = parse_list(o.lstm_gate_shape, "lstm-gate-shape");
          int64_t features = 1, gates = 1;
          for (int64_t v : in) features *= v;
          for (int64_t v : gate) gates *= v;
          if (in.size() != 2 || in[0] * in[1] != features)
            fail(
                "--lstm-in-shape: the sequence task's features are one [rows, cols] matrix, so 2 modes, got "
                "'",
                o.lstm_in_shape, "'");
          if (gates % 4 != 0)
            fail("--lstm-gate-shape: the product must be 4 x hidden, got ", gates, " ('", o.lstm_gate_shape,
                 "')");
          if (parse_list(o.seq_sizes, "seq-sizes").size() != 3)
            fail("--seq-sizes: expected 3 numbers (train, validation, test), got '", o.seq_sizes, "'");
        }
        if (o.carry_population && o.reinit_each_phase)
          fail("--carry-population and --reinit-each-phase exclude each other");
      }))
    return *code;

  const bool syn = o.task == "synthetic", seq = o.task == "lstm";
  auto dflt = [](std::string& s, const char* v) {
    if (s.empty()) s = v;
  };
  dflt(o.steps, syn || seq ? "3,2,1" : "5,2,1");
  dflt(o.generations, syn ? "10,10,10" : seq ? "5,4,4" : "50,30,20");
  dflt(o.milestones, syn ? "30,60,90" : seq ? "7" : "5,10,15");
  dflt(o.order, syn || seq ? "paper" : "cheapest");
  dflt(o.data_dir, syn ? "../shared/data/pstrn-synthetic" : "/usr/share/datasets/fashion-mnist");
  if (o.pop_size == 0) o.pop_size = syn ? 20 : seq ? 12 : 30;
  if (o.offspring == 0) o.offspring = o.pop_size;
  if (o.min_rank == 0) o.min_rank = syn ? 3 : 2;
  if (o.epochs == 0) o.epochs = syn ? 100 : seq ? 10 : 20;
  if (o.batch_size == 0) o.batch_size = syn ? 128 : seq ? 50 : 512;
  if (o.lr == 0) o.lr = syn ? 1e-2 : 2e-3;
  if (o.baseline_max_rank == 0) o.baseline_max_rank = seq ? 15 : 20;
  if (syn && !o.carry_population) o.reinit_each_phase = true;
  if (o.threads > 0) omp_set_num_threads(static_cast<int>(o.threads));

  try {
    apps::MetricsLog log = o.metrics.empty() ? apps::MetricsLog() : apps::MetricsLog(o.metrics);
    const int64_t n_ranks = syn   ? 4
                            : seq ? static_cast<int64_t>(parse_list(o.lstm_in_shape, "").size() +
                                                         parse_list(o.lstm_gate_shape, "").size())
                            : o.task == "lenet5" ? models::TRLeNet5::kNumRanks
                                                 : models::TRResNet::kNumRanks;
    pstrn::Fitness fit;
    std::optional<pstrn::SyntheticData> syn_data;
    std::optional<ImageData> images;
    std::optional<pstrn::SequenceTask> seq_data;
    pstrn::SequenceTrainOptions seq_train;
    if (seq) {
      const auto sizes = parse_list(o.seq_sizes, "seq-sizes");
      const auto in = parse_list(o.lstm_in_shape, "lstm-in-shape");
      seq_data = pstrn::make_sequence_task({.n_train = sizes[0],
                                            .n_val = sizes[1],
                                            .n_test = sizes[2],
                                            .length = o.seq_length,
                                            .rows = in[0],
                                            .cols = in[1],
                                            .motifs = o.seq_motifs,
                                            .motif_rank = o.seq_motif_rank,
                                            .amplitude = o.seq_amplitude,
                                            .seed = o.seed});
      seq_train = {.model = {.in_shape = in,
                             .out_shape = parse_list(o.lstm_gate_shape, "lstm-gate-shape"),
                             .input_dropout = o.input_dropout,
                             .layer = {.bias = true,
                                       .init = models::TRInit::resnet,
                                       .order = models::parse_tr_contraction(o.order)}},
                   .epochs = o.epochs,
                   .batch_size = o.batch_size,
                   .lr = o.lr,
                   .milestones = parse_list(o.milestones, "milestones"),
                   .network_compression = o.compression == "network",
                   .device = o.device,
                   .seed = o.seed};
      std::printf(
          "TR-LSTM task: %lld / %lld / %lld sequences of %lld steps x %lld features, %lld classes (ordered "
          "motif "
          "pairs), motif rank %lld, amplitude %.2f; %lld ranks\n",
          static_cast<long long>(sizes[0]), static_cast<long long>(sizes[1]),
          static_cast<long long>(sizes[2]), static_cast<long long>(o.seq_length),
          static_cast<long long>(in[0] * in[1]), static_cast<long long>(seq_data->classes),
          static_cast<long long>(o.seq_motif_rank), o.seq_amplitude, static_cast<long long>(n_ranks));
      fit = pstrn::sequence_fitness(*seq_data, seq_train, o.eval_threads);
    } else if (syn) {
      syn_data = pstrn::load_synthetic(o.data_dir, o.train_size > 0 ? o.train_size : 4000, o.seed);
      std::printf(
          "synthetic: %lld training rows (regenerated), 1000 validation rows; least-squares floor of the "
          "validation MSE (in-sample) %.4f\n",
          static_cast<long long>(syn_data->x_train.size(0)), pstrn::synthetic_linear_floor(*syn_data));
      pstrn::SyntheticTrainOptions so{.epochs = o.epochs,
                                      .batch_size = o.batch_size,
                                      .lr = o.lr,
                                      .milestones = parse_list(o.milestones, "milestones"),
                                      .seed = o.seed};
      fit = pstrn::synthetic_fitness(*syn_data, so, o.eval_threads);
    } else {
      if (o.task != "lenet5" && o.dataset != "cifar10")
        std::printf("note: %s on %s (28x28, 1 channel); the paper's TR-ResNet runs are on CIFAR-10\n",
                    o.task.c_str(), o.dataset.c_str());
      images = load_images(o);
      std::printf("%s: %lld training, %lld validation, %lld test examples\n", o.dataset.c_str(),
                  static_cast<long long>(images->x_train.size(0)),
                  static_cast<long long>(images->x_val.size(0)),
                  static_cast<long long>(images->x_test.size(0)));
      fit = [&](const std::vector<pstrn::Ranks>& batch) {
        std::vector<pstrn::FitnessResult> out;
        for (auto& r : batch) out.push_back(fitness_of(train_net(o, *images, r, false), o));
        return out;
      };
    }

    if (o.dense) {  // the dense LeNet-5 of TR-LeNet5's shape, trained as one --retrain
      const auto t0 = std::chrono::steady_clock::now();
      auto r = train_net(o, *images, {}, true);
      std::printf("dense LeNet-5: test error %.2f%% | best validation error %.2f%% | parameters %lld\n",
                  r.test_error, r.best_val_error, static_cast<long long>(r.params));
      log_line(log,
               {{"dense", true},
                {"task", o.task},
                {"epochs", o.epochs},
                {"test_error", r.test_error},
                {"best_val_error", r.best_val_error},
                {"params", r.params},
                {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}});
      return 0;
    }
    if (!o.retrain.empty()) {
      const auto ranks = parse_list(o.retrain, "retrain");
      NABLA_CHECK(static_cast<int64_t>(ranks.size()) == n_ranks, "--retrain: ", o.task, " has ", n_ranks,
                  " ranks, got ", ranks.size());
      if (o.bench > 0) {  // the search's evaluation throughput: N nets in this process, the first excluded
        std::vector<double> secs;
        for (int64_t i = 0; i < o.bench; ++i) {
          const auto t0 = std::chrono::steady_clock::now();
          auto r = train_net(o, *images, ranks, true);  // the test error's read waits for the device
          secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          std::printf("net %lld: %.3f s | test error %.2f%% | parameters %lld\n",
                      static_cast<long long>(i + 1), secs.back(), r.test_error,
                      static_cast<long long>(r.params));
          log_line(log, {{"bench", i + 1},
                         {"ranks", ranks},
                         {"order", o.order},
                         {"cuda_graph", o.cuda_graph},
                         {"seconds", secs.back()},
                         {"test_error", r.test_error},
                         {"params", r.params}});
        }
        std::vector<double> warm(secs.begin() + 1, secs.end());
        std::sort(warm.begin(), warm.end());
        const double med = warm[warm.size() / 2];
        std::printf(
            "bench: %s order%s, %lld epoch(s) on %lld images + %lld test: %.4f s/net (median of %zu, "
            "the first net %.3f s excluded) = %.2f nets/s\n",
            o.order.c_str(), o.cuda_graph ? ", cuda graph" : "", static_cast<long long>(o.epochs),
            static_cast<long long>(images->x_train.size(0)), static_cast<long long>(images->x_test.size(0)),
            med, warm.size(), secs[0], 1.0 / med);
        log_line(log, {{"bench_summary", true},
                       {"order", o.order},
                       {"cuda_graph", o.cuda_graph},
                       {"median_seconds", med},
                       {"first_seconds", secs[0]},
                       {"nets", o.bench}});
        return 0;
      }
      const auto t0 = std::chrono::steady_clock::now();
      json j = {{"retrain", ranks}, {"task", o.task}, {"epochs", o.epochs}};
      if (seq) {
        auto r = pstrn::train_sequence(*seq_data, ranks, seq_train, true);
        std::printf(
            "ranks [%s]: test error %.2f%% | best validation error %.2f%% | parameters %lld | compression "
            "(TR layer) %.2f | network %.2f\n",
            join(ranks).c_str(), r.test_error, r.best_val_error, static_cast<long long>(r.params),
            r.compression, r.network_compression);
        j.update({{"test_error", r.test_error},
                  {"best_val_error", r.best_val_error},
                  {"params", r.params},
                  {"compression", r.compression},
                  {"network_compression", r.network_compression}});
      } else if (syn) {
        auto r = fit({ranks})[0];
        std::printf("ranks [%s]: best validation MSE %.4f | compression %.2f\n", join(ranks).c_str(), r.error,
                    r.compression);
        j["val_mse"] = r.error;
        j["compression"] = r.compression;
      } else {
        auto r = train_net(o, *images, ranks, true);
        std::printf(
            "ranks [%s]: test error %.2f%% | best validation error %.2f%% | parameters %lld | compression "
            "(smallest layer) %.2f | network %.2f\n",
            join(ranks).c_str(), r.test_error, r.best_val_error, static_cast<long long>(r.params),
            r.compression, r.network_compression);
        j.update({{"test_error", r.test_error},
                  {"best_val_error", r.best_val_error},
                  {"params", r.params},
                  {"compression", r.compression},
                  {"network_compression", r.network_compression}});
      }
      j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      log_line(log, j);
      return 0;
    }
    if (o.baseline != "none" && o.baseline != "ga") return run_baseline(o, n_ranks, fit, log);

    pstrn::PstrnOptions po{.n_ranks = n_ranks,
                           .steps = parse_list(o.steps, "steps"),
                           .generations = parse_list(o.generations, "generations"),
                           .min_rank = o.min_rank,
                           .pop_size = o.pop_size,
                           .n_offspring = o.offspring,
                           .top_k = o.top_k,
                           .reinit_each_phase = o.reinit_each_phase,
                           .multi_objective = !o.single_objective,
                           .seed = o.seed};
    if (o.baseline == "ga") {  // one phase over the ranks themselves: 2..20, as many evaluations as PSTRN's
      int64_t total = 0;
      for (int64_t g : po.generations) total += g;
      po.steps = {1};
      po.generations = {total};
      po.code_low = 2;
      po.code_high = o.baseline_max_rank;
      po.min_rank = 2;
    }
    pstrn::PstrnSearch search(po);
    if (!o.resume.empty()) {
      std::ifstream in(o.resume);
      NABLA_CHECK(in, "--resume: cannot open ", o.resume);
      json st;
      try {
        st = json::parse(in);
      } catch (const json::exception& e) {
        fail("--resume: ", o.resume, " is not JSON: ", e.what());
      }
      search.restore(st);
      std::printf("resumed at phase %lld generation %lld (%lld evaluations)\n",
                  static_cast<long long>(search.phase() + 1), static_cast<long long>(search.generation()),
                  static_cast<long long>(search.evaluations()));
    }
    const auto t0 = std::chrono::steady_clock::now();
    int64_t last_phase = search.phase(), last_gen = search.generation();
    search.run(fit, [&](const pstrn::PstrnSearch& s) {
      // The generation just finished: (last_phase, last_gen + 1) unless the phase ended.
      const int64_t phase = last_phase, gen = last_gen + 1;
      last_phase = s.phase();
      last_gen = s.generation();
      double best = INFINITY;
      for (auto& p : s.population()) best = std::min(best, p.f[0]);
      const auto& b = s.best();
      json front = json::array();
      for (auto& r : s.pareto_front(phase)) front.push_back(record_json(r));
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf(
          "phase %lld gen %2lld | evaluations %4lld (%lld nets) | population best %.4f | overall best %.4f "
          "[%s] CR %.1f | %.0f s\n",
          static_cast<long long>(phase + 1), static_cast<long long>(gen),
          static_cast<long long>(s.evaluations()), static_cast<long long>(s.distinct_networks()), best,
          b.result.error, join(b.ranks).c_str(), b.result.compression, secs);
      std::fflush(stdout);
      json j = {{"phase", phase + 1},
                {"generation", gen},
                {"evaluations", s.evaluations()},
                {"networks", s.distinct_networks()},
                {"population_best", best},
                {"best", record_json(b)},
                {"pareto_front", front},
                {"seconds", secs}};
      if (s.phase() != phase && s.phase() < static_cast<int64_t>(s.maps().size()))
        j["next_map"] = {{"step", s.map().step}, {"bias", s.map().bias}};
      log_line(log, j);
      if (!o.checkpoint.empty()) write_atomically(o.checkpoint, s.state().dump());
    });
    const auto& b = search.best();
    std::printf("best: ranks [%s] error %.4f compression %.2f, first reached at evaluation %lld of %lld\n",
                join(b.ranks).c_str(), b.result.error, b.result.compression,
                static_cast<long long>(&b - search.history().data() + 1),
                static_cast<long long>(search.evaluations()));
    for (int64_t p = 0; p < static_cast<int64_t>(po.steps.size()); ++p) {
      std::printf("Pareto front of phase %lld (error, compression):", static_cast<long long>(p + 1));
      for (auto& r : search.pareto_front(p))
        std::printf(" (%.3f, %.1f)", r.result.error, r.result.compression);
      std::printf("\n");
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "search_pstrn: %s\n", e.what());
    return 1;
  }
}
