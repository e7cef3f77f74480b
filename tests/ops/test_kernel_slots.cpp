// The kernel-slot table (ops/kernel_table.h) held to the code: every slot declared in the sources has a row
// and every row a slot; every registration (ops/dispatch.h records each NABLA_REGISTER_KERNEL) names a slot
// of the table, once per device, from the row's family file (ops/cpu/<family>.cpp, cuda/<family>.cu; a
// family's CUDA kernels may be split into cuda/<family>_<part>.cu files);
// each backend registers what the row's availability asks (the CUDA backend's registrations run when the
// library loads, so they are checked without a GPU, in CUDA builds); every kernel file belongs to a family
// of the table on both sides; and docs/internals.md prints the table as it is.
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ops/dispatch.h"
#include "ops/kernel_table.h"
#include "testing.h"

namespace nabla {
namespace {

namespace fs = std::filesystem;
using ops::KernelSlotInfo;
using ops::SlotAvailability;

const fs::path kSource = NABLA_SOURCE_DIR;

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  EXPECT_TRUE(in.good()) << "cannot read " << p;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const KernelSlotInfo* row_of(const std::string& name) {
  for (const auto& row : ops::kernel_slot_table())
    if (name == row.name) return &row;
  return nullptr;
}

// The registration's file relative to the source tree ("ops/cpu/softmax.cpp"): __FILE__ may be absolute or
// relative to the build directory (ccache's base_dir rewrites it), so the path is cut at its kernel folder.
std::string source_relative(const std::string& file) {
  for (const std::string dir : {"ops/cpu/", "cuda/"}) {
    const size_t at = file.rfind("/" + dir);
    if (at != std::string::npos) return file.substr(at + 1);
    if (file.rfind(dir, 0) == 0) return file;
  }
  return file;
}

// The CUDA kernel file of a family: cuda/<family>.cu, or cuda/<family>.cpp for host-only code (cuBLAS).
std::string cuda_file(const std::string& family) {
  const std::string cu = "cuda/" + family + ".cu", cpp = "cuda/" + family + ".cpp";
  return fs::exists(kSource / cpp) && !fs::exists(kSource / cu) ? cpp : cu;
}

bool registered(const std::string& slot, DeviceType d) {
  for (const auto& r : ops::kernel_registrations())
    if (slot == r.slot && r.device == d) return true;
  return false;
}

TEST(KernelSlots, NamesAreUnique) {
  std::set<std::string> names;
  for (const auto& row : ops::kernel_slot_table()) EXPECT_TRUE(names.insert(row.name).second) << row.name;
}

// Scans the library's sources for `inline Kernel<Fn> name_kernel{"name"};` outside comments.
TEST(KernelSlots, EveryDeclaredSlotHasARowAndEveryRowASlot) {
  const std::regex decl(R"re(^\s*inline\s+Kernel<\s*\w+\s*>\s+(\w+)\s*\{\s*"(\w+)"\s*\})re");
  std::map<std::string, std::string> declared;  // slot name -> declaring file
  for (const char* dir :
       {"engine", "autograd", "ops", "cuda", "models", "data", "algorithms", "dist", "apps"}) {
    if (!fs::exists(kSource / dir)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(kSource / dir)) {
      const std::string ext = entry.path().extension().string();
      if (!entry.is_regular_file() || (ext != ".h" && ext != ".cuh" && ext != ".cpp" && ext != ".cu"))
        continue;
      std::istringstream lines(read_file(entry.path()));
      std::string line;
      std::smatch m;
      while (std::getline(lines, line)) {
        if (!std::regex_search(line, m, decl)) continue;
        const std::string file = fs::relative(entry.path(), kSource).generic_string();
        EXPECT_EQ(m[1].str(), m[2].str() + "_kernel")
            << file << ": slot variable " << m[1] << " should be named after its slot '" << m[2] << "'";
        EXPECT_TRUE(declared.emplace(m[2].str(), file).second)
            << "slot '" << m[2] << "' declared twice: " << declared[m[2].str()] << " and " << file;
      }
    }
  }
  EXPECT_GT(declared.size(), 40u) << "the scan found too few slots; did the declaration syntax change?";
  for (const auto& [name, file] : declared) {
    const KernelSlotInfo* row = row_of(name);
    if (row == nullptr) {
      ADD_FAILURE() << "slot '" << name << "' (" << file << ") has no row in ops/kernel_table.h";
      continue;
    }
    EXPECT_EQ(file, std::string("ops/") + row->header + ".h")
        << "slot '" << name << "': the table's header differs from where it is declared";
  }
  for (const auto& row : ops::kernel_slot_table())
    EXPECT_TRUE(declared.count(row.name)) << "table row '" << row.name << "' names no declared slot";
}

TEST(KernelSlots, EveryRegistrationComesFromItsRowsFamilyFile) {
  ASSERT_FALSE(ops::kernel_registrations().empty());
  std::map<std::string, const void*> address;  // one slot object per name
  std::set<std::pair<std::string, int>> seen;  // one registration per (slot, device)
  for (const auto& r : ops::kernel_registrations()) {
    const KernelSlotInfo* row = row_of(r.slot);
    if (row == nullptr) {
      ADD_FAILURE() << "a kernel is registered into slot '" << r.slot << "' (" << r.file
                    << "), which has no row in ops/kernel_table.h";
      continue;
    }
    EXPECT_EQ(address.emplace(r.slot, r.address).first->second, r.address)
        << "two slot objects are named '" << r.slot << "'";
    EXPECT_TRUE(seen.emplace(r.slot, static_cast<int>(r.device)).second)
        << "slot '" << r.slot << "' registered twice on " << device_type_name(r.device) << " (the second, in "
        << r.file << ", silently replaces the first)";
    const std::string want =
        r.device == DeviceType::cpu ? std::string("ops/cpu/") + row->family + ".cpp" : cuda_file(row->family);
    EXPECT_EQ(source_relative(r.file), want)
        << "slot '" << r.slot << "' (" << device_type_name(r.device) << "): registered from " << r.file
        << ", but its row's family is '" << row->family << "'";
  }
}

TEST(KernelSlots, CpuBackendRegistersWhatTheTableAsks) {
  for (const auto& row : ops::kernel_slot_table()) {
    const bool cpu = registered(row.name, DeviceType::cpu);
    switch (row.availability) {
      case SlotAvailability::AllBackends:
        EXPECT_TRUE(cpu) << "slot '" << row.name
                         << "' is AllBackends but has no CPU kernel (expected in ops/cpu/" << row.family
                         << ".cpp)";
        break;
      case SlotAvailability::DeviceOnly:
        EXPECT_FALSE(cpu) << "slot '" << row.name
                          << "' is DeviceOnly but has a CPU kernel: mark it AllBackends";
        break;
      case SlotAvailability::FastPath:
        break;  // optional anywhere
    }
  }
}

TEST(KernelSlots, CudaBackendRegistersWhatTheTableAsks) {
#ifndef NABLA_HAS_CUDA
  GTEST_SKIP() << "CPU-only build: no CUDA backend to check";
#else
  // Registration happens when the library loads, GPU or not.
  for (const auto& row : ops::kernel_slot_table()) {
    if (row.availability == SlotAvailability::FastPath) continue;
    EXPECT_TRUE(registered(row.name, DeviceType::cuda))
        << "slot '" << row.name << "' has no CUDA kernel (expected in " << cuda_file(row.family) << ")";
  }
#endif
}

// File names pair up: each family of the table has its CPU file when a row needs a CPU kernel and its CUDA
// file, and each kernel file of either folder is a family of the table.
TEST(KernelSlots, KernelFilesPairBetweenCpuAndCuda) {
  std::set<std::string> families, cpu_families;
  for (const auto& row : ops::kernel_slot_table()) {
    families.insert(row.family);
    if (row.availability == SlotAvailability::AllBackends) cpu_families.insert(row.family);
  }
  for (const auto& f : families) {
    EXPECT_TRUE(fs::exists(kSource / cuda_file(f))) << "family '" << f << "': no " << cuda_file(f);
    if (cpu_families.count(f)) {
      EXPECT_TRUE(fs::exists(kSource / "ops/cpu" / (f + ".cpp")))
          << "family '" << f << "': no ops/cpu/" << f << ".cpp";
    }
  }
  for (const auto& entry : fs::directory_iterator(kSource / "ops/cpu")) {
    if (entry.path().extension() != ".cpp") continue;
    EXPECT_TRUE(families.count(entry.path().stem().string()))
        << "ops/cpu/" << entry.path().filename().string() << " is no family of ops/kernel_table.h";
  }
  // A family's CUDA kernels may be split by concept into cuda/<family>_<part>.cu files (e.g. attention_mma.cu
  // beside attention.cu); registrations still come from cuda/<family>.cu (checked above).
  auto cuda_family_of = [&](const std::string& stem) {
    if (families.count(stem)) return true;
    for (size_t cut = stem.find('_'); cut != std::string::npos; cut = stem.find('_', cut + 1))
      if (families.count(stem.substr(0, cut))) return true;
    return false;
  };
  for (const auto& entry : fs::directory_iterator(kSource / "cuda")) {
    if (entry.path().extension() != ".cu") continue;
    EXPECT_TRUE(cuda_family_of(entry.path().stem().string()))
        << "cuda/" << entry.path().filename().string()
        << " is no family of ops/kernel_table.h (nor a <family>_<part>.cu of one)";
  }
}

// The markdown table of docs/internals.md, between its kernel-slot-table markers.
std::string markdown_table() {
  std::ostringstream out;
  out << "| slot | declared in | called by | CPU kernel | CUDA kernel | backends |\n";
  out << "| --- | --- | --- | --- | --- | --- |\n";
  for (const auto& row : ops::kernel_slot_table()) {
    const bool cpu =
        row.availability == SlotAvailability::AllBackends ||
        (row.availability == SlotAvailability::FastPath && registered(row.name, DeviceType::cpu));
    out << "| `" << row.name << "` | `ops/" << row.header << ".h` | " << row.ops << " | "
        << (cpu ? "`ops/cpu/" + std::string(row.family) + ".cpp`" : std::string("—")) << " | `"
        << cuda_file(row.family) << "` | " << ops::slot_availability_name(row.availability) << " |\n";
  }
  return out.str();
}

TEST(KernelSlots, InternalsGuidePrintsTheTable) {
  const std::string doc = read_file(kSource / "docs/internals.md");
  const std::string begin = "<!-- kernel-slot-table: begin", end = "<!-- kernel-slot-table: end -->";
  const size_t b = doc.find(begin), e = doc.find(end);
  ASSERT_TRUE(b != std::string::npos && e != std::string::npos && b < e)
      << "docs/internals.md has no '" << begin << "' ... '" << end << "' section";
  const size_t start = doc.find('\n', b) + 1;
  EXPECT_EQ(doc.substr(start, e - start), markdown_table())
      << "docs/internals.md's kernel-slot table is out of date; paste the expected text above between its "
         "markers";
}

}  // namespace
}  // namespace nabla
