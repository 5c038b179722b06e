/*
 * support_client: see support_client.h.
 */
#include "support_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ server */

#define IT_MAX_SERVERS 16
static ph_ingest_t *servers[IT_MAX_SERVERS];
static pid_t servers_owner;

/* A test that fails exits without its cleanup: stop the servers it started. */
static void stop_leftover_servers(void)
{
    if (servers_owner != getpid())
        return; /* a forked child: the servers belong to the parent */
    for (int i = 0; i < IT_MAX_SERVERS; i++) {
        if (servers[i]) {
            ph_ingest_stop(servers[i]);
            servers[i] = NULL;
        }
    }
}

ph_ingest_t *it_server(const char *const *extra_args)
{
    static int registered;
    if (!registered) {
        atexit(stop_leftover_servers);
        registered = 1;
    }
    ph_ingest_t *s = ph_ingest_start(extra_args);
    ck_assert_msg(s != NULL, "could not start the ingestion server");
    servers_owner = getpid();
    for (int i = 0; i < IT_MAX_SERVERS; i++) {
        if (!servers[i]) {
            servers[i] = s;
            break;
        }
    }
    return s;
}

void it_stop(ph_ingest_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < IT_MAX_SERVERS; i++)
        if (servers[i] == s)
            servers[i] = NULL;
    ph_ingest_stop(s);
}

void it_faults(ph_ingest_t *s, const char *json)
{
    ck_assert_msg(ph_ingest_set_faults(s, json) == 0, "could not set faults %s", json);
}

long long it_summary_num(ph_ingest_t *s, const char *member)
{
    cJSON *sum = ph_ingest_summary(s);
    const cJSON *v = sum ? cJSON_GetObjectItemCaseSensitive(sum, member) : NULL;
    long long r = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
    cJSON_Delete(sum);
    return r;
}

typedef struct grow_buf {
    char *p;
    size_t n, cap;
} grow_buf_t;

/* Doubling growth: the harness grows its buffer by each chunk, which is
 * quadratic for the tens of megabytes a stress run's events take. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    grow_buf_t *b = ud;
    size_t n = size * nmemb;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 65536;
        while (nc < b->n + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np)
            return 0;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, ptr, n);
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* GET a control endpoint and detach `member` from its JSON answer. */
static cJSON *control_get(ph_ingest_t *s, const char *path, const char *member)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", ph_ingest_url(s), path);
    CURL *h = curl_easy_init();
    ck_assert_ptr_nonnull(h);
    grow_buf_t b = {NULL, 0, 0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    cJSON *root = rc == CURLE_OK && status == 200 && b.p ? cJSON_ParseWithLength(b.p, b.n) : NULL;
    free(b.p);
    ck_assert_msg(root != NULL, "GET %s failed: %s, HTTP %ld", path, curl_easy_strerror(rc),
                  status);
    cJSON *m = cJSON_DetachItemFromObjectCaseSensitive(root, member);
    cJSON_Delete(root);
    ck_assert_msg(cJSON_IsArray(m), "GET %s: no array \"%s\"", path, member);
    return m;
}

cJSON *it_requests(ph_ingest_t *s)
{
    return control_get(s, "/_control/requests", "requests");
}

cJSON *it_events(ph_ingest_t *s)
{
    return control_get(s, "/_control/events", "events");
}

int it_wait_requests(ph_ingest_t *s, int n, int timeout_ms)
{
    int64_t end = it_mono_ms() + timeout_ms;
    for (;;) {
        if (it_summary_num(s, "requests") >= n)
            return 0;
        if (it_mono_ms() >= end)
            return -1;
        it_sleep_ms(10);
    }
}

int it_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd); /* never listened: connecting is refused */
    return ntohs(a.sin_port);
}

/* ------------------------------------------------------------ client */

void it_set(posthog_options_t *o, const char *key, const char *value)
{
    posthog_status_t st = posthog_options_set(o, key, value);
    ck_assert_msg(st == POSTHOG_OK, "posthog_options_set(%s, %s): %s", key, value,
                  posthog_strerror(st));
}

void it_set_int(posthog_options_t *o, const char *key, long long value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", value);
    it_set(o, key, buf);
}

