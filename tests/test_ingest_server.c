/*
 * Tests for the local ingestion server (tools/ingest-server) through the
 * ingest harness: every row of the capture contract it implements, the
 * fault script, the control API, and robustness against bad HTTP.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <brotli/encode.h>
#include <zstd.h>

#include "httpd.h"
#include "ingest_harness.h"

typedef struct resp {
    long status;      /* -1: transport error (see code) */
    CURLcode code;
    char *body;
    size_t body_len;
    char headers[8192];
    double secs;
} resp_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    resp_t *r = ud;
    char *nb = realloc(r->body, r->body_len + size * n + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->body_len, p, size * n);
    r->body = nb;
    r->body_len += size * n;
    r->body[r->body_len] = '\0';
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    resp_t *r = ud;
    size_t have = strlen(r->headers);
    if (have + size * n < sizeof r->headers)
        memcpy(r->headers + have, p, size * n), r->headers[have + size * n] = '\0';
    return size * n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One request on a fresh connection. hdrs: NULL-terminated "Name: value" lines. */
static resp_t req(ph_ingest_t *s, const char *method, const char *path, const void *body,
                  size_t len, const char *const *hdrs)
{
    resp_t r;
    memset(&r, 0, sizeof r);
    r.status = -1;
    char url[512];
    snprintf(url, sizeof url, "%s%s", ph_ingest_url(s), path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    for (int i = 0; hdrs && hdrs[i]; i++)
        h = curl_slist_append(h, hdrs[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    double t0 = now_s();
    r.code = curl_easy_perform(c);
    r.secs = now_s() - t0;
    if (r.code == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

static long post(ph_ingest_t *s, const char *path, const char *json)
{
    resp_t r = req(s, "POST", path, json, strlen(json), NULL);
    free(r.body);
    return r.status;
}

static char *gzip_buf(const void *in, size_t n, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)n);
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n;
    z.next_out = (unsigned char *)out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsNumber(v), "missing number %s", k);
    return v->valuedouble;
}

static double summary_num(ph_ingest_t *s, const char *k)
{
    cJSON *sum = ph_ingest_summary(s);
    ck_assert_ptr_nonnull(sum);
    double v = num(sum, k);
    cJSON_Delete(sum);
    return v;
}

static ph_ingest_t *start(const char *const *args)
{
    ph_ingest_t *s = ph_ingest_start(args);
    ck_assert_ptr_nonnull(s);
    return s;
}

static const char *BATCH =
    "{\"api_key\":\"phc_test\",\"historical_migration\":false,\"sent_at\":\"2026-11-23T10:00:00.123Z\","
    "\"batch\":[{\"event\":\"signed_up\",\"distinct_id\":\"user-1\","
    "\"uuid\":\"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\",\"timestamp\":\"2026-11-23T09:59:58.001Z\","
    "\"properties\":{\"$lib\":\"posthog-c\",\"n\":1.5,\"u\":\"\\u00e9t\\u00e9 \xc3\xa9\",\"a\":[1,null,true]}},"
    "{\"event\":\"$identify\",\"distinct_id\":42,\"uuid\":\"0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5C\","
    "\"$set\":{\"plan\":\"team\"}}]}";

/* ------------------------------------------------------------ acceptance */

START_TEST(batch_accepted_and_recorded_exactly)
{
    ph_ingest_t *s = start(NULL);
    const char *hdrs[] = {"Content-Type: application/json", "User-Agent: posthog-c/0.1.0", NULL};
    resp_t r = req(s, "POST", "/batch/?ver=1", BATCH, strlen(BATCH), hdrs);
    ck_assert_int_eq(r.status, 200);
    cJSON *rb = cJSON_Parse(r.body);
    ck_assert_int_eq((int)num(rb, "status"), 1);
    cJSON_Delete(rb);
    free(r.body);

    cJSON *reqs = ph_ingest_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 1);
    cJSON *q = cJSON_GetArrayItem(reqs, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(q, "method")->valuestring, "POST");
    ck_assert_str_eq(cJSON_GetObjectItem(q, "path")->valuestring, "/batch/");
    ck_assert_str_eq(cJSON_GetObjectItem(q, "query")->valuestring, "ver=1");
    cJSON *h = cJSON_GetObjectItem(q, "headers");
    ck_assert_str_eq(cJSON_GetObjectItem(h, "user-agent")->valuestring, "posthog-c/0.1.0");
    ck_assert_str_eq(cJSON_GetObjectItem(h, "content-type")->valuestring, "application/json");
    ck_assert_int_eq((int)num(q, "wire_bytes"), (int)strlen(BATCH));
    ck_assert_int_eq((int)num(q, "body_bytes"), (int)strlen(BATCH));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(q, "gzip")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(q, "accepted")));
    ck_assert_int_eq((int)num(q, "status"), 200);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(q, "error")));
    cJSON *sent = cJSON_Parse(BATCH);
    ck_assert(cJSON_Compare(cJSON_GetObjectItem(q, "body"), sent, 1));

    cJSON *events = ph_ingest_events(s);
    ck_assert(cJSON_Compare(events, cJSON_GetObjectItem(sent, "batch"), 1));
    cJSON_Delete(events);
    cJSON_Delete(sent);
    cJSON_Delete(reqs);
    ck_assert_int_eq(ph_ingest_wait_events(s, 2, 1000), 0);
    ck_assert_int_eq(ph_ingest_wait_events(s, 3, 50), -1);
    ck_assert_int_eq(ph_ingest_stop(s), 0);
}
END_TEST

START_TEST(all_paths_and_body_shapes)
{
    ph_ingest_t *s = start(NULL);
    const char *paths[] = {"/batch", "/batch/", "/capture", "/capture/", "/e", "/e/", "/i/v0/e",
                           "/i/v0/e/"};
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(post(s, paths[i], BATCH), 200);
    const char *single = "{\"api_key\":\"k\",\"event\":\"e1\",\"distinct_id\":\"d\",\"properties\":{}}";
    ck_assert_int_eq(post(s, "/capture/", single), 200);
    const char *arr = "[{\"api_key\":\"k\",\"event\":\"e2\",\"distinct_id\":\"d\"},"
                      "{\"api_key\":\"k\",\"event\":\"e3\",\"distinct_id\":7}]";
    ck_assert_int_eq(post(s, "/e/", arr), 200);
    ck_assert_int_eq((int)summary_num(s, "events"), 8 * 2 + 1 + 2);
    cJSON *events = ph_ingest_events(s);
    cJSON *e17 = cJSON_GetArrayItem(events, 16);
    ck_assert_str_eq(cJSON_GetObjectItem(e17, "event")->valuestring, "e1");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(events, 18), "event")->valuestring, "e3");
    cJSON_Delete(events);
    /* Wrong method and unknown paths. */
    resp_t r = req(s, "GET", "/batch/", NULL, 0, NULL);
    ck_assert_int_eq(r.status, 405);
    free(r.body);
    ck_assert_int_eq(post(s, "/nope", BATCH), 404);
    ph_ingest_stop(s);
}
END_TEST

START_TEST(gzip_header_query_and_magic)
{
    ph_ingest_t *s = start(NULL);
    size_t gz_n;
    char *gz = gzip_buf(BATCH, strlen(BATCH), &gz_n);
    const char *with_header[] = {"Content-Encoding: gzip", NULL};
    resp_t r1 = req(s, "POST", "/batch/", gz, gz_n, with_header);
    resp_t r2 = req(s, "POST", "/batch/?compression=gzip", gz, gz_n, NULL);
    resp_t r3 = req(s, "POST", "/e/", gz, gz_n, NULL); /* magic sniff only */
    ck_assert_int_eq(r1.status, 200);
    ck_assert_int_eq(r2.status, 200);
    ck_assert_int_eq(r3.status, 200);
    free(r1.body), free(r2.body), free(r3.body);

    cJSON *reqs = ph_ingest_requests(s);
    cJSON *sent = cJSON_Parse(BATCH);
    for (int i = 0; i < 3; i++) {
        cJSON *q = cJSON_GetArrayItem(reqs, i);
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(q, "gzip")));
        ck_assert_int_eq((int)num(q, "wire_bytes"), (int)gz_n);
        ck_assert_int_eq((int)num(q, "body_bytes"), (int)strlen(BATCH));
        ck_assert(cJSON_Compare(cJSON_GetObjectItem(q, "body"), sent, 1));
    }
    cJSON_Delete(sent);
    cJSON_Delete(reqs);
    ck_assert_int_eq((int)summary_num(s, "gzip_requests"), 3);
    ck_assert_int_eq((int)summary_num(s, "events"), 6);

    /* Declared gzip but not gzip; truncated gzip: 400, nothing accepted. */
    resp_t b1 = req(s, "POST", "/batch/", BATCH, strlen(BATCH), with_header);
    resp_t b2 = req(s, "POST", "/batch/", gz, gz_n - 10, with_header);
    ck_assert_int_eq(b1.status, 400);
    ck_assert_int_eq(b2.status, 400);
    ck_assert_ptr_nonnull(strstr(b1.body, "gzip"));
    free(b1.body), free(b2.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 6);
    free(gz);
    ph_ingest_stop(s);
}
END_TEST

/* ------------------------------------------------------------ rejections */

static const char *const INVALID[] = {
    /* each is wrapped as the second event of a batch after a valid one */
    "{\"distinct_id\":\"d\"}",
    "{\"event\":\"\",\"distinct_id\":\"d\"}",
    "{\"event\":5,\"distinct_id\":\"d\"}",
    "{\"event\":null,\"distinct_id\":\"d\"}",
    "{\"event\":\"e\"}",
    "{\"event\":\"e\",\"distinct_id\":\"\"}",
    "{\"event\":\"e\",\"distinct_id\":{}}",
    "{\"event\":\"e\",\"distinct_id\":true}",
    "{\"event\":\"e\",\"distinct_id\":null}",
    "{\"event\":\"e\",\"distinct_id\":\"d\",\"uuid\":\"not-a-uuid\"}",
    "{\"event\":\"e\",\"distinct_id\":\"d\",\"uuid\":\"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5\"}",
    "{\"event\":\"e\",\"distinct_id\":\"d\",\"uuid\":\"0193a1b2xc3d4-7e5f-8a9b-0c1d2e3f4a5b\"}",
    "{\"event\":\"e\",\"distinct_id\":\"d\",\"uuid\":12}",
    "{\"event\":\"e\",\"distinct_id\":\"d\",\"timestamp\":1700000000}",
    "{\"event\":\"e\",\"distinct_id\":\"d\",\"properties\":\"x\"}",
    "{\"event\":\"e\",\"distinct_id\":\"d\",\"properties\":[1]}",
    "\"not an object\"",
    "[]",
};

START_TEST(invalid_event_rejects_whole_request)
{
    ph_ingest_t *s = start(NULL);
    size_t n = sizeof INVALID / sizeof *INVALID;
    for (size_t i = 0; i < n; i++) {
        char body[1024];
        snprintf(body, sizeof body,
                 "{\"api_key\":\"k\",\"batch\":[{\"event\":\"ok\",\"distinct_id\":\"d\"},%s]}",
                 INVALID[i]);
        resp_t r = req(s, "POST", "/batch/", body, strlen(body), NULL);
        ck_assert_msg(r.status == 400, "case %zu (%s): status %ld", i, INVALID[i], r.status);
        ck_assert_ptr_nonnull(strstr(r.body, "event 1"));
        free(r.body);
    }
    const char *bodies[] = {
        "{\"api_key\":\"k\",\"batch\":[{\"event\":\"ok\",\"distinct_id\":\"d\"}",   /* truncated */
        "{\"api_key\":\"k\",\"batch\":[{\"event\":\"ok\",\"distinct_id\":\"d\"}]}x", /* trailing */
        "{\"api_key\":\"k\",\"batch\":[{\"event\":\"ok\",\"distinct_id\":\"d\",}]}", /* comma */
        "{\"api_key\":\"k\",\"batch\":[{\"event\":\"o\xff\",\"distinct_id\":\"d\"}]}", /* UTF-8 */
        "{\"api_key\":\"k\",\"batch\":[]}",
        "{\"api_key\":\"k\",\"batch\":{}}",
        "{\"api_key\":\"k\"}",
        "[]",
        "42",
        "",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++)
        ck_assert_msg(post(s, "/batch/", bodies[i]) == 400, "body %zu", i);
    ck_assert_int_eq((int)summary_num(s, "events"), 0);
    ck_assert_int_eq((int)summary_num(s, "accepted_requests"), 0);
    cJSON *sum = ph_ingest_summary(s);
    cJSON *sc = cJSON_GetObjectItem(sum, "status_counts");
    ck_assert_int_eq((int)num(sc, "400"), (int)(n + sizeof bodies / sizeof *bodies));
    cJSON_Delete(sum);
    cJSON *reqs = ph_ingest_requests(s);
    cJSON *first = cJSON_GetArrayItem(reqs, 0);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(first, "accepted")));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(first, "error")));
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(first, "body")));
    cJSON *bad = cJSON_GetArrayItem(reqs, (int)n); /* truncated JSON: no parsed body */
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(bad, "body")));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(bad, "body_text")));
    cJSON_Delete(reqs);
    ph_ingest_stop(s);
}
END_TEST

