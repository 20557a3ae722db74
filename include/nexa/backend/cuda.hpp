#pragma once
// The CUDA backend: Buffer<T, cuda> and host transfers, CudaContext (stream and cuBLAS handle),
// GemmKernel<cuda> and RoutingKernel<cuda>, the elementwise, activation, norm, dropout, loss and
// AdamW kernels (so Linear, the norms, activations, Dropout, T5FFN, the losses and AdamW run with
// D = cuda), the caching allocator, bfloat16/half and grouped GEMM, FlashAttention-2 and NF4
// kernels, together with the op front ends they serve.
// Include it, from a .cu file compiled by nvcc, to use Tensor<T, cuda> with nexa::ops.
#if !defined(__CUDACC__)
#error "nexa/backend/cuda.hpp contains CUDA kernels and must be compiled by nvcc (a .cu source, or LANGUAGE CUDA)"
#endif

// nexa uses Eigen on the host only (the CPU backend behind the op front ends). Under nvcc,
// Eigen 3.4 marks its functions __host__ __device__ and nvcc 12+ then warns about them (20012,
// 20013, 20015); EIGEN_NO_CUDA makes nvcc see the same host-only Eigen as g++ does. It takes
// effect only if Eigen has not been included yet in this translation unit; define it yourself
// before any Eigen include otherwise (and do not include this header where device code needs Eigen).
#if !defined(EIGEN_NO_CUDA) && !defined(EIGEN_WORLD_VERSION)
#define EIGEN_NO_CUDA
#endif

#include "nexa/backend/cuda/activation.hpp"
#include "nexa/backend/cuda/adamw.hpp"
#include "nexa/backend/cuda/allocator.hpp"
#include "nexa/backend/cuda/aux_loss.hpp"
#include "nexa/backend/cuda/buffer.hpp"
#include "nexa/backend/cuda/check.hpp"
#include "nexa/backend/cuda/context.hpp"
#include "nexa/backend/cuda/data_type.hpp"
#include "nexa/backend/cuda/dropout.hpp"
#include "nexa/backend/cuda/elementwise.hpp"
#include "nexa/backend/cuda/flash_attention.hpp"
#include "nexa/backend/cuda/fourier.hpp"
#include "nexa/backend/cuda/gemm.hpp"
#include "nexa/backend/cuda/grouped_gemm.hpp"
#include "nexa/backend/cuda/int8_mxfp4.hpp"
#include "nexa/backend/cuda/layout.hpp"
#include "nexa/backend/cuda/loss.hpp"
#include "nexa/backend/cuda/nf4.hpp"
#include "nexa/backend/cuda/norm.hpp"
#include "nexa/backend/cuda/routing.hpp"
#include "nexa/ops/elementwise.hpp"
#include "nexa/ops/gemm.hpp"
#include "nexa/ops/grouped_gemm.hpp"
#include "nexa/ops/routing.hpp"
