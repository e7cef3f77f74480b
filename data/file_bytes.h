// Whole-file reading for the dataset readers, with transparent gzip.
//
// A file whose first two bytes are the gzip magic 1f 8b is decompressed with zlib (whatever its name);
// anything else is read as is. The readers then parse from memory, so their errors can name exact byte
// offsets (offsets into the decompressed stream for gzip files).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nabla::data {

struct FileBytes {
  std::vector<uint8_t> bytes;
  bool gzipped = false;
};

// Throws nabla::Error "who: path: ..." for a missing or unreadable file and for corrupt or truncated gzip.
FileBytes read_file_bytes(const std::string& path, std::string_view who);

// Writes bytes to a file (gzip-compressed when gzip is true); for tests and tools that make datasets.
void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip = false);

// "0x00000803": how magic numbers print in error messages.
std::string hex32(uint32_t v);

inline uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace nabla::data
