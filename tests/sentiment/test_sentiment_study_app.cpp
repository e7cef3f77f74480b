// The sentiment_study binary end to end against a loopback endpoint with canned answers: query (zero-shot
// and 3-shot) on the standard SC and ABSC sets and on ECE, the per-instance answers file, a rerun served
// from the cache, the report's scores against scores computed here from the gold labels, and bert-import
// of predictions files (SC and ECE; E2E-ABSA tags and ECPE candidate pairs).
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "algorithms/metrics/sentiment.h"
#include "data/sentiment.h"
#include "data/sentiment_bert.h"
#include "data/sentiment_prompts.h"
#include "data/token_tagging.h"
#include "scripted_server.h"

namespace nabla::test {
namespace {

std::string run_binary(const std::string& args, int* rc) {
  const std::string log = write_temp("study.log", "");
  *rc =
      std::system((std::string(NABLA_BINARY_DIR "/sentiment_study ") + args + " > " + log + " 2>&1").c_str());
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// SC questions are answered "positive", ABSC ones "The polarity is neutral.", ECE "2" and anything else
// with no label at all (unparseable).
Reply respond(const json& request) {
  const std::string q = request["messages"].back()["content"];
  if (q.starts_with("Given this text")) return chat_reply("positive");
  if (q.starts_with("Sentence:")) return chat_reply("The polarity is neutral.");
  if (q.find("numbered clauses") != std::string::npos) return chat_reply("2");
  return chat_reply("I am not sure.");
}

TEST(SentimentStudyApp, QueriesAnEndpointSavesAnswersAndReportsTheStudysScores) {
  ScriptedServer server({}, respond);
  const std::string out = std::filesystem::path(write_temp("x", "")).parent_path().string() + "/study";
  const std::string common = " --data " + sentiment_root() + " --out " + out +
                             " --settings standard,sentiment-inference --tasks SC,ABSC,ECE --limit 8";
  int rc = 0;
  std::string log = run_binary("--mode sample" + common + " --sample-ids " + out + "/ids.tsv", &rc);
  ASSERT_EQ(rc, 0) << log;
  const std::string query = "--mode query" + common + " --sample-ids " + out +
                            "/ids.tsv --endpoint http://127.0.0.1:" + std::to_string(server.port()) +
                            "/v1 --model canned --run-name t --shots 0,3 --backoff 0";
  log = run_binary(query, &rc);
  ASSERT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("t_0shot: 32 instances, 0 unparseable answers, 0 errors"), std::string::npos) << log;
  // 3-shot: the demonstrations are user/assistant turns before the question
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 64u);
  EXPECT_EQ(reqs.back()["messages"].size(), 7u);
  // a rerun asks nothing: every answer comes from the cache
  log = run_binary(query, &rc);
  ASSERT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("0 requests, 64 cache hits"), std::string::npos) << log;
  EXPECT_EQ(server.requests().size(), 64u);

  // bert-import: predictions files as train_bert --mode predict writes them, for standard SC and ECE (the
  // ABSC sets, exported too, have none: skipped)
  log = run_binary("--mode bert-export" + common + " --sample-ids " + out + "/ids.tsv", &rc);
  ASSERT_EQ(rc, 0) << log;
  const std::string input = out + "/bert/standard_SC_sst2.txt";
  {
    std::ifstream in(input);
    std::ofstream pred(input + ".pred");
    int k = 0;
    for (std::string line; std::getline(in, line); ++k) pred << (k % 2) << "\t0.5\t0.5\t" << line << "\n";
  }
  {  // ECE: every clause at position 2 predicted a cause, as the canned LLM answers "2"
    std::ifstream in(out + "/bert/sentiment-inference_ECE_ece.txt");
    std::ofstream pred(out + "/bert/sentiment-inference_ECE_ece.txt.pred");
    std::ifstream mf(out + "/bert/manifest.json");
    const json manifest = json::parse(mf);
    for (const json& m : manifest)
      if (m["task"] == "ECE")
        for (const json& id : m["ids"]) {
          std::string line;
          std::getline(in, line);
          const std::string s = id.get<std::string>();
          pred << (s.ends_with(":2") ? 1 : 0) << "\t0.5\t0.5\t" << line << "\n";
        }
  }
  log = run_binary("--mode bert-import" + common + " --sample-ids " + out + "/ids.tsv", &rc);
  ASSERT_EQ(rc, 0) << log;

