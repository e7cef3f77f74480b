// A loopback HTTP server for the sentiment tests: answers each connection from a script of replies (canned
// chat answers, delays past the client's timeout, 4xx/5xx), then from a responder function.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "sentiment_testing.h"

namespace nabla::test {

using json = nlohmann::json;

// One scripted reply: an HTTP status and body, sent after `delay_s` (a delay past the client's timeout is a
// timeout).
struct Reply {
  int status = 200;
  std::string body;
  double delay_s = 0;
};

inline Reply chat_reply(const std::string& text) {
  json choice = {{"index", 0}, {"finish_reason", "stop"}};
  choice["message"] = {{"role", "assistant"}, {"content", text}};
  json body = {{"object", "chat.completion"}};
  body["choices"] = json::array({choice});
  return {200, body.dump()};
}

// Answers connections one at a time with the next scripted reply (then the responder's, when given);
// records each request body and Authorization header.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::deque<Reply> script, std::function<Reply(const json&)> responder = {})
      : script_(std::move(script)), responder_(std::move(responder)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    NABLA_CHECK(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind failed");
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 16);
    thread_ = std::thread([this] { loop(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (auto& h : handlers_) h.join();
  }
  int port() const { return port_; }
  std::vector<json> requests() {
    std::lock_guard<std::mutex> l(m_);
    return requests_;
  }
  std::vector<std::string> authorizations() {
    std::lock_guard<std::mutex> l(m_);
    return auth_;
  }

 private:
  // Each connection on a thread of its own, so that a delayed reply does not hold up the retries after it;
  // replies are taken from the script in the order the requests arrive.
  void loop() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::lock_guard<std::mutex> l(m_);
      handlers_.emplace_back([this, c] { handle(c); });
    }
  }
  void handle(int c) {
    std::string in;
    char buf[4096];
    size_t body_at = std::string::npos, length = 0;
    while (true) {
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      if (body_at == std::string::npos && (body_at = in.find("\r\n\r\n")) != std::string::npos) {
        body_at += 4;
        std::string lower = in.substr(0, body_at);
        for (char& ch : lower) ch = static_cast<char>(std::tolower(ch));
        const size_t cl = lower.find("content-length:");
        length = cl == std::string::npos ? 0 : std::stoul(lower.substr(cl + 15));
      }
      if (body_at != std::string::npos && in.size() >= body_at + length) break;
    }
    Reply r;
    {
      std::lock_guard<std::mutex> l(m_);
      if (body_at != std::string::npos) {
        requests_.push_back(json::parse(in.substr(body_at, length)));
        const std::string head = in.substr(0, body_at);
        const size_t a = head.find("Authorization: ");
        auth_.push_back(a == std::string::npos ? "" : head.substr(a + 15, head.find("\r\n", a) - a - 15));
      }
      if (!script_.empty())
        r = script_.front(), script_.pop_front();
      else if (responder_ && !requests_.empty())
        r = responder_(requests_.back());
      else
        r = {500, R"({"error": {"message": "script exhausted"}})"};
    }
    if (r.delay_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(r.delay_s));
    const std::string out =
        "HTTP/1.1 " + std::to_string(r.status) +
        " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(r.body.size()) +
        "\r\nConnection: close\r\n\r\n" + r.body;
    ::send(c, out.data(), out.size(), MSG_NOSIGNAL);
    ::close(c);
  }
  std::deque<Reply> script_;
  std::function<Reply(const json&)> responder_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> handlers_;
  std::mutex m_;
  std::vector<json> requests_;
  std::vector<std::string> auth_;
};

}  // namespace nabla::test
