// HKF stage 3 (a): ranking candidates by a causal LM's likelihood. A candidate's score is the total
// log-probability of its answer tokens followed by the end-of-turn token, given the prompt:
//   score(c) = sum_{j=0}^{n-1} log p(c_j | prompt, c_<j)        (c = answer tokens + <|end|>, n = |c|)
// The sum (not the per-token mean) is the answer's likelihood as generation would produce it, so a longer
// title pays for its extra tokens, as it does when the model writes it; the <|end|> term makes "Star Wars"
// and "Star Wars (1977)" distinct answers.
//
// Batched with the KV cache: the prompt runs once (batch 1), its keys and values are copied into a cache of
// batch B, and B candidates (right-padded; causal attention keeps padding from touching real positions) run
// as one [B, max_len - 1] step. Cost: |prompt| + sum of candidate lengths tokens, not B x |prompt|.
// Equal to scoring each (prompt + candidate) sequence on its own (tests/hkf).
#pragma once
#include <cstdint>
#include <vector>

#include "models/gpt.h"

namespace nabla::hkf {

// prompt: token ids (>= 1); candidates: token ids each (>= 1 token, the end token included by the caller).
// batch: candidates per forward. Runs under NoGradGuard, in eval mode, on the model's device.
std::vector<double> score_candidates(models::GPT& model, const std::vector<int64_t>& prompt,
                                     const std::vector<std::vector<int64_t>>& candidates,
                                     int64_t batch = 128);

// The same, one full forward per candidate (the reference the tests compare against).
std::vector<double> score_candidates_reference(models::GPT& model, const std::vector<int64_t>& prompt,
                                               const std::vector<std::vector<int64_t>>& candidates);

}  // namespace nabla::hkf
