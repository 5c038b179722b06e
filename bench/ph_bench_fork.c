/*
 * ph-bench-fork: what fork() costs the caller with a live client, now that
 * the atfork handler parks the flusher before the fork (client.c).
 *
 * One client against a local ingestion server, three states:
 *   idle     the flusher is asleep between wake-ups
 *   busy     a producer thread captures at full speed, so the flusher is
 *            draining, compressing and sending when the fork comes
 *   no flusher  the same client after posthog_shutdown: same memory, no
 *            thread to park (the baseline: page tables of the same size)
 * Each fork's child _exit()s at once; the figure is the time the parent
 * spends inside fork(). Median of the runs' medians and p99s.
 *
 * usage: ph-bench-fork URL FORKS RUNS
 */
#include <posthog/posthog.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

static double median(double *v, int n) { return pct(v, n, 0.5); }

typedef struct {
    double p50_us, p99_us, max_us;
} stat_t;

/* fork() + child _exit(0) `forks` times; the parent's time inside fork(). */
static stat_t fork_times(int forks) {
    double *t = malloc(sizeof *t * (size_t)forks);
    for (int i = 0; i < forks; i++) {
        uint64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        uint64_t t1 = now_ns();
        if (pid < 0) {
            perror("fork");
            exit(1);
        }
        waitpid(pid, NULL, 0);
        t[i] = (double)(t1 - t0) / 1e3;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    stat_t s;
    s.max_us = pct(t, forks, 1.0);
    s.p99_us = pct(t, forks, 0.99);
    s.p50_us = pct(t, forks, 0.5);
    free(t);
    return s;
}

typedef struct {
    posthog_client_t *c;
    atomic_int stop;
    uint64_t n;
} producer_t;

static void *produce(void *arg) {
    producer_t *p = arg;
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        for (int i = 0; i < 256; i++)
            if (posthog_capture_json(p->c, "bench-user", "fork bench",
                                     "{\"plan\":\"pro\",\"n\":42}") == POSTHOG_OK)
                p->n++;
        /* stay below what the flusher sustains, so the queue never fills */
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s URL FORKS RUNS\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    int forks = atoi(argv[2]), runs = atoi(argv[3]);
    if (forks < 10) forks = 10;
    if (runs < 1) runs = 1;
    if (runs > 16) runs = 16;
    stat_t idle[16], busy[16], none[16];
    uint64_t produced = 0, sent = 0, dropped = 0;
    for (int r = 0; r < runs; r++) {
        posthog_options_t *o = posthog_options_new();
        posthog_options_set(o, "api_key", "phc_bench");
        posthog_options_set(o, "host", url);
        char err[256] = "";
        posthog_client_t *c = posthog_client_new(o, err, sizeof err);
        if (!c) {
            fprintf(stderr, "client: %s\n", err);
            return 1;
        }
        /* a first batch, so the connection and the flusher's buffers exist */
        posthog_capture_json(c, "bench-user", "warm-up", NULL);
        posthog_flush(c, 10000);

        /* busy first: by the time it is measured the producer has gone round
         * the whole queue, so all three states fork the same touched memory */
        producer_t p = {.c = c};
        pthread_t th;
        pthread_create(&th, NULL, produce, &p);
        struct timespec ts = {0, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
        busy[r] = fork_times(forks);
        atomic_store(&p.stop, 1);
        pthread_join(th, NULL);
        if (posthog_flush(c, 60000) != POSTHOG_OK) fprintf(stderr, "flush timed out\n");
        idle[r] = fork_times(forks);
        posthog_shutdown(c, 10000);
        none[r] = fork_times(forks);

        posthog_stats_t s;
        posthog_get_stats(c, &s);
        produced += p.n + 1; /* and the warm-up event */
        sent += s.sent;
        dropped += s.dropped_total;
        posthog_client_free(c);
    }
    printf("## fork() with a live client\n\n");
    printf("Time the parent spends inside fork() (the child _exit()s at once), %d forks per "
           "state, median over %d runs. Before a fork the library parks the flusher where it "
           "holds no lock (bounded at 0.5 s); \"no flusher\" is the same client after "
           "posthog_shutdown, same memory, nothing to park. In all, %llu events were captured "
           "(most by the busy state's producer thread), %llu delivered, %llu dropped.\n\n",
           forks, runs, (unsigned long long)produced, (unsigned long long)sent,
           (unsigned long long)dropped);
    printf("| client state | fork() p50 µs | p99 µs | max µs |\n|---|---:|---:|---:|\n");
    const char *names[] = {"no flusher (baseline)", "idle flusher", "busy flusher"};
    stat_t *all[] = {none, idle, busy};
    for (int k = 0; k < 3; k++) {
        double a[16], b[16], m[16];
        for (int r = 0; r < runs; r++) {
            a[r] = all[k][r].p50_us;
            b[r] = all[k][r].p99_us;
            m[r] = all[k][r].max_us;
        }
        printf("| %s | %.0f | %.0f | %.0f |\n", names[k], median(a, runs), median(b, runs),
               median(m, runs));
    }
    printf("\n");
    return 0;
}
