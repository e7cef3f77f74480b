// Datasets: the random-access interface that the DataLoader draws examples from, and the in-memory one.
//
// A Dataset is a list of size() examples; get(i) returns example i as {input, label}. get() is const and
// must be safe to call from several threads at once (the loader's workers do), so datasets keep no
// per-call state: TensorDataset hands out views of one big tensor, ImageFolder decodes a file per call.
//
// Conventions for images across data/: u8 images are HWC ([H, W, C], C = 1 or 3, or [H, W] for gray
// MNIST-style data), as they come out of files; to_float() turns them into f32 CHW in [0, 1], the layout
// the models take. Labels are class indices (i64 when stored in tensors).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/tensor.h"

namespace nabla::data {

struct Example {
  Tensor input;
  int64_t label = 0;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Example i, 0 <= i < size(); throws nabla::Error naming the index when it is out of range.
  virtual Example get(int64_t i) const = 0;
};

// What the file readers (idx.h, cifar.h) return: images [N, ...] u8 and labels [N] i64.
struct LabeledImages {
  Tensor images;
  Tensor labels;
  Tensor coarse_labels;  // CIFAR-100 only (the 20 super-classes); undefined elsewhere
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// Examples are rows of `inputs` ([N, ...], any dtype; get() returns a view, not a copy) with the labels
// of `labels` ([N], integer dtype).
class TensorDataset final : public Dataset {
 public:
  TensorDataset(Tensor inputs, Tensor labels);
  explicit TensorDataset(const LabeledImages& d) : TensorDataset(d.images, d.labels) {}

  int64_t size() const override { return inputs_.size(0); }
  Example get(int64_t i) const override;
  const Tensor& inputs() const { return inputs_; }

 private:
  Tensor inputs_;
  std::vector<int64_t> labels_;
};

// Bounds check shared by the datasets: "who: index 12 is out of range for 10 examples".
void check_index(int64_t i, int64_t size, const char* who);

}  // namespace nabla::data