START_TEST(api_key_rules)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(post(s, "/batch/", "{\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\"}]}"), 401);
    ck_assert_int_eq(post(s, "/batch/", "{\"api_key\":\"\",\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\"}]}"), 401);
    ck_assert_int_eq(post(s, "/batch/", "{\"api_key\":7,\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\"}]}"), 401);
    ck_assert_int_eq(post(s, "/e/", "{\"event\":\"e\",\"distinct_id\":\"d\"}"), 401);
    ck_assert_int_eq(post(s, "/e/", "[{\"api_key\":\"k\",\"event\":\"e\",\"distinct_id\":\"d\"},"
                                    "{\"event\":\"e\",\"distinct_id\":\"d\"}]"), 401);
    /* 401 wins over an invalid event, as in PostHog. */
    ck_assert_int_eq(post(s, "/batch/", "{\"batch\":[{\"event\":\"\",\"distinct_id\":\"d\"}]}"), 401);
    ck_assert_int_eq(post(s, "/batch/", "{\"api_key\":\"any\",\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\"}]}"), 200);
    ph_ingest_stop(s);

    const char *args[] = {"--api-key", "phc_good", "--api-key", "phc_other", NULL};
    s = start(args);
    ck_assert_int_eq(post(s, "/batch/", "{\"api_key\":\"phc_bad\",\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\"}]}"), 401);
    ck_assert_int_eq(post(s, "/batch/", "{\"api_key\":\"phc_good\",\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\"}]}"), 200);
    ck_assert_int_eq(post(s, "/batch/", "{\"api_key\":\"phc_other\",\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\"}]}"), 200);
    ck_assert_int_eq(post(s, "/batch/", "{\"api_key\":\"phc_\\u0067ood\",\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\"}]}"), 200);
    ck_assert_int_eq((int)summary_num(s, "events"), 3);
    ph_ingest_stop(s);
}
END_TEST

/* `pre`, `pad` bytes of 'x', then the closing of a one-event batch. */
static char *padded_batch(const char *pre, size_t pad, size_t *n)
{
    const char *post_ = "\"}}]}";
    size_t a = strlen(pre), b = strlen(post_);
    char *s = malloc(a + pad + b + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, pre, a);
    memset(s + a, 'x', pad);
    memcpy(s + a + pad, post_, b + 1);
    *n = a + pad + b;
    return s;
}

/* A batch of one event padded to `size` bytes of JSON. */
static char *big_batch(size_t pad, size_t *n)
{
    return padded_batch("{\"api_key\":\"k\",\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\","
                        "\"properties\":{\"p\":\"",
                        pad, n);
}

START_TEST(size_limits_413)
{
    ph_ingest_t *s = start(NULL);
    size_t n;
    /* Wire body over 20 MiB. */
    char *body = big_batch((size_t)20 * 1024 * 1024 + 10, &n);
    resp_t r = req(s, "POST", "/batch/", body, n, NULL);
    ck_assert_int_eq(r.status, 413);
    free(r.body);
    free(body);
    /* Decompressed over 100 MiB (small on the wire). */
    body = big_batch((size_t)100 * 1024 * 1024 + 10, &n);
    size_t gz_n;
    char *gz = gzip_buf(body, n, &gz_n);
    free(body);
    ck_assert_uint_lt(gz_n, (size_t)20 * 1024 * 1024);
    r = req(s, "POST", "/batch/", gz, gz_n, NULL);
    ck_assert_int_eq(r.status, 413);
    free(r.body);
    free(gz);
    /* One event over 1,000,000 bytes; the small one before it is not accepted either. */
    body = big_batch(1000000, &n);
    char *two = malloc(n + 64);
    snprintf(two, n + 64, "{\"api_key\":\"k\",\"batch\":[{\"event\":\"a\",\"distinct_id\":\"d\"},%s",
             strstr(body, "{\"event\""));
    r = req(s, "POST", "/batch/", two, strlen(two), NULL);
    ck_assert_int_eq(r.status, 413);
    free(r.body);
    free(two);
    free(body);
    /* Just under the event limit is fine. */
    body = big_batch(999000, &n);
    ck_assert_int_eq(post(s, "/batch/", body), 200);
    free(body);
    ck_assert_int_eq((int)summary_num(s, "events"), 1);

    /* Limits changed through the control API. */
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"max_event_bytes\":100}"), 0);
    ck_assert_int_eq(post(s, "/batch/", "{\"api_key\":\"k\",\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\",\"properties\":{\"p\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}}]}"), 413);
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"max_event_bytes\":1000000,\"max_body_bytes\":50}"), 0);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 413);
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"max_body_bytes\":1000000,\"max_decoded_bytes\":100}"), 0);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 413);
    gz = gzip_buf(BATCH, strlen(BATCH), &gz_n);
    r = req(s, "POST", "/batch/", gz, gz_n, NULL);
    ck_assert_int_eq(r.status, 413);
    free(r.body);
    free(gz);
    ck_assert_int_eq(ph_ingest_reset(s), 0); /* restores the default limits */
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200);
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"max_event_bytes\":-1}"), -1);
    ph_ingest_stop(s);

    const char *args[] = {"--max-event-bytes", "50", NULL};
    s = start(args);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 413);
    ph_ingest_stop(s);
}
END_TEST

/* ------------------------------------------------------------ faults */

START_TEST(script_503_then_200)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"script\":[{\"status\":503},{\"status\":500},{\"status\":200}]}"), 0);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 503);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 500);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200); /* script exhausted: normal */
    ck_assert_int_eq((int)summary_num(s, "requests"), 4);
    ck_assert_int_eq((int)summary_num(s, "accepted_requests"), 2);
    ck_assert_int_eq((int)summary_num(s, "events"), 4);
    cJSON *reqs = ph_ingest_requests(s);
    cJSON *q0 = cJSON_GetArrayItem(reqs, 0);
    ck_assert_int_eq((int)num(q0, "status"), 503);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(q0, "accepted")));
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(q0, "body"))); /* recorded anyway */
    cJSON_Delete(reqs);
    /* A forced 200 on an invalid body answers 200 but accepts nothing. */
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"script\":[{\"status\":200}]}"), 0);
    ck_assert_int_eq(post(s, "/batch/", "{\"api_key\":\"k\",\"batch\":[{}]}"), 200);
    ck_assert_int_eq((int)summary_num(s, "events"), 4);
    ph_ingest_stop(s);
}
END_TEST

START_TEST(script_429_retry_after)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"script\":[{\"status\":429,\"retry_after\":\"2\"},"
                                             "{\"status\":503,\"retry_after\":7}]}"), 0);
    resp_t r = req(s, "POST", "/batch/", BATCH, strlen(BATCH), NULL);
    ck_assert_int_eq(r.status, 429);
    ck_assert_ptr_nonnull(strstr(r.headers, "Retry-After: 2\r\n"));
    free(r.body);
    r = req(s, "POST", "/batch/", BATCH, strlen(BATCH), NULL);
    ck_assert_int_eq(r.status, 503);
    ck_assert_ptr_nonnull(strstr(r.headers, "Retry-After: 7\r\n"));
    free(r.body);
    r = req(s, "POST", "/batch/", BATCH, strlen(BATCH), NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(strstr(r.headers, "Retry-After"));
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 2);
    ph_ingest_stop(s);
}
END_TEST

START_TEST(script_reset_and_delay)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"script\":[{\"reset\":true},{\"delay_ms\":300},"
                                             "{\"delay_ms\":200,\"status\":503},{}]}"), 0);
    resp_t r = req(s, "POST", "/batch/", BATCH, strlen(BATCH), NULL);
    ck_assert_int_eq(r.status, -1);
    ck_assert_msg(r.code == CURLE_GOT_NOTHING || r.code == CURLE_RECV_ERROR, "curl code %d", r.code);
    free(r.body);
    r = req(s, "POST", "/batch/", BATCH, strlen(BATCH), NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(r.secs >= 0.29, "delay %.3f", r.secs);
    free(r.body);
    r = req(s, "POST", "/batch/", BATCH, strlen(BATCH), NULL);
    ck_assert_int_eq(r.status, 503);
    ck_assert(r.secs >= 0.19);
    free(r.body);
    /* A step without status validates normally. */
    ck_assert_int_eq(post(s, "/batch/", "{\"api_key\":\"k\",\"batch\":[{}]}"), 400);
    ck_assert_int_eq((int)summary_num(s, "events"), 2);
    cJSON *reqs = ph_ingest_requests(s);
    cJSON *q0 = cJSON_GetArrayItem(reqs, 0);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(q0, "reset")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(q0, "accepted")));
    cJSON_Delete(reqs);
    cJSON *sum = ph_ingest_summary(s);
    ck_assert_int_eq((int)num(cJSON_GetObjectItem(sum, "status_counts"), "reset"), 1);
    cJSON_Delete(sum);
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"script\":[{\"status\":\"x\"}]}"), -1);
    ck_assert_int_eq(ph_ingest_set_faults(s, "not json"), -1);
    ph_ingest_stop(s);
}
END_TEST

/* ------------------------------------------------------------ control API */

START_TEST(summary_and_duplicates)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200); /* same uuids again */
    ck_assert_int_eq(post(s, "/e/", "{\"api_key\":\"k\",\"event\":\"e\",\"distinct_id\":\"d\"}"), 200);
    ck_assert_int_eq(post(s, "/batch/", "[1]"), 400);
    cJSON *sum = ph_ingest_summary(s);
    ck_assert_int_eq((int)num(sum, "requests"), 4);
    ck_assert_int_eq((int)num(sum, "accepted_requests"), 3);
    ck_assert_int_eq((int)num(sum, "events"), 5);
    ck_assert_int_eq((int)num(sum, "unique_uuids"), 2);
    ck_assert_int_eq((int)num(sum, "duplicate_uuids"), 2);
    size_t single = strlen("{\"api_key\":\"k\",\"event\":\"e\",\"distinct_id\":\"d\"}");
    ck_assert_int_eq((int)num(sum, "wire_bytes"), (int)(2 * strlen(BATCH) + single + 3));
    ck_assert_int_eq((int)num(sum, "body_bytes"), (int)(2 * strlen(BATCH) + single + 3));
    ck_assert_int_eq((int)num(sum, "gzip_requests"), 0);
    cJSON *sc = cJSON_GetObjectItem(sum, "status_counts");
    ck_assert_int_eq((int)num(sc, "200"), 3);
    ck_assert_int_eq((int)num(sc, "400"), 1);
    cJSON_Delete(sum);
    ph_ingest_stop(s);
}
END_TEST

START_TEST(reset_clears_everything)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200);
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"script\":[{\"status\":503}],\"max_body_bytes\":10}"), 0);
    ck_assert_int_eq(ph_ingest_reset(s), 0);
    cJSON *sum = ph_ingest_summary(s);
    ck_assert_int_eq((int)num(sum, "requests"), 0);
    ck_assert_int_eq((int)num(sum, "events"), 0);
    ck_assert_int_eq((int)num(sum, "unique_uuids"), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(sum, "status_counts")), 0);
    cJSON_Delete(sum);
    cJSON *reqs = ph_ingest_requests(s), *evs = ph_ingest_events(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 0);
    ck_assert_int_eq(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(reqs);
    cJSON_Delete(evs);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200); /* faults and limits gone */
    ck_assert_int_eq((int)summary_num(s, "duplicate_uuids"), 0);
    ph_ingest_stop(s);
}
END_TEST

START_TEST(no_store_keeps_counters_only)
{
    const char *args[] = {"--no-store", NULL};
    ph_ingest_t *s = start(args);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200);
    ck_assert_int_eq(ph_ingest_wait_events(s, 4, 1000), 0);
    ck_assert_int_eq((int)summary_num(s, "duplicate_uuids"), 2);
    cJSON *reqs = ph_ingest_requests(s), *evs = ph_ingest_events(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 0);
    ck_assert_int_eq(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(reqs);
    cJSON_Delete(evs);
    ph_ingest_stop(s);
}
END_TEST

/* ------------------------------------------------------------ HTTP layer */

