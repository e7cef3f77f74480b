#include "algorithms/optim/optimizer.h"
#include "models/classifiers.h"
#include "testing.h"

namespace nabla {
namespace {
using namespace nn;

TEST(Module, NamesParametersAndBuffersWithDots) {
  auto net = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(4, 3), ReLU(), BatchNorm1d(3), std::make_shared<Linear>(3, 2, false)});
  std::vector<std::string> names;
  for (auto& [n, t] : net->state_dict()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "3.weight",
                                             "2.running_mean", "2.running_var", "2.num_batches_tracked"}));
  EXPECT_EQ(net->num_parameters(), 4 * 3 + 3 + 3 + 3 + 3 * 2);
  for (auto& p : net->parameters()) EXPECT_TRUE(p.requires_grad());
  EXPECT_NE(net->summary().find("Linear(in=4, out=3)"), std::string::npos) << net->summary();
}

TEST(Module, TrainAndEvalReachEverySubmodule) {
  auto net = models::lenet5();
  net->eval();
  for (auto& [n, m] : net->named_modules()) EXPECT_FALSE(m->is_training()) << n;
  net->train();
  for (auto& [n, m] : net->named_modules()) EXPECT_TRUE(m->is_training()) << n;
}

TEST(Module, LoadStateDictCopiesInPlaceAndKeepsHandles) {
  auto a = models::mlp(6, {5}, 3), b = models::mlp(6, {5}, 3);
  Tensor handle = b->parameters()[0];
  b->load_state_dict(a->state_dict());
  test::expect_close(handle, a->parameters()[0]);
  Tensor x = test::randn32({2, 6});
  test::expect_close(b->forward(x), a->forward(x), 1e-6);
}

TEST(Module, LoadStateDictListsMissingUnexpectedAndMismatched) {
  auto a = models::mlp(6, {5}, 3);
  auto sd = a->state_dict();
  sd.erase(sd.begin());                         // 1.weight missing
  sd.emplace_back("extra.weight", zeros({2}));  // unexpected
  sd[0].second = zeros({7});                    // 1.bias mismatched
  Tensor before = a->parameters()[2].clone();
  test::expect_error(
      [&] { a->load_state_dict(sd); },
      {"missing (1): 1.weight", "unexpected (1): extra.weight", "1.bias (expected f32 [5], got f32 [7])"});
  test::expect_close(a->parameters()[2], before);  // nothing was written
}

TEST(Layers, LinearMatchesMatmulAndInitBounds) {
  Linear l(20, 7);
  double bound = 1 / std::sqrt(20.0);
  EXPECT_LE(amax(abs(l.weight)).item(), bound);
  EXPECT_GT(amax(abs(l.weight)).item(), bound * 0.5);
  Tensor x = test::randn32({3, 20});
  test::expect_close(l.forward(x), matmul(x, l.weight.t()) + l.bias, 1e-6);
  test::expect_error([&] { l.forward(test::randn32({3, 19})); }, {"Linear", "19", "20"});
}

TEST(Models, LeNet5ForwardBackwardShapes) {
  auto net = models::lenet5(1, 28, 10);
  EXPECT_EQ(net->num_parameters(), 61706);
  Tensor x = test::randn32({4, 1, 28, 28});
  Tensor y = net->forward(x);
  EXPECT_EQ(y.shape(), (Shape{4, 10}));
  cross_entropy(y, test::randint64(0, 10, {4})).backward();
  for (auto& [n, p] : net->named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << n;
    EXPECT_GT(amax(abs(p.grad())).item(), 0.0) << n;
  }
}

TEST(Models, LeNet5LossFallsOnASmallFixedBatch) {
  manual_seed(3);
  auto net = models::lenet5(1, 28, 10);
  Tensor x = test::randn32({32, 1, 28, 28});
  Tensor t = test::randint64(0, 10, {32});
  optim::Adam opt(net->parameters(), {.lr = 2e-3});
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    Tensor loss = cross_entropy(net->forward(x), t);
    opt.zero_grad();
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  EXPECT_LT(last, first * 0.5) << "first " << first << " last " << last;
}

}  // namespace
}  // namespace nabla

namespace nabla {
namespace {
TEST(Models, ClassifierFactoryBuildsResNetsForTheTrainingBinary) {
  auto net = models::make_classifier("resnet20", 1, 28, 10);
  EXPECT_EQ(net->forward(test::randn32({2, 1, 28, 28})).shape(), (Shape{2, 10}));
  test::expect_error([] { models::make_classifier("vgg16", 3, 32, 10); }, {"vgg16", "lenet5", "resnet20"});
}
}  // namespace
}  // namespace nabla
