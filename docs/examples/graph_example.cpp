// The internals guide's example (docs/internals.md): builds the graph of a tiny layer and writes it as DOT.
//   ./build/graph_example docs/images/mlp_graph.dot && dot -Tpng docs/images/mlp_graph.dot -o docs/images/mlp_graph.png
#include "nabla.h"

using namespace nabla;

int main(int argc, char** argv) {
  manual_seed(0);
  Tensor x = randn({4, 3});
  Tensor w = randn({3, 2}, {.requires_grad = true});
  Tensor b = zeros({2}, {.requires_grad = true});
  Tensor loss = mean(relu(matmul(x, w) + b));
  write_graph_dot(loss, argc > 1 ? argv[1] : "graph.dot");
  loss.backward();
  std::printf("loss %.4f\ndloss/dw = %s\n", loss.item(), w.grad().str().c_str());
  return 0;
}
