// BIO tags, their WordPiece alignment and the tagged-sentence TSV (token_tagging.h).
#include "data/token_tagging.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/error.h"

namespace nabla::data {

std::vector<TagSpan> bio_spans(const std::vector<std::string>& tags) {
  std::vector<TagSpan> spans;
  bool open = false;
  for (size_t i = 0; i < tags.size(); ++i) {
    const std::string& t = tags[i];
    if (t == "O") {
      open = false;
      continue;
    }
    NABLA_CHECK(t.size() > 2 && (t[0] == 'B' || t[0] == 'I') && t[1] == '-', "tag '", t, "' at word ", i,
                ": expected O, B-<type> or I-<type>");
    const std::string type = t.substr(2);
    if (t[0] == 'I' && open && spans.back().type == type) {
      spans.back().end = static_cast<int64_t>(i) + 1;
      continue;
    }
    spans.push_back({static_cast<int64_t>(i), static_cast<int64_t>(i) + 1, type});
    open = true;
  }
  return spans;
}

std::vector<std::string> bio_tags(int64_t n, const std::vector<TagSpan>& spans) {
  std::vector<std::string> tags(static_cast<size_t>(n), "O");
  for (const TagSpan& s : spans) {
    NABLA_CHECK(s.begin >= 0 && s.begin < s.end && s.end <= n, "span [", s.begin, ", ", s.end, ") of type '",
                s.type, "': expected 0 <= begin < end <= ", n);
    for (int64_t i = s.begin; i < s.end; ++i) {
      NABLA_CHECK(tags[static_cast<size_t>(i)] == "O", "span [", s.begin, ", ", s.end, ") of type '", s.type,
                  "' overlaps another at word ", i);
      tags[static_cast<size_t>(i)] = (i == s.begin ? "B-" : "I-") + s.type;
    }
  }
  return tags;
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (i < text.size()) {
    while (i < text.size() && space(text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !space(text[j])) ++j;
    if (j > i) words.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return words;
}

TaggedEncoding encode_tagged_words(const BertTokenizer& tok, const std::vector<std::string>& words,
                                   const std::vector<int64_t>& word_labels, int64_t max_length) {
  NABLA_CHECK(max_length >= 3, "encode_tagged_words: max_length ", max_length, ", expected at least 3");
  NABLA_CHECK(word_labels.empty() || word_labels.size() == words.size(),
              "encode_tagged_words: ", word_labels.size(), " labels for ", words.size(), " words");
  TaggedEncoding e;
  e.input_ids.push_back(tok.cls_id());
  e.labels.push_back(-100);
  e.first_piece.assign(words.size(), -1);
  for (size_t w = 0; w < words.size(); ++w) {
    const std::vector<int32_t> ids = tok.encode_ids(words[w]);
    if (ids.empty()) continue;
    if (static_cast<int64_t>(e.input_ids.size() + ids.size()) > max_length - 1) break;  // cut here
    e.first_piece[w] = static_cast<int64_t>(e.input_ids.size());
    for (size_t k = 0; k < ids.size(); ++k) {
      e.input_ids.push_back(ids[k]);
      e.labels.push_back(k == 0 && !word_labels.empty() ? word_labels[w] : -100);
    }
  }
  e.input_ids.push_back(tok.sep_id());
  e.labels.push_back(-100);
  e.attention_mask.assign(e.input_ids.size(), 1);
  e.input_ids.resize(static_cast<size_t>(max_length), tok.pad_id());
  e.attention_mask.resize(static_cast<size_t>(max_length), 0);
  e.labels.resize(static_cast<size_t>(max_length), -100);
  return e;
}

std::vector<int64_t> word_labels_from_pieces(const std::vector<int64_t>& first_piece,
                                             const std::vector<int64_t>& piece_labels, int64_t fallback) {
  std::vector<int64_t> out;
  for (int64_t p : first_piece) {
    NABLA_CHECK(p < static_cast<int64_t>(piece_labels.size()), "word_labels_from_pieces: piece ", p, " of ",
                piece_labels.size());
    out.push_back(p < 0 ? fallback : piece_labels[static_cast<size_t>(p)]);
  }
  return out;
}

TaggedSentences read_tagging_tsv(const std::string& path, const std::string& words_column,
                                 const std::string& tags_column) {
  std::ifstream f(path);
  NABLA_CHECK(f, "cannot open ", path, " (a tagged-sentence TSV)");
  auto fields = [](const std::string& line) {
    std::vector<std::string> v;
    std::stringstream in(line);
    for (std::string x; std::getline(in, x, '\t');) v.push_back(x);
    return v;
  };
  std::string line;
  NABLA_CHECK(std::getline(f, line), path, ": empty, expected a header naming '", words_column, "' and '",
              tags_column, "'");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const std::vector<std::string> header = fields(line);
  const auto wi = std::find(header.begin(), header.end(), words_column) - header.begin();
  const auto ti = std::find(header.begin(), header.end(), tags_column) - header.begin();
  NABLA_CHECK(wi < static_cast<long>(header.size()) && ti < static_cast<long>(header.size()), path,
              ":1: header '", line, "' lacks the column '",
              wi < static_cast<long>(header.size()) ? tags_column : words_column, "'");
  TaggedSentences s;
  for (int64_t no = 2; std::getline(f, line); ++no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::vector<std::string> v = fields(line);
    NABLA_CHECK(static_cast<long>(v.size()) > std::max(wi, ti), path, ":", no, ": ", v.size(),
                " fields, expected ", header.size());
    std::vector<std::string> words = split_words(v[static_cast<size_t>(wi)]),
                             tags = split_words(v[static_cast<size_t>(ti)]);
    NABLA_CHECK(words.size() == tags.size(), path, ":", no, ": ", words.size(), " words but ", tags.size(),
                " tags");
    try {
      bio_spans(tags);
    } catch (const Error& e) {
      fail(path, ":", no, ": ", e.what());
    }
    s.words.push_back(std::move(words));
    s.tags.push_back(std::move(tags));
  }
  return s;
}

std::vector<std::string> tag_label_set(const TaggedSentences& s) {
  std::set<std::string> seen;
  for (const auto& t : s.tags) seen.insert(t.begin(), t.end());
  seen.erase("O");
  std::vector<std::string> out = {"O"};
  out.insert(out.end(), seen.begin(), seen.end());
  return out;
}

}  // namespace nabla::data
