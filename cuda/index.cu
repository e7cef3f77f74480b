// CUDA kernels of the index family (ops/index.h): index_select, index_add (its backward), gather and
// scatter_add, plus the device radix sort and scan of cuda/sort.h that the accumulating kernels use.
// cat, stack, split, chunk, masked_fill and one_hot need no kernel of their own (copy / where / eq).
//
//   index_select  out[o, i, :] = x[o, idx[i], :]            ([outer, n|k, inner], contiguous)
//   index_add     dst[o, idx[i], :] += src[o, i, :]         summed in increasing i per destination row
//   gather        out[p] = x[p with coordinate d replaced by idx[p]]                     (any strides)
//   scatter_add   dst[p with coordinate d replaced by idx[p]] += src[p], increasing position along d
//
// index_select moves bytes, whatever the dtype: each row of inner * itemsize bytes is copied in the widest
// unit (16, 8, 4, 2 or 1 bytes) that divides the row and both base addresses, one unit per thread over
// the flat output (coalesced on both sides; 32-bit index maths when the sizes allow). gather is one thread
// per output element through the strided element-wise launcher, also by element size.
//
// The two add kernels are deterministic and use no atomics on the data (the design choice asked of this
// backend): the source positions are grouped by destination with a stable radix sort (sort_positions_by_key,
// LSD, 8 bits per pass, ceil(bits(n - 1) / 8) passes; block-local stable ranks from __match_any_sync and
// per-warp digit counts, a digit-major histogram and an exclusive scan between passes, no CUB). The first
// thread of each run of equal keys then owns that destination and adds the run's rows serially, in
// increasing source position: the order of the CPU kernel (its counting sort), so f32 results agree with
// the CPU bit for bit up to FMA contraction. index_add launches one thread per (outer, sorted slot, column):
// consecutive threads cover consecutive columns of one source row (coalesced), threads of non-leading slots
// exit at once. Sorting costs O(k) per pass, independent of n (a vocabulary of 10^6 takes 3 passes).
//
// scatter_add has two paths with the CPU's summation order:
//   - len (index.size(d)) <= 64 or at least 16384 "rest" coordinates (the coordinates other than d):
//     one thread per rest coordinate walks j = 0..len-1 as the CPU does (distinct rest coordinates never
//     share a destination). This is the gather-backward case of losses (len 1).
//   - otherwise (few long rows, e.g. a 1-D scatter of 10^5 values) the serial walk would leave the GPU
//     idle, so positions p = rest * len + j are sorted by the key rest * n + idx[p] and each run's leader
//     sums its run in increasing j.
// Integer and bool dtypes add in their own type (bool adds as logical or), as on the CPU; 16-bit floats
// accumulate in f32 and round once per destination (the serial scatter path reads and writes dst at every
// step, so it rounds to the type after each add).
#include <bit>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/sort.h"
#include "ops/index.h"

