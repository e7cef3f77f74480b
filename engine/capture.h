// Whether this thread is recording a CUDA graph (cuda/graph.h), for the layers that must refuse work a
// graph cannot replay.
//
// While a graph captures, the kernels queued on the device's compute stream are recorded, not run; each
// replay runs them again with the same arguments. Three kinds of work break that, and each is refused with
// an error naming it, instead of being recorded wrongly:
//   - a CPU kernel (ops/dispatch.h): it runs once, at capture, and is not part of the replay;
//   - a copy between host and device, item(), a synchronisation (cuda/copy.cu, cuda/runtime.cpp): the host
//     would read or write its buffer once, at capture;
//   - random numbers on the device (ops/factory.cpp, dropout in ops/nn.cpp): the generator's seed and offset
//     are kernel arguments, so every replay would draw the same numbers.
// Host values given to kernels as arguments (a learning rate, Adam's bias correction from the step count)
// are frozen at capture too; the optimizers that depend on a per-step host value refuse to be captured.
#pragma once

namespace nabla {

bool capturing_cuda_graph();             // this thread is inside Graph::capture
void set_capturing_cuda_graph(bool on);  // for cuda/graph.cpp

}  // namespace nabla
