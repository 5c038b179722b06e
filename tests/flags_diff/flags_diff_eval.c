/*
 * flags_diff_eval: libposthog's side of the differential test of local flag
 * evaluation (tests/flags_diff/, issue 10). Reads the generator's cases file
 * and prints what the engine (src/flags/, internal API) decides for every
 * (case, flag), for run_diff.py to compare with posthog-python.
 *
 *   flags_diff_eval CASES.json > RESULTS.json
 *
 * Input:  {"suites": [{"definitions": {<a /flags/definitions body>},
 *                      "cases": [{"distinct_id": "...", "device_id": "..."|null,
 *                                 "person_properties": {...}, "groups": {...},
 *                                 "group_properties": {...}}, ...]}, ...]}
 * Output: {"suites": [[[r, r, ...] per case] per suite]}, one r per flag in
 *         definitions order: "F" false, "T" true, "V:<variant>", "I:<cause>"
 *         (inconclusive: the engine's cause name, then the detail in
 *         parentheses when there is one).
 * Every flag is evaluated one by one (posthog__flags_evaluate) and through
 * posthog__flags_evaluate_all; a disagreement between the two is reported as
 * "X:<one>|<all>" so that the driver counts it as a difference too.
 * Exit status: 0, or 2 with a message on stderr for unusable input.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flags.h"

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (buf) *len = n;
    return buf;
}

/* The result as the driver spells it, into buf. */
static const char *encode(const ph_flag_result_t *r, char *buf, size_t cap) {
    switch (r->value) {
    case PH_FLAG_FALSE: return "F";
    case PH_FLAG_TRUE: return "T";
    case PH_FLAG_VARIANT: snprintf(buf, cap, "V:%s", r->variant ? r->variant : ""); return buf;
    default:
        snprintf(buf, cap, "I:%s%s%s%s", posthog__flags_cause_name(r->cause), r->detail ? "(" : "",
                 r->detail ? r->detail : "", r->detail ? ")" : "");
        return buf;
    }
}

static const char *str_or_null(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int run_suite(const cJSON *suite, size_t si, cJSON *out) {
    const cJSON *defs_json = cJSON_GetObjectItemCaseSensitive(suite, "definitions");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(suite, "cases");
    if (!cJSON_IsObject(defs_json) || !cJSON_IsArray(cases)) {
        fprintf(stderr, "flags_diff_eval: suite %zu needs \"definitions\" (an object) and "
                        "\"cases\" (an array)\n", si);
        return -1;
    }
    char err[256] = "";
    ph_flags_defs_t *d = posthog__flags_compile_tree(defs_json, err, sizeof err);
    if (!d) {
        fprintf(stderr, "flags_diff_eval: suite %zu: definitions rejected: %s\n", si, err);
        return -1;
    }
    size_t n = posthog__flags_count(d);
    ph_flag_result_t *all = calloc(n ? n : 1, sizeof *all);
    cJSON *rows = cJSON_CreateArray();
    if (!all || !rows) {
        fprintf(stderr, "flags_diff_eval: out of memory\n");
        free(all);
        cJSON_Delete(rows);
        posthog__flags_defs_unref(d);
        return -1;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        ph_flags_ctx_t ctx = {
            .distinct_id = str_or_null(c, "distinct_id"),
            .device_id = str_or_null(c, "device_id"),
            .person_properties = cJSON_GetObjectItemCaseSensitive(c, "person_properties"),
            .groups = cJSON_GetObjectItemCaseSensitive(c, "groups"),
            .group_properties = cJSON_GetObjectItemCaseSensitive(c, "group_properties"),
            .now_ms = 0,
        };
        posthog__flags_evaluate_all(d, &ctx, all);
        /* one by one with the person properties as text, as the public API
         * passes them (parsed lazily into an arena tree): any difference
         * from the tree above shows as a disagreement */
        char *ptext = ctx.person_properties ? cJSON_PrintUnformatted(ctx.person_properties) : NULL;
        static ph_flags_lazy_t lz;
        posthog__flags_lazy_init(&lz, ptext, ptext ? strlen(ptext) : 0, false);
        ph_flags_ctx_t lctx = ctx;
        lctx.person_properties = NULL;
        lctx.person_lazy = &lz;
        cJSON *row = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++) {
            ph_flag_result_t one;
            posthog__flags_evaluate(d, posthog__flags_key(d, i), &lctx, &one);
            char b1[160], b2[160], both[330];
            const char *e1 = encode(&one, b1, sizeof b1);
            const char *e2 = encode(&all[i], b2, sizeof b2);
            if (strcmp(e1, e2) != 0) {
                snprintf(both, sizeof both, "X:%s|%s", e1, e2);
                e1 = both;
            }
            cJSON_AddItemToArray(row, cJSON_CreateString(e1));
        }
        posthog__flags_lazy_free(&lz);
        cJSON_free(ptext);
        cJSON_AddItemToArray(rows, row);
    }
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(out, "suites"), rows);
    free(all);
    posthog__flags_defs_unref(d);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASES.json\n", argv[0]);
        return 2;
    }
    size_t len = 0;
    char *text = read_all(argv[1], &len);
    if (!text) {
        fprintf(stderr, "flags_diff_eval: cannot read %s\n", argv[1]);
        return 2;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *suites = cJSON_GetObjectItemCaseSensitive(root, "suites");
    if (!cJSON_IsArray(suites)) {
        fprintf(stderr, "flags_diff_eval: %s: expected {\"suites\": [...]}\n", argv[1]);
        cJSON_Delete(root);
        return 2;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddArrayToObject(out, "suites");
    size_t si = 0;
    const cJSON *s;
    int rc = 0;
    cJSON_ArrayForEach(s, suites) {
        if (run_suite(s, si++, out) != 0) {
            rc = 2;
            break;
        }
    }
    if (rc == 0) {
        char *o = cJSON_PrintUnformatted(out);
        if (!o) {
            fprintf(stderr, "flags_diff_eval: out of memory printing the results\n");
            rc = 2;
        } else {
            fputs(o, stdout);
            fputc('\n', stdout);
            cJSON_free(o);
        }
    }
    cJSON_Delete(out);
    cJSON_Delete(root);
    return rc;
}
