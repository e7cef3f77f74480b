// Token shards (data/token_shards.h): write/read round trip, every kind of corrupt file named with its
// byte offset, and the random and sequential windows.
#include <filesystem>
#include <fstream>

#include "gpt_testing.h"

namespace nabla::test {
namespace {

std::vector<uint16_t> random_ids(int64_t n, int32_t vocab) {
  Generator g{next_seed(), 0};
  auto v = randint(0, vocab, {n}, {.dtype = DType::i64}, &g).to_vector<int64_t>();
  return {v.begin(), v.end()};
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void patch(const std::string& path, int64_t offset, const void* bytes, size_t n) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(offset);
  f.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(n));
}

TEST(TokenShards, WriteThenReadGivesTheSameIdsAndHeader) {
  TempDir dir;
  const auto ids = random_ids(5003, 50257);
  data::write_token_shard(dir.file("a.bin"), ids, 50257, 50256);
  EXPECT_EQ(std::filesystem::file_size(dir.file("a.bin")), 1024u + 2 * 5003);
  data::TokenShard s(dir.file("a.bin"));
  EXPECT_EQ(s.size(), 5003);
  EXPECT_EQ(s.info().vocab_size, 50257);
  EXPECT_EQ(s.info().eot_id, 50256);
  EXPECT_TRUE(std::equal(ids.begin(), ids.end(), s.tokens().begin(), s.tokens().end()));
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.bin.tmp")));
}

TEST(TokenShards, CorruptFilesAreRefusedNamingFileAndByte) {
  TempDir dir;
  const std::string p = dir.file("c.bin");
  const auto ids = random_ids(100, 300);
  auto fresh = [&] { data::write_token_shard(p, ids, 300, -1); };
  fresh();
  std::filesystem::resize_file(p, 1024 + 2 * 100 - 3);
  std::string e = error_of([&] { data::TokenShard s(p); });
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("truncated: it ends at byte 1221"), std::string::npos) << e;
  fresh();
  {
    std::ofstream f(p, std::ios::app | std::ios::binary);
    f << "xy";
  }
  e = error_of([&] { data::TokenShard s(p); });
  EXPECT_NE(e.find("trailing bytes"), std::string::npos) << e;
  fresh();
  const int32_t bad = 1234;
  patch(p, 0, &bad, 4);
  e = error_of([&] { data::TokenShard s(p); });
  EXPECT_NE(e.find("bad magic 1234 at byte 0"), std::string::npos) << e;
  fresh();
  const uint16_t big = 301;
  patch(p, 1024 + 2 * 37, &big, 2);
  e = error_of([&] { data::TokenShard s(p); });
  EXPECT_NE(e.find("id 301 at byte 1098 is not below the vocabulary size 300"), std::string::npos) << e;
  fresh();
  patch(p, 4 * 200, &bad, 4);
  e = error_of([&] { data::TokenShard s(p); });
  EXPECT_NE(e.find("reserved header word 200 at byte 800"), std::string::npos) << e;
  std::filesystem::resize_file(p, 100);
  e = error_of([&] { data::TokenShard s(p); });
  EXPECT_NE(e.find("truncated header: the file ends at byte 100"), std::string::npos) << e;
  e = error_of([&] { data::list_token_shards(dir.file("none_*.bin")); });
  EXPECT_NE(e.find("names no shard"), std::string::npos) << e;
  e = error_of([&] { data::write_token_shard(p, ids, 200, -1); });
  EXPECT_NE(e.find("is not below the vocabulary size 200"), std::string::npos) << e;
}

TEST(TokenShards, RandomWindowsAreSlicesKeyedBySeedAndStep) {
  TempDir dir;
  const auto a = random_ids(300, 1000), b = random_ids(90, 1000);
  data::write_token_shard(dir.file("train_000.bin"), a, 1000, -1);
  data::write_token_shard(dir.file("train_001.bin"), b, 1000, -1);
  data::TokenWindows w(data::list_token_shards(dir.str()), 16);
  EXPECT_EQ(w.num_tokens(), 390);
  EXPECT_EQ(w.num_random_starts(), (300 - 16) + (90 - 16));
  Tensor x = w.random_batch(64, 7, 3);
  ASSERT_EQ(x.shape(), (Shape{64, 17}));
  auto v = x.to_vector<int64_t>();
  int from_second = 0;
  for (int64_t r = 0; r < 64; ++r) {
    bool found = false;
    for (const auto* src : {&a, &b})
      for (size_t s = 0; s + 17 <= src->size() && !found; ++s)
        if (std::equal(v.begin() + r * 17, v.begin() + (r + 1) * 17, src->begin() + static_cast<long>(s))) {
          found = true;
          from_second += src == &b;
        }
    EXPECT_TRUE(found) << "row " << r << " is not a window of a shard";
  }
  EXPECT_GT(from_second, 0);
  EXPECT_EQ(w.random_batch(64, 7, 3).to_vector<int64_t>(), v);
  EXPECT_NE(w.random_batch(64, 7, 4).to_vector<int64_t>(), v);
  EXPECT_NE(w.random_batch(64, 8, 3).to_vector<int64_t>(), v);
}

TEST(TokenShards, SequentialWindowsTileEachShardAndWrap) {
  TempDir dir;
  const auto a = random_ids(50, 500), b = random_ids(34, 500);
  data::write_token_shard(dir.file("s0.bin"), a, 500, -1);
  data::write_token_shard(dir.file("s1.bin"), b, 500, -1);
  data::TokenWindows w({dir.file("s0.bin"), dir.file("s1.bin")}, 8);
  EXPECT_EQ(w.num_sequential_windows(), 49 / 8 + 33 / 8);  // 6 + 4
  auto v = w.sequential_batch(11, 0).to_vector<int64_t>();
  for (int64_t k = 0; k < 11; ++k) {
    const auto& src = k % 10 < 6 ? a : b;
    const int64_t start = (k % 10 < 6 ? k % 10 : k % 10 - 6) * 8;
    for (int64_t i = 0; i <= 8; ++i)
      EXPECT_EQ(v[k * 9 + i], src[start + i]) << "window " << k << " token " << i;
  }
  std::string e;
  try {
    data::TokenWindows big({dir.file("s1.bin")}, 40);
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("lower the context"), std::string::npos) << e;
}

}  // namespace
}  // namespace nabla::test
