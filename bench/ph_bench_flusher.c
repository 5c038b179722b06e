/*
 * ph-bench-flusher: where the flusher's time goes, per event, using the
 * library's internal modules (src/) on the issue-5 workload's records.
 *
 *   ph-bench-flusher URL N [LEVEL]
 *
 * Prints ONE JSON line with, in ns per event (best of REPS passes):
 *   queue_pop     posthog__queue_peek + _pop (consumer side of the ring,
 *                 incl. zeroing the consumed bytes)
 *   format        posthog__event_write of each record into a flat buffer
 *   builder_raw   posthog__builder_add with gzip off (format + staging)
 *   builder_gzip  posthog__builder_add with gzip at LEVEL (format + staging
 *                 + crc32 + deflate), seal and set_tail, batches of B events
 *   zlib_deflate  zlib alone: deflate(Z_FINISH) of the same uncompressed
 *                 batch bodies at the same level (raw deflate, memLevel 8)
 *   zlib_crc32    crc32 of the same bytes
 *   zstd_lL       the zstd floor: libzstd alone on the same uncompressed
 *                 batch bodies, level L = 1 and 3, one ZSTD_compressCCtx
 *                 per batch (zstd_lL_ns) and streamed the way the builder
 *                 feeds its compressor: ZSTD_compressStream2 on 64 KiB
 *                 chunks (the builder's stage size) with ZSTD_e_continue,
 *                 the rest with ZSTD_e_end at seal (zstd_lL_stream_ns), for
 *                 batches of 1000 and of 100 events (_b100); one reused
 *                 context, no worker threads. The input is the existing
 *                 builder's v0 body (api_key prefix, $lib in properties):
 *                 within a few percent of the v1 body's size and content.
 *   http_bB       POST of the pre-built gzip bodies with libcurl over one
 *                 keep-alive connection to URL/batch/ (wall time, includes
 *                 the server's gunzip + validation), and the client CPU of
 *                 that loop (http_cpu_bB)
 * for B = 1000 (max_batch_size default) and B = 100 (flush_at default).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

#include "batch.h"
#include "event.h"
#include "props.h"
#include "queue.h"
#include "util.h"
#include "bench_clock.h"

#define REPS 3
#define API_KEY "phc_bench_key"

static _Noreturn void fail(const char *what) {
    fprintf(stderr, "ph-bench-flusher: %s\n", what);
    exit(1);
}

/* ------------------------------------------------------------ records */

typedef struct {
    char *mem;
    size_t *off; /* record i at mem + off[i] */
    size_t total;
    long n;
} recs_t;

static const char LIB_MEMBERS[] =
    ",\"$lib\":\"posthog-c\",\"$lib_version\":\"" POSTHOG_VERSION_STRING "\"";

/* The records capture would queue for the workload (same props text). */
static void make_records(recs_t *rs, long n) {
    posthog_props_t *p = posthog_props_new(), *tags = posthog_props_new_array();
    rs->n = n;
    rs->off = malloc((size_t)n * sizeof *rs->off);
    size_t cap = (size_t)n * 320, used = 0;
    rs->mem = malloc(cap);
    if (!rs->off || !rs->mem || !p || !tags) fail("out of memory");
    int64_t now = posthog__now_ms();
    for (long i = 0; i < n; i++) {
        posthog_props_clear(p);
        posthog_props_clear(tags);
        posthog_props_set_string(p, "plan", "pro");
        posthog_props_set_int(p, "count", i);
        posthog_props_set_double(p, "ratio", 0.5);
        posthog_props_set_bool(p, "flag", 1);
        posthog_props_set_string(p, "path", "/checkout/step/2");
        posthog_props_set_string(tags, NULL, "a");
        posthog_props_set_string(tags, NULL, "b");
        posthog_props_set_props(p, "tags", tags);
        size_t pin;
        const char *inner = posthog__props_inner(p, &pin);
        char did[32];
        int dn = snprintf(did, sizeof did, "user-%ld", i % 1000);
        const char *name = "bench_event";
        size_t nn = strlen(name), ln = sizeof LIB_MEMBERS - 1;
        size_t sz = sizeof(ph_rec_t) + nn + (size_t)dn + pin + ln;
        sz = (sz + 7) & ~(size_t)7;
        if (used + sz > cap) fail("record arena too small");
        ph_rec_t *r = (ph_rec_t *)(rs->mem + used);
        posthog__uuid_v7(r->uuid, now);
        r->ts_ms = now;
        r->flags = PH_REC_LIB | PH_REC_LIBV;
        r->name_len = (uint32_t)nn;
        r->did_len = (uint32_t)dn;
        r->props_len = (uint32_t)(pin + ln);
        r->extra_len = 0;
        char *o = (char *)(r + 1);
        memcpy(o, name, nn);
        memcpy(o + nn, did, (size_t)dn);
        memcpy(o + nn + dn, inner, pin);
        memcpy(o + nn + dn + pin, LIB_MEMBERS, ln);
        rs->off[i] = used;
        used += sz;
    }
    rs->total = used;
    posthog_props_free(p);
    posthog_props_free(tags);
}

