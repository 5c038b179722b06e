/*
 * The transport hook (posthog_options_set_transport) against the local
 * ingestion server: a hook that forwards every request over a tiny HTTP/1.1
 * client (examples/mini_http.c, no libcurl) delivers v1 and v0 batches and
 * the flags requests (/flags, /flags/definitions with ETag/304) exactly as
 * libcurl does, completing synchronously or later from another thread;
 * statuses, Retry-After and v1 per-event results are handled as with
 * libcurl; a hook that never completes blocks nothing beyond the
 * library's deadlines and loses nothing. In a build without libcurl
 * (POSTHOG_WITH_CURL=OFF) the comparisons with libcurl are skipped and
 * everything else runs the same.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mini_http.h"
#include "support_client.h"
#include "support_spool.h"

/* ------------------------------------------------------------ the forwarding hook */

enum { FWD_SYNC, FWD_ASYNC, FWD_NEVER, FWD_REFUSE_FIRST };

typedef struct job {
    posthog_transport_call_t *call;
    char *method, *url, **headers;
    size_t nheaders;
    void *body;
    size_t body_len;
    int timeout_ms;
    struct job *next;
} job_t;

typedef struct {
    int mode;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *head, *tail;
    bool stop;
    pthread_t worker;
    bool has_worker;
    int kinds[3];                 /* capture, flags, flag_definitions */
    int calls;
    int refused;
    posthog_transport_call_t *held[256]; /* FWD_NEVER: never completed */
    int nheld;
} fwd_t;

static void forward(posthog_transport_call_t *call, const char *method, const char *url,
                    const char *const *headers, size_t n, const void *body, size_t len,
                    int timeout_ms) {
    mh_resp_t r;
    if (mh_request(method, url, headers, n, body, len, timeout_ms, &r) == 0) {
        ck_assert_int_eq(posthog_transport_complete(call, r.status,
                                                    r.retry_after[0] ? r.retry_after : NULL,
                                                    r.etag[0] ? r.etag : NULL, r.body,
                                                    r.body_len),
                         POSTHOG_OK);
        mh_resp_free(&r);
    } else {
        ck_assert_int_eq(posthog_transport_fail(call, r.error), POSTHOG_OK);
    }
}

