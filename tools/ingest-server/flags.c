/*
 * flags: feature-flag endpoints of the local ingestion server.
 *
 * Owns, under f->lock: the /flags answer queue and its default, the
 * definitions (body, ETag, secret key, delay) and their answer queue, and
 * the records of both endpoints. Body decoding and JSON checks of a request
 * run outside the lock; picking the answer, recording and copying the answer
 * into the response run inside it (no I/O). Delays and hangs are carried out
 * by httpd on the connection's own thread after the handler returns, so they
 * never hold the lock or block other connections. Scripted answers (their
 * parsing, rendering and how one is laid over a fallback) are in answers.c.
 */
#include "flags.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "answers.h"
#include "gunzip.h"
#include "sbuf.h"
#include "scan.h"

#define ETAG_MAX 200                    /* fits extra_headers beside the scripted headers */
#define DECODED_MAX ((size_t)64 << 20)  /* a gzip'ed /flags request body, decoded */

/* The compliance harness's default /flags answer (the v1 shape). */
static const char BUILTIN_FLAGS[] =
    "{\"featureFlags\":{},\"featureFlagPayloads\":{},\"errorsWhileComputingFlags\":false}";
static const char BUILTIN_DEFS[] = "{\"flags\":[],\"group_type_mapping\":{},\"cohorts\":{}}";

typedef struct frecord {
    unsigned long long seq;
    long long time_ms;     /* arrival, ms since the epoch */
    char *method, *path, *query, *headers_json;
    char *body;            /* decoded, NUL-terminated; NULL: out of memory */
    size_t body_len;
    int body_json;
    int status, delay_ms, hang;
} frecord_t;

typedef struct rlog {
    frecord_t *v;
    size_t n, cap;
} rlog_t;

struct ph_flagsd {
    pthread_mutex_t lock;
    unsigned long long seq;
    ph_answers_t flags;    /* POST /flags: consumed first */
    ph_answer_t dflt;      /* then this (when has_dflt), else 200 BUILTIN_FLAGS */
    int has_dflt;
    ph_answers_t defs;     /* GET /flags/definitions: consumed before the normal answer */
    char *defs_body;       /* NULL: BUILTIN_DEFS */
    size_t defs_body_len;
    int defs_body_json;
    char *etag;            /* NULL: automatic (auto_etag); "": none */
    char auto_etag[32];    /* W/"<FNV-1a 64 of the body>" */
    char *secret;          /* NULL: no Authorization check */
    int defs_delay_ms;
    rlog_t flags_log, defs_log;
};

/* ------------------------------------------------------------ lifecycle */

static void rlog_clear(rlog_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        frecord_t *r = &l->v[i];
        free(r->method);
        free(r->path);
        free(r->query);
        free(r->headers_json);
        free(r->body);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static void set_auto_etag(ph_flagsd_t *f)
{
    const char *b = f->defs_body ? f->defs_body : BUILTIN_DEFS;
    size_t n = f->defs_body ? f->defs_body_len : strlen(BUILTIN_DEFS);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)b[i]) * 0x100000001b3ULL;
    snprintf(f->auto_etag, sizeof f->auto_etag, "W/\"%016llx\"", (unsigned long long)h);
}

/* Under f->lock (or before f is shared). */
static void clear_all(ph_flagsd_t *f)
{
    ph_answers_clear(&f->flags);
    ph_answer_free(&f->dflt);
    f->has_dflt = 0;
    ph_answers_clear(&f->defs);
    free(f->defs_body);
    free(f->etag);
    free(f->secret);
    f->defs_body = f->etag = f->secret = NULL;
    f->defs_body_len = 0;
    f->defs_body_json = 0;
    f->defs_delay_ms = 0;
    set_auto_etag(f);
    rlog_clear(&f->flags_log);
    rlog_clear(&f->defs_log);
}

ph_flagsd_t *ph_flagsd_new(void)
{
    ph_flagsd_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->lock, NULL);
    clear_all(f);
    return f;
}

