// HKF on MovieLens (docs/hkf.md): the reader and its errors, the leave-last-out split (no leakage) and the
// cold-start users, the behaviour templates on hand-made histories, the 20 instruction tasks, HR/NDCG against
// hand-computed ranks and a sort-based reference on fresh random scores, the candidate protocols, BPR-MF on
// planted preferences, the LM likelihood scorer (batched KV cache against one forward per candidate), the
// DLRM feature join on a toy table, the cached knowledge fusion through an in-process OpenAI server, and the
// hkf binary's option and file errors. LoRA leaving base weights unchanged is
// Lora.TrainingChangesOnlyAdapterTensors (tests/models/test_lora.cpp).
#include <filesystem>
#include <fstream>
#include <random>

#include "algorithms/hkf/behaviour_text.h"
#include "algorithms/hkf/features.h"
#include "algorithms/hkf/instructions.h"
#include "algorithms/hkf/lm_scorer.h"
#include "algorithms/recsys/baselines.h"
#include "algorithms/recsys/bert4rec.h"
#include "algorithms/recsys/ranking.h"
#include "apps/common/knowledge_fusion.h"
#include "apps/common/openai_server.h"
#include "data/movielens.h"
#include "gpt/gpt_testing.h"

namespace nabla::test {
namespace {

namespace ml = data::movielens;

const std::string kMovieLens = NABLA_SOURCE_DIR "/../shared/data/movielens-100k";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// A hand-made catalogue: 4 movies, 2 users.
ml::MovieLens toy() {
  ml::MovieLens d;
  d.users = ml::parse_users("1|30|F|writer|12345\n2|45|M|doctor|54321\n", "toy.user");
  const std::string z = "|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0";  // genres 1..18 off
  d.movies = ml::parse_items(
      "1|Alpha (1995)|01-Jan-1995||url|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"  // Action
      "2|Beta (1977)|01-Jan-1977||url|0|0|0|0|0|1|0|0|0|0|0|0|0|0|1|0|0|0|0\n"   // Comedy, Romance
      "3|Gamma (1997)|01-Jan-1997||url|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n"  // Drama
      "4|Delta (1996)||||1" +
          z + "\n",  // unknown, year from none
      "toy.item");
  d.genre_names.assign(ml::default_genre_names().begin(), ml::default_genre_names().end());
  d.occupations = {"doctor", "writer"};
  return d;
}

TEST(MovieLens, ReadsThe100kFilesAndTheirCounts) {
  if (!std::filesystem::exists(kMovieLens + "/u.data")) GTEST_SKIP() << "no " << kMovieLens;
  const ml::MovieLens d = ml::read_100k(kMovieLens);
  EXPECT_EQ(d.ratings.size(), 100000u);
  EXPECT_EQ(d.num_users(), 943);
  EXPECT_EQ(d.num_items(), 1682);
  EXPECT_EQ(d.movies[1].title, "Toy Story (1995)");
  EXPECT_EQ(d.movies[1].year, 1995);
  EXPECT_EQ(d.movies[1].genres, (std::vector<int>{3, 4, 5}));  // Animation, Children's, Comedy
  EXPECT_EQ(d.genre_names[5], "Comedy");
  EXPECT_EQ(d.users[1].age, 24);
  EXPECT_EQ(d.users[1].occupation, "technician");
  EXPECT_EQ(d.occupations.size(), 21u);
}

TEST(MovieLens, MalformedRowsNameTheFileLineAndField) {
  EXPECT_NE(error_of([] {
              ml::parse_ratings("1\t2\t3\t4\n1\t2\tx\t4\n", "u.data");
            }).find("u.data:2: field rating"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { ml::parse_ratings("1\t2\t3\n", "u.data"); }).find("u.data:1: expected 4 tab-separated"),
      std::string::npos);
  EXPECT_NE(
      error_of([] { ml::parse_ratings("1\t2\t7\t4\n", "u.data"); }).find("expected a rating 1..5, got 7"),
      std::string::npos);
  EXPECT_NE(error_of([] {
              ml::parse_users("1|20|M|x|1\n3|20|M|x|1\n", "u.user");
            }).find("u.user:2: expected user id 2"),
            std::string::npos);
  EXPECT_NE(error_of([] { ml::parse_items("1|A|||u|0|1\n", "u.item"); }).find("u.item:1: expected 24"),
            std::string::npos);
  EXPECT_NE(error_of([] { ml::read_100k("/nonexistent-movielens"); }).find("/nonexistent-movielens/u.data"),
            std::string::npos);
}

// Random ratings with many equal timestamps: every test event is strictly later than every training event of
// its user, nothing else is lost, and ties with the test time are the only events dropped.
TEST(MovieLens, LeaveLastOutHasNoLeakageAcrossTheCut) {
  std::mt19937_64 rng(next_seed());
  ml::MovieLens d = toy();
  for (int u = 3; u <= 40; ++u) d.users.push_back({u, 20, "M", "doctor", "1"});
  d.ratings.clear();
  for (int u = 1; u <= 40; ++u)
    for (int i = 1; i <= 4; ++i)
      if (rng() % 4 != 0)
        d.ratings.push_back({u, i, static_cast<int32_t>(1 + rng() % 5), static_cast<int64_t>(rng() % 3)});
  const ml::Split s = ml::leave_last_out(d, 1);
  int64_t kept = 0;
  for (const auto& us : s.users) {
    ASSERT_FALSE(us.train.empty());
    for (const auto& r : us.train) {
      EXPECT_LT(r.time, us.test.time) << "user " << us.user;
      EXPECT_EQ(r.user, us.user);
    }
    int64_t latest = 0;
    for (const auto& r : d.ratings)
      if (r.user == us.user) latest = std::max(latest, r.time);
    EXPECT_EQ(us.test.time, latest);
    kept += static_cast<int64_t>(us.train.size()) + 1;
  }
  int64_t users_with_ratings = 0;
  for (int u = 1; u <= 40; ++u)
    users_with_ratings +=
        std::any_of(d.ratings.begin(), d.ratings.end(), [&](auto& r) { return r.user == u; });
  int64_t dropped_user_events = 0;
  for (int u = 1; u <= 40; ++u)
    if (std::none_of(s.users.begin(), s.users.end(), [&](auto& us) { return us.user == u; }))
      for (auto& r : d.ratings) dropped_user_events += r.user == u;
  EXPECT_EQ(kept + s.dropped_ties + dropped_user_events, static_cast<int64_t>(d.ratings.size()));
  EXPECT_EQ(static_cast<int64_t>(s.users.size()) + s.dropped_users, users_with_ratings);
}

TEST(MovieLens, ColdStartKeepsTheMostRecentEventsOfASeededFraction) {
  ml::Split s;
  for (int u = 1; u <= 50; ++u) {
    ml::UserSplit us{.user = u};
    for (int t = 0; t < 10; ++t) us.train.push_back({u, t + 1, 4, t});
    us.test = {u, 20, 5, 100};
    s.users.push_back(us);
  }
  ml::Split a = s, b = s, c = s;
  const uint64_t seed = next_seed();
  ml::make_cold_start(a, 0.2, 3, seed);
  ml::make_cold_start(b, 0.2, 3, seed);
  ml::make_cold_start(c, 0.2, 3, seed + 1);
  int cold = 0, differs = 0;
  for (size_t i = 0; i < a.users.size(); ++i) {
    EXPECT_EQ(a.users[i].cold, b.users[i].cold);
    differs += a.users[i].cold != c.users[i].cold;
    if (a.users[i].cold) {
      ++cold;
      ASSERT_EQ(a.users[i].train.size(), 3u);
      EXPECT_EQ(a.users[i].train.front().time, 7);  // the 3 most recent of 0..9
      EXPECT_EQ(a.users[i].train.back().time, 9);
    } else {
      EXPECT_EQ(a.users[i].train.size(), 10u);
    }
  }
  EXPECT_EQ(cold, 10);
  EXPECT_GT(differs, 0);
  EXPECT_NE(error_of([&] { ml::make_cold_start(a, 1.5, 3, 0); }).find("fraction in [0, 1]"),
            std::string::npos);
}

TEST(Hkf, BehaviourTemplatesOnAHandMadeHistory) {
  const ml::MovieLens d = toy();
  const int64_t day = 86400;
  std::vector<ml::Rating> h{{1, 2, 5, 0}, {1, 4, 1, 10 * day}, {1, 1, 3, 100 * day}, {1, 3, 4, 110 * day}};
  EXPECT_EQ(hkf::behaviour_text(d, 1, h),
            "User: 30-year-old woman, writer.\n"
            "History: 4 movies rated.\n"
            "Most-watched genres: Action (1), Comedy (1), Drama (1).\n"
            "Favourite genres (rated 4-5): Comedy (1), Drama (1), Romance (1).\n"
            "Loved (rated 4-5) 1 movie in the last 30 days: Gamma (1997).\n"
            "Loved (rated 4-5) 1 movie earlier: Beta (1977).\n"
            "Watched and found OK (rated 3) 1 movie in the last 30 days: Alpha (1995).\n"
            "Watched but disliked (rated 1-2) 1 movie earlier: Delta (1996).");
  // The cap keeps the most recent events; titles beyond titles_per_group are counted.
  EXPECT_EQ(hkf::behaviour_text(d, 2, h,
                                {.max_events = 2, .titles_per_group = 1, .top_genres = 1, .profile = false}),
            "History: 2 movies rated.\n"
            "Most-watched genres: Action (1).\n"
            "Favourite genres (rated 4-5): Drama (1).\n"
            "Loved (rated 4-5) 1 movie in the last 30 days: Gamma (1997).\n"
            "Watched and found OK (rated 3) 1 movie in the last 30 days: Alpha (1995).");
  EXPECT_EQ(hkf::behaviour_text(d, 1, {}, {.profile = false}), "No movies rated yet.");
  std::vector<ml::Rating> unsorted{h[2], h[0]};
  EXPECT_NE(error_of([&] { hkf::behaviour_text(d, 1, unsorted); }).find("not sorted by time at event 1"),
            std::string::npos);
  EXPECT_EQ(hkf::title_utf8("Caf\xe9"), "Caf\xc3\xa9");
  EXPECT_NE(hkf::fusion_prompt("TEXT").find("TEXT"), std::string::npos);
}

TEST(Hkf, TwentyTasksGiveTheTargetsLabels) {
  const ml::MovieLens d = toy();
  const int64_t jan_1998 = 883612800;
  std::vector<ml::Rating> h{{1, 1, 3, jan_1998}};
  std::vector<int64_t> counts{0, 30, 5, 2, 1};
  hkf::TaskInput in{.ml = &d,
                    .history = h,
                    .target = {1, 2, 5, jan_1998 + 3600},
                    .item_counts = counts,
                    .seed = next_seed()};
  ASSERT_EQ(hkf::tasks().size(), 20u);
  std::set<std::string> names;
  for (auto& t : hkf::tasks()) {
    names.insert(t.name);
    EXPECT_FALSE(t.instruction(in).empty()) << t.name;
    EXPECT_FALSE(t.output(in).empty()) << t.name;
  }
  EXPECT_EQ(names.size(), 20u);
  auto out = [&](const char* n) { return hkf::task(n).output(in); };
  EXPECT_EQ(out("next_movie"), "Beta (1977)");
  EXPECT_EQ(out("next_genre"), "Comedy");
  EXPECT_EQ(out("next_genres"), "Comedy, Romance");
  EXPECT_EQ(out("rating_level"), "high");
  EXPECT_EQ(out("next_rating"), "5");
  EXPECT_EQ(out("decade"), "1970s");
  EXPECT_EQ(out("era"), "classic");
  EXPECT_EQ(out("will_love"), "yes");
  EXPECT_EQ(out("same_genre_as_last"), "no");
  EXPECT_EQ(out("genre_count"), "2");
  EXPECT_EQ(out("within_a_day"), "yes");
  EXPECT_EQ(out("new_release"), "no");
  const std::string pick = hkf::task("pick_of_five").instruction(in);
  EXPECT_NE(pick.find("Beta (1977)"), std::string::npos);
  EXPECT_EQ(pick.find("Alpha (1995)"), std::string::npos);  // in the history: never a distractor
  EXPECT_NE(error_of([] { hkf::task("nope"); }).find("expected one of next_movie"), std::string::npos);
  // The JSONL line reads back through the SFT reader with the knowledge before the task.
  const auto msgs = data::parse_instruction_line(hkf::chat_example("K", "I", "O").dump(), "x:1");
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].content, "K\n\nTask: I");
  EXPECT_EQ(msgs[1].role, "assistant");
  EXPECT_EQ(msgs[1].content, "O");
}

