// TF32 tensor-core kernels of scaled_dot_product_attention for f32 inputs with D = 64 or 128 (sm_80+), taken
// when the engine's TF32 switch is on (cuda::tf32_enabled(), as f32 GEMMs); with it off, f32 keeps the exact
// scalar kernels of cuda/attention.cu. Same algorithm as the 16-bit kernels (cuda/attention_mma.cu: forward
// with online softmax, backward per K/V tile with dQ through f32 atomics), on mma.sync.m16n8k8.tf32 with the
// operands rounded to TF32 (cvt.rna) and P, dS kept in f32 until that rounding.
//
// ldmatrix moves 16-bit elements only, so fragments come from shared memory with plain 32-bit loads; rows are
// padded to D + 4 floats (stride = 4 mod 32 words), which makes the loads conflict-free:
//   A (16x8, g = lane / 4, t = lane % 4): a0 = (g, t), a1 = (g + 8, t), a2 = (g, t + 4), a3 = (g + 8, t + 4)
//     from a row-major [row][k] tile: banks 4g + t, distinct;
//   B (8x8): b0 = (k t, n g), b1 = (k t + 4, n g) from a row-major [n][k] tile (K for Q K^T): the same banks.
// A C fragment holds (row g, cols 2t, 2t + 1), not the A layout's (g, t), (g, t + 4). Instead of shuffling,
// the products whose k is a sum over keys or queries (P V, P^T dO, dS^T Q, dS K) permute that k inside each
// 8-wide step: slot t is element 2t and slot t + 4 is element 2t + 1, for A and B alike (a sum does not care
// about order). Then a0 = c0, a1 = c2, a2 = c1, a3 = c3 of the same C tile, and B reads rows 2t and 2t + 1
// of a [k][n] tile (V, dO, Q, K) at column g: banks 8t + g (stride = 4 mod 16 words), distinct.
//
// Tiles: forward 64 query rows (4 warps x 16) x 32 keys per K/V tile (f32 tiles are twice the bytes);
// backward 64 keys (4 warps x 16) x 32 query rows for D 64, 16 for D 128.
#include <cmath>
#include <cstdint>

#include "cuda/attention_mma.cuh"
#include "cuda/runtime.h"

namespace nabla::cuda::attn {
namespace {

constexpr int kTfFwdBk = 32;  // forward: keys per K/V tile

template <int D>
constexpr int tf32_bwd_bq() {
  return D == 64 ? 32 : 16;
}

template <int D>
constexpr size_t tf32_forward_smem() {
  return sizeof(float) * (kFwdBq + 4 * kTfFwdBk) * row_stride<float, D>() + 2 * kTfFwdBk;
}

template <int D>
constexpr size_t tf32_backward_smem() {
  constexpr int bq = tf32_bwd_bq<D>();
  return sizeof(float) * (2 * kBwdBk * row_stride<float, D>() + 4 * bq * row_stride<float, D>() +
                          kBwdBk * (bq + 4) + 4 * bq) +
         kBwdBk;
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    tf32_forward_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                        const uint8_t* __restrict__ mask, MmaParams p, float* __restrict__ out,
                        float* __restrict__ lse) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  constexpr int S = row_stride<float, D>();
  constexpr int BK = kTfFwdBk;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  float* q_s = reinterpret_cast<float*>(smem_raw);              // [64][S]
  float* k_s = q_s + kFwdBq * S;                                // [2][BK][S]
  float* v_s = k_s + 2 * BK * S;                                // [2][BK][S]
  uint8_t* m_s = reinterpret_cast<uint8_t*>(v_s + 2 * BK * S);  // [2][BK]: key < Tk and not padded
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t n_qt = (p.tq + kFwdBq - 1) / kFwdBq;
  const int64_t bh = blockIdx.x / n_qt, b = bh / p.h;
  const int64_t row0 = (n_qt - 1 - blockIdx.x % n_qt) * kFwdBq;
  const float* qh = q + bh * p.tq * D;
  const float* kh = k + bh * p.tk * D;
  const float* vh = v + bh * p.tk * D;
  const uint8_t* mrow = mask ? mask + b * p.tk : nullptr;

