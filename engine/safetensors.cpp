// safetensors reading and writing (format in engine/safetensors.h).
//
// Writing: prepare() turns the tensors into contiguous host copies and the 8-byte length + padded JSON
// header; the bytes and file writers then append the tensors' bytes in data order.
//
// Reading: load() needs only the total size and a way to read a byte range, so files are read straight
// into the tensors' storage (no second copy of a large checkpoint) and byte strings share every check.
// The header is parsed twice: once into a JSON tree, once by a SAX pass that records where each entry's
// name lies in the file (the tree forgets positions, and silently keeps the last of two equal keys).
//
// Hostile files: the SAX pass runs first and bounds the nesting depth (kMaxHeaderDepth), so neither the
// tree nor any printing of it recurses deeply; every JSON error, including the library's range errors
// (a number such as 1e309), becomes one nabla::Error with the file and byte offset; every value or name
// printed into a message is cut to a few dozen characters (short_text / show).
//
// Checksums: save writes one CRC-32C per tensor into __metadata__ ("nabla.crc32c.<name>": 8 hex digits),
// where PyTorch and every other reader see only an extra string; load verifies each one present, strips
// them from the metadata it returns, and loads files without them (written elsewhere) unchecked.
#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "engine/crc32c.h"
#include "engine/error.h"

