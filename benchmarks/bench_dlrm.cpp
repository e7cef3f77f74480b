// DLRM training-step benchmark (models/dlrm.h), compared with benchmarks/dlrm_torch.py (the same model in
// PyTorch with nn.EmbeddingBag) by `GPU_CHECK_PART=dlrm bash scripts/gpu_check.sh`.
//
// The model of ../shared/DEVICE.md: 26 tables of 100,000 rows x 128, bottom MLP 13-512-256-128, dot
// interaction, top MLP 1024-1024-512-256-1 (MLPerf's DLRM widths), BCE with logits, plain SGD (lr 0.01).
// Data: random dense features and uniformly random ids, made once on the device (the step, not the loader, is
// timed). TF32 on for f32 GEMMs (--no-tf32 turns it off).
//
// Lookups: --embeddings fused (the default: one multi_embedding_bag for all tables, ops/multi_embedding.h)
// or per-table (one embedding_bag per table and a stack, the reference's loop), to measure the difference.
//
// Table sizes (--sizes): uniform (--tables tables of --rows rows) or kaggle: the reference's Kaggle
// cardinalities (data/criteo.h's kKaggleTableSizes) each capped at --max-ind-range (10,000,000, as the
// reference's --max-ind-range=10000000): 33,631,350 rows in 26 tables; with the reference's Kaggle dims
// (--dim 16 --bottom 13-512-256-64-16 --top 512-256-1) 2.15 GB of f32 tables. Ids are uniform over each
// table's rows. The tables are initialised on the device (U(+-sqrt(1 / rows)), as the reference), as
// dlrm_torch.py does: 2 GB drawn on the host would take longer than the whole benchmark.
//
// Two table modes per batch size:
//   dense   the tables are ordinary parameters: each step makes a dense [100000, 128] gradient per table
//           (zeroed, scattered into, then read by SGD: 3 x 1.3 GB of traffic a step over the 26 tables)
//   sparse  embedding_bag_sparse_sgd_ in the backward: only the batch's rows are read and written
// Timing: --warmup untimed steps, then --steps steps between two device synchronisations; samples/s =
// steps x batch / seconds. Peak memory: the caching allocator's high-water mark over the timed steps.
// One JSON line per case: {"impl": "nabla", "batch", "mode", "ms_per_step", "samples_per_s", "peak_mib"}.
//
//   bench_dlrm                                     the H200 run (cuda, batches 2048 and 65536)
//   bench_dlrm --sizes kaggle --dim 16 --bottom 13-512-256-64-16 --top 512-256-1   Kaggle-sized tables
//   bench_dlrm --device cpu --rows 1000 --batch 64,256 --steps 3 --warmup 1 --bottom 13-64-32 --top 64-1
//   --dim 32
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "algorithms/optim/optimizer.h"
#include "apps/common/options.h"
#include "data/criteo.h"
#include "engine/device_runtime.h"
#include "models/dlrm.h"
#include "nabla.h"

using namespace nabla;

