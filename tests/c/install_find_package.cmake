# ctest install_find_package: `cmake --install` the build into a scratch
# prefix, then configure, build and run tests/c/consumer, a separate
# project that finds the package with find_package(cnorm) and links both
# exported targets.  Run with cmake -P; see tests/c/CMakeLists.txt.
foreach(var BUILD_DIR WORK_DIR CONSUMER_DIR GENERATOR LIBDIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install_find_package.cmake: -D${var}=... missing")
  endif()
endforeach()
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}\n${err}")
  endif()
  message("${out}")
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
set(config_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}" ${config_args})

# only the public header is installed
file(GLOB_RECURSE headers RELATIVE "${prefix}" "${prefix}/include/*")
if(NOT headers STREQUAL "include/cnorm/cnorm.h")
  message(FATAL_ERROR "installed headers: ${headers} (expected include/cnorm/cnorm.h only)")
endif()

set(configure_args -S "${CONSUMER_DIR}" -B "${WORK_DIR}/consumer" -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${prefix}")
if(TOOLCHAIN)
  # a cross toolchain re-roots package searches into its sysroot: name the
  # package directory itself
  list(APPEND configure_args "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN}"
       "-Dcnorm_DIR=${prefix}/${LIBDIR}/cmake/cnorm")
elseif(C_COMPILER)
  list(APPEND configure_args "-DCMAKE_C_COMPILER=${C_COMPILER}")
endif()
if(CONFIG)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
endif()
# the build's own flags (e.g. -fsanitize=... in CMAKE_C_FLAGS): an
# instrumented libcnorm links only into instrumented programs
list(APPEND configure_args "-DCMAKE_C_FLAGS=${C_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}")
run(${CMAKE_COMMAND} ${configure_args})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer" ${config_args})

foreach(exe consumer_shared consumer_static)
  file(GLOB_RECURSE found "${WORK_DIR}/consumer/${exe}" "${WORK_DIR}/consumer/${exe}.exe"
       "${WORK_DIR}/consumer/*/${exe}.exe")
  if(NOT found)
    message(FATAL_ERROR "${exe} was not built")
  endif()
  list(GET found 0 path)
  run(${EMULATOR} "${path}")
endforeach()
