// matmul: NumPy/PyTorch semantics on top of one batched-GEMM kernel.
//
//   C = A @ B,  dA = dC @ B^T,  dB = A^T @ dC   (summed over broadcast batch dims by sum_to)
// 1-D operands are promoted with unsqueeze and the extra dim squeezed after, through view ops, so their
// gradients come from the view backwards. A 2-D operand that is the transpose of a contiguous matrix is
// passed to GEMM with a transpose flag instead of being copied (Linear's W^T and every backward use this).
//
// linear: the fused kernels of ops/linalg.h when the device has them and they take the call; otherwise the
// composition matmul(x, w^T) + b, relu, whose autograd gives the same gradients. The fused path records one
// node that saves x, w and (for ReLU) y; its backward is dx = gz @ w (a plain GEMM) and dw, db from one
// GEMM with the bias-gradient epilogue.
#include "ops/linalg.h"

#include <cstdlib>
#include <string>

#include "ops/autocast.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/reduce.h"
#include "ops/util.h"

namespace nabla {
using namespace ops;

namespace {

// A matrix operand for GEMM: contiguous [batch, rows, cols], or its transpose with `trans` set.
struct GemmOperand {
  Tensor t;
  bool trans = false;
  int64_t batch_stride = 0;
};

GemmOperand gemm_operand(const Tensor& x, const Shape& batch) {
  const int64_t r = x.size(-2), c = x.size(-1);
  if (x.dim() == 2) {
    if (x.is_contiguous()) return {x, false, 0};
    if (x.stride(0) == 1 && x.stride(1) == r) return {x, true, 0};  // transpose of a contiguous [c, r]
    return {x.contiguous(), false, 0};
  }
  // The transpose of a contiguous [..., c, r] without broadcasting (DLRM's T^T in T T^T): the transpose
  // flag with batch stride r c instead of a copy.
  if (x.dim() == static_cast<int64_t>(batch.size()) + 2 && r > 1 && c > 1 && x.stride(-2) == 1 &&
      x.stride(-1) == r) {
    bool ok = true;
    int64_t expect = r * c;
    for (int64_t d = x.dim() - 3; d >= 0 && ok; --d) {
      ok = x.shape()[d] == batch[d] && (x.shape()[d] == 1 || x.stride(d) == expect);
      expect *= x.shape()[d];
    }
    if (ok) return {x, true, r * c};
  }
  Shape full = batch;
  full.push_back(r);
  full.push_back(c);
  Tensor e = broadcast_view(x, full, "matmul");
  if (!e.is_contiguous()) {
    Tensor cpy = Tensor::empty(full, x.dtype(), x.device());
    copy_kernel.get(x.device(), "matmul")(e, cpy);
    e = cpy;
  }
  return {e, false, r * c};
}

Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  const int64_t n = a.size(-2), k = a.size(-1), k2 = b.size(-2), m = b.size(-1);
  NABLA_CHECK(k == k2, "matmul: inner dims differ: ", a.shape(), " @ ", b.shape(), " (", k, " vs ", k2, ")");
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul (batch dims)");
  Shape out_shape = batch;
  out_shape.push_back(n);
  out_shape.push_back(m);
  Tensor c = Tensor::empty(out_shape, a.dtype(), a.device());
  if (c.numel() > 0) {
    if (b.dim() == 2 && a.dim() > 2 && a.is_contiguous()) {
      // [..., n, k] @ [k, m]: one GEMM with the batch folded into the rows.
      GemmOperand B = gemm_operand(b, {});
      GemmArgs args{1, numel_of(batch) * n, m, k, false, B.trans, 0, 0, 0};
      gemm_kernel.get(a.device(), "matmul")(args, a, B.t, c);
    } else {
      GemmOperand A = gemm_operand(a, batch), B = gemm_operand(b, batch);
      GemmArgs args{numel_of(batch), n, m, k, A.trans, B.trans, A.batch_stride, B.batch_stride, n * m};
      gemm_kernel.get(a.device(), "matmul")(args, A.t, B.t, c);
    }
  } else if (k == 0) {
    c.fill_(0.0);
  }
  autograd::record("matmul", c, {a, b},
                   [as = a.detach(), bs = b.detach(), need_a = a.requires_grad(),
                    need_b = b.requires_grad()](const Tensor& g) -> std::vector<Tensor> {
                     Tensor ga = need_a ? sum_to(matmul_nd(g, bs.transpose(-1, -2)), as.shape()) : Tensor();
                     Tensor gb = need_b ? sum_to(matmul_nd(as.transpose(-1, -2), g), bs.shape()) : Tensor();
                     return {ga, gb};
                   });
  return c;
}

// The weight gradient dW = gz^T x of a layer with many rows and a small [out, in] is one GEMM whose
// reduction runs over all the rows: with out x in covering fewer 128 x 128 output tiles than an H200 has
// SMs (132), most SMs idle unless the library splits the reduction, which cuBLASLt's heuristic does not
// promise with the bias-gradient epilogue (DLRM at batch 65,536: k = 65,536 rows, a 256 x 1 or 512 x 256
// output). Such layers take the rows in S chunks instead: one batched GEMM [S, out, in] (S x the tiles) and a
// sum over the chunks (and db = sum(gz) over the rows). S: the smallest power of two giving >= 264 tiles,
// chunks of >= 1,024 rows. On CUDA only; NABLA_LINEAR_SPLIT_WGRAD=0 turns it off (1 chunk).
int64_t weight_grad_chunks(const LinearArgs& a, Device device) {
  static const bool enabled = [] {
    const char* e = std::getenv("NABLA_LINEAR_SPLIT_WGRAD");
    return !(e && std::string(e) == "0");
  }();
  if (!enabled || !device.is_cuda() || a.rows < 32768) return 1;
  const int64_t tiles = ((a.out + 127) / 128) * ((a.in + 127) / 128);
  if (tiles >= 132) return 1;
  int64_t S = 1;
  while (tiles * S < 264 && S < 256 && a.rows % (2 * S) == 0 && a.rows / (2 * S) >= 1024) S *= 2;
  return S;
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  const Tensor a = autocast_input(a_in, AutocastKind::lower_precision);
  const Tensor b = autocast_input(b_in, AutocastKind::lower_precision);
  check_same("matmul", a, b);
  NABLA_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got ", a.shape(),
              " and ", b.shape());
  if (a.dim() == 1 && b.dim() == 1) return matmul_nd(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  if (a.dim() == 1) return matmul_nd(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul_nd(a, b.unsqueeze(1)).squeeze(-1);
  return matmul_nd(a, b);
}

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, bool relu) {
  const Tensor x = autocast_input(x_in, AutocastKind::lower_precision);
  const Tensor w = autocast_input(w_in, AutocastKind::lower_precision);
  const Tensor b = autocast_input(b_in, AutocastKind::lower_precision);
  check_same("linear", x, w);
  check_floating("linear", x);
  NABLA_CHECK(w.dim() == 2, "linear: expected a 2-D weight [out, in], got ", w.shape(), " (input ", x.shape(),
              ")");
  NABLA_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear: input has ", x.dim() >= 1 ? x.size(-1) : 0,
              " features, expected ", w.size(1), " (input ", x.shape(), ", weight ", w.shape(), ")");
  if (b.defined()) {
    check_same("linear", x, b);
    NABLA_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: bias must be [", w.size(0), "], got ",
                b.shape(), " (weight ", w.shape(), ")");
  }
  const LinearArgs args{x.numel() / std::max<int64_t>(1, x.size(-1)), w.size(1), w.size(0), relu};
  // A width that is not a multiple of 8 (GPT-2's vocabulary of 50,257 outputs; DLRM's 479 interaction
  // features into its top MLP) makes the op's GEMMs (forward, input and weight gradients) run with leading
  // dimensions that are not multiples of 16 bytes, where cuBLAS(Lt) has only slow kernels: on an H200 that
  // cost GPT-2's tied classifier 30 ms of a 100 ms training step. Large such layers therefore run padded
  // with zeros: the output width to a multiple of 64 (zero weight rows; the result is a view of the first
  // `out` columns, as llm.c pads the vocabulary), the input width to a multiple of 8 (zero columns in the
  // input and the weight). Autograd carries the gradients through the narrow and the cats, so no padding
  // reaches the caller's tensors; the values are the same up to the GEMM's summation order. Narrow layers
  // (out < 64: a DLRM's last layer of width 1) keep their shape.
  constexpr int64_t kPadMinElements = int64_t{1} << 20;
  const bool pad_out = args.out % 8 != 0 && args.out >= 64, pad_in = args.in % 8 != 0;
  if (x.device().is_cuda() && (pad_out || pad_in) && args.in > 0 &&
      args.rows * std::max(args.in, args.out) >= kPadMinElements) {
    const int64_t out_p = pad_out ? (args.out + 63) / 64 * 64 : args.out, in_p = (args.in + 7) / 8 * 8;
    const TensorOptions wo{.dtype = w_in.dtype(), .device = w_in.device()};
    Tensor wp = w_in, xp = x_in, bp = b_in;
    if (pad_in) {
      wp = cat({wp, zeros({args.out, in_p - args.in}, wo)}, 1);
      Shape xs = x_in.shape();
      xs.back() = in_p - args.in;
      xp = cat({x_in, zeros(xs, {.dtype = x_in.dtype(), .device = x_in.device()})}, -1);
    }
    if (pad_out) {
      wp = cat({wp, zeros({out_p - args.out, wp.size(1)}, wo)}, 0);
      if (b_in.defined())
        bp = cat({b_in, zeros({out_p - args.out}, {.dtype = b_in.dtype(), .device = b_in.device()})}, 0);
    }
    Tensor y = linear(xp, wp, bp, relu);
    return pad_out ? y.narrow(-1, 0, args.out) : y;
  }
  Shape out_shape = x.shape();
  out_shape.back() = args.out;
  const Device dev = x.device();
  if (x.dim() >= 2 && args.rows > 0 && args.in > 0 && args.out > 0 && linear_forward_kernel.has(dev)) {
    Tensor xc = contiguous_raw(x, "linear"), wc = contiguous_raw(w, "linear");
    Tensor bc = b.defined() ? contiguous_raw(b, "linear") : Tensor();
    Tensor x2 = raw_view(xc, {args.rows, args.in}, {args.in, 1}, xc.offset());
    Tensor y = Tensor::empty(out_shape, x.dtype(), dev);
    Tensor y2 = raw_view(y, {args.rows, args.out}, {args.out, 1}, 0);
    if (linear_forward_kernel.get(dev, "linear")(args, x2, wc, bc, y2)) {
      const bool need_x = x.requires_grad(), need_w = w.requires_grad(),
                 need_b = b.defined() && b.requires_grad();
      autograd::record(
          "linear", y, {x, w, b},
          [args, x2 = need_w ? x2 : Tensor(), wc = need_x ? wc : Tensor(), ys = relu ? y2.detach() : Tensor(),
           need_x, need_w, need_b, xshape = x.shape()](const Tensor& g) -> std::vector<Tensor> {
            Tensor g2 = contiguous_raw(g, "linear");
            g2 = raw_view(g2, {args.rows, args.out}, {args.out, 1}, g2.offset());
            Tensor gz = g2;
            if (args.relu) {  // g where y > 0 (relu's gradient from its output)
              gz = Tensor::empty(g2.shape(), g2.dtype(), g2.device());
              binary_kernel.get(g2.device(), "linear")(BinaryOp::relu_grad, g2, ys, gz, {});
            }
            Tensor dx = need_x ? matmul(gz, wc).reshape(xshape) : Tensor();
            Tensor dw, db;
            const int64_t S = need_w ? weight_grad_chunks(args, gz.device()) : 1;
            if (S >
                1) {  // dW = sum_s gz_s^T x_s over S chunks of rows (the transpose goes to GEMM as a flag)
              const int64_t r = args.rows / S;
              Tensor g3 = raw_view(gz, {S, r, args.out}, {r * args.out, args.out, 1}, gz.offset());
              Tensor x3 = raw_view(x2, {S, r, args.in}, {r * args.in, args.in, 1}, x2.offset());
              dw = sum(matmul(g3.transpose(1, 2), x3), {0});
              if (need_b) db = sum(gz, {0});
            } else if (need_w || need_b) {
              const Device d = gz.device();
              Tensor dw_t = Tensor::empty({args.out, args.in}, gz.dtype(), d);
              Tensor db_t = need_b ? Tensor::empty({args.out}, gz.dtype(), d) : Tensor();
              const bool fused = need_w && linear_weight_grad_kernel.has(d) &&
                                 linear_weight_grad_kernel.get(d, "linear")(args, gz, x2, dw_t, db_t);
              if (fused) {
                dw = dw_t;
                db = db_t;
              } else {
                if (need_w) dw = matmul(gz.t(), x2);
                if (need_b) db = sum(gz, {0});
              }
              if (!need_w) dw = Tensor();
            }
            return {dx, dw, db};
          });
      return y;
    }
  }
  // The composition (CPU, f64 on CUDA, shapes the fused kernel declined).
  Tensor y = matmul(x, w.t());
  if (b.defined()) y = y + b;
  return relu ? nabla::relu(y) : y;
}

}  // namespace nabla
