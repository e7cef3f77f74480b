// The YOLO mode of ABCP (algorithms/pruning/abcp_yolo.h, apps/prune_abcp.cpp --model yolo): the builtin
// YOLOv3 cfg against Darknet's yolov3.cfg, a pruned mini-YOLOv3 keeping its three heads' shapes and equal to
// the masked network, the candidate's reward computed from the real mAP (the same figure train_yolo's map
// gives), a budget that is respected, and a tiny search end to end through the binary whose exported
// .cfg / .weights train_yolo loads and scores the same; and --checkpoint / --resume in both modes (a
// resumed search equals an uninterrupted one).
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <sstream>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "algorithms/pruning/abcp_controller.h"
#include "algorithms/pruning/abcp_search.h"
#include "algorithms/pruning/abcp_yolo.h"
#include "algorithms/pruning/darknet_pruning.h"
#include "autograd/autograd.h"
#include "models/darknet/weights.h"
#include "darknet_testing.h"
#include "yolo/yolo_testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;
using namespace models::darknet;
using namespace algorithms::pruning;

void randomize(DarknetNetwork& net, uint64_t seed) {
  test::randomize_darknet(net, seed, test::BnScales::signed_normal);
}

double max_rel_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_EQ(a[i].shape(), b[i].shape()) << "head " << i;
    if (a[i].shape() != b[i].shape()) return 1e9;
    std::vector<double> x = a[i].to_vector<double>(), y = b[i].to_vector<double>();
    for (size_t j = 0; j < x.size(); ++j) m = std::max(m, std::fabs(x[j] - y[j]) / (1 + std::fabs(x[j])));
  }
  return m;
}

TEST(AbcpYolo, BuiltinYolov3HasTheLayersOfDarknetsYolov3Cfg) {
  const Cfg ref_cfg = read_cfg(std::string(NABLA_SOURCE_DIR) + "/tests/yolo/fixtures/yolov3.cfg");
  DarknetNetwork ref(ref_cfg, /*allocate=*/false);
  DarknetNetwork ours(parse_cfg(yolov3_cfg({.width = 608, .height = 608, .scale_anchors = false}), "yolov3"),
                      false);
  ASSERT_EQ(ours.layers.size(), ref.layers.size());
  for (size_t i = 0; i < ref.layers.size(); ++i) {
    const Layer &a = ours.layers[i], &b = ref.layers[i];
    EXPECT_EQ(a.type, b.type) << "layer " << i;
    EXPECT_EQ(a.inputs, b.inputs) << "layer " << i;
    EXPECT_EQ(std::vector<int>({a.out_c, a.out_h, a.out_w}), std::vector<int>({b.out_c, b.out_h, b.out_w}))
        << "layer " << i;
    if (a.type == LayerType::yolo) {
      EXPECT_EQ(a.yolo.mask, b.yolo.mask);
      EXPECT_EQ(a.yolo.anchors, b.yolo.anchors);
    }
  }
  EXPECT_EQ(count_cost(ours).macs, count_cost(ref).macs);
  EXPECT_EQ(count_cost(ours).params, count_cost(ref).params);
  const PruneStructure s = analyze(ours);
  EXPECT_EQ(s.blocks.size(), 23u);
  EXPECT_EQ(s.convs.size(), 72u);
  // the mini variant: the same layout with 7 blocks
  DarknetNetwork mini(parse_cfg(builtin_yolo_cfg("yolov3-mini", 64, 64, 2), "mini"), false);
  EXPECT_EQ(analyze(mini).blocks.size(), 7u);
  EXPECT_EQ(mini.yolo_layers().size(), 3u);
  EXPECT_THROW(builtin_yolo_cfg("yolov4", 64, 64, 2), Error);
  EXPECT_THROW(yolov3_cfg({.blocks = {1, 1, 0, 1, 1}}), Error);
}

// A small YOLOv3 for the tests: the layout of Darknet's, 5 blocks, base width 4.
std::string micro_yolov3(int size) {
  return yolov3_cfg({.base = 4, .blocks = {1, 1, 1, 1, 1}, .width = size, .height = size, .classes = 2});
}