namespace nabla {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swaps");

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// The reference reader refuses larger headers too: a header this big is a corrupt length, not a model.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";
// A safetensors header is 3 deep (root, entry, shape); anything much deeper is not a checkpoint.
constexpr int kMaxHeaderDepth = 16;
constexpr const char* kChecksumPrefix = "nabla.crc32c.";

// At most `max` characters of `s`, for error messages: names and values in a hostile file can be huge.
std::string short_text(const std::string& s, size_t max = 60) {
  if (s.size() <= max) return s;
  return s.substr(0, max) + "...(" + std::to_string(s.size()) + " bytes)";
}

std::string hex8(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kDTypeNames[] = {{DType::f32, "F32"}, {DType::f64, "F64"}, {DType::bf16, "BF16"},
                                     {DType::f16, "F16"}, {DType::i32, "I32"}, {DType::i64, "I64"},
                                     {DType::u8, "U8"},   {DType::b8, "BOOL"}};

const char* safetensors_dtype_name(DType t) {
  for (const auto& d : kDTypeNames)
    if (d.dtype == t) return d.name;
  fail("safetensors: dtype ", t, " has no safetensors name");
}

bool parse_dtype(const std::string& s, DType* out) {
  for (const auto& d : kDTypeNames)
    if (s == d.name) {
      *out = d.dtype;
      return true;
    }
  return false;
}

// ---- writing ------------------------------------------------------------------------------------

// A row-major host copy of `t` (or `t` itself when it already is one). Copies bytes, so it serves every
// dtype, including the storage-only bf16/f16 that the CPU kernels do not handle.
Tensor contiguous_host(const Tensor& t) {
  Tensor h = t.device().is_cpu() ? t : t.to(Device::cpu());
  if (h.is_contiguous()) return h;
  Tensor out = Tensor::empty(h.shape(), h.dtype());
  if (out.numel() == 0) return out;
  const int64_t nd = h.dim(), item = static_cast<int64_t>(h.itemsize());
  const int64_t rows = h.numel() / h.size(nd - 1), cols = h.size(nd - 1), col_stride = h.stride(nd - 1);
  const char* src = static_cast<const char*>(h.data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());
  std::vector<int64_t> idx(nd, 0);  // index of the current row; the last entry stays 0
  for (int64_t r = 0; r < rows; ++r) {
    int64_t off = 0;
    for (int64_t d = 0; d < nd - 1; ++d) off += idx[d] * h.stride(d);
    if (col_stride == 1) {
      std::memcpy(dst, src + off * item, cols * item);
    } else {
      for (int64_t c = 0; c < cols; ++c)
        std::memcpy(dst + c * item, src + (off + c * col_stride) * item, item);
    }
    dst += cols * item;
    for (int64_t d = nd - 2; d >= 0; --d) {
      if (++idx[d] < h.size(d)) break;
      idx[d] = 0;
    }
  }
  return out;
}

struct Prepared {
  std::string head;      // u64 N followed by the N-byte header
  NamedTensors tensors;  // contiguous host tensors, in data order
};

Prepared prepare(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata,
                 const SafetensorsSaveOptions& options) {
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    NABLA_CHECK(name != kMetadataKey, "safetensors: a tensor cannot be called ", kMetadataKey,
                " (the key is reserved for the metadata)");
    NABLA_CHECK(name.size() < kMaxHeaderBytes / 2, "safetensors: tensor name of ", name.size(),
                " bytes is too long");
    NABLA_CHECK(names.insert(name).second, "safetensors: two tensors are called '", name, "'");
    NABLA_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined");
  }
  // Decreasing itemsize keeps every tensor aligned to its element size (stable: the caller's order stays
  // within one size).
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors[a].second.itemsize() > tensors[b].second.itemsize();
  });

  Prepared p;
  OrderedJson header = OrderedJson::object();
  std::map<std::string, std::string> all_metadata = metadata;
  for (const auto& [k, v] : metadata)
    NABLA_CHECK(k.rfind(kChecksumPrefix, 0) != 0, "safetensors: metadata key '", short_text(k),
                "' is reserved (", kChecksumPrefix, "* hold the tensors' checksums)");
  std::vector<Tensor> host(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    host[i] = contiguous_host(tensors[i].second);
    if (options.checksums)
      all_metadata[kChecksumPrefix + tensors[i].first] = hex8(crc32c(host[i].data_ptr(), host[i].nbytes()));
  }
  if (!all_metadata.empty()) {
    OrderedJson m = OrderedJson::object();
    for (const auto& [k, v] : all_metadata) m[k] = v;
    header[kMetadataKey] = std::move(m);
  }
  uint64_t offset = 0;
  for (size_t i : order) {
    const std::string& name = tensors[i].first;
    Tensor c = host[i];
    OrderedJson entry = OrderedJson::object();
    entry["dtype"] = safetensors_dtype_name(c.dtype());
    entry["shape"] = c.shape();
    entry["data_offsets"] = {offset, offset + c.nbytes()};
    offset += c.nbytes();
    header[name] = std::move(entry);
    p.tensors.emplace_back(name, std::move(c));
  }
  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("safetensors: cannot write the header: a tensor name or metadata string is not valid UTF-8 (",
         e.what(), ")");
  }
  json.append((8 - json.size() % 8) % 8, ' ');
  uint64_t n = json.size();
  p.head.resize(8);
  std::memcpy(p.head.data(), &n, 8);
  p.head += json;
  return p;
}

// ---- reading: the header ------------------------------------------------------------------------

// A char iterator that reports how far the JSON parser has read, so that SAX events get positions.
struct TrackingIterator {
  using iterator_category = std::forward_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;
  const char* p = nullptr;
  const char** read_to = nullptr;
  reference operator*() const { return *p; }
  TrackingIterator& operator++() {
    *read_to = ++p;
    return *this;
  }
  TrackingIterator operator++(int) {
    TrackingIterator old = *this;
    ++*this;
    return old;
  }
  bool operator==(const TrackingIterator& o) const { return p == o.p; }
};

struct KeyAt {
  std::string key;
  uint64_t at;  // offset of the key's opening quote in the header
};

// Lists the top-level keys in file order with their positions, and rejects a key repeated at the top
// level or inside an entry (a JSON tree would keep only the last).
class KeyLocator final : public nlohmann::json_sax<Json> {
 public:
  KeyLocator(const char* begin, const char* const* read_to, std::string where)
      : begin_(begin), read_to_(read_to), where_(std::move(where)) {}
  std::vector<KeyAt> keys;