  const int64_t last_row = min(row0 + kFwdBq, p.tq) - 1;
  const int n_kt = static_cast<int>((causal_limit(p, last_row) + BK - 1) / BK);
  const int64_t block_lim = causal_limit(p, row0);
  const int64_t r_lo = row0 + warp * 16 + g, r_hi = r_lo + 8;
  const int64_t lim_lo = r_lo < p.tq ? causal_limit(p, r_lo) : 0;
  const int64_t lim_hi = r_hi < p.tq ? causal_limit(p, r_hi) : 0;

  auto load_kv = [&](int kt, int buf) {
    const int64_t j0 = static_cast<int64_t>(kt) * BK;
    load_rows<float, D>(k_s + buf * BK * S, kh, j0, p.tk, BK);
    load_rows<float, D>(v_s + buf * BK * S, vh, j0, p.tk, BK);
    for (int x = threadIdx.x; x < BK; x += kThreads) {
      const int64_t j = j0 + x;
      m_s[buf * BK + x] = j < p.tk && (!mrow || mrow[j]) ? 1 : 0;
    }
  };
  load_rows<float, D>(q_s, qh, row0, p.tq, kFwdBq);
  if (n_kt > 0) load_kv(0, 0);
  cp_async_commit();

  uint32_t qf[D / 8][4];  // A fragments (TF32) of the warp's 16 rows, k-step ks = dims 8 ks .. + 7
  float o[D / 8][4];
#pragma unroll
  for (int x = 0; x < D / 8; ++x) o[x][0] = o[x][1] = o[x][2] = o[x][3] = 0.0f;
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;

  for (int kt = 0; kt < n_kt; ++kt) {
    const int buf = kt & 1;
    if (kt + 1 < n_kt) {
      load_kv(kt + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (kt == 0) {
      const float* qr = q_s + (warp * 16 + g) * S + t;
#pragma unroll
      for (int ks = 0; ks < D / 8; ++ks) {
        qf[ks][0] = to_tf32(qr[8 * ks]);
        qf[ks][1] = to_tf32(qr[8 * S + 8 * ks]);
        qf[ks][2] = to_tf32(qr[8 * ks + 4]);
        qf[ks][3] = to_tf32(qr[8 * S + 8 * ks + 4]);
      }
    }
    const float* kb = k_s + buf * BK * S;
    const float* vb = v_s + buf * BK * S;
    const uint8_t* mb = m_s + buf * BK;
    const int64_t j0 = static_cast<int64_t>(kt) * BK;

    // S = Q K^T: B (k = dim t / t + 4, n = key g) from K's row g.
    float s[BK / 8][4];
#pragma unroll
    for (int x = 0; x < BK / 8; ++x) s[x][0] = s[x][1] = s[x][2] = s[x][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < D / 8; ++ks) {
#pragma unroll
      for (int nt = 0; nt < BK / 8; ++nt) {
        const float* kr = kb + (nt * 8 + g) * S + 8 * ks + t;
        mma1688_tf32(s[nt], qf[ks], to_tf32(kr[0]), to_tf32(kr[4]));
      }
    }
    const bool need_mask = mrow != nullptr || j0 + BK > block_lim;
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
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
    float mx_lo = m_lo, mx_hi = m_hi;
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      mx_lo = fmaxf(mx_lo, fmaxf(s[nt][0], s[nt][1]));
      mx_hi = fmaxf(mx_hi, fmaxf(s[nt][2], s[nt][3]));
    }
    mx_lo = fmaxf(mx_lo, __shfl_xor_sync(kFull, mx_lo, 1));
    mx_lo = fmaxf(mx_lo, __shfl_xor_sync(kFull, mx_lo, 2));
    mx_hi = fmaxf(mx_hi, __shfl_xor_sync(kFull, mx_hi, 1));
    mx_hi = fmaxf(mx_hi, __shfl_xor_sync(kFull, mx_hi, 2));
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
    for (int nt = 0; nt < BK / 8; ++nt) {
      s[nt][0] = ex2(s[nt][0] - base_lo), s[nt][1] = ex2(s[nt][1] - base_lo);
      s[nt][2] = ex2(s[nt][2] - base_hi), s[nt][3] = ex2(s[nt][3] - base_hi);
      l_lo += s[nt][0] + s[nt][1];
      l_hi += s[nt][2] + s[nt][3];
    }
    if (p.p64 > 0.0) {
#pragma unroll
      for (int nt = 0; nt < BK / 8; ++nt) {
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
    // O += P V with the k-slot permutation (slot t = key 2t, slot t + 4 = key 2t + 1 of n-tile nt).
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      const uint32_t a[4] = {to_tf32(s[nt][0]), to_tf32(s[nt][2]), to_tf32(s[nt][1]), to_tf32(s[nt][3])};
      const float* vr = vb + (nt * 8 + 2 * t) * S + g;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) mma1688_tf32(o[dt], a, to_tf32(vr[dt * 8]), to_tf32(vr[S + dt * 8]));
    }
    __syncthreads();
  }
  cp_async_wait<0>();

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
    float* orow = out + (bh * p.tq + row) * D;
#pragma unroll
    for (int x = 0; x < D / 8; ++x)
      *reinterpret_cast<float2*>(orow + x * 8 + 2 * t) =
          make_float2(o[x][2 * half] * inv, o[x][2 * half + 1] * inv);
    if (t == 0) lse[bh * p.tq + row] = l > 0.0f ? m * kLn2 + logf(l) : -INFINITY;
  }
#else
  __trap();
#endif
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    tf32_backward_kernel(const float* __restrict__ dout, const float* __restrict__ q,
                         const float* __restrict__ k, const float* __restrict__ v,
                         const uint8_t* __restrict__ mask, const float* __restrict__ lse,
                         const float* __restrict__ dr, MmaParams p, float* __restrict__ dq_acc,
                         float* __restrict__ dk, float* __restrict__ dv) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  constexpr int S = row_stride<float, D>();
  constexpr int BQ = tf32_bwd_bq<D>();
  constexpr int DS = BQ + 4;  // dS^T row stride: 36 or 20 words, = 4 mod 16
  extern __shared__ __align__(16) unsigned char smem_raw[];
  float* k_s = reinterpret_cast<float*>(smem_raw);            // [64][S]
  float* v_s = k_s + kBwdBk * S;                              // [64][S]
  float* q_s = v_s + kBwdBk * S;                              // [2][BQ][S]
  float* do_s = q_s + 2 * BQ * S;                             // [2][BQ][S]
  float* ds_s = do_s + 2 * BQ * S;                            // [64 keys][DS]
  float* lse2_s = ds_s + kBwdBk * DS;                         // [2][BQ]
  float* dr_s = lse2_s + 2 * BQ;                              // [2][BQ]
  uint8_t* ok_s = reinterpret_cast<uint8_t*>(dr_s + 2 * BQ);  // [64]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t n_kt = (p.tk + kBwdBk - 1) / kBwdBk;
  const int64_t bh = blockIdx.x / n_kt, b = bh / p.h;
  const int64_t j0 = (blockIdx.x % n_kt) * kBwdBk;
  const float* qh = q + bh * p.tq * D;
  const float* doh = dout + bh * p.tq * D;
  float* dkh = dk + bh * p.tk * D;
  float* dvh = dv + bh * p.tk * D;

