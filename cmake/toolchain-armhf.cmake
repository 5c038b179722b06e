# Cross toolchain for armhf (arm-linux-gnueabihf) with Debian's cross compiler and qemu-user:
#   cmake -S . -B build-cross-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-armhf.cmake
# tools/test.sh cross builds and tests with it; see cmake/cross-debian.cmake.
set(POSTHOG_CROSS_TRIPLE arm-linux-gnueabihf)
set(POSTHOG_CROSS_PROCESSOR arm)
set(POSTHOG_CROSS_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/cross-debian.cmake)
