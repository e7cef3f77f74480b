// train_dlrm: DLRM (models/dlrm.h) on Criteo click logs, as facebookresearch/dlrm's dlrm_s_pytorch.py.
//
//   parse options -> data (NBCRITEO binary; Kaggle text or the DeepCTR sample converted once; or synthetic
//   Criteo with a planted teacher written once) -> model -> optimizer (SGD, Adagrad, VR-SGD) -> loop
//   {forward, BCE-with-logits, backward, [all-reduce], step, log; every --eval-every steps: AUC and log loss
//   on the validation rows, a checkpoint} -> final evaluation.
//
// Data: the reference's split (data/criteo.h: days 0..D-2 train, the last day halved into test and
// validation). The batches are shuffled per epoch from --seed (a pure function of seed and epoch), so a
// checkpoint's loader position resumes exactly. With W data-parallel ranks (mpirun), each takes its 1/W
// slice of every global batch; the tables are replicated.
//
// --model-parallel: the hybrid-parallel model (dist/sharded_embedding.h, the DLRM paper's and TorchRec's):
// the tables sharded over the W ranks (whole tables round robin; --row-wise-min-rows N splits the tables of
// at least N rows by rows over all ranks), one all_to_all of the looked-up vectors each way, the MLPs
// data-parallel; each rank still takes its 1/W slice of every global batch. It starts from the parameters
// the plain model has under the same --seed and trains as the plain model on the global batch (equal up to
// f32 summation order; W = 1 is the plain model computed table by table). The logged loss is the global
// batch's mean (the ranks' means averaged). Evaluation runs through the sharded model (every eval batch
// split over the ranks, the last rows padded by repeating the last; the probabilities all-gathered in row
// order), so AUC and log loss are over exactly the validation rows, as the plain run's. Checkpoints are
// per-rank shards (decision): rank 0 writes --checkpoint FILE, rank r > 0 FILE.rank<r>, each its local model
// (its tables or rows, their row-wise Adagrad accumulators, the MLPs), its optimizer state and the same
// run state, with the sharding in the metadata (model_parallel_world, model_parallel_rank,
// row_wise_min_rows). No rank ever holds the whole tables (the point of sharding), and every optimizer's
// state stays with its shard. --resume FILE continues exactly under the same W and --row-wise-min-rows (a
// checkpoint of another layout is refused, naming it); with W = 1 the one file is a plain checkpoint, so
// plain and --model-parallel runs resume each other. Not with --optimizer vr-sgd (its GSNR partitions run
// through the data-parallel step): exit 2.
//
// --sparse: the tables are updated in the backward on the batch's rows only, by sparse SGD (--optimizer sgd)
// or row-wise Adagrad (--optimizer adagrad: one accumulator per row, TorchRec's / the reference's
// rwsadagrad; the accumulators are model buffers, so checkpoints carry them); the MLPs by the optimizer.
//
// Exit codes: 0 done, 1 failed (bad data, diverged loss, bad checkpoint), 2 bad command line, 130/143 stopped
// by a signal (with --checkpoint written).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "algorithms/metrics/auc.h"
#include "algorithms/optim/adagrad.h"
#include "algorithms/optim/optimizer.h"
#include "algorithms/optim/schedule.h"
#include "algorithms/vrgd/vr_optimizer.h"
#include "apps/common/options.h"
#include "apps/common/run.h"
#include "apps/common/train_step.h"
#include "data/criteo.h"
#include "data/criteo_synthetic.h"
#include "dist/sharded_embedding.h"
#include "models/dlrm.h"
#include "nabla.h"
#include "ops/autocast.h"

using namespace nabla;
namespace criteo = nabla::data::criteo;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string data, data_path, prepare, arch, mlp_bot, mlp_top, interaction, optimizer, schedule, eval_rows;
  int64_t synthetic_rows, synthetic_cap, hash_size, embedding_dim;
  int64_t epochs, max_steps, batch_size, eval_batch_size, eval_every, limit_val, warmup_steps;
  int64_t gsnr_partitions, row_wise_min_rows;
  double lr, gsnr_gamma, weight_decay, sparse_lr_scale;
  bool self_interaction, sparse, model_parallel;
  apps::RunOptions run;
};

