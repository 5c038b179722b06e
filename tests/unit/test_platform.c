/*
 * Unit tests of src/core/platform.c: the wake-up primitive (eventfd or a
 * pipe), every randomness source built in, the condition variables' clock
 * and deadlines, the main program's path and the memory-map descriptor.
 * Built with -DPOSTHOG_FORCE_POSIX_FALLBACKS=ON (PH_FORCED_FALLBACKS) the
 * same tests check that the fallbacks, not the Linux primitives, are in use.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform.h"
#include "util.h"

static int readable(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int r = poll(&p, 1, 0);
    ck_assert_int_ge(r, 0);
    return r == 1 && (p.revents & POLLIN);
}

static void assert_flags(int fd) {
    int fdf = fcntl(fd, F_GETFD), fl = fcntl(fd, F_GETFL);
    ck_assert_int_ge(fdf, 0);
    ck_assert_int_ge(fl, 0);
    ck_assert_msg(fdf & FD_CLOEXEC, "fd %d is not close-on-exec", fd);
    ck_assert_msg(fl & O_NONBLOCK, "fd %d is blocking", fd);
}

START_TEST(wake_kind_matches_configuration) {
#if PH_FORCED_FALLBACKS
    ck_assert_str_eq(posthog__wake_kind(), "pipe");
    ck_assert_str_eq(posthog__os_random_kind(), "/dev/urandom");
    ck_assert_str_eq(posthog__cond_clock_kind(), "realtime");
#elif defined(__linux__)
    ck_assert_str_eq(posthog__wake_kind(), "eventfd");
    ck_assert_str_eq(posthog__os_random_kind(), "getrandom");
    ck_assert_str_eq(posthog__cond_clock_kind(), "monotonic");
#endif
}
END_TEST

START_TEST(wake_signal_and_drain) {
    ph_wake_t w;
    ck_assert_int_eq(posthog__wake_open(&w), 0);
    ck_assert_int_ge(w.rfd, 0);
    ck_assert_int_ge(w.wfd, 0);
    if (!strcmp(posthog__wake_kind(), "pipe")) ck_assert_int_ne(w.rfd, w.wfd);
    assert_flags(w.rfd);
    assert_flags(w.wfd);
    ck_assert(!readable(w.rfd));
    posthog__wake_signal(&w);
    ck_assert(readable(w.rfd));
    posthog__wake_drain(&w);
    ck_assert(!readable(w.rfd));
    /* more signals than a pipe holds (64 KiB): none blocks, one drain
     * empties it */
    for (int i = 0; i < 70000; i++) posthog__wake_signal(&w);
    ck_assert(readable(w.rfd));
    posthog__wake_drain(&w);
    ck_assert(!readable(w.rfd));
    /* signalling keeps errno (it may run in a signal handler) */
    errno = 4242;
    posthog__wake_signal(&w);
    ck_assert_int_eq(errno, 4242);
    int rfd = w.rfd, wfd = w.wfd;
    posthog__wake_close(&w);
    ck_assert_int_eq(w.rfd, -1);
    ck_assert_int_eq(w.wfd, -1);
    ck_assert_int_eq(fcntl(rfd, F_GETFD), -1);
    ck_assert_int_eq(fcntl(wfd, F_GETFD), -1);
    /* a closed one is inert */
    posthog__wake_signal(&w);
    posthog__wake_drain(&w);
    posthog__wake_close(&w);
}
END_TEST

/* A wake-up from another thread ends a poll that would wait for ever. */
static void *signal_later(void *arg) {
    usleep(20 * 1000);
    posthog__wake_signal(arg);
    return NULL;
}

START_TEST(wake_from_another_thread) {
    ph_wake_t w;
    ck_assert_int_eq(posthog__wake_open(&w), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, signal_later, &w), 0);
    struct pollfd p = {.fd = w.rfd, .events = POLLIN, .revents = 0};
    ck_assert_int_eq(poll(&p, 1, -1), 1);
    pthread_join(t, NULL);
    posthog__wake_drain(&w);
    posthog__wake_close(&w);
}
END_TEST

static int nonzero(const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 1;
    return 0;
}

