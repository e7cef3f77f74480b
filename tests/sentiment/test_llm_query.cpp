// The study's query layer (apps/common/llm_query.h) against a loopback HTTP server that answers from a
// script: canned chat answers, a read timeout, 5xx and 429 answers that are retried, a 400 that is not, and
// the on-disk cache that lets a run resume without asking again.
#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "apps/common/llm_query.h"
#include "scripted_server.h"

namespace nabla::test {
namespace {

using json = nlohmann::json;

apps::LlmQueryOptions options(int port, const std::string& cache = "") {
  return {.endpoint = "http://127.0.0.1:" + std::to_string(port) + "/v1",
          .model = "canned",
          .api_key = "sk-test",
          .cache_file = cache,
          .max_retries = 3,
          .backoff_s = 0.01,
          .max_backoff_s = 0.05,
          .timeout_s = 0.5,
          .max_tokens = 32};
}

TEST(LlmQuery, RetriesATimeoutAnd5xxThenCachesTheAnswer) {
  const std::string answer = "Label: [('staff', 'negative')]";
  ScriptedServer server({{.status = 200, .body = chat_reply("too late").body, .delay_s = 1.5},
                         {.status = 503, .body = R"({"error": {"message": "overloaded"}})"},
                         {.status = 429, .body = R"({"error": {"message": "slow down"}})"},
                         chat_reply(answer)});
  const std::string cache = write_temp("cache.jsonl", "");
  apps::LlmQuery q(options(server.port(), cache));
  const std::vector<data::ChatMessage> m = {
      {"user", "Given a sentence ... Text: But the staff was so horrible to us."}};
  const auto t0 = std::chrono::steady_clock::now();
  apps::LlmAnswer a = q.ask(m);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  EXPECT_EQ(a.text, answer);
  EXPECT_FALSE(a.cached);
  EXPECT_EQ(a.attempts, 4);
  EXPECT_EQ(q.retries(), 3);
  const auto reqs = server.requests();
  ASSERT_GE(reqs.size(), 3u);
  EXPECT_EQ(reqs.back()["model"], "canned");
  EXPECT_EQ(reqs.back()["temperature"], 0);
  EXPECT_EQ(reqs.back()["messages"][0]["content"], m[0].content);
  // asked again: from memory, and from the file in a new process (a resumed run); no request is sent
  EXPECT_TRUE(q.ask(m).cached);
  apps::LlmQuery resumed(options(server.port(), cache));
  apps::LlmAnswer b = resumed.ask(m);
  EXPECT_TRUE(b.cached);
  EXPECT_EQ(b.text, answer);
  EXPECT_EQ(resumed.requests(), 0);
  // another model or endpoint never reads these answers
  auto other = options(server.port(), cache);
  other.model = "another";
  EXPECT_FALSE(apps::LlmQuery(other).cached(m).has_value());
}

TEST(LlmQuery, GivesUpAfterMaxRetriesAndNeverRetriesA400) {
  {
    ScriptedServer server({{500, "{}"}, {502, "{}"}, {500, "{}"}, {500, "{}"}, chat_reply("never reached")});
    apps::LlmQuery q(options(server.port()));
    const std::string e = error_of([&] { q.ask({{"user", "x"}}); });
    EXPECT_NE(e.find("after 4 attempts"), std::string::npos) << e;
    EXPECT_EQ(q.requests(), 4);
  }
  {
    ScriptedServer server(
        {{400, R"({"error": {"message": "max_tokens must be an integer >= 1"}})"}, chat_reply("no")});
    apps::LlmQuery q(options(server.port()));
    const std::string e = error_of([&] { q.ask({{"user", "x"}}); });
    EXPECT_NE(e.find("max_tokens must be an integer"), std::string::npos) << e;
    EXPECT_EQ(q.requests(), 1);
  }
}

TEST(LlmQuery, RateLimitSpacesRequestsAndTheKeyComesFromTheEnvironment) {
  ScriptedServer server({chat_reply("positive"), chat_reply("negative"), chat_reply("neutral")});
  auto o = options(server.port());
  o.api_key = "";
  o.api_key_env = "NABLA_TEST_SENTIMENT_KEY";
  ::setenv("NABLA_TEST_SENTIMENT_KEY", "sk-from-env", 1);
  o.requests_per_minute = 600;  // 0.1 s apart
  apps::LlmQuery q(o);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(q.ask({{"user", "a"}}).text, "positive");
  EXPECT_EQ(q.ask({{"user", "b"}}).text, "negative");
  EXPECT_EQ(q.ask({{"user", "c"}}).text, "neutral");
  EXPECT_GE(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0.19);
  ASSERT_EQ(server.authorizations().size(), 3u);
  EXPECT_EQ(server.authorizations()[0], "Bearer sk-from-env");
  ::unsetenv("NABLA_TEST_SENTIMENT_KEY");
}

TEST(LlmQuery, ACacheLineCutShortIsAskedAgainAndABadLineThrows) {
  const std::string rec = json{
      {"endpoint", "http://127.0.0.1:9/v1"},
      {"model", "canned"},
      {"messages", {{{"role", "user"}, {"content", "a"}}}},
      {"answer", "positive"}}.dump();
  auto o = options(9, write_temp("cache.jsonl", rec + "\n" + rec.substr(0, 20)));
  apps::LlmQuery q(o);
  EXPECT_EQ(q.cache_size(), 1u);
  EXPECT_EQ(q.ask({{"user", "a"}}).text, "positive");
  o.cache_file = write_temp("cache.jsonl", "{\"x\": 1}\n" + rec + "\n");
  EXPECT_NE(error_of([&] { apps::LlmQuery bad(o); }).find("cache.jsonl:1: not a cache record"),
            std::string::npos);
}

}  // namespace
}  // namespace nabla::test
