/*
 * Integration: every row of the response table of capture-api.md, the
 * retry rules (max_retries, backoff, Retry-After and its cap), 413
 * splitting, and what a retried request must keep (uuid, timestamp) and
 * renew (sent_at). Faults come from the local server's script.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support_client.h"

typedef struct fx {
    ph_ingest_t *srv;
    it_drops_t *d;
    posthog_client_t *c;
} fx_t;

/* A server (extra args may be NULL) and a client with a drop collector;
 * `opts` is a NULL-terminated list of key, value pairs applied last. */
static fx_t start(const char *const *server_args, const char *const *opts)
{
    fx_t f;
    f.srv = it_server(server_args);
    f.d = it_drops_new();
    posthog_options_t *o = it_options(f.srv);
    it_set(o, "flush_interval_ms", "60000");
    for (int i = 0; opts && opts[i]; i += 2)
        it_set(o, opts[i], opts[i + 1]);
    it_drops_attach(o, f.d);
    f.c = it_client(o);
    return f;
}

static void finish(fx_t *f)
{
    posthog_client_free(f->c);
    it_drops_free(f->d);
    it_stop(f->srv);
}

/* Captures n events "seq"=i and keeps their uuids (37 bytes each). */
static void capture_n(posthog_client_t *c, int n, char (*uuids)[37])
{
    for (int i = 0; i < n; i++) {
        char props[64];
        snprintf(props, sizeof props, "{\"seq\":%d}", i);
        ck_assert_int_eq(posthog_capture_ex(c, "u", "retry-me", props, 0, NULL, NULL, NULL, NULL,
                                            uuids ? uuids[i] : NULL),
                         POSTHOG_OK);
    }
}

/* The events of a drop report's events_json contain exactly these uuids. */
static void assert_drop_uuids(const it_drop_t *x, char (*uuids)[37], int n)
{
    ck_assert_msg(x->events_json != NULL, "flusher-side drop without events_json");
    cJSON *arr = cJSON_Parse(x->events_json);
    ck_assert_msg(cJSON_IsArray(arr), "events_json is not a JSON array: %s", x->events_json);
    ck_assert_int_eq(cJSON_GetArraySize(arr), n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(it_find_event_by_uuid(arr, uuids[i]) != NULL, "uuid %s not in events_json",
                      uuids[i]);
    cJSON_Delete(arr);
}

/* Every accepted event's uuid is one of `uuids`, each exactly once. */
static void assert_delivered_once(ph_ingest_t *srv, char (*uuids)[37], int n)
{
    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), n);
    for (int i = 0; i < n; i++) {
        int seen = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, events) seen += strcmp(it_str(e, "uuid"), uuids[i]) == 0;
        ck_assert_msg(seen == 1, "uuid %s delivered %d times", uuids[i], seen);
    }
    cJSON_Delete(events);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
}

/* ------------------------------------------------------------ 2xx */

static const int ok_statuses[] = {200, 201, 204};

START_TEST(test_2xx_done)
{
    int status = ok_statuses[_i];
    fx_t f = start(NULL, NULL);
    char faults[128];
    snprintf(faults, sizeof faults, "{\"script\":[{\"status\":%d}]}", status);
    it_faults(f.srv, faults);
    capture_n(f.c, 3, NULL);
    ck_assert_int_eq(posthog_flush(f.c, 10000), POSTHOG_OK);
    it_sleep_ms(200);
    cJSON *reqs = it_requests(f.srv);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 1);
    ck_assert_int_eq(it_req_status(cJSON_GetArrayItem(reqs, 0)), status);
    cJSON_Delete(reqs);
    posthog_stats_t s = it_stats(f.c);
    ck_assert_uint_eq(s.sent, 3);
    ck_assert_uint_eq(s.requests, 1);
    ck_assert_uint_eq(s.retries, 0);
    ck_assert_uint_eq(s.dropped_total, 0);
    ck_assert_uint_eq(it_drops_reports(f.d), 0);
    it_check_balance(f.c, 3, 0);
    finish(&f);
}
END_TEST

/* ------------------------------------------------------------ 400/401/403 */

static const int reject_statuses[] = {400, 401, 403};

