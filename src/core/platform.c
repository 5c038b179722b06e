/*
 * platform: OS-specific primitives behind one interface (see platform.h).
 * Each PH_HAVE_* branch is chosen at configure time; the #else branches are
 * the POSIX fallbacks.
 */
#include "platform.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if PH_HAVE_EVENTFD
#include <sys/eventfd.h>
#endif
#if PH_HAVE_GETRANDOM
#include <sys/random.h>
#endif
#if PH_HAVE_GETENTROPY && defined(__APPLE__)
#include <sys/random.h> /* getentropy lives here on macOS, in unistd.h elsewhere */
#endif
#if defined(__APPLE__)
#include <sys/ucontext.h> /* <ucontext.h> refuses without _XOPEN_SOURCE */
#elif !defined(__OpenBSD__) /* OpenBSD: ucontext_t is signal.h's struct sigcontext */
#include <ucontext.h>
#endif

/* ---------------------------------------------------------------- wake-up */

#if !PH_HAVE_EVENTFD && !PH_HAVE_PIPE2
/* FD_CLOEXEC and O_NONBLOCK on a descriptor that has neither. */
static int set_flags(int fd) {
    int fdf = fcntl(fd, F_GETFD);
    int fl = fcntl(fd, F_GETFL);
    if (fdf < 0 || fl < 0 || fcntl(fd, F_SETFD, fdf | FD_CLOEXEC) < 0 ||
        fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}
#endif

int posthog__wake_open(ph_wake_t *w) {
    *w = PH_WAKE_NONE;
#if PH_HAVE_EVENTFD
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return -1;
    w->rfd = w->wfd = fd;
    return 0;
#else
    int p[2];
#if PH_HAVE_PIPE2
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC)) return -1;
#else
    /* Without pipe2 a fork+exec on another thread between pipe() and the
     * fcntl below can inherit the descriptors: a leak into that program,
     * not a fault here. */
    if (pipe(p)) return -1;
    if (set_flags(p[0]) || set_flags(p[1])) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        errno = e;
        return -1;
    }
#endif
    w->rfd = p[0];
    w->wfd = p[1];
    return 0;
#endif
}

void posthog__wake_close(ph_wake_t *w) {
    if (w->rfd >= 0) close(w->rfd);
    if (w->wfd >= 0 && w->wfd != w->rfd) close(w->wfd);
    *w = PH_WAKE_NONE;
}

void posthog__wake_signal(const ph_wake_t *w) {
    if (w->wfd < 0) return;
    int e = errno; /* async-signal-safe: leave the interrupted code's errno */
#if PH_HAVE_EVENTFD
    uint64_t one = 1;
    ssize_t r = write(w->wfd, &one, sizeof one);
#else
    char one = 1;
    ssize_t r = write(w->wfd, &one, 1);
#endif
    (void)r; /* EAGAIN: the counter or the pipe is full, the poller wakes anyway */
    errno = e;
}

void posthog__wake_drain(const ph_wake_t *w) {
    if (w->rfd < 0) return;
#if PH_HAVE_EVENTFD
    uint64_t v;
    while (read(w->rfd, &v, sizeof v) > 0) {
    }
#else
    char buf[256];
    while (read(w->rfd, buf, sizeof buf) > 0) {
    }
#endif
}

const char *posthog__wake_kind(void) { return PH_HAVE_EVENTFD ? "eventfd" : "pipe"; }

/* ---------------------------------------------------------------- randomness */

static int read_urandom(void *buf, size_t n) {
    int fd;
    do fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    return got == n ? 0 : -1;
}

