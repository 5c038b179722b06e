/*
 * ingest: request handling for the local ingestion server.
 *
 * Owns the records (requests, accepted events as spans of the stored
 * bodies), the counters, the seen-uuid set and the fault script, all under
 * d->lock. Decoding and validation run outside the lock; only bookkeeping
 * and control-API rendering (no I/O) run inside it.
 */
#include "ingest.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "flags.h"
#include "gunzip.h"
#include "sbuf.h"
#include "scan.h"
#include "uuidset.h"

#define SCRIPT_MAX 10000
#define VERDICTS_MAX 10000
#define STEP_BODY_MAX ((size_t)1 << 20)

enum { PROTO_V0, PROTO_V1, PROTO_N };
static const char *const proto_names[PROTO_N] = {"v0", "v1"};
enum { ENC_NONE, ENC_GZIP, ENC_DEFLATE, ENC_ZSTD, ENC_BR, ENC_UNSUPPORTED, ENC_N };
static const char *const enc_names[ENC_N] = {"none", "gzip", "deflate", "zstd", "br",
                                             "unsupported"};
/* v1 per-event results answered; RES_ABSENT: left out of the map. */
enum { RES_OK, RES_WARNING, RES_DROP, RES_RETRY, RES_OTHER, RES_ABSENT, RES_N };
static const char *const res_names[RES_N] = {"ok", "warning", "drop", "retry", "other", "absent"};

/* One per-event verdict of a script step (capture v1 only). */
typedef struct verdict {
    int has_index, has_uuid, has_event;  /* match criteria (all must hold) */
    size_t index;
    unsigned char uuid[16];
    char event[256];
    size_t event_len;
    char result[32];     /* "ok", "warning", "drop", "retry" or anything else */
    char details[128];
    int has_details;
    int omit;            /* leave the uuid out of the results map */
} verdict_t;

typedef struct step {
    int status;          /* 0: behave normally */
    int reset;
    int delay_ms;
    char retry_after[64];
    verdict_t *verdicts; /* owned */
    size_t nverdicts;
    char *body;          /* owned; raw response body override, NULL: none */
    size_t body_len;
    char content_type[64];
} step_t;

typedef struct record {
    unsigned long long seq;
    char *method, *path, *query, *headers_json, *error;
    size_t wire_bytes, body_bytes;
    int gzip, status, accepted, reset, delay_ms;
    int proto, enc;
    char *body;          /* decoded body, NUL-terminated; NULL if undecodable */
    size_t body_len;
    int body_json;       /* body is valid JSON */
    char *results;       /* v1: the results map answered (JSON), or NULL */
} record_t;

typedef struct evref {
    size_t req, off, len;
} evref_t;

typedef struct counters {
    unsigned long long requests, accepted_requests, events, duplicates;
    unsigned long long wire_bytes, body_bytes, gzip_requests, resets;
    unsigned long long proto[PROTO_N], enc[ENC_N], results[RES_N];
    unsigned long long status[1000];
} counters_t;

struct ph_ingestd {
    ph_ingestd_config_t cfg; /* api_keys points at keys */
    char **keys;
    pthread_mutex_t lock;
    size_t max_body, max_decoded, max_event, max_v1_body, max_v1_decoded;
    step_t *script;
    size_t nsteps, next_step;
    record_t *reqs;
    size_t nreqs, capreqs;
    evref_t *events;
    size_t nevents, capevents;
    counters_t c;
    ph_uuidset_t uuids;
    unsigned long long seq;
    ph_flagsd_t *flags; /* the feature-flag endpoints (flags.c) */
};

/* ------------------------------------------------------------ lifecycle */

static void step_free(step_t *st)
{
    free(st->verdicts);
    free(st->body);
    st->verdicts = NULL;
    st->body = NULL;
    st->nverdicts = st->body_len = 0;
}

/* Deep copy; on allocation failure the copy has no verdicts/body. */
static void step_copy(step_t *dst, const step_t *src)
{
    *dst = *src;
    dst->verdicts = NULL;
    dst->body = NULL;
    if (src->nverdicts) {
        dst->verdicts = malloc(src->nverdicts * sizeof *dst->verdicts);
        if (dst->verdicts)
            memcpy(dst->verdicts, src->verdicts, src->nverdicts * sizeof *dst->verdicts);
        else
            dst->nverdicts = 0;
    }
    if (src->body) {
        dst->body = malloc(src->body_len + 1);
        if (dst->body)
            memcpy(dst->body, src->body, src->body_len + 1);
        else
            dst->body_len = 0;
    }
}

static void free_script(step_t *steps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        step_free(&steps[i]);
    free(steps);
}

static void clear_records(ph_ingestd_t *d)
{
    for (size_t i = 0; i < d->nreqs; i++) {
        record_t *r = &d->reqs[i];
        free(r->method);
        free(r->path);
        free(r->query);
        free(r->headers_json);
        free(r->error);
        free(r->body);
        free(r->results);
    }
    free(d->reqs);
    free(d->events);
    d->reqs = NULL;
    d->events = NULL;
    d->nreqs = d->capreqs = d->nevents = d->capevents = 0;
    memset(&d->c, 0, sizeof d->c);
    ph_uuidset_clear(&d->uuids);
    free_script(d->script, d->nsteps);
    d->script = NULL;
    d->nsteps = d->next_step = 0;
    d->max_body = d->cfg.max_body_bytes;
    d->max_decoded = d->cfg.max_decoded_bytes;
    d->max_event = d->cfg.max_event_bytes;
    d->max_v1_body = d->cfg.max_v1_body_bytes;
    d->max_v1_decoded = d->cfg.max_v1_decoded_bytes;
}

ph_ingestd_t *ph_ingestd_new(const ph_ingestd_config_t *cfg)
{
    ph_ingestd_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->cfg = *cfg;
    if (!d->cfg.max_body_bytes)
        d->cfg.max_body_bytes = PH_INGEST_MAX_BODY_BYTES;
    if (!d->cfg.max_decoded_bytes)
        d->cfg.max_decoded_bytes = PH_INGEST_MAX_DECODED_BYTES;
    if (!d->cfg.max_event_bytes)
        d->cfg.max_event_bytes = PH_INGEST_MAX_EVENT_BYTES;
    if (!d->cfg.max_v1_body_bytes)
        d->cfg.max_v1_body_bytes = PH_INGEST_MAX_V1_BODY_BYTES;
    if (!d->cfg.max_v1_decoded_bytes)
        d->cfg.max_v1_decoded_bytes = PH_INGEST_MAX_V1_DECODED_BYTES;
    if (cfg->n_api_keys) {
        d->keys = calloc(cfg->n_api_keys, sizeof *d->keys);
        if (!d->keys) {
            free(d);
            return NULL;
        }
        for (size_t i = 0; i < cfg->n_api_keys; i++) {
            d->keys[i] = strdup(cfg->api_keys[i]);
            if (!d->keys[i]) {
                d->cfg.n_api_keys = i;
                d->cfg.api_keys = NULL;
                ph_ingestd_free(d);
                return NULL;
            }
        }
    }
    d->cfg.api_keys = (const char *const *)d->keys;
    pthread_mutex_init(&d->lock, NULL);
    clear_records(d);
    if (!(d->flags = ph_flagsd_new())) {
        ph_ingestd_free(d);
        return NULL;
    }
    return d;
}

