/*
 * Integration: fork() with a live client (style.md "Handle fork()
 * explicitly"). The child must not deadlock, must not resend the parent's
 * events, gets its own flusher for its own events and stats from zero;
 * the parent delivers its events exactly once. Exactly-once is checked by
 * uuid on the server.
 *
 * Children never use Check: they report through a pipe and leave with
 * _exit(). A child that hangs is reported with its threads' stacks (gdb,
 * else the kernel's) and killed. There is no alarm() in the child: it
 * would run Check's inherited SIGALRM handler, which kills the whole
 * process group, the test included, and hides the cause.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support_client.h"

/*
 * ThreadSanitizer cannot follow a child that starts threads after a
 * multi-threaded fork (glibc hands the child the dead flusher's stack and
 * thread id again: "ThreadSanitizer: dup thread with used id", exit 66),
 * and every use of a client in the child starts its flusher. Under TSan
 * only the tests whose children start no thread run: the park tests, and
 * the fork-under-load test with children that leave at once, which still
 * exercise the atfork handlers against a capturing thread and the flusher.
 */
#if defined(__SANITIZE_THREAD__)
#define IT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IT_TSAN 1
#endif
#endif
#ifndef IT_TSAN
#define IT_TSAN 0
#endif

#define CHILD_MAX_UUIDS 8

typedef struct child_report {
    int ok;
    char msg[256];
    int n;
    char uuids[CHILD_MAX_UUIDS][37];
} child_report_t;

__attribute__((format(printf, 2, 3))) static void child_fail(child_report_t *r,
                                                               const char *fmt, ...)
{
    if (!r->ok)
        return; /* keep the first failure */
    r->ok = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

#define CHILD_CHECK(r, cond, ...)                                                              \
    do {                                                                                       \
        if (!(cond))                                                                           \
            child_fail((r), __VA_ARGS__);                                                      \
    } while (0)

/* Prints every thread's stack of a hung process to stderr. */
static void dump_stacks(pid_t pid)
{
    char cmd[256];
    fprintf(stderr, "forked child %d hung; its threads:\n", (int)pid);
    snprintf(cmd, sizeof cmd,
             "gdb -p %d -batch -ex 'thread apply all bt' 2>/dev/null | grep -E '^(#|Thread)' 1>&2"
             " || for t in /proc/%d/task/*; do echo \"$t:\"; cat $t/stack; done 1>&2",
             (int)pid, (int)pid);
    int rc = system(cmd);
    (void)rc;
}

/* Forks; the child runs fn(c, report, arg) under a watchdog, writes the
 * report to the pipe and _exit()s. The parent waits (bounded) and returns
 * the child's report; a crashed, killed or hung child fails the test. */
static child_report_t run_child(posthog_client_t *c,
                                void (*fn)(posthog_client_t *, child_report_t *, void *),
                                void *arg)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_report_t r;
        memset(&r, 0, sizeof r);
        r.ok = 1;
        fn(c, &r, arg);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 3);
    }
    close(fds[1]);
    int st = 0;
    pid_t got = 0;
    int64_t end = it_mono_ms() + 30000;
    while ((got = waitpid(pid, &st, WNOHANG)) == 0 && it_mono_ms() < end)
        it_sleep_ms(10);
    if (got == 0) {
        dump_stacks(pid);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        close(fds[0]);
        ck_abort_msg("forked child hung for 30 s (its stacks are above)");
    }
    child_report_t r;
    memset(&r, 0, sizeof r);
    ssize_t n = read(fds[0], &r, sizeof r);
    close(fds[0]);
    ck_assert_msg(!WIFSIGNALED(st), "forked child killed by signal %d", WTERMSIG(st));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 && n == (ssize_t)sizeof r,
                  "forked child exited with status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    ck_assert_msg(r.ok, "in the forked child: %s", r.msg);
    return r;
}

static void child_check_zero_stats(posthog_client_t *c, child_report_t *r)
{
    posthog_stats_t s;
    CHILD_CHECK(r, posthog_get_stats(c, &s) == POSTHOG_OK, "get_stats failed");
    CHILD_CHECK(r, s.captured == 0 && s.sent == 0 && s.requests == 0 && s.dropped_total == 0 &&
                       s.queue_depth == 0,
                "stats do not restart at zero: captured %llu sent %llu requests %llu dropped "
                "%llu depth %llu",
                (unsigned long long)s.captured, (unsigned long long)s.sent,
                (unsigned long long)s.requests, (unsigned long long)s.dropped_total,
                (unsigned long long)s.queue_depth);
}

