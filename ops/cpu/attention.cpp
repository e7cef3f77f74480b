// CPU kernels of scaled_dot_product_attention (maths in ops/attention.h). f32 and f64; sums in the input's
// type (f64 for f64 gradient checks).
//
// Forward: OpenMP over the B H Tq query rows; each row computes its scores into a row buffer, the max and
//   log-sum-exp over the allowed keys, then out_i = sum_j P_ij M_ij / (1 - p) v_j.
// Backward: OpenMP over the B H heads (dk and dv of a head are written by one thread, no atomics); per query
//   row the scores and P are recomputed from q, k and the saved lse, then dv, dk and dq are accumulated.
#include <cmath>
#include <limits>
#include <vector>

#include "engine/random.h"
#include "ops/attention.h"
#include "ops/cpu/loops.h"

namespace nabla::ops::cpu {
namespace {

// Keys j < limit(i) are allowed by the causal rule (bottom-right aligned); tk when not causal.
inline int64_t causal_limit(const AttentionParams& p, int64_t i) {
  if (!p.causal) return p.tk;
  const int64_t lim = i + (p.tk - p.tq) + 1;
  return lim < 0 ? 0 : (lim > p.tk ? p.tk : lim);
}

// Scores of query row i against the allowed keys of one head into s[0, lim) (-inf where masked); returns
// the row max (-inf when nothing is allowed).
template <class T>
T row_scores(const T* qi, const T* kh, const uint8_t* mrow, const AttentionParams& p, int64_t lim, T* s) {
  const T sc = static_cast<T>(p.scale);
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < lim; ++j) {
    if (mrow && !mrow[j]) {
      s[j] = -std::numeric_limits<T>::infinity();
      continue;
    }
    const T* kj = kh + j * p.d;
    T acc = 0;
    for (int64_t c = 0; c < p.d; ++c) acc += qi[c] * kj[c];
    s[j] = acc * sc;
    mx = s[j] > mx ? s[j] : mx;
  }
  return mx;
}

void attention_forward_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                           const AttentionParams& p, Tensor& out, Tensor& lse) {
  visit_float(q.dtype(), "scaled_dot_product_attention", [&](auto zero) {
    using T = decltype(zero);
    const T *pq = base<T>(q), *pk = base<T>(k), *pv = base<T>(v);
    const uint8_t* pm = mask.defined() ? static_cast<const uint8_t*>(mask.data_ptr()) : nullptr;
    T *po = base<T>(out), *pl = base<T>(lse);
    const int64_t rows = p.b * p.h * p.tq, d = p.d, tk = p.tk;
    const T keep_scale = p.dropout_p >= 1.0 ? T(0) : static_cast<T>(1.0 / (1.0 - p.dropout_p));
#pragma omp parallel
    {
      std::vector<T> s(static_cast<size_t>(tk > 0 ? tk : 1));
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t bh = r / p.tq, i = r % p.tq, bi = bh / p.h;
        const T* kh = pk + bh * tk * d;
        const T* vh = pv + bh * tk * d;
        const uint8_t* mrow = pm ? pm + bi * tk : nullptr;
        const int64_t lim = causal_limit(p, i);
        T* oi = po + r * d;
        for (int64_t c = 0; c < d; ++c) oi[c] = 0;
        const T mx = row_scores(pq + r * d, kh, mrow, p, lim, s.data());
        if (mx == -std::numeric_limits<T>::infinity()) {  // no allowed key
          pl[r] = mx;
          continue;
        }
        T sum = 0;
        for (int64_t j = 0; j < lim; ++j) {
          s[j] = std::exp(s[j] - mx);  // exp(-inf) = 0 for masked keys
          sum += s[j];
        }
        const T l = mx + std::log(sum);
        pl[r] = l;
        const T inv = T(1) / sum;
        const int64_t row_base = r * tk;  // ((b H + h) Tq + i) Tk: the dropout element index of (i, 0)
        for (int64_t j = 0; j < lim; ++j) {
          T w = s[j] * inv;
          if (w == T(0)) continue;
          if (p.dropout_p > 0.0)
            w = philox_uniform(p.seed, p.offset, row_base + j) >= p.dropout_p ? w * keep_scale : T(0);
          const T* vj = vh + j * d;
          for (int64_t c = 0; c < d; ++c) oi[c] += w * vj[c];
        }
      }
    }
  });
}

