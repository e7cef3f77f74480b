// BERT4Rec (Sun et al., CIKM 2019) on our BERT encoder (models/bert): a user's item sequence as tokens,
// trained by the cloze task, scored by masking the next position.
//
//   tokens     0 = padding, 1..I = items, I + 1 = [MASK]; a sequence is the user's last max_len training
//   items,
//              left-padded (attention_mask 0 on padding)
//   model      BertModel (no pooler; word, position and token-type embeddings, post-LN layers), then
//              logits = h W^T + b over the I + 2 tokens (an output layer of its own, not tied)
//   training   each epoch, every user's sequence once in batches; each item position is replaced by [MASK]
//              with probability mask_prob (at least one per sequence, the last with probability 1/2, so the
//              next-item case is seen often); loss = cross-entropy at the masked positions; Adam
//   scoring    [last max_len - 1 training items, MASK]: the logits at the [MASK] position, read at the
//              candidates' ids
// Masks and batch order are philox draws keyed by (seed, epoch, user); dropout draws from the default
// generator, seeded by fit().
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "models/bert/model.h"
#include "models/nn/layers.h"

namespace nabla::recsys {

struct Bert4RecOptions {
  int64_t max_len = 50;
  int64_t hidden = 64, layers = 2, heads = 2;
  double dropout = 0.1;
  double mask_prob = 0.2;
  int64_t epochs = 60;
  int64_t batch_size = 64;
  double lr = 1e-3;
  uint64_t seed = 0;
};

class Bert4Rec {
 public:
  Bert4Rec(int32_t num_items, Bert4RecOptions options);
  // sequences[u]: user u's training items, oldest first (any user may be empty). Returns each epoch's mean
  // loss.
  std::vector<double> fit(const std::vector<std::vector<int32_t>>& sequences);
  // Scores of `items` as the next item after `history` (oldest first).
  std::vector<double> scores(std::span<const int32_t> history, std::span<const int32_t> items);

 private:
  Tensor logits(const std::vector<std::vector<int64_t>>& rows);  // rows of max_len tokens -> [B, L, V]
  int32_t num_items_;
  Bert4RecOptions o_;
  std::shared_ptr<models::BertModel> bert_;
  std::shared_ptr<nn::Linear> out_;
};

}  // namespace nabla::recsys
