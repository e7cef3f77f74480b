// IDX files: the format of MNIST and Fashion-MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/).
//
//   byte 0..3   magic, big-endian: 0x00 0x00, element type (0x08 = u8), number of dimensions
//               -> 0x00000803 images [N, rows, cols], 0x00000801 labels [N]
//   byte 4..    one big-endian u32 per dimension
//   then        the elements, row-major, N*rows*cols bytes for images, N for labels
//
// Files may be raw or gzip-compressed (detected by the bytes 1f 8b, not by the name). Errors name the
// file and the byte offset of what is wrong, e.g.
//   idx: .../train-images-idx3-ubyte: bad magic 0x00000802 at byte 0, expected 0x00000803
// (offsets in a gzip file count decompressed bytes).
#pragma once
#include <string>

#include "data/dataset.h"

namespace nabla::data {

inline constexpr uint32_t kIdxImagesMagic = 0x00000803;
inline constexpr uint32_t kIdxLabelsMagic = 0x00000801;

// u8 [N, rows, cols].
Tensor read_idx_images(const std::string& path);
// i64 [N] (stored as u8).
Tensor read_idx_labels(const std::string& path);

// Writes u8 images [N, rows, cols] or labels [N] (any integer dtype with values in 0..255) as IDX,
// gzip-compressed when gzip is true; used by tests to make datasets.
void write_idx(const std::string& path, const Tensor& data, bool gzip = false);

// The four files of MNIST / Fashion-MNIST in `dir`: {train,t10k}-{images-idx3,labels-idx1}-ubyte, each
// raw or with .gz (also the train-images.idx3-ubyte spelling of some mirrors). Checks that images and
// labels agree in count and that labels are in 0..9. Images u8 [N, 28, 28], labels i64 [N].
LabeledImages load_mnist(const std::string& dir, bool train);
LabeledImages load_fashion_mnist(const std::string& dir, bool train);

}  // namespace nabla::data
