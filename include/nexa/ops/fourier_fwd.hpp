#pragma once
// Declarations shared by the Fourier features of m/z (models/spec_embedding.hpp) and their
// per-device kernels. All pointers live on the kernel's device.
//
// FourierKernel<Device> has:
//   features<T>(n, F, mz [n], angular [F] (double), out [n, 2F])
//       out[t, k] = T(sin(double(mz[t]) * angular[k])), out[t, F + k] = T(cos(double(mz[t]) * angular[k]))
//       for t < n, k < F: the angle in double, rounded to T at the end, the same formula on every device.
#include "nexa/core/device.hpp"
#include "nexa/core/shape.hpp"

namespace nexa {

template <class D>
struct FourierKernel;

}  // namespace nexa
