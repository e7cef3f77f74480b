// CUDA kernels of scaled_dot_product_attention (maths and slot contracts in ops/attention.h). bf16 and f16
// with D = 64 or 128 on sm_80+ (and f32 with D = 64 or 128 while TF32 is on) go to the tensor-core kernels
// of cuda/attention_mma.cu (unless NABLA_ATTENTION_KERNEL=scalar); everything else runs the kernels of this
// file: a
// flash-attention-2 style forward and backward on scalar f32 FMAs, for f32, bf16 and
// f16 inputs (loaded to f32 in shared memory; scores, softmax and every sum in f32), head size D <= 128.
// Each kernel is templated on kMaxD in {32, 64, 128}, the smallest that holds D: shared tiles are zero
// beyond D, so the dot products run over kMaxD unrolled and a D of 26 (BERT 4L-312) costs a D of 32.
//
// Forward (grid: B H x query tiles of 16 rows; 4 warps, each owning 4 query rows):
//   the block walks the K/V tiles of 32 keys (only those the causal rule can reach), loaded into shared
//   memory as f32; lane j of a warp scores key j of the tile against the warp's 4 rows (one pass over k_j,
//   each k element read once for 4 FMAs), the warp keeps the
//   online softmax (running max m, sum l) of each row, and each lane accumulates the output dims
//   d = lane + 32 e in registers: o = o exp(m_old - m_new) + sum_j p_j M_j / (1 - p) v_j, with p_j passed
//   through shared memory. At the end out = o / l and lse = m + log l (a row with no allowed key: out = 0,
//   lse = -inf).
// Backward, three kernels (no atomics, deterministic):
//   1. Dr_i = sum_d dout_id out_id, one warp per row.
//   2. dq: the forward's layout; lane j recomputes P_ij = exp(scale q_i . k_j - lse_i), dP_ij from
//      dout_i . v_j and the dropout mask, dS_ij = P_ij (dP_ij - Dr_i), and dq_i += scale sum_j dS_ij k_j.
//   3. dk, dv: a block owns 32 keys (4 warps of 8 keys; 4 lanes per key, each holding k_j, v_j and the
//      dk_j, dv_j accumulators for the dims d = quarter + 4 t in registers) and walks the query rows that can
//      see them, 16 at a time through shared memory; the 4 lanes of a key meet with two shuffles per dot.
// Dropout: element ((b H + h) Tq + i) Tk + j keeps when philox_uniform(seed, offset, index) >= p, the same
// recipe as engine/random.h, so the mask equals the CPU one bit for bit.
#include <cmath>
#include <limits>

#include "cuda/attention_mma.h"
#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/runtime.h"
#include "engine/random.h"
#include "ops/attention.h"