  bool key(string_t& k) override {
    // The parser has just read the key's closing quote; its opening quote is the nearest unescaped one
    // before (inside a JSON string every quote is escaped, so only the opening one is not).
    uint64_t q = static_cast<uint64_t>(*read_to_ - begin_) - 1;
    while (q > 0) {
      --q;
      if (begin_[q] != '"') continue;
      uint64_t slashes = 0;
      while (slashes < q && begin_[q - 1 - slashes] == '\\') ++slashes;
      if (slashes % 2 == 0) break;
    }
    if (depth_ == 1) {
      auto [prev, fresh] = names_.emplace(k, q);
      NABLA_CHECK(fresh, where_, "the name '", short_text(k), "' appears twice in the header (at bytes ",
                  8 + prev->second, " and ", 8 + q, ")");
      keys.push_back({k, q});
    } else if (depth_ == 2 && !keys.empty()) {
      NABLA_CHECK(fields_.insert(k).second, where_, "entry '", short_text(keys.back().key), "' (at byte ",
                  8 + keys.back().at, "): field '", short_text(k), "' appears twice (at byte ", 8 + q, ")");
    }
    return true;
  }
  bool start_object(std::size_t) override {
    if (++depth_ == 2) fields_.clear();
    return check_depth();
  }
  bool end_object() override { return --depth_, true; }
  bool start_array(std::size_t) override { return ++depth_, check_depth(); }
  bool end_array() override { return --depth_, true; }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::json::exception& e) override {
    // position counts the characters read, so the offending one is at index position - 1.
    error_at = position > 0 ? position - 1 : 0;
    error = short_text(e.what(), 160);
    return false;
  }
  // Set when the pass stopped early: the offset in the header and what was wrong.
  uint64_t error_at = 0;
  std::string error;

 private:
  bool check_depth() {
    if (depth_ <= kMaxHeaderDepth) return true;
    error_at = static_cast<uint64_t>(*read_to_ - begin_) - 1;
    error = str_cat("JSON nested deeper than ", kMaxHeaderDepth, " levels (a safetensors header is 3 deep)");
    return false;
  }
  std::map<std::string, uint64_t> names_;  // top-level keys and where they are
  const char* begin_;
  const char* const* read_to_;
  std::string where_;
  int depth_ = 0;
  std::set<std::string> fields_;
};

struct Entry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  uint64_t begin = 0, end = 0;
  uint64_t at = 0;  // file offset of the entry's name
};

struct Header {
  std::vector<Entry> entries;  // in data order
  std::map<std::string, std::string> metadata;
};

// A short rendering of a JSON value for error messages: at most about 40 characters, without dumping a
// huge value whole (only the first elements of an array or object are rendered).
void render(const Json& v, std::string* out, size_t budget) {
  if (out->size() > budget) return;
  if (v.is_array() || v.is_object()) {
    *out += v.is_array() ? '[' : '{';
    size_t i = 0;
    for (auto it = v.begin(); it != v.end() && out->size() <= budget; ++it, ++i) {
      if (i) *out += ',';
      if (v.is_object()) *out += Json(short_text(it.key(), 20)).dump() + ":";
      render(*it, out, budget);
    }
    *out += v.is_array() ? ']' : '}';
  } else if (v.is_string()) {
    *out += Json(short_text(v.get<std::string>(), 30)).dump();
  } else {
    *out += v.dump();
  }
}