/* The child captures its own events and delivers them with its own flusher. */
static void child_captures(posthog_client_t *c, child_report_t *r, void *arg)
{
    int n = *(int *)arg;
    child_check_zero_stats(c, r);
    posthog_status_t st = posthog_flush(c, 5000);
    CHILD_CHECK(r, st == POSTHOG_OK, "flush with nothing of its own: %s", posthog_strerror(st));
    for (int i = 0; i < n && i < CHILD_MAX_UUIDS; i++) {
        st = posthog_capture_ex(c, "child-user", "child-event", "{\"who\":\"child\"}", 0, NULL,
                                NULL, NULL, NULL, r->uuids[i]);
        CHILD_CHECK(r, st == POSTHOG_OK, "capture in the child: %s", posthog_strerror(st));
        r->n++;
    }
    st = posthog_flush(c, 10000);
    CHILD_CHECK(r, st == POSTHOG_OK, "flush in the child: %s", posthog_strerror(st));
    posthog_stats_t s;
    posthog_get_stats(c, &s);
    CHILD_CHECK(r, s.captured == (uint64_t)n && s.sent == (uint64_t)n && s.dropped_total == 0,
                "child stats: captured %llu sent %llu dropped %llu (expected %d %d 0)",
                (unsigned long long)s.captured, (unsigned long long)s.sent,
                (unsigned long long)s.dropped_total, n, n);
    st = posthog_shutdown(c, 5000);
    CHILD_CHECK(r, st == POSTHOG_OK, "shutdown in the child: %s", posthog_strerror(st));
    posthog_client_free(c);
}

/* The child never captures: flush, shutdown and free must return at once. */
static void child_idle(posthog_client_t *c, child_report_t *r, void *arg)
{
    (void)arg;
    child_check_zero_stats(c, r);
    int64_t t0 = it_mono_ms();
    posthog_status_t st = posthog_flush(c, 5000);
    CHILD_CHECK(r, st == POSTHOG_OK, "flush: %s", posthog_strerror(st));
    st = posthog_shutdown(c, 5000);
    CHILD_CHECK(r, st == POSTHOG_OK, "shutdown: %s", posthog_strerror(st));
    posthog_stats_t s;
    posthog_get_stats(c, &s);
    CHILD_CHECK(r, s.dropped_total == 0 && s.sent == 0 && s.requests == 0,
                "idle child: sent %llu requests %llu dropped %llu", (unsigned long long)s.sent,
                (unsigned long long)s.requests, (unsigned long long)s.dropped_total);
    posthog_client_free(c);
    CHILD_CHECK(r, it_mono_ms() - t0 < 4000, "idle child took %lld ms",
                (long long)(it_mono_ms() - t0));
}

/* TSan builds: the child touches nothing (see the top of the file). */
static void child_noop(posthog_client_t *c, child_report_t *r, void *arg)
{
    (void)c;
    (void)r;
    (void)arg;
}

/* Each uuid exactly once among the accepted events. */
static void assert_once(const cJSON *events, char (*uuids)[37], int n, const char *who)
{
    for (int i = 0; i < n; i++) {
        int seen = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, events) seen += strcmp(it_str(e, "uuid"), uuids[i]) == 0;
        ck_assert_msg(seen == 1, "%s event %s delivered %d times", who, uuids[i], seen);
    }
}

/* Parent: 5 events in a request the server holds for 1.5 s, 5 more queued behind. */
static posthog_client_t *parent_with_pending(ph_ingest_t *srv, char (*uuids)[37])
{
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "50");
    posthog_client_t *c = it_client(o);
    it_faults(srv, "{\"script\":[{\"delay_ms\":1500}]}");
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(posthog_capture_ex(c, "parent-user", "parent-event", NULL, 0, NULL, NULL,
                                            NULL, NULL, uuids[i]),
                         POSTHOG_OK);
    ck_assert_int_eq(it_wait_requests(srv, 1, 5000), 0);
    for (int i = 5; i < 10; i++)
        ck_assert_int_eq(posthog_capture_ex(c, "parent-user", "parent-event", NULL, 0, NULL, NULL,
                                            NULL, NULL, uuids[i]),
                         POSTHOG_OK);
    return c;
}

