// Evaluation of a classifier over a stream of batches: top-1 and (with more than 5 classes) top-5
// accuracy, in evaluation mode, without gradients, under the run's autocast. The hit counts add up on the
// device (one host read per evaluation, not per batch) and are summed over the data-parallel ranks (each
// evaluated its shard), so the result is exact for the whole set.
//
// An empty set measures nothing: seen == 0 and the accuracies are NaN, printed as "n/a", never as 0.00%.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "data/loader.h"
#include "dist/session.h"
#include "models/nn/module.h"

namespace nabla::apps {

struct Accuracy {
  double top1 = 0, top5 = -1;  // top5 < 0: not measured (5 classes or fewer)
  int64_t seen = 0;            // examples evaluated over all ranks (0: none, and top1 is NaN)
};

// `next` yields the batches on the model's device (inputs already in the model's memory format).
Accuracy evaluate_classifier(nn::Module& model, const std::function<std::optional<data::Batch>()>& next,
                             int64_t classes, bool amp, const dist::Session& session);

// "91.02%" (two decimals), or "n/a" for NaN.
std::string percent(double fraction);

}  // namespace nabla::apps
