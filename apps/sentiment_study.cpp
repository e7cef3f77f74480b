// sentiment_study: the harness of "Is ChatGPT a Good Sentiment Analyzer?" (docs/sentiment.md): the study's
// grid of setting x task x dataset (data/sentiment.h), a language model behind any OpenAI-compatible
// endpoint (our serve_gpt, or ChatGPT through a proxy) in zero- and few-shot settings, a fine-tuned BERT
// (train_bert) for every task (SC, ABSC and ECE, ECPE as sequence classification; E2E-ABSA as token tagging),
// per-instance answers saved as JSONL, and the study's tables.
//
//   sentiment_study --mode sample --out study                       # study/sample_ids.tsv
//   sentiment_study --mode sft-data --out study                     # study/sft.jsonl (training splits only)
//   sentiment_study --mode query --out study --endpoint http://127.0.0.1:8000/v1 --model nabla-gpt --shots
//   0,3 sentiment_study --mode bert-export --out study                  # TSVs + inputs for train_bert
//   (train_bert --mode finetune / --mode predict, scripts/sentiment_experiments.sh)
//   sentiment_study --mode bert-import --out study                  # study/answers/bert.jsonl
//   sentiment_study --mode report --out study                       # Markdown + study/report.json
//
// One answers record (JSONL, study/answers/<run>.jsonl): {"run", "backend", "shots", "setting", "task",
// "dataset", "id", "text", "answer", "parsed", "gold": [items], "pred": [items], "error"}; items are labels
// (SC/ABSC), "aspect<US>polarity" (E2E-ABSA), clause numbers (ECE) and "e,c" (ECPE). An unparseable answer
// has parsed false and pred [] (wrong, counted in the report's "unparsed").
// Exit codes: 0 done; 1 a failure (data, endpoint); 2 a bad command line.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "algorithms/metrics/sentiment.h"
#include "apps/common/llm_query.h"
#include "apps/common/options.h"
#include "data/sentiment.h"
#include "data/sentiment_prompts.h"
#include "data/sentiment_bert.h"
#include "data/token_tagging.h"

using namespace nabla;
using json = nlohmann::json;
namespace fs = std::filesystem;
using data::SentimentExample;
using data::SentimentTask;
using data::StudyDataset;

namespace {

struct Options {
  std::string mode, root, out, settings, tasks, datasets, shots, run_name, endpoint, model, api_key_env,
      sample_ids;
  int64_t prompt_index, max_tokens, max_retries, limit, open_absc_n, open_e2e_n, sft_per_task, demo_seed,
      ecpe_window, ecpe_negatives;
  double timeout_s, requests_per_minute, backoff_s, ecpe_threshold;
  bool filter_absent, no_cache;
};

std::vector<std::string> split(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, sep);)
    if (!part.empty()) out.push_back(part);
  return out;
}

bool selected(const std::string& list, const std::string& value) {
  if (list.empty() || list == "all") return true;
  for (const auto& v : split(list))
    if (v == value) return true;
  return false;
}

// The grid the options select, each with its test examples and sampled instances.
struct Selected {
  StudyDataset d;
  std::vector<SentimentExample> test;
  std::vector<int64_t> picked;
};

std::vector<Selected> select_grid(const Options& o) {
  std::map<std::string, std::vector<std::string>> fixed;
  if (!o.sample_ids.empty() && fs::exists(o.sample_ids)) fixed = data::read_sample_ids(o.sample_ids);
  std::vector<Selected> out;
  for (const StudyDataset& d : data::study_grid({.open_absc_n = o.open_absc_n, .open_e2e_n = o.open_e2e_n})) {
    if (!selected(o.settings, d.setting) || !selected(o.tasks, data::task_name(d.task)) ||
        !selected(o.datasets, d.name))
      continue;
    Selected s{d, data::read_sentiment_file(d.task, o.root + "/" + d.test_file), {}};
    if (auto it = fixed.find(d.key()); it != fixed.end()) {
      std::map<std::string, int64_t> by_id;
      for (size_t i = 0; i < s.test.size(); ++i) by_id[s.test[i].id] = static_cast<int64_t>(i);
      for (const auto& id : it->second) {
        NABLA_CHECK(by_id.count(id), o.sample_ids, ": ", d.key(), ": id ", id, " is not in ", d.test_file);
        s.picked.push_back(by_id[id]);
      }
    } else {
      s.picked = data::sample_dataset(d.sampling, s.test, o.root);
    }
    if (o.limit > 0 && static_cast<int64_t>(s.picked.size()) > o.limit) s.picked.resize(o.limit);
    out.push_back(std::move(s));
  }
  NABLA_CHECK(!out.empty(), "no dataset matches --settings '", o.settings, "' --tasks '", o.tasks,
              "' --datasets '", o.datasets, "'");
  return out;
}

// ---- items: what the metrics compare --------------------------------------------------------------------

