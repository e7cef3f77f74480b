// train_yolo: trains, runs and evaluates a Darknet YOLO network from its .cfg (and .weights), as Darknet's
// `detector train | test | map` do.
//
//   ./build/train_yolo --cfg yolov3-tiny.cfg --data train.txt --classes-from names.txt --width 224 --height
//   224
//   ./build/train_yolo --mode detect --cfg c.cfg --weights w.weights --data images/ --out dets.json
//   ./build/train_yolo --mode map --cfg c.cfg --weights w.weights --data val.txt
//
// Training follows Darknet (docs/yolo.md): the loss is Darknet's [yolo] delta (models/darknet/yolo_loss.h)
// summed over the batch and divided by the [net] batch (Darknet's learning_rate / batch); a batch is
// `subdivisions` mini-batches whose gradients add up; SGD with momentum, weight decay on conv weights only
// (not on biases and BN scales, as Darknet's update_convolutional_layer); the learning rate of update k
// (1-based) is Darknet's get_current_rate: lr (k / burn_in)^power during burn-in, then `steps` policy
// (multiplied by scales[i] once k >= steps[i]) or constant. Checkpoints are Darknet .weights files (written
// to FILE.tmp and renamed) whose header counts the images seen; --resume reads one and continues at update
// seen / batch with the same schedule (Darknet's resume: momentum restarts from zero, as in Darknet).
//
// Exit codes: 0 done; 1 a failure (bad data, bad cfg or weights, a diverged loss); 2 a bad command line;
// 130 / 143 stopped by SIGINT / SIGTERM (after writing the checkpoint).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "algorithms/metrics/detection_map.h"
#include "algorithms/optim/optimizer.h"
#include "apps/common/options.h"
#include "apps/common/run.h"
#include "data/image.h"
#include "data/yolo_dataset.h"
#include "models/darknet/network.h"
#include "models/darknet/weights.h"
#include "models/darknet/yolo_layer.h"
#include "models/darknet/yolo_loss.h"
#include "nabla.h"
#include "ops/autocast.h"

using namespace nabla;
using namespace nabla::models::darknet;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string mode, cfg, weights, data, val, names, out, device, checkpoint, resume, metrics, ap_method, amp;
  int64_t width, height, classes, batch, subdivisions, max_steps, burn_in, cutoff, save_every, threads,
      print_every;
  uint64_t seed;
  double lr, thresh, nms, iou_thresh, map_thresh;
  bool no_augment, no_progress, channels_last;
};

