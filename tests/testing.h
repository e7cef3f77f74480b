// Test helpers: fresh random inputs, value comparison, and the gradient-check registry.
//
// Each differentiable op in ops/op_table.h must have at least one gradient-check case:
//   NABLA_GRADCHECK(mul, broadcast_noncontiguous) {
//     Tensor a = test::randn64({3, 1, 4}), b = test::randn64({2, 4}).t().contiguous()...;
//     EXPECT_GRADCHECK([](auto& in) { return mul(in[0], in[1]); }, {a, b});
//   }
// Every case becomes the test GradCheck.MatchesFiniteDifferences/<op>_<case>, and
// OpTable.EveryDifferentiableOpHasAGradientCheck fails for an op without a case.
#pragma once
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "nabla.h"

namespace nabla::test {

// A fresh seed per call, so inputs differ between tests and are never all zeros.
inline uint64_t next_seed() {
  static std::atomic<uint64_t> s{0x5eed0000};
  return s++;
}

inline Tensor randn64(const Shape& shape, bool requires_grad = true) {
  Generator g{next_seed(), 0};
  return randn(shape, {.dtype = DType::f64, .requires_grad = requires_grad}, &g);
}
inline Tensor rand64(const Shape& shape, double lo, double hi, bool requires_grad = true) {
  Generator g{next_seed(), 0};
  return uniform(shape, lo, hi, {.dtype = DType::f64, .requires_grad = requires_grad}, &g);
}
inline Tensor randn32(const Shape& shape) {
  Generator g{next_seed(), 0};
  return randn(shape, {}, &g);
}
// A non-contiguous f64 leaf with the given shape (a transposed copy's transpose view, materialised as a leaf
// of a larger buffer would not be a leaf). Returns a leaf whose *use* in f should go through .t() etc.
inline Tensor randint64(int64_t lo, int64_t hi, const Shape& shape) {
  Generator g{next_seed(), 0};
  return randint(lo, hi, shape, {.dtype = DType::i64}, &g);
}

struct GradCase {
  std::string op;
  std::string name;
  std::function<void()> run;
};

inline std::vector<GradCase>& gradcheck_registry() {
  static std::vector<GradCase> cases;
  return cases;
}

inline bool register_gradcheck(const char* op, const char* name, std::function<void()> run) {
  gradcheck_registry().push_back({op, name, std::move(run)});
  return true;
}

inline void expect_gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                             GradcheckOptions o = {}) {
  auto r = gradcheck(f, inputs, o);
  EXPECT_TRUE(r.ok) << r.report;
}

// Expects `body` to throw nabla::Error whose message contains every fragment.
inline void expect_error(const std::function<void()>& body, const std::vector<std::string>& fragments) {
  try {
    body();
    ADD_FAILURE() << "expected nabla::Error";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& f : fragments)
      EXPECT_NE(msg.find(f), std::string::npos) << "message: " << msg << "\nmissing: " << f;
  }
}

inline void expect_close(const Tensor& a, const std::vector<double>& expected, double tol = 1e-6) {
  std::vector<double> v = a.to_double_vector();
  ASSERT_EQ(v.size(), expected.size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], expected[i], tol) << "at element " << i;
}

inline void expect_close(const Tensor& a, const Tensor& b, double tol = 1e-6) {
  ASSERT_EQ(a.shape(), b.shape());
  expect_close(a, b.to_double_vector(), tol);
}

}  // namespace nabla::test

#define NABLA_GRADCHECK_CAT2(a, b) a##b
#define NABLA_GRADCHECK_CAT(a, b) NABLA_GRADCHECK_CAT2(a, b)
#define NABLA_GRADCHECK(op, name)                                                                \
  static void nabla_gradcheck_##op##_##name();                                                   \
  [[maybe_unused]] static const bool NABLA_GRADCHECK_CAT(nabla_gc_reg_##op##_##name, __LINE__) = \
      ::nabla::test::register_gradcheck(#op, #name, &nabla_gradcheck_##op##_##name);             \
  static void nabla_gradcheck_##op##_##name()

#define EXPECT_GRADCHECK(...) ::nabla::test::expect_gradcheck(__VA_ARGS__)
