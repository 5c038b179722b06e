/*
 * batch: request bodies built incrementally (see batch.h).
 * Invariant (v0 gzip): body[0..prefix_len) is a 10-byte gzip header
 * followed by raw deflate blocks ending on a byte boundary (sync flush)
 * with no final block; crc/raw_len describe exactly the text they hold.
 * Invariant (v1): body[0..prefix_len) is one complete stream of the codec
 * holding raw_len bytes of text, the whole request.
 */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>

#include "json.h"
#include "protocol.h"
#include "util.h"

#define STAGE_FLUSH (64 * 1024)
/* A codec that prefers the whole text gets it up to this much; a larger
 * batch streams from there on (bounded working memory). */
#define WHOLE_MAX ((size_t)1 << 20)
#define BODY_MAX ((size_t)128 << 20)


int posthog__builder_init(ph_builder_t *b, ph_proto_t proto, ph_codec_kind_t codec, int level,
                          const char *api_key, bool historical, bool ai, uint64_t max_raw) {
    memset(b, 0, sizeof *b);
    b->proto = proto;
    b->ops = ph_protocol(proto);
    b->ai = ai;
    b->historical = historical;
    b->max_raw = max_raw;
    posthog__buf_init(&b->stage, BODY_MAX);
    posthog__buf_init(&b->scratch, BODY_MAX);
    if (b->ops->builder_init && b->ops->builder_init(b, api_key)) {
        posthog__builder_free(b);
        return -1;
    }
    b->whole = b->ops->seal_mode == PH_CODEC_END && posthog__codec_prefers_whole(codec);
    if (posthog__codec_init(&b->codec, codec, level, b->ops->raw_gzip)) {
        posthog__builder_free(b);
        return -1;
    }
    return 0;
}

void posthog__builder_free(ph_builder_t *b) {
    posthog__codec_free(&b->codec);
    posthog__buf_free(&b->stage);
    posthog__buf_free(&b->scratch);
    posthog__batch_free(b->cur);
    b->cur = NULL;
    free((void *)b->prefix);
    b->prefix = NULL;
    free(b->seen);
    b->seen = NULL;
    b->seen_cap = b->seen_n = b->seen_gen = 0;
}

void posthog__batch_free(ph_batch_t *bt) {
    if (!bt) return;
    posthog__buf_free(&bt->body);
    free(bt->offsets);
    free(bt);
}

/* Moves the staged text into the body through the codec. */
static int stage_drain(ph_builder_t *b, int mode) {
    ph_batch_t *bt = b->cur;
    if (bt->raw_gzip)
        bt->crc = (uint32_t)crc32(bt->crc, (const Bytef *)b->stage.data, (uInt)b->stage.len);
    if (posthog__codec_write(&b->codec, &bt->body, b->stage.data, b->stage.len, mode)) return -1;
    bt->raw_len += b->stage.len;
    b->stage.len = 0;
    return 0;
}

static ph_batch_t *batch_open(ph_builder_t *b, int64_t created_ms, const char *request_id) {
    ph_batch_t *bt = calloc(1, sizeof *bt);
    if (!bt) return NULL;
    bt->proto = b->proto;
    bt->codec = b->codec.kind;
    bt->ai = b->ai;
    posthog__buf_init(&bt->body, BODY_MAX);
    bt->crc = (uint32_t)crc32(0, Z_NULL, 0);
    posthog__codec_reset(&b->codec);
    b->stage.len = 0;
    if (b->ops->open(b, bt, created_ms, request_id)) {
        posthog__batch_free(bt);
        return NULL;
    }
    return bt;
}

bool posthog__builder_fits(const ph_builder_t *b, size_t json_len) {
    if (!b->cur || b->cur->count == 0) return true; /* one event always fits */
    uint64_t raw = b->cur->raw_len + b->stage.len;
    return raw + json_len + 1 + 40 <= b->max_raw;
}

static int offsets_push(ph_batch_t *bt, uint64_t off) {
    uint32_t n = bt->count;
    if ((n & (n - 1)) == 0) { /* grow at powers of two */
        uint32_t cap = n ? n * 2 : 64;
        if (n && n < 64) goto store;
        uint32_t *o = realloc(bt->offsets, cap * sizeof *o);
        if (!o) return -1;
        bt->offsets = o;
    }
store:
    bt->offsets[n] = (uint32_t)off;
    return 0;
}

