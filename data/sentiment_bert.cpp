// E2E-ABSA unified tags and ECPE candidate pairs for the study's BERT baselines (sentiment_bert.h).
#include "data/sentiment_bert.h"

#include <algorithm>
#include <cctype>

#include "data/token_tagging.h"
#include "engine/error.h"

namespace nabla::data {

namespace {
std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}
}  // namespace

std::string polarity_tag_type(const std::string& polarity) {
  const std::string p = lower(polarity);
  if (p == "positive") return "POS";
  if (p == "negative") return "NEG";
  if (p == "neutral") return "NEU";
  fail("polarity '", polarity, "': expected positive, negative or neutral");
}

std::string polarity_of_tag_type(const std::string& type) {
  if (type == "POS") return "positive";
  if (type == "NEG") return "negative";
  if (type == "NEU") return "neutral";
  fail("tag type '", type, "': expected POS, NEG or NEU");
}

std::vector<std::string> e2e_tags(const std::vector<std::string>& words,
                                  const std::vector<std::pair<std::string, std::string>>& pairs,
                                  int64_t* unmatched) {
  std::vector<std::string> lw;
  for (const auto& w : words) lw.push_back(lower(w));
  std::vector<bool> used(words.size(), false);
  std::vector<TagSpan> spans;
  int64_t missed = 0;
  for (const auto& [aspect, polarity] : pairs) {
    const std::string type = polarity_tag_type(polarity);
    std::vector<std::string> aw = split_words(lower(aspect));
    bool placed = false;
    for (size_t i = 0; !aw.empty() && i + aw.size() <= lw.size() && !placed; ++i) {
      bool ok = true;
      for (size_t k = 0; k < aw.size() && ok; ++k) ok = !used[i + k] && lw[i + k] == aw[k];
      if (!ok) continue;
      for (size_t k = 0; k < aw.size(); ++k) used[i + k] = true;
      spans.push_back({static_cast<int64_t>(i), static_cast<int64_t>(i + aw.size()), type});
      placed = true;
    }
    missed += !placed;
  }
  if (unmatched) *unmatched = missed;
  return bio_tags(static_cast<int64_t>(words.size()), spans);
}

std::vector<std::pair<std::string, std::string>> e2e_pairs_from_tags(const std::vector<std::string>& words,
                                                                     const std::vector<std::string>& tags) {
  NABLA_CHECK(words.size() == tags.size(), "e2e_pairs_from_tags: ", words.size(), " words but ", tags.size(),
              " tags");
  std::vector<std::pair<std::string, std::string>> out;
  for (const TagSpan& s : bio_spans(tags)) {
    std::string aspect;
    for (int64_t i = s.begin; i < s.end; ++i) aspect += (i > s.begin ? " " : "") + lower(words[i]);
    out.emplace_back(aspect, polarity_of_tag_type(s.type));
  }
  return out;
}

std::vector<std::pair<int, int>> ecpe_candidates(int num_clauses, int window) {
  std::vector<std::pair<int, int>> out;
  for (int e = 1; e <= num_clauses; ++e)
    for (int c = std::max(1, e - window); c <= std::min(num_clauses, e + window); ++c) out.emplace_back(e, c);
  return out;
}

std::pair<std::string, std::string> ecpe_pair_texts(const SentimentExample& doc, int e, int c) {
  const int n = static_cast<int>(doc.clauses.size());
  NABLA_CHECK(e >= 1 && e <= n && c >= 1 && c <= n, "ECPE document ", doc.id, ": pair (", e, ", ", c,
              ") outside its ", n, " clauses");
  return {doc.clauses[static_cast<size_t>(e - 1)],
          std::to_string(c - e) + " " + doc.clauses[static_cast<size_t>(c - 1)]};
}

std::vector<EcpeTrainingPair> ecpe_training_pairs(const SentimentExample& doc, int window, int negatives,
                                                  PyRandom& rng) {
  const auto cand = ecpe_candidates(static_cast<int>(doc.clauses.size()), window);
  std::vector<bool> gold(cand.size(), false);
  std::vector<int64_t> neg;
  for (size_t i = 0; i < cand.size(); ++i) {
    gold[i] = std::find(doc.clause_pairs.begin(), doc.clause_pairs.end(), cand[i]) != doc.clause_pairs.end();
    if (!gold[i]) neg.push_back(static_cast<int64_t>(i));
  }
  std::vector<bool> keep = gold;
  const int64_t k = std::min<int64_t>(negatives, static_cast<int64_t>(neg.size()));
  for (int64_t j : rng.sample(static_cast<int64_t>(neg.size()), k)) keep[static_cast<size_t>(neg[j])] = true;
  std::vector<EcpeTrainingPair> out;
  for (size_t i = 0; i < cand.size(); ++i)
    if (keep[i]) out.push_back({cand[i].first, cand[i].second, gold[i] ? 1 : 0});
  return out;
}

std::vector<std::pair<int, int>> ecpe_decode(const std::vector<std::pair<int, int>>& candidates,
                                             const std::vector<double>& probability, double threshold) {
  NABLA_CHECK(candidates.size() == probability.size(), "ecpe_decode: ", probability.size(),
              " probabilities for ", candidates.size(), " candidates");
  std::vector<std::pair<int, int>> out;
  if (candidates.empty()) return out;
  const size_t best = std::max_element(probability.begin(), probability.end()) - probability.begin();
  for (size_t i = 0; i < candidates.size(); ++i)
    if (i == best || probability[i] >= threshold) out.push_back(candidates[i]);
  return out;
}

}  // namespace nabla::data
