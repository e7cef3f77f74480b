// libnabla_kernel_trace.so: every kernel's device time in a Nabla process, from CUPTI's activity records, as
// torch.profiler gives PyTorch's. The GPU machine has no nsys, and NABLA_PROFILE=1 times ops with a device
// synchronisation around each (engine/profile.h), which changes the step it measures; this changes nothing
// but what CUPTI adds (records are kept in device buffers and read back asynchronously).
//
//   NABLA_KERNEL_TRACE=out.tsv LD_PRELOAD=build-gpu/libnabla_kernel_trace.so build-gpu/bench_resnet ...
//
// Loaded into the process (LD_PRELOAD), it subscribes to kernel, memset and memcpy records at load time. A
// benchmark calls nabla_kernel_trace_begin(steps) (found with dlsym, benchmarks/kernel_trace_hook.h) just
// before its timed steps, after a device synchronisation: what was recorded before (warm-up, the
// convolutions' algorithm search) is dropped and the table divides by `steps`; nabla_kernel_trace_end(),
// after the timed steps and a synchronisation, writes the table and stops recording (without it, the table
// is written at exit; a process that never marked its steps writes nothing). One line per kernel name, to the
// file NABLA_KERNEL_TRACE (stderr when unset):
//   # steps S
//   <total ns over the steps>\t<calls>\t<demangled name>
// benchmarks/kernel_compare.py puts that beside the same table from torch.profiler (torch_profile.py).
#include <cupti.h>
#include <cxxabi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

namespace {

struct Row {
  uint64_t ns = 0;
  uint64_t calls = 0;
};

std::mutex mu;
std::map<std::string, Row>* rows = nullptr;  // leaked on purpose: records can arrive during exit
int steps = 0;
bool done = false;  // the table was written: later records are ignored

std::string demangle(const char* name) {
  if (!name) return "?";
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string s = status == 0 && d ? d : name;
  std::free(d);
  return s;
}

void add(const std::string& name, uint64_t start, uint64_t end) {
  if (end <= start) return;
  std::lock_guard<std::mutex> lock(mu);
  if (done) return;
  Row& r = (*rows)[name];
  r.ns += end - start;
  ++r.calls;
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *size = size_t(8) << 20;
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, *size));
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* rec = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    switch (rec->kind) {
      case CUPTI_ACTIVITY_KIND_KERNEL:
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
        add(demangle(k->name), k->start, k->end);
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMSET: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(rec);
        add("Memset (Device)", m->start, m->end);
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(rec);
        add("Memcpy (kind " + std::to_string(m->copyKind) + ")", m->start, m->end);
        break;
      }
      default:
        break;
    }
  }
  std::free(buffer);
}

void write_table() {
  cuptiActivityFlushAll(1);
  {
    std::lock_guard<std::mutex> lock(mu);
    // Not a benchmark that marked its steps (such as `timeout`, which the preload reaches too when it
    // starts the benchmark): nothing to write, and no file overwritten.
    if (done || steps <= 0) return;
  }
  const char* path = std::getenv("NABLA_KERNEL_TRACE");
  FILE* f = path && *path ? std::fopen(path, "w") : stderr;
  if (!f) {
    std::fprintf(stderr, "kernel_trace: cannot write %s\n", path);
    return;
  }
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(f, "# steps %d\n", steps);
  uint64_t ns = 0, calls = 0;
  for (const auto& [name, r] : *rows) {
    std::fprintf(f, "%llu\t%llu\t%s\n", static_cast<unsigned long long>(r.ns),
                 static_cast<unsigned long long>(r.calls), name.c_str());
    ns += r.ns;
    calls += r.calls;
  }
  if (f != stderr) std::fclose(f);
  std::fprintf(stderr, "kernel_trace: %llu kernels, %.3f ms of device time a step over %d steps, in %s\n",
               static_cast<unsigned long long>(calls), static_cast<double>(ns) / 1e6 / steps, steps,
               path && *path ? path : "stderr");
  done = true;
}

__attribute__((constructor)) void start() {
  rows = new std::map<std::string, Row>();
  if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
      cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
    std::fprintf(stderr, "kernel_trace: CUPTI could not be enabled; no table\n");
    return;
  }
  cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET);
  cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY);
  std::atexit(write_table);
}

}  // namespace

// Drops what was recorded so far (after flushing it) and sets the number of steps the table divides by.
extern "C" __attribute__((visibility("default"))) void nabla_kernel_trace_begin(int timed_steps) {
  cuptiActivityFlushAll(1);
  std::lock_guard<std::mutex> lock(mu);
  rows->clear();
  steps = timed_steps;
}

// Writes the table now (once) and stops recording.
extern "C" __attribute__((visibility("default"))) void nabla_kernel_trace_end() { write_table(); }
