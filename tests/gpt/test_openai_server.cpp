// The OpenAI-compatible server and client (apps/common/openai_server.h, openai_client.h) on the loopback
// interface: an in-process server on an ephemeral port with a tiny random GPT and the fixture tokenizer.
// Answers are checked against models::generate called directly (greedy, or sampled with the same seed).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "apps/common/openai_client.h"
#include "apps/common/openai_server.h"
#include "gpt_testing.h"
#include "models/generate.h"

namespace nabla::test {
namespace {

using json = nlohmann::json;

// What a JSON answer carries for `text`: invalid UTF-8 (a random model emits any bytes) replaced by U+FFFD.
std::string as_json_text(const std::string& text) {
  return json::parse(json(text).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
}

// A stop string of two printable ASCII bytes found in `text` from byte 2 on ("" if none).
std::string ascii_pair(const std::string& text) {
  for (size_t i = 2; i + 1 < text.size(); ++i)
    if (text[i] >= 0x20 && text[i] < 0x7f && text[i + 1] >= 0x20 && text[i + 1] < 0x7f)
      return text.substr(i, 2);
  return "";
}

class OpenAIServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend.model = std::make_shared<models::GPT>(tiny_config(64), next_seed());
    backend.tokenizer = std::make_shared<data::Gpt2Tokenizer>(fixture_tokenizer(&backend.chat));
    apps::ServerOptions so;
    so.port = 0;
    so.max_body_bytes = 4096;
    so.model_name = "tiny-test";
    server = std::make_unique<apps::OpenAIServer>(backend, so);
    server->start();
    client = std::make_unique<apps::OpenAIClient>(
        apps::ClientOptions{.base_url = "http://127.0.0.1:" + std::to_string(server->port()) + "/v1"});
  }
  void TearDown() override { server->stop(); }

  // What generate gives for these prompt ids (the reference for the server's answers).
  std::string direct(const std::vector<int64_t>& prompt, int64_t max_tokens, double temperature,
                     uint64_t seed, bool chat) {
    models::GenerationConfig g;
    g.max_new_tokens = max_tokens;
    g.do_sample = temperature > 0;
    g.temperature = temperature > 0 ? temperature : 1.0;
    g.seed = seed;
    g.stop_token_ids = {backend.chat.eot};
    if (chat) g.stop_token_ids.push_back(backend.chat.end);
    g.decode = [&](const std::vector<int64_t>& ids) {
      std::vector<int32_t> v;
      for (int64_t id : ids)
        if (id < backend.tokenizer->vocab_size()) v.push_back(static_cast<int32_t>(id));
      return backend.tokenizer->decode(v);
    };
    return models::generate(*backend.model, {prompt}, g).texts[0];  // raw bytes
  }
  std::vector<int64_t> ids(const std::string& text) {
    auto v = backend.tokenizer->encode(text);
    return {v.begin(), v.end()};
  }

  apps::GptBackend backend;
  std::unique_ptr<apps::OpenAIServer> server;
  std::unique_ptr<apps::OpenAIClient> client;
};

// Sends raw bytes and returns the whole answer (the server closes after an error).
std::string raw_exchange(int port, const std::string& bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST_F(OpenAIServerTest, ModelsAndCompletionsMatchDirectGeneration) {
  json m = client->models();
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0]["id"], "tiny-test");
  auto r = client->complete(
      {{"model", "tiny-test"}, {"prompt", "the cat"}, {"max_tokens", 12}, {"temperature", 0}});
  EXPECT_EQ(r.text, as_json_text(direct(ids("the cat"), 12, 0, 0, false)));
  EXPECT_EQ(r.prompt_tokens, static_cast<int64_t>(ids("the cat").size()));
  EXPECT_EQ(r.raw["object"], "text_completion");
  EXPECT_EQ(r.raw["model"], "tiny-test");
  EXPECT_TRUE(r.finish_reason == "length" || r.finish_reason == "stop");
  // Sampling with a seed repeats; the text equals generate's with that seed.
  auto s1 = client->complete({{"prompt", "a"}, {"max_tokens", 10}, {"temperature", 0.9}, {"seed", 42}});
  auto s2 = client->complete({{"prompt", "a"}, {"max_tokens", 10}, {"temperature", 0.9}, {"seed", 42}});
  EXPECT_EQ(s1.text, s2.text);
  EXPECT_EQ(s1.text, as_json_text(direct(ids("a"), 10, 0.9, 42, false)));
}

