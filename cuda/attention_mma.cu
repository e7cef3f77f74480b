// Tensor-core kernels of scaled_dot_product_attention (maths and slot contracts in ops/attention.h) for
// bf16 and f16 with head size D = 64 or 128, on sm_80 and newer (f32 with TF32 on: cuda/attention_tf32.cu,
// launched from the host functions at the end of this file; shared helpers in cuda/attention_mma.cuh):
// FlashAttention-2 on mma.sync.m16n8k16 (inline PTX, row.col, f32 accumulate), ldmatrix and cp.async.
// cuda/attention.cu dispatches here (attention_mma_takes) and keeps its scalar kernels for f32 without TF32,
// other head sizes and older GPUs.
//
// ---- fragment layouts (PTX ISA, "mma.m16n8k16" and "ldmatrix"; g = lane / 4, t = lane % 4) ----------------
//   A 16x16 (row): a0 = (row g,   cols 2t, 2t+1)   a1 = (row g+8, cols 2t, 2t+1)
//                  a2 = (row g,   cols 2t+8, +9)   a3 = (row g+8, cols 2t+8, +9)
//   B 16x8  (col): b0 = (k rows 2t, 2t+1, col g)    b1 = (k rows 2t+8, 2t+9, col g)
//   C 16x8  (f32): c0, c1 = (row g, cols 2t, 2t+1)  c2, c3 = (row g+8, cols 2t, 2t+1)
//   Each 32-bit register holds two 16-bit values, the lower column (or k) in the low half.
//   ldmatrix.x4: lanes 8m..8m+7 give the addresses of the 8 rows (16 bytes each) of matrix m; register m of
//   every lane receives (row g, cols 2t, 2t+1) of matrix m; with .trans it receives (rows 2t, 2t+1, col g).
// So, with smem tiles row-major [row][dim]:
//   * an A operand (Q, K, V, dS^T rows) is one ldmatrix.x4 with lane address (row l%16, col 8 (l/16));
//   * a B operand that is a row-major [n][k] tile (K for Q K^T, Q for K Q^T) is ldmatrix.x4 without .trans,
//     lane address (n: l%8 + 8 (l/16), k: 8 ((l/8)%2)) -> r0, r1 = b0, b1 of n-tile 0, r2, r3 of n-tile 1;
//   * a B operand stored [k][n] (V for P V, dO/Q for P^T dO and dS^T Q, K for dS K) is ldmatrix.x4.trans,
//     lane address (k: l%8 + 8 ((l/8)%2), n: 8 (l/16)) -> r0, r1 = b0, b1 of n-tile 0, r2, r3 of n-tile 1;
//   * the C fragments of two adjacent n-tiles (2j, 2j+1) of S are the A fragment of k-step j of P V once
//     packed to 16 bits: a0 = c0,c1 of 2j; a1 = c2,c3 of 2j; a2 = c0,c1 of 2j+1; a3 = c2,c3 of 2j+1
//     (no shared-memory round trip for P).
// Shared tiles have rows of D + 8 halves: the 16-byte pad puts the 8 rows of an ldmatrix in 8 different
// 4-bank groups (row stride 36 or 68 words, = 4 mod 32), so ldmatrix is conflict-free, and rows stay
// 16-byte aligned for cp.async.
//
// ---- forward (grid: B H x query tiles of 64; 4 warps, each 16 query rows; heaviest causal tiles first) ----
//   Q tile -> shared (cp.async) -> A fragments in registers. K/V tiles of 64 keys stream through two shared
//   buffers (cp.async double buffering: tile j+1 loads while tile j is computed), only the tiles the causal
//   rule lets the block's last row see. Per tile: S = Q K^T (f32), scaled into log2 units; masking only
//   when the tile needs it (a key-padding mask, the last partial tile, or a tile crossing the causal
//   diagonal); online softmax per row in registers (running max m over the quad of 4 lanes that share a row,
//   running sum l kept per lane and summed at the end); O = O exp2(m_old - m_new) + (P M) V with P packed
//   to 16 bits. out = O / l, lse = (m + log2 l) ln 2. A row with no allowed key gives 0 and lse = -inf.
// ---- backward (FA2: preprocess, then one kernel per K/V tile, dQ through f32 atomics) ------------------
//   1. Dr_i = sum_d dout_id out_id (one warp per row).
//   2. grid B H x key tiles of 64; 4 warps, each 16 keys (the M dimension). K and V of the tile stay in
//      shared memory; the block walks the query tiles (64 rows for D 64, 32 for D 128, so that dK, dV and the
//      tiles fit the 255 registers) that can see its keys, Q/dO/lse/Dr double-buffered through cp.async:
//        S^T = K Q^T,  dP^T = V dO^T                  (f32, C layout: rows keys, cols queries)
//        P^T = exp2(S^T scale log2e - lse log2e)       (0 where masked; lse -inf -> +inf, so P = 0)
//        dS^T = P^T (dP^T M - Dr),  dV += (P^T M) dO,  dK += dS^T Q   (A from registers, as in forward)
//      dS^T goes to shared memory ([key][query], 16-bit), then dQ_tile += dS K is spread over the warps in
//      16 x 32 pieces and added to an f32 scratch buffer with atomicAdd (the order of the adds varies, so dQ
//      is not bit-reproducible run to run; dK and dV are). A key tile with no allowed key writes zeros.
//   3. dq = scale * scratch, rounded to the input type; dK is scaled by `scale` in the epilogue.
// Dropout: element ((b H + h) Tq + i) Tk + j is kept when philox_uniform(seed, offset, index) >= p
// (engine/random.h), as the scalar kernels and the CPU: the forward draws two adjacent keys of a row from
// one Philox call when the index is even (the words (w0, w1) and (w2, w3) of counter index / 2, exactly
// philox_uniform's split), so the fused op still equals the composition with dropout.
#include "cuda/attention_mma.h"

