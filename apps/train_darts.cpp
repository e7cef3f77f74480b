// train_darts: trains a network built from a DARTS genotype from scratch (the evaluation half of B-DARTS,
// train_b.py): the BCNN evaluation network (6 conv-block cells, reductions at 2 and 5, 2 enhancement
// cells, C = 48) or the DARTS NetworkCIFAR (20 cells, C = 36), SGD momentum 0.9, cosine lr per epoch,
// weight decay 3e-4, gradient clip 5, cutout 16, drop-path 0.3 x epoch / epochs, no auxiliary head.
//
//   ./build/train_darts --genotype BNASv2_CLR_v1 --epochs 2 --limit-train 2000 --init-channels 8
//   ./build/train_darts --genotype genotype.txt --dataset cifar10 --data-dir cifar-10-batches-bin --device
//   cuda
//
// --genotype takes a published name (BNASv2_CLR_v1, BNASv2_CLR_v2, DARTS_V1, DARTS_V2), a file (its last
// "Genotype(...)" line: search_darts's --genotype-out or its log) or the text itself. The genotype is saved
// in the checkpoint's metadata and printed with the parameter and multiply-add counts at start-up.
// Checkpoints after every epoch (model, optimizer, generator, epoch: apps/common/checkpoint.h); --resume
// continues from the epoch boundary.
#include <chrono>
#include <cstdio>

#include "apps/common/checkpoint.h"
#include "apps/common/image_sets.h"
#include "apps/common/options.h"
#include "apps/common/run.h"
#include "apps/common/train_step.h"  // check_loss
#include "algorithms/optim/clip.h"
#include "algorithms/nas/search.h"
#include "models/bcnn.h"
#include "nabla.h"

using namespace nabla;
using namespace nabla::models;

