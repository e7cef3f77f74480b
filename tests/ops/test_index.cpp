// Tests of the index family: gradient checks (repeated indices, broadcast masks, non-contiguous inputs,
// uneven last pieces), values against naive loops, determinism of the add kernels, and error messages.
#include <omp.h>

#include <cstring>

#include "testing.h"

namespace nabla {
namespace {
using test::randn64;
using In = const std::vector<Tensor>&;

Tensor ids(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, {.dtype = DType::i64}); }

// Row-major flat offset of `pos` in `shape`.
int64_t flat(const Shape& shape, const Shape& pos) {
  int64_t o = 0;
  for (size_t d = 0; d < shape.size(); ++d) o = o * shape[d] + pos[d];
  return o;
}

// Calls f(pos) for every position of `shape`, in row-major order.
template <class F>
void for_each_pos(const Shape& shape, F f) {
  Shape pos(shape.size(), 0);
  for (int64_t i = 0, n = numel_of(shape); i < n; ++i) {
    f(pos);
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++pos[d] < shape[d]) break;
      pos[d] = 0;
    }
  }
}

// ---- gradient checks ----
NABLA_GRADCHECK(cat, three_inputs_middle_dim_noncontiguous) {
  // The third input is a [4,2,2] leaf used through transpose(0, 2): a non-contiguous [2,2,4].
  Tensor a = randn64({2, 3, 4}), b = randn64({2, 1, 4}), c = randn64({4, 2, 2});
  EXPECT_GRADCHECK([](In in) { return cat({in[0], in[1], in[2].transpose(0, 2)}, 1); }, {a, b, c});
}
NABLA_GRADCHECK(cat, negative_dim_last) {
  Tensor a = randn64({3, 2}), b = randn64({3, 4});
  EXPECT_GRADCHECK([](In in) { return cat({in[0], in[1]}, -1) * 2.0; }, {a, b});
}
NABLA_GRADCHECK(stack, three_inputs_middle_dim_noncontiguous) {
  Tensor a = randn64({3, 4}), b = randn64({3, 4}), c = randn64({4, 3});
  EXPECT_GRADCHECK([](In in) { return stack({in[0], in[1], in[2].t()}, 1); }, {a, b, c});
}
NABLA_GRADCHECK(split, size_with_smaller_last_piece) {
  // [2,7,3] in pieces of 3 along dim 1: 3, 3, 1. Each piece is scaled differently so a mix-up shows.
  Tensor x = randn64({2, 7, 3});
  EXPECT_GRADCHECK(
      [](In in) {
        auto p = split(in[0], 3, 1);
        EXPECT_EQ(p.size(), 3u);
        EXPECT_EQ(p[2].shape(), (Shape{2, 1, 3}));
        return cat({p[0].reshape({-1}) * 1.0, p[1].reshape({-1}) * -2.0, p[2].reshape({-1}) * 3.0});
      },
      {x});
}
NABLA_GRADCHECK(split, last_piece_alone_noncontiguous) {
  Tensor x = randn64({7, 2});
  EXPECT_GRADCHECK([](In in) { return split(in[0].t(), 3, 1)[2] * 5.0; }, {x});
}
NABLA_GRADCHECK(split, sizes_list) {
  Tensor x = randn64({6, 3});
  EXPECT_GRADCHECK(
      [](In in) {
        auto p = split(in[0], std::vector<int64_t>{1, 0, 4, 1}, 0);
        return sum(p[2], {0}) * 2.0 + p[0].reshape({3}) - p[3].reshape({3}) * 3.0;
      },
      {x});
}
NABLA_GRADCHECK(chunk, smaller_last_piece) {
  // 7 in 3 chunks: 3, 3, 1.
  Tensor x = randn64({2, 7});
  EXPECT_GRADCHECK(
      [](In in) {
        auto p = chunk(in[0], 3, 1);
        EXPECT_EQ(p.size(), 3u);
        return cat({p[0] * 2.0, p[1], p[2] * -4.0}, 1);
      },
      {x});
}
NABLA_GRADCHECK(index_select, repeated_indices_dim0) {
  Tensor x = randn64({4, 3});
  Tensor idx = ids({2, 0, 2, 2, 1}, {5});
  EXPECT_GRADCHECK([idx](In in) { return index_select(in[0], 0, idx); }, {x});
}
NABLA_GRADCHECK(index_select, repeated_indices_middle_dim_noncontiguous) {
  Tensor x = randn64({3, 5, 2});  // used as [2,5,3]
  Tensor idx = from_vector({4, 4, 0, 3}, {4}, {.dtype = DType::i32});
  EXPECT_GRADCHECK([idx](In in) { return index_select(in[0].transpose(0, 2), 1, idx); }, {x});
}
NABLA_GRADCHECK(gather, dim0_repeated) {
  Tensor x = randn64({3, 4});
  Tensor idx = ids({2, 2, 0, 1, 2, 0, 0, 1, 1, 1, 2, 2}, {4, 3});  // more rows than x, fewer columns
  EXPECT_GRADCHECK([idx](In in) { return gather(in[0], 0, idx); }, {x});
}
NABLA_GRADCHECK(gather, dim1_repeated_noncontiguous) {
  Tensor x = randn64({4, 3});  // used as [3,4]
  Tensor idx = ids({3, 3, 3, 0, 1, 0, 2, 1, 2, 2}, {2, 5});
  EXPECT_GRADCHECK([idx](In in) { return gather(in[0].t(), 1, idx); }, {x});
}
NABLA_GRADCHECK(scatter_add, dim0_repeated) {
  Tensor x = randn64({3, 4}), src = randn64({5, 4});
  Tensor idx = ids({0, 2, 2, 1, 2, 2, 0, 1, 0, 0, 0, 1, 1, 1, 2, 0}, {4, 4});  // src row 4 is unused
  EXPECT_GRADCHECK([idx](In in) { return scatter_add(in[0], 0, idx, in[1]); }, {x, src});
}
NABLA_GRADCHECK(scatter_add, dim1_repeated_src_larger_noncontiguous) {
  Tensor x = randn64({2, 3}), src = randn64({5, 3});  // src used as [3,5]
  Tensor idx = ids({1, 1, 0, 1, 2, 2, 2, 2}, {2, 4});
  EXPECT_GRADCHECK([idx](In in) { return scatter_add(in[0], 1, idx, in[1].t()); }, {x, src});
}
NABLA_GRADCHECK(masked_fill, broadcast_mask) {
  Tensor x = randn64({2, 3, 4});
  Tensor mask = gt(test::randn64({3, 1}, false), scalar_like(0.0, x));
  Tensor m = from_vector({1, 0, 1}, {3, 1}, {.dtype = DType::b8});  // both values present
  EXPECT_GRADCHECK([m](In in) { return masked_fill(in[0], m, 7.0) * in[0]; }, {x});
  EXPECT_GRADCHECK(
      [mask](In in) {
        return masked_fill(in[0].transpose(0, 1), mask.reshape({3, 1, 1}), -1.0);
      },
      {x});
}

