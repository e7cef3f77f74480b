// Readers, Python-compatible sampling and the study grid of the sentiment study (see sentiment.h).
#include "data/sentiment.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "data/glue_tsv.h"
#include "engine/error.h"

namespace nabla::data {
namespace {

// ---- the literal parser ---------------------------------------------------------------------------------

struct LiteralParser {
  const std::string& s;
  size_t at = 0;

  [[noreturn]] void error(const std::string& what) const {
    fail("python literal: ", what, " at offset ", at, " of '", s.substr(0, 200), "'");
  }
  void skip_ws() {
    while (at < s.size() && (s[at] == ' ' || s[at] == '\t' || s[at] == '\n' || s[at] == '\r')) ++at;
  }
  PyValue value() {
    skip_ws();
    if (at >= s.size()) error("unexpected end, expected a string, list or tuple");
    const char c = s[at];
    if (c == '\'' || c == '"') return string_value(c);
    if (c == '[' || c == '(') return sequence(c == '[' ? ']' : ')');
    error(str_cat("unexpected character '", c, "', expected a string, list or tuple"));
  }
  PyValue string_value(char quote) {
    PyValue v;
    v.is_string = true;
    ++at;
    while (at < s.size() && s[at] != quote) {
      if (s[at] == '\\' && at + 1 < s.size()) {
        const char e = s[at + 1];
        v.str += e == 'n' ? '\n' : e == 't' ? '\t' : e;
        at += 2;
        continue;
      }
      v.str += s[at++];
    }
    if (at >= s.size()) error(str_cat("unterminated string (", quote, ")"));
    ++at;
    return v;
  }
  PyValue sequence(char close) {
    PyValue v;
    ++at;
    skip_ws();
    if (at < s.size() && s[at] == close) {
      ++at;
      return v;
    }
    for (;;) {
      v.items.push_back(value());
      skip_ws();
      if (at < s.size() && s[at] == ',') {
        ++at;
        skip_ws();
        if (at < s.size() && s[at] == close) {  // trailing comma
          ++at;
          return v;
        }
        continue;
      }
      if (at < s.size() && s[at] == close) {
        ++at;
        return v;
      }
      error(str_cat("expected ',' or '", close, "'"));
    }
  }
};

// ---- line files -----------------------------------------------------------------------------------------

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  NABLA_CHECK(f, "sentiment: cannot open ", path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

std::string where(const std::string& path, size_t line) {
  return str_cat(std::filesystem::path(path).filename().string(), ":", line, ": ");
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// Splits `text####label`; exactly one separator.
std::pair<std::string, std::string> split_hashes(const std::string& line, const std::string& at) {
  const size_t p = line.find("####");
  NABLA_CHECK(p != std::string::npos, at, "no '####' separator (expected text####label), got '",
              line.substr(0, 120), "'");
  NABLA_CHECK(line.find("####", p + 4) == std::string::npos, at, "more than one '####' separator");
  return {line.substr(0, p), line.substr(p + 4)};
}

std::string check_polarity(const std::string& p, const std::string& at) {
  NABLA_CHECK(p == "positive" || p == "negative" || p == "neutral", at, "polarity '", p,
              "', expected positive, negative or neutral");
  return p;
}

int to_int(const std::string& s, const std::string& at, const char* what) {
  const std::string t = trim(s);
  int v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  NABLA_CHECK(ec == std::errc() && end == t.data() + t.size() && !t.empty(), at, what, " '", s,
              "' is not an integer");
  return v;
}

// The first `n` comma-separated fields; the rest of the line is the last field.
std::vector<std::string> split_fields(const std::string& line, size_t n, const std::string& at,
                                      const char* expected) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i + 1 < n; ++i) {
    const size_t c = line.find(',', start);
    NABLA_CHECK(c != std::string::npos, at, out.size() + 1, " field(s), expected ", n, " (", expected, ")");
    out.push_back(line.substr(start, c - start));
    start = c + 1;
  }
  out.push_back(line.substr(start));
  return out;
}

}  // namespace

PyValue parse_py_literal(const std::string& text) {
  LiteralParser p{text};
  PyValue v = p.value();
  p.skip_ws();
  if (p.at != text.size()) p.error("trailing characters");
  return v;
}

std::vector<std::pair<std::string, std::string>> py_pairs(const PyValue& v) {
  auto pair_of = [](const PyValue& p) {
    NABLA_CHECK(!p.is_string && p.items.size() == 2 && p.items[0].is_string && p.items[1].is_string,
                "expected an (aspect, polarity) pair of two strings");
    return std::make_pair(p.items[0].str, p.items[1].str);
  };
  NABLA_CHECK(!v.is_string, "expected a list of (aspect, polarity) pairs, got the string '", v.str, "'");
  if (v.items.size() == 2 && v.items[0].is_string && v.items[1].is_string) return {pair_of(v)};
  std::vector<std::pair<std::string, std::string>> out;
  for (const PyValue& p : v.items) out.push_back(pair_of(p));
  return out;
}

const char* task_name(SentimentTask t) {
  switch (t) {
    case SentimentTask::sc:
      return "SC";
    case SentimentTask::absc:
      return "ABSC";
    case SentimentTask::e2e_absa:
      return "E2E-ABSA";
    case SentimentTask::ece:
      return "ECE";
    case SentimentTask::ecpe:
      return "ECPE";
  }
  return "?";
}

SentimentTask parse_task(const std::string& name) {
  for (SentimentTask t : {SentimentTask::sc, SentimentTask::absc, SentimentTask::e2e_absa, SentimentTask::ece,
                          SentimentTask::ecpe})
    if (name == task_name(t)) return t;
  fail("sentiment: task '", name, "', expected SC, ABSC, E2E-ABSA, ECE or ECPE");
}

std::vector<SentimentExample> read_sst2(const std::string& path) {
  std::vector<SentimentExample> out;
  const auto lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const std::string at = where(path, i + 1);
    auto [text, label] = split_hashes(lines[i], at);
    label = trim(label);
    NABLA_CHECK(label == "0" || label == "1", at, "label '", label, "', expected 0 or 1 (text ####label)");
    out.push_back(
        {.id = std::to_string(i + 1), .text = trim(text), .label = label == "1" ? "positive" : "negative"});
  }
  return out;
}

