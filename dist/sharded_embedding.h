// Hybrid-parallel DLRM (the DLRM paper's section 4, TorchRec's table-wise sharding): the embedding tables are
// model-parallel, each on one rank, and the MLPs data-parallel.
//
// Rank r of W owns the tables f with f mod W == r (table-wise, round robin) and holds them in full; the other
// tables are 1-row placeholders that are never read (so memory per rank is about 1/W of the tables). Every
// rank has the whole bottom and top MLP. One step on a global batch of B = W b rows, rank r holding rows
// r b .. (r+1) b - 1:
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
// over its b rows, so the owner's table gradient is W times that of the global mean: finish_backward()
// divides the table gradients by W (the sparse SGD gets lr / W) and all-reduces (averages) the dense
// gradients. After that the optimizer steps on every rank's parameters alike, and training equals the
// replicated model on the global batch (tests/dist/test_sharded_dlrm.cpp, with MPI processes on the CPU, NCCL
// on GPUs).
#pragma once
#include <memory>
#include <vector>

#include "dist/communicator.h"
#include "models/dlrm.h"

namespace nabla::dist {

// Differentiable all_to_all of a [W k, ...] tensor (backward: all_to_all of the gradient).
Tensor all_to_all_differentiable(Communicator& comm, const Tensor& t);

class ShardedDlrm {
 public:
  // `config` is the whole model's; this rank builds its owned tables and 1-row placeholders for the rest.
  ShardedDlrm(const models::DlrmConfig& config, Communicator& comm);

  // Copies the dense parameters and this rank's tables from a whole model (same config).
  void load_from(const models::Dlrm& whole);

  // dense [b, num_dense], sparse [b, F] (this rank's rows; b equal on every rank) -> logits [b].
  Tensor forward(const Tensor& dense, const Tensor& sparse);
  // After loss.backward(): table gradients / W, dense gradients averaged over the ranks.
  void finish_backward();
  // Sparse tables: the next backward's SGD learning rate (divided by W inside).
  void set_sparse_lr(double lr);

  bool owns(int64_t table) const { return table % world_ == rank_; }
  models::Dlrm& model() { return *model_; }
  // What an optimizer updates on this rank: the dense parameters and the owned tables (dense tables only).
  std::vector<Tensor> parameters() const;

 private:
  Communicator& comm_;
  int rank_, world_;
  models::DlrmConfig config_;
  std::shared_ptr<models::Dlrm> model_;
};

}  // namespace nabla::dist
