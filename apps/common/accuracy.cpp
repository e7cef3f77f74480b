// topk_correct (accuracy.h): a gather, a comparison and two sums, so it runs on whatever device the logits
// are on.
#include "apps/common/accuracy.h"

#include "nabla.h"

namespace nabla::apps {

Tensor topk_correct(const Tensor& logits, const Tensor& labels, int64_t k) {
  NABLA_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0),
              "topk_correct: expected logits [B, C] and labels [B], got ", logits.shape(), " and ",
              labels.shape());
  NABLA_CHECK(k >= 1, "topk_correct: k must be at least 1, got ", k);
  NoGradGuard no_grad;
  Tensor index = labels.to(DType::i64).unsqueeze(1);          // [B, 1]
  Tensor target = gather(logits, 1, index);                   // [B, 1]
  Tensor rank = sum(gt(logits, target).to(DType::i64), {1});  // [B]: classes scoring above the label
  return sum(lt(rank, full_like(rank, static_cast<double>(k))).to(DType::i64));
}

}  // namespace nabla::apps
