/*
 * Unit tests of src/flags/: SHA-1 and the bucketing hash (known vectors,
 * the cross-SDK consistency suites), every property operator of the server
 * (table-driven), variants, payloads, conditions, early exit, inconclusive
 * handling, cohorts, dependencies with cycles, group flags, holdouts,
 * early access, the compiler's errors, and the lock-free store under
 * concurrent readers while publishing (run it under TSan: tools/test.sh tsan).
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flags.h"
#include "flags_int.h"
#include "sha1.h"

/* ------------------------------------------------------------ allocation counter */

#ifdef PH_WRAP_MALLOC
/* Linked with -Wl,--wrap=malloc,...: every allocation made by code in the
 * static library (and this file) passes here. */
static _Atomic long allocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t k);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t k);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n) {
    atomic_fetch_add(&allocs, 1);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t k) {
    atomic_fetch_add(&allocs, 1);
    return __real_calloc(n, k);
}
void *__wrap_realloc(void *p, size_t n) {
    atomic_fetch_add(&allocs, 1);
    return __real_realloc(p, n);
}
#endif

/* ------------------------------------------------------------ helpers */

static ph_flags_defs_t *compile_ok(const char *json) {
    char err[256] = "";
    ph_flags_defs_t *d = posthog__flags_compile(json, strlen(json), err, sizeof err);
    ck_assert_msg(d != NULL, "compile failed: %s\n%s", err, json);
    return d;
}

/* Evaluate key for a context given as JSON texts (NULL = absent). */
typedef struct {
    const char *distinct_id;
    const char *device_id;
    const char *person;
    const char *groups;
    const char *group_props;
    int64_t now_ms;
} ctxs_t;

static ph_flag_result_t eval_in(const ph_flags_defs_t *d, const char *key, ctxs_t c) {
    cJSON *p = c.person ? cJSON_Parse(c.person) : NULL;
    cJSON *g = c.groups ? cJSON_Parse(c.groups) : NULL;
    cJSON *gp = c.group_props ? cJSON_Parse(c.group_props) : NULL;
    ck_assert_msg(!c.person || p, "bad test JSON %s", c.person);
    ck_assert_msg(!c.groups || g, "bad test JSON %s", c.groups);
    ck_assert_msg(!c.group_props || gp, "bad test JSON %s", c.group_props);
    ph_flags_ctx_t ctx = {c.distinct_id ? c.distinct_id : "user-1", c.device_id, p, g, gp, c.now_ms, NULL};
    ph_flag_result_t r, all_r;
    posthog__flags_evaluate(d, key, &ctx, &r);
    /* evaluate_all must agree with the single evaluation */
    long i = posthog__flags_find(d, key);
    if (i >= 0) {
        size_t n = posthog__flags_count(d);
        ph_flag_result_t *all = calloc(n, sizeof *all);
        posthog__flags_evaluate_all(d, &ctx, all);
        all_r = all[i];
        free(all);
        ck_assert_msg(all_r.value == r.value && all_r.reason == r.reason &&
                          all_r.cause == r.cause && all_r.condition_index == r.condition_index &&
                          all_r.variant == r.variant && all_r.payload == r.payload,
                      "%s: evaluate_all (%d/%d/%d) differs from evaluate (%d/%d/%d)", key,
                      all_r.value, all_r.reason, all_r.cause, r.value, r.reason, r.cause);
    }
    /* the person properties as text (the public API's lazily parsed
     * arena tree, and its heap fallback) must give the same answer */
    if (c.person) {
        for (int pass = 0; pass < 2; pass++) {
            ph_flags_lazy_t *lz = malloc(sizeof *lz);
            ck_assert_ptr_nonnull(lz);
            posthog__flags_lazy_init(lz, c.person, strlen(c.person), pass == 0);
            if (pass) lz->used = sizeof lz->arena; /* a full arena: heap fallback */
            ph_flags_ctx_t lctx = ctx;
            lctx.person_properties = NULL;
            lctx.person_lazy = lz;
            ph_flag_result_t lr;
            posthog__flags_evaluate(d, key, &lctx, &lr);
            ck_assert_msg(lr.value == r.value && lr.reason == r.reason && lr.cause == r.cause &&
                              lr.condition_index == r.condition_index && lr.variant == r.variant &&
                              lr.payload == r.payload,
                          "%s: person properties as text (%s) give %d/%d/%d, as a tree %d/%d/%d",
                          key, pass ? "heap" : "arena", lr.value, lr.reason, lr.cause, r.value,
                          r.reason, r.cause);
            posthog__flags_lazy_free(lz);
            free(lz);
        }
    }
    cJSON_Delete(p);
    cJSON_Delete(g);
    cJSON_Delete(gp);
    return r;
}

static ph_flag_result_t eval1(const char *defs, const char *key, ctxs_t c) {
    ph_flags_defs_t *d = compile_ok(defs);
    ph_flag_result_t r = eval_in(d, key, c);
    /* strings borrow from d: keep only what the callers compare */
    static char variant[128], payload[256];
    if (r.variant) snprintf(variant, sizeof variant, "%s", r.variant), r.variant = variant;
    if (r.payload) snprintf(payload, sizeof payload, "%s", r.payload), r.payload = payload;
    r.key = NULL;
    r.detail = NULL;
    posthog__flags_defs_unref(d);
    return r;
}

#define CK_VALUE(r, want)                                                                  \
    ck_assert_msg((r).value == (want), "value %d, want %d (reason %s, cause %s)", (r).value, \
                  (want), posthog__flags_reason_code((r).reason),                          \
                  posthog__flags_cause_name((r).cause))

/* ------------------------------------------------------------ SHA-1 and the hash */

static void hex(const uint8_t d[20], char out[41]) {
    for (int i = 0; i < 20; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

START_TEST(sha1_vectors) {
    static const struct {
        const char *in, *want;
    } t[] = {
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
         "lmnopqrsmnopqrstnopqrstu",
         "a49b2446a02c645bf419f995b67091253a04a259"},
        {"The quick brown fox jumps over the lazy dog", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint8_t d[20];
        char h[41];
        posthog__sha1(t[i].in, strlen(t[i].in), d);
        hex(d, h);
        ck_assert_str_eq(h, t[i].want);
        /* the same through every split point (block-boundary handling) */
        size_t n = strlen(t[i].in);
        for (size_t cut = 0; cut <= n; cut++) {
            ph_sha1_t c;
            posthog__sha1_init(&c);
            posthog__sha1_update(&c, t[i].in, cut);
            posthog__sha1_update(&c, t[i].in + cut, n - cut);
            posthog__sha1_final(&c, d);
            hex(d, h);
            ck_assert_str_eq(h, t[i].want);
        }
    }
    /* one million 'a' in uneven chunks (FIPS 180 long message) */
    static char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    ph_sha1_t c;
    posthog__sha1_init(&c);
    size_t left = 1000000;
    while (left) {
        size_t k = left < sizeof chunk ? left : sizeof chunk;
        posthog__sha1_update(&c, chunk, k);
        left -= k;
    }
    uint8_t d[20];
    char h[41];
    posthog__sha1_final(&c, d);
    hex(d, h);
    ck_assert_str_eq(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}
END_TEST

/* The dispatched SHA-1 (SHA-NI where the CPU has it), the streaming one and
 * the portable one agree at every length around the block and padding
 * edges, and the bucketing hash's one-shot layout (one or two blocks, or
 * streamed past 119 bytes) hashes the same bytes as the streaming form. */
START_TEST(sha1_paths_agree) {
    uint8_t buf[300];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t n = 0; n <= sizeof buf; n++) {
        uint8_t a[20], b[20], c[20];
        posthog__sha1(buf, n, a);
        posthog__sha1_portable(buf, n, b);
        ph_sha1_t ctx;
        posthog__sha1_init(&ctx);
        posthog__sha1_update(&ctx, buf, n / 3);
        posthog__sha1_update(&ctx, buf + n / 3, n - n / 3);
        posthog__sha1_final(&ctx, c);
        ck_assert_msg(!memcmp(a, b, 20), "dispatched != portable at %zu bytes (accelerated %d)",
                      n, (int)posthog__sha1_accelerated());
        ck_assert_msg(!memcmp(a, c, 20), "one-shot != streamed at %zu bytes", n);
        /* the bucketing hash of the same bytes, split in three parts */
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v = v << 8 | a[i];
        double want = (double)(v >> 4) / (double)0xFFFFFFFFFFFFFFFull;
        double got = posthog__flags_hash_n((const char *)buf, n / 2, (const char *)buf + n / 2,
                                           n / 4, (const char *)buf + n / 2 + n / 4,
                                           n - n / 2 - n / 4);
        ck_assert_msg(got == want, "bucketing hash differs at %zu bytes", n);
    }
}
END_TEST

START_TEST(bucketing_hash_vectors) {
    /* flags.md 3.3: h("simple-50", "user_1") measured in Python and C */
    double h = posthog__flags_hash("simple-50.", "user_1", "");
    ck_assert_msg(fabs(h - 0.097331726412019801) < 1e-17, "h=%.18f", h);
    /* the server's holdout hash has no dot; Go's test vector has one */
    h = posthog__flags_hash("holdout-", "some_distinct_id", "");
    ck_assert_msg(fabs(h - 0.7270002403585725) < 1e-15, "holdout h=%.17g", h);
    h = posthog__flags_hash("holdout-.", "some_distinct_id", "");
    ck_assert_msg(fabs(h - 0.0866397292395582) < 1e-15, "go holdout h=%.17g", h);
    /* the _n form with the parts split differently hashes the same bytes */
    ck_assert(posthog__flags_hash_n("simple-50.u", 11, "ser_1", 5, "", 0) ==
              posthog__flags_hash("simple-50.", "user_1", NULL));
    /* the range is [0, 1] and the salt matters */
    ck_assert(posthog__flags_hash("k.", "id", "variant") != posthog__flags_hash("k.", "id", ""));
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof id, "id-%d", i);
        double x = posthog__flags_hash("k.", id, "");
        ck_assert(x >= 0.0 && x <= 1.0);
    }
}
END_TEST
static const char SIMPLE_45[] =
    "01101001010110100011010010110001111000000110110001100001010101101010110010010100"
    "10001101101111101100111100101110000010011100101001000000001100100110010101110001"
    "00001101101011010111010011010110011110110010100110101000000010110010100010100010"
    "01011000010000000000000110101101010001111000001110011000001011110111001010011101"
    "00011010101111100101011101011011111000001010011000101111000011001101111011100110"
    "01001000000000011001001010010000001000000000111000101000100000001000000001010111"
    "00011101011000100001010110100010011010000001100100111000100001010001011010101001"
    "00101010100111101000001001001100001110010011110001000100111100110101001101111001"
    "00110101001000011101001001000010101100101110000110100010000111000111101101110100"
    "10111101010100110010100001010001110001011000001010011011110010010101100010110001"
    "01011010010001110000010011111000000001110011011010100010010011110010110010011010"
    "01110000010100000110111000011110110101010000111100101100000010101100111100101100"
    "1110100110001001000111101010101001001011"
    ;
static const char MULTI_55[] =
    "221--21---13-121--41-3---1111113-321-3--12-112-1--11121-22321-124-111-12-3------"
    "15-212-33----3--11-33-323--21--1----111---11-11---------111121112-2121-22-1---31"
    "--1----1-------11311--1--52-2-13153--4----3--3-1222-1311-----1112---2--1-1--1111"
    "31311233-21-21-1--151----112-233-13--1-31-311-1221---2--11-3-1-3-321--13125--1--"
    "-3-21----3--3--13--1--4432135-15-111---252112--3-25-31--4--2--1412---133-111-1-1"
    "33--1--22111-51---231413-11-3113-4511---111-1121-121-12-11-1-1-1---331--2311---2"
    "1-13-1---133----34412-1-213-3-113---421--14-131--3-1-11324-1----212-1-11-1123111"
    "---3-111311215412-4---4--3---1332121-1-----11-2--1-211132--53--1---1233--1-31---"
    "-41---3--21--2311-11--2323--1--1-2----1-3-1--2324111-1-2-----1-----1-2----2-1-3-"
    "-13-3--2-121-----2--13-1-----12---115---1-3--2-----4212-2-2-1-11-2-1-5-11---1-13"
    "--11--5--3-31133-1-----1----2121-51--411--41-23311---111-333--11-2--2-312511-15-"
    "--31124121---23--1------11-3-1-3311-2-21---2-3-1511--1---141115---2---11--112111"
    "1131-2--323-13213--11---132111-323--31-1"
    ;

/* posthog-python test_simple_flag_consistency (also the server's own
 * TestFeatureFlagMatcherConsistency): 45% over distinct_id_0..999. */
START_TEST(consistency_simple) {
    ph_flags_defs_t *d = compile_ok(
        "{\"flags\":[{\"id\":1,\"key\":\"simple-flag\",\"active\":true,"
        "\"filters\":{\"groups\":[{\"properties\":[],\"rollout_percentage\":45}]}}]}");
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof id, "distinct_id_%d", i);
        ph_flag_result_t r = eval_in(d, "simple-flag", (ctxs_t){.distinct_id = id});
        ph_flag_value_t want = SIMPLE_45[i] == '1' ? PH_FLAG_TRUE : PH_FLAG_FALSE;
        ck_assert_msg(r.value == want, "%s: %d want %d", id, r.value, want);
        ck_assert_int_eq(r.reason, want == PH_FLAG_TRUE ? PH_REASON_CONDITION_MATCH
                                                        : PH_REASON_OUT_OF_ROLLOUT_BOUND);
        ck_assert_int_eq(r.condition_index, 0);
    }
    posthog__flags_defs_unref(d);
}
END_TEST