std::string show(const Json& v) {
  std::string s;
  render(v, &s, 40);
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

uint64_t get_u64(const Json& v, bool* ok) {
  *ok = v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
  return *ok ? v.get<uint64_t>() : 0;
}

Entry parse_entry(const std::string& where, const std::string& name, uint64_t at, const Json& v,
                  uint64_t data_start, uint64_t data_size) {
  const std::string what = str_cat(where, "tensor '", short_text(name), "' (entry at byte ", at, "): ");
  NABLA_CHECK(v.is_object(), what, "expected an object {\"dtype\", \"shape\", \"data_offsets\"}, got ",
              show(v));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    NABLA_CHECK(v.contains(field), what, "missing field '", field, "'");
  Entry e;
  e.name = name;
  e.at = at;

  const Json& dt = v["dtype"];
  NABLA_CHECK(dt.is_string(), what, "'dtype' must be a string, got ", show(dt));
  NABLA_CHECK(parse_dtype(dt.get<std::string>(), &e.dtype), what, "unknown dtype ", show(dt),
              " (Nabla reads F32 F64 BF16 F16 I32 I64 U8 BOOL)");

  const Json& shape = v["shape"];
  NABLA_CHECK(shape.is_array(), what, "'shape' must be an array of sizes, got ", show(shape));
  // numel * itemsize in u64 with overflow checks: a corrupt shape must not wrap around to a small size.
  uint64_t nbytes = itemsize(e.dtype);
  bool overflow = false;
  for (const Json& s : shape) {
    bool ok;
    uint64_t n = get_u64(s, &ok);
    NABLA_CHECK(ok && n <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), what,
                "'shape' must hold non-negative integers, got ", show(shape));
    overflow = overflow || __builtin_mul_overflow(nbytes, n, &nbytes);
    e.shape.push_back(static_cast<int64_t>(n));
  }
  if (overflow) nbytes = std::numeric_limits<uint64_t>::max();

  const Json& off = v["data_offsets"];
  bool ok0 = false, ok1 = false;
  if (off.is_array() && off.size() == 2) {
    e.begin = get_u64(off[0], &ok0);
    e.end = get_u64(off[1], &ok1);
  }
  NABLA_CHECK(ok0 && ok1, what, "'data_offsets' must be [begin, end] with non-negative integers, got ",
              show(off));
  NABLA_CHECK(e.begin <= e.end, what, "data_offsets [", e.begin, ",", e.end, "] end before they begin");
  NABLA_CHECK(!overflow && e.end - e.begin == nbytes, what, "data_offsets [", e.begin, ",", e.end, "] hold ",
              e.end - e.begin, " bytes, but shape ", e.shape, " of ", dt.get<std::string>(), " needs ",
              overflow ? std::string("more than 2^64") : std::to_string(nbytes));
  NABLA_CHECK(e.end <= data_size, what, "data_offsets [", e.begin, ",", e.end, "] (bytes ",
              data_start + e.begin, "..", data_start + e.end,
              " of the file) run past the end of the data section (", data_size, " bytes from byte ",
              data_start, "; the file ends at byte ", data_start + data_size, ")");
  return e;
}

