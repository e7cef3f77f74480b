// CUDA kernels of multi_embedding_bag (ops/multi_embedding.h): F tables, fixed bags of n ids, one launch
// for all tables (up to kMaxTables per launch; more are done in groups).
//
//   forward   out[b, f, :] = s * sum_{k < n} W_f[ids[b, f, k], :]        s = 1 (sum) or 1 / n (mean)
//   backward  dst_f[v, :] += scale * s * sum_{(b, k) : ids[b, f, k] = v} g[b, f, :]
//             (scale 1 into zeroed gradients; -lr into the tables for the sparse SGD)
//
// The table pointers, row counts and row offsets travel in the kernel's parameters (a TableSet of at most
// kMaxTables entries, 1.5 KiB), so nothing is copied to the device per call.
//
// Forward: one thread per (b, f, group of V columns), flat over [B, F, D / V]: the threads of one bag read
// one table row, coalesced (D = 128 f32: one warp reads one 512-byte row as float4). f32 rows whose width
// and addresses allow it go 4 columns a thread (V = 4), everything else 1. Each thread checks the ids it
// reads: a bad id reads row 0 instead and the first one is reported to the op's asynchronous check
// (engine/async_check.h); no separate index-check launch, nothing read back.
//
// The forward's index arithmetic is 32-bit when the flat work count allows (2^30: DLRM's 65,536 x 26 x 32
// float4 groups is 54.5M), as 64-bit division is emulated on the GPU.
//
// Backward, deterministic, no atomics (as embedding_bag's): the key of position l = (b Fc + fc) n + k is
// first_row_fc + ids[b, f0 + fc, k], the tables' rows laid end to end (an out-of-range id gets the key
// `total`, sorted last and skipped, and is reported when a check id is given); one stable radix sort
// (cuda/sort.h) groups the positions of all tables by row, runs_of_sorted_keys finds where each run of
// equal keys starts; then one warp per run: its lanes split the row's columns and, for rows narrower than
// 32 column groups, the run's positions too (a Kaggle table of 3 rows takes 20,000 positions of a batch of
// 65,536: one thread walking them alone took 11 ms), the lanes' partial sums added by a fixed butterfly, so
// the result is deterministic (not bit-equal to the CPU kernel's sequential order). Accumulation in f32 for
// 16-bit types, the row read once and written once.
//
// Row-wise Adagrad: the same keys, sort and runs; one warp per run, lanes over columns (up to kRowCache
// columns a lane kept in registers) and positions, G summed over the run per column, the squares reduced
// by a warp butterfly (deterministic), state and row updated once.
#include <bit>
#include <type_traits>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/sort.h"
#include "ops/multi_embedding.h"