/* test_multivariate_flag_consistency: 55% and variants 50/20/20/5/5. */
START_TEST(consistency_multivariate) {
    ph_flags_defs_t *d = compile_ok(
        "{\"flags\":[{\"id\":1,\"key\":\"multivariate-flag\",\"active\":true,\"filters\":{"
        "\"groups\":[{\"properties\":[],\"rollout_percentage\":55}],"
        "\"multivariate\":{\"variants\":["
        "{\"key\":\"first-variant\",\"rollout_percentage\":50},"
        "{\"key\":\"second-variant\",\"rollout_percentage\":20},"
        "{\"key\":\"third-variant\",\"rollout_percentage\":20},"
        "{\"key\":\"fourth-variant\",\"rollout_percentage\":5},"
        "{\"key\":\"fifth-variant\",\"rollout_percentage\":5}]}}}]}");
    static const char *names[] = {"first-variant", "second-variant", "third-variant",
                                  "fourth-variant", "fifth-variant"};
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof id, "distinct_id_%d", i);
        ph_flag_result_t r = eval_in(d, "multivariate-flag", (ctxs_t){.distinct_id = id});
        if (MULTI_55[i] == '-') {
            ck_assert_msg(r.value == PH_FLAG_FALSE, "%s: %d", id, r.value);
        } else {
            ck_assert_msg(r.value == PH_FLAG_VARIANT, "%s: %d", id, r.value);
            ck_assert_str_eq(r.variant, names[MULTI_55[i] - '1']);
        }
    }
    posthog__flags_defs_unref(d);
}
END_TEST

/* ------------------------------------------------------------ operators */

/* One flag, one condition, one person filter on "p": the filter's operator
 * and value (JSON text, NULL = no "value"), the person properties, and
 * the expected answer: 1 true, 0 false, -1 inconclusive. */
typedef struct {
    const char *op;
    const char *value;
    const char *props;
    int want;
    ph_flag_cause_t cause; /* when want == -1 (0 = do not check) */
} opcase_t;

/* 2024-06-15T12:00:00Z: the clock of every date case */
#define NOW_MS 1718452800000LL

/* top: extra top-level members of the definitions ("" or "\"k\":v,") */
static void run_ops_in(const opcase_t *t, size_t n, const char *top) {
    for (size_t i = 0; i < n; i++) {
        char defs[1024];
        char value[300] = "";
        if (t[i].value) snprintf(value, sizeof value, ",\"value\":%s", t[i].value);
        snprintf(defs, sizeof defs,
                 "{%s\"flags\":[{\"id\":7,\"key\":\"f\",\"active\":true,\"filters\":{\"groups\":[{"
                 "\"properties\":[{\"key\":\"p\",\"type\":\"person\",\"operator\":\"%s\"%s}],"
                 "\"rollout_percentage\":100}]}}]}",
                 top, t[i].op, value);
        ph_flag_result_t r = eval1(defs, "f", (ctxs_t){.person = t[i].props, .now_ms = NOW_MS});
        int got = r.value == PH_FLAG_TRUE ? 1 : r.value == PH_FLAG_FALSE ? 0 : -1;
        ck_assert_msg(got == t[i].want, "case %zu: %s %s vs %s: got %d (cause %s), want %d", i,
                      t[i].op, t[i].value ? t[i].value : "(none)", t[i].props, got,
                      posthog__flags_cause_name(r.cause), t[i].want);
        if (t[i].want == -1 && t[i].cause)
            ck_assert_msg(r.cause == t[i].cause, "case %zu: %s: cause %s, want %s", i, t[i].op,
                          posthog__flags_cause_name(r.cause), posthog__flags_cause_name(t[i].cause));
    }
}

static void run_ops(const opcase_t *t, size_t n) { run_ops_in(t, n, ""); }

#define MISSING PH_INCONCLUSIVE_MISSING_PROPERTY

START_TEST(op_exact_is_not) {
    static const opcase_t t[] = {
        {"exact", "\"value\"", "{\"p\":\"value\"}", 1, 0},
        {"exact", "\"value\"", "{\"p\":\"VALUE\"}", 1, 0}, /* lower-cased both sides */
        {"exact", "\"value\"", "{\"p\":\"value2\"}", 0, 0},
        {"exact", "\"value\"", "{\"p\":\"\"}", 0, 0},
        {"exact", "\"value\"", "{\"p\":null}", 0, 0},
        {"exact", "\"value\"", "{\"q\":\"value\"}", -1, MISSING}, /* the server would read its DB */
        {"exact", "\"value\"", NULL, -1, MISSING},
        {"exact", "[\"US\",\"CA\",\"Uk\"]", "{\"p\":\"us\"}", 1, 0}, /* list = membership */
        {"exact", "[\"US\",\"CA\",\"Uk\"]", "{\"p\":\"UK\"}", 1, 0},
        {"exact", "[\"US\",\"CA\",\"Uk\"]", "{\"p\":\"de\"}", 0, 0},
        {"exact", "[]", "{\"p\":\"us\"}", 0, 0},
        {"exact", "true", "{\"p\":\"true\"}", 1, 0}, /* "true"/true/"True" are one value */
        {"exact", "true", "{\"p\":true}", 1, 0},
        {"exact", "true", "{\"p\":\"True\"}", 1, 0},
        {"exact", "true", "{\"p\":false}", 0, 0},
        {"exact", "\"false\"", "{\"p\":false}", 1, 0},
        {"exact", "[\"true\"]", "{\"p\":true}", 1, 0},
        {"exact", "1", "{\"p\":\"1\"}", 1, 0},
        {"exact", "1", "{\"p\":1}", 1, 0},
        {"exact", "\"1\"", "{\"p\":1.5}", 0, 0},
        {"exact", "1.5", "{\"p\":\"1.5\"}", 1, 0},
        {"exact", "[1, 2]", "{\"p\":2}", 1, 0},
        {"exact", "\"a\"", "{\"p\":[\"a\",\"b\"]}", 0, 0}, /* a list value is its JSON text */
        {"exact", "\"\\u00e9cole\"", "{\"p\":\"\\u00e9cole\"}", 1, 0},
        {"exact", "\"\\u00c9COLE\"", "{\"p\":\"\\u00e9cole\"}", -1, PH_INCONCLUSIVE_NON_ASCII_CASE},
        {"exact", "\"abc\"", "{\"p\":\"\\u00e9\"}", 0, 0},
        {"exact", NULL, "{\"p\":\"x\"}", 0, 0}, /* no value: no match */
        {"is_not", "\"value\"", "{\"p\":\"value2\"}", 1, 0},
        {"is_not", "\"value\"", "{\"p\":\"\"}", 1, 0},
        {"is_not", "\"value\"", "{\"p\":null}", 1, 0},
        {"is_not", "\"value\"", "{\"p\":\"Value\"}", 0, 0},
        {"is_not", "\"value\"", "{}", -1, MISSING},
        {"is_not", "[\"value1\",\"value2\"]", "{\"p\":\"value2\"}", 0, 0},
        {"is_not", "[\"value1\",\"value2\"]", "{\"p\":\"value4\"}", 1, 0},
    };
    run_ops(t, sizeof t / sizeof t[0]);
}
END_TEST

/* property_matching_version (top level of /flags/definitions, as
 * posthog-python reads it): 1 or absent, "true"/true/"True" are one value;
 * 2, they compare as text (only an empty list still means truthy); any
 * other version: exact/is_not are not decided locally. */
START_TEST(op_exact_matching_version) {
    static const opcase_t v1[] = {
        {"exact", "true", "{\"p\":\"TRUE\"}", 1, 0},
        {"exact", "\"true\"", "{\"p\":true}", 1, 0},
        {"is_not", "\"false\"", "{\"p\":false}", 0, 0},
    };
    static const opcase_t v2[] = {
        {"exact", "true", "{\"p\":\"TRUE\"}", 1, 0},     /* "true" == "true" as text */
        {"exact", "\"true\"", "{\"p\":true}", 1, 0},     /* true's text is "true" */
        {"exact", "true", "{\"p\":[true]}", 0, 0},         /* no truthy arrays: "[true]" */
        {"exact", "[\"true\"]", "{\"p\":[\"true\"]}", 0, 0},
        {"exact", "[true, false]", "{\"p\":false}", 1, 0}, /* membership by text */
        {"exact", "\"false\"", "{\"p\":\"no\"}", 0, 0},
        {"exact", "[]", "{\"p\":true}", 1, 0},             /* empty list: still truthy */
        {"exact", "[]", "{\"p\":\"x\"}", 0, 0},
        {"is_not", "\"false\"", "{\"p\":false}", 0, 0},
        {"is_not", "\"false\"", "{\"p\":\"False\"}", 0, 0},
        {"exact", "\"pro\"", "{\"p\":\"PRO\"}", 1, 0},
    };
    static const opcase_t vx[] = {
        {"exact", "\"pro\"", "{\"p\":\"pro\"}", -1, PH_INCONCLUSIVE_CONFIG_VERSION},
        {"is_not", "true", "{\"p\":true}", -1, PH_INCONCLUSIVE_CONFIG_VERSION},
        {"icontains", "\"pr\"", "{\"p\":\"pro\"}", 1, 0}, /* other operators decide */
    };
    /* where v1 and v2 differ */
    static const opcase_t v1_only[] = {
        {"exact", "true", "{\"p\":[true]}", 1, 0},
        {"exact", "[\"true\"]", "{\"p\":[\"true\"]}", 1, 0},
    };
    run_ops_in(v1, sizeof v1 / sizeof v1[0], "");
    run_ops_in(v1, sizeof v1 / sizeof v1[0], "\"property_matching_version\":1,");
    run_ops_in(v1, sizeof v1 / sizeof v1[0], "\"property_matching_version\":null,");
    run_ops_in(v1_only, sizeof v1_only / sizeof v1_only[0], "\"property_matching_version\":1,");
    run_ops_in(v2, sizeof v2 / sizeof v2[0], "\"property_matching_version\":2,");
    run_ops_in(vx, sizeof vx / sizeof vx[0], "\"property_matching_version\":3,");
    run_ops_in(vx, sizeof vx / sizeof vx[0], "\"property_matching_version\":\"2\",");
}
END_TEST

START_TEST(op_presence) {
    static const opcase_t t[] = {
        {"is_set", "\"is_set\"", "{\"p\":\"x\"}", 1, 0},
        {"is_set", "\"is_set\"", "{\"p\":null}", 1, 0}, /* present, even null (Python says false) */
        {"is_set", "\"is_set\"", "{\"p\":false}", 1, 0},
        {"is_set", "\"is_set\"", "{}", -1, MISSING},
        {"is_not_set", "\"is_not_set\"", "{\"p\":\"x\"}", 0, 0},
        {"is_not_set", "\"is_not_set\"", "{\"p\":null}", 0, 0},
        {"is_not_set", "\"is_not_set\"", "{}", -1, MISSING},
        {"is_set", NULL, "{\"p\":1}", 1, 0}, /* needs no value */
    };
    run_ops(t, sizeof t / sizeof t[0]);
}
END_TEST

START_TEST(op_strings) {
    static const opcase_t t[] = {
        {"icontains", "\"valUe\"", "{\"p\":\"343tfvalue5\"}", 1, 0},
        {"icontains", "\"valUe\"", "{\"p\":\"vaLue4\"}", 1, 0},
        {"icontains", "\"valUe\"", "{\"p\":\"Alakazam\"}", 0, 0},
        {"icontains", "\"valUe\"", "{\"p\":123}", 0, 0},
        {"icontains", "\"3\"", "{\"p\":323}", 1, 0}, /* numbers compare as text */
        {"icontains", "\"3\"", "{\"p\":\"three\"}", 0, 0},
        {"icontains", "\"\"", "{\"p\":\"x\"}", 1, 0},
        {"icontains", "\"x\"", "{}", -1, MISSING},
        {"not_icontains", "\"val\"", "{\"p\":\"xVALx\"}", 0, 0},
        {"not_icontains", "\"val\"", "{\"p\":\"abc\"}", 1, 0},
        {"icontains_multi", "[\"foo\",\"bar\"]", "{\"p\":\"xxBARxx\"}", 1, 0},
        {"icontains_multi", "[\"foo\",\"bar\"]", "{\"p\":\"baz\"}", 0, 0},
        {"icontains_multi", "\"foo\"", "{\"p\":\"FOOD\"}", 1, 0}, /* a single value works too */
        {"icontains_multi", "[]", "{\"p\":\"baz\"}", 0, 0},
        {"not_icontains_multi", "[\"foo\",\"bar\"]", "{\"p\":\"xxBARxx\"}", 0, 0},
        {"not_icontains_multi", "[\"foo\",\"bar\"]", "{\"p\":\"baz\"}", 1, 0},
        {"starts_with", "\"Val\"", "{\"p\":\"value\"}", 1, 0},
        {"starts_with", "\"Val\"", "{\"p\":\"avalue\"}", 0, 0},
        {"starts_with", "\"Val\"", "{\"p\":\"va\"}", 0, 0},
        {"not_starts_with", "\"Val\"", "{\"p\":\"avalue\"}", 1, 0},
        {"not_starts_with", "\"Val\"", "{\"p\":\"VALUE\"}", 0, 0},
        {"ends_with", "\".COM\"", "{\"p\":\"a@b.com\"}", 1, 0},
        {"ends_with", "\".COM\"", "{\"p\":\"a@b.org\"}", 0, 0},
        {"ends_with", "\".COM\"", "{\"p\":\"com\"}", 0, 0},
        {"not_ends_with", "\".com\"", "{\"p\":\"a@b.org\"}", 1, 0},
        {"not_ends_with", "\".com\"", "{\"p\":\"A@B.COM\"}", 0, 0},
    };
    run_ops(t, sizeof t / sizeof t[0]);
}
END_TEST

