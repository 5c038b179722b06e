/*
 * Integration: what the client sends, field by field, against the local
 * ingestion server (capture-api.md "The batch request"), and what it
 * refuses to send (invalid input is counted and reported, never sent).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support_client.h"

/* One request with exactly n events; returns the request (borrowed from reqs). */
static const cJSON *only_request(const cJSON *reqs, int n)
{
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 1);
    const cJSON *r = cJSON_GetArrayItem(reqs, 0);
    ck_assert_int_eq(it_req_status(r), 200);
    ck_assert_int_eq(it_req_nevents(r), n);
    return r;
}

static const cJSON *find_event(const cJSON *events, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, events) {
        const char *v = it_str(e, "event");
        if (v && strcmp(v, name) == 0)
            return e;
    }
    ck_abort_msg("event %s not received", name);
    return NULL;
}

static const cJSON *obj(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    ck_assert_msg(v != NULL, "member %s missing", name);
    return v;
}

static void assert_str(const cJSON *o, const char *name, const char *want)
{
    const char *v = it_str(o, name);
    ck_assert_msg(v != NULL, "string member %s missing", name);
    ck_assert_str_eq(v, want);
}

/* uuid v7 embeds its Unix ms time in the first 48 bits. */
static int64_t uuid_v7_ms(const char *u)
{
    char hex[13];
    memcpy(hex, u, 8);
    memcpy(hex + 8, u + 9, 4);
    hex[12] = '\0';
    return (int64_t)strtoll(hex, NULL, 16);
}

/* ------------------------------------------------------------ payload */