static const ph_rec_t *rec_at(const recs_t *rs, long i) {
    return (const ph_rec_t *)(rs->mem + rs->off[i]);
}

/* ------------------------------------------------------------ stages */

static volatile size_t sink;

static double time_queue(const recs_t *rs) {
    ph_queue_t q;
    size_t budget = rs->total + (size_t)rs->n * 16 + (1u << 20);
    if (posthog__queue_init(&q, budget, (uint32_t)rs->n + 1)) fail("queue_init");
    double best = 1e30;
    for (int rep = 0; rep < REPS; rep++) {
        for (long i = 0; i < rs->n; i++) {
            const ph_rec_t *r = rec_at(rs, i);
            size_t len = sizeof *r + r->name_len + r->did_len + r->props_len + r->extra_len;
            ph_qslot_t slot;
            uint64_t cnt;
            void *dst = posthog__queue_reserve(&q, len, &slot, &cnt);
            if (!dst) fail("queue full");
            memcpy(dst, r, len);
            posthog__queue_commit(&q, &slot, 0);
        }
        double t0 = now_s();
        size_t acc = 0;
        for (long i = 0; i < rs->n; i++) {
            size_t len;
            const ph_rec_t *r = posthog__queue_peek(&q, &len);
            if (!r) fail("queue empty early");
            acc += r->props_len;
            posthog__queue_pop(&q);
        }
        double t = now_s() - t0;
        sink = acc;
        if (t < best) best = t;
    }
    posthog__queue_destroy(&q);
    return best;
}

static double time_format(const recs_t *rs, int B, size_t *raw_bytes) {
    size_t cap = (size_t)B * 1024 + 4096;
    char *buf = malloc(cap);
    if (!buf) fail("out of memory");
    double best = 1e30;
    size_t bytes = 0;
    for (int rep = 0; rep < REPS; rep++) {
        bytes = 0;
        size_t pos = 0;
        double t0 = now_s();
        for (long i = 0; i < rs->n; i++) {
            if (i % B == 0) {
                bytes += pos;
                pos = 0;
            } else {
                buf[pos++] = ',';
            }
            char *end = posthog__event_write(buf + pos, rec_at(rs, i));
            pos = (size_t)(end - buf);
        }
        bytes += pos;
        double t = now_s() - t0;
        sink = (size_t)buf[0];
        if (t < best) best = t;
    }
    free(buf);
    *raw_bytes = bytes;
    return best;
}

typedef struct {
    ph_batch_t **b;
    long count;
} batches_t;

static void batches_free(batches_t *bs) {
    for (long i = 0; i < bs->count; i++) posthog__batch_free(bs->b[i]);
    free(bs->b);
    bs->b = NULL;
    bs->count = 0;
}

