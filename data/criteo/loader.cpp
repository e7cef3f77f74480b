// Batches of a memory-mapped Criteo binary file (data/criteo.h). The order of an epoch is the identity or a
// Fisher-Yates permutation of the row range whose draws come from Philox keyed by the seed at counter
// (epoch << 40) + i / 2, so any epoch's order, and thus any batch, can be recomputed after a restart:
// position() saved after a step and set_position() later give exactly the batches that were left.
#include <cstring>

#include "data/criteo.h"
#include "engine/error.h"
#include "engine/random.h"

namespace nabla::data::criteo {

CriteoLoader::CriteoLoader(std::shared_ptr<const BinaryFile> file, RowRange range,
                           CriteoLoaderOptions options)
    : file_(std::move(file)), range_(range), options_(options) {
  NABLA_CHECK(file_ != nullptr, "criteo loader: no file");
  NABLA_CHECK(range_.begin >= 0 && range_.begin <= range_.end && range_.end <= file_->size(),
              "criteo loader: rows [", range_.begin, ", ", range_.end, ") outside the file's ", file_->size(),
              " rows");
  NABLA_CHECK(options_.batch_size >= 1, "criteo loader: batch size must be >= 1, got ", options_.batch_size);
}

int64_t CriteoLoader::num_batches() const {
  int64_t n = range_.size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

const std::vector<int64_t>& CriteoLoader::order(int64_t epoch) const {
  if (order_epoch_ == epoch) return order_;
  int64_t n = range_.size();
  order_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order_[i] = range_.begin + i;
  const uint64_t offset = static_cast<uint64_t>(epoch) << 40;
  for (int64_t i = n - 1; i > 0; --i) {
    uint64_t bits = philox_bits64(options_.seed, offset, n - 1 - i);
    auto j =
        static_cast<int64_t>((static_cast<unsigned __int128>(bits) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(order_[i], order_[j]);
  }
  order_epoch_ = epoch;
  return order_;
}

CriteoBatch CriteoLoader::batch(int64_t epoch, int64_t index) const {
  NABLA_CHECK(epoch >= 0 && index >= 0 && index < num_batches(), "criteo loader: batch ", index, " of epoch ",
              epoch, " out of range (", num_batches(), " batches)");
  int64_t start = index * options_.batch_size;
  int64_t b = std::min(options_.batch_size, range_.size() - start);
  CriteoBatch out;
  out.epoch = epoch;
  out.index = index;
  out.dense = Tensor::empty({b, kNumDense}, DType::f32);
  out.sparse = Tensor::empty({b, kNumSparse}, DType::i64);
  out.labels = Tensor::empty({b}, DType::f32);
  float* dense = out.dense.data<float>();
  int64_t* sparse = out.sparse.data<int64_t>();
  float* labels = out.labels.data<float>();
  const float* fd = file_->dense();
  const int32_t* fs = file_->sparse();
  const uint8_t* fl = file_->labels();
  const std::vector<int64_t>* ord = options_.shuffle ? &order(epoch) : nullptr;
  out.first_row = ord ? (*ord)[start] : range_.begin + start;
  for (int64_t k = 0; k < b; ++k) {
    int64_t r = ord ? (*ord)[start + k] : range_.begin + start + k;
    std::memcpy(dense + k * kNumDense, fd + r * kNumDense, sizeof(float) * kNumDense);
    for (int c = 0; c < kNumSparse; ++c) sparse[k * kNumSparse + c] = fs[r * kNumSparse + c];
    labels[k] = static_cast<float>(fl[r]);
  }
  return out;
}

std::optional<CriteoBatch> CriteoLoader::next() {
  if (position_.batch >= num_batches()) {
    position_ = {position_.epoch + 1, 0};
    return std::nullopt;
  }
  CriteoBatch b = batch(position_.epoch, position_.batch);
  ++position_.batch;
  return b;
}

void CriteoLoader::set_position(LoaderPosition p) {
  NABLA_CHECK(p.epoch >= 0 && p.batch >= 0 && p.batch <= num_batches(), "criteo loader: position (epoch ",
              p.epoch, ", batch ", p.batch, ") out of range: ", num_batches(), " batches per epoch");
  position_ = p;
}

}  // namespace nabla::data::criteo
