// apps/common/options.h on Boost.Program_options. Boost does the syntax (`--name value`, `--name=value`,
// switches, unknown and repeated options, the config-file format and the --help layout); every value
// reaches Boost as a string and is converted and range-checked here, because Boost's own conversion
// (boost::lexical_cast) wraps `-1` into an unsigned type and accepts nan and inf.
#include "apps/common/options.h"

#include <sys/stat.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>
#include <string_view>
#include <type_traits>

namespace po = boost::program_options;

namespace nabla::apps {
namespace {

// Boost 1.74's error_with_option_name::what() replaces each %placeholder% in a loop until none is left,
// so a value that contains its own placeholder (`--lr %value%`, a config line `lr = %value%`) never ends
// (found by fuzz/fuzz_options.cpp). Before what() runs, every '%' in the user's text is shown as "\%".
struct PoErrorAccess : po::error_with_option_name {
  static std::map<std::string, std::string>& substitutions(po::error_with_option_name& e) {
    return e.*(&PoErrorAccess::m_substitutions);
  }
};

std::string po_message(po::error& e) {
  if (auto* named = dynamic_cast<po::error_with_option_name*>(&e)) {
    for (auto& [key, text] : PoErrorAccess::substitutions(*named)) {
      std::string safe;
      for (char c : text) safe += c == '%' ? std::string("\\%") : std::string(1, c);
      text = safe;
    }
  }
  return e.what();
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

std::string number_text(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);  // shortest: 0.0005, 1e-05
  return std::string(buf, r.ptr);
}
template <class T>
std::string to_text(const T& v) {
  if constexpr (std::is_same_v<T, std::string>)
    return v;
  else if constexpr (std::is_same_v<T, double>)
    return number_text(v);
  else
    return std::to_string(v);
}

template <class T>
constexpr const char* kind_name() {
  if constexpr (std::is_same_v<T, double>) return "a number";
  if constexpr (std::is_same_v<T, uint64_t>) return "a non-negative integer";
  if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  return "a string";
}

}  // namespace

template <class T>
struct Option<T>::Def {
  std::string name, help, unit, value_name, section;
  T* target = nullptr;
  T default_value{};
  T pending{};
  std::optional<T> low, high;
  bool low_open = false, high_open = false;
  std::vector<std::string> choices;
  std::vector<std::function<std::string(const T&)>> checks;

  // "an integer in [0, 1024]", "a number > 0", ...
  std::string expected() const {
    std::string s = kind_name<T>();
    if constexpr (!std::is_same_v<T, std::string>) {
      if (low && high)
        s +=
            str_cat(" in ", low_open ? "(" : "[", to_text(*low), ", ", to_text(*high), high_open ? ")" : "]");
      else if (low)
        s += str_cat(low_open ? " > " : " >= ", to_text(*low));
      else if (high)
        s += str_cat(high_open ? " < " : " <= ", to_text(*high));
    }
    return s;
  }

  // Text -> value, or a UsageError naming the option, the text and what was expected.
  T convert(const std::string& text) const {
    const std::string where = "option '--" + name + "': " + quoted(text);
    if constexpr (std::is_same_v<T, std::string>) {
      return text;
    } else {
      const char* first = text.data();
      const char* last = first + text.size();
      T v{};
      std::from_chars_result r{};
      if constexpr (std::is_same_v<T, double>)
        r = std::from_chars(first, last, v, std::chars_format::general);
      else
        r = std::from_chars(first, last, v);
      if (text.empty() || r.ptr != last || (r.ec != std::errc() && r.ec != std::errc::result_out_of_range)) {
        if (std::is_unsigned_v<T> && !text.empty() && text[0] == '-')
          throw UsageError(where + " is out of range (expected " + expected() + ")");
        throw UsageError(where + " is not " + kind_name<T>() +
                         (expected() != kind_name<T>() ? " (expected " + expected() + ")" : ""));
      }
      if (r.ec == std::errc::result_out_of_range)
        throw UsageError(where + " is out of range (expected " + expected() + ")");
      if constexpr (std::is_same_v<T, double>)
        if (!std::isfinite(v)) throw UsageError(where + " is not a finite number");
      return v;
    }
  }

  void check(const T& v, const std::string& text) const {
    const std::string where = "option '--" + name + "': " + quoted(text);
    if constexpr (!std::is_same_v<T, std::string>) {
      const bool below = low && (low_open ? !(v > *low) : v < *low);
      const bool above = high && (high_open ? !(v < *high) : v > *high);
      if (below || above) throw UsageError(where + " is out of range (expected " + expected() + ")");
    }
    if (!choices.empty() && std::find(choices.begin(), choices.end(), to_text(v)) == choices.end()) {
      std::string list;
      for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
      throw UsageError(where + " is not one of " + list);
    }
    for (const auto& c : checks)
      if (std::string problem = c(v); !problem.empty())
        throw UsageError("option '--" + name + "': " + problem);
  }