/* Builds every batch of B events as the flusher does; keeps the last pass. */
static double time_builder(const recs_t *rs, int B, bool gzip, int level, batches_t *keep) {
    double best = 1e30;
    long nb = (rs->n + B - 1) / B;
    for (int rep = 0; rep < REPS; rep++) {
        ph_builder_t b;
        if (posthog__builder_init(&b, PH_PROTO_V0, gzip ? PH_CODEC_GZIP : PH_CODEC_NONE, level,
                                  API_KEY, false, false, (uint64_t)5 << 20))
            fail("builder_init");
        batches_t bs = {calloc((size_t)nb, sizeof(ph_batch_t *)), 0};
        if (!bs.b) fail("out of memory");
        int64_t now = posthog__now_ms();
        double t0 = now_s();
        for (long i = 0; i < rs->n; i++) {
            const ph_rec_t *r = rec_at(rs, i);
            size_t jl = ph_rec_json_len(r);
            if (!posthog__builder_fits(&b, jl) || ph_builder_count(&b) >= (uint32_t)B) {
                ph_batch_t *bt = posthog__builder_seal(&b);
                if (!bt || posthog__batch_set_tail(bt, now)) fail("seal");
                bs.b[bs.count++] = bt;
            }
            if (posthog__builder_add(&b, r, now, posthog__mono_ms())) fail("builder_add");
        }
        ph_batch_t *bt = posthog__builder_seal(&b);
        if (!bt || posthog__batch_set_tail(bt, now)) fail("seal");
        bs.b[bs.count++] = bt;
        double t = now_s() - t0;
        posthog__builder_free(&b);
        if (t < best) best = t;
        if (keep && rep == REPS - 1) *keep = bs;
        else batches_free(&bs);
    }
    return best;
}

typedef struct {
    char **raw;
    size_t *len;
    long count;
    size_t total;
} raws_t;

/* The uncompressed request bodies of the batches (prefix + tail). */
static void batches_raw(const batches_t *bs, raws_t *out) {
    out->count = bs->count;
    out->raw = calloc((size_t)bs->count, sizeof *out->raw);
    out->len = calloc((size_t)bs->count, sizeof *out->len);
    out->total = 0;
    if (!out->raw || !out->len) fail("out of memory");
    for (long i = 0; i < bs->count; i++) {
        size_t n;
        char *p = posthog__batch_inflate(bs->b[i], &n);
        if (!p) fail("inflate");
        /* the tail (~40 bytes) is not in the prefix; close the JSON the same way */
        char *q = realloc(p, n + 64);
        if (!q) fail("out of memory");
        memcpy(q + n, "],\"sent_at\":\"2026-01-01T00:00:00.000Z\"}", 40);
        out->raw[i] = q;
        out->len[i] = n + 39;
        out->total += n + 39;
    }
}

static double time_zlib(const raws_t *rs, int level, size_t *gz_bytes) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        fail("deflateInit2");
    size_t maxlen = 0;
    for (long i = 0; i < rs->count; i++)
        if (rs->len[i] > maxlen) maxlen = rs->len[i];
    size_t cap = deflateBound(&z, (uLong)maxlen) + 64;
    unsigned char *out = malloc(cap);
    if (!out) fail("out of memory");
    double best = 1e30;
    for (int rep = 0; rep < REPS; rep++) {
        size_t bytes = 0;
        double t0 = now_s();
        for (long i = 0; i < rs->count; i++) {
            deflateReset(&z);
            z.next_in = (Bytef *)rs->raw[i];
            z.avail_in = (uInt)rs->len[i];
            z.next_out = out;
            z.avail_out = (uInt)cap;
            if (deflate(&z, Z_FINISH) != Z_STREAM_END) fail("deflate");
            bytes += cap - z.avail_out + 18; /* + gzip header and trailer */
        }
        double t = now_s() - t0;
        if (t < best) best = t;
        *gz_bytes = bytes;
    }
    deflateEnd(&z);
    free(out);
    return best;
}

static double time_crc(const raws_t *rs) {
    double best = 1e30;
    for (int rep = 0; rep < REPS; rep++) {
        uLong acc = 0;
        double t0 = now_s();
        for (long i = 0; i < rs->count; i++)
            acc ^= crc32(0, (const Bytef *)rs->raw[i], (uInt)rs->len[i]);
        double t = now_s() - t0;
        sink = acc;
        if (t < best) best = t;
    }
    return best;
}

/* The builder's stage size (src/batch.c STAGE_FLUSH): it hands its
 * compressor the text in chunks of this size, the rest at seal. */
#define CHUNK (64 * 1024)