TEST(Recsys, HitRateAndNdcgMatchHandComputedRanks) {
  const std::vector<double> s{0.5, 0.9, 0.1, 0.5, 0.2};
  const int64_t p0 = 0, p2 = 2;
  EXPECT_EQ(recsys::rank_of_positive(s, std::span<const int64_t>(&p0, 1)), 3);  // 0.9 and the tied 0.5 above
  EXPECT_EQ(recsys::rank_of_positive(s, std::span<const int64_t>(&p2, 1)), 5);
  const std::vector<int64_t> both{0, 2};
  EXPECT_EQ(recsys::rank_of_positive(s, both), 3);  // best positive; positives never count against each other
  recsys::RankingMetrics m;
  m.add(1), m.add(3), m.add(7), m.add(12);
  const auto r = m.mean();
  EXPECT_DOUBLE_EQ(r.hr5, 2.0 / 4);
  EXPECT_DOUBLE_EQ(r.hr10, 3.0 / 4);
  EXPECT_DOUBLE_EQ(r.ndcg5, (1.0 + 1.0 / 2.0) / 4);         // 1/log2(2) + 1/log2(4)
  EXPECT_DOUBLE_EQ(r.ndcg10, (1.0 + 0.5 + 1.0 / 3.0) / 4);  // + 1/log2(8)
  // Fresh random scores: the rank equals the position of the positive after a stable sort that puts ties
  // before it.
  std::mt19937_64 rng(next_seed());
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<double> sc(30);
    for (auto& x : sc) x = static_cast<double>(rng() % 10);
    const int64_t p = static_cast<int64_t>(rng() % 30);
    std::vector<int64_t> order(30);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      if (sc[a] != sc[b]) return sc[a] > sc[b];
      return a != p && b == p;
    });
    const int64_t expect = std::find(order.begin(), order.end(), p) - order.begin() + 1;
    EXPECT_EQ(recsys::rank_of_positive(sc, std::span<const int64_t>(&p, 1)), expect);
  }
  std::vector<double> bad{0.1, std::nan("")};
  EXPECT_NE(error_of([&] {
              recsys::rank_of_positive(bad, std::span<const int64_t>(&p0, 1));
            }).find("score 1 is nan"),
            std::string::npos);
}

