#include "cuda/runtime.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/async_check.h"
#include "engine/capture.h"
#include "engine/profile.h"
#include "engine/storage.h"

namespace nabla::cuda {
namespace {

constexpr int kMaxDevices = 16;

bool env_flag(const char* name, bool dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  return std::string(v) != "0";
}

// ---- caching allocator --------------------------------------------------------------------------
size_t round_size(size_t n) {
  if (n <= (1u << 20)) return (n + 511) / 512 * 512;
  return (n + (2u << 20) - 1) / (2u << 20) * (2u << 20);
}

// A block in use: its rounded size and the pool it goes back to (0: the shared cache; else the private pool
// of a CUDA graph, cuda/graph.h).
struct Block {
  size_t size = 0;
  uint64_t pool = 0;
};

struct DevicePool {
  std::multimap<size_t, void*> free_blocks;  // size -> block (the shared cache)
  std::map<void*, Block> live;               // block -> size, owner
  // The private pools of CUDA graphs, by id: the memory their replays use, cached for nothing else.
  std::map<uint64_t, std::multimap<size_t, void*>> graph_pools;
  uint64_t capture_pool = 0;       // the pool of the graph being captured on this device (0: none)
  std::thread::id capture_thread;  // the thread capturing it: other threads keep the shared cache
  AllocatorStats stats;
};

// The allocator and CUDA graphs. A replay runs the captured kernels on the addresses they had at capture,
// so every block the graph uses must stay the graph's while it can be replayed:
//   - allocations of the capturing thread come from the graph's private pool (cached blocks of that pool,
//     or new cudaMallocs), and blocks freed during the capture go back to it, to be reused within the
//     capture in stream order, exactly as the replays will;
//   - a block of the shared cache freed during the capture (last step's gradients, dropped by zero_grad)
//     moves to the graph's pool: the graph's kernels may still touch it before the point of the free;
//   - nothing outside the capture allocates from a graph's pool, so tensors that outlive the capture (the
//     gradients and the loss of the captured step) keep their memory and each replay rewrites it;
//   - when the graph is destroyed, its cached blocks join the shared cache, and blocks still in use join it
//     when they are freed. All of this is safe without host synchronisation because every user of the
//     memory runs on the one in-order compute stream.
class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, Device device) override {
    if (nbytes == 0) return nullptr;
    NABLA_CHECK(device.index >= 0 && device.index < device_count(), "cuda allocator: device ", device.str(),
                " does not exist (", device_count(), " CUDA devices)");
    const size_t size = round_size(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    DevicePool& pool = pools_[device.index];
    const uint64_t owner = capturing(pool) ? pool.capture_pool : 0;
    std::multimap<size_t, void*>& cache = owner ? pool.graph_pools[owner] : pool.free_blocks;
    void* p = nullptr;
    size_t got = size;
    auto it = cache.lower_bound(size);
    // Reuse a cached block unless it is much bigger than asked (then splitting would be needed: allocate).
    if (it != cache.end() && it->first <= size * 2) {
      p = it->second;
      got = it->first;
      cache.erase(it);
    } else {
      DeviceGuard g(device.index);
      cudaError_t err = cudaMalloc(&p, size);
      if (err != cudaSuccess && !owner) {  // freeing the cache synchronises: not inside a capture
        (void)cudaGetLastError();
        release_cached(device.index);
        err = cudaMalloc(&p, size);
      }
      if (err != cudaSuccess) {
        (void)cudaGetLastError();
        fail("cuda: out of memory on ", device.str(), " asking for ", nbytes, " bytes (",
             pool.stats.allocated, " bytes in use, ", pool.stats.reserved, " reserved",
             owner ? ", inside a CUDA graph capture" : "", "): ", cudaGetErrorString(err));
      }
      pool.stats.reserved += size;
      ++pool.stats.cuda_mallocs;
    }
    pool.live[p] = Block{got, owner};
    pool.stats.allocated += got;
    pool.stats.peak_allocated = std::max(pool.stats.peak_allocated, pool.stats.allocated);
    ++pool.stats.allocations;
    return p;
  }

