// The autograd graph as a Graphviz picture, for teaching and debugging.
//
//   Tensor loss = mean((matmul(x, w) + b - y) * (...));
//   write_graph_dot(loss, "graph.dot");          // then: dot -Tpng graph.dot -o graph.png
//
// The graph is what Tensor::backward walks: from the root, AutogradMeta::grad_fn to its Node, and
// Node::inputs to the tensors it was computed from. In the picture data flows top to bottom:
//   - a box per Node: the op name and the shape of the tensor it produced ("matmul\n[32,64]");
//   - an ellipse per leaf that requires grad (a parameter): "leaf\n[784,64]";
//   - a small dashed note per input that needs no gradient (data, labels, scalars): "const\n[32,784]";
//     these are not shared, since the graph does not keep their identity;
//   - an edge from each input to the op that consumed it (two edges when an op uses a tensor twice);
//   - the root drawn bold and filled.
// The dtype follows the shape when it is not f32. Node ids follow a post-order walk from the root, so
// the output is the same for the same graph.
//
// Debug knob: with the environment variable NABLA_GRAPH_DOT=file.dot set, every Tensor::backward calls
// maybe_dump_graph(root) before it runs, which writes the graph there (each call overwrites the file, so
// after a training loop it holds the last step's graph).
#pragma once
#include <string>

#include "engine/tensor.h"

namespace nabla::autograd {

// A DOT "digraph" of the graph reachable from root. A root that does not require grad gives a graph with
// one note saying so; an undefined root throws nabla::Error.
std::string graph_to_dot(const Tensor& root);
// Writes graph_to_dot(root) to path; throws nabla::Error naming the path when it cannot.
void write_graph_dot(const Tensor& root, const std::string& path);
// Writes the graph to $NABLA_GRAPH_DOT when that variable is set and not empty; otherwise does nothing.
void maybe_dump_graph(const Tensor& root);

}  // namespace nabla::autograd

namespace nabla {
using autograd::graph_to_dot;
using autograd::write_graph_dot;
}  // namespace nabla
