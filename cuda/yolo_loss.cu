// CUDA kernel of Darknet's [yolo] training delta (slot and contract: ops/yolo_loss.h; the CPU kernel, which
// follows forward_yolo_layer statement by statement, is ops/cpu/yolo_loss.cpp; tests/cuda/
// test_parity_yolo_loss.cpp holds the two together). Three launches on the compute stream, no host sync:
//   1. pass 1, one thread per (image b, anchor a, cell): the predicted box against every truth of image b
//      (the truths, [B, T, 5], are small and read through the cache), then this anchor's 5 + C entries
//      written once: box and classes "none" (delta 0), objectness -o (0 above ignore_thresh, Darknet's
//      pass-2 assignment above truth_thresh). Every element of the delta is written here.
//   2. pass 2, one warp per image: its truths in order (the order matters: later truths overwrite earlier
//      ones, and a second truth at the same cell and anchor only sets its own class), the scalar work done
//      by every lane alike, the C class entries spread over the lanes, __syncwarp between truths.
//   3. the loss value and |delta|^2, from each element's final (kind, target, weight) and z, reduced per
//      block and added to the stats in f64 atomics.
// Kind, target and weight live in scratch buffers of z's size (u8, f32, f32); target and weight are only
// written (and read) where the kind is not "none".
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/loops.cuh"
#include "cuda/runtime.h"
#include "ops/yolo_loss.h"

