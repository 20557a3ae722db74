# Finds nexa's dependencies and attaches them to a target. The results are recorded in
# NEXA_HAVE_OPENMP, NEXA_HAVE_BLAS and NEXA_BLAS_VENDOR, which nexaConfig.cmake.in bakes into the
# installed package, so installed consumers find the same dependencies and get the same flags
# (EIGEN_USE_BLAS) as the build tree.
include(GNUInstallDirs)

macro(nexa_find_dependencies)
  find_package(Eigen3 3.4 REQUIRED NO_MODULE)
  find_package(xtensor REQUIRED)
  find_package(OpenMP COMPONENTS CXX)
  if(OpenMP_CXX_FOUND)
    set(NEXA_HAVE_OPENMP ON)
  else()
    set(NEXA_HAVE_OPENMP OFF)
    message(STATUS "nexa: no OpenMP; parallel loops run serially")
  endif()
  set(NEXA_HAVE_BLAS OFF)
  set(NEXA_BLAS_VENDOR "")
  set(NEXA_BLAS_OPENMP_DIR "")
  if(NEXA_USE_BLAS)
    if(NOT DEFINED BLA_VENDOR)
      set(BLA_VENDOR OpenBLAS)
      # Prefer Debian's OpenMP build of OpenBLAS: it runs on OpenMP's own thread pool, so BLAS
      # and nexa's OpenMP loops never oversubscribe the cores (measured on 2 cores: MoE
      # forward+backward 0.41x of a plain GEMM with the pthread build, 0.88x with this one).
      set(nexa_openblas_openmp_dir "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp")
      if(NEXA_HAVE_OPENMP AND EXISTS "${nexa_openblas_openmp_dir}/libopenblas.so")
        set(NEXA_BLAS_OPENMP_DIR "${nexa_openblas_openmp_dir}")
        list(PREPEND CMAKE_LIBRARY_PATH "${NEXA_BLAS_OPENMP_DIR}")
      endif()
    endif()
    find_package(BLAS)
    if(BLAS_FOUND)
      set(NEXA_HAVE_BLAS ON)
      set(NEXA_BLAS_VENDOR "${BLA_VENDOR}")
      message(STATUS "nexa: Eigen's GEMM runs on BLAS (${BLAS_LIBRARIES})")
    else()
      message(STATUS "nexa: no BLAS (BLA_VENDOR=${BLA_VENDOR}) found; Eigen's own GEMM will be used")
    endif()
  endif()
endmacro()

function(nexa_link_dependencies target)
  target_link_libraries(${target} INTERFACE Eigen3::Eigen xtensor)
  if(NEXA_HAVE_OPENMP)
    target_link_libraries(${target} INTERFACE OpenMP::OpenMP_CXX)
  endif()
  if(NEXA_HAVE_BLAS)
    target_link_libraries(${target} INTERFACE BLAS::BLAS)
    target_compile_definitions(${target} INTERFACE EIGEN_USE_BLAS NEXA_HAVE_BLAS)
  endif()
endfunction()

nexa_find_dependencies()