// The binary file to train on: as given, converted from text once (next to it: <path>.nbcriteo), or
// synthetic rows written once (to --data-path, or a file in the temporary folder named by its parameters).
std::string prepare_data(const Options& o, bool is_main) {
  if (o.data == "binary") return o.data_path;
  if (o.data == "text") {
    const std::string out = o.data_path + ".nbcriteo";
    if (!std::filesystem::exists(out)) {
      if (is_main)
        std::printf("converting %s -> %s (hashing mod %lld)\n", o.data_path.c_str(), out.c_str(),
                    static_cast<long long>(o.hash_size));
      if (is_main)
        criteo::convert_text_to_binary({o.data_path}, out, criteo::Preprocessor::hashing({o.hash_size}));
    }
    return out;
  }
  const std::string out = !o.data_path.empty() ? o.data_path
                                               : (std::filesystem::temp_directory_path() /
                                                  str_cat("train_dlrm_synthetic_s", o.run.seed, "_n",
                                                          o.synthetic_rows, "_c", o.synthetic_cap, ".bin"))
                                                     .string();
  if (!std::filesystem::exists(out) && is_main) {
    std::printf("writing %lld synthetic rows to %s\n", static_cast<long long>(o.synthetic_rows), out.c_str());
    criteo::SyntheticCriteo gen(
        {.cardinalities = criteo::scaled_kaggle_sizes(o.synthetic_cap), .seed = o.run.seed + 1});
    gen.write_binary(out, o.synthetic_rows);
  }
  return out;
}

models::DlrmConfig make_config(const Options& o, const std::vector<int64_t>& table_sizes) {
  models::DlrmConfig c = models::DlrmConfig::preset(o.arch, table_sizes);
  if (o.embedding_dim > 0) c.embedding_dim = o.embedding_dim;
  if (!o.mlp_bot.empty()) {
    auto bot = models::parse_mlp(o.mlp_bot, "--mlp-bot");
    NABLA_CHECK(bot.size() >= 2 && bot[0] == c.num_dense, "--mlp-bot ", o.mlp_bot, " must start with the ",
                c.num_dense, " dense features and have a layer");
    c.bottom_mlp.assign(bot.begin() + 1, bot.end());
  } else if (o.embedding_dim > 0) {
    c.bottom_mlp.back() = o.embedding_dim;
  }
  if (!o.mlp_top.empty()) c.top_mlp = models::parse_mlp(o.mlp_top, "--mlp-top");
  c.interaction = o.interaction == "cat" ? models::DlrmInteraction::cat : models::DlrmInteraction::dot;
  c.self_interaction = o.self_interaction;
  c.sparse_embeddings = o.sparse;
  if (o.sparse && o.optimizer == "adagrad") c.sparse_optimizer = models::DlrmSparseOptimizer::rowwise_adagrad;
  c.validate();
  return c;
}

// params: what the optimizer updates (sparse tables: the MLPs only; --model-parallel: this rank's).
std::unique_ptr<optim::Optimizer> make_optimizer(const Options& o, const std::vector<Tensor>& params) {
  std::vector<optim::ParamGroup> groups{{.params = params, .lr = o.lr, .weight_decay = o.weight_decay}};
  if (o.optimizer == "vr-sgd")
    return vrgd::make_vr_optimizer(
        "vr-sgd", groups,
        {.lr = o.lr, .momentum = 0, .weight_decay = o.weight_decay, .gsnr = {.gamma = o.gsnr_gamma}});
  if (o.optimizer == "adagrad")
    return std::make_unique<optim::Adagrad>(
        groups, optim::AdagradOptions{.lr = o.lr, .weight_decay = o.weight_decay});
  return std::make_unique<optim::Sgd>(groups, optim::SgdOptions{.lr = o.lr, .weight_decay = o.weight_decay});
}

struct EvalResult {
  double auc = 0, log_loss = 0;
  int64_t rows = 0;
};

// AUC (exact, ties by average rank) and log loss of the model's probabilities on `range`.
EvalResult evaluate(models::Dlrm& model, std::shared_ptr<const criteo::BinaryFile> file,
                    criteo::RowRange range, int64_t batch, Device dev) {
  EvalResult r;
  if (range.size() <= 0) return r;
  NoGradGuard ng;
  model.eval();
  criteo::CriteoLoader loader(file, range, {.batch_size = batch});
  std::vector<float> scores, labels;
  while (auto b = loader.next()) {
    Tensor p = model.probabilities(b->dense.to(dev), b->sparse.to(dev)).to(Device::cpu()).contiguous();
    const float* pp = p.data<float>();
    const float* pl = b->labels.contiguous().data<float>();
    scores.insert(scores.end(), pp, pp + p.numel());
    labels.insert(labels.end(), pl, pl + p.numel());
  }
  model.train();
  r.rows = static_cast<int64_t>(scores.size());
  r.auc = metrics::roc_auc(std::span<const float>(scores), std::span<const float>(labels));
  r.log_loss = metrics::log_loss(std::span<const float>(scores), std::span<const float>(labels));
  return r;
}

