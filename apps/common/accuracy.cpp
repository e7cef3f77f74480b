// topk_correct (accuracy.h): a gather, a comparison and two sums, so it runs on whatever device the logits
// are on.
#include "apps/common/accuracy.h"

#include "autograd/autograd.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/reduce.h"

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
  // A NaN compares false with everything, so a row of NaN logits (a diverged model) would rank its label
  // first and count as correct: a run that blew up reported 100% test accuracy. Such rows count as wrong.
  Tensor nans = sum(ne(logits, logits).to(DType::i64), {1});  // [B]: NaN logits in the row
  Tensor ranked = add(rank, nans, static_cast<double>(k));    // any NaN puts the label out of the top k
  return sum(lt(ranked, full_like(ranked, static_cast<double>(k))).to(DType::i64));
}

}  // namespace nabla::apps
