// Parity cases of multi_embedding_bag (cuda/multi_embedding.cu against ops/cpu/multi_embedding.cpp):
// DLRM's shape (many tables of one id per row, D 128: the float4 path, with the prefix slot), odd widths
// (the scalar path), bags of 3 with mean, i32 ids, more tables than one launch takes (kMaxTables = 64: two
// groups), f64; the sparse SGD on a strided gradient; row-wise Adagrad over three steps (and on 70 tables
// 300 wide); runs thousands long (Kaggle's 3-row tables) in the backward and row-wise Adagrad; and a bad
// id reported at the next synchronisation.
#include <utility>
#include <vector>

#include "ops/multi_embedding.h"
#include "parity.h"

namespace nabla {
namespace {
using test::parity_randn;
using In = const std::vector<Tensor>&;

Tensor rand_ids(int64_t hi, const Shape& s, DType dt = DType::i64) {
  Generator g{test::next_seed(), 0};
  return randint(0, hi, s, {.dtype = dt}, &g);
}
// ids [B, F(, n)] with column f drawn in [0, rows[f]).
Tensor table_ids(const std::vector<int64_t>& rows, int64_t B, int64_t n, DType dt = DType::i64) {
  std::vector<Tensor> cols;
  for (int64_t r : rows) cols.push_back(rand_ids(r, {B, 1, n}, dt));
  Tensor ids = cat(cols, 1);
  return n == 1 ? ids.reshape({B, static_cast<int64_t>(rows.size())}) : ids;
}
std::vector<Tensor> take(In in, size_t count) { return {in.begin(), in.begin() + count}; }
// Row-wise Adagrad (lr 0.05) on copies of the tables in[0 .. rows.size()) with zero accumulators, one step
// per (ids, gradient) pair in order; returns the tables, flattened, then the accumulators.
Tensor rowwise_adagrad_on_copies(In in, const std::vector<int64_t>& rows, BagMode mode,
                                 const std::vector<std::pair<Tensor, Tensor>>& steps) {
  std::vector<Tensor> t, st;
  for (size_t f = 0; f < rows.size(); ++f) {
    t.push_back(in[f].detach().clone());
    st.push_back(zeros({rows[f]}, {.device = in[0].device()}));
  }
  for (const auto& [ids, grad] : steps)
    multi_embedding_bag_sparse_rowwise_adagrad_(t, st, ids, mode, grad, 0.05);
  std::vector<Tensor> parts;
  for (const Tensor& w : t) parts.push_back(w.reshape({-1}));
  for (const Tensor& a : st) parts.push_back(a);
  return cat(parts, 0);
}

NABLA_PARITY(multi_embedding_bag, dlrm_shape_with_prefix) {
  // 26 tables of 1,000 x 128 (repeats: 2,048 draws each), one id per row, the bottom output as slot 0.
  std::vector<int64_t> rows(26, 1000);
  std::vector<Tensor> inputs;
  for (int64_t r : rows) inputs.push_back(parity_randn({r, 128}));
  inputs.push_back(table_ids(rows, 2048, 1));
  inputs.push_back(parity_randn({2048, 128}));
  EXPECT_PARITY([](In in) { return multi_embedding_bag(take(in, 26), in[26], BagMode::sum, in[27]); },
                inputs);
}
NABLA_PARITY(multi_embedding_bag, odd_width_bags_of_three_mean_i32) {
  const std::vector<int64_t> rows{7, 1, 300};
  std::vector<Tensor> inputs;
  for (int64_t r : rows) inputs.push_back(parity_randn({r, 33}));
  inputs.push_back(table_ids(rows, 100, 3, DType::i32));
  EXPECT_PARITY([](In in) { return multi_embedding_bag(take(in, 3), in[3], BagMode::mean); }, inputs);
}
NABLA_PARITY(multi_embedding_bag, seventy_tables_two_launch_groups) {
  std::vector<int64_t> rows;
  for (int64_t f = 0; f < 70; ++f) rows.push_back(1 + (f * 37) % 50);
  std::vector<Tensor> inputs;
  for (int64_t r : rows) inputs.push_back(parity_randn({r, 8}));
  inputs.push_back(table_ids(rows, 64, 2));
  EXPECT_PARITY([](In in) { return multi_embedding_bag(take(in, 70), in[70], BagMode::sum); }, inputs);
}
NABLA_PARITY(multi_embedding_bag, f64_tables) {
  const std::vector<int64_t> rows{20, 3};
  EXPECT_PARITY(
      [](In in) {
        return multi_embedding_bag({in[0].to(DType::f64), in[1].to(DType::f64)}, in[2], BagMode::sum)
            .to(DType::f32);
      },
      {parity_randn({20, 16}), parity_randn({3, 16}), table_ids(rows, 50, 1)});
}
NABLA_PARITY(multi_embedding_bag, sparse_sgd_strided_gradient) {
  // In place on copies of the tables; the gradient is g[:, 1:, :] of a [B, F + 1, D] buffer.
  const std::vector<int64_t> rows{500, 40, 1000};
  EXPECT_PARITY(
      [](In in) {
        std::vector<Tensor> t{in[0].detach().clone(), in[1].detach().clone(), in[2].detach().clone()};
        multi_embedding_bag_sparse_sgd_(t, in[3], BagMode::sum, in[4].detach().narrow(1, 1, 3), 0.25);
        return cat({t[0], t[1], t[2]}, 0);
      },
      {parity_randn({500, 64}, false), parity_randn({40, 64}, false), parity_randn({1000, 64}, false),
       table_ids(rows, 1024, 1), parity_randn({1024, 4, 64}, false)},
      {.atol = 1e-4, .rtol = 1e-4, .check_grads = false});
}

NABLA_PARITY(multi_embedding_bag, sparse_rowwise_adagrad_three_steps) {
  // Three steps of row-wise Adagrad on copies of DLRM-like tables (D 128, one id per row, many repeats) and
  // their accumulators, the gradient g[:, 1:, :] of a [B, F + 1, D] buffer; then 70 tables (two launch
  // groups) of width 300 (beyond the registers' 256 columns), bags of 2 with mean. Tables and accumulators
  // are compared.
  const std::vector<int64_t> rows{500, 40, 1000};
  EXPECT_PARITY(
      [rows](In in) {
        std::vector<std::pair<Tensor, Tensor>> steps;
        for (int k = 0; k < 3; ++k) steps.emplace_back(in[3 + k], in[6 + k].detach().narrow(1, 1, 3));
        return rowwise_adagrad_on_copies(in, rows, BagMode::sum, steps);
      },
      {parity_randn({500, 128}, false), parity_randn({40, 128}, false), parity_randn({1000, 128}, false),
       table_ids(rows, 2048, 1), table_ids(rows, 2048, 1), table_ids({5, 5, 5}, 2048, 1),
       parity_randn({2048, 4, 128}, false), parity_randn({2048, 4, 128}, false),
       parity_randn({2048, 4, 128}, false)},
      {.atol = 1e-4, .rtol = 1e-4, .check_grads = false});
  std::vector<int64_t> many;
  for (int64_t f = 0; f < 70; ++f) many.push_back(1 + (f * 37) % 50);
  std::vector<Tensor> inputs;
  for (int64_t r : many) inputs.push_back(parity_randn({r, 300}, false));
  inputs.push_back(table_ids(many, 64, 2));
  inputs.push_back(parity_randn({64, 70, 300}, false));
  EXPECT_PARITY(
      [many](In in) {
        return rowwise_adagrad_on_copies(in, many, BagMode::mean, {{in[70], in[71].detach()}});
      },
      inputs, {.atol = 1e-4, .rtol = 1e-4, .check_grads = false});
}

NABLA_PARITY(multi_embedding_bag, kaggle_like_long_runs) {
  // Kaggle's smallest tables (3, 4 and 10 rows) next to a larger one at batch 8,192: runs of up to ~2,700
  // equal ids, which one warp's lanes split over positions (D 16: 4 float4 groups, 8 positions at a time;
  // D 12: 3 groups of a 4-lane slot). Values and table gradients, sum and mean.
  const std::vector<int64_t> rows{3, 4, 10, 2000};
  for (int64_t D : {16, 12}) {
    std::vector<Tensor> inputs;
    for (int64_t r : rows) inputs.push_back(parity_randn({r, D}));
    inputs.push_back(table_ids(rows, 8192, 1));
    EXPECT_PARITY([](In in) { return multi_embedding_bag(take(in, 4), in[4], BagMode::sum); }, inputs,
                  {.atol = 2e-3, .rtol = 1e-4});
    // Fresh tables: the CPU inputs keep the gradients of the call above (the GPU copies are new each call).
    for (size_t f = 0; f < rows.size(); ++f) inputs[f] = parity_randn({rows[f], D});
    inputs[4] = table_ids(rows, 1024, 3);
    EXPECT_PARITY([](In in) { return multi_embedding_bag(take(in, 4), in[4], BagMode::mean); }, inputs,
                  {.atol = 2e-3, .rtol = 1e-4});
  }
}
NABLA_PARITY(multi_embedding_bag, rowwise_adagrad_long_runs_narrow_rows) {
  // Row-wise Adagrad where runs are thousands long and rows narrow: D 16 (2 lanes a position, 16 positions
  // at a time), D 40 (8 lanes, 4 positions), D 1 (32 positions); two steps, tables and accumulators.
  const std::vector<int64_t> rows{3, 4, 10, 2000};
  for (int64_t D : {16, 40, 1}) {
    std::vector<Tensor> inputs;
    for (int64_t r : rows) inputs.push_back(parity_randn({r, D}, false));
    inputs.push_back(table_ids(rows, 8192, 1));
    inputs.push_back(table_ids(rows, 8192, 1));
    inputs.push_back(parity_randn({8192, 4, D}, false));
    inputs.push_back(parity_randn({8192, 4, D}, false));
    EXPECT_PARITY(
        [rows](In in) {
          return rowwise_adagrad_on_copies(in, rows, BagMode::sum,
                                           {{in[4], in[6].detach()}, {in[5], in[7].detach()}});
        },
        inputs, {.atol = 1e-3, .rtol = 1e-4, .check_grads = false});
  }
}

TEST(MultiEmbeddingBagCuda, BadIdIsReportedAtTheNextSynchronisationNamingTheTable) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  if (cuda::sync_every_op()) GTEST_SKIP() << "NABLA_SYNC=1 reports at the op itself";
  const Device gpu = Device::cuda(0);
  std::vector<Tensor> w{test::randn32({5, 4}).to(gpu), test::randn32({3, 4}).to(gpu)};
  Tensor bad = from_vector({0, 1, 4, 3}, {2, 2}, {.dtype = DType::i64}).to(gpu);  // 3 is out of table 1
  Tensor y;
  ASSERT_NO_THROW(y = multi_embedding_bag(w, bad, BagMode::sum));  // queued, not waited for
  test::expect_error([&] { (void)y.to(Device::cpu()); },
                     {"multi_embedding_bag", "id 3", "[1,1]", "table 1 of 3 rows"});
  // The sparse SGD skips and reports a bad id too, and leaves the tables' other rows as they were.
  Tensor before = w[1].to(Device::cpu());
  multi_embedding_bag_sparse_sgd_(w, bad, BagMode::sum, test::randn32({2, 2, 4}).to(gpu), 0.5);
  test::expect_error([&] { cuda::synchronize(); }, {"multi_embedding_bag_sparse_sgd_", "id 3"});
  Tensor after = w[1].to(Device::cpu());
  EXPECT_EQ(after.narrow(0, 0, 1).to_vector(), before.narrow(0, 0, 1).to_vector());  // not touched by ids
  EXPECT_EQ(after.narrow(0, 2, 1).to_vector(), before.narrow(0, 2, 1).to_vector());
  // The device stays usable.
  Tensor ok = from_vector({0, 1, 4, 2}, {2, 2}, {.dtype = DType::i64}).to(gpu);
  EXPECT_EQ(multi_embedding_bag(w, ok, BagMode::sum).to(Device::cpu()).shape(), Shape({2, 2, 4}));
}

}  // namespace
}  // namespace nabla
