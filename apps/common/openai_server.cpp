// The OpenAI-compatible server (see openai_server.h): request validation, generation, responses, and
// the HTTP layer on Boost.Beast.
#include "apps/common/openai_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>

#include "engine/error.h"
#include "models/generate.h"

namespace nabla::apps {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

[[noreturn]] void bad(const std::string& message, const std::string& param = "") {
  throw ApiError{400, message, "invalid_request_error", param};
}

std::string type_of(const json& v) { return v.type_name(); }

// Length of the longest suffix of `text` that is a proper prefix of a stop string (held back while
// streaming) plus any incomplete UTF-8 sequence at the end.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (auto& s : stops)
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  // An incomplete UTF-8 sequence: a lead byte within the last 3 bytes whose sequence runs past the end.
  for (size_t back = 1; back <= std::min<size_t>(4, text.size()); ++back) {
    const auto c = static_cast<unsigned char>(text[text.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (need > back) hold = std::max(hold, back);
    break;
  }
  return hold;
}

}  // namespace

json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json() : json(e.param)},
            {"code", json()}}}};
}

OpenAIServer::OpenAIServer(GptBackend backend, ServerOptions options)
    : backend_(std::move(backend)), o_(std::move(options)) {
  NABLA_CHECK(backend_.model && backend_.tokenizer, "OpenAIServer: a model and a tokenizer are needed");
}

OpenAIServer::~OpenAIServer() { stop(); }

json OpenAIServer::models_list() const {
  return {
      {"object", "list"},
      {"data",
       json::array({{{"id", o_.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "nabla"}}})}};
}