static int raw_connect(ph_ingest_t *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)ph_ingest_port(s));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends raw bytes, returns what came back until close/timeout (NUL-terminated). */
static char *raw_exchange(ph_ingest_t *s, const char *data, size_t n)
{
    int fd = raw_connect(s);
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, data + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    size_t cap = 65536, len = 0;
    char *out = malloc(cap);
    ssize_t r;
    while ((r = recv(fd, out + len, cap - len - 1, 0)) > 0) {
        len += (size_t)r;
        if (len + 1 >= cap)
            out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    close(fd);
    return out;
}

START_TEST(keep_alive_chunked_and_pipelined)
{
    ph_ingest_t *s = start(NULL);
    /* Chunked body split oddly, then a pipelined Content-Length request. */
    char msg[4096];
    size_t bl = strlen(BATCH), half = bl / 2;
    int n = snprintf(msg, sizeof msg,
                     "POST /batch/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "%zx;ext=1\r\n%.*s\r\n%zx\r\n%s\r\n0\r\nTrailer: y\r\n\r\n"
                     "POST /e/ HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     half, (int)half, BATCH, bl - half, BATCH + half, bl, BATCH);
    char *out = raw_exchange(s, msg, (size_t)n);
    ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 200"));
    ck_assert_ptr_nonnull(strstr(strstr(out, "HTTP/1.1 200") + 1, "HTTP/1.1 200"));
    free(out);
    ck_assert_int_eq((int)summary_num(s, "events"), 4);

    /* curl reuses one connection for several requests. */
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s/batch/", ph_ingest_url(s));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, BATCH);
    resp_t sink;
    memset(&sink, 0, sizeof sink);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    long conns = 0, total = 0, code = 0;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        ck_assert_int_eq(code, 200);
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
        total += conns;
    }
    ck_assert_int_eq(total, 1);
    curl_easy_cleanup(c);
    free(sink.body);
    ph_ingest_stop(s);
}
END_TEST

START_TEST(garbage_never_crashes)
{
    ph_ingest_t *s = start(NULL);
    char *big = malloc(80 * 1024);
    memset(big, 'a', 80 * 1024);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    big[80 * 1024 - 1] = '\n';
    char *out = raw_exchange(s, big, 80 * 1024);
    ck_assert_ptr_nonnull(strstr(out, "431"));
    free(out);
    free(big);
    const char *bad[] = {
        "\x01\x02\x03\xff\r\n\r\n",
        "GET\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET nopath HTTP/1.1\r\n\r\n",
        "POST /batch/ HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "POST /batch/ HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "POST /batch/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST /batch/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        "POST /batch/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /batch/ HTTP/1.1\r\nNoColonHere\r\n\r\n",
        "POST /batch/ HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort",
        "POST /batch/ HTTP/1.1\r\nContent-Length: 4\r\n\r\n[[[[",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        out = raw_exchange(s, bad[i], strlen(bad[i]));
        if (i < 10)
            ck_assert_msg(strncmp(out, "HTTP/1.1 4", 10) == 0 || strncmp(out, "HTTP/1.1 5", 10) == 0,
                          "case %zu: %.60s", i, out);
        free(out);
    }
    /* Deeply nested JSON is rejected, not a stack overflow. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 64);
    size_t k = (size_t)sprintf(deep, "{\"api_key\":\"k\",\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\",\"p\":");
    memset(deep + k, '[', depth);
    memset(deep + k + depth, ']', depth);
    strcpy(deep + k + 2 * depth, "}]}");
    ck_assert_int_eq(post(s, "/batch/", deep), 400);
    free(deep);
    resp_t r = req(s, "GET", "/_health", NULL, 0, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    ck_assert_int_eq(ph_ingest_stop(s), 0);
}
END_TEST

static void dummy_handler(const ph_http_request_t *rq, ph_http_response_t *rs, void *ud)
{
    (void)rq, (void)rs, (void)ud;
}

START_TEST(loopback_only_and_clean_shutdown)
{
    char err[256];
    ck_assert_ptr_null(ph_httpd_start("0.0.0.0", 0, dummy_handler, NULL, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "loopback"));
    ck_assert_ptr_null(ph_httpd_start("example.com", 0, dummy_handler, NULL, err, sizeof err));
    ph_httpd_t *h = ph_httpd_start("::1", 0, dummy_handler, NULL, err, sizeof err);
    if (h) /* IPv6 may be disabled on the host */
        ph_httpd_stop(h);
    h = ph_httpd_start("localhost", 0, dummy_handler, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_gt(ph_httpd_port(h), 0);
    ph_httpd_stop(h);
    const char *args[] = {"--host", "0.0.0.0", NULL};
    ck_assert_ptr_null(ph_ingest_start(args));
    const char *args6[] = {"--host", "192.168.1.1", NULL};
    ck_assert_ptr_null(ph_ingest_start(args6));

    ph_ingest_t *s = start(NULL);
    resp_t r = req(s, "POST", "/_control/shutdown", "", 0, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* already exiting; status 0 */

    s = start(NULL);
    /* An idle keep-alive connection must not hold up SIGTERM. */
    int fd = raw_connect(s);
    ck_assert_int_eq(ph_ingest_stop(s), 0);
    close(fd);
}
END_TEST

/* ------------------------------------------------------------ capture v1 */

#define U0 "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a50"
#define U1 "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a51"
#define U2 "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a52"
#define V1_EV(name, uuid)                                                                      \
    "{\"event\":\"" name "\",\"uuid\":\"" uuid "\",\"distinct_id\":\"user-1\","               \
    "\"timestamp\":\"2026-11-23T09:59:58.001Z\",\"properties\":{\"plan\":\"team\"}}"

static const char *V1_BATCH =
    "{\"created_at\":\"2026-11-23T10:00:00.123Z\",\"batch\":[" V1_EV("signed_up", U0) ","
    "{\"event\":\"$pageview\",\"uuid\":\"" U1 "\",\"distinct_id\":\"user-2\","
    "\"timestamp\":\"2026-11-23T10:59:58+01:00\",\"session_id\":\"s1\",\"window_id\":\"w1\","
    "\"options\":{\"process_person_profile\":false},\"properties\":{}},"
    V1_EV("$ai_generation", U2) "]}";

#define V1_REQUEST_ID "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4aff"

/* The valid v1 headers; bit i of `skip` leaves V1_HDRS[i] out. */
static const char *const V1_HDRS[] = {
    "Authorization: Bearer phc_test",
    "PostHog-Sdk-Info: posthog-c/0.1.0",
    ("PostHog-Request-Id: " V1_REQUEST_ID),
    "PostHog-Attempt: 1",
    "PostHog-Request-Timestamp: 2026-11-23T10:00:00.500Z",
    "Content-Type: application/json",
};
enum { H_AUTH = 1, H_SDK = 2, H_RID = 4, H_ATT = 8, H_TS = 16, H_CT = 32 };

static resp_t v1_send(ph_ingest_t *s, const char *path, const void *body, size_t len,
                      unsigned skip, const char *const *extra)
{
    const char *h[32];
    int n = 0;
    for (int i = 0; i < 6; i++)
        if (!(skip & (1u << i)))
            h[n++] = V1_HDRS[i];
    if (skip & H_CT)
        h[n++] = "Content-Type:"; /* stops curl adding its form type */
    for (int i = 0; extra && extra[i] && n < 31; i++)
        h[n++] = extra[i];
    h[n] = NULL;
    return req(s, "POST", path, body, len, h);
}

static resp_t v1_post(ph_ingest_t *s, const char *body)
{
    return v1_send(s, "/i/v1/analytics/events", body, strlen(body), 0, NULL);
}

static long v1_status(ph_ingest_t *s, const char *body)
{
    resp_t r = v1_post(s, body);
    free(r.body);
    return r.status;
}

/* The "results" object of a v1 answer (caller frees the returned root). */
static cJSON *results_of(const resp_t *r, cJSON **root)
{
    *root = cJSON_Parse(r->body);
    ck_assert_msg(*root != NULL, "not JSON: %s", r->body ? r->body : "(null)");
    cJSON *res = cJSON_GetObjectItemCaseSensitive(*root, "results");
    ck_assert_msg(cJSON_IsObject(res), "no results map: %s", r->body);
    return res;
}

static const char *result_of(const cJSON *results, const char *uuid)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(results, uuid);
    if (!e)
        return NULL;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "result");
    ck_assert(cJSON_IsString(r));
    return r->valuestring;
}

static const char *details_of(const cJSON *results, const char *uuid)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(results, uuid),
                                                      "details");
    return cJSON_IsString(d) ? d->valuestring : NULL;
}

static double sub_num(ph_ingest_t *s, const char *obj, const char *k)
{
    cJSON *sum = ph_ingest_summary(s);
    ck_assert_ptr_nonnull(sum);
    double v = num(cJSON_GetObjectItemCaseSensitive(sum, obj), k);
    cJSON_Delete(sum);
    return v;
}

static char *zlib_buf(const void *in, size_t n, size_t *out_n)
{
    uLongf cap = compressBound((uLong)n);
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(compress2((Bytef *)out, &cap, in, (uLong)n, 6), Z_OK);
    *out_n = cap;
    return out;
}

static char *raw_deflate_buf(const void *in, size_t n, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)n);
    char *out = malloc(cap);
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n;
    z.next_out = (unsigned char *)out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static char *br_buf(const void *in, size_t n, size_t *out_n)
{
    size_t cap = BrotliEncoderMaxCompressedSize(n);
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    *out_n = cap;
    ck_assert(BrotliEncoderCompress(4, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, n, in, out_n,
                                    (uint8_t *)out));
    return out;
}

static char *zstd_buf(const void *in, size_t n, size_t *out_n)
{
    size_t cap = ZSTD_compressBound(n);
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    size_t r = ZSTD_compress(out, cap, in, n, 3);
    ck_assert(!ZSTD_isError(r));
    *out_n = r;
    return out;
}

START_TEST(v1_accepted_with_results_map)
{
    ph_ingest_t *s = start(NULL);
    resp_t r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, 200);
    cJSON *root;
    cJSON *res = results_of(&r, &root);
    ck_assert_int_eq(cJSON_GetArraySize(res), 3);
    ck_assert_str_eq(result_of(res, U0), "ok");
    ck_assert_str_eq(result_of(res, U1), "ok");
    ck_assert_str_eq(result_of(res, U2), "ok");
    ck_assert_ptr_null(strstr(r.headers, "Retry-After"));
    ck_assert_ptr_nonnull(strstr(r.headers, "PostHog-Request-Id: " V1_REQUEST_ID "\r\n"));
    cJSON_Delete(root);
    free(r.body);

    /* Accepted events are recorded exactly as sent. */
    cJSON *sent = cJSON_Parse(V1_BATCH);
    cJSON *events = ph_ingest_events(s);
    ck_assert(cJSON_Compare(events, cJSON_GetObjectItem(sent, "batch"), 1));
    cJSON_Delete(events);
    cJSON *reqs = ph_ingest_requests(s);
    cJSON *q = cJSON_GetArrayItem(reqs, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(q, "path")->valuestring, "/i/v1/analytics/events");
    ck_assert_str_eq(cJSON_GetObjectItem(q, "protocol")->valuestring, "v1");
    ck_assert_str_eq(cJSON_GetObjectItem(q, "encoding")->valuestring, "none");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(q, "accepted")));
    ck_assert(cJSON_Compare(cJSON_GetObjectItem(q, "body"), sent, 1));
    cJSON *h = cJSON_GetObjectItem(q, "headers");
    ck_assert_str_eq(cJSON_GetObjectItem(h, "posthog-attempt")->valuestring, "1");
    ck_assert_str_eq(cJSON_GetObjectItem(h, "authorization")->valuestring, "Bearer phc_test");
    cJSON *rr = cJSON_GetObjectItem(q, "results");
    ck_assert_int_eq(cJSON_GetArraySize(rr), 3);
    ck_assert_str_eq(result_of(rr, U1), "ok");
    cJSON_Delete(reqs);
    cJSON_Delete(sent);

    /* Upper-case uuids are valid; the map uses the canonical lower-case form. */
    const char *upper = "{\"created_at\":\"2026-11-23T10:00:00Z\",\"batch\":["
                        V1_EV("e", "0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5F") "]}";
    r = v1_post(s, upper);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5f\""));
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 4);
    ck_assert_int_eq((int)sub_num(s, "protocol_counts", "v1"), 2);
    ck_assert_int_eq((int)sub_num(s, "protocol_counts", "v0"), 0);
    ck_assert_int_eq((int)sub_num(s, "result_counts", "ok"), 4);
    /* Same events again: duplicates across requests count as today. */
    ck_assert_int_eq(v1_status(s, V1_BATCH), 200);
    ck_assert_int_eq((int)summary_num(s, "duplicate_uuids"), 3);
    resp_t g = req(s, "GET", "/i/v1/analytics/events", NULL, 0, NULL);
    ck_assert_int_eq(g.status, 405);
    free(g.body);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