  bool my_ok = false;
  if (threadIdx.x < kBwdBk) {
    const int64_t j = j0 + threadIdx.x;
    my_ok = j < p.tk && (!mask || mask[b * p.tk + j]);
    ok_s[threadIdx.x] = my_ok ? 1 : 0;
  }
  const bool any_key = __syncthreads_or(my_ok);
  int64_t q_begin = p.causal ? j0 - (p.tk - p.tq) : 0;
  if (q_begin < 0) q_begin = 0;
  const int64_t n_qt = (p.tq + BQ - 1) / BQ;
  const int64_t qt0 = q_begin / BQ;
  if (!any_key || qt0 >= n_qt) {
    for (int x = threadIdx.x; x < kBwdBk * D; x += kThreads) {
      const int64_t j = j0 + x / D;
      if (j < p.tk) dkh[j * D + x % D] = dvh[j * D + x % D] = 0.0f;
    }
    return;
  }

  load_rows<float, D>(k_s, k + bh * p.tk * D, j0, p.tk, kBwdBk);
  load_rows<float, D>(v_s, v + bh * p.tk * D, j0, p.tk, kBwdBk);
  auto load_q = [&](int64_t qt, int buf) {
    const int64_t i0 = qt * BQ;
    load_rows<float, D>(q_s + buf * BQ * S, qh, i0, p.tq, BQ);
    load_rows<float, D>(do_s + buf * BQ * S, doh, i0, p.tq, BQ);
    for (int x = threadIdx.x; x < BQ; x += kThreads) {
      const int64_t i = i0 + x;
      const float l = i < p.tq ? lse[bh * p.tq + i] : -INFINITY;
      lse2_s[buf * BQ + x] = l == -INFINITY ? INFINITY : l * kLog2e;
      dr_s[buf * BQ + x] = i < p.tq ? dr[bh * p.tq + i] : 0.0f;
    }
  };
  load_q(qt0, 0);
  cp_async_commit();

