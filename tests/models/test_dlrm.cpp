// Tests of DLRM (models/dlrm.h): the dot interaction against a loop and finite differences, the model's
// shapes, parameter names and presets, a shard's initialisation, sparse tables against dense SGD, Adagrad
// against its formula.
// (Training on synthetic Criteo: tests/apps/test_train_dlrm.cpp.)
#include <random>

#include "algorithms/metrics/auc.h"
#include "algorithms/optim/adagrad.h"
#include "algorithms/optim/optimizer.h"
#include "models/dlrm.h"
#include "testing.h"

namespace nabla {
namespace {
using models::Dlrm;
using models::DlrmConfig;

TEST(DlrmInteraction, MatchesALoopOverPairsOnRandomInputs) {
  Generator gen{test::next_seed(), 0};
  const int64_t B = 3, F = 4, D = 5;
  Tensor x = randn({B, D}, {.dtype = DType::f64}, &gen), e = randn({B, F, D}, {.dtype = DType::f64}, &gen);
  for (bool self : {false, true}) {
    Tensor z = models::dlrm_dot_interaction(x, e, self);
    const int64_t pairs = self ? (F + 1) * (F + 2) / 2 : F * (F + 1) / 2;
    ASSERT_EQ(z.shape(), (Shape{B, D + pairs}));
    auto vx = x.to_vector(), ve = e.to_vector();
    auto vec = [&](int64_t b, int64_t i, int64_t c) {
      return i == 0 ? vx[b * D + c] : ve[(b * F + i - 1) * D + c];
    };
    std::vector<double> ref;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t c = 0; c < D; ++c) ref.push_back(vx[b * D + c]);
      for (int64_t i = 0; i <= F; ++i)  // the reference's order: row by row of the lower triangle
        for (int64_t j = 0; j < i + (self ? 1 : 0); ++j) {
          double d = 0;
          for (int64_t c = 0; c < D; ++c) d += vec(b, i, c) * vec(b, j, c);
          ref.push_back(d);
        }
    }
    test::expect_close(z, ref, 1e-12);
  }
}

TEST(DlrmInteraction, GradientMatchesFiniteDifferences) {
  Tensor x = test::randn64({2, 3}), e = test::randn64({2, 3, 3});
  for (bool self : {false, true}) {
    auto r = gradcheck(
        [self](const std::vector<Tensor>& in) { return models::dlrm_dot_interaction(in[0], in[1], self); },
        {x, e});
    EXPECT_TRUE(r.ok) << r.report;
  }
}

TEST(Dlrm, ShapesNamesAndPresets) {
  std::vector<int64_t> sizes{7, 3, 11};
  Dlrm m(DlrmConfig::tiny(sizes));
  EXPECT_EQ(m.config().interaction_width(), 8 + 6);
  auto names = m.named_parameters();
  std::vector<std::string> got;
  for (auto& [n, t] : names) got.push_back(n);
  for (const char* want : {"bot_l.0.weight", "bot_l.0.bias", "bot_l.2.weight", "emb_l.0.weight",
                           "emb_l.2.weight", "top_l.0.weight", "top_l.4.bias"})
    EXPECT_NE(std::find(got.begin(), got.end(), want), got.end()) << want;
  EXPECT_EQ(m.tables()[2].shape(), (Shape{11, 8}));
  EXPECT_EQ(m.dense_parameters().size() + 3, names.size());
  Tensor dense = randn({5, 13}),
         sparse = from_vector({0, 1, 2, 6, 2, 10, 3, 0, 0, 1, 1, 1, 5, 2, 9}, {5, 3}, {.dtype = DType::i64});
  Tensor y = m.forward(dense, sparse);
  EXPECT_EQ(y.shape(), (Shape{5}));
  test::expect_close(m.forward(models::dlrm_pack(dense, sparse)), y, 0);
  // Presets as the reference's scripts.
  auto k = DlrmConfig::kaggle(sizes);
  EXPECT_EQ(k.embedding_dim, 16);
  EXPECT_EQ(k.bottom_mlp, (std::vector<int64_t>{512, 256, 64, 16}));
  EXPECT_EQ(DlrmConfig::mlperf(std::vector<int64_t>(26, 100)).interaction_width(), 128 + 351);
  DlrmConfig cat = DlrmConfig::tiny(sizes);
  cat.interaction = models::DlrmInteraction::cat;
  EXPECT_EQ(Dlrm(cat).forward(dense, sparse).shape(), (Shape{5}));
  EXPECT_EQ(models::parse_mlp("13-512-256-1", "x"), (std::vector<int64_t>{13, 512, 256, 1}));
  test::expect_error([] { models::parse_mlp("13-a-1", "--mlp-top"); }, {"--mlp-top", "13-a-1", "'a'"});
  test::expect_error(
      [&] {
        DlrmConfig c = DlrmConfig::tiny(sizes);
        c.bottom_mlp = {32, 9};
        c.validate();
      },
      {"bottom MLP", "embedding dimension 8"});
  test::expect_error([&] { m.forward(dense, sparse.narrow(1, 0, 2)); }, {"[B, 3]", "[5,2]"});
}

