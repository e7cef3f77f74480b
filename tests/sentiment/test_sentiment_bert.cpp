// The study's BERT baselines for E2E-ABSA and ECPE: BIO tags and their round trip (spans -> word tags ->
// first-piece labels of a WordPiece encoding -> word tags -> spans) on hand-made sentences with sub-word
// splits and truncation, the ECPE candidates, training pairs and decoding, the study's E2E-ABSA and ECPE
// scores of decoded predictions against hand-computed values, and a tiny token tagger whose loss falls on a
// slice of the 14res training set (data/token_tagging.h, data/sentiment_bert.h, apps/common/bert_task.h).
#include <random>
#include <set>

#include "algorithms/metrics/sentiment.h"
#include "algorithms/optim/optimizer.h"
#include "apps/common/bert_task.h"
#include "data/sentiment_bert.h"
#include "data/sentiment_prompts.h"
#include "data/token_tagging.h"
#include "sentiment_testing.h"

namespace nabla::test {
namespace {

using data::TagSpan;
using Pairs = std::vector<std::pair<std::string, std::string>>;

// A small vocabulary in which "ambiance" is amb ##ian ##ce, "waiters" wait ##ers and "n't" n ' t.
data::BertTokenizer hand_tokenizer() {
  return data::BertTokenizer({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "amb", "##ian", "##ce",
                              "was",   "great", "but",   "wine",  "list",   "is",  "n",   "'",     "t",
                              "cheap", ".",     "wait",  "##ers", "food",   ",",   "and", "slow"});
}

TEST(TokenTagging, BioSpansAndTagsRoundTripAndReadLeniently) {
  const std::vector<TagSpan> spans = {{0, 2, "POS"}, {2, 3, "POS"}, {5, 6, "NEG"}};
  const auto tags = data::bio_tags(7, spans);
  EXPECT_EQ(tags, (std::vector<std::string>{"B-POS", "I-POS", "B-POS", "O", "O", "B-NEG", "O"}));
  EXPECT_EQ(data::bio_spans(tags), spans);  // adjacent spans of one type stay apart (B- starts one)
  // CoNLL's reading: an I- after O, or after another type, starts a span
  EXPECT_EQ(data::bio_spans({"I-NEU", "I-NEU", "I-POS", "O", "I-NEG"}),
            (std::vector<TagSpan>{{0, 2, "NEU"}, {2, 3, "POS"}, {4, 5, "NEG"}}));
  EXPECT_NE(error_of([] {
              data::bio_spans({"O", "X-POS"});
            }).find("tag 'X-POS' at word 1"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              data::bio_tags(3, {{0, 2, "A"}, {1, 3, "B"}});
            }).find("overlaps"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              data::bio_tags(3, {{2, 4, "A"}});
            }).find("expected 0 <= begin < end <= 3"),
            std::string::npos);
}