START_TEST(test_fork_child_delivers_own_events_only)
{
    ph_ingest_t *srv = it_server(NULL);
    char puuids[10][37];
    posthog_client_t *c = parent_with_pending(srv, puuids);
    int n_child = 3;
    child_report_t r = run_child(c, child_captures, &n_child);
    ck_assert_int_eq(r.n, 3);

    ck_assert_int_eq(posthog_flush(c, 15000), POSTHOG_OK);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 10);
    it_check_balance(c, 10, 0);
    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 13);
    assert_once(events, puuids, 10, "parent");
    assert_once(events, r.uuids, 3, "child");
    cJSON_Delete(events);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_fork_idle_child_no_deadlock_no_resend)
{
    ph_ingest_t *srv = it_server(NULL);
    char puuids[10][37];
    posthog_client_t *c = parent_with_pending(srv, puuids);
    long long before = it_summary_num(srv, "requests");
    run_child(c, child_idle, NULL);
    /* the parent's first request is still held by the server (1.5 s) */
    ck_assert_int_eq(it_summary_num(srv, "requests"), before);
    ck_assert_int_eq(posthog_flush(c, 15000), POSTHOG_OK);
    it_check_balance(c, 10, 0);
    ck_assert_uint_eq(it_stats(c).sent, 10);
    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 10);
    assert_once(events, puuids, 10, "parent");
    cJSON_Delete(events);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* A client that was never used before the fork works in the child. */
