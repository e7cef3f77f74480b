// libFuzzer target: GPT-2's byte-level BPE tokenizer (data/tokenizer/bpe.h). First byte even: the rest is
// text for the fixture tokenizer (tests/data/fixtures/gpt2_encoder.json, gpt2_vocab.bpe, plus an added
// special token), and decode(encode(x)) must give x back byte for byte, with and without special tokens.
// First byte odd: the rest, split at its first 0x00, is an encoder.json and a vocab.bpe, loaded with
// from_files() (only nabla::Error may escape); a tokenizer that loads must round-trip its own two files.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "data/tokenizer/bpe.h"
#include "engine/error.h"
#include "fuzz/fuzz_common.h"

namespace {

using nabla::data::Gpt2Tokenizer;

void round_trip(const Gpt2Tokenizer& tok, std::string_view text) {
  for (bool allow_special : {true, false}) {
    const std::vector<int32_t> ids = tok.encode(text, allow_special);
    const std::string back = tok.decode(ids);
    if (back != text) {
      std::fprintf(stderr, "fuzz_bpe: decode(encode(x)) != x (allow_special=%d): %zu bytes in, %zu out\n",
                   int(allow_special), text.size(), back.size());
      std::abort();
    }
  }
}

const Gpt2Tokenizer& fixture() {
  static const Gpt2Tokenizer tok = [] {
    Gpt2Tokenizer t = Gpt2Tokenizer::from_files(NABLA_FUZZ_FIXTURES "/gpt2_encoder.json",
                                                NABLA_FUZZ_FIXTURES "/gpt2_vocab.bpe");
    t.add_special_token("<|im_start|>");
    return t;
  }();
  return tok;
}

// The second file of a fuzzed pair, next to fuzz_common's input file.
const std::string& write_second(std::string_view bytes) {
  static const std::string path = "/tmp/nabla_fuzz_bpe_" + std::to_string(::getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    round_trip(fixture(), rest);
    // Ids from the input: decode must throw nabla::Error for an unknown one, never read outside the table.
    std::vector<int32_t> ids;
    for (size_t i = 0; i + 2 <= rest.size() && ids.size() < 64; i += 2)
      ids.push_back(static_cast<int16_t>(uint16_t(uint8_t(rest[i])) | uint16_t(uint8_t(rest[i + 1])) << 8));
    try {
      (void)fixture().decode(ids);
    } catch (const nabla::Error&) {
    }
    return 0;
  }
  const size_t nul = rest.find('\0');
  const std::string_view json = rest.substr(0, nul);
  const std::string_view merges = nul == rest.npos ? std::string_view() : rest.substr(nul + 1);
  const std::string& json_path =
      nabla::fuzz::write_input(reinterpret_cast<const uint8_t*>(json.data()), json.size());
  const std::string& merges_path = write_second(merges);
  try {
    const Gpt2Tokenizer tok = Gpt2Tokenizer::from_files(json_path, merges_path);
    round_trip(tok, json);
    round_trip(tok, merges);
  } catch (const nabla::Error&) {
  }
  return 0;
}
