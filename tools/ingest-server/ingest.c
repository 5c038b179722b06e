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

#include "gunzip.h"
#include "sbuf.h"
#include "scan.h"
#include "uuidset.h"

#define SCRIPT_MAX 10000

typedef struct step {
    int status;          /* 0: behave normally */
    int reset;
    int delay_ms;
    char retry_after[64];
} step_t;

typedef struct record {
    unsigned long long seq;
    char *method, *path, *query, *headers_json, *error;
    size_t wire_bytes, body_bytes;
    int gzip, status, accepted, reset, delay_ms;
    char *body;          /* decoded body, NUL-terminated; NULL if undecodable */
    size_t body_len;
    int body_json;       /* body is valid JSON */
} record_t;

typedef struct evref {
    size_t req, off, len;
} evref_t;

typedef struct counters {
    unsigned long long requests, accepted_requests, events, duplicates;
    unsigned long long wire_bytes, body_bytes, gzip_requests, resets;
    unsigned long long status[1000];
} counters_t;

struct ph_ingestd {
    ph_ingestd_config_t cfg; /* api_keys points at keys */
    char **keys;
    pthread_mutex_t lock;
    size_t max_body, max_decoded, max_event;
    step_t *script;
    size_t nsteps, next_step;
    record_t *reqs;
    size_t nreqs, capreqs;
    evref_t *events;
    size_t nevents, capevents;
    counters_t c;
    ph_uuidset_t uuids;
    unsigned long long seq;
};

/* ------------------------------------------------------------ lifecycle */

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
    }
    free(d->reqs);
    free(d->events);
    d->reqs = NULL;
    d->events = NULL;
    d->nreqs = d->capreqs = d->nevents = d->capevents = 0;
    memset(&d->c, 0, sizeof d->c);
    ph_uuidset_clear(&d->uuids);
    free(d->script);
    d->script = NULL;
    d->nsteps = d->next_step = 0;
    d->max_body = d->cfg.max_body_bytes;
    d->max_decoded = d->cfg.max_decoded_bytes;
    d->max_event = d->cfg.max_event_bytes;
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
    return d;
}

