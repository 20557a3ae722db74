// nexa-nb-baseline: the bag-of-words naive Bayes floor of issue 7's routing CLI. Trains a
// multinomial naive Bayes (naive_bayes.hpp) on the GCIDE domain corpus's training split ("text"
// field only: never "tagged", which holds the answer) and reports accuracy, per-domain accuracy,
// macro-averaged accuracy, the majority-class accuracy and the confusion matrix on the
// validation and test splits, and on an out-of-domain file (nexa-wordnet-eval's) when given.
//
//   nexa-nb-baseline --corpus DIR [--ood FILE] [--json FILE] [--alpha A] [--min-test-accuracy X]
//
// DIR is a nexa-gcide-corpus output (train.jsonl, valid.jsonl, test.jsonl). Prints a table on
// standard output; --json FILE writes the results as JSON (FILE "-": to standard output, and the
// table to standard error). Malformed lines are reported with their file and line number and
// skipped. Exit code 1 on a bad argument or an unreadable file, 2 when the test accuracy is below
// --min-test-accuracy (the CI floor check).
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "../common/files.hpp"
#include "naive_bayes.hpp"
#include "nexa/io/file.hpp"

namespace {

constexpr const char* kProgram = "nexa-nb-baseline";
const std::vector<std::string> kLabels = {"PHYS", "BIO", "MAT"};

struct Options {
  std::filesystem::path corpus;
  std::optional<std::filesystem::path> ood;
  std::optional<std::string> json;
  double alpha = 1.0;
  std::optional<double> min_test_accuracy;
};

constexpr const char* kUsage =
    "usage: nexa-nb-baseline --corpus DIR [--ood FILE] [--json FILE] [--alpha A] [--min-test-accuracy X]\n"
    "  --corpus DIR     a nexa-gcide-corpus output (train.jsonl, valid.jsonl, test.jsonl)\n"
    "  --ood FILE       also evaluate on these JSON lines (e.g. nexa-wordnet-eval's output)\n"
    "  --json FILE      write the results as JSON (\"-\": standard output, the table to stderr)\n"
    "  --alpha A        Laplace smoothing (default 1)\n"
    "  --min-test-accuracy X  exit with 2 when the test accuracy is below X\n";

std::string read_file(const std::filesystem::path& path) { return examples::read_file(path, kProgram); }

nb::ReadResult read_set(const std::filesystem::path& path) {
  nb::ReadResult r = nb::read_jsonl(read_file(path), path.string(), kLabels);
  for (const std::string& e : r.errors) std::fprintf(stderr, "%s: malformed line skipped: %s\n", kProgram, e.c_str());
  return r;
}

std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  const int length = std::vsnprintf(nullptr, 0, format, args);  // the whole text, never cut
  va_end(args);
  std::string out(static_cast<std::size_t>(length > 0 ? length : 0) + 1, '\0');
  std::vsnprintf(out.data(), out.size(), format, again);
  va_end(again);
  out.pop_back();
  return out;
}

std::string num(double x) { return std::isnan(x) ? std::string("null") : fmt("%.4f", x); }
std::string cell(double x) { return std::isnan(x) ? std::string("-") : fmt("%.3f", x); }

struct SetResult {
  std::string name;
  std::string file;
  std::size_t malformed = 0;
  nb::Evaluation eval;
};

std::string json_of(const nb::Model& model, const std::filesystem::path& train_file, std::size_t train_malformed,
                    const std::vector<SetResult>& sets) {
  const std::size_t majority = nb::majority_class(model);
  std::string out = "{\n";
  out += nexa::detail::concat(
      "  \"model\": {\"kind\": \"multinomial naive Bayes, bag of lower-cased words\", \"alpha\": ", num(model.alpha),
      ", \"vocabulary\": ", model.vocabulary_size(), "},\n");
  out += nexa::detail::concat("  \"train\": {\"file\": ", nexa::json::quote(train_file.string()),
                              ", \"samples\": ", model.num_documents(), ", \"malformed\": ", train_malformed,
                              ", \"per_domain\": {");
  for (std::size_t c = 0; c < model.num_classes(); ++c) {
    out += nexa::detail::concat(c == 0 ? "" : ", ", "\"", model.labels[c], "\": ", model.documents[c]);
  }
  out += nexa::detail::concat("}, \"majority_class\": \"", model.labels[majority], "\"},\n");
  out += "  \"sets\": [\n";
  for (std::size_t i = 0; i < sets.size(); ++i) {
    const SetResult& s = sets[i];
    const nb::Evaluation& e = s.eval;
    out += nexa::detail::concat(
        "    {\"name\": \"", s.name, "\", \"file\": ", nexa::json::quote(s.file), ", \"samples\": ", e.total(),
        ", \"malformed\": ", s.malformed, ", \"accuracy\": ", num(e.accuracy()),
        ", \"macro_accuracy\": ", num(e.macro_accuracy()),
        ", \"majority_accuracy\": ", num(e.constant_accuracy(majority)), ",\n     \"per_domain\": {");
    for (std::size_t c = 0; c < e.labels.size(); ++c) {
      out += nexa::detail::concat(c == 0 ? "" : ", ", "\"", e.labels[c], "\": {\"samples\": ", e.support(c),
                                  ", \"accuracy\": ", num(e.class_accuracy(c)), "}");
    }
    out += "},\n     \"confusion\": {\"rows\": \"true domain\", \"columns\": \"predicted\", \"labels\": [";
    for (std::size_t c = 0; c < e.labels.size(); ++c)
      out += nexa::detail::concat(c == 0 ? "" : ", ", "\"", e.labels[c], "\"");
    out += "], \"matrix\": [";
    for (std::size_t r = 0; r < e.counts.size(); ++r) {
      out += r == 0 ? "[" : ", [";
      for (std::size_t c = 0; c < e.counts[r].size(); ++c)
        out += nexa::detail::concat(c == 0 ? "" : ", ", e.counts[r][c]);
      out += "]";
    }
    out += nexa::detail::concat("]}}", i + 1 < sets.size() ? "," : "", "\n");
  }
  out += "  ]\n}\n";
  return out;
}