  void deallocate(void* ptr, size_t, Device device) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    DevicePool& pool = pools_[device.index];
    auto it = pool.live.find(ptr);
    if (it == pool.live.end()) return;
    const Block b = it->second;
    pool.live.erase(it);
    pool.stats.allocated -= b.size;
    // The block may still be read by queued kernels: reuse is safe because every later user runs on the
    // same (in-order) compute stream. A shared block freed by the capturing thread becomes the graph's.
    const uint64_t owner = b.pool ? b.pool : (capturing(pool) ? pool.capture_pool : 0);
    if (owner) {
      auto g = pool.graph_pools.find(owner);
      if (g != pool.graph_pools.end()) {
        g->second.emplace(b.size, ptr);
        return;
      }
    }
    pool.free_blocks.emplace(b.size, ptr);  // the shared cache (also for blocks of a destroyed graph)
  }

  uint64_t begin_capture(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    DevicePool& pool = pools_[device];
    NABLA_CHECK(pool.capture_pool == 0, "cuda graph: cuda:", device,
                " is already capturing a graph (one capture per device at a time)");
    pool.capture_pool = ++next_pool_id_;
    pool.capture_thread = std::this_thread::get_id();
    pool.graph_pools[pool.capture_pool];
    return pool.capture_pool;
  }
  void end_capture(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    pools_[device].capture_pool = 0;
  }

  void release_graph_pool(int device, uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    DevicePool& pool = pools_[device];
    auto g = pool.graph_pools.find(id);
    if (g == pool.graph_pools.end()) return;
    pool.free_blocks.merge(g->second);
    pool.graph_pools.erase(g);
  }

  AllocatorStats stats(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    return pools_[device].stats;
  }
  void reset_peak(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    pools_[device].stats.peak_allocated = pools_[device].stats.allocated;
  }
  void empty() {
    std::lock_guard<std::mutex> lock(mu_);
    for (int d = 0; d < kMaxDevices; ++d) release_cached(d);
  }

 private:
  static bool capturing(const DevicePool& pool) {
    return pool.capture_pool != 0 && pool.capture_thread == std::this_thread::get_id();
  }

  void release_cached(int device) {  // mu_ held; the shared cache only (graph pools stay their graphs')
    DevicePool& pool = pools_[device];
    if (pool.free_blocks.empty()) return;
    DeviceGuard g(device);
    cudaDeviceSynchronize();
    for (auto& [size, p] : pool.free_blocks) {
      cudaFree(p);
      pool.stats.reserved -= size;
    }
    pool.free_blocks.clear();
  }

  std::mutex mu_;
  DevicePool pools_[kMaxDevices];
  uint64_t next_pool_id_ = 0;
};

CachingAllocator& caching_allocator() {
  static CachingAllocator* a = [] {
    auto* alloc = new CachingAllocator();  // never destroyed: tensors may outlive static destruction
    set_allocator(DeviceType::cuda, alloc);
    return alloc;
  }();
  return *a;
}

// Installs the allocator when the library loads, so that allocating a CUDA tensor needs no setup call.
[[maybe_unused]] const bool g_installed = (caching_allocator(), true);

struct PerDevice {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cublasLtHandle_t cublaslt = nullptr;
  cudnnHandle_t cudnn = nullptr;
  void* workspace = nullptr;
  size_t workspace_size = 0;
};

std::mutex g_mu;
PerDevice g_dev[kMaxDevices];
bool g_tf32 = env_flag("NABLA_TF32", true);

PerDevice& per_device() {
  int d = current_device();
  PerDevice& pd = g_dev[d];
  if (!pd.stream) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (!pd.stream) NABLA_CUDA_CHECK(cudaStreamCreateWithFlags(&pd.stream, cudaStreamNonBlocking));
  }
  return pd;
}

}  // namespace

bool available() {
  static const bool ok = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return n > 0;
  }();
  return ok;
}

