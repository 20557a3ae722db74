#pragma once
// The GCIDE domain corpus (issue 7, "Data"): domain-labelled scientific definitions read from the
// Debian package dict-gcide (/usr/share/dictd/gcide.index + gcide.dict.dz), as plain functions.
//
// Source format (dictd): gcide.index holds one line per headword, "headword TAB offset TAB
// length", the numbers in dictd's base64 digits (A-Z a-z 0-9 + /, most significant first);
// gcide.dict.dz is a dictzip file (gzip-compatible), inflated whole. Each distinct (offset,
// length) range of the index is one article: a header line "Headword \Pro*nun"ci*a`tion\, n.
// [etymology] (Field.)" (continued on indented lines while the etymology bracket is open),
// then the body, indented: numbered senses "1. (Bot.) ...", lettered sub-senses "(a) ...",
// phrase sub-entries "{Phrase} (Chem.), ...", "Note:" and "Syn:" paragraphs, quotations (deeper
// indent, "--Author."), and source lines ("[1913 Webster]", "[WordNet 1.5]", "[PJC]", ...).
// Accented letters are written as markup: ["o] = o-umlaut, ['e] = e-acute, [ae] = ae, etc.
//
// Labelling: a field label is a parenthesised group of field abbreviations, "(Zool.)",
// "(Zo["o]l.)", "(Bot. & Zool.)", "(Chem., Biochem.)". Domains:
//   PHYS = Physics, Astron., Elec., Opt.      BIO = Bot., Zool., Anat., Biol., Physiol.
//   MAT  = Chem., Min., Metal., Crystallog.   MED = Med. (kept apart: the extension example)
// (the full words, e.g. "Zoology", "Chemistry", count too; other fields in a group are ignored).
// A definition's labels are those in its own text; a numbered or unnumbered sense without one
// inherits the article's header label, a lettered sub-sense its sense's (or its phrase's);
// phrase sub-entries inherit nothing, nor does a sense labelled with another field only
// ("2. (Naut.) ..."). One sample per labelled definition; a definition whose labels name two
// domains is dropped as ambiguous (counted). Articles that the package's conversion glued after
// a source line ("[1913 Webster] Ilmenite \Il"men*ite\, n. ...") are read as articles.
// Sample text: the definition cleaned (domain labels and a leading field label removed,
// pronunciations \...\, bracketed notes and sources [...], citations --Author. and braces
// dropped, accent markup turned into UTF-8, whitespace collapsed); it never holds the tag.
//
// Split: FNV-1a 64 of the ASCII-lower-cased headword, modulo 10: 0-7 train, 8 validation,
// 9 test; every sense of a headword lands in one split. Errors are nexa::Error.
#include <zlib.h>

#include <algorithm>
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
#include <unordered_set>
#include <utility>
#include <vector>

#include "../common/files.hpp"
#include "domains.hpp"
#include "nexa/core/error.hpp"
#include "nexa/io/json.hpp"
#include "nexa/io/utf8.hpp"

