// The convolution choice cache file: parse, serialise, load, save (format in cuda/conv_cache.h).
#include "cuda/conv_cache.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace nabla::cuda::conv_cache {
namespace {

constexpr const char* kMagic = "nabla-conv-cache 1 ";

// One whitespace-separated token of a line: its text and byte offset in the file.
struct Token {
  std::string text;
  int64_t offset;
};

std::vector<Token> tokens_of(const std::string& line, int64_t line_offset) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    if (i >= line.size()) break;
    const size_t j = line.find(' ', i);
    const size_t end = j == std::string::npos ? line.size() : j;
    out.push_back({line.substr(i, end - i), line_offset + static_cast<int64_t>(i)});
    i = end;
  }
  return out;
}

// A decimal integer (optional minus sign) that fills the whole token.
bool to_int(const std::string& s, int64_t& v) {
  if (s.empty() || s.size() > 20) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (size_t k = i; k < s.size(); ++k)
    if (s[k] < '0' || s[k] > '9') return false;
  errno = 0;
  char* end = nullptr;
  const long long r = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  v = r;
  return true;
}

ParseResult fail(int64_t offset, std::string what) { return {false, false, offset, std::move(what)}; }

}  // namespace

std::string serialize(const std::string& context, const Entries& entries) {
  std::ostringstream o;
  o << kMagic << context << '\n';
  for (const auto& [key, engine] : entries) {
    for (int64_t k : key) o << k << ' ';
    o << engine << '\n';
  }
  o << "end " << entries.size() << '\n';
  return o.str();
}

ParseResult parse(const std::string& text, const std::string& context, Entries& out) {
  out.clear();
  Entries got;
  size_t pos = 0;
  bool header = false, ended = false;
  int64_t records = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const int64_t off = static_cast<int64_t>(pos);
    if (ended) return fail(off, "data after the end line");
    if (nl == std::string::npos) return fail(off, "a line without its newline (truncated)");
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (!header) {
      if (line.rfind(kMagic, 0) != 0)
        return fail(off,
                    std::string("not a conv cache file (expected a first line '") + kMagic + "<context>')");
      header = true;
      if (line.substr(std::strlen(kMagic)) != context) {
        ParseResult r;
        r.other_context = true;
        r.what = "written for '" + line.substr(std::strlen(kMagic)) + "', this process is '" + context + "'";
        return r;
      }
      continue;
    }
    const std::vector<Token> t = tokens_of(line, off);
    if (!t.empty() && t[0].text == "end") {
      int64_t n = -1;
      if (t.size() != 2 || !to_int(t[1].text, n))
        return fail(off, "a malformed end line (expected 'end <count>')");
      if (n != records)
        return fail(t[1].offset, "the end line counts " + std::to_string(n) + " records, the file has " +
                                     std::to_string(records));
      ended = true;
      continue;
    }
    Key key{};
    if (t.size() != key.size() + 1)
      return fail(off, "a record with " + std::to_string(t.size()) + " fields, expected " +
                           std::to_string(key.size() + 1));
    int64_t v = 0;
    for (size_t k = 0; k < t.size(); ++k) {
      if (!to_int(t[k].text, v)) return fail(t[k].offset, "'" + t[k].text + "' is not an integer");
      if (k < key.size())
        key[k] = v;
      else if (v < 0)
        return fail(t[k].offset, "a negative engine index " + t[k].text);
    }
    got[key] = v;
    ++records;
  }
  if (!header) return fail(0, "an empty file");
  if (!ended) return fail(static_cast<int64_t>(text.size()), "no end line (truncated)");
  out = std::move(got);
  return {};
}

Entries load(const std::string& path, const std::string& context, std::string* warning) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};  // no file yet: an empty cache
  std::stringstream ss;
  ss << f.rdbuf();
  Entries e;
  const ParseResult r = parse(ss.str(), context, e);
  std::string msg;
  if (!r.ok)
    msg = "NABLA_CONV_CACHE: " + path + ": " + r.what + " at byte " + std::to_string(r.offset) +
          "; ignoring the file (it is rewritten after the next choice)";
  else if (r.other_context)
    msg = "NABLA_CONV_CACHE: " + path + ": " + r.what + "; ignoring its choices";
  if (!msg.empty()) {
    if (warning)
      *warning = msg;
    else
      std::fprintf(stderr, "%s\n", msg.c_str());
  }
  return e;
}

bool save(const std::string& path, const std::string& context, const Entries& entries, std::string* warning) {
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long long>(::getpid()));
  const std::string text = serialize(context, entries);
  bool ok = false;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (f) {
      f.write(text.data(), static_cast<std::streamsize>(text.size()));
      f.flush();
      ok = static_cast<bool>(f);
    }
  }
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) ok = false;
  if (!ok) {
    std::remove(tmp.c_str());
    const std::string msg = "NABLA_CONV_CACHE: could not write " + path + " (" + std::strerror(errno) + ")";
    if (warning)
      *warning = msg;
    else
      std::fprintf(stderr, "%s\n", msg.c_str());
  }
  return ok;
}

}  // namespace nabla::cuda::conv_cache
