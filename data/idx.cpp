// IDX reader and writer (idx.h). The file is read whole (decompressed if gzip) and parsed from memory, so
// every check can say at which byte the problem is and how many bytes the file really has.
#include "data/idx.h"

#include <filesystem>
#include <vector>

#include "data/file_bytes.h"
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

IdxView parse_idx(const FileBytes& file, const std::string& path, uint32_t expected_magic, const char* what) {
  const std::vector<uint8_t>& b = file.bytes;
  const char* size_unit = file.gzipped ? " (decompressed)" : "";
  NABLA_CHECK(b.size() >= 4, "idx: ", path, ": expected a 4-byte magic number at byte 0, file has ", b.size(),
              " bytes", size_unit);
  uint32_t magic = read_be32(b.data());
  NABLA_CHECK(magic == expected_magic, "idx: ", path, ": bad magic ", hex32(magic), " at byte 0, expected ",
              hex32(expected_magic));
  IdxView v;
  int ndim = static_cast<int>(magic & 0xff);
  v.data_at = 4 + 4 * static_cast<size_t>(ndim);
  NABLA_CHECK(b.size() >= v.data_at, "idx: ", path, ": expected a ", v.data_at, "-byte header, file has ",
              b.size(), " bytes", size_unit);
  unsigned __int128 count = 1;  // dims are u32: three of them can overflow 64 bits
  for (int d = 0; d < ndim; ++d) {
    uint32_t n = read_be32(b.data() + 4 + 4 * d);
    v.dims.push_back(n);
    count *= n;
  }
  size_t have = b.size() - v.data_at;
  NABLA_CHECK(count <= have, "idx: ", path, ": expected ", static_cast<unsigned long long>(count),
              " bytes of ", what, " at byte ", v.data_at, ", file has ", have, size_unit);
  NABLA_CHECK(count == have, "idx: ", path, ": ", have - static_cast<size_t>(count),
              " unexpected bytes after the ", what, " at byte ", v.data_at + static_cast<size_t>(count));
  v.count = static_cast<int64_t>(count);
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
  FileBytes labels = read_file_bytes(labels_path, "idx");
  IdxView v = parse_idx(labels, labels_path, kIdxLabelsMagic, "labels");
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
  FileBytes file = read_file_bytes(path, "idx");
  IdxView v = parse_idx(file, path, kIdxImagesMagic, "pixels");
  Tensor images = Tensor::empty(v.dims, DType::u8);
  if (v.count > 0) std::copy_n(file.bytes.data() + v.data_at, v.count, images.data<uint8_t>());
  return images;
}

Tensor read_idx_labels(const std::string& path) {
  FileBytes file = read_file_bytes(path, "idx");
  IdxView v = parse_idx(file, path, kIdxLabelsMagic, "labels");
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
