// search_darts: DARTS / B-DARTS architecture search on the BCNN or the vanilla 8-cell DARTS supernet.
//
//   ./build/search_darts                                    # B-DARTS (BCNN + CLR, first order) on padded
//                                                           # Fashion-MNIST, the paper's settings otherwise
//   ./build/search_darts --network darts --no-clr           # vanilla DARTS
//   ./build/search_darts --dataset cifar10 --data-dir ~/cifar-10-batches-bin --device cuda   # the paper's
//   run
//
// The loop (train_search_b_confidence.py, brief §3.6): the training set's first half trains the weights,
// the second half the architecture; per epoch e: weights' lr = cosine(e) (SGD, momentum, weight decay),
// CLR confidence c = ((e + 1) / E)^p; per step: a random validation batch -> architecture step (Adam, first
// or second order), the training batch -> weight step (clip 5). After each epoch: the validation half's
// loss and accuracy (eval mode), softmax(alpha) of every edge, the derived genotype and its weight-free
// operations, written to the console and (--metrics) as one JSON line; the final genotype to --genotype-out.
//
// Choices where the code is not followed to the letter (docs/bdarts.md): the validation batch is a random
// subset drawn from (seed, epoch, step) (the code draws a new iterator each step: the same distribution);
// batches are gathered from in-memory tensors (no worker threads).
// Checkpoints (--checkpoint, after every epoch, atomically): model with alphas, both optimizers, the
// generator, the epoch. --resume continues bit-identically from that epoch boundary. Ctrl-C / SIGTERM stop
// after the current step and leave the last epoch's checkpoint (exit 130 / 143).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "algorithms/nas/architect.h"
#include "algorithms/nas/search.h"
#include "apps/common/image_sets.h"
#include "apps/common/options.h"
#include "apps/common/run.h"
#include "apps/common/train_step.h"  // check_loss
#include "engine/device_runtime.h"
#include "engine/safetensors.h"
#include "models/bcnn.h"
#include "nabla.h"

using namespace nabla;
using models::darts::count_weight_free;
using models::darts::SearchNetwork;

