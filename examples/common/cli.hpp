// cli.hpp: the command-line parser of nexa's example programs (nexa-gcide-corpus,
// nexa-wordnet-eval, nexa-nb-baseline, and the trainers and CLIs to come), so that they all take
// their options, and explain a bad command line, the same way.
//
//   cli::Parser p("nexa-gcide-corpus", kUsage);
//   p.value("--dict-dir", opt.dict_dir);                        // std::string, std::filesystem::path, ...
//   p.value("--gcide", opt.gcide);                              // std::optional<...>: set when given
//   p.value("--mode", [&](std::string_view v) { ... });         // or any callback
//   p.number("--alpha", opt.alpha);                             // double (strtod, finite)
//   p.number("--steps", opt.steps, {.min = 1});                 // integers (from_chars), inclusive range
//   p.flag("--int8", opt.int8);                                 // sets true
//   p.required("--corpus", "--corpus DIR is required");        // the message when it is not given
//   return p.run(argc, argv, [&] { return run(opt); });         // parse, then run (catch_errors)
// or, to do more between parsing and running:
//   if (const auto exit_code = p.parse(argc, argv)) return *exit_code;   // nullopt: go on
//   ...
//   return cli::catch_errors("nexa-gcide-corpus", [&] { return run(opt); });
//
// The rules:
// - Every option is "--name VALUE" (two arguments; there is no "--name=VALUE" form, which is an
//   unknown argument) or a flag "--name". The argument after an option is its value whatever it
//   looks like ("--out --help" writes to a file named --help).
// - An option given twice: the last one wins (each occurrence calls the setter, in order).
// - --help or -h: the usage text on standard output, exit code 0 (later arguments are not read).
// - Errors, on standard error, exit code 1:
//     "<program>: unknown argument '<arg>'" and the usage text;
//     "<program>: <option> needs a value" and the usage text (the option is the last argument);
//     "<program>: <option> needs a number, got '<text>'" (empty, not a number, trailing characters,
//       not finite: nan, inf, 1e999); no usage text;
//     "<program>: <option> needs an integer, got '<text>'" (an integer option given 1.5 or 1e3);
//     "<program>: <option> must be in [lo, hi], got '<text>'": outside the range the option was
//       declared with, or for an integer outside its type's ("must be >= lo" below a range with no
//       upper limit, "must be <= hi" above one with no lower limit); no usage text.
//     "<program>: <message>" and the usage text: a required() option was not given (checked
//       after all the arguments, in the order required() was called).
//   The first error ends parsing; setters of earlier arguments have run.
// - Doubles are read with strtod (leading blanks and hexadecimal allowed, as the C library does),
//   integers with std::from_chars (decimal, no blanks, no '+').
// The parser never exits the process: parse() returns the exit code for main() to return.
#pragma once

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace cli {

// An inclusive range for number(); the default is no limit (the type's own).
template <class T>
struct Range {
  T min = std::numeric_limits<T>::lowest();
  T max = std::numeric_limits<T>::max();
};

template <class T>
concept Integer = std::integral<T> && !std::same_as<T, bool>;
template <class T>
concept Number = Integer<T> || std::same_as<T, double>;

// What parsing a command line came to: the exit code main() returns (nullopt: run the program)
// and the text for standard output and standard error. parse() prints it; tests read it.
struct Result {
  std::optional<int> exit_code;
  std::string out;
  std::string err;
};

namespace detail {

inline std::string format_number(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}
template <Integer T>
std::string format_number(T x) {
  return std::to_string(x);
}

// All of text as a finite double (strtod); nullopt on anything else (empty, trailing characters).
inline std::optional<double> parse_double(std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(x)) return std::nullopt;
  return x;
}

}  // namespace detail

class Parser {
 public:
  // usage: the whole usage text, printed as it is (end it with a newline).
  Parser(std::string program, std::string usage) : program_(std::move(program)), usage_(std::move(usage)) {}

  const std::string& program() const { return program_; }
  const std::string& usage() const { return usage_; }

  // An option with a value: the callback gets the argument after it.
  Parser& value(std::string name, std::function<void(std::string_view)> set) {
    add(std::move(name), Kind::Value, [set = std::move(set)](std::string_view v) -> std::string {
      set(v);
      return {};
    });
    return *this;
  }
  // An option stored into out (std::string, std::filesystem::path, ...).
  template <class T>
  requires std::constructible_from<T, std::string_view> Parser& value(std::string name, T& out) {
    return value(std::move(name), [&out](std::string_view v) { out = T(v); });
  }
  // An optional option: out holds a value once the option is given.
  template <class T>
  requires std::constructible_from<T, std::string_view> Parser& value(std::string name, std::optional<T>& out) {
    return value(std::move(name), [&out](std::string_view v) { out.emplace(v); });
  }

  // A number option, double or integer (see the top of the file for the messages).
  template <Number T>
  Parser& number(std::string name, T& out, Range<T> range = {}) {
    return add_number<T>(
        std::move(name), [&out](T x) { out = x; }, range);
  }
  template <Number T>
  Parser& number(std::string name, std::optional<T>& out, Range<T> range = {}) {
    return add_number<T>(
        std::move(name), [&out](T x) { out = x; }, range);
  }

  // A flag: out becomes true when it is given.
  Parser& flag(std::string name, bool& out) {
    add(std::move(name), Kind::Flag, [&out](std::string_view) -> std::string {
      out = true;
      return {};
    });
    return *this;
  }

  // The option must be given; message (after "<program>: ") says so when it is not.
  Parser& required(std::string_view name, std::string message) {
    if (find(name) == nullptr) throw std::logic_error("cli::Parser::required: no option " + std::string(name));
    required_.emplace_back(std::string(name), std::move(message));
    return *this;
  }

