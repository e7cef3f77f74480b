// Training checkpoints: one safetensors file holding everything a run needs to continue bit for bit.
//
//   tensors   "model.<name>"  every entry of the model's state_dict (parameters and buffers)
//             "optim.<name>"  the optimizer's state tensors (moments, momentum buffers, step counts)
//   metadata  format, step, epoch, loader position (epoch, batch), RNG (seed, offset), optimizer name,
//             and free-form entries the binary adds (e.g. its command-line options as JSON)
//
// Writing goes through save_safetensors, which writes a temporary file, fsyncs and renames it, so a crash
// never leaves a broken checkpoint. A PyTorch user can open the file with safetensors.torch.load_file.
#pragma once
#include <map>
#include <string>

#include "algorithms/optim/optimizer.h"
#include "data/loader.h"
#include "engine/random.h"
#include "models/nn/module.h"

namespace nabla::apps {

struct TrainState {
  int64_t step = 0;   // optimizer steps taken
  int64_t epoch = 0;  // epochs completed
  data::LoaderPosition loader;
  Generator rng;  // the default generator's (seed, offset)
  std::map<std::string, std::string> extra;
};

void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer& optimizer,
                     const TrainState& state);

// Loads into `model` and `optimizer` (their shapes and names must match: the errors list what does not)
// and returns the rest. Throws nabla::Error naming the file for anything missing or malformed.
TrainState load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer& optimizer);

}  // namespace nabla::apps
