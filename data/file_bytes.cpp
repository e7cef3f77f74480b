// Whole-file reading with transparent gzip (file_bytes.h). gzip goes through zlib's gzopen/gzread, which
// also handles multi-member files; a stream that ends early is reported, not silently shortened.
#include "data/file_bytes.h"

#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "engine/error.h"

namespace nabla::data {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

std::vector<uint8_t> read_raw(std::FILE* f, const std::string& path, std::string_view who) {
  std::vector<uint8_t> out;
  if (std::fseek(f, 0, SEEK_END) == 0) {
    long n = std::ftell(f);
    if (n > 0) out.reserve(static_cast<size_t>(n));
    std::rewind(f);
  }
  uint8_t buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + got);
  NABLA_CHECK(!std::ferror(f), who, ": ", path, ": read error after ", out.size(),
              " bytes: ", std::strerror(errno));
  return out;
}

// zlib's messages start with the path, which our messages already name.
std::string gz_message(gzFile gz, const std::string& path, int* code) {
  std::string msg = gzerror(gz, code);
  if (msg.rfind(path + ": ", 0) == 0) msg.erase(0, path.size() + 2);
  return msg;
}

std::vector<uint8_t> read_gzip(const std::string& path, std::string_view who) {
  gzFile gz = gzopen(path.c_str(), "rb");
  NABLA_CHECK(gz != nullptr, who, ": ", path, ": cannot open for gzip reading");
  gzbuffer(gz, 1 << 17);
  std::vector<uint8_t> out;
  constexpr size_t kChunk = 1 << 20;
  for (;;) {
    size_t at = out.size();
    out.resize(at + kChunk);
    int got = gzread(gz, out.data() + at, static_cast<unsigned>(kChunk));
    if (got < 0) {
      int code = 0;
      std::string msg = gz_message(gz, path, &code);
      gzclose(gz);
      fail(who, ": ", path, ": corrupt gzip data after ", at, " decompressed bytes (", msg, ")");
    }
    out.resize(at + static_cast<size_t>(got));
    if (got == 0) break;
  }
  // A stream cut short reads as end-of-file; zlib flags it as Z_BUF_ERROR only when asked.
  int code = Z_OK;
  std::string msg = gz_message(gz, path, &code);
  gzclose(gz);
  NABLA_CHECK(code == Z_OK || code == Z_STREAM_END, who, ": ", path,
              ": truncated or corrupt gzip data after ", out.size(), " decompressed bytes (", msg, ")");
  out.shrink_to_fit();
  return out;
}

}  // namespace

FileBytes read_file_bytes(const std::string& path, std::string_view who) {
  std::error_code ec;
  NABLA_CHECK(std::filesystem::exists(path, ec), who, ": ", path, ": no such file");
  NABLA_CHECK(!std::filesystem::is_directory(path, ec), who, ": ", path, ": is a directory, expected a file");
  FilePtr f(std::fopen(path.c_str(), "rb"));
  NABLA_CHECK(f != nullptr, who, ": ", path, ": cannot open: ", std::strerror(errno));
  uint8_t magic[2] = {0, 0};
  size_t n = std::fread(magic, 1, 2, f.get());
  FileBytes result;
  if (n == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    f.reset();
    result.bytes = read_gzip(path, who);
    result.gzipped = true;
  } else {
    result.bytes = read_raw(f.get(), path, who);
  }
  return result;
}

void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile gz = gzopen(path.c_str(), "wb");
    NABLA_CHECK(gz != nullptr, "write_file_bytes: ", path, ": cannot open for writing");
    int wrote = bytes.empty() ? 0 : gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size()));
    int closed = gzclose(gz);
    NABLA_CHECK(wrote == static_cast<int>(bytes.size()) && closed == Z_OK, "write_file_bytes: ", path,
                ": gzip write failed");
    return;
  }
  FilePtr f(std::fopen(path.c_str(), "wb"));
  NABLA_CHECK(f != nullptr, "write_file_bytes: ", path, ": cannot open for writing: ", std::strerror(errno));
  size_t wrote = bytes.empty() ? 0 : std::fwrite(bytes.data(), 1, bytes.size(), f.get());
  NABLA_CHECK(wrote == bytes.size() && std::fflush(f.get()) == 0, "write_file_bytes: ", path,
              ": write failed");
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace nabla::data
