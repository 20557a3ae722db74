// Unit tests of examples/common/cli.hpp, the example programs' command-line parser: values,
// flags, numbers (good, malformed, out of range), the messages and exit codes of a bad command
// line, --help, repeated options, required options, run() and catch_errors.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"

namespace {

constexpr const char* kUsage = "usage: prog [--out DIR]\n  --out DIR  where\n";

cli::Result parse(cli::Parser& p, std::vector<std::string_view> args) { return p.parse_args(args); }

// A bad command line: exit code 1, nothing on standard output, err on standard error.
void check_error(const cli::Result& r, const std::string& err) {
  REQUIRE(r.exit_code.has_value());
  CHECK(*r.exit_code == 1);
  CHECK(r.out.empty());
  CHECK(r.err == err);
}

}  // namespace

TEST_CASE("values: strings, paths, optionals and callbacks") {
  std::string name = "default";
  std::filesystem::path dir = "/usr/share";
  std::optional<std::filesystem::path> med;
  std::optional<std::string> json;
  std::vector<std::string> seen;
  cli::Parser p("prog", kUsage);
  p.value("--name", name).value("--dir", dir).value("--med", med).value("--json", json);
  p.value("--mode", [&](std::string_view v) { seen.emplace_back(v); });

  SUBCASE("nothing given: defaults stay, go on") {
    const cli::Result r = parse(p, {});
    CHECK_FALSE(r.exit_code.has_value());
    CHECK(r.out.empty());
    CHECK(r.err.empty());
    CHECK(name == "default");
    CHECK(dir == "/usr/share");
    CHECK_FALSE(med.has_value());
    CHECK_FALSE(json.has_value());
    CHECK_FALSE(p.seen("--dir"));
  }
  SUBCASE("all given") {
    const cli::Result r =
        parse(p, {"--name", "x y", "--dir", "/tmp/d", "--med", "m.jsonl", "--json", "-", "--mode", "fast"});
    CHECK_FALSE(r.exit_code.has_value());
    CHECK(r.err.empty());
    CHECK(name == "x y");
    CHECK(dir == "/tmp/d");
    REQUIRE(med.has_value());
    CHECK(*med == "m.jsonl");
    REQUIRE(json.has_value());
    CHECK(*json == "-");
    CHECK(seen == std::vector<std::string>{"fast"});
    CHECK(p.seen("--dir"));
    CHECK(p.seen("--mode"));
  }
  SUBCASE("the argument after an option is its value, whatever it looks like") {
    const cli::Result r = parse(p, {"--name", "--help", "--dir", ""});
    CHECK_FALSE(r.exit_code.has_value());
    CHECK(name == "--help");
    CHECK(dir.empty());
  }
  SUBCASE("repeated options: the last one wins, each occurrence calls the setter") {
    const cli::Result r = parse(p, {"--name", "a", "--mode", "1", "--name", "b", "--mode", "2"});
    CHECK_FALSE(r.exit_code.has_value());
    CHECK(name == "b");
    CHECK(seen == std::vector<std::string>{"1", "2"});
  }
  SUBCASE("seen() is reset by the next parse") {
    CHECK_FALSE(parse(p, {"--dir", "a"}).exit_code.has_value());
    CHECK(p.seen("--dir"));
    CHECK_FALSE(parse(p, {}).exit_code.has_value());
    CHECK_FALSE(p.seen("--dir"));
    CHECK_THROWS_AS(static_cast<void>(p.seen("--no-such")), std::logic_error);
  }
}

TEST_CASE("a missing value and an unknown argument: message and usage on stderr, exit code 1") {
  std::string out = "default";
  cli::Parser p("nexa-thing", kUsage);
  p.value("--out", out);

  SUBCASE("missing value") {
    check_error(parse(p, {"--out"}), std::string("nexa-thing: --out needs a value\n") + kUsage);
  }
  SUBCASE("unknown argument") {
    check_error(parse(p, {"--no-such-option"}),
                std::string("nexa-thing: unknown argument '--no-such-option'\n") + kUsage);
  }
  SUBCASE("no --name=value form, no positional arguments") {
    CHECK(parse(p, {"--out=x"}).err.starts_with("nexa-thing: unknown argument '--out=x'\n"));
    CHECK(parse(p, {"file.txt"}).err.starts_with("nexa-thing: unknown argument 'file.txt'\n"));
  }
  SUBCASE("the first error ends parsing; earlier setters have run") {
    const cli::Result r = parse(p, {"--out", "a", "--bad", "--out", "b"});
    CHECK(r.exit_code == 1);
    CHECK(out == "a");
  }
}

TEST_CASE("--help and -h: usage on stdout, exit code 0, the rest is not read") {
  std::string out = "default";
  cli::Parser p("prog", kUsage);
  p.value("--out", out);
  for (const std::string_view help : {"--help", "-h"}) {
    CAPTURE(help);
    const cli::Result r = parse(p, {help, "--no-such-option", "--out", "x"});
    REQUIRE(r.exit_code.has_value());
    CHECK(*r.exit_code == 0);
    CHECK(r.out == kUsage);
    CHECK(r.err.empty());
    CHECK(out == "default");
  }
  // An error before --help wins.
  CHECK(parse(p, {"--bad", "--help"}).exit_code == 1);
  CHECK(p.usage() == kUsage);
  CHECK(p.program() == "prog");
}

