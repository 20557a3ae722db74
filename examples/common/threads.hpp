#pragma once
// threads.hpp: --threads for the example programs: sets both pools the library runs on,
// OpenMP's and OpenBLAS's (the same pool in Debian's OpenMP build of OpenBLAS, a separate one in
// the pthread build). 0 keeps the defaults (every core).
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef NEXA_HAVE_BLAS
extern "C" void openblas_set_num_threads(int);
#endif

namespace examples {

inline void set_threads(int n) {
  if (n <= 0) return;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
#ifdef NEXA_HAVE_BLAS
  openblas_set_num_threads(n);
#endif
}

// The thread count loops will use (1 without OpenMP).
[[nodiscard]] inline int threads_in_use() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace examples
