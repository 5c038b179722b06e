/*
 * Integration tests of capture v1 (the default protocol) against the local
 * ingestion server, which implements v1 as strictly as PostHog's capture
 * service: request shape and headers, lifting, encodings, the results map
 * (partial retries, server drops, no results map), the status table, the
 * bisecting of a rejected batch, uuid reuse, the AI endpoint, the spool
 * across modes and restarts.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support_client.h"

static posthog_options_t *v1_options(ph_ingest_t *srv) {
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", "v1");
    return o;
}

static const cJSON *obj(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(v != NULL, "member %s missing", k);
    return v;
}

static const cJSON *only_request(cJSON *reqs, int n) {
    ck_assert_int_eq(cJSON_GetArraySize(reqs), n);
    return cJSON_GetArrayItem(reqs, 0);
}

static int is_rfc3339_ms(const char *s) { return s && it_is_iso_utc_ms(s); }

/* The default protocol is v1, with zstd, every header and the v1 shapes. */
START_TEST(test_v1_is_default_and_request_shape)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = posthog_options_new();
    it_set(o, "api_key", IT_API_KEY);
    it_set(o, "host", ph_ingest_url(srv));
    posthog_client_t *c = it_client(o);
    char u[37];
    ck_assert_int_eq(posthog_capture_ex(c, "user-1", "signed_up", "{\"plan\":\"pro\",\"n\":1.50}",
                                        0, NULL, "{\"company\":\"acme\"}", NULL, NULL, u),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *reqs = it_requests(srv);
    const cJSON *r = only_request(reqs, 1);
    ck_assert_str_eq(it_str(r, "path"), "/i/v1/analytics/events");
    ck_assert_str_eq(it_str(r, "protocol"), "v1");
    ck_assert_str_eq(it_str(r, "encoding"), "zstd");
    ck_assert_str_eq(it_req_header(r, "authorization"), "Bearer " IT_API_KEY);
    ck_assert_str_eq(it_req_header(r, "posthog-sdk-info"), "posthog-c/" POSTHOG_VERSION_STRING);
    ck_assert_str_eq(it_req_header(r, "posthog-attempt"), "1");
    ck_assert(it_is_uuid_v7(it_req_header(r, "posthog-request-id")));
    ck_assert(is_rfc3339_ms(it_req_header(r, "posthog-request-timestamp")));
    ck_assert_str_eq(it_req_header(r, "content-encoding"), "zstd");
    const cJSON *body = it_req_body(r);
    ck_assert(is_rfc3339_ms(it_str(body, "created_at")));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(body, "api_key"));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(body, "sent_at"));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(body, "historical_migration"));
    const cJSON *e = cJSON_GetArrayItem(it_req_batch(r), 0);
    ck_assert_str_eq(it_str(e, "uuid"), u);
    ck_assert_str_eq(it_str(e, "event"), "signed_up");
    ck_assert_str_eq(it_str(e, "distinct_id"), "user-1");
    ck_assert(is_rfc3339_ms(it_str(e, "timestamp")));
    ck_assert(cJSON_IsObject(obj(e, "options")));
    ck_assert_int_eq(cJSON_GetArraySize(obj(e, "options")), 0);
    const cJSON *p = obj(e, "properties");
    ck_assert_str_eq(it_str(p, "plan"), "pro");
    ck_assert_str_eq(it_str(obj(p, "$groups"), "company"), "acme");
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(p, "$lib"));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(p, "$lib_version"));
    cJSON_Delete(reqs);
    ck_assert_uint_eq(it_stats(c).sent, 1);
    it_check_balance(c, 1, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* $ properties and per-event options are lifted; $set moves into properties. */
START_TEST(test_v1_lifting_options_and_flags)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = v1_options(srv);
    it_set(o, "disable_geoip", "1");
    it_set(o, "historical_migration", "1");
    it_set(o, "super_properties", "{\"$lib\":\"my-wrapper\",\"app\":\"x\"}");
    posthog_client_t *c = it_client(o);
    posthog_capture_options_t eo = {.process_person_profile = POSTHOG_FALSE,
                                    .cookieless_mode = POSTHOG_TRUE,
                                    .disable_skew_correction = POSTHOG_TRUE,
                                    .product_tour_id = "tour_123",
                                    .set_json = "{\"email\":\"a@b.c\"}"};
    ck_assert_int_eq(posthog_capture_opts(c, "u1", "lifted",
                                          "{\"$session_id\":\"s1\",\"$window_id\":\"w1\","
                                          "\"big\":12345678901234567890}",
                                          &eo, NULL),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_json(c, "u2", "plain", "{\"$session_id\":42}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *reqs = it_requests(srv);
    const cJSON *r = only_request(reqs, 1);
    ck_assert(cJSON_IsTrue(obj(it_req_body(r), "historical_migration")));
    const cJSON *b = it_req_batch(r);
    const cJSON *e = cJSON_GetArrayItem(b, 0);
    ck_assert_str_eq(it_str(e, "session_id"), "s1");
    ck_assert_str_eq(it_str(e, "window_id"), "w1");
    const cJSON *op = obj(e, "options");
    ck_assert(cJSON_IsFalse(obj(op, "process_person_profile")));
    ck_assert(cJSON_IsTrue(obj(op, "cookieless_mode")));
    ck_assert(cJSON_IsTrue(obj(op, "disable_skew_correction")));
    ck_assert_str_eq(it_str(op, "product_tour_id"), "tour_123");
    const cJSON *p = obj(e, "properties");
    static const char *const gone[] = {"$session_id", "$window_id", "$process_person_profile",
                                       "$cookieless_mode", "$ignore_sent_at", "$product_tour_id",
                                       "$lib", "$lib_version"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        ck_assert_msg(!cJSON_GetObjectItemCaseSensitive(p, gone[i]), "%s not lifted", gone[i]);
    ck_assert(cJSON_IsTrue(obj(p, "$geoip_disable")));
    ck_assert_str_eq(it_str(obj(p, "$set"), "email"), "a@b.c");
    ck_assert_str_eq(it_str(p, "app"), "x");
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(e, "$set"));
    /* a non-string $session_id is not lifted and stays a property */
    const cJSON *e2 = cJSON_GetArrayItem(b, 1);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(e2, "session_id"));
    ck_assert_int_eq(obj(obj(e2, "properties"), "$session_id")->valueint, 42);
    cJSON_Delete(reqs);
    /* (that numbers are copied byte for byte is checked on the converter's
     * output in unit test_v1: the server's records re-print them) */
    it_check_balance(c, 2, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* Each compression: Content-Encoding matches and the server decodes it. */
START_TEST(test_v1_encodings)
{
    static const char *const enc[] = {"zstd", "gzip", "deflate", "br", "none"};
    ph_ingest_t *srv = it_server(NULL);
    for (size_t i = 0; i < 5; i++) {
        posthog_options_t *o = v1_options(srv);
        it_set(o, "compression", enc[i]);
        posthog_client_t *c = it_client(o);
        for (int k = 0; k < 50; k++) ck_assert_int_eq(posthog_capture(c, "u", enc[i], NULL), 0);
        ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
        ck_assert_uint_eq(it_stats(c).sent, 50);
        it_check_balance(c, 50, 0);
        posthog_client_free(c);
    }
    cJSON *reqs = it_requests(srv);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 5);
    for (int i = 0; i < 5; i++) {
        const cJSON *r = cJSON_GetArrayItem(reqs, i);
        ck_assert_str_eq(it_str(r, "encoding"), enc[i]);
        ck_assert_int_eq(it_req_status(r), 200);
        const char *ce = it_req_header(r, "content-encoding");
        if (i == 4) ck_assert_ptr_null(ce);
        else ck_assert_str_eq(ce, enc[i]);
    }
    cJSON_Delete(reqs);
    ck_assert_int_eq(it_summary_num(srv, "events"), 250);
    /* v0 refuses the codecs /batch/ does not take, with a clear message */
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", "v0");
    it_set(o, "compression", "zstd");
    char err[256] = "";
    ck_assert_ptr_null(posthog_client_new(o, err, sizeof err));
    ck_assert_msg(strstr(err, "capture_mode=v0") && strstr(err, "zstd"), "message: %s", err);
    it_stop(srv);
}
END_TEST

/* retry results alone are resent (same request id, next attempt); drop
 * results are counted under server_dropped with the server's details. */
START_TEST(test_v1_partial_retry_and_server_drop)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = v1_options(srv);
    it_drops_attach(o, d);
    it_set(o, "flush_at", "3");
    posthog_client_t *c = it_client(o);
    it_faults(srv, "{\"script\":[{\"verdicts\":["
                   "{\"match\":{\"index\":0},\"result\":\"drop\",\"details\":\"billing_limit_exceeded\"},"
                   "{\"match\":{\"index\":1},\"result\":\"retry\"},"
                   "{\"match\":{\"index\":2},\"result\":\"warning\"}],\"retry_after\":\"1\"}]}");
    char u[3][37];
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "e%d", i);
        ck_assert_int_eq(posthog_capture_opts(c, "u", name, NULL, NULL, u[i]), POSTHOG_OK);
    }
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_ge(it_mono_ms() - t0, 900); /* Retry-After: 1 s honoured */
    cJSON *reqs = it_requests(srv);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 2);
    const cJSON *r1 = cJSON_GetArrayItem(reqs, 0), *r2 = cJSON_GetArrayItem(reqs, 1);
    ck_assert_int_eq(it_req_nevents(r1), 3);
    ck_assert_int_eq(it_req_nevents(r2), 1);
    ck_assert_str_eq(it_str(cJSON_GetArrayItem(it_req_batch(r2), 0), "uuid"), u[1]);
    ck_assert_str_eq(it_req_header(r2, "posthog-request-id"),
                     it_req_header(r1, "posthog-request-id"));
    ck_assert_str_eq(it_req_header(r1, "posthog-attempt"), "1");
    ck_assert_str_eq(it_req_header(r2, "posthog-attempt"), "2");
    ck_assert_str_eq(it_str(it_req_body(r2), "created_at"), it_str(it_req_body(r1), "created_at"));
    ck_assert_str_ne(it_req_header(r2, "posthog-request-timestamp"),
                     it_req_header(r1, "posthog-request-timestamp"));
    const cJSON *e1 = cJSON_GetArrayItem(it_req_batch(r1), 1);
    const cJSON *e2 = cJSON_GetArrayItem(it_req_batch(r2), 0);
    ck_assert_str_eq(it_str(e1, "timestamp"), it_str(e2, "timestamp"));
    cJSON_Delete(reqs);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 2);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_SERVER_DROPPED], 1);
    ck_assert_uint_eq(posthog_get_stat(c, "dropped_server_dropped"), 1);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_SERVER_DROPPED), 1);
    it_drop_t x = it_drops_get(d, 0);
    ck_assert_ptr_nonnull(strstr(x.message, "billing_limit_exceeded"));
    ck_assert_ptr_nonnull(x.events_json);
    ck_assert_ptr_nonnull(strstr(x.events_json, u[0]));
    ck_assert_ptr_null(strstr(x.events_json, u[1]));
    it_drop_clear(&x);
    it_check_balance(c, 3, 0);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