void ph_flagsd_free(ph_flagsd_t *f)
{
    if (!f)
        return;
    clear_all(f);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void ph_flagsd_reset(ph_flagsd_t *f)
{
    pthread_mutex_lock(&f->lock);
    clear_all(f);
    pthread_mutex_unlock(&f->lock);
}

/* ------------------------------------------------------------ control input */

/* ------------------------------------------------------------ rendering */

static void render_flags_state(const ph_flagsd_t *f, ph_sbuf_t *b)
{
    ph_sbuf_str(b, "{\"responses\":");
    ph_answers_render(b, &f->flags);
    ph_sbuf_str(b, ",\"default\":");
    if (f->has_dflt)
        ph_answer_render(b, &f->dflt);
    else
        ph_sbuf_str(b, "null");
    ph_sbuf_add(b, "}", 1);
}

static const char *current_etag(const ph_flagsd_t *f)
{
    return f->etag ? f->etag : f->auto_etag; /* "" : none */
}

static void render_defs_state(const ph_flagsd_t *f, ph_sbuf_t *b)
{
    ph_sbuf_str(b, "{\"body\":");
    if (f->defs_body)
        ph_body_render(b, f->defs_body, f->defs_body_len, f->defs_body_json);
    else
        ph_sbuf_str(b, BUILTIN_DEFS);
    const char *etag = current_etag(f);
    ph_sbuf_str(b, ",\"etag\":");
    if (etag[0])
        ph_sbuf_json_str(b, etag, strlen(etag));
    else
        ph_sbuf_str(b, "null");
    ph_sbuf_str(b, ",\"secret_key\":");
    if (f->secret)
        ph_sbuf_json_str(b, f->secret, strlen(f->secret));
    else
        ph_sbuf_str(b, "null");
    ph_sbuf_str(b, ",\"delay_ms\":");
    ph_sbuf_fmt_u64(b, (unsigned long long)f->defs_delay_ms);
    ph_sbuf_str(b, ",\"responses\":");
    ph_answers_render(b, &f->defs);
    ph_sbuf_add(b, "}", 1);
}

static void render_log(const rlog_t *l, ph_sbuf_t *b)
{
    ph_sbuf_str(b, "{\"requests\":[");
    for (size_t i = 0; i < l->n; i++) {
        const frecord_t *r = &l->v[i];
        char num[64];
        if (i)
            ph_sbuf_add(b, ",", 1);
        snprintf(num, sizeof num, "{\"seq\":%llu,\"time_ms\":%lld", r->seq, r->time_ms);
        ph_sbuf_str(b, num);
        ph_sbuf_str(b, ",\"method\":");
        ph_sbuf_json_str(b, r->method, strlen(r->method));
        ph_sbuf_str(b, ",\"path\":");
        ph_sbuf_json_str(b, r->path, strlen(r->path));
        ph_sbuf_str(b, ",\"query\":");
        ph_sbuf_json_str(b, r->query, strlen(r->query));
        ph_sbuf_str(b, ",\"headers\":");
        ph_sbuf_str(b, r->headers_json);
        ph_sbuf_str(b, ",\"body\":");
        if (r->body && r->body_json) {
            ph_sbuf_add(b, r->body, r->body_len);
        } else {
            ph_sbuf_str(b, "null,\"body_text\":");
            if (r->body)
                ph_sbuf_json_str(b, r->body, r->body_len > 65536 ? 65536 : r->body_len);
            else
                ph_sbuf_str(b, "null");
        }
        snprintf(num, sizeof num, ",\"status\":%d,\"delay_ms\":%d", r->status, r->delay_ms);
        ph_sbuf_str(b, num);
        ph_sbuf_str(b, r->hang ? ",\"hang\":true}" : ",\"hang\":false}");
    }
    ph_sbuf_str(b, "]}");
}

/* ------------------------------------------------------------ records */

/* Request headers as a JSON object {lower-case name: value} (repeated
 * headers joined with ", "); shared with ingest.c's records. */
char *ph_ingest_headers_json(const ph_http_request_t *req)
{
    ph_sbuf_t b = {0};
    ph_sbuf_add(&b, "{", 1);
    for (size_t i = 0; i < req->header_count; i++) {
        const char *name = req->headers[i].name;
        size_t j;
        for (j = 0; j < i && strcasecmp(req->headers[j].name, name) != 0; j++)
            ;
        if (j < i)
            continue; /* joined into the first occurrence */
        if (i)
            ph_sbuf_add(&b, ",", 1);
        char lower[256];
        size_t n = strlen(name);
        if (n >= sizeof lower)
            n = sizeof lower - 1;
        for (size_t k = 0; k < n; k++)
            lower[k] = (char)tolower((unsigned char)name[k]);
        ph_sbuf_json_str(&b, lower, n);
        ph_sbuf_add(&b, ":", 1);
        ph_sbuf_t v = {0};
        for (size_t k = i; k < req->header_count; k++) {
            if (strcasecmp(req->headers[k].name, name) != 0)
                continue;
            if (v.len)
                ph_sbuf_add(&v, ", ", 2);
            ph_sbuf_str(&v, req->headers[k].value);
        }
        ph_sbuf_json_str(&b, v.p ? v.p : "", v.len);
        free(ph_sbuf_take(&v, NULL));
    }
    ph_sbuf_add(&b, "}", 1);
    return ph_sbuf_take(&b, NULL);
}

/* Everything about the request itself, built outside the lock. */
static int record_prepare(const ph_http_request_t *req, frecord_t *r)
{
    struct timespec ts;
    memset(r, 0, sizeof *r);
    clock_gettime(CLOCK_REALTIME, &ts);
    r->time_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    r->method = strdup(req->method);
    r->path = strdup(req->path);
    r->query = strdup(req->query);
    r->headers_json = ph_ingest_headers_json(req);
    const char *ce = ph_http_header(req, "Content-Encoding");
    if (ce && strcasestr(ce, "gzip") &&
        ph_gunzip(req->body, req->body_len, DECODED_MAX, &r->body, &r->body_len) != PH_GUNZIP_OK)
        r->body = NULL; /* not gzip after all: keep the raw bytes */
    if (!r->body && (r->body = malloc(req->body_len + 1)) != NULL) {
        memcpy(r->body, req->body, req->body_len);
        r->body[req->body_len] = '\0';
        r->body_len = req->body_len;
    }
    if (r->body && r->body_len) {
        ph_scan_opts_t so = {0, NULL, 0, 0};
        ph_scan_t sc;
        ph_scan_body(r->body, r->body_len, &so, &sc);
        r->body_json = sc.json_ok;
        ph_scan_free(&sc);
    }
    if (!r->method || !r->path || !r->query || !r->headers_json) {
        free(r->method);
        free(r->path);
        free(r->query);
        free(r->headers_json);
        free(r->body);
        return -1;
    }
    return 0;
}

/* Under f->lock; takes r's allocations (also on failure). */
static void record_push(ph_flagsd_t *f, rlog_t *l, frecord_t *r)
{
    r->seq = ++f->seq;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        frecord_t *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv) {
            free(r->method);
            free(r->path);
            free(r->query);
            free(r->headers_json);
            free(r->body);
            return;
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = *r;
}

/* ------------------------------------------------------------ answers */

static void set_error(ph_http_response_t *res, int status, const char *type, const char *code,
                      const char *detail)
{
    ph_sbuf_t b = {0};
    ph_sbuf_str(&b, "{\"type\":\"");
    ph_sbuf_str(&b, type);
    ph_sbuf_str(&b, "\",\"code\":\"");
    ph_sbuf_str(&b, code);
    ph_sbuf_str(&b, "\",\"detail\":");
    ph_sbuf_json_str(&b, detail, strlen(detail));
    ph_sbuf_add(&b, "}", 1);
    res->status = status;
    free(res->body);
    res->body = ph_sbuf_take(&b, &res->body_len);
}

static void set_body(ph_http_response_t *res, const char *body, size_t len)
{
    free(res->body);
    res->body = malloc(len + 1);
    res->body_len = res->body ? len : 0;
    if (res->body) {
        memcpy(res->body, body, len);
        res->body[len] = '\0';
    }
}

/* Appends "Name: value\r\n" lines; PH_ANSWER_HEADER_BYTES_MAX keeps them within extra_headers. */
static void append_lines(ph_http_response_t *res, const char *lines)
{
    size_t hl = strlen(res->extra_headers);
    if (hl < sizeof res->extra_headers)
        snprintf(res->extra_headers + hl, sizeof res->extra_headers - hl, "%s", lines);
}

static void add_header(ph_http_response_t *res, const char *name, const char *value)
{
    size_t hl = strlen(res->extra_headers);
    if (hl < sizeof res->extra_headers)
        snprintf(res->extra_headers + hl, sizeof res->extra_headers - hl, "%s: %s\r\n", name,
                 value);
}

/* Copies the pick and c's headers, delay and hang into res. */
static void answer(ph_http_response_t *res, ph_pick_t p, const ph_answer_t *c)
{
    res->status = p.status;
    set_body(res, p.body, p.len);
    snprintf(res->content_type, sizeof res->content_type, "%s", p.ctype);
    if (c && c->headers)
        snprintf(res->extra_headers, sizeof res->extra_headers, "%s", c->headers);
    res->delay_ms = c ? c->delay_ms : 0;
    res->hang = c ? c->hang : 0;
}

static void handle_flags(ph_flagsd_t *f, const ph_http_request_t *req, ph_http_response_t *res)
{
    frecord_t r;
    int have = record_prepare(req, &r) == 0;
    char fault[2][64];
    pthread_mutex_lock(&f->lock);
    if (strcmp(req->method, "POST") != 0) {
        set_error(res, 405, "validation_error", "method_not_allowed", "/flags takes POST only");
    } else {
        /* The built-in answer, the default laid over it, the next scripted answer over that. */
        ph_pick_t p = {200, BUILTIN_FLAGS, sizeof BUILTIN_FLAGS - 1, "application/json"};
        const ph_answer_t *c = f->has_dflt ? &f->dflt : NULL;
        if (c)
            p = ph_answer_pick(c, p, BUILTIN_FLAGS, fault[0], sizeof fault[0]);
        if (f->flags.next < f->flags.n) {
            c = &f->flags.v[f->flags.next++];
            p = ph_answer_pick(c, p, BUILTIN_FLAGS, fault[1], sizeof fault[1]);
        }
        answer(res, p, c);
    }
    if (!res->body)
        set_error(res, 500, "server_error", "out_of_memory", "answer too large");
    if (have) {
        r.status = res->hang ? 0 : res->status;
        r.delay_ms = res->delay_ms;
        r.hang = res->hang;
        record_push(f, &f->flags_log, &r);
    }
    pthread_mutex_unlock(&f->lock);
}

/* 1 when the query string has key=<non-empty value>. */
static int query_has_value(const char *query, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > kl + 1 && strncmp(p, key, kl) == 0 && p[kl] == '=')
            return 1;
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* "Bearer <key>", the scheme in any case. */
static int bearer_is(const char *auth, const char *key)
{
    if (!auth || strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] != ' ' && auth[6] != '\t'))
        return 0;
    const char *t = auth + 6;
    while (*t == ' ' || *t == '\t')
        t++;
    return strcmp(t, key) == 0;
}

