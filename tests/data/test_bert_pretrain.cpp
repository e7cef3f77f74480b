// BERT pretraining examples (data/bert_pretrain.h) and the GLUE TSV reader (data/glue_tsv.h), on fresh random
// text over a small synthetic vocabulary: masking statistics (15%, 80/10/10, specials never masked), NSP
// balance and the origin of B, the framing
// ([CLS] A [SEP] B [SEP], types, mask), reproducibility from the seed and new masks each epoch.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "data/bert_pretrain.h"
#include "data/glue_tsv.h"
#include "testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;

// The statement throws nabla::Error whose message contains `part`.
#define EXPECT_THROW_MSG(statement, part)                                         \
  do {                                                                            \
    try {                                                                         \
      statement;                                                                  \
      ADD_FAILURE() << "no exception from " #statement;                           \
    } catch (const Error& e) {                                                    \
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what(); \
    }                                                                             \
  } while (0)

// [PAD] [UNK] [CLS] [SEP] [MASK] then "w0".."w{n-1}".
data::BertTokenizer small_tokenizer(int n) {
  std::vector<std::string> v{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (int i = 0; i < n; ++i) v.push_back("w" + std::to_string(i));
  return data::BertTokenizer(v);
}

// `docs` documents of 3..12 sentences of 2..20 random words; document d uses only words w{d*k}..w{d*k+k-1}
// when `disjoint` (so a token tells its document), any word otherwise. Returns the corpus.
std::shared_ptr<data::BertCorpus> random_corpus(const data::BertTokenizer& tok, int docs, int words,
                                                bool disjoint, uint64_t seed) {
  std::mt19937_64 g(seed);
  fs::path p = fs::temp_directory_path() / ("nabla_bert_corpus_" + std::to_string(getpid()) + ".txt");
  {
    std::ofstream out(p);
    const int k = disjoint ? words / docs : words;
    for (int d = 0; d < docs; ++d) {
      const int sentences = 3 + static_cast<int>(g() % 10);
      for (int s = 0; s < sentences; ++s) {
        const int n = 2 + static_cast<int>(g() % 19);
        for (int i = 0; i < n; ++i)
          out << (i ? " " : "") << "w" << (disjoint ? d * k : 0) + static_cast<int>(g() % k);
        out << "\n";
      }
      out << "\n";
    }
  }
  auto c = std::make_shared<data::BertCorpus>(data::BertCorpus::read({p.string()}, tok));
  fs::remove(p);
  return c;
}

TEST(BertPretrain, MaskingIs15PercentSplit801010AndNeverTouchesSpecials) {
  const auto tok = small_tokenizer(400);
  auto corpus = random_corpus(tok, 60, 400, false, test::next_seed());
  data::BertPretrainData data(corpus, tok, {.seq_len = 64, .seed = test::next_seed()});
  int64_t candidates = 0, masked = 0, as_mask = 0, as_random = 0, kept = 0;
  for (int64_t epoch = 0; epoch < 3; ++epoch)
    for (int64_t i = 0; i < data.examples_per_epoch(); ++i) {
      data::BertPretrainExample e = data.example(epoch, i);
      ASSERT_EQ(e.input_ids.size(), 64u);
      EXPECT_EQ(e.original[0], tok.cls_id());
      int64_t used = 0, n_cand = 0, n_masked = 0;
      for (size_t p = 0; p < 64; ++p) {
        used += e.attention_mask[p];
        const bool special = tok.is_special(e.original[p]);
        n_cand += !special;
        if (e.mlm_labels[p] == -100) {
          EXPECT_EQ(e.input_ids[p], e.original[p]) << "an unlabelled position changed";
          continue;
        }
        ASSERT_FALSE(special) << "special token " << e.original[p] << " masked at " << p;
        EXPECT_EQ(e.mlm_labels[p], e.original[p]);
        ++n_masked;
        if (e.input_ids[p] == tok.mask_id())
          ++as_mask;
        else if (e.input_ids[p] == e.original[p])
          ++kept;
        else {
          ++as_random;
          EXPECT_FALSE(tok.is_special(e.input_ids[p]));
        }
      }
      EXPECT_EQ(n_masked, std::max<int64_t>(1, std::llround(0.15 * static_cast<double>(n_cand))));
      EXPECT_EQ(e.original[static_cast<size_t>(used - 1)], tok.sep_id());
      for (size_t p = static_cast<size_t>(used); p < 64; ++p) EXPECT_EQ(e.original[p], tok.pad_id());
      candidates += n_cand, masked += n_masked;
    }
  ASSERT_GT(masked, 2000);
  const double m = static_cast<double>(masked);
  EXPECT_NEAR(m / static_cast<double>(candidates), 0.15, 0.01);
  EXPECT_NEAR(as_mask / m, 0.8, 0.03);
  EXPECT_NEAR(as_random / m, 0.1, 0.02);  // a random draw can hit the original id: rare with 400 words
  EXPECT_NEAR(kept / m, 0.1, 0.02);
}

TEST(BertPretrain, NextSentenceIsBalancedAndRandomNextComesFromAnotherDocument) {
  const int docs = 40, words = 400;  // document d owns words w{10 d}..w{10 d + 9}
  const auto tok = small_tokenizer(words);
  auto corpus = random_corpus(tok, docs, words, true, test::next_seed());
  data::BertPretrainData data(corpus, tok, {.seq_len = 48, .seed = test::next_seed()});
  int64_t random_next = 0, n = 0;
  auto doc_of = [&](int32_t id) { return (id - 5) / (words / docs); };
  for (int64_t epoch = 0; epoch < 16; ++epoch)
    for (int64_t i = 0; i < data.examples_per_epoch(); ++i) {
      data::BertPretrainExample e = data.example(epoch, i);
      // A's document from its first token, B's from its first; types 0 then 1.
      size_t sep = 1;
      while (e.original[sep] != tok.sep_id()) ++sep;
      ASSERT_GT(sep, 1u) << "empty A";
      ASSERT_NE(e.original[sep + 1], tok.sep_id()) << "empty B";
      EXPECT_EQ(e.token_type_ids[sep], 0);
      EXPECT_EQ(e.token_type_ids[sep + 1], 1);
      const bool same = doc_of(e.original[1]) == doc_of(e.original[sep + 1]);
      EXPECT_EQ(same, e.nsp_label == 0) << "example " << i << " of epoch " << epoch;
      random_next += e.nsp_label, ++n;
    }
  ASSERT_GT(n, 1000);
  EXPECT_NEAR(static_cast<double>(random_next) / static_cast<double>(n), 0.5, 0.05);
}

TEST(BertPretrain, ExamplesComeFromTheSeedAndChangeEveryEpoch) {
  const auto tok = small_tokenizer(300);
  auto corpus = random_corpus(tok, 20, 300, false, test::next_seed());
  const uint64_t seed = test::next_seed();
  data::BertPretrainData a(corpus, tok, {.seq_len = 32, .seed = seed}),
      b(corpus, tok, {.seq_len = 32, .seed = seed});
  data::BertPretrainData c(corpus, tok, {.seq_len = 32, .seed = seed + 1});
  data::BertPretrainBatch x = a.batch_at(5, 8), y = b.batch_at(5, 8), z = c.batch_at(5, 8);
  EXPECT_EQ(x.input_ids.to_vector<int64_t>(), y.input_ids.to_vector<int64_t>());
  EXPECT_EQ(x.mlm_labels.to_vector<int64_t>(), y.mlm_labels.to_vector<int64_t>());
  EXPECT_NE(x.input_ids.to_vector<int64_t>(), z.input_ids.to_vector<int64_t>());
  EXPECT_EQ(x.input_ids.shape(), (Shape{8, 32}));
  EXPECT_EQ(x.nsp_labels.shape(), (Shape{8}));
  // Dynamic masking: the same chunk in two epochs gets other masks.
  int64_t differ = 0;
  for (int64_t i = 0; i < a.examples_per_epoch(); ++i)
    differ += a.example(0, i).mlm_labels != a.example(1, i).mlm_labels;
  EXPECT_GT(differ, a.examples_per_epoch() * 9 / 10);
  // Data-parallel shares: two ranks' halves are the global batch.
  data::BertPretrainBatch r0 = a.batch_at(3, 8, 0, 2), r1 = a.batch_at(3, 8, 1, 2), all = a.batch_at(3, 8);
  std::vector<int64_t> joined = r0.input_ids.to_vector<int64_t>(), second = r1.input_ids.to_vector<int64_t>();
  joined.insert(joined.end(), second.begin(), second.end());
  EXPECT_EQ(joined, all.input_ids.to_vector<int64_t>());
}

TEST(BertPretrain, RefusesTooFewDocumentsAndUnreadableFiles) {
  const auto tok = small_tokenizer(10);
  auto one = std::make_shared<data::BertCorpus>();
  one->docs = {{{5, 6, 7}}};
  EXPECT_THROW_MSG(data::BertPretrainData(one, tok, {}), "at least 2");
  EXPECT_THROW_MSG(data::BertCorpus::read({"/nonexistent/corpus.txt"}, tok), "/nonexistent/corpus.txt");
}

TEST(BertPretrain, UnigramBaselineIsTheEntropyOfAUniformText) {
  // Every one of 50 words equally often in training and test: the cross-entropy is about log 50 (add-one
  // smoothing over the 55 ids moves it slightly).
  const auto tok = small_tokenizer(50);
  data::BertCorpus c;
  std::vector<int32_t> s;
  for (int rep = 0; rep < 200; ++rep)
    for (int32_t i = 5; i < 55; ++i) s.push_back(i);
  c.docs = {{s}};
  const double h = data::unigram_cross_entropy(data::unigram_counts(c, tok.vocab_size()), c, tok);
  EXPECT_NEAR(h, std::log(50.0), 1e-3);
}

TEST(GlueTsv, ReadsSinglesAndPairsAndNamesFileAndLineOnErrors) {
  fs::path dir = fs::temp_directory_path() / ("nabla_glue_" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  auto single = data::read_glue_tsv(write("sst.tsv", "sentence\tlabel\na fine film \t1\nawful\t0\n"));
  ASSERT_EQ(single.size(), 2);
  EXPECT_EQ(single.text_a[0], "a fine film");
  EXPECT_EQ(single.labels, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(single.num_classes, 2);
  auto pair = data::read_glue_tsv(write("pair.tsv", "id\tsentence1\tsentence2\tlabel\n7\ta\tb\t2\n"),
                                  {.text_a = "sentence1", .text_b = "sentence2"});
  EXPECT_EQ(pair.text_b[0], "b");
  EXPECT_EQ(pair.num_classes, 3);
  auto reg = data::read_glue_tsv(
      write("sts.tsv", "sentence1\tsentence2\tscore\nx\ty\t3.8\n"),
      {.text_a = "sentence1", .text_b = "sentence2", .label = "score", .regression = true});
  EXPECT_DOUBLE_EQ(reg.targets[0], 3.8);
  const std::string bad_label = write("bad.tsv", "sentence\tlabel\nok\t1\nno\tpositive\n");
  EXPECT_THROW_MSG(data::read_glue_tsv(bad_label), bad_label + ":3: label 'positive'");
  const std::string short_line = write("short.tsv", "sentence1\tsentence2\tlabel\na\tb\t0\nonly one\n");
  EXPECT_THROW_MSG(data::read_glue_tsv(short_line, {.text_a = "sentence1", .text_b = "sentence2"}),
                   short_line + ":3: 1 field(s), expected at least 3");
  data::GlueTsvOptions no_column;
  no_column.text_a = "text";
  EXPECT_THROW_MSG(data::read_glue_tsv(bad_label, no_column), ":1: no column 'text'");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace nabla
