// The Criteo binary format (data/criteo.h, layout table in docs/dlrm.md): the streaming writer, the
// memory-mapped reader with its checks, text-to-binary conversion and the reference's train/val/test split.
//
// Header (little-endian, the fixed part is 88 bytes, the whole header padded with zeros to 64 bytes):
//   0 magic "NBCRITEO" | 8 version u32 | 12 reserved u32 | 16 header_bytes u64 | 24 num_rows u64
//   32 num_dense u32 | 36 num_sparse u32 | 40 label type u32 (0 = u8) | 44 num_days u32
//   48 checksum u64 (FNV-1a 64 of bytes [header_bytes, file_bytes)) | 56 labels_offset | 64 dense_offset
//   72 sparse_offset | 80 file_bytes | 88 table sizes i64 [num_sparse] | then rows per day i64 [num_days]
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "data/criteo.h"
#include "engine/error.h"

namespace nabla::data::criteo {
namespace {

constexpr uint64_t kFixedHeader = 88;
constexpr uint64_t kAlign = 64;
constexpr uint64_t kAutoVerifyLimit = uint64_t{1} << 30;
const char* const kSectionSuffix[3] = {".labels.tmp", ".dense.tmp", ".sparse.tmp"};

uint64_t add_ck(uint64_t a, uint64_t b, const char* what) {
  uint64_t r;
  NABLA_CHECK(!__builtin_add_overflow(a, b, &r), "criteo binary: size of ", what, " overflows 64 bits");
  return r;
}
uint64_t mul_ck(uint64_t a, uint64_t b, const char* what) {
  uint64_t r;
  NABLA_CHECK(!__builtin_mul_overflow(a, b, &r), "criteo binary: size of ", what, " overflows 64 bits");
  return r;
}
uint64_t align_up(uint64_t x) { return add_ck(x, kAlign - 1, "alignment") / kAlign * kAlign; }

struct Layout {
  uint64_t header_bytes, labels, dense, sparse, end;
};
Layout layout_for(uint64_t rows, uint64_t num_sparse, uint64_t num_days) {
  Layout l;
  l.header_bytes =
      align_up(add_ck(kFixedHeader, mul_ck(8, add_ck(num_sparse, num_days, "header"), "header"), "header"));
  l.labels = l.header_bytes;
  l.dense = align_up(add_ck(l.labels, rows, "labels"));
  l.sparse = align_up(add_ck(l.dense, mul_ck(rows, 4 * kNumDense, "dense"), "dense"));
  l.end = add_ck(l.sparse, mul_ck(rows, 4 * num_sparse, "sparse"), "sparse");
  return l;
}

template <class T>
void put(std::vector<uint8_t>& b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}
template <class T>
T get(const uint8_t* p, size_t at) {
  T v;
  std::memcpy(&v, p + at, sizeof v);
  return v;
}

void write_all(std::FILE* f, const void* p, size_t n, const std::string& path) {
  NABLA_CHECK(n == 0 || std::fwrite(p, 1, n, f) == n, "criteo binary: ", path,
              ": write failed: ", std::strerror(errno));
}

}  // namespace

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

// ---- writer -----------------------------------------------------------------------------------------
BinaryWriter::BinaryWriter(std::string path, std::vector<int64_t> table_sizes)
    : path_(std::move(path)), table_sizes_(std::move(table_sizes)) {
  NABLA_CHECK(table_sizes_.size() == kNumSparse, "criteo binary: expected 26 table sizes, got ",
              table_sizes_.size());
  for (int s = 0; s < 3; ++s) {
    std::string p = path_ + kSectionSuffix[s];
    auto* f = std::fopen(p.c_str(), "wb");
    NABLA_CHECK(f != nullptr, "criteo binary: ", p, ": cannot open for writing: ", std::strerror(errno));
    files_[s] = f;
  }
}

BinaryWriter::~BinaryWriter() {
  for (int s = 0; s < 3; ++s) {
    if (files_[s]) std::fclose(static_cast<std::FILE*>(files_[s]));
    if (!finished_) std::remove((path_ + kSectionSuffix[s]).c_str());
  }
  if (!finished_) std::remove((path_ + ".tmp").c_str());
}

void BinaryWriter::write(const EncodedRow& row) {
  NABLA_CHECK(!finished_, "criteo binary: ", path_, ": write after finish()");
  NABLA_CHECK(row.label <= 1, "criteo binary: row ", rows_, ": label ", int(row.label), ", expected 0 or 1");
  for (int c = 0; c < kNumSparse; ++c)
    NABLA_CHECK(row.sparse[c] >= 0 && row.sparse[c] < table_sizes_[c], "criteo binary: row ", rows_, ": C",
                c + 1, " id ", row.sparse[c], " outside its table of ", table_sizes_[c]);
  write_all(static_cast<std::FILE*>(files_[0]), &row.label, 1, path_);
  write_all(static_cast<std::FILE*>(files_[1]), row.dense.data(), sizeof row.dense, path_);
  write_all(static_cast<std::FILE*>(files_[2]), row.sparse.data(), sizeof row.sparse, path_);
  ++rows_;
}

void BinaryWriter::end_day() {
  day_rows_.push_back(rows_ - rows_at_day_start_);
  rows_at_day_start_ = rows_;
}

void BinaryWriter::finish() {
  NABLA_CHECK(!finished_, "criteo binary: ", path_, ": finish() called twice");
  if (rows_ > rows_at_day_start_ || day_rows_.empty()) end_day();
  Layout l = layout_for(static_cast<uint64_t>(rows_), kNumSparse, day_rows_.size());
  std::vector<uint8_t> header(l.header_bytes, 0);
  std::memcpy(header.data(), kMagic, 8);
  put<uint32_t>(header, 8, kVersion);
  put<uint64_t>(header, 16, l.header_bytes);
  put<uint64_t>(header, 24, static_cast<uint64_t>(rows_));
  put<uint32_t>(header, 32, kNumDense);
  put<uint32_t>(header, 36, kNumSparse);
  put<uint32_t>(header, 40, 0);
  put<uint32_t>(header, 44, static_cast<uint32_t>(day_rows_.size()));
  put<uint64_t>(header, 56, l.labels);
  put<uint64_t>(header, 64, l.dense);
  put<uint64_t>(header, 72, l.sparse);
  put<uint64_t>(header, 80, l.end);
  for (int c = 0; c < kNumSparse; ++c) put<int64_t>(header, kFixedHeader + 8 * c, table_sizes_[c]);
  for (size_t d = 0; d < day_rows_.size(); ++d)
    put<int64_t>(header, kFixedHeader + 8 * (kNumSparse + d), day_rows_[d]);

  std::string tmp = path_ + ".tmp";
  std::FILE* out = std::fopen(tmp.c_str(), "wb");
  NABLA_CHECK(out != nullptr, "criteo binary: ", tmp, ": cannot open for writing: ", std::strerror(errno));
  write_all(out, header.data(), header.size(), tmp);
  uint64_t h = 0xcbf29ce484222325ull, at = l.header_bytes;
  std::vector<uint8_t> buf(1 << 20);
  const uint64_t starts[3] = {l.labels, l.dense, l.sparse};
  for (int s = 0; s < 3; ++s) {
    std::vector<uint8_t> pad(starts[s] - at, 0);
    h = fnv1a64(pad.data(), pad.size(), h);
    write_all(out, pad.data(), pad.size(), tmp);
    at = starts[s];
    auto* in = static_cast<std::FILE*>(files_[s]);
    NABLA_CHECK(std::fflush(in) == 0 && std::fseek(in, 0, SEEK_SET) == 0, "criteo binary: ", path_,
                kSectionSuffix[s], ": cannot rewind");
    std::FILE* rd = std::fopen((path_ + kSectionSuffix[s]).c_str(), "rb");
    NABLA_CHECK(rd != nullptr, "criteo binary: cannot reopen ", path_, kSectionSuffix[s]);
    size_t got;
    while ((got = std::fread(buf.data(), 1, buf.size(), rd)) > 0) {
      h = fnv1a64(buf.data(), got, h);
      write_all(out, buf.data(), got, tmp);
      at += got;
    }
    std::fclose(rd);
  }
  NABLA_CHECK(at == l.end, "criteo binary: ", tmp, ": wrote ", at, " bytes, expected ", l.end);
  std::vector<uint8_t> sum(8);
  put<uint64_t>(sum, 0, h);
  NABLA_CHECK(std::fseek(out, 48, SEEK_SET) == 0, "criteo binary: ", tmp, ": seek failed");
  write_all(out, sum.data(), 8, tmp);
  NABLA_CHECK(std::fclose(out) == 0, "criteo binary: ", tmp, ": close failed");
  std::error_code ec;
  std::filesystem::rename(tmp, path_, ec);
  NABLA_CHECK(!ec, "criteo binary: cannot rename ", tmp, " to ", path_, ": ", ec.message());
  finished_ = true;
  for (int s = 0; s < 3; ++s) {
    std::fclose(static_cast<std::FILE*>(files_[s]));
    files_[s] = nullptr;
    std::remove((path_ + kSectionSuffix[s]).c_str());
  }
}

ConvertStats convert_text_to_binary(const std::vector<std::string>& inputs, const std::string& output,
                                    const Preprocessor& pre, const TextOptions* options) {
  NABLA_CHECK(!inputs.empty(), "criteo: no input files");
  BinaryWriter w(output, pre.sizes());
  ConvertStats st;
  RawRow row;
  for (const auto& p : inputs) {
    TextReader r(p, options ? *options : text_options_for(p));
    while (r.next(row)) w.write(pre.encode(row));
    w.end_day();
    st.rows_per_file.push_back(r.rows());
    st.bad_rows += r.bad_rows();
  }
  w.finish();
  st.rows = w.rows();
  return st;
}

// ---- reader -----------------------------------------------------------------------------------------
BinaryFile::BinaryFile(const std::string& path, Verify verify) : path_(path) {
  const std::string who = "criteo binary: " + path + ": ";
  int fd = ::open(path.c_str(), O_RDONLY);
  NABLA_CHECK(fd >= 0, who, "cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(who, "cannot stat: ", std::strerror(errno));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kFixedHeader) {
    ::close(fd);
    fail(who, "truncated header: expected at least ", kFixedHeader, " bytes, file has ", size);
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  NABLA_CHECK(p != MAP_FAILED, who, "mmap failed: ", std::strerror(errno));
  base_ = static_cast<const uint8_t*>(p);
  mapped_ = size;
  try {
    if (std::memcmp(base_, kMagic, 8) != 0)
      fail(who, "bad magic '", std::string(reinterpret_cast<const char*>(base_), 8),
           "' at byte 0, expected 'NBCRITEO'");
    BinaryHeader& h = header_;
    h.version = get<uint32_t>(base_, 8);
    NABLA_CHECK(h.version == kVersion, who, "version ", h.version, " at byte 8, this reader knows version ",
                kVersion);
    h.header_bytes = get<uint64_t>(base_, 16);
    uint64_t rows = get<uint64_t>(base_, 24);
    h.num_dense = get<uint32_t>(base_, 32);
    h.num_sparse = get<uint32_t>(base_, 36);
    uint32_t label_type = get<uint32_t>(base_, 40);
    uint32_t days = get<uint32_t>(base_, 44);
    NABLA_CHECK(h.num_dense == kNumDense && h.num_sparse == kNumSparse, who,
                "expected 13 dense and 26 sparse features ", "(bytes 32 and 36), got ", h.num_dense, " and ",
                h.num_sparse);
    NABLA_CHECK(label_type == 0, who, "label type ", label_type, " at byte 40, expected 0 (u8)");
    NABLA_CHECK(rows <= (uint64_t{1} << 48), who, "row count ", rows, " at byte 24 is implausible");
    NABLA_CHECK(days >= 1 && days <= (1u << 20), who, "day count ", days, " at byte 44, expected 1 .. 2^20");
    h.num_rows = static_cast<int64_t>(rows);
    Layout l = layout_for(rows, kNumSparse, days);
    NABLA_CHECK(h.header_bytes == l.header_bytes, who, "header size ", h.header_bytes,
                " at byte 16, expected ", l.header_bytes);
    NABLA_CHECK(size >= l.header_bytes, who, "truncated header: expected ", l.header_bytes,
                " bytes, file has ", size);
    h.checksum = get<uint64_t>(base_, 48);
    h.labels_offset = get<uint64_t>(base_, 56);
    h.dense_offset = get<uint64_t>(base_, 64);
    h.sparse_offset = get<uint64_t>(base_, 72);
    h.file_bytes = get<uint64_t>(base_, 80);
    NABLA_CHECK(h.labels_offset == l.labels && h.dense_offset == l.dense && h.sparse_offset == l.sparse &&
                    h.file_bytes == l.end,
                who, "section offsets (labels ", h.labels_offset, ", dense ", h.dense_offset, ", sparse ",
                h.sparse_offset, ", end ", h.file_bytes, ") disagree with ", rows, " rows (expected ",
                l.labels, ", ", l.dense, ", ", l.sparse, ", ", l.end, ")");
    NABLA_CHECK(size >= l.end, who, "truncated: expected ", l.end, " bytes, file has ", size,
                " (the data stops at byte offset ", size, ", inside the ",
                size < l.dense    ? "labels"
                : size < l.sparse ? "dense"
                                  : "sparse",
                " section)");
    NABLA_CHECK(size == l.end, who, size - l.end, " bytes after the end of the data at byte offset ", l.end);
    int64_t day_sum = 0;
    for (int c = 0; c < kNumSparse; ++c) {
      int64_t t = get<int64_t>(base_, kFixedHeader + 8 * c);
      NABLA_CHECK(t >= 1 && t <= INT32_MAX, who, "table size of C", c + 1, " is ", t, " (byte ",
                  kFixedHeader + 8 * c, "), expected 1 .. 2^31-1");
      h.table_sizes.push_back(t);
    }
    for (uint32_t d = 0; d < days; ++d) {
      int64_t r = get<int64_t>(base_, kFixedHeader + 8 * (kNumSparse + d));
      NABLA_CHECK(r >= 0 && r <= h.num_rows - day_sum, who, "day ", d, " has ", r, " rows, more than remain");
      day_sum += r;
      h.day_rows.push_back(r);
    }
    NABLA_CHECK(day_sum == h.num_rows, who, "the days hold ", day_sum, " rows, the header says ", h.num_rows);
    bool check = verify == Verify::always || (verify == Verify::automatic && size < kAutoVerifyLimit);
    if (check) {
      uint64_t got = compute_checksum();
      if (got != h.checksum) {
        char a[24], b[24];
        std::snprintf(a, sizeof a, "%016llx", static_cast<unsigned long long>(h.checksum));
        std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(got));
        fail(who, "checksum mismatch: header (byte 48) says ", a, ", the data hashes to ", b,
             " (FNV-1a 64 of bytes ", l.header_bytes, " .. ", l.end, ")");
      }
      for (int64_t i = 0; i < h.num_rows; ++i) {
        NABLA_CHECK(labels()[i] <= 1, who, "row ", i, ": label ", int(labels()[i]), ", expected 0 or 1");
        for (int c = 0; c < kNumSparse; ++c) {
          int32_t id = sparse()[i * kNumSparse + c];
          NABLA_CHECK(id >= 0 && id < h.table_sizes[c], who, "row ", i, ": C", c + 1, " id ", id,
                      " outside its table of ", h.table_sizes[c]);
        }
      }
    }
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(base_), mapped_);
    base_ = nullptr;
    throw;
  }
}

