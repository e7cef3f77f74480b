// IDX reader and writer (idx.h). The header is read first; the file is then read whole (decompressed if
// gzip, never past the size the header declares) and parsed from memory, so every check can say at which
// byte the problem is and how many bytes the file really has. Sizes from the header are multiplied with
// overflow checks (engine/checked.h): three dimensions of 2^32 - 1 are an error, not a wrapped count.
#include "data/idx.h"

#include <filesystem>
#include <vector>

#include "data/file_bytes.h"
#include "engine/checked.h"
#include "engine/error.h"

namespace nabla::data {
namespace {

namespace fs = std::filesystem;

// Parses an u8 IDX file with the expected magic; returns its dims and the offset of the first element.
struct IdxView {
  std::vector<int64_t> dims;
  size_t data_at = 0;
  int64_t count = 0;  // elements
};

// Reads the header first (a prefix of the file, decompressed if gzip), then the whole file with the size
// the header declares as the bound: a small gzip file that inflates to gigabytes stops one byte past it.
IdxView read_idx(const std::string& path, uint32_t expected_magic, const char* what, FileBytes* file) {
  FileBytes head = read_file_prefix(path, "idx", 4);
  const char* size_unit = head.gzipped ? " (decompressed)" : "";
  NABLA_CHECK(head.bytes.size() >= 4, "idx: ", path, ": expected a 4-byte magic number at byte 0, file has ",
              head.bytes.size(), " bytes", size_unit);
  uint32_t magic = read_be32(head.bytes.data());
  NABLA_CHECK(magic == expected_magic, "idx: ", path, ": bad magic ", hex32(magic), " at byte 0, expected ",
              hex32(expected_magic));
  IdxView v;
  const int ndim = static_cast<int>(magic & 0xff);
  v.data_at = 4 + 4 * static_cast<size_t>(ndim);
  head = read_file_prefix(path, "idx", v.data_at);
  NABLA_CHECK(head.bytes.size() >= v.data_at, "idx: ", path, ": expected a ", v.data_at,
              "-byte header, file has ", head.bytes.size(), " bytes", size_unit);
  for (int d = 0; d < ndim; ++d) v.dims.push_back(read_be32(head.bytes.data() + 4 + 4 * d));
  // Checked even when a dimension is 0: the strides of the other dimensions must still fit.
  v.count = checked_product(v.dims, str_cat("idx: ", path, ": the dimensions at byte 4"));
  const int64_t total =
      checked_add(v.count, static_cast<int64_t>(v.data_at), str_cat("idx: ", path, ": file size"));
  // A raw file's size is known before reading: its extra bytes get an exact count below.
  *file = head.gzipped
              ? read_file_bytes_bounded(path, "idx", static_cast<uint64_t>(total),
                                        str_cat("its header declares (", shape_str(v.dims), " ", what, ")"))
              : read_file_bytes(path, "idx");
  const std::vector<uint8_t>& b = file->bytes;
  const size_t have = b.size() - std::min(b.size(), v.data_at);
  NABLA_CHECK(static_cast<uint64_t>(v.count) <= have, "idx: ", path, ": expected ", v.count, " bytes of ",
              what, " at byte ", v.data_at, ", file has ", have, size_unit);
  NABLA_CHECK(static_cast<uint64_t>(v.count) == have, "idx: ", path, ": ",
              have - static_cast<size_t>(v.count), " unexpected bytes after the ", what, " at byte ",
              v.data_at + static_cast<size_t>(v.count));
  return v;
}

// Finds `name` or `name.gz` in dir, also spelt "train-images.idx3-ubyte" as some mirrors do.
std::string find_idx_file(const std::string& dir, const std::string& name, const char* who) {
  std::string dotted = name;
  size_t dash = dotted.find("-idx");
  if (dash != std::string::npos) dotted[dash] = '.';
  for (const std::string& base : {name, dotted})
    for (const char* ext : {"", ".gz"}) {
      fs::path p = fs::path(dir) / (base + ext);
      std::error_code ec;
      if (fs::is_regular_file(p, ec)) return p.string();
    }
  std::error_code ec;
  NABLA_CHECK(fs::is_directory(dir, ec), who, ": ", dir, ": no such directory");
  fail(who, ": no ", name, " or ", name, ".gz in ", dir);
}

LabeledImages load_idx_dataset(const std::string& dir, bool train, const char* who) {
  std::string prefix = train ? "train" : "t10k";
  std::string images_path = find_idx_file(dir, prefix + "-images-idx3-ubyte", who);
  std::string labels_path = find_idx_file(dir, prefix + "-labels-idx1-ubyte", who);
  LabeledImages d;
  d.images = read_idx_images(images_path);
  FileBytes labels;
  IdxView v = read_idx(labels_path, kIdxLabelsMagic, "labels", &labels);
  NABLA_CHECK(v.dims[0] == d.images.size(0), who, ": ", images_path, " has ", d.images.size(0),
              " images but ", labels_path, " has ", v.dims[0], " labels");
  d.labels = Tensor::empty({v.dims[0]}, DType::i64);
  int64_t* out = d.labels.data<int64_t>();
  for (int64_t i = 0; i < v.count; ++i) {
    uint8_t label = labels.bytes[v.data_at + static_cast<size_t>(i)];
    NABLA_CHECK(label < 10, who, ": ", labels_path, ": label ", int{label}, " at byte ",
                v.data_at + static_cast<size_t>(i), " is not a class in 0..9");
    out[i] = label;
  }
  return d;
}

}  // namespace

Tensor read_idx_images(const std::string& path) {
  FileBytes file;
  IdxView v = read_idx(path, kIdxImagesMagic, "pixels", &file);
  Tensor images = Tensor::empty(v.dims, DType::u8);
  if (v.count > 0) std::copy_n(file.bytes.data() + v.data_at, v.count, images.data<uint8_t>());
  return images;
}

Tensor read_idx_labels(const std::string& path) {
  FileBytes file;
  IdxView v = read_idx(path, kIdxLabelsMagic, "labels", &file);
  Tensor labels = Tensor::empty(v.dims, DType::i64);
  int64_t* out = labels.data<int64_t>();
  for (int64_t i = 0; i < v.count; ++i) out[i] = file.bytes[v.data_at + static_cast<size_t>(i)];
  return labels;
}

void write_idx(const std::string& path, const Tensor& data, bool gzip) {
  NABLA_CHECK(data.dim() == 1 || data.dim() == 3,
              "write_idx: expected labels [N] or images [N, rows, cols], got ", data.shape());
  NABLA_CHECK(is_integral(data.dtype()), "write_idx: expected an integer tensor, got ", data.dtype());
  uint32_t magic = data.dim() == 3 ? kIdxImagesMagic : kIdxLabelsMagic;
  std::vector<uint8_t> bytes;
  auto put32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<uint8_t>(v >> s));
  };
  put32(magic);
  for (int64_t n : data.shape()) put32(static_cast<uint32_t>(n));
  for (double v : data.to_double_vector()) {
    NABLA_CHECK(v >= 0 && v <= 255, "write_idx: ", path, ": value ", v, " does not fit in a byte");
    bytes.push_back(static_cast<uint8_t>(v));
  }
  write_file_bytes(path, bytes, gzip);
}

LabeledImages load_mnist(const std::string& dir, bool train) { return load_idx_dataset(dir, train, "mnist"); }

LabeledImages load_fashion_mnist(const std::string& dir, bool train) {
  return load_idx_dataset(dir, train, "fashion-mnist");
}

}  // namespace nabla::data
