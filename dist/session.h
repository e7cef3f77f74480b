// dist::Session: what a training binary needs to become data-parallel with no change to its user's
// command line: start-up from the launcher's environment, the device and batch of this rank, a sharded
// evaluation set, sums of host-side counters over ranks, and the DataParallel wrapper.
//
//   auto ds = dist::Session::start(o.device, o.batch_size);   // world size 1: changes nothing
//   ... model->to(dev); auto dp = ds.data_parallel(*model);   // null when single-process
//   loss.backward(); if (dp) dp->finish(); optimizer->step();
//
// Decisions (docs/distributed.md):
// - --batch-size is GLOBAL: each of W ranks takes batch/W examples per step (an error if W does not divide
//   it), so a run means the same optimisation whatever the number of GPUs (large-batch work reasons in
//   global batch), and learning rates need no rescaling.
// - A CUDA device becomes cuda:LOCAL_RANK (one GPU per process); CPU runs need MPI (mpirun).
// - Ranks other than 0 write nothing to stdout (it is pointed at /dev/null), keep no metrics or checkpoint
//   and show no progress; errors still go to every rank's stderr.
// - Evaluation shards the set without padding (rank r takes examples r, r+W, ...), so the summed counts
//   are exact; training shards with the loader's num_replicas/rank (padded by wrapping, as PyTorch's
//   DistributedSampler, reshuffled per epoch from the same seed on every rank).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "dist/communicator.h"
#include "dist/data_parallel.h"

namespace nabla::dist {

class Session {
 public:
  Session() = default;
  // Connects to the peers when the environment names more than one process; rewrites `device` (cuda ->
  // cuda:LOCAL_RANK) and `global_batch` (-> the per-rank batch). Prints one line on rank 0.
  static Session start(std::string& device, int64_t& global_batch);

  bool active() const { return comm_ && comm_->world_size() > 1; }
  int rank() const { return comm_ ? comm_->rank() : 0; }
  int world_size() const { return comm_ ? comm_->world_size() : 1; }
  bool is_main() const { return rank() == 0; }
  const std::shared_ptr<Communicator>& communicator() const { return comm_; }

  // Null when not active.
  std::unique_ptr<DataParallel> data_parallel(nn::Module& model, DataParallelOptions options = {}) const;
  // This rank's share of `set` (examples rank, rank + W, ...); `set` itself when not active.
  std::shared_ptr<data::Dataset> shard(std::shared_ptr<data::Dataset> set) const;
  // Replaces each argument by its sum over ranks (one all-reduce, in f64: exact for counts below 2^53).
  template <class... T>
  void sum(T&... xs) const {
    if (!active()) return;
    std::vector<double> v{static_cast<double>(xs)...};
    sum_vector(v);
    size_t i = 0;
    ((xs = static_cast<T>(v[i++])), ...);
  }
  void sum_vector(std::vector<double>& v) const;

 private:
  std::shared_ptr<Communicator> comm_;
  Device device_ = Device::cpu();
};

// A strided view of a dataset: examples offset, offset + stride, ... (no copies).
class StridedDataset final : public data::Dataset {
 public:
  StridedDataset(std::shared_ptr<data::Dataset> base, int64_t offset, int64_t stride);
  int64_t size() const override;
  data::Example get(int64_t i) const override;

 private:
  std::shared_ptr<data::Dataset> base_;
  int64_t offset_, stride_;
};

}  // namespace nabla::dist