std::vector<std::string> gold_items(SentimentTask t, const SentimentExample& e) {
  std::vector<std::string> v;
  switch (t) {
    case SentimentTask::sc:
    case SentimentTask::absc:
      v.push_back(e.label);
      break;
    case SentimentTask::e2e_absa:
      for (const auto& [a, p] : e.pairs) v.push_back(data::to_lower(a) + "\x1f" + data::to_lower(p));
      break;
    case SentimentTask::ece:
      for (int c : e.causes) v.push_back(std::to_string(c));
      break;
    case SentimentTask::ecpe:
      for (const auto& [a, b] : e.clause_pairs) v.push_back(str_cat(a, ",", b));
      break;
  }
  return v;
}

// Parses a model's answer into items; false when it cannot be read.
bool parse_answer(SentimentTask t, const SentimentExample& e, const std::string& answer, bool filter_absent,
                  std::vector<std::string>* items) {
  const int n = static_cast<int>(e.clauses.size());
  switch (t) {
    case SentimentTask::sc:
    case SentimentTask::absc: {
      std::vector<std::string> allowed = {"positive", "negative"};
      if (t == SentimentTask::absc) allowed.push_back("neutral");
      auto l = data::parse_label(answer, allowed);
      if (l) items->push_back(*l);
      return l.has_value();
    }
    case SentimentTask::e2e_absa: {
      auto p = data::parse_pairs(answer, e.text, filter_absent);
      if (p)
        for (const auto& [a, q] : *p) items->push_back(a + "\x1f" + q);
      return p.has_value();
    }
    case SentimentTask::ece: {
      auto c = data::parse_clause_ids(answer, n);
      if (c)
        for (int k : *c) items->push_back(std::to_string(k));
      return c.has_value();
    }
    case SentimentTask::ecpe: {
      auto c = data::parse_clause_pairs(answer, n);
      if (c)
        for (const auto& [a, b] : *c) items->push_back(str_cat(a, ",", b));
      return c.has_value();
    }
  }
  return false;
}

json record(const std::string& run, const std::string& backend, int shots, const Selected& s,
            const SentimentExample& e) {
  return {{"run", run},
          {"backend", backend},
          {"shots", shots},
          {"setting", s.d.setting},
          {"task", data::task_name(s.d.task)},
          {"dataset", s.d.name},
          {"id", e.id},
          {"text", e.text},
          {"aspect", e.aspect},
          {"gold", gold_items(s.d.task, e)}};
}

std::ofstream open_answers(const Options& o, const std::string& run) {
  fs::create_directories(fs::path(o.out) / "answers");
  const std::string path = (fs::path(o.out) / "answers" / (run + ".jsonl")).string();
  std::ofstream f(path, std::ios::trunc);
  NABLA_CHECK(f, "cannot write ", path);
  return f;
}

// ---- modes ----------------------------------------------------------------------------------------------

int run_sample(const Options& o) {
  std::map<std::string, std::vector<std::string>> ids;
  for (const Selected& s : select_grid(o)) {
    auto& v = ids[s.d.key()];
    for (int64_t i : s.picked) v.push_back(s.test[i].id);
    std::printf("%-40s %4zu of %5zu\n", s.d.key().c_str(), s.picked.size(), s.test.size());
  }
  fs::create_directories(o.out);
  const std::string path =
      o.sample_ids.empty() ? (fs::path(o.out) / "sample_ids.tsv").string() : o.sample_ids;
  data::write_sample_ids(path, ids);
  std::printf("wrote %s\n", path.c_str());
  return 0;
}

