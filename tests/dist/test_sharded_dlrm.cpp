// Hybrid-parallel DLRM (dist/sharded_embedding.h) against the replicated model: W ranks, each with its share
// of a global batch and 1/W of the tables, train step for step as one whole model on the whole batch: equal
// losses and equal parameters (dense tables, sparse SGD and sparse row-wise Adagrad tables with their
// accumulators; tables placed whole, or the larger ones split by rows), and a sharded model built from the
// same seed starts with the whole model's parameters. Under mpirun with 2 and 4 processes (CPU, MPI); in a
// single process the same code runs with W = 1. On GPUs with NCCL the same test runs on cuda.
#include "algorithms/optim/optimizer.h"
#include "dist/dist_test.h"
#include "dist/sharded_embedding.h"
#include "ops/loss.h"
#include "testing.h"

namespace nabla {
namespace {

// row_wise_min_rows: tables of at least that many rows are split by rows over the ranks (0: none).
// adagrad (sparse tables): row-wise Adagrad instead of sparse SGD. from_seed: the sharded model is built
// after the same manual_seed as the whole one (its own initialisation) instead of load_from(whole).
void run_equivalence(Device dev, bool sparse, int64_t row_wise_min_rows = 0, bool adagrad = false,
                     bool from_seed = false) {
  dist::Communicator& comm = dist_test::comm();
  const int W = comm.world_size(), r = comm.rank();
  std::vector<int64_t> sizes{13, 7, 29, 5, 17, 11, 3};  // 7 tables: uneven over 2 and 4 ranks
  models::DlrmConfig c = models::DlrmConfig::tiny(sizes);
  c.sparse_embeddings = sparse;
  if (adagrad) c.sparse_optimizer = models::DlrmSparseOptimizer::rowwise_adagrad;
  manual_seed(21);  // the same whole model on every rank
  models::Dlrm whole(c);
  whole.to(dev);
  const Generator after_whole = default_generator();
  dist::ShardingOptions so;
  if (row_wise_min_rows > 0) so.row_wise_min_rows = row_wise_min_rows;
  if (from_seed) manual_seed(21);
  dist::ShardedDlrm sharded(c, comm, so);
  if (from_seed) {
    EXPECT_EQ(default_generator().offset, after_whole.offset);  // left where the whole model leaves it
  }
  int64_t row_wise = 0;
  for (int64_t f = 0; f < 7; ++f) row_wise += sharded.row_wise(f);
  if (row_wise_min_rows > 0) {
    EXPECT_GE(row_wise, 3);
  }
  sharded.model().to(dev);
  if (!from_seed) sharded.load_from(whole);

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
    EXPECT_NEAR(mean_loss.item(), lw.item(), 1e-5) << "step " << step << " row_wise " << row_wise_min_rows;
  }
  auto mine = sharded.model().state_dict(), ref = whole.state_dict();
  ASSERT_EQ(mine.size(), ref.size());
  int checked_tables = 0;
  int checked_row_parts = 0, checked_states = 0;
  double largest_state = 0;
  for (size_t i = 0; i < mine.size(); ++i) {
    const std::string& name = mine[i].first;
    const bool state = name.rfind("emb_adagrad.", 0) == 0;
    if (state) {
      ++checked_states;
      largest_state = std::max(largest_state, amax(mine[i].second.to(Device::cpu())).item());
    }
    if (name.rfind("emb_l.", 0) == 0 || state) {  // this rank's rows of a row-wise table (or accumulators)
      const int64_t f = std::stoll(name.substr(name.find('.') + 1));
      if (sharded.row_wise(f)) {
        const int64_t lo = sharded.row_begin(f), n = sharded.row_end(f) - lo;
        if (n > 0)
          test::expect_close(mine[i].second.to(Device::cpu()),
                             ref[i].second.narrow(0, lo, n).to(Device::cpu()), 2e-5);
        checked_row_parts += !state;
        continue;
      }
    }
    if (mine[i].second.shape() != ref[i].second.shape()) continue;  // a table of another rank
    if (name.rfind("emb_l.", 0) == 0) ++checked_tables;
    test::expect_close(mine[i].second.to(Device::cpu()), ref[i].second.to(Device::cpu()), 2e-5);
  }
  int64_t owned = 0;
  for (int64_t f = 0; f < 7; ++f) owned += sharded.owns(f);
  EXPECT_GE(checked_tables, owned);
  EXPECT_EQ(checked_row_parts, row_wise);
  EXPECT_EQ(checked_states, adagrad ? 7 : 0);
  if (adagrad) {
    EXPECT_GT(largest_state, 0.0);  // the accumulators moved (and equal the replicated ones above)
  }
}

TEST(ShardedDlrm, EqualsTheReplicatedModelOnCpu) {
  if (dist_test::comm().world_size() > 1) SKIP_WITHOUT_CPU_COLLECTIVES();
  run_equivalence(Device::cpu(), false);
  run_equivalence(Device::cpu(), true);
}

// Tables of 12 rows or more (13, 29, 17) split by rows over the ranks, the others table-wise: still equal.
TEST(ShardedDlrm, RowWiseTablesEqualTheReplicatedModelOnCpu) {
  if (dist_test::comm().world_size() > 1) SKIP_WITHOUT_CPU_COLLECTIVES();
  run_equivalence(Device::cpu(), false, 12);
  run_equivalence(Device::cpu(), true, 12);
}

// Sparse tables under row-wise Adagrad, placed whole and split by rows: the tables and their accumulators
// (each rank's rows) equal the replicated model's after 3 steps.
TEST(ShardedDlrm, RowwiseAdagradEqualsTheReplicatedModelOnCpu) {
  if (dist_test::comm().world_size() > 1) SKIP_WITHOUT_CPU_COLLECTIVES();
  run_equivalence(Device::cpu(), true, 0, /*adagrad=*/true);
  run_equivalence(Device::cpu(), true, 12, /*adagrad=*/true);
}

// Built from the same seed (no load_from): the same start, hence the same training, row-wise tables too.
TEST(ShardedDlrm, InitialisesAsTheWholeModelFromTheSameSeed) {
  if (dist_test::comm().world_size() > 1) SKIP_WITHOUT_CPU_COLLECTIVES();
  run_equivalence(Device::cpu(), false, 0, false, /*from_seed=*/true);
  run_equivalence(Device::cpu(), true, 12, true, /*from_seed=*/true);
}

TEST(ShardedDlrm, EqualsTheReplicatedModelOnCuda) {
  SKIP_WITHOUT_GPU_COLLECTIVES();
  run_equivalence(dist_test::gpu(), false);
  run_equivalence(dist_test::gpu(), true);
  run_equivalence(dist_test::gpu(), false, 12);
  run_equivalence(dist_test::gpu(), true, 12);
  run_equivalence(dist_test::gpu(), true, 0, true);
  run_equivalence(dist_test::gpu(), true, 12, true);
}

}  // namespace
}  // namespace nabla
