// train_classifier: trains an image classifier from the command line.
//
//   ./build/train_classifier                      # LeNet-5 on Fashion-MNIST from /usr/share/datasets/fashion-mnist
//   ./build/train_classifier --model mlp --optimizer adamw --lr 1e-3 --epochs 5 --metrics run.jsonl
//   ./build/train_classifier --dataset cifar10 --data-dir ~/cifar-10-batches-bin --augment
//   ./build/train_classifier --checkpoint ck.safetensors ... ; later: --resume ck.safetensors
//
// Reads like llm.c's main: parse options -> build the model -> load the data -> loop {forward, backward,
// step, log} -> evaluate -> checkpoint. Resuming restores model, optimizer, RNG and the data position, so
// the continuation is bit-identical to an uninterrupted run.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "algorithms/optim/clip.h"
#include "algorithms/optim/optimizer.h"
#include "algorithms/optim/schedule.h"
#include "apps/common/checkpoint.h"
#include "apps/common/cli.h"
#include "apps/common/progress.h"
#include "apps/common/vrgd_step.h"
#ifdef NABLA_HAS_CUDA
#include "cuda/runtime.h"
#endif
#include "data/data.h"
#include "models/classifiers.h"
#include "nabla.h"

using namespace nabla;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string model, dataset, data_dir, optimizer, schedule, checkpoint, resume, metrics, device;
  int64_t gsnr_partitions;  // VRGD
  double gsnr_gamma;
  int64_t epochs, batch_size, eval_batch_size, warmup_steps, threads, workers, max_steps, limit_train, print_every;
  double lr, momentum, weight_decay, label_smoothing, clip;
  bool nesterov, augment, no_progress;
  uint64_t seed;
};

struct Data {
  std::shared_ptr<data::Dataset> train, test;
  data::Transform train_transform, test_transform;
  int64_t channels, image_size, classes;
};

// Whole-dataset preprocessing for small sets: u8 [N, H, W(, C)] -> normalised f32 [N, C, H, W].
Tensor normalised_nchw(const Tensor& images, const std::vector<double>& mean, const std::vector<double>& stdv) {
  Tensor x = images.to(DType::f32) / 255.0;
  x = x.dim() == 3 ? x.unsqueeze(1) : x.permute({0, 3, 1, 2});
  const int64_t c = x.size(1);
  Tensor m = from_vector(mean, {1, c, 1, 1}), s = from_vector(stdv, {1, c, 1, 1});
  return ((x - m) / s).contiguous();
}

// The first `limit` examples (0: all).
data::LabeledImages head(data::LabeledImages s, int64_t limit) {
  if (limit > 0 && limit < s.size()) {
    s.images = s.images.narrow(0, 0, limit);
    s.labels = s.labels.narrow(0, 0, limit);
  }
  return s;
}