/* The opaque part of an entity tag: without "W/" and the quotes. */
static void etag_core(const char *s, size_t n, const char **out, size_t *outn)
{
    if (n >= 2 && s[0] == 'W' && s[1] == '/') {
        s += 2;
        n -= 2;
    }
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    *out = s;
    *outn = n;
}

/* If-None-Match against the current tag: weak comparison (weak, strong or
 * bare forms match alike), a comma-separated list, or "*". */
static int etag_matches(const char *inm, const char *etag)
{
    if (!inm || !etag[0])
        return 0;
    const char *ec;
    size_t en;
    etag_core(etag, strlen(etag), &ec, &en);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        const char *c;
        size_t cn;
        etag_core(p, n, &c, &cn);
        if ((n == 1 && *p == '*') || (n && cn == en && memcmp(c, ec, en) == 0))
            return 1;
        p = e;
    }
    return 0;
}

/* The definitions endpoint's own rules: 400 without a token, 401 on a wrong
 * secret key, 304 when If-None-Match holds the current tag, else 200. */
static void defs_normal(const ph_flagsd_t *f, const ph_http_request_t *req,
                        ph_http_response_t *res, const char *body, size_t len, const char *etag)
{
    const char *auth = ph_http_header(req, "Authorization");
    if (!query_has_value(req->query, "token")) {
        set_error(res, 400, "validation_error", "missing_token",
                  "query parameter \"token\" (the project API key) is missing or empty: "
                  "use /flags/definitions?token=<phc_ project key>");
    } else if (f->secret && !bearer_is(auth, f->secret)) {
        set_error(res, 401, "authentication_error", "invalid_secret_key",
                  auth ? "Authorization does not carry the configured secret key "
                         "(expected \"Bearer <phs_ secret key or phx_ personal key>\")"
                       : "missing header Authorization "
                         "(expected \"Bearer <phs_ secret key or phx_ personal key>\")");
    } else if (etag_matches(ph_http_header(req, "If-None-Match"), etag)) {
        res->status = 304;
        set_body(res, "", 0);
        add_header(res, "ETag", etag);
    } else {
        res->status = 200;
        set_body(res, body, len);
        if (etag[0])
            add_header(res, "ETag", etag);
    }
}