#include "cuda/attention_mma.cuh"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/runtime.h"
#include "engine/random.h"

namespace nabla::cuda {
namespace {

using ops::AttentionParams;
using namespace attn;

// ---- forward ---------------------------------------------------------------------------------------

template <class T, int D>
constexpr size_t forward_smem() {
  return sizeof(T) * (kFwdBq + 4 * kFwdBk) * (D + kPad) + 2 * kFwdBk;
}

template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    mma_forward_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                       const uint8_t* __restrict__ mask, MmaParams p, T* __restrict__ out,
                       float* __restrict__ lse) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  constexpr int S = D + kPad;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* q_s = reinterpret_cast<T*>(smem_raw);                          // [64][S]
  T* k_s = q_s + kFwdBq * S;                                        // [2][64][S]
  T* v_s = k_s + 2 * kFwdBk * S;                                    // [2][64][S]
  uint8_t* m_s = reinterpret_cast<uint8_t*>(v_s + 2 * kFwdBk * S);  // [2][64]: key < Tk and not padded
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t n_qt = (p.tq + kFwdBq - 1) / kFwdBq;
  const int64_t bh = blockIdx.x / n_qt, b = bh / p.h;
  const int64_t row0 = (n_qt - 1 - blockIdx.x % n_qt) * kFwdBq;  // the late (causal: heavy) tiles first
  const T* qh = q + bh * p.tq * D;
  const T* kh = k + bh * p.tk * D;
  const T* vh = v + bh * p.tk * D;
  const uint8_t* mrow = mask ? mask + b * p.tk : nullptr;

  // Keys past the last row's causal limit are seen by no row of the block; keys below block_lim by all.
  const int64_t last_row = min(row0 + kFwdBq, p.tq) - 1;
  const int n_kt = static_cast<int>((causal_limit(p, last_row) + kFwdBk - 1) / kFwdBk);
  const int64_t block_lim = causal_limit(p, row0);
  // This lane's two rows (g and g + 8 of the warp's 16) and their key limits (0 for rows past Tq).
  const int64_t r_lo = row0 + warp * 16 + g, r_hi = r_lo + 8;
  const int64_t lim_lo = r_lo < p.tq ? causal_limit(p, r_lo) : 0;
  const int64_t lim_hi = r_hi < p.tq ? causal_limit(p, r_hi) : 0;

  auto load_kv = [&](int kt, int buf) {
    const int64_t j0 = static_cast<int64_t>(kt) * kFwdBk;
    load_rows<T, D>(k_s + buf * kFwdBk * S, kh, j0, p.tk, kFwdBk);
    load_rows<T, D>(v_s + buf * kFwdBk * S, vh, j0, p.tk, kFwdBk);
    for (int x = threadIdx.x; x < kFwdBk; x += kThreads) {
      const int64_t j = j0 + x;
      m_s[buf * kFwdBk + x] = j < p.tk && (!mrow || mrow[j]) ? 1 : 0;
    }
  };
  load_rows<T, D>(q_s, qh, row0, p.tq, kFwdBq);
  if (n_kt > 0) load_kv(0, 0);
  cp_async_commit();