// ---- values ----
TEST(Index, CatMatchesNaiveLoopsAlongEveryDim) {
  for (int64_t d = 0; d < 3; ++d) {
    Shape sa{2, 3, 4}, sb{2, 3, 4};
    sb[d] = 2;
    Tensor a = test::randn32(sa), b = test::randn32({sb[2], sb[1], sb[0]}).permute({2, 1, 0});
    Tensor y = cat({a, b}, d);
    Shape sy = sa;
    sy[d] += 2;
    ASSERT_EQ(y.shape(), sy);
    auto va = a.to_vector(), vb = b.to_vector(), vy = y.to_vector();
    for_each_pos(sy, [&](const Shape& p) {
      double want;
      if (p[d] < sa[d]) {
        want = va[flat(sa, p)];
      } else {
        Shape q = p;
        q[d] -= sa[d];
        want = vb[flat(sb, q)];
      }
      EXPECT_EQ(vy[flat(sy, p)], want);
    });
  }
}

TEST(Index, CatOfIntegersAndEmptyPieces) {
  Tensor a = arange(6).reshape({2, 3}), e = Tensor::empty({2, 0}, DType::i64), b = arange(2).reshape({2, 1});
  test::expect_close(cat({a, e, b}, 1), {0, 1, 2, 0, 3, 4, 5, 1});
}

