// Criteo data (data/criteo.h, data/criteo_synthetic.h): the text reader on the shared DeepCTR sample and on
// crafted bad rows (exact messages), gzip input, the text -> binary -> loader round trip, truncated and
// corrupt binary files, the reference split, loader resume, and the synthetic generator's statistics and
// teacher.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "data/criteo.h"
#include "data/criteo_synthetic.h"
#include "data_testing.h"

namespace nabla::data::criteo {
namespace {

using test::TempDir;

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream f(path, std::ios::binary);
  for (const auto& l : lines) f << l << '\n';
}

// A good Kaggle line: label, 13 integers, 26 hex fields, with some empties.
std::string good_line(int label = 1) {
  std::string s = std::to_string(label);
  for (int j = 0; j < kNumDense; ++j) {
    s.push_back('\t');
    if (j % 4 != 3) s.append(std::to_string(j * 7 - 1));
  }
  for (int c = 0; c < kNumSparse; ++c) {
    s.push_back('\t');
    if (c % 5 != 4) s.append("68fd1e6").push_back(static_cast<char>('0' + c % 10));
  }
  return s;
}

// Replaces tab-separated field k (0-based) of a line.
std::string with_field(std::string line, int k, const std::string& value) {
  std::vector<std::string> f;
  size_t start = 0;
  for (;;) {
    size_t at = line.find('\t', start);
    f.push_back(line.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) break;
    start = at + 1;
  }
  f[k] = value;
  std::string out = f[0];
  for (size_t i = 1; i < f.size(); ++i) out.append(1, '\t').append(f[i]);
  return out;
}

std::string sample_path() {
  return std::string(NABLA_SOURCE_DIR) + "/../shared/data/criteo-sample/criteo_sample.txt";
}

std::vector<RawRow> read_all(const std::string& path, TextOptions o) {
  TextReader r(path, o);
  std::vector<RawRow> rows;
  RawRow row;
  while (r.next(row)) rows.push_back(row);
  return rows;
}

bool same(const RawRow& a, const RawRow& b) {
  return a.label == b.label && a.dense == b.dense && a.dense_missing == b.dense_missing &&
         a.sparse == b.sparse && a.sparse_missing == b.sparse_missing;
}

SyntheticOptions small_synthetic(uint64_t seed) {
  SyntheticOptions o;
  o.cardinalities = scaled_kaggle_sizes(1000);
  o.seed = seed;
  return o;
}

// ---- text ---------------------------------------------------------------------------------------------
TEST(CriteoText, ReadsTheDeepCtrSampleWithKnownValues) {
  if (!std::filesystem::exists(sample_path())) GTEST_SKIP() << "no " << sample_path();
  TextOptions o = text_options_for(sample_path());  // named .txt, but its header line says CSV
  EXPECT_EQ(o.delimiter, ',');
  EXPECT_TRUE(o.header);
  std::vector<RawRow> rows = read_all(sample_path(), o);
  ASSERT_EQ(rows.size(), 200u);
  int clicks = 0, dense_missing = 0;
  for (const auto& r : rows) {
    clicks += r.label;
    for (bool m : r.dense_missing) dense_missing += m;
  }
  EXPECT_EQ(clicks, 49);          // README: 49 clicks
  EXPECT_EQ(dense_missing, 528);  // counted with awk
  // Row 1: 0,,3,260.0,,17668.0,,,33.0,,,,0.0,,05db9164,08d6d899,... ,87c6f83c,,,0429f84b,,3a171ecb,c0d61a5c,,
  const RawRow& a = rows[0];
  EXPECT_EQ(a.label, 0);
  EXPECT_TRUE(a.dense_missing[0]);
  EXPECT_EQ(a.dense[1], 3);
  EXPECT_EQ(a.dense[2], 260);
  EXPECT_EQ(a.dense[4], 17668);
  EXPECT_EQ(a.dense[11], 0);
  EXPECT_FALSE(a.dense_missing[11]);
  EXPECT_EQ(a.sparse[0], 0x05db9164u);
  EXPECT_EQ(a.sparse[17], 0x87c6f83cu);
  EXPECT_TRUE(a.sparse_missing[18] && a.sparse_missing[19] && a.sparse_missing[21]);
  EXPECT_EQ(a.sparse[20], 0x0429f84bu);
  EXPECT_EQ(a.sparse[23], 0xc0d61a5cu);
  EXPECT_TRUE(a.sparse_missing[24] && a.sparse_missing[25]);  // the line ends ",,\r\n"
  // Row 2: I2 = -1 -> dense 0 after preprocessing, I3 = 19 -> log 20
  EXPECT_EQ(rows[1].dense[1], -1);
  EncodedRow e = Preprocessor::hashing({1000}).encode(rows[1]);
  EXPECT_EQ(e.dense[1], 0.0f);
  EXPECT_FLOAT_EQ(e.dense[2], std::log(20.0f));
  EXPECT_EQ(e.sparse[0], static_cast<int32_t>(0x68fd1e64u % 1000));
}

TEST(CriteoText, BadRowsGiveExactMessagesWithFileLineAndField) {
  TempDir dir;
  std::string p = dir.file("train.txt");
  const std::string good = good_line();
  struct Case {
    std::string line, message;
  };
  std::string long_field(65, 'a');
  std::vector<Case> cases = {
      {good.substr(0, good.rfind('\t')),
       "expected 40 fields (label, 13 integer, 26 categorical) separated by '\\t', got 39"},
      {good + "\tab", "expected 40 fields (label, 13 integer, 26 categorical) separated by '\\t', got 41"},
      {with_field(good, 15, "zz12ab34"), "field 16 (C2): 'zz12ab34' is not hexadecimal"},
      {with_field(good, 16, long_field), "field 17 (C3): 65 characters, at most 64 expected"},
      {with_field(good, 17, "123456789abcdef01"),
       "field 18 (C4): '123456789abcdef01' has 17 hex digits, at most 16 fit in 64 bits"},
      {with_field(good, 1, "99999999999999999999"),
       "field 2 (I1): '99999999999999999999' overflows a 64-bit integer"},
      {with_field(good, 2, "1.5"), "field 3 (I2): '1.5' is not an integer"},
      {with_field(good, 13, "x"), "field 14 (I13): 'x' is not an integer"},
      {with_field(good, 0, "2"), "field 1 (label): label '2', expected 0 or 1"},
      {with_field(good, 0, ""), "field 1 (label): label '', expected 0 or 1"},
  };
  for (const auto& c : cases) {
    write_lines(p, {good, good, c.line, good});
    EXPECT_EQ(error_of([&] { read_all(p, {}); }), "criteo: " + p + ":3: " + c.message);
  }
  // skip_bad_rows: the bad ones counted, the good ones read, the first message kept
  std::vector<std::string> lines{good};
  for (const auto& c : cases) lines.push_back(c.line), lines.push_back(good_line(0));
  write_lines(p, lines);
  TextReader r(p, {.skip_bad_rows = true});
  RawRow row;
  int n = 0;
  while (r.next(row)) ++n;
  EXPECT_EQ(n, 1 + static_cast<int>(cases.size()));
  EXPECT_EQ(r.bad_rows(), static_cast<int64_t>(cases.size()));
  EXPECT_EQ(r.first_bad_row(), "criteo: " + p + ":2: " + cases[0].message);
  TextOptions skip{.skip_bad_rows = true};
  ConvertStats st = convert_text_to_binary({p}, dir.file("skip.bin"), Preprocessor::hashing({97}), &skip);
  EXPECT_EQ(st.rows, n);
  EXPECT_EQ(st.bad_rows, static_cast<int64_t>(cases.size()));
  EXPECT_EQ(BinaryFile(dir.file("skip.bin")).size(), n);
  EXPECT_EQ(error_of([&] { TextReader(dir.file("none.txt"), {}); }),
            "criteo: " + dir.file("none.txt") + ": no such file");
}

TEST(CriteoText, TestFileWithoutLabelAndCrlfAndNoFinalNewline) {
  TempDir dir;
  std::string p = dir.file("test.txt");
  std::string line = good_line().substr(2);  // drop "1\t"
  {
    std::ofstream f(p, std::ios::binary);
    f << line << "\r\n" << line;  // no final newline
  }
  std::vector<RawRow> rows = read_all(p, {.has_label = false});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].label, 0);
  EXPECT_EQ(rows[1].dense[1], 6);
  EXPECT_TRUE(rows[1].dense_missing[3]);
  EXPECT_EQ(rows[0].sparse[25], 0x68fd1e65u);
  EXPECT_TRUE(same(rows[0], rows[1]));
  EXPECT_EQ(error_of([&] { read_all(p, {}); }),
            "criteo: " + p +
                ":1: expected 40 fields (label, 13 integer, 26 categorical) separated by '\\t', got 39");
}

