/*
 * Unit tests of remote feature flags (src/flags/remote.c) and the
 * $feature_flag_called dedupe tracker (src/flags/exposure.c):
 *  - the /flags answer in both shapes (v2 "flags", v1 "featureFlags" with
 *    "featureFlagPayloads"), payload decoding, failed flags, quotaLimited,
 *    errorsWhileComputingFlags, requestId/evaluatedAt/minimal gate, and
 *    bodies that are not flags answers;
 *  - the $feature_flag_error spelling;
 *  - the tracker: once per fingerprint, per distinct id, forget, the bound
 *    with eviction of the oldest id, "no dedupe" at size 0, and concurrent
 *    check-and-add reporting each exposure exactly once.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exposure.h"
#include "remote.h"

static int parse(const char *body, ph_flags_answer_t *a) {
    return posthog__flags_parse_answer(body, strlen(body), a);
}

static const ph_flag_eval_t *find(const ph_flags_answer_t *a, const char *key) {
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->flags[i].key, key)) return &a->flags[i];
    return NULL;
}

START_TEST(v2_shape) {
    ph_flags_answer_t a;
    ck_assert_int_eq(
        parse("{\"flags\":{"
              "\"bool-on\":{\"key\":\"bool-on\",\"enabled\":true,\"variant\":null,"
              "\"reason\":{\"code\":\"condition_match\",\"condition_index\":0,"
              "\"description\":\"Matched condition set 1\"},"
              "\"metadata\":{\"id\":12,\"version\":3,\"payload\":\"{\\\"a\\\":1}\","
              "\"has_experiment\":false}},"
              "\"multi\":{\"key\":\"multi\",\"enabled\":true,\"variant\":\"test\","
              "\"reason\":{\"code\":\"condition_match\"},\"metadata\":{\"id\":13,\"payload\":null}},"
              "\"off\":{\"key\":\"off\",\"enabled\":false,\"variant\":null},"
              "\"broken\":{\"key\":\"broken\",\"enabled\":false,\"failed\":true}},"
              "\"errorsWhileComputingFlags\":false,\"requestId\":\"req-1\","
              "\"evaluatedAt\":1766000000000,\"minimalFlagCalledEvents\":true}",
              &a),
        0);
    ck_assert_uint_eq(a.n, 3);
    const ph_flag_eval_t *b = find(&a, "bool-on");
    ck_assert_ptr_nonnull(b);
    ck_assert(b->enabled);
    ck_assert_ptr_null(b->variant);
    ck_assert_str_eq(b->reason, "Matched condition set 1");
    ck_assert_str_eq(b->payload, "{\"a\":1}");
    ck_assert_int_eq(b->id, 12);
    ck_assert_int_eq(b->version, 3);
    ck_assert_int_eq(b->has_experiment, 0);
    const ph_flag_eval_t *m = find(&a, "multi");
    ck_assert(m->enabled);
    ck_assert_str_eq(m->variant, "test");
    ck_assert_str_eq(m->reason, "condition_match"); /* the code when no description */
    ck_assert_ptr_null(m->payload);
    ck_assert_int_eq(m->version, -1);
    ck_assert_int_eq(m->has_experiment, -1);
    ck_assert(!find(&a, "off")->enabled);
    ck_assert_ptr_null(find(&a, "broken")); /* failed: not a value */
    ck_assert_uint_eq(a.nfailed, 1);
    ck_assert_str_eq(a.failed[0], "broken");
    ck_assert_uint_eq(a.errors, PH_FERR_EVALUATION_FAILED);
    ck_assert_str_eq(a.request_id, "req-1");
    ck_assert_int_eq(a.evaluated_at, 1766000000000LL);
    ck_assert(a.minimal_events);
    posthog__flags_answer_free(&a);
}
END_TEST

/* Payloads are JSON text: a string payload holding JSON is that JSON; plain
 * text, also text that starts like JSON, is a JSON string. */
