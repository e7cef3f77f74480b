// Hybrid-parallel DLRM (the DLRM paper's section 4, TorchRec's table-wise sharding): the embedding tables are
// model-parallel, each on one rank, and the MLPs data-parallel.
//
// Rank r of W owns the tables f with f mod W == r (table-wise, round robin) and holds them in full; the other
// tables are 1-row placeholders that are never read (so memory per rank is about 1/W of the tables). Every
// rank has the whole bottom and top MLP.
//
// Tables of at least ShardingOptions::row_wise_min_rows rows (and at least W) are split by rows instead
// (TorchRec's row-wise sharding): rank r holds the contiguous rows [lo_r, hi_r) (ceil(V / W) rows each, the
// last rank fewer) as its local table of hi_r - lo_r rows, whichever rank owns it table-wise is then
// ignored. Every rank looks up the whole global batch's ids of that table, in its own range only (ids
// outside weigh 0: embedding_bag's per-sample weights, ids shifted by -lo_r and clamped into range), giving
// a partial sum [B, D]; the partials ride in the same all_to_all as the table-wise slots ([B, T + R, D] for
// R row-wise tables: one collective each way, so the ranks' backward passes cannot order two collectives
// differently), and each rank sums the W partials of its b rows (a reduce_scatter). In the backward every
// rank gets the gradient of the whole batch for its rows (scaled by 1 / W as the table-wise tables). One step
// on a global batch of B = W b rows, rank r holding rows r b .. (r+1) b - 1:
//
//   x      = bottom_mlp(dense_r)                                   [b, D]       data-parallel
//   ids    = all_gather(sparse_r)                                  [B, F]       every rank sees all ids
//   e_f    = lookup_f(ids[:, f]) for the owned f, zero-padded to T = ceil(F / W) slots  -> send [B, T, D]
//   recv   = all_to_all(send)   (chunk j of rank i -> chunk i of rank j: rows of rank j, tables of rank i)
//   emb    = recv viewed [W, b, T, D] -> [b, T, W, D] -> [b, T W, D], first F   (slot s W + i = table f)
//   logits = top_mlp(x, emb)                                       [b]
//
// Backward: all_to_all is its own inverse, so the gradient of recv goes back by another all_to_all and each
// owner gets the gradient of its tables' outputs for the whole global batch. Each rank's loss is the mean
// over its b rows, so that gradient is W times the global mean's: the backward all_to_all scales it by 1 / W,
// before any table sees it. So dense table gradients, sparse SGD and row-wise Adagrad (sparse_optimizer
// rowwise_adagrad: the accumulators are the local model's emb_adagrad.<f> buffers, one per local row, so
// they live with the shard's rows) all see exactly the replicated model's gradient. finish_backward()
// all-reduces (averages) the dense MLP gradients. After that the optimizer steps on every rank's parameters
// alike, and training equals the replicated model on the global batch (tests/dist/test_sharded_dlrm.cpp,
// with MPI processes on the CPU, NCCL on GPUs).
//
// Initialisation: the local model is a shard (models::DlrmConfig::whole_table_sizes / table_first_row), its
// tables drawn from the whole model's generator counters, so ShardedDlrm(config) built after manual_seed(s)
// holds exactly the parameters of Dlrm(config) built after manual_seed(s), on any number of ranks, without
// the whole tables ever existing on one rank (load_from copies from a whole model instead).
#pragma once
#include <memory>
#include <vector>

#include "dist/communicator.h"
#include "models/dlrm.h"

namespace nabla::dist {

// Differentiable all_to_all of a [W k, ...] tensor (backward: all_to_all of the gradient, times grad_scale).
Tensor all_to_all_differentiable(Communicator& comm, const Tensor& t, double grad_scale = 1);

struct ShardingOptions {
  // Tables with at least this many rows (and at least world-size rows) are split by rows over all ranks;
  // the others are placed whole, table-wise. The default splits none.
  int64_t row_wise_min_rows = int64_t{1} << 62;
};

class ShardedDlrm {
 public:
  // `config` is the whole model's; this rank builds its owned tables (its row range of a row-wise table)
  // and 1-row placeholders for the rest.
  ShardedDlrm(const models::DlrmConfig& config, Communicator& comm, ShardingOptions options = {});

  // Copies the dense parameters and this rank's tables from a whole model (same config).
  void load_from(const models::Dlrm& whole);

  // dense [b, num_dense], sparse [b, F] (this rank's rows; b equal on every rank) -> logits [b].
  Tensor forward(const Tensor& dense, const Tensor& sparse);
  // After loss.backward(): the dense (MLP) gradients averaged over the ranks.
  void finish_backward();
  // Sparse tables: the next backward's learning rate (SGD or row-wise Adagrad).
  void set_sparse_lr(double lr);

  // Table-wise placement: the whole table lives on this rank.
  bool owns(int64_t table) const { return !row_wise(table) && table % world_ == rank_; }
  bool row_wise(int64_t table) const { return row_lo_[table] >= 0; }
  // A row-wise table's rows on this rank: [row_begin, row_end).
  int64_t row_begin(int64_t table) const { return row_lo_[table]; }
  int64_t row_end(int64_t table) const { return row_hi_[table]; }
  models::Dlrm& model() { return *model_; }
  // What an optimizer updates on this rank: the dense parameters, the owned tables and this rank's part of
  // the row-wise tables (dense tables only).
  std::vector<Tensor> parameters() const;

 private:
  Communicator& comm_;
  int rank_, world_;
  models::DlrmConfig config_;
  std::shared_ptr<models::Dlrm> model_;
  std::vector<int64_t> row_lo_, row_hi_;  // per table: this rank's rows of a row-wise table; -1 if table-wise
  std::vector<std::vector<int64_t>> placed_;  // per rank: its table-wise tables, in order (its send slots)
  Tensor anchor_;                             // sparse row-wise tables: what their update nodes hang on
  Tensor row_wise_lookup(int64_t table, const Tensor& ids);  // ids [B] -> this rank's partial [B, D]
};

}  // namespace nabla::dist