void ph_ingestd_free(ph_ingestd_t *d)
{
    if (!d)
        return;
    clear_records(d);
    ph_flagsd_free(d->flags);
    for (size_t i = 0; i < d->cfg.n_api_keys; i++)
        free(d->keys[i]);
    free(d->keys);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* ------------------------------------------------------------ helpers */

static int query_has(const char *query, const char *kv)
{
    size_t n = strlen(kv);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len == n && strncasecmp(p, kv, n) == 0)
            return 1;
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* 0: not an ingest path; 1 + PROTO_V0 or 1 + PROTO_V1. */
static int ingest_kind(const char *path)
{
    static const char *const v0[] = {"/batch",   "/batch/",  "/capture",       "/capture/",
                                     "/e",       "/e/",      "/i/v0/e",        "/i/v0/e/",
                                     "/i/v0/ai/batch", "/i/v0/ai/batch/"};
    static const char *const v1[] = {"/i/v1/analytics/events", "/i/v1/analytics/events/",
                                     "/i/v1/ai/events", "/i/v1/ai/events/"};
    for (size_t i = 0; i < sizeof v0 / sizeof *v0; i++)
        if (strcmp(path, v0[i]) == 0)
            return 1 + PROTO_V0;
    for (size_t i = 0; i < sizeof v1 / sizeof *v1; i++)
        if (strcmp(path, v1[i]) == 0)
            return 1 + PROTO_V1;
    return 0;
}


#define HDR_ERRORS_MAX 8

/* errors: extra messages listed as "errors": [...] (header rules), may be NULL. */
static void set_json_error2(ph_http_response_t *res, int status, const char *code,
                            const char *detail, const char *const *errors, size_t nerrors)
{
    ph_sbuf_t b = {0};
    ph_sbuf_str(&b, "{\"type\":\"validation_error\",\"code\":\"");
    ph_sbuf_str(&b, code);
    ph_sbuf_str(&b, "\",\"detail\":");
    ph_sbuf_json_str(&b, detail, strlen(detail));
    if (nerrors) {
        ph_sbuf_str(&b, ",\"errors\":[");
        for (size_t i = 0; i < nerrors; i++) {
            if (i)
                ph_sbuf_add(&b, ",", 1);
            ph_sbuf_json_str(&b, errors[i], strlen(errors[i]));
        }
        ph_sbuf_add(&b, "]", 1);
    }
    ph_sbuf_str(&b, "}");
    res->status = status;
    free(res->body);
    res->body = ph_sbuf_take(&b, &res->body_len);
}

static void set_json_error(ph_http_response_t *res, int status, const char *code, const char *detail)
{
    set_json_error2(res, status, code, detail, NULL, 0);
}

static const char *error_code(int status)
{
    switch (status) {
    case 400: return "invalid_payload";
    case 401: return "invalid_api_key";
    case 413: return "payload_too_large";
    case 415: return "unsupported_media_type";
    default: return "error";
    }
}

/* ------------------------------------------------------------ ingest */

typedef struct outcome {
    int status;           /* from validation */
    char error[768];
    const char *code;     /* error code; NULL: error_code(status) */
    const char *hdr_err[HDR_ERRORS_MAX]; /* v1 header rule violations */
    size_t nhdr_err;
    int proto, enc;
    int gzip;
    char *decoded;        /* owned when != NULL and decoded_owned */
    int decoded_owned;
    size_t decoded_len;
    ph_scan_t scan;
} outcome_t;

static void decode_and_validate(ph_ingestd_t *d, const ph_http_request_t *req, size_t max_body,
                                size_t max_decoded, size_t max_event, outcome_t *o)
{
    const char *ce = ph_http_header(req, "Content-Encoding");
    o->gzip = (ce && strcasestr(ce, "gzip")) || query_has(req->query, "compression=gzip") ||
              (req->body_len >= 2 && (unsigned char)req->body[0] == 0x1f &&
               (unsigned char)req->body[1] == 0x8b);
    o->enc = o->gzip ? ENC_GZIP : ENC_NONE;
    if (req->body_len > max_body) {
        o->status = 413;
        snprintf(o->error, sizeof o->error, "request body of %zu bytes exceeds %zu", req->body_len,
                 max_body);
        return;
    }
    if (o->gzip) {
        int r = ph_gunzip(req->body, req->body_len, max_decoded, &o->decoded, &o->decoded_len);
        if (r != PH_GUNZIP_OK) {
            o->status = r == PH_GUNZIP_TOO_LARGE ? 413 : r == PH_GUNZIP_NOMEM ? 500 : 400;
            snprintf(o->error, sizeof o->error, "%s",
                     r == PH_GUNZIP_TOO_LARGE ? "decompressed body too large"
                     : r == PH_GUNZIP_NOMEM   ? "out of memory"
                                              : "invalid gzip body");
            return;
        }
        o->decoded_owned = 1;
    } else {
        o->decoded = (char *)req->body;
        o->decoded_len = req->body_len;
        if (o->decoded_len > max_decoded) {
            o->status = 413;
            snprintf(o->error, sizeof o->error, "body too large");
            return;
        }
    }
    ph_scan_opts_t so = {max_event, d->cfg.api_keys, d->cfg.n_api_keys, 0};
    ph_scan_body(o->decoded, o->decoded_len, &so, &o->scan);
    o->status = o->scan.status;
    snprintf(o->error, sizeof o->error, "%s", o->scan.error);
}

/* ------------------------------------------------------------ capture v1 */

static void hdr_error(outcome_t *o, const char *msg)
{
    if (o->nhdr_err < HDR_ERRORS_MAX)
        o->hdr_err[o->nhdr_err++] = msg;
}

static int positive_int(const char *v)
{
    if (!*v || *v == '0' || strlen(v) > 9)
        return 0;
    for (; *v; v++)
        if (*v < '0' || *v > '9')
            return 0;
    return 1;
}

/* "name/version", both parts non-empty, no blanks. */
static int sdk_info_ok(const char *v)
{
    const char *slash = strchr(v, '/');
    if (!slash || slash == v || !slash[1] || strpbrk(v, " \t"))
        return 0;
    return 1;
}

/* application/json, optionally with parameters (e.g. "; charset=utf-8"). */
static int json_content_type(const char *ct)
{
    if (!ct || strncasecmp(ct, "application/json", 16) != 0)
        return 0;
    const char *p = ct + 16;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' || *p == ';';
}

static int v1_encoding(const char *ce)
{
    if (!ce || !ce[0] || strcasecmp(ce, "identity") == 0)
        return ENC_NONE;
    if (strcasecmp(ce, "gzip") == 0)
        return ENC_GZIP;
    if (strcasecmp(ce, "deflate") == 0)
        return ENC_DEFLATE;
    if (strcasecmp(ce, "zstd") == 0)
        return ENC_ZSTD;
    if (strcasecmp(ce, "br") == 0)
        return ENC_BR;
    return ENC_UNSUPPORTED;
}

static int token_allowed(const ph_ingestd_t *d, const char *tok)
{
    if (!d->cfg.n_api_keys)
        return 1;
    for (size_t i = 0; i < d->cfg.n_api_keys; i++)
        if (strcmp(d->cfg.api_keys[i], tok) == 0)
            return 1;
    return 0;
}

/* Capture v1: headers, token, content type and encoding, limits, body.
 * The first failing stage decides the status (README, "Capture v1"), but
 * the body is still decoded and scanned when possible so that it is
 * recorded. */
static void validate_v1(ph_ingestd_t *d, const ph_http_request_t *req, size_t max_body,
                        size_t max_decoded, size_t max_event, outcome_t *o)
{
    const char *auth = ph_http_header(req, "Authorization");
    const char *token = NULL;
    if (!auth)
        hdr_error(o, "missing header Authorization");
    else if (strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] && auth[6] != ' ' && auth[6] != '\t'))
        hdr_error(o, "invalid header Authorization: expected \"Bearer <token>\"");
    else
        for (token = auth + 6; *token == ' ' || *token == '\t'; token++)
            ;
    const char *sdk = ph_http_header(req, "PostHog-Sdk-Info");
    if (!sdk)
        hdr_error(o, "missing header PostHog-Sdk-Info");
    else if (!sdk_info_ok(sdk))
        hdr_error(o, "invalid header PostHog-Sdk-Info: expected \"<sdk name>/<version>\"");
    const char *rid = ph_http_header(req, "PostHog-Request-Id");
    unsigned char u[16];
    if (!rid)
        hdr_error(o, "missing header PostHog-Request-Id");
    else if (ph_parse_uuid(rid, strlen(rid), u) != 0)
        hdr_error(o, "invalid header PostHog-Request-Id: must be a UUID");
    const char *att = ph_http_header(req, "PostHog-Attempt");
    if (!att)
        hdr_error(o, "missing header PostHog-Attempt");
    else if (!positive_int(att))
        hdr_error(o, "invalid header PostHog-Attempt: must be a positive integer");
    const char *ts = ph_http_header(req, "PostHog-Request-Timestamp");
    if (!ts)
        hdr_error(o, "missing header PostHog-Request-Timestamp");
    else if (!ph_rfc3339_valid(ts, strlen(ts)))
        hdr_error(o, "invalid header PostHog-Request-Timestamp: must be an RFC 3339 date-time");

    const char *ce = ph_http_header(req, "Content-Encoding");
    o->enc = v1_encoding(ce);
    o->gzip = o->enc == ENC_GZIP;

    int pre = 0; /* status decided before the body */
    if (o->nhdr_err) {
        pre = 400;
        o->code = "invalid_headers";
        size_t n = 0;
        for (size_t i = 0; i < o->nhdr_err; i++)
            n += (size_t)snprintf(o->error + n, n < sizeof o->error ? sizeof o->error - n : 0,
                                  "%s%s", i ? "; " : "", o->hdr_err[i]);
    } else if (!token[0] || !token_allowed(d, token)) {
        pre = 401;
        snprintf(o->error, sizeof o->error, "%s", token[0] ? "unknown token" : "empty token");
    } else if (!json_content_type(ph_http_header(req, "Content-Type"))) {
        pre = 415;
        o->code = "unsupported_media_type";
        snprintf(o->error, sizeof o->error, "Content-Type must be application/json");
    } else if (o->enc == ENC_UNSUPPORTED) {
        pre = 415;
        o->code = "unsupported_encoding";
        snprintf(o->error, sizeof o->error,
                 "unsupported Content-Encoding (use gzip, deflate, zstd, br or none)");
    }
    o->status = pre;

    if (req->body_len > max_body) {
        if (!pre) {
            o->status = 413;
            snprintf(o->error, sizeof o->error, "request body of %zu bytes exceeds %zu",
                     req->body_len, max_body);
        }
        return;
    }
    if (o->enc == ENC_UNSUPPORTED)
        return;
    if (o->enc == ENC_NONE) {
        o->decoded = (char *)req->body;
        o->decoded_len = req->body_len;
    } else {
        int r = o->enc == ENC_GZIP ? ph_gunzip(req->body, req->body_len, max_decoded, &o->decoded,
                                               &o->decoded_len)
                : o->enc == ENC_DEFLATE
                    ? ph_zinflate(req->body, req->body_len, max_decoded, &o->decoded, &o->decoded_len)
                : o->enc == ENC_BR
                    ? ph_unbrotli(req->body, req->body_len, max_decoded, &o->decoded, &o->decoded_len)
                    : ph_unzstd(req->body, req->body_len, max_decoded, &o->decoded, &o->decoded_len);
        if (r != PH_GUNZIP_OK) {
            if (!pre) {
                o->status = r == PH_GUNZIP_TOO_LARGE ? 413 : r == PH_GUNZIP_NOMEM ? 500 : 400;
                snprintf(o->error, sizeof o->error, "%s %s body",
                         r == PH_GUNZIP_TOO_LARGE ? "decompressed too large:"
                         : r == PH_GUNZIP_NOMEM   ? "out of memory decoding"
                                                  : "invalid",
                         enc_names[o->enc]);
            }
            return;
        }
        o->decoded_owned = 1;
    }
    if (o->decoded_len > max_decoded) {
        if (!pre) {
            o->status = 413;
            snprintf(o->error, sizeof o->error, "decoded body of %zu bytes exceeds %zu",
                     o->decoded_len, max_decoded);
        }
        return;
    }
    ph_scan_opts_t so = {max_event, NULL, 0, 1};
    ph_scan_body(o->decoded, o->decoded_len, &so, &o->scan);
    if (!pre) {
        o->status = o->scan.status;
        snprintf(o->error, sizeof o->error, "%s", o->scan.error);
    }
}

