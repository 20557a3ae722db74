// nexa-wordnet-eval: the out-of-domain evaluation set of issue 7 (scientific definitions from
// another source than GCIDE): WordNet 3.0 glosses labelled by their topic domain, from the
// installed Debian package wordnet-base (see wordnet_domains.hpp for the format, the mapping
// table and the cleaning).
//
//   nexa-wordnet-eval [--wordnet-dir /usr/share/wordnet] [--out FILE] [--med-out FILE]
//                     [--gcide DIR]
//
// Writes FILE (default wordnet_eval.jsonl): one JSON object per line, PHYS, BIO and MAT only,
//   {"headword": ..., "domain": "BIO", "text": ..., "topic": "botany", "synset": "n12345678"}
// and the MED glosses to --med-out FILE when given. With --gcide DIR (a nexa-gcide-corpus
// output), glosses whose text is also a GCIDE sample's text (GCIDE took part of its definitions
// from WordNet 1.5; compared lower-cased, letters and digits only) are left out, so that the set
// is text no GCIDE-trained model has seen; the overlap of headwords is reported too. Exit code
// 1 on a bad argument or a missing package.
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "../common/cli.hpp"
#include "nexa/io/file.hpp"
#include "wordnet_domains.hpp"

namespace {

constexpr const char* kProgram = "nexa-wordnet-eval";

struct Options {
  std::filesystem::path wordnet_dir = "/usr/share/wordnet";
  std::filesystem::path out = "wordnet_eval.jsonl";
  std::optional<std::filesystem::path> med_out;
  std::optional<std::filesystem::path> gcide;
};

constexpr const char* kUsage =
    "usage: nexa-wordnet-eval [--wordnet-dir DIR] [--out FILE] [--med-out FILE] [--gcide DIR]\n"
    "  --wordnet-dir DIR  where data.noun, data.verb, data.adj and data.adv are (default\n"
    "                     /usr/share/wordnet, from the Debian package wordnet-base)\n"
    "  --out FILE         PHYS, BIO and MAT glosses as JSON lines (default wordnet_eval.jsonl)\n"
    "  --med-out FILE     MED glosses as JSON lines (default: not written)\n"
    "  --gcide DIR        a nexa-gcide-corpus output: leave out glosses whose text is in it\n";

void write_text(const std::filesystem::path& path, const std::string& text) {
  examples::write_file(path, text, kProgram);
}

// The comparison key of a definition: its ASCII letters and digits, lower-cased.
std::string text_key(std::string_view text) {
  std::string key;
  for (const char c : text) {
    if (c >= 'A' && c <= 'Z') {
      key += static_cast<char>(c - 'A' + 'a');
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      key += c;
    }
  }
  return key;
}

struct GcideKeys {
  std::unordered_set<std::string> texts;
  std::unordered_set<std::string> headwords;  // lower-cased
  std::size_t lines = 0;
};

GcideKeys read_gcide(const std::filesystem::path& dir) {
  GcideKeys keys;
  for (const char* name :
       {"train.jsonl", "valid.jsonl", "test.jsonl", "med_train.jsonl", "med_valid.jsonl", "med_test.jsonl"}) {
    const auto path = dir / name;
    nexa::require(std::filesystem::exists(path), kProgram, "--gcide: ", path.string(),
                  " is missing (run nexa-gcide-corpus --out ", dir.string(), " first)");
    const std::string data = examples::read_file(path, kProgram);
    examples::for_each_line(data, [&](std::string_view line, std::size_t line_no) {
      if (wordnet::trim(line).empty()) return;
      const nexa::json::Value v = nexa::json::parse(line, nexa::detail::concat(path.string(), ":", line_no));
      const nexa::json::Value* text = v.find("text");
      const nexa::json::Value* head = v.find("headword");
      nexa::require(v.is_object() && text != nullptr && text->is_string() && head != nullptr && head->is_string(),
                    kProgram, path.string(), ":", line_no, ": not a GCIDE sample");
      keys.texts.insert(text_key(text->string));
      keys.headwords.insert(text_key(head->string));
      ++keys.lines;
    });
  }
  return keys;
}

int run(const Options& opt) {
  wordnet::EvalSet set = wordnet::build_eval_set(opt.wordnet_dir);
  std::size_t dropped_gcide[wordnet::kNumDomains] = {};
  std::size_t shared_headword[wordnet::kNumDomains] = {};
  if (opt.gcide) {
    const GcideKeys keys = read_gcide(*opt.gcide);
    std::vector<wordnet::Sample> kept;
    for (wordnet::Sample& s : set.samples) {
      const auto d = static_cast<std::size_t>(s.domain);
      if (keys.texts.count(text_key(s.text)) != 0) {
        ++dropped_gcide[d];
        continue;
      }
      if (keys.headwords.count(text_key(s.headword)) != 0) ++shared_headword[d];
      kept.push_back(std::move(s));
    }
    set.samples = std::move(kept);
  }

  std::string main_file;
  std::string med_file;
  for (const wordnet::Sample& s : set.samples) {
    std::string& f = s.domain == wordnet::Domain::MED ? med_file : main_file;
    f += wordnet::to_json_line(s);
    f += '\n';
  }
  write_text(opt.out, main_file);
  if (opt.med_out) write_text(*opt.med_out, med_file);

  const auto counts = wordnet::count_samples(set.samples);
  std::printf("WordNet topic-domain glosses -> %s%s%s\n", opt.out.string().c_str(), opt.med_out ? " (MED: " : "",
              opt.med_out ? (opt.med_out->string() + ")").c_str() : "");
  if (opt.gcide) {
    std::printf("%-6s %8s %14s %18s\n", "domain", "samples", "text in GCIDE", "headword in GCIDE");
  } else {
    std::printf("%-6s %8s\n", "domain", "samples");
  }
  std::size_t total = 0;
  std::size_t total_dropped = 0;
  std::size_t total_shared = 0;
  for (std::size_t d = 0; d < wordnet::kNumDomains; ++d) {
    const std::string name(wordnet::domain_name(wordnet::kDomains[d]));
    if (opt.gcide) {
      std::printf("%-6s %8zu %14zu %18zu\n", name.c_str(), counts[d], dropped_gcide[d], shared_headword[d]);
    } else {
      std::printf("%-6s %8zu\n", name.c_str(), counts[d]);
    }
    total += counts[d];
    total_dropped += dropped_gcide[d];
    total_shared += shared_headword[d];
  }
  if (opt.gcide) {
    std::printf("%-6s %8zu %14zu %18zu\n", "all", total, total_dropped, total_shared);
    std::printf(
        "samples: written; text in GCIDE: left out, the text is also a GCIDE corpus sample's; headword in "
        "GCIDE: written, the headword is also a GCIDE corpus sample's\n");
  } else {
    std::printf("%-6s %8zu\n", "all", total);
  }
  const wordnet::Stats& st = set.stats;
  std::printf(
      "%zu synsets, %zu with a topic domain, %zu with a topic in the table; dropped: %zu ambiguous "
      "(topics of two domains), %zu empty; %zu leading \"(field)\" labels removed\n",
      st.synsets, st.with_topic, st.in_table, st.ambiguous, st.empty, st.label_removed);
  std::map<std::string, std::size_t> topics;  // after the --gcide filter
  for (const wordnet::Sample& s : set.samples) ++topics[s.topic];
  std::printf("samples per topic:");
  for (const auto& [topic, n] : topics) std::printf(" %s %zu", topic.c_str(), n);
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  cli::Parser p(kProgram, kUsage);
  p.value("--wordnet-dir", opt.wordnet_dir).value("--out", opt.out).value("--med-out", opt.med_out);
  p.value("--gcide", opt.gcide);
  return p.run(argc, argv, [&] { return run(opt); });
}
