// Darknet .weights files: read into and write from a DarknetNetwork.
//
// Layout (little-endian, as Darknet's load_weights_upto / save_weights_upto):
//   int32 major, int32 minor, int32 revision
//   images seen: uint64 when (major * 10 + minor) >= 2 and major, minor < 1000, else uint32
//   then, for each [convolutional] layer in order (other layer types hold no weights):
//     batch_normalize=1: biases (BN beta) [n], scales (gamma) [n], rolling_mean [n], rolling_variance [n]
//     else:              biases [n]
//     weights [n, c / groups, size, size] (row-major, the layout of our conv weight)
//   all float32. Darknet's own writer uses major 0, minor 2, revision 0.
// A file shorter than the network needs, or with bytes left after its last layer, is an error naming the
// file, the layer, the field and the byte offset. The header read is kept in the network, so writing back
// what was read gives the same bytes.
#pragma once
#include <cstdint>
#include <string>

#include "models/darknet/network.h"

namespace nabla::models::darknet {

struct WeightsOptions {
  // Read/write only layers with index < cutoff (Darknet's `partial`: e.g. darknet53.conv.74 holds the
  // first 74 layers); -1 = all. With a cutoff the file must still end exactly after the last such layer.
  int cutoff = -1;
};

// Bytes a .weights file for this network has (header included).
int64_t weights_file_size(const DarknetNetwork& net, WeightsOptions o = {});
void load_weights(DarknetNetwork& net, const std::string& path, WeightsOptions o = {});
void save_weights(const DarknetNetwork& net, const std::string& path, WeightsOptions o = {});

}  // namespace nabla::models::darknet