namespace nabla::cuda {
namespace {

using ops::AttentionParams;

constexpr unsigned kFull = 0xffffffffu;
constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;  // 16 query rows per block (forward, dq)
constexpr int kKeyTile = 32;                          // keys per shared tile (one per lane)
constexpr int kKeysPerBlock = 32;                     // dk/dv kernel: 4 warps x 8 keys
constexpr int kQRowTile = 16;                         // dk/dv kernel: query rows per shared tile
constexpr float kNegInf = -INFINITY;

struct DeviceParams {
  int64_t h, tq, tk;
  int d;
  float scale;
  float dropout_p;  // compared in f64 below, as the CPU (kept as double there)
  double p64;
  float keep_scale;
  uint64_t seed, offset;
  bool causal;
};

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Keys j < causal_limit are allowed to query i (bottom-right aligned); tk when not causal.
__device__ __forceinline__ int64_t causal_limit(const DeviceParams& p, int64_t i) {
  if (!p.causal) return p.tk;
  const int64_t lim = i + (p.tk - p.tq) + 1;
  return lim < 0 ? 0 : (lim > p.tk ? p.tk : lim);
}

// 1 / (1 - p) when element `index` of the dropout draw is kept, else 0 (1 without dropout).
__device__ __forceinline__ float dropout_keep(const DeviceParams& p, int64_t index) {
  if (p.p64 <= 0.0) return 1.0f;
  return philox_uniform(p.seed, p.offset, index) >= p.p64 ? p.keep_scale : 0.0f;
}

// Copies rows [r0, r0 + n) of a [rows_total, d] matrix into a shared [n, stride] f32 tile, zero beyond d
// and beyond rows_total. All threads of the block take part.
template <class T, int kMaxD>
__device__ __forceinline__ void load_tile(float* dst, int stride, int n, const T* src, int64_t r0,
                                          int64_t rows_total, int d) {
  for (int x = threadIdx.x; x < n * kMaxD; x += blockDim.x) {
    const int r = x / kMaxD, c = x % kMaxD;
    const int64_t gr = r0 + r;
    dst[r * stride + c] = (gr < rows_total && c < d) ? static_cast<float>(load(src[gr * d + c])) : 0.0f;
  }
}

// ---- forward ---------------------------------------------------------------------------------------

template <int kMaxD>
constexpr size_t forward_smem() {
  return sizeof(float) * (kRowsPerBlock * kMaxD + kKeyTile * (kMaxD + 1) + kKeyTile * kMaxD +
                          kWarps * kRowsPerWarp * kKeyTile);
}

template <class T, int kMaxD>
__global__ void __launch_bounds__(kWarps * 32)
    sdpa_forward_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                        const uint8_t* __restrict__ mask, DeviceParams p, T* __restrict__ out,
                        float* __restrict__ lse) {
  constexpr int kE = kMaxD / 32;
  extern __shared__ float smem[];
  float* q_s = smem;                          // [16][kMaxD]
  float* k_s = q_s + kRowsPerBlock * kMaxD;   // [32][kMaxD + 1]
  float* v_s = k_s + kKeyTile * (kMaxD + 1);  // [32][kMaxD]
  float* p_s = v_s + kKeyTile * kMaxD;        // [4 warps][4 rows][32]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.x, b = bh / p.h;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kRowsPerBlock;
  const T* qh = q + bh * p.tq * p.d;
  const T* kh = k + bh * p.tk * p.d;
  const T* vh = v + bh * p.tk * p.d;
  const uint8_t* mrow = mask ? mask + b * p.tk : nullptr;

  load_tile<T, kMaxD>(q_s, kMaxD, kRowsPerBlock, qh, row0, p.tq, p.d);

  float m[kRowsPerWarp], l[kRowsPerWarp], o[kRowsPerWarp][kE];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    m[rr] = kNegInf;
    l[rr] = 0.0f;
#pragma unroll
    for (int e = 0; e < kE; ++e) o[rr][e] = 0.0f;
  }
  // Keys past the last row's causal limit are seen by no row of this block.
  const int64_t last_row = min(row0 + kRowsPerBlock, p.tq) - 1;
  const int64_t key_end = causal_limit(p, last_row);
  for (int64_t j0 = 0; j0 < key_end; j0 += kKeyTile) {
    __syncthreads();  // the previous tile is no longer read
    load_tile<T, kMaxD>(k_s, kMaxD + 1, kKeyTile, kh, j0, p.tk, p.d);
    load_tile<T, kMaxD>(v_s, kMaxD, kKeyTile, vh, j0, p.tk, p.d);
    __syncthreads();
    const int64_t j = j0 + lane;
    const bool key_ok = j < p.tk && (!mrow || mrow[j]);
    // Scores of key j against the warp's 4 rows in one pass over k_j (rows past Tq are zero in q_s).
    float s[kRowsPerWarp];
    {
      float acc[kRowsPerWarp] = {};
      const float* kr = k_s + lane * (kMaxD + 1);
      const float* qw = q_s + warp * kRowsPerWarp * kMaxD;
#pragma unroll
      for (int c = 0; c < kMaxD; ++c) {
        const float kc = kr[c];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) acc[rr] = fmaf(qw[rr * kMaxD + c], kc, acc[rr]);
      }
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int64_t i = row0 + warp * kRowsPerWarp + rr;
        const bool allowed = key_ok && i < p.tq && j < causal_limit(p, i);
        s[rr] = allowed ? acc[rr] * p.scale : kNegInf;
      }
    }
    float* pw = p_s + warp * kRowsPerWarp * kKeyTile;  // [4 rows][32 keys] of this warp
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const float m_new = fmaxf(m[rr], warp_max(s[rr]));
      if (m_new == kNegInf) {  // nothing allowed yet for this row (warp-uniform)
        pw[rr * kKeyTile + lane] = 0.0f;
        continue;
      }
      const float alpha = __expf(m[rr] - m_new);  // 0 when m was -inf
      const float e = s[rr] == kNegInf ? 0.0f : __expf(s[rr] - m_new);
      l[rr] = l[rr] * alpha + warp_sum(e);
      m[rr] = m_new;
      const int64_t i = row0 + warp * kRowsPerWarp + rr;
      pw[rr * kKeyTile + lane] = e > 0.0f ? e * dropout_keep(p, (bh * p.tq + i) * p.tk + j) : 0.0f;