START_TEST(test_payload_fields)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "60000");
    posthog_client_t *c = it_client(o);

    posthog_props_t *child = posthog_props_new();
    ck_assert_int_eq(posthog_props_set_string(child, "k", "v"), POSTHOG_OK);
    posthog_props_t *p = posthog_props_new();
    ck_assert_int_eq(posthog_props_set_string(p, "plan", "pro"), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_int(p, "n", 42), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_int(p, "big", INT64_C(9007199254740993)), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_double(p, "f", 1.5), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_bool(p, "b", 1), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_null(p, "z"), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_json(p, "arr", "[1,\"x\"]"), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_props(p, "obj", child), POSTHOG_OK);

    int64_t t0 = it_wall_ms();
    ck_assert_int_eq(posthog_capture(c, "user-1", "signed_up", p), POSTHOG_OK);
    posthog_props_free(p); /* capture copied it */
    posthog_props_free(child);
    ck_assert_int_eq(posthog_capture_json(c, "user-2", "purchased",
                                          "{\"amount\": 9.99, \"items\": [\"a\"]}"),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    int64_t t1 = it_wall_ms();

    cJSON *reqs = it_requests(srv);
    const cJSON *r = only_request(reqs, 2);
    assert_str(r, "method", "POST");
    assert_str(r, "path", "/batch/");
    ck_assert(cJSON_IsTrue(obj(r, "gzip")));
    ck_assert(cJSON_IsTrue(obj(r, "accepted")));
    ck_assert_str_eq(it_req_header(r, "content-encoding"), "gzip");
    const char *ct = it_req_header(r, "content-type");
    ck_assert_ptr_nonnull(ct);
    ck_assert_msg(strncmp(ct, "application/json", 16) == 0, "content-type %s", ct);
    char ua[64];
    snprintf(ua, sizeof ua, "posthog-c/%s", posthog_version());
    const char *got_ua = it_req_header(r, "user-agent");
    ck_assert_ptr_nonnull(got_ua);
    ck_assert_msg(strncmp(got_ua, ua, strlen(ua)) == 0, "user-agent %s", got_ua);
    ck_assert_str_eq(posthog_version(), POSTHOG_VERSION_STRING);

    const cJSON *body = it_req_body(r);
    assert_str(body, "api_key", IT_API_KEY);
    ck_assert(cJSON_IsFalse(obj(body, "historical_migration")));
    const char *sent_at = it_str(body, "sent_at");
    ck_assert_msg(it_is_iso_utc_ms(sent_at), "sent_at %s", sent_at ? sent_at : "(null)");
    ck_assert_int_ge(it_iso_ms(sent_at), t0 - 2000);
    ck_assert_int_le(it_iso_ms(sent_at), t1 + 2000);

    const cJSON *batch = it_req_batch(r);
    const cJSON *e1 = cJSON_GetArrayItem(batch, 0), *e2 = cJSON_GetArrayItem(batch, 1);
    assert_str(e1, "event", "signed_up");
    assert_str(e1, "distinct_id", "user-1");
    assert_str(e2, "event", "purchased");
    assert_str(e2, "distinct_id", "user-2");
    const cJSON *evs[2] = {e1, e2};
    for (int i = 0; i < 2; i++) {
        const char *u = it_str(evs[i], "uuid");
        ck_assert_msg(it_is_uuid_v7(u), "uuid %s is not a canonical v7", u ? u : "(null)");
        const char *ts = it_str(evs[i], "timestamp");
        ck_assert_msg(it_is_iso_utc_ms(ts), "timestamp %s", ts ? ts : "(null)");
        int64_t tms = it_iso_ms(ts);
        ck_assert_int_ge(tms, t0 - 2000);
        ck_assert_int_le(tms, t1 + 2000);
        ck_assert_int_le(llabs((long long)(uuid_v7_ms(u) - tms)), 2000);
        ck_assert_int_le(tms, it_iso_ms(sent_at));
        const cJSON *props = obj(evs[i], "properties");
        assert_str(props, "$lib", "posthog-c");
        assert_str(props, "$lib_version", posthog_version());
    }
    ck_assert_str_ne(it_str(e1, "uuid"), it_str(e2, "uuid"));

    const cJSON *p1 = obj(e1, "properties");
    assert_str(p1, "plan", "pro");
    ck_assert(cJSON_IsNumber(obj(p1, "n")) && obj(p1, "n")->valuedouble == 42);
    ck_assert(cJSON_IsNumber(obj(p1, "big")));
    ck_assert(cJSON_IsNumber(obj(p1, "f")) && obj(p1, "f")->valuedouble == 1.5);
    ck_assert(cJSON_IsTrue(obj(p1, "b")));
    ck_assert(cJSON_IsNull(obj(p1, "z")));
    const cJSON *arr = obj(p1, "arr");
    ck_assert(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == 2);
    ck_assert(cJSON_GetArrayItem(arr, 0)->valuedouble == 1);
    ck_assert_str_eq(cJSON_GetArrayItem(arr, 1)->valuestring, "x");
    assert_str(obj(p1, "obj"), "k", "v");
    const cJSON *p2 = obj(e2, "properties");
    ck_assert(obj(p2, "amount")->valuedouble == 9.99);
    ck_assert_str_eq(cJSON_GetArrayItem(obj(p2, "items"), 0)->valuestring, "a");
    cJSON_Delete(reqs);

    it_check_balance(c, 2, 0);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 2);
    ck_assert_uint_eq(s.requests, 1);
    ck_assert_uint_eq(s.retries, 0);
    ck_assert_uint_eq(s.queue_depth, 0);
    ck_assert_uint_gt(s.bytes_raw, 0);
    ck_assert_uint_gt(s.bytes_sent, 0);
    ck_assert_int_eq(posthog_shutdown(c, 5000), POSTHOG_OK);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_gzip_off_sends_plain_json)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "gzip", "0");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture_json(c, "u", "plain", "{\"k\":1}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *reqs = it_requests(srv);
    const cJSON *r = only_request(reqs, 1);
    ck_assert(cJSON_IsFalse(obj(r, "gzip")));
    ck_assert_ptr_null(it_req_header(r, "content-encoding"));
    assert_str(cJSON_GetArrayItem(it_req_batch(r), 0), "event", "plain");
    ck_assert_int_eq((int)obj(r, "wire_bytes")->valuedouble, (int)obj(r, "body_bytes")->valuedouble);
    cJSON_Delete(reqs);
    it_check_balance(c, 1, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_escaping_round_trip)
{
    static const char did[] = "user \"quoted\" \\ back/slash";
    static const char name[] = "\xc3\xbcn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xe2\x9c\x93 event";
    static const char ctl[] = "a\x01" "b\nc\td\x1f" "e\x7f" "f\r";
    static const char intl[] = "\xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e caf\xc3\xa9";
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = it_client(it_options(srv));

    posthog_props_t *p = posthog_props_new();
    ck_assert_int_eq(posthog_props_set_string(p, "ctl", ctl), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_string(p, "intl", intl), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_string(p, "quote", "\"q\" \\ </script>"), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_string(p, "cl\xc3\xa9 \"k\"", "key escaped"), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture(c, did, name, p), POSTHOG_OK);
    posthog_props_free(p);
    ck_assert_int_eq(posthog_capture_json(c, did, "json-escapes",
                                          "{\"j\":\"line\\nbreak \\u00e9 \\ud83d\\ude00 \\\"\","
                                          "\"raw\":\"\xc3\xa9\xe2\x9c\x93\"}"),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);

    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 2);
    const cJSON *e = find_event(events, name);
    assert_str(e, "distinct_id", did);
    const cJSON *props = obj(e, "properties");
    assert_str(props, "ctl", ctl);
    assert_str(props, "intl", intl);
    assert_str(props, "quote", "\"q\" \\ </script>");
    assert_str(props, "cl\xc3\xa9 \"k\"", "key escaped");
    const cJSON *j = find_event(events, "json-escapes");
    assert_str(obj(j, "properties"), "j", "line\nbreak \xc3\xa9 \xf0\x9f\x98\x80 \"");
    assert_str(obj(j, "properties"), "raw", "\xc3\xa9\xe2\x9c\x93");
    cJSON_Delete(events);
    it_check_balance(c, 2, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_super_properties_merge)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "super_properties", "{\"app\":\"demo\",\"env\":\"prod\",\"n\":1}");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture_json(c, "u", "json", "{\"env\":\"dev\",\"x\":1}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_json(c, "u", "none", NULL), POSTHOG_OK);
    posthog_props_t *p = posthog_props_new();
    ck_assert_int_eq(posthog_props_set_string(p, "env", "stage"), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture(c, "u", "builder", p), POSTHOG_OK);
    posthog_props_free(p);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);

    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 3);
    const cJSON *pj = obj(find_event(events, "json"), "properties");
    assert_str(pj, "app", "demo");
    assert_str(pj, "env", "dev");
    ck_assert(obj(pj, "x")->valuedouble == 1);
    const cJSON *pn = obj(find_event(events, "none"), "properties");
    assert_str(pn, "app", "demo");
    assert_str(pn, "env", "prod");
    ck_assert(obj(pn, "n")->valuedouble == 1);
    assert_str(pn, "$lib", "posthog-c");
    const cJSON *pb = obj(find_event(events, "builder"), "properties");
    assert_str(pb, "app", "demo");
    assert_str(pb, "env", "stage");
    /* each key once: an override replaces, it does not duplicate */
    int envs = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, pj) envs += strcmp(it->string, "env") == 0;
    ck_assert_int_eq(envs, 1);
    cJSON_Delete(events);
    it_check_balance(c, 3, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_default_distinct_id)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "default_distinct_id", "server-1");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture(c, NULL, "null-id", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture(c, "", "empty-id", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture(c, "explicit", "own-id", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *events = it_events(srv);
    assert_str(find_event(events, "null-id"), "distinct_id", "server-1");
    assert_str(find_event(events, "empty-id"), "distinct_id", "server-1");
    assert_str(find_event(events, "own-id"), "distinct_id", "explicit");
    cJSON_Delete(events);
    it_check_balance(c, 3, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* Without a distinct_id (and no default_distinct_id) an event gets a
 * generated id and is personless, as in the official SDKs. */
START_TEST(test_generated_distinct_id_is_personless)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture(c, NULL, "null-id", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_json(c, "", "empty-id", "{\"a\":1}"), POSTHOG_OK);
    /* the caller's own $process_person_profile wins */
    ck_assert_int_eq(
        posthog_capture_json(c, NULL, "own-ppp", "{\"$process_person_profile\":true}"),
        POSTHOG_OK);
    ck_assert_int_eq(posthog_capture(c, "u", "with-id", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *events = it_events(srv);
    const char *d1 = it_str(find_event(events, "null-id"), "distinct_id");
    const char *d2 = it_str(find_event(events, "empty-id"), "distinct_id");
    ck_assert_msg(it_is_uuid_v7(d1) && it_is_uuid_v7(d2), "generated ids %s %s", d1, d2);
    ck_assert_str_ne(d1, d2);
    const cJSON *p1 = obj(find_event(events, "null-id"), "properties");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p1, "$process_person_profile")));
    const cJSON *p2 = obj(find_event(events, "empty-id"), "properties");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p2, "$process_person_profile")));
    const cJSON *p3 = obj(find_event(events, "own-ppp"), "properties");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p3, "$process_person_profile")));
    const cJSON *p4 = obj(find_event(events, "with-id"), "properties");
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(p4, "$process_person_profile"));
    cJSON_Delete(events);
    it_check_balance(c, 4, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* posthog_capture_opts: per-event options travel as their $ properties;
 * disable_geoip adds $geoip_disable; the user's properties win. */
START_TEST(test_capture_opts_and_geoip)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = it_options(srv);
    it_set(o, "disable_geoip", "1");
    it_drops_attach(o, d);
    posthog_client_t *c = it_client(o);
    posthog_capture_options_t eo = {.process_person_profile = POSTHOG_FALSE,
                                    .cookieless_mode = POSTHOG_TRUE,
                                    .disable_skew_correction = POSTHOG_TRUE,
                                    .product_tour_id = "tour \"1\"",
                                    .set_json = "{\"plan\":\"pro\"}",
                                    .timestamp_ms = INT64_C(1700000000123)};
    char out[37];
    ck_assert_int_eq(posthog_capture_opts(c, "u1", "all-opts", "{\"k\":1}", &eo, out),
                     POSTHOG_OK);
    posthog_capture_options_t eo2 = {.process_person_profile = POSTHOG_TRUE};
    ck_assert_int_eq(posthog_capture_opts(c, "u2", "props-win",
                                          "{\"$process_person_profile\":false,"
                                          "\"$geoip_disable\":false}",
                                          &eo2, NULL),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_opts(c, "u3", "no-opts", NULL, NULL, NULL), POSTHOG_OK);
    posthog_capture_options_t bad = {.cookieless_mode = (posthog_tristate_t)7};
    ck_assert_int_eq(posthog_capture_opts(c, "u4", "bad-opt", NULL, &bad, NULL),
                     POSTHOG_E_INVALID_ARG);
    posthog_capture_options_t badtour = {.product_tour_id = "bad\xff"};
    ck_assert_int_eq(posthog_capture_opts(c, "u4", "bad-tour", NULL, &badtour, NULL),
                     POSTHOG_E_INVALID_UTF8);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);

    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 3);
    const cJSON *e = find_event(events, "all-opts");
    assert_str(e, "uuid", out);
    assert_str(e, "timestamp", "2023-11-14T22:13:20.123Z");
    assert_str(obj(e, "$set"), "plan", "pro");
    const cJSON *p = obj(e, "properties");
    ck_assert(obj(p, "k")->valuedouble == 1);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "$process_person_profile")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "$cookieless_mode")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "$ignore_sent_at")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "$geoip_disable")));
    assert_str(p, "$product_tour_id", "tour \"1\"");
    const cJSON *w = obj(find_event(events, "props-win"), "properties");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(w, "$process_person_profile")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(w, "$geoip_disable")));
    ck_assert_int_eq(cJSON_GetArraySize(w), 4); /* the two, $lib, $lib_version: no duplicates */
    const cJSON *n = obj(find_event(events, "no-opts"), "properties");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "$geoip_disable")));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(n, "$cookieless_mode"));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(n, "$process_person_profile"));
    cJSON_Delete(events);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_INVALID), 2);
    it_check_balance(c, 3, 2);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