namespace nabla::cuda {
namespace {

// ---------------------------------------------------------------------------------------------------
// Exclusive scan (i32, in place): tiles of 4096 (1024 threads x 4), warp-shuffle scans, block totals
// scanned recursively, then added back.
constexpr int kScanThreads = 1024;
constexpr int kScanItems = 4;
constexpr int64_t kScanTile = kScanThreads * kScanItems;

__global__ void scan_tiles(int32_t* __restrict__ data, int64_t n, int32_t* __restrict__ tile_sums) {
  __shared__ int32_t warp_sums[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t base = blockIdx.x * kScanTile + static_cast<int64_t>(threadIdx.x) * kScanItems;
  int32_t v[kScanItems];
  int32_t sum = 0;
#pragma unroll
  for (int q = 0; q < kScanItems; ++q) {
    v[q] = base + q < n ? data[base + q] : 0;
    sum += v[q];
  }
  int32_t incl = sum;
#pragma unroll
  for (int d = 1; d < 32; d *= 2) {
    const int32_t t = __shfl_up_sync(0xffffffffu, incl, d);
    if (lane >= d) incl += t;
  }
  if (lane == 31) warp_sums[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    int32_t w = warp_sums[lane];
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
      const int32_t t = __shfl_up_sync(0xffffffffu, w, d);
      if (lane >= d) w += t;
    }
    warp_sums[lane] = w;  // inclusive over warps
  }
  __syncthreads();
  int32_t run = incl - sum + (warp > 0 ? warp_sums[warp - 1] : 0);
#pragma unroll
  for (int q = 0; q < kScanItems; ++q) {
    if (base + q < n) data[base + q] = run;
    run += v[q];
  }
  if (tile_sums && threadIdx.x == 0) tile_sums[blockIdx.x] = warp_sums[31];
}

__global__ void scan_add_tile_offsets(int32_t* __restrict__ data, int64_t n,
                                      const int32_t* __restrict__ tile_offsets) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    data[i] += tile_offsets[i / kScanTile];
}

// ---------------------------------------------------------------------------------------------------
// Stable LSD radix sort of (key, position) pairs; 256-element tiles, one element per thread.
constexpr int kSortBlock = 256;
constexpr int kSortWarps = kSortBlock / 32;

__device__ __forceinline__ int digit_of(int64_t key, int shift) {
  return static_cast<int>((static_cast<uint64_t>(key) >> shift) & 255u);
}

// counts[digit * tiles + tile] = how many keys of the tile have that digit (digit-major, so that the
// exclusive scan of counts gives each (digit, tile) its first output slot).
__global__ void radix_histogram(const int64_t* __restrict__ keys, int64_t m, int shift,
                                int32_t* __restrict__ counts, int64_t tiles) {
  __shared__ int32_t hist[256];
  hist[threadIdx.x] = 0;
  __syncthreads();
  const int64_t i = blockIdx.x * static_cast<int64_t>(kSortBlock) + threadIdx.x;
  if (i < m) atomicAdd(&hist[digit_of(keys[i], shift)], 1);  // integer counts: order does not matter
  __syncthreads();
  counts[threadIdx.x * tiles + blockIdx.x] = hist[threadIdx.x];
}

// Each element's slot = offsets[digit, tile] + (elements of the same digit earlier in the tile): earlier
// warps first (prefix over per-warp counts), then lower lanes (__match_any_sync + popc). Stable.
__global__ void radix_scatter(const int64_t* __restrict__ keys_in, const int32_t* __restrict__ pos_in,
                              int64_t m, int shift, const int32_t* __restrict__ offsets, int64_t tiles,
                              int64_t* __restrict__ keys_out, int32_t* __restrict__ pos_out) {
  __shared__ int32_t warp_counts[kSortWarps][256];
#pragma unroll
  for (int w = 0; w < kSortWarps; ++w) warp_counts[w][threadIdx.x] = 0;
  __syncthreads();
  const int64_t i = blockIdx.x * static_cast<int64_t>(kSortBlock) + threadIdx.x;
  const bool valid = i < m;
  const int64_t key = valid ? keys_in[i] : 0;
  const int digit = valid ? digit_of(key, shift) : 256;  // invalid lanes form their own group
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const unsigned same = __match_any_sync(0xffffffffu, digit);
  const int rank = __popc(same & ((1u << lane) - 1u));
  if (valid && rank == 0) warp_counts[warp][digit] = __popc(same);
  __syncthreads();
  {
    int32_t run = 0;
#pragma unroll
    for (int w = 0; w < kSortWarps; ++w) {
      const int32_t c = warp_counts[w][threadIdx.x];
      warp_counts[w][threadIdx.x] = run;
      run += c;
    }
  }
  __syncthreads();
  if (valid) {
    const int64_t slot = offsets[digit * tiles + blockIdx.x] + warp_counts[warp][digit] + rank;
    keys_out[slot] = key;
    pos_out[slot] = pos_in ? pos_in[i] : static_cast<int32_t>(i);
  }
}

// ---------------------------------------------------------------------------------------------------
// index_select: row copies in `U`-sized units.
template <class U, class I>
__global__ void index_select_units(const U* __restrict__ x, const int64_t* __restrict__ idx,
                                   U* __restrict__ out, I total, I row_units, I k, I n) {
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<I>(blockDim.x) * gridDim.x) {
    const I c = e % row_units, r = e / row_units;
    const I i = r % k, o = r / k;
    out[e] = x[(o * n + static_cast<I>(idx[i])) * row_units + c];
  }
}

template <class U>
void launch_index_select(const void* x, const int64_t* idx, void* out, int64_t outer, int64_t k, int64_t n,
                         int64_t row_units) {
  const int64_t total = outer * k * row_units, x_units = outer * n * row_units;
  const U* px = static_cast<const U*>(x);
  U* po = static_cast<U*>(out);
  if (total < INT32_MAX && x_units < INT32_MAX)
    index_select_units<U, uint32_t><<<grid_for(total), kBlock, 0, current_stream()>>>(
        px, idx, po, static_cast<uint32_t>(total), static_cast<uint32_t>(row_units), static_cast<uint32_t>(k),
        static_cast<uint32_t>(n));
  else
    index_select_units<U, int64_t>
        <<<grid_for(total), kBlock, 0, current_stream()>>>(px, idx, po, total, row_units, k, n);
  NABLA_CUDA_LAUNCH_CHECK();
}

