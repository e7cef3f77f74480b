// Criteo text rows (data/criteo.h): the streaming reader (zlib's gzread, which also reads plain files), the
// field parser with its error messages, the Kaggle-format writer, vocabularies and the preprocessing.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "data/criteo.h"
#include "engine/error.h"

namespace nabla::data::criteo {

const std::array<int64_t, kNumSparse> kKaggleTableSizes = {
    1460, 583,   10131227, 2202608, 305,  24,   12517, 633,     3,  93145, 5683,   8351593, 3194,
    27,   14992, 5461306,  10,      5652, 2173, 4,     7046547, 18, 15,    286181, 105,     142572};

namespace {

constexpr size_t kReadChunk = 1 << 20;
constexpr size_t kMaxLine = 1 << 20;

bool ends_with(const std::string& s, const char* tail) {
  size_t n = std::strlen(tail);
  return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
}

std::string field_name(int field, bool has_label) {
  int k = has_label ? field - 1 : field;  // 0: label, 1..13: I, 14..39: C
  if (has_label && field == 1) return "label";
  if (k <= kNumDense) return str_cat('I', k);
  return str_cat('C', k - kNumDense);
}

std::string shown(std::string_view v) {
  if (v.size() <= 24) return str_cat('\'', v, '\'');
  return str_cat('\'', v.substr(0, 24), "...'");
}

// Integers; DeepCTR's CSV writes them as floats with a zero fraction ("260.0"), which is accepted.
bool parse_int(std::string_view v, int64_t& out, std::string& err) {
  size_t i = 0;
  bool neg = false;
  if (i < v.size() && (v[i] == '-' || v[i] == '+')) neg = v[i++] == '-';
  size_t digits_start = i;
  uint64_t mag = 0;
  constexpr uint64_t kLimit = uint64_t{1} << 63;  // |int64 min|
  for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) {
    uint64_t d = static_cast<uint64_t>(v[i] - '0');
    if (mag > (kLimit - d) / 10) {
      err = shown(v) + " overflows a 64-bit integer";
      return false;
    }
    mag = mag * 10 + d;
  }
  bool any = i > digits_start;
  if (i < v.size() && v[i] == '.') {
    for (++i; i < v.size() && v[i] == '0'; ++i) any = true;
  }
  if (!any || i != v.size()) {
    err = shown(v) + " is not an integer";
    return false;
  }
  if (!neg && mag == kLimit) {
    err = shown(v) + " overflows a 64-bit integer";
    return false;
  }
  out = neg ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
  return true;
}

bool parse_hex(std::string_view v, uint64_t& out, std::string& err) {
  uint64_t x = 0;
  for (char c : v) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else {
      err = shown(v) + " is not hexadecimal";
      return false;
    }
    x = (x << 4) | static_cast<uint64_t>(d);
  }
  if (v.size() > 16) {
    err = shown(v) + " has " + std::to_string(v.size()) + " hex digits, at most 16 fit in 64 bits";
    return false;
  }
  out = x;
  return true;
}

std::string gz_error_text(gzFile gz, const std::string& path, int* code) {
  std::string msg = gzerror(gz, code);
  if (msg.rfind(path + ": ", 0) == 0) msg.erase(0, path.size() + 2);
  return msg;
}

}  // namespace

TextOptions text_options_for(const std::string& path) {
  TextOptions o;
  if (ends_with(path, ".csv") || ends_with(path, ".csv.gz")) {
    o.delimiter = ',';
    o.header = true;
    return o;
  }
  // Otherwise the first line decides: a "label,I1,..." header means DeepCTR's CSV (whatever the name).
  gzFile gz = gzopen(path.c_str(), "rb");
  if (gz == nullptr) return o;  // the reader reports the missing file
  char first[16] = {0};
  int got = gzread(gz, first, sizeof first - 1);
  gzclose(gz);
  if (got > 0 && std::strncmp(first, "label,", 6) == 0) {
    o.delimiter = ',';
    o.header = true;
  }
  return o;
}

