#pragma once
// Sets the thread count of both pools a test may run on: OpenMP's and OpenBLAS's (which is
// OpenMP's own in the OpenMP build, a separate pool in the pthread build).
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef NEXA_HAVE_BLAS
extern "C" void openblas_set_num_threads(int);
#endif

namespace nexa::testing {

inline void set_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
#ifdef NEXA_HAVE_BLAS
  openblas_set_num_threads(n);
#endif
}

}  // namespace nexa::testing
