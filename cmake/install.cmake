# `cmake --install` and the CMake package, so that another project can
#   find_package(driftscope REQUIRED)
#   target_link_libraries(app PRIVATE driftscope::engine)   # or driftscope::client
# The public API is include/driftscope/ (docs/api.md). The headers it builds
# on are installed too, under include/driftscope/private/, which consumers
# get on their include path but should not include directly.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_ds_private ${CMAKE_INSTALL_INCLUDEDIR}/driftscope/private)
set(_ds_cmakedir ${CMAKE_INSTALL_LIBDIR}/cmake/driftscope)

# In the build tree targets use the source root as their include path; an
# installed target uses the installed directories instead.
function(_driftscope_install_includes target)
  set(_extra ${ARGN})
  set_property(TARGET ${target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    ${_extra}
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    $<INSTALL_INTERFACE:${_ds_private}>)
endfunction()

# The engine and the libraries of ours it links (per-ISA kernels, CUDA).
set(_ds_targets driftscope_engine)
get_target_property(_ds_engine_links driftscope_engine LINK_LIBRARIES)
foreach(lib IN LISTS _ds_engine_links)
  if(TARGET ${lib} AND lib MATCHES "^driftscope_")
    list(APPEND _ds_targets ${lib})
  endif()
endforeach()
_driftscope_install_includes(driftscope_engine)
set_target_properties(driftscope_engine PROPERTIES EXPORT_NAME engine)
if(TARGET driftscope_cuda)
  _driftscope_install_includes(driftscope_cuda)
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/engine/ DESTINATION ${_ds_private}/engine
  FILES_MATCHING PATTERN "*.h")

set(DRIFTSCOPE_WITH_CLIENT OFF)
if(TARGET driftscope_client)
  set(DRIFTSCOPE_WITH_CLIENT ON)
  _driftscope_install_includes(driftscope_proto
    $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/proto/gen>)
  _driftscope_install_includes(driftscope_protocol)
  _driftscope_install_includes(driftscope_client)
  set_target_properties(driftscope_client PROPERTIES EXPORT_NAME client)
  set_target_properties(driftscope_protocol PROPERTIES EXPORT_NAME protocol)
  set_target_properties(driftscope_proto PROPERTIES EXPORT_NAME proto)
  list(APPEND _ds_targets driftscope_proto driftscope_protocol driftscope_client)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/proto/lib/ DESTINATION ${_ds_private}/proto/lib
    FILES_MATCHING PATTERN "*.h")
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/client/lib/ DESTINATION ${_ds_private}/client/lib
    FILES_MATCHING PATTERN "*.h")
  install(DIRECTORY ${PROJECT_BINARY_DIR}/proto/gen/driftscope/ DESTINATION ${_ds_private}/driftscope
    FILES_MATCHING PATTERN "*.h")
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/proto/driftscope/ DESTINATION ${CMAKE_INSTALL_DATADIR}/driftscope/proto/driftscope
    FILES_MATCHING PATTERN "*.proto")
endif()
foreach(program driftscope driftscope-worker driftscope-coordinator)
  if(TARGET ${program})
    # The per-ISA kernel libraries are shared objects beside the others.
    set_target_properties(${program} PROPERTIES
      INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
    install(TARGETS ${program} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

# The CUDA backend is dlopen'ed, not linked: the loader looks for it in
# ../lib beside the programs (engine/cuda/cuda_backend_loader.cc).
if(TARGET driftscope_cuda_backend)
  install(TARGETS driftscope_cuda_backend LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/driftscope/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/driftscope FILES_MATCHING PATTERN "*.h")
install(TARGETS ${_ds_targets} EXPORT driftscopeTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT driftscopeTargets NAMESPACE driftscope:: DESTINATION ${_ds_cmakedir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/driftscopeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/driftscopeConfig.cmake INSTALL_DESTINATION ${_ds_cmakedir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/driftscopeConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/driftscopeConfig.cmake
  ${PROJECT_BINARY_DIR}/driftscopeConfigVersion.cmake DESTINATION ${_ds_cmakedir})
