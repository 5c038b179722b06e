# Cross toolchain for arm64 (aarch64-linux-gnu) with Debian's cross compiler and qemu-user:
#   cmake -S . -B build-cross-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-arm64.cmake
# tools/test.sh cross builds and tests with it; see cmake/cross-debian.cmake.
set(POSTHOG_CROSS_TRIPLE aarch64-linux-gnu)
set(POSTHOG_CROSS_PROCESSOR aarch64)
set(POSTHOG_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/cross-debian.cmake)
