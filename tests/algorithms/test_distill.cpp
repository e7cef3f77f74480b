// Knowledge distillation (algorithms/distill): the KD loss and its gradient against the formulas worked by
// hand, the teacher distributions (UD, TRD/SRD by linear rank or softmax) and the sampler's frequencies,
// frozen teachers that distillation never changes, the logit cache, and WKD and TAKD on a toy problem with
// small MLP teachers.
#include <cmath>
#include <filesystem>
#include <unistd.h>

#include "algorithms/distill/kd_loss.h"
#include "algorithms/distill/teacher_sampler.h"
#include "algorithms/distill/teachers.h"
#include "algorithms/optim/optimizer.h"
#include "models/nn/layers.h"
#include "testing.h"

namespace nabla {
namespace {

std::vector<double> host(const Tensor& t) { return t.to(DType::f64).contiguous().to_vector<double>(); }

// softmax of row `r` of a [B, C] host matrix divided by T.
std::vector<double> softmax_row(const std::vector<double>& z, int64_t c, int64_t r, double t) {
  std::vector<double> p(static_cast<size_t>(c));
  double m = -1e300, s = 0;
  for (int64_t j = 0; j < c; ++j) m = std::max(m, z[static_cast<size_t>(r * c + j)] / t);
  for (int64_t j = 0; j < c; ++j)
    s += p[static_cast<size_t>(j)] = std::exp(z[static_cast<size_t>(r * c + j)] / t - m);
  for (double& v : p) v /= s;
  return p;
}

TEST(KdLoss, MatchesTheHandComputedValueAndGradient) {
  // B = 2, C = 3, T = 2, T^2 scaling, hard weight a = 0.25.
  const std::vector<double> zs{1.0, 2.0, 0.5, 0.0, -1.0, 1.0}, zt{2.0, 1.0, 0.0, 0.5, 0.5, -1.0};
  const std::vector<int64_t> y{1, 2};
  const double t = 2.0, a = 0.25;
  double soft = 0, hard = 0;
  std::vector<double> grad(6);
  for (int64_t i = 0; i < 2; ++i) {
    const auto p = softmax_row(zt, 3, i, t), q = softmax_row(zs, 3, i, t), q1 = softmax_row(zs, 3, i, 1);
    for (int64_t c = 0; c < 3; ++c) {
      soft -= p[c] * std::log(q[c]) / 2;
      const double onehot = c == y[static_cast<size_t>(i)] ? 1.0 : 0.0;
      grad[static_cast<size_t>(i * 3 + c)] =
          (1 - a) * t * t / t * (q[c] - p[c]) / 2 + a * (q1[c] - onehot) / 2;
    }
    hard -= std::log(q1[static_cast<size_t>(y[static_cast<size_t>(i)])]) / 2;
  }
  const double expected = (1 - a) * t * t * soft + a * hard;

  Tensor s = from_vector(zs, {2, 3}, {.dtype = DType::f64, .requires_grad = true});
  Tensor teacher = from_vector(zt, {2, 3}, {.dtype = DType::f64});
  Tensor labels = from_vector({1, 2}, {2}, {.dtype = DType::i64});
  Tensor loss =
      distill::kd_loss(s, teacher, labels, {.temperature = t, .t2_scaling = true, .hard_weight = a});
  EXPECT_NEAR(loss.item(), expected, 1e-12);
  loss.backward();
  test::expect_close(s.grad(), grad, 1e-12);

  // Without T^2 the soft term is 4x smaller; a = 0 leaves only it; a = 1 only the hard term.
  EXPECT_NEAR(
      distill::kd_loss(s, teacher, labels, {.temperature = t, .t2_scaling = false, .hard_weight = a}).item(),
      (1 - a) * soft + a * hard, 1e-12);
  EXPECT_NEAR(distill::kd_loss(s, teacher, Tensor(), {.temperature = t}).item(), t * t * soft, 1e-12);
  EXPECT_NEAR(distill::kd_loss(s, teacher, labels, {.temperature = t, .hard_weight = 1}).item(), hard, 1e-12);
}

TEST(KdLoss, GradientMatchesFiniteDifferencesOnFreshInputs) {
  Tensor teacher = test::randn64({4, 5}, false);
  Tensor labels = test::randint64(0, 5, {4});
  for (double t : {0.5, 1.0, 3.0})
    EXPECT_GRADCHECK(
        [&](auto& in) {
          return distill::kd_loss(in[0], teacher, labels, {.temperature = t, .hard_weight = 0.3});
        },
        {test::randn64({4, 5})});
  // Soft labels from a weighted average (WKD): the same loss with p given.
  Tensor p = softmax(test::randn64({4, 5}, false), -1);
  EXPECT_GRADCHECK(
      [&](auto& in) { return distill::kd_loss_from_soft_labels(in[0], p, Tensor(), {.temperature = 2}); },
      {test::randn64({4, 5})});
}

TEST(KdLoss, RejectsBadOptionsAndShapes) {
  Tensor s = test::randn64({2, 3}), t = test::randn64({2, 3}, false);
  test::expect_error([&] { distill::kd_loss(s, t, Tensor(), {.temperature = 0}); }, {"temperature 0", "> 0"});
  test::expect_error([&] { distill::kd_loss(s, t, Tensor(), {.hard_weight = 1.5}); },
                     {"hard_weight 1.5", "[0, 1]"});
  test::expect_error([&] { distill::kd_loss(s, t, Tensor(), {.hard_weight = 0.5}); }, {"needs class labels"});
  test::expect_error(
      [&] {
        distill::kd_loss(s, test::randn64({2, 4}, false), Tensor());
      },
      {"same [batch, classes]"});
}

TEST(TeacherSampler, ProbabilitiesFollowTheRankAndSoftmaxMappings) {
  using distill::RankMapping;
  using distill::TeacherSampling;
  const std::vector<double> scores{0.80, 0.90, 0.85};
  test::expect_close(from_vector(distill::score_ranks(scores), {3}, {.dtype = DType::f64}), {1, 3, 2}, 0);
  // p_i = 2 rank_i / (N (N + 1))
  auto lin = distill::teacher_probabilities(TeacherSampling::teacher_rank, RankMapping::linear, scores, 3);
  test::expect_close(from_vector(lin, {3}, {.dtype = DType::f64}), {1.0 / 6, 3.0 / 6, 2.0 / 6}, 1e-15);
  // Ties share the mean rank: ranks 1.5, 1.5, 3 of 6.
  auto tied = distill::linear_rank_probabilities({0.8, 0.8, 0.9});
  test::expect_close(from_vector(tied, {3}, {.dtype = DType::f64}), {0.25, 0.25, 0.5}, 1e-15);
  auto sm =
      distill::teacher_probabilities(TeacherSampling::student_rank, RankMapping::softmax, scores, 3, 0.05);
  const double e0 = std::exp(0.80 / 0.05), e1 = std::exp(0.90 / 0.05), e2 = std::exp(0.85 / 0.05);
  test::expect_close(from_vector(sm, {3}, {.dtype = DType::f64}),
                     {e0 / (e0 + e1 + e2), e1 / (e0 + e1 + e2), e2 / (e0 + e1 + e2)}, 1e-12);
  auto ud = distill::teacher_probabilities(TeacherSampling::uniform, RankMapping::linear, {}, 4);
  test::expect_close(from_vector(ud, {4}, {.dtype = DType::f64}), {0.25, 0.25, 0.25, 0.25}, 0);
  test::expect_error(
      [&] { distill::teacher_probabilities(TeacherSampling::student_rank, RankMapping::linear, {0.8}, 3); },
      {"SRD", "1 scores given for 3 teachers"});
  test::expect_error([&] { distill::linear_rank_probabilities({0.8, NAN}); }, {"score 1", "finite"});
  test::expect_error([&] { distill::TeacherSampler({0.5, -0.1}, 1); }, {"probability 1", ">= 0"});
  test::expect_error([&] { distill::parse_teacher_sampling("xrd"); }, {"'xrd'", "ud, trd or srd"});
}

TEST(TeacherSampler, EmpiricalFrequenciesConvergeToEachDistribution) {
  const uint64_t seed = test::next_seed();
  for (const std::vector<double>& p :
       {std::vector<double>{1.0 / 3, 1.0 / 3, 1.0 / 3},
        distill::linear_rank_probabilities({0.8, 0.9, 0.85, 0.7}),
        distill::softmax_probabilities({0.8, 0.9, 0.85}, 0.05), std::vector<double>{0.0, 0.7, 0.3}}) {
    distill::TeacherSampler sampler(p, seed);
    const int64_t n = 100000;
    std::vector<double> count(p.size());
    for (int64_t step = 0; step < n; ++step) count[static_cast<size_t>(sampler.draw(step))] += 1;
    for (size_t i = 0; i < p.size(); ++i) {
      const double sd = std::sqrt(p[i] * (1 - p[i]) / n);
      EXPECT_NEAR(count[i] / n, p[i], 5 * sd + 1e-12) << "teacher " << i;
    }
    EXPECT_EQ(count[0] == 0, p[0] == 0);  // a teacher of probability 0 is never drawn
  }
  // The draw of a step is a function of (seed, step) only: a resumed run draws the same teachers.
  distill::TeacherSampler a({0.2, 0.3, 0.5}, seed), b({0.2, 0.3, 0.5}, seed), c({0.2, 0.3, 0.5}, seed + 1);
  int differ = 0;
  for (int64_t step = 500; step > 0; --step) {
    EXPECT_EQ(a.draw(step), b.draw(step));
    differ += a.draw(step) != c.draw(step);
  }
  EXPECT_GT(differ, 100);
}

// ---- toy problem: two classes of points in the plane split by a curve ------------------------------------

struct Toy {
  Tensor x, y;  // f32 [N, 2], i64 [N]
};

Toy make_toy(int64_t n, uint64_t seed) {
  Generator g{seed, 0};
  Tensor x = uniform({n, 2}, -1, 1, {}, &g);
  std::vector<double> xs = host(x), ys(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double a = xs[static_cast<size_t>(2 * i)], b = xs[static_cast<size_t>(2 * i + 1)];
    ys[static_cast<size_t>(i)] = b > 0.6 * std::sin(3 * a) ? 1 : 0;
  }
  return {x, from_vector(ys, {n}, {.dtype = DType::i64})};
}

std::shared_ptr<nn::Sequential> mlp(int64_t width, double dropout = 0) {
  auto m = std::make_shared<nn::Sequential>();
  m->add(std::make_shared<nn::Linear>(2, width)).add(nn::Tanh());
  if (dropout > 0) m->add(std::make_shared<nn::Dropout>(dropout));
  m->add(std::make_shared<nn::Linear>(width, width))
      .add(nn::Tanh())
      .add(std::make_shared<nn::Linear>(width, 2));
  return m;
}

double accuracy(nn::Module& m, const Toy& d) {
  NoGradGuard ng;
  const bool was = m.is_training();
  m.eval();
  std::vector<double> pred = host(argmax(m.forward(d.x), -1)), y = host(d.y);
  m.train(was);
  double hits = 0;
  for (size_t i = 0; i < y.size(); ++i) hits += pred[i] == y[i];
  return hits / static_cast<double>(y.size());
}

// Full-batch AdamW on `loss_of(model)`.
void fit(nn::Module& m, int steps, double lr, const std::function<Tensor(nn::Module&)>& loss_of) {
  optim::AdamW opt(m.parameters(), {.lr = lr, .weight_decay = 0});
  m.train();
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    loss_of(m).backward();
    opt.step();
  }
}

distill::TeacherForward plain_forward() {
  return [](nn::Module& m, const Tensor& x) { return m.forward(x); };
}

TEST(TeacherTeam, TeachersStayBitIdenticalAndFrozenWhileAStudentDistils) {
  const Toy train = make_toy(256, test::next_seed());
  distill::TeacherTeam team(plain_forward());
  for (int64_t w : {8, 16}) {
    auto t = mlp(w, /*dropout=*/0.3);
    fit(*t, 60, 0.02, [&](nn::Module& m) { return cross_entropy(m.forward(train.x), train.y); });
    team.add(str_cat("mlp", w), t);
  }
  std::vector<NamedTensors> before;
  for (int64_t k = 0; k < team.size(); ++k) {
    NamedTensors s;
    for (auto& [n, t] : team.model(k).state_dict()) s.emplace_back(n, t.clone());
    before.push_back(s);
    EXPECT_FALSE(team.model(k).is_training());
    for (const Tensor& p : team.model(k).parameters()) EXPECT_FALSE(p.requires_grad());
  }
  // Dropout is off in a teacher: the same input gives the same logits, even after someone called train().
  Tensor z0 = team.logits(0, train.x);
  team.model(0).train();
  test::expect_close(team.logits(0, train.x), z0, 0);
  EXPECT_FALSE(team.model(0).is_training());
  EXPECT_FALSE(z0.requires_grad());

  auto student = mlp(8);
  optim::AdamW opt(student->parameters(), {.lr = 0.02});
  distill::TeacherSampler sampler({0.5, 0.5}, test::next_seed());
  for (int64_t step = 0; step < 20; ++step) {
    opt.zero_grad();
    Tensor loss = distill::kd_loss(student->forward(train.x), team.logits(sampler.draw(step), train.x),
                                   train.y, {.temperature = 2, .hard_weight = 0.2});
    loss.backward();
    opt.step();
  }
  for (int64_t k = 0; k < team.size(); ++k) {
    const NamedTensors after = team.model(k).state_dict();
    ASSERT_EQ(after.size(), before[static_cast<size_t>(k)].size());
    for (size_t i = 0; i < after.size(); ++i) {
      const Tensor& a = after[i].second;
      const Tensor& b = before[static_cast<size_t>(k)][i].second;
      EXPECT_EQ(
          std::memcmp(a.contiguous().data<float>(), b.contiguous().data<float>(), a.numel() * sizeof(float)),
          0)
          << "teacher " << k << " " << after[i].first;
      EXPECT_FALSE(a.grad().defined()) << after[i].first;
    }
  }
}

TEST(TeacherTeam, LogitCacheIsReadBackAndRecomputedWhenTheFingerprintChanges) {
  const Toy d = make_toy(50, test::next_seed());
  distill::TeacherTeam team(plain_forward());
  auto t = mlp(8);
  team.add("t", t);
  const auto dir =
      std::filesystem::temp_directory_path() / ("nabla_distill_cache_" + std::to_string(getpid()));
  const std::string path = (dir / "t.safetensors").string();
  Tensor z = team.all_logits(0, d.x, 16, Device::cpu(), path, "fp-a");
  test::expect_close(z, team.logits(0, d.x), 1e-5);
  ASSERT_TRUE(std::filesystem::exists(path));
  // Another teacher under the same fingerprint would be read stale: the fingerprint is what keys the file.
  auto other = mlp(8);
  t->load_state_dict(other->state_dict());
  test::expect_close(team.all_logits(0, d.x, 16, Device::cpu(), path, "fp-a"), z, 0);
  Tensor fresh = team.all_logits(0, d.x, 7, Device::cpu(), path, "fp-b");  // batches of 7: rounding differs
  test::expect_close(fresh, team.logits(0, d.x), 1e-5);
  double largest = 0;
  for (double v : host(fresh - z)) largest = std::max(largest, std::abs(v));
  EXPECT_GT(largest, 1e-3);
  std::filesystem::remove_all(dir);
}

TEST(Distillation, WkdAndTakdTeachStudentsOnAToyProblem) {
  const uint64_t seed = test::next_seed();
  const Toy train = make_toy(256, seed), test_set = make_toy(400, seed + 1000);
  distill::TeacherTeam team(plain_forward());
  std::vector<double> teacher_acc;
  std::shared_ptr<nn::Module> widest;
  for (int64_t w : {16, 24, 32}) {
    auto t = mlp(w);
    widest = t;
    fit(*t, 150, 0.03, [&](nn::Module& m) { return cross_entropy(m.forward(train.x), train.y); });
    teacher_acc.push_back(accuracy(*t, test_set));
    EXPECT_GT(teacher_acc.back(), 0.9) << "teacher of width " << w;
    team.add(str_cat("mlp", w), t);
  }
  // WKD: the weighted soft labels are sum_k w_k softmax(z_k / T) with the weights normalised.
  const std::vector<double> w{1, 2, 3};
  Tensor p = team.weighted_soft_labels(train.x, w, 2.0);
  Tensor manual = distill::soft_labels(team.logits(0, train.x), 2) * (1.0 / 6) +
                  distill::soft_labels(team.logits(1, train.x), 2) * (2.0 / 6) +
                  distill::soft_labels(team.logits(2, train.x), 2) * (3.0 / 6);
  test::expect_close(p, manual, 1e-6);
  test::expect_close(sum(p, {1}), std::vector<double>(256, 1.0), 1e-5);
  // A student taught only by the averaged soft labels (no hard labels) learns the task.
  auto wkd = mlp(8);
  fit(*wkd, 150, 0.03, [&](nn::Module& m) {
    return distill::kd_loss_from_soft_labels(m.forward(train.x), p, Tensor(), {.temperature = 2});
  });
  EXPECT_GT(accuracy(*wkd, test_set), 0.88);

  // TAKD: the widest teacher -> an assistant (width 16) -> the student (width 8), soft labels only.
  distill::TeacherTeam big(plain_forward());
  big.add("teacher", widest);
  auto assistant = mlp(16);
  fit(*assistant, 150, 0.03, [&](nn::Module& m) {
    return distill::kd_loss(m.forward(train.x), big.logits(0, train.x), Tensor(), {.temperature = 2});
  });
  distill::TeacherTeam ta(plain_forward());
  ta.add("assistant", assistant);
  auto student = mlp(8);
  fit(*student, 150, 0.03, [&](nn::Module& m) {
    return distill::kd_loss(m.forward(train.x), ta.logits(0, train.x), Tensor(), {.temperature = 2});
  });
  EXPECT_GT(accuracy(*assistant, test_set), 0.88);
  EXPECT_GT(accuracy(*student, test_set), 0.85);
  // The student follows its assistant's (and through it the teacher's) decisions.
  std::vector<double> ps = host(argmax(student->forward(test_set.x), -1)),
                      pt = host(argmax(big.logits(0, test_set.x), -1));
  double agree = 0;
  for (size_t i = 0; i < ps.size(); ++i) agree += ps[i] == pt[i];
  EXPECT_GT(agree / static_cast<double>(ps.size()), 0.85);
}

}  // namespace
}  // namespace nabla
