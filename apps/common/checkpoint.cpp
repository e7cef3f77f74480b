#include "apps/common/checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/safetensors.h"

namespace nabla::apps {
namespace {

constexpr const char* kFormat = "nabla-checkpoint-1";

const std::string* meta(const SafetensorsFile& f, const std::string& key, bool required) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) {
    NABLA_CHECK(!required, "checkpoint ", f.source, ": metadata has no field '", key, "'");
    return nullptr;
  }
  return &it->second;
}

// An integer field read in full (digits, a '-' only where negatives are allowed), in [low, high].
template <class T>
T meta_integer(const SafetensorsFile& f, const std::string& key, T low, T high, bool required = true) {
  const std::string* text = meta(f, key, required);
  if (!text) return T{};
  T v{};
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  NABLA_CHECK(
      !text->empty() && ec == std::errc() && ptr == text->data() + text->size() && v >= low && v <= high,
      "checkpoint ", f.source, ": field '", key, "' is '",
      text->size() > 40 ? text->substr(0, 40) + "..." : *text, "', expected an integer in [", low, ", ", high,
      "]");
  return v;
}

double meta_double(const SafetensorsFile& f, const std::string& key) {
  const std::string* text = meta(f, key, false);
  if (!text) return 0;
  double v = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  NABLA_CHECK(!text->empty() && ec == std::errc() && ptr == text->data() + text->size() && std::isfinite(v),
              "checkpoint ", f.source, ": field '", key, "' is '",
              text->size() > 40 ? text->substr(0, 40) + "..." : *text, "', expected a finite number");
  return v;
}

std::string exact(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer& optimizer,
                     const TrainState& s) {
  NamedTensors tensors;
  for (auto& [n, t] : model.state_dict()) tensors.emplace_back("model." + n, t);
  for (auto& [n, t] : optimizer.state_tensors()) tensors.emplace_back("optim." + n, t);
  std::map<std::string, std::string> meta = s.extra;
  meta["format"] = kFormat;
  meta["step"] = std::to_string(s.step);
  meta["epoch"] = std::to_string(s.epoch);
  meta["loader_epoch"] = std::to_string(s.loader.epoch);
  meta["loader_batch"] = std::to_string(s.loader.batch);
  meta["rng_seed"] = std::to_string(s.rng.seed);
  meta["rng_offset"] = std::to_string(s.rng.offset);
  meta["optimizer"] = optimizer.name();
  // The state's extra entries may come from a loaded checkpoint: its running sums are not this state's.
  for (const char* key : {"epoch_loss_sum", "epoch_loss_count", "epoch_correct", "epoch_seen"})
    meta.erase(key);
  if (s.partial.loss_count > 0) {
    meta["epoch_loss_sum"] = exact(s.partial.loss_sum);
    meta["epoch_loss_count"] = std::to_string(s.partial.loss_count);
    meta["epoch_correct"] = std::to_string(s.partial.correct);
    meta["epoch_seen"] = std::to_string(s.partial.seen);
  }
  save_safetensors(path, tensors, meta);
}

