// DevicePrefetcher (device_loader.h). The device pipeline lives in Pipeline, written against the device
// runtime (engine/device_runtime.h), not a backend; a run (one stager thread) covers
// one epoch, like the DataLoader's own worker runs, and ends at the epoch's end or on set_position.
#include "data/device_loader.h"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/device_runtime.h"
#include "engine/error.h"

namespace nabla::data {

struct DevicePrefetcher::Pipeline {
  struct Slot {
    runtime::PinnedBuffer inputs, labels;  // page-locked for the device's backend
    std::unique_ptr<runtime::Event>
        copied;                  // recorded on the copy stream after the copies that read the slot
    bool copy_recorded = false;  // written by the consumer before it frees the slot (under mutex)
    Shape shape;
    DType dtype = DType::f32;
    std::vector<int64_t> indices;
    int64_t epoch = 0, index = 0;
  };
  struct Staged {
    int slot = -1;
    bool end = false;
    std::exception_ptr error;
  };
  struct InFlight {
    Batch batch;
    int slot = -1;
  };

  DataLoader& loader;
  Device device;
  runtime::SideStream copy;  // declared before the slots: they are freed first, after it has drained
  runtime::Event compute_mark;
  std::vector<Slot> slots;
  LoaderPosition position;

  // The current run (the stager thread of one epoch) and what it shares with the consumer.
  std::thread stager;
  bool running = false;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<int> free_slots;
  std::deque<Staged> staged;
  bool stop = false;
  std::deque<InFlight> in_flight;  // consumer only: copies queued, batches not handed out yet

  Pipeline(DataLoader& l, Device d, int depth)
      : loader(l), device(d), copy(d), compute_mark(d), slots(static_cast<size_t>(depth)) {
    for (Slot& s : slots) {
      s.inputs = runtime::PinnedBuffer(d.type);
      s.labels = runtime::PinnedBuffer(d.type);
      s.copied = std::make_unique<runtime::Event>(d);
    }
    position = loader.position();
  }
  ~Pipeline() { stop_run(); }

  void start_run() {
    loader.set_position(position);  // the loader ran ahead of the consumer in the last run
    stop = false;
    free_slots.clear();
    staged.clear();
    for (int i = 0; i < static_cast<int>(slots.size()); ++i) free_slots.push_back(i);
    running = true;
    stager = std::thread([this] { stage_loop(); });
  }

  void stop_run() {
    if (!running) return;
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    stager.join();
    running = false;
    // Queued copies may still write into the device tensors of batches never handed out: let them finish
    // before those blocks go back to the allocator.
    copy.synchronize();
    in_flight.clear();
    staged.clear();
  }

  void push_staged(Staged s) {
    {
      std::lock_guard<std::mutex> lock(mu);
      staged.push_back(std::move(s));
    }
    cv.notify_all();
  }

