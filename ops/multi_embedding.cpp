// multi_embedding_bag's op layer: checks, the index check, autograd wiring, dispatch (ops/multi_embedding.h
// has the maths). Kernels: ops/cpu/multi_embedding.cpp, cuda/multi_embedding.cu.
#include "ops/multi_embedding.h"

#include <cmath>

#include "engine/async_check.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/util.h"

namespace nabla {
namespace ops {
namespace {

struct CheckedIds {
  Tensor ids;  // contiguous i64 [B, F, n]
  int64_t B = 0, F = 0, n = 0, D = 0;
  uint32_t check_id = 0;  // the GPU's asynchronous check (0 on the CPU: checked here)
};

// Checks the tables and the ids; on the CPU the id values too (on a GPU the kernels check them and report
// to the returned check id).
CheckedIds check_tables_and_ids(const char* op, const std::vector<Tensor>& tables, const Tensor& ids) {
  NABLA_CHECK(!tables.empty(), op, ": expected at least one table, got none");
  const Tensor& t0 = tables[0];
  for (size_t f = 0; f < tables.size(); ++f) {
    const Tensor& t = tables[f];
    NABLA_CHECK(t.defined(), op, ": table ", f, " is undefined");
    NABLA_CHECK(t.dim() == 2 && t.shape()[0] >= 1, op, ": table ", f,
                " must be 2-D [num_embeddings >= 1, embedding_dim], got ", t.shape());
    check_floating(op, t);
    NABLA_CHECK(t.dtype() == t0.dtype() && t.device() == t0.device() && t.shape()[1] == t0.shape()[1], op,
                ": table ", f, " is ", t.dtype(), " ", t.shape(), " on ", t.device(), ", table 0 is ",
                t0.dtype(), " ", t0.shape(), " on ", t0.device(), " (all tables share dtype, width, device)");
  }
  check_defined(op, ids, "ids");
  check_index_dtype(op, ids);
  const int64_t F = static_cast<int64_t>(tables.size());
  NABLA_CHECK((ids.dim() == 2 || ids.dim() == 3) && ids.shape()[0] >= 1 && ids.shape()[1] == F &&
                  (ids.dim() == 2 || ids.shape()[2] >= 1),
              op, ": ids must be [B, ", F, "] (one id per table and row) or [B, ", F,
              ", n] (bags of n), B, n >= 1, for ", F, " tables, got ", ids.shape());
  NABLA_CHECK(ids.device() == t0.device(), op, ": ids on ", ids.device(), ", tables on ", t0.device());
  CheckedIds c;
  c.B = ids.shape()[0];
  c.F = F;
  c.n = ids.dim() == 3 ? ids.shape()[2] : 1;
  c.D = t0.shape()[1];
  std::vector<int64_t> rows(F);
  for (int64_t f = 0; f < F; ++f) rows[f] = tables[f].shape()[0];
  Tensor i64 = contiguous_raw(ids.detach().to(DType::i64), op);
  c.ids = raw_view(i64, {c.B, F, c.n}, {F * c.n, c.n, 1}, i64.offset());
  auto message = [op = std::string(op), rows, shape = ids.shape(), n = c.n, F](int64_t pos, int64_t v) {
    const int64_t bag = pos / n, f = bag % F, b = bag / F;
    return str_cat(op, ": id ", v, " at [", b, ",", f, n > 1 ? str_cat(",", pos % n) : std::string(),
                   "] of ids ", shape, " is out of range for table ", f, " of ", rows[f], " rows");
  };
  if (ids.device().is_cpu()) {
    const int64_t* p = c.ids.data<int64_t>();
    for (int64_t l = 0, L = c.B * F * c.n; l < L; ++l) {
      const int64_t f = (l / c.n) % F;
      NABLA_CHECK(p[l] >= 0 && p[l] < rows[f], message(l, p[l]));
    }
  } else {
    c.check_id = register_async_check(message);
  }
  return c;
}

}  // namespace
}  // namespace ops

using namespace ops;

Tensor multi_embedding_bag(const std::vector<Tensor>& tables, const Tensor& ids, BagMode mode,
                           const Tensor& prefix) {
  CheckedIds c = check_tables_and_ids("multi_embedding_bag", tables, ids);
  const Tensor& t0 = tables[0];
  const int64_t P = prefix.defined() ? 1 : 0, B = c.B, F = c.F, D = c.D;
  if (prefix.defined())
    NABLA_CHECK(
        prefix.shape() == Shape({B, D}) && prefix.dtype() == t0.dtype() && prefix.device() == t0.device(),
        "multi_embedding_bag: prefix must be ", t0.dtype(), " ", Shape({B, D}), " on ", t0.device(),
        " (one row per bag row, the tables' width), got ", prefix.dtype(), " ", prefix.shape(), " on ",
        prefix.device());
  std::vector<Tensor> w;
  w.reserve(F);
  for (const Tensor& t : tables) w.push_back(contiguous_raw(t, "multi_embedding_bag"));
  Tensor out = Tensor::empty({B, P + F, D}, t0.dtype(), t0.device());
  if (P) {
    Tensor slot0 = raw_view(out, {B, D}, {(P + F) * D, 1}, 0);
    copy_kernel.get(t0.device(), "multi_embedding_bag")(prefix, slot0);
  }
  Tensor lookups = raw_view(out, {B, F, D}, {(P + F) * D, D, 1}, P * D);
  multi_embedding_bag_kernel.get(t0.device(), "multi_embedding_bag")(w, c.ids, mode, c.check_id, lookups);
  std::vector<Tensor> inputs = tables;
  inputs.push_back(prefix);
  if (!autograd::needs_grad(inputs)) return out;
  std::vector<bool> need(F);
  for (int64_t f = 0; f < F; ++f) need[f] = tables[f].requires_grad();
  autograd::record("multi_embedding_bag", out, inputs, [need, idx = c.ids, mode, P, F, D, rows = [&] {
                     std::vector<int64_t> r;
                     for (const Tensor& t : tables) r.push_back(t.shape()[0]);
                     return r;
                   }()](const Tensor& g) -> std::vector<Tensor> {
    const int64_t B = g.shape()[0];
    // The kernels take any strides with a contiguous last dim.
    Tensor gc = g.stride(2) == 1 ? g : contiguous_raw(g, "multi_embedding_bag backward");
    std::vector<Tensor> grads(F + 1);
    std::vector<Tensor> dst;
    for (int64_t f = 0; f < F; ++f) {
      // A table that needs no gradient still gets a buffer (the one launch writes every table's rows).
      grads[f] = zeros({rows[f], D}, {.dtype = g.dtype(), .device = g.device()});
      dst.push_back(grads[f]);
    }
    Tensor gl = raw_view(gc, {B, F, D}, {gc.stride(0), gc.stride(1), 1}, gc.offset() + P * gc.stride(1));
    multi_embedding_bag_backward_kernel.get(g.device(), "multi_embedding_bag backward")(gl, idx, mode, 1.0, 0,
                                                                                        dst);
    for (int64_t f = 0; f < F; ++f)
      if (!need[f]) grads[f] = Tensor();
    if (P) grads[F] = raw_view(gc, {B, D}, {gc.stride(0), 1}, gc.offset());
    return grads;
  });
  return out;
}

namespace {

// The sparse updates' shared checks: tables and ids, every table contiguous (updated in place), grad
// [B, F, D]; returns the ids and grad (unit stride in D) the backward kernels take.
struct SparseUpdate {
  CheckedIds c;
  Tensor grad;
};
SparseUpdate check_sparse_update(const char* op, const std::vector<Tensor>& tables, const Tensor& ids,
                                 const Tensor& grad, double lr) {
  SparseUpdate u{check_tables_and_ids(op, tables, ids), Tensor()};
  const CheckedIds& c = u.c;
  for (size_t f = 0; f < tables.size(); ++f)
    NABLA_CHECK(tables[f].is_contiguous(), op, ": table ", f, " must be contiguous (updated in place), got ",
                tables[f].shape(), " with strides ", tables[f].strides());
  NABLA_CHECK(std::isfinite(lr), op, ": lr must be finite, got ", lr);
  check_defined(op, grad, "grad");
  const Tensor& t0 = tables[0];
  NABLA_CHECK(
      grad.shape() == Shape({c.B, c.F, c.D}) && grad.dtype() == t0.dtype() && grad.device() == t0.device(),
      op, ": grad must be ", t0.dtype(), " ", Shape({c.B, c.F, c.D}), " on ", t0.device(), ", got ",
      grad.dtype(), " ", grad.shape(), " on ", grad.device());
  NoGradGuard ng;
  u.grad = grad.detach();
  if (u.grad.stride(2) != 1) u.grad = contiguous_raw(u.grad, op);
  return u;
}

}  // namespace

void multi_embedding_bag_sparse_sgd_(const std::vector<Tensor>& tables, const Tensor& ids, BagMode mode,
                                     const Tensor& grad, double lr) {
  const char* op = "multi_embedding_bag_sparse_sgd_";
  SparseUpdate u = check_sparse_update(op, tables, ids, grad, lr);
  NoGradGuard ng;
  std::vector<Tensor> dst(tables.begin(), tables.end());
  multi_embedding_bag_backward_kernel.get(tables[0].device(), op)(u.grad, u.c.ids, mode, -lr, u.c.check_id,
                                                                  dst);
}

void multi_embedding_bag_sparse_rowwise_adagrad_(const std::vector<Tensor>& tables,
                                                 const std::vector<Tensor>& states, const Tensor& ids,
                                                 BagMode mode, const Tensor& grad, double lr, double eps) {
  const char* op = "multi_embedding_bag_sparse_rowwise_adagrad_";
  SparseUpdate u = check_sparse_update(op, tables, ids, grad, lr);
  NABLA_CHECK(states.size() == tables.size(), op, ": ", tables.size(), " tables but ", states.size(),
              " states (one accumulator vector per table)");
  for (size_t f = 0; f < tables.size(); ++f) {
    const Tensor& s = states[f];
    NABLA_CHECK(s.defined() && s.shape() == Shape({tables[f].shape()[0]}) && s.is_contiguous() &&
                    s.dtype() == tables[f].dtype() && s.device() == tables[f].device(),
                op, ": state ", f, " must be a contiguous ", tables[f].dtype(), " ",
                Shape({tables[f].shape()[0]}), " on ", tables[f].device(),
                " (one accumulator per row of table ", f, "), got ",
                s.defined() ? str_cat(s.dtype(), " ", s.shape(), " on ", s.device())
                            : std::string("an undefined tensor"));
  }
  NABLA_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0, got ", eps);
  NoGradGuard ng;
  std::vector<Tensor> w(tables.begin(), tables.end()), st(states.begin(), states.end());
  multi_embedding_bag_rowwise_adagrad_kernel.get(tables[0].device(), op)(u.grad, u.c.ids, mode, lr, eps,
                                                                         u.c.check_id, w, st);
}

}  // namespace nabla