json OpenAIServer::completions(const json& req, bool chat, const std::function<bool(const json&)>& emit) {
  if (!req.is_object()) bad("the request body must be a JSON object, got " + type_of(req));
  const models::GPT& model = *backend_.model;
  const data::Gpt2Tokenizer& tok = *backend_.tokenizer;
  const int64_t n_ctx = model.config().n_positions;
  const int64_t request_no = request_counter_.fetch_add(1);

  // ---- fields ----
  auto number = [&](const char* key, double def, double lo, double hi) {
    if (!req.contains(key) || req[key].is_null()) return def;
    const json& v = req[key];
    if (!v.is_number()) bad(str_cat(key, " must be a number, got ", type_of(v)), key);
    const double x = v.get<double>();
    if (!(x >= lo && x <= hi)) bad(str_cat(key, " must be in [", lo, ", ", hi, "], got ", x), key);
    return x;
  };
  auto integer = [&](const char* key, int64_t def, int64_t lo) {
    if (!req.contains(key) || req[key].is_null()) return def;
    const json& v = req[key];
    if (!v.is_number_integer()) bad(str_cat(key, " must be an integer, got ", type_of(v)), key);
    const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                          ? INT64_MAX
                          : v.get<int64_t>();
    if (x < lo) bad(str_cat(key, " must be an integer >= ", lo, ", got ", x), key);
    return x;
  };
  if (req.contains("model") && !req["model"].is_null() && !req["model"].is_string())
    bad("model must be a string, got " + type_of(req["model"]), "model");
  const std::string model_name =
      req.contains("model") && req["model"].is_string() ? req["model"].get<std::string>() : o_.model_name;
  if (integer("n", 1, 1) != 1) bad("only n = 1 is supported", "n");
  if (req.contains("stream") && !req["stream"].is_null() && !req["stream"].is_boolean())
    bad("stream must be a boolean, got " + type_of(req["stream"]), "stream");
  const bool stream = req.contains("stream") && req["stream"].is_boolean() && req["stream"].get<bool>();
  const double temperature = number("temperature", 1.0, 0.0, 2.0);
  const double top_p = number("top_p", 1.0, 0.0, 1.0);
  if (top_p <= 0) bad("top_p must be > 0", "top_p");
  const int64_t seed = integer("seed", request_no, 0);
  std::vector<std::string> stops;
  if (req.contains("stop") && !req["stop"].is_null()) {
    const json& s = req["stop"];
    if (s.is_string()) {
      stops.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4) {
      for (auto& x : s) {
        if (!x.is_string()) bad("stop must be a string or an array of up to 4 strings", "stop");
        stops.push_back(x.get<std::string>());
      }
    } else {
      bad("stop must be a string or an array of up to 4 strings", "stop");
    }
    for (auto& x : stops)
      if (x.empty()) bad("stop strings must not be empty", "stop");
  }

  // ---- the prompt ----
  std::vector<int64_t> prompt;
  if (chat) {
    if (!req.contains("messages") || !req["messages"].is_array() || req["messages"].empty())
      bad("messages must be a non-empty array of {\"role\", \"content\"}", "messages");
    std::vector<data::ChatMessage> messages;
    for (auto& m : req["messages"]) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
          !m["content"].is_string())
        bad("each message must be an object with string \"role\" and \"content\"", "messages");
      data::ChatMessage cm{m["role"].get<std::string>(), m["content"].get<std::string>()};
      if (cm.role != "system" && cm.role != "user" && cm.role != "assistant")
        bad("message role must be system, user or assistant, got '" + cm.role + "'", "messages");
      messages.push_back(std::move(cm));
    }
    for (int64_t id : data::tokenize_chat(tok, backend_.chat, messages).ids) prompt.push_back(id);
    prompt.push_back(backend_.chat.assistant);
    for (int32_t id : tok.encode("\n", false)) prompt.push_back(id);
  } else {
    if (!req.contains("prompt")) bad("prompt is required", "prompt");
    const json& p = req["prompt"];
    std::string text;
    if (p.is_string()) {
      text = p.get<std::string>();
    } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
      text = p[0].get<std::string>();
    } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
      for (auto& x : p) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= model.config().vocab_size)
          bad(str_cat("prompt token ids must be integers in [0, ", model.config().vocab_size, ")"), "prompt");
        prompt.push_back(x.get<int64_t>());
      }
    } else {
      bad("prompt must be a string, an array of one string or an array of token ids", "prompt");
    }
    if (prompt.empty())
      for (int32_t id : tok.encode(text, /*allow_special=*/true)) prompt.push_back(id);
    if (prompt.empty()) prompt.push_back(tok.eot_id());  // an empty prompt starts a document
  }
  const auto prompt_len = static_cast<int64_t>(prompt.size());
  if (prompt_len >= n_ctx)
    throw ApiError{400, str_cat("the prompt has ", prompt_len, " tokens; the model's context is ", n_ctx),
                   "invalid_request_error", chat ? "messages" : "prompt"};
  const int64_t room = n_ctx - prompt_len;
  const int64_t max_tokens =
      std::min(room, integer("max_tokens", chat ? std::min(room, o_.default_chat_max_tokens) : 16, 1));
  if (chat && req.contains("max_completion_tokens")) (void)integer("max_completion_tokens", max_tokens, 1);

  // ---- generation ----
  models::GenerationConfig g;
  g.max_new_tokens = max_tokens;
  g.do_sample = temperature > 0;
  g.temperature = temperature > 0 ? temperature : 1.0;
  g.top_p = top_p;
  g.seed = static_cast<uint64_t>(seed);
  g.stop_token_ids = {tok.eot_id()};
  if (chat) g.stop_token_ids.push_back(backend_.chat.end);
  g.stop_strings = stops;
  g.decode = [&](const std::vector<int64_t>& ids) {
    std::vector<int32_t> v;
    for (int64_t id : ids)
      if (id < tok.vocab_size()) v.push_back(static_cast<int32_t>(id));
    return tok.decode(v);
  };
  const std::string id = str_cat(chat ? "chatcmpl-" : "cmpl-", request_no);
  const auto created = static_cast<int64_t>(std::time(nullptr));
  auto chunk = [&](const std::string& delta, const json& finish, bool first) {
    json c = {{"id", id}, {"created", created}, {"model", model_name}};
    if (chat) {
      json d = json::object();
      if (first) d["role"] = "assistant";
      if (!delta.empty() || first) d["content"] = delta;
      c["object"] = "chat.completion.chunk";
      c["choices"] = json::array({{{"index", 0}, {"delta", d}, {"finish_reason", finish}}});
    } else {
      c["object"] = "text_completion";
      c["choices"] =
          json::array({{{"text", delta}, {"index", 0}, {"logprobs", json()}, {"finish_reason", finish}}});
    }
    return c;
  };
  size_t sent = 0;
  bool client_gone = false;
  if (stream && emit) {
    client_gone = !emit(chunk("", json(), true));
    g.on_token = [&](int64_t, const std::vector<int64_t>& tokens) {
      const std::string text = g.decode(tokens);
      size_t safe = text.size() - held_back(text, stops);
      for (auto& st : stops) safe = std::min(safe, text.find(st));  // the token that completed a stop string
      if (safe > sent) {
        client_gone = !emit(chunk(text.substr(sent, safe - sent), json(), false));
        sent = safe;
      }
      return !client_gone;
    };
  }
  models::GenerationResult res;
  {
    std::lock_guard<std::mutex> lock(generate_mutex_);
    if (!client_gone) res = models::generate(*backend_.model, {prompt}, g);
  }
  if (client_gone) return json();
  const std::string text = res.texts[0];
  const std::string finish = res.finish_reasons[0];
  const auto completion_tokens = static_cast<int64_t>(res.tokens[0].size());
  json usage = {{"prompt_tokens", prompt_len},
                {"completion_tokens", completion_tokens},
                {"total_tokens", prompt_len + completion_tokens}};
  if (stream && emit) {
    if (text.size() > sent) emit(chunk(text.substr(sent), json(), false));
    json last = chunk("", finish, false);
    last["usage"] = usage;
    emit(last);
    return json();
  }
  json out = {{"id", id}, {"created", created}, {"model", model_name}, {"usage", usage}};
  if (chat) {
    out["object"] = "chat.completion";
    out["choices"] = json::array(
        {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", finish}}});
  } else {
    out["object"] = "text_completion";
    out["choices"] =
        json::array({{{"text", text}, {"index", 0}, {"logprobs", json()}, {"finish_reason", finish}}});
  }
  return out;
}

// ---- HTTP ----

struct OpenAIServer::Connection {
  explicit Connection(net::io_context& ioc) : socket(ioc) {}
  tcp::socket socket;
  std::thread thread;
  std::atomic<bool> done{false};
};

namespace {

net::io_context& io() {
  static net::io_context ioc;
  return ioc;
}

void write_json(tcp::socket& s, unsigned version, bool keep_alive, int status, const json& body,
                beast::error_code& ec) {
  http::response<http::string_body> res{static_cast<http::status>(status), version};
  res.set(http::field::server, "nabla serve_gpt");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(keep_alive);
  res.body() = dump(body) + "\n";
  res.prepare_payload();
  http::write(s, res, ec);
}

}  // namespace

void OpenAIServer::start() {
  NABLA_CHECK(listen_fd_ < 0, "OpenAIServer: already started");
  beast::error_code ec;
  auto addr = net::ip::make_address(o_.host, ec);
  NABLA_CHECK(!ec, "serve: --host ", o_.host, " is not an IP address: ", ec.message());
  auto acceptor = std::make_shared<tcp::acceptor>(io());
  const tcp::endpoint ep(addr, static_cast<unsigned short>(o_.port));
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
  NABLA_CHECK(!ec, "serve: cannot listen on ", o_.host, ":", o_.port, ": ", ec.message());
  acceptor->non_blocking(true);
  port_ = acceptor->local_endpoint().port();
  listen_fd_ = acceptor->native_handle();
  stopping_ = false;
  acceptor_ = std::thread([this, acceptor] {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      auto c = std::make_shared<Connection>(io());
      beast::error_code aec;
      acceptor->accept(c->socket, aec);
      if (aec) continue;
      std::lock_guard<std::mutex> lock(connections_mutex_);
      // Reap finished connections.
      for (auto it = connections_.begin(); it != connections_.end();) {
        if ((*it)->done) {
          (*it)->thread.join();
          it = connections_.erase(it);
        } else {
          ++it;
        }
      }
      if (static_cast<int>(connections_.size()) >= o_.max_connections) {
        beast::error_code wec;
        write_json(
            c->socket, 11, false, 503,
            error_body({503, str_cat("the server has ", o_.max_connections, " connections open; retry later"),
                        "server_busy", ""}),
            wec);
        c->socket.shutdown(tcp::socket::shutdown_both, wec);
        continue;
      }
      timeval tv{
          static_cast<time_t>(o_.read_timeout_s),
          static_cast<suseconds_t>(
              (o_.read_timeout_s - static_cast<double>(static_cast<time_t>(o_.read_timeout_s))) * 1e6)};
      ::setsockopt(c->socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      connections_.push_back(c);
      c->thread = std::thread([this, c] { serve_connection(c); });
    }
    beast::error_code cec;
    acceptor->close(cec);
  });
}

void OpenAIServer::stop() {
  if (listen_fd_ < 0) return;
  stopping_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard<std::mutex> lock(connections_mutex_);
    open.swap(connections_);
  }
  for (auto& c : open) ::shutdown(c->socket.native_handle(), SHUT_RDWR);  // wakes a blocked read
  for (auto& c : open)
    if (c->thread.joinable()) c->thread.join();
  listen_fd_ = -1;
}