namespace gcide {

inline constexpr std::string_view kModule = "gcide";

using domains::Domain;
using domains::domain_name;
using domains::domain_tag;
using domains::kDomains;
using domains::kNumDomains;

enum class Split { Train = 0, Valid = 1, Test = 2 };
inline constexpr std::size_t kNumSplits = 3;
inline constexpr std::array<Split, kNumSplits> kSplits = {Split::Train, Split::Valid, Split::Test};

[[nodiscard]] inline std::string_view split_name(Split s) {
  switch (s) {
    case Split::Train:
      return "train";
    case Split::Valid:
      return "valid";
    case Split::Test:
      return "test";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Small string helpers.

[[nodiscard]] inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
[[nodiscard]] inline bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
[[nodiscard]] inline bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
[[nodiscard]] inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
[[nodiscard]] inline bool is_alpha(char c) { return is_upper(c) || is_lower(c); }
[[nodiscard]] inline char to_lower(char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

[[nodiscard]] inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

[[nodiscard]] inline std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_lower(c);
  return out;
}

// Number of leading spaces of a line.
[[nodiscard]] inline std::size_t indent_of(std::string_view line) {
  std::size_t n = 0;
  while (n < line.size() && line[n] == ' ') ++n;
  return n;
}

[[nodiscard]] inline std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      if (start < text.size()) lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// The index of the ')' (or ']') closing the bracket at `open`, honouring nesting of the same
// kind; npos when unbalanced.
[[nodiscard]] inline std::size_t matching_close(std::string_view s, std::size_t open) {
  const char o = s[open];
  const char c = o == '(' ? ')' : o == '[' ? ']' : o == '{' ? '}' : '\0';
  int depth = 0;
  for (std::size_t i = open; i < s.size(); ++i) {
    if (s[i] == o) {
      ++depth;
    } else if (s[i] == c) {
      if (--depth == 0) return i;
    }
  }
  return std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// Text: UTF-8 repair, accent markup, JSON.

// `s` with every byte that is not part of well-formed UTF-8 read as Windows-1252 (the package's
// text is ASCII but for a handful of such bytes), so that the output is valid UTF-8.
[[nodiscard]] inline std::string repair_utf8(std::string_view s) {
  if (nexa::json::is_valid_utf8(s)) return std::string(s);
  static constexpr std::array<std::uint16_t, 32> cp1252 = {
      0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
      0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};
  std::string out;
  out.reserve(s.size() + 8);
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += s[i++];
      continue;
    }
    // Try a well-formed multi-byte sequence first.
    const std::size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len != 0 && i + len <= s.size() && nexa::json::is_valid_utf8(s.substr(i, len))) {
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    nexa::unicode::append_utf8(static_cast<char32_t>(c < 0xA0 ? cp1252[c - 0x80] : c), out);
    ++i;
  }
  return out;
}

// The UTF-8 text of GCIDE's accent markup "[...]" (the content without brackets), or nullopt
// when the content is not an accent mark. Diacritics are written before the letter ('e = e
// acute, `e grave, ^e circumflex, "e diaeresis, ~n tilde, ,c cedilla, =e macron) or after it
// (a^ breve); named marks are ligatures, Greek letters and symbols.
[[nodiscard]] inline std::optional<std::string> accent_markup(std::string_view m) {
  static const std::map<std::string_view, std::uint32_t> named = {
      {"ae", 0xE6},       {"AE", 0xC6},     {"oe", 0x153},    {"OE", 0x152},      {"deg", 0xB0},
      {"eth", 0xF0},      {"thorn", 0xFE},  {"sect", 0xA7},   {"root", 0x221A},   {"alpha", 0x3B1},
      {"beta", 0x3B2},    {"gamma", 0x3B3}, {"delta", 0x3B4}, {"epsilon", 0x3B5}, {"zeta", 0x3B6},
      {"eta", 0x3B7},     {"theta", 0x3B8}, {"iota", 0x3B9},  {"kappa", 0x3BA},   {"lambda", 0x3BB},
      {"mu", 0x3BC},      {"nu", 0x3BD},    {"xi", 0x3BE},    {"omicron", 0x3BF}, {"pi", 0x3C0},
      {"rho", 0x3C1},     {"sigma", 0x3C3}, {"tau", 0x3C4},   {"upsilon", 0x3C5}, {"phi", 0x3C6},
      {"chi", 0x3C7},     {"psi", 0x3C8},   {"omega", 0x3C9}, {"Delta", 0x394},   {"Sigma", 0x3A3},
      {"Omega", 0x3A9},   {"frac12", 0xBD}, {"frac14", 0xBC}, {"frac34", 0xBE},   {"frac13", 0x2153},
      {"frac23", 0x2154}, {"pound", 0xA3},  {"pounds", 0xA3}, {"times", 0xD7},    {"divide", 0xF7},
      {"middot", 0xB7},   {"min", 0x2032},  {"sec", 0x2033},  {"prime", 0x2032},  {"dprime", 0x2033},
      {"cre", 0x2022},    {"edh", 0xF0},    {"ssharp", 0xDF}, {"infin", 0x221E},  {"plusmn", 0xB1}};
  if (const auto it = named.find(m); it != named.end()) {
    std::string out;
    nexa::unicode::append_utf8(static_cast<char32_t>(it->second), out);
    return out;
  }
  if (m.size() != 2) return std::nullopt;
  char mark = m[0];
  char letter = m[1];
  if (is_alpha(m[0]) && m[1] == '^') std::swap(mark, letter);  // "a^": breve
  if (!is_alpha(letter)) return std::nullopt;
  // Precomposed Latin-1 / Latin Extended-A letters where one exists, else the plain letter.
  static constexpr std::string_view base = "aeiouAEIOU";
  static constexpr std::array<std::uint32_t, 10> acute = {0xE1, 0xE9, 0xED, 0xF3, 0xFA, 0xC1, 0xC9, 0xCD, 0xD3, 0xDA};
  static constexpr std::array<std::uint32_t, 10> grave = {0xE0, 0xE8, 0xEC, 0xF2, 0xF9, 0xC0, 0xC8, 0xCC, 0xD2, 0xD9};
  static constexpr std::array<std::uint32_t, 10> circ = {0xE2, 0xEA, 0xEE, 0xF4, 0xFB, 0xC2, 0xCA, 0xCE, 0xD4, 0xDB};
  static constexpr std::array<std::uint32_t, 10> diaer = {0xE4, 0xEB, 0xEF, 0xF6, 0xFC, 0xC4, 0xCB, 0xCF, 0xD6, 0xDC};
  static constexpr std::array<std::uint32_t, 10> macron = {0x101, 0x113, 0x12B, 0x14D, 0x16B,
                                                           0x100, 0x112, 0x12A, 0x14C, 0x16A};
  static constexpr std::array<std::uint32_t, 10> breve = {0x103, 0x115, 0x12D, 0x14F, 0x16D,
                                                          0x102, 0x114, 0x12C, 0x14E, 0x16C};
  const std::size_t k = base.find(letter);
  std::uint32_t cp = 0;
  switch (mark) {
    case '\'':
      if (k != std::string_view::npos) cp = acute[k];
      break;
    case '`':
      if (k != std::string_view::npos) cp = grave[k];
      break;
    case '^':
      if (k != std::string_view::npos) cp = m[0] == '^' ? circ[k] : breve[k];
      break;
    case '"':
      if (k != std::string_view::npos) cp = diaer[k];
      if (letter == 'y') cp = 0xFF;
      break;
    case '=':
      if (k != std::string_view::npos) cp = macron[k];
      break;
    case '~':
      if (letter == 'n') cp = 0xF1;
      if (letter == 'N') cp = 0xD1;
      if (letter == 'a') cp = 0xE3;
      if (letter == 'o') cp = 0xF5;
      break;
    case ',':
      if (letter == 'c') cp = 0xE7;
      if (letter == 'C') cp = 0xC7;
      break;
    case '.':
    case '-':
    case '*':
      break;  // dotted / short / obscure vowels of the pronunciation key: the plain letter
    default:
      return std::nullopt;
  }
  std::string out;
  if (cp == 0) {
    out += letter;
  } else {
    nexa::unicode::append_utf8(static_cast<char32_t>(cp), out);
  }
  return out;
}

// `s` with GCIDE's accent markup replaced by UTF-8 ("Zo["o]l." -> "Zoöl."); other brackets stay.
[[nodiscard]] inline std::string convert_accents(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '[') {
      const std::size_t close = s.find(']', i + 1);
      if (close != std::string_view::npos && close - i <= 9) {
        if (auto text = accent_markup(s.substr(i + 1, close - i - 1))) {
          out += *text;
          i = close + 1;
          continue;
        }
      }
    }
    out += s[i++];
  }
  return out;
}

