// dist::DataParallel: synchronous data-parallel training, gradients averaged while backward still runs.
//
// Every rank holds the whole model and takes its own slice of each global batch (B/W examples). With a loss
// that is a mean over the local examples, the average over ranks of the local gradients is the gradient of
// the mean over the global batch:  (1/W) sum_r (1/(B/W)) sum_{i in r} dl_i/dw = (1/B) sum_i dl_i/dw.
// So after finish() every rank holds the same gradient that one process with batch B would have, and the
// same optimizer step keeps the replicas identical (parameters are broadcast from rank 0 at the start).
//
// Buckets (as PyTorch's DDP): parameters that require grad are taken in reverse registration order (the
// order backward produces their gradients, roughly) and packed into flat buckets of about bucket_cap_mb
// (one dtype and device each). A post-accumulate hook on each parameter counts it ready; when a bucket's
// last parameter is ready its gradients are copied into the flat buffer and an asynchronous all-reduce
// (avg) starts: NCCL on its communication stream, or MPI_Iallreduce on CPU, while backward goes on with
// earlier layers. Buckets are launched strictly in index order on every rank (a ready bucket waits for its
// predecessors), so all ranks issue the same collectives in the same order even when hooks fire in a
// different order.
//
// finish() (call it once per synchronised step, after backward and before clipping / the optimizer step)
// launches what is left, waits, and copies the averages back into each parameter's .grad().
// Parameters that got no gradient in this step on this rank (unused branches, frozen heads) contribute
// zeros, so no rank waits for a bucket that never fills; after finish() they hold the averaged gradient
// (zero when no rank used them). That is where this differs from single-process training, where such a
// parameter keeps no gradient and the optimizer skips it (weight decay, momentum): avoid unused parameters
// or accept that they are stepped with a zero gradient.
//
// no_sync(): a guard under which backward only accumulates local gradients (gradient accumulation over
// micro-batches); the next backward outside it carries the accumulated sums, and finish() averages them.
//
// Buffers (BatchNorm running statistics) are not synchronised during training: each rank updates its own
// from its local batch. broadcast_buffers() copies rank 0's, e.g. before evaluation or a checkpoint.
#pragma once
#include <memory>
#include <vector>

#include "dist/communicator.h"
#include "models/nn/module.h"

namespace nabla::dist {

struct DataParallelOptions {
  double bucket_cap_mb = 25;       // bucket size in MiB (2^20 bytes)
  bool broadcast_at_start = true;  // copy rank 0's parameters and buffers to every rank
};

class DataParallel {
 public:
  DataParallel(nn::Module& model, std::shared_ptr<Communicator> comm, DataParallelOptions options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Launches the remaining buckets, waits for all, writes the averaged gradients into .grad().
  void finish();

  class NoSyncGuard {
   public:
    explicit NoSyncGuard(DataParallel& dp) : dp_(dp), prev_(dp.no_sync_) { dp.no_sync_ = true; }
    ~NoSyncGuard() { dp_.no_sync_ = prev_; }
    NoSyncGuard(const NoSyncGuard&) = delete;
    NoSyncGuard& operator=(const NoSyncGuard&) = delete;

   private:
    DataParallel& dp_;
    bool prev_;
  };
  [[nodiscard]] NoSyncGuard no_sync() { return NoSyncGuard(*this); }

  void broadcast_parameters();
  void broadcast_buffers();

  nn::Module& module() { return model_; }
  Communicator& communicator() { return *comm_; }
  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // The parameter indices (into model.parameters()) of bucket b, in launch order.
  std::vector<int64_t> bucket_parameters(int64_t b) const;

 private:
  struct Bucket {
    std::vector<int64_t> params;   // indices into params_
    std::vector<int64_t> offsets;  // element offset of each in `flat`
    int64_t numel = 0;
    Tensor flat;
    int64_t ready = 0;
    std::unique_ptr<Work> work;
  };
  void on_gradient(int64_t param);
  void launch(Bucket& b);
  void launch_in_order();

  nn::Module& model_;
  std::shared_ptr<Communicator> comm_;
  DataParallelOptions options_;
  std::vector<Tensor> params_;      // model.parameters() that require grad
  std::vector<int> hooks_;          // one per params_
  std::vector<int64_t> bucket_of_;  // params_ index -> bucket
  std::vector<char> seen_;          // gradient arrived in this step
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  bool no_sync_ = false;
};

}  // namespace nabla::dist
