// A small command-line option parser for the training binaries, in place of Boost.Program_options (the GPU
// machine has no Boost.Program_options, so the binaries could not be built there).
//
//   bool help = false;
//   int64_t epochs;
//   OptionParser cli("train_classifier: train an image classifier");
//   cli.add_switch("help,h", &help, "show this help")
//       .add("epochs", &epochs, 10, "passes over the training set")
//       .add("model", &model, "lenet5", "lenet5 | mlp");
//   cli.parse(argc, argv);                 // throws apps::CliError
//   if (help) std::cout << cli.help() << "\n";
//
// Accepted: `--name value`, `--name=value`, `-x value` for a short alias, and switches (`--nesterov`, no
// value). Every declared option ends up holding its default or the value given. Rejected with a CliError
// that names the option and what was wrong: unknown options, a missing value (the end of the command line,
// or a `--...` token where the value should be), a value that is not a number of the option's type (or
// does not fit it), a value given to a switch, an option given twice (also through its alias), and bare
// arguments. A negative number works as a separate value (`--lr -1`): only `--...` tokens and declared short
// aliases count as options there. On an error no target is changed.
//
// help() prints like Boost.Program_options' options_description: the description and a colon, then one
// line per option, `  --model arg (=lenet5)` (an empty default shows as plain `arg`), with the help text
// in a column (wrapped to 79 characters). Numbers show in their shortest form: (=0.05), not Boost's
// (=0.050000000000000003).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "engine/error.h"

namespace nabla::apps {

// A command-line mistake: the message names the option and what was wrong with it.
class CliError : public Error {
 public:
  using Error::Error;
};

class OptionParser {
 public:
  explicit OptionParser(std::string description);

  // An option with a value. `names` is the long name, optionally with a one-letter alias: "model" or
  // "model,m". `target` receives the default or the given value; it must outlive parse().
  OptionParser& add(const std::string& names, std::string* target, std::string default_value, std::string help);
  OptionParser& add(const std::string& names, int64_t* target, int64_t default_value, std::string help);
  OptionParser& add(const std::string& names, uint64_t* target, uint64_t default_value, std::string help);
  OptionParser& add(const std::string& names, double* target, double default_value, std::string help);
  // A switch: false unless given (then true); it takes no value.
  OptionParser& add_switch(const std::string& names, bool* target, std::string help);

  // Parses argv[1..argc-1] and sets every target (defaults for those not given). Throws CliError, leaving
  // the targets untouched, on any mistake (see the top of this file).
  void parse(int argc, const char* const* argv);
  void parse(const std::vector<std::string>& args);  // the arguments without the program name

  // Whether the last parse() saw the option (by its long name).
  bool given(const std::string& long_name) const;

  // The --help text, ending with a newline.
  std::string help() const;

 private:
  using Target = std::variant<std::string*, int64_t*, uint64_t*, double*, bool*>;
  using Value = std::variant<std::string, int64_t, uint64_t, double, bool>;
  struct Option {
    std::string long_name;
    char short_name = 0;
    Target target;
    Value default_value;
    std::string default_text;
    std::string help;
    bool is_switch() const { return std::holds_alternative<bool*>(target); }
  };

  OptionParser& declare(const std::string& names, Target target, Value default_value, std::string default_text,
                        std::string help);
  const Option* find_long(const std::string& name) const;
  const Option* find_short(char c) const;
  // Whether a token where a value is expected is an option instead: any `--name`, or a declared `-x`.
  bool is_option_token(const std::string& token) const;
  static Value convert(const Option& opt, const std::string& text);

  std::string description_;
  std::vector<Option> options_;
  std::vector<std::string> given_;
};

inline std::ostream& operator<<(std::ostream& os, const OptionParser& p) { return os << p.help(); }

}  // namespace nabla::apps
