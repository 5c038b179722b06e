/*
 * platform: the only place with OS-specific code (docs/architecture.md).
 *
 * Every primitive below has a Linux implementation and a POSIX fallback,
 * chosen at configure time (cmake/PosthogPlatform.cmake sets the PH_HAVE_*
 * macros; -DPOSTHOG_FORCE_POSIX_FALLBACKS=ON sets them all to 0 so that a
 * Linux build runs the code macOS and the BSDs get, as `tools/test.sh
 * fallbacks` does in CI). A build without those macros (no CMake) gets the
 * fallbacks.
 *
 *  - wake-up primitive: what the flusher polls and producers write to.
 *    eventfd (one descriptor, a counter) or else a pipe (pipe2, or pipe and
 *    fcntl). Both ends non-blocking and close-on-exec. Signalling never
 *    blocks and is async-signal-safe; a full pipe means "already signalled".
 *  - randomness: getrandom, else getentropy (256 bytes a call), else
 *    arc4random_buf, else /dev/urandom. Used to seed the per-thread
 *    generators (util.c), never on a hot path.
 *  - clocks: CLOCK_MONOTONIC for intervals, CLOCK_REALTIME for the wall
 *    clock (both POSIX; configure fails without a monotonic clock). Timed
 *    condition waits: condition variables on the monotonic clock where
 *    pthread_condattr_setclock exists (not macOS); else on the realtime
 *    clock, the monotonic deadline converted at each wait (a wall-clock
 *    step during one wait lengthens or shortens that wait; every waiter
 *    re-checks its deadline on the monotonic clock and waits again).
 *  - the program counter of a signal's ucontext (the crash handler):
 *    Linux, macOS, FreeBSD, NetBSD and OpenBSD layouts; 0 elsewhere.
 *  - /proc: the main program's path and the memory map for crash reports
 *    (Linux); without it the path comes from dladdr, and crash reports list
 *    the images loaded when the first crash handler was installed
 *    (errors/crash_report.c).
 *
 * Also chosen at configure time, in the modules that use them:
 * F_OFD_SETLK (spool.c: else POSIX locks plus an in-process registry),
 * MADV_POPULATE_WRITE (queue.c: else no prefaulting), dl_iterate_phdr
 * (errors/native.c: else no $debug_images).
 */
#ifndef POSTHOG_PLATFORM_H
#define POSTHOG_PLATFORM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Configure-time results; absent means "not available". */
#ifndef PH_HAVE_EVENTFD
#define PH_HAVE_EVENTFD 0
#endif
#ifndef PH_HAVE_PIPE2
#define PH_HAVE_PIPE2 0
#endif
#ifndef PH_HAVE_GETRANDOM
#define PH_HAVE_GETRANDOM 0
#endif
#ifndef PH_HAVE_GETENTROPY
#define PH_HAVE_GETENTROPY 0
#endif
#ifndef PH_HAVE_ARC4RANDOM_BUF
#define PH_HAVE_ARC4RANDOM_BUF 0
#endif
#ifndef PH_HAVE_CONDATTR_SETCLOCK
#define PH_HAVE_CONDATTR_SETCLOCK 0
#endif
#ifndef PH_HAVE_OFD_LOCKS
#define PH_HAVE_OFD_LOCKS 0
#endif
#ifndef PH_HAVE_MADV_POPULATE_WRITE
#define PH_HAVE_MADV_POPULATE_WRITE 0
#endif
#ifndef PH_HAVE_DL_ITERATE_PHDR
#define PH_HAVE_DL_ITERATE_PHDR 0
#endif
#ifndef PH_HAVE_PROCFS
#define PH_HAVE_PROCFS 0
#endif
#ifndef PH_FORCED_FALLBACKS
#define PH_FORCED_FALLBACKS 0
#endif

/* ---------------------------------------------------------------- wake-up */

typedef struct {
    int rfd; /* polled for POLLIN; with eventfd the same descriptor as wfd */
    int wfd;
} ph_wake_t;

#define PH_WAKE_NONE ((ph_wake_t){-1, -1})

/* Opens the primitive. 0, or -1 with errno set (and *w == PH_WAKE_NONE). */
int posthog__wake_open(ph_wake_t *w);
/* Closes what is open; *w becomes PH_WAKE_NONE. */
void posthog__wake_close(ph_wake_t *w);
/* Makes rfd readable. Never blocks; async-signal-safe. */
void posthog__wake_signal(const ph_wake_t *w);
/* Consumes every pending signal (rfd not readable afterwards). */
void posthog__wake_drain(const ph_wake_t *w);
/* "eventfd" or "pipe" */
const char *posthog__wake_kind(void);

/* ---------------------------------------------------------------- randomness */

/* Fills buf with n bytes from the system's generator: 0, or -1 when no
 * source answered (the caller mixes in other entropy). */
int posthog__os_random(void *buf, size_t n);
/* "getrandom", "getentropy", "arc4random_buf" or "/dev/urandom" */
const char *posthog__os_random_kind(void);
/* Tests: one source by name (as above); -1 when not built in or it failed. */
int posthog__os_random_from(const char *kind, void *buf, size_t n);

/* ---------------------------------------------------------------- clocks */

int64_t posthog__os_mono_ns(void);
int64_t posthog__os_wall_ms(void);
/* Initialises a condition variable for timed waits on posthog__cond_deadline. */
int posthog__cond_init_mono(pthread_cond_t *cv);
/* The absolute time to give pthread_cond_timedwait on such a condition
 * variable for a deadline in posthog__mono_ms terms (a past one: now). */
struct timespec posthog__cond_deadline(int64_t mono_deadline_ms);
/* "monotonic" or "realtime": the clock of those condition variables */
const char *posthog__cond_clock_kind(void);

/* ---------------------------------------------------------------- process */

/* The interrupted program counter of a signal handler's ucontext (0 when
 * unknown). Async-signal-safe. */
uintptr_t posthog__os_fault_pc(const void *uctx);
/* The main program's file into out (NUL-terminated; "" when unknown):
 * /proc/self/exe, else what dladdr says of `addr_in_main` (an address in
 * the main program), made absolute against the working directory. */
void posthog__os_exe_path(char *out, size_t cap, const void *addr_in_main);
/* An open descriptor of the process's memory map in /proc/<pid>/maps
 * format, or -1. Async-signal-safe. */
int posthog__os_maps_fd(void);

#endif
