#include "apps/common/vrgd_step.h"

#include "apps/common/accuracy.h"
#include "autograd/autograd.h"
#include "engine/tensor.h"
#include "ops/elementwise.h"

namespace nabla::apps {

namespace {
// Examples j, j + k, j + 2k, ... of a batch [B, ...] (k divides B), contiguous.
Tensor strided_part(const Tensor& t, int64_t j, int64_t k) {
  Shape s = t.shape();
  Shape split{s[0] / k, k};
  split.insert(split.end(), s.begin() + 1, s.end());
  return t.reshape(split).select(1, j).contiguous();
}
}  // namespace

VrStepResult vr_forward_backward(vrgd::Gsnr& gsnr, nn::Module& model, const Tensor& inputs,
                                 const Tensor& labels, int64_t k, const ForwardFn& forward, bool want_stats,
                                 const vrgd::AllReduceSum& ranks, int64_t world_size) {
  Tensor hits;  // on the device: one host read per step
  VrStepResult out;
  out.loss = vrgd::accumulate_micro_batches(gsnr, inputs.size(0), k, [&](int64_t start, int64_t n) {
    // Partition j holds examples j, j + k, j + 2k, ... of the batch: the split that k data-parallel ranks get
    // from the sharded loader (data/loader.h), so micro-batches and ranks see the same partitions.
    const int64_t j = start / n;
    Tensor x = strided_part(inputs, j, k), y = strided_part(labels, j, k);
    ForwardOutput f = forward(model, x, y);
    if (f.logits.defined()) {  // a model without classes (DLRM's click logit) returns none
      NoGradGuard ng;
      Tensor h = topk_correct(f.logits.detach(), y, 1);
      hits = hits.defined() ? hits + h : h;
    }
    return f.loss;
  });
  out.correct = hits.defined() ? static_cast<int64_t>(hits.item()) : 0;
  if (ranks) gsnr.all_reduce(ranks, world_size);
  if (want_stats) gsnr.request_stats();
  gsnr.reduce();
  return out;
}

nlohmann::json gsnr_stats_record(const vrgd::Gsnr& gsnr, int64_t step) {
  nlohmann::json layers = nlohmann::json::object(), sizes = nlohmann::json::object();
  double n = 0, mean = 0, lo = 0, hi = 0;
  for (const auto& s : gsnr.last_stats()) {
    layers[s.name] = {s.mean_ratio, s.frac_at_gamma, s.frac_at_one};
    sizes[s.name] = s.numel;
    const double w = static_cast<double>(s.numel);
    n += w, mean += w * s.mean_ratio, lo += w * s.frac_at_gamma, hi += w * s.frac_at_one;
  }
  if (n > 0) mean /= n, lo /= n, hi /= n;
  return {{"kind", "gsnr"},      {"step", step},      {"mean_ratio", mean},
          {"frac_at_gamma", lo}, {"frac_at_one", hi}, {"gamma", gsnr.options().gamma},
          {"layers", layers},    {"numel", sizes}};
}

}  // namespace nabla::apps