  uint32_t qf[D / 16][4];  // A fragments of the warp's 16 query rows, one per k-step of 16 dims
  float o[D / 8][4];       // C fragments of the output, one per 8 dims
#pragma unroll
  for (int x = 0; x < D / 8; ++x) o[x][0] = o[x][1] = o[x][2] = o[x][3] = 0.0f;
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;

  for (int kt = 0; kt < n_kt; ++kt) {
    const int buf = kt & 1;
    if (kt + 1 < n_kt) {  // the other buffer was last read before the previous iteration's final barrier
      load_kv(kt + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (kt == 0) {
#pragma unroll
      for (int ks = 0; ks < D / 16; ++ks)
        ldmatrix_x4(qf[ks], q_s + (warp * 16 + (lane & 15)) * S + ks * 16 + 8 * (lane >> 4));
    }
    const T* kb = k_s + buf * kFwdBk * S;
    const T* vb = v_s + buf * kFwdBk * S;
    const uint8_t* mb = m_s + buf * kFwdBk;
    const int64_t j0 = static_cast<int64_t>(kt) * kFwdBk;

    // S = Q K^T: n-tile nt holds keys j0 + 8 nt .. + 7.
    float s[kFwdBk / 8][4];
#pragma unroll
    for (int x = 0; x < kFwdBk / 8; ++x) s[x][0] = s[x][1] = s[x][2] = s[x][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
      for (int np = 0; np < kFwdBk / 16; ++np) {
        uint32_t kf[4];
        ldmatrix_x4(kf, kb + (np * 16 + (lane & 7) + 8 * (lane >> 4)) * S + ks * 16 + 8 * ((lane >> 3) & 1));
        mma16816<T>(s[2 * np], qf[ks], kf[0], kf[1]);
        mma16816<T>(s[2 * np + 1], qf[ks], kf[2], kf[3]);
      }
    }
    // Log2 units; -inf where masked (element e: row e < 2 ? r_lo : r_hi, key j0 + 8 nt + 2t + e % 2).
    const bool need_mask = mrow != nullptr || j0 + kFwdBk > block_lim;
#pragma unroll
    for (int nt = 0; nt < kFwdBk / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nt][e] * p.scale_log2;
        if (need_mask) {
          const int kl = nt * 8 + 2 * t + (e & 1);
          if (!(j0 + kl < (e < 2 ? lim_lo : lim_hi) && mb[kl])) x = -INFINITY;
        }
        s[nt][e] = x;
      }
    }
    // Online softmax: the quad of lanes 4g .. 4g + 3 holds a row's 64 scores.
    float mx_lo = m_lo, mx_hi = m_hi;
#pragma unroll
    for (int nt = 0; nt < kFwdBk / 8; ++nt) {
      mx_lo = fmaxf(mx_lo, fmaxf(s[nt][0], s[nt][1]));
      mx_hi = fmaxf(mx_hi, fmaxf(s[nt][2], s[nt][3]));
    }
    mx_lo = fmaxf(mx_lo, __shfl_xor_sync(kFull, mx_lo, 1));
    mx_lo = fmaxf(mx_lo, __shfl_xor_sync(kFull, mx_lo, 2));
    mx_hi = fmaxf(mx_hi, __shfl_xor_sync(kFull, mx_hi, 1));
    mx_hi = fmaxf(mx_hi, __shfl_xor_sync(kFull, mx_hi, 2));
    // A row with nothing allowed so far keeps m = -inf; subtract 0 instead so that exp2 gives 0, not NaN.
    const float base_lo = mx_lo == -INFINITY ? 0.0f : mx_lo;
    const float base_hi = mx_hi == -INFINITY ? 0.0f : mx_hi;
    const float alpha_lo = ex2(m_lo - base_lo), alpha_hi = ex2(m_hi - base_hi);
    m_lo = mx_lo, m_hi = mx_hi;
    l_lo *= alpha_lo, l_hi *= alpha_hi;
#pragma unroll
    for (int x = 0; x < D / 8; ++x) {
      o[x][0] *= alpha_lo, o[x][1] *= alpha_lo;
      o[x][2] *= alpha_hi, o[x][3] *= alpha_hi;
    }
#pragma unroll
    for (int nt = 0; nt < kFwdBk / 8; ++nt) {
      s[nt][0] = ex2(s[nt][0] - base_lo), s[nt][1] = ex2(s[nt][1] - base_lo);
      s[nt][2] = ex2(s[nt][2] - base_hi), s[nt][3] = ex2(s[nt][3] - base_hi);
      l_lo += s[nt][0] + s[nt][1];
      l_hi += s[nt][2] + s[nt][3];
    }
    // Dropout on the unnormalised probabilities (l keeps the undropped sum).
    if (p.p64 > 0.0) {
#pragma unroll
      for (int nt = 0; nt < kFwdBk / 8; ++nt) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int64_t row = half ? r_hi : r_lo;
          if (row >= p.tq || (s[nt][2 * half] == 0.0f && s[nt][2 * half + 1] == 0.0f)) continue;
          float k0, k1;
          dropout_pair(p, (bh * p.tq + row) * p.tk + j0 + nt * 8 + 2 * t, k0, k1);
          s[nt][2 * half] *= k0;
          s[nt][2 * half + 1] *= k1;
        }
      }
    }
    // O += P V: k-step kk covers keys 16 kk .. + 15 = n-tiles 2 kk, 2 kk + 1 of S.
