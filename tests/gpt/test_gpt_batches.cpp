// train_gpt's batches per data-parallel rank (apps/common/gpt_batches.h): for random windows, sequential
// windows, SFT rows and the validation batches, the W ranks' slices of a micro-batch, stacked in rank order,
// are row for row the micro-batch of one process with W times the rows (so W ranks train as one process),
// and one process's batches are the windows data::TokenWindows gives for (seed, step * accum + micro).
#include "apps/common/gpt_batches.h"
#include "gpt_testing.h"

namespace nabla::test {
namespace {

std::vector<int64_t> values(const Tensor& t) { return t.contiguous().to_vector<int64_t>(); }

// Stacks the ranks' slices of micro-batch (step, micro) and compares them with one process's batch.
void expect_slices_partition(const apps::GptBatches& batches, int64_t step, int64_t micro, int64_t accum,
                             int64_t rows, int world) {
  auto [all_in, all_out] = batches.get(step, micro, accum, {.rows = rows * world});
  std::vector<Tensor> ins, outs;
  for (int r = 0; r < world; ++r) {
    auto [in, out] = batches.get(step, micro, accum, {.rows = rows, .rank = r, .world = world});
    ASSERT_EQ(in.size(0), rows);
    ins.push_back(in), outs.push_back(out);
  }
  EXPECT_EQ(values(cat(ins, 0)), values(all_in))
      << "step " << step << " micro " << micro << " world " << world;
  EXPECT_EQ(values(cat(outs, 0)), values(all_out)) << "step " << step << " micro " << micro;
  // The ranks' slices are not the same rows (a rank that forgot its offset would repeat rank 0's).
  if (world > 1) EXPECT_NE(values(ins[0]), values(ins[1]));
}

class GptBatchesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed = next_seed();
    data::write_token_shard(dir.file("train_000.bin"), markov_tokens(6000, 250, seed), 250, -1);
    data::write_token_shard(dir.file("train_001.bin"), markov_tokens(3000, 250, seed + 1), 250, -1);
    data::write_token_shard(dir.file("val_000.bin"), markov_tokens(2000, 250, seed + 2), 250, -1);
    batches.train =
        std::make_unique<data::TokenWindows>(data::list_token_shards(dir.file("train_*.bin")), 16);
    batches.val = std::make_unique<data::TokenWindows>(data::list_token_shards(dir.file("val_*.bin")), 16);
    batches.seed = seed;
  }
  TempDir dir;
  uint64_t seed = 0;
  apps::GptBatches batches;
};

TEST_F(GptBatchesTest, RanksOfRandomWindowsPartitionOneProcessBatch) {
  Generator g{seed, 7};
  for (int world : {2, 3, 4}) {
    const int64_t rows = randint(1, 6, {1}, {.dtype = DType::i64}, &g).item<int64_t>();
    const int64_t step = randint(0, 1000, {1}, {.dtype = DType::i64}, &g).item<int64_t>();
    for (int64_t micro = 0; micro < 3; ++micro) expect_slices_partition(batches, step, micro, 3, rows, world);
  }
  // One process: the windows TokenWindows draws for (seed, step * accum + micro), as before data-parallel.
  auto [in, out] = batches.get(5, 1, 3, {.rows = 4});
  Tensor w = batches.train->random_batch(4, seed, 5 * 3 + 1);
  EXPECT_EQ(values(in), values(w.narrow(1, 0, 16)));
  EXPECT_EQ(values(out), values(w.narrow(1, 1, 16)));
}

TEST_F(GptBatchesTest, RanksOfSequentialWindowsPartitionOneProcessBatch) {
  batches.random = false;
  Generator g{seed, 8};
  for (int world : {2, 3, 4}) {
    const int64_t rows = randint(1, 6, {1}, {.dtype = DType::i64}, &g).item<int64_t>();
    const int64_t step = randint(0, 100, {1}, {.dtype = DType::i64}, &g).item<int64_t>();
    for (int64_t micro = 0; micro < 2; ++micro) expect_slices_partition(batches, step, micro, 2, rows, world);
  }
  auto [in, out] = batches.get(3, 1, 2, {.rows = 4});
  EXPECT_EQ(values(in), values(batches.train->sequential_batch(4, (3 * 2 + 1) * 4).narrow(1, 0, 16)));
}

TEST_F(GptBatchesTest, RanksOfSftRowsPartitionOneProcessBatch) {
  batches.train.reset();
  Generator g{seed, 9};
  batches.sft.rows = 37, batches.sft.length = 12;
  batches.sft.ids = randint(0, 300, {37 * 12}, {.dtype = DType::i64}, &g).to_vector<int64_t>();
  batches.sft.labels = randint(-1, 300, {37 * 12}, {.dtype = DType::i64}, &g).to_vector<int64_t>();
  for (int world : {2, 4}) expect_slices_partition(batches, 11, 0, 1, 3, world);
}

TEST_F(GptBatchesTest, RanksOfValidationBatchesPartitionOneProcessBatch) {
  for (int world : {2, 3}) {
    const apps::BatchSlice all{.rows = 2 * world};
    EXPECT_EQ(batches.val_batches(100, all), batches.val->num_sequential_windows() / (2 * world));
    for (int64_t i = 0; i < 3; ++i) {
      std::vector<Tensor> parts;
      for (int r = 0; r < world; ++r) {
        const apps::BatchSlice s{.rows = 2, .rank = r, .world = world};
        EXPECT_EQ(batches.val_batches(100, s), batches.val_batches(100, all));
        parts.push_back(batches.val_batch(i, s));
      }
      EXPECT_EQ(values(cat(parts, 0)), values(batches.val_batch(i, all)));
    }
  }
}

TEST_F(GptBatchesTest, BadSlicesAndMicroBatchesAreRefused) {
  expect_error([&] { batches.get(0, 0, 1, {.rows = 2, .rank = 2, .world = 2}); }, {"rank 2 of 2"});
  expect_error([&] { batches.get(0, 3, 3, {.rows = 2}); }, {"micro-batch 3", "3 micro-batches"});
  expect_error([&] { batches.get(0, 0, 1, {.rows = 0}); }, {"0 rows"});
}

}  // namespace
}  // namespace nabla::test
