#include "testing.h"

namespace nabla {
namespace {
using test::randn64;
using In = const std::vector<Tensor>&;

NABLA_GRADCHECK(view, split_dims) {
  EXPECT_GRADCHECK([](In in) { return in[0].view({2, 3, 2}) * 2.0; }, {randn64({6, 2})});
}
NABLA_GRADCHECK(reshape, of_transpose_copies) {
  EXPECT_GRADCHECK([](In in) { return in[0].t().reshape({-1}) * 3.0; }, {randn64({3, 4})});
}
NABLA_GRADCHECK(permute, three_dims) {
  EXPECT_GRADCHECK([](In in) { return in[0].permute({2, 0, 1}) * 1.5; }, {randn64({2, 3, 4})});
}
NABLA_GRADCHECK(transpose, last_two) {
  EXPECT_GRADCHECK([](In in) { return in[0].transpose(-1, -2) * 1.5; }, {randn64({2, 3, 4})});
}
NABLA_GRADCHECK(narrow, middle) {
  EXPECT_GRADCHECK([](In in) { return in[0].narrow(1, 1, 2) * 2.0; }, {randn64({3, 5})});
}
NABLA_GRADCHECK(select, row_and_negative_index) {
  EXPECT_GRADCHECK([](In in) { return in[0].select(0, -1) * in[0].select(1, 2).sum(); }, {randn64({3, 4})});
}
NABLA_GRADCHECK(expand, broadcast_dims) {
  Tensor r = randn64({2, 3, 4}, false);
  EXPECT_GRADCHECK([r](In in) { return in[0].expand({2, 3, 4}) * r; }, {randn64({3, 1})});
}
NABLA_GRADCHECK(squeeze, size_one) {
  EXPECT_GRADCHECK([](In in) { return in[0].squeeze(1) * 2.0; }, {randn64({3, 1, 2})});
}
NABLA_GRADCHECK(unsqueeze, middle) {
  EXPECT_GRADCHECK([](In in) { return in[0].unsqueeze(1) * 2.0; }, {randn64({3, 2})});
}
NABLA_GRADCHECK(flatten, inner_dims) {
  EXPECT_GRADCHECK([](In in) { return in[0].flatten(1) * 2.0; }, {randn64({2, 3, 2})});
}
NABLA_GRADCHECK(contiguous, of_permute) {
  EXPECT_GRADCHECK([](In in) { return in[0].permute({1, 0}).contiguous() * 2.0; }, {randn64({3, 4})});
}
NABLA_GRADCHECK(clone, plain) {
  EXPECT_GRADCHECK([](In in) { return in[0].clone() * in[0]; }, {randn64({3, 4})});
}

TEST(View, ViewsShareStorage) {
  Tensor a = test::randn32({3, 4});
  Tensor v = a.t();
  EXPECT_EQ(v.storage(), a.storage());
  EXPECT_FALSE(v.is_contiguous());
  v.select(0, 1).fill_(7.0);  // column 1 of a
  auto va = a.to_vector();
  for (int r = 0; r < 3; ++r) EXPECT_EQ(va[r * 4 + 1], 7.0);
}

TEST(View, NarrowSelectAndExpandHaveTheRightStrides) {
  Tensor a = arange(24).reshape({2, 3, 4});
  Tensor n = a.narrow(2, 1, 2);
  EXPECT_EQ(n.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(n.offset(), 1);
  test::expect_close(n.select(1, 2), {9, 10, 21, 22});
  Tensor e = arange(3).reshape({3, 1}).expand({3, 5});
  EXPECT_EQ(e.strides(), (Strides{1, 0}));
  test::expect_close(e.sum(), {5.0 * (0 + 1 + 2)});
}

TEST(View, ReshapeOfNonContiguousCopiesAndViewRefuses) {
  Tensor a = test::randn32({3, 4});
  Tensor r = a.t().reshape({12});
  EXPECT_NE(r.storage(), a.storage());
  test::expect_error([&] { a.t().view({12}); }, {"view", "reshape"});
  test::expect_close(r, a.t().contiguous().view({12}));
}

TEST(View, ViewOfSplitAndMergedContiguousDims) {
  Tensor a = test::randn32({4, 6});
  Tensor v = a.narrow(0, 1, 2).view({2, 2, 3});  // rows stay contiguous: no copy needed
  EXPECT_EQ(v.storage(), a.storage());
  EXPECT_EQ(v.strides(), (Strides{6, 3, 1}));
}

TEST(ViewErrors, BadArgumentsNameTheOp) {
  Tensor a = test::randn32({2, 3});
  test::expect_error([&] { a.reshape({4, 2}); }, {"reshape", "[4,2]", "6"});
  test::expect_error([&] { a.narrow(1, 2, 2); }, {"narrow", "size 3"});
  test::expect_error([&] { a.select(0, 5); }, {"select", "5"});
  test::expect_error([&] { a.permute({0, 0}); }, {"permute", "repeats"});
  test::expect_error([&] { a.expand({4, 3}); }, {"expand", "[2,3]", "[4,3]"});
  test::expect_error([&] { a.transpose(0, 2); }, {"transpose", "dim 2"});
}

}  // namespace
}  // namespace nabla
