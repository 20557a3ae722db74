#include <doctest/doctest.h>

#include <string>

#include "io/io_test_util.hpp"
#include "nexa/io/json.hpp"

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
      "",                      // nothing
      "{",                     // unterminated object
      "{\"a\":1",              // unterminated object
      "{\"a\" 1}",             // missing colon
      "{\"a\":1,}",            // trailing comma
      "{a:1}",                 // unquoted key
      "{\"a\":1}x",            // trailing garbage
      "{\"a\":1}{}",           // two documents
      "[1,2",                  // unterminated array
      "[1 2]",                 // missing comma
      "\"abc",                 // unterminated string
      "\"a\\q\"",              // bad escape
      "\"a\\u12\"",            // short \u
      "\"a\\u12G4\"",          // bad hex
      "\"\\ud800\"",           // lone high surrogate
      "\"\\udc00\"",           // lone low surrogate
      "\"\\ud800\\u0041\"",    // high surrogate + non-surrogate
      "\"a\nb\"",              // raw control character
      "\"\xC3\"",              // invalid UTF-8
      "true",                  // unsupported literal
      "null",                  //
      "-1",                    // negative
      "1.5",                   // fraction
      "1e3",                   // exponent
      "01",                    // leading zero
      "18446744073709551616",  // 2^64
      "{\"a\":1,\"a\":2}",     // duplicate key
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
