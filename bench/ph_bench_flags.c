/*
 * ph-bench-flags: nanoseconds per local flag evaluation (src/flags/), on
 * the shapes of docs/flags.md section 6 (the SDK comparison there): 100
 * synthetic flags, person properties {email, age, plan, country}.
 *
 *   ph-bench-flags [ITERATIONS]     (default 200000 per row)
 *
 * Each row evaluates one flag for a rotating set of distinct ids through
 * the store (acquire, evaluate, release), so the numbers include the
 * lock-free read side. The last rows evaluate all 100 flags at once.
 * Single-threaded; run on an idle machine and read medians of several runs.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "flags.h"
#include "sha1.h"

#define NFLAGS 100
#define NIDS 1024

static char *build_definitions(void) {
    cJSON *root = cJSON_CreateObject();
    cJSON *flags = cJSON_AddArrayToObject(root, "flags");
    cJSON *cohorts = cJSON_AddObjectToObject(root, "cohorts");
    cJSON_AddItemToObject(root, "group_type_mapping", cJSON_Parse("{\"0\":\"company\"}"));
    cJSON_AddItemToObject(cohorts, "1",
                          cJSON_Parse("{\"type\":\"OR\",\"values\":[{\"type\":\"AND\",\"values\":["
                                      "{\"key\":\"country\",\"value\":\"US\",\"type\":\"person\"},"
                                      "{\"key\":\"age\",\"operator\":\"gt\",\"value\":18,\"type\":"
                                      "\"person\"}]},{\"type\":\"AND\",\"values\":[{\"key\":\"plan\","
                                      "\"value\":[\"pro\",\"team\"],\"type\":\"person\"}]}]}"));
    static const char *shapes[] = {
        /* 0 rollout only */
        "{\"groups\":[{\"properties\":[],\"rollout_percentage\":50}]}",
        /* 1 three properties */
        "{\"groups\":[{\"properties\":[{\"key\":\"email\",\"operator\":\"icontains\",\"value\":"
        "\"@example.com\"},{\"key\":\"age\",\"operator\":\"gt\",\"value\":21},{\"key\":\"country\","
        "\"value\":[\"US\",\"CA\",\"GB\"]}],\"rollout_percentage\":100}]}",
        /* 2 three-way multivariate */
        "{\"groups\":[{\"rollout_percentage\":100}],\"multivariate\":{\"variants\":[{\"key\":\"a\","
        "\"rollout_percentage\":34},{\"key\":\"b\",\"rollout_percentage\":33},{\"key\":\"c\","
        "\"rollout_percentage\":33}]}}",
        /* 3 regex */
        "{\"groups\":[{\"properties\":[{\"key\":\"email\",\"operator\":\"regex\",\"value\":"
        "\"^[a-z0-9._]+@example\\\\.com$\"}],\"rollout_percentage\":100}]}",
        /* 4 cohort (OR of two ANDs) */
        "{\"groups\":[{\"properties\":[{\"key\":\"id\",\"value\":1,\"type\":\"cohort\"}],"
        "\"rollout_percentage\":100}]}",
        /* 5 flag dependency (on flag-0) */
        "{\"groups\":[{\"properties\":[{\"key\":\"flag-0\",\"type\":\"flag\",\"operator\":"
        "\"flag_evaluates_to\",\"value\":true}],\"rollout_percentage\":100}]}",
    };
    for (int i = 0; i < NFLAGS; i++) {
        char key[32];
        snprintf(key, sizeof key, "flag-%d", i);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "id", i + 1);
        cJSON_AddStringToObject(f, "key", key);
        cJSON_AddBoolToObject(f, "active", 1);
        cJSON_AddItemToObject(f, "filters", cJSON_Parse(shapes[i % 6]));
        cJSON_AddItemToArray(flags, f);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 200000;
    if (iters <= 0) {
        fprintf(stderr, "usage: %s [ITERATIONS > 0]\n", argv[0]);
        return 2;
    }
    char *json = build_definitions();
    char err[256];
    double t0 = now_s();
    ph_flags_defs_t *defs = posthog__flags_compile(json, strlen(json), err, sizeof err);
    double compile_ms = (now_s() - t0) * 1e3;
    if (!defs) {
        fprintf(stderr, "compile: %s\n", err);
        return 1;
    }
    ph_flags_store_t *store = posthog__flags_store_new();
    posthog__flags_store_publish(store, defs);

    cJSON *props = cJSON_Parse("{\"email\":\"someone@example.com\",\"age\":34,\"plan\":\"pro\","
                               "\"country\":\"US\"}");
    static char ids[NIDS][24];
    for (int i = 0; i < NIDS; i++) snprintf(ids[i], sizeof ids[i], "user_%d", i);

    printf("# ph-bench-flags: %d flags, %ld iterations per row, compile %.2f ms (%zu bytes)\n",
           NFLAGS, iters, compile_ms, strlen(json));
    printf("| case | ns per evaluation |\n|---|---|\n");

    /* the hash floor: one SHA-1 of "<key>.<id>" scaled */
    volatile double sink = 0;
    t0 = now_s();
    for (long i = 0; i < iters; i++) sink += posthog__flags_hash("flag-0.", ids[i % NIDS], "");
    printf("| hash alone (SHA-1 + scaling) | %.0f |\n", (now_s() - t0) * 1e9 / (double)iters);

    static const char *names[] = {"50% rollout, no props", "3 props (icontains, gt, exact-list)",
                                  "3-way multivariate", "regex", "cohort (OR of 2 ANDs)",
                                  "flag dependency"};
    for (int shape = 0; shape < 6; shape++) {
        char key[32];
        snprintf(key, sizeof key, "flag-%d", shape);
        long on = 0;
        t0 = now_s();
        for (long i = 0; i < iters; i++) {
            ph_flags_ctx_t ctx = {ids[i % NIDS], NULL, props, NULL, NULL, 1};
            const ph_flags_defs_t *d = posthog__flags_store_acquire(store);
            ph_flag_result_t r;
            posthog__flags_evaluate(d, key, &ctx, &r);
            on += r.value != PH_FLAG_FALSE;
            posthog__flags_store_release(store, d);
        }
        double ns = (now_s() - t0) * 1e9 / (double)iters;
        printf("| %s | %.0f |\n", names[shape], ns);
        sink += (double)on;
    }

    ph_flag_result_t *all = calloc(NFLAGS, sizeof *all);
    long rounds = iters / 50 > 0 ? iters / 50 : 1;
    t0 = now_s();
    for (long i = 0; i < rounds; i++) {
        ph_flags_ctx_t ctx = {ids[i % NIDS], NULL, props, NULL, NULL, 1};
        const ph_flags_defs_t *d = posthog__flags_store_acquire(store);
        posthog__flags_evaluate_all(d, &ctx, all);
        posthog__flags_store_release(store, d);
    }
    double us = (now_s() - t0) * 1e6 / (double)rounds;
    printf("| all %d flags (evaluate_all) | %.0f (%.2f us per call, %.0f ns per flag) |\n", NFLAGS,
           us * 1e3, us, us * 1e3 / NFLAGS);

    free(all);
    cJSON_Delete(props);
    posthog__flags_store_free(store);
    cJSON_free(json);
    return sink < 0;
}
