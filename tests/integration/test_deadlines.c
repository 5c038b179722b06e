/*
 * Integration: deadlines, threads and fork (issue 9).
 *
 *  - shutdown/flush/free deadlines hold whatever the network does: a name
 *    resolution that hangs (getaddrinfo is interposed below: the test
 *    program's definition wins over libc's for libcurl's resolver thread),
 *    a server that never accepts (connect phase) and one that accepts and
 *    never answers (transfer phase). Times are checked against a generous
 *    margin (a bound, not a speed measurement).
 *  - a batch's age is measured on the monotonic clock: the wall clock
 *    stepping back an hour (posthog__test_step_wall_clock) changes nothing.
 *  - fork() while another thread is inside posthog_shutdown: the child's
 *    shutdown and free return.
 *  - flush, shutdown and free from inside a log, drop or before_send
 *    callback of the same client are refused (POSTHOG_E_IN_CALLBACK)
 *    instead of deadlocking or freeing the client under its flusher.
 */

#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support_client.h"

/* internal test hook (src/core/util.h) */
void posthog__test_step_wall_clock(int64_t delta_ms);

/* Generous bound for a deadline of 1 s: far below what a hung resolver or
 * server would cost without the deadline (tens of seconds). */
#define BOUND_MS 3500

/* ------------------------------------------------------------ a hanging resolver */

#define HANG_HOST "dns-hangs.posthog.invalid"

static atomic_int hang_release;
static atomic_int hang_calls;

/* Resolving HANG_HOST blocks (as with an unreachable DNS server) until the
 * test releases it, at most 60 s; every other name goes to the real
 * getaddrinfo. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    if (node && strcmp(node, HANG_HOST) == 0) {
        atomic_fetch_add(&hang_calls, 1);
        for (int i = 0; i < 6000 && !atomic_load(&hang_release); i++)
            usleep(10000);
        return EAI_AGAIN;
    }
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
    return real ? real(node, service, hints, res) : EAI_FAIL;
}

/* Lets the resolver threads libcurl detached finish before the test ends. */
static void release_resolver(void)
{
    atomic_store(&hang_release, 1);
    it_sleep_ms(50);
}

static posthog_client_t *client_at(const char *host, it_drops_t *d)
{
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", host);
    it_set(o, "flush_interval_ms", "50");
    if (d)
        it_drops_attach(o, d);
    return it_client(o);
}

static void capture_n(posthog_client_t *c, const char *name, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(posthog_capture(c, "u", name, NULL), POSTHOG_OK);
}

START_TEST(test_shutdown_dns_hang_deadline)
{
    atomic_store(&hang_release, 0);
    atomic_store(&hang_calls, 0);
    it_drops_t *d = it_drops_new();
    posthog_client_t *c = client_at("http://" HANG_HOST ":9", d);
    capture_n(c, "e", 10);
    /* wait until the request is resolving */
    for (int i = 0; i < 500 && !atomic_load(&hang_calls); i++)
        it_sleep_ms(10);
    ck_assert_int_ge(atomic_load(&hang_calls), 1);
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_flush(c, 300), POSTHOG_E_TIMEOUT);
    ck_assert_int_eq(posthog_shutdown(c, 1000), POSTHOG_E_TIMEOUT);
    int64_t took = it_mono_ms() - t0;
    ck_assert_msg(took < BOUND_MS, "flush(300) + shutdown(1000) took %lld ms while DNS hung",
                  (long long)took);
    ck_assert_uint_eq(it_stats(c).dropped[POSTHOG_DROP_SHUTDOWN], 10);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_SHUTDOWN), 10);
    it_check_balance(c, 10, 0);
    posthog_client_free(c);
    it_drops_free(d);
    release_resolver();
}
END_TEST

/* posthog_client_free alone (shutdown_timeout_ms) is bounded too. */
START_TEST(test_free_dns_hang_bounded)
{
    atomic_store(&hang_release, 0);
    atomic_store(&hang_calls, 0);
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", "http://" HANG_HOST ":9");
    it_set(o, "flush_interval_ms", "50");
    it_set(o, "shutdown_timeout_ms", "500");
    posthog_client_t *c = it_client(o);
    capture_n(c, "e", 3);
    for (int i = 0; i < 500 && !atomic_load(&hang_calls); i++)
        it_sleep_ms(10);
    ck_assert_int_ge(atomic_load(&hang_calls), 1);
    int64_t t0 = it_mono_ms();
    posthog_client_free(c);
    int64_t took = it_mono_ms() - t0;
    ck_assert_msg(took < BOUND_MS, "posthog_client_free took %lld ms while DNS hung",
                  (long long)took);
    release_resolver();
}
END_TEST

