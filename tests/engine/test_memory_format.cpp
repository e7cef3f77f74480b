// Tests of the memory formats (engine/tensor.h): channels-last strides, the is_contiguous(format) and
// suggest_memory_format rules (PyTorch's, including the ambiguous size-1 cases), contiguous(format) with
// its gradient, dense-layout detection, empty_strided, factories that take or keep a format, and casts /
// device moves that keep channels-last.
#include "testing.h"

namespace nabla {
namespace {
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

TEST(MemoryFormat, EmptyChannelsLastHasNhwcStrides) {
  Tensor t = Tensor::empty({2, 3, 4, 5}, DType::f32, Device::cpu(), kCL);
  EXPECT_EQ(t.strides(), (Strides{60, 1, 15, 3}));
  EXPECT_TRUE(t.is_contiguous(kCL));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.suggest_memory_format(), kCL);
  EXPECT_TRUE(t.is_non_overlapping_and_dense());
  test::expect_error(
      [] {
        Tensor::empty({2, 3, 4}, DType::f32, Device::cpu(), kCL);
      },
      {"empty", "channels_last", "4-D", "[2,3,4]"});
}

TEST(MemoryFormat, PermutedNhwcStorageIsChannelsLast) {
  Tensor nhwc = test::randn32({2, 5, 6, 3});
  Tensor x = nhwc.permute({0, 3, 1, 2});
  EXPECT_TRUE(x.is_contiguous(kCL));
  EXPECT_EQ(x.suggest_memory_format(), kCL);
  // A row-major tensor is not channels-last unless the layouts coincide.
  Tensor r = test::randn32({2, 3, 5, 6});
  EXPECT_FALSE(r.is_contiguous(kCL));
  EXPECT_EQ(r.suggest_memory_format(), MemoryFormat::Contiguous);
}

TEST(MemoryFormat, AmbiguousSizeOneLayoutsAreBothAndSuggestContiguous) {
  // C == 1 and H == W == 1: the same memory either way; suggest_memory_format prefers row-major (PyTorch).
  for (Shape s : {Shape{2, 1, 4, 5}, Shape{3, 7, 1, 1}}) {
    Tensor t = Tensor::empty(s, DType::f32, Device::cpu(), kCL);
    EXPECT_TRUE(t.is_contiguous()) << s;
    EXPECT_TRUE(t.is_contiguous(kCL)) << s;
    EXPECT_EQ(t.suggest_memory_format(), MemoryFormat::Contiguous) << s;
  }
}

TEST(MemoryFormat, ContiguousChannelsLastKeepsValuesAndGradient) {
  Tensor x = test::randn64({2, 3, 4, 5});
  Tensor y = x.contiguous(kCL);
  EXPECT_TRUE(y.is_contiguous(kCL));
  EXPECT_EQ(y.strides(), channels_last_strides(x.shape()));
  test::expect_close(y, x.to_double_vector(), 0.0);
  // Already channels-last: the same tensor.
  EXPECT_TRUE(y.contiguous(kCL).is_same(y));
  // Back to row-major.
  Tensor z = y.contiguous();
  EXPECT_TRUE(z.is_contiguous());
  test::expect_close(z, x.to_double_vector(), 0.0);
  // The copy is differentiable: d sum(y * w) / dx = w.
  Tensor w = test::randn64({2, 3, 4, 5}, false);
  (y * w).sum().backward();
  test::expect_close(x.grad(), w.to_double_vector(), 1e-12);
  test::expect_error([] { test::randn32({2, 3, 4}).contiguous(kCL); }, {"channels_last", "4-D", "[2,3,4]"});
}

TEST(MemoryFormat, DenseLayoutDetection) {
  EXPECT_TRUE(is_non_overlapping_and_dense({2, 3}, {3, 1}));
  EXPECT_TRUE(is_non_overlapping_and_dense({2, 3}, {1, 2}));         // transposed
  EXPECT_TRUE(is_non_overlapping_and_dense({2, 1, 3}, {3, 99, 1}));  // a size-1 dim's stride is free
  EXPECT_FALSE(is_non_overlapping_and_dense({2, 3}, {0, 1}));        // expanded
  EXPECT_FALSE(is_non_overlapping_and_dense({2, 3}, {6, 1}));        // gaps (a narrow)
  EXPECT_FALSE(is_non_overlapping_and_dense({2, 3}, {1, 1}));        // overlapping
  Tensor t = test::randn32({4, 6});
  EXPECT_TRUE(t.t().is_non_overlapping_and_dense());
  EXPECT_FALSE(t.narrow(1, 0, 3).is_non_overlapping_and_dense());
}

TEST(MemoryFormat, EmptyStridedChecksTheLayout) {
  Tensor t = Tensor::empty_strided({3, 4}, {1, 3});
  EXPECT_EQ(t.strides(), (Strides{1, 3}));
  EXPECT_EQ(t.storage()->nbytes(), size_t(12 * 4));
  test::expect_error([] { Tensor::empty_strided({3, 4}, {8, 1}); }, {"empty_strided", "[8,1]", "[3,4]"});
}

TEST(MemoryFormat, FactoriesTakeAndKeepTheFormat) {
  Tensor z = zeros({2, 3, 4, 5}, {.memory_format = kCL});
  EXPECT_TRUE(z.is_contiguous(kCL) && !z.is_contiguous());
  EXPECT_EQ(sum(abs(z)).item(), 0.0);
  Tensor f = full({2, 3, 4, 5}, 2.5, {.memory_format = kCL});
  EXPECT_TRUE(f.is_contiguous(kCL));
  EXPECT_EQ(amin(f).item(), 2.5);
  // Random draws: the same values as the row-major draw of the same generator state, placed channels-last.
  Generator g1{1234, 0}, g2{1234, 0};
  Tensor r_cl = randn({2, 3, 4, 5}, {.memory_format = kCL}, &g1);
  Tensor r = randn({2, 3, 4, 5}, {}, &g2);
  EXPECT_TRUE(r_cl.is_contiguous(kCL) && !r_cl.is_contiguous());
  test::expect_close(r_cl, r, 0.0);
  // *_like keep a dense layout.
  EXPECT_TRUE(zeros_like(r_cl).is_contiguous(kCL));
  EXPECT_TRUE(empty_like(r_cl).is_contiguous(kCL));
  Tensor o = ones_like(r_cl);
  EXPECT_TRUE(o.is_contiguous(kCL));
  EXPECT_EQ(amin(o).item(), 1.0);
  EXPECT_EQ(full_like(r.t(), 3.0).strides(), r.t().strides());
  // A non-dense input gives a row-major result.
  EXPECT_TRUE(zeros_like(r.narrow(3, 0, 2)).is_contiguous());
}

TEST(MemoryFormat, CastsKeepChannelsLast) {
  Tensor x = test::randn32({2, 3, 4, 5}).contiguous(kCL);
  Tensor d = x.to(DType::f64);
  EXPECT_TRUE(d.is_contiguous(kCL) && !d.is_contiguous());
  test::expect_close(d, x, 0.0);
  Tensor b = x.to(DType::bf16);
  EXPECT_TRUE(b.is_contiguous(kCL));
  // A row-major tensor stays row-major.
  EXPECT_TRUE(test::randn32({2, 3}).t().to(DType::f64).is_contiguous());
}

}  // namespace
}  // namespace nabla
