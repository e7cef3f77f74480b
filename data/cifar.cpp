// CIFAR binary readers (cifar.h). Each record's planar RGB is interleaved into HWC as it is copied out.
#include "data/cifar.h"

#include <cstring>
#include <filesystem>
#include <vector>

#include "data/file_bytes.h"
#include "data/image.h"
#include "engine/error.h"

namespace nabla::data {
namespace {

namespace fs = std::filesystem;

// num_label_bytes = 1 (CIFAR-10: the class) or 2 (CIFAR-100: coarse, fine).
struct CifarFormat {
  const char* who;
  int num_label_bytes;
  int num_classes;         // of the last label byte (the one returned as `labels`)
  int num_coarse_classes;  // CIFAR-100 only
};
constexpr CifarFormat kCifar10{"cifar10", 1, 10, 0};
constexpr CifarFormat kCifar100{"cifar100", 2, 100, 20};

// Parses whole files into one LabeledImages, records in file order.
LabeledImages read_cifar_files(const std::vector<std::string>& paths, const CifarFormat& fmt) {
  const size_t record = fmt.num_label_bytes + kCifarPixels;
  std::vector<FileBytes> files;
  int64_t total = 0;
  for (const std::string& path : paths) {
    files.push_back(read_file_bytes(path, fmt.who));
    size_t n = files.back().bytes.size();
    NABLA_CHECK(n % record == 0, fmt.who, ": ", path, ": ", n, " bytes is not a whole number of ", record,
                "-byte records: a partial record of ", n % record, " bytes starts at byte ",
                n / record * record);
    total += static_cast<int64_t>(n / record);
  }
  LabeledImages d;
  d.images = Tensor::empty({total, kCifarSide, kCifarSide, 3}, DType::u8);
  d.labels = Tensor::empty({total}, DType::i64);
  if (fmt.num_label_bytes == 2) d.coarse_labels = Tensor::empty({total}, DType::i64);
  uint8_t* img = d.images.data<uint8_t>();
  int64_t* labels = d.labels.data<int64_t>();
  int64_t row = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const std::vector<uint8_t>& b = files[f].bytes;
    for (size_t at = 0; at < b.size(); at += record, ++row) {
      if (fmt.num_label_bytes == 2) {
        uint8_t coarse = b[at];
        NABLA_CHECK(coarse < fmt.num_coarse_classes, fmt.who, ": ", paths[f], ": coarse label ", int{coarse},
                    " at byte ", at, " is not a class in 0..", fmt.num_coarse_classes - 1);
        d.coarse_labels.data<int64_t>()[row] = coarse;
      }
      size_t label_at = at + fmt.num_label_bytes - 1;
      uint8_t label = b[label_at];
      NABLA_CHECK(label < fmt.num_classes, fmt.who, ": ", paths[f], ": label ", int{label}, " at byte ",
                  label_at, " is not a class in 0..", fmt.num_classes - 1);
      labels[row] = label;
      const uint8_t* planes = b.data() + at + fmt.num_label_bytes;
      uint8_t* out = img + row * kCifarPixels;
      constexpr int64_t kPlane = kCifarSide * kCifarSide;
      for (int64_t p = 0; p < kPlane; ++p)
        for (int64_t c = 0; c < 3; ++c) out[p * 3 + c] = planes[c * kPlane + p];
    }
  }
  return d;
}

// `dir` itself when it holds `probe`, else dir/sub when that does, else an error naming both.
std::string resolve_dir(const std::string& dir, const std::string& sub, const std::string& probe,
                        const char* who) {
  std::error_code ec;
  if (fs::exists(fs::path(dir) / probe, ec)) return dir;
  fs::path nested = fs::path(dir) / sub;
  if (fs::exists(nested / probe, ec)) return nested.string();
  NABLA_CHECK(fs::is_directory(dir, ec), who, ": ", dir, ": no such directory");
  fail(who, ": no ", probe, " in ", dir, " or in ", nested.string());
}

// The CIFAR-10 classes in label order, which is also their names' sorted order (ImageFolder's order).
const std::vector<std::string> kCifar10Classes = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                  "dog",      "frog",       "horse", "ship", "truck"};

