// Device helpers shared by the tensor-core attention kernels (cuda/attention_mma.cu for bf16/f16,
// cuda/attention_tf32.cu for f32 on TF32): tile sizes, the kernels' parameter block, PTX wrappers (cp.async,
// ldmatrix, mma), masking and dropout (philox_uniform at the element index, as every attention kernel), and
// the cp.async tile loader. Fragment layouts are described in cuda/attention_mma.cu.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "engine/random.h"

namespace nabla::cuda::attn {

constexpr int kThreads = 128;  // 4 warps
constexpr int kPad = 8;        // halves of padding per shared row
constexpr int kFwdBq = 64;     // forward: query rows per block (4 warps x 16)
constexpr int kFwdBk = 64;     // forward: keys per K/V tile
constexpr int kBwdBk = 64;     // backward: keys per block (4 warps x 16)
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr unsigned kFull = 0xffffffffu;

// Backward query rows per tile: 64 for D 64, 32 for D 128 (registers: dK, dV are 2 D / 8 x 4 floats).
template <int D>
constexpr int bwd_bq() {
  return D == 64 ? 64 : 32;
}

struct MmaParams {
  int64_t h, tq, tk;
  float scale;       // softmax scale
  float scale_log2;  // scale * log2(e): scores in log2 units, for ex2
  double p64;        // dropout probability (0: none), compared in f64 as philox_uniform's users do
  float keep_scale;  // 1 / (1 - p)
  uint64_t seed, offset;
  bool causal;
};

// ---- PTX wrappers ------------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously; zero-filled when !valid (src is then not read).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p))
               : "memory");
}

// c += a b for one 16x8x16 tile, f32 accumulate.
template <class T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats -> one register of two 16-bit values, `lo` in the low half.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  } else {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
}

__device__ __forceinline__ float ex2(float x) {  // 2^x; ex2(-inf) = 0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ---- masking and dropout -----------------------------------------------------------------------------

// Keys j < causal_limit(i) are allowed to query i (bottom-right aligned), clamped to [0, Tk].
__host__ __device__ __forceinline__ int64_t causal_limit(const MmaParams& p, int64_t i) {
  if (!p.causal) return p.tk;
  const int64_t lim = i + (p.tk - p.tq) + 1;
  return lim < 0 ? 0 : (lim > p.tk ? p.tk : lim);
}

// 1 / (1 - p) when dropout element `index` is kept, else 0: philox_uniform(seed, offset, index) >= p.
__device__ __forceinline__ float dropout_one(const MmaParams& p, int64_t index) {
  return philox_uniform(p.seed, p.offset, index) >= p.p64 ? p.keep_scale : 0.0f;
}

// philox_uniform's last step on the word pair of one element: 53 bits -> [0, 1), compared with p.
__device__ __forceinline__ float keep_from_words(const MmaParams& p, uint32_t hi, uint32_t lo) {
  const uint64_t bits = ((static_cast<uint64_t>(hi) << 21) ^ (lo >> 11)) & ((1ull << 53) - 1);
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0) >= p.p64 ? p.keep_scale : 0.0f;
}

// Elements index and index + 1 (two adjacent keys of a row): one Philox call when index is even (element i
// uses counter offset + i / 2, words w0, w1 when i is even and w2, w3 when odd), two otherwise.
__device__ __forceinline__ void dropout_pair(const MmaParams& p, int64_t index, float& k0, float& k1) {
  if ((index & 1) == 0) {
    const auto w = philox4x32(p.offset + static_cast<uint64_t>(index) / 2, p.seed);
    k0 = keep_from_words(p, w[0], w[1]);
    k1 = keep_from_words(p, w[2], w[3]);
  } else {
    k0 = dropout_one(p, index);
    k1 = dropout_one(p, index + 1);
  }
}

// Shared row stride in elements: D plus 16 bytes (8 halves or 4 floats), so that rows stay 16-byte aligned
// for cp.async and fragment loads of 8 rows hit different banks (cuda/attention_mma.cu, attention_tf32.cu).
template <class T, int D>
__host__ __device__ constexpr int row_stride() {
  return D + 16 / static_cast<int>(sizeof(T));
}

// Rows [r0, r0 + rows) of a row-major [total, D] matrix into a shared [rows][row_stride] tile with cp.async,
// rows past `total` zero-filled. All threads of the block take part; the caller commits the group.
template <class T, int D>
__device__ __forceinline__ void load_rows(T* dst, const T* src, int64_t r0, int64_t total, int rows) {
  constexpr int kPer = 16 / sizeof(T);  // elements per 16-byte chunk
  constexpr int kChunks = D / kPer;     // chunks per row
  for (int x = threadIdx.x; x < rows * kChunks; x += kThreads) {
    const int r = x / kChunks, c = (x % kChunks) * kPer;
    const int64_t gr = r0 + r;
    const bool ok = gr < total;
    cp_async16(dst + r * row_stride<T, D>() + c, ok ? src + gr * D + c : src, ok);
  }
}

// f32 operands for mma.m16n8k8.tf32: round to TF32 (10-bit mantissa, to nearest, as cuBLAS's TF32 mode).
__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t y;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(y) : "f"(x));
  return y;
}

// c += a b for one 16x8x8 TF32 tile, f32 accumulate. Layouts (g = lane / 4, t = lane % 4):
//   A 16x8: a0 = (g, t), a1 = (g + 8, t), a2 = (g, t + 4), a3 = (g + 8, t + 4);  B 8x8: b0 = (t, g), b1 = (t
//   + 4, g); C as for m16n8k16.
__device__ __forceinline__ void mma1688_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Launchers of the TF32 kernels (cuda/attention_tf32.cu), D = 64 or 128; the caller has checked the shapes
// and prepared dr and the zeroed dq_acc (as for the 16-bit kernels).
void tf32_forward(const float* q, const float* k, const float* v, const uint8_t* mask, const MmaParams& p,
                  int64_t bh, int d, float* out, float* lse);
void tf32_backward_keys(const float* dout, const float* q, const float* k, const float* v,
                        const uint8_t* mask, const float* lse, const float* dr, const MmaParams& p,
                        int64_t bh, int d, float* dq_acc, float* dk, float* dv);

}  // namespace nabla::cuda::attn
