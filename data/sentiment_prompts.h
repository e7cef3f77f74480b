// Prompts of the sentiment study and the parsers of a language model's answers (../shared/data/sentiment/
// prompts.md is the study's prompt file; what it lacks is marked "ours" below).
//
// Zero-shot prompts (index 0 is the default: the one prompts.md sets in italics; --prompt k picks another):
//   SC        0 "Given this text, what is the sentiment conveyed? Is it positive or negative? Text:
//   {sentence}"
//             1 "Can you analyze the sentiment of this statement and classify it as positive or negative?
//             ..." 2 "Using sentiment analysis, determine whether the overall tone of this text is positive
//             or ..."
//   ABSC      0 "Sentence: {sentence} What is the sentiment polarity of the aspect {aspect} in this
//   sentence?"
//             (no italics in prompts.md: the first one), 1 the Review variant, 2 the Statement variant
//   E2E-ABSA  0 "Given a sentence or text, extract the aspect term(s) and determine their corresponding
//             sentiment polarity. Text: {sentence}", 1 the product-review variant, 2 the tweet variant
//   ECE, ECPE ours (the study's repository has none): the numbered clauses, the emotion word and clause
//             (ECE), and the answer form asked for ("the clause numbers" / "[(emotion, cause), ...]")
// Few-shot: E2E-ABSA on 14res/14lap uses the study's verbatim 3-/5-shot instructions ("I want you to act as
// an annotator ... My first review is '{sent}'"), one user message. Every other task and dataset (ours, as
// the study's later script did) gets k demonstrations drawn from the training split with PyRandom(seed),
// as user/assistant turns before the question, each answer written in the form the parser reads.
//
// Parsers (std::nullopt = unparseable: the caller counts it, and scores it as wrong / as no prediction):
//   parse_label        the label word (positive, negative, neutral among `allowed`) that occurs first in the
//                      lower-cased answer as a whole word
//   parse_pairs        the study's compute-f1.py: the first `[...]` of a line (regex `[[](.*)[]]`, greedy,
//                      no newline), read as a Python literal list of (aspect, polarity) pairs, lower-cased;
//                      with filter_absent, pairs whose aspect is not in the lower-cased sentence are dropped
//   parse_clause_ids   every integer in 1..n in the answer (ECE), deduplicated, sorted
//   parse_clause_pairs every "(e, c)" or "[e, c]" of integers in 1..n (ECPE)
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/chat.h"
#include "data/sentiment.h"

namespace nabla::data {

int num_zero_shot_prompts(SentimentTask task);
// The zero-shot question for `e` with prompt `index` (throws for an index out of range).
std::string zero_shot_prompt(SentimentTask task, const SentimentExample& e, int index = 0);
// The gold answer written as the parser reads it ("positive", "[('staff', 'negative')]", "3, 4", "[(7, 9)]").
std::string gold_answer(SentimentTask task, const SentimentExample& e);

// The study's verbatim few-shot instruction (E2E-ABSA, dataset "14res" or "14lap", shots 3 or 5), or "" when
// it has none for that combination.
std::string study_few_shot_prompt(const std::string& dataset, int shots, const std::string& sentence);

// The chat messages of one query: shots 0 -> the zero-shot prompt; shots > 0 -> the study's instruction
// where it has one, else `demos` (training examples) as user/assistant turns, then the question.
std::vector<ChatMessage> build_messages(SentimentTask task, const std::string& dataset,
                                        const SentimentExample& e, int shots,
                                        const std::vector<SentimentExample>& demos, int prompt_index = 0);

// k demonstrations from `train` (PyRandom(seed).sample), in sampled order.
std::vector<SentimentExample> pick_demos(const std::vector<SentimentExample>& train, int k, uint32_t seed);

std::optional<std::string> parse_label(const std::string& answer, const std::vector<std::string>& allowed);
std::optional<std::vector<std::pair<std::string, std::string>>> parse_pairs(const std::string& answer,
                                                                            const std::string& sentence,
                                                                            bool filter_absent);
std::optional<std::vector<int>> parse_clause_ids(const std::string& answer, int n);
std::optional<std::vector<std::pair<int, int>>> parse_clause_pairs(const std::string& answer, int n);

std::string to_lower(std::string s);

}  // namespace nabla::data