posthog_options_t *it_options(ph_ingest_t *s)
{
    posthog_options_t *o = posthog_options_new();
    ck_assert_ptr_nonnull(o);
    it_set(o, "api_key", IT_API_KEY);
    if (s)
        it_set(o, "host", ph_ingest_url(s));
    it_set(o, "retry_backoff_ms", "20");
    /* The suites written for /batch/ pin v0; test_v1.c covers capture v1
     * (the default) and IT_CAPTURE_MODE=v1 runs these on v1 where they apply. */
    const char *mode = getenv("IT_CAPTURE_MODE");
    it_set(o, "capture_mode", mode && *mode ? mode : "v0");
    return o;
}

posthog_client_t *it_client(posthog_options_t *o)
{
    char err[256] = "";
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    ck_assert_msg(c != NULL, "posthog_client_new failed: %s", err);
    return c;
}

posthog_stats_t it_stats(const posthog_client_t *c)
{
    posthog_stats_t s;
    ck_assert_int_eq(posthog_get_stats(c, &s), POSTHOG_OK);
    return s;
}

void it_check_balance(const posthog_client_t *c, uint64_t n_ok, uint64_t n_failed)
{
    posthog_stats_t s = it_stats(c);
    uint64_t sum = 0;
    for (int i = 0; i < POSTHOG_DROP_REASON_COUNT; i++)
        sum += s.dropped[i];
    ck_assert_msg(s.dropped_total == sum, "dropped_total %llu != sum of dropped[] %llu",
                  (unsigned long long)s.dropped_total, (unsigned long long)sum);
    ck_assert_msg(s.captured == n_ok, "captured %llu, expected %llu",
                  (unsigned long long)s.captured, (unsigned long long)n_ok);
    ck_assert_msg(s.captured + n_failed == s.sent + s.dropped_total,
                  "stats do not balance: captured %llu + capture-time drops %llu != sent %llu + "
                  "dropped_total %llu",
                  (unsigned long long)s.captured, (unsigned long long)n_failed,
                  (unsigned long long)s.sent, (unsigned long long)s.dropped_total);
}

/* ------------------------------------------------------------ drops */

static char *dup_or_null(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    ck_assert_ptr_nonnull(d);
    return d;
}

static void on_drop(const posthog_drop_info_t *info, void *ud)
{
    it_drops_t *d = ud;
    it_drop_t x;
    x.reason = info->reason;
    x.status = info->status;
    x.http_status = info->http_status;
    x.count = info->count;
    /* strdup without ck_assert: this may run on the flusher thread */
    x.message = info->message ? strdup(info->message) : NULL;
    x.events_json = info->events_json ? strdup(info->events_json) : NULL;
    x.event = info->event ? strdup(info->event) : NULL;
    x.distinct_id = info->distinct_id ? strdup(info->distinct_id) : NULL;
    pthread_mutex_lock(&d->mu);
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 16;
        it_drop_t *ni = realloc(d->items, nc * sizeof *ni);
        if (ni) {
            d->items = ni;
            d->cap = nc;
        }
    }
    if (x.reason >= 0 && x.reason < POSTHOG_DROP_REASON_COUNT)
        d->events[x.reason] += x.count;
    d->total += x.count;
    if (d->n < d->cap)
        d->items[d->n++] = x;
    else
        it_drop_clear(&x);
    pthread_mutex_unlock(&d->mu);
}