#pragma unroll
    for (int kk = 0; kk < kFwdBk / 16; ++kk) {
      const uint32_t a[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                             pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vf[4];
        ldmatrix_x4_trans(
            vf, vb + (kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * S + dp * 16 + 8 * (lane >> 4));
        mma16816<T>(o[2 * dp], a, vf[0], vf[1]);
        mma16816<T>(o[2 * dp + 1], a, vf[2], vf[3]);
      }
    }
    __syncthreads();  // this buffer is refilled two iterations on
  }
  cp_async_wait<0>();  // with no key tile the Q copy is still in flight

  l_lo += __shfl_xor_sync(kFull, l_lo, 1);
  l_lo += __shfl_xor_sync(kFull, l_lo, 2);
  l_hi += __shfl_xor_sync(kFull, l_hi, 1);
  l_hi += __shfl_xor_sync(kFull, l_hi, 2);
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t row = half ? r_hi : r_lo;
    if (row >= p.tq) continue;
    const float l = half ? l_hi : l_lo, m = half ? m_hi : m_lo;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    T* orow = out + (bh * p.tq + row) * D;
#pragma unroll
    for (int x = 0; x < D / 8; ++x)
      *reinterpret_cast<uint32_t*>(orow + x * 8 + 2 * t) =
          pack2<T>(o[x][2 * half] * inv, o[x][2 * half + 1] * inv);
    if (t == 0) lse[bh * p.tq + row] = l > 0.0f ? m * kLn2 + logf(l) : -INFINITY;
  }
#else
  __trap();
#endif
}

// ---- backward ----------------------------------------------------------------------------------------

// Dr_i = sum_d dout_id out_id, one warp per row.
template <class T, int D>
__global__ void mma_rowdot_kernel(const T* __restrict__ dout, const T* __restrict__ out, int64_t rows,
                                  float* __restrict__ dr) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float acc = 0.0f;
#pragma unroll
  for (int c = lane; c < D; c += 32) acc += load(dout[row * D + c]) * load(out[row * D + c]);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(kFull, acc, o);
  if (lane == 0) dr[row] = acc;
}

// dq = scale * acc, rounded to T.
template <class T>
__global__ void mma_dq_store_kernel(const float* __restrict__ acc, int64_t n, float scale,
                                    T* __restrict__ dq) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dq[i] = store<T>(acc[i] * scale);
}

template <class T, int D>
constexpr size_t backward_smem() {
  constexpr int bq = bwd_bq<D>();
  return sizeof(T) * (2 * kBwdBk * (D + kPad) + 4 * bq * (D + kPad) + kBwdBk * (bq + kPad)) +
         sizeof(float) * 4 * bq + kBwdBk;
}