static int builder_add_text(ph_builder_t *b, const char *text, size_t n, const ph_rec_t *r) {
    if (!b->cur && !(b->cur = batch_open(b, 0, NULL))) return -1;
    ph_batch_t *bt = b->cur;
    size_t need = (r ? b->ops->rec_len(r) : n) + 1;
    if (posthog__buf_reserve(&b->stage, need)) return -1;
    uint64_t off = bt->raw_len + b->stage.len + (bt->count ? 1 : 0);
    if (offsets_push(bt, off)) return -1;
    size_t mark = b->stage.len;
    if (bt->count) b->stage.data[b->stage.len++] = ',';
    int rc = r ? b->ops->add_record(b, r) : b->ops->add_text(b, text, n);
    if (rc) {
        b->stage.len = mark;
        return rc;
    }
    bt->count++;
    bt->events_end = bt->raw_len + b->stage.len;
    if (b->stage.len >= (b->whole ? WHOLE_MAX : STAGE_FLUSH) && stage_drain(b, PH_CODEC_MORE))
        return -1;
    return 0;
}

int posthog__builder_add(ph_builder_t *b, const ph_rec_t *r, int64_t now_wall, int64_t now_mono) {
    bool fresh = !b->cur || b->cur->count == 0;
    if (b->ops->admit) {
        int s = b->ops->admit(b, r);
        if (s) return s;
    }
    if (builder_add_text(b, NULL, 0, r)) return -1;
    /* the batch's age counts from the oldest capture (a caller's explicit
     * timestamp says nothing about when it was captured); from here on it
     * is measured on the monotonic clock */
    if (fresh) {
        int64_t age = (r->flags & PH_REC_TS_EXPLICIT) || r->ts_ms > now_wall ? 0
                                                                              : now_wall - r->ts_ms;
        b->opened_mono = now_mono - age;
    }
    return 0;
}

ph_batch_t *posthog__builder_seal(ph_builder_t *b) {
    ph_batch_t *bt = b->cur;
    if (!bt || bt->count == 0) return NULL;
    const char *close = b->ops->close_text;
    int rc = (*close && posthog__buf_append(&b->stage, close, strlen(close))) ||
             stage_drain(b, b->ops->seal_mode);
    /* Out of memory while sealing: the caller treats NULL with a non-empty
     * builder as a failure and drops the batch. */
    if (rc) return NULL;
    posthog__codec_reset(&b->codec);
    /* a finished body (nothing is appended per attempt) waits in memory,
     * counted by its capacity: no slack */
    if (b->ops->seal_mode == PH_CODEC_END && bt->body.cap > bt->body.len + 4096) {
        char *t = realloc(bt->body.data, bt->body.len + 1);
        if (t) {
            bt->body.data = t;
            bt->body.cap = bt->body.len + 1;
        }
    }
    bt->prefix_len = bt->body.len;
    b->cur = NULL;
    return bt;
}

int posthog__batch_set_tail(ph_batch_t *bt, int64_t now_ms) {
    bt->body.len = bt->prefix_len;
    return ph_protocol(bt->proto)->attempt_body(bt, now_ms);
}

char *posthog__batch_inflate(const ph_batch_t *bt, size_t *len) {
    char *out = malloc(bt->raw_len + 1);
    if (!out) return NULL;
    size_t skip = bt->raw_gzip ? 10 : 0; /* the gzip header the protocol wrote */
    if (posthog__codec_decode(bt->codec, bt->raw_gzip, bt->body.data + skip, bt->prefix_len - skip, out,
                              bt->raw_len)) {
        free(out);
        return NULL;
    }
    out[bt->raw_len] = '\0';
    if (len) *len = bt->raw_len;
    return out;
}

static size_t event_end(const ph_batch_t *bt, uint32_t i) {
    return i + 1 < bt->count ? bt->offsets[i + 1] - 1 : bt->events_end;
}

char *posthog__batch_events_json(const ph_batch_t *bt) {
    size_t n;
    char *raw = posthog__batch_inflate(bt, &n);
    if (!raw || bt->count == 0) {
        free(raw);
        return NULL;
    }
    /* events start at offsets[0], right after the prefix's '[' */
    size_t start = bt->offsets[0] - 1;
    size_t len = bt->events_end - start;
    memmove(raw, raw + start, len);
    raw[len] = ']';
    raw[len + 1] = '\0';
    return raw;
}

