// gpt_tokenize: turns plain text into the token shards train_gpt reads (data/token_shards.h).
//
//   ./build/gpt_tokenize --input .cache/corpus/gpt/corpus.txt --out-dir .cache/corpus/gpt/shards
//
// Input: UTF-8 text files (--input a.txt,b.txt); documents are separated by the literal text
// "<|endoftext|>" (scripts/prepare_gpt_data.sh writes them so). Each document is encoded with GPT-2's
// byte-level BPE and written as <|endoftext|> + its tokens (llm.c's convention: the separator opens each
// document). Every --val-every-th document (1-based: the 20th, 40th, ...) goes to the validation split,
// the rest to the training split; each split is cut into shards of at most --shard-tokens tokens:
//   out-dir/train_000.bin, train_001.bin, ...   out-dir/val_000.bin, ...
// Documents are encoded in parallel (OpenMP) and written in input order, so the shards do not depend on
// the thread count.
#include <omp.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "apps/common/options.h"
#include "apps/common/progress.h"
#include "data/token_shards.h"
#include "data/tokenizer/bpe.h"
#include "engine/error.h"

using namespace nabla;

namespace {

struct Options {
  std::string input, out_dir, encoder, vocab_bpe;
  int64_t val_every, shard_tokens, vocab_size, threads;
};

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  NABLA_CHECK(f.good(), "cannot open --input file ", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Writes `ids` as shards prefix_000.bin, ... of at most `per_shard` tokens; returns the shard count.
int64_t write_split(const std::string& dir, const std::string& prefix, const std::vector<uint16_t>& ids,
                    int64_t per_shard, int32_t vocab, int32_t eot) {
  int64_t shards = 0;
  for (size_t at = 0; at < ids.size() || shards == 0; at += static_cast<size_t>(per_shard), ++shards) {
    const size_t n = std::min(ids.size() - at, static_cast<size_t>(per_shard));
    char name[64];
    std::snprintf(name, sizeof name, "%s_%03lld.bin", prefix.c_str(), static_cast<long long>(shards));
    data::write_token_shard(dir + "/" + name, std::span<const uint16_t>(ids.data() + at, n), vocab, eot);
    if (at + n >= ids.size()) return shards + 1;
  }
  return shards;
}

int run(const Options& o) {
  if (o.threads > 0) omp_set_num_threads(static_cast<int>(o.threads));
  const auto t0 = std::chrono::steady_clock::now();
  data::Gpt2Tokenizer tok = data::Gpt2Tokenizer::from_files(o.encoder, o.vocab_bpe);
  NABLA_CHECK(tok.eot_id() >= 0, o.encoder, " has no <|endoftext|> token");
  const int32_t vocab = o.vocab_size > 0 ? static_cast<int32_t>(o.vocab_size) : tok.vocab_size();
  NABLA_CHECK(vocab >= tok.vocab_size() && vocab <= 65536, "--vocab-size ", vocab,
              " must be in [the tokenizer's ", tok.vocab_size(), ", 65536]");
  std::vector<std::string> docs;
  int64_t bytes = 0;
  for (auto& path : apps::split_list(o.input)) {
    const std::string text = read_all(path);
    bytes += static_cast<int64_t>(text.size());
    const std::string_view sep = "<|endoftext|>";
    size_t at = 0;
    while (at <= text.size()) {
      size_t end = text.find(sep, at);
      if (end == std::string::npos) end = text.size();
      std::string_view d(text.data() + at, end - at);
      if (d.find_first_not_of(" \t\r\n") != std::string_view::npos) docs.emplace_back(d);
      at = end + sep.size();
    }
  }
  NABLA_CHECK(!docs.empty(), "--input ", o.input, " holds no document");
  std::vector<std::vector<int32_t>> encoded(docs.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < docs.size(); ++i) encoded[i] = tok.encode(docs[i], /*allow_special=*/false);
  std::vector<uint16_t> train, val;
  int64_t val_docs = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    const bool is_val = o.val_every > 0 && (i + 1) % static_cast<size_t>(o.val_every) == 0;
    auto& out = is_val ? val : train;
    val_docs += is_val;
    out.push_back(static_cast<uint16_t>(tok.eot_id()));
    for (int32_t id : encoded[i]) out.push_back(static_cast<uint16_t>(id));
  }
  std::filesystem::create_directories(o.out_dir);
  const int64_t nt = write_split(o.out_dir, "train", train, o.shard_tokens, vocab, tok.eot_id());
  const int64_t nv =
      val.empty() ? 0 : write_split(o.out_dir, "val", val, o.shard_tokens, vocab, tok.eot_id());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "gpt_tokenize: %s documents (%s bytes) -> train %s tokens in %lld shards, val %s tokens in %lld "
      "shards (%lld documents) under %s | %.1f s, %.2f MB/s\n",
      apps::with_commas(static_cast<double>(docs.size())).c_str(),
      apps::with_commas(static_cast<double>(bytes)).c_str(),
      apps::with_commas(static_cast<double>(train.size())).c_str(), static_cast<long long>(nt),
      apps::with_commas(static_cast<double>(val.size())).c_str(), static_cast<long long>(nv),
      static_cast<long long>(val_docs), o.out_dir.c_str(), s, static_cast<double>(bytes) / s / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  apps::OptionSet cli("gpt_tokenize", "Encodes text with GPT-2's BPE into token shards for train_gpt.");
  cli.section("Input and output");
  cli.add("input", &o.input, "", "text files, comma-separated; documents separated by <|endoftext|>")
      .value_name("FILES");
  cli.add("out-dir", &o.out_dir, "", "folder for train_NNN.bin and val_NNN.bin").value_name("DIR");
  cli.add("encoder", &o.encoder, ".cache/tokenizers/gpt2/encoder.json",
          "GPT-2's encoder.json (scripts/prepare_tokenizers.sh)")
      .value_name("FILE");
  cli.add("vocab-bpe", &o.vocab_bpe, ".cache/tokenizers/gpt2/vocab.bpe", "GPT-2's vocab.bpe")
      .value_name("FILE");
  cli.add("val-every", &o.val_every, 20, "every N-th document goes to the validation split (0: none)")
      .non_negative();
  cli.add("shard-tokens", &o.shard_tokens, 100000000, "tokens per shard at most").positive();
  cli.add("vocab-size", &o.vocab_size, 0,
          "vocabulary size written to the headers (0: the tokenizer's, 50257; a model may be larger)")
      .in_range(0, 65536);
  cli.add("threads", &o.threads, 0, "encoding threads (0: all cores)").in_range(0, 4096);
  cli.example("--input corpus.txt --out-dir shards",
              "encode corpus.txt into shards/train_000.bin, val_000.bin");
  if (auto code = cli.parse(argc, argv, [&] {
        NABLA_CHECK(!o.input.empty(), "--input is required");
        NABLA_CHECK(!o.out_dir.empty(), "--out-dir is required");
      }))
    return *code;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpt_tokenize: %s\n", e.what());
  }
  return 1;
}