static void handle_defs(ph_flagsd_t *f, const ph_http_request_t *req, ph_http_response_t *res)
{
    frecord_t r;
    int have = record_prepare(req, &r) == 0;
    char fault[64];
    pthread_mutex_lock(&f->lock);
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        set_error(res, 405, "validation_error", "method_not_allowed",
                  "the definitions endpoint takes GET (or HEAD) only");
    } else {
        const char *body = f->defs_body ? f->defs_body : BUILTIN_DEFS;
        size_t len = f->defs_body ? f->defs_body_len : sizeof BUILTIN_DEFS - 1;
        const char *etag = current_etag(f);
        const ph_answer_t *c = f->defs.next < f->defs.n ? &f->defs.v[f->defs.next++] : NULL;
        if (c && (c->status || c->body)) {
            ph_pick_t fb = {200, body, len, "application/json"};
            ph_pick_t p = ph_answer_pick(c, fb, body, fault, sizeof fault);
            answer(res, p, c);
            if (p.body == body && etag[0]) /* the definitions themselves: with their tag */
                add_header(res, "ETag", etag);
        } else {
            /* No script, or an entry that only delays, hangs or adds headers. */
            defs_normal(f, req, res, body, len, etag);
            if (c && c->headers)
                append_lines(res, c->headers);
            res->delay_ms = c ? c->delay_ms : f->defs_delay_ms;
            res->hang = c ? c->hang : 0;
        }
    }
    if (!res->body)
        set_error(res, 500, "server_error", "out_of_memory", "answer too large");
    if (have) {
        r.status = res->hang ? 0 : res->status;
        r.delay_ms = res->delay_ms;
        r.hang = res->hang;
        record_push(f, &f->defs_log, &r);
    }
    pthread_mutex_unlock(&f->lock);
}