TEST(Recsys, CandidateProtocolsExcludeTheHistoryAndRepeatPerSeed) {
  const std::vector<int32_t> hist{3, 5, 7, 9};
  const uint64_t seed = next_seed();
  const auto a = recsys::sample_candidates(11, hist, 200, 99, seed, 4);
  ASSERT_EQ(a.size(), 100u);
  EXPECT_EQ(a[0], 11);
  std::set<int32_t> uniq(a.begin(), a.end());
  EXPECT_EQ(uniq.size(), 100u);
  for (int32_t h : hist) EXPECT_EQ(uniq.count(h), 0u);
  for (int32_t c : a) EXPECT_TRUE(c >= 1 && c <= 200);
  EXPECT_EQ(a, recsys::sample_candidates(11, hist, 200, 99, seed, 4));
  EXPECT_NE(a, recsys::sample_candidates(11, hist, 200, 99, seed, 5));
  const auto f = recsys::full_candidates(11, hist, 20);
  EXPECT_EQ(f.size(), 16u);  // 20 - 4 history items
  EXPECT_EQ(f[0], 11);
  EXPECT_NE(
      error_of([&] { recsys::sample_candidates(1, hist, 10, 99, seed, 4); }).find("expected at least 99"),
      std::string::npos);
}

// Two groups of users each like one half of the catalogue: BPR-MF must rank a held-out liked item above
// items of the other half, popularity cannot.
TEST(Recsys, BprMfLearnsPlantedPreferences) {
  const int32_t users = 30, items = 20;
  std::vector<recsys::Interaction> train;
  std::mt19937_64 rng(next_seed());
  for (int32_t u = 1; u <= users; ++u)
    for (int32_t i = 1; i <= items; ++i)
      if (((u % 2) == (i % 2)) && rng() % 3 != 0) train.push_back({u, i});
  recsys::BprMf mf(users, items, {.dim = 8, .epochs = 40, .batch_size = 64, .lr = 0.05, .seed = next_seed()});
  const auto losses = mf.fit(train);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  int correct = 0;
  for (int32_t u = 1; u <= users; ++u) {
    const std::vector<int32_t> pair{u % 2 == 0 ? 2 : 1, u % 2 == 0 ? 1 : 2};  // liked parity first
    const auto s = mf.scores(u, pair);
    correct += s[0] > s[1];
  }
  EXPECT_GE(correct, users - 2);
  const std::vector<int64_t> counts{0, 5, 9, 1};
  const std::vector<int32_t> q{3, 2};
  EXPECT_EQ(recsys::popularity_scores(counts, q), (std::vector<double>{1, 9}));
  std::vector<std::vector<int>> ig{{}, {1}, {1, 2}, {2}};
  const auto g = recsys::genre_scores_from_items(std::vector<double>{0, 1, 3, 5}, ig, 3);
  EXPECT_DOUBLE_EQ(g[1], 2.0);
  EXPECT_DOUBLE_EQ(g[2], 4.0);
  EXPECT_EQ(g[0], std::numeric_limits<double>::lowest());
}

