// BERT pretraining examples: corpus reading, chunking, NSP pairs and MLM masking (see bert_pretrain.h).
#include "data/bert_pretrain.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <utility>

#include "engine/error.h"

namespace nabla::data {
namespace {

// splitmix64 (Steele et al. 2014) on a counter: the stream of key k is mix(k + i * golden) for i = 1, 2, ...
uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Stream {
 public:
  Stream(uint64_t seed, uint64_t a, uint64_t b) : state_(mix(mix(mix(seed) ^ a) ^ b)) {}
  uint64_t next() { return mix(state_ += 0x9e3779b97f4a7c15ULL); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  // [0, n), n >= 1 (Lemire's multiply-shift; the bias is below 2^-40 for the sizes used here).
  int64_t below(int64_t n) {
    return static_cast<int64_t>((static_cast<unsigned __int128>(next()) * static_cast<uint64_t>(n)) >> 64);
  }

 private:
  uint64_t state_;
};

constexpr uint64_t kOrderKey = ~uint64_t{0};

}  // namespace

BertCorpus BertCorpus::read(const std::vector<std::string>& files, const BertTokenizer& tokenizer,
                            int64_t max_bytes) {
  NABLA_CHECK(!files.empty(), "BERT corpus: no text files given");
  BertCorpus c;
  int64_t bytes = 0;
  for (const std::string& path : files) {
    std::ifstream in(path);
    NABLA_CHECK(in, "BERT corpus: cannot open ", path);
    std::vector<std::vector<int32_t>> doc;
    auto end_doc = [&] {
      if (!doc.empty()) c.docs.push_back(std::move(doc));
      doc.clear();
    };
    std::string line;
    int64_t file_tokens = 0;
    while (std::getline(in, line)) {
      if (max_bytes > 0 && bytes >= max_bytes) break;
      bytes += static_cast<int64_t>(line.size()) + 1;
      if (line.find_first_not_of(" \t\r") == std::string::npos) {
        end_doc();
        continue;
      }
      std::vector<int32_t> ids = tokenizer.encode_ids(line);
      if (ids.empty()) continue;
      file_tokens += static_cast<int64_t>(ids.size());
      ++c.sentences;
      doc.push_back(std::move(ids));
    }
    NABLA_CHECK(!in.bad(), "BERT corpus: error reading ", path);
    end_doc();
    NABLA_CHECK(file_tokens > 0, "BERT corpus: ", path,
                " holds no token (expected one sentence per line, a blank line between documents)");
    c.tokens += file_tokens;
    if (max_bytes > 0 && bytes >= max_bytes) break;
  }
  return c;
}

std::vector<int64_t> unigram_counts(const BertCorpus& corpus, int32_t vocab_size) {
  std::vector<int64_t> counts(static_cast<size_t>(vocab_size), 0);
  for (const auto& doc : corpus.docs)
    for (const auto& s : doc)
      for (int32_t id : s) {
        NABLA_CHECK(id >= 0 && id < vocab_size, "unigram_counts: id ", id, " outside [0, ", vocab_size, ")");
        ++counts[static_cast<size_t>(id)];
      }
  return counts;
}

double unigram_cross_entropy(const std::vector<int64_t>& counts, const BertCorpus& test,
                             const BertTokenizer& tokenizer) {
  double total = 0;
  for (int64_t n : counts) total += static_cast<double>(n);
  const double denom = total + static_cast<double>(counts.size());
  double sum = 0;
  int64_t n = 0;
  for (const auto& doc : test.docs)
    for (const auto& s : doc)
      for (int32_t id : s) {
        if (tokenizer.is_special(id)) continue;
        sum -= std::log((static_cast<double>(counts.at(static_cast<size_t>(id))) + 1.0) / denom);
        ++n;
      }
  NABLA_CHECK(n > 0, "unigram_cross_entropy: the test corpus has no token");
  return sum / static_cast<double>(n);
}

BertPretrainData::BertPretrainData(std::shared_ptr<const BertCorpus> corpus, const BertTokenizer& tokenizer,
                                   BertPretrainOptions options)
    : corpus_(std::move(corpus)), o_(options) {
  NABLA_CHECK(corpus_ != nullptr, "BertPretrainData: no corpus");
  NABLA_CHECK(o_.seq_len >= 8, "BertPretrainData: seq_len ", o_.seq_len,
              " is too short (expected at least 8: [CLS] A [SEP] B [SEP])");
  NABLA_CHECK(o_.mask_prob > 0 && o_.mask_prob < 1, "BertPretrainData: mask_prob ", o_.mask_prob,
              " outside (0, 1)");
  NABLA_CHECK(o_.random_next_prob >= 0 && o_.random_next_prob <= 1, "BertPretrainData: random_next_prob ",
              o_.random_next_prob, " outside [0, 1]");
  NABLA_CHECK(corpus_->docs.size() >= 2, "BertPretrainData: ", corpus_->docs.size(),
              " document(s); next-sentence prediction needs at least 2 (blank lines separate documents)");
  cls_ = tokenizer.cls_id(), sep_ = tokenizer.sep_id(), pad_ = tokenizer.pad_id();
  mask_ = tokenizer.mask_id(), vocab_ = tokenizer.vocab_size();
  special_.assign(static_cast<size_t>(vocab_), 0);
  for (int32_t i = 0; i < vocab_; ++i) special_[static_cast<size_t>(i)] = tokenizer.is_special(i) ? 1 : 0;
  const int64_t target = o_.seq_len - 3;
  for (size_t d = 0; d < corpus_->docs.size(); ++d) {
    const auto& doc = corpus_->docs[d];
    size_t first = 0;
    int64_t length = 0;
    for (size_t s = 0; s < doc.size(); ++s) {
      length += static_cast<int64_t>(doc[s].size());
      if (length >= target || s + 1 == doc.size()) {
        const int32_t count = static_cast<int32_t>(s + 1 - first);
        if (count >= 2 || length >= 2)
          chunks_.push_back({static_cast<int32_t>(d), static_cast<int32_t>(first), count});
        first = s + 1;
        length = 0;
      }
    }
  }
  NABLA_CHECK(!chunks_.empty(),
              "BertPretrainData: the corpus gives no example (every document is one token)");
}

std::vector<int64_t> BertPretrainData::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(chunks_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  Stream r(o_.seed, static_cast<uint64_t>(epoch), kOrderKey);
  for (size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[static_cast<size_t>(r.below(static_cast<int64_t>(i)))]);
  return order;
}

BertPretrainExample BertPretrainData::example(int64_t epoch, int64_t index) const {
  NABLA_CHECK(index >= 0 && index < examples_per_epoch(), "BertPretrainData: example ", index,
              " outside [0, ", examples_per_epoch(), ")");
  Stream r(o_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index));
  const Chunk& c = chunks_[static_cast<size_t>(index)];
  const auto& docs = corpus_->docs;
  const auto& doc = docs[static_cast<size_t>(c.doc)];
  const int64_t target = o_.seq_len - 3;
  std::vector<int32_t> a, b;
  bool random_next = r.uniform() < o_.random_next_prob;
  if (c.count >= 2) {
    const int32_t a_end = c.first + 1 + static_cast<int32_t>(r.below(c.count - 1));
    for (int32_t s = c.first; s < a_end; ++s) a.insert(a.end(), doc[s].begin(), doc[s].end());
    if (!random_next)
      for (int32_t s = a_end; s < c.first + c.count; ++s) b.insert(b.end(), doc[s].begin(), doc[s].end());
  } else {
    const auto& s = doc[static_cast<size_t>(c.first)];
    const int64_t cut = 1 + r.below(static_cast<int64_t>(s.size()) - 1);
    a.assign(s.begin(), s.begin() + cut);
    if (!random_next) b.assign(s.begin() + cut, s.end());
  }
  if (random_next) {
    int64_t other = r.below(static_cast<int64_t>(docs.size()) - 1);
    if (other >= c.doc) ++other;
    const auto& od = docs[static_cast<size_t>(other)];
    const int64_t want = std::max<int64_t>(1, target - static_cast<int64_t>(a.size()));
    for (size_t s = static_cast<size_t>(r.below(static_cast<int64_t>(od.size())));
         s < od.size() && static_cast<int64_t>(b.size()) < want; ++s)
      b.insert(b.end(), od[s].begin(), od[s].end());
  }
  // Truncate to the budget from the longer side, at its front or back.
  while (static_cast<int64_t>(a.size() + b.size()) > target) {
    std::vector<int32_t>& t = a.size() > b.size() ? a : b;
    if (r.uniform() < 0.5)
      t.erase(t.begin());
    else
      t.pop_back();
  }

