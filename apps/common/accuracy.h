// Top-k accuracy counts for classifiers, on any device.
//
// Example i counts as correct at k when fewer than k classes score strictly higher than its label:
//   rank_i = #{ c : logits[i, c] > logits[i, label_i] },   correct_i = rank_i < k
// For k = 1 and distinct scores this is argmax(logits_i) == label_i. Ties go in the example's favour (a
// label tied with the best score counts as top-1), where torch.topk would break them by index; with f32
// logits of a trained network ties are rare enough not to move a percentage.
//
// A row with a NaN logit (a diverged model) never counts as correct (without that rule every comparison
// with NaN is false, the label ranks first, and a blown-up run reported 100%).
//
// The count comes back as an i64 scalar tensor on the logits' device, so an evaluation loop can add
// batches up on the GPU and read the total once (one host synchronisation per evaluation, not per batch).
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace nabla::apps {

// logits [B, C] (any floating dtype), labels integer [B] in [0, C); 1 <= k. Returns i64 [] on the logits'
// device.
Tensor topk_correct(const Tensor& logits, const Tensor& labels, int64_t k);

}  // namespace nabla::apps