// Sequences that walk the catalogue in order (next = previous + 1, from a random start): BERT4Rec must put
// the true next item first among all items for most users.
TEST(Recsys, Bert4RecLearnsASequentialPattern) {
  const int32_t items = 16;
  std::mt19937_64 rng(next_seed());
  std::vector<std::vector<int32_t>> seqs(33);
  for (size_t u = 1; u < seqs.size(); ++u) {
    int32_t x = 1 + static_cast<int32_t>(rng() % 8);
    for (int k = 0; k < 6; ++k) seqs[u].push_back(x + k);
  }
  recsys::Bert4Rec m(items, {.max_len = 8,
                             .hidden = 32,
                             .layers = 1,
                             .heads = 2,
                             .dropout = 0.0,
                             .epochs = 60,
                             .batch_size = 16,
                             .lr = 3e-3,
                             .seed = next_seed()});
  const auto losses = m.fit(seqs);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  std::vector<int32_t> all(items);
  std::iota(all.begin(), all.end(), 1);
  int top1 = 0;
  for (size_t u = 1; u < seqs.size(); ++u) {
    std::vector<int32_t> hist(seqs[u].begin(), seqs[u].end() - 1);
    const auto s = m.scores(hist, all);
    top1 += std::max_element(s.begin(), s.end()) - s.begin() + 1 == seqs[u].back();
  }
  EXPECT_GE(top1, 26) << "of 32 users";
}

