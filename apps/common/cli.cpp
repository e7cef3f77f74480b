#include "apps/common/cli.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <type_traits>
#include <utility>

namespace nabla::apps {
namespace {

// Boost.Program_options' layout: lines of 80 characters (text up to column 79), of which the help column
// keeps at least 40; the option column is at least 23 wide plus one space.
constexpr size_t kLineLength = 80;
constexpr size_t kMinHelpWidth = 40;
constexpr size_t kMinOptionColumn = 23;

bool valid_long_name(const std::string& s) {
  return !s.empty() && s[0] != '-' &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// `text` wrapped into lines of at most `width` characters at spaces (a longer word keeps a line to itself);
// lines after the first start with `indent` spaces. '\n' in the text starts a new line.
std::string wrap(const std::string& text, size_t indent, size_t width) {
  std::string out;
  size_t line_start = 0;  // in `out`, after the indent
  bool first_line = true;
  auto new_line = [&] {
    out += '\n';
    out.append(indent, ' ');
    line_start = out.size();
  };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string paragraph = text.substr(pos, end - pos);
    if (!first_line) new_line();
    first_line = false;
    size_t w = 0;
    while (w < paragraph.size()) {
      size_t sp = paragraph.find(' ', w);
      if (sp == std::string::npos) sp = paragraph.size();
      const std::string word = paragraph.substr(w, sp - w);
      const size_t used = out.size() - line_start;
      if (used > 0 && used + 1 + word.size() > width) {
        new_line();
      } else if (used > 0) {
        out += ' ';
      }
      out += word;
      w = sp + 1;
    }
    pos = end + 1;
  }
  return out;
}

std::string default_text(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  return std::string(buf, r.ptr);
}

}  // namespace

OptionParser::OptionParser(std::string description) : description_(std::move(description)) {}

OptionParser& OptionParser::declare(const std::string& names, Target target, Value default_value,
                                    std::string default_text, std::string help) {
  NABLA_CHECK(std::visit([](auto* p) { return p != nullptr; }, target), "OptionParser: option '", names,
              "' has a null target");
  Option opt;
  const size_t comma = names.find(',');
  opt.long_name = names.substr(0, comma);
  NABLA_CHECK(valid_long_name(opt.long_name), "OptionParser: bad option name '", names,
              "' (expected a long name of letters, digits, - and _, optionally with ',x' for a one-letter alias)");
  if (comma != std::string::npos) {
    const std::string alias = names.substr(comma + 1);
    NABLA_CHECK(alias.size() == 1 && std::isalnum(static_cast<unsigned char>(alias[0])), "OptionParser: bad alias in '",
                names, "' (expected one letter or digit after the comma)");
    opt.short_name = alias[0];
    NABLA_CHECK(!find_short(opt.short_name), "OptionParser: alias -", alias, " declared twice");
  }
  NABLA_CHECK(!find_long(opt.long_name), "OptionParser: option --", opt.long_name, " declared twice");
  opt.target = target;
  opt.default_value = std::move(default_value);
  opt.default_text = std::move(default_text);
  opt.help = std::move(help);
  options_.push_back(std::move(opt));
  return *this;
}

OptionParser& OptionParser::add(const std::string& names, std::string* target, std::string default_value,
                                std::string help) {
  std::string text = default_value;
  return declare(names, target, std::move(default_value), std::move(text), std::move(help));
}
OptionParser& OptionParser::add(const std::string& names, int64_t* target, int64_t default_value, std::string help) {
  return declare(names, target, default_value, std::to_string(default_value), std::move(help));
}
OptionParser& OptionParser::add(const std::string& names, uint64_t* target, uint64_t default_value, std::string help) {
  return declare(names, target, default_value, std::to_string(default_value), std::move(help));
}
OptionParser& OptionParser::add(const std::string& names, double* target, double default_value, std::string help) {
  return declare(names, target, default_value, default_text(default_value), std::move(help));
}
OptionParser& OptionParser::add_switch(const std::string& names, bool* target, std::string help) {
  return declare(names, target, false, "", std::move(help));
}

const OptionParser::Option* OptionParser::find_long(const std::string& name) const {
  for (const Option& o : options_)
    if (o.long_name == name) return &o;
  return nullptr;
}

const OptionParser::Option* OptionParser::find_short(char c) const {
  for (const Option& o : options_)
    if (o.short_name != 0 && o.short_name == c) return &o;
  return nullptr;
}

bool OptionParser::is_option_token(const std::string& token) const {
  if (token.size() > 2 && token.compare(0, 2, "--") == 0) return true;
  return token.size() == 2 && token[0] == '-' && find_short(token[1]) != nullptr;
}

OptionParser::Value OptionParser::convert(const Option& opt, const std::string& text) {
  const std::string where = "option '--" + opt.long_name + "': " + quoted(text);
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto integer = [&](auto v, const char* what) -> Value {
    auto [ptr, ec] = std::from_chars(first, last, v);
    if (ec == std::errc::result_out_of_range) throw CliError(where + " is out of range for " + what);
    if (ec != std::errc() || ptr != last || text.empty()) throw CliError(where + " is not " + what);
    return v;
  };
  switch (opt.target.index()) {
    case 0:
      return text;
    case 1:
      return integer(int64_t{0}, "an integer");
    case 2:
      if (!text.empty() && text[0] == '-') throw CliError(where + " is not a non-negative integer");
      return integer(uint64_t{0}, "a non-negative integer");
    case 3: {
      double v = 0;
      auto [ptr, ec] = std::from_chars(first, last, v);
      if (ec == std::errc::result_out_of_range) throw CliError(where + " is out of range for a number");
      if (ec != std::errc() || ptr != last || text.empty()) throw CliError(where + " is not a number");
      if (!std::isfinite(v)) throw CliError(where + " is not a finite number");
      return v;
    }
    default:
      return true;  // switches never get here
  }
}

void OptionParser::parse(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  parse(args);
}

void OptionParser::parse(const std::vector<std::string>& args) {
  std::vector<std::pair<const Option*, Value>> values;
  std::vector<std::string> seen;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& token = args[i];
    const Option* opt = nullptr;
    std::optional<std::string> inline_value;
    if (token.size() > 2 && token.compare(0, 2, "--") == 0) {
      const size_t eq = token.find('=');
      const std::string name = token.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (eq != std::string::npos) inline_value = token.substr(eq + 1);
      opt = find_long(name);
      if (!opt) throw CliError("unrecognised option '--" + name + "'");
    } else if (token.size() >= 2 && token[0] == '-') {
      if (token == "--") throw CliError("unexpected argument '--' (this program takes no positional arguments)");
      opt = token.size() == 2 ? find_short(token[1]) : nullptr;
      if (!opt) throw CliError("unrecognised option " + quoted(token));
    } else {
      throw CliError("unexpected argument " + quoted(token) + " (options start with --)");
    }

    const std::string name = "'--" + opt->long_name + "'";
    if (std::find(seen.begin(), seen.end(), opt->long_name) != seen.end())
      throw CliError("option " + name + " is given more than once");
    seen.push_back(opt->long_name);
    if (opt->is_switch()) {
      if (inline_value) throw CliError("option " + name + " is a switch and takes no value (got " + quoted(*inline_value) + ")");
      values.emplace_back(opt, true);
      continue;
    }
    std::string text;
    if (inline_value) {
      text = *inline_value;
    } else if (i + 1 >= args.size()) {
      throw CliError("option " + name + " needs a value");
    } else if (is_option_token(args[i + 1])) {
      throw CliError("option " + name + " needs a value, got the option " + quoted(args[i + 1]) + " (write --" +
                     opt->long_name + "=VALUE for a value that starts with -)");
    } else {
      text = args[++i];
    }
    values.emplace_back(opt, convert(*opt, text));
  }