static void *worker_main(void *arg) {
    fwd_t *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->head && !f->stop) pthread_cond_wait(&f->cv, &f->mu);
        job_t *j = f->head;
        if (!j) break;
        f->head = j->next;
        if (!f->head) f->tail = NULL;
        pthread_mutex_unlock(&f->mu);
        forward(j->call, j->method, j->url, (const char *const *)j->headers, j->nheaders, j->body,
                j->body_len, j->timeout_ms);
        for (size_t i = 0; i < j->nheaders; i++) free(j->headers[i]);
        free(j->headers);
        free(j->method);
        free(j->url);
        free(j->body);
        free(j);
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static int hook(const posthog_transport_request_t *req, posthog_transport_call_t *call, void *ud) {
    fwd_t *f = ud;
    ck_assert_ptr_nonnull(req->method);
    ck_assert_ptr_nonnull(req->url);
    ck_assert(req->timeout_ms > 0);
    ck_assert(!strcmp(req->method, "GET") == (req->body == NULL));
    pthread_mutex_lock(&f->mu);
    f->calls++;
    f->kinds[!strcmp(req->kind, "capture") ? 0 : !strcmp(req->kind, "flags") ? 1 : 2]++;
    int mode = f->mode;
    if (mode == FWD_REFUSE_FIRST && !f->refused) {
        f->refused++;
        pthread_mutex_unlock(&f->mu);
        return -7;
    }
    if (mode == FWD_NEVER) {
        ck_assert_int_lt(f->nheld, 256);
        f->held[f->nheld++] = call;
        pthread_mutex_unlock(&f->mu);
        return 0;
    }
    pthread_mutex_unlock(&f->mu);
    if (mode != FWD_ASYNC) {
        forward(call, req->method, req->url, req->headers, req->header_count, req->body,
                req->body_len, (int)req->timeout_ms);
        return 0;
    }
    /* later, from the worker thread: the request's memory stays valid until
     * completion, but a copy shows the hook may also keep its own */
    job_t *j = calloc(1, sizeof *j);
    ck_assert_ptr_nonnull(j);
    j->call = call;
    j->method = strdup(req->method);
    j->url = strdup(req->url);
    j->headers = calloc(req->header_count + 1, sizeof *j->headers);
    for (size_t i = 0; i < req->header_count; i++) j->headers[i] = strdup(req->headers[i]);
    j->nheaders = req->header_count;
    if (req->body) {
        j->body = malloc(req->body_len + 1);
        memcpy(j->body, req->body, req->body_len);
    }
    j->body_len = req->body_len;
    j->timeout_ms = (int)req->timeout_ms;
    pthread_mutex_lock(&f->mu);
    if (f->tail) f->tail->next = j;
    else f->head = j;
    f->tail = j;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static fwd_t *fwd_new(int mode) {
    fwd_t *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    f->mode = mode;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (mode == FWD_ASYNC) {
        ck_assert_int_eq(pthread_create(&f->worker, NULL, worker_main, f), 0);
        f->has_worker = true;
    }
    return f;
}

static int fwd_kind(fwd_t *f, int k) {
    pthread_mutex_lock(&f->mu);
    int n = f->kinds[k];
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* After the client is freed: the worker finishes its queue; calls held by
 * a never-completing hook are completed now (safe after free). */
static void fwd_free(fwd_t *f) {
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (f->has_worker) pthread_join(f->worker, NULL);
    for (int i = 0; i < f->nheld; i++) {
        if (i % 2) ck_assert_int_eq(posthog_transport_fail(f->held[i], "too late"), POSTHOG_OK);
        else
            ck_assert_int_eq(posthog_transport_complete(f->held[i], 200, NULL, NULL, "{}", 2),
                             POSTHOG_OK);
    }
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static posthog_options_t *hook_options(ph_ingest_t *s, fwd_t *f) {
    posthog_options_t *o = it_options(s);
    posthog_options_set_transport(o, hook, f);
    return o;
}

/* ------------------------------------------------------------ comparing what arrived */

/* A request record reduced to what the client decides: method, path, query,
 * protocol, encoding, the headers the library sets (not Host, Accept,
 * Connection, Content-Length that the HTTP client adds) and the body with
 * the per-request fields (sent_at, created_at, request ids) removed. */
static cJSON *reduce_request(const cJSON *r) {
    cJSON *o = cJSON_CreateObject();
    static const char *keep[] = {"method", "path", "query", "protocol", "encoding", "status"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, keep[i]);
        if (v) cJSON_AddItemToObject(o, keep[i], cJSON_Duplicate(v, 1));
    }
    cJSON *h = cJSON_AddObjectToObject(o, "headers");
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(r, "headers"), *x;
    cJSON_ArrayForEach(x, hs) {
        static const char *skip[] = {"host", "accept", "connection", "content-length", "expect"};
        bool s = false;
        for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++) s = s || !strcmp(x->string, skip[i]);
        if (s) continue;
        /* values that differ per request: present on both sides is enough */
        bool varies = strstr(x->string, "request-id") || strstr(x->string, "sent-at") ||
                      strstr(x->string, "attempt") || strstr(x->string, "timestamp");
        cJSON_AddItemToObject(h, x->string, varies ? cJSON_CreateString("*") : cJSON_Duplicate(x, 1));
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(r, "body");
    if (b) {
        cJSON *bd = cJSON_Duplicate(b, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(bd, "sent_at");
        cJSON_DeleteItemFromObjectCaseSensitive(bd, "created_at");
        cJSON_AddItemToObject(o, "body", bd);
    }
    return o;
}

static void assert_same_requests(cJSON *a, cJSON *b) {
    ck_assert_int_eq(cJSON_GetArraySize(a), cJSON_GetArraySize(b));
    for (int i = 0; i < cJSON_GetArraySize(a); i++) {
        cJSON *ra = reduce_request(cJSON_GetArrayItem(a, i));
        cJSON *rb = reduce_request(cJSON_GetArrayItem(b, i));
        if (!cJSON_Compare(ra, rb, 1)) {
            char *ta = cJSON_PrintUnformatted(ra), *tb = cJSON_PrintUnformatted(rb);
            fprintf(stderr, "request %d differs:\n libcurl: %s\n hook:    %s\n", i, ta, tb);
            ck_abort_msg("request %d differs from libcurl's (printed above)", i);
        }
        cJSON_Delete(ra);
        cJSON_Delete(rb);
    }
}

/* The same events (explicit uuids and timestamps) in both runs. */
static void capture_set(posthog_client_t *c, int n) {
    for (int i = 0; i < n; i++) {
        char uuid[40], props[96];
        snprintf(uuid, sizeof uuid, "0190a0b0-c0d0-7e0f-8a0b-%012d", i + 1);
        snprintf(props, sizeof props, "{\"seq\":%d,\"plan\":\"pro\"}", i);
        posthog_capture_options_t co = {0};
        co.uuid = uuid;
        co.timestamp_ms = 1767323045000LL + i;
        ck_assert_int_eq(posthog_capture_opts(c, "user-1", "page_view", props, &co, NULL), POSTHOG_OK);
    }
}

/* Runs one client (hook f, or libcurl when f is NULL) against a fresh
 * server: n events, flushed; returns the server's request records. */
static cJSON *run_capture(const char *mode, fwd_t *f, int n) {
    ph_ingest_t *s = it_server(NULL);
    posthog_options_t *o = f ? hook_options(s, f) : it_options(s);
    it_set(o, "capture_mode", mode);
    it_set_int(o, "flush_at", 10);
    it_set_int(o, "max_batch_size", 10);
    posthog_client_t *c = it_client(o);
    capture_set(c, n);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    it_check_balance(c, (uint64_t)n, 0);
    ck_assert_uint_eq(it_stats(c).sent, (uint64_t)n);
    posthog_client_free(c);
    ck_assert_int_eq(it_summary_num(s, "unique_uuids"), n);
    ck_assert_int_eq(it_summary_num(s, "duplicate_uuids"), 0);
    cJSON *reqs = it_requests(s);
    it_stop(s);
    return reqs;
}

START_TEST(capture_matches_libcurl) {
    /* _i: 0 v1 sync, 1 v1 async, 2 v0 sync, 3 v0 async */
    const char *mode = _i < 2 ? "v1" : "v0";
    fwd_t *f = fwd_new(_i % 2 ? FWD_ASYNC : FWD_SYNC);
    cJSON *hooked = run_capture(mode, f, 30);
    ck_assert_int_eq(fwd_kind(f, 0), 3);
    ck_assert_int_eq(cJSON_GetArraySize(hooked), 3);
    if (posthog_has_curl()) {
        cJSON *curl = run_capture(mode, NULL, 30);
        assert_same_requests(curl, hooked);
        cJSON_Delete(curl);
    }
    cJSON_Delete(hooked);
    fwd_free(f);
}
END_TEST

/* ------------------------------------------------------------ flags */

#define DEFS                                                                                      \
    "{\"flags\":[{\"id\":1,\"key\":\"beta\",\"active\":true,\"filters\":{\"groups\":[{"          \
    "\"properties\":[],\"rollout_percentage\":100}]}}],\"group_type_mapping\":{},\"cohorts\":{}}"

/* Remote /flags and the definitions (200 with an ETag, then 304) through
 * one client; returns [flags requests, definitions requests]. */
static cJSON *run_flags(fwd_t *f) {
    ph_ingest_t *s = it_server(NULL);
    ck_assert_int_eq(ph_ingest_set_flags(s, "{\"responses\":[{\"status\":502},{\"body\":{"
                                            "\"featureFlags\":{\"remote-one\":\"variant-b\"},"
                                            "\"featureFlagPayloads\":{}}}]}"),
                     0);
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"body\":" DEFS ",\"etag\":\"W/\\\"v1\\\"\","
                                                  "\"secret_key\":\"phs_transport\"}"),
                     0);
    posthog_options_t *o = f ? hook_options(s, f) : it_options(s);
    it_set(o, "secret_key", "phs_transport");
    it_set_int(o, "poll_interval_ms", 3600000);
    it_set_int(o, "feature_flags_request_max_retries", 1);
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_wait_for_flag_definitions(c, 10000), POSTHOG_OK);
    /* locally decided */
    ck_assert_int_eq(posthog_is_feature_enabled(c, "beta", "user-1", NULL), 1);
    /* the second load is answered 304 (If-None-Match) and keeps the flags */
    ck_assert_int_eq(posthog_reload_feature_flags(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(posthog_is_feature_enabled(c, "beta", "user-1", NULL), 1);
    posthog_client_free(c);
    /* remote evaluation (no secret_key): 502 retried, then the answer */
    o = f ? hook_options(s, f) : it_options(s);
    it_set_int(o, "feature_flags_request_max_retries", 1);
    c = it_client(o);
    posthog_flags_t *fl = NULL;
    ck_assert_int_eq(posthog_evaluate_flags(c, "user-1", NULL, &fl), POSTHOG_OK);
    posthog_flag_t v;
    ck_assert_int_eq(posthog_flags_get(fl, "remote-one", &v), 1);
    ck_assert_str_eq(v.variant, "variant-b");
    posthog_flags_free(fl);
    posthog_client_free(c);
    cJSON *out = cJSON_CreateArray();
    cJSON_AddItemToArray(out, ph_ingest_flags_requests(s));
    cJSON_AddItemToArray(out, ph_ingest_definitions_requests(s));
    it_stop(s);
    return out;
}

static void strip_flags_records(cJSON *reqs) {
    cJSON *r;
    cJSON_ArrayForEach(r, reqs) {
        cJSON_DeleteItemFromObjectCaseSensitive(r, "seq");
        cJSON_DeleteItemFromObjectCaseSensitive(r, "time_ms");
        cJSON_DeleteItemFromObjectCaseSensitive(r, "delay_ms");
        cJSON *h = cJSON_GetObjectItemCaseSensitive(r, "headers");
        static const char *skip[] = {"host", "accept", "connection", "content-length", "expect"};
        for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
            cJSON_DeleteItemFromObjectCaseSensitive(h, skip[i]);
    }
}

START_TEST(flags_match_libcurl) {
    fwd_t *f = fwd_new(_i ? FWD_ASYNC : FWD_SYNC);
    cJSON *hooked = run_flags(f);
    ck_assert_int_eq(fwd_kind(f, 1), 2);   /* 502, then the answer */
    ck_assert_int_eq(fwd_kind(f, 2), 2);   /* 200, then 304 */
    cJSON *defs = cJSON_GetArrayItem(hooked, 1);
    ck_assert_int_eq(cJSON_GetArraySize(defs), 2);
    ck_assert_int_eq(it_req_status(cJSON_GetArrayItem(defs, 0)), 200);
    ck_assert_int_eq(it_req_status(cJSON_GetArrayItem(defs, 1)), 304);
    ck_assert_str_eq(it_req_header(cJSON_GetArrayItem(defs, 1), "if-none-match"), "W/\"v1\"");
    strip_flags_records(cJSON_GetArrayItem(hooked, 0));
    strip_flags_records(defs);
    if (posthog_has_curl()) {
        cJSON *curl = run_flags(NULL);
        strip_flags_records(cJSON_GetArrayItem(curl, 0));
        strip_flags_records(cJSON_GetArrayItem(curl, 1));
        if (!cJSON_Compare(curl, hooked, 1)) {
            char *ta = cJSON_PrintUnformatted(curl), *tb = cJSON_PrintUnformatted(hooked);
            fprintf(stderr, "flags requests differ:\n libcurl: %s\n hook:    %s\n", ta, tb);
            ck_abort_msg("flags requests differ from libcurl's (printed above)");
        }
        cJSON_Delete(curl);
    }
    cJSON_Delete(hooked);
    fwd_free(f);
}
END_TEST

/* ------------------------------------------------------------ statuses */

typedef struct {
    pthread_mutex_t mu;
    char waits[8][256];
    int n;
} logs_t;

static void log_fn(posthog_log_level_t level, const char *msg, void *ud) {
    logs_t *l = ud;
    pthread_mutex_lock(&l->mu);
    if (strstr(msg, ": retry ") && l->n < 8) snprintf(l->waits[l->n++], 256, "%s", msg);
    pthread_mutex_unlock(&l->mu);
}

START_TEST(retry_after_and_5xx) {
    /* 503, then 429 with Retry-After: 3, then accepted: the events arrive
     * once, and the wait after the 429 is the server's 3 s, not the
     * 20 ms backoff (read from the log line, not measured) */
    ph_ingest_t *s = it_server(NULL);
    it_faults(s, "{\"script\":[{\"status\":503},{\"status\":429,\"retry_after\":\"3\"}]}");
    fwd_t *f = fwd_new(FWD_ASYNC);
    logs_t l = {.n = 0};
    pthread_mutex_init(&l.mu, NULL);
    posthog_options_t *o = hook_options(s, f);
    posthog_options_set_log(o, log_fn, &l);
    it_set(o, "log_level", "warn");
    it_set_int(o, "max_retry_wait_ms", 10000);
    posthog_client_t *c = it_client(o);
    capture_set(c, 5);
    ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
    it_check_balance(c, 5, 0);
    ck_assert_uint_eq(it_stats(c).retries, 2);
    posthog_client_free(c);
    ck_assert_int_eq(it_summary_num(s, "requests"), 3);
    ck_assert_int_eq(it_summary_num(s, "unique_uuids"), 5);
    ck_assert_int_eq(it_summary_num(s, "duplicate_uuids"), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert_msg(strstr(l.waits[0], "HTTP 503"), "%s", l.waits[0]);
    ck_assert_msg(strstr(l.waits[1], "HTTP 429"), "%s", l.waits[1]);
    long long waited = atoll(strstr(l.waits[1], " in ") + 4);
    ck_assert_msg(waited >= 3000, "the wait after 429 ignored Retry-After: %s", l.waits[1]);
    pthread_mutex_destroy(&l.mu);
    it_stop(s);
    fwd_free(f);
}
END_TEST

START_TEST(v1_per_event_results) {
    /* event 0 dropped by the server, event 1 to be retried: the retried one
     * is resent alone and arrives once; the drop is counted with the
     * server's details */
    ph_ingest_t *s = it_server(NULL);
    it_faults(s, "{\"script\":[{\"verdicts\":[{\"match\":{\"index\":0},\"result\":\"drop\","
                 "\"details\":\"billing_limit_exceeded\"},{\"match\":{\"index\":1},"
                 "\"result\":\"retry\"}]}]}");
    fwd_t *f = fwd_new(_i ? FWD_ASYNC : FWD_SYNC);
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = hook_options(s, f);
    it_drops_attach(o, d);
    it_set(o, "log_level", "none");
    it_set(o, "capture_mode", "v1");
    posthog_client_t *c = it_client(o);
    capture_set(c, 4);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    it_check_balance(c, 4, 0);
    posthog_stats_t st = it_stats(c);
    ck_assert_uint_eq(st.sent, 3);
    ck_assert_uint_eq(st.dropped[POSTHOG_DROP_SERVER_DROPPED], 1);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_SERVER_DROPPED), 1);
    it_drop_t x = it_drops_get(d, 0);
    ck_assert_msg(strstr(x.message, "billing_limit_exceeded"), "%s", x.message);
    it_drop_clear(&x);
    posthog_client_free(c);
    cJSON *reqs = it_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 2);
    ck_assert_int_eq(it_req_nevents(cJSON_GetArrayItem(reqs, 1)), 1);
    cJSON_Delete(reqs);
    ck_assert_int_eq(it_summary_num(s, "unique_uuids"), 3);
    ck_assert_int_eq(it_summary_num(s, "duplicate_uuids"), 0);
    it_drops_free(d);
    it_stop(s);
    fwd_free(f);
}
END_TEST