void index_select_cuda(const Tensor& x, const Tensor& index, Tensor& out, int64_t outer, int64_t n,
                       int64_t inner) {
  DeviceGuard g(x.device().index);
  const int64_t k = index.numel();
  if (outer == 0 || k == 0 || inner == 0) return;
  const int64_t row_bytes = inner * static_cast<int64_t>(x.itemsize());
  const uintptr_t bits = reinterpret_cast<uintptr_t>(x.data_ptr()) |
                         reinterpret_cast<uintptr_t>(out.data_ptr()) | static_cast<uintptr_t>(row_bytes);
  int unit = 16;
  while (unit > 1 && bits % unit != 0) unit /= 2;
  const int64_t* pi = ptr<int64_t>(index);
  const int64_t row_units = row_bytes / unit;
  switch (unit) {
    case 16:
      launch_index_select<uint4>(x.data_ptr(), pi, out.data_ptr(), outer, k, n, row_units);
      break;
    case 8:
      launch_index_select<uint2>(x.data_ptr(), pi, out.data_ptr(), outer, k, n, row_units);
      break;
    case 4:
      launch_index_select<uint32_t>(x.data_ptr(), pi, out.data_ptr(), outer, k, n, row_units);
      break;
    case 2:
      launch_index_select<uint16_t>(x.data_ptr(), pi, out.data_ptr(), outer, k, n, row_units);
      break;
    default:
      launch_index_select<uint8_t>(x.data_ptr(), pi, out.data_ptr(), outer, k, n, row_units);
      break;
  }
}

// ---------------------------------------------------------------------------------------------------
// index_add: sorted slots j of the k source rows; the leading slot of each run of equal destinations sums
// the run in increasing source position.
template <class T>
__global__ void index_add_runs(const T* __restrict__ src, const int64_t* __restrict__ skey,
                               const int32_t* __restrict__ spos, T* __restrict__ dst, int64_t outer,
                               int64_t k, int64_t n, int64_t inner) {
  using A = acc_t<T>;
  const int64_t total = outer * k * inner;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = e % inner, r = e / inner;
    const int64_t j = r % k, o = r / k;
    const int64_t v = skey[j];
    if (j > 0 && skey[j - 1] == v) continue;  // not the first of its run
    T* d = dst + (o * n + v) * inner + c;
    const T* s = src + o * k * inner + c;
    A acc = load(*d);
    for (int64_t p = j; p < k && skey[p] == v; ++p) acc = static_cast<A>(acc + load(s[spos[p] * inner]));
    *d = store<T>(acc);
  }
}

template <class T>
void index_add_typed(const Tensor& src, const SortedByKey& s, Tensor& dst, int64_t outer, int64_t k,
                     int64_t n, int64_t inner) {
  index_add_runs<T><<<grid_for(outer * k * inner), kBlock, 0, current_stream()>>>(
      ptr<T>(src), ptr<int64_t>(s.keys), ptr<int32_t>(s.positions), ptr<T>(dst), outer, k, n, inner);
  NABLA_CUDA_LAUNCH_CHECK();
}

int bits_for(int64_t max_key) { return static_cast<int>(std::bit_width(static_cast<uint64_t>(max_key))); }

void index_add_cuda(const Tensor& src, const Tensor& index, Tensor& dst, int64_t outer, int64_t n,
                    int64_t inner) {
  DeviceGuard g(dst.device().index);
  const int64_t k = index.numel();
  if (k == 0 || outer == 0 || inner == 0) return;
  const SortedByKey s = sort_positions_by_key(ptr<int64_t>(index), k, bits_for(n - 1), dst.device());
  visit_all(dst.dtype(),
            [&](auto zero) { index_add_typed<decltype(zero)>(src, s, dst, outer, k, n, inner); });
}

