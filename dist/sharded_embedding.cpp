// Hybrid-parallel DLRM: table-wise sharded embeddings over all_to_all (dist/sharded_embedding.h has the
// plan).
#include "dist/sharded_embedding.h"

#include <algorithm>
#include <string>

#include "autograd/autograd.h"
#include "ops/embedding.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/reduce.h"

namespace nabla::dist {

Tensor all_to_all_differentiable(Communicator& comm, const Tensor& t, double grad_scale) {
  Tensor out = comm.all_to_all(t.detach().contiguous());
  Communicator* c = &comm;
  autograd::record("all_to_all", out, {t}, [c, grad_scale](const Tensor& g) -> std::vector<Tensor> {
    Tensor back = c->all_to_all(g.contiguous());
    if (grad_scale != 1) mul_(back, grad_scale);
    return {back};
  });
  return out;
}

ShardedDlrm::ShardedDlrm(const models::DlrmConfig& config, Communicator& comm, ShardingOptions options)
    : comm_(comm), rank_(comm.rank()), world_(comm.world_size()), config_(config) {
  const int64_t F = config.num_tables(), W = world_;
  row_lo_.assign(F, -1);
  row_hi_.assign(F, -1);
  placed_.assign(W, {});
  NABLA_CHECK(config.whole_table_sizes.empty(),
              "ShardedDlrm: the config must be a whole model's, got a shard's");
  models::DlrmConfig local = config;
  // The local tables start as the whole model's rows (models/dlrm.h: a shard's initialisation).
  local.whole_table_sizes = config.table_sizes;
  local.table_first_row.assign(F, -1);
  for (int64_t f = 0; f < F; ++f) {
    const int64_t V = config.table_sizes[f];
    if (V >= options.row_wise_min_rows && V >= W) {
      const int64_t per = (V + W - 1) / W;
      row_lo_[f] = std::min(V, rank_ * per);
      row_hi_[f] = std::min(V, (rank_ + 1) * per);
      // A rank past the end (V just above a multiple) holds a 1-row placeholder it never reads.
      local.table_sizes[f] = std::max<int64_t>(1, row_hi_[f] - row_lo_[f]);
      if (row_hi_[f] > row_lo_[f]) local.table_first_row[f] = row_lo_[f];
      continue;
    }
    placed_[f % W].push_back(f);
    if (f % W != rank_)
      local.table_sizes[f] = 1;  // a placeholder, never read
    else
      local.table_first_row[f] = 0;
  }
  model_ = std::make_shared<models::Dlrm>(local);
  anchor_ = zeros({1});
  anchor_.requires_grad_(true);
}

void ShardedDlrm::load_from(const models::Dlrm& whole) {
  NABLA_CHECK(whole.config().table_sizes == config_.table_sizes &&
                  whole.config().embedding_dim == config_.embedding_dim,
              "ShardedDlrm::load_from: the whole model's tables differ from this one's");
  NoGradGuard ng;
  auto mine = model_->state_dict(), theirs = whole.state_dict();
  NABLA_CHECK(mine.size() == theirs.size(), "ShardedDlrm::load_from: ", theirs.size(), " tensors, expected ",
              mine.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    NABLA_CHECK(mine[i].first == theirs[i].first, "ShardedDlrm::load_from: tensor ", i, " is ",
                theirs[i].first, ", expected ", mine[i].first);
    // A table's rows and its row-wise Adagrad accumulators (emb_adagrad.<f>) are split alike.
    const bool table = mine[i].first.rfind("emb_l.", 0) == 0 || mine[i].first.rfind("emb_adagrad.", 0) == 0;
    if (table) {
      const int64_t f = std::stoll(mine[i].first.substr(mine[i].first.find('.') + 1));
      if (row_wise(f)) {
        if (row_end(f) > row_begin(f))
          mine[i].second.copy_(theirs[i].second.narrow(0, row_begin(f), row_end(f) - row_begin(f)));
        continue;
      }
      if (mine[i].second.shape() != theirs[i].second.shape()) continue;  // a placeholder
    }
    mine[i].second.copy_(theirs[i].second);
  }
}

std::vector<Tensor> ShardedDlrm::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : model_->named_parameters()) {
    if (name.rfind("emb_l.", 0) == 0) {
      const int64_t f = std::stoll(name.substr(6));
      if ((!owns(f) && !row_wise(f)) || config_.sparse_embeddings) continue;
    }
    out.push_back(t);
  }
  return out;
}

void ShardedDlrm::set_sparse_lr(double lr) { model_->set_sparse_lr(lr); }

