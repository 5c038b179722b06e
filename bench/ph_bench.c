/*
 * ph-bench: libposthog benchmarks through the public API only.
 * Driven by bench/run.py (tools/bench.sh); each mode prints ONE JSON line
 * on stdout.
 *
 *   ph-bench run typed|json URL N default|tuned
 *       The issue-5 workload: N captures in one tight loop on one thread,
 *       event "bench_event", distinct_id "user-<i mod 1000>", properties
 *       {"plan":"pro","count":i,"ratio":0.5,"flag":true,
 *        "path":"/checkout/step/2","tags":["a","b"]} built anew per event
 *       (typed: posthog_props_* setters on a cleared builder; json: the text
 *       built with snprintf), then posthog_flush + posthog_shutdown.
 *   ph-bench latency THREADS URL N [warm]
 *       Time of each single posthog_capture call (props built before the
 *       timed region), N calls split over THREADS producer threads. With
 *       "warm", an untimed pass of N captures + flush runs first, so the
 *       queue's ring pages are already resident (no first-touch faults).
 *   ph-bench membound URL N
 *       URL is a closed port (server down): N captures with default
 *       options; RSS sampled along the way; drops counted.
 *   ph-bench checkopts
 *       Only sets the --opt options on a fresh options object: exit 0 when
 *       the library accepts them all, 3 (with the JSON line below) when not.
 *
 * Every mode takes any number of "--opt KEY=VALUE" (anywhere on the command
 * line): library options passed through posthog_options_set as they are,
 * after the config's own (e.g. --opt capture_mode=v1 --opt compression=zstd).
 * An option the library refuses (POSTHOG_E_UNKNOWN_OPTION, or
 * _BAD_OPTION_VALUE) ends the process with exit status 3 and ONE JSON line
 * {"unsupported_option":KEY,"value":VALUE,"status":...}, which run.py reports
 * as "n/a (option unsupported)".
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_RDTSC 1
#else
#define HAVE_RDTSC 0
#endif

#include "posthog/posthog.h"
#include "options.h" /* internal: the library's default max_queue_bytes */
#include "bench_clock.h"

static unsigned long long default_queue_bytes(void) {
    posthog_options_t *o = posthog_options_new();
    unsigned long long v = o ? (unsigned long long)o->max_queue_bytes : 0;
    posthog_options_free(o);
    return v;
}

#define API_KEY "phc_bench_key"

static double proc_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static long maxrss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Peak resident set of this process's own address space (VmHWM), in KiB;
 * -1 when unknown. Unlike ru_maxrss it does not carry the RSS of the
 * parent that forked us (Linux keeps that across execve). */
static long vmhwm_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) {
            v = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Current resident set in KiB, from /proc/self/statm. */
static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long size = 0, res = 0;
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static _Noreturn void die(const char *what, posthog_status_t st) {
    fprintf(stderr, "ph-bench: %s: %s\n", what, posthog_strerror(st));
    exit(1);
}

static void set_opt(posthog_options_t *o, const char *k, const char *v) {
    posthog_status_t st = posthog_options_set(o, k, v);
    if (st != POSTHOG_OK) {
        fprintf(stderr, "ph-bench: option %s=%s: %s\n", k, v, posthog_strerror(st));
        exit(1);
    }
}

/* --opt KEY=VALUE pairs from the command line, applied after the config's. */
#define MAX_OPTS 32
static const char *opt_key[MAX_OPTS];
static const char *opt_val[MAX_OPTS];
static int n_opts;

static int have_opt(const char *k) {
    for (int i = 0; i < n_opts; i++)
        if (!strcmp(opt_key[i], k)) return 1;
    return 0;
}

/* Prints s escaped for a JSON string (quotes and backslashes; control
 * characters dropped), without the surrounding quotes. */
static void print_json_chars(const char *s) {
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20) continue;
        if (*s == '"' || *s == '\\') putchar('\\');
        putchar(*s);
    }
}

static void print_json_str(const char *s) {
    putchar('"');
    print_json_chars(s);
    putchar('"');
}

