// DataLoader (loader.h). With workers, a Run holds the production of one epoch: workers claim batch
// indices in increasing order, at most `capacity` ahead of the consumer, and file the finished batch (or
// the exception) under its index; next() waits for exactly the index it needs, so completion order never
// shows. A Run lives until the epoch ends or the position is changed, then its threads are joined.
#include "data/loader.h"

#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "engine/error.h"
#include "engine/trace.h"
#include "engine/random.h"

namespace nabla::data {

namespace {

// Uniform in [0, n) from 64 random bits (Lemire's multiply-shift; the bias is below 2^-40 for n < 2^24).
uint64_t bounded(uint64_t bits, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(bits) * n) >> 64);
}

struct Produced {
  std::optional<Batch> batch;
  std::exception_ptr error;
};

}  // namespace

struct DataLoader::Run {
  int64_t epoch = 0;
  std::vector<int64_t> order;
  int64_t end = 0;  // batches in the epoch
  int64_t capacity = 1;
  std::mutex mutex;
  std::condition_variable work_cv, ready_cv;
  int64_t next_claim = 0, next_yield = 0;
  bool stop = false;
  std::map<int64_t, Produced> ready;
  std::vector<std::thread> threads;
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options, Transform transform)
    : dataset_(std::move(dataset)), options_(options), transform_(std::move(transform)) {
  NABLA_CHECK(dataset_ != nullptr, "DataLoader: got no dataset");
  NABLA_CHECK(options_.batch_size > 0, "DataLoader: batch_size must be positive, got ", options_.batch_size);
  NABLA_CHECK(options_.num_workers >= 0, "DataLoader: num_workers must be >= 0, got ", options_.num_workers);
  NABLA_CHECK(options_.prefetch_factor >= 1, "DataLoader: prefetch_factor must be >= 1, got ",
              options_.prefetch_factor);
  NABLA_CHECK(options_.num_replicas >= 1 && options_.rank >= 0 && options_.rank < options_.num_replicas,
              "DataLoader: expected 0 <= rank < num_replicas, got rank ", options_.rank, " of ",
              options_.num_replicas);
}

DataLoader::~DataLoader() { stop_run(); }

int64_t DataLoader::num_examples() const {
  int64_t n = dataset_->size(), r = options_.num_replicas;
  return r == 1 ? n : (n + r - 1) / r;
}