std::vector<SentimentExample> read_sst2_tsv(const std::string& path) {
  const GlueExamples g = read_glue_tsv(path);
  std::vector<SentimentExample> out;
  for (int64_t i = 0; i < g.size(); ++i) {
    NABLA_CHECK(g.labels[i] == 0 || g.labels[i] == 1, where(path, i + 2), "label ", g.labels[i],
                ", expected 0 or 1");
    out.push_back({.id = std::to_string(i + 2),
                   .text = trim(g.text_a[i]),
                   .label = g.labels[i] == 1 ? "positive" : "negative"});
  }
  return out;
}

std::vector<SentimentExample> read_absc(const std::string& path) {
  std::vector<SentimentExample> out;
  const auto lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const std::string at = where(path, i + 1);
    auto [text, label] = split_hashes(lines[i], at);
    std::vector<std::pair<std::string, std::string>> pairs;
    try {
      pairs = py_pairs(parse_py_literal(label));
    } catch (const Error& e) {
      fail(at, e.what(), " (expected ['aspect', 'polarity'])");
    }
    NABLA_CHECK(pairs.size() == 1, at, pairs.size(), " aspect-polarity pairs, expected 1 for ABSC");
    out.push_back({.id = std::to_string(i + 1),
                   .text = trim(text),
                   .label = check_polarity(pairs[0].second, at),
                   .aspect = pairs[0].first});
  }
  return out;
}