#if PH_HAVE_GETRANDOM
static int via_getrandom(void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom((char *)buf + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}
#endif

#if PH_HAVE_GETENTROPY
static int via_getentropy(void *buf, size_t n) {
    for (size_t off = 0; off < n; off += 256) /* its limit per call */
        if (getentropy((char *)buf + off, n - off < 256 ? n - off : 256)) return -1;
    return 0;
}
#endif

#if PH_HAVE_ARC4RANDOM_BUF
static int via_arc4random(void *buf, size_t n) {
    arc4random_buf(buf, n); /* cannot fail */
    return 0;
}
#endif

int posthog__os_random_from(const char *kind, void *buf, size_t n) {
#if PH_HAVE_GETRANDOM
    if (!strcmp(kind, "getrandom")) return via_getrandom(buf, n);
#endif
#if PH_HAVE_GETENTROPY
    if (!strcmp(kind, "getentropy")) return via_getentropy(buf, n);
#endif
#if PH_HAVE_ARC4RANDOM_BUF
    if (!strcmp(kind, "arc4random_buf")) return via_arc4random(buf, n);
#endif
    if (!strcmp(kind, "/dev/urandom")) return read_urandom(buf, n);
    return -1;
}

const char *posthog__os_random_kind(void) {
#if PH_HAVE_GETRANDOM
    return "getrandom";
#elif PH_HAVE_GETENTROPY
    return "getentropy";
#elif PH_HAVE_ARC4RANDOM_BUF
    return "arc4random_buf";
#else
    return "/dev/urandom";
#endif
}

int posthog__os_random(void *buf, size_t n) {
    /* a kernel too old for the call (ENOSYS) falls through to /dev/urandom */
#if PH_HAVE_GETRANDOM
    if (via_getrandom(buf, n) == 0) return 0;
#elif PH_HAVE_GETENTROPY
    if (via_getentropy(buf, n) == 0) return 0;
#elif PH_HAVE_ARC4RANDOM_BUF
    return via_arc4random(buf, n);
#endif
    return read_urandom(buf, n);
}

/* ---------------------------------------------------------------- clocks */

int64_t posthog__os_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t posthog__os_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int posthog__cond_init_mono(pthread_cond_t *cv) {
#if PH_HAVE_CONDATTR_SETCLOCK
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca)) return pthread_cond_init(cv, NULL);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
#else
    return pthread_cond_init(cv, NULL); /* the realtime clock */
#endif
}

struct timespec posthog__cond_deadline(int64_t mono_deadline_ms) {
    struct timespec ts;
#if PH_HAVE_CONDATTR_SETCLOCK
    clock_gettime(CLOCK_MONOTONIC, &ts);
#else
    clock_gettime(CLOCK_REALTIME, &ts);
#endif
    int64_t d = mono_deadline_ms - posthog__os_mono_ns() / 1000000;
    if (d < 0) d = 0;
    /* far deadlines are clamped (a year) so tv_sec cannot overflow */
    if (d > (int64_t)366 * 86400 * 1000) d = (int64_t)366 * 86400 * 1000;
    ts.tv_sec += (time_t)(d / 1000);
    ts.tv_nsec += (long)(d % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

const char *posthog__cond_clock_kind(void) {
    return PH_HAVE_CONDATTR_SETCLOCK ? "monotonic" : "realtime";
}

/* ---------------------------------------------------------------- process */

uintptr_t posthog__os_fault_pc(const void *uctx) {
    const ucontext_t *uc = uctx;
    if (!uc) return 0;
#if defined(__linux__) && defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__linux__) && defined(__i386__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_EIP];
#elif defined(__linux__) && defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#elif defined(__linux__) && defined(__arm__)
    return (uintptr_t)uc->uc_mcontext.arm_pc;
#elif defined(__APPLE__) && defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext->__ss.__rip;
#elif defined(__APPLE__) && defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext->__ss.__pc;
#elif defined(__FreeBSD__) && defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.mc_rip;
#elif defined(__FreeBSD__) && defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.mc_gpregs.gp_elr;
#elif defined(__NetBSD__)
    return (uintptr_t)_UC_MACHINE_PC(uc);
#elif defined(__OpenBSD__) && defined(__x86_64__)
    return (uintptr_t)uc->sc_rip;
#else
    return 0;
#endif
}

void posthog__os_exe_path(char *out, size_t cap, const void *addr_in_main) {
    if (!cap) return;
    out[0] = '\0';
#if PH_HAVE_PROCFS
    (void)addr_in_main;
    ssize_t r = readlink("/proc/self/exe", out, cap - 1);
    out[r > 0 ? (size_t)r : 0] = '\0';
#else
    Dl_info di;
    if (!addr_in_main || !dladdr(addr_in_main, &di) || !di.dli_fname || !*di.dli_fname) return;
    char abs[PATH_MAX];
    const char *p = realpath(di.dli_fname, abs) ? abs : di.dli_fname;
    if (strlen(p) < cap) memcpy(out, p, strlen(p) + 1);
#endif
}

int posthog__os_maps_fd(void) {
#if PH_HAVE_PROCFS
    return open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
#else
    return -1;
#endif
}
