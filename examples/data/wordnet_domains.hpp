#pragma once
// The WordNet out-of-domain evaluation set (issue 7: the router "should generalise to scientific
// definitions from other sources, not only to GCIDE's style"): WordNet 3.0 glosses labelled by
// their topic domain, read from the Debian package wordnet-base (/usr/share/wordnet/data.noun,
// data.verb, data.adj, data.adv) at run time, as plain functions.
//
// Source format (WordNet's wndb(5)): after a licence header (lines starting with two spaces),
// one synset per line:
//   offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt [ptr...] [frames...] | gloss
// w_cnt is two hex digits; each ptr is "symbol offset pos source/target" (pos n, v, a, s or r,
// source/target four hex digits). The pointer symbol ";c" points to the synset's topic domain,
// a noun synset ("physics", "botany", "law", "baseball", ...). Adjective words may carry a
// syntactic marker, "(a)", "(p)" or "(ip)", which is not part of the word.
//
// Labelling: a synset's domains are those of its ";c" targets whose first lemma is in the
// table below (domain_of_topic). The table lists scientific disciplines only, as present in
// WordNet 3.0's topic synsets, grouped like the GCIDE corpus's labels:
//   PHYS = physics, astronomy, astrophysics, cosmology, optics, electricity, electronics,
//          electrical_engineering, acoustics, thermodynamics, mechanics, hydrostatics,
//          hydrodynamics, particle_physics, nuclear_physics, atomic_physics, quantum_theory,
//          quantum_physics, relativity, cryogenics
//   BIO  = biology, zoology, botany, anatomy, physiology, genetics, microbiology, embryology,
//          neurophysiology, histology, cytology, ichthyology, ornithology, entomology,
//          molecular_biology, ecology
//   MAT  = chemistry, physical_chemistry, organic_chemistry, inorganic_chemistry, mineralogy,
//          metallurgy, crystallography, chemical_analysis
//   MED  = medicine, pathology, surgery, immunology, neurology, pharmacology, obstetrics,
//          dentistry, ophthalmology, radiology, otology, epidemiology, orthopedics,
//          endocrinology, toxicology, veterinary_medicine, psychiatry, virology, bacteriology
// Not used: biochemistry (between BIO and MAT), geology and paleontology (no GCIDE counterpart),
// and the organism topics ("plant", "animal", "mammal", "bacteria", ...), which are not
// disciplines ("plant" is also the factory). A synset whose topics map to two domains is
// dropped as ambiguous (counted).
//
// Sample: headword = the synset's first word (underscores as spaces, adjective marker
// removed); text = the gloss's definition part, before the first example quote ('; "'), with
// leading parenthesised labels ("(physics) ...", which would give the answer away) removed
// and whitespace collapsed. Errors are nexa::Error.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../common/files.hpp"
#include "domains.hpp"
#include "nexa/core/error.hpp"
#include "nexa/io/json.hpp"

