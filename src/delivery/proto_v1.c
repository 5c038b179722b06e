/*
 * proto_v1: capture v1, POST {host}/i/v1/analytics/events (and
 * /i/v1/ai/events).
 *
 * {"created_at":"<batch opened>"[,"historical_migration":true],"batch":[..]}
 * is the same on every attempt, so the whole body is compressed once, to
 * the end of the codec's stream, at seal; attempts differ only in their
 * headers (PostHog-Attempt, PostHog-Request-Timestamp; the request id is
 * the batch's). Events are written in v1's shape: $ properties lifted into
 * session_id/window_id/options, no $lib (the server takes it from
 * PostHog-Sdk-Info), $set/$set_once inside the properties. A 2xx carries
 * per-event results (the results map).
 */
#include "protocol.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "json.h"
#include "util.h"

int posthog__headers_add(ph_headers_t *h, const char *fmt, ...) {
    if (h->n >= PH_MAX_HEADERS) return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->line[h->n], PH_HEADER_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PH_HEADER_MAX) return -1;
    h->n++;
    return 0;
}

/* ------------------------------------------------------------ building */

/* The envelope: created_at is the batch's opening time, kept for ever (also
 * by a partial retry's batch, which passes it and the request id on). */
static int v1_open(ph_builder_t *b, ph_batch_t *bt, int64_t created_ms, const char *request_id) {
    bt->created_ms = created_ms ? created_ms : posthog__now_ms();
    if (request_id) {
        memcpy(bt->request_id, request_id, sizeof bt->request_id);
    } else {
        uint8_t u[16];
        posthog__uuid_v7(u, posthog__now_ms());
        posthog__uuid_format(bt->request_id, u);
        bt->request_id[PH_UUID_STR_LEN] = '\0';
    }
    char ts[PH_ISO8601_LEN];
    posthog__iso8601_ms(ts, bt->created_ms);
    const char *h = b->historical ? "\",\"historical_migration\":true,\"batch\":[" : "\",\"batch\":[";
    return ph_builder_stage(b, "{\"created_at\":\"", 15) || ph_builder_stage(b, ts, PH_ISO8601_LEN) ||
           ph_builder_stage(b, h, strlen(h));
}

static size_t v1_rec_len(const ph_rec_t *r) { return ph_rec_json_len_proto(r, PH_PROTO_V1); }

static int v1_add_record(ph_builder_t *b, const ph_rec_t *r) {
    if (!(r->flags & PH_REC_LIFT)) { /* the common case: written directly */
        char *end = posthog__event_write_v1(b->stage.data + b->stage.len, r);
        b->stage.len = (size_t)(end - b->stage.data);
        return 0;
    }
    /* properties that hold lifted keys: the v0 text, then converted */
    b->scratch.len = 0;
    if (posthog__event_format(&b->scratch, r)) return -1;
    return posthog__event_convert(PH_PROTO_V1, b->scratch.data, b->scratch.len, &b->stage) ? -1
                                                                                           : 0;
}

static int v1_add_text(ph_builder_t *b, const char *json, size_t n) {
    return posthog__event_convert(PH_PROTO_V1, json, n, &b->stage) ? -2 : 0;
}

struct ph_seen_slot {
    uint8_t u[16];
    uint32_t gen; /* the slot is in use by the open batch when gen == seen_gen */
};