static int verdict_matches(const verdict_t *v, const char *body, const ph_scan_event_t *ev,
                           size_t i)
{
    if (v->has_index && v->index != i)
        return 0;
    if (v->has_uuid && (!ev->has_uuid || memcmp(v->uuid, ev->uuid, 16) != 0))
        return 0;
    if (v->has_event) {
        char buf[1024];
        const char *name = body + ev->name_off;
        size_t n = ev->name_len;
        if (ev->name_esc) {
            if (n >= sizeof buf)
                return 0;
            n = ph_json_unescape(name, n, buf, sizeof buf);
            name = buf;
        }
        if (n != v->event_len || memcmp(name, v->event, n) != 0)
            return 0;
    }
    return 1;
}

static int result_kind(const char *r)
{
    for (int k = RES_OK; k <= RES_RETRY; k++)
        if (strcmp(r, res_names[k]) == 0)
            return k;
    return RES_OTHER;
}

/* The v1 2xx answer for a valid batch: {"results": {uuid: {...}}}. Sets
 * acc[i] (when acc) to whether event i counts as accepted, rc[] to the
 * results answered, *any_retry when a "retry" is in the map. */
static char *build_results(const step_t *st, const char *body, const ph_scan_t *sc,
                           unsigned char *acc, unsigned long long rc[RES_N], int *any_retry,
                           size_t *len)
{
    ph_sbuf_t b = {0};
    ph_sbuf_str(&b, "{\"results\":{");
    int first = 1;
    for (size_t i = 0; i < sc->nevents; i++) {
        const ph_scan_event_t *ev = &sc->events[i];
        const verdict_t *v = NULL;
        for (size_t k = 0; k < st->nverdicts && !v; k++)
            if (verdict_matches(&st->verdicts[k], body, ev, i))
                v = &st->verdicts[k];
        const char *result = v ? v->result : "ok";
        int kind = result_kind(result);
        if (acc)
            acc[i] = kind != RES_DROP && kind != RES_RETRY;
        if (v && v->omit) {
            rc[RES_ABSENT]++;
            continue;
        }
        rc[kind]++;
        *any_retry |= kind == RES_RETRY;
        char u[40];
        u[0] = '"';
        ph_format_uuid(ev->uuid, u + 1);
        if (!first)
            ph_sbuf_add(&b, ",", 1);
        first = 0;
        ph_sbuf_add(&b, u, 37);
        if (!v) {
            ph_sbuf_add(&b, "\":{\"result\":\"ok\"}", 17);
            continue;
        }
        ph_sbuf_str(&b, "\":{\"result\":");
        ph_sbuf_json_str(&b, result, strlen(result));
        if (v->has_details) {
            ph_sbuf_str(&b, ",\"details\":");
            ph_sbuf_json_str(&b, v->details, strlen(v->details));
        }
        ph_sbuf_add(&b, "}", 1);
    }
    ph_sbuf_str(&b, "}}");
    return ph_sbuf_take(&b, len);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}