START_TEST(refusal_and_bad_completion) {
    /* a hook returning non-zero is a failed attempt, retried; completing
     * with a status out of range is refused and fails the call */
    ph_ingest_t *s = it_server(NULL);
    fwd_t *f = fwd_new(FWD_REFUSE_FIRST);
    posthog_options_t *o = hook_options(s, f);
    it_set(o, "log_level", "none");
    posthog_client_t *c = it_client(o);
    capture_set(c, 3);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    it_check_balance(c, 3, 0);
    ck_assert_uint_eq(it_stats(c).retries, 1);
    ck_assert_int_eq(f->calls, 2);
    posthog_client_free(c);
    ck_assert_int_eq(posthog_transport_complete(NULL, 200, NULL, NULL, NULL, 0),
                     POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_transport_fail(NULL, "x"), POSTHOG_E_INVALID_ARG);
    it_stop(s);
    fwd_free(f);
}
END_TEST

static int bad_status_hook(const posthog_transport_request_t *req, posthog_transport_call_t *call,
                           void *ud) {
    (void)req;
    int *n = ud;
    (*n)++;
    ck_assert_int_eq(posthog_transport_call_abandoned(call), 0);
    ck_assert_int_eq(posthog_transport_complete(call, 42, NULL, NULL, NULL, 0),
                     POSTHOG_E_INVALID_ARG);
    return 0;
}

