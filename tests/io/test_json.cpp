#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "io/io_test_util.hpp"
#include "nexa/io/json.hpp"
#include "nexa/io/safetensors.hpp"

namespace json = nexa::json;

TEST_CASE("json: parses the safetensors subset") {
  const json::Value v = json::parse(
      R"(  {"__metadata__": {"k": "v", "e": ""}, "a.b": {"dtype":"F32","shape":[2, 3],"data_offsets":[0,24]},)"
      "\n\t\"x\" : [ ] , \"o\":{}}   ");
  REQUIRE(v.is_object());
  REQUIRE(v.object.size() == 4);
  CHECK(v.object[0].first == "__metadata__");  // file order kept
  CHECK(v.find("__metadata__")->find("k")->string == "v");
  const json::Value* t = v.find("a.b");
  REQUIRE(t != nullptr);
  CHECK(t->find("dtype")->string == "F32");
  REQUIRE(t->find("shape")->array.size() == 2);
  CHECK(t->find("shape")->array[1].integer == 3);
  CHECK(t->find("data_offsets")->array[1].integer == 24);
  CHECK(v.find("x")->is_array());
  CHECK(v.find("x")->array.empty());
  CHECK(v.find("o")->object.empty());
  CHECK(v.find("missing") == nullptr);
  CHECK(json::parse("18446744073709551615").integer == 18446744073709551615ull);
  CHECK(json::parse("0").integer == 0);
}