START_TEST(v1_headers_all_reported_at_once)
{
    ph_ingest_t *s = start(NULL);
    static const char *const names[] = {"Authorization", "PostHog-Sdk-Info", "PostHog-Request-Id",
                                        "PostHog-Attempt", "PostHog-Request-Timestamp"};
    resp_t r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, strlen(V1_BATCH), 31, NULL);
    ck_assert_int_eq(r.status, 400);
    cJSON *b = cJSON_Parse(r.body);
    ck_assert_str_eq(cJSON_GetObjectItem(b, "code")->valuestring, "invalid_headers");
    cJSON *errs = cJSON_GetObjectItem(b, "errors");
    ck_assert_int_eq(cJSON_GetArraySize(errs), 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(b, "detail")->valuestring, names[i]));
        ck_assert_ptr_nonnull(strstr(cJSON_GetArrayItem(errs, i)->valuestring, names[i]));
        ck_assert_ptr_nonnull(strstr(cJSON_GetArrayItem(errs, i)->valuestring, "missing"));
    }
    cJSON_Delete(b);
    free(r.body);
    /* Each header missing alone. */
    for (int i = 0; i < 5; i++) {
        r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, strlen(V1_BATCH), 1u << i, NULL);
        ck_assert_msg(r.status == 400, "header %s: %ld", names[i], r.status);
        ck_assert_ptr_nonnull(strstr(r.body, names[i]));
        free(r.body);
    }
    /* Invalid values: {skip mask, replacement header}. */
    static const struct { unsigned skip; const char *h; const char *name; } bad[] = {
        {H_AUTH, "Authorization: Basic cGhjOng=", "Authorization"},
        {H_AUTH, "Authorization: phc_test", "Authorization"},
        {H_SDK, "PostHog-Sdk-Info: posthog-c", "PostHog-Sdk-Info"},
        {H_SDK, "PostHog-Sdk-Info: /1.0", "PostHog-Sdk-Info"},
        {H_RID, "PostHog-Request-Id: 12345", "PostHog-Request-Id"},
        {H_ATT, "PostHog-Attempt: 0", "PostHog-Attempt"},
        {H_ATT, "PostHog-Attempt: -1", "PostHog-Attempt"},
        {H_ATT, "PostHog-Attempt: 1.5", "PostHog-Attempt"},
        {H_ATT, "PostHog-Attempt: two", "PostHog-Attempt"},
        {H_TS, "PostHog-Request-Timestamp: 2026-11-23 10:00:00Z", "PostHog-Request-Timestamp"},
        {H_TS, "PostHog-Request-Timestamp: 2026-11-23T10:00:00", "PostHog-Request-Timestamp"},
        {H_TS, "PostHog-Request-Timestamp: 1763892000", "PostHog-Request-Timestamp"},
        {H_TS, "PostHog-Request-Timestamp: 2026-13-01T10:00:00Z", "PostHog-Request-Timestamp"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *extra[] = {bad[i].h, NULL};
        r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, strlen(V1_BATCH), bad[i].skip, extra);
        ck_assert_msg(r.status == 400, "case %zu (%s): %ld", i, bad[i].h, r.status);
        ck_assert_msg(strstr(r.body, bad[i].name) && strstr(r.body, "invalid header"), "case %zu: %s",
                      i, r.body);
        free(r.body);
    }
    /* Two wrong and one missing: all three listed. */
    const char *extra[] = {"PostHog-Attempt: 0", "PostHog-Request-Id: nope", NULL};
    r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, strlen(V1_BATCH), H_ATT | H_RID | H_SDK, extra);
    ck_assert_int_eq(r.status, 400);
    b = cJSON_Parse(r.body);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(b, "errors")), 3);
    cJSON_Delete(b);
    free(r.body);
    /* Valid variants: offsets, lower-case t/z, a big attempt number. */
    const char *ok[] = {"PostHog-Attempt: 12", "PostHog-Request-Timestamp: 2026-11-23t10:00:00+05:30",
                        NULL};
    r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, strlen(V1_BATCH), H_ATT | H_TS, ok);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 3);
    cJSON *reqs = ph_ingest_requests(s);
    cJSON *q0 = cJSON_GetArrayItem(reqs, 0); /* rejected, but recorded with its body */
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(q0, "body")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(q0, "results")));
    cJSON_Delete(reqs);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

START_TEST(v1_token_401)
{
    ph_ingest_t *s = start(NULL);
    const char *empty[] = {"Authorization: Bearer", NULL};
    resp_t r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, strlen(V1_BATCH), H_AUTH, empty);
    ck_assert_int_eq(r.status, 401);
    free(r.body);
    const char *spaces[] = {"Authorization: Bearer    ", NULL};
    r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, strlen(V1_BATCH), H_AUTH, spaces);
    ck_assert_int_eq(r.status, 401);
    free(r.body);
    const char *any[] = {"Authorization: bearer phc_anything", NULL};
    r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, strlen(V1_BATCH), H_AUTH, any);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    ph_ingest_stop(s);

    const char *args[] = {"--api-key", "phc_test", NULL};
    s = start(args);
    const char *wrong[] = {"Authorization: Bearer phc_other", NULL};
    r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, strlen(V1_BATCH), H_AUTH, wrong);
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.body, "invalid_api_key"));
    free(r.body);
    /* The body's api_key is ignored in v1 (the header decides). */
    const char *with_key = "{\"api_key\":\"phc_other\",\"created_at\":\"2026-11-23T10:00:00Z\",\"batch\":["
                           V1_EV("e", U0) "]}";
    ck_assert_int_eq(v1_status(s, with_key), 200);
    ck_assert_int_eq((int)summary_num(s, "events"), 1);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

START_TEST(v1_content_type_and_encoding_415)
{
    ph_ingest_t *s = start(NULL);
    size_t n = strlen(V1_BATCH);
    const char *text[] = {"Content-Type: text/plain", NULL};
    resp_t r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, n, H_CT, text);
    ck_assert_int_eq(r.status, 415);
    free(r.body);
    r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, n, H_CT, NULL); /* none at all */
    ck_assert_int_eq(r.status, 415);
    free(r.body);
    const char *charset[] = {"Content-Type: application/json; charset=utf-8", NULL};
    r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, n, H_CT, charset);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    static const char *const bad_ce[] = {"Content-Encoding: brotli", "Content-Encoding: gzip, zstd",
                                         "Content-Encoding: compress", "Content-Encoding: x-gzip"};
    for (size_t i = 0; i < sizeof bad_ce / sizeof *bad_ce; i++) {
        const char *e[] = {bad_ce[i], NULL};
        r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, n, 0, e);
        ck_assert_msg(r.status == 415, "%s: %ld", bad_ce[i], r.status);
        ck_assert_ptr_nonnull(strstr(r.body, "unsupported_encoding"));
        free(r.body);
    }
    const char *identity[] = {"Content-Encoding: identity", NULL};
    r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, n, 0, identity);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 6);
    ck_assert_int_eq((int)sub_num(s, "encoding_counts", "unsupported"), 4);
    ck_assert_int_eq((int)sub_num(s, "status_counts", "415"), 6);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

START_TEST(v1_each_encoding_decoded)
{
    ph_ingest_t *s = start(NULL);
    size_t n = strlen(V1_BATCH), gz_n, zl_n, zs_n, raw_n, br_n;
    char *br = br_buf(V1_BATCH, n, &br_n);
    const char *e_br[] = {"Content-Encoding: br", NULL};
    char *gz = gzip_buf(V1_BATCH, n, &gz_n);
    char *zl = zlib_buf(V1_BATCH, n, &zl_n);
    char *zs = zstd_buf(V1_BATCH, n, &zs_n);
    char *raw = raw_deflate_buf(V1_BATCH, n, &raw_n);
    const char *e_gz[] = {"Content-Encoding: gzip", NULL};
    const char *e_df[] = {"Content-Encoding: deflate", NULL};
    const char *e_zs[] = {"Content-Encoding: ZSTD", NULL};
    struct { const void *b; size_t n; const char *const *e; const char *name; } ok[] = {
        {V1_BATCH, n, NULL, "none"}, {gz, gz_n, e_gz, "gzip"}, {zl, zl_n, e_df, "deflate"},
        {zs, zs_n, e_zs, "zstd"}, {br, br_n, e_br, "br"}};
    for (int i = 0; i < 5; i++) {
        resp_t r = v1_send(s, "/i/v1/analytics/events", ok[i].b, ok[i].n, 0, ok[i].e);
        ck_assert_msg(r.status == 200, "%s: %ld %s", ok[i].name, r.status, r.body);
        free(r.body);
    }
    cJSON *reqs = ph_ingest_requests(s);
    cJSON *sent = cJSON_Parse(V1_BATCH);
    for (int i = 0; i < 5; i++) {
        cJSON *q = cJSON_GetArrayItem(reqs, i);
        ck_assert_str_eq(cJSON_GetObjectItem(q, "encoding")->valuestring, ok[i].name);
        ck_assert_int_eq((int)num(q, "wire_bytes"), (int)ok[i].n);
        ck_assert_int_eq((int)num(q, "body_bytes"), (int)n);
        ck_assert(cJSON_Compare(cJSON_GetObjectItem(q, "body"), sent, 1));
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(q, "gzip")) == (i == 1));
    }
    cJSON_Delete(sent);
    cJSON_Delete(reqs);
    ck_assert_int_eq((int)summary_num(s, "events"), 15);
    ck_assert_int_eq((int)sub_num(s, "encoding_counts", "br"), 1);
    ck_assert_int_eq((int)sub_num(s, "encoding_counts", "zstd"), 1);
    ck_assert_int_eq((int)sub_num(s, "encoding_counts", "deflate"), 1);
    ck_assert_int_eq((int)sub_num(s, "encoding_counts", "gzip"), 1);
    ck_assert_int_eq((int)sub_num(s, "encoding_counts", "none"), 1);

    /* Wrong or corrupt bodies for the declared encoding: 400, nothing accepted. */
    struct { const void *b; size_t n; const char *const *e; } bad[] = {
        {V1_BATCH, n, e_zs},       /* plain text declared zstd */
        {gz, gz_n, e_zs},          /* gzip declared zstd */
        {zs, zs_n - 3, e_zs},      /* truncated zstd */
        {raw, raw_n, e_df},        /* raw deflate: v1 deflate is zlib-wrapped */
        {zl, zl_n - 2, e_df},      /* truncated zlib */
        {zs, zs_n, e_gz},          /* zstd declared gzip */
        {gz, gz_n, NULL},          /* gzip bytes, no header: v1 does not sniff */
        {br, br_n - 2, e_br},      /* truncated brotli */
        {gz, gz_n, e_br},          /* gzip declared br */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        resp_t r = v1_send(s, "/i/v1/analytics/events", bad[i].b, bad[i].n, 0, bad[i].e);
        ck_assert_msg(r.status == 400, "case %zu: %ld", i, r.status);
        free(r.body);
    }
    resp_t r = v1_send(s, "/i/v1/analytics/events?compression=gzip", gz, gz_n, 0, NULL);
    ck_assert_int_eq(r.status, 400);
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 15);
    free(gz), free(zl), free(zs), free(raw), free(br);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

/* A v1 batch of one event padded to about `pad` bytes. */
static char *big_v1(size_t pad, size_t *n)
{
    return padded_batch("{\"created_at\":\"2026-11-23T10:00:00Z\",\"batch\":[{\"event\":\"e\","
                        "\"uuid\":\"" U0 "\",\"distinct_id\":\"d\","
                        "\"timestamp\":\"2026-11-23T10:00:00Z\",\"properties\":{\"p\":\"",
                        pad, n);
}

START_TEST(v1_size_limits_413)
{
    ph_ingest_t *s = start(NULL);
    cJSON *f = ph_ingest_faults(s);
    ck_assert_int_eq((int)num(f, "max_v1_body_bytes"), 10 * 1024 * 1024);
    ck_assert_int_eq((int)num(f, "max_v1_decoded_bytes"), 50 * 1024 * 1024);
    cJSON_Delete(f);
    size_t n;
    char *body = big_v1((size_t)10 * 1024 * 1024 + 10, &n); /* over 10 MiB on the wire */
    resp_t r = v1_send(s, "/i/v1/analytics/events", body, n, 0, NULL);
    ck_assert_int_eq(r.status, 413);
    free(r.body);
    free(body);
    body = big_v1((size_t)50 * 1024 * 1024 + 10, &n); /* over 50 MiB decoded, small as zstd */
    size_t zn;
    char *z = zstd_buf(body, n, &zn);
    free(body);
    const char *e_zs[] = {"Content-Encoding: zstd", NULL};
    r = v1_send(s, "/i/v1/analytics/events", z, zn, 0, e_zs);
    ck_assert_int_eq(r.status, 413);
    free(r.body);
    free(z);
    body = big_v1(1000000, &n); /* one event over 1,000,000 bytes */
    r = v1_send(s, "/i/v1/analytics/events", body, n, 0, NULL);
    ck_assert_int_eq(r.status, 413);
    free(r.body);
    free(body);
    /* Overridable through the control API; v0 limits are separate. */
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"max_v1_body_bytes\":100}"), 0);
    ck_assert_int_eq(v1_status(s, V1_BATCH), 413);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200);
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"max_v1_body_bytes\":100000,\"max_v1_decoded_bytes\":100}"), 0);
    size_t gz_n;
    char *gz = gzip_buf(V1_BATCH, strlen(V1_BATCH), &gz_n);
    const char *e_gz[] = {"Content-Encoding: gzip", NULL};
    r = v1_send(s, "/i/v1/analytics/events", gz, gz_n, 0, e_gz);
    ck_assert_int_eq(r.status, 413);
    free(r.body);
    free(gz);
    ck_assert_int_eq(ph_ingest_reset(s), 0);
    ck_assert_int_eq(v1_status(s, V1_BATCH), 200);
    ph_ingest_stop(s);

    const char *args[] = {"--max-v1-body-bytes", "200", NULL};
    s = start(args);
    ck_assert_int_eq(v1_status(s, V1_BATCH), 413);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

#define V1_WRAP(second) "{\"created_at\":\"2026-11-23T10:00:00Z\",\"batch\":[" V1_EV("ok", U0) "," second "]}"
#define A10 "aaaaaaaaaa"
#define A50 A10 A10 A10 A10 A10
#define V1_NAME200 A50 A50 A50 A50
#define V1_NAME201 V1_NAME200 "a"
#define V1_REST "\"distinct_id\":\"d\",\"timestamp\":\"2026-11-23T10:00:00Z\""

