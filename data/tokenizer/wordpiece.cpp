// BERT's BasicTokenizer + WordPiece (wordpiece.h). One pass over the UTF-8 text builds each normalised word
// in a reused buffer and hands it to WordPiece, so no per-character strings are made; ASCII takes a table
// lookup, other code points the generated Unicode tables (unicode.h).
#include "data/tokenizer/wordpiece.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <fstream>

#include "data/tokenizer/unicode.h"
#include "engine/error.h"

namespace nabla::data {
namespace {

namespace uc = unicode;

// BERT's CJK ranges (CJK Unified Ideographs and extensions A-E, compatibility ideographs and supplement).
bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_bert_punctuation(char32_t c) {
  if (c < 0x80)
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  return uc::is_punctuation(uc::category(c));
}

// Control characters BERT's clean-up drops: category C* except \t \n \r (which are white space).
bool is_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  if (c < 0x80) return c < 0x20 || c == 0x7F;
  return uc::is_other(uc::category(c));
}

// What an ASCII byte is to the basic tokenizer (with clean-up on).
enum AsciiClass : uint8_t { kWordChar, kSpace, kPunct, kDrop };
struct AsciiTable {
  AsciiClass cls[128];
  constexpr AsciiTable() : cls() {
    for (int c = 0; c < 128; ++c) {
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
        cls[c] = kSpace;
      else if (c < 0x20 || c == 0x7F)
        cls[c] = kDrop;
      else if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        cls[c] = kPunct;
      else
        cls[c] = kWordChar;
    }
  }
};
constexpr AsciiTable kAscii;

const char* const kSpecialNames[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

}  // namespace

BertTokenizer::BertTokenizer(std::vector<std::string> vocab, BertTokenizerOptions options)
    : vocab_(std::move(vocab)),
      options_(options),
      strip_(options.strip_accents.value_or(options.lower_case)) {
  NABLA_CHECK(options_.max_input_chars_per_word > 0,
              "BertTokenizer: max_input_chars_per_word must be > 0, got ", options_.max_input_chars_per_word);
  initial_.reserve(vocab_.size());
  for (size_t i = 0; i < vocab_.size(); ++i) {
    const std::string& t = vocab_[i];
    if (t.size() > 2 && t[0] == '#' && t[1] == '#')
      continuation_[t.substr(2)] = static_cast<int32_t>(i);
    else
      initial_[t] = static_cast<int32_t>(i);
    max_piece_bytes_ = std::max(max_piece_bytes_, t.size());
  }
  int32_t* ids[5] = {&pad_id_, &unk_id_, &cls_id_, &sep_id_, &mask_id_};
  for (int k = 0; k < 5; ++k) {
    *ids[k] = token_to_id(kSpecialNames[k]);
    NABLA_CHECK(*ids[k] >= 0, "BertTokenizer: the vocabulary (", vocab_.size(), " tokens) has no ",
                kSpecialNames[k], " token");
  }
}

BertTokenizer BertTokenizer::from_file(const std::string& vocab_txt, BertTokenizerOptions options) {
  std::ifstream in(vocab_txt, std::ios::binary);
  NABLA_CHECK(in.good(), "BertTokenizer: cannot open vocabulary file ", vocab_txt);
  std::vector<std::string> vocab;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    vocab.push_back(line);
  }
  NABLA_CHECK(!vocab.empty(), "BertTokenizer: ", vocab_txt,
              ": expected one token per line, the file is empty");
  try {
    return BertTokenizer(std::move(vocab), options);
  } catch (const Error& e) {
    fail(e.what(), " (", vocab_txt, ")");
  }
}

int32_t BertTokenizer::token_to_id(std::string_view token) const {
  if (token.size() > 2 && token[0] == '#' && token[1] == '#') {
    auto it = continuation_.find(token.substr(2));
    return it == continuation_.end() ? -1 : it->second;
  }
  auto it = initial_.find(token);
  return it == initial_.end() ? -1 : it->second;
}

const std::string& BertTokenizer::id_to_token(int32_t id) const {
  NABLA_CHECK(id >= 0 && id < vocab_size(), "BertTokenizer: id ", id, " out of range [0, ", vocab_size(),
              ")");
  return vocab_[id];
}

