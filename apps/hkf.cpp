// hkf: HKF recommendation through a language model (Yin et al., RecSys '23) on MovieLens 100K, in stages
// that each read the previous stages' files from --out and write their own (docs/hkf.md):
//
//   text          split (leave-last-out by time, cold-start users) -> behaviour texts: text.jsonl
//   fuse          each text through an OpenAI-compatible endpoint (cached per user) -> fused.jsonl
//   instructions  knowledge (templated or fused) x the 20 task templates -> sft_<k>.jsonl (for train_gpt
//                 --mode sft) and test_<k>.jsonl (the held-out targets' prompts)
//   rank          a GPT (+ LoRA adapter) ranks the item and genre candidates by likelihood ->
//                 rank_<label>.json (HR/NDCG@5/10, overall and cold-start) and lm_genres_<label>.jsonl
//   features      DLRM with and without the LM's genre preferences -> features_<label>.json (AUC, HR/NDCG)
//   baselines     popularity, genre history, BPR-MF, BERT4Rec and Caser on the same split and candidates ->
//                 baselines.json (baselines_<models>.json for a --baseline-models subset)
//
//   ./build/hkf --stage text,instructions,baselines --out run/hkf
//   ./build/hkf --stage fuse --out run/hkf --endpoint http://127.0.0.1:8000/v1
//   ./build/hkf --stage rank --out run/hkf --knowledge templated --model-dir run/hf --adapter run/adapter
//   --label hkf
//
// Each stage skips work whose output exists (--force redoes it); fusion answers are cached per user, so a
// killed fuse stage resumes where it stopped. Every stage rebuilds the split from the data and --seed (cheap
// and deterministic), so no stage depends on state outside --out.
//
// Exit codes: 0 done; 1 a failure; 2 a bad command line.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "algorithms/hkf/behaviour_text.h"
#include "algorithms/hkf/features.h"
#include "algorithms/hkf/instructions.h"
#include "algorithms/hkf/lm_scorer.h"
#include "algorithms/metrics/auc.h"
#include "algorithms/optim/optimizer.h"
#include "algorithms/recsys/baselines.h"
#include "algorithms/recsys/bert4rec.h"
#include "algorithms/recsys/caser.h"
#include "algorithms/recsys/ranking.h"
#include "apps/common/knowledge_fusion.h"
#include "apps/common/options.h"
#include "apps/common/run.h"
#include "apps/common/train_step.h"
#include "data/chat.h"
#include "data/movielens.h"
#include "data/tokenizer/bpe.h"
#include "models/dlrm.h"
#include "models/gpt.h"
#include "models/nn/lora.h"
#include "nabla.h"

using namespace nabla;
namespace ml = nabla::data::movielens;
using json = nlohmann::json;

namespace {

struct Options {
  std::string stage, data_dir, out, knowledge, label;
  double cold_fraction;
  int64_t cold_keep, max_events, titles_per_group, train_cutoffs, extra_tasks, max_knowledge_chars;
  // fuse
  std::string endpoint, api_key, fusion_model;
  int64_t fusion_max_tokens;
  // rank
  std::string model_dir, adapter, encoder, vocab_bpe, protocols;
  int64_t negatives, max_users, score_batch;
  // features / baselines
  std::string lm_features, seeds, baseline_models;
  int64_t dlrm_epochs, dlrm_batch, dlrm_negatives, mf_dim, mf_epochs, bert4rec_epochs;
  int64_t caser_epochs, caser_l, caser_t;
  double dlrm_lr, mf_lr;
  bool force = false, allow_missing_lm_features = false;
  apps::RunOptions run;
};

std::vector<uint64_t> seed_list(const std::string& s) {
  std::vector<uint64_t> out;
  for (auto& x : apps::split_list(s)) out.push_back(std::stoull(x));
  return out;
}

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  NABLA_CHECK(in.good(), "hkf: cannot read ", path, " (run the stage that writes it first)");
  std::vector<json> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.push_back(json::parse(line));
    } catch (const std::exception& e) {
      fail("hkf: ", path, ":", n, ": expected a JSON object, got a parse error: ", e.what());
    }
  }
  return out;
}

// Writes through a temporary file and a rename: a killed stage leaves no half output.
void write_text(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    NABLA_CHECK(out.good(), "hkf: cannot write ", tmp);
  }
  std::filesystem::rename(tmp, path);
}

bool skip(const Options& o, const std::string& path) {
  if (o.force || !std::filesystem::exists(path)) return false;
  std::printf("%s exists: skipped (--force redoes it)\n", path.c_str());
  return true;
}

// The data and the split every stage shares.
struct Setup {
  ml::MovieLens data;
  ml::Split split;
  std::vector<int64_t> counts;
  std::unordered_map<int32_t, const ml::UserSplit*> by_user;
};

Setup load(const Options& o) {
  Setup s;
  s.data = ml::read_dataset(o.data_dir);
  s.split = ml::leave_last_out(s.data, 2);
  ml::make_cold_start(s.split, o.cold_fraction, o.cold_keep, o.run.seed);
  s.counts = ml::train_item_counts(s.split, s.data.num_items());
  for (auto& us : s.split.users) s.by_user[us.user] = &us;
  int64_t cold = 0;
  for (auto& us : s.split.users) cold += us.cold;
  std::printf(
      "movielens: %zu ratings, %d users, %d items | split: %zu users (%lld cold-start, keeping %lld events), "
      "%lld same-time events dropped, %lld users dropped\n",
      s.data.ratings.size(), s.data.num_users(), s.data.num_items(), s.split.users.size(),
      static_cast<long long>(cold), static_cast<long long>(o.cold_keep),
      static_cast<long long>(s.split.dropped_ties), static_cast<long long>(s.split.dropped_users));
  return s;
}