#pragma unroll
      for (int x = 0; x < kE; ++x) o[rr][x] *= alpha;
    }
    __syncwarp();
    // o += p v: each v element read once for the 4 rows.
    for (int jj = 0; jj < kKeyTile; ++jj) {
      float vv[kE];
#pragma unroll
      for (int x = 0; x < kE; ++x) vv[x] = v_s[jj * kMaxD + lane + 32 * x];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const float w = pw[rr * kKeyTile + jj];
#pragma unroll
        for (int x = 0; x < kE; ++x) o[rr][x] = fmaf(w, vv[x], o[rr][x]);
      }
    }
    __syncwarp();
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t i = row0 + warp * kRowsPerWarp + rr;
    if (i >= p.tq) break;
    const bool any = l[rr] > 0.0f;
    const float inv = any ? 1.0f / l[rr] : 0.0f;
    T* orow = out + (bh * p.tq + i) * p.d;
#pragma unroll
    for (int x = 0; x < kE; ++x) {
      const int c = lane + 32 * x;
      if (c < p.d) orow[c] = store<T>(o[rr][x] * inv);
    }
    if (lane == 0) lse[bh * p.tq + i] = any ? m[rr] + logf(l[rr]) : kNegInf;
  }
}

// ---- backward ----------------------------------------------------------------------------------------

// Dr_i = sum_d dout_id out_id, one warp per row.
template <class T>
__global__ void sdpa_rowdot_kernel(const T* __restrict__ dout, const T* __restrict__ out, int64_t rows, int d,
                                   float* __restrict__ dr) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float acc = 0.0f;
  for (int c = lane; c < d; c += 32) acc += load(dout[row * d + c]) * load(out[row * d + c]);
  acc = warp_sum(acc);
  if (lane == 0) dr[row] = acc;
}

template <int kMaxD>
constexpr size_t dq_smem() {
  return sizeof(float) *
         (2 * kRowsPerBlock * kMaxD + 2 * kKeyTile * (kMaxD + 1) + kWarps * kRowsPerWarp * kKeyTile);
}

