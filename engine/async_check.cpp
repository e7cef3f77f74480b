// The registry of asynchronous checks (engine/async_check.h): a ring of message builders indexed by id.
#include "engine/async_check.h"

#include <array>
#include <mutex>

namespace nabla {
namespace {

struct Registry {
  std::mutex mutex;
  uint32_t next = 1;
  std::array<std::pair<uint32_t, AsyncCheckMessage>, kAsyncCheckHistory> ring{};
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

uint32_t register_async_check(AsyncCheckMessage message) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  uint32_t id = r.next++;
  if (r.next == 0) r.next = 1;  // 0 means "no error" in the device record
  r.ring[id % kAsyncCheckHistory] = {id, std::move(message)};
  return id;
}

std::string describe_async_check(uint32_t id, int64_t position, int64_t value) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto& slot = r.ring[id % kAsyncCheckHistory];
  if (slot.first == id && slot.second) return slot.second(position, value);
  return "a device-side check (#" + std::to_string(id) + ") found the bad value " + std::to_string(value) +
         " at position " + std::to_string(position) + "; its description is no longer kept (more than " +
         std::to_string(kAsyncCheckHistory) + " checks ran before the host synchronised)";
}

}  // namespace nabla
