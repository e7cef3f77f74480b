// CRC-32C (crc32c.h): a slice-by-8 table version and, on x86-64 with SSE4.2, the crc32 instruction.
//
// Slice-by-8: table[k][b] is the CRC of byte b followed by k zero bytes, so eight bytes are folded in with
// eight independent look-ups: crc' = T7[b0 ^ c0] ^ T6[b1 ^ c1] ^ T5[b2 ^ c2] ^ T4[b3 ^ c3] ^ T3[b4] ^ ... ^
// T0[b7] where c0..c3 are the bytes of the running crc (little-endian).
#include "engine/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace nabla {
namespace {

constexpr uint32_t kPoly = 0x82F63B78;  // 0x1EDC6F41 bit-reversed

struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  constexpr Tables() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1) ? kPoly : 0);
      t[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; ++b)
      for (int k = 1; k < 8; ++k) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
  }
};
constexpr Tables kTables;

uint32_t portable_raw(const uint8_t* p, size_t n, uint32_t c) {
  const auto& t = kTables.t;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= c;
    c = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
        t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
  return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t sse42_raw(const uint8_t* p, size_t n, uint32_t c) {
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c64 = _mm_crc32_u64(c64, w);
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c64);
  while (n--) c = _mm_crc32_u8(c, *p++);
  return c;
}
const bool kHaveSse42 = [] {
  __builtin_cpu_init();  // this initialiser may run before libgcc's own
  return __builtin_cpu_supports("sse4.2") != 0;
}();
#endif

}  // namespace

uint32_t crc32c_portable(const void* data, size_t size, uint32_t previous) {
  return ~portable_raw(static_cast<const uint8_t*>(data), size, ~previous);
}

uint32_t crc32c(const void* data, size_t size, uint32_t previous) {
#if defined(__x86_64__)
  if (kHaveSse42) return ~sse42_raw(static_cast<const uint8_t*>(data), size, ~previous);
#endif
  return crc32c_portable(data, size, previous);
}

}  // namespace nabla