/* A remote feature flag request is bounded by its timeout too. */
START_TEST(test_flags_request_dns_hang_bounded)
{
    atomic_store(&hang_release, 0);
    atomic_store(&hang_calls, 0);
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", "http://" HANG_HOST ":9");
    it_set(o, "feature_flags_request_timeout_ms", "500");
    it_set(o, "feature_flags_request_max_retries", "0");
    it_set(o, "send_feature_flag_events", "0");
    posthog_client_t *c = it_client(o);
    posthog_flags_t *f = NULL;
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_evaluate_flags(c, "u", NULL, &f), POSTHOG_OK);
    int64_t took = it_mono_ms() - t0;
    ck_assert_int_ge(atomic_load(&hang_calls), 1);
    ck_assert_msg(took < BOUND_MS, "a flags request with a 500 ms timeout took %lld ms while DNS hung",
                  (long long)took);
    ck_assert_uint_eq(posthog_flags_count(f), 0); /* nothing evaluated: the request failed */
    posthog_flags_free(f);
    posthog_client_free(c);
    release_resolver();
}
END_TEST

/* ------------------------------------------------------------ silent servers */

/* A listening socket on 127.0.0.1 that never accepts. With `fill`, its
 * backlog is filled first, so further connections are never established
 * (the kernel drops their SYNs: the connect phase hangs); without, they
 * are established and nothing ever answers (the transfer phase hangs).
 * Returns the port; *fds gets the sockets to close. */
static int silent_server(int fill, int fds[3])
{
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fds[0], 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fds[0], (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fds[0], (struct sockaddr *)&a, &len), 0);
    ck_assert_int_eq(listen(fds[0], fill ? 0 : 16), 0);
    fds[1] = fds[2] = -1;
    for (int i = 1; fill && i < 3; i++) {
        /* backlog 0 holds one established connection; the second may be
         * left half-open: either way the queue is full afterwards */
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(fds[i], 0);
        int rc = connect(fds[i], (struct sockaddr *)&a, sizeof a);
        ck_assert(rc == 0 || errno == EINPROGRESS);
    }
    it_sleep_ms(50);
    return ntohs(a.sin_port);
}

static void silent_close(int fds[3])
{
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void check_silent_deadline(int fill)
{
    int fds[3];
    int port = silent_server(fill, fds);
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", port);
    it_drops_t *d = it_drops_new();
    posthog_client_t *c = client_at(host, d);
    capture_n(c, "e", 20);
    ck_assert_int_eq(posthog_flush(c, 300), POSTHOG_E_TIMEOUT); /* the request is stuck */
    capture_n(c, "queued", 5);
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_shutdown(c, 1000), POSTHOG_E_TIMEOUT);
    int64_t took = it_mono_ms() - t0;
    ck_assert_int_ge(took, 900);
    ck_assert_msg(took < BOUND_MS, "shutdown(1000) took %lld ms against a silent server (%s)",
                  (long long)took, fill ? "connect phase" : "transfer phase");
    ck_assert_uint_eq(it_stats(c).dropped[POSTHOG_DROP_SHUTDOWN], 25);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_SHUTDOWN), 25);
    it_check_balance(c, 25, 0);
    posthog_client_free(c);
    it_drops_free(d);
    silent_close(fds);
}

START_TEST(test_shutdown_server_never_answers)
{
    check_silent_deadline(0);
}
END_TEST

START_TEST(test_shutdown_server_never_accepts)
{
    check_silent_deadline(1);
}
END_TEST

/* ------------------------------------------------------------ clocks */

/*
 * A partial batch is sent flush_interval_ms after its first capture even
 * when the wall clock steps back an hour meanwhile (NTP, an administrator,
 * a VM restored from a snapshot).
 */
START_TEST(test_batch_age_ignores_wall_clock_step)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "1000");
    it_set(o, "flush_at", "100");
    /* a one-event wake-up threshold: the flusher drains the event at once
     * into an open (partial) batch */
    it_set(o, "max_queue_size", "2");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture(c, "u", "partial", NULL), POSTHOG_OK);
    for (int i = 0; i < 200 && it_stats(c).queue_depth; i++)
        it_sleep_ms(5);
    ck_assert_uint_eq(it_stats(c).queue_depth, 0); /* in the open batch */
    posthog__test_step_wall_clock(-3600 * 1000);
    int rc = ph_ingest_wait_events(srv, 1, 8000);
    posthog__test_step_wall_clock(3600 * 1000);
    ck_assert_msg(rc == 0, "the partial batch was not sent after the wall clock stepped back");
    /* the server has it; the client counts it once it has read the answer */
    for (int i = 0; i < 1000 && it_stats(c).sent < 1; i++)
        it_sleep_ms(5);
    ck_assert_uint_eq(it_stats(c).sent, 1);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* ------------------------------------------------------------ flush until resolved */