  log = run_binary("--mode report --out " + out, &rc);
  ASSERT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("| setting | task | dataset | n | metric | bert | t_0shot | t_3shot |"),
            std::string::npos)
      << log;
  std::ifstream rf(out + "/report.json");
  const json report = json::parse(rf);
  // the expected scores, from the gold labels of the same instances
  auto ids = data::read_sample_ids(out + "/ids.tsv");
  auto labels_of = [&](const std::string& key, const std::string& file, data::SentimentTask t) {
    auto all = data::read_sentiment_file(t, sentiment_file(file));
    std::map<std::string, data::SentimentExample> by_id;
    for (auto& e : all) by_id[e.id] = e;
    std::vector<data::SentimentExample> v;
    for (size_t i = 0; i < 8 && i < ids.at(key).size(); ++i) v.push_back(by_id.at(ids.at(key)[i]));
    return v;
  };
  int rows = 0;
  for (const json& row : report["rows"]) {
    const std::string key = row["setting"].get<std::string>() + "/" + row["task"].get<std::string>() + "/" +
                            row["dataset"].get<std::string>();
    const json& cell = row["runs"]["t_0shot"];
    EXPECT_EQ(cell["n"], 8) << key;
    if (key == "standard/SC/sst2") {
      auto ex = labels_of(key, "standard/SST2/dev.txt", data::SentimentTask::sc);
      std::vector<std::string> g, p(8, "positive"), b;
      for (int i = 0; i < 8; ++i) g.push_back(ex[i].label), b.push_back(i % 2 ? "positive" : "negative");
      EXPECT_DOUBLE_EQ(cell["accuracy"], metrics::classification_scores(g, p).accuracy);
      EXPECT_DOUBLE_EQ(row["runs"]["bert"]["accuracy"], metrics::classification_scores(g, b).accuracy);
      ++rows;
    }
    if (key == "standard/ABSC/14res") {
      auto ex = labels_of(key, "standard/ABSC/14res/test.txt", data::SentimentTask::absc);
      std::vector<std::string> g, p(8, "neutral");
      for (auto& e : ex) g.push_back(e.label);
      EXPECT_DOUBLE_EQ(cell["accuracy"], metrics::classification_scores(g, p).accuracy);
      EXPECT_DOUBLE_EQ(cell["macro_f1"], metrics::classification_scores(g, p).macro_f1);
      ++rows;
    }
    if (key == "sentiment-inference/ECE/ece") {
      auto ex = labels_of(key, "sentiment_inference/ECE/ECE_test.txt", data::SentimentTask::ece);
      std::vector<std::vector<std::string>> g, p(8, std::vector<std::string>{"2"});
      for (auto& e : ex) {
        g.emplace_back();
        for (int c : e.causes) g.back().push_back(std::to_string(c));
      }
      EXPECT_DOUBLE_EQ(cell["f1"], metrics::micro_prf(g, p).f1);
      EXPECT_DOUBLE_EQ(row["runs"]["bert"]["f1"], metrics::micro_prf(g, p).f1);
      ++rows;
    }
  }
  EXPECT_EQ(rows, 3);
  // the per-instance answers: one JSON line each, with the answer and what was parsed from it
  std::ifstream af(out + "/answers/t_0shot.jsonl");
  std::string first;
  std::getline(af, first);
  const json r = json::parse(first);
  EXPECT_EQ(r["answer"], "positive");
  EXPECT_EQ(r["parsed"], true);
  EXPECT_EQ(r["pred"], json::array({"positive"}));
}

