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

# nexa_cuda_target(<target> [ARCHITECTURES <sm>...]): the settings every nexa CUDA executable
# (tests, benchmarks) uses.
#  - sm_80 and sm_90 (A100, H100; NEXA_CUDA_ARCHITECTURES) unless ARCHITECTURES narrows them, C++20 (-std=c++20 by hand:
#    see above);
#  - every nvcc and host-compiler warning an error; Eigen's nvcc-only pragmas are unknown to g++;
#  - the host code of .cu files sees the same OpenMP nexa headers as the C++ sources do;
#  - the shared CUDA runtime: CUDA::cudart is the shared one, and a second, static runtime in
#    the same process (CMake's default for CUDA targets) would hold its own state.
set(NEXA_CUDA_ARCHITECTURES "80;90" CACHE STRING "GPU architectures of the CUDA tests (a single one halves nvcc's time)")
function(nexa_cuda_target target)
  cmake_parse_arguments(arg "" "" "ARCHITECTURES" ${ARGN})
  if(NOT arg_ARCHITECTURES)
    set(arg_ARCHITECTURES ${NEXA_CUDA_ARCHITECTURES})
  endif()
  set(flags -std=c++20 --Werror=all-warnings -Xcompiler=-Wall,-Wextra,-Wno-unknown-pragmas,-Werror)
  if(OpenMP_CXX_FOUND)
    list(APPEND flags -Xcompiler=-fopenmp)
  endif()
  set_target_properties(${target} PROPERTIES CUDA_ARCHITECTURES "${arg_ARCHITECTURES}" CUDA_RUNTIME_LIBRARY Shared)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${flags}>)
  target_link_libraries(${target} PRIVATE CUDA::cublas CUDA::cudart)
endfunction()