/* A 2xx without a results map (a proxy) is not a delivery: resent. */
START_TEST(test_v1_no_results_map_is_not_delivered)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = it_client(v1_options(srv));
    it_faults(srv, "{\"script\":[{\"status\":200,\"body\":\"<html>portal</html>\"}]}");
    ck_assert_int_eq(posthog_capture(c, "u", "e", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(it_summary_num(srv, "requests"), 2);
    ck_assert_int_eq(it_summary_num(srv, "events"), 1);
    ck_assert_uint_eq(it_stats(c).sent, 1);
    ck_assert_uint_eq(it_stats(c).retries, 1);
    it_check_balance(c, 1, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* Status table: permanent 4xx never retried; 404 retried then reported
 * with the hint to use capture_mode=v0; 5xx retried. */
START_TEST(test_v1_status_table)
{
    static const struct {
        int status;
        int requests;
        int reason;
    } rows[] = {{401, 1, POSTHOG_DROP_REJECTED},  {402, 1, POSTHOG_DROP_REJECTED},
                {403, 1, POSTHOG_DROP_REJECTED},  {415, 1, POSTHOG_DROP_REJECTED},
                {418, 1, POSTHOG_DROP_REJECTED},  {413, 1, POSTHOG_DROP_TOO_LARGE},
                {400, 1, POSTHOG_DROP_REJECTED},  {404, 3, POSTHOG_DROP_RETRIES_EXHAUSTED},
                {503, 3, POSTHOG_DROP_RETRIES_EXHAUSTED}, {429, 3, POSTHOG_DROP_RETRIES_EXHAUSTED},
                {408, 3, POSTHOG_DROP_RETRIES_EXHAUSTED}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ph_ingest_t *srv = it_server(NULL);
        it_drops_t *d = it_drops_new();
        posthog_options_t *o = v1_options(srv);
        it_set(o, "max_retries", "2");
        it_drops_attach(o, d);
        posthog_client_t *c = it_client(o);
        char js[256];
        snprintf(js, sizeof js, "{\"script\":[{\"status\":%d},{\"status\":%d},{\"status\":%d}]}",
                 rows[i].status, rows[i].status, rows[i].status);
        it_faults(srv, js);
        ck_assert_int_eq(posthog_capture(c, "u", "e", NULL), POSTHOG_OK);
        ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
        ck_assert_msg(it_summary_num(srv, "requests") == rows[i].requests,
                      "HTTP %d: %lld requests", rows[i].status, it_summary_num(srv, "requests"));
        ck_assert_msg(it_stats(c).dropped[rows[i].reason] == 1, "HTTP %d: reason", rows[i].status);
        it_drop_t x = it_drops_get(d, 0);
        ck_assert_int_eq(x.http_status, rows[i].status);
        if (rows[i].status == 404)
            ck_assert_msg(strstr(x.message, "capture_mode=v0"), "404 message: %s", x.message);
        it_drop_clear(&x);
        it_check_balance(c, 1, 0);
        posthog_client_free(c);
        it_drops_free(d);
        it_stop(srv);
    }
}
END_TEST

/* A whole-batch 400 is bisected: only the offending event is dropped. */
START_TEST(test_v1_bisects_rejected_batch)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = v1_options(srv);
    it_set(o, "flush_at", "4");
    posthog_client_t *c = it_client(o);
    /* 4 events: 400; halves [2] ok, [2] 400; quarters [1] ok, [1] 400 */
    it_faults(srv, "{\"script\":[{\"status\":400},{},{\"status\":400},{},{\"status\":400}]}");
    for (int i = 0; i < 4; i++) ck_assert_int_eq(posthog_capture(c, "u", "e", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(it_summary_num(srv, "requests"), 5);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 3);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_REJECTED], 1);
    it_check_balance(c, 4, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* A uuid the caller reuses never makes the server refuse a whole batch. */
START_TEST(test_v1_reused_uuid_starts_new_batch)
{
    static const char uuid[] = "01890a5d-ac96-774b-bcce-b302099a8057";
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = v1_options(srv);
    it_set(o, "flush_at", "10");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture(c, "u", "before", NULL), POSTHOG_OK);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(posthog_capture_ex(c, "u", "dup", NULL, 0, uuid, NULL, NULL, NULL, NULL),
                         POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *reqs = it_requests(srv);
    for (int i = 0; i < cJSON_GetArraySize(reqs); i++)
        ck_assert_int_eq(it_req_status(cJSON_GetArrayItem(reqs, i)), 200);
    cJSON_Delete(reqs);
    ck_assert_uint_eq(it_stats(c).sent, 3);
    it_check_balance(c, 3, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* posthog_capture_ai uses the AI endpoint in batches of its own; plain
 * capture never reroutes an $ai_ name. Both modes. */
START_TEST(test_ai_endpoint_both_modes)
{
    static const char *const modes[] = {"v1", "v0"};
    static const char *const ai_path[] = {"/i/v1/ai/events", "/i/v0/ai/batch/"};
    static const char *const an_path[] = {"/i/v1/analytics/events", "/batch/"};
    for (int m = 0; m < 2; m++) {
        ph_ingest_t *srv = it_server(NULL);
        posthog_options_t *o = it_options(srv);
        it_set(o, "capture_mode", modes[m]);
        posthog_client_t *c = it_client(o);
        char u[37];
        posthog_capture_options_t eo = {.uuid = "01890a5d-ac96-774b-bcce-b302099a8058"};
        ck_assert_int_eq(posthog_capture_ai(c, "u", "$ai_generation", "{\"$ai_model\":\"m\"}",
                                            &eo, u),
                         POSTHOG_OK);
        ck_assert_str_eq(u, eo.uuid);
        ck_assert_int_eq(posthog_capture(c, "u", "$ai_span", NULL), POSTHOG_OK);
        ck_assert_int_eq(posthog_capture(c, "u", "pageview", NULL), POSTHOG_OK);
        ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
        cJSON *reqs = it_requests(srv);
        ck_assert_int_eq(cJSON_GetArraySize(reqs), 2);
        int ai = -1;
        for (int i = 0; i < 2; i++)
            if (!strcmp(it_str(cJSON_GetArrayItem(reqs, i), "path"), ai_path[m])) ai = i;
        ck_assert_msg(ai >= 0, "%s: no request to %s", modes[m], ai_path[m]);
        const cJSON *ra = cJSON_GetArrayItem(reqs, ai), *rb = cJSON_GetArrayItem(reqs, 1 - ai);
        ck_assert_int_eq(it_req_nevents(ra), 1);
        ck_assert_str_eq(it_str(cJSON_GetArrayItem(it_req_batch(ra), 0), "uuid"), eo.uuid);
        ck_assert_str_eq(it_str(rb, "path"), an_path[m]);
        ck_assert_int_eq(it_req_nevents(rb), 2);
        cJSON_Delete(reqs);
        it_check_balance(c, 3, 0);
        posthog_client_free(c);
        it_stop(srv);
    }
}
END_TEST

/* AI events may be as large as max_ai_event_bytes (8 MiB, as the official
 * SDKs' AI lane); analytics events stay at max_event_bytes. */
START_TEST(test_ai_event_size_limit)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = v1_options(srv);
    posthog_client_t *c = it_client(o);
    size_t n = (size_t)2 << 20;
    char *big = it_repeat('x', n);
    char *props = malloc(n + 32);
    snprintf(props, n + 32, "{\"$ai_input\":\"%s\"}", big);
    ck_assert_int_eq(posthog_capture_json(c, "u", "$ai_generation", props), POSTHOG_E_TOO_LARGE);
    ck_assert_int_eq(posthog_capture_ai(c, "u", "$ai_generation", props, NULL, NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
    ck_assert_uint_eq(it_stats(c).sent, 1);
    it_check_balance(c, 1, 1);
    free(big);
    free(props);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* Event name or distinct_id over 200 bytes: refused at capture in v1. */
START_TEST(test_v1_refuses_long_ids)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = v1_options(srv);
    it_drops_attach(o, d);
    posthog_client_t *c = it_client(o);
    char *long_name = it_repeat('n', 201), *ok_name = it_repeat('n', 200);
    ck_assert_int_eq(posthog_capture(c, "u", long_name, NULL), POSTHOG_E_INVALID_EVENT);
    ck_assert_int_eq(posthog_capture(c, long_name, "e", NULL), POSTHOG_E_INVALID_EVENT);
    ck_assert_int_eq(posthog_capture(c, "u", ok_name, NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    it_drop_t x = it_drops_get(d, 0);
    ck_assert_msg(strstr(x.message, "201 bytes") && strstr(x.message, "200"), "%s", x.message);
    it_drop_clear(&x);
    ck_assert_uint_eq(it_stats(c).dropped[POSTHOG_DROP_INVALID], 2);
    it_check_balance(c, 1, 2);
    free(long_name);
    free(ok_name);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

static char *tmpdir(void) {
    char *t = strdup("/tmp/ph-v1-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t));
    return t;
}

static void rmdir_all(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Retry results that outlast max_retries go to the spool, and are
 * delivered by the next client (a restart), in its own mode: spooled in
 * v1, replayed in v0, and the reverse. */
START_TEST(test_v1_partial_retry_exhausts_into_spool_and_survives_restart)
{
    static const char *const first[] = {"v1", "v0"}, *const second[] = {"v0", "v1"};
    for (int k = 0; k < 2; k++) {
        char *dir = tmpdir();
        ph_ingest_t *srv = it_server(NULL);
        posthog_options_t *o = it_options(srv);
        it_set(o, "capture_mode", first[k]);
        it_set(o, "storage_path", dir);
        it_set(o, "max_retries", "1");
        it_set(o, "flush_at", "2");
        /* stop at once: the spooled events must wait for the next client,
         * not for this one's probe (1 s after the link is marked down) */
        it_set(o, "shutdown_timeout_ms", "0");
        posthog_client_t *c = it_client(o);
        if (k == 0)
            it_faults(srv, "{\"script\":[{\"verdicts\":[{\"match\":{\"index\":1},\"result\":\"retry\"}],"
                           "\"retry_after\":\"0\"},"
                           "{\"verdicts\":[{\"result\":\"retry\"}],\"retry_after\":\"0\"}]}");
        else
            it_faults(srv, "{\"script\":[{\"status\":503},{\"status\":503}]}");
        char u0[37], u1[37];
        posthog_capture_options_t eo = {.process_person_profile = POSTHOG_FALSE};
        ck_assert_int_eq(posthog_capture_opts(c, "u", "a", "{\"$session_id\":\"s\"}", &eo, u0), 0);
        ck_assert_int_eq(posthog_capture_opts(c, "u", "b", "{\"$session_id\":\"s\"}", &eo, u1), 0);
        posthog_flush(c, 600);
        posthog_stats_t s = it_stats(c);
        ck_assert_uint_eq(s.sent, k == 0 ? 1 : 0);
        ck_assert_uint_eq(s.spooled, k == 0 ? 1 : 2);
        posthog_client_free(c);

        it_faults(srv, "{\"script\":[]}");
        o = it_options(srv);
        it_set(o, "capture_mode", second[k]);
        it_set(o, "storage_path", dir);
        c = it_client(o);
        ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
        ck_assert_uint_eq(it_stats(c).replayed, k == 0 ? 1 : 2);
        cJSON *reqs = it_requests(srv);
        const cJSON *last = cJSON_GetArrayItem(reqs, cJSON_GetArraySize(reqs) - 1);
        ck_assert_str_eq(it_str(last, "protocol"), second[k]);
        const cJSON *e = it_find_event_by_uuid(it_req_batch(last), u1);
        ck_assert_ptr_nonnull(e);
        if (!strcmp(second[k], "v1")) {
            ck_assert_str_eq(it_str(e, "session_id"), "s");
            ck_assert(cJSON_IsFalse(obj(obj(e, "options"), "process_person_profile")));
            ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(obj(e, "properties"), "$lib"));
        } else {
            ck_assert_str_eq(it_prop_str(e, "$session_id"), "s");
            ck_assert(cJSON_IsFalse(obj(obj(e, "properties"), "$process_person_profile")));
            ck_assert_str_eq(it_prop_str(e, "$lib"), "posthog-c");
        }
        cJSON_Delete(reqs);
        ck_assert_int_eq(it_summary_num(srv, "unique_uuids"), 2);
        posthog_client_free(c);
        it_stop(srv);
        rmdir_all(dir);
        free(dir);
    }
}
END_TEST

/* PostHog-Sdk-Info names the SDK the server credits: sdk_name/sdk_version,
 * else a $lib/$lib_version super property (what a binding sets), else posthog-c. */
START_TEST(test_v1_sdk_info)
{
    static const char posthog_c[] = "posthog-c/" POSTHOG_VERSION_STRING;
    const char *const want[] = {"posthog-python/7.9.1", "posthog-ruby/0.1.0", posthog_c};
    ph_ingest_t *srv = it_server(NULL);
    for (int i = 0; i < 3; i++) {
        posthog_options_t *o = v1_options(srv);
        if (i == 0) {
            it_set(o, "sdk_name", "posthog-python");
            it_set(o, "sdk_version", "7.9.1");
        } else if (i == 1) {
            it_set(o, "super_properties", "{\"$lib\":\"posthog-ruby\",\"$lib_version\":\"0.1.0\"}");
        }
        ck_assert_int_eq(posthog_options_set(o, "sdk_name", "bad/name"), POSTHOG_E_BAD_OPTION_VALUE);
        ck_assert_int_eq(posthog_options_set(o, "sdk_name", "a\r\nX: y"),
                         POSTHOG_E_BAD_OPTION_VALUE);
        posthog_client_t *c = it_client(o);
        ck_assert_int_eq(posthog_capture(c, "u", "e", NULL), POSTHOG_OK);
        ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
        posthog_client_free(c);
    }
    cJSON *reqs = it_requests(srv);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 3);
    for (int i = 0; i < 3; i++) {
        const cJSON *r = cJSON_GetArrayItem(reqs, i);
        ck_assert_str_eq(it_req_header(r, "posthog-sdk-info"), want[i]);
        /* a super $lib travels as the header, never in the properties */
        const cJSON *p = obj(cJSON_GetArrayItem(it_req_batch(r), 0), "properties");
        ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(p, "$lib"));
        ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(p, "$lib_version"));
    }
    cJSON_Delete(reqs);
    it_stop(srv);
}
END_TEST

int main(void) {
    Suite *s = suite_create("v1");
    TCase *tc = tcase_create("v1");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_v1_is_default_and_request_shape);
    tcase_add_test(tc, test_v1_lifting_options_and_flags);
    tcase_add_test(tc, test_v1_encodings);
    tcase_add_test(tc, test_v1_partial_retry_and_server_drop);
    tcase_add_test(tc, test_v1_no_results_map_is_not_delivered);
    tcase_add_test(tc, test_v1_status_table);
    tcase_add_test(tc, test_v1_bisects_rejected_batch);
    tcase_add_test(tc, test_v1_reused_uuid_starts_new_batch);
    tcase_add_test(tc, test_ai_endpoint_both_modes);
    tcase_add_test(tc, test_ai_event_size_limit);
    tcase_add_test(tc, test_v1_refuses_long_ids);
    tcase_add_test(tc, test_v1_sdk_info);
#ifndef POSTHOG_NO_SPOOL
    tcase_add_test(tc, test_v1_partial_retry_exhausts_into_spool_and_survives_restart);
#else
    (void)test_v1_partial_retry_exhausts_into_spool_and_survives_restart; /* needs the disk spool */
#endif
    suite_add_tcase(s, tc);
    return it_run_suite(s);
}
