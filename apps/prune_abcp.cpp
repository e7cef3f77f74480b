// prune_abcp: ABCP (joint block and channel pruning by an LSTM controller trained with REINFORCE) on a
// Darknet network, with the CPU classification proxy of the brief (§4.1): a residual Darknet-cfg network
// (stride-2 stem + 8 residual blocks in 3 stages, widths 16/32/64 by default) on a Fashion-MNIST subset.
//
//   parse options -> build + pretrain the proxy -> search (controller and/or random search, same budget):
//     per candidate: reset to the pretrained weights, mask (|gamma|), fine-tune the classifier head,
//     validation loss, R = -(L_val + lambda MACs / MACs_full), archive line
//   -> best candidate by R and the uniform-ratio net at the same MACs: shrink, fine-tune all layers, test
//      accuracy -> export the best as Darknet .cfg + .weights.
// docs/abcp.md has the commands and figures.
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "algorithms/optim/optimizer.h"
#include "algorithms/pruning/abcp_controller.h"
#include "algorithms/pruning/abcp_search.h"
#include "algorithms/pruning/darknet_pruning.h"
#include "apps/common/options.h"
#include "apps/common/run.h"
#include "autograd/autograd.h"
#include "data/idx.h"
#include "models/darknet/cfg.h"
#include "models/darknet/network.h"
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
  std::string finetune = "head", search = "both", data_dir = "/usr/share/datasets/fashion-mnist", archive,
              export_prefix;
  int64_t iterations = 100, pretrain_steps = 400, finetune_steps = 20, final_steps = 200, batch = 64;
  int64_t width = 16, train_size = 10000, val_size = 1000, test_size = 2000, threads = 0;
  double lambda = 1.0, controller_lr = 1e-3, entropy_weight = 1e-4;
  bool original_bugs = false;
  uint64_t seed = 1;
};

std::optional<int> parse(int argc, char** argv, Options& o) {
  apps::OptionSet cli("prune_abcp", "ABCP joint block and channel pruning search (CPU classification proxy)");
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
  cli.section("Proxy training");
  cli.add("data-dir", &o.data_dir, "/usr/share/datasets/fashion-mnist", "Fashion-MNIST IDX files")
      .value_name("DIR");
  cli.add("train-size", &o.train_size, 10000, "training images used").positive();
  cli.add("val-size", &o.val_size, 1000, "validation images (the reward's loss), from the test file")
      .positive();
  cli.add("test-size", &o.test_size, 2000, "held-out test images (final accuracy), after the validation ones")
      .positive();
  cli.add("pretrain-steps", &o.pretrain_steps, 400, "SGD steps of pretraining").positive();
  cli.add("finetune", &o.finetune, "head",
          "per-candidate fine-tune: head (the classifier conv, as the original) | all (every layer, BN in "
          "evaluation mode, masks re-applied after each step)")
      .one_of({"head", "all"});
  cli.add("finetune-steps", &o.finetune_steps, 20, "head-only steps per candidate").non_negative();
  cli.add("final-steps", &o.final_steps, 200, "all-layer steps for the selected and uniform nets")
      .non_negative();
  cli.add("batch", &o.batch, 64, "batch size").positive();
  cli.add("width", &o.width, 16, "proxy widths: stem and stage 1 W, stage 2 2W, stage 3 4W")
      .in_range(2, 1024);
  cli.section("Run");
  cli.add("threads", &o.threads, 0, "CPU threads (0: OMP default)").in_range(0, 4096);
  cli.add("seed", &o.seed, 1, "seed of everything");
  cli.example("--iterations 100 --lambda 1 --archive abcp.jsonl", "controller and random search, 100 each");
  cli.example("--search controller --lambda 4 --iterations 60", "a larger FLOPs weight: blocks get dropped");
  return cli.parse(argc, argv, [&] {
    NABLA_CHECK(o.val_size + o.test_size <= 10000,
                "--val-size + --test-size must be <= 10000 (the test file)");
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

int run(const Options& o) {
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
    if (o.finetune == "head") {
      train_steps(*net, train, head_params, o.finetune_steps, 0.02, o.batch, false, rng);
    } else {
      set_trainable(*net, true, head);
      for (int64_t k = 0; k < o.finetune_steps; ++k) {
        train_steps(*net, train, net->parameters(), 1, 0.02, o.batch, false, rng);
        apply_masks(*net, plan);
      }
      set_trainable(*net, false, head);
    }
    return Evaluation{evaluate(*net, val).loss, count_cost(*net, &plan)};
  };
  std::vector<std::pair<std::string, std::vector<Candidate>>> results;
  std::shared_ptr<AbcpController> controller;
  for (std::string kind : {"controller", "random"}) {
    if (o.search != "both" && o.search != kind) continue;
    SearchOptions so{.iterations = static_cast<int>(o.iterations),
                     .lambda = o.lambda,
                     .random_search = kind == "random",
                     .archive = o.archive.empty() ? "" : o.archive + "." + kind + ".jsonl",
                     .seed = o.seed + 17};
    if (!so.archive.empty()) std::filesystem::remove(so.archive);
    if (kind == "controller")
      controller = std::make_shared<AbcpController>(ActionLayout::from(s),
                                                    ControllerOptions{.entropy_weight = o.entropy_weight,
                                                                      .lr = o.controller_lr,
                                                                      .original_bugs = o.original_bugs,
                                                                      .seed = o.seed});
    auto archive =
        abcp_search(s, kind == "controller" ? controller.get() : nullptr, eval_candidate, full, so,
                    [&](const Candidate& c) {
                      if (c.iteration % 10 == 0 || c.iteration + 1 == o.iterations)
                        std::printf(
                            "%s %d/%d | reward %.4f | val loss %.4f | flops %.1f%% | blocks "
                            "%d/%zu | %.0f s\n",
                            kind.c_str(), c.iteration + 1, static_cast<int>(o.iterations), c.reward, c.loss,
                            100 * c.flops_fraction, c.blocks_kept, s.blocks.size(), secs());
                    });
    results.emplace_back(kind, std::move(archive));
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
  if (controller) {
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

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines through pipes too
  Options o;
  if (std::optional<int> code = parse(argc, argv, o)) return *code;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prune_abcp: %s\n", e.what());
  }
  return apps::kExitFailure;
}