TEST(SentimentBert, E2eTagsRoundTripThroughSubWordPieces) {
  const data::BertTokenizer tok = hand_tokenizer();
  std::mt19937 rng(static_cast<uint32_t>(next_seed()));
  struct Case {
    std::string text;
    Pairs pairs;
  };
  const std::vector<Case> cases = {
      {"The ambiance was great but the wine list is n't cheap .",
       {{"ambiance", "positive"}, {"wine list", "negative"}}},
      {"Food , waiters and food .", {{"food", "Positive"}, {"Waiters", "neutral"}, {"food", "negative"}}},
      {"The wine was great .", {}},
  };
  const std::vector<std::string> labels = {"O", "B-NEG", "B-NEU", "B-POS", "I-NEG", "I-NEU", "I-POS"};
  for (const Case& c : cases) {
    const auto words = data::split_words(c.text);
    int64_t unmatched = -1;
    const auto tags = data::e2e_tags(words, c.pairs, &unmatched);
    EXPECT_EQ(unmatched, 0) << c.text;
    std::vector<int64_t> ids;
    for (const auto& t : tags) ids.push_back(std::find(labels.begin(), labels.end(), t) - labels.begin());
    const data::TaggedEncoding e = data::encode_tagged_words(tok, words, ids, 32);
    // the labels sit on the first piece of each word only
    int64_t labelled = 0;
    for (size_t w = 0; w < words.size(); ++w) {
      ASSERT_GE(e.first_piece[w], 1);
      EXPECT_EQ(e.labels[static_cast<size_t>(e.first_piece[w])], ids[w]);
    }
    for (int64_t v : e.labels) labelled += v != -100;
    EXPECT_EQ(labelled, static_cast<int64_t>(words.size()));
    // a "model" that is right on first pieces and random elsewhere gives back the gold pairs, lower-cased
    std::vector<int64_t> pieces;
    for (int64_t v : e.labels) pieces.push_back(v != -100 ? v : static_cast<int64_t>(rng() % labels.size()));
    std::vector<std::string> back;
    for (int64_t k : data::word_labels_from_pieces(e.first_piece, pieces, 0))
      back.push_back(labels[static_cast<size_t>(k)]);
    EXPECT_EQ(back, tags);
    Pairs want;
    for (const auto& [a, p] : c.pairs) want.emplace_back(data::to_lower(a), data::to_lower(p));
    Pairs got = data::e2e_pairs_from_tags(words, back);
    std::sort(want.begin(), want.end()), std::sort(got.begin(), got.end());
    EXPECT_EQ(got, want) << c.text;
  }
  // the pieces of the first sentence: [CLS] the amb ##ian ##ce was great but the wine list is n ' t cheap .
  // [SEP]
  const auto words = data::split_words(cases[0].text);
  const auto e = data::encode_tagged_words(tok, words, {}, 32);
  EXPECT_EQ(e.first_piece[1], 2);  // ambiance: pieces 2, 3, 4
  EXPECT_EQ(e.first_piece[2], 5);
  EXPECT_EQ(e.first_piece[9], 12);  // n't: pieces 12, 13, 14
  EXPECT_EQ(e.first_piece[10], 15);
  EXPECT_EQ(tok.id_to_token(e.input_ids[3]), "##ian");
  EXPECT_EQ(e.input_ids[17], tok.sep_id());
  EXPECT_EQ(e.attention_mask[17], 1);
  EXPECT_EQ(e.attention_mask[18], 0);
  EXPECT_EQ(e.input_ids[18], tok.pad_id());
  // truncation: 8 positions hold [CLS], 6 pieces and [SEP]: "The ambiance was great" fit, the rest is cut
  const auto t = data::encode_tagged_words(tok, words, {}, 8);
  EXPECT_EQ(t.first_piece[3], 6);
  EXPECT_EQ(t.first_piece[4], -1);
  EXPECT_EQ(t.input_ids[7], tok.sep_id());
  const auto cut = data::word_labels_from_pieces(t.first_piece, std::vector<int64_t>(8, 3), 0);
  EXPECT_EQ(cut, (std::vector<int64_t>{3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0}));
  // an aspect that is not among the words is counted and left out
  int64_t unmatched = 0;
  EXPECT_EQ(data::e2e_tags(words, {{"service", "negative"}, {"wine", "positive"}}, &unmatched),
            (std::vector<std::string>{"O", "O", "O", "O", "O", "O", "B-POS", "O", "O", "O", "O", "O"}));
  EXPECT_EQ(unmatched, 1);
  EXPECT_NE(error_of([&] {
              data::e2e_tags(words, {{"wine", "conflict"}});
            }).find("polarity 'conflict'"),
            std::string::npos);
}

TEST(SentimentBert, TaggingTsvReadsAndNamesBrokenLines) {
  const std::string ok = write_temp("ok.tsv", "tokens\ttags\nthe food\tO B-POS\nslow waiters\tB-NEG I-NEG\n");
  const data::TaggedSentences s = data::read_tagging_tsv(ok);
  ASSERT_EQ(s.size(), 2);
  EXPECT_EQ(s.tags[1][1], "I-NEG");
  EXPECT_EQ(data::tag_label_set(s), (std::vector<std::string>{"O", "B-NEG", "B-POS", "I-NEG"}));
  const std::string bad = write_temp("bad.tsv", "tokens\ttags\nthe food\tO\n");
  EXPECT_NE(error_of([&] { data::read_tagging_tsv(bad); }).find("bad.tsv:2: 2 words but 1 tags"),
            std::string::npos);
  const std::string badtag = write_temp("badtag.tsv", "tokens\ttags\nthe food\tO POS\n");
  EXPECT_NE(error_of([&] { data::read_tagging_tsv(badtag); }).find("badtag.tsv:2: tag 'POS'"),
            std::string::npos);
  const std::string nohead = write_temp("nohead.tsv", "words\ttags\n");
  EXPECT_NE(error_of([&] { data::read_tagging_tsv(nohead); }).find("lacks the column 'tokens'"),
            std::string::npos);
}

