// GPT-2's byte-level BPE (bpe.h): file reading, the hand-written pre-tokenizer, the merge loop and the cache.
//
// The merge loop is the usual priority-queue form: every adjacent pair with a rank is queued as (rank,
// position); the smallest is popped, checked to be still current, merged (the right symbol is unlinked) and
// the two new neighbouring pairs are queued. That merges the lowest-ranked pair leftmost first, which is
// what GPT-2's encoder.py does by merging all occurrences of the best pair left to right (a merge's result
// only ever takes part in merges of higher rank).
#include "data/tokenizer/bpe.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "data/tokenizer/unicode.h"
#include "engine/error.h"

namespace nabla::data {
namespace {

namespace uc = unicode;

// Character classes of the pattern: \p{L}, \p{N}, \s and everything else.
enum Cls : uint8_t { kL, kN, kS, kO };

struct AsciiCls {
  Cls cls[128];
  constexpr AsciiCls() : cls() {
    for (int c = 0; c < 128; ++c)
      cls[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? kL
               : (c >= '0' && c <= '9')                         ? kN
               : (c == ' ' || (c >= '\t' && c <= '\r'))         ? kS
                                                                : kO;
  }
};
constexpr AsciiCls kAsciiCls;

struct Char {
  uint32_t at;  // byte offset
  char32_t cp;  // the code point, or uc::kInvalid for an invalid byte
  Cls cls;
};

// Splits text (no special tokens in it) by GPT-2's pattern; calls piece(bytes) for each match in order.
template <class Piece>
void split_gpt2(std::string_view text, std::vector<Char>& chars, Piece&& piece) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t nb = text.size();
  chars.clear();
  for (size_t i = 0; i < nb;) {
    uint32_t at = static_cast<uint32_t>(i);
    if (s[i] < 0x80) {
      chars.push_back({at, s[i], kAsciiCls.cls[s[i]]});
      ++i;
      continue;
    }
    char32_t c = uc::decode_utf8(s, nb, i);
    Cls k = kO;
    if (c != uc::kInvalid) {
      if (uc::is_white_space(c)) {
        k = kS;
      } else {
        uc::Category cat = uc::category(c);
        k = uc::is_letter(cat) ? kL : uc::is_number(cat) ? kN : kO;
      }
    }
    chars.push_back({at, c, k});
  }
  const size_t n = chars.size();
  const auto byte_at = [&](size_t k) { return k < n ? chars[k].at : static_cast<uint32_t>(nb); };
  const auto cp_at = [&](size_t k) { return k < n ? chars[k].cp : char32_t{0}; };
  const auto emit = [&](size_t from, size_t to) {
    piece(text.substr(byte_at(from), byte_at(to) - byte_at(from)));
  };
  size_t i = 0;
  while (i < n) {
    const Char& c = chars[i];
    // 's 't 're 've 'm 'll 'd
    if (c.cp == '\'') {
      char32_t a = cp_at(i + 1), b = cp_at(i + 2);
      size_t len = 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd')
        len = 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        len = 3;
      if (len) {
        emit(i, i + len);
        i += len;
        continue;
      }
    }
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
    size_t start = i, run = i;
    if (c.cp == ' ' && i + 1 < n && chars[i + 1].cls != kS) run = i + 1;
    const Cls k = chars[run].cls;
    if (k != kS) {
      size_t j = run + 1;
      while (j < n && chars[j].cls == k) ++j;
      emit(start, j);
      i = j;
      continue;
    }
    // '\s+(?!\S)' then '\s+': a white-space run gives up its last character to the word that follows it
    size_t j = i + 1;
    while (j < n && chars[j].cls == kS) ++j;
    if (j < n && j - i >= 2) --j;
    emit(i, j);
    i = j;
  }
}

std::string read_text_file(const std::string& path, const char* who) {
  std::ifstream in(path, std::ios::binary);
  NABLA_CHECK(in.good(), who, ": cannot open ", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// unicode_to_byte[cp] for the 256 code points of bytes_to_unicode (all below 0x144); -1 elsewhere.
struct ByteDecoder {
  int16_t byte_of[0x144];
  ByteDecoder() {
    std::fill(std::begin(byte_of), std::end(byte_of), int16_t{-1});
    for (int b = 0; b < 256; ++b)
      byte_of[Gpt2Tokenizer::byte_to_unicode(static_cast<uint8_t>(b))] = static_cast<int16_t>(b);
  }
};

// Byte-level spelling -> raw bytes; throws when a code point is not one of the 256.
std::string spelling_to_bytes(std::string_view spelling, const char* who) {
  static const ByteDecoder decoder;
  std::string out;
  const auto* s = reinterpret_cast<const unsigned char*>(spelling.data());
  for (size_t i = 0; i < spelling.size();) {
    char32_t c = uc::decode_utf8(s, spelling.size(), i);
    NABLA_CHECK(c != uc::kInvalid && c < 0x144 && decoder.byte_of[c] >= 0, who, ": token \"", spelling,
                "\" has a character that is not one of GPT-2's 256 byte characters");
    out += static_cast<char>(decoder.byte_of[c]);
  }
  return out;
}

}  // namespace

char32_t Gpt2Tokenizer::byte_to_unicode(uint8_t b) {
  // Printable Latin-1 bytes spell themselves; the other 68 take U+0100.. in byte order.
  if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
  int n = 0;
  for (int k = 0; k < b; ++k)
    if (!((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE))) ++n;
  return 256 + n;
}

Gpt2Tokenizer::Gpt2Tokenizer(const std::vector<std::pair<std::string, int32_t>>& encoder,
                             const std::vector<std::pair<std::string, std::string>>& merges) {
  int32_t max_id = -1;
  for (const auto& [spelling, id] : encoder) {
    NABLA_CHECK(id >= 0, "Gpt2Tokenizer: token \"", spelling, "\" has a negative id ", id);
    max_id = std::max(max_id, id);
  }
  token_bytes_.assign(max_id + 1, std::string());
  std::vector<bool> seen(max_id + 1, false);
  for (const auto& [spelling, id] : encoder) {
    NABLA_CHECK(!seen[id], "Gpt2Tokenizer: id ", id, " is given to two tokens (one is \"", spelling, "\")");
    seen[id] = true;
    token_bytes_[id] = spelling_to_bytes(spelling, "Gpt2Tokenizer");
    ids_[token_bytes_[id]] = id;
  }
  for (int32_t id = 0; id <= max_id; ++id)
    NABLA_CHECK(seen[id], "Gpt2Tokenizer: the encoder has ids up to ", max_id, " but none is ", id);
  for (int b = 0; b < 256; ++b) {
    std::string one(1, static_cast<char>(b));
    int32_t id = token_to_id(one);
    NABLA_CHECK(id >= 0, "Gpt2Tokenizer: the encoder has no token for byte ", b, " (spelt U+", std::hex,
                static_cast<uint32_t>(byte_to_unicode(static_cast<uint8_t>(b))), ")");
    byte_id_[b] = id;
  }
  merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [left, right] = merges[r];
    int32_t a = token_to_id(spelling_to_bytes(left, "Gpt2Tokenizer merges"));
    int32_t b = token_to_id(spelling_to_bytes(right, "Gpt2Tokenizer merges"));
    int32_t ab = token_to_id(spelling_to_bytes(left + right, "Gpt2Tokenizer merges"));
    NABLA_CHECK(a >= 0 && b >= 0 && ab >= 0, "Gpt2Tokenizer: merge ", r, " \"", left, " ", right,
                "\" names a token the encoder lacks (",
                a < 0   ? left
                : b < 0 ? right
                        : left + right,
                ")");
    merges_.try_emplace((uint64_t(uint32_t(a)) << 32) | uint32_t(b), Merge{static_cast<int32_t>(r), ab});
  }
  if (token_to_id("<|endoftext|>") >= 0) eot_id_ = add_special_token("<|endoftext|>");
}

Gpt2Tokenizer Gpt2Tokenizer::from_files(const std::string& encoder_json, const std::string& vocab_bpe) {
  std::vector<std::pair<std::string, int32_t>> encoder;
  {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(encoder_json, "Gpt2Tokenizer"));
    } catch (const nlohmann::json::exception& e) {
      fail("Gpt2Tokenizer: ", encoder_json, ": not valid JSON: ", e.what());
    }
    NABLA_CHECK(j.is_object(), "Gpt2Tokenizer: ", encoder_json,
                ": expected a JSON object {token: id}, got a ", j.type_name());
    encoder.reserve(j.size());
    for (auto it = j.begin(); it != j.end(); ++it) {
      NABLA_CHECK(it.value().is_number_integer(), "Gpt2Tokenizer: ", encoder_json, ": token \"", it.key(),
                  "\" has a ", it.value().type_name(), " where an integer id was expected");
      encoder.emplace_back(it.key(), it.value().get<int32_t>());
    }
  }
  std::vector<std::pair<std::string, std::string>> merges;
  {
    std::istringstream in(read_text_file(vocab_bpe, "Gpt2Tokenizer"));
    std::string line;
    for (size_t line_no = 1; std::getline(in, line); ++line_no) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
      size_t space = line.find(' ');
      NABLA_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                      line.find(' ', space + 1) == std::string::npos,
                  "Gpt2Tokenizer: ", vocab_bpe, ": line ", line_no, ": expected \"left right\", got \"", line,
                  "\"");
      merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    }
  }
  try {
    return Gpt2Tokenizer(encoder, merges);
  } catch (const Error& e) {
    fail(e.what(), " (", encoder_json, ", ", vocab_bpe, ")");
  }
}