template <class T, int kMaxD>
__global__ void __launch_bounds__(kWarps * 32)
    sdpa_dq_kernel(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ k,
                   const T* __restrict__ v, const uint8_t* __restrict__ mask, const float* __restrict__ lse,
                   const float* __restrict__ dr, DeviceParams p, T* __restrict__ dq) {
  constexpr int kE = kMaxD / 32;
  extern __shared__ float smem[];
  float* q_s = smem;                           // [16][kMaxD]
  float* do_s = q_s + kRowsPerBlock * kMaxD;   // [16][kMaxD]
  float* k_s = do_s + kRowsPerBlock * kMaxD;   // [32][kMaxD + 1]
  float* v_s = k_s + kKeyTile * (kMaxD + 1);   // [32][kMaxD + 1]
  float* ds_s = v_s + kKeyTile * (kMaxD + 1);  // [4 warps][4 rows][32]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.x, b = bh / p.h;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kRowsPerBlock;
  const uint8_t* mrow = mask ? mask + b * p.tk : nullptr;
  load_tile<T, kMaxD>(q_s, kMaxD, kRowsPerBlock, q + bh * p.tq * p.d, row0, p.tq, p.d);
  load_tile<T, kMaxD>(do_s, kMaxD, kRowsPerBlock, dout + bh * p.tq * p.d, row0, p.tq, p.d);

  float acc[kRowsPerWarp][kE];
  float row_lse[kRowsPerWarp], row_dr[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t i = row0 + warp * kRowsPerWarp + rr;
    row_lse[rr] = i < p.tq ? lse[bh * p.tq + i] : kNegInf;
    row_dr[rr] = i < p.tq ? dr[bh * p.tq + i] : 0.0f;
#pragma unroll
    for (int x = 0; x < kE; ++x) acc[rr][x] = 0.0f;
  }
  const int64_t last_row = min(row0 + kRowsPerBlock, p.tq) - 1;
  const int64_t key_end = causal_limit(p, last_row);
  for (int64_t j0 = 0; j0 < key_end; j0 += kKeyTile) {
    __syncthreads();
    load_tile<T, kMaxD>(k_s, kMaxD + 1, kKeyTile, k + bh * p.tk * p.d, j0, p.tk, p.d);
    load_tile<T, kMaxD>(v_s, kMaxD + 1, kKeyTile, v + bh * p.tk * p.d, j0, p.tk, p.d);
    __syncthreads();
    const int64_t j = j0 + lane;
    const bool key_ok = j < p.tk && (!mrow || mrow[j]);
    // q_i . k_j and dout_i . v_j for the warp's 4 rows in one pass over k_j and v_j.
    float s[kRowsPerWarp] = {}, dpd[kRowsPerWarp] = {};
    {
      const float* kr = k_s + lane * (kMaxD + 1);
      const float* vr = v_s + lane * (kMaxD + 1);
      const float* qw = q_s + warp * kRowsPerWarp * kMaxD;
      const float* dw = do_s + warp * kRowsPerWarp * kMaxD;
#pragma unroll
      for (int c = 0; c < kMaxD; ++c) {
        const float kc = kr[c], vc = vr[c];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          s[rr] = fmaf(qw[rr * kMaxD + c], kc, s[rr]);
          dpd[rr] = fmaf(dw[rr * kMaxD + c], vc, dpd[rr]);
        }
      }
    }
    float* dsw = ds_s + warp * kRowsPerWarp * kKeyTile;  // [4 rows][32 keys] of this warp
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int64_t i = row0 + warp * kRowsPerWarp + rr;
      // Rows past Tq or without an allowed key have lse -inf: dS = 0.
      const bool allowed = key_ok && row_lse[rr] != kNegInf && i < p.tq && j < causal_limit(p, i);
      float ds = 0.0f;
      if (allowed) {
        const float pij = __expf(s[rr] * p.scale - row_lse[rr]);
        const float keep = dropout_keep(p, (bh * p.tq + i) * p.tk + j);
        ds = pij * (dpd[rr] * keep - row_dr[rr]) * p.scale;
      }
      dsw[rr * kKeyTile + lane] = ds;
    }
    __syncwarp();
    for (int jj = 0; jj < kKeyTile; ++jj) {
      float kk[kE];
#pragma unroll
      for (int x = 0; x < kE; ++x) kk[x] = k_s[jj * (kMaxD + 1) + lane + 32 * x];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const float w = dsw[rr * kKeyTile + jj];
#pragma unroll
        for (int x = 0; x < kE; ++x) acc[rr][x] = fmaf(w, kk[x], acc[rr][x]);
      }
    }
    __syncwarp();
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t i = row0 + warp * kRowsPerWarp + rr;
    if (i >= p.tq) break;
    T* row = dq + (bh * p.tq + i) * p.d;
