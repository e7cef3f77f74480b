#include <cmath>
#include <omp.h>

#include <set>

#include "testing.h"

namespace nabla {
namespace {

TEST(DType, SixteenBitFloatsRoundToNearestEven) {
  EXPECT_EQ(to_bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(from_bf16(to_bf16(3.140625f)), 3.140625f);
  // 1 + 2^-8 lies halfway between two bf16 values: ties go to the even mantissa (1.0).
  EXPECT_EQ(from_bf16(to_bf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(to_f16(1.0f).bits, 0x3c00);
  EXPECT_EQ(to_f16(65504.0f).bits, 0x7bff);
  EXPECT_EQ(to_f16(1e6f).bits, 0x7c00);                     // overflow to inf
  EXPECT_EQ(from_f16(f16{0x0001}), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(from_f16(to_f16(-2.5f)), -2.5f);
  EXPECT_TRUE(std::isnan(from_f16(to_f16(NAN))));
  for (float v : {0.1f, -7.25f, 1234.5f, 3e-6f}) {
    EXPECT_NEAR(from_f16(to_f16(v)), v, std::abs(v) * 1e-3 + 6e-8);
    EXPECT_NEAR(from_bf16(to_bf16(v)), v, std::abs(v) * 8e-3);
  }
}

TEST(Tensor, CastsRoundTripThroughEveryDType) {
  Tensor x = from_vector({-3, -1, 0, 1, 2, 100}, {6});
  for (DType t : {DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64}) {
    Tensor y = x.to(t);
    EXPECT_EQ(y.dtype(), t);
    test::expect_close(y.to(DType::f32), x);
  }
  test::expect_close(x.to(DType::b8), {1, 1, 0, 1, 1, 1});
  test::expect_close(from_vector({1.7, -1.7}, {2}).to(DType::i32),
                     {1, -1});  // truncation, as C++ and PyTorch
}

TEST(Tensor, ContiguityAndStrides) {
  Tensor a = Tensor::empty({2, 3, 4});
  EXPECT_EQ(a.strides(), (Strides{12, 4, 1}));
  EXPECT_TRUE(a.is_contiguous());
  EXPECT_FALSE(a.transpose(0, 2).is_contiguous());
  EXPECT_EQ(a.numel(), 24);
  EXPECT_EQ(a.nbytes(), 96u);
}

TEST(Tensor, PrintingIsReadable) {
  Tensor a = from_vector({1, 2.5, -3, 4}, {2, 2});
  std::string s = a.str();
  EXPECT_NE(s.find("[[   1.0000,    2.5000],"), std::string::npos) << s;
  EXPECT_NE(s.find("dtype=f32, shape=[2,2]"), std::string::npos) << s;
  std::string big = arange(5000).str();
  EXPECT_NE(big.find("..."), std::string::npos);
  EXPECT_LT(big.size(), 200u);
}

TEST(Random, PhiloxMatchesThePublishedKnownAnswer) {
  // Random123 kat_vectors: philox4x32-10, counter = 0, key = 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8
  auto w = philox4x32(0, 0);
  EXPECT_EQ(w[0], 0x6627e8d5u);
  EXPECT_EQ(w[1], 0xe169c58du);
  EXPECT_EQ(w[2], 0xbc57ac4cu);
  EXPECT_EQ(w[3], 0x9b00dbd8u);
}

TEST(Random, SameSeedSameNumbersWhateverTheThreadCount) {
  Generator g1{42, 0}, g2{42, 0};
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  Tensor a = randn({100000}, {}, &g1);
  omp_set_num_threads(std::max(2, saved));
  Tensor b = randn({100000}, {}, &g2);
  omp_set_num_threads(saved);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  EXPECT_EQ(g1.offset, 50000u);
  Tensor c = randn({10}, {}, &g1);  // the stream moved on
  EXPECT_NE(c.to_vector()[0], a.to_vector()[0]);
}

TEST(Random, DistributionsHaveTheRightMoments) {
  Generator g{7, 0};
  Tensor n = normal({200000}, 2.0, 3.0, {.dtype = DType::f64}, &g);
  EXPECT_NEAR(mean(n).item(), 2.0, 0.03);
  EXPECT_NEAR(std_dev(n).item(), 3.0, 0.03);
  Tensor u = uniform({200000}, -1.0, 3.0, {.dtype = DType::f64}, &g);
  EXPECT_NEAR(mean(u).item(), 1.0, 0.02);
  EXPECT_GE(amin(u).item(), -1.0);
  EXPECT_LT(amax(u).item(), 3.0);
  Tensor r = randint(3, 9, {50000}, {}, &g);
  EXPECT_EQ(amin(r).item(), 3);
  EXPECT_EQ(amax(r).item(), 8);
  EXPECT_NEAR(mean(r.to(DType::f64)).item(), 5.5, 0.05);
}

TEST(Factory, RangesAndConstants) {
  test::expect_close(arange(2.0, 8.0, 2.0), {2, 4, 6});
  test::expect_close(arange(0.0, 1.0, 0.3, {.dtype = DType::f64}), {0, 0.3, 0.6, 0.9}, 1e-12);
  test::expect_close(linspace(-1, 1, 5), {-1, -0.5, 0, 0.5, 1});
  test::expect_close(full({2, 2}, 3.5), {3.5, 3.5, 3.5, 3.5});
  EXPECT_EQ(zeros({3}, {.dtype = DType::i32}).dtype(), DType::i32);
  test::expect_error([] { arange(0.0, 1.0, 0.0); }, {"arange", "step"});
  test::expect_error([] { from_vector({1, 2, 3}, {2, 2}); }, {"from_vector", "3 values", "[2,2]"});
}

TEST(Device, ParsesAndRejects) {
  EXPECT_EQ(Device::parse("cuda:1"), Device::cuda(1));
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  test::expect_error([] { Device::parse("gpu0"); }, {"gpu0", "cuda:N"});
}

TEST(Device, CudaTensorsWithoutACudaDeviceGiveAClearError) {
  try {
    zeros({2}, {.device = Device::cuda(0)});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos) << e.what();
    return;
  }
  GTEST_SKIP() << "this machine has a CUDA device";
}

}  // namespace
}  // namespace nabla
