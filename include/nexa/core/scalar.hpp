#pragma once
// Scalar traits: the accumulation type for a storage type (router logits and reductions are
// computed in at least fp32, and in double when the module is instantiated in double).
#include <type_traits>

namespace nexa {

template <class T>
using acc_t = std::conditional_t<(sizeof(T) < sizeof(float)), float, T>;

}  // namespace nexa