TEST(Index, StackAddsADim) {
  Tensor a = test::randn32({2, 3}), b = test::randn32({2, 3});
  Tensor y = stack({a, b}, 1);
  ASSERT_EQ(y.shape(), (Shape{2, 2, 3}));
  test::expect_close(y.select(1, 0), a, 0);
  test::expect_close(y.select(1, 1), b, 0);
  EXPECT_EQ(stack({a, b}, -1).shape(), (Shape{2, 3, 2}));
}

TEST(Index, SplitAndChunkAreViewsWithPyTorchSizes) {
  Tensor x = arange(12).reshape({2, 6});
  auto p = chunk(x, 4, 1);  // ceil(6/4) = 2: three pieces, as in PyTorch
  ASSERT_EQ(p.size(), 3u);
  for (auto& t : p) EXPECT_EQ(t.shape(), (Shape{2, 2}));
  EXPECT_EQ(p[1].storage(), x.storage());
  test::expect_close(p[2], {4, 5, 10, 11});
  auto q = split(x, 4, 1);
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[1].shape(), (Shape{2, 2}));
  auto r = split(x, std::vector<int64_t>{1, 1}, 0);
  test::expect_close(r[1], {6, 7, 8, 9, 10, 11});
  EXPECT_EQ(chunk(x, 6, 1).size(), 6u);
  EXPECT_EQ(chunk(x, 5, 0).size(), 2u);
}

TEST(Index, IndexSelectMatchesNaiveLoop) {
  Tensor x = test::randn32({3, 5, 4});
  Tensor idx = test::randint64(0, 5, {7});
  Tensor y = index_select(x, 1, idx);
  ASSERT_EQ(y.shape(), (Shape{3, 7, 4}));
  auto vx = x.to_vector(), vy = y.to_vector();
  auto vi = idx.to_vector<int64_t>();
  for_each_pos({3, 7, 4}, [&](const Shape& p) {
    EXPECT_EQ(vy[flat({3, 7, 4}, p)], vx[flat({3, 5, 4}, {p[0], vi[p[1]], p[2]})]);
  });
  // Integer data and a 0-d index.
  test::expect_close(index_select(arange(10).reshape({5, 2}), 0, ids({3}, {})), {6, 7});
}

TEST(Index, IndexSelectBackwardAddsRepeatedRows) {
  Tensor x = test::randn64({4, 3});
  Tensor idx = ids({1, 1, 3, 1}, {4});
  Tensor g = test::randn64({4, 3}, false);
  index_select(x, 0, idx).backward(g);
  auto vg = g.to_vector(), dx = x.grad().to_vector();
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(dx[0 * 3 + j], 0.0);
    EXPECT_NEAR(dx[1 * 3 + j], vg[0 * 3 + j] + vg[1 * 3 + j] + vg[3 * 3 + j], 1e-12);
    EXPECT_EQ(dx[2 * 3 + j], 0.0);
    EXPECT_EQ(dx[3 * 3 + j], vg[2 * 3 + j]);
  }
}

