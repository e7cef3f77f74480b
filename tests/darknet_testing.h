// Test helper: random weights for a Darknet network that keep activations O(1) through a deep net in
// evaluation mode, the same for every network built from one cfg with the same seed. Conv weights
// N(0, 1.4 / sqrt(fan_in)); with batch norm: rolling_var U(0.5, 1.5), rolling_mean N(0, 0.2), biases
// N(0, 0.2) and scales U(0.8, 1.2) (near_one) or N(0, 1) (signed_normal: the pruning tests rank channels by
// |scale|, so they want scales of both signs and far from each other); without: conv biases N(0, 0.2).
#pragma once
#include <cmath>
#include <cstdint>

#include "models/darknet/network.h"
#include "nabla.h"

namespace nabla::test {

enum class BnScales { near_one, signed_normal };

inline void randomize_darknet(models::darknet::DarknetNetwork& net, uint64_t seed,
                              BnScales scales = BnScales::near_one) {
  using models::darknet::Layer;
  using models::darknet::LayerType;
  Generator g{seed, 0};
  NoGradGuard ng;
  for (const Layer& l : net.layers) {
    if (l.type != LayerType::convolutional) continue;
    auto& c = *l.conv;
    const double fan_in = static_cast<double>(c.conv->weight.numel() / c.conv->weight.size(0));
    c.conv->weight.copy_(normal(c.conv->weight.shape(), 0, 1.4 / std::sqrt(fan_in), {}, &g));
    if (c.bn) {
      c.bn->running_var.copy_(uniform(c.bn->running_var.shape(), 0.5, 1.5, {}, &g));
      c.bn->running_mean.copy_(normal(c.bn->running_mean.shape(), 0, 0.2, {}, &g));
      c.bn->weight.copy_(scales == BnScales::near_one ? uniform(c.bn->weight.shape(), 0.8, 1.2, {}, &g)
                                                      : normal(c.bn->weight.shape(), 0, 1.0, {}, &g));
      c.bn->bias.copy_(normal(c.bn->bias.shape(), 0, 0.2, {}, &g));
    } else {
      c.conv->bias.copy_(normal(c.conv->bias.shape(), 0, 0.2, {}, &g));
    }
  }
}

}  // namespace nabla::test