void ph_ingestd_free(ph_ingestd_t *d)
{
    if (!d)
        return;
    clear_records(d);
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

static int is_ingest_path(const char *path)
{
    static const char *const paths[] = {"/batch", "/batch/", "/capture", "/capture/",
                                        "/e",     "/e/",     "/i/v0/e",  "/i/v0/e/"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (strcmp(path, paths[i]) == 0)
            return 1;
    return 0;
}

static char *headers_to_json(const ph_http_request_t *req)
{
    ph_sbuf_t b = {0};
    ph_sbuf_add(&b, "{", 1);
    int first = 1;
    for (size_t i = 0; i < req->header_count; i++) {
        const char *name = req->headers[i].name;
        size_t j;
        for (j = 0; j < i && strcasecmp(req->headers[j].name, name) != 0; j++)
            ;
        if (j < i)
            continue; /* merged into the first occurrence */
        char lower[256];
        size_t n = strlen(name);
        if (n >= sizeof lower)
            n = sizeof lower - 1;
        for (size_t k = 0; k < n; k++)
            lower[k] = (char)tolower((unsigned char)name[k]);
        if (!first)
            ph_sbuf_add(&b, ",", 1);
        first = 0;
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
        free(v.p);
    }
    ph_sbuf_add(&b, "}", 1);
    return ph_sbuf_take(&b, NULL);
}

static void set_json_error(ph_http_response_t *res, int status, const char *code, const char *detail)
{
    ph_sbuf_t b = {0};
    ph_sbuf_str(&b, "{\"type\":\"validation_error\",\"code\":\"");
    ph_sbuf_str(&b, code);
    ph_sbuf_str(&b, "\",\"detail\":");
    ph_sbuf_json_str(&b, detail, strlen(detail));
    ph_sbuf_str(&b, "}");
    res->status = status;
    free(res->body);
    res->body = ph_sbuf_take(&b, &res->body_len);
}

static const char *error_code(int status)
{
    switch (status) {
    case 400: return "invalid_payload";
    case 401: return "invalid_api_key";
    case 413: return "payload_too_large";
    default: return "error";
    }
}

/* ------------------------------------------------------------ ingest */

typedef struct outcome {
    int status;           /* from validation */
    char error[256];
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
    ph_scan_opts_t so = {max_event, d->cfg.api_keys, d->cfg.n_api_keys};
    ph_scan_body(o->decoded, o->decoded_len, &so, &o->scan);
    o->status = o->scan.status;
    snprintf(o->error, sizeof o->error, "%s", o->scan.error);
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

/* Under d->lock: counters, uuids, and (unless no_store) the records. */
static void record(ph_ingestd_t *d, const ph_http_request_t *req, unsigned long long seq,
                   const step_t *st, int status, int accepted, outcome_t *o)
{
    counters_t *c = &d->c;
    c->requests++;
    c->wire_bytes += req->body_len;
    c->body_bytes += o->decoded ? o->decoded_len : 0;
    c->gzip_requests += (unsigned long long)o->gzip;
    if (st->reset)
        c->resets++;
    else if (status >= 0 && status < 1000)
        c->status[status]++;
    if (accepted) {
        c->accepted_requests++;
        c->events += o->scan.nevents;
        for (size_t i = 0; i < o->scan.nevents; i++)
            if (o->scan.events[i].has_uuid && ph_uuidset_add(&d->uuids, o->scan.events[i].uuid) == 0)
                c->duplicates++;
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
    r->headers_json = headers_to_json(req);
    r->error = o->error[0] ? strdup(o->error) : NULL;
    r->wire_bytes = req->body_len;
    r->body_bytes = o->decoded ? o->decoded_len : 0;
    r->gzip = o->gzip;
    r->status = st->reset ? 0 : status;
    r->reset = st->reset;
    r->delay_ms = st->delay_ms;
    r->accepted = accepted;
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
        evref_t *e = &d->events[d->nevents++];
        e->req = d->nreqs - 1;
        e->off = o->scan.events[i].off;
        e->len = o->scan.events[i].len;
    }
}

static void handle_ingest(ph_ingestd_t *d, const ph_http_request_t *req, ph_http_response_t *res)
{
    step_t st = {0};
    pthread_mutex_lock(&d->lock);
    unsigned long long seq = ++d->seq;
    if (d->next_step < d->nsteps)
        st = d->script[d->next_step++];
    size_t max_body = d->max_body, max_decoded = d->max_decoded, max_event = d->max_event;
    pthread_mutex_unlock(&d->lock);

    outcome_t o;
    memset(&o, 0, sizeof o);
    decode_and_validate(d, req, max_body, max_decoded, max_event, &o);
    int status = st.status ? st.status : o.status;
    int accepted = !st.reset && o.status == 200 && status >= 200 && status < 300;

    pthread_mutex_lock(&d->lock);
    record(d, req, seq, &st, status, accepted, &o);
    pthread_mutex_unlock(&d->lock);

    if (d->cfg.verbose)
        fprintf(stderr, "#%llu %s %s%s%s wire=%zu body=%zu%s events=%zu -> %s%d %s\n", seq,
                req->method, req->path, req->query[0] ? "?" : "", req->query, req->body_len,
                o.decoded_len, o.gzip ? " gzip" : "", o.scan.nevents, st.reset ? "reset " : "",
                status, o.error);

    res->delay_ms = st.delay_ms;
    res->reset = st.reset;
    if (st.retry_after[0])
        snprintf(res->extra_headers, sizeof res->extra_headers, "Retry-After: %s\r\n",
                 st.retry_after);
    if (status >= 200 && status < 300) {
        res->status = status;
        ph_http_set_body(res, status == 204 ? "" : "{\"status\": 1}");
    } else if (st.status) {
        char msg[128];
        snprintf(msg, sizeof msg, "{\"type\":\"injected_fault\",\"status\":%d}", status);
        res->status = status;
        ph_http_set_body(res, msg);
    } else {
        set_json_error(res, status, error_code(status), o.error);
    }
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
        ph_sbuf_add(b, "}", 1);
    }
    u64_field(b, "],\"max_body_bytes\":", d->max_body);
    u64_field(b, ",\"max_decoded_bytes\":", d->max_decoded);
    u64_field(b, ",\"max_event_bytes\":", d->max_event);
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
    st->status = status ? status->valueint : 0;
    st->delay_ms = delay ? delay->valueint : 0;
    st->reset = reset && cJSON_IsTrue(reset);
    return 0;
}

/* POST /_control/faults. Replaces the script; limits given are changed. */
static void set_faults(ph_ingestd_t *d, const ph_http_request_t *req, ph_http_response_t *res)
{
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    const char *why = NULL;
    step_t *steps = NULL;
    size_t n = 0;
    size_t mb = 0, md = 0, me = 0;
    const cJSON *script = root ? cJSON_GetObjectItemCaseSensitive(root, "script") : NULL;
    if (!cJSON_IsObject(root))
        why = "body must be a JSON object";
    else if (script && !cJSON_IsArray(script))
        why = "\"script\" must be an array";
    else if (parse_limit(root, "max_body_bytes", &mb) < 0 ||
             parse_limit(root, "max_decoded_bytes", &md) < 0 ||
             parse_limit(root, "max_event_bytes", &me) < 0)
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
        free(steps);
        set_json_error(res, 400, "invalid_faults", why);
        return;
    }
    pthread_mutex_lock(&d->lock);
    if (script) {
        free(d->script);
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
    ph_sbuf_t b = {0};
    render_faults(d, &b);
    pthread_mutex_unlock(&d->lock);
    free(steps);
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
    if (is_ingest_path(req->path)) {
        if (strcmp(req->method, "POST") != 0) {
            set_json_error(res, 405, "method_not_allowed", "use POST");
            return;
        }
        handle_ingest(d, req, res);
        return;
    }
    if (strncmp(req->path, "/_control/", 10) == 0 || strcmp(req->path, "/_health") == 0) {
        handle_control(d, req, res);
        return;
    }
    set_json_error(res, 404, "not_found", "unknown path");
}