TEST(CriteoText, GzipAndPlainFilesGiveTheGeneratorsRows) {
  TempDir dir;
  SyntheticCriteo gen(small_synthetic(test::next_seed()));
  for (const char* name : {"day_0", "day_0.gz"}) {
    std::string p = dir.file(name);
    gen.write_text(p, 300, 1000);
    std::vector<RawRow> rows = read_all(p, text_options_for(p));
    ASSERT_EQ(rows.size(), 300u) << name;
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(same(rows[i], gen.raw_row(1000 + i))) << name << " row " << i;
    for (int f = 0; f < kNumSparse; ++f)
      if (!rows[7].sparse_missing[f]) {
        EXPECT_EQ(gen.id_of_hex(f, rows[7].sparse[f]), gen.row(1007).ids[f]);
      }
  }
  // a gzip file cut short is an error, not a shorter file
  std::string gz = dir.file("day_0.gz");
  test::truncate_file(gz, std::filesystem::file_size(gz) / 2);
  std::string err = error_of([&] { read_all(gz, {}); });
  EXPECT_NE(err.find("criteo: " + gz + ":"), std::string::npos) << err;
  EXPECT_NE(err.find("gzip data"), std::string::npos) << err;
}

// ---- binary -------------------------------------------------------------------------------------------
TEST(CriteoBinary, TextToBinaryToLoaderGivesTheSameValues) {
  TempDir dir;
  SyntheticCriteo gen(small_synthetic(test::next_seed()));
  std::string d0 = dir.file("day_0.gz"), d1 = dir.file("day_1"), bin = dir.file("train.bin");
  gen.write_text(d0, 230, 0);
  gen.write_text(d1, 171, 230);
  Preprocessor pre = Preprocessor::hashing(scaled_kaggle_sizes(5000));
  ConvertStats st = convert_text_to_binary({d0, d1}, bin, pre);
  EXPECT_EQ(st.rows, 401);
  EXPECT_EQ(st.rows_per_file, (std::vector<int64_t>{230, 171}));
  auto file = std::make_shared<BinaryFile>(bin, Verify::always);
  EXPECT_EQ(file->size(), 401);
  EXPECT_EQ(file->header().day_rows, (std::vector<int64_t>{230, 171}));
  EXPECT_EQ(file->header().table_sizes, scaled_kaggle_sizes(5000));
  EXPECT_EQ(file->header().labels_offset % 64, 0u);
  EXPECT_EQ(file->header().sparse_offset % 64, 0u);
  CriteoLoader loader(file, {0, 401}, {.batch_size = 64});
  EXPECT_EQ(loader.num_batches(), 7);
  int64_t seen = 0;
  while (auto b = loader.next()) {
    int64_t n = b->labels.numel();
    EXPECT_EQ(b->dense.shape(), (Shape{n, kNumDense}));
    EXPECT_EQ(b->sparse.dtype(), DType::i64);
    for (int64_t k = 0; k < n; ++k) {
      EncodedRow want = pre.encode(gen.raw_row(seen + k));
      ASSERT_EQ(b->labels.data<float>()[k], float(want.label));
      for (int j = 0; j < kNumDense; ++j) ASSERT_EQ(b->dense.data<float>()[k * kNumDense + j], want.dense[j]);
      for (int c = 0; c < kNumSparse; ++c)
        ASSERT_EQ(b->sparse.data<int64_t>()[k * kNumSparse + c], want.sparse[c]);
    }
    seen += n;
  }
  EXPECT_EQ(seen, 401);
  EXPECT_EQ(loader.position(), (LoaderPosition{1, 0}));
  // the last day is split in halves: test the first ceil(171 / 2) rows, validation the rest
  Split s = reference_split(*file);
  EXPECT_EQ(s.train, (RowRange{0, 230}));
  EXPECT_EQ(s.test, (RowRange{230, 316}));
  EXPECT_EQ(s.val, (RowRange{316, 401}));
}

