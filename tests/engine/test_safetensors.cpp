// safetensors: bit-exact round trips of every dtype, byte-exact agreement with the format (hand-built
// files and the reference writer's bytes), and an Error naming the file and a byte offset for every kind
// of broken file, including every truncation of a valid one.
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "engine/checked.h"
#include "engine/crc32c.h"
#include "testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;

// A fresh empty directory per test, removed at the end.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("nabla_safetensors_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path path_;
};

std::mt19937_64 fresh_rng() { return std::mt19937_64(test::next_seed()); }

// Random bit patterns (NaNs and infinities included: the format must carry any bits); 0/1 for BOOL.
Tensor random_bits(const Shape& shape, DType dtype, std::mt19937_64& rng) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* b = static_cast<unsigned char*>(t.data_ptr());
  for (size_t i = 0; i < t.nbytes(); ++i)
    b[i] = static_cast<unsigned char>(dtype == DType::b8 ? rng() & 1 : rng());
  return t;
}

std::string bytes_of(const Tensor& t) {
  Tensor c = t.is_contiguous() ? t : t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

std::string u64_le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

// A file with `json` as its header (padded with spaces to a multiple of 8) and `data` after it.
std::string file_bytes(std::string json, const std::string& data) {
  json.append((8 - json.size() % 8) % 8, ' ');
  return u64_le(json.size()) + json + data;
}

std::string f32_bytes(std::initializer_list<float> values) {
  std::string s;
  for (float v : values) s.append(reinterpret_cast<const char*>(&v), 4);
  return s;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const DType kAllDTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16,
                            DType::i32, DType::i64, DType::u8,   DType::b8};

TEST(Safetensors, RoundTripsEveryDTypeBitExactlyThroughBytesAndFiles) {
  TempDir dir;
  auto rng = fresh_rng();
  NamedTensors tensors;
  for (DType t : kAllDTypes) {
    tensors.emplace_back(std::string("t_") + dtype_name(t), random_bits({3, 5, 7}, t, rng));
    tensors.emplace_back(std::string("scalar_") + dtype_name(t), random_bits({}, t, rng));
  }
  tensors.emplace_back("empty", random_bits({0, 4}, DType::f32, rng));
  const std::string path = dir.file("all.safetensors");
  save_safetensors(path, tensors);
  // Random bits hold NaNs and infinities: allowed here, refused by default (NonFiniteWeightsAreRefused...).
  const SafetensorsLoadOptions any_bits{.allow_non_finite = true};
  for (const SafetensorsFile& f : {load_safetensors(path, any_bits),
                                   load_safetensors_from_bytes(read_file(path), "<bytes>", any_bits)}) {
    ASSERT_EQ(f.tensors.size(), tensors.size());
    for (const auto& [name, t] : tensors) {
      Tensor got = f.get(name);
      EXPECT_EQ(got.dtype(), t.dtype()) << name;
      EXPECT_EQ(got.shape(), t.shape()) << name;
      EXPECT_TRUE(got.is_contiguous());
      EXPECT_FALSE(got.requires_grad());
      EXPECT_EQ(bytes_of(got), bytes_of(t)) << name;
    }
  }
  EXPECT_EQ(save_safetensors_to_bytes(tensors), read_file(path));
}

TEST(Safetensors, LaysOutByDecreasingItemsizeAndOtherwiseKeepsTheCallersOrder) {
  auto rng = fresh_rng();
  NamedTensors tensors{{"z.u8", random_bits({3}, DType::u8, rng)},
                       {"y.f32", random_bits({2}, DType::f32, rng)},
                       {"x.f64", random_bits({1}, DType::f64, rng)},
                       {"w.i32", random_bits({2}, DType::i32, rng)},
                       {"v.bf16", random_bits({3}, DType::bf16, rng)}};
  SafetensorsFile f = load_safetensors_from_bytes(save_safetensors_to_bytes(tensors));
  std::vector<std::string> names;
  for (const auto& [name, t] : f.tensors) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"x.f64", "y.f32", "w.i32", "v.bf16", "z.u8"}));
  // Every tensor starts at a multiple of its itemsize within the file (the header is padded to 8).
  std::string bytes = save_safetensors_to_bytes(tensors);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  size_t at = 8 + n;
  for (const auto& [name, t] : f.tensors) {
    EXPECT_EQ(at % t.itemsize(), 0u) << name;
    EXPECT_EQ(bytes.substr(at, t.nbytes()), bytes_of(t)) << name;
    at += t.nbytes();
  }
  EXPECT_EQ(at, bytes.size());
}