static const char *const V1_INVALID_EVENT[] = {
    "\"not an object\"",
    "[]",
    "{\"uuid\":\"" U1 "\"," V1_REST "}",                                  /* event missing */
    "{\"event\":\"\",\"uuid\":\"" U1 "\"," V1_REST "}",                     /* event empty */
    "{\"event\":null,\"uuid\":\"" U1 "\"," V1_REST "}",
    "{\"event\":7,\"uuid\":\"" U1 "\"," V1_REST "}",
    "{\"event\":\"" V1_NAME201 "\",\"uuid\":\"" U1 "\"," V1_REST "}",      /* 201 bytes */
    "{\"event\":\"e\"," V1_REST "}",                                        /* uuid missing */
    "{\"event\":\"e\",\"uuid\":\"not-a-uuid\"," V1_REST "}",
    "{\"event\":\"e\",\"uuid\":\"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5\"," V1_REST "}",
    "{\"event\":\"e\",\"uuid\":12," V1_REST "}",
    "{\"event\":\"e\",\"uuid\":\"" U0 "\"," V1_REST "}",                    /* duplicate of event 0 */
    "{\"event\":\"e\",\"uuid\":\"" U1 "\",\"timestamp\":\"2026-11-23T10:00:00Z\"}", /* no distinct_id */
    "{\"event\":\"e\",\"uuid\":\"" U1 "\",\"distinct_id\":\"\",\"timestamp\":\"2026-11-23T10:00:00Z\"}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\",\"distinct_id\":42,\"timestamp\":\"2026-11-23T10:00:00Z\"}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\",\"distinct_id\":\"" V1_NAME201 "\",\"timestamp\":\"2026-11-23T10:00:00Z\"}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\",\"distinct_id\":\"d\"}",          /* timestamp missing */
    "{\"event\":\"e\",\"uuid\":\"" U1 "\",\"distinct_id\":\"d\",\"timestamp\":\"2026-11-23 10:00:00Z\"}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\",\"distinct_id\":\"d\",\"timestamp\":\"2026-11-23T10:00:00\"}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\",\"distinct_id\":\"d\",\"timestamp\":\"2026-02-30T10:00:00Z\"}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\",\"distinct_id\":\"d\",\"timestamp\":\"2026-11-23T10:00:00.Z\"}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\",\"distinct_id\":\"d\",\"timestamp\":\"2026-11-23T10:00:00+0100\"}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\",\"distinct_id\":\"d\",\"timestamp\":1763892000}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\"," V1_REST ",\"properties\":\"x\"}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\"," V1_REST ",\"properties\":[1]}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\"," V1_REST ",\"options\":\"x\"}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\"," V1_REST ",\"options\":[]}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\"," V1_REST ",\"session_id\":5}",
    "{\"event\":\"e\",\"uuid\":\"" U1 "\"," V1_REST ",\"window_id\":{}}",
};

START_TEST(v1_whole_batch_rejections)
{
    ph_ingest_t *s = start(NULL);
    size_t n = sizeof V1_INVALID_EVENT / sizeof *V1_INVALID_EVENT;
    for (size_t i = 0; i < n; i++) {
        char body[2048];
        snprintf(body, sizeof body, V1_WRAP("%s"), V1_INVALID_EVENT[i]);
        resp_t r = v1_post(s, body);
        ck_assert_msg(r.status == 400, "case %zu (%s): status %ld", i, V1_INVALID_EVENT[i], r.status);
        ck_assert_msg(strstr(r.body, "event 1") != NULL, "case %zu: %s", i, r.body);
        free(r.body);
    }
    static const struct { const char *body, *why; } top[] = {
        {"{\"created_at\":\"2026-11-23T10:00:00Z\",\"batch\":[", "invalid JSON"},
        {"[" V1_EV("e", U0) "]", "object"},
        {"42", "object"},
        {"{\"batch\":[" V1_EV("e", U0) "]}", "created_at"},
        {"{\"created_at\":null,\"batch\":[" V1_EV("e", U0) "]}", "created_at"},
        {"{\"created_at\":\"yesterday\",\"batch\":[" V1_EV("e", U0) "]}", "created_at"},
        {"{\"created_at\":1763892000,\"batch\":[" V1_EV("e", U0) "]}", "created_at"},
        {"{\"created_at\":\"2026-11-23T10:00:00Z\"}", "batch"},
        {"{\"created_at\":\"2026-11-23T10:00:00Z\",\"batch\":{}}", "batch"},
        {"{\"created_at\":\"2026-11-23T10:00:00Z\",\"batch\":[]}", "batch"},
        {"{\"created_at\":\"2026-11-23T10:00:00Z\",\"event\":\"e\",\"uuid\":\"" U0 "\"," V1_REST "}", "batch"},
    };
    for (size_t i = 0; i < sizeof top / sizeof *top; i++) {
        resp_t r = v1_post(s, top[i].body);
        ck_assert_msg(r.status == 400, "top %zu: %ld", i, r.status);
        ck_assert_msg(strstr(r.body, top[i].why) != NULL, "top %zu: %s", i, r.body);
        free(r.body);
    }
    ck_assert_int_eq((int)summary_num(s, "events"), 0);
    ck_assert_int_eq((int)summary_num(s, "accepted_requests"), 0);

    /* The edges that are fine: 200-byte names (escapes count decoded), nulls as absent. */
    const char *fine =
        "{\"created_at\":\"2026-11-23T10:00:00.5+00:00\",\"historical_migration\":true,\"batch\":["
        "{\"event\":\"" V1_NAME200 "\",\"uuid\":\"" U1 "\",\"distinct_id\":\"" V1_NAME200 "\",\"timestamp\":\"2024-02-29T23:59:60Z\"},"
        "{\"event\":\"\\u00e9\",\"uuid\":\"" U2 "\",\"distinct_id\":\"\\u0064\",\"timestamp\":\"2026-11-23T10:00:00-08:00\","
        "\"properties\":null,\"options\":{},\"session_id\":null,\"window_id\":\"w\"}]}";
    resp_t r = v1_post(s, fine);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 2);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

START_TEST(v1_verdicts_each_kind)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(ph_ingest_set_faults(s,
        "{\"script\":[{\"verdicts\":["
        "{\"match\":{\"index\":0},\"result\":\"drop\",\"details\":\"billing_limit_exceeded\"},"
        "{\"match\":{\"uuid\":\"" U1 "\"},\"result\":\"retry\"},"
        "{\"match\":{\"event\":\"$ai_generation\"},\"result\":\"warning\",\"details\":\"truncated\"},"
        "{\"result\":\"drop\"}]}]}"), 0);
    resp_t r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, 200);
    cJSON *root;
    cJSON *res = results_of(&r, &root);
    ck_assert_int_eq(cJSON_GetArraySize(res), 3);
    ck_assert_str_eq(result_of(res, U0), "drop");
    ck_assert_str_eq(details_of(res, U0), "billing_limit_exceeded");
    ck_assert_str_eq(result_of(res, U1), "retry");
    ck_assert_str_eq(details_of(res, U1), "not_persisted");
    ck_assert_str_eq(result_of(res, U2), "warning");
    ck_assert_str_eq(details_of(res, U2), "truncated");
    ck_assert_ptr_nonnull(strstr(r.headers, "Retry-After: 1\r\n"));
    cJSON_Delete(root);
    free(r.body);
    /* Only the warning event counts as accepted. */
    ck_assert_int_eq((int)summary_num(s, "events"), 1);
    cJSON *events = ph_ingest_events(s);
    ck_assert_int_eq(cJSON_GetArraySize(events), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(events, 0), "uuid")->valuestring, U2);
    cJSON_Delete(events);
    ck_assert_int_eq((int)sub_num(s, "result_counts", "drop"), 1);
    ck_assert_int_eq((int)sub_num(s, "result_counts", "retry"), 1);
    ck_assert_int_eq((int)sub_num(s, "result_counts", "warning"), 1);

    /* The retry resent (next attempt) is accepted normally: script exhausted. */
    const char *retry = "{\"created_at\":\"2026-11-23T10:00:00.123Z\",\"batch\":["
                        "{\"event\":\"$pageview\",\"uuid\":\"" U1 "\",\"distinct_id\":\"user-2\","
                        "\"timestamp\":\"2026-11-23T10:59:58+01:00\"}]}";
    const char *att2[] = {"PostHog-Attempt: 2", NULL};
    r = v1_send(s, "/i/v1/analytics/events", retry, strlen(retry), H_ATT, att2);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(strstr(r.headers, "Retry-After"));
    ck_assert_ptr_nonnull(strstr(r.body, "\"ok\""));
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 2);
    ck_assert_int_eq((int)summary_num(s, "duplicate_uuids"), 0);

    /* Unknown results pass through and count as accepted; retry_after overrides the 1;
     * a verdict without "match" covers every event; the first matching verdict wins;
     * "details": null suppresses the default. */
    ck_assert_int_eq(ph_ingest_set_faults(s,
        "{\"script\":[{\"retry_after\":\"7\",\"verdicts\":["
        "{\"match\":{\"event\":\"signed_up\",\"index\":0},\"result\":\"retry\",\"details\":null},"
        "{\"match\":{\"event\":\"signed_up\"},\"result\":\"drop\"},"
        "{\"result\":\"limited\",\"details\":\"person_processing_disabled\"}]}]}"), 0);
    ck_assert_int_eq(ph_ingest_reset(s), 0); /* also clears the script: set it again */
    ck_assert_int_eq(ph_ingest_set_faults(s,
        "{\"script\":[{\"retry_after\":\"7\",\"verdicts\":["
        "{\"match\":{\"event\":\"signed_up\",\"index\":0},\"result\":\"retry\",\"details\":null},"
        "{\"match\":{\"event\":\"signed_up\"},\"result\":\"drop\"},"
        "{\"result\":\"limited\",\"details\":\"person_processing_disabled\"}]}]}"), 0);
    r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, 200);
    res = results_of(&r, &root);
    ck_assert_str_eq(result_of(res, U0), "retry");
    ck_assert_ptr_null(details_of(res, U0));
    ck_assert_str_eq(result_of(res, U1), "limited");
    ck_assert_str_eq(details_of(res, U1), "person_processing_disabled");
    ck_assert_str_eq(result_of(res, U2), "limited");
    ck_assert_ptr_nonnull(strstr(r.headers, "Retry-After: 7\r\n"));
    cJSON_Delete(root);
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 2);
    ck_assert_int_eq((int)sub_num(s, "result_counts", "other"), 2);
    /* The request record keeps the results it answered. */
    cJSON *reqs = ph_ingest_requests(s);
    cJSON *rr = cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 0), "results");
    ck_assert_str_eq(result_of(rr, U0), "retry");
    cJSON_Delete(reqs);

    /* Bad verdicts are refused. */
    static const char *const bad[] = {
        "{\"script\":[{\"verdicts\":{}}]}",
        "{\"script\":[{\"verdicts\":[1]}]}",
        "{\"script\":[{\"verdicts\":[{\"match\":{\"index\":-1}}]}]}",
        "{\"script\":[{\"verdicts\":[{\"match\":{\"uuid\":\"x\"}}]}]}",
        "{\"script\":[{\"verdicts\":[{\"match\":{\"name\":\"x\"}}]}]}",
        "{\"script\":[{\"verdicts\":[{\"result\":\"\"}]}]}",
        "{\"script\":[{\"verdicts\":[{\"result\":\"ok\",\"omit\":1}]}]}",
        "{\"script\":[{\"verdicts\":[{\"reslt\":\"ok\"}]}]}",
        "{\"script\":[{\"body\":5}]}",
        "{\"script\":[{\"content_type\":\"a\\r\\nb\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(ph_ingest_set_faults(s, bad[i]) == -1, "accepted: %s", bad[i]);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

START_TEST(v1_body_override_and_absent_uuids)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(ph_ingest_set_faults(s,
        "{\"script\":[{\"status\":200,\"body\":\"<html>captive portal</html>\",\"content_type\":\"text/html\"},"
        "{\"body\":\"{\\\"status\\\":1}\"},"
        "{\"status\":503,\"body\":\"upstream down\",\"retry_after\":2},"
        "{\"verdicts\":[{\"match\":{\"index\":1},\"omit\":true},{\"match\":{\"index\":2},\"result\":\"drop\",\"omit\":true}]},"
        "{\"verdicts\":[{\"omit\":true}]}]}"), 0);
    resp_t r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "<html>captive portal</html>");
    ck_assert_ptr_nonnull(strstr(r.headers, "Content-Type: text/html\r\n"));
    free(r.body);
    r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":1}");
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 0); /* not from capture: nothing accepted */
    r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body, "upstream down");
    ck_assert_ptr_nonnull(strstr(r.headers, "Retry-After: 2\r\n"));
    free(r.body);
    /* Absent uuids: left out of the map; absent means delivered unless the verdict drops it. */
    r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, 200);
    cJSON *root;
    cJSON *res = results_of(&r, &root);
    ck_assert_int_eq(cJSON_GetArraySize(res), 1);
    ck_assert_str_eq(result_of(res, U0), "ok");
    ck_assert_ptr_null(result_of(res, U1));
    ck_assert_ptr_null(result_of(res, U2));
    cJSON_Delete(root);
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 2);
    r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"results\":{}}");
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 5);
    ck_assert_int_eq((int)sub_num(s, "result_counts", "absent"), 5);
    /* The same override works on v0. */
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"script\":[{\"body\":\"plain\"}]}"), 0);
    r = req(s, "POST", "/batch/", BATCH, strlen(BATCH), NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "plain");
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 5);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