namespace nabla::cuda {
namespace {

constexpr int kMaxTables = 64;
// Flat work counts up to 2^30 use 32-bit index arithmetic (64-bit division is emulated on the GPU); the
// margin keeps the grid-stride loop's last increment inside int32.
constexpr int64_t kIndex32 = int64_t{1} << 30;

struct TableSet {
  void* w[kMaxTables];            // table (forward) or destination (backward) base pointers
  int64_t rows[kMaxTables];       // V_f
  int64_t first_row[kMaxTables];  // sum of V over the earlier tables of the group
};

__device__ __forceinline__ void report_bad_id(AsyncCheckRecord* rec, unsigned long long check_id,
                                              int64_t position, int64_t value) {
  if (check_id != 0ull && atomicCAS(&rec->id, 0ull, check_id) == 0ull) {
    rec->position = position;
    rec->value = value;
  }
}

// V consecutive elements of a row: float4 for V = 4 (f32 only), else one element.
template <class T, int V>
__device__ __forceinline__ void load_vec(const T* p, acc_t<T> (&a)[V]) {
  if constexpr (V == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    a[0] = q.x;
    a[1] = q.y;
    a[2] = q.z;
    a[3] = q.w;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) a[i] = load(p[i]);
  }
}
template <class T, int V>
__device__ __forceinline__ void store_vec(T* p, const acc_t<T> (&a)[V]) {
  if constexpr (V == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(a[0], a[1], a[2], a[3]);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = store<T>(a[i]);
  }
}

template <class T, int V, class I>
__global__ void multi_bag_forward(TableSet ts, const int64_t* __restrict__ ids, int64_t B, int64_t F,
                                  int64_t f0, int64_t Fc, int64_t n, int64_t D, bool mean,
                                  T* __restrict__ out, int64_t so, int64_t sf, unsigned long long check_id,
                                  AsyncCheckRecord* rec) {
  using A = acc_t<T>;
  const I Dv = static_cast<I>(D / V), Fci = static_cast<I>(Fc), total = static_cast<I>(B) * Fci * Dv;
  for (I e = blockIdx.x * static_cast<I>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<I>(blockDim.x) * gridDim.x) {
    const I cv = e % Dv, bf = e / Dv, fc = bf % Fci;
    const int64_t b = bf / Fci;
    const T* w = static_cast<const T*>(ts.w[fc]);
    const int64_t rows = ts.rows[fc];
    A acc[V];
#pragma unroll
    for (int i = 0; i < V; ++i) acc[i] = A(0);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t l = (b * F + f0 + fc) * n + k;
      int64_t v = ids[l];
      if (v < 0 || v >= rows) {
        if (cv == 0) report_bad_id(rec, check_id, l, v);
        v = 0;
      }
      A r[V];
      load_vec<T, V>(w + v * D + cv * V, r);
#pragma unroll
      for (int i = 0; i < V; ++i) acc[i] += r[i];
    }
    if (mean) {
      const A s = static_cast<A>(1.0 / static_cast<double>(n));
#pragma unroll
      for (int i = 0; i < V; ++i) acc[i] *= s;
    }
    store_vec<T, V>(out + b * so + (f0 + fc) * sf + cv * V, acc);
  }
}

// keys[l] = first_row[fc] + ids[b, f0 + fc, k] for the group's positions l = (b Fc + fc) n + k; `total`
// (sorted last, skipped) for an out-of-range id.
__global__ void multi_bag_keys(TableSet ts, const int64_t* __restrict__ ids, int64_t B, int64_t F, int64_t f0,
                               int64_t Fc, int64_t n, int64_t total, unsigned long long check_id,
                               AsyncCheckRecord* rec, int64_t* __restrict__ keys) {
  const int64_t L = B * Fc * n;
  for (int64_t l = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; l < L;
       l += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int32_t li = static_cast<int32_t>(l), n32 = static_cast<int32_t>(n),
                  Fc32 = static_cast<int32_t>(Fc);
    const int32_t k = li % n32, bf = li / n32, fc = bf % Fc32, b = bf / Fc32;
    const int64_t at = (b * F + f0 + fc) * n + k, v = ids[at];
    const bool ok = v >= 0 && v < ts.rows[fc];
    if (!ok) report_bad_id(rec, check_id, at, v);
    keys[l] = ok ? ts.first_row[fc] + v : total;
  }
}