TEST_CASE("json: string escapes and UTF-8") {
  CHECK(json::parse(R"("a\"b\\c\/d\b\f\n\r\t")").string == "a\"b\\c/d\b\f\n\r\t");
  CHECK(json::parse(R"("\u0041\u00e9\u20AC")").string == "A\xC3\xA9\xE2\x82\xAC");
  CHECK(json::parse(R"("\ud83d\ude00")").string == "\xF0\x9F\x98\x80");  // surrogate pair
  CHECK(json::parse("\"caf\xC3\xA9\"").string == "caf\xC3\xA9");         // raw UTF-8
  for (const std::string& s : {std::string("plain"), std::string("q\"b\\n\n\t\x01\x1f end"), std::string("\xC3\xA9")}) {
    CHECK(json::parse(json::quote(s)).string == s);
  }
  CHECK(json::quote("a\x01") == "\"a\\u0001\"");
  CHECK(json::is_valid_utf8("\xF0\x9F\x98\x80"));
  CHECK(!json::is_valid_utf8("\xC0\xAF"));          // overlong
  CHECK(!json::is_valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK(!json::is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK(!json::is_valid_utf8("\xE2\x82"));          // truncated
  CHECK(!json::is_valid_utf8("\x80"));
}

TEST_CASE("json: malformed input raises nexa::Error naming the byte offset") {
  const char* bad[] = {
      "",                    // nothing
      "{",                   // unterminated object
      "{\"a\":1",            // unterminated object
      "{\"a\" 1}",           // missing colon
      "{\"a\":1,}",          // trailing comma
      "{a:1}",               // unquoted key
      "{\"a\":1}x",          // trailing garbage
      "{\"a\":1}{}",         // two documents
      "[1,2",                // unterminated array
      "[1 2]",               // missing comma
      "\"abc",               // unterminated string
      "\"a\\q\"",            // bad escape
      "\"a\\u12\"",          // short \u
      "\"a\\u12G4\"",        // bad hex
      "\"\\ud800\"",         // lone high surrogate
      "\"\\udc00\"",         // lone low surrogate
      "\"\\ud800\\u0041\"",  // high surrogate + non-surrogate
      "\"a\nb\"",            // raw control character
      "\"\xC3\"",            // invalid UTF-8
      "01",                  // leading zero
      "{\"a\":1,\"a\":2}",   // duplicate key
  };
  for (const char* text : bad) {
    INFO("input: ", text);
    NEXA_CHECK_ERROR_CONTAINS(json::parse(text, "ctx"), "ctx: invalid JSON at byte ");
  }
  // Nesting is bounded: no stack overflow on hostile input.
  const std::string deep(100000, '[');
  NEXA_CHECK_ERROR_CONTAINS(json::parse(deep), "nesting deeper than 64 levels");
  NEXA_CHECK_ERROR_CONTAINS(json::parse("{\"a\":1,\"a\":2}"), "duplicate key \"a\"");
}

TEST_CASE("json: literals, integers and floating-point numbers") {
  const json::Value v = json::parse(R"({"t": true, "f": false, "n": null, "list": [true, null, -0.5, 7]})");
  CHECK(v.find("t")->is_bool());
  CHECK(v.find("t")->boolean);
  CHECK(v.find("f")->is_bool());
  CHECK(!v.find("f")->boolean);
  CHECK(v.find("n")->is_null());
  CHECK(json::kind_name(v.find("n")->kind) == "null");
  CHECK(json::kind_name(v.find("t")->kind) == "boolean");
  const auto& list = v.find("list")->array;
  REQUIRE(list.size() == 4);
  CHECK(list[0].boolean);
  CHECK(list[1].is_null());
  CHECK(list[2].is_float());
  CHECK(list[2].as_double() == -0.5);
  CHECK(json::kind_name(list[2].kind) == "float");
  CHECK(list[3].is_integer());
  CHECK(list[3].integer == 7);
  // Byte offsets of each value's first character.
  CHECK(v.offset == 0);
  CHECK(v.find("t")->offset == 6);
  CHECK(list[2].offset == std::string_view(R"({"t": true, "f": false, "n": null, "list": [true, null, )").size());

  // Integers that fit in 64 bits are exact.
  const json::Value big = json::parse("18446744073709551615");
  CHECK(big.is_uint64());
  CHECK(!big.is_int64());
  CHECK(big.integer == std::numeric_limits<std::uint64_t>::max());
  const json::Value max63 = json::parse("9223372036854775807");
  CHECK(max63.is_int64());
  CHECK(max63.as_int64() == std::numeric_limits<std::int64_t>::max());
  const json::Value min63 = json::parse("-9223372036854775808");
  CHECK(min63.is_integer());
  CHECK(min63.negative);
  CHECK(!min63.is_uint64());
  CHECK(min63.is_int64());
  CHECK(min63.as_int64() == std::numeric_limits<std::int64_t>::min());
  CHECK(min63.as_double() == -9223372036854775808.0);
  const json::Value minus_one = json::parse("-1");
  CHECK(minus_one.as_int64() == -1);
  CHECK(minus_one.is_number());
  CHECK(minus_one.as_double() == -1.0);
  const json::Value minus_zero = json::parse("-0");
  CHECK(minus_zero.is_uint64());
  CHECK(minus_zero.integer == 0);
  CHECK(json::parse("9007199254740993").integer == 9007199254740993ull);  // 2^53 + 1: not a double
  CHECK(json::parse("9007199254740993").as_double() == 9007199254740992.0);

  // Integers beyond 64 bits, fractions and exponents are doubles.
  const json::Value wide = json::parse("18446744073709551616");  // 2^64
  CHECK(wide.is_float());
  CHECK(wide.as_double() == 18446744073709551616.0);
  CHECK(json::parse("-9223372036854775809").is_float());
  CHECK(json::parse("1000000000000000019884624838656").as_double() == 1e30);
  CHECK(json::parse("1.5").as_double() == 1.5);
  CHECK(json::parse("1e3").is_float());
  CHECK(json::parse("1e3").as_double() == 1000.0);
  CHECK(json::parse("1E+3").as_double() == 1000.0);
  CHECK(json::parse("-2.5e-3").as_double() == -0.0025);
  CHECK(json::parse("0.1").as_double() == 0.1);  // correctly rounded
  CHECK(json::parse("1e-12").as_double() == 1e-12);
  CHECK(json::parse("0e0").as_double() == 0.0);
  CHECK(json::parse("1.7976931348623157e308").as_double() == std::numeric_limits<double>::max());
  CHECK(json::parse("4.9406564584124654e-324").as_double() == std::numeric_limits<double>::denorm_min());
  // Below the smallest subnormal: rounds to a zero of the right sign.
  const double tiny = json::parse("1e-400").as_double();
  CHECK(tiny == 0.0);
  CHECK(!std::signbit(tiny));
  CHECK(std::signbit(json::parse("-0.0001e-400").as_double()));
  CHECK(json::parse("123456789e-500").as_double() == 0.0);
  CHECK(json::parse("1e-99999999999999999999").as_double() == 0.0);  // exponent saturates
  CHECK(std::signbit(json::parse("-0.0").as_double()));
}

TEST_CASE("json: malformed numbers, literals and escapes; trailing garbage; nesting limit") {
  const std::string nines(400, '9');  // an integer far beyond a double's range
  struct Case {
    const char* text;
    const char* message;
  };
  const Case bad[] = {
      {"-", "invalid JSON at byte 1: expected a digit after '-'"},
      {"--1", "invalid JSON at byte 1: expected a digit after '-'"},
      {"+1", "invalid JSON at byte 0: unexpected character '+'"},
      {".5", "invalid JSON at byte 0: unexpected character '.'"},
      {"1.", "invalid JSON at byte 2: expected a digit after the decimal point"},
      {"1.e3", "invalid JSON at byte 2: expected a digit after the decimal point"},
      {"1e", "invalid JSON at byte 2: expected a digit in the exponent"},
      {"1e+", "invalid JSON at byte 3: expected a digit in the exponent"},
      {"1E-x", "invalid JSON at byte 3: expected a digit in the exponent"},
      {"00", "invalid JSON at byte 0: number with a leading zero"},
      {"-012", "invalid JSON at byte 0: number with a leading zero"},
      {"[1, 02]", "invalid JSON at byte 4: number with a leading zero"},
      {"0x10", "invalid JSON at byte 1: unexpected trailing characters"},
      {"1.2.3", "invalid JSON at byte 3: unexpected trailing characters"},
      {"1e400", "invalid JSON at byte 0: number too large for a double"},
      {"[-1e400]", "invalid JSON at byte 1: number too large for a double"},
      {"1e99999999999999999999", "number too large for a double"},
      {"NaN", "invalid JSON at byte 0: unexpected character 'N'"},
      {"Infinity", "invalid JSON at byte 0: unexpected character 'I'"},
      {"-Infinity", "invalid JSON at byte 1: expected a digit after '-'"},
      {"tru", "invalid JSON at byte 0: invalid literal (expected true)"},
      {"True", "invalid JSON at byte 0: unexpected character 'T'"},
      {"nul", "invalid JSON at byte 0: invalid literal (expected null)"},
      {"[fals]", "invalid JSON at byte 1: invalid literal (expected false)"},
      {"nullx", "invalid JSON at byte 4: unexpected trailing characters"},
      {"truefalse", "invalid JSON at byte 4: unexpected trailing characters"},
      {"1 2", "invalid JSON at byte 2: unexpected trailing characters"},
      {"[1]]", "invalid JSON at byte 3: unexpected trailing characters"},
      {"{} x", "invalid JSON at byte 3: unexpected trailing characters"},
      {"\"a\" \"b\"", "invalid JSON at byte 4: unexpected trailing characters"},
      {"[1,]", "invalid JSON at byte 3: unexpected character ']'"},
      {"[", "invalid JSON at byte 1: expected a value, got the end of the text"},
      {"{\"a\":", "invalid JSON at byte 5: expected a value, got the end of the text"},
      {R"("\x41")", "invalid JSON at byte 2: invalid escape '\\x'"},
      {R"("\U0041")", "invalid JSON at byte 2: invalid escape '\\U'"},
      {R"("\')", "invalid JSON at byte 2: invalid escape '\\''"},
      {R"("\u")", "truncated \\u escape"},
      {R"("\u00g0")", "invalid hex digit in \\u escape"},
      {R"("\ud83d")", "unpaired high surrogate"},
      {R"("\ud83dx")", "unpaired high surrogate"},
      {R"("\ud83d\n")", "unpaired high surrogate"},
      {R"("\ud83d\ud83d")", "high surrogate not followed by a low surrogate"},
      {R"("\ude00")", "unpaired low surrogate"},
      {"\"\\", "unterminated escape"},
      {"\"tab\there\"", "invalid JSON at byte 4: unescaped control character"},
  };
  for (const Case& c : bad) {
    INFO("input: ", std::string(c.text));
    NEXA_CHECK_ERROR_CONTAINS(json::parse(c.text, "ctx"), "ctx: invalid JSON at byte ", c.message);
  }
  NEXA_CHECK_ERROR_CONTAINS(json::parse(nines, "ctx"), "ctx: invalid JSON at byte 0: number too large for a double");

  // 64 levels below the top are allowed; one more is refused, for arrays and objects alike.
  const auto arrays = [](std::size_t n) { return std::string(n, '[') + std::string(n, ']'); };
  const auto objects = [](std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += "{\"k\":";
    s += "0";
    return s + std::string(n, '}');
  };
  CHECK(json::parse(arrays(65)).is_array());
  NEXA_CHECK_ERROR_CONTAINS(json::parse(arrays(66), "ctx"),
                            "ctx: invalid JSON at byte 65: nesting deeper than 64 levels");
  CHECK(json::parse(objects(64)).is_object());
  NEXA_CHECK_ERROR_CONTAINS(json::parse(objects(65)), "nesting deeper than 64 levels");
  NEXA_CHECK_ERROR_CONTAINS(json::parse(objects(100000)), "nesting deeper than 64 levels");
}

// nexa::json now reads all of JSON; the safetensors reader still refuses what a header may not
// hold (these were parse errors of the former subset parser), naming the byte offset.
TEST_CASE("json: safetensors headers hold only objects, arrays, strings and non-negative integers") {
  nexa::testing::TempDir dir;
  const auto path = dir / "header.safetensors";
  const std::string data(8, '\0');
  auto load = [&](const std::string& header) {
    nexa::testing::write_bytes(path, nexa::testing::craft_safetensors(header, data));
    (void)nexa::read_safetensors(path);
  };
  load(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})");                   // the baseline is fine
  const std::string prefix = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,)";  // 8 is at this offset
  const std::string at =
      "safetensors: " + path.string() + ": header: invalid JSON at byte " + std::to_string(prefix.size()) + ": ";
  NEXA_CHECK_ERROR_CONTAINS(load(prefix + "8.0]}}"), at + "fractional or exponent numbers are not supported");
  NEXA_CHECK_ERROR_CONTAINS(load(prefix + "8e0]}}"), at + "fractional or exponent numbers are not supported");
  NEXA_CHECK_ERROR_CONTAINS(load(prefix + "-8]}}"), at + "negative numbers are not supported");
  NEXA_CHECK_ERROR_CONTAINS(load(prefix + "-8.5]}}"), at + "negative numbers are not supported");
  NEXA_CHECK_ERROR_CONTAINS(load(prefix + "18446744073709551616]}}"), at + "integer too large");
  NEXA_CHECK_ERROR_CONTAINS(load(prefix + "null]}}"), at + "unsupported value null");
  NEXA_CHECK_ERROR_CONTAINS(load(prefix + "false]}}"), at + "unsupported value false");
  NEXA_CHECK_ERROR_CONTAINS(load(R"({"a":true})"), "header: invalid JSON at byte 5: unsupported value true");
  NEXA_CHECK_ERROR_CONTAINS(load(R"({"__metadata__":{"k":null}})"), "invalid JSON at byte 21: unsupported value null");
  NEXA_CHECK_ERROR_CONTAINS(load(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})"),
                            "invalid JSON at byte 29: negative numbers are not supported");
  NEXA_CHECK_ERROR_CONTAINS(load(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":0.5}})"),
                            "fractional or exponent numbers are not supported");
}