  // The --help text: help, then the accepted values, or the range and unit: "peak learning rate; > 0",
  // "pad to N x N; 0 to 4096 pixels", "momentum; in [0, 1)".
  std::string describe() const {
    std::string s = help;
    if (!choices.empty()) {
      std::string list;
      for (const auto& c : choices) list += (list.empty() ? "" : " | ") + c;
      return s + (s.empty() ? "" : ": ") + list;
    }
    std::string range;
    if constexpr (!std::is_same_v<T, std::string>) {
      if (low && high && !low_open && !high_open)
        range = to_text(*low) + " to " + to_text(*high);
      else if (low && high)
        range =
            str_cat("in ", low_open ? "(" : "[", to_text(*low), ", ", to_text(*high), high_open ? ")" : "]");
      else if (low)
        range = str_cat(low_open ? "> " : ">= ", to_text(*low));
      else if (high)
        range = str_cat(high_open ? "< " : "<= ", to_text(*high));
    }
    if (!unit.empty()) range += (range.empty() ? "in " : " ") + unit;
    return range.empty() ? s : s + "; " + range;
  }
};

template <class T>
Option<T>& Option<T>::positive() {
  if constexpr (std::is_same_v<T, double>) {
    def_->low = 0.0;
    def_->low_open = true;
  } else {
    def_->low = T{1};
  }
  return *this;
}
template <class T>
Option<T>& Option<T>::non_negative() {
  def_->low = T{};
  def_->low_open = false;
  return *this;
}
template <class T>
Option<T>& Option<T>::in_range(T low, T high, Bound bound) {
  def_->low = low;
  def_->high = high;
  def_->low_open = bound == Bound::open_low || bound == Bound::open;
  def_->high_open = bound == Bound::open_high || bound == Bound::open;
  return *this;
}
template <class T>
Option<T>& Option<T>::at_least(T low) {
  def_->low = low;
  def_->low_open = false;
  return *this;
}
template <class T>
Option<T>& Option<T>::at_most(T high) {
  def_->high = high;
  def_->high_open = false;
  return *this;
}
template <class T>
Option<T>& Option<T>::one_of(std::vector<std::string> choices) {
  def_->choices = std::move(choices);
  return *this;
}
template <class T>
Option<T>& Option<T>::check(std::function<std::string(const T&)> check) {
  def_->checks.push_back(std::move(check));
  return *this;
}
template <class T>
Option<T>& Option<T>::unit(std::string unit) {
  def_->unit = std::move(unit);
  return *this;
}
template <class T>
Option<T>& Option<T>::value_name(std::string name) {
  def_->value_name = std::move(name);
  return *this;
}

template class Option<int64_t>;
template class Option<uint64_t>;
template class Option<double>;
template class Option<std::string>;

// One declared option, type-erased for the parser.
struct OptionSet::Entry {
  virtual ~Entry() = default;
  std::string section;
  virtual const std::string& name() const = 0;
  virtual bool is_switch() const { return false; }
  virtual std::string default_text() const = 0;
  virtual std::string describe() const = 0;
  virtual std::string value_name() const = 0;
  virtual void read(const std::string& text) = 0;  // convert and check into the pending value
  virtual void reset() = 0;                        // the pending value back to the default
  virtual void commit() = 0;                       // target = the pending value
  virtual std::string current_text() const = 0;    // the target's value, for --print-config
};

namespace {

template <class T>
struct TypedEntry final : OptionSet::Entry {
  typename Option<T>::Def def;
  Option<T> handle{&def};
  const std::string& name() const override { return def.name; }
  std::string default_text() const override { return to_text(def.default_value); }
  std::string describe() const override { return def.describe(); }
  std::string value_name() const override {
    if (!def.value_name.empty()) return def.value_name;
    if constexpr (std::is_same_v<T, double>) return "X";
    if constexpr (std::is_same_v<T, std::string>) return "ARG";
    return "N";
  }
  void read(const std::string& text) override {
    T v = def.convert(text);
    def.check(v, text);
    def.pending = std::move(v);
  }
  void reset() override { def.pending = def.default_value; }
  void commit() override { *def.target = def.pending; }
  std::string current_text() const override { return to_text(*def.target); }
};

struct SwitchEntry final : OptionSet::Entry {
  std::string name_, help;
  bool* target = nullptr;
  bool pending = false;
  const std::string& name() const override { return name_; }
  bool is_switch() const override { return true; }
  std::string default_text() const override { return ""; }
  std::string describe() const override { return help; }
  std::string value_name() const override { return ""; }
  void read(const std::string& text) override { pending = text == "true"; }
  void reset() override { pending = false; }
  void commit() override { *target = pending; }
  std::string current_text() const override { return *target ? "true" : "false"; }
};

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

OptionSet::OptionSet(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}
OptionSet::~OptionSet() = default;

void OptionSet::section(std::string title) { current_section_ = std::move(title); }

template <class T>
Option<T>& OptionSet::declare(const std::string& name, T* target, T default_value, std::string help) {
  NABLA_CHECK(target != nullptr, "OptionSet: option '", name, "' has a null target");
  NABLA_CHECK(!name.empty() && name[0] != '-' && name.find_first_of(",= ") == std::string::npos,
              "OptionSet: bad option name '", name, "' (expected a long name without dashes)");
  for (const auto& e : entries_)
    NABLA_CHECK(e->name() != name, "OptionSet: option --", name, " declared twice");
  NABLA_CHECK(name != "help" && name != "config" && name != "print-config", "OptionSet: --", name,
              " is declared by every OptionSet");
  auto e = std::make_unique<TypedEntry<T>>();
  e->section = current_section_;
  e->def.name = name;
  e->def.help = std::move(help);
  e->def.target = target;
  e->def.default_value = default_value;
  e->def.pending = default_value;
  Option<T>& handle = e->handle;
  entries_.push_back(std::move(e));
  return handle;
}

Option<int64_t>& OptionSet::add(const std::string& name, int64_t* target, int64_t default_value,
                                std::string help) {
  return declare(name, target, default_value, std::move(help));
}
Option<uint64_t>& OptionSet::add(const std::string& name, uint64_t* target, uint64_t default_value,
                                 std::string help) {
  return declare(name, target, default_value, std::move(help));
}
Option<double>& OptionSet::add(const std::string& name, double* target, double default_value,
                               std::string help) {
  return declare(name, target, default_value, std::move(help));
}
Option<std::string>& OptionSet::add(const std::string& name, std::string* target, std::string default_value,
                                    std::string help) {
  return declare(name, target, std::move(default_value), std::move(help));
}

void OptionSet::add_switch(const std::string& name, bool* target, std::string help) {
  NABLA_CHECK(target != nullptr, "OptionSet: switch '", name, "' has a null target");
  for (const auto& e : entries_)
    NABLA_CHECK(e->name() != name, "OptionSet: option --", name, " declared twice");
  auto e = std::make_unique<SwitchEntry>();
  e->section = current_section_;
  e->name_ = name;
  e->help = std::move(help);
  e->target = target;
  entries_.push_back(std::move(e));
}

void OptionSet::example(std::string args, std::string what) {
  examples_.push_back({std::move(args), std::move(what)});
}

namespace {

// Boost's description of the options: `general` holds --help, --config and --print-config.
struct Descriptions {
  po::options_description all{"", 100, 60};
  po::options_description file{""};  // what a config file may hold: the binary's own options
};

}  // namespace

static Descriptions describe_all(const std::string& program,
                                 const std::vector<std::unique_ptr<OptionSet::Entry>>& entries,
                                 bool for_help) {
  Descriptions d;
  po::options_description general("General", 100, 60);
  general.add_options()("help", "show this help and exit (also -h)")(
      "config", po::value<std::string>()->value_name("FILE"),
      "read options from FILE: one `name = value` a line, # comments, switches as `name = true`; the "
      "command line wins")("print-config", "check the options, print them as a --config file and exit");
  d.all.add(general);
  std::vector<std::string> sections;
  for (const auto& e : entries)
    if (std::find(sections.begin(), sections.end(), e->section) == sections.end())
      sections.push_back(e->section);
  for (const std::string& title : sections) {
    po::options_description group(title, 100, 60);
    for (const auto& e : entries) {
      if (e->section != title) continue;
      const std::string help = for_help ? e->describe() : "";
      if (e->is_switch()) {
        group.add_options()(e->name().c_str(), po::bool_switch(), help.c_str());
      } else {
        auto* v = po::value<std::string>()->value_name(e->value_name());
        if (!e->default_text().empty()) v->default_value(e->default_text());
        group.add_options()(e->name().c_str(), v, help.c_str());
      }
    }
    d.all.add(group);
    d.file.add(group);
  }
  (void)program;
  return d;
}

void OptionSet::parse_args(const std::vector<std::string>& raw_args, const std::function<void()>& validate) {
  help_ = print_config_ = false;
  std::vector<std::string> args;
  for (const std::string& a : raw_args) args.push_back(a == "-h" ? "--help" : a);
  Descriptions d = describe_all(program_, entries_, false);
  po::variables_map vm;
  try {
    const int style = po::command_line_style::unix_style & ~po::command_line_style::allow_guessing &
                      ~po::command_line_style::allow_short;
    po::parsed_options parsed = po::command_line_parser(args).options(d.all).style(style).run();
    for (const po::option& opt : parsed.options) {
      if (opt.position_key >= 0 || opt.string_key.empty())
        throw UsageError("unexpected argument " +
                         quoted(opt.original_tokens.empty() ? "" : opt.original_tokens[0]) +
                         " (options start with --; this program takes no positional arguments)");
      // `--lr --epochs 3`: Boost takes `--epochs` as the value of --lr.
      if (opt.original_tokens.size() == 2 && opt.value.size() == 1 && opt.value[0].rfind("--", 0) == 0)
        throw UsageError("option '--" + opt.string_key + "' needs a value, got the option " +
                         quoted(opt.value[0]) + " (write --" + opt.string_key +
                         "=VALUE for a value that starts with --)");
    }
    po::store(parsed, vm);
    if (vm.count("help")) {
      help_ = true;
      return;
    }
    if (vm.count("config")) {
      config_file_ = vm["config"].as<std::string>();
      if (!is_regular_file(config_file_))
        throw UsageError("option '--config': " + quoted(config_file_) + " is not a readable file");
      try {
        po::store(po::parse_config_file<char>(config_file_.c_str(), d.file), vm);
      } catch (po::error& e) {
        throw UsageError("config file " + quoted(config_file_) + ": " + po_message(e));
      }
    }
  } catch (po::error& e) {
    throw UsageError(po_message(e));
  }
  print_config_ = vm.count("print-config") > 0;

  std::vector<std::string> given;
  for (const auto& e : entries_) {
    e->reset();
    if (!vm.count(e->name())) continue;
    const po::variable_value& v = vm[e->name()];
    if (e->is_switch()) {
      e->read(v.as<bool>() ? "true" : "false");
      if (v.as<bool>()) given.push_back(e->name());
      continue;
    }
    if (v.defaulted()) continue;
    e->read(v.as<std::string>());
    given.push_back(e->name());
  }
  // Every value is valid: now set the targets.
  for (const auto& e : entries_) e->commit();
  given_ = std::move(given);
  if (validate) {
    try {
      validate();
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
  }
}

std::optional<int> OptionSet::parse(int argc, const char* const* argv,
                                    const std::function<void()>& validate) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  try {
    parse_args(args, validate);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", program_.c_str(), e.what());
    return kExitUsage;
  }
  if (help_) {
    std::cout << help() << std::flush;
    return 0;
  }
  if (print_config_) {
    std::cout << config_text() << std::flush;
    return 0;
  }
  return std::nullopt;
}

bool OptionSet::given(const std::string& name) const {
  return std::find(given_.begin(), given_.end(), name) != given_.end();
}

std::string OptionSet::help() const {
  std::ostringstream os;
  os << "Usage: " << program_ << " [options]\n" << summary_ << "\n";
  os << describe_all(program_, entries_, true).all;
  if (!examples_.empty()) {
    os << "\nExamples:\n";
    for (const Example& e : examples_)
      os << "  " << program_ << " " << e.args << "\n      " << e.what << "\n";
  }
  return os.str();
}

// Whether Boost's config-file parser reads `value` back unchanged: it cuts each line at the first '#',
// trims spaces, tabs and line breaks at both ends, and has no quoting (found by fuzz/fuzz_options.cpp:
// `--name "e<TAB>"` printed as `name = e<TAB>` read back as "e").
static bool config_file_can_hold(const std::string& value) {
  const std::string_view trimmed = " \t\r\n";
  return value.find_first_of("#\r\n") == std::string::npos &&
         (value.empty() || (trimmed.find(value.front()) == std::string_view::npos &&
                            trimmed.find(value.back()) == std::string_view::npos));
}

std::string OptionSet::config_text() const {
  std::ostringstream os;
  os << "# " << program_ << " options (read back with --config FILE)\n";
  for (const auto& e : entries_) {
    const std::string v = e->current_text();
    if (!config_file_can_hold(v))
      os << "# " << e->name()
         << " = (a value with '#', a line break, or a space or tab at an end: a config file "
         << "cannot hold it; give it on the command line)\n";
    else
      os << (v.empty() ? "# " : "") << e->name() << " = " << v << "\n";
  }
  return os.str();
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(',', start), s.size());
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace nabla::apps
