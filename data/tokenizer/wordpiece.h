// BERT's tokenizer: BasicTokenizer (text clean-up, CJK, lower-casing, accent stripping, punctuation split)
// followed by greedy longest-match-first WordPiece, and the [CLS] a [SEP] b [SEP] framing with truncation,
// padding, attention mask and token-type ids. Reads a standard vocab.txt (one token per line, id = line
// number, continuation pieces written "##piece").
//
// What one text goes through, in Hugging Face tokenizers' order (BertNormalizer, BertPreTokenizer,
// WordPiece), one code point at a time:
//   1. special tokens ([CLS] [SEP] [PAD] [MASK] [UNK]) written in the text are taken whole, as HF does;
//   2. clean: U+0000, U+FFFD and control characters (category C*, except \t \n \r) are dropped, white space
//      (the White_Space property) ends a word; invalid UTF-8 bytes count as U+FFFD and are dropped too;
//   3. a CJK ideograph (BERT's ranges) is a word of its own;
//   4. strip accents: NFD, then the nonspacing marks (Mn) removed; lower-case (one code point to one);
//   5. punctuation (ASCII 33-47, 58-64, 91-96, 123-126 and every P* category) is a word of its own;
//   6. WordPiece: the longest vocabulary piece that prefixes the rest of the word, "##"-prefixed after the
//      first; a word longer than 100 code points, or one with a part no piece matches, is [UNK] whole.
//
// Truncation of a pair is longest-first, by default exactly as Hugging Face `tokenizers` 0.23 (the Rust
// library behind transformers 5's BertTokenizer and BertTokenizerFast) does it, in two steps:
//   1. each text is tokenized word by word and dropped after the word that brings it to max_length tokens
//      or more (0.23's early exit: whole words, and max_length itself, not the budget);
//   2. with B = max_length - 3 and those lengths n1 <= n2: if n1 <= B/2 the shorter is kept whole and the
//      longer cut to B - n1; otherwise the shorter keeps floor(B/2) and the longer ceil(B/2); on a tie the
//      second text counts as the longer.
// Step 1 matters only when a text reaches max_length: two such texts usually tie after it (the second then
// keeps the odd token) whatever their full lengths. PairTruncation picks the older rules instead (see there).
// A single text is cut to max_length - 2 (all rules agree). Padding is on the right with [PAD], mask 0 and
// token type 0.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace nabla::data {

struct BertTokenizerOptions {
  bool lower_case = true;
  std::optional<bool> strip_accents;  // unset: same as lower_case (as in HF)
  bool tokenize_chinese_chars = true;
  bool clean_text = true;
  int max_input_chars_per_word = 100;
  bool split_special_tokens = false;  // true: "[MASK]" in the text is tokenized as text, not as the token
};

// How a pair too long for max_length is shared between its two texts (budget B = max_length - 3, or
// max_length without special tokens). All keep a shorter text of at most floor(B/2) tokens whole and cut
// the longer to the rest, and cut both to B/2 when B is even; they differ only in which text keeps the odd
// token when both are cut and B is odd.
enum class PairTruncation {
  // `tokenizers` >= 0.23 (transformers 5's BertTokenizer, BertTokenizerFast, BertWordPieceTokenizer with
  // enable_truncation(strategy="longest_first")): steps 1 and 2 above. The default.
  hf_tokenizers,
  // `tokenizers` <= 0.22 (and transformers 4's BertTokenizerFast on it): step 2 on the full lengths, so
  // the longer text keeps the odd token (the second on a tie).
  hf_tokenizers_0_22,
  // transformers' Python truncate_sequences (transformers 4's slow BertTokenizer): one token at a time off
  // the longer text, the second on a tie; so when both are cut the first keeps ceil(B/2), whichever was
  // longer.
  hf_python,
};

struct BertEncodeOptions {
  int max_length = 0;      // 0: no limit (and no padding)
  bool truncation = true;  // longest-first down to max_length; false: throw when too long
  bool pad_to_max_length = false;
  bool add_special_tokens = true;
  PairTruncation pair_truncation = PairTruncation::hf_tokenizers;
};

// One encoded example; the three vectors have the same length.
struct BertEncoding {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> token_type_ids;  // 0 for [CLS] a [SEP], 1 for b [SEP], 0 for padding
  std::vector<int32_t> attention_mask;  // 1 for tokens, 0 for padding
};

class BertTokenizer {
 public:
  // vocab[i] is the token of id i. Throws nabla::Error when [UNK], [CLS], [SEP], [PAD] or [MASK] is missing.
  explicit BertTokenizer(std::vector<std::string> vocab, BertTokenizerOptions options = {});
  // Reads vocab.txt; throws nabla::Error naming the file when it cannot be read or lacks a special token.
  static BertTokenizer from_file(const std::string& vocab_txt, BertTokenizerOptions options = {});

  // Words after steps 1-5 (special tokens included as words).
  std::vector<std::string> basic_tokenize(std::string_view text) const;
  // Pieces ("hello", "##s", "[UNK]") and their ids, without [CLS]/[SEP].
  std::vector<std::string> tokenize(std::string_view text) const;
  std::vector<int32_t> encode_ids(std::string_view text) const;
  // Appends the WordPiece ids of one already normalised word.
  void wordpiece(std::string_view word, std::vector<int32_t>& out) const;
  // encode_ids, stopped after the word that brings it to at least `limit` ids (tokenizers 0.23's early exit).
  std::vector<int32_t> encode_ids_until(std::string_view text, size_t limit) const;

  BertEncoding encode(std::string_view text, const BertEncodeOptions& options = {}) const;
  BertEncoding encode_pair(std::string_view a, std::string_view b,
                           const BertEncodeOptions& options = {}) const;
  // Tokens joined by spaces with " ##" removed (no clean-up of spaces before punctuation).
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = true) const;

  int32_t token_to_id(std::string_view token) const;  // -1 when absent
  const std::string& id_to_token(int32_t id) const;   // throws for an id out of range
  int32_t vocab_size() const { return static_cast<int32_t>(vocab_.size()); }
  int32_t pad_id() const { return pad_id_; }
  int32_t unk_id() const { return unk_id_; }
  int32_t cls_id() const { return cls_id_; }
  int32_t sep_id() const { return sep_id_; }
  int32_t mask_id() const { return mask_id_; }
  bool is_special(int32_t id) const {
    return id == pad_id_ || id == unk_id_ || id == cls_id_ || id == sep_id_ || id == mask_id_;
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Map = std::unordered_map<std::string, int32_t, Hash, std::equal_to<>>;

  // Steps 1-5 over text; calls emit(word, is_special_id) for each word (is_special_id >= 0 for a special).
  template <class Emit>
  void for_each_word(std::string_view text, Emit&& emit) const;

  std::vector<std::string> vocab_;
  Map initial_;       // word-initial pieces
  Map continuation_;  // "##x" stored as "x"
  size_t max_piece_bytes_ = 1;
  BertTokenizerOptions options_;
  bool strip_ = true;
  int32_t pad_id_ = -1, unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, mask_id_ = -1;
};

}  // namespace nabla::data