START_TEST(v1_status_faults)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(ph_ingest_set_faults(s,
        "{\"script\":[{\"status\":503,\"retry_after\":\"3\"},{\"reset\":true},{\"delay_ms\":200},"
        "{\"status\":200},{\"status\":204}]}"), 0);
    resp_t r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, 503);
    ck_assert_ptr_nonnull(strstr(r.headers, "Retry-After: 3\r\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "injected_fault"));
    free(r.body);
    r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, -1);
    free(r.body);
    r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.secs >= 0.19);
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 3);
    /* A forced 200 on a rejected request: an empty results map, nothing accepted. */
    r = v1_send(s, "/i/v1/analytics/events", V1_BATCH, strlen(V1_BATCH), H_RID, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"results\":{}}");
    free(r.body);
    r = v1_post(s, V1_BATCH);
    ck_assert_int_eq(r.status, 204);
    ck_assert_int_eq((int)r.body_len, 0);
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 6);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

START_TEST(ai_endpoints)
{
    ph_ingest_t *s = start(NULL);
    const char *ai_v0 = "{\"api_key\":\"phc_test\",\"batch\":[{\"event\":\"$ai_generation\",\"distinct_id\":\"d\","
                        "\"uuid\":\"" U0 "\",\"properties\":{\"$ai_model\":\"m\"}}]}";
    resp_t r = req(s, "POST", "/i/v0/ai/batch/", ai_v0, strlen(ai_v0), NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\": 1}");
    free(r.body);
    ck_assert_int_eq(post(s, "/i/v0/ai/batch", ai_v0), 200);
    ck_assert_int_eq(post(s, "/i/v0/ai/batch/", "{\"api_key\":\"phc_test\",\"batch\":[{\"event\":\"\",\"distinct_id\":\"d\"}]}"), 400);
    ck_assert_int_eq(post(s, "/i/v0/ai/batch/", "{\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\"}]}"), 401);
    r = v1_send(s, "/i/v1/ai/events", V1_BATCH, strlen(V1_BATCH), 0, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"results\""));
    free(r.body);
    r = v1_send(s, "/i/v1/ai/events/", V1_BATCH, strlen(V1_BATCH), H_SDK, NULL);
    ck_assert_int_eq(r.status, 400);
    free(r.body);
    cJSON *reqs = ph_ingest_requests(s);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 0), "path")->valuestring, "/i/v0/ai/batch/");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 0), "protocol")->valuestring, "v0");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 4), "path")->valuestring, "/i/v1/ai/events");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 4), "protocol")->valuestring, "v1");
    cJSON_Delete(reqs);
    ck_assert_int_eq((int)summary_num(s, "events"), 5);
    ck_assert_int_eq((int)sub_num(s, "protocol_counts", "v0"), 4);
    ck_assert_int_eq((int)sub_num(s, "protocol_counts", "v1"), 2);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

START_TEST(v0_unchanged_beside_v1)
{
    ph_ingest_t *s = start(NULL);
    /* v1 verdicts do not apply to v0; v0 answers as before. */
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"script\":[{\"verdicts\":[{\"result\":\"drop\"}]}]}"), 0);
    resp_t r = req(s, "POST", "/batch/", BATCH, strlen(BATCH), NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\": 1}");
    ck_assert_ptr_null(strstr(r.headers, "Retry-After"));
    ck_assert_ptr_null(strstr(r.headers, "PostHog-Request-Id"));
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "events"), 2);
    /* v0 keeps its 20 MiB limit and gzip sniffing; the v1 headers are not needed. */
    size_t gz_n;
    char *gz = gzip_buf(BATCH, strlen(BATCH), &gz_n);
    r = req(s, "POST", "/batch/", gz, gz_n, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    free(gz);
    cJSON *reqs = ph_ingest_requests(s);
    cJSON *q1 = cJSON_GetArrayItem(reqs, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(q1, "protocol")->valuestring, "v0");
    ck_assert_str_eq(cJSON_GetObjectItem(q1, "encoding")->valuestring, "gzip");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(q1, "results")));
    cJSON_Delete(reqs);
    /* A v1 body on /batch/ is a v0 request with no api_key: 401, as before. */
    ck_assert_int_eq(post(s, "/batch/", V1_BATCH), 401);
    ck_assert_int_eq((int)sub_num(s, "encoding_counts", "gzip"), 1);
    ck_assert_int_eq((int)sub_num(s, "protocol_counts", "v0"), 3);
    cJSON *f = ph_ingest_faults(s);
    ck_assert_int_eq((int)num(f, "max_body_bytes"), 20 * 1024 * 1024);
    cJSON_Delete(f);
    ck_assert_int_eq(ph_ingest_wait_requests(s, 3, 1000), 0);
    ck_assert_int_eq(ph_ingest_wait_requests(s, 4, 50), -1);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

START_TEST(v1_no_store)
{
    const char *args[] = {"--no-store", NULL};
    ph_ingest_t *s = start(args);
    size_t zn;
    char *z = zstd_buf(V1_BATCH, strlen(V1_BATCH), &zn);
    const char *e_zs[] = {"Content-Encoding: zstd", NULL};
    for (int i = 0; i < 2; i++) {
        resp_t r = v1_send(s, "/i/v1/analytics/events", z, zn, 0, e_zs);
        ck_assert_int_eq(r.status, 200);
        ck_assert_ptr_nonnull(strstr(r.body, "\"" U2 "\":{\"result\":\"ok\"}"));
        free(r.body);
    }
    ck_assert_int_eq(ph_ingest_set_faults(s, "{\"script\":[{\"verdicts\":[{\"match\":{\"index\":2},\"result\":\"retry\"}]}]}"), 0);
    resp_t r = v1_send(s, "/i/v1/analytics/events", z, zn, 0, e_zs);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.headers, "Retry-After: 1\r\n"));
    free(r.body);
    free(z);
    ck_assert_int_eq((int)summary_num(s, "events"), 8);
    ck_assert_int_eq((int)summary_num(s, "duplicate_uuids"), 5);
    cJSON *reqs = ph_ingest_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 0);
    cJSON_Delete(reqs);
    ck_assert_int_eq(ph_ingest_stop(s), 0); /* a clean exit (sanitizer builds: no leaks) */
}
END_TEST

/* ------------------------------------------------------------ feature flags */

static const char *FLAGS_V1_DEFAULT =
    "{\"featureFlags\":{},\"featureFlagPayloads\":{},\"errorsWhileComputingFlags\":false}";
static const char *DEFS_EMPTY = "{\"flags\":[],\"group_type_mapping\":{},\"cohorts\":{}}";

static resp_t get(ph_ingest_t *s, const char *path, const char *const *hdrs)
{
    return req(s, "GET", path, NULL, 0, hdrs);
}

/* The answer's body equals the JSON text want (compared as JSON). */
static void assert_body_json(const resp_t *r, const char *want)
{
    cJSON *got = cJSON_Parse(r->body ? r->body : ""), *w = cJSON_Parse(want);
    ck_assert_ptr_nonnull(w);
    ck_assert_msg(got && cJSON_Compare(got, w, 1), "body %s, want %s", r->body ? r->body : "(none)",
                  want);
    cJSON_Delete(got);
    cJSON_Delete(w);
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsString(v), "missing string %s", k);
    return v->valuestring;
}

/* The ETag header's value in r ("" when absent). */
static void etag_of(const resp_t *r, char *out, size_t n)
{
    const char *h = strstr(r->headers, "\nETag: ");
    out[0] = '\0';
    if (h)
        snprintf(out, n, "%.*s", (int)strcspn(h + 7, "\r\n"), h + 7);
}

static void expect_status(ph_ingest_t *s, const char *method, const char *path,
                          const char *const *hdrs, long status)
{
    resp_t r = req(s, method, path, "{}", 2, hdrs);
    ck_assert_msg(r.status == status, "%s %s: %ld, want %ld (%s)", method, path, r.status, status,
                  r.body ? r.body : "");
    free(r.body);
}

static cJSON *wait_records(ph_ingest_t *s, cJSON *(*fn)(ph_ingest_t *), int n)
{
    for (int waited = 0; waited < 10000; waited += 10) {
        cJSON *reqs = fn(s);
        ck_assert_ptr_nonnull(reqs);
        if (cJSON_GetArraySize(reqs) >= n)
            return reqs;
        cJSON_Delete(reqs);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("fewer than %d flag records after 10 s", n);
    return NULL;
}

START_TEST(flags_requests_recorded)
{
    ph_ingest_t *s = start(NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    const char *body = "{\"token\":\"phc_k\",\"distinct_id\":\"u1\",\"groups\":{},"
                       "\"person_properties\":{\"$device_id\":\"d\"},\"geoip_disable\":false,"
                       "\"flag_keys_to_evaluate\":[\"beta\"]}";
    const char *hdrs[] = {"Content-Type: application/json", "User-Agent: posthog-c/0.1.0",
                          "X-Twice: a", "X-Twice: b", NULL};
    resp_t r = req(s, "POST", "/flags/?v=2&config=true", body, strlen(body), hdrs);
    ck_assert_int_eq(r.status, 200);
    assert_body_json(&r, FLAGS_V1_DEFAULT); /* the compliance harness's default, v1 shape */
    ck_assert_ptr_nonnull(strstr(r.headers, "Content-Type: application/json"));
    free(r.body);
    ck_assert_int_eq(post(s, "/flags", "not json{"), 200);
    size_t gz_n;
    char *gz = gzip_buf(body, strlen(body), &gz_n);
    const char *gz_hdrs[] = {"Content-Encoding: gzip", NULL};
    r = req(s, "POST", "/flags/", gz, gz_n, gz_hdrs);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    free(gz);
    r = get(s, "/flags/?v=2", NULL);
    ck_assert_int_eq(r.status, 405);
    free(r.body);
    clock_gettime(CLOCK_REALTIME, &t1);

    cJSON *reqs = ph_ingest_flags_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 4);
    cJSON *q = cJSON_GetArrayItem(reqs, 0), *sent = cJSON_Parse(body);
    ck_assert_str_eq(str_of(q, "method"), "POST");
    ck_assert_str_eq(str_of(q, "path"), "/flags/");
    ck_assert_str_eq(str_of(q, "query"), "v=2&config=true");
    cJSON *h = cJSON_GetObjectItem(q, "headers");
    ck_assert_str_eq(str_of(h, "user-agent"), "posthog-c/0.1.0");
    ck_assert_str_eq(str_of(h, "content-type"), "application/json");
    ck_assert_str_eq(str_of(h, "x-twice"), "a, b");
    ck_assert_ptr_null(cJSON_GetObjectItem(h, "authorization"));
    ck_assert(cJSON_Compare(cJSON_GetObjectItem(q, "body"), sent, 1));
    double ms = num(q, "time_ms");
    ck_assert(ms >= (double)t0.tv_sec * 1000 + t0.tv_nsec / 1000000 - 1);
    ck_assert(ms <= (double)t1.tv_sec * 1000 + t1.tv_nsec / 1000000 + 1);
    ck_assert_int_eq((int)num(q, "status"), 200);
    ck_assert_int_eq((int)num(q, "delay_ms"), 0);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(q, "hang")));
    q = cJSON_GetArrayItem(reqs, 1);
    ck_assert_str_eq(str_of(q, "path"), "/flags");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(q, "body")));
    ck_assert_str_eq(str_of(q, "body_text"), "not json{");
    ck_assert(num(q, "seq") > num(cJSON_GetArrayItem(reqs, 0), "seq"));
    q = cJSON_GetArrayItem(reqs, 2); /* gzip'ed body: recorded decoded */
    ck_assert(cJSON_Compare(cJSON_GetObjectItem(q, "body"), sent, 1));
    q = cJSON_GetArrayItem(reqs, 3);
    ck_assert_str_eq(str_of(q, "method"), "GET");
    ck_assert_int_eq((int)num(q, "status"), 405);
    cJSON_Delete(sent);
    cJSON_Delete(reqs);

    /* Kept apart from the ingest records and counters. */
    reqs = ph_ingest_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 0);
    cJSON_Delete(reqs);
    ck_assert_int_eq((int)summary_num(s, "requests"), 0);
    reqs = ph_ingest_definitions_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 0);
    cJSON_Delete(reqs);
    ck_assert_int_eq(ph_ingest_stop(s), 0);
}
END_TEST

#define BIG64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