START_TEST(op_regex) {
    static const opcase_t t[] = {
        {"regex", "\"^[a-z]+@example\\\\.com$\"", "{\"p\":\"bob@example.com\"}", 1, 0},
        {"regex", "\"^[a-z]+@example\\\\.com$\"", "{\"p\":\"bob@exampleXcom\"}", 0, 0},
        {"regex", "\"\\\\d{3}\"", "{\"p\":\"ab123\"}", 1, 0},
        {"regex", "\"\\\\d{3}\"", "{\"p\":\"ab12\"}", 0, 0},
        {"regex", "\"^\\\\w+\\\\s\\\\S$\"", "{\"p\":\"ab_1 x\"}", 1, 0},
        {"regex", "\"[\\\\d.]+\"", "{\"p\":\"v1.2\"}", 1, 0},
        {"regex", "\"[\\\\]]\"", "{\"p\":\"a]b\"}", 1, 0},
        {"regex", "\"(?i)ABC\"", "{\"p\":\"xabcx\"}", 1, 0},
        {"regex", "\"(?:ab)+c\"", "{\"p\":\"ababc\"}", 1, 0},
        {"regex", "\"(?P<x>a)b\"", "{\"p\":\"ab\"}", 1, 0},
        {"regex", "\"a.+?c\"", "{\"p\":\"abbc\"}", 1, 0}, /* lazy: same match/no-match */
        {"regex", "\"^a.b$\"", "{\"p\":\"a\\nb\"}", 0, 0}, /* '.' does not match a newline */
        {"regex", "\"^12\"", "{\"p\":1234}", 1, 0},
        {"regex", "\"x\"", "{}", -1, MISSING},
        {"regex", "\"(\"", "{\"p\":\"(\"}", 0, 0}, /* invalid: false for regex ... */
        {"not_regex", "\"(\"", "{\"p\":\"(\"}", 0, 0}, /* ... and for not_regex */
        {"regex", "\"foo(?=bar)\"", "{\"p\":\"foobar\"}", -1, PH_INCONCLUSIVE_REGEX_UNSUPPORTED},
        {"regex", "\"(a)\\\\1\"", "{\"p\":\"aa\"}", -1, PH_INCONCLUSIVE_REGEX_UNSUPPORTED},
        {"not_regex", "\"^a\"", "{\"p\":\"ba\"}", 1, 0},
        {"not_regex", "\"^a\"", "{\"p\":\"ab\"}", 0, 0},
    };
    run_ops(t, sizeof t / sizeof t[0]);
}
END_TEST

START_TEST(op_numeric) {
    static const opcase_t t[] = {
        {"gt", "10", "{\"p\":11}", 1, 0},
        {"gt", "10", "{\"p\":10}", 0, 0},
        {"gt", "10", "{\"p\":\"11\"}", 1, 0}, /* strings parse as numbers */
        {"gt", "9", "{\"p\":\"10\"}", 1, 0},  /* Python compares as strings: false */
        {"lt", "\"30\"", "{\"p\":\"100\"}", 0, 0}, /* Python: "100" < "30" is true */
        {"lt", "\"30\"", "{\"p\":\"29.5\"}", 1, 0},
        {"gte", "10", "{\"p\":10}", 1, 0},
        {"gte", "10", "{\"p\":9.99}", 0, 0},
        {"lte", "10", "{\"p\":10}", 1, 0},
        {"lte", "10", "{\"p\":\"1e1\"}", 1, 0},
        {"lt", "10", "{\"p\":\"-inf\"}", 1, 0},
        {"gt", "10", "{\"p\":\"abc\"}", 0, 0}, /* the server: an error, i.e. no match */
        {"gt", "10", "{\"p\":\" 11\"}", 0, 0},
        {"gt", "10", "{\"p\":true}", 0, 0},
        {"gt", "\"abc\"", "{\"p\":11}", 0, 0},
        {"gt", "10", "{}", -1, MISSING},
        {"between", "[1, 10]", "{\"p\":1}", 1, 0},
        {"between", "[1, 10]", "{\"p\":10}", 1, 0},
        {"between", "[1, 10]", "{\"p\":11}", 0, 0},
        {"between", "[1, 10]", "{\"p\":\"5\"}", 1, 0},
        {"between", "[\"1\", \"10\"]", "{\"p\":5}", 1, 0},
        {"between", "[1, 10]", "{\"p\":\"abc\"}", 0, 0},
        {"between", "[1, 10]", "{\"p\":\"NaN\"}", 0, 0},
        {"not_between", "[1, 10]", "{\"p\":\"NaN\"}", 0, 0}, /* NaN is no match for both */
        {"not_between", "[1, 10]", "{\"p\":11}", 1, 0},
        {"not_between", "[1, 10]", "{\"p\":5}", 0, 0},
        {"between", "[10, 1]", "{\"p\":5}", 0, 0}, /* min > max: invalid */
        {"not_between", "[10, 1]", "{\"p\":50}", 0, 0},
        {"between", "[1]", "{\"p\":1}", 0, 0},
        {"between", "5", "{\"p\":5}", 0, 0},
        {"between", "[1, 10]", "{}", -1, MISSING},
    };
    run_ops(t, sizeof t / sizeof t[0]);
}
END_TEST

START_TEST(op_semver) {
    static const opcase_t t[] = {
        {"semver_gt", "\"1.2.3\"", "{\"p\":\"1.2.4\"}", 1, 0},
        {"semver_gt", "\"1.2.3\"", "{\"p\":\"1.2.3\"}", 0, 0},
        {"semver_gt", "\"1.2.3\"", "{\"p\":\"v1.3\"}", 1, 0},     /* padded to 1.3.0 */
        {"semver_gt", "\"1.2.3\"", "{\"p\":\" 1.10.0 \"}", 1, 0}, /* numeric, trimmed */
        {"semver_gt", "\"1.2.3\"", "{\"p\":\"1.2.4-alpha\"}", 1, 0},
        {"semver_gt", "\"1.2.3\"", "{\"p\":\"1.2.3-alpha\"}", 0, 0}, /* pre-release sorts first */
        {"semver_gte", "\"1.2.3\"", "{\"p\":\"1.2.3\"}", 1, 0},
        {"semver_lt", "\"1.0.0\"", "{\"p\":\"1.0.0-rc.1\"}", 1, 0},
        {"semver_lte", "\"1.0.0\"", "{\"p\":\"1.0.1\"}", 0, 0},
        {"semver_eq", "\"3.8.0\"", "{\"p\":\"3.08\"}", 1, 0}, /* leading zeros stripped */
        {"semver_eq", "\"3\"", "{\"p\":\"3.0.0\"}", 1, 0},
        /* the semver crate compares build metadata too (ClickHouse ignores it) */
        {"semver_eq", "\"1.0.0\"", "{\"p\":\"1.0.0+build.5\"}", 0, 0},
        {"semver_gt", "\"1.0.0\"", "{\"p\":\"1.0.0+build.5\"}", 1, 0},
        {"semver_eq", "\"1.0.0+b.1\"", "{\"p\":\"1.0.0+b.1\"}", 1, 0},
        {"semver_neq", "\"1.0.0\"", "{\"p\":\"1.0.1\"}", 1, 0},
        {"semver_neq", "\"1.0.0\"", "{\"p\":\"1.0.0\"}", 0, 0},
        {"semver_gt", "\"1.2.3\"", "{\"p\":\"abc\"}", 0, 0},
        {"semver_gt", "\"1.2.3\"", "{\"p\":\"1.2.3.4\"}", 0, 0},
        {"semver_gt", "\"1.2.3\"", "{\"p\":\"1.2.x\"}", 0, 0},
        {"semver_gt", "\"1.2.3\"", "{\"p\":\"1.2.3-01\"}", 0, 0}, /* numeric pre id, leading 0 */
        {"semver_gt", "\"bad\"", "{\"p\":\"1.2.3\"}", 0, 0},
        {"semver_gt", "\"1.2.3\"", "{}", -1, MISSING},
        /* pre-release precedence chain of semver.org item 11 */
        {"semver_lt", "\"1.0.0-alpha.1\"", "{\"p\":\"1.0.0-alpha\"}", 1, 0},
        {"semver_lt", "\"1.0.0-alpha.beta\"", "{\"p\":\"1.0.0-alpha.1\"}", 1, 0},
        {"semver_lt", "\"1.0.0-beta\"", "{\"p\":\"1.0.0-alpha.beta\"}", 1, 0},
        {"semver_lt", "\"1.0.0-beta.2\"", "{\"p\":\"1.0.0-beta\"}", 1, 0},
        {"semver_lt", "\"1.0.0-beta.11\"", "{\"p\":\"1.0.0-beta.2\"}", 1, 0},
        {"semver_lt", "\"1.0.0-rc.1\"", "{\"p\":\"1.0.0-beta.11\"}", 1, 0},
        {"semver_lt", "\"1.0.0\"", "{\"p\":\"1.0.0-rc.1\"}", 1, 0},
        {"semver_gt", "\"1.0.0-beta.11\"", "{\"p\":\"1.0.0-beta.2\"}", 0, 0},
        {"semver_tilde", "\"1.2.3\"", "{\"p\":\"1.2.9\"}", 1, 0},
        {"semver_tilde", "\"1.2.3\"", "{\"p\":\"1.3.0\"}", 0, 0},
        {"semver_tilde", "\"1.2.3\"", "{\"p\":\"1.2.2\"}", 0, 0},
        {"semver_tilde", "\"1.2\"", "{\"p\":\"1.2.5\"}", 1, 0},
        {"semver_tilde", "\"1\"", "{\"p\":\"1.1.0\"}", 0, 0}, /* ~1 is ~1.0.0 after padding */
        {"semver_tilde", "\"1.2.3-beta\"", "{\"p\":\"1.2.3-beta.2\"}", 1, 0},
        {"semver_tilde", "\"1.2.3-beta\"", "{\"p\":\"1.2.4-alpha\"}", 0, 0},
        {"semver_tilde", "\"1.2.3\"", "{\"p\":\"1.2.5-alpha\"}", 0, 0},
        {"semver_caret", "\"1.2.3\"", "{\"p\":\"1.9.0\"}", 1, 0},
        {"semver_caret", "\"1.2.3\"", "{\"p\":\"2.0.0\"}", 0, 0},
        {"semver_caret", "\"0.2.3\"", "{\"p\":\"0.2.9\"}", 1, 0},
        {"semver_caret", "\"0.2.3\"", "{\"p\":\"0.3.0\"}", 0, 0},
        {"semver_caret", "\"0.0.3\"", "{\"p\":\"0.0.3\"}", 1, 0},
        {"semver_caret", "\"0.0.3\"", "{\"p\":\"0.0.4\"}", 0, 0},
        {"semver_caret", "\"1.x\"", "{\"p\":\"1.0.0\"}", 0, 0}, /* invalid requirement */
        {"semver_wildcard", "\"1.2.*\"", "{\"p\":\"1.2.7\"}", 1, 0},
        {"semver_wildcard", "\"1.2.*\"", "{\"p\":\"1.3.0\"}", 0, 0},
        {"semver_wildcard", "\"1.*\"", "{\"p\":\"1.9.9\"}", 1, 0},
        {"semver_wildcard", "\"1.*.*\"", "{\"p\":\"2.0.0\"}", 0, 0},
        {"semver_wildcard", "\"3.08.*\"", "{\"p\":\"3.8.1\"}", 1, 0},
        {"semver_wildcard", "\"*\"", "{\"p\":\"7.0.0\"}", 1, 0},
        {"semver_wildcard", "\"1.*\"", "{\"p\":\"1.5.0-beta\"}", 0, 0},
        {"semver_wildcard", "\"1.*.3\"", "{\"p\":\"1.2.3\"}", 0, 0}, /* invalid */
        {"semver_wildcard", "\"1.2.3\"", "{\"p\":\"1.9.0\"}", 1, 0}, /* no '*': caret */
    };
    run_ops(t, sizeof t / sizeof t[0]);
}
END_TEST

START_TEST(op_dates) {
    static const opcase_t t[] = {
        {"is_date_before", "\"2024-01-01\"", "{\"p\":\"2023-12-31\"}", 1, 0},
        {"is_date_before", "\"2024-01-01\"", "{\"p\":\"2024-01-02\"}", 0, 0},
        {"is_date_before", "\"2024-01-01\"", "{\"p\":\"2024-01-01\"}", 0, 0},
        {"is_date_before", "\"2024-01-01\"", "{\"p\":\"2023-12-31T23:59:59Z\"}", 1, 0},
        {"is_date_before", "\"2024-01-01\"", "{\"p\":\"2024-01-01T01:00:00+02:00\"}", 1, 0},
        {"is_date_before", "\"2024-01-01\"", "{\"p\":\"2023-12-31 23:59\"}", 1, 0},
        {"is_date_before", "\"2024-01-01\"", "{\"p\":1704067199}", 1, 0}, /* epoch seconds */
        {"is_date_after", "\"2024-01-01\"", "{\"p\":\"1704067201\"}", 1, 0},
        {"is_date_after", "\"2024-01-01\"", "{\"p\":1704067200.5}", 1, 0},
        {"is_date_after", "\"2024-01-01\"", "{\"p\":\"2024-01-01T00:00:01.25+00:00\"}", 1, 0},
        {"is_date_after", "\"2024-01-01T00:00:00Z\"", "{\"p\":\"2024-01-01\"}", 0, 0},
        {"is_date_exact", "\"2024-01-01\"", "{\"p\":\"2024-01-01T00:00:00Z\"}", 1, 0},
        {"is_date_exact", "\"2024-01-01\"", "{\"p\":\"2024-01-01T00:00:01Z\"}", 0, 0},
        {"is_date_exact", "\"2024-01-01T10:00:00+01:00\"", "{\"p\":\"2024-01-01 09:00:00\"}", 1, 0},
        /* relative: now is 2024-06-15T12:00:00Z */
        {"is_date_after", "\"-7d\"", "{\"p\":\"2024-06-10\"}", 1, 0},
        {"is_date_after", "\"-7d\"", "{\"p\":\"2024-06-08T11:59:59Z\"}", 0, 0},
        {"is_date_before", "\"-1y\"", "{\"p\":\"2023-06-15T11:00:00Z\"}", 1, 0},
        {"is_date_after", "\"-24h\"", "{\"p\":\"2024-06-14T12:00:01Z\"}", 1, 0},
        {"is_date_after", "\"-2w\"", "{\"p\":\"2024-06-01T12:00:01Z\"}", 1, 0},
        {"is_date_after", "\"-1m\"", "{\"p\":\"2024-05-15T12:00:01Z\"}", 1, 0},
        {"is_date_after", "\"1d\"", "{\"p\":\"2024-06-15\"}", 1, 0}, /* the sign is optional */
        {"is_date_after", "\"-10000d\"", "{\"p\":\"2024-06-15\"}", 0, 0}, /* too large: not a date */
        {"is_date_after", "\"2024-01-01\"", "{\"p\":\"-7d\"}", 1, 0}, /* person side too */
        /* what only the server's fallback parser could read */
        {"is_date_after", "\"2024-01-01\"", "{\"p\":\"June 3, 2024\"}", -1,
         PH_INCONCLUSIVE_UNSUPPORTED_VALUE},
        {"is_date_after", "\"June 3, 2024\"", "{\"p\":\"2024-07-01\"}", -1,
         PH_INCONCLUSIVE_UNSUPPORTED_VALUE},
        {"is_date_after", "\"2024-01-01\"", "{\"p\":\"hello\"}", 0, 0},
        {"is_date_after", "\"2024-01-01\"", "{\"p\":true}", 0, 0},
        {"is_date_after", "20240101", "{\"p\":\"2024-06-01\"}", 0, 0}, /* filter must be a string */
        {"is_date_after", "\"2024-02-30\"", "{\"p\":\"2024-06-01\"}", 0, 0},
        {"is_date_after", "\"2024-01-01\"", "{}", -1, MISSING},
    };
    run_ops(t, sizeof t / sizeof t[0]);
}
END_TEST

