// The batches of train_gpt (pretraining on token windows, or instruction tuning on packed SFT rows), and
// which rows of them each data-parallel rank takes.
//
// A step has `accum` micro-batches; micro-batch m of step s is global micro-batch k = s * accum + m, of
// G = W * b sequences when W ranks take b each. Rank r takes rows r*b .. r*b + b - 1 of it:
//   random windows   row i of micro-batch k starts where philox_uniform(seed, k, i) says
//                    (data::TokenWindows::random_batch)
//   sequential       row i is window k * G + i (tiling the shards, wrapping around)
//   sft              row i is example philox_bits64(seed ^ 0x5f7a11, k, i) mod the number of examples
// So a micro-batch is a pure function of (seed, step, micro, rank) (exact resume needs only the step), and
// the W ranks' rows together are, row for row, the micro-batch of one process with batch G: with the
// gradients averaged over the ranks (dist/data_parallel.h), W ranks of b train as one process of W * b.
#pragma once
#include <cstdint>
#include <memory>
#include <utility>

#include "data/chat.h"
#include "data/token_shards.h"
#include "engine/tensor.h"

namespace nabla::apps {

// Which slice of a global micro-batch this process takes: rows rank * rows .. rank * rows + rows - 1 of
// world * rows.
struct BatchSlice {
  int64_t rows = 1;  // per rank
  int rank = 0, world = 1;
  int64_t global_rows() const { return rows * world; }
  int64_t first_row() const { return rows * rank; }
};

struct GptBatches {
  std::unique_ptr<data::TokenWindows> train, val;  // pretraining (val optional)
  data::SftBatchData sft;                          // --mode sft when train is null
  bool random = true;                              // random or sequential training windows
  uint64_t seed = 0;

  // This rank's rows of micro-batch `micro` of step `step` (`accum` micro-batches per step): inputs [b, T]
  // and their next-token targets [b, T] (-100: no loss), i64 on the CPU.
  std::pair<Tensor, Tensor> get(int64_t step, int64_t micro, int64_t accum, const BatchSlice& slice) const;
  // This rank's rows of validation batch i (sequential windows i * G ..): windows [b, T + 1].
  Tensor val_batch(int64_t i, const BatchSlice& slice) const;
  // How many validation batches of G sequences there are, at most `limit` (at least 1).
  int64_t val_batches(int64_t limit, const BatchSlice& slice) const;
};

}  // namespace nabla::apps