  void stage_loop() {
    try {
      runtime::set_device(device);  // this thread's pinned allocations and event waits are about `device`
    } catch (...) {
      push_staged({.slot = -1, .error = std::current_exception()});
      return;
    }
    for (;;) {
      int k;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || !free_slots.empty(); });
        if (stop) return;
        k = free_slots.front();
        free_slots.pop_front();
      }
      Slot& s = slots[k];
      try {
        if (s.copy_recorded) s.copied->synchronize();  // the last copy out of this slot has read it
        std::optional<Batch> b = loader.next();
        if (!b) {
          push_staged({.slot = k, .end = true, .error = nullptr});
          return;
        }
        Tensor x = b->inputs.contiguous();
        Tensor y = b->labels.to(DType::i64).contiguous();
        s.inputs.reserve(x.nbytes());
        s.labels.reserve(y.nbytes());
        if (x.nbytes()) std::memcpy(s.inputs.data(), x.data_ptr(), x.nbytes());
        if (y.nbytes()) std::memcpy(s.labels.data(), y.data_ptr(), y.nbytes());
        s.shape = x.shape();
        s.dtype = x.dtype();
        s.indices = std::move(b->indices);
        s.epoch = b->epoch;
        s.index = b->index;
        push_staged({.slot = k, .end = false, .error = nullptr});
      } catch (...) {
        push_staged({.slot = k, .error = std::current_exception()});
        return;
      }
    }
  }

  // Queues the copy of a staged slot (see the file comment of device_loader.h for the ordering).
  void issue(int k) {
    Slot& s = slots[k];
    runtime::DeviceGuard g(device);
    Batch b;
    b.inputs = Tensor::empty(s.shape, s.dtype, device);
    b.labels = Tensor::empty({static_cast<int64_t>(s.indices.size())}, DType::i64, device);
    b.indices = s.indices;
    b.epoch = s.epoch;
    b.index = s.index;
    compute_mark.record();  // on the compute stream
    compute_mark.wait(copy.get());
    runtime::copy_async(b.inputs.data_ptr(), device, s.inputs.data(), Device::cpu(), b.inputs.nbytes(),
                        copy.get());
    runtime::copy_async(b.labels.data_ptr(), device, s.labels.data(), Device::cpu(), b.labels.nbytes(),
                        copy.get());
    s.copied->record(copy.get());
    s.copy_recorded = true;
    in_flight.push_back({std::move(b), k});
  }

  // The front of the staged queue; blocks until there is one when `wait`, else may return nullopt.
  std::optional<Staged> take_staged(bool wait) {
    std::unique_lock<std::mutex> lock(mu);
    if (wait) cv.wait(lock, [&] { return !staged.empty(); });
    if (staged.empty()) return std::nullopt;
    if (!wait && (staged.front().end || staged.front().error)) return std::nullopt;  // for the blocking call
    Staged s = std::move(staged.front());
    staged.pop_front();
    return s;
  }

  std::optional<Batch> next() {
    if (position.batch >= loader.num_batches()) {  // e.g. restored to the end of an epoch
      stop_run();
      position = {position.epoch + 1, 0};
      return std::nullopt;
    }
    if (!running) start_run();
    if (in_flight.empty()) {
      Staged s = *take_staged(true);
      if (s.error) {
        stop_run();  // a retry starts afresh at the same position
        std::rethrow_exception(s.error);
      }
      if (s.end) {
        stop_run();
        position = {position.epoch + 1, 0};
        return std::nullopt;
      }
      issue(s.slot);
    }
    InFlight f = std::move(in_flight.front());
    in_flight.pop_front();
    if (auto s = take_staged(false)) issue(s->slot);  // look-ahead: batch k + 1's copy overlaps step k
    slots[f.slot].copied->wait(runtime::compute_stream(device));
    {
      std::lock_guard<std::mutex> lock(mu);
      free_slots.push_back(f.slot);
    }
    cv.notify_all();
    position = {f.batch.epoch, f.batch.index + 1};
    return std::move(f.batch);
  }
};

DevicePrefetcher::DevicePrefetcher(DataLoader& loader, Device device, int depth)
    : loader_(loader), device_(device) {
  NABLA_CHECK(depth >= 2, "DevicePrefetcher: depth must be at least 2 (one slot copying, one filling), got ",
              depth);
  if (device.is_cpu()) return;
  runtime::require_device(device, "DevicePrefetcher");
  runtime::DeviceGuard g(device);
  pipeline_ = std::make_unique<Pipeline>(loader, device, depth);
}

DevicePrefetcher::~DevicePrefetcher() = default;

std::optional<Batch> DevicePrefetcher::next() {
  if (pipeline_) return pipeline_->next();
  return loader_.next();
}

LoaderPosition DevicePrefetcher::position() const {
  if (pipeline_) return pipeline_->position;
  return loader_.position();
}

void DevicePrefetcher::set_position(LoaderPosition p) {
  if (pipeline_) {
    NABLA_CHECK(p.epoch >= 0 && p.batch >= 0 && p.batch <= loader_.num_batches(),
                "DevicePrefetcher: position (epoch ", p.epoch, ", batch ", p.batch,
                ") is out of range: an epoch has ", loader_.num_batches(), " batches");
    pipeline_->stop_run();
    pipeline_->position = p;
    return;
  }
  loader_.set_position(p);
}

}  // namespace nabla::data
