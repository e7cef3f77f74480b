// The TR-LSTM sequence task of PSTRN: algorithms/pstrn/sequences.h has the data model and the training.
#include "algorithms/pstrn/sequences.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "algorithms/optim/optimizer.h"
#include "autograd/autograd.h"
#include "engine/error.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/loss.h"
#include "ops/reduce.h"

namespace nabla::pstrn {

namespace {

void split(const SequenceTaskOptions& o, const std::vector<std::vector<float>>& motifs,
           const std::vector<std::pair<int64_t, int64_t>>& pairs, int64_t n, Generator& g, Tensor& x,
           Tensor& y) {
  const int64_t t_len = o.length, feat = o.rows * o.cols, half = o.length / 2;
  y = randint(0, static_cast<int64_t>(pairs.size()), {std::max<int64_t>(n, 1)}, {.dtype = DType::i64}, &g)
          .narrow(0, 0, n);
  const auto t1 = randint(0, half, {std::max<int64_t>(n, 1)}, {.dtype = DType::i64}, &g).to_vector<int64_t>();
  const auto t2 =
      randint(half, t_len, {std::max<int64_t>(n, 1)}, {.dtype = DType::i64}, &g).to_vector<int64_t>();
  x = randn({n, t_len, feat}, {}, &g).contiguous();
  const auto labels = y.to_vector<int64_t>();
  float* px = x.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const auto [a, b] = pairs[labels[i]];
    float* at = px + (i * t_len + t1[i]) * feat;
    float* bt = px + (i * t_len + t2[i]) * feat;
    for (int64_t f = 0; f < feat; ++f) {
      at[f] += motifs[a][f];
      bt[f] += motifs[b][f];
    }
  }
}

double error_percent(models::TRLSTMClassifier& net, const Tensor& x, const Tensor& y, Device dev) {
  NoGradGuard ng;
  net.eval();
  int64_t correct = 0;
  const int64_t n = x.size(0);
  for (int64_t s = 0; s < n; s += 500) {
    const int64_t b = std::min<int64_t>(500, n - s);
    Tensor pred = argmax(net.forward(x.narrow(0, s, b).to(dev)), 1).to(Device::cpu());
    correct += static_cast<int64_t>(sum(eq(pred, y.narrow(0, s, b)).to(DType::f32)).item_double());
  }
  net.train();
  return 100.0 * (1.0 - static_cast<double>(correct) / static_cast<double>(n));
}

}  // namespace

SequenceTask make_sequence_task(const SequenceTaskOptions& o) {
  NABLA_CHECK(o.length >= 2, "sequence task: length must be >= 2 (a first and a second half), got ",
              o.length);
  NABLA_CHECK(o.rows >= 1 && o.cols >= 1, "sequence task: feature shape must be >= 1, got ", o.rows, " x ",
              o.cols);
  NABLA_CHECK(o.motifs >= 2, "sequence task: need >= 2 motifs (classes are ordered pairs), got ", o.motifs);
  NABLA_CHECK(o.motif_rank >= 1 && o.motif_rank <= std::min(o.rows, o.cols),
              "sequence task: motif rank must be in [1, ", std::min(o.rows, o.cols), "], got ", o.motif_rank);
  NABLA_CHECK(o.n_train >= 1 && o.n_val >= 0 && o.n_test >= 0, "sequence task: sizes train ", o.n_train,
              " val ", o.n_val, " test ", o.n_test, " must be >= 1, >= 0, >= 0");
  NABLA_CHECK(std::isfinite(o.amplitude) && o.amplitude >= 0, "sequence task: amplitude must be >= 0, got ",
              o.amplitude);
  Generator g{o.seed, 0};
  SequenceTask d;
  const int64_t feat = o.rows * o.cols;
  std::vector<std::vector<float>> motifs;
  std::vector<float> flat;
  for (int64_t m = 0; m < o.motifs; ++m) {
    const auto u = randn({o.motif_rank, o.rows}, {}, &g).to_vector<float>();
    const auto v = randn({o.motif_rank, o.cols}, {}, &g).to_vector<float>();
    std::vector<double> w(feat, 0.0);
    for (int64_t k = 0; k < o.motif_rank; ++k)
      for (int64_t r = 0; r < o.rows; ++r)
        for (int64_t c = 0; c < o.cols; ++c) w[r * o.cols + c] += u[k * o.rows + r] * v[k * o.cols + c];
    double norm = 0;
    for (double e : w) norm += e * e;
    norm = std::sqrt(norm);
    std::vector<float> motif(feat);
    for (int64_t f = 0; f < feat; ++f) motif[f] = static_cast<float>(w[f] * o.amplitude / norm);
    flat.insert(flat.end(), motif.begin(), motif.end());
    motifs.push_back(std::move(motif));
  }
  d.motifs = from_vector(std::vector<double>(flat.begin(), flat.end()), {o.motifs, feat});
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (int64_t a = 0; a < o.motifs; ++a)
    for (int64_t b = 0; b < o.motifs; ++b)
      if (a != b) pairs.emplace_back(a, b);
  d.classes = static_cast<int64_t>(pairs.size());
  split(o, motifs, pairs, o.n_train, g, d.x_train, d.y_train);
  split(o, motifs, pairs, o.n_val, g, d.x_val, d.y_val);
  split(o, motifs, pairs, o.n_test, g, d.x_test, d.y_test);
  return d;
}

