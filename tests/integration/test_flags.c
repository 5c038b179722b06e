/*
 * Integration tests of feature flags against the local ingestion server's
 * /flags and /flags/definitions (tools/ingest-server/README.md, "Feature
 * flags"): the remote request's shape, both answer shapes, retries (502 and
 * 504 once, never 500), the per-request timeout, quota and errors,
 * $feature_flag_called (properties, dedupe, $groups), and local evaluation
 * (definitions loaded in the background, no /flags request for what is
 * decided locally, the fallback for what is not, ETag/304, 401/402, the
 * disk copy across a restart).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support_client.h"

#define DEFS                                                                                       \
    "{\"flags\":["                                                                                 \
    "{\"id\":1,\"key\":\"everyone\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":[],"  \
    "\"rollout_percentage\":100}],\"payloads\":{\"true\":\"{\\\"color\\\":\\\"blue\\\"}\"}}},"      \
    "{\"id\":2,\"key\":\"pro-only\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":["    \
    "{\"key\":\"plan\",\"value\":[\"pro\"],\"operator\":\"exact\",\"type\":\"person\"}],"          \
    "\"rollout_percentage\":100}]}}"                                                               \
    "],\"group_type_mapping\":{},\"cohorts\":{}}"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static posthog_client_t *flags_client(ph_ingest_t *srv, const char *secret, const char *storage) {
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", "v1");
    if (secret) it_set(o, "secret_key", secret);
    if (storage) it_set(o, "storage_path", storage);
    return it_client(o);
}

static int count_flags_requests(ph_ingest_t *srv) {
    cJSON *r = ph_ingest_flags_requests(srv);
    int n = cJSON_GetArraySize(r);
    cJSON_Delete(r);
    return n;
}

/* $feature_flag_called events that reached the server. */
static cJSON *called_events(ph_ingest_t *srv) {
    cJSON *ev = it_events(srv), *out = cJSON_CreateArray();
    const cJSON *e;
    cJSON_ArrayForEach(e, ev) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "event");
        if (cJSON_IsString(name) && !strcmp(name->valuestring, "$feature_flag_called"))
            cJSON_AddItemToArray(out, cJSON_Duplicate(e, 1));
    }
    cJSON_Delete(ev);
    return out;
}

