// HKF's knowledge-fusion step (algorithms/hkf/behaviour_text.h): a user's behaviour text sent to a language
// model behind an OpenAI-compatible endpoint (our serve_gpt by default, any endpoint a user gives), asking
// for one description of the user; the answer is cached on disk per key (user and cut-off), so the step is
// offline and resumable, as in the paper.
//
//   cache file: {cache_dir}/{key}-{fnv1a64(model + prompt) as 16 hex}.txt   (the answer, as returned)
// A changed template, prompt or model name gives another hash, so stale answers are never reused; files are
// written to a temporary name and renamed (a killed run leaves no half answer).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "apps/common/openai_client.h"

namespace nabla::apps {

struct FusionOptions {
  std::string base_url = "http://127.0.0.1:8000/v1";
  std::string api_key{};
  std::string model = "nabla-gpt";  // the request's "model"
  std::string cache_dir;            // required
  int64_t max_tokens = 160;
  double temperature = 0;  // greedy: the same answer on every run
};

class KnowledgeFusion {
 public:
  explicit KnowledgeFusion(FusionOptions options);
  // The fused knowledge for `behaviour_text` (cached under `key`: letters, digits, '_' and '-' only).
  std::string fuse(const std::string& key, const std::string& behaviour_text);
  int64_t cache_hits() const { return hits_; }
  int64_t requests() const { return requests_; }
  // The cache file fuse() uses for this key and text.
  std::string cache_path(const std::string& key, const std::string& behaviour_text) const;

 private:
  FusionOptions o_;
  std::unique_ptr<OpenAIClient> client_;  // made on the first cache miss
  int64_t hits_ = 0, requests_ = 0;
};

}  // namespace nabla::apps
