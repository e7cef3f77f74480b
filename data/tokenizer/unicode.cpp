// Lookups into the generated Unicode tables (unicode.h). The category table is expanded once, on first use,
// from ~4,000 runs into one byte per code point; the lower-case and strip maps are binary-searched.
#include "data/tokenizer/unicode.h"

#include <algorithm>
#include <vector>

namespace nabla::data::unicode {
namespace {

struct CategoryRun {
  uint32_t first;
  uint8_t category;
};
struct CodePointPair {
  uint32_t from, to;
};
struct StripEntry {
  uint32_t cp;
  uint16_t offset;
  uint8_t count;
};

#include "data/tokenizer/unicode_tables.inc"

const std::vector<Category>& category_table() {
  static const std::vector<Category> table = [] {
    std::vector<Category> t(0x110000);
    constexpr size_t n = sizeof(kCategoryRuns) / sizeof(kCategoryRuns[0]);
    for (size_t r = 0; r < n; ++r) {
      uint32_t end = r + 1 < n ? kCategoryRuns[r + 1].first : 0x110000;
      std::fill(t.begin() + kCategoryRuns[r].first, t.begin() + end,
                static_cast<Category>(kCategoryRuns[r].category));
    }
    return t;
  }();
  return table;
}

constexpr char32_t kHangulFirst = 0xAC00, kHangulLast = 0xD7A3;

}  // namespace

Category category(char32_t cp) { return cp < 0x110000 ? category_table()[cp] : Category::Cn; }

char32_t to_lower(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp == 0x130) return 'i';
  const CodePointPair* end = kLowerMap + sizeof(kLowerMap) / sizeof(kLowerMap[0]);
  const CodePointPair* it =
      std::lower_bound(kLowerMap, end, cp, [](const CodePointPair& e, char32_t c) { return e.from < c; });
  return (it != end && it->from == cp) ? it->to : cp;
}

int strip_accents(char32_t cp, char32_t out[4]) {
  if (cp < 0xC0) {
    out[0] = cp;
    return 1;
  }
  if (cp >= kHangulFirst && cp <= kHangulLast) {  // Unicode 3.12: L V (T) jamo
    char32_t s = cp - kHangulFirst;
    out[0] = 0x1100 + s / (21 * 28);
    out[1] = 0x1161 + (s % (21 * 28)) / 28;
    if (s % 28 == 0) return 2;
    out[2] = 0x11A7 + s % 28;
    return 3;
  }
  const StripEntry* end = kStripMap + sizeof(kStripMap) / sizeof(kStripMap[0]);
  const StripEntry* it =
      std::lower_bound(kStripMap, end, cp, [](const StripEntry& e, char32_t c) { return e.cp < c; });
  if (it == end || it->cp != cp) {
    out[0] = cp;
    return 1;
  }
  for (int k = 0; k < it->count; ++k) out[k] = kStripPool[it->offset + k];
  return it->count;
}

const char* unicode_version() { return kUnicodeVersion; }

}  // namespace nabla::data::unicode