// A shard (DlrmConfig::whole_table_sizes / table_first_row) built after the same seed holds exactly its rows
// of the whole model's tables (odd first elements too: D = 3), the same MLPs, zeros for a placeholder, and
// leaves the generator where the whole model leaves it; inconsistent shard fields are refused.
TEST(Dlrm, AShardStartsWithTheWholeModelsRows) {
  std::vector<int64_t> sizes{7, 10, 5};
  DlrmConfig c = DlrmConfig::tiny(sizes);
  c.embedding_dim = 3;
  c.bottom_mlp.back() = 3;
  const uint64_t seed = std::random_device{}();
  manual_seed(seed);
  Dlrm whole(c);
  const uint64_t after = default_generator().offset;
  DlrmConfig part = c;
  part.whole_table_sizes = sizes;
  part.table_first_row = {0, 3, -1};  // table 0 whole, rows 3..8 of table 1 (odd element 9), a placeholder
  part.table_sizes = {7, 6, 1};
  manual_seed(seed);
  Dlrm shard(part);
  EXPECT_EQ(default_generator().offset, after);
  test::expect_close(shard.tables()[0], whole.tables()[0], 0);
  test::expect_close(shard.tables()[1], whole.tables()[1].narrow(0, 3, 6), 0);
  test::expect_close(shard.tables()[2], zeros({1, 3}), 0);
  auto a = whole.dense_parameters(), b = shard.dense_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) test::expect_close(b[i].second, a[i].second, 0);
  part.table_first_row = {0, 5, -1};  // rows 5..10 of a 10-row table
  test::expect_error([&] { Dlrm bad(part); }, {"shard table 1", "[5, 11)", "10 rows"});
  part.table_first_row = {0, 3};
  test::expect_error([&] { Dlrm bad(part); }, {"whole_table_sizes and table_first_row", "3 and 2"});
}

// One step with sparse tables equals one dense SGD step: same loss, same tables, same MLP.
TEST(Dlrm, SparseTablesEqualDenseSgd) {
  std::vector<int64_t> sizes{20, 9, 30, 4};
  DlrmConfig c = DlrmConfig::tiny(sizes);
  manual_seed(11);
  Dlrm dense_model(c);
  c.sparse_embeddings = true;
  manual_seed(11);
  Dlrm sparse_model(c);
  Generator gen{test::next_seed(), 0};
  Tensor x = randn({16, 13}, {}, &gen), y = randint(0, 2, {16}, {}, &gen);
  std::vector<Tensor> cols;
  for (int64_t s : sizes) cols.push_back(randint(0, s, {16, 1}, {.dtype = DType::i64}, &gen));
  Tensor ids = cat(cols, 1);
  optim::Sgd a(dense_model.parameters(), {.lr = 0.5});
  std::vector<Tensor> dp;
  for (auto& [n, t] : sparse_model.dense_parameters()) dp.push_back(t);
  optim::Sgd b(dp, {.lr = 0.5});
  sparse_model.set_sparse_lr(0.5);
  for (int step = 0; step < 3; ++step) {
    a.zero_grad();
    b.zero_grad();
    Tensor la = binary_cross_entropy_with_logits(dense_model.forward(x, ids), y);
    Tensor lb = binary_cross_entropy_with_logits(sparse_model.forward(x, ids), y);
    EXPECT_NEAR(la.item(), lb.item(), 1e-6);
    la.backward();
    lb.backward();
    a.step();
    b.step();
  }
  auto sa = dense_model.state_dict(), sb = sparse_model.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) test::expect_close(sb[i].second, sa[i].second, 1e-5);
  for (const Tensor& t : sparse_model.tables()) EXPECT_FALSE(t.grad().defined());
}

