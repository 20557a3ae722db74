// nexa-gcide-corpus: builds the GCIDE domain corpus of issue 7 from the installed Debian package
// dict-gcide (see gcide_corpus.hpp for the format, the labels and the split).
//
//   nexa-gcide-corpus [--dict-dir /usr/share/dictd] [--out DIR]
//
// Writes, under DIR (default gcide_corpus):
//   train.jsonl, valid.jsonl, test.jsonl          PHYS, BIO and MAT definitions
//   med_train.jsonl, med_valid.jsonl, med_test.jsonl   MED definitions (the extension example)
//   stats.json                                    counts per domain and split, dropped counts
// one JSON object per line: {"headword": ..., "domain": "BIO", "text": ..., "tagged": "[BIO] ..."}.
// "text" never holds the tag; training reads "tagged", evaluation "text". The split is a hash of
// the headword, so the corpus depends on nothing but the package. Exit code 1 on a bad argument
// or a missing package.
#include <cstdio>
#include <filesystem>
#include <string>

#include "../common/cli.hpp"
#include "../common/files.hpp"
#include "gcide_corpus.hpp"
#include "nexa/io/file.hpp"

namespace {

struct Options {
  std::filesystem::path dict_dir = "/usr/share/dictd";
  std::filesystem::path out = "gcide_corpus";
};

constexpr const char* kUsage =
    "usage: nexa-gcide-corpus [--dict-dir DIR] [--out DIR]\n"
    "  --dict-dir DIR  where gcide.index and gcide.dict.dz are (default /usr/share/dictd,\n"
    "                  from the Debian package dict-gcide)\n"
    "  --out DIR       output directory (default gcide_corpus)\n";

void write_text(const std::filesystem::path& path, const std::string& text) {
  examples::write_file(path, text, "nexa-gcide-corpus");
}

std::string stats_json(const gcide::Corpus& corpus, const gcide::Counts& counts) {
  const gcide::ParseStats& st = corpus.stats;
  std::string out = "{\n  \"source\": \"dict-gcide (gcide.index, gcide.dict.dz)\",\n";
  out += "  \"split\": \"fnv1a64(lower-cased headword) % 10: 0-7 train, 8 valid, 9 test\",\n";
  out +=
      "  \"files\": {\"PHYS BIO MAT\": \"train.jsonl valid.jsonl test.jsonl\", "
      "\"MED\": \"med_train.jsonl med_valid.jsonl med_test.jsonl\"},\n";
  out += "  \"samples\": {\n";
  for (std::size_t d = 0; d < gcide::kNumDomains; ++d) {
    std::size_t total = 0;
    out += nexa::detail::concat("    \"", gcide::domain_name(gcide::kDomains[d]), "\": {");
    for (std::size_t s = 0; s < gcide::kNumSplits; ++s) {
      out += nexa::detail::concat("\"", gcide::split_name(gcide::kSplits[s]), "\": ", counts[d][s], ", ");
      total += counts[d][s];
    }
    out += nexa::detail::concat("\"total\": ", total, "}", d + 1 < gcide::kNumDomains ? "," : "", "\n");
  }
  out += "  },\n";
  out +=
      nexa::detail::concat("  \"articles\": ", st.articles, ",\n  \"definitions\": ", st.definitions,
                           ",\n  \"unlabelled\": ", st.unlabelled, ",\n  \"dropped\": {\"ambiguous\": ", st.ambiguous,
                           ", \"empty\": ", st.empty, ", \"duplicate\": ", st.duplicates, "},\n");
  out += "  \"ambiguous_domains\": {";
  bool first = true;
  for (const auto& [key, n] : st.ambiguous_pairs) {
    out += nexa::detail::concat(first ? "" : ", ", nexa::json::quote(key), ": ", n);
    first = false;
  }
  out += "}\n}\n";
  return out;
}

int run(const Options& opt) {
  const gcide::Corpus corpus = gcide::build_corpus(opt.dict_dir);
  const gcide::Counts counts = gcide::count_samples(corpus.samples);

  std::error_code ec;
  std::filesystem::create_directories(opt.out, ec);
  nexa::require(!ec, "nexa-gcide-corpus", "cannot create ", opt.out.string(), ": ", ec.message());

  // Three domain files and three MED files, one per split.
  std::string files[2][gcide::kNumSplits];
  for (const gcide::Sample& s : corpus.samples) {
    const std::size_t kind = s.domain == gcide::Domain::MED ? 1 : 0;
    std::string& f = files[kind][static_cast<std::size_t>(gcide::split_of(s.headword))];
    f += gcide::to_json_line(s);
    f += '\n';
  }
  for (std::size_t s = 0; s < gcide::kNumSplits; ++s) {
    const std::string name(gcide::split_name(gcide::kSplits[s]));
    write_text(opt.out / (name + ".jsonl"), files[0][s]);
    write_text(opt.out / ("med_" + name + ".jsonl"), files[1][s]);
  }
  write_text(opt.out / "stats.json", stats_json(corpus, counts));

  std::printf("GCIDE domain corpus -> %s\n", opt.out.string().c_str());
  std::printf("%-6s %8s %8s %8s %8s\n", "domain", "train", "valid", "test", "total");
  std::size_t split_totals[gcide::kNumSplits] = {};
  for (std::size_t d = 0; d < gcide::kNumDomains; ++d) {
    std::size_t total = 0;
    for (std::size_t s = 0; s < gcide::kNumSplits; ++s) {
      total += counts[d][s];
      split_totals[s] += counts[d][s];
    }
    std::printf("%-6s %8zu %8zu %8zu %8zu\n", std::string(gcide::domain_name(gcide::kDomains[d])).c_str(), counts[d][0],
                counts[d][1], counts[d][2], total);
  }
  std::printf("%-6s %8zu %8zu %8zu %8zu\n", "all", split_totals[0], split_totals[1], split_totals[2],
              split_totals[0] + split_totals[1] + split_totals[2]);
  const gcide::ParseStats& st = corpus.stats;
  std::printf(
      "%zu articles, %zu definitions (%zu without a domain label); dropped: %zu ambiguous "
      "(labels of two domains), %zu empty, %zu duplicates\n",
      st.articles, st.definitions, st.unlabelled, st.ambiguous, st.empty, st.duplicates);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  cli::Parser p("nexa-gcide-corpus", kUsage);
  p.value("--dict-dir", opt.dict_dir).value("--out", opt.out);
  return p.run(argc, argv, [&] { return run(opt); });
}