namespace {

struct Options {
  std::string network, genotype;
  apps::ImageSetOptions data;
  int64_t epochs, batch_size, c, layers, en_layers, cutout, limit_test;
  double lr, lr_min, momentum, weight_decay, grad_clip, drop_path;
  bool no_augment;
  apps::RunOptions run;
};

std::optional<int> parse(int argc, char** argv, Options& o) {
  apps::OptionSet cli("train_darts", "Trains a BCNN or DARTS network from a genotype, from scratch.");
  cli.section("Network and data");
  cli.add("network", &o.network, "bcnn", "bcnn (conv-block + enhancement cells) or darts (NetworkCIFAR)")
      .one_of({"bcnn", "darts"});
  cli.add("genotype", &o.genotype, "BNASv2_CLR_v1", "a published name, a file, or the Genotype(...) text")
      .value_name("SPEC");
  cli.add("init-channels", &o.c, 48, "initial channels C (darts: 36 in the paper)").in_range(1, 4096);
  cli.add("layers", &o.layers, 0, "bcnn: conv-block cells (0: 6); darts: cells (0: 20)").in_range(0, 128);
  cli.add("en-layers", &o.en_layers, 2, "bcnn: enhancement cells").in_range(1, 16);
  cli.add("dataset", &o.data.dataset, "fashion-mnist", "fashion-mnist (padded to 32), cifar10 or synthetic")
      .one_of({"fashion-mnist", "cifar10", "synthetic"});
  cli.add("data-dir", &o.data.data_dir, "/usr/share/datasets/fashion-mnist", "folder of the data set")
      .value_name("DIR");
  cli.add("limit-train", &o.data.limit, 0, "use the first N training examples (0: all)").non_negative();
  cli.add("limit-test", &o.limit_test, 0, "evaluate on the first N test examples (0: all)").non_negative();
  cli.add("pad", &o.data.pad, 32, "fashion-mnist: pad 28 -> N (0: off)").in_range(0, 1024).unit("pixels");
  cli.add("image-size", &o.data.image_size, 0, "resize the images to N x N (0: leave)")
      .in_range(0, 1024)
      .unit("pixels");
  cli.add_switch("no-augment", &o.no_augment, "no random crop and flip");
  cli.add("cutout", &o.cutout, 16, "cutout square side (0: off)").in_range(0, 1024).unit("pixels");
  cli.section("Training");
  cli.add("epochs", &o.epochs, 600, "epochs").positive();
  cli.add("batch-size", &o.batch_size, 128, "batch").in_range(1, 1 << 20);
  cli.add("lr", &o.lr, 0.025, "initial SGD lr (cosine per epoch to --lr-min)").positive();
  cli.add("lr-min", &o.lr_min, 0.0, "final lr").non_negative();
  cli.add("momentum", &o.momentum, 0.9, "SGD momentum").in_range(0, 1, apps::Bound::open_high);
  cli.add("weight-decay", &o.weight_decay, 3e-4, "L2 weight decay").non_negative();
  cli.add("grad-clip", &o.grad_clip, 5.0, "clip the gradient norm (0: off)").non_negative();
  cli.add("drop-path", &o.drop_path, 0.3, "drop-path probability at the last epoch (ramped from 0)")
      .in_range(0, 1, apps::Bound::open_high);
  apps::add_run_options(cli, o.run);
  cli.example("--genotype BNASv2_CLR_v1 --epochs 2 --limit-train 2000 --init-channels 8 --batch-size 64",
              "a short CPU run of the authors' genotype on Fashion-MNIST");
  cli.example(
      "--genotype genotype.txt --dataset cifar10 --data-dir cifar-10-batches-bin --device cuda "
      "--checkpoint eval.safetensors --metrics eval.jsonl",
      "the paper's evaluation training of a searched genotype");
  cli.example("--network darts --genotype DARTS_V2 --init-channels 36", "DARTS-V2 on the same recipe");
  return cli.parse(argc, argv, [&] { apps::check_run_options(o.run); });
}

std::shared_ptr<darts::EvalNetwork> make_network(const Options& o, const darts::Genotype& g, int64_t in,
                                                 int64_t classes) {
  if (o.network == "bcnn")
    return std::make_shared<BcnnEval>(BcnnOptions{.c = o.c,
                                                  .num_classes = classes,
                                                  .in_channels = in,
                                                  .layers = o.layers ? o.layers : 6,
                                                  .en_layers = o.en_layers},
                                      g);
  return std::make_shared<DartsEval>(
      DartsOptions{.c = o.c, .num_classes = classes, .in_channels = in, .layers = o.layers ? o.layers : 20},
      g);
}

int run(Options& o) {
  int64_t batch = o.batch_size;
  apps::Run r = apps::Run::start(o.run, batch);
  const Device dev = r.device();
  const uint64_t seed = o.run.seed;
  const darts::Genotype genotype = darts::load_genotype(o.genotype);
  o.data.seed = seed;
  const apps::ImageSet train = apps::load_image_set(o.data, true);
  apps::ImageSetOptions test_opts = o.data;
  test_opts.limit = o.limit_test;
  const apps::ImageSet test = apps::load_image_set(test_opts, false);
  NABLA_CHECK(train.size() >= o.batch_size, "--batch-size ", o.batch_size, " is larger than the ",
              train.size(), " training examples");

  auto net = make_network(o, genotype, train.channels(), train.classes);
  const int64_t macs = count_macs(*net, train.channels(), train.image_size());
  net->to(dev);
  optim::Sgd sgd(net->parameters(), {.lr = o.lr, .momentum = o.momentum, .weight_decay = o.weight_decay});
  const int64_t steps_per_epoch = (train.size() + o.batch_size - 1) / o.batch_size;
  std::printf(
      "train_darts: %s, C %lld | %s parameters | %s multiply-adds per image | %s\n"
      "%s: %lld train, %lld test, %lldx%lld | %lld steps/epoch\n",
      o.network.c_str(), static_cast<long long>(o.c),
      apps::with_commas(static_cast<double>(net->num_parameters())).c_str(),
      apps::with_commas(static_cast<double>(macs)).c_str(), genotype.str().c_str(), o.data.dataset.c_str(),
      static_cast<long long>(train.size()), static_cast<long long>(test.size()),
      static_cast<long long>(train.image_size()), static_cast<long long>(train.image_size()),
      static_cast<long long>(steps_per_epoch));
  std::fflush(stdout);

  apps::TrainState state = r.resume(*net, sgd, steps_per_epoch, o.epochs);
  if (!o.run.resume.empty()) {
    auto it = state.extra.find("genotype");
    NABLA_CHECK(it != state.extra.end() && it->second == genotype.str(), "--resume ", o.run.resume,
                ": the checkpoint was trained with another genotype (",
                it == state.extra.end() ? "none" : it->second, ")");
  }
  state.extra["genotype"] = genotype.str();
  state.extra["network"] = o.network;
  apps::MetricsLog metrics = o.run.metrics.empty() ? apps::MetricsLog() : apps::MetricsLog(o.run.metrics);
  const auto params = net->parameters();
  for (int64_t epoch = state.epoch; epoch < o.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = nas::cosine_epoch_lr(o.lr, o.lr_min, epoch, o.epochs);
    sgd.set_lr(lr);
    net->drop_path_prob = o.drop_path * static_cast<double>(epoch) / static_cast<double>(o.epochs);
    net->train();
    const auto order = apps::shuffled(train.size(), seed, epoch);
    Tensor loss_sum_t;  // summed on the device, read once per epoch (no host synchronisation per step)
    int64_t seen = 0;
    for (int64_t step = 0; step < steps_per_epoch; ++step) {
      const int64_t at = step * o.batch_size;
      std::vector<int64_t> idx(order.begin() + at, order.begin() + std::min(at + o.batch_size, train.size()));
      auto [x, y] = apps::gather_batch(train, idx, !o.no_augment, o.cutout, seed, epoch, step);
      sgd.zero_grad();
      Tensor loss = cross_entropy(net->forward(x.to(dev)), y.to(dev));
      loss.backward();
      if (o.grad_clip > 0) optim::clip_grad_norm(params, o.grad_clip);
      sgd.step();
      {
        NoGradGuard ng;
        Tensor l = loss.detach().to(DType::f64) * static_cast<double>(idx.size());
        loss_sum_t = loss_sum_t.defined() ? loss_sum_t + l : l;
      }
      seen += static_cast<int64_t>(idx.size());
      if (r.stop_requested(epoch * steps_per_epoch + step + 1)) {
        std::printf("stopped by signal %d in epoch %lld; the checkpoint holds epoch %lld\n", r.stop_signal(),
                    static_cast<long long>(epoch + 1), static_cast<long long>(epoch));
        return r.stop_code();
      }
    }
    const double loss_sum = loss_sum_t.item<double>();
    apps::check_loss(loss_sum, (epoch + 1) * steps_per_epoch, o.run.allow_nonfinite);
    const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t at = 0;
    nas::EvalStats ev = nas::evaluate_search(*net, [&]() -> std::optional<nas::LabeledBatch> {
      if (at >= test.size()) return std::nullopt;
      std::vector<int64_t> idx;
      for (int64_t i = at; i < std::min(at + 256, test.size()); ++i) idx.push_back(i);
      at += 256;
      auto b = apps::gather_batch(test, idx, false, 0, 0, 0, 0);
      return nas::LabeledBatch{b.first.to(dev), b.second.to(dev)};
    });
    std::printf(
        "epoch %lld/%lld | lr %.4g | drop-path %.3f | train loss %.4f | test loss %.4f acc %.2f%% | %.1f s\n",
        static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs), lr, net->drop_path_prob,
        loss_sum / static_cast<double>(seen), ev.loss, 100 * ev.acc, train_s);
    std::fflush(stdout);
    metrics.write({{"kind", "epoch"},
                   {"epoch", epoch + 1},
                   {"lr", lr},
                   {"drop_path", net->drop_path_prob},
                   {"train_loss", loss_sum / static_cast<double>(seen)},
                   {"test_loss", ev.loss},
                   {"test_acc", ev.acc},
                   {"train_s", train_s}});
    state.epoch = epoch + 1;
    state.step = state.epoch * steps_per_epoch;
    state.loader = {state.epoch, 0};
    state.rng = default_generator();
    r.save(*net, sgd, state);
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
    std::fprintf(stderr, "train_darts: %s\n", e.what());
  }
  return apps::kExitFailure;
}
