// Genotype text form, validation, derivation from alphas, and the published genotypes (genotype.h).
#include "models/darts/genotype.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "ops/nn.h"

namespace nabla::models::darts {
namespace {

std::string genes_str(const std::vector<Gene>& genes) {
  std::string s = "[";
  for (size_t i = 0; i < genes.size(); ++i)
    s += str_cat(i ? ", " : "", "('", op_name(genes[i].op), "', ", genes[i].input, ")");
  return s + "]";
}

std::string ints_str(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += str_cat(i ? ", " : "", v[i]);
  return s + "]";
}

// A small recursive-descent reader over the text form.
class Reader {
 public:
  explicit Reader(const std::string& text) : t_(text) {}
  void skip() {
    while (p_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[p_]))) ++p_;
  }
  bool peek(char c) {
    skip();
    return p_ < t_.size() && t_[p_] == c;
  }
  bool accept(char c) {
    if (!peek(c)) return false;
    ++p_;
    return true;
  }
  void expect(char c) {
    if (!accept(c)) error(str_cat("'", c, "'"));
  }
  void expect_word(const std::string& w) {
    skip();
    if (t_.compare(p_, w.size(), w) != 0) error("'" + w + "'");
    p_ += w.size();
  }
  bool accept_word(const std::string& w) {
    skip();
    if (t_.compare(p_, w.size(), w) != 0) return false;
    p_ += w.size();
    return true;
  }
  int integer() {
    skip();
    size_t start = p_;
    if (p_ < t_.size() && t_[p_] == '-') ++p_;
    while (p_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[p_]))) ++p_;
    if (p_ == start || (p_ - start > 6)) {
      p_ = start;
      error("an integer");
    }
    return std::stoi(t_.substr(start, p_ - start));
  }
  std::string quoted() {
    skip();
    if (p_ >= t_.size() || (t_[p_] != '\'' && t_[p_] != '"')) error("a quoted operation name");
    const char q = t_[p_++];
    size_t end = t_.find(q, p_);
    if (end == std::string::npos) error("a closing quote");
    std::string s = t_.substr(p_, end - p_);
    p_ = end + 1;
    return s;
  }
  void end() {
    skip();
    if (p_ != t_.size()) error("the end of the text");
  }
  [[noreturn]] void error(const std::string& expected) const {
    std::string near = t_.substr(p_, 20);
    fail("genotype: expected ", expected, " at character ", p_, " (near '", near, "')");
  }
  size_t pos() const { return p_; }

 private:
  const std::string& t_;
  size_t p_ = 0;
};

std::vector<Gene> read_genes(Reader& r) {
  std::vector<Gene> genes;
  r.expect('[');
  if (r.accept(']')) return genes;
  do {
    r.expect('(');
    const size_t at = r.pos();
    std::string name = r.quoted();
    OpKind op;
    try {
      op = op_kind(name);
    } catch (const Error& e) {
      fail("genotype: at character ", at, ": ", e.what());
    }
    r.expect(',');
    int input = r.integer();
    r.expect(')');
    genes.push_back({op, input});
  } while (r.accept(',') && !r.peek(']'));
  r.expect(']');
  return genes;
}

std::vector<int> read_concat(Reader& r) {
  std::vector<int> v;
  if (r.accept_word("range")) {
    r.expect('(');
    int a = r.integer();
    r.expect(',');
    int b = r.integer();
    r.expect(')');
    if (b <= a || b - a > 64) r.error("range(a, b) with a < b");
    for (int i = a; i < b; ++i) v.push_back(i);
    return v;
  }
  r.expect('[');
  if (r.accept(']')) return v;
  do v.push_back(r.integer());
  while (r.accept(',') && !r.peek(']'));
  r.expect(']');
  return v;
}

