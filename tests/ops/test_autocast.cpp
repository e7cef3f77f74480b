// Autocast on the CPU (ops/autocast.h): the thread-local state and its guards, and the policy's no-op on
// CPU tensors (every op under a guard gives bit-for-bit the result it gives without one). The CUDA
// behaviour is tested in tests/cuda/test_autocast.cpp.
#include <thread>

#include "testing.h"

namespace nabla {
namespace {

TEST(Autocast, GuardsNestAndRestoreTheState) {
  EXPECT_FALSE(autocast_enabled());
  EXPECT_EQ(autocast_dtype(), DType::bf16);
  {
    AutocastGuard outer(DType::f16);
    EXPECT_TRUE(autocast_enabled());
    EXPECT_EQ(autocast_dtype(), DType::f16);
    {
      AutocastGuard off(DType::bf16, /*enabled=*/false);
      EXPECT_FALSE(autocast_enabled());
      EXPECT_EQ(autocast_dtype(), DType::bf16);
    }
    EXPECT_TRUE(autocast_enabled());
    EXPECT_EQ(autocast_dtype(), DType::f16);
  }
  EXPECT_FALSE(autocast_enabled());
  EXPECT_EQ(autocast_dtype(), DType::bf16);
}

TEST(Autocast, OnlyBf16AndF16AreLowerPrecisionTypes) {
  test::expect_error([] { AutocastGuard g(DType::f32); }, {"autocast", "bf16 or f16", "f32"});
  EXPECT_FALSE(autocast_enabled());  // a failed guard changes nothing
  test::expect_error([] { set_autocast_dtype(DType::i64); }, {"autocast", "i64"});
}

TEST(Autocast, StateIsThreadLocal) {
  AutocastGuard guard;
  bool other = true;
  std::thread([&] { other = autocast_enabled(); }).join();
  EXPECT_FALSE(other);
  EXPECT_TRUE(autocast_enabled());
}

TEST(Autocast, CpuTensorsPassThroughUnchanged) {
  AutocastGuard guard;
  Tensor f = test::randn32({3, 4});
  Tensor h = f.to(DType::bf16);
  for (AutocastKind k : {AutocastKind::lower_precision, AutocastKind::f32}) {
    EXPECT_EQ(autocast_input(f, k).data_ptr(), f.data_ptr());
    EXPECT_EQ(autocast_input(h, k).dtype(), DType::bf16);
    EXPECT_FALSE(autocast_input(Tensor(), k).defined());
  }
  Tensor a = f, b = h;
  autocast_promote(a, b);
  EXPECT_EQ(b.dtype(), DType::bf16);  // no promotion on the CPU either
}

TEST(Autocast, IsANoOpOnCpuOps) {
  // An MLP with a conv front, softmax, norms, reductions and a loss: forward values and every gradient are
  // bit-for-bit the same under a guard.
  auto run = [](bool autocast) {
    Generator g{11, 0};
    Tensor x = randn({2, 3, 8, 8}, {}, &g);
    Tensor cw = randn({4, 3, 3, 3}, {.requires_grad = true}, &g),
           cb = randn({4}, {.requires_grad = true}, &g);
    Tensor w = randn({4 * 6 * 6, 5}, {.requires_grad = true}, &g),
           b = randn({5}, {.requires_grad = true}, &g);
    Tensor lw = ones({5}).requires_grad_(), y = randint(0, 5, {2}, {.dtype = DType::i64}, &g);
    std::vector<Tensor> outs;
    {
      AutocastGuard guard(DType::bf16, autocast);
      Tensor h = relu(conv2d(x, cw, cb));
      EXPECT_EQ(h.dtype(), DType::f32);
      Tensor z = layer_norm(matmul(h.reshape({2, -1}), w) + b, {5}, lw);
      Tensor p = softmax(z, 1);
      Tensor loss =
          cross_entropy(z, y) + mean(p) + var(z) + norm(z) + logsumexp(z) + einsum("ij,ij->", {z, z});
      EXPECT_EQ(loss.dtype(), DType::f32);
      loss.backward();
      outs = {loss.detach(), p.detach()};
    }
    for (const Tensor& t : {cw, cb, w, b, lw}) outs.push_back(t.grad());
    return outs;
  };
  std::vector<Tensor> plain = run(false), cast = run(true);
  ASSERT_EQ(plain.size(), cast.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(cast[i].dtype(), plain[i].dtype());
    test::expect_close(cast[i], plain[i], 0.0);
  }
}

TEST(Autocast, BackwardRunsWithAutocastOff) {
  Tensor x = test::randn32({3}).requires_grad_();
  bool seen_in_backward = true;
  AutocastGuard guard;
  Tensor y = x * 2.0;
  y.register_hook([&](const Tensor& g) {
    seen_in_backward = autocast_enabled();
    return Tensor();
  });
  sum(y).backward();
  EXPECT_FALSE(seen_in_backward);
  EXPECT_TRUE(autocast_enabled());  // restored after backward
}

}  // namespace
}  // namespace nabla
