// What the sentiment study's fine-tuned BERT needs for its two structured tasks (docs/sentiment.md):
//
//   E2E-ABSA as token tagging with the unified scheme (one tag set for the aspect term and its polarity,
//     as in Li et al.'s BERT-E2E-ABSA): O, B-POS, I-POS, B-NEG, I-NEG, B-NEU, I-NEU over the sentence's
//     whitespace words (the study's files are pre-tokenized). e2e_tags places each gold (aspect, polarity)
//     pair at the first occurrence of the aspect's words (case-insensitive) not already tagged, in the
//     order of the gold list; a pair whose words do not occur is counted in `unmatched` and left out.
//     e2e_pairs_from_tags reads the spans back as (aspect words joined by one space, lower-cased;
//     positive | negative | neutral), the form the study's E2E-ABSA metric compares.
//   ECPE as pair classification: every (emotion clause e, cause clause c) with |c - e| <= window is a
//     candidate (window 2 covers 96% of ECPE_train's gold pairs and 93% of ECPE_test's); the pair's texts
//     are clause e and "<c - e> clause c" (the offset as text: BERT sees the distance); training takes every
//     gold pair within the window and `negatives` other candidates per document drawn with Python's
//     random.sample (seeded). A document's predicted pairs are the candidates whose probability reaches
//     `threshold`, and always its most probable candidate (every ECPE document has at least one pair).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/sentiment.h"

namespace nabla::data {

// ---- E2E-ABSA -------------------------------------------------------------------------------------------

// "positive" -> "POS", "negative" -> "NEG", "neutral" -> "NEU" (any case); throws for anything else.
std::string polarity_tag_type(const std::string& polarity);
std::string polarity_of_tag_type(const std::string& type);  // the inverse, lower-case; throws

std::vector<std::string> e2e_tags(const std::vector<std::string>& words,
                                  const std::vector<std::pair<std::string, std::string>>& pairs,
                                  int64_t* unmatched = nullptr);
std::vector<std::pair<std::string, std::string>> e2e_pairs_from_tags(const std::vector<std::string>& words,
                                                                     const std::vector<std::string>& tags);

// ---- ECPE -----------------------------------------------------------------------------------------------

// Candidates (e, c), 1-based, e-major, with |c - e| <= window.
std::vector<std::pair<int, int>> ecpe_candidates(int num_clauses, int window);
// The two texts of candidate (e, c) of a document.
std::pair<std::string, std::string> ecpe_pair_texts(const SentimentExample& doc, int e, int c);

struct EcpeTrainingPair {
  int e = 0, c = 0, label = 0;
};
// Gold pairs within the window (label 1) and up to `negatives` other candidates (label 0), in candidate
// order.
std::vector<EcpeTrainingPair> ecpe_training_pairs(const SentimentExample& doc, int window, int negatives,
                                                  PyRandom& rng);
// The predicted pairs of one document from its candidates' probabilities of being a pair (same order).
std::vector<std::pair<int, int>> ecpe_decode(const std::vector<std::pair<int, int>>& candidates,
                                             const std::vector<double>& probability, double threshold);

}  // namespace nabla::data
