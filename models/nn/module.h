// nn::Module: the base of every layer and model, as in PyTorch.
//
// A module owns named parameters (tensors that require grad and that optimizers update), named buffers
// (state that is saved but not trained, e.g. BatchNorm's running statistics) and named submodules. Names
// compose with dots: "features.0.weight". Handles are stable: load_state_dict copies values into the
// existing tensors, so a layer's member Tensor and the optimizer's list keep pointing at the same storage.
//
// Layers with one input and one output override forward(x); modules with other signatures add their own
// methods (forward() then throws, naming the module).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace nabla::nn {

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  const std::string& type_name() const { return type_name_; }

  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  // Every module below this one (not itself), depth first, with its dotted name.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules() const;
  int64_t num_parameters(bool trainable_only = false) const;

  // Moves every parameter and buffer to `device` in place (handles stay valid; gradients are dropped).
  void to(Device device);
  // Lays every 4-D parameter and buffer out in `format` in place (conv weights become [K, kh, kw, C] in
  // memory for ChannelsLast), keeping the handles, so optimizers built before or after keep working;
  // gradients are dropped. Other tensors are untouched. Use with inputs in the same format
  // (x.contiguous(MemoryFormat::ChannelsLast)), as model.to(memory_format=torch.channels_last) in PyTorch.
  void to(MemoryFormat format);

  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

  // Parameters then buffers, each in registration order, with dotted names.
  NamedTensors state_dict() const;
  // strict: every name must be present with the same shape and dtype, and no extra names; otherwise one
  // Error lists the missing, unexpected and mismatched entries. Copies values in place (no autograd).
  void load_state_dict(const NamedTensors& state, bool strict = true);

  // A readable tree of the module, its submodules and parameter counts (like print(model) in PyTorch).
  std::string summary() const;

 protected:
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  virtual std::string extra_repr() const { return ""; }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void check_new_name(const std::string& name) const;
  void summary_rec(std::string& out, const std::string& name, int depth) const;

  std::string type_name_;
  bool training_ = true;
  NamedTensors params_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace nabla::nn