START_TEST(test_capture_ex_fields)
{
    static const char uuid[] = "01890a5d-ac96-774b-bcce-b302099a8057";
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = it_options(srv);
    it_drops_attach(o, d);
    posthog_client_t *c = it_client(o);
    char out1[37], out2[37];
    memset(out1, 'x', sizeof out1);
    ck_assert_int_eq(posthog_capture_ex(c, "u1", "ex-full", "{\"p\":1}", INT64_C(1700000000123),
                                        uuid, "{\"company\":\"acme\",\"team\":\"t1\"}",
                                        "{\"email\":\"a@b.c\"}", "{\"first\":\"x\"}", out1),
                     POSTHOG_OK);
    ck_assert_str_eq(out1, uuid);
    ck_assert_int_eq(posthog_capture_ex(c, "u2", "ex-min", NULL, 0, NULL, NULL, NULL, NULL, out2),
                     POSTHOG_OK);
    ck_assert_msg(it_is_uuid_v7(out2), "uuid_out %s", out2);
    /* a malformed uuid is refused, counted and reported */
    posthog_status_t bad = posthog_capture_ex(c, "u3", "ex-bad-uuid", NULL, 0, "not-a-uuid", NULL,
                                              NULL, NULL, NULL);
    ck_assert_int_ne(bad, POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);

    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 2);
    const cJSON *e = find_event(events, "ex-full");
    assert_str(e, "uuid", uuid);
    assert_str(e, "timestamp", "2023-11-14T22:13:20.123Z");
    assert_str(e, "distinct_id", "u1");
    const cJSON *props = obj(e, "properties");
    ck_assert(obj(props, "p")->valuedouble == 1);
    const cJSON *groups = obj(props, "$groups");
    assert_str(groups, "company", "acme");
    assert_str(groups, "team", "t1");
    assert_str(obj(e, "$set"), "email", "a@b.c");
    assert_str(obj(e, "$set_once"), "first", "x");
    assert_str(props, "$lib", "posthog-c");
    const cJSON *m = find_event(events, "ex-min");
    assert_str(m, "uuid", out2);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(m, "$set"));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(m, "$set_once"));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(obj(m, "properties"), "$groups"));
    cJSON_Delete(events);

    ck_assert_uint_eq(it_stats(c).dropped[POSTHOG_DROP_INVALID], 1);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_INVALID), 1);
    it_drop_t x = it_drops_get(d, 0);
    ck_assert_int_eq(x.reason, POSTHOG_DROP_INVALID);
    ck_assert_uint_eq(x.count, 1);
    it_drop_clear(&x);
    it_check_balance(c, 2, 1);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