std::vector<int32_t> train_items(const ml::UserSplit& us) {
  std::vector<int32_t> v;
  for (auto& r : us.train) v.push_back(r.item);
  return v;
}

// The genres a ranking may return (all but "unknown"), and the held-out movie's genres among them.
std::vector<int64_t> genre_positives(const ml::Movie& m) {
  std::vector<int64_t> p;
  for (int g : m.genres)
    if (g != 0) p.push_back(g - 1);  // index into genres 1..18
  return p;
}

// ---- stage text ----------------------------------------------------------------------------------------
// Training targets: each user's last --train-cutoffs training events (history: the events before each);
// test target: the held-out event (history: all training events).
void stage_text(const Options& o, const Setup& s) {
  const std::string path = o.out + "/text.jsonl";
  if (skip(o, path)) return;
  hkf::TextOptions to{.max_events = o.max_events, .titles_per_group = o.titles_per_group};
  std::ostringstream out;
  int64_t n = 0;
  for (const auto& us : s.split.users) {
    const auto t = static_cast<int64_t>(us.train.size());
    for (int64_t c = std::max<int64_t>(1, t - o.train_cutoffs); c <= t; ++c) {
      const bool test = c == t;
      const ml::Rating target = test ? us.test : us.train[c];
      std::span<const ml::Rating> hist(us.train.data(), static_cast<size_t>(c));
      const std::string key =
          "u" + std::to_string(us.user) + "_" + (test ? std::string("test") : "c" + std::to_string(c));
      out << json{{"key", key},
                  {"user", us.user},
                  {"role", test ? "test" : "train"},
                  {"cold", us.cold},
                  {"history", c},
                  {"target_item", target.item},
                  {"target_rating", target.rating},
                  {"target_time", target.time},
                  {"text", hkf::behaviour_text(s.data, us.user, hist, to)}}
                 .dump()
          << "\n";
      ++n;
    }
  }
  write_text(path, out.str());
  std::printf("text: %lld behaviour texts -> %s\n", static_cast<long long>(n), path.c_str());
}

// ---- stage fuse ----------------------------------------------------------------------------------------
void stage_fuse(const Options& o) {
  const std::string path = o.out + "/fused.jsonl";
  if (skip(o, path)) return;
  apps::KnowledgeFusion fusion({.base_url = o.endpoint,
                                .api_key = o.api_key,
                                .model = o.fusion_model,
                                .cache_dir = o.out + "/fusion_cache",
                                .max_tokens = o.fusion_max_tokens});
  std::ostringstream out;
  auto rows = read_jsonl(o.out + "/text.jsonl");
  for (size_t i = 0; i < rows.size(); ++i) {
    json r = rows[i];
    r["knowledge"] = fusion.fuse(r.at("key").get<std::string>(), r.at("text").get<std::string>());
    out << r.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    if ((i + 1) % 200 == 0)
      std::printf("fuse: %zu/%zu (%lld cached, %lld requests)\n", i + 1, rows.size(),
                  static_cast<long long>(fusion.cache_hits()), static_cast<long long>(fusion.requests()));
  }
  write_text(path, out.str());
  std::printf("fuse: %zu texts (%lld from the cache, %lld requests to %s) -> %s\n", rows.size(),
              static_cast<long long>(fusion.cache_hits()), static_cast<long long>(fusion.requests()),
              o.endpoint.c_str(), path.c_str());
}