// bert-export / bert-import of the two structured tasks: the E2E-ABSA tagging TSV (unified tags of the
// gold pairs) and the ECPE candidate TSVs, then predictions as train_bert writes them (--head token: tags;
// pairs: label and probabilities) read back into the study's pair items and scores computed here.
TEST(SentimentStudyApp, BertExportAndImportForE2eAbsaAndEcpe) {
  const std::string out = std::filesystem::path(write_temp("x", "")).parent_path().string() + "/study_e2e";
  const std::string common = " --data " + sentiment_root() + " --out " + out + " --sample-ids " + out +
                             "/ids.tsv --settings standard,sentiment-inference --tasks E2E-ABSA,ECPE "
                             "--datasets 14res,ecpe --limit 6";
  int rc = 0;
  std::string log = run_binary("--mode sample" + common, &rc);
  ASSERT_EQ(rc, 0) << log;
  log = run_binary("--mode bert-export" + common, &rc);
  ASSERT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("0 of 1835 aspects not found"), std::string::npos) << log;  // 14res train
  std::ifstream mf(out + "/bert/manifest.json");
  const json manifest = json::parse(mf);
  ASSERT_EQ(manifest.size(), 2u);
  std::map<std::string, data::SentimentExample> e2e, ecpe;
  for (auto& e : data::read_e2e_absa(sentiment_file("standard/ASPE/14res/test.txt"))) e2e[e.id] = e;
  for (auto& e : data::read_ecpe(sentiment_file("sentiment_inference/ECPE/ECPE_test.txt"))) ecpe[e.id] = e;
  std::vector<std::vector<std::string>> e2e_gold, e2e_pred, ecpe_gold, ecpe_pred;
  for (const json& m : manifest) {
    std::ifstream in(m["input"].get<std::string>());
    std::ofstream pred(m["input"].get<std::string>() + ".pred");
    if (m["task"] == "E2E-ABSA") {
      EXPECT_EQ(m["model"], "e2e_standard_ASPE_14res_train.txt");
      // training data: line 1 of 14res train is "But the staff was so horrible to us ." with staff negative
      const data::TaggedSentences train = data::read_tagging_tsv(m["train_tsv"].get<std::string>());
      ASSERT_EQ(train.size(), 1300);
      EXPECT_EQ(train.tags[0], (std::vector<std::string>{"O", "O", "B-NEG", "O", "O", "O", "O", "O", "O"}));
      // predictions: the gold tags, except all O for the second instance
      int k = 0;
      for (const json& id : m["ids"]) {
        std::string line;
        std::getline(in, line);
        const data::SentimentExample& e = e2e.at(id.get<std::string>());
        const auto words = data::split_words(line);
        auto tags = data::e2e_tags(words, e.pairs);
        std::vector<std::string> g, p;
        for (const auto& [a, q] : e.pairs) g.push_back(data::to_lower(a) + "\x1f" + data::to_lower(q));
        if (k++ == 1)
          std::fill(tags.begin(), tags.end(), "O");
        else
          p = g;
        e2e_gold.push_back(g), e2e_pred.push_back(p);
        std::string joined;
        for (const auto& t : tags) joined += (joined.empty() ? "" : " ") + t;
        pred << joined << '\t' << line << '\n';
      }
    } else {
      EXPECT_EQ(m["task"], "ECPE");
      // predictions: probability 0.9 for a gold pair, 0.1 for the others: a document's gold pairs within the
      // window, or its first candidate when none is
      std::map<std::string, std::vector<std::string>> got;
      std::vector<std::string> docs;
      for (const json& id : m["ids"]) {
        std::string line;
        std::getline(in, line);
        const std::string s = id.get<std::string>();
        const std::string doc = s.substr(0, s.find(':')), pair = s.substr(s.find(':') + 1);
        const data::SentimentExample& e = ecpe.at(doc);
        bool gold = false;
        for (const auto& [a, b] : e.clause_pairs) gold |= str_cat(a, ",", b) == pair;
        if (!got.count(doc)) docs.push_back(doc), got[doc] = {};
        if (gold) got[doc].push_back(pair);
        pred << (gold ? "1\t0.1000\t0.9000\t" : "0\t0.9000\t0.1000\t") << line << '\n';
      }
      EXPECT_EQ(docs.size(), 6u);
      for (const auto& doc : docs) {
        std::vector<std::string> g;
        for (const auto& [a, b] : ecpe.at(doc).clause_pairs) g.push_back(str_cat(a, ",", b));
        ecpe_gold.push_back(g);
        ecpe_pred.push_back(got[doc].empty() ? std::vector<std::string>{"1,1"} : got[doc]);
      }
    }
  }
  log = run_binary("--mode bert-import" + common, &rc);
  ASSERT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("bert: 12 instances written, 0 datasets without predictions"), std::string::npos) << log;
  log = run_binary("--mode report --out " + out, &rc);
  ASSERT_EQ(rc, 0) << log;
  std::ifstream rf(out + "/report.json");
  const json report = json::parse(rf);
  ASSERT_EQ(report["rows"].size(), 2u);
  const metrics::PrfScores e2e_s = metrics::micro_prf(e2e_gold, e2e_pred),
                           ecpe_s = metrics::micro_prf(ecpe_gold, ecpe_pred);
  EXPECT_LT(e2e_s.f1, 1.0);
  EXPECT_GT(e2e_s.f1, 0.5);
  for (const json& row : report["rows"]) {
    const json& cell = row["runs"]["bert"];
    const metrics::PrfScores& want = row["task"] == "E2E-ABSA" ? e2e_s : ecpe_s;
    EXPECT_EQ(cell["tp"], want.tp) << row;
    EXPECT_EQ(cell["predicted"], want.predicted) << row;
    EXPECT_DOUBLE_EQ(cell["f1"], want.f1) << row;
  }
}

TEST(SentimentStudyApp, ADeadEndpointFailsNamingIt) {
  int rc = 0;
  const std::string out = std::filesystem::path(write_temp("x", "")).parent_path().string() + "/dead";
  const std::string log =
      run_binary("--mode query --data " + sentiment_root() + " --out " + out +
                     " --settings standard --tasks SC --limit 1 --endpoint http://127.0.0.1:9/v1"
                     " --max-retries 1 --backoff 0",
                 &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(log.find("no answer from http://127.0.0.1:9/v1 after 2 attempts"), std::string::npos) << log;
  EXPECT_NE(run_binary("--mode query --shots x", &rc).find("'x' is not a count"), std::string::npos);
  EXPECT_EQ(WEXITSTATUS(rc), 2);
}

// Every example in --help parses (--print-config checks the options and exits 0 without running).
TEST(SentimentStudyApp, EveryHelpExampleParses) {
  int rc = 0;
  const std::string help = run_binary("--help", &rc);
  ASSERT_EQ(rc, 0) << help;
  std::istringstream lines(help);
  int examples = 0;
  for (std::string line; std::getline(lines, line);) {
    const std::string prefix = "  sentiment_study ";
    if (line.rfind(prefix, 0) != 0) continue;
    const std::string out = run_binary(line.substr(prefix.size()) + " --print-config", &rc);
    EXPECT_EQ(rc, 0) << line << ": " << out;
    ++examples;
  }
  EXPECT_GE(examples, 4);
}

}  // namespace
}  // namespace nabla::test