int device_count() {
  if (!available()) return 0;
  int n = 0;
  NABLA_CUDA_CHECK(cudaGetDeviceCount(&n));
  return n;
}

int current_device() {
  int d = 0;
  NABLA_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

void set_device(int device) { NABLA_CUDA_CHECK(cudaSetDevice(device)); }

DeviceGuard::DeviceGuard(int device) : prev_(current_device()) {
  if (device != prev_) set_device(device);
}
DeviceGuard::~DeviceGuard() {
  int now = 0;
  if (cudaGetDevice(&now) == cudaSuccess && now != prev_) cudaSetDevice(prev_);
}

cudaStream_t stream(int device) {
  DeviceGuard g(device);
  return per_device().stream;
}
cudaStream_t current_stream() { return per_device().stream; }

namespace {
void check_not_capturing(const char* what) {
  NABLA_CHECK(
      !capturing_cuda_graph(), what,
      " inside a CUDA graph capture: the host cannot wait for work that is only being recorded (item(), "
      "printing or copying a tensor to the host, and synchronize() all wait); do it outside the "
      "captured function");
}
}  // namespace

Event::Event() : device_(current_device()) { NABLA_CUDA_CHECK(cudaEventCreate(&event_)); }
Event::~Event() {
  if (event_) cudaEventDestroy(event_);
}
void Event::record() { record(stream(device_)); }
void Event::record(cudaStream_t s) { NABLA_CUDA_CHECK(cudaEventRecord(event_, s)); }
void Event::synchronize() const {
  check_not_capturing("cuda::Event::synchronize()");
  NABLA_CUDA_CHECK(cudaEventSynchronize(event_));
  raise_async_errors(device_);
}
bool Event::done() const {
  cudaError_t e = cudaEventQuery(event_);
  if (e == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  NABLA_CUDA_CHECK(e);
  return true;
}
void Event::wait(cudaStream_t s) const { NABLA_CUDA_CHECK(cudaStreamWaitEvent(s, event_, 0)); }
float Event::elapsed_ms(const Event& later) const {
  float ms = 0;
  NABLA_CUDA_CHECK(cudaEventElapsedTime(&ms, event_, later.event_));
  return ms;
}
void synchronize() {
  check_not_capturing("cuda::synchronize()");
  NABLA_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
  raise_async_errors(current_device());
}
bool sync_every_op() {
  static const bool on = env_flag("NABLA_SYNC", false);
  return on;
}

cublasHandle_t cublas_handle() {
  PerDevice& pd = per_device();
  if (!pd.cublas) {
    NABLA_CUBLAS_CHECK(cublasCreate(&pd.cublas));
    NABLA_CUBLAS_CHECK(cublasSetStream(pd.cublas, pd.stream));
  }
  return pd.cublas;
}

cublasLtHandle_t cublaslt_handle() {
  PerDevice& pd = per_device();
  if (!pd.cublaslt) NABLA_CUBLAS_CHECK(cublasLtCreate(&pd.cublaslt));
  return pd.cublaslt;
}

cudnnHandle_t cudnn_handle() {
  PerDevice& pd = per_device();
  if (!pd.cudnn) {
    NABLA_CUDNN_CHECK(cudnnCreate(&pd.cudnn));
    NABLA_CUDNN_CHECK(cudnnSetStream(pd.cudnn, pd.stream));
  }
  return pd.cudnn;
}

bool tf32_enabled() { return g_tf32; }
void set_tf32_enabled(bool on) { g_tf32 = on; }

AllocatorStats allocator_stats(int device) {
  return caching_allocator().stats(device < 0 ? current_device() : device);
}
void reset_peak_stats(int device) { caching_allocator().reset_peak(device < 0 ? current_device() : device); }
void empty_cache() { caching_allocator().empty(); }

void* workspace(size_t bytes) {
  PerDevice& pd = per_device();
  if (bytes > pd.workspace_size) {
    Device dev = Device::cuda(current_device());
    if (pd.workspace) caching_allocator().deallocate(pd.workspace, pd.workspace_size, dev);
    pd.workspace = caching_allocator().allocate(bytes, dev);
    pd.workspace_size = bytes;
  }
  return pd.workspace;
}

namespace graph_detail {
uint64_t begin_allocator_capture(int device) {
  DeviceGuard g(device);
  PerDevice& pd = per_device();
  // The graph must not bake in the shared workspace: it is a block of the shared cache, which eager code
  // may free and hand to a tensor while the graph can still be replayed. Drop it (in stream order, before
  // the capture), so that the capture's workspace comes from the graph's pool.
  if (pd.workspace) {
    caching_allocator().deallocate(pd.workspace, pd.workspace_size, Device::cuda(device));
    pd.workspace = nullptr;
    pd.workspace_size = 0;
  }
  return caching_allocator().begin_capture(device);
}
void end_allocator_capture(int device) { caching_allocator().end_capture(device); }
void release_graph_pool(int device, uint64_t pool) { caching_allocator().release_graph_pool(device, pool); }
}  // namespace graph_detail

void fail_cuda(const char* what, const char* expr, const char* file, int line) {
  fail("cuda: ", what, " in ", expr, " at ", file, ":", line);
}

void check_launch(const char* file, int line) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) fail_cuda(cudaGetErrorString(err), "kernel launch", file, line);
  if (sync_every_op() && !capturing_cuda_graph()) {  // a capture only records: Graph::replay() checks
    err = cudaStreamSynchronize(current_stream());
    if (err != cudaSuccess) fail_cuda(cudaGetErrorString(err), "kernel (NABLA_SYNC=1)", file, line);
    raise_async_errors(current_device());
  }
}