namespace {

struct Options {
  std::string device, bottom, top, batches, modes, embeddings, sizes;
  int64_t tables, rows, dim, steps, warmup, max_ind_range;
  bool no_tf32;
};

std::vector<int64_t> parse_list(const std::string& s, const char* what) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, ',');) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    NABLA_CHECK(used == part.size() && v >= 1, what, ": '", s,
                "' is not a comma-separated list of positive numbers");
    out.push_back(v);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  apps::OptionSet cli("bench_dlrm",
                      "DLRM training steps per second (compare with benchmarks/dlrm_torch.py).");
  cli.add("device", &o.device, "cuda", "cpu or cuda[:N]").value_name("DEV");
  cli.add("tables", &o.tables, 26, "embedding tables").in_range(1, 1024);
  cli.add("rows", &o.rows, 100000, "rows per table").in_range(1, int64_t{1} << 31);
  cli.add("sizes", &o.sizes, "uniform",
          "table sizes: uniform (--tables x --rows) or kaggle (the reference's 26 Kaggle cardinalities, each "
          "capped at --max-ind-range)")
      .one_of({"uniform", "kaggle"});
  cli.add("max-ind-range", &o.max_ind_range, 10000000, "kaggle: cap on each table's rows (the reference's)")
      .in_range(1, int64_t{1} << 31);
  cli.add("dim", &o.dim, 128, "embedding dimension (the bottom MLP's last width)").in_range(1, 4096);
  cli.add("bottom", &o.bottom, "13-512-256-128", "bottom MLP, 13-...-dim").value_name("WIDTHS");
  cli.add("top", &o.top, "1024-1024-512-256-1", "top MLP after the interaction, ...-1").value_name("WIDTHS");
  cli.add("batch", &o.batches, "2048,65536", "batch sizes, comma-separated").value_name("LIST");
  cli.add("modes", &o.modes, "dense,sparse", "table modes: dense, sparse or both").value_name("LIST");
  cli.add("steps", &o.steps, 20, "timed steps per case").positive();
  cli.add("warmup", &o.warmup, 5, "untimed steps first").non_negative();
  cli.add("embeddings", &o.embeddings, "fused",
          "lookup path: fused (one multi_embedding_bag for all tables) or per-table (one embedding_bag each)")
      .value_name("PATH");
  cli.add_switch("no-tf32", &o.no_tf32, "full f32 GEMMs");
  cli.example(
      "--device cpu --rows 1000 --batch 64,256 --steps 3 --warmup 1 --bottom 13-64-32 --top 64-1 --dim 32",
      "a tiny CPU run");
  if (auto code = cli.parse(argc, argv, [&] {
        (void)parse_list(o.batches, "--batch");
        NABLA_CHECK(o.modes == "dense" || o.modes == "sparse" || o.modes == "dense,sparse" ||
                        o.modes == "sparse,dense",
                    "--modes: expected dense, sparse or dense,sparse, got '", o.modes, "'");
        NABLA_CHECK(o.embeddings == "fused" || o.embeddings == "per-table",
                    "--embeddings: expected fused or per-table, got '", o.embeddings, "'");
      }))
    return *code;
  try {
    const Device dev = Device::parse(o.device);
    runtime::set_tf32_enabled(!o.no_tf32);
    auto bottom = models::parse_mlp(o.bottom, "--bottom");
    NABLA_CHECK(bottom.size() >= 2 && bottom[0] == 13 && bottom.back() == o.dim, "--bottom ", o.bottom,
                " must go from 13 to --dim ", o.dim);
    std::vector<int64_t> sizes(o.tables, o.rows);
    if (o.sizes == "kaggle") {
      sizes.clear();
      for (int64_t n : data::criteo::kKaggleTableSizes) sizes.push_back(std::min(n, o.max_ind_range));
    }
    int64_t total_rows = 0;
    for (int64_t n : sizes) total_rows += n;
    // Uniform ids in each table's range, made once on the device: [batch, F].
    auto make_ids = [&](int64_t batch) {
      std::vector<Tensor> cols;
      for (int64_t n : sizes) cols.push_back(randint(0, n, {batch, 1}, {.dtype = DType::i64, .device = dev}));
      return cat(cols, 1);
    };
    // Table mode outside, batch inside: one model per mode, made at its first batch size and reused by the
    // next, and dropped before the other mode's is made, so each record's peak memory is its own model's
    // (PyTorch's side deletes its model between cases too).
    for (const char* mode : {"dense", "sparse"}) {
      if (o.modes.find(mode) == std::string::npos) continue;
      std::shared_ptr<models::Dlrm> made;
      for (int64_t batch : parse_list(o.batches, "--batch")) {
        const bool sparse = std::string(mode) == "sparse";
        models::DlrmConfig c;
        c.table_sizes = sizes;
        c.embedding_dim = o.dim;
        c.bottom_mlp.assign(bottom.begin() + 1, bottom.end());
        c.top_mlp = models::parse_mlp(o.top, "--top");
        c.sparse_embeddings = sparse;
        c.fused_embeddings = o.embeddings == "fused";
        nlohmann::json line = {{"impl", "nabla"},    {"batch", batch},
                               {"mode", mode},       {"embeddings", o.embeddings},
                               {"device", o.device}, {"tf32", runtime::tf32_enabled()},
                               {"sizes", o.sizes},   {"table_rows", total_rows},
                               {"dim", o.dim}};
        const char* split = std::getenv("NABLA_LINEAR_SPLIT_WGRAD");  // ops/linalg.cpp's switch
        line["split_wgrad"] = !(split && std::string(split) == "0");
        try {
          // The mode's model, made at its first batch size ("init_s" there) and reused by the next.
          if (!made) {
            manual_seed(1);
            const auto i0 = std::chrono::steady_clock::now();
            c.init_tables = false;  // filled on the device below: one fast pass, as dlrm_torch.py
            made = std::make_shared<models::Dlrm>(c);
            made->to(dev);
            NoGradGuard ng;
            for (Tensor t : made->tables()) {
              const double bound = std::sqrt(1.0 / static_cast<double>(t.shape()[0]));
              uniform_(t, -bound, bound);
            }
            runtime::synchronize(dev);
            line["init_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - i0).count();
          }
          models::Dlrm& model = *made;
          std::vector<Tensor> params;
          for (auto& [n, t] : (sparse ? model.dense_parameters() : model.named_parameters()))
            params.push_back(t);
          optim::Sgd opt(params, {.lr = 0.01});
          model.set_sparse_lr(0.01);
          Tensor dense = randn({batch, 13}, {.device = dev});
          Tensor ids = make_ids(batch);
          Tensor labels = randint(0, 2, {batch}, {.device = dev});
          auto step = [&] {
            opt.zero_grad();
            binary_cross_entropy_with_logits(model.forward(dense, ids), labels).backward();
            opt.step();
          };
          for (int64_t i = 0; i < o.warmup; ++i) step();
          runtime::synchronize(dev);
          runtime::reset_peak_memory_stats(dev);
          const auto t0 = std::chrono::steady_clock::now();
          for (int64_t i = 0; i < o.steps; ++i) step();
          runtime::synchronize(dev);
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          line["ms_per_step"] = 1e3 * s / static_cast<double>(o.steps);
          line["samples_per_s"] = static_cast<double>(o.steps * batch) / s;
          line["peak_mib"] = static_cast<double>(runtime::memory_stats(dev).peak_allocated) / (1 << 20);
        } catch (const std::exception& e) {
          line["error"] = e.what();
        }
        std::printf("%s\n", line.dump().c_str());
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_dlrm: %s\n", e.what());
    return 1;
  }
  return 0;
}
