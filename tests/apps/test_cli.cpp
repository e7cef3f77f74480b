// The training binaries' option parser (apps/common/cli.h, our replacement for Boost.Program_options, which
// the GPU machine lacks): both value syntaxes, switches, defaults, every rejected command line, --help.
#include <gtest/gtest.h>

#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "apps/common/cli.h"

namespace nabla::apps {
namespace {

struct Opts {
  std::string model, out;
  int64_t epochs = -7;
  uint64_t seed = 7;
  double lr = -7;
  bool nesterov = true, help = true;
};

// A parser like train_classifier's, over `o`.
OptionParser make(Opts& o) {
  OptionParser p("demo: a test program");
  p.add_switch("help,h", &o.help, "show this help")
      .add("model,m", &o.model, "lenet5", "lenet5 | mlp")
      .add("epochs", &o.epochs, 10, "passes over the training set")
      .add("seed", &o.seed, 0, "seed of every random draw")
      .add("lr", &o.lr, 0.05, "peak learning rate")
      .add_switch("nesterov", &o.nesterov, "Nesterov momentum")
      .add("out", &o.out, "", "output file");
  return p;
}

// The CliError message for `args`, or "" when they parse.
std::string error_of(const std::vector<std::string>& args) {
  Opts o;
  OptionParser p = make(o);
  try {
    p.parse(args);
  } catch (const CliError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Cli, DefaultsWhenNothingIsGiven) {
  Opts o;
  OptionParser p = make(o);
  p.parse({});
  EXPECT_EQ(o.model, "lenet5");
  EXPECT_EQ(o.epochs, 10);
  EXPECT_EQ(o.seed, 0u);
  EXPECT_EQ(o.lr, 0.05);
  EXPECT_FALSE(o.nesterov);  // switches start false whatever the variable held
  EXPECT_FALSE(o.help);
  EXPECT_EQ(o.out, "");
  EXPECT_FALSE(p.given("model"));
  EXPECT_FALSE(p.given("help"));
}

TEST(Cli, SpaceAndEqualsSyntaxes) {
  Opts o;
  OptionParser p = make(o);
  p.parse(
      {"--model", "mlp", "--epochs=3", "--seed", "18446744073709551615", "--lr=1e-3", "--out", "a=b.jsonl"});
  EXPECT_EQ(o.model, "mlp");
  EXPECT_EQ(o.epochs, 3);
  EXPECT_EQ(o.seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(o.lr, 1e-3);
  EXPECT_EQ(o.out, "a=b.jsonl");  // only the first '=' of --name=value splits
  EXPECT_TRUE(p.given("model"));
  EXPECT_TRUE(p.given("lr"));
  EXPECT_FALSE(p.given("nesterov"));
}

TEST(Cli, EqualsSyntaxTakesAnyValue) {
  Opts o;
  OptionParser p = make(o);
  p.parse({"--model=--odd", "--out="});
  EXPECT_EQ(o.model, "--odd");
  EXPECT_EQ(o.out, "");
}

TEST(Cli, NegativeNumbersAreValues) {
  Opts o;
  OptionParser p = make(o);
  p.parse({"--epochs", "-3", "--lr", "-2.5", "--model", "-x"});  // -x is no declared alias: a value
  EXPECT_EQ(o.epochs, -3);
  EXPECT_EQ(o.lr, -2.5);
  EXPECT_EQ(o.model, "-x");
}

TEST(Cli, SwitchesAndShortAliases) {
  Opts o;
  OptionParser p = make(o);
  p.parse({"--nesterov", "-m", "mlp", "-h"});
  EXPECT_TRUE(o.nesterov);
  EXPECT_TRUE(o.help);
  EXPECT_EQ(o.model, "mlp");
  EXPECT_TRUE(p.given("help"));
  EXPECT_TRUE(p.given("model"));
}

TEST(Cli, ParsingAgainStartsFromTheDefaults) {
  Opts o;
  OptionParser p = make(o);
  p.parse({"--nesterov", "--epochs", "4"});
  p.parse({"--lr", "0.5"});
  EXPECT_FALSE(o.nesterov);
  EXPECT_EQ(o.epochs, 10);
  EXPECT_EQ(o.lr, 0.5);
  EXPECT_FALSE(p.given("epochs"));
}

TEST(Cli, ArgcArgv) {
  Opts o;
  OptionParser p = make(o);
  const char* argv[] = {"demo", "--epochs", "5", "--nesterov"};
  p.parse(4, argv);
  EXPECT_EQ(o.epochs, 5);
  EXPECT_TRUE(o.nesterov);
}

TEST(Cli, UnknownOptions) {
  std::string e = error_of({"--bogus"});
  EXPECT_EQ(e, "unrecognised option '--bogus'");
  EXPECT_EQ(error_of({"--bogus=3"}), "unrecognised option '--bogus'");
  EXPECT_EQ(error_of({"-x"}), "unrecognised option '-x'");
  EXPECT_EQ(error_of({"-mlp"}), "unrecognised option '-mlp'");               // no -xVALUE form
  EXPECT_EQ(error_of({"--Model", "mlp"}), "unrecognised option '--Model'");  // names are case-sensitive
  EXPECT_TRUE(contains(error_of({"--epochs", "3", "--bogus", "1"}), "'--bogus'"));
}

TEST(Cli, BareArguments) {
  EXPECT_TRUE(contains(error_of({"mlp"}), "unexpected argument 'mlp'"));
  EXPECT_TRUE(contains(error_of({"--epochs", "3", "4"}), "unexpected argument '4'"));
  EXPECT_TRUE(contains(error_of({"--"}), "unexpected argument '--'"));
  EXPECT_TRUE(contains(error_of({"-"}), "unexpected argument '-'"));
}

TEST(Cli, MissingValues) {
  EXPECT_EQ(error_of({"--epochs"}), "option '--epochs' needs a value");
  EXPECT_EQ(error_of({"-m"}), "option '--model' needs a value");
  // An option where the value should be: the value is missing (not "--nesterov" as a model name).
  std::string e = error_of({"--model", "--nesterov"});
  EXPECT_TRUE(contains(e, "option '--model' needs a value")) << e;
  EXPECT_TRUE(contains(e, "'--nesterov'")) << e;
  EXPECT_TRUE(contains(e, "--model=VALUE")) << e;
  EXPECT_TRUE(contains(error_of({"--model", "--bogus"}), "option '--model' needs a value"));
  EXPECT_TRUE(contains(error_of({"--model", "-h"}), "option '--model' needs a value"));
}

TEST(Cli, BadNumbers) {
  EXPECT_EQ(error_of({"--epochs", "ten"}), "option '--epochs': 'ten' is not an integer");
  EXPECT_EQ(error_of({"--epochs=3.5"}), "option '--epochs': '3.5' is not an integer");
  EXPECT_EQ(error_of({"--epochs", "3x"}), "option '--epochs': '3x' is not an integer");
  EXPECT_EQ(error_of({"--epochs", " 3"}), "option '--epochs': ' 3' is not an integer");
  EXPECT_EQ(error_of({"--epochs="}), "option '--epochs': '' is not an integer");
  EXPECT_EQ(error_of({"--epochs", "1e3"}), "option '--epochs': '1e3' is not an integer");
  EXPECT_EQ(error_of({"--epochs", "99999999999999999999"}),
            "option '--epochs': '99999999999999999999' is out of range for an integer");
  EXPECT_EQ(error_of({"--seed", "-1"}), "option '--seed': '-1' is not a non-negative integer");
  EXPECT_EQ(error_of({"--seed", "18446744073709551616"}),
            "option '--seed': '18446744073709551616' is out of range for a non-negative integer");
  EXPECT_EQ(error_of({"--lr", "fast"}), "option '--lr': 'fast' is not a number");
  EXPECT_EQ(error_of({"--lr", "0.1.2"}), "option '--lr': '0.1.2' is not a number");
  EXPECT_EQ(error_of({"--lr", "1e999"}), "option '--lr': '1e999' is out of range for a number");
  EXPECT_EQ(error_of({"--lr", "nan"}), "option '--lr': 'nan' is not a finite number");
  EXPECT_EQ(error_of({"--lr", "inf"}), "option '--lr': 'inf' is not a finite number");
}

TEST(Cli, RepeatedOptions) {
  EXPECT_EQ(error_of({"--epochs", "3", "--epochs", "4"}), "option '--epochs' is given more than once");
  EXPECT_EQ(error_of({"--epochs=3", "--epochs", "3"}), "option '--epochs' is given more than once");
  EXPECT_EQ(error_of({"--nesterov", "--nesterov"}), "option '--nesterov' is given more than once");
  EXPECT_EQ(error_of({"-m", "mlp", "--model", "mlp"}), "option '--model' is given more than once");
}

TEST(Cli, SwitchesTakeNoValue) {
  EXPECT_EQ(error_of({"--nesterov=true"}), "option '--nesterov' is a switch and takes no value (got 'true')");
  EXPECT_TRUE(contains(error_of({"--nesterov", "true"}), "unexpected argument 'true'"));
}

TEST(Cli, ErrorsLeaveTheTargetsAlone) {
  Opts o;
  OptionParser p = make(o);
  EXPECT_THROW(p.parse({"--epochs", "3", "--model", "mlp", "--lr", "x"}), CliError);
  EXPECT_EQ(o.epochs, -7);
  EXPECT_EQ(o.model, "");
  EXPECT_TRUE(o.nesterov);
}

TEST(Cli, CliErrorIsANablaError) {
  Opts o;
  OptionParser p = make(o);
  EXPECT_THROW(p.parse({"--bogus"}), Error);
}

TEST(Cli, BadDeclarations) {
  std::string s;
  int64_t i = 0;
  bool b = false;
  OptionParser p("x");
  p.add("name,n", &s, "", "a name");
  EXPECT_THROW(p.add("name", &i, 0, "again"), Error);
  EXPECT_THROW(p.add("other,n", &i, 0, "alias again"), Error);
  EXPECT_THROW(p.add("", &i, 0, "no name"), Error);
  EXPECT_THROW(p.add("--dashes", &i, 0, "dashes"), Error);
  EXPECT_THROW(p.add("two words", &i, 0, "space"), Error);
  EXPECT_THROW(p.add("long,xy", &i, 0, "long alias"), Error);
  EXPECT_THROW(p.add_switch("flag,", &b, "empty alias"), Error);
  EXPECT_THROW(p.add("null", static_cast<int64_t*>(nullptr), 0, "null target"), Error);
  p.add("count,c", &i, 3, "fine");
  p.parse({"-c", "4"});
  EXPECT_EQ(i, 4);
}

// The layout of Boost.Program_options' options_description, which --help printed before.
TEST(Cli, HelpListsEveryOptionWithItsDefault) {
  Opts o;
  OptionParser p = make(o);
  const std::string expected =
      "demo: a test program:\n"
      "  -h [ --help ]                show this help\n"
      "  -m [ --model ] arg (=lenet5) lenet5 | mlp\n"
      "  --epochs arg (=10)           passes over the training set\n"
      "  --seed arg (=0)              seed of every random draw\n"
      "  --lr arg (=0.05)             peak learning rate\n"
      "  --nesterov                   Nesterov momentum\n"
      "  --out arg                    output file\n";
  EXPECT_EQ(p.help(), expected);
}

TEST(Cli, HelpColumnAndWrapping) {
  std::string dir, sched;
  double wd = 0, clip = 0;
  int64_t steps = 0, every = 0;
  OptionParser p("train: train");
  p.add("data-dir", &dir, "/usr/share/datasets/fashion-mnist",
        "folder with the dataset files (image-folder: with train/ and val/)")
      .add("weight-decay", &wd, 5e-4, "weight decay")
      .add("clip", &clip, 0.0, "clip")
      .add("max-steps", &steps, 0, "")
      .add("print-every", &every, 100, "steps between progress lines when not on a terminal")
      .add("schedule", &sched, "cosine",
           "constant | step:size=N,gamma=G | multistep:milestones=a;b | cosine | poly:power=P\nsecond "
           "paragraph");
  // The option column is capped at 39 (+1): longer first columns put the help on the next line. Help text
  // wraps at spaces, up to column 79; '\n' starts a new line.
  const std::string expected =
      "train: train:\n"
      "  --data-dir arg (=/usr/share/datasets/fashion-mnist)\n"
      "                                        folder with the dataset files\n"
      "                                        (image-folder: with train/ and val/)\n"
      "  --weight-decay arg (=0.0005)          weight decay\n"
      "  --clip arg (=0)                       clip\n"
      "  --max-steps arg (=0)\n"
      "  --print-every arg (=100)              steps between progress lines when not\n"
      "                                        on a terminal\n"
      "  --schedule arg (=cosine)              constant | step:size=N,gamma=G |\n"
      "                                        multistep:milestones=a;b | cosine |\n"
      "                                        poly:power=P\n"
      "                                        second paragraph\n";
  EXPECT_EQ(p.help(), expected);
  for (size_t start = 0, end; (end = expected.find('\n', start)) != std::string::npos; start = end + 1)
    EXPECT_LE(end - start, 79u);
}

TEST(Cli, HelpWithoutDescriptionAndStreaming) {
  bool v = false;
  OptionParser p("");
  p.add_switch("verbose,v", &v, "talk");
  EXPECT_EQ(p.help(), "  -v [ --verbose ]      talk\n");
  std::ostringstream os;
  os << p;
  EXPECT_EQ(os.str(), p.help());
}

}  // namespace
}  // namespace nabla::apps
