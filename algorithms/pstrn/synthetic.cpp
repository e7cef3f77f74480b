// The PSTRN synthetic experiment: data, the TR-FC training that scores a rank vector, and a least-squares
// floor. algorithms/pstrn/synthetic.h says what each is.
#include "algorithms/pstrn/synthetic.h"

#include <omp.h>

#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include "algorithms/optim/optimizer.h"
#include "autograd/autograd.h"
#include "engine/error.h"
#include "models/tensor_ring.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/linalg.h"
#include "ops/loss.h"

namespace nabla::pstrn {

Tensor read_text_matrix(const std::string& path, int64_t rows, int64_t cols) {
  std::ifstream in(path);
  NABLA_CHECK(in, "pstrn-synthetic: cannot open ", path);
  std::string line;
  std::vector<double> values;
  values.reserve(rows * cols);
  int64_t lineno = 0, got_rows = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    NABLA_CHECK(got_rows < rows, path, ": more than the expected ", rows, " rows (line ", lineno, ")");
    std::istringstream s(line);
    double v;
    int64_t n = 0;
    while (s >> v) {
      values.push_back(v);
      ++n;
    }
    NABLA_CHECK(s.eof() && n == cols, path, ": line ", lineno, " has ", n, " numbers",
                s.eof() ? "" : " then text", ", expected ", cols);
    ++got_rows;
  }
  NABLA_CHECK(got_rows == rows, path, ": ", got_rows, " rows, expected ", rows);
  return from_vector(values, {rows, cols});
}

SyntheticData load_synthetic(const std::string& dir, int64_t n_train, uint64_t seed) {
  NABLA_CHECK(n_train >= 1, "pstrn-synthetic: training rows must be >= 1, got ", n_train);
  SyntheticData d;
  d.w = read_text_matrix(dir + "/groundtruth/fc_144x144.txt", 144, 144);
  d.x_val = read_text_matrix(dir + "/dataset_valid/var0.05/x_1000x144.txt", 1000, 144);
  d.y_val = read_text_matrix(dir + "/dataset_valid/var0.05/y_1000x144.txt", 1000, 144);
  Generator g{seed ^ 0x5157e71cull, 0};
  NoGradGuard ng;
  Tensor x0 = normal({n_train, 144}, 0.0, std::sqrt(0.5), {}, &g);
  d.y_train = matmul(x0, d.w);
  d.x_train = add(x0, normal({n_train, 144}, 0.0, std::sqrt(0.15), {}, &g));
  return d;
}

FitnessResult train_synthetic(const SyntheticData& data, const Ranks& ranks, const SyntheticTrainOptions& o) {
  NABLA_CHECK(ranks.size() == 4, "pstrn-synthetic: the TR-FC has 4 ranks, got ", ranks.size());
  NABLA_CHECK(o.epochs >= 1 && o.batch_size >= 1, "pstrn-synthetic: epochs ", o.epochs, " and batch size ",
              o.batch_size, " must be >= 1");
  Generator g{o.seed, 0};
  models::TRLinear layer({12, 12}, {12, 12}, ranks,
                         {.bias = false, .init = models::TRInit::lenet, .generator = &g});
  optim::Adam opt(layer.parameters(), {.lr = o.lr, .weight_decay = o.weight_decay});
  std::mt19937_64 order_rng(o.seed);
  const int64_t n = data.x_train.size(0);
  std::vector<int64_t> perm(n);
  double best = INFINITY;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    double lr = o.lr;
    for (int64_t m : o.milestones)
      if (epoch >= m) lr *= o.gamma;
    opt.set_lr(lr);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), order_rng);
    Tensor idx_all = from_vector(std::vector<double>(perm.begin(), perm.end()), {n}, {.dtype = DType::i64});
    for (int64_t s = 0; s < n; s += o.batch_size) {
      const int64_t b = std::min(o.batch_size, n - s);
      Tensor idx = idx_all.narrow(0, s, b);
      Tensor loss =
          mse_loss(layer.forward(index_select(data.x_train, 0, idx)), index_select(data.y_train, 0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    NoGradGuard ng;
    const double val = mse_loss(layer.forward(data.x_val), data.y_val).item_double();
    NABLA_CHECK(std::isfinite(val), "pstrn-synthetic: validation MSE is not finite at epoch ", epoch + 1,
                " for ranks [", ranks[0], ",", ranks[1], ",", ranks[2], ",", ranks[3], "]");
    best = std::min(best, val);
  }
  return {best, layer.compression()};
}

Fitness synthetic_fitness(const SyntheticData& data, const SyntheticTrainOptions& o, int64_t threads) {
  return [&data, o, threads](const std::vector<Ranks>& batch) {
    std::vector<FitnessResult> out(batch.size());
    std::vector<std::string> errors(batch.size());
    const int64_t n = static_cast<int64_t>(batch.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max <int64_t>(1, threads)) if (threads > 1)
    for (int64_t i = 0; i < n; ++i) {
      try {
        out[i] = train_synthetic(data, batch[i], o);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
    for (auto& e : errors) NABLA_CHECK(e.empty(), e);
    return out;
  };
}

double synthetic_linear_floor(const SyntheticData& data) {
  NoGradGuard ng;
  Tensor x = data.x_val.to(DType::f64), y = data.y_val.to(DType::f64);
  const int64_t n = x.size(1);
  std::vector<double> a = matmul(x.t(), x).contiguous().to_double_vector();  // X^T X, then its Cholesky
  std::vector<double> b = matmul(x.t(), y).contiguous().to_double_vector();  // X^T Y [n, m]
  const int64_t m = y.size(1);
  for (int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int64_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    NABLA_CHECK(d > 0, "pstrn-synthetic: X^T X is not positive definite");
    a[j * n + j] = std::sqrt(d);
    for (int64_t i = j + 1; i < n; ++i) {
      double v = a[i * n + j];
      for (int64_t k = 0; k < j; ++k) v -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = v / a[j * n + j];
    }
  }
  for (int64_t c = 0; c < m; ++c) {  // L L^T w = b, column by column
    for (int64_t i = 0; i < n; ++i) {
      double v = b[i * m + c];
      for (int64_t k = 0; k < i; ++k) v -= a[i * n + k] * b[k * m + c];
      b[i * m + c] = v / a[i * n + i];
    }
    for (int64_t i = n - 1; i >= 0; --i) {
      double v = b[i * m + c];
      for (int64_t k = i + 1; k < n; ++k) v -= a[k * n + i] * b[k * m + c];
      b[i * m + c] = v / a[i * n + i];
    }
  }
  Tensor w = from_vector(b, {n, m}, {.dtype = DType::f64});
  return mse_loss(matmul(x, w), y).item_double();
}

}  // namespace nabla::pstrn
