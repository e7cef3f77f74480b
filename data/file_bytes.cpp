// Whole-file reading with transparent gzip (file_bytes.h).
//
// gzip goes through zlib's inflate directly (not gzread): the output is bounded by the caller's limit as it
// grows, members follow one another as gzip(1) allows, and the reader sees what comes after the last
// member, so trailing garbage is an error instead of being silently dropped. Offsets in messages: the
// compressed byte where inflate stopped, and how many bytes had come out.
#include "data/file_bytes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "engine/error.h"

namespace nabla::data {
namespace {

constexpr uint64_t kDefaultMaxFileBytes = uint64_t{4} << 30;

struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

// Opens a regular file for reading (never blocking on a FIFO that replaced it after the check).
int open_regular(const std::string& path, std::string_view who, uint64_t* size) {
  check_regular_file(path, who);
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  NABLA_CHECK(fd >= 0, who, ": ", path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(who, ": ", path, ": is not a regular file (it changed while opening)");
  }
  *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

// Reads up to n bytes at the current position; fewer only at end of file.
size_t read_some(int fd, uint8_t* dst, size_t n, const std::string& path, std::string_view who, uint64_t at) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::read(fd, dst + done, n - done);
    if (got < 0 && errno == EINTR) continue;
    NABLA_CHECK(got >= 0, who, ": ", path, ": read error at byte ", at + done, ": ", std::strerror(errno));
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

std::string limit_text(uint64_t max_bytes, std::string_view reason) {
  if (!reason.empty()) return str_cat("the ", max_bytes, " bytes ", reason);
  return str_cat("the limit of ", max_bytes, " bytes (NABLA_MAX_FILE_BYTES)");
}

std::vector<uint8_t> read_raw(int fd, uint64_t size, const std::string& path, std::string_view who,
                              uint64_t max_bytes, bool prefix, std::string_view reason) {
  if (!prefix)
    NABLA_CHECK(size <= max_bytes, who, ": ", path, ": ", size, " bytes, more than ",
                limit_text(max_bytes, reason));
  std::vector<uint8_t> out(static_cast<size_t>(std::min(size, max_bytes)));
  out.resize(read_some(fd, out.data(), out.size(), path, who, 0));
  return out;
}

std::vector<uint8_t> read_gzip(int fd, uint64_t file_size, const std::string& path, std::string_view who,
                               uint64_t max_bytes, bool prefix, std::string_view reason) {
  z_stream z{};
  NABLA_CHECK(inflateInit2(&z, 15 + 16) == Z_OK, who, ": ", path, ": zlib cannot start");  // gzip only
  struct Ender {
    z_stream* z;
    ~Ender() { inflateEnd(z); }
  } ender{&z};
  std::vector<uint8_t> in(1 << 16);
  std::vector<uint8_t> out;
  // A first guess of the size, never past the limit: the bound holds as the buffer grows.
  const uint64_t cap = prefix ? max_bytes : max_bytes + 1;  // one more byte shows "too much"
  out.resize(static_cast<size_t>(std::min<uint64_t>(cap, std::max<uint64_t>(1 << 16, 4 * file_size))));
  uint64_t produced = 0, consumed = 0;  // decompressed bytes out, compressed bytes fed to inflate
  bool at_member_end = false;
  bool eof = false;
  for (;;) {
    if (z.avail_in == 0 && !eof) {
      size_t got = read_some(fd, in.data(), in.size(), path, who, consumed);
      eof = got < in.size();
      z.next_in = in.data();
      z.avail_in = static_cast<uInt>(got);
    }
    if (at_member_end) {
      if (z.avail_in == 0 && eof) break;  // a clean end after the last member
      // Another member must start with the gzip magic; anything else is garbage after the stream.
      if (z.avail_in < 2 && !eof) {  // the magic straddles two reads: keep the byte, read more
        in[0] = z.next_in[0];
        size_t got = read_some(fd, in.data() + 1, in.size() - 1, path, who, consumed + 1);
        eof = got < in.size() - 1;
        z.next_in = in.data();
        z.avail_in = static_cast<uInt>(got + 1);
      }
      const uint64_t rest = file_size > consumed ? file_size - consumed : z.avail_in;
      NABLA_CHECK(z.avail_in >= 2 && z.next_in[0] == 0x1f && z.next_in[1] == 0x8b, who, ": ", path, ": ",
                  rest, " bytes of trailing garbage after the gzip stream, which ends at byte ", consumed,
                  " (expected end of file or another gzip member)");
      NABLA_CHECK(inflateReset(&z) == Z_OK, who, ": ", path, ": zlib cannot restart");
      at_member_end = false;
    }
    if (produced == out.size()) {
      if (prefix && produced >= max_bytes) break;
      NABLA_CHECK(produced < cap, who, ": ", path, ": more than ", limit_text(max_bytes, reason),
                  " after decompression (stopped at compressed byte ", consumed, ")");
      out.resize(static_cast<size_t>(std::min<uint64_t>(cap, 2 * out.size())));
    }
    z.next_out = out.data() + produced;
    z.avail_out = static_cast<uInt>(std::min<uint64_t>(out.size() - produced, 1u << 30));
    const uInt in_before = z.avail_in, out_before = z.avail_out;
    int rc = inflate(&z, Z_NO_FLUSH);
    consumed += in_before - z.avail_in;
    produced += out_before - z.avail_out;
    if (rc == Z_STREAM_END) {
      at_member_end = true;
      continue;
    }
    if (rc == Z_BUF_ERROR || (rc == Z_OK && z.avail_in == 0)) {
      NABLA_CHECK(!(eof && z.avail_in == 0 && z.avail_out > 0), who, ": ", path,
                  ": truncated gzip data after ", produced,
                  " decompressed bytes (the file ends at compressed byte ", consumed,
                  ", before the stream's end)");
      continue;
    }
    NABLA_CHECK(rc == Z_OK, who, ": ", path, ": corrupt gzip data near byte ", consumed, " after ", produced,
                " decompressed bytes (", z.msg ? z.msg : "zlib error " + std::to_string(rc), ")");
  }
  // The last member may end exactly one byte past the limit, without the buffer ever filling up.
  NABLA_CHECK(prefix || produced <= max_bytes, who, ": ", path, ": more than ", limit_text(max_bytes, reason),
              " after decompression (", produced, " bytes)");
  out.resize(static_cast<size_t>(std::min(produced, max_bytes)));
  out.shrink_to_fit();
  return out;
}

FileBytes read_impl(const std::string& path, std::string_view who, uint64_t max_bytes, bool prefix,
                    std::string_view reason) {
  uint64_t size = 0;
  FdCloser f{open_regular(path, who, &size)};
  uint8_t magic[2] = {0, 0};
  const size_t n = read_some(f.fd, magic, 2, path, who, 0);
  NABLA_CHECK(::lseek(f.fd, 0, SEEK_SET) == 0, who, ": ", path, ": cannot seek: ", std::strerror(errno));
  FileBytes result;
  if (n == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    result.bytes = read_gzip(f.fd, size, path, who, max_bytes, prefix, reason);
    result.gzipped = true;
  } else {
    result.bytes = read_raw(f.fd, size, path, who, max_bytes, prefix, reason);
  }
  return result;
}

}  // namespace

uint64_t default_max_file_bytes() {
  const char* v = std::getenv("NABLA_MAX_FILE_BYTES");
  if (!v || !*v) return kDefaultMaxFileBytes;
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(v, &end, 10);
  NABLA_CHECK(*end == '\0' && errno == 0 && n > 0 && v[0] != '-', "NABLA_MAX_FILE_BYTES='",
              std::string(v).substr(0, 40), "': expected a positive number of bytes");
  return n;
}

void check_regular_file(const std::string& path, std::string_view who) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ELOOP) fail(who, ": ", path, ": is a symlink loop (too many levels of symbolic links)");
    if (err == ENOENT) fail(who, ": ", path, ": no such file");
    fail(who, ": ", path, ": cannot open: ", std::strerror(err));
  }
  NABLA_CHECK(!S_ISDIR(st.st_mode), who, ": ", path, ": is a directory, expected a file");
  NABLA_CHECK(S_ISREG(st.st_mode), who, ": ", path, ": is ", file_kind(st.st_mode),
              ", expected a regular file");
}

FileBytes read_file_bytes(const std::string& path, std::string_view who) {
  return read_impl(path, who, default_max_file_bytes(), false, "");
}

FileBytes read_file_bytes(const std::string& path, std::string_view who, uint64_t max_bytes) {
  return read_impl(path, who, max_bytes, false, "");
}

FileBytes read_file_bytes_bounded(const std::string& path, std::string_view who, uint64_t max_bytes,
                                  std::string_view reason) {
  return read_impl(path, who, max_bytes, false, reason);
}

FileBytes read_file_prefix(const std::string& path, std::string_view who, uint64_t n) {
  return read_impl(path, who, n, true, "");
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
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
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
