// The test binaries' main. A crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) prints the test that was
// running and a backtrace of the crashing thread to stderr before the process dies, so that a crash seen
// once on the GPU machine (no gdb there, and ctest shows only "SEGFAULT") can still be located.
#include <execinfo.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

namespace {

void write_str(const char* s) { (void)!write(STDERR_FILENO, s, std::strlen(s)); }

extern "C" void on_crash(int sig) {
  write_str("\n*** signal ");
  write_str(strsignal(sig));
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  if (t) {
    write_str(" in test ");
    write_str(t->test_suite_name());
    write_str(".");
    write_str(t->name());
  }
  write_str("; backtrace:\n");
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

int main(int argc, char** argv) {
#if !defined(__SANITIZE_ADDRESS__)  // AddressSanitizer reports crashes itself
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, on_crash);
#endif
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
