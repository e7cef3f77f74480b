// libFuzzer target: the BERT WordPiece tokenizer (data/tokenizer/wordpiece.h). The first byte picks the
// options (lower case, accents, Chinese characters, max_length, truncation, padding, special tokens);
// bit 7 set: the input up to the first 0x00 is a vocab.txt, read with from_file() from the private input
// file, and the rest is the text; else the text goes to the fixture vocabulary (tests/data/fixtures/
// bert_vocab.txt). encode() and encode_pair() (the text split at its first tab) must give three vectors of
// one length within max_length, ids inside the vocabulary; errors must be nabla::Error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "data/tokenizer/wordpiece.h"
#include "engine/error.h"
#include "fuzz/fuzz_common.h"

namespace {

using nabla::data::BertEncodeOptions;
using nabla::data::BertEncoding;
using nabla::data::BertTokenizer;
using nabla::data::BertTokenizerOptions;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_wordpiece: %s\n", what);
    std::abort();
  }
}

void check_encoding(const BertTokenizer& tok, const BertEncoding& e, const BertEncodeOptions& o) {
  check(e.input_ids.size() == e.token_type_ids.size() && e.input_ids.size() == e.attention_mask.size(),
        "the three vectors differ in length");
  if (o.max_length > 0 && o.truncation)
    check(e.input_ids.size() <= static_cast<size_t>(o.max_length), "longer than max_length");
  if (o.max_length > 0 && o.pad_to_max_length)
    check(e.input_ids.size() >= static_cast<size_t>(o.max_length), "padded short of max_length");
  for (int32_t id : e.input_ids) check(id >= 0 && id < tok.vocab_size(), "an id outside the vocabulary");
  (void)tok.decode(e.input_ids, false);
}

void run(const BertTokenizer& tok, std::string_view text, const BertEncodeOptions& o) {
  try {
    check_encoding(tok, tok.encode(text, o), o);
  } catch (const nabla::Error&) {
  }
  const size_t tab = text.find('\t');
  try {
    check_encoding(tok, tok.encode_pair(text.substr(0, tab), tab == text.npos ? "" : text.substr(tab + 1), o),
                   o);
  } catch (const nabla::Error&) {
  }
  const std::vector<int32_t> ids = tok.encode_ids(text);
  for (int32_t id : ids) check(id >= 0 && id < tok.vocab_size(), "encode_ids: an id outside the vocabulary");
  (void)tok.decode(ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  BertTokenizerOptions topt;
  topt.lower_case = mode & 1;
  if (mode & 2) topt.strip_accents = (mode & 4) != 0;
  topt.tokenize_chinese_chars = (mode & 8) == 0;
  topt.split_special_tokens = (mode & 16) != 0;
  topt.max_input_chars_per_word = (mode & 32) ? 8 : 100;
  BertEncodeOptions eopt;
  eopt.max_length = (mode & 64) ? 2 + mode % 7 : 0;  // from 2: below the specials' count as well
  eopt.truncation = (mode % 3) != 0;
  eopt.pad_to_max_length = (mode % 5) == 0;
  eopt.add_special_tokens = (mode % 11) != 0;
  eopt.pair_truncation = static_cast<nabla::data::PairTruncation>((mode >> 2) % 3);  // the three rules
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);

  if (mode & 128) {
    const size_t nul = text.find('\0');
    const std::string_view vocab = text.substr(0, nul);
    text = nul == text.npos ? std::string_view() : text.substr(nul + 1);
    const std::string& path =
        nabla::fuzz::write_input(reinterpret_cast<const uint8_t*>(vocab.data()), vocab.size());
    try {
      const BertTokenizer tok = BertTokenizer::from_file(path, topt);
      run(tok, text, eopt);
    } catch (const nabla::Error&) {
    }
    return 0;
  }
  try {
    const BertTokenizer tok = BertTokenizer::from_file(NABLA_FUZZ_FIXTURES "/bert_vocab.txt", topt);
    run(tok, text, eopt);
  } catch (const nabla::Error& e) {
    std::fprintf(stderr, "fuzz_wordpiece: the fixture tokenizer threw: %s\n", e.what());
    std::abort();
  }
  return 0;
}
