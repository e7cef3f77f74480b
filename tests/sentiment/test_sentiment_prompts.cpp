// Prompts and answer parsers of the sentiment study (data/sentiment_prompts.h), and its metrics
// (algorithms/metrics/sentiment.h) against hand-computed cases.
#include <fstream>
#include <regex>
#include <sstream>

#include "algorithms/metrics/sentiment.h"
#include "data/sentiment_prompts.h"
#include "sentiment_testing.h"

namespace nabla::test {
namespace {

using namespace nabla::data;
using Pairs = std::vector<std::pair<std::string, std::string>>;

TEST(SentimentPrompts, ZeroShotPromptsAreTheStudysWithTheItalicOneFirst) {
  SentimentExample e{.text = "the bread is top notch .", .label = "positive", .aspect = "bread"};
  EXPECT_EQ(zero_shot_prompt(SentimentTask::sc, e),
            "Given this text, what is the sentiment conveyed? Is it positive or negative? Text: the bread is "
            "top notch .");
  EXPECT_EQ(zero_shot_prompt(SentimentTask::absc, e),
            "Sentence: the bread is top notch . What is the sentiment polarity of the aspect bread in this "
            "sentence?");
  EXPECT_EQ(zero_shot_prompt(SentimentTask::e2e_absa, e, 1),
            "Identify the aspect term(s) and sentiment polarity in a product review or feedback. Review: the "
            "bread is "
            "top notch .");
  // every prompt of prompts.md's simple-prompt groups is one of ours, the {sentence} slot filled
  std::ifstream f(sentiment_file("prompts.md"));
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string md = ss.str();
  for (SentimentTask t : {SentimentTask::sc, SentimentTask::e2e_absa})
    for (int k = 0; k < num_zero_shot_prompts(t); ++k) {
      SentimentExample slot{.text = "{sentence}"};
      EXPECT_NE(md.find(zero_shot_prompt(t, slot, k)), std::string::npos) << task_name(t) << " " << k;
    }
  EXPECT_NE(md.find("*" + zero_shot_prompt(SentimentTask::sc, SentimentExample{.text = "{sentence}"}) + "*"),
            std::string::npos);  // the default is the italic one
  EXPECT_NE(
      error_of([&] { zero_shot_prompt(SentimentTask::sc, e, 3); }).find("index 3 for SC, expected 0..2"),
      std::string::npos);
}

TEST(SentimentPrompts, FewShotInstructionsAreVerbatimFromPromptsMd) {
  std::ifstream f(sentiment_file("prompts.md"));
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string md = ss.str();
  int found = 0;
  for (const char* d : {"14res", "14lap"})
    for (int shots : {3, 5}) {
      const std::string p = study_few_shot_prompt(d, shots, "{sent}");
      ASSERT_FALSE(p.empty());
      EXPECT_NE(md.find("`" + p + "`"), std::string::npos) << d << " " << shots;
      found++;
    }
  EXPECT_EQ(found, 4);
  EXPECT_EQ(study_few_shot_prompt("books", 3, "x"), "");
  SentimentExample e{.text = "The fish was great ."};
  auto m = build_messages(SentimentTask::e2e_absa, "14res", e, 5, {});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(m[0].content.ends_with("My first review is 'The fish was great .'"));
}

TEST(SentimentPrompts, DemonstrationsBecomeUserAssistantTurns) {
  std::vector<SentimentExample> train;
  for (int i = 0; i < 20; ++i)
    train.push_back({.id = std::to_string(i + 1),
                     .text = "s" + std::to_string(i),
                     .label = i % 2 ? "positive" : "negative"});
  auto demos = pick_demos(train, 3, 42);
  ASSERT_EQ(demos.size(), 3u);
  EXPECT_EQ(demos[0].id, pick_demos(train, 3, 42)[0].id);  // seeded
  SentimentExample q{.text = "a fine film"};
  auto m = build_messages(SentimentTask::sc, "sst2", q, 3, demos);
  ASSERT_EQ(m.size(), 7u);
  EXPECT_EQ(m[1].role, "assistant");
  EXPECT_EQ(m[1].content, demos[0].label);
  EXPECT_EQ(m[6].role, "user");
  EXPECT_TRUE(m[6].content.ends_with("Text: a fine film"));
  SentimentExample e2e{.text = "x", .pairs = {{"staff", "negative"}, {"o'neal", "positive"}}};
  EXPECT_EQ(gold_answer(SentimentTask::e2e_absa, e2e), "[('staff', 'negative'), (\"o'neal\", 'positive')]");
  EXPECT_EQ(*parse_pairs(gold_answer(SentimentTask::e2e_absa, e2e), "the staff and o'neal", false),
            (Pairs{{"staff", "negative"}, {"o'neal", "positive"}}));
  SentimentExample ecpe{.clauses = {"a", "b", "c"}, .clause_pairs = {{3, 2}, {3, 1}}};
  EXPECT_EQ(*parse_clause_pairs(gold_answer(SentimentTask::ecpe, ecpe), 3),
            (std::vector<std::pair<int, int>>{{3, 1}, {3, 2}}));
  SentimentExample ece{
      .clauses = {"a", "b", "c"}, .emotion_word = "joy", .emotion_clause = 2, .causes = {1, 3}};
  EXPECT_EQ(*parse_clause_ids(gold_answer(SentimentTask::ece, ece), 3), (std::vector<int>{1, 3}));
  EXPECT_NE(zero_shot_prompt(SentimentTask::ece, ece).find("Clause 2 expresses the emotion 'joy'"),
            std::string::npos);
  EXPECT_NE(zero_shot_prompt(SentimentTask::ece, ece).find("\n3. c"), std::string::npos);
}

TEST(SentimentParsers, LabelWordsFromRealisticAnswers) {
  const std::vector<std::string> two = {"positive", "negative"}, three = {"positive", "negative", "neutral"};
  EXPECT_EQ(parse_label("The sentiment conveyed is positive.", two), "positive");
  EXPECT_EQ(parse_label("Negative. The reviewer dislikes the plot, nothing positive.", two), "negative");
  EXPECT_EQ(parse_label("The sentiment polarity of the aspect \"bread\" is Neutral", three), "neutral");
  EXPECT_EQ(parse_label("It is neutral", two), std::nullopt);                   // not an allowed word for SC
  EXPECT_EQ(parse_label("It is mostly positively framed", two), std::nullopt);  // whole words only
  EXPECT_EQ(parse_label("", two), std::nullopt);
  EXPECT_EQ(parse_label("I cannot determine the sentiment.", three), std::nullopt);
}

TEST(SentimentParsers, PairsAsTheStudysComputeF1) {
  const std::string s = "The staff was friendly but the Pizza was cold .";
  EXPECT_EQ(*parse_pairs("[('staff', 'positive'), ('pizza', 'negative')]", s, true),
            (Pairs{{"staff", "positive"}, {"pizza", "negative"}}));
  EXPECT_EQ(*parse_pairs(
                "Sure! Here are the results:\nLabel: [['Staff', 'Positive'], ['Pizza', 'NEGATIVE']]\nDone.",
                s, false),
            (Pairs{{"staff", "positive"}, {"pizza", "negative"}}));
  // aspects absent from the sentence are dropped only with the filter
  EXPECT_EQ(parse_pairs("[('service', 'positive'), ('pizza', 'negative')]", s, true)->size(), 1u);
  EXPECT_EQ(parse_pairs("[('service', 'positive'), ('pizza', 'negative')]", s, false)->size(), 2u);
  EXPECT_EQ(*parse_pairs("['pizza', 'negative']", s, true), (Pairs{{"pizza", "negative"}}));  // one flat pair
  EXPECT_TRUE(parse_pairs("[]", s, true)->empty());
  EXPECT_EQ(parse_pairs("The aspect is staff and it is positive.", s, true), std::nullopt);
  EXPECT_EQ(parse_pairs("[('staff', 'positive'), ('pizza'", s, true), std::nullopt);  // cut off
  EXPECT_EQ(parse_pairs("[staff: positive]", s, true), std::nullopt);
  // greedy to the last ']' of the first line with brackets: two lists on a line do not read as one literal
  EXPECT_EQ(parse_pairs("[('staff', 'positive')] and [('pizza', 'negative')]", s, true), std::nullopt);
}

TEST(SentimentParsers, ClauseIdsAndPairs) {
  EXPECT_EQ(*parse_clause_ids("The cause clauses are 3 and 5.", 6), (std::vector<int>{3, 5}));
  EXPECT_EQ(*parse_clause_ids("9, 2, 2", 6), (std::vector<int>{2}));  // out of range dropped, deduplicated
  EXPECT_EQ(parse_clause_ids("none of them", 6), std::nullopt);
  EXPECT_EQ(*parse_clause_pairs("[(7, 9), (7,8)]", 9), (std::vector<std::pair<int, int>>{{7, 8}, {7, 9}}));
  EXPECT_EQ(*parse_clause_pairs("Pairs: [[2, 1]]", 3), (std::vector<std::pair<int, int>>{{2, 1}}));
  EXPECT_EQ(parse_clause_pairs("clause 7 causes clause 9", 9), std::nullopt);
  EXPECT_EQ(parse_clause_pairs("(a, b)", 9), std::nullopt);
}

TEST(SentimentMetrics, AccuracyAndMacroF1ByHand) {
  // gold: p p n n u ; pred: p n n "" p
  // positive: TP 1, FP 1 (u->p), FN 1 (p->n) -> F1 = 2/(2+1+1) = 0.5
  // negative: TP 1, FP 1, FN 1 ("" ) -> 0.5 ; neutral: TP 0, FN 1 -> 0
  auto s = metrics::classification_scores({"positive", "positive", "negative", "negative", "neutral"},
                                          {"positive", "negative", "negative", "", "positive"});
  EXPECT_EQ(s.correct, 2);
  EXPECT_EQ(s.unparsed, 1);
  EXPECT_DOUBLE_EQ(s.accuracy, 0.4);
  EXPECT_DOUBLE_EQ(s.macro_f1, (0.5 + 0.5 + 0.0) / 3);
  EXPECT_NE(error_of([] { metrics::classification_scores({"a"}, {}); }).find("1 gold labels, 0 predictions"),
            std::string::npos);
}

TEST(SentimentMetrics, MicroPrfByHand) {
  // instance 1: gold {a, b}, pred {a, c, a} -> TP 1; instance 2: gold {d}, pred {} ; instance 3: gold {},
  // pred {e}
  auto s = metrics::micro_prf({{"a", "b"}, {"d"}, {}}, {{"a", "c", "a"}, {}, {"e"}});
  EXPECT_EQ(s.tp, 1);
  EXPECT_EQ(s.predicted, 3);
  EXPECT_EQ(s.gold, 3);
  EXPECT_DOUBLE_EQ(s.precision, 1.0 / 3);
  EXPECT_DOUBLE_EQ(s.recall, 1.0 / 3);
  EXPECT_DOUBLE_EQ(s.f1, 1.0 / 3);
  auto none = metrics::micro_prf({{"a"}}, {{}});
  EXPECT_EQ(none.f1, 0.0);
  auto p = metrics::micro_prf({{"a", "b", "c", "d"}}, {{"a", "b"}});  // P 1, R 0.5 -> F1 2/3
  EXPECT_DOUBLE_EQ(p.f1, 2.0 / 3);
}

}  // namespace
}  // namespace nabla::test