TEST(Safetensors, NonContiguousInputsAreWrittenInRowMajorOrder) {
  auto rng = fresh_rng();
  Tensor x = test::randn32({4, 6});
  Tensor col = test::randn32({3, 1});
  // A bf16 transpose, built as a raw view: the format must not depend on kernels for storage-only types.
  Tensor h = random_bits({2, 5}, DType::bf16, rng);
  Tensor ht = Tensor::make_view(h.storage(), {5, 2}, {1, 5}, 0, DType::bf16);
  NamedTensors tensors{{"transposed", x.t()},
                       {"narrowed", x.narrow(1, 2, 3)},
                       {"selected", x.select(1, 4)},
                       {"expanded", col.expand({3, 4})},
                       {"bf16_t", ht}};
  for (const auto& [name, t] : tensors) ASSERT_FALSE(t.is_contiguous()) << name;
  SafetensorsFile f = load_safetensors_from_bytes(save_safetensors_to_bytes(tensors));
  for (const auto& [name, t] : tensors) {
    Tensor got = f.get(name);
    EXPECT_EQ(got.shape(), t.shape()) << name;
    EXPECT_EQ(got.to_double_vector(), t.to_double_vector()) << name;
  }
  auto* hb = static_cast<const uint16_t*>(h.data_ptr());
  auto* gb = static_cast<const uint16_t*>(f.get("bf16_t").data_ptr());
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 2; ++j) EXPECT_EQ(gb[i * 2 + j], hb[j * 5 + i]);
}

TEST(Safetensors, MetadataRoundTrips) {
  std::map<std::string, std::string> meta{{"format", "pt"},
                                          {"step", "1200"},
                                          {"note", "quotes \" backslash \\ newline \n tab \t"},
                                          {"unicode", "\xce\xbb = 0.5 \xe2\x88\x87"},
                                          {"empty", ""}};
  NamedTensors tensors{{"w", test::randn32({2, 2})}};
  SafetensorsFile f = load_safetensors_from_bytes(save_safetensors_to_bytes(tensors, meta));
  EXPECT_EQ(f.metadata, meta);
  EXPECT_TRUE(load_safetensors_from_bytes(save_safetensors_to_bytes(tensors)).metadata.empty());
}

TEST(Safetensors, ReadsAHandBuiltFileFromTheSpec) {
  // Entries out of data order, spaces in the JSON, metadata last: all allowed by the format.
  std::string json =
      "{ \"b\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [8, 16]},\n"
      "  \"a\": {\"data_offsets\": [0, 8], \"shape\": [1, 2], \"dtype\": \"F32\"},\n"
      "  \"\xce\xbb\": {\"dtype\": \"BOOL\", \"shape\": [3], \"data_offsets\": [16, 19]},\n"
      "  \"__metadata__\": {\"format\": \"pt\"} }";
  std::string data = f32_bytes({1.0f, -2.5f}) + std::string("\x07\x00\x00\x00\xff\xff\xff\xff", 8) +
                     std::string("\x01\x00\x01", 3);
  SafetensorsFile f = load_safetensors_from_bytes(file_bytes(json, data));
  ASSERT_EQ(f.tensors.size(), 3u);
  EXPECT_EQ(f.tensors[0].first, "a");
  EXPECT_EQ(f.tensors[1].first, "b");
  EXPECT_EQ(f.tensors[2].first, "\xce\xbb");
  EXPECT_EQ(f.get("a").shape(), (Shape{1, 2}));
  EXPECT_EQ(f.get("a").dtype(), DType::f32);
  EXPECT_EQ(f.get("a").to_double_vector(), (std::vector<double>{1.0, -2.5}));
  EXPECT_EQ(f.get("b").dtype(), DType::i32);
  EXPECT_EQ(f.get("b").to_double_vector(), (std::vector<double>{7, -1}));
  EXPECT_EQ(f.get("\xce\xbb").to_double_vector(), (std::vector<double>{1, 0, 1}));
  EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
}