START_TEST(test_person_and_group_calls)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = it_client(it_options(srv));
    ck_assert_int_eq(posthog_identify(c, "u1", "{\"email\":\"e@x.io\"}", "{\"first_seen\":\"today\"}"),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_set(c, "u1", "{\"plan\":\"pro\"}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_set_once(c, "u1", "{\"src\":\"ad\"}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_alias(c, "u1", "u1-alias"), POSTHOG_OK);
    ck_assert_int_eq(posthog_group_identify(c, "company", "acme", "{\"name\":\"Acme\"}", NULL),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_group_identify(c, "org", "o1", NULL, "u9"), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);

    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 6);
    const cJSON *e;
    cJSON_ArrayForEach(e, events) {
        ck_assert(it_is_uuid_v7(it_str(e, "uuid")));
        ck_assert(it_is_iso_utc_ms(it_str(e, "timestamp")));
        assert_str(obj(e, "properties"), "$lib", "posthog-c");
    }

    e = find_event(events, "$identify");
    assert_str(e, "distinct_id", "u1");
    assert_str(obj(e, "$set"), "email", "e@x.io");
    assert_str(obj(e, "$set_once"), "first_seen", "today");

    e = find_event(events, "$set");
    assert_str(e, "distinct_id", "u1");
    assert_str(obj(e, "$set"), "plan", "pro");

    /* the brief names the event $set_once (as posthog-python does) */
    e = find_event(events, "$set_once");
    assert_str(e, "distinct_id", "u1");
    assert_str(obj(e, "$set_once"), "src", "ad");

    e = find_event(events, "$create_alias");
    assert_str(e, "distinct_id", "u1");
    assert_str(obj(e, "properties"), "distinct_id", "u1");
    assert_str(obj(e, "properties"), "alias", "u1-alias");

    const cJSON *g1 = NULL, *g2 = NULL;
    cJSON_ArrayForEach(e, events) {
        if (strcmp(it_str(e, "event"), "$groupidentify") != 0)
            continue;
        if (strcmp(it_prop_str(e, "$group_type"), "company") == 0)
            g1 = e;
        else
            g2 = e;
    }
    ck_assert_ptr_nonnull(g1);
    ck_assert_ptr_nonnull(g2);
    assert_str(g1, "distinct_id", "$company_acme");
    assert_str(obj(g1, "properties"), "$group_key", "acme");
    assert_str(obj(obj(g1, "properties"), "$group_set"), "name", "Acme");
    assert_str(g2, "distinct_id", "u9");
    assert_str(obj(g2, "properties"), "$group_type", "org");
    assert_str(obj(g2, "properties"), "$group_key", "o1");
    ck_assert(cJSON_IsObject(obj(obj(g2, "properties"), "$group_set")));
    cJSON_Delete(events);
    it_check_balance(c, 6, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* ------------------------------------------------------------ before_send */

typedef struct bs_state {
    int calls;
    char keep_json[4096];
    char replace_uuid[64], replace_ts[64];
} bs_state_t;

static posthog_before_send_result_t before_send(const char *event_json,
                                                posthog_replacement_t *replacement, void *ud)
{
    bs_state_t *st = ud;
    st->calls++;
    cJSON *e = cJSON_Parse(event_json);
    const char *name = e ? it_str(e, "event") : NULL;
    posthog_before_send_result_t r = POSTHOG_BEFORE_SEND_KEEP;
    if (!name) {
        r = POSTHOG_BEFORE_SEND_KEEP;
    } else if (strcmp(name, "keep_me") == 0) {
        snprintf(st->keep_json, sizeof st->keep_json, "%s", event_json);
    } else if (strcmp(name, "drop_me") == 0) {
        r = POSTHOG_BEFORE_SEND_DROP;
    } else if (strcmp(name, "replace_me") == 0) {
        snprintf(st->replace_uuid, sizeof st->replace_uuid, "%s", it_str(e, "uuid"));
        snprintf(st->replace_ts, sizeof st->replace_ts, "%s", it_str(e, "timestamp"));
        cJSON_DeleteItemFromObjectCaseSensitive(e, "uuid");
        cJSON_DeleteItemFromObjectCaseSensitive(e, "timestamp");
        cJSON_ReplaceItemInObjectCaseSensitive(e, "event", cJSON_CreateString("replaced"));
        cJSON *props = cJSON_GetObjectItemCaseSensitive(e, "properties");
        cJSON_AddTrueToObject(props, "added");
        cJSON_DeleteItemFromObjectCaseSensitive(props, "secret");
        char *txt = cJSON_PrintUnformatted(e);
        ck_assert_int_eq(posthog_replacement_set(replacement, txt), POSTHOG_OK);
        cJSON_free(txt);
        r = POSTHOG_BEFORE_SEND_REPLACE;
    }
    cJSON_Delete(e);
    return r;
}

START_TEST(test_before_send)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    bs_state_t st;
    memset(&st, 0, sizeof st);
    posthog_options_t *o = it_options(srv);
    it_drops_attach(o, d);
    posthog_options_set_before_send(o, before_send, &st);
    posthog_client_t *c = it_client(o);
    char keep_uuid[37];
    ck_assert_int_eq(posthog_capture_ex(c, "u", "keep_me", "{\"a\":1}", 0, NULL, NULL, NULL, NULL,
                                        keep_uuid),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_json(c, "u", "drop_me", "{\"a\":2}"), POSTHOG_E_DROPPED);
    ck_assert_int_eq(posthog_capture_json(c, "u", "replace_me", "{\"a\":3,\"secret\":\"s\"}"),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(st.calls, 3);

    /* what before_send saw: the whole event */
    cJSON *seen = cJSON_Parse(st.keep_json);
    ck_assert_ptr_nonnull(seen);
    assert_str(seen, "event", "keep_me");
    assert_str(seen, "distinct_id", "u");
    assert_str(seen, "uuid", keep_uuid);
    ck_assert(it_is_iso_utc_ms(it_str(seen, "timestamp")));
    assert_str(obj(seen, "properties"), "$lib", "posthog-c");
    cJSON_Delete(seen);

    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 2);
    const cJSON *k = find_event(events, "keep_me");
    assert_str(k, "uuid", keep_uuid);
    ck_assert(obj(obj(k, "properties"), "a")->valuedouble == 1);
    const cJSON *r = find_event(events, "replaced");
    assert_str(r, "uuid", st.replace_uuid);
    assert_str(r, "timestamp", st.replace_ts);
    ck_assert(cJSON_IsTrue(obj(obj(r, "properties"), "added")));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(obj(r, "properties"), "secret"));
    ck_assert(obj(obj(r, "properties"), "a")->valuedouble == 3);
    const cJSON *e;
    cJSON_ArrayForEach(e, events) ck_assert_str_ne(it_str(e, "event"), "drop_me");
    cJSON_Delete(events);

    ck_assert_uint_eq(it_stats(c).dropped[POSTHOG_DROP_BEFORE_SEND], 1);
    ck_assert_uint_eq(it_drops_reports(d), 1);
    it_drop_t x = it_drops_get(d, 0);
    ck_assert_int_eq(x.reason, POSTHOG_DROP_BEFORE_SEND);
    ck_assert_int_eq(x.status, POSTHOG_E_DROPPED);
    ck_assert_uint_eq(x.count, 1);
    ck_assert_ptr_nonnull(x.event);
    ck_assert_str_eq(x.event, "drop_me");
    it_drop_clear(&x);
    it_check_balance(c, 2, 1);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

/* ------------------------------------------------------------ options */

START_TEST(test_disabled_sends_nothing)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "disabled", "1");
    it_set(o, "flush_interval_ms", "10");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture(c, "u", "e1", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_json(c, "u", "e2", "{\"a\":1}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_identify(c, "u", NULL, NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 5000), POSTHOG_OK);
    it_sleep_ms(300);
    ck_assert_int_eq(posthog_shutdown(c, 5000), POSTHOG_OK);
    ck_assert_int_eq(it_summary_num(srv, "requests"), 0);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 0);
    ck_assert_uint_eq(s.requests, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_historical_migration)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "historical_migration", "1");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture_ex(c, "u", "old", NULL, INT64_C(1500000000000), NULL, NULL,
                                        NULL, NULL, NULL),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *reqs = it_requests(srv);
    const cJSON *r = only_request(reqs, 1);
    ck_assert(cJSON_IsTrue(obj(it_req_body(r), "historical_migration")));
    assert_str(cJSON_GetArrayItem(it_req_batch(r), 0), "timestamp", "2017-07-14T02:40:00.000Z");
    cJSON_Delete(reqs);
    it_check_balance(c, 1, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_flush_at_triggers_send)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_at", "10");
    it_set(o, "flush_interval_ms", "60000");
    posthog_client_t *c = it_client(o);
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(posthog_capture(c, "u", "e", NULL), POSTHOG_OK);
    it_sleep_ms(300);
    ck_assert_int_eq(it_summary_num(srv, "requests"), 0); /* 9 < flush_at: nothing yet */
    ck_assert_int_eq(posthog_capture(c, "u", "e", NULL), POSTHOG_OK);
    /* the 10th event triggers the send, no flush call */
    ck_assert_int_eq(ph_ingest_wait_events(srv, 10, 5000), 0);
    cJSON *reqs = it_requests(srv);
    only_request(reqs, 10);
    cJSON_Delete(reqs);
    ck_assert_int_eq(posthog_flush(c, 5000), POSTHOG_OK);
    it_check_balance(c, 10, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* flush_at triggers a send; max_batch_size caps a request (batches grow
 * past flush_at only while a request is in flight, up to that cap). */
START_TEST(test_flush_at_batch_sizes)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_at", "10");
    it_set(o, "max_batch_size", "10");
    it_set(o, "flush_interval_ms", "60000");
    posthog_client_t *c = it_client(o);
    for (int i = 0; i < 25; i++) {
        posthog_props_t *p = posthog_props_new();
        ck_assert_int_eq(posthog_props_set_int(p, "seq", i), POSTHOG_OK);
        ck_assert_int_eq(posthog_capture(c, "u", "batched", p), POSTHOG_OK);
        posthog_props_free(p);
    }
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *reqs = it_requests(srv);
    int n = cJSON_GetArraySize(reqs);
    char sizes[256] = "";
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs) {
        size_t l = strlen(sizes);
        snprintf(sizes + l, sizeof sizes - l, "%d ", it_req_nevents(r));
    }
    ck_assert_msg(n == 3 && it_req_nevents(cJSON_GetArrayItem(reqs, 0)) == 10 &&
                      it_req_nevents(cJSON_GetArrayItem(reqs, 1)) == 10 &&
                      it_req_nevents(cJSON_GetArrayItem(reqs, 2)) == 5,
                  "flush_at=max_batch_size=10, 25 events: expected requests of 10 10 5 events, "
                  "got %s", sizes);
    cJSON_Delete(reqs);
    /* in capture order */
    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 25);
    for (int i = 0; i < 25; i++)
        ck_assert(obj(obj(cJSON_GetArrayItem(events, i), "properties"), "seq")->valuedouble == i);
    cJSON_Delete(events);
    it_check_balance(c, 25, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_flush_interval_sends_partial_batch)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "200");
    posthog_client_t *c = it_client(o);
    int64_t t0 = it_mono_ms();
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(posthog_capture(c, "u", "partial", NULL), POSTHOG_OK);
    ck_assert_int_eq(ph_ingest_wait_events(srv, 3, 5000), 0);
    int64_t waited = it_mono_ms() - t0;
    ck_assert_int_ge(waited, 150); /* not before the interval (ms clock slack) */
    cJSON *reqs = it_requests(srv);
    only_request(reqs, 3);
    cJSON_Delete(reqs);
    /* the server has them; the client counts them once it has read the answer */
    for (int i = 0; i < 1000 && it_stats(c).sent < 3; i++)
        it_sleep_ms(5);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 3);
    it_check_balance(c, 3, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_empty_flush_sends_nothing)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "50");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_flush(c, 5000), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 0), POSTHOG_OK);
    it_sleep_ms(300);
    ck_assert_int_eq(posthog_shutdown(c, 5000), POSTHOG_OK);
    ck_assert_int_eq(it_summary_num(srv, "requests"), 0);
    it_check_balance(c, 0, 0);
    ck_assert_uint_eq(it_stats(c).requests, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* ------------------------------------------------------------ invalid input */

typedef struct inv {
    posthog_status_t st;
    int reason;
} inv_t;

static void expect_drop(posthog_status_t got, posthog_status_t want, int reason, inv_t *log,
                        int *n, int line)
{
    ck_assert_msg(got == want, "line %d: status %d (%s), expected %d (%s)", line, (int)got,
                  posthog_strerror(got), (int)want, posthog_strerror(want));
    log[*n].st = want;
    log[*n].reason = reason;
    (*n)++;
}

#define EXPECT(call, want, reason) expect_drop((call), (want), (reason), log, &n, __LINE__)

START_TEST(test_invalid_input_never_sent)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = it_options(srv);
    it_set(o, "max_event_bytes", "1024");
    it_drops_attach(o, d);
    posthog_client_t *c = it_client(o);
    inv_t log[64];
    int n = 0;
    const int INV = POSTHOG_DROP_INVALID, BIG = POSTHOG_DROP_TOO_LARGE;

    EXPECT(posthog_capture(c, "u", "", NULL), POSTHOG_E_INVALID_EVENT, INV);
    EXPECT(posthog_capture(c, "u", NULL, NULL), POSTHOG_E_INVALID_EVENT, INV);
    EXPECT(posthog_capture(c, "u", "bad\xc3\x28", NULL), POSTHOG_E_INVALID_UTF8, INV);
    EXPECT(posthog_capture(c, "bad\xff", "e", NULL), POSTHOG_E_INVALID_UTF8, INV);
    EXPECT(posthog_capture(c, "u", "overlong\xc0\xaf", NULL), POSTHOG_E_INVALID_UTF8, INV);
    EXPECT(posthog_capture(c, "u", "surrogate\xed\xa0\x80", NULL), POSTHOG_E_INVALID_UTF8, INV);
    EXPECT(posthog_capture_json(c, "u", "e", "{\"k\":\"\xff\"}"), POSTHOG_E_INVALID_UTF8, INV);
    EXPECT(posthog_capture_json(c, "u", "e", "[1,2]"), POSTHOG_E_INVALID_JSON, INV);
    EXPECT(posthog_capture_json(c, "u", "e", "42"), POSTHOG_E_INVALID_JSON, INV);
    EXPECT(posthog_capture_json(c, "u", "e", "\"str\""), POSTHOG_E_INVALID_JSON, INV);
    EXPECT(posthog_capture_json(c, "u", "e", "{\"a\":"), POSTHOG_E_INVALID_JSON, INV);
    EXPECT(posthog_capture_json(c, "u", "e", "{\"a\":1} x"), POSTHOG_E_INVALID_JSON, INV);
    EXPECT(posthog_capture_json(c, "u", "e", "{'a':1}"), POSTHOG_E_INVALID_JSON, INV);
    EXPECT(posthog_capture_ex(c, "u", "e", NULL, 0, NULL, "[1]", NULL, NULL, NULL),
           POSTHOG_E_INVALID_JSON, INV);
    EXPECT(posthog_capture_ex(c, "u", "e", NULL, 0, NULL, NULL, "3", NULL, NULL),
           POSTHOG_E_INVALID_JSON, INV);
    EXPECT(posthog_identify(c, "u", "[]", NULL), POSTHOG_E_INVALID_JSON, INV);
    EXPECT(posthog_alias(c, "u", ""), POSTHOG_E_INVALID_EVENT, INV);
    EXPECT(posthog_group_identify(c, "", "k", NULL, NULL), POSTHOG_E_INVALID_EVENT, INV);
    posthog_props_t *arr = posthog_props_new_array();
    ck_assert_int_eq(posthog_props_set_int(arr, NULL, 1), POSTHOG_OK);
    EXPECT(posthog_capture(c, "u", "e", arr), POSTHOG_E_INVALID_JSON, INV);
    posthog_props_free(arr);

    char *big = it_repeat('x', 2000);
    posthog_props_t *p = posthog_props_new();
    ck_assert_int_eq(posthog_props_set_string(p, "big", big), POSTHOG_OK);
    EXPECT(posthog_capture(c, "u", "too-big", p), POSTHOG_E_TOO_LARGE, BIG);
    posthog_props_free(p);
    char *json = malloc(2100);
    snprintf(json, 2100, "{\"big\":\"%s\"}", big);
    EXPECT(posthog_capture_json(c, "u", "too-big-json", json), POSTHOG_E_TOO_LARGE, BIG);
    free(json);
    free(big);

    /* one valid event rides along: the batch must hold it alone */
    ck_assert_int_eq(posthog_capture_json(c, "u", "valid", "{\"ok\":true}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);

    cJSON *reqs = it_requests(srv);
    const cJSON *r = only_request(reqs, 1);
    assert_str(cJSON_GetArrayItem(it_req_batch(r), 0), "event", "valid");
    cJSON_Delete(reqs);

    int n_inv = 0, n_big = 0;
    for (int i = 0; i < n; i++) {
        n_inv += log[i].reason == INV;
        n_big += log[i].reason == BIG;
    }
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_INVALID], (uint64_t)n_inv);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_TOO_LARGE], (uint64_t)n_big);
    ck_assert_uint_eq(s.sent, 1);
    /* one report per refused call, in call order, with the matching status */
    ck_assert_uint_eq(it_drops_reports(d), (size_t)n);
    for (int i = 0; i < n; i++) {
        it_drop_t x = it_drops_get(d, (size_t)i);
        ck_assert_msg(x.reason == log[i].reason && x.count == 1 && x.http_status == 0 &&
                          x.events_json == NULL,
                      "drop report %d: reason %d status %d count %u http %d", i, x.reason,
                      x.status, x.count, x.http_status);
        it_drop_clear(&x);
    }
    it_check_balance(c, 1, (uint64_t)n);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