// The batched KV-cache scorer equals one full forward per (prompt + candidate), for candidates of mixed
// lengths over several batches, on a fresh random GPT.
TEST(Hkf, LikelihoodScorerMatchesOneForwardPerCandidate) {
  models::GPTConfig c = tiny_config(48);
  models::GPT model(c, next_seed());
  std::mt19937_64 rng(next_seed());
  std::vector<int64_t> prompt(17);
  for (auto& t : prompt) t = static_cast<int64_t>(rng() % 300);
  std::vector<std::vector<int64_t>> cands;
  for (int i = 0; i < 9; ++i) {
    std::vector<int64_t> v(1 + rng() % 6);
    for (auto& t : v) t = static_cast<int64_t>(rng() % 300);
    cands.push_back(v);
  }
  const auto fast = hkf::score_candidates(model, prompt, cands, 4);
  const auto ref = hkf::score_candidates_reference(model, prompt, cands);
  ASSERT_EQ(fast.size(), cands.size());
  for (size_t i = 0; i < cands.size(); ++i) {
    EXPECT_NEAR(fast[i], ref[i], 1e-3 * (1 + std::abs(ref[i]))) << "candidate " << i;
    EXPECT_LT(fast[i], 0.0);
  }
  std::vector<std::vector<int64_t>> too_long{std::vector<int64_t>(40, 1)};
  EXPECT_NE(error_of([&] { hkf::score_candidates(model, prompt, too_long); }).find("exceed n_positions 48"),
            std::string::npos);
}