TEST(Safetensors, WritesExactlyTheBytesTheFormatPrescribes) {
  // Compact JSON, "__metadata__" first, padded with spaces to a multiple of 8, then the raw data; these are
  // the byte strings the reference implementation's serialization tests expect (without our checksums).
  const SafetensorsSaveOptions kReference{.checksums = false};
  std::vector<double> values{0, 1, 2, 3, 4, 5};
  NamedTensors one{{"attn0", from_vector(values, {1, 1, 2, 3})}};
  std::string json = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(json.size(), 65u);
  std::string expected = u64_le(72) + json + std::string(7, ' ') + f32_bytes({0, 1, 2, 3, 4, 5});
  EXPECT_EQ(save_safetensors_to_bytes(one, {}, kReference), expected);

  EXPECT_EQ(save_safetensors_to_bytes({}, {}, kReference), u64_le(8) + "{}      ");
  EXPECT_EQ(save_safetensors_to_bytes({}, {{"framework", "pt"}}, kReference),
            u64_le(40) + R"({"__metadata__":{"framework":"pt"}})" + "     ");

  NamedTensors two{{"w", from_vector({1.5, -2}, {2})}, {"idx", from_vector({3}, {1}, {.dtype = DType::i64})}};
  std::string json2 =
      R"({"__metadata__":{"a":"1","b":"x"},"idx":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  std::string expected2 = file_bytes(json2, std::string("\x03\0\0\0\0\0\0\0", 8) + f32_bytes({1.5f, -2.0f}));
  EXPECT_EQ(save_safetensors_to_bytes(two, {{"b", "x"}, {"a", "1"}}, kReference), expected2);
}

TEST(Safetensors, EveryTruncationGivesAnErrorNamingThePathAndAnOffset) {
  TempDir dir;
  auto rng = fresh_rng();
  NamedTensors tensors{{"w", random_bits({3, 4}, DType::f32, rng)},
                       {"b", random_bits({4}, DType::f64, rng)},
                       {"mask", random_bits({5}, DType::b8, rng)}};
  const std::string full = save_safetensors_to_bytes(tensors, {{"k", "v"}});
  const std::string path = dir.file("cut.safetensors");
  for (size_t cut = 0; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(full.size()));
    test::expect_error([&] { load_safetensors_from_bytes(full.substr(0, cut), "cut.bin"); },
                       {"safetensors: cut.bin:", "byte"});
    write_file(path, full.substr(0, cut));
    test::expect_error([&] { load_safetensors(path); }, {"safetensors: " + path + ":", "byte"});
  }
  // The different places a cut can fall get messages that say what is missing.
  test::expect_error([&] { load_safetensors_from_bytes(full.substr(0, 5), "f"); },
                     {"f:", "5 bytes", "fewer than the 8-byte header length", "byte 0"});
  test::expect_error([&] { load_safetensors_from_bytes(full.substr(0, 20), "f"); },
                     {"header length at byte 0", "only 12 follow"});
  test::expect_error([&] { load_safetensors_from_bytes(full.substr(0, full.size() - 1), "f"); },
                     {"tensor 'mask'", "run past the end of the data section"});
  EXPECT_NO_THROW(load_safetensors_from_bytes(full));
}

struct Corruption {
  const char* what;
  std::string bytes;
  std::vector<std::string> fragments;
};

