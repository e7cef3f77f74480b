// Prompts, demonstrations and answer parsers of the sentiment study (see sentiment_prompts.h).
#include "data/sentiment_prompts.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "engine/error.h"

namespace nabla::data {
namespace {

// The study's few-shot instructions, verbatim from prompts.md (tests/sentiment checks them against the file).
constexpr const char* kFewShotPrefix =
    "I want you to act as an annotator for the Aspect-Based Sentiment Analysis task. I will provide you with "
    "a customer review, and you will understand it, extract the aspect terms and predict the corresponding "
    "sentiment polarity in this review. Make sure that the aspect terms are present in the review. I want "
    "you to only predict the results without giving extra text or explanations. Here are some examples: ";
constexpr const char* k14Res3 =
    "Review: But the staff was so horrible to us. Label: [('staff', 'negative')] Review: Best of all is the "
    "warm vibe , the owner is super friendly and service is fast . Label: [['vibe', 'positive'], ['owner', "
    "'positive'], ['service', 'positive']] Review: Nevertheless the food itself is pretty good . Label: "
    "[('food', 'positive')] My first review is '{sent}'";
constexpr const char* k14Res5 =
    "Review: But the staff was so horrible to us. Label: [('staff', 'negative')] Review: Best of all is the "
    "warm vibe , the owner is super friendly and service is fast . Label: [['vibe', 'positive'], ['owner', "
    "'positive'], ['service', 'positive']] Review: Nevertheless the food itself is pretty good . Label: "
    "[('food', 'positive')] Review: Faan 's got a great concept but a little rough on the delivery .Label: "
    "[['delivery', 'negative']] Review: The fried rice is amazing here . Label: [['fried rice', 'positive']] "
    "My first review is '{sent}'";
constexpr const char* k14Lap3 =
    "Review:  It 's just as fast with one program open as it is with sixteen open . Label: [('program', "
    "'neutral')] Review: I charge it at night and skip taking the cord with me because of the good battery "
    "life .  Label: [('battery life', 'positive')] Review: I can barely use any usb devices because they "
    "will not stay connected properly . Label: [('usb devices', 'negative')] My first review is '{sent}'\"";
constexpr const char* k14Lap5 =
    "Review:  It 's just as fast with one program open as it is with sixteen open . Label: [('program', "
    "'neutral')] Review: I charge it at night and skip taking the cord with me because of the good battery "
    "life .  Label: [('battery life', 'positive')]        Review: I can barely use any usb devices because "
    "they will not stay connected properly . Label: [('usb devices', 'negative')] Review: -- No backlit "
    "keyboard , but not an issue for me . Label: [['keyboard', 'positive']] Review: Another thing I might "
    "add is the battery life is excellent . Label: [['battery life', 'positive']] My first review is "
    "'{sent}'";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

std::string numbered_clauses(const SentimentExample& e) {
  std::string s;
  for (size_t k = 0; k < e.clauses.size(); ++k) s += str_cat(k ? "\n" : "", k + 1, ". ", e.clauses[k]);
  return s;
}

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Integers in `s`, in order.
std::vector<int> integers(const std::string& s) {
  std::vector<int> out;
  for (size_t i = 0; i < s.size();) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    out.push_back(j - i > 6 ? -1 : std::stoi(s.substr(i, j - i)));
    i = j;
  }
  return out;
}

}  // namespace

std::string to_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

int num_zero_shot_prompts(SentimentTask task) {
  return task == SentimentTask::ece || task == SentimentTask::ecpe ? 1 : 3;
}

