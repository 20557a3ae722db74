# Installation and export of nexa::nexa (find_package(nexa CONFIG)).
include(CMakePackageConfigHelpers)
install(DIRECTORY include/nexa DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS nexa EXPORT nexaTargets)
install(EXPORT nexaTargets NAMESPACE nexa:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/nexa)
configure_package_config_file(cmake/nexaConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/nexaConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/nexa)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/nexaConfigVersion.cmake COMPATIBILITY SameMinorVersion
  ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/nexaConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/nexaConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/nexa)