template <class Emit>
void BertTokenizer::for_each_word(std::string_view text, Emit&& emit) const {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  std::string word;
  const auto flush = [&] {
    if (!word.empty()) emit(std::string_view(word), -1);
    word.clear();
  };
  const auto single = [&](char32_t c) {  // a punctuation mark or CJK ideograph: a word of its own
    flush();
    uc::append_utf8(word, c);
    flush();
  };
  // Step 4 and 5 for one code point already past clean-up and CJK.
  const auto add = [&](char32_t c) {
    char32_t parts[4];
    int count = 1;
    if (strip_)
      count = uc::strip_accents(c, parts);
    else
      parts[0] = c;
    for (int k = 0; k < count; ++k) {
      char32_t p = options_.lower_case ? uc::to_lower(parts[k]) : parts[k];
      if (is_bert_punctuation(p))
        single(p);
      else if (uc::is_white_space(p))
        flush();
      else
        uc::append_utf8(word, p);
    }
  };
  size_t i = 0;
  while (i < n) {
    unsigned char b = s[i];
    if (b < 0x80) {
      if (b == '[' && !options_.split_special_tokens) {
        int32_t special = -1;
        size_t len = 0;
        for (const char* name : kSpecialNames) {
          std::string_view sv(name);
          if (text.substr(i, sv.size()) == sv) special = token_to_id(sv), len = sv.size();
        }
        if (special >= 0) {
          flush();
          emit(text.substr(i, len), special);
          i += len;
          continue;
        }
      }
      ++i;
      AsciiClass cls = kAscii.cls[b];
      if (cls == kWordChar) {
        word += static_cast<char>(options_.lower_case && b >= 'A' && b <= 'Z' ? b + 32 : b);
      } else if (cls == kSpace) {
        flush();
      } else if (cls == kPunct) {
        single(b);
      } else if (!options_.clean_text) {  // kept as BERT without clean-up keeps them; \v \f are white space
        if (b == 0x0B || b == 0x0C)
          flush();
        else
          word += static_cast<char>(b);
      }
      continue;
    }
    char32_t c = uc::decode_utf8(s, n, i);
    if (c == uc::kInvalid) c = 0xFFFD;
    if (options_.clean_text && (c == 0xFFFD || is_control(c))) continue;
    if (uc::is_white_space(c)) {
      flush();
    } else if (options_.tokenize_chinese_chars && is_cjk(c)) {
      flush();
      add(c);
      flush();
    } else {
      add(c);
    }
  }
  flush();
}

void BertTokenizer::wordpiece(std::string_view word, std::vector<int32_t>& out) const {
  const auto is_cont = [&](size_t k) { return (static_cast<unsigned char>(word[k]) & 0xC0) == 0x80; };
  size_t chars = 0;
  for (size_t k = 0; k < word.size(); ++k) chars += !is_cont(k);
  if (chars > static_cast<size_t>(options_.max_input_chars_per_word)) {
    out.push_back(unk_id_);
    return;
  }
  const size_t first_out = out.size();
  size_t start = 0;
  while (start < word.size()) {
    size_t end = std::min(word.size(), start + max_piece_bytes_);
    while (end < word.size() && is_cont(end)) --end;
    int32_t id = -1;
    const Map& map = start == 0 ? initial_ : continuation_;
    while (end > start) {
      auto it = map.find(word.substr(start, end - start));
      if (it != map.end()) {
        id = it->second;
        break;
      }
      do --end;
      while (end > start && is_cont(end));
    }
    if (id < 0) {
      out.resize(first_out);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(id);
    start = end;
  }
}

std::vector<std::string> BertTokenizer::basic_tokenize(std::string_view text) const {
  std::vector<std::string> words;
  for_each_word(text, [&](std::string_view w, int32_t) { words.emplace_back(w); });
  return words;
}

std::vector<int32_t> BertTokenizer::encode_ids(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for_each_word(text, [&](std::string_view w, int32_t special) {
    if (special >= 0)
      ids.push_back(special);
    else
      wordpiece(w, ids);
  });
  return ids;
}

std::vector<int32_t> BertTokenizer::encode_ids_until(std::string_view text, size_t limit) const {
  std::vector<int32_t> ids;
  ids.reserve(std::min(text.size() / 3, limit) + 4);
  for_each_word(text, [&](std::string_view w, int32_t special) {
    if (ids.size() >= limit) return;  // the rest of the text is scanned but not tokenized
    if (special >= 0)
      ids.push_back(special);
    else
      wordpiece(w, ids);
  });
  return ids;
}

std::vector<std::string> BertTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> pieces;
  for (int32_t id : encode_ids(text)) pieces.push_back(vocab_[id]);
  return pieces;
}

