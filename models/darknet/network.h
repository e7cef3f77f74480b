// A Darknet network built from a .cfg file: the layer types of YOLOv3, YOLOv3-tiny, YOLOv3-SPP and
// Darknet-53, with Darknet's shapes and inference semantics.
//
// Layers are numbered as Darknet numbers them: [net] is not a layer, the first layer after it is 0. Each
// layer reads the previous layer's output unless it says otherwise:
//   [convolutional] y = act(bn(conv(x))), conv weight [filters, c / groups, size, size], padding = size / 2
//                   when pad=1 (else `padding`), out = (h + 2 padding - size) / stride + 1. With
//                   batch_normalize=1 there is no conv bias; in evaluation mode BN is Darknet's
//                   normalize_cpu: y = (x - rolling_mean) / (sqrt(rolling_var) + 1e-6) * scales + biases
//                   (eps outside the root, 1e-6: not PyTorch's sqrt(var + 1e-5)); in training mode it is
//                   batch_norm with eps 1e-5 and momentum 0.01 (Darknet's rolling .99 / .01 update).
//                   Activations: linear, leaky (slope 0.1), relu, logistic, tanh, mish (x tanh(softplus x)).
//   [shortcut]      y = act(x + out[from]). Different shapes add as Darknet's shortcut_cpu: the first
//                   min(C1, C2) channels, out[i * sample] += from[i * stride] with stride = W1 / W2 and
//                   sample = W2 / W1 (the ResNet cfgs downsample their shortcuts this way); the width and
//                   height ratios must agree.
//   [route]         y = cat(out[l] for l in layers, dim 1); negative indices count back from this layer;
//                   all routed layers must have the same height and width.
//   [upsample]      nearest, by `stride`; y *= scale when scale != 1.
//   [maxpool]       Darknet's padding (default size - 1): windows start at -padding / 2, out = (w + padding
//                   - size) / stride + 1, cells outside the input are -inf. So size 2 stride 1 keeps 13 x 13
//                   (one column of -inf on the right), and size 2 stride 2 rounds odd sizes up.
//   [avgpool]       global average: [N, C, H, W] -> [N, C, 1, 1].
//   [softmax]       softmax over each of `groups` groups of the flattened input, after dividing by
//                   `temperature`; output [N, inputs, 1, 1].
//   [dropout]       identity in evaluation, dropout(probability) in training.
//   [yolo]          input [N, n (5 + classes), H, W] with n = len(mask): per anchor, entries x, y, w, h,
//                   objectness, classes. Evaluation mode returns Darknet's layer output: logistic on x, y,
//                   objectness and classes, w and h raw (x and y as sigmoid * s - (s - 1) / 2 with
//                   scale_x_y = s != 1). Training mode returns the raw input (the loss takes logits).
//                   yolo_layer.h decodes it into boxes.
// [net] keeps every option as data (width, height, channels and the training hyper-parameters).
//
// Speed paths (the same outputs and gradients up to the roundings of skipped intermediates; the Darknet
// oracle tests run the CPU in evaluation mode, where neither changes anything):
//   fusion          a convolutional layer with batch_normalize and activation leaky (or relu) runs BN and the
//                   activation as one batch_norm_add_relu with negative slope 0.1 (0): one pass forward, one
//                   fused backward, in training on any device and in evaluation on the GPU (the CPU keeps
//                   Darknet's order of operations for the oracle). NABLA_DARKNET_FUSED=0 or
//                   set_darknet_fused(false) turns it off.
//   channels-last   set_channels_last(true) stores the 4-D conv weights NHWC and runs the network NHWC: the
//                   input is brought to channels-last once, and conv, batch norm, the activations, shortcut,
//                   route (cat keeps channels-last), upsample and maxpool keep that layout (as ResNet with
//                   --channels-last). The [yolo] outputs are channels-last views [N, C, H, W] (values as
//                   NCHW; reshape copies where needed). On the GPU this lets cuDNN run bf16 convolutions
//                   NHWC.
//
// Parameters are named by layer index: "12.conv.weight", "12.conv.bias" (no BN), "12.bn.weight" (Darknet's
// scales), "12.bn.bias" (Darknet's biases), "12.bn.running_mean", "12.bn.running_var".
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/darknet/cfg.h"
#include "models/nn/layers.h"

