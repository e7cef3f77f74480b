// Session (session.h): start-up for training binaries.
#include "dist/session.h"

#include <cstdio>

#include "engine/device_runtime.h"
#include "engine/error.h"
#include "ops/factory.h"

namespace nabla::dist {

Session Session::start(std::string& device, int64_t& global_batch) {
  Session s;
  const LaunchEnv env = detect_launch_env();
  if (env.world_size == 1) return s;
  Device dev = Device::parse(device);
  if (dev.is_cuda()) {
    const int visible = runtime::device_count(DeviceType::cuda);
    NABLA_CHECK(env.local_rank < visible, "data-parallel: rank ", env.rank, " has LOCAL_RANK ",
                env.local_rank, " but only ", visible,
                " CUDA devices are visible (one GPU per process: start at most that many per node)",
                runtime::has_backend(DeviceType::cuda) ? "" : "; this build has no CUDA backend");
    dev = Device::cuda(env.local_rank);
    runtime::set_device(dev);
  }
  NABLA_CHECK(global_batch % env.world_size == 0, "data-parallel: --batch-size ", global_batch,
              " is the global batch and must be a multiple of the ", env.world_size,
              " processes (each takes batch / processes)");
  s.device_ = dev;
  s.comm_ = init({.device = dev});
  const int64_t local = global_batch / env.world_size;
  if (s.is_main()) {
    std::printf(
        "data-parallel: %d processes (%s, %s) | global batch %lld = %d x %lld per rank | %s per rank\n",
        env.world_size, launcher_name(env.launcher), s.comm_->backend_names().c_str(),
        static_cast<long long>(global_batch), env.world_size, static_cast<long long>(local),
        dev.is_cuda() ? "cuda:LOCAL_RANK" : "cpu");
    std::fflush(stdout);
  } else {
    std::fflush(stdout);
    NABLA_CHECK(std::freopen("/dev/null", "w", stdout), "data-parallel: cannot silence stdout on rank ",
                env.rank);
  }
  device = dev.str();
  global_batch = local;
  return s;
}

std::unique_ptr<DataParallel> Session::data_parallel(nn::Module& model, DataParallelOptions options) const {
  if (!active()) return nullptr;
  return std::make_unique<DataParallel>(model, comm_, options);
}

std::shared_ptr<data::Dataset> Session::shard(std::shared_ptr<data::Dataset> set) const {
  if (!active()) return set;
  return std::make_shared<StridedDataset>(std::move(set), rank(), world_size());
}

void Session::sum_vector(std::vector<double>& v) const {
  if (!active() || v.empty()) return;
  Tensor t = from_vector(v, {static_cast<int64_t>(v.size())}, {.dtype = DType::f64});
  if (!comm_->has_cpu_backend()) t = t.to(device_);  // GPU runs without MPI: counts travel over NCCL
  comm_->all_reduce(t, ReduceOp::sum);
  v = t.to_vector<double>();
}

StridedDataset::StridedDataset(std::shared_ptr<data::Dataset> base, int64_t offset, int64_t stride)
    : base_(std::move(base)), offset_(offset), stride_(stride) {
  NABLA_CHECK(base_ && stride_ >= 1 && offset_ >= 0 && offset_ < stride_, "StridedDataset: offset ", offset_,
              " and stride ", stride_, " (expected 0 <= offset < stride)");
}

int64_t StridedDataset::size() const {
  const int64_t n = base_->size();
  return n > offset_ ? (n - offset_ + stride_ - 1) / stride_ : 0;
}

data::Example StridedDataset::get(int64_t i) const {
  data::check_index(i, size(), "StridedDataset");
  return base_->get(offset_ + i * stride_);
}

}  // namespace nabla::dist
