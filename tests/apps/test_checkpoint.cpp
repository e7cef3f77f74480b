// Checkpoints: resuming must continue bit for bit, and bad files must say what is wrong.
#include <filesystem>
#include <fstream>

#include "algorithms/optim/optimizer.h"
#include "apps/common/checkpoint.h"
#include "data/data.h"
#include "engine/safetensors.h"
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

// A checkpoint of `r` whose metadata field `key` is replaced by `value`.
void write_with_field(const std::string& path, TrainRun& r, const std::string& key,
                      const std::string& value) {
  apps::save_checkpoint(path, *r.model, *r.opt,
                        {.step = 9, .epoch = 1, .loader = {1, 2}, .rng = {0, 40}, .extra = {}});
  SafetensorsFile f = load_safetensors(path);
  f.metadata[key] = value;
  NamedTensors tensors(f.tensors.begin(), f.tensors.end());
  save_safetensors(path, tensors, f.metadata);
}

TEST(Checkpoint, BadRestoredFieldsNameTheFileAndTheField) {
  auto set = dataset();
  TrainRun r = make_run(set, 1);
  const std::string path = (fs::temp_directory_path() / "nabla_ck_fields.safetensors").string();
  auto error_of = [&](const std::string& key, const std::string& value) {
    write_with_field(path, r, key, value);
    try {
      apps::TrainState s = apps::load_checkpoint(path, *r.model, *r.opt);
      apps::check_against_run(path, s, /*steps_per_epoch=*/7, /*epochs=*/3, /*seed=*/0,
                              /*min_rng_offset=*/10);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string ck = "checkpoint " + path + ": ";
  EXPECT_EQ(error_of("step", "9"), "");  // 1 x 7 + 2: consistent
  EXPECT_EQ(error_of("rng_offset", "-1"),
            ck + "field 'rng_offset' is '-1', expected an integer in [0, 9223372036854775807]");
  EXPECT_EQ(
      error_of("rng_offset", "18446744073709551615"),
      ck + "field 'rng_offset' is '18446744073709551615', expected an integer in [0, 9223372036854775807]");
  EXPECT_EQ(error_of("rng_offset", "3"),
            ck + "field 'rng_offset' is 3, below 10, where the model's initialisation "
                 "leaves the generator");
  EXPECT_EQ(error_of("step", "12abc"),
            ck + "field 'step' is '12abc', expected an integer in [0, 9223372036854775807]");
  EXPECT_EQ(error_of("loader_batch", "9223372036854775807"),
            ck + "field 'loader_batch' is 9223372036854775807, expected at most the run's 7 steps per epoch");
  EXPECT_EQ(error_of("loader_epoch", "9223372036854775807"),
            ck + "field 'loader_epoch' is 9223372036854775807, expected at most the run's --epochs 3");
  EXPECT_EQ(error_of("step", "100"),
            ck + "field 'step' is 100, but the loader position (epoch 1, batch 2) at 7 steps "
                 "per epoch means step 9 (was it written by a run with another --batch-size, "
                 "--limit-train or data set?)");
  EXPECT_EQ(error_of("rng_seed", "5"),
            ck + "field 'rng_seed' is 5, this run has --seed 0 (resume with --seed 5)");
  EXPECT_EQ(error_of("epoch_loss_sum", "nan"),
            ck + "field 'epoch_loss_sum' is 'nan', expected a finite number");
  fs::remove(path);
}

TEST(Checkpoint, PartialEpochSumsRoundTripExactly) {
  auto set = dataset();
  TrainRun r = make_run(set, 1);
  const std::string path = (fs::temp_directory_path() / "nabla_ck_partial.safetensors").string();
  apps::TrainState s{.step = 3, .loader = {0, 3}};
  s.partial = {.loss_sum = 0.1 + 0.2 + 1.0 / 3, .loss_count = 3, .correct = 17, .seen = 48};
  apps::save_checkpoint(path, *r.model, *r.opt, s);
  apps::TrainState back = apps::load_checkpoint(path, *r.model, *r.opt);
  EXPECT_EQ(back.partial.loss_sum, s.partial.loss_sum);  // bit for bit
  EXPECT_EQ(back.partial.loss_count, 3);
  EXPECT_EQ(back.partial.correct, 17);
  EXPECT_EQ(back.partial.seen, 48);
  // Saved again at an epoch's end (no running sums) with the loaded metadata: no stale sums come back.
  back.partial = {};
  apps::save_checkpoint(path, *r.model, *r.opt, back);
  EXPECT_EQ(apps::load_checkpoint(path, *r.model, *r.opt).partial.loss_count, 0);
  fs::remove(path);
}

TEST(Checkpoint, ResumePathsAndStaleTemporaries) {
  const fs::path dir = fs::temp_directory_path() / "nabla_ck_paths";
  fs::create_directories(dir);
  test::expect_error([&] { apps::check_checkpoint_file(dir.string(), "--resume"); },
                     {"--resume " + dir.string() + ": is a directory, expected a checkpoint file"});
  test::expect_error([&] { apps::check_checkpoint_file((dir / "none").string(), "--resume"); },
                     {"--resume " + (dir / "none").string() + ": no such file"});
  const std::string ck = (dir / "ck.safetensors").string();
  EXPECT_FALSE(apps::remove_stale_temporary(ck));
  std::ofstream(ck + ".tmp") << "half a checkpoint";
  EXPECT_TRUE(apps::remove_stale_temporary(ck));
  EXPECT_FALSE(fs::exists(ck + ".tmp"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace nabla
