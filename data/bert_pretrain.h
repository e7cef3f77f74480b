// BERT pretraining examples (Devlin et al. 2019, section 3.1 and appendix A.1) from plain text: masked LM
// and next-sentence prediction, made on the fly from tokenized documents, so that every epoch sees new masks
// and new sentence pairs (dynamic masking, as RoBERTa), and every example is a pure function of
// (seed, epoch, index): a run resumes exactly from a step count, and data-parallel ranks agree.
//
// Text files: one sentence per line, a blank line between documents (scripts/prepare_bert_corpus.sh writes
// them). Lines are WordPiece-tokenized once (BertCorpus); empty lines and lines with no token end nothing
// but a document.
//
// Chunks (fixed per corpus and length L): each document is cut greedily into runs of whole sentences of
// about T = L - 3 tokens (the budget of [CLS] A [SEP] B [SEP]); a chunk is one example per epoch.
// Example (epoch e, chunk c), with a generator keyed by (seed, e, c):
//   A       the chunk's first 1..n-1 sentences (a random cut; a one-sentence chunk is cut inside the
//   sentence) B       with probability 1/2 the rest of the chunk (is_next, NSP label 0), else sentences from
//   a random
//           place in another document, up to T - |A| tokens (NSP label 1, "random next"), as Google's
//           create_pretraining_data.py (label 0 = B follows A, transformers' convention)
//   truncate A + B to T tokens, one token at a time from the longer, at its front or back at random
//   tokens  [CLS] A [SEP] B [SEP] [PAD]...   types 0 for [CLS] A [SEP], 1 for B [SEP], 0 for padding
//   masking of the n candidate positions (every token but the special ones: [CLS] [SEP] [PAD] [UNK]
//           [MASK] are never chosen): k = min(max_predictions, max(1, round(mask_prob n))) positions
//           drawn without replacement; each becomes [MASK] with probability 0.8, a random non-special
//           vocabulary token with 0.1, and stays with 0.1; mlm_labels holds the original id there, -100
//           everywhere else
// Epoch order: the chunks shuffled by a permutation keyed by (seed, e). Batch b of epoch e holds positions
// [b B, (b + 1) B) of that order (the last partial batch is dropped); batch_at(g) counts batches over
// epochs (g = e * batches_per_epoch + b).
//
// The generator is a counter-based splitmix64 stream (no std:: distributions, whose results differ between
// standard libraries), so the examples are the same on every machine.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/tokenizer/wordpiece.h"
#include "engine/tensor.h"

namespace nabla::data {

// Tokenized documents: docs[d][s] is sentence s of document d (WordPiece ids, no specials).
struct BertCorpus {
  std::vector<std::vector<std::vector<int32_t>>> docs;
  int64_t tokens = 0, sentences = 0;
  // Reads the files in order (one document may not span two files). max_bytes > 0 stops after about that
  // many bytes of text (whole lines). Throws naming the file when it cannot be read or holds no token.
  static BertCorpus read(const std::vector<std::string>& files, const BertTokenizer& tokenizer,
                         int64_t max_bytes = 0);
};

// The token counts of a corpus per id (the unigram distribution of the held-out baseline).
std::vector<int64_t> unigram_counts(const BertCorpus& corpus, int32_t vocab_size);
// Cross-entropy in nats of the tokens of `test` under the add-one-smoothed unigram distribution of `counts`,
// over the tokens whose id is not special: what an MLM that ignores the context scores at best, to first
// order (it never sees the masked token).
double unigram_cross_entropy(const std::vector<int64_t>& counts, const BertCorpus& test,
                             const BertTokenizer& tokenizer);

struct BertPretrainOptions {
  int64_t seq_len = 128;          // L, with [CLS] and both [SEP]
  double mask_prob = 0.15;        // of the candidate positions
  double random_next_prob = 0.5;  // NSP: B from another document
  int64_t max_predictions = 0;    // cap on the masked positions per example (0: none; BERT's 20 at 128)
  uint64_t seed = 0;
};

// A batch of examples: i64 tensors on the CPU.
struct BertPretrainBatch {
  Tensor input_ids;       // [B, L]
  Tensor token_type_ids;  // [B, L]
  Tensor attention_mask;  // [B, L]  1 token, 0 padding
  Tensor mlm_labels;      // [B, L]  original id at masked positions, -100 elsewhere
  Tensor nsp_labels;      // [B]     0 is next, 1 random
};

// One example before batching (also what the tests inspect).
struct BertPretrainExample {
  std::vector<int32_t> input_ids, token_type_ids, attention_mask, mlm_labels;
  int32_t nsp_label = 0;
  std::vector<int32_t> original;  // the ids before masking
};

class BertPretrainData {
 public:
  // Needs at least two documents (NSP draws B from another one) and one chunk. The tokenizer supplies the
  // special ids and the vocabulary size; it is not kept.
  BertPretrainData(std::shared_ptr<const BertCorpus> corpus, const BertTokenizer& tokenizer,
                   BertPretrainOptions options);

  int64_t examples_per_epoch() const { return static_cast<int64_t>(chunks_.size()); }
  const BertPretrainOptions& options() const { return o_; }
  BertPretrainExample example(int64_t epoch, int64_t index) const;  // index: a chunk, before shuffling
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  // Positions [first, first + count) of epoch `epoch`'s order (first + count <= examples_per_epoch()).
  BertPretrainBatch batch(int64_t epoch, int64_t first, int64_t count) const;
  // Global batch g of `batch_size` examples; rank `rank` of `world` gets its contiguous share.
  int64_t batches_per_epoch(int64_t batch_size) const { return examples_per_epoch() / batch_size; }
  BertPretrainBatch batch_at(int64_t g, int64_t batch_size, int64_t rank = 0, int64_t world = 1) const;
  static BertPretrainBatch collate(const std::vector<BertPretrainExample>& examples);

 private:
  struct Chunk {
    int32_t doc, first, count;  // sentences [first, first + count) of document doc
  };
  std::shared_ptr<const BertCorpus> corpus_;
  BertPretrainOptions o_;
  std::vector<Chunk> chunks_;
  int32_t cls_, sep_, pad_, mask_, vocab_;
  std::vector<uint8_t> special_;  // [vocab]
};

}  // namespace nabla::data