#pragma unroll
    for (int x = 0; x < kE; ++x) {
      const int c = lane + 32 * x;
      if (c < p.d) row[c] = store<T>(acc[rr][x]);
    }
  }
}

template <int kMaxD>
constexpr size_t dkdv_smem() {
  return sizeof(float) * (2 * kQRowTile * kMaxD + 2 * kQRowTile);
}

template <class T, int kMaxD>
__global__ void __launch_bounds__(kWarps * 32)
    sdpa_dkdv_kernel(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ k,
                     const T* __restrict__ v, const uint8_t* __restrict__ mask, const float* __restrict__ lse,
                     const float* __restrict__ dr, DeviceParams p, T* __restrict__ dk, T* __restrict__ dv) {
  constexpr int kT = kMaxD / 4;  // dims per lane: d = quarter + 4 t
  extern __shared__ float smem[];
  float* q_s = smem;                        // [16][kMaxD]
  float* do_s = q_s + kQRowTile * kMaxD;    // [16][kMaxD]
  float* lse_s = do_s + kQRowTile * kMaxD;  // [16]
  float* dr_s = lse_s + kQRowTile;          // [16]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int quarter = lane % 4;
  const int64_t bh = blockIdx.x, b = bh / p.h;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * kKeysPerBlock + warp * 8 + lane / 4;
  const bool key_ok = j < p.tk && (!mask || mask[b * p.tk + j]);
  float kr[kT], vr[kT], dka[kT], dva[kT];
#pragma unroll
  for (int t = 0; t < kT; ++t) {
    const int c = quarter + 4 * t;
    const bool in = j < p.tk && c < p.d;
    kr[t] = in ? static_cast<float>(load(k[(bh * p.tk + j) * p.d + c])) : 0.0f;
    vr[t] = in ? static_cast<float>(load(v[(bh * p.tk + j) * p.d + c])) : 0.0f;
    dka[t] = dva[t] = 0.0f;
  }
  // Rows that can see the block's first key: causal i >= j - (Tk - Tq).
  const int64_t first_key = static_cast<int64_t>(blockIdx.y) * kKeysPerBlock;
  int64_t row_begin = p.causal ? first_key - (p.tk - p.tq) : 0;
  if (row_begin < 0) row_begin = 0;
  row_begin = row_begin / kQRowTile * kQRowTile;
  for (int64_t r0 = row_begin; r0 < p.tq; r0 += kQRowTile) {
    __syncthreads();
    load_tile<T, kMaxD>(q_s, kMaxD, kQRowTile, q + bh * p.tq * p.d, r0, p.tq, p.d);
    load_tile<T, kMaxD>(do_s, kMaxD, kQRowTile, dout + bh * p.tq * p.d, r0, p.tq, p.d);
    for (int x = threadIdx.x; x < kQRowTile; x += blockDim.x) {
      const int64_t i = r0 + x;
      lse_s[x] = i < p.tq ? lse[bh * p.tq + i] : kNegInf;
      dr_s[x] = i < p.tq ? dr[bh * p.tq + i] : 0.0f;
    }
    __syncthreads();
    for (int lr = 0; lr < kQRowTile; ++lr) {
      const int64_t i = r0 + lr;
      if (i >= p.tq) break;
      const float* qrow = q_s + lr * kMaxD;
      const float* dorow = do_s + lr * kMaxD;
      float s = 0.0f, dpd = 0.0f;
#pragma unroll
      for (int t = 0; t < kT; ++t) {
        s = fmaf(qrow[quarter + 4 * t], kr[t], s);
        dpd = fmaf(dorow[quarter + 4 * t], vr[t], dpd);
      }
      s += __shfl_xor_sync(kFull, s, 1);
      s += __shfl_xor_sync(kFull, s, 2);
      dpd += __shfl_xor_sync(kFull, dpd, 1);
      dpd += __shfl_xor_sync(kFull, dpd, 2);
      const bool allowed = key_ok && lse_s[lr] != kNegInf && j < causal_limit(p, i);
      if (!allowed) continue;
      const float pij = __expf(s * p.scale - lse_s[lr]);
      const float keep = dropout_keep(p, (bh * p.tq + i) * p.tk + j);
      const float pk = pij * keep;
      const float ds = pij * (dpd * keep - dr_s[lr]) * p.scale;
#pragma unroll
      for (int t = 0; t < kT; ++t) {
        dva[t] = fmaf(pk, dorow[quarter + 4 * t], dva[t]);
        dka[t] = fmaf(ds, qrow[quarter + 4 * t], dka[t]);
      }
    }
  }
  if (j >= p.tk) return;
#pragma unroll
  for (int t = 0; t < kT; ++t) {
    const int c = quarter + 4 * t;
    if (c < p.d) {
      dk[(bh * p.tk + j) * p.d + c] = store<T>(dka[t]);
      dv[(bh * p.tk + j) * p.d + c] = store<T>(dva[t]);
    }
  }
}

