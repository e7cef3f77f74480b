// apps/common/gpt_batches.h: train_gpt's micro-batches, sliced per data-parallel rank.
#include "apps/common/gpt_batches.h"

#include <algorithm>

#include "engine/random.h"

namespace nabla::apps {

std::pair<Tensor, Tensor> GptBatches::get(int64_t step, int64_t micro, int64_t accum,
                                          const BatchSlice& slice) const {
  NABLA_CHECK(slice.rows >= 1 && slice.world >= 1 && slice.rank >= 0 && slice.rank < slice.world,
              "gpt batches: bad slice (", slice.rows, " rows of rank ", slice.rank, " of ", slice.world, ")");
  NABLA_CHECK(step >= 0 && micro >= 0 && micro < accum, "gpt batches: micro-batch ", micro, " of step ", step,
              " is not one of the ", accum, " micro-batches");
  const int64_t b = slice.rows, k = step * accum + micro;
  if (train) {
    Tensor w = random ? train->random_batch(b, seed, static_cast<uint64_t>(k), slice.first_row())
                      : train->sequential_batch(b, k * slice.global_rows() + slice.first_row());
    const int64_t t = w.size(1) - 1;
    return {w.narrow(1, 0, t).contiguous(), w.narrow(1, 1, t).contiguous()};
  }
  NABLA_CHECK(sft.rows > 0, "gpt batches: neither token windows nor SFT rows");
  Tensor ids = Tensor::empty({b, sft.length}, DType::i64),
         labels = Tensor::empty({b, sft.length}, DType::i64);
  for (int64_t r = 0; r < b; ++r) {
    const auto row = static_cast<int64_t>(
        philox_bits64(seed ^ 0x5f7a11ull, static_cast<uint64_t>(k), slice.first_row() + r) %
        static_cast<uint64_t>(sft.rows));
    std::copy_n(sft.ids.begin() + row * sft.length, sft.length, ids.data<int64_t>() + r * sft.length);
    std::copy_n(sft.labels.begin() + row * sft.length, sft.length, labels.data<int64_t>() + r * sft.length);
  }
  const int64_t t = sft.length - 1;  // rows hold T + 1 tokens
  return {ids.narrow(1, 0, t).contiguous(), labels.narrow(1, 1, t).contiguous()};
}

Tensor GptBatches::val_batch(int64_t i, const BatchSlice& slice) const {
  NABLA_CHECK(val, "gpt batches: no validation shards");
  return val->sequential_batch(slice.rows, i * slice.global_rows() + slice.first_row());
}

int64_t GptBatches::val_batches(int64_t limit, const BatchSlice& slice) const {
  NABLA_CHECK(val, "gpt batches: no validation shards");
  return std::min(limit, std::max<int64_t>(1, val->num_sequential_windows() / slice.global_rows()));
}

}  // namespace nabla::apps