TEST(CriteoBinary, VocabularyModeKeepsFrequentValuesAndPoolsTheRest) {
  TempDir dir;
  SyntheticCriteo gen(small_synthetic(test::next_seed()));
  std::string txt = dir.file("train.txt"), bin = dir.file("v.bin");
  gen.write_text(txt, 600);
  for (int64_t min_freq : {1, 3}) {
    auto vocab = std::make_shared<Vocabulary>(Vocabulary::build({txt}, min_freq));
    // expected: per feature, values seen >= min_freq times, numbered 1.. in ascending hex order
    std::vector<std::map<uint64_t, int>> counts(kNumSparse);
    for (int i = 0; i < 600; ++i) {
      RawRow r = gen.raw_row(i);
      for (int f = 0; f < kNumSparse; ++f)
        if (!r.sparse_missing[f]) ++counts[f][r.sparse[f]];
    }
    std::vector<int64_t> sizes = vocab->table_sizes();
    for (int f = 0; f < kNumSparse; ++f) {
      int64_t kept = 0;
      for (auto [v, n] : counts[f]) kept += n >= min_freq;
      EXPECT_EQ(sizes[f], kept + 1) << "C" << f + 1;
    }
    convert_text_to_binary({txt}, bin, Preprocessor::with_vocabulary(vocab));
    BinaryFile file(bin);
    for (int i = 0; i < 600; i += 37) {
      RawRow r = gen.raw_row(i);
      EncodedRow e = file.row(i);
      for (int f = 0; f < kNumSparse; ++f) {
        int want = 0;
        if (!r.sparse_missing[f] && counts[f][r.sparse[f]] >= min_freq) {
          want = 1;
          for (auto [v, n] : counts[f])
            if (v < r.sparse[f] && n >= min_freq) ++want;
        }
        ASSERT_EQ(e.sparse[f], want) << "row " << i << " C" << f + 1 << " min_freq " << min_freq;
      }
    }
  }
}

