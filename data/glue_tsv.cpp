// GLUE-style TSV reading (see glue_tsv.h).
#include "data/glue_tsv.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>

#include "engine/error.h"

namespace nabla::data {
namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return out;
}

std::string trim(std::string s) {
  const char* ws = " \r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

}  // namespace

GlueExamples read_glue_tsv(const std::string& path, const GlueTsvOptions& o) {
  std::ifstream in(path);
  NABLA_CHECK(in, "GLUE TSV: cannot open ", path);
  std::string line;
  NABLA_CHECK(static_cast<bool>(std::getline(in, line)), path, ": empty file, expected a header line");
  std::vector<std::string> header = split_tabs(line);
  for (auto& h : header) h = trim(h);
  auto column = [&](const std::string& name, bool required) -> int64_t {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<int64_t>(i);
    NABLA_CHECK(!required, path, ":1: no column '", name, "' in the header (columns: ", join(header), ")");
    return -1;
  };
  const int64_t ca = column(o.text_a, true);
  const int64_t cb = o.text_b.empty() ? -1 : column(o.text_b, true);
  const int64_t cl = column(o.label, false);
  const size_t need = static_cast<size_t>(std::max({ca, cb, cl}) + 1);
  GlueExamples ex;
  int64_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<std::string> f = split_tabs(line);
    NABLA_CHECK(f.size() >= need, path, ":", line_no, ": ", f.size(), " field(s), expected at least ", need,
                " (header: ", join(header), ")");
    ex.text_a.push_back(trim(f[static_cast<size_t>(ca)]));
    if (cb >= 0) ex.text_b.push_back(trim(f[static_cast<size_t>(cb)]));
    const std::string label = cl >= 0 ? trim(f[static_cast<size_t>(cl)]) : std::string("0");
    const char* b = label.data();
    const char* e = b + label.size();
    if (o.regression) {
      double v = 0;
      auto [p, err] = std::from_chars(b, e, v);
      NABLA_CHECK(err == std::errc() && p == e && std::isfinite(v), path, ":", line_no, ": label '", label,
                  "' is not a finite number (regression)");
      ex.targets.push_back(v);
    } else {
      int64_t v = 0;
      auto [p, err] = std::from_chars(b, e, v);
      NABLA_CHECK(err == std::errc() && p == e && v >= 0 && v < (int64_t{1} << 20), path, ":", line_no,
                  ": label '", label, "' is not an integer class index (expected 0, 1, ...)");
      ex.labels.push_back(v);
      ex.num_classes = std::max(ex.num_classes, v + 1);
    }
  }
  NABLA_CHECK(!in.bad(), "GLUE TSV: error reading ", path);
  NABLA_CHECK(ex.size() > 0, path, ": no example after the header");
  return ex;
}

}  // namespace nabla::data