void OpenAIServer::serve_connection(std::shared_ptr<Connection> c) {
  tcp::socket& s = c->socket;
  beast::flat_buffer buffer;
  while (!stopping_) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(o_.max_body_bytes);
    parser.header_limit(16 * 1024);
    beast::error_code ec;
    http::read(s, buffer, parser, ec);
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
        ec == net::error::operation_aborted || ec == net::error::would_block || ec == net::error::try_again ||
        ec == net::error::timed_out || ec == net::error::bad_descriptor || stopping_)
      break;
    if (ec) {  // malformed HTTP, or a body / header over the limits: answer and close
      const int status = ec == http::error::body_limit ? 413 : ec == http::error::header_limit ? 431 : 400;
      const std::string what = status == 413
                                   ? str_cat("the request body exceeds ", o_.max_body_bytes, " bytes")
                               : status == 431 ? std::string("the request headers exceed 16 KiB")
                                               : "malformed HTTP request: " + ec.message();
      beast::error_code wec;
      write_json(s, 11, false, status, error_body({status, what, "invalid_request_error", ""}), wec);
      break;
    }
    auto& req = parser.get();
    const bool keep = req.keep_alive();
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    int status = 200;
    json body;
    bool streamed = false;
    try {
      const bool post = req.method() == http::verb::post, get = req.method() == http::verb::get;
      if (path == "/v1/models" || path == "/health") {
        if (!get) throw ApiError{405, "use GET for " + path, "invalid_request_error", ""};
        body = path == "/health" ? json{{"status", "ok"}} : models_list();
      } else if (path == "/v1/completions" || path == "/v1/chat/completions") {
        if (!post) throw ApiError{405, "use POST for " + path, "invalid_request_error", ""};
        json request;
        try {
          request = json::parse(req.body());
        } catch (const json::exception& e) {
          bad(str_cat("the body is not valid JSON: ", e.what()));
        }
        const bool chat = path == "/v1/chat/completions";
        const bool stream = request.is_object() && request.contains("stream") &&
                            request["stream"].is_boolean() && request["stream"].get<bool>();
        if (!stream) {
          body = completions(request, chat);
        } else {
          // Headers go out with the first event, so a request that fails validation still gets a JSON 400.
          http::response<http::empty_body> res{http::status::ok, req.version()};
          res.set(http::field::server, "nabla serve_gpt");
          res.set(http::field::content_type, "text/event-stream");
          res.set(http::field::cache_control, "no-cache");
          res.keep_alive(keep);
          res.chunked(true);
          http::response_serializer<http::empty_body> sr{res};
          bool header_sent = false, ok = true;
          auto send = [&](const std::string& data) {
            beast::error_code wec;
            if (!header_sent) {
              http::write_header(s, sr, wec);
              header_sent = true;
            }
            if (!wec) net::write(s, http::make_chunk(net::buffer(data)), wec);
            ok = ok && !wec;
            return ok;
          };
          completions(request, chat,
                      [&](const json& event) { return send("data: " + dump(event) + "\n\n"); });
          streamed = true;
          // Counted before the stream's last bytes go out: a client that has read the whole stream sees it
          // in requests_served() (counting after the write raced with it).
          ++served_;
          if (ok) send("data: [DONE]\n\n");
          beast::error_code wec;
          if (ok) net::write(s, http::make_chunk_last(), wec);
          if (!ok || wec) break;
        }
      } else {
        throw ApiError{404, "no such endpoint: " + req.method_string().to_string() + " " + path,
                       "invalid_request_error", ""};
      }
    } catch (const ApiError& e) {
      status = e.status;
      body = error_body(e);
    } catch (const std::exception& e) {
      status = 500;
      body = error_body({500, str_cat("internal error: ", e.what()), "server_error", ""});
    }
    if (!streamed) ++served_;  // before the response is written (a streamed one was counted above)
    if (o_.log_requests)
      std::printf("%s %s -> %d\n", req.method_string().to_string().c_str(), path.c_str(),
                  streamed ? 200 : status),
          std::fflush(stdout);
    if (!streamed) {
      write_json(s, req.version(), keep, status, body, ec);
      if (ec) break;
    }
    if (!keep) break;
  }
  beast::error_code ec;
  s.shutdown(tcp::socket::shutdown_both, ec);
  c->done = true;
}

}  // namespace nabla::apps