TEST(CriteoBinary, TruncatedCorruptAndMismatchedFilesAreRejected) {
  TempDir dir;
  SyntheticCriteo gen(small_synthetic(test::next_seed()));
  std::string bin = dir.file("s.bin");
  gen.write_binary(bin, 300, 3);
  uint64_t size = std::filesystem::file_size(bin);
  BinaryFile good(bin, Verify::always);
  const BinaryHeader h = good.header();
  EXPECT_EQ(h.file_bytes, size);
  EXPECT_EQ(h.day_rows, (std::vector<int64_t>{100, 100, 100}));
  EXPECT_EQ(good.compute_checksum(), h.checksum);
  for (int i : {0, 150, 299}) {
    EncodedRow a = good.row(i), b = gen.encoded_row(i);
    EXPECT_EQ(a.label, b.label);
    EXPECT_EQ(a.dense, b.dense);
    EXPECT_EQ(a.sparse, b.sparse);
  }
  auto copy = [&](const std::string& name) {
    std::string p = dir.file(name);
    std::filesystem::copy_file(bin, p, std::filesystem::copy_options::overwrite_existing);
    return p;
  };
  auto poke = [](const std::string& p, uint64_t at, uint8_t v) {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(v));
  };
  std::string t = copy("trunc.bin");
  test::truncate_file(t, size - 10);
  EXPECT_EQ(error_of([&] { BinaryFile f(t); }),
            str_cat("criteo binary: ", t, ": truncated: expected ", size, " bytes, file has ", size - 10,
                    " (the data stops at byte offset ", size - 10, ", inside the sparse section)"));
  test::truncate_file(t, h.dense_offset + 5);
  EXPECT_NE(error_of([&] { BinaryFile f(t); }).find("inside the dense section"), std::string::npos);
  test::truncate_file(t, 40);
  EXPECT_EQ(error_of([&] { BinaryFile f(t); }),
            str_cat("criteo binary: ", t, ": truncated header: expected at least 88 bytes, file has 40"));
  std::string m = copy("magic.bin");
  poke(m, 0, 'X');
  EXPECT_EQ(error_of([&] { BinaryFile f(m); }),
            str_cat("criteo binary: ", m, ": bad magic 'XBCRITEO' at byte 0, expected 'NBCRITEO'"));
  std::string v = copy("version.bin");
  poke(v, 8, 7);
  EXPECT_EQ(error_of([&] { BinaryFile f(v); }),
            str_cat("criteo binary: ", v, ": version 7 at byte 8, this reader knows version 1"));
  std::string c = copy("checksum.bin");
  poke(c, h.dense_offset + 4 * 13 * 17 + 2, 0x5a);  // a byte inside row 17's dense values
  std::string err = error_of([&] { BinaryFile f(c, Verify::always); });
  EXPECT_EQ(err.rfind(str_cat("criteo binary: ", c, ": checksum mismatch: header (byte 48) says "), 0), 0u)
      << err;
  EXPECT_NE(err.find(str_cat("(FNV-1a 64 of bytes ", h.header_bytes, " .. ", size, ")")), std::string::npos);
  EXPECT_EQ(error_of([&] { BinaryFile f(c, Verify::never); }), "(no error)");  // the check is optional
  std::string id = copy("id.bin");
  poke(id, h.sparse_offset + 3, 0x7f);  // row 0's C1 id becomes huge; checksum fixed up below
  {
    BinaryFile f(id, Verify::never);
    uint64_t sum = f.compute_checksum();
    std::fstream s(id, std::ios::in | std::ios::out | std::ios::binary);
    s.seekp(48);
    s.write(reinterpret_cast<const char*>(&sum), 8);
  }
  EXPECT_NE(error_of([&] { BinaryFile f(id, Verify::always); }).find(": row 0: C1 id "), std::string::npos);
  std::string rows = copy("rows.bin");
  poke(rows, 24, 0xff);  // row count no longer matches the offsets
  EXPECT_NE(error_of([&] { BinaryFile f(rows); }).find(") disagree with "), std::string::npos);
}