START_TEST(test_fork_fresh_client)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = it_client(it_options(srv));
    int n_child = 2;
    child_report_t r = run_child(c, child_captures, &n_child);
    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 2);
    assert_once(events, r.uuids, 2, "child");
    cJSON_Delete(events);
    ck_assert_int_eq(posthog_shutdown(c, 5000), POSTHOG_OK);
    it_check_balance(c, 0, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* ------------------------------------------------- the flusher parks at fork */

/*
 * A lock the flusher holds while it works stands for those of the
 * allocator, libcurl or OpenSSL: a child forked while the flusher holds one
 * would inherit it held by a thread it does not have. The on_drop callback
 * (on the flusher thread, for a batch the server rejects) holds this one
 * for hold_ms; the test forks while it does.
 */
typedef struct busy_flusher {
    pthread_mutex_t lock;
    atomic_int inside;
    int hold_ms;
} busy_flusher_t;

static void hold_lock_on_drop(const posthog_drop_info_t *info, void *ud)
{
    (void)info;
    busy_flusher_t *b = ud;
    pthread_mutex_lock(&b->lock);
    atomic_store(&b->inside, 1);
    it_sleep_ms(b->hold_ms);
    pthread_mutex_unlock(&b->lock);
}

/* Reports in r->n whether the inherited lock was free (1) or held (0). */
static void child_try_lock(posthog_client_t *c, child_report_t *r, void *arg)
{
    (void)c;
    busy_flusher_t *b = arg;
    if (pthread_mutex_trylock(&b->lock) == 0) {
        r->n = 1;
        pthread_mutex_unlock(&b->lock);
    }
}

/* Forks while the flusher is inside the callback; returns the child's view. */
static int fork_during_callback(int hold_ms)
{
    ph_ingest_t *srv = it_server(NULL);
    busy_flusher_t b = {.hold_ms = hold_ms};
    pthread_mutex_init(&b.lock, NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "10");
    posthog_options_set_on_drop(o, hold_lock_on_drop, &b);
    posthog_client_t *c = it_client(o);
    it_faults(srv, "{\"script\":[{\"status\":400}]}");
    ck_assert_int_eq(posthog_capture_json(c, "u", "rejected", NULL), POSTHOG_OK);
    for (int waited = 0; !atomic_load(&b.inside) && waited < 10000; waited++)
        it_sleep_ms(1);
    ck_assert_msg(atomic_load(&b.inside), "the rejection never reached the callback");
    child_report_t r = run_child(c, child_try_lock, &b);
    /* the parent goes on as before */
    ck_assert_int_eq(posthog_capture_json(c, "u", "accepted", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 15000), POSTHOG_OK);
    ck_assert_uint_eq(it_stats(c).sent, 1);
    it_check_balance(c, 2, 0);
    posthog_client_free(c);
    pthread_mutex_destroy(&b.lock);
    it_stop(srv);
    return r.n;
}

/* fork() waits for a busy flusher to come back to the top of its loop. */
START_TEST(test_fork_parks_busy_flusher)
{
    ck_assert_msg(fork_during_callback(100) == 1,
                  "the child inherited a lock the flusher held at fork()");
}
END_TEST

/* ... but not for ever: a callback that never returns does not stop fork(). */
START_TEST(test_fork_park_is_bounded)
{
    ck_assert_msg(fork_during_callback(4000) == 0,
                  "fork() waited for a 4 s callback (the park wait is bounded at 0.5 s)");
}
END_TEST

/* ------------------------------------------------------------ fork under load */

typedef struct producer {
    posthog_client_t *c;
    atomic_int stop;
    atomic_int running;
    uint64_t ok, failed;
} producer_t;

static void *produce(void *p)
{
    producer_t *a = p;
    char props[64];
    atomic_store(&a->running, 1);
    for (uint64_t seq = 0; !atomic_load(&a->stop) && seq < 50000; seq++) {
        snprintf(props, sizeof props, "{\"who\":\"parent\",\"seq\":%llu}", (unsigned long long)seq);
        if (posthog_capture_json(a->c, "parent-user", "tight-loop", props) == POSTHOG_OK)
            a->ok++;
        else
            a->failed++;
        if ((seq & 1023) == 1023)
            sched_yield();
    }
    return NULL;
}

START_TEST(test_fork_while_capturing)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "20");
    posthog_client_t *c = it_client(o);
    producer_t prod;
    memset(&prod, 0, sizeof prod);
    prod.c = c;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, produce, &prod), 0);
    /* A thread still starting is inside the allocator (pthread_getattr_np
     * under the sanitizers' thread start), and a child forked then would
     * inherit its lock: that is this test's thread, not the library's. */
    while (!atomic_load(&prod.running))
        it_sleep_ms(1);
    enum { FORKS = 5 };
    char child_uuids[FORKS][37];
    const int child_work = !IT_TSAN;
    int n_children = child_work ? FORKS : 0;
    for (int k = 0; k < FORKS; k++) {
        it_sleep_ms(30);
        int one = 1;
        child_report_t r = run_child(c, child_work ? child_captures : child_noop, &one);
        ck_assert_int_eq(r.n, child_work ? 1 : 0);
        memcpy(child_uuids[k], r.uuids[0], 37);
    }
    atomic_store(&prod.stop, 1);
    pthread_join(th, NULL);
    ck_assert_int_eq(posthog_flush(c, 60000), POSTHOG_OK);
    it_check_balance(c, prod.ok, prod.failed);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_gt(prod.ok, 0);

    cJSON *events = it_events(srv);
    assert_once(events, child_uuids, n_children, "child");
    long long parent_events = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, events) {
        const char *who = it_prop_str(e, "who");
        parent_events += who && strcmp(who, "parent") == 0;
    }
    cJSON_Delete(events);
    ck_assert_msg(parent_events == (long long)s.sent,
                  "server accepted %lld parent events, the parent counted %llu sent",
                  parent_events, (unsigned long long)s.sent);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("integration_fork");
    TCase *tc = tcase_create("fork");
    tcase_set_timeout(tc, 90);
    if (!IT_TSAN) {
        tcase_add_test(tc, test_fork_child_delivers_own_events_only);
        tcase_add_test(tc, test_fork_idle_child_no_deadlock_no_resend);
        tcase_add_test(tc, test_fork_fresh_client);
    } else {
        fprintf(stderr, "ThreadSanitizer build: the tests whose forked children capture are "
                        "skipped (see test_fork.c)\n");
    }
    /* their children start no thread: TSan runs them too */
    tcase_add_test(tc, test_fork_parks_busy_flusher);
    tcase_add_test(tc, test_fork_park_is_bounded);
    tcase_add_test(tc, test_fork_while_capturing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return it_run_suite(suite()); }
