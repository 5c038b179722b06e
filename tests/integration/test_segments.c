/*
 * Integration: spooling during long outages into segment files (issue 13,
 * flash wear), against the local ingestion server on 127.0.0.1:
 *  - an hour-long outage at the defaults (the wall clock is stepped 5 s per
 *    batch: posthog__test_step_wall_clock) writes one segment file, not a
 *    file per batch, and at most one lazy fsync a minute (counted through
 *    the spool's fault hook); every event is then delivered exactly once
 *    by the next client (a restart);
 *  - a SIGKILL in the middle of an outage loses nothing that was spooled;
 *  - batches delivered before a restart are marked done in their segment
 *    and never sent again;
 *  - a forked child spools into segments of its own, never its parent's;
 *  - durability=always and posthog_capture_durable still fsync before a
 *    batch or event counts as stored, whatever spool_fsync_interval_ms is.
 * Forked children never use Check: they report through their exit status.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool.h"
#include "support_spool.h"

void posthog__test_step_wall_clock(int64_t delta_ms);

static char *tmp_dir(void) { return it_tmp_dir("ph-seg-it-"); }
static int spool_files(const char *dir) { return it_count_files(dir, "ph-", ".spool"); }
static posthog_status_t cap_seq(posthog_client_t *c, const char *who, long seq) {
    return it_cap_seq(c, "segment_test", who, seq);
}

/* Options without Check (usable in forked children); defaults otherwise. */
static posthog_options_t *opts(const char *host, const char *dir) {
    posthog_options_t *o = posthog_options_new();
    posthog_options_set(o, "api_key", IT_API_KEY);
    if (host) posthog_options_set(o, "host", host);
    if (dir) posthog_options_set(o, "storage_path", dir);
    posthog_options_set(o, "connect_timeout_ms", "2000");
    return o;
}

static _Atomic int fsyncs, opens, writes, appends;
static int count_write(void) {
    atomic_fetch_add(&writes, 1);
    return 0;
}
static int count_append(void) {
    atomic_fetch_add(&appends, 1);
    return 0;
}
static int count_fsync(void) {
    atomic_fetch_add(&fsyncs, 1);
    return 0;
}
static int count_open(void) {
    atomic_fetch_add(&opens, 1);
    return 0;
}
static void count_start(void) {
    atomic_store(&fsyncs, 0);
    atomic_store(&opens, 0);
    atomic_store(&writes, 0);
    atomic_store(&appends, 0);
    posthog__spool_faults.before_append = count_append;
    posthog__spool_faults.before_write = count_write;
    posthog__spool_faults.before_fsync = count_fsync;
    posthog__spool_faults.before_open = count_open;
}
static void count_stop(void) {
    posthog__spool_faults.before_append = NULL;
    posthog__spool_faults.before_write = NULL;
    posthog__spool_faults.before_fsync = NULL;
    posthog__spool_faults.before_open = NULL;
}

/* A client against the server that adopts what is on disk and delivers it. */
static posthog_client_t *deliver_all(ph_ingest_t *srv, const char *dir, int timeout_ms) {
    posthog_client_t *c = it_client(opts(ph_ingest_url(srv), dir));
    ck_assert_int_eq(posthog_flush(c, timeout_ms), POSTHOG_OK);
    return c;
}

/* ------------------------------------------------------------ an hour's outage */