// `json` is the n-byte header; the data section starts at byte 8 + n and holds data_size bytes.
Header parse_header(const std::string& where, const char* json, uint64_t n, uint64_t data_size) {
  // The SAX pass first: it bounds the depth and reports the position of any syntax or range error, so the
  // tree below is only built from a header known to be well-formed and shallow.
  const char* read_to = json;
  KeyLocator locator(json, &read_to, where);
  bool ok = false;
  try {
    ok = Json::sax_parse(TrackingIterator{json, &read_to}, TrackingIterator{json + n, &read_to}, &locator);
  } catch (const nlohmann::json::exception& e) {
    locator.error_at = static_cast<uint64_t>(read_to - json);
    locator.error = short_text(e.what(), 160);
  }
  if (!ok)
    fail(where, "invalid JSON in the header (bytes 8..", 8 + n, ") at byte ", 8 + locator.error_at, ": ",
         locator.error);
  Json root;
  try {
    root = Json::parse(json, json + n);
  } catch (const nlohmann::json::exception& e) {  // not expected after the SAX pass accepted it
    fail(where, "invalid JSON in the header (bytes 8..", 8 + n, "): ", short_text(e.what(), 160));
  }
  NABLA_CHECK(root.is_object(), where, "the header at byte 8 must be a JSON object, got ", show(root));

  Header h;
  for (const KeyAt& k : locator.keys) {
    const Json& v = root[k.key];
    if (k.key == kMetadataKey) {
      NABLA_CHECK(v.is_object(), where, kMetadataKey, " (at byte ", 8 + k.at,
                  ") must be an object of strings, got ", show(v));
      for (const auto& [mk, mv] : v.items()) {
        NABLA_CHECK(mv.is_string(), where, kMetadataKey, " (at byte ", 8 + k.at, "): the value of '",
                    short_text(mk), "' must be a string, got ", show(mv));
        h.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    h.entries.push_back(parse_entry(where, k.key, 8 + k.at, v, 8 + n, data_size));
  }

  // The tensors must tile the data section: sorted by offset, each begins where the previous ended.
  // Stable, so zero-size tensors at one offset keep their header order.
  std::stable_sort(h.entries.begin(), h.entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const uint64_t data_start = 8 + n;
  uint64_t expect = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : h.entries) {
    NABLA_CHECK(e.begin >= expect, where, "tensors '", short_text(prev ? prev->name : ""),
                "' (entry at byte ", prev ? prev->at : 0, ") and '", short_text(e.name), "' (entry at byte ",
                e.at, ") overlap: data offsets [", prev ? prev->begin : 0, ",", expect, ") and [", e.begin,
                ",", e.end, ")");
    NABLA_CHECK(e.begin == expect, where, "no tensor covers data offsets [", expect, ",", e.begin,
                ") (bytes ", data_start + expect, "..", data_start + e.begin,
                " of the file), before tensor '", short_text(e.name), "' (entry at byte ", e.at,
                "); tensors must be contiguous");
    expect = e.end;
    prev = &e;
  }
  NABLA_CHECK(expect == data_size, where, "the tensors end at byte ", data_start + expect,
              " but the file has ", data_start + data_size, " bytes; ", data_size - expect,
              " bytes after the data belong to no tensor");
  return h;
}

// ---- reading: the data --------------------------------------------------------------------------

// Reads `len` bytes at file offset `at` into `dst`.
using ReadFn = std::function<void(uint64_t at, void* dst, uint64_t len)>;

// The index of the first element of `t` (a floating dtype) that is NaN or infinite, or -1.
int64_t first_non_finite(const Tensor& t) {
  const int64_t n = t.numel();
  const void* p = t.data_ptr();
  auto scan16 = [&](uint16_t exp_mask) -> int64_t {  // bf16 and f16: the exponent all ones
    const auto* h = static_cast<const uint16_t*>(p);
    for (int64_t i = 0; i < n; ++i)
      if ((h[i] & exp_mask) == exp_mask) return i;
    return -1;
  };
  switch (t.dtype()) {
    case DType::f32: {
      const auto* f = static_cast<const float*>(p);
      for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(f[i])) return i;
      return -1;
    }
    case DType::f64: {
      const auto* f = static_cast<const double*>(p);
      for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(f[i])) return i;
      return -1;
    }
    case DType::bf16:
      return scan16(0x7f80);
    case DType::f16:
      return scan16(0x7c00);
    default:
      return -1;
  }
}

std::string element_text(const Tensor& t, int64_t i) {
  double v = 0;
  switch (t.dtype()) {
    case DType::f32:
      v = static_cast<const float*>(t.data_ptr())[i];
      break;
    case DType::f64:
      v = static_cast<const double*>(t.data_ptr())[i];
      break;
    default: {  // bf16 / f16: only the class matters here
      uint16_t h = static_cast<const uint16_t*>(t.data_ptr())[i];
      bool nan = t.dtype() == DType::bf16 ? (h & 0x7f) != 0 : (h & 0x3ff) != 0;
      return nan ? "nan" : (h & 0x8000) ? "-inf" : "inf";
    }
  }
  return std::isnan(v) ? "nan" : v < 0 ? "-inf" : "inf";
}