START_TEST(flags_queue_then_default)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(
        ph_ingest_set_flags(
            s, "{\"responses\":[{\"status\":200,\"body\":{\"featureFlags\":{\"a\":true}}},"
               "{\"status\":502},"
               "{\"body\":\"<html>portal</html>\",\"headers\":{\"Content-Type\":\"text/html\","
               "\"X-Test\":\"y\"}},"
               "{\"status\":504,\"body\":{\"error\":\"timeout\"}}],"
               "\"default\":{\"body\":{\"featureFlags\":{\"d\":\"v\"},\"featureFlagPayloads\":{},"
               "\"errorsWhileComputingFlags\":false}}}"),
        0);
    resp_t r = req(s, "POST", "/flags/?v=2", "{}", 2, NULL);
    ck_assert_int_eq(r.status, 200);
    assert_body_json(&r, "{\"featureFlags\":{\"a\":true}}");
    free(r.body);
    r = req(s, "POST", "/flags/?v=2", "{}", 2, NULL);
    ck_assert_int_eq(r.status, 502);
    assert_body_json(&r, "{\"type\":\"injected_fault\",\"status\":502}");
    free(r.body);
    r = req(s, "POST", "/flags/?v=2", "{}", 2, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "<html>portal</html>");
    ck_assert_ptr_nonnull(strstr(r.headers, "Content-Type: text/html"));
    ck_assert_ptr_nonnull(strstr(r.headers, "X-Test: y"));
    free(r.body);
    r = req(s, "POST", "/flags/?v=2", "{}", 2, NULL);
    ck_assert_int_eq(r.status, 504);
    assert_body_json(&r, "{\"error\":\"timeout\"}");
    free(r.body);
    for (int i = 0; i < 2; i++) { /* then the default, for ever */
        r = req(s, "POST", "/flags", "{}", 2, NULL);
        ck_assert_int_eq(r.status, 200);
        assert_body_json(&r, "{\"featureFlags\":{\"d\":\"v\"},\"featureFlagPayloads\":{},"
                             "\"errorsWhileComputingFlags\":false}");
        ck_assert_ptr_null(strstr(r.headers, "X-Test"));
        free(r.body);
    }
    cJSON *reqs = ph_ingest_flags_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 6);
    int want[] = {200, 502, 200, 504, 200, 200};
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq((int)num(cJSON_GetArrayItem(reqs, i), "status"), want[i]);
    cJSON_Delete(reqs);

    /* A key left out keeps its setting; an entry without status or body is the default. */
    ck_assert_int_eq(ph_ingest_set_flags(s, "{\"responses\":[{\"headers\":{\"X-Only\":\"1\"}},"
                                            "{\"status\":201}]}"), 0);
    r = req(s, "POST", "/flags", "{}", 2, NULL);
    ck_assert_int_eq(r.status, 200);
    assert_body_json(&r, "{\"featureFlags\":{\"d\":\"v\"},\"featureFlagPayloads\":{},"
                         "\"errorsWhileComputingFlags\":false}");
    ck_assert_ptr_nonnull(strstr(r.headers, "X-Only: 1"));
    free(r.body);
    r = req(s, "POST", "/flags", "{}", 2, NULL); /* a 2xx without body: the default's body */
    ck_assert_int_eq(r.status, 201);
    assert_body_json(&r, "{\"featureFlags\":{\"d\":\"v\"},\"featureFlagPayloads\":{},"
                         "\"errorsWhileComputingFlags\":false}");
    free(r.body);
    ck_assert_int_eq(ph_ingest_set_flags(s, "{\"default\":null}"), 0);
    r = req(s, "POST", "/flags", "{}", 2, NULL);
    ck_assert_int_eq(r.status, 200);
    assert_body_json(&r, FLAGS_V1_DEFAULT);
    free(r.body);
    ck_assert_int_eq(ph_ingest_set_flags(s, "{\"default\":{\"status\":500}}"), 0);
    r = req(s, "POST", "/flags", "{}", 2, NULL);
    ck_assert_int_eq(r.status, 500);
    assert_body_json(&r, "{\"type\":\"injected_fault\",\"status\":500}");
    free(r.body);

    /* Bad scripts are refused with the reason, and change nothing. */
    const char *bad[] = {"not json",
                         "[]",
                         "{\"respnses\":[]}",
                         "{\"responses\":{}}",
                         "{\"responses\":[{\"status\":99}]}",
                         "{\"responses\":[{\"status\":600}]}",
                         "{\"responses\":[{\"status\":\"200\"}]}",
                         "{\"responses\":[{\"statu\":200}]}",
                         "{\"responses\":[{\"hang\":\"yes\"}]}",
                         "{\"responses\":[{\"delay_ms\":-1}]}",
                         "{\"responses\":[{\"delay_ms\":600001}]}",
                         "{\"responses\":[{\"headers\":{\"X\":\"a\\r\\nY: b\"}}]}",
                         "{\"responses\":[{\"headers\":{\"Bad Name\":\"a\"}}]}",
                         "{\"responses\":[{\"headers\":{\"Content-Length\":\"5\"}}]}",
                         "{\"responses\":[{\"headers\":{\"X\":1}}]}",
                         "{\"responses\":[{\"headers\":{\"Content-Type\":\"" BIG64 "\"}}]}",
                         "{\"responses\":[{\"headers\":{\"A\":\"" BIG64 BIG64 "\",\"B\":\"" BIG64
                         BIG64 "\"}}]}",
                         "{\"responses\":[1]}",
                         "{\"default\":[]}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(ph_ingest_set_flags(s, bad[i]) == -1, "accepted %s", bad[i]);
    const char *typo = "{\"responses\":[{\"statu\":200}]}";
    r = req(s, "POST", "/_control/flags", typo, strlen(typo), NULL);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "\\\"responses\\\"[0]: unknown key \\\"statu\\\""));
    ck_assert_ptr_nonnull(strstr(r.body, "allowed"));
    free(r.body);
    r = get(s, "/_control/flags", NULL);
    assert_body_json(&r, "{\"responses\":[],\"default\":{\"status\":500,\"body\":null,"
                         "\"headers\":{},\"delay_ms\":0,\"hang\":false}}");
    free(r.body);
    ck_assert_int_eq(ph_ingest_stop(s), 0);
}
END_TEST

typedef struct slow_call {
    ph_ingest_t *s;
    resp_t r;
    atomic_int done;
} slow_call_t;

static void *slow_call_main(void *arg)
{
    slow_call_t *c = arg;
    c->r = req(c->s, "POST", "/flags/?v=2", "{}", 2, NULL);
    atomic_store(&c->done, 1);
    return NULL;
}

/* A request written on a raw socket, left unanswered. */
static int raw_flags_request(ph_ingest_t *s)
{
    static const char msg[] = "POST /flags/?v=2 HTTP/1.1\r\nHost: x\r\nContent-Type: "
                              "application/json\r\nContent-Length: 2\r\n\r\n{}";
    int fd = raw_connect(s);
    ck_assert_int_eq(send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL), (ssize_t)(sizeof msg - 1));
    return fd;
}

START_TEST(flags_delay_and_hang_do_not_block)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(
        ph_ingest_set_flags(s, "{\"responses\":[{\"hang\":true},"
                               "{\"delay_ms\":3000,\"body\":{\"featureFlags\":{\"slow\":true}}},"
                               "{\"body\":{\"featureFlags\":{\"fast\":true}}},"
                               "{\"hang\":true}]}"),
        0);
    int hung = raw_flags_request(s);
    cJSON *reqs = wait_records(s, ph_ingest_flags_requests, 1);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 0), "hang")));
    ck_assert_int_eq((int)num(cJSON_GetArrayItem(reqs, 0), "status"), 0);
    cJSON_Delete(reqs);

    slow_call_t slow;
    memset(&slow, 0, sizeof slow);
    slow.s = s;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, slow_call_main, &slow), 0);
    cJSON_Delete(wait_records(s, ph_ingest_flags_requests, 2)); /* the slow one is in */

    /* Meanwhile every other kind of request is served. */
    resp_t r = req(s, "POST", "/flags/?v=2", "{}", 2, NULL);
    ck_assert_int_eq(r.status, 200);
    assert_body_json(&r, "{\"featureFlags\":{\"fast\":true}}");
    free(r.body);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200);
    r = get(s, "/flags/definitions?token=phc_k", NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    ck_assert_msg(!atomic_load(&slow.done), "the delayed answer came before the others");
    struct pollfd p = {hung, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, 0), 0); /* still open, nothing answered */

    pthread_join(th, NULL);
    ck_assert_int_eq(slow.r.status, 200);
    assert_body_json(&slow.r, "{\"featureFlags\":{\"slow\":true}}");
    ck_assert_msg(slow.r.secs >= 2.9, "delay %.3f", slow.r.secs);
    free(slow.r.body);
    ck_assert_int_eq(poll(&p, 1, 0), 0);
    close(hung); /* the client gives up */

    /* A client with a timeout gives up on a hang. */
    char url[256];
    snprintf(url, sizeof url, "%s/flags/", ph_ingest_url(s));
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 300L);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OPERATION_TIMEDOUT);
    curl_easy_cleanup(c);

    /* Script done: the default again. */
    r = req(s, "POST", "/flags/?v=2", "{}", 2, NULL);
    ck_assert_int_eq(r.status, 200);
    assert_body_json(&r, FLAGS_V1_DEFAULT);
    free(r.body);
    reqs = ph_ingest_flags_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 5);
    ck_assert_int_eq((int)num(cJSON_GetArrayItem(reqs, 1), "delay_ms"), 3000);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 3), "hang")));
    cJSON_Delete(reqs);

    /* A hang still open does not hold up the server's stop. */
    ck_assert_int_eq(ph_ingest_set_flags(s, "{\"default\":{\"hang\":true}}"), 0);
    hung = raw_flags_request(s);
    cJSON_Delete(wait_records(s, ph_ingest_flags_requests, 6));
    ck_assert_int_eq(ph_ingest_stop(s), 0);
    close(hung);
}
END_TEST

START_TEST(definitions_etag_304_and_paths)
{
    ph_ingest_t *s = start(NULL);
    char etag[256], etag2[256], hdr[300];
    resp_t r = get(s, "/flags/definitions?token=phc_k&send_cohorts", NULL);
    ck_assert_int_eq(r.status, 200);
    assert_body_json(&r, DEFS_EMPTY);
    etag_of(&r, etag, sizeof etag);
    ck_assert_msg(strncmp(etag, "W/\"", 3) == 0, "etag %s", etag); /* automatic, weak */
    free(r.body);

    const char *defs = "{\"flags\":[{\"id\":1,\"key\":\"beta\",\"active\":true,\"filters\":{"
                       "\"groups\":[{\"properties\":[],\"rollout_percentage\":50}]}}],"
                       "\"group_type_mapping\":{\"0\":\"company\"},\"cohorts\":{}}";
    char ctl[1024];
    snprintf(ctl, sizeof ctl, "{\"body\":%s,\"etag\":\"W/\\\"abc\\\"\"}", defs);
    ck_assert_int_eq(ph_ingest_set_definitions(s, ctl), 0);
    const char *paths[] = {"/flags/definitions?token=phc_k&send_cohorts",
                           "/flags/definitions/?token=phc_k",
                           "/api/feature_flag/local_evaluation?token=phc_k&send_cohorts",
                           "/api/feature_flag/local_evaluation/?token=phc_k&send_cohorts"};
    for (int i = 0; i < 4; i++) {
        r = get(s, paths[i], NULL);
        ck_assert_int_eq(r.status, 200);
        assert_body_json(&r, defs);
        etag_of(&r, etag, sizeof etag);
        ck_assert_str_eq(etag, "W/\"abc\"");
        free(r.body);
    }
    /* If-None-Match: weak comparison; weak, strong and bare forms; lists; "*". */
    const char *match[] = {"W/\"abc\"", "\"abc\"", "abc", "\"x\", W/\"abc\"", "*"};
    for (int i = 0; i < 5; i++) {
        snprintf(hdr, sizeof hdr, "If-None-Match: %s", match[i]);
        const char *h[] = {hdr, NULL};
        r = get(s, "/flags/definitions?token=phc_k&send_cohorts", h);
        ck_assert_msg(r.status == 304, "%s: %ld", match[i], r.status);
        ck_assert_int_eq((int)r.body_len, 0);
        etag_of(&r, etag, sizeof etag);
        ck_assert_str_eq(etag, "W/\"abc\"");
        free(r.body);
    }
    const char *old[] = {"If-None-Match: W/\"old\"", NULL};
    r = get(s, "/flags/definitions?token=phc_k", old);
    ck_assert_int_eq(r.status, 200);
    assert_body_json(&r, defs);
    free(r.body);

    /* "etag": null: automatic again, and it follows the body. */
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"etag\":null}"), 0);
    r = get(s, "/flags/definitions?token=phc_k", old);
    etag_of(&r, etag, sizeof etag);
    ck_assert(etag[0] && strcmp(etag, "W/\"abc\"") != 0);
    free(r.body);
    snprintf(hdr, sizeof hdr, "If-None-Match: %s", etag);
    const char *cur[] = {hdr, NULL};
    r = get(s, "/flags/definitions?token=phc_k", cur);
    ck_assert_int_eq(r.status, 304);
    free(r.body);
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"body\":{\"flags\":[],\"cohorts\":{},"
                                                  "\"group_type_mapping\":{}}}"), 0);
    r = get(s, "/flags/definitions?token=phc_k", cur);
    ck_assert_int_eq(r.status, 200);
    etag_of(&r, etag2, sizeof etag2);
    ck_assert(etag2[0] && strcmp(etag, etag2) != 0);
    free(r.body);

    /* "etag": "": no ETag, never a 304; a string body goes out as is. */
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"etag\":\"\",\"body\":\"{not json\"}"), 0);
    const char *star[] = {"If-None-Match: *", NULL};
    r = get(s, "/flags/definitions?token=phc_k", star);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{not json");
    ck_assert_ptr_null(strstr(r.headers, "ETag"));
    free(r.body);
    expect_status(s, "POST", "/flags/definitions?token=phc_k", NULL, 405);

    cJSON *reqs = ph_ingest_definitions_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 16);
    cJSON *q = cJSON_GetArrayItem(reqs, 2);
    ck_assert_str_eq(str_of(q, "method"), "GET");
    ck_assert_str_eq(str_of(q, "path"), "/flags/definitions/");
    ck_assert_str_eq(str_of(q, "query"), "token=phc_k");
    q = cJSON_GetArrayItem(reqs, 5);
    ck_assert_str_eq(str_of(cJSON_GetObjectItem(q, "headers"), "if-none-match"), "W/\"abc\"");
    ck_assert_int_eq((int)num(q, "status"), 304);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(q, "body")));
    ck_assert_str_eq(str_of(q, "body_text"), "");
    ck_assert_int_eq((int)num(cJSON_GetArrayItem(reqs, 15), "status"), 405);
    cJSON_Delete(reqs);
    reqs = ph_ingest_flags_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 0);
    cJSON_Delete(reqs);
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"etag\":\"W/\\\"a\\r\\nX: y\\\"\"}"), -1);
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"etag\":5}"), -1);
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"bdy\":{}}"), -1);
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"secret_key\":[]}"), -1);
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"delay_ms\":\"1\"}"), -1);
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"responses\":[{\"status\":42}]}"), -1);
    ck_assert_int_eq(ph_ingest_stop(s), 0);
}
END_TEST

