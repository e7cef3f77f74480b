// Criteo click logs for DLRM: the text reader, the reference's preprocessing, a compact memory-mapped binary
// format and a batch loader (docs/dlrm.md has the formats and the commands).
//
// Text rows (Criteo Kaggle train.txt, the 1TB day_0..day_23 files, gzip or not; test.txt without a label):
//   label \t I1..I13 \t C1..C26         label 0/1, I = integers (may be negative), C = hex (8 chars usually),
//                                       an empty field is a missing value
// and DeepCTR's CSV sample (`label,I1..I13,C1..C26` header, commas, integers written as "260.0").
// Files are streamed line by line through zlib's gzread (it reads plain files as they are); nothing holds a
// whole file. A bad row (wrong field count, a non-integer or non-hex field, a field over 64 characters, an
// integer past int64) throws "criteo: FILE:LINE: field N (NAME): what was expected, what came", or with
// skip_bad_rows is skipped and counted.
//
// Preprocessing, as facebookresearch/dlrm does it:
//   dense[j]  = log(max(I_j, 0) + 1)                       (missing -> 0, so log 1 = 0)
//   hashing   : sparse[f] = hexvalue(C_f) mod table_size[f]  (missing -> value 0 -> id 0; "the hash" is the
//               identity on the hex value, as the reference's --max-ind-range)
//   vocabulary: one counting pass; values seen >= min_frequency times get ids 1..V_f in ascending hex
//               order; id 0 is the shared bucket of missing, rare and unseen values; table size V_f + 1.
//
// Binary file (little-endian; header layout in docs/dlrm.md): "NBCRITEO", version 1, row count, 13, 26, the
// table sizes, the rows per day, section offsets and an FNV-1a-64 checksum of everything after the header;
// then labels u8 [N], dense f32 [N, 13], sparse i32 [N, 26], each section starting on a 64-byte boundary.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/loader.h"
#include "engine/tensor.h"

namespace nabla::data::criteo {

constexpr int kNumDense = 13;
constexpr int kNumSparse = 26;
constexpr int kMaxFieldChars = 64;

// The reference's Kaggle vocabulary sizes (dlrm's counts per table, all values kept).
extern const std::array<int64_t, kNumSparse> kKaggleTableSizes;

// ---- text -----------------------------------------------------------------------------------------
struct TextOptions {
  char delimiter = '\t';
  bool has_label = true;       // false for Kaggle's test.txt (label reads as 0)
  bool header = false;         // the first line names the columns and is skipped
  bool skip_bad_rows = false;  // count and skip bad rows instead of throwing
};
// Tab-separated, no header; commas and a header line (DeepCTR's CSV) for a name ending in .csv or .csv.gz
// or a file whose first line starts with "label,".
TextOptions text_options_for(const std::string& path);

struct RawRow {
  int label = 0;
  std::array<int64_t, kNumDense> dense{};  // 0 where missing
  std::array<bool, kNumDense> dense_missing{};
  std::array<uint64_t, kNumSparse> sparse{};  // hex value, 0 where missing
  std::array<bool, kNumSparse> sparse_missing{};
};

// Streams rows from one file. next() returns false at the end of the file.
class TextReader {
 public:
  TextReader(std::string path, TextOptions options);
  ~TextReader();
  TextReader(const TextReader&) = delete;
  TextReader& operator=(const TextReader&) = delete;

  bool next(RawRow& row);
  int64_t line() const { return line_; }  // 1-based number of the last line read
  int64_t rows() const { return rows_; }  // good rows returned so far
  int64_t bad_rows() const { return bad_rows_; }
  const std::string& path() const { return path_; }
  // The message of the first skipped row ("" when none).
  const std::string& first_bad_row() const { return first_bad_; }

 private:
  bool read_line(std::string_view& line);

  std::string path_;
  TextOptions options_;
  void* gz_ = nullptr;
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
  std::string carry_;
  int64_t line_ = 0, rows_ = 0, bad_rows_ = 0;
  std::string first_bad_;
};

// Parses one line into `row`; returns "" or the error ("field 15 (C2): ..."), without file and line.
std::string parse_row(std::string_view line, const TextOptions& options, RawRow& row);

// Writes rows in the Kaggle text format (tab-separated; gzip when the name ends .gz), for tests and tools.
class TextWriter {
 public:
  explicit TextWriter(const std::string& path, bool has_label = true);
  ~TextWriter();
  void write(const RawRow& row);
  void close();

 private:
  std::string path_;
  bool has_label_;
  void* gz_ = nullptr;
  std::string line_;
};

// ---- preprocessing --------------------------------------------------------------------------------
struct EncodedRow {
  uint8_t label = 0;
  std::array<float, kNumDense> dense{};
  std::array<int32_t, kNumSparse> sparse{};
};

float dense_transform(int64_t x, bool missing);

// Frequency-thresholded vocabularies, one per categorical feature.
class Vocabulary {
 public:
  // One pass over the files; values seen fewer than min_frequency times fall into id 0.
  static Vocabulary build(const std::vector<std::string>& paths, int64_t min_frequency,
                          const TextOptions* options = nullptr);
  void count(const RawRow& row);
  void finish(int64_t min_frequency);  // assigns the ids
  int32_t id(int feature, uint64_t value, bool missing) const;
  std::vector<int64_t> table_sizes() const;

