# `cmake --install <build> [--prefix P]` lays out (docs/clients.md#c):
#   bin/strata-server, bin/strata
#   lib/libstrata_storage_*.a      the engine, one static library per component
#   lib/libstrata_client.a, libstrata_proto.a, libstrata_health_proto.a,
#   libstrata_cluster_proto.a (the range map the client routes by)
#   include/strata/storage/*.h     the engine's public headers (db.h, ...)
#   include/strata/client/*.h      the client's public headers, included as
#                                  "client/strata_client.h"
#   include/strata/v1/kv*.pb.h     the generated strata.v1 messages and stubs
#   lib/cmake/strata/              strataConfig.cmake: strata::storage,
#                                  strata::client
#   lib/pkgconfig/                 strata-storage.pc, strata-client.pc
# The engine's internal headers (util/, db/, ...) and the server's code are
# not installed.

include(CMakePackageConfigHelpers)

set(_strata_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/strata)

# The engine components, in link order (each after the ones that use it).
set(_strata_storage_components
  db compaction version table record memtable cache env util)

set(_strata_exported strata_storage strata_client_lib strata_proto
  strata_health_proto strata_cluster_proto)
foreach(_c ${_strata_storage_components})
  list(APPEND _strata_exported strata_storage_${_c})
  set_target_properties(strata_storage_${_c} PROPERTIES
    EXPORT_NAME storage_${_c})
endforeach()
set_target_properties(strata_storage PROPERTIES EXPORT_NAME storage)
set_target_properties(strata_client_lib PROPERTIES
  EXPORT_NAME client OUTPUT_NAME strata_client)
set_target_properties(strata_proto PROPERTIES EXPORT_NAME proto)
set_target_properties(strata_health_proto PROPERTIES EXPORT_NAME health_proto)
set_target_properties(strata_cluster_proto PROPERTIES
  EXPORT_NAME cluster_proto)

install(TARGETS strata-server strata
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS ${_strata_exported}
  EXPORT strataTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})

install(DIRECTORY ${CMAKE_SOURCE_DIR}/storage/include/strata/storage
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/strata
  FILES_MATCHING PATTERN "*.h")
# cli_util.h belongs to the CLI: not part of the library's API.
install(FILES
    ${CMAKE_SOURCE_DIR}/client/strata_client.h
    ${CMAKE_SOURCE_DIR}/client/transaction.h
    ${CMAKE_SOURCE_DIR}/client/watch_cursor.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/strata/client)
install(FILES
    ${PROJECT_BINARY_DIR}/proto/strata/v1/kv.pb.h
    ${PROJECT_BINARY_DIR}/proto/strata/v1/kv.grpc.pb.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/strata/v1)

install(EXPORT strataTargets
  NAMESPACE strata::
  DESTINATION ${_strata_cmake_dir})
configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/strataConfig.cmake.in
  ${PROJECT_BINARY_DIR}/strataConfig.cmake
  INSTALL_DESTINATION ${_strata_cmake_dir})
# 0.x: a minor version may break the API, so only the same minor matches.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/strataConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
    ${PROJECT_BINARY_DIR}/strataConfig.cmake
    ${PROJECT_BINARY_DIR}/strataConfigVersion.cmake
  DESTINATION ${_strata_cmake_dir})

# pkg-config: the prefix is found from the .pc file's own place, so the
# installed tree can be moved (or installed with --prefix).
file(RELATIVE_PATH STRATA_PC_PREFIX_FROM_PCDIR
  /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
set(STRATA_PC_STORAGE_LIBS "")
foreach(_c ${_strata_storage_components})
  string(APPEND STRATA_PC_STORAGE_LIBS " -lstrata_storage_${_c}")
endforeach()
foreach(_pc strata-storage strata-client)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${_pc}.pc.in
    ${PROJECT_BINARY_DIR}/${_pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${_pc}.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
