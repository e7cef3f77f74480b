#include "models/classifiers.h"

#include "engine/checked.h"
#include "models/resnet.h"

namespace nabla::models {
using namespace nn;

std::shared_ptr<Sequential> lenet5(int64_t in_channels, int64_t image_size, int64_t num_classes) {
  const int64_t s1 = (image_size + 4 - 4) / 2;  // conv 5x5 pad 2 keeps the size, pool halves it
  const int64_t s2 = (s1 - 4) / 2;              // conv 5x5 no pad, pool
  NABLA_CHECK(s2 >= 1, "lenet5: image size ", image_size, " is too small (need at least 12)");
  auto net = std::make_shared<Sequential>();
  net->add(std::make_shared<Conv2d>(in_channels, 6, Pair{5, 5}, Conv2dOptions{.padding = {2, 2}}))
      .add(ReLU())
      .add(MaxPool2d({2, 2}))
      .add(std::make_shared<Conv2d>(6, 16, Pair{5, 5}))
      .add(ReLU())
      .add(MaxPool2d({2, 2}))
      .add(Flatten())
      .add(std::make_shared<Linear>(checked_product({16, s2, s2}, "lenet5: flattened features 16 x s x s"),
                                    120))
      .add(ReLU())
      .add(std::make_shared<Linear>(120, 84))
      .add(ReLU())
      .add(std::make_shared<Linear>(84, num_classes));
  return net;
}

std::shared_ptr<Sequential> mlp(int64_t in_features, const std::vector<int64_t>& hidden,
                                int64_t num_classes) {
  auto net = std::make_shared<Sequential>();
  net->add(Flatten());
  int64_t prev = in_features;
  for (int64_t h : hidden) {
    net->add(std::make_shared<Linear>(prev, h)).add(ReLU());
    prev = h;
  }
  net->add(std::make_shared<Linear>(prev, num_classes));
  return net;
}

std::shared_ptr<Module> make_classifier(const std::string& name, int64_t in_channels, int64_t image_size,
                                        int64_t num_classes) {
  if (name == "lenet5") return lenet5(in_channels, image_size, num_classes);
  if (name == "mlp")  // sizes from the data: an overflow is an error, not a negative feature count
    return mlp(
        checked_product({in_channels, image_size, image_size}, "mlp: input features channels x size x size"),
        {256, 128}, num_classes);
  if (name.rfind("resnet", 0) == 0)
    return make_resnet(name, {.num_classes = num_classes, .in_channels = in_channels});
  fail("unknown model '", name, "' (expected lenet5, mlp, resnet18/34/50/101/152 or resnet20/32/44/56/110)");
}

}  // namespace nabla::models
