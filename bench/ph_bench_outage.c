/*
 * ph-bench-outage: what a long outage costs the disk (issue 13, flash wear).
 * A client at the default options (flush_at 10, so that a batch is sealed
 * per 10 events) spools while its endpoint refuses connections; the wall
 * clock is stepped by the flush interval (5 s) after every batch, so an
 * hour passes in a second or two. fsyncs and newly created spool files are
 * counted exactly through the spool's fault hooks. Prints one markdown
 * table row.
 *
 *   ph-bench-outage DIR [HOURS]
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <posthog/posthog.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "spool.h" /* internal: the counting hooks */

void posthog__test_step_wall_clock(int64_t delta_ms);

static _Atomic long fsyncs, opens;
static int count_fsync(void) {
    atomic_fetch_add(&fsyncs, 1);
    return 0;
}
static int count_open(void) {
    atomic_fetch_add(&opens, 1);
    return 0;
}

static int spool_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += !strncmp(e->d_name, "ph-", 3);
    if (d) closedir(d);
    return n;
}

/* A port on 127.0.0.1 that refuses connections (bound, then closed). */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l))
        exit(1);
    close(fd);
    return ntohs(a.sin_port);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int wait_spooled(posthog_client_t *c, uint64_t n) {
    for (int i = 0; i < 20000; i++) {
        if (posthog_get_stat(c, "spooled") >= n) return 0;
        sleep_ms(1);
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [HOURS]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int hours = argc > 2 ? atoi(argv[2]) : 1;
    enum { PER = 10, STEP_MS = 5000 };
    long batches = (long)hours * 3600 * 1000 / STEP_MS;
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", closed_port());
    posthog_options_t *o = posthog_options_new();
    posthog_options_set(o, "api_key", "phc_bench");
    posthog_options_set(o, "host", host);
    posthog_options_set(o, "storage_path", dir);
    posthog_options_set(o, "flush_at", "10");
    posthog_options_set(o, "log_level", "none");
    posthog__spool_faults.before_fsync = count_fsync;
    posthog__spool_faults.before_open = count_open;
    char err[256];
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int most = 0;
    for (long b = 0; b < batches; b++) {
        if (b) posthog__test_step_wall_clock(STEP_MS);
        for (long i = 0; i < PER; i++) posthog_capture(c, "u", "outage", NULL);
        if (wait_spooled(c, (uint64_t)(b + 1) * PER)) {
            fprintf(stderr, "batch %ld was not spooled\n", b);
            return 1;
        }
        int f = spool_files(dir);
        if (f > most) most = f;
    }
    long fs = atomic_load(&fsyncs), op = atomic_load(&opens);
    int left = spool_files(dir);
    posthog_client_free(c);
    posthog__test_step_wall_clock(-(int64_t)(batches - 1) * STEP_MS);
    printf("| %d h | %ld batches of %d | %ld | %.0f | %ld | %d | %d |\n", hours, batches, PER, fs,
           (double)fs / hours, op, most, left);
    return 0;
}