TEST(CriteoSplit, KaggleDaysAndHalvesOfTheLastDay) {
  auto d = kaggle_day_rows(45840617);
  EXPECT_EQ(d.size(), 7u);
  EXPECT_EQ(d[0], 6548660);  // 45840617 = 7 * 6548659 + 4: the first four days one row longer
  EXPECT_EQ(d[3], 6548660);
  EXPECT_EQ(d[4], 6548659);
  Split s = split_by_days(d);
  EXPECT_EQ(s.train, (RowRange{0, 4 * 6548660 + 2 * 6548659}));
  EXPECT_EQ(s.test.size(), 3274330);
  EXPECT_EQ(s.val.size(), 3274329);
  EXPECT_EQ(s.val.end, 45840617);
  EXPECT_EQ(error_of([] { split_by_days({5}); }), "criteo split: needs at least 2 days, got 1");
}

TEST(CriteoLoader, ShufflesEachEpochAndResumesExactly) {
  TempDir dir;
  SyntheticCriteo gen(small_synthetic(test::next_seed()));
  std::string bin = dir.file("s.bin");
  gen.write_binary(bin, 250, 1);
  auto file = std::make_shared<BinaryFile>(bin);
  CriteoLoaderOptions o{.batch_size = 32, .shuffle = true, .seed = test::next_seed()};
  RowRange range{20, 230};
  CriteoLoader a(file, range, o);
  std::vector<CriteoBatch> full;
  LoaderPosition saved;
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<int> seen(250, 0);
    while (auto b = a.next()) {
      if (epoch == 1 && b->index == 3) saved = a.position();
      for (int64_t k = 0; k < b->labels.numel(); ++k) {
        // find the row by its content: dense values are distinct enough together with the ids
        const int64_t* ids = b->sparse.data<int64_t>() + k * kNumSparse;
        int hit = -1;
        for (int r = range.begin; r < range.end && hit < 0; ++r) {
          bool eq = true;
          for (int c = 0; c < kNumSparse && eq; ++c) eq = file->sparse()[r * kNumSparse + c] == ids[c];
          for (int j = 0; j < kNumDense && eq; ++j)
            eq = file->dense()[r * kNumDense + j] == b->dense.data<float>()[k * kNumDense + j];
          if (eq && !seen[r]) hit = r;
        }
        ASSERT_GE(hit, 0);
        seen[hit]++;
      }
      if (epoch == 1) full.push_back(*b);
    }
    for (int r = 0; r < 250; ++r)
      EXPECT_EQ(seen[r], r >= range.begin && r < range.end ? 1 : 0) << "row " << r;
  }
  EXPECT_EQ(saved, (LoaderPosition{1, 4}));
  CriteoLoader b(file, range, o);
  b.set_position(saved);
  for (size_t i = 4; i < full.size(); ++i) {
    auto got = b.next();
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->index, full[i].index);
    EXPECT_EQ(test::bytes_of(got->sparse), test::bytes_of(full[i].sparse));
    EXPECT_EQ(test::bytes_of(got->dense), test::bytes_of(full[i].dense));
    EXPECT_EQ(test::bytes_of(got->labels), test::bytes_of(full[i].labels));
  }
  EXPECT_FALSE(b.next().has_value());
  // epochs differ, drop_last drops the short batch
  EXPECT_NE(test::bytes_of(a.batch(0, 0).sparse), test::bytes_of(a.batch(1, 0).sparse));
  CriteoLoader c(file, range, {.batch_size = 32, .drop_last = true});
  EXPECT_EQ(c.num_batches(), 210 / 32);
  EXPECT_EQ(c.batch(0, 2).first_row, 20 + 64);
  EXPECT_EQ(error_of([&] {
              c.set_position({0, 7});
            }),
            "criteo loader: position (epoch 0, batch 7) out of range: 6 batches per epoch");
}