TEST(Safetensors, CorruptFilesGiveErrorsNamingTheProblemAndItsByte) {
  const std::string d24(24, '\x01');  // data for a [2,3] F32 (any bits) or 24 BOOLs
  auto entry = [](const std::string& name, const std::string& body) {
    return "\"" + name + "\":{" + body + "}";
  };
  const std::string w = R"("dtype":"F32","shape":[2,3],"data_offsets":[0,24])";
  std::vector<Corruption> cases{
      {"header length beyond the file",
       u64_le(1000) + "{}      ",
       {"header length at byte 0 says 1000", "only 8"}},
      {"truncated JSON",
       file_bytes("{\"w\":{\"dtype\":", ""),
       {"invalid JSON in the header (bytes 8..24)", "at byte 24", "unexpected end of input"}},
      {"garbage JSON", file_bytes("{\"w\" 12}", ""), {"invalid JSON", "at byte 14", "expected ':'"}},
      {"not UTF-8", file_bytes("{\"\xff\":{}}", ""), {"invalid JSON", "at byte"}},
      {"not an object", file_bytes("[1,2]", ""), {"must be a JSON object", "byte 8", "[1,2]"}},
      {"unknown dtype",
       file_bytes("{" + entry("w", R"("dtype":"I8","shape":[2],"data_offsets":[0,2])") + "}", "ab"),
       {"tensor 'w' (entry at byte 9)", "unknown dtype \"I8\""}},
      {"shape/offset mismatch",
       file_bytes("{" + entry("w", R"("dtype":"F32","shape":[2,4],"data_offsets":[0,24])") + "}", d24),
       {"tensor 'w' (entry at byte 9)", "hold 24 bytes", "[2,4] of F32 needs 32"}},
      {"offsets past the data",
       file_bytes("{" + entry("w", w) + "}", std::string(20, 'x')),
       {"'w'", "bytes 72..96 of the file", "run past the end",
        "20 bytes from byte 72; the file ends at byte 92"}},
      {"end before begin",
       file_bytes("{" + entry("w", R"("dtype":"U8","shape":[0],"data_offsets":[5,4])") + "}", ""),
       {"'w'", "end before they begin"}},
      {"overlap",
       file_bytes("{" + entry("a", w) + "," +
                      entry("b", R"("dtype":"F32","shape":[2],"data_offsets":[16,24])") + "}",
                  d24),
       {"tensors 'a' (entry at byte 9) and 'b'", "overlap"}},
      {"gap",
       file_bytes("{" + entry("a", R"("dtype":"U8","shape":[4],"data_offsets":[0,4])") + "," +
                      entry("b", R"("dtype":"U8","shape":[4],"data_offsets":[8,12])") + "}",
                  std::string(12, 'x')),
       {"no tensor covers data offsets [4,8)", "before tensor 'b'", "contiguous"}},
      {"gap at the start",
       file_bytes("{" + entry("a", R"("dtype":"U8","shape":[4],"data_offsets":[4,8])") + "}",
                  std::string(8, 'x')),
       {"no tensor covers data offsets [0,4)"}},
      {"bytes after the last tensor",
       file_bytes("{" + entry("w", w) + "}", d24 + "xyz"),
       {"3 bytes after the data belong to no tensor"}},
      {"duplicate name",
       file_bytes("{" + entry("w", w) + "," + entry("w", w) + "}", d24),
       {"the name 'w' appears twice", "at bytes 9 and 65"}},
      {"duplicate field",
       file_bytes("{" + entry("w", std::string(R"("dtype":"U8",)") + w) + "}", d24),
       {"entry 'w' (at byte 9)", "field 'dtype' appears twice"}},
      {"missing shape",
       file_bytes("{" + entry("w", R"("dtype":"F32","data_offsets":[0,24])") + "}", d24),
       {"tensor 'w'", "missing field 'shape'"}},
      {"missing dtype",
       file_bytes("{" + entry("w", R"("shape":[6],"data_offsets":[0,24])") + "}", d24),
       {"missing field 'dtype'"}},
      {"entry not an object",
       file_bytes(R"({"w":[1,2]})", ""),
       {"tensor 'w' (entry at byte 9)", "expected an object"}},
      {"negative size",
       file_bytes("{" + entry("w", R"("dtype":"F32","shape":[-2,3],"data_offsets":[0,24])") + "}", d24),
       {"'shape' must hold non-negative integers"}},
      {"fractional offsets",
       file_bytes("{" + entry("w", R"("dtype":"F32","shape":[2,3],"data_offsets":[0,24.0])") + "}", d24),
       {"'data_offsets' must be [begin, end]"}},
      {"three offsets",
       file_bytes("{" + entry("w", R"("dtype":"F32","shape":[2,3],"data_offsets":[0,24,48])") + "}", d24),
       {"'data_offsets' must be [begin, end]"}},
      {"shape overflows",
       file_bytes(
           "{" + entry("w", R"("dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8])") + "}",
           std::string(8, 'x')),
       {"needs more than 2^64"}},
      {"metadata not strings",
       file_bytes(R"({"__metadata__":{"step":12}})", ""),
       {"__metadata__ (at byte 9)", "'step' must be a string"}},
      {"metadata not an object", file_bytes(R"({"__metadata__":"x"})", ""), {"__metadata__ (at byte 9)"}},
      {"BOOL that is neither 0 nor 1",
       file_bytes("{" + entry("m", R"("dtype":"BOOL","shape":[3],"data_offsets":[0,3])") + "}",
                  std::string("\1\2\0", 3)),
       {"tensor 'm'", "element 1", "holds 2"}},
  };
  for (const Corruption& c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<std::string> fragments = c.fragments;
    fragments.push_back("safetensors: bad.safetensors: ");
    fragments.push_back("byte");
    test::expect_error([&] { load_safetensors_from_bytes(c.bytes, "bad.safetensors"); }, fragments);
  }
}