std::vector<SentimentExample> read_e2e_absa(const std::string& path) {
  std::vector<SentimentExample> out;
  const auto lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const std::string at = where(path, i + 1);
    auto [text, label] = split_hashes(lines[i], at);
    SentimentExample e{.id = std::to_string(i + 1), .text = trim(text)};
    try {
      e.pairs = py_pairs(parse_py_literal(label));
    } catch (const Error& err) {
      fail(at, err.what(), " (expected [['aspect', 'polarity'], ...])");
    }
    for (auto& p : e.pairs) check_polarity(p.second, at);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<SentimentExample> read_ece(const std::string& path) {
  std::vector<SentimentExample> out;
  const auto lines = read_lines(path);
  int last_clause = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const std::string at = where(path, i + 1);
    auto f = split_fields(lines[i], 6, at, "doc_id,clause_id,emotion_word,relative_position,yes|no,text");
    const int doc = to_int(f[0], at, "doc_id"), clause = to_int(f[1], at, "clause_id");
    const int rel = to_int(f[3], at, "relative_position");
    NABLA_CHECK(f[4] == "yes" || f[4] == "no", at, "is_cause '", f[4], "', expected yes or no");
    if (out.empty() || out.back().id != std::to_string(doc)) {
      out.push_back({.id = std::to_string(doc), .emotion_word = f[2]});
      last_clause = 0;
    }
    SentimentExample& d = out.back();
    // Clause ids rise within a document (ECE_test's document 65 starts at clause 2: positions are used).
    NABLA_CHECK(clause > last_clause, at, "clause ", clause, " of document ", doc,
                ", expected a clause after ", last_clause);
    last_clause = clause;
    d.clauses.push_back(trim(f[5]));
    const int position = static_cast<int>(d.clauses.size());
    if (rel == 0 && d.emotion_clause == 0) d.emotion_clause = position;
    if (f[4] == "yes") d.causes.push_back(position);
  }
  for (auto& d : out) {
    NABLA_CHECK(d.emotion_clause > 0, path, ": document ", d.id,
                " has no emotion clause (relative position 0)");
    for (size_t k = 0; k < d.clauses.size(); ++k) d.text += (k ? " " : "") + d.clauses[k];
  }
  return out;
}

std::vector<SentimentExample> read_ecpe(const std::string& path) {
  std::vector<SentimentExample> out;
  const auto lines = read_lines(path);
  size_t i = 0;
  while (i < lines.size()) {
    if (trim(lines[i]).empty()) {
      ++i;
      continue;
    }
    std::string at = where(path, i + 1);
    std::istringstream header(lines[i]);
    std::string doc, count_s, extra;
    header >> doc >> count_s;
    NABLA_CHECK(!doc.empty() && !count_s.empty() && !(header >> extra), at, "header '", lines[i],
                "', expected 'doc_id n_clauses'");
    to_int(doc, at, "doc_id");
    const int n = to_int(count_s, at, "n_clauses");
    NABLA_CHECK(n > 0, at, "n_clauses ", n, ", expected >= 1");
    SentimentExample d{.id = doc};
    NABLA_CHECK(i + 1 < lines.size(), at, "document ", doc, " has no pair line");
    at = where(path, i + 2);
    // The pair line: " (5,3),(5,4)"
    const std::string& pl = lines[i + 1];
    size_t p = 0;
    for (;;) {
      p = pl.find_first_not_of(" ,", p);
      if (p == std::string::npos) break;
      NABLA_CHECK(pl[p] == '(', at, "pair line '", pl, "', expected (emotion, cause), ...");
      const size_t close = pl.find(')', p);
      NABLA_CHECK(close != std::string::npos, at, "pair line '", pl, "': unclosed '('");
      const std::string inner = pl.substr(p + 1, close - p - 1);
      const size_t comma = inner.find(',');
      NABLA_CHECK(comma != std::string::npos, at, "pair '(", inner, ")', expected (emotion, cause)");
      const int e = to_int(inner.substr(0, comma), at, "emotion clause"),
                c = to_int(inner.substr(comma + 1), at, "cause clause");
      NABLA_CHECK(e >= 1 && e <= n && c >= 1 && c <= n, at, "pair (", e, ",", c, ") outside clauses 1..", n);
      d.clause_pairs.push_back({e, c});
      p = close + 1;
    }
    NABLA_CHECK(!d.clause_pairs.empty(), at, "document ", doc, " has no (emotion, cause) pair");
    NABLA_CHECK(i + 2 + n <= lines.size(), where(path, lines.size()), "document ", doc, " needs ", n,
                " clause rows, the file ends first");
    for (int k = 0; k < n; ++k) {
      at = where(path, i + 3 + k);
      auto f = split_fields(lines[i + 2 + k], 4, at, "clause_id,emotion|null,word|null,text");
      NABLA_CHECK(to_int(f[0], at, "clause_id") == k + 1, at, "clause id '", f[0], "', expected ", k + 1);
      d.clauses.push_back(trim(f[3]));
    }
    for (size_t k = 0; k < d.clauses.size(); ++k) d.text += (k ? " " : "") + d.clauses[k];
    out.push_back(std::move(d));
    i += 2 + n;
  }
  return out;
}

