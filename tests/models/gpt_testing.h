// Helpers shared by the GPT and LoRA tests: small models, random ids, comparisons, temporary folders.
#pragma once
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "models/gpt.h"
#include "testing.h"

namespace nabla::test {

inline Tensor random_ids(int64_t b, int64_t t, int64_t vocab) { return randint64(0, vocab, {b, t}); }

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  auto va = a.to_double_vector(), vb = b.to_double_vector();
  double m = 0;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_double_vector() == b.to_double_vector();
}

// One OpenMP thread for tests that run thousands of tiny ops: with ctest running tests side by side on two
// cores, every op's parallel region would wait for a descheduled thread (as tests/models/test_bert.cpp).
struct SingleThreadScope {
  int saved = omp_get_max_threads();
  SingleThreadScope() { omp_set_num_threads(1); }
  ~SingleThreadScope() { omp_set_num_threads(saved); }
};

// A fresh, empty folder under the system's temporary directory, removed with the object.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    path_ = std::filesystem::temp_directory_path() /
            ("nabla_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(next_seed()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace nabla::test