// ---- synthetic ----------------------------------------------------------------------------------------
TEST(CriteoSynthetic, RowsAreDeterministicAndShapedLikeCriteo) {
  const uint64_t seed = test::next_seed();
  SyntheticCriteo g1(small_synthetic(seed)), g2(small_synthetic(seed)), g3(small_synthetic(seed + 1));
  EXPECT_EQ(g1.bias(), g2.bias());
  int differ = 0;
  for (int i = 0; i < 50; ++i) {
    EXPECT_TRUE(same(g1.raw_row(i * 1000003), g2.raw_row(i * 1000003)));
    differ += !same(g1.raw_row(i), g3.raw_row(i));
  }
  EXPECT_GT(differ, 40);
  const int n = 30000;
  std::array<int, kNumDense> dense_missing{};
  std::array<int, kNumSparse> sparse_missing{};
  std::map<int, int> c14;  // C14 has 27 values; C11 (5683) for the Zipf check
  std::vector<int> c11(1000, 0);
  int positives = 0, negative_i2 = 0;
  for (int i = 0; i < n; ++i) {
    SyntheticRow r = g1.row(i);
    positives += r.label;
    for (int j = 0; j < kNumDense; ++j) {
      dense_missing[j] += r.dense_missing[j];
      if (!r.dense_missing[j]) {
        EXPECT_GE(r.dense[j], j == 1 ? -1 : 0);
      }
    }
    negative_i2 += !r.dense_missing[1] && r.dense[1] == -1;
    for (int f = 0; f < kNumSparse; ++f) {
      sparse_missing[f] += r.ids[f] == 0;
      ASSERT_GE(r.ids[f], 0);
      ASSERT_LT(r.ids[f], 1000);
    }
    c14[r.ids[13]]++;
    c11[r.ids[10]]++;
  }
  EXPECT_NEAR(positives / double(n), 0.25, 0.02);
  for (int j = 0; j < kNumDense; ++j)
    EXPECT_NEAR(dense_missing[j] / double(n), kDenseMissingRate[j], 0.015) << "I" << j + 1;
  for (int f = 0; f < kNumSparse; ++f)
    EXPECT_NEAR(sparse_missing[f] / double(n), kSparseMissingRate[f], 0.015) << "C" << f + 1;
  EXPECT_GT(negative_i2, 0);
  EXPECT_EQ(c14.size(), 26u);  // 27 ids: 1..26 drawn, 0 (missing) never for C14
  // Zipf: P(id = k) = (k^(1-s) - (k+1)^(1-s)) / (1 - (card)^(1-s)) for card = 1000, s = 1.1
  const double s = 1.1, norm = 1 - std::pow(1000.0, 1 - s);
  for (int k : {1, 2, 3, 5, 10, 30}) {
    double p = (std::pow(k, 1 - s) - std::pow(k + 1, 1 - s)) / norm;
    double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(c11[k], n * p, 5 * sd + 1) << "id " << k;
  }
  // a log-log slope near -s between ids 1..2 and 16..31
  double head = c11[1] + c11[2], tail = 0;
  for (int k = 16; k < 32; ++k) tail += c11[k];
  double expected_ratio = (1 - std::pow(3.0, 1 - s)) / (std::pow(16.0, 1 - s) - std::pow(32.0, 1 - s));
  EXPECT_NEAR(head / tail, expected_ratio, 0.15 * expected_ratio);
}

