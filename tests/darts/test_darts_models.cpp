// DARTS operations, cells, genotypes and the BCNN / DARTS networks: shapes, values against their
// compositions, the mixed op's weighting, genotype text round trips and errors, derivation on hand-made
// alphas, and the authors' genotypes building with their parameter counts.
#include <cmath>

#include "models/bcnn.h"
#include "models/darts/cells.h"
#include "models/darts/genotype.h"
#include "models/darts/operations.h"
#include "testing.h"

namespace nabla {
namespace {
using namespace models;
using namespace models::darts;

Tensor input(const Shape& s) { return test::randn32(s); }

// Random BN statistics and affine values, so that compositions are checked on non-trivial numbers.
void randomise(nn::Module& m) {
  NoGradGuard ng;
  for (auto& [name, t] : m.state_dict()) {
    if (t.dtype() != DType::f32) continue;
    Tensor tt = t;
    if (name.find("running_var") != std::string::npos)
      tt.copy_(abs(test::randn32(t.shape())) + 0.5);
    else
      tt.copy_(test::randn32(t.shape()) * 0.5);
  }
}

Tensor bn_eval(const Tensor& x, const nn::BatchNorm& bn) {
  return batch_norm(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, false, 0.1, bn.eps);
}

TEST(DartsOps, EveryOperationKeepsShapeAtStride1AndHalvesAtStride2) {
  Tensor x = input({2, 4, 8, 8});
  for (int k = 0; k < kNumOps; ++k)
    for (int64_t stride : {1, 2})
      for (bool search : {false, true}) {
        auto op = make_op(static_cast<OpKind>(k), 4, stride, !search, search);
        Tensor y = op->forward(x);
        EXPECT_EQ(y.shape(), (Shape{2, 4, 8 / stride, 8 / stride})) << kPrimitives[k] << " stride " << stride;
      }
}

TEST(DartsOps, SepConvEqualsItsComposition) {
  SepConv op(3, 5, 5, 2, 2, true);
  randomise(op);
  op.eval();
  Tensor x = input({2, 3, 9, 9});
  auto half = [](const Tensor& h, const DilConv& d, int64_t stride) {
    Tensor t = conv2d(relu(h), d.depthwise->weight, Tensor(), {stride, stride}, {2, 2}, {1, 1}, h.size(1));
    return bn_eval(conv2d(t, d.pointwise->weight), *d.bn);
  };
  Tensor want = half(half(x, *op.first, 2), *op.second, 1);
  test::expect_close(op.forward(x), want, 1e-5);
  EXPECT_EQ(op.forward(x).shape(), (Shape{2, 5, 5, 5}));
}

TEST(DartsOps, DilConvEqualsItsComposition) {
  DilConv op(4, 4, 3, 1, 2, 2, true);
  randomise(op);
  op.eval();
  Tensor x = input({2, 4, 7, 7});
  Tensor t = conv2d(relu(x), op.depthwise->weight, Tensor(), {1, 1}, {2, 2}, {2, 2}, 4);
  test::expect_close(op.forward(x), bn_eval(conv2d(t, op.pointwise->weight), *op.bn), 1e-5);
}

TEST(DartsOps, FactorizedReduceConcatenatesTwoOffsetGrids) {
  FactorizedReduce op(3, 6, true);
  randomise(op);
  op.eval();
  Tensor x = input({2, 3, 6, 6});
  Tensor r = relu(x);
  Tensor a = conv2d(r, op.conv1->weight, Tensor(), {2, 2});
  Tensor b = conv2d(r.narrow(2, 1, 5).narrow(3, 1, 5).contiguous(), op.conv2->weight, Tensor(), {2, 2});
  test::expect_close(op.forward(x), bn_eval(cat({a, b}, 1), *op.bn), 1e-5);
  try {
    op.forward(input({1, 3, 5, 6}));
    FAIL() << "odd height accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("even H and W"), std::string::npos) << e.what();
  }
}

TEST(DartsOps, AvgPoolExcludesPaddingFromTheCount) {
  Pool3x3 pool(false, 1, 1, false);
  Tensor x = input({1, 1, 4, 4});
  Tensor y = pool.forward(x);
  // corner (0, 0): the mean of the 2 x 2 real pixels, not of 9
  const double want =
      (x.select(2, 0).select(2, 0).item<double>() + x.select(2, 0).select(2, 1).item<double>() +
       x.select(2, 1).select(2, 0).item<double>() + x.select(2, 1).select(2, 1).item<double>()) /
      4;
  EXPECT_NEAR(y.select(2, 0).select(2, 0).item<double>(), want, 1e-6);
}

TEST(DartsOps, SearchPoolsEndInNonAffineBatchNorm) {
  auto op = make_op(OpKind::max_pool_3x3, 4, 1, false, true);
  Tensor y = op->forward(input({8, 4, 6, 6}));
  // batch statistics: every channel has mean 0 and variance 1 afterwards
  Tensor m = mean(y, {0, 2, 3});
  for (int c = 0; c < 4; ++c) EXPECT_NEAR(m.select(0, c).item<double>(), 0.0, 1e-5);
  EXPECT_EQ(op->num_parameters(), 0);
}

TEST(DartsOps, ZeroAndIdentity) {
  Tensor x = input({2, 4, 6, 6});
  EXPECT_EQ(abs(make_op(OpKind::none, 4, 2, true)->forward(x)).sum().item<double>(), 0.0);
  test::expect_close(make_op(OpKind::skip_connect, 4, 1, true)->forward(x), x, 0);
  EXPECT_EQ(make_op(OpKind::skip_connect, 4, 2, true)->type_name(), "FactorizedReduce");
}

TEST(DartsOps, DropPathScalesKeptExamplesAndZeroesDropped) {
  Tensor x = ones({2000, 2, 2, 2}, {.dtype = DType::f64});
  Generator g{123, 0};
  Tensor y = drop_path(x, 0.3, &g);
  Tensor per = y.select(1, 0).select(1, 0).select(1, 0);
  int64_t kept = 0;
  for (int64_t i = 0; i < per.size(0); ++i) {
    const double v = per.select(0, i).item<double>();
    EXPECT_TRUE(v == 0.0 || std::abs(v - 1 / 0.7) < 1e-12) << v;
    kept += v != 0;
    EXPECT_EQ(y.select(0, i).sum().item<double>(), 8 * v);  // one draw per example
  }
  EXPECT_NEAR(static_cast<double>(kept) / 2000, 0.7, 0.04);
  EXPECT_TRUE(drop_path(x, 0.0).is_same(x));
}

TEST(DartsOps, DropPathGradientMatchesFiniteDifferences) {
  Tensor x = test::randn64({4, 2, 3, 3});
  EXPECT_GRADCHECK(
      [](const std::vector<Tensor>& in) {
        Generator g{99, 0};  // the same mask on every call
        return drop_path(in[0], 0.4, &g);
      },
      {x});
}

TEST(DartsOps, MixedOpEqualsTheHandWeightedSum) {
  MixedOp mixed(4, 1);
  randomise(mixed);
  Tensor x = input({4, 4, 6, 6});
  Tensor w = softmax(input({kNumOps}), 0);
  Tensor got = mixed.forward(x, w);
  Tensor want = zeros_like(got);
  for (int k = 0; k < kNumOps; ++k)
    want = want + mixed.ops[static_cast<size_t>(k)]->forward(x) * w.select(0, k).item<double>();
  test::expect_close(got, want, 1e-5);
  // a one-hot weight picks one operation
  Tensor one = zeros({kNumOps});
  {
    NoGradGuard ng;
    one.select(0, 4).fill_(1.0);
  }
  test::expect_close(mixed.forward(x, one), mixed.ops[4]->forward(x), 1e-6);
}

TEST(DartsCells, SearchCellConcatenatesFourNodesAndReductionHalves) {
  SearchCell normal(4, 4, 6, 8, 6, false, false);
  EXPECT_EQ(normal.edges.size(), 14u);
  Tensor w = softmax(input({14, kNumOps}), 1);
  EXPECT_EQ(normal.forward(input({2, 6, 8, 8}), input({2, 8, 8, 8}), w).shape(), (Shape{2, 24, 8, 8}));
  SearchCell reduce(4, 4, 6, 8, 6, true, true);  // s0 at twice the size (the previous cell reduced)
  EXPECT_EQ(reduce.forward(input({2, 6, 16, 16}), input({2, 8, 8, 8}), w).shape(), (Shape{2, 24, 4, 4}));
}

TEST(DartsCells, EvalCellFollowsTheGenotype) {
  const Genotype& g = genotypes::BNASv2_CLR_v1;
  EvalCell cell(g.normal, g.normal_concat, 6, 8, 4, false, false);
  EXPECT_EQ(cell.ops.size(), 8u);
  EXPECT_EQ(cell.ops[0]->type_name(), "SepConv");
  EXPECT_EQ(cell.ops[3]->type_name(), "AvgPool3x3");
  EXPECT_EQ(cell.forward(input({2, 6, 8, 8}), input({2, 8, 8, 8}), 0.2).shape(), (Shape{2, 16, 8, 8}));
}

TEST(Genotype, PrintParseRoundTripAndPythonForms) {
  for (const Genotype* g :
       {&genotypes::DARTS_V1, &genotypes::DARTS_V2, &genotypes::BNASv2_CLR_v1, &genotypes::BNASv2_CLR_v2})
    EXPECT_EQ(Genotype::parse(g->str()), *g);
  Genotype g = Genotype::parse(
      "Genotype( normal = [(\"skip_connect\", 0), ('dil_conv_5x5', 1),], normal_concat=range(2, 3),\n"
      " reduce=[('max_pool_3x3', 1), ('none', 0)], reduce_concat=[2] )");
  EXPECT_EQ(g.normal[1], (Gene{OpKind::dil_conv_5x5, 1}));
  EXPECT_EQ(g.normal_concat, std::vector<int>{2});
  EXPECT_EQ(count_weight_free(genotypes::BNASv2_CLR_v1.reduce), 7);
  EXPECT_EQ(count_weight_free(genotypes::BNASv2_CLR_v1.normal), 1);
  EXPECT_EQ(genotypes::by_name("BNASv2_CLR_v2").normal[7], (Gene{OpKind::dil_conv_3x3, 4}));
}

TEST(Genotype, BadTextIsRefusedNamingWhatWasExpected) {
  const std::string ok_reduce = ", reduce=[('max_pool_3x3', 0), ('none', 1)], reduce_concat=[2])";
  test::expect_error(
      [&] {
        Genotype::parse("Genotype(normal=[('conv_7x7', 0), ('none', 1)], normal_concat=[2]" + ok_reduce);
      },
      {"unknown operation 'conv_7x7'", "sep_conv_3x3"});
  test::expect_error(
      [&] { Genotype::parse("Genotype(normal=[('none', 0), ('none', 2)], normal_concat=[2]" + ok_reduce); },
      {"'normal' gene 1", "input must be in [0, 2)"});
  test::expect_error([&] { Genotype::parse("Genotype(normal=[('none', 0)], normal_concat=[2]" + ok_reduce); },
                     {"2 genes per node"});
  test::expect_error(
      [&] {
        Genotype::parse("Genotype(normal=[('none', 0), ('none', 1)], normal_concat=[2, 7]" + ok_reduce);
      },
      {"normal_concat", "7"});
  test::expect_error([&] { Genotype::parse("Genotype(normal=[('none' 0)]"); }, {"expected ','", "character"});
  test::expect_error([&] { Genotype::parse(genotypes::DARTS_V1.str() + " trailing"); },
                     {"the end of the text"});
  test::expect_error([&] { load_genotype("/nonexistent/genotype.txt"); }, {"neither a known name"});
}

TEST(Genotype, DerivationKeepsTheTwoStrongestEdgesAndIgnoresNone) {
  // 2 steps: node 2 has edges 0, 1; node 3 has edges 2, 3, 4 (inputs 0, 1, 2).
  std::vector<double> w(5 * kNumOps, 0.01);
  auto set = [&](int edge, OpKind op, double v) {
    w[static_cast<size_t>(edge * kNumOps + static_cast<int>(op))] = v;
  };
  set(0, OpKind::none, 0.9);  // none never counts
  set(0, OpKind::sep_conv_5x5, 0.05);
  set(1, OpKind::max_pool_3x3, 0.3);
  set(2, OpKind::dil_conv_3x3, 0.2);
  set(3, OpKind::skip_connect, 0.1);
  set(4, OpKind::avg_pool_3x3, 0.5);
  std::vector<Gene> genes = derive_cell(from_vector(w, {5, kNumOps}), 2);
  ASSERT_EQ(genes.size(), 4u);
  EXPECT_EQ(genes[0], (Gene{OpKind::max_pool_3x3, 1}));
  EXPECT_EQ(genes[1], (Gene{OpKind::sep_conv_5x5, 0}));
  EXPECT_EQ(genes[2], (Gene{OpKind::avg_pool_3x3, 2}));
  EXPECT_EQ(genes[3], (Gene{OpKind::dil_conv_3x3, 0}));
  // from alphas: a large skip alpha on every edge of the normal cell collapses it to skips
  Tensor a = zeros({14, kNumOps});
  {
    NoGradGuard ng;
    a.select(1, static_cast<int>(OpKind::skip_connect)).fill_(3.0);
  }
  Genotype g = derive_genotype(a, input({14, kNumOps}));
  EXPECT_EQ(count_weight_free(g.normal), 8);
  EXPECT_EQ(g.normal_concat, (std::vector<int>{2, 3, 4, 5}));
}

TEST(Bcnn, SearchSupernetShapesChannelsAndThreeCells) {
  auto net = std::make_shared<BcnnSearch>(BcnnOptions{.c = 4, .num_classes = 10, .in_channels = 1});
  EXPECT_EQ(net->conv_cells.size() + net->en_cells.size(), 3u);
  EXPECT_EQ(net->classifier->weight.size(1), 19 * 4);  // C + 2C + 16C
  EXPECT_EQ(net->forward(input({2, 1, 16, 16})).shape(), (Shape{2, 10}));
  EXPECT_EQ(net->alphas_normal.shape(), (Shape{14, kNumOps}));
  // the alphas are saved with the model but are not weights
  bool saved = false;
  for (auto& [n, t] : net->state_dict()) saved |= n == "alphas_reduce";
  EXPECT_TRUE(saved);
  for (const Tensor& p : net->parameters()) EXPECT_FALSE(p.is_same(net->alphas_normal));
}

TEST(Bcnn, EvaluationNetworksOfTheAuthorsGenotypes) {
  // 6 conv-block cells (reductions at 2 and 5) + 2 enhancement cells, C = 48: 23C features.
  for (const Genotype* g : {&genotypes::BNASv2_CLR_v1, &genotypes::BNASv2_CLR_v2}) {
    BcnnEval net({.c = 48, .num_classes = 10, .in_channels = 3, .layers = 6, .en_layers = 2}, *g);
    EXPECT_EQ(net.pool_layers, (std::vector<int64_t>{2, 5}));
    EXPECT_EQ(net.classifier->weight.size(1), 23 * 48);
    EXPECT_GT(net.num_parameters(), 1'000'000);
  }
  // exact counts of the PyTorch port (tests/darts/bcnn_reference.py)
  EXPECT_EQ(BcnnEval({.c = 48, .layers = 6, .en_layers = 2}, genotypes::BNASv2_CLR_v1).num_parameters(),
            3338074);
  BcnnEval small({.c = 4, .in_channels = 1, .layers = 6, .en_layers = 2}, genotypes::BNASv2_CLR_v2);
  small.drop_path_prob = 0.2;
  EXPECT_EQ(small.forward(input({2, 1, 16, 16})).shape(), (Shape{2, 10}));
  EXPECT_GT(count_macs(small, 1, 16), 0);
}

TEST(Darts, VanillaSupernetAndEvaluationNetwork) {
  DartsSearch search({.c = 2, .num_classes = 10, .in_channels = 1, .layers = 5});
  EXPECT_EQ(search.cells.size(), 5u);
  EXPECT_TRUE(search.cells[1]->reduction && search.cells[3]->reduction);
  EXPECT_EQ(search.forward(input({2, 1, 8, 8})).shape(), (Shape{2, 10}));
  // DARTS-V2 at C = 36, 20 cells (the DARTS paper's 3.3M includes the auxiliary head, not built here)
  EXPECT_EQ(DartsEval({.c = 36, .layers = 20}, genotypes::DARTS_V2).num_parameters(),
            3349342);  // = DARTS train.py's "param size 3.349342MB"
}

TEST(Bcnn, MacCountOfASingleConvNetwork) {
  BcnnSearch net({.c = 2, .in_channels = 1});
  const int64_t all = count_macs(net, 1, 16);
  {
    MacCounter outer;
    MacCounter::add(5);
    EXPECT_EQ(outer.macs(), 5);
  }
  // the stem alone: 16 x 16 x 6 outputs x 9 taps x 1 channel
  EXPECT_GT(all, 16 * 16 * 6 * 9);
}

}  // namespace
}  // namespace nabla