/* v7 and v4 uuids end in random bits; a caller's own uuid is mixed too. */
static uint32_t seen_hash(const uint8_t u[16], uint32_t mask) {
    uint64_t a, z;
    memcpy(&a, u, 8);
    memcpy(&z, u + 8, 8);
    return (uint32_t)(((a ^ z) * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

/* Finds the uuid's slot in the open batch's set, or the empty slot where it
 * would go. */
static struct ph_seen_slot *seen_find(ph_builder_t *b, const uint8_t u[16]) {
    uint32_t mask = b->seen_cap - 1;
    for (uint32_t i = seen_hash(u, mask);; i = (i + 1) & mask) {
        struct ph_seen_slot *s = &b->seen[i];
        if (s->gen != b->seen_gen || !memcmp(s->u, u, 16)) return s;
    }
}

static int seen_grow(ph_builder_t *b) {
    uint32_t cap = b->seen_cap ? b->seen_cap * 2 : 64; /* grows with the batch */
    struct ph_seen_slot *old = b->seen, *s = calloc(cap, sizeof *s);
    if (!s) return -1;
    uint32_t old_cap = b->seen_cap, gen = b->seen_gen;
    b->seen = s;
    b->seen_cap = cap;
    b->seen_gen = 1; /* a fresh table: gen 0 is "empty" */
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i].gen == gen) {
            struct ph_seen_slot *d = seen_find(b, old[i].u);
            memcpy(d->u, old[i].u, 16);
            d->gen = b->seen_gen;
        }
    free(old);
    return 0;
}

/* A uuid at most once per batch (the server refuses a batch with
 * duplicates): 1 when it is in the open batch already, else remembered.
 * O(1) per event. */
static int v1_admit(ph_builder_t *b, const ph_rec_t *r) {
    if (!b->cur || b->cur->count == 0) { /* a new batch: an empty set */
        b->seen_n = 0;
        if (++b->seen_gen == 0) { /* wrapped: clear for real */
            if (b->seen) memset(b->seen, 0, b->seen_cap * sizeof *b->seen);
            b->seen_gen = 1;
        }
    }
    if ((b->seen_n + 1) * 2 > b->seen_cap && seen_grow(b)) return -1;
    struct ph_seen_slot *s = seen_find(b, r->uuid);
    if (s->gen == b->seen_gen) return 1;
    memcpy(s->u, r->uuid, 16);
    s->gen = b->seen_gen;
    b->seen_n++;
    return 0;
}

/* ------------------------------------------------------------ sending */

static int v1_attempt_body(ph_batch_t *bt, int64_t now_ms) {
    (void)bt; /* the body never changes: body.len is prefix_len already */
    (void)now_ms;
    return 0;
}

static int v1_attempt_headers(const ph_batch_t *bt, const ph_proto_ctx_t *ctx, ph_headers_t *h) {
    char ts[PH_ISO8601_LEN + 1];
    posthog__iso8601_ms(ts, posthog__now_ms());
    ts[PH_ISO8601_LEN] = '\0';
    return posthog__headers_add(h, "Authorization: Bearer %s", ctx->api_key ? ctx->api_key : "") ||
           posthog__headers_add(h, "PostHog-Sdk-Info: %s/%s", ctx->sdk_name, ctx->sdk_version) ||
           posthog__headers_add(h, "PostHog-Request-Id: %s", bt->request_id) ||
           posthog__headers_add(h, "PostHog-Attempt: %u", bt->attempts + 1) ||
           posthog__headers_add(h, "PostHog-Request-Timestamp: %s", ts);
}

/* ------------------------------------------------------------ answers */

ph_outcome_t posthog__v1_classify(long status) {
    if (status == 404) return PH_OUTCOME_RETRY;
    if (status == 400) return PH_OUTCOME_TOO_LARGE; /* bisect: only bad events are dropped */
    return posthog__classify(status);
}

typedef struct {
    const char *uuid;
    const cJSON *entry;
    uint8_t outcome;
} hit_t;

static int hit_cmp(const void *a, const void *b) {
    return strncasecmp(((const hit_t *)a)->uuid, ((const hit_t *)b)->uuid, 36);
}

void posthog__v1_results_free(ph_results_t *r, uint32_t count) {
    if (r->details)
        for (uint32_t i = 0; i < count; i++) free(r->details[i]);
    free(r->details);
    free(r->outcome);
    memset(r, 0, sizeof *r);
}

static bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Whether s holds the quoted word w (length n). It is searched by its
 * letter at index k ('y' of "retry", 'p' of "drop"), which no uuid, "ok",
 * "result" or "warning" has: memchr skips an all-ok map at memory speed. */
static bool has_word(const char *s, size_t len, const char *w, size_t n, size_t k) {
    const char *p = s + k, *end = s + len;
    while (p < end && (p = memchr(p, w[k], (size_t)(end - p)))) {
        if ((size_t)(p - s) >= k && (size_t)(end - p) >= n - k && !memcmp(p - k, w, n))
            return true;
        p++;
    }
    return false;
}

/* The common answer, recognised without a parse: the body is exactly
 * {"results":{...}} (whitespace allowed around the tokens) and no entry can
 * be "retry" or "drop" (their values are the only places those quoted words
 * may appear as whole strings; a details text merely containing them only
 * sends the answer to the full parse). A proxy's page, a truncated body or
 * any other shape fails the check and takes the full parse. */
static bool all_delivered_fast(const char *b, size_t n) {
    size_t i = 0;
    while (i < n && ws(b[i])) i++;
    if (n - i < 14 || memcmp(b + i, "{", 1)) return false;
    i++;
    while (i < n && ws(b[i])) i++;
    if (n - i < 12 || memcmp(b + i, "\"results\"", 9)) return false;
    i += 9;
    while (i < n && ws(b[i])) i++;
    if (i >= n || b[i++] != ':') return false;
    while (i < n && ws(b[i])) i++;
    if (i >= n || b[i] != '{') return false;
    size_t e = n;
    while (e > i && ws(b[e - 1])) e--;
    if (e < i + 2 || b[e - 1] != '}') return false;
    e--;
    while (e > i && ws(b[e - 1])) e--;
    if (e < i + 1 || b[e - 1] != '}') return false;
    return !has_word(b + i, e - i, "\"retry\"", 7, 5) && !has_word(b + i, e - i, "\"drop\"", 6, 4);
}

int posthog__v1_parse_results(const ph_batch_t *bt, const char *body, size_t n,
                              ph_results_t *out) {
    memset(out, 0, sizeof *out);
    if (body && all_delivered_fast(body, n)) {
        out->delivered = bt->count;
        return 0;
    }
    int type = 0;
    ph_json_keys_t keys;
    if (!body || !n || posthog__json_validate(body, n, &type, &keys) != POSTHOG_OK ||
        type != PH_JSON_OBJECT)
        return -1;
    /* the "results" member must be an object */
    ph_json_iter_t it;
    ph_json_member_t m;
    const char *res = NULL;
    size_t res_n = 0;
    ph_json_iter_init(&it, body + keys.inner_off, keys.inner_len);
    while (posthog__json_next_member(&it, &m))
        if (m.klen == 7 && !memcmp(m.key, "results", 7)) {
            res = m.val;
            res_n = m.vlen;
        }
    if (!res || res[0] != '{') return -1;
    /* fast path: no entry can be "retry" or "drop" */
    if (!memmem(res, res_n, "\"retry\"", 7) && !memmem(res, res_n, "\"drop\"", 6)) {
        out->delivered = bt->count;
        return 0;
    }
    cJSON *root = cJSON_ParseWithLength(res, res_n);
    if (!root) return -2;
    size_t nh = 0, cap = 0;
    hit_t *hits = NULL;
    int rc = -2;
    for (const cJSON *e = root->child; e; e = e->next) {
        const cJSON *r = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "result") : e;
        const char *v = cJSON_IsString(r) ? r->valuestring : NULL;
        uint8_t oc = v && !strcmp(v, "retry") ? PH_EV_RETRY
                     : v && !strcmp(v, "drop") ? PH_EV_DROP
                                               : PH_EV_DELIVERED;
        if (oc == PH_EV_DELIVERED || !e->string || strlen(e->string) != 36) continue;
        if (nh == cap) {
            cap = cap ? cap * 2 : 64;
            hit_t *h = realloc(hits, cap * sizeof *h);
            if (!h) goto done;
            hits = h;
        }
        hits[nh++] = (hit_t){e->string, e, oc};
    }
    qsort(hits, nh, sizeof *hits, hit_cmp);
    char *raw = nh ? posthog__batch_inflate(bt, NULL) : NULL;
    if (nh && !raw) goto done;
    out->outcome = calloc(bt->count ? bt->count : 1, 1);
    out->details = calloc(bt->count ? bt->count : 1, sizeof *out->details);
    if (!out->outcome || !out->details) {
        free(raw);
        posthog__v1_results_free(out, 0);
        goto done;
    }
    for (uint32_t i = 0; i < bt->count; i++) {
        const char *u = nh ? posthog__batch_event_uuid(bt, raw, i) : NULL;
        hit_t key = {u, NULL, 0}, *h = u ? bsearch(&key, hits, nh, sizeof *hits, hit_cmp) : NULL;
        uint8_t oc = h ? h->outcome : PH_EV_DELIVERED;
        out->outcome[i] = oc;
        if (oc == PH_EV_DELIVERED) {
            out->delivered++;
            continue;
        }
        if (oc == PH_EV_RETRY) out->retry++;
        else out->drop++;
        const cJSON *d = cJSON_IsObject(h->entry)
                             ? cJSON_GetObjectItemCaseSensitive(h->entry, "details")
                             : NULL;
        out->details[i] = strdup(cJSON_IsString(d) ? d->valuestring : "");
    }
    free(raw);
    rc = 0;
done:
    free(hits);
    cJSON_Delete(root);
    return rc;
}

static int v1_parse_results(const ph_batch_t *bt, long status, const char *body, size_t n,
                            ph_results_t *out) {
    (void)status; /* a 204 has no results map either: nothing is known */
    return posthog__v1_parse_results(bt, body, n, out);
}

const ph_protocol_t posthog__proto_v1 = {
    .id = PH_PROTO_V1,
    .name = "v1",
    .path = {"/i/v1/analytics/events", "/i/v1/ai/events"},
    .raw_gzip = false,
    .builder_init = NULL,
    .open = v1_open,
    .rec_len = v1_rec_len,
    .add_record = v1_add_record,
    .add_text = v1_add_text,
    .admit = v1_admit,
    .close_text = "]}",
    .seal_mode = PH_CODEC_END,
    .attempt_body = v1_attempt_body,
    .attempt_headers = v1_attempt_headers,
    .classify = posthog__v1_classify,
    .parse_results = v1_parse_results,
    .confirmation = "a results map",
};