// ---------------------------------------------------------------------------------------------------
// gather: by element size (a pure move).
template <class U>
void gather_typed(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  const U* px = ptr<U>(x);
  const int64_t* pi = ptr<int64_t>(index);
  U* po = ptr<U>(out);
  // Walk x with stride 0 along dim; the index value supplies that coordinate.
  Strides xs = x.strides();
  const int64_t sd = xs[dim];
  xs[dim] = 0;
  launch_elementwise<3>(
      index.shape(), {&out.strides(), &index.strides(), &xs},
      [=] __device__(const std::array<int64_t, 3>& o) { po[o[0]] = px[o[2] + pi[o[1]] * sd]; });
}

void gather_cuda(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  DeviceGuard g(x.device().index);
  NABLA_CHECK(index.dtype() == DType::i64, "gather: cuda kernel expects i64 indices, got ", index.dtype());
  switch (x.itemsize()) {
    case 1:
      gather_typed<uint8_t>(x, dim, index, out);
      break;
    case 2:
      gather_typed<uint16_t>(x, dim, index, out);
      break;
    case 4:
      gather_typed<uint32_t>(x, dim, index, out);
      break;
    case 8:
      gather_typed<uint64_t>(x, dim, index, out);
      break;
    default:
      fail("gather: unsupported element size ", x.itemsize());
  }
}

// ---------------------------------------------------------------------------------------------------
// scatter_add.
Strides drop(const Strides& s, int64_t d) {
  Strides r = s;
  r.erase(r.begin() + d);
  return r;
}

// One thread per rest coordinate, walking the scattered dim in order (the CPU loop).
template <class T>
__global__ void scatter_add_rows(T* __restrict__ dst, const int64_t* __restrict__ idx,
                                 const T* __restrict__ src, int64_t rest, int64_t len, OffsetCalc<3> calc,
                                 int64_t dd, int64_t di, int64_t ds) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < rest;
       r += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const std::array<int64_t, 3> o = calc.get(r);
    for (int64_t j = 0; j < len; ++j) {
      T* d = dst + o[0] + idx[o[1] + j * di] * dd;
      *d = store<T>(load(*d) + load(src[o[2] + j * ds]));
    }
  }
}

// key of position p = r * len + j:  r * n + idx[r, j]  (destination, rest-major).
__global__ void scatter_keys(const int64_t* __restrict__ idx, int64_t m, int64_t len, OffsetCalc<3> calc,
                             int64_t di, int64_t n, int64_t* __restrict__ keys) {
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < m;
       p += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t r = p / len, j = p % len;
    keys[p] = r * n + idx[calc.get(r)[1] + j * di];
  }
}

template <class T>
__global__ void scatter_add_runs(T* __restrict__ dst, const T* __restrict__ src,
                                 const int64_t* __restrict__ skey, const int32_t* __restrict__ spos,
                                 int64_t m, int64_t len, int64_t n, OffsetCalc<3> calc, int64_t dd,
                                 int64_t ds) {
  using A = acc_t<T>;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < m;
       j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t key = skey[j];
    if (j > 0 && skey[j - 1] == key) continue;
    const int64_t r = key / n, v = key % n;
    const std::array<int64_t, 3> o = calc.get(r);
    T* d = dst + o[0] + v * dd;
    const T* s = src + o[2];
    A acc = load(*d);
    for (int64_t p = j; p < m && skey[p] == key; ++p)
      acc = static_cast<A>(acc + load(s[(static_cast<int64_t>(spos[p]) - r * len) * ds]));
    *d = store<T>(acc);
  }
}

constexpr int64_t kScatterSerialLen = 64;
constexpr int64_t kScatterManyRows = 16384;