/*
 * With a spool and PostHog unreachable, posthog_flush_resolved returns
 * once the events are on disk (posthog_flush waits for the spool to drain:
 * for as long as the endpoint is down). The bindings' sync_mode relies on it.
 */
START_TEST(test_flush_resolved_returns_once_spooled)
{
    char dir[] = "/tmp/ph-deadline-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", it_closed_port());
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", host);
    it_set(o, "flush_interval_ms", "60000");
    it_set(o, "max_retries", "1");
    it_set(o, "storage_path", dir);
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_flush_resolved(NULL, 1000), POSTHOG_E_INVALID_ARG);
    capture_n(c, "e", 4);
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_flush_resolved(c, 20000), POSTHOG_OK);
    ck_assert_msg(it_mono_ms() - t0 < 15000, "flush_resolved waited for the spool to drain");
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.spooled, 4);
    ck_assert_uint_eq(s.spool_pending, 4);
    ck_assert_uint_eq(s.dropped_total, 0);
    /* the plain flush still means delivered: it times out */
    ck_assert_int_eq(posthog_flush(c, 300), POSTHOG_E_TIMEOUT);
    capture_n(c, "more", 2); /* while the link is down: spooled at once */
    ck_assert_int_eq(posthog_flush_resolved(c, 20000), POSTHOG_OK);
    ck_assert_uint_eq(it_stats(c).spool_pending, 6);
    posthog_client_free(c);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ------------------------------------------------------------ fork during shutdown */

typedef struct shut_arg {
    posthog_client_t *c;
    int timeout_ms;
    posthog_status_t st;
    atomic_int entered;
} shut_arg_t;

static void *shutdown_thread(void *p)
{
    shut_arg_t *a = p;
    atomic_store(&a->entered, 1);
    a->st = posthog_shutdown(a->c, a->timeout_ms);
    return NULL;
}

START_TEST(test_fork_during_shutdown_child_frees)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "50");
    posthog_client_t *c = it_client(o);
    it_faults(srv, "{\"script\":[{\"delay_ms\":2500}]}");
    capture_n(c, "parent", 5);
    ck_assert_int_eq(it_wait_requests(srv, 1, 5000), 0); /* the request hangs */
    shut_arg_t a = {.c = c, .timeout_ms = 5000};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, shutdown_thread, &a), 0);
    while (!atomic_load(&a.entered))
        it_sleep_ms(1);
    it_sleep_ms(500); /* inside posthog_shutdown, waiting for the flusher */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* no Check in the child: report through the pipe, _exit */
        char msg[128] = "ok";
        int64_t t0 = it_mono_ms();
        if (posthog_capture(c, "u", "child", NULL) != POSTHOG_E_SHUTDOWN)
            snprintf(msg, sizeof msg, "capture in the child did not return E_SHUTDOWN");
        posthog_status_t st = posthog_shutdown(c, 1000);
        if (st != POSTHOG_OK)
            snprintf(msg, sizeof msg, "shutdown in the child: %s", posthog_strerror(st));
        posthog_client_free(c);
        if (it_mono_ms() - t0 > 3000)
            snprintf(msg, sizeof msg, "the child took %lld ms", (long long)(it_mono_ms() - t0));
        ssize_t w = write(fds[1], msg, strlen(msg) + 1);
        _exit(w > 0 ? 0 : 3);
    }
    close(fds[1]);
    int st = 0;
    pid_t got = 0;
    int64_t end = it_mono_ms() + 15000;
    while ((got = waitpid(pid, &st, WNOHANG)) == 0 && it_mono_ms() < end)
        it_sleep_ms(10);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    char msg[128] = "";
    ssize_t n = read(fds[0], msg, sizeof msg - 1);
    close(fds[0]);
    ck_assert_msg(got != 0, "the forked child hung in shutdown/free (killed after 15 s)");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 && n > 0, "child exit status %d", st);
    ck_assert_msg(strcmp(msg, "ok") == 0, "in the child: %s", msg);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.st, POSTHOG_OK); /* the parent delivered its events */
    ck_assert_int_eq(it_summary_num(srv, "events"), 5);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* ------------------------------------------------------------ calls from callbacks */

typedef struct cb_state {
    posthog_client_t *_Atomic c;
    atomic_int calls;
    atomic_int flush_st, shutdown_st;
    int do_free;
} cb_state_t;

static cb_state_t cbs;

static void cb_reset(int do_free)
{
    atomic_store(&cbs.c, NULL);
    atomic_store(&cbs.calls, 0);
    atomic_store(&cbs.flush_st, -1);
    atomic_store(&cbs.shutdown_st, -1);
    cbs.do_free = do_free;
}