std::optional<int> parse(int argc, char** argv, Options& o) {
  apps::OptionSet cli("train_yolo", "train, run and evaluate a Darknet YOLO network (.cfg + .weights)");
  cli.section("Model and data");
  cli.add("mode", &o.mode, "train", "train | detect | map").one_of({"train", "detect", "map"});
  cli.add("cfg", &o.cfg, "", "Darknet .cfg file (required)").value_name("FILE");
  cli.add("weights", &o.weights, "", "Darknet .weights to start from (train) or to run (detect, map)")
      .value_name("FILE");
  cli.add("weights-cutoff", &o.cutoff, -1,
          "read only the layers before this index from --weights (Darknet's partial, e.g. 74 for "
          "darknet53.conv.74)")
      .at_least(-1);
  cli.add("data", &o.data, "", "image list (one path a line) or folder; labels as Darknet finds them")
      .value_name("LIST");
  cli.add("val", &o.val, "", "train: image list evaluated with mAP after training").value_name("LIST");
  cli.add("names", &o.names, "", "class names, one a line (default: class0, class1, ...)").value_name("FILE");
  cli.add("width", &o.width, 0, "network input width (0: the cfg's)").in_range(0, 8192).unit("pixels");
  cli.add("height", &o.height, 0, "network input height (0: the cfg's)").in_range(0, 8192).unit("pixels");
  cli.add("classes", &o.classes, 0,
          "set every [yolo] layer's classes and the filters of the conv before it to mask x (5 + N) (0: the "
          "cfg's)")
      .in_range(0, 100000);
  cli.section("Training ([net] values unless given)");
  cli.add("batch", &o.batch, 0, "images per update (0: the cfg's batch)").in_range(0, 1 << 20);
  cli.add("subdivisions", &o.subdivisions, 0, "mini-batches per update (0: the cfg's)").in_range(0, 1 << 20);
  cli.add("max-steps", &o.max_steps, 0, "updates to run (0: the cfg's max_batches)")
      .in_range(0, int64_t{1} << 40);
  cli.add("lr", &o.lr, 0, "base learning rate (0: the cfg's learning_rate)").non_negative();
  cli.add("burn-in", &o.burn_in, -1, "burn-in updates (-1: the cfg's burn_in)").at_least(-1);
  cli.add_switch("no-augment", &o.no_augment,
                 "no jitter, colour change or flip (letterbox, boxes in file order)");
  cli.add("save-every", &o.save_every, 100, "write --checkpoint every N updates (and at the end)").positive();
  cli.section("Detection and evaluation");
  cli.add("thresh", &o.thresh, 0.25, "detect: score threshold").in_range(0, 1);
  cli.add("map-thresh", &o.map_thresh, 0.005, "map: score threshold of the detections ranked").in_range(0, 1);
  cli.add("nms", &o.nms, 0.45, "NMS IoU threshold (do_nms_sort; 0: no NMS)").in_range(0, 1);
  cli.add("iou-thresh", &o.iou_thresh, 0.5, "map: IoU a detection needs to match a truth")
      .in_range(0, 1, apps::Bound::open);
  cli.add("ap-method", &o.ap_method, "all-point", "map: all-point (Darknet's default) | voc11")
      .one_of({"all-point", "voc11"});
  cli.add("out", &o.out, "", "detect: write the detections as JSON (Darknet's -out format)")
      .value_name("FILE");
  cli.section("Run");
  cli.add("device", &o.device, "cpu", "cpu | cuda | cuda:N").value_name("DEV");
  cli.add("amp", &o.amp, "off", "off | bf16 (autocast on CUDA)").one_of({"off", "bf16"});
  cli.add_switch("channels-last", &o.channels_last,
                 "run the network NHWC (weights and activations; faster bf16 convolutions on the GPU)");
  cli.add("threads", &o.threads, 0, "CPU threads (0: OMP_NUM_THREADS or all cores)").in_range(0, 4096);
  cli.add("seed", &o.seed, 0, "seed of initialisation, shuffling and augmentation");
  cli.add("checkpoint", &o.checkpoint, "", "train: write Darknet .weights here (atomically)")
      .value_name("FILE");
  cli.add("resume", &o.resume, "", "train: continue from these .weights at update images_seen / batch")
      .value_name("FILE");
  cli.add("metrics", &o.metrics, "", "append JSONL metrics to FILE").value_name("FILE");
  cli.add("print-every", &o.print_every, 10, "updates between progress lines when not on a terminal")
      .positive();
  cli.add_switch("no-progress", &o.no_progress, "no progress line");
  cli.example(
      "--cfg /usr/share/darknet/cfg/yolov3-tiny.cfg --data train.txt --width 224 --height 224 --max-steps "
      "200",
      "train yolov3-tiny at 224² from scratch");
  cli.example("--cfg yolov3.cfg --data train.txt --amp bf16 --channels-last --device cuda",
              "train on the GPU in bf16, NHWC");
  cli.example("--mode detect --cfg c.cfg --weights w.weights --data img.jpg --out dets.json", "detect boxes");
  cli.example("--mode map --cfg c.cfg --weights w.weights --data val.txt --names c.names",
              "per-class AP table");
  return cli.parse(argc, argv, [&] {
    NABLA_CHECK(!o.cfg.empty(), "--cfg is required");
    NABLA_CHECK(!o.data.empty(), "--data is required");
    NABLA_CHECK(o.mode == "train" || !o.weights.empty() || o.cutoff < 0, "--weights-cutoff needs --weights");
    NABLA_CHECK(o.mode != "train" || o.resume.empty() || o.weights.empty(),
                "--resume and --weights both give the starting weights: give one");
  });
}

