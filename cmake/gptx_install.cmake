# Installs the headers, the gptx::gptx target and gptxConfig.cmake + version file.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/gptx DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS gptx EXPORT gptxTargets)
# OpenMP is linked by the config file when the consumer's compiler has it, not baked in here.
install(EXPORT gptxTargets NAMESPACE gptx:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gptx)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/gptxConfig.cmake.in
  ${PROJECT_BINARY_DIR}/gptxConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gptx)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/gptxConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/gptxConfig.cmake ${PROJECT_BINARY_DIR}/gptxConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gptx)
