// The generated Unicode tables (nexa/io/unicode_tables.hpp) and the Python-semantics helpers on
// them: known code points per category (no fixture needed), then every code point against
// hashes of Python's results and random combining sequences (tests/fixtures/tokenizer/unicode.json).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nexa/io/unicode_tables.hpp"
#include "nexa/io/wordpiece.hpp"
#include "tokenizer/tokenizer_test_util.hpp"

namespace u = nexa::unicode;
using namespace nexa::tokenizer_testing;
namespace json = nexa::json;

namespace {
std::string hex(char32_t c) {
  constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (auto v = static_cast<std::uint32_t>(c); v || out.empty(); v >>= 4) out.insert(out.begin(), digits[v & 15]);
  return "U+" + out;
}
// UTF-8, so that a failed comparison prints readable text.
std::string s8(std::u32string_view s) { return u::encode_utf8(s); }
}  // namespace

TEST_CASE("unicode: known code points per category") {
  for (char32_t c : {0x0u, 0x7u, 0x1Fu, 0x7Fu, 0x85u, 0xADu, 0x200Bu, 0x200Du, 0xFEFFu, 0xE000u, 0x378u, 0xFFFFu,
                     0xD800u, 0xE0001u, 0x10FFFFu})
    CHECK_MESSAGE(u::is_category_c(c), hex(c));
  for (char32_t c : {U'A', U'z', U' ', U'\u00E9', U'\u4E00', U'\u0300', U'\U0001F916', U'\u2028'})
    CHECK_MESSAGE(!u::is_category_c(c), hex(c));

  for (char32_t c : {U' ', U'\u00A0', U'\u1680', U'\u2000', U'\u2009', U'\u202F', U'\u205F', U'\u3000'})
    CHECK_MESSAGE(u::is_category_zs(c), hex(c));
  for (char32_t c : {U'\t', U'\n', U'\u2028', U'\u2029', U'\u200B', U'a'}) CHECK_MESSAGE(!u::is_category_zs(c), hex(c));

  for (char32_t c : {U'\u0300', U'\u0301', U'\u0308', U'\u0345', U'\u064E', U'\u094D', U'\u05B0', U'\u3099',
                     U'\U0001D167', U'\U000E0100'})
    CHECK_MESSAGE(u::is_category_mn(c), hex(c));
  for (char32_t c : {U'\u093F', U'\u20DD', U'\u302E', U'a', U'\u02C6'})  // Mc, Me, Mc, Ll, Lm
    CHECK_MESSAGE(!u::is_category_mn(c), hex(c));

  for (char32_t c : {U'!', U',', U'-', U'_', U'(', U'}', U'\u00A7', U'\u00BF', U'\u2014', U'\u201C', U'\u3002',
                     U'\uFF01', U'\u060C', U'\U0001E95E'})
    CHECK_MESSAGE(u::is_category_p(c), hex(c));
  for (char32_t c : {U'$', U'+', U'^', U'`', U'|', U'~', U'a', U'\u00A9'})  // Sc, Sm, Sk, Sk, Sm, Sm, Ll, So
    CHECK_MESSAGE(!u::is_category_p(c), hex(c));

  for (char32_t c : {U' ', U'\t', U'\x1C', U'\x85', U'\u2028', U'\u2029', U'\u3000'}) CHECK(u::is_python_space(c));
  for (char32_t c : {U'\u200B', U'\uFEFF', U'a'}) CHECK(!u::is_python_space(c));

  CHECK(u::combining_class(U'a') == 0);
  CHECK(u::combining_class(U'\u0301') == 230);
  CHECK(u::combining_class(U'\u0323') == 220);
  CHECK(u::combining_class(U'\u0345') == 240);
  CHECK(u::combining_class(U'\U0001D165') == 216);
}

