// Likelihood ranking of candidate answers by a GPT (see lm_scorer.h).
#include "algorithms/hkf/lm_scorer.h"

#include <algorithm>

#include "autograd/autograd.h"
#include "engine/error.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/linalg.h"
#include "ops/nn.h"

namespace nabla::hkf {
namespace {

Tensor ids_tensor(const std::vector<std::vector<int64_t>>& rows, int64_t len, Device dev) {
  std::vector<double> flat;
  flat.reserve(rows.size() * len);
  for (auto& r : rows)
    for (int64_t i = 0; i < len; ++i)
      flat.push_back(i < static_cast<int64_t>(r.size()) ? static_cast<double>(r[i]) : 0.0);
  return from_vector(flat, {static_cast<int64_t>(rows.size()), len}, {.dtype = DType::i64}).to(dev);
}

void check_inputs(const models::GPT& model, const std::vector<int64_t>& prompt,
                  const std::vector<std::vector<int64_t>>& candidates) {
  const auto& c = model.config();
  NABLA_CHECK(!prompt.empty(), "score_candidates: expected a prompt of >= 1 token, got none");
  size_t longest = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    NABLA_CHECK(!candidates[i].empty(), "score_candidates: candidate ", i, " has no token");
    longest = std::max(longest, candidates[i].size());
    for (int64_t id : candidates[i])
      NABLA_CHECK(id >= 0 && id < c.vocab_size, "score_candidates: candidate ", i, " has token ", id,
                  " outside [0, ", c.vocab_size, ")");
  }
  for (int64_t id : prompt)
    NABLA_CHECK(id >= 0 && id < c.vocab_size, "score_candidates: prompt token ", id, " outside [0, ",
                c.vocab_size, ")");
  NABLA_CHECK(static_cast<int64_t>(prompt.size() + longest) <= c.n_positions + 1,
              "score_candidates: prompt (", prompt.size(), " tokens) + the longest candidate (", longest,
              ") exceed n_positions ", c.n_positions);
}

}  // namespace

std::vector<double> score_candidates(models::GPT& model, const std::vector<int64_t>& prompt,
                                     const std::vector<std::vector<int64_t>>& candidates, int64_t batch) {
  check_inputs(model, prompt, candidates);
  NABLA_CHECK(batch >= 1, "score_candidates: expected batch >= 1, got ", batch);
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  const Tensor& wte = model.transformer->wte->weight;
  const Device dev = wte.device();
  const auto lp = static_cast<int64_t>(prompt.size());
  size_t longest = 0;
  for (auto& c : candidates) longest = std::max(longest, c.size());
  const int64_t capacity = lp + static_cast<int64_t>(longest) - 1;

  models::KVCache pc = models::KVCache::allocate(model.config(), 1, capacity, wte.dtype(), dev);
  Tensor h = model.hidden(ids_tensor({prompt}, lp, dev), Tensor(), Tensor(), &pc);  // [1, Lp, E]
  Tensor first =
      log_softmax(linear(h.select(1, lp - 1), wte).to(DType::f32), -1).to(Device::cpu()).contiguous();
  const float* fd = first.data<float>();  // [1, V]

  std::vector<double> out(candidates.size(), 0.0);
  for (size_t start = 0; start < candidates.size(); start += static_cast<size_t>(batch)) {
    const size_t end = std::min(candidates.size(), start + static_cast<size_t>(batch));
    const auto b = static_cast<int64_t>(end - start);
    size_t len = 0;
    for (size_t i = start; i < end; ++i) {
      out[i] = fd[candidates[i][0]];
      len = std::max(len, candidates[i].size());
    }
    if (len < 2) continue;
    models::KVCache cache = models::KVCache::allocate(model.config(), b, capacity, wte.dtype(), dev);
    for (size_t l = 0; l < cache.k.size(); ++l) {
      cache.k[l].narrow(2, 0, lp).copy_(pc.k[l].narrow(2, 0, lp).expand(cache.k[l].narrow(2, 0, lp).shape()));
      cache.v[l].narrow(2, 0, lp).copy_(pc.v[l].narrow(2, 0, lp).expand(cache.v[l].narrow(2, 0, lp).shape()));
    }
    cache.length = lp;
    std::vector<std::vector<int64_t>> rows(candidates.begin() + static_cast<std::ptrdiff_t>(start),
                                           candidates.begin() + static_cast<std::ptrdiff_t>(end));
    const auto steps = static_cast<int64_t>(len) - 1;  // inputs c_0..c_{len-2} predict c_1..c_{len-1}
    Tensor hc = model.hidden(ids_tensor(rows, steps, dev), Tensor(), Tensor(), &cache);  // [b, steps, E]
    Tensor logp = log_softmax(linear(hc, wte).to(DType::f32), -1);                       // [b, steps, V]
    std::vector<std::vector<int64_t>> next(rows.size());
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t j = 1; j <= steps; ++j)
        next[r].push_back(j < static_cast<int64_t>(rows[r].size()) ? rows[r][j] : 0);
    Tensor picked = gather(logp, 2, ids_tensor(next, steps, dev).reshape({b, steps, 1}))
                        .reshape({b, steps})
                        .to(Device::cpu())
                        .contiguous();
    const float* pd = picked.data<float>();
    for (int64_t r = 0; r < b; ++r)
      for (int64_t j = 1; j < static_cast<int64_t>(rows[r].size()); ++j)
        out[start + r] += pd[r * steps + j - 1];
  }
  model.train(was_training);
  return out;
}

std::vector<double> score_candidates_reference(models::GPT& model, const std::vector<int64_t>& prompt,
                                               const std::vector<std::vector<int64_t>>& candidates) {
  check_inputs(model, prompt, candidates);
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  const Device dev = model.transformer->wte->weight.device();
  std::vector<double> out;
  for (auto& c : candidates) {
    std::vector<int64_t> seq = prompt;
    seq.insert(seq.end(), c.begin(), c.end());
    const auto t = static_cast<int64_t>(seq.size()) - 1;  // the last token is only a target
    Tensor logp = log_softmax(model.logits(ids_tensor({seq}, t, dev)).to(DType::f32), -1)
                      .to(Device::cpu())
                      .contiguous();
    const float* d = logp.data<float>();
    const int64_t v = logp.size(2);
    double s = 0;
    for (size_t j = 0; j < c.size(); ++j) {
      const int64_t pos = static_cast<int64_t>(prompt.size() + j) - 1;
      s += d[pos * v + c[j]];
    }
    out.push_back(s);
  }
  model.train(was_training);
  return out;
}

}  // namespace nabla::hkf