/* The one callback that misbehaved was refused every call. */
static void check_refused(void)
{
    int calls = atomic_load(&cbs.calls), fst = atomic_load(&cbs.flush_st),
        sst = atomic_load(&cbs.shutdown_st);
    ck_assert_int_eq(calls, 1);
    ck_assert_msg(fst == POSTHOG_E_IN_CALLBACK, "flush from a callback returned %d (%s)", fst,
                  posthog_strerror((posthog_status_t)fst));
    ck_assert_msg(sst == POSTHOG_E_IN_CALLBACK, "shutdown from a callback returned %d (%s)", sst,
                  posthog_strerror((posthog_status_t)sst));
}

/* Tries everything that cannot work from inside a callback. */
static void cb_misbehave(void)
{
    posthog_client_t *c = atomic_load(&cbs.c);
    if (!c || atomic_fetch_add(&cbs.calls, 1) != 0)
        return;
    atomic_store(&cbs.flush_st, posthog_flush(c, -1));
    atomic_store(&cbs.shutdown_st, posthog_shutdown(c, 1000));
    if (cbs.do_free)
        posthog_client_free(c);
}

static void log_misbehaves(posthog_log_level_t lvl, const char *msg, void *ud)
{
    (void)ud;
    if (lvl == POSTHOG_LOG_WARN && strstr(msg, "retry"))
        cb_misbehave();
}

static void drop_misbehaves(const posthog_drop_info_t *info, void *ud)
{
    (void)info;
    (void)ud;
    cb_misbehave();
}

/* The flusher's log callback calls flush(-1), shutdown and free. */
START_TEST(test_flush_free_from_log_callback_refused)
{
    cb_reset(1);
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "50");
    posthog_options_set_log(o, log_misbehaves, NULL);
    posthog_client_t *c = it_client(o);
    atomic_store(&cbs.c, c);
    it_faults(srv, "{\"script\":[{\"status\":503}]}"); /* one retry: a WARN log */
    capture_n(c, "e", 4);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    check_refused();
    /* the client survived the refused free and still works */
    capture_n(c, "after", 2);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(it_summary_num(srv, "events"), 6);
    it_check_balance(c, 6, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* The flusher's drop callback (a rejected batch) frees the client. */
START_TEST(test_free_from_drop_callback_refused)
{
    cb_reset(1);
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "50");
    posthog_options_set_on_drop(o, drop_misbehaves, NULL);
    posthog_client_t *c = it_client(o);
    atomic_store(&cbs.c, c);
    it_faults(srv, "{\"script\":[{\"status\":400}]}");
    capture_n(c, "rejected", 3);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    check_refused();
    capture_n(c, "after", 2);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(it_summary_num(srv, "events"), 2);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_REJECTED], 3);
    it_check_balance(c, 5, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* A drop callback on the capturing thread (queue full) is refused the same
 * way, and the capture it runs in completes. */
START_TEST(test_shutdown_from_capture_drop_callback_refused)
{
    cb_reset(1);
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", "http://127.0.0.1:9");
    it_set(o, "flush_interval_ms", "60000");
    it_set(o, "max_event_bytes", "256");
    posthog_options_set_on_drop(o, drop_misbehaves, NULL);
    posthog_client_t *c = it_client(o);
    atomic_store(&cbs.c, c);
    char *big = it_repeat('x', 600);
    char props[700];
    snprintf(props, sizeof props, "{\"p\":\"%s\"}", big);
    free(big);
    ck_assert_int_eq(posthog_capture_json(c, "u", "too-big", props), POSTHOG_E_TOO_LARGE);
    check_refused();
    /* still running: captures are taken */
    ck_assert_int_eq(posthog_capture(c, "u", "ok", NULL), POSTHOG_OK);
    ck_assert_uint_eq(it_stats(c).captured, 1);
    atomic_store(&cbs.c, NULL);
    posthog_client_free(c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("integration_deadlines");
    TCase *tc = tcase_create("deadlines");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_shutdown_dns_hang_deadline);
    tcase_add_test(tc, test_free_dns_hang_bounded);
    tcase_add_test(tc, test_flags_request_dns_hang_bounded);
    tcase_add_test(tc, test_shutdown_server_never_answers);
    tcase_add_test(tc, test_shutdown_server_never_accepts);
    tcase_add_test(tc, test_batch_age_ignores_wall_clock_step);
    tcase_add_test(tc, test_flush_resolved_returns_once_spooled);
    tcase_add_test(tc, test_fork_during_shutdown_child_frees);
    tcase_add_test(tc, test_flush_free_from_log_callback_refused);
    tcase_add_test(tc, test_free_from_drop_callback_refused);
    tcase_add_test(tc, test_shutdown_from_capture_drop_callback_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return it_run_suite(suite()); }