int run_query(const Options& o) {
  apps::LlmQueryOptions lo{.endpoint = o.endpoint,
                           .model = o.model,
                           .api_key_env = o.api_key_env,
                           .cache_file = o.no_cache ? "" : (fs::path(o.out) / "llm_cache.jsonl").string(),
                           .max_retries = static_cast<int>(o.max_retries),
                           .backoff_s = o.backoff_s,
                           .requests_per_minute = o.requests_per_minute,
                           .timeout_s = o.timeout_s,
                           .max_tokens = o.max_tokens};
  fs::create_directories(o.out);
  apps::LlmQuery llm(lo);
  const auto grid = select_grid(o);
  for (const std::string& shot_s : split(o.shots)) {
    const int shots = std::stoi(shot_s);
    const std::string run =
        (o.run_name.empty() ? o.model : o.run_name) + "_" + std::to_string(shots) + "shot";
    std::ofstream out = open_answers(o, run);
    int64_t asked = 0, unparsed = 0, errors = 0;
    for (const Selected& s : grid) {
      std::vector<SentimentExample> demos;
      const bool study_prompt =
          s.d.task == SentimentTask::e2e_absa && !data::study_few_shot_prompt(s.d.name, shots, "").empty();
      if (shots > 0 && !study_prompt) {
        NABLA_CHECK(!s.d.train_file.empty(), s.d.key(), ": few-shot needs a training split");
        demos = data::pick_demos(data::read_sentiment_file(s.d.task, o.root + "/" + s.d.train_file), shots,
                                 static_cast<uint32_t>(o.demo_seed));
      }
      for (int64_t i : s.picked) {
        const SentimentExample& e = s.test[i];
        json r = record(run, "llm:" + o.model, shots, s, e);
        const auto messages =
            data::build_messages(s.d.task, s.d.name, e, shots, demos, static_cast<int>(o.prompt_index));
        std::string answer;
        try {
          answer = llm.ask(messages).text;
        } catch (const apps::OpenAIError& err) {  // e.g. 400: the prompt is longer than the model's context
          r["error"] = err.what();
          ++errors;
        }
        std::vector<std::string> items;
        const bool ok = parse_answer(s.d.task, e, answer, o.filter_absent, &items);
        unparsed += !ok;
        r["answer"] = answer;
        r["parsed"] = ok;
        r["pred"] = items;
        out << r.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
        ++asked;
      }
      out.flush();
      std::printf("%-22s %-40s %4zu instances\n", run.c_str(), s.d.key().c_str(), s.picked.size());
      std::fflush(stdout);
    }
    std::printf(
        "%s: %lld instances, %lld unparseable answers, %lld errors; %lld requests, %lld cache hits, "
        "%lld retries\n",
        run.c_str(), static_cast<long long>(asked), static_cast<long long>(unparsed),
        static_cast<long long>(errors), static_cast<long long>(llm.requests()),
        static_cast<long long>(llm.cache_hits()), static_cast<long long>(llm.retries()));
  }
  return 0;
}

// Instruction data from the training splits (never the test files): the zero-shot prompt of each training
// example with its gold answer, and for E2E-ABSA on 14res/14lap also the study's few-shot instruction.
int run_sft_data(const Options& o) {
  fs::create_directories(o.out);
  const std::string path = (fs::path(o.out) / "sft.jsonl").string();
  std::ofstream f(path);
  NABLA_CHECK(f, "cannot write ", path);
  std::set<std::string> done;
  int64_t written = 0;
  std::map<std::string, int64_t> per_task;
  for (const StudyDataset& d : data::study_grid()) {
    if (d.train_file.empty() || !done.insert(d.train_file).second) continue;
    if (!selected(o.tasks, data::task_name(d.task))) continue;
    auto train = data::read_sentiment_file(d.task, o.root + "/" + d.train_file);
    data::PyRandom r(static_cast<uint32_t>(o.demo_seed));
    const int64_t n = std::min<int64_t>(o.sft_per_task, static_cast<int64_t>(train.size()));
    for (int64_t i : r.sample(static_cast<int64_t>(train.size()), n)) {
      const SentimentExample& e = train[i];
      const int prompt = static_cast<int>(i % data::num_zero_shot_prompts(d.task));
      std::string user = data::zero_shot_prompt(d.task, e, prompt);
      if (d.task == SentimentTask::e2e_absa && i % 4 == 0) {
        const std::string name = d.train_file.find("14lap") != std::string::npos ? "14lap" : "14res";
        user = data::study_few_shot_prompt(name, i % 8 == 0 ? 3 : 5, e.text);
      }
      json j = {{"messages",
                 {{{"role", "user"}, {"content", user}},
                  {{"role", "assistant"}, {"content", data::gold_answer(d.task, e)}}}}};
      f << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
      ++written, ++per_task[data::task_name(d.task)];
    }
  }
  for (const auto& [t, n] : per_task)
    std::printf("%-9s %6lld examples\n", t.c_str(), static_cast<long long>(n));
  std::printf("wrote %lld examples to %s\n", static_cast<long long>(written), path.c_str());
  return 0;
}

// BERT: label indices of train_bert's classification head.
const std::vector<std::string>& bert_labels(SentimentTask t) {
  static const std::vector<std::string> sc = {"negative", "positive"},
                                        absc = {"negative", "neutral", "positive"};
  return t == SentimentTask::sc ? sc : absc;
}