TEST_CASE("flags") {
  bool int8 = false;
  bool verbose = false;
  cli::Parser p("prog", kUsage);
  p.flag("--int8", int8).flag("--verbose", verbose);
  CHECK_FALSE(parse(p, {"--int8"}).exit_code.has_value());
  CHECK(int8);
  CHECK_FALSE(verbose);
  // A flag takes no value: what follows is the next argument.
  const cli::Result r = parse(p, {"--verbose", "yes"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.starts_with("prog: unknown argument 'yes'\n"));
  CHECK(verbose);
}

TEST_CASE("double options") {
  double alpha = 1.0;
  std::optional<double> floor;
  double unit = 0.5;
  cli::Parser p("nexa-nb-baseline", kUsage);
  p.number("--alpha", alpha).number("--min-test-accuracy", floor).number("--unit", unit, {.min = 0, .max = 1});

  SUBCASE("good numbers") {
    CHECK_FALSE(parse(p, {"--alpha", "0.25", "--min-test-accuracy", "8e-1", "--unit", "1"}).exit_code.has_value());
    CHECK(alpha == 0.25);
    REQUIRE(floor.has_value());
    CHECK(*floor == doctest::Approx(0.8));
    CHECK(unit == 1.0);
    CHECK_FALSE(parse(p, {"--alpha", "-3"}).exit_code.has_value());
    CHECK(alpha == -3.0);
    CHECK_FALSE(parse(p, {"--unit", "0"}).exit_code.has_value());
    CHECK(unit == 0.0);
  }
  SUBCASE("not a number: the message, no usage, exit code 1; the option keeps its value") {
    for (const std::string_view bad : {"abc", "", "1.5x", "1.5 ", "0.3.4", "nan", "inf", "-inf", "1e999"}) {
      CAPTURE(bad);
      check_error(parse(p, {"--alpha", bad}),
                  "nexa-nb-baseline: --alpha needs a number, got '" + std::string(bad) + "'\n");
      CHECK(alpha == 1.0);
    }
    const cli::Result r = parse(p, {"--min-test-accuracy", "high"});
    CHECK(r.err == "nexa-nb-baseline: --min-test-accuracy needs a number, got 'high'\n");
    CHECK_FALSE(floor.has_value());
  }
  SUBCASE("missing number") {
    check_error(parse(p, {"--alpha"}), std::string("nexa-nb-baseline: --alpha needs a value\n") + kUsage);
  }
  SUBCASE("outside the declared range") {
    for (const std::string_view bad : {"-0.01", "1.5", "2"}) {
      CAPTURE(bad);
      check_error(parse(p, {"--unit", bad}),
                  "nexa-nb-baseline: --unit must be in [0, 1], got '" + std::string(bad) + "'\n");
      CHECK(unit == 0.5);
    }
  }
  SUBCASE("one-sided ranges") {
    double positive = 1;
    double small = 0;
    cli::Parser q("prog", kUsage);
    q.number("--positive", positive, {.min = 1e-9}).number("--small", small, {.max = 10});
    check_error(parse(q, {"--positive", "0"}), "prog: --positive must be >= 1e-09, got '0'\n");
    check_error(parse(q, {"--small", "11"}), "prog: --small must be <= 10, got '11'\n");
    CHECK_FALSE(parse(q, {"--positive", "3", "--small", "-1e300"}).exit_code.has_value());
    CHECK(positive == 3.0);
    CHECK(small == -1e300);
  }
  SUBCASE("repeated: the last one wins") {
    CHECK_FALSE(parse(p, {"--alpha", "2", "--alpha", "3"}).exit_code.has_value());
    CHECK(alpha == 3.0);
  }
}

TEST_CASE("integer options") {
  std::int64_t seed = 7;
  std::size_t steps = 100;
  std::optional<std::int64_t> limit;
  int batch = 32;
  std::int8_t tiny = 0;
  cli::Parser p("prog", kUsage);
  p.number("--seed", seed).number("--steps", steps, {.min = 1}).number("--limit", limit);
  p.number("--batch", batch, {.min = 1, .max = 4096}).number("--tiny", tiny);

  SUBCASE("good numbers") {
    CHECK_FALSE(parse(p, {"--seed", "-9223372036854775808", "--steps", "18446744073709551615", "--limit", "0",
                          "--batch", "4096", "--tiny", "-128"})
                    .exit_code.has_value());
    CHECK(seed == INT64_MIN);
    CHECK(steps == SIZE_MAX);
    CHECK(limit == 0);
    CHECK(batch == 4096);
    CHECK(tiny == -128);
  }
  SUBCASE("not a number, trailing junk") {
    for (const std::string_view bad : {"x", "", "12abc", "12 ", " 12", "+12", "0x10", "--steps"}) {
      CAPTURE(bad);
      check_error(parse(p, {"--seed", bad}), "prog: --seed needs a number, got '" + std::string(bad) + "'\n");
      CHECK(seed == 7);
    }
  }
  SUBCASE("a number but not an integer") {
    for (const std::string_view bad : {"1.5", "1e3", "-0.5"}) {
      CAPTURE(bad);
      check_error(parse(p, {"--seed", bad}), "prog: --seed needs an integer, got '" + std::string(bad) + "'\n");
    }
  }
  SUBCASE("outside the declared range or the type's") {
    check_error(parse(p, {"--steps", "0"}), "prog: --steps must be >= 1, got '0'\n");
    check_error(parse(p, {"--steps", "-5"}), "prog: --steps must be >= 1, got '-5'\n");
    check_error(parse(p, {"--steps", "99999999999999999999999"}),
                "prog: --steps must be in [1, 18446744073709551615], got '99999999999999999999999'\n");
    check_error(parse(p, {"--batch", "0"}), "prog: --batch must be in [1, 4096], got '0'\n");
    check_error(parse(p, {"--batch", "4097"}), "prog: --batch must be in [1, 4096], got '4097'\n");
    check_error(parse(p, {"--tiny", "128"}), "prog: --tiny must be <= 127, got '128'\n");
    check_error(parse(p, {"--tiny", "-129"}), "prog: --tiny must be >= -128, got '-129'\n");
    check_error(parse(p, {"--seed", "9223372036854775808"}),
                "prog: --seed must be <= 9223372036854775807, got '9223372036854775808'\n");
    CHECK(parse(p, {"--limit", "-99999999999999999999"}).exit_code == 1);
    CHECK(steps == 100);
    CHECK(batch == 32);
    CHECK(tiny == 0);
    CHECK_FALSE(limit.has_value());
  }
  SUBCASE("repeated: the last one wins") {
    CHECK_FALSE(parse(p, {"--steps", "5", "--batch", "2", "--steps", "6"}).exit_code.has_value());
    CHECK(steps == 6);
    CHECK(batch == 2);
  }
}

TEST_CASE("declaring an option twice, or --help, is a programming error") {
  std::string a;
  bool b = false;
  cli::Parser p("prog", kUsage);
  p.value("--out", a);
  CHECK_THROWS_AS(p.flag("--out", b), std::logic_error);
  CHECK_THROWS_AS(p.flag("--help", b), std::logic_error);
  CHECK_THROWS_AS(p.value("-h", a), std::logic_error);
}

TEST_CASE("required options: checked after all the arguments") {
  std::string corpus;
  std::string out;
  cli::Parser p("nexa-nb-baseline", kUsage);
  p.value("--corpus", corpus).value("--out", out);
  p.required("--corpus", "--corpus DIR is required (run nexa-gcide-corpus --out DIR first)");

  check_error(
      parse(p, {"--out", "x"}),
      std::string("nexa-nb-baseline: --corpus DIR is required (run nexa-gcide-corpus --out DIR first)\n") + kUsage);
  CHECK(out == "x");
  CHECK_FALSE(parse(p, {"--out", "y", "--corpus", "c"}).exit_code.has_value());
  CHECK(corpus == "c");
  // --help and a bad argument come first.
  CHECK(parse(p, {"--help"}).exit_code == 0);
  CHECK(parse(p, {"--bad"}).err.starts_with("nexa-nb-baseline: unknown argument '--bad'\n"));
  CHECK_THROWS_AS(p.required("--no-such", "message"), std::logic_error);
}

TEST_CASE("run: parse, then the body, whose exceptions become exit code 1") {
  std::vector<std::string> storage = {"prog", "--n", "5"};
  std::vector<char*> argv;
  for (std::string& a : storage) argv.push_back(a.data());
  const int argc = static_cast<int>(argv.size());

  std::int64_t n = 0;
  int calls = 0;
  cli::Parser p("prog", kUsage);
  p.number("--n", n);
  CHECK(p.run(argc, argv.data(), [&] { return ++calls == 1 ? 3 : 4; }) == 3);
  CHECK(n == 5);
  CHECK(calls == 1);
  CHECK(p.run(argc, argv.data(), []() -> int { throw std::runtime_error("boom (expected)"); }) == 1);

  storage[2] = "five";  // "prog: --n needs a number, got 'five'" on stderr: the body does not run
  argv[2] = storage[2].data();
  CHECK(p.run(argc, argv.data(), [&] { return ++calls; }) == 1);
  CHECK(calls == 1);
  // No arguments at all (argc 1, or even 0).
  CHECK(p.run(1, argv.data(), [] { return 0; }) == 0);
  CHECK(p.run(0, argv.data(), [] { return 0; }) == 0);
}

TEST_CASE("catch_errors: the exit code of the body, or 1 and the message for an exception") {
  CHECK(cli::catch_errors("prog", [] { return 0; }) == 0);
  CHECK(cli::catch_errors("prog", [] { return 2; }) == 2);
  // The message goes to stderr ("prog: boom (expected)"); the exit code is 1.
  CHECK(cli::catch_errors("prog", []() -> int { throw std::runtime_error("boom (expected)"); }) == 1);
}