// One warp per run of equal keys (runs_of_sorted_keys): lane = (ps, cl), cl < gp over the row's column
// groups of V, ps < P = 32 / gp over the run's positions (j0 + ps, j0 + ps + P, ...). Each lane sums its
// positions in increasing order, then an xor butterfly over ps adds the P partial sums (the same tree on
// every lane, so the result does not depend on scheduling) and ps = 0 adds scale times the sum into the row.
// Rows wider than 32 groups loop over tiles of 32 groups (P = 1).
template <class T, int V>
__global__ void multi_bag_backward_runs(TableSet ts, const T* __restrict__ g,
                                        const int64_t* __restrict__ skey, const int32_t* __restrict__ spos,
                                        const int32_t* __restrict__ starts, const int32_t* __restrict__ nruns,
                                        int64_t Fc, int64_t n, int64_t f0, int64_t D, int64_t s0, int64_t s1,
                                        double scale) {
  using A = acc_t<T>;
  const int lane = threadIdx.x & 31;
  const int64_t G = D / V;
  const int gp = lanes_per_position(G), P = 32 / gp, ps = lane / gp, cl = lane % gp;
  const int32_t n32 = static_cast<int32_t>(n), Fc32 = static_cast<int32_t>(Fc);  // positions are 32-bit
  const A s = static_cast<A>(scale);
  const int32_t R = nruns[0];
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; r < R; r += warps) {
    const int32_t j0 = starts[r], j1 = starts[r + 1];
    const int32_t fc = (spos[j0] / n32) % Fc32;
    T* row = static_cast<T*>(ts.w[fc]) + (skey[j0] - ts.first_row[fc]) * D;
    const T* gf = g + (f0 + fc) * s1;
    for (int64_t c0 = 0; c0 < G; c0 += gp) {  // uniform over the warp
      const int64_t cg = c0 + cl;
      A acc[V];
#pragma unroll
      for (int i = 0; i < V; ++i) acc[i] = A(0);
      if (cg < G) {
#pragma unroll 4
        for (int32_t p = j0 + ps; p < j1; p += P) {
          A v[V];
          load_vec<T, V>(gf + static_cast<int64_t>(spos[p] / n32 / Fc32) * s0 + cg * V, v);
#pragma unroll
          for (int i = 0; i < V; ++i) acc[i] += v[i];
        }
      }
      for (int o = gp; o < 32; o <<= 1)
#pragma unroll
        for (int i = 0; i < V; ++i) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
      if (ps == 0 && cg < G) {
        A d[V];
        load_vec<T, V>(row + cg * V, d);
#pragma unroll
        for (int i = 0; i < V; ++i) d[i] += s * acc[i];
        store_vec<T, V>(row + cg * V, d);
      }
    }
  }
}

constexpr int kRowCache = 8;  // columns a lane keeps in registers: rows up to 256 wide are summed once

struct StateSet {
  void* s[kMaxTables];  // the accumulators [V_f] of the group's tables
};

