// Parity cases of the index family (cuda/index.cu; cat/stack/split/chunk/masked_fill/one_hot run on the
// copy, where and eq kernels). The shapes reach every path of the CUDA kernels:
//   index_select  16/8/4/2/1-byte copy units (row bytes and base alignment), outer > 1, non-contiguous
//                 and offset inputs, i32 / 0-D indices, bf16 and i64 data;
//   index_add     (index_select's backward) repeated indices; 1, 2 and 3 radix passes (n <= 256,
//                 n <= 65536, n > 65536); more than one scan tile (k > 4096 / 256 tiles -> recursive scan);
//   gather        any strides, index larger than x along dim, smaller elsewhere, 1/2/4/8-byte elements;
//   scatter_add   (and gather's backward) the serial-row path (len <= 64) and the sorted path (len > 64
//                 with few rows), non-contiguous src and index, src larger than index, integer data.
// Index tensors hold repeated values on purpose; the add kernels must agree with the CPU's order.
#include "parity.h"

namespace nabla {
namespace {
using test::parity_randn;
using test::parity_uniform;
using In = const std::vector<Tensor>&;

Tensor ids(const std::vector<double>& v, const Shape& s, DType dt = DType::i64) {
  return from_vector(v, s, {.dtype = dt});
}
// Random indices in [0, hi) (many repeats when numel > hi).
Tensor rand_ids(int64_t hi, const Shape& s, DType dt = DType::i64) {
  Generator g{test::next_seed(), 0};
  return randint(0, hi, s, {.dtype = dt}, &g);
}

// ---- joining and splitting ----
NABLA_PARITY(cat, middle_dim_noncontiguous) {
  EXPECT_PARITY(
      [](In in) {
        return cat({in[0], in[1], in[2].transpose(0, 2)}, 1);
      },
      {parity_randn({2, 3, 5}), parity_randn({2, 1, 5}), parity_randn({5, 7, 2})});
}
NABLA_PARITY(cat, last_dim_bf16_and_large) {
  EXPECT_PARITY(
      [](In in) {
        Tensor a = cat({in[0].to(DType::bf16), in[1].t().to(DType::bf16)}, -1).to(DType::f32);
        return cat({sum(a, {0}), sum(cat({in[2], in[2]}, 0), {0})});
      },
      {parity_randn({33, 17}), parity_randn({31, 33}), parity_randn({300, 31})},
      {.atol = 1e-2, .rtol = 1e-2});
}
NABLA_PARITY(stack, middle_dim_noncontiguous) {
  EXPECT_PARITY(
      [](In in) {
        return stack({in[0], in[1], in[2].t()}, 1);
      },
      {parity_randn({3, 4}), parity_randn({3, 4}), parity_randn({4, 3})});
}
NABLA_PARITY(stack, last_dim) {
  EXPECT_PARITY(
      [](In in) {
        return stack({in[0] * 2.0, in[1]}, -1);
      },
      {parity_randn({5, 7}), parity_randn({5, 7})});
}
NABLA_PARITY(split, uneven_last_piece) {
  EXPECT_PARITY(
      [](In in) {
        auto p = split(in[0], 3, 1);
        return cat({p[0].reshape({-1}) * 1.0, p[1].reshape({-1}) * -2.0, p[2].reshape({-1}) * 3.0});
      },
      {parity_randn({2, 7, 3})});
}
NABLA_PARITY(split, sizes_of_transposed) {
  EXPECT_PARITY(
      [](In in) {
        auto p = split(in[0].t(), std::vector<int64_t>{1, 0, 4}, 0);
        return cat({p[0] * 3.0, p[1], p[2] * -1.0}, 0);
      },
      {parity_randn({6, 5})});
}
NABLA_PARITY(chunk, fewer_pieces) {
  EXPECT_PARITY(
      [](In in) {
        auto p = chunk(in[0], 4, -1);  // 10 / 4 -> pieces of 3: 3, 3, 3, 1
        return p[0] * 1.0 + p[1] * 2.0 + p[2] * 3.0 + p[3].expand({5, 3}) * 4.0;
      },
      {parity_randn({5, 10})});
}

// ---- index_select (forward: copy units; backward: index_add) ----
NABLA_PARITY(index_select, dim0_repeated_16byte_rows) {
  // inner 64 f32 = 256 bytes: 16-byte units; outer 1; 500 indices into 37 rows: long runs.
  EXPECT_PARITY([](In in) { return index_select(in[0], 0, in[1]); },
                {parity_randn({37, 64}), rand_ids(37, {500})});
}
NABLA_PARITY(index_select, middle_dim_8byte_rows) {
  // [5, 40, 6]: inner 6 f32 = 24 bytes (8-byte units), outer 5.
  EXPECT_PARITY([](In in) { return index_select(in[0], 1, in[1]); },
                {parity_randn({5, 40, 6}), rand_ids(40, {77})});
}
NABLA_PARITY(index_select, last_dim_noncontiguous_i32_index) {
  // dim -1 of a transposed input: inner 1 (4-byte units), outer 31; i32 indices.
  EXPECT_PARITY([](In in) { return index_select(in[0].t(), -1, in[1]); },
                {parity_randn({23, 31}), rand_ids(23, {45}, DType::i32)});
}
NABLA_PARITY(index_select, offset_view_unaligned) {
  // A contiguous view starting one element in: rows of 16 bytes, but the base is only 4-byte aligned.
  EXPECT_PARITY(
      [](In in) {
        return index_select(in[0].reshape({-1}).narrow(0, 1, 200).view({50, 4}), 0, in[1]);
      },
      {parity_randn({201}), rand_ids(50, {64})});
}
NABLA_PARITY(index_select, zero_dim_index) {
  EXPECT_PARITY([](In in) { return index_select(in[0], 1, in[1]); }, {parity_randn({4, 9, 3}), ids({7}, {})});
}
NABLA_PARITY(index_select, bf16_odd_rows_and_i64_values) {
  // bf16 rows of 5 (10 bytes: 2-byte units), bool rows of 3 (1-byte units), i64 rows (8-byte units). Values
  // only: the CPU cannot run index_add on 16-bit floats.
  EXPECT_PARITY(
      [](In in) {
        Tensor xb = in[0].detach().to(DType::bf16);
        Tensor xi = (in[0].detach() * 100.0).to(DType::i64);
        Tensor xm = gt(in[0].detach().narrow(1, 0, 3), scalar_like(0.0, in[0]));
        return index_select(xb, 0, in[1]).to(DType::f32) + index_select(xi, 0, in[1]).to(DType::f32) * 0.01 +
               cat({index_select(xm, 0, in[1]).to(DType::f32), zeros({40, 2}, {.device = in[0].device()})},
                   1);
      },
      {parity_randn({19, 5}, false), rand_ids(19, {40})});
}
NABLA_PARITY(index_select, two_radix_passes_many_scan_tiles) {
  // n = 1000 (10 bits: 2 passes); k = 5000 (20 sort tiles -> 5120 counters: two scan tiles).
  EXPECT_PARITY([](In in) { return index_select(in[0], 0, in[1]); },
                {parity_randn({1000, 33}), rand_ids(1000, {5000})});
}
NABLA_PARITY(index_select, three_radix_passes) {
  // n = 70000 (17 bits: 3 passes); 600 distinct rows spread over [7, 66596], each hit about 40 times.
  EXPECT_PARITY(
      [](In in) {
        Tensor idx = add(mul(in[1], scalar_like(111.0, in[1])), scalar_like(7.0, in[1]));
        return index_select(in[0], 0, idx);
      },
      {parity_randn({70000, 3}), rand_ids(600, {24000})});
}
NABLA_PARITY(index_select, outer_rows_large_k) {
  // outer 3, inner 1, k = 9000 (36 tiles; index_add on [3, 9000, 1]).
  EXPECT_PARITY([](In in) { return index_select(in[0], 1, in[1]); },
                {parity_randn({3, 300}), rand_ids(300, {9000})});
}

// ---- gather (forward) and its backward through scatter_add ----
NABLA_PARITY(gather, dim1_larger_index) {
  // index longer than x along dim (12 > 9), repeated; backward: scatter_add serial rows (len 12).
  EXPECT_PARITY([](In in) { return gather(in[0], 1, in[1]); }, {parity_randn({6, 9}), rand_ids(9, {6, 12})});
}
NABLA_PARITY(gather, dim0_smaller_index_noncontiguous) {
  EXPECT_PARITY([](In in) { return gather(in[0].t(), 0, in[1]); },
                {parity_randn({7, 5}), rand_ids(5, {4, 3})});
}
NABLA_PARITY(gather, three_dims_transposed_index) {
  EXPECT_PARITY([](In in) { return gather(in[0], 2, in[1].transpose(0, 1)); },
                {parity_randn({4, 3, 8}), rand_ids(8, {3, 4, 11})});
}
NABLA_PARITY(gather, sorted_backward_long_rows) {
  // len 500 > 64 with 3 rows: scatter_add takes the sorted path (keys up to 150: one pass).
  EXPECT_PARITY([](In in) { return gather(in[0], 1, in[1]); },
                {parity_randn({3, 50}), rand_ids(50, {3, 500})});
}
NABLA_PARITY(gather, one_dim_huge_sorted_backward) {
  // 1-D: one row of 100000 positions into 70000 (3 passes, 391 tiles, recursive scan).
  EXPECT_PARITY([](In in) { return gather(in[0], 0, in[1]); },
                {parity_randn({70000}), rand_ids(70000, {100000})});
}
NABLA_PARITY(gather, element_sizes) {
  // 1-byte (bool), 2-byte (f16), 8-byte (f64) elements; values only for the 16-bit part.
  EXPECT_PARITY(
      [](In in) {
        Tensor x = in[0];
        Tensor m = gt(x.detach(), scalar_like(0.0, x));
        return gather(x.to(DType::f64), 1, in[1]).to(DType::f32) + gather(m, 1, in[1]).to(DType::f32) +
               gather(x.detach().to(DType::f16), 1, in[1]).to(DType::f32);
      },
      {parity_randn({5, 8}), rand_ids(8, {5, 6})}, {.atol = 2e-3, .rtol = 2e-3});
}

// ---- scatter_add (forward and backward) ----
NABLA_PARITY(scatter_add, serial_rows_src_larger_noncontiguous) {
  // index [4, 10] (repeats) into x [4, 6] along dim 1; src [12, 5] used through .t() -> [5, 12] > index.
  EXPECT_PARITY([](In in) { return scatter_add(in[0], 1, in[2], in[1].t()); },
                {parity_randn({4, 6}), parity_randn({12, 5}), rand_ids(6, {4, 10})});
}
NABLA_PARITY(scatter_add, dim0_transposed_index) {
  EXPECT_PARITY([](In in) { return scatter_add(in[0], 0, in[2].t(), in[1]); },
                {parity_randn({5, 7}), parity_randn({9, 7}), rand_ids(5, {7, 9})});
}
NABLA_PARITY(scatter_add, sorted_path_long_rows) {
  // len 300 > 64, 3 rows: sorted path; keys < 3 * 40.
  EXPECT_PARITY([](In in) { return scatter_add(in[0], 1, in[2], in[1]); },
                {parity_randn({3, 40}), parity_randn({3, 300}), rand_ids(40, {3, 300})});
}
NABLA_PARITY(scatter_add, sorted_path_strided_3d) {
  // dim 0 of a [200, 2, 3] index viewed through permute: rows (2 x 3) with non-unit strides, len 200.
  EXPECT_PARITY(
      [](In in) {
        return scatter_add(in[0], 0, in[2].permute({2, 0, 1}), in[1].permute({2, 0, 1}));
      },
      {parity_randn({9, 2, 3}), parity_randn({2, 3, 200}), rand_ids(9, {2, 3, 200})});
}
NABLA_PARITY(scatter_add, many_rows_serial) {
  // 20000 rows (>= 16384) of len 100: serial path despite len > 64.
  EXPECT_PARITY([](In in) { return scatter_add(in[0], 1, in[2], in[1]); },
                {parity_randn({20000, 7}), parity_randn({20000, 100}), rand_ids(7, {20000, 100})},
                {.atol = 1e-3, .rtol = 1e-4});
}
NABLA_PARITY(scatter_add, integers_both_paths) {
  EXPECT_PARITY(
      [](In in) {
        Tensor x = (in[0] * 10.0).to(DType::i64), s = (in[1] * 10.0).to(DType::i64);
        Tensor xi = (in[0] * 10.0).to(DType::i32), si = (in[1] * 10.0).to(DType::i32);
        return scatter_add(x, 1, in[2], s).to(DType::f32) +
               scatter_add(xi, 1, in[3], si.narrow(1, 0, 8)).to(DType::f32);
      },
      {parity_randn({3, 30}, false), parity_randn({3, 200}, false), rand_ids(30, {3, 200}),
       rand_ids(30, {3, 8})});
}

// ---- masked_fill, one_hot ----
NABLA_PARITY(masked_fill, broadcast_mask_noncontiguous) {
  EXPECT_PARITY([](In in) { return masked_fill(in[0].t(), gt(in[1], scalar_like(0.0, in[1])), -7.5); },
                {parity_randn({9, 6}), parity_randn({1, 9}, false)});
}
NABLA_PARITY(masked_fill, full_mask_large) {
  EXPECT_PARITY([](In in) { return masked_fill(in[0], lt(in[1], scalar_like(0.0, in[1])), 0.0) * 2.0; },
                {parity_randn({130, 257}), parity_randn({130, 257}, false)});
}
NABLA_PARITY(one_hot, explicit_and_inferred) {
  EXPECT_PARITY(
      [](In in) {
        return cat(
            {one_hot(in[0], 10).to(DType::f32).reshape({-1}), one_hot(in[1]).to(DType::f32).reshape({-1})});
      },
      {rand_ids(10, {3, 7}), ids({2, 0, 5, 5, 1}, {5}, DType::i32)});
}

}  // namespace
}  // namespace nabla