  float dk_acc[D / 8][4], dv_acc[D / 8][4];
#pragma unroll
  for (int x = 0; x < D / 8; ++x)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk_acc[x][e] = dv_acc[x][e] = 0.0f;
  const int kw = warp * 16;
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
    const float* qb = q_s + buf * BQ * S;
    const float* dob = do_s + buf * BQ * S;
    const float* lse2b = lse2_s + buf * BQ;
    const float* drb = dr_s + buf * BQ;
    const int64_t i0 = qt * BQ;

    // S^T = K Q^T, dP^T = V dO^T: A = the warp's K / V rows, B = Q / dO rows (n = query g, k = dim t, t + 4).
    float st[BQ / 8][4], dpt[BQ / 8][4];
#pragma unroll
    for (int x = 0; x < BQ / 8; ++x)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[x][e] = dpt[x][e] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < D / 8; ++ks) {
      const float* kr = k_s + (kw + g) * S + 8 * ks + t;
      const float* vr = v_s + (kw + g) * S + 8 * ks + t;
      const uint32_t ka[4] = {to_tf32(kr[0]), to_tf32(kr[8 * S]), to_tf32(kr[4]), to_tf32(kr[8 * S + 4])};
      const uint32_t va[4] = {to_tf32(vr[0]), to_tf32(vr[8 * S]), to_tf32(vr[4]), to_tf32(vr[8 * S + 4])};
#pragma unroll
      for (int nt = 0; nt < BQ / 8; ++nt) {
        const float* qr = qb + (nt * 8 + g) * S + 8 * ks + t;
        const float* dr_ = dob + (nt * 8 + g) * S + 8 * ks + t;
        mma1688_tf32(st[nt], ka, to_tf32(qr[0]), to_tf32(qr[4]));
        mma1688_tf32(dpt[nt], va, to_tf32(dr_[0]), to_tf32(dr_[4]));
      }
    }
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
    // dV += (P^T M) dO, dK += dS^T Q: k = queries of n-tile nt, permuted (slot t = query 2t, t + 4 = 2t + 1).
#pragma unroll
    for (int nt = 0; nt < BQ / 8; ++nt) {
      const uint32_t pa[4] = {to_tf32(st[nt][0]), to_tf32(st[nt][2]), to_tf32(st[nt][1]), to_tf32(st[nt][3])};
      const uint32_t sa[4] = {to_tf32(dpt[nt][0]), to_tf32(dpt[nt][2]), to_tf32(dpt[nt][1]),
                              to_tf32(dpt[nt][3])};
      const float* dor = dob + (nt * 8 + 2 * t) * S + g;
      const float* qr = qb + (nt * 8 + 2 * t) * S + g;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        mma1688_tf32(dv_acc[dt], pa, to_tf32(dor[dt * 8]), to_tf32(dor[S + dt * 8]));
        mma1688_tf32(dk_acc[dt], sa, to_tf32(qr[dt * 8]), to_tf32(qr[S + dt * 8]));
      }
    }
    // dS^T -> shared [key][query] (f32).
#pragma unroll
    for (int nt = 0; nt < BQ / 8; ++nt) {
      *reinterpret_cast<float2*>(ds_s + (kw + g) * DS + nt * 8 + 2 * t) = make_float2(dpt[nt][0], dpt[nt][1]);
      *reinterpret_cast<float2*>(ds_s + (kw + g + 8) * DS + nt * 8 + 2 * t) =
          make_float2(dpt[nt][2], dpt[nt][3]);
    }
    __syncthreads();
    // dQ += dS K in 16 x 32 pieces; k = the block's 64 keys in steps of 8, permuted (slot t = key 2t, t + 4 =
    // 2t + 1): a0 = dS(query g, key 2t) = ds_s[2t][g], a1 = (g + 8, 2t), a2 = (g, 2t + 1), a3 = (g + 8, 2t +
    // 1); b0 = K[2t][dim g], b1 = K[2t + 1][dim g].
    constexpr int kDc = D / 32;
    for (int item = warp; item < (BQ / 16) * kDc; item += kThreads / 32) {
      const int mt = item / kDc, dc = item % kDc;
      float acc[4][4];
#pragma unroll
      for (int x = 0; x < 4; ++x) acc[x][0] = acc[x][1] = acc[x][2] = acc[x][3] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < kBwdBk / 8; ++ks) {
        const float* dsr = ds_s + (ks * 8 + 2 * t) * DS + mt * 16 + g;
        const uint32_t a[4] = {to_tf32(dsr[0]), to_tf32(dsr[8]), to_tf32(dsr[DS]), to_tf32(dsr[DS + 8])};
        const float* kr = k_s + (ks * 8 + 2 * t) * S + dc * 32 + g;
#pragma unroll
        for (int x = 0; x < 4; ++x) mma1688_tf32(acc[x], a, to_tf32(kr[x * 8]), to_tf32(kr[S + x * 8]));
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
    __syncthreads();
  }

