// Caser: convolutional sequence embedding for next-item recommendation (see caser.h).
#include "algorithms/recsys/caser.h"

#include <algorithm>
#include <cmath>

#include "algorithms/optim/optimizer.h"
#include "autograd/autograd.h"
#include "engine/error.h"
#include "engine/random.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/linalg.h"
#include "ops/loss.h"
#include "ops/nn.h"
#include "ops/reduce.h"

namespace nabla::recsys {

std::vector<Tensor> CaserWeights::all() const {
  std::vector<Tensor> v{item_emb, user_emb};
  v.insert(v.end(), conv_h_w.begin(), conv_h_w.end());
  v.insert(v.end(), conv_h_b.begin(), conv_h_b.end());
  for (const Tensor& t : {conv_v_w, conv_v_b, fc_w, fc_b, out_w, out_b}) v.push_back(t);
  return v;
}

Tensor caser_represent(const CaserWeights& w, const Tensor& seq, const Tensor& users, double dropout,
                       bool training, Generator* gen) {
  NABLA_CHECK(seq.dim() == 2 && users.dim() == 1 && users.size(0) == seq.size(0),
              "caser_represent: expected seq [B, L] and users [B], got ", seq.shape(), " and ",
              users.shape());
  const int64_t b = seq.size(0), l = seq.size(1), d = w.item_emb.size(1);
  NABLA_CHECK(static_cast<int64_t>(w.conv_h_w.size()) == l && w.conv_v_w.size(2) == l,
              "caser_represent: the weights are for L = ", w.conv_h_w.size(), ", the sequences have L = ", l);
  // The convolutions as GEMMs over gathered windows (equal to conv2d over the [1, L, d] image; conv2d's
  // per-sample im2col made training ~10x slower on the CPU).
  Tensor e = embedding(w.item_emb, seq);  // [B, L, d]
  std::vector<Tensor> parts;
  // vertical: o~[j] = sum_l w_j[l] E[l] + b_j  -> [B, d, nv] -> [B, nv, d] -> [B, nv d]
  const int64_t nv = w.conv_v_w.size(0);
  parts.push_back(linear(e.transpose(1, 2), w.conv_v_w.reshape({nv, l}), w.conv_v_b)
                      .transpose(1, 2)
                      .reshape({b, nv * d}));
  // horizontal, h = 1..L: windows [B, L - h + 1, h d] -> relu(F x + b) [B, L - h + 1, nh] -> max over time
  for (int64_t h = 1; h <= l; ++h) {
    const Tensor& f = w.conv_h_w[static_cast<size_t>(h - 1)];
    std::vector<double> idx;
    for (int64_t i = 0; i + h <= l; ++i)
      for (int64_t j = 0; j < h; ++j) idx.push_back(static_cast<double>(i + j));
    Tensor win = h == 1 ? e
                        : index_select(e, 1,
                                       from_vector(idx, {static_cast<int64_t>(idx.size())},
                                                   {.dtype = DType::i64, .device = e.device()}))
                              .reshape({b, l - h + 1, h * d});
    parts.push_back(
        amax(linear(win, f.reshape({f.size(0), h * d}), w.conv_h_b[static_cast<size_t>(h - 1)], true), {1}));
  }
  Tensor o = cat(parts, 1);  // [B, nv d + nh L]
  if (training && dropout > 0) o = nabla::dropout(o, dropout, true, gen);
  Tensor z = linear(o, w.fc_w, w.fc_b, /*relu=*/true);  // [B, d]
  return cat({z, embedding(w.user_emb, users)}, 1);     // [B, 2d]
}

Tensor caser_item_scores(const CaserWeights& w, const Tensor& rep, const Tensor& items) {
  NABLA_CHECK(rep.dim() == 2 && items.dim() == 2 && items.size(0) == rep.size(0),
              "caser_item_scores: expected rep [B, 2d] and items [B, K], got ", rep.shape(), " and ",
              items.shape());
  const int64_t b = items.size(0), k = items.size(1);
  Tensor w2 = embedding(w.out_w, items);                                     // [B, K, 2d]
  Tensor b2 = embedding(w.out_b.reshape({-1, 1}), items).reshape({b, k});    // [B, K]
  return matmul(w2, rep.reshape({b, rep.size(1), 1})).reshape({b, k}) + b2;  // [B, K]
}

Caser::Caser(int32_t num_users, int32_t num_items, CaserOptions o)
    : num_users_(num_users), num_items_(num_items), o_(o) {
  NABLA_CHECK(num_users >= 1 && num_items >= 2, "Caser: expected >= 1 user and >= 2 items, got ", num_users,
              " users and ", num_items, " items");
  NABLA_CHECK(o_.L >= 1 && o_.T >= 1 && o_.dim >= 1 && o_.nh >= 1 && o_.nv >= 1 && o_.negatives >= 1 &&
                  o_.epochs >= 0 && o_.batch_size >= 1,
              "Caser: expected L, T, dim, nh, nv, negatives, batch_size >= 1 and epochs >= 0, got L ", o_.L,
              ", T ", o_.T, ", dim ", o_.dim, ", nh ", o_.nh, ", nv ", o_.nv, ", negatives ", o_.negatives,
              ", batch ", o_.batch_size, ", epochs ", o_.epochs);
  NABLA_CHECK(o_.dropout >= 0 && o_.dropout < 1, "Caser: expected dropout in [0, 1), got ", o_.dropout);
  Generator gen{.seed = o_.seed ^ 0x6361736572ull};
  const int64_t d = o_.dim;
  auto unif = [&](const Shape& s, int64_t fan_in) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    return uniform(s, -bound, bound, {}, &gen);
  };
  CaserWeights& w = weights;
  w.item_emb = normal({num_items + 1, d}, 0.0, 1.0 / static_cast<double>(d), {}, &gen);
  w.user_emb = normal({num_users + 1, d}, 0.0, 1.0 / static_cast<double>(d), {}, &gen);
  for (int64_t h = 1; h <= o_.L; ++h) {
    w.conv_h_w.push_back(unif({o_.nh, 1, h, d}, h * d));
    w.conv_h_b.push_back(unif({o_.nh}, h * d));
  }
  w.conv_v_w = unif({o_.nv, 1, o_.L, 1}, o_.L);
  w.conv_v_b = unif({o_.nv}, o_.L);
  const int64_t fc_in = o_.nh * o_.L + o_.nv * d;
  w.fc_w = unif({d, fc_in}, fc_in);
  w.fc_b = unif({d}, fc_in);
  w.out_w = normal({num_items + 1, 2 * d}, 0.0, 1.0 / static_cast<double>(2 * d), {}, &gen);
  w.out_b = zeros({num_items + 1});
  auto move = [&](Tensor& t) { t = t.to(o_.device).detach().requires_grad_(); };
  move(w.item_emb), move(w.user_emb), move(w.conv_v_w), move(w.conv_v_b), move(w.fc_w), move(w.fc_b);
  move(w.out_w), move(w.out_b);
  for (auto& t : w.conv_h_w) move(t);
  for (auto& t : w.conv_h_b) move(t);
}