TEST(SentimentBert, EcpeCandidatesTrainingPairsAndDecoding) {
  EXPECT_EQ(data::ecpe_candidates(3, 1),
            (std::vector<std::pair<int, int>>{{1, 1}, {1, 2}, {2, 1}, {2, 2}, {2, 3}, {3, 2}, {3, 3}}));
  EXPECT_EQ(data::ecpe_candidates(4, 2).size(), 14u);  // 16 minus (1, 4) and (4, 1)
  data::SentimentExample doc;
  doc.id = "7";
  doc.clauses = {"a b", "c", "d e", "f", "g"};
  doc.clause_pairs = {{3, 2}, {3, 5}};  // (3, 5) is outside window 1
  const auto texts = data::ecpe_pair_texts(doc, 3, 2);
  EXPECT_EQ(texts.first, "d e");
  EXPECT_EQ(texts.second, "-1 c");
  EXPECT_NE(error_of([&] { data::ecpe_pair_texts(doc, 6, 1); }).find("outside its 5 clauses"),
            std::string::npos);
  data::PyRandom rng(static_cast<uint32_t>(next_seed()));
  const auto train = data::ecpe_training_pairs(doc, 1, 4, rng);
  ASSERT_EQ(train.size(), 5u);  // the gold pair in the window and 4 of the 12 others
  int positives = 0;
  std::set<std::pair<int, int>> seen;
  for (const auto& p : train) {
    positives += p.label;
    EXPECT_EQ(p.label, p.e == 3 && p.c == 2 ? 1 : 0);
    EXPECT_LE(std::abs(p.c - p.e), 1);
    seen.insert({p.e, p.c});
  }
  EXPECT_EQ(positives, 1);
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(data::ecpe_training_pairs(doc, 1, 100, rng).size(), 13u);  // all candidates
  // decoding: every candidate at the threshold, and always the best
  const std::vector<std::pair<int, int>> cand = {{1, 1}, {2, 1}, {2, 2}, {3, 2}};
  EXPECT_EQ(data::ecpe_decode(cand, {0.1, 0.7, 0.5, 0.2}, 0.5),
            (std::vector<std::pair<int, int>>{{2, 1}, {2, 2}}));
  EXPECT_EQ(data::ecpe_decode(cand, {0.1, 0.3, 0.2, 0.25}, 0.5), (std::vector<std::pair<int, int>>{{2, 1}}));
  EXPECT_NE(error_of([&] { data::ecpe_decode(cand, {0.1}, 0.5); }).find("1 probabilities for 4 candidates"),
            std::string::npos);
}

// The study's scores of the BERT outputs, computed by hand.
TEST(SentimentBert, E2eAndEcpeScoresOfDecodedPredictionsByHand) {
  auto items = [](const Pairs& p) {
    std::vector<std::string> v;
    for (const auto& [a, q] : p) v.push_back(a + "\x1f" + q);
    return v;
  };
  // E2E-ABSA: gold {food+, wine list-}, {service-}, {}; predicted tags give {food+, wine-}, {}, {staff0}:
  // TP 1 (food+; "wine" is not "wine list"), 3 predicted, 3 gold: P = R = F1 = 1/3
  const auto w1 = data::split_words("The food is good but the wine list is short");
  const auto w3 = data::split_words("Staff was there");
  std::vector<std::vector<std::string>>
      gold = {items({{"food", "positive"}, {"wine list", "negative"}}), items({{"service", "negative"}}), {}},
      pred = {
          items(data::e2e_pairs_from_tags(w1, {"O", "B-POS", "O", "O", "O", "O", "B-NEG", "O", "O", "O"})),
          {},
          items(data::e2e_pairs_from_tags(w3, {"B-NEU", "O", "O"})),
      };
  EXPECT_EQ(pred[0], items({{"food", "positive"}, {"wine", "negative"}}));
  EXPECT_EQ(pred[2], items({{"staff", "neutral"}}));
  metrics::PrfScores s = metrics::micro_prf(gold, pred);
  EXPECT_EQ(s.tp, 1);
  EXPECT_EQ(s.predicted, 3);
  EXPECT_EQ(s.gold, 3);
  EXPECT_NEAR(s.f1, 1.0 / 3, 1e-12);
  // the wrong polarity on a right span is wrong: food- against food+
  EXPECT_EQ(metrics::micro_prf({items({{"food", "positive"}})}, {items({{"food", "negative"}})}).tp, 0);
  // ECPE: doc 1 gold {(2,1)}, decoded {(2,1), (3,3)}; doc 2 gold {(1,1), (3,2)}, decoded {(3,2)} (its best
  // only): TP 2, 3 predicted, 3 gold: P = R = F1 = 2/3
  auto pairs = [](const std::vector<std::pair<int, int>>& v) {
    std::vector<std::string> out;
    for (const auto& [e, c] : v) out.push_back(str_cat(e, ",", c));
    return out;
  };
  const auto c1 = data::ecpe_candidates(3, 1), c2 = data::ecpe_candidates(3, 1);
  std::vector<double> p1(c1.size(), 0.1), p2(c2.size(), 0.2);
  p1[2] = 0.9, p1[6] = 0.6;  // (2,1), (3,3)
  p2[5] = 0.4;               // (3,2), below the threshold but the best
  s = metrics::micro_prf({pairs({{2, 1}}), pairs({{1, 1}, {3, 2}})},
                         {pairs(data::ecpe_decode(c1, p1, 0.5)), pairs(data::ecpe_decode(c2, p2, 0.5))});
  EXPECT_EQ(s.tp, 2);
  EXPECT_EQ(s.predicted, 3);
  EXPECT_EQ(s.gold, 3);
  EXPECT_NEAR(s.precision, 2.0 / 3, 1e-12);
  EXPECT_NEAR(s.recall, 2.0 / 3, 1e-12);
  EXPECT_NEAR(s.f1, 2.0 / 3, 1e-12);
}