// `s` with GCIDE's accent markup replaced by the bare letter ("Zo["o]l." -> "Zool."), ASCII.
[[nodiscard]] inline std::string plain_accents(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '[' && i + 3 < s.size() && s[i + 3] == ']') {
      const std::string_view m = s.substr(i + 1, 2);
      const bool mark_first = std::string_view("'`^\"=~,.-*").find(m[0]) != std::string_view::npos;
      if (mark_first && is_alpha(m[1])) {
        out += m[1];
        i += 4;
        continue;
      }
      if (is_alpha(m[0]) && m[1] == '^') {
        out += m[0];
        i += 4;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

// One sample as a JSON line (no trailing newline): headword, domain, text, and the text with
// its NEXA-MOE tag prefix ("[BIO] ...") in "tagged".
struct Sample {
  std::string headword;
  Domain domain = Domain::PHYS;
  std::string text;
};

[[nodiscard]] inline std::string tagged_text(const Sample& s) { return domain_tag(s.domain) + " " + s.text; }

[[nodiscard]] inline std::string to_json_line(const Sample& s) {
  return nexa::detail::concat("{\"headword\": ", nexa::json::quote(s.headword), ", \"domain\": \"",
                              domain_name(s.domain), "\", \"text\": ", nexa::json::quote(s.text),
                              ", \"tagged\": ", nexa::json::quote(tagged_text(s)), "}");
}

// ---------------------------------------------------------------------------------------------
// Field labels.

// The domain of one field abbreviation ("Zool.", "Zo["o]l.", "Chemistry"), or nullopt. Case,
// markup and punctuation are ignored: only the ASCII letters are compared.
[[nodiscard]] inline std::optional<Domain> label_domain(std::string_view token) {
  std::string key;
  for (const char c : token) {
    if (is_alpha(c)) key += to_lower(c);
  }
  static const std::map<std::string_view, Domain> table = {
      {"physics", Domain::PHYS},        {"astron", Domain::PHYS},
      {"astronomy", Domain::PHYS},      {"elec", Domain::PHYS},
      {"electricity", Domain::PHYS},    {"opt", Domain::PHYS},
      {"optics", Domain::PHYS},         {"bot", Domain::BIO},
      {"botany", Domain::BIO},          {"zool", Domain::BIO},
      {"zoology", Domain::BIO},         {"anat", Domain::BIO},
      {"anatomy", Domain::BIO},         {"biol", Domain::BIO},
      {"biology", Domain::BIO},         {"physiol", Domain::BIO},
      {"physiology", Domain::BIO},      {"chem", Domain::MAT},
      {"chemistry", Domain::MAT},       {"min", Domain::MAT},
      {"mineralogy", Domain::MAT},      {"metal", Domain::MAT},
      {"metallurgy", Domain::MAT},      {"crystallog", Domain::MAT},
      {"crystallography", Domain::MAT}, {"med", Domain::MED},
      {"medicine", Domain::MED}};
  if (const auto it = table.find(key); it != table.end()) return it->second;
  return std::nullopt;
}

// The field abbreviations of a parenthesised group's content, split at '&', ',', ';', " and ".
[[nodiscard]] inline std::vector<std::string_view> label_tokens(std::string_view content) {
  std::vector<std::string_view> tokens;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= content.size(); ++i) {
    std::size_t skip = 0;
    if (i == content.size() || content[i] == '&' || content[i] == ',' || content[i] == ';') {
      skip = 1;
    } else if (content.substr(i, 5) == " and ") {
      skip = 5;
    }
    if (skip == 0) continue;
    const std::string_view token = trim(content.substr(start, i - start));
    if (!token.empty()) tokens.push_back(token);
    start = i + skip;
    i += skip - 1;
  }
  return tokens;
}

// The domains of a field-label group ("Bot. & Zool.", "Chem., Biochem.", "Mech. & Physics"):
// every token label-like (see label_like_group), at least one naming a domain; else empty.
[[nodiscard]] inline bool label_like_group(std::string_view content);

[[nodiscard]] inline std::vector<Domain> domain_label_group(std::string_view content) {
  if (!label_like_group(content)) return {};
  std::vector<Domain> domains;
  for (const std::string_view t : label_tokens(content)) {
    if (const auto d = label_domain(t)) domains.push_back(*d);
  }
  return domains;
}

// Whether a group's content looks like a field label of any field: "Nat. Hist.", "Law",
// "Arch. & Engin.": short, every token a run of capitalised words.
[[nodiscard]] inline bool label_like_group(std::string_view content) {
  if (content.empty() || content.size() > 40 || !is_upper(content.front())) return false;
  for (const std::string_view t : label_tokens(content)) {
    std::size_t i = 0;
    while (i < t.size()) {
      while (i < t.size() && t[i] == ' ') ++i;
      const std::size_t word = i;
      while (i < t.size() && t[i] != ' ') ++i;
      const std::string_view w = t.substr(word, i - word);
      if (w.empty()) continue;
      if (!is_upper(w.front()) && w != "of" && w != "in") return false;
      for (const char c : w) {
        if (is_digit(c) || c == '(' || c == ')') return false;
      }
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Definition cleaning.

struct Cleaned {
  std::string text;          // cleaned UTF-8 text
  std::set<Domain> domains;  // domains named by the labels found in the text
  bool other_field = false;  // it starts with a label of another field ("(Naut.)")
};

// Removes citations "--Author." (a "--" directly followed by a capital, at the start of a line
// or after a space or quote), up to the end of the line or a following quotation mark.
[[nodiscard]] inline std::string strip_citations(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 2, "--") == 0 && i + 2 < s.size() && (is_upper(s[i + 2]) || s[i + 2] == '[') &&
        (i == 0 || is_space(s[i - 1]) || s[i - 1] == '"')) {
      std::size_t end = i + 2;
      while (end < s.size() && s[end] != '\n' && s[end] != '"' && s[end] != ']') ++end;
      i = end;
      continue;
    }
    out += s[i++];
  }
  return out;
}

// Removes run-on derived forms "-- Me*las"mic, a." (a "--" whose next word carries
// pronunciation marks * ` "), up to the next "--" or the end.
[[nodiscard]] inline std::string strip_derived_forms(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 2, "--") == 0) {
      std::size_t w = i + 2;
      while (w < s.size() && is_space(s[w])) ++w;
      std::size_t e = w;
      while (e < s.size() && !is_space(s[e]) && s[e] != ',') ++e;
      const std::string_view word = s.substr(w, e - w);
      if (!word.empty() && word.find_first_of("*`\"") != std::string_view::npos) {
        const std::size_t next = s.find("--", e);
        i = next == std::string_view::npos ? s.size() : next;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

// Removes every balanced "open ... close" group (nested ones included).
[[nodiscard]] inline std::string strip_groups(std::string_view s, char open) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == open) {
      const std::size_t close = matching_close(s, i);
      if (close != std::string_view::npos) {
        i = close + 1;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

// Removes pronunciations "\Am*pere"\" (both backslashes within 80 bytes).
[[nodiscard]] inline std::string strip_pronunciations(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '\\') {
      const std::size_t close = s.find('\\', i + 1);
      if (close != std::string_view::npos && close - i <= 80) {
        i = close + 1;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

// Whitespace collapsed, no space before , ; : . ) or after (, no leading punctuation.
[[nodiscard]] inline std::string tidy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending_space = false;
  for (const char c : s) {
    if (is_space(c)) {
      pending_space = true;
      continue;
    }
    const bool tight = c == ',' || c == ';' || c == ':' || c == '.' || c == ')';
    if (pending_space && !out.empty() && !tight && out.back() != '(') out += ' ';
    pending_space = false;
    out += c;
  }
  std::size_t start = 0;
  while (start < out.size() &&
         (out[start] == ',' || out[start] == ';' || out[start] == ':' || out[start] == '.' || out[start] == ' ')) {
    ++start;
  }
  return out.substr(start);
}

// Cleans one definition's raw text (markup as in the dictionary) and collects its domain labels.
// Domain labels are removed wherever they are; a leading label of another field ("(Nat.
// Hist.)") too.
[[nodiscard]] inline Cleaned clean_definition(std::string_view raw) {
  Cleaned result;
  const std::string no_cite = strip_derived_forms(strip_citations(raw));
  std::string no_labels;
  no_labels.reserve(no_cite.size());
  const std::string_view s = no_cite;
  bool at_start = true;  // nothing but spaces and labels seen yet
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '(') {
      const std::size_t close = matching_close(s, i);
      if (close != std::string_view::npos) {
        const std::string_view content = s.substr(i + 1, close - i - 1);
        const auto domains = domain_label_group(content);
        // A pronunciation left at the start by a header the parser ended early: "(-tr?-t?d)".
        const bool pronunciation =
            content.find_first_of("*`[") != std::string_view::npos || (!content.empty() && content.front() == '-');
        const bool marked = content.find_first_of("*`") != std::string_view::npos;  // "(k[a^]l*l[=o]"s[u^]m)"
        const bool other_label = at_start && domains.empty() && label_like_group(content);
        if (!domains.empty() || marked || other_label || (at_start && pronunciation)) {
          result.domains.insert(domains.begin(), domains.end());
          result.other_field = result.other_field || other_label;
          no_labels += ' ';
          i = close + 1;
          continue;
        }
      }
    }
    if (!is_space(s[i])) at_start = false;
    no_labels += s[i++];
  }
  std::string text = convert_accents(no_labels);
  text = strip_pronunciations(text);
  text = strip_groups(text, '[');
  // Braces of cross-references, and brackets left unbalanced by truncated entries.
  text.erase(
      std::remove_if(text.begin(), text.end(), [](char c) { return c == '{' || c == '}' || c == '[' || c == ']'; }),
      text.end());
  text = tidy(text);
  // Editors' initials left in the text ("baldness. AS").
  for (const std::string_view initials : {" AS", " PJC", " RDH", " RH"}) {
    if (text.size() > initials.size() && text.compare(text.size() - initials.size(), initials.size(), initials) == 0) {
      text.resize(text.size() - initials.size());
    }
  }
  result.text = repair_utf8(text);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Articles.

// Whether a body line is a source line: "[1913 Webster]", "[WordNet 1.5]", "[PJC]",
// "[Webster 1913 Suppl. +PJC]", "[Century Dict. 1906]", "[RDH]" (trailing junk allowed).
[[nodiscard]] inline bool is_source_line(std::string_view line) {
  const std::string_view t = trim(line);
  if (t.empty() || t.front() != '[') return false;
  const std::size_t close = t.find(']');
  if (close == std::string_view::npos) return false;
  const std::string_view c = t.substr(1, close - 1);
  for (const std::string_view key : {"Webster", "WordNet", "PJC", "Century", "Suppl", " + ", " +", "RDH", "RHUD"}) {
    if (c.find(key) != std::string_view::npos) return true;
  }
  if (c.size() >= 2 && c.size() <= 5) {
    return std::all_of(c.begin(), c.end(), [](char ch) { return is_upper(ch); }) && c != "I";
  }
  return false;
}

// Length of a numbered-sense marker "12." (followed by a space or the end) at the start of `t`;
// 0 when there is none.
[[nodiscard]] inline std::size_t number_marker(std::string_view t) {
  std::size_t n = 0;
  while (n < t.size() && n < 3 && is_digit(t[n])) ++n;
  if (n == 0 || n >= t.size() || t[n] != '.') return 0;
  if (n + 1 < t.size() && !is_space(t[n + 1])) return 0;
  return n + 1;
}

// Length of a lettered sub-sense marker "(a)" at the start of `t`; 0 when there is none.
[[nodiscard]] inline std::size_t letter_marker(std::string_view t) {
  if (t.size() < 3 || t[0] != '(' || !is_lower(t[1]) || t[2] != ')') return 0;
  if (t.size() > 3 && !is_space(t[3])) return 0;
  return 3;
}

// Whether an indented line continues the article header: an open etymology bracket or
// pronunciation, a header line ending in ',' or ';', an etymology "[...", a pronunciation
// "(...)" or a part of speech ("n.", "v. t.", "a.", ...).
[[nodiscard]] inline bool header_continues(std::string_view previous, std::string_view line) {
  const std::string_view p = trim(previous);
  const std::string_view t = trim(line);
  if (t.empty()) return false;
  if (!p.empty() && (p.back() == ',' || p.back() == ';')) return true;
  if (p.size() >= 3 && p.substr(p.size() - 3) == "pl.") return true;  // "n.; pl." then the plural
  if (t.front() == '[' || t.front() == '\\') return true;
  if (t.front() == '(' && letter_marker(t) == 0) {
    const std::size_t close = matching_close(t, 0);
    const std::string_view content = t.substr(1, close == std::string_view::npos ? t.size() - 1 : close - 1);
    const bool label = !domain_label_group(content).empty() || label_like_group(content);
    if (!label && content.find_first_of("[*\"`") != std::string_view::npos) return true;  // pronunciation
    if (!content.empty() && content.front() == '-') return true;                          // "(-l[imac]t)"
  }
  for (const std::string_view pos : {"n.", "a.", "adj.", "adv.", "v.", "v. t.", "v. i.", "p.", "pl.", "prep.", "conj.",
                                     "interj.", "pron.", "imp.", "n. pl."}) {
    if (t.substr(0, pos.size()) == pos &&
        (t.size() == pos.size() || t[pos.size()] == ' ' || t[pos.size()] == ',' || t[pos.size()] == ';')) {
      return true;
    }
  }
  return false;
}

// Counts of what parsing found and dropped.
struct ParseStats {
  std::size_t articles = 0;                            // articles read
  std::size_t definitions = 0;                         // definitions (senses, sub-senses, phrases) with text
  std::size_t unlabelled = 0;                          // definitions with no domain label
  std::size_t ambiguous = 0;                           // definitions with labels of two or more domains: dropped
  std::size_t empty = 0;                               // labelled definitions whose cleaned text is empty: dropped
  std::size_t duplicates = 0;                          // (headword, domain, text) seen before: dropped
  std::map<std::string, std::size_t> ambiguous_pairs;  // "BIO+MED" -> count
};

// The headword of an article: its first line up to the first pronunciation, accents in UTF-8.
[[nodiscard]] inline std::string article_headword(std::string_view first_line) {
  std::string_view h = first_line;
  const std::size_t bs = h.find('\\');
  if (bs != std::string_view::npos) {
    h = h.substr(0, bs);
  } else {
    const std::size_t comma = h.find(',');
    if (comma != std::string_view::npos) h = h.substr(0, comma);
  }
  return repair_utf8(tidy(convert_accents(trim(h))));
}

// The text after a source line's closing bracket ("[1913 Webster] Ilmenite \Il"men*ite\, n."):
// in the package's conversion an article sometimes starts there (when it holds a pronunciation);
// otherwise it is a stray list of index words.
[[nodiscard]] inline std::string_view after_source(std::string_view line) {
  const std::string_view t = trim(line);
  const std::size_t close = t.find(']');
  return close == std::string_view::npos ? std::string_view{} : trim(t.substr(close + 1));
}

// Parses one article given as lines (the header first) into `samples`.
inline void parse_entry(const std::vector<std::string_view>& lines, ParseStats& stats, std::vector<Sample>& samples) {
  if (lines.empty() || trim(lines[0]).empty()) return;
  ++stats.articles;
  const std::string headword = article_headword(lines[0]);
  if (headword.empty()) return;

  // Header: the first line and its continuations.
  std::string header(lines[0]);
  std::size_t li = 1;
  {
    int depth = 0;                  // open etymology brackets
    bool in_pronunciation = false;  // between the backslashes of "\Pro*nun"ci*a`tion\"
    int parens = 0;                 // open parentheses (a pronunciation "(d[~e]r*... or" goes on)
    auto track = [&depth, &in_pronunciation, &parens](std::string_view l) {
      for (const char c : l) {
        if (c == '[') ++depth;
        if (c == ']' && depth > 0) --depth;
        if (c == '(') ++parens;
        if (c == ')' && parens > 0) --parens;
        if (c == '\\') in_pronunciation = !in_pronunciation;
      }
    };
    track(lines[0]);
    while (li < lines.size()) {
      const std::string_view l = lines[li];
      if (trim(l).empty() || is_source_line(l)) break;
      const bool open = depth > 0 || parens > 0 || in_pronunciation || indent_of(l) == 0;
      if (!open && !header_continues(lines[li - 1], l)) break;
      track(l);
      header += '\n';
      header += l;
      ++li;
    }
  }
  std::set<Domain> article_domains;
  {
    const std::string h = strip_groups(strip_pronunciations(plain_accents(header)), '[');
    article_domains = clean_definition(h).domains;
  }

  enum class Kind { Plain, Sense, Sub, Phrase };
  struct Element {
    Kind kind = Kind::Plain;
    std::string raw;
  };
  std::optional<Element> current;
  std::set<Domain> sense_domains = article_domains;
  bool any_definition = false;

  auto emit = [&](const std::set<Domain>& domains, const std::string& text) {
    ++stats.definitions;
    if (domains.empty()) {
      ++stats.unlabelled;
      return;
    }
    if (domains.size() > 1) {
      ++stats.ambiguous;
      std::string key;
      for (const Domain d : domains) {
        if (!key.empty()) key += '+';
        key += domain_name(d);
      }
      ++stats.ambiguous_pairs[key];
      return;
    }
    if (text.empty()) {
      ++stats.empty;
      return;
    }
    samples.push_back(Sample{headword, *domains.begin(), text});
  };

  auto close = [&]() {
    if (!current) return;
    const Cleaned c = clean_definition(current->raw);
    const Kind kind = current->kind;
    current.reset();
    const bool label_only = c.text.empty();
    // A definition's own labels; without any, its parent's ("(Naut.)" alone: none).
    auto own_or = [&c](const std::set<Domain>& parent) {
      return !c.domains.empty() || c.other_field ? c.domains : parent;
    };
    switch (kind) {
      case Kind::Plain:
        if (label_only) {
          // A label line before the senses: the article's label.
          article_domains.insert(c.domains.begin(), c.domains.end());
          sense_domains = article_domains;
          return;
        }
        emit(own_or(article_domains), c.text);
        break;
      case Kind::Sense:
        sense_domains = own_or(article_domains);
        if (label_only) return;  // "4. (Zool.)" followed by (a), (b)
        emit(sense_domains, c.text);
        break;
      case Kind::Sub:
        if (label_only) return;
        emit(own_or(sense_domains), c.text);
        break;
      case Kind::Phrase:
        sense_domains = c.domains;  // a phrase's sub-senses inherit its labels only
        if (label_only) return;
        emit(c.domains, c.text);
        break;
    }
    any_definition = true;
  };

  bool paragraph_start = true;
  bool skipping = false;  // inside a Note:, Syn: or quotation paragraph
  for (; li < lines.size(); ++li) {
    const std::string_view line = lines[li];
    std::string_view t = trim(line);
    if (t.empty() || is_source_line(line)) {
      close();
      paragraph_start = true;
      skipping = !t.empty() && !after_source(line).empty();  // a stray word list runs to the blank line
      continue;
    }
    if (t.substr(0, 5) == "Note:" || t.substr(0, 4) == "Syn:" || t.substr(0, 6) == "Usage:") {
      close();
      skipping = true;
      paragraph_start = false;
      continue;
    }
    if (skipping) continue;
    bool started = false;
    if (const std::size_t n = number_marker(t)) {
      close();
      current = Element{Kind::Sense, {}};
      t = trim(t.substr(n));
      // WordNet's "1. 1 (Electricity) a unit ...": a second, bare sense number.
      std::size_t d = 0;
      while (d < t.size() && is_digit(t[d])) ++d;
      if (d > 0 && d < t.size() && t[d] == ' ') t = trim(t.substr(d));
      started = true;
    }
    // "(a) ..." starts a sub-sense, unless it continues a sentence in lower case ("esp. (a) the
    // sessile species, and (b) the stalked ...").
    const std::size_t letter = letter_marker(t);
    const bool run_on = letter > 0 && !started && current && !current->raw.empty() &&
                        is_lower(trim(t.substr(letter)).empty() ? 'A' : trim(t.substr(letter)).front());
    if (const std::size_t n = run_on ? 0 : letter) {
      close();
      current = Element{Kind::Sub, {}};
      t = trim(t.substr(n));
      started = true;
    }
    if (!started && paragraph_start) {
      if (t.front() == '{') {
        close();
        current = Element{Kind::Phrase, {}};
      } else if (!any_definition) {
        current = Element{Kind::Plain, {}};
      } else {
        // A quotation, or another paragraph continuing the definition before it.
        close();
        skipping = true;
        paragraph_start = false;
        continue;
      }
    }
    paragraph_start = false;
    if (!current) current = Element{Kind::Plain, {}};
    if (!current->raw.empty()) current->raw += '\n';
    current->raw += t;
  }
  close();
}

// Parses one article (its text as in gcide.dict) into labelled samples; unlabelled, ambiguous
// and empty definitions are counted in `stats` and skipped. An article that starts after a
// source line's bracket ("[1913 Webster] Ilmenite \Il"men*ite\, n. ...") is parsed as one of
// its own.
[[nodiscard]] inline std::vector<Sample> parse_article(std::string_view article, ParseStats& stats) {
  std::vector<Sample> samples;
  std::vector<std::string_view> lines;
  for (const std::string_view line : split_lines(article)) {
    if (!lines.empty() && is_source_line(line)) {
      const std::string_view rest = after_source(line);
      if (rest.find('\\') != std::string_view::npos) {
        lines.push_back(line.substr(0, line.size() - rest.size()));
        parse_entry(lines, stats, samples);
        lines.assign(1, rest);
        continue;
      }
    }
    lines.push_back(line);
  }
  parse_entry(lines, stats, samples);
  return samples;
}

// ---------------------------------------------------------------------------------------------
// The dictd files.

// A dictd base64 number ("BQ+" -> 4158): digits A-Z a-z 0-9 + / worth 0-63, most significant
// first.
[[nodiscard]] inline std::uint64_t decode_dictd_number(std::string_view digits) {
  nexa::require(!digits.empty() && digits.size() <= 10, kModule, "bad dictd number '", digits, "'");
  std::uint64_t value = 0;
  for (const char c : digits) {
    std::uint64_t v = 0;
    if (is_upper(c)) {
      v = static_cast<std::uint64_t>(c - 'A');
    } else if (is_lower(c)) {
      v = static_cast<std::uint64_t>(c - 'a') + 26;
    } else if (is_digit(c)) {
      v = static_cast<std::uint64_t>(c - '0') + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else {
      throw nexa::Error(nexa::detail::concat(kModule, ": bad dictd number '", digits, "'"));
    }
    value = value * 64 + v;
  }
  return value;
}

struct IndexEntry {
  std::string headword;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

[[nodiscard]] inline std::vector<IndexEntry> parse_index(std::string_view text) {
  std::vector<IndexEntry> entries;
  std::size_t line_no = 0;
  for (const std::string_view line : split_lines(text)) {
    ++line_no;
    if (trim(line).empty()) continue;
    const std::size_t t1 = line.find('\t');
    const std::size_t t2 = t1 == std::string_view::npos ? t1 : line.find('\t', t1 + 1);
    nexa::require(t2 != std::string_view::npos, kModule, "index line ", line_no,
                  " is not 'headword TAB offset TAB length'");
    std::string_view len = line.substr(t2 + 1);
    if (!len.empty() && len.back() == '\r') len.remove_suffix(1);
    entries.push_back(IndexEntry{std::string(line.substr(0, t1)), decode_dictd_number(line.substr(t1 + 1, t2 - t1 - 1)),
                                 decode_dictd_number(len)});
  }
  return entries;
}

[[nodiscard]] inline std::string read_file(const std::filesystem::path& path) {
  return examples::read_file(path, kModule);
}

// Inflates a gzip (or dictzip) stream, all members.
[[nodiscard]] inline std::string gunzip(std::string_view compressed, std::string_view what = "gzip data") {
  nexa::require(compressed.size() >= 18, kModule, what, " is too short to be gzip data");
  std::string out;
  // ISIZE (the last member's uncompressed size mod 2^32) as a first guess.
  const auto* tail = reinterpret_cast<const unsigned char*>(compressed.data() + compressed.size() - 4);
  out.reserve(static_cast<std::size_t>(tail[0]) | static_cast<std::size_t>(tail[1]) << 8 |
              static_cast<std::size_t>(tail[2]) << 16 | static_cast<std::size_t>(tail[3]) << 24);
  z_stream zs{};
  nexa::require(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, kModule, "inflateInit2 failed");
  std::string chunk(1 << 20, '\0');
  std::size_t pos = 0;
  int rc = Z_OK;
  while (true) {
    const std::size_t avail = std::min<std::size_t>(compressed.size() - pos, 1u << 30);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data() + pos));
    zs.avail_in = static_cast<uInt>(avail);
    zs.next_out = reinterpret_cast<Bytef*>(chunk.data());
    zs.avail_out = static_cast<uInt>(chunk.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    pos += avail - zs.avail_in;
    out.append(chunk.data(), chunk.size() - zs.avail_out);
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow.
      if (pos >= compressed.size() || compressed[pos] != '\x1f') break;
      inflateReset(&zs);
      continue;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) break;
    if (rc == Z_BUF_ERROR && pos >= compressed.size()) break;
  }
  const std::string msg = zs.msg != nullptr ? zs.msg : "";
  inflateEnd(&zs);
  nexa::require(rc == Z_STREAM_END, kModule, what, " is not valid gzip data (zlib: ", rc, msg.empty() ? "" : " ", msg,
                ")");
  return out;
}

// ---------------------------------------------------------------------------------------------
// Corpus and split.

[[nodiscard]] inline std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

// The split of a headword: FNV-1a 64 of its ASCII-lower-cased form, modulo 10: 0-7 train,
// 8 validation, 9 test.
[[nodiscard]] inline Split split_of(std::string_view headword) {
  const std::uint64_t bucket = fnv1a64(lower_ascii(headword)) % 10;
  return bucket < 8 ? Split::Train : bucket == 8 ? Split::Valid : Split::Test;
}

struct Corpus {
  std::vector<Sample> samples;  // in dictionary order
  ParseStats stats;
};

// Parses every article of a dictd dictionary (the index text and the inflated dict text);
// identical (headword, domain, text) samples are kept once.
[[nodiscard]] inline Corpus build_corpus(std::string_view index_text, std::string_view dict_text) {
  Corpus corpus;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (const IndexEntry& e : parse_index(index_text)) {
    if (e.headword.rfind("00-", 0) == 0 || e.headword.rfind("00database", 0) == 0) continue;  // database info
    nexa::require(e.offset <= dict_text.size() && e.length <= dict_text.size() - e.offset, kModule, "index entry '",
                  e.headword, "' points past the end of the dictionary (offset ", e.offset, ", length ", e.length,
                  ", dictionary ", dict_text.size(), " bytes)");
    ranges.emplace_back(e.offset, e.length);
  }
  std::sort(ranges.begin(), ranges.end());
  ranges.erase(std::unique(ranges.begin(), ranges.end()), ranges.end());
  std::unordered_set<std::string> seen;
  for (const auto& [offset, length] : ranges) {
    const std::string_view article = dict_text.substr(offset, length);
    for (Sample& s : parse_article(article, corpus.stats)) {
      std::string key = nexa::detail::concat(lower_ascii(s.headword), '\t', domain_name(s.domain), '\t', s.text);
      if (!seen.insert(std::move(key)).second) {
        ++corpus.stats.duplicates;
        continue;
      }
      corpus.samples.push_back(std::move(s));
    }
  }
  return corpus;
}

// Reads <dict_dir>/gcide.index and <dict_dir>/gcide.dict.dz (or an uncompressed gcide.dict).
[[nodiscard]] inline Corpus build_corpus(const std::filesystem::path& dict_dir) {
  const auto index_path = dict_dir / "gcide.index";
  const auto dz_path = dict_dir / "gcide.dict.dz";
  const auto plain_path = dict_dir / "gcide.dict";
  const bool have_dict = std::filesystem::exists(dz_path) || std::filesystem::exists(plain_path);
  if (!std::filesystem::exists(index_path) || !have_dict) {
    throw nexa::Error(nexa::detail::concat(
        kModule, ": the GCIDE dictionary is not in ", dict_dir.string(), " (need gcide.index and gcide.dict.dz): ",
        "install the Debian package dict-gcide (apt-get install dict-gcide) or pass its directory"));
  }
  const std::string index = read_file(index_path);
  const std::string dict =
      std::filesystem::exists(dz_path) ? gunzip(read_file(dz_path), dz_path.string()) : read_file(plain_path);
  return build_corpus(index, dict);
}

// Samples per domain and split.
using Counts = std::array<std::array<std::size_t, kNumSplits>, kNumDomains>;

[[nodiscard]] inline Counts count_samples(const std::vector<Sample>& samples) {
  Counts counts{};
  for (const Sample& s : samples) {
    ++counts[static_cast<std::size_t>(s.domain)][static_cast<std::size_t>(split_of(s.headword))];
  }
  return counts;
}

}  // namespace gcide