template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    mma_backward_kernel(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ k,
                        const T* __restrict__ v, const uint8_t* __restrict__ mask,
                        const float* __restrict__ lse, const float* __restrict__ dr, MmaParams p,
                        float* __restrict__ dq_acc, T* __restrict__ dk, T* __restrict__ dv) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  constexpr int S = D + kPad;
  constexpr int BQ = bwd_bq<D>();
  constexpr int DS = BQ + kPad;  // row stride of the dS^T tile
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* k_s = reinterpret_cast<T*>(smem_raw);  // [64][S]
  T* v_s = k_s + kBwdBk * S;                // [64][S]
  T* q_s = v_s + kBwdBk * S;                // [2][BQ][S]
  T* do_s = q_s + 2 * BQ * S;               // [2][BQ][S]
  T* ds_s = do_s + 2 * BQ * S;              // [64 keys][DS]: dS^T of the current query tile
  float* lse2_s = reinterpret_cast<float*>(ds_s + kBwdBk * DS);  // [2][BQ]: lse log2e (+inf: P = 0)
  float* dr_s = lse2_s + 2 * BQ;                                 // [2][BQ]
  uint8_t* ok_s = reinterpret_cast<uint8_t*>(dr_s + 2 * BQ);     // [64]: key < Tk and not padded
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t n_kt = (p.tk + kBwdBk - 1) / kBwdBk;
  const int64_t bh = blockIdx.x / n_kt, b = bh / p.h;
  const int64_t j0 = (blockIdx.x % n_kt) * kBwdBk;
  const T* qh = q + bh * p.tq * D;
  const T* doh = dout + bh * p.tq * D;
  const T* kh = k + bh * p.tk * D;
  const T* vh = v + bh * p.tk * D;
  T* dkh = dk + bh * p.tk * D;
  T* dvh = dv + bh * p.tk * D;

  bool my_ok = false;
  if (threadIdx.x < kBwdBk) {
    const int64_t j = j0 + threadIdx.x;
    my_ok = j < p.tk && (!mask || mask[b * p.tk + j]);
    ok_s[threadIdx.x] = my_ok ? 1 : 0;
  }
  const bool any_key = __syncthreads_or(my_ok);
  // Query rows that can see the block's first key: i >= j0 - (Tk - Tq) under causal.
  int64_t q_begin = p.causal ? j0 - (p.tk - p.tq) : 0;
  if (q_begin < 0) q_begin = 0;
  const int64_t n_qt = (p.tq + BQ - 1) / BQ;
  const int64_t qt0 = q_begin / BQ;
  if (!any_key || qt0 >= n_qt) {  // no allowed (key, query) pair: dK = dV = 0, nothing for dQ
    for (int x = threadIdx.x; x < kBwdBk * D; x += kThreads) {
      const int64_t j = j0 + x / D;
      if (j < p.tk) dkh[j * D + x % D] = dvh[j * D + x % D] = store<T>(0.0f);
    }
    return;
  }

  load_rows<T, D>(k_s, kh, j0, p.tk, kBwdBk);
  load_rows<T, D>(v_s, vh, j0, p.tk, kBwdBk);
  auto load_q = [&](int64_t qt, int buf) {
    const int64_t i0 = qt * BQ;
    load_rows<T, D>(q_s + buf * BQ * S, qh, i0, p.tq, BQ);
    load_rows<T, D>(do_s + buf * BQ * S, doh, i0, p.tq, BQ);
    for (int x = threadIdx.x; x < BQ; x += kThreads) {
      const int64_t i = i0 + x;
      const float l = i < p.tq ? lse[bh * p.tq + i] : -INFINITY;
      lse2_s[buf * BQ + x] = l == -INFINITY ? INFINITY : l * kLog2e;
      dr_s[buf * BQ + x] = i < p.tq ? dr[bh * p.tq + i] : 0.0f;
    }
  };
  load_q(qt0, 0);
  cp_async_commit();

  float dk_acc[D / 8][4], dv_acc[D / 8][4];  // C fragments: rows = the warp's 16 keys, 8 dims each
