// BERT4Rec on the BERT encoder (see bert4rec.h).
#include "algorithms/recsys/bert4rec.h"

#include <algorithm>

#include "algorithms/optim/optimizer.h"
#include "autograd/autograd.h"
#include "engine/error.h"
#include "engine/random.h"
#include "ops/factory.h"
#include "ops/loss.h"

namespace nabla::recsys {

Bert4Rec::Bert4Rec(int32_t num_items, Bert4RecOptions o) : num_items_(num_items), o_(o) {
  NABLA_CHECK(num_items >= 2 && o_.max_len >= 2 && o_.epochs >= 0 && o_.batch_size >= 1,
              "Bert4Rec: expected >= 2 items, max_len >= 2, epochs >= 0, batch >= 1; got ", num_items, ", ",
              o_.max_len, ", ", o_.epochs, ", ", o_.batch_size);
  NABLA_CHECK(o_.mask_prob > 0 && o_.mask_prob < 1, "Bert4Rec: expected mask_prob in (0, 1), got ",
              o_.mask_prob);
  manual_seed(o_.seed);
  models::BertConfig c;
  c.vocab_size = num_items + 2;
  c.hidden_size = o_.hidden;
  c.num_hidden_layers = o_.layers;
  c.num_attention_heads = o_.heads;
  c.intermediate_size = 4 * o_.hidden;
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = o_.dropout;
  c.max_position_embeddings = o_.max_len;
  c.type_vocab_size = 1;
  c.attention_impl = "composed";
  c.validate();
  bert_ = std::make_shared<models::BertModel>(c, false);
  out_ = std::make_shared<nn::Linear>(o_.hidden, num_items + 2);
}

Tensor Bert4Rec::logits(const std::vector<std::vector<int64_t>>& rows) {
  const auto b = static_cast<int64_t>(rows.size());
  std::vector<double> ids, mask;
  for (auto& r : rows)
    for (int64_t t : r) ids.push_back(static_cast<double>(t)), mask.push_back(t != 0 ? 1.0 : 0.0);
  Tensor h = bert_
                 ->forward(from_vector(ids, {b, o_.max_len}, {.dtype = DType::i64}), Tensor(),
                           from_vector(mask, {b, o_.max_len}, {.dtype = DType::i64}))
                 .sequence_output;
  return out_->forward(h);
}

std::vector<double> Bert4Rec::fit(const std::vector<std::vector<int32_t>>& sequences) {
  std::vector<size_t> users;
  for (size_t u = 0; u < sequences.size(); ++u)
    if (!sequences[u].empty()) users.push_back(u);
  NABLA_CHECK(!users.empty(), "Bert4Rec::fit: every sequence is empty");
  for (auto& s : sequences)
    for (int32_t i : s)
      NABLA_CHECK(i >= 1 && i <= num_items_, "Bert4Rec::fit: item ", i, " outside [1, ", num_items_, "]");
  std::vector<Tensor> params;
  for (auto& [n, t] : bert_->named_parameters()) params.push_back(t);
  for (auto& [n, t] : out_->named_parameters()) params.push_back(t);
  optim::Adam opt(params, {.lr = o_.lr});
  manual_seed(o_.seed);
  bert_->train();
  const int64_t mask_id = num_items_ + 1, v = num_items_ + 2;
  std::vector<double> losses;
  for (int64_t e = 0; e < o_.epochs; ++e) {
    std::vector<size_t> order = users;
    for (size_t i = order.size(); i > 1; --i)
      std::swap(order[i - 1],
                order[philox_bits64(o_.seed, static_cast<uint64_t>(e) << 32, static_cast<int64_t>(i)) % i]);
    double sum = 0;
    int64_t batches = 0;
    for (size_t s0 = 0; s0 < order.size(); s0 += static_cast<size_t>(o_.batch_size)) {
      const size_t s1 = std::min(order.size(), s0 + static_cast<size_t>(o_.batch_size));
      std::vector<std::vector<int64_t>> rows;
      std::vector<double> labels;
      for (size_t k = s0; k < s1; ++k) {
        const auto& seq = sequences[order[k]];
        const size_t n = std::min(seq.size(), static_cast<size_t>(o_.max_len));
        std::vector<int64_t> row(static_cast<size_t>(o_.max_len) - n, 0);
        std::vector<double> lab(static_cast<size_t>(o_.max_len) - n, -100.0);
        const uint64_t key = (static_cast<uint64_t>(e) << 32) ^ static_cast<uint64_t>(order[k]);
        bool any = false;
        for (size_t j = 0; j < n; ++j) {
          const int32_t item = seq[seq.size() - n + j];
          const double u = philox_uniform(o_.seed ^ 0x6d61736bull, key, static_cast<int64_t>(j));
          const bool last = j + 1 == n;
          const bool masked = last ? u < 0.5 : u < o_.mask_prob;
          row.push_back(masked ? mask_id : item);
          lab.push_back(masked ? item : -100.0);
          any = any || masked;
        }
        if (!any) {  // at least one target per sequence: the last item
          row.back() = mask_id;
          lab.back() = seq.back();
        }
        rows.push_back(row);
        labels.insert(labels.end(), lab.begin(), lab.end());
      }
      const auto b = static_cast<int64_t>(rows.size());
      Tensor lg = logits(rows).reshape({b * o_.max_len, v});
      Tensor loss = cross_entropy(lg, from_vector(labels, {b * o_.max_len}, {.dtype = DType::i64}));
      opt.zero_grad();
      loss.backward();
      opt.step();
      sum += loss.item_double();
      ++batches;
    }
    losses.push_back(sum / static_cast<double>(batches));
  }
  bert_->eval();
  return losses;
}

std::vector<double> Bert4Rec::scores(std::span<const int32_t> history, std::span<const int32_t> items) {
  NoGradGuard ng;
  bert_->eval();
  const size_t n = std::min(history.size(), static_cast<size_t>(o_.max_len - 1));
  std::vector<int64_t> row(static_cast<size_t>(o_.max_len) - n - 1, 0);
  for (size_t j = history.size() - n; j < history.size(); ++j) row.push_back(history[j]);
  row.push_back(num_items_ + 1);
  Tensor lg = logits({row}).select(1, o_.max_len - 1).contiguous();  // [1, V]
  const float* d = lg.data<float>();
  std::vector<double> out;
  for (int32_t i : items) {
    NABLA_CHECK(i >= 1 && i <= num_items_, "Bert4Rec::scores: item ", i, " outside [1, ", num_items_, "]");
    out.push_back(d[i]);
  }
  return out;
}

}  // namespace nabla::recsys