  BertPretrainExample e;
  e.nsp_label = random_next ? 1 : 0;
  const size_t len = static_cast<size_t>(o_.seq_len);
  e.original.reserve(len);
  e.original.push_back(cls_);
  e.original.insert(e.original.end(), a.begin(), a.end());
  e.original.push_back(sep_);
  const size_t b_start = e.original.size();
  e.original.insert(e.original.end(), b.begin(), b.end());
  e.original.push_back(sep_);
  const size_t used = e.original.size();
  e.token_type_ids.assign(len, 0);
  for (size_t i = b_start; i < used; ++i) e.token_type_ids[i] = 1;
  e.attention_mask.assign(len, 0);
  std::fill(e.attention_mask.begin(), e.attention_mask.begin() + static_cast<std::ptrdiff_t>(used), 1);
  e.original.resize(len, pad_);
  e.input_ids = e.original;
  e.mlm_labels.assign(len, -100);

  std::vector<int64_t> candidates;
  for (size_t i = 0; i < used; ++i)
    if (!special_[static_cast<size_t>(e.original[i])]) candidates.push_back(static_cast<int64_t>(i));
  const int64_t n = static_cast<int64_t>(candidates.size());
  if (n == 0) return e;
  int64_t k = std::max<int64_t>(1, std::llround(o_.mask_prob * static_cast<double>(n)));
  if (o_.max_predictions > 0) k = std::min(k, o_.max_predictions);
  k = std::min(k, n);
  for (int64_t j = 0; j < k; ++j) {  // a partial Fisher-Yates shuffle: k positions without replacement
    std::swap(candidates[static_cast<size_t>(j)], candidates[static_cast<size_t>(j + r.below(n - j))]);
    const size_t p = static_cast<size_t>(candidates[static_cast<size_t>(j)]);
    e.mlm_labels[p] = e.original[p];
    const double u = r.uniform();
    if (u < 0.8) {
      e.input_ids[p] = mask_;
    } else if (u < 0.9) {
      int32_t id;
      do id = static_cast<int32_t>(r.below(vocab_));
      while (special_[static_cast<size_t>(id)]);
      e.input_ids[p] = id;
    }
  }
  return e;
}

BertPretrainBatch BertPretrainData::collate(const std::vector<BertPretrainExample>& examples) {
  NABLA_CHECK(!examples.empty(), "BertPretrainData: an empty batch");
  const int64_t b = static_cast<int64_t>(examples.size()),
                l = static_cast<int64_t>(examples[0].input_ids.size());
  BertPretrainBatch out;
  auto fill = [&](Tensor& t, auto member) {
    t = Tensor::empty({b, l}, DType::i64);
    int64_t* p = t.data<int64_t>();
    for (const auto& e : examples) {
      const std::vector<int32_t>& v = e.*member;
      NABLA_CHECK(static_cast<int64_t>(v.size()) == l, "BertPretrainData: examples of different lengths");
      p = std::copy(v.begin(), v.end(), p);
    }
  };
  fill(out.input_ids, &BertPretrainExample::input_ids);
  fill(out.token_type_ids, &BertPretrainExample::token_type_ids);
  fill(out.attention_mask, &BertPretrainExample::attention_mask);
  fill(out.mlm_labels, &BertPretrainExample::mlm_labels);
  out.nsp_labels = Tensor::empty({b}, DType::i64);
  for (int64_t i = 0; i < b; ++i)
    out.nsp_labels.data<int64_t>()[i] = examples[static_cast<size_t>(i)].nsp_label;
  return out;
}

BertPretrainBatch BertPretrainData::batch(int64_t epoch, int64_t first, int64_t count) const {
  NABLA_CHECK(count >= 1 && first >= 0 && first + count <= examples_per_epoch(),
              "BertPretrainData: positions [", first, ", ", first + count, ") outside the epoch's ",
              examples_per_epoch(), " examples");
  const std::vector<int64_t> order = epoch_order(epoch);
  std::vector<BertPretrainExample> ex;
  ex.reserve(static_cast<size_t>(count));
  for (int64_t i = first; i < first + count; ++i) ex.push_back(example(epoch, order[static_cast<size_t>(i)]));
  return collate(ex);
}

BertPretrainBatch BertPretrainData::batch_at(int64_t g, int64_t batch_size, int64_t rank,
                                             int64_t world) const {
  const int64_t per_epoch = batches_per_epoch(batch_size);
  NABLA_CHECK(per_epoch >= 1, "BertPretrainData: a batch of ", batch_size, " is larger than the ",
              examples_per_epoch(), " examples of an epoch at sequence length ", o_.seq_len);
  NABLA_CHECK(world >= 1 && rank >= 0 && rank < world && batch_size % world == 0, "BertPretrainData: batch ",
              batch_size, " does not split over ", world, " ranks (rank ", rank, ")");
  const int64_t local = batch_size / world;
  return batch(g / per_epoch, (g % per_epoch) * batch_size + rank * local, local);
}

}  // namespace nabla::data
