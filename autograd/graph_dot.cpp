// Graphviz export of the autograd graph (what the picture shows is in autograd/graph_dot.h).
//
// The walk is the one backward does: an iterative post-order depth-first search from the root over
// grad_fn -> inputs, so every tensor is numbered after the tensors it was computed from and each node's
// edges can be written right after it.
#include "autograd/graph_dot.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "autograd/autograd.h"
#include "engine/error.h"

namespace nabla::autograd {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// "[32,64]" and, for other dtypes than f32, " f64".
std::string shape_label(const Shape& shape, DType dtype) {
  std::string s = shape_str(shape);
  if (dtype != DType::f32) s += str_cat(" ", dtype);
  return s;
}

constexpr const char* kRootStyle = ", style=\"filled,bold\", penwidth=2.5, fillcolor=\"#fde68a\"";

}  // namespace

std::string graph_to_dot(const Tensor& root) {
  NABLA_CHECK(root.defined(), "graph_to_dot: undefined tensor");
  std::ostringstream os;
  os << "digraph autograd {\n"
     << "  // Nabla autograd graph: data flows top to bottom, the root is bold.\n"
     << "  rankdir=TB;\n"
     << "  node [fontname=\"Helvetica\", fontsize=11];\n";
  AutogradMeta* rm = root.impl()->autograd.get();
  if (!rm || !rm->requires_grad) {
    os << "  empty [shape=plaintext, label=\"no autograd graph: the tensor "
       << shape_label(root.shape(), root.dtype()) << " does not require grad\"];\n}\n";
    return os.str();
  }

  std::vector<AutogradMeta*> order;
  std::unordered_set<AutogradMeta*> seen{rm};
  std::vector<std::pair<AutogradMeta*, size_t>> stack{{rm, 0}};
  while (!stack.empty()) {
    auto& [m, next] = stack.back();
    Node* fn = m->grad_fn.get();
    if (fn && next < fn->inputs.size()) {
      AutogradMeta* child = fn->inputs[next++].get();
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(m);
      stack.pop_back();
    }
  }

  std::unordered_map<AutogradMeta*, size_t> id;
  size_t constants = 0;
  for (AutogradMeta* m : order) {
    const size_t n = id.emplace(m, id.size()).first->second;
    const char* root_style = m == rm ? kRootStyle : "";
    Node* fn = m->grad_fn.get();
    if (!fn) {
      os << "  n" << n << " [shape=ellipse, style=filled, fillcolor=\"#dbeafe\", label=\"leaf\\n"
         << shape_label(m->shape, m->dtype) << "\"" << root_style << "];\n";
      continue;
    }
    os << "  n" << n << " [shape=box, label=\"" << escape(fn->name) << "\\n"
       << shape_label(m->shape, m->dtype) << "\"" << root_style << "];\n";
    for (size_t i = 0; i < fn->inputs.size(); ++i) {
      if (AutogradMeta* in = fn->inputs[i].get()) {
        os << "  n" << id.at(in) << " -> n" << n << ";\n";
      } else {
        const size_t c = constants++;
        const Shape& s = i < fn->input_shapes.size() ? fn->input_shapes[i] : Shape{};
        os << "  c" << c
           << " [shape=note, style=dashed, color=gray50, fontcolor=gray30, fontsize=9, label=\"const\\n"
           << shape_str(s) << "\"];\n"
           << "  c" << c << " -> n" << n << " [style=dashed, color=gray50];\n";
      }
    }
  }
  os << "}\n";
  return os.str();
}

void write_graph_dot(const Tensor& root, const std::string& path) {
  std::string dot = graph_to_dot(root);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  NABLA_CHECK(out, "graph_dot: cannot open ", path, " for writing: ", std::strerror(errno));
  out << dot;
  out.close();
  NABLA_CHECK(out, "graph_dot: cannot write ", path, ": ", std::strerror(errno));
}

void maybe_dump_graph(const Tensor& root) {
  const char* path = std::getenv("NABLA_GRAPH_DOT");
  if (!path || !*path) return;
  // Backward may run on several threads at once; one writer at a time keeps the file whole.
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  write_graph_dot(root, path);
}

}  // namespace nabla::autograd