START_TEST(payload_text_is_json) {
    ph_flags_answer_t a;
    ck_assert_int_eq(
        parse("{\"flags\":{"
              "\"j\":{\"key\":\"j\",\"enabled\":true,\"metadata\":{\"payload\":\"[1, 2]\"}},"
              "\"t\":{\"key\":\"t\",\"enabled\":true,\"metadata\":{\"payload\":\"plain\"}},"
              "\"n\":{\"key\":\"n\",\"enabled\":true,\"metadata\":{\"payload\":\"3 apples\"}},"
              "\"o\":{\"key\":\"o\",\"enabled\":true,\"metadata\":{\"payload\":{\"x\":true}}}}}",
              &a),
        0);
    ck_assert_str_eq(find(&a, "j")->payload, "[1, 2]");
    ck_assert_str_eq(find(&a, "t")->payload, "\"plain\"");
    ck_assert_str_eq(find(&a, "n")->payload, "\"3 apples\"");
    ck_assert_str_eq(find(&a, "o")->payload, "{\"x\":true}");
    posthog__flags_answer_free(&a);
}
END_TEST

START_TEST(v1_shape) {
    ph_flags_answer_t a;
    ck_assert_int_eq(parse("{\"featureFlags\":{\"a\":true,\"b\":\"variant-a\",\"c\":false,"
                           "\"junk\":17},"
                           "\"featureFlagPayloads\":{\"a\":\"{\\\"x\\\":[1,2]}\",\"b\":\"plain text\","
                           "\"c\":{\"obj\":true}},\"errorsWhileComputingFlags\":true}",
                           &a),
                     0);
    ck_assert_uint_eq(a.n, 3);
    ck_assert(find(&a, "a")->enabled);
    ck_assert_ptr_null(find(&a, "a")->variant);
    ck_assert_str_eq(find(&a, "a")->payload, "{\"x\":[1,2]}");
    ck_assert_str_eq(find(&a, "b")->variant, "variant-a");
    ck_assert(find(&a, "b")->enabled);
    /* a string that is not JSON is itself the payload: encoded as a JSON string */
    ck_assert_str_eq(find(&a, "b")->payload, "\"plain text\"");
    ck_assert_str_eq(find(&a, "c")->payload, "{\"obj\":true}");
    ck_assert(!find(&a, "c")->enabled);
    ck_assert_ptr_null(find(&a, "junk"));
    ck_assert_uint_eq(a.errors, PH_FERR_ERRORS_WHILE_COMPUTING);
    ck_assert_ptr_null(a.request_id);
    ck_assert_int_eq(a.evaluated_at, -1);
    posthog__flags_answer_free(&a);
}
END_TEST

START_TEST(quota_limited_clears) {
    ph_flags_answer_t a;
    ck_assert_int_eq(parse("{\"flags\":{\"a\":{\"enabled\":true}},\"quotaLimited\":[\"feature_flags\"]}", &a), 0);
    ck_assert_uint_eq(a.n, 0);
    ck_assert_uint_eq(a.errors, PH_FERR_QUOTA_LIMITED);
    posthog__flags_answer_free(&a);
    /* another product's quota says nothing about flags */
    ck_assert_int_eq(parse("{\"flags\":{\"a\":{\"enabled\":true}},\"quotaLimited\":[\"recordings\"]}", &a), 0);
    ck_assert_uint_eq(a.n, 1);
    ck_assert_uint_eq(a.errors, 0);
    posthog__flags_answer_free(&a);
}
END_TEST

START_TEST(not_an_answer) {
    static const char *bodies[] = {
        "", "<html><body>Sign in to the Wi-Fi</body></html>", "[]", "{}", "{\"flags\":[]}",
        "{\"featureFlags\":null}", "{\"status\":1}", "{\"flags\":{\"a\":{\"enabled\":true}", "null",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        ph_flags_answer_t a;
        ck_assert_msg(parse(bodies[i], &a) == -1, "accepted: %s", bodies[i]);
        ck_assert_uint_eq(a.n, 0);
        ck_assert_ptr_null(a.flags);
        posthog__flags_answer_free(&a);
    }
    ph_flags_answer_t a;
    ck_assert_int_eq(parse("{\"featureFlags\":{}}", &a), 0); /* empty is an answer */
    ck_assert_uint_eq(a.n, 0);
    posthog__flags_answer_free(&a);
}
END_TEST