START_TEST(op_misc) {
    static const opcase_t t[] = {
        {"fuzzy_match", "\"x\"", "{\"p\":\"x\"}", -1, PH_INCONCLUSIVE_UNKNOWN_OPERATOR},
        {"fuzzy_match", "\"x\"", "{}", -1, PH_INCONCLUSIVE_UNKNOWN_OPERATOR},
        {"in", "\"x\"", "{\"p\":\"x\"}", 0, 0}, /* cohort operators on a person property */
        {"flag_evaluates_to", "true", "{\"p\":\"x\"}", 0, 0},
    };
    run_ops(t, sizeof t / sizeof t[0]);
    /* the default operator is exact; the distinct id is a property too */
    ph_flag_result_t r = eval1(
        "{\"flags\":[{\"key\":\"f\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"distinct_id\",\"value\":\"USER-1\",\"type\":\"person\"}]}]}}]}",
        "f", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_TRUE);
    /* a passed distinct_id property wins over the virtual one */
    r = eval1("{\"flags\":[{\"key\":\"f\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
              "{\"key\":\"distinct_id\",\"value\":\"user-1\",\"type\":\"person\"}]}]}}]}",
              "f", (ctxs_t){.person = "{\"distinct_id\":\"other\"}"});
    CK_VALUE(r, PH_FLAG_FALSE);
    /* unknown property types cannot be decided here */
    r = eval1("{\"flags\":[{\"key\":\"f\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
              "{\"key\":\"$pageview\",\"value\":1,\"type\":\"behavioral\"}]}]}}]}",
              "f", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE);
    ck_assert_int_eq(r.cause, PH_INCONCLUSIVE_UNKNOWN_PROPERTY_TYPE);
}
END_TEST

/* ------------------------------------------------------------ flags */

/* Definitions text from a list of flag objects. */
#define DEFS(flags) "{\"flags\":[" flags "],\"group_type_mapping\":{\"0\":\"company\",\"1\":\"team\"}}"

START_TEST(flag_basics) {
    /* inactive -> false, flag_disabled (also for experience continuity) */
    ph_flag_result_t r = eval1(DEFS("{\"key\":\"f\",\"active\":false,\"ensure_experience_continuity\":true,"
                                    "\"filters\":{\"groups\":[{\"rollout_percentage\":100}]}}"),
                               "f", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_FALSE);
    ck_assert_int_eq(r.reason, PH_REASON_FLAG_DISABLED);
    /* experience continuity needs the server's hash key overrides */
    r = eval1(DEFS("{\"key\":\"f\",\"active\":true,\"ensure_experience_continuity\":true,"
                   "\"filters\":{\"groups\":[{\"rollout_percentage\":100}]}}"),
              "f", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE);
    ck_assert_int_eq(r.cause, PH_INCONCLUSIVE_EXPERIENCE_CONTINUITY);
    /* an unknown config version is opaque */
    r = eval1(DEFS("{\"key\":\"f\",\"active\":true,\"filters\":{\"version\":2,\"groups\":[]}}"), "f",
              (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE);
    ck_assert_int_eq(r.cause, PH_INCONCLUSIVE_CONFIG_VERSION);
    r = eval1(DEFS("{\"key\":\"f\",\"active\":true,\"filters\":{\"version\":1,"
                   "\"groups\":[{\"rollout_percentage\":100}]}}"),
              "f", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_TRUE);
    /* no conditions: no match */
    r = eval1(DEFS("{\"key\":\"f\",\"active\":true,\"filters\":{}}"), "f", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_FALSE);
    ck_assert_int_eq(r.reason, PH_REASON_NO_CONDITION_MATCH);
    ck_assert_int_eq(r.condition_index, -1);
    /* an absent rollout is 100%; 0% is nobody */
    r = eval1(DEFS("{\"key\":\"f\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":[]}]}}"),
              "f", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_TRUE);
    r = eval1(DEFS("{\"key\":\"f\",\"active\":true,\"filters\":{\"groups\":[{\"rollout_percentage\":0}]}}"),
              "f", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_FALSE);
    ck_assert_int_eq(r.reason, PH_REASON_OUT_OF_ROLLOUT_BOUND);
    /* unknown key */
    ph_flags_defs_t *d = compile_ok(DEFS("{\"key\":\"f\",\"active\":true,\"filters\":{}}"));
    ph_flags_ctx_t ctx = {"u", NULL, NULL, NULL, NULL, 0, NULL};
    ph_flag_result_t u;
    posthog__flags_evaluate(d, "nope", &ctx, &u);
    ck_assert_int_eq(u.value, PH_FLAG_INCONCLUSIVE);
    ck_assert_int_eq(u.cause, PH_INCONCLUSIVE_UNKNOWN_FLAG);
    ck_assert_str_eq(u.detail, "nope");
    ck_assert_int_eq(u.has_experiment, -1);
    /* a NULL context is an empty one; a NULL version knows no flag */
    posthog__flags_evaluate(d, "f", NULL, &u);
    ck_assert_int_eq(u.value, PH_FLAG_FALSE);
    ck_assert_int_eq(u.reason, PH_REASON_NO_CONDITION_MATCH);
    posthog__flags_evaluate(NULL, "f", &ctx, &u);
    ck_assert_int_eq(u.value, PH_FLAG_INCONCLUSIVE);
    ck_assert_int_eq(u.cause, PH_INCONCLUSIVE_UNKNOWN_FLAG);
    ck_assert_int_eq(posthog__flags_count(NULL), 0);
    ck_assert_int_eq(posthog__flags_find(NULL, "f"), -1);
    posthog__flags_defs_unref(d);
    /* id and has_experiment travel with every result (the exposure event needs them) */
    r = eval1(DEFS("{\"id\":77,\"key\":\"x\",\"active\":true,\"has_experiment\":false,"
                   "\"filters\":{}},{\"key\":\"y\",\"active\":false,\"has_experiment\":true}"),
              "x", (ctxs_t){0});
    ck_assert_int_eq(r.flag_id, 77);
    ck_assert_int_eq(r.has_experiment, 0);
    r = eval1(DEFS("{\"key\":\"y\",\"active\":false,\"has_experiment\":true}"), "y", (ctxs_t){0});
    ck_assert_int_eq(r.has_experiment, 1);
    ck_assert_int_eq(r.flag_id, -1);
}
END_TEST

/* Fractional rollouts are floats (0.1% exists); the edge is h <= pct/100. */
START_TEST(flag_fractional_rollout) {
    ph_flags_defs_t *d = compile_ok(DEFS(
        "{\"key\":\"tiny\",\"active\":true,\"filters\":{\"groups\":[{\"rollout_percentage\":0.5}]}}"));
    int on = 0;
    for (int i = 0; i < 4000; i++) {
        char id[32];
        snprintf(id, sizeof id, "u%d", i);
        ph_flag_result_t r = eval_in(d, "tiny", (ctxs_t){.distinct_id = id});
        bool want = posthog__flags_hash("tiny.", id, "") <= 0.005;
        ck_assert_int_eq(r.value == PH_FLAG_TRUE, want);
        on += want;
    }
    ck_assert_msg(on > 0 && on < 60, "0.5%% of 4000 gave %d", on);
    posthog__flags_defs_unref(d);
}
END_TEST

START_TEST(flag_variants_and_payloads) {
    const char *defs = DEFS(
        "{\"key\":\"mv\",\"active\":true,\"filters\":{"
        "\"groups\":[{\"properties\":[{\"key\":\"email\",\"value\":\"vip@x.com\",\"type\":\"person\"}],"
        "\"rollout_percentage\":100,\"variant\":\"second\"},"
        "{\"properties\":[{\"key\":\"email\",\"value\":\"odd@x.com\",\"type\":\"person\"}],"
        "\"rollout_percentage\":100,\"variant\":\"no-such-variant\"},"
        "{\"rollout_percentage\":100}],"
        "\"multivariate\":{\"variants\":[{\"key\":\"first\",\"rollout_percentage\":50},"
        "{\"key\":\"second\",\"rollout_percentage\":50}]},"
        "\"payloads\":{\"first\":\"{\\\"color\\\":\\\"red\\\"}\",\"second\":{\"n\":2},\"true\":\"1\"}}},"
        "{\"key\":\"b\",\"active\":true,\"filters\":{\"groups\":[{\"rollout_percentage\":100}],"
        "\"payloads\":{\"true\":\"[1,2]\"}}},"
        "{\"key\":\"gap\",\"active\":true,\"filters\":{\"groups\":[{\"rollout_percentage\":100}],"
        "\"multivariate\":{\"variants\":[{\"key\":\"only\",\"rollout_percentage\":0}]}}}");
    /* the override wins when it names a variant */
    ph_flag_result_t r = eval1(defs, "mv", (ctxs_t){.person = "{\"email\":\"vip@x.com\"}"});
    CK_VALUE(r, PH_FLAG_VARIANT);
    ck_assert_str_eq(r.variant, "second");
    ck_assert_str_eq(r.payload, "{\"n\":2}"); /* non-string payloads become JSON text */
    ck_assert_int_eq(r.condition_index, 0);
    ck_assert_int_eq(r.reason, PH_REASON_CONDITION_MATCH);
    /* an override naming no variant: the hash decides */
    for (int i = 0; i < 50; i++) {
        char id[32];
        snprintf(id, sizeof id, "user-%d", i);
        r = eval1(defs, "mv", (ctxs_t){.distinct_id = id, .person = "{\"email\":\"odd@x.com\"}"});
        CK_VALUE(r, PH_FLAG_VARIANT);
        double h = posthog__flags_hash("mv.", id, "variant");
        ck_assert_str_eq(r.variant, h < 0.5 ? "first" : "second");
        ck_assert_str_eq(r.payload, h < 0.5 ? "{\"color\":\"red\"}" : "{\"n\":2}");
        ck_assert_int_eq(r.condition_index, 1);
    }
    /* a condition matched on a missing property elsewhere: inconclusive
     * first (condition 0 reads email), then the catch-all matches -- with
     * variants and an override on condition 0 that could differ */
    r = eval1(defs, "mv", (ctxs_t){.person = "{}"});
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE);
    ck_assert_int_eq(r.cause, PH_INCONCLUSIVE_MISSING_PROPERTY);
    /* boolean payload */
    r = eval1(defs, "b", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_str_eq(r.payload, "[1,2]");
    /* variants that leave the hash unassigned: true without a variant */
    r = eval1(defs, "gap", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_ptr_null(r.variant);
}
END_TEST

/* A payload string that is not JSON (plain text) is itself the payload:
 * posthog_flag_t.payload_json is JSON text, as for remote answers. */
START_TEST(flag_payload_plain_text_is_json_text) {
    const char *defs = DEFS(
        "{\"key\":\"t\",\"active\":true,\"filters\":{\"groups\":[{\"rollout_percentage\":100}],"
        "\"payloads\":{\"true\":\"hello \\\"world\\\"\"}}},"
        "{\"key\":\"j\",\"active\":true,\"filters\":{\"groups\":[{\"rollout_percentage\":100}],"
        "\"payloads\":{\"true\":\" {\\\"a\\\": 1} \"}}},"
        "{\"key\":\"n\",\"active\":true,\"filters\":{\"groups\":[{\"rollout_percentage\":100}],"
        "\"payloads\":{\"true\":\"3 apples\"}}}");
    ph_flag_result_t r = eval1(defs, "t", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_str_eq(r.payload, "\"hello \\\"world\\\"\"");
    cJSON *v = cJSON_Parse(r.payload);
    ck_assert(cJSON_IsString(v));
    ck_assert_str_eq(v->valuestring, "hello \"world\"");
    cJSON_Delete(v);
    /* a string holding JSON is that JSON, as given */
    r = eval1(defs, "j", (ctxs_t){0});
    ck_assert_str_eq(r.payload, " {\"a\": 1} ");
    /* JSON followed by more text is text */
    r = eval1(defs, "n", (ctxs_t){0});
    ck_assert_str_eq(r.payload, "\"3 apples\"");
}
END_TEST

/* The variant table is cumulative in stored order: value_min <= h < value_max. */
START_TEST(flag_variant_table) {
    ph_flags_defs_t *d = compile_ok(DEFS(
        "{\"key\":\"t\",\"active\":true,\"filters\":{\"groups\":[{\"rollout_percentage\":100}],"
        "\"multivariate\":{\"variants\":[{\"key\":\"a\",\"rollout_percentage\":33.3},"
        "{\"key\":\"b\",\"rollout_percentage\":33.3},{\"key\":\"c\",\"rollout_percentage\":33.4}]}}}"));
    const ph_flag_t *f = &d->flags[0];
    ck_assert_int_eq(f->nvariants, 3);
    /* summed as the server sums: cum += pct / 100, in order */
    const double e1 = 33.3 / 100.0, e2 = e1 + 33.3 / 100.0, e3 = e2 + 33.4 / 100.0;
    ck_assert(f->variants[0].lo == 0.0 && f->variants[0].hi == e1);
    ck_assert(f->variants[1].lo == e1 && f->variants[1].hi == e2);
    ck_assert(f->variants[2].lo == e2 && f->variants[2].hi == e3);
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf(id, sizeof id, "x%d", i);
        double h = posthog__flags_hash("t.", id, "variant");
        const char *want = h < e1 ? "a" : h < e2 ? "b" : "c";
        ph_flag_result_t r = eval_in(d, "t", (ctxs_t){.distinct_id = id});
        ck_assert_str_eq(r.variant, want);
    }
    posthog__flags_defs_unref(d);
}
END_TEST

START_TEST(flag_condition_order_and_early_exit) {
    /* the first matching condition wins, in stored order */
    const char *defs = DEFS(
        "{\"key\":\"o\",\"active\":true,\"filters\":{\"groups\":["
        "{\"properties\":[{\"key\":\"plan\",\"value\":\"pro\"}],\"rollout_percentage\":0},"
        "{\"properties\":[{\"key\":\"plan\",\"value\":\"pro\"}],\"rollout_percentage\":100},"
        "{\"rollout_percentage\":100}]}},"
        "{\"key\":\"e\",\"active\":true,\"filters\":{\"early_exit\":true,\"groups\":["
        "{\"properties\":[{\"key\":\"plan\",\"value\":\"pro\"}],\"rollout_percentage\":0},"
        "{\"rollout_percentage\":100}]}},"
        "{\"key\":\"ei\",\"active\":true,\"filters\":{\"early_exit\":true,\"groups\":["
        "{\"properties\":[{\"key\":\"age\",\"operator\":\"gt\",\"value\":1}]},"
        "{\"properties\":[{\"key\":\"plan\",\"value\":\"pro\"}],\"rollout_percentage\":0},"
        "{\"rollout_percentage\":100}]}},"
        "{\"key\":\"oob\",\"active\":true,\"filters\":{\"groups\":["
        "{\"properties\":[{\"key\":\"plan\",\"value\":\"free\"}]},"
        "{\"properties\":[{\"key\":\"plan\",\"value\":\"pro\"}],\"rollout_percentage\":0}]}}");
    ph_flag_result_t r = eval1(defs, "o", (ctxs_t){.person = "{\"plan\":\"pro\"}"});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_int_eq(r.condition_index, 1);
    r = eval1(defs, "o", (ctxs_t){.person = "{\"plan\":\"free\"}"});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_int_eq(r.condition_index, 2);
    /* early_exit: matched properties but out of rollout ends the evaluation */
    r = eval1(defs, "e", (ctxs_t){.person = "{\"plan\":\"pro\"}"});
    CK_VALUE(r, PH_FLAG_FALSE);
    ck_assert_int_eq(r.reason, PH_REASON_OUT_OF_ROLLOUT_BOUND);
    ck_assert_int_eq(r.condition_index, 0);
    r = eval1(defs, "e", (ctxs_t){.person = "{\"plan\":\"free\"}"});
    CK_VALUE(r, PH_FLAG_TRUE);
    /* early_exit after an inconclusive condition: the server may have
     * matched it (Python says false, Go inconclusive: Go is right) */
    r = eval1(defs, "ei", (ctxs_t){.person = "{\"plan\":\"pro\"}"});
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE);
    /* no match, one condition out of rollout: that is the reason */
    r = eval1(defs, "oob", (ctxs_t){.person = "{\"plan\":\"pro\"}"});
    CK_VALUE(r, PH_FLAG_FALSE);
    ck_assert_int_eq(r.reason, PH_REASON_OUT_OF_ROLLOUT_BOUND);
    ck_assert_int_eq(r.condition_index, 1);
    /* the server keeps the highest-priority reason, a tie taking the later
     * condition: no match reports the last condition evaluated, out of
     * rollout the last condition out of rollout */
    r = eval1(defs, "oob", (ctxs_t){.person = "{\"plan\":\"team\"}"});
    CK_VALUE(r, PH_FLAG_FALSE);
    ck_assert_int_eq(r.reason, PH_REASON_NO_CONDITION_MATCH);
    ck_assert_int_eq(r.condition_index, 1);
    r = eval1(DEFS("{\"key\":\"two\",\"active\":true,\"filters\":{\"groups\":["
                   "{\"rollout_percentage\":0},{\"rollout_percentage\":0},"
                   "{\"properties\":[{\"key\":\"plan\",\"value\":\"x\"}]}]}}"),
              "two", (ctxs_t){.person = "{\"plan\":\"pro\"}"});
    CK_VALUE(r, PH_FLAG_FALSE);
    ck_assert_int_eq(r.reason, PH_REASON_OUT_OF_ROLLOUT_BOUND);
    ck_assert_int_eq(r.condition_index, 1);
}
END_TEST

