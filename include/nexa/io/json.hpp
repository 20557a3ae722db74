#pragma once
// A JSON reader and string writer (RFC 8259): objects, arrays, strings (all escapes, \uXXXX
// with surrogate pairs, UTF-8 checked), numbers, true, false and null, nested to a bounded
// depth. Integers that fit in 64 bits are kept exact (Kind::Integer: std::uint64_t for 0 to
// 2^64-1, std::int64_t for negatives down to -2^63); other numbers (fractions, exponents, wider
// integers) are read as the nearest double (Kind::Float). Object keys must be unique. Errors name
// the byte offset; every read is bounds-checked. Users with a narrower schema (the safetensors
// header) check the kinds themselves.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "nexa/core/error.hpp"
#include "nexa/io/utf8.hpp"

namespace nexa::json {

struct Value {
  enum class Kind { Null, Bool, Integer, Float, String, Array, Object };
  // Special members are defined below, once Value is complete: `object` holds pair<string, Value>,
  // which needs a complete Value, and clang instantiates the implicit ones inside the class.
  Value() = default;
  Value(const Value&);
  Value(Value&&) noexcept;
  Value& operator=(const Value&);
  Value& operator=(Value&&) noexcept;
  ~Value();

  Kind kind = Kind::Object;
  bool boolean = false;                               // Kind::Bool
  std::uint64_t integer = 0;                          // Kind::Integer: the value when non-negative, else its
                                                      // two's complement (read negatives with as_int64())
  bool negative = false;                              // Kind::Integer: the value is below zero
  double number = 0;                                  // Kind::Float: the value; Kind::Integer: the nearest double
  std::string string;                                 // Kind::String
  std::vector<Value> array;                           // Kind::Array
  std::vector<std::pair<std::string, Value>> object;  // Kind::Object, in file order, keys unique
  std::size_t offset = 0;                             // byte offset of the value's first character

  [[nodiscard]] bool is_null() const { return kind == Kind::Null; }
  [[nodiscard]] bool is_bool() const { return kind == Kind::Bool; }
  [[nodiscard]] bool is_integer() const { return kind == Kind::Integer; }
  [[nodiscard]] bool is_float() const { return kind == Kind::Float; }
  [[nodiscard]] bool is_number() const { return kind == Kind::Integer || kind == Kind::Float; }
  [[nodiscard]] bool is_string() const { return kind == Kind::String; }
  [[nodiscard]] bool is_array() const { return kind == Kind::Array; }
  [[nodiscard]] bool is_object() const { return kind == Kind::Object; }
  // An integer in [0, 2^64): `integer` holds it.
  [[nodiscard]] bool is_uint64() const { return kind == Kind::Integer && !negative; }
  // An integer in [-2^63, 2^63): as_int64() returns it.
  [[nodiscard]] bool is_int64() const {
    return kind == Kind::Integer &&
           (negative || integer <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
  }
  // The value of an integer for which is_int64() holds.
  [[nodiscard]] std::int64_t as_int64() const { return static_cast<std::int64_t>(integer); }
  // The value of a number (Kind::Integer or Kind::Float) as a double, rounded to nearest.
  [[nodiscard]] double as_double() const { return number; }
  // The member called `key` of an object, or nullptr.
  [[nodiscard]] const Value* find(std::string_view key) const;
};

inline Value::Value(const Value&) = default;
inline Value::Value(Value&&) noexcept = default;
inline Value& Value::operator=(const Value&) = default;
inline Value& Value::operator=(Value&&) noexcept = default;
inline Value::~Value() = default;

inline const Value* Value::find(std::string_view key) const {
  for (const auto& [k, v] : object)
    if (k == key) return &v;
  return nullptr;
}

[[nodiscard]] inline std::string_view kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::Null:
      return "null";
    case Value::Kind::Bool:
      return "boolean";
    case Value::Kind::Integer:
      return "integer";
    case Value::Kind::Float:
      return "float";
    case Value::Kind::String:
      return "string";
    case Value::Kind::Array:
      return "array";
    case Value::Kind::Object:
      return "object";
  }
  return "value";
}

// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
[[nodiscard]] inline bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07u;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    constexpr std::uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// `s` as a JSON string literal, quotes included. Control characters, '"' and '\' are escaped;
// other bytes (UTF-8) are copied as they are, as the reference serializer does.
[[nodiscard]] inline std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          constexpr char hex[] = "0123456789abcdef";
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

namespace detail {

class Parser {
 public:
  static constexpr int max_depth = 64;

