// Genotypes: the discrete architecture a DARTS search derives, as data (printable, parsable, saved with a
// model), in the DARTS / BNASv2 text form:
//
//   Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
//            reduce=[('avg_pool_3x3', 0), ...], reduce_concat=range(2, 6))
//
// Each cell list holds 2 genes per intermediate node (node j = 2, 3, ...: the two gene pairs at 2(j-2) and
// 2(j-2)+1), a gene = (operation, input state): states 0 and 1 are the cell's two inputs, state i >= 2 the
// output of intermediate node i. A cell's output concatenates the states in *_concat.
// In the BCNN (B-DARTS) code the fields keep DARTS's names but `normal` is the convolution-block cell (also
// used, with stride 2, as the reduction cell) and `reduce` is the enhancement cell.
//
// Derivation (DARTS's rule, model_search_b.py genotype()): per intermediate node, score each incoming edge
// by its largest non-none softmax weight, keep the top-2 edges (ties: the lower input index first), and on
// each kept edge take the argmax non-none operation (ties: the first in kPrimitives order).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "models/darts/operations.h"

namespace nabla::models::darts {

struct Gene {
  OpKind op;
  int input;
  bool operator==(const Gene&) const = default;
};

struct Genotype {
  std::vector<Gene> normal;
  std::vector<int> normal_concat;
  std::vector<Gene> reduce;
  std::vector<int> reduce_concat;

  bool operator==(const Genotype&) const = default;
  // The DARTS text form above (concat lists written as lists).
  std::string str() const;
  // Reads the text form (lists or range(a, b) for the concats; single or double quotes; whitespace free).
  // Throws naming the position and what was expected, or which gene is invalid.
  static Genotype parse(const std::string& text);
  // Checks the structure: an even number of genes, inputs of node j in [0, j), concat indices of existing
  // states, no repeated concat index. Throws naming the field.
  void validate() const;
  int steps_normal() const { return static_cast<int>(normal.size() / 2); }
  int steps_reduce() const { return static_cast<int>(reduce.size() / 2); }
};

// Operations without weights (none, pools, skip) in one cell list.
int count_weight_free(const std::vector<Gene>& genes);

// One cell's genes from its softmax weights [edges, 8] (edges = sum_{i<steps} (i + 2)).
std::vector<Gene> derive_cell(const Tensor& weights, int steps);
// The genotype from the two alpha matrices (softmax is applied here); concat = the last `multiplier` states.
Genotype derive_genotype(const Tensor& alphas_normal, const Tensor& alphas_reduce, int steps = 4,
                         int multiplier = 4);

// The genotypes published with the code (zixiangding/BNASv2, BNASv2CLR/genotypes.py).
namespace genotypes {
extern const Genotype DARTS_V1;
extern const Genotype DARTS_V2;
extern const Genotype BNASv2_CLR_v1;
extern const Genotype BNASv2_CLR_v2;
// By name ("DARTS_V1", "DARTS_V2", "BNASv2_CLR_v1", "BNASv2_CLR_v2"); throws listing them otherwise.
const Genotype& by_name(const std::string& name);
}  // namespace genotypes

// A genotype from `spec`: a known name, a file holding the text form, or the text form itself.
Genotype load_genotype(const std::string& spec);

}  // namespace nabla::models::darts
