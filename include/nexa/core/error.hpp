#pragma once
// nexa::Error: the one exception type the library throws. Messages name the module and
// the expected and actual values so that a bad composition is diagnosed from the text alone.
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace nexa {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

}  // namespace detail

// Throws nexa::Error("<module>: <what>") when `ok` is false. The message is built only on failure.
template <class... Parts>
void require(bool ok, std::string_view module, const Parts&... what) {
  if (!ok) throw Error(detail::concat(module, ": ", what...));
}

// Throws when expected != actual, printing both; values must be streamable.
template <class A, class B>
void require_equal(const A& expected, const B& actual, std::string_view module, std::string_view what) {
  if (!(expected == actual)) {
    throw Error(detail::concat(module, ": ", what, " expected ", expected, ", got ", actual));
  }
}

}  // namespace nexa
