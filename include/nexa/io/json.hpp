#pragma once
// A small JSON reader and string writer for the subset that safetensors headers use: objects,
// strings (all escapes, \uXXXX with surrogate pairs, UTF-8 checked), non-negative integers and
// arrays, nested to a bounded depth. Anything else (true/false/null, signs, fractions) is
// rejected with a message naming the byte offset. Every read is bounds-checked.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nexa/core/error.hpp"

namespace nexa::json {

struct Value {
  enum class Kind { String, Integer, Array, Object };
  Kind kind = Kind::Object;
  std::string string;                                 // Kind::String
  std::uint64_t integer = 0;                          // Kind::Integer
  std::vector<Value> array;                           // Kind::Array
  std::vector<std::pair<std::string, Value>> object;  // Kind::Object, in file order, keys unique

  [[nodiscard]] bool is_string() const { return kind == Kind::String; }
  [[nodiscard]] bool is_integer() const { return kind == Kind::Integer; }
  [[nodiscard]] bool is_array() const { return kind == Kind::Array; }
  [[nodiscard]] bool is_object() const { return kind == Kind::Object; }
  // The member called `key` of an object, or nullptr.
  [[nodiscard]] const Value* find(std::string_view key) const {
    for (const auto& [k, v] : object)
      if (k == key) return &v;
    return nullptr;
  }
};

[[nodiscard]] inline std::string_view kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::String:
      return "string";
    case Value::Kind::Integer:
      return "integer";
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
  void skip_ws() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }
  void expect(char c) {
    if (at_end()) fail(nexa::detail::concat("expected '", c, "', got the end of the header"));
    if (peek() != c) fail(nexa::detail::concat("expected '", c, "', got '", peek(), "'"));
    ++pos_;
  }

  Value parse_value(int depth) {
    if (depth > max_depth) fail("nesting deeper than 64 levels");
    if (at_end()) fail("expected a value, got the end of the header");
    const char c = peek();
    Value v;
    if (c == '{') {
      v.kind = Value::Kind::Object;
      parse_object(v, depth);
    } else if (c == '[') {
      v.kind = Value::Kind::Array;
      parse_array(v, depth);
    } else if (c == '"') {
      v.kind = Value::Kind::String;
      v.string = parse_string();
    } else if (c >= '0' && c <= '9') {
      v.kind = Value::Kind::Integer;
      v.integer = parse_integer();
    } else {
      fail(nexa::detail::concat("unsupported value starting with '", c,
                                "' (a safetensors header holds only objects, strings and non-negative integers)"));
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

  std::uint64_t parse_integer() {
    const std::size_t start = pos_;
    std::uint64_t value = 0;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      const auto digit = static_cast<std::uint64_t>(peek() - '0');
      if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) fail("integer too large");
      value = value * 10 + digit;
      ++pos_;
    }
    if (pos_ - start > 1 && text_[start] == '0') {
      pos_ = start;
      fail("integer with a leading zero");
    }
    if (!at_end() && (peek() == '.' || peek() == 'e' || peek() == 'E'))
      fail("fractional or exponent numbers are not supported");
    return value;
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

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
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
          append_utf8(out, cp);
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