Data load_data(const Options& o) {
  Data d;
  if (o.dataset == "fashion-mnist" || o.dataset == "mnist") {
    bool fashion = o.dataset == "fashion-mnist";
    auto train = head(fashion ? data::load_fashion_mnist(o.data_dir, true) : data::load_mnist(o.data_dir, true), o.limit_train);
    auto test = fashion ? data::load_fashion_mnist(o.data_dir, false) : data::load_mnist(o.data_dir, false);
    std::vector<double> mean{fashion ? 0.2860 : 0.1307}, stdv{fashion ? 0.3530 : 0.3081};
    d.train = std::make_shared<data::TensorDataset>(normalised_nchw(train.images, mean, stdv), train.labels);
    d.test = std::make_shared<data::TensorDataset>(normalised_nchw(test.images, mean, stdv), test.labels);
    d.channels = 1;
    d.image_size = train.images.size(1);
    d.classes = 10;
    if (o.augment) d.train_transform = data::random_crop(d.image_size, d.image_size, 2);
  } else if (o.dataset == "cifar10" || o.dataset == "cifar100") {
    bool c10 = o.dataset == "cifar10";
    auto train = head(c10 ? data::load_cifar10(o.data_dir, true) : data::load_cifar100(o.data_dir, true), o.limit_train);
    auto test = c10 ? data::load_cifar10(o.data_dir, false) : data::load_cifar100(o.data_dir, false);
    std::vector<double> mean{0.4914, 0.4822, 0.4465}, stdv{0.2470, 0.2435, 0.2616};
    d.train = std::make_shared<data::TensorDataset>(normalised_nchw(train.images, mean, stdv), train.labels);
    d.test = std::make_shared<data::TensorDataset>(normalised_nchw(test.images, mean, stdv), test.labels);
    d.channels = 3;
    d.image_size = 32;
    d.classes = c10 ? 10 : 100;
    if (o.augment)
      d.train_transform = data::compose({data::random_crop(32, 32, 4), data::random_horizontal_flip()});
  } else if (o.dataset == "image-folder") {
    NABLA_CHECK(o.limit_train == 0, "--limit-train works with in-memory datasets only");
    auto train = std::make_shared<data::ImageFolder>(o.data_dir + "/train");
    d.test = std::make_shared<data::ImageFolder>(o.data_dir + "/val");
    d.train = train;
    d.channels = 3;
    d.image_size = 224;
    d.classes = static_cast<int64_t>(train->classes().size());
    auto norm = data::normalize({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225});
    d.train_transform = data::compose({data::random_resized_crop(224, 224), data::random_horizontal_flip(),
                                       data::to_float(), norm});
    d.test_transform = data::compose({data::resize_shorter(256), data::center_crop(224, 224), data::to_float(), norm});
  } else {
    fail("unknown dataset '", o.dataset, "' (expected fashion-mnist, mnist, cifar10, cifar100 or image-folder)");
  }
  return d;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const Options& o, const nn::Module& model) {
  auto groups = optim::split_decay_groups(model.named_parameters(), o.weight_decay, o.lr);
  if (vrgd::is_vr_optimizer_kind(o.optimizer))
    return vrgd::make_vr_optimizer(o.optimizer, groups, {.lr = o.lr, .momentum = o.momentum, .weight_decay = o.weight_decay,
                                                         .nesterov = o.nesterov, .gsnr = {.gamma = o.gsnr_gamma}});
  if (o.optimizer == "sgd")
    return std::make_unique<optim::Sgd>(groups, optim::SgdOptions{.lr = o.lr, .momentum = o.momentum,
                                                                  .weight_decay = o.weight_decay, .nesterov = o.nesterov});
  if (o.optimizer == "adam")
    return std::make_unique<optim::Adam>(groups, optim::AdamOptions{.lr = o.lr, .weight_decay = o.weight_decay});
  if (o.optimizer == "adamw")
    return std::make_unique<optim::AdamW>(groups, optim::AdamWOptions{.lr = o.lr, .weight_decay = o.weight_decay});
  if (o.optimizer == "lars")
    return std::make_unique<optim::Lars>(groups, optim::LarsOptions{.lr = o.lr, .momentum = o.momentum,
                                                                    .weight_decay = o.weight_decay});
  if (o.optimizer == "lamb")
    return std::make_unique<optim::Lamb>(groups, optim::LambOptions{.lr = o.lr, .weight_decay = o.weight_decay});
  fail("unknown optimizer '", o.optimizer, "' (expected sgd, adam, adamw, lars, lamb or vr-...)");
}

// Top-1 accuracy over a whole dataset, in evaluation mode.
double evaluate(nn::Module& model, std::shared_ptr<data::Dataset> set, const data::Transform& transform,
                int64_t batch_size, int workers, Device dev) {
  model.eval();
  NoGradGuard no_grad;
  data::DataLoader loader(set, {.batch_size = batch_size, .num_workers = workers}, transform);
  int64_t correct = 0, seen = 0;
  for (auto& batch : loader) {
    Tensor pred = argmax(model.forward(batch.inputs.to(dev)), 1);
    correct += static_cast<int64_t>(sum(eq(pred, batch.labels.to(dev)).to(DType::i64)).item());
    seen += batch.labels.numel();
  }
  model.train();
  return seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
}

