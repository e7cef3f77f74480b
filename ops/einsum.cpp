// einsum and tensordot: general tensor contraction on top of matmul.
//
//   einsum("ij,jk->ik", {A, B})[i,k] = sum_j A[i,j] B[j,k]
// Every label names one dim; a label that is absent from the output is summed over. Without "->" (implicit
// form) the output holds the labels that appear exactly once, in ASCII order (A-Z before a-z, as NumPy).
//
// How: operands are contracted left to right, two at a time. Before a pair is contracted, a label that no
// later operand and not the output needs, and that only one side of the pair has, is summed away (sum).
// The pair's labels then fall into four groups:
//   batch  in both, still needed later           contracted  in both, not needed later
//   free-a only in the left one                  free-b      only in the right one
// and the pair becomes one (batched) GEMM:
//   A -> permute [batch, free-a, contracted] -> reshape [nb, na, nk]
//   B -> permute [batch, contracted, free-b] -> reshape [nb, nk, nm]
//   C = matmul(A, B) -> reshape [batch..., free-a..., free-b...]
// and at the end one permute puts the labels in the output's order. Without batch labels the pair is a
// plain 2-D GEMM, and an operand whose memory already holds [contracted, free] (or [free, contracted] for
// the right one) is passed as a transposed view, which matmul hands to GEMM with a transpose flag: no copy.
//
// Backward: nothing is saved here. einsum is a composite of permute, reshape, sum and matmul, each with its
// own backward (matmul saves both of its operands); autograd differentiates through them.
//
//   tensordot(a, b, dims_a, dims_b) is the same pair contraction with no batch labels: a's free dims in
//   order, then b's.
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "ops/linalg.h"
#include "ops/reduce.h"
#include "ops/util.h"