TEST(Hkf, DlrmFeatureJoinOnAToyTable) {
  const ml::MovieLens d = toy();
  ml::Split s;
  s.users.push_back({.user = 1, .train = {{1, 1, 5, 0}, {1, 2, 2, 1}}, .test = {1, 3, 4, 5}});
  s.users.push_back({.user = 2, .train = {{2, 3, 4, 0}}, .test = {2, 1, 4, 5}});
  const auto rows = hkf::ctr_train_rows(s, d.num_items(), 1, next_seed());
  ASSERT_EQ(rows.size(), 6u);  // 3 interactions, one negative each
  for (size_t i = 0; i < rows.size(); i += 2) {
    EXPECT_EQ(rows[i].label, 1.0f);
    EXPECT_EQ(rows[i + 1].label, 0.0f);
    for (auto& us : s.users)  // a negative is never a training item nor the held-out one
      if (us.user == rows[i + 1].user) {
        EXPECT_NE(rows[i + 1].item, us.test.item);
        for (auto& r : us.train) EXPECT_NE(rows[i + 1].item, r.item);
      }
  }
  std::vector<hkf::CtrRow> toy_rows{{1, 3, 1}, {2, 2, 0}, {1, 2, 0}};
  hkf::CtrTable t = hkf::base_features(d, s, toy_rows);
  ASSERT_EQ(t.num_dense, hkf::kBaseDense);
  EXPECT_FLOAT_EQ(t.dense[0], 0.30f);  // age 30
  EXPECT_FLOAT_EQ(t.dense[1], 1.0f);   // F
  EXPECT_FLOAT_EQ(t.dense[2], 0.97f);  // 1997
  // history genre match: user 1 rated Alpha (Action) and Beta (Comedy, Romance): shares 1/2 each
  EXPECT_FLOAT_EQ(t.dense[0 * hkf::kBaseDense + 4], 0.0f);  // Gamma is Drama
  EXPECT_FLOAT_EQ(t.dense[1 * hkf::kBaseDense + 4], 0.0f);  // user 2 rated only Drama
  EXPECT_FLOAT_EQ(t.dense[2 * hkf::kBaseDense + 4], 1.0f);  // Beta: Comedy 1/2 + Romance 1/2
  std::unordered_map<int32_t, std::vector<float>> prefs;
  prefs[1] = std::vector<float>(ml::kNumGenres, 0.0f);
  prefs[2] = std::vector<float>(ml::kNumGenres, 0.0f);
  prefs[1][8] = 0.7f;                       // Drama
  prefs[2][5] = 0.2f, prefs[2][14] = 0.3f;  // Comedy, Romance
  hkf::join_user_features(t, toy_rows, prefs, ml::kNumGenres);
  hkf::join_genre_match(t, toy_rows, d, prefs);
  ASSERT_EQ(t.num_dense, hkf::kBaseDense + ml::kNumGenres + 1);
  const int64_t w = t.num_dense;
  EXPECT_FLOAT_EQ(t.dense[0 * w + hkf::kBaseDense + 8], 0.7f);   // row 0 (user 1) carries user 1's vector
  EXPECT_FLOAT_EQ(t.dense[1 * w + hkf::kBaseDense + 14], 0.3f);  // row 1 (user 2) carries user 2's
  EXPECT_FLOAT_EQ(t.dense[0 * w + w - 1], 0.7f);                 // Gamma is Drama
  EXPECT_FLOAT_EQ(t.dense[1 * w + w - 1], 0.5f);                 // Beta is Comedy + Romance
  EXPECT_FLOAT_EQ(t.dense[2 * w + w - 1], 0.0f);                 // user 1 prefers Drama; Beta is not
  EXPECT_FLOAT_EQ(t.dense[1 * w + 0], 0.45f);                    // the base block is kept in front
  EXPECT_EQ(t.sparse[1 * t.num_sparse + 1], 2);                  // item id
  EXPECT_EQ(t.sparse[1 * t.num_sparse + 3], 5);                  // first genre: Comedy
  prefs.erase(2);
  EXPECT_NE(error_of([&] {
              hkf::join_user_features(t, toy_rows, prefs, ml::kNumGenres);
            }).find("row 1: user 2 has no feature vector"),
            std::string::npos);
}

