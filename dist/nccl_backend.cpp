// NCCL transport for CUDA tensors (communicator.h).
//
// Streams: collectives run on a communication stream of our own. Before each one the communication stream
// waits for an event recorded on the compute stream (the inputs are written); after it we record an event
// on the communication stream, which Work::wait() makes the compute stream wait for. So the host never
// blocks, gradients computed later in backward overlap with the all-reduce of earlier buckets, and memory
// is safe: the Work holds its tensors until waited on, and the caching allocator hands a block to new
// compute-stream work only after the compute stream has waited for the collective.
//
// Failure: the communicator is created non-blocking (ncclCommInitRankConfig, blocking = 0); every call
// that answers ncclInProgress is polled with ncclCommGetAsyncError until done or the timeout. A watchdog
// thread polls ncclCommGetAsyncError and the completion events of the queued collectives every 50 ms;
// an asynchronous error or a collective still pending after NABLA_DIST_TIMEOUT seconds makes it print the
// cause, call ncclCommAbort (which releases the kernels waiting on the missing peer) and end the process
// with exit code 3 (the launcher then ends the others; their own watchdogs would too).
//
// Tracing (engine/trace.h): while a trace records, each collective is bracketed by a pair of CUDA events on
// the communication stream (cuda/trace_timing.h), its device time on the "comm stream" track of the GPU.
#include "dist/communicator.h"
#include "engine/error.h"

#if defined(NABLA_HAS_NCCL) && defined(NABLA_HAS_CUDA)
#include <nccl.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "cuda/runtime.h"
#include "cuda/trace_timing.h"
#include "engine/trace.h"
#endif

namespace nabla::dist {

#if !(defined(NABLA_HAS_NCCL) && defined(NABLA_HAS_CUDA))
bool nccl_compiled() { return false; }
std::string nccl_unique_id() { fail("dist: this build has no NCCL (configure with -DNABLA_NCCL=ON)"); }
size_t nccl_unique_id_size() { return 128; }
std::unique_ptr<Backend> make_nccl_backend(const LaunchEnv&, const std::string&, int) {
  fail("dist: this build has no NCCL (configure with -DNABLA_NCCL=ON and the CUDA backend)");
}
#else
bool nccl_compiled() { return true; }
size_t nccl_unique_id_size() { return sizeof(ncclUniqueId); }

std::string nccl_unique_id() {
  ncclUniqueId id;
  ncclResult_t r = ncclGetUniqueId(&id);
  NABLA_CHECK(r == ncclSuccess, "dist (nccl): ncclGetUniqueId failed: ", ncclGetErrorString(r));
  return std::string(reinterpret_cast<const char*>(&id), sizeof id);
}

namespace {
using Clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    case DType::bf16:
      return ncclBfloat16;
    case DType::f16:
      return ncclFloat16;
    case DType::i32:
      return ncclInt32;
    case DType::i64:
      return ncclInt64;
    case DType::u8:
    case DType::b8:
      return ncclUint8;
  }
  return ncclUint8;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return ncclSum;
    case ReduceOp::avg:
      return ncclAvg;
    case ReduceOp::max:
      return ncclMax;
    case ReduceOp::min:
      return ncclMin;
  }
  return ncclSum;
}

// A completion event shared by a Work and the watchdog.
struct Completion {
  cudaEvent_t event = nullptr;
  int device = 0;
  Clock::time_point queued;
  std::string what;
  ~Completion() {
    if (event) cudaEventDestroy(event);
  }
};

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<Completion> c, std::vector<Tensor> keep)
      : c_(std::move(c)), keep_(std::move(keep)) {}
  ~NcclWork() override {
    if (!waited_) {
      try {
        wait();
      } catch (...) {
      }
    }
  }
  void wait() override {
    if (waited_) return;
    cuda::DeviceGuard g(c_->device);
    NABLA_CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(c_->device), c_->event, 0));
    waited_ = true;
    keep_.clear();
  }
  bool test() override {
    cuda::DeviceGuard g(c_->device);
    return cudaEventQuery(c_->event) == cudaSuccess;
  }

 private:
  std::shared_ptr<Completion> c_;
  std::vector<Tensor> keep_;
  bool waited_ = false;
};

