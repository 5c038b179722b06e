/*
 * ph-bench-flags: latency of local feature-flag evaluation (issue 10), p50
 * and p99 per call, on the definitions and persons of bench/flags_defs.py
 * (the same file posthog-python and posthog-node evaluate in the same run).
 *
 *   ph-bench-flags DEFS.json [URL|-] [ITERATIONS]
 *
 * DEFS.json  {"definitions": {...}, "persons": [...]} (flags_defs.py)
 * URL        a posthog-ingest-server serving those definitions on
 *            /flags/definitions (bench/run.py sets them up): enables the
 *            public-API rows and the capture-cost rows; "-" or absent: the
 *            engine rows only
 * ITERATIONS timed calls per single-flag workload [200000]; "all 100 flags"
 *            runs ITERATIONS/20
 *
 * Rows, each over rotating persons (1024 distinct ids):
 *   engine  posthog__flags_evaluate on a compiled ph_flags_defs_t (the
 *           internal API, src/flags/flags.h) for rollout / props5 /
 *           multivariate / cohort; posthog__flags_evaluate_all for all100
 *   api     posthog_get_feature_flag with local definitions (secret_key,
 *           only_evaluate_locally, send_feature_flag_events off), person
 *           properties as JSON text like a caller passes them;
 *           posthog_evaluate_flags (+ posthog_flags_free) for all100
 *           (and the bucketing hash alone, the floor of a rollout-only flag)
 *   capture posthog_capture_json with a client without flags and with one
 *           that has loaded definitions: the capture path must not get
 *           slower when local evaluation is on
 * Each call is timed alone (rdtsc with lfence on x86-64, else
 * CLOCK_MONOTONIC); the timer's own cost is measured and reported
 * (timer_overhead_ns), not subtracted. A human table goes to stderr and ONE
 * JSON line to stdout (for bench/run.py). Exit 1 if any evaluation was not
 * decided locally (the workloads are built so that all are).
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_RDTSC 1
#else
#define HAVE_RDTSC 0
#endif

#include "bench_clock.h"
#include "flags.h"
#include "posthog/posthog.h"
#include "sha1.h"

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
    double p50, p99, mean;
    long n;
} stats_t;

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static stats_t summarize(uint64_t *s, long n) {
    stats_t r = {0, 0, 0, n};
    if (n <= 0) return r;
    double sum = 0;
    for (long i = 0; i < n; i++) sum += (double)s[i];
    qsort(s, (size_t)n, sizeof *s, cmp_u64);
    r.p50 = (double)s[n / 2] / ticks_per_ns;
    r.p99 = (double)s[(long)((double)n * 0.99)] / ticks_per_ns;
    r.mean = sum / (double)n / ticks_per_ns;
    return r;
}

/* ------------------------------------------------------------ input */

typedef struct {
    char *did;
    cJSON *props;     /* parsed, for the engine */
    char *props_json; /* text, for the public API */
} person_t;

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

static const char *WORKLOADS[] = {"rollout", "props5", "multivariate", "cohort"};
#define NWORK 4

static long undecided;

/* ------------------------------------------------------------ engine rows */

static stats_t engine_one(const ph_flags_defs_t *d, const char *key, person_t *p, long np,
                          long iters, uint64_t *s) {
    ph_flag_result_t r;
    for (long i = 0; i < 20000; i++) { /* warm-up */
        ph_flags_ctx_t ctx = {.distinct_id = p[i % np].did, .person_properties = p[i % np].props};
        posthog__flags_evaluate(d, key, &ctx, &r);
    }
    for (long i = 0; i < iters; i++) {
        ph_flags_ctx_t ctx = {.distinct_id = p[i % np].did, .person_properties = p[i % np].props};
        uint64_t t0 = ticks();
        posthog__flags_evaluate(d, key, &ctx, &r);
        uint64_t t1 = ticks();
        s[i] = t1 - t0;
        undecided += r.value == PH_FLAG_INCONCLUSIVE;
    }
    return summarize(s, iters);
}