START_TEST(flag_inconclusive_then_match) {
    const char *defs = DEFS(
        /* boolean flag: a later match gives the same value as the unknown one */
        "{\"key\":\"b\",\"active\":true,\"filters\":{\"groups\":["
        "{\"properties\":[{\"key\":\"age\",\"operator\":\"gt\",\"value\":1}]},"
        "{\"properties\":[{\"key\":\"plan\",\"value\":\"pro\"}]}]}},"
        /* multivariate, no overrides: the same hash decides either way */
        "{\"key\":\"m\",\"active\":true,\"filters\":{\"groups\":["
        "{\"properties\":[{\"key\":\"age\",\"operator\":\"gt\",\"value\":1}]},"
        "{\"properties\":[{\"key\":\"plan\",\"value\":\"pro\"}]}],"
        "\"multivariate\":{\"variants\":[{\"key\":\"a\",\"rollout_percentage\":50},"
        "{\"key\":\"z\",\"rollout_percentage\":50}]}}},"
        /* an override on the unknown condition: the value could differ */
        "{\"key\":\"v\",\"active\":true,\"filters\":{\"groups\":["
        "{\"properties\":[{\"key\":\"age\",\"operator\":\"gt\",\"value\":1}],\"variant\":\"z\"},"
        "{\"properties\":[{\"key\":\"plan\",\"value\":\"pro\"}]}],"
        "\"multivariate\":{\"variants\":[{\"key\":\"a\",\"rollout_percentage\":100},"
        "{\"key\":\"z\",\"rollout_percentage\":0}]}}}");
    ph_flag_result_t r = eval1(defs, "b", (ctxs_t){.person = "{\"plan\":\"pro\"}"});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_int_eq(r.condition_index, 1);
    r = eval1(defs, "b", (ctxs_t){.person = "{\"plan\":\"free\"}"});
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE); /* nothing matched and one was unknown */
    ck_assert_int_eq(r.cause, PH_INCONCLUSIVE_MISSING_PROPERTY);
    r = eval1(defs, "m", (ctxs_t){.person = "{\"plan\":\"pro\"}"});
    CK_VALUE(r, PH_FLAG_VARIANT);
    r = eval1(defs, "v", (ctxs_t){.person = "{\"plan\":\"pro\"}"});
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE);
    /* a definite miss in the AND decides even next to an unknown filter */
    r = eval1(DEFS("{\"key\":\"a\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
                   "{\"key\":\"age\",\"operator\":\"gt\",\"value\":1},"
                   "{\"key\":\"plan\",\"value\":\"pro\"}]}]}}"),
              "a", (ctxs_t){.person = "{\"plan\":\"free\"}"});
    CK_VALUE(r, PH_FLAG_FALSE);
}
END_TEST

START_TEST(flag_device_bucketing) {
    const char *defs = DEFS(
        "{\"key\":\"d50\",\"active\":true,\"bucketing_identifier\":\"device_id\","
        "\"filters\":{\"groups\":[{\"rollout_percentage\":50}]}},"
        "{\"key\":\"d100\",\"active\":true,\"bucketing_identifier\":\"device_id\","
        "\"filters\":{\"groups\":[{\"rollout_percentage\":100}]}},"
        "{\"key\":\"dmv\",\"active\":true,\"bucketing_identifier\":\"device_id\","
        "\"filters\":{\"groups\":[{\"rollout_percentage\":100}],"
        "\"multivariate\":{\"variants\":[{\"key\":\"a\",\"rollout_percentage\":100}]}}}");
    for (int i = 0; i < 40; i++) {
        char dev[32];
        snprintf(dev, sizeof dev, "device-%d", i);
        bool want = posthog__flags_hash("d50.", dev, "") <= 0.5;
        ph_flag_result_t r = eval1(defs, "d50", (ctxs_t){.device_id = dev});
        ck_assert_int_eq(r.value == PH_FLAG_TRUE, want);
        /* the device id may come from the person properties */
        char props[64];
        snprintf(props, sizeof props, "{\"$device_id\":\"%s\"}", dev);
        r = eval1(defs, "d50", (ctxs_t){.person = props});
        ck_assert_int_eq(r.value == PH_FLAG_TRUE, want);
    }
    /* without a device id the server skips person conditions as out of
     * rollout, whatever their percentage (get_match) */
    static const char *keys[] = {"d50", "d100", "dmv"};
    for (int i = 0; i < 3; i++) {
        ph_flag_result_t r = eval1(defs, keys[i], (ctxs_t){0});
        CK_VALUE(r, PH_FLAG_FALSE);
        ck_assert_int_eq(r.reason, PH_REASON_OUT_OF_ROLLOUT_BOUND);
        ck_assert_int_eq(r.condition_index, 0);
        r = eval1(defs, keys[i], (ctxs_t){.device_id = ""}); /* empty is none */
        CK_VALUE(r, PH_FLAG_FALSE);
    }
}
END_TEST

START_TEST(flag_groups) {
    const char *defs = DEFS(
        "{\"key\":\"g\",\"active\":true,\"filters\":{\"aggregation_group_type_index\":0,\"groups\":["
        "{\"properties\":[{\"key\":\"plan\",\"value\":\"enterprise\",\"type\":\"group\","
        "\"group_type_index\":0}],\"rollout_percentage\":100}]}},"
        "{\"key\":\"g50\",\"active\":true,\"filters\":{\"aggregation_group_type_index\":0,"
        "\"groups\":[{\"rollout_percentage\":50}]}},"
        "{\"key\":\"gk\",\"active\":true,\"filters\":{\"aggregation_group_type_index\":0,\"groups\":["
        "{\"properties\":[{\"key\":\"$group_key\",\"value\":\"acme\",\"type\":\"group\","
        "\"group_type_index\":0}]}]}},"
        "{\"key\":\"g9\",\"active\":true,\"filters\":{\"aggregation_group_type_index\":9,"
        "\"groups\":[{\"rollout_percentage\":100}]}},"
        /* mixed targeting: a person flag with a group condition first */
        "{\"key\":\"mix\",\"active\":true,\"filters\":{\"groups\":["
        "{\"aggregation_group_type_index\":1,\"properties\":[{\"key\":\"size\",\"operator\":\"gt\","
        "\"value\":10,\"type\":\"group\",\"group_type_index\":1}],\"variant\":null},"
        "{\"aggregation_group_type_index\":null,\"properties\":[{\"key\":\"plan\",\"value\":\"pro\"}]}]}}");
    ctxs_t c = {.groups = "{\"company\":\"acme\"}",
                .group_props = "{\"company\":{\"plan\":\"Enterprise\"}}"};
    ph_flag_result_t r = eval1(defs, "g", c);
    CK_VALUE(r, PH_FLAG_TRUE);
    c.group_props = "{\"company\":{\"plan\":\"free\"}}";
    r = eval1(defs, "g", c);
    CK_VALUE(r, PH_FLAG_FALSE);
    /* the group passed without properties: the server would read them */
    c.group_props = NULL;
    r = eval1(defs, "g", c);
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE);
    ck_assert_int_eq(r.cause, PH_INCONCLUSIVE_MISSING_PROPERTY);
    /* $group_key resolves to the key */
    r = eval1(defs, "gk", c);
    CK_VALUE(r, PH_FLAG_TRUE);
    /* the group not passed (or an empty key): false, no_group_type, the
     * skipped condition's index (the server; Go falls back) */
    r = eval1(defs, "g", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_FALSE);
    ck_assert_int_eq(r.reason, PH_REASON_NO_GROUP_TYPE);
    ck_assert_int_eq(r.condition_index, 0);
    r = eval1(defs, "g", (ctxs_t){.groups = "{\"company\":\"\"}"});
    ck_assert_int_eq(r.reason, PH_REASON_NO_GROUP_TYPE);
    r = eval1(defs, "g", (ctxs_t){.groups = "{\"company\":true}"});
    ck_assert_int_eq(r.reason, PH_REASON_NO_GROUP_TYPE);
    /* an index not in group_type_mapping */
    r = eval1(defs, "g9", c);
    CK_VALUE(r, PH_FLAG_FALSE);
    ck_assert_int_eq(r.reason, PH_REASON_NO_GROUP_TYPE);
    /* group flags bucket on the group key, numbers as text */
    for (int i = 0; i < 40; i++) {
        char groups[64], key[16];
        snprintf(key, sizeof key, "%d", 1000 + i);
        snprintf(groups, sizeof groups, "{\"company\":%d}", 1000 + i);
        r = eval1(defs, "g50", (ctxs_t){.groups = groups});
        ck_assert_int_eq(r.value == PH_FLAG_TRUE, posthog__flags_hash("g50.", key, "") <= 0.5);
    }
    /* mixed: team not passed -> the group condition is skipped */
    r = eval1(defs, "mix", (ctxs_t){.person = "{\"plan\":\"pro\"}"});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_int_eq(r.condition_index, 1);
    r = eval1(defs, "mix", (ctxs_t){.person = "{\"plan\":\"pro\"}", .groups = "{\"team\":\"t1\"}",
                                     .group_props = "{\"team\":{\"size\":50}}"});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_int_eq(r.condition_index, 0);
}
END_TEST

