#pragma once
// Declarations shared by the GEMM front end and its per-device kernels.
#include "nexa/core/shape.hpp"

namespace nexa {

enum class Trans { N, T };

// GemmKernel<Device>::run<T>(ta, tb, m, n, k, alpha, A, B, beta, C): row-major, packed
// (leading dimension = stored column count), C = alpha op(A) op(B) + beta C.
template <class D>
struct GemmKernel;

// FullPrecisionGemms<Device>: while one lives, GEMMs on the device compute at full precision even
// where its context allows reduced-precision inputs (cuda: GemmCompute). Routers hold one around
// their logits and gradients, so routing stays fp32 under mixed precision. CPU GEMMs are always
// full precision.
template <class D>
class FullPrecisionGemms;

}  // namespace nexa