typedef struct {
    posthog_client_t *_Atomic c;
    int flush_rc, shutdown_rc, calls;
} reentry_t;

static int reentry_hook(const posthog_transport_request_t *req, posthog_transport_call_t *call,
                        void *ud) {
    (void)req;
    reentry_t *r = ud;
    posthog_client_t *c = atomic_load(&r->c);
    if (c && !r->calls++) {
        r->flush_rc = posthog_flush(c, 1000);
        r->shutdown_rc = posthog_shutdown(c, 1000);
    }
    posthog_transport_complete(call, 200, NULL, NULL, "{\"status\":1}", 12);
    return 0;
}

START_TEST(flush_inside_the_hook_refused) {
    /* the hook runs in the client's callback frame: waiting for the flusher
     * from the flusher would deadlock until the timeout */
    reentry_t r = {.calls = 0};
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", "http://127.0.0.1:9");
    it_set(o, "log_level", "none");
    posthog_options_set_transport(o, reentry_hook, &r);
    posthog_client_t *c = it_client(o);
    atomic_store(&r.c, c);
    capture_set(c, 2);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.flush_rc, POSTHOG_E_IN_CALLBACK);
    ck_assert_int_eq(r.shutdown_rc, POSTHOG_E_IN_CALLBACK);
    ck_assert_uint_eq(it_stats(c).sent, 2);
    posthog_client_free(c);
}
END_TEST

