// Token shards: the pretraining data of a causal language model, as files of uint16 token ids (GPT-2's
// 50,257 ids fit), read by memory-mapping, in the spirit of llm.c's .bin shards.
//
// File layout (little-endian), version 1:
//   bytes [0, 1024)      header: 256 int32 words
//     word 0             magic 20261202 (kTokenShardMagic)
//     word 1             version (1)
//     words 2, 3         token count N, as a uint64 split into low and high 32-bit halves
//     word 4             vocabulary size V: every id is < V
//     word 5             end-of-text id (documents are separated by it), or -1
//     words 6..255       0
//   bytes [1024, 1024 + 2N)   the N ids, uint16 each
// A file whose size is not exactly 1024 + 2N, whose words 6..255 are not 0, or that holds an id >= V is
// refused when it is opened; every error names the file and the byte offset of what is wrong
// ("train_000.bin: id 60000 at byte 1030 is not below the vocabulary size 50257").
//
// Windows: a language model trains on windows of T + 1 consecutive tokens (inputs are the first T, the
// targets the last T). A window never crosses from one shard into the next.
//   random      row r of step s starts at a position drawn with philox_uniform(seed, s, r) among every
//               start of every shard (each start equally likely): a pure function of (seed, step, row),
//               so resuming at step s needs nothing but s.
//   sequential  windows k = 0, 1, 2, ... tile each shard with stride T (the last token of a window is the
//               first of the next), shard after shard, and wrap around; the validation loss uses them.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace nabla::data {

constexpr int32_t kTokenShardMagic = 20261202;
constexpr int32_t kTokenShardVersion = 1;
constexpr int64_t kTokenShardHeaderBytes = 1024;

struct TokenShardInfo {
  int64_t tokens = 0;
  int32_t vocab_size = 0;
  int32_t eot_id = -1;
};

// Writes `path` (a temporary file renamed over it, so a crash leaves no half shard). Throws when an id is
// >= vocab_size or vocab_size > 65536.
void write_token_shard(const std::string& path, std::span<const uint16_t> ids, int32_t vocab_size,
                       int32_t eot_id);

// One memory-mapped shard, checked as described above.
class TokenShard {
 public:
  explicit TokenShard(const std::string& path);
  ~TokenShard();
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  const std::string& path() const { return path_; }
  const TokenShardInfo& info() const { return info_; }
  int64_t size() const { return info_.tokens; }
  std::span<const uint16_t> tokens() const { return {tokens_, static_cast<size_t>(info_.tokens)}; }

 private:
  std::string path_;
  TokenShardInfo info_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint16_t* tokens_ = nullptr;
};

// The shards `pattern` names: a file, a directory (every *.bin in it, sorted), or a glob ("dir/train_*.bin").
// Throws when nothing matches.
std::vector<std::string> list_token_shards(const std::string& pattern);

// Windows of T + 1 tokens over a set of shards (see above). Every shard must agree on the vocabulary size.
class TokenWindows {
 public:
  TokenWindows(const std::vector<std::string>& paths, int64_t context);
  int64_t context() const { return t_; }
  int64_t num_tokens() const { return total_tokens_; }
  int32_t vocab_size() const { return vocab_size_; }
  int64_t num_random_starts() const { return starts_.empty() ? 0 : starts_.back(); }
  int64_t num_sequential_windows() const { return windows_.empty() ? 0 : windows_.back(); }
  const std::vector<std::unique_ptr<TokenShard>>& shards() const { return shards_; }

  // [B, T + 1] i64 on the CPU. random_batch's rows are rows first_row .. first_row + B - 1 of step `step`
  // (a data-parallel rank's slice of the global batch: the same windows one process draws).
  Tensor random_batch(int64_t batch, uint64_t seed, uint64_t step, int64_t first_row = 0) const;
  Tensor sequential_batch(int64_t batch, int64_t first_window) const;
  // Unigram counts over every token of every shard (vocab_size entries), for the entropy baseline.
  std::vector<int64_t> unigram_counts() const;

 private:
  void copy_window(int64_t shard, int64_t start, int64_t* out) const;

  std::vector<std::unique_ptr<TokenShard>> shards_;
  int64_t t_ = 0, total_tokens_ = 0;
  int32_t vocab_size_ = 0;
  std::vector<int64_t> starts_;   // cumulative random starts per shard (size - T each)
  std::vector<int64_t> windows_;  // cumulative sequential windows per shard ((size - 1) / T each)
};

}  // namespace nabla::data