  Parser(std::string_view text, std::string_view context) : text_(text), context_(context) {}

  Value parse_document() {
    skip_ws();
    Value v = parse_value(0);
    skip_ws();
    if (pos_ != text_.size()) fail("unexpected trailing characters after the top-level value");
    return v;
  }

 private:
  [[noreturn]] void fail(std::string_view what) const {
    throw Error(nexa::detail::concat(context_, ": invalid JSON at byte ", pos_, ": ", what));
  }
  [[nodiscard]] bool at_end() const { return pos_ >= text_.size(); }
  [[nodiscard]] char peek() const { return text_[pos_]; }  // callers check at_end() first
  [[nodiscard]] bool at_digit() const { return !at_end() && peek() >= '0' && peek() <= '9'; }
  void skip_ws() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }
  void expect(char c) {
    if (at_end()) fail(nexa::detail::concat("expected '", c, "', got the end of the text"));
    if (peek() != c) fail(nexa::detail::concat("expected '", c, "', got '", peek(), "'"));
    ++pos_;
  }

  Value parse_value(int depth) {
    if (depth > max_depth) fail("nesting deeper than 64 levels");
    if (at_end()) fail("expected a value, got the end of the text");
    const char c = peek();
    Value v;
    v.offset = pos_;
    if (c == '{') {
      v.kind = Value::Kind::Object;
      parse_object(v, depth);
    } else if (c == '[') {
      v.kind = Value::Kind::Array;
      parse_array(v, depth);
    } else if (c == '"') {
      v.kind = Value::Kind::String;
      v.string = parse_string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      parse_number(v);
    } else if (c == 't' || c == 'f' || c == 'n') {
      const std::string_view word = c == 't' ? "true" : c == 'f' ? "false" : "null";
      if (text_.substr(pos_, word.size()) != word) fail(nexa::detail::concat("invalid literal (expected ", word, ")"));
      pos_ += word.size();
      v.kind = c == 'n' ? Value::Kind::Null : Value::Kind::Bool;
      v.boolean = c == 't';
    } else {
      fail(nexa::detail::concat("unexpected character '", c, "' at the start of a value"));
    }
    return v;
  }