TEST_CASE("unicode: str.lower(), NFD and NFC on known inputs") {
  CHECK(s8(u::python_lower(U"ABC\u00C9")) == s8(U"abc\u00E9"));
  CHECK(s8(u::python_lower(U"\u0130")) == s8(U"i\u0307"));  // the one multi-code-point lower-case
  CHECK(s8(u::python_lower(U"\u1E9E\u2126\u212A")) == s8(U"\u00DF\u03C9k"));
  CHECK(s8(u::python_lower(U"\U00010400\u01C5")) == s8(U"\U00010428\u01C6"));
  CHECK(s8(u::python_lower(U"\u039F\u0394\u039F\u03A3")) == s8(U"\u03BF\u03B4\u03BF\u03C2"));  // final sigma
  CHECK(s8(u::python_lower(U"\u03A3\u0391")) == s8(U"\u03C3\u03B1"));
  CHECK(s8(u::python_lower(U"\u03A3")) == s8(U"\u03C3"));
  CHECK(s8(u::python_lower(U"\u0391\u03A3.")) == s8(U"\u03B1\u03C2."));
  CHECK(s8(u::python_lower(U"\u0391\u03A3\u0301\u0391")) == s8(U"\u03B1\u03C3\u0301\u03B1"));  // marks are skipped

  CHECK(s8(u::nfd(U"\u00E9")) == s8(U"e\u0301"));
  CHECK(s8(u::nfd(U"\uAC01")) == s8(U"\u1100\u1161\u11A8"));
  CHECK(s8(u::nfd(U"\u1EAD")) == s8(U"a\u0323\u0302"));
  CHECK(s8(u::nfd(U"a\u0302\u0323")) == s8(U"a\u0323\u0302"));  // canonical ordering
  CHECK(s8(u::nfd(U"\u2126\u212B")) == s8(U"\u03A9A\u030A"));
  CHECK(s8(u::nfc(U"e\u0301")) == s8(U"\u00E9"));
  CHECK(s8(u::nfc(U"a\u0302\u0323")) == s8(U"\u1EAD"));
  CHECK(s8(u::nfc(U"\u1100\u1161\u11A8")) == s8(U"\uAC01"));
  CHECK(s8(u::nfc(U"\u0958")) == s8(U"\u0915\u093C"));  // a composition exclusion
  CHECK(s8(u::nfc(U"\u212B")) == s8(U"\u00C5"));
  CHECK(s8(u::nfc(U"")) == s8(U""));

  CHECK(s8(u::decode_utf8("a\xC3\xA9\xF0\x9F\xA4\x96")) == s8(U"a\u00E9\U0001F916"));
  CHECK(u::encode_utf8(U"a\u00E9\U0001F916") == "a\xC3\xA9\xF0\x9F\xA4\x96");
  CHECK(contains(error_message([] { (void)u::decode_utf8("ab\xFF", "ctx"); }), "ctx: invalid UTF-8 at byte 2"));
  CHECK(contains(error_message([] { (void)u::decode_utf8("\xC0\xAF"); }), "byte 0"));            // overlong
  CHECK(contains(error_message([] { (void)u::decode_utf8("x\xED\xA0\x80"); }), "byte 1"));       // surrogate
  CHECK(contains(error_message([] { (void)u::decode_utf8("xy\xF4\x90\x80\x80"); }), "byte 2"));  // > U+10FFFF
  CHECK(contains(error_message([] { (void)u::decode_utf8("xyz\xE2\x82"); }), "byte 3"));         // truncated
}

namespace {
constexpr std::uint64_t fnv_basis = 0xCBF29CE484222325ull;
void fnv(std::uint64_t& h, std::uint32_t v) { h = (h ^ v) * 0x100000001B3ull; }
void fnv(std::uint64_t& h, const std::u32string& s) {
  for (const char32_t c : s) fnv(h, static_cast<std::uint32_t>(c));
  fnv(h, 0xFFFFFFFFu);
}
std::u32string lower_nfd_strip(const std::u32string& s) {
  std::u32string out;
  for (const char32_t c : u::nfd(u::python_lower(s)))
    if (!u::is_category_mn(c)) out += c;
  return out;
}
}  // namespace

TEST_CASE("unicode: every code point matches Python's unicodedata and str.lower()") {
  const json::Value fixture = load_json(fixture_dir() / "unicode.json");
  REQUIRE_MESSAGE(member(fixture, "unicode").string == nexa::unicode::tables::unicode_version,
                  "unicode.json and unicode_tables.hpp come from different Unicode versions: rerun "
                  "tools/gen_unicode_tables.py and make_fixtures.py with the same Python");
  const json::Value& planes = member(fixture, "planes");
  struct Property {
    const char* name;
    std::u32string (*f)(const std::u32string&);
  };
  const Property props[] = {
      {"category_c", [](const std::u32string& s) { return std::u32string(1, u::is_category_c(s[0]) ? 1 : 0); }},
      {"category_zs", [](const std::u32string& s) { return std::u32string(1, u::is_category_zs(s[0]) ? 1 : 0); }},
      {"category_mn", [](const std::u32string& s) { return std::u32string(1, u::is_category_mn(s[0]) ? 1 : 0); }},
      {"category_p", [](const std::u32string& s) { return std::u32string(1, u::is_category_p(s[0]) ? 1 : 0); }},
      {"lower", [](const std::u32string& s) { return u::python_lower(s); }},
      {"nfd", [](const std::u32string& s) { return u::nfd(s); }},
      {"nfc", [](const std::u32string& s) { return u::nfc(s); }},
      {"lower_nfd_strip", [](const std::u32string& s) { return lower_nfd_strip(s); }},
  };
  for (const auto& p : props) {
    const json::Value& expected = member(planes, p.name);
    REQUIRE(expected.array.size() == 17);
    std::u32string one(1, U'\0');
    for (std::uint32_t plane = 0; plane < 17; ++plane) {
      std::uint64_t h = fnv_basis;
      for (std::uint32_t c = plane << 16; c < ((plane + 1) << 16); ++c) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        one[0] = static_cast<char32_t>(c);
        fnv(h, p.f(one));
      }
      CHECK_MESSAGE(h == expected.array[plane].integer, p.name, " differs from Python in plane ", plane);
    }
  }
}

TEST_CASE("unicode: combining sequences match Python's NFD, NFC and str.lower()") {
  const json::Value fixture = load_json(fixture_dir() / "unicode.json");
  const json::Value& seqs = member(fixture, "sequences");
  REQUIRE(seqs.array.size() > 100);
  for (const auto& s : seqs.array) {
    const std::string& utf8 = member(s, "text").string;
    const std::u32string text = u::decode_utf8(utf8);
    CAPTURE(utf8);
    CHECK(s8(u::nfd(text)) == member(s, "nfd").string);
    CHECK(s8(u::nfc(text)) == member(s, "nfc").string);
    CHECK(s8(u::python_lower(text)) == member(s, "lower").string);
    CHECK(s8(lower_nfd_strip(text)) == member(s, "lower_nfd_strip").string);
  }
}
