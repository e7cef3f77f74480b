// The device runtime (device_runtime.h): the table of registered backends, the CPU's trivial answers, and
// the checks that turn a missing backend or device into an error naming what was asked.
#include "engine/device_runtime.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "engine/error.h"

namespace nabla::runtime {

namespace {

// Constant-initialised: backends register from static initialisers in any order.
Backend* g_backends[kNumDeviceTypes] = {};

Backend* find(DeviceType type) { return g_backends[static_cast<int>(type)]; }

// The backend of a non-CPU type, or an error naming what needed it.
Backend& backend(DeviceType type, const char* what) {
  Backend* b = find(type);
  NABLA_CHECK(b != nullptr, what, ": no ", device_type_name(type), " backend in this build",
              type == DeviceType::cuda ? " (configure with -DNABLA_CUDA=ON)" : "");
  return *b;
}

// The backend of `device`, after checking that the device exists.
Backend& backend(Device device, const char* what) {
  Backend& b = backend(device.type, what);
  const int n = b.device_count();
  NABLA_CHECK(device.index >= 0 && device.index < n, what, ": device ", device, " not found (", n, " ",
              device_type_name(device.type), " devices)");
  return b;
}

double host_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr size_t kHostAlign = 64;
constexpr size_t kPinnedRound = size_t{1} << 20;

}  // namespace

bool register_backend(DeviceType type, Backend* b) {
  g_backends[static_cast<int>(type)] = b;
  return true;
}

// ---- devices ------------------------------------------------------------------------------------------
bool has_backend(DeviceType type) { return type == DeviceType::cpu || find(type) != nullptr; }

bool available(DeviceType type) {
  if (type == DeviceType::cpu) return true;
  Backend* b = find(type);
  return b && b->available();
}

int device_count(DeviceType type) {
  if (type == DeviceType::cpu) return 1;
  Backend* b = find(type);
  return b && b->available() ? b->device_count() : 0;
}

int current_device(DeviceType type) {
  if (type == DeviceType::cpu) return 0;
  return backend(type, "runtime::current_device").current_device();
}

void set_device(Device device) {
  if (device.is_cpu()) return;
  backend(device, "runtime::set_device").set_device(device.index);
}

void require_device(Device device, const char* who) {
  if (device.is_cpu()) {
    NABLA_CHECK(device.index == 0, who, ": device cpu:", device.index, " not found (the CPU is device cpu)");
    return;
  }
  Backend& b = backend(device.type, who);
  const int n = b.available() ? b.device_count() : 0;
  NABLA_CHECK(device.index >= 0 && device.index < n, who, ": device ", device, " not found (", n, " ",
              device_type_name(device.type), " devices)");
}

DeviceGuard::DeviceGuard(Device device) : device_(device) {
  if (device.is_cpu()) return;
  Backend& b = backend(device, "runtime::DeviceGuard");
  prev_ = b.current_device();
  if (prev_ != device.index) b.set_device(device.index);
}

DeviceGuard::~DeviceGuard() {
  if (device_.is_cpu() || prev_ < 0 || prev_ == device_.index) return;
  try {
    find(device_.type)->set_device(prev_);
  } catch (...) {  // a destructor: the device stays as it is
  }
}

void synchronize(Device device) {
  if (device.is_cpu()) return;
  backend(device, "runtime::synchronize").synchronize(device.index);
}

// ---- streams -------------------------------------------------------------------------------------------
Stream compute_stream(Device device) {
  if (device.is_cpu()) return {device, nullptr};
  return {device, backend(device, "runtime::compute_stream").compute_stream(device.index)};
}

SideStream::SideStream(Device device) : device_(device) {
  if (device.is_cpu()) return;
  handle_ = backend(device, "runtime::SideStream").create_stream(device.index);
}

SideStream::~SideStream() {
  if (handle_) find(device_.type)->destroy_stream(device_.index, handle_);
}

void SideStream::synchronize() const {
  if (handle_) find(device_.type)->synchronize_stream(device_.index, handle_);
}

// ---- events --------------------------------------------------------------------------------------------
Event::Event(Device device) : device_(device) {
  if (device.is_cpu()) return;
  handle_ = backend(device, "runtime::Event").create_event(device.index);
}

Event::~Event() {
  if (handle_) find(device_.type)->destroy_event(device_.index, handle_);
}

void Event::record() { record(compute_stream(device_)); }

void Event::record(Stream stream) {
  NABLA_CHECK(stream.device == device_, "runtime::Event::record: the event belongs to ", device_,
              ", the stream to ", stream.device);
  if (device_.is_cpu()) {
    host_ms_ = host_ms();
    return;
  }
  find(device_.type)->record_event(device_.index, handle_, stream.handle);
}

void Event::wait(Stream stream) const {
  NABLA_CHECK(stream.device.type == device_.type, "runtime::Event::wait: the event belongs to ", device_,
              ", the stream to ", stream.device);
  if (!device_.is_cpu()) find(device_.type)->wait_event(device_.index, handle_, stream.handle);
}

void Event::synchronize() const {
  if (!device_.is_cpu()) find(device_.type)->synchronize_event(device_.index, handle_);
}

bool Event::done() const {
  return device_.is_cpu() || find(device_.type)->event_done(device_.index, handle_);
}

float Event::elapsed_ms(const Event& later) const {
  NABLA_CHECK(later.device_ == device_, "runtime::Event::elapsed_ms: events of ", device_, " and ",
              later.device_);
  if (device_.is_cpu()) return static_cast<float>(later.host_ms_ - host_ms_);
  return find(device_.type)->elapsed_ms(handle_, later.handle_);
}

// ---- copies --------------------------------------------------------------------------------------------
void copy_async(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes,
                Stream stream) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  const Device d = dst_device.is_cpu() ? src_device : dst_device;
  NABLA_CHECK(stream.device == d || stream.device == src_device, "runtime::copy_async: a copy ", src_device,
              " -> ", dst_device, " on a stream of ", stream.device);
  backend(d, "runtime::copy_async").copy_async(dst, dst_device, src, src_device, nbytes, stream);
}