  // Whether the last parse met the option (by its name as declared).
  bool seen(std::string_view name) const {
    for (const Option& o : options_) {
      if (o.name == name) return o.seen;
    }
    throw std::logic_error("cli::Parser::seen: no option " + std::string(name));
  }

  // Parses args (the arguments after the program name) without printing anything.
  Result parse_args(std::span<const std::string_view> args) {
    for (Option& o : options_) o.seen = false;
    Result r;
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string_view a = args[i];
      if (a == "--help" || a == "-h") {
        r.out = usage_;
        r.exit_code = 0;
        return r;
      }
      Option* opt = find(a);
      if (opt == nullptr) {
        r.err = program_ + ": unknown argument '" + std::string(a) + "'\n" + usage_;
        r.exit_code = 1;
        return r;
      }
      std::string_view v;
      if (opt->kind == Kind::Value) {
        if (i + 1 >= args.size()) {
          r.err = program_ + ": " + opt->name + " needs a value\n" + usage_;
          r.exit_code = 1;
          return r;
        }
        v = args[++i];
      }
      if (std::string error = opt->set(v); !error.empty()) {
        r.err = program_ + ": " + opt->name + " " + error + "\n";
        r.exit_code = 1;
        return r;
      }
      opt->seen = true;
    }
    for (const auto& [name, message] : required_) {
      if (!seen(name)) {
        r.err = program_ + ": " + message + "\n" + usage_;
        r.exit_code = 1;
        return r;
      }
    }
    return r;
  }

  // Parses argv (argv[0] is the program) and prints what parse_args() has to say: the exit code
  // for main() to return, or nullopt to go on.
  std::optional<int> parse(int argc, char** argv) {
    std::vector<std::string_view> args;
    for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
    const Result r = parse_args(args);
    std::fputs(r.out.c_str(), stdout);
    std::fputs(r.err.c_str(), stderr);
    return r.exit_code;
  }

  // parse(), then body (the program, returning its exit code) through catch_errors(): the exit
  // code for main() to return.
  template <class Body>
  int run(int argc, char** argv, Body&& body);

 private:
  enum class Kind { Value, Flag };
  struct Option {
    std::string name;
    Kind kind;
    std::function<std::string(std::string_view)> set;  // the error after "<program>: <name> ", or ""
    bool seen = false;
  };

  void add(std::string name, Kind kind, std::function<std::string(std::string_view)> set) {
    if (name == "--help" || name == "-h" || find(name) != nullptr) {
      throw std::logic_error("cli::Parser: option " + name + " declared twice (or --help, -h, which are built in)");
    }
    options_.push_back(Option{std::move(name), kind, std::move(set)});
  }

  template <class T>
  Parser& add_number(std::string name, std::function<void(T)> set, Range<T> range) {
    add(std::move(name), Kind::Value, [set = std::move(set), range](std::string_view v) -> std::string {
      const std::string got = ", got '" + std::string(v) + "'";
      std::optional<T> x;
      bool outside = false;  // a number, outside T's range
      if constexpr (std::same_as<T, double>) {
        x = detail::parse_double(v);
      } else {
        T parsed{};
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
        if (end == v.data() + v.size() && !v.empty()) {
          if (ec == std::errc()) x = parsed;
          outside = ec == std::errc::result_out_of_range;
        }
        if constexpr (std::is_unsigned_v<T>) {
          // "-5" for an unsigned option: a number below the range, not "not a number".
          if (v.size() > 1 && v[0] == '-') {
            std::uintmax_t magnitude = 0;
            const auto [neg_end, neg_ec] = std::from_chars(v.data() + 1, v.data() + v.size(), magnitude);
            outside = neg_end == v.data() + v.size() &&
                      ((neg_ec == std::errc() && magnitude != 0) || neg_ec == std::errc::result_out_of_range);
          }
        }
        // 1.5, 1e3: a number in floating-point notation, which an integer option does not take.
        if (!x && !outside && v.find_first_of(".eE") != std::string_view::npos && detail::parse_double(v)) {
          return "needs an integer" + got;
        }
      }
      if (!outside && !x) return "needs a number" + got;
      if (outside || *x < range.min || *x > range.max) {
        constexpr T lowest = std::numeric_limits<T>::lowest();
        constexpr T highest = std::numeric_limits<T>::max();
        const bool below = outside ? v.starts_with('-') : *x < range.min;
        if (below && range.max == highest) return "must be >= " + detail::format_number(range.min) + got;
        if (!below && range.min == lowest) return "must be <= " + detail::format_number(range.max) + got;
        return "must be in [" + detail::format_number(range.min) + ", " + detail::format_number(range.max) + "]" + got;
      }
      set(*x);
      return {};
    });
    return *this;
  }

  Option* find(std::string_view name) {
    for (Option& o : options_) {
      if (o.name == name) return &o;
    }
    return nullptr;
  }

  std::string program_;
  std::string usage_;
  std::vector<Option> options_;
  std::vector<std::pair<std::string, std::string>> required_;  // option, message
};

// Runs body (returning the exit code) and turns an escaping exception into
// "<program>: <what>" on standard error and exit code 1.
template <class Body>
int catch_errors(std::string_view program, Body&& body) {
  try {
    return std::forward<Body>(body)();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(program.size()), program.data(), e.what());
    return 1;
  }
}

template <class Body>
int Parser::run(int argc, char** argv, Body&& body) {
  if (const auto exit_code = parse(argc, argv)) return *exit_code;
  return catch_errors(program_, std::forward<Body>(body));
}

}  // namespace cli