static stats_t engine_all(const ph_flags_defs_t *d, person_t *p, long np, long iters,
                          uint64_t *s) {
    size_t n = posthog__flags_count(d);
    ph_flag_result_t *out = calloc(n, sizeof *out);
    for (long i = 0; i < 500; i++) {
        ph_flags_ctx_t ctx = {.distinct_id = p[i % np].did, .person_properties = p[i % np].props};
        posthog__flags_evaluate_all(d, &ctx, out);
    }
    for (long i = 0; i < iters; i++) {
        ph_flags_ctx_t ctx = {.distinct_id = p[i % np].did, .person_properties = p[i % np].props};
        uint64_t t0 = ticks();
        posthog__flags_evaluate_all(d, &ctx, out);
        uint64_t t1 = ticks();
        s[i] = t1 - t0;
        for (size_t k = 0; k < n; k++) undecided += out[k].value == PH_FLAG_INCONCLUSIVE;
    }
    free(out);
    return summarize(s, iters);
}

/* ------------------------------------------------------------ public API rows */

static posthog_client_t *make_client(const char *url, int flags) {
    posthog_options_t *o = posthog_options_new();
    if (!o) return NULL;
    posthog_options_set(o, "host", url);
    posthog_options_set(o, "api_key", "phc_bench_flags");
    posthog_options_set(o, "send_feature_flag_events", "0");
    if (flags) {
        posthog_options_set(o, "secret_key", "phs_bench_flags_secret");
        posthog_options_set(o, "poll_interval_ms", "3600000");
    }
    char err[256];
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    if (!c) fprintf(stderr, "ph-bench-flags: posthog_client_new: %s\n", err);
    return c;
}

static stats_t api_one(posthog_client_t *c, const char *key, person_t *p, long np, long iters,
                       uint64_t *s) {
    char variant[64];
    posthog_flags_options_t o;
    memset(&o, 0, sizeof o);
    o.only_evaluate_locally = 1;
    o.send_feature_flag_events = POSTHOG_FALSE;
    for (long i = 0; i < 20000; i++) {
        o.person_properties_json = p[i % np].props_json;
        posthog_get_feature_flag(c, key, p[i % np].did, &o, variant, sizeof variant);
    }
    for (long i = 0; i < iters; i++) {
        o.person_properties_json = p[i % np].props_json;
        uint64_t t0 = ticks();
        posthog_flag_state_t st =
            posthog_get_feature_flag(c, key, p[i % np].did, &o, variant, sizeof variant);
        uint64_t t1 = ticks();
        s[i] = t1 - t0;
        undecided += st == POSTHOG_FLAG_UNKNOWN;
    }
    return summarize(s, iters);
}

static stats_t api_all(posthog_client_t *c, person_t *p, long np, long iters, uint64_t *s,
                       size_t nflags) {
    posthog_flags_options_t o;
    memset(&o, 0, sizeof o);
    o.only_evaluate_locally = 1;
    o.send_feature_flag_events = POSTHOG_FALSE;
    for (long i = 0; i < iters + 500; i++) {
        o.person_properties_json = p[i % np].props_json;
        posthog_flags_t *f = NULL;
        uint64_t t0 = ticks();
        posthog_status_t st = posthog_evaluate_flags(c, p[i % np].did, &o, &f);
        posthog_flags_free(f);
        uint64_t t1 = ticks();
        if (i >= 500) {
            s[i - 500] = t1 - t0;
            if (st != POSTHOG_OK) undecided += (long)nflags;
        }
    }
    return summarize(s, iters);
}

static stats_t capture_cost(posthog_client_t *c, person_t *p, long np, long iters, uint64_t *s) {
    for (long i = 0; i < iters; i++) {
        uint64_t t0 = ticks();
        posthog_capture_json(c, p[i % np].did, "bench_event", "{\"plan\":\"pro\",\"n\":1}");
        uint64_t t1 = ticks();
        s[i] = t1 - t0;
    }
    return summarize(s, iters);
}

/* ------------------------------------------------------------ output */