namespace nabla {
using namespace ops;

namespace {

// Labels are small ints: einsum maps letters to their ASCII code, tensordot numbers the dims.
using Labels = std::vector<int>;

bool has(const Labels& ls, int l) { return std::find(ls.begin(), ls.end(), l) != ls.end(); }

int64_t position(const Labels& ls, int l) {
  return static_cast<int64_t>(std::find(ls.begin(), ls.end(), l) - ls.begin());
}

// The dims of a tensor labelled `ls` that carry `which`, in the order of `which`.
Dims positions(const Labels& ls, const Labels& which) {
  Dims d;
  for (int l : which) d.push_back(position(ls, l));
  return d;
}

int64_t product_of_sizes(const Tensor& x, const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= x.size(d);
  return n;
}

Dims concat(const Dims& a, const Dims& b) {
  Dims r = a;
  r.insert(r.end(), b.begin(), b.end());
  return r;
}

// x.permute(perm), skipping the autograd node when perm is the identity.
Tensor permuted(const Tensor& x, const Dims& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<int64_t>(i)) return x.permute(perm);
  return x;
}

// Sums x over the dims labelled `drop` and removes those labels from `lx`.
Tensor sum_labels(const Tensor& x, Labels& lx, const Labels& drop) {
  if (drop.empty()) return x;
  Dims dims = positions(lx, drop);
  Labels kept;
  for (int l : lx)
    if (!has(drop, l)) kept.push_back(l);
  lx = kept;
  return sum(x, dims);
}

// x (labelled lx) as a GEMM operand: [rows, cols] when `batch` is empty, else [nb, rows, cols]; rows are
// the dims labelled `rows`, cols those labelled `cols`, each group flattened in the given label order.
Tensor as_matrix(const Tensor& x, const Labels& lx, const Labels& batch, const Labels& rows,
                 const Labels& cols) {
  const Dims pb = positions(lx, batch), pr = positions(lx, rows), pc = positions(lx, cols);
  const int64_t nr = product_of_sizes(x, pr), nc = product_of_sizes(x, pc);
  if (!batch.empty())
    return permuted(x, concat(concat(pb, pr), pc)).reshape({product_of_sizes(x, pb), nr, nc});
  Tensor straight = permuted(x, concat(pr, pc));
  if (!straight.is_contiguous()) {
    // Memory laid out as [cols, rows]: a transposed view, which GEMM reads with a transpose flag.
    Tensor swapped = permuted(x, concat(pc, pr));
    if (swapped.is_contiguous()) return swapped.reshape({nc, nr}).t();
  }
  return straight.reshape({nr, nc});
}

// Contracts a (labelled la) with b (labelled lb), keeping the labels in `keep` (those the output or a later
// operand needs). Returns the result; `out_labels` receives its labels: batch, then free-a, then free-b.
Tensor contract_pair(Tensor a, Labels la, Tensor b, Labels lb, const Labels& keep, Labels& out_labels) {
  // A label only one side has and nobody needs later is summed away before the GEMM.
  Labels drop_a, drop_b;
  for (int l : la)
    if (!has(lb, l) && !has(keep, l)) drop_a.push_back(l);
  for (int l : lb)
    if (!has(la, l) && !has(keep, l)) drop_b.push_back(l);
  a = sum_labels(a, la, drop_a);
  b = sum_labels(b, lb, drop_b);

  // Shared labels (batch, contracted) take a's order, so that a needs no copy when it is already laid out.
  Labels batch, contracted, free_a, free_b;
  for (int l : la) {
    if (has(lb, l))
      (has(keep, l) ? batch : contracted).push_back(l);
    else
      free_a.push_back(l);
  }
  for (int l : lb)
    if (!has(la, l)) free_b.push_back(l);

  Tensor c = matmul(as_matrix(a, la, batch, free_a, contracted), as_matrix(b, lb, batch, contracted, free_b));

  Shape shape;
  out_labels.clear();
  for (int l : batch) {
    shape.push_back(a.size(position(la, l)));
    out_labels.push_back(l);
  }
  for (int l : free_a) {
    shape.push_back(a.size(position(la, l)));
    out_labels.push_back(l);
  }
  for (int l : free_b) {
    shape.push_back(b.size(position(lb, l)));
    out_labels.push_back(l);
  }
  return c.reshape(shape);
}

// ---- equation parsing ---------------------------------------------------------------------------

bool is_label(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

struct ParsedEquation {
  std::vector<std::string> inputs;
  std::string output;
};

// Splits "ij,jk->ik" into its terms, checking the characters; spaces are ignored. The implicit output is
// filled in later, once the inputs are known.
ParsedEquation parse_equation(const std::string& equation, bool& is_explicit) {
  std::string eq;
  for (char c : equation)
    if (c != ' ') eq.push_back(c);
  NABLA_CHECK(eq.find('.') == std::string::npos, "einsum: ellipsis \"...\" is not supported, got \"",
              equation, "\" (name every dim with a letter)");
  const size_t arrow = eq.find("->");
  is_explicit = arrow != std::string::npos;
  std::string lhs = is_explicit ? eq.substr(0, arrow) : eq;
  std::string rhs = is_explicit ? eq.substr(arrow + 2) : "";
  for (char c : lhs)
    NABLA_CHECK(
        is_label(c) || c == ',', "einsum: invalid character '", c, "' in the inputs of \"", equation,
        "\" (labels are letters a-z, A-Z; operands are separated by ',', the output follows one \"->\")");
  for (char c : rhs)
    NABLA_CHECK(
        is_label(c), "einsum: invalid character '", c, "' in the output of \"", equation,
        "\" (labels are letters a-z, A-Z; operands are separated by ',', the output follows one \"->\")");
  ParsedEquation p;
  size_t start = 0;
  while (true) {
    size_t comma = lhs.find(',', start);
    p.inputs.push_back(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  p.output = rhs;
  return p;
}

}  // namespace

Tensor einsum(const std::string& equation, const std::vector<Tensor>& operands) {
  NABLA_CHECK(!operands.empty(), "einsum: needs at least one operand, got none for \"", equation, "\"");
  for (size_t i = 0; i < operands.size(); ++i) {
    check_same("einsum", operands[0], operands[i]);
    check_floating("einsum", operands[i]);
  }
  bool is_explicit = false;
  ParsedEquation p = parse_equation(equation, is_explicit);
  NABLA_CHECK(p.inputs.size() == operands.size(), "einsum: equation \"", equation, "\" has ", p.inputs.size(),
              " operand(s) but ", operands.size(), " tensor(s) were given");

  // Per-operand labels, and one size per label across operands.
  std::array<int64_t, 128> size_of;
  std::array<int, 128> first_operand, count;
  size_of.fill(-1);
  first_operand.fill(-1);
  count.fill(0);
  std::vector<Labels> labels(operands.size());
  for (size_t i = 0; i < operands.size(); ++i) {
    const std::string& term = p.inputs[i];
    const Tensor& x = operands[i];
    NABLA_CHECK(static_cast<int64_t>(term.size()) == x.dim(), "einsum: operand ", i, " has ", term.size(),
                " label(s) \"", term, "\" but its shape ", x.shape(), " has ", x.dim(), " dim(s) (in \"",
                equation, "\")");
    for (size_t d = 0; d < term.size(); ++d) {
      const int l = term[d];
      NABLA_CHECK(!has(labels[i], l), "einsum: label '", term[d], "' repeats in operand ", i, " \"", term,
                  "\" (diagonals are not supported) in \"", equation, "\"");
      labels[i].push_back(l);
      ++count[l];
      if (size_of[l] < 0) {
        size_of[l] = x.size(static_cast<int64_t>(d));
        first_operand[l] = static_cast<int>(i);
      } else {
        const int j = first_operand[l];
        NABLA_CHECK(size_of[l] == x.size(static_cast<int64_t>(d)), "einsum: label '", term[d], "' has size ",
                    size_of[l], " in operand ", j, " ", operands[j].shape(), " but size ",
                    x.size(static_cast<int64_t>(d)), " in operand ", i, " ", x.shape(), " (in \"", equation,
                    "\")");
      }
    }
  }

  Labels output;
  if (is_explicit) {
    for (char c : p.output) {
      NABLA_CHECK(!has(output, c), "einsum: label '", c, "' repeats in the output \"", p.output, "\" of \"",
                  equation, "\"");
      NABLA_CHECK(count[static_cast<int>(c)] > 0, "einsum: output label '", c,
                  "' does not appear in any operand of \"", equation, "\"");
      output.push_back(c);
    }
  } else {
    for (int l = 0; l < 128; ++l)  // ASCII order: A-Z, then a-z
      if (count[l] == 1) output.push_back(l);
  }

  // Contract left to right; `keep` is what the output and the operands after the current pair need.
  Tensor cur = operands[0];
  Labels cur_labels = labels[0];
  for (size_t i = 1; i < operands.size(); ++i) {
    Labels keep = output;
    for (size_t j = i + 1; j < operands.size(); ++j)
      for (int l : labels[j])
        if (!has(keep, l)) keep.push_back(l);
    Labels out_labels;
    cur = contract_pair(cur, cur_labels, operands[i], labels[i], keep, out_labels);
    cur_labels = out_labels;
  }
  // One operand: what the output lacks is summed; then the dims go to the output's order.
  Labels drop;
  for (int l : cur_labels)
    if (!has(output, l)) drop.push_back(l);
  cur = sum_labels(cur, cur_labels, drop);
  return permuted(cur, positions(cur_labels, output));
}

Tensor tensordot(const Tensor& a, const Tensor& b, const std::vector<int64_t>& dims_a,
                 const std::vector<int64_t>& dims_b) {
  check_same("tensordot", a, b);
  check_floating("tensordot", a);
  NABLA_CHECK(dims_a.size() == dims_b.size(), "tensordot: dims_a ", Shape(dims_a), " and dims_b ",
              Shape(dims_b), " must name as many dims (a ", a.shape(), ", b ", b.shape(), ")");
  // Label a's dims 0..na-1 and b's free dims na..; a contracted dim of b takes its partner's label.
  Labels la(a.dim()), lb(b.dim(), -1);
  for (int64_t d = 0; d < a.dim(); ++d) la[d] = static_cast<int>(d);
  std::vector<bool> used_a(a.dim(), false);
  for (size_t i = 0; i < dims_a.size(); ++i) {
    const int64_t da = wrap_dim(dims_a[i], a.dim(), "tensordot"),
                  db = wrap_dim(dims_b[i], b.dim(), "tensordot");
    NABLA_CHECK(!used_a[da], "tensordot: dim ", dims_a[i], " repeats in dims_a ", Shape(dims_a), " (a ",
                a.shape(), ")");
    NABLA_CHECK(lb[db] < 0, "tensordot: dim ", dims_b[i], " repeats in dims_b ", Shape(dims_b), " (b ",
                b.shape(), ")");
    NABLA_CHECK(a.size(da) == b.size(db), "tensordot: dim ", da, " of a (size ", a.size(da), ") and dim ", db,
                " of b (size ", b.size(db), ") differ (a ", a.shape(), ", b ", b.shape(), ")");
    used_a[da] = true;
    lb[db] = static_cast<int>(da);
  }
  Labels keep;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (!used_a[d]) keep.push_back(static_cast<int>(d));
  for (int64_t d = 0; d < b.dim(); ++d)
    if (lb[d] < 0) {
      lb[d] = static_cast<int>(a.dim() + d);
      keep.push_back(lb[d]);
    }
  Labels out_labels;  // no shared label is kept, so this is a's free dims then b's, in order
  return contract_pair(a, la, b, lb, keep, out_labels);
}

}  // namespace nabla