namespace nabla::cuda {
namespace {

using ops::YoloBox;

constexpr int kThreads = 256;
constexpr int kMaxAnchors = 32;  // anchors in `anchors` (YOLOv3 has 9)

struct Params {
  int batch, n, classes, lw, lh, net_w, net_h, total, T;
  float ignore_thresh, truth_thresh, s;
  int mask[kMaxAnchors];
  float anchors[2 * kMaxAnchors];
  int64_t outputs;  // per image
  __device__ int64_t entry(int b, int a, int e, int loc) const {
    return b * outputs + (static_cast<int64_t>(a) * (5 + classes) + e) * lw * lh + loc;
  }
};

struct Buffers {
  const float* z;
  const float* truths;
  float* delta;
  float* target;
  float* weight;
  uint8_t* kind;
  double* stats;
};

// The layer output of an entry: logistic (x, y: then scale_x_y), or the raw value for w and h.
__device__ __forceinline__ float out_xy(float z, float s) {
  float o = ops::yolo_logistic(z);
  if (s != 1.0f) o = o * s + static_cast<float>(-0.5 * (s - 1));
  return o;
}

__device__ __forceinline__ void set(const Buffers& B, int64_t k, float d, uint8_t kd, float t, float w) {
  B.delta[k] = d;
  B.kind[k] = kd;
  if (kd != ops::kYoloNone) B.target[k] = t, B.weight[k] = w;
}

__device__ YoloBox get_box(const Buffers& B, const Params& p, int anchor_global, int64_t index, int i,
                           int j) {
  const int stride = p.lw * p.lh;
  YoloBox b;
  b.x = (i + out_xy(B.z[index], p.s)) / p.lw;
  b.y = (j + out_xy(B.z[index + stride], p.s)) / p.lh;
  b.w = ::expf(B.z[index + 2 * stride]) * p.anchors[2 * anchor_global] / p.net_w;
  b.h = ::expf(B.z[index + 3 * stride]) * p.anchors[2 * anchor_global + 1] / p.net_h;
  return b;
}

__device__ YoloBox truth_box(const float* t) { return YoloBox{t[0], t[1], t[2], t[3]}; }

// The box deltas of a truth at (anchor_global, index); returns the predicted box's IoU with it.
__device__ float delta_box(const Buffers& B, const Params& p, const float* truth, int anchor_global,
                           int64_t index, int i, int j) {
  const int stride = p.lw * p.lh;
  const YoloBox pred = get_box(B, p, anchor_global, index, i, j);
  const float iou = ops::yolo_box_iou(pred, truth_box(truth));
  const float scale = 2 - truth[2] * truth[3];
  const float tx = truth[0] * p.lw - i;
  const float ty = truth[1] * p.lh - j;
  const float tw = ::logf(truth[2] * p.net_w / p.anchors[2 * anchor_global]);
  const float th = ::logf(truth[3] * p.net_h / p.anchors[2 * anchor_global + 1]);
  set(B, index, scale * (tx - out_xy(B.z[index], p.s)), ops::kYoloScaledLogistic, tx, scale);
  set(B, index + stride, scale * (ty - out_xy(B.z[index + stride], p.s)), ops::kYoloScaledLogistic, ty,
      scale);
  set(B, index + 2 * stride, scale * (tw - B.z[index + 2 * stride]), ops::kYoloMse, tw, scale);
  set(B, index + 3 * stride, scale * (th - B.z[index + 3 * stride]), ops::kYoloMse, th, scale);
  return iou;
}

// Sum of a double over the block, added to *dst by thread 0 (every thread of the block calls it).
__device__ void block_add(double v, double* dst) {
  __shared__ double part[kThreads / 32];
  __syncthreads();  // an earlier call's readers are done with part
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.0;
    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
    if (threadIdx.x == 0 && v != 0) atomicAdd(dst, v);
  }
}

__global__ void __launch_bounds__(kThreads) pass1_kernel(Buffers B, Params p) {
  const int plane = p.lw * p.lh;
  const int64_t cells = static_cast<int64_t>(p.batch) * p.n * plane;
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  double anyobj = 0;
  if (id < cells) {
    const int loc = static_cast<int>(id % plane);
    const int a = static_cast<int>((id / plane) % p.n);
    const int b = static_cast<int>(id / (static_cast<int64_t>(plane) * p.n));
    const int i = loc % p.lw, j = loc / p.lw;
    const int64_t box_index = p.entry(b, a, 0, loc);
    const YoloBox pred = get_box(B, p, p.mask[a], box_index, i, j);
    const float* tb = B.truths + static_cast<int64_t>(b) * p.T * 5;
    float best_iou = 0;
    int best_t = 0;
    for (int k = 0; k < p.T; ++k) {
      const float* t = tb + 5 * k;
      if (!t[0]) break;
      const float iou = ops::yolo_box_iou(pred, truth_box(t));
      if (iou > best_iou) best_iou = iou, best_t = k;
    }
    // Every entry of this anchor and cell: none, then objectness.
    for (int e = 0; e < 5 + p.classes; ++e)
      if (e != 4) set(B, p.entry(b, a, e, loc), 0, ops::kYoloNone, 0, 0);
    const int64_t obj_index = p.entry(b, a, 4, loc);
    const float obj = ops::yolo_logistic(B.z[obj_index]);
    anyobj = obj;
    if (best_iou > p.truth_thresh) {
      const float* t = tb + 5 * best_t;
      set(B, obj_index, 1 - obj, ops::kYoloLogistic, 1, 1);
      const int cls = static_cast<int>(t[4]);
      for (int c = 0; c < p.classes; ++c) {
        const int64_t k = p.entry(b, a, 5 + c, loc);
        const float tc = c == cls ? 1.0f : 0.0f;
        set(B, k, tc - ops::yolo_logistic(B.z[k]), ops::kYoloLogistic, tc, 1);
      }
      delta_box(B, p, t, p.mask[a], box_index, i, j);
    } else if (best_iou > p.ignore_thresh) {
      set(B, obj_index, 0, ops::kYoloNone, 0, 0);
    } else {
      set(B, obj_index, 0 - obj, ops::kYoloLogistic, 0, 1);
    }
  }
  block_add(anyobj, B.stats + ops::kYoloNoObj);
}

// One warp per image; blockDim.x == 32.
__global__ void pass2_kernel(Buffers B, Params p) {
  const int b = blockIdx.x;
  const int lane = threadIdx.x;
  const int plane = p.lw * p.lh;
  const float* tb = B.truths + static_cast<int64_t>(b) * p.T * 5;
  double iou_sum = 0, cat = 0, obj_sum = 0, r50 = 0, r75 = 0, count = 0;
  for (int k = 0; k < p.T; ++k) {
    const float* t = tb + 5 * k;
    if (!t[0]) break;
    const int i = min(static_cast<int>(t[0] * p.lw), p.lw - 1);
    const int j = min(static_cast<int>(t[1] * p.lh), p.lh - 1);
    const YoloBox shift{0, 0, t[2], t[3]};
    float best_iou = 0;
    int best_n = 0;
    for (int a = 0; a < p.total; ++a) {
      const YoloBox anchor{0, 0, p.anchors[2 * a] / p.net_w, p.anchors[2 * a + 1] / p.net_h};
      const float iou = ops::yolo_box_iou(anchor, shift);
      if (iou > best_iou) best_iou = iou, best_n = a;
    }
    int mask_n = -1;
    for (int a = 0; a < p.n; ++a)
      if (p.mask[a] == best_n) {
        mask_n = a;
        break;
      }
    if (mask_n < 0) continue;
    const int loc = j * p.lw + i;
    const int cls = static_cast<int>(t[4]);
    const int64_t class_index = p.entry(b, mask_n, 5, loc);
    // Darknet's test for "this anchor already has class deltas", read before this truth writes any.
    const bool had_class = B.delta[class_index] != 0;
    __syncwarp();
    if (lane == 0) {
      const float iou = delta_box(B, p, t, best_n, p.entry(b, mask_n, 0, loc), i, j);
      const int64_t obj_index = p.entry(b, mask_n, 4, loc);
      const float obj = ops::yolo_logistic(B.z[obj_index]);
      obj_sum += obj;
      set(B, obj_index, 1 - obj, ops::kYoloLogistic, 1, 1);
      cat += ops::yolo_logistic(B.z[class_index + static_cast<int64_t>(plane) * cls]);
      count += 1;
      if (iou > .5f) r50 += 1;
      if (iou > .75f) r75 += 1;
      iou_sum += iou;
    }
    if (had_class) {
      if (lane == 0) {
        const int64_t kc = class_index + static_cast<int64_t>(plane) * cls;
        set(B, kc, 1 - ops::yolo_logistic(B.z[kc]), ops::kYoloLogistic, 1, 1);
      }
    } else {
      for (int c = lane; c < p.classes; c += 32) {
        const int64_t kc = class_index + static_cast<int64_t>(plane) * c;
        const float tc = c == cls ? 1.0f : 0.0f;
        set(B, kc, tc - ops::yolo_logistic(B.z[kc]), ops::kYoloLogistic, tc, 1);
      }
    }
    __syncwarp();
  }
  if (lane == 0 && count > 0) {
    atomicAdd(B.stats + ops::kYoloIou, iou_sum);
    atomicAdd(B.stats + ops::kYoloClass, cat);
    atomicAdd(B.stats + ops::kYoloObj, obj_sum);
    atomicAdd(B.stats + ops::kYoloRecall50, r50);
    atomicAdd(B.stats + ops::kYoloRecall75, r75);
    atomicAdd(B.stats + ops::kYoloCount, count);
  }
}

__global__ void __launch_bounds__(kThreads) value_kernel(Buffers B, int64_t total, double s) {
  double value = 0, cost = 0;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint8_t kd = B.kind[k];
    if (kd == ops::kYoloNone) continue;
    const double d = B.delta[k];
    cost += d * d;
    value += ops::yolo_element_loss(kd, B.z[k], B.target[k], B.weight[k], s);
  }
  block_add(value, B.stats + ops::kYoloLossValue);
  block_add(cost, B.stats + ops::kYoloCost);
}