START_TEST(flag_holdout_and_early_access) {
    const char *defs = DEFS(
        "{\"id\":5,\"key\":\"h\",\"active\":true,\"filters\":{\"holdout\":{\"id\":42,"
        "\"exclusion_percentage\":30},\"groups\":[{\"rollout_percentage\":100}]}},"
        "{\"key\":\"h100\",\"active\":true,\"filters\":{\"holdout\":{\"id\":7,"
        "\"exclusion_percentage\":100},\"groups\":[{\"rollout_percentage\":100}]}},"
        "{\"key\":\"ea\",\"active\":true,\"filters\":{\"feature_enrollment\":true,"
        "\"groups\":[{\"rollout_percentage\":0}],\"payloads\":{\"true\":\"\\\"on\\\"\"}}},"
        "{\"key\":\"sg\",\"active\":true,\"filters\":{\"super_groups\":[{\"properties\":["
        "{\"key\":\"beta\",\"value\":[\"true\"],\"type\":\"person\"}],\"rollout_percentage\":100}],"
        "\"groups\":[{\"rollout_percentage\":0}]}},"
        "{\"key\":\"eamv\",\"active\":true,\"filters\":{\"feature_enrollment\":true,"
        "\"groups\":[{\"rollout_percentage\":100}],\"multivariate\":{\"variants\":["
        "{\"key\":\"a\",\"rollout_percentage\":100}]},\"payloads\":{\"a\":\"1\",\"true\":\"2\"}}},"
        "{\"key\":\"hp\",\"active\":true,\"filters\":{\"holdout\":{\"id\":3,"
        "\"exclusion_percentage\":100},\"payloads\":{\"holdout-3\":\"\\\"held\\\"\"}}}");
    int held = 0;
    for (int i = 0; i < 200; i++) {
        char id[32];
        snprintf(id, sizeof id, "person-%d", i);
        ph_flag_result_t r = eval1(defs, "h", (ctxs_t){.distinct_id = id});
        bool out = posthog__flags_hash("holdout-", id, "") <= 0.30;
        if (out) {
            held++;
            CK_VALUE(r, PH_FLAG_VARIANT);
            ck_assert_str_eq(r.variant, "holdout-42");
            ck_assert_int_eq(r.reason, PH_REASON_HOLDOUT_CONDITION_VALUE);
            ck_assert_int_eq(r.condition_index, -1);
        } else {
            CK_VALUE(r, PH_FLAG_TRUE);
        }
    }
    ck_assert(held > 20 && held < 100);
    ph_flag_result_t r = eval1(defs, "h100", (ctxs_t){0});
    ck_assert_str_eq(r.variant, "holdout-7");
    /* early access: the enrollment property decides, before the conditions */
    r = eval1(defs, "ea", (ctxs_t){.person = "{\"$feature_enrollment/ea\":true}"});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_int_eq(r.reason, PH_REASON_SUPER_CONDITION_VALUE);
    ck_assert_str_eq(r.payload, "\"on\"");
    r = eval1(defs, "ea", (ctxs_t){.person = "{\"$feature_enrollment/ea\":\"true\"}"});
    CK_VALUE(r, PH_FLAG_TRUE);
    r = eval1(defs, "ea", (ctxs_t){.person = "{\"$feature_enrollment/ea\":false}"});
    CK_VALUE(r, PH_FLAG_FALSE);
    ck_assert_int_eq(r.reason, PH_REASON_SUPER_CONDITION_VALUE);
    r = eval1(defs, "ea", (ctxs_t){.person = "{}"}); /* only the server knows */
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE);
    ck_assert_int_eq(r.cause, PH_INCONCLUSIVE_MISSING_PROPERTY);
    /* legacy super groups */
    r = eval1(defs, "sg", (ctxs_t){.person = "{\"beta\":true}"});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_int_eq(r.reason, PH_REASON_SUPER_CONDITION_VALUE);
    r = eval1(defs, "sg", (ctxs_t){.person = "{\"beta\":false}"});
    CK_VALUE(r, PH_FLAG_FALSE);
    r = eval1(defs, "sg", (ctxs_t){.person = "{}"});
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE);
    /* an enrolment match is true without a variant, even on a multivariate
     * flag (the server's answer), with the "true" payload */
    r = eval1(defs, "eamv", (ctxs_t){.person = "{\"$feature_enrollment/eamv\":true}"});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_str_eq(r.payload, "2");
    ck_assert_int_eq(r.condition_index, 0);
    /* the holdout payload is payloads["holdout-<id>"] */
    r = eval1(defs, "hp", (ctxs_t){0});
    ck_assert_str_eq(r.variant, "holdout-3");
    ck_assert_str_eq(r.payload, "\"held\"");
}
END_TEST

/* ------------------------------------------------------------ cohorts */

START_TEST(cohorts) {
    const char *defs =
        "{\"flags\":["
        "{\"key\":\"c\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"id\",\"value\":98,\"type\":\"cohort\"}]}]}},"
        "{\"key\":\"notc\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"id\",\"value\":98,\"type\":\"cohort\",\"operator\":\"not_in\"}]}]}},"
        "{\"key\":\"static\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"id\",\"value\":404,\"type\":\"cohort\"}]}]}},"
        "{\"key\":\"nested\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"id\",\"value\":\"99\",\"type\":\"cohort\"}]}]}},"
        "{\"key\":\"empty\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"id\",\"value\":1,\"type\":\"cohort\"}]}]}},"
        "{\"key\":\"bad\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"id\",\"value\":2,\"type\":\"cohort\"}]}]}},"
        "{\"key\":\"loop\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"id\",\"value\":3,\"type\":\"cohort\"}]}]}},"
        "{\"key\":\"inner_empty\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"id\",\"value\":4,\"type\":\"cohort\"}]}]}}],"
        "\"cohorts\":{"
        /* 98: (country = US AND age > 18) OR (NOT plan = free) */
        "\"98\":{\"type\":\"OR\",\"values\":["
        "{\"type\":\"AND\",\"values\":[{\"key\":\"country\",\"value\":\"US\",\"type\":\"person\"},"
        "{\"key\":\"age\",\"operator\":\"gt\",\"value\":18,\"type\":\"person\"}]},"
        "{\"type\":\"AND\",\"values\":[{\"key\":\"plan\",\"value\":\"free\",\"type\":\"person\","
        "\"negation\":true}]}]},"
        /* 99: in 98 AND email icontains @corp */
        "\"99\":{\"type\":\"AND\",\"values\":[{\"key\":\"id\",\"value\":98,\"type\":\"cohort\"},"
        "{\"key\":\"email\",\"operator\":\"icontains\",\"value\":\"@corp\",\"type\":\"person\"}]},"
        "\"1\":{},"
        "\"2\":{\"type\":\"XOR\",\"values\":[{\"key\":\"a\",\"value\":1}]},"
        "\"3\":{\"type\":\"AND\",\"values\":[{\"key\":\"id\",\"value\":3,\"type\":\"cohort\"}]},"
        /* 4: an entry {} is the canonical empty group (true), not a filter without a key
         * (found by tests/flags_diff against posthog-python) */
        "\"4\":{\"type\":\"AND\",\"values\":[{},{\"key\":\"plan\",\"value\":\"pro\","
        "\"type\":\"person\"}]}}}";
    static const struct {
        const char *key, *props;
        int want; /* 1 true, 0 false, -1 inconclusive */
        ph_flag_cause_t cause;
    } t[] = {
        {"c", "{\"country\":\"us\",\"age\":30,\"plan\":\"free\"}", 1, 0},
        {"c", "{\"country\":\"de\",\"age\":30,\"plan\":\"free\"}", 0, 0},
        {"c", "{\"country\":\"de\",\"age\":30,\"plan\":\"pro\"}", 1, 0}, /* negated leaf */
        {"c", "{\"country\":\"us\",\"age\":10,\"plan\":\"pro\"}", 1, 0},
        /* OR: one decided hit beats an unknown one */
        {"c", "{\"plan\":\"pro\"}", 1, 0},
        /* AND: a decided miss beats an unknown one; then the OR is unknown */
        {"c", "{\"country\":\"de\"}", -1, PH_INCONCLUSIVE_MISSING_PROPERTY},
        {"notc", "{\"country\":\"de\",\"age\":30,\"plan\":\"free\"}", 1, 0},
        {"notc", "{\"country\":\"us\",\"age\":30,\"plan\":\"free\"}", 0, 0},
        /* a cohort the definitions do not carry is static (or gone) */
        {"static", "{}", -1, PH_INCONCLUSIVE_STATIC_COHORT},
        {"nested", "{\"country\":\"us\",\"age\":30,\"plan\":\"free\",\"email\":\"a@corp.com\"}", 1, 0},
        {"nested", "{\"country\":\"us\",\"age\":30,\"plan\":\"free\",\"email\":\"a@home.com\"}", 0, 0},
        {"nested", "{\"country\":\"de\",\"age\":30,\"plan\":\"free\",\"email\":\"a@corp.com\"}", 0, 0},
        {"empty", "{}", 1, 0},
        {"bad", "{\"a\":1}", -1, PH_INCONCLUSIVE_UNKNOWN_PROPERTY_TYPE},
        {"loop", "{}", -1, PH_INCONCLUSIVE_COHORT_DEPTH},
        {"inner_empty", "{\"plan\":\"pro\"}", 1, 0},
        {"inner_empty", "{\"plan\":\"free\"}", 0, 0},
    };
    ph_flags_defs_t *d = compile_ok(defs);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        ph_flag_result_t r = eval_in(d, t[i].key, (ctxs_t){.person = t[i].props});
        int got = r.value == PH_FLAG_TRUE ? 1 : r.value == PH_FLAG_FALSE ? 0 : -1;
        ck_assert_msg(got == t[i].want, "case %zu (%s %s): got %d cause %s", i, t[i].key,
                      t[i].props, got, posthog__flags_cause_name(r.cause));
        if (got < 0) ck_assert_int_eq(r.cause, t[i].cause);
    }
    ph_flag_result_t r = eval_in(d, "static", (ctxs_t){0});
    ck_assert_str_eq(r.detail, "404");
    posthog__flags_defs_unref(d);
}
END_TEST

/* ------------------------------------------------------------ dependencies */

START_TEST(dependencies) {
    const char *defs = DEFS(
        "{\"id\":1,\"key\":\"base\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"plan\",\"value\":\"pro\"}]}]}},"
        "{\"id\":2,\"key\":\"mv\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"plan\",\"value\":\"pro\"}],\"variant\":\"blue\"}],"
        "\"multivariate\":{\"variants\":[{\"key\":\"blue\",\"rollout_percentage\":100}]}}},"
        "{\"id\":3,\"key\":\"on-base\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"base\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true,"
        "\"dependency_chain\":[\"base\"]}]}]}},"
        "{\"id\":4,\"key\":\"off-base\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"base\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":false}]}]}},"
        "{\"id\":5,\"key\":\"on-blue\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"2\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":\"blue\"}]}]}},"
        "{\"id\":6,\"key\":\"on-mv-true\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"mv\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true}]}]}},"
        "{\"id\":7,\"key\":\"chain\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"on-base\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true}]}]}},"
        "{\"id\":8,\"key\":\"cyc-a\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"cyc-b\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true}]}]}},"
        "{\"id\":9,\"key\":\"cyc-b\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"cyc-a\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true}]}]}},"
        "{\"id\":10,\"key\":\"self\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"self\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true}]}]}},"
        "{\"id\":11,\"key\":\"on-cycle\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"cyc-a\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true}]}]}},"
        "{\"id\":12,\"key\":\"missing\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"ghost\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true}]}]}},"
        "{\"id\":13,\"key\":\"server-cycle\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"base\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true,"
        "\"dependency_chain\":[]}]}]}},"
        "{\"id\":14,\"key\":\"bad-op\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"base\",\"type\":\"flag\",\"operator\":\"exact\",\"value\":true}]},"
        "{\"rollout_percentage\":100}]}},"
        "{\"id\":15,\"key\":\"off\",\"active\":false,\"filters\":{\"groups\":[{\"rollout_percentage\":100}]}},"
        "{\"id\":16,\"key\":\"on-off\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"off\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":false}]}]}},"
        "{\"id\":17,\"key\":\"on-unknown\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"on-base\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true}]}]}}");
    ctxs_t pro = {.person = "{\"plan\":\"pro\"}"}, free_ = {.person = "{\"plan\":\"free\"}"};
    CK_VALUE(eval1(defs, "on-base", pro), PH_FLAG_TRUE);
    CK_VALUE(eval1(defs, "on-base", free_), PH_FLAG_FALSE);
    CK_VALUE(eval1(defs, "off-base", free_), PH_FLAG_TRUE);
    CK_VALUE(eval1(defs, "off-base", pro), PH_FLAG_FALSE);
    /* by flag id, and a variant value */
    CK_VALUE(eval1(defs, "on-blue", pro), PH_FLAG_TRUE);
    CK_VALUE(eval1(defs, "on-blue", free_), PH_FLAG_FALSE);
    CK_VALUE(eval1(defs, "on-mv-true", pro), PH_FLAG_TRUE); /* any variant is true */
    CK_VALUE(eval1(defs, "chain", pro), PH_FLAG_TRUE);
    CK_VALUE(eval1(defs, "chain", free_), PH_FLAG_FALSE);
    /* an inactive dependency evaluates to false */
    CK_VALUE(eval1(defs, "on-off", pro), PH_FLAG_TRUE);
    /* an inactive or deleted dependency is false, and the server does not
     * follow its own dependencies: a missing one there breaks nothing */
    const char *filtered = DEFS(
        "{\"id\":1,\"key\":\"off-broken\",\"active\":false,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"ghost\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true}]}]}},"
        "{\"id\":2,\"key\":\"gone\",\"active\":true,\"deleted\":true,\"filters\":{}},"
        "{\"id\":3,\"key\":\"on-off-broken\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"off-broken\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":false}]}]}},"
        "{\"id\":4,\"key\":\"on-gone\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"gone\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":false}]}]}}");
    CK_VALUE(eval1(filtered, "on-off-broken", pro), PH_FLAG_TRUE);
    CK_VALUE(eval1(filtered, "on-gone", pro), PH_FLAG_TRUE);
    ph_flag_result_t off = eval1(filtered, "off-broken", pro);
    CK_VALUE(off, PH_FLAG_FALSE);
    ck_assert_int_eq(off.reason, PH_REASON_FLAG_DISABLED);
    /* cycles, reaching a cycle, a missing dependency, the server's empty
     * chain: false, missing_dependency (the server fails closed) */
    static const char *broken[] = {"cyc-a", "cyc-b", "self", "on-cycle", "missing", "server-cycle"};
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        ph_flag_result_t r = eval1(defs, broken[i], pro);
        ck_assert_msg(r.value == PH_FLAG_FALSE && r.reason == PH_REASON_MISSING_DEPENDENCY,
                      "%s: %d/%s", broken[i], r.value, posthog__flags_reason_code(r.reason));
    }
    /* a malformed dependency filter never matches (the next condition does) */
    ph_flag_result_t r = eval1(defs, "bad-op", pro);
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_int_eq(r.condition_index, 1);
    /* an inconclusive dependency makes the dependant inconclusive */
    r = eval1(defs, "chain", (ctxs_t){.person = "{}"});
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE);
    ck_assert_int_eq(r.cause, PH_INCONCLUSIVE_DEPENDENCY);
    /* the dependency order puts every flag after what it reads */
    ph_flags_defs_t *d = compile_ok(defs);
    size_t n = posthog__flags_count(d);
    long pos[64];
    for (size_t i = 0; i < n; i++) pos[d->order[i]] = (long)i;
    ck_assert(pos[posthog__flags_find(d, "base")] < pos[posthog__flags_find(d, "on-base")]);
    ck_assert(pos[posthog__flags_find(d, "on-base")] < pos[posthog__flags_find(d, "chain")]);
    const ph_flag_t *chain = &d->flags[posthog__flags_find(d, "chain")];
    ck_assert_int_eq(chain->nclosure, 2);
    posthog__flags_defs_unref(d);
}
END_TEST