#pragma unroll
  for (int x = 0; x < D / 8; ++x)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk_acc[x][e] = dv_acc[x][e] = 0.0f;
  const int kw = warp * 16;  // the warp's first key in the tile
  const int64_t key_lo = j0 + kw + g, key_hi = key_lo + 8;
  const bool ok_lo = ok_s[kw + g] != 0, ok_hi = ok_s[kw + g + 8] != 0;

  for (int64_t qt = qt0; qt < n_qt; ++qt) {
    const int buf = static_cast<int>((qt - qt0) & 1);
    if (qt + 1 < n_qt) {
      load_q(qt + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* qb = q_s + buf * BQ * S;
    const T* dob = do_s + buf * BQ * S;
    const float* lse2b = lse2_s + buf * BQ;
    const float* drb = dr_s + buf * BQ;
    const int64_t i0 = qt * BQ;

    // S^T = K Q^T and dP^T = V dO^T: rows the warp's keys, n-tile nt = queries i0 + 8 nt .. + 7.
    float st[BQ / 8][4], dpt[BQ / 8][4];
#pragma unroll
    for (int x = 0; x < BQ / 8; ++x)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[x][e] = dpt[x][e] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      uint32_t ka[4], va[4];
      ldmatrix_x4(ka, k_s + (kw + (lane & 15)) * S + ks * 16 + 8 * (lane >> 4));
      ldmatrix_x4(va, v_s + (kw + (lane & 15)) * S + ks * 16 + 8 * (lane >> 4));
#pragma unroll
      for (int np = 0; np < BQ / 16; ++np) {
        const int off = (np * 16 + (lane & 7) + 8 * (lane >> 4)) * S + ks * 16 + 8 * ((lane >> 3) & 1);
        uint32_t qf[4], df[4];
        ldmatrix_x4(qf, qb + off);
        mma16816<T>(st[2 * np], ka, qf[0], qf[1]);
        mma16816<T>(st[2 * np + 1], ka, qf[2], qf[3]);
        ldmatrix_x4(df, dob + off);
        mma16816<T>(dpt[2 * np], va, df[0], df[1]);
        mma16816<T>(dpt[2 * np + 1], va, df[2], df[3]);
      }
    }
    // P^T, then st <- P^T M (for dV) and dpt <- dS^T / scale = P^T (dP^T M - Dr) (for dK and dQ).
    // Element e: key e < 2 ? key_lo : key_hi, query i0 + 8 nt + 2t + e % 2.
#pragma unroll
    for (int nt = 0; nt < BQ / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int ql = nt * 8 + 2 * t + (e & 1);
        const int64_t i = i0 + ql, key = e < 2 ? key_lo : key_hi;
        const bool allowed = (e < 2 ? ok_lo : ok_hi) && (!p.causal || key <= i + (p.tk - p.tq));
        const float pt = allowed ? ex2(st[nt][e] * p.scale_log2 - lse2b[ql]) : 0.0f;
        float keep = 1.0f;
        if (p.p64 > 0.0 && pt > 0.0f) keep = dropout_one(p, (bh * p.tq + i) * p.tk + key);
        dpt[nt][e] = pt * (dpt[nt][e] * keep - drb[ql]);
        st[nt][e] = pt * keep;
      }
    }
    // dV += (P^T M) dO and dK += dS^T Q: A from registers (k-step kk = queries 16 kk .. + 15), B = the
    // [query][dim] tiles through ldmatrix.trans.
#pragma unroll
    for (int kk = 0; kk < BQ / 16; ++kk) {
      const uint32_t pa[4] = {pack2<T>(st[2 * kk][0], st[2 * kk][1]), pack2<T>(st[2 * kk][2], st[2 * kk][3]),
                              pack2<T>(st[2 * kk + 1][0], st[2 * kk + 1][1]),
                              pack2<T>(st[2 * kk + 1][2], st[2 * kk + 1][3])};
      const uint32_t sa[4] = {
          pack2<T>(dpt[2 * kk][0], dpt[2 * kk][1]), pack2<T>(dpt[2 * kk][2], dpt[2 * kk][3]),
          pack2<T>(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]), pack2<T>(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        const int off = (kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * S + dp * 16 + 8 * (lane >> 4);
        uint32_t bd[4], bq[4];
        ldmatrix_x4_trans(bd, dob + off);
        mma16816<T>(dv_acc[2 * dp], pa, bd[0], bd[1]);
        mma16816<T>(dv_acc[2 * dp + 1], pa, bd[2], bd[3]);
        ldmatrix_x4_trans(bq, qb + off);
        mma16816<T>(dk_acc[2 * dp], sa, bq[0], bq[1]);
        mma16816<T>(dk_acc[2 * dp + 1], sa, bq[2], bq[3]);
      }
    }
    // dS^T -> shared, [key][query]: a C pair (key, queries 2t, 2t + 1) is one 32-bit store.
#pragma unroll
    for (int nt = 0; nt < BQ / 8; ++nt) {
      *reinterpret_cast<uint32_t*>(ds_s + (kw + g) * DS + nt * 8 + 2 * t) = pack2<T>(dpt[nt][0], dpt[nt][1]);
      *reinterpret_cast<uint32_t*>(ds_s + (kw + g + 8) * DS + nt * 8 + 2 * t) =
          pack2<T>(dpt[nt][2], dpt[nt][3]);
    }
    __syncthreads();
    // dQ[i0 ..] += dS K over the block's 64 keys, in pieces of 16 queries x 32 dims spread over the warps.
    // A = dS (rows queries, k keys) from the [key][query] tile: ldmatrix.trans with lane address
    // (key: l%8 + 8 (l/16), query: 8 ((l/8)%2)) gives a0..a3; B = K [key][dim] through ldmatrix.trans.
    constexpr int kDc = D / 32;
    for (int item = warp; item < (BQ / 16) * kDc; item += kThreads / 32) {
      const int mt = item / kDc, dc = item % kDc;
      float acc[4][4];
#pragma unroll
      for (int x = 0; x < 4; ++x) acc[x][0] = acc[x][1] = acc[x][2] = acc[x][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < kBwdBk / 16; ++kk) {
        uint32_t a[4];
        ldmatrix_x4_trans(
            a, ds_s + (kk * 16 + (lane & 7) + 8 * (lane >> 4)) * DS + mt * 16 + 8 * ((lane >> 3) & 1));
#pragma unroll
        for (int dp = 0; dp < 2; ++dp) {
          uint32_t bk[4];
          ldmatrix_x4_trans(bk, k_s + (kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * S + dc * 32 + dp * 16 +
                                    8 * (lane >> 4));
          mma16816<T>(acc[2 * dp], a, bk[0], bk[1]);
          mma16816<T>(acc[2 * dp + 1], a, bk[2], bk[3]);
        }
      }
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t i = i0 + mt * 16 + g + 8 * half;
        if (i >= p.tq) continue;
        float* row = dq_acc + (bh * p.tq + i) * D + dc * 32 + 2 * t;
#pragma unroll
        for (int x = 0; x < 4; ++x) {
          atomicAdd(row + x * 8, acc[x][2 * half]);
          atomicAdd(row + x * 8 + 1, acc[x][2 * half + 1]);
        }
      }
    }
    __syncthreads();  // q/dO buffer and dS^T tile are rewritten next
  }

#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t j = half ? key_hi : key_lo;
    if (j >= p.tk) continue;
#pragma unroll
    for (int x = 0; x < D / 8; ++x) {
      const int c = x * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(dkh + j * D + c) =
          pack2<T>(dk_acc[x][2 * half] * p.scale, dk_acc[x][2 * half + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(dvh + j * D + c) = pack2<T>(dv_acc[x][2 * half], dv_acc[x][2 * half + 1]);
    }
  }
#else
  __trap();
#endif
}

// ---- host side ---------------------------------------------------------------------------------------

MmaParams mma_params(const AttentionParams& a) {
  MmaParams p{};
  p.h = a.h, p.tq = a.tq, p.tk = a.tk;
  p.scale = static_cast<float>(a.scale);
  p.scale_log2 = static_cast<float>(a.scale * 1.4426950408889634);
  p.p64 = a.dropout_p;
  p.keep_scale = a.dropout_p >= 1.0 ? 0.0f : static_cast<float>(1.0 / (1.0 - a.dropout_p));
  p.seed = a.seed, p.offset = a.offset;
  p.causal = a.causal;
  return p;
}

// Calls f(T{}, integral_constant<D>) for the supported (dtype, D).
template <class F>
void visit_mma(DType dt, int64_t d, F&& f) {
  auto by_d = [&](auto zero) {
    if (d == 64) return f(zero, std::integral_constant<int, 64>{});
    if (d == 128) return f(zero, std::integral_constant<int, 128>{});
    fail("scaled_dot_product_attention: the tensor-core kernels take D = 64 or 128, got ", d);
  };
  if (dt == DType::bf16) return by_d(__nv_bfloat16{});
  if (dt == DType::f16) return by_d(__half{});
  if (dt == DType::f32) return by_d(float{});  // TF32: cuda/attention_tf32.cu
  fail("scaled_dot_product_attention: the tensor-core kernels take bf16, f16 or f32 (TF32), got ", dt);
}

template <class K>
void allow_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    NABLA_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

int compute_major(int device) {
  static std::atomic<int> cache[64];  // 0: not asked yet
  if (device < 0 || device >= 64) return 0;
  int major = cache[device].load(std::memory_order_relaxed);
  if (major == 0) {
    NABLA_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    cache[device].store(major, std::memory_order_relaxed);
  }
  return major;
}

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

unsigned grid_blocks(int64_t n, const char* what) {
  NABLA_CHECK(n <= 0x7fffffffLL, "scaled_dot_product_attention: ", n, " ", what,
              " blocks exceed the CUDA grid limit of 2^31 - 1");
  return static_cast<unsigned>(n);
}

}  // namespace

