// Tests of multi_embedding_bag (ops/multi_embedding.h): gradient checks (tables and prefix, sum and mean,
// bags of 1 and 3, repeated ids), values and gradients against one embedding_bag per table on fresh random
// inputs, the sparse SGD against a dense SGD step (untouched rows unchanged), the sparse row-wise Adagrad
// against a dense reference over several steps, and error messages.
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

// Row-wise Adagrad over several steps on fresh random ids (duplicates: ids from a few rows), on a strided
// gradient, equals the dense reference (dW from the backward; touched rows only: state += mean dW^2, W -= lr
// dW / (sqrt(state) + eps)); rows never touched and their accumulators stay as they were. f64 and f32.
TEST(MultiEmbeddingBag, SparseRowwiseAdagradEqualsADenseReference) {
  Generator gen{test::next_seed(), 0};
  const int64_t B = 24, D = 5, F = 3, touchable = 6;
  const std::vector<int64_t> rows{40, 4, 25};
  const double lr = 0.1, eps = 1e-8;
  for (DType dt : {DType::f64, DType::f32}) {
    for (BagMode mode : {BagMode::sum, BagMode::mean}) {
      std::vector<Tensor> w, st, w0;
      std::vector<std::vector<double>> w_ref, s_ref;
      for (int64_t r : rows) {
        w.push_back(randn({r, D}, {.dtype = dt}, &gen));
        w0.push_back(w.back().clone());
        st.push_back(zeros({r}, {.dtype = dt}));
        w_ref.push_back(w.back().to_double_vector());
        s_ref.emplace_back(r, 0.0);
      }
      for (int step = 0; step < 4; ++step) {
        const int64_t n = mode == BagMode::mean ? 2 : 1;
        std::vector<Tensor> id_cols;
        for (int64_t r : rows)
          id_cols.push_back(randint(0, std::min(r, touchable), {B, 1, n}, {.dtype = DType::i64}, &gen));
        Tensor ids = cat(id_cols, 1);  // [B, F, n]
        Tensor wide = randn({B, F + 1, D}, {.dtype = dt}, &gen);
        Tensor g = wide.narrow(1, 1, F);  // strided, as DLRM passes it
        std::vector<Tensor> wd;
        for (int64_t f = 0; f < F; ++f)
          wd.push_back(from_vector(w_ref[f], {rows[f], D}, {.dtype = DType::f64}).requires_grad_());
        multi_embedding_bag(wd, ids, mode).backward(g.contiguous().to(DType::f64));
        multi_embedding_bag_sparse_rowwise_adagrad_(w, st, ids, mode, g, lr, eps);
        const double tol = dt == DType::f64 ? 1e-12 : 2e-5;
        for (int64_t f = 0; f < F; ++f) {
          const int64_t V = rows[f];
          std::vector<bool> touched(V, false);
          Tensor col = ids.select(1, f).contiguous();
          for (double v : col.to_double_vector()) touched[static_cast<size_t>(v)] = true;
          std::vector<double> dw = wd[f].grad().to_double_vector();
          for (int64_t v = 0; v < V; ++v) {
            if (!touched[v]) continue;
            double sq = 0;
            for (int64_t c = 0; c < D; ++c) sq += dw[v * D + c] * dw[v * D + c];
            s_ref[f][v] += sq / static_cast<double>(D);
            for (int64_t c = 0; c < D; ++c)
              w_ref[f][v * D + c] -= lr * dw[v * D + c] / (std::sqrt(s_ref[f][v]) + eps);
          }
          test::expect_close(w[f], w_ref[f], tol);
          test::expect_close(st[f], s_ref[f], tol);
        }
      }
      for (int64_t f = 0; f < F; ++f) {
        if (rows[f] <= touchable) continue;
        EXPECT_EQ(w[f].narrow(0, touchable, rows[f] - touchable).to_double_vector(),
                  w0[f].narrow(0, touchable, rows[f] - touchable).to_double_vector());
        EXPECT_EQ(st[f].narrow(0, touchable, rows[f] - touchable).to_double_vector(),
                  std::vector<double>(rows[f] - touchable, 0.0));
      }
    }
  }
}

TEST(MultiEmbeddingBagErrors, SparseRowwiseAdagrad) {
  std::vector<Tensor> w{test::randn32({5, 3}), test::randn32({2, 3})};
  std::vector<Tensor> st{zeros({5}), zeros({2})};
  Tensor idv = from_vector({0, 1}, {1, 2}, {.dtype = DType::i64});
  Tensor g = test::randn32({1, 2, 3});
  test::expect_error(
      [&] { multi_embedding_bag_sparse_rowwise_adagrad_(w, {st[0]}, idv, BagMode::sum, g, 0.1); },
      {"2 tables but 1 states"});
  test::expect_error(
      [&] {
        multi_embedding_bag_sparse_rowwise_adagrad_(w, {st[0], zeros({3})}, idv, BagMode::sum, g, 0.1);
      },
      {"state 1 must be", "[2]", "[3]"});
  test::expect_error([&] { multi_embedding_bag_sparse_rowwise_adagrad_(w, st, idv, BagMode::sum, g, NAN); },
                     {"lr must be finite"});
  test::expect_error(
      [&] {
        multi_embedding_bag_sparse_rowwise_adagrad_(w, st, from_vector({0, 2}, {1, 2}, {.dtype = DType::i64}),
                                                    BagMode::sum, g, 0.1);
      },
      {"id 2", "table 1 of 2 rows"});
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