// ---- launchers ---------------------------------------------------------------------------------------

DeviceParams device_params(const AttentionParams& a) {
  // grid.y counts query tiles of 16 rows or key tiles of 32 keys: at most 65535.
  NABLA_CHECK(a.tq <= 65535LL * kRowsPerBlock && a.tk <= 65535LL * kKeysPerBlock,
              "scaled_dot_product_attention: sequence too long for cuda (Tq ", a.tq, ", Tk ", a.tk,
              "; at most ", 65535LL * kRowsPerBlock, ")");
  DeviceParams p{};
  p.h = a.h, p.tq = a.tq, p.tk = a.tk, p.d = static_cast<int>(a.d);
  p.scale = static_cast<float>(a.scale);
  p.p64 = a.dropout_p;
  p.dropout_p = static_cast<float>(a.dropout_p);
  p.keep_scale = a.dropout_p >= 1.0 ? 0.0f : static_cast<float>(1.0 / (1.0 - a.dropout_p));
  p.seed = a.seed, p.offset = a.offset;
  p.causal = a.causal;
  return p;
}

// Calls f with kMaxD as std::integral_constant: the smallest of 32, 64, 128 that holds d.
template <class F>
void visit_head_size(int64_t d, F&& f) {
  if (d <= 32) return f(std::integral_constant<int, 32>{});
  if (d <= 64) return f(std::integral_constant<int, 64>{});
  if (d <= 128) return f(std::integral_constant<int, 128>{});
  fail("scaled_dot_product_attention: head size D = ", d, " is not supported on cuda (expected D <= 128)");
}

// Visits f32, bf16 and f16 (f64 has no CUDA attention kernel).
template <class F>
void visit_attention_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32:
      return f(float{});
    case DType::bf16:
      return f(__nv_bfloat16{});
    case DType::f16:
      return f(__half{});
    default:
      fail("scaled_dot_product_attention: dtype ", t,
           " is not supported on cuda (expected f32, bf16 or f16; f64 runs on the CPU)");
  }
}

// Kernels past 48 KiB of dynamic shared memory must say so once.
template <class K>
void allow_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    NABLA_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

const uint8_t* mask_ptr(const Tensor& mask) {
  return mask.defined() ? static_cast<const uint8_t*>(mask.data_ptr()) : nullptr;
}