bool attention_mma_enabled() {
  const char* v = std::getenv("NABLA_ATTENTION_KERNEL");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0 || std::strcmp(v, "mma") == 0) return true;
  if (std::strcmp(v, "scalar") == 0) return false;
  fail("NABLA_ATTENTION_KERNEL=", v, ": expected auto, mma (tensor cores where they apply) or scalar");
}

bool attention_mma_supports(DType dtype, int64_t d, int device) {
  const bool type_ok = dtype == DType::bf16 || dtype == DType::f16 || (dtype == DType::f32 && tf32_enabled());
  return type_ok && (d == 64 || d == 128) && compute_major(device) >= 8;
}

bool attention_mma_takes(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out) {
  return attention_mma_enabled() && attention_mma_supports(q.dtype(), q.size(3), q.device().index) &&
         aligned16(q) && aligned16(k) && aligned16(v) && aligned16(out);
}

void attention_forward_mma(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                           const AttentionParams& a, Tensor& out, Tensor& lse) {
  DeviceGuard guard(q.device().index);
  const MmaParams p = mma_params(a);
  const uint8_t* m = mask.defined() ? static_cast<const uint8_t*>(mask.data_ptr()) : nullptr;
  visit_mma(q.dtype(), a.d, [&](auto zero, auto dc) {
    using T = decltype(zero);
    constexpr int D = decltype(dc)::value;
    if constexpr (std::is_same_v<T, float>) {
      tf32_forward(ptr<float>(q), ptr<float>(k), ptr<float>(v), m, p, a.b * a.h, D, ptr<float>(out),
                   ptr<float>(lse));
    } else {
      constexpr size_t smem = forward_smem<T, D>();
      auto kernel = mma_forward_kernel<T, D>;
      allow_smem(kernel, smem);
      const unsigned blocks = grid_blocks(a.b * a.h * ((a.tq + kFwdBq - 1) / kFwdBq), "forward");
      kernel<<<blocks, kThreads, smem, current_stream()>>>(ptr<T>(q), ptr<T>(k), ptr<T>(v), m, p, ptr<T>(out),
                                                           ptr<float>(lse));
      NABLA_CUDA_LAUNCH_CHECK();
    }
  });
}

