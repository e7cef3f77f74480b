// libFuzzer target: the Criteo readers (data/criteo.h). The first byte picks the reader and options:
//   bit 0 clear: the rest is a text file (tab rows, or DeepCTR's CSV sample with a "label,..." header when
//     bit 1 is set; gzip when it starts with 1f 8b) read with TextReader (bit 2: has_label, bit 3:
//     skip_bad_rows); every row read is written back with TextWriter and must read back to the same values;
//   bit 0 set: the rest is a binary file, opened with BinaryFile (checksum and ids verified, or with bit 1
//   set
//     not, so that mutations get past the checksum); every row of a file that opens is read.
// Bad input must throw nabla::Error.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "data/criteo.h"
#include "engine/error.h"
#include "fuzz/fuzz_common.h"

namespace {

namespace criteo = nabla::data::criteo;

bool same(const criteo::RawRow& a, const criteo::RawRow& b) {
  return a.label == b.label && a.dense == b.dense && a.dense_missing == b.dense_missing &&
         a.sparse == b.sparse && a.sparse_missing == b.sparse_missing;
}

const std::string& second_path() {
  static const std::string path = "/tmp/nabla_fuzz_criteo_" + std::to_string(::getpid()) + ".txt";
  return path;
}

void text(const std::string& path, uint8_t mode) {
  criteo::TextOptions o;
  if (mode & 2) {
    o.delimiter = ',';
    o.header = true;
  }
  o.has_label = (mode & 4) == 0;
  o.skip_bad_rows = (mode & 8) != 0;
  std::vector<criteo::RawRow> rows;
  try {
    criteo::TextReader reader(path, o);
    criteo::RawRow row;
    while (reader.next(row)) rows.push_back(row);
    if (reader.rows() != static_cast<int64_t>(rows.size())) std::abort();
  } catch (const nabla::Error&) {
    return;  // rows read before the error still go through the round trip below
  }
  // Written back in the Kaggle format and read again: the same rows.
  {
    criteo::TextWriter w(second_path(), o.has_label);
    for (const criteo::RawRow& r : rows) w.write(r);
    w.close();
  }
  criteo::TextOptions tab;
  tab.has_label = o.has_label;
  criteo::TextReader back(second_path(), tab);
  criteo::RawRow row;
  for (const criteo::RawRow& r : rows) {
    if (!back.next(row) || !same(row, r)) {
      std::fprintf(stderr, "fuzz_criteo: row %lld does not read back the same\n",
                   static_cast<long long>(back.rows()));
      std::abort();
    }
  }
  if (back.next(row)) std::abort();
}

void binary(const std::string& path, uint8_t mode) {
  try {
    criteo::BinaryFile f(path, (mode & 2) ? criteo::Verify::never : criteo::Verify::always);
    const criteo::BinaryHeader& h = f.header();
    int64_t day_total = 0;
    for (int64_t d : h.day_rows) day_total += d;
    if (day_total != h.num_rows) std::abort();  // the reader must have refused this
    for (int64_t i = 0; i < f.size(); ++i) (void)f.row(i);
    (void)criteo::reference_split(f);
  } catch (const nabla::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string& path = nabla::fuzz::write_input(data + 1, size - 1);
  if (data[0] & 1)
    binary(path, data[0]);
  else
    text(path, data[0]);
  return 0;
}
