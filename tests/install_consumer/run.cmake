# Installs cafshm into a temporary prefix and uses the installed package as an outside project
# would: checks the installed files (programs, example config, pkg-config file, public headers
# only), runs the installed programs, and builds and runs the consumer project twice, with
# find_package(cafshm) and with pkg-config.
#
#   BUILD_DIR   the cafshm build to install
#   SOURCE_DIR  tests/install_consumer
#   WORK_DIR    scratch directory (removed at the start and at the end)
#   HEADERS_DIR plugin/include/cafshm, the public headers
#   INTERNAL_DIR plugin/src, whose headers must not be installed
#   SHARED_FROM (optional) cafshm's source tree: first configure and build it in
#               WORK_DIR/cafshm-shared with -DBUILD_SHARED_LIBS=ON and install that build
#   LAUNCHER    (optional) compiler launcher (ccache) for that build
set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc)
    file(REMOVE_RECURSE "${WORK_DIR}")
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

function(fail what)
  file(REMOVE_RECURSE "${WORK_DIR}")
  message(FATAL_ERROR "${what}")
endfunction()

if(SHARED_FROM)
  set(BUILD_DIR "${WORK_DIR}/cafshm-shared")
  set(launcher "")
  if(LAUNCHER)
    set(launcher "-DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER}")
  endif()
  run("configuring the shared-library build"
      ${CMAKE_COMMAND} -S "${SHARED_FROM}" -B "${BUILD_DIR}" -DBUILD_SHARED_LIBS=ON
      -DCAFSHM_BUILD_TESTS=OFF -DCAFSHM_BUILD_BENCH=OFF -DCAFSHM_BUILD_EXAMPLES=OFF ${launcher})
  run("building the shared library and the programs" ${CMAKE_COMMAND} --build "${BUILD_DIR}" -j2)
endif()

run("install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")

# -- what was installed -------------------------------------------------------------------------
include(GNUInstallDirs)
foreach(file bin/cafshmd bin/cafshm share/cafshm/default.yaml
             ${CMAKE_INSTALL_LIBDIR}/pkgconfig/cafshm.pc
             ${CMAKE_INSTALL_LIBDIR}/cmake/cafshm/cafshmConfig.cmake
             ${CMAKE_INSTALL_LIBDIR}/systemd/system/cafshmd.service)
  if(NOT EXISTS "${prefix}/${file}")
    fail("not installed: ${file}")
  endif()
endforeach()
file(READ "${prefix}/${CMAKE_INSTALL_LIBDIR}/systemd/system/cafshmd.service" unit)
foreach(line "Restart=on-failure" "RuntimeDirectory=cafshm" "/cafshmd --config /etc/cafshm/cafshmd.yaml"
             "/cafshmd --check-config /etc/cafshm/cafshmd.yaml")
  string(FIND "${unit}" "${line}" at)
  if(at EQUAL -1)
    fail("the installed cafshmd.service lacks '${line}'")
  endif()
endforeach()
if(SHARED_FROM AND NOT EXISTS "${prefix}/${CMAKE_INSTALL_LIBDIR}/libcafshm.so")
  fail("the shared-library build installed no libcafshm.so")
endif()
file(GLOB installed_headers RELATIVE "${prefix}/include/cafshm" "${prefix}/include/cafshm/*")
file(GLOB public_headers RELATIVE "${HEADERS_DIR}" "${HEADERS_DIR}/*")
list(SORT installed_headers)
list(SORT public_headers)
if(NOT installed_headers STREQUAL public_headers)
  fail("installed headers (${installed_headers}) are not the public ones (${public_headers})")
endif()
file(GLOB_RECURSE internal_headers RELATIVE "${INTERNAL_DIR}" "${INTERNAL_DIR}/*.hpp")
file(GLOB_RECURSE installed_files RELATIVE "${prefix}" "${prefix}/*")
foreach(internal ${internal_headers})
  get_filename_component(internal_name "${internal}" NAME)
  foreach(file ${installed_files})
    get_filename_component(name "${file}" NAME)
    if(name STREQUAL internal_name)
      fail("internal header installed: ${file}")
    endif()
  endforeach()
endforeach()

# -- the installed programs run -----------------------------------------------------------------
run("cafshmd --version" "${prefix}/bin/cafshmd" --version)
if(NOT run_output MATCHES "cafshm")
  fail("cafshmd --version printed: ${run_output}")
endif()
run("cafshm --version" "${prefix}/bin/cafshm" --version)

# -- find_package(cafshm) from a C++17 project ----------------------------------------------------
run("configuring the consumer"
    ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -DCMAKE_PREFIX_PATH=${prefix})
run("building the consumer" ${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("the consumer (find_package)" "${WORK_DIR}/build/consumer")

# -- pkg-config ---------------------------------------------------------------------------------
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${prefix}/${CMAKE_INSTALL_LIBDIR}/pkgconfig")
run("pkg-config --cflags --libs --static cafshm"
    ${PKG_CONFIG} --cflags --libs --static cafshm)
string(STRIP "${run_output}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
find_program(CXX NAMES c++ g++ REQUIRED)
set(rpath "")
if(SHARED_FROM)
  set(rpath "-Wl,-rpath,${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
run("building the consumer with pkg-config's flags"
    ${LAUNCHER} ${CXX} "${SOURCE_DIR}/main.cpp" -o "${WORK_DIR}/consumer-pc" ${flags} ${rpath})
run("the consumer (pkg-config)" "${WORK_DIR}/consumer-pc")

file(REMOVE_RECURSE "${WORK_DIR}")