/* What the answer decided, for record(). */
typedef struct answer {
    int status, accepted;
    const unsigned char *acc;          /* per event: counts as accepted; NULL: all */
    char *results;                     /* v1 results map answered (moved into the record) */
    unsigned long long rc[RES_N];
} answer_t;

/* Under d->lock: counters, uuids, and (unless no_store) the records. */
static void record(ph_ingestd_t *d, const ph_http_request_t *req, unsigned long long seq,
                   const step_t *st, answer_t *a, outcome_t *o)
{
    counters_t *c = &d->c;
    int status = a->status, accepted = a->accepted;
    const unsigned char *acc = a->acc;
    c->requests++;
    c->wire_bytes += req->body_len;
    c->body_bytes += o->decoded ? o->decoded_len : 0;
    c->gzip_requests += (unsigned long long)o->gzip;
    c->proto[o->proto]++;
    c->enc[o->enc]++;
    for (int k = 0; k < RES_N; k++)
        c->results[k] += a->rc[k];
    if (st->reset)
        c->resets++;
    else if (status >= 0 && status < 1000)
        c->status[status]++;
    if (accepted) {
        c->accepted_requests++;
        for (size_t i = 0; i < o->scan.nevents; i++) {
            if (acc && !acc[i])
                continue;
            c->events++;
            if (o->scan.events[i].has_uuid && ph_uuidset_add(&d->uuids, o->scan.events[i].uuid) == 0)
                c->duplicates++;
        }
    }
    if (d->cfg.no_store)
        return;
    if (grow((void **)&d->reqs, &d->capreqs, d->nreqs + 1, sizeof *d->reqs) < 0)
        return;
    record_t *r = &d->reqs[d->nreqs];
    memset(r, 0, sizeof *r);
    r->seq = seq;
    r->method = strdup(req->method);
    r->path = strdup(req->path);
    r->query = strdup(req->query);
    r->headers_json = ph_ingest_headers_json(req);
    r->error = o->error[0] ? strdup(o->error) : NULL;
    r->wire_bytes = req->body_len;
    r->body_bytes = o->decoded ? o->decoded_len : 0;
    r->gzip = o->gzip;
    r->status = st->reset ? 0 : status;
    r->reset = st->reset;
    r->delay_ms = st->delay_ms;
    r->accepted = accepted;
    r->proto = o->proto;
    r->enc = o->enc;
    r->results = a->results; /* moved */
    a->results = NULL;
    r->body_json = o->scan.json_ok;
    if (o->decoded) {
        if (o->decoded_owned) {
            r->body = o->decoded; /* moved */
            o->decoded = NULL;
        } else {
            r->body = malloc(o->decoded_len + 1);
            if (r->body) {
                memcpy(r->body, o->decoded, o->decoded_len);
                r->body[o->decoded_len] = '\0';
            }
        }
        r->body_len = r->body ? o->decoded_len : 0;
    }
    d->nreqs++;
    if (!accepted || !r->body)
        return;
    if (grow((void **)&d->events, &d->capevents, d->nevents + o->scan.nevents, sizeof *d->events) < 0)
        return;
    for (size_t i = 0; i < o->scan.nevents; i++) {
        if (acc && !acc[i])
            continue;
        evref_t *e = &d->events[d->nevents++];
        e->req = d->nreqs - 1;
        e->off = o->scan.events[i].off;
        e->len = o->scan.events[i].len;
    }
}