TEST(AbcpYolo, PrunedMiniYolov3KeepsItsHeadShapesAndEqualsTheMaskedNetwork) {
  const Cfg cfg = parse_cfg(micro_yolov3(64), "micro.cfg");
  Generator g{test::next_seed(), 0};
  const fs::path dir = fs::path(NABLA_BINARY_DIR) / "test_yolo" / "abcp_export";
  fs::create_directories(dir);
  for (int trial = 0; trial < 2; ++trial) {
    DarknetNetwork net(cfg);
    randomize(net, test::next_seed());
    net.eval();
    const PruneStructure s = analyze(net);
    PruneAction a;
    a.ratios = uniform({static_cast<int64_t>(s.convs.size())}, 0, 0.8, {}, &g).to_vector<double>();
    for (double u : uniform({static_cast<int64_t>(s.blocks.size())}, 0, 1, {}, &g).to_vector<double>())
      a.prune_block.push_back(u < 0.4);
    a.prune_block[trial == 0 ? 0 : 3] = 1;  // the block of stage 1 (trial 0) or of stage 4 (a route reads it)
    const ChannelPlan plan = plan_channels(net, s, resolve(s, a));
    auto small = shrink(cfg, net, plan);
    small->eval();
    Tensor x = uniform({2, 3, 64, 64}, 0, 1, {}, &g);
    NoGradGuard ng;
    const std::vector<Tensor> full = net.forward_yolo(x);
    apply_masks(net, plan);
    const std::vector<Tensor> masked = net.forward_yolo(x), pruned = small->forward_yolo(x);
    ASSERT_EQ(pruned.size(), 3u);
    for (size_t h = 0; h < 3; ++h) EXPECT_EQ(pruned[h].shape(), full[h].shape()) << "head " << h;
    EXPECT_EQ(pruned[0].shape(), Shape({2, 21, 2, 2}));
    EXPECT_EQ(pruned[2].shape(), Shape({2, 21, 8, 8}));
    EXPECT_LT(max_rel_diff(masked, pruned), 1e-4) << "trial " << trial;
    EXPECT_GT(max_rel_diff(full, masked), 1e-2) << "the masks must change the outputs";
    EXPECT_LT(small->layers.size(), net.layers.size());
    const Cost exact = count_cost(*small), following = count_cost(net, &plan);
    EXPECT_EQ(exact.macs, following.macs);
    EXPECT_EQ(exact.params, following.params);
    // the exported Darknet files load back (train_yolo's path: read_cfg + load_weights) with the same outputs
    const std::string prefix = (dir / ("pruned" + std::to_string(trial))).string();
    export_darknet(shrink_cfg(cfg, net, plan), *small, prefix);
    DarknetNetwork back(read_cfg(prefix + ".cfg"));
    EXPECT_TRUE(back.unused_options.empty());
    load_weights(back, prefix + ".weights");
    EXPECT_EQ(static_cast<int64_t>(fs::file_size(prefix + ".weights")), weights_file_size(back));
    back.eval();
    EXPECT_LT(max_rel_diff(pruned, back.forward_yolo(x)), 1e-6);
  }
}