static void apply_extra_opts(posthog_options_t *o) {
    for (int i = 0; i < n_opts; i++) {
        posthog_status_t st = posthog_options_set(o, opt_key[i], opt_val[i]);
        if (st == POSTHOG_OK) continue;
        printf("{\"unsupported_option\":");
        print_json_str(opt_key[i]);
        printf(",\"value\":");
        print_json_str(opt_val[i]);
        printf(",\"status\":");
        print_json_str(posthog_strerror(st));
        printf(",\"code\":%d}\n", (int)st);
        fprintf(stderr, "ph-bench: option %s=%s refused: %s\n", opt_key[i], opt_val[i],
                posthog_strerror(st));
        exit(3);
    }
}

/* "k=v,k2=v2" of the --opt options, for the JSON lines. */
static void print_opts_field(void) {
    printf("\"opts\":\"");
    for (int i = 0; i < n_opts; i++) {
        if (i) putchar(',');
        print_json_chars(opt_key[i]);
        putchar('=');
        print_json_chars(opt_val[i]);
    }
    printf("\",");
}

static posthog_client_t *make_client(const char *url, int tuned, long n) {
    posthog_options_t *o = posthog_options_new();
    if (!o) die("options_new", POSTHOG_E_NOMEM);
    set_opt(o, "api_key", API_KEY);
    set_opt(o, "host", url);
    if (tuned) {
        /* batches of 1000, a queue that holds all N, gzip on */
        char buf[64];
        set_opt(o, "flush_at", "1000");
        set_opt(o, "max_batch_size", "1000");
        snprintf(buf, sizeof buf, "%ld", n > 262144 ? n : 262144);
        set_opt(o, "max_queue_size", buf);
        /* ~260 bytes per queued record here; leave room for all N */
        unsigned long long qb = (unsigned long long)n * 512u;
        if (qb < (32ull << 20)) qb = 32ull << 20;
        snprintf(buf, sizeof buf, "%llu", qb);
        set_opt(o, "max_queue_bytes", buf);
        /* gzip on, unless --opt compression=... chooses the encoding */
        if (!have_opt("compression")) set_opt(o, "gzip", "1");
    }
    apply_extra_opts(o);
    char err[256] = "";
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    if (!c) {
        fprintf(stderr, "ph-bench: client_new: %s\n", err);
        exit(1);
    }
    return c;
}

/* Builds the workload's properties for event i into p (cleared first). */
static void build_typed(posthog_props_t *p, posthog_props_t *tags, long i) {
    posthog_props_clear(p);
    posthog_props_clear(tags);
    posthog_props_set_string(p, "plan", "pro");
    posthog_props_set_int(p, "count", i);
    posthog_props_set_double(p, "ratio", 0.5);
    posthog_props_set_bool(p, "flag", 1);
    posthog_props_set_string(p, "path", "/checkout/step/2");
    posthog_props_set_string(tags, NULL, "a");
    posthog_props_set_string(tags, NULL, "b");
    posthog_props_set_props(p, "tags", tags);
}

static int build_json(char *buf, size_t n, long i) {
    return snprintf(buf, n,
                    "{\"plan\":\"pro\",\"count\":%ld,\"ratio\":0.5,\"flag\":true,"
                    "\"path\":\"/checkout/step/2\",\"tags\":[\"a\",\"b\"]}",
                    i);
}

static void print_stats_fields(const posthog_stats_t *s) {
    printf("\"captured\":%llu,\"sent\":%llu,\"lib_requests\":%llu,\"retries\":%llu,"
           "\"bytes_raw\":%llu,\"bytes_sent\":%llu,\"dropped_total\":%llu",
           (unsigned long long)s->captured, (unsigned long long)s->sent,
           (unsigned long long)s->requests, (unsigned long long)s->retries,
           (unsigned long long)s->bytes_raw, (unsigned long long)s->bytes_sent,
           (unsigned long long)s->dropped_total);
    for (int r = 0; r < POSTHOG_DROP_REASON_COUNT; r++)
        printf(",\"dropped_%s\":%llu", posthog_drop_reason_name((posthog_drop_reason_t)r),
               (unsigned long long)s->dropped[r]);
}

