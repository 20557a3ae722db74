#pragma once
// DomainTags: NEXA-MOE prefixes training text with a domain tag ("[PHYS] ...", "[BIO] ...",
// "[MAT] ..."). split() strips a leading tag and returns its domain index, which serves as the
// supervised routing label in training (SequenceBatch::domain_labels) and as the override at
// inference (SequenceBatch::domain_override); text without a tag gets -1.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "nexa/core/error.hpp"

namespace nexa {

class DomainTags {
 public:
  explicit DomainTags(std::vector<std::string> tags) : tags_(std::move(tags)) {
    require(!tags_.empty(), "DomainTags", "need at least one tag");
    for (std::size_t i = 0; i < tags_.size(); ++i) {
      require(!tags_[i].empty(), "DomainTags", "tag ", i, " is empty");
      for (std::size_t j = 0; j < i; ++j)
        require(tags_[i] != tags_[j], "DomainTags", "tag ", tags_[i], " appears twice");
    }
  }
  // NEXA-MOE's three domains, in expert order.
  [[nodiscard]] static DomainTags nexa_moe() { return DomainTags({"[PHYS]", "[BIO]", "[MAT]"}); }

  struct Tagged {
    std::int32_t domain = -1;  // index into the tags, -1 when the text has none
    std::string text;          // the text without the tag and the whitespace after it
  };

  [[nodiscard]] Tagged split(std::string_view text) const {
    std::size_t start = 0;
    while (start < text.size() && is_space(text[start])) ++start;
    for (std::size_t i = 0; i < tags_.size(); ++i) {
      if (text.substr(start, tags_[i].size()) != tags_[i]) continue;
      std::size_t rest = start + tags_[i].size();
      while (rest < text.size() && is_space(text[rest])) ++rest;
      return {static_cast<std::int32_t>(i), std::string(text.substr(rest))};
    }
    return {-1, std::string(text.substr(start))};
  }

  [[nodiscard]] std::int32_t index_of(std::string_view tag) const {
    for (std::size_t i = 0; i < tags_.size(); ++i)
      if (tags_[i] == tag) return static_cast<std::int32_t>(i);
    throw Error(detail::concat("DomainTags: unknown tag ", tag, " (known: ", joined(), ")"));
  }
  [[nodiscard]] const std::vector<std::string>& tags() const { return tags_; }

 private:
  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  [[nodiscard]] std::string joined() const {
    std::string s;
    for (const auto& t : tags_) s += (s.empty() ? "" : ", ") + t;
    return s;
  }
  std::vector<std::string> tags_;
};

}  // namespace nexa