  void parse_object(Value& v, int depth) {
    expect('{');
    skip_ws();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_ws();
      if (at_end() || peek() != '"') fail("expected a string key");
      const std::size_t key_pos = pos_;
      std::string key = parse_string();
      for (const auto& member : v.object) {
        if (member.first == key) {
          pos_ = key_pos;
          fail(nexa::detail::concat("duplicate key ", quote(key)));
        }
      }
      skip_ws();
      expect(':');
      skip_ws();
      Value member = parse_value(depth + 1);
      v.object.emplace_back(std::move(key), std::move(member));
      skip_ws();
      if (at_end()) fail("unterminated object");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}');
      return;
    }
  }

  void parse_array(Value& v, int depth) {
    expect('[');
    skip_ws();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_ws();
      v.array.push_back(parse_value(depth + 1));
      skip_ws();
      if (at_end()) fail("unterminated array");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']');
      return;
    }
  }

  // number = [ "-" ] ( "0" / [1-9] *DIGIT ) [ "." 1*DIGIT ] [ ( "e" / "E" ) [ "+" / "-" ] 1*DIGIT ]
  void parse_number(Value& v) {
    const std::size_t start = pos_;
    const bool minus = peek() == '-';
    if (minus) ++pos_;
    if (!at_digit()) fail("expected a digit after '-'");
    if (peek() == '0') {
      ++pos_;
      if (at_digit()) {
        pos_ = start;
        fail("number with a leading zero");
      }
    } else {
      while (at_digit()) ++pos_;
    }
    const std::size_t int_end = pos_;
    bool fraction_or_exponent = false;
    if (!at_end() && peek() == '.') {
      ++pos_;
      if (!at_digit()) fail("expected a digit after the decimal point");
      while (at_digit()) ++pos_;
      fraction_or_exponent = true;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (!at_digit()) fail("expected a digit in the exponent");
      while (at_digit()) ++pos_;
      fraction_or_exponent = true;
    }
    const std::string_view literal = text_.substr(start, pos_ - start);

    if (!fraction_or_exponent) {
      std::uint64_t magnitude = 0;
      bool fits = true;
      for (std::size_t i = start + (minus ? 1 : 0); i < int_end && fits; ++i) {
        const auto digit = static_cast<std::uint64_t>(text_[i] - '0');
        if (magnitude > (std::numeric_limits<std::uint64_t>::max() - digit) / 10)
          fits = false;
        else
          magnitude = magnitude * 10 + digit;
      }
      constexpr std::uint64_t int64_min_magnitude = std::uint64_t{1} << 63;
      if (fits && (!minus || magnitude <= int64_min_magnitude)) {
        v.kind = Value::Kind::Integer;
        v.negative = minus && magnitude != 0;  // "-0" is the integer 0
        v.integer = v.negative ? std::uint64_t{0} - magnitude : magnitude;
        v.number = v.negative ? -static_cast<double>(magnitude) : static_cast<double>(magnitude);
        return;
      }
      // An integer beyond 64 bits is read as the nearest double, below.
    }
    v.kind = Value::Kind::Float;
    const auto [end, ec] = std::from_chars(literal.data(), literal.data() + literal.size(), v.number);
    if (ec == std::errc::result_out_of_range && below_smallest_double(literal)) {
      v.number = minus ? -0.0 : 0.0;
    } else if (ec == std::errc::result_out_of_range) {
      pos_ = start;
      fail("number too large for a double");
    } else if (ec != std::errc() || end != literal.data() + literal.size()) {
      pos_ = start;
      fail("malformed number");  // the grammar above already holds; from_chars agrees
    }
  }

  // For a literal from_chars reports out of range: true when its magnitude is below 1 (so it
  // underflows to zero), false when it overflows. The literal has at least one non-zero digit.
  static bool below_smallest_double(std::string_view literal) {
    bool seen_point = false, seen_nonzero = false;
    long long digits_before_point = 0, zeros_after_point = 0;
    std::size_t i = literal[0] == '-' ? 1 : 0;
    for (; i < literal.size() && literal[i] != 'e' && literal[i] != 'E'; ++i) {
      const char c = literal[i];
      if (c == '.') {
        seen_point = true;
      } else if (!seen_point) {
        if (c != '0' || seen_nonzero) {
          seen_nonzero = true;
          ++digits_before_point;
        }
      } else if (!seen_nonzero) {
        if (c == '0')
          ++zeros_after_point;
        else
          seen_nonzero = true;
      }
    }
    // The decimal exponent of the first non-zero digit, before the e part is applied.
    const long long order = digits_before_point > 0 ? digits_before_point - 1 : -(zeros_after_point + 1);
    long long exponent = 0;
    if (i < literal.size()) {
      ++i;
      const bool exponent_minus = literal[i] == '-';
      if (literal[i] == '+' || literal[i] == '-') ++i;
      for (; i < literal.size(); ++i) {
        if (exponent < 1'000'000'000) exponent = exponent * 10 + (literal[i] - '0');  // saturates
      }
      if (exponent_minus) exponent = -exponent;
    }
    return order + exponent < 0;
  }

  unsigned hex4() {
    if (text_.size() - pos_ < 4) fail("truncated \\u escape");
    unsigned value = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = text_[pos_++];
      value <<= 4;
      if (h >= '0' && h <= '9')
        value |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f')
        value |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        value |= static_cast<unsigned>(h - 'A' + 10);
      else
        fail("invalid hex digit in \\u escape");
    }
    return value;
  }

  std::string parse_string() {
    const std::size_t start = pos_;
    expect('"');
    std::string out;
    for (;;) {
      if (at_end()) {
        pos_ = start;
        fail("unterminated string");
      }
      const char c = text_[pos_++];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) {
        --pos_;
        fail("unescaped control character in a string");
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (at_end()) fail("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (text_.size() - pos_ < 2 || text_[pos_] != '\\' || text_[pos_ + 1] != 'u')
              fail("unpaired high surrogate in \\u escape");
            pos_ += 2;
            const std::uint32_t low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          unicode::append_utf8(static_cast<char32_t>(cp), out);
          break;
        }
        default:
          --pos_;
          fail(nexa::detail::concat("invalid escape '\\", e, "'"));
      }
    }
    if (!is_valid_utf8(out)) {
      pos_ = start;
      fail("string is not valid UTF-8");
    }
    return out;
  }

  std::string_view text_;
  std::string_view context_;
  std::size_t pos_ = 0;
};

}  // namespace detail

// Parses one JSON document (surrounding whitespace allowed). Errors throw nexa::Error
// "<context>: invalid JSON at byte <offset>: <what>".
[[nodiscard]] inline Value parse(std::string_view text, std::string_view context = "json") {
  return detail::Parser(text, context).parse_document();
}

}  // namespace nexa::json