START_TEST(definitions_token_400_and_secret_401)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"secret_key\":\"phs_secret\"}"), 0);
    resp_t r = get(s, "/flags/definitions?send_cohorts", NULL); /* the query is checked first */
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "\"missing_token\""));
    ck_assert_ptr_nonnull(strstr(r.body, "token"));
    free(r.body);
    expect_status(s, "GET", "/flags/definitions?token=&send_cohorts", NULL, 400);
    expect_status(s, "GET", "/flags/definitions?tokens=phc_k", NULL, 400);
    r = get(s, "/flags/definitions?token=phc_k&send_cohorts", NULL);
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.body, "missing header Authorization"));
    ck_assert_ptr_null(strstr(r.body, "phs_secret")); /* never echoes the key */
    free(r.body);
    const char *wrong[] = {"Authorization: Bearer phs_other", NULL};
    r = get(s, "/flags/definitions?token=phc_k", wrong);
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.body, "does not carry the configured secret key"));
    free(r.body);
    const char *basic[] = {"Authorization: Basic phs_secret", NULL};
    expect_status(s, "GET", "/flags/definitions?token=phc_k", basic, 401);
    const char *prefix[] = {"Authorization: Bearer phs_secretX", NULL};
    expect_status(s, "GET", "/flags/definitions?token=phc_k", prefix, 401);
    const char *right[] = {"Authorization: Bearer phs_secret", NULL};
    expect_status(s, "GET", "/flags/definitions?send_cohorts&token=phc_k", right, 200);
    const char *lower[] = {"Authorization: bearer   phs_secret", NULL};
    expect_status(s, "GET", "/api/feature_flag/local_evaluation/?token=phc_k", lower, 200);
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"secret_key\":null}"), 0);
    expect_status(s, "GET", "/flags/definitions?token=phc_k", NULL, 200);
    expect_status(s, "GET", "/flags/definitions?token=phc_k", wrong, 200);
    cJSON *reqs = ph_ingest_definitions_requests(s);
    int want[] = {400, 400, 400, 401, 401, 401, 401, 200, 200, 200, 200};
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 11);
    for (int i = 0; i < 11; i++)
        ck_assert_int_eq((int)num(cJSON_GetArrayItem(reqs, i), "status"), want[i]);
    ck_assert_str_eq(str_of(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 7), "headers"),
                            "authorization"),
                     "Bearer phs_secret");
    cJSON_Delete(reqs);
    ck_assert_int_eq(ph_ingest_stop(s), 0);
}
END_TEST

START_TEST(definitions_scripted_statuses)
{
    ph_ingest_t *s = start(NULL);
    const char *defs = "{\"flags\":[{\"key\":\"beta\"}],\"group_type_mapping\":{},\"cohorts\":{}}";
    char ctl[1024];
    snprintf(ctl, sizeof ctl,
             "{\"body\":%s,\"etag\":\"W/\\\"e1\\\"\",\"secret_key\":\"phs_s\",\"responses\":["
             "{\"status\":402,\"body\":{\"type\":\"quota_limited\"}},{\"status\":403},"
             "{\"status\":500},{\"status\":200},{\"delay_ms\":300},"
             "{\"headers\":{\"X-Extra\":\"1\"}}]}",
             defs);
    ck_assert_int_eq(ph_ingest_set_definitions(s, ctl), 0);
    /* Scripted answers come before the endpoint's own checks. */
    resp_t r = get(s, "/flags/definitions", NULL);
    ck_assert_int_eq(r.status, 402);
    assert_body_json(&r, "{\"type\":\"quota_limited\"}");
    ck_assert_ptr_null(strstr(r.headers, "ETag"));
    free(r.body);
    r = get(s, "/flags/definitions", NULL);
    ck_assert_int_eq(r.status, 403);
    assert_body_json(&r, "{\"type\":\"injected_fault\",\"status\":403}");
    free(r.body);
    r = get(s, "/flags/definitions", NULL);
    ck_assert_int_eq(r.status, 500);
    free(r.body);
    r = get(s, "/flags/definitions", NULL); /* a 2xx without body: the definitions */
    ck_assert_int_eq(r.status, 200);
    assert_body_json(&r, defs);
    char etag[64];
    etag_of(&r, etag, sizeof etag);
    ck_assert_str_eq(etag, "W/\"e1\"");
    free(r.body);
    /* Entries without status or body delay or decorate the normal answer. */
    const char *auth[] = {"Authorization: Bearer phs_s", NULL};
    r = get(s, "/flags/definitions?token=phc_k", auth);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(r.secs >= 0.29, "delay %.3f", r.secs);
    free(r.body);
    r = get(s, "/flags/definitions?token=phc_k", NULL);
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.headers, "X-Extra: 1"));
    free(r.body);
    r = get(s, "/_control/flags/definitions", NULL);
    cJSON *st = cJSON_Parse(r.body);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(st, "responses")), 0);
    ck_assert_str_eq(str_of(st, "etag"), "W/\"e1\"");
    ck_assert_str_eq(str_of(st, "secret_key"), "phs_s");
    cJSON *want = cJSON_Parse(defs);
    ck_assert(cJSON_Compare(cJSON_GetObjectItem(st, "body"), want, 1));
    cJSON_Delete(want);
    cJSON_Delete(st);
    free(r.body);
    /* "delay_ms" delays every answer not from the script. */
    ck_assert_int_eq(ph_ingest_set_definitions(s, "{\"delay_ms\":300}"), 0);
    r = get(s, "/flags/definitions?token=phc_k", auth);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(r.secs >= 0.29, "delay %.3f", r.secs);
    free(r.body);
    /* A hang until the client gives up; HEAD gets the head of the normal answer. */
    ck_assert_int_eq(
        ph_ingest_set_definitions(s, "{\"delay_ms\":0,\"responses\":[{\"hang\":true}]}"), 0);
    char url[256];
    snprintf(url, sizeof url, "%s/flags/definitions?token=phc_k", ph_ingest_url(s));
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 300L);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OPERATION_TIMEDOUT);
    long code = 0;
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer phs_s");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    ck_assert_int_eq(code, 200);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    cJSON *reqs = ph_ingest_definitions_requests(s);
    int codes[] = {402, 403, 500, 200, 200, 401, 200, 0, 200};
    int delays[] = {0, 0, 0, 0, 300, 0, 300, 0, 0};
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 9);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 7), "hang")));
    ck_assert_str_eq(str_of(cJSON_GetArrayItem(reqs, 8), "method"), "HEAD");
    for (int i = 0; i < 9; i++) {
        ck_assert_int_eq((int)num(cJSON_GetArrayItem(reqs, i), "status"), codes[i]);
        ck_assert_int_eq((int)num(cJSON_GetArrayItem(reqs, i), "delay_ms"), delays[i]);
    }
    cJSON_Delete(reqs);
    ck_assert_int_eq(ph_ingest_stop(s), 0);
}
END_TEST

START_TEST(flags_reset_clears_everything)
{
    ph_ingest_t *s = start(NULL);
    ck_assert_int_eq(ph_ingest_set_flags(s, "{\"responses\":[{\"status\":502},{\"status\":502}],"
                                            "\"default\":{\"status\":500}}"),
                     0);
    ck_assert_int_eq(ph_ingest_set_definitions(
                         s, "{\"body\":{\"flags\":[{\"key\":\"x\"}]},\"etag\":\"W/\\\"abc\\\"\","
                            "\"secret_key\":\"phs_s\",\"delay_ms\":100,"
                            "\"responses\":[{\"status\":402},{\"status\":402}]}"),
                     0);
    expect_status(s, "POST", "/flags/", NULL, 502);
    expect_status(s, "GET", "/flags/definitions?token=phc_k", NULL, 402);
    ck_assert_int_eq(post(s, "/batch/", BATCH), 200);
    ck_assert_int_eq(ph_ingest_reset(s), 0);

    cJSON *reqs = ph_ingest_flags_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 0);
    cJSON_Delete(reqs);
    reqs = ph_ingest_definitions_requests(s);
    ck_assert_int_eq(cJSON_GetArraySize(reqs), 0);
    cJSON_Delete(reqs);
    resp_t r = req(s, "POST", "/flags/?v=2", "{}", 2, NULL);
    ck_assert_int_eq(r.status, 200);
    assert_body_json(&r, FLAGS_V1_DEFAULT);
    free(r.body);
    const char *inm[] = {"If-None-Match: W/\"abc\"", NULL};
    r = get(s, "/flags/definitions?token=phc_k", inm); /* no secret, no tag, no delay */
    ck_assert_int_eq(r.status, 200);
    assert_body_json(&r, DEFS_EMPTY);
    char etag[64];
    etag_of(&r, etag, sizeof etag);
    ck_assert_str_ne(etag, "W/\"abc\"");
    free(r.body);
    r = get(s, "/_control/flags", NULL);
    assert_body_json(&r, "{\"responses\":[],\"default\":null}");
    free(r.body);
    r = get(s, "/_control/flags/definitions", NULL);
    cJSON *st = cJSON_Parse(r.body);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(st, "secret_key")));
    ck_assert_int_eq((int)num(st, "delay_ms"), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(st, "responses")), 0);
    cJSON_Delete(st);
    free(r.body);
    ck_assert_int_eq((int)summary_num(s, "requests"), 0);
    ck_assert_int_eq(ph_ingest_stop(s), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *su = suite_create("ingest_server");
    TCase *t = tcase_create("contract");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, batch_accepted_and_recorded_exactly);
    tcase_add_test(t, all_paths_and_body_shapes);
    tcase_add_test(t, gzip_header_query_and_magic);
    tcase_add_test(t, invalid_event_rejects_whole_request);
    tcase_add_test(t, api_key_rules);
    tcase_add_test(t, size_limits_413);
    tcase_add_test(t, script_503_then_200);
    tcase_add_test(t, script_429_retry_after);
    tcase_add_test(t, script_reset_and_delay);
    tcase_add_test(t, summary_and_duplicates);
    tcase_add_test(t, reset_clears_everything);
    tcase_add_test(t, no_store_keeps_counters_only);
    tcase_add_test(t, keep_alive_chunked_and_pipelined);
    tcase_add_test(t, garbage_never_crashes);
    tcase_add_test(t, loopback_only_and_clean_shutdown);
    suite_add_tcase(su, t);
    TCase *v1 = tcase_create("capture_v1");
    tcase_set_timeout(v1, 120);
    tcase_add_test(v1, v1_accepted_with_results_map);
    tcase_add_test(v1, v1_headers_all_reported_at_once);
    tcase_add_test(v1, v1_token_401);
    tcase_add_test(v1, v1_content_type_and_encoding_415);
    tcase_add_test(v1, v1_each_encoding_decoded);
    tcase_add_test(v1, v1_size_limits_413);
    tcase_add_test(v1, v1_whole_batch_rejections);
    tcase_add_test(v1, v1_verdicts_each_kind);
    tcase_add_test(v1, v1_body_override_and_absent_uuids);
    tcase_add_test(v1, v1_status_faults);
    tcase_add_test(v1, ai_endpoints);
    tcase_add_test(v1, v0_unchanged_beside_v1);
    tcase_add_test(v1, v1_no_store);
    suite_add_tcase(su, v1);
    TCase *fl = tcase_create("feature_flags");
    tcase_set_timeout(fl, 120);
    tcase_add_test(fl, flags_requests_recorded);
    tcase_add_test(fl, flags_queue_then_default);
    tcase_add_test(fl, flags_delay_and_hang_do_not_block);
    tcase_add_test(fl, definitions_etag_304_and_paths);
    tcase_add_test(fl, definitions_token_400_and_secret_401);
    tcase_add_test(fl, definitions_scripted_statuses);
    tcase_add_test(fl, flags_reset_clears_everything);
    suite_add_tcase(su, fl);
    return su;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