std::vector<SentimentExample> read_sentiment_file(SentimentTask task, const std::string& path) {
  switch (task) {
    case SentimentTask::sc:
      return path.ends_with(".tsv") ? read_sst2_tsv(path) : read_sst2(path);
    case SentimentTask::absc:
      return read_absc(path);
    case SentimentTask::e2e_absa:
      return read_e2e_absa(path);
    case SentimentTask::ece:
      return read_ece(path);
    case SentimentTask::ecpe:
      return read_ecpe(path);
  }
  fail("sentiment: unknown task");
}

// ---- Python's random ------------------------------------------------------------------------------------

PyRandom::PyRandom(uint32_t seed) {
  // init_genrand(19650218) then init_by_array({seed}), as CPython's random_seed does for a small int.
  mt_[0] = 19650218u;
  for (int i = 1; i < 624; ++i)
    mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  const uint32_t key[1] = {seed};
  const int key_length = 1;
  int i = 1, j = 0;
  for (int k = 624; k; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525u)) + key[j] + static_cast<uint32_t>(j);
    ++i, ++j;
    if (i >= 624) mt_[0] = mt_[623], i = 1;
    if (j >= key_length) j = 0;
  }
  for (int k = 623; k; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941u)) - static_cast<uint32_t>(i);
    ++i;
    if (i >= 624) mt_[0] = mt_[623], i = 1;
  }
  mt_[0] = 0x80000000u;
  index_ = 624;
}