std::string clean(std::string s) {
  std::replace(s.begin(), s.end(), '\t', ' ');
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

// The second text of an ECE clause pair: the emotion word and the emotion clause.
std::string ece_context(const SentimentExample& e) {
  return e.emotion_word + " " + e.clauses[static_cast<size_t>(e.emotion_clause - 1)];
}

// Writes, under <out>/bert: absc_train_<src>.tsv / absc_dev_<src>.tsv (sentence1 = sentence, sentence2 =
// aspect, label 0/1/2) for each ABSC source domain, ECE clause pairs (clause, emotion word + emotion clause,
// label 1 for a cause), E2E-ABSA tagged sentences (tokens<TAB>tags: the unified BIO tags of
// data/sentiment_bert.h) for each source domain, ECPE candidate pairs (clause e, "<c - e> clause c", label 1
// for a gold pair; training: the gold pairs and --ecpe-negatives other candidates per document, dev: every
// candidate), one predict input per dataset (<key>.txt: sentences, sentence<TAB>aspect, one clause pair per
// clause or per candidate of each document) and manifest.json naming, per dataset, its input and training
// files.
int run_bert_export(const Options& o) {
  const fs::path dir = fs::path(o.out) / "bert";
  fs::create_directories(dir);
  json manifest = json::array();
  std::set<std::string> written;
  auto write_absc_tsv = [&](const std::string& rel) {
    std::string name = rel;
    std::replace(name.begin(), name.end(), '/', '_');
    const std::string path = (dir / name).string() + ".tsv";
    if (written.insert(path).second) {
      std::ofstream f(path);
      f << "sentence1\tsentence2\tlabel\n";
      for (const auto& e : data::read_absc(o.root + "/" + rel)) {
        const auto& l = bert_labels(SentimentTask::absc);
        f << clean(e.text) << '\t' << clean(e.aspect) << '\t'
          << (std::find(l.begin(), l.end(), e.label) - l.begin()) << '\n';
      }
    }
    return path;
  };
  // ECE as clause classification: (clause, emotion word + emotion clause) -> cause (1) or not (0).
  auto write_ece_tsv = [&](const std::string& rel) {
    std::string name = rel;
    std::replace(name.begin(), name.end(), '/', '_');
    const std::string path = (dir / name).string() + ".tsv";
    if (written.insert(path).second) {
      std::ofstream f(path);
      f << "sentence1\tsentence2\tlabel\n";
      for (const auto& e : data::read_ece(o.root + "/" + rel))
        for (size_t k = 0; k < e.clauses.size(); ++k)
          f << clean(e.clauses[k]) << '\t' << clean(ece_context(e)) << '\t'
            << (std::count(e.causes.begin(), e.causes.end(), static_cast<int>(k + 1)) ? 1 : 0) << '\n';
    }
    return path;
  };
  // E2E-ABSA as token tagging: the sentence's words and their unified tags.
  auto write_e2e_tsv = [&](const std::string& rel) {
    std::string name = rel;
    std::replace(name.begin(), name.end(), '/', '_');
    const std::string path = (dir / name).string() + ".tsv";
    if (written.insert(path).second) {
      std::ofstream f(path);
      f << "tokens\ttags\n";
      int64_t unmatched = 0, pairs = 0;
      for (const auto& e : data::read_e2e_absa(o.root + "/" + rel)) {
        const auto words = data::split_words(clean(e.text));
        int64_t missed = 0;
        const auto tags = data::e2e_tags(words, e.pairs, &missed);
        unmatched += missed, pairs += static_cast<int64_t>(e.pairs.size());
        for (size_t k = 0; k < words.size(); ++k) f << (k ? " " : "") << words[k];
        f << '\t';
        for (size_t k = 0; k < tags.size(); ++k) f << (k ? " " : "") << tags[k];
        f << '\n';
      }
      std::printf("%s: %lld of %lld aspects not found among the words (left untagged)\n", path.c_str(),
                  static_cast<long long>(unmatched), static_cast<long long>(pairs));
    }
    return path;
  };
  // ECPE as pair classification over the candidates within --ecpe-window.
  auto write_ecpe_tsv = [&](const std::string& rel, bool sample_negatives) {
    std::string name = rel;
    std::replace(name.begin(), name.end(), '/', '_');
    const std::string path = (dir / name).string() + ".tsv";
    if (written.insert(path).second) {
      std::ofstream f(path);
      f << "sentence1\tsentence2\tlabel\n";
      data::PyRandom rng(static_cast<uint32_t>(o.demo_seed));
      const int window = static_cast<int>(o.ecpe_window);
      for (const auto& e : data::read_ecpe(o.root + "/" + rel)) {
        std::vector<data::EcpeTrainingPair> pairs;
        if (sample_negatives) {
          pairs = data::ecpe_training_pairs(e, window, static_cast<int>(o.ecpe_negatives), rng);
        } else {
          for (const auto& [a, b] : data::ecpe_candidates(static_cast<int>(e.clauses.size()), window))
            pairs.push_back(
                {a, b,
                 std::count(e.clause_pairs.begin(), e.clause_pairs.end(), std::make_pair(a, b)) ? 1 : 0});
        }
        for (const auto& p : pairs) {
          const auto [ta, tb] = data::ecpe_pair_texts(e, p.e, p.c);
          f << clean(ta) << '\t' << clean(tb) << '\t' << p.label << '\n';
        }
      }
    }
    return path;
  };
  for (const Selected& s : select_grid(o)) {
    std::string key = s.d.key();
    std::replace(key.begin(), key.end(), '/', '_');
    const std::string input = (dir / (key + ".txt")).string();
    std::ofstream f(input);
    json ids = json::array();
    for (int64_t i : s.picked) {
      const SentimentExample& e = s.test[i];
      if (s.d.task == SentimentTask::ece) {  // one (clause, emotion context) pair per clause: "doc:position"
        for (size_t k = 0; k < e.clauses.size(); ++k) {
          f << clean(e.clauses[k]) << '\t' << clean(ece_context(e)) << '\n';
          ids.push_back(str_cat(e.id, ":", k + 1));
        }
        continue;
      }
      if (s.d.task == SentimentTask::ecpe) {  // one line per candidate pair: "doc:e,c"
        for (const auto& [a, b] :
             data::ecpe_candidates(static_cast<int>(e.clauses.size()), static_cast<int>(o.ecpe_window))) {
          const auto [ta, tb] = data::ecpe_pair_texts(e, a, b);
          f << clean(ta) << '\t' << clean(tb) << '\n';
          ids.push_back(str_cat(e.id, ":", a, ",", b));
        }
        continue;
      }
      f << clean(e.text);
      if (s.d.task == SentimentTask::absc) f << '\t' << clean(e.aspect);
      f << '\n';
      ids.push_back(e.id);
    }
    json m = {{"key", s.d.key()}, {"task", data::task_name(s.d.task)}, {"input", input}, {"ids", ids}};
    if (s.d.task == SentimentTask::ece) {
      m["train_tsv"] = write_ece_tsv(s.d.train_file);
      m["dev_tsv"] = write_ece_tsv(s.d.dev_file);
      m["model"] = "ece";
    } else if (s.d.task == SentimentTask::ecpe) {
      m["train_tsv"] = write_ecpe_tsv(s.d.train_file, true);
      m["dev_tsv"] = write_ecpe_tsv(s.d.dev_file, false);
      m["model"] = "ecpe";
    } else if (s.d.task == SentimentTask::e2e_absa) {
      m["train_tsv"] = write_e2e_tsv(s.d.train_file);
      m["dev_tsv"] = write_e2e_tsv(s.d.dev_file);
      m["model"] = "e2e_" + fs::path(m["train_tsv"].get<std::string>()).stem().string();
    } else if (s.d.task == SentimentTask::sc) {
      m["train_tsv"] = o.root + "/" + s.d.train_file;
      m["dev_tsv"] = o.root + "/" + s.d.dev_file;
      m["model"] = "sc";
    } else {
      m["train_tsv"] = write_absc_tsv(s.d.train_file);
      m["dev_tsv"] = write_absc_tsv(s.d.dev_file);
      m["model"] = "absc_" + fs::path(m["train_tsv"].get<std::string>()).stem().string();
    }
    manifest.push_back(m);
    std::printf("%-40s %4zu instances -> %s (model %s)\n", s.d.key().c_str(), s.picked.size(), input.c_str(),
                m["model"].get<std::string>().c_str());
  }
  std::ofstream(dir / "manifest.json") << manifest.dump(2) << '\n';
  std::printf("wrote %s\n", (dir / "manifest.json").c_str());
  return 0;
}

// Reads <input>.pred (train_bert --mode predict's output: label<TAB>probabilities...<TAB>input line, or
// with --head token tags<TAB>input line) for each manifest entry and writes answers/<run>.jsonl: E2E-ABSA
// tags become (aspect, polarity) pairs, ECE clause labels a document's causes, ECPE candidate
// probabilities its pairs (data::ecpe_decode, --ecpe-threshold).
int run_bert_import(const Options& o) {
  const fs::path dir = fs::path(o.out) / "bert";
  std::ifstream mf(dir / "manifest.json");
  NABLA_CHECK(mf, (dir / "manifest.json").string(), " is missing: run --mode bert-export first");
  const json manifest = json::parse(mf);
  const std::string run = o.run_name.empty() ? "bert" : o.run_name;
  std::ofstream out = open_answers(o, run);
  std::map<std::string, Selected> grid;
  for (Selected& s : select_grid(o)) grid.emplace(s.d.key(), std::move(s));
  int64_t n = 0, missing = 0;
  for (const json& m : manifest) {
    auto it = grid.find(m["key"].get<std::string>());
    if (it == grid.end()) continue;
    const Selected& s = it->second;
    const std::string pred_path = m["input"].get<std::string>() + ".pred";
    std::ifstream pf(pred_path);
    if (!pf) {
      std::printf("%-40s no predictions (%s)\n", s.d.key().c_str(), pred_path.c_str());
      ++missing;
      continue;
    }
    std::vector<std::string> lines;
    const bool tagged = s.d.task == SentimentTask::e2e_absa;
    for (std::string l; std::getline(pf, l);)  // prediction lines only (label<TAB>... or tags<TAB>...)
      if (!l.empty() && (tagged || std::isdigit(static_cast<unsigned char>(l[0]))) &&
          l.find('\t') != std::string::npos)
        lines.push_back(l);
    NABLA_CHECK(lines.size() == m["ids"].size(), pred_path, ": ", lines.size(), " predictions for ",
                m["ids"].size(), " instances");
    std::map<std::string, const SentimentExample*> by_id;
    for (const auto& e : s.test) by_id[e.id] = &e;
    if (s.d.task == SentimentTask::e2e_absa) {  // tags -> (aspect, polarity) pairs
      for (size_t k = 0; k < lines.size(); ++k) {
        const SentimentExample& e = *by_id.at(m["ids"][k].get<std::string>());
        const std::string tags = lines[k].substr(0, lines[k].find('\t'));
        const auto words = data::split_words(clean(e.text));
        const auto tag_list = data::split_words(tags);
        NABLA_CHECK(tag_list.size() == words.size(), pred_path, ":", k + 1, ": ", tag_list.size(),
                    " tags for the ", words.size(), " words of instance ", e.id);
        json r = record(run, "bert", 0, s, e);
        std::vector<std::string> items;
        for (const auto& [a, p] : data::e2e_pairs_from_tags(words, tag_list)) items.push_back(a + "\x1f" + p);
        r["answer"] = tags;
        r["parsed"] = true;
        r["pred"] = items;
        out << r.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
        ++n;
      }
      continue;
    }
    if (s.d.task == SentimentTask::ecpe) {  // candidate probabilities -> each document's pairs
      std::map<std::string, std::pair<std::vector<std::pair<int, int>>, std::vector<double>>> cand;
      std::vector<std::string> docs;
      for (size_t k = 0; k < lines.size(); ++k) {
        const std::string id = m["ids"][k].get<std::string>();
        const size_t colon = id.find(':'), comma = id.find(',');
        const std::string doc = id.substr(0, colon);
        if (!cand.count(doc)) docs.push_back(doc);
        std::vector<std::string> f = split(lines[k], '\t');
        NABLA_CHECK(f.size() >= 3, pred_path, ":", k + 1, ": expected label<TAB>p0<TAB>p1<TAB>text");
        cand[doc].first.emplace_back(std::stoi(id.substr(colon + 1, comma - colon - 1)),
                                     std::stoi(id.substr(comma + 1)));
        cand[doc].second.push_back(std::stod(f[2]));
      }
      for (const auto& doc : docs) {
        json r = record(run, "bert", 0, s, *by_id.at(doc));
        std::vector<std::string> items;
        for (const auto& [a, b] : data::ecpe_decode(cand[doc].first, cand[doc].second, o.ecpe_threshold))
          items.push_back(str_cat(a, ",", b));
        r["answer"] = items;
        r["parsed"] = true;
        r["pred"] = items;
        out << r.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
        ++n;
      }
      continue;
    }
    if (s.d.task == SentimentTask::ece) {  // clause predictions -> each document's cause clauses
      std::map<std::string, std::vector<std::string>> causes;
      std::vector<std::string> docs;
      for (size_t k = 0; k < lines.size(); ++k) {
        const std::string id = m["ids"][k].get<std::string>();
        const std::string doc = id.substr(0, id.find(':'));
        if (!causes.count(doc)) docs.push_back(doc), causes[doc] = {};
        if (lines[k][0] == '1') causes[doc].push_back(id.substr(id.find(':') + 1));
      }
      for (const auto& doc : docs) {
        json r = record(run, "bert", 0, s, *by_id.at(doc));
        r["answer"] = causes[doc];
        r["parsed"] = true;
        r["pred"] = causes[doc];
        out << r.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
        ++n;
      }
      continue;
    }
    const auto& labels = bert_labels(s.d.task);
    for (size_t k = 0; k < lines.size(); ++k) {
      const SentimentExample& e = *by_id.at(m["ids"][k].get<std::string>());
      json r = record(run, "bert", 0, s, e);
      const size_t tab = lines[k].find('\t');
      const int label = std::stoi(lines[k].substr(0, tab));
      NABLA_CHECK(label >= 0 && label < static_cast<int>(labels.size()), pred_path, ":", k + 1, ": label ",
                  label, ", expected 0..", labels.size() - 1);
      r["answer"] = labels[label];
      r["parsed"] = true;
      r["pred"] = {labels[label]};
      out << r.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
      ++n;
    }
  }
  std::printf("%s: %lld instances written, %lld datasets without predictions\n", run.c_str(),
              static_cast<long long>(n), static_cast<long long>(missing));
  return 0;
}

int run_report(const Options& o) {
  const fs::path dir = fs::path(o.out) / "answers";
  NABLA_CHECK(fs::is_directory(dir), dir.string(),
              " holds no answers: run --mode query or bert-import first");
  // (setting, task, dataset) -> run -> records
  struct Cell {
    std::vector<std::vector<std::string>> gold, pred;
    int64_t unparsed = 0;
  };
  std::map<std::tuple<std::string, std::string, std::string>, std::map<std::string, Cell>> table;
  std::vector<std::string> runs;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".jsonl") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& p : files) {
    std::ifstream f(p);
    int64_t line_no = 0;
    for (std::string line; std::getline(f, line);) {
      ++line_no;
      if (line.empty()) continue;
      json r;
      try {
        r = json::parse(line);
      } catch (const std::exception& e) {
        fail(p.string(), ":", line_no, ": not JSON: ", e.what());
      }
      const std::string run = r.at("run");
      if (std::find(runs.begin(), runs.end(), run) == runs.end()) runs.push_back(run);
      Cell& c = table[{r.at("setting"), r.at("task"), r.at("dataset")}][run];
      c.gold.push_back(r.at("gold").get<std::vector<std::string>>());
      c.pred.push_back(r.at("pred").get<std::vector<std::string>>());
      c.unparsed += !r.at("parsed").get<bool>();
    }
  }
  // Rows in the grid's order (setting, then task, then dataset as data::study_grid lists them).
  std::map<std::tuple<std::string, std::string, std::string>, size_t> rank;
  for (const StudyDataset& d : data::study_grid())
    rank.emplace(std::make_tuple(d.setting, std::string(data::task_name(d.task)), d.name), rank.size());
  std::vector<std::tuple<std::string, std::string, std::string>> keys;
  for (const auto& [k, v] : table) keys.push_back(k);
  std::stable_sort(keys.begin(), keys.end(), [&](const auto& a, const auto& b) {
    const size_t ra = rank.count(a) ? rank.at(a) : rank.size(), rb = rank.count(b) ? rank.at(b) : rank.size();
    return ra < rb;
  });
  json report = {{"runs", runs}, {"rows", json::array()}};
  std::printf("| setting | task | dataset | n | metric |");
  for (const auto& r : runs) std::printf(" %s |", r.c_str());
  std::printf("\n|---|---|---|---:|---|");
  for (size_t i = 0; i < runs.size(); ++i) std::printf("---:|");
  std::printf("\n");
  for (const auto& k : keys) {
    const auto& [setting, task, dataset] = k;
    const bool cls = task == "SC" || task == "ABSC";
    json row = {{"setting", setting},
                {"task", task},
                {"dataset", dataset},
                {"metric", cls ? "accuracy" : "micro-F1"},
                {"runs", json::object()}};
    const size_t n = table[k].begin()->second.gold.size();
    std::printf("| %s | %s | %s | %zu | %s |", setting.c_str(), task.c_str(), dataset.c_str(), n,
                cls ? "acc" : "F1");
    for (const auto& run : runs) {
      auto it = table[k].find(run);
      if (it == table[k].end()) {
        std::printf(" – |");
        continue;
      }
      const Cell& c = it->second;
      json cell = {{"n", c.gold.size()}, {"unparsed", c.unparsed}};
      double score;
      if (cls) {
        std::vector<std::string> g, p;
        for (size_t i = 0; i < c.gold.size(); ++i) {
          g.push_back(c.gold[i].empty() ? "" : c.gold[i][0]);
          p.push_back(c.pred[i].empty() ? "" : c.pred[i][0]);
        }
        const auto s = metrics::classification_scores(g, p);
        score = s.accuracy, cell["accuracy"] = s.accuracy, cell["macro_f1"] = s.macro_f1;
      } else {
        const auto s = metrics::micro_prf(c.gold, c.pred);
        score = s.f1, cell["precision"] = s.precision, cell["recall"] = s.recall, cell["f1"] = s.f1;
        cell["tp"] = s.tp, cell["predicted"] = s.predicted, cell["gold"] = s.gold;
      }
      std::printf(" %.1f", 100 * score);
      if (c.unparsed) std::printf(" (%lld?)", static_cast<long long>(c.unparsed));
      std::printf(" |");
      row["runs"][run] = cell;
    }
    std::printf("\n");
    report["rows"].push_back(row);
  }
  std::printf(
      "\nacc: accuracy (%%), F1: exact-match micro-F1 (%%); (k?) k answers could not be parsed (scored "
      "wrong); n: instances (of the first run; each run's n in %s)\n",
      (fs::path(o.out) / "report.json").c_str());
  std::ofstream(fs::path(o.out) / "report.json") << report.dump(2) << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  apps::OptionSet cli(
      "sentiment_study",
      "The sentiment study: an LLM endpoint and a fine-tuned BERT on five tasks in four settings.");
  cli.add("mode", &o.mode, "report", "sample | sft-data | query | bert-export | bert-import | report")
      .one_of({"sample", "sft-data", "query", "bert-export", "bert-import", "report"});
  cli.add("data", &o.root, data::default_sentiment_root(), "the study's data folder").value_name("DIR");
  cli.add("out", &o.out, "sentiment_study", "output folder (sample ids, answers, cache, report)")
      .value_name("DIR");
  cli.section("Grid");
  cli.add("settings", &o.settings, "all",
          "comma list of standard, polarity-shift, open-domain, sentiment-inference");
  cli.add("tasks", &o.tasks, "all", "comma list of SC, ABSC, E2E-ABSA, ECE, ECPE");
  cli.add("datasets", &o.datasets, "all", "comma list of dataset names (sst2, 14res, books, sst2-neg, ...)");
  cli.add("sample-ids", &o.sample_ids, "",
          "ids file: --mode sample writes it, other modes reuse it when it exists")
      .value_name("FILE");
  cli.add("limit", &o.limit, 0, "at most this many instances per dataset (0: the study's sample)")
      .non_negative();
  cli.add("open-absc-n", &o.open_absc_n, 50,
          "open-domain ABSC instances per domain (the study: 50; shipped 20, 30)")
      .positive();
  cli.add("open-e2e-n", &o.open_e2e_n, 30, "open-domain E2E-ABSA instances per domain").positive();
  cli.section("Language model (--mode query)");
  cli.add("endpoint", &o.endpoint, "http://127.0.0.1:8000/v1", "OpenAI-compatible base URL (http only)");
  cli.add("model", &o.model, "nabla-gpt",
          "model name sent with each request (gpt-3.5-turbo for the study's)");
  cli.add("api-key-env", &o.api_key_env, "OPENAI_API_KEY",
          "environment variable holding the API key (if set)");
  cli.add("shots", &o.shots, "0", "comma list of demonstration counts (0 zero-shot; 3, 5 few-shot)")
      .check([](const std::string& s) -> std::string {
        for (const auto& v : split(s))
          if (v.find_first_not_of("0123456789") != std::string::npos || v.size() > 2)
            return "'" + v + "' is not a count";
        return split(s).empty() ? "no count given" : "";
      });
  cli.add("prompt", &o.prompt_index, 0,
          "zero-shot prompt: 0 the study's default (italic), 1 and 2 the alternatives")
      .in_range(0, 2);
  cli.add("run-name", &o.run_name, "", "answers file name (default: the model name; _<k>shot is appended)");
  cli.add("max-tokens", &o.max_tokens, 96, "max_tokens of each answer").positive();
  cli.add("timeout", &o.timeout_s, 120, "seconds to wait for one answer").positive().unit("s");
  cli.add("max-retries", &o.max_retries, 5, "retries of a timeout, 429 or 5xx").in_range(0, 100);
  cli.add("backoff", &o.backoff_s, 2, "first retry's wait, doubled each retry").non_negative().unit("s");
  cli.add("requests-per-minute", &o.requests_per_minute, 0,
          "rate limit (0: none; the study slept 10 s a call)")
      .non_negative();
  cli.add("demo-seed", &o.demo_seed, 42,
          "seed of the demonstrations drawn from training data (and of sft-data)")
      .in_range(0, 4294967295LL);
  cli.add_switch("filter-absent", &o.filter_absent, "E2E-ABSA: drop predicted aspects not in the sentence");
  cli.add_switch("no-cache", &o.no_cache, "do not read or write <out>/llm_cache.jsonl");
  cli.add("sft-per-task", &o.sft_per_task, 3000, "sft-data: examples per training file").positive();
  cli.section("BERT back end (--mode bert-export, bert-import)");
  cli.add("ecpe-window", &o.ecpe_window, 2, "ECPE candidates: pairs (e, c) with |c - e| <= this")
      .in_range(0, 100);
  cli.add("ecpe-negatives", &o.ecpe_negatives, 8,
          "ECPE training: non-pairs drawn per document (with --demo-seed)")
      .in_range(0, 10000);
  cli.add("ecpe-threshold", &o.ecpe_threshold, 0.5,
          "ECPE: a candidate whose pair probability reaches this is predicted (and each document's best)")
      .in_range(0, 1);
  cli.example("--mode sample --out study", "write the study's sampled ids to study/sample_ids.tsv");
  cli.example("--mode query --out study --endpoint http://127.0.0.1:8000/v1 --model nabla-gpt --shots 0,3",
              "ask our served GPT, zero- and 3-shot; answers in study/answers/");
  cli.example(
      "--mode query --out study --settings standard --tasks SC --endpoint http://127.0.0.1:8080/v1 "
      "--model gpt-3.5-turbo --requests-per-minute 6",
      "ask ChatGPT through a local TLS proxy (key from $OPENAI_API_KEY)");
  cli.example("--mode report --out study",
              "the study's table, Markdown on stdout, JSON in study/report.json");
  if (auto code = cli.parse(argc, argv)) return *code;
  try {
    if (o.mode == "sample") return run_sample(o);
    if (o.mode == "sft-data") return run_sft_data(o);
    if (o.mode == "query") return run_query(o);
    if (o.mode == "bert-export") return run_bert_export(o);
    if (o.mode == "bert-import") return run_bert_import(o);
    return run_report(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sentiment_study: %s\n", e.what());
  }
  return 1;
}