template <class T>
void scatter_add_typed(Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t len = index.shape()[dim], m = index.numel(), rest = m / len, n = dst.shape()[dim];
  const int64_t dd = dst.strides()[dim], di = index.strides()[dim], ds = src.strides()[dim];
  const Shape rest_shape = [&] {
    Shape s = index.shape();
    s.erase(s.begin() + dim);
    return s;
  }();
  const Strides sd = drop(dst.strides(), dim), si = drop(index.strides(), dim), ss = drop(src.strides(), dim);
  const OffsetCalc<3> calc = make_offset_calc<3>(rest_shape, {&sd, &si, &ss});
  T* pd = ptr<T>(dst);
  const T* ps = ptr<T>(src);
  const int64_t* pi = ptr<int64_t>(index);
  if (len <= kScatterSerialLen || rest >= kScatterManyRows) {
    scatter_add_rows<T>
        <<<grid_for(rest), kBlock, 0, current_stream()>>>(pd, pi, ps, rest, len, calc, dd, di, ds);
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  NABLA_CHECK(rest <= INT64_MAX / n, "scatter_add: ", rest, " rows of ", n,
              " destinations overflow the sort key");
  Tensor keys = Tensor::empty({m}, DType::i64, dst.device());
  scatter_keys<<<grid_for(m), kBlock, 0, current_stream()>>>(pi, m, len, calc, di, n, ptr<int64_t>(keys));
  NABLA_CUDA_LAUNCH_CHECK();
  const SortedByKey s = sort_positions_by_key(ptr<int64_t>(keys), m, bits_for(rest * n - 1), dst.device());
  scatter_add_runs<T><<<grid_for(m), kBlock, 0, current_stream()>>>(
      pd, ps, ptr<int64_t>(s.keys), ptr<int32_t>(s.positions), m, len, n, calc, dd, ds);
  NABLA_CUDA_LAUNCH_CHECK();
}

void scatter_add_cuda(Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  DeviceGuard g(dst.device().index);
  NABLA_CHECK(index.dtype() == DType::i64, "scatter_add: cuda kernel expects i64 indices, got ",
              index.dtype());
  if (index.numel() == 0 || index.shape()[dim] == 0) return;
  visit_all(dst.dtype(), [&](auto zero) { scatter_add_typed<decltype(zero)>(dst, dim, index, src); });
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
void exclusive_scan_i32(int32_t* data, int64_t n, Device device) {
  if (n <= 0) return;
  const int64_t tiles = (n + kScanTile - 1) / kScanTile;
  if (tiles == 1) {
    scan_tiles<<<1, kScanThreads, 0, current_stream()>>>(data, n, nullptr);
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  Tensor sums = Tensor::empty({tiles}, DType::i32, device);
  scan_tiles<<<static_cast<unsigned>(tiles), kScanThreads, 0, current_stream()>>>(data, n,
                                                                                  ptr<int32_t>(sums));
  NABLA_CUDA_LAUNCH_CHECK();
  exclusive_scan_i32(ptr<int32_t>(sums), tiles, device);
  scan_add_tile_offsets<<<grid_for(n), kBlock, 0, current_stream()>>>(data, n, ptr<int32_t>(sums));
  NABLA_CUDA_LAUNCH_CHECK();
}

namespace {
// head[j] = 1 when slot j starts a run (its key differs from the slot before) of a key below `skip`.
__global__ void run_heads(const int64_t* __restrict__ skey, int64_t m, int64_t skip,
                          int32_t* __restrict__ head) {
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < m;
       j += static_cast<int64_t>(blockDim.x) * gridDim.x)
    head[j] = skey[j] != skip && (j == 0 || skey[j - 1] != skey[j]) ? 1 : 0;
}
// rank = the exclusive scan of head: a head writes its slot at its rank; the last slot below `skip` writes
// the end and the count.
__global__ void run_starts(const int64_t* __restrict__ skey, const int32_t* __restrict__ rank, int64_t m,
                           int64_t skip, int32_t* __restrict__ starts, int32_t* __restrict__ count) {
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < m;
       j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t key = skey[j];
    if (key == skip) continue;
    const bool head = j == 0 || skey[j - 1] != key;
    if (head) starts[rank[j]] = static_cast<int32_t>(j);
    if (j == m - 1 || skey[j + 1] == skip) {
      const int32_t runs = rank[j] + (head ? 1 : 0);
      starts[runs] = static_cast<int32_t>(j + 1);
      count[0] = runs;
    }
  }
}
}  // namespace

SortedRuns runs_of_sorted_keys(const int64_t* sorted_keys, int64_t m, int64_t skip, Device device) {
  NABLA_CHECK(m >= 0 && m < INT32_MAX, "cuda runs_of_sorted_keys: ", m, " keys (at most 2^31 - 2)");
  SortedRuns out{Tensor::empty({m + 1}, DType::i32, device), Tensor::empty({1}, DType::i32, device)};
  NABLA_CUDA_CHECK(cudaMemsetAsync(out.count.data_ptr(), 0, sizeof(int32_t), current_stream()));
  if (m == 0) return out;
  Tensor rank = Tensor::empty({m}, DType::i32, device);
  run_heads<<<grid_for(m), kBlock, 0, current_stream()>>>(sorted_keys, m, skip, ptr<int32_t>(rank));
  NABLA_CUDA_LAUNCH_CHECK();
  exclusive_scan_i32(ptr<int32_t>(rank), m, device);
  run_starts<<<grid_for(m), kBlock, 0, current_stream()>>>(sorted_keys, ptr<int32_t>(rank), m, skip,
                                                           ptr<int32_t>(out.starts), ptr<int32_t>(out.count));
  NABLA_CUDA_LAUNCH_CHECK();
  return out;
}

SortedByKey sort_positions_by_key(const int64_t* keys, int64_t m, int key_bits, Device device) {
  NABLA_CHECK(m >= 0 && m < INT32_MAX, "cuda sort: ", m, " keys (at most 2^31 - 2 are supported)");
  SortedByKey out{Tensor::empty({m}, DType::i64, device), Tensor::empty({m}, DType::i32, device)};
  if (m == 0) return out;
  const int64_t tiles = (m + kSortBlock - 1) / kSortBlock;
  const int passes = key_bits <= 8 ? 1 : (key_bits + 7) / 8;
  Tensor counts = Tensor::empty({256 * tiles}, DType::i32, device);
  // Ping-pong buffers, arranged so that the last pass writes `out`.
  Tensor spare_keys, spare_pos;
  if (passes > 1) {
    spare_keys = Tensor::empty({m}, DType::i64, device);
    spare_pos = Tensor::empty({m}, DType::i32, device);
  }
  const int64_t* kin = keys;
  const int32_t* pin = nullptr;  // the first pass reads positions 0..m-1 implicitly
  for (int pass = 0; pass < passes; ++pass) {
    const bool to_out = (passes - 1 - pass) % 2 == 0;
    int64_t* kout = ptr<int64_t>(to_out ? out.keys : spare_keys);
    int32_t* pout = ptr<int32_t>(to_out ? out.positions : spare_pos);
    const int shift = 8 * pass;
    radix_histogram<<<static_cast<unsigned>(tiles), kSortBlock, 0, current_stream()>>>(
        kin, m, shift, ptr<int32_t>(counts), tiles);
    NABLA_CUDA_LAUNCH_CHECK();
    exclusive_scan_i32(ptr<int32_t>(counts), 256 * tiles, device);
    radix_scatter<<<static_cast<unsigned>(tiles), kSortBlock, 0, current_stream()>>>(
        kin, pin, m, shift, ptr<int32_t>(counts), tiles, kout, pout);
    NABLA_CUDA_LAUNCH_CHECK();
    kin = kout;
    pin = pout;
  }
  return out;
}

// ---- index_check: the asynchronous range check of engine/async_check.h ----------------------------------
// One thread per value (grid-stride), coalesced; a bad value becomes 0 in the output and the first thread
// to claim the record (64-bit compare-and-swap on its id) writes where and what it was. Which of several
// bad values is reported depends on scheduling; that one is bad is all the message promises.
template <class I>
__global__ void index_check_values(const I* __restrict__ in, int64_t* __restrict__ out, int64_t n,
                                   int64_t size, int64_t allowed, unsigned long long id,
                                   AsyncCheckRecord* rec) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t v = static_cast<int64_t>(in[i]);
    const bool ok = v == allowed || (v >= 0 && v < size);
    out[i] = ok ? v : 0;
    if (!ok && atomicCAS(&rec->id, 0ull, id) == 0ull) {
      rec->position = i;
      rec->value = v;
    }
  }
}

