// Darknet .weights reading and writing (see weights.h for the layout).
#include "models/darknet/weights.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "autograd/autograd.h"
#include "engine/error.h"
#include "ops/factory.h"

namespace nabla::models::darknet {
namespace {

bool seen_is_64(int32_t major, int32_t minor) {
  return (major * 10 + minor) >= 2 && major < 1000 && minor < 1000;
}

int header_size(const DarknetNetwork& net) {
  return 12 + (seen_is_64(net.weights_major, net.weights_minor) ? 8 : 4);
}

// The tensors of one conv layer in file order, with their names for errors.
std::vector<std::pair<const char*, Tensor>> conv_tensors(const Layer& l) {
  NABLA_CHECK(l.conv, "darknet weights: layer ", l.index,
              " has no parameters (the network was built with "
              "allocate = false)");
  const DarknetConv& c = *l.conv;
  if (c.bn)
    return {{"biases", c.bn->bias},
            {"scales", c.bn->weight},
            {"rolling_mean", c.bn->running_mean},
            {"rolling_variance", c.bn->running_var},
            {"weights", c.conv->weight}};
  return {{"biases", c.conv->bias}, {"weights", c.conv->weight}};
}

bool in_cutoff(const Layer& l, WeightsOptions o) { return o.cutoff < 0 || l.index < o.cutoff; }

}  // namespace

int64_t weights_file_size(const DarknetNetwork& net, WeightsOptions o) {
  int64_t bytes = header_size(net);
  for (const Layer& l : net.layers)
    if (l.type == LayerType::convolutional && in_cutoff(l, o))
      bytes += 4 * (static_cast<int64_t>(l.filters) * (l.batch_normalize ? 4 : 1) +
                    static_cast<int64_t>(l.filters) * (l.in_c / l.groups) * l.size * l.size);
  return bytes;
}

void load_weights(DarknetNetwork& net, const std::string& path, WeightsOptions o) {
  std::ifstream f(path, std::ios::binary);
  NABLA_CHECK(f.good(), "darknet weights: cannot open '", path, "'");
  f.seekg(0, std::ios::end);
  const int64_t file_size = f.tellg();
  f.seekg(0);
  int64_t offset = 0;
  auto read = [&](void* dst, int64_t bytes, const std::string& what) {
    NABLA_CHECK(offset + bytes <= file_size, "darknet weights: ", path, ": truncated: ", what, " needs ",
                bytes, " bytes at byte offset ", offset, " but the file has ", file_size, " bytes (",
                file_size - offset, " left); the cfg ", net.cfg_path(), " needs ", weights_file_size(net, o),
                " bytes");
    f.read(static_cast<char*>(dst), bytes);
    NABLA_CHECK(f.good(), "darknet weights: ", path, ": read error at byte offset ", offset);
    offset += bytes;
  };
  int32_t header[3];
  read(header, 12, "the header (major, minor, revision)");
  net.weights_major = header[0], net.weights_minor = header[1], net.weights_revision = header[2];
  if (seen_is_64(header[0], header[1])) {
    uint64_t seen = 0;
    read(&seen, 8, "images seen (uint64)");
    net.images_seen = seen;
  } else {
    uint32_t seen = 0;
    read(&seen, 4, "images seen (uint32)");
    net.images_seen = seen;
  }
  NoGradGuard no_grad;
  std::vector<float> buf;
  for (const Layer& l : net.layers) {
    if (l.type != LayerType::convolutional || !in_cutoff(l, o)) continue;
    for (auto& [name, t] : conv_tensors(l)) {
      buf.resize(t.numel());
      read(buf.data(), 4 * t.numel(),
           str_cat("layer ", l.index, " [convolutional] (cfg line ", l.line, ") ", name, " ", t.shape()));
      Tensor src = Tensor::empty(t.shape(), DType::f32);
      std::memcpy(src.data_ptr(), buf.data(), 4 * buf.size());
      Tensor dst = t;
      dst.copy_(src);
    }
  }
  NABLA_CHECK(offset == file_size, "darknet weights: ", path, ": ", file_size - offset,
              " bytes left after the last layer at byte offset ", offset, " (the file has ", file_size,
              " bytes; the cfg ", net.cfg_path(), " needs ", offset, ")");
}

void save_weights(const DarknetNetwork& net, const std::string& path, WeightsOptions o) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    NABLA_CHECK(f.good(), "darknet weights: cannot write '", tmp, "'");
    const int32_t header[3] = {net.weights_major, net.weights_minor, net.weights_revision};
    f.write(reinterpret_cast<const char*>(header), 12);
    if (seen_is_64(net.weights_major, net.weights_minor)) {
      const uint64_t seen = net.images_seen;
      f.write(reinterpret_cast<const char*>(&seen), 8);
    } else {
      const uint32_t seen = static_cast<uint32_t>(net.images_seen);
      f.write(reinterpret_cast<const char*>(&seen), 4);
    }
    for (const Layer& l : net.layers) {
      if (l.type != LayerType::convolutional || !in_cutoff(l, o)) continue;
      for (auto& [name, t] : conv_tensors(l)) {
        Tensor c = t.detach().to(Device::cpu()).to(DType::f32).contiguous();
        f.write(static_cast<const char*>(c.data_ptr()), 4 * c.numel());
      }
    }
    NABLA_CHECK(f.good(), "darknet weights: write error on '", tmp, "'");
  }
  NABLA_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "darknet weights: cannot rename '", tmp, "' to '",
              path, "'");
}

}  // namespace nabla::models::darknet