std::vector<std::string> read_names(const std::string& path, int classes) {
  std::vector<std::string> names;
  if (!path.empty()) {
    std::ifstream f(path);
    NABLA_CHECK(f, "--names ", path, ": cannot open");
    for (std::string l; std::getline(f, l);) {
      if (!l.empty() && l.back() == '\r') l.pop_back();
      if (!l.empty()) names.push_back(l);
    }
  }
  for (int k = static_cast<int>(names.size()); k < classes; ++k) names.push_back("class" + std::to_string(k));
  return names;
}

// The cfg with [net] width / height and the classes replaced (layers are size-agnostic; shapes are rebuilt
// from them).
Cfg load_cfg(const Options& o) {
  Cfg cfg = read_cfg(o.cfg);
  override_cfg(cfg, static_cast<int>(o.width), static_cast<int>(o.height), static_cast<int>(o.classes));
  return cfg;
}

int num_classes(const DarknetNetwork& net) {
  const std::vector<int> heads = net.yolo_layers();
  NABLA_CHECK(!heads.empty(), net.cfg_path(), ": the network has no [yolo] layer");
  return net.layers[heads[0]].yolo.classes;
}

// Darknet's get_current_rate for update k (1-based).
double darknet_rate(const NetConfig& n, double base_lr, int64_t burn_in, int64_t k, double power) {
  if (k < burn_in) return base_lr * std::pow(static_cast<double>(k) / burn_in, power);
  if (n.policy == "steps") {
    double rate = base_lr;
    for (size_t i = 0; i < n.steps.size(); ++i) {
      if (n.steps[i] > k) return rate;
      rate *= i < n.scales.size() ? n.scales[i] : 1.0;
    }
    return rate;
  }
  NABLA_CHECK(n.policy == "constant", "[net] policy=", n.policy, ": train_yolo follows steps and constant");
  return base_lr;
}

void save_weights_atomic(const DarknetNetwork& net, const std::string& path) {
  const std::string tmp = path + ".tmp";
  save_weights(net, tmp);
  fs::rename(tmp, path);
}

std::vector<TruthBox> to_truths(const std::vector<data::DetectionBox>& boxes) {
  std::vector<TruthBox> t;
  for (const auto& b : boxes) t.push_back({b.x, b.y, b.w, b.h, b.cls});
  return t;
}

// Letterboxed network inputs for images [first, last) of a list, with their original sizes.
Tensor letterboxed(const std::vector<std::string>& paths, size_t first, size_t last, int w, int h,
                   std::vector<std::pair<int, int>>& sizes) {
  std::vector<Tensor> ims;
  sizes.clear();
  for (size_t i = first; i < last; ++i) {
    Tensor im = data::image_to_chw_float(data::read_image(paths[i], data::ImageMode::rgb));
    sizes.push_back({static_cast<int>(im.size(2)), static_cast<int>(im.size(1))});
    ims.push_back(letterbox_image(im, w, h));
  }
  return stack(ims, 0);
}

// Detections of a batch of images after threshold and NMS, relative to each image.
std::vector<std::vector<Detection>> detect(DarknetNetwork& net, const Tensor& x,
                                           const std::vector<std::pair<int, int>>& sizes, float thresh,
                                           float nms, Device device) {
  NoGradGuard no_grad;
  const std::vector<Tensor> heads = net.forward_yolo(x.to(device));
  std::vector<Tensor> cpu;
  for (const Tensor& t : heads) cpu.push_back(t.to(Device::cpu()).to(DType::f32));
  std::vector<std::vector<Detection>> out;
  for (size_t k = 0; k < sizes.size(); ++k) {
    std::vector<Detection> d =
        get_network_boxes(net, cpu, sizes[k].first, sizes[k].second, thresh, true, static_cast<int>(k));
    if (nms > 0) do_nms_sort(d, num_classes(net), nms);
    out.push_back(std::move(d));
  }
  return out;
}