/* ------------------------------------------------------------------ run */

static int mode_run(const char *kind, const char *url, long n, const char *cfg) {
    int typed = !strcmp(kind, "typed");
    if (!typed && strcmp(kind, "json")) {
        fprintf(stderr, "ph-bench: kind must be typed or json\n");
        return 2;
    }
    int tuned = !strcmp(cfg, "tuned");
    posthog_client_t *c = make_client(url, tuned, n);
    posthog_props_t *p = posthog_props_new(), *tags = posthog_props_new_array();
    char did[32], json[256];
    long rejected = 0;

    double cpu0 = proc_cpu_s(), tcpu0 = thread_cpu_s(), t0 = now_s();
    for (long i = 0; i < n; i++) {
        snprintf(did, sizeof did, "user-%ld", i % 1000);
        posthog_status_t st;
        if (typed) {
            build_typed(p, tags, i);
            st = posthog_capture(c, did, "bench_event", p);
        } else {
            build_json(json, sizeof json, i);
            st = posthog_capture_json(c, did, "bench_event", json);
        }
        rejected += st != POSTHOG_OK;
    }
    double t1 = now_s(), tcpu1 = thread_cpu_s();
    posthog_status_t fst = posthog_flush(c, 120000); /* bounded: 2 minutes */
    double tcpu_f = thread_cpu_s(), t_f = now_s();
    posthog_status_t sst = posthog_shutdown(c, 5000);
    double t2 = now_s(), cpu2 = proc_cpu_s(), tcpu2 = thread_cpu_s();
    posthog_stats_t s;
    posthog_get_stats(c, &s);

    printf("{");
    print_opts_field();
    printf("\"client\":\"libposthog-c-%s\",\"config\":\"%s\",\"n\":%ld,\"loop_s\":%.6f,"
           "\"capture_ns\":%.1f,\"e2e_s\":%.6f,\"cpu_s\":%.6f,\"main_loop_cpu_s\":%.6f,"
           "\"main_cpu_s\":%.6f,\"main_flush_cpu_s\":%.6f,\"flush_s\":%.6f,\"maxrss_kib\":%ld,\"vmhwm_kib\":%ld,\"rejected\":%ld,\"flush\":\"%s\","
           "\"shutdown\":\"%s\",",
           kind, cfg, n, t1 - t0, (t1 - t0) * 1e9 / (double)n, t2 - t0, cpu2 - cpu0,
           tcpu1 - tcpu0, tcpu2 - tcpu0, tcpu_f - tcpu1, t_f - t1, maxrss_kib(), vmhwm_kib(), rejected, posthog_strerror(fst),
           posthog_strerror(sst));
    print_stats_fields(&s);
    printf("}\n");
    posthog_client_free(c);
    posthog_props_free(p);
    posthog_props_free(tags);
    return 0;
}

/* ------------------------------------------------------------------ latency */

static double ticks_per_ns = 1.0;

static inline uint64_t ticks(void) {
#if HAVE_RDTSC
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
#else
    return now_ns();
#endif
}

static void calibrate(void) {
#if HAVE_RDTSC
    uint64_t n0 = now_ns(), c0 = ticks();
    struct timespec d = {0, 100 * 1000 * 1000};
    nanosleep(&d, NULL);
    uint64_t n1 = now_ns(), c1 = ticks();
    ticks_per_ns = (double)(c1 - c0) / (double)(n1 - n0);
#endif
}

typedef struct {
    posthog_client_t *c;
    long n, base;
    uint32_t *samples; /* ticks */
    long rejected;
    pthread_barrier_t *bar;
} lat_arg_t;

static void *lat_thread(void *arg) {
    lat_arg_t *a = arg;
    posthog_props_t *p = posthog_props_new(), *tags = posthog_props_new_array();
    char did[32];
    pthread_barrier_wait(a->bar);
    for (long k = 0; k < a->n; k++) {
        long i = a->base + k;
        snprintf(did, sizeof did, "user-%ld", i % 1000);
        build_typed(p, tags, i);
        uint64_t t0 = ticks();
        posthog_status_t st = posthog_capture(a->c, did, "bench_event", p);
        uint64_t t1 = ticks();
        uint64_t d = t1 - t0;
        a->samples[k] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
        a->rejected += st != POSTHOG_OK;
    }
    posthog_props_free(p);
    posthog_props_free(tags);
    return NULL;
}

