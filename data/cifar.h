// CIFAR-10 and CIFAR-100, binary version (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html).
//
//   CIFAR-10  record = 1 label byte                       + 3072 pixel bytes  (3073 bytes)
//   CIFAR-100 record = 1 coarse label byte + 1 fine byte  + 3072 pixel bytes  (3074 bytes)
//   pixels: the 1024 red, then 1024 green, then 1024 blue values of a 32x32 image, rows top to bottom
//
// Files: CIFAR-10 data_batch_1.bin .. data_batch_5.bin (train, 50000) and test_batch.bin (10000); CIFAR-100
// train.bin (50000) and test.bin (10000). Images come back u8 HWC [N, 32, 32, 3] like every decoded image in
// data/ (the planes are interleaved while reading), labels i64 [N]. A file whose size is not a whole number
// of records is an error naming the file and the byte where the partial record starts.
#pragma once
#include <string>

#include "data/dataset.h"

namespace nabla::data {

inline constexpr int64_t kCifarSide = 32;
inline constexpr int64_t kCifarPixels = 3 * kCifarSide * kCifarSide;  // 3072

// One CIFAR-10 batch file: images, labels (0..9).
LabeledImages read_cifar10_file(const std::string& path);
// One CIFAR-100 file: images, labels = fine labels (0..99), coarse_labels (0..19).
LabeledImages read_cifar100_file(const std::string& path);

// All files of a split. `dir` holds the .bin files, or is the folder the archive unpacks into
// (containing cifar-10-batches-bin/ or cifar-100-binary/). For CIFAR-10, `dir` may instead hold the
// images themselves, as the public JPEG re-encodes do: dir/train/<class>/*.jpg and dir/test/<class>/*.jpg
// with the ten class folders (airplane .. truck). They are decoded in parallel and come back in a fixed
// pseudo-random order (the binary batches are shuffled too; the class-sorted file order would put one
// class in each part of a head-of-file split). JPEG re-encodes are lossy: pixels differ from the binary
// release's by a few levels.
LabeledImages load_cifar10(const std::string& dir, bool train);
LabeledImages load_cifar100(const std::string& dir, bool train);

// Writes records in the binary format (images u8 [N, 32, 32, 3]; coarse_labels defined -> CIFAR-100
// layout); for tests.
void write_cifar_file(const std::string& path, const LabeledImages& data);

}  // namespace nabla::data