TEST(Safetensors, RandomlyCorruptedHeadersLoadOrThrowButNeverCrash) {
  auto rng = fresh_rng();
  NamedTensors tensors{{"layer.0.weight", random_bits({4, 3}, DType::f32, rng)},
                       {"layer.0.bias", random_bits({4}, DType::bf16, rng)},
                       {"mask", random_bits({6}, DType::b8, rng)}};
  const std::string good = save_safetensors_to_bytes(tensors, {{"epoch", "3"}});
  uint64_t n;
  std::memcpy(&n, good.data(), 8);
  const char alphabet[] = "{}[]\",:0123456789 -.eE\\azF\xff";
  int errors = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bad = good;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      size_t at = 8 + rng() % n;  // inside the header: the length and data are covered above
      bad[at] = rng() % 2 ? alphabet[rng() % (sizeof(alphabet) - 1)] : static_cast<char>(rng());
    }
    try {
      load_safetensors_from_bytes(bad, "fuzz");
    } catch (const Error& err) {
      ++errors;
      EXPECT_NE(std::string(err.what()).find("safetensors: fuzz: "), std::string::npos) << err.what();
    }
  }
  EXPECT_GT(errors, 1000);  // most edits break something; the rest load (e.g. a changed name)
}

TEST(Safetensors, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  Tensor a = test::randn32({3, 3}), b = test::randn32({5});
  save_safetensors(path, {{"a", a}});
  save_safetensors(path, {{"b", b}}, {{"v", "2"}});  // overwrites
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"model.safetensors"}));
  SafetensorsFile f = load_safetensors(path);
  EXPECT_FALSE(f.contains("a"));
  EXPECT_EQ(f.get("b").to_double_vector(), b.to_double_vector());
  EXPECT_EQ(f.metadata.at("v"), "2");

  // Bad input fails before anything touches the disk; the old file stays whole.
  test::expect_error([&] { save_safetensors(path, {{"x", a}, {"x", b}}); }, {"two tensors are called 'x'"});
  test::expect_error([&] { save_safetensors(path, {{"__metadata__", a}}); }, {"reserved"});
  test::expect_error([&] { save_safetensors(path, {{"u", Tensor()}}); }, {"'u' is undefined"});
  test::expect_error([&] { save_safetensors(path, {{"bad\xff", a}}); }, {"not valid UTF-8"});
  test::expect_error([&] { save_safetensors(path, {{"a", a}}, {{"k", "\xc3"}}); }, {"not valid UTF-8"});
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"model.safetensors"}));
  EXPECT_EQ(load_safetensors(path).get("b").to_double_vector(), b.to_double_vector());

  const std::string missing_dir = dir.file("no/such/dir/m.safetensors");
  test::expect_error(
      [&] {
        save_safetensors(missing_dir, {{"a", a}});
      },
      {"cannot create", missing_dir + ".tmp"});
  test::expect_error([&] { load_safetensors(missing_dir); }, {"cannot open", missing_dir});
  test::expect_error([&] { load_safetensors(dir.file("")); }, {"is a directory"});
}

