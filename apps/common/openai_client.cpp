// The OpenAI-compatible client (see openai_client.h).
#include "apps/common/openai_client.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <limits>

namespace nabla::apps {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;

std::string server_message(int status, const std::string& body) {
  try {
    json j = json::parse(body);
    if (j.contains("error") && j["error"].is_object() && j["error"].contains("message"))
      return str_cat("HTTP ", status, ": ", j["error"]["message"].get<std::string>());
  } catch (const std::exception&) {
  }
  return str_cat("HTTP ", status, ": ", body.substr(0, 300));
}

// SO_RCVTIMEO of `seconds`, fractions kept (0.3 s is 300,000 us, not 0 = no timeout).
timeval read_timeout(double seconds) {
  const auto us = static_cast<int64_t>(seconds * 1e6);
  return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

}  // namespace

OpenAIClient::OpenAIClient(ClientOptions options) : o_(std::move(options)) {
  const std::string& u = o_.base_url;
  NABLA_CHECK(u.rfind("http://", 0) == 0, "OpenAIClient: base_url '", u,
              "' must start with http:// (https needs a TLS proxy: see openai_client.h)");
  std::string rest = u.substr(7);
  const size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  prefix_ = slash == std::string::npos ? "" : rest.substr(slash);
  while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
  const size_t colon = hostport.rfind(':');
  host_ = hostport.substr(0, colon);
  if (colon != std::string::npos) {
    try {
      port_ = std::stoi(hostport.substr(colon + 1));
    } catch (const std::exception&) {
      fail("OpenAIClient: base_url '", u, "' has a bad port");
    }
  }
  NABLA_CHECK(!host_.empty() && port_ > 0 && port_ < 65536, "OpenAIClient: base_url '", u,
              "' needs a host and a port in [1, 65535]");
}

HttpResult OpenAIClient::request(const std::string& method, const std::string& path, const std::string& body,
                                 const std::string& content_type) {
  // Asynchronous operations under one deadline (timeout_s for connect, write and read together): a
  // synchronous Asio read ignores SO_RCVTIMEO (it polls again on EAGAIN), so a silent server would block
  // forever.
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream s(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(host_, std::to_string(port_), ec);
  NABLA_CHECK(!ec, "OpenAIClient: cannot resolve ", host_, ": ", ec.message());
  s.expires_after(std::chrono::microseconds(static_cast<int64_t>(o_.timeout_s * 1e6)));
  auto run = [&] {
    ioc.run();
    ioc.restart();
  };
  s.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
  run();
  NABLA_CHECK(!ec, "OpenAIClient: cannot connect to ", host_, ":", port_, ": ", ec.message());
  http::request<http::string_body> req{http::string_to_verb(method), prefix_ + path, 11};
  req.set(http::field::host, host_);
  req.set(http::field::user_agent, "nabla openai_client");
  if (!o_.api_key.empty()) req.set(http::field::authorization, "Bearer " + o_.api_key);
  if (!body.empty() || method == "POST") {
    req.set(http::field::content_type, content_type);
    req.body() = body;
  }
  req.keep_alive(false);
  req.prepare_payload();
  http::async_write(s, req, [&](beast::error_code e, size_t) { ec = e; });
  run();
  NABLA_CHECK(!ec, "OpenAIClient: sending ", method, " ", path, " failed: ", ec.message());
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  http::async_read(s, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
  run();
  NABLA_CHECK(
      !ec, "OpenAIClient: reading the answer to ", method, " ", path, " failed",
      ec == beast::error::timeout ? str_cat(" (no answer within ", o_.timeout_s, " s)") : std::string(), ": ",
      ec.message());
  HttpResult r;
  r.status = static_cast<int>(parser.get().result_int());
  r.content_type = std::string(parser.get()[http::field::content_type]);
  r.body = std::move(parser.get().body());
  s.socket().shutdown(tcp::socket::shutdown_both, ec);
  return r;
}

json OpenAIClient::models() {
  HttpResult r = request("GET", "/models", "");
  if (r.status / 100 != 2) throw OpenAIError(r.status, server_message(r.status, r.body));
  return json::parse(r.body);
}

CompletionResult OpenAIClient::complete(json request,
                                        const std::function<void(const std::string&)>& on_delta) {
  return post("/completions", std::move(request), false, on_delta);
}

CompletionResult OpenAIClient::chat(json request, const std::function<void(const std::string&)>& on_delta) {
  return post("/chat/completions", std::move(request), true, on_delta);
}

CompletionResult OpenAIClient::post(const std::string& path, json request, bool chat,
                                    const std::function<void(const std::string&)>& on_delta) {
  NABLA_CHECK(request.is_object(), "OpenAIClient: a request must be a JSON object");
  const bool stream = static_cast<bool>(on_delta);
  if (stream) request["stream"] = true;
  CompletionResult out;
  if (!stream) {
    HttpResult r = this->request("POST", path, request.dump(-1, ' ', false, json::error_handler_t::replace));
    if (r.status / 100 != 2) throw OpenAIError(r.status, server_message(r.status, r.body));
    json j = json::parse(r.body);
    const json& c = j.at("choices").at(0);
    out.text = chat ? c.at("message").at("content").get<std::string>() : c.at("text").get<std::string>();
    out.finish_reason = c.value("finish_reason", "");
    if (j.contains("usage") && j["usage"].is_object()) {
      out.prompt_tokens = j["usage"].value("prompt_tokens", int64_t{0});
      out.completion_tokens = j["usage"].value("completion_tokens", int64_t{0});
    }
    out.raw = std::move(j);
    return out;
  }
  // Streaming: read the chunked body as it comes and split it into server-sent events.
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  tcp::socket s(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(host_, std::to_string(port_), ec);
  if (!ec) net::connect(s, endpoints, ec);
  NABLA_CHECK(!ec, "OpenAIClient: cannot connect to ", host_, ":", port_, ": ", ec.message());
  timeval tv = read_timeout(o_.timeout_s);
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  http::request<http::string_body> req{http::verb::post, prefix_ + path, 11};
  req.set(http::field::host, host_);
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "text/event-stream");
  if (!o_.api_key.empty()) req.set(http::field::authorization, "Bearer " + o_.api_key);
  req.body() = request.dump(-1, ' ', false, json::error_handler_t::replace);
  req.keep_alive(false);
  req.prepare_payload();
  http::write(s, req, ec);
  NABLA_CHECK(!ec, "OpenAIClient: sending POST ", path, " failed: ", ec.message());
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  http::read_header(s, buffer, parser, ec);
  NABLA_CHECK(!ec, "OpenAIClient: reading the answer to POST ", path, " failed: ", ec.message());
  const int status = static_cast<int>(parser.get().result_int());
  const bool events = parser.get()[http::field::content_type].starts_with("text/event-stream");
  std::string pending;
  bool done = false;
  auto on_event = [&](const std::string& data) {
    if (data == "[DONE]") {
      done = true;
      return;
    }
    json j = json::parse(data);
    const json& c = j.at("choices").at(0);
    std::string piece;
    if (chat) {
      const json& d = c.at("delta");
      if (d.contains("content") && d["content"].is_string()) piece = d["content"].get<std::string>();
    } else {
      piece = c.at("text").get<std::string>();
    }
    if (!piece.empty()) {
      out.text += piece;
      on_delta(piece);
    }
    if (c.contains("finish_reason") && c["finish_reason"].is_string()) out.finish_reason = c["finish_reason"];
    if (j.contains("usage") && j["usage"].is_object()) {
      out.prompt_tokens = j["usage"].value("prompt_tokens", int64_t{0});
      out.completion_tokens = j["usage"].value("completion_tokens", int64_t{0});
    }
    out.raw = std::move(j);
  };
  // Beast's parser keeps a *reference* to the chunk callback, so it must live as long as the reads below
  // (declared inside the `if`, it went out of scope before them: AddressSanitizer's stack-use-after-scope).
  auto body_cb = [&](std::uint64_t, beast::string_view body, beast::error_code&) -> std::size_t {
    pending.append(body.data(), body.size());
    size_t at;
    while ((at = pending.find("\n\n")) != std::string::npos) {
      std::string event = pending.substr(0, at);
      pending.erase(0, at + 2);
      if (event.rfind("data: ", 0) == 0) on_event(event.substr(6));
    }
    return body.size();
  };
  if (status / 100 == 2 && events) parser.on_chunk_body(body_cb);
  while (!parser.is_done()) {
    http::read(s, buffer, parser, ec);
    NABLA_CHECK(!ec, "OpenAIClient: reading the stream of POST ", path, " failed: ", ec.message());
  }
  if (status / 100 != 2) throw OpenAIError(status, server_message(status, parser.get().body()));
  NABLA_CHECK(events, "OpenAIClient: POST ", path, " with stream: true got no event stream");
  NABLA_CHECK(done, "OpenAIClient: the event stream of POST ", path, " ended without [DONE]");
  return out;
}

}  // namespace nabla::apps