static void check_rejected(fx_t *f, int status, char (*uuids)[37], int n)
{
    ck_assert_int_eq(posthog_flush(f->c, 10000), POSTHOG_OK);
    it_sleep_ms(300); /* a wrong retry would show up by now (backoff 20 ms) */
    ck_assert_int_eq(it_summary_num(f->srv, "requests"), 1);
    posthog_stats_t s = it_stats(f->c);
    ck_assert_uint_eq(s.requests, 1);
    ck_assert_uint_eq(s.retries, 0);
    ck_assert_uint_eq(s.sent, 0);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_REJECTED], (uint64_t)n);
    ck_assert_uint_eq(it_drops_reports(f->d), 1);
    it_drop_t x = it_drops_get(f->d, 0);
    ck_assert_int_eq(x.reason, POSTHOG_DROP_REJECTED);
    ck_assert_int_eq(x.http_status, status);
    ck_assert_uint_eq(x.count, (uint32_t)n);
    ck_assert_int_ne(x.status, POSTHOG_OK);
    assert_drop_uuids(&x, uuids, n);
    it_drop_clear(&x);
    it_check_balance(f->c, (uint64_t)n, 0);
}

START_TEST(test_reject_not_retried)
{
    int status = reject_statuses[_i];
    fx_t f = start(NULL, NULL);
    char faults[128];
    snprintf(faults, sizeof faults, "{\"script\":[{\"status\":%d},{\"status\":%d}]}", status,
             status);
    it_faults(f.srv, faults);
    char uuids[3][37];
    capture_n(f.c, 3, uuids);
    check_rejected(&f, status, uuids, 3);
    finish(&f);
}
END_TEST

/* The server itself refuses an unknown key with 401 (no script). */
START_TEST(test_unknown_api_key_401)
{
    static const char *const args[] = {"--api-key", "phc_other", NULL};
    fx_t f = start(args, NULL);
    char uuids[2][37];
    capture_n(f.c, 2, uuids);
    check_rejected(&f, 401, uuids, 2);
    finish(&f);
}
END_TEST

/* ------------------------------------------------------------ 413 */

START_TEST(test_413_split_in_halves)
{
    fx_t f = start(NULL, NULL);
    it_faults(f.srv, "{\"script\":[{\"status\":413},{\"status\":413}]}");
    char uuids[8][37];
    capture_n(f.c, 8, uuids);
    ck_assert_int_eq(posthog_flush(f.c, 10000), POSTHOG_OK);
    cJSON *reqs = it_requests(f.srv);
    int n = cJSON_GetArraySize(reqs);
    char trace[256] = "";
    int sizes_413[8], n413 = 0, sizes_ok[8], nok = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs) {
        size_t l = strlen(trace);
        snprintf(trace + l, sizeof trace - l, "%d:%d ", it_req_nevents(r), it_req_status(r));
        if (n413 < 8 && it_req_status(r) == 413)
            sizes_413[n413++] = it_req_nevents(r);
        else if (nok < 8 && it_req_status(r) == 200)
            sizes_ok[nok++] = it_req_nevents(r);
    }
    /* 8 -> 413; a half of 4 -> 413; its halves of 2 and the other 4 pass */
    ck_assert_msg(n == 5 && n413 == 2 && sizes_413[0] == 8 && sizes_413[1] == 4,
                  "requests (events:status): %s", trace);
    int sum = 0, twos = 0, fours = 0;
    for (int i = 0; i < nok; i++) {
        sum += sizes_ok[i];
        twos += sizes_ok[i] == 2;
        fours += sizes_ok[i] == 4;
    }
    ck_assert_msg(sum == 8 && twos == 2 && fours == 1, "requests (events:status): %s", trace);
    cJSON_Delete(reqs);
    assert_delivered_once(f.srv, uuids, 8);
    posthog_stats_t s = it_stats(f.c);
    ck_assert_uint_eq(s.sent, 8);
    ck_assert_uint_eq(s.dropped_total, 0);
    it_check_balance(f.c, 8, 0);
    finish(&f);
}
END_TEST