namespace {

constexpr const char* kFormat = "nabla-darts-search-1";

struct Options {
  std::string network, genotype_out, second_order_clr;
  apps::ImageSetOptions data;
  int64_t epochs, batch_size, c, layers, en_layers, limit_val, stop_after;
  double lr, lr_min, momentum, weight_decay, grad_clip, arch_lr, arch_weight_decay, power, train_portion;
  bool no_clr, unrolled, no_augment, cuda_graph;
  apps::RunOptions run;
};

std::optional<int> parse(int argc, char** argv, Options& o) {
  apps::OptionSet cli("search_darts", "DARTS / B-DARTS architecture search (BCNN or DARTS supernet).");
  cli.section("Supernet and data");
  cli.add("network", &o.network, "bcnn",
          "supernet: bcnn (2 conv blocks + 1 enhancement cell) or darts (8 cells)")
      .one_of({"bcnn", "darts"});
  cli.add("init-channels", &o.c, 16, "initial channels C").in_range(1, 4096);
  cli.add("layers", &o.layers, 0, "bcnn: convolution blocks (0: 2); darts: cells (0: 8)").in_range(0, 64);
  cli.add("en-layers", &o.en_layers, 1, "bcnn: enhancement cells").in_range(1, 16);
  cli.add("dataset", &o.data.dataset, "fashion-mnist", "fashion-mnist (padded to 32), cifar10 or synthetic")
      .one_of({"fashion-mnist", "cifar10", "synthetic"});
  cli.add("data-dir", &o.data.data_dir, "/usr/share/datasets/fashion-mnist", "folder of the data set")
      .value_name("DIR");
  cli.add("limit-train", &o.data.limit, 0, "use the first N training examples (0: all)").non_negative();
  cli.add("pad", &o.data.pad, 32, "fashion-mnist: pad 28 -> N (0: off)").in_range(0, 1024).unit("pixels");
  cli.add("image-size", &o.data.image_size, 0,
          "resize the images to N x N (0: leave; must survive 2 halvings)")
      .in_range(0, 1024)
      .unit("pixels");
  cli.add("train-portion", &o.train_portion, 0.5, "fraction of the set for the weights (the rest: alphas)")
      .in_range(0, 1, apps::Bound::open);
  cli.add("limit-val", &o.limit_val, 0,
          "evaluate on at most N examples of the alphas' half each epoch (0: all)")
      .non_negative();
  cli.add_switch("no-augment", &o.no_augment, "no random crop and flip (the code crops and flips)");
  cli.section("Search");
  cli.add("epochs", &o.epochs, 50, "search epochs E").positive();
  cli.add("batch-size", &o.batch_size, 256, "batch of both halves").in_range(1, 1 << 20);
  cli.add("lr", &o.lr, 0.1, "weights: initial SGD lr (cosine per epoch)").positive();
  cli.add("lr-min", &o.lr_min, 0.0, "weights: final lr of the cosine").non_negative();
  cli.add("momentum", &o.momentum, 0.9, "weights: SGD momentum").in_range(0, 1, apps::Bound::open_high);
  cli.add("weight-decay", &o.weight_decay, 3e-4, "weights: L2 weight decay").non_negative();
  cli.add("grad-clip", &o.grad_clip, 5.0, "weights: clip the gradient norm (0: off)").non_negative();
  cli.add("arch-lr", &o.arch_lr, 3e-4, "alphas: Adam lr eta_a0").positive();
  cli.add("arch-weight-decay", &o.arch_weight_decay, 1e-3, "alphas: Adam L2 weight decay").non_negative();
  cli.add_switch("no-clr", &o.no_clr, "plain DARTS: no confident learning rate");
  cli.add("power", &o.power, 2.0, "CLR power p: confidence ((e + 1) / E)^p").in_range(0, 100);
  cli.add_switch("unrolled", &o.unrolled, "second-order architecture gradient (finite-difference Hessian)");
  cli.add("second-order-clr", &o.second_order_clr, "loss",
          "with --unrolled: CLR scales the unrolled loss (loss, as the code) or the Adam lr (lr)")
      .one_of({"loss", "lr"});
  cli.add_switch(
      "cuda-graph", &o.cuda_graph,
      "replay the step's two forward + backward passes from CUDA graphs (first order, --device cuda)");
  cli.add("stop-after", &o.stop_after, 0,
          "end this invocation after N epochs (0: run to --epochs); continue with --resume")
      .non_negative();
  cli.add("genotype-out", &o.genotype_out, "", "write the final genotype here").value_name("FILE");
  apps::add_run_options(cli, o.run);
  cli.example("--limit-train 1000 --image-size 16 --init-channels 4 --batch-size 32 --epochs 10",
              "a CPU-sized B-DARTS search on Fashion-MNIST");
  cli.example("--network darts --no-clr --limit-train 1000 --image-size 16 --init-channels 4 --epochs 10",
              "the same with vanilla DARTS");
  cli.example(
      "--dataset cifar10 --data-dir cifar-10-batches-bin --device cuda --metrics search.jsonl "
      "--genotype-out genotype.txt --checkpoint search.safetensors",
      "the paper's first-order B-DARTS search");
  cli.example("--unrolled --epochs 2 --limit-train 256 --image-size 16 --init-channels 2 --batch-size 16",
              "a tiny second-order search");
  auto code = cli.parse(argc, argv, [&] { apps::check_run_options(o.run); });
  if (!code && !cli.given("seed")) o.run.seed = 2;
  return code;
}

std::shared_ptr<SearchNetwork> make_supernet(const Options& o, int64_t in_channels, int64_t classes) {
  if (o.network == "bcnn")
    return std::make_shared<models::BcnnSearch>(models::BcnnOptions{.c = o.c,
                                                                    .num_classes = classes,
                                                                    .in_channels = in_channels,
                                                                    .layers = o.layers ? o.layers : 2,
                                                                    .en_layers = o.en_layers});
  return std::make_shared<models::DartsSearch>(models::DartsOptions{
      .c = o.c, .num_classes = classes, .in_channels = in_channels, .layers = o.layers ? o.layers : 8});
}

NamedTensors prefixed(const std::string& p, const NamedTensors& ts) {
  NamedTensors out;
  for (auto& [n, t] : ts) out.emplace_back(p + n, t);
  return out;
}

void save(const std::string& path, const SearchNetwork& net, const optim::Optimizer& w,
          const optim::Optimizer& a, int64_t epoch, const Options& o) {
  if (path.empty()) return;
  NamedTensors ts = prefixed("model.", net.state_dict());
  for (auto& e : prefixed("w_optim.", w.state_tensors())) ts.push_back(e);
  for (auto& e : prefixed("a_optim.", a.state_tensors())) ts.push_back(e);
  const Generator g = default_generator();
  save_safetensors(path, ts,
                   {{"format", kFormat},
                    {"epoch", std::to_string(epoch)},
                    {"epochs", std::to_string(o.epochs)},
                    {"network", o.network},
                    {"rng_seed", std::to_string(g.seed)},
                    {"rng_offset", std::to_string(g.offset)},
                    {"genotype", net.genotype().str()}});
}

// Returns the completed epochs of the checkpoint.
int64_t resume(const std::string& path, SearchNetwork& net, optim::Optimizer& w, optim::Optimizer& a,
               const Options& o) {
  SafetensorsFile f = load_safetensors(path);
  auto meta = [&](const std::string& k) {
    auto it = f.metadata.find(k);
    NABLA_CHECK(it != f.metadata.end(), "checkpoint ", path, ": metadata has no field '", k, "'");
    return it->second;
  };
  NABLA_CHECK(meta("format") == kFormat, "checkpoint ", path, ": format '", meta("format"), "', expected ",
              kFormat);
  NABLA_CHECK(meta("network") == o.network, "checkpoint ", path, ": network '", meta("network"),
              "', this run's is '", o.network, "'");
  NABLA_CHECK(meta("epochs") == std::to_string(o.epochs), "checkpoint ", path, ": a ", meta("epochs"),
              "-epoch search; this run has --epochs ", o.epochs, " (the schedules depend on it)");
  int64_t epoch = 0;
  try {
    epoch = std::stoll(meta("epoch"));
    default_generator() = Generator{std::stoull(meta("rng_seed")), std::stoull(meta("rng_offset"))};
  } catch (const std::logic_error&) {
    fail("checkpoint ", path, ": malformed epoch or rng field");
  }
  NABLA_CHECK(epoch >= 0 && epoch <= o.epochs, "checkpoint ", path, ": epoch ", epoch, " not in [0, ",
              o.epochs, "]");
  NamedTensors model, wo, ao;
  for (auto& [n, t] : f.tensors) {
    if (n.rfind("model.", 0) == 0)
      model.emplace_back(n.substr(6), t);
    else if (n.rfind("w_optim.", 0) == 0)
      wo.emplace_back(n.substr(8), t);
    else if (n.rfind("a_optim.", 0) == 0)
      ao.emplace_back(n.substr(8), t);
    else
      fail("checkpoint ", path, ": unexpected tensor '", n, "'");
  }
  net.load_state_dict(model);
  w.load_state_tensors(wo);
  a.load_state_tensors(ao);
  return epoch;
}

nlohmann::json softmax_rows(const Tensor& alphas) {
  Tensor p = softmax(alphas.detach(), -1).to(Device::cpu()).to(DType::f64).contiguous();
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t e = 0; e < p.size(0); ++e) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t k = 0; k < p.size(1); ++k)
      row.push_back(std::round(p.data<double>()[e * p.size(1) + k] * 1e5) / 1e5);
    rows.push_back(row);
  }
  return rows;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

