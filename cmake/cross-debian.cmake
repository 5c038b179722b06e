# Shared part of the Debian cross toolchain files (cmake/toolchain-*.cmake).
# The including file sets POSTHOG_CROSS_TRIPLE (GNU triplet, also Debian's
# multiarch directory name), POSTHOG_CROSS_PROCESSOR and POSTHOG_CROSS_QEMU.
#
# Two ways to find the target's libraries:
#  - Debian multiarch (the default): `dpkg --add-architecture armhf` and the
#    -dev packages as libcurl4-openssl-dev:armhf put headers under
#    /usr/include/<triplet> and libraries under /usr/lib/<triplet>, where
#    Debian's cross gcc looks by itself.
#  - a sysroot (POSTHOG_CROSS_SYSROOT, cache variable or environment): a
#    directory the target's .deb files were unpacked into (tools/cross.sh
#    does that for s390x, whose packages cannot be co-installed with the
#    host's when the host has security updates the foreign archive lacks).
#
# Tests run through CMAKE_CROSSCOMPILING_EMULATOR (qemu-user), which ctest
# puts in front of every test command that names a target.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${POSTHOG_CROSS_PROCESSOR})

if(NOT DEFINED POSTHOG_CROSS_SYSROOT AND DEFINED ENV{POSTHOG_CROSS_SYSROOT})
  set(POSTHOG_CROSS_SYSROOT "$ENV{POSTHOG_CROSS_SYSROOT}")
endif()
set(POSTHOG_CROSS_SYSROOT "${POSTHOG_CROSS_SYSROOT}" CACHE PATH
    "Unpacked target root for ${POSTHOG_CROSS_TRIPLE} (empty: Debian multiarch packages)")
# try_compile projects re-read this file: hand them the variable.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES POSTHOG_CROSS_SYSROOT)

find_program(POSTHOG_CROSS_CC ${POSTHOG_CROSS_TRIPLE}-gcc)
if(NOT POSTHOG_CROSS_CC)
  message(FATAL_ERROR "${POSTHOG_CROSS_TRIPLE}-gcc not found: install gcc-${POSTHOG_CROSS_TRIPLE} (tools/setup.sh --cross)")
endif()
set(CMAKE_C_COMPILER ${POSTHOG_CROSS_CC})
set(CMAKE_LIBRARY_ARCHITECTURE ${POSTHOG_CROSS_TRIPLE})

if(POSTHOG_CROSS_SYSROOT)
  set(CMAKE_SYSROOT ${POSTHOG_CROSS_SYSROOT})
  set(CMAKE_FIND_ROOT_PATH ${POSTHOG_CROSS_SYSROOT})
  set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
  set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
  set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
  set(ENV{PKG_CONFIG_SYSROOT_DIR} ${POSTHOG_CROSS_SYSROOT})
  set(ENV{PKG_CONFIG_LIBDIR}
      "${POSTHOG_CROSS_SYSROOT}/usr/lib/${POSTHOG_CROSS_TRIPLE}/pkgconfig:${POSTHOG_CROSS_SYSROOT}/usr/share/pkgconfig")
  set(_posthog_qemu_root ${POSTHOG_CROSS_SYSROOT})
else()
  # pkg-config must see the target's .pc files only, never the host's.
  set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${POSTHOG_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
  unset(ENV{PKG_CONFIG_PATH})
  # The dynamic loader and libraries of a multiarch install live in /.
  set(_posthog_qemu_root /)
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)

find_program(POSTHOG_CROSS_QEMU_BIN ${POSTHOG_CROSS_QEMU})
if(POSTHOG_CROSS_QEMU_BIN)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${POSTHOG_CROSS_QEMU_BIN} -L ${_posthog_qemu_root})
endif()
unset(_posthog_qemu_root)
