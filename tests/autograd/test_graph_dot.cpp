// graph_to_dot: the picture of an MLP's autograd graph has the ops, shapes, leaves and edges it should,
// is structurally valid DOT, and NABLA_GRAPH_DOT makes backward write it.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "testing.h"

namespace nabla {
namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("nabla_graph_dot_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

// Checks the DOT structurally: one digraph, balanced braces and quotes, every statement ends with ';',
// every edge joins two nodes declared before it. Returns the edges as (from, to) ids.
std::vector<std::pair<std::string, std::string>> check_structure(const std::string& dot) {
  EXPECT_EQ(dot.rfind("digraph ", 0), 0u) << dot;
  int depth = 0, min_depth = 0;
  bool in_quote = false;
  for (size_t i = 0; i < dot.size(); ++i) {
    char c = dot[i];
    if (c == '\\' && in_quote) {
      ++i;
      continue;
    }
    if (c == '"') in_quote = !in_quote;
    if (in_quote) continue;
    depth += (c == '{') - (c == '}');
    min_depth = std::min(min_depth, depth);
  }
  EXPECT_FALSE(in_quote);
  EXPECT_EQ(depth, 0);
  EXPECT_EQ(min_depth, 0);
  EXPECT_EQ(dot.back(), '\n');
  EXPECT_EQ(dot.substr(dot.size() - 2), "}\n");

  std::set<std::string> declared;
  std::vector<std::pair<std::string, std::string>> edges;
  static const std::regex node_re(R"(^  (\w+) \[.*\];$)"), edge_re(R"(^  (\w+) -> (\w+)( \[.*\])?;$)");
  std::istringstream lines(dot);
  std::string line;
  std::getline(lines, line);  // digraph ... {
  while (std::getline(lines, line)) {
    if (line == "}" || line.rfind("  //", 0) == 0 ||
        (line.find('=') != std::string::npos && line.find('[') == std::string::npos))
      continue;
    std::smatch m;
    if (std::regex_match(line, m, edge_re)) {
      EXPECT_TRUE(declared.count(m[1])) << "edge from an undeclared node: " << line;
      EXPECT_TRUE(declared.count(m[2])) << "edge into an undeclared node: " << line;
      edges.emplace_back(m[1], m[2]);
    } else if (std::regex_match(line, m, node_re)) {
      if (m[1] != "node") declared.insert(m[1]);
    } else {
      ADD_FAILURE() << "not a node, edge or attribute statement: '" << line << "'";
    }
  }
  return edges;
}

struct Mlp {
  Tensor x, w1, b1, w2, loss;
};

// h = relu(x w1 + b1);  p = h w2;  loss = sum(p * p)
Mlp make_mlp() {
  Mlp m;
  m.x = test::randn64({4, 3}, /*requires_grad=*/false);
  m.w1 = test::randn64({3, 5});
  m.b1 = test::randn64({5});
  m.w2 = test::randn64({5, 2});
  Tensor h = relu(matmul(m.x, m.w1) + m.b1);
  Tensor p = matmul(h, m.w2);
  m.loss = (p * p).sum();
  return m;
}

TEST(GraphDot, MlpGraphHasItsOpsShapesLeavesAndEdges) {
  Mlp m = make_mlp();
  std::string dot = graph_to_dot(m.loss);
  auto edges = check_structure(dot);

  // Six ops, three parameters, one constant input (x).
  EXPECT_EQ(count(dot, "shape=box"), 6u) << dot;
  EXPECT_EQ(count(dot, "shape=ellipse"), 3u) << dot;
  EXPECT_EQ(count(dot, "shape=note"), 1u) << dot;
  for (const char* label :
       {"matmul\\n[4,5] f64", "add\\n[4,5] f64", "relu\\n[4,5] f64", "matmul\\n[4,2] f64", "mul\\n[4,2] f64",
        "sum\\n[] f64", "leaf\\n[3,5] f64", "leaf\\n[5] f64", "leaf\\n[5,2] f64", "const\\n[4,3]"})
    EXPECT_NE(dot.find(std::string("label=\"") + label + "\""), std::string::npos) << label << "\n" << dot;
  // matmul(x, w1): 2, add: 2, relu: 1, matmul(h, w2): 2, mul(p, p): 2 (p used twice), sum: 1.
  EXPECT_EQ(edges.size(), 10u) << dot;
  EXPECT_EQ(count(dot, "->"), 10u);

  // Data flows from inputs to the ops that use them: the root has no outgoing edge, every leaf has one.
  std::map<std::string, std::string> label_of;
  static const std::regex node_re(R"re(  (\w+) \[.*label="([^"]*)".*\];)re");
  for (std::sregex_iterator it(dot.begin(), dot.end(), node_re), end; it != end; ++it)
    label_of[(*it)[1]] = (*it)[2];
  std::map<std::string, int> out_degree, in_degree;
  for (const auto& [from, to] : edges) ++out_degree[label_of[from]], ++in_degree[label_of[to]];
  EXPECT_EQ(out_degree["sum\\n[] f64"], 0);
  EXPECT_EQ(in_degree["sum\\n[] f64"], 1);
  EXPECT_EQ(out_degree["leaf\\n[3,5] f64"], 1);
  EXPECT_EQ(in_degree["leaf\\n[3,5] f64"], 0);
  EXPECT_EQ(in_degree["mul\\n[4,2] f64"], 2);
  // The root is highlighted, and only it.
  EXPECT_EQ(count(dot, "penwidth"), 1u);
  std::smatch root;
  ASSERT_TRUE(std::regex_search(dot, root, std::regex(R"(\n  \w+ \[[^\n]*penwidth[^\n]*\];)")));
  EXPECT_NE(root.str().find("sum\\n[]"), std::string::npos) << root.str();
  // Deterministic: the same graph gives the same text.
  EXPECT_EQ(graph_to_dot(m.loss), dot);
}

TEST(GraphDot, SharedSubexpressionsAreOneNode) {
  Tensor a = test::randn64({2, 3});
  Tensor e = exp(a);
  Tensor y = (e * e + e).sum();  // e feeds three uses: one exp box with three outgoing edges
  std::string dot = graph_to_dot(y);
  check_structure(dot);
  EXPECT_EQ(count(dot, "label=\"exp\\n[2,3] f64\""), 1u) << dot;
  EXPECT_EQ(count(dot, "shape=ellipse"), 1u);
  EXPECT_EQ(count(dot, "->"), 6u) << dot;  // a->exp, exp->mul x2, mul->add, exp->add, add->sum
}

TEST(GraphDot, DeepChainsDoNotOverflowTheStack) {
  Tensor x = test::randn64({2});
  Tensor y = x;
  for (int i = 0; i < 3000; ++i) y = y * 2.0;
  std::string dot = graph_to_dot(y);
  EXPECT_EQ(count(dot, "label=\"mul\\n[2] f64\""), 3000u);
  EXPECT_EQ(count(dot, "->"), 6000u);  // each mul: the previous tensor and the constant 2
}

TEST(GraphDot, RootsWithoutAGraph) {
  Tensor leaf = test::randn64({2, 2});
  std::string dot = graph_to_dot(leaf);
  check_structure(dot);
  EXPECT_EQ(count(dot, "shape=ellipse"), 1u);
  EXPECT_EQ(count(dot, "penwidth"), 1u);  // the leaf is the root
  EXPECT_EQ(count(dot, "->"), 0u);

  std::string none = graph_to_dot(test::randn32({3}));
  check_structure(none);
  EXPECT_NE(none.find("does not require grad"), std::string::npos) << none;
  test::expect_error([] { graph_to_dot(Tensor()); }, {"graph_to_dot", "undefined"});
}

TEST(GraphDot, WritesTheFileAndNamesAPathItCannotWrite) {
  Mlp m = make_mlp();
  const std::string path = temp_path("mlp.dot");
  write_graph_dot(m.loss, path);
  EXPECT_EQ(read_file(path), graph_to_dot(m.loss));
  std::filesystem::remove(path);
  const std::string bad = temp_path("no/such/dir/g.dot");
  test::expect_error([&] { write_graph_dot(m.loss, bad); }, {"graph_dot", bad});
}

TEST(GraphDot, BackwardWritesTheGraphWhenNablaGraphDotIsSet) {
  const std::string path = temp_path("env.dot");
  std::filesystem::remove(path);
  Mlp m = make_mlp();
  const std::string expected = graph_to_dot(m.loss);
  ::setenv("NABLA_GRAPH_DOT", path.c_str(), 1);
  m.loss.backward();
  ::unsetenv("NABLA_GRAPH_DOT");
  EXPECT_EQ(read_file(path), expected);
  EXPECT_TRUE(m.w1.grad().defined());  // backward itself still ran

  std::filesystem::remove(path);
  make_mlp().loss.backward();  // unset: nothing written
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace nabla
