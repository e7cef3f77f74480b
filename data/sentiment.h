// Readers and sampling for the files of the sentiment study ("Is ChatGPT a Good Sentiment Analyzer?",
// ../shared/data/sentiment, whose README.md describes every format) and the study's grid of
// setting x task x dataset.
//
// Formats read (one record a line unless said; "####" separates text and label; labels are Python
// literals, read by parse_py_literal, never eval'd):
//   SST-2          `text ####1`  (1 positive, 0 negative)           read_sst2
//   SST-2 GLUE TSV `sentence<TAB>label` with a header               read_sst2_tsv (data/glue_tsv.h)
//   ABSC           `text####['aspect', 'polarity']` or the nested single pair `text####[['a', 'p']]`
//                  (standard, polarity-shift *_neg/*_spec, open-domain)  read_absc
//   E2E-ABSA       `text####[['a1', 'p1'], ['a2', 'p2']]`, or the flat single pair (open_domain 14twitter)
//                                                                    read_e2e_absa
//   ECE            CSV clause rows `doc,clause,emotion_word,relative_position,yes|no,clause text`,
//                  grouped into documents (the emotion clause is the one at relative position 0; clause
//                  numbers are positions in the document, 1-based: ECE_test's document 65 starts at id 2)
//                  read_ece
//   ECPE           blocks: `doc_id n` / ` (e, c), (e, c)` / n rows `id,emotion|null,word|null,text` read_ecpe
// CRLF line endings are accepted. A malformed line throws nabla::Error naming the file, the line number and
// what was expected ("test.txt:17: no '####' separator").
//
// Every example gets an id that is stable across runs: `<line>` (1-based) for line formats, the document id
// for ECE/ECPE. Sampling (sample_dataset) follows what the study's shipped subsets show (checked against
// them in tests/sentiment):
//   first_per_class  the first N of each class in file order, kept in file order (SST-2 100 = 50/50;
//                    standard ABSC 14res = 66/17/17, 14lap = 54/20/26 positive/negative/neutral)
//   py_sample        Python's random.seed(s); random.sample(lines, n) (open-domain E2E-ABSA; the seeds
//                    that reproduce the shipped 20_/30_test files differ by domain: 29, 33 or 153)
//   py_per_class     random.seed(s); random.sample(class lines, quota) for positive, negative, neutral in
//                    that order, then sorted by line (open-domain ABSC, seed 29, 10/7/3 of 20, 15/10/5 of 30;
//                    50 = 25/17/8 is ours, a class short of its quota gives all it has, positive the rest)
//   shipped          the lines of a shipped subset file located in the full file (standard E2E-ABSA
//                    100_test.txt, whose sampler we could not recover)
//   all              everything (ECE test = 100 documents; ECPE test = 90)
// Python's generator is reproduced exactly (MT19937 seeded by init_by_array, _randbelow by getrandbits).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace nabla::data {

// ---- Python literals (labels) ---------------------------------------------------------------------------

// A string, or a list/tuple of values.
struct PyValue {
  bool is_string = false;
  std::string str;
  std::vector<PyValue> items;
};
// Parses a Python literal made of lists, tuples and single- or double-quoted strings (backslash escapes).
// Throws Error("...: <what> at offset <k>") when `text` is anything else or has trailing characters.
PyValue parse_py_literal(const std::string& text);
// Aspect-polarity pairs from a literal: ['a', 'p'] (one pair) or [['a', 'p'], ('b', 'q'), ...]. Throws
// when the shape is different.
std::vector<std::pair<std::string, std::string>> py_pairs(const PyValue& v);

// ---- examples -------------------------------------------------------------------------------------------

enum class SentimentTask { sc, absc, e2e_absa, ece, ecpe };
const char* task_name(SentimentTask t);  // "SC", "ABSC", "E2E-ABSA", "ECE", "ECPE"
SentimentTask parse_task(const std::string& name);