// A detector trained a little on 6 synthetic images: the mAP detection_map gives is train_yolo's mAP (the
// binary, on the same images and weights), it is a real one (well above the untrained net's), and the
// search's reward of a candidate is that mAP minus lambda x its FLOPs fraction.
TEST(AbcpYolo, TheRewardIsTheMapOfTheFineTunedCandidate) {
  const std::string dir = test::yolo_temp_dir("abcp_reward");
  test::write_synthetic_set(dir, 6, 64, 64, static_cast<uint32_t>(test::next_seed()));
  const Cfg cfg = parse_cfg(test::tiny_yolo_cfg(), "tiny.cfg");
  const DetectionData d = load_detection_data(data::YoloDataset(dir + "/images", 2), 64, 64);
  ASSERT_EQ(d.size(), 6);
  manual_seed(test::next_seed());
  DarknetNetwork net(cfg);
  const double untrained = detection_map(net, d).map;
  detection_finetune(net, d, net.parameters(),
                     {.steps = 40, .batch = 6, .lr = 1e-2, .seed = test::next_seed()});
  const metrics::MapResult trained = detection_map(net, d);
  std::printf("mAP@0.5 untrained %.4f, after 40 steps %.4f\n", untrained, trained.map);
  EXPECT_GT(trained.map, 0.5);
  EXPECT_GT(trained.map, untrained + 0.3);
  // train_yolo --mode map on the same weights and images prints the same mAP
  const std::string weights = dir + "/w.weights";
  save_weights(net, weights);
  std::ofstream(dir + "/tiny.cfg") << test::tiny_yolo_cfg();
  if (fs::exists(std::string(NABLA_BINARY_DIR) + "/train_yolo")) {
    const std::string cmd = "OMP_NUM_THREADS=1 " + std::string(NABLA_BINARY_DIR) +
                            "/train_yolo --mode map --cfg " + dir + "/tiny.cfg --weights " + weights +
                            " --data " + dir + "/images 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    ASSERT_EQ(WEXITSTATUS(pclose(p)), 0) << out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(mAP@0.5 = ([0-9.]+)%)"))) << out;
    EXPECT_NEAR(std::stod(m[1]) / 100, trained.map, 6e-4) << out;
  }
  // one search step: the reward of a candidate is its fine-tuned mAP - lambda * FLOPs fraction
  const NamedTensors pretrained = [&] {
    NamedTensors st;
    for (auto& [k, v] : net.state_dict()) st.emplace_back(k, v.clone());
    return st;
  }();
  const PruneStructure s = analyze(net);
  const Cost full = count_cost(net);
  std::vector<double> maps;
  EvaluateFn eval = [&](const PruneAction& a) {
    net.load_state_dict(pretrained);
    const ChannelPlan plan = plan_channels(net, s, a);
    apply_masks(net, plan);
    detection_finetune(net, d, net.parameters(), {.steps = 3, .batch = 6, .lr = 1e-3, .seed = 5}, &plan);
    Evaluation e{.cost = count_cost(net, &plan), .map = detection_map(net, d).map};
    maps.push_back(e.map);
    return e;
  };
  AbcpController controller(ActionLayout::from(s), {.seed = test::next_seed()});
  const auto archive =
      abcp_search(s, &controller, eval, full, {.iterations = 3, .lambda = 0.5, .reward = RewardKind::map});
  ASSERT_EQ(archive.size(), 3u);
  EXPECT_NEAR(maps[0], trained.map, 0.25);  // the unpruned net, 3 more steps
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_DOUBLE_EQ(archive[i].map, maps[i]);
    EXPECT_DOUBLE_EQ(archive[i].reward, maps[i] - 0.5 * archive[i].flops_fraction);
  }
}

// With a FLOPs budget, over-budget candidates are not evaluated, are penalised by their excess, and are
// never the best; the best candidate respects the budget.
TEST(AbcpYolo, TheBestCandidateRespectsTheFlopsBudget) {
  DarknetNetwork net(parse_cfg(micro_yolov3(64), "micro.cfg"), false);
  // shapes only: the cost needs no weights; plan_channels needs |gamma|, so use an allocated copy
  DarknetNetwork w(parse_cfg(micro_yolov3(64), "micro.cfg"));
  randomize(w, test::next_seed());
  const PruneStructure s = analyze(w);
  const Cost full = count_cost(net);
  auto cost = [&](const PruneAction& a) {
    const ChannelPlan plan = plan_channels(w, s, a);
    return count_cost(w, &plan);
  };
  int evaluated = 0;
  EvaluateFn eval = [&](const PruneAction& a) {
    ++evaluated;
    // a score that prefers big networks: without the budget the unpruned one would win
    const Cost c = cost(a);
    return Evaluation{.cost = c, .map = static_cast<double>(c.macs) / static_cast<double>(full.macs)};
  };
  AbcpController controller(ActionLayout::from(s), {.seed = test::next_seed()});
  const auto archive = abcp_search(
      s, &controller, eval, full,
      {.iterations = 30, .lambda = 0.1, .reward = RewardKind::map, .flops_budget = 0.3, .cost = cost});
  int over = 0;
  for (const Candidate& c : archive) {
    EXPECT_EQ(c.within_budget, c.flops_fraction <= 0.3 + 1e-12) << c.iteration;
    if (!c.within_budget) {
      ++over;
      EXPECT_FALSE(c.evaluated);
      EXPECT_NEAR(c.reward, -0.1 * c.flops_fraction - (c.flops_fraction / 0.3 - 1), 1e-12);
    }
  }
  EXPECT_EQ(evaluated + over, 30);
  ASSERT_GT(evaluated, 0) << "no candidate met the budget in 30 draws";
  EXPECT_GT(over, 0);
  const Candidate& best = best_candidate(archive);
  EXPECT_TRUE(best.within_budget);
  EXPECT_LE(best.flops_fraction, 0.3);
  EXPECT_THROW(abcp_search(s, &controller, eval, full, {.iterations = 1, .flops_budget = 0.3}), Error);
}

