// Counter-based random numbers: Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3", SC'11).
//
// philox(counter, key) is a bijection of a 128-bit counter under a 64-bit key, strong enough to treat the
// outputs of consecutive counters as independent uniform words. A Generator is (seed, offset): the seed is
// the key; each draw of n numbers uses counters offset .. offset + ceil(n/2) - 1 and advances offset. Element
// i of a draw depends only on (seed, offset, i), never on how the work is split across threads or on which
// backend runs it, so the same seed gives the same numbers on CPU and CUDA, with any thread count.
//
// Element i takes counter offset + i/2 and the word pair (i % 2 == 0 ? w0,w1 : w2,w3):
//   uniform:  u = (53 random bits) * 2^-53 in [0, 1)
//   normal:   Box-Muller on the counter's two uniforms; even i takes r cos(theta), odd i r sin(theta)
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define NABLA_HD __host__ __device__
#else
#define NABLA_HD
#endif

namespace nabla {

NABLA_HD inline std::array<uint32_t, 4> philox4x32(uint64_t counter, uint64_t key) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {c0, c1, c2, c3};
}

NABLA_HD inline double philox_uniform(uint64_t seed, uint64_t offset, int64_t i) {
  auto w = philox4x32(offset + static_cast<uint64_t>(i) / 2, seed);
  uint32_t hi = (i % 2 == 0) ? w[0] : w[2], lo = (i % 2 == 0) ? w[1] : w[3];
  uint64_t bits = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);  // 53 bits
  return static_cast<double>(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

NABLA_HD inline double philox_normal(uint64_t seed, uint64_t offset, int64_t i) {
  auto w = philox4x32(offset + static_cast<uint64_t>(i) / 2, seed);
  uint64_t b1 = ((static_cast<uint64_t>(w[0]) << 21) ^ (w[1] >> 11)) & ((1ull << 53) - 1);
  uint64_t b2 = ((static_cast<uint64_t>(w[2]) << 21) ^ (w[3] >> 11)) & ((1ull << 53) - 1);
  double u1 = (static_cast<double>(b1) + 1.0) * (1.0 / 9007199254740993.0);  // (0, 1): log is finite
  double u2 = static_cast<double>(b2) * (1.0 / 9007199254740992.0);
  double r = std::sqrt(-2.0 * std::log(u1)), theta = 6.283185307179586 * u2;
  return (i % 2 == 0) ? r * std::cos(theta) : r * std::sin(theta);
}

NABLA_HD inline uint64_t philox_bits64(uint64_t seed, uint64_t offset, int64_t i) {
  auto w = philox4x32(offset + static_cast<uint64_t>(i) / 2, seed);
  return (i % 2 == 0) ? (static_cast<uint64_t>(w[0]) << 32 | w[1])
                      : (static_cast<uint64_t>(w[2]) << 32 | w[3]);
}

// A seed and a position in its stream. Copyable: a checkpoint saves (seed, offset).
struct Generator {
  uint64_t seed = 0x853c49e6748fea9bull;
  uint64_t offset = 0;

  // Reserves the counters for a draw of n elements; returns the offset to draw at.
  uint64_t advance(int64_t n) {
    uint64_t at = offset;
    offset += (static_cast<uint64_t>(n) + 1) / 2;
    return at;
  }
};

// The process-wide generator used when none is passed.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace nabla