void index_check_cuda(const Tensor& index, Tensor& out, int64_t size, int64_t allowed, uint32_t check_id) {
  DeviceGuard g(index.device().index);
  const int64_t n = index.numel();
  AsyncCheckRecord* rec = async_check_record(index.device().index);
  if (index.dtype() == DType::i32) {
    index_check_values<int32_t><<<grid_for(n), kBlock, 0, current_stream()>>>(
        ptr<int32_t>(index), ptr<int64_t>(out), n, size, allowed, check_id, rec);
  } else {
    index_check_values<int64_t><<<grid_for(n), kBlock, 0, current_stream()>>>(
        ptr<int64_t>(index), ptr<int64_t>(out), n, size, allowed, check_id, rec);
  }
  NABLA_CUDA_LAUNCH_CHECK();
}

NABLA_REGISTER_KERNEL(index_check_kernel, cuda, index_check_cuda);

NABLA_REGISTER_KERNEL(index_select_kernel, cuda, index_select_cuda);
NABLA_REGISTER_KERNEL(index_add_kernel, cuda, index_add_cuda);
NABLA_REGISTER_KERNEL(gather_kernel, cuda, gather_cuda);
NABLA_REGISTER_KERNEL(scatter_add_kernel, cuda, scatter_add_cuda);

}  // namespace nabla::cuda
