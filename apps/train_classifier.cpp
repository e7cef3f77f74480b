// train_classifier: trains an image classifier from the command line.
//
//   ./build/train_classifier                      # LeNet-5 on Fashion-MNIST from
//   /usr/share/datasets/fashion-mnist
//   ./build/train_classifier --help               # every option, its default and range, and examples
//   ./build/train_classifier --model mlp --optimizer adamw --lr 1e-3 --epochs 5 --metrics run.jsonl
//   ./build/train_classifier --model resnet20 --pad 32 --augment --device cuda   # CIFAR ResNet on 32²
//   F-MNIST
//   ./build/train_classifier --checkpoint ck.safetensors ... ; later: --resume ck.safetensors
//
// run() reads like llm.c's main: options -> set-up -> data -> model, optimizer, step -> resume -> loop
// {step, log, stop on a signal} -> evaluate -> checkpoint. The pieces every training binary shares are in
// apps/common/: the options (options.h), the set-up, resume, signals and log (run.h), the step in its eager,
// CUDA-graph and VR forms (train_step.h), evaluation (evaluate.h) and checkpoints (checkpoint.h). Resuming
// restores model, optimizer, RNG, data position and the epoch's running sums, so the continuation is
// bit-identical to an uninterrupted run, also from a checkpoint written part-way through an epoch on
// Ctrl-C or SIGTERM.
//
// Batches reach the device through data::DevicePrefetcher (pinned host buffers, copies on a side stream
// that overlap the previous step; a pass-through on the CPU); --dataset synthetic instead generates one
// batch on the device once and trains on it every step (no loader, no copy: the model's speed alone).
//
// Exit codes: 0 done; 1 a failure (bad data, a diverged loss, a bad checkpoint); 2 a bad command line;
// 130 / 143 stopped by SIGINT / SIGTERM (after writing the checkpoint).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <utility>

#include "algorithms/optim/optimizer.h"
#include "algorithms/optim/schedule.h"
#include "algorithms/vrgd/vr_optimizer.h"
#include "apps/common/evaluate.h"
#include "apps/common/options.h"
#include "apps/common/run.h"
#include "apps/common/train_step.h"
#include "data/data.h"
#include "dist/session.h"  // data-parallel when launched with several processes (docs/distributed.md)
#include "engine/checked.h"
#include "models/classifiers.h"
#include "nabla.h"

using namespace nabla;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string model, dataset, data_dir, optimizer, schedule;
  int64_t epochs, batch_size, eval_batch_size, warmup_steps, workers, max_steps, limit_train;
  int64_t pad, image_size, classes, channels;
  int64_t gsnr_partitions;  // VRGD
  double gsnr_gamma;
  double lr, momentum, weight_decay, label_smoothing, clip;
  bool nesterov, augment, channels_last, cuda_graph;
  apps::RunOptions run;
};

struct Data {
  std::shared_ptr<data::Dataset> train, test;  // null for synthetic data
  data::Transform train_transform, test_transform;
  int64_t channels, image_size, classes;
  bool synthetic = false;
  data::Batch synthetic_batch;  // on the device; trained on every step, and evaluated on
  int64_t synthetic_steps = 0;  // per epoch
};

