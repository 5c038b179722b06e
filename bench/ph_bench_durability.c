/*
 * ph-bench-durability: what the disk spool costs (issue 3), next to
 * memory-only delivery, against a local ingestion server:
 *   memory      default options, no storage_path
 *   always      storage_path + durability=always (each batch on disk before
 *               its first send, deleted on 2xx)
 *   durable xT  posthog_capture_durable from T threads (group commit)
 * fsyncs are counted exactly through the spool's fault hook (a counter that
 * never fails). Prints one markdown section; figures are medians of RUNS.
 *
 *   ph-bench-durability URL N N_DURABLE RUNS DIR
 */
#include <posthog/posthog.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool.h" /* internal: the fsync counting hook */
#include "bench_clock.h"

static _Atomic long fsyncs;
static int count_fsync(void) {
    atomic_fetch_add(&fsyncs, 1);
    return 0;
}

static const char *g_url, *g_dir;
static int g_run;

static posthog_client_t *make(const char *durability) {
    posthog_options_t *o = posthog_options_new();
    posthog_options_set(o, "api_key", "phc_bench");
    posthog_options_set(o, "host", g_url);
    if (durability) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/spool-%d", g_dir, g_run++);
        posthog_options_set(o, "storage_path", dir);
        posthog_options_set(o, "durability", durability);
    }
    char err[256];
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    if (!c) {
        fprintf(stderr, "client: %s\n", err);
        exit(2);
    }
    return c;
}

static void capture_one(posthog_client_t *c, long i, int durable) {
    char did[32], props[160];
    snprintf(did, sizeof did, "user-%ld", i % 1000);
    snprintf(props, sizeof props,
             "{\"plan\":\"pro\",\"count\":%ld,\"ratio\":0.5,\"flag\":true,"
             "\"path\":\"/checkout/step/2\",\"tags\":[\"a\",\"b\"]}",
             i);
    posthog_status_t st = durable ? posthog_capture_durable(c, did, "bench_event", props)
                                  : posthog_capture_json(c, did, "bench_event", props);
    if (st != POSTHOG_OK) fprintf(stderr, "capture: %s\n", posthog_strerror(st));
}

typedef struct {
    double secs;       /* first capture -> everything delivered */
    double call_secs;  /* time inside the capture calls (durable: the blocking part) */
    long events, sent, fsyncs;
} result_t;

static result_t run_batches(const char *durability, long n) {
    posthog_client_t *c = make(durability);
    atomic_store(&fsyncs, 0);
    double t0 = now_s();
    for (long i = 0; i < n; i++) capture_one(c, i, 0);
    double t1 = now_s();
    posthog_flush(c, 120000);
    double t2 = now_s();
    result_t r = {t2 - t0, t1 - t0, n, (long)posthog_get_stat(c, "sent"), atomic_load(&fsyncs)};
    posthog_client_free(c);
    return r;
}

typedef struct {
    posthog_client_t *c;
    long from, to;
} job_t;

static void *durable_worker(void *arg) {
    job_t *j = arg;
    for (long i = j->from; i < j->to; i++) capture_one(j->c, i, 1);
    return NULL;
}

static result_t run_durable(int threads, long n) {
    posthog_client_t *c = make("failures");
    atomic_store(&fsyncs, 0);
    pthread_t t[64];
    job_t jobs[64];
    double t0 = now_s();
    for (int k = 0; k < threads; k++) {
        jobs[k] = (job_t){c, n * k / threads, n * (k + 1) / threads};
        pthread_create(&t[k], NULL, durable_worker, &jobs[k]);
    }
    for (int k = 0; k < threads; k++) pthread_join(t[k], NULL);
    double t1 = now_s();
    long fs = atomic_load(&fsyncs); /* the captures' own fsyncs, before delivery */
    posthog_flush(c, 120000);
    double t2 = now_s();
    result_t r = {t2 - t0, t1 - t0, n, (long)posthog_get_stat(c, "sent"), fs};
    posthog_client_free(c);
    return r;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void row(const char *name, result_t *rs, int runs, int durable) {
    double evs[16], calls[16], fsps[16], lat[16], per[16];
    long lost = 0;
    for (int i = 0; i < runs; i++) {
        evs[i] = (double)rs[i].sent / rs[i].secs;
        calls[i] = (double)rs[i].events / rs[i].call_secs;
        fsps[i] = (double)rs[i].fsyncs / (durable ? rs[i].call_secs : rs[i].secs);
        lat[i] = rs[i].call_secs / (double)rs[i].events * 1e6;
        per[i] = rs[i].fsyncs ? (double)rs[i].events / ((double)rs[i].fsyncs / 2) : 0;
        if (rs[i].sent < rs[i].events) lost += rs[i].events - rs[i].sent;
    }
    printf("| %s | %ld | %.0f | %.0f | %.2f | %.0f | %.1f | %ld |\n", name, rs[0].events,
           median(evs, runs), median(calls, runs), median(lat, runs), median(fsps, runs),
           median(per, runs), lost);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s URL N N_DURABLE RUNS DIR\n", argv[0]);
        return 2;
    }
    g_url = argv[1];
    long n = atol(argv[2]), nd = atol(argv[3]);
    int runs = atoi(argv[4]);
    if (runs < 1) runs = 1;
    if (runs > 16) runs = 16;
    g_dir = argv[5];
    posthog__spool_faults.before_fsync = count_fsync;
    result_t mem[16], always[16], d1[16], d8[16];
    for (int i = 0; i < runs; i++) {
        mem[i] = run_batches(NULL, n);
        always[i] = run_batches("always", n);
        d1[i] = run_durable(1, nd);
        d8[i] = run_durable(8, nd);
    }
    printf("## Disk spool cost (durability)\n\n");
    printf("Against a local ingestion server; spool directory on this machine's disk (%s); "
           "median of %d runs. Delivered ev/s = events / (first capture to everything "
           "acknowledged); call rate and latency = inside the capture calls only (durable capture "
           "blocks until its event is fsync'ed); fsyncs counted exactly (file + directory per "
           "spool file); events per commit = events / spool files written.\n\n",
           g_dir, runs);
    printf("| mode | events | delivered ev/s | capture calls/s | µs per call | fsyncs/s | "
           "events per commit | lost |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    row("memory only (default options)", mem, runs, 0);
    row("durability=always", always, runs, 0);
    row("posthog_capture_durable, 1 thread", d1, runs, 1);
    row("posthog_capture_durable, 8 threads", d8, runs, 1);
    printf("\n");
    return 0;
}