Tensor ShardedDlrm::row_wise_lookup(int64_t f, const Tensor& ids) {
  const Tensor& w = model_->tables()[f];
  const int64_t B = ids.shape()[0], lo = row_begin(f), hi = row_end(f);
  auto scalar = [&](int64_t v) {
    return full({}, static_cast<double>(v), {.dtype = DType::i64, .device = ids.device()});
  };
  // Ids in [lo, hi) weigh 1 and are shifted to local rows; the others weigh 0 and read local row 0.
  const Tensor above = ge(ids, scalar(lo)), below = lt(ids, scalar(hi));
  Tensor in = mul(above.to(w.dtype()), below.to(w.dtype()));
  Tensor local = where(above, where(below, sub(ids, scalar(lo)), scalar(0)), scalar(0)).reshape({B, 1});
  if (!config_.sparse_embeddings) return embedding_bag(w, local, BagMode::sum, in);
  Tensor out = embedding_bag(w.detach(), local, BagMode::sum, in);
  if (autograd::grad_enabled() && model_->is_training()) {
    // Ids outside [lo, hi) read local row 0 with weight 0: they add nothing to its summed gradient, so its
    // row-wise Adagrad accumulator and its row move only by the ids inside (0 / (sqrt(0) + eps) = 0).
    Tensor table = w;
    Tensor state = model_->table_states().empty() ? Tensor() : model_->table_states()[f];
    models::Dlrm* m = model_.get();
    const double eps = config_.sparse_eps;
    autograd::record("row_wise_sparse_update", out, {anchor_},
                     [m, table, state, local, in, eps](const Tensor& g) mutable -> std::vector<Tensor> {
                       if (state.defined())
                         embedding_bag_sparse_rowwise_adagrad_(table, state, local, Tensor(), BagMode::sum, g,
                                                               m->sparse_lr(), eps, in);
                       else
                         embedding_bag_sparse_sgd_(table, local, Tensor(), BagMode::sum, g, m->sparse_lr(),
                                                   in);
                       return {Tensor()};
                     });
  }
  return out;
}

Tensor ShardedDlrm::forward(const Tensor& dense, const Tensor& sparse) {
  const int64_t F = config_.num_tables(), D = config_.embedding_dim, W = world_;
  const int64_t b = dense.shape()[0], B = b * W;
  int64_t T = 0;
  for (const auto& p : placed_) T = std::max<int64_t>(T, static_cast<int64_t>(p.size()));
  NABLA_CHECK(sparse.dim() == 2 && sparse.shape()[0] == b && sparse.shape()[1] == F,
              "ShardedDlrm: sparse ids must be [", b, ", ", F, "], got ", sparse.shape());
  Tensor x = model_->bottom(dense);
  Tensor ids =
      W == 1 ? sparse.to(DType::i64) : comm_.all_gather(sparse.to(DType::i64).contiguous()).reshape({B, F});
  // One all_to_all carries both kinds (so each step has one collective each way and the ranks' backward
  // passes cannot order two collectives differently): slots 0..T-1 the table-wise tables (zero-padded), then
  // one slot per row-wise table with this rank's partial sums; rank j receives chunk j (its b rows) of every
  // rank's slots, and the row-wise slots are summed over the senders (a reduce_scatter).
  std::vector<int64_t> row_tables;
  for (int64_t f = 0; f < F; ++f)
    if (row_wise(f)) row_tables.push_back(f);
  const int64_t R = static_cast<int64_t>(row_tables.size());
  std::vector<Tensor> slots;
  for (int64_t f : placed_[rank_]) slots.push_back(model_->lookup(f, ids.select(1, f)));
  while (static_cast<int64_t>(slots.size()) < T)
    slots.push_back(zeros({B, D}, {.dtype = x.dtype(), .device = x.device()}));
  for (int64_t f : row_tables) slots.push_back(row_wise_lookup(f, ids.select(1, f).contiguous()));
  Tensor send = stack(slots, 1);  // [B, T + R, D]: rows in rank order, so chunk j is rank j's rows
  // Each rank's loss is the mean over its b rows, so the gradient coming back for the B rows is W times that
  // of the global batch's mean: the backward's all_to_all scales it by 1 / W, and every table (dense
  // gradient, sparse SGD, row-wise Adagrad alike) sees the gradient the replicated model sees.
  Tensor recv = W == 1 ? send : all_to_all_differentiable(comm_, send, 1.0 / static_cast<double>(W));
  Tensor got = recv.reshape({W, b, T + R, D});  // [sender i, b, slot, D]
  std::vector<Tensor> per_table(F);
  for (int64_t i = 0; i < W; ++i)
    for (size_t s = 0; s < placed_[i].size(); ++s)
      per_table[placed_[i][s]] = got.select(0, i).select(1, static_cast<int64_t>(s));
  for (int64_t k = 0; k < R; ++k) per_table[row_tables[k]] = sum(got.select(2, T + k), {0});
  return model_->top(x, stack(per_table, 1));
}

void ShardedDlrm::finish_backward() {
  NoGradGuard ng;
  for (auto& [name, t] : model_->named_parameters()) {
    Tensor g = t.grad();
    if (!g.defined()) continue;
    // The tables' gradients are already the global batch's (forward: the all_to_all's backward scales).
    if (name.rfind("emb_l.", 0) != 0 && world_ > 1) comm_.all_reduce(g, ReduceOp::avg);
  }
}

}  // namespace nabla::dist