static int cmp_u32(const void *x, const void *y) {
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

static double pct_ns(const uint32_t *s, long n, double q) {
    long i = (long)(q * (double)(n - 1) + 0.5);
    if (i >= n) i = n - 1;
    return (double)s[i] / ticks_per_ns;
}

static long minflt(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static int mode_latency(int threads, const char *url, long n, int warm) {
    if (threads < 1 || threads > 64) return 2;
    calibrate();
    /* timer overhead: an empty timed region */
    enum { OV = 100000 };
    static uint32_t ov[OV];
    for (int i = 0; i < OV; i++) {
        uint64_t t0 = ticks(), t1 = ticks();
        ov[i] = (uint32_t)(t1 - t0);
    }
    qsort(ov, OV, sizeof ov[0], cmp_u32);
    double overhead = pct_ns(ov, OV, 0.5);

    posthog_client_t *c = make_client(url, 0, n);
    pthread_t th[64];
    lat_arg_t args[64];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    long per = n / threads;
    uint32_t *all = calloc((size_t)per * (size_t)threads, sizeof *all);
    if (!all) return 1;
    long rejected = 0, flt = 0;
    for (int pass = warm ? 0 : 1; pass < 2; pass++) {
        long f0 = minflt();
        rejected = 0;
        for (int t = 0; t < threads; t++) {
            args[t] = (lat_arg_t){c, per, per * t, all + per * t, 0, &bar};
            pthread_create(&th[t], NULL, lat_thread, &args[t]);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            rejected += args[t].rejected;
        }
        flt = minflt() - f0;
        if (pass == 0) posthog_flush(c, 120000);
    }
    posthog_flush(c, 120000);
    posthog_shutdown(c, 5000);
    posthog_stats_t s;
    posthog_get_stats(c, &s);
    long total = per * threads;
    double sum = 0;
    for (long i = 0; i < total; i++) sum += all[i];
    qsort(all, (size_t)total, sizeof *all, cmp_u32);
    /* histogram buckets, upper bounds in ns */
    static const double edges[] = {100, 200, 300, 500, 1000, 2000, 5000, 10000, 100000, 1e300};
    enum { NE = sizeof edges / sizeof edges[0] };
    long counts[NE] = {0};
    for (long i = 0, e = 0; i < total; i++) {
        double v = (double)all[i] / ticks_per_ns;
        while (v >= edges[e]) e++;
        counts[e]++;
    }
    printf("{\"threads\":%d,\"n\":%ld,\"timer\":\"%s\",\"timer_overhead_ns\":%.1f,"
           "\"mean_ns\":%.1f,\"p50_ns\":%.1f,\"p90_ns\":%.1f,\"p99_ns\":%.1f,\"p999_ns\":%.1f,"
           "\"max_ns\":%.1f,\"rejected\":%ld,\"warm\":%d,\"minor_faults\":%ld,"
           "\"hist_edges_ns\":[",
           threads, total, HAVE_RDTSC ? "rdtsc" : "clock_gettime", overhead,
           sum / (double)total / ticks_per_ns, pct_ns(all, total, 0.5), pct_ns(all, total, 0.9),
           pct_ns(all, total, 0.99), pct_ns(all, total, 0.999),
           (double)all[total - 1] / ticks_per_ns, rejected, warm, flt);
    for (int e = 0; e < NE - 1; e++) printf("%s%.0f", e ? "," : "", edges[e]);
    printf("],\"hist_counts\":[");
    for (int e = 0; e < NE; e++) printf("%s%ld", e ? "," : "", counts[e]);
    printf("],");
    print_stats_fields(&s);
    printf("}\n");
    posthog_client_free(c);
    free(all);
    return 0;
}

/* ------------------------------------------------------------------ membound */

static int mode_membound(const char *url, long n) {
    long rss_start = rss_kib();
    posthog_options_t *o = posthog_options_new();
    set_opt(o, "api_key", API_KEY);
    set_opt(o, "host", url);
    apply_extra_opts(o);
    char err[256] = "";
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    if (!c) {
        fprintf(stderr, "ph-bench: client_new: %s\n", err);
        return 1;
    }
    /* a few events so the flusher and libcurl are fully set up */
    posthog_props_t *p = posthog_props_new(), *tags = posthog_props_new_array();
    char did[32];
    long base = rss_kib(), peak = base;
    double t0 = now_s();
    long rejected = 0;
    for (long i = 0; i < n; i++) {
        snprintf(did, sizeof did, "user-%ld", i % 1000);
        build_typed(p, tags, i);
        rejected += posthog_capture(c, did, "bench_event", p) != POSTHOG_OK;
        if ((i & 8191) == 0) {
            long r = rss_kib();
            if (r > peak) peak = r;
        }
    }
    double t1 = now_s();
    long r = rss_kib();
    if (r > peak) peak = r;
    posthog_stats_t s1;
    posthog_get_stats(c, &s1);
    posthog_status_t sst = posthog_shutdown(c, 1000);
    posthog_stats_t s;
    posthog_get_stats(c, &s);
    printf("{\"n\":%ld,\"loop_s\":%.3f,\"rss_start_kib\":%ld,\"rss_base_kib\":%ld,"
           "\"rss_peak_sampled_kib\":%ld,\"maxrss_kib\":%ld,\"max_queue_bytes\":%llu,"
           "\"rejected\":%ld,\"queue_bytes_at_end\":%llu,\"queue_depth_at_end\":%llu,"
           "\"shutdown\":\"%s\",",
           n, t1 - t0, rss_start, base, peak, maxrss_kib(), default_queue_bytes(), rejected,
           (unsigned long long)s1.queue_bytes, (unsigned long long)s1.queue_depth,
           posthog_strerror(sst));
    print_stats_fields(&s);
    printf("}\n");
    posthog_client_free(c);
    posthog_props_free(p);
    posthog_props_free(tags);
    return 0;
}

static int mode_checkopts(void) {
    posthog_options_t *o = posthog_options_new();
    if (!o) die("options_new", POSTHOG_E_NOMEM);
    apply_extra_opts(o);
    posthog_options_free(o);
    printf("{");
    print_opts_field();
    printf("\"ok\":true}\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* take the --opt KEY=VALUE pairs out of argv */
    int m = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--opt") || !strncmp(argv[i], "--opt=", 6)) {
            const char *kv = argv[i][5] == '=' ? argv[i] + 6 : (i + 1 < argc ? argv[++i] : NULL);
            char *eq = kv ? strchr(kv, '=') : NULL;
            if (!eq || eq == kv || n_opts == MAX_OPTS) {
                fprintf(stderr, "ph-bench: --opt needs KEY=VALUE (at most %d)\n", MAX_OPTS);
                return 2;
            }
            *eq = '\0'; /* argv strings are writable */
            opt_key[n_opts] = kv;
            opt_val[n_opts++] = eq + 1;
            continue;
        }
        argv[m++] = argv[i];
    }
    argc = m;
    argv[argc] = NULL;
    if (argc == 2 && !strcmp(argv[1], "checkopts")) return mode_checkopts();
    if (argc == 6 && !strcmp(argv[1], "run"))
        return mode_run(argv[2], argv[3], atol(argv[4]), argv[5]);
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "latency"))
        return mode_latency(atoi(argv[2]), argv[3], atol(argv[4]),
                            argc == 6 && !strcmp(argv[5], "warm"));
    if (argc == 4 && !strcmp(argv[1], "membound")) return mode_membound(argv[2], atol(argv[3]));
    fprintf(stderr, "usage: ph-bench run typed|json URL N default|tuned\n"
                    "       ph-bench latency THREADS URL N [warm]\n"
                    "       ph-bench membound URL N\n"
                    "       ph-bench checkopts\n"
                    "  each with any number of --opt KEY=VALUE (library options)\n");
    return 2;
}
