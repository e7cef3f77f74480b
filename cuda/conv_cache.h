// The convolution choice cache file (NABLA_CONV_CACHE=path), as PyTorch's cudnn.benchmark cache: the cuDNN
// graph-API engine chosen per convolution shape, so that a second process takes the same engines without
// timing the candidates again (no host synchronisation at a shape's first call) and every process of a job
// runs the same kernels (timing flips near-ties between processes: docs/cuda.md).
//
// cuda/conv.cu loads the file at its first convolution and rewrites it whenever it times a new shape.
// Pure host code (no CUDA calls), so its tests run without a GPU.
//
// Format (text, one record a line):
//   nabla-conv-cache 1 <context>           the context says what the choices are valid for (cuDNN version,
//                                          GPU name and compute capability); another context: ignored
//   <30 integers of the key> <engine>      one line per shape (the key: cuda/conv.cu's PlanKey)
//   end <number of records>                the last line; without it the file is truncated
// A missing file is an empty cache. A corrupt or truncated one gives one warning on stderr naming the file
// and the byte offset of the first bad byte, and is ignored as a whole (then overwritten by the next save).
// Saving writes <path>.tmp.<pid> and renames it over <path>, so a reader never sees half a file.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace nabla::cuda::conv_cache {

using Key = std::array<int64_t, 30>;
using Entries = std::map<Key, int64_t>;  // key -> cuDNN engine global index

// What parse found: ok, or the byte offset and a description of the first problem.
struct ParseResult {
  bool ok = true;
  bool other_context = false;  // a well-formed header for another context (not an error)
  int64_t offset = 0;
  std::string what;
};

std::string serialize(const std::string& context, const Entries& entries);
ParseResult parse(const std::string& text, const std::string& context, Entries& out);

// Reads `path`: a missing file gives an empty map silently; a corrupt file, a warning on stderr
// ("NABLA_CONV_CACHE: <path>: <what> at byte <offset>; ignoring the file") and an empty map. `warning`,
// if not null, receives that line instead of stderr (for tests).
Entries load(const std::string& path, const std::string& context, std::string* warning = nullptr);
// Writes atomically (temporary file + rename). A failure is a warning, never an exception: the cache is an
// optimisation. Returns false on failure.
bool save(const std::string& path, const std::string& context, const Entries& entries,
          std::string* warning = nullptr);

}  // namespace nabla::cuda::conv_cache