std::string table_of(const nb::Model& model, const std::filesystem::path& train_file,
                     const std::vector<SetResult>& sets) {
  const std::size_t majority = nb::majority_class(model);
  std::string out = fmt("naive Bayes baseline (multinomial, lower-cased word tokens, Laplace alpha %g)\n", model.alpha);
  out += fmt("trained on %s: %zu samples (", train_file.string().c_str(), model.num_documents());
  for (std::size_t c = 0; c < model.num_classes(); ++c) {
    out += fmt("%s%s %zu", c == 0 ? "" : ", ", model.labels[c].c_str(), model.documents[c]);
  }
  out += fmt("), vocabulary %zu words\n\n", model.vocabulary_size());
  const std::string maj = "majority(" + model.labels[majority] + ")";
  out += fmt("%-8s %8s %9s %9s %13s", "set", "samples", "accuracy", "macro", maj.c_str());
  for (const std::string& l : model.labels) out += fmt(" %7s", l.c_str());
  out += "\n";
  for (const SetResult& s : sets) {
    const nb::Evaluation& e = s.eval;
    out += fmt("%-8s %8zu %9s %9s %13s", s.name.c_str(), e.total(), cell(e.accuracy()).c_str(),
               cell(e.macro_accuracy()).c_str(), cell(e.constant_accuracy(majority)).c_str());
    for (std::size_t c = 0; c < e.labels.size(); ++c) out += fmt(" %7s", cell(e.class_accuracy(c)).c_str());
    out += "\n";
  }
  out +=
      "(accuracy: fraction right; macro: mean of the per-domain accuracies; majority: always answering the "
      "training majority; per-domain columns: accuracy (recall) on that domain's samples)\n";
  for (const SetResult& s : sets) {
    out += '\n';  // not "\n" + table(...): GCC 12 warns falsely (-Wrestrict) on that
    out += s.eval.table(fmt("confusion %s (rows: true, columns: predicted)", s.name.c_str()));
  }
  return out;
}

int run(const Options& opt) {
  const auto train_file = opt.corpus / "train.jsonl";
  const nb::ReadResult train = read_set(train_file);
  const nb::Model model = nb::train(train.samples, kLabels, opt.alpha);

  std::vector<SetResult> sets;
  auto add = [&](const std::string& name, const std::filesystem::path& path) {
    const nb::ReadResult r = read_set(path);
    sets.push_back(SetResult{name, path.string(), r.errors.size(), nb::evaluate(model, r.samples)});
  };
  add("valid", opt.corpus / "valid.jsonl");
  add("test", opt.corpus / "test.jsonl");
  if (opt.ood) add("ood", *opt.ood);

  const std::string table = table_of(model, train_file, sets);
  const bool json_to_stdout = opt.json && *opt.json == "-";
  std::fputs(table.c_str(), json_to_stdout ? stderr : stdout);
  if (opt.json) {
    const std::string json = json_of(model, train_file, train.errors.size(), sets);
    if (json_to_stdout) {
      std::fputs(json.c_str(), stdout);
    } else {
      examples::write_file(*opt.json, json, kProgram);
    }
  }
  if (opt.min_test_accuracy) {
    const double acc = sets[1].eval.accuracy();
    if (!(acc >= *opt.min_test_accuracy)) {
      std::fprintf(stderr, "%s: test accuracy %.4f is below the floor %.4f\n", kProgram, acc, *opt.min_test_accuracy);
      return 2;
    }
    std::fprintf(stderr, "%s: test accuracy %.4f >= floor %.4f\n", kProgram, acc, *opt.min_test_accuracy);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  cli::Parser p(kProgram, kUsage);
  p.value("--corpus", opt.corpus).value("--ood", opt.ood).value("--json", opt.json);
  p.number("--alpha", opt.alpha).number("--min-test-accuracy", opt.min_test_accuracy);
  p.required("--corpus", "--corpus DIR is required (run nexa-gcide-corpus --out DIR first)");
  return p.run(argc, argv, [&] { return run(opt); });
}