/* A chain longer than the stack memo: the single evaluation allocates it. */
START_TEST(dependencies_deep) {
    enum { N = 80 };
    size_t cap = 200 * N + 256;
    char *defs = malloc(cap);
    size_t len = (size_t)snprintf(defs, cap, "{\"flags\":[{\"key\":\"f0\",\"active\":true,"
                                             "\"filters\":{\"groups\":[{\"properties\":[{\"key\":"
                                             "\"plan\",\"value\":\"pro\"}]}]}}");
    for (int i = 1; i < N; i++)
        len += (size_t)snprintf(defs + len, cap - len,
                                ",{\"key\":\"f%d\",\"active\":true,\"filters\":{\"groups\":[{"
                                "\"properties\":[{\"key\":\"f%d\",\"type\":\"flag\",\"operator\":"
                                "\"flag_evaluates_to\",\"value\":true}]}]}}",
                                i, i - 1);
    snprintf(defs + len, cap - len, "]}");
    char last[16];
    snprintf(last, sizeof last, "f%d", N - 1);
    CK_VALUE(eval1(defs, last, (ctxs_t){.person = "{\"plan\":\"pro\"}"}), PH_FLAG_TRUE);
    CK_VALUE(eval1(defs, last, (ctxs_t){.person = "{\"plan\":\"free\"}"}), PH_FLAG_FALSE);
    free(defs);
}
END_TEST

/* ------------------------------------------------------------ the compiler */

START_TEST(compile_errors) {
    char err[256];
    static const struct {
        const char *body, *want;
    } t[] = {
        {"{\"flags\": [", "not valid JSON"},
        {"[]", "not a JSON object"},
        {"{}", "\"flags\" is missing or not an array"},
        {"{\"flags\": {}}", "\"flags\" is missing or not an array"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        err[0] = 0;
        ck_assert_ptr_null(posthog__flags_compile(t[i].body, strlen(t[i].body), err, sizeof err));
        ck_assert_msg(strstr(err, t[i].want), "%s -> %s", t[i].body, err);
    }
    ck_assert_ptr_null(posthog__flags_compile(NULL, 0, NULL, 0));
    /* a bad flag does not sink the others; keyless entries are skipped;
     * the first of duplicate keys wins */
    ph_flags_defs_t *d = compile_ok(
        "{\"flags\":[{\"key\":\"bad\",\"active\":true,\"filters\":7},{\"active\":true},"
        "{\"key\":\"ok\",\"active\":true,\"filters\":{\"groups\":[{\"rollout_percentage\":100}]}},"
        "{\"key\":\"ok\",\"active\":false}, 5, null],"
        "\"minimal_flag_called_events\":true}");
    ck_assert_int_eq(posthog__flags_count(d), 3);
    ck_assert(posthog__flags_minimal_events(d));
    ck_assert(!posthog__flags_uses_regex(d));
    ph_flag_result_t r = eval_in(d, "bad", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_INCONCLUSIVE);
    ck_assert_int_eq(r.cause, PH_INCONCLUSIVE_MALFORMED);
    r = eval_in(d, "ok", (ctxs_t){0});
    CK_VALUE(r, PH_FLAG_TRUE);
    ck_assert_str_eq(posthog__flags_key(d, 1), "ok");
    ck_assert_ptr_null(posthog__flags_key(d, 3));
    posthog__flags_defs_unref(d);
    posthog__flags_defs_unref(NULL);
    /* the names used in events and logs */
    ck_assert_str_eq(posthog__flags_reason_code(PH_REASON_OUT_OF_ROLLOUT_BOUND), "out_of_rollout_bound");
    ck_assert_str_eq(posthog__flags_reason_description(PH_REASON_CONDITION_MATCH), "Matched condition set");
    ck_assert_str_eq(posthog__flags_cause_name(PH_INCONCLUSIVE_STATIC_COHORT), "static_cohort");
    ck_assert_str_eq(posthog__flags_cause_name(PH_INCONCLUSIVE_MALFORMED), "malformed");
}
END_TEST

/* Helpers of values.c that the operator table reaches only partly. */
START_TEST(values_helpers) {
    /* relative months step one at a time and clamp the day */
    int64_t mar31;
    ck_assert_int_eq(posthog__flags_parse_date("2024-03-31T10:00:00Z", &mar31), 1);
    int64_t want;
    posthog__flags_parse_date("2024-02-29T10:00:00Z", &want);
    ck_assert(posthog__flags_relative_to_us(1, 'm', mar31 / 1000) == want);
    posthog__flags_parse_date("2024-01-29T10:00:00Z", &want);
    ck_assert(posthog__flags_relative_to_us(2, 'm', mar31 / 1000) == want);
    int64_t feb29;
    posthog__flags_parse_date("2024-02-29T00:00:00Z", &feb29);
    posthog__flags_parse_date("2023-02-28T00:00:00Z", &want);
    ck_assert(posthog__flags_relative_to_us(1, 'y', feb29 / 1000) == want);
    posthog__flags_parse_date("1969-12-31T23:00:00Z", &want); /* before the epoch */
    ck_assert(posthog__flags_relative_to_us(1, 'h', 0) == want);
    int32_t n;
    char unit;
    ck_assert_int_eq(posthog__flags_parse_relative("000h", &n, &unit), 1);
    ck_assert_int_eq(posthog__flags_parse_relative("9999y", &n, &unit), 1);
    ck_assert_int_eq(posthog__flags_parse_relative("10000y", &n, &unit), -1);
    ck_assert_int_eq(posthog__flags_parse_relative("1.2y", &n, &unit), 0);
    ck_assert_int_eq(posthog__flags_parse_relative("3x", &n, &unit), 0);
    ck_assert_int_eq(posthog__flags_parse_relative("-d", &n, &unit), 0);
    /* Rust's f64 grammar */
    double x;
    ck_assert(posthog__flags_parse_f64("1e3", &x) && x == 1000);
    ck_assert(posthog__flags_parse_f64(".5", &x) && x == 0.5);
    ck_assert(posthog__flags_parse_f64("5.", &x) && x == 5);
    ck_assert(posthog__flags_parse_f64("Infinity", &x) && isinf(x));
    ck_assert(!posthog__flags_parse_f64("0x10", &x));
    ck_assert(!posthog__flags_parse_f64("1e", &x));
    ck_assert(!posthog__flags_parse_f64("", &x));
    ck_assert(!posthog__flags_parse_f64("1 ", &x));
    /* the server's text of a number */
    char buf[64];
    cJSON *num = cJSON_CreateNumber(0.1);
    ck_assert_str_eq(posthog__flags_value_text(num, buf, sizeof buf), "0.1");
    cJSON_SetNumberValue(num, 42);
    ck_assert_str_eq(posthog__flags_value_text(num, buf, sizeof buf), "42");
    cJSON_Delete(num);
    /* regex translation */
    char out[128];
    bool icase;
    ck_assert_int_eq(posthog__flags_regex_translate("[a\\-z]", out, sizeof out, &icase), 1);
    ck_assert_str_eq(out, "[az-]");
    ck_assert_int_eq(posthog__flags_regex_translate("[^\\s\\d]", out, sizeof out, &icase), 1);
    ck_assert_str_eq(out, "[^[:space:]0-9]");
    ck_assert_int_eq(posthog__flags_regex_translate("a\\/b", out, sizeof out, &icase), 1);
    ck_assert_str_eq(out, "a/b");
    ck_assert_int_eq(posthog__flags_regex_translate("a*+", out, sizeof out, &icase), 0);
    ck_assert_int_eq(posthog__flags_regex_translate("\\bword", out, sizeof out, &icase), 0);
    ck_assert_int_eq(posthog__flags_regex_translate("(?<=a)b", out, sizeof out, &icase), 0);
    ck_assert_int_eq(posthog__flags_regex_translate("a)", out, sizeof out, &icase), -1);
    ck_assert_int_eq(posthog__flags_regex_translate("[abc", out, sizeof out, &icase), -1);
    ck_assert_int_eq(posthog__flags_regex_translate("abc\\", out, sizeof out, &icase), -1);
    ck_assert_int_eq(posthog__flags_regex_translate("aaaaaaaa", out, 4, &icase), 0); /* too long */
}
END_TEST

/* ------------------------------------------------------------ the store */

START_TEST(store_publish_and_retire) {
    ph_flags_store_t *s = posthog__flags_store_new();
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_null(posthog__flags_store_acquire(s)); /* nothing published yet */
    ph_flags_defs_t *v1 = compile_ok(DEFS("{\"key\":\"a\",\"active\":true,\"filters\":{}}"));
    ck_assert_int_eq(posthog__flags_store_publish(s, v1), 1);
    const ph_flags_defs_t *r1 = posthog__flags_store_acquire(s);
    ck_assert_ptr_eq(r1, v1);
    /* a reader keeps its version across a publish; the last release frees it
     * (ASan/valgrind check that nothing leaks and nothing is used after free) */
    ph_flags_defs_t *v2 = compile_ok(DEFS("{\"key\":\"b\",\"active\":true,\"filters\":{}}"));
    ck_assert_int_eq(posthog__flags_store_publish(s, v2), 2);
    ck_assert_int_eq(posthog__flags_find(r1, "a"), 0);
    const ph_flags_defs_t *r2 = posthog__flags_store_acquire(s);
    ck_assert_ptr_eq(r2, v2);
    posthog__flags_store_release(s, r1);
    posthog__flags_store_release(s, r2);
    /* unpublish (a 402 answer clears the definitions) */
    ck_assert_int_eq(posthog__flags_store_publish(s, NULL), 3);
    ck_assert_ptr_null(posthog__flags_store_acquire(s));
    ck_assert_int_eq(posthog__flags_store_pending(s), 0);
    posthog__flags_store_publish(s, compile_ok(DEFS("{\"key\":\"c\",\"active\":true}")));
    posthog__flags_store_free(s); /* frees the current version */
    posthog__flags_store_free(NULL);
}
END_TEST

/* Readers evaluate while a writer publishes new versions. Each version
 * holds one flag whose variant names its generation: a reader must see
 * generations that never go backwards and always a consistent version.
 * Under TSan this is the data-race check of the store and the matcher. */
enum { READERS = 4, VERSIONS = 300 };

typedef struct {
    ph_flags_store_t *s;
    _Atomic int *stop;
    long evaluations;
    int max_gen;
    bool bad;
} reader_t;

static void *reader(void *arg) {
    reader_t *r = arg;
    cJSON *props = cJSON_Parse("{\"email\":\"someone@example.com\"}");
    ph_flags_ctx_t ctx = {"reader", NULL, props, NULL, NULL, 0, NULL};
    int last = 0;
    while (!atomic_load(r->stop) || r->evaluations < 1000) {
        const ph_flags_defs_t *d = posthog__flags_store_acquire(r->s);
        if (!d) continue;
        ph_flag_result_t res;
        posthog__flags_evaluate(d, "gen", &ctx, &res);
        int gen = -1;
        if (res.value != PH_FLAG_VARIANT || sscanf(res.variant, "g%d", &gen) != 1 || gen < last)
            r->bad = true;
        if (gen > last) last = gen;
        ph_flag_result_t all[2];
        posthog__flags_evaluate_all(d, &ctx, all);
        if (all[1].value != PH_FLAG_TRUE) r->bad = true; /* the regex flag */
        posthog__flags_store_release(r->s, d);
        r->evaluations++;
    }
    r->max_gen = last;
    cJSON_Delete(props);
    return NULL;
}

static void *reader_any(void *arg) {
    reader_t *r = arg;
    ph_flags_ctx_t ctx = {"reader", NULL, NULL, NULL, NULL, 0, NULL};
    while (!atomic_load(r->stop) || r->evaluations < 100) {
        const ph_flags_defs_t *d = posthog__flags_store_acquire(r->s);
        if (!d) continue;
        ph_flag_result_t res;
        posthog__flags_evaluate(d, "gen", &ctx, &res);
        int id, n;
        if (res.value != PH_FLAG_VARIANT || sscanf(res.variant, "p%d-%d", &id, &n) != 2)
            r->bad = true;
        posthog__flags_store_release(r->s, d);
        r->evaluations++;
    }
    return NULL;
}

START_TEST(store_concurrent_readers) {
    ph_flags_store_t *s = posthog__flags_store_new();
    _Atomic int stop = 0;
    reader_t rs[READERS];
    pthread_t th[READERS];
    char body[1024];
    for (int v = 1; v <= VERSIONS; v++) {
        snprintf(body, sizeof body,
                 "{\"flags\":[{\"key\":\"gen\",\"active\":true,\"filters\":{"
                 "\"groups\":[{\"rollout_percentage\":100,\"variant\":\"g%d\"}],"
                 "\"multivariate\":{\"variants\":[{\"key\":\"g%d\",\"rollout_percentage\":100}]}}},"
                 "{\"key\":\"re\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":[{\"key\":"
                 "\"email\",\"operator\":\"regex\",\"value\":\"@example\\\\.com$\"}]}]}}]}",
                 v, v);
        posthog__flags_store_publish(s, compile_ok(body));
        if (v == 1)
            for (int i = 0; i < READERS; i++) {
                rs[i] = (reader_t){s, &stop, 0, 0, false};
                ck_assert_int_eq(pthread_create(&th[i], NULL, reader, &rs[i]), 0);
            }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < READERS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(!rs[i].bad, "reader %d saw an inconsistent version", i);
        ck_assert_int_ge(rs[i].evaluations, 1000);
        ck_assert_int_le(rs[i].max_gen, VERSIONS);
    }
    /* every old version is freed once its readers are gone */
    posthog__flags_store_publish(s, NULL);
    ck_assert_int_eq(posthog__flags_store_pending(s), 0);
    posthog__flags_store_free(s);
}
END_TEST

/* Several publishers at once, readers in between: no lock anywhere, every
 * version freed exactly once (ASan), no race (TSan), nothing left over. */
typedef struct {
    ph_flags_store_t *s;
    int id;
} publisher_t;

static void *publisher(void *arg) {
    publisher_t *p = arg;
    char body[512];
    for (int v = 0; v < 150; v++) {
        snprintf(body, sizeof body,
                 "{\"flags\":[{\"key\":\"gen\",\"active\":true,\"filters\":{"
                 "\"groups\":[{\"variant\":\"p%d-%d\"}],\"multivariate\":{\"variants\":["
                 "{\"key\":\"p%d-%d\",\"rollout_percentage\":100}]}}}]}",
                 p->id, v, p->id, v);
        ph_flags_defs_t *d = posthog__flags_compile(body, strlen(body), NULL, 0);
        if (d) posthog__flags_store_publish(p->s, d);
    }
    return NULL;
}

START_TEST(store_concurrent_publishers) {
    ph_flags_store_t *s = posthog__flags_store_new();
    _Atomic int stop = 0;
    reader_t rs[2];
    pthread_t rt[2], pt[2];
    publisher_t ps[2] = {{s, 0}, {s, 1}};
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&pt[i], NULL, publisher, &ps[i]), 0);
    for (int i = 0; i < 2; i++) {
        rs[i] = (reader_t){s, &stop, 0, 0, false};
        ck_assert_int_eq(pthread_create(&rt[i], NULL, reader_any, &rs[i]), 0);
    }
    for (int i = 0; i < 2; i++) pthread_join(pt[i], NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(rt[i], NULL);
        ck_assert_msg(!rs[i].bad, "reader %d saw an inconsistent version", i);
    }
    ck_assert_int_eq(posthog__flags_store_publish(s, NULL), 301);
    ck_assert_int_eq(posthog__flags_store_pending(s), 0);
    posthog__flags_store_free(s);
}
END_TEST

/* fork(): the child reads and publishes; a hazard slot a parent thread
 * held at fork time is cleared by the child hook. */
START_TEST(store_fork) {
    ph_flags_store_t *s = posthog__flags_store_new();
    posthog__flags_store_publish(s, compile_ok(DEFS("{\"key\":\"a\",\"active\":true,"
                                                    "\"filters\":{\"groups\":[{}]}}")));
    /* simulate a reader of the parent caught between its load and its increment */
    const ph_flags_defs_t *cur = posthog__flags_store_acquire(s);
    atomic_store(&s->hz[5].p, (ph_flags_defs_t *)cur);
    pid_t pid = fork();
    if (pid == 0) {
        posthog__flags_store_fork_child(s);
        int ok = atomic_load(&s->hz[5].p) == NULL;
        const ph_flags_defs_t *d = posthog__flags_store_acquire(s);
        ph_flags_ctx_t ctx = {"child", NULL, NULL, NULL, NULL, 0, NULL};
        ph_flag_result_t r;
        posthog__flags_evaluate(d, "a", &ctx, &r);
        ok = ok && r.value == PH_FLAG_TRUE;
        posthog__flags_store_release(s, d);
        posthog__flags_store_publish(s, NULL);
        ok = ok && posthog__flags_store_acquire(s) == NULL;
        /* free what the child owns (under valgrind its own leak check
         * decides the child's exit status) */
        posthog__flags_store_release(s, cur);
        posthog__flags_store_free(s);
        _exit(ok ? 0 : 1);
    }
    ck_assert_int_gt(pid, 0);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    atomic_store(&s->hz[5].p, NULL);
    posthog__flags_store_release(s, cur);
    posthog__flags_store_free(s);
}
END_TEST

/* The promise: evaluation takes no lock and, for flags without
 * regexes, makes no allocation (compile allocates; evaluation only reads). */
START_TEST(evaluation_allocates_nothing) {
#ifndef PH_WRAP_MALLOC
    return; /* needs GNU ld's --wrap (Linux) */
#else
    ph_flags_defs_t *d = compile_ok(
        "{\"flags\":["
        "{\"id\":1,\"key\":\"r\",\"active\":true,\"filters\":{\"groups\":[{\"rollout_percentage\":50}]}},"
        "{\"id\":2,\"key\":\"p\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"email\",\"operator\":\"icontains\",\"value\":\"@x.com\"},"
        "{\"key\":\"age\",\"operator\":\"gt\",\"value\":\"21\"},"
        "{\"key\":\"v\",\"operator\":\"semver_caret\",\"value\":\"1.2.0\"},"
        "{\"key\":\"seen\",\"operator\":\"is_date_after\",\"value\":\"-30d\"},"
        "{\"key\":\"plan\",\"value\":[\"pro\",\"team\"]},{\"key\":\"n\",\"value\":1.5}]}]}},"
        "{\"id\":3,\"key\":\"m\",\"active\":true,\"filters\":{\"groups\":[{}],\"multivariate\":"
        "{\"variants\":[{\"key\":\"a\",\"rollout_percentage\":50},{\"key\":\"b\",\"rollout_percentage\":50}]},"
        "\"payloads\":{\"a\":\"{}\"},\"holdout\":{\"id\":1,\"exclusion_percentage\":10}}},"
        "{\"id\":4,\"key\":\"c\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["
        "{\"key\":\"id\",\"value\":7,\"type\":\"cohort\"},"
        "{\"key\":\"m\",\"type\":\"flag\",\"operator\":\"flag_evaluates_to\",\"value\":true}]}]}},"
        "{\"id\":5,\"key\":\"g\",\"active\":true,\"filters\":{\"aggregation_group_type_index\":0,"
        "\"groups\":[{\"properties\":[{\"key\":\"$group_key\",\"value\":\"acme\",\"type\":\"group\","
        "\"group_type_index\":0}],\"rollout_percentage\":70}]}}],"
        "\"group_type_mapping\":{\"0\":\"company\"},"
        "\"cohorts\":{\"7\":{\"type\":\"OR\",\"values\":[{\"type\":\"AND\",\"values\":["
        "{\"key\":\"plan\",\"value\":\"pro\",\"negation\":true}]},{\"key\":\"age\",\"operator\":\"lt\","
        "\"value\":100}]}}}");
    cJSON *props = cJSON_Parse("{\"email\":\"A@X.COM\",\"age\":30,\"v\":\"1.4.2\","
                               "\"seen\":\"2024-06-14T00:00:00Z\",\"plan\":\"pro\",\"n\":1.5}");
    cJSON *groups = cJSON_Parse("{\"company\":\"acme\"}");
    cJSON *gprops = cJSON_Parse("{\"company\":{}}");
    ph_flags_store_t *s = posthog__flags_store_new();
    posthog__flags_store_publish(s, d);
    ph_flag_result_t all[5], one;
    long before = atomic_load(&allocs);
    for (int i = 0; i < 200; i++) {
        char id[32];
        snprintf(id, sizeof id, "user-%d", i);
        ph_flags_ctx_t ctx = {id, NULL, props, groups, gprops, NOW_MS, NULL};
        const ph_flags_defs_t *v = posthog__flags_store_acquire(s);
        posthog__flags_evaluate_all(v, &ctx, all);
        for (size_t k = 0; k < 5; k++) posthog__flags_evaluate_index(v, k, &ctx, &one);
        posthog__flags_evaluate(v, "nope", &ctx, &one);
        posthog__flags_store_release(s, v);
    }
    long used = atomic_load(&allocs) - before;
    ck_assert_int_eq(all[1].value, PH_FLAG_TRUE); /* the cases really ran */
    ck_assert_int_eq(all[3].value == PH_FLAG_INCONCLUSIVE, 0);
    ck_assert_msg(used == 0, "evaluation allocated %ld times", used);
    /* and the counter works: compiling allocates */
    posthog__flags_defs_unref(compile_ok(DEFS("{\"key\":\"x\",\"active\":true}")));
    ck_assert_int_gt(atomic_load(&allocs) - before, 0);
    posthog__flags_store_free(s);
    cJSON_Delete(props);
    cJSON_Delete(groups);
    cJSON_Delete(gprops);
#endif
}
END_TEST

/* ------------------------------------------------------------ main */

/* Person properties as text: the arena tree is the tree cJSON builds
 * (printed the same), in the arena and, when it does not fit, on the heap;
 * text that is not one JSON object is flagged, not guessed at. */
START_TEST(lazy_tree_equals_cjson)
{
    static char many[8192];
    size_t n = 0;
    n += (size_t)snprintf(many + n, sizeof many - n, "{");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "%s\"k%d\":[%d,\"v\\u00e9%d\",{\"x\":null}]",
                              i ? "," : "", i, i * 7 - 300, i);
    snprintf(many + n, sizeof many - n, "}");
    const char *texts[] = {
        "{}", " { } ", "{\"a\":1}", "{\"plan\":\"pro\",\"age\":23,\"ok\":true,\"no\":false,\"z\":null}",
        "{\"e\\\"sc\":\"a\\\\\",\"t\":\"\\t\\n\\r\\b\\f\\/\",\"u\":\"\\u00e9\\ud83d\\ude00\"}",
        "{\"q\":\"say \\\"hi\\\"\",\"bs\":\"\\\\\\\\\",\"mix\":\"a\\\\\\\"b\"}",
        "{\"n\":[-0,0.5,-1.25e-3,1E+2,123456789012345,1234567890123456789,9007199254740993,"
        "2147483648,-2147483649,1e308,-1e-308,0.1]}",
        "{\"nested\":{\"a\":[1,[2,[3,{\"b\":[]}]]],\"c\":{}},\"dup\":1,\"dup\":2}",
        "{ \"sp\" :\t\"x\" ,\n\"y\"\r: [ 1 , 2 ] }",
        "{\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
        many,
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        cJSON *ref = cJSON_Parse(texts[i]);
        ck_assert_ptr_nonnull(ref);
        char *want = cJSON_PrintUnformatted(ref);
        for (int checked = 0; checked < 2; checked++) {
            ph_flags_lazy_t *lz = malloc(sizeof *lz);
            ck_assert_ptr_nonnull(lz);
            posthog__flags_lazy_init(lz, texts[i], strlen(texts[i]), checked);
            const cJSON *t = posthog__flags_lazy_get(lz);
            ck_assert_msg(t != NULL && !lz->invalid, "%s", texts[i]);
            ck_assert_ptr_eq(posthog__flags_lazy_get(lz), t); /* parsed once */
            ck_assert_int_eq(lz->heap != NULL, texts[i] == many); /* only the big one spills */
            char *got = cJSON_PrintUnformatted(t);
            ck_assert_str_eq(got, want);
            /* cJSON's own accessors work on it */
            if (texts[i] == many) {
                ck_assert_int_eq(cJSON_GetArraySize(t), 100);
                const cJSON *k99 = cJSON_GetObjectItemCaseSensitive(t, "k99");
                ck_assert_int_eq(cJSON_GetArrayItem(k99, 0)->valueint, 99 * 7 - 300);
            }
            cJSON_free(got);
            posthog__flags_lazy_free(lz);
            free(lz);
        }
        cJSON_free(want);
        cJSON_Delete(ref);
    }
    /* numbers: valuedouble exact, valueint saturating as cJSON's */
    ph_flags_lazy_t *lz = malloc(sizeof *lz);
    const char *nums = "{\"a\":9007199254740993,\"b\":1e400,\"c\":-3000000000,\"d\":2.5}";
    cJSON *ref = cJSON_Parse(nums);
    posthog__flags_lazy_init(lz, nums, strlen(nums), true);
    const cJSON *t = posthog__flags_lazy_get(lz);
    for (const cJSON *a = ref->child, *b = t->child; a || b; a = a->next, b = b->next) {
        ck_assert(a && b);
        ck_assert_str_eq(a->string, b->string);
        ck_assert(a->valuedouble == b->valuedouble || (a->valuedouble != a->valuedouble));
        ck_assert_int_eq(a->valueint, b->valueint);
    }
    cJSON_Delete(ref);
    posthog__flags_lazy_free(lz);
    /* not one JSON object: flagged when read (unless the caller vouched) */
    const char *bad[] = {"", "[]", "\"x\"", "{\"a\":1", "{\"a\":1}}", "{a:1}", "{\"a\":\"\xff\"}",
                         "{\"a\":01}", "{\"a\":1,}", "{\"a\":\"\\x\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        posthog__flags_lazy_init(lz, bad[i], strlen(bad[i]), false);
        ck_assert_msg(posthog__flags_lazy_get(lz) == NULL && lz->invalid, "%s", bad[i]);
        posthog__flags_lazy_free(lz);
    }
    posthog__flags_lazy_init(lz, NULL, 0, false);
    ck_assert_ptr_null(posthog__flags_lazy_get(lz));
    ck_assert(!lz->invalid);
    free(lz);
}
END_TEST