/* The server's body limit forces the splits (no script). */
START_TEST(test_413_body_limit_split_until_accepted)
{
    static const char *const opts[] = {"gzip", "0", NULL};
    fx_t f = start(NULL, opts);
    it_faults(f.srv, "{\"max_body_bytes\":3500}");
    char uuids[16][37];
    char *pad = it_repeat('p', 500);
    for (int i = 0; i < 16; i++) {
        char props[600];
        snprintf(props, sizeof props, "{\"seq\":%d,\"pad\":\"%s\"}", i, pad);
        ck_assert_int_eq(posthog_capture_ex(f.c, "u", "padded", props, 0, NULL, NULL, NULL, NULL,
                                            uuids[i]),
                         POSTHOG_OK);
    }
    free(pad);
    ck_assert_int_eq(posthog_flush(f.c, 20000), POSTHOG_OK);
    cJSON *reqs = it_requests(f.srv);
    const cJSON *r;
    int first = 1;
    cJSON_ArrayForEach(r, reqs) {
        const cJSON *wb = cJSON_GetObjectItemCaseSensitive(r, "wire_bytes");
        if (first)
            ck_assert_int_eq(it_req_status(r), 413);
        first = 0;
        if (it_req_status(r) == 200)
            ck_assert_int_le((int)wb->valuedouble, 3500);
        else
            ck_assert_int_eq(it_req_status(r), 413);
    }
    cJSON_Delete(reqs);
    assert_delivered_once(f.srv, uuids, 16);
    ck_assert_uint_eq(it_stats(f.c).dropped_total, 0);
    it_check_balance(f.c, 16, 0);
    finish(&f);
}
END_TEST

START_TEST(test_413_lone_event_dropped_too_large)
{
    fx_t f = start(NULL, NULL);
    it_faults(f.srv, "{\"max_event_bytes\":2000}");
    char uuids[4][37];
    char *big = it_repeat('b', 5000);
    char *props = malloc(5100);
    for (int i = 0; i < 4; i++) {
        snprintf(props, 5100, "{\"seq\":%d,\"pad\":\"%s\"}", i, i == 1 ? big : "small");
        ck_assert_int_eq(posthog_capture_ex(f.c, "u", "maybe-big", props, 0, NULL, NULL, NULL,
                                            NULL, uuids[i]),
                         POSTHOG_OK);
    }
    free(props);
    free(big);
    ck_assert_int_eq(posthog_flush(f.c, 20000), POSTHOG_OK);

    char ok_uuids[3][37];
    memcpy(ok_uuids[0], uuids[0], 37);
    memcpy(ok_uuids[1], uuids[2], 37);
    memcpy(ok_uuids[2], uuids[3], 37);
    assert_delivered_once(f.srv, ok_uuids, 3);
    posthog_stats_t s = it_stats(f.c);
    ck_assert_uint_eq(s.sent, 3);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_TOO_LARGE], 1);
    ck_assert_uint_eq(s.dropped_total, 1);
    ck_assert_uint_eq(it_drops_reports(f.d), 1);
    it_drop_t x = it_drops_get(f.d, 0);
    ck_assert_int_eq(x.reason, POSTHOG_DROP_TOO_LARGE);
    ck_assert_int_eq(x.http_status, 413);
    ck_assert_uint_eq(x.count, 1);
    assert_drop_uuids(&x, &uuids[1], 1);
    it_drop_clear(&x);
    it_check_balance(f.c, 4, 0);
    finish(&f);
}
END_TEST

/* ------------------------------------------------------------ transient */

typedef struct transient {
    const char *name;
    const char *step; /* one script step */
} transient_t;

static const transient_t transients[] = {
    {"408", "{\"status\":408}"},
    {"429", "{\"status\":429}"},
    {"500", "{\"status\":500}"},
    {"502", "{\"status\":502}"},
    {"503", "{\"status\":503}"},
    {"504", "{\"status\":504}"},
    {"reset", "{\"reset\":true}"},
};

/* Each event of the first request appears, byte-identical in uuid and
 * timestamp, in every later request; sent_at is new every time. */
