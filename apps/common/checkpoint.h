// Training checkpoints: one safetensors file holding everything a run needs to continue bit for bit.
//
//   tensors   "model.<name>"  every entry of the model's state_dict (parameters and buffers)
//             "optim.<name>"  the optimizer's state tensors (moments, momentum buffers, step counts)
//   metadata  format, step, epoch, loader position (epoch, batch), RNG (seed, offset), optimizer name,
//             the running sums of an epoch stopped part-way (a checkpoint written on a signal), and
//             free-form entries the binary adds (e.g. its model and dataset)
//
// Every field read back is checked: integers in full (no sign where none can be, no trailing text, in
// range), then against the run (check_against_run): the loader position inside the run's epochs and
// consistent with the step count, the seed the run's. Errors name the file and the field:
//   checkpoint ck.safetensors: field 'rng_offset' is '-1', expected an integer in [0, 9223372036854775807]
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

// The running sums of the current epoch (the epoch line's train loss and accuracy).
struct EpochTotals {
  double loss_sum = 0;
  int64_t loss_count = 0, correct = 0, seen = 0;
};

struct TrainState {
  int64_t step = 0;   // optimizer steps taken
  int64_t epoch = 0;  // epochs completed
  data::LoaderPosition loader;
  Generator rng;        // the default generator's (seed, offset)
  EpochTotals partial;  // of the epoch at `loader` when it stopped part-way (zeros at an epoch's end)
  std::map<std::string, std::string> extra;
};

void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer& optimizer,
                     const TrainState& state);

// Loads into `model` and `optimizer` (their shapes and names must match: the errors list what does not)
// and returns the rest. Throws nabla::Error naming the file for anything missing or malformed.
TrainState load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer& optimizer);

// Range checks of a loaded state against the run that resumes it; an Error naming `path` and the field:
// loader epoch in [0, epochs], loader batch in [0, steps_per_epoch], step == loader epoch x steps_per_epoch
// + loader batch (else the checkpoint came from a run with other batches: --batch-size, --limit-train),
// rng seed == `seed` (the loaders reshuffle from --seed), rng offset >= `min_rng_offset` (where the model's
// initialisation leaves the generator in every run).
void check_against_run(const std::string& path, const TrainState& state, int64_t steps_per_epoch,
                       int64_t epochs, uint64_t seed, uint64_t min_rng_offset);

// Throws unless `path` is a regular file (a directory, a missing file: one line naming it).
void check_checkpoint_file(const std::string& path, const std::string& option);

// Removes `path`.tmp, left behind by a run killed while writing `path` (the rename never happened, so the
// checkpoint itself is whole). Returns whether there was one.
bool remove_stale_temporary(const std::string& path);

}  // namespace nabla::apps
