// Tests of the embedding family: gradient checks (repeated indices, padding_idx, empty bags), values and
// backward against naive loops, determinism, the sparse SGD and row-wise Adagrad against dense references,
// and error messages.
#include <omp.h>

#include "testing.h"

namespace nabla {
namespace {
using test::randn64;
using In = const std::vector<Tensor>&;

Tensor ids(const std::vector<double>& v, const Shape& s, DType dt = DType::i64) {
  return from_vector(v, s, {.dtype = dt});
}

// Naive embedding_bag: out[b] = sum (or mean) of W rows over bag b.
std::vector<double> naive_bag(const std::vector<double>& w, int64_t D, const std::vector<int64_t>& idx,
                              const std::vector<int64_t>& off, BagMode mode) {
  const int64_t B = static_cast<int64_t>(off.size()), L = static_cast<int64_t>(idx.size());
  std::vector<double> out(B * D, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    int64_t end = b + 1 < B ? off[b + 1] : L;
    for (int64_t l = off[b]; l < end; ++l)
      for (int64_t c = 0; c < D; ++c) out[b * D + c] += w[idx[l] * D + c];
    if (mode == BagMode::mean && end > off[b])
      for (int64_t c = 0; c < D; ++c) out[b * D + c] /= static_cast<double>(end - off[b]);
  }
  return out;
}

// ---- gradient checks ----
NABLA_GRADCHECK(embedding, repeated_indices_with_padding) {
  // The padding row is still looked up, so finite differences would see it; by design it gets no
  // gradient. Row 0 (the padding row) is therefore a constant here and rows 1..5 are checked.
  // (Embedding.BackwardSumsRepeatedRowsAndSkipsPadding checks that dW[padding_idx] is zero.)
  Tensor pad_row = test::randn64({1, 3}, false), rest = randn64({5, 3});
  Tensor idx = ids({1, 4, 1, 0, 4, 4, 2, 0}, {2, 4});
  EXPECT_GRADCHECK([idx, pad_row](In in) { return embedding(cat({pad_row, in[0]}), idx, 0); }, {rest});
}
NABLA_GRADCHECK(embedding, no_padding_noncontiguous_weight) {
  Tensor w = randn64({3, 5});  // used as [5,3]
  Tensor idx = ids({4, 4, 4, 1, 3}, {5}, DType::i32);
  EXPECT_GRADCHECK([idx](In in) { return embedding(in[0].t(), idx); }, {w});
}
NABLA_GRADCHECK(embedding_bag, sum_with_empty_bags) {
  Tensor w = randn64({5, 3});
  Tensor idx = ids({1, 3, 1, 4, 1, 0, 3}, {7});
  Tensor off = ids({0, 2, 2, 5, 7}, {5});  // bags 1 and 4 (the last) are empty
  EXPECT_GRADCHECK([idx, off](In in) { return embedding_bag(in[0], idx, off, BagMode::sum); }, {w});
}
NABLA_GRADCHECK(embedding_bag, mean_with_empty_bag) {
  Tensor w = randn64({5, 4});
  Tensor idx = ids({2, 2, 0, 4, 2, 1}, {6});
  Tensor off = ids({0, 3, 3}, {3});  // bag 1 is empty; bag 2 runs to L
  EXPECT_GRADCHECK([idx, off](In in) { return embedding_bag(in[0], idx, off, BagMode::mean); }, {w});
}

NABLA_GRADCHECK(embedding_bag, per_sample_weights_weight_and_weights) {
  // Both the table and the per-sample weights get gradients; repeated rows across bags, an empty bag.
  Tensor w = randn64({6, 3}), p = randn64({8});
  Tensor idx = ids({1, 5, 1, 0, 5, 5, 2, 1}, {8});
  Tensor off = ids({0, 3, 3, 6}, {4});
  EXPECT_GRADCHECK([idx, off](In in) { return embedding_bag(in[0], idx, off, BagMode::sum, in[1]); }, {w, p});
}
NABLA_GRADCHECK(embedding_bag, fixed_bags_mean_and_weighted_sum) {
  Tensor w = randn64({7, 4}), p = randn64({15});
  Tensor idx = ids({6, 0, 6, 3, 3, 1, 6, 2, 0, 4, 4, 4, 5, 1, 6}, {5, 3});
  EXPECT_GRADCHECK(
      [idx](In in) {
        return embedding_bag(in[0], idx, BagMode::mean) + embedding_bag(in[0], idx, BagMode::sum, in[1]);
      },
      {w, p});
}

// ---- values ----
// Fresh random bags: sizes 0..4, weights, fixed bags; values and both gradients against loops.
TEST(EmbeddingBag, WeightedAndFixedBagsMatchALoopOnRandomInputs) {
  Generator gen{test::next_seed(), 0};
  const int64_t V = 11, D = 6, B = 9;
  std::vector<double> offv{0};
  Tensor sizes = randint(0, 5, {B}, {.dtype = DType::i64}, &gen);
  auto vs = sizes.to_vector<int64_t>();
  for (int64_t b = 0; b + 1 < B; ++b) offv.push_back(offv.back() + static_cast<double>(vs[b]));
  const int64_t L = static_cast<int64_t>(offv.back()) + vs[B - 1];
  Tensor w = randn({V, D}, {.dtype = DType::f64}, &gen).requires_grad_();
  Tensor p = randn({L}, {.dtype = DType::f64}, &gen).requires_grad_();
  Tensor idx = randint(0, V, {L}, {.dtype = DType::i64}, &gen);
  Tensor off = ids(offv, {B});
  Tensor g = randn({B, D}, {.dtype = DType::f64}, &gen);
  embedding_bag(w, idx, off, BagMode::sum, p).backward(g);
  auto vw = w.to_vector(), vp = p.to_vector(), vg = g.to_vector();
  auto vi = idx.to_vector<int64_t>();
  std::vector<double> out(B * D, 0.0), dw(V * D, 0.0), dp(L, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t end = b + 1 < B ? static_cast<int64_t>(offv[b + 1]) : L;
    for (int64_t l = static_cast<int64_t>(offv[b]); l < end; ++l)
      for (int64_t c = 0; c < D; ++c) {
        out[b * D + c] += vp[l] * vw[vi[l] * D + c];
        dw[vi[l] * D + c] += vp[l] * vg[b * D + c];
        dp[l] += vg[b * D + c] * vw[vi[l] * D + c];
      }
  }
  test::expect_close(embedding_bag(w.detach(), idx, off, BagMode::sum, p.detach()), out, 1e-12);
  test::expect_close(w.grad(), dw, 1e-12);
  test::expect_close(p.grad(), dp, 1e-12);

  // Fixed bags of 3 equal the offsets form with offsets 0, 3, 6, ..
  Tensor idx2 = randint(0, V, {B, 3}, {.dtype = DType::i64}, &gen);
  Tensor off2 = arange(0, 3 * B, 3);
  for (BagMode mode : {BagMode::sum, BagMode::mean})
    test::expect_close(embedding_bag(w.detach(), idx2, mode),
                       embedding_bag(w.detach(), idx2.reshape({3 * B}), off2, mode), 0);
}

// The sparse SGD equals a dense SGD step with the backward's gradient, and leaves untouched rows as they
// were.
TEST(EmbeddingBag, SparseSgdEqualsADenseStepOnTouchedRowsOnly) {
  Generator gen{test::next_seed(), 0};
  const int64_t V = 50, D = 5, B = 12;
  Tensor w = randn({V, D}, {}, &gen);
  Tensor idx = randint(0, 10, {B, 2}, {.dtype = DType::i64}, &gen);  // rows 10.. are never touched
  Tensor g = randn({B, D}, {}, &gen);
  Tensor wd = w.clone().requires_grad_();
  embedding_bag(wd, idx, BagMode::mean).backward(g);
  Tensor expected = w - 0.3 * wd.grad();
  Tensor ws = w.clone();
  embedding_bag_sparse_sgd_(ws, idx, Tensor(), BagMode::mean, g, 0.3);
  test::expect_close(ws, expected, 1e-6);
  EXPECT_EQ(ws.narrow(0, 10, V - 10).to_vector<float>(), w.narrow(0, 10, V - 10).to_vector<float>());
  // With offsets and per-sample weights too.
  Tensor idx1 = idx.reshape({2 * B}), off = arange(0, 2 * B, 2), p = randn({2 * B}, {}, &gen);
  Tensor wd2 = w.clone().requires_grad_();
  embedding_bag(wd2, idx1, off, BagMode::sum, p).backward(g);
  Tensor ws2 = w.clone();
  embedding_bag_sparse_sgd_(ws2, idx1, off, BagMode::sum, g, 0.3, p);
  test::expect_close(ws2, w - 0.3 * wd2.grad(), 1e-6);
}

// Row-wise Adagrad as a dense reference: dW from the backward (duplicates summed), then for every row the
// ids touch: state[v] += mean_c dW[v, c]^2, W[v] -= lr dW[v] / (sqrt(state[v]) + eps); other rows unchanged.
void dense_rowwise_adagrad(std::vector<double>& w, std::vector<double>& state, const std::vector<double>& dw,
                           const std::vector<double>& touched_ids, int64_t D, double lr, double eps) {
  std::vector<bool> touched(state.size(), false);
  for (double v : touched_ids) touched[static_cast<size_t>(v)] = true;
  for (size_t v = 0; v < state.size(); ++v) {
    if (!touched[v]) continue;
    double sq = 0;
    for (int64_t c = 0; c < D; ++c) sq += dw[v * D + c] * dw[v * D + c];
    state[v] += sq / static_cast<double>(D);
    for (int64_t c = 0; c < D; ++c) w[v * D + c] -= lr * dw[v * D + c] / (std::sqrt(state[v]) + eps);
  }
}

// Several steps on fresh random ids (with duplicates: ids drawn from a few rows) equal the dense reference,
// fixed bags (mean) and offsets with per-sample weights (sum), f64 and f32; untouched rows and their
// accumulators never move.
TEST(EmbeddingBag, SparseRowwiseAdagradEqualsADenseReference) {
  Generator gen{test::next_seed(), 0};
  const int64_t V = 40, D = 7, B = 16, touchable = 12;  // rows 12.. are never touched
  const double lr = 0.2, eps = 1e-8;
  for (DType dt : {DType::f64, DType::f32}) {
    for (bool offsets : {false, true}) {
      Tensor w = randn({V, D}, {.dtype = dt}, &gen), state = zeros({V}, {.dtype = dt});
      const Tensor w0 = w.clone();
      std::vector<double> w_ref = w.to_double_vector(), s_ref(V, 0.0);
      for (int step = 0; step < 4; ++step) {
        Tensor idx = randint(0, touchable, {B, 3}, {.dtype = DType::i64}, &gen);
        Tensor g = randn({B, D}, {.dtype = dt}, &gen);
        Tensor wd = from_vector(w_ref, {V, D}, {.dtype = DType::f64}).requires_grad_();
        if (offsets) {
          Tensor idx1 = idx.reshape({3 * B}), off = arange(0, 3 * B, 3),
                 p = randn({3 * B}, {.dtype = dt}, &gen);
          embedding_bag(wd, idx1, off, BagMode::sum, p.to(DType::f64)).backward(g.to(DType::f64));
          embedding_bag_sparse_rowwise_adagrad_(w, state, idx1, off, BagMode::sum, g, lr, eps, p);
        } else {
          embedding_bag(wd, idx, BagMode::mean).backward(g.to(DType::f64));
          embedding_bag_sparse_rowwise_adagrad_(w, state, idx, Tensor(), BagMode::mean, g, lr, eps);
        }
        dense_rowwise_adagrad(w_ref, s_ref, wd.grad().to_double_vector(), idx.to_double_vector(), D, lr, eps);
        const double tol = dt == DType::f64 ? 1e-12 : 2e-5;
        test::expect_close(w, w_ref, tol);
        test::expect_close(state, s_ref, tol);
      }
      EXPECT_EQ(w.narrow(0, touchable, V - touchable).to_double_vector(),
                w0.narrow(0, touchable, V - touchable).to_double_vector());
      for (int64_t v = touchable; v < V; ++v) EXPECT_EQ(state.to_double_vector()[v], 0.0);
    }
  }
}

TEST(EmbeddingBagErrors, SparseRowwiseAdagrad) {
  Tensor w = test::randn32({5, 3}), st = zeros({5}), g = test::randn32({2, 3});
  Tensor bags = ids({0, 4}, {2, 1});
  Tensor bad_state = zeros({4});
  test::expect_error(
      [&] { embedding_bag_sparse_rowwise_adagrad_(w, bad_state, bags, Tensor(), BagMode::sum, g, 0.1); },
      {"rowwise_adagrad", "state must be", "[5]", "[4]"});
  Tensor f64_state = zeros({5}, {.dtype = DType::f64});
  test::expect_error(
      [&] { embedding_bag_sparse_rowwise_adagrad_(w, f64_state, bags, Tensor(), BagMode::sum, g, 0.1); },
      {"state must be a contiguous f32", "f64"});
  test::expect_error(
      [&] { embedding_bag_sparse_rowwise_adagrad_(w, st, bags, Tensor(), BagMode::sum, g, 0.1, -1.0); },
      {"eps must be", "-1"});
  test::expect_error(
      [&] {
        embedding_bag_sparse_rowwise_adagrad_(w, st, bags, Tensor(), BagMode::sum, test::randn32({3, 3}),
                                              0.1);
      },
      {"grad must be", "[2,3]", "[3,3]"});
  test::expect_error(
      [&] {
        embedding_bag_sparse_rowwise_adagrad_(w, st, ids({0, 5}, {2, 1}), Tensor(), BagMode::sum, g, 0.1);
      },
      {"embedding_bag", "5"});
}

TEST(EmbeddingBagErrors, PerSampleWeightsAndFixedBags) {
  Tensor w = test::randn32({5, 3});
  test::expect_error(
      [&] {
        embedding_bag(w, ids({0, 1}, {2}), ids({0}, {1}), BagMode::mean, test::randn32({2}));
      },
      {"per_sample_weights", "sum", "mean"});
  test::expect_error(
      [&] {
        embedding_bag(w, ids({0, 1}, {2}), ids({0}, {1}), BagMode::sum, test::randn32({3}));
      },
      {"per_sample_weights", "[2]", "[3]"});
  test::expect_error(
      [&] {
        embedding_bag(w, ids({0, 1, 2}, {1, 1, 3}), BagMode::sum);
      },
      {"[B, n]", "[1,1,3]"});
  test::expect_error([&] { embedding_bag(w, ids({0, 7}, {2, 1}), BagMode::sum); }, {"7", "5"});
  Tensor t = w.clone();
  test::expect_error(
      [&] {
        embedding_bag_sparse_sgd_(t, ids({0, 1}, {2, 1}), Tensor(), BagMode::sum, test::randn32({3, 3}), 0.1);
      },
      {"grad", "[2,3]", "[3,3]"});
}

TEST(Embedding, LookupMatchesRowsOfTheWeight) {
  Tensor w = test::randn32({7, 4});
  Tensor idx = test::randint64(0, 7, {3, 5});
  Tensor y = embedding(w, idx);
  ASSERT_EQ(y.shape(), (Shape{3, 5, 4}));
  auto vw = w.to_vector(), vy = y.to_vector();
  auto vi = idx.to_vector<int64_t>();
  for (int64_t l = 0; l < 15; ++l)
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(vy[l * 4 + c], vw[vi[l] * 4 + c]);
}

TEST(Embedding, BackwardSumsRepeatedRowsAndSkipsPadding) {
  Tensor w = test::randn64({6, 3});
  Tensor idx = cat({test::randint64(0, 6, {38}), ids({2, 2}, {2})});  // the padding row is hit for sure
  Tensor g = test::randn64({40, 3}, false);
  embedding(w, idx, 2).backward(g);
  std::vector<double> ref(18, 0.0);
  auto vi = idx.to_vector<int64_t>();
  auto vg = g.to_vector();
  for (int64_t l = 0; l < 40; ++l)
    if (vi[l] != 2)
      for (int c = 0; c < 3; ++c) ref[vi[l] * 3 + c] += vg[l * 3 + c];
  test::expect_close(w.grad(), ref, 1e-12);
}

TEST(Embedding, BagMatchesNaiveLoops) {
  Tensor w = test::randn64({9, 5}, false);
  Tensor idx = test::randint64(0, 9, {20});
  Tensor off = ids({0, 0, 4, 11, 11, 19, 20}, {7});  // empty bags first, in the middle and last
  for (BagMode mode : {BagMode::sum, BagMode::mean}) {
    Tensor y = embedding_bag(w, idx, off, mode);
    ASSERT_EQ(y.shape(), (Shape{7, 5}));
    test::expect_close(
        y, naive_bag(w.to_vector(), 5, idx.to_vector<int64_t>(), off.to_vector<int64_t>(), mode), 1e-12);
  }
  // i32 indices and offsets work too.
  test::expect_close(embedding_bag(w, idx.to(DType::i32), off.to(DType::i32), BagMode::sum),
                     embedding_bag(w, idx, off, BagMode::sum), 0);
}

TEST(Embedding, BagBackwardMatchesNaiveLoops) {
  Tensor w = test::randn64({6, 3});
  Tensor idx = ids({5, 1, 5, 5, 0, 1, 3}, {7});
  Tensor off = ids({0, 3, 3, 6}, {4});
  Tensor g = test::randn64({4, 3}, false);
  embedding_bag(w, idx, off, BagMode::mean).backward(g);
  // Bag sizes 3, 0, 3, 1: each index gets g[bag] / |bag|.
  std::vector<int64_t> bag = {0, 0, 0, 2, 2, 2, 3};
  std::vector<double> size = {3, 0, 3, 1};
  auto vi = idx.to_vector<int64_t>();
  auto vg = g.to_vector();
  std::vector<double> ref(18, 0.0);
  for (int l = 0; l < 7; ++l)
    for (int c = 0; c < 3; ++c) ref[vi[l] * 3 + c] += vg[bag[l] * 3 + c] / size[bag[l]];
  test::expect_close(w.grad(), ref, 1e-12);
}

TEST(Embedding, BackwardIsDeterministicAcrossThreadCounts) {
  Tensor w = test::randn32({30, 64});
  Tensor idx = test::randint64(0, 30, {3000});
  Tensor g = test::randn32({3000, 64});
  Tensor off = arange(0, 3000, 10);  // 300 bags of 10
  Tensor gb = test::randn32({300, 64});
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Tensor a = w.detach().requires_grad_(), b = w.detach().requires_grad_();
    embedding(a, idx).backward(g);
    embedding_bag(b, idx, off, BagMode::mean).backward(gb);
    return std::make_pair(a.grad().to_vector<float>(), b.grad().to_vector<float>());
  };
  const int max_threads = omp_get_max_threads();
  auto one = run(1), many = run(std::max(2, max_threads));
  omp_set_num_threads(max_threads);
  EXPECT_EQ(one.first, many.first);
  EXPECT_EQ(one.second, many.second);
}

// ---- errors ----
TEST(EmbeddingErrors, IndicesOutOfRange) {
  test::expect_error(
      [] {
        embedding(test::randn32({5, 3}), ids({0, 5}, {2}));
      },
      {"embedding", "index 5", "size 5", "[5,3]"});
  test::expect_error(
      [] {
        embedding(test::randn32({5, 3}), ids({0, -2}, {1, 2}));
      },
      {"embedding", "index -2", "[0,1]"});
  test::expect_error(
      [] {
        embedding_bag(test::randn32({5, 3}), ids({0, 9}, {2}), ids({0}, {1}));
      },
      {"embedding_bag", "index 9", "size 5"});
}

TEST(EmbeddingErrors, BadOffsets) {
  Tensor w = test::randn32({5, 3});
  Tensor idx = ids({0, 1, 2, 3}, {4});
  test::expect_error(
      [&] {
        embedding_bag(w, idx, ids({1, 2}, {2}));
      },
      {"embedding_bag", "start with 0", "got 1"});
  test::expect_error(
      [&] {
        embedding_bag(w, idx, ids({0, 3, 2}, {3}));
      },
      {"embedding_bag", "non-decreasing", "offsets[2] = 2", "offsets[1] = 3"});
  test::expect_error(
      [&] {
        embedding_bag(w, idx, ids({0, 5}, {2}));
      },
      {"embedding_bag", "offsets[1] = 5", "beyond", "4 indices"});
  test::expect_error([&] { embedding_bag(w, idx, Tensor::empty({0}, DType::i64)); },
                     {"embedding_bag", "start with 0", "empty"});
  test::expect_error(
      [&] {
        embedding_bag(w, idx.reshape({2, 2}), ids({0}, {1}));
      },
      {"embedding_bag", "1-D", "[2,2]"});
}

TEST(EmbeddingErrors, BadWeightAndPadding) {
  test::expect_error([] { embedding(test::randn32({5}), ids({0}, {1})); }, {"embedding", "2-D", "[5]"});
  test::expect_error(
      [] {
        embedding(test::randn32({5, 3}), ids({0}, {1}), 5);
      },
      {"embedding", "padding_idx 5", "[5,3]"});
  test::expect_error(
      [] {
        embedding(test::randn32({5, 3}), from_vector({0}, {1}));
      },
      {"embedding", "i64 or i32", "f32"});
}

}  // namespace
}  // namespace nabla