static void assert_same_events_new_sent_at(const cJSON *reqs)
{
    int n = cJSON_GetArraySize(reqs);
    const cJSON *first = cJSON_GetArrayItem(reqs, 0);
    const cJSON *b0 = it_req_batch(first);
    ck_assert_ptr_nonnull(b0);
    int64_t prev_sent = INT64_MIN;
    const char *prev_sent_s = NULL;
    for (int k = 0; k < n; k++) {
        const cJSON *r = cJSON_GetArrayItem(reqs, k);
        const cJSON *b = it_req_batch(r);
        ck_assert_msg(b != NULL, "request %d has no batch", k);
        ck_assert_int_eq(cJSON_GetArraySize(b), cJSON_GetArraySize(b0));
        for (int i = 0; i < cJSON_GetArraySize(b0); i++) {
            const cJSON *e0 = cJSON_GetArrayItem(b0, i), *e = cJSON_GetArrayItem(b, i);
            ck_assert_str_eq(it_str(e, "uuid"), it_str(e0, "uuid"));
            ck_assert_str_eq(it_str(e, "timestamp"), it_str(e0, "timestamp"));
            ck_assert_str_eq(it_str(e, "event"), it_str(e0, "event"));
            char *j0 = cJSON_PrintUnformatted(e0), *j = cJSON_PrintUnformatted(e);
            ck_assert_str_eq(j, j0); /* the whole event is unchanged */
            cJSON_free(j0);
            cJSON_free(j);
        }
        const char *sent_s = it_str(it_req_body(r), "sent_at");
        ck_assert(it_is_iso_utc_ms(sent_s));
        int64_t sent = it_iso_ms(sent_s);
        if (prev_sent_s) {
            ck_assert_msg(strcmp(sent_s, prev_sent_s) != 0 && sent > prev_sent,
                          "sent_at not renewed: attempt %d %s, attempt %d %s", k - 1, prev_sent_s,
                          k, sent_s);
        }
        prev_sent = sent;
        prev_sent_s = sent_s;
    }
}

START_TEST(test_transient_retried_then_succeeds)
{
    const transient_t *t = &transients[_i];
    fx_t f = start(NULL, NULL);
    char faults[256];
    snprintf(faults, sizeof faults, "{\"script\":[%s,%s]}", t->step, t->step);
    it_faults(f.srv, faults);
    char uuids[3][37];
    capture_n(f.c, 3, uuids);
    ck_assert_int_eq(posthog_flush(f.c, 10000), POSTHOG_OK);
    cJSON *reqs = it_requests(f.srv);
    ck_assert_msg(cJSON_GetArraySize(reqs) == 3, "%s: %d requests, expected 3", t->name,
                  cJSON_GetArraySize(reqs));
    ck_assert_int_eq(it_req_status(cJSON_GetArrayItem(reqs, 2)), 200);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(reqs, 2),
                                                           "accepted")));
    assert_same_events_new_sent_at(reqs);
    cJSON_Delete(reqs);
    assert_delivered_once(f.srv, uuids, 3);
    posthog_stats_t s = it_stats(f.c);
    ck_assert_uint_eq(s.requests, 3);
    ck_assert_uint_eq(s.retries, 2);
    ck_assert_uint_eq(s.sent, 3);
    ck_assert_uint_eq(s.dropped_total, 0);
    it_check_balance(f.c, 3, 0);
    finish(&f);
}
END_TEST

/* A request that times out is retried with the same uuid and timestamp (the
 * server may have accepted the first: it de-duplicates on uuid). */
START_TEST(test_request_timeout_retried_same_uuid)
{
    static const char *const opts[] = {"request_timeout_ms", "300", NULL};
    fx_t f = start(NULL, opts);
    it_faults(f.srv, "{\"script\":[{\"delay_ms\":2000}]}");
    capture_n(f.c, 2, NULL);
    ck_assert_int_eq(posthog_flush(f.c, 10000), POSTHOG_OK);
    cJSON *reqs = it_requests(f.srv);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 2);
    assert_same_events_new_sent_at(reqs);
    cJSON_Delete(reqs);
    posthog_stats_t s = it_stats(f.c);
    ck_assert_uint_eq(s.requests, 2);
    ck_assert_uint_eq(s.sent, 2);
    it_check_balance(f.c, 2, 0);
    finish(&f);
}
END_TEST

