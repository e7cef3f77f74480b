// Helpers for the GPT suite (tests/gpt): the fixture tokenizer with the chat markers, a tiny GPT that fits
// it, synthetic token shards with a known structure, and running a binary of the build.
#pragma once
#include <omp.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <vector>

#include "data/chat.h"
#include "data/data_testing.h"
#include "data/token_shards.h"
#include "data/tokenizer/bpe.h"
#include "models/gpt.h"

namespace nabla::test {

// One OpenMP thread for the in-process tests (the binaries get --threads 1): on a machine whose cores are
// all busy, spinning OpenMP threads make a tiny model's step 20x slower, and these models are too small to
// gain from a second thread.
inline const bool kOneOmpThread = [] {
  omp_set_num_threads(1);
  return true;
}();

inline const std::string kGptFixtures = NABLA_SOURCE_DIR "/tests/data/fixtures/";
inline const std::string kEncoder = kGptFixtures + "gpt2_encoder.json";
inline const std::string kVocabBpe = kGptFixtures + "gpt2_vocab.bpe";

// The 271-token fixture tokenizer (tests/data/fixtures) with the four chat markers (ids 271..274).
inline data::Gpt2Tokenizer fixture_tokenizer(data::ChatTokens* ct) {
  data::Gpt2Tokenizer tok = data::Gpt2Tokenizer::from_files(kEncoder, kVocabBpe);
  *ct = data::add_chat_tokens(tok);
  return tok;
}

// A tiny GPT for the fixture tokenizer: vocab 320 (275 padded to a multiple of 64), `positions` positions.
inline models::GPTConfig tiny_config(int64_t positions = 64) {
  models::GPTConfig c = models::GPTConfig::tiny();
  c.vocab_size = 320;
  c.n_positions = positions;
  c.bos_token_id = c.eos_token_id = 270;
  return c;
}

// A Markov chain over `vocab` ids: next = (3 prev + 1 + coin) mod vocab, coin a fair bit drawn from `seed`.
// Its conditional entropy is ln 2 = 0.693 nats/token; its unigram entropy is close to ln(vocab).
inline std::vector<uint16_t> markov_tokens(int64_t n, int32_t vocab, uint64_t seed) {
  std::vector<uint16_t> out;
  uint32_t x = static_cast<uint32_t>(seed % static_cast<uint64_t>(vocab));
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t coin = philox_uniform(seed, 0, i) < 0.5 ? 0 : 1;
    x = (3 * x + 1 + coin) % static_cast<uint32_t>(vocab);
    out.push_back(static_cast<uint16_t>(x));
  }
  return out;
}

struct Exec {
  int code;
  std::string output;
};

// Runs build/<binary> with `args` (stdout and stderr together).
inline Exec run_binary(const std::string& binary, const std::string& args) {
  const std::string cmd =
      "OMP_NUM_THREADS=2 " + std::string(NABLA_BINARY_DIR) + "/" + binary + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace nabla::test