/* libzstd alone on the same bodies: one-shot per batch, or streamed in CHUNK
 * pieces. Returns the best time; *bytes = the frames' total size. */
static double time_zstd(const raws_t *rs, int level, bool streamed, size_t *bytes) {
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    if (!cc) fail("ZSTD_createCCtx");
    size_t maxlen = 0;
    for (long i = 0; i < rs->count; i++)
        if (rs->len[i] > maxlen) maxlen = rs->len[i];
    size_t cap = ZSTD_compressBound(maxlen) + 64;
    unsigned char *out = malloc(cap);
    if (!out) fail("out of memory");
    if (ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level)))
        fail("ZSTD_c_compressionLevel");
    double best = 1e30;
    for (int rep = 0; rep < REPS; rep++) {
        size_t total = 0;
        double t0 = now_s();
        for (long i = 0; i < rs->count; i++) {
            if (!streamed) {
                size_t r = ZSTD_compressCCtx(cc, out, cap, rs->raw[i], rs->len[i], level);
                if (ZSTD_isError(r)) fail(ZSTD_getErrorName(r));
                total += r;
                continue;
            }
            ZSTD_CCtx_reset(cc, ZSTD_reset_session_only);
            ZSTD_outBuffer ob = {out, cap, 0};
            size_t off = 0, len = rs->len[i];
            for (;;) {
                size_t take = len - off > CHUNK ? CHUNK : len - off;
                ZSTD_EndDirective end = off + take == len ? ZSTD_e_end : ZSTD_e_continue;
                ZSTD_inBuffer ib = {rs->raw[i] + off, take, 0};
                size_t r;
                do {
                    r = ZSTD_compressStream2(cc, &ob, &ib, end);
                    if (ZSTD_isError(r)) fail(ZSTD_getErrorName(r));
                } while (end == ZSTD_e_end ? r != 0 : ib.pos < ib.size);
                off += take;
                if (end == ZSTD_e_end) break;
            }
            total += ob.pos;
        }
        double t = now_s() - t0;
        if (t < best) best = t;
        *bytes = total;
    }
    ZSTD_freeCCtx(cc);
    free(out);
    return best;
}

static void raws_free(raws_t *r) {
    for (long i = 0; i < r->count; i++) free(r->raw[i]);
    free(r->raw);
    free(r->len);
}

static size_t on_body(char *p, size_t s, size_t n, void *ud) {
    (void)p;
    (void)ud;
    return s * n;
}

