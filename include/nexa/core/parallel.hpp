#pragma once
// OpenMP loops that compile to plain loops without -fopenmp (vendored builds), with no
// unknown-pragma warnings. Loops split work by index only, so results never depend on the
// thread count.
#ifdef _OPENMP
#include <omp.h>
#define NEXA_PRAGMA(x) _Pragma(#x)
#define NEXA_PARALLEL_FOR_IF(cond) NEXA_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define NEXA_PARALLEL_FOR_IF(cond)
#endif

namespace nexa {
// Below this many elements of work a loop stays on one thread: forking costs more than it saves.
inline constexpr long parallel_grain = 1L << 14;
}  // namespace nexa
