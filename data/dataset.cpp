// The in-memory dataset (dataset.h). Labels are copied out once so that get() reads a plain vector.
#include "data/dataset.h"

#include "engine/error.h"

namespace nabla::data {

void check_index(int64_t i, int64_t size, const char* who) {
  NABLA_CHECK(i >= 0 && i < size, who, ": index ", i, " is out of range for ", size, " examples");
}

TensorDataset::TensorDataset(Tensor inputs, Tensor labels) : inputs_(std::move(inputs)) {
  NABLA_CHECK(inputs_.defined() && labels.defined(), "TensorDataset: inputs and labels must be defined");
  NABLA_CHECK(inputs_.dim() >= 1, "TensorDataset: inputs need a leading example dimension, got shape ",
              inputs_.shape());
  NABLA_CHECK(labels.dim() == 1 && labels.size(0) == inputs_.size(0),
              "TensorDataset: expected labels of shape [", inputs_.size(0), "] to match inputs ",
              inputs_.shape(), ", got ", labels.shape());
  NABLA_CHECK(is_integral(labels.dtype()), "TensorDataset: labels must be integers, got ", labels.dtype());
  labels_ = labels.to_vector<int64_t>();
}

Example TensorDataset::get(int64_t i) const {
  check_index(i, size(), "TensorDataset");
  return {inputs_.select(0, i), labels_[static_cast<size_t>(i)]};
}

}  // namespace nabla::data