std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> Caser::windows(
    std::span<const int32_t> seq, int64_t L, int64_t T) {
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> out;
  if (seq.empty()) return out;
  const auto n = static_cast<int64_t>(seq.size()), w = L + T;
  auto emit = [&](const std::vector<int32_t>& win) {
    out.emplace_back(std::vector<int32_t>(win.begin(), win.begin() + L),
                     std::vector<int32_t>(win.begin() + L, win.end()));
  };
  if (n < w) {  // one window, left-padded
    std::vector<int32_t> win(static_cast<size_t>(w - n), 0);
    win.insert(win.end(), seq.begin(), seq.end());
    emit(win);
    return out;
  }
  for (int64_t end = n; end - w >= 0; --end)  // the authors' order: the most recent window first
    emit(std::vector<int32_t>(seq.begin() + (end - w), seq.begin() + end));
  return out;
}

std::vector<double> Caser::fit(const std::vector<std::vector<int32_t>>& sequences) {
  struct Instance {
    int32_t user;
    std::vector<int32_t> input, targets;
  };
  std::vector<Instance> inst;
  std::vector<std::vector<int32_t>> seen(sequences.size());
  for (size_t u = 0; u < sequences.size(); ++u) {
    if (sequences[u].empty()) continue;
    NABLA_CHECK(u >= 1 && u <= static_cast<size_t>(num_users_), "Caser::fit: user ", u, " outside [1, ",
                num_users_, "]");
    for (int32_t i : sequences[u])
      NABLA_CHECK(i >= 1 && i <= num_items_, "Caser::fit: user ", u, ": item ", i, " outside [1, ",
                  num_items_, "]");
    seen[u] = sequences[u];
    std::sort(seen[u].begin(), seen[u].end());
    for (auto& [in, tg] : windows(sequences[u], o_.L, o_.T))
      inst.push_back({static_cast<int32_t>(u), std::move(in), std::move(tg)});
  }
  NABLA_CHECK(!inst.empty(), "Caser::fit: every sequence is empty");
  optim::Adam opt(weights.all(), {.lr = o_.lr, .weight_decay = o_.weight_decay});
  Generator drop_gen{.seed = o_.seed ^ 0x64726f70ull};
  const auto n = static_cast<int64_t>(inst.size());
  const int64_t T = o_.T, K = o_.T * (1 + o_.negatives);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::vector<double> epoch_loss;
  for (int64_t e = 0; e < o_.epochs; ++e) {
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    for (int64_t i = n; i > 1; --i)
      std::swap(order[i - 1], order[philox_bits64(o_.seed, static_cast<uint64_t>(e) << 32, i) % i]);
    double loss_sum = 0;
    int64_t batches = 0;
    for (int64_t start = 0; start < n; start += o_.batch_size) {
      const int64_t b = std::min(o_.batch_size, n - start);
      std::vector<double> seq(static_cast<size_t>(b * o_.L)), users(static_cast<size_t>(b)),
          items(static_cast<size_t>(b * K)), mpos(static_cast<size_t>(b * T)),
          mneg(static_cast<size_t>(b * (K - T)));
      double npos = 0;
      for (int64_t k = 0; k < b; ++k) {
        const Instance& x = inst[order[start + k]];
        users[k] = x.user;
        for (int64_t j = 0; j < o_.L; ++j) seq[k * o_.L + j] = x.input[j];
        for (int64_t t = 0; t < T; ++t) {
          const int32_t target = x.targets[t];
          items[k * K + t] = target;
          const double real = target != 0 ? 1.0 : 0.0;  // a padded target (a sequence shorter than T + 1)
          mpos[k * T + t] = real;
          npos += real;
          for (int64_t q = 0; q < o_.negatives; ++q) {
            int32_t j = 0;
            for (uint64_t tries = 0;; ++tries) {  // rejection: a user has seen few of the items
              j = 1 + static_cast<int32_t>(philox_bits64(o_.seed ^ 0x6e656773ull,
                                                         (static_cast<uint64_t>(e) << 40) + tries,
                                                         (start + k) * K + t * o_.negatives + q) %
                                           static_cast<uint64_t>(num_items_));
              if (!std::binary_search(seen[x.user].begin(), seen[x.user].end(), j) || tries > 1000) break;
            }
            items[k * K + T + t * o_.negatives + q] = j;
            mneg[k * (K - T) + t * o_.negatives + q] = real;
          }
        }
      }
      const TensorOptions i64{.dtype = DType::i64, .device = o_.device};
      const TensorOptions f32{.device = o_.device};
      Tensor rep = caser_represent(weights, from_vector(seq, {b, o_.L}, i64), from_vector(users, {b}, i64),
                                   o_.dropout, true, &drop_gen);
      Tensor s = caser_item_scores(weights, rep, from_vector(items, {b, K}, i64));
      Tensor pos = s.narrow(1, 0, T), neg = s.narrow(1, T, K - T);
      Tensor lp = sum(binary_cross_entropy_with_logits(pos, ones({b, T}, f32), Reduction::none) *
                      from_vector(mpos, {b, T}, f32)) *
                  (1.0 / std::max(1.0, npos));
      Tensor ln = sum(binary_cross_entropy_with_logits(neg, zeros({b, K - T}, f32), Reduction::none) *
                      from_vector(mneg, {b, K - T}, f32)) *
                  (1.0 / std::max(1.0, npos * static_cast<double>(o_.negatives)));
      Tensor loss = lp + ln;
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

std::vector<double> Caser::scores(int32_t user, std::span<const int32_t> history,
                                  std::span<const int32_t> items) {
  NABLA_CHECK(user >= 1 && user <= num_users_, "Caser::scores: user ", user, " outside [1, ", num_users_,
              "]");
  NoGradGuard ng;
  std::vector<double> seq(static_cast<size_t>(o_.L), 0.0);
  const auto h = static_cast<int64_t>(history.size());
  for (int64_t j = 0; j < std::min(h, o_.L); ++j) seq[o_.L - 1 - j] = history[h - 1 - j];
  std::vector<double> ids;
  ids.reserve(items.size());
  for (int32_t i : items) {
    NABLA_CHECK(i >= 1 && i <= num_items_, "Caser::scores: item ", i, " outside [1, ", num_items_, "]");
    ids.push_back(i);
  }
  if (ids.empty()) return {};
  const TensorOptions i64{.dtype = DType::i64, .device = o_.device};
  Tensor rep = caser_represent(weights, from_vector(seq, {1, o_.L}, i64),
                               from_vector({static_cast<double>(user)}, {1}, i64), o_.dropout, false);
  Tensor s = caser_item_scores(weights, rep, from_vector(ids, {1, static_cast<int64_t>(ids.size())}, i64))
                 .to(Device::cpu());
  return s.to_double_vector();
}

}  // namespace nabla::recsys