namespace wordnet {

inline constexpr std::string_view kModule = "wordnet";

using domains::Domain;
using domains::domain_name;
using domains::kDomains;
using domains::kNumDomains;

// The domain of a topic synset's first lemma (as written in data.noun, underscores kept), or
// nullopt when the topic is not one of the table's disciplines.
[[nodiscard]] inline std::optional<Domain> domain_of_topic(std::string_view lemma) {
  static const std::map<std::string_view, Domain> table = {
      // PHYS
      {"physics", Domain::PHYS},
      {"astronomy", Domain::PHYS},
      {"astrophysics", Domain::PHYS},
      {"cosmology", Domain::PHYS},
      {"optics", Domain::PHYS},
      {"electricity", Domain::PHYS},
      {"electronics", Domain::PHYS},
      {"electrical_engineering", Domain::PHYS},
      {"acoustics", Domain::PHYS},
      {"thermodynamics", Domain::PHYS},
      {"mechanics", Domain::PHYS},
      {"hydrostatics", Domain::PHYS},
      {"hydrodynamics", Domain::PHYS},
      {"particle_physics", Domain::PHYS},
      {"nuclear_physics", Domain::PHYS},
      {"atomic_physics", Domain::PHYS},
      {"quantum_theory", Domain::PHYS},
      {"quantum_physics", Domain::PHYS},
      {"relativity", Domain::PHYS},
      {"cryogenics", Domain::PHYS},
      // BIO
      {"biology", Domain::BIO},
      {"zoology", Domain::BIO},
      {"botany", Domain::BIO},
      {"anatomy", Domain::BIO},
      {"physiology", Domain::BIO},
      {"genetics", Domain::BIO},
      {"microbiology", Domain::BIO},
      {"embryology", Domain::BIO},
      {"neurophysiology", Domain::BIO},
      {"histology", Domain::BIO},
      {"cytology", Domain::BIO},
      {"ichthyology", Domain::BIO},
      {"ornithology", Domain::BIO},
      {"entomology", Domain::BIO},
      {"molecular_biology", Domain::BIO},
      {"ecology", Domain::BIO},
      // MAT
      {"chemistry", Domain::MAT},
      {"physical_chemistry", Domain::MAT},
      {"organic_chemistry", Domain::MAT},
      {"inorganic_chemistry", Domain::MAT},
      {"mineralogy", Domain::MAT},
      {"metallurgy", Domain::MAT},
      {"crystallography", Domain::MAT},
      {"chemical_analysis", Domain::MAT},
      // MED
      {"medicine", Domain::MED},
      {"pathology", Domain::MED},
      {"surgery", Domain::MED},
      {"immunology", Domain::MED},
      {"neurology", Domain::MED},
      {"pharmacology", Domain::MED},
      {"obstetrics", Domain::MED},
      {"dentistry", Domain::MED},
      {"ophthalmology", Domain::MED},
      {"radiology", Domain::MED},
      {"otology", Domain::MED},
      {"epidemiology", Domain::MED},
      {"orthopedics", Domain::MED},
      {"endocrinology", Domain::MED},
      {"toxicology", Domain::MED},
      {"veterinary_medicine", Domain::MED},
      {"psychiatry", Domain::MED},
      {"virology", Domain::MED},
      {"bacteriology", Domain::MED},
  };
  if (const auto it = table.find(lemma); it != table.end()) return it->second;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Small string helpers.

[[nodiscard]] inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

[[nodiscard]] inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Whitespace-separated fields of `s`.
[[nodiscard]] inline std::vector<std::string_view> fields(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    const std::size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

[[nodiscard]] inline std::string collapse_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool space = false;
  for (const char c : trim(s)) {
    if (is_space(c)) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// `s` as UTF-8: unchanged when valid (WordNet 3.0's files are ASCII), else read as Latin-1.
[[nodiscard]] inline std::string to_utf8(std::string_view s) {
  if (nexa::json::is_valid_utf8(s)) return std::string(s);
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out += ch;
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

[[nodiscard]] inline std::uint32_t parse_number(std::string_view digits, int base, std::string_view what,
                                                std::size_t line_no) {
  nexa::require(!digits.empty() && digits.size() <= 8, kModule, "line ", line_no, ": bad ", what, " '", digits, "'");
  std::uint32_t value = 0;
  for (const char c : digits) {
    std::uint32_t v = 0;
    if (c >= '0' && c <= '9') {
      v = static_cast<std::uint32_t>(c - '0');
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      v = static_cast<std::uint32_t>(c - 'a' + 10);
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      v = static_cast<std::uint32_t>(c - 'A' + 10);
    } else {
      throw nexa::Error(nexa::detail::concat(kModule, ": line ", line_no, ": bad ", what, " '", digits, "'"));
    }
    if (v >= static_cast<std::uint32_t>(base)) {
      throw nexa::Error(nexa::detail::concat(kModule, ": line ", line_no, ": bad ", what, " '", digits, "'"));
    }
    value = value * static_cast<std::uint32_t>(base) + v;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Synsets.

struct Pointer {
  std::string symbol;  // ";c", "@", "~", ...
  std::string offset;  // eight decimal digits, as written
  char pos = 'n';      // n, v, a, s or r
};

struct Synset {
  std::string offset;              // eight decimal digits, as written
  char pos = 'n';                  // ss_type: n, v, a, s or r
  std::vector<std::string> words;  // as written (underscores, adjective markers)
  std::vector<Pointer> pointers;
  std::string gloss;  // everything after " | "
};

// Parses one data.* synset line; errors name the line number.
[[nodiscard]] inline Synset parse_synset_line(std::string_view line, std::size_t line_no) {
  Synset s;
  const std::size_t bar = line.find(" | ");
  const std::string_view head = bar == std::string_view::npos ? line : line.substr(0, bar);
  if (bar != std::string_view::npos) s.gloss = std::string(trim(line.substr(bar + 3)));
  const std::vector<std::string_view> f = fields(head);
  nexa::require(f.size() >= 6, kModule, "line ", line_no, ": not a synset line (", f.size(), " fields)");
  s.offset = std::string(f[0]);
  (void)parse_number(f[0], 10, "synset offset", line_no);
  nexa::require(f[2].size() == 1, kModule, "line ", line_no, ": bad synset type '", f[2], "'");
  s.pos = f[2][0];
  const std::size_t w_cnt = parse_number(f[3], 16, "word count", line_no);
  std::size_t i = 4;
  nexa::require(w_cnt > 0 && f.size() >= i + 2 * w_cnt + 1, kModule, "line ", line_no, ": truncated word list");
  for (std::size_t k = 0; k < w_cnt; ++k, i += 2) s.words.emplace_back(f[i]);
  const std::size_t p_cnt = parse_number(f[i++], 10, "pointer count", line_no);
  nexa::require(f.size() >= i + 4 * p_cnt, kModule, "line ", line_no, ": truncated pointer list");
  for (std::size_t k = 0; k < p_cnt; ++k, i += 4) {
    nexa::require(f[i + 2].size() == 1, kModule, "line ", line_no, ": bad pointer part of speech '", f[i + 2], "'");
    s.pointers.push_back(Pointer{std::string(f[i]), std::string(f[i + 1]), f[i + 2][0]});
  }
  return s;
}

// A word as a headword: underscores as spaces, a trailing adjective marker "(a)", "(p)" or
// "(ip)" removed.
[[nodiscard]] inline std::string headword_of(std::string_view word) {
  for (const std::string_view marker : {"(a)", "(p)", "(ip)"}) {
    if (word.size() > marker.size() && word.substr(word.size() - marker.size()) == marker) {
      word.remove_suffix(marker.size());
      break;
    }
  }
  std::string out(word);
  for (char& c : out) {
    if (c == '_') c = ' ';
  }
  return out;
}

// The definition part of a gloss: before the first example quote ('; "', or a gloss that is
// all example), leading parenthesised labels removed, whitespace collapsed, trailing ';' cut.
[[nodiscard]] inline std::string definition_of(std::string_view gloss) {
  std::string_view g = trim(gloss);
  if (!g.empty() && g.front() == '"') return {};
  if (const std::size_t q = g.find("; \""); q != std::string_view::npos) g = g.substr(0, q);
  g = trim(g);
  while (!g.empty() && g.front() == '(') {
    const std::size_t close = g.find(')');
    if (close == std::string_view::npos) break;
    g = trim(g.substr(close + 1));
  }
  while (!g.empty() && (g.back() == ';' || is_space(g.back()))) g.remove_suffix(1);
  return collapse_spaces(g);
}

// ---------------------------------------------------------------------------------------------
// The evaluation set.

struct Sample {
  std::string headword;
  Domain domain = Domain::PHYS;
  std::string text;
  std::string topic;   // the WordNet topic synset's first lemma ("botany")
  std::string synset;  // pos + offset of the sample's synset ("n06084469")
};

[[nodiscard]] inline std::string to_json_line(const Sample& s) {
  return nexa::detail::concat("{\"headword\": ", nexa::json::quote(s.headword), ", \"domain\": \"",
                              domain_name(s.domain), "\", \"text\": ", nexa::json::quote(s.text),
                              ", \"topic\": ", nexa::json::quote(s.topic),
                              ", \"synset\": ", nexa::json::quote(s.synset), "}");
}

struct Stats {
  std::size_t synsets = 0;                    // synset lines read
  std::size_t with_topic = 0;                 // synsets with at least one ";c" pointer
  std::size_t in_table = 0;                   // ... of which one maps to a domain
  std::size_t ambiguous = 0;                  // dropped: topics of two domains
  std::size_t empty = 0;                      // dropped: no definition text left
  std::size_t label_removed = 0;              // texts whose leading "(field)" label was removed
  std::map<std::string, std::size_t> topics;  // samples per topic lemma
};

struct EvalSet {
  std::vector<Sample> samples;  // data.noun, data.verb, data.adj, data.adv order, file order within
  Stats stats;
};

// One data.* file: its name (for errors) and its text.
struct DataFile {
  std::string name;  // "data.noun"
  std::string text;
};

inline constexpr std::array<std::string_view, 4> kDataFiles = {"data.noun", "data.verb", "data.adj", "data.adv"};

// Builds the evaluation set from the text of the four data files (each {name, text}).
[[nodiscard]] inline EvalSet build_eval_set(const std::vector<DataFile>& files) {
  EvalSet out;
  // Parse every synset line once, keeping the noun synsets' first lemma for the topic lookup.
  std::vector<std::pair<const DataFile*, std::vector<Synset>>> parsed;
  std::unordered_map<std::string, std::string> noun_lemma;  // offset -> first word
  for (const DataFile& file : files) {
    std::vector<Synset> synsets;
    examples::for_each_line(file.text, [&](std::string_view line, std::size_t line_no) {
      if (line.empty() || line.substr(0, 2) == "  ") return;  // licence header
      try {
        synsets.push_back(parse_synset_line(line, line_no));
      } catch (const nexa::Error& e) {
        throw nexa::Error(nexa::detail::concat(file.name, ": ", e.what()));
      }
      if (synsets.back().pos == 'n') noun_lemma.emplace(synsets.back().offset, synsets.back().words.front());
    });
    parsed.emplace_back(&file, std::move(synsets));
  }
  for (const auto& [file, synsets] : parsed) {
    for (const Synset& s : synsets) {
      ++out.stats.synsets;
      std::set<Domain> domains;
      std::string topic;
      bool any_topic = false;
      for (const Pointer& p : s.pointers) {
        if (p.symbol != ";c") continue;
        any_topic = true;
        nexa::require(p.pos == 'n', kModule, file->name, ": synset ", s.offset, ": topic ", p.offset,
                      " is not a noun synset");
        const auto it = noun_lemma.find(p.offset);
        nexa::require(it != noun_lemma.end(), kModule, file->name, ": synset ", s.offset, ": topic synset ", p.offset,
                      " is not in data.noun");
        if (const auto d = domain_of_topic(it->second)) {
          if (domains.insert(*d).second && domains.size() == 1) topic = it->second;
        }
      }
      if (any_topic) ++out.stats.with_topic;
      if (domains.empty()) continue;
      ++out.stats.in_table;
      if (domains.size() > 1) {
        ++out.stats.ambiguous;
        continue;
      }
      const std::string_view gloss = trim(s.gloss);
      std::string text = to_utf8(definition_of(gloss));
      if (text.empty()) {
        ++out.stats.empty;
        continue;
      }
      if (!gloss.empty() && gloss.front() == '(') ++out.stats.label_removed;
      ++out.stats.topics[topic];
      out.samples.push_back(Sample{to_utf8(headword_of(s.words.front())), *domains.begin(), std::move(text), topic,
                                   std::string(1, s.pos == 's' ? 'a' : s.pos) + s.offset});
    }
  }
  return out;
}

[[nodiscard]] inline std::string read_file(const std::filesystem::path& path) {
  return examples::read_file(path, kModule);
}

// Reads <dir>/data.noun, data.verb, data.adj and data.adv.
[[nodiscard]] inline EvalSet build_eval_set(const std::filesystem::path& dir) {
  std::vector<DataFile> files;
  for (const std::string_view name : kDataFiles) {
    const auto path = dir / name;
    if (!std::filesystem::exists(path)) {
      throw nexa::Error(nexa::detail::concat(kModule, ": WordNet is not in ", dir.string(), " (need ", name,
                                             "): install the Debian package wordnet-base "
                                             "(apt-get install wordnet-base) or pass its directory"));
    }
    files.push_back(DataFile{std::string(name), read_file(path)});
  }
  return build_eval_set(files);
}

// Samples per domain.
[[nodiscard]] inline std::array<std::size_t, kNumDomains> count_samples(const std::vector<Sample>& samples) {
  std::array<std::size_t, kNumDomains> counts{};
  for (const Sample& s : samples) ++counts[static_cast<std::size_t>(s.domain)];
  return counts;
}

}  // namespace wordnet
