// nabla::Error and the checks that throw it.
//
// Host-side checks throw nabla::Error with a message that says what was expected and what came:
//   NABLA_CHECK(a.dim() == 2, "matmul: expected a 2-D input, got ", a.shape());
// Anything with operator<< can be part of the message (shapes print as [2,3,4]).
// Kernels never throw; they run after the op layer has checked everything.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace nabla {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(str_cat(args...));
}

}  // namespace nabla

#define NABLA_CHECK(cond, ...)               \
  do {                                       \
    if (!(cond)) ::nabla::fail(__VA_ARGS__); \
  } while (0)