void attention_backward_cpu(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor& mask, const Tensor& out, const Tensor& lse,
                            const AttentionParams& p, Tensor& dq, Tensor& dk, Tensor& dv) {
  visit_float(q.dtype(), "scaled_dot_product_attention", [&](auto zero) {
    using T = decltype(zero);
    const T *pq = base<T>(q), *pk = base<T>(k), *pv = base<T>(v), *pdo = base<T>(dout), *po = base<T>(out),
            *pl = base<T>(lse);
    const uint8_t* pm = mask.defined() ? static_cast<const uint8_t*>(mask.data_ptr()) : nullptr;
    T *pdq = base<T>(dq), *pdk = base<T>(dk), *pdv = base<T>(dv);
    const int64_t heads = p.b * p.h, d = p.d, tk = p.tk, tq = p.tq;
    const T sc = static_cast<T>(p.scale);
    const T keep_scale = p.dropout_p >= 1.0 ? T(0) : static_cast<T>(1.0 / (1.0 - p.dropout_p));
#pragma omp parallel
    {
      std::vector<T> s(static_cast<size_t>(tk > 0 ? tk : 1));
#pragma omp for schedule(static)
      for (int64_t bh = 0; bh < heads; ++bh) {
        const int64_t bi = bh / p.h;
        const T* kh = pk + bh * tk * d;
        const T* vh = pv + bh * tk * d;
        T* dkh = pdk + bh * tk * d;
        T* dvh = pdv + bh * tk * d;
        for (int64_t x = 0; x < tk * d; ++x) dkh[x] = dvh[x] = 0;
        const uint8_t* mrow = pm ? pm + bi * tk : nullptr;
        for (int64_t i = 0; i < tq; ++i) {
          const int64_t r = bh * tq + i;
          const T* qi = pq + r * d;
          const T* doi = pdo + r * d;
          T* dqi = pdq + r * d;
          for (int64_t c = 0; c < d; ++c) dqi[c] = 0;
          const T l = pl[r];
          if (l == -std::numeric_limits<T>::infinity()) continue;  // no allowed key: zero gradients
          const int64_t lim = causal_limit(p, i);
          row_scores(qi, kh, mrow, p, lim, s.data());
          T dr = 0;
          for (int64_t c = 0; c < d; ++c) dr += doi[c] * po[r * d + c];
          for (int64_t j = 0; j < lim; ++j) {
            const T pij = std::exp(s[j] - l);
            if (pij == T(0)) continue;
            T keep = T(1);
            if (p.dropout_p > 0.0)
              keep = philox_uniform(p.seed, p.offset, r * tk + j) >= p.dropout_p ? keep_scale : T(0);
            const T* vj = vh + j * d;
            const T* kj = kh + j * d;
            T* dvj = dvh + j * d;
            T* dkj = dkh + j * d;
            T dpd = 0;  // dout_i . v_j
            for (int64_t c = 0; c < d; ++c) {
              dvj[c] += pij * keep * doi[c];
              dpd += doi[c] * vj[c];
            }
            const T ds = pij * (dpd * keep - dr) * sc;
            for (int64_t c = 0; c < d; ++c) {
              dqi[c] += ds * kj[c];
              dkj[c] += ds * qi[c];
            }
          }
        }
      }
    }
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(attention_forward_kernel, cpu, attention_forward_cpu);
NABLA_REGISTER_KERNEL(attention_backward_kernel, cpu, attention_backward_cpu);

}  // namespace nabla::ops::cpu