  // Everything is valid: now set the targets.
  auto assign = [](const Target& target, const Value& value) {
    std::visit([&](auto* p) { *p = std::get<std::remove_pointer_t<decltype(p)>>(value); }, target);
  };
  for (const Option& o : options_) assign(o.target, o.default_value);
  for (const auto& [opt, value] : values) assign(opt->target, value);
  given_ = std::move(seen);
}

bool OptionParser::given(const std::string& long_name) const {
  return std::find(given_.begin(), given_.end(), long_name) != given_.end();
}

std::string OptionParser::help() const {
  std::vector<std::string> firsts;
  size_t width = kMinOptionColumn;
  for (const Option& o : options_) {
    std::string s = "  ";
    s += o.short_name ? std::string("-") + o.short_name + " [ --" + o.long_name + " ]" : "--" + o.long_name;
    s += ' ';
    if (!o.is_switch()) s += o.default_text.empty() ? "arg" : "arg (=" + o.default_text + ")";  // as Boost
    width = std::max(width, s.size());
    firsts.push_back(std::move(s));
  }
  width = std::min(width, kLineLength - kMinHelpWidth - 1) + 1;

  std::string out;
  if (!description_.empty()) out += description_ + ":\n";
  for (size_t i = 0; i < options_.size(); ++i) {
    std::string line = firsts[i];
    if (options_[i].help.empty()) {
      while (!line.empty() && line.back() == ' ') line.pop_back();
    } else {
      if (line.size() >= width) {
        line += '\n';
        line.append(width, ' ');
      } else {
        line.append(width - line.size(), ' ');
      }
      line += wrap(options_[i].help, width, kLineLength - 1 - width);  // Boost ends lines at column 79
    }
    out += line + '\n';
  }
  return out;
}

}  // namespace nabla::apps