/* ------------------------------------------------------------ control API */

/* POST /_control/flags {"responses": [...], "default": {...}}: each key given
 * replaces that setting ("default": null restores the built-in answer). */
static void control_flags(ph_flagsd_t *f, const ph_http_request_t *req, ph_http_response_t *res)
{
    static const char *const keys[] = {"responses", "default", NULL};
    char err[256] = "";
    ph_answers_t q = {0};
    ph_answer_t d = {0};
    int has_resp = 0, has_dflt = 0, dflt_null = 0;
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(root)) {
        snprintf(err, sizeof err,
                 "body must be a JSON object like {\"responses\": [{\"status\": 200, \"body\": "
                 "{...}}], \"default\": {...}}");
    } else if (ph_known_keys(root, keys, "\"responses\", \"default\"", err, sizeof err) == 0) {
        const cJSON *resp = cJSON_GetObjectItemCaseSensitive(root, "responses");
        const cJSON *dj = cJSON_GetObjectItemCaseSensitive(root, "default");
        has_resp = resp != NULL;
        has_dflt = dj != NULL;
        dflt_null = cJSON_IsNull(dj);
        if (ph_answers_take(resp, &q, err, sizeof err) == 0 && has_dflt && !dflt_null)
            (void)ph_answer_take(dj, &d, err, sizeof err, "\"default\": ");
    }
    cJSON_Delete(root);
    if (err[0]) {
        ph_answers_clear(&q);
        ph_answer_free(&d);
        set_error(res, 400, "validation_error", "invalid_flags_script", err);
        return;
    }
    ph_sbuf_t b = {0};
    pthread_mutex_lock(&f->lock);
    if (has_resp) {
        ph_answers_clear(&f->flags);
        f->flags = q;
    }
    if (has_dflt) {
        ph_answer_free(&f->dflt);
        f->dflt = d;
        f->has_dflt = !dflt_null;
    }
    render_flags_state(f, &b);
    pthread_mutex_unlock(&f->lock);
    res->body = ph_sbuf_take(&b, &res->body_len);
}

