// Shared pieces of the libFuzzer targets (fuzz/README.md): the readers that take a path get the input
// through a private file in /dev/shm (or /tmp), and every target treats nabla::Error as the expected
// outcome of bad input. Anything else that escapes (another exception, a sanitizer report, a timeout, a
// malloc over -malloc_limit_mb) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace nabla::fuzz {

// A path unique to this process, rewritten with `data` on every call.
inline const std::string& write_input(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/nabla_fuzz_" + std::to_string(::getpid());
  }();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace nabla::fuzz
