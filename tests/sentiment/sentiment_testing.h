// Helpers of the sentiment-study tests: the shipped data folder and temporary files.
#pragma once
#include <filesystem>
#include <fstream>
#include <string>

#include "testing.h"

namespace nabla::test {

// ../shared/data/sentiment next to the checkout (CI has it there).
inline std::string sentiment_root() { return NABLA_SOURCE_DIR "/../shared/data/sentiment"; }
inline std::string sentiment_file(const std::string& rel) { return sentiment_root() + "/" + rel; }

// A file under the temporary directory with `text` in it; a fresh name per call.
inline std::string write_temp(const std::string& name, const std::string& text) {
  static int counter = 0;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("nabla_sentiment_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The message of the nabla::Error that `f` throws ("" when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace nabla::test
