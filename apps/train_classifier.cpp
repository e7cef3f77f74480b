// train_classifier: trains an image classifier from the command line.
//
//   ./build/train_classifier                      # LeNet-5 on Fashion-MNIST from
//   /usr/share/datasets/fashion-mnist
//   ./build/train_classifier --model mlp --optimizer adamw --lr 1e-3 --epochs 5 --metrics run.jsonl
//   ./build/train_classifier --dataset cifar10 --data-dir ~/cifar-10-batches-bin --augment
//   ./build/train_classifier --checkpoint ck.safetensors ... ; later: --resume ck.safetensors
//   ./build/train_classifier --model resnet20 --pad 32 --augment --device cuda   # CIFAR ResNet on 32²
//   F-MNIST
//   ./build/train_classifier --dataset synthetic --model resnet50 --image-size 224 --classes 1000
//       --device cuda --amp bf16 --max-steps 100                                  # throughput only
//
// Reads like llm.c's main: parse options -> build the model -> load the data -> loop {forward, backward,
// step, log} -> evaluate -> checkpoint. Resuming restores model, optimizer, RNG and the data position, so
// the continuation is bit-identical to an uninterrupted run.
//
// Batches reach the device through data::DevicePrefetcher (pinned host buffers, copies on a side stream
// that overlap the previous step; a pass-through on the CPU); --dataset synthetic instead generates one
// batch on the device once and trains on it every step (no loader, no copy: the model's speed alone).
// --amp bf16 runs forward and loss under bf16 autocast; the weights, gradients and optimizer state stay
// f32 (master weights). Evaluation reports top-1 and, with more than 5 classes, top-5 accuracy. The run
// ends with a throughput summary: the median step time after the warm-up steps.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "algorithms/optim/clip.h"
#include "algorithms/optim/optimizer.h"
#include "algorithms/optim/schedule.h"
#include "apps/common/accuracy.h"
#include "apps/common/checkpoint.h"
#include "apps/common/cli.h"
#include "apps/common/progress.h"
#include "apps/common/vrgd_step.h"
#include "data/data.h"
#include "dist/session.h"  // data-parallel when launched with several processes (docs/distributed.md)
#include "engine/device_runtime.h"
#include "models/classifiers.h"
#include "nabla.h"

using namespace nabla;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string model, dataset, data_dir, optimizer, schedule, checkpoint, resume, metrics, device, amp;
  int64_t epochs, batch_size, eval_batch_size, warmup_steps, threads, workers, max_steps, limit_train,
      print_every;
  int64_t pad, image_size, classes, channels;
  int64_t gsnr_partitions;  // VRGD
  double gsnr_gamma;
  double lr, momentum, weight_decay, label_smoothing, clip;
  bool nesterov, augment, no_progress, channels_last, cuda_graph;
  uint64_t seed;
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