TEST(Index, GatherAndScatterAddMatchNaiveLoops) {
  Shape sx{3, 4, 5}, si{2, 6, 3};
  Tensor x = test::randn32(sx);
  Tensor idx = test::randint64(0, 4, si);
  Tensor y = gather(x, 1, idx);
  ASSERT_EQ(y.shape(), si);
  auto vx = x.to_vector(), vy = y.to_vector();
  auto vi = idx.to_vector<int64_t>();
  for_each_pos(si, [&](const Shape& p) {
    EXPECT_EQ(vy[flat(si, p)], vx[flat(sx, {p[0], vi[flat(si, p)], p[2]})]);
  });

  Tensor src = test::randn32({2, 7, 4});
  Tensor z = scatter_add(x, 1, idx, src);
  std::vector<double> want = vx;
  auto vs = src.to_vector();
  for_each_pos(si, [&](const Shape& p) {
    want[flat(sx, {p[0], vi[flat(si, p)], p[2]})] += vs[flat({2, 7, 4}, p)];
  });
  test::expect_close(z, want, 1e-5);
  // x itself is unchanged.
  test::expect_close(x, vx, 0);
}

TEST(Index, ScatterAddCountsIntegers) {
  Tensor counts = scatter_add(Tensor(zeros({4}, {.dtype = DType::i64})), 0, ids({3, 1, 3, 3, 0}, {5}),
                              ones({5}, {.dtype = DType::i64}));
  test::expect_close(counts, {1, 1, 0, 3});
}

TEST(Index, MaskedFillBroadcastsTheMask) {
  Tensor x = test::randn32({2, 3});
  Tensor m = from_vector({0, 1, 1}, {3}, {.dtype = DType::b8});
  Tensor y = masked_fill(x, m, -5.0);
  auto vx = x.to_vector(), vy = y.to_vector();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(vy[i * 3 + j], j == 0 ? vx[i * 3 + j] : -5.0);
}

TEST(Index, OneHotGivesI64Rows) {
  Tensor y = one_hot(from_vector({2, 0, 1, 2}, {2, 2}, {.dtype = DType::i32}), 3);
  EXPECT_EQ(y.dtype(), DType::i64);
  ASSERT_EQ(y.shape(), (Shape{2, 2, 3}));
  test::expect_close(y, {0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1});
  EXPECT_EQ(one_hot(ids({0, 4}, {2})).shape(), (Shape{2, 5}));
}

TEST(Index, AddKernelsAreDeterministicAcrossThreadCounts) {
  // Many repeated rows, large enough to run in parallel: one thread and all threads give identical bits.
  Tensor x = test::randn32({50, 200});
  Tensor idx = test::randint64(0, 50, {4000});
  Tensor g = test::randn32({4000, 200});
  // gather's backward splits over the 40000 columns (above the parallel grain) and walks the 16 rows.
  Tensor x2 = test::randn32({10, 40000});
  Tensor gi = test::randint64(0, 10, {16, 40000});
  Tensor gg = test::randn32({16, 40000});
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Tensor xs = x.detach().requires_grad_();
    index_select(xs, 0, idx).backward(g);
    Tensor xg = x2.detach().requires_grad_();
    gather(xg, 0, gi).backward(gg);
    return std::make_pair(xs.grad().to_vector<float>(), xg.grad().to_vector<float>());
  };
  const int max_threads = omp_get_max_threads();
  auto one = run(1), many = run(std::max(2, max_threads));
  omp_set_num_threads(max_threads);
  EXPECT_EQ(one.first, many.first);
  EXPECT_EQ(one.second, many.second);
  // And the sums are right (against a double-precision reference for one column).
  auto vi = idx.to_vector<int64_t>();
  auto vg = g.to_vector();
  std::vector<double> ref(50, 0.0);
  for (int64_t i = 0; i < 4000; ++i) ref[vi[i]] += vg[i * 200 + 7];
  for (int r = 0; r < 50; ++r) EXPECT_NEAR(one.first[r * 200 + 7], ref[r], 1e-3);
}