/* Wall time of POSTing every body once, over one keep-alive connection. */
static double time_http(const char *url, const batches_t *bs, double *cpu, long *bad) {
    CURL *e = curl_easy_init();
    if (!e) fail("curl_easy_init");
    char u[512];
    snprintf(u, sizeof u, "%s/batch/", url);
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Content-Encoding: gzip");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, u);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "posthog-c/" POSTHOG_VERSION_STRING);
    *bad = 0;
    double c0 = thread_cpu_s(), t0 = now_s();
    for (long i = 0; i < bs->count; i++) {
        ph_batch_t *b = bs->b[i];
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, b->body.data);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->body.len);
        long status = 0;
        if (curl_easy_perform(e) != CURLE_OK) {
            (*bad)++;
            continue;
        }
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200) (*bad)++;
    }
    double t = now_s() - t0;
    *cpu = thread_cpu_s() - c0;
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    return t;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ph-bench-flusher URL N [LEVEL]\n");
        return 2;
    }
    const char *url = argv[1];
    long n = atol(argv[2]);
    int level = argc > 3 ? atoi(argv[3]) : 1;
    if (n < 1000 || level < 1 || level > 9) fail("N >= 1000 and 1 <= LEVEL <= 9");
    curl_global_init(CURL_GLOBAL_DEFAULT);

    recs_t rs;
    make_records(&rs, n);
    double dn = (double)n;
    double tq = time_queue(&rs);
    size_t raw_bytes = 0;
    double tf = time_format(&rs, 1000, &raw_bytes);
    double tbr = time_builder(&rs, 1000, false, level, NULL);
    batches_t b1000 = {0}, b100 = {0};
    double tbg = time_builder(&rs, 1000, true, level, &b1000);
    double tbg100 = time_builder(&rs, 100, true, level, &b100);
    size_t wire1000 = 0, wire100 = 0;
    for (long i = 0; i < b1000.count; i++) wire1000 += b1000.b[i]->body.len;
    for (long i = 0; i < b100.count; i++) wire100 += b100.b[i]->body.len;
    raws_t raw;
    batches_raw(&b1000, &raw);
    size_t zbytes = 0;
    double tz = time_zlib(&raw, level, &zbytes);
    double tc = time_crc(&raw);
    /* the zstd floor, same bodies (and the batches of 100 too) */
    raws_t raw100;
    batches_raw(&b100, &raw100);
    static const int zlevels[2] = {1, 3};
    double tzs[2], tzs_s[2], tzs_s100[2];
    size_t zsb[2], zsb_s[2], zsb_s100[2];
    for (int k = 0; k < 2; k++) {
        tzs[k] = time_zstd(&raw, zlevels[k], false, &zsb[k]);
        tzs_s[k] = time_zstd(&raw, zlevels[k], true, &zsb_s[k]);
        tzs_s100[k] = time_zstd(&raw100, zlevels[k], true, &zsb_s100[k]);
    }
    double cpu1000, cpu100;
    long bad1000, bad100;
    double th1000 = time_http(url, &b1000, &cpu1000, &bad1000);
    double th100 = time_http(url, &b100, &cpu100, &bad100);

    printf("{\"n\":%ld,\"level\":%d,\"record_bytes\":%.1f,\"raw_bytes\":%.1f,"
           "\"gzip_bytes_b1000\":%.1f,\"gzip_bytes_b100\":%.1f,\"zlib_bytes\":%.1f,"
           "\"queue_pop_ns\":%.1f,\"format_ns\":%.1f,\"builder_raw_ns\":%.1f,"
           "\"builder_gzip_ns\":%.1f,\"builder_gzip_b100_ns\":%.1f,\"zlib_deflate_ns\":%.1f,"
           "\"zlib_crc32_ns\":%.1f,\"http_b1000_ns\":%.1f,\"http_cpu_b1000_ns\":%.1f,"
           "\"http_b100_ns\":%.1f,\"http_cpu_b100_ns\":%.1f,\"http_errors\":%ld,"
           "\"requests_b1000\":%ld,\"requests_b100\":%ld,\"raw_total_b1000\":%zu,"
           "\"zstd_version\":\"%s\",\"zstd_chunk\":%d",
           n, level, (double)rs.total / dn, (double)raw_bytes / dn, (double)wire1000 / dn,
           (double)wire100 / dn, (double)zbytes / dn, tq * 1e9 / dn, tf * 1e9 / dn,
           tbr * 1e9 / dn, tbg * 1e9 / dn, tbg100 * 1e9 / dn, tz * 1e9 / dn, tc * 1e9 / dn,
           th1000 * 1e9 / dn, cpu1000 * 1e9 / dn, th100 * 1e9 / dn, cpu100 * 1e9 / dn,
           bad1000 + bad100, b1000.count, b100.count, raw.total, ZSTD_versionString(), CHUNK);
    for (int k = 0; k < 2; k++)
        printf(",\"zstd_l%d_ns\":%.1f,\"zstd_l%d_bytes\":%.1f,\"zstd_l%d_stream_ns\":%.1f,"
               "\"zstd_l%d_stream_bytes\":%.1f,\"zstd_l%d_stream_b100_ns\":%.1f,"
               "\"zstd_l%d_stream_b100_bytes\":%.1f",
               zlevels[k], tzs[k] * 1e9 / dn, zlevels[k], (double)zsb[k] / dn, zlevels[k],
               tzs_s[k] * 1e9 / dn, zlevels[k], (double)zsb_s[k] / dn, zlevels[k],
               tzs_s100[k] * 1e9 / dn, zlevels[k], (double)zsb_s100[k] / dn);
    printf("}\n");
    batches_free(&b1000);
    batches_free(&b100);
    raws_free(&raw);
    raws_free(&raw100);
    free(rs.mem);
    free(rs.off);
    curl_global_cleanup();
    return 0;
}