struct SentimentExample {
  std::string id{};      // line number (1-based) or document id
  std::string text{};    // sentence (SC, ABSC, E2E-ABSA); clauses joined by " " (ECE, ECPE)
  std::string label{};   // SC/ABSC: positive | negative | neutral
  std::string aspect{};  // ABSC
  std::vector<std::pair<std::string, std::string>> pairs{};  // E2E-ABSA gold (aspect, polarity)
  std::vector<std::string> clauses{};                        // ECE/ECPE, clause k is clauses[k - 1]
  std::string emotion_word{};                                // ECE
  int emotion_clause = 0;                                    // ECE: 1-based
  std::vector<int> causes{};                                 // ECE: 1-based cause clauses
  std::vector<std::pair<int, int>> clause_pairs{};           // ECPE gold (emotion clause, cause clause)
};

std::vector<SentimentExample> read_sst2(const std::string& path);
std::vector<SentimentExample> read_sst2_tsv(const std::string& path);
std::vector<SentimentExample> read_absc(const std::string& path);
std::vector<SentimentExample> read_e2e_absa(const std::string& path);
std::vector<SentimentExample> read_ece(const std::string& path);
std::vector<SentimentExample> read_ecpe(const std::string& path);
// By task (SC picks read_sst2_tsv for a .tsv file).
std::vector<SentimentExample> read_sentiment_file(SentimentTask task, const std::string& path);

// ---- Python's random, for the study's sampling ------------------------------------------------------------

class PyRandom {
 public:
  explicit PyRandom(uint32_t seed);  // random.seed(seed) for a non-negative int below 2^32
  uint32_t next_u32();               // genrand_uint32
  uint64_t getrandbits(int k);       // k in [1, 32]
  uint64_t randbelow(uint64_t n);    // random._randbelow
  // random.sample(range(n), k): indices in the order Python returns them.
  std::vector<int64_t> sample(int64_t n, int64_t k);

 private:
  uint32_t mt_[624];
  int index_ = 624;
};

// ---- the study's grid -----------------------------------------------------------------------------------

struct SamplingRule {
  enum Kind { all, first_per_class, py_sample, py_per_class, shipped } kind = all;
  int64_t n = 0;                            // py_sample
  uint32_t seed = 29;                       // py_sample, py_per_class
  std::map<std::string, int64_t> quotas{};  // first_per_class, py_per_class (label -> count)
  std::string shipped_file{};               // shipped: path relative to the data root
};

struct StudyDataset {
  std::string setting;  // standard | polarity-shift | open-domain | sentiment-inference
  SentimentTask task;
  std::string name;        // sst2, 14res-neg, books, ...
  std::string test_file;   // relative to the data root
  std::string train_file;  // the source-domain training data (BERT; few-shot demonstrations); may be ""
  std::string dev_file;    // may be ""
  SamplingRule sampling;
  std::string key() const;  // "setting/TASK/name"
};

struct StudyGridOptions {
  int64_t open_absc_n = 50;  // the study: 50 per domain (its shipped files hold 20 and 30)
  int64_t open_e2e_n = 30;
  int64_t shift_n = 100;
};
// The study's datasets (v1: standard, polarity shift, open domain, sentiment inference).
std::vector<StudyDataset> study_grid(const StudyGridOptions& options = {});

// Picks the instances of `rule` from `examples` (read from `root`/test_file); returns indices into
// `examples`. Throws when a quota cannot be met, naming the class, the quota and what the file holds.
std::vector<int64_t> sample_dataset(const SamplingRule& rule, const std::vector<SentimentExample>& examples,
                                    const std::string& root);

// Sampled ids, one dataset a line: `key<TAB>id,id,...`. read_sample_ids throws naming file and line.
void write_sample_ids(const std::string& path, const std::map<std::string, std::vector<std::string>>& ids);
std::map<std::string, std::vector<std::string>> read_sample_ids(const std::string& path);

// The data root: $NABLA_SENTIMENT_DATA, else the first of ../shared/data/sentiment, shared/data/sentiment and
// /work/shared/data/sentiment that exists.
std::string default_sentiment_root();

}  // namespace nabla::data