// ---- errors ----
TEST(IndexErrors, CatNamesShapesAndDTypes) {
  test::expect_error(
      [] {
        cat({test::randn32({2, 3}), test::randn32({3, 3})}, 1);
      },
      {"cat", "except along dim 1", "[2,3]", "[3,3]"});
  test::expect_error(
      [] {
        cat({test::randn32({2, 3}), test::randn64({2, 3}, false)});
      },
      {"cat", "f64", "f32"});
  test::expect_error([] { cat({}); }, {"cat", "at least one"});
  test::expect_error([] { cat({test::randn32({2}), test::randn32({2})}, 1); }, {"cat", "dim 1"});
  test::expect_error(
      [] {
        stack({test::randn32({2, 3}), test::randn32({3, 2})});
      },
      {"stack", "[2,3]", "[3,2]"});
}

TEST(IndexErrors, SplitAndChunkSizes) {
  test::expect_error(
      [] {
        split(test::randn32({2, 5}), std::vector<int64_t>{2, 2}, 1);
      },
      {"split", "[2,2]", "sum to 4", "size 5"});
  test::expect_error([] { split(test::randn32({2, 5}), 0, 1); }, {"split", "positive", "got 0"});
  test::expect_error([] { chunk(test::randn32({2, 5}), 0); }, {"chunk", "positive"});
}

TEST(IndexErrors, OutOfRangeIndicesNameOpValueAndSize) {
  test::expect_error(
      [] {
        index_select(test::randn32({4, 3}), 0, ids({1, 4}, {2}));
      },
      {"index_select", "index 4", "dim 0 of size 4", "[4,3]"});
  test::expect_error(
      [] {
        index_select(test::randn32({4, 3}), 1, ids({-1}, {1}));
      },
      {"index_select", "index -1", "dim 1 of size 3"});
  test::expect_error(
      [] {
        gather(test::randn32({2, 3}), 1, ids({0, 1, 2, 7}, {2, 2}));
      },
      {"gather", "index 7", "[1,1]", "size 3"});
  test::expect_error(
      [] {
        scatter_add(test::randn32({2, 3}), 0, ids({0, 2}, {1, 2}), test::randn32({1, 2}));
      },
      {"scatter_add", "index 2", "dim 0 of size 2"});
  test::expect_error([] { one_hot(ids({0, 3}, {2}), 3); }, {"one_hot", "index 3", "num_classes 3"});
  test::expect_error(
      [] {
        index_select(test::randn32({4, 3}), 0, from_vector({0}, {1}));
      },
      {"index_select", "i64 or i32", "f32"});
}

TEST(IndexErrors, ShapeRulesOfGatherAndScatter) {
  test::expect_error(
      [] {
        gather(test::randn32({2, 3}), 0, ids({0, 1}, {2}));
      },
      {"gather", "rank", "[2,3]", "[2]"});
  test::expect_error(
      [] {
        gather(test::randn32({2, 3}), 0, ids({0, 0, 0, 0, 0, 0, 0, 0}, {2, 4}));
      },
      {"gather", "[2,4]", "[2,3]", "dim 1"});
  test::expect_error(
      [] {
        scatter_add(test::randn32({2, 3}), 0, ids({0, 0, 0}, {1, 3}), test::randn32({1, 2}));
      },
      {"scatter_add", "larger than src", "[1,3]", "[1,2]"});
  test::expect_error(
      [] {
        index_select(test::randn32({4, 3}), 0, ids({0, 1}, {1, 2}));
      },
      {"index_select", "1-D", "[1,2]"});
}

TEST(IndexErrors, MaskedFillMask) {
  test::expect_error(
      [] {
        masked_fill(test::randn32({2, 3}), ones({3}, {.dtype = DType::i64}), 0.0);
      },
      {"masked_fill", "bool", "i64"});
  test::expect_error(
      [] {
        masked_fill(test::randn32({2, 3}), ones({2}, {.dtype = DType::b8}), 0.0);
      },
      {"masked_fill", "[2]", "[2,3]"});
}

}  // namespace
}  // namespace nabla