// The profiler's device synchronisation (engine/profile.h): a kernel's time is taken between two waits
// for the device's compute stream.
[[maybe_unused]] const bool g_profile_hook = [] {
  profile::set_sync_hook(DeviceType::cuda, [](Device d) {
    DeviceGuard g(d.index);
    NABLA_CUDA_CHECK(cudaStreamSynchronize(stream(d.index)));
  });
  return true;
}();

// ---- asynchronous checks ----------------------------------------------------------------------------
namespace {
struct AsyncChecks {
  std::mutex mu;
  AsyncCheckRecord* record[kMaxDevices] = {};
  bool pending[kMaxDevices] = {};  // a check was launched since the record was last read
};
AsyncChecks& async_checks() {
  static AsyncChecks a;
  return a;
}
}  // namespace

AsyncCheckRecord* async_check_record(int device) {
  AsyncChecks& a = async_checks();
  std::lock_guard<std::mutex> lock(a.mu);
  if (!a.record[device]) {
    // Its own cudaMalloc, not the caching allocator: it lives as long as the process.
    DeviceGuard g(device);
    NABLA_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&a.record[device]), sizeof(AsyncCheckRecord)));
    NABLA_CUDA_CHECK(cudaMemsetAsync(a.record[device], 0, sizeof(AsyncCheckRecord), stream(device)));
  }
  a.pending[device] = true;
  return a.record[device];
}

void raise_async_errors(int device) {
  AsyncChecks& a = async_checks();
  AsyncCheckRecord rec{};
  {
    std::lock_guard<std::mutex> lock(a.mu);
    if (device < 0 || device >= kMaxDevices || !a.pending[device]) return;
    a.pending[device] = false;
    DeviceGuard g(device);
    // The caller has synchronised; this small copy is the only cost of the check at a sync point.
    NABLA_CUDA_CHECK(
        cudaMemcpyAsync(&rec, a.record[device], sizeof rec, cudaMemcpyDeviceToHost, stream(device)));
    NABLA_CUDA_CHECK(cudaStreamSynchronize(stream(device)));
    if (rec.id == 0) return;
    NABLA_CUDA_CHECK(cudaMemsetAsync(a.record[device], 0, sizeof rec, stream(device)));
  }
  fail(describe_async_check(static_cast<uint32_t>(rec.id), rec.position, rec.value),
       " (found on cuda:", device, " by an asynchronous check, reported at the next synchronisation)");
}

}  // namespace nabla::cuda