START_TEST(test_max_retries_exhausted)
{
    static const char *const opts[] = {"max_retries", "3", NULL};
    fx_t f = start(NULL, opts);
    char faults[1024] = "{\"script\":[";
    for (int i = 0; i < 10; i++)
        strcat(faults, i ? ",{\"status\":503}" : "{\"status\":503}");
    strcat(faults, "]}");
    it_faults(f.srv, faults);
    char uuids[2][37];
    capture_n(f.c, 2, uuids);
    ck_assert_int_eq(posthog_flush(f.c, 10000), POSTHOG_OK);
    it_sleep_ms(300);
    ck_assert_int_eq(it_summary_num(f.srv, "requests"), 4);
    cJSON *reqs = it_requests(f.srv);
    assert_same_events_new_sent_at(reqs);
    cJSON_Delete(reqs);
    posthog_stats_t s = it_stats(f.c);
    ck_assert_uint_eq(s.requests, 4);
    ck_assert_uint_eq(s.retries, 3);
    ck_assert_uint_eq(s.sent, 0);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_RETRIES_EXHAUSTED], 2);
    ck_assert_uint_eq(it_drops_reports(f.d), 1);
    it_drop_t x = it_drops_get(f.d, 0);
    ck_assert_int_eq(x.reason, POSTHOG_DROP_RETRIES_EXHAUSTED);
    ck_assert_int_eq(x.http_status, 503);
    ck_assert_uint_eq(x.count, 2);
    assert_drop_uuids(&x, uuids, 2);
    it_drop_clear(&x);
    it_check_balance(f.c, 2, 0);
    finish(&f);
}
END_TEST

START_TEST(test_max_retries_zero_one_attempt)
{
    static const char *const opts[] = {"max_retries", "0", NULL};
    fx_t f = start(NULL, opts);
    it_faults(f.srv, "{\"script\":[{\"status\":503},{\"status\":503}]}");
    capture_n(f.c, 1, NULL);
    ck_assert_int_eq(posthog_flush(f.c, 10000), POSTHOG_OK);
    it_sleep_ms(300);
    ck_assert_int_eq(it_summary_num(f.srv, "requests"), 1);
    posthog_stats_t s = it_stats(f.c);
    ck_assert_uint_eq(s.requests, 1);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_RETRIES_EXHAUSTED], 1);
    it_check_balance(f.c, 1, 0);
    finish(&f);
}
END_TEST

/* ------------------------------------------------------------ waits */

/* Gaps between attempts from their sent_at (set at each attempt). */
static int attempt_gaps(ph_ingest_t *srv, int64_t *gaps, int max)
{
    cJSON *reqs = it_requests(srv);
    int n = cJSON_GetArraySize(reqs);
    int64_t prev = 0;
    for (int i = 0; i < n && i <= max; i++) {
        /* v0: the body's sent_at; v1: the PostHog-Request-Timestamp header */
        const cJSON *rq = cJSON_GetArrayItem(reqs, i);
        const char *at = it_str(it_req_body(rq), "sent_at");
        if (!at) at = it_req_header(rq, "posthog-request-timestamp");
        int64_t t = it_iso_ms(at);
        ck_assert(t != INT64_MIN);
        if (i)
            gaps[i - 1] = t - prev;
        prev = t;
    }
    cJSON_Delete(reqs);
    return n - 1;
}