namespace {

// Lengths (k1, k2) that longest-first keeps of two texts of n1 and n2 tokens within `budget` (n1 + n2 >
// budget). Every rule keeps a shorter text of at most budget/2 tokens whole; they differ in who keeps the odd
// token when both are cut. For hf_tokenizers, n1 and n2 are the lengths after the early exit.
std::pair<size_t, size_t> longest_first(size_t n1, size_t n2, size_t budget, PairTruncation rule) {
  if (rule == PairTruncation::hf_python) {
    // One token at a time off the longer, the second on a tie: first the difference, then alternately,
    // starting with the second, so the second loses the odd one.
    const size_t remove = n1 + n2 - budget;
    const size_t diff = std::min(remove, n1 > n2 ? n1 - n2 : n2 - n1);
    const size_t rest = remove - diff;
    if (n1 > n2) return {n1 - diff - rest / 2, n2 - (rest - rest / 2)};
    return {n1 - rest / 2, n2 - diff - (rest - rest / 2)};
  }
  // tokenizers' truncate_encodings: s <= l are the shorter and the longer, the second text on a tie.
  const bool swap = n1 > n2;
  size_t s = swap ? n2 : n1, l;
  l = s > budget ? s : std::max(s, budget - s);
  if (s + l > budget) {
    s = budget / 2;
    l = s + budget % 2;
  }
  return swap ? std::pair{l, s} : std::pair{s, l};
}

}  // namespace

BertEncoding BertTokenizer::encode(std::string_view text, const BertEncodeOptions& o) const {
  std::vector<int32_t> ids = encode_ids(text);
  const size_t specials = o.add_special_tokens ? 2 : 0;
  if (o.max_length > 0 && ids.size() + specials > static_cast<size_t>(o.max_length)) {
    NABLA_CHECK(o.truncation, "BertTokenizer: the text has ", ids.size() + specials,
                " tokens, max_length is ", o.max_length, " and truncation is off");
    NABLA_CHECK(static_cast<size_t>(o.max_length) >= specials, "BertTokenizer: max_length ", o.max_length,
                " leaves no room for the ", specials, " special tokens");
    ids.resize(o.max_length - specials);
  }
  BertEncoding e;
  if (o.add_special_tokens) e.input_ids.push_back(cls_id_);
  e.input_ids.insert(e.input_ids.end(), ids.begin(), ids.end());
  if (o.add_special_tokens) e.input_ids.push_back(sep_id_);
  e.token_type_ids.assign(e.input_ids.size(), 0);
  e.attention_mask.assign(e.input_ids.size(), 1);
  if (o.pad_to_max_length && o.max_length > 0) {
    e.input_ids.resize(o.max_length, pad_id_);
    e.token_type_ids.resize(o.max_length, 0);
    e.attention_mask.resize(o.max_length, 0);
  }
  return e;
}

BertEncoding BertTokenizer::encode_pair(std::string_view a, std::string_view b,
                                        const BertEncodeOptions& o) const {
  // tokenizers 0.23 stops each text after the word that reaches max_length (when truncating at all).
  const bool early_exit =
      o.max_length > 0 && o.truncation && o.pair_truncation == PairTruncation::hf_tokenizers;
  const size_t limit = early_exit ? static_cast<size_t>(o.max_length) : SIZE_MAX;
  std::vector<int32_t> ia = encode_ids_until(a, limit), ib = encode_ids_until(b, limit);
  const size_t specials = o.add_special_tokens ? 3 : 0;
  if (o.max_length > 0 && ia.size() + ib.size() + specials > static_cast<size_t>(o.max_length)) {
    NABLA_CHECK(o.truncation, "BertTokenizer: the pair has ", ia.size() + ib.size() + specials,
                " tokens, max_length is ", o.max_length, " and truncation is off");
    NABLA_CHECK(static_cast<size_t>(o.max_length) >= specials, "BertTokenizer: max_length ", o.max_length,
                " leaves no room for the ", specials, " special tokens of a pair");
    const auto [k1, k2] = longest_first(ia.size(), ib.size(), o.max_length - specials, o.pair_truncation);
    ia.resize(std::min(ia.size(), k1));
    ib.resize(std::min(ib.size(), k2));
  }
  BertEncoding e;
  if (o.add_special_tokens) e.input_ids.push_back(cls_id_);
  e.input_ids.insert(e.input_ids.end(), ia.begin(), ia.end());
  if (o.add_special_tokens) e.input_ids.push_back(sep_id_);
  const size_t first = e.input_ids.size();
  e.input_ids.insert(e.input_ids.end(), ib.begin(), ib.end());
  if (o.add_special_tokens) e.input_ids.push_back(sep_id_);
  e.token_type_ids.assign(e.input_ids.size(), 1);
  std::fill(e.token_type_ids.begin(), e.token_type_ids.begin() + first, 0);
  e.attention_mask.assign(e.input_ids.size(), 1);
  if (o.pad_to_max_length && o.max_length > 0) {
    e.input_ids.resize(o.max_length, pad_id_);
    e.token_type_ids.resize(o.max_length, 0);
    e.attention_mask.resize(o.max_length, 0);
  }
  return e;
}

std::string BertTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string out;
  for (int32_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    const std::string& t = id_to_token(id);
    if (t.size() > 2 && t[0] == '#' && t[1] == '#') {
      out.append(t, 2);
    } else {
      if (!out.empty()) out += ' ';
      out += t;
    }
  }
  return out;
}

}  // namespace nabla::data
