// The kernel profiler (engine/profile.h, ops/dispatch.h's KernelCall): off, it records nothing; on, every
// kernel call is counted under its op's name with a positive time, backward kernels included; in host mode
// (NABLA_PROFILE=host) the same calls are counted without any synchronisation.
#include <regex>

#include "engine/profile.h"
#include "testing.h"

namespace nabla {
namespace {

// The calls column of `op`'s cpu row in the report, or -1.
int64_t calls_of(const std::string& report, const std::string& op) {
  std::smatch m;
  const std::regex row("(^|\\n)" + op + " +cpu +([0-9]+) +([0-9.]+)");
  return std::regex_search(report, m, row) ? std::stoll(m[2]) : -1;
}

struct ProfileOn {
  bool prev = profile::enabled();
  ProfileOn() {
    profile::reset();
    profile::set_enabled(true);
  }
  ~ProfileOn() {
    profile::set_enabled(prev);
    profile::reset();
  }
};

TEST(Profile, OffRecordsNothing) {
  const bool prev = profile::enabled();
  profile::set_enabled(false);
  profile::reset();
  Tensor a = test::randn32({16, 16});
  (void)matmul(a, a);
  EXPECT_EQ(profile::report(), "");
  profile::set_enabled(prev);
}

TEST(Profile, CountsEachKernelCallUnderItsOpWithItsTime) {
  ProfileOn on;
  Tensor a = test::randn32({96, 80}).requires_grad_(), b = test::randn32({80, 64});
  Tensor y = matmul(a, b);
  Tensor z = matmul(y, b.t());
  EXPECT_EQ(calls_of(profile::report(), "matmul"), 2) << profile::report();
  sum(z).backward();  // each matmul's backward runs one GEMM for a's side (b needs no gradient)
  const std::string r = profile::report();
  EXPECT_EQ(calls_of(r, "matmul"), 4) << r;
  EXPECT_GT(calls_of(r, "sum"), 0) << r;
  EXPECT_NE(r.find("total (kernels only)"), std::string::npos) << r;
  // The times are real: a large GEMM's row is not zero.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r, m, std::regex("(^|\\n)matmul +cpu +[0-9]+ +([0-9.]+)")));
  EXPECT_GT(std::stod(m[2]), 0.0);
}

TEST(Profile, AKernelThatCallsAnotherSlotIsOneRow) {
  ProfileOn on;
  // On the CPU a channels-last max_pool2d computes in NCHW scratch and copies the result into place
  // through the copy slot: that copy is part of max_pool2d's row, not a row of its own.
  Tensor x = test::randn32({2, 5, 8, 8}).contiguous(MemoryFormat::ChannelsLast);
  Tensor y = max_pool2d(x, {2, 2}, {2, 2});
  ASSERT_TRUE(y.is_contiguous(MemoryFormat::ChannelsLast));
  const std::string r = profile::report();
  EXPECT_EQ(calls_of(r, "max_pool2d"), 1) << r;
  EXPECT_EQ(r.find("channels_last"), std::string::npos) << r;
}

TEST(Profile, HostModeCountsTheSameCallsWithoutSynchronising) {
  ProfileOn on;
  profile::set_enabled(true, /*host_only=*/true);
  // A sync hook that counts: host mode must never call it.
  static int syncs = 0;
  syncs = 0;
  profile::set_sync_hook(DeviceType::cpu, [](Device) { ++syncs; });
  Tensor a = test::randn32({64, 48}).requires_grad_(), b = test::randn32({48, 32});
  sum(matmul(a, b)).backward();
  const std::string r = profile::report();
  EXPECT_EQ(calls_of(r, "matmul"), 2) << r;
  EXPECT_NE(r.find("NABLA_PROFILE=host: host time"), std::string::npos) << r;
  EXPECT_EQ(syncs, 0);
  profile::set_enabled(true, /*host_only=*/false);
  (void)matmul(a, b);
  EXPECT_EQ(syncs, 2) << "the device profile waits before and after each kernel";
  profile::set_sync_hook(DeviceType::cpu, nullptr);
}

}  // namespace
}  // namespace nabla