/* A short printable string (no control characters), for a header value. */
static int header_safe(const cJSON *v, size_t max)
{
    if (!cJSON_IsString(v) || strlen(v->valuestring) > max)
        return 0;
    for (const unsigned char *p = (const unsigned char *)v->valuestring; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* POST /_control/flags/definitions {"body", "etag", "secret_key",
 * "responses", "delay_ms"}: each key given replaces that setting; null
 * restores its initial state. */
static void control_defs(ph_flagsd_t *f, const ph_http_request_t *req, ph_http_response_t *res)
{
    static const char *const keys[] = {"body", "etag", "secret_key", "responses", "delay_ms", NULL};
    char err[256] = "";
    ph_answers_t q = {0};
    char *body = NULL, *etag = NULL, *secret = NULL;
    size_t body_len = 0;
    int body_json = 0, delay = 0;
    const cJSON *jb = NULL, *je = NULL, *js = NULL, *jr = NULL, *jd = NULL;
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(root)) {
        snprintf(err, sizeof err,
                 "body must be a JSON object like {\"body\": {\"flags\": [...]}, \"etag\": "
                 "\"W/\\\"abc\\\"\", \"secret_key\": \"phs_...\", \"responses\": [...]}");
    } else if (ph_known_keys(root, keys,
                          "\"body\", \"etag\", \"secret_key\", \"responses\", \"delay_ms\"", err,
                          sizeof err) == 0) {
        jb = cJSON_GetObjectItemCaseSensitive(root, "body");
        je = cJSON_GetObjectItemCaseSensitive(root, "etag");
        js = cJSON_GetObjectItemCaseSensitive(root, "secret_key");
        jr = cJSON_GetObjectItemCaseSensitive(root, "responses");
        jd = cJSON_GetObjectItemCaseSensitive(root, "delay_ms");
        if (je && !cJSON_IsNull(je) && !header_safe(je, ETAG_MAX))
            snprintf(err, sizeof err,
                     "\"etag\" must be a string of at most %d printable bytes (\"\" for no ETag), "
                     "or null for an automatic one",
                     ETAG_MAX);
        else if (js && !cJSON_IsNull(js) && !header_safe(js, 1024))
            snprintf(err, sizeof err,
                     "\"secret_key\" must be a string of at most 1024 printable bytes, or null "
                     "(or \"\") for no check");
        else if (ph_delay_take(jd, &delay, err, sizeof err, "") == 0 &&
                 ph_answers_take(jr, &q, err, sizeof err) == 0 &&
                 ph_body_take(jb, &body, &body_len, &body_json, err, sizeof err, "") == 0) {
            if (cJSON_IsString(je) && !(etag = strdup(je->valuestring)))
                snprintf(err, sizeof err, "out of memory");
            if (cJSON_IsString(js) && js->valuestring[0] && !(secret = strdup(js->valuestring)))
                snprintf(err, sizeof err, "out of memory");
        }
    }
    int has_b = jb != NULL, has_e = je != NULL, has_s = js != NULL, has_r = jr != NULL,
        has_d = jd != NULL;
    cJSON_Delete(root);
    if (err[0]) {
        ph_answers_clear(&q);
        free(body);
        free(etag);
        free(secret);
        set_error(res, 400, "validation_error", "invalid_definitions", err);
        return;
    }
    ph_sbuf_t b = {0};
    pthread_mutex_lock(&f->lock);
    if (has_b) {
        free(f->defs_body);
        f->defs_body = body;
        f->defs_body_len = body_len;
        f->defs_body_json = body_json;
        set_auto_etag(f);
    }
    if (has_e) {
        free(f->etag);
        f->etag = etag;
    }
    if (has_s) {
        free(f->secret);
        f->secret = secret;
    }
    if (has_r) {
        ph_answers_clear(&f->defs);
        f->defs = q;
    }
    if (has_d)
        f->defs_delay_ms = delay;
    render_defs_state(f, &b);
    pthread_mutex_unlock(&f->lock);
    res->body = ph_sbuf_take(&b, &res->body_len);
}

static void render(ph_flagsd_t *f, ph_http_response_t *res,
                   void (*fn)(const ph_flagsd_t *, const rlog_t *, ph_sbuf_t *), const rlog_t *l)
{
    ph_sbuf_t b = {0};
    pthread_mutex_lock(&f->lock);
    fn(f, l, &b);
    pthread_mutex_unlock(&f->lock);
    res->body = ph_sbuf_take(&b, &res->body_len);
}

static void r_flags_state(const ph_flagsd_t *f, const rlog_t *l, ph_sbuf_t *b)
{
    (void)l;
    render_flags_state(f, b);
}

static void r_defs_state(const ph_flagsd_t *f, const rlog_t *l, ph_sbuf_t *b)
{
    (void)l;
    render_defs_state(f, b);
}

static void r_log(const ph_flagsd_t *f, const rlog_t *l, ph_sbuf_t *b)
{
    (void)f;
    render_log(l, b);
}

int ph_flagsd_handle(ph_flagsd_t *f, const ph_http_request_t *req, ph_http_response_t *res)
{
    static const char *const defs_paths[] = {"/flags/definitions", "/flags/definitions/",
                                             "/api/feature_flag/local_evaluation",
                                             "/api/feature_flag/local_evaluation/"};
    const char *p = req->path;
    int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    int post = strcmp(req->method, "POST") == 0;
    if (strcmp(p, "/flags") == 0 || strcmp(p, "/flags/") == 0) {
        handle_flags(f, req, res);
        return 1;
    }
    for (size_t i = 0; i < sizeof defs_paths / sizeof *defs_paths; i++) {
        if (strcmp(p, defs_paths[i]) == 0) {
            handle_defs(f, req, res);
            return 1;
        }
    }
    if (strcmp(p, "/_control/flags") == 0 && post)
        control_flags(f, req, res);
    else if (strcmp(p, "/_control/flags") == 0 && get)
        render(f, res, r_flags_state, NULL);
    else if (strcmp(p, "/_control/flags/requests") == 0 && get)
        render(f, res, r_log, &f->flags_log);
    else if (strcmp(p, "/_control/flags/definitions") == 0 && post)
        control_defs(f, req, res);
    else if (strcmp(p, "/_control/flags/definitions") == 0 && get)
        render(f, res, r_defs_state, NULL);
    else if (strcmp(p, "/_control/flags/definitions/requests") == 0 && get)
        render(f, res, r_log, &f->defs_log);
    else
        return 0;
    if (!res->body)
        set_error(res, 500, "server_error", "out_of_memory", "response too large");
    return 1;
}
