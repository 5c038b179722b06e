/*
 * proto_v0: capture v0, POST {host}/batch/ (and /i/v0/ai/batch/).
 *
 * {"api_key":..,"historical_migration":..,"batch":[e1,...],"sent_at":".."}:
 * everything up to the last event is compressed once (raw deflate, sync
 * flushed at seal); each attempt appends `],"sent_at":"<now>"}` as a final
 * stored deflate block plus the gzip trailer, so sent_at is fresh on every
 * attempt at the cost of ~80 bytes. The status decides (retry.h), and a
 * 2xx counts only with the capture service's confirmation body.
 */
#include <stdlib.h>

#include "json.h"
#include "protocol.h"
#include "util.h"

static const unsigned char gzip_header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};

static int v0_builder_init(ph_builder_t *b, const char *api_key) {
    ph_buf_t pre;
    posthog__buf_init(&pre, 1 << 20);
    const char *rest = b->historical ? ",\"historical_migration\":true,\"batch\":["
                                     : ",\"historical_migration\":false,\"batch\":[";
    if (posthog__buf_append(&pre, "{\"api_key\":", 11) ||
        posthog__json_append_string(&pre, api_key ? api_key : "", api_key ? strlen(api_key) : 0) ||
        posthog__buf_append(&pre, rest, strlen(rest))) {
        posthog__buf_free(&pre);
        return -1;
    }
    b->prefix = pre.data;
    b->prefix_n = pre.len;
    return 0;
}

static int v0_open(ph_builder_t *b, ph_batch_t *bt, int64_t created_ms, const char *request_id) {
    (void)created_ms;
    (void)request_id;
    bt->raw_gzip = b->codec.kind == PH_CODEC_GZIP;
    if (bt->raw_gzip && posthog__buf_append(&bt->body, gzip_header, sizeof gzip_header)) return -1;
    return ph_builder_stage(b, b->prefix, b->prefix_n);
}

static size_t v0_rec_len(const ph_rec_t *r) { return ph_rec_json_len(r); }

static int v0_add_record(ph_builder_t *b, const ph_rec_t *r) {
    char *end = posthog__event_write(b->stage.data + b->stage.len, r);
    b->stage.len = (size_t)(end - b->stage.data);
    return 0;
}

static int v0_add_text(ph_builder_t *b, const char *json, size_t n) {
    /* a v0 text as it is; a v1 text (it always has "options") converted;
     * converting a v0 text that merely looks so is harmless */
    if (n && json[0] == '{' && !memmem(json, n, "\"options\":{", 11))
        return ph_builder_stage(b, json, n);
    return posthog__event_convert(PH_PROTO_V0, json, n, &b->stage) ? -2 : 0;
}

static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static int v0_attempt_body(ph_batch_t *bt, int64_t now_ms) {
    char tail[64];
    memcpy(tail, "],\"sent_at\":\"", 13);
    posthog__iso8601_ms(tail + 13, now_ms);
    memcpy(tail + 13 + PH_ISO8601_LEN, "\"}", 2);
    size_t tn = 13 + PH_ISO8601_LEN + 2;
    if (!bt->raw_gzip) return posthog__buf_append(&bt->body, tail, tn);
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

static int v0_attempt_headers(const ph_batch_t *bt, const ph_proto_ctx_t *ctx, ph_headers_t *h) {
    (void)bt; /* the api_key travels in the body */
    (void)ctx;
    (void)h;
    return 0;
}

bool posthog__v0_confirmed(long status, const char *body, size_t n) {
    if (status == 204) return n == 0;
    int type = 0;
    ph_json_keys_t keys;
    if (!body || !n || posthog__json_validate(body, n, &type, &keys) != POSTHOG_OK ||
        type != PH_JSON_OBJECT)
        return false;
    ph_json_iter_t it;
    ph_json_member_t m;
    ph_json_iter_init(&it, body + keys.inner_off, keys.inner_len);
    while (posthog__json_next_member(&it, &m))
        if (m.klen == 6 && !memcmp(m.key, "status", 6)) return m.vlen == 1 && m.val[0] == '1';
    return false;
}

static int v0_parse_results(const ph_batch_t *bt, long status, const char *body, size_t n,
                            ph_results_t *out) {
    memset(out, 0, sizeof *out);
    if (!posthog__v0_confirmed(status, body, n)) return -1;
    out->delivered = bt->count;
    return 0;
}

const ph_protocol_t posthog__proto_v0 = {
    .id = PH_PROTO_V0,
    .name = "v0",
    .path = {"/batch/", "/i/v0/ai/batch/"},
    .raw_gzip = true,
    .builder_init = v0_builder_init,
    .open = v0_open,
    .rec_len = v0_rec_len,
    .add_record = v0_add_record,
    .add_text = v0_add_text,
    .admit = NULL,
    .close_text = "",
    .seal_mode = PH_CODEC_SYNC,
    .attempt_body = v0_attempt_body,
    .attempt_headers = v0_attempt_headers,
    .classify = posthog__classify,
    .parse_results = v0_parse_results,
    .confirmation = "the capture service's confirmation {\"status\": 1}",
};
