// Shared by the PSTRN tests' CUDA parity cases (test_tensor_ring.cpp, test_tr_lstm.cpp).
#pragma once
#include <algorithm>

#include "models/nn/module.h"
#include "testing.h"

namespace nabla::test {

// After the same loss's backward on both: every parameter's gradient of `gpu` equals `cpu`'s within `tol`,
// relative to the largest magnitude of the CPU gradient (at least `floor`).
inline void expect_same_gradients(nn::Module& cpu, nn::Module& gpu, double floor, double tol) {
  auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    const Tensor gc = pc[i].second.grad(), gg = pg[i].second.grad().to(Device::cpu());
    ASSERT_TRUE(gc.defined() && gg.defined()) << pc[i].first;
    const double scale = std::max(floor, amax(abs(gc)).item_double());
    expect_close(div(gg, scalar_like(scale, gg)), div(gc, scalar_like(scale, gc)), tol);
  }
}

}  // namespace nabla::test
