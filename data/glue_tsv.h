// GLUE-style TSV files for sentence and sentence-pair tasks (SST-2, CoLA, MRPC, QQP, STS-B, MNLI, ...):
// a header line naming the columns, then one example per line, fields separated by tabs.
//
//   sentence<TAB>label                    SST-2 (../shared/data/sentiment/standard/SST2/glue/)
//   sentence1<TAB>sentence2<TAB>label     a pair task (columns picked by name)
//
// Columns are chosen by header name: text_a (required), text_b (optional: "" for single sentences) and
// label. Labels are class indices 0..C-1 (classification) or real numbers (regression, num_labels 1,
// STS-B). A file without a label column (GLUE's test files) reads with label "" and labels all 0.
// Errors name the file, the line and what was expected: "dev.tsv:17: 2 fields, expected at least 3
// (header: sentence1, sentence2, label)", "train.tsv:5: label 'positive' is not an integer class index".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nabla::data {

struct GlueTsvOptions {
  std::string text_a = "sentence";
  std::string text_b;  // "" : single sentences
  std::string label = "label";
  bool regression = false;  // labels are real numbers
};

struct GlueExamples {
  std::vector<std::string> text_a, text_b;  // text_b empty for single-sentence tasks
  std::vector<int64_t> labels;              // classification
  std::vector<double> targets;              // regression
  int64_t num_classes = 0;                  // classification: max label + 1
  int64_t size() const { return static_cast<int64_t>(text_a.size()); }
};

GlueExamples read_glue_tsv(const std::string& path, const GlueTsvOptions& options = {});

}  // namespace nabla::data