std::string parse_row(std::string_view line, const TextOptions& options, RawRow& row) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const int expected = kNumDense + kNumSparse + (options.has_label ? 1 : 0);
  std::array<std::string_view, kNumDense + kNumSparse + 1> fields;
  int n = 0;
  size_t start = 0;
  for (;;) {
    size_t at = line.find(options.delimiter, start);
    std::string_view f =
        line.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start);
    if (n < expected) fields[n] = f;
    ++n;
    if (at == std::string_view::npos) break;
    start = at + 1;
  }
  if (n != expected) {
    return str_cat("expected ", expected, " fields (", options.has_label ? "label, " : "",
                   "13 integer, 26 categorical) separated by '",
                   options.delimiter == '\t' ? "\\t" : std::string(1, options.delimiter), "', got ", n);
  }
  std::string err;
  int k = 0;
  for (int f = 0; f < expected; ++f) {
    std::string_view v = fields[f];
    auto fail_field = [&](const std::string& what) {
      return str_cat("field ", f + 1, " (", field_name(f + 1, options.has_label), "): ", what);
    };
    if (v.size() > static_cast<size_t>(kMaxFieldChars))
      return fail_field(str_cat(v.size(), " characters, at most ", kMaxFieldChars, " expected"));
    if (options.has_label && f == 0) {
      int64_t label = 0;
      if (v.empty() || !parse_int(v, label, err) || (label != 0 && label != 1))
        return fail_field(str_cat("label ", shown(v), ", expected 0 or 1"));
      row.label = static_cast<int>(label);
      continue;
    }
    if (k < kNumDense) {
      row.dense_missing[k] = v.empty();
      row.dense[k] = 0;
      if (!v.empty() && !parse_int(v, row.dense[k], err)) return fail_field(err);
    } else {
      int c = k - kNumDense;
      row.sparse_missing[c] = v.empty();
      row.sparse[c] = 0;
      if (!v.empty() && !parse_hex(v, row.sparse[c], err)) return fail_field(err);
    }
    ++k;
  }
  if (!options.has_label) row.label = 0;
  return "";
}

TextReader::TextReader(std::string path, TextOptions options) : path_(std::move(path)), options_(options) {
  std::error_code ec;
  NABLA_CHECK(std::filesystem::exists(path_, ec), "criteo: ", path_, ": no such file");
  NABLA_CHECK(!std::filesystem::is_directory(path_, ec), "criteo: ", path_,
              ": is a directory, expected a file");
  gzFile gz = gzopen(path_.c_str(), "rb");
  NABLA_CHECK(gz != nullptr, "criteo: ", path_, ": cannot open: ", std::strerror(errno));
  gzbuffer(gz, 1 << 17);
  gz_ = gz;
  buf_.resize(kReadChunk);
}

TextReader::~TextReader() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

bool TextReader::read_line(std::string_view& line) {
  carry_.clear();
  for (;;) {
    const char* b = buf_.data() + begin_;
    const void* nl = std::memchr(b, '\n', end_ - begin_);
    if (nl) {
      size_t len = static_cast<const char*>(nl) - b;
      if (carry_.empty()) {
        line = std::string_view(b, len);
      } else {
        carry_.append(b, len);
        line = carry_;
      }
      begin_ += len + 1;
      ++line_;
      return true;
    }
    carry_.append(b, end_ - begin_);
    begin_ = end_ = 0;
    NABLA_CHECK(carry_.size() <= kMaxLine, "criteo: ", path_, ":", line_ + 1, ": line longer than ", kMaxLine,
                " bytes; this is not a Criteo text file");
    if (eof_) {
      if (carry_.empty()) return false;
      line = carry_;  // a last line without '\n'
      ++line_;
      return true;
    }
    gzFile gz = static_cast<gzFile>(gz_);
    int got = gzread(gz, buf_.data(), static_cast<unsigned>(buf_.size()));
    int code = Z_OK;
    if (got < 0)
      fail("criteo: ", path_, ":", line_ + 1, ": corrupt gzip data (", gz_error_text(gz, path_, &code), ")");
    if (got == 0) {
      std::string msg = gz_error_text(gz, path_, &code);
      NABLA_CHECK(code == Z_OK || code == Z_STREAM_END, "criteo: ", path_, ":", line_ + 1,
                  ": truncated or corrupt gzip data (", msg, ")");
      eof_ = true;
    }
    end_ = static_cast<size_t>(got);
  }
}

bool TextReader::next(RawRow& row) {
  std::string_view line;
  for (;;) {
    if (!read_line(line)) return false;
    if (options_.header && line_ == 1) continue;
    std::string err = parse_row(line, options_, row);
    if (err.empty()) {
      ++rows_;
      return true;
    }
    std::string msg = str_cat("criteo: ", path_, ":", line_, ": ", err);
    if (!options_.skip_bad_rows) fail(msg);
    if (bad_rows_++ == 0) first_bad_ = msg;
  }
}

// ---- writer -----------------------------------------------------------------------------------------
TextWriter::TextWriter(const std::string& path, bool has_label) : path_(path), has_label_(has_label) {
  gzFile gz = gzopen(path.c_str(), ends_with(path, ".gz") ? "wb6" : "wbT");
  NABLA_CHECK(gz != nullptr, "criteo: ", path, ": cannot open for writing");
  gz_ = gz;
}

TextWriter::~TextWriter() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

