// Hybrid-parallel DLRM: table-wise sharded embeddings over all_to_all (dist/sharded_embedding.h has the
// plan).
#include "dist/sharded_embedding.h"

#include "autograd/autograd.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"

namespace nabla::dist {

Tensor all_to_all_differentiable(Communicator& comm, const Tensor& t) {
  Tensor out = comm.all_to_all(t.detach().contiguous());
  Communicator* c = &comm;
  autograd::record("all_to_all", out, {t},
                   [c](const Tensor& g) -> std::vector<Tensor> { return {c->all_to_all(g.contiguous())}; });
  return out;
}

namespace {
models::DlrmConfig local_config(models::DlrmConfig c, int rank, int world) {
  for (int64_t f = 0; f < c.num_tables(); ++f)
    if (f % world != rank) c.table_sizes[f] = 1;  // a placeholder, never read
  return c;
}
}  // namespace

ShardedDlrm::ShardedDlrm(const models::DlrmConfig& config, Communicator& comm)
    : comm_(comm), rank_(comm.rank()), world_(comm.world_size()), config_(config) {
  model_ = std::make_shared<models::Dlrm>(local_config(config, rank_, world_));
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
    const bool table = mine[i].first.rfind("emb_l.", 0) == 0;
    if (table && mine[i].second.shape() != theirs[i].second.shape()) continue;  // a placeholder
    mine[i].second.copy_(theirs[i].second);
  }
}

std::vector<Tensor> ShardedDlrm::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : model_->named_parameters()) {
    if (name.rfind("emb_l.", 0) == 0) {
      const int64_t f = std::stoll(name.substr(6));
      if (!owns(f) || config_.sparse_embeddings) continue;
    }
    out.push_back(t);
  }
  return out;
}

void ShardedDlrm::set_sparse_lr(double lr) { model_->set_sparse_lr(lr / world_); }

Tensor ShardedDlrm::forward(const Tensor& dense, const Tensor& sparse) {
  const int64_t F = config_.num_tables(), D = config_.embedding_dim, W = world_;
  const int64_t b = dense.shape()[0], B = b * W, T = (F + W - 1) / W;
  NABLA_CHECK(sparse.dim() == 2 && sparse.shape()[0] == b && sparse.shape()[1] == F,
              "ShardedDlrm: sparse ids must be [", b, ", ", F, "], got ", sparse.shape());
  Tensor x = model_->bottom(dense);
  Tensor ids =
      W == 1 ? sparse.to(DType::i64) : comm_.all_gather(sparse.to(DType::i64).contiguous()).reshape({B, F});
  std::vector<Tensor> slots;
  for (int64_t f = rank_; f < F; f += W) slots.push_back(model_->lookup(f, ids.select(1, f)));
  while (static_cast<int64_t>(slots.size()) < T)
    slots.push_back(zeros({B, D}, {.dtype = x.dtype(), .device = x.device()}));
  Tensor send = stack(slots, 1);  // [B, T, D]: rows in rank order, so chunk j is rank j's rows
  Tensor recv = W == 1 ? send : all_to_all_differentiable(comm_, send);
  Tensor emb = recv.reshape({W, b, T, D}).permute({1, 2, 0, 3}).reshape({b, T * W, D}).narrow(1, 0, F);
  return model_->top(x, emb);
}

void ShardedDlrm::finish_backward() {
  NoGradGuard ng;
  for (auto& [name, t] : model_->named_parameters()) {
    Tensor g = t.grad();
    if (!g.defined()) continue;
    if (name.rfind("emb_l.", 0) == 0) {
      if (world_ > 1) mul_(g, 1.0 / world_);
    } else if (world_ > 1) {
      comm_.all_reduce(g, ReduceOp::avg);
    }
  }
}

}  // namespace nabla::dist