Options parse(int argc, char** argv) {
  Options o;
  bool help = false;
  apps::OptionParser cli("train_classifier: train an image classifier (defaults: LeNet-5 on Fashion-MNIST)");
  cli.add_switch("help,h", &help, "show this help")
      .add("model", &o.model, "lenet5", "lenet5 | mlp | resnet18/34/50/101/152 | resnet20/32/44/56/110")
      .add("dataset", &o.dataset, "fashion-mnist", "fashion-mnist | mnist | cifar10 | cifar100 | image-folder")
      .add("data-dir", &o.data_dir, "/usr/share/datasets/fashion-mnist", "folder with the dataset files (image-folder: with train/ and val/)")
      .add("epochs", &o.epochs, 10, "passes over the training set")
      .add("batch-size", &o.batch_size, 64, "training batch size")
      .add("eval-batch-size", &o.eval_batch_size, 1000, "evaluation batch size")
      .add("optimizer", &o.optimizer, "sgd", "sgd | adam | adamw | lars | lamb | vr-sgd | vr-momentum | vr-adam | vr-adamw | vr-lars | vr-lamb")
      .add("gsnr-gamma", &o.gsnr_gamma, 0.1, "VR optimizers: lower clamp of the GSNR multiplier, in (0, 1]")
      .add("gsnr-partitions", &o.gsnr_partitions, 8, "VR optimizers: k micro-batches per step (must divide the batch)")
      .add("lr", &o.lr, 0.05, "peak learning rate")
      .add("momentum", &o.momentum, 0.9, "SGD/LARS momentum")
      .add_switch("nesterov", &o.nesterov, "Nesterov momentum (SGD)")
      .add("weight-decay", &o.weight_decay, 5e-4, "weight decay (not applied to biases and norm weights)")
      .add("schedule", &o.schedule, "cosine", "constant | step:size=N,gamma=G | multistep:milestones=a;b | cosine | poly:power=P")
      .add("warmup-steps", &o.warmup_steps, 100, "linear warm-up steps")
      .add("label-smoothing", &o.label_smoothing, 0.0, "cross-entropy label smoothing")
      .add("clip", &o.clip, 0.0, "clip gradients to this global L2 norm (0: off)")
      .add_switch("augment", &o.augment, "random crops (and flips for CIFAR)")
      .add("seed", &o.seed, 0, "seed of every random draw (init, shuffling, augmentation)")
      .add("threads", &o.threads, 0, "CPU threads (0: OMP_NUM_THREADS or all cores)")
      .add("workers", &o.workers, 0, "data loader worker threads (0: in the training thread)")
      .add("device", &o.device, "cpu", "cpu | cuda[:N]")
      .add("checkpoint", &o.checkpoint, "", "write a checkpoint here after every epoch")
      .add("resume", &o.resume, "", "resume from this checkpoint")
      .add("metrics", &o.metrics, "", "append JSONL metrics to this file")
      .add("max-steps", &o.max_steps, 0, "stop after this many steps in total (0: no limit)")
      .add("limit-train", &o.limit_train, 0, "use only the first N training examples (0: all)")
      .add("print-every", &o.print_every, 100, "steps between progress lines when not on a terminal")
      .add_switch("no-progress", &o.no_progress, "no progress line");
  cli.parse(argc, argv);
  if (help) {
    std::cout << cli.help() << "\n";
    std::exit(0);
  }
  NABLA_CHECK(o.epochs > 0 && o.batch_size > 0 && o.eval_batch_size > 0, "--epochs, --batch-size and --eval-batch-size must be positive");
  NABLA_CHECK(o.lr > 0, "--lr must be positive, got ", o.lr);
  NABLA_CHECK(o.threads >= 0 && o.workers >= 0 && o.max_steps >= 0 && o.limit_train >= 0, "--threads, --workers, --max-steps and --limit-train must be >= 0");
  Device dev = Device::parse(o.device);
#ifdef NABLA_HAS_CUDA
  NABLA_CHECK(dev.is_cpu() || dev.index < cuda::device_count(), "--device ", o.device, ": ", cuda::device_count(),
              " CUDA devices found");
#else
  NABLA_CHECK(dev.is_cpu(), "--device ", o.device, ": this build has no CUDA backend (configure with -DNABLA_CUDA=ON)");
#endif
  NABLA_CHECK(o.resume.empty() || std::filesystem::is_regular_file(o.resume), "--resume ", o.resume, ": no such file");
  if (o.dataset != "image-folder")
    NABLA_CHECK(std::filesystem::is_directory(o.data_dir), "--data-dir ", o.data_dir, " is not a directory",
                o.dataset == "fashion-mnist" ? " (install the Debian package dataset-fashion-mnist, or pass --data-dir)" : "");
  return o;
}

