// Querying a language model for a study (the sentiment harness): an OpenAI-compatible chat endpoint behind
// a response cache on disk, retries with exponential backoff and a rate limit.
//
//   apps::LlmQuery q({.endpoint = "http://127.0.0.1:8000/v1", .model = "nabla-gpt", .cache_file =
//   "cache.jsonl"}); apps::LlmAnswer a = q.ask({{"user", "Given this text, ... Text: a gripping film"}}); //
//   a.text
//
// Cache: a JSONL file, one line per answered query, {"endpoint", "model", "messages", "answer"}; the key is
// (endpoint, model, messages), so a run that stops resumes where it was, and a different endpoint or model
// never reads another's answers. Each answer is appended and flushed as it comes. A last line cut short (a
// crash while writing) is ignored; any other malformed line throws naming the file and line.
// Retries: a connection failure, a read timeout (timeout_s), HTTP 429 and every 5xx are retried up to
// max_retries times, sleeping backoff_s * 2^k (k = 0, 1, ..., capped at max_backoff_s); other 4xx answers
// throw at once (OpenAIError). Rate limit: requests start at least 60 / requests_per_minute s apart (0: no
// limit). The key: api_key, else the environment variable api_key_env when set.
// Requests: {"model", "messages", "temperature", "max_tokens"} (the study used temperature 0).
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "apps/common/openai_client.h"
#include "data/chat.h"

namespace nabla::apps {

struct LlmQueryOptions {
  std::string endpoint = "http://127.0.0.1:8000/v1";
  std::string model = "nabla-gpt";
  std::string api_key{};
  std::string api_key_env = "OPENAI_API_KEY";
  std::string cache_file{};  // "": no cache
  int max_retries = 5;
  double backoff_s = 2, max_backoff_s = 60;
  double requests_per_minute = 0;
  double timeout_s = 120;
  int64_t max_tokens = 128;
  double temperature = 0;
};

struct LlmAnswer {
  std::string text;
  bool cached = false;
  int attempts = 0;  // requests sent for this answer (0 when cached)
};

class LlmQuery {
 public:
  explicit LlmQuery(LlmQueryOptions options);
  LlmAnswer ask(const std::vector<data::ChatMessage>& messages);
  std::optional<std::string> cached(const std::vector<data::ChatMessage>& messages) const;

  int64_t requests() const { return requests_; }
  int64_t cache_hits() const { return hits_; }
  int64_t retries() const { return retries_; }
  size_t cache_size() const { return cache_.size(); }

 private:
  std::string key(const std::vector<data::ChatMessage>& messages) const;
  void wait_for_rate_limit();
  LlmQueryOptions o_;
  OpenAIClient client_;
  std::map<std::string, std::string> cache_;
  int64_t requests_ = 0, hits_ = 0, retries_ = 0;
  std::optional<std::chrono::steady_clock::time_point> last_request_;
};

}  // namespace nabla::apps
