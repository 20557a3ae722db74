#pragma once
// The per-device AdamW update (train/adamw.hpp) for parameters that live off the CPU:
//   AdamWKernel<Device>::update(w, g, m, v, n, coefficients, apply_decay)
// applies train::adamw_update's per-element formula to n elements on the device. CPU parameters
// use train::adamw_update itself.
#include "nexa/core/device.hpp"

namespace nexa {

template <class D>
struct AdamWKernel;

}  // namespace nexa