int run_detect(const Options& o, DarknetNetwork& net, Device device, const std::vector<std::string>& names) {
  std::vector<std::string> paths;
  if (fs::is_regular_file(o.data) && data::yolo_label_path(o.data) != o.data &&
      (o.data.ends_with(".jpg") || o.data.ends_with(".jpeg") || o.data.ends_with(".png") ||
       o.data.ends_with(".JPG") || o.data.ends_with(".PNG")))
    paths.push_back(o.data);
  else {
    const data::YoloDataset ds(o.data);
    for (int64_t i = 0; i < ds.size(); ++i) paths.push_back(ds.image_path(i));
  }
  net.eval();
  nlohmann::json all = nlohmann::json::array();
  const int classes = num_classes(net);
  for (size_t i = 0; i < paths.size(); ++i) {
    std::vector<std::pair<int, int>> sizes;
    const Tensor x = letterboxed(paths, i, i + 1, net.net.width, net.net.height, sizes);
    const auto dets =
        detect(net, x, sizes, static_cast<float>(o.thresh), static_cast<float>(o.nms), device)[0];
    std::printf("%s: %d x %d\n", paths[i].c_str(), sizes[0].first, sizes[0].second);
    nlohmann::json objects = nlohmann::json::array();
    for (const Detection& d : dets)
      for (int c = 0; c < classes; ++c) {
        if (d.prob[c] <= o.thresh) continue;
        std::printf("%s: %.0f%%  (cx %.4f cy %.4f w %.4f h %.4f)\n", names[c].c_str(), d.prob[c] * 100,
                    d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h);
        objects.push_back(
            {{"class_id", c},
             {"name", names[c]},
             {"relative_coordinates",
              {{"center_x", d.bbox.x}, {"center_y", d.bbox.y}, {"width", d.bbox.w}, {"height", d.bbox.h}}},
             {"confidence", d.prob[c]}});
      }
    all.push_back({{"frame_id", i + 1}, {"filename", paths[i]}, {"objects", objects}});
  }
  if (!o.out.empty()) {
    std::ofstream f(o.out);
    NABLA_CHECK(f, "--out ", o.out, ": cannot open for writing");
    f << all.dump(1) << "\n";
    std::printf("wrote %s (%zu images)\n", o.out.c_str(), paths.size());
  }
  return 0;
}

metrics::MapResult evaluate(const Options& o, const std::string& list, DarknetNetwork& net, Device device) {
  const int classes = num_classes(net);
  const data::YoloDataset ds(list, classes);
  std::vector<std::string> paths;
  for (int64_t i = 0; i < ds.size(); ++i) paths.push_back(ds.image_path(i));
  net.eval();
  std::vector<metrics::EvalBox> dets, truths;
  const size_t batch = 8;
  for (size_t first = 0; first < paths.size(); first += batch) {
    const size_t last = std::min(paths.size(), first + batch);
    std::vector<std::pair<int, int>> sizes;
    const Tensor x = letterboxed(paths, first, last, net.net.width, net.net.height, sizes);
    const auto per_image =
        detect(net, x, sizes, static_cast<float>(o.map_thresh), static_cast<float>(o.nms), device);
    for (size_t k = 0; k < per_image.size(); ++k) {
      const int image = static_cast<int>(first + k);
      for (const Detection& d : per_image[k])
        for (int c = 0; c < classes; ++c)
          if (d.prob[c] > 0) dets.push_back({image, c, d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h, d.prob[c]});
      for (const data::DetectionBox& b : ds.labels(image))
        truths.push_back({image, b.cls, b.x, b.y, b.w, b.h, 1});
    }
  }
  return metrics::evaluate_map(
      dets, truths, classes, static_cast<float>(o.iou_thresh),
      o.ap_method == "voc11" ? metrics::ApMethod::voc11 : metrics::ApMethod::all_point);
}