START_TEST(bad_status_is_a_failure) {
    int n = 0;
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", "http://127.0.0.1:9");
    it_set(o, "log_level", "none");
    it_set_int(o, "max_retries", 1);
    posthog_options_set_transport(o, bad_status_hook, &n);
    posthog_client_t *c = it_client(o);
    capture_set(c, 2);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    it_check_balance(c, 2, 0);
    ck_assert_uint_eq(it_stats(c).dropped[POSTHOG_DROP_RETRIES_EXHAUSTED], 2);
    ck_assert_int_eq(n, 2);
    posthog_client_free(c);
}
END_TEST

/* ------------------------------------------------------------ never completes */

START_TEST(never_completes_spools) {
    /* a hook that never completes: each attempt is given up at
     * request_timeout_ms (+1 s), the batch spooled, shutdown bounded; the
     * next client (forwarding for real) delivers every event once. The held
     * calls are completed after the client is freed. */
    char *dir = it_tmp_dir("transport");
    ph_ingest_t *s = it_server(NULL);
    fwd_t *never = fwd_new(FWD_NEVER);
    posthog_options_t *o = hook_options(s, never);
    it_set(o, "storage_path", dir);
    it_set(o, "log_level", "none");
    it_set_int(o, "request_timeout_ms", 300);
    it_set_int(o, "max_retries", 0);
    it_set_int(o, "shutdown_timeout_ms", 500);
    posthog_client_t *c = it_client(o);
    capture_set(c, 20);
    ck_assert_int_eq(posthog_flush_resolved(c, 20000), POSTHOG_OK);
    posthog_stats_t st = it_stats(c);
    ck_assert_uint_eq(st.sent, 0);
    ck_assert_uint_eq(st.dropped_total, 0);
    ck_assert_uint_eq(st.spooled, 20);
    posthog_shutdown(c, 500);
    posthog_client_free(c);
    ck_assert_int_ge(never->nheld, 1);
    fwd_free(never); /* completes the held calls: the client is gone */
    ck_assert_int_eq(it_summary_num(s, "requests"), 0);

    fwd_t *f = fwd_new(FWD_ASYNC);
    o = hook_options(s, f);
    it_set(o, "storage_path", dir);
    c = it_client(o);
    ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
    ck_assert_uint_eq(it_stats(c).replayed, 20);
    posthog_client_free(c);
    ck_assert_int_eq(it_summary_num(s, "unique_uuids"), 20);
    ck_assert_int_eq(it_summary_num(s, "duplicate_uuids"), 0);
    fwd_free(f);
    it_stop(s);
    it_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(never_completes_counted) {
    /* without a spool: given up, retried, then counted as retries_exhausted
     * (or shutdown at the deadline); nothing is lost silently */
    ph_ingest_t *s = it_server(NULL);
    fwd_t *never = fwd_new(FWD_NEVER);
    posthog_options_t *o = hook_options(s, never);
    it_set(o, "log_level", "none");
    it_set_int(o, "request_timeout_ms", 200);
    it_set_int(o, "max_retries", 1);
    it_set_int(o, "shutdown_timeout_ms", 300);
    posthog_client_t *c = it_client(o);
    capture_set(c, 10);
    posthog_shutdown(c, 300); /* the deadline cuts the attempt in flight */
    posthog_stats_t st = it_stats(c);
    ck_assert_uint_eq(st.sent, 0);
    ck_assert_uint_eq(st.dropped_total, 10);
    ck_assert_uint_eq(st.dropped[POSTHOG_DROP_SHUTDOWN] +
                          st.dropped[POSTHOG_DROP_RETRIES_EXHAUSTED], 10);
    posthog_client_free(c);
    fwd_free(never);
    it_stop(s);
}
END_TEST

START_TEST(no_transport_without_curl) {
    /* a library without libcurl refuses a client without a hook, saying how to fix it */
    posthog_options_t *o = it_options(NULL);
    char err[512] = "";
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    if (posthog_has_curl()) {
        ck_assert_ptr_nonnull(c);
        posthog_client_free(c);
    } else {
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(err, "posthog_options_set_transport") && strstr(err, "libcurl"),
                      "%s", err);
    }
}
END_TEST

static Suite *transport_suite(void) {
    Suite *s = suite_create("transport");
    TCase *t = tcase_create("transport");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, capture_matches_libcurl, 0, 4);
    tcase_add_loop_test(t, flags_match_libcurl, 0, 2);
    tcase_add_test(t, retry_after_and_5xx);
    tcase_add_loop_test(t, v1_per_event_results, 0, 2);
    tcase_add_test(t, refusal_and_bad_completion);
    tcase_add_test(t, bad_status_is_a_failure);
    tcase_add_test(t, flush_inside_the_hook_refused);
    tcase_add_test(t, never_completes_spools);
    tcase_add_test(t, never_completes_counted);
    tcase_add_test(t, no_transport_without_curl);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return it_run_suite(transport_suite()); }