it_drops_t *it_drops_new(void)
{
    it_drops_t *d = calloc(1, sizeof *d);
    ck_assert_ptr_nonnull(d);
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

void it_drop_clear(it_drop_t *x)
{
    free(x->message);
    free(x->events_json);
    free(x->event);
    free(x->distinct_id);
    memset(x, 0, sizeof *x);
}

void it_drops_free(it_drops_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        it_drop_clear(&d->items[i]);
    free(d->items);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

void it_drops_attach(posthog_options_t *o, it_drops_t *d)
{
    posthog_options_set_on_drop(o, on_drop, d);
}

size_t it_drops_reports(it_drops_t *d)
{
    pthread_mutex_lock(&d->mu);
    size_t n = d->n;
    pthread_mutex_unlock(&d->mu);
    return n;
}

uint64_t it_drops_events(it_drops_t *d, int reason)
{
    pthread_mutex_lock(&d->mu);
    uint64_t n = d->events[reason];
    pthread_mutex_unlock(&d->mu);
    return n;
}

uint64_t it_drops_total(it_drops_t *d)
{
    pthread_mutex_lock(&d->mu);
    uint64_t n = d->total;
    pthread_mutex_unlock(&d->mu);
    return n;
}

it_drop_t it_drops_get(it_drops_t *d, size_t i)
{
    it_drop_t x;
    pthread_mutex_lock(&d->mu);
    size_t n = d->n;
    if (i < n) {
        x = d->items[i];
        x.message = dup_or_null(x.message);
        x.events_json = dup_or_null(x.events_json);
        x.event = dup_or_null(x.event);
        x.distinct_id = dup_or_null(x.distinct_id);
    }
    pthread_mutex_unlock(&d->mu);
    ck_assert_msg(i < n, "drop report %zu requested, only %zu reported", i, n);
    return x;
}

/* ------------------------------------------------------------ requests */

const cJSON *it_req_body(const cJSON *req)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(req, "body");
    return cJSON_IsObject(b) || cJSON_IsArray(b) ? b : NULL;
}

const cJSON *it_req_batch(const cJSON *req)
{
    const cJSON *b = it_req_body(req);
    const cJSON *batch = b ? cJSON_GetObjectItemCaseSensitive(b, "batch") : NULL;
    return cJSON_IsArray(batch) ? batch : NULL;
}

int it_req_nevents(const cJSON *req)
{
    const cJSON *b = it_req_batch(req);
    return b ? cJSON_GetArraySize(b) : -1;
}

const char *it_req_header(const cJSON *req, const char *name)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(req, "headers");
    return h ? it_str(h, name) : NULL;
}

int it_req_status(const cJSON *req)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(req, "status");
    return cJSON_IsNumber(s) ? s->valueint : -1;
}

const char *it_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *it_prop_str(const cJSON *event, const char *name)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(event, "properties");
    return p ? it_str(p, name) : NULL;
}

const cJSON *it_find_event_by_prop(const cJSON *events, const char *key, const char *value)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, events) {
        const char *v = it_prop_str(e, key);
        if (v && strcmp(v, value) == 0)
            return e;
    }
    return NULL;
}

const cJSON *it_find_event_by_uuid(const cJSON *events, const char *uuid)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, events) {
        const char *v = it_str(e, "uuid");
        if (v && strcmp(v, uuid) == 0)
            return e;
    }
    return NULL;
}

/* ------------------------------------------------------------ formats and time */

static int is_lhex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

int it_is_uuid_v7(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!is_lhex(s[i])) {
            return 0;
        }
    }
    return s[14] == '7' && strchr("89ab", s[19]) != NULL;
}

int it_is_iso_utc_ms(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!s || strlen(s) != sizeof pat - 1)
        return 0;
    for (size_t i = 0; i < sizeof pat - 1; i++) {
        if (pat[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != pat[i])
            return 0;
    }
    return 1;
}

int64_t it_iso_ms(const char *s)
{
    if (!it_is_iso_utc_ms(s))
        return INT64_MIN;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return INT64_MIN;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

int64_t it_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t it_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

char *it_repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

int it_run_suite(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---------------------------------------------------------------- native frames */

int it_run_line(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    out[0] = '\0';
    if (!fgets(out, (int)cap, p))
        out[0] = '\0';
    char rest[256];
    while (fgets(rest, sizeof rest, p)) {
    }
    int rc = pclose(p);
    out[strcspn(out, "\n")] = '\0';
    return rc == 0 ? 0 : -1;
}

int it_frame_function(const cJSON *frame, int caller, char *fn, size_t cap)
{
    const char *file = it_str(frame, "module"), *img = it_str(frame, "image_addr");
    const char *ip = it_str(frame, "instruction_addr");
    if (!file || !img || !ip)
        return -1;
    /* the file's lowest PT_LOAD address: image_addr minus it is the load bias */
    char cmd[1200], line[256];
    snprintf(cmd, sizeof cmd, "readelf -lW '%s' | awk '$1==\"LOAD\"{print $3}' | sort | head -1", file);
    if (it_run_line(cmd, line, sizeof line))
        return -1;
    unsigned long long vmin = strtoull(line, NULL, 16) & ~0xfffULL;
    unsigned long long addr = strtoull(ip, NULL, 16) - strtoull(img, NULL, 16) + vmin - (caller ? 1 : 0);
    snprintf(cmd, sizeof cmd, "addr2line -f -e '%s' 0x%llx", file, addr);
    return it_run_line(cmd, fn, cap);
}