// The knowledge text of a row: the templated text (no-HKF) or the fused answer (HKF), cut to
// --max-knowledge-chars bytes (on a UTF-8 boundary).
std::string knowledge_of(const Options& o, const json& r) {
  std::string k =
      o.knowledge == "fused" ? r.at("knowledge").get<std::string>() : r.at("text").get<std::string>();
  if (static_cast<int64_t>(k.size()) > o.max_knowledge_chars) {
    size_t cut = static_cast<size_t>(o.max_knowledge_chars);
    while (cut > 0 && (static_cast<unsigned char>(k[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 char
    k = k.substr(0, cut) + " ...";
  }
  return k;
}

// ---- stage instructions --------------------------------------------------------------------------------
void stage_instructions(const Options& o, const Setup& s) {
  const std::string sft = o.out + "/sft_" + o.knowledge + ".jsonl",
                    test = o.out + "/test_" + o.knowledge + ".jsonl";
  if (skip(o, sft) && skip(o, test)) return;
  auto rows = read_jsonl(o.out + (o.knowledge == "fused" ? "/fused.jsonl" : "/text.jsonl"));
  const auto& all = hkf::tasks();
  std::ostringstream so, to;
  std::map<std::string, int64_t> per_task;
  for (const json& r : rows) {
    const auto user = r.at("user").get<int32_t>();
    auto it = s.by_user.find(user);
    NABLA_CHECK(it != s.by_user.end(), "hkf: user ", user,
                " of the text file is not in the split (was it made "
                "with another --seed or --cold-* ?)");
    const ml::UserSplit& us = *it->second;
    const auto c = r.at("history").get<int64_t>();
    const bool is_test = r.at("role") == "test";
    const ml::Rating target = is_test ? us.test : us.train.at(c);
    NABLA_CHECK(target.item == r.at("target_item").get<int32_t>(), "hkf: ", r.at("key"), ": target item ",
                r.at("target_item"), " differs from the split's ", target.item,
                " (another --seed or --cold-*?)");
    const std::string k = knowledge_of(o, r);
    if (is_test) {
      to << json{{"user", user}, {"cold", us.cold}, {"item", target.item}, {"knowledge", k}}.dump(
                -1, ' ', false, json::error_handler_t::replace)
         << "\n";
      continue;
    }
    hkf::TaskInput in{.ml = &s.data,
                      .history = std::span<const ml::Rating>(us.train.data(), static_cast<size_t>(c)),
                      .target = target,
                      .item_counts = s.counts,
                      .seed = o.run.seed};
    // The two ranked tasks always, plus --extra-tasks of the other 18 drawn per (user, cut-off).
    std::vector<size_t> chosen{0, 1};
    std::vector<size_t> rest;
    for (size_t t = 2; t < all.size(); ++t) rest.push_back(t);
    for (int64_t e = 0; e < std::min<int64_t>(o.extra_tasks, static_cast<int64_t>(rest.size())); ++e) {
      const size_t j =
          static_cast<size_t>(e) +
          philox_bits64(o.run.seed, (static_cast<uint64_t>(user) << 24) + static_cast<uint64_t>(c), e) %
              (rest.size() - static_cast<size_t>(e));
      std::swap(rest[e], rest[j]);
      chosen.push_back(rest[e]);
    }
    for (size_t t : chosen) {
      so << hkf::chat_example(k, all[t].instruction(in), all[t].output(in))
                .dump(-1, ' ', false, json::error_handler_t::replace)
         << "\n";
      ++per_task[all[t].name];
    }
  }
  write_text(sft, so.str());
  write_text(test, to.str());
  int64_t total = 0;
  for (auto& [name, n] : per_task) total += n;
  std::printf(
      "instructions (%s knowledge): %lld training examples over %zu tasks -> %s; test prompts -> %s\n",
      o.knowledge.c_str(), static_cast<long long>(total), per_task.size(), sft.c_str(), test.c_str());
}

// ---- stage rank ----------------------------------------------------------------------------------------
struct Scored {
  recsys::RankingMetrics all, cold;
  void add(int64_t rank, bool is_cold) {
    all.add(rank);
    if (is_cold) cold.add(rank);
  }
  json to_json() const {
    auto j = [](const recsys::RankingMetrics& m0) {
      const auto m = m0.mean();
      return json{
          {"hr5", m.hr5}, {"ndcg5", m.ndcg5}, {"hr10", m.hr10}, {"ndcg10", m.ndcg10}, {"users", m.count}};
    };
    return {{"all", j(all)}, {"cold", j(cold)}};
  }
};

void stage_rank(const Options& o, const Setup& s) {
  const std::string path = o.out + "/rank_" + o.label + ".json";
  if (skip(o, path)) return;
  NABLA_CHECK(!o.model_dir.empty(), "--stage rank needs --model-dir (a transformers GPT folder)");
  auto model = models::GPT::from_pretrained(o.model_dir);
  if (!o.adapter.empty()) nn::load_lora(*model, o.adapter);
  int64_t gb = 1;
  apps::RunOptions ro = o.run;
  apps::Run r = apps::Run::start(ro, gb);
  model->to(r.device());
  data::ChatTokens ct;
  data::Gpt2Tokenizer tok = data::Gpt2Tokenizer::from_files(o.encoder, o.vocab_bpe);
  ct = data::add_chat_tokens(tok);
  NABLA_CHECK(tok.vocab_size() <= model->config().vocab_size, o.model_dir, " has ",
              model->config().vocab_size, " embedding rows, fewer than the tokenizer's ", tok.vocab_size(),
              " (with the chat markers)");
  auto encode = [&](const std::string& text) {
    std::vector<int64_t> v;
    for (int32_t id : tok.encode(text, false)) v.push_back(id);
    return v;
  };
  // Candidate token lists: titles and genre names, each followed by <|end|>.
  std::vector<std::vector<int64_t>> item_tokens(s.data.num_items() + 1), genre_tokens;
  for (int32_t i = 1; i <= s.data.num_items(); ++i) {
    item_tokens[i] = encode(hkf::title_utf8(s.data.movies[i].title));
    item_tokens[i].push_back(ct.end);
  }
  for (int g = 1; g < ml::kNumGenres; ++g) {
    genre_tokens.push_back(encode(s.data.genre_names[g]));
    genre_tokens.back().push_back(ct.end);
  }
  size_t longest = 0;
  for (auto& v : item_tokens) longest = std::max(longest, v.size());
  const auto& next_movie = hkf::task("next_movie");
  const auto& next_genre = hkf::task("next_genre");
  auto prompt_ids = [&](const std::string& knowledge, const std::string& instruction) {
    std::string k = knowledge;
    while (true) {  // drop knowledge from its start until prompt + longest candidate fit the context
      auto ids = encode(data::format_chat({{"user", hkf::user_message(k, instruction)}}, true));
      if (static_cast<int64_t>(ids.size() + longest) <= model->config().n_positions + 1 || k.empty())
        return ids;
      k = k.substr(std::min(k.size(), std::max<size_t>(16, k.size() / 10)));
    }
  };
  const auto rows = read_jsonl(o.out + "/test_" + o.knowledge + ".jsonl");
  std::map<std::string, Scored> results;
  std::ostringstream genres_out;
  const auto protocols = apps::split_list(o.protocols);
  int64_t done = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const json& row : rows) {
    if (o.max_users > 0 && done >= o.max_users) break;
    const auto user = row.at("user").get<int32_t>();
    const ml::UserSplit& us = *s.by_user.at(user);
    const std::string k = row.at("knowledge").get<std::string>();
    hkf::TaskInput in{
        .ml = &s.data, .history = us.train, .target = us.test, .item_counts = s.counts, .seed = o.run.seed};
    // item task
    const auto ip = prompt_ids(k, next_movie.instruction(in));
    const auto excluded = train_items(us);
    for (const auto& proto : protocols) {
      const auto cands = proto == "full"
                             ? recsys::full_candidates(us.test.item, excluded, s.data.num_items())
                             : recsys::sample_candidates(us.test.item, excluded, s.data.num_items(),
                                                         o.negatives, o.run.seed, user);
      std::vector<std::vector<int64_t>> ct_ids;
      for (int32_t c : cands) ct_ids.push_back(item_tokens[c]);
      const auto sc = hkf::score_candidates(*model, ip, ct_ids, o.score_batch);
      const int64_t pos0 = 0;
      results["item_" + proto].add(recsys::rank_of_positive(sc, std::span<const int64_t>(&pos0, 1)), us.cold);
    }
    // genre task (all 18 genres)
    const auto gp = prompt_ids(k, next_genre.instruction(in));
    const auto gs = hkf::score_candidates(*model, gp, genre_tokens, o.score_batch);
    const auto positives = genre_positives(s.data.movies[us.test.item]);
    if (!positives.empty()) results["genre"].add(recsys::rank_of_positive(gs, positives), us.cold);
    // the LM's genre preferences: softmax over the genre answers' log-likelihoods ("unknown" gets 0)
    std::vector<double> p(ml::kNumGenres, 0.0);
    const double mx = *std::max_element(gs.begin(), gs.end());
    double z = 0;
    for (size_t g = 0; g < gs.size(); ++g) z += p[g + 1] = std::exp(gs[g] - mx);
    for (auto& v : p) v /= z;
    genres_out << json{{"user", user}, {"genre_probs", p}}.dump() << "\n";
    if (++done % 50 == 0)
      std::printf("rank: %lld/%zu users, %.0f s\n", static_cast<long long>(done), rows.size(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    std::fflush(stdout);
  }
  json j = {{"label", o.label},     {"knowledge", o.knowledge}, {"model_dir", o.model_dir},
            {"adapter", o.adapter}, {"negatives", o.negatives}, {"seed", o.run.seed}};
  for (auto& [name, sc] : results) {
    j[name] = sc.to_json();
    std::printf("rank %s | %-11s | all: %s | cold: %s\n", o.label.c_str(), name.c_str(),
                sc.all.mean().str().c_str(), sc.cold.mean().str().c_str());
  }
  write_text(o.out + "/lm_genres_" + o.label + ".jsonl", genres_out.str());
  write_text(path, j.dump(2) + "\n");
}

// ---- DLRM with and without LM features -----------------------------------------------------------------
struct CtrResult {
  double auc = 0, auc_cold = 0;
  Scored ranking;
};

// Trains a small DLRM on `train` and scores `test` (rows grouped per user: 1 positive then the negatives).
CtrResult train_dlrm(const Options& o, const hkf::CtrTable& train, const hkf::CtrTable& test,
                     const std::vector<bool>& test_cold, int64_t per_user, uint64_t seed, Device dev) {
  manual_seed(seed);
  models::DlrmConfig c;
  c.num_dense = train.num_dense;
  c.table_sizes = train.table_sizes;
  c.embedding_dim = 16;
  c.bottom_mlp = {64, 16};
  c.top_mlp = {64, 1};
  auto model = std::make_shared<models::Dlrm>(c);
  model->to(dev);
  std::vector<Tensor> params;
  for (auto& [n, t] : model->named_parameters()) params.push_back(t);
  optim::Adam opt(params, {.lr = o.dlrm_lr});
  dist::Session single;
  apps::ForwardFn forward = [](nn::Module& m, const Tensor& x, const Tensor& y) {
    return apps::ForwardOutput{binary_cross_entropy_with_logits(m.forward(x), y), Tensor()};
  };
  apps::TrainStep step(*model, opt, single, forward, {});
  auto pack = [](const hkf::CtrTable& t, const std::vector<int64_t>& idx) {
    const auto b = static_cast<int64_t>(idx.size());
    std::vector<double> x;
    std::vector<double> y;
    x.reserve(static_cast<size_t>(b * (t.num_dense + t.num_sparse)));
    for (int64_t i : idx) {
      for (int64_t d = 0; d < t.num_dense; ++d) x.push_back(t.dense[i * t.num_dense + d]);
      for (int64_t s = 0; s < t.num_sparse; ++s)
        x.push_back(static_cast<double>(t.sparse[i * t.num_sparse + s]));
      y.push_back(t.labels[i]);
    }
    return std::pair{from_vector(x, {b, t.num_dense + t.num_sparse}, {.dtype = DType::f64}),
                     from_vector(y, {b})};
  };
  std::vector<int64_t> order(train.rows);
  for (int64_t e = 0; e < o.dlrm_epochs; ++e) {
    std::iota(order.begin(), order.end(), 0);
    for (int64_t i = train.rows; i > 1; --i)
      std::swap(order[i - 1], order[philox_bits64(seed, static_cast<uint64_t>(e) << 32, i) % i]);
    for (int64_t s0 = 0; s0 < train.rows; s0 += o.dlrm_batch) {
      std::vector<int64_t> idx(order.begin() + s0, order.begin() + std::min(train.rows, s0 + o.dlrm_batch));
      auto [x, y] = pack(train, idx);
      step.run(x.to(dev), y.to(dev), o.dlrm_lr);
    }
  }
  NoGradGuard ng;
  model->eval();
  std::vector<double> scores;
  for (int64_t s0 = 0; s0 < test.rows; s0 += 4096) {
    std::vector<int64_t> idx(static_cast<size_t>(std::min<int64_t>(4096, test.rows - s0)));
    std::iota(idx.begin(), idx.end(), s0);
    auto [x, y] = pack(test, idx);
    Tensor logits = model->forward(x.to(dev)).to(DType::f64).to(Device::cpu()).contiguous();
    const double* d = logits.data<double>();
    scores.insert(scores.end(), d, d + logits.numel());
  }
  CtrResult r;
  std::vector<double> labels(test.labels.begin(), test.labels.end()), cs, cl;
  r.auc = metrics::roc_auc(std::span<const double>(scores), std::span<const double>(labels));
  const int64_t pos0 = 0;
  for (int64_t u = 0; u * per_user < test.rows; ++u) {
    std::span<const double> sc(scores.data() + u * per_user, static_cast<size_t>(per_user));
    r.ranking.add(recsys::rank_of_positive(sc, std::span<const int64_t>(&pos0, 1)), test_cold[u]);
    if (test_cold[u]) {
      cs.insert(cs.end(), sc.begin(), sc.end());
      cl.insert(cl.end(), labels.begin() + u * per_user, labels.begin() + (u + 1) * per_user);
    }
  }
  r.auc_cold =
      cs.empty() ? std::nan("") : metrics::roc_auc(std::span<const double>(cs), std::span<const double>(cl));
  return r;
}

void stage_features(const Options& o, const Setup& s) {
  const std::string label = o.lm_features.empty() ? std::string("base") : o.label;
  const std::string path = o.out + "/features_" + label + ".json";
  if (skip(o, path)) return;
  int64_t gb = 1;
  apps::RunOptions ro = o.run;
  apps::Run run = apps::Run::start(ro, gb);
  const auto train_rows = hkf::ctr_train_rows(s.split, s.data.num_items(), o.dlrm_negatives, o.run.seed);
  std::vector<hkf::CtrRow> test_rows;
  std::vector<bool> cold;
  for (const auto& us : s.split.users) {
    const auto cands = recsys::sample_candidates(us.test.item, train_items(us), s.data.num_items(),
                                                 o.negatives, o.run.seed, us.user);
    for (size_t i = 0; i < cands.size(); ++i) test_rows.push_back({us.user, cands[i], i == 0 ? 1.0f : 0.0f});
    cold.push_back(us.cold);
  }
  hkf::CtrTable train = hkf::base_features(s.data, s.split, train_rows);
  hkf::CtrTable test = hkf::base_features(s.data, s.split, test_rows);
  // Without --lm-features: the DLRM without LM features ("without", features_base.json); with them:
  // "with_lm" only (the "without" rows are the same for every LM).
  std::string variant = "without";
  if (!o.lm_features.empty()) {
    variant = "with_lm";
    std::unordered_map<int32_t, std::vector<float>> prefs;
    for (const json& r : read_jsonl(o.lm_features)) {
      auto p = r.at("genre_probs").get<std::vector<double>>();
      prefs[r.at("user").get<int32_t>()] = std::vector<float>(p.begin(), p.end());
    }
    int64_t missing = 0;
    for (const auto& us : s.split.users)
      if (!prefs.count(us.user)) {
        NABLA_CHECK(o.allow_missing_lm_features, "hkf: ", o.lm_features,
                    " has no genre preferences for user ", us.user,
                    " (ranked with --max-users?); --allow-missing-lm-features gives such users uniform ones");
        prefs[us.user] = std::vector<float>(ml::kNumGenres, 1.0f / static_cast<float>(ml::kNumGenres - 1));
        prefs[us.user][0] = 0.0f;
        ++missing;
      }
    if (missing)
      std::printf("features: %lld users without LM preferences got uniform ones\n",
                  static_cast<long long>(missing));
    hkf::join_user_features(train, train_rows, prefs, ml::kNumGenres);
    hkf::join_genre_match(train, train_rows, s.data, prefs);
    hkf::join_user_features(test, test_rows, prefs, ml::kNumGenres);
    hkf::join_genre_match(test, test_rows, s.data, prefs);
  }
  json j = {{"label", label},           {"lm_features", o.lm_features},
            {"train_rows", train.rows}, {"test_rows", test.rows},
            {"epochs", o.dlrm_epochs},  {"negatives_per_positive", o.dlrm_negatives}};
  for (uint64_t seed : seed_list(o.seeds)) {
    CtrResult r = train_dlrm(o, train, test, cold, o.negatives + 1, seed, run.device());
    std::printf("dlrm %-7s seed %llu | %lld dense | AUC %.4f (cold %.4f) | all: %s | cold: %s\n",
                variant.c_str(), static_cast<unsigned long long>(seed),
                static_cast<long long>(train.num_dense), r.auc, r.auc_cold,
                r.ranking.all.mean().str().c_str(), r.ranking.cold.mean().str().c_str());
    std::fflush(stdout);
    j[variant].push_back(
        {{"seed", seed}, {"auc", r.auc}, {"auc_cold", r.auc_cold}, {"ranking", r.ranking.to_json()}});
  }
  write_text(path, j.dump(2) + "\n");
}

// ---- baselines -----------------------------------------------------------------------------------------
constexpr const char* kBaselineModels = "popularity,genre_history,bpr_mf,bert4rec,caser";

void stage_baselines(const Options& o, const Setup& s) {
  const auto models = apps::split_list(o.baseline_models);
  auto want = [&](const char* m) { return std::find(models.begin(), models.end(), m) != models.end(); };
  std::string suffix;
  for (auto& m : models) suffix += (suffix.empty() ? "_" : "-") + m;
  if (o.baseline_models == kBaselineModels) suffix.clear();
  if (!suffix.empty() && o.seeds != "0,1,2") {  // a subset on other seeds: its own file (parallel runs)
    suffix += "_s";
    for (auto& x : apps::split_list(o.seeds)) suffix += x + "-";
    suffix.pop_back();
  }
  const std::string path = o.out + "/baselines" + suffix + ".json";
  if (skip(o, path)) return;
  std::vector<std::vector<int>> item_genres(s.data.num_items() + 1);
  for (int32_t i = 1; i <= s.data.num_items(); ++i) item_genres[i] = s.data.movies[i].genres;
  std::vector<int32_t> all_items(s.data.num_items());
  std::iota(all_items.begin(), all_items.end(), 1);
  const auto protocols = apps::split_list(o.protocols);
  // score(user, items) -> scores; one evaluation of the item task per protocol and of the genre task.
  auto evaluate = [&](const std::function<std::vector<double>(int32_t, std::span<const int32_t>)>& score,
                      const std::function<std::vector<double>(const ml::UserSplit&)>& genre_score) {
    std::map<std::string, Scored> res;
    const int64_t pos0 = 0;
    for (const auto& us : s.split.users) {
      const auto ex = train_items(us);
      for (const auto& proto : protocols) {
        const auto c = proto == "full" ? recsys::full_candidates(us.test.item, ex, s.data.num_items())
                                       : recsys::sample_candidates(us.test.item, ex, s.data.num_items(),
                                                                   o.negatives, o.run.seed, us.user);
        res["item_" + proto].add(
            recsys::rank_of_positive(score(us.user, c), std::span<const int64_t>(&pos0, 1)), us.cold);
      }
      const auto pos = genre_positives(s.data.movies[us.test.item]);
      if (!pos.empty()) {
        auto g = genre_score(us);
        g.erase(g.begin());  // "unknown"
        res["genre"].add(recsys::rank_of_positive(g, pos), us.cold);
      }
    }
    json j;
    for (auto& [name, sc] : res) j[name] = sc.to_json();
    return std::pair{j, res};
  };
  json out = {{"negatives", o.negatives}, {"split_seed", o.run.seed}};
  auto report = [&](const std::string& name, const std::map<std::string, Scored>& res) {
    for (auto& [task, sc] : res)
      std::printf("%-16s | %-11s | all: %s | cold: %s\n", name.c_str(), task.c_str(),
                  sc.all.mean().str().c_str(), sc.cold.mean().str().c_str());
    std::fflush(stdout);
  };
  // popularity (items) / popularity of genres over the training events
  std::vector<double> genre_pop(ml::kNumGenres, 0.0);
  for (const auto& us : s.split.users)
    for (const auto& r : us.train)
      for (int g : s.data.movies[r.item].genres) genre_pop[g] += 1;
  if (want("popularity")) {
    auto [pj, pr] = evaluate(
        [&](int32_t, std::span<const int32_t> items) { return recsys::popularity_scores(s.counts, items); },
        [&](const ml::UserSplit&) { return genre_pop; });
    out["popularity"] = pj;
    report("popularity", pr);
  }
  // the user's own genre shares (a personal genre baseline; items: popularity within the user's genres)
  auto share = [&](const ml::UserSplit& us) {
    std::vector<double> g(ml::kNumGenres, 0.0);
    for (const auto& r : us.train)
      for (int x : s.data.movies[r.item].genres) g[x] += 1;
    for (int x = 0; x < ml::kNumGenres; ++x)
      g[x] += 1e-3 * genre_pop[x] / static_cast<double>(s.data.ratings.size());
    return g;
  };
  if (want("genre_history")) {
    auto [hj, hr] = evaluate(
        [&](int32_t user, std::span<const int32_t> items) {
          const auto g = share(*s.by_user.at(user));
          std::vector<double> v;
          for (int32_t i : items) {
            double m = 0;
            for (int x : s.data.movies[i].genres) m = std::max(m, g[x]);
            v.push_back(m * 1e6 + static_cast<double>(s.counts[i]));
          }
          return v;
        },
        share);
    out["genre_history"] = hj;
    report("genre-history", hr);
  }
  // BPR-MF, one run per seed
  std::vector<recsys::Interaction> pairs;
  for (const auto& us : s.split.users)
    for (const auto& r : us.train) pairs.push_back({us.user, r.item});
  for (uint64_t seed : want("bpr_mf") ? seed_list(o.seeds) : std::vector<uint64_t>{}) {
    recsys::BprMf mf(s.data.num_users(), s.data.num_items(),
                     {.dim = o.mf_dim, .epochs = o.mf_epochs, .lr = o.mf_lr, .seed = seed});
    const auto losses = mf.fit(pairs);
    auto [mj, mr] =
        evaluate([&](int32_t user, std::span<const int32_t> items) { return mf.scores(user, items); },
                 [&](const ml::UserSplit& us) {
                   auto sc = mf.scores(us.user, all_items);
                   sc.insert(sc.begin(), 0.0);  // index 0: no item
                   return recsys::genre_scores_from_items(sc, item_genres, ml::kNumGenres);
                 });
    mj["seed"] = seed;
    mj["final_loss"] = losses.empty() ? 0.0 : losses.back();
    out["bpr_mf"].push_back(mj);
    report("bpr-mf seed " + std::to_string(seed), mr);
  }
  std::vector<std::vector<int32_t>> seqs(s.data.num_users() + 1);
  for (const auto& us : s.split.users) seqs[us.user] = train_items(us);
  // BERT4Rec on our BERT encoder, one run per seed
  if (want("bert4rec") && o.bert4rec_epochs > 0) {
    for (uint64_t seed : seed_list(o.seeds)) {
      recsys::Bert4Rec b4r(s.data.num_items(), {.epochs = o.bert4rec_epochs, .seed = seed});
      const auto losses = b4r.fit(seqs);
      auto [bj, br] = evaluate(
          [&](int32_t user, std::span<const int32_t> items) { return b4r.scores(seqs[user], items); },
          [&](const ml::UserSplit& us) {
            auto sc = b4r.scores(seqs[us.user], all_items);
            sc.insert(sc.begin(), 0.0);
            return recsys::genre_scores_from_items(sc, item_genres, ml::kNumGenres);
          });
      bj["seed"] = seed;
      bj["final_loss"] = losses.empty() ? 0.0 : losses.back();
      out["bert4rec"].push_back(bj);
      report("bert4rec seed " + std::to_string(seed), br);
    }
  }
  // Caser (the authors' defaults but T, L, epochs from the options), one run per seed, on --device
  if (want("caser")) {
    int64_t gb = 1;
    apps::RunOptions ro = o.run;
    apps::Run run = apps::Run::start(ro, gb);
    for (uint64_t seed : seed_list(o.seeds)) {
      const auto t0 = std::chrono::steady_clock::now();
      recsys::Caser caser(
          s.data.num_users(), s.data.num_items(),
          {.L = o.caser_l, .T = o.caser_t, .epochs = o.caser_epochs, .seed = seed, .device = run.device()});
      const auto losses = caser.fit(seqs);
      const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      auto [cj, cr] = evaluate(
          [&](int32_t user, std::span<const int32_t> items) { return caser.scores(user, seqs[user], items); },
          [&](const ml::UserSplit& us) {
            auto sc = caser.scores(us.user, seqs[us.user], all_items);
            sc.insert(sc.begin(), 0.0);
            return recsys::genre_scores_from_items(sc, item_genres, ml::kNumGenres);
          });
      cj["seed"] = seed;
      cj["final_loss"] = losses.empty() ? 0.0 : losses.back();
      cj["train_seconds"] = train_s;
      cj["options"] = {
          {"L", o.caser_l}, {"T", o.caser_t}, {"epochs", o.caser_epochs}, {"device", o.run.device}};
      out["caser"].push_back(cj);
      report("caser seed " + std::to_string(seed), cr);
      std::printf("caser seed %llu: %lld epochs in %.1f s, final loss %.4f\n",
                  static_cast<unsigned long long>(seed), static_cast<long long>(o.caser_epochs), train_s,
                  losses.empty() ? 0.0 : losses.back());
    }
  }
  write_text(path, out.dump(2) + "\n");
}

std::optional<int> parse(int argc, char** argv, Options& o) {
  apps::OptionSet cli("hkf",
                      "HKF recommendation through a language model on MovieLens 100K, in resumable stages.");
  cli.section("Stages and data");
  cli.add("stage", &o.stage, "text,instructions,baselines",
          "comma-separated stages, run in this order: text, fuse, instructions, rank, features, baselines")
      .check([](const std::string& v) {
        for (auto& s : apps::split_list(v))
          if (s != "text" && s != "fuse" && s != "instructions" && s != "rank" && s != "features" &&
              s != "baselines")
            return "unknown stage '" + s +
                   "'; expected text, fuse, instructions, rank, features or baselines";
        return apps::split_list(v).empty() ? std::string("expected at least one stage") : std::string();
      });
  cli.add("data-dir", &o.data_dir, "../shared/data/movielens-100k",
          "MovieLens 100K folder (u.data, u.user, u.item) or ml-latest-small's (ratings.csv, movies.csv)")
      .value_name("DIR");
  cli.add("out", &o.out, "", "folder of every stage's inputs and outputs").value_name("DIR");
  cli.add_switch("force", &o.force, "redo stages whose output exists");
  cli.add("cold-fraction", &o.cold_fraction, 0.2, "fraction of users made cold-start").in_range(0, 1);
  cli.add("cold-keep", &o.cold_keep, 5, "training events a cold-start user keeps (the most recent)")
      .positive();
  cli.section("Text and instructions");
  cli.add("max-events", &o.max_events, 300, "history cap per user (most recent)").positive();
  cli.add("titles-per-group", &o.titles_per_group, 5, "titles listed per (behaviour, scenario) group")
      .non_negative();
  cli.add("train-cutoffs", &o.train_cutoffs, 3, "training targets per user (its last N training events)")
      .positive();
  cli.add("extra-tasks", &o.extra_tasks, 4, "tasks besides next_movie and next_genre per training target")
      .in_range(0, 18);
  cli.add("knowledge", &o.knowledge, "templated", "knowledge text: templated (no-HKF) or fused (HKF)")
      .one_of({"templated", "fused"});
  cli.add("max-knowledge-chars", &o.max_knowledge_chars, 1200, "knowledge text cut to this many bytes")
      .positive();
  cli.section("Fusion (--stage fuse)");
  cli.add("endpoint", &o.endpoint, "http://127.0.0.1:8000/v1",
          "OpenAI-compatible base URL (serve_gpt's by default)");
  cli.add("api-key", &o.api_key, "", "sent as a Bearer token when given");
  cli.add("fusion-model", &o.fusion_model, "nabla-gpt", "the requests' model field");
  cli.add("fusion-max-tokens", &o.fusion_max_tokens, 160, "answer length cap").positive();
  cli.section("Ranking (--stage rank) and evaluation");
  cli.add("model-dir", &o.model_dir, "", "transformers GPT folder (train_gpt --save-pretrained)")
      .value_name("DIR");
  cli.add("adapter", &o.adapter, "", "LoRA adapter folder (train_gpt --adapter-out); none: the untuned LM")
      .value_name("DIR");
  cli.add("label", &o.label, "lm", "name of this LM's results (rank_<label>.json, lm_genres_<label>.jsonl)")
      .check([](const std::string& v) {
        for (char c : v)
          if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
            return std::string("expected letters, digits, '_' and '-', got '") + v + "'";
        return v.empty() ? std::string("expected a name") : std::string();
      });
  cli.add("encoder", &o.encoder, ".cache/tokenizers/gpt2/encoder.json", "GPT-2's encoder.json")
      .value_name("FILE");
  cli.add("vocab-bpe", &o.vocab_bpe, ".cache/tokenizers/gpt2/vocab.bpe", "GPT-2's vocab.bpe")
      .value_name("FILE");
  cli.add("protocols", &o.protocols, "sampled,full", "item-task candidates: sampled (1 + --negatives), full")
      .check([](const std::string& v) {
        for (auto& s : apps::split_list(v))
          if (s != "sampled" && s != "full") return "unknown protocol '" + s + "'; expected sampled or full";
        return apps::split_list(v).empty() ? std::string("expected at least one protocol") : std::string();
      });
  cli.add("negatives", &o.negatives, 99, "sampled negatives per held-out item").positive();
  cli.add("max-users", &o.max_users, 0, "rank only the first N test users (0: all)").non_negative();
  cli.add("score-batch", &o.score_batch, 128, "candidates per LM forward").positive();
  cli.section("DLRM features and baselines");
  cli.add("lm-features", &o.lm_features, "",
          "lm_genres_<label>.jsonl of --stage rank (empty: DLRM without LM)")
      .value_name("FILE");
  cli.add("seeds", &o.seeds, "0,1,2", "model seeds of BPR-MF, BERT4Rec, Caser and DLRM")
      .check([](const std::string& v) {
        try {
          if (apps::split_list(v).empty()) return std::string("expected at least one seed");
          for (auto& s : apps::split_list(v)) {
            size_t used = 0;
            std::stoull(s, &used);
            if (used != s.size() || s[0] == '-') return "expected non-negative integers, got '" + s + "'";
          }
        } catch (const std::exception&) {
          return "expected comma-separated non-negative integers, got '" + v + "'";
        }
        return std::string();
      });
  cli.add_switch("allow-missing-lm-features", &o.allow_missing_lm_features,
                 "users missing from --lm-features get uniform genre preferences (smoke runs)");
  cli.add("dlrm-epochs", &o.dlrm_epochs, 2, "DLRM epochs").positive();
  cli.add("dlrm-batch", &o.dlrm_batch, 1024, "DLRM batch").positive();
  cli.add("dlrm-negatives", &o.dlrm_negatives, 2, "DLRM training negatives per interaction").positive();
  cli.add("dlrm-lr", &o.dlrm_lr, 2e-3, "DLRM Adam learning rate").positive();
  cli.add("mf-dim", &o.mf_dim, 32, "BPR-MF factors").positive();
  cli.add("mf-epochs", &o.mf_epochs, 20, "BPR-MF epochs").non_negative();
  cli.add("mf-lr", &o.mf_lr, 5e-3, "BPR-MF Adam learning rate").positive();
  cli.add("bert4rec-epochs", &o.bert4rec_epochs, 60, "BERT4Rec epochs (0: no BERT4Rec baseline)")
      .non_negative();
  cli.add("baseline-models", &o.baseline_models, kBaselineModels,
          "baselines to run (a subset writes baselines_<models>.json, baselines_<models>_s<seeds>.json with "
          "other --seeds)")
      .check([](const std::string& v) {
        for (auto& s : apps::split_list(v))
          if (s != "popularity" && s != "genre_history" && s != "bpr_mf" && s != "bert4rec" && s != "caser")
            return "unknown baseline '" + s +
                   "'; expected popularity, genre_history, bpr_mf, bert4rec or caser";
        return apps::split_list(v).empty() ? std::string("expected at least one baseline") : std::string();
      });
  cli.add("caser-epochs", &o.caser_epochs, 50, "Caser epochs").positive();
  cli.add("caser-L", &o.caser_l, 5, "Caser: the last L items are its input").positive();
  cli.add("caser-T", &o.caser_t, 3, "Caser: targets per training window").positive();
  apps::add_run_options(cli, o.run);
  cli.example("--stage text,instructions,baselines --out run/hkf",
              "split, texts, instruction data, baselines");
  cli.example("--stage fuse --out run/hkf --endpoint http://127.0.0.1:8000/v1",
              "fuse through serve_gpt (cached)");
  cli.example(
      "--stage rank,features --out run/hkf --model-dir run/hf --adapter run/adapter --label hkf "
      "--lm-features run/hkf/lm_genres_hkf.jsonl --device cuda",
      "rank with the tuned LM, then DLRM with its genre preferences");
  return cli.parse(argc, argv, [&] {
    apps::check_run_options(o.run);
    NABLA_CHECK(!o.out.empty(), "--out is required (the folder of every stage's files)");
  });
}

int run(const Options& o) {
  std::filesystem::create_directories(o.out);
  Setup s = load(o);
  const auto stages = apps::split_list(o.stage);
  auto has = [&](const char* st) { return std::find(stages.begin(), stages.end(), st) != stages.end(); };
  if (has("text")) stage_text(o, s);
  if (has("fuse")) stage_fuse(o);
  if (has("instructions")) stage_instructions(o, s);
  if (has("rank")) stage_rank(o, s);
  if (has("features")) stage_features(o, s);
  if (has("baselines")) stage_baselines(o, s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (std::optional<int> code = parse(argc, argv, o)) return *code;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hkf: %s\n", e.what());
  }
  return apps::kExitFailure;
}