const char *posthog__batch_event_uuid(const ph_batch_t *bt, const char *raw, uint32_t i) {
    /* both writers put the uuid first: {"uuid":"<36>" */
    const char *e = raw + bt->offsets[i];
    if (event_end(bt, i) - bt->offsets[i] < 9 + 36 || memcmp(e, "{\"uuid\":\"", 9)) return NULL;
    return e + 9;
}

static ph_batch_t *build_from(ph_builder_t *tmp, const char *raw, const ph_batch_t *bt,
                              uint32_t from, uint32_t to, const bool *keep) {
    for (uint32_t i = from; i < to; i++) {
        if (keep && !keep[i]) continue;
        size_t s = bt->offsets[i];
        if (builder_add_text(tmp, raw + s, event_end(bt, i) - s, NULL)) return NULL;
    }
    return posthog__builder_seal(tmp);
}

int posthog__builder_init_like(ph_builder_t *dst, const ph_builder_t *src) {
    if (posthog__builder_init(dst, src->proto, src->codec.kind, src->codec.level, "",
                              src->historical, src->ai, src->max_raw))
        return -1;
    posthog__codec_limit(&dst->codec, src->codec.mem);
    if (src->prefix) {
        free((void *)dst->prefix);
        dst->prefix = strdup(src->prefix);
        dst->prefix_n = src->prefix_n;
        if (!dst->prefix) {
            posthog__builder_free(dst);
            return -1;
        }
    }
    return 0;
}

int posthog__builder_add_text(ph_builder_t *b, const char *json, size_t n) {
    return builder_add_text(b, json, n, NULL);
}

int posthog__batch_texts(const ph_batch_t *bt, char **raw, const char ***ev, size_t **len) {
    *raw = posthog__batch_inflate(bt, NULL);
    *ev = malloc((bt->count ? bt->count : 1) * sizeof **ev);
    *len = malloc((bt->count ? bt->count : 1) * sizeof **len);
    if (!*raw || !*ev || !*len) {
        free(*raw);
        free(*ev);
        free(*len);
        return -1;
    }
    for (uint32_t i = 0; i < bt->count; i++) {
        size_t s = bt->offsets[i];
        (*ev)[i] = *raw + s;
        (*len)[i] = event_end(bt, i) - s;
    }
    return 0;
}

/* A builder for rebuilding parts of bt (its protocol, codec and kind). */
static int rebuild_init(ph_builder_t *tmp, ph_builder_t *b, const ph_batch_t *bt) {
    if (posthog__builder_init_like(tmp, b)) return -1;
    tmp->max_raw = UINT64_MAX;
    tmp->ai = bt->ai;
    return 0;
}

int posthog__batch_split(ph_builder_t *b, const ph_batch_t *bt, ph_batch_t **first,
                         ph_batch_t **second) {
    *first = *second = NULL;
    if (bt->count < 2) return -1;
    char *raw = posthog__batch_inflate(bt, NULL);
    if (!raw) return -1;
    ph_builder_t tmp;
    int rc = -1;
    if (rebuild_init(&tmp, b, bt) == 0) {
        uint32_t half = bt->count / 2;
        if ((*first = build_from(&tmp, raw, bt, 0, half, NULL)) &&
            (*second = build_from(&tmp, raw, bt, half, bt->count, NULL))) {
            (*first)->end_pos = 0;
            (*second)->end_pos = bt->end_pos;
            (*first)->replay = (*second)->replay = bt->replay;
            rc = 0;
        } else {
            posthog__batch_free(*first);
            posthog__batch_free(*second);
            *first = *second = NULL;
        }
        posthog__builder_free(&tmp);
    }
    free(raw);
    return rc;
}

ph_batch_t *posthog__batch_subset(ph_builder_t *b, const ph_batch_t *bt, const bool *keep) {
    char *raw = posthog__batch_inflate(bt, NULL);
    if (!raw) return NULL;
    ph_builder_t tmp;
    ph_batch_t *out = NULL;
    if (rebuild_init(&tmp, b, bt) == 0) {
        if ((tmp.cur = batch_open(&tmp, bt->created_ms, bt->request_id)))
            out = build_from(&tmp, raw, bt, 0, bt->count, keep);
        if (out) {
            out->end_pos = bt->end_pos;
            out->attempts = bt->attempts;
            out->replay = bt->replay;
            out->probe = bt->probe;
            out->not_before_ms = bt->not_before_ms;
        }
        posthog__builder_free(&tmp);
    }
    free(raw);
    return out;
}