TEST(Safetensors, GetNamesTheMissingTensorAndTheOnesThereAre) {
  NamedTensors tensors{{"fc1.weight", test::randn32({2, 2})}, {"fc1.bias", test::randn32({2})}};
  SafetensorsFile f = load_safetensors_from_bytes(save_safetensors_to_bytes(tensors), "ckpt.safetensors");
  EXPECT_TRUE(f.contains("fc1.bias"));
  test::expect_error([&] { f.get("fc2.weight"); },
                     {"ckpt.safetensors", "no tensor named 'fc2.weight'", "2 tensors: fc1.weight, fc1.bias"});
}

// ---- hostile files (issue 15) ---------------------------------------------------------------------

TEST(SafetensorsHostile, DeeplyNestedHeaderIsRefusedWithoutRecursion) {
  // 50,000 nested arrays (a 100 KB header) used to overflow the stack while the value was printed.
  const std::string deep = "{\"w\":" + std::string(50000, '[') + std::string(50000, ']') + "}";
  test::expect_error(
      [&] { load_safetensors_from_bytes(file_bytes(deep, ""), "deep.safetensors"); },
      {"safetensors: deep.safetensors: invalid JSON in the header (bytes 8..100016) at byte 28: "
       "JSON nested deeper than 16 levels (a safetensors header is 3 deep)"});
  std::string deep_obj = "1";
  for (int i = 0; i < 20; ++i) deep_obj = "{\"a\":" + deep_obj + "}";
  // The 17th object opens at header index 16 * 5 = 80.
  test::expect_error([&] { load_safetensors_from_bytes(file_bytes(deep_obj, ""), "o"); },
                     {"safetensors: o: invalid JSON in the header", "at byte 88: JSON nested deeper than 16"});
}

TEST(SafetensorsHostile, NumberOutOfRangeIsAnErrorWithTheByte) {
  const std::string json = R"({"w":{"dtype":"F32","shape":[1e309],"data_offsets":[0,4]}})";
  test::expect_error([&] { load_safetensors_from_bytes(file_bytes(json, "abcd"), "big.safetensors"); },
                     {"safetensors: big.safetensors: invalid JSON in the header (bytes 8..72) at byte 41: ",
                      "number overflow parsing '1e309'"});
}

TEST(SafetensorsHostile, HugeNamesAndValuesArePrintedShort) {
  const std::string name(100000, 'n');
  const std::string json = "{\"" + name + "\":{\"dtype\":\"" + std::string(5000, 'Q') +
                           "\",\"shape\":[1],"
                           "\"data_offsets\":[0,4]}}";
  try {
    load_safetensors_from_bytes(file_bytes(json, "abcd"), "long.safetensors");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_LT(msg.size(), 400u) << msg;
    EXPECT_NE(msg.find("...(100000 bytes)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unknown dtype"), std::string::npos) << msg;
  }
}

