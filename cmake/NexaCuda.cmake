# Enables CUDA for nexa's own CUDA tests and benchmarks (NEXA_CUDA).
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

# CMake < 3.26 does not know that nvcc >= 12 accepts -std=c++20, so any CUDA target that links
# nexa::nexa (which requires cxx_std_20) fails to generate ("requires the language dialect
# CUDA20"). Teach it the flag; newer CMake already knows it and is left alone.
if(CMAKE_VERSION VERSION_LESS 3.26 AND CMAKE_CUDA_COMPILER_ID STREQUAL "NVIDIA"
   AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0 AND NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
  list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
endif()
