/*
 * batch: request bodies built incrementally (see batch.h).
 * Invariant: for a gzip batch, body[0..prefix_len) is a 10-byte gzip
 * header followed by deflate blocks ending on a byte boundary (sync flush)
 * with no final block; crc/raw_len describe exactly the text they hold.
 */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>

#include "json.h"
#include "util.h"

#define STAGE_FLUSH (64 * 1024)
#define BODY_MAX ((size_t)128 << 20)

static const unsigned char gzip_header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};

int posthog__builder_init(ph_builder_t *b, const char *api_key, bool historical, bool gzip,
                          int level, uint64_t max_raw) {
    memset(b, 0, sizeof *b);
    b->gzip = gzip;
    b->level = level;
    b->max_raw = max_raw;
    posthog__buf_init(&b->stage, BODY_MAX);
    ph_buf_t pre;
    posthog__buf_init(&pre, 1 << 20);
    if (posthog__buf_append(&pre, "{\"api_key\":", 11) ||
        posthog__json_append_string(&pre, api_key ? api_key : "", api_key ? strlen(api_key) : 0)) {
        posthog__buf_free(&pre);
        return -1;
    }
    const char *rest = historical ? ",\"historical_migration\":true,\"batch\":["
                                  : ",\"historical_migration\":false,\"batch\":[";
    if (posthog__buf_append(&pre, rest, strlen(rest))) {
        posthog__buf_free(&pre);
        return -1;
    }
    b->prefix = pre.data;
    b->prefix_n = pre.len;
    if (gzip) {
        if (deflateInit2(&b->z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            posthog__builder_free(b);
            return -1;
        }
        b->z_ready = true;
    }
    return 0;
}

void posthog__builder_free(ph_builder_t *b) {
    if (b->z_ready) deflateEnd(&b->z);
    b->z_ready = false;
    posthog__buf_free(&b->stage);
    posthog__batch_free(b->cur);
    b->cur = NULL;
    free((void *)b->prefix);
    b->prefix = NULL;
}

void posthog__batch_free(ph_batch_t *bt) {
    if (!bt) return;
    posthog__buf_free(&bt->body);
    free(bt->offsets);
    free(bt);
}

/* Moves the staged text into the body: deflated (flush mode) or raw. */
static int stage_drain(ph_builder_t *b, int flush) {
    ph_batch_t *bt = b->cur;
    if (!b->gzip) {
        if (posthog__buf_append(&bt->body, b->stage.data, b->stage.len)) return -1;
    } else {
        bt->crc = (uint32_t)crc32(bt->crc, (const Bytef *)b->stage.data, (uInt)b->stage.len);
        b->z.next_in = (Bytef *)b->stage.data;
        b->z.avail_in = (uInt)b->stage.len;
        for (;;) {
            size_t room = b->stage.len / 2 + 4096;
            if (posthog__buf_reserve(&bt->body, room)) return -1;
            b->z.next_out = (Bytef *)bt->body.data + bt->body.len;
            b->z.avail_out = (uInt)room;
            int rc = deflate(&b->z, flush);
            bt->body.len += room - b->z.avail_out;
            if (rc == Z_STREAM_ERROR) return -1;
            if (b->z.avail_in == 0 && b->z.avail_out != 0) break;
        }
    }
    bt->raw_len += b->stage.len;
    b->stage.len = 0;
    return 0;
}

static ph_batch_t *batch_open(ph_builder_t *b) {
    ph_batch_t *bt = calloc(1, sizeof *bt);
    if (!bt) return NULL;
    bt->gzip = b->gzip;
    posthog__buf_init(&bt->body, BODY_MAX);
    bt->crc = (uint32_t)crc32(0, Z_NULL, 0);
    if (b->gzip && posthog__buf_append(&bt->body, gzip_header, sizeof gzip_header)) {
        free(bt);
        return NULL;
    }
    b->stage.len = 0;
    if (posthog__buf_append(&b->stage, b->prefix, b->prefix_n)) {
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
    if (!b->cur && !(b->cur = batch_open(b))) return -1;
    ph_batch_t *bt = b->cur;
    size_t need = n + 1;
    if (r) need = ph_rec_json_len(r) + 1;
    if (posthog__buf_reserve(&b->stage, need)) return -1;
    uint64_t off = bt->raw_len + b->stage.len + (bt->count ? 1 : 0);
    if (offsets_push(bt, off)) return -1;
    if (bt->count) b->stage.data[b->stage.len++] = ',';
    if (r) {
        char *end = posthog__event_write(b->stage.data + b->stage.len, r);
        b->stage.len = (size_t)(end - b->stage.data);
    } else {
        memcpy(b->stage.data + b->stage.len, text, n);
        b->stage.len += n;
    }
    bt->count++;
    if (b->stage.len >= STAGE_FLUSH && stage_drain(b, Z_NO_FLUSH)) return -1;
    return 0;
}

int posthog__builder_add(ph_builder_t *b, const ph_rec_t *r, int64_t now_ms) {
    bool fresh = !b->cur || b->cur->count == 0;
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
    if (stage_drain(b, Z_SYNC_FLUSH)) {
        /* Out of memory while sealing: the caller treats NULL with a
         * non-empty builder as a failure and drops the batch. */
        return NULL;
    }
    if (b->gzip) deflateReset(&b->z);
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
    char tail[64];
    memcpy(tail, "],\"sent_at\":\"", 13);
    posthog__iso8601_ms(tail + 13, now_ms);
    memcpy(tail + 13 + PH_ISO8601_LEN, "\"}", 2);
    size_t tn = 13 + PH_ISO8601_LEN + 2;
    bt->body.len = bt->prefix_len;
    if (!bt->gzip) return posthog__buf_append(&bt->body, tail, tn);
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
    if (!bt->gzip) {
        memcpy(out, bt->body.data, bt->raw_len);
    } else {
        z_stream z;
        memset(&z, 0, sizeof z);
        if (inflateInit2(&z, -15) != Z_OK) {
            free(out);
            return NULL;
        }
        z.next_in = (Bytef *)bt->body.data + sizeof gzip_header;
        z.avail_in = (uInt)(bt->prefix_len - sizeof gzip_header);
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)bt->raw_len;
        int rc = inflate(&z, Z_SYNC_FLUSH);
        size_t got = bt->raw_len - z.avail_out;
        inflateEnd(&z);
        if ((rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) || got != bt->raw_len) {
            free(out);
            return NULL;
        }
    }
    out[bt->raw_len] = '\0';
    if (len) *len = bt->raw_len;
    return out;
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
    size_t len = n - start;
    memmove(raw, raw + start, len);
    raw[len] = ']';
    raw[len + 1] = '\0';
    return raw;
}

static ph_batch_t *build_from(ph_builder_t *tmp, const char *raw, const ph_batch_t *bt,
                              uint32_t from, uint32_t to) {
    for (uint32_t i = from; i < to; i++) {
        size_t s = bt->offsets[i];
        size_t e = i + 1 < bt->count ? bt->offsets[i + 1] - 1 : bt->raw_len;
        if (builder_add_text(tmp, raw + s, e - s, NULL)) return NULL;
    }
    return posthog__builder_seal(tmp);
}

int posthog__builder_init_like(ph_builder_t *dst, const ph_builder_t *src) {
    if (posthog__builder_init(dst, "", false, src->gzip, src->level, src->max_raw)) return -1;
    free((void *)dst->prefix);
    dst->prefix = strdup(src->prefix);
    dst->prefix_n = src->prefix_n;
    if (!dst->prefix) {
        posthog__builder_free(dst);
        return -1;
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
        size_t e = i + 1 < bt->count ? bt->offsets[i + 1] - 1 : bt->raw_len;
        (*ev)[i] = *raw + s;
        (*len)[i] = e - s;
    }
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
    if (posthog__builder_init_like(&tmp, b) == 0) {
        tmp.max_raw = UINT64_MAX;
        uint32_t half = bt->count / 2;
        if ((*first = build_from(&tmp, raw, bt, 0, half)) &&
            (*second = build_from(&tmp, raw, bt, half, bt->count))) {
            (*first)->end_pos = 0;
            (*second)->end_pos = bt->end_pos;
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