TEST(SafetensorsHostile, FlippedDataBitsFailTheChecksum) {
  auto rng = fresh_rng();
  NamedTensors tensors{{"fc.weight", test::randn32({8, 16})},
                       {"fc.bias", test::randn32({8})},
                       {"steps", full({3}, 7.0, {.dtype = DType::i64})}};
  std::string bytes = save_safetensors_to_bytes(tensors, {{"epoch", "3"}});
  SafetensorsFile ok = load_safetensors_from_bytes(bytes, "ck");
  EXPECT_EQ(ok.metadata, (std::map<std::string, std::string>{{"epoch", "3"}}));  // checksums stripped
  EXPECT_EQ(ok.get("fc.weight").to_double_vector(), tensors[0].second.to_double_vector());
  // The checksum is CRC-32C of the tensor's bytes, in the metadata, where PyTorch sees a string.
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  const std::string header = bytes.substr(8, n);
  char want[32];
  std::snprintf(want, sizeof want, "\"nabla.crc32c.fc.bias\":\"%08x\"",
                crc32c(tensors[1].second.data_ptr(), tensors[1].second.nbytes()));
  EXPECT_NE(header.find(want), std::string::npos) << header;
  // Flip one random bit of the data section: the tensor holding it is named, with its bytes.
  const size_t data_at = 8 + n;
  const size_t bit = rng() % ((bytes.size() - data_at) * 8);
  bytes[data_at + bit / 8] ^= static_cast<char>(1 << (bit % 8));
  test::expect_error([&] { load_safetensors_from_bytes(bytes, "ck.safetensors"); },
                     {"safetensors: ck.safetensors: tensor '", "the CRC-32C of its data (bytes ",
                      ", the header says ", ": the file is corrupt"});
  EXPECT_NO_THROW(load_safetensors_from_bytes(bytes, "ck", {.verify_checksums = false}));
  // Files from other writers have no checksums and load; a malformed or stray checksum does not.
  EXPECT_NO_THROW(load_safetensors_from_bytes(save_safetensors_to_bytes(tensors, {}, {.checksums = false})));
  const std::string d4 = f32_bytes({1.0f});
  const std::string w = R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  test::expect_error(
      [&] {
        load_safetensors_from_bytes(file_bytes(R"({"__metadata__":{"nabla.crc32c.w":"xyz"},)" + w + "}", d4),
                                    "m");
      },
      {"safetensors: m: __metadata__: checksum 'nabla.crc32c.w' must be 8 hex digits, got 'xyz'"});
  test::expect_error(
      [&] {
        load_safetensors_from_bytes(
            file_bytes(R"({"__metadata__":{"nabla.crc32c.v":"00000000"},)" + w + "}", d4), "m");
      },
      {"safetensors: m: __metadata__ has a checksum for tensor 'v', which the file does not hold"});
  test::expect_error(
      [&] {
        save_safetensors_to_bytes(tensors, {{"nabla.crc32c.x", "1"}});
      },
      {"metadata key 'nabla.crc32c.x' is reserved"});
}

