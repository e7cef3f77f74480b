// The Unicode facts the tokenizers need: UTF-8 decoding and encoding, the general category of a code point,
// the simple lower-case mapping, and "strip accents" (canonical decomposition with the nonspacing marks
// removed, as BERT's BasicTokenizer does with NFD + dropping category Mn).
//
// The tables (unicode_tables.inc) are generated from Python's unicodedata by gen_unicode_tables.py beside
// this file; unicode_version() says which Unicode version they are. Lookups are O(1) (the category of every
// code point is expanded once into a 1.1 MB byte table) or a binary search over ~4,000 entries.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace nabla::data::unicode {

// General categories, in the order of the generator's CATEGORIES list.
// clang-format off
enum class Category : uint8_t {
  Cn, Cc, Cf, Co, Cs, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No,
  Pc, Pd, Ps, Pe, Pi, Pf, Po, Sm, Sc, Sk, So, Zs, Zl, Zp
};
// clang-format on

Category category(char32_t cp);
inline bool is_letter(Category c) { return c >= Category::Lu && c <= Category::Lo; }       // \p{L}
inline bool is_number(Category c) { return c >= Category::Nd && c <= Category::No; }       // \p{N}
inline bool is_punctuation(Category c) { return c >= Category::Pc && c <= Category::Po; }  // \p{P}
inline bool is_other(Category c) { return c <= Category::Cs; }                             // \p{C}

// The White_Space property (what Oniguruma's and Rust's \s / is_whitespace mean): \t \n \v \f \r, space,
// U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
inline bool is_white_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= '\t' && c <= '\r');
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Simple lower-case mapping (one code point to one); U+0130 maps to 'i' here, with its U+0307 dropped, which
// is what lower-casing then stripping accents gives.
char32_t to_lower(char32_t cp);

// NFD of cp with the Mn marks removed, written to out (at most 4 code points); returns how many (0 for a
// nonspacing mark itself). Hangul syllables decompose into their conjoining jamo, as NFD does.
int strip_accents(char32_t cp, char32_t out[4]);

// Decodes one UTF-8 sequence at s[i] (i < n), advancing i. An invalid or truncated sequence (overlong,
// surrogate, above U+10FFFF, stray continuation byte) consumes one byte and returns kInvalid.
constexpr char32_t kInvalid = 0xFFFFFFFF;
inline char32_t decode_utf8(const unsigned char* s, size_t n, size_t& i) {
  unsigned char b = s[i];
  if (b < 0x80) {
    ++i;
    return b;
  }
  int len;
  char32_t cp, min;
  if ((b & 0xE0) == 0xC0) {
    len = 2, cp = b & 0x1F, min = 0x80;
  } else if ((b & 0xF0) == 0xE0) {
    len = 3, cp = b & 0x0F, min = 0x800;
  } else if ((b & 0xF8) == 0xF0) {
    len = 4, cp = b & 0x07, min = 0x10000;
  } else {
    ++i;
    return kInvalid;
  }
  if (i + len > n) {
    ++i;
    return kInvalid;
  }
  for (int k = 1; k < len; ++k) {
    unsigned char c = s[i + k];
    if ((c & 0xC0) != 0x80) {
      ++i;
      return kInvalid;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return kInvalid;
  }
  i += len;
  return cp;
}

// Appends the UTF-8 encoding of cp (a valid scalar value) to out.
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// "14.0.0": the Unicode version of the tables.
const char* unicode_version();

}  // namespace nabla::data::unicode
