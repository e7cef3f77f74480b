#include "engine/tensor.h"

#include <cstring>

#include "engine/error.h"
#include "engine/memory.h"

namespace nabla {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      int idx = std::stoi(s.substr(5), &used);
      if (used == s.size() - 5 && idx >= 0) return cuda(idx);
    } catch (const std::exception&) {
    }
  }
  fail("device: cannot parse '", s, "' (expected cpu, cuda or cuda:N)");
}

const char* memory_format_name(MemoryFormat f) {
  return f == MemoryFormat::ChannelsLast ? "channels_last" : "contiguous";
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, MemoryFormat format) {
  for (int64_t s : shape) NABLA_CHECK(s >= 0, "empty: negative size in shape ", shape);
  NABLA_CHECK(format == MemoryFormat::Contiguous || shape.size() == 4,
              "empty: channels_last needs a 4-D [N, C, H, W] shape, got ", shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage =
      std::make_shared<Storage>(nbytes_of(shape, static_cast<int64_t>(nabla::itemsize(dtype))), device);
  impl->sizes = shape;
  impl->strides =
      format == MemoryFormat::ChannelsLast ? channels_last_strides(shape) : contiguous_strides(shape);
  impl->dtype = dtype;
  if (memory::live_tracking()) memory::detail::describe(impl->storage.get(), shape, dtype);
  return Tensor(std::move(impl));
}

Tensor Tensor::empty_strided(const Shape& shape, const Strides& strides, DType dtype, Device device) {
  for (int64_t s : shape) NABLA_CHECK(s >= 0, "empty_strided: negative size in shape ", shape);
  NABLA_CHECK(strides.size() == shape.size() && nabla::is_non_overlapping_and_dense(shape, strides),
              "empty_strided: strides ", strides, " are not a dense, non-overlapping layout of shape ",
              shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage =
      std::make_shared<Storage>(nbytes_of(shape, static_cast<int64_t>(nabla::itemsize(dtype))), device);
  impl->sizes = shape;
  impl->strides = strides;
  impl->dtype = dtype;
  if (memory::live_tracking()) memory::detail::describe(impl->storage.get(), shape, dtype);
  return Tensor(std::move(impl));
}

Tensor Tensor::make_view(std::shared_ptr<Storage> storage, Shape sizes, Strides strides, int64_t offset,
                         DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->sizes = std::move(sizes);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

int64_t Tensor::size(int64_t d) const { return impl_->sizes[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return impl_->strides[wrap_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (impl_->sizes[d] == 1) continue;
    if (impl_->strides[d] != expected) return false;
    expected *= impl_->sizes[d];
  }
  return true;
}

bool Tensor::is_contiguous(MemoryFormat format) const {
  if (format == MemoryFormat::Contiguous) return is_contiguous();
  if (dim() != 4) return false;
  int64_t expected = 1;
  for (int64_t d : {1, 3, 2, 0}) {  // C innermost, then W, H, N
    if (impl_->sizes[d] == 1) continue;
    if (impl_->strides[d] != expected) return false;
    expected *= impl_->sizes[d];
  }
  return true;
}

MemoryFormat Tensor::suggest_memory_format() const {
  return dim() == 4 && !is_contiguous() && is_contiguous(MemoryFormat::ChannelsLast)
             ? MemoryFormat::ChannelsLast
             : MemoryFormat::Contiguous;
}

bool Tensor::is_non_overlapping_and_dense() const {
  return nabla::is_non_overlapping_and_dense(impl_->sizes, impl_->strides);
}

void* Tensor::data_ptr() const {
  NABLA_CHECK(defined(), "data_ptr: undefined tensor");
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * nabla::itemsize(impl_->dtype);
}

void Tensor::check_dtype(DType expected, const char* what) const {
  NABLA_CHECK(dtype() == expected, what, ": expected dtype ", expected, ", got ", dtype());
}

std::vector<double> Tensor::to_double_vector() const {
  NABLA_CHECK(defined(), "to_vector: undefined tensor");
  Tensor host = device().is_cpu() ? *this : to(Device::cpu());
  std::vector<double> out(numel());
  visit_dtype(dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* base = static_cast<const T*>(host.impl()->storage->data()) + host.offset();
    const int64_t nd = host.dim();
    std::vector<int64_t> idx(nd, 0);
    for (int64_t i = 0; i < static_cast<int64_t>(out.size()); ++i) {
      int64_t off = 0;
      for (int64_t d = 0; d < nd; ++d) off += idx[d] * host.strides()[d];
      out[i] = to_double(base[off]);
      for (int64_t d = nd - 1; d >= 0; --d) {
        if (++idx[d] < host.shape()[d]) break;
        idx[d] = 0;
      }
    }
  });
  return out;
}

void Tensor::set_data(const Tensor& other) const {
  NABLA_CHECK(defined() && other.defined(), "set_data: undefined tensor");
  NABLA_CHECK(is_leaf(), "set_data: only leaves can have their data replaced");
  impl_->storage = other.impl_->storage;
  impl_->sizes = other.impl_->sizes;
  impl_->strides = other.impl_->strides;
  impl_->offset = other.impl_->offset;
  impl_->dtype = other.impl_->dtype;
}

double Tensor::item_double() const {
  NABLA_CHECK(defined() && numel() == 1, "item: expected a tensor with one element, got shape ",
              defined() ? shape() : Shape{});
  return to_double_vector()[0];
}

}  // namespace nabla