int64_t DataLoader::num_batches() const {
  int64_t n = num_examples(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  int64_t n = dataset_->size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (options_.shuffle && n > 1) {
    // Counter 2 * epoch keys the shuffle of an epoch (2 * epoch + 1 the augmentations, transforms.cpp).
    auto w = philox4x32(2 * static_cast<uint64_t>(epoch), options_.seed);
    uint64_t key = static_cast<uint64_t>(w[0]) << 32 | w[1];
    for (int64_t i = n - 1; i > 0; --i) {
      uint64_t j = bounded(philox_bits64(key, 0, n - 1 - i), static_cast<uint64_t>(i) + 1);
      std::swap(order[i], order[j]);
    }
  }
  int64_t r = options_.num_replicas;
  if (r == 1 || n == 0) return order;
  std::vector<int64_t> mine;
  int64_t per = num_examples();
  for (int64_t k = 0; k < per; ++k) mine.push_back(order[(options_.rank + k * r) % n]);
  return mine;
}

Batch DataLoader::make_batch(int64_t epoch, int64_t batch_index, const std::vector<int64_t>& order) const {
  int64_t b = options_.batch_size, n = static_cast<int64_t>(order.size());
  int64_t begin = batch_index * b, end = std::min(n, begin + b);
  std::vector<int64_t> indices(order.begin() + begin, order.begin() + end);
  std::vector<Example> examples;
  examples.reserve(indices.size());
  for (int64_t i : indices) {
    try {
      Example ex = dataset_->get(i);
      if (transform_) {
        Rng rng(example_seed(options_.seed, epoch, i));
        ex.input = transform_(ex.input, rng);
      }
      examples.push_back(std::move(ex));
    } catch (const Error& e) {
      fail("data loader: epoch ", epoch, " batch ", batch_index, " example ", i, ": ", e.what());
    }
  }
  try {
    Batch batch = collate(examples, indices);
    batch.epoch = epoch;
    batch.index = batch_index;
    return batch;
  } catch (const Error& e) {
    fail("data loader: epoch ", epoch, " batch ", batch_index, ": ", e.what());
  }
}

void DataLoader::stop_run() {
  if (!run_) return;
  {
    std::lock_guard<std::mutex> lock(run_->mutex);
    run_->stop = true;
  }
  run_->work_cv.notify_all();
  for (std::thread& t : run_->threads) t.join();
  run_.reset();
}

void DataLoader::set_position(LoaderPosition p) {
  NABLA_CHECK(p.epoch >= 0 && p.batch >= 0 && p.batch <= num_batches(), "DataLoader: position (epoch ",
              p.epoch, ", batch ", p.batch, ") is out of range: an epoch has ", num_batches(), " batches");
  stop_run();
  position_ = p;
}

std::optional<Batch> DataLoader::next() {
  int64_t epoch = position_.epoch, index = position_.batch;
  if (index >= num_batches()) {
    stop_run();
    position_ = {epoch + 1, 0};
    return std::nullopt;
  }
  if (options_.num_workers == 0) {
    if (cached_epoch_ != epoch) {
      cached_order_ = epoch_order(epoch);
      cached_epoch_ = epoch;
    }
    Batch batch = make_batch(epoch, index, cached_order_);
    ++position_.batch;
    return batch;
  }

  if (!run_ || run_->epoch != epoch || run_->next_yield != index) {
    stop_run();
    run_ = std::make_unique<Run>();
    Run* run = run_.get();
    run->epoch = epoch;
    run->order = epoch_order(epoch);
    run->end = num_batches();
    run->capacity = static_cast<int64_t>(options_.num_workers) * options_.prefetch_factor;
    run->next_claim = run->next_yield = index;
    for (int w = 0; w < options_.num_workers; ++w)
      run->threads.emplace_back([this, run] {
        for (;;) {
          int64_t claimed;
          {
            std::unique_lock<std::mutex> lock(run->mutex);
            run->work_cv.wait(lock, [run] {
              return run->stop || run->next_claim >= run->end ||
                     run->next_claim < run->next_yield + run->capacity;
            });
            if (run->stop || run->next_claim >= run->end) return;
            claimed = run->next_claim++;
          }
          Produced produced;
          try {
            produced.batch = make_batch(run->epoch, claimed, run->order);
          } catch (...) {
            produced.error = std::current_exception();
          }
          {
            std::lock_guard<std::mutex> lock(run->mutex);
            run->ready.emplace(claimed, std::move(produced));
          }
          run->ready_cv.notify_all();
        }
      });
  }

  Produced produced;
  {
    trace::Scope wait_range;  // engine/trace.h: the consumer waiting for its batch
    if (trace::enabled()) wait_range.begin("data wait", "data");
    std::unique_lock<std::mutex> lock(run_->mutex);
    run_->ready_cv.wait(lock, [&] { return run_->ready.count(index) > 0; });
    auto it = run_->ready.find(index);
    produced = std::move(it->second);
    run_->ready.erase(it);
    ++run_->next_yield;
  }
  run_->work_cv.notify_all();
  if (produced.error) {
    stop_run();  // a retry starts afresh at the same position
    std::rethrow_exception(produced.error);
  }
  ++position_.batch;
  if (position_.batch >= num_batches()) stop_run();  // the workers are done; join them now
  return std::move(produced.batch);
}

Batch collate(const std::vector<Example>& examples, const std::vector<int64_t>& indices) {
  NABLA_CHECK(!examples.empty() && examples.size() == indices.size(),
              "collate: expected a non-empty batch with ", "one index per example, got ", examples.size(),
              " examples and ", indices.size(), " indices");
  const Tensor& first = examples[0].input;
  NABLA_CHECK(first.defined(), "collate: example ", indices[0], " has no input");
  for (size_t k = 1; k < examples.size(); ++k) {
    const Tensor& x = examples[k].input;
    NABLA_CHECK(x.defined() && x.shape() == first.shape() && x.dtype() == first.dtype(), "collate: example ",
                indices[k], " is ", x.defined() ? str_cat(x.dtype(), " ", x.shape()) : "undefined",
                " but example ", indices[0], " is ", first.dtype(), " ", first.shape(),
                "; examples of a batch must agree (add a resize or crop transform)");
  }
  int64_t b = static_cast<int64_t>(examples.size());
  Shape shape = first.shape();
  shape.insert(shape.begin(), b);
  Batch batch;
  batch.inputs = Tensor::empty(shape, first.dtype());
  batch.labels = Tensor::empty({b}, DType::i64);
  batch.indices = indices;
  size_t bytes = first.nbytes();
  auto* dst = static_cast<uint8_t*>(batch.inputs.data_ptr());
  int64_t* labels = batch.labels.data<int64_t>();
  for (int64_t k = 0; k < b; ++k) {
    NABLA_CHECK(examples[k].input.device().is_cpu(), "collate: example ", indices[k], " is on ",
                examples[k].input.device(), ", expected cpu");
    Tensor x = examples[k].input.contiguous();
    if (bytes) std::memcpy(dst + k * bytes, x.data_ptr(), bytes);
    labels[k] = examples[k].label;
  }
  return batch;
}

}  // namespace nabla::data
