#pragma once
// Device tags. Every tensor, parameter, module and primitive op is templated on one of these;
// the backend chosen by a tag lives in backend/<tag>/.
#include <concepts>
#include <string_view>

namespace nexa {

struct cpu {
  static constexpr std::string_view name = "cpu";
};

struct cuda {
  static constexpr std::string_view name = "cuda";
};

template <class D>
concept Device = std::same_as<D, cpu> || std::same_as<D, cuda>;

}  // namespace nexa
