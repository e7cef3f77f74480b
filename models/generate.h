// Text generation with a GPT: a KV cache, greedy and sampled decoding, stop conditions, batched prompts.
//
// Steps: the prompts run once through the model ("prefill"), filling each layer's KV cache; then every
// step feeds one token per row and attends over the cache (models/gpt.h, KVCache), so a step costs O(L)
// rather than O(L^2). use_cache = false recomputes the whole sequence every step: the reference the cached
// path is tested against.
//
// Batched prompts of different lengths are LEFT-padded to the longest, with an attention mask that hides
// the padding keys and per-row positions that count only real tokens (position = number of real tokens
// before it), exactly as transformers does for GPT-2. A row therefore sees the same keys, values and
// positions as it would alone, and every row's new token sits in the last column. Padding queries attend
// to nothing real; their outputs are never used.
//
// Choosing the next token from the last logits l (f64, on the host):
//   greedy (do_sample false): argmax l (the lowest id among ties)
//   sampling: l / temperature; keep the top_k largest (0: all); softmax; keep the smallest set of most
//   probable tokens whose mass reaches top_p (1: all; at least one token); renormalise and draw by inverse
//   CDF with u = philox_uniform(seed, step, row) (engine/random.h): the same seed gives the same tokens,
//   on any backend and thread count.
// Stops: a row ends at max_new_tokens ("length"), at one of stop_token_ids ("stop"; the stop token is not
// part of the output, as in OpenAI's API), or when decode(its new tokens) contains one of stop_strings
// ("stop"; text is then cut before the stop string, and tokens end with the one that completed it).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "models/gpt.h"

namespace nabla::models {

struct GenerationConfig {
  int64_t max_new_tokens = 32;
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;   // 0: no top-k filter
  double top_p = 1.0;  // 1: no nucleus filter
  uint64_t seed = 0;
  std::vector<int64_t> stop_token_ids{};
  std::vector<std::string> stop_strings{};
  // Token ids -> text; required for stop_strings, and fills GenerationResult::texts when given.
  std::function<std::string(const std::vector<int64_t>&)> decode{};
  int64_t pad_token_id = 0;  // fills the left padding (masked; any valid id)
  bool use_cache = true;
  bool return_logits = false;  // keep every step's last-position logits
  // Streaming: called after row `row` got a new token (appended to `tokens`, its new tokens so far; never
  // for a stop token). Returning false ends the whole call there (e.g. a streaming client went away).
  std::function<bool(int64_t row, const std::vector<int64_t>& tokens)> on_token{};
};

struct GenerationResult {
  std::vector<std::vector<int64_t>> tokens;  // new tokens of each prompt (not the prompt)
  std::vector<std::string> texts;           // decode(tokens), cut before a stop string (when decode is given)
  std::vector<std::string> finish_reasons;  // "stop" or "length"
  std::vector<Tensor> step_logits;          // [B, vocab] f32 per step (return_logits)
  int64_t new_tokens = 0;                   // sum of the tokens generated for rows still running
  double seconds = 0;                       // wall time of the whole call
  double tokens_per_second() const { return seconds > 0 ? static_cast<double>(new_tokens) / seconds : 0.0; }
};

// Runs under NoGradGuard and in eval mode (restoring the model's mode afterwards). Prompts must be non-empty
// and prompt + max_new_tokens must fit n_positions.
GenerationResult generate(GPT& model, const std::vector<std::vector<int64_t>>& prompts,
                          const GenerationConfig& config);

// The next-token rule above for one row of logits; `u` in [0, 1) is the uniform draw (unused for greedy).
int64_t choose_token(const std::vector<double>& logits, const GenerationConfig& config, double u);

}  // namespace nabla::models
