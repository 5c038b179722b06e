/*
 * Integration: posthog_flags_peek reads a snapshot's flags without
 * capturing $feature_flag_called (what the bindings' get_all_flags,
 * capture(flags=...) and filtered views need), while posthog_flags_get
 * still captures it once.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support_client.h"

static int count_called(ph_ingest_t *srv)
{
    cJSON *ev = it_events(srv);
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ev) {
        const char *name = it_str(e, "event");
        if (name && !strcmp(name, "$feature_flag_called"))
            n++;
    }
    cJSON_Delete(ev);
    return n;
}

START_TEST(test_peek_is_silent)
{
    ph_ingest_t *srv = it_server(NULL);
    ck_assert_int_eq(
        ph_ingest_set_flags(
            srv, "{\"default\":{\"status\":200,\"body\":{\"flags\":{"
                 "\"beta\":{\"key\":\"beta\",\"enabled\":true,\"variant\":null,"
                 "\"reason\":{\"code\":\"condition_match\",\"description\":\"Matched condition set 1\"},"
                 "\"metadata\":{\"id\":7,\"version\":2,\"payload\":\"{\\\"a\\\":1}\"}},"
                 "\"exp\":{\"key\":\"exp\",\"enabled\":true,\"variant\":\"test\"},"
                 "\"off\":{\"key\":\"off\",\"enabled\":false,\"variant\":null}},"
                 "\"requestId\":\"r1\"}}}"),
        0);
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", "v0");
    it_set(o, "flush_interval_ms", "60000");
    posthog_client_t *c = it_client(o);

    posthog_flags_t *f = NULL;
    ck_assert_int_eq(posthog_evaluate_flags(c, "u1", NULL, &f), POSTHOG_OK);
    ck_assert_uint_eq(posthog_flags_count(f), 3);

    posthog_flag_t r;
    ck_assert_int_eq(posthog_flags_peek(f, "beta", &r), 1);
    ck_assert_str_eq(r.key, "beta");
    ck_assert_int_eq(r.enabled, 1);
    ck_assert_ptr_null(r.variant);
    ck_assert_str_eq(r.payload_json, "{\"a\":1}");
    ck_assert_str_eq(r.reason, "Matched condition set 1");
    ck_assert_int_eq(r.id, 7);
    ck_assert_int_eq(r.version, 2);
    ck_assert_int_eq(posthog_flags_peek(f, "exp", &r), 1);
    ck_assert_str_eq(r.variant, "test");
    ck_assert_int_eq(posthog_flags_peek(f, "off", &r), 1);
    ck_assert_int_eq(r.enabled, 0);
    /* a flag the snapshot does not have: 0, key only */
    ck_assert_int_eq(posthog_flags_peek(f, "nope", &r), 0);
    ck_assert_str_eq(r.key, "nope");
    ck_assert_int_eq(r.enabled, 0);
    ck_assert_int_eq(r.id, -1);
    /* NULL arguments are harmless */
    ck_assert_int_eq(posthog_flags_peek(NULL, "beta", &r), 0);
    ck_assert_int_eq(posthog_flags_peek(f, NULL, NULL), 0);
    ck_assert_int_eq(posthog_flags_peek(f, "beta", NULL), 1);

    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(count_called(srv), 0);

    /* a decision still reports the exposure, once */
    ck_assert_int_eq(posthog_flags_get(f, "beta", &r), 1);
    ck_assert_int_eq(posthog_flags_get(f, "beta", &r), 1);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(count_called(srv), 1);

    posthog_flags_free(f);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("flags_peek");
    TCase *tc = tcase_create("peek");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_peek_is_silent);
    suite_add_tcase(s, tc);
    return it_run_suite(s);
}
