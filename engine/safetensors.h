// Named tensors on disk in the safetensors format (https://github.com/huggingface/safetensors), the
// checkpoint format of the Hugging Face ecosystem: files written here load in PyTorch, JAX, candle, ...,
// and theirs load here.
//
//   byte 0       u64 little-endian N: the length of the header
//   byte 8       N bytes of UTF-8 JSON, padded with spaces to a multiple of 8:
//                  {"__metadata__": {"key": "value", ...},                      (optional, strings only)
//                   "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   byte 8 + N   the data section: each tensor's elements, row-major, little-endian, at
//                [begin, end) relative to the start of the data section, end - begin = numel * itemsize.
//                The tensors tile the section exactly: no gaps, no overlaps, nothing after the last one.
//
// DTypes: F32 F64 BF16 F16 I32 I64 U8 BOOL (Nabla's f32 f64 bf16 f16 i32 i64 u8 b8). Other safetensors
// dtypes (I8, U16, F8_E4M3, ...) are refused with an Error naming them.
//
// Writing: the header is compact JSON ("__metadata__" first, then the tensors in data order), as the
// reference writer produces it. Tensors are laid out by decreasing itemsize, in the caller's order within
// one itemsize, so every tensor starts at a multiple of its itemsize (the header is padded to 8) and
// zero-copy readers can map it; for the common case of one dtype the file keeps the caller's order. (The
// reference writer also sorts by dtype and name within an itemsize; readers do not depend on either.)
// save_safetensors writes `path + ".tmp"`, fsyncs it and renames it over `path`, so a crash leaves
// either the old file or the new one, never half of one.
//
// Reading: everything a file says is checked before it is trusted (it may come from anywhere), and each
// problem throws nabla::Error naming the file and the byte offset where it lies, e.g.
//   safetensors: model.safetensors: tensor 'fc.weight' (entry at byte 12): data_offsets [0,4096] hold
//   4096 bytes, but shape [32,64] of F32 needs 8192
// Loaded tensors are fresh contiguous CPU tensors (they do not require grad), listed in data order.
//
// Hostile files are refused with one line, never a crash or a huge allocation: the header is at most
// 100 MB and 16 levels deep (a real one is 3), JSON errors (bad syntax, a number such as 1e309) name the
// byte, printed names and values are cut short, and no tensor is allocated before its bytes are known to
// be in the file.
//
// Integrity: save_safetensors stores a CRC-32C of each tensor's bytes in the metadata, under
// "nabla.crc32c.<name>" (8 hex digits; other readers, PyTorch included, see an extra string). load
// verifies every checksum present (files from other writers have none and load unchecked) and returns the
// metadata without them:
//   safetensors: ck.safetensors: tensor 'fc.weight' (entry at byte 70): the CRC-32C of its data (bytes
//   448..4544) is 5d0c1a3e, the header says 9b01f2c4: the file is corrupt
// Floating tensors holding NaN or infinity are refused unless options.allow_non_finite is set:
//   safetensors: ck.safetensors: tensor 'w' (entry at byte 12): element 3 (byte 92) is nan; non-finite
//   weights are refused (load with allow_non_finite to accept them)
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace nabla {

struct SafetensorsFile {
  NamedTensors tensors;  // in the order of their data offsets
  std::map<std::string, std::string> metadata;
  std::string source;  // the path (or the name given to the bytes), for error messages
  // The tensor called `name`; throws nabla::Error listing the names there are when it is missing.
  Tensor get(const std::string& name) const;
  bool contains(const std::string& name) const;
};

struct SafetensorsSaveOptions {
  bool checksums = true;  // false: exactly the reference writer's bytes, with no nabla.crc32c.* metadata
};

// Writes `tensors` (any device, dtype, strides; names unique, not "__metadata__") atomically to `path`.
// Metadata keys starting with "nabla.crc32c." are reserved for the checksums.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {},
                      const SafetensorsSaveOptions& options = {});
struct SafetensorsLoadOptions {
  bool allow_non_finite = false;  // accept NaN / infinity in floating tensors
  bool verify_checksums = true;   // check the nabla.crc32c.* checksums when the file has them
};

// Only regular files are read (a FIFO or a device such as /dev/zero is refused, not waited on).
SafetensorsFile load_safetensors(const std::string& path, const SafetensorsLoadOptions& options = {});

// The same, in memory: the bytes of a whole file. `source` names the bytes in error messages.
std::string save_safetensors_to_bytes(const NamedTensors& tensors,
                                      const std::map<std::string, std::string>& metadata = {},
                                      const SafetensorsSaveOptions& options = {});
SafetensorsFile load_safetensors_from_bytes(const std::string& bytes, const std::string& source = "<bytes>",
                                            const SafetensorsLoadOptions& options = {});

}  // namespace nabla