START_TEST(test_backoff_default_at_least_100ms_and_growing)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = posthog_options_new(); /* default retry_backoff_ms */
    it_set(o, "api_key", IT_API_KEY);
    it_set(o, "host", ph_ingest_url(srv));
    it_faults(srv, "{\"script\":[{\"status\":503},{\"status\":503},{\"status\":503}]}");
    posthog_client_t *c = it_client(o);
    capture_n(c, 1, NULL);
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
    int64_t elapsed = it_mono_ms() - t0;
    int64_t g[3];
    ck_assert_int_eq(attempt_gaps(srv, g, 3), 3);
    ck_assert_msg(g[0] >= 100, "first retry after %lld ms (< 100)", (long long)g[0]);
    ck_assert_msg(g[1] > g[0] && g[2] > g[1], "backoff not growing: %lld %lld %lld",
                  (long long)g[0], (long long)g[1], (long long)g[2]);
    ck_assert_msg(g[1] >= 180 && g[2] >= 360, "backoff not exponential: %lld %lld %lld",
                  (long long)g[0], (long long)g[1], (long long)g[2]);
    ck_assert_int_ge(elapsed, 100 + 180 + 360);
    ck_assert_uint_eq(it_stats(c).sent, 1);
    it_check_balance(c, 1, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

static const char *const retry_after_steps[] = {
    "{\"script\":[{\"status\":429,\"retry_after\":\"2\"}]}",
    "{\"script\":[{\"status\":503,\"retry_after\":\"2\"}]}",
};

START_TEST(test_retry_after_seconds)
{
    fx_t f = start(NULL, NULL);
    it_faults(f.srv, retry_after_steps[_i]);
    capture_n(f.c, 1, NULL);
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_flush(f.c, 20000), POSTHOG_OK);
    int64_t elapsed = it_mono_ms() - t0;
    int64_t g[1];
    ck_assert_int_eq(attempt_gaps(f.srv, g, 1), 1);
    ck_assert_msg(g[0] >= 2000, "retry %lld ms after Retry-After: 2", (long long)g[0]);
    ck_assert_int_ge(elapsed, 2000);
    it_check_balance(f.c, 1, 0);
    finish(&f);
}
END_TEST

START_TEST(test_retry_after_http_date)
{
    fx_t f = start(NULL, NULL);
    time_t when = time(NULL) + 3;
    struct tm tm;
    gmtime_r(&when, &tm);
    char date[64], faults[256];
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(faults, sizeof faults, "{\"script\":[{\"status\":503,\"retry_after\":\"%s\"}]}", date);
    it_faults(f.srv, faults);
    capture_n(f.c, 1, NULL);
    ck_assert_int_eq(posthog_flush(f.c, 20000), POSTHOG_OK);
    int64_t g[1];
    ck_assert_int_eq(attempt_gaps(f.srv, g, 1), 1);
    /* the date is 3 s ahead at 1 s resolution: at least ~2 s to wait */
    ck_assert_msg(g[0] >= 1500, "retry %lld ms after Retry-After: %s", (long long)g[0], date);
    it_check_balance(f.c, 1, 0);
    finish(&f);
}
END_TEST

START_TEST(test_retry_after_capped_by_max_retry_wait)
{
    static const char *const opts[] = {"max_retry_wait_ms", "500", NULL};
    fx_t f = start(NULL, opts);
    it_faults(f.srv, "{\"script\":[{\"status\":503,\"retry_after\":\"30\"}]}");
    capture_n(f.c, 1, NULL);
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_flush(f.c, 15000), POSTHOG_OK); /* well before 30 s */
    int64_t elapsed = it_mono_ms() - t0;
    int64_t g[1];
    ck_assert_int_eq(attempt_gaps(f.srv, g, 1), 1);
    ck_assert_msg(g[0] >= 500, "retry after %lld ms, expected the 500 ms cap", (long long)g[0]);
    ck_assert_msg(elapsed < 10000, "flush took %lld ms: Retry-After not capped",
                  (long long)elapsed);
    it_check_balance(f.c, 1, 0);
    finish(&f);
}
END_TEST

/* ------------------------------------------------------------ server down */

START_TEST(test_connection_refused_retried_then_dropped)
{
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = it_options(NULL);
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", it_closed_port());
    it_set(o, "host", host);
    it_set(o, "max_retries", "2");
    it_set(o, "connect_timeout_ms", "1000");
    it_drops_attach(o, d);
    posthog_client_t *c = it_client(o);
    char uuids[2][37];
    capture_n(c, 2, uuids);
    ck_assert_int_eq(posthog_flush(c, 15000), POSTHOG_OK);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.requests, 3);
    ck_assert_uint_eq(s.retries, 2);
    ck_assert_uint_eq(s.sent, 0);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_RETRIES_EXHAUSTED], 2);
    ck_assert_uint_eq(it_drops_reports(d), 1);
    it_drop_t x = it_drops_get(d, 0);
    ck_assert_int_eq(x.reason, POSTHOG_DROP_RETRIES_EXHAUSTED);
    ck_assert_int_eq(x.http_status, 0);
    ck_assert_uint_eq(x.count, 2);
    assert_drop_uuids(&x, uuids, 2);
    it_drop_clear(&x);
    it_check_balance(c, 2, 0);
    posthog_client_free(c);
    it_drops_free(d);
}
END_TEST

