// The cached, retrying, rate-limited chat queries of a study (see llm_query.h).
#include "apps/common/llm_query.h"

#include <cstdlib>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

namespace nabla::apps {
namespace {

using json = nlohmann::json;

json messages_json(const std::vector<data::ChatMessage>& messages) {
  json m = json::array();
  for (const auto& x : messages) m.push_back({{"role", x.role}, {"content", x.content}});
  return m;
}

ClientOptions client_options(const LlmQueryOptions& o) {
  std::string key = o.api_key;
  if (key.empty() && !o.api_key_env.empty())
    if (const char* env = std::getenv(o.api_key_env.c_str())) key = env;
  return {.base_url = o.endpoint, .api_key = key, .timeout_s = o.timeout_s};
}

}  // namespace

LlmQuery::LlmQuery(LlmQueryOptions options) : o_(std::move(options)), client_(client_options(o_)) {
  NABLA_CHECK(o_.max_retries >= 0, "LlmQuery: max_retries ", o_.max_retries, ", expected >= 0");
  if (o_.cache_file.empty()) return;
  std::ifstream f(o_.cache_file);
  if (!f) return;  // a new cache
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    try {
      json j = json::parse(lines[i]);
      const std::string k =
          json{{"endpoint", j.at("endpoint")}, {"model", j.at("model")}, {"messages", j.at("messages")}}
              .dump();
      cache_[k] = j.at("answer").get<std::string>();
    } catch (const std::exception& e) {
      if (i + 1 == lines.size()) break;  // cut short by a crash while writing: asked again
      fail("LlmQuery: ", o_.cache_file, ":", i + 1,
           ": not a cache record {endpoint, model, messages, answer}: ", e.what());
    }
  }
}

std::string LlmQuery::key(const std::vector<data::ChatMessage>& messages) const {
  return json{{"endpoint", o_.endpoint}, {"model", o_.model}, {"messages", messages_json(messages)}}.dump();
}

std::optional<std::string> LlmQuery::cached(const std::vector<data::ChatMessage>& messages) const {
  auto it = cache_.find(key(messages));
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

void LlmQuery::wait_for_rate_limit() {
  using namespace std::chrono;
  if (o_.requests_per_minute > 0 && last_request_) {
    const auto gap = duration<double>(60.0 / o_.requests_per_minute);
    const auto next = *last_request_ + duration_cast<steady_clock::duration>(gap);
    std::this_thread::sleep_until(next);
  }
  last_request_ = steady_clock::now();
}

LlmAnswer LlmQuery::ask(const std::vector<data::ChatMessage>& messages) {
  const std::string k = key(messages);
  if (auto it = cache_.find(k); it != cache_.end()) {
    ++hits_;
    return {.text = it->second, .cached = true};
  }
  const json request = {{"model", o_.model},
                        {"messages", messages_json(messages)},
                        {"temperature", o_.temperature},
                        {"max_tokens", o_.max_tokens}};
  LlmAnswer a;
  std::string last_error;
  for (int attempt = 0; attempt <= o_.max_retries; ++attempt) {
    if (attempt > 0) {
      ++retries_;
      double wait = o_.backoff_s;
      for (int i = 1; i < attempt && wait < o_.max_backoff_s; ++i) wait *= 2;
      std::this_thread::sleep_for(std::chrono::duration<double>(std::min(wait, o_.max_backoff_s)));
    }
    wait_for_rate_limit();
    ++requests_;
    ++a.attempts;
    try {
      a.text = client_.chat(request).text;
      if (!o_.cache_file.empty()) {
        std::ofstream f(o_.cache_file, std::ios::app);
        NABLA_CHECK(f, "LlmQuery: cannot append to the cache ", o_.cache_file);
        f << json{{"endpoint", o_.endpoint},
                  {"model", o_.model},
                  {"messages", messages_json(messages)},
                  {"answer", a.text}}
                 .dump(-1, ' ', false, json::error_handler_t::replace)
          << '\n';
        f.flush();
      }
      cache_[k] = a.text;
      return a;
    } catch (const OpenAIError& e) {
      if (e.status() != 429 && e.status() < 500) throw;  // the request itself is wrong: retrying cannot help
      last_error = e.what();
    } catch (const std::exception& e) {  // connection refused, read timeout, a malformed answer
      last_error = e.what();
    }
  }
  fail("LlmQuery: no answer from ", o_.endpoint, " after ", o_.max_retries + 1,
       " attempts; last error: ", last_error);
}

}  // namespace nabla::apps
