// The convolution choice cache file (cuda/conv_cache.h, NABLA_CONV_CACHE): host-only code, so these tests
// run without a GPU. A round trip of random entries; every kind of damage (truncation at every byte, a bad
// integer, a wrong field count, a wrong end count, data after the end, another file) is reported with the
// file name and the right byte offset and leaves the cache empty; another context's file is ignored
// quietly; saving goes through a temporary file that does not stay behind.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "cuda/conv_cache.h"
#include "testing.h"

namespace nabla {
namespace {
namespace cc = cuda::conv_cache;

cc::Entries random_entries(int count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  cc::Entries e;
  for (int i = 0; i < count; ++i) {
    cc::Key k{};
    for (auto& v : k) v = static_cast<int64_t>(rng() % 100000) - (i == 0 ? 5 : 0);  // a negative one too
    e[k] = static_cast<int64_t>(rng() % 64);
  }
  return e;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          (name + "." + std::to_string(static_cast<long long>(::getpid())) + "." +
           std::to_string(test::next_seed())))
      .string();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

const std::string kContext = "cudnn 91400 sm90 NVIDIA H200";

TEST(ConvCache, RoundTripKeepsEveryEntry) {
  const cc::Entries e = random_entries(40, test::next_seed());
  cc::Entries back;
  const cc::ParseResult r = cc::parse(cc::serialize(kContext, e), kContext, back);
  ASSERT_TRUE(r.ok) << r.what;
  EXPECT_EQ(back, e);
  // An empty cache is a valid file too.
  EXPECT_TRUE(cc::parse(cc::serialize(kContext, {}), kContext, back).ok);
  EXPECT_TRUE(back.empty());
}

TEST(ConvCache, EveryTruncationIsReportedAndIgnored) {
  const std::string text = cc::serialize(kContext, random_entries(3, test::next_seed()));
  for (size_t cut = 0; cut < text.size(); ++cut) {
    cc::Entries out = random_entries(1, 7);
    const cc::ParseResult r = cc::parse(text.substr(0, cut), kContext, out);
    ASSERT_FALSE(r.ok) << "a file cut at byte " << cut << " was accepted";
    EXPECT_TRUE(out.empty()) << "cut at " << cut;
    EXPECT_GE(r.offset, 0);
    EXPECT_LE(r.offset, static_cast<int64_t>(cut)) << r.what;
  }
}

TEST(ConvCache, DamageIsReportedAtItsByteOffset) {
  const std::string good = cc::serialize(kContext, random_entries(2, test::next_seed()));
  const size_t second = good.find('\n') + 1;         // the first record
  const size_t third = good.find('\n', second) + 1;  // the second record
  cc::Entries out;
  {  // a token that is not an integer, in the middle of the first record
    std::string t = good;
    const size_t at = good.find(' ', second) + 1;  // the second field of the first record
    t[at] = 'x';
    const cc::ParseResult r = cc::parse(t, kContext, out);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.offset, static_cast<int64_t>(at)) << r.what;
    EXPECT_NE(r.what.find("not an integer"), std::string::npos) << r.what;
  }
  {  // a record with a field missing
    std::string t = good;
    t.erase(second, good.find(' ', second) + 1 - second);
    const cc::ParseResult r = cc::parse(t, kContext, out);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.offset, static_cast<int64_t>(second)) << r.what;
    EXPECT_NE(r.what.find("fields"), std::string::npos) << r.what;
  }
  {  // a record dropped: the end line's count no longer matches
    std::string t = good;
    t.erase(third, good.find('\n', third) + 1 - third);
    const cc::ParseResult r = cc::parse(t, kContext, out);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.what.find("counts 2 records, the file has 1"), std::string::npos) << r.what;
  }
  {  // bytes after the end line
    const cc::ParseResult r = cc::parse(good + "1 2\n", kContext, out);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.offset, static_cast<int64_t>(good.size()));
  }
  {  // not a cache file at all
    const cc::ParseResult r = cc::parse("PK\x03\x04 zip\n", kContext, out);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.offset, 0);
  }
  EXPECT_TRUE(out.empty());
}

TEST(ConvCache, AnotherContextIsIgnoredWithoutAnError) {
  const std::string text =
      cc::serialize("cudnn 90100 sm80 NVIDIA A100", random_entries(2, test::next_seed()));
  cc::Entries out;
  const cc::ParseResult r = cc::parse(text, kContext, out);
  EXPECT_TRUE(r.ok);
  EXPECT_TRUE(r.other_context);
  EXPECT_TRUE(out.empty());
}

TEST(ConvCache, LoadWarnsNamingTheFileAndOffsetThenSaveRepairsIt) {
  const std::string path = temp_path("nabla_conv_cache_test");
  std::string warning;
  EXPECT_TRUE(cc::load(path, kContext, &warning).empty());  // no file: empty, quietly
  EXPECT_TRUE(warning.empty());

  const cc::Entries e = random_entries(5, test::next_seed());
  const std::string text = cc::serialize(kContext, e);
  write_file(path, text.substr(0, text.size() - 4));  // truncated inside the end line
  const cc::Entries got = cc::load(path, kContext, &warning);
  EXPECT_TRUE(got.empty());
  EXPECT_NE(warning.find(path), std::string::npos) << warning;
  EXPECT_NE(warning.find("at byte"), std::string::npos) << warning;
  EXPECT_NE(warning.find("ignoring"), std::string::npos) << warning;

  ASSERT_TRUE(cc::save(path, kContext, e, &warning)) << warning;
  warning.clear();
  EXPECT_EQ(cc::load(path, kContext, &warning), e);
  EXPECT_TRUE(warning.empty()) << warning;
  // The temporary file was renamed, not left behind.
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp." + std::to_string(static_cast<long long>(::getpid()))));
  std::filesystem::remove(path);
}

TEST(ConvCache, SaveIntoAMissingDirectoryWarnsAndReturnsFalse) {
  std::string warning;
  EXPECT_FALSE(cc::save("/nonexistent-dir-nabla/cache.txt", kContext, random_entries(1, 3), &warning));
  EXPECT_NE(warning.find("/nonexistent-dir-nabla/cache.txt"), std::string::npos) << warning;
}

}  // namespace
}  // namespace nabla
