// Command lines of the binaries, on Boost.Program_options: one declaration per option, with its default,
// its help text and its range, and the same behaviour in every binary.
//
//   Options o;
//   apps::OptionSet cli("train_classifier", "train an image classifier");
//   cli.section("Training");
//   cli.add("epochs", &o.epochs, 10, "passes over the training set").positive();
//   cli.add("lr", &o.lr, 0.05, "peak learning rate").positive();
//   cli.add("momentum", &o.momentum, 0.9, "SGD momentum").in_range(0, 1, apps::Bound::open_high);
//   cli.add("model", &o.model, "lenet5", "network").one_of({"lenet5", "mlp"});
//   cli.add_switch("nesterov", &o.nesterov, "Nesterov momentum");
//   cli.example("--model mlp --epochs 3", "a 3-epoch MLP");
//   if (auto code = cli.parse(argc, argv, [&] { cross_checks(o); })) return *code;   // help, error, ...
//
// What every binary gets:
// - `--help` (`-h`): usage, the options by section with defaults (`--lr X (=0.05)`), units and accepted
//   values, then the examples. Every example is tested to parse (tests/apps/test_options.cpp).
// - `--config FILE`: the same options in a file, one `name = value` per line (`#` comments; switches as
//   `nesterov = true`), Boost's config-file syntax. The command line wins over the file.
// - `--print-config`: parse and check everything, print the options as a `--config` file holds them, and
//   exit 0 without running (what the tests use to parse an example without training).
// - Errors: one line on stderr, `train_classifier: option '--lr': 'nan' is not a finite number (see
//   --help)`, and exit code 2 (kExitUsage), for an unknown option, a missing value (also `--lr --epochs 3`,
//   where `--epochs` is not taken as the value), a malformed number, a number that does not fit the type
//   (never truncated: `--threads 4294967297` is refused), a value outside the declared range or choices,
//   an option given twice, a bare argument, and whatever the binary's own cross-option check throws.
//   Numbers are read with std::from_chars in full: no trailing characters, no hex, finite doubles only.
// - Long options only (`--name value` or `--name=value`), never abbreviated (`--epoch` is an error, so a
//   new option can never change what an old command line means); a negative number is a value
//   (`--lr -1` reaches the range check).
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/error.h"

namespace nabla::apps {

// Exit code of a command-line mistake (as getopt-based tools and Python's argparse use).
constexpr int kExitUsage = 2;

// A command-line mistake: the message names the option and what was wrong with it.
class UsageError : public Error {
 public:
  using Error::Error;
};

// Which ends of an in_range() interval are excluded.
enum class Bound { closed, open_low, open_high, open };

// One declared option: its checks are added to it after OptionSet::add().
template <class T>
class Option {
 public:
  // Numbers.
  Option& positive();      // integers >= 1, doubles > 0
  Option& non_negative();  // >= 0
  Option& in_range(T low, T high, Bound bound = Bound::closed);
  Option& at_least(T low);
  Option& at_most(T high);
  // Strings: the value must be one of `choices` (listed in --help).
  Option& one_of(std::vector<std::string> choices);
  // Any type: `check(value)` returns "" or what is wrong (the message then reads "option '--x': <that>").
  Option& check(std::function<std::string(const T&)> check);
  // The unit of the value, shown in --help after the help text: "[steps]".
  Option& unit(std::string unit);
  // The placeholder in --help (`--data-dir DIR`); N for integers, X for numbers, ARG for strings otherwise.
  Option& value_name(std::string name);

  struct Def;  // the declaration's state, in options.cpp
  explicit Option(Def* def) : def_(def) {}

 private:
  Def* def_;
};

class OptionSet {
 public:
  // `program`: the binary's name (usage line, error prefix, examples); `summary`: one line about it.
  OptionSet(std::string program, std::string summary);
  ~OptionSet();
  OptionSet(const OptionSet&) = delete;
  OptionSet& operator=(const OptionSet&) = delete;

  // Starts a titled group of options in --help (options before the first section go under "Options").
  void section(std::string title);
  // `target` receives the default or the given value; it must outlive parse().
  Option<int64_t>& add(const std::string& name, int64_t* target, int64_t default_value, std::string help);
  Option<uint64_t>& add(const std::string& name, uint64_t* target, uint64_t default_value, std::string help);
  Option<double>& add(const std::string& name, double* target, double default_value, std::string help);
  Option<std::string>& add(const std::string& name, std::string* target, std::string default_value,
                           std::string help);
  Option<std::string>& add(const std::string& name, std::string* target, const char* default_value,
                           std::string help) {
    return add(name, target, std::string(default_value), std::move(help));
  }
  // A switch: false unless given; it takes no value on the command line (`nesterov = true` in a file).
  void add_switch(const std::string& name, bool* target, std::string help);
  // An example command line (the arguments after the program name) and what it does, for --help.
  void example(std::string args, std::string what);

  // Parses argv (and the --config file), checks every value, sets every target, then runs `validate` (the
  // binary's cross-option checks; a nabla::Error it throws counts as a usage error). Returns nothing when
  // the program should run; otherwise the exit code, after printing: 0 for --help and --print-config, 2
  // (kExitUsage) after a one-line error on stderr.
  std::optional<int> parse(int argc, const char* const* argv, const std::function<void()>& validate = {});
  // The same without printing or exiting: throws UsageError. --help and --print-config only set the flags
  // below (validate runs for --print-config, not for --help).
  void parse_args(const std::vector<std::string>& args, const std::function<void()>& validate = {});

  bool help_requested() const { return help_; }
  bool print_config_requested() const { return print_config_; }
  // Whether the last parse saw the option (on the command line or in the config file).
  bool given(const std::string& name) const;

  std::string help() const;  // the --help text
  // The current values as a --config file. A string that such a file cannot hold ('#', a line break, a
  // space or tab at either end) is written as a comment saying so, and reads back as the default.
  std::string config_text() const;
  const std::string& program() const { return program_; }
  struct Example {
    std::string args, what;
  };
  const std::vector<Example>& examples() const { return examples_; }

  struct Entry;  // one declared option, in options.cpp

 private:
  template <class T>
  Option<T>& declare(const std::string& name, T* target, T default_value, std::string help);

  std::string program_, summary_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::vector<std::string> given_;
  std::vector<Example> examples_;
  std::string current_section_ = "Options";
  bool help_ = false, print_config_ = false;
  std::string config_file_;
};

// The non-empty items of a comma-separated option value ("a,,b" -> {"a", "b"}), for list options such as
// --teachers or --lora-targets.
std::vector<std::string> split_list(const std::string& s);

}  // namespace nabla::apps