void attention_backward_mma(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor& mask, const Tensor& out, const Tensor& lse,
                            const AttentionParams& a, Tensor& dq, Tensor& dk, Tensor& dv) {
  DeviceGuard guard(q.device().index);
  const MmaParams p = mma_params(a);
  const uint8_t* m = mask.defined() ? static_cast<const uint8_t*>(mask.data_ptr()) : nullptr;
  const int64_t rows = a.b * a.h * a.tq, n_dq = rows * a.d;
  Tensor dr = Tensor::empty({rows > 0 ? rows : 1}, DType::f32, q.device());
  Tensor dq_acc = Tensor::empty({n_dq > 0 ? n_dq : 1}, DType::f32, q.device());
  NABLA_CUDA_CHECK(cudaMemsetAsync(
      dq_acc.data_ptr(), 0, sizeof(float) * static_cast<size_t>(n_dq > 0 ? n_dq : 1), current_stream()));
  visit_mma(q.dtype(), a.d, [&](auto zero, auto dc) {
    using T = decltype(zero);
    constexpr int D = decltype(dc)::value;
    if (rows > 0) {
      mma_rowdot_kernel<T, D><<<grid_blocks((rows + 3) / 4, "row-dot"), kThreads, 0, current_stream()>>>(
          ptr<T>(dout), ptr<T>(out), rows, ptr<float>(dr));
      NABLA_CUDA_LAUNCH_CHECK();
    }
    const int64_t key_blocks = a.b * a.h * ((a.tk + kBwdBk - 1) / kBwdBk);
    if constexpr (std::is_same_v<T, float>) {
      tf32_backward_keys(ptr<float>(dout), ptr<float>(q), ptr<float>(k), ptr<float>(v), m, ptr<float>(lse),
                         ptr<float>(dr), p, a.b * a.h, D, ptr<float>(dq_acc), ptr<float>(dk), ptr<float>(dv));
    } else if (key_blocks > 0) {
      constexpr size_t smem = backward_smem<T, D>();
      auto kernel = mma_backward_kernel<T, D>;
      allow_smem(kernel, smem);
      kernel<<<grid_blocks(key_blocks, "backward"), kThreads, smem, current_stream()>>>(
          ptr<T>(dout), ptr<T>(q), ptr<T>(k), ptr<T>(v), m, ptr<float>(lse), ptr<float>(dr), p,
          ptr<float>(dq_acc), ptr<T>(dk), ptr<T>(dv));
      NABLA_CUDA_LAUNCH_CHECK();
    }
    if (n_dq > 0) {
      const int64_t blocks = std::min<int64_t>((n_dq + 255) / 256, 65535LL * 8);
      mma_dq_store_kernel<T><<<static_cast<unsigned>(blocks), 256, 0, current_stream()>>>(
          ptr<float>(dq_acc), n_dq, p.scale, ptr<T>(dq));
      NABLA_CUDA_LAUNCH_CHECK();
    }
  });
}

}  // namespace nabla::cuda