namespace nabla::models::darknet {

enum class LayerType { convolutional, shortcut, route, upsample, maxpool, avgpool, softmax, dropout, yolo };
enum class Activation { linear, leaky, relu, logistic, tanh, mish };

const char* layer_type_name(LayerType t);
const char* activation_name(Activation a);
Tensor activate(const Tensor& x, Activation a);

// [net]: the input size and the training hyper-parameters, kept as data.
struct NetConfig {
  int width = 0, height = 0, channels = 0;
  int batch = 1, subdivisions = 1;
  float momentum = 0.9f, decay = 0.0001f, learning_rate = 0.001f;
  int burn_in = 0, max_batches = 0;
  std::string policy = "constant";
  std::vector<int> steps;
  std::vector<float> scales;
  float angle = 0, saturation = 1, exposure = 1, hue = 0;
  std::vector<CfgOption> options;  // every [net] option as written, with its line
};

struct YoloParams {
  std::vector<int> mask;       // which anchors this layer predicts (indices into anchors / 2)
  std::vector<float> anchors;  // w0, h0, w1, h1, ... in pixels of the network input
  int classes = 20, num = 1, max_boxes = 90, random = 0;
  float jitter = 0.2f, ignore_thresh = 0.5f, truth_thresh = 1.0f, scale_x_y = 1.0f;
  float anchor_w(int n) const { return anchors[2 * mask[n]]; }
  float anchor_h(int n) const { return anchors[2 * mask[n] + 1]; }
};

// One convolutional layer: conv (+ BN) + activation.
class DarknetConv : public nn::Module {
 public:
  DarknetConv(int in_channels, int filters, int size, int stride, int padding, int groups,
              bool batch_normalize, Activation activation);
  Tensor forward(const Tensor& x) override;
  // bn(conv(x)) with the activation; fused as the header says.
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm> bn;  // null without batch_normalize
  Activation activation;
};

struct Layer {
  LayerType type;
  int index = 0, line = 0;  // Darknet's layer index and the cfg line of its [section]
  int in_c = 0, in_h = 0, in_w = 0, out_c = 0, out_h = 0, out_w = 0;
  // convolutional
  int filters = 0, size = 0, stride = 1, padding = 0, groups = 1;
  bool batch_normalize = false;
  Activation activation = Activation::linear;
  std::shared_ptr<DarknetConv> conv;
  // shortcut (from) and route (layers): absolute layer indices
  std::vector<int> inputs;
  // upsample
  float scale = 1;
  // softmax
  float temperature = 1;
  // dropout
  float probability = 0.5f;
  // yolo
  YoloParams yolo;
};

class DarknetNetwork : public nn::Module {
 public:
  // Builds the network; throws nabla::Error naming file, line and key for unknown sections, bad values
  // and inconsistent layers.
  // allocate = false builds the layer table and shapes only (no parameters, no forward): cheap for
  // inspecting big cfgs, counting weights and FLOPs.
  explicit DarknetNetwork(const Cfg& cfg, bool allocate = true);
  static std::shared_ptr<DarknetNetwork> from_file(const std::string& cfg_path, bool allocate = true);

  // The last layer's output.
  Tensor forward(const Tensor& x) override;
  // The output of every layer, in order.
  std::vector<Tensor> forward_all(const Tensor& x);
  // The outputs of the [yolo] layers (see the header comment for evaluation vs training).
  std::vector<Tensor> forward_yolo(const Tensor& x);

  std::vector<int> yolo_layers() const;
  const std::string& cfg_path() const { return cfg_path_; }

  // Channels-last execution (see the header comment): on converts the parameters now (call it after
  // to(device) or before; moves keep the layout) and makes forward bring its input to channels-last; off
  // converts back.
  void set_channels_last(bool on);
  bool channels_last() const { return channels_last_; }

  NetConfig net;
  std::vector<Layer> layers;
  // Options that no layer read, "file:line: [type] key" (Darknet prints these as "Unused field").
  std::vector<std::string> unused_options;
  // The header of the last .weights file read (weights.h writes it back unchanged).
  int32_t weights_major = 0, weights_minor = 2, weights_revision = 0;
  uint64_t images_seen = 0;

 private:
  // Runs layers 0..last; keeps every output when keep_all, else only those a later layer reads.
  std::vector<Tensor> run(const Tensor& x, bool keep_all);
  Tensor run_layer(const Layer& l, const Tensor& x, const std::vector<Tensor>& outs);
  std::string cfg_path_;
  bool allocated_ = true;
  bool channels_last_ = false;
  std::vector<int> last_use_;  // last layer that reads each layer's output (for freeing)
};

// Whether conv + BN + leaky/relu layers use batch_norm_add_relu: NABLA_DARKNET_FUSED (default 1; 0 turns it
// off), read once; set_darknet_fused overrides it for the process (tests compare the two paths).
bool darknet_fused();
void set_darknet_fused(bool on);

// Section types this builder supports, and Darknet's section types it does not.
std::vector<std::string> supported_section_types();

}  // namespace nabla::models::darknet