static void handle_ingest(ph_ingestd_t *d, const ph_http_request_t *req, ph_http_response_t *res,
                          int proto)
{
    step_t st;
    memset(&st, 0, sizeof st);
    pthread_mutex_lock(&d->lock);
    unsigned long long seq = ++d->seq;
    if (d->next_step < d->nsteps)
        step_copy(&st, &d->script[d->next_step++]);
    int v1 = proto == PROTO_V1;
    size_t max_body = v1 ? d->max_v1_body : d->max_body;
    size_t max_decoded = v1 ? d->max_v1_decoded : d->max_decoded;
    size_t max_event = d->max_event;
    /* the AI endpoints take larger events (LLM inputs and outputs) */
    if (strstr(req->path, "/ai/") && max_event < PH_INGEST_MAX_AI_EVENT_BYTES)
        max_event = PH_INGEST_MAX_AI_EVENT_BYTES;
    pthread_mutex_unlock(&d->lock);

    outcome_t o;
    memset(&o, 0, sizeof o);
    o.proto = proto;
    if (v1)
        validate_v1(d, req, max_body, max_decoded, max_event, &o);
    else
        decode_and_validate(d, req, max_body, max_decoded, max_event, &o);

    answer_t a;
    memset(&a, 0, sizeof a);
    a.status = st.status ? st.status : o.status;
    int is2xx = a.status >= 200 && a.status < 300;
    /* A body override means the answer did not come from capture: nothing is accepted. */
    a.accepted = !st.reset && o.status == 200 && is2xx && !st.body;
    unsigned char *acc = NULL;
    int any_retry = 0;
    size_t results_len = 0;
    if (v1 && is2xx && !st.reset && !st.body && a.status != 204) {
        if (a.accepted) {
            if (st.nverdicts && o.scan.nevents)
                acc = calloc(o.scan.nevents, 1);
            if (st.nverdicts && o.scan.nevents && !acc) {
                a.accepted = 0; /* out of memory: accept nothing rather than lie */
            } else {
                a.acc = acc;
                a.results = build_results(&st, o.decoded, &o.scan, acc, a.rc, &any_retry,
                                          &results_len);
            }
        }
        if (!a.results) { /* forced 2xx on a rejected request: nothing is known */
            a.results = strdup("{\"results\":{}}");
            results_len = a.results ? strlen(a.results) : 0;
        }
    }
    /* The answer body; the record takes a.results. */
    char *answer_body = NULL;
    if (a.results) {
        answer_body = malloc(results_len + 1);
        if (answer_body)
            memcpy(answer_body, a.results, results_len + 1);
        if (d->cfg.no_store) { /* record() will not keep it */
            free(answer_body);
            answer_body = a.results;
            a.results = NULL;
        }
    }

    pthread_mutex_lock(&d->lock);
    record(d, req, seq, &st, &a, &o);
    pthread_mutex_unlock(&d->lock);
    free(a.results); /* not taken (no_store or allocation failure) */

    if (d->cfg.verbose)
        fprintf(stderr, "#%llu %s %s%s%s %s wire=%zu body=%zu %s events=%zu -> %s%d %s\n", seq,
                req->method, req->path, req->query[0] ? "?" : "", req->query, proto_names[proto],
                req->body_len, o.decoded_len, enc_names[o.enc], o.scan.nevents,
                st.reset ? "reset " : "", a.status, o.error);

    res->delay_ms = st.delay_ms;
    res->reset = st.reset;
    size_t hl = 0;
    const char *ra = st.retry_after[0] ? st.retry_after : any_retry ? "1" : NULL;
    if (ra)
        hl += (size_t)snprintf(res->extra_headers + hl, sizeof res->extra_headers - hl,
                               "Retry-After: %s\r\n", ra);
    const char *rid = v1 ? ph_http_header(req, "PostHog-Request-Id") : NULL;
    unsigned char rid_u[16];
    if (rid && ph_parse_uuid(rid, strlen(rid), rid_u) == 0 && hl < sizeof res->extra_headers)
        snprintf(res->extra_headers + hl, sizeof res->extra_headers - hl,
                 "PostHog-Request-Id: %s\r\n", rid);
    res->status = a.status;
    if (st.body) {
        free(res->body);
        res->body = st.body; /* moved */
        res->body_len = st.body_len;
        st.body = NULL;
        if (st.content_type[0])
            snprintf(res->content_type, sizeof res->content_type, "%s", st.content_type);
    } else if (is2xx) {
        if (a.status == 204)
            ph_http_set_body(res, "");
        else if (!v1)
            ph_http_set_body(res, "{\"status\": 1}");
        else if (answer_body) {
            free(res->body);
            res->body = answer_body;
            res->body_len = results_len;
            answer_body = NULL;
        } else
            set_json_error(res, 500, "out_of_memory", "results map too large");
    } else if (st.status) {
        char msg[128];
        snprintf(msg, sizeof msg, "{\"type\":\"injected_fault\",\"status\":%d}", a.status);
        ph_http_set_body(res, msg);
    } else {
        set_json_error2(res, a.status, o.code ? o.code : error_code(a.status), o.error, o.hdr_err,
                        o.nhdr_err);
    }
    free(answer_body);
    free(acc);
    step_free(&st);
    if (o.decoded_owned)
        free(o.decoded);
    ph_scan_free(&o.scan);
}

/* ------------------------------------------------------------ control API */

static void u64_field(ph_sbuf_t *b, const char *name, unsigned long long v)
{
    ph_sbuf_str(b, name);
    ph_sbuf_fmt_u64(b, v);
}

