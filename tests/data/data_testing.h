// Helpers for the data/ tests: a temporary directory that cleans up after itself, random byte images, and
// byte access to tensors.
#pragma once
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "data/data.h"
#include "data/file_bytes.h"
#include "testing.h"

namespace nabla::test {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("nabla_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Random u8 tensor with values in [lo, hi).
inline Tensor random_bytes(const Shape& shape, int64_t lo = 0, int64_t hi = 256) {
  Generator g{next_seed(), 0};
  return randint(lo, hi, shape, {.dtype = DType::u8}, &g);
}

inline std::vector<uint8_t> bytes_of(const Tensor& t) {
  Tensor c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  return std::vector<uint8_t>(p, p + c.nbytes());
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  return data::read_file_bytes(path, "test").bytes;
}

// Keeps the first `size` bytes of a file.
inline void truncate_file(const std::string& path, size_t size) { std::filesystem::resize_file(path, size); }

}  // namespace nabla::test