BinaryFile::~BinaryFile() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), mapped_);
}

uint64_t BinaryFile::compute_checksum() const {
  return fnv1a64(base_ + header_.header_bytes, header_.file_bytes - header_.header_bytes);
}

EncodedRow BinaryFile::row(int64_t i) const {
  NABLA_CHECK(i >= 0 && i < size(), "criteo binary: ", path_, ": row ", i, " out of range for ", size(),
              " rows");
  EncodedRow r;
  r.label = labels()[i];
  std::memcpy(r.dense.data(), dense() + i * kNumDense, sizeof r.dense);
  std::memcpy(r.sparse.data(), sparse() + i * kNumSparse, sizeof r.sparse);
  return r;
}

// ---- splits -----------------------------------------------------------------------------------------
Split split_by_days(const std::vector<int64_t>& day_rows) {
  NABLA_CHECK(day_rows.size() >= 2, "criteo split: needs at least 2 days, got ", day_rows.size());
  int64_t train = 0;
  for (size_t d = 0; d + 1 < day_rows.size(); ++d) train += day_rows[d];
  int64_t last = day_rows.back(), test = (last + 1) / 2;
  Split s;
  s.train = {0, train};
  s.test = {train, train + test};
  s.val = {train + test, train + last};
  return s;
}

std::vector<int64_t> kaggle_day_rows(int64_t num_rows, int days) {
  NABLA_CHECK(days >= 2 && num_rows >= 0, "criteo split: needs >= 2 days and >= 0 rows, got ", days, " and ",
              num_rows);
  std::vector<int64_t> r(days, num_rows / days);
  for (int64_t j = 0; j < num_rows % days; ++j) ++r[j];
  return r;
}

Split reference_split(const BinaryFile& file) {
  const auto& d = file.header().day_rows;
  return d.size() > 1 ? split_by_days(d) : split_by_days(kaggle_day_rows(file.size()));
}

}  // namespace nabla::data::criteo
