#include "apps/common/checkpoint.h"

#include "engine/safetensors.h"

namespace nabla::apps {
namespace {

constexpr const char* kFormat = "nabla-checkpoint-1";

int64_t meta_int(const SafetensorsFile& f, const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  NABLA_CHECK(it != m.end(), "checkpoint ", f.source, ": metadata has no '", key, "'");
  try {
    size_t used = 0;
    long long v = std::stoll(it->second, &used);
    NABLA_CHECK(used == it->second.size(), "");
    return v;
  } catch (const std::exception&) {
    fail("checkpoint ", f.source, ": metadata '", key, "' is not an integer: '", it->second, "'");
  }
}

uint64_t meta_u64(const SafetensorsFile& f, const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  NABLA_CHECK(it != m.end(), "checkpoint ", f.source, ": metadata has no '", key, "'");
  try {
    size_t used = 0;
    unsigned long long v = std::stoull(it->second, &used);
    NABLA_CHECK(used == it->second.size(), "");
    return v;
  } catch (const std::exception&) {
    fail("checkpoint ", f.source, ": metadata '", key, "' is not an unsigned integer: '", it->second, "'");
  }
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
  save_safetensors(path, tensors, meta);
}

TrainState load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer& optimizer) {
  SafetensorsFile f = load_safetensors(path);
  auto fmt = f.metadata.find("format");
  NABLA_CHECK(fmt != f.metadata.end() && fmt->second == kFormat, "checkpoint ", path, ": not a Nabla checkpoint (format '",
              fmt == f.metadata.end() ? std::string("missing") : fmt->second, "', expected '", kFormat, "')");
  auto opt = f.metadata.find("optimizer");
  NABLA_CHECK(opt != f.metadata.end() && opt->second == optimizer.name(), "checkpoint ", path,
              ": saved with optimizer '", opt == f.metadata.end() ? std::string("?") : opt->second,
              "', resuming with '", optimizer.name(), "'");
  NamedTensors model_state, optim_state;
  for (auto& [n, t] : f.tensors) {
    if (n.rfind("model.", 0) == 0) model_state.emplace_back(n.substr(6), t);
    else if (n.rfind("optim.", 0) == 0) optim_state.emplace_back(n.substr(6), t);
    else fail("checkpoint ", path, ": unexpected tensor '", n, "' (expected model.* or optim.*)");
  }
  TrainState s;
  s.step = meta_int(f, f.metadata, "step");
  s.epoch = meta_int(f, f.metadata, "epoch");
  s.loader.epoch = meta_int(f, f.metadata, "loader_epoch");
  s.loader.batch = meta_int(f, f.metadata, "loader_batch");
  s.rng.seed = meta_u64(f, f.metadata, "rng_seed");
  s.rng.offset = meta_u64(f, f.metadata, "rng_offset");
  try {
    model.load_state_dict(model_state);
    optimizer.load_state_tensors(optim_state);
  } catch (const Error& e) {
    fail("checkpoint ", path, ": ", e.what());
  }
  for (auto& [k, v] : f.metadata) s.extra[k] = v;
  return s;
}

}  // namespace nabla::apps
