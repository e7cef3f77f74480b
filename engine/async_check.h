// Asynchronous value checks: how a device kernel reports bad data (an index out of range) without making
// the host wait for it.
//
// Checking an index tensor that lives on the GPU on the host means copying it back and waiting for every
// queued kernel: a synchronisation in the middle of each step, which stops the host from running ahead of
// the device. Instead the op layer registers a description of the check here (which op, which shapes) and
// gets an id; a device kernel checks the values, replaces each bad one by a safe value (so no kernel ever
// reads outside a tensor) and, for the first bad value it meets, writes {id, position, value} into a small
// record in host-mapped memory. The backend looks at that record whenever the host waits for the device
// anyway (item(), a copy to the host, synchronize()) and throws the described error there. With
// NABLA_SYNC=1 every op synchronises, so the error comes out of the op that saw the bad value.
//
// This is PyTorch's "device-side assert" made recoverable: the process and its CUDA context stay usable
// after the error, and the message names the op, the value, its position and the shapes, as the CPU
// path's immediate error does.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace nabla {

// Builds the error message for a bad `value` found at flat `position` of the checked tensor.
using AsyncCheckMessage = std::function<std::string(int64_t position, int64_t value)>;

// Registers a check about to be launched; the returned id (never 0) goes to the device kernel. The last
// kAsyncCheckHistory descriptions are kept; an error reported for an older check still names its id.
uint32_t register_async_check(AsyncCheckMessage message);
inline constexpr uint32_t kAsyncCheckHistory = 4096;

// The message for a reported failure of check `id`.
std::string describe_async_check(uint32_t id, int64_t position, int64_t value);

}  // namespace nabla
