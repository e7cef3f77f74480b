// Whole-file reading for the dataset readers, with transparent gzip, safe against hostile files.
//
// A file whose first two bytes are the gzip magic 1f 8b is decompressed with zlib (whatever its name);
// anything else is read as is. The readers then parse from memory, so their errors can name exact byte
// offsets (offsets into the decompressed stream for gzip files).
//
// Defences (each refusal is one nabla::Error line naming the path):
//   - only regular files are read: a FIFO (which would hang), a device such as /dev/zero (which never
//     ends), a directory or a symlink loop is refused before anything is read;
//   - a size cap: at most `max_bytes` bytes come out (raw or decompressed). The default is
//     default_max_file_bytes(): 4 GiB, or NABLA_MAX_FILE_BYTES from the environment. Readers that know
//     the size from a header pass it, so a gzip bomb stops one byte past the declared size;
//   - gzip is decompressed as a stream (inflate, member after member), never with an unbounded buffer;
//     bytes after the last gzip member that are not another member ("trailing garbage") are an error.
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

// 4 GiB, or the environment's NABLA_MAX_FILE_BYTES (a positive integer; anything else is an error).
uint64_t default_max_file_bytes();

// Throws nabla::Error "who: path: ..." for a missing, unreadable or non-regular file, for corrupt,
// truncated or trailing-garbage gzip, and for more than max_bytes bytes of content.
FileBytes read_file_bytes(const std::string& path, std::string_view who);
FileBytes read_file_bytes(const std::string& path, std::string_view who, uint64_t max_bytes);
// The same, for a reader that computed the size from a header: `reason` says where the bound comes from in
// the message, e.g. "its header declares" -> "idx: f.gz: more than the 47040016 bytes its header declares
// after decompression (stopped at compressed byte 65536)".
FileBytes read_file_bytes_bounded(const std::string& path, std::string_view who, uint64_t max_bytes,
                                  std::string_view reason);

// The first `n` bytes of content (decompressed for gzip), or fewer when the content is shorter: lets a
// reader see a header and compute the exact size before reading the whole file.
FileBytes read_file_prefix(const std::string& path, std::string_view who, uint64_t n);

// Throws "who: path: ..." unless path names a regular file (following symlinks). Messages: "no such
// file", "is a directory, expected a file", "is a FIFO, expected a regular file", "is a symlink loop".
void check_regular_file(const std::string& path, std::string_view who);

// Writes bytes to a file (gzip-compressed when gzip is true); for tests and tools that make datasets.
void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip = false);

// "0x00000803": how magic numbers print in error messages.
std::string hex32(uint32_t v);

inline uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace nabla::data
