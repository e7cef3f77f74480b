// DataLoader: batches of a Dataset, shuffled per epoch, transformed and collated by background workers,
// with a position that a checkpoint can save and restore exactly.
//
//   order(epoch)   = identity, or a Fisher-Yates permutation whose draws come from Philox keyed by
//                    (seed, epoch): a pure function, so any epoch can be recomputed after a restart;
//                    with num_replicas > 1, replica r takes order[r], order[r + R], ... of the order padded
//                    by wrapping to a multiple of R (torch's DistributedSampler)
//   batch b        = order[b * B .. (b + 1) * B), the last one short unless drop_last
//   example input  = transform(dataset.get(i).input, Rng(example_seed(seed, epoch, i)))
//   Batch.inputs   = the examples' inputs stacked: [B, ...] (e.g. [B, C, H, W] f32 after to_float), labels
//                    i64 [B]
//
// Batches come out in order whatever the number of workers, and each is a pure function of (seed, epoch,
// batch index), so 0 and 8 workers give identical batches and a loader restored to a saved position yields
// exactly the batches that were left. Workers (threads) build batches ahead of the consumer, at most
// num_workers * prefetch_factor at a time; an exception in a worker (dataset, transform, collation) is
// rethrown by next() for the batch it belongs to, nabla::Errors with the epoch, batch and example added.
//
// Use:
//   DataLoader loader(dataset, {.batch_size = 128, .shuffle = true, .seed = 1, .num_workers = 4}, transform);
//   loader.set_position(saved);                        // when resuming
//   for (int64_t e = loader.position().epoch; e < epochs; ++e)
//     while (auto batch = loader.next()) { ... ; saved = loader.position(); }
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"

namespace nabla::data {

struct LoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;
  uint64_t seed = 0;         // shuffling and the random transforms
  int num_workers = 0;       // 0: batches are built in the caller's thread by next()
  int prefetch_factor = 2;   // batches in flight per worker
  int64_t num_replicas = 1;  // data parallel: this loader yields replica `rank`'s share of each epoch
  int64_t rank = 0;
};

struct Batch {
  Tensor inputs;                 // [B, ...]
  Tensor labels;                 // i64 [B]
  std::vector<int64_t> indices;  // the dataset indices of the examples
  int64_t epoch = 0;
  int64_t index = 0;  // of the batch within its epoch
};

// The next batch to be produced: saving it after a step and restoring it later resumes exactly there.
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;
  bool operator==(const LoaderPosition&) const = default;
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options, Transform transform = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Examples per epoch seen by this replica, and batches per epoch.
  int64_t num_examples() const;
  int64_t num_batches() const;

  // The next batch of the current epoch; at the end of the epoch returns nullopt once and moves to batch 0
  // of the next epoch.
  std::optional<Batch> next();

  LoaderPosition position() const { return position_; }
  // Continue from `p` (drops batches prefetched for the old position).
  void set_position(LoaderPosition p);
  void set_epoch(int64_t epoch) { set_position({epoch, 0}); }

  // This replica's dataset indices for `epoch`, in the order they are batched.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // Iterates over the rest of the current epoch: for (Batch& b : loader) { ... }
  class Iterator {
   public:
    Iterator() = default;
    explicit Iterator(DataLoader* loader) : loader_(loader) { ++*this; }
    Batch& operator*() { return *batch_; }
    Batch* operator->() { return &*batch_; }
    Iterator& operator++() {
      batch_ = loader_->next();
      return *this;
    }
    bool operator==(const Iterator& o) const { return !batch_.has_value() && !o.batch_.has_value(); }

   private:
    DataLoader* loader_ = nullptr;
    std::optional<Batch> batch_;
  };
  Iterator begin() { return Iterator(this); }
  Iterator end() { return Iterator(); }

  const LoaderOptions& options() const { return options_; }

 private:
  struct Run;  // background production of one epoch's batches

  Batch make_batch(int64_t epoch, int64_t batch_index, const std::vector<int64_t>& order) const;
  void stop_run();

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
  Transform transform_;
  LoaderPosition position_;
  std::unique_ptr<Run> run_;
  // The order of the epoch being iterated, cached for num_workers = 0.
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_order_;
};

// Stacks examples' inputs into [B, ...] and their labels into i64 [B]; the inputs must agree in shape and
// dtype (an error names the two examples that differ).
Batch collate(const std::vector<Example>& examples, const std::vector<int64_t>& indices);

}  // namespace nabla::data