#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t j = half ? key_hi : key_lo;
    if (j >= p.tk) continue;
#pragma unroll
    for (int x = 0; x < D / 8; ++x) {
      const int c = x * 8 + 2 * t;
      *reinterpret_cast<float2*>(dkh + j * D + c) =
          make_float2(dk_acc[x][2 * half] * p.scale, dk_acc[x][2 * half + 1] * p.scale);
      *reinterpret_cast<float2*>(dvh + j * D + c) = make_float2(dv_acc[x][2 * half], dv_acc[x][2 * half + 1]);
    }
  }
#else
  __trap();
#endif
}

template <class K>
void allow_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    NABLA_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

template <int D>
void forward_d(const float* q, const float* k, const float* v, const uint8_t* mask, const MmaParams& p,
               int64_t bh, float* out, float* lse) {
  constexpr size_t smem = tf32_forward_smem<D>();
  allow_smem(tf32_forward_kernel<D>, smem);
  const int64_t blocks = bh * ((p.tq + kFwdBq - 1) / kFwdBq);
  NABLA_CHECK(blocks <= 0x7fffffffLL, "scaled_dot_product_attention: ", blocks,
              " forward blocks exceed 2^31 - 1");
  tf32_forward_kernel<D>
      <<<static_cast<unsigned>(blocks), kThreads, smem, current_stream()>>>(q, k, v, mask, p, out, lse);
  NABLA_CUDA_LAUNCH_CHECK();
}

template <int D>
void backward_d(const float* dout, const float* q, const float* k, const float* v, const uint8_t* mask,
                const float* lse, const float* dr, const MmaParams& p, int64_t bh, float* dq_acc, float* dk,
                float* dv) {
  constexpr size_t smem = tf32_backward_smem<D>();
  allow_smem(tf32_backward_kernel<D>, smem);
  const int64_t blocks = bh * ((p.tk + kBwdBk - 1) / kBwdBk);
  if (blocks == 0) return;
  NABLA_CHECK(blocks <= 0x7fffffffLL, "scaled_dot_product_attention: ", blocks,
              " backward blocks exceed 2^31 - 1");
  tf32_backward_kernel<D><<<static_cast<unsigned>(blocks), kThreads, smem, current_stream()>>>(
      dout, q, k, v, mask, lse, dr, p, dq_acc, dk, dv);
  NABLA_CUDA_LAUNCH_CHECK();
}

}  // namespace

void tf32_forward(const float* q, const float* k, const float* v, const uint8_t* mask, const MmaParams& p,
                  int64_t bh, int d, float* out, float* lse) {
  if (d == 64) return forward_d<64>(q, k, v, mask, p, bh, out, lse);
  if (d == 128) return forward_d<128>(q, k, v, mask, p, bh, out, lse);
  fail("scaled_dot_product_attention: the TF32 kernels take D = 64 or 128, got ", d);
}

void tf32_backward_keys(const float* dout, const float* q, const float* k, const float* v,
                        const uint8_t* mask, const float* lse, const float* dr, const MmaParams& p,
                        int64_t bh, int d, float* dq_acc, float* dk, float* dv) {
  if (d == 64) return backward_d<64>(dout, q, k, v, mask, lse, dr, p, bh, dq_acc, dk, dv);
  if (d == 128) return backward_d<128>(dout, q, k, v, mask, lse, dr, p, bh, dq_acc, dk, dv);
  fail("scaled_dot_product_attention: the TF32 kernels take D = 64 or 128, got ", d);
}

}  // namespace nabla::cuda::attn