int run(int argc, char** argv) {
  // 1. options
  Options o = parse(argc, argv);
  if (o.threads > 0) omp_set_num_threads(static_cast<int>(o.threads));
  manual_seed(o.seed);

  // 2. data and model
  Data d = load_data(o);
  const Device dev = Device::parse(o.device);
  auto model = models::make_classifier(o.model, d.channels, d.image_size, d.classes);
  model->to(dev);
  auto optimizer = make_optimizer(o, *model);
  auto* vr = dynamic_cast<vrgd::VrOptimizer*>(optimizer.get());  // null for the non-VR optimizers
  if (vr) std::printf("VRGD: %lld micro-batches of %lld per step, gamma %g\n", static_cast<long long>(o.gsnr_partitions),
                      static_cast<long long>(o.batch_size / std::max<int64_t>(1, o.gsnr_partitions)), o.gsnr_gamma);
  data::DataLoader loader(d.train, {.batch_size = o.batch_size, .shuffle = true, .drop_last = true, .seed = o.seed,
                                    .num_workers = static_cast<int>(o.workers)},
                          d.train_transform);
  const int64_t steps_per_epoch = loader.num_batches();
  int64_t total_steps = steps_per_epoch * o.epochs;
  if (o.max_steps > 0) total_steps = std::min(total_steps, o.max_steps);
  int64_t warmup = o.warmup_steps;
  if (warmup > 0 && warmup >= total_steps / 2) {
    warmup = total_steps / 10;
    std::printf("note: --warmup-steps %lld is too long for a %lld-step run; using %lld\n",
                static_cast<long long>(o.warmup_steps), static_cast<long long>(total_steps), static_cast<long long>(warmup));
  }
  optim::ScheduleOptions sched_defaults{.base_lr = o.lr, .total_steps = total_steps, .warmup_steps = warmup};
  optim::Schedule schedule = optim::Schedule::parse(o.schedule, sched_defaults);
  std::printf("model %s: %s parameters | dataset %s: %lld train, %lld test | %lld steps/epoch | %s, %s\n",
              o.model.c_str(), apps::with_commas(static_cast<double>(model->num_parameters())).c_str(),
              o.dataset.c_str(), static_cast<long long>(d.train->size()), static_cast<long long>(d.test->size()),
              static_cast<long long>(steps_per_epoch), optimizer->name().c_str(), schedule.str().c_str());

  // 3. resume
  apps::TrainState state;
  if (!o.resume.empty()) {
    state = apps::load_checkpoint(o.resume, *model, *optimizer);
    default_generator() = state.rng;
    loader.set_position(state.loader);
    std::printf("resumed from %s at step %lld (epoch %lld, batch %lld)\n", o.resume.c_str(),
                static_cast<long long>(state.step), static_cast<long long>(state.loader.epoch),
                static_cast<long long>(state.loader.batch));
  }
  apps::MetricsLog metrics = o.metrics.empty() ? apps::MetricsLog() : apps::MetricsLog(o.metrics);
  apps::Progress progress(total_steps, o.print_every, !o.no_progress);

  // 4. the loop
  const auto run_start = Clock::now();
  int64_t step = state.step;
  for (int64_t epoch = loader.position().epoch; epoch < o.epochs && step < total_steps; ++epoch) {
    int64_t correct = 0, seen = 0;
    double loss_sum = 0;
    int64_t loss_count = 0;
    const auto epoch_start = Clock::now();  // train_s: this epoch's training loop, batches included, evaluation excluded
    for (auto& batch : loader) {
      const auto t0 = Clock::now();
      const double lr = schedule.lr_at(step);
      optimizer->set_lr(lr);
      Tensor inputs = batch.inputs.to(dev), labels = batch.labels.to(dev);
      double loss_v = 0;
      if (vr) {  // VRGD: k forward/backward passes over micro-batches, then the GSNR (apps/common/vrgd_step.h)
        const bool stats = metrics.enabled() && ((step + 1) % 10 == 0 || step + 1 == total_steps);
        auto r = apps::vr_forward_backward(vr->gsnr(), *model, inputs, labels, o.gsnr_partitions, o.label_smoothing, stats);
        loss_v = r.loss;
        correct += r.correct;
        if (stats) metrics.write(apps::gsnr_stats_record(vr->gsnr(), step + 1));
        if (o.clip > 0) optim::clip_grad_norm(model->parameters(), o.clip);
        optimizer->step();
      } else {
        Tensor logits = model->forward(inputs);
        Tensor loss = cross_entropy(logits, labels, {.label_smoothing = o.label_smoothing});
        optimizer->zero_grad();
        loss.backward();
        if (o.clip > 0) optim::clip_grad_norm(model->parameters(), o.clip);
        optimizer->step();
        loss_v = loss.item();
        NoGradGuard ng;
        correct += static_cast<int64_t>(sum(eq(argmax(logits, 1), labels).to(DType::i64)).item());
      }
      ++step;
      seen += batch.labels.numel();
      loss_sum += loss_v;
      ++loss_count;
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      progress.step(step, epoch + 1, o.epochs, loss_v, lr, batch.labels.numel(), dt);
      if (metrics.enabled() && (step % 10 == 0 || step == total_steps))
        metrics.write({{"kind", "step"}, {"step", step}, {"epoch", epoch}, {"loss", loss_v}, {"lr", lr},
                       {"step_ms", dt * 1e3}, {"img_per_s", batch.labels.numel() / dt}});
      if (step >= total_steps) break;
    }
    const double train_s = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    progress.finish_line();
    const double train_acc = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
    const double test_acc = evaluate(*model, d.test, d.test_transform, o.eval_batch_size, static_cast<int>(o.workers), dev);
    const double elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
    std::printf("epoch %lld/%lld | train loss %.4f | train acc %.2f%% | test acc %.2f%% | %s elapsed\n",
                static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs),
                loss_count ? loss_sum / static_cast<double>(loss_count) : 0.0, 100 * train_acc, 100 * test_acc,
                apps::format_duration(elapsed).c_str());
    std::fflush(stdout);
    metrics.write({{"kind", "epoch"}, {"epoch", epoch + 1}, {"step", step}, {"train_loss", loss_count ? loss_sum / loss_count : 0.0},
                   {"train_acc", train_acc}, {"test_acc", test_acc}, {"train_s", train_s}, {"elapsed_s", elapsed}});
    state.epoch = epoch + 1;
    if (!o.checkpoint.empty()) {
      state.step = step;
      state.loader = loader.position();
      state.rng = default_generator();
      state.extra["model"] = o.model;
      state.extra["dataset"] = o.dataset;
      apps::save_checkpoint(o.checkpoint, *model, *optimizer, state);
      std::printf("checkpoint written to %s\n", o.checkpoint.c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const apps::CliError& e) {
    std::fprintf(stderr, "train_classifier: %s (see --help)\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_classifier: %s\n", e.what());
  }
  return 2;
}