static void render_requests(ph_ingestd_t *d, ph_sbuf_t *b)
{
    ph_sbuf_str(b, "{\"stored\":");
    ph_sbuf_str(b, d->cfg.no_store ? "false" : "true");
    ph_sbuf_str(b, ",\"requests\":[");
    for (size_t i = 0; i < d->nreqs; i++) {
        const record_t *r = &d->reqs[i];
        if (i)
            ph_sbuf_add(b, ",", 1);
        u64_field(b, "{\"seq\":", r->seq);
        ph_sbuf_str(b, ",\"method\":");
        ph_sbuf_json_str(b, r->method ? r->method : "", r->method ? strlen(r->method) : 0);
        ph_sbuf_str(b, ",\"path\":");
        ph_sbuf_json_str(b, r->path ? r->path : "", r->path ? strlen(r->path) : 0);
        ph_sbuf_str(b, ",\"query\":");
        ph_sbuf_json_str(b, r->query ? r->query : "", r->query ? strlen(r->query) : 0);
        ph_sbuf_str(b, ",\"headers\":");
        ph_sbuf_str(b, r->headers_json ? r->headers_json : "{}");
        u64_field(b, ",\"wire_bytes\":", r->wire_bytes);
        u64_field(b, ",\"body_bytes\":", r->body_bytes);
        ph_sbuf_str(b, r->gzip ? ",\"gzip\":true" : ",\"gzip\":false");
        ph_sbuf_str(b, ",\"protocol\":\"");
        ph_sbuf_str(b, proto_names[r->proto]);
        ph_sbuf_str(b, "\",\"encoding\":\"");
        ph_sbuf_str(b, enc_names[r->enc]);
        ph_sbuf_add(b, "\"", 1);
        u64_field(b, ",\"status\":", (unsigned long long)r->status);
        ph_sbuf_str(b, r->accepted ? ",\"accepted\":true" : ",\"accepted\":false");
        ph_sbuf_str(b, r->reset ? ",\"reset\":true" : ",\"reset\":false");
        u64_field(b, ",\"delay_ms\":", (unsigned long long)r->delay_ms);
        ph_sbuf_str(b, ",\"error\":");
        if (r->error)
            ph_sbuf_json_str(b, r->error, strlen(r->error));
        else
            ph_sbuf_str(b, "null");
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
        ph_sbuf_str(b, ",\"results\":");
        if (r->results) /* the inner map of our own {"results":{...}} */
            ph_sbuf_add(b, r->results + 11, strlen(r->results) - 12);
        else
            ph_sbuf_str(b, "null");
        ph_sbuf_add(b, "}", 1);
    }
    ph_sbuf_str(b, "]}");
}

static void render_events(ph_ingestd_t *d, ph_sbuf_t *b)
{
    ph_sbuf_str(b, "{\"stored\":");
    ph_sbuf_str(b, d->cfg.no_store ? "false" : "true");
    ph_sbuf_str(b, ",\"events\":[");
    for (size_t i = 0; i < d->nevents; i++) {
        const evref_t *e = &d->events[i];
        if (i)
            ph_sbuf_add(b, ",", 1);
        ph_sbuf_add(b, d->reqs[e->req].body + e->off, e->len);
    }
    ph_sbuf_str(b, "]}");
}

static void render_summary(ph_ingestd_t *d, ph_sbuf_t *b)
{
    const counters_t *c = &d->c;
    u64_field(b, "{\"requests\":", c->requests);
    u64_field(b, ",\"accepted_requests\":", c->accepted_requests);
    u64_field(b, ",\"events\":", c->events);
    u64_field(b, ",\"unique_uuids\":", d->uuids.count);
    u64_field(b, ",\"duplicate_uuids\":", c->duplicates);
    u64_field(b, ",\"wire_bytes\":", c->wire_bytes);
    u64_field(b, ",\"body_bytes\":", c->body_bytes);
    u64_field(b, ",\"gzip_requests\":", c->gzip_requests);
    u64_field(b, ",\"resets\":", c->resets);
    u64_field(b, ",\"pending_faults\":", d->nsteps - d->next_step);
    ph_sbuf_str(b, ",\"status_counts\":{");
    int first = 1;
    for (int s = 0; s < 1000; s++) {
        if (!c->status[s])
            continue;
        char k[32];
        snprintf(k, sizeof k, "%s\"%d\":", first ? "" : ",", s);
        first = 0;
        u64_field(b, k, c->status[s]);
    }
    if (c->resets)
        u64_field(b, first ? "\"reset\":" : ",\"reset\":", c->resets);
    ph_sbuf_str(b, "},\"protocol_counts\":{");
    for (int k = 0; k < PROTO_N; k++) {
        char key[40];
        snprintf(key, sizeof key, "%s\"%s\":", k ? "," : "", proto_names[k]);
        u64_field(b, key, c->proto[k]);
    }
    ph_sbuf_str(b, "},\"encoding_counts\":{");
    for (int k = 0; k < ENC_N; k++) {
        char key[40];
        snprintf(key, sizeof key, "%s\"%s\":", k ? "," : "", enc_names[k]);
        u64_field(b, key, c->enc[k]);
    }
    ph_sbuf_str(b, "},\"result_counts\":{");
    for (int k = 0; k < RES_N; k++) {
        char key[40];
        snprintf(key, sizeof key, "%s\"%s\":", k ? "," : "", res_names[k]);
        u64_field(b, key, c->results[k]);
    }
    ph_sbuf_str(b, "}}");
}

static void render_faults(ph_ingestd_t *d, ph_sbuf_t *b)
{
    ph_sbuf_str(b, "{\"script\":[");
    for (size_t i = d->next_step; i < d->nsteps; i++) {
        const step_t *s = &d->script[i];
        if (i > d->next_step)
            ph_sbuf_add(b, ",", 1);
        u64_field(b, "{\"status\":", (unsigned long long)s->status);
        ph_sbuf_str(b, s->reset ? ",\"reset\":true" : ",\"reset\":false");
        u64_field(b, ",\"delay_ms\":", (unsigned long long)s->delay_ms);
        ph_sbuf_str(b, ",\"retry_after\":");
        ph_sbuf_json_str(b, s->retry_after, strlen(s->retry_after));
        ph_sbuf_str(b, ",\"body\":");
        if (s->body)
            ph_sbuf_json_str(b, s->body, s->body_len);
        else
            ph_sbuf_str(b, "null");
        ph_sbuf_str(b, ",\"content_type\":");
        ph_sbuf_json_str(b, s->content_type, strlen(s->content_type));
        ph_sbuf_str(b, ",\"verdicts\":[");
        for (size_t k = 0; k < s->nverdicts; k++) {
            const verdict_t *v = &s->verdicts[k];
            ph_sbuf_str(b, k ? ",{\"match\":{" : "{\"match\":{");
            const char *sep = "";
            if (v->has_index) {
                u64_field(b, "\"index\":", v->index);
                sep = ",";
            }
            if (v->has_uuid) {
                char u[37];
                ph_format_uuid(v->uuid, u);
                ph_sbuf_str(b, sep);
                ph_sbuf_str(b, "\"uuid\":");
                ph_sbuf_json_str(b, u, 36);
                sep = ",";
            }
            if (v->has_event) {
                ph_sbuf_str(b, sep);
                ph_sbuf_str(b, "\"event\":");
                ph_sbuf_json_str(b, v->event, v->event_len);
            }
            ph_sbuf_str(b, "},\"result\":");
            ph_sbuf_json_str(b, v->result, strlen(v->result));
            ph_sbuf_str(b, ",\"details\":");
            if (v->has_details)
                ph_sbuf_json_str(b, v->details, strlen(v->details));
            else
                ph_sbuf_str(b, "null");
            ph_sbuf_str(b, v->omit ? ",\"omit\":true}" : ",\"omit\":false}");
        }
        ph_sbuf_str(b, "]}");
    }
    u64_field(b, "],\"max_body_bytes\":", d->max_body);
    u64_field(b, ",\"max_decoded_bytes\":", d->max_decoded);
    u64_field(b, ",\"max_event_bytes\":", d->max_event);
    u64_field(b, ",\"max_v1_body_bytes\":", d->max_v1_body);
    u64_field(b, ",\"max_v1_decoded_bytes\":", d->max_v1_decoded);
    ph_sbuf_add(b, "}", 1);
}

