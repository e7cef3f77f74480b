// CUDA/CPU parity: every op, forward and backward, on fresh random inputs (the model is ggml's
// test-backend-ops). A case builds CPU inputs and a function of them:
//
//   NABLA_PARITY(mul, broadcast) {
//     EXPECT_PARITY([](In in) { return mul(in[0], in[1]); }, {test::parity_randn({3, 1, 4}), test::parity_randn({2, 4})});
//   }
//
// expect_parity runs f on the CPU inputs, back-propagates a random cotangent, copies the inputs to the GPU
// (keeping requires_grad), runs f there with the same cotangent, and compares the outputs and every input
// gradient with a tolerance for the dtype. Non-differentiable inputs (indices, masks) go in the same list.
// TF32 is off during parity runs so that f32 tolerances can stay tight; tests/cuda/test_runtime.cpp checks
// TF32 separately. Every op of ops/op_table.h must have a case (ParityTable.EveryOpHasAParityCase).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "cuda/runtime.h"
#include "testing.h"

namespace nabla::test {

struct ParityOptions {
  double atol = 1e-4;
  double rtol = 1e-4;
  bool check_grads = true;
};

struct ParityCase {
  std::string op, name;
  std::function<void()> run;
};

inline std::vector<ParityCase>& parity_registry() {
  static std::vector<ParityCase> cases;
  return cases;
}

inline bool register_parity(const char* op, const char* name, std::function<void()> run) {
  parity_registry().push_back({op, name, std::move(run)});
  return true;
}

// Fresh random f32 CPU inputs that require grad.
inline Tensor parity_randn(const Shape& shape, bool requires_grad = true, DType dtype = DType::f32) {
  Generator g{next_seed(), 0};
  return randn(shape, {.dtype = dtype, .requires_grad = requires_grad && is_floating(dtype)}, &g);
}
inline Tensor parity_uniform(const Shape& shape, double lo, double hi, bool requires_grad = true) {
  Generator g{next_seed(), 0};
  return uniform(shape, lo, hi, {.requires_grad = requires_grad}, &g);
}

void compare_tensors(const Tensor& cpu, const Tensor& gpu, const ParityOptions& o, const std::string& what);

void expect_parity(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& cpu_inputs,
                   ParityOptions o = {});

}  // namespace nabla::test

#define NABLA_PARITY(op, name)                                                                   \
  static void nabla_parity_##op##_##name();                                                      \
  [[maybe_unused]] static const bool NABLA_GRADCHECK_CAT(nabla_parity_reg_##op##_##name, __LINE__) = \
      ::nabla::test::register_parity(#op, #name, &nabla_parity_##op##_##name);                    \
  static void nabla_parity_##op##_##name()

#define EXPECT_PARITY(...) ::nabla::test::expect_parity(__VA_ARGS__)
