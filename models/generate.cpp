// Generation with a KV cache (see generate.h).
#include "models/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "autograd/autograd.h"
#include "engine/error.h"
#include "engine/random.h"
#include "ops/factory.h"
#include "ops/linalg.h"

namespace nabla::models {

int64_t choose_token(const std::vector<double>& logits, const GenerationConfig& c, double u) {
  const int64_t v = static_cast<int64_t>(logits.size());
  NABLA_CHECK(v > 0, "generate: empty logits");
  if (!c.do_sample) return std::max_element(logits.begin(), logits.end()) - logits.begin();
  NABLA_CHECK(c.temperature > 0, "generate: temperature must be positive when sampling, got ", c.temperature);
  NABLA_CHECK(c.top_p > 0 && c.top_p <= 1, "generate: top_p must be in (0, 1], got ", c.top_p);
  NABLA_CHECK(c.top_k >= 0, "generate: top_k must be >= 0, got ", c.top_k);
  std::vector<int64_t> order(v);
  std::iota(order.begin(), order.end(), 0);
  // Most probable first; ties by id, so the order (and the draw) does not depend on the sort.
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  int64_t keep = (c.top_k > 0) ? std::min(c.top_k, v) : v;
  std::vector<double> p(keep);
  const double m = logits[order[0]] / c.temperature;
  double z = 0;
  for (int64_t i = 0; i < keep; ++i) z += p[i] = std::exp(logits[order[i]] / c.temperature - m);
  if (c.top_p < 1) {
    double mass = 0;
    int64_t n = 0;
    while (n < keep && mass < c.top_p * z) mass += p[n++];
    keep = std::max<int64_t>(n, 1);
    z = 0;
    for (int64_t i = 0; i < keep; ++i) z += p[i];
  }
  double target = u * z, acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += p[i];
    if (target < acc) return order[i];
  }
  return order[keep - 1];
}

GenerationResult generate(GPT& model, const std::vector<std::vector<int64_t>>& prompts,
                          const GenerationConfig& c) {
  const auto t0 = std::chrono::steady_clock::now();
  const GPTConfig& mc = model.config();
  const int64_t b = static_cast<int64_t>(prompts.size());
  NABLA_CHECK(b > 0, "generate: no prompts");
  NABLA_CHECK(c.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", c.max_new_tokens);
  NABLA_CHECK(c.stop_strings.empty() || c.decode, "generate: stop_strings need a decode function");
  int64_t lp = 0;
  for (size_t r = 0; r < prompts.size(); ++r) {
    NABLA_CHECK(!prompts[r].empty(), "generate: prompt ", r, " is empty");
    for (int64_t id : prompts[r])
      NABLA_CHECK(id >= 0 && id < mc.vocab_size, "generate: prompt ", r, " has token id ", id,
                  ", outside [0, ", mc.vocab_size, ")");
    lp = std::max<int64_t>(lp, static_cast<int64_t>(prompts[r].size()));
  }
  const int64_t total = lp + c.max_new_tokens;
  NABLA_CHECK(total <= mc.n_positions, "generate: the longest prompt (", lp, ") + max_new_tokens (",
              c.max_new_tokens, ") = ", total, " exceed n_positions ", mc.n_positions);

  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  const Device dev = model.transformer->wte->weight.device();

  // The whole sequence on the host: left-padded ids, mask and positions, grown by one column per step.
  std::vector<std::vector<int64_t>> ids(b), mask(b), pos(b);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t pad = lp - static_cast<int64_t>(prompts[r].size());
    ids[r].assign(pad, c.pad_token_id);
    mask[r].assign(pad, 0);
    pos[r].assign(pad, 0);
    for (size_t i = 0; i < prompts[r].size(); ++i) {
      ids[r].push_back(prompts[r][i]);
      mask[r].push_back(1);
      pos[r].push_back(static_cast<int64_t>(i));
    }
  }
  auto to_tensor = [&](const std::vector<std::vector<int64_t>>& rows, int64_t from, int64_t len) {
    std::vector<double> flat;
    flat.reserve(b * len);
    for (auto& row : rows)
      for (int64_t i = from; i < from + len; ++i) flat.push_back(static_cast<double>(row[i]));
    return from_vector(flat, {b, len}, {.dtype = DType::i64}).to(dev);
  };

  GenerationResult res;
  res.tokens.assign(b, {});
  res.texts.assign(b, "");
  res.finish_reasons.assign(b, "length");
  std::vector<bool> done(b, c.max_new_tokens == 0), cut_by_string(b, false);
  bool aborted = false;
  KVCache cache;
  if (c.use_cache && c.max_new_tokens > 0)
    cache = KVCache::allocate(mc, b, total, model.transformer->wte->weight.dtype(), dev);

  for (int64_t step = 0; step < c.max_new_tokens; ++step) {
    const int64_t len = static_cast<int64_t>(ids[0].size());
    Tensor h;  // [B, T, E]; only the last position goes through the vocabulary projection
    if (c.use_cache) {
      const int64_t from = cache.length;
      h = model.hidden(to_tensor(ids, from, len - from), to_tensor(mask, 0, len),
                       to_tensor(pos, from, len - from), &cache);
    } else {
      h = model.hidden(to_tensor(ids, 0, len), to_tensor(mask, 0, len), to_tensor(pos, 0, len));
    }
    Tensor last = linear(h.select(1, h.size(1) - 1), model.transformer->wte->weight)
                      .to(DType::f32)
                      .to(Device::cpu())
                      .contiguous();  // [B, V]
    if (c.return_logits) res.step_logits.push_back(last);
    const float* lp_data = last.data<float>();
    for (int64_t r = 0; r < b; ++r) {
      int64_t next = c.pad_token_id;
      if (!done[r]) {
        std::vector<double> row(lp_data + r * mc.vocab_size, lp_data + (r + 1) * mc.vocab_size);
        next = choose_token(row, c, philox_uniform(c.seed, static_cast<uint64_t>(step), r));
        ++res.new_tokens;
        if (std::find(c.stop_token_ids.begin(), c.stop_token_ids.end(), next) != c.stop_token_ids.end()) {
          done[r] = true;
          res.finish_reasons[r] = "stop";
        } else {
          res.tokens[r].push_back(next);
          if (!c.stop_strings.empty()) {
            const std::string text = c.decode(res.tokens[r]);
            size_t cut = std::string::npos;
            for (auto& s : c.stop_strings)
              if (!s.empty()) cut = std::min(cut, text.find(s));
            if (cut != std::string::npos) {
              done[r] = true;
              res.finish_reasons[r] = "stop";
              res.texts[r] = text.substr(0, cut);
              cut_by_string[r] = true;
            }
          }
          if (c.on_token && !c.on_token(r, res.tokens[r])) aborted = true;
        }
      }
      ids[r].push_back(next);
      mask[r].push_back(1);
      pos[r].push_back(pos[r].back() + 1);
    }
    if (aborted || std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
  }
  if (c.decode)
    for (int64_t r = 0; r < b; ++r)
      if (!cut_by_string[r]) res.texts[r] = c.decode(res.tokens[r]);
  model.train(was_training);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace nabla::models