// ---- page-locked host memory ---------------------------------------------------------------------------
PinnedBuffer::PinnedBuffer(DeviceType type, size_t nbytes) : type_(type) { reserve(nbytes); }

PinnedBuffer::~PinnedBuffer() { release(); }

PinnedBuffer::PinnedBuffer(PinnedBuffer&& o) noexcept
    : type_(o.type_), data_(std::exchange(o.data_, nullptr)), capacity_(std::exchange(o.capacity_, 0)) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    release();
    type_ = o.type_;
    data_ = std::exchange(o.data_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
  }
  return *this;
}

void PinnedBuffer::release() {
  if (data_) {
    if (type_ == DeviceType::cpu)
      ::operator delete (data_, std::align_val_t{kHostAlign});
    else
      find(type_)->free_pinned(data_);
  }
  data_ = nullptr;
  capacity_ = 0;
}

void PinnedBuffer::reserve(size_t nbytes) {
  if (nbytes <= capacity_) return;
  release();
  // Batches of slightly different sizes (a short last batch, then a full one) do not re-pin.
  const size_t rounded = (nbytes + kPinnedRound - 1) / kPinnedRound * kPinnedRound;
  data_ = type_ == DeviceType::cpu ? ::operator new (rounded, std::align_val_t{kHostAlign})
                                   : backend(type_, "runtime::PinnedBuffer").allocate_pinned(rounded);
  capacity_ = rounded;
}

bool is_pinned(const void* p) {
  for (Backend* b : g_backends)
    if (b && b->available() && b->is_pinned(p)) return true;
  return false;
}

// ---- graphs --------------------------------------------------------------------------------------------
Graph::Graph() = default;
Graph::Graph(Device device) : type_(device.type), index_(device.index) {}
Graph::~Graph() = default;

void Graph::capture(const std::function<void()>& fn) {
  NABLA_CHECK(type_ != DeviceType::cpu,
              "runtime::Graph::capture: the CPU has no graphs (capture and replay need a CUDA device)");
  NABLA_CHECK(!captured(), "runtime::Graph::capture: this graph already holds a capture (reset() it first)");
  if (!impl_) {
    Backend& b =
        index_ < 0 ? backend(type_, "runtime::Graph") : backend(Device{type_, index_}, "runtime::Graph");
    impl_ = b.make_graph(index_);
  }
  impl_->capture(fn);
}

void Graph::replay() {
  NABLA_CHECK(captured(), "runtime::Graph::replay: nothing captured (call capture(fn) first)");
  impl_->replay();
}

void Graph::reset() {
  if (impl_) impl_->reset();
}

bool Graph::captured() const { return impl_ && impl_->captured(); }
size_t Graph::num_nodes() const { return impl_ ? impl_->num_nodes() : 0; }

// ---- memory --------------------------------------------------------------------------------------------
MemoryStats memory_stats(Device device) {
  if (device.is_cpu()) return {};
  return backend(device, "runtime::memory_stats").memory_stats(device.index);
}

void reset_peak_memory_stats(Device device) {
  if (device.is_cpu()) return;
  backend(device, "runtime::reset_peak_memory_stats").reset_peak_memory_stats(device.index);
}

void empty_cache(DeviceType type) {
  if (type == DeviceType::cpu) return;
  Backend* b = find(type);
  if (b && b->available()) b->empty_cache();
}

// ---- math settings -------------------------------------------------------------------------------------
bool tf32_enabled() {
  Backend* b = find(DeviceType::cuda);
  return b && b->tf32_enabled();
}

void set_tf32_enabled(bool on) {
  if (Backend* b = find(DeviceType::cuda)) b->set_tf32_enabled(on);
}

}  // namespace nabla::runtime