 private:
  std::vector<std::unordered_map<uint64_t, int64_t>> counts_ =
      std::vector<std::unordered_map<uint64_t, int64_t>>(kNumSparse);
  std::vector<std::unordered_map<uint64_t, int32_t>> ids_;
};

struct Preprocessor {
  std::vector<int64_t> table_sizes;              // hashing: one per feature (or one for all)
  std::shared_ptr<const Vocabulary> vocabulary;  // set: vocabulary mode, table_sizes ignored

  static Preprocessor hashing(std::vector<int64_t> sizes);
  static Preprocessor with_vocabulary(std::shared_ptr<const Vocabulary> v);
  std::vector<int64_t> sizes() const;
  EncodedRow encode(const RawRow& row) const;
};

// ---- binary ---------------------------------------------------------------------------------------
constexpr char kMagic[8] = {'N', 'B', 'C', 'R', 'I', 'T', 'E', 'O'};
constexpr uint32_t kVersion = 1;

uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull);

// Streams encoded rows to `path` (sections go to temporary files and are joined on finish(), which writes
// the header and renames "<path>.tmp" to path).
class BinaryWriter {
 public:
  BinaryWriter(std::string path, std::vector<int64_t> table_sizes);
  ~BinaryWriter();
  void write(const EncodedRow& row);
  void end_day();  // the rows written since the last end_day() form one day
  void finish();
  int64_t rows() const { return rows_; }

 private:
  std::string path_;
  std::vector<int64_t> table_sizes_;
  std::vector<int64_t> day_rows_;
  int64_t rows_ = 0, rows_at_day_start_ = 0;
  void* files_[3] = {nullptr, nullptr, nullptr};
  bool finished_ = false;
};

struct ConvertStats {
  int64_t rows = 0, bad_rows = 0;
  std::vector<int64_t> rows_per_file;
};
// Text files -> one binary file; each input file is one day.
ConvertStats convert_text_to_binary(const std::vector<std::string>& inputs, const std::string& output,
                                    const Preprocessor& pre, const TextOptions* options = nullptr);

struct BinaryHeader {
  uint32_t version = kVersion;
  uint64_t header_bytes = 0;
  int64_t num_rows = 0;
  int64_t num_dense = kNumDense, num_sparse = kNumSparse;
  uint64_t checksum = 0;
  uint64_t labels_offset = 0, dense_offset = 0, sparse_offset = 0, file_bytes = 0;
  std::vector<int64_t> table_sizes;
  std::vector<int64_t> day_rows;
};

enum class Verify { automatic, always, never };  // automatic: checksum when the file is under 1 GiB

// A memory-mapped binary file, read-only; views are valid while it lives.
class BinaryFile {
 public:
  explicit BinaryFile(const std::string& path, Verify verify = Verify::automatic);
  ~BinaryFile();
  BinaryFile(const BinaryFile&) = delete;
  BinaryFile& operator=(const BinaryFile&) = delete;

  const BinaryHeader& header() const { return header_; }
  int64_t size() const { return header_.num_rows; }
  const uint8_t* labels() const { return base_ + header_.labels_offset; }
  const float* dense() const { return reinterpret_cast<const float*>(base_ + header_.dense_offset); }
  const int32_t* sparse() const { return reinterpret_cast<const int32_t*>(base_ + header_.sparse_offset); }
  EncodedRow row(int64_t i) const;
  uint64_t compute_checksum() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t mapped_ = 0;
  BinaryHeader header_;
};

// ---- splits ---------------------------------------------------------------------------------------
struct RowRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const RowRange&) const = default;
};
struct Split {
  RowRange train, val, test;
};
// The reference's split: days 0..D-2 train; the last day's first ceil(n/2) rows test, the rest validation.
// Day boundaries from the file (one per input file), or, for a single-file Kaggle set, `kaggle_days` equal
// parts as the reference cuts train.txt (the first N mod 7 days one row longer).
Split split_by_days(const std::vector<int64_t>& day_rows);
std::vector<int64_t> kaggle_day_rows(int64_t num_rows, int days = 7);
Split reference_split(const BinaryFile& file);  // by days when the file has more than one, else Kaggle's 7

// ---- loader ---------------------------------------------------------------------------------------
struct CriteoBatch {
  Tensor dense;   // f32 [B, 13]
  Tensor sparse;  // i64 [B, 26]: one id per table and row, so embedding-bag offsets are 0, 1, .., B-1
  Tensor labels;  // f32 [B]
  int64_t epoch = 0, index = 0;
  int64_t first_row = 0;  // without shuffling: the file row of the batch's first example
};

struct CriteoLoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = false;  // a permutation of the range per epoch, from Philox keyed by (seed, epoch)
  bool drop_last = false;
  uint64_t seed = 0;
};

// Batches of rows [range.begin, range.end) of a binary file; position() / set_position() resume exactly.
class CriteoLoader {
 public:
  CriteoLoader(std::shared_ptr<const BinaryFile> file, RowRange range, CriteoLoaderOptions options);
  int64_t num_batches() const;
  std::optional<CriteoBatch> next();
  LoaderPosition position() const { return position_; }
  void set_position(LoaderPosition p);
  CriteoBatch batch(int64_t epoch, int64_t index) const;

 private:
  const std::vector<int64_t>& order(int64_t epoch) const;

  std::shared_ptr<const BinaryFile> file_;
  RowRange range_;
  CriteoLoaderOptions options_;
  LoaderPosition position_;
  mutable int64_t order_epoch_ = -1;
  mutable std::vector<int64_t> order_;
};

}  // namespace nabla::data::criteo
