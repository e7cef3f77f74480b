// Tensor: a cheap handle (one shared pointer) to a TensorImpl, which is a view of a Storage.
//
//   element (i0, ..., ik) lives at  storage.data + (offset + i0*strides[0] + ... + ik*strides[k]) * itemsize
//
// Views (reshape, permute, transpose, narrow, select, expand, squeeze, unsqueeze) make a new TensorImpl
// over the same Storage with other sizes/strides/offset; writes through one view are seen by all.
// Copying a Tensor copies the handle, not the data; clone() copies the data.
//
// Autograd state (requires_grad, grad, grad_fn, hooks) lives in an AutogradMeta that is created only for
// tensors that take part in differentiation (autograd/autograd.h). The methods below that touch it are
// defined in autograd/; the view and arithmetic methods are defined in ops/ (this header declares them so
// that `x.reshape({2, 3})` reads naturally; the engine itself never calls them).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/shape.h"
#include "engine/storage.h"

namespace nabla {

namespace autograd {
struct AutogradMeta;
struct Node;
}  // namespace autograd

class Tensor;

// How a 4-D [N, C, H, W] tensor is laid out in memory (PyTorch's torch.contiguous_format and
// torch.channels_last). Contiguous: row-major NCHW. ChannelsLast: memory order N, H, W, C, i.e. strides
// {H*W*C, 1, W*C, C}; the logical shape stays [N, C, H, W], so every op sees the same indices and only the
// kernels that care (convolution, batch norm, pooling) look at the layout. cuDNN's NHWC convolutions on
// tensor cores are much faster than NCHW ones in bf16, which is why this exists.
enum class MemoryFormat { Contiguous, ChannelsLast };
const char* memory_format_name(MemoryFormat f);

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape sizes;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  std::shared_ptr<autograd::AutogradMeta> autograd;  // null: does not require grad and has no grad_fn
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // A new tensor with uninitialised memory, row-major or (4-D only) channels-last.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu(),
                      MemoryFormat format = MemoryFormat::Contiguous);
  // A new tensor with uninitialised memory and the given strides, which must be non-overlapping and dense
  // (a permutation of a contiguous layout: the storage holds exactly numel elements).
  static Tensor empty_strided(const Shape& shape, const Strides& strides, DType dtype = DType::f32,
                              Device device = Device::cpu());
  // A view of existing storage.
  static Tensor make_view(std::shared_ptr<Storage> storage, Shape sizes, Strides strides, int64_t offset,
                          DType dtype);

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  // Two handles to the same TensorImpl (not merely the same storage).
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- metadata ----
  const Shape& shape() const { return impl_->sizes; }
  const Strides& strides() const { return impl_->strides; }
  int64_t dim() const { return static_cast<int64_t>(impl_->sizes.size()); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const { return numel_of(impl_->sizes); }
  int64_t offset() const { return impl_->offset; }
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device(); }
  size_t itemsize() const { return nabla::itemsize(impl_->dtype); }
  size_t nbytes() const { return numel() * itemsize(); }
  bool is_contiguous() const;
  // Row-major (Contiguous) or channels-last (a 4-D tensor with strides {H*W*C, 1, W*C, C}); size-1 dims
  // may have any stride, so a tensor can be both (e.g. C == 1 or H == W == 1), as in PyTorch.
  bool is_contiguous(MemoryFormat format) const;
  // ChannelsLast for a 4-D tensor that is channels-last and not also row-major; else Contiguous.
  MemoryFormat suggest_memory_format() const;
  // Non-overlapping and dense (see engine/shape.h): a flat walk over the storage visits each element once.
  bool is_non_overlapping_and_dense() const;
  const std::shared_ptr<Storage>& storage() const { return impl_->storage; }

  // ---- raw data (CPU) ----
  void* data_ptr() const;
  template <class T>
  T* data() const {
    check_dtype(dtype_of<T>, "data<T>()");
    return static_cast<T*>(data_ptr());
  }
  // The value of a one-element tensor, converted to T (any device: copies to the host when needed).
  template <class T = double>
  T item() const {
    return static_cast<T>(item_double());
  }
  double item_double() const;
  // All elements in row-major order, converted to T (copies; for tests and printing).
  template <class T = double>
  std::vector<T> to_vector() const {
    std::vector<double> d = to_double_vector();
    return std::vector<T>(d.begin(), d.end());
  }
  std::vector<double> to_double_vector() const;

  std::string str() const;  // readable printing, PyTorch-like (engine/print.cpp)

  // ---- autograd (defined in autograd/) ----
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  void zero_grad() const;  // drops the gradient, as PyTorch's set_to_none
  bool is_leaf() const;
  std::shared_ptr<autograd::Node> grad_fn() const;
  void retain_grad() const;
  // Calls hook(grad) when this tensor's gradient has been computed in backward; a defined return value
  // replaces the gradient. Returns a handle for remove_hook.
  int register_hook(std::function<Tensor(const Tensor&)> hook) const;
  // For leaves: called after the gradient was accumulated into .grad() (data-parallel starts the
  // all-reduce of a bucket from here).
  int register_post_accumulate_hook(std::function<void(const Tensor&)> hook) const;
  void remove_hook(int handle) const;
  // Back-propagates from this tensor: a scalar uses gradient 1; otherwise pass `grad` of this shape.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  // Same storage, no autograd history.
  Tensor detach() const;
  // Points this tensor (every handle to it) at other's data: storage, sizes, strides, dtype. Used to move
  // parameters between devices in place (Module::to), like PyTorch's `param.data = ...`. Only for leaves.
  void set_data(const Tensor& other) const;

  // ---- views and common ops (defined in ops/) ----
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;
  // This tensor when it already has `format`, else a copy in that layout (differentiable).
  Tensor contiguous(MemoryFormat format) const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor sum() const;
  Tensor mean() const;
  // In-place (no autograd history; use under no_grad or on tensors that do not require grad).
  Tensor& copy_(const Tensor& src);
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  void check_dtype(DType expected, const char* what) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Named tensors in order: state dicts, optimizer state, safetensors files.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

}  // namespace nabla