START_TEST(test_remote_request_shape_and_value)
{
    ph_ingest_t *srv = it_server(NULL);
    ck_assert_int_eq(ph_ingest_set_flags(srv, "{\"responses\":[{\"status\":200,\"body\":"
                                              "{\"featureFlags\":{\"beta\":\"variant-a\"}}}]}"),
                     0);
    posthog_client_t *c = flags_client(srv, NULL, NULL);
    ck_assert_int_eq(count_flags_requests(srv), 0); /* none at creation */
    posthog_flags_options_t fo = {.person_properties_json = "{\"$device_id\":\"dev-1\"}",
                                  .groups_json = "{\"company\":\"acme\"}",
                                  .group_properties_json = "{\"company\":{\"plan\":\"pro\"}}"};
    char variant[64];
    ck_assert_int_eq(posthog_get_feature_flag(c, "beta", "user-1", &fo, variant, sizeof variant),
                     POSTHOG_FLAG_ENABLED);
    ck_assert_str_eq(variant, "variant-a");
    cJSON *reqs = ph_ingest_flags_requests(srv);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 1);
    const cJSON *r = cJSON_GetArrayItem(reqs, 0);
    ck_assert_str_eq(it_str(r, "method"), "POST");
    ck_assert_str_eq(it_str(r, "path"), "/flags/");
    ck_assert_str_eq(it_str(r, "query"), "v=2");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(r, "headers");
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(h, "authorization"));
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(r, "body");
    ck_assert_str_eq(it_str(b, "token"), IT_API_KEY);
    ck_assert_str_eq(it_str(b, "distinct_id"), "user-1");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(b, "geoip_disable")));
    ck_assert_str_eq(it_str(cJSON_GetObjectItemCaseSensitive(b, "groups"), "company"), "acme");
    ck_assert_str_eq(it_str(cJSON_GetObjectItemCaseSensitive(b, "person_properties"), "$device_id"),
                     "dev-1");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(b, "flag_keys_to_evaluate");
    ck_assert_int_eq(cJSON_GetArraySize(keys), 1);
    ck_assert_str_eq(cJSON_GetArrayItem(keys, 0)->valuestring, "beta");
    cJSON_Delete(reqs);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_remote_v2_snapshot_payload_and_errors)
{
    ph_ingest_t *srv = it_server(NULL);
    ph_ingest_set_flags(
        srv, "{\"default\":{\"status\":200,\"body\":{\"flags\":{"
             "\"on\":{\"key\":\"on\",\"enabled\":true,\"variant\":null,\"reason\":{\"code\":"
             "\"condition_match\",\"description\":\"Matched condition set 1\"},\"metadata\":"
             "{\"id\":7,\"version\":2,\"payload\":\"{\\\"x\\\":1}\"}},"
             "\"off\":{\"key\":\"off\",\"enabled\":false},"
             "\"bad\":{\"key\":\"bad\",\"enabled\":false,\"failed\":true}},"
             "\"errorsWhileComputingFlags\":true,\"requestId\":\"rq-9\"}}}");
    posthog_client_t *c = flags_client(srv, NULL, NULL);
    posthog_flags_t *f = NULL;
    ck_assert_int_eq(posthog_evaluate_flags(c, "user-2", NULL, &f), POSTHOG_OK);
    ck_assert_uint_eq(posthog_flags_count(f), 2);
    ck_assert_str_eq(posthog_flags_key(f, 0), "off");
    ck_assert_str_eq(posthog_flags_key(f, 1), "on");
    ck_assert_str_eq(posthog_flags_payload(f, "on"), "{\"x\":1}");
    char err[128];
    ck_assert_str_eq(posthog_flags_error(f, err, sizeof err),
                     "errors_while_computing_flags,evaluation_failed");
    posthog_flag_t fl;
    ck_assert_int_eq(posthog_flags_get(f, "on", &fl), 1);
    ck_assert(fl.enabled);
    ck_assert_ptr_null(fl.variant);
    ck_assert_str_eq(fl.reason, "Matched condition set 1");
    ck_assert_int_eq(fl.id, 7);
    ck_assert_int_eq(fl.version, 2);
    ck_assert_int_eq(posthog_flags_is_enabled(f, "off", 1), 0);
    ck_assert_int_eq(posthog_flags_is_enabled(f, "bad", 1), 1); /* failed: unknown -> default */
    ck_assert_int_eq(posthog_flags_get(f, "on", NULL), 1);      /* read again: no second event */
    posthog_flags_free(f);
    /* payload helper: no event by default */
    char *p = posthog_get_feature_flag_payload(c, "on", "user-3", NULL);
    ck_assert_str_eq(p, "{\"x\":1}");
    posthog_free(p);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *called = called_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(called), 3); /* on, off, bad for user-2 */
    const cJSON *e;
    int seen_on = 0, seen_bad = 0;
    cJSON_ArrayForEach(e, called) {
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(e, "properties");
        ck_assert_str_eq(it_str(e, "distinct_id"), "user-2");
        const char *key = it_str(pr, "$feature_flag");
        ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(pr, "locally_evaluated")));
        ck_assert_str_eq(it_str(pr, "$feature_flag_request_id"), "rq-9");
        if (!strcmp(key, "on")) {
            seen_on++;
            ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pr, "$feature_flag_response")));
            ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pr, "$feature/on")));
            ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(pr, "$feature_flag_id")->valueint, 7);
            ck_assert_str_eq(it_str(pr, "$feature_flag_reason"), "Matched condition set 1");
            ck_assert_str_eq(it_str(pr, "$feature_flag_error"), "errors_while_computing_flags");
        } else if (!strcmp(key, "bad")) {
            seen_bad++;
            ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(pr, "$feature_flag_response")));
            ck_assert_str_eq(it_str(pr, "$feature_flag_error"),
                             "errors_while_computing_flags,evaluation_failed");
        }
    }
    ck_assert_int_eq(seen_on, 1);
    ck_assert_int_eq(seen_bad, 1);
    cJSON_Delete(called);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_capture_with_flags_snapshot)
{
    ph_ingest_t *srv = it_server(NULL);
    ph_ingest_set_flags(srv, "{\"default\":{\"status\":200,\"body\":{\"featureFlags\":"
                             "{\"b\":\"v2\",\"a\":true,\"off\":false}}}}");
    posthog_client_t *c = flags_client(srv, NULL, NULL);
    posthog_flags_t *f;
    ck_assert_int_eq(posthog_evaluate_flags(c, "u1", NULL, &f), POSTHOG_OK);
    posthog_capture_options_t co = {.flags = f};
    ck_assert_int_eq(posthog_capture_opts(c, "u1", "bought", "{\"$feature/a\":\"mine\",\"n\":1}", &co, NULL),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_opts(c, "u1", "viewed", NULL, &co, NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_opts(c, "u1", "bad", "[1]", &co, NULL), POSTHOG_E_INVALID_JSON);
    posthog_flags_free(f);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *ev = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(ev), 2); /* enrichment is not a read: no $feature_flag_called */
    const cJSON *p0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ev, 0), "properties");
    ck_assert_str_eq(it_str(p0, "$feature/a"), "mine"); /* the caller's property wins */
    ck_assert_str_eq(it_str(p0, "$feature/b"), "v2");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p0, "$feature/off")));
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(p0, "n")->valueint, 1);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(p0, "$active_feature_flags");
    ck_assert_int_eq(cJSON_GetArraySize(act), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(act, 0)->valuestring, "a");
    ck_assert_str_eq(cJSON_GetArrayItem(act, 1)->valuestring, "b");
    const cJSON *p1 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ev, 1), "properties");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p1, "$feature/a")));
    cJSON_Delete(ev);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_remote_retries_502_504_not_500)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = flags_client(srv, NULL, NULL);
    ph_ingest_set_flags(srv, "{\"responses\":[{\"status\":502},{\"status\":504},{\"status\":200,"
                             "\"body\":{\"featureFlags\":{\"f\":true}}}]}");
    /* one retry: 502 then 504 -> unknown after 2 requests */
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u", NULL), -1);
    ck_assert_int_eq(count_flags_requests(srv), 2);
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u", NULL), 1);
    ck_assert_int_eq(count_flags_requests(srv), 3);
    ph_ingest_set_flags(srv, "{\"responses\":[{\"status\":500},{\"status\":200,"
                             "\"body\":{\"featureFlags\":{\"f\":true}}}]}");
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u2", NULL), -1);
    ck_assert_int_eq(count_flags_requests(srv), 4); /* 500: never retried */
    /* a captive portal's 200 is not an answer */
    ph_ingest_set_flags(srv, "{\"responses\":[{\"status\":200,\"body\":\"<html>login</html>\"}]}");
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u3", NULL), -1);
    /* quota limited: no value */
    ph_ingest_set_flags(srv, "{\"responses\":[{\"status\":200,\"body\":{\"featureFlags\":{\"f\":true},"
                             "\"quotaLimited\":[\"feature_flags\"]}}]}");
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u4", NULL), -1);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_remote_timeout_bounded)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "feature_flags_request_timeout_ms", "300");
    posthog_client_t *c = it_client(o);
    ph_ingest_set_flags(srv, "{\"default\":{\"hang\":true}}");
    double t0 = now_s();
    posthog_flags_t *f = NULL;
    ck_assert_int_eq(posthog_evaluate_flags(c, "u", NULL, &f), POSTHOG_OK);
    double dt = now_s() - t0;
    /* two attempts of 300 ms and a 300 ms pause: well under 3 s */
    ck_assert_msg(dt < 3.0, "took %.2f s", dt);
    char err[64];
    ck_assert_str_eq(posthog_flags_error(f, err, sizeof err), "timeout");
    ck_assert_uint_eq(posthog_flags_count(f), 0);
    posthog_flags_free(f);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_exposure_dedupe_and_groups)
{
    ph_ingest_t *srv = it_server(NULL);
    ph_ingest_set_flags(srv, "{\"default\":{\"status\":200,\"body\":{\"featureFlags\":{\"f\":true}}}}");
    posthog_client_t *c = flags_client(srv, NULL, NULL);
    posthog_flags_options_t g1 = {.groups_json = "{\"company\":\"acme\",\"team\":\"a\"}"};
    posthog_flags_options_t g1b = {.groups_json = "{\"team\":\"a\",\"company\":\"acme\"}"};
    posthog_flags_options_t g2 = {.groups_json = "{\"company\":\"other\"}"};
    posthog_flags_options_t quiet = {.send_feature_flag_events = POSTHOG_FALSE};
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u1", NULL), 1);
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u1", NULL), 1);  /* dup */
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u1", &g1), 1);   /* new groups */
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u1", &g1b), 1);  /* same groups */
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u1", &g2), 1);   /* other groups */
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u2", &quiet), 1); /* no event */
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *called = called_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(called), 3);
    const cJSON *e2 = cJSON_GetArrayItem(called, 1);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(e2, "properties");
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(pr, "$groups");
    ck_assert_str_eq(it_str(groups, "company"), "acme");
    cJSON_Delete(called);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_bad_arguments_named)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = flags_client(srv, NULL, NULL);
    posthog_flags_options_t bad = {.person_properties_json = "[1,2]"};
    posthog_flags_t *f = (posthog_flags_t *)1;
    ck_assert_int_eq(posthog_evaluate_flags(c, "u", &bad, &f), POSTHOG_E_INVALID_JSON);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(count_flags_requests(srv), 0);
    /* no distinct_id: empty, no request */
    ck_assert_int_eq(posthog_evaluate_flags(c, NULL, NULL, &f), POSTHOG_OK);
    ck_assert_uint_eq(posthog_flags_count(f), 0);
    posthog_flags_free(f);
    /* local only without definitions: no request */
    posthog_flags_options_t lo = {.only_evaluate_locally = 1};
    ck_assert_int_eq(posthog_is_feature_enabled(c, "f", "u", &lo), -1);
    ck_assert_int_eq(count_flags_requests(srv), 0);
    ck_assert_int_eq(posthog_wait_for_flag_definitions(c, 10), POSTHOG_E_INVALID_ARG);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* ---------------------------------------------------------------- local */