TrainState load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer& optimizer) {
  SafetensorsFile f = load_safetensors(path);
  auto fmt = f.metadata.find("format");
  NABLA_CHECK(fmt != f.metadata.end() && fmt->second == kFormat, "checkpoint ", path,
              ": not a Nabla checkpoint (format '",
              fmt == f.metadata.end() ? std::string("missing") : fmt->second, "', expected '", kFormat, "')");
  auto opt = f.metadata.find("optimizer");
  NABLA_CHECK(opt != f.metadata.end() && opt->second == optimizer.name(), "checkpoint ", path,
              ": saved with optimizer '", opt == f.metadata.end() ? std::string("?") : opt->second,
              "', resuming with '", optimizer.name(), "'");
  NamedTensors model_state, optim_state;
  for (auto& [n, t] : f.tensors) {
    if (n.rfind("model.", 0) == 0)
      model_state.emplace_back(n.substr(6), t);
    else if (n.rfind("optim.", 0) == 0)
      optim_state.emplace_back(n.substr(6), t);
    else
      fail("checkpoint ", path, ": unexpected tensor '", n, "' (expected model.* or optim.*)");
  }
  TrainState s;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  s.step = meta_integer<int64_t>(f, "step", 0, kMax);
  s.epoch = meta_integer<int64_t>(f, "epoch", 0, kMax);
  s.loader.epoch = meta_integer<int64_t>(f, "loader_epoch", 0, kMax);
  s.loader.batch = meta_integer<int64_t>(f, "loader_batch", 0, kMax);
  s.rng.seed = meta_integer<uint64_t>(f, "rng_seed", 0, std::numeric_limits<uint64_t>::max());
  // Below 2^63: the offset grows with every draw and must not wrap.
  s.rng.offset = meta_integer<uint64_t>(f, "rng_offset", 0, static_cast<uint64_t>(kMax));
  s.partial.loss_sum = meta_double(f, "epoch_loss_sum");
  s.partial.loss_count = meta_integer<int64_t>(f, "epoch_loss_count", 0, kMax, false);
  s.partial.seen = meta_integer<int64_t>(f, "epoch_seen", 0, kMax, false);
  s.partial.correct = meta_integer<int64_t>(f, "epoch_correct", 0, s.partial.seen, false);
  try {
    model.load_state_dict(model_state);
    optimizer.load_state_tensors(optim_state);
  } catch (const Error& e) {
    fail("checkpoint ", path, ": ", e.what());
  }
  for (auto& [k, v] : f.metadata) s.extra[k] = v;
  return s;
}

void check_against_run(const std::string& path, const TrainState& s, int64_t steps_per_epoch, int64_t epochs,
                       uint64_t seed, uint64_t min_rng_offset) {
  const std::string where = "checkpoint " + path + ": ";
  NABLA_CHECK(s.loader.epoch <= epochs, where, "field 'loader_epoch' is ", s.loader.epoch,
              ", expected at most the run's --epochs ", epochs);
  NABLA_CHECK(s.loader.batch <= steps_per_epoch, where, "field 'loader_batch' is ", s.loader.batch,
              ", expected at most the run's ", steps_per_epoch, " steps per epoch");
  // A run stopped by --max-steps part-way through an epoch counts that epoch as done.
  NABLA_CHECK(s.epoch <= s.loader.epoch + 1, where, "field 'epoch' is ", s.epoch,
              ", expected at most field 'loader_epoch' + 1 = ", s.loader.epoch + 1);
  // loader_epoch <= epochs and batch <= steps_per_epoch: the product cannot overflow for any run that could
  // have written it, but the run's epochs may be huge.
  const long double expected = static_cast<long double>(s.loader.epoch) * steps_per_epoch + s.loader.batch;
  NABLA_CHECK(static_cast<long double>(s.step) == expected, where, "field 'step' is ", s.step,
              ", but the loader position (epoch ", s.loader.epoch, ", batch ", s.loader.batch, ") at ",
              steps_per_epoch, " steps per epoch means step ", static_cast<double>(expected),
              " (was it written by a run with another --batch-size, --limit-train or data set?)");
  NABLA_CHECK(s.rng.seed == seed, where, "field 'rng_seed' is ", s.rng.seed, ", this run has --seed ", seed,
              " (resume with --seed ", s.rng.seed, ")");
  NABLA_CHECK(s.rng.offset >= min_rng_offset, where, "field 'rng_offset' is ", s.rng.offset, ", below ",
              min_rng_offset, ", where the model's initialisation leaves the generator");
}

void check_checkpoint_file(const std::string& path, const std::string& option) {
  struct stat st {};
  NABLA_CHECK(::stat(path.c_str(), &st) == 0, option, " ", path, ": no such file");
  NABLA_CHECK(!S_ISDIR(st.st_mode), option, " ", path, ": is a directory, expected a checkpoint file");
  NABLA_CHECK(S_ISREG(st.st_mode), option, " ", path, ": not a regular file, expected a checkpoint file");
}

bool remove_stale_temporary(const std::string& path) {
  const std::string tmp = path + ".tmp";
  struct stat st {};
  if (::lstat(tmp.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  NABLA_CHECK(::unlink(tmp.c_str()) == 0, "checkpoint ", path, ": cannot remove the stale ", tmp);
  return true;
}

}  // namespace nabla::apps