// Row-wise Adagrad, one warp per run: lane = (ps, cl) as above with gp lanes over the row's columns
// (column cl + k gp for k < kRowCache, kept in registers: gp = the smallest power of two >= D / kRowCache,
// at most 32) and P = 32 / gp over the run's positions; the P partial sums added by an xor butterfly over ps,
// the squares by one over cl (the same order on every lane); columns beyond kRowCache * 32 (rows wider than
// 256) are summed again where they are applied.
template <class T>
__global__ void multi_bag_rowwise_adagrad_runs(TableSet ts, StateSet ss, const T* __restrict__ g,
                                               const int64_t* __restrict__ skey,
                                               const int32_t* __restrict__ spos,
                                               const int32_t* __restrict__ starts,
                                               const int32_t* __restrict__ nruns, int64_t Fc, int64_t n,
                                               int64_t f0, int64_t D, int64_t s0, int64_t s1, double scale,
                                               double lr, double eps) {
  using A = acc_t<T>;
  const int lane = threadIdx.x & 31;
  const int gp = lanes_per_position((D + kRowCache - 1) / kRowCache), P = 32 / gp, ps = lane / gp,
            cl = lane % gp;
  const int32_t n32 = static_cast<int32_t>(n), Fc32 = static_cast<int32_t>(Fc);
  const A sc = static_cast<A>(scale);
  const int32_t R = nruns[0];
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; r < R; r += warps) {
    const int32_t j0 = starts[r], j1 = starts[r + 1];
    const int32_t fc = (spos[j0] / n32) % Fc32;
    const int64_t v = skey[j0] - ts.first_row[fc];
    const T* gf = g + (f0 + fc) * s1;
    A cache[kRowCache];
#pragma unroll
    for (int k = 0; k < kRowCache; ++k) cache[k] = A(0);
#pragma unroll 2
    for (int32_t p = j0 + ps; p < j1; p += P) {
      const T* gr = gf + static_cast<int64_t>(spos[p] / n32 / Fc32) * s0;
#pragma unroll
      for (int k = 0; k < kRowCache; ++k) {
        const int64_t c = k * gp + cl;
        if (c < D) cache[k] += load(gr[c]);
      }
    }
    A sq = A(0);
#pragma unroll
    for (int k = 0; k < kRowCache; ++k) {
      for (int o = gp; o < 32; o <<= 1) cache[k] += __shfl_xor_sync(0xffffffffu, cache[k], o);
      cache[k] *= sc;
      sq += cache[k] * cache[k];  // zero for columns past D
    }
    // Rows wider than kRowCache * 32 (gp = 32, P = 1): the remaining columns' run sums, summed twice.
    auto run_sum = [&](int64_t c) {
      A acc = A(0);
      for (int32_t p = j0; p < j1; ++p) acc += load(gf[static_cast<int64_t>(spos[p] / n32 / Fc32) * s0 + c]);
      return sc * acc;
    };
    for (int64_t c = kRowCache * 32 + lane; c < D; c += 32) {
      const A a = run_sum(c);
      sq += a * a;
    }
    for (int o = 1; o < gp; o <<= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    T* state = static_cast<T*>(ss.s[fc]);
    const A sum = load(state[v]) + sq / static_cast<A>(D);
    const A step = static_cast<A>(lr) / (sqrt(sum) + static_cast<A>(eps));
    __syncwarp();
    if (lane == 0) state[v] = store<T>(sum);
    T* row = static_cast<T*>(ts.w[fc]) + v * D;
    if (ps == 0) {
#pragma unroll
      for (int k = 0; k < kRowCache; ++k) {
        const int64_t c = k * gp + cl;
        if (c < D) row[c] = store<T>(load(row[c]) - step * cache[k]);
      }
    }
    for (int64_t c = kRowCache * 32 + lane; c < D; c += 32)
      row[c] = store<T>(load(row[c]) - step * run_sum(c));
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The groups of at most kMaxTables tables: f(f0, Fc, TableSet with rows and first rows filled, total rows).
template <class Fn>
void for_each_group(const std::vector<Tensor>& tables, Fn fn) {
  const int64_t F = static_cast<int64_t>(tables.size());
  for (int64_t f0 = 0; f0 < F; f0 += kMaxTables) {
    const int64_t Fc = std::min<int64_t>(kMaxTables, F - f0);
    TableSet ts{};
    int64_t total = 0;
    for (int64_t i = 0; i < Fc; ++i) {
      const Tensor& t = tables[f0 + i];
      ts.w[i] = t.data_ptr();
      ts.rows[i] = t.shape()[0];
      ts.first_row[i] = total;
      total += t.shape()[0];
    }
    fn(f0, Fc, ts, total);
  }
}

template <class T>
void forward_typed(const std::vector<Tensor>& tables, const Tensor& ids, bool mean, uint32_t check_id,
                   Tensor& out) {
  const int64_t B = ids.shape()[0], F = ids.shape()[1], n = ids.shape()[2], D = out.shape()[2];
  const int64_t so = out.stride(0), sf = out.stride(1);
  bool vec4 =
      std::is_same_v<T, float> && D % 4 == 0 && so % 4 == 0 && sf % 4 == 0 && aligned16(out.data_ptr());
  for (const Tensor& t : tables) vec4 = vec4 && aligned16(t.data_ptr());
  AsyncCheckRecord* rec = async_check_record(out.device().index);
  for_each_group(tables, [&](int64_t f0, int64_t Fc, const TableSet& ts, int64_t) {
    auto launch = [&](auto v, auto index) {
      constexpr int V = decltype(v)::value;
      multi_bag_forward<T, V, decltype(index)><<<grid_for(B * Fc * D / V), kBlock, 0, current_stream()>>>(
          ts, ptr<int64_t>(ids), B, F, f0, Fc, n, D, mean, ptr<T>(out), so, sf, check_id, rec);
    };
    const bool small = B * Fc * D <= kIndex32;
    if constexpr (std::is_same_v<T, float>) {
      if (vec4) {
        small ? launch(std::integral_constant<int, 4>{}, int32_t{})
              : launch(std::integral_constant<int, 4>{}, int64_t{});
        NABLA_CUDA_LAUNCH_CHECK();
        return;
      }
    }
    small ? launch(std::integral_constant<int, 1>{}, int32_t{})
          : launch(std::integral_constant<int, 1>{}, int64_t{});
    NABLA_CUDA_LAUNCH_CHECK();
  });
}

void multi_embedding_bag_cuda(const std::vector<Tensor>& tables, const Tensor& ids, BagMode mode,
                              uint32_t check_id, Tensor& out) {
  DeviceGuard g(out.device().index);
  if (out.numel() == 0) return;
  visit_cuda_float(out.dtype(), "multi_embedding_bag", [&](auto zero) {
    forward_typed<decltype(zero)>(tables, ids, mode == BagMode::mean, check_id, out);
  });
}

// The positions of one group of tables grouped by row: the keys (multi_bag_keys), their stable sort and
// the runs of equal rows (ids out of range sorted last and left out of the runs).
struct GroupedRuns {
  SortedByKey sorted;
  SortedRuns runs;
};
GroupedRuns group_runs(const TableSet& ts, const Tensor& ids, int64_t B, int64_t F, int64_t f0, int64_t Fc,
                       int64_t n, int64_t total, uint32_t check_id, AsyncCheckRecord* rec, Device device) {
  const int64_t L = B * Fc * n;
  Tensor keys = Tensor::empty({L}, DType::i64, device);
  multi_bag_keys<<<grid_for(L), kBlock, 0, current_stream()>>>(ts, ptr<int64_t>(ids), B, F, f0, Fc, n, total,
                                                               check_id, rec, ptr<int64_t>(keys));
  NABLA_CUDA_LAUNCH_CHECK();
  SortedByKey s = sort_positions_by_key(
      ptr<int64_t>(keys), L, static_cast<int>(std::bit_width(static_cast<uint64_t>(total))), device);
  SortedRuns runs = runs_of_sorted_keys(ptr<int64_t>(s.keys), L, total, device);
  return {std::move(s), std::move(runs)};
}

template <class T>
void backward_typed(const Tensor& grad, const Tensor& ids, double scale, uint32_t check_id,
                    std::vector<Tensor>& dst) {
  const int64_t B = ids.shape()[0], F = ids.shape()[1], n = ids.shape()[2], D = grad.shape()[2];
  const int64_t s0 = grad.stride(0), s1 = grad.stride(1);
  bool vec4 =
      std::is_same_v<T, float> && D % 4 == 0 && s0 % 4 == 0 && s1 % 4 == 0 && aligned16(grad.data_ptr());
  for (const Tensor& t : dst) vec4 = vec4 && aligned16(t.data_ptr());
  AsyncCheckRecord* rec = async_check_record(grad.device().index);
  for_each_group(dst, [&](int64_t f0, int64_t Fc, const TableSet& ts, int64_t total) {
    const int64_t L = B * Fc * n;
    NABLA_CHECK(L < (int64_t{1} << 31), "multi_embedding_bag backward: ", L,
                " positions in one group of tables, at most 2^31 - 1 on cuda");
    const GroupedRuns gr = group_runs(ts, ids, B, F, f0, Fc, n, total, check_id, rec, grad.device());
    const SortedByKey& s = gr.sorted;
    const SortedRuns& runs = gr.runs;
    auto launch = [&](auto v) {
      constexpr int V = decltype(v)::value;
      multi_bag_backward_runs<T, V><<<grid_for(L * 32), kBlock, 0, current_stream()>>>(
          ts, ptr<T>(grad), ptr<int64_t>(s.keys), ptr<int32_t>(s.positions), ptr<int32_t>(runs.starts),
          ptr<int32_t>(runs.count), Fc, n, f0, D, s0, s1, scale);
    };
    bool done = false;
    if constexpr (std::is_same_v<T, float>) {
      if (vec4) {
        launch(std::integral_constant<int, 4>{});
        done = true;
      }
    }
    if (!done) launch(std::integral_constant<int, 1>{});
    NABLA_CUDA_LAUNCH_CHECK();
  });
}

void multi_embedding_bag_backward_cuda(const Tensor& grad, const Tensor& ids, BagMode mode, double scale,
                                       uint32_t check_id, std::vector<Tensor>& dst) {
  DeviceGuard g(grad.device().index);
  if (grad.numel() == 0) return;
  const double s = mode == BagMode::mean ? 1.0 / static_cast<double>(ids.shape()[2]) * scale : scale;
  visit_cuda_float(grad.dtype(), "multi_embedding_bag backward",
                   [&](auto zero) { backward_typed<decltype(zero)>(grad, ids, s, check_id, dst); });
}

void multi_embedding_bag_rowwise_adagrad_cuda(const Tensor& grad, const Tensor& ids, BagMode mode, double lr,
                                              double eps, uint32_t check_id, std::vector<Tensor>& tables,
                                              std::vector<Tensor>& states) {
  DeviceGuard dg(grad.device().index);
  if (grad.numel() == 0) return;
  const int64_t B = ids.shape()[0], F = ids.shape()[1], n = ids.shape()[2], D = grad.shape()[2];
  const int64_t s0 = grad.stride(0), s1 = grad.stride(1);
  const double scale = mode == BagMode::mean ? 1.0 / static_cast<double>(n) : 1.0;
  AsyncCheckRecord* rec = async_check_record(grad.device().index);
  for_each_group(tables, [&](int64_t f0, int64_t Fc, const TableSet& ts, int64_t total) {
    const int64_t L = B * Fc * n;
    NABLA_CHECK(L < (int64_t{1} << 31), "multi_embedding_bag_sparse_rowwise_adagrad_: ", L,
                " positions in one group of tables, at most 2^31 - 1 on cuda");
    StateSet ss{};
    for (int64_t i = 0; i < Fc; ++i) ss.s[i] = states[f0 + i].data_ptr();
    const GroupedRuns gr = group_runs(ts, ids, B, F, f0, Fc, n, total, check_id, rec, grad.device());
    const SortedByKey& s = gr.sorted;
    const SortedRuns& runs = gr.runs;
    visit_cuda_float(grad.dtype(), "multi_embedding_bag rowwise adagrad", [&](auto zero) {
      using T = decltype(zero);
      multi_bag_rowwise_adagrad_runs<T><<<grid_for(L * 32), kBlock, 0, current_stream()>>>(
          ts, ss, ptr<T>(grad), ptr<int64_t>(s.keys), ptr<int32_t>(s.positions), ptr<int32_t>(runs.starts),
          ptr<int32_t>(runs.count), Fc, n, f0, D, s0, s1, scale, lr, eps);
      NABLA_CUDA_LAUNCH_CHECK();
    });
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(multi_embedding_bag_kernel, cuda, multi_embedding_bag_cuda);
NABLA_REGISTER_KERNEL(multi_embedding_bag_backward_kernel, cuda, multi_embedding_bag_backward_cuda);
NABLA_REGISTER_KERNEL(multi_embedding_bag_rowwise_adagrad_kernel, cuda,
                      multi_embedding_bag_rowwise_adagrad_cuda);

}  // namespace nabla::cuda