int32_t Gpt2Tokenizer::add_special_token(const std::string& text) {
  NABLA_CHECK(!text.empty(), "Gpt2Tokenizer: a special token cannot be empty");
  for (const auto& [t, id] : specials_)
    if (t == text) return id;
  int32_t id = token_to_id(text);
  if (id < 0) {
    id = vocab_size();
    token_bytes_.push_back(text);
    ids_[text] = id;
  }
  specials_.emplace_back(text, id);
  std::stable_sort(specials_.begin(), specials_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return id;
}

int32_t Gpt2Tokenizer::token_to_id(std::string_view bytes) const {
  auto it = ids_.find(bytes);
  return it == ids_.end() ? -1 : it->second;
}

const std::string& Gpt2Tokenizer::id_to_bytes(int32_t id) const {
  NABLA_CHECK(id >= 0 && id < vocab_size(), "Gpt2Tokenizer: id ", id, " out of range [0, ", vocab_size(),
              ")");
  return token_bytes_[id];
}

void Gpt2Tokenizer::bpe_uncached(std::string_view piece, std::vector<int32_t>& out) const {
  const int n = static_cast<int>(piece.size());
  std::vector<int32_t> id(n);
  std::vector<int> next(n), prev(n);
  for (int k = 0; k < n; ++k) {
    id[k] = byte_id_[static_cast<unsigned char>(piece[k])];
    next[k] = k + 1 < n ? k + 1 : -1;
    prev[k] = k - 1;
  }
  using Entry = std::pair<int32_t, int>;  // rank, position of the left symbol
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> queue;
  const auto rank_of = [&](int left) -> const Merge* {
    int right = next[left];
    if (right < 0) return nullptr;
    auto it = merges_.find((uint64_t(uint32_t(id[left])) << 32) | uint32_t(id[right]));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (int k = 0; k + 1 < n; ++k)
    if (const Merge* m = rank_of(k)) queue.emplace(m->rank, k);
  std::vector<bool> gone(n, false);
  while (!queue.empty()) {
    auto [rank, left] = queue.top();
    queue.pop();
    if (gone[left]) continue;
    const Merge* m = rank_of(left);
    if (!m || m->rank != rank) continue;  // stale: a neighbour was merged since this was queued
    int right = next[left];
    id[left] = m->id;
    gone[right] = true;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    if (prev[left] >= 0)
      if (const Merge* p = rank_of(prev[left])) queue.emplace(p->rank, prev[left]);
    if (const Merge* q = rank_of(left)) queue.emplace(q->rank, left);
  }
  for (int k = 0; k >= 0; k = next[k]) out.push_back(id[k]);
}

void Gpt2Tokenizer::bpe(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_id_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  {
    std::lock_guard lock(cache_->mutex);
    auto it = cache_->pieces.find(piece);
    if (it != cache_->pieces.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  bpe_uncached(piece, out);
  if (piece.size() > Cache::kMaxPieceBytes) return;  // long runs (base64, binary) would only fill the cache
  std::lock_guard lock(cache_->mutex);
  if (cache_->pieces.size() >= Cache::kLimit) cache_->pieces.clear();
  cache_->pieces.try_emplace(std::string(piece), out.begin() + first, out.end());
}

template <class Piece>
void Gpt2Tokenizer::for_each_piece(std::string_view text, Piece&& piece) const {
  std::vector<Char> chars;
  chars.reserve(text.size());
  split_gpt2(text, chars, piece);
}

std::vector<std::string> Gpt2Tokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string> pieces;
  for_each_piece(text, [&](std::string_view p) { pieces.emplace_back(p); });
  return pieces;
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<Char> chars;
  chars.reserve(std::min<size_t>(text.size(), 1 << 20));
  const auto ordinary = [&](std::string_view segment) {
    if (!segment.empty()) split_gpt2(segment, chars, [&](std::string_view p) { bpe(p, ids); });
  };
  if (!allow_special || specials_.empty()) {
    ordinary(text);
    return ids;
  }
  bool first_byte[256] = {};
  for (const auto& [t, id] : specials_) first_byte[static_cast<unsigned char>(t[0])] = true;
  size_t from = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!first_byte[static_cast<unsigned char>(text[i])]) continue;
    for (const auto& [t, id] : specials_) {  // longest first
      if (text.compare(i, t.size(), t) == 0) {
        ordinary(text.substr(from, i - from));
        ids.push_back(id);
        i += t.size();
        from = i;
        --i;
        break;
      }
    }
  }
  ordinary(text.substr(from));
  return ids;
}

std::string Gpt2Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) out += id_to_bytes(id);
  return out;
}

}  // namespace nabla::data