/* posthog.h: the drop report's `status` is "the matching status code": the
 * one the refused call returned. */
START_TEST(test_drop_report_status_matches_return)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = it_options(srv);
    it_drops_attach(o, d);
    posthog_client_t *c = it_client(o);
    posthog_status_t got[4];
    got[0] = posthog_capture(c, "u", "", NULL);
    got[1] = posthog_capture(c, "u", "bad\xff", NULL);
    got[2] = posthog_capture_json(c, "u", "e", "[1]");
    got[3] = posthog_capture_ex(c, "u", "e", NULL, 0, "not-a-uuid", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(got[0], POSTHOG_E_INVALID_EVENT);
    ck_assert_int_eq(got[1], POSTHOG_E_INVALID_UTF8);
    ck_assert_int_eq(got[2], POSTHOG_E_INVALID_JSON);
    ck_assert_int_ne(got[3], POSTHOG_OK);
    ck_assert_uint_eq(it_drops_reports(d), 4);
    for (size_t i = 0; i < 4; i++) {
        it_drop_t x = it_drops_get(d, i);
        ck_assert_msg(x.status == (int)got[i],
                      "drop report %zu: status %d (%s) but the call returned %d (%s)", i,
                      x.status, posthog_strerror((posthog_status_t)x.status), (int)got[i],
                      posthog_strerror(got[i]));
        it_drop_clear(&x);
    }
    it_check_balance(c, 0, 4);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

/* Minimal reproducers of the two escaping cases test_escaping_round_trip covers. */
static void round_trip_one(const char *did, const char *value)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "gzip", "0");
    posthog_client_t *c = it_client(o);
    posthog_props_t *p = posthog_props_new();
    ck_assert_int_eq(posthog_props_set_string(p, "v", value), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture(c, did, "esc", p), POSTHOG_OK);
    posthog_props_free(p);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *reqs = it_requests(srv);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 1);
    const cJSON *r = cJSON_GetArrayItem(reqs, 0);
    const char *err = it_str(r, "error");
    ck_assert_msg(it_req_status(r) == 200, "server answered %d: %s", it_req_status(r),
                  err ? err : "");
    const cJSON *e = cJSON_GetArrayItem(it_req_batch(r), 0);
    assert_str(e, "distinct_id", did);
    assert_str(obj(e, "properties"), "v", value);
    cJSON_Delete(reqs);
    it_check_balance(c, 1, 0);
    posthog_client_free(c);
    it_stop(srv);
}