SafetensorsFile load(const std::string& source, uint64_t size, const ReadFn& read,
                     const SafetensorsLoadOptions& options) {
  const std::string where = str_cat("safetensors: ", source, ": ");
  NABLA_CHECK(size >= 8, where, "the file has ", size,
              " bytes, fewer than the 8-byte header length that starts at byte 0");
  unsigned char len_bytes[8];
  read(0, len_bytes, 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  NABLA_CHECK(n <= size - 8, where, "the header length at byte 0 says ", n, " bytes, but only ", size - 8,
              " follow (the file has ", size, " bytes)");
  NABLA_CHECK(n <= kMaxHeaderBytes, where, "the header length at byte 0 says ", n,
              " bytes, more than the limit of ", kMaxHeaderBytes);
  std::string json(n, '\0');
  read(8, json.data(), n);
  Header h = parse_header(where, json.data(), n, size - 8 - n);

  SafetensorsFile f;
  f.source = source;
  // Our checksums leave the metadata; each must belong to a tensor and be 8 hex digits.
  std::map<std::string, uint32_t> checksums;
  for (auto it = h.metadata.begin(); it != h.metadata.end();) {
    if (it->first.rfind(kChecksumPrefix, 0) != 0) {
      ++it;
      continue;
    }
    const std::string name = it->first.substr(std::strlen(kChecksumPrefix));
    const std::string& v = it->second;
    char* end = nullptr;
    unsigned long c = v.size() == 8 ? std::strtoul(v.c_str(), &end, 16) : 0;
    NABLA_CHECK(end == v.c_str() + 8 && v.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos,
                where, kMetadataKey, ": checksum '", short_text(it->first), "' must be 8 hex digits, got '",
                short_text(v), "'");
    checksums[name] = static_cast<uint32_t>(c);
    it = h.metadata.erase(it);
  }
  for (const auto& [name, c] : checksums) {
    bool found = false;
    for (const Entry& e : h.entries) found = found || e.name == name;
    NABLA_CHECK(found, where, kMetadataKey, " has a checksum for tensor '", short_text(name),
                "', which the file does not hold");
  }
  f.metadata = std::move(h.metadata);
  for (const Entry& e : h.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) read(8 + n + e.begin, t.data_ptr(), e.end - e.begin);
    auto sum = checksums.find(e.name);
    if (options.verify_checksums && sum != checksums.end()) {
      const uint32_t got = crc32c(t.data_ptr(), t.nbytes());
      NABLA_CHECK(got == sum->second, where, "tensor '", short_text(e.name), "' (entry at byte ", e.at,
                  "): the CRC-32C of its data (bytes ", 8 + n + e.begin, "..", 8 + n + e.end, ") is ",
                  hex8(got), ", the header says ", hex8(sum->second), ": the file is corrupt");
    }
    if (!options.allow_non_finite) {
      const int64_t bad = first_non_finite(t);
      NABLA_CHECK(bad < 0, where, "tensor '", short_text(e.name), "' (entry at byte ", e.at, "): element ",
                  bad, " (byte ", 8 + n + e.begin + static_cast<uint64_t>(bad) * t.itemsize(), ") is ",
                  element_text(t, bad < 0 ? 0 : bad),
                  "; non-finite weights are refused (load with allow_non_finite to accept them)");
    }
    if (e.dtype == DType::b8) {  // any byte but 0 and 1 would be an invalid C++ bool
      const auto* b = static_cast<const unsigned char*>(t.data_ptr());
      for (uint64_t i = 0; i < e.end - e.begin; ++i)
        NABLA_CHECK(b[i] <= 1, where, "tensor '", short_text(e.name), "' (entry at byte ", e.at,
                    "): BOOL element ", i, " at byte ", 8 + n + e.begin + i, " holds ",
                    static_cast<int>(b[i]), ", expected 0 or 1");
    }
    f.tensors.emplace_back(e.name, std::move(t));
  }
  return f;
}

// ---- files --------------------------------------------------------------------------------------

void write_all(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t w = ::write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw std::system_error(errno, std::generic_category(), "write");
    p += w;
    len -= static_cast<size_t>(w);
  }
}

}  // namespace

Tensor SafetensorsFile::get(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  std::string have;
  for (size_t i = 0; i < tensors.size() && i < 20; ++i) have += (i ? ", " : "") + tensors[i].first;
  if (tensors.size() > 20) have += ", ...";
  fail("safetensors: ", source, ": no tensor named '", name, "'; the file has ", tensors.size(),
       tensors.size() == 1 ? " tensor" : " tensors", have.empty() ? "" : ": ", have);
}

