// Popularity and BPR matrix factorisation (see baselines.h).
#include "algorithms/recsys/baselines.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "algorithms/optim/optimizer.h"
#include "autograd/autograd.h"
#include "engine/error.h"
#include "engine/random.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/factory.h"
#include "ops/loss.h"
#include "ops/reduce.h"

namespace nabla::recsys {

BprMf::BprMf(int32_t num_users, int32_t num_items, MfOptions options)
    : num_users_(num_users), num_items_(num_items), o_(options) {
  NABLA_CHECK(num_users >= 1 && num_items >= 2, "BprMf: expected >= 1 user and >= 2 items, got ", num_users,
              " users and ", num_items, " items");
  NABLA_CHECK(o_.dim >= 1 && o_.epochs >= 0 && o_.batch_size >= 1,
              "BprMf: expected dim, batch_size >= 1 and "
              "epochs >= 0, got dim ",
              o_.dim, ", batch ", o_.batch_size, ", epochs ", o_.epochs);
  Generator gen{.seed = o_.seed};
  user_factors = normal({num_users + 1, o_.dim}, 0.0, o_.init_std, {}, &gen).requires_grad_();
  item_factors = normal({num_items + 1, o_.dim}, 0.0, o_.init_std, {}, &gen).requires_grad_();
  item_bias = zeros({num_items + 1}).requires_grad_();
}

std::vector<double> BprMf::fit(std::span<const Interaction> train) {
  NABLA_CHECK(!train.empty(), "BprMf::fit: no training interactions");
  std::vector<std::unordered_set<int32_t>> seen(num_users_ + 1);
  for (const Interaction& x : train) {
    NABLA_CHECK(x.user >= 1 && x.user <= num_users_ && x.item >= 1 && x.item <= num_items_,
                "BprMf::fit: pair (", x.user, ", ", x.item, ") outside users [1, ", num_users_,
                "] x items [1, ", num_items_, "]");
    seen[x.user].insert(x.item);
  }
  optim::Adam opt(std::vector<Tensor>{user_factors, item_factors, item_bias},
                  {.lr = o_.lr, .weight_decay = o_.weight_decay});
  const auto n = static_cast<int64_t>(train.size());
  std::vector<int64_t> order(n);
  std::vector<double> epoch_loss;
  for (int64_t e = 0; e < o_.epochs; ++e) {
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    for (int64_t i = n; i > 1; --i)
      std::swap(order[i - 1], order[philox_bits64(o_.seed, static_cast<uint64_t>(e) << 32, i) % i]);
    double loss_sum = 0;
    int64_t batches = 0;
    for (int64_t start = 0; start < n; start += o_.batch_size) {
      const int64_t b = std::min(o_.batch_size, n - start);
      std::vector<double> u(b), pos(b), neg(b);
      for (int64_t k = 0; k < b; ++k) {
        const Interaction& x = train[order[start + k]];
        u[k] = x.user, pos[k] = x.item;
        int32_t j = 0;
        for (uint64_t tries = 0;; ++tries) {  // rejection: a user has seen far fewer items than exist
          j = 1 + static_cast<int32_t>(philox_bits64(o_.seed ^ 0x6270726eull,
                                                     (static_cast<uint64_t>(e) << 40) + tries, start + k) %
                                       static_cast<uint64_t>(num_items_));
          if (!seen[x.user].count(j) || tries > 1000) break;
        }
        neg[k] = j;
      }
      Tensor tu = from_vector(u, {b}, {.dtype = DType::i64}),
             tp = from_vector(pos, {b}, {.dtype = DType::i64}),
             tn = from_vector(neg, {b}, {.dtype = DType::i64});
      Tensor pu = embedding(user_factors, tu);
      Tensor sp =
          sum(pu * embedding(item_factors, tp), {1}) + embedding(item_bias.reshape({-1, 1}), tp).reshape({b});
      Tensor sn =
          sum(pu * embedding(item_factors, tn), {1}) + embedding(item_bias.reshape({-1, 1}), tn).reshape({b});
      Tensor loss = binary_cross_entropy_with_logits(sp - sn, ones({b}));
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item_double();
      ++batches;
    }
    epoch_loss.push_back(loss_sum / static_cast<double>(batches));
  }
  return epoch_loss;
}

std::vector<double> BprMf::scores(int32_t user, std::span<const int32_t> items) const {
  NABLA_CHECK(user >= 1 && user <= num_users_, "BprMf::scores: user ", user, " outside [1, ", num_users_,
              "]");
  NoGradGuard ng;
  Tensor p = user_factors.detach().select(0, user).contiguous();
  Tensor q = item_factors.detach().contiguous(), bias = item_bias.detach().contiguous();
  const float* pd = p.data<float>();
  const float* qd = q.data<float>();
  const float* bd = bias.data<float>();
  std::vector<double> out;
  out.reserve(items.size());
  for (int32_t i : items) {
    NABLA_CHECK(i >= 1 && i <= num_items_, "BprMf::scores: item ", i, " outside [1, ", num_items_, "]");
    double s = bd[i];
    for (int64_t d = 0; d < o_.dim; ++d) s += static_cast<double>(pd[d]) * qd[i * o_.dim + d];
    out.push_back(s);
  }
  return out;
}

std::vector<double> popularity_scores(std::span<const int64_t> counts, std::span<const int32_t> items) {
  std::vector<double> out;
  out.reserve(items.size());
  for (int32_t i : items) {
    NABLA_CHECK(i >= 0 && static_cast<size_t>(i) < counts.size(), "popularity_scores: item ", i,
                " outside [0, ", counts.size(), ")");
    out.push_back(static_cast<double>(counts[i]));
  }
  return out;
}

std::vector<double> genre_scores_from_items(std::span<const double> item_scores,
                                            const std::vector<std::vector<int>>& item_genres,
                                            int num_genres) {
  NABLA_CHECK(item_scores.size() == item_genres.size(), "genre_scores_from_items: ", item_scores.size(),
              " item scores for ", item_genres.size(), " items");
  std::vector<double> sum(num_genres, 0.0), n(num_genres, 0.0);
  for (size_t i = 1; i < item_genres.size(); ++i)
    for (int g : item_genres[i]) {
      NABLA_CHECK(g >= 0 && g < num_genres, "genre_scores_from_items: item ", i, " has genre ", g,
                  " outside [0, ", num_genres, ")");
      sum[g] += item_scores[i], n[g] += 1;
    }
  std::vector<double> out(num_genres);
  for (int g = 0; g < num_genres; ++g)
    out[g] = n[g] > 0 ? sum[g] / n[g] : std::numeric_limits<double>::lowest();
  return out;
}

}  // namespace nabla::recsys