std::string zero_shot_prompt(SentimentTask task, const SentimentExample& e, int index) {
  NABLA_CHECK(index >= 0 && index < num_zero_shot_prompts(task), "sentiment prompt: index ", index, " for ",
              task_name(task), ", expected 0..", num_zero_shot_prompts(task) - 1);
  const std::string& s = e.text;
  switch (task) {
    case SentimentTask::sc: {
      const char* p[] = {
          "Given this text, what is the sentiment conveyed? Is it positive or negative? Text: ",
          "Can you analyze the sentiment of this statement and classify it as positive or negative? "
          "Statement: ",
          "Using sentiment analysis, determine whether the overall tone of this text is positive or "
          "negative. Text: "};
      return p[index] + s;
    }
    case SentimentTask::absc:
      if (index == 0)
        return "Sentence: " + s + " What is the sentiment polarity of the aspect " + e.aspect +
               " in this sentence?";
      if (index == 1)
        return "Review: " + s + " Could you predict the sentiment polarity of the aspect " + e.aspect +
               " in this review/text?";
      return "Statement: " + s +
             " In this statement/sentence, what is the sentiment polarity of the aspect " + e.aspect + "?";
    case SentimentTask::e2e_absa: {
      const char* p[] = {
          "Given a sentence or text, extract the aspect term(s) and determine their corresponding "
          "sentiment polarity. Text: ",
          "Identify the aspect term(s) and sentiment polarity in a product review or feedback. Review: ",
          "Analyze the aspect term(s) and sentiment polarity in a social media post or tweet related to "
          "a topic or subject. Post: "};
      return p[index] + s;
    }
    case SentimentTask::ece:
      return str_cat(
          "The following Chinese document is split into numbered clauses. Clause ", e.emotion_clause,
          " expresses the emotion '", e.emotion_word,
          "'. Which clauses are the causes of this emotion? Answer with the clause numbers only.\n",
          numbered_clauses(e));
    case SentimentTask::ecpe:
      return str_cat(
          "The following Chinese document is split into numbered clauses. Find every emotion-cause "
          "pair: a clause that expresses an emotion and a clause that causes it. Answer with a list of "
          "(emotion clause number, cause clause number) pairs, such as [(3, 2)].\n",
          numbered_clauses(e));
  }
  return "";
}

std::string gold_answer(SentimentTask task, const SentimentExample& e) {
  switch (task) {
    case SentimentTask::sc:
    case SentimentTask::absc:
      return e.label;
    case SentimentTask::e2e_absa: {
      std::string s = "[";
      for (size_t i = 0; i < e.pairs.size(); ++i) {
        const std::string& a = e.pairs[i].first;
        const char q = a.find('\'') != std::string::npos ? '"' : '\'';
        s += str_cat(i ? ", " : "", "(", q, a, q, ", '", e.pairs[i].second, "')");
      }
      return s + "]";
    }
    case SentimentTask::ece: {
      std::string s;
      for (size_t i = 0; i < e.causes.size(); ++i) s += str_cat(i ? ", " : "", e.causes[i]);
      return s;
    }
    case SentimentTask::ecpe: {
      std::string s = "[";
      for (size_t i = 0; i < e.clause_pairs.size(); ++i)
        s += str_cat(i ? ", " : "", "(", e.clause_pairs[i].first, ", ", e.clause_pairs[i].second, ")");
      return s + "]";
    }
  }
  return "";
}

std::string study_few_shot_prompt(const std::string& dataset, int shots, const std::string& sentence) {
  const char* body = nullptr;
  if (dataset == "14res") body = shots == 3 ? k14Res3 : shots == 5 ? k14Res5 : nullptr;
  if (dataset == "14lap") body = shots == 3 ? k14Lap3 : shots == 5 ? k14Lap5 : nullptr;
  if (!body) return "";
  return replace_all(std::string(kFewShotPrefix) + body, "{sent}", sentence);
}

std::vector<ChatMessage> build_messages(SentimentTask task, const std::string& dataset,
                                        const SentimentExample& e, int shots,
                                        const std::vector<SentimentExample>& demos, int prompt_index) {
  NABLA_CHECK(shots >= 0, "build_messages: shots ", shots, ", expected >= 0");
  if (shots > 0 && task == SentimentTask::e2e_absa) {
    std::string p = study_few_shot_prompt(dataset, shots, e.text);
    if (!p.empty()) return {{"user", p}};
  }
  std::vector<ChatMessage> m;
  if (shots > 0) {
    NABLA_CHECK(static_cast<int>(demos.size()) >= shots, "build_messages: ", shots, "-shot needs ", shots,
                " demonstrations, got ", demos.size());
    for (int k = 0; k < shots; ++k) {
      m.push_back({"user", zero_shot_prompt(task, demos[k], prompt_index)});
      m.push_back({"assistant", gold_answer(task, demos[k])});
    }
  }
  m.push_back({"user", zero_shot_prompt(task, e, prompt_index)});
  return m;
}