START_TEST(random_every_source) {
    static const char *const kinds[] = {"getrandom", "getentropy", "arc4random_buf", "/dev/urandom"};
    int worked = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        unsigned char a[1000], b[1000]; /* above getentropy's 256 a call */
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        if (posthog__os_random_from(kinds[k], a, sizeof a)) {
            ck_assert_msg(strcmp(kinds[k], "/dev/urandom") != 0, "/dev/urandom failed");
            ck_assert_msg(strcmp(kinds[k], posthog__os_random_kind()) != 0,
                          "the configured source %s fails", kinds[k]);
            continue;
        }
        ck_assert_int_eq(posthog__os_random_from(kinds[k], b, sizeof b), 0);
        ck_assert_msg(nonzero(a + 744, 256), "%s left the tail zero", kinds[k]);
        ck_assert_msg(memcmp(a, b, sizeof a) != 0, "%s repeated itself", kinds[k]);
        worked++;
    }
    ck_assert_int_ge(worked, 1);
    ck_assert_int_eq(posthog__os_random_from("no-such-source", (char[4]){0}, 4), -1);
    unsigned char c[64] = {0};
    ck_assert_int_eq(posthog__os_random(c, sizeof c), 0);
    ck_assert(nonzero(c, sizeof c));
    /* the generator seeded from it gives distinct values */
    ck_assert_uint_ne(posthog__rand_u64(), posthog__rand_u64());
}
END_TEST

/* A timed wait on posthog__cond_init_mono's clock, with a deadline from
 * posthog__cond_deadline, times out, and not before the deadline on the
 * monotonic clock (a clock mismatch would return at once or never). */
START_TEST(cond_deadline_times_out) {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    ck_assert_int_eq(posthog__cond_init_mono(&cv), 0);
    pthread_mutex_lock(&mu);
    int64_t t0 = posthog__mono_ms(), deadline = t0 + 120;
    int rc = 0;
    while (posthog__mono_ms() < deadline) {
        struct timespec ts = posthog__cond_deadline(deadline);
        rc = pthread_cond_timedwait(&cv, &mu, &ts);
        ck_assert_msg(rc == 0 || rc == ETIMEDOUT, "timedwait: %d", rc);
        if (rc == ETIMEDOUT) break;
    }
    ck_assert_int_eq(rc, ETIMEDOUT);
    ck_assert_int_ge(posthog__mono_ms(), deadline - 1); /* clock granularity */
    /* a deadline already past: times out without waiting for ever */
    struct timespec past = posthog__cond_deadline(t0 - 5000);
    ck_assert_int_eq(pthread_cond_timedwait(&cv, &mu, &past), ETIMEDOUT);
    /* one far in the future is representable */
    struct timespec far = posthog__cond_deadline(INT64_MAX / 2);
    ck_assert_int_gt((long long)far.tv_sec, 0);
    ck_assert_int_lt(far.tv_nsec, 1000000000L);
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);
}
END_TEST

static void a_function_of_this_program(void) {}

START_TEST(exe_path_and_maps) {
    char got[PATH_MAX], want[PATH_MAX];
    posthog__os_exe_path(got, sizeof got, (const void *)(uintptr_t)&a_function_of_this_program);
    ck_assert_ptr_nonnull(realpath("/proc/self/exe", want));
    ck_assert_str_eq(got, want);
    char tiny[4];
    posthog__os_exe_path(tiny, sizeof tiny, (const void *)(uintptr_t)&a_function_of_this_program);
    ck_assert_int_lt((int)strlen(tiny), 4);
    int fd = posthog__os_maps_fd();
#if PH_FORCED_FALLBACKS
    ck_assert_int_eq(fd, -1);
#else
    ck_assert_int_ge(fd, 0);
    char buf[64];
    ck_assert_int_gt((int)read(fd, buf, sizeof buf), 0);
    close(fd);
#endif
    ck_assert_uint_eq(posthog__os_fault_pc(NULL), 0);
}
END_TEST

static Suite *platform_suite(void) {
    Suite *s = suite_create("platform");
    TCase *t = tcase_create("platform");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, wake_kind_matches_configuration);
    tcase_add_test(t, wake_signal_and_drain);
    tcase_add_test(t, wake_from_another_thread);
    tcase_add_test(t, random_every_source);
    tcase_add_test(t, cond_deadline_times_out);
    tcase_add_test(t, exe_path_and_maps);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(platform_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