int run(Options& o) {
  int64_t batch = o.batch_size;
  apps::Run r = apps::Run::start(o.run, batch);
  const Device dev = r.device();
  const uint64_t seed = o.run.seed;

  // data: the training split, first part for the weights, the rest for the alphas (indices[:split])
  o.data.seed = seed;
  apps::ImageSet all = apps::load_image_set(o.data, true);
  const int64_t split = static_cast<int64_t>(std::floor(o.train_portion * static_cast<double>(all.size())));
  NABLA_CHECK(split >= o.batch_size && all.size() - split >= o.batch_size, "--batch-size ", o.batch_size,
              " is larger than a half of the ", all.size(), " training examples (", split, " / ",
              all.size() - split, ")");
  apps::ImageSet wset{all.images.narrow(0, 0, split), all.labels.narrow(0, 0, split), all.classes};
  apps::ImageSet aset{all.images.narrow(0, split, all.size() - split),
                      all.labels.narrow(0, split, all.size() - split), all.classes};
  const bool augment = !o.no_augment;

  NABLA_CHECK(!o.cuda_graph || (dev.is_cuda() && !o.unrolled), "--cuda-graph needs --device cuda and the ",
              "first-order step (got --device ", o.run.device, o.unrolled ? ", --unrolled)" : ")");
  auto net = make_supernet(o, all.channels(), all.classes);
  net->to(dev);
  optim::Sgd sgd(net->parameters(), {.lr = o.lr, .momentum = o.momentum, .weight_decay = o.weight_decay});
  nas::Architect architect(*net, sgd,
                           {.lr = o.arch_lr,
                            .weight_decay = o.arch_weight_decay,
                            .unrolled = o.unrolled,
                            .clr = !o.no_clr,
                            .power = o.power,
                            .second_order_scales_loss = o.second_order_clr == "loss",
                            .network_momentum = o.momentum,
                            .network_weight_decay = o.weight_decay});
  const int64_t steps_per_epoch = (split + o.batch_size - 1) / o.batch_size;
  std::printf(
      "search_darts: %s supernet, C %lld: %s weights, %lld alphas | %s: %lld + %lld examples of %lldx%lld | "
      "%lld steps/epoch | %s order, %s | seed %llu\n",
      o.network.c_str(), static_cast<long long>(o.c),
      apps::with_commas(static_cast<double>(net->num_parameters())).c_str(),
      static_cast<long long>(2 * net->alphas_normal.numel()), o.data.dataset.c_str(),
      static_cast<long long>(wset.size()), static_cast<long long>(aset.size()),
      static_cast<long long>(all.image_size()), static_cast<long long>(all.image_size()),
      static_cast<long long>(steps_per_epoch), o.unrolled ? "second" : "first",
      o.no_clr ? "no CLR" : str_cat("CLR p = ", o.power).c_str(), static_cast<unsigned long long>(seed));
  std::fflush(stdout);

  int64_t start = 0;
  if (!o.run.resume.empty()) {
    start = resume(o.run.resume, *net, sgd, architect.optimizer(), o);
    std::printf("resumed from %s after epoch %lld\n", o.run.resume.c_str(), static_cast<long long>(start));
  }
  apps::MetricsLog metrics = o.run.metrics.empty() ? apps::MetricsLog() : apps::MetricsLog(o.run.metrics);
  if (dev.is_cuda()) runtime::reset_peak_memory_stats(dev);
  std::unique_ptr<nas::GraphedSearchStep> graphed;
  if (o.cuda_graph) graphed = std::make_unique<nas::GraphedSearchStep>();

  for (int64_t epoch = start; epoch < o.epochs; ++epoch) {
    const double lr = nas::cosine_epoch_lr(o.lr, o.lr_min, epoch, o.epochs);
    const double confidence = nas::clr_confidence(epoch, o.epochs, o.power);
    const std::vector<int64_t> order = apps::shuffled(wset.size(), seed, epoch);
    int64_t step = 0, vstep = 0;
    nas::BatchSource train = [&]() -> std::optional<nas::LabeledBatch> {
      const int64_t at = step * o.batch_size;
      if (at >= wset.size()) return std::nullopt;
      std::vector<int64_t> idx(order.begin() + at, order.begin() + std::min(at + o.batch_size, wset.size()));
      auto b = apps::gather_batch(wset, idx, augment, 0, seed, epoch, step++);
      return nas::LabeledBatch{b.first.to(dev), b.second.to(dev)};
    };
    nas::BatchSource val = [&]() -> std::optional<nas::LabeledBatch> {
      auto idx = apps::random_subset(aset.size(), o.batch_size, seed + 1, epoch, vstep);
      auto b = apps::gather_batch(aset, idx, augment, 0, seed + 1, epoch, vstep++);
      return nas::LabeledBatch{b.first.to(dev), b.second.to(dev)};
    };
    bool stopped = false;
    int64_t done_steps = 0;
    auto stats = nas::search_epoch(
        *net, architect, sgd, train, val, lr, confidence, o.grad_clip,
        [&](int64_t s, const Tensor& loss_t) {
          done_steps = s;
          // the loss is read (a host synchronisation) only on the printed steps; the epoch's mean is
          // checked below
          if (!o.run.no_progress && o.run.print_every > 0 && s % o.run.print_every == 0) {
            const double loss = loss_t.item<double>();
            apps::check_loss(loss, epoch * steps_per_epoch + s, o.run.allow_nonfinite);
            std::printf("  step %lld/%lld | loss %.4f\n", static_cast<long long>(s),
                        static_cast<long long>(steps_per_epoch), loss);
          }
          if (r.stop_requested(epoch * steps_per_epoch + s)) stopped = true;
          return !stopped;
        },
        graphed.get());
    if (!stopped) apps::check_loss(stats.train_loss, (epoch + 1) * steps_per_epoch, o.run.allow_nonfinite);
    if (stopped) {
      std::printf("stopped by signal %d after step %lld of epoch %lld; the checkpoint holds epoch %lld\n",
                  r.stop_signal(), static_cast<long long>(done_steps), static_cast<long long>(epoch + 1),
                  static_cast<long long>(epoch));
      return r.stop_code();
    }
    // the alphas' half in eval mode (the code's infer())
    const int64_t n_val = o.limit_val ? std::min(o.limit_val, aset.size()) : aset.size();
    int64_t at = 0;
    nas::EvalStats ev = nas::evaluate_search(*net, [&]() -> std::optional<nas::LabeledBatch> {
      if (at >= n_val) return std::nullopt;
      std::vector<int64_t> idx;
      for (int64_t i = at; i < std::min(at + o.batch_size, n_val); ++i) idx.push_back(i);
      at += o.batch_size;
      auto b = apps::gather_batch(aset, idx, false, 0, 0, 0, 0);
      return nas::LabeledBatch{b.first.to(dev), b.second.to(dev)};
    });
    const auto g = net->genotype();
    const int wf_n = count_weight_free(g.normal), wf_r = count_weight_free(g.reduce);
    const double peak_mb = dev.is_cuda()
                               ? static_cast<double>(runtime::memory_stats(dev).peak_allocated) / (1 << 20)
                               : peak_rss_mb();
    std::printf(
        "epoch %lld/%lld | lr %.4g | arch lr %.3g (%s) | train loss %.4f acc %.2f%% | "
        "val loss %.4f acc %.2f%% | weight-free ops: %s %d/8, %s %d/8 | %.1f s | peak %s %.0f MiB\n",
        static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs), lr, architect.current_lr(),
        o.no_clr ? "no CLR" : str_cat("confidence ", confidence).c_str(), stats.train_loss,
        100 * stats.train_acc, ev.loss, 100 * ev.acc, o.network == "bcnn" ? "conv cell" : "normal", wf_n,
        o.network == "bcnn" ? "enhancement" : "reduce", wf_r, stats.seconds, dev.is_cuda() ? "device" : "RSS",
        peak_mb);
    std::printf("genotype = %s\n", g.str().c_str());
    std::fflush(stdout);
    metrics.write({{"kind", "epoch"},
                   {"epoch", epoch + 1},
                   {"lr", lr},
                   {"arch_lr", architect.current_lr()},
                   {"confidence", confidence},
                   {"clr", !o.no_clr},
                   {"train_loss", stats.train_loss},
                   {"train_acc", stats.train_acc},
                   {"arch_loss", stats.arch_loss},
                   {"val_loss", ev.loss},
                   {"val_acc", ev.acc},
                   {"weight_free_normal", wf_n},
                   {"weight_free_reduce", wf_r},
                   {"genotype", g.str()},
                   {"alphas_normal", softmax_rows(net->alphas_normal)},
                   {"alphas_reduce", softmax_rows(net->alphas_reduce)},
                   {"epoch_s", stats.seconds},
                   {"step_s", stats.seconds / static_cast<double>(std::max<int64_t>(1, stats.steps))},
                   {"peak_mb", peak_mb},
                   {"cuda_graph_replays", graphed ? graphed->replays() : 0}});
    if (r.is_main()) save(o.run.checkpoint, *net, sgd, architect.optimizer(), epoch + 1, o);
    if (o.stop_after > 0 && epoch + 1 - start == o.stop_after && epoch + 1 < o.epochs) {
      std::printf("stopping after %lld epochs (--stop-after)\n", static_cast<long long>(o.stop_after));
      return 0;
    }
  }
  const auto g = net->genotype();
  if (!o.genotype_out.empty()) {
    std::ofstream(o.genotype_out) << g.str() << "\n";
    std::printf("genotype written to %s\n", o.genotype_out.c_str());
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
    std::fprintf(stderr, "search_darts: %s\n", e.what());
  }
  return apps::kExitFailure;
}