TEST(SafetensorsHostile, NonFiniteWeightsAreRefusedUnlessAllowed) {
  auto rng = fresh_rng();
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dt));
    // Random finite values (16-bit: random bits with the exponent forced below all-ones), one NaN.
    Tensor w = Tensor::empty({4, 5}, dt);
    const int64_t at = static_cast<int64_t>(rng() % 20);
    for (int64_t i = 0; i < 20; ++i) {
      const double v = static_cast<double>(rng() % 2000) / 100.0 - 10.0;
      if (dt == DType::f32) w.data<float>()[i] = i == at ? std::nanf("") : static_cast<float>(v);
      if (dt == DType::f64) w.data<double>()[i] = i == at ? std::nan("") : v;
      if (dt == DType::bf16 || dt == DType::f16) {
        const uint16_t exp_mask = dt == DType::bf16 ? 0x7f80 : 0x7c00;
        uint16_t h = static_cast<uint16_t>(rng()) & static_cast<uint16_t>(~(exp_mask & (exp_mask << 1)));
        if (i == at) h = static_cast<uint16_t>(exp_mask | 1);  // NaN
        static_cast<uint16_t*>(w.data_ptr())[i] = h;
      }
    }
    std::string bytes = save_safetensors_to_bytes({{"w", w}});
    test::expect_error(
        [&] { load_safetensors_from_bytes(bytes, "nan.safetensors"); },
        {"safetensors: nan.safetensors: tensor 'w' (entry at byte ",
         "): element " + std::to_string(at) + " (byte ",
         ") is nan; non-finite weights are refused (load with allow_non_finite to accept them)"});
    SafetensorsFile f = load_safetensors_from_bytes(bytes, "nan", {.allow_non_finite = true});
    EXPECT_EQ(bytes_of(f.get("w")), bytes_of(w));
  }
  Tensor inf = full({3}, -INFINITY);
  test::expect_error(
      [&] {
        load_safetensors_from_bytes(save_safetensors_to_bytes({{"b", inf}}), "i");
      },
      {"tensor 'b'", "element 0 (byte ", ") is -inf"});
}

TEST(SafetensorsHostile, OnlyRegularFilesAreRead) {
  TempDir dir;
  const std::string zero = dir.file("zero.safetensors");
  fs::create_symlink("/dev/zero", zero);
  test::expect_error([&] { load_safetensors(zero); },
                     {"safetensors: " + zero +
                      " is not a regular file (a character device); checkpoints are read "
                      "from regular files only"});
  const std::string fifo = dir.file("fifo.safetensors");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  test::expect_error([&] { load_safetensors(fifo); },
                     {"safetensors: " + fifo + " is not a regular file (a FIFO)"});
  const std::string loop = dir.file("loop.safetensors");
  fs::create_symlink(loop, loop);
  test::expect_error(
      [&] { load_safetensors(loop); },
      {"safetensors: cannot open " + loop + ": a symlink loop (too many levels of symbolic links)"});
}

TEST(Crc32c, MatchesTheStandardCheckValueAndThePortableVersion) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  auto rng = fresh_rng();
  std::string s(10000 + rng() % 1000, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  const size_t cut = rng() % s.size();
  EXPECT_EQ(crc32c(s.data(), s.size()), crc32c_portable(s.data(), s.size()));
  EXPECT_EQ(crc32c(s.data() + cut, s.size() - cut, crc32c(s.data(), cut)), crc32c(s.data(), s.size()));
}

TEST(CheckedShape, ProductsThatOverflowAreErrorsNamingTheShape) {
  const int64_t big = 4294967295;
  test::expect_error(
      [&] {
        numel_of({big, big, big});
      },
      {"shape: the product of sizes [4294967295,4294967295,4294967295] does not fit in a signed "
       "64-bit size"});
  test::expect_error(
      [&] {
        Tensor::empty({0, big, big}, DType::u8);
      },
      {"the product of sizes [0,4294967295,4294967295] does not fit"});
  test::expect_error(
      [&] {
        Tensor::empty({int64_t{1} << 60, 4}, DType::f32);
      },
      {"shape [1152921504606846976,4]: 4611686018427387904 elements of 4 bytes do not fit in a signed 64-bit size"});
  test::expect_error([&] { checked_mul(int64_t{1} << 40, int64_t{1} << 30, "epochs x steps"); },
                     {"epochs x steps: 1099511627776 x 1073741824 does not fit in a signed 64-bit size"});
  EXPECT_EQ(checked_product({0, big, 3}, "x"), 0);
  const int64_t a = static_cast<int64_t>(test::next_seed() % 100000),
                b = static_cast<int64_t>(test::next_seed() % 100000);
  EXPECT_EQ(checked_mul(a, b, "x"), a * b);
  EXPECT_EQ(numel_of({a, b, 3}), a * b * 3);
}

}  // namespace
}  // namespace nabla