void TextWriter::write(const RawRow& row) {
  line_.clear();
  if (has_label_) line_ += row.label ? "1\t" : "0\t";
  char tmp[32];
  for (int j = 0; j < kNumDense; ++j) {
    if (!row.dense_missing[j]) line_ += std::to_string(row.dense[j]);
    line_ += '\t';
  }
  for (int c = 0; c < kNumSparse; ++c) {
    if (!row.sparse_missing[c]) {
      std::snprintf(tmp, sizeof tmp, "%08llx", static_cast<unsigned long long>(row.sparse[c]));
      line_ += tmp;
    }
    line_ += c + 1 < kNumSparse ? '\t' : '\n';
  }
  int wrote = gzwrite(static_cast<gzFile>(gz_), line_.data(), static_cast<unsigned>(line_.size()));
  NABLA_CHECK(wrote == static_cast<int>(line_.size()), "criteo: ", path_, ": write failed");
}

void TextWriter::close() {
  if (!gz_) return;
  int rc = gzclose(static_cast<gzFile>(gz_));
  gz_ = nullptr;
  NABLA_CHECK(rc == Z_OK, "criteo: ", path_, ": write failed on close");
}

// ---- preprocessing ----------------------------------------------------------------------------------
float dense_transform(int64_t x, bool missing) {
  if (missing || x <= 0) return 0.0f;
  return static_cast<float>(std::log1p(static_cast<double>(x)));
}

void Vocabulary::count(const RawRow& row) {
  for (int c = 0; c < kNumSparse; ++c)
    if (!row.sparse_missing[c]) ++counts_[c][row.sparse[c]];
}

void Vocabulary::finish(int64_t min_frequency) {
  NABLA_CHECK(min_frequency >= 1, "criteo vocabulary: min_frequency must be >= 1, got ", min_frequency);
  ids_.assign(kNumSparse, {});
  for (int c = 0; c < kNumSparse; ++c) {
    std::vector<uint64_t> kept;
    for (const auto& [value, n] : counts_[c])
      if (n >= min_frequency) kept.push_back(value);
    std::sort(kept.begin(), kept.end());
    NABLA_CHECK(kept.size() < static_cast<size_t>(INT32_MAX), "criteo vocabulary: feature C", c + 1,
                " keeps ", kept.size(), " values, more than int32 ids can hold");
    ids_[c].reserve(kept.size());
    for (size_t i = 0; i < kept.size(); ++i) ids_[c].emplace(kept[i], static_cast<int32_t>(i + 1));
    counts_[c] = {};
  }
}

Vocabulary Vocabulary::build(const std::vector<std::string>& paths, int64_t min_frequency,
                             const TextOptions* options) {
  Vocabulary v;
  RawRow row;
  for (const auto& p : paths) {
    TextReader r(p, options ? *options : text_options_for(p));
    while (r.next(row)) v.count(row);
  }
  v.finish(min_frequency);
  return v;
}

int32_t Vocabulary::id(int feature, uint64_t value, bool missing) const {
  NABLA_CHECK(!ids_.empty(), "criteo vocabulary: finish() was not called");
  if (missing) return 0;
  auto it = ids_[feature].find(value);
  return it == ids_[feature].end() ? 0 : it->second;
}

std::vector<int64_t> Vocabulary::table_sizes() const {
  std::vector<int64_t> s;
  for (const auto& m : ids_) s.push_back(static_cast<int64_t>(m.size()) + 1);
  return s;
}

Preprocessor Preprocessor::hashing(std::vector<int64_t> sizes) {
  NABLA_CHECK(sizes.size() == 1 || sizes.size() == kNumSparse,
              "criteo: hashing needs 1 or 26 table sizes, got ", sizes.size());
  if (sizes.size() == 1) sizes.assign(kNumSparse, sizes[0]);
  for (size_t c = 0; c < sizes.size(); ++c)
    NABLA_CHECK(sizes[c] >= 1 && sizes[c] <= INT32_MAX, "criteo: table size of C", c + 1, " must be in [1, ",
                INT32_MAX, "], got ", sizes[c]);
  Preprocessor p;
  p.table_sizes = std::move(sizes);
  return p;
}

Preprocessor Preprocessor::with_vocabulary(std::shared_ptr<const Vocabulary> v) {
  Preprocessor p;
  p.table_sizes = v->table_sizes();
  p.vocabulary = std::move(v);
  return p;
}

std::vector<int64_t> Preprocessor::sizes() const { return table_sizes; }

EncodedRow Preprocessor::encode(const RawRow& row) const {
  EncodedRow e;
  e.label = static_cast<uint8_t>(row.label);
  for (int j = 0; j < kNumDense; ++j) e.dense[j] = dense_transform(row.dense[j], row.dense_missing[j]);
  for (int c = 0; c < kNumSparse; ++c) {
    if (vocabulary)
      e.sparse[c] = vocabulary->id(c, row.sparse[c], row.sparse_missing[c]);
    else
      e.sparse[c] = static_cast<int32_t>((row.sparse_missing[c] ? 0 : row.sparse[c]) %
                                         static_cast<uint64_t>(table_sizes[c]));
  }
  return e;
}

}  // namespace nabla::data::criteo