TEST_F(OpenAIServerTest, ChatCompletionsUseTheTemplateAndStopAtEnd) {
  json messages = {{{"role", "system"}, {"content", "be nice"}}, {{"role", "user"}, {"content", "hi"}}};
  auto r = client->chat({{"messages", messages}, {"max_tokens", 15}, {"temperature", 0}});
  std::vector<int64_t> prompt =
      data::tokenize_chat(*backend.tokenizer, backend.chat, {{"system", "be nice"}, {"user", "hi"}}).ids;
  prompt.push_back(backend.chat.assistant);
  for (int64_t id : ids("\n")) prompt.push_back(id);
  EXPECT_EQ(r.text, as_json_text(direct(prompt, 15, 0, 0, true)));
  EXPECT_EQ(r.raw["object"], "chat.completion");
  EXPECT_EQ(r.raw["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r.prompt_tokens, static_cast<int64_t>(prompt.size()));
}

TEST_F(OpenAIServerTest, StreamingDeltasAddUpToTheWholeAnswer) {
  for (bool chat : {false, true}) {
    json req = {{"max_tokens", 20}, {"temperature", 0.8}, {"seed", 5}};
    if (chat) {
      req["messages"] = {{{"role", "user"}, {"content", "tell me"}}};
    } else {
      req["prompt"] = "once upon";
    }
    auto whole = chat ? client->chat(req) : client->complete(req);
    std::vector<std::string> pieces;
    auto streamed = chat ? client->chat(req, [&](const std::string& p) { pieces.push_back(p); })
                         : client->complete(req, [&](const std::string& p) { pieces.push_back(p); });
    std::string joined;
    for (auto& p : pieces) joined += p;
    EXPECT_EQ(joined, whole.text) << "chat " << chat;
    EXPECT_EQ(streamed.text, whole.text);
    EXPECT_EQ(streamed.finish_reason, whole.finish_reason);
    EXPECT_EQ(streamed.completion_tokens, whole.completion_tokens);
    if (whole.text.size() > 3) {
      EXPECT_GT(pieces.size(), 1u);
    }
  }
}

TEST_F(OpenAIServerTest, StopStringsCutTheTextInBothModes) {
  const std::string raw = direct(ids("x"), 60, 0, 0, false);
  const std::string stop = ascii_pair(raw);
  if (stop.empty()) GTEST_SKIP() << "the random model wrote no two ASCII bytes in a row";
  const std::string expect = as_json_text(raw.substr(0, raw.find(stop)));
  json req = {{"prompt", "x"}, {"max_tokens", 60}, {"temperature", 0}, {"stop", {stop, "zzzz"}}};
  auto cut = client->complete(req);
  EXPECT_EQ(cut.text, expect);
  EXPECT_EQ(cut.finish_reason, "stop");
  std::string joined;
  auto streamed = client->complete(req, [&](const std::string& p) { joined += p; });
  EXPECT_EQ(joined, expect);
  EXPECT_EQ(streamed.finish_reason, "stop");
}

TEST_F(OpenAIServerTest, BadRequestsGet4xxWithAnErrorBodyAndTheServerLivesOn) {
  struct Case {
    std::string method, path, body;
    int status;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"POST", "/completions", "{\"prompt\": \"x\", ", 400, "not valid JSON"},
      {"POST", "/completions", "[1, 2]", 400, "JSON object"},
      {"POST", "/completions", R"({"prompt": "x", "max_tokens": -3})", 400,
       "max_tokens must be an integer >= 1"},
      {"POST", "/completions", R"({"prompt": "x", "temperature": "hot"})", 400,
       "temperature must be a number"},
      {"POST", "/completions", R"({"prompt": "x", "temperature": 7})", 400, "temperature must be in [0, 2]"},
      {"POST", "/completions", R"({"prompt": "x", "n": 2})", 400, "n = 1"},
      {"POST", "/completions", R"({"prompt": 5})", 400, "prompt must be"},
      {"POST", "/completions", R"({"max_tokens": 3})", 400, "prompt is required"},
      {"POST", "/completions", R"({"prompt": "x", "stop": [1]})", 400, "stop must be"},
      {"POST", "/completions", R"({"prompt": "x", "stream": "yes"})", 400, "stream must be a boolean"},
      {"POST", "/chat/completions", R"({"messages": []})", 400, "messages must be"},
      {"POST", "/chat/completions", R"({"messages": [{"role": "tool", "content": "x"}]})", 400,
       "role must be"},
      {"POST", "/completions", "{\"prompt\": \"" + std::string(3000, 'a') + "\"}", 400, "context"},
      {"POST", "/completions", "{\"prompt\": \"" + std::string(5000, 'a') + "\"}", 413, "exceeds 4096 bytes"},
      {"GET", "/completions", "", 405, "use POST"},
      {"POST", "/models", "{}", 405, "use GET"},
      {"GET", "/nowhere", "", 404, "no such endpoint"},
  };
  for (auto& c : cases) {
    apps::HttpResult r = client->request(c.method, c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.path << " " << c.body.substr(0, 80) << " -> "
                                  << r.body;
    json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(c.says), std::string::npos) << r.body;
  }
  // The client turns an error into an exception with the status and message.
  try {
    client->complete({{"prompt", "x"}, {"max_tokens", 0}});
    ADD_FAILURE() << "no exception";
  } catch (const apps::OpenAIError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(std::string(e.what()).find("max_tokens"), std::string::npos);
  }
  // Not HTTP at all, and a streaming request that fails validation: JSON errors, not a stream.
  const std::string garbage = raw_exchange(server->port(), "HELLO THERE\r\n\r\n");
  EXPECT_EQ(garbage.rfind("HTTP/1.1 400", 0), 0u) << garbage;
  apps::HttpResult s =
      client->request("POST", "/completions", R"({"prompt": "x", "stream": true, "top_p": 0})");
  EXPECT_EQ(s.status, 400);
  EXPECT_EQ(s.content_type, "application/json");
  auto ok = client->complete({{"prompt", "still alive"}, {"max_tokens", 3}, {"temperature", 0}});
  EXPECT_EQ(ok.text, as_json_text(direct(ids("still alive"), 3, 0, 0, false)));
}

TEST_F(OpenAIServerTest, ConcurrentClientsEachGetTheirOwnAnswer) {
  const std::vector<std::string> prompts = {"alpha", "beta gamma", "delta", "the end of it"};
  std::vector<std::string> expect;
  for (auto& p : prompts) expect.push_back(as_json_text(direct(ids(p), 8, 0, 0, false)));
  std::vector<std::vector<std::string>> got(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      apps::OpenAIClient c({.base_url = "http://127.0.0.1:" + std::to_string(server->port()) + "/v1"});
      for (int k = 0; k < 3; ++k)
        got[i].push_back(c.complete({{"prompt", prompts[i]}, {"max_tokens", 8}, {"temperature", 0}},
                                    k == 1
                                        ? std::function<void(const std::string&)>([](const std::string&) {})
                                        : std::function<void(const std::string&)>())
                             .text);
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i)
    for (auto& g : got[i]) EXPECT_EQ(g, expect[i]) << prompts[i];
  EXPECT_GE(server->requests_served(), 12);
}

}  // namespace
}  // namespace nabla::test
