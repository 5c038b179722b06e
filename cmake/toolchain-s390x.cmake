# Cross toolchain for s390x (s390x-linux-gnu) with Debian's cross compiler and qemu-user:
#   cmake -S . -B build-cross-s390x -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-s390x.cmake
# tools/test.sh cross builds and tests with it; see cmake/cross-debian.cmake.
set(POSTHOG_CROSS_TRIPLE s390x-linux-gnu)
set(POSTHOG_CROSS_PROCESSOR s390x)
set(POSTHOG_CROSS_QEMU qemu-s390x)
include(${CMAKE_CURRENT_LIST_DIR}/cross-debian.cmake)
