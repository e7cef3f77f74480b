// apps/common/evaluate.h.
#include "apps/common/evaluate.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "apps/common/accuracy.h"
#include "autograd/autograd.h"
#include "ops/autocast.h"
#include "ops/elementwise.h"
#include "ops/factory.h"

namespace nabla::apps {

Accuracy evaluate_classifier(nn::Module& model, const std::function<std::optional<data::Batch>()>& next,
                             int64_t classes, bool amp, const dist::Session& session) {
  model.eval();
  NoGradGuard no_grad;
  AutocastGuard autocast(DType::bf16, amp);
  const bool top5 = classes > 5;
  Tensor correct1, correct5;
  int64_t seen = 0;
  while (auto b = next()) {
    Tensor logits = model.forward(b->inputs);
    Tensor c1 = topk_correct(logits, b->labels, 1);
    correct1 = correct1.defined() ? correct1 + c1 : c1;
    if (top5) {
      Tensor c5 = topk_correct(logits, b->labels, 5);
      correct5 = correct5.defined() ? correct5 + c5 : c5;
    }
    seen += b->labels.numel();
  }
  model.train();
  double c1 = correct1.defined() ? correct1.item() : 0.0, c5 = correct5.defined() ? correct5.item() : 0.0;
  session.sum(c1, c5, seen);  // each rank evaluated its shard
  Accuracy acc;
  acc.seen = seen;
  if (seen == 0) {
    acc.top1 = std::numeric_limits<double>::quiet_NaN();
    return acc;
  }
  acc.top1 = c1 / static_cast<double>(seen);
  if (top5) acc.top5 = c5 / static_cast<double>(seen);
  return acc;
}

std::string percent(double fraction) {
  if (std::isnan(fraction)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * fraction);
  return buf;
}

}  // namespace nabla::apps