static int parse_limit(const cJSON *root, const char *name, size_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e15)
        return -1;
    *out = (size_t)v->valuedouble;
    return 0;
}

static int parse_verdict(const cJSON *it, verdict_t *v, const char **why)
{
    memset(v, 0, sizeof *v);
    if (!cJSON_IsObject(it))
        return *why = "each verdict must be an object", -1;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(it, "match");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(it, "result");
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(it, "details");
    const cJSON *omit = cJSON_GetObjectItemCaseSensitive(it, "omit");
    const cJSON *k;
    cJSON_ArrayForEach(k, it) {
        if (strcmp(k->string, "match") && strcmp(k->string, "result") &&
            strcmp(k->string, "details") && strcmp(k->string, "omit"))
            return *why = "a verdict has only \"match\", \"result\", \"details\" and \"omit\"", -1;
    }
    if (m && !cJSON_IsNull(m)) {
        if (!cJSON_IsObject(m))
            return *why = "\"match\" must be an object", -1;
        cJSON_ArrayForEach(k, m) {
            if (strcmp(k->string, "index") == 0) {
                if (!cJSON_IsNumber(k) || k->valuedouble < 0 || k->valuedouble > 1e9 ||
                    k->valuedouble != (double)(long)k->valuedouble)
                    return *why = "\"match\".\"index\" must be a non-negative integer", -1;
                v->has_index = 1;
                v->index = (size_t)k->valuedouble;
            } else if (strcmp(k->string, "uuid") == 0) {
                if (!cJSON_IsString(k) ||
                    ph_parse_uuid(k->valuestring, strlen(k->valuestring), v->uuid) != 0)
                    return *why = "\"match\".\"uuid\" must be a UUID string", -1;
                v->has_uuid = 1;
            } else if (strcmp(k->string, "event") == 0) {
                if (!cJSON_IsString(k) || strlen(k->valuestring) >= sizeof v->event)
                    return *why = "\"match\".\"event\" must be a string of at most 255 bytes", -1;
                v->event_len = strlen(k->valuestring);
                memcpy(v->event, k->valuestring, v->event_len + 1);
                v->has_event = 1;
            } else {
                return *why = "\"match\" has only \"index\", \"uuid\" and \"event\"", -1;
            }
        }
    }
    if (res && (!cJSON_IsString(res) || !res->valuestring[0] ||
                strlen(res->valuestring) >= sizeof v->result))
        return *why = "\"result\" must be a non-empty string of at most 31 bytes", -1;
    snprintf(v->result, sizeof v->result, "%s", res ? res->valuestring : "ok");
    if (det && !cJSON_IsNull(det) &&
        (!cJSON_IsString(det) || strlen(det->valuestring) >= sizeof v->details))
        return *why = "\"details\" must be a string of at most 127 bytes, or null", -1;
    if (omit && !cJSON_IsBool(omit))
        return *why = "\"omit\" must be a boolean", -1;
    v->omit = omit && cJSON_IsTrue(omit);
    if (cJSON_IsString(det)) {
        snprintf(v->details, sizeof v->details, "%s", det->valuestring);
        v->has_details = 1;
    } else if (!det) { /* defaults, as the SDK compliance harness's mock answers */
        const char *dflt = strcmp(v->result, "retry") == 0  ? "not_persisted"
                           : strcmp(v->result, "drop") == 0 ? "invalid_event"
                                                            : NULL;
        if (dflt) {
            snprintf(v->details, sizeof v->details, "%s", dflt);
            v->has_details = 1;
        }
    }
    return 0;
}

static int parse_step(const cJSON *it, step_t *st, const char **why)
{
    memset(st, 0, sizeof *st);
    if (!cJSON_IsObject(it))
        return *why = "each script step must be an object", -1;
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(it, "status");
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(it, "retry_after");
    const cJSON *reset = cJSON_GetObjectItemCaseSensitive(it, "reset");
    const cJSON *delay = cJSON_GetObjectItemCaseSensitive(it, "delay_ms");
    if (status && (!cJSON_IsNumber(status) || status->valueint < 100 || status->valueint > 999))
        return *why = "\"status\" must be a number in 100..999", -1;
    if (delay && (!cJSON_IsNumber(delay) || delay->valuedouble < 0 || delay->valuedouble > 600000))
        return *why = "\"delay_ms\" must be a number in 0..600000", -1;
    if (reset && !cJSON_IsBool(reset))
        return *why = "\"reset\" must be a boolean", -1;
    if (ra && cJSON_IsString(ra) && strlen(ra->valuestring) < sizeof st->retry_after &&
        !strpbrk(ra->valuestring, "\r\n"))
        snprintf(st->retry_after, sizeof st->retry_after, "%s", ra->valuestring);
    else if (ra && cJSON_IsNumber(ra) && ra->valuedouble >= 0)
        snprintf(st->retry_after, sizeof st->retry_after, "%d", ra->valueint);
    else if (ra)
        return *why = "\"retry_after\" must be a short string or a number", -1;
    const cJSON *verdicts = cJSON_GetObjectItemCaseSensitive(it, "verdicts");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(it, "body");
    const cJSON *ctype = cJSON_GetObjectItemCaseSensitive(it, "content_type");
    if (verdicts && (!cJSON_IsArray(verdicts) || cJSON_GetArraySize(verdicts) > VERDICTS_MAX))
        return *why = "\"verdicts\" must be an array (at most 10000)", -1;
    if (body && !cJSON_IsNull(body) &&
        (!cJSON_IsString(body) || strlen(body->valuestring) > STEP_BODY_MAX))
        return *why = "\"body\" must be a string (at most 1 MiB), or null", -1;
    if (ctype && (!cJSON_IsString(ctype) || strlen(ctype->valuestring) >= sizeof st->content_type ||
                  strpbrk(ctype->valuestring, "\r\n")))
        return *why = "\"content_type\" must be a short string", -1;
    if (ctype)
        snprintf(st->content_type, sizeof st->content_type, "%s", ctype->valuestring);
    st->status = status ? status->valueint : 0;
    st->delay_ms = delay ? delay->valueint : 0;
    st->reset = reset && cJSON_IsTrue(reset);
    if (verdicts && cJSON_GetArraySize(verdicts) > 0) {
        st->verdicts = calloc((size_t)cJSON_GetArraySize(verdicts), sizeof *st->verdicts);
        if (!st->verdicts)
            return *why = "out of memory", -1;
        const cJSON *v;
        cJSON_ArrayForEach(v, verdicts) {
            if (parse_verdict(v, &st->verdicts[st->nverdicts], why) < 0) {
                step_free(st);
                return -1;
            }
            st->nverdicts++;
        }
    }
    if (cJSON_IsString(body)) {
        st->body_len = strlen(body->valuestring);
        st->body = malloc(st->body_len + 1);
        if (!st->body) {
            step_free(st);
            return *why = "out of memory", -1;
        }
        memcpy(st->body, body->valuestring, st->body_len + 1);
    }
    return 0;
}

