/*
 * ph-heap: the library's heap, counted through posthog_set_allocator.
 *
 *   ph-heap URL [--budget BYTES] [--events N] [--compression C] [--pace]
 *           [--stack BYTES]
 *
 * Prints one line of key=value pairs:
 *  idle_heap    bytes the library holds after posthog_client_new, once its
 *               thread is up and idle (the transport, libcurl, is not
 *               counted: it keeps the system allocator)
 *  peak_heap    the most it held at once from creation to the end of a
 *               flood of N events (captured flat out, or --pace: waiting
 *               while the queue is full, so nothing is dropped) and the
 *               flush that follows
 *  ring         the queue's ring (an anonymous mapping, touched as used)
 *  total        peak_heap + ring, the figure memory_budget bounds
 *  stack_used   high-water mark of the flusher thread's stack (pages it
 *               touched, from mincore), and stack_size its size
 *  captured/queue_full/sent/dropped  the client's counters (with --pace,
 *               dropped counts the refused attempts that were retried)
 *  leaked       bytes still allocated after posthog_client_free (0)
 * Exit status 0 when leaked == 0, every captured event was sent, and with
 * a budget total <= budget.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <posthog/posthog.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "count_alloc.h"

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The flusher's stack: glibc maps it as exactly `size` bytes right above a
 * guard page; its pages are resident once touched (mincore). */
static long stack_used(size_t size) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[512];
    unsigned long prev_end = 0;
    int after_guard = 0;
    long best = -1;
    long pg = sysconf(_SC_PAGESIZE);
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3) continue;
        if (!strncmp(perms, "rw", 2) && after_guard && prev_end == lo && hi - lo == size) {
            size_t n = (hi - lo) / (size_t)pg;
            unsigned char *v = malloc(n);
            if (v && mincore((void *)lo, hi - lo, v) == 0) {
                long r = 0;
                for (size_t i = 0; i < n; i++) r += v[i] & 1;
                if (r * pg > best) best = r * pg;
            }
            free(v);
        }
        after_guard = !strcmp(perms, "---p");
        prev_end = hi;
    }
    fclose(f);
    return best;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--arch")) { /* tools/heap.sh's header */
#if defined(__aarch64__)
        const char *arch = "arm64";
#elif defined(__arm__)
        const char *arch = "armhf";
#elif defined(__x86_64__)
        const char *arch = "x86_64";
#else
        const char *arch = "other";
#endif
        printf("%s, %zu-bit\n", arch, sizeof(void *) * 8);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: ph-heap URL [--budget BYTES] [--events N] [--compression C] "
                        "[--pace]\n");
        return 2;
    }
    const char *url = argv[1], *budget = NULL, *codec = NULL;
    /* distinctive, so its mapping can be found (stack_used) */
    size_t stack = 256 * 1024 + 3 * 4096;
    long events = 10000;
    int pace = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--budget") && i + 1 < argc) budget = argv[++i];
        else if (!strcmp(argv[i], "--events") && i + 1 < argc) events = atol(argv[++i]);
        else if (!strcmp(argv[i], "--compression") && i + 1 < argc) codec = argv[++i];
        else if (!strcmp(argv[i], "--pace")) pace = 1;
        else if (!strcmp(argv[i], "--stack") && i + 1 < argc) stack = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "ph-heap: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (posthog_set_allocator(ca_malloc, ca_realloc, ca_free) != POSTHOG_OK) return 2;
    char sbuf[32];
    snprintf(sbuf, sizeof sbuf, "%zu", stack);
    posthog_options_t *o = posthog_options_new();
    char err[512];
    if (posthog_options_set_ex(o, "api_key", "phc_heap", err, sizeof err) ||
        posthog_options_set_ex(o, "host", url, err, sizeof err) ||
        posthog_options_set_ex(o, "log_level", "none", err, sizeof err) ||
        posthog_options_set_ex(o, "thread_stack_size", sbuf, err, sizeof err) ||
        (budget && strcmp(budget, "0") &&
         posthog_options_set_ex(o, "memory_budget", budget, err, sizeof err)) ||
        (codec && posthog_options_set_ex(o, "compression", codec, err, sizeof err))) {
        fprintf(stderr, "ph-heap: %s\n", err);
        return 2;
    }
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    if (!c) {
        fprintf(stderr, "ph-heap: %s\n", err);
        return 2;
    }
    sleep_ms(300); /* the flusher starts and goes idle */
    int64_t idle = atomic_load(&ca_cur);
    uint64_t ring = posthog_get_stat(c, "queue_capacity_bytes");
    long qfull = 0;
    char props[256];
    for (long i = 0; i < events; i++) {
        snprintf(props, sizeof props,
                 "{\"$current_url\":\"https://example.com/pricing?ref=%ld\",\"plan\":\"pro\","
                 "\"seats\":%ld,\"trial\":false,\"$browser\":\"Firefox\",\"n\":%ld}",
                 i % 97, i % 50, i);
        for (;;) {
            posthog_status_t st = posthog_capture_json(c, "user-42", "page_viewed", props);
            if (st == POSTHOG_OK) break;
            if (st == POSTHOG_E_QUEUE_FULL && pace) {
                sleep_ms(1);
                continue;
            }
            qfull += st == POSTHOG_E_QUEUE_FULL;
            break;
        }
    }
    posthog_flush_result_t fr;
    posthog_flush_ex(c, 120000, &fr);
    long used = stack_used(stack);
    posthog_stats_t s;
    posthog_get_stats(c, &s);
    int64_t pk = atomic_load(&ca_peak);
    posthog_client_free(c);
    int64_t leaked = atomic_load(&ca_cur);
    unsigned long long b = budget ? strtoull(budget, NULL, 10) : 0;
    unsigned long long total = (unsigned long long)pk + ring;
    printf("budget=%llu compression=%s events=%ld pace=%d idle_heap=%lld peak_heap=%lld ring=%llu "
           "total=%llu stack_used=%ld stack_size=%zu captured=%llu queue_full=%ld sent=%llu "
           "dropped=%llu allocations=%lld leaked=%lld\n",
           b, codec ? codec : "default", events, pace, (long long)idle, (long long)pk,
           (unsigned long long)ring, total, used, stack, (unsigned long long)s.captured, qfull,
           (unsigned long long)s.sent, (unsigned long long)s.dropped_total,
           (long long)atomic_load(&ca_nalloc), (long long)leaked);
    return leaked == 0 && s.sent == s.captured && (!b || total <= b) ? 0 : 1;
}