Data load_data(const Options& o, Device dev) {
  Data d;
  if (o.dataset == "fashion-mnist" || o.dataset == "mnist") {
    bool fashion = o.dataset == "fashion-mnist";
    auto train =
        head(fashion ? data::load_fashion_mnist(o.data_dir, true) : data::load_mnist(o.data_dir, true),
             o.limit_train);
    auto test = fashion ? data::load_fashion_mnist(o.data_dir, false) : data::load_mnist(o.data_dir, false);
    padded(train, o.pad);
    padded(test, o.pad);
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
    d.synthetic_batch =
        data::synthetic_batch(o.batch_size, o.channels, o.image_size, o.image_size, o.classes, dev, o.seed);
    d.synthetic_steps = o.limit_train > 0 ? std::max<int64_t>(1, o.limit_train / o.batch_size) : 100;
  } else if (o.dataset == "image-folder") {
    NABLA_CHECK(o.limit_train == 0, "--limit-train works with in-memory datasets only");
    NABLA_CHECK(o.pad == 0, "--pad works with in-memory datasets only (image-folder crops to 224)");
    auto train = std::make_shared<data::ImageFolder>(o.data_dir + "/train");
    d.test = std::make_shared<data::ImageFolder>(o.data_dir + "/val");
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

// VRGD's rank-mode collective: the GSNR's sum and square buffers flattened into one tensor, summed over the
// ranks with one all-reduce, and written back in place.
vrgd::AllReduceSum gsnr_all_reduce(dist::Communicator& comm) {
  return [&comm](std::vector<Tensor>& buffers) {
    if (buffers.empty()) return;
    std::vector<Tensor> flat;
    for (const Tensor& b : buffers) flat.push_back(b.reshape({-1}));
    Tensor all = cat(flat, 0);
    comm.all_reduce(all, dist::ReduceOp::sum);
    int64_t offset = 0;
    for (Tensor& b : buffers) {
      b.copy_(all.narrow(0, offset, b.numel()).view(b.shape()));
      offset += b.numel();
    }
  };
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
                                                               .seed = o.seed,
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

struct Accuracy {
  double top1 = 0, top5 = -1;  // top5 < 0: not measured (5 classes or fewer)
};

// Top-1 (and top-5) accuracy over the test set (the synthetic batch for synthetic data), in evaluation
// mode. The counts add up on the device; the host reads them once at the end.
Accuracy evaluate(nn::Module& model, const Data& d, const Options& o, Device dev, bool amp,
                  const dist::Session& ds) {
  model.eval();
  NoGradGuard no_grad;
  AutocastGuard autocast(DType::bf16, amp);
  const bool top5 = d.classes > 5;
  Tensor correct1 = zeros({}, {.dtype = DType::i64, .device = dev}), correct5 = correct1;
  int64_t seen = 0;
  auto add = [&](const Tensor& inputs, const Tensor& labels) {
    Tensor logits = model.forward(as_format(inputs, o.channels_last));
    correct1 = correct1 + apps::topk_correct(logits, labels, 1);
    if (top5) correct5 = correct5 + apps::topk_correct(logits, labels, 5);
    seen += labels.numel();
  };
  if (d.synthetic) {
    add(d.synthetic_batch.inputs, d.synthetic_batch.labels);
  } else {
    data::DataLoader loader(ds.shard(d.test),
                            {.batch_size = o.eval_batch_size, .num_workers = static_cast<int>(o.workers)},
                            d.test_transform);
    data::DevicePrefetcher batches(loader, dev);
    while (auto b = batches.next()) add(b->inputs, b->labels);
  }
  model.train();
  Accuracy acc;
  double c1 = correct1.item(), c5 = top5 ? correct5.item() : 0.0;
  ds.sum(c1, c5, seen);  // each rank evaluated its shard
  if (seen == 0) return acc;
  acc.top1 = c1 / static_cast<double>(seen);
  if (top5) acc.top5 = c5 / static_cast<double>(seen);
  return acc;
}

#ifdef NABLA_HAS_CUDA
// --cuda-graph: the forward and backward of a training step recorded once as a CUDA graph (cuda/graph.h) and
// replayed for every batch of the recorded shape. Only the optimizer step stays eager (a few multi-tensor
// launches), so every optimizer, the LR schedule and --clip work unchanged; a small model's step is then no
// longer bound by the host's time to issue hundreds of kernels.
//
// The graph reads its batch from tensors of its own (each batch is copied in on the device) and leaves the
// logits, the loss and the parameters' gradients in tensors the capture made, which each replay rewrites.
// The gradients are put back on the parameters after each replay, because an eager step (a last batch of
// another size) replaces them. Captured after the first step of the run, when cuDNN has chosen its
// algorithms. Work that a graph cannot replay (dropout's random numbers, a CPU op) makes the capture fail
// with its error: the run then says so and goes on eagerly.
class GraphedForwardBackward {
 public:
  bool ready() const { return graph_.captured(); }
  bool fits(const Tensor& x, const Tensor& y) const {
    return ready() && x.shape() == inputs_.shape() && x.strides() == inputs_.strides() &&
           y.shape() == labels_.shape() && x.dtype() == inputs_.dtype() && y.dtype() == labels_.dtype();
  }
  // Records the step for batches like (x, y); false (with the reason printed) if it cannot be captured.
  bool capture(nn::Module& model, optim::Optimizer& opt, const Tensor& x, const Tensor& y, bool amp,
               double label_smoothing) {
    inputs_ = empty_like(x);  // same memory format
    labels_ = empty_like(y);
    inputs_.copy_(x);
    labels_.copy_(y);
    try {
      graph_.capture([&] {
        {
          AutocastGuard autocast(DType::bf16, amp);
          opt.zero_grad();
          logits_ = model.forward(inputs_);
          loss_ = cross_entropy(logits_, labels_, {.label_smoothing = label_smoothing});
        }
        loss_.backward();
      });
    } catch (const Error& e) {
      std::printf("note: --cuda-graph: the step cannot be captured, training eagerly: %s\n", e.what());
      inputs_ = labels_ = logits_ = loss_ = Tensor();
      return false;
    }
    grads_.clear();
    for (const Tensor& p : model.parameters())
      if (p.grad().defined()) grads_.emplace_back(p, p.grad());
    std::printf(
        "cuda graph: the forward and backward captured as %zu nodes; replayed for every batch of %s\n",
        graph_.num_nodes(), str_cat(x.shape()).c_str());
    return true;
  }
  // One forward and backward on (x, y): the gradients are on the parameters afterwards.
  void run(const Tensor& x, const Tensor& y) {
    inputs_.copy_(x);
    labels_.copy_(y);
    graph_.replay();
    for (auto& [p, g] : grads_) p.set_grad(g);
  }
  const Tensor& logits() const { return logits_; }
  const Tensor& loss() const { return loss_; }

 private:
  runtime::Graph graph_;  // captures on the current CUDA device
  Tensor inputs_, labels_, logits_, loss_;
  std::vector<std::pair<Tensor, Tensor>> grads_;  // (parameter, the gradient tensor the graph writes)
};
#endif

Options parse(int argc, char** argv) {
  Options o;
  bool help = false;
  apps::OptionParser cli("train_classifier: train an image classifier (defaults: LeNet-5 on Fashion-MNIST)");
  cli.add_switch("help,h", &help, "show this help")
      .add("model", &o.model, "lenet5", "lenet5 | mlp | resnet18/34/50/101/152 | resnet20/32/44/56/110")
      .add("dataset", &o.dataset, "fashion-mnist",
           "fashion-mnist | mnist | cifar10 | cifar100 | image-folder | synthetic (random images made once "
           "on the device, for throughput)")
      .add("data-dir", &o.data_dir, "/usr/share/datasets/fashion-mnist",
           "folder with the dataset files (image-folder: with train/ and val/)")
      .add("epochs", &o.epochs, 10, "passes over the training set")
      .add("batch-size", &o.batch_size, 64, "training batch size")
      .add("eval-batch-size", &o.eval_batch_size, 1000, "evaluation batch size")
      .add("optimizer", &o.optimizer, "sgd",
           "sgd | adam | adamw | lars | lamb | vr-sgd | vr-momentum | vr-adam | vr-adamw | vr-lars | vr-lamb")
      .add("gsnr-gamma", &o.gsnr_gamma, 0.1, "VR optimizers: lower clamp of the GSNR multiplier, in (0, 1]")
      .add("gsnr-partitions", &o.gsnr_partitions, 8,
           "VR optimizers: k micro-batches per step (must divide the batch)")
      .add("lr", &o.lr, 0.05, "peak learning rate")
      .add("momentum", &o.momentum, 0.9, "SGD/LARS momentum")
      .add_switch("nesterov", &o.nesterov, "Nesterov momentum (SGD)")
      .add("weight-decay", &o.weight_decay, 5e-4, "weight decay (not applied to biases and norm weights)")
      .add("schedule", &o.schedule, "cosine",
           "constant | step:size=N,gamma=G | multistep:milestones=a;b | cosine | poly:power=P")
      .add("warmup-steps", &o.warmup_steps, 100, "linear warm-up steps")
      .add("label-smoothing", &o.label_smoothing, 0.0, "cross-entropy label smoothing")
      .add("clip", &o.clip, 0.0, "clip gradients to this global L2 norm (0: off)")
      .add_switch("augment", &o.augment, "random crops (and flips for CIFAR and padded Fashion-MNIST)")
      .add("pad", &o.pad, 0, "pad the images to N x N (e.g. 32 for Fashion-MNIST with resnet20..110; 0: off)")
      .add("amp", &o.amp, "off",
           "off | bf16 (autocast for forward and loss on CUDA; weights and optimizer stay f32)")
      .add_switch("channels-last", &o.channels_last,
                  "NHWC memory format for the model's 4-D weights and the input batches (fastest with --amp "
                  "bf16 on CUDA)")
      .add("image-size", &o.image_size, 32, "synthetic data: image height and width")
      .add("classes", &o.classes, 10, "synthetic data: number of classes")
      .add("channels", &o.channels, 3, "synthetic data: image channels")
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
      .add_switch("no-progress", &o.no_progress, "no progress line")
      .add_switch("cuda-graph", &o.cuda_graph,
                  "CUDA: record the forward and backward once as a CUDA graph and replay it for each batch "
                  "(the optimizer step stays eager; docs/cuda_graphs.md)");
  cli.parse(argc, argv);
  if (help) {
    std::cout << cli.help() << "\n";
    std::exit(0);
  }
  NABLA_CHECK(o.epochs > 0 && o.batch_size > 0 && o.eval_batch_size > 0,
              "--epochs, --batch-size and --eval-batch-size must be positive");
  NABLA_CHECK(o.lr > 0, "--lr must be positive, got ", o.lr);
  NABLA_CHECK(o.threads >= 0 && o.workers >= 0 && o.max_steps >= 0 && o.limit_train >= 0 && o.pad >= 0,
              "--threads, --workers, --max-steps, --limit-train and --pad must be >= 0");
  NABLA_CHECK(o.amp == "off" || o.amp == "bf16", "--amp ", o.amp, ": expected off or bf16");
  NABLA_CHECK(o.image_size > 0 && o.classes > 0 && o.channels > 0,
              "--image-size, --classes and --channels must be positive");
  Device dev = Device::parse(o.device);
  runtime::require_device(dev, ("--device " + o.device).c_str());
  NABLA_CHECK(!o.cuda_graph || dev.is_cuda(), "--cuda-graph needs --device cuda (got --device ", o.device,
              ")");
  NABLA_CHECK(
      !o.cuda_graph || !vrgd::is_vr_optimizer_kind(o.optimizer), "--cuda-graph: the VR optimizers run ",
      "one forward and backward per partition and read their statistics on the host; use --optimizer ",
      o.optimizer.substr(3), " or leave out --cuda-graph");
  NABLA_CHECK(o.resume.empty() || std::filesystem::is_regular_file(o.resume), "--resume ", o.resume,
              ": no such file");
  if (o.dataset != "image-folder" && o.dataset != "synthetic")
    NABLA_CHECK(std::filesystem::is_directory(o.data_dir), "--data-dir ", o.data_dir, " is not a directory",
                o.dataset == "fashion-mnist"
                    ? " (install the Debian package dataset-fashion-mnist, or pass --data-dir)"
                    : "");
  return o;
}

std::string fixed2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// The run's speed: the median step time (each step timed from its batch in hand to its loss on the host)
// after the first quarter of the steps (at most 20), which pay for cuDNN's algorithm search, the caching
// allocator's first cudaMallocs and the loader's start. The median, not the mean, so that an evaluation
// or a slow batch now and then does not move it.
void print_throughput(std::vector<double> seconds, int64_t images_per_step, apps::MetricsLog& metrics) {
  const size_t skip = std::min<size_t>(20, seconds.size() / 4);
  if (seconds.size() - skip < 1 || images_per_step == 0) return;
  std::vector<double> timed(seconds.begin() + static_cast<std::ptrdiff_t>(skip), seconds.end());
  std::nth_element(timed.begin(), timed.begin() + timed.size() / 2, timed.end());
  const double median = timed[timed.size() / 2];
  std::printf("throughput: %s img/s (median step %.2f ms over %zu steps, %zu warm-up steps excluded)\n",
              apps::with_commas(static_cast<double>(images_per_step) / median).c_str(), median * 1e3,
              timed.size(), skip);
  metrics.write({{"kind", "summary"},
                 {"median_step_ms", median * 1e3},
                 {"img_per_s", images_per_step / median},
                 {"timed_steps", timed.size()},
                 {"warmup_steps", skip}});
}

int run(int argc, char** argv) {
  // 1. options
  Options o = parse(argc, argv);
  // --batch-size is global: each of the W processes takes batch-size / W; only rank 0 prints and writes.
  dist::Session ds = dist::Session::start(o.device, o.batch_size);
  if (!ds.is_main()) o.checkpoint.clear(), o.metrics.clear(), o.no_progress = true;
  if (o.threads > 0) omp_set_num_threads(static_cast<int>(o.threads));
  manual_seed(o.seed);

  // 2. data and model
  const Device dev = Device::parse(o.device);
  const bool amp = o.amp == "bf16";
  if (amp && dev.is_cpu())
    std::printf("note: --amp bf16 changes nothing on the CPU (autocast is CUDA-only)\n");
  Data d = load_data(o, dev);
  // The synthetic batch is reused every step: put it in the model's layout once, not per step.
  if (d.synthetic) d.synthetic_batch.inputs = as_format(d.synthetic_batch.inputs, o.channels_last);
  auto model = models::make_classifier(o.model, d.channels, d.image_size, d.classes);
  model->to(dev);
  if (o.channels_last) model->to(MemoryFormat::ChannelsLast);
  auto optimizer = make_optimizer(o, *model);
  auto dp = ds.data_parallel(*model);  // null in a single process
  TrainBatches batches(o, d, dev, ds);
  const int64_t steps_per_epoch = batches.steps_per_epoch();
  auto* vr = dynamic_cast<vrgd::VrOptimizer*>(optimizer.get());  // null for the non-VR optimizers
  // VRGD partitions: micro-batches on one process; with W ranks, each rank is gsnr_partitions / W of them
  // (the statistics are then summed over the ranks: apps/common/vrgd_step.h).
  const int64_t vr_local_partitions = o.gsnr_partitions / ds.world_size();
  if (vr) {
    NABLA_CHECK(vr_local_partitions >= 1 && vr_local_partitions * ds.world_size() == o.gsnr_partitions,
                "--gsnr-partitions ", o.gsnr_partitions, " must be a multiple of the ", ds.world_size(),
                " data-parallel ranks");
    if (ds.is_main())
      std::printf("VRGD: %lld partitions of %lld examples per step (%s), gamma %g\n",
                  static_cast<long long>(o.gsnr_partitions),
                  static_cast<long long>(o.batch_size / vr_local_partitions),
                  ds.active() ? str_cat(vr_local_partitions, " per rank").c_str() : "micro-batches",
                  o.gsnr_gamma);
  }
  int64_t total_steps = steps_per_epoch * o.epochs;
  if (o.max_steps > 0) total_steps = std::min(total_steps, o.max_steps);
  int64_t warmup = o.warmup_steps;
  if (warmup > 0 && warmup >= total_steps / 2) {
    warmup = total_steps / 10;
    std::printf("note: --warmup-steps %lld is too long for a %lld-step run; using %lld\n",
                static_cast<long long>(o.warmup_steps), static_cast<long long>(total_steps),
                static_cast<long long>(warmup));
  }
  optim::ScheduleOptions sched_defaults{.base_lr = o.lr, .total_steps = total_steps, .warmup_steps = warmup};
  optim::Schedule schedule = optim::Schedule::parse(o.schedule, sched_defaults);
  const std::string sizes = d.synthetic
                                ? str_cat(o.batch_size, " images of ", d.channels, "x", d.image_size, "x",
                                          d.image_size, ", ", d.classes, " classes, made on ", dev)
                                : str_cat(d.train->size(), " train, ", d.test->size(), " test");
  std::printf("model %s: %s parameters | dataset %s: %s | %lld steps/epoch | %s, %s%s\n", o.model.c_str(),
              apps::with_commas(static_cast<double>(model->num_parameters())).c_str(), o.dataset.c_str(),
              sizes.c_str(), static_cast<long long>(steps_per_epoch), optimizer->name().c_str(),
              schedule.str().c_str(), amp ? " | bf16 autocast" : "");

  // 3. resume
  apps::TrainState state;
  if (!o.resume.empty()) {
    state = apps::load_checkpoint(o.resume, *model, *optimizer);
    default_generator() = state.rng;
    batches.set_position(state.loader);
    std::printf("resumed from %s at step %lld (epoch %lld, batch %lld)\n", o.resume.c_str(),
                static_cast<long long>(state.step), static_cast<long long>(state.loader.epoch),
                static_cast<long long>(state.loader.batch));
  }
  apps::MetricsLog metrics = o.metrics.empty() ? apps::MetricsLog() : apps::MetricsLog(o.metrics);
  apps::Progress progress(total_steps, o.print_every, !o.no_progress);

#ifdef NABLA_HAS_CUDA
  std::unique_ptr<GraphedForwardBackward> graphed;
  if (o.cuda_graph) {
    if (ds.active())  // the gradient all-reduce hooks into backward, on a stream of its own
      std::printf(
          "note: --cuda-graph is not used with several processes (data-parallel); training eagerly\n");
    else
      graphed = std::make_unique<GraphedForwardBackward>();
  }
#endif

  // 4. the loop
  const auto run_start = Clock::now();
  int64_t step = state.step;
  std::vector<double> step_seconds;  // for the throughput summary
  int64_t images_per_step = 0;
  for (int64_t epoch = batches.position().epoch; epoch < o.epochs && step < total_steps; ++epoch) {
    int64_t correct = 0, seen = 0;
    double loss_sum = 0;
    int64_t loss_count = 0;
    const auto epoch_start =
        Clock::now();  // train_s: this epoch's training loop, batches included, evaluation excluded
    while (auto batch = batches.next()) {
      const auto t0 = Clock::now();
      const double lr = schedule.lr_at(step);
      optimizer->set_lr(lr);
      const Tensor inputs = as_format(batch->inputs, o.channels_last);
      const Tensor& labels = batch->labels;
      double loss_v = 0;
      if (vr) {  // VRGD: forward/backward per partition, then the GSNR (apps/common/vrgd_step.h)
        const bool stats = metrics.enabled() && ((step + 1) % 10 == 0 || step + 1 == total_steps);
        apps::VrStepResult r;
        AutocastGuard autocast(DType::bf16, amp);
        if (dp) {
          auto local = dp->no_sync();  // the GSNR needs each rank's own gradient; its all-reduce sums them
          r = apps::vr_forward_backward(vr->gsnr(), *model, inputs, labels, vr_local_partitions,
                                        o.label_smoothing, stats, gsnr_all_reduce(*ds.communicator()),
                                        ds.world_size());
        } else {
          r = apps::vr_forward_backward(vr->gsnr(), *model, inputs, labels, vr_local_partitions,
                                        o.label_smoothing, stats);
        }
        loss_v = r.loss;
        correct += r.correct;
        if (stats && ds.is_main()) metrics.write(apps::gsnr_stats_record(vr->gsnr(), step + 1));
        if (o.clip > 0) optim::clip_grad_norm(model->parameters(), o.clip);
        optimizer->step();
      } else {
        Tensor logits, loss;
#ifdef NABLA_HAS_CUDA
        // --cuda-graph: capture at the second step of the run (the first chose cuDNN's algorithms).
        if (graphed && !graphed->ready() && step > state.step &&
            !graphed->capture(*model, *optimizer, inputs, labels, amp, o.label_smoothing))
          graphed.reset();
        if (graphed && graphed->fits(inputs, labels)) {
          graphed->run(inputs, labels);
          logits = graphed->logits();
          loss = graphed->loss();
        } else
#endif
        {
          {
            AutocastGuard autocast(DType::bf16, amp);
            logits = model->forward(inputs);
            loss = cross_entropy(logits, labels, {.label_smoothing = o.label_smoothing});
          }
          optimizer->zero_grad();
          loss.backward();
        }
        if (dp) dp->finish();  // gradients averaged over the ranks
        if (o.clip > 0) optim::clip_grad_norm(model->parameters(), o.clip);
        optimizer->step();
        loss_v = loss.item();
        correct += static_cast<int64_t>(apps::topk_correct(logits.detach(), labels, 1).item());
      }
      ++step;
      seen += labels.numel();
      loss_sum += loss_v;
      ++loss_count;
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      step_seconds.push_back(dt);
      images_per_step = labels.numel() * ds.world_size();
      progress.step(step, epoch + 1, o.epochs, loss_v, lr, labels.numel() * ds.world_size(), dt);
      if (metrics.enabled() && (step % 10 == 0 || step == total_steps))
        metrics.write({{"kind", "step"},
                       {"step", step},
                       {"epoch", epoch},
                       {"loss", loss_v},
                       {"lr", lr},
                       {"step_ms", dt * 1e3},
                       {"img_per_s", labels.numel() * ds.world_size() / dt}});
      if (step >= total_steps) break;
    }
    const double train_s = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    progress.finish_line();
    ds.sum(correct, seen, loss_sum, loss_count);  // over the ranks (a no-op in a single process)
    if (dp) dp->broadcast_buffers();              // evaluate every shard with rank 0's BatchNorm statistics
    const double train_acc = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
    const Accuracy test = evaluate(*model, d, o, dev, amp, ds);
    const double elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
    const std::string top5 = test.top5 >= 0 ? str_cat(" (top-5 ", fixed2(100 * test.top5), "%)") : "";
    std::printf("epoch %lld/%lld | train loss %.4f | train acc %.2f%% | test acc %.2f%%%s | %s elapsed\n",
                static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs),
                loss_count ? loss_sum / static_cast<double>(loss_count) : 0.0, 100 * train_acc,
                100 * test.top1, top5.c_str(), apps::format_duration(elapsed).c_str());
    std::fflush(stdout);
    nlohmann::json record = {
        {"kind", "epoch"},        {"epoch", epoch + 1},
        {"step", step},           {"train_loss", loss_count ? loss_sum / loss_count : 0.0},
        {"train_acc", train_acc}, {"test_acc", test.top1},
        {"train_s", train_s},     {"elapsed_s", elapsed}};
    if (test.top5 >= 0) record["test_top5"] = test.top5;
    metrics.write(record);
    state.epoch = epoch + 1;
    if (!o.checkpoint.empty()) {
      state.step = step;
      state.loader = batches.position();
      state.rng = default_generator();
      state.extra["model"] = o.model;
      state.extra["dataset"] = o.dataset;
      apps::save_checkpoint(o.checkpoint, *model, *optimizer, state);
      std::printf("checkpoint written to %s\n", o.checkpoint.c_str());
    }
  }
  print_throughput(step_seconds, images_per_step, metrics);
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