// A CIFAR-10 split stored as images: dir/<class>/<file>.{png,jpg} with the ten class folders. Every image
// must decode to 32 x 32 RGB. The samples are put in a fixed pseudo-random order (a seed-0 Fisher-Yates
// over the class-sorted file list) so that a head-of-file subset or a first-half / second-half split (the
// DARTS search's weight and architecture halves) holds every class, as the binary batches do.
LabeledImages read_cifar10_folder(const std::string& dir) {
  ImageFolder folder(dir, ImageMode::rgb, kCifar10Classes);
  const int64_t n = folder.size();
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  uint64_t state = 0x9E3779B97F4A7C15ull;  // splitmix64, seed 0
  auto next = [&state] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[next() % static_cast<uint64_t>(i + 1)]);
  LabeledImages d;
  d.images = Tensor::empty({n, kCifarSide, kCifarSide, 3}, DType::u8);
  d.labels = Tensor::empty({n}, DType::i64);
  uint8_t* img = d.images.data<uint8_t>();
  int64_t* labels = d.labels.data<int64_t>();
  std::string error;
#pragma omp parallel for schedule(dynamic, 256)
  for (int64_t i = 0; i < n; ++i) {
    try {
      Example e = folder.get(order[i]);
      const Tensor& t = e.input;
      NABLA_CHECK(t.dim() == 3 && t.size(0) == kCifarSide && t.size(1) == kCifarSide && t.size(2) == 3,
                  "cifar10: ", folder.samples()[order[i]].path, ": expected a 32 x 32 RGB image, got ",
                  t.shape());
      Tensor c = t.contiguous();
      std::memcpy(img + i * kCifarPixels, c.data<uint8_t>(), kCifarPixels);
      labels[i] = e.label;
    } catch (const std::exception& ex) {
#pragma omp critical(cifar10_folder_error)
      if (error.empty()) error = ex.what();
    }
  }
  if (!error.empty()) fail(error);
  return d;
}

}  // namespace

LabeledImages read_cifar10_file(const std::string& path) { return read_cifar_files({path}, kCifar10); }
LabeledImages read_cifar100_file(const std::string& path) { return read_cifar_files({path}, kCifar100); }

LabeledImages load_cifar10(const std::string& dir, bool train) {
  std::error_code ec;
  fs::path images = fs::path(dir) / (train ? "train" : "test");
  if (fs::is_directory(images / "airplane", ec)) return read_cifar10_folder(images.string());
  std::string probe = train ? "data_batch_1.bin" : "test_batch.bin";
  fs::path root = resolve_dir(dir, "cifar-10-batches-bin", probe, "cifar10");
  std::vector<std::string> paths;
  if (train)
    for (int i = 1; i <= 5; ++i)
      paths.push_back((root / ("data_batch_" + std::to_string(i) + ".bin")).string());
  else
    paths.push_back((root / probe).string());
  return read_cifar_files(paths, kCifar10);
}

LabeledImages load_cifar100(const std::string& dir, bool train) {
  std::string probe = train ? "train.bin" : "test.bin";
  fs::path root = resolve_dir(dir, "cifar-100-binary", probe, "cifar100");
  return read_cifar_files({(root / probe).string()}, kCifar100);
}

void write_cifar_file(const std::string& path, const LabeledImages& data) {
  const Tensor& images = data.images;
  NABLA_CHECK(images.defined() && images.dtype() == DType::u8 && images.dim() == 4 &&
                  images.size(1) == kCifarSide && images.size(2) == kCifarSide && images.size(3) == 3,
              "write_cifar_file: expected u8 images [N, 32, 32, 3], got ",
              images.defined() ? images.shape() : Shape{});
  int64_t n = images.size(0);
  NABLA_CHECK(data.labels.defined() && data.labels.shape() == Shape{n}, "write_cifar_file: expected labels [",
              n, "]");
  bool cifar100 = data.coarse_labels.defined();
  std::vector<int64_t> labels = data.labels.to_vector<int64_t>();
  std::vector<int64_t> coarse = cifar100 ? data.coarse_labels.to_vector<int64_t>() : std::vector<int64_t>();
  Tensor contiguous = images.contiguous();
  const uint8_t* img = contiguous.data<uint8_t>();
  constexpr int64_t kPlane = kCifarSide * kCifarSide;
  std::vector<uint8_t> bytes;
  bytes.reserve(static_cast<size_t>(n) * (kCifarPixels + 2));
  for (int64_t i = 0; i < n; ++i) {
    if (cifar100) bytes.push_back(static_cast<uint8_t>(coarse[i]));
    bytes.push_back(static_cast<uint8_t>(labels[i]));
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p = 0; p < kPlane; ++p) bytes.push_back(img[i * kCifarPixels + p * 3 + c]);
  }
  write_file_bytes(path, bytes);
}

}  // namespace nabla::data
