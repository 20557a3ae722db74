# Finds NCCL next to the CUDA toolkit (after NexaCuda.cmake): sets NEXA_NCCL_FOUND and defines the
# imported target nexa::nccl (nccl.h's directory and libnccl, with CUDA's runtime), which
# nexa/dist/nccl_comm.hpp needs. Without NCCL the NCCL checks and tests are left out.
# Included from every directory that needs it: the target is global, the variable per directory.
if(TARGET nexa::nccl)
  set(NEXA_NCCL_FOUND TRUE)
  return()
endif()
find_path(NEXA_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}/include)
find_library(NEXA_NCCL_LIBRARY nccl
  HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib64 ${CUDAToolkit_LIBRARY_ROOT}/lib)
if(NEXA_NCCL_INCLUDE_DIR AND NEXA_NCCL_LIBRARY)
  set(NEXA_NCCL_FOUND TRUE)
  add_library(nexa::nccl UNKNOWN IMPORTED GLOBAL)
  set_target_properties(nexa::nccl PROPERTIES IMPORTED_LOCATION ${NEXA_NCCL_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${NEXA_NCCL_INCLUDE_DIR} INTERFACE_LINK_LIBRARIES CUDA::cudart)
  message(STATUS "nexa: NCCL found: ${NEXA_NCCL_LIBRARY}")
else()
  set(NEXA_NCCL_FOUND FALSE)
  message(STATUS "nexa: NCCL not found next to CUDA, nexa/dist/nccl_comm.hpp is not checked or tested")
endif()