START_TEST(error_strings) {
    char buf[200];
    posthog__flags_error_string(0, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "");
    posthog__flags_error_string(PH_FERR_TIMEOUT | PH_FERR_QUOTA_LIMITED, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "quota_limited,timeout");
    posthog__flags_error_string(PH_FERR_API | PH_FERR_ERRORS_WHILE_COMPUTING, 503, buf, sizeof buf);
    ck_assert_str_eq(buf, "errors_while_computing_flags,api_error_503");
    posthog__flags_error_string(PH_FERR_FLAG_MISSING | PH_FERR_CONNECTION | PH_FERR_UNKNOWN |
                                    PH_FERR_EVALUATION_FAILED,
                                0, buf, sizeof buf);
    ck_assert_str_eq(buf, "flag_missing,connection_error,unknown_error,evaluation_failed");
    posthog__flags_error_string(PH_FERR_TIMEOUT | PH_FERR_CONNECTION, 0, buf, 10); /* no overflow */
    ck_assert_str_eq(buf, "timeout");
}
END_TEST

/* ---------------------------------------------------------------- tracker */

START_TEST(tracker_once) {
    ph_exposure_t *x = posthog__exposure_new(100);
    ck_assert(posthog__exposure_first(x, "u1", 1));
    ck_assert(!posthog__exposure_first(x, "u1", 1));
    ck_assert(posthog__exposure_first(x, "u1", 2));
    ck_assert(posthog__exposure_first(x, "u2", 1));
    ck_assert(!posthog__exposure_first(x, "u2", 1));
    posthog__exposure_forget(x, "u2", 1);
    ck_assert(posthog__exposure_first(x, "u2", 1));
    ck_assert_uint_eq(posthog__exposure_ids(x), 2);
    posthog__exposure_clear(x);
    ck_assert_uint_eq(posthog__exposure_ids(x), 0);
    ck_assert(posthog__exposure_first(x, "u1", 1));
    posthog__exposure_free(x);

    ph_exposure_t *off = posthog__exposure_new(0);
    ck_assert(posthog__exposure_first(off, "u1", 1));
    ck_assert(posthog__exposure_first(off, "u1", 1));
    posthog__exposure_free(off);
}
END_TEST

START_TEST(tracker_bound) {
    ph_exposure_t *x = posthog__exposure_new(1000);
    char did[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(did, sizeof did, "user-%d", i);
        ck_assert(posthog__exposure_first(x, did, 7));
    }
    /* bounded (16 shards of 1000/16 + 1) */
    ck_assert_uint_le(posthog__exposure_ids(x), 1000 + 16);
    ck_assert_uint_ge(posthog__exposure_ids(x), 900);
    /* the newest are remembered, the oldest forgotten (reported again) */
    ck_assert(!posthog__exposure_first(x, "user-19999", 7));
    ck_assert(posthog__exposure_first(x, "user-0", 7));
    posthog__exposure_free(x);
}
END_TEST

#define RACERS 4
static ph_exposure_t *race_x;
static int race_wins[RACERS];

static void *racer(void *arg) {
    int id = (int)(intptr_t)arg;
    char did[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(did, sizeof did, "u%d", i % 500);
        if (posthog__exposure_first(race_x, did, (uint64_t)(i % 7))) race_wins[id]++;
    }
    return NULL;
}

START_TEST(tracker_concurrent_once) {
    race_x = posthog__exposure_new(50000);
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++) pthread_create(&th[i], NULL, racer, (void *)(intptr_t)i);
    for (int i = 0; i < RACERS; i++) pthread_join(th[i], NULL);
    int total = 0;
    for (int i = 0; i < RACERS; i++) total += race_wins[i];
    /* i % 500 and i % 7 over 0..4999: each (did, fp) pair once, whoever won */
    int pairs = 0;
    static char seen[500][7];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 5000; i++)
        if (!seen[i % 500][i % 7]) {
            seen[i % 500][i % 7] = 1;
            pairs++;
        }
    ck_assert_int_eq(total, pairs);
    posthog__exposure_free(race_x);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("flags_remote");
    TCase *t = tcase_create("answer");
    tcase_add_test(t, v2_shape);
    tcase_add_test(t, v1_shape);
    tcase_add_test(t, payload_text_is_json);
    tcase_add_test(t, quota_limited_clears);
    tcase_add_test(t, not_an_answer);
    tcase_add_test(t, error_strings);
    suite_add_tcase(s, t);
    t = tcase_create("tracker");
    tcase_add_test(t, tracker_once);
    tcase_add_test(t, tracker_bound);
    tcase_add_test(t, tracker_concurrent_once);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