TEST(CriteoSynthetic, TeacherAucIsHighAndReproducible) {
  const uint64_t seed = test::next_seed();
  SyntheticCriteo g(small_synthetic(seed));
  TeacherReport t = g.teacher_report(20000);
  EXPECT_GT(t.auc, 0.75);  // about 0.79 with the default teacher: Criteo-like (DLRM reaches ~0.80 on Kaggle)
  EXPECT_LT(t.auc, 0.84);
  EXPECT_NEAR(t.positive_rate, 0.25, 0.02);
  EXPECT_NEAR(t.mean_probability, 0.25, 0.015);
  EXPECT_LT(t.log_loss, 0.5623);  // below the entropy of a constant 25% guess
  TeacherReport again = SyntheticCriteo(small_synthetic(seed)).teacher_report(20000);
  EXPECT_EQ(again.auc, t.auc);
  EXPECT_EQ(again.log_loss, t.log_loss);
  // the probability is the teacher's function of the encoded row: the planted truth a model can reach
  for (int i = 0; i < 20; ++i) {
    EncodedRow e = g.encoded_row(i);
    double z = g.logit(e.dense, e.sparse);
    EXPECT_NEAR(1 / (1 + std::exp(-z)), g.row(i).probability, 1e-12);
  }
  for (int f = 0; f < kNumSparse; ++f)
    for (int32_t id : {1, 2, 999})
      if (id < g.options().cardinalities[f]) {
        EXPECT_EQ(g.id_of_hex(f, g.hex_of(f, id)), id);
      }
  // Kaggle's full table sizes work without tables in memory
  SyntheticOptions full;
  full.cardinalities.assign(kKaggleTableSizes.begin(), kKaggleTableSizes.end());
  full.seed = seed;
  SyntheticCriteo big(full);
  int32_t max_c3 = 0;
  for (int i = 0; i < 2000; ++i) max_c3 = std::max(max_c3, big.row(i).ids[2]);
  EXPECT_GT(max_c3, 1000);
  EXPECT_LT(max_c3, 10131227);
}

}  // namespace
}  // namespace nabla::data::criteo