// The same through the sharded model (every rank calls it): each eval batch of n rows is split over the W
// ranks, ceil(n / W) rows each (the last rows padded by repeating row n - 1), and the probabilities are
// all-gathered in row order, so every rank scores exactly the n rows, in the plain evaluation's order.
EvalResult evaluate_sharded(dist::ShardedDlrm& sharded, dist::Communicator& comm,
                            std::shared_ptr<const criteo::BinaryFile> file, criteo::RowRange range,
                            int64_t batch, Device dev) {
  EvalResult r;
  if (range.size() <= 0) return r;
  NoGradGuard ng;
  sharded.model().eval();
  const int64_t W = comm.world_size(), rank = comm.rank();
  criteo::CriteoLoader loader(file, range, {.batch_size = batch});
  std::vector<float> scores, labels;
  while (auto b = loader.next()) {
    const int64_t n = b->labels.numel(), per = (n + W - 1) / W;
    std::vector<double> rows(per);
    for (int64_t i = 0; i < per; ++i) rows[i] = static_cast<double>(std::min(rank * per + i, n - 1));
    Tensor idx = from_vector(rows, {per}, {.dtype = DType::i64});
    Tensor p = sigmoid(sharded.forward(index_select(b->dense, 0, idx).to(dev),
                                       index_select(b->sparse, 0, idx).to(dev)))
                   .to(Device::cpu())
                   .contiguous();
    if (W > 1) p = comm.all_gather(p).reshape({W * per}).contiguous();
    const float* pp = p.data<float>();
    const float* pl = b->labels.contiguous().data<float>();
    scores.insert(scores.end(), pp, pp + n);
    labels.insert(labels.end(), pl, pl + n);
  }
  sharded.model().train();
  r.rows = static_cast<int64_t>(scores.size());
  r.auc = metrics::roc_auc(std::span<const float>(scores), std::span<const float>(labels));
  r.log_loss = metrics::log_loss(std::span<const float>(scores), std::span<const float>(labels));
  return r;
}

// --model-parallel checkpoints: rank 0 writes FILE, rank r > 0 FILE.rank<r> (see the file comment).
std::string shard_path(const std::string& path, int rank) {
  return rank == 0 ? path : str_cat(path, ".rank", rank);
}