void yolo_loss_cuda(const Tensor& z, const Tensor& truths, const ops::YoloLossSpec& spec, Tensor& delta,
                    Tensor& stats) {
  DeviceGuard g(z.device().index);
  NABLA_CHECK(z.dtype() == DType::f32 && truths.dtype() == DType::f32 && delta.dtype() == DType::f32 &&
                  stats.dtype() == DType::f64,
              "yolo_loss: expected f32 z, truths and delta and f64 stats, got ", z.dtype(), ", ",
              truths.dtype(), ", ", delta.dtype(), ", ", stats.dtype());
  const int total = static_cast<int>(spec.anchors.size() / 2);
  NABLA_CHECK(total <= kMaxAnchors && spec.mask.size() <= static_cast<size_t>(kMaxAnchors),
              "yolo_loss: at most ", kMaxAnchors, " anchors on CUDA, got ", total);
  Params p{};
  p.batch = static_cast<int>(z.size(0));
  p.n = static_cast<int>(spec.mask.size());
  p.classes = spec.classes;
  p.lh = static_cast<int>(z.size(2));
  p.lw = static_cast<int>(z.size(3));
  p.net_w = spec.net_w;
  p.net_h = spec.net_h;
  p.total = total;
  p.T = static_cast<int>(truths.size(1));
  p.ignore_thresh = spec.ignore_thresh;
  p.truth_thresh = spec.truth_thresh;
  p.s = spec.scale_x_y;
  for (int a = 0; a < p.n; ++a) p.mask[a] = spec.mask[a];
  for (int a = 0; a < 2 * total; ++a) p.anchors[a] = spec.anchors[a];
  p.outputs = p.batch ? z.numel() / p.batch : 0;

  cudaStream_t st = current_stream();
  NABLA_CUDA_CHECK(cudaMemsetAsync(stats.data_ptr(), 0, sizeof(double) * ops::kYoloStats, st));
  const int64_t n = z.numel();
  if (n == 0) return;
  Tensor kind = Tensor::empty({n}, DType::u8, z.device());
  Tensor target = Tensor::empty({n}, DType::f32, z.device());
  Tensor weight = Tensor::empty({n}, DType::f32, z.device());
  Buffers B{ptr<float>(z),      ptr<float>(truths), ptr<float>(delta), ptr<float>(target),
            ptr<float>(weight), ptr<uint8_t>(kind), ptr<double>(stats)};
  const int64_t cells = static_cast<int64_t>(p.batch) * p.n * p.lw * p.lh;
  pass1_kernel<<<static_cast<unsigned>((cells + kThreads - 1) / kThreads), kThreads, 0, st>>>(B, p);
  NABLA_CUDA_LAUNCH_CHECK();
  pass2_kernel<<<static_cast<unsigned>(p.batch), 32, 0, st>>>(B, p);
  NABLA_CUDA_LAUNCH_CHECK();
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 1024);
  value_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, st>>>(B, n, static_cast<double>(spec.scale_x_y));
  NABLA_CUDA_LAUNCH_CHECK();
}

}  // namespace

NABLA_REGISTER_KERNEL(yolo_loss_kernel, cuda, yolo_loss_cuda);

}  // namespace nabla::cuda
