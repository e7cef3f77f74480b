// einsum and tensordot: gradient checks, values against a naive loop over every label assignment, the
// implicit output order, and the error messages.
#include <map>
#include <string>

#include "testing.h"

namespace nabla {
namespace {
using test::randn64;
using In = const std::vector<Tensor>&;

// ---- gradient checks ----------------------------------------------------------------------------

NABLA_GRADCHECK(einsum, matrix_product) {
  EXPECT_GRADCHECK([](In in) { return einsum("ij,jk->ik", in); }, {randn64({3, 4}), randn64({4, 5})});
}
NABLA_GRADCHECK(einsum, batch_matmul) {
  EXPECT_GRADCHECK([](In in) { return einsum("bij,bjk->bik", in); },
                   {randn64({2, 3, 4}), randn64({2, 4, 3})});
}
NABLA_GRADCHECK(einsum, ring_of_three) {
  EXPECT_GRADCHECK([](In in) { return einsum("ijk,klm,mni->jln", in); },
                   {randn64({2, 3, 4}), randn64({4, 3, 2}), randn64({2, 3, 2})});
}
NABLA_GRADCHECK(einsum, ring_of_four) {
  EXPECT_GRADCHECK([](In in) { return einsum("abc,cde,efg,gha->bdfh", in); },
                   {randn64({2, 3, 2}), randn64({2, 2, 3}), randn64({3, 2, 2}), randn64({2, 3, 2})});
}
NABLA_GRADCHECK(einsum, outer_product) {
  EXPECT_GRADCHECK([](In in) { return einsum("i,j->ij", in); }, {randn64({3}), randn64({4})});
}
NABLA_GRADCHECK(einsum, reduce_one_label) {
  EXPECT_GRADCHECK([](In in) { return einsum("ij->j", in); }, {randn64({3, 4})});
}
NABLA_GRADCHECK(einsum, label_summed_in_one_operand_and_full_contraction) {
  EXPECT_GRADCHECK(
      [](In in) {
        return einsum("ijk,jl->li", {in[0], in[1]}) + einsum("ij,ij->", {in[2], in[2]});
      },
      {randn64({2, 3, 4}), randn64({3, 2}), randn64({2, 3})});
}
NABLA_GRADCHECK(einsum, noncontiguous_operands) {
  // a.t() and a permuted batch operand: both reach the GEMM through views of other layouts.
  EXPECT_GRADCHECK(
      [](In in) {
        return einsum("ij,bjk->bik", {in[0].t(), in[1].permute({2, 0, 1})});
      },
      {randn64({4, 3}), randn64({4, 5, 2})});
}
NABLA_GRADCHECK(einsum, implicit_output) {
  EXPECT_GRADCHECK([](In in) { return einsum("kj,ji", in); }, {randn64({3, 4}), randn64({4, 2})});
}

NABLA_GRADCHECK(tensordot, two_dims_at_once) {
  EXPECT_GRADCHECK(
      [](In in) {
        return tensordot(in[0], in[1], {1, 2}, {0, 1});
      },
      {randn64({2, 3, 4}), randn64({3, 4, 5})});
}
NABLA_GRADCHECK(tensordot, noncontiguous_and_reordered_dims) {
  EXPECT_GRADCHECK(
      [](In in) {
        return tensordot(in[0].permute({2, 0, 1}), in[1].t(), {0, -1}, {2, 1});
      },
      {randn64({3, 2, 4}), randn64({2, 5, 4})});
}

// ---- values -------------------------------------------------------------------------------------

// The definition, as one loop over every assignment of values to the labels.
Tensor naive_einsum(const std::string& inputs, const std::string& output, const std::vector<Tensor>& ops) {
  std::vector<std::string> terms(1);
  for (char c : inputs) {
    if (c == ',')
      terms.emplace_back();
    else
      terms.back().push_back(c);
  }
  std::map<char, int64_t> size;
  for (size_t i = 0; i < ops.size(); ++i)
    for (size_t d = 0; d < terms[i].size(); ++d) size[terms[i][d]] = ops[i].size(static_cast<int64_t>(d));
  std::vector<char> labels;
  for (auto& [l, n] : size) labels.push_back(l);
  std::vector<std::vector<double>> vals;
  for (const Tensor& t : ops) vals.push_back(t.to_double_vector());
  Shape out_shape;
  for (char c : output) out_shape.push_back(size[c]);
  std::vector<double> out(numel_of(out_shape), 0.0);
  std::map<char, int64_t> at;
  for (char l : labels) at[l] = 0;
  auto flat = [&](const std::string& term) {
    int64_t f = 0;
    for (char c : term) f = f * size[c] + at[c];
    return f;
  };
  while (true) {
    double p = 1.0;
    for (size_t i = 0; i < ops.size(); ++i) p *= vals[i][flat(terms[i])];
    out[flat(output)] += p;
    size_t k = labels.size();
    while (k > 0 && ++at[labels[k - 1]] == size[labels[k - 1]]) at[labels[--k]] = 0;
    if (k == 0) break;
  }
  Tensor r = Tensor::empty(out_shape, DType::f64);
  std::copy(out.begin(), out.end(), r.data<double>());
  return r;
}

void expect_matches_naive(const std::string& eq, const std::vector<Tensor>& ops, double tol = 1e-10) {
  const size_t arrow = eq.find("->");
  Tensor got = einsum(eq, ops);
  Tensor want = naive_einsum(eq.substr(0, arrow), eq.substr(arrow + 2), ops);
  SCOPED_TRACE(eq);
  test::expect_close(got, want, tol);
}

TEST(Einsum, MatchesTheNaiveLoopOnMatrixAndBatchProducts) {
  expect_matches_naive("ij,jk->ik", {randn64({5, 7}), randn64({7, 3})});
  expect_matches_naive("ij,jk->ki", {randn64({5, 7}), randn64({7, 3})});
  expect_matches_naive("ji,jk->ik", {randn64({7, 5}), randn64({7, 3})});  // left operand stored transposed
  expect_matches_naive("ij,kj->ik", {randn64({5, 7}), randn64({3, 7})});  // right operand stored transposed
  expect_matches_naive("bij,bjk->bik", {randn64({4, 3, 5}), randn64({4, 5, 2})});
  expect_matches_naive("ibj,jkb->kbi", {randn64({3, 4, 5}), randn64({5, 2, 4})});
  expect_matches_naive("i,i->", {randn64({6}), randn64({6})});
  expect_matches_naive("i,j->ij", {randn64({3}), randn64({4})});
  expect_matches_naive("ij->ji", {randn64({3, 4})});
  expect_matches_naive("ijk->kj", {randn64({3, 4, 2})});
  expect_matches_naive("ijk->", {randn64({3, 4, 2})});
}

TEST(Einsum, MatchesTheNaiveLoopOnRingContractions) {
  expect_matches_naive("abc,cde,efa->bdf", {randn64({3, 2, 4}), randn64({4, 3, 2}), randn64({2, 4, 3})});
  expect_matches_naive("ijk,klm,mni->jln", {randn64({2, 3, 4}), randn64({4, 5, 3}), randn64({3, 2, 2})});
  expect_matches_naive("abc,cde,efg,gha->bdfh",
                       {randn64({2, 3, 2}), randn64({2, 4, 3}), randn64({3, 2, 2}), randn64({2, 3, 2})});
  // A tensor-ring layer's shape: a batch label n, cores with ranks r/s/t and mode dims.
  expect_matches_naive("nbd,rbs,sdt,tor->no",
                       {randn64({3, 2, 4}), randn64({2, 2, 3}), randn64({3, 4, 2}), randn64({2, 5, 2})});
}

TEST(Einsum, MatchesTheNaiveLoopWhenLabelsAreSummedEarlyOrBatched) {
  expect_matches_naive("ijk,jl->il", {randn64({3, 4, 2}), randn64({4, 5})});  // k only in the first
  expect_matches_naive("ij,jkl->i", {randn64({3, 4}), randn64({4, 2, 5})});   // k, l only in the second
  expect_matches_naive("bi,bj,bk->bijk", {randn64({2, 3}), randn64({2, 4}), randn64({2, 2})});
  expect_matches_naive("ab,bc,cd,da->", {randn64({3, 4}), randn64({4, 2}), randn64({2, 5}), randn64({5, 3})});
  expect_matches_naive("Ab,bA->A", {randn64({3, 4}), randn64({4, 3})});
}

TEST(Einsum, AcceptsNonContiguousOperandsAndF32) {
  Tensor a = randn64({5, 4}, false), b = randn64({2, 3, 5}, false);
  Tensor got = einsum("ij,bki->bjk", {a.t().t(), b});
  expect_matches_naive("ij,bki->bjk", {a, b});
  test::expect_close(einsum("ji,bki->bjk", {a.t(), b}), got, 1e-10);
  test::expect_close(einsum("ij,bik->bjk", {a, b.permute({0, 2, 1})}), got, 1e-10);
  Tensor got32 = einsum("ij,bki->bjk", {a.to(DType::f32), b.to(DType::f32)});
  EXPECT_EQ(got32.dtype(), DType::f32);
  test::expect_close(got32, got, 1e-4);
}

TEST(Einsum, ImplicitFormOutputsLabelsSeenOnceInAsciiOrder) {
  Tensor x = randn64({3, 4}, false), y = randn64({4, 2}, false);
  test::expect_close(einsum("ij", {x}), x, 0.0);
  test::expect_close(einsum("ji", {x}), x.t().contiguous(), 0.0);  // output "ij": a transpose
  test::expect_close(einsum("kj,ji", {x, y}), matmul(x, y).t().contiguous(), 1e-12);  // output "ik"
  test::expect_close(einsum("ij,jk", {x, y}), matmul(x, y), 1e-12);
  // Uppercase sorts before lowercase; 'b' appears twice and is summed.
  Tensor u = randn64({2, 3}, false), v = randn64({3, 4}, false);
  Tensor w = einsum("aB,Bc", {u, v});  // output "ac"
  EXPECT_EQ(w.shape(), (Shape{2, 4}));
  Tensor z = einsum("ba,aC", {u, v});  // output "Cb"
  EXPECT_EQ(z.shape(), (Shape{4, 2}));
  test::expect_close(z, matmul(u, v).t().contiguous(), 1e-12);
  EXPECT_EQ(einsum("i,i", {randn64({5}), randn64({5})}).dim(), 0);
}

TEST(Einsum, IgnoresSpaces) {
  Tensor x = randn64({3, 4}, false), y = randn64({4, 2}, false);
  test::expect_close(einsum(" ij , jk -> ik ", {x, y}), matmul(x, y), 1e-12);
}

TEST(Tensordot, MatchesEinsum) {
  Tensor a = randn64({2, 3, 4}, false), b = randn64({4, 3, 5}, false);
  Tensor t = tensordot(a, b, {1, 2}, {1, 0});
  EXPECT_EQ(t.shape(), (Shape{2, 5}));
  test::expect_close(t, naive_einsum("ijk,kjl", "il", {a, b}), 1e-10);
  // No dims: the outer product, a's dims then b's.
  Tensor o = tensordot(a, b, {}, {});
  EXPECT_EQ(o.shape(), (Shape{2, 3, 4, 4, 3, 5}));
  test::expect_close(o, naive_einsum("ijk,lmn", "ijklmn", {a, b}), 1e-12);
  // Free dims keep their order even when the contracted dims come first.
  Tensor c = randn64({3, 2, 5}, false);
  test::expect_close(tensordot(c, a.permute({1, 0, 2}), {0}, {0}),
                     naive_einsum("ijk,ilm", "jklm", {c, a.permute({1, 0, 2})}), 1e-10);
}

// ---- errors -------------------------------------------------------------------------------------

TEST(EinsumErrors, NameTheProblem) {
  Tensor a = test::randn32({2, 3}), b = test::randn32({3, 4}), c = test::randn32({4, 5});
  test::expect_error([&] { einsum("ij,jk->ik", {a}); }, {"einsum", "2 operand", "1 tensor"});
  test::expect_error([&] { einsum("ij,jk->ik", {a, b, c}); }, {"einsum", "2 operand", "3 tensor"});
  test::expect_error(
      [&] {
        einsum("ij,jk->ik", {a, c});
      },
      {"einsum", "'j'", "size 3", "size 4", "[2,3]", "[4,5]"});
  test::expect_error([&] { einsum("i1,jk->ik", {a, b}); }, {"einsum", "invalid character '1'"});
  test::expect_error([&] { einsum("ij,jk->i_k", {a, b}); }, {"einsum", "invalid character '_'"});
  test::expect_error([&] { einsum("ij,jk=>ik", {a, b}); }, {"einsum", "invalid character"});
  test::expect_error([&] { einsum("ij,jk->ii", {a, b}); }, {"einsum", "'i'", "repeats in the output"});
  test::expect_error([&] { einsum("ij,jk->iz", {a, b}); }, {"einsum", "'z'", "does not appear"});
  test::expect_error([&] { einsum("ijk,jk->i", {a, b}); }, {"einsum", "operand 0", "[2,3]", "3 label"});
  test::expect_error([&] { einsum("ii->i", {test::randn32({3, 3})}); }, {"einsum", "'i'", "diagonal"});
  test::expect_error([&] { einsum("...ij,jk->...ik", {a, b}); }, {"einsum", "ellipsis"});
  test::expect_error([&] { einsum("ij->ij", {}); }, {"einsum", "at least one operand"});
  test::expect_error([&] { einsum("ij,jk->ik", {a, test::randn64({3, 4})}); }, {"einsum", "dtype"});
}

TEST(TensordotErrors, NameTheProblem) {
  Tensor a = test::randn32({2, 3, 4}), b = test::randn32({3, 4, 5});
  test::expect_error([&] { tensordot(a, b, {1, 2}, {0}); }, {"tensordot", "dims_a", "dims_b", "[2,3,4]"});
  test::expect_error([&] { tensordot(a, b, {0}, {0}); },
                     {"tensordot", "size 2", "size 3", "[2,3,4]", "[3,4,5]"});
  test::expect_error([&] { tensordot(a, b, {1, 1}, {0, 1}); }, {"tensordot", "repeats in dims_a"});
  test::expect_error([&] { tensordot(a, b, {1, 2}, {0, 0}); }, {"tensordot", "repeats in dims_b"});
  test::expect_error([&] { tensordot(a, b, {3}, {0}); }, {"tensordot"});
}

}  // namespace
}  // namespace nabla