int run_train(const Options& o, apps::Run& run, DarknetNetwork& net, const std::vector<std::string>& names) {
  const int classes = num_classes(net);
  const data::YoloDataset ds(o.data, classes);
  const NetConfig& nc = net.net;
  const int64_t batch = o.batch > 0 ? o.batch : nc.batch;
  const int64_t subdiv = o.subdivisions > 0 ? o.subdivisions : nc.subdivisions;
  NABLA_CHECK(batch % subdiv == 0, "batch ", batch, " is not a multiple of subdivisions ", subdiv);
  const int64_t mini = batch / subdiv;
  const int64_t max_steps = o.max_steps > 0 ? o.max_steps : nc.max_batches;
  NABLA_CHECK(max_steps > 0, "no updates to run: the cfg has no max_batches and --max-steps is 0");
  const double base_lr = o.lr > 0 ? o.lr : nc.learning_rate;
  const int64_t burn_in = o.burn_in >= 0 ? o.burn_in : nc.burn_in;
  double power = 4;
  for (const CfgOption& opt : nc.options)
    if (opt.key == "power") power = std::stod(opt.value);
  // The [yolo] layers' jitter (Darknet reads it from the last one) and [net]'s colour ranges.
  data::DetectionAugment aug;
  aug.enabled = !o.no_augment;
  aug.jitter = net.layers[net.yolo_layers().back()].yolo.jitter;
  aug.hue = nc.hue, aug.saturation = nc.saturation, aug.exposure = nc.exposure;
  const int max_boxes = net.layers[net.yolo_layers().back()].yolo.max_boxes;

  optim::Sgd sgd(optim::split_decay_groups(net.named_parameters(), nc.decay * 1.0),
                 {.lr = base_lr, .momentum = nc.momentum, .weight_decay = nc.decay});
  int64_t start = 0;
  if (!o.resume.empty()) {  // read by run_all
    start = static_cast<int64_t>(net.images_seen / static_cast<uint64_t>(batch));
    std::printf("resumed from %s: %llu images seen, update %lld\n", o.resume.c_str(),
                static_cast<unsigned long long>(net.images_seen), static_cast<long long>(start));
  }
  std::printf(
      "train_yolo: %s at %dx%d, %lld images, %d classes | batch %lld (%lld x %lld) | lr %g burn_in %lld "
      "policy %s | %lld updates | augment %s\n",
      o.cfg.c_str(), nc.width, nc.height, static_cast<long long>(ds.size()), classes,
      static_cast<long long>(batch), static_cast<long long>(subdiv), static_cast<long long>(mini), base_lr,
      static_cast<long long>(burn_in), nc.policy.c_str(), static_cast<long long>(max_steps),
      aug.enabled ? "on" : "off");
  std::fflush(stdout);

  apps::TrainLog log(run, max_steps, 1);
  std::mt19937_64 order_rng(o.seed);
  std::vector<int64_t> order;
  size_t cursor = 0;
  auto next_indices = [&](int64_t n) {  // Darknet draws random paths; here: shuffled passes
    std::vector<int64_t> idx;
    while (static_cast<int64_t>(idx.size()) < n) {
      if (cursor >= order.size()) {
        order.resize(static_cast<size_t>(ds.size()));
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), order_rng);
        cursor = 0;
      }
      idx.push_back(order[cursor++]);
    }
    return idx;
  };
  for (int64_t k = 0; k < start * batch; ++k) next_indices(1);  // the same data order after a resume
  net.train();
  double avg_loss = -1;
  for (int64_t step = start + 1; step <= max_steps; ++step) {
    const auto t0 = Clock::now();
    const double lr = darknet_rate(nc, base_lr, burn_in, step, power);
    sgd.set_lr(lr);
    sgd.zero_grad();
    double loss_sum = 0, cost_sum = 0;
    std::vector<YoloLayerStats> stats;
    for (int64_t s = 0; s < subdiv; ++s) {
      const data::YoloDataset::Batch b =
          ds.batch(next_indices(mini), nc.width, nc.height, aug,
                   o.seed * 1000003 + static_cast<uint64_t>(step * subdiv + s), max_boxes);
      std::vector<std::vector<TruthBox>> truths;
      for (const auto& bx : b.boxes) truths.push_back(to_truths(bx));
      // Up with the images, before the forward (a host-to-device copy waits for the stream).
      const YoloTruths up = upload_truths(truths, yolo_max_boxes(net), run.device());
      std::optional<AutocastGuard> autocast;
      if (run.amp()) autocast.emplace(DType::bf16);
      const std::vector<Tensor> heads = net.forward_yolo(b.images.to(run.device()));
      autocast.reset();
      NetworkLoss l = network_yolo_loss(net, heads, up);
      (l.loss * (1.0 / static_cast<double>(batch))).backward();
      loss_sum += l.loss.item_double();
      cost_sum += l.darknet_cost;
      stats = l.layers;
    }
    sgd.step();
    net.images_seen += static_cast<uint64_t>(batch);
    const double loss = loss_sum / static_cast<double>(batch);
    NABLA_CHECK(std::isfinite(loss), "the loss is ", loss, " at update ", step,
                " (lower --lr or check the labels)");
    // Darknet's printed loss: the mean of the [yolo] layers' |delta|^2 per image.
    const double darknet_loss = cost_sum / static_cast<double>(stats.size()) / static_cast<double>(batch);
    avg_loss = avg_loss < 0 ? darknet_loss : avg_loss * .9 + darknet_loss * .1;
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    log.step(step, 0, loss, lr, batch, seconds);
    if (!o.metrics.empty()) {  // every update (TrainLog adds its own "step" record every 10)
      nlohmann::json rec = {{"kind", "yolo"},
                            {"step", step},
                            {"loss", loss},
                            {"darknet_loss", darknet_loss},
                            {"avg_loss", avg_loss},
                            {"lr", lr},
                            {"images_seen", net.images_seen},
                            {"seconds", seconds}};
      for (size_t i = 0; i < stats.size(); ++i)
        rec["layers"].push_back({{"avg_iou", stats[i].avg_iou},
                                 {"class", stats[i].avg_class},
                                 {"obj", stats[i].avg_obj},
                                 {"no_obj", stats[i].avg_noobj},
                                 {"count", stats[i].count}});
      log.write(rec);
    }
    if (!o.checkpoint.empty() && (step % o.save_every == 0 || step == max_steps))
      save_weights_atomic(net, o.checkpoint);
    if (run.stop_requested(step)) {
      log.finish_line();
      if (!o.checkpoint.empty())
        save_weights_atomic(net, o.checkpoint), std::printf("wrote %s\n", o.checkpoint.c_str());
      return run.stop_code();
    }
  }
  log.finish_line();
  log.summary();
  if (!o.checkpoint.empty())
    std::printf("wrote %s (%llu images seen)\n", o.checkpoint.c_str(),
                static_cast<unsigned long long>(net.images_seen));
  if (!o.val.empty()) std::printf("%s", evaluate(o, o.val, net, run.device()).table(names).c_str());
  return 0;
}

int run_all(Options& o) {
  apps::RunOptions ro;
  ro.device = o.device, ro.amp = o.amp, ro.threads = o.threads, ro.seed = o.seed, ro.metrics = o.metrics;
  ro.print_every = o.print_every, ro.no_progress = o.no_progress;
  int64_t global_batch = 1;
  apps::Run run = apps::Run::start(ro, global_batch);
  auto net = std::make_shared<DarknetNetwork>(load_cfg(o));
  if (!o.weights.empty()) load_weights(*net, o.weights, {.cutoff = static_cast<int>(o.cutoff)});
  if (!o.resume.empty()) load_weights(*net, o.resume);
  net->to(run.device());
  net->set_channels_last(o.channels_last);
  const std::vector<std::string> names = read_names(o.names, num_classes(*net));
  if (o.mode == "train") return run_train(o, run, *net, names);
  if (o.mode == "detect") return run_detect(o, *net, run.device(), names);
  const metrics::MapResult r = evaluate(o, o.data, *net, run.device());
  std::printf("%s", r.table(names).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (std::optional<int> code = parse(argc, argv, o)) return *code;
  try {
    return run_all(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_yolo: %s\n", e.what());
  }
  return apps::kExitFailure;
}