/* Person properties that are not one JSON object: a flag that reads them
 * is not evaluated on what they would have said (no value, no event, no
 * request: the argument is named in the log), also on the fast one-flag
 * path that checks them only when a flag reads them; a plain rollout flag,
 * which reads none, is decided. */
START_TEST(test_local_bad_person_properties)
{
    ph_ingest_t *srv = it_server(NULL);
    /* bucketed by device_id: without $device_id (empty properties) it
     * would be decided false */
    ck_assert_int_eq(ph_ingest_set_definitions(srv,
        "{\"body\":{\"flags\":["
        "{\"id\":1,\"key\":\"everyone\",\"active\":true,\"filters\":{\"groups\":[{\"properties\":[],"
        "\"rollout_percentage\":100}]}},"
        "{\"id\":2,\"key\":\"by-device\",\"active\":true,\"bucketing_identifier\":\"device_id\","
        "\"filters\":{\"groups\":[{\"properties\":[],\"rollout_percentage\":100}]}}],\"group_type_mapping\":{},\"cohorts\":{}},"
        "\"secret_key\":\"phs_test\"}"), 0);
    posthog_client_t *c = flags_client(srv, "phs_test", NULL);
    ck_assert_int_eq(posthog_wait_for_flag_definitions(c, 10000), POSTHOG_OK);
    static char deep[256];
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"$device_id\":\"d1\",\"x\":");
    for (int i = 0; i < POSTHOG_MAX_JSON_DEPTH; i++) deep[n++] = '[';
    for (int i = 0; i < POSTHOG_MAX_JSON_DEPTH; i++) deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    const char *bad[] = {"{\"$device_id\":\"d1\"", "[\"$device_id\"]",
                         "{\"$device_id\":\"d1\"} x", "{\"$device_id\":\"d1\",\"p\":\"\xff\"}",
                         "{$device_id:1}", deep};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        posthog_flags_options_t o = {.person_properties_json = bad[i]};
        char variant[16] = "x";
        ck_assert_msg(posthog_get_feature_flag(c, "by-device", "u1", &o, variant, sizeof variant) ==
                          POSTHOG_FLAG_UNKNOWN, "%s", bad[i]);
        ck_assert_str_eq(variant, "");
        ck_assert_int_eq(posthog_is_feature_enabled(c, "by-device", "u1", &o), -1);
        posthog_flags_t *f = (posthog_flags_t *)1;
        ck_assert_int_eq(posthog_evaluate_flags(c, "u1", &o, &f), POSTHOG_E_INVALID_JSON);
        ck_assert_ptr_null(f);
        /* the rollout flag reads no property */
        ck_assert_int_eq(posthog_is_feature_enabled(c, "everyone", "u1", &o), 1);
    }
    /* and valid ones still decide locally */
    posthog_flags_options_t dev = {.person_properties_json = " {\"$device_id\" : \"d1\"} "};
    ck_assert_int_eq(posthog_is_feature_enabled(c, "by-device", "u1", &dev), 1);
    ck_assert_int_eq(count_flags_requests(srv), 0);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *called = called_events(srv);
    const cJSON *e;
    cJSON_ArrayForEach(e, called) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "properties");
        if (!strcmp(it_str(p, "$feature_flag"), "by-device"))
            ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "$feature_flag_response")));
    }
    ck_assert_int_eq(cJSON_GetArraySize(called), 2); /* everyone, by-device=true */
    cJSON_Delete(called);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST


START_TEST(test_local_evaluation_and_fallback)
{
    ph_ingest_t *srv = it_server(NULL);
    ck_assert_int_eq(ph_ingest_set_definitions(srv, "{\"body\":" DEFS ",\"secret_key\":\"phs_test\"}"), 0);
    ph_ingest_set_flags(srv, "{\"default\":{\"status\":200,\"body\":{\"featureFlags\":{\"pro-only\":false}}}}");
    posthog_client_t *c = flags_client(srv, "phs_test", NULL);
    ck_assert_int_eq(posthog_wait_for_flag_definitions(c, 10000), POSTHOG_OK);
    cJSON *dreqs = ph_ingest_definitions_requests(srv);
    ck_assert_int_ge(cJSON_GetArraySize(dreqs), 1);
    const cJSON *d0 = cJSON_GetArrayItem(dreqs, 0);
    ck_assert_str_eq(it_str(cJSON_GetObjectItemCaseSensitive(d0, "headers"), "authorization"),
                     "Bearer phs_test");
    ck_assert_ptr_nonnull(strstr(it_str(d0, "query"), "token=" IT_API_KEY));
    cJSON_Delete(dreqs);

    /* decided locally: no /flags request */
    posthog_flags_options_t pro = {.person_properties_json = "{\"plan\":\"pro\"}"};
    ck_assert_int_eq(posthog_is_feature_enabled(c, "everyone", "u1", NULL), 1);
    ck_assert_int_eq(posthog_is_feature_enabled(c, "pro-only", "u1", &pro), 1);
    char *pl = posthog_get_feature_flag_payload(c, "everyone", "u1", NULL);
    ck_assert_str_eq(pl, "{\"color\":\"blue\"}");
    posthog_free(pl);
    ck_assert_int_eq(count_flags_requests(srv), 0);
    ck_assert_uint_eq(posthog_get_stat(c, "flags_local"), 3);

    /* plan not passed: inconclusive locally, asked of the server, that key only */
    ck_assert_int_eq(posthog_is_feature_enabled(c, "pro-only", "u2", NULL), 0);
    cJSON *reqs = ph_ingest_flags_requests(srv);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 1);
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(reqs, 0), "body"), "flag_keys_to_evaluate");
    ck_assert_int_eq(cJSON_GetArraySize(keys), 1);
    ck_assert_str_eq(cJSON_GetArrayItem(keys, 0)->valuestring, "pro-only");
    cJSON_Delete(reqs);
    ck_assert_uint_eq(posthog_get_stat(c, "flags_fallback_total"), 1);
    ck_assert_uint_eq(posthog_get_stat(c, "flags_fallback_missing_property"), 1);
    /* local only: the fallback is not taken */
    posthog_flags_options_t lo = {.only_evaluate_locally = 1};
    ck_assert_int_eq(posthog_is_feature_enabled(c, "pro-only", "u3", &lo), -1);
    ck_assert_int_eq(count_flags_requests(srv), 1);

    /* all flags: both local values, one fallback */
    posthog_flags_t *f;
    ck_assert_int_eq(posthog_evaluate_flags(c, "u4", &pro, &f), POSTHOG_OK);
    ck_assert_uint_eq(posthog_flags_count(f), 2);
    posthog_flag_t fl;
    ck_assert_int_eq(posthog_flags_get(f, "everyone", &fl), 1);
    ck_assert(fl.locally_evaluated);
    posthog_flags_free(f);
    ck_assert_int_eq(count_flags_requests(srv), 1);

    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *called = called_events(srv);
    const cJSON *e;
    int local_events = 0;
    cJSON_ArrayForEach(e, called) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "properties");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "locally_evaluated"))) {
            local_events++;
            ck_assert_str_eq(it_str(p, "$feature_flag_reason"), "Evaluated locally");
        }
    }
    ck_assert_int_ge(local_events, 2);
    cJSON_Delete(called);

    /* a reload with nothing changed is a 304 */
    ck_assert_int_eq(posthog_reload_feature_flags(c, 10000), POSTHOG_OK);
    ck_assert_uint_ge(posthog_get_stat(c, "flags_definitions_not_modified"), 1);
    dreqs = ph_ingest_definitions_requests(srv);
    const cJSON *last = cJSON_GetArrayItem(dreqs, cJSON_GetArraySize(dreqs) - 1);
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(last, "headers"),
                                                           "if-none-match"));
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(last, "status")->valueint, 304);
    cJSON_Delete(dreqs);

    /* 402: definitions cleared; everything goes to the server */
    ph_ingest_set_definitions(srv, "{\"responses\":[{\"status\":402}]}");
    ck_assert_int_eq(posthog_reload_feature_flags(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(posthog_is_feature_enabled(c, "everyone", "u5", NULL), -1);
    ck_assert_int_eq(count_flags_requests(srv), 2);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_local_snapshot_order_duplicates_and_lifetime)
{
    /* definitions out of key order, one key twice (the first defined wins),
     * a multivariate flag with payloads, and one flag the server decides */
#define FLAG(id, key, body) "{\"id\":" #id ",\"key\":\"" key "\",\"active\":true,\"filters\":" body "}"
#define ON "{\"groups\":[{\"properties\":[],\"rollout_percentage\":100}]}"
#define OFF "{\"groups\":[{\"properties\":[],\"rollout_percentage\":0}]}"
#define MV "{\"groups\":[{\"properties\":[],\"rollout_percentage\":100,\"variant\":\"blue\"}]," \
           "\"multivariate\":{\"variants\":[{\"key\":\"blue\",\"rollout_percentage\":100}]}," \
           "\"payloads\":{\"blue\":\"{\\\"v\\\":1}\"}}"
#define STATIC "{\"groups\":[{\"properties\":[{\"key\":\"id\",\"value\":7,\"type\":\"cohort\"}]," \
               "\"rollout_percentage\":100}]}"
    const char *defs = "{\"body\":{\"flags\":[" FLAG(1, "zeta", ON) "," FLAG(2, "alpha", MV) ","
                       FLAG(3, "mid", ON) "," FLAG(4, "zeta", OFF) "," FLAG(5, "beta", STATIC) ","
                       FLAG(6, "aardvark", OFF) "],\"group_type_mapping\":{},\"cohorts\":{}},"
                       "\"secret_key\":\"phs_test\"}";
    ph_ingest_t *srv = it_server(NULL);
    ck_assert_int_eq(ph_ingest_set_definitions(srv, defs), 0);
    ph_ingest_set_flags(srv, "{\"default\":{\"status\":200,\"body\":{\"featureFlags\":"
                             "{\"beta\":\"remote-variant\"}}}}");
    posthog_client_t *c = flags_client(srv, "phs_test", NULL);
    ck_assert_int_eq(posthog_wait_for_flag_definitions(c, 10000), POSTHOG_OK);

    posthog_flags_options_t lo = {.only_evaluate_locally = 1,
                                  .send_feature_flag_events = POSTHOG_FALSE};
    posthog_flags_t *f;
    ck_assert_int_eq(posthog_evaluate_flags(c, "u1", &lo, &f), POSTHOG_OK);
    /* beta (static cohort) is not decided locally; zeta once */
    ck_assert_uint_eq(posthog_flags_count(f), 4);
    const char *want[] = {"aardvark", "alpha", "mid", "zeta"};
    for (size_t i = 0; i < 4; i++) ck_assert_str_eq(posthog_flags_key(f, i), want[i]);
    posthog_flag_t fl;
    ck_assert_int_eq(posthog_flags_peek(f, "zeta", &fl), 1);
    ck_assert(fl.enabled); /* the first "zeta" (100%), not the second (0%) */
    ck_assert_int_eq(posthog_flags_peek(f, "aardvark", &fl), 1);
    ck_assert(!fl.enabled);

    /* the snapshot owns what it returns: new definitions do not change it */
    ck_assert_int_eq(ph_ingest_set_definitions(srv, "{\"body\":" DEFS ",\"secret_key\":\"phs_test\"}"), 0);
    ck_assert_int_eq(posthog_reload_feature_flags(c, 10000), POSTHOG_OK);
    posthog_flags_t *g;
    ck_assert_int_eq(posthog_evaluate_flags(c, "u1", &lo, &g), POSTHOG_OK);
    ck_assert_uint_eq(posthog_flags_count(g), 1); /* everyone (pro-only needs plan) */
    posthog_flags_free(g);
    ck_assert_int_eq(posthog_flags_peek(f, "alpha", &fl), 1);
    ck_assert_str_eq(fl.variant, "blue");
    ck_assert_str_eq(fl.payload_json, "{\"v\":1}");
    ck_assert_str_eq(posthog_flags_payload(f, "alpha"), "{\"v\":1}");
    ck_assert_ptr_nonnull(fl.reason);
    ck_assert_str_eq(fl.reason, "Matched condition set");
    posthog_flags_free(f);

    /* local and remote entries together are still listed by key */
    ck_assert_int_eq(ph_ingest_set_definitions(srv, defs), 0);
    ck_assert_int_eq(posthog_reload_feature_flags(c, 10000), POSTHOG_OK);
    posthog_flags_options_t both = {.send_feature_flag_events = POSTHOG_FALSE};
    ck_assert_int_eq(posthog_evaluate_flags(c, "u1", &both, &f), POSTHOG_OK);
    ck_assert_uint_eq(posthog_flags_count(f), 5);
    const char *want5[] = {"aardvark", "alpha", "beta", "mid", "zeta"};
    for (size_t i = 0; i < 5; i++) ck_assert_str_eq(posthog_flags_key(f, i), want5[i]);
    ck_assert_int_eq(posthog_flags_peek(f, "beta", &fl), 1);
    ck_assert_str_eq(fl.variant, "remote-variant");
    ck_assert(!fl.locally_evaluated);
    posthog_flags_free(f);
    posthog_client_free(c);
    it_stop(srv);
#undef FLAG
#undef ON
#undef OFF
#undef MV
#undef STATIC
}
END_TEST

START_TEST(test_local_bad_key_and_disk_copy)
{
    char dir[] = "/tmp/ph_flags_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ph_ingest_t *srv = it_server(NULL);
    ph_ingest_set_definitions(srv, "{\"body\":" DEFS ",\"secret_key\":\"phs_right\"}");
    /* a refused key: nothing loaded, the wait says so */
    posthog_client_t *bad = flags_client(srv, "phs_wrong", NULL);
    ck_assert_int_eq(posthog_wait_for_flag_definitions(bad, 10000), POSTHOG_E_TIMEOUT);
    ck_assert_uint_eq(posthog_get_stat(bad, "flags_definitions_failures"), 1);
    posthog_client_free(bad);

    posthog_client_t *c = flags_client(srv, "phs_right", dir);
    ck_assert_int_eq(posthog_wait_for_flag_definitions(c, 10000), POSTHOG_OK);
    posthog_client_free(c);
    /* the server now hangs: a restarted client evaluates from its disk copy at once */
    ph_ingest_set_definitions(srv, "{\"responses\":[{\"hang\":true}]}");
    double t0 = now_s();
    c = flags_client(srv, "phs_right", dir);
    ck_assert_int_eq(posthog_wait_for_flag_definitions(c, 5000), POSTHOG_OK);
    ck_assert_msg(now_s() - t0 < 2.0, "waited %.2f s", now_s() - t0);
    posthog_flags_options_t lo = {.only_evaluate_locally = 1};
    ck_assert_int_eq(posthog_is_feature_enabled(c, "everyone", "u", &lo), 1);
    /* freeing the client abandons the hanging definitions request */
    t0 = now_s();
    posthog_client_free(c);
    ck_assert_msg(now_s() - t0 < 2.0, "free took %.2f s", now_s() - t0);
    it_stop(srv);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_local_definitions_survive_fork)
{
    if (getenv("PH_UNDER_EMULATOR")) { /* tools/test.sh cross */
        printf("SKIP test_local_definitions_survive_fork: qemu-user crashes in the child of a "
               "multi-threaded process (qemu_plugin_vcpu_init_hook assertion)\n");
        return;
    }
    if (IT_UNDER_TSAN) return; /* the child starts its loader thread: see support_client.h */
    ph_ingest_t *srv = it_server(NULL);
    ph_ingest_set_definitions(srv, "{\"body\":" DEFS ",\"secret_key\":\"phs_test\"}");
    posthog_client_t *c = flags_client(srv, "phs_test", NULL);
    ck_assert_int_eq(posthog_wait_for_flag_definitions(c, 10000), POSTHOG_OK);
    cJSON *before = ph_ingest_definitions_requests(srv);
    int n_before = cJSON_GetArraySize(before);
    cJSON_Delete(before);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* the parent's definitions, at once and without a request */
        posthog_flags_options_t lo = {.only_evaluate_locally = 1,
                                      .send_feature_flag_events = POSTHOG_FALSE};
        if (posthog_is_feature_enabled(c, "everyone", "child", &lo) != 1) _exit(2);
        /* and a loader of its own: a reload is a request of the child's */
        if (posthog_reload_feature_flags(c, 10000) != POSTHOG_OK) _exit(3);
        if (posthog_get_stat(c, "flags_definitions_fetches") < 1) _exit(4);
        posthog_client_free(c);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    cJSON *after = ph_ingest_definitions_requests(srv);
    ck_assert_int_gt(cJSON_GetArraySize(after), n_before);
    cJSON_Delete(after);
    /* the parent still evaluates */
    posthog_flags_options_t lo = {.only_evaluate_locally = 1};
    ck_assert_int_eq(posthog_is_feature_enabled(c, "everyone", "parent", &lo), 1);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("flags");
    TCase *t = tcase_create("remote");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_remote_request_shape_and_value);
    tcase_add_test(t, test_remote_v2_snapshot_payload_and_errors);
    tcase_add_test(t, test_capture_with_flags_snapshot);
    tcase_add_test(t, test_remote_retries_502_504_not_500);
    tcase_add_test(t, test_remote_timeout_bounded);
    tcase_add_test(t, test_exposure_dedupe_and_groups);
    tcase_add_test(t, test_bad_arguments_named);
    suite_add_tcase(s, t);
    t = tcase_create("local");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_local_evaluation_and_fallback);
    tcase_add_test(t, test_local_bad_person_properties);
#ifndef POSTHOG_NO_SPOOL
    tcase_add_test(t, test_local_bad_key_and_disk_copy);
    tcase_add_test(t, test_local_snapshot_order_duplicates_and_lifetime);
#else
    (void)test_local_bad_key_and_disk_copy; /* storage_path: needs the disk spool */
#endif
    tcase_add_test(t, test_local_definitions_survive_fork);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return it_run_suite(suite()); }
