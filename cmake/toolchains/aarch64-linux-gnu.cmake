# Cross-compile cnorm for 64-bit ARM Linux with Debian's cross toolchain and
# run the tests under qemu-user:
#   apt-get install gcc-aarch64-linux-gnu qemu-user
#   (g++-aarch64-linux-gnu too for the optional C++ header test)
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
#   cmake --build build-aarch64 -j2 && ctest --test-dir build-aarch64
# Another toolchain prefix or sysroot: -DCNORM_CROSS_PREFIX=... -DCNORM_SYSROOT=...
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT DEFINED CNORM_CROSS_PREFIX)
  set(CNORM_CROSS_PREFIX aarch64-linux-gnu-)
endif()
if(NOT DEFINED CNORM_SYSROOT)
  set(CNORM_SYSROOT /usr/aarch64-linux-gnu)
endif()

# try_compile projects re-read this file: hand them the same settings.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES CNORM_CROSS_PREFIX CNORM_SYSROOT CNORM_CROSS_CXX)

set(CMAKE_C_COMPILER ${CNORM_CROSS_PREFIX}gcc)
# C++ is optional (only the header_cxx test uses it): the cross g++ when it
# is installed; without it tests/c leaves that test out instead of trying
# the host's C++ compiler.
find_program(CNORM_CROSS_CXX NAMES ${CNORM_CROSS_PREFIX}g++)
if(CNORM_CROSS_CXX)
  set(CMAKE_CXX_COMPILER ${CNORM_CROSS_CXX})
endif()

# Libraries and headers from the target sysroot only; programs from the host.
set(CMAKE_FIND_ROOT_PATH ${CNORM_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# add_test() and try_run() run aarch64 binaries through qemu, which finds
# the dynamic loader and libc under -L.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;${CNORM_SYSROOT})
