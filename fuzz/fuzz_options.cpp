// libFuzzer target: the command-line layer of the binaries (apps/common/options.h, Boost.Program_options
// underneath). The input is argv, one token per line; after a 0x01 byte, the rest is a --config file
// (written to the private input file and appended as `--config PATH`; a --config in the tokens is dropped,
// so the target never reads other files). Bad command lines must throw nabla::Error (UsageError); a line
// that parses must print back (config_text()) to a --config file that parses to the same values (a string
// the file format cannot hold, with '#', a line break or spaces at an end, reads back as the default).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "apps/common/options.h"
#include "engine/error.h"
#include "fuzz/fuzz_common.h"

namespace {

struct Values {
  int64_t epochs = 0;
  uint64_t threads = 0;
  double lr = 0, momentum = 0;
  std::string model, name;
  bool nesterov = false, verbose = false;
  bool operator==(const Values&) const = default;
};

// A representative declaration: every kind of value and check the binaries use.
void declare(nabla::apps::OptionSet& cli, Values& v) {
  cli.section("Training");
  cli.add("epochs", &v.epochs, 10, "passes over the training set").positive().unit("epochs");
  cli.add("threads", &v.threads, uint64_t{1}, "worker threads").at_most(1024);
  cli.add("lr", &v.lr, 0.05, "peak learning rate").positive();
  cli.add("momentum", &v.momentum, 0.9, "SGD momentum").in_range(0, 1, nabla::apps::Bound::open_high);
  cli.section("Model");
  cli.add("model", &v.model, "lenet5", "network").one_of({"lenet5", "mlp", "resnet18"});
  cli.add("name", &v.name, "", "run name").check([](const std::string& s) {
    return s.size() > 64 ? std::string("at most 64 characters") : std::string();
  });
  cli.add_switch("nesterov", &v.nesterov, "Nesterov momentum");
  cli.add_switch("verbose", &v.verbose, "more output");
  cli.example("--model mlp --epochs 3", "a 3-epoch MLP");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\x01');
  std::vector<std::string> args;
  {
    const std::string argv_text = input.substr(0, split);
    size_t begin = 0;
    while (begin <= argv_text.size()) {
      size_t end = argv_text.find('\n', begin);
      if (end == std::string::npos) end = argv_text.size();
      std::string token = argv_text.substr(begin, end - begin);
      if (token.find("config") == std::string::npos || token == "--print-config") args.push_back(token);
      begin = end + 1;
    }
    if (!args.empty() && args.back().empty()) args.pop_back();
  }
  if (split != std::string::npos) {
    const std::string& path = nabla::fuzz::write_input(data + split + 1, size - split - 1);
    args.push_back("--config");
    args.push_back(path);
  }

  Values v;
  nabla::apps::OptionSet cli("fuzz_options", "the option layer under libFuzzer");
  declare(cli, v);
  try {
    cli.parse_args(args, [&] {
      if (v.nesterov && v.momentum == 0) throw nabla::Error("--nesterov needs --momentum > 0");
    });
  } catch (const nabla::Error&) {
    return 0;
  }
  if (cli.help_requested()) {
    (void)cli.help();
    return 0;
  }
  // What parsed prints back to a config file that parses to the same values.
  const std::string text = cli.config_text();
  const std::string& path =
      nabla::fuzz::write_input(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  Values back;
  nabla::apps::OptionSet again("fuzz_options", "read back");
  declare(again, back);
  try {
    again.parse_args({"--config", path});
  } catch (const nabla::Error& e) {
    std::fprintf(stderr, "config_text() does not parse back: %s\n%s", e.what(), text.c_str());
    std::abort();
  }
  // A string a config file cannot hold is written as a comment and reads back as the default ("").
  Values expected = v;
  const bool holdable =
      expected.name.find_first_of("#\r\n") == std::string::npos &&
      (expected.name.empty() || (std::string(" \t\r\n").find(expected.name.front()) == std::string::npos &&
                                 std::string(" \t\r\n").find(expected.name.back()) == std::string::npos));
  if (!holdable) expected.name = "";
  if (!(back == expected)) {
    std::fprintf(stderr, "config_text() parses back to other values:\n%s", text.c_str());
    std::abort();
  }
  return 0;
}
