// Darknet .cfg parsing and typed option getters (see cfg.h).
#include "models/darknet/cfg.h"

#include <algorithm>
#include <cstdint>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "engine/error.h"

namespace nabla::models::darknet {
namespace {

std::string strip_whitespace(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) out += c;
  return out;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty() || parts.empty()) parts.push_back(cur);  // "1,2," has two entries, as Darknet's atoi loop
  return parts;
}

bool parse_int(const std::string& s, int& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v < INT32_MIN || v > INT32_MAX) return false;
  out = static_cast<int>(v);
  return true;
}

bool parse_float(const std::string& s, float& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  float v = std::strtof(s.c_str(), &end);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

}  // namespace

const CfgOption* CfgSection::find(const std::string& key) const {
  // Darknet's option_find takes the first match; a repeated key is kept but the first wins.
  for (const CfgOption& o : options)
    if (o.key == key) {
      o.used = true;
      return &o;
    }
  return nullptr;
}

std::string CfgSection::where(const std::string& key) const {
  for (const CfgOption& o : options)
    if (o.key == key) return str_cat(file, ":", o.line, ": [", type, "] ", key, ": ");
  return str_cat(file, ":", line, ": [", type, "]", key.empty() ? "" : " " + key, ": ");
}

int CfgSection::get_int(const std::string& key, std::optional<int> fallback) const {
  const CfgOption* o = find(key);
  if (!o) {
    NABLA_CHECK(fallback.has_value(), where(key), "missing required option '", key, "'");
    return *fallback;
  }
  int v = 0;
  NABLA_CHECK(parse_int(o->value, v), where(key), "expected an integer, got '", o->value, "'");
  return v;
}

float CfgSection::get_float(const std::string& key, std::optional<float> fallback) const {
  const CfgOption* o = find(key);
  if (!o) {
    NABLA_CHECK(fallback.has_value(), where(key), "missing required option '", key, "'");
    return *fallback;
  }
  float v = 0;
  NABLA_CHECK(parse_float(o->value, v), where(key), "expected a number, got '", o->value, "'");
  return v;
}

std::string CfgSection::get_string(const std::string& key, std::optional<std::string> fallback) const {
  const CfgOption* o = find(key);
  if (!o) {
    NABLA_CHECK(fallback.has_value(), where(key), "missing required option '", key, "'");
    return *fallback;
  }
  return o->value;
}

std::vector<int> CfgSection::get_ints(const std::string& key, std::vector<int> fallback) const {
  const CfgOption* o = find(key);
  if (!o) return fallback;
  std::vector<int> out;
  for (const std::string& p : split_commas(o->value)) {
    int v = 0;
    NABLA_CHECK(parse_int(p, v), where(key), "expected a comma-separated list of integers, got '", o->value,
                "' (bad entry '", p, "')");
    out.push_back(v);
  }
  return out;
}

std::vector<float> CfgSection::get_floats(const std::string& key, std::vector<float> fallback) const {
  const CfgOption* o = find(key);
  if (!o) return fallback;
  std::vector<float> out;
  for (const std::string& p : split_commas(o->value)) {
    float v = 0;
    NABLA_CHECK(parse_float(p, v), where(key), "expected a comma-separated list of numbers, got '", o->value,
                "' (bad entry '", p, "')");
    out.push_back(v);
  }
  return out;
}

std::vector<std::string> CfgSection::unused() const {
  std::vector<std::string> out;
  for (const CfgOption& o : options)
    if (!o.used) out.push_back(str_cat(file, ":", o.line, ": [", type, "] ", o.key));
  return out;
}

Cfg parse_cfg(const std::string& text, const std::string& name) {
  Cfg cfg;
  cfg.path = name;
  std::istringstream in(text);
  std::string raw;
  int line_no = 0;
  while (std::getline(in, raw)) {
    ++line_no;
    std::string line = strip_whitespace(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      NABLA_CHECK(line.back() == ']', name, ":", line_no, ": expected a section header '[type]', got '", raw,
                  "'");
      NABLA_CHECK(line.size() > 2, name, ":", line_no, ": empty section name '", raw, "'");
      CfgSection s;
      s.type = line.substr(1, line.size() - 2);
      s.line = line_no;
      s.file = name;
      cfg.sections.push_back(std::move(s));
      continue;
    }
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line = line.substr(0, hash);
    const size_t eq = line.find('=');
    NABLA_CHECK(eq != std::string::npos && eq > 0, name, ":", line_no, ": expected 'key=value', got '", raw,
                "'");
    NABLA_CHECK(!cfg.sections.empty(), name, ":", line_no, ": option '", line.substr(0, eq),
                "' before the first [section]");
    cfg.sections.back().options.push_back({line.substr(0, eq), line.substr(eq + 1), line_no});
  }
  NABLA_CHECK(!cfg.sections.empty(), name, ": no [section] in the file (expected [net] first)");
  return cfg;
}

Cfg read_cfg(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  NABLA_CHECK(f.good(), "darknet cfg: cannot open '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_cfg(ss.str(), path);
}

std::string format_cfg(const Cfg& cfg) {
  std::string out;
  for (size_t i = 0; i < cfg.sections.size(); ++i) {
    if (i) out += '\n';
    out += "[" + cfg.sections[i].type + "]\n";
    for (const CfgOption& o : cfg.sections[i].options) out += o.key + "=" + o.value + "\n";
  }
  return out;
}

void override_cfg(Cfg& cfg, int width, int height, int classes) {
  for (CfgSection& s : cfg.sections) {
    if (s.type != "net" && s.type != "network") continue;
    for (CfgOption& opt : s.options) {
      if (opt.key == "width" && width > 0) opt.value = std::to_string(width);
      if (opt.key == "height" && height > 0) opt.value = std::to_string(height);
    }
  }
  if (classes <= 0) return;
  for (size_t i = 0; i < cfg.sections.size(); ++i) {
    CfgSection& s = cfg.sections[i];
    if (s.type != "yolo") continue;
    size_t anchors = 0;
    for (CfgOption& opt : s.options) {
      if (opt.key == "classes") opt.value = std::to_string(classes);
      if (opt.key == "mask") anchors = std::count(opt.value.begin(), opt.value.end(), ',') + 1;
    }
    NABLA_CHECK(anchors > 0 && i > 0 &&
                    (cfg.sections[i - 1].type == "convolutional" || cfg.sections[i - 1].type == "conv"),
                s.where("mask"), "--classes needs a mask and a [convolutional] right before each [yolo]");
    for (CfgOption& opt : cfg.sections[i - 1].options)
      if (opt.key == "filters") opt.value = std::to_string(anchors * (5 + classes));
  }
}

}  // namespace nabla::models::darknet