class NcclBackend final : public Backend {
 public:
  NcclBackend(const LaunchEnv& env, const std::string& id_bytes, int device) : env_(env), device_(device) {
    NABLA_CHECK(id_bytes.size() == sizeof(ncclUniqueId), "dist (nccl): unique id of ", id_bytes.size(),
                " bytes, expected ", sizeof(ncclUniqueId));
    NABLA_CHECK(device >= 0 && device < cuda::device_count(), "dist (nccl): rank ", env.rank,
                " wants cuda:", device, " but ", cuda::device_count(),
                " CUDA devices are visible (LOCAL_RANK picks the device)");
    ncclUniqueId id;
    std::memcpy(&id, id_bytes.data(), sizeof id);
    cuda::DeviceGuard g(device_);
    NABLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&comm_, env.world_size, id, env.rank, &config);
    settle(r, "ncclCommInitRankConfig (waiting for every rank to join)");
    watchdog_ = std::thread([this] { watch(); });
  }
  ~NcclBackend() override {
    stop_ = true;
    if (watchdog_.joinable()) watchdog_.join();
    cuda::DeviceGuard g(device_);
    if (std::uncaught_exceptions() > 0) {
      ncclCommAbort(comm_);
    } else {
      cudaStreamSynchronize(stream_);
      ncclResult_t r = ncclCommFinalize(comm_);
      const auto deadline = Clock::now() + std::chrono::duration<double>(env_.timeout_s);
      while (r == ncclInProgress && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ncclCommGetAsyncError(comm_, &r);
      }
      if (r == ncclSuccess)
        ncclCommDestroy(comm_);
      else
        ncclCommAbort(comm_);
    }
    cudaStreamDestroy(stream_);
  }
  const char* name() const override { return "nccl"; }

  std::unique_ptr<Work> all_reduce(const Tensor& t, ReduceOp op) override {
    cuda::DeviceGuard g(device_);  // NCCL launches on the current device
    const int mark = begin({t}, "all_reduce");
    settle(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.dtype()), nccl_op(op), comm_,
                         stream_),
           "ncclAllReduce");
    return end({t}, "all_reduce", mark);
  }
  std::unique_ptr<Work> broadcast(const Tensor& t, int root) override {
    cuda::DeviceGuard g(device_);  // NCCL launches on the current device
    const int mark = begin({t}, "broadcast");
    settle(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.nbytes(), ncclUint8, root, comm_, stream_),
           "ncclBroadcast");
    return end({t}, "broadcast", mark);
  }
  std::unique_ptr<Work> all_gather(const Tensor& in, const Tensor& out) override {
    cuda::DeviceGuard g(device_);  // NCCL launches on the current device
    const int mark = begin({in, out}, "all_gather");
    settle(ncclAllGather(in.data_ptr(), out.data_ptr(), in.nbytes(), ncclUint8, comm_, stream_),
           "ncclAllGather");
    return end({in, out}, "all_gather", mark);
  }
  std::unique_ptr<Work> reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    cuda::DeviceGuard g(device_);  // NCCL launches on the current device
    const int mark = begin({in, out}, "reduce_scatter");
    settle(ncclReduceScatter(in.data_ptr(), out.data_ptr(), out.numel(), nccl_type(in.dtype()), nccl_op(op),
                             comm_, stream_),
           "ncclReduceScatter");
    return end({in, out}, "reduce_scatter", mark);
  }
  std::unique_ptr<Work> all_to_all(const Tensor& in, const Tensor& out) override {
    cuda::DeviceGuard g(device_);  // NCCL launches on the current device
    const int mark = begin({in, out}, "all_to_all");
    const size_t chunk = in.nbytes() / env_.world_size;
    const char* src = static_cast<const char*>(in.data_ptr());
    char* dst = static_cast<char*>(out.data_ptr());
    settle(ncclGroupStart(), "ncclGroupStart");
    for (int peer = 0; peer < env_.world_size; ++peer) {
      settle(ncclSend(src + peer * chunk, chunk, ncclUint8, peer, comm_, stream_), "ncclSend");
      settle(ncclRecv(dst + peer * chunk, chunk, ncclUint8, peer, comm_, stream_), "ncclRecv");
    }
    settle(ncclGroupEnd(), "ncclGroupEnd (all_to_all)");
    return end({in, out}, "all_to_all", mark);
  }
  void barrier() override {
    Tensor t = Tensor::empty({1}, DType::f32, Device::cuda(device_));
    auto w = all_reduce(t, ReduceOp::sum);
    cuda::DeviceGuard g(device_);
    NABLA_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the watchdog bounds this wait
    w->wait();
  }

 private:
  int begin(std::initializer_list<Tensor> ts, const char* what) {
    for (const Tensor& t : ts)
      NABLA_CHECK(t.device() == Device::cuda(device_), "dist (nccl): ", what, " got a tensor on ", t.device(),
                  ", the communicator lives on cuda:", device_);
    cuda::DeviceGuard g(device_);
    cudaEvent_t ready;
    NABLA_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    NABLA_CUDA_CHECK(cudaEventRecord(ready, cuda::stream(device_)));
    NABLA_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    NABLA_CUDA_CHECK(cudaEventDestroy(ready));
    return trace::enabled() ? cuda::trace_timing::begin_on_stream(device_, stream_, trace::kCommTrack) : -1;
  }
  std::unique_ptr<Work> end(std::vector<Tensor> keep, const char* what, int mark) {
    cuda::DeviceGuard g(device_);
    if (mark >= 0) {
      const Tensor& t = keep.front();
      cuda::trace_timing::end(mark, what,
                              "{\"bytes\":" + std::to_string(t.nbytes()) + ",\"dtype\":\"" +
                                  dtype_name(t.dtype()) +
                                  "\",\"world_size\":" + std::to_string(env_.world_size) +
                                  ",\"rank\":" + std::to_string(env_.rank) + "}");
    }
    auto c = std::make_shared<Completion>();
    c->device = device_;
    c->queued = Clock::now();
    c->what = std::string(what) + " #" + std::to_string(++count_);
    NABLA_CUDA_CHECK(cudaEventCreateWithFlags(&c->event, cudaEventDisableTiming));
    NABLA_CUDA_CHECK(cudaEventRecord(c->event, stream_));
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.push_back(c);
    }
    return std::make_unique<NcclWork>(c, std::move(keep));
  }
  // A call's result: success, in progress (poll until done, bounded), or an error that throws.
  void settle(ncclResult_t r, const char* what) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(env_.timeout_s);
    while (r == ncclInProgress) {
      if (Clock::now() > deadline) {
        ncclCommAbort(comm_);
        fail("dist (nccl): rank ", env_.rank, ": ", what, " did not complete within ", env_.timeout_s,
             " s; a rank is missing or stuck (timeout: NABLA_DIST_TIMEOUT)");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // not a yield loop: no core burnt
      ncclCommGetAsyncError(comm_, &r);
    }
    NABLA_CHECK(r == ncclSuccess, "dist (nccl): rank ", env_.rank, ": ", what,
                " failed: ", ncclGetErrorString(r), " (", comm_ ? ncclGetLastError(comm_) : "", ")");
  }
  [[noreturn]] void fatal(const std::string& why) {
    std::fprintf(stderr, "nabla dist (nccl): rank %d of %d: %s; aborting the NCCL communicator and exiting\n",
                 env_.rank, env_.world_size, why.c_str());
    std::fflush(stderr);
    ncclCommAbort(comm_);
    std::_Exit(3);
  }
  void watch() {
    cudaSetDevice(device_);
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      ncclResult_t st = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &st) == ncclSuccess && st != ncclSuccess && st != ncclInProgress)
        fatal(std::string("asynchronous NCCL error: ") + ncclGetErrorString(st) + " (" +
              ncclGetLastError(comm_) + ")");
      std::lock_guard<std::mutex> lock(mu_);
      while (!pending_.empty()) {
        cudaError_t e = cudaEventQuery(pending_.front()->event);
        if (e == cudaErrorNotReady) break;
        if (e != cudaSuccess)
          fatal(std::string("CUDA error in ") + pending_.front()->what + ": " + cudaGetErrorString(e));
        pending_.pop_front();
      }
      if (!pending_.empty()) {
        const double age = std::chrono::duration<double>(Clock::now() - pending_.front()->queued).count();
        if (age > env_.timeout_s)
          fatal(pending_.front()->what + " has not completed after " + std::to_string(age) +
                " s: a peer is gone or stuck (timeout: NABLA_DIST_TIMEOUT)");
      }
    }
  }

  LaunchEnv env_;
  int device_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  std::thread watchdog_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::deque<std::shared_ptr<Completion> > pending_;
  uint64_t count_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_nccl_backend(const LaunchEnv& env, const std::string& unique_id, int device) {
  return std::make_unique<NcclBackend>(env, unique_id, device);
}
#endif

}  // namespace nabla::dist