/* The server goes away mid-run: in-flight retries fail, later ones to a
 * new server are unaffected (a stopped server refuses connections). */
START_TEST(test_server_stopped_retried_then_dropped)
{
    static const char *const opts[] = {"max_retries", "2", "connect_timeout_ms", "1000", NULL};
    fx_t f = start(NULL, opts);
    capture_n(f.c, 1, NULL);
    ck_assert_int_eq(posthog_flush(f.c, 10000), POSTHOG_OK);
    ck_assert_uint_eq(it_stats(f.c).sent, 1);
    it_stop(f.srv);
    f.srv = NULL;
    capture_n(f.c, 2, NULL);
    ck_assert_int_eq(posthog_flush(f.c, 15000), POSTHOG_OK);
    posthog_stats_t s = it_stats(f.c);
    ck_assert_uint_eq(s.sent, 1);
    ck_assert_uint_eq(s.requests, 1 + 3);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_RETRIES_EXHAUSTED], 2);
    it_check_balance(f.c, 3, 0);
    finish(&f);
}
END_TEST

/* ------------------------------------------------------------ capture while waiting */

START_TEST(test_capture_works_while_batch_waits_to_retry)
{
    static const char *const opts[] = {"flush_interval_ms", "50", NULL};
    fx_t f = start(NULL, opts);
    it_faults(f.srv, "{\"script\":[{\"status\":503,\"retry_after\":\"1\"}]}");
    char uuids[101][37];
    capture_n(f.c, 1, uuids);
    ck_assert_int_eq(it_wait_requests(f.srv, 1, 5000), 0); /* first attempt failed */
    int64_t t0 = it_mono_ms();
    for (int i = 1; i < 101; i++) {
        char props[64];
        snprintf(props, sizeof props, "{\"seq\":%d}", i);
        ck_assert_int_eq(posthog_capture_ex(f.c, "u", "later", props, 0, NULL, NULL, NULL, NULL,
                                            uuids[i]),
                         POSTHOG_OK);
    }
    int64_t took = it_mono_ms() - t0;
    ck_assert_msg(took < 900, "100 captures took %lld ms while a batch waited",
                  (long long)took);
    ck_assert_uint_eq(it_stats(f.c).captured, 101);
    ck_assert_int_eq(posthog_flush(f.c, 15000), POSTHOG_OK);
    assert_delivered_once(f.srv, uuids, 101);
    it_check_balance(f.c, 101, 0);
    finish(&f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("integration_responses");
    TCase *tc = tcase_create("responses");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_2xx_done, 0, (int)(sizeof ok_statuses / sizeof *ok_statuses));
    tcase_add_loop_test(tc, test_reject_not_retried, 0,
                        (int)(sizeof reject_statuses / sizeof *reject_statuses));
    tcase_add_test(tc, test_unknown_api_key_401);
    tcase_add_test(tc, test_413_split_in_halves);
    tcase_add_test(tc, test_413_body_limit_split_until_accepted);
    tcase_add_test(tc, test_413_lone_event_dropped_too_large);
    tcase_add_loop_test(tc, test_transient_retried_then_succeeds, 0,
                        (int)(sizeof transients / sizeof *transients));
    tcase_add_test(tc, test_request_timeout_retried_same_uuid);
    tcase_add_test(tc, test_max_retries_exhausted);
    tcase_add_test(tc, test_max_retries_zero_one_attempt);
    tcase_add_test(tc, test_backoff_default_at_least_100ms_and_growing);
    tcase_add_loop_test(tc, test_retry_after_seconds, 0,
                        (int)(sizeof retry_after_steps / sizeof *retry_after_steps));
    tcase_add_test(tc, test_retry_after_http_date);
    tcase_add_test(tc, test_retry_after_capped_by_max_retry_wait);
    tcase_add_test(tc, test_connection_refused_retried_then_dropped);
    tcase_add_test(tc, test_server_stopped_retried_then_dropped);
    tcase_add_test(tc, test_capture_works_while_batch_waits_to_retry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return it_run_suite(suite()); }
