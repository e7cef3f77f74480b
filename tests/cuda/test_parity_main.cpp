// The parity harness (tests/cuda/parity.h) and the tests that walk the op table.
#include <cmath>
#include <set>
#include <sstream>

#include "parity.h"

namespace nabla::test {

void compare_tensors(const Tensor& cpu, const Tensor& gpu, const ParityOptions& o, const std::string& what) {
  ASSERT_EQ(cpu.defined(), gpu.defined()) << what << ": defined on one backend only";
  if (!cpu.defined()) return;
  ASSERT_EQ(cpu.shape(), gpu.shape()) << what;
  ASSERT_EQ(cpu.dtype(), gpu.dtype()) << what;
  EXPECT_TRUE(gpu.device().is_cuda()) << what << " is on " << gpu.device();
  std::vector<double> a = cpu.to_double_vector(), b = gpu.to_double_vector();
  int64_t bad = 0, first = -1;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    double err = std::abs(a[i] - b[i]);
    if (!(err <= o.atol + o.rtol * std::abs(a[i]))) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
      worst = std::max(worst, std::isnan(err) ? INFINITY : err);
    }
  }
  EXPECT_EQ(bad, 0) << what << " " << cpu.shape() << ": " << bad << " elements differ, first at " << first << " (cpu "
                    << (first >= 0 ? a[first] : 0) << ", cuda " << (first >= 0 ? b[first] : 0) << "), worst |diff| " << worst;
}

void expect_parity(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& cpu_inputs,
                   ParityOptions o) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  bool prev_tf32 = cuda::tf32_enabled();
  cuda::set_tf32_enabled(false);
  Tensor out_cpu = f(cpu_inputs);
  const bool grads = o.check_grads && out_cpu.requires_grad();
  Tensor r;
  if (grads) {
    Generator g{next_seed(), 0};
    r = randn(out_cpu.shape(), {.dtype = out_cpu.dtype()}, &g);
    out_cpu.backward(r);
  }
  std::vector<Tensor> gpu_inputs;
  for (const Tensor& t : cpu_inputs) {
    if (!t.defined()) {
      gpu_inputs.emplace_back();
      continue;
    }
    Tensor g = t.detach().to(Device::cuda(0));
    if (t.requires_grad()) g.requires_grad_(true);
    gpu_inputs.push_back(g);
  }
  Tensor out_gpu = f(gpu_inputs);
  compare_tensors(out_cpu.detach(), out_gpu.detach(), o, "output");
  if (grads) {
    out_gpu.backward(r.to(Device::cuda(0)));
    for (size_t i = 0; i < cpu_inputs.size(); ++i)
      if (cpu_inputs[i].defined() && cpu_inputs[i].requires_grad())
        compare_tensors(cpu_inputs[i].grad(), gpu_inputs[i].grad(), o, "gradient of input " + std::to_string(i));
  }
  cuda::set_tf32_enabled(prev_tf32);
}

}  // namespace nabla::test

namespace nabla {
namespace {

TEST(ParityTable, EveryOpHasAParityCase) {
  std::set<std::string> covered;
  for (const auto& c : test::parity_registry()) covered.insert(c.op);
  std::vector<std::string> missing;
  for (const auto& op : ops::op_table())
    if (!covered.count(op.name)) missing.push_back(op.name);
  std::ostringstream os;
  for (auto& m : missing) os << m << " ";
  EXPECT_TRUE(missing.empty()) << "ops without a CUDA parity case in tests/cuda: " << os.str();
}

TEST(ParityTable, EveryCaseNamesAnOpOfTheTable) {
  std::set<std::string> names;
  for (const auto& op : ops::op_table()) names.insert(op.name);
  for (const auto& c : test::parity_registry()) EXPECT_TRUE(names.count(c.op)) << "unknown op " << c.op;
}

class Parity : public ::testing::TestWithParam<size_t> {};
TEST_P(Parity, CudaMatchesCpu) { test::parity_registry()[GetParam()].run(); }

std::vector<size_t> all_cases() {
  std::vector<size_t> ids(test::parity_registry().size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = i;
  return ids;
}

INSTANTIATE_TEST_SUITE_P(Ops, Parity, ::testing::ValuesIn(all_cases()), [](const auto& info) {
  const auto& c = test::parity_registry()[info.param];
  return c.op + "_" + c.name;
});

}  // namespace
}  // namespace nabla