std::vector<SentimentExample> pick_demos(const std::vector<SentimentExample>& train, int k, uint32_t seed) {
  PyRandom r(seed);
  std::vector<SentimentExample> out;
  for (int64_t i : r.sample(static_cast<int64_t>(train.size()), std::min<int64_t>(k, train.size())))
    out.push_back(train[i]);
  return out;
}

std::optional<std::string> parse_label(const std::string& answer, const std::vector<std::string>& allowed) {
  const std::string a = to_lower(answer);
  size_t best = std::string::npos;
  std::string label;
  for (const std::string& w : allowed) {
    for (size_t p = a.find(w); p != std::string::npos; p = a.find(w, p + 1)) {
      const bool start = p == 0 || !is_word_char(a[p - 1]);
      const bool end = p + w.size() >= a.size() || !is_word_char(a[p + w.size()]);
      if (start && end) {
        if (p < best) best = p, label = w;
        break;
      }
    }
  }
  if (best == std::string::npos) return std::nullopt;
  return label;
}

std::optional<std::vector<std::pair<std::string, std::string>>> parse_pairs(const std::string& answer,
                                                                            const std::string& sentence,
                                                                            bool filter_absent) {
  // re.search(r"[[](.*)[]]", answer): the first line holding a '[' with a ']' after it; greedy to the last
  // ']'.
  std::string found;
  size_t line_start = 0;
  while (line_start <= answer.size()) {
    size_t line_end = answer.find('\n', line_start);
    if (line_end == std::string::npos) line_end = answer.size();
    const std::string line = answer.substr(line_start, line_end - line_start);
    const size_t open = line.find('['), close = line.rfind(']');
    if (open != std::string::npos && close != std::string::npos && close > open) {
      found = line.substr(open, close - open + 1);
      break;
    }
    line_start = line_end + 1;
  }
  if (found.empty()) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> pairs;
  try {
    const PyValue v = parse_py_literal(found);
    if (!v.is_string && v.items.empty()) return pairs;  // "[]": no aspect
    pairs = py_pairs(v);
  } catch (const Error&) {
    return std::nullopt;
  }
  const std::string lower_sentence = to_lower(sentence);
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [a, p] : pairs) {
    std::string la = to_lower(a), lp = to_lower(p);
    if (filter_absent && lower_sentence.find(la) == std::string::npos) continue;
    out.push_back({std::move(la), std::move(lp)});
  }
  return out;
}

std::optional<std::vector<int>> parse_clause_ids(const std::string& answer, int n) {
  std::set<int> ids;
  bool any = false;
  for (int v : integers(answer)) {
    any = true;
    if (v >= 1 && v <= n) ids.insert(v);
  }
  if (!any) return std::nullopt;
  return std::vector<int>(ids.begin(), ids.end());
}

std::optional<std::vector<std::pair<int, int>>> parse_clause_pairs(const std::string& answer, int n) {
  std::set<std::pair<int, int>> pairs;
  bool any = false;
  for (size_t i = 0; i < answer.size(); ++i) {
    const char open = answer[i];
    if (open != '(' && open != '[') continue;
    const char close = open == '(' ? ')' : ']';
    const size_t end = answer.find(close, i + 1);
    if (end == std::string::npos) break;
    const std::string inner = answer.substr(i + 1, end - i - 1);
    if (inner.find_first_of("([") != std::string::npos) continue;  // an outer list: look inside
    const std::vector<int> v = integers(inner);
    const size_t comma = inner.find(',');
    if (v.size() == 2 && comma != std::string::npos &&
        inner.find_first_not_of("0123456789, \t") == std::string::npos) {
      any = true;
      if (v[0] >= 1 && v[0] <= n && v[1] >= 1 && v[1] <= n) pairs.insert({v[0], v[1]});
    }
  }
  if (!any) return std::nullopt;
  return std::vector<std::pair<int, int>>(pairs.begin(), pairs.end());
}

}  // namespace nabla::data
