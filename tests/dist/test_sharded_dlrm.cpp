// Hybrid-parallel DLRM (dist/sharded_embedding.h) against the replicated model: W ranks, each with its share
// of a global batch and 1/W of the tables, train step for step as one whole model on the whole batch: equal
// losses and equal parameters (dense and sparse tables, SGD). Under mpirun with 2 and 4 processes (CPU,
// MPI); in a single process the same code runs with W = 1. On GPUs with NCCL the same test runs on cuda.
#include "algorithms/optim/optimizer.h"
#include "dist/dist_test.h"
#include "dist/sharded_embedding.h"
#include "ops/loss.h"
#include "testing.h"

namespace nabla {
namespace {

void run_equivalence(Device dev, bool sparse) {
  dist::Communicator& comm = dist_test::comm();
  const int W = comm.world_size(), r = comm.rank();
  std::vector<int64_t> sizes{13, 7, 29, 5, 17, 11, 3};  // 7 tables: uneven over 2 and 4 ranks
  models::DlrmConfig c = models::DlrmConfig::tiny(sizes);
  c.sparse_embeddings = sparse;
  manual_seed(21);  // the same whole model on every rank
  models::Dlrm whole(c);
  whole.to(dev);
  dist::ShardedDlrm sharded(c, comm);
  sharded.model().to(dev);
  sharded.load_from(whole);

  const int64_t b = 6, B = b * W;
  std::vector<Tensor> whole_params;
  for (auto& [n, t] : (sparse ? whole.dense_parameters() : whole.named_parameters()))
    whole_params.push_back(t);
  optim::Sgd opt_whole(whole_params, {.lr = 0.3});
  optim::Sgd opt_sharded(sharded.parameters(), {.lr = 0.3});
  whole.set_sparse_lr(0.3);
  sharded.set_sparse_lr(0.3);
  Generator gen{1234, 0};  // the same global batches on every rank
  for (int step = 0; step < 3; ++step) {
    Tensor dense = randn({B, 13}, {}, &gen), y = randint(0, 2, {B}, {}, &gen);
    std::vector<Tensor> cols;
    for (int64_t s : sizes) cols.push_back(randint(0, s, {B, 1}, {.dtype = DType::i64}, &gen));
    Tensor ids = cat(cols, 1);
    // whole model, whole batch
    opt_whole.zero_grad();
    Tensor lw = binary_cross_entropy_with_logits(whole.forward(dense.to(dev), ids.to(dev)), y.to(dev));
    lw.backward();
    opt_whole.step();
    // sharded: this rank's rows
    opt_sharded.zero_grad();
    Tensor ls = binary_cross_entropy_with_logits(
        sharded.forward(dense.narrow(0, r * b, b).to(dev), ids.narrow(0, r * b, b).to(dev)),
        y.narrow(0, r * b, b).to(dev));
    ls.backward();
    sharded.finish_backward();
    opt_sharded.step();
    Tensor mean_loss = ls.detach().to(Device::cpu()).reshape({1}).contiguous();
    comm.all_reduce(mean_loss, dist::ReduceOp::avg);
    EXPECT_NEAR(mean_loss.item(), lw.item(), 1e-5) << "step " << step;
  }
  auto mine = sharded.model().state_dict(), ref = whole.state_dict();
  ASSERT_EQ(mine.size(), ref.size());
  int checked_tables = 0;
  for (size_t i = 0; i < mine.size(); ++i) {
    if (mine[i].second.shape() != ref[i].second.shape()) continue;  // a table of another rank
    if (mine[i].first.rfind("emb_l.", 0) == 0) ++checked_tables;
    test::expect_close(mine[i].second.to(Device::cpu()), ref[i].second.to(Device::cpu()), 2e-5);
  }
  int64_t owned = 0;
  for (int64_t f = 0; f < 7; ++f) owned += sharded.owns(f);
  EXPECT_GE(checked_tables, owned);
}

TEST(ShardedDlrm, EqualsTheReplicatedModelOnCpu) {
  if (dist_test::comm().world_size() > 1) SKIP_WITHOUT_CPU_COLLECTIVES();
  run_equivalence(Device::cpu(), false);
  run_equivalence(Device::cpu(), true);
}

TEST(ShardedDlrm, EqualsTheReplicatedModelOnCuda) {
  SKIP_WITHOUT_GPU_COLLECTIVES();
  run_equivalence(dist_test::gpu(), false);
  run_equivalence(dist_test::gpu(), true);
}

}  // namespace
}  // namespace nabla
