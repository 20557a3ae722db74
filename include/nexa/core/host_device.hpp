#pragma once
// NEXA_HOST_DEVICE marks small functions (activation functors, ...) that CUDA kernels call too:
// __host__ __device__ under nvcc, nothing for a plain C++ compiler, so CPU builds need no CUDA.
#if defined(__CUDACC__)
#define NEXA_HOST_DEVICE __host__ __device__
#else
#define NEXA_HOST_DEVICE
#endif