SequenceResult train_sequence(const SequenceTask& data, const Ranks& ranks, const SequenceTrainOptions& o,
                              bool test) {
  NABLA_CHECK(o.epochs >= 1 && o.batch_size >= 1, "TR-LSTM task: epochs ", o.epochs, " and batch size ",
              o.batch_size, " must be >= 1");
  const Device dev = Device::parse(o.device);
  Generator g{233 + o.seed, 0};  // the authors' seed 233, as the image tasks
  models::TRLSTMOptions mo = o.model;
  mo.layer.generator = &g;
  models::TRLSTMClassifier net(ranks, data.classes, mo);
  net.to(dev);
  SequenceResult r;
  r.params = net.num_parameters();
  r.compression = net.min_compression();
  r.network_compression = net.network_compression();
  optim::Adam opt(net.parameters(), {.lr = o.lr});
  std::mt19937_64 order_rng(233 + o.seed);
  const int64_t n = data.x_train.size(0);
  std::vector<int64_t> perm(n);
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    double lr = o.lr;
    for (int64_t m : o.milestones)
      if (epoch >= m) lr *= o.gamma;
    opt.set_lr(lr);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), order_rng);
    Tensor idx_all = from_vector(std::vector<double>(perm.begin(), perm.end()), {n}, {.dtype = DType::i64});
    for (int64_t s = 0; s < n; s += o.batch_size) {
      Tensor idx = idx_all.narrow(0, s, std::min(o.batch_size, n - s));
      Tensor loss = cross_entropy(net.forward(index_select(data.x_train, 0, idx).to(dev)),
                                  index_select(data.y_train, 0, idx).to(dev));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    if (data.x_val.size(0) > 0) {
      const double e = error_percent(net, data.x_val, data.y_val, dev);
      r.best_val_error = std::min(r.best_val_error, e);
    }
  }
  if (test && data.x_test.size(0) > 0) r.test_error = error_percent(net, data.x_test, data.y_test, dev);
  return r;
}

Fitness sequence_fitness(const SequenceTask& data, const SequenceTrainOptions& o, int64_t threads) {
  if (o.device != "cpu") threads = 1;
  return [&data, o, threads](const std::vector<Ranks>& batch) {
    std::vector<FitnessResult> out(batch.size());
    std::vector<std::string> errors(batch.size());
    const int64_t n = static_cast<int64_t>(batch.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max <int64_t>(1, threads)) if (threads > 1)
    for (int64_t i = 0; i < n; ++i) {
      try {
        const auto r = train_sequence(data, batch[i], o);
        out[i] = {r.best_val_error, o.network_compression ? r.network_compression : r.compression};
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
    for (auto& e : errors) NABLA_CHECK(e.empty(), e);
    return out;
  };
}

}  // namespace nabla::pstrn