uint32_t PyRandom::next_u32() {
  if (index_ >= 624) {
    for (int k = 0; k < 624; ++k) {
      const uint32_t y = (mt_[k] & 0x80000000u) | (mt_[(k + 1) % 624] & 0x7fffffffu);
      mt_[k] = mt_[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    index_ = 0;
  }
  uint32_t y = mt_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t PyRandom::getrandbits(int k) {
  NABLA_CHECK(k >= 1 && k <= 32, "PyRandom::getrandbits: k = ", k, ", expected 1..32");
  return next_u32() >> (32 - k);
}

uint64_t PyRandom::randbelow(uint64_t n) {
  NABLA_CHECK(n >= 1 && n <= 0xffffffffu, "PyRandom::randbelow: n = ", n, ", expected 1..2^32-1");
  int k = 0;
  while ((n >> k) != 0) ++k;  // n.bit_length()
  uint64_t r = getrandbits(k);
  while (r >= n) r = getrandbits(k);
  return r;
}

std::vector<int64_t> PyRandom::sample(int64_t n, int64_t k) {
  NABLA_CHECK(k >= 0 && k <= n, "random.sample: sample of ", k, " larger than the population of ", n);
  std::vector<int64_t> result(static_cast<size_t>(k));
  // CPython 3.11's choice between a pool and a set of selected indices.
  int64_t setsize = 21;
  if (k > 5) {
    int64_t p = 1, e = 0;
    const double target = std::log(static_cast<double>(k) * 3) / std::log(4.0);
    while (e < target) ++e;  // ceil(log(k * 3, 4))
    for (int64_t t = 0; t < e; ++t) p *= 4;
    setsize += p;
  }
  if (n <= setsize) {
    std::vector<int64_t> pool(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pool[i] = i;
    for (int64_t i = 0; i < k; ++i) {
      const int64_t j = static_cast<int64_t>(randbelow(static_cast<uint64_t>(n - i)));
      result[i] = pool[j];
      pool[j] = pool[n - i - 1];
    }
  } else {
    std::set<int64_t> selected;
    for (int64_t i = 0; i < k; ++i) {
      int64_t j = static_cast<int64_t>(randbelow(static_cast<uint64_t>(n)));
      while (selected.count(j)) j = static_cast<int64_t>(randbelow(static_cast<uint64_t>(n)));
      selected.insert(j);
      result[i] = j;
    }
  }
  return result;
}

// ---- the grid -------------------------------------------------------------------------------------------

std::string StudyDataset::key() const { return setting + "/" + task_name(task) + "/" + name; }

namespace {

// Per-class quotas of an open-domain ABSC sample: the study's 50/33/17 % (10/7/3 of 20, 15/10/5 of 30), or
// 75/25 % for the two-class domains (hotel, device: 15/5, 23/7).
std::map<std::string, int64_t> open_quotas(int64_t n, bool three_classes) {
  if (!three_classes) {
    const int64_t neg = n / 4;
    return {{"positive", n - neg}, {"negative", neg}};
  }
  if (n == 20) return {{"positive", 10}, {"negative", 7}, {"neutral", 3}};
  const int64_t pos = n / 2, neu = n / 6;
  return {{"positive", pos}, {"negative", n - pos - neu}, {"neutral", neu}};
}

// The seeds that reproduce the shipped open-domain E2E-ABSA 20_/30_test.txt with random.sample (found by
// search over 0..999; the study's sample.py used 29 for books, other seeds elsewhere).
uint32_t open_e2e_seed(const std::string& domain, int64_t n) {
  if (domain == "books") return 29;
  if (domain == "clothing") return n == 20 ? 153 : 33;
  if (domain == "14res" || domain == "14lap" || domain == "14twitter") return 153;
  return 33;  // hotel, device, financial, mets-cov, service
}

}  // namespace

std::vector<StudyDataset> study_grid(const StudyGridOptions& o) {
  using T = SentimentTask;
  std::vector<StudyDataset> g;
  auto first = [](std::map<std::string, int64_t> q) {
    return SamplingRule{.kind = SamplingRule::first_per_class, .quotas = std::move(q)};
  };
  auto py = [](int64_t n, uint32_t seed) {
    return SamplingRule{.kind = SamplingRule::py_sample, .n = n, .seed = seed};
  };
  const std::string sst_train = "standard/SST2/glue/train.tsv", sst_dev = "standard/SST2/glue/dev.tsv";
  g.push_back({"standard", T::sc, "sst2", "standard/SST2/dev.txt", sst_train, sst_dev,
               first({{"positive", 50}, {"negative", 50}})});
  g.push_back({"standard", T::absc, "14res", "standard/ABSC/14res/test.txt", "standard/ABSC/14res/train.txt",
               "standard/ABSC/14res/dev.txt", first({{"positive", 66}, {"negative", 17}, {"neutral", 17}})});
  g.push_back({"standard", T::absc, "14lap", "standard/ABSC/14lap/test.txt", "standard/ABSC/14lap/train.txt",
               "standard/ABSC/14lap/dev.txt", first({{"positive", 54}, {"negative", 20}, {"neutral", 26}})});
  for (const char* d : {"14res", "14lap"})
    g.push_back({"standard", T::e2e_absa, d, str_cat("standard/ASPE/", d, "/test.txt"),
                 str_cat("standard/ASPE/", d, "/train.txt"), str_cat("standard/ASPE/", d, "/dev.txt"),
                 SamplingRule{.kind = SamplingRule::shipped,
                              .shipped_file = str_cat("standard/ASPE/", d, "/100_test.txt")}});
  // Polarity shift: 100 per set (the study gives no seed: ours is 29, its open-domain seed); sst2_spec
  // has 88.
  for (const char* s : {"neg", "spec"})
    g.push_back({"polarity-shift", T::sc, str_cat("sst2-", s),
                 str_cat("polarity_shift/SST2/sst2_", s, ".txt"), sst_train, sst_dev, py(o.shift_n, 29)});
  for (const char* d : {"14res", "14lap"})
    for (const char* s : {"neg", "spec"})
      g.push_back({"polarity-shift", T::absc, str_cat(d, "-", s),
                   str_cat("polarity_shift/ABSC/", d, "/test_", s, ".txt"),
                   str_cat("standard/ABSC/", d, "/train.txt"), str_cat("standard/ABSC/", d, "/dev.txt"),
                   py(o.shift_n, 29)});
  const std::vector<std::string> domains = {"14lap",  "14res",     "14twitter", "books",    "clothing",
                                            "device", "financial", "hotel",     "mets-cov", "service"};
  for (const auto& d : domains) {
    const bool three = d != "hotel" && d != "device";
    // Source domain for BERT: the standard 14res training set (the study trains on the standard set).
    g.push_back(
        {"open-domain", T::absc, d, "open_domain/ABSC/" + d + "/test.txt", "standard/ABSC/14res/train.txt",
         "standard/ABSC/14res/dev.txt",
         SamplingRule{
             .kind = SamplingRule::py_per_class, .seed = 29, .quotas = open_quotas(o.open_absc_n, three)}});
  }
  for (const auto& d : domains)
    g.push_back({"open-domain", T::e2e_absa, d, "open_domain/ASPE/" + d + "/test.txt",
                 "standard/ASPE/14res/train.txt", "standard/ASPE/14res/dev.txt",
                 py(o.open_e2e_n, open_e2e_seed(d, o.open_e2e_n))});
  g.push_back({"sentiment-inference",
               T::ece,
               "ece",
               "sentiment_inference/ECE/ECE_test.txt",
               "sentiment_inference/ECE/ECE_train.txt",
               "sentiment_inference/ECE/ECE_valid.txt",
               {}});
  g.push_back({"sentiment-inference",
               T::ecpe,
               "ecpe",
               "sentiment_inference/ECPE/ECPE_test.txt",
               "sentiment_inference/ECPE/ECPE_train.txt",
               "sentiment_inference/ECPE/ECPE_valid.txt",
               {}});
  return g;
}

std::vector<int64_t> sample_dataset(const SamplingRule& rule, const std::vector<SentimentExample>& examples,
                                    const std::string& root) {
  const int64_t n = static_cast<int64_t>(examples.size());
  std::vector<int64_t> out;
  switch (rule.kind) {
    case SamplingRule::all:
      for (int64_t i = 0; i < n; ++i) out.push_back(i);
      return out;
    case SamplingRule::first_per_class: {
      std::map<std::string, int64_t> taken;
      for (int64_t i = 0; i < n; ++i) {
        auto q = rule.quotas.find(examples[i].label);
        if (q != rule.quotas.end() && taken[q->first] < q->second) ++taken[q->first], out.push_back(i);
      }
      for (const auto& [label, quota] : rule.quotas)
        NABLA_CHECK(taken[label] == quota, "sampling: ", quota, " '", label,
                    "' instances wanted, the file has ", taken[label]);
      return out;
    }
    case SamplingRule::py_sample: {
      PyRandom r(rule.seed);
      return r.sample(n, std::min(rule.n, n));
    }
    case SamplingRule::py_per_class: {
      PyRandom r(rule.seed);
      std::map<std::string, std::vector<int64_t>> of_class;
      for (int64_t i = 0; i < n; ++i) of_class[examples[i].label].push_back(i);
      // A class with fewer instances than its quota gives them all and its shortfall goes to positive (our
      // rule for sizes the study did not ship, e.g. 8 neutral of 50 where clothing has 7).
      std::map<std::string, int64_t> quotas = rule.quotas;
      for (auto& [label, q] : quotas) {
        const int64_t have = static_cast<int64_t>(of_class[label].size());
        if (label != "positive" && q > have && quotas.count("positive"))
          quotas["positive"] += q - have, q = have;
      }
      for (const char* label : {"positive", "negative", "neutral"}) {
        auto q = quotas.find(label);
        if (q == quotas.end()) continue;
        const auto& pool = of_class[label];
        NABLA_CHECK(static_cast<int64_t>(pool.size()) >= q->second, "sampling: ", q->second, " '", label,
                    "' instances wanted, the file has ", pool.size());
        for (int64_t j : r.sample(static_cast<int64_t>(pool.size()), q->second)) out.push_back(pool[j]);
      }
      std::sort(out.begin(), out.end());
      return out;
    }
    case SamplingRule::shipped: {
      const std::string path = root + "/" + rule.shipped_file;
      const auto lines = read_lines(path);
      // A line's identity: its text and its labels (an ABSC sentence appears once per aspect).
      auto identity = [](const SentimentExample& e) {
        std::string k = e.text + "\x1f" + e.label;
        if (!e.aspect.empty()) k += "\x1f" + e.aspect + "\x1e" + e.label;
        for (const auto& [a, p] : e.pairs) k += "\x1f" + a + "\x1e" + p;
        return k;
      };
      std::map<std::string, std::vector<int64_t>> by_text;
      for (int64_t i = 0; i < n; ++i) by_text[identity(examples[i])].push_back(i);
      std::set<int64_t> used;
      for (size_t k = 0; k < lines.size(); ++k) {
        if (lines[k].empty()) continue;
        const std::string at = where(path, k + 1);
        auto [text, label] = split_hashes(lines[k], at);
        SentimentExample e{.text = trim(text)};
        label = trim(label);
        if (label == "0" || label == "1") {
          e.label = label == "1" ? "positive" : "negative";
        } else if (!examples.empty() && !examples[0].aspect.empty()) {
          auto pairs = py_pairs(parse_py_literal(label));
          NABLA_CHECK(pairs.size() == 1, at, "expected one aspect-polarity pair");
          e.aspect = pairs[0].first, e.label = pairs[0].second;
        } else {
          e.pairs = py_pairs(parse_py_literal(label));
        }
        auto it = by_text.find(identity(e));
        NABLA_CHECK(it != by_text.end(), at, "instance not found in the full test file");
        int64_t pick = -1;
        for (int64_t i : it->second)
          if (!used.count(i)) {
            pick = i;
            break;
          }
        NABLA_CHECK(pick >= 0, at, "instance appears more often than in the full test file");
        used.insert(pick);
        out.push_back(pick);
      }
      return out;
    }
  }
  return out;
}

void write_sample_ids(const std::string& path, const std::map<std::string, std::vector<std::string>>& ids) {
  std::ofstream f(path);
  NABLA_CHECK(f, "write_sample_ids: cannot write ", path);
  for (const auto& [key, list] : ids) {
    f << key << '\t';
    for (size_t i = 0; i < list.size(); ++i) f << (i ? "," : "") << list[i];
    f << '\n';
  }
  NABLA_CHECK(f.good(), "write_sample_ids: writing ", path, " failed");
}

std::map<std::string, std::vector<std::string>> read_sample_ids(const std::string& path) {
  std::map<std::string, std::vector<std::string>> out;
  const auto lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const size_t tab = lines[i].find('\t');
    NABLA_CHECK(tab != std::string::npos && tab > 0, where(path, i + 1), "expected key<TAB>id,id,...");
    std::vector<std::string> ids;
    std::stringstream in(lines[i].substr(tab + 1));
    std::string id;
    while (std::getline(in, id, ',')) {
      NABLA_CHECK(!id.empty(), where(path, i + 1), "an empty id");
      ids.push_back(id);
    }
    NABLA_CHECK(!out.count(lines[i].substr(0, tab)), where(path, i + 1), "key '", lines[i].substr(0, tab),
                "' given twice");
    out[lines[i].substr(0, tab)] = std::move(ids);
  }
  return out;
}

std::string default_sentiment_root() {
  if (const char* env = std::getenv("NABLA_SENTIMENT_DATA"); env && *env) return env;
  for (const char* p : {"../shared/data/sentiment", "shared/data/sentiment", "/work/shared/data/sentiment"})
    if (std::filesystem::exists(p)) return p;
  return "../shared/data/sentiment";
}

}  // namespace nabla::data
