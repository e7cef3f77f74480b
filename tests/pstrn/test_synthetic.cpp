// The PSTRN synthetic experiment (algorithms/pstrn/synthetic.h) on the shared data: the text-matrix reader's
// errors, the data's statistics (the README's figures), the least-squares floor, seeded and thread-parallel
// training giving the same numbers, and a small progressive search against equal ranks.
#include <omp.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "algorithms/pstrn/synthetic.h"
#include "testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;

std::string data_dir() {
  const char* env = std::getenv("NABLA_PSTRN_SYNTHETIC_DIR");
  return env ? env : "/work/shared/data/pstrn-synthetic";
}

TEST(SyntheticData, TextMatrixReaderNamesFileAndLine) {
  const fs::path p = fs::temp_directory_path() / ("pstrn_matrix_" + std::to_string(getpid()) + ".txt");
  auto write = [&](const std::string& text) { std::ofstream(p) << text; };
  write("# float32 matrix, 2 rows x 3 cols\n1 2 3\n4 5.5 -6\n");
  test::expect_close(pstrn::read_text_matrix(p.string(), 2, 3), {1, 2, 3, 4, 5.5, -6});
  write("# c\n1 2 3\n4 5\n");
  test::expect_error([&] { pstrn::read_text_matrix(p.string(), 2, 3); },
                     {p.filename().string(), "line 3", "2 numbers"});
  write("# c\n1 2 3\n4 5 x\n");
  test::expect_error([&] { pstrn::read_text_matrix(p.string(), 2, 3); }, {"line 3", "then text"});
  write("# c\n1 2 3\n");
  test::expect_error([&] { pstrn::read_text_matrix(p.string(), 2, 3); }, {"1 rows, expected 2"});
  fs::remove(p);
  test::expect_error([&] { pstrn::read_text_matrix(p.string(), 2, 3); }, {"cannot open"});
}

class Synthetic : public ::testing::Test {
 protected:
  // One OpenMP thread: these nets are tiny, and spinning threads on a busy 2-core machine cost 20x.
  static void SetUpTestSuite() {
    threads_ = omp_get_max_threads();
    omp_set_num_threads(1);
    if (fs::exists(data_dir() + "/groundtruth/fc_144x144.txt"))
      data_ = new pstrn::SyntheticData(pstrn::load_synthetic(data_dir(), 1000, 0));
  }
  static void TearDownTestSuite() {
    delete data_;
    data_ = nullptr;
    omp_set_num_threads(threads_);
  }
  void SetUp() override {
    if (!data_) GTEST_SKIP() << "no synthetic data at " << data_dir() << " (NABLA_PSTRN_SYNTHETIC_DIR)";
  }
  static pstrn::SyntheticData* data_;
  static int threads_;
};
pstrn::SyntheticData* Synthetic::data_ = nullptr;
int Synthetic::threads_ = 1;

double variance(const Tensor& t) {
  auto v = t.to_double_vector();
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= v.size();
  for (double x : v) s += (x - m) * (x - m);
  return s / v.size();
}

TEST_F(Synthetic, DataHasTheReadmesStatistics) {
  EXPECT_EQ(sum(data_->w).item_double(), 12992);  // ones in the block matrix
  EXPECT_NEAR(variance(data_->x_val), 0.6485, 1e-3);
  EXPECT_NEAR(variance(data_->x_train), 0.65, 0.01);  // regenerated: 0.5 + 0.15
  EXPECT_NEAR(variance(data_->y_train) / variance(data_->y_val), 1.0, 0.05);
  EXPECT_NEAR(pstrn::synthetic_linear_floor(*data_), 9.2811, 1e-3);
}

TEST_F(Synthetic, TrainingIsSeededAndThreadParallelEvaluationGivesTheSameNumbers) {
  pstrn::SyntheticTrainOptions o{.epochs = 2, .milestones = {1}};
  const std::vector<pstrn::Ranks> batch = {{3, 3, 3, 3}, {6, 3, 3, 6}, {4, 3, 6, 6}, {9, 9, 9, 9}};
  auto serial = pstrn::synthetic_fitness(*data_, o, 1)(batch);
  auto parallel = pstrn::synthetic_fitness(*data_, o, 2)(batch);
  for (size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(serial[i].error, parallel[i].error) << i;
    EXPECT_EQ(serial[i].compression, parallel[i].compression);
  }
  EXPECT_DOUBLE_EQ(serial[0].compression, 144.0 * 144.0 / (4 * 3 * 12 * 3));
  EXPECT_GT(serial[0].error, 9.28);  // never below the least-squares floor
}

// A small progressive search (3 phases of 3 generations of 6, on 1,000 rows, 2 epochs per net) beats the
// "enumerating" baseline the paper argues against: every equal-rank net of the phase-1 lattice.
TEST_F(Synthetic, SmallProgressiveSearchBeatsEqualRanks) {
  pstrn::SyntheticTrainOptions o{.epochs = 2, .milestones = {1}};
  auto fit = pstrn::synthetic_fitness(*data_, o, 1);
  pstrn::PstrnSearch s({.n_ranks = 4,
                        .steps = {3, 2, 1},
                        .generations = {3, 3, 3},
                        .min_rank = 3,
                        .pop_size = 6,
                        .n_offspring = 6,
                        .top_k = 1,
                        .reinit_each_phase = true,
                        .seed = 0});
  s.run(fit);
  double equal_best = INFINITY;
  for (auto& r : fit({{3, 3, 3, 3}, {6, 6, 6, 6}, {9, 9, 9, 9}, {12, 12, 12, 12}, {15, 15, 15, 15}}))
    equal_best = std::min(equal_best, r.error);
  EXPECT_LT(s.best().result.error, equal_best);
  EXPECT_LE(s.distinct_networks(), s.evaluations());  // the cache: repeated ranks are trained once
  EXPECT_EQ(s.evaluations(), 3 * (6 + 2 * 6));
}

}  // namespace
}  // namespace nabla