START_TEST(outage_hour_bounded_files_and_fsyncs) {
    enum { PER = 10, BATCHES = 720, STEP_MS = 5000, N = PER * BATCHES };
    char *dir = tmp_dir();
    char *down = it_url_of_port(it_closed_port());
    posthog_options_t *o = opts(down, dir);
    it_set(o, "flush_at", "10"); /* one batch per PER events; everything else at its default */
    count_start();
    posthog_client_t *c = it_client(o);
    /* the first batch spends its retries; from then on the link is down */
    for (long i = 0; i < PER; i++) ck_assert_int_eq(cap_seq(c, "hour", i), POSTHOG_OK);
    ck_assert_int_eq(it_wait_stat_ge(c, "spooled", PER, 20000), 0);
    int most_files = 0;
    for (long b = 1; b < BATCHES; b++) {
        posthog__test_step_wall_clock(STEP_MS); /* the flush interval passes */
        for (long i = 0; i < PER; i++) ck_assert_int_eq(cap_seq(c, "hour", b * PER + i), POSTHOG_OK);
        ck_assert_int_eq(it_wait_stat_ge(c, "spooled", (uint64_t)(b + 1) * PER, 20000), 0);
        int files = spool_files(dir);
        if (files > most_files) most_files = files;
    }
    posthog__test_step_wall_clock(60000); /* the last lazy fsync falls due */
    ck_assert_int_eq(cap_seq(c, "hour-end", 0), POSTHOG_OK);
    ck_assert_int_eq(it_wait_stat_ge(c, "spooled", N + 1, 20000), 0);
    int hour_fsyncs = atomic_load(&fsyncs), new_files = atomic_load(&opens);
    fprintf(stderr,
            "segments: a 1-hour outage at the defaults (%d batches of %d events): %d fsyncs, "
            "%d files created, at most %d spool files at once, %ld events on disk\n",
            BATCHES, PER, hour_fsyncs, new_files, most_files, it_spool_events(dir));
    /* one lazy fsync a minute (61 in the hour and the minute after it), plus
     * the file and the directory once for each new segment */
    ck_assert_int_le(hour_fsyncs, 3600 / 60 + 1 + 1 + 2 * new_files);
    ck_assert_int_le(most_files, 32);
    ck_assert_int_le(new_files, 2);
    ck_assert_int_eq(it_spool_events(dir), N + 1);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.dropped_total, 0);
    ck_assert_uint_eq(s.spool_pending, N + 1);
    posthog_client_free(c);
    count_stop();
    posthog__test_step_wall_clock(-(int64_t)(BATCHES - 1) * STEP_MS - 60000);

    /* the next run delivers every event exactly once and leaves nothing */
    ph_ingest_t *srv = it_server(NULL);
    c = deliver_all(srv, dir, 60000);
    it_assert_exactly_once(srv, "hour", N);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
    ck_assert_uint_eq(it_stats(c).replayed, N + 1);
    ck_assert_int_eq(spool_files(dir), 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

/* ------------------------------------------------------------ SIGKILL mid-outage */

typedef struct {
    _Atomic long spooled; /* stats.spooled, read after each capture */
} kill_shared_t;

START_TEST(sigkill_mid_outage_loses_nothing_spooled) {
    enum { MAXN = 20000 };
    char *dir = tmp_dir();
    char *down = it_url_of_port(it_closed_port());
    kill_shared_t *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                             -1, 0);
    ck_assert(sh != MAP_FAILED);
    atomic_store(&sh->spooled, 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(60);
        posthog_options_t *o = opts(down, dir);
        posthog_options_set(o, "flush_at", "20");
        posthog_options_set(o, "retry_backoff_ms", "10");
        posthog_client_t *c = posthog_client_new(o, NULL, 0);
        if (!c) _exit(2);
        for (long i = 0; i < MAXN; i++) {
            if (cap_seq(c, "kill", i) != POSTHOG_OK) _exit(3);
            atomic_store(&sh->spooled, (long)posthog_get_stat(c, "spooled"));
            if (i % 8 == 0) usleep(200);
        }
        for (;;) pause();
    }
    int64_t end = it_mono_ms() + 20000;
    while (atomic_load(&sh->spooled) < 1000 && it_mono_ms() < end) it_sleep_ms(2);
    long spooled_lb = atomic_load(&sh->spooled); /* at least this many were written */
    kill(pid, SIGKILL);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %d", st);
    ck_assert_int_ge(spooled_lb, 1000);
    ck_assert_int_lt(spooled_lb, MAXN);
    ck_assert_int_le(spool_files(dir), 32);

    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = deliver_all(srv, dir, 30000);
    int *seen = calloc(MAXN, sizeof *seen);
    long got = it_server_seqs(srv, "kill", seen, MAXN);
    ck_assert_int_ge(got, spooled_lb);
    for (long i = 0; i < MAXN; i++) {
        ck_assert_msg(seen[i] <= 1, "seq %ld delivered %d times", i, seen[i]);
        if (i < spooled_lb) ck_assert_msg(seen[i] == 1, "seq %ld was spooled but is lost", i);
    }
    free(seen);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
    ck_assert_uint_eq(it_stats(c).spool_pending, 0);
    ck_assert_int_eq(spool_files(dir), 0);
    posthog_client_free(c);
    it_stop(srv);
    munmap(sh, sizeof *sh);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

/* ------------------------------------------------------------ done markers across restarts */

START_TEST(delivered_batches_not_resent_after_restart) {
    enum { PER = 20, BATCHES = 20, N = PER * BATCHES, OK_FIRST = 3 };
    char *dir = tmp_dir();
    char *down = it_url_of_port(it_closed_port());
    posthog_options_t *o = opts(down, dir);
    it_set(o, "flush_at", "20");
    it_set(o, "retry_backoff_ms", "10");
    posthog_client_t *c = it_client(o);
    for (long b = 0; b < BATCHES; b++) { /* one batch each */
        for (long i = 0; i < PER; i++) ck_assert_int_eq(cap_seq(c, "done", b * PER + i), POSTHOG_OK);
        ck_assert_int_eq(it_wait_stat_ge(c, "spooled", (uint64_t)(b + 1) * PER, 20000), 0);
    }
    posthog_client_free(c);
    ck_assert_int_eq(spool_files(dir), 1);
    ck_assert_int_eq(it_spool_events(dir), N);

    /* the second run delivers three batches, then the link fails again */
    ph_ingest_t *srv = it_server(NULL);
    char script[4096];
    size_t k = (size_t)snprintf(script, sizeof script, "{\"script\":[");
    for (int i = 0; i < OK_FIRST; i++) k += (size_t)snprintf(script + k, sizeof script - k, "{},");
    for (int i = 0; i < 60; i++)
        k += (size_t)snprintf(script + k, sizeof script - k, "%s{\"status\":503}", i ? "," : "");
    snprintf(script + k, sizeof script - k, "]}");
    it_faults(srv, script);
    o = opts(ph_ingest_url(srv), dir);
    it_set(o, "retry_backoff_ms", "10");
    it_set(o, "max_retries", "1");
    c = it_client(o);
    ck_assert_int_eq(it_wait_stat_ge(c, "sent", OK_FIRST * PER, 20000), 0);
    int waited = it_wait_requests(srv, OK_FIRST + 2, 20000);
    ck_assert_msg(waited == 0, "requests %lld, sent %llu", it_summary_num(srv, "requests"),
                  (unsigned long long)it_stats(c).sent); /* the link is down */
    posthog_client_free(c);
    /* their batches are marked done in the segment: not pending any more */
    ck_assert_int_eq(spool_files(dir), 1);
    ck_assert_int_eq(it_spool_events(dir), N - OK_FIRST * PER);

    /* the third run sends the rest, and nothing twice */
    it_faults(srv, "{\"script\":[]}");
    c = deliver_all(srv, dir, 30000);
    ck_assert_uint_eq(it_stats(c).replayed, N - OK_FIRST * PER);
    it_assert_exactly_once(srv, "done", N);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
    ck_assert_int_eq(spool_files(dir), 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

/* ------------------------------------------------------------ forked children */

typedef struct {
    char who[8][16];
    int n;
    int mixed;
} who_set_t;

static int who_fn(const char *json, size_t len, void *ud) {
    who_set_t *w = ud;
    const char *p = memmem(json, len, "\"who\":\"", 7);
    if (!p) return 0;
    p += 7;
    const char *q = memchr(p, '"', len - (size_t)(p - json));
    if (!q || q - p >= 16) return 0;
    char who[16];
    snprintf(who, sizeof who, "%.*s", (int)(q - p), p);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->who[i], who)) return 0;
    if (w->n < 8) snprintf(w->who[w->n++], sizeof w->who[0], "%s", who);
    return 0;
}

START_TEST(forked_children_segments_do_not_mix) {
    enum { KIDS = 3, N = 300 };
    if (IT_UNDER_TSAN) return; /* the children start their flusher: see support_client.h */
    if (getenv("PH_UNDER_EMULATOR")) { /* tools/test.sh cross */
        printf("SKIP forked_children_segments_do_not_mix: it forks a process whose flusher runs; "
               "qemu-user 7.2 crashes in such a child (qemu_plugin_vcpu_init_hook assertion)\n");
        return;
    }
    char *dir = tmp_dir();
    char *down = it_url_of_port(it_closed_port());
    posthog_options_t *o = opts(down, dir);
    it_set(o, "flush_at", "10");
    it_set(o, "retry_backoff_ms", "10");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(cap_seq(c, "parent", 0), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 0), POSTHOG_E_TIMEOUT);
    pid_t pid[KIDS];
    for (int k = 0; k < KIDS; k++) {
        pid[k] = fork();
        ck_assert_int_ge(pid[k], 0);
        if (pid[k] == 0) {
            alarm(60);
            char who[16];
            snprintf(who, sizeof who, "kid%d", k);
            for (long i = 0; i < N; i++)
                if (cap_seq(c, who, i) != POSTHOG_OK) _exit(3);
            posthog_status_t st = posthog_shutdown(c, 10000);
            int ok = st == POSTHOG_OK && posthog_get_stat(c, "spooled") == N &&
                     posthog_get_stat(c, "dropped_total") == 0;
            posthog_client_free(c);
            _exit(ok ? 0 : 4);
        }
    }
    for (long i = 1; i < N; i++) ck_assert_int_eq(cap_seq(c, "parent", i), POSTHOG_OK);
    for (int k = 0; k < KIDS; k++) {
        int st;
        ck_assert_int_eq(waitpid(pid[k], &st, 0), pid[k]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d status %d", k, st);
    }
    ck_assert_int_eq(posthog_shutdown(c, 10000), POSTHOG_OK);
    ck_assert_uint_eq(it_stats(c).spooled, N);
    posthog_client_free(c);

    /* every segment holds the events of one process */
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int segs = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "ph-", 3)) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        FILE *f = fopen(p, "rb");
        ck_assert_ptr_nonnull(f);
        static unsigned char buf[4 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        ck_assert_uint_ge(n, PH_SPOOL_HDR);
        ck_assert_uint_eq(buf[4], PH_SPOOL_VERSION_SEG);
        who_set_t w = {.n = 0};
        ph_spool_loss_t loss = {0};
        ck_assert_int_gt(posthog__spool_parse(buf, n, who_fn, &w, &loss), 0);
        ck_assert_uint_eq(loss.corrupt, 0);
        ck_assert_msg(w.n == 1, "%s holds events of %d processes", e->d_name, w.n);
        segs++;
    }
    closedir(d);
    ck_assert_int_ge(segs, KIDS + 1);

    ph_ingest_t *srv = it_server(NULL);
    c = deliver_all(srv, dir, 30000);
    it_assert_exactly_once(srv, "parent", N);
    for (int k = 0; k < KIDS; k++) {
        char who[16];
        snprintf(who, sizeof who, "kid%d", k);
        it_assert_exactly_once(srv, who, N);
    }
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
    ck_assert_int_eq(spool_files(dir), 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

/* ------------------------------------------------------------ per-event guarantees kept */

START_TEST(always_and_durable_fsync_before_stored) {
    enum { ROUNDS = 5, PER = 5 };
    char *dir = tmp_dir();
    char *down = it_url_of_port(it_closed_port());
    posthog_options_t *o = opts(down, dir);
    it_set(o, "durability", "always");
    it_set(o, "flush_at", "5");
    it_set(o, "retry_backoff_ms", "10");
    it_set(o, "spool_fsync_interval_ms", "3600000"); /* lazy fsyncs: at most one an hour */
    posthog_client_t *c = it_client(o);
    count_start();
    for (int r = 0; r < ROUNDS; r++) {
        int before = atomic_load(&fsyncs);
        ck_assert_int_eq(posthog_capture_durable(c, "u", "durable", "{\"n\":1}"), POSTHOG_OK);
        ck_assert_int_gt(atomic_load(&fsyncs), before); /* durable when it returned */
    }
    /* every sealed batch is fsynced when it is appended. Counted per
     * append, not per write(): the records that mark a durable event's
     * batch done are writes that are never fsynced (a lost one resends,
     * loses nothing), and under emulation those of the rounds above still
     * land here (qemu: 5 writes, 3 appends, 3 fsyncs) */
    /* fsyncs sampled before appends (and after them at the end): an
     * append in flight at a sample has its fsync counted, never only the
     * append */
    int f0 = atomic_load(&fsyncs), w0 = atomic_load(&writes), a0 = atomic_load(&appends);
    for (long i = 0; i < ROUNDS * PER; i++) ck_assert_int_eq(cap_seq(c, "always", i), POSTHOG_OK);
    ck_assert_int_eq(it_wait_stat_ge(c, "spooled", ROUNDS + ROUNDS * PER, 20000), 0);
    int a = atomic_load(&appends) - a0, f = atomic_load(&fsyncs) - f0;
    printf("always_and_durable_fsync_before_stored: %d writes, %d appends, %d fsyncs\n",
           atomic_load(&writes) - w0, a, f);
    ck_assert_int_gt(a, 0);
    ck_assert_msg(f >= a, "%d batches appended, %d fsyncs", a, f);
    count_stop();
    ck_assert_int_eq(spool_files(dir), 1);
    ck_assert_int_eq(it_spool_events(dir), ROUNDS + ROUNDS * PER);
    posthog_client_free(c);

    ph_ingest_t *srv = it_server(NULL);
    c = deliver_all(srv, dir, 30000);
    it_assert_exactly_once(srv, "always", ROUNDS * PER);
    ck_assert_uint_eq(it_stats(c).replayed, ROUNDS + ROUNDS * PER);
    ck_assert_int_eq(spool_files(dir), 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("segments");
    TCase *tc = tcase_create("segments");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, outage_hour_bounded_files_and_fsyncs);
    tcase_add_test(tc, sigkill_mid_outage_loses_nothing_spooled);
    tcase_add_test(tc, delivered_batches_not_resent_after_restart);
    tcase_add_test(tc, forked_children_segments_do_not_mix);
    tcase_add_test(tc, always_and_durable_fsync_before_stored);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return it_run_suite(suite()); }