static void json_stats(const char *name, stats_t st, int *first) {
    printf("%s\"%s\":{\"p50_ns\":%.1f,\"p99_ns\":%.1f,\"mean_ns\":%.1f,\"n\":%ld}",
           *first ? "" : ",", name, st.p50, st.p99, st.mean, st.n);
    *first = 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DEFS.json [URL|-] [ITERATIONS]\n", argv[0]);
        return 2;
    }
    const char *url = argc > 2 && strcmp(argv[2], "-") ? argv[2] : NULL;
    long iters = argc > 3 ? atol(argv[3]) : 200000;
    if (iters < 1000) {
        fprintf(stderr, "ph-bench-flags: ITERATIONS must be >= 1000\n");
        return 2;
    }
    char *text = read_file(argv[1]);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *defs_json = cJSON_GetObjectItemCaseSensitive(root, "definitions");
    const cJSON *persons = cJSON_GetObjectItemCaseSensitive(root, "persons");
    if (!cJSON_IsObject(defs_json) || !cJSON_IsArray(persons) || !cJSON_GetArraySize(persons)) {
        fprintf(stderr, "ph-bench-flags: %s: expected {\"definitions\": {...}, \"persons\": "
                        "[...]} (bench/flags_defs.py)\n", argv[1]);
        cJSON_Delete(root);
        return 2;
    }
    long np = cJSON_GetArraySize(persons);
    person_t *p = calloc((size_t)np, sizeof *p);
    long k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, persons) {
        const cJSON *did = cJSON_GetObjectItemCaseSensitive(e, "distinct_id");
        p[k].did = cJSON_IsString(did) ? did->valuestring : "anon";
        p[k].props = cJSON_GetObjectItemCaseSensitive(e, "person_properties");
        p[k].props_json = cJSON_PrintUnformatted(p[k].props);
        k++;
    }
    char err[256] = "";
    ph_flags_defs_t *d = posthog__flags_compile_tree(defs_json, err, sizeof err);
    if (!d) {
        fprintf(stderr, "ph-bench-flags: definitions rejected: %s\n", err);
        return 2;
    }
    size_t nflags = posthog__flags_count(d);
    calibrate();
    uint64_t *s = malloc((size_t)iters * sizeof *s);

    /* the timer's own cost: an empty timed region */
    for (long i = 0; i < iters; i++) {
        uint64_t t0 = ticks();
        uint64_t t1 = ticks();
        s[i] = t1 - t0;
    }
    stats_t timer = summarize(s, iters);

    /* the floor of a rollout-only flag: one bucketing hash (SHA-1 + scaling) */
    volatile double sink = 0;
    for (long i = 0; i < iters; i++) {
        uint64_t t0 = ticks();
        double h = posthog__flags_hash("rollout.", p[i % np].did, "");
        uint64_t t1 = ticks();
        sink += h;
        s[i] = t1 - t0;
    }
    stats_t hash = summarize(s, iters);
    long all_iters = iters / 20 > 500 ? iters / 20 : 500;

    stats_t eng[NWORK + 1], api[NWORK + 1], api_bare = {0}, cap_off = {0}, cap_on = {0};
    for (int w = 0; w < NWORK; w++) eng[w] = engine_one(d, WORKLOADS[w], p, np, iters, s);
    eng[NWORK] = engine_all(d, p, np, all_iters, s);

    const char *api_why = url ? NULL : "no ingest server URL given";
    posthog_client_t *c = NULL;
    if (url) {
        c = make_client(url, 1);
        if (!c) {
            api_why = "client creation failed";
        } else if (posthog_wait_for_flag_definitions(c, 15000) != POSTHOG_OK) {
            api_why = "definitions not loaded from the ingest server within 15 s";
        }
    }
    if (!api_why) {
        for (int w = 0; w < NWORK; w++) api[w] = api_one(c, WORKLOADS[w], p, np, iters, s);
        api[NWORK] = api_all(c, p, np, all_iters, s, nflags);
        /* the public API's own cost: the rollout flag needs no property, so
         * passing none leaves the JSON parse out */
        person_t *bare = calloc((size_t)np, sizeof *bare);
        for (long i = 0; bare && i < np; i++) bare[i].did = p[i].did;
        if (bare) api_bare = api_one(c, "rollout", bare, np, iters, s);
        free(bare);
        /* capture: a client without flags, then the one with definitions loaded */
        long cap_n = iters / 2;
        posthog_client_t *plain = make_client(url, 0);
        if (plain) {
            cap_off = capture_cost(plain, p, np, cap_n, s);
            posthog_shutdown(plain, 10000);
            posthog_client_free(plain);
        }
        cap_on = capture_cost(c, p, np, cap_n, s);
    }
    if (c) {
        posthog_shutdown(c, 10000);
        posthog_client_free(c);
    }

    static const char *labels[] = {"rollout-only flag", "5 property filters", "multivariate",
                                   "cohort", "all 100 flags"};
    fprintf(stderr, "# ph-bench-flags: %zu flags, %ld persons, %ld calls per row (%ld for all "
                    "100), timer %s (own cost p50 %.0f ns, not subtracted)\n",
            nflags, np, iters, all_iters, HAVE_RDTSC ? "rdtsc" : "clock_gettime", timer.p50);
    fprintf(stderr, "| workload | engine p50 | engine p99 | public API p50 | public API p99 |\n"
                    "|---|---|---|---|---|\n");
    for (int w = 0; w <= NWORK; w++) {
        if (api_why)
            fprintf(stderr, "| %s | %.0f ns | %.0f ns | n/a | n/a |\n", labels[w], eng[w].p50,
                    eng[w].p99);
        else
            fprintf(stderr, "| %s | %.0f ns | %.0f ns | %.0f ns | %.0f ns |\n", labels[w],
                    eng[w].p50, eng[w].p99, api[w].p50, api[w].p99);
    }
    if (!api_why)
        fprintf(stderr, "public API, rollout-only flag without person properties: p50 %.0f / "
                        "p99 %.0f ns\n", api_bare.p50, api_bare.p99);
    if (!api_why)
        fprintf(stderr, "capture: p50 %.0f / p99 %.0f ns without flags, %.0f / %.0f ns with "
                        "definitions loaded\n", cap_off.p50, cap_off.p99, cap_on.p50, cap_on.p99);
    else
        fprintf(stderr, "public API rows n/a: %s\n", api_why);
    fprintf(stderr, "bucketing hash alone (SHA-1 + scaling, the rollout-only floor): p50 %.0f / "
                    "p99 %.0f ns\n", hash.p50, hash.p99);
    if (undecided) fprintf(stderr, "ph-bench-flags: %ld evaluations not decided locally\n", undecided);

    printf("{\"timer\":\"%s\",\"timer_overhead_ns\":%.1f,\"flags\":%zu,\"persons\":%ld,"
           "\"iterations\":%ld,\"all_iterations\":%ld,\"undecided\":%ld,\"engine\":{",
           HAVE_RDTSC ? "rdtsc" : "clock_gettime", timer.p50, nflags, np, iters, all_iters,
           undecided);
    int first = 1;
    for (int w = 0; w < NWORK; w++) json_stats(WORKLOADS[w], eng[w], &first);
    json_stats("all100", eng[NWORK], &first);
    json_stats("hash_floor", hash, &first);
    printf("}");
    if (api_why) {
        printf(",\"api\":null,\"api_why\":\"%s\"", api_why);
    } else {
        printf(",\"api\":{");
        first = 1;
        for (int w = 0; w < NWORK; w++) json_stats(WORKLOADS[w], api[w], &first);
        json_stats("all100", api[NWORK], &first);
        json_stats("rollout_no_props", api_bare, &first);
        printf("},\"capture\":{");
        first = 1;
        json_stats("without_flags", cap_off, &first);
        json_stats("with_flags", cap_on, &first);
        printf("}");
    }
    printf("}\n");

    free(s);
    for (long i = 0; i < np; i++) cJSON_free(p[i].props_json);
    free(p);
    posthog__flags_defs_unref(d);
    cJSON_Delete(root);
    return undecided || sink < 0 ? 1 : 0;
}
