// Parity cases of the embedding family. embedding runs on the index kernels (index_select forward,
// index_add backward with the device radix sort); embedding_bag on cuda/embedding.cu. Cases: repeated
// indices (long runs in the sorted backward), padding_idx (its gradient row stays zero), vocabularies that
// need 1, 2 and 3 radix passes, widths that give 16-, 8- and 4-byte copy units, bf16 lookups, i32 indices;
// bags: sum and mean, empty bags first, in the middle and last, a long bag, all bags empty; the sparse SGD
// and row-wise Adagrad updates (three steps, rows wider than a warp keeps in registers).
#include "parity.h"

namespace nabla {
namespace {
using test::parity_randn;
using In = const std::vector<Tensor>&;

Tensor ids(const std::vector<double>& v, const Shape& s, DType dt = DType::i64) {
  return from_vector(v, s, {.dtype = dt});
}
Tensor rand_ids(int64_t hi, const Shape& s, DType dt = DType::i64) {
  Generator g{test::next_seed(), 0};
  return randint(0, hi, s, {.dtype = dt}, &g);
}

// ---- embedding ----
NABLA_PARITY(embedding, padding_and_repeats) {
  // 2-D indices with repeats and the padding row 3 among them; D = 37 (4-byte units).
  EXPECT_PARITY(
      [](In in) { return embedding(in[0], in[1], 3); },
      {parity_randn({20, 37}), ids({3, 1, 4, 1, 5, 9, 3, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3}, {3, 6})});
}
NABLA_PARITY(embedding, wide_rows_many_tokens) {
  // D = 128 (16-byte units), 4096 tokens over 300 rows (2 radix passes, 16 tiles), padding 0.
  EXPECT_PARITY([](In in) { return embedding(in[0], in[1], 0); },
                {parity_randn({300, 128}), rand_ids(300, {8, 512})});
}
NABLA_PARITY(embedding, large_vocab_i32_indices) {
  // V = 70000 (3 radix passes), D = 6 (8-byte units), i32 indices, no padding.
  EXPECT_PARITY([](In in) { return embedding(in[0], in[1]); },
                {parity_randn({70000, 6}), rand_ids(70000, {3000}, DType::i32)});
}
NABLA_PARITY(embedding, one_row_all_same_index) {
  // A single run of 5000 equal indices (one thread per column sums it) and V = 1 (0 key bits).
  EXPECT_PARITY([](In in) { return embedding(in[0], in[1]); }, {parity_randn({1, 33}), rand_ids(1, {5000})},
                {.atol = 1e-3, .rtol = 1e-4});
}
NABLA_PARITY(embedding, noncontiguous_weight_bf16_lookup) {
  // A transposed weight (made contiguous by the op) with gradient, plus a bf16 lookup (values only: the CPU
  // backward does not take 16-bit floats).
  EXPECT_PARITY(
      [](In in) {
        Tensor w = in[0].t();
        return embedding(w, in[1]) + embedding(w.detach().to(DType::bf16), in[1]).to(DType::f32);
      },
      {parity_randn({9, 11}), rand_ids(11, {4, 5})}, {.atol = 2e-2, .rtol = 1e-2});
}

// ---- embedding_bag ----
NABLA_PARITY(embedding_bag, sum_with_empty_bags) {
  // bags: [0,0) empty first, [0,3), [3,3) empty, [3,7), [7,10) ; repeated indices across bags.
  EXPECT_PARITY([](In in) { return embedding_bag(in[0], in[1], in[2], BagMode::sum); },
                {parity_randn({8, 5}), ids({1, 2, 1, 7, 7, 0, 1, 2, 7, 7}, {10}), ids({0, 0, 3, 3, 7}, {5})});
}
NABLA_PARITY(embedding_bag, mean_with_empty_last_bag) {
  // the last bag is empty (offset == L), mean scaling, D = 33.
  EXPECT_PARITY([](In in) { return embedding_bag(in[0], in[1], in[2], BagMode::mean); },
                {parity_randn({6, 33}), ids({5, 0, 0, 3, 5, 5, 1}, {7}), ids({0, 2, 2, 6, 7}, {5})});
}
NABLA_PARITY(embedding_bag, mean_large_random_bags) {
  // 64 bags over 4000 indices into 1000 rows (2 radix passes), i32 indices and offsets, one long bag.
  EXPECT_PARITY(
      [](In in) {
        Tensor w = in[0];
        return embedding_bag(w, in[1], in[2], BagMode::mean) * 2.0 +
               embedding_bag(w, in[1], in[2], BagMode::sum);
      },
      {parity_randn({1000, 40}), rand_ids(1000, {4000}, DType::i32),
       from_vector(
           [] {
             std::vector<double> off{0};
             for (int b = 1; b < 64; ++b)
               off.push_back(b < 32 ? off.back() + b % 5 : (b == 32 ? 3000 : off.back() + 30));
             return off;
           }(),
           {64}, {.dtype = DType::i32})},
      {.atol = 1e-3, .rtol = 1e-4});
}
NABLA_PARITY(embedding_bag, all_bags_empty) {
  EXPECT_PARITY([](In in) { return embedding_bag(in[0], in[1], in[2], BagMode::mean); },
                {parity_randn({4, 3}), rand_ids(4, {0}), ids({0, 0, 0}, {3})});
}
NABLA_PARITY(embedding_bag, f64_sum) {
  EXPECT_PARITY(
      [](In in) { return embedding_bag(in[0].to(DType::f64), in[1], in[2], BagMode::sum).to(DType::f32); },
      {parity_randn({12, 7}), rand_ids(12, {30}), ids({0, 10, 10, 25}, {4})});
}
NABLA_PARITY(embedding_bag, per_sample_weights_both_gradients) {
  // table and weights both get gradients; 300 indices into 40 rows (long runs), 50 bags of 6.
  EXPECT_PARITY([](In in) { return embedding_bag(in[0], in[1], in[2], BagMode::sum, in[3]); },
                {parity_randn({40, 24}), rand_ids(40, {300}),
                 from_vector(
                     [] {
                       std::vector<double> off;
                       for (int b = 0; b < 50; ++b) off.push_back(6 * b);
                       return off;
                     }(),
                     {50}, {.dtype = DType::i64}),
                 parity_randn({300})},
                {.atol = 1e-4, .rtol = 1e-4});
}
NABLA_PARITY(embedding_bag, fixed_bags_dlrm_shape) {
  // DLRM's lookup: one id per row (n = 1), 2048 rows into 1000 rows of 128; and bags of 4, mean.
  EXPECT_PARITY([](In in) { return embedding_bag(in[0], in[1], BagMode::sum); },
                {parity_randn({1000, 128}), rand_ids(1000, {2048, 1})});
  EXPECT_PARITY([](In in) { return embedding_bag(in[0], in[1], BagMode::mean); },
                {parity_randn({100, 33}), rand_ids(100, {64, 4}, DType::i32)});
}
NABLA_PARITY(embedding_bag, long_runs_narrow_rows) {
  // A table of 3 rows at 8,192 lookups (runs ~2,700 long, split over a warp's lanes) for D 16 and 5, sum and
  // mean bags of 2; then row-wise Adagrad on the same shapes (D 16: 2 lanes a position).
  for (int64_t D : {16, 5}) {
    EXPECT_PARITY([](In in) { return embedding_bag(in[0], in[1], BagMode::sum); },
                  {parity_randn({3, D}), rand_ids(3, {8192, 1})}, {.atol = 2e-3, .rtol = 1e-4});
    EXPECT_PARITY([](In in) { return embedding_bag(in[0], in[1], BagMode::mean); },
                  {parity_randn({3, D}), rand_ids(3, {4096, 2})}, {.atol = 2e-3, .rtol = 1e-4});
    EXPECT_PARITY(
        [](In in) {
          Tensor t = in[0].detach().clone();
          Tensor st = zeros({3}, {.device = in[0].device()});
          embedding_bag_sparse_rowwise_adagrad_(t, st, in[1], Tensor(), BagMode::sum, in[2].detach(), 0.1);
          return cat({t.reshape({-1}), st}, 0);
        },
        {parity_randn({3, D}, false), rand_ids(3, {8192, 1}), parity_randn({8192, D}, false)},
        {.atol = 1e-3, .rtol = 1e-4, .check_grads = false});
  }
}
NABLA_PARITY(embedding_bag, sparse_sgd_update) {
  // In place on a copy of the table: the rows of the batch move by -lr * their gradient, the rest stay.
  EXPECT_PARITY(
      [](In in) {
        Tensor t = in[0].detach().clone();
        embedding_bag_sparse_sgd_(t, in[1], Tensor(), BagMode::sum, in[2].detach(), 0.25);
        return t;
      },
      {parity_randn({500, 64}, false), rand_ids(200, {1024, 1}), parity_randn({1024, 64}, false)},
      {.atol = 1e-4, .rtol = 1e-4, .check_grads = false});
}

NABLA_PARITY(embedding_bag, sparse_rowwise_adagrad_three_steps) {
  // Three steps on one table and its accumulators (zeros on the inputs' device), ids with many repeats, mean
  // bags of 2 with offsets-free fixed bags; then a 300-wide table (wider than the 256 columns a warp keeps in
  // registers) with offsets and per-sample weights. The tables and accumulators are compared.
  EXPECT_PARITY(
      [](In in) {
        Tensor t = in[0].detach().clone();
        Tensor st = zeros({500}, {.device = in[0].device()});
        for (int k = 0; k < 3; ++k)
          embedding_bag_sparse_rowwise_adagrad_(t, st, in[1 + k], Tensor(), BagMode::mean, in[4 + k].detach(),
                                                0.1);
        return cat({t.reshape({-1}), st}, 0);
      },
      {parity_randn({500, 64}, false), rand_ids(100, {1024, 2}), rand_ids(500, {1024, 2}),
       rand_ids(20, {1024, 2}), parity_randn({1024, 64}, false), parity_randn({1024, 64}, false),
       parity_randn({1024, 64}, false)},
      {.atol = 1e-4, .rtol = 1e-4, .check_grads = false});
  EXPECT_PARITY(
      [](In in) {
        Tensor t = in[0].detach().clone();
        Tensor st = zeros({50}, {.device = in[0].device()});
        Tensor off = arange(0, 300, 3, {.dtype = DType::i64, .device = in[0].device()});
        embedding_bag_sparse_rowwise_adagrad_(t, st, in[1], off, BagMode::sum, in[2].detach(), 0.1, 1e-8,
                                              in[3].detach());
        return cat({t.reshape({-1}), st}, 0);
      },
      {parity_randn({50, 300}, false), rand_ids(50, {300}), parity_randn({100, 300}, false),
       parity_randn({300}, false)},
      {.atol = 1e-4, .rtol = 1e-4, .check_grads = false});
}

}  // namespace
}  // namespace nabla