bool SafetensorsFile::contains(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return true;
  return false;
}

std::string save_safetensors_to_bytes(const NamedTensors& tensors,
                                      const std::map<std::string, std::string>& metadata,
                                      const SafetensorsSaveOptions& options) {
  Prepared p = prepare(tensors, metadata, options);
  std::string out = std::move(p.head);
  for (const auto& [name, t] : p.tensors) out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return out;
}

SafetensorsFile load_safetensors_from_bytes(const std::string& bytes, const std::string& source,
                                            const SafetensorsLoadOptions& options) {
  return load(
      source, bytes.size(),
      [&](uint64_t at, void* dst, uint64_t len) { std::memcpy(dst, bytes.data() + at, len); }, options);
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata,
                      const SafetensorsSaveOptions& options) {
  Prepared p =
      prepare(tensors, metadata, options);  // before touching the disk: bad input leaves nothing behind
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  NABLA_CHECK(fd >= 0, "safetensors: cannot create ", tmp, ": ", std::strerror(errno));
  try {
    write_all(fd, p.head.data(), p.head.size());
    for (const auto& [name, t] : p.tensors) write_all(fd, t.data_ptr(), t.nbytes());
    // The data must be on disk before the rename makes it the file; otherwise a crash could leave the
    // new name pointing at blocks never written.
    if (::fsync(fd) != 0) throw std::system_error(errno, std::generic_category(), "fsync");
    int fd_closed = fd;
    fd = -1;
    if (::close(fd_closed) != 0) throw std::system_error(errno, std::generic_category(), "close");
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw std::system_error(errno, std::generic_category(), "rename to " + path);
  } catch (const std::system_error& e) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    fail("safetensors: cannot write ", path, ": ", e.what(), " (on ", tmp, ")");
  }
  // Persist the rename itself (best effort: some file systems refuse fsync on directories).
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

SafetensorsFile load_safetensors(const std::string& path, const SafetensorsLoadOptions& options) {
  // Only regular files: a FIFO would block the open, a device (/dev/zero) never ends. O_NONBLOCK keeps the
  // open itself from waiting on a FIFO that slipped in after the stat.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    fail("safetensors: cannot open ", path, ": ",
         err == ELOOP ? "a symlink loop (too many levels of symbolic links)" : std::strerror(err));
  }
  NABLA_CHECK(!S_ISDIR(st.st_mode), "safetensors: ", path, " is a directory, not a file");
  NABLA_CHECK(S_ISREG(st.st_mode), "safetensors: ", path, " is not a regular file (",
              S_ISFIFO(st.st_mode)  ? "a FIFO"
              : S_ISCHR(st.st_mode) ? "a character device"
                                    : "a special file",
              "); checkpoints are read from regular files only");
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  NABLA_CHECK(fd >= 0, "safetensors: cannot open ", path, ": ", std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  NABLA_CHECK(::fstat(fd, &st) == 0 && S_ISREG(st.st_mode), "safetensors: ", path,
              " is not a regular file (it changed while opening)");
  return load(
      path, static_cast<uint64_t>(st.st_size),
      [&](uint64_t at, void* dst, uint64_t len) {
        auto* p = static_cast<char*>(dst);
        while (len > 0) {
          ssize_t got = ::pread(fd, p, std::min<uint64_t>(len, 1 << 30), static_cast<off_t>(at));
          if (got < 0 && errno == EINTR) continue;
          NABLA_CHECK(got > 0, "safetensors: ", path, ": short read of ", len, " bytes at byte ", at,
                      got < 0 ? std::string(" (") + std::strerror(errno) + ")"
                              : std::string(" (did the file change while loading?)"));
          p += got;
          at += static_cast<uint64_t>(got);
          len -= static_cast<uint64_t>(got);
        }
      },
      options);
}

}  // namespace nabla
