// Checkpoints: resuming must continue bit for bit, and bad files must say what is wrong.
#include <filesystem>
#include <fstream>

#include "algorithms/optim/optimizer.h"
#include "apps/common/checkpoint.h"
#include "data/data.h"
#include "models/nn/layers.h"
#include "testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;

struct TrainRun {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::Optimizer> opt;
  std::unique_ptr<data::DataLoader> loader;
};

// A fresh model, optimizer and loader; `init_seed` changes the initial weights, so that a resumed run can
// only match if the checkpoint really restored them.
TrainRun make_run(std::shared_ptr<data::Dataset> set, uint64_t init_seed) {
  manual_seed(init_seed);
  TrainRun r;
  r.model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(8, 16), nn::ReLU(), std::make_shared<nn::Dropout>(0.3),
      std::make_shared<nn::Linear>(16, 3)});
  r.opt = std::make_unique<optim::AdamW>(r.model->parameters(), optim::AdamWOptions{.lr = 1e-2});
  r.loader = std::make_unique<data::DataLoader>(
      set, data::LoaderOptions{.batch_size = 16, .shuffle = true, .seed = 9});
  return r;
}

std::vector<float> train(TrainRun& r, int steps) {
  std::vector<float> losses;
  while (static_cast<int>(losses.size()) < steps) {
    auto b = r.loader->next();
    if (!b) continue;  // epoch boundary: the loader moves to the next epoch
    Tensor loss = cross_entropy(r.model->forward(b->inputs), b->labels);
    r.opt->zero_grad();
    loss.backward();
    r.opt->step();
    losses.push_back(static_cast<float>(loss.item()));
  }
  return losses;
}

std::shared_ptr<data::Dataset> dataset() {
  Tensor x = test::randn32({100, 8});
  Tensor y = argmax(matmul(x, test::randn32({8, 3})), 1);  // a planted linear rule
  return std::make_shared<data::TensorDataset>(x, y);
}

TEST(Checkpoint, ResumeIsBitIdenticalToAnUninterruptedRun) {
  auto set = dataset();
  const int n = 11;  // not a multiple of the 7 batches per epoch: resume lands mid-epoch
  TrainRun straight = make_run(set, 1);
  std::vector<float> all = train(straight, 2 * n);

  TrainRun first = make_run(set, 1);
  train(first, n);
  std::string path = (fs::temp_directory_path() / "nabla_resume_test.safetensors").string();
  apps::save_checkpoint(
      path, *first.model, *first.opt,
      {.step = n, .epoch = 0, .loader = first.loader->position(), .rng = default_generator(), .extra = {}});

  TrainRun resumed = make_run(set, 777);  // different init: everything must come from the file
  apps::TrainState s = apps::load_checkpoint(path, *resumed.model, *resumed.opt);
  default_generator() = s.rng;
  resumed.loader->set_position(s.loader);
  EXPECT_EQ(s.step, n);
  std::vector<float> rest = train(resumed, n);

  for (int i = 0; i < n; ++i) EXPECT_EQ(rest[i], all[n + i]) << "step " << n + i;  // exact, not approximate
  auto a = straight.model->state_dict(), b = resumed.model->state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].second.to_vector(), b[i].second.to_vector()) << a[i].first;
  fs::remove(path);
}

TEST(Checkpoint, MismatchedModelAndForeignFilesAreNamed) {
  auto set = dataset();
  TrainRun r = make_run(set, 1);
  std::string path = (fs::temp_directory_path() / "nabla_ck_mismatch.safetensors").string();
  apps::save_checkpoint(path, *r.model, *r.opt, {});
  auto other = std::make_shared<nn::Sequential>(
      std::vector<std::shared_ptr<nn::Module>>{std::make_shared<nn::Linear>(8, 4)});
  optim::AdamW other_opt(other->parameters());
  test::expect_error([&] { apps::load_checkpoint(path, *other, other_opt); },
                     {path, "unexpected", "mismatched"});
  optim::Sgd sgd(r.model->parameters());
  test::expect_error([&] { apps::load_checkpoint(path, *r.model, sgd); }, {path, "AdamW", "SGD"});
  save_safetensors(path, {{"w", zeros({2})}});
  test::expect_error([&] { apps::load_checkpoint(path, *r.model, *r.opt); },
                     {path, "not a Nabla checkpoint"});
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << "garbage";
  }
  test::expect_error([&] { apps::load_checkpoint(path, *r.model, *r.opt); }, {path});
  fs::remove(path);
}

}  // namespace
}  // namespace nabla