// Whole-dataset preprocessing for small sets: u8 [N, H, W(, C)] -> normalised f32 [N, C, H, W].
Tensor normalised_nchw(const Tensor& images, const std::vector<double>& mean,
                       const std::vector<double>& stdv) {
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

// Pads the stored images to pad x pad (0: leave them).
void padded(data::LabeledImages& s, int64_t pad) {
  if (pad == 0) return;
  NABLA_CHECK(pad >= s.images.size(1) && pad >= s.images.size(2), "--pad ", pad, ": the images are already ",
              s.images.size(1), " x ", s.images.size(2));
  s.images = data::pad_images(s.images, pad, pad);
}

// The model is built for the training images: test images of another size would fail only after a whole
// epoch, inside the model. Checked at start-up instead.
void check_same_image_size(const data::LabeledImages& train, const data::LabeledImages& test,
                           const Options& o) {
  if (train.size() == 0 || test.size() == 0) return;
  const Shape a(train.images.shape().begin() + 1, train.images.shape().end());
  const Shape b(test.images.shape().begin() + 1, test.images.shape().end());
  NABLA_CHECK(a == b, "--data-dir ", o.data_dir, ": the training images are ", a, " but the test images are ",
              b, " (one size for both is needed; --pad N pads both to N x N)");
}

Data load_data(const Options& o, Device dev) {
  if (o.dataset != "image-folder" && o.dataset != "synthetic")
    NABLA_CHECK(std::filesystem::is_directory(o.data_dir), "--data-dir ", o.data_dir, " is not a directory",
                o.dataset == "fashion-mnist"
                    ? " (install the Debian package dataset-fashion-mnist, or pass --data-dir)"
                    : "");
  Data d;
  if (o.dataset == "fashion-mnist" || o.dataset == "mnist") {
    bool fashion = o.dataset == "fashion-mnist";
    auto train =
        head(fashion ? data::load_fashion_mnist(o.data_dir, true) : data::load_mnist(o.data_dir, true),
             o.limit_train);
    auto test = fashion ? data::load_fashion_mnist(o.data_dir, false) : data::load_mnist(o.data_dir, false);
    padded(train, o.pad);
    padded(test, o.pad);
    check_same_image_size(train, test, o);
    std::vector<double> mean{fashion ? 0.2860 : 0.1307}, stdv{fashion ? 0.3530 : 0.3081};
    d.train = std::make_shared<data::TensorDataset>(normalised_nchw(train.images, mean, stdv), train.labels);
    d.test = std::make_shared<data::TensorDataset>(normalised_nchw(test.images, mean, stdv), test.labels);
    d.channels = 1;
    d.image_size = train.images.size(1);
    d.classes = 10;
    // Padded Fashion-MNIST for the CIFAR ResNets gets CIFAR's recipe: crops and flips (clothes are mostly
    // left-right symmetric; digits are not, so MNIST is never flipped).
    if (o.augment) {
      d.train_transform = data::random_crop(d.image_size, d.image_size, 2);
      if (fashion && o.pad > 0)
        d.train_transform = data::compose({d.train_transform, data::random_horizontal_flip()});
    }
  } else if (o.dataset == "cifar10" || o.dataset == "cifar100") {
    bool c10 = o.dataset == "cifar10";
    auto train = head(c10 ? data::load_cifar10(o.data_dir, true) : data::load_cifar100(o.data_dir, true),
                      o.limit_train);
    auto test = c10 ? data::load_cifar10(o.data_dir, false) : data::load_cifar100(o.data_dir, false);
    padded(train, o.pad);
    padded(test, o.pad);
    check_same_image_size(train, test, o);
    std::vector<double> mean{0.4914, 0.4822, 0.4465}, stdv{0.2470, 0.2435, 0.2616};
    d.train = std::make_shared<data::TensorDataset>(normalised_nchw(train.images, mean, stdv), train.labels);
    d.test = std::make_shared<data::TensorDataset>(normalised_nchw(test.images, mean, stdv), test.labels);
    d.channels = 3;
    d.image_size = train.images.size(1);
    d.classes = c10 ? 10 : 100;
    if (o.augment)
      d.train_transform =
          data::compose({data::random_crop(d.image_size, d.image_size, 4), data::random_horizontal_flip()});
  } else if (o.dataset == "synthetic") {
    d.synthetic = true;
    d.channels = o.channels;
    d.image_size = o.image_size;
    d.classes = o.classes;
    // Sizes from the command line: the bytes of the batch must not wrap before the allocation sees them.
    const std::string what = "--dataset synthetic: batch x channels x image size x image size x 4 bytes";
    int64_t bytes = checked_mul(o.batch_size, o.channels, what);
    for (int64_t f : {o.image_size, o.image_size, int64_t{4}}) bytes = checked_mul(bytes, f, what);
    d.synthetic_batch = data::synthetic_batch(o.batch_size, o.channels, o.image_size, o.image_size, o.classes,
                                              dev, o.run.seed);
    d.synthetic_steps = o.limit_train > 0 ? std::max<int64_t>(1, o.limit_train / o.batch_size) : 100;
  } else if (o.dataset == "image-folder") {
    auto train = std::make_shared<data::ImageFolder>(o.data_dir + "/train");
    // val/ classes are mapped by name to the training classes; one the training set lacks is refused.
    d.test = std::make_shared<data::ImageFolder>(o.data_dir + "/val", data::ImageMode::rgb, train->classes());
    d.train = train;
    d.channels = 3;
    d.image_size = 224;
    d.classes = static_cast<int64_t>(train->classes().size());
    auto norm = data::normalize({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225});
    d.train_transform = data::compose(
        {data::random_resized_crop(224, 224), data::random_horizontal_flip(), data::to_float(), norm});
    d.test_transform =
        data::compose({data::resize_shorter(256), data::center_crop(224, 224), data::to_float(), norm});
  } else {
    fail("unknown dataset '", o.dataset,
         "' (expected fashion-mnist, mnist, cifar10, cifar100, image-folder or synthetic)");
  }
  return d;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const Options& o, const nn::Module& model) {
  auto groups = optim::split_decay_groups(model.named_parameters(), o.weight_decay, o.lr);
  if (vrgd::is_vr_optimizer_kind(o.optimizer))
    return vrgd::make_vr_optimizer(o.optimizer, groups,
                                   {.lr = o.lr,
                                    .momentum = o.momentum,
                                    .weight_decay = o.weight_decay,
                                    .nesterov = o.nesterov,
                                    .gsnr = {.gamma = o.gsnr_gamma}});
  if (o.optimizer == "sgd")
    return std::make_unique<optim::Sgd>(
        groups,
        optim::SgdOptions{
            .lr = o.lr, .momentum = o.momentum, .weight_decay = o.weight_decay, .nesterov = o.nesterov});
  if (o.optimizer == "adam")
    return std::make_unique<optim::Adam>(groups,
                                         optim::AdamOptions{.lr = o.lr, .weight_decay = o.weight_decay});
  if (o.optimizer == "adamw")
    return std::make_unique<optim::AdamW>(groups,
                                          optim::AdamWOptions{.lr = o.lr, .weight_decay = o.weight_decay});
  if (o.optimizer == "lars")
    return std::make_unique<optim::Lars>(
        groups, optim::LarsOptions{.lr = o.lr, .momentum = o.momentum, .weight_decay = o.weight_decay});
  if (o.optimizer == "lamb")
    return std::make_unique<optim::Lamb>(groups,
                                         optim::LambOptions{.lr = o.lr, .weight_decay = o.weight_decay});
  fail("unknown optimizer '", o.optimizer, "' (expected sgd, adam, adamw, lars, lamb or vr-...)");
}

// A batch of images in the model's memory format (--channels-last: NHWC; other batches pass unchanged).
Tensor as_format(const Tensor& x, bool channels_last) {
  return channels_last && x.dim() == 4 ? x.contiguous(MemoryFormat::ChannelsLast) : x;
}

// Training batches on the device: from the loader through the device prefetcher (a pass-through on the
// CPU), or the one synthetic batch, `synthetic_steps` times per epoch. position() is what a checkpoint saves.
class TrainBatches {
 public:
  TrainBatches(const Options& o, const Data& d, Device dev, const dist::Session& ds) : d_(d) {
    if (d.synthetic) return;
    loader_ =
        std::make_unique<data::DataLoader>(d.train,
                                           data::LoaderOptions{.batch_size = o.batch_size,
                                                               .shuffle = true,
                                                               .drop_last = true,
                                                               .seed = o.run.seed,
                                                               .num_workers = static_cast<int>(o.workers),
                                                               .num_replicas = ds.world_size(),
                                                               .rank = ds.rank()},
                                           d.train_transform);
    prefetcher_ = std::make_unique<data::DevicePrefetcher>(*loader_, dev);
  }
  int64_t steps_per_epoch() const { return d_.synthetic ? d_.synthetic_steps : loader_->num_batches(); }
  std::optional<data::Batch> next() {
    if (!d_.synthetic) return prefetcher_->next();
    if (synthetic_position_.batch >= d_.synthetic_steps) {
      synthetic_position_ = {synthetic_position_.epoch + 1, 0};
      return std::nullopt;
    }
    data::Batch b = d_.synthetic_batch;
    b.epoch = synthetic_position_.epoch;
    b.index = synthetic_position_.batch++;
    return b;
  }
  data::LoaderPosition position() const {
    return d_.synthetic ? synthetic_position_ : prefetcher_->position();
  }
  void set_position(data::LoaderPosition p) {
    if (d_.synthetic)
      synthetic_position_ = p;
    else
      prefetcher_->set_position(p);
  }

 private:
  const Data& d_;
  std::unique_ptr<data::DataLoader> loader_;
  std::unique_ptr<data::DevicePrefetcher> prefetcher_;
  data::LoaderPosition synthetic_position_;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// What a checkpoint holds at `step`: the loader's position, the generator, the epoch's running sums.
apps::TrainState snapshot(apps::TrainState state, int64_t step, data::LoaderPosition position,
                          const apps::EpochTotals& partial) {
  state.step = step;
  state.loader = position;
  state.rng = default_generator();
  state.partial = partial;
  return state;
}

// Top-1 (and top-5) accuracy over the test set (the synthetic batch for synthetic data).
apps::Accuracy evaluate(nn::Module& model, const Data& d, const Options& o, Device dev, bool amp,
                        const dist::Session& ds) {
  if (d.synthetic) {
    bool done = false;
    return apps::evaluate_classifier(
        model,
        [&]() -> std::optional<data::Batch> {
          if (std::exchange(done, true)) return std::nullopt;
          return d.synthetic_batch;
        },
        d.classes, amp, ds);
  }
  auto shard = ds.shard(d.test);
  if (shard->size() == 0)
    return apps::evaluate_classifier(
        model, [] { return std::optional<data::Batch>(); }, d.classes, amp, ds);
  data::DataLoader loader(
      shard, {.batch_size = o.eval_batch_size, .num_workers = static_cast<int>(o.workers)}, d.test_transform);
  data::DevicePrefetcher batches(loader, dev);
  return apps::evaluate_classifier(
      model,
      [&] {
        auto b = batches.next();
        if (b) b->inputs = as_format(b->inputs, o.channels_last);
        return b;
      },
      d.classes, amp, ds);
}

void print_header(const Options& o, const Data& d, const nn::Module& model, const optim::Optimizer& optimizer,
                  const optim::Schedule& schedule, int64_t steps_per_epoch, Device dev, bool amp) {
  const std::string sizes = d.synthetic
                                ? str_cat(o.batch_size, " images of ", d.channels, "x", d.image_size, "x",
                                          d.image_size, ", ", d.classes, " classes, made on ", dev)
                                : str_cat(d.train->size(), " train, ", d.test->size(), " test");
  std::printf("model %s: %s parameters | dataset %s: %s | %lld steps/epoch | %s, %s%s\n", o.model.c_str(),
              apps::with_commas(static_cast<double>(model.num_parameters())).c_str(), o.dataset.c_str(),
              sizes.c_str(), static_cast<long long>(steps_per_epoch), optimizer.name().c_str(),
              schedule.str().c_str(), amp ? " | bf16 autocast" : "");
  std::fflush(stdout);
}

// The schedule of --schedule with the run's lr, length and warm-up (Schedule::parse refuses non-finite
// numbers)
// (`cosine:end=inf` would make every lr NaN).
optim::Schedule make_schedule(const Options& o, int64_t total_steps, bool quiet) {
  int64_t warmup = o.warmup_steps;
  if (warmup > 0 && warmup >= total_steps / 2) {
    warmup = total_steps / 10;
    if (!quiet)
      std::printf("note: --warmup-steps %lld is too long for a %lld-step run; using %lld\n",
                  static_cast<long long>(o.warmup_steps), static_cast<long long>(total_steps),
                  static_cast<long long>(warmup));
  }
  optim::Schedule s = optim::Schedule::parse(
      o.schedule, {.base_lr = o.lr, .total_steps = total_steps, .warmup_steps = warmup});
  return s;
}

// The option checks that involve more than one option (run after each option's own range check).
void check_options(const Options& o) {
  apps::check_run_options(o.run);
  const bool cuda = o.run.device.rfind("cuda", 0) == 0;
  NABLA_CHECK(!o.cuda_graph || cuda, "--cuda-graph needs --device cuda (got --device ", o.run.device, ")");
  NABLA_CHECK(
      !o.cuda_graph || !vrgd::is_vr_optimizer_kind(o.optimizer), "--cuda-graph: the VR optimizers run ",
      "one forward and backward per partition and read their statistics on the host; use --optimizer ",
      o.optimizer.substr(3), " or leave out --cuda-graph");
  if (o.dataset == "image-folder") {
    NABLA_CHECK(o.limit_train == 0, "--limit-train works with in-memory datasets only");
    NABLA_CHECK(o.pad == 0, "--pad works with in-memory datasets only (image-folder crops to 224)");
  }
  // The schedule's syntax and numbers, on a stand-in run length (the real one needs the data).
  (void)make_schedule(o, std::numeric_limits<int32_t>::max(), true);
}

std::optional<int> parse(int argc, char** argv, Options& o) {
  apps::OptionSet cli("train_classifier",
                      "Trains an image classifier (defaults: LeNet-5 on Fashion-MNIST, 10 epochs).");
  cli.section("Model and data");
  cli.add("model", &o.model, "lenet5", "network")
      .value_name("NAME")
      .one_of({"lenet5", "mlp", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet20",
               "resnet32", "resnet44", "resnet56", "resnet110"});
  cli.add("dataset", &o.dataset, "fashion-mnist",
          "data set (synthetic: random images made once on the device)")
      .value_name("NAME")
      .one_of({"fashion-mnist", "mnist", "cifar10", "cifar100", "image-folder", "synthetic"});
  cli.add("data-dir", &o.data_dir, "/usr/share/datasets/fashion-mnist",
          "folder with the data set's files (image-folder: with train/<class>/ and val/<class>/)")
      .value_name("DIR");
  cli.add("limit-train", &o.limit_train, 0, "use only the first N training examples (0: all)").non_negative();
  cli.add("pad", &o.pad, 0, "pad the images to N x N (32 for Fashion-MNIST with resnet20..110; 0: off)")
      .in_range(0, 4096)
      .unit("pixels");
  cli.add_switch("augment", &o.augment, "random crops (and flips for CIFAR and padded Fashion-MNIST)");
  cli.add("workers", &o.workers, 0, "data loader worker threads (0: in the training thread)")
      .in_range(0, 256);
  cli.add("image-size", &o.image_size, 32, "synthetic data: image height and width")
      .in_range(1, 4096)
      .unit("pixels");
  cli.add("classes", &o.classes, 10, "synthetic data: number of classes").in_range(1, 1 << 24);
  cli.add("channels", &o.channels, 3, "synthetic data: image channels").in_range(1, 4096);
  cli.add_switch(
      "channels-last", &o.channels_last,
      "NHWC memory format for the model's 4-D weights and the input batches (fastest with --amp bf16 on "
      "CUDA)");
  cli.section("Training");
  cli.add("epochs", &o.epochs, 10, "passes over the training set").positive();
  cli.add("max-steps", &o.max_steps, 0, "stop after this many steps in total (0: no limit)")
      .non_negative()
      .unit("steps");
  cli.add("batch-size", &o.batch_size, 64, "training batch, global (split over the data-parallel ranks)")
      .in_range(1, int64_t{1} << 30)
      .unit("examples");
  cli.add("eval-batch-size", &o.eval_batch_size, 1000, "evaluation batch")
      .in_range(1, int64_t{1} << 30)
      .unit("examples");
  cli.add("optimizer", &o.optimizer, "sgd", "optimizer (vr-*: VRGD, docs/vrgd.md)")
      .value_name("NAME")
      .one_of({"sgd", "adam", "adamw", "lars", "lamb", "vr-sgd", "vr-momentum", "vr-adam", "vr-adamw",
               "vr-lars", "vr-lamb"});
  cli.add("lr", &o.lr, 0.05, "peak learning rate (after the warm-up)").positive();
  cli.add("momentum", &o.momentum, 0.9, "SGD/LARS momentum").in_range(0, 1, apps::Bound::open_high);
  cli.add_switch("nesterov", &o.nesterov, "Nesterov momentum (SGD)");
  cli.add("weight-decay", &o.weight_decay, 5e-4, "weight decay (not on biases and norm weights)")
      .non_negative();
  cli.add(
         "schedule", &o.schedule, "cosine",
         "learning-rate schedule: constant | step:every=N[,gamma=G] | multistep:milestones=A/B/C[,gamma=G] | "
         "cosine[:end=LR] | poly[:power=P,end=LR]; every kind also takes warmup=N,warmup_start=F and total=N "
         "(default: --warmup-steps and the run's steps); N in steps")
      .value_name("SPEC");
  cli.add("warmup-steps", &o.warmup_steps, 100, "linear warm-up from 0 to --lr").non_negative().unit("steps");
  cli.add("label-smoothing", &o.label_smoothing, 0.0, "cross-entropy label smoothing")
      .in_range(0, 1, apps::Bound::open_high);
  cli.add("clip", &o.clip, 0.0, "clip gradients to this global L2 norm (0: off)").non_negative();
  cli.add("gsnr-gamma", &o.gsnr_gamma, 0.1, "VR optimizers: lower clamp of the GSNR multiplier")
      .in_range(0, 1, apps::Bound::open_low);
  cli.add("gsnr-partitions", &o.gsnr_partitions, 8,
          "VR optimizers: partitions of each batch (micro-batches, or ranks x micro-batches); must divide "
          "the batch")
      .positive();
  cli.add_switch(
      "cuda-graph", &o.cuda_graph,
      "CUDA: record the forward and backward once as a CUDA graph and replay it for each batch (the "
      "optimizer step stays eager; docs/cuda_graphs.md)");
  apps::add_run_options(cli, o.run);
  cli.example(
      "", "LeNet-5 on Fashion-MNIST, SGD with momentum, cosine schedule, 10 epochs (about 1 min on 2 cores)");
  cli.example("--model mlp --optimizer adamw --lr 1e-3 --epochs 5 --metrics run.jsonl",
              "an MLP with AdamW; JSON lines for scripts/plot_metrics.py");
  cli.example("--schedule step:every=2000,gamma=0.1 --warmup-steps 0", "lr x 0.1 every 2,000 steps");
  cli.example("--schedule multistep:milestones=3000/6000/8000,gamma=0.1",
              "lr x 0.1 at steps 3,000, 6,000, 8,000");
  cli.example("--schedule cosine:end=1e-4,warmup_start=0.1",
              "cosine decay to 1e-4 after a warm-up from 0.1 x lr");
  cli.example("--schedule poly:power=2 --epochs 3", "quadratic decay to 0");
  cli.example("--checkpoint ck.safetensors --epochs 5", "a checkpoint after every epoch and on Ctrl-C");
  cli.example("--resume ck.safetensors --checkpoint ck.safetensors --epochs 10",
              "continue from it, bit-identical, to 10 epochs");
  cli.example(
      "--model resnet20 --pad 32 --augment --epochs 20 --batch-size 128 --lr 0.1 --warmup-steps 200 "
      "--workers 4 "
      "--device cuda",
      "a CIFAR ResNet-20 on Fashion-MNIST padded to 32 x 32");
  cli.example("--optimizer vr-lars --gsnr-partitions 8 --batch-size 1024 --lr 2",
              "VR-LARS over 8 micro-batches");
  cli.example(
      "--dataset synthetic --model resnet50 --image-size 224 --classes 1000 --batch-size 128 --max-steps 100 "
      "--amp bf16 --channels-last --cuda-graph --device cuda",
      "throughput only: one random batch made on the GPU");
  return cli.parse(argc, argv, [&] { check_options(o); });
}

// Checks at start-up, before any training: a data set that cannot make one step, a data directory that is
// not there. (The loader drops the last partial batch, so an epoch of a set smaller than a batch has no
// step.)
void check_data(const Options& o, const Data& d, const dist::Session& ds) {
  if (d.synthetic) return;
  NABLA_CHECK(d.train->size() > 0, "--data-dir ", o.data_dir, ": the training set is empty");
  const int64_t per_rank = (d.train->size() + ds.world_size() - 1) / ds.world_size();
  NABLA_CHECK(per_rank >= o.batch_size, "--batch-size ", o.batch_size * ds.world_size(),
              " is larger than the training set's ", d.train->size(),
              " examples (an epoch drops the last partial batch, so it would have no step)");
  if (d.test->size() == 0 && ds.is_main())
    std::printf("note: the test set is empty; no test accuracy will be reported\n");
}

void print_epoch(int64_t epoch, int64_t epochs, int64_t step, const apps::EpochTotals& t,
                 const apps::Accuracy& test, double train_s, apps::TrainLog& log) {
  const double train_loss = t.loss_count ? t.loss_sum / static_cast<double>(t.loss_count) : 0.0;
  const double train_acc = t.seen ? static_cast<double>(t.correct) / static_cast<double>(t.seen) : 0.0;
  const std::string top5 = test.top5 >= 0 ? " (top-5 " + apps::percent(test.top5) + ")" : "";
  std::printf("epoch %lld/%lld | train loss %.4f | train acc %.2f%% | test acc %s%s | %s elapsed\n",
              static_cast<long long>(epoch + 1), static_cast<long long>(epochs), train_loss, 100 * train_acc,
              test.seen ? apps::percent(test.top1).c_str() : "n/a (empty test set)", top5.c_str(),
              apps::format_duration(log.elapsed()).c_str());
  std::fflush(stdout);
  nlohmann::json record = {{"kind", "epoch"},           {"epoch", epoch + 1},     {"step", step},
                           {"train_loss", train_loss},  {"train_acc", train_acc}, {"train_s", train_s},
                           {"elapsed_s", log.elapsed()}};
  if (test.seen) record["test_acc"] = test.top1;
  if (test.seen && test.top5 >= 0) record["test_top5"] = test.top5;
  log.write(record);
}

int run(Options& o) {
  // 1. set-up: data-parallel session (--batch-size becomes this rank's share), device, threads, seed, signals
  apps::Run r = apps::Run::start(o.run, o.batch_size);
  const dist::Session& ds = r.session();
  const Device dev = r.device();

  // 2. data, model, optimizer, the step
  Data d = load_data(o, dev);
  check_data(o, d, ds);
  // The synthetic batch is reused every step: put it in the model's layout once, not per step.
  if (d.synthetic) d.synthetic_batch.inputs = as_format(d.synthetic_batch.inputs, o.channels_last);
  auto model = models::make_classifier(o.model, d.channels, d.image_size, d.classes);
  model->to(dev);
  if (o.channels_last) model->to(MemoryFormat::ChannelsLast);
  auto optimizer = make_optimizer(o, *model);
  apps::TrainStep train_step(
      *model, *optimizer, ds, apps::classifier_forward(o.label_smoothing),
      {.amp = r.amp(), .clip = o.clip, .cuda_graph = o.cuda_graph, .vr_partitions = o.gsnr_partitions});
  TrainBatches batches(o, d, dev, ds);
  const int64_t steps_per_epoch = batches.steps_per_epoch();
  const int64_t total_steps = apps::total_steps(steps_per_epoch, o.epochs, o.max_steps);
  if (train_step.is_vr()) std::printf("%s\n", train_step.describe(o.batch_size).c_str());
  const optim::Schedule schedule = make_schedule(o, total_steps, false);
  print_header(o, d, *model, *optimizer, schedule, steps_per_epoch, dev, r.amp());

  // 3. resume: model, optimizer, RNG, data position and the epoch's running sums, checked against this run
  apps::TrainState state = r.resume(*model, *optimizer, steps_per_epoch, o.epochs);
  batches.set_position(state.loader);
  if (!r.is_main()) state.partial = {};  // rank 0 saved the sums over all ranks
  state.extra["model"] = o.model;
  state.extra["dataset"] = o.dataset;
  apps::TrainLog log(r, total_steps, o.epochs);

  // 4. the loop
  int64_t step = state.step;
  const int64_t world = ds.world_size();
  for (int64_t epoch = batches.position().epoch; epoch < o.epochs && step < total_steps; ++epoch) {
    apps::EpochTotals t = std::exchange(state.partial, {});
    const auto epoch_start = Clock::now();  // train_s: the epoch's training, batches included, evaluation not
    while (auto batch = batches.next()) {
      const auto t0 = Clock::now();
      const double lr = schedule.lr_at(step);
      const bool stats = train_step.is_vr() && log.records(step + 1);
      const apps::StepResult s =
          train_step.run(as_format(batch->inputs, o.channels_last), batch->labels, lr, stats);
      apps::check_loss(s.loss, ++step, o.run.allow_nonfinite);
      if (stats) log.write(train_step.gsnr_record(step));
      t.loss_sum += s.loss, ++t.loss_count, t.correct += s.correct, t.seen += batch->labels.numel();
      log.step(step, epoch, s.loss, lr, batch->labels.numel() * world, seconds_since(t0));
      if (step >= total_steps) break;
      if (r.stop_requested(step)) {  // Ctrl-C / SIGTERM: a checkpoint at this step, then exit 130 / 143
        log.finish_line();
        ds.sum(t.loss_sum, t.loss_count, t.correct, t.seen);
        r.save(*model, *optimizer, snapshot(state, step, batches.position(), t));
        return r.stop_code();
      }
    }
    const double train_s = seconds_since(epoch_start);
    log.finish_line();
    ds.sum(t.correct, t.seen, t.loss_sum, t.loss_count);  // over the ranks (a no-op in a single process)
    train_step.sync_buffers();  // evaluate every shard with rank 0's BatchNorm statistics
    const apps::Accuracy test = evaluate(*model, d, o, dev, r.amp(), ds);
    print_epoch(epoch, o.epochs, step, t, test, train_s, log);
    state.epoch = epoch + 1;
    r.save(*model, *optimizer, snapshot(state, step, batches.position(), {}));
  }
  log.summary();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (std::optional<int> code = parse(argc, argv, o)) return *code;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_classifier: %s\n", e.what());
  }
  return apps::kExitFailure;
}
