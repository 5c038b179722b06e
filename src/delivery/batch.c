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
#include "util.h"

#define STAGE_FLUSH (64 * 1024)
#define BODY_MAX ((size_t)128 << 20)

static const unsigned char gzip_header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};

static bool v0_gzip(const ph_builder_t *b) {
    return b->proto == PH_PROTO_V0 && b->codec.kind == PH_CODEC_GZIP;
}

int posthog__builder_init(ph_builder_t *b, ph_proto_t proto, ph_codec_kind_t codec, int level,
                          const char *api_key, bool historical, bool ai, uint64_t max_raw) {
    memset(b, 0, sizeof *b);
    b->proto = proto;
    b->ai = ai;
    b->historical = historical;
    b->max_raw = max_raw;
    posthog__buf_init(&b->stage, BODY_MAX);
    posthog__buf_init(&b->scratch, BODY_MAX);
    if (proto == PH_PROTO_V0) {
        ph_buf_t pre;
        posthog__buf_init(&pre, 1 << 20);
        const char *rest = historical ? ",\"historical_migration\":true,\"batch\":["
                                      : ",\"historical_migration\":false,\"batch\":[";
        if (posthog__buf_append(&pre, "{\"api_key\":", 11) ||
            posthog__json_append_string(&pre, api_key ? api_key : "",
                                        api_key ? strlen(api_key) : 0) ||
            posthog__buf_append(&pre, rest, strlen(rest))) {
            posthog__buf_free(&pre);
            posthog__builder_free(b);
            return -1;
        }
        b->prefix = pre.data;
        b->prefix_n = pre.len;
    }
    if (posthog__codec_init(&b->codec, codec, level, proto == PH_PROTO_V0)) {
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
    b->seen_cap = 0;
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
    if (v0_gzip(b))
        bt->crc = (uint32_t)crc32(bt->crc, (const Bytef *)b->stage.data, (uInt)b->stage.len);
    if (posthog__codec_write(&b->codec, &bt->body, b->stage.data, b->stage.len, mode)) return -1;
    bt->raw_len += b->stage.len;
    b->stage.len = 0;
    return 0;
}

/* v1 envelope: created_at is the batch's opening time, kept for ever. */
static int v1_prefix(ph_buf_t *out, int64_t created_ms, bool historical) {
    char ts[PH_ISO8601_LEN];
    posthog__iso8601_ms(ts, created_ms);
    const char *h = historical ? "\",\"historical_migration\":true,\"batch\":[" : "\",\"batch\":[";
    return posthog__buf_append(out, "{\"created_at\":\"", 15) ||
           posthog__buf_append(out, ts, PH_ISO8601_LEN) || posthog__buf_append(out, h, strlen(h));
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
    int rc;
    if (b->proto == PH_PROTO_V0) {
        rc = (v0_gzip(b) && posthog__buf_append(&bt->body, gzip_header, sizeof gzip_header)) ||
             posthog__buf_append(&b->stage, b->prefix, b->prefix_n);
    } else {
        bt->created_ms = created_ms ? created_ms : posthog__now_ms();
        if (request_id) {
            memcpy(bt->request_id, request_id, sizeof bt->request_id);
        } else {
            uint8_t u[16];
            posthog__uuid_v7(u, posthog__now_ms());
            posthog__uuid_format(bt->request_id, u);
            bt->request_id[PH_UUID_STR_LEN] = '\0';
        }
        rc = v1_prefix(&b->stage, bt->created_ms, b->historical);
    }
    if (rc) {
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

/* v1: whether the uuid is already in the open batch; else remembers it. */
static int seen_check_add(ph_builder_t *b, const uint8_t u[16]) {
    ph_batch_t *bt = b->cur;
    uint32_t n = bt ? bt->count : 0;
    for (uint32_t i = 0; i < n && i < b->seen_cap; i++)
        if (!memcmp(b->seen[i], u, 16)) return 1;
    if (n >= b->seen_cap) {
        uint32_t cap = b->seen_cap ? b->seen_cap * 2 : 128;
        uint8_t(*s)[16] = realloc(b->seen, cap * sizeof *s);
        if (!s) return -1;
        b->seen = s;
        b->seen_cap = cap;
    }
    memcpy(b->seen[n], u, 16);
    return 0;
}

static int builder_add_text(ph_builder_t *b, const char *text, size_t n, const ph_rec_t *r) {
    if (!b->cur && !(b->cur = batch_open(b, 0, NULL))) return -1;
    ph_batch_t *bt = b->cur;
    size_t need = n + 1;
    bool slow = false;
    if (r) {
        need = ph_rec_json_len_proto(r, b->proto) + 1;
        slow = b->proto == PH_PROTO_V1 && (r->flags & PH_REC_LIFT);
        if (slow) { /* the v0 text, then converted */
            b->scratch.len = 0;
            if (posthog__event_format(&b->scratch, r)) return -1;
        }
    }
    if (posthog__buf_reserve(&b->stage, need)) return -1;
    uint64_t off = bt->raw_len + b->stage.len + (bt->count ? 1 : 0);
    if (offsets_push(bt, off)) return -1;
    size_t mark = b->stage.len;
    if (bt->count) b->stage.data[b->stage.len++] = ',';
    if (r && !slow) {
        char *end = b->proto == PH_PROTO_V0 ? posthog__event_write(b->stage.data + b->stage.len, r)
                                            : posthog__event_write_v1(b->stage.data + b->stage.len, r);
        b->stage.len = (size_t)(end - b->stage.data);
    } else if (r) {
        if (posthog__event_convert(PH_PROTO_V1, b->scratch.data, b->scratch.len, &b->stage)) {
            b->stage.len = mark;
            return -1;
        }
    } else if (b->proto == PH_PROTO_V0 && n && text[0] == '{' &&
               !memmem(text, n, "\"options\":{", 11)) {
        /* a v0 text into a v0 batch: as it is (a v1 text always has
         * "options"; converting a v0 text that merely looks so is harmless) */
        memcpy(b->stage.data + b->stage.len, text, n);
        b->stage.len += n;
    } else {
        int rc = posthog__event_convert(b->proto, text, n, &b->stage);
        if (rc) {
            b->stage.len = mark;
            return -2;
        }
    }
    bt->count++;
    bt->events_end = bt->raw_len + b->stage.len;
    if (b->stage.len >= STAGE_FLUSH && stage_drain(b, PH_CODEC_MORE)) return -1;
    return 0;
}

int posthog__builder_add(ph_builder_t *b, const ph_rec_t *r, int64_t now_ms) {
    bool fresh = !b->cur || b->cur->count == 0;
    if (b->proto == PH_PROTO_V1) {
        int s = seen_check_add(b, r->uuid);
        if (s) return s;
    }
    if (builder_add_text(b, NULL, 0, r)) return -1;
    /* the batch's age counts from the oldest capture (a caller's explicit
     * timestamp says nothing about when it was captured) */
    if (fresh)
        b->opened_ms = (r->flags & PH_REC_TS_EXPLICIT) || r->ts_ms > now_ms ? now_ms : r->ts_ms;
    return 0;
}

ph_batch_t *posthog__builder_seal(ph_builder_t *b) {
    ph_batch_t *bt = b->cur;
    if (!bt || bt->count == 0) return NULL;
    int rc;
    if (b->proto == PH_PROTO_V0) {
        rc = stage_drain(b, PH_CODEC_SYNC);
    } else {
        rc = posthog__buf_append(&b->stage, "]}", 2) || stage_drain(b, PH_CODEC_END);
    }
    /* Out of memory while sealing: the caller treats NULL with a non-empty
     * builder as a failure and drops the batch. */
    if (rc) return NULL;
    posthog__codec_reset(&b->codec);
    bt->prefix_len = bt->body.len;
    b->cur = NULL;
    return bt;
}

static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

int posthog__batch_set_tail(ph_batch_t *bt, int64_t now_ms) {
    bt->body.len = bt->prefix_len;
    if (bt->proto == PH_PROTO_V1) return 0; /* the body never changes */
    char tail[64];
    memcpy(tail, "],\"sent_at\":\"", 13);
    posthog__iso8601_ms(tail + 13, now_ms);
    memcpy(tail + 13 + PH_ISO8601_LEN, "\"}", 2);
    size_t tn = 13 + PH_ISO8601_LEN + 2;
    if (bt->codec != PH_CODEC_GZIP) return posthog__buf_append(&bt->body, tail, tn);
    unsigned char blk[5 + 64 + 8];
    blk[0] = 0x01; /* BFINAL=1, BTYPE=00 (stored); we are byte-aligned after the sync flush */
    blk[1] = (unsigned char)tn;
    blk[2] = (unsigned char)(tn >> 8);
    blk[3] = (unsigned char)~tn;
    blk[4] = (unsigned char)(~tn >> 8);
    memcpy(blk + 5, tail, tn);
    uint32_t crc = (uint32_t)crc32(bt->crc, (const Bytef *)tail, (uInt)tn);
    put_le32(blk + 5 + tn, crc);
    put_le32(blk + 9 + tn, (uint32_t)(bt->raw_len + tn));
    return posthog__buf_append(&bt->body, blk, 13 + tn);
}

char *posthog__batch_inflate(const ph_batch_t *bt, size_t *len) {
    char *out = malloc(bt->raw_len + 1);
    if (!out) return NULL;
    bool raw = bt->proto == PH_PROTO_V0 && bt->codec == PH_CODEC_GZIP;
    size_t skip = raw ? sizeof gzip_header : 0;
    if (posthog__codec_decode(bt->codec, raw, bt->body.data + skip, bt->prefix_len - skip, out,
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
