// libFuzzer target: the Darknet .cfg parser (models/darknet/cfg.h): parse_cfg on the input, then every
// option read through each getter (int, float, string, lists), as the network builder reads them. Errors
// must be nabla::Error; the text format_cfg() writes must parse back, and printing is idempotent after one
// round (the first round drops what parsing normalises: comments, blank lines, spaces around lines).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/error.h"
#include "models/darknet/cfg.h"

namespace darknet = nabla::models::darknet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  darknet::Cfg cfg;
  try {
    cfg = darknet::parse_cfg(text, "fuzz.cfg");
  } catch (const nabla::Error&) {
    return 0;
  }
  for (const darknet::CfgSection& s : cfg.sections) {
    for (const darknet::CfgOption& o : s.options) {
      try {
        (void)s.get_int(o.key);
      } catch (const nabla::Error&) {
      }
      try {
        (void)s.get_float(o.key);
      } catch (const nabla::Error&) {
      }
      try {
        (void)s.get_ints(o.key);
      } catch (const nabla::Error&) {
      }
      try {
        (void)s.get_floats(o.key);
      } catch (const nabla::Error&) {
      }
      (void)s.get_string(o.key);
    }
    try {
      (void)s.get_int("no such key");
      std::abort();  // a missing key without a fallback must throw
    } catch (const nabla::Error&) {
    }
    (void)s.where();
    (void)s.unused();
  }
  try {
    const std::string once = darknet::format_cfg(darknet::parse_cfg(darknet::format_cfg(cfg), "once.cfg"));
    const std::string twice = darknet::format_cfg(darknet::parse_cfg(once, "twice.cfg"));
    if (once != twice) {
      std::fprintf(stderr, "fuzz_darknet_cfg: format_cfg is not stable:\n%s\n---\n%s\n", once.c_str(),
                   twice.c_str());
      std::abort();
    }
  } catch (const nabla::Error& e) {
    std::fprintf(stderr, "fuzz_darknet_cfg: format_cfg's text does not parse: %s\n", e.what());
    std::abort();
  }
  return 0;
}
