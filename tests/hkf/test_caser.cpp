// Caser (algorithms/recsys/caser.h): its training windows on hand-made sequences, the shapes of its
// forward, a finite-difference gradient check of its scoring in f64 on tiny sizes, and a planted sequential
// pattern that it must learn and popularity cannot.
#include <algorithm>
#include <numeric>
#include <random>

#include "algorithms/recsys/baselines.h"
#include "algorithms/recsys/caser.h"
#include "algorithms/recsys/ranking.h"
#include "testing.h"

namespace nabla::test {
namespace {

using Windows = std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>>;

// The paper's form: conv2d over the [1, L, d] image with kernels [h, d] (relu, max over time) and [L, 1].
Tensor conv2d_reference(const recsys::CaserWeights& w, const Tensor& seq, const Tensor& users) {
  const int64_t b = seq.size(0), l = seq.size(1), d = w.item_emb.size(1);
  Tensor e = embedding(w.item_emb, seq).reshape({b, 1, l, d});
  std::vector<Tensor> parts{conv2d(e, w.conv_v_w, w.conv_v_b).reshape({b, -1})};
  for (int64_t h = 1; h <= l; ++h)
    parts.push_back(amax(relu(conv2d(e, w.conv_h_w[h - 1], w.conv_h_b[h - 1])), {2, 3}));
  Tensor z = relu(linear(cat(parts, 1), w.fc_w, w.fc_b));
  return cat({z, embedding(w.user_emb, users)}, 1);
}

TEST(Caser, SlidingWindowsOfLPlusTLeftPadded) {
  const std::vector<int32_t> seq{1, 2, 3, 4, 5, 6};
  EXPECT_EQ(recsys::Caser::windows(seq, 3, 2),
            (Windows{{{2, 3, 4}, {5, 6}}, {{1, 2, 3}, {4, 5}}}));  // the most recent first
  const std::vector<int32_t> short_seq{7, 8};
  EXPECT_EQ(recsys::Caser::windows(short_seq, 3, 1), (Windows{{{0, 0, 7}, {8}}}));
  const std::vector<int32_t> one{9};
  EXPECT_EQ(recsys::Caser::windows(one, 2, 2), (Windows{{{0, 0}, {0, 9}}}));  // a padded target
  EXPECT_TRUE(recsys::Caser::windows(std::vector<int32_t>{}, 3, 1).empty());
}

TEST(Caser, ForwardShapesAndScoresOfAFreshModel) {
  std::mt19937_64 rng(next_seed());
  const int32_t users = 5, items = 12;
  const int64_t L = 4, d = 6;
  recsys::Caser m(users, items, {.L = L, .T = 2, .dim = d, .nh = 3, .nv = 2, .seed = rng()});
  const auto& w = m.weights;
  ASSERT_EQ(w.conv_h_w.size(), static_cast<size_t>(L));
  for (int64_t h = 1; h <= L; ++h) EXPECT_EQ(w.conv_h_w[h - 1].shape(), (Shape{3, 1, h, d}));
  EXPECT_EQ(w.conv_v_w.shape(), (Shape{2, 1, L, 1}));
  EXPECT_EQ(w.fc_w.shape(), (Shape{d, 3 * L + 2 * d}));
  EXPECT_EQ(w.out_w.shape(), (Shape{items + 1, 2 * d}));
  const int64_t b = 3, k = 5;
  std::vector<double> seq, us, it;
  for (int64_t i = 0; i < b * L; ++i) seq.push_back(static_cast<double>(rng() % (items + 1)));
  for (int64_t i = 0; i < b; ++i) us.push_back(static_cast<double>(1 + rng() % users));
  for (int64_t i = 0; i < b * k; ++i) it.push_back(static_cast<double>(1 + rng() % items));
  Tensor rep = recsys::caser_represent(w, from_vector(seq, {b, L}, {.dtype = DType::i64}),
                                       from_vector(us, {b}, {.dtype = DType::i64}), 0.5, false);
  EXPECT_EQ(rep.shape(), (Shape{b, 2 * d}));
  const auto conv = conv2d_reference(w, from_vector(seq, {b, L}, {.dtype = DType::i64}),
                                     from_vector(us, {b}, {.dtype = DType::i64}))
                        .to_double_vector();
  const auto fast = rep.to_double_vector();
  ASSERT_EQ(conv.size(), fast.size());
  for (size_t i = 0; i < conv.size(); ++i) EXPECT_NEAR(fast[i], conv[i], 1e-5) << i;
  // The second half is the user embedding itself.
  const auto r = rep.to_double_vector();
  const auto p = w.user_emb.detach().to_double_vector();
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < d; ++j)
      EXPECT_DOUBLE_EQ(r[i * 2 * d + d + j], p[static_cast<int64_t>(us[i]) * d + j]);
  Tensor s = recsys::caser_item_scores(w, rep, from_vector(it, {b, k}, {.dtype = DType::i64}));
  EXPECT_EQ(s.shape(), (Shape{b, k}));
  // scores() is the same computation for one user (its window: the history's last L items, left-padded).
  const std::vector<int32_t> hist{3, 5};
  const std::vector<int32_t> cand{1, 7, 12};
  const auto one = m.scores(2, hist, cand);
  Tensor rep1 = recsys::caser_represent(w, from_vector({0, 0, 3, 5}, {1, L}, {.dtype = DType::i64}),
                                        from_vector({2}, {1}, {.dtype = DType::i64}), 0.5, false);
  const auto ref = recsys::caser_item_scores(w, rep1, from_vector({1, 7, 12}, {1, 3}, {.dtype = DType::i64}))
                       .to_double_vector();
  ASSERT_EQ(one.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(one[i], ref[i], 1e-6);
  // Bad inputs are named.
  EXPECT_THROW(m.scores(users + 1, hist, cand), Error);
  EXPECT_THROW(m.scores(1, hist, std::vector<int32_t>{items + 1}), Error);
  EXPECT_THROW(recsys::Caser(users, items, {.L = 0}), Error);
}

// d<r, scores>/d(every weight) against central differences, in f64, with dropout off.
TEST(Caser, GradientCheckOfTheScoring) {
  std::mt19937_64 rng(next_seed());
  const int32_t users = 3, items = 7;
  const int64_t L = 3, b = 2, k = 3;
  recsys::Caser m(users, items, {.L = L, .dim = 3, .nh = 2, .nv = 2, .seed = rng()});
  std::vector<Tensor> inputs;
  for (const Tensor& t : m.weights.all())
    inputs.push_back(t.detach().to(DType::f64).contiguous().requires_grad_());
  // Distinct items per window, so no two horizontal windows tie in the max-pool (a kink).
  Tensor seq = from_vector({1, 2, 3, 4, 5, 6}, {b, L}, {.dtype = DType::i64});
  Tensor us = from_vector({1, 3}, {b}, {.dtype = DType::i64});
  Tensor it = from_vector({7, 2, 5, 1, 4, 6}, {b, k}, {.dtype = DType::i64});
  auto f = [&](const std::vector<Tensor>& x) {
    recsys::CaserWeights w;
    size_t i = 0;
    w.item_emb = x[i++], w.user_emb = x[i++];
    for (int64_t h = 0; h < L; ++h) w.conv_h_w.push_back(x[i++]);
    for (int64_t h = 0; h < L; ++h) w.conv_h_b.push_back(x[i++]);
    w.conv_v_w = x[i++], w.conv_v_b = x[i++], w.fc_w = x[i++], w.fc_b = x[i++], w.out_w = x[i++];
    w.out_b = x[i++];
    return recsys::caser_item_scores(w, recsys::caser_represent(w, seq, us, 0.0, false), it);
  };
  EXPECT_GRADCHECK(f, inputs, {.atol = 1e-6, .rtol = 1e-5});
}

// Every user walks the catalogue in a cycle (next = previous + 1 mod N) from a random start: the held-out
// item is the one after the last training item. Item popularity is about flat, so it ranks the held-out
// item near chance; Caser must learn the transition.
TEST(Caser, LearnsAPlantedSequentialPatternThatPopularityCannot) {
  std::mt19937_64 rng(next_seed());
  const int32_t users = 60, items = 30;
  std::vector<std::vector<int32_t>> train(users + 1);
  std::vector<int32_t> held(users + 1);
  std::vector<int64_t> counts(items + 1, 0);
  for (int32_t u = 1; u <= users; ++u) {
    int32_t x = 1 + static_cast<int32_t>(rng() % items);
    for (int k = 0; k < 10; ++k) {
      train[u].push_back(x);
      ++counts[x];
      x = x % items + 1;
    }
    held[u] = x;
  }
  recsys::Caser m(users, items,
                  {.L = 3,
                   .T = 1,
                   .dim = 16,
                   .nh = 4,
                   .nv = 2,
                   .dropout = 0.2,
                   .epochs = 40,
                   .batch_size = 64,
                   .lr = 1e-2,
                   .seed = rng()});
  const auto losses = m.fit(train);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  recsys::RankingMetrics caser, pop;
  const int64_t pos0 = 0;
  for (int32_t u = 1; u <= users; ++u) {
    const auto c = recsys::full_candidates(held[u], train[u], items);  // the 20 unseen items
    caser.add(recsys::rank_of_positive(m.scores(u, train[u], c), std::span<const int64_t>(&pos0, 1)));
    pop.add(
        recsys::rank_of_positive(recsys::popularity_scores(counts, c), std::span<const int64_t>(&pos0, 1)));
  }
  const auto mc = caser.mean(), mp = pop.mean();
  EXPECT_GE(mc.hr10, 0.9) << mc.str();
  EXPECT_GT(mc.hr10, mp.hr10 + 0.25) << "Caser " << mc.str() << " popularity " << mp.str();
  EXPECT_GT(mc.ndcg10, mp.ndcg10);
}

}  // namespace
}  // namespace nabla::test