void validate_cell(const char* field, const std::vector<Gene>& genes, const std::vector<int>& concat) {
  NABLA_CHECK(!genes.empty() && genes.size() % 2 == 0, "genotype: '", field,
              "' must hold 2 genes per node (an even, non-zero count), got ", genes.size());
  const int steps = static_cast<int>(genes.size() / 2);
  for (size_t g = 0; g < genes.size(); ++g) {
    const int node = static_cast<int>(g / 2) + 2;
    NABLA_CHECK(genes[g].input >= 0 && genes[g].input < node, "genotype: '", field, "' gene ", g, " ('",
                op_name(genes[g].op), "', ", genes[g].input, ") feeds node ", node,
                ", so its input must be in [0, ", node, ")");
  }
  NABLA_CHECK(!concat.empty(), "genotype: '", field, "_concat' is empty");
  for (size_t i = 0; i < concat.size(); ++i) {
    NABLA_CHECK(concat[i] >= 0 && concat[i] < steps + 2, "genotype: '", field, "_concat' entry ", concat[i],
                " is not a state of the cell (expected [0, ", steps + 2, "))");
    for (size_t j = 0; j < i; ++j)
      NABLA_CHECK(concat[j] != concat[i], "genotype: '", field, "_concat' repeats ", concat[i]);
  }
}

}  // namespace

std::string Genotype::str() const {
  return str_cat("Genotype(normal=", genes_str(normal), ", normal_concat=", ints_str(normal_concat),
                 ", reduce=", genes_str(reduce), ", reduce_concat=", ints_str(reduce_concat), ")");
}

Genotype Genotype::parse(const std::string& text) {
  Reader r(text);
  Genotype g;
  r.expect_word("Genotype");
  r.expect('(');
  // The four fields, by name, in the namedtuple's order.
  r.expect_word("normal");
  r.expect('=');
  g.normal = read_genes(r);
  r.expect(',');
  r.expect_word("normal_concat");
  r.expect('=');
  g.normal_concat = read_concat(r);
  r.expect(',');
  r.expect_word("reduce");
  r.expect('=');
  g.reduce = read_genes(r);
  r.expect(',');
  r.expect_word("reduce_concat");
  r.expect('=');
  g.reduce_concat = read_concat(r);
  r.accept(',');
  r.expect(')');
  r.end();
  g.validate();
  return g;
}

void Genotype::validate() const {
  validate_cell("normal", normal, normal_concat);
  validate_cell("reduce", reduce, reduce_concat);
}

int count_weight_free(const std::vector<Gene>& genes) {
  return static_cast<int>(
      std::count_if(genes.begin(), genes.end(), [](const Gene& g) { return is_weight_free(g.op); }));
}

std::vector<Gene> derive_cell(const Tensor& weights, int steps) {
  const int64_t edges = static_cast<int64_t>(steps) * (steps + 3) / 2;
  NABLA_CHECK(weights.dim() == 2 && weights.size(0) == edges && weights.size(1) == kNumOps,
              "derive_cell: expected weights [", edges, ", ", kNumOps, "] for ", steps, " steps, got ",
              weights.shape());
  Tensor w = weights.detach().to(Device::cpu()).to(DType::f64).contiguous();
  const double* p = w.data<double>();
  auto at = [&](int64_t e, int k) { return p[e * kNumOps + k]; };
  auto best_op = [&](int64_t e) {
    int best = -1;
    for (int k = 0; k < kNumOps; ++k)
      if (k != static_cast<int>(OpKind::none) && (best < 0 || at(e, k) > at(e, best))) best = k;
    return best;
  };
  std::vector<Gene> genes;
  int64_t start = 0;
  for (int i = 0; i < steps; ++i) {
    const int n = i + 2;
    std::vector<int> order(static_cast<size_t>(n));
    for (int j = 0; j < n; ++j) order[static_cast<size_t>(j)] = j;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return at(start + a, best_op(start + a)) > at(start + b, best_op(start + b));
    });
    for (int k = 0; k < 2; ++k) {
      const int j = order[static_cast<size_t>(k)];
      genes.push_back({static_cast<OpKind>(best_op(start + j)), j});
    }
    start += n;
  }
  return genes;
}

