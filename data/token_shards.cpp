// Token shards (see token_shards.h): writing, memory-mapped reading with checks, windows.
#include "data/token_shards.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "engine/random.h"

namespace nabla::data {
namespace {

int32_t read_word(const uint8_t* p, int64_t i) {
  int32_t w;
  std::memcpy(&w, p + 4 * i, 4);
  return w;
}

}  // namespace

void write_token_shard(const std::string& path, std::span<const uint16_t> ids, int32_t vocab_size,
                       int32_t eot_id) {
  NABLA_CHECK(vocab_size > 0 && vocab_size <= 65536, "token shard ", path,
              ": vocab_size must be in [1, 65536] for uint16 ids, got ", vocab_size);
  NABLA_CHECK(eot_id >= -1 && eot_id < vocab_size, "token shard ", path, ": eot id ", eot_id,
              " is not in [-1, ", vocab_size, ")");
  for (size_t i = 0; i < ids.size(); ++i)
    NABLA_CHECK(ids[i] < vocab_size, "token shard ", path, ": id ", ids[i], " at index ", i,
                " is not below the vocabulary size ", vocab_size);
  int32_t header[256] = {};
  const uint64_t n = ids.size();
  header[0] = kTokenShardMagic;
  header[1] = kTokenShardVersion;
  header[2] = static_cast<int32_t>(static_cast<uint32_t>(n & 0xffffffffu));
  header[3] = static_cast<int32_t>(static_cast<uint32_t>(n >> 32));
  header[4] = vocab_size;
  header[5] = eot_id;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    NABLA_CHECK(f.good(), "token shard ", path, ": cannot write ", tmp);
    f.write(reinterpret_cast<const char*>(header), sizeof header);
    f.write(reinterpret_cast<const char*>(ids.data()), static_cast<std::streamsize>(ids.size() * 2));
    f.flush();
    NABLA_CHECK(f.good(), "token shard ", path, ": writing ", tmp, " failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  NABLA_CHECK(!ec, "token shard ", path, ": rename from ", tmp, " failed: ", ec.message());
}

TokenShard::TokenShard(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  NABLA_CHECK(fd >= 0, "token shard ", path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("token shard ", path, ": not a regular file");
  }
  const auto bytes = static_cast<uint64_t>(st.st_size);
  if (bytes < static_cast<uint64_t>(kTokenShardHeaderBytes)) {
    ::close(fd);
    fail("token shard ", path, ": truncated header: the file ends at byte ", bytes, ", the header needs ",
         kTokenShardHeaderBytes, " bytes");
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  NABLA_CHECK(p != MAP_FAILED, "token shard ", path, ": mmap failed: ", std::strerror(errno));
  map_ = p;
  map_bytes_ = bytes;
  try {
    const auto* b = static_cast<const uint8_t*>(p);
    const int32_t magic = read_word(b, 0), version = read_word(b, 1);
    NABLA_CHECK(magic == kTokenShardMagic, "token shard ", path, ": bad magic ", magic,
                " at byte 0, expected ", kTokenShardMagic);
    NABLA_CHECK(version == kTokenShardVersion, "token shard ", path, ": version ", version,
                " at byte 4, expected ", kTokenShardVersion);
    const uint64_t n = static_cast<uint64_t>(static_cast<uint32_t>(read_word(b, 2))) |
                       static_cast<uint64_t>(static_cast<uint32_t>(read_word(b, 3))) << 32;
    info_.vocab_size = read_word(b, 4);
    info_.eot_id = read_word(b, 5);
    NABLA_CHECK(info_.vocab_size > 0 && info_.vocab_size <= 65536, "token shard ", path, ": vocabulary size ",
                info_.vocab_size, " at byte 16 is not in [1, 65536]");
    NABLA_CHECK(info_.eot_id >= -1 && info_.eot_id < info_.vocab_size, "token shard ", path,
                ": end-of-text id ", info_.eot_id, " at byte 20 is not in [-1, ", info_.vocab_size, ")");
    for (int64_t i = 6; i < 256; ++i)
      NABLA_CHECK(read_word(b, i) == 0, "token shard ", path, ": reserved header word ", i, " at byte ",
                  4 * i, " is ", read_word(b, i), ", expected 0");
    const uint64_t body = bytes - static_cast<uint64_t>(kTokenShardHeaderBytes);
    NABLA_CHECK(
        n <= (uint64_t{1} << 62) && body == 2 * n, "token shard ", path, ": the header (byte 8) says ", n,
        " tokens, i.e. ", kTokenShardHeaderBytes, " + 2 x ", n, " bytes, but the file ",
        body < 2 * n ? "is truncated: it ends at byte " : "has trailing bytes: it ends at byte ", bytes);
    info_.tokens = static_cast<int64_t>(n);
    tokens_ = reinterpret_cast<const uint16_t*>(b + kTokenShardHeaderBytes);
    const auto v = static_cast<uint16_t>(info_.vocab_size - 1);
    if (info_.vocab_size < 65536)
      for (int64_t i = 0; i < info_.tokens; ++i)
        if (tokens_[i] > v)
          fail("token shard ", path, ": id ", tokens_[i], " at byte ", kTokenShardHeaderBytes + 2 * i,
               " is not below the vocabulary size ", info_.vocab_size);
  } catch (...) {
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    throw;
  }
}

TokenShard::~TokenShard() {
  if (map_) ::munmap(map_, map_bytes_);
}

std::vector<std::string> list_token_shards(const std::string& pattern) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::error_code ec;
  if (fs::is_directory(pattern, ec)) {
    for (auto& e : fs::directory_iterator(pattern))
      if (e.path().extension() == ".bin") out.push_back(e.path().string());
  } else if (fs::exists(pattern, ec)) {
    out.push_back(pattern);
  } else {
    glob_t g{};
    if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
  }
  std::sort(out.begin(), out.end());
  NABLA_CHECK(!out.empty(), "token shards: '", pattern,
              "' names no shard (expected a .bin file, a directory of them or a glob)");
  return out;
}

TokenWindows::TokenWindows(const std::vector<std::string>& paths, int64_t context) : t_(context) {
  NABLA_CHECK(context >= 1, "token windows: context must be >= 1, got ", context);
  NABLA_CHECK(!paths.empty(), "token windows: no shards given");
  int64_t starts = 0, windows = 0;
  for (auto& p : paths) {
    shards_.push_back(std::make_unique<TokenShard>(p));
    const TokenShardInfo& in = shards_.back()->info();
    if (vocab_size_ == 0) vocab_size_ = in.vocab_size;
    NABLA_CHECK(in.vocab_size == vocab_size_, "token windows: ", p, " has vocabulary size ", in.vocab_size,
                ", but ", paths[0], " has ", vocab_size_);
    total_tokens_ += in.tokens;
    starts += std::max<int64_t>(0, in.tokens - context);
    windows += in.tokens > context ? (in.tokens - 1) / context : 0;
    starts_.push_back(starts);
    windows_.push_back(windows);
  }
  NABLA_CHECK(starts > 0, "token windows: the shards (", paths[0], (paths.size() > 1 ? ", ..." : ""),
              ") hold ", total_tokens_, " tokens; a window of ", context + 1,
              " tokens needs a shard longer than that (lower the context)");
}

void TokenWindows::copy_window(int64_t shard, int64_t start, int64_t* out) const {
  auto tok = shards_[static_cast<size_t>(shard)]->tokens();
  for (int64_t i = 0; i <= t_; ++i) out[i] = tok[static_cast<size_t>(start + i)];
}

Tensor TokenWindows::random_batch(int64_t batch, uint64_t seed, uint64_t step, int64_t first_row) const {
  NABLA_CHECK(batch >= 1 && first_row >= 0, "token windows: bad batch ", batch, " or first row ", first_row);
  Tensor out = Tensor::empty({batch, t_ + 1}, DType::i64);
  int64_t* o = out.data<int64_t>();
  const int64_t n = num_random_starts();
  for (int64_t r = 0; r < batch; ++r) {
    auto k = static_cast<int64_t>(philox_uniform(seed, step, first_row + r) * static_cast<double>(n));
    k = std::min(k, n - 1);
    const auto s =
        static_cast<int64_t>(std::upper_bound(starts_.begin(), starts_.end(), k) - starts_.begin());
    const int64_t before = s == 0 ? 0 : starts_[static_cast<size_t>(s - 1)];
    copy_window(s, k - before, o + r * (t_ + 1));
  }
  return out;
}

Tensor TokenWindows::sequential_batch(int64_t batch, int64_t first_window) const {
  NABLA_CHECK(batch >= 1 && first_window >= 0, "token windows: bad batch ", batch, " or first window ",
              first_window);
  Tensor out = Tensor::empty({batch, t_ + 1}, DType::i64);
  int64_t* o = out.data<int64_t>();
  const int64_t n = num_sequential_windows();
  NABLA_CHECK(n > 0, "token windows: no shard holds a whole window of ", t_ + 1, " tokens");
  for (int64_t r = 0; r < batch; ++r) {
    const int64_t k = (first_window + r) % n;
    const auto s =
        static_cast<int64_t>(std::upper_bound(windows_.begin(), windows_.end(), k) - windows_.begin());
    const int64_t before = s == 0 ? 0 : windows_[static_cast<size_t>(s - 1)];
    copy_window(s, (k - before) * t_, o + r * (t_ + 1));
  }
  return out;
}

std::vector<int64_t> TokenWindows::unigram_counts() const {
  std::vector<int64_t> counts(static_cast<size_t>(vocab_size_), 0);
  for (auto& s : shards_)
    for (uint16_t id : s->tokens()) ++counts[id];
  return counts;
}

}  // namespace nabla::data
