// Tests of multi_embedding_bag (ops/multi_embedding.h): gradient checks (tables and prefix, sum and mean,
// bags of 1 and 3, repeated ids), values and gradients against one embedding_bag per table on fresh random
// inputs, the sparse SGD against a dense SGD step (untouched rows unchanged), and error messages.
#include "ops/multi_embedding.h"
#include "testing.h"

namespace nabla {
namespace {
using In = const std::vector<Tensor>&;

std::vector<Tensor> first(In in, size_t count) { return {in.begin(), in.begin() + count}; }

// ---- gradient checks ----
NABLA_GRADCHECK(multi_embedding_bag, three_tables_with_prefix_sum) {
  // Tables of 4, 1 and 6 rows, one id per bag (DLRM's case) with repeats; the prefix gets g[:, 0].
  Tensor ids = from_vector({3, 0, 5, 3, 0, 1, 0, 0, 5, 2, 0, 5}, {4, 3}, {.dtype = DType::i64});
  EXPECT_GRADCHECK(
      [ids](In in) { return multi_embedding_bag(first(in, 3), ids, BagMode::sum, in[3]); },
      {test::randn64({4, 3}), test::randn64({1, 3}), test::randn64({6, 3}), test::randn64({4, 3})});
}
NABLA_GRADCHECK(multi_embedding_bag, bags_of_three_mean_i32_ids) {
  Tensor ids = from_vector({1, 1, 0, 2, 4, 2, 0, 0, 0, 3, 1, 4}, {2, 2, 3}, {.dtype = DType::i32});
  EXPECT_GRADCHECK([ids](In in) { return multi_embedding_bag(in, ids, BagMode::mean); },
                   {test::randn64({2, 5}), test::randn64({5, 5})});
}

// ---- values ----
// Each slot equals embedding_bag of its own table; the gradients equal theirs.
TEST(MultiEmbeddingBag, EqualsOneEmbeddingBagPerTableOnRandomInputs) {
  Generator gen{test::next_seed(), 0};
  const int64_t B = 37, D = 12, n = 2;
  const std::vector<int64_t> rows{9, 1, 30, 5};
  const int64_t F = static_cast<int64_t>(rows.size());
  for (BagMode mode : {BagMode::sum, BagMode::mean}) {
    std::vector<Tensor> w, w_ref;
    std::vector<Tensor> id_cols;
    for (int64_t r : rows) {
      w.push_back(randn({r, D}, {.requires_grad = true}, &gen));
      w_ref.push_back(w.back().detach().clone().requires_grad_());
      id_cols.push_back(randint(0, r, {B, 1, n}, {.dtype = DType::i64}, &gen));
    }
    Tensor ids = cat(id_cols, 1);  // [B, F, n]
    Tensor x = randn({B, D}, {.requires_grad = true}, &gen);
    Tensor out = multi_embedding_bag(w, ids, mode, x);
    ASSERT_EQ(out.shape(), Shape({B, F + 1, D}));
    std::vector<Tensor> parts{x.detach().clone().requires_grad_().view({B, 1, D})};
    for (int64_t f = 0; f < F; ++f)
      parts.push_back(embedding_bag(w_ref[f], ids.select(1, f).contiguous(), mode).view({B, 1, D}));
    Tensor ref = cat(parts, 1);
    test::expect_close(out, ref, 1e-6);
    Tensor g = randn({B, F + 1, D}, {}, &gen);
    sum(out * g).backward();
    sum(ref * g).backward();
    for (int64_t f = 0; f < F; ++f) test::expect_close(w[f].grad(), w_ref[f].grad(), 1e-5);
    test::expect_close(x.grad(), g.select(1, 0), 1e-6);
  }
}

// The sparse SGD equals a dense SGD step with the backward's gradient and leaves untouched rows alone, on
// a strided gradient (a slice of a wider buffer, as DLRM passes it).
TEST(MultiEmbeddingBag, SparseSgdEqualsADenseStepOnTouchedRowsOnly) {
  Generator gen{test::next_seed(), 0};
  const int64_t B = 20, D = 6, F = 3;
  const std::vector<int64_t> rows{40, 7, 25};
  std::vector<Tensor> w, wd, id_cols;
  for (int64_t r : rows) {
    w.push_back(randn({r, D}, {}, &gen));
    wd.push_back(w.back().clone().requires_grad_());
    id_cols.push_back(randint(0, std::min<int64_t>(r, 5), {B, 1}, {.dtype = DType::i64}, &gen));  // rows 5..
  }
  Tensor ids = cat(id_cols, 1);
  Tensor wide = randn({B, F + 1, D}, {}, &gen);
  Tensor g = wide.narrow(1, 1, F);  // strided: row stride (F + 1) D
  multi_embedding_bag(wd, ids, BagMode::sum).backward(g.contiguous());
  std::vector<Tensor> ws;
  for (const Tensor& t : w) ws.push_back(t.clone());
  multi_embedding_bag_sparse_sgd_(ws, ids, BagMode::sum, g, 0.3);
  for (int64_t f = 0; f < F; ++f) {
    test::expect_close(ws[f], w[f] - 0.3 * wd[f].grad(), 1e-6);
    if (rows[f] > 5) {
      EXPECT_EQ(ws[f].narrow(0, 5, rows[f] - 5).to_vector<float>(),
                w[f].narrow(0, 5, rows[f] - 5).to_vector<float>());
    }
  }
}

TEST(MultiEmbeddingBagErrors, NameWhatWasExpected) {
  std::vector<Tensor> w{test::randn32({5, 3}), test::randn32({2, 3})};
  auto ids = [](std::vector<double> v, Shape s) { return from_vector(v, s, {.dtype = DType::i64}); };
  // id 2 in table 1 (2 rows), at row 1
  test::expect_error(
      [&] {
        multi_embedding_bag(w, ids({0, 1, 4, 2}, {2, 2}));
      },
      {"multi_embedding_bag", "id 2", "[1,1]", "table 1 of 2 rows"});
  test::expect_error([&] { multi_embedding_bag(w, ids({0, -1}, {1, 2})); }, {"id -1", "table 1"});
  test::expect_error(
      [&] {
        multi_embedding_bag(w, ids({0, 1, 2}, {1, 3}));
      },
      {"ids must be [B, 2]", "[1,3]"});
  test::expect_error(
      [&] {
        multi_embedding_bag({w[0], test::randn32({2, 4})}, ids({0, 1}, {1, 2}));
      },
      {"table 1", "share dtype, width"});
  test::expect_error([&] { multi_embedding_bag({}, ids({0, 1}, {1, 2})); }, {"at least one table"});
  test::expect_error(
      [&] {
        multi_embedding_bag(w, ids({0, 1}, {1, 2}), BagMode::sum, test::randn32({1, 4}));
      },
      {"prefix must be", "[1,3]", "[1,4]"});
  test::expect_error(
      [&] {
        multi_embedding_bag_sparse_sgd_(w, ids({0, 1}, {1, 2}), BagMode::sum, test::randn32({1, 3}), 0.1);
      },
      {"grad must be", "[1,2,3]"});
  test::expect_error(
      [&] {
        multi_embedding_bag_sparse_sgd_(w, ids({0, 1}, {1, 2}), BagMode::sum, test::randn32({1, 2, 3}), NAN);
      },
      {"lr must be finite"});
}

}  // namespace
}  // namespace nabla
