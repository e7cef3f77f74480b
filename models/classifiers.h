// Small image classifiers: LeNet-5 and an MLP, and a factory by name for the training binaries.
//
// LeNet-5 (LeCun et al. 1998, with ReLU and max pooling as is usual today), for C x S x S inputs:
//   conv 5x5 C->6 (padding 2) - relu - maxpool 2 - conv 5x5 6->16 - relu - maxpool 2
//   - flatten - fc 120 - relu - fc 84 - relu - fc classes          (28x28: 61,706 parameters for 10 classes)
// MLP: flatten - [fc hidden_i - relu]* - fc classes.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/nn/layers.h"

namespace nabla::models {

std::shared_ptr<nn::Sequential> lenet5(int64_t in_channels = 1, int64_t image_size = 28, int64_t num_classes = 10);
std::shared_ptr<nn::Sequential> mlp(int64_t in_features, const std::vector<int64_t>& hidden, int64_t num_classes);

// "lenet5", "mlp" (hidden 256,128), or a ResNet of models/resnet.h ("resnet18".."resnet152" for ImageNet-size
// inputs, "resnet20".."resnet110" for 32x32); throws naming the known models otherwise.
std::shared_ptr<nn::Module> make_classifier(const std::string& name, int64_t in_channels, int64_t image_size,
                                            int64_t num_classes);

}  // namespace nabla::models
