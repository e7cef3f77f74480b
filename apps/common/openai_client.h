// A small client of OpenAI-compatible endpoints (our serve_gpt, or any server speaking the same API over
// plain HTTP), on Boost.Beast: what the sentiment and HKF code use to query a language model.
//
//   apps::OpenAIClient client({.base_url = "http://127.0.0.1:8000/v1"});
//   auto r = client.chat({{"messages", {{{"role", "user"}, {"content", "Is this review positive? ..."}}}},
//                         {"max_tokens", 8}, {"temperature", 0}});
//   r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens
//
// complete() posts to {base_url}/completions, chat() to {base_url}/chat/completions; with on_delta the
// request is sent with "stream": true and each text piece of the server-sent events is passed on as it
// arrives (the result still holds the whole text). A non-2xx answer throws OpenAIError with the status
// and the server's error message. An api_key is sent as "Authorization: Bearer <key>". timeout_s bounds a
// non-streaming exchange as a whole (connect, send, answer: an Error saying "no answer within"); a stream
// (on_delta) is read synchronously and is not bounded by it (Asio's blocking reads ignore SO_RCVTIMEO).
// Only http:// URLs: TLS (https://api.openai.com) would need OpenSSL, which this build does not link;
// put a local TLS-terminating proxy in front for such endpoints.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace nabla::apps {

class OpenAIError : public Error {
 public:
  OpenAIError(int status, const std::string& message) : Error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct ClientOptions {
  std::string base_url = "http://127.0.0.1:8000/v1";
  std::string api_key{};
  double timeout_s = 300;
};

struct CompletionResult {
  std::string text, finish_reason;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  nlohmann::json raw;  // the whole response (non-streaming) or the last event (streaming)
};

struct HttpResult {
  int status = 0;
  std::string content_type, body;
};

class OpenAIClient {
 public:
  explicit OpenAIClient(ClientOptions options);

  nlohmann::json models();
  CompletionResult complete(nlohmann::json request,
                            const std::function<void(const std::string&)>& on_delta = {});
  CompletionResult chat(nlohmann::json request, const std::function<void(const std::string&)>& on_delta = {});

  // One raw HTTP exchange on a fresh connection (tests send malformed bodies with it): `path` is appended
  // to the base URL's path.
  HttpResult request(const std::string& method, const std::string& path, const std::string& body,
                     const std::string& content_type = "application/json");

  const std::string& host() const { return host_; }
  int port() const { return port_; }

 private:
  CompletionResult post(const std::string& path, nlohmann::json request, bool chat,
                        const std::function<void(const std::string&)>& on_delta);
  ClientOptions o_;
  std::string host_, prefix_;
  int port_ = 80;
};

}  // namespace nabla::apps