// The fused lookup (one multi_embedding_bag writing [x, e_0, ..] at once) trains exactly as the reference's
// per-table loop: dense and sparse SGD tables, dot (with and without self-interaction) and cat interactions;
// sparse row-wise Adagrad tables (dot, cat).
TEST(Dlrm, FusedLookupsTrainAsThePerTableLoop) {
  std::vector<int64_t> sizes{20, 1, 30, 4, 9};
  // variants 0..5: dense or sparse SGD tables x (dot, dot with self-interaction, cat); 6, 7: sparse
  // row-wise Adagrad tables, dot and cat.
  for (int variant = 0; variant < 8; ++variant) {
    DlrmConfig c = DlrmConfig::tiny(sizes);
    c.sparse_embeddings = variant % 2 == 1 || variant >= 6;
    if (variant >= 6) c.sparse_optimizer = models::DlrmSparseOptimizer::rowwise_adagrad;
    c.interaction =
        variant / 2 == 2 || variant == 7 ? models::DlrmInteraction::cat : models::DlrmInteraction::dot;
    c.self_interaction = variant / 2 == 1;
    c.fused_embeddings = false;
    manual_seed(5);
    Dlrm loop_model(c);
    c.fused_embeddings = true;
    manual_seed(5);
    Dlrm fused_model(c);
    Generator gen{test::next_seed(), 0};
    Tensor x = randn({24, 13}, {}, &gen), y = randint(0, 2, {24}, {}, &gen);
    std::vector<Tensor> cols;
    for (int64_t s : sizes) cols.push_back(randint(0, s, {24, 1}, {.dtype = DType::i64}, &gen));
    Tensor ids = cat(cols, 1);
    auto params = [&](Dlrm& m) {
      std::vector<Tensor> p;
      for (auto& [n, t] : (c.sparse_embeddings ? m.dense_parameters() : m.named_parameters())) p.push_back(t);
      return p;
    };
    optim::Sgd a(params(loop_model), {.lr = 0.3}), b(params(fused_model), {.lr = 0.3});
    loop_model.set_sparse_lr(0.3);
    fused_model.set_sparse_lr(0.3);
    for (int step = 0; step < 3; ++step) {
      a.zero_grad();
      b.zero_grad();
      Tensor la = binary_cross_entropy_with_logits(loop_model.forward(x, ids), y);
      Tensor lb = binary_cross_entropy_with_logits(fused_model.forward(x, ids), y);
      EXPECT_NEAR(la.item(), lb.item(), 1e-6) << "variant " << variant << " step " << step;
      la.backward();
      lb.backward();
      a.step();
      b.step();
    }
    auto sa = loop_model.state_dict(), sb = fused_model.state_dict();
    ASSERT_EQ(sa.size(), sb.size());
    for (size_t i = 0; i < sa.size(); ++i) test::expect_close(sb[i].second, sa[i].second, 1e-5);
    if (c.sparse_embeddings) {
      for (const Tensor& t : fused_model.tables()) EXPECT_FALSE(t.grad().defined());
    }
    if (variant >= 6) {  // the accumulators are buffers (in the state dict), and they moved
      ASSERT_EQ(fused_model.table_states().size(), sizes.size());
      EXPECT_GT(sum(fused_model.table_states()[0]).item(), 0.0);
      EXPECT_EQ(sa.back().first, "emb_adagrad.4");
    }
  }
}

TEST(Adagrad, MatchesItsFormulaOverSteps) {
  Tensor w = randn({4, 3}).requires_grad_();
  Tensor ref = w.detach().clone(), acc = zeros({4, 3});
  optim::Adagrad opt({w}, {.lr = 0.1, .lr_decay = 0.01, .weight_decay = 0.05});
  for (int t = 1; t <= 3; ++t) {
    Tensor target = randn({4, 3});
    opt.zero_grad();
    sum(mul(w - target, w - target)).backward();
    Tensor g = 2.0 * (ref - target) + 0.05 * ref;
    acc = acc + g * g;
    ref = ref - (0.1 / (1 + (t - 1) * 0.01)) * g / (sqrt(acc) + 1e-10);
    opt.step();
    test::expect_close(w, ref, 1e-5);
  }
  auto state = opt.state_tensors();
  bool has_sum = false;
  for (auto& [n, t] : state) has_sum |= n == "group0.param0.sum";
  EXPECT_TRUE(has_sum);
}

}  // namespace
}  // namespace nabla