/* POST /_control/faults. Replaces the script; limits given are changed. */
static void set_faults(ph_ingestd_t *d, const ph_http_request_t *req, ph_http_response_t *res)
{
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    const char *why = NULL;
    step_t *steps = NULL;
    size_t n = 0;
    size_t mb = 0, md = 0, me = 0, m1b = 0, m1d = 0;
    const cJSON *script = root ? cJSON_GetObjectItemCaseSensitive(root, "script") : NULL;
    if (!cJSON_IsObject(root))
        why = "body must be a JSON object";
    else if (script && !cJSON_IsArray(script))
        why = "\"script\" must be an array";
    else if (parse_limit(root, "max_body_bytes", &mb) < 0 ||
             parse_limit(root, "max_decoded_bytes", &md) < 0 ||
             parse_limit(root, "max_event_bytes", &me) < 0 ||
             parse_limit(root, "max_v1_body_bytes", &m1b) < 0 ||
             parse_limit(root, "max_v1_decoded_bytes", &m1d) < 0)
        why = "limits must be positive numbers";
    else if (script && (size_t)cJSON_GetArraySize(script) > SCRIPT_MAX)
        why = "script too long";
    if (!why && script && cJSON_GetArraySize(script) > 0) {
        steps = calloc((size_t)cJSON_GetArraySize(script), sizeof *steps);
        if (!steps)
            why = "out of memory";
        const cJSON *it;
        cJSON_ArrayForEach(it, script) {
            if (why || parse_step(it, &steps[n], &why) < 0)
                break;
            n++;
        }
    }
    cJSON_Delete(root);
    if (why) {
        free_script(steps, n);
        set_json_error(res, 400, "invalid_faults", why);
        return;
    }
    pthread_mutex_lock(&d->lock);
    if (script) {
        free_script(d->script, d->nsteps);
        d->script = steps;
        d->nsteps = n;
        d->next_step = 0;
        steps = NULL;
    }
    if (mb)
        d->max_body = mb;
    if (md)
        d->max_decoded = md;
    if (me)
        d->max_event = me;
    if (m1b)
        d->max_v1_body = m1b;
    if (m1d)
        d->max_v1_decoded = m1d;
    ph_sbuf_t b = {0};
    render_faults(d, &b);
    pthread_mutex_unlock(&d->lock);
    free(steps); /* NULL unless the script was left alone */
    res->body = ph_sbuf_take(&b, &res->body_len);
}

static void handle_control(ph_ingestd_t *d, const ph_http_request_t *req, ph_http_response_t *res)
{
    int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    int post = strcmp(req->method, "POST") == 0;
    const char *p = req->path;
    void (*render)(ph_ingestd_t *, ph_sbuf_t *) = NULL;

    if (strcmp(p, "/_health") == 0 || strcmp(p, "/_control/health") == 0) {
        ph_http_set_body(res, "{\"status\":\"ok\"}");
        return;
    }
    if (get && strcmp(p, "/_control/requests") == 0)
        render = render_requests;
    else if (get && strcmp(p, "/_control/events") == 0)
        render = render_events;
    else if (get && strcmp(p, "/_control/summary") == 0)
        render = render_summary;
    else if (get && strcmp(p, "/_control/faults") == 0)
        render = render_faults;
    if (render) {
        ph_sbuf_t b = {0};
        pthread_mutex_lock(&d->lock);
        render(d, &b);
        pthread_mutex_unlock(&d->lock);
        res->body = ph_sbuf_take(&b, &res->body_len);
        if (!res->body)
            set_json_error(res, 500, "out_of_memory", "response too large");
        return;
    }
    if (post && strcmp(p, "/_control/reset") == 0) {
        pthread_mutex_lock(&d->lock);
        clear_records(d);
        pthread_mutex_unlock(&d->lock);
        ph_flagsd_reset(d->flags);
        ph_http_set_body(res, "{\"status\":\"ok\"}");
        return;
    }
    if (post && strcmp(p, "/_control/faults") == 0) {
        set_faults(d, req, res);
        return;
    }
    if (post && strcmp(p, "/_control/shutdown") == 0) {
        ph_http_set_body(res, "{\"status\":\"shutting down\"}");
        if (d->cfg.on_shutdown)
            d->cfg.on_shutdown(d->cfg.shutdown_user_data);
        return;
    }
    set_json_error(res, 404, "not_found", "unknown control endpoint or method");
}

void ph_ingestd_handle(const ph_http_request_t *req, ph_http_response_t *res, void *user_data)
{
    ph_ingestd_t *d = user_data;
    if (ph_flagsd_handle(d->flags, req, res))
        return;
    int kind = ingest_kind(req->path);
    if (kind) {
        if (strcmp(req->method, "POST") != 0) {
            set_json_error(res, 405, "method_not_allowed", "use POST");
            return;
        }
        handle_ingest(d, req, res, kind - 1);
        return;
    }
    if (strncmp(req->path, "/_control/", 10) == 0 || strcmp(req->path, "/_health") == 0) {
        handle_control(d, req, res);
        return;
    }
    set_json_error(res, 404, "not_found", "unknown path");
}