// A 2-layer, 32-wide BERT tagger on the first 12 sentences of 14res train (unified tags; a vocabulary of
// the slice's words): the training loss falls and the tagger's span F1 on the slice rises.
TEST(SentimentBert, TinyTaggerLossFallsOnASlice) {
  auto ex = data::read_e2e_absa(sentiment_file("standard/ASPE/14res/train.txt"));
  ex.resize(12);
  data::TaggedSentences s;
  std::set<std::string> vocab_words;
  const data::BertTokenizer bootstrap({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"});
  for (const auto& e : ex) {
    s.words.push_back(data::split_words(e.text));
    s.tags.push_back(data::e2e_tags(s.words.back(), e.pairs));
    for (const auto& w : bootstrap.basic_tokenize(e.text)) vocab_words.insert(w);
  }
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  vocab.insert(vocab.end(), vocab_words.begin(), vocab_words.end());
  const data::BertTokenizer tok(vocab);
  const std::vector<std::string> labels = data::tag_label_set(s);
  const apps::EncodedTags set = apps::encode_tagging(s, labels, tok, 32);
  models::BertConfig c = models::BertConfig::preset("bert-tiny");
  c.num_hidden_layers = 2, c.hidden_size = 32, c.num_attention_heads = 2, c.intermediate_size = 64;
  c.vocab_size = tok.vocab_size(), c.max_position_embeddings = 64,
  c.num_labels = static_cast<int64_t>(labels.size());
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0;
  manual_seed(next_seed());
  models::BertForTokenClassification model(c);
  model.train();
  const apps::TaggerResult before = apps::evaluate_bert_tagger(model, set, labels, 8, Device::cpu(), false);
  auto opt = apps::make_bert_optimizer("adamw", model, 5e-3, 0.0, 0.1);
  const apps::BertInputs u = apps::unpack_bert_inputs(set.inputs);
  std::vector<double> losses;
  for (int step = 0; step < 25; ++step) {
    opt->zero_grad();
    Tensor loss = model.loss(model.forward(u.ids, u.types, u.mask), set.labels);
    loss.backward();
    opt->step();
    losses.push_back(loss.item());
  }
  const apps::TaggerResult after = apps::evaluate_bert_tagger(model, set, labels, 8, Device::cpu(), false);
  EXPECT_LT(losses.back(), 0.3 * losses.front()) << losses.front() << " -> " << losses.back();
  EXPECT_NEAR(after.loss, losses.back(), 0.2 * losses.back() + 0.05);  // the evaluation's loss: the same CE
  EXPECT_LT(after.loss, before.loss);
  EXPECT_GT(after.f1, before.f1);
  EXPECT_GT(after.token_accuracy, 0.9);
  std::printf("tiny tagger: loss %.3f -> %.3f, span F1 %.3f -> %.3f\n", losses.front(), losses.back(),
              before.f1, after.f1);
}

}  // namespace
}  // namespace nabla::test