std::string run_command(const std::string& cmd, int& code) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  code = WEXITSTATUS(pclose(p));
  return out;
}

// prune_abcp --model yolo end to end at a tiny size: synthetic set, pretraining, a controller and a random
// search under a FLOPs budget, the final table, the JSONL archives, and the exported best net, which
// train_yolo loads and scores with the mAP prune_abcp reported.
TEST(AbcpYolo, ATinySearchRunsEndToEndAndItsBestRespectsTheBudget) {
  const std::string bin = std::string(NABLA_BINARY_DIR) + "/prune_abcp";
  if (!fs::exists(bin) || !fs::exists(std::string(NABLA_BINARY_DIR) + "/train_yolo"))
    GTEST_SKIP() << "prune_abcp or train_yolo was not built";
  const std::string dir = test::yolo_temp_dir("abcp_search");
  std::ofstream(dir + "/micro.cfg") << micro_yolov3(32);
  int code = 0;
  const std::string out = run_command("OMP_NUM_THREADS=1 " + bin + " --model yolo --cfg " + dir +
                                          "/micro.cfg --data synthetic --synthetic-dir " + dir +
                                          "/syn --synthetic-train 12 --synthetic-val 6 --synthetic-size 32 "
                                          "--pretrain-steps 6 --batch 6 --bn-recalibrate 2 "
                                          "--finetune-steps 1 --iterations 4 --final-steps 1 --flops-budget "
                                          "0.4 --bench-batch 2 --bench-reps 1 "
                                          "--seed " +
                                          std::to_string(test::next_seed() % 1000) + " --archive " + dir +
                                          "/a --export " + dir + "/best --summary " + dir + "/summary.json",
                                      code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("| net | mAP@0.5 |"), std::string::npos) << out;
  EXPECT_NE(out.find("| abcp-best |"), std::string::npos) << out;
  const auto sum = nlohmann::json::parse(std::ifstream(dir + "/summary.json"));
  ASSERT_EQ(sum["rows"].size(), 3u);
  for (const char* kind : {"controller", "random"}) {
    int lines = 0;
    std::ifstream a(dir + "/a." + kind + ".jsonl");
    for (std::string line; std::getline(a, line); ++lines) {
      const auto j = nlohmann::json::parse(line);
      EXPECT_EQ(j["within_budget"].get<bool>(), j["flops_fraction"].get<double>() <= 0.4) << line;
    }
    EXPECT_EQ(lines, 4) << kind;
  }
  const auto& best = sum["rows"][1];
  ASSERT_EQ(best["name"], "abcp-best");
  EXPECT_EQ(sum["rows"][0]["flops_fraction"].get<double>(), 1.0);
  // the search found a candidate within the budget (4 draws each; a pruned draw is under 0.4 most of the
  // time)
  const bool any = sum["search"]["controller"]["within_budget"].get<int>() +
                       sum["search"]["random"]["within_budget"].get<int>() >
                   0;
  if (any) EXPECT_LE(best["flops_fraction"].get<double>(), 0.4) << out;
  EXPECT_NEAR(sum["rows"][2]["flops_fraction"].get<double>(), best["flops_fraction"].get<double>(), 0.05);
  // the exported net: its exact FLOPs are the row's, and train_yolo scores it with the same mAP
  DarknetNetwork exported(read_cfg(dir + "/best.cfg"));
  load_weights(exported, dir + "/best.weights");
  EXPECT_EQ(count_cost(exported).macs, best["macs"].get<int64_t>());
  const std::string map_out =
      run_command("OMP_NUM_THREADS=1 " + std::string(NABLA_BINARY_DIR) + "/train_yolo --mode map --cfg " +
                      dir + "/best.cfg --weights " + dir + "/best.weights --data " + dir + "/syn/val/images",
                  code);
  ASSERT_EQ(code, 0) << map_out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(map_out, m, std::regex(R"(mAP@0.5 = ([0-9.]+)%)"))) << map_out;
  EXPECT_NEAR(std::stod(m[1]) / 100, best["map"].get<double>(), 6e-4) << map_out;
  // Debian's Darknet loads the exported files and its [yolo] outputs equal ours on its own input
  if (fs::exists("/usr/bin/darknet")) {
    const std::string odir = dir + "/oracle";
    const std::string log = run_command(
        "bash " + std::string(NABLA_SOURCE_DIR) + "/scripts/darknet_oracle.sh " + dir + "/best.cfg " + dir +
            "/best.weights " + dir + "/syn/val/images/im0.png " + odir + " 0.5",
        code);
    if (code != 77) {
      ASSERT_EQ(code, 0) << log;
      auto floats = [](const std::string& path) {
        std::ifstream f(path, std::ios::binary);
        std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        std::vector<float> v(b.size() / 4);
        std::memcpy(v.data(), b.data(), 4 * v.size());
        return v;
      };
      const std::vector<float> input = floats(odir + "/input.bin");
      ASSERT_EQ(input.size(), 3u * 32 * 32);
      Tensor x = Tensor::empty({1, 3, 32, 32}, DType::f32);
      std::memcpy(x.data_ptr(), input.data(), 4 * input.size());
      exported.eval();
      NoGradGuard ng;
      const std::vector<Tensor> heads = exported.forward_yolo(x);
      const std::vector<int> idx = exported.yolo_layers();
      ASSERT_EQ(idx.size(), 3u);
      for (size_t k = 0; k < idx.size(); ++k) {
        char name[64];
        std::snprintf(name, sizeof name, "/layer_%03d.bin", idx[k]);
        const std::vector<float> ref = floats(odir + name), ours = heads[k].contiguous().to_vector<float>();
        ASSERT_EQ(ref.size(), ours.size()) << name;
        double m = 0;
        for (size_t i = 0; i < ref.size(); ++i)
          m = std::max(m, std::fabs(ours[i] - ref[i]) / (1.0 + std::fabs(ref[i])));
        EXPECT_LT(m, 1e-4) << "layer " << idx[k];
      }
    }
  }
  // bad command lines name what was expected
  const std::string bad = run_command(bin + " --model yolo --data list.txt", code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(bad.find("--model yolo with --data LIST needs --val LIST"), std::string::npos) << bad;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The lines of `out` that start with one of `prefixes` (the result lines of a run, without timings).
std::string result_lines(const std::string& out, std::initializer_list<const char*> prefixes) {
  std::istringstream is(out);
  std::string r;
  for (std::string l; std::getline(is, l);)
    for (const char* p : prefixes)
      if (l.rfind(p, 0) == 0) r += l + "\n";
  return r;
}

// prune_abcp --checkpoint / --resume on the CPU proxy at a tiny width: a search stopped after 3 candidates
// (inside the controller search) and after 7 (inside the random search), resumed each time, ends with the
// same archives, the same best candidates and the same final nets as one uninterrupted run. A corrupt
// checkpoint and one saved with other options are refused with a message naming the file.
TEST(AbcpProxy, AResumedSearchEqualsAnUninterruptedOne) {
  const std::string bin = std::string(NABLA_BINARY_DIR) + "/prune_abcp";
  if (!fs::exists(bin)) GTEST_SKIP() << "prune_abcp was not built";
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "no Fashion-MNIST in /usr/share/datasets/fashion-mnist";
  const std::string dir = test::yolo_temp_dir("abcp_resume");
  const std::string base = bin +
                           " --threads 1 --width 4 --train-size 512 --val-size 64 --test-size 64 "
                           "--pretrain-steps 10 --batch 16 --finetune-steps 2 --bn-recalibrate 2 "
                           "--iterations 5 --final-steps 2 --controller-lr 0.05 --seed " +
                           std::to_string(test::next_seed() % 100000);
  int code = 0;
  const std::string full =
      run_command(base + " --archive " + dir + "/full --checkpoint " + dir + "/full.ck", code);
  ASSERT_EQ(code, 0) << full;
  const std::string ck = dir + "/part.ck", part = base + " --archive " + dir + "/part --checkpoint " + ck;
  std::string out = run_command(part + " --stop-after 3", code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("stopped after 3 candidates"), std::string::npos) << out;
  out = run_command(part + " --resume --stop-after 7", code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("resumed from " + ck + ": 3 candidates done"), std::string::npos) << out;
  EXPECT_NE(out.find("stopped after 7 candidates"), std::string::npos) << out;
  out = run_command(part + " --resume", code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("7 candidates done"), std::string::npos) << out;
  for (const char* kind : {"controller", "random"}) {
    const std::string a = read_text(dir + "/full." + kind + ".jsonl"),
                      b = read_text(dir + "/part." + kind + ".jsonl");
    EXPECT_EQ(std::count(a.begin(), a.end(), '\n'), 5) << kind;
    EXPECT_EQ(a, b) << kind;
  }
  const auto prefixes = {"controller mean reward", "random mean reward", "controller mode",
                         "abcp-best:", "uniform:"};
  const std::string want = result_lines(full, prefixes);
  EXPECT_NE(want.find("abcp-best:"), std::string::npos) << full;
  EXPECT_EQ(result_lines(out, prefixes), want);

  // a corrupt checkpoint, one of another run, none at all
  std::string bytes = read_text(ck);
  bytes[bytes.size() / 2] ^= 0x5a;
  std::ofstream(dir + "/bad.ck", std::ios::binary) << bytes;
  out = run_command(base + " --checkpoint " + dir + "/bad.ck --resume", code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find(dir + "/bad.ck"), std::string::npos) << out;
  out = run_command(base + " --lambda 3 --checkpoint " + ck + " --resume", code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("checkpoint " + ck + ": saved by a run with other options"), std::string::npos) << out;
  out = run_command(base + " --checkpoint " + dir + "/none.ck --resume", code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find(dir + "/none.ck: no such file"), std::string::npos) << out;
  out = run_command(bin + " --resume", code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("--resume needs --checkpoint FILE"), std::string::npos) << out;
}

// The same for --model yolo (synthetic set at 32 x 32, budget 0.4): stopped after 2 candidates and after 6
// (in the random search), resumed, it ends with the same archives, search summaries and table rows (the
// img/s column aside) as one uninterrupted run.
TEST(AbcpYolo, AResumedSearchEqualsAnUninterruptedOne) {
  const std::string bin = std::string(NABLA_BINARY_DIR) + "/prune_abcp";
  if (!fs::exists(bin)) GTEST_SKIP() << "prune_abcp was not built";
  const std::string dir = test::yolo_temp_dir("abcp_yolo_resume");
  const std::string base =
      bin + " --model yolo --cfg builtin:yolov3-mini --data synthetic --synthetic-dir " + dir +
      "/syn --synthetic-train 12 --synthetic-val 6 --synthetic-size 32 " +
      "--pretrain-steps 6 --batch 6 --bn-recalibrate 2 --finetune-steps 1 --iterations 4 " +
      "--final-steps 1 --flops-budget 0.4 --bench-batch 2 --bench-reps 1 --threads 1 " + "--seed " +
      std::to_string(test::next_seed() % 100000);
  int code = 0;
  const std::string full =
      run_command(base + " --archive " + dir + "/full --checkpoint " + dir + "/full.ck", code);
  ASSERT_EQ(code, 0) << full;
  const std::string part = base + " --archive " + dir + "/part --checkpoint " + dir + "/part.ck";
  std::string out = run_command(part + " --stop-after 2", code);
  ASSERT_EQ(code, 0) << out;
  out = run_command(part + " --resume --stop-after 6", code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("2 candidates done"), std::string::npos) << out;
  out = run_command(part + " --resume", code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("6 candidates done"), std::string::npos) << out;
  for (const char* kind : {"controller", "random"})
    EXPECT_EQ(read_text(dir + "/full." + kind + ".jsonl"), read_text(dir + "/part." + kind + ".jsonl"))
        << kind;
  const std::regex img_s(R"(\| [0-9.]+ \|\n)");
  auto rows = [&](const std::string& o) {
    return std::regex_replace(
        result_lines(o, {"controller: mean", "random: mean", "| unpruned", "| abcp-best", "| uniform"}),
        img_s, "|\n");
  };
  EXPECT_NE(rows(full).find("| abcp-best"), std::string::npos) << full;
  EXPECT_EQ(rows(out), rows(full));
}

}  // namespace
}  // namespace nabla