// A checkpoint's metadata, read from its header alone (the tensors may be large).
std::map<std::string, std::string> checkpoint_metadata(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  NABLA_CHECK(in && n > 0 && n < (uint64_t{1} << 30), "checkpoint ", path, ": not a safetensors file");
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  NABLA_CHECK(in, "checkpoint ", path, ": truncated header");
  std::map<std::string, std::string> out;
  auto j = nlohmann::json::parse(header, nullptr, /*allow_exceptions=*/false);
  NABLA_CHECK(j.is_object(), "checkpoint ", path, ": its header is not JSON");
  if (j.contains("__metadata__") && j["__metadata__"].is_object())
    for (auto& [k, v] : j["__metadata__"].items())
      if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

// Whether the checkpoint's sharding is this run's: the world size and the row-wise threshold (absent: a
// plain checkpoint, which a --model-parallel run on one process reads as its own), and the rank.
void check_checkpoint_layout(const std::string& path, int64_t world, int64_t rank,
                             int64_t row_wise_min_rows) {
  const auto meta = checkpoint_metadata(path);
  auto field = [&](const char* key, int64_t dflt) {
    auto it = meta.find(key);
    return it == meta.end() ? dflt : std::stoll(it->second);
  };
  const int64_t w = field("model_parallel_world", 1), r = field("model_parallel_rank", 0),
                rw = field("row_wise_min_rows", 0);
  NABLA_CHECK(w == world && r == rank && (world == 1 || rw == row_wise_min_rows), "checkpoint ", path,
              ": written by ",
              w > 1 ? str_cat("rank ", r, " of a --model-parallel run on ", w, " ranks (--row-wise-min-rows ",
                              rw, ")")
                    : std::string("one process (tables whole)"),
              "; this run is ",
              world > 1 ? str_cat("rank ", rank, " of --model-parallel on ", world,
                                  " ranks (--row-wise-min-rows ", row_wise_min_rows, ")")
                        : std::string("one process with whole tables"),
              ": resume it with the same number of ranks and sharding options");
}

void check_options(const Options& o, const apps::OptionSet& cli) {
  apps::check_run_options(o.run);
  NABLA_CHECK(o.data == "synthetic" || !o.data_path.empty(), "--data ", o.data, " needs --data-path FILE");
  NABLA_CHECK(o.prepare.empty() || o.data == "text" || o.data == "synthetic",
              "--prepare OUT converts text or writes synthetic rows: it needs --data text or synthetic, got "
              "--data ",
              o.data);
  NABLA_CHECK(!o.sparse || o.optimizer == "sgd" || o.optimizer == "adagrad",
              "--sparse updates the tables in the backward by sparse SGD (--optimizer sgd) or row-wise ",
              "Adagrad (--optimizer adagrad); got --optimizer ", o.optimizer);
  NABLA_CHECK(o.sparse || o.sparse_lr_scale == 1, "--sparse-lr-scale ", o.sparse_lr_scale,
              " scales the sparse tables' learning rate: it needs --sparse");
  NABLA_CHECK(!o.sparse || o.weight_decay == 0,
              "--sparse: the sparse table updates have no weight decay (got --weight-decay ", o.weight_decay,
              ")");
  NABLA_CHECK(
      !o.model_parallel || o.optimizer != "vr-sgd",
      "--model-parallel takes --optimizer sgd or adagrad; got --optimizer vr-sgd (its GSNR partitions run "
      "through the data-parallel step, which would average the sharded tables' gradients)");
  NABLA_CHECK(o.model_parallel || o.row_wise_min_rows == 0, "--row-wise-min-rows ", o.row_wise_min_rows,
              " splits tables over the ranks of --model-parallel; add --model-parallel or drop it");
  if (!o.mlp_bot.empty()) (void)models::parse_mlp(o.mlp_bot, "--mlp-bot");
  if (!o.mlp_top.empty()) (void)models::parse_mlp(o.mlp_top, "--mlp-top");
  (void)optim::Schedule::parse(o.schedule,
                               {.base_lr = o.lr, .total_steps = 1 << 30, .warmup_steps = o.warmup_steps});
  (void)cli;
}

std::optional<int> parse(int argc, char** argv, Options& o) {
  apps::OptionSet cli("train_dlrm",
                      "Trains DLRM on Criteo click logs (default: synthetic Criteo with a planted "
                      "teacher, a tiny model, on the CPU).");
  cli.section("Data");
  cli.add("data", &o.data, "synthetic",
          "synthetic (planted teacher), binary (NBCRITEO file), text (Kaggle "
          "train.txt, a 1TB day file, the DeepCTR CSV sample; .gz too)")
      .value_name("KIND")
      .one_of({"synthetic", "binary", "text"});
  cli.add("data-path", &o.data_path, "", "the file (synthetic: where its rows are written once)")
      .value_name("FILE");
  cli.add("prepare", &o.prepare, "",
          "convert the --data text file to this binary file (hashing), or write the --data synthetic rows "
          "to it, and exit (then train with --data binary or synthetic --data-path OUT)")
      .value_name("OUT");
  cli.add("hash-size", &o.hash_size, 10000000,
          "text: categorical ids are hex value mod this (the reference's "
          "--max-ind-range)")
      .in_range(1, int64_t{1} << 31);
  cli.add("synthetic-rows", &o.synthetic_rows, 200000,
          "synthetic: rows (7 days; the last is validation and test)")
      .in_range(14, int64_t{1} << 40);
  cli.add("synthetic-cap", &o.synthetic_cap, 1000, "synthetic: Kaggle's table sizes capped at this")
      .in_range(2, int64_t{1} << 31);
  cli.section("Model");
  cli.add("arch", &o.arch, "tiny", "preset: tiny (D 8), kaggle (D 16), terabyte (D 64), mlperf (D 128)")
      .one_of({"tiny", "kaggle", "terabyte", "mlperf"});
  cli.add("embedding-dim", &o.embedding_dim, 0, "embedding dimension (0: the preset's)").in_range(0, 1 << 16);
  cli.add("mlp-bot", &o.mlp_bot, "", "bottom MLP as the reference writes it, 13-512-256-64-16 (\"\": preset)")
      .value_name("WIDTHS");
  cli.add("mlp-top", &o.mlp_top, "", "top MLP widths after the interaction, 512-256-1 (\"\": preset)")
      .value_name("WIDTHS");
  cli.add("interaction", &o.interaction, "dot", "feature interaction").one_of({"dot", "cat"});
  cli.add_switch("self-interaction", &o.self_interaction, "dot: include each vector's dot with itself");
  cli.add_switch("sparse", &o.sparse,
                 "tables updated in the backward, only the batch's rows (no dense table gradients): "
                 "sparse SGD with --optimizer sgd, row-wise Adagrad with --optimizer adagrad");
  cli.add_switch(
      "model-parallel", &o.model_parallel,
      "hybrid parallel under mpirun: the tables sharded over the ranks (whole tables round robin), "
      "all_to_all of the looked-up vectors, MLPs data-parallel; checkpoints: one shard per rank "
      "(FILE, FILE.rank1, ..); sgd or adagrad");
  cli.add("row-wise-min-rows", &o.row_wise_min_rows, 0,
          "--model-parallel: split the tables of at least N rows by rows over all ranks (0: none)")
      .non_negative()
      .unit("rows");
  cli.section("Training");
  cli.add("epochs", &o.epochs, 1, "passes over the training rows").positive();
  cli.add("max-steps", &o.max_steps, 0, "stop after this many steps (0: no limit)")
      .non_negative()
      .unit("steps");
  cli.add("batch-size", &o.batch_size, 1024, "global batch (split over data-parallel ranks)")
      .in_range(1, int64_t{1} << 30)
      .unit("rows");
  cli.add("optimizer", &o.optimizer, "sgd", "sgd, adagrad or vr-sgd (GSNR-scaled SGD, docs/vrgd.md)")
      .one_of({"sgd", "adagrad", "vr-sgd"});
  cli.add("lr", &o.lr, 0.1, "peak learning rate").positive();
  cli.add("sparse-lr-scale", &o.sparse_lr_scale, 1.0,
          "--sparse: the tables' learning rate is --lr (as scheduled) times this; the MLPs' is --lr")
      .positive();
  cli.add("weight-decay", &o.weight_decay, 0.0, "L2 weight decay").non_negative();
  cli.add("warmup-steps", &o.warmup_steps, 0, "linear warm-up from 0 to --lr").non_negative().unit("steps");
  cli.add("schedule", &o.schedule, "constant",
          "learning-rate schedule after the warm-up (as train_classifier: "
          "constant | cosine[:end=LR] | poly:power=P | step:every=N ...)")
      .value_name("SPEC");
  cli.add("gsnr-partitions", &o.gsnr_partitions, 8, "vr-sgd: partitions of each batch").positive();
  cli.add("gsnr-gamma", &o.gsnr_gamma, 0.1, "vr-sgd: lower clamp of the GSNR multiplier")
      .in_range(0, 1, apps::Bound::open_low);
  cli.section("Evaluation");
  cli.add("eval-every", &o.eval_every, 0,
          "AUC and log loss on the validation rows every N steps (0: at the end "
          "only); a checkpoint is written then too")
      .non_negative()
      .unit("steps");
  cli.add("eval-batch-size", &o.eval_batch_size, 16384, "evaluation batch").in_range(1, int64_t{1} << 30);
  cli.add("eval-rows", &o.eval_rows, "validation",
          "evaluate on the reference split's validation or test rows (the two halves of the last day)")
      .one_of({"validation", "test"});
  cli.add("limit-val", &o.limit_val, 0, "evaluate on the first N of those rows (0: all)").non_negative();
  apps::add_run_options(cli, o.run);
  cli.example("--max-steps 300 --eval-every 100",
              "tiny DLRM on 200k synthetic rows (a few seconds on 2 cores)");
  cli.example("--data text --data-path train.txt --prepare kaggle.bin", "convert Kaggle's train.txt once");
  cli.example("--data binary --data-path kaggle.bin --arch kaggle --batch-size 128 --lr 0.1 --device cuda",
              "the reference's Kaggle run");
  cli.example(
      "--arch mlperf --optimizer vr-sgd --batch-size 32768 --lr 8 --warmup-steps 200 --synthetic-cap 100000 "
      "--device cuda",
      "VR-SGD at large batch on synthetic Criteo");
  cli.example("--sparse --checkpoint ck.safetensors --eval-every 100 --metrics run.jsonl",
              "sparse tables, checkpoints and JSON lines");
  cli.example("--model-parallel --row-wise-min-rows 500 --sparse --optimizer adagrad --lr 0.05",
              "under mpirun -np 2: tables sharded over the ranks, the large ones by rows");
  return cli.parse(argc, argv, [&] { check_options(o, cli); });
}

int run(Options& o) {
  if (!o.prepare.empty() && o.data == "synthetic") {
    const auto t0 = Clock::now();
    criteo::SyntheticCriteo gen(
        {.cardinalities = criteo::scaled_kaggle_sizes(o.synthetic_cap), .seed = o.run.seed + 1});
    gen.write_binary(o.prepare, o.synthetic_rows);
    std::printf("wrote %s: %lld synthetic rows (tables capped at %lld, seed %llu) in %.1f s\n",
                o.prepare.c_str(), static_cast<long long>(o.synthetic_rows),
                static_cast<long long>(o.synthetic_cap), static_cast<unsigned long long>(o.run.seed),
                std::chrono::duration<double>(Clock::now() - t0).count());
    return 0;
  }
  if (!o.prepare.empty()) {
    criteo::ConvertStats s = criteo::convert_text_to_binary({o.data_path}, o.prepare,
                                                            criteo::Preprocessor::hashing({o.hash_size}));
    std::printf("wrote %s: %lld rows (%lld bad rows skipped)\n", o.prepare.c_str(),
                static_cast<long long>(s.rows), static_cast<long long>(s.bad_rows));
    return 0;
  }
  const int64_t global_batch = o.batch_size;
  const std::string checkpoint = o.run.checkpoint;      // Run::start clears it on ranks other than 0
  apps::Run r = apps::Run::start(o.run, o.batch_size);  // o.batch_size becomes this rank's share
  const dist::Session& ds = r.session();
  const Device dev = r.device();
  if (o.sparse && ds.world_size() > 1 && !o.model_parallel) {
    std::fprintf(stderr,
                 "train_dlrm: --sparse on %d ranks needs --model-parallel: the sparse tables are updated in "
                 "each rank's backward, which replicated data-parallel tables cannot average\n",
                 ds.world_size());
    return apps::kExitUsage;
  }
  // --model-parallel: the communicator (one of a single process when not under mpirun).
  std::shared_ptr<dist::Communicator> comm = ds.communicator();
  if (o.model_parallel && !comm)
    comm = std::make_shared<dist::Communicator>(dist::LaunchEnv{}, nullptr, nullptr);
  const std::string my_checkpoint =
      checkpoint.empty() ? std::string() : shard_path(checkpoint, o.model_parallel ? ds.rank() : 0);
  const std::string my_resume =
      o.run.resume.empty() ? std::string() : shard_path(o.run.resume, o.model_parallel ? ds.rank() : 0);
  if (o.model_parallel && ds.rank() > 0 && !my_checkpoint.empty() &&
      apps::remove_stale_temporary(my_checkpoint))
    std::fprintf(stderr, "note: removed %s.tmp, left by a run stopped while writing it\n",
                 my_checkpoint.c_str());
  if (!my_resume.empty()) {
    apps::check_checkpoint_file(my_resume, "--resume");
    check_checkpoint_layout(my_resume, o.model_parallel ? ds.world_size() : 1,
                            o.model_parallel ? ds.rank() : 0, o.row_wise_min_rows);
  }

  // data
  const std::string path = prepare_data(o, r.is_main());
  {
    int64_t ready = 0;
    ds.sum(ready);  // the other ranks wait until rank 0 wrote the file
  }
  auto file = std::make_shared<criteo::BinaryFile>(path);
  NABLA_CHECK(o.data != "synthetic" || file->size() == o.synthetic_rows, path, " holds ", file->size(),
              " rows, but --synthetic-rows is ", o.synthetic_rows,
              " (a file written by another run: remove it or pass ", "--synthetic-rows ", file->size(), ")");
  const criteo::Split split = criteo::reference_split(*file);
  criteo::RowRange val = o.eval_rows == "test" ? split.test : split.val;
  if (o.limit_val > 0 && o.limit_val < val.size()) val.end = val.begin + o.limit_val;
  NABLA_CHECK(split.train.size() >= global_batch, path, ": ", split.train.size(),
              " training rows, fewer than one --batch-size ", global_batch);
  criteo::CriteoLoader loader(
      file, split.train,
      {.batch_size = global_batch, .shuffle = true, .drop_last = true, .seed = o.run.seed});

  // model, optimizer, step
  const models::DlrmConfig config = make_config(o, file->header().table_sizes);
  std::shared_ptr<models::Dlrm> model;         // the plain model, or this rank's part of the sharded one
  std::unique_ptr<dist::ShardedDlrm> sharded;  // --model-parallel
  std::vector<Tensor> params;                  // what the optimizer updates
  int64_t num_parameters = 0;                  // of the whole model
  if (o.model_parallel) {
    dist::ShardingOptions so;
    if (o.row_wise_min_rows > 0) so.row_wise_min_rows = o.row_wise_min_rows;
    sharded = std::make_unique<dist::ShardedDlrm>(config, *comm, so);  // the plain model's start (same seed)
    model = std::shared_ptr<models::Dlrm>(&sharded->model(), [](models::Dlrm*) {});
    params = sharded->parameters();
    for (auto& [n, t] : model->dense_parameters()) num_parameters += t.numel();
    for (int64_t v : config.table_sizes) num_parameters += v * config.embedding_dim;
  } else {
    model = std::make_shared<models::Dlrm>(config);
    for (auto& [n, t] : (o.sparse ? model->dense_parameters() : model->named_parameters()))
      params.push_back(t);
    num_parameters = model->num_parameters();
  }
  model->to(dev);
  auto optimizer = make_optimizer(o, params);
  apps::ForwardFn forward = [](nn::Module& m, const Tensor& x, const Tensor& y) {
    return apps::ForwardOutput{binary_cross_entropy_with_logits(m.forward(x), y), Tensor()};
  };
  // (--model-parallel steps without it: its data-parallel wrapper would average the sharded tables)
  std::unique_ptr<apps::TrainStep> train_step_ptr;
  if (!o.model_parallel)
    train_step_ptr = std::make_unique<apps::TrainStep>(
        *model, *optimizer, ds, forward,
        apps::StepOptions{.amp = r.amp(), .vr_partitions = o.gsnr_partitions});
  const int64_t steps_per_epoch = loader.num_batches();
  const int64_t total = apps::total_steps(steps_per_epoch, o.epochs, o.max_steps);
  const int64_t warmup = std::min(o.warmup_steps, total / 2);
  const optim::Schedule schedule =
      optim::Schedule::parse(o.schedule, {.base_lr = o.lr, .total_steps = total, .warmup_steps = warmup});
  if (r.is_main()) {
    std::printf("DLRM %s | %s parameters | %s: %lld train, %lld %s rows | %lld steps/epoch | %s, %s\n",
                config.describe().c_str(), apps::with_commas(double(num_parameters)).c_str(), path.c_str(),
                static_cast<long long>(split.train.size()), static_cast<long long>(val.size()),
                o.eval_rows.c_str(), static_cast<long long>(steps_per_epoch), optimizer->name().c_str(),
                schedule.str().c_str());
    if (train_step_ptr && train_step_ptr->is_vr())
      std::printf("%s\n", train_step_ptr->describe(o.batch_size).c_str());
    std::fflush(stdout);
  }
  if (sharded) {  // the plan, and how many table rows each rank holds
    int64_t whole_tables = 0, split = 0, rows = 0, most = 0;
    for (int64_t f = 0; f < config.num_tables(); ++f) {
      whole_tables += !sharded->row_wise(f);
      split += sharded->row_wise(f);
      rows += sharded->owns(f)       ? config.table_sizes[f]
              : sharded->row_wise(f) ? sharded->row_end(f) - sharded->row_begin(f)
                                     : 0;
    }
    std::vector<double> held(ds.world_size(), 0.0);
    held[ds.rank()] = static_cast<double>(rows);
    ds.sum_vector(held);
    for (double h : held) most = std::max(most, static_cast<int64_t>(h));
    int64_t all = 0;
    for (int64_t v : config.table_sizes) all += v;
    if (r.is_main())
      std::printf(
          "model-parallel: %d rank%s | %lld tables whole (round robin), %lld split by rows%s | at most "
          "%s of %s table rows per rank | MLPs data-parallel\n",
          ds.world_size(), ds.world_size() == 1 ? "" : "s", static_cast<long long>(whole_tables),
          static_cast<long long>(split),
          o.row_wise_min_rows > 0 ? str_cat(" (>= ", o.row_wise_min_rows, " rows)").c_str() : "",
          apps::with_commas(double(most)).c_str(), apps::with_commas(double(all)).c_str());
    std::fflush(stdout);
  }

  // Synthetic data: the teacher's AUC and log loss on the same validation rows, the best any model can do.
  std::optional<criteo::TeacherReport> teacher;
  if (o.data == "synthetic" && val.size() >= 2) {
    criteo::SyntheticCriteo gen(
        {.cardinalities = criteo::scaled_kaggle_sizes(o.synthetic_cap), .seed = o.run.seed + 1});
    teacher = gen.teacher_report(val.size(), val.begin);
    if (r.is_main())
      std::printf(
          "teacher (the planted truth) on the %s rows: AUC %.4f | log loss %.4f (the best achievable)\n",
          o.eval_rows.c_str(), teacher->auc, teacher->log_loss);
  }

  apps::TrainState state;
  if (!o.model_parallel) {
    state = r.resume(*model, *optimizer, steps_per_epoch, o.epochs);
  } else {  // Run::resume's steps on this rank's shard
    state.rng = default_generator();
    if (!my_resume.empty()) {
      const uint64_t init_offset = default_generator().offset;
      state = apps::load_checkpoint(my_resume, *model, *optimizer);
      apps::check_against_run(my_resume, state, steps_per_epoch, o.epochs, o.run.seed, init_offset);
      default_generator() = state.rng;
      int64_t steps = state.step;  // the shards must come from the same save
      ds.sum(steps);
      NABLA_CHECK(steps == state.step * ds.world_size(), "--resume ", o.run.resume,
                  ": the ranks' shards were written at different steps (this rank's ", my_resume, ": step ",
                  state.step, ")");
      if (r.is_main())
        std::printf("resumed from %s (%d shard%s) at step %lld (epoch %lld, batch %lld)\n",
                    o.run.resume.c_str(), ds.world_size(), ds.world_size() == 1 ? "" : "s",
                    static_cast<long long>(state.step), static_cast<long long>(state.loader.epoch),
                    static_cast<long long>(state.loader.batch));
    }
    state.extra["model_parallel_world"] = std::to_string(ds.world_size());
    state.extra["model_parallel_rank"] = std::to_string(ds.rank());
    state.extra["row_wise_min_rows"] = std::to_string(o.row_wise_min_rows);
  }
  loader.set_position(state.loader);
  state.extra["model"] = "dlrm";
  state.extra["data"] = path;
  apps::TrainLog log(r, total, o.epochs);
  auto save = [&](int64_t step) {
    state.step = step;
    state.loader = loader.position();
    state.rng = default_generator();
    state.epoch = loader.position().epoch;
    if (!o.model_parallel) return r.save(*model, *optimizer, state);
    if (my_checkpoint.empty()) return;
    apps::save_checkpoint(my_checkpoint, *model, *optimizer, state);  // every rank its shard
    int64_t written = 1;
    ds.sum(written);  // rank 0 reports once all shards are there
    if (r.is_main())
      std::printf(
          "checkpoint written to %s%s\n", checkpoint.c_str(),
          ds.world_size() > 1
              ? str_cat(" and ", checkpoint, ".rank1",
                        ds.world_size() > 2 ? str_cat(" .. .rank", ds.world_size() - 1) : std::string(),
                        " (one shard per rank)")
                    .c_str()
              : "");
    std::fflush(stdout);
  };
  auto eval_and_log = [&](int64_t step) {
    EvalResult e = sharded ? evaluate_sharded(*sharded, *comm, file, val, o.eval_batch_size, dev)
                           : evaluate(*model, file, val, o.eval_batch_size, dev);
    if (!r.is_main()) return;
    log.finish_line();
    char gap[96] = "";
    if (teacher)
      std::snprintf(gap, sizeof gap, " | teacher AUC %.4f (gap %.4f)", teacher->auc, teacher->auc - e.auc);
    std::printf("step %lld | %s AUC %.4f | log loss %.4f | %lld rows%s\n", static_cast<long long>(step),
                o.eval_rows.c_str(), e.auc, e.log_loss, static_cast<long long>(e.rows), gap);
    std::fflush(stdout);
    nlohmann::json rec = {{"kind", "eval"},          {"step", step},   {"auc", e.auc},
                          {"log_loss", e.log_loss},  {"rows", e.rows}, {"elapsed_s", log.elapsed()},
                          {"eval_rows", o.eval_rows}};
    if (teacher) {
      rec["teacher_auc"] = teacher->auc;
      rec["teacher_log_loss"] = teacher->log_loss;
    }
    log.write(rec);
  };

  int64_t step = state.step;
  const int64_t local = o.batch_size, world = ds.world_size();
  while (step < total) {
    auto b = loader.next();
    if (!b) continue;  // an epoch ended; the loader starts the next
    const auto t0 = Clock::now();
    Tensor dense = b->dense, sparse = b->sparse, labels = b->labels;
    if (world > 1) {  // this rank's slice of the global batch
      dense = dense.narrow(0, ds.rank() * local, local);
      sparse = sparse.narrow(0, ds.rank() * local, local);
      labels = labels.narrow(0, ds.rank() * local, local);
    }
    const double lr = schedule.lr_at(step);
    model->set_sparse_lr(lr * o.sparse_lr_scale);
    double loss = 0;
    if (sharded) {  // forward (all_to_all), backward (all_to_all back), MLP gradients averaged, step
      optimizer->set_lr(lr);
      optimizer->zero_grad();
      Tensor l;
      {
        AutocastGuard autocast(DType::bf16, r.amp());
        l = binary_cross_entropy_with_logits(sharded->forward(dense.to(dev), sparse.to(dev)),
                                             labels.contiguous().to(dev));
      }
      l.backward();
      sharded->finish_backward();
      optimizer->step();
      Tensor mean = l.detach().to(Device::cpu()).to(DType::f64).reshape({1}).contiguous();
      if (world > 1) comm->all_reduce(mean, dist::ReduceOp::avg);  // the global batch's mean loss
      loss = mean.item();
    } else {
      apps::TrainStep& train_step = *train_step_ptr;
      const bool stats = train_step.is_vr() && log.records(step + 1);
      const apps::StepResult s =
          train_step.run(models::dlrm_pack(dense, sparse).to(dev), labels.contiguous().to(dev), lr, stats);
      loss = s.loss;
      if (stats) log.write(train_step.gsnr_record(step + 1));
    }
    apps::check_loss(loss, ++step, o.run.allow_nonfinite);
    log.step(step, b->epoch, loss, lr, local * world,
             std::chrono::duration<double>(Clock::now() - t0).count());
    if (o.eval_every > 0 && step % o.eval_every == 0 && step < total) {
      eval_and_log(step);
      save(step);
    }
    if (r.stop_requested(step)) {
      log.finish_line();
      save(step);
      return r.stop_code();
    }
  }
  log.finish_line();
  eval_and_log(step);
  save(step);
  if (r.is_main()) log.summary();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (std::optional<int> code = parse(argc, argv, o)) return *code;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_dlrm: %s\n", e.what());
  }
  return apps::kExitFailure;
}