static Suite *flags_suite(void) {
    Suite *s = suite_create("flags");
    TCase *t = tcase_create("flags");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, sha1_vectors);
    tcase_add_test(t, lazy_tree_equals_cjson);
    tcase_add_test(t, sha1_paths_agree);
    tcase_add_test(t, bucketing_hash_vectors);
    tcase_add_test(t, consistency_simple);
    tcase_add_test(t, consistency_multivariate);
    tcase_add_test(t, op_exact_is_not);
    tcase_add_test(t, op_exact_matching_version);
    tcase_add_test(t, op_presence);
    tcase_add_test(t, op_strings);
    tcase_add_test(t, op_regex);
    tcase_add_test(t, op_numeric);
    tcase_add_test(t, op_semver);
    tcase_add_test(t, op_dates);
    tcase_add_test(t, op_misc);
    tcase_add_test(t, flag_basics);
    tcase_add_test(t, flag_fractional_rollout);
    tcase_add_test(t, flag_variants_and_payloads);
    tcase_add_test(t, flag_payload_plain_text_is_json_text);
    tcase_add_test(t, flag_variant_table);
    tcase_add_test(t, flag_condition_order_and_early_exit);
    tcase_add_test(t, flag_inconclusive_then_match);
    tcase_add_test(t, flag_device_bucketing);
    tcase_add_test(t, flag_groups);
    tcase_add_test(t, flag_holdout_and_early_access);
    tcase_add_test(t, cohorts);
    tcase_add_test(t, dependencies);
    tcase_add_test(t, dependencies_deep);
    tcase_add_test(t, compile_errors);
    tcase_add_test(t, values_helpers);
    tcase_add_test(t, store_publish_and_retire);
    tcase_add_test(t, store_concurrent_readers);
    tcase_add_test(t, store_concurrent_publishers);
    tcase_add_test(t, store_fork);
    tcase_add_test(t, evaluation_allocates_nothing);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(flags_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
