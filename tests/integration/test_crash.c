/*
 * Integration: the crash handler (crash_handler=1) and the spool files it
 * leaves, against the local ingestion server on 127.0.0.1. A forked child
 * captures, then crashes (SIGSEGV, or a stack overflow); a new client on
 * the same storage_path must deliver every event exactly once:
 *  - events the flusher already drained into its open batch, into sealed
 *    batches waiting to be sent and into the batch in flight;
 *  - with durability=always, no event twice (batches on disk are not
 *    written again by the handler);
 *  - a stack overflow on the capturing thread (alternate signal stack);
 *  - the files it writes are bounded by max_batch_bytes each and by
 *    max_storage_bytes together;
 *  - posthog_client_free leaves a crash handler the application installed
 *    after the client's in place.
 * And the spool's load path: a file too large for one batch is split into
 * parts; a file that cannot be read is set aside (no re-reading in a loop)
 * and newer files are delivered meanwhile.
 *
 * Forked children never use Check: they report through their exit status.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool.h"
#include "support_spool.h"


/* ------------------------------------------------------------ helpers */

static char *tmp_dir(void) { return it_tmp_dir("ph-crash-it-"); }
static posthog_status_t cap_seq(posthog_client_t *c, const char *who, long seq) {
    return it_cap_seq(c, "crash_test", who, seq);
}



/* Spool files in dir: how many, their total size and the largest. */
typedef struct {
    int n, tmp;
    uint64_t total, largest;
} dir_stat_t;

static dir_stat_t spool_stat(const char *dir) {
    dir_stat_t r = {0};
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        /* the handler's temp files (a crash can interrupt the flusher's own
         * spool write: that one is removed by a later adoption) */
        if (!strncmp(e->d_name, ".tmp-", 5) && strstr(e->d_name, "-crash")) r.tmp++;
        if (strncmp(e->d_name, "ph-", 3)) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st)) continue;
        r.n++;
        r.total += (uint64_t)st.st_size;
        if ((uint64_t)st.st_size > r.largest) r.largest = (uint64_t)st.st_size;
    }
    closedir(d);
    return r;
}



/* Options without Check (usable in forked children). */
static posthog_options_t *opts(const char *host, const char *dir) {
    posthog_options_t *o = posthog_options_new();
    posthog_options_set(o, "api_key", IT_API_KEY);
    if (host) posthog_options_set(o, "host", host);
    if (dir) posthog_options_set(o, "storage_path", dir);
    posthog_options_set(o, "retry_backoff_ms", "10");
    posthog_options_set(o, "max_retries", "1");
    posthog_options_set(o, "connect_timeout_ms", "2000");
    return o;
}


/* In a child: waits (up to 20 s) until the flusher drained the queue. */
static int wait_drained(posthog_client_t *c) {
    for (int i = 0; i < 4000; i++) {
        if (posthog_get_stat(c, "queue_depth") == 0) return 0;
        usleep(5000);
    }
    return -1;
}

/* In a child: dies of SIGSEGV. */
static void crash_now(void) {
    if (IT_SANITIZER) {
        raise(SIGSEGV); /* UBSan would stop a NULL store before it faults */
    } else {
        volatile int *volatile np = NULL;
        *np = 1;
    }
    _exit(5);
}

/* The child died of SIGSEGV (sanitizers report it and exit 1 or 66). */
static void assert_crashed(int st) {
    if (IT_SANITIZER)
        ck_assert_msg((WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) ||
                          (WIFEXITED(st) && (WEXITSTATUS(st) == 1 || WEXITSTATUS(st) == 66)),
                      "child status %d", st);
    else
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "child status %d (exit %d)", st,
                      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}


static void assert_exactly_once(ph_ingest_t *srv, const char *who, long n) {
    int *seen = calloc((size_t)n, sizeof *seen);
    long got = it_server_seqs(srv, who, seen, n);
    long missing = 0, twice = 0;
    for (long i = 0; i < n; i++) {
        if (!seen[i]) missing++;
        if (seen[i] > 1) twice++;
    }
    free(seen);
    ck_assert_msg(got == n && !missing && !twice,
                  "%ld of %ld events delivered: %ld missing, %ld more than once", got, n, missing,
                  twice);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
}

