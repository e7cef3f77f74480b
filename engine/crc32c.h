// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected, init and final xor 0xFFFFFFFF): the checksum
// of iSCSI, ext4 and SSE4.2's crc32 instruction. Safetensors checkpoints carry one per tensor (see
// engine/safetensors.h) so that flipped bits on disk or in transit are caught when a file is loaded.
//
//   crc32c("123456789") == 0xE3069283   (the standard check value)
//   crc32c(b, crc32c(a)) == crc32c(a + b)   (pass the previous value to continue a stream)
//
// x86-64 CPUs with SSE4.2 (checked at run time) use the crc32 instruction, 8 bytes at a time (about
// 10-20 GB/s); others a slice-by-8 table (about 2 GB/s). Both give the same values.
#pragma once
#include <cstddef>
#include <cstdint>

namespace nabla {

uint32_t crc32c(const void* data, size_t size, uint32_t previous = 0);

// The portable table version, whatever the CPU (tests compare it with the fast one).
uint32_t crc32c_portable(const void* data, size_t size, uint32_t previous = 0);

}  // namespace nabla