// The fusion step asks the endpoint once per key and text, then answers from its cache.
TEST(Hkf, KnowledgeFusionCachesEachAnswer) {
  apps::GptBackend backend;
  backend.model = std::make_shared<models::GPT>(tiny_config(256), next_seed());
  backend.tokenizer = std::make_shared<data::Gpt2Tokenizer>(fixture_tokenizer(&backend.chat));
  apps::OpenAIServer server(backend, {.port = 0, .max_body_bytes = 1 << 16, .default_chat_max_tokens = 8});
  server.start();
  const std::string dir = std::string(NABLA_BINARY_DIR) + "/hkf_fusion_cache_" + std::to_string(next_seed());
  std::filesystem::remove_all(dir);
  apps::KnowledgeFusion f({.base_url = "http://127.0.0.1:" + std::to_string(server.port()) + "/v1",
                           .cache_dir = dir,
                           .max_tokens = 6});
  const std::string a = f.fuse("u1_test", "the hat");
  EXPECT_EQ(server.requests_served(), 1);
  EXPECT_TRUE(std::filesystem::exists(f.cache_path("u1_test", "the hat")));
  EXPECT_EQ(f.fuse("u1_test", "the hat"), a);
  EXPECT_EQ(server.requests_served(), 1);
  EXPECT_EQ(f.cache_hits(), 1);
  f.fuse("u1_test", "the cat");  // another text: another request and file
  EXPECT_EQ(server.requests_served(), 2);
  EXPECT_NE(error_of([&] { f.fuse("u1/../x", "t"); }).find("expected letters, digits"), std::string::npos);
  server.stop();
  apps::KnowledgeFusion dead({.base_url = "http://127.0.0.1:1/v1", .cache_dir = dir});
  EXPECT_NE(error_of([&] { dead.fuse("u2_test", "t"); }).find("knowledge fusion: http://127.0.0.1:1/v1"),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Hkf, BinaryRejectsBadOptionsAndFilesClearly) {
  auto r = run_binary("hkf", "--stage texts --out /tmp/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("unknown stage 'texts'"), std::string::npos) << r.output;
  r = run_binary("hkf", "--stage text");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--out is required"), std::string::npos) << r.output;
  r = run_binary("hkf", "--out /tmp/x --seeds 1,-2");
  EXPECT_EQ(r.code, 2);
  r = run_binary(
      "hkf", "--stage text --out " + std::string(NABLA_BINARY_DIR) + "/hkf_bad --data-dir /nonexistent-ml");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(
      r.output.find("/nonexistent-ml: expected MovieLens 100K (u.data, u.user, u.item) or ml-latest-small"),
      std::string::npos)
      << r.output;
  r = run_binary("hkf", "--stage baselines --out /tmp/x --baseline-models bpr_mf,gru4rec");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("unknown baseline 'gru4rec'"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace nabla::test
