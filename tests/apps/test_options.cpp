// The binaries' command-line layer (apps/common/options.h, on Boost.Program_options): both value syntaxes,
// switches, defaults, the config file, --print-config, --help, and one test per class of bad command line
// with the exact message (each class also exits 2 from the binaries: test_train_classifier.cpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "apps/common/options.h"

namespace nabla::apps {
namespace {

struct Opts {
  std::string model, out;
  int64_t epochs = -7, batch = -7, threads = -7;
  uint64_t seed = 7;
  double lr = -7, momentum = -7, clip = -7;
  bool nesterov = true;
};

// An option set like train_classifier's, over `o`.
struct Parser {
  Opts o;
  OptionSet cli{"demo", "a test program"};
  Parser() {
    cli.section("Training");
    cli.add("model", &o.model, "lenet5", "network").one_of({"lenet5", "mlp"});
    cli.add("epochs", &o.epochs, 10, "passes over the training set").positive();
    cli.add("batch-size", &o.batch, 64, "batch").positive().unit("examples");
    cli.add("threads", &o.threads, 0, "CPU threads").in_range(0, 4096);
    cli.add("seed", &o.seed, 0, "seed");
    cli.add("lr", &o.lr, 0.05, "peak learning rate").positive();
    cli.add("momentum", &o.momentum, 0.9, "momentum").in_range(0, 1, Bound::open_high);
    cli.add("clip", &o.clip, 0.0, "clip norm (0: off)").non_negative();
    cli.add_switch("nesterov", &o.nesterov, "Nesterov momentum");
    cli.add("out", &o.out, "", "output file").value_name("FILE");
    cli.example("--model mlp --epochs 3", "a short MLP run");
  }
};

// The UsageError message for `args`, or "" when they parse.
std::string error_of(const std::vector<std::string>& args) {
  Parser p;
  try {
    p.cli.parse_args(args);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(Options, DefaultsWhenNothingIsGiven) {
  Parser p;
  p.cli.parse_args({});
  EXPECT_EQ(p.o.model, "lenet5");
  EXPECT_EQ(p.o.epochs, 10);
  EXPECT_EQ(p.o.seed, 0u);
  EXPECT_EQ(p.o.lr, 0.05);
  EXPECT_FALSE(p.o.nesterov);  // switches start false whatever the variable held
  EXPECT_EQ(p.o.out, "");
  EXPECT_FALSE(p.cli.given("model"));
  EXPECT_FALSE(p.cli.help_requested());
}

TEST(Options, SpaceAndEqualsSyntaxesAndNegativeValues) {
  Parser p;
  p.cli.parse_args({"--model", "mlp", "--epochs=3", "--seed", "18446744073709551615", "--lr=1e-3", "--out",
                    "a=b.jsonl", "--nesterov", "--momentum", "0"});
  EXPECT_EQ(p.o.model, "mlp");
  EXPECT_EQ(p.o.epochs, 3);
  EXPECT_EQ(p.o.seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(p.o.lr, 1e-3);
  EXPECT_EQ(p.o.out, "a=b.jsonl");
  EXPECT_TRUE(p.o.nesterov);
  EXPECT_TRUE(p.cli.given("model"));
  EXPECT_TRUE(p.cli.given("nesterov"));
  EXPECT_FALSE(p.cli.given("clip"));
  // A value that starts with -- goes through the = form; a negative number is a value.
  p.cli.parse_args({"--out=--odd-name"});
  EXPECT_EQ(p.o.out, "--odd-name");
  EXPECT_EQ(error_of({"--clip", "-1"}), "option '--clip': '-1' is out of range (expected a number >= 0)");
}

TEST(Options, UnknownOptionsAreRefused) {
  EXPECT_EQ(error_of({"--bogus"}), "unrecognised option '--bogus'");
  EXPECT_EQ(error_of({"--epoch", "3"}), "unrecognised option '--epoch'");  // never abbreviated
  EXPECT_EQ(
      error_of({"stray"}),
      "unexpected argument 'stray' (options start with --; this program takes no positional arguments)");
  EXPECT_EQ(error_of({"-x"}),
            "unexpected argument '-x' (options start with --; this program takes no positional arguments)");
}

TEST(Options, MissingValuesAreRefused) {
  EXPECT_EQ(error_of({"--lr"}), "the required argument for option '--lr' is missing");
  EXPECT_EQ(
      error_of({"--lr", "--epochs", "3"}),
      "option '--lr' needs a value, got the option '--epochs' (write --lr=VALUE for a value that starts "
      "with --)");
  EXPECT_EQ(error_of({"--lr="}),
            "the argument for option '--lr' should follow immediately after the equal sign");
}

TEST(Options, MalformedValuesAreRefused) {
  EXPECT_EQ(error_of({"--lr", "fast"}), "option '--lr': 'fast' is not a number (expected a number > 0)");
  EXPECT_EQ(error_of({"--epochs", "3x"}),
            "option '--epochs': '3x' is not an integer (expected an integer >= 1)");
  EXPECT_EQ(error_of({"--epochs", "2.5"}),
            "option '--epochs': '2.5' is not an integer (expected an integer >= 1)");
  EXPECT_EQ(error_of({"--epochs", "0x10"}),
            "option '--epochs': '0x10' is not an integer (expected an integer >= 1)");
  EXPECT_EQ(error_of({"--seed", "-1"}),
            "option '--seed': '-1' is out of range (expected a non-negative integer)");
  EXPECT_EQ(error_of({"--lr", "nan"}), "option '--lr': 'nan' is not a finite number");
  EXPECT_EQ(error_of({"--lr", "inf"}), "option '--lr': 'inf' is not a finite number");
  EXPECT_EQ(error_of({"--lr", "1e309"}), "option '--lr': '1e309' is out of range (expected a number > 0)");
  EXPECT_EQ(error_of({"--nesterov=1"}), "option '--nesterov' does not take any arguments");
  EXPECT_EQ(error_of({"--lr", "1", "--lr", "2"}), "option '--lr' cannot be specified more than once");
}

TEST(Options, OutOfRangeValuesAreRefusedNotTruncated) {
  EXPECT_EQ(error_of({"--batch-size", "0"}),
            "option '--batch-size': '0' is out of range (expected an integer >= 1)");
  EXPECT_EQ(error_of({"--epochs", "-3"}),
            "option '--epochs': '-3' is out of range (expected an integer >= 1)");
  EXPECT_EQ(error_of({"--epochs", "9223372036854775808"}),
            "option '--epochs': '9223372036854775808' is out of range (expected an integer >= 1)");
  EXPECT_EQ(error_of({"--momentum", "5"}),
            "option '--momentum': '5' is out of range (expected a number in [0, 1))");
  EXPECT_EQ(error_of({"--momentum", "1"}),
            "option '--momentum': '1' is out of range (expected a number in [0, 1))");
  EXPECT_EQ(error_of({"--lr", "0"}), "option '--lr': '0' is out of range (expected a number > 0)");
  EXPECT_EQ(error_of({"--threads", "4294967297"}),
            "option '--threads': '4294967297' is out of range (expected an integer in [0, 4096])");
  EXPECT_EQ(error_of({"--model", "vgg"}), "option '--model': 'vgg' is not one of lenet5, mlp");
  EXPECT_EQ(error_of({"--epochs", "9223372036854775807"}), "");  // the largest that fits
}

TEST(Options, NoTargetChangesOnAnError) {
  Parser p;
  p.cli.parse_args({"--epochs", "4"});
  EXPECT_THROW(p.cli.parse_args({"--epochs", "5", "--lr", "nan"}), UsageError);
  EXPECT_EQ(p.o.epochs, 4);
}

TEST(Options, CrossOptionChecksBecomeUsageErrors) {
  Parser p;
  try {
    p.cli.parse_args({"--clip", "2"}, [&] { NABLA_CHECK(p.o.clip < 1, "--clip ", p.o.clip, ": too large"); });
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "--clip 2: too large");
  }
}

std::filesystem::path temp_file(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(getpid()));
  std::ofstream(path) << text;
  return path;
}

TEST(Options, ConfigFileHoldsTheSameOptionsAndTheCommandLineWins) {
  auto cfg = temp_file("nabla_options.cfg", "# a run\nmodel = mlp\nepochs = 3\nlr = 0.2\nnesterov = true\n");
  Parser p;
  p.cli.parse_args({"--config", cfg.string(), "--epochs", "7"});
  EXPECT_EQ(p.o.model, "mlp");
  EXPECT_EQ(p.o.epochs, 7);
  EXPECT_EQ(p.o.lr, 0.2);
  EXPECT_TRUE(p.o.nesterov);
  EXPECT_TRUE(p.cli.given("lr"));

  // Values in a file go through the same checks.
  auto bad = temp_file("nabla_options_bad.cfg", "lr = nan\n");
  EXPECT_EQ(error_of({"--config", bad.string()}), "option '--lr': 'nan' is not a finite number");
  auto unknown = temp_file("nabla_options_unknown.cfg", "bogus = 1\n");
  EXPECT_EQ(error_of({"--config", unknown.string()}),
            "config file '" + unknown.string() + "': unrecognised option 'bogus'");
  EXPECT_EQ(error_of({"--config", "/no/such.cfg"}),
            "option '--config': '/no/such.cfg' is not a readable file");

  // --print-config writes a file that reads back to the same values.
  Parser q;
  q.cli.parse_args({"--model", "mlp", "--lr", "0.3", "--nesterov", "--print-config"});
  EXPECT_TRUE(q.cli.print_config_requested());
  auto round = temp_file("nabla_options_round.cfg", q.cli.config_text());
  Parser r;
  r.cli.parse_args({"--config", round.string()});
  EXPECT_EQ(r.o.model, "mlp");
  EXPECT_EQ(r.o.lr, 0.3);
  EXPECT_TRUE(r.o.nesterov);
  EXPECT_EQ(r.cli.config_text(), q.cli.config_text());
  for (const auto& f : {cfg, bad, unknown, round}) std::filesystem::remove(f);
}

// Found by fuzz/fuzz_options.cpp: Boost's config parser trims the ends of a value and cuts it at '#', so
// --print-config wrote `out = e<TAB>`, which read back as "e". Such a value is now written as a comment
// (it reads back as the default); every other value still reads back unchanged.
// Found by fuzz/fuzz_options.cpp: Boost 1.74 expands %value% in its messages until none is left, so a bad
// value containing "%value%" hung the parser. The message now shows the user's '%' as "\%".
TEST(Options, BadValueContainingABoostPlaceholderStillGivesAMessage) {
  auto cfg = temp_file("nabla_options_placeholder.cfg", "nesterov = t%value%\n");
  const std::string e = error_of({"--config", cfg.string()});
  EXPECT_NE(e.find("t\\%value\\%"), std::string::npos) << e;
  EXPECT_NE(e.find("nesterov"), std::string::npos) << e;
  std::filesystem::remove(cfg);
  // Option names holding a placeholder: the same loop in "unrecognised option '--%option%'".
  for (const char* arg : {"--%option%", "--%canonical_option%=1", "--%original_token%", "--x%prefix%"})
    EXPECT_NE(error_of({arg}).find("unrecognised option"), std::string::npos) << error_of({arg});
}

TEST(Options, PrintConfigNeverWritesAValueThatReadsBackDifferently) {
  for (const std::string out : {"e\t", " lead", "trail ", "a#b", "two\nlines", "cr\r", "#"}) {
    Parser q;
    q.cli.parse_args({"--out", out, "--model", "mlp"});
    EXPECT_EQ(q.o.out, out);
    const std::string text = q.cli.config_text();
    EXPECT_NE(text.find("# out = (a value with '#', a line break, or a space or tab at an end"),
              std::string::npos)
        << text;
    auto file = temp_file("nabla_options_unholdable.cfg", text);
    Parser r;
    r.cli.parse_args({"--config", file.string()});
    EXPECT_EQ(r.o.out, "") << "value " << out;
    EXPECT_EQ(r.o.model, "mlp");
    std::filesystem::remove(file);
  }
  for (const std::string out : {"a b", "x=y", "/tmp/with space/f.bin", "\x01ctl"}) {
    Parser q;
    q.cli.parse_args({"--out", out});
    auto file = temp_file("nabla_options_holdable.cfg", q.cli.config_text());
    Parser r;
    r.cli.parse_args({"--config", file.string()});
    EXPECT_EQ(r.o.out, out);
    std::filesystem::remove(file);
  }
}

TEST(Options, HelpShowsDefaultsRangesUnitsAndExamples) {
  Parser p;
  p.cli.parse_args({"--help"});
  EXPECT_TRUE(p.cli.help_requested());
  p.cli.parse_args({"-h"});
  EXPECT_TRUE(p.cli.help_requested());
  const std::string h = p.cli.help();
  for (const char* part :
       {"Usage: demo [options]", "a test program", "Training:", "--model ARG (=lenet5)",
        "network: lenet5 | mlp", "--batch-size N (=64)", "batch; >= 1 examples", "--momentum X (=0.9)",
        "momentum; in [0, 1)", "--out FILE", "--nesterov", "--config FILE", "--print-config",
        "Examples:", "  demo --model mlp --epochs 3\n      a short MLP run"})
    EXPECT_NE(h.find(part), std::string::npos) << "missing '" << part << "' in\n" << h;
  EXPECT_EQ(h.find("--out FILE (="), std::string::npos) << "an empty default shows no (=)\n" << h;
}

}  // namespace
}  // namespace nabla::apps