START_TEST(test_escape_backslash)
{
    round_trip_one("C:\\Users\\me", "path C:\\tmp\\x");
}
END_TEST

START_TEST(test_escape_control_char_then_f)
{
    round_trip_one("id\tfff", "a\nfff");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("integration_delivery");
    TCase *tc = tcase_create("delivery");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_payload_fields);
    tcase_add_test(tc, test_gzip_off_sends_plain_json);
    tcase_add_test(tc, test_escaping_round_trip);
    tcase_add_test(tc, test_escape_backslash);
    tcase_add_test(tc, test_escape_control_char_then_f);
    tcase_add_test(tc, test_super_properties_merge);
    tcase_add_test(tc, test_default_distinct_id);
    tcase_add_test(tc, test_capture_ex_fields);
    tcase_add_test(tc, test_generated_distinct_id_is_personless);
    tcase_add_test(tc, test_capture_opts_and_geoip);
    tcase_add_test(tc, test_person_and_group_calls);
    tcase_add_test(tc, test_before_send);
    tcase_add_test(tc, test_disabled_sends_nothing);
    tcase_add_test(tc, test_historical_migration);
    tcase_add_test(tc, test_flush_at_triggers_send);
    tcase_add_test(tc, test_flush_at_batch_sizes);
    tcase_add_test(tc, test_flush_interval_sends_partial_batch);
    tcase_add_test(tc, test_empty_flush_sends_nothing);
    tcase_add_test(tc, test_invalid_input_never_sent);
    tcase_add_test(tc, test_drop_report_status_matches_return);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return it_run_suite(suite()); }
