#pragma once
// The NEXA-MOE domains the examples' corpora are labelled with (PHYS, BIO, MAT, and MED, kept
// apart for the expert-extension example) and their training tags.
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "nexa/core/error.hpp"

namespace domains {

enum class Domain { PHYS = 0, BIO = 1, MAT = 2, MED = 3 };
inline constexpr std::size_t kNumDomains = 4;
inline constexpr std::array<Domain, kNumDomains> kDomains = {Domain::PHYS, Domain::BIO, Domain::MAT, Domain::MED};

[[nodiscard]] inline std::string_view domain_name(Domain d) {
  switch (d) {
    case Domain::PHYS:
      return "PHYS";
    case Domain::BIO:
      return "BIO";
    case Domain::MAT:
      return "MAT";
    case Domain::MED:
      return "MED";
  }
  return "?";
}

// "[PHYS]", the NEXA-MOE tag prefix of a training sample.
[[nodiscard]] inline std::string domain_tag(Domain d) { return nexa::detail::concat("[", domain_name(d), "]"); }

}  // namespace domains
