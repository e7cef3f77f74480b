// An OpenAI-compatible HTTP/1.1 server for our GPT models (serve_gpt), on Boost.Beast (Debian's Boost
// headers; no hand-written HTTP parsing).
//
// Endpoints (JSON in and out, as OpenAI's API shapes them):
//   GET  /v1/models             {"object": "list", "data": [{"id": <model name>, "object": "model", ...}]}
//   POST /v1/completions        {"prompt": "..." | ["..."], "max_tokens", "temperature", "top_p", "stop",
//                                "seed", "n": 1, "stream"} -> {"object": "text_completion", "choices":
//                                [{"text", "index": 0, "finish_reason": "stop"|"length"}], "usage": {...}}
//   POST /v1/chat/completions   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}], ...}
//                                -> {"object": "chat.completion", "choices": [{"message": {"role":
//                                "assistant", "content"}, ...}], "usage": {...}}; the prompt is the chat
//                                template of data/chat.h ending in "<|assistant|>\n", generation stops at
//                                <|end|>
//   GET  /health                {"status": "ok"}
// "stream": true answers with server-sent events (chunked transfer): one `data: {chunk}` event per piece
// of text ("text_completion" chunks, or "chat.completion.chunk" with a "delta"), a last chunk carrying
// finish_reason, then `data: [DONE]`. A piece is sent only once it is whole UTF-8 and can no longer turn
// into a stop string.
//
// Defaults and limits: temperature 1 (0: greedy), top_p 1, max_tokens 16 for completions and up to the
// context for chat (both capped by what the context leaves after the prompt), seed: the request's number
// when absent (so repeated calls differ, a given seed repeats). "model" is echoed, not checked (one model
// is served). Other OpenAI fields (user, presence_penalty, ...) are accepted and ignored.
//
// Errors: every 4xx/5xx has OpenAI's body {"error": {"message", "type", "param", "code"}}:
//   400 malformed HTTP or JSON, a wrong type or range ("max_tokens must be an integer >= 1, got -3"), n != 1,
//       a prompt longer than the context; 404 unknown path; 405 wrong method; 413 a body over
//       max_body_bytes (default 1 MiB; headers over 16 KiB: 431); 503 when max_connections are open.
// The server lives on after any bad request.
//
// Concurrency: each connection has a thread (keep-alive, up to max_connections at once; a socket idle for
// read_timeout_s is closed); generation runs ONE request at a time behind a mutex (a queue in arrival
// order, roughly): the model and its KV cache are not shared between requests, and on one GPU batching
// requests together is the way to more throughput, not done yet.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/chat.h"
#include "data/tokenizer/bpe.h"
#include "models/gpt.h"

namespace nabla::apps {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: an ephemeral port (port() says which)
  size_t max_body_bytes = 1 << 20;
  int max_connections = 16;
  double read_timeout_s = 30;
  std::string model_name = "nabla-gpt";
  int64_t default_chat_max_tokens = 256;
  bool log_requests = false;  // one line per request on stdout
};

// What answers: a GPT (on any device) and its tokenizer with the chat markers registered.
struct GptBackend {
  std::shared_ptr<models::GPT> model;
  std::shared_ptr<data::Gpt2Tokenizer> tokenizer;
  data::ChatTokens chat;
};

// An HTTP status with OpenAI's error body.
struct ApiError {
  int status;
  std::string message, type, param;
};

class OpenAIServer {
 public:
  OpenAIServer(GptBackend backend, ServerOptions options);
  ~OpenAIServer();
  OpenAIServer(const OpenAIServer&) = delete;
  OpenAIServer& operator=(const OpenAIServer&) = delete;

  // Binds and listens (throws naming host:port when it cannot), then accepts on a thread of its own.
  void start();
  int port() const { return port_; }
  // Stops accepting, closes every open connection and joins the threads. Idempotent.
  void stop();
  int64_t requests_served() const { return served_.load(); }

  // The JSON handlers without sockets (tests, and the HTTP layer): the response body for a non-streaming
  // request; throws ApiError. `emit` (streaming only) receives each SSE event's JSON.
  nlohmann::json completions(const nlohmann::json& request, bool chat,
                             const std::function<bool(const nlohmann::json&)>& emit = {});
  nlohmann::json models_list() const;

 private:
  struct Connection;
  void accept_loop();
  void serve_connection(std::shared_ptr<Connection> c);

  GptBackend backend_;
  ServerOptions o_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> served_{0}, request_counter_{0};
  std::thread acceptor_;
  std::mutex connections_mutex_;
  std::vector<std::shared_ptr<Connection>> connections_;
  std::mutex generate_mutex_;  // one generation at a time
};

// OpenAI's error body for `e`.
nlohmann::json error_body(const ApiError& e);

}  // namespace nabla::apps
