# Installation and export of nexa::nexa, for find_package(nexa CONFIG). Headers go to
# <prefix>/include/nexa, the package files to <prefix>/<libdir>/cmake/nexa. On by default when
# nexa is the top-level project; a project that add_subdirectory()s nexa opts in with NEXA_INSTALL.
option(NEXA_INSTALL "Generate nexa's install rules" ${NEXA_IS_TOP_LEVEL})
if(NOT NEXA_INSTALL)
  return()
endif()

include(CMakePackageConfigHelpers)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/nexa DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS nexa EXPORT nexaTargets)
install(EXPORT nexaTargets NAMESPACE nexa:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/nexa)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/nexaConfig.cmake.in
  ${PROJECT_BINARY_DIR}/nexaConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/nexa)
# Header-only: the same package works for any architecture (ARCH_INDEPENDENT).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nexaConfigVersion.cmake COMPATIBILITY SameMinorVersion
  ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/nexaConfig.cmake ${PROJECT_BINARY_DIR}/nexaConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/nexa)
