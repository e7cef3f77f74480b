// DataParallel (data_parallel.h): buckets, hooks, in-order launches, finish.
#include "dist/data_parallel.h"

#include "autograd/autograd.h"
#include "engine/error.h"

namespace nabla::dist {

DataParallel::DataParallel(nn::Module& model, std::shared_ptr<Communicator> comm, DataParallelOptions options)
    : model_(model), comm_(std::move(comm)), options_(options) {
  NABLA_CHECK(comm_, "DataParallel: null communicator");
  NABLA_CHECK(options_.bucket_cap_mb > 0, "DataParallel: bucket_cap_mb must be positive, got ",
              options_.bucket_cap_mb);
  for (const Tensor& p : model_.parameters())
    if (p.requires_grad()) params_.push_back(p);
  NABLA_CHECK(!params_.empty(), "DataParallel: the model has no parameters that require grad");
  if (options_.broadcast_at_start) {
    broadcast_parameters();
    broadcast_buffers();
  }

  // Buckets over the parameters in reverse order; a new bucket at a dtype/device change or once full.
  const double cap_bytes = options_.bucket_cap_mb * 1024.0 * 1024.0;
  bucket_of_.assign(params_.size(), -1);
  for (int64_t i = static_cast<int64_t>(params_.size()) - 1; i >= 0; --i) {
    const Tensor& p = params_[i];
    bool fresh = buckets_.empty();
    if (!fresh) {
      const Tensor& first = params_[buckets_.back().params.front()];
      fresh = first.dtype() != p.dtype() || first.device() != p.device() ||
              static_cast<double>(buckets_.back().numel * first.itemsize()) >= cap_bytes;
    }
    if (fresh) buckets_.emplace_back();
    Bucket& b = buckets_.back();
    b.params.push_back(i);
    b.offsets.push_back(b.numel);
    b.numel += p.numel();
    bucket_of_[i] = static_cast<int64_t>(buckets_.size()) - 1;
  }
  for (Bucket& b : buckets_) {
    const Tensor& first = params_[b.params.front()];
    b.flat = Tensor::empty({b.numel}, first.dtype(), first.device());
  }
  seen_.assign(params_.size(), 0);
  for (size_t i = 0; i < params_.size(); ++i)
    hooks_.push_back(params_[i].register_post_accumulate_hook(
        [this, i](const Tensor&) { on_gradient(static_cast<int64_t>(i)); }));
}

DataParallel::~DataParallel() {
  for (size_t i = 0; i < params_.size(); ++i) params_[i].remove_hook(hooks_[i]);
}

std::vector<int64_t> DataParallel::bucket_parameters(int64_t b) const {
  NABLA_CHECK(b >= 0 && b < num_buckets(), "DataParallel::bucket_parameters: bucket ", b, " of ",
              num_buckets());
  return buckets_[b].params;
}

void DataParallel::broadcast_parameters() {
  NoGradGuard ng;
  for (Tensor p : model_.parameters()) comm_->broadcast(p, 0);
}

void DataParallel::broadcast_buffers() {
  NoGradGuard ng;
  for (auto& [name, b] : model_.named_buffers()) {
    Tensor t = b;
    comm_->broadcast(t, 0);
  }
}

void DataParallel::on_gradient(int64_t i) {
  if (no_sync_ || seen_[i]) return;
  seen_[i] = 1;
  Bucket& b = buckets_[bucket_of_[i]];
  ++b.ready;
  launch_in_order();
  // MPI progresses non-blocking collectives only inside MPI calls: poke the ones in flight.
  for (size_t k = 0; k < next_launch_; ++k)
    if (buckets_[k].work) buckets_[k].work->test();
}

void DataParallel::launch_in_order() {
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].ready == static_cast<int64_t>(buckets_[next_launch_].params.size()))
    launch(buckets_[next_launch_++]);
}

void DataParallel::launch(Bucket& b) {
  NoGradGuard ng;
  for (size_t k = 0; k < b.params.size(); ++k) {
    const Tensor& p = params_[b.params[k]];
    Tensor slot = b.flat.narrow(0, b.offsets[k], p.numel()).view(p.shape());
    Tensor g = p.grad();
    if (g.defined())
      slot.copy_(g);
    else
      slot.zero_();
  }
  b.work = comm_->all_reduce_async(b.flat, ReduceOp::avg);
}

void DataParallel::finish() {
  NABLA_CHECK(!no_sync_,
              "DataParallel::finish: called inside no_sync(); finish after the synchronised backward");
  while (next_launch_ < buckets_.size()) launch(buckets_[next_launch_++]);
  NoGradGuard ng;
  for (Bucket& b : buckets_) {
    b.work->wait();
    b.work.reset();
    for (size_t k = 0; k < b.params.size(); ++k) {
      const Tensor& p = params_[b.params[k]];
      Tensor avg = b.flat.narrow(0, b.offsets[k], p.numel()).view(p.shape());
      Tensor g = p.grad();
      if (g.defined())
        g.copy_(avg);
      else
        p.set_grad(avg.clone());
    }
    b.ready = 0;
  }
  std::fill(seen_.begin(), seen_.end(), 0);
  next_launch_ = 0;
}

}  // namespace nabla::dist