/* A new client on dir delivering to srv, flushed; checks nothing was dropped. */
static posthog_client_t *deliver_spool(ph_ingest_t *srv, const char *dir) {
    posthog_client_t *c = it_client(opts(ph_ingest_url(srv), dir));
    int64_t end = it_mono_ms() + 3000; /* the adoption shows in the stats */
    while (posthog_get_stat(c, "spool_pending") == 0 && posthog_get_stat(c, "sent") == 0 &&
           it_mono_ms() < end)
        it_sleep_ms(2);
    ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
    return c;
}

/* ------------------------------------------------------------ drained events */

/* Server unreachable, flush_at at its maximum: the flusher drains every
 * event into its open batch, which waits for flush_at or the interval. */
START_TEST(crash_saves_open_batch) {
    enum { N = 2000 };
    char *dir = tmp_dir();
    char *down = it_url_of_port(it_closed_port());
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(60);
        posthog_options_t *o = opts(down, dir);
        posthog_options_set(o, "crash_handler", "1");
        posthog_options_set(o, "flush_at", "100000");
        posthog_options_set(o, "flush_interval_ms", "60000");
        /* the idle flusher wakes when half of max_queue_size is queued:
         * at the last event */
        posthog_options_set(o, "max_queue_size", "4000");
        posthog_client_t *c = posthog_client_new(o, NULL, 0);
        if (!c) _exit(2);
        for (long i = 0; i < N; i++)
            if (cap_seq(c, "open", i) != POSTHOG_OK) _exit(3);
        if (wait_drained(c)) _exit(4); /* all in the open batch, none queued */
        if (posthog_get_stat(c, "spooled") != 0) _exit(6);
        crash_now();
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    assert_crashed(st);
    ck_assert_int_eq(spool_stat(dir).tmp, 0);
    ck_assert_int_ge(spool_stat(dir).n, 1);
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = deliver_spool(srv, dir);
    assert_exactly_once(srv, "open", N);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.replayed, N);
    ck_assert_uint_eq(s.dropped_total, 0);
    ck_assert_int_eq(spool_stat(dir).n, 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

/* A server that never answers: one batch in flight, sealed ones waiting
 * behind it (with durability=always: on disk), the last 50 events in the
 * open batch. */
static void crash_with_batches_in_flight(const char *durability, const char *who) {
    enum { N = 2050 };
    char *dir = tmp_dir();
    int port;
    int lfd = it_blackhole(&port);
    char *hole = it_url_of_port(port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(60);
        posthog_options_t *o = opts(hole, dir);
        posthog_options_set(o, "crash_handler", "1");
        posthog_options_set(o, "durability", durability);
        posthog_options_set(o, "flush_at", "100");
        posthog_options_set(o, "max_batch_size", "100");
        posthog_options_set(o, "request_timeout_ms", "60000");
        posthog_client_t *c = posthog_client_new(o, NULL, 0);
        if (!c) _exit(2);
        for (long i = 0; i < N; i++)
            if (cap_seq(c, who, i) != POSTHOG_OK) _exit(3);
        if (wait_drained(c)) _exit(4);
        /* every full batch sealed (and, with durability=always, written):
         * a crash in the middle of a spool write may deliver that batch
         * twice, which is not what this test is about */
        bool always = !strcmp(durability, "always");
        for (int i = 0; i < 4000 && always && posthog_get_stat(c, "spooled") < N - 50; i++)
            usleep(5000);
        if (always && posthog_get_stat(c, "spooled") != N - 50) _exit(8);
        for (int i = 0; i < 4000 && posthog_get_stat(c, "requests") < 1; i++) usleep(5000);
        if (posthog_get_stat(c, "sent") != 0) _exit(6);
        crash_now();
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    close(lfd);
    assert_crashed(st);
    ck_assert_int_eq(spool_stat(dir).tmp, 0);
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = deliver_spool(srv, dir);
    assert_exactly_once(srv, who, N);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.dropped_total, 0);
    ck_assert_int_eq(spool_stat(dir).n, 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(hole);
}

START_TEST(crash_saves_batches_in_flight) { crash_with_batches_in_flight("failures", "flight"); }
END_TEST

/* durability=always: the sealed batches are on disk already; the handler
 * must not write them again. */
START_TEST(crash_durability_always_no_duplicates) {
    crash_with_batches_in_flight("always", "always");
}
END_TEST

/* A request that hangs while events keep coming: the drained events held
 * for the crash handler must not fill the queue (captures would be
 * dropped where, without the crash handler, the batches waiting behind the
 * request hold them): with the queue 7/8 full they go to the spool. */
START_TEST(held_events_do_not_fill_the_queue) {
    if (getenv("PH_UNDER_EMULATOR")) { /* tools/test.sh cross */
        printf("SKIP held_events_do_not_fill_the_queue: it needs the flusher to move each chunk to "
               "the spool while the next is captured, a race emulation (10x slower compression "
               "and fsync) loses\n");
        return;
    }
    enum { N = 2000, CHUNK = 100 };
    char *dir = tmp_dir();
    int port;
    int lfd = it_blackhole(&port);
    char *hole = it_url_of_port(port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(60);
        posthog_options_t *o = opts(hole, dir);
        posthog_options_set(o, "crash_handler", "1");
        posthog_options_set(o, "flush_at", "100");
        posthog_options_set(o, "max_batch_size", "100");
        posthog_options_set(o, "request_timeout_ms", "60000");
        /* a flusher waiting on the network wakes for thousands of queued
         * events, or at flush_interval: drain each chunk soon */
        posthog_options_set(o, "flush_interval_ms", "100");
        /* a queue of 1.5 MiB: N events of ~1.2 kB fill it if all are held;
         * compressed, their batches fit the 256 KiB for batches waiting */
        posthog_options_set(o, "max_queue_bytes", "2097152");
        posthog_options_set(o, "max_event_bytes", "65536");
        posthog_options_set(o, "max_ai_event_bytes", "65536");
        posthog_client_t *c = posthog_client_new(o, NULL, 0);
        if (!c) _exit(2);
        for (long i = 0; i < N; i++) {
            char props[1200];
            snprintf(props, sizeof props,
                     "{\"seq\":%ld,\"who\":\"held\",\"pad\":\"%01100d\"}", i, 0);
            if (posthog_capture_json(c, "user-1", "crash_test", props) != POSTHOG_OK) _exit(3);
            if (i % CHUNK == CHUNK - 1 && wait_drained(c)) _exit(4);
        }
        if (posthog_get_stat(c, "sent") != 0) _exit(6);
        /* let the last spool writes finish (a crash in the middle of one may
         * deliver that batch twice: not what this test is about) */
        uint64_t sp = UINT64_MAX;
        for (int i = 0; i < 100 && posthog_get_stat(c, "spooled") != sp; i++) {
            sp = posthog_get_stat(c, "spooled");
            usleep(100 * 1000);
        }
        crash_now();
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    close(lfd);
    ck_assert_msg(!WIFEXITED(st) || WEXITSTATUS(st) != 3, "a capture was refused (queue full)");
    assert_crashed(st);
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = deliver_spool(srv, dir);
    assert_exactly_once(srv, "held", N);
    ck_assert_uint_eq(it_stats(c).dropped_total, 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(hole);
}
END_TEST

/* Analytics and $ai_* events interleaved: each goes back to its endpoint
 * (a spool file replays to one endpoint). */
START_TEST(crash_keeps_ai_events_apart) {
    enum { N = 400 };
    char *dir = tmp_dir();
    char *down = it_url_of_port(it_closed_port());
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(60);
        posthog_options_t *o = opts(down, dir);
        posthog_options_set(o, "crash_handler", "1");
        posthog_options_set(o, "flush_at", "100000");
        posthog_options_set(o, "flush_interval_ms", "60000");
        posthog_client_t *c = posthog_client_new(o, NULL, 0);
        if (!c) _exit(2);
        for (long i = 0; i < N; i++) {
            char props[128];
            snprintf(props, sizeof props, "{\"seq\":%ld,\"who\":\"%s\"}", i,
                     i % 2 ? "ai" : "plain");
            posthog_status_t st =
                i % 2 ? posthog_capture_ai(c, "user-1", "$ai_generation", props, NULL, NULL)
                      : posthog_capture_json(c, "user-1", "crash_test", props);
            if (st != POSTHOG_OK) _exit(3);
        }
        crash_now();
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    assert_crashed(st);
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = deliver_spool(srv, dir);
    cJSON *reqs = it_requests(srv);
    const cJSON *r;
    long plain = 0, ai = 0;
    cJSON_ArrayForEach(r, reqs) {
        const char *path = it_str(r, "path");
        ck_assert_ptr_nonnull(path);
        bool to_ai = strstr(path, "/ai/") != NULL;
        const cJSON *e;
        cJSON_ArrayForEach(e, it_req_batch(r)) {
            const char *name = it_str(e, "event");
            ck_assert_ptr_nonnull(name);
            ck_assert_msg(to_ai == !strncmp(name, "$ai_", 4), "%s sent to %s", name, path);
            const char *who = it_prop_str(e, "who");
            if (!who) continue; /* the crash report's $exception */
            if (to_ai) ai++;
            else plain++;
        }
    }
    cJSON_Delete(reqs);
    ck_assert_int_eq(plain, N / 2);
    ck_assert_int_eq(ai, N / 2);
    ck_assert_uint_eq(it_stats(c).dropped_total, 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

/* ------------------------------------------------------------ stack overflow */

static posthog_client_t *g_child_client;

__attribute__((noinline)) static long recurse(volatile char *prev, long depth) {
    volatile char frame[512];
    frame[0] = (char)depth;
    if (prev) frame[1] = prev[0];
    /* never true: keeps the recursion from being turned into a loop */
    if (depth < 0) return frame[0];
    return recurse(frame, depth + 1) + frame[1];
}

static void *overflow_thread(void *arg) {
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        if (cap_seq(g_child_client, "overflow", i) != POSTHOG_OK) _exit(3);
    return (void *)(intptr_t)recurse(NULL, 0);
}

START_TEST(crash_stack_overflow_on_capturing_thread) {
    enum { N = 50 };
    char *dir = tmp_dir();
    char *down = it_url_of_port(it_closed_port());
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(60);
        posthog_options_t *o = opts(down, dir);
        posthog_options_set(o, "crash_handler", "1");
        posthog_options_set(o, "flush_at", "100000");
        posthog_options_set(o, "flush_interval_ms", "60000");
        g_child_client = posthog_client_new(o, NULL, 0);
        if (!g_child_client) _exit(2);
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 256 * 1024);
        pthread_t th;
        if (pthread_create(&th, &a, overflow_thread, (void *)(intptr_t)N)) _exit(7);
        pthread_join(th, NULL);
        _exit(5);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    if (IT_SANITIZER)
        ck_assert_msg(WIFSIGNALED(st) || (WIFEXITED(st) && (WEXITSTATUS(st) == 1 ||
                                                            WEXITSTATUS(st) == 66)),
                      "child status %d", st);
    else
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "child status %d (exit %d)", st,
                      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    ck_assert_msg(spool_stat(dir).n >= 1, "the crash handler saved nothing");
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = deliver_spool(srv, dir);
    assert_exactly_once(srv, "overflow", N);
    ck_assert_uint_eq(it_stats(c).dropped_total, 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

/* ------------------------------------------------------------ file sizes */

/* Crashes a child holding N events with these batch and storage limits. */
static void crash_with_limits(const char *dir, const char *host, long n, const char *batch_bytes,
                              const char *storage_bytes) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(60);
        posthog_options_t *o = opts(host, dir);
        posthog_options_set(o, "crash_handler", "1");
        posthog_options_set(o, "flush_at", "100000");
        posthog_options_set(o, "flush_interval_ms", "60000");
        posthog_options_set(o, "max_batch_bytes", batch_bytes);
        posthog_options_set(o, "max_storage_bytes", storage_bytes);
        posthog_options_set(o, "request_timeout_ms", "60000");
        posthog_client_t *c = posthog_client_new(o, NULL, 0);
        if (!c) _exit(2);
        for (long i = 0; i < n; i++)
            if (cap_seq(c, "size", i) != POSTHOG_OK) _exit(3);
        crash_now(); /* most still queued: the flusher sleeps until flush_at */
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    assert_crashed(st);
}

/* Every file at most max_batch_bytes (one event over it at most), so the
 * next process replays each as one normal batch and evicting one for room
 * costs one part, not every saved event. */
START_TEST(crash_files_bounded_by_max_batch_bytes) {
    enum { N = 2000 };
    char *dir = tmp_dir();
    /* a server that never answers: no batch reaches the spool before the
     * crash (a crash in the middle of a spool write may deliver that batch
     * twice: not what this test is about) */
    int port;
    int lfd = it_blackhole(&port);
    char *down = it_url_of_port(port);
    crash_with_limits(dir, down, N, "16384", "67108864");
    close(lfd);
    dir_stat_t ds = spool_stat(dir);
    ck_assert_int_eq(ds.tmp, 0);
    ck_assert_msg(ds.n > 1, "%d file(s) for %llu bytes", ds.n, (unsigned long long)ds.total);
    ck_assert_msg(ds.largest <= 16384 + 512, "a file of %llu bytes",
                  (unsigned long long)ds.largest);
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = deliver_spool(srv, dir);
    assert_exactly_once(srv, "size", N);
    ck_assert_uint_eq(it_stats(c).dropped_total, 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

/* What the handler writes together stays within max_storage_bytes. */
START_TEST(crash_files_within_max_storage_bytes) {
    enum { N = 2000 };
    char *dir = tmp_dir();
    int port;
    int lfd = it_blackhole(&port);
    char *down = it_url_of_port(port);
    crash_with_limits(dir, down, N, "16384", "65536");
    close(lfd);
    dir_stat_t ds = spool_stat(dir);
    ck_assert_int_ge(ds.n, 1);
    ck_assert_msg(ds.total <= 65536, "%llu bytes written", (unsigned long long)ds.total);
    ck_assert_msg(ds.largest <= 16384 + 512, "a file of %llu bytes",
                  (unsigned long long)ds.largest);
    /* the oldest events, each once */
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = deliver_spool(srv, dir);
    int *seen = calloc(N, sizeof *seen);
    long got = it_server_seqs(srv, "size", seen, N);
    ck_assert_int_gt(got, 0);
    for (long i = 0; i < N; i++) ck_assert_int_eq(seen[i], i < got ? 1 : 0);
    free(seen);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

/* The next process writes to a spool the crash filled up to its limit:
 * making room evicts the oldest parts, not everything the handler saved. */
START_TEST(crash_parts_evicted_one_at_a_time) {
    enum { N = 2000, M = 200 };
    char *dir = tmp_dir();
    int port;
    int lfd = it_blackhole(&port);
    char *hole = it_url_of_port(port);
    crash_with_limits(dir, hole, N, "16384", "67108864");
    close(lfd);
    dir_stat_t ds = spool_stat(dir);
    ck_assert_int_ge(ds.n, 1);
    /* a process with room for little more than what the crash left, the
     * server down: its M events go to the spool and evict the oldest */
    char *down = it_url_of_port(it_closed_port());
    posthog_options_t *o = opts(down, dir);
    char limit[32];
    snprintf(limit, sizeof limit, "%llu", (unsigned long long)(ds.total + 8192));
    it_set(o, "max_storage_bytes", limit);
    posthog_client_t *c = it_client(o);
    for (long i = 0; i < M; i++) ck_assert_int_eq(cap_seq(c, "new", i), POSTHOG_OK);
    posthog_shutdown(c, 3000);
    uint64_t evicted = it_stats(c).dropped[POSTHOG_DROP_STORAGE_FULL];
    posthog_client_free(c);
    ck_assert_uint_gt(evicted, 0);
    ck_assert_msg(evicted < N / 4, "%llu of the %d saved events evicted",
                  (unsigned long long)evicted, N);
    ph_ingest_t *srv = it_server(NULL);
    c = deliver_spool(srv, dir);
    int *seen = calloc(N, sizeof *seen);
    long got = it_server_seqs(srv, "size", seen, N);
    for (long i = 0; i < N; i++) ck_assert_int_le(seen[i], 1);
    free(seen);
    ck_assert_int_eq(got + (long)evicted, N);
    assert_exactly_once(srv, "new", M);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(hole);
    free(down);
}
END_TEST

/* ------------------------------------------------------------ signal dispositions */

static void app_handler(int sig) { (void)sig; }

START_TEST(free_keeps_a_handler_installed_later) {
    char *dir = tmp_dir();
    struct sigaction before;
    ck_assert_int_eq(sigaction(SIGSEGV, NULL, &before), 0);
    posthog_options_t *o = opts("http://127.0.0.1:9", dir);
    it_set(o, "crash_handler", "1");
    posthog_client_t *c = it_client(o);
    /* the application installs its own afterwards */
    struct sigaction mine, old, now;
    memset(&mine, 0, sizeof mine);
    mine.sa_handler = app_handler;
    sigemptyset(&mine.sa_mask);
    ck_assert_int_eq(sigaction(SIGSEGV, &mine, &old), 0);
    ck_assert_msg(old.sa_handler != before.sa_handler || (old.sa_flags & SA_SIGINFO),
                  "the client installed no handler");
    posthog_shutdown(c, 0);
    posthog_client_free(c);
    ck_assert_int_eq(sigaction(SIGSEGV, NULL, &now), 0);
    ck_assert_msg(now.sa_handler == app_handler, "posthog_client_free replaced the application's "
                                                 "SIGSEGV handler");
    /* a client alone restores what was there before it */
    ck_assert_int_eq(sigaction(SIGSEGV, &before, NULL), 0);
    o = opts("http://127.0.0.1:9", dir);
    it_set(o, "crash_handler", "1");
    c = it_client(o);
    posthog_shutdown(c, 0);
    posthog_client_free(c);
    ck_assert_int_eq(sigaction(SIGSEGV, NULL, &now), 0);
    ck_assert(now.sa_handler == before.sa_handler &&
              (now.sa_flags & SA_SIGINFO) == (before.sa_flags & SA_SIGINFO));
    it_rm_rf(dir);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------ loading spool files */

/* Writes a spool file of n events (who, seq from first) with its own
 * spool handle (no size limit) and releases it. */
static void write_spool_file(const char *dir, const char *who, long first, long n) {
    ph_spool_t s;
    char err[256];
    ck_assert_int_eq(posthog__spool_open(&s, dir, UINT64_MAX, 0, err, sizeof err), 0);
    char **ev = calloc((size_t)n, sizeof *ev);
    size_t *len = calloc((size_t)n, sizeof *len);
    for (long i = 0; i < n; i++) {
        ev[i] = malloc(512);
        len[i] = (size_t)snprintf(
            ev[i], 512,
            "{\"event\":\"crash_test\",\"distinct_id\":\"user-1\",\"properties\":{\"seq\":%ld,"
            "\"who\":\"%s\"},\"uuid\":\"01900000-0000-7000-8000-%012lx\","
            "\"timestamp\":\"2026-01-01T00:00:00.000Z\"}",
            first + i, who, (unsigned long)(first + i) + (who[0] == 'b' ? 0x100000UL : 0));
    }
    ph_spool_loss_t loss = {0};
    ph_spool_file_t *f =
        posthog__spool_write(&s, (const char *const *)ev, len, (uint32_t)n, &loss);
    ck_assert_ptr_nonnull(f);
    posthog__spool_release(&s, f);
    posthog__spool_close(&s);
    for (long i = 0; i < n; i++) free(ev[i]);
    free(ev);
    free(len);
    usleep(2000); /* the next file gets a later name */
}

/* A file far larger than a batch is replayed in parts of max_batch_bytes. */
START_TEST(oversize_spool_file_replayed_in_parts) {
    enum { N = 3000 };
    char *dir = tmp_dir();
    write_spool_file(dir, "big", 0, N);
    ck_assert_uint_gt(spool_stat(dir).largest, 300000);
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = opts(ph_ingest_url(srv), dir);
    it_set(o, "max_batch_bytes", "16384");
    it_set(o, "compression", "none");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
    assert_exactly_once(srv, "big", N);
    cJSON *reqs = it_requests(srv);
    const cJSON *r;
    int n = 0;
    cJSON_ArrayForEach(r, reqs) {
        char *body = cJSON_PrintUnformatted(it_req_body(r));
        ck_assert_ptr_nonnull(body);
        ck_assert_msg(strlen(body) <= 2 * 16384, "a request of %zu bytes", strlen(body));
        free(body);
        n++;
    }
    cJSON_Delete(reqs);
    ck_assert_int_gt(n, 10);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.replayed, N);
    ck_assert_uint_eq(s.dropped_total, 0);
    ck_assert_uint_eq(s.spool_pending, 0);
    ck_assert_int_eq(spool_stat(dir).n, 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
}
END_TEST

static atomic_int g_bad_reads;
static char g_bad_name[256];

static int fail_bad_file(const char *path) {
    if (!g_bad_name[0] || !strstr(path, g_bad_name)) return 0;
    atomic_fetch_add(&g_bad_reads, 1);
    errno = EIO;
    return 1;
}

/* The oldest file cannot be read: newer files are delivered meanwhile and
 * the bad one is retried with a growing wait, not in a loop. */
START_TEST(unreadable_spool_file_set_aside) {
    char *dir = tmp_dir();
    write_spool_file(dir, "bad", 0, 5);
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "ph-", 3)) snprintf(g_bad_name, sizeof g_bad_name, "%s", e->d_name);
    closedir(d);
    ck_assert(g_bad_name[0]);
    /* the stem: an owner renames a file it adopts to carry its tag */
    *strchr(g_bad_name, '.') = '\0';
    write_spool_file(dir, "good", 0, 5);
    atomic_store(&g_bad_reads, 0);
    posthog__spool_faults.before_read = fail_bad_file;
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = it_client(opts(ph_ingest_url(srv), dir));
    ck_assert_int_eq(ph_ingest_wait_events(srv, 5, 10000), 0);
    assert_exactly_once(srv, "good", 5);
    it_sleep_ms(1500);
    int reads = atomic_load(&g_bad_reads);
    ck_assert_msg(reads >= 1 && reads <= 10, "the unreadable file was read %d times", reads);
    /* readable again: delivered on a later turn */
    posthog__spool_faults.before_read = NULL;
    ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
    assert_exactly_once(srv, "bad", 5);
    ck_assert_uint_eq(it_stats(c).dropped_total, 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("integration_crash");
    TCase *tc = tcase_create("crash");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, crash_saves_open_batch);
    tcase_add_test(tc, crash_saves_batches_in_flight);
    tcase_add_test(tc, crash_durability_always_no_duplicates);
    tcase_add_test(tc, crash_keeps_ai_events_apart);
    tcase_add_test(tc, held_events_do_not_fill_the_queue);
    tcase_add_test(tc, crash_stack_overflow_on_capturing_thread);
    tcase_add_test(tc, crash_files_bounded_by_max_batch_bytes);
    tcase_add_test(tc, crash_files_within_max_storage_bytes);
    tcase_add_test(tc, crash_parts_evicted_one_at_a_time);
    tcase_add_test(tc, free_keeps_a_handler_installed_later);
    tcase_add_test(tc, oversize_spool_file_replayed_in_parts);
    tcase_add_test(tc, unreadable_spool_file_set_aside);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return it_run_suite(suite()); }
