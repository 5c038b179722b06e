# The platform layer's configure-time choices (src/core/platform.h): each
# PH_HAVE_* is 1 when the system has the Linux (or newer) primitive, else
# the POSIX fallback is built. POSTHOG_FORCE_POSIX_FALLBACKS=ON sets them all
# to 0, so a Linux build runs the code macOS and the BSDs get
# (`tools/test.sh fallbacks`), except dl_iterate_phdr: every ELF system has
# it (Linux, the BSDs); its absence (macOS) disables $debug_images, and that
# branch is compiled (not run) by the posthog_no_elf_check target then.
#
# Sets POSTHOG_PLATFORM_DEFINITIONS, for the library's objects
# (CMakeLists.txt); tests see PH_FORCED_FALLBACKS=1 when forced.
include(CheckSymbolExists)
include(CheckCSourceCompiles)

option(POSTHOG_FORCE_POSIX_FALLBACKS
       "Build the POSIX fallbacks of the platform layer even where the Linux primitives exist" OFF)

set(CMAKE_REQUIRED_DEFINITIONS -D_GNU_SOURCE)
set(CMAKE_REQUIRED_LIBRARIES Threads::Threads)

# Needed everywhere; no fallback worth having.
check_symbol_exists(CLOCK_MONOTONIC "time.h" PH_CHECK_CLOCK_MONOTONIC)
if(NOT PH_CHECK_CLOCK_MONOTONIC)
  message(FATAL_ERROR "libposthog needs clock_gettime(CLOCK_MONOTONIC): every interval, retry "
                      "wait and deadline is measured on it, never on the wall clock")
endif()

set(PH_PLATFORM_CHECKS
  "EVENTFD|eventfd|sys/eventfd.h"
  "PIPE2|pipe2|unistd.h,fcntl.h"
  "GETRANDOM|getrandom|sys/random.h"
  "GETENTROPY|getentropy|unistd.h,sys/random.h"
  "ARC4RANDOM_BUF|arc4random_buf|stdlib.h"
  "CONDATTR_SETCLOCK|pthread_condattr_setclock|pthread.h"
  "OFD_LOCKS|F_OFD_SETLK|fcntl.h"
  "MADV_POPULATE_WRITE|MADV_POPULATE_WRITE|sys/mman.h"
  "DL_ITERATE_PHDR|dl_iterate_phdr|link.h")

set(POSTHOG_PLATFORM_DEFINITIONS)
set(POSTHOG_PLATFORM_SUMMARY)
foreach(chk ${PH_PLATFORM_CHECKS})
  string(REPLACE "|" ";" parts "${chk}")
  list(GET parts 0 name)
  list(GET parts 1 sym)
  list(GET parts 2 headers)
  string(REPLACE "," ";" headers "${headers}")
  set(have 0)
  if(NOT POSTHOG_FORCE_POSIX_FALLBACKS OR name STREQUAL "DL_ITERATE_PHDR")
    check_symbol_exists(${sym} "${headers}" PH_CHECK_${name})
    if(PH_CHECK_${name})
      set(have 1)
    endif()
  endif()
  list(APPEND POSTHOG_PLATFORM_DEFINITIONS PH_HAVE_${name}=${have})
  string(APPEND POSTHOG_PLATFORM_SUMMARY " ${name}=${have}")
endforeach()

# /proc/self/exe and /proc/self/maps: Linux's procfs.
set(have 0)
if(CMAKE_SYSTEM_NAME STREQUAL "Linux" AND NOT POSTHOG_FORCE_POSIX_FALLBACKS)
  set(have 1)
endif()
list(APPEND POSTHOG_PLATFORM_DEFINITIONS PH_HAVE_PROCFS=${have})
string(APPEND POSTHOG_PLATFORM_SUMMARY " PROCFS=${have}")
if(POSTHOG_FORCE_POSIX_FALLBACKS)
  add_compile_definitions(PH_FORCED_FALLBACKS=1)
  string(APPEND POSTHOG_PLATFORM_SUMMARY " (POSIX fallbacks forced)")
endif()
unset(CMAKE_REQUIRED_DEFINITIONS)
unset(CMAKE_REQUIRED_LIBRARIES)

message(STATUS "libposthog platform:${POSTHOG_PLATFORM_SUMMARY}")
