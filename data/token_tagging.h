// Token tagging for a BERT token-classification head: BIO tags over whitespace words, their alignment to
// WordPiece pieces, and a TSV format of tagged sentences (train_bert --head token; the sentiment study's
// E2E-ABSA baseline, data/sentiment_bert.h).
//
//   tags       one per word: "O", "B-<type>" (a span starts), "I-<type>" (it goes on). bio_spans reads
//              them leniently as CoNLL's evaluation does: an I-x after O or after a span of another type
//              starts a span of type x.
//   alignment  each word is WordPiece-tokenized on its own (BertTokenizer::tokenize of the word, so
//              "n't" or "technologies:" may give several pieces); the word's label goes on its FIRST piece,
//              -100 (ignored by the loss) on the others, on [CLS]/[SEP] and on padding; words past
//              max_length - 2 pieces are cut (first_piece -1) and a word with no pieces at all (only
//              control characters) has first_piece -1 too: prediction gives both the fallback label.
//   TSV        a header naming the columns, then `w1 w2 ... wn<TAB>t1 t2 ... tn` (words and tags separated
//              by single spaces; their counts must agree). Errors name the file and the line.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer/wordpiece.h"

namespace nabla::data {

struct TagSpan {
  int64_t begin = 0, end = 0;  // words [begin, end)
  std::string type;
  bool operator==(const TagSpan&) const = default;
};

// Spans of a BIO tag sequence; throws nabla::Error naming the position for a tag that is not O, B-x, I-x.
std::vector<TagSpan> bio_spans(const std::vector<std::string>& tags);
// Tags of n words with these spans (B- on the first word, I- on the rest); throws for a span out of range,
// empty, or overlapping another.
std::vector<std::string> bio_tags(int64_t n, const std::vector<TagSpan>& spans);

// Words separated by runs of ASCII whitespace.
std::vector<std::string> split_words(std::string_view text);

struct TaggedEncoding {
  std::vector<int32_t> input_ids, attention_mask;  // [max_length], padded
  std::vector<int64_t> labels;                     // [max_length], -100 off the first pieces
  std::vector<int64_t> first_piece;                // per word: its first piece's position, or -1
};
// [CLS] pieces of word 0 ... [SEP], padded to max_length. word_labels: one per word, or empty (prediction:
// labels all -100).
TaggedEncoding encode_tagged_words(const BertTokenizer& tok, const std::vector<std::string>& words,
                                   const std::vector<int64_t>& word_labels, int64_t max_length);
// Each word's label read at its first piece from per-position predictions; `fallback` for words without one.
std::vector<int64_t> word_labels_from_pieces(const std::vector<int64_t>& first_piece,
                                             const std::vector<int64_t>& piece_labels, int64_t fallback);

struct TaggedSentences {
  std::vector<std::vector<std::string>> words, tags;
  int64_t size() const { return static_cast<int64_t>(words.size()); }
};
TaggedSentences read_tagging_tsv(const std::string& path, const std::string& words_column = "tokens",
                                 const std::string& tags_column = "tags");
// The label set of these sentences' tags: "O" first, then the others sorted.
std::vector<std::string> tag_label_set(const TaggedSentences& s);

}  // namespace nabla::data