Genotype derive_genotype(const Tensor& alphas_normal, const Tensor& alphas_reduce, int steps,
                         int multiplier) {
  NABLA_CHECK(multiplier >= 1 && multiplier <= steps, "derive_genotype: multiplier ", multiplier,
              " must be in [1, steps = ", steps, "]");
  Genotype g;
  g.normal = derive_cell(softmax(alphas_normal.detach(), -1), steps);
  g.reduce = derive_cell(softmax(alphas_reduce.detach(), -1), steps);
  for (int i = 2 + steps - multiplier; i < steps + 2; ++i) {
    g.normal_concat.push_back(i);
    g.reduce_concat.push_back(i);
  }
  return g;
}

namespace genotypes {
namespace {
Genotype make(const char* text) { return Genotype::parse(text); }
}  // namespace
// Copied from BNASv2CLR/genotypes.py (the concat ranges written as lists).
const Genotype DARTS_V1 = make(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', "
    "0)], reduce_concat=[2, 3, 4, 5])");
const Genotype DARTS_V2 = make(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', "
    "1)], reduce_concat=[2, 3, 4, 5])");
const Genotype BNASv2_CLR_v1 = make(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 2), "
    "('sep_conv_5x5', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('dil_conv_3x3', 2)], "
    "normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('dil_conv_3x3', 1), ('avg_pool_3x3', 0), "
    "('avg_pool_3x3', 2), ('avg_pool_3x3', 2), ('avg_pool_3x3', 3), ('avg_pool_3x3', 2), ('max_pool_3x3', "
    "1)], reduce_concat=range(2, 6))");
const Genotype BNASv2_CLR_v2 = make(
    "Genotype(normal=[('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('dil_conv_3x3', 4)], "
    "normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('dil_conv_5x5', 1), ('avg_pool_3x3', 2), "
    "('avg_pool_3x3', 0), ('avg_pool_3x3', 2), ('avg_pool_3x3', 3), ('max_pool_3x3', 1), ('avg_pool_3x3', "
    "3)], reduce_concat=range(2, 6))");

const Genotype& by_name(const std::string& name) {
  if (name == "DARTS_V1") return DARTS_V1;
  if (name == "DARTS_V2" || name == "DARTS") return DARTS_V2;
  if (name == "BNASv2_CLR_v1") return BNASv2_CLR_v1;
  if (name == "BNASv2_CLR_v2") return BNASv2_CLR_v2;
  fail("genotype: unknown name '", name, "' (expected DARTS_V1, DARTS_V2, BNASv2_CLR_v1 or BNASv2_CLR_v2)");
}
}  // namespace genotypes

Genotype load_genotype(const std::string& spec) {
  for (const char* n : {"DARTS_V1", "DARTS_V2", "DARTS", "BNASv2_CLR_v1", "BNASv2_CLR_v2"})
    if (spec == n) return genotypes::by_name(spec);
  if (spec.rfind("Genotype", 0) == 0) return Genotype::parse(spec);
  NABLA_CHECK(std::filesystem::is_regular_file(spec), "genotype '", spec,
              "' is neither a known name (DARTS_V1, DARTS_V2, BNASv2_CLR_v1, BNASv2_CLR_v2), nor a file, nor "
              "the text form Genotype(normal=[...], ...)");
  std::ifstream in(spec);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  // The last line that holds a genotype (a search log's last epoch wins).
  size_t at = text.rfind("Genotype(");
  NABLA_CHECK(at != std::string::npos, "genotype file ", spec, ": no 'Genotype(' in it");
  size_t end = text.find('\n', at);
  try {
    return Genotype::parse(text.substr(at, end == std::string::npos ? std::string::npos : end - at));
  } catch (const Error& e) {
    fail("genotype file ", spec, ": ", e.what());
  }
}

}  // namespace nabla::models::darts