void attention_forward_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                            const AttentionParams& a, Tensor& out, Tensor& lse) {
  if (attention_mma_takes(q, k, v, out)) return attention_forward_mma(q, k, v, mask, a, out, lse);
  DeviceGuard g(q.device().index);
  const DeviceParams p = device_params(a);
  visit_attention_dtype(q.dtype(), [&](auto zero) {
    using T = decltype(zero);
    visit_head_size(a.d, [&](auto md) {
      constexpr int kMaxD = decltype(md)::value;
      constexpr size_t smem = forward_smem<kMaxD>();
      auto kernel = sdpa_forward_kernel<T, kMaxD>;
      allow_smem(kernel, smem);
      const dim3 grid(static_cast<unsigned>(a.b * a.h),
                      static_cast<unsigned>((a.tq + kRowsPerBlock - 1) / kRowsPerBlock));
      kernel<<<grid, kWarps * 32, smem, current_stream()>>>(ptr<T>(q), ptr<T>(k), ptr<T>(v), mask_ptr(mask),
                                                            p, ptr<T>(out), ptr<float>(lse));
      NABLA_CUDA_LAUNCH_CHECK();
    });
  });
}

void attention_backward_cuda(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& mask, const Tensor& out, const Tensor& lse,
                             const AttentionParams& a, Tensor& dq, Tensor& dk, Tensor& dv) {
  if (attention_mma_takes(q, k, v, dout))
    return attention_backward_mma(dout, q, k, v, mask, out, lse, a, dq, dk, dv);
  DeviceGuard g(q.device().index);
  const DeviceParams p = device_params(a);
  const int64_t rows = a.b * a.h * a.tq;
  Tensor dr = Tensor::empty({rows > 0 ? rows : 1}, DType::f32, q.device());
  visit_attention_dtype(q.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if (rows > 0) {
      sdpa_rowdot_kernel<T>
          <<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), kWarps * 32, 0, current_stream()>>>(
              ptr<T>(dout), ptr<T>(out), rows, p.d, ptr<float>(dr));
      NABLA_CUDA_LAUNCH_CHECK();
    }
    visit_head_size(a.d, [&](auto md) {
      constexpr int kMaxD = decltype(md)::value;
      if (rows > 0) {
        constexpr size_t smem = dq_smem<kMaxD>();
        auto kernel = sdpa_dq_kernel<T, kMaxD>;
        allow_smem(kernel, smem);
        const dim3 grid(static_cast<unsigned>(a.b * a.h),
                        static_cast<unsigned>((a.tq + kRowsPerBlock - 1) / kRowsPerBlock));
        kernel<<<grid, kWarps * 32, smem, current_stream()>>>(ptr<T>(dout), ptr<T>(q), ptr<T>(k), ptr<T>(v),
                                                              mask_ptr(mask), ptr<float>(lse), ptr<float>(dr),
                                                              p, ptr<T>(dq));
        NABLA_CUDA_LAUNCH_CHECK();
      }
      if (a.b * a.h * a.tk > 0) {
        constexpr size_t smem = dkdv_smem<kMaxD>();
        auto kernel = sdpa_dkdv_kernel<T, kMaxD>;
        allow_smem(kernel, smem);
        const dim3 grid(static_cast<unsigned>(a.b * a.h),
                        static_cast<unsigned>((a.tk + kKeysPerBlock - 1) / kKeysPerBlock));
        kernel<<<grid, kWarps * 32, smem, current_stream()>>>(ptr<T>(dout), ptr<T>(q), ptr<T>(k), ptr<T>(v),
                                                              mask_ptr(mask), ptr<float>(lse), ptr<float>(dr),
                                                              p, ptr<T>(dk), ptr<T>(dv));
        NABLA_CUDA_LAUNCH_CHECK();
      }
    });
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(attention_forward_kernel, cuda, attention_forward_cuda);
NABLA_REGISTER_KERNEL(attention_backward_kernel, cuda, attention_backward_cuda);

}  // namespace nabla::cuda
