/*
 * codec: zlib (gzip, deflate, raw deflate for v0) and libzstd behind one
 * streaming interface (see codec.h).
 */
#include "codec.h"

#include <stdlib.h>

#ifdef POSTHOG_HAVE_ZSTD
/* ZSTD_customMem, ZSTD_createCCtx_advanced, the size estimates: exported by
 * libzstd's shared library since 1.3 */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
static const ZSTD_customMem zmem = {posthog__opaque_alloc, posthog__opaque_free, NULL};
#endif
#ifdef POSTHOG_HAVE_BROTLI
#include <brotli/decode.h>
#include <brotli/encode.h>
#endif

bool posthog__codec_available(ph_codec_kind_t kind) {
#ifndef POSTHOG_HAVE_ZSTD
    if (kind == PH_CODEC_ZSTD) return false;
#endif
#ifndef POSTHOG_HAVE_BROTLI
    if (kind == PH_CODEC_BROTLI) return false;
#endif
    return kind <= PH_CODEC_BROTLI;
}

bool posthog__codec_prefers_whole(ph_codec_kind_t kind) { return kind == PH_CODEC_ZSTD; }

static const char *const names[] = {"none", "gzip", "deflate", "zstd", "br"};

int posthog__codec_parse(const char *name, ph_codec_kind_t *out) {
    for (int i = 0; name && i < 5; i++)
        if (!strcmp(name, names[i])) {
            *out = (ph_codec_kind_t)i;
            return 0;
        }
    return -1;
}

const char *posthog__codec_name(ph_codec_kind_t kind) {
    return kind <= PH_CODEC_BROTLI ? names[kind] : "?";
}

const char *posthog__codec_encoding(ph_codec_kind_t kind) {
    return kind == PH_CODEC_NONE ? NULL : names[kind];
}

static int zlib_bits(ph_codec_kind_t kind, bool raw, int wbits) {
    if (kind == PH_CODEC_GZIP) return raw ? -wbits : 16 + wbits;
    return wbits; /* deflate: zlib wrapper */
}

/* zlib's deflate needs (1 << (windowBits + 2)) + (1 << (memLevel + 9))
 * bytes (zconf.h) plus its state (~6 KiB): the largest window (15 down to
 * 9) whose memory fits `mem`, memLevel following it as 15/8 does. */
void posthog__codec_zlib_params(size_t mem, int *wbits, int *mlevel) {
    int w = 15, m = 8;
    if (mem) {
        for (; w > 9; w--) {
            m = PH_MAX(1, PH_MIN(8, w - 7));
            if (((size_t)1 << (w + 2)) + ((size_t)1 << (m + 9)) + PH_CODEC_ZLIB_STATE <= mem) break;
        }
        m = PH_MAX(1, PH_MIN(8, w - 7));
    }
    *wbits = w;
    *mlevel = m;
}

int posthog__codec_init(ph_codec_t *c, ph_codec_kind_t kind, int level, bool raw) {
    memset(c, 0, sizeof *c);
    c->fresh = true;
    c->kind = kind;
    c->level = level;
    c->raw = raw && kind == PH_CODEC_GZIP;
    posthog__buf_init(&c->once, SIZE_MAX / 2);
    /* the compressor's state is made at the first write (see codec_make):
     * an idle client holds none of it */
    return posthog__codec_available(kind) ? 0 : -1;
}

void posthog__codec_limit(ph_codec_t *c, size_t mem) { c->mem = mem; }

#ifdef POSTHOG_HAVE_ZSTD
/* A streaming context's size with the level's parameters, the window (and
 * the tables, never larger than it) at 2^w. */
static size_t zstd_size(int level, unsigned w) {
    ZSTD_compressionParameters q = ZSTD_getCParams(level, 0, 0);
    q.windowLog = w;
    q.hashLog = PH_MIN(q.hashLog, w);
    q.chainLog = PH_MIN(q.chainLog, w);
    q = ZSTD_adjustCParams(q, 0, 0);
    return ZSTD_estimateCStreamSize_usingCParams(q);
}

/* Under a limit: the largest window (at most 2^20) whose context fits. */
static void zstd_limit(ph_codec_t *c, ZSTD_CCtx *z) {
    ZSTD_compressionParameters p = ZSTD_getCParams(c->level, 0, 0);
    unsigned w = PH_MIN(p.windowLog, 20u);
    while (w > ZSTD_WINDOWLOG_MIN && zstd_size(c->level, w) > c->mem) w--;
    ZSTD_CCtx_setParameter(z, ZSTD_c_windowLog, (int)w);
    ZSTD_CCtx_setParameter(z, ZSTD_c_hashLog, (int)PH_MIN(p.hashLog, w));
    ZSTD_CCtx_setParameter(z, ZSTD_c_chainLog, (int)PH_MIN(p.chainLog, w));
}
#endif

size_t posthog__codec_min_mem(ph_codec_kind_t kind, int level) {
    if (kind == PH_CODEC_GZIP || kind == PH_CODEC_DEFLATE)
        return ((size_t)1 << 11) + ((size_t)1 << 10) + PH_CODEC_ZLIB_STATE;
#ifdef POSTHOG_HAVE_ZSTD
    if (kind == PH_CODEC_ZSTD) return zstd_size(level, ZSTD_WINDOWLOG_MIN);
#endif
    if (kind == PH_CODEC_BROTLI) return SIZE_MAX; /* not bounded: see codec.h */
    return 0;
}

#ifdef POSTHOG_HAVE_BROTLI
static BrotliEncoderState *brotli_make(const ph_codec_t *c) {
    BrotliEncoderState *e =
        BrotliEncoderCreateInstance(posthog__opaque_alloc, posthog__opaque_free, NULL);
    if (!e) return NULL;
    BrotliEncoderSetParameter(e, BROTLI_PARAM_QUALITY, (uint32_t)PH_MIN(c->level, 11));
    BrotliEncoderSetParameter(e, BROTLI_PARAM_MODE, BROTLI_MODE_TEXT);
    if (c->mem) {
        /* the window's ring buffer is 2^lgwin; a quarter of the limit */
        uint32_t lg = BROTLI_MIN_WINDOW_BITS;
        while (lg < 22 && ((size_t)2 << lg) <= c->mem / 4) lg++;
        BrotliEncoderSetParameter(e, BROTLI_PARAM_LGWIN, lg);
    }
    return e;
}
#endif

/* Creates the compressor's state (first use, or after codec_free). */
static int codec_make(ph_codec_t *c) {
    if (c->ready || c->kind == PH_CODEC_NONE) return 0;
    if (c->kind == PH_CODEC_GZIP || c->kind == PH_CODEC_DEFLATE) {
        int w, m;
        posthog__codec_zlib_params(c->mem, &w, &m);
        memset(&c->z, 0, sizeof c->z);
        c->z.zalloc = (alloc_func)posthog__zalloc;
        c->z.zfree = (free_func)posthog__zfree;
        if (deflateInit2(&c->z, c->level, Z_DEFLATED, zlib_bits(c->kind, c->raw, w), m,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return -1;
    } else if (c->kind == PH_CODEC_ZSTD) {
#ifdef POSTHOG_HAVE_ZSTD
        ZSTD_CCtx *z = ZSTD_createCCtx_advanced(zmem);
        if (!z) return -1;
        ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, c->level);
        ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 0);
        if (c->mem) zstd_limit(c, z);
        c->zs = z;
#else
        return -1;
#endif
    } else if (c->kind == PH_CODEC_BROTLI) {
#ifdef POSTHOG_HAVE_BROTLI
        if (!(c->br = brotli_make(c))) return -1;
#else
        return -1;
#endif
    }
    c->ready = true;
    return 0;
}

#ifdef POSTHOG_HAVE_BROTLI
/* A brotli encoder cannot be reset: a new stream is a new instance. */
static int brotli_renew(ph_codec_t *c) {
    BrotliEncoderDestroyInstance(c->br);
    c->br = brotli_make(c);
    if (!c->br) {
        c->ready = false;
        return -1;
    }
    return 0;
}

static int brotli_write(ph_codec_t *c, ph_buf_t *out, const char *in, size_t n, int mode) {
    if (!c->br && brotli_renew(c)) return -1;
    BrotliEncoderOperation op = mode == PH_CODEC_END    ? BROTLI_OPERATION_FINISH
                                : mode == PH_CODEC_SYNC ? BROTLI_OPERATION_FLUSH
                                                        : BROTLI_OPERATION_PROCESS;
    size_t avail_in = n;
    const uint8_t *next_in = (const uint8_t *)in;
    for (;;) {
        size_t room = n / 2 + 4096;
        if (posthog__buf_reserve(out, room)) return -1;
        size_t avail_out = room;
        uint8_t *next_out = (uint8_t *)out->data + out->len;
        if (!BrotliEncoderCompressStream(c->br, op, &avail_in, &next_in, &avail_out, &next_out,
                                         NULL))
            return -1;
        out->len += room - avail_out;
        bool more = BrotliEncoderHasMoreOutput(c->br);
        if (op == BROTLI_OPERATION_FINISH ? BrotliEncoderIsFinished(c->br)
                                          : (avail_in == 0 && !more))
            return 0;
    }
}
#endif

void posthog__codec_free(ph_codec_t *c) {
    posthog__buf_free(&c->once);
    if (!c->ready) return;
    if (c->kind == PH_CODEC_GZIP || c->kind == PH_CODEC_DEFLATE) deflateEnd(&c->z);
#ifdef POSTHOG_HAVE_ZSTD
    if (c->kind == PH_CODEC_ZSTD) ZSTD_freeCCtx(c->zs);
#endif
#ifdef POSTHOG_HAVE_BROTLI
    if (c->kind == PH_CODEC_BROTLI) BrotliEncoderDestroyInstance(c->br);
    c->br = NULL;
#endif
    c->zs = NULL;
    c->ready = false;
}

void posthog__codec_release(ph_codec_t *c) {
    posthog__buf_free(&c->once);
    posthog__buf_init(&c->once, SIZE_MAX / 2);
    if (!c->ready) return;
    ph_codec_t keep = *c;
    posthog__codec_free(c);
    c->kind = keep.kind;
    c->level = keep.level;
    c->raw = keep.raw;
    c->mem = keep.mem;
    c->fresh = true;
}

void posthog__codec_reset(ph_codec_t *c) {
    c->fresh = true;
    if (!c->ready) return;
    if (c->kind == PH_CODEC_GZIP || c->kind == PH_CODEC_DEFLATE) deflateReset(&c->z);
#ifdef POSTHOG_HAVE_ZSTD
    if (c->kind == PH_CODEC_ZSTD) ZSTD_CCtx_reset(c->zs, ZSTD_reset_session_only);
#endif
#ifdef POSTHOG_HAVE_BROTLI
    if (c->kind == PH_CODEC_BROTLI) brotli_renew(c);
#endif
}

static int zlib_write(ph_codec_t *c, ph_buf_t *out, const char *in, size_t n, int mode) {
    int flush = mode == PH_CODEC_END ? Z_FINISH : mode == PH_CODEC_SYNC ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    c->z.next_in = (Bytef *)in;
    c->z.avail_in = (uInt)n;
    for (;;) {
        size_t room = n / 2 + 4096;
        if (posthog__buf_reserve(out, room)) return -1;
        c->z.next_out = (Bytef *)out->data + out->len;
        c->z.avail_out = (uInt)room;
        int rc = deflate(&c->z, flush);
        out->len += room - c->z.avail_out;
        if (rc == Z_STREAM_ERROR) return -1;
        if (flush == Z_FINISH ? rc == Z_STREAM_END : (c->z.avail_in == 0 && c->z.avail_out != 0))
            return 0;
    }
}

#ifdef POSTHOG_HAVE_ZSTD
static int zstd_write(ph_codec_t *c, ph_buf_t *out, const char *in, size_t n, int mode) {
    if (mode == PH_CODEC_END && c->fresh) {
        /* the whole body at once: one pass (ZSTD_compress2) into the
         * codec's reused room for the bound, then exactly r bytes to out */
        size_t bound = ZSTD_compressBound(n);
        c->once.len = 0;
        if (posthog__buf_reserve(&c->once, bound)) return -1;
        size_t r = ZSTD_compress2(c->zs, c->once.data, bound, in, n);
        if (ZSTD_isError(r)) return -1;
        if (posthog__buf_reserve_exact(out, r)) return -1;
        memcpy(out->data + out->len, c->once.data, r);
        out->len += r;
        out->data[out->len] = '\0';
        return 0;
    }
    ZSTD_EndDirective op = mode == PH_CODEC_END    ? ZSTD_e_end
                           : mode == PH_CODEC_SYNC ? ZSTD_e_flush
                                                   : ZSTD_e_continue;
    ZSTD_inBuffer ib = {in, n, 0};
    for (;;) {
        size_t room = PH_MAX(n / 2 + 4096, ZSTD_CStreamOutSize() / 4);
        if (posthog__buf_reserve(out, room)) return -1;
        ZSTD_outBuffer ob = {out->data + out->len, room, 0};
        size_t left = ZSTD_compressStream2(c->zs, &ob, &ib, op);
        out->len += ob.pos;
        if (ZSTD_isError(left)) return -1;
        if (op == ZSTD_e_continue ? ib.pos == ib.size : left == 0) return 0;
    }
}
#endif

int posthog__codec_write(ph_codec_t *c, ph_buf_t *out, const char *in, size_t n, int mode) {
    int rc = -1;
    if (codec_make(c)) return -1;
    switch (c->kind) {
    case PH_CODEC_NONE:
        rc = posthog__buf_append(out, in, n);
        break;
    case PH_CODEC_GZIP:
    case PH_CODEC_DEFLATE:
        rc = zlib_write(c, out, in, n, mode);
        break;
    case PH_CODEC_ZSTD:
#ifdef POSTHOG_HAVE_ZSTD
        rc = zstd_write(c, out, in, n, mode);
#endif
        break;
    case PH_CODEC_BROTLI:
#ifdef POSTHOG_HAVE_BROTLI
        rc = brotli_write(c, out, in, n, mode);
#endif
        break;
    }
    c->fresh = false;
    return rc;
}

int posthog__codec_decode(ph_codec_kind_t kind, bool raw, const char *in, size_t n, char *out,
                          size_t out_len) {
    if (kind == PH_CODEC_NONE) {
        if (n < out_len) return -1;
        memcpy(out, in, out_len);
        return 0;
    }
    if (kind == PH_CODEC_ZSTD) {
#ifdef POSTHOG_HAVE_ZSTD
        ZSTD_DCtx *d = ZSTD_createDCtx_advanced(zmem);
        if (!d) return -1;
        ZSTD_inBuffer ib = {in, n, 0};
        ZSTD_outBuffer ob = {out, out_len, 0};
        size_t rc = 1;
        while (ob.pos < out_len && ib.pos < ib.size) {
            rc = ZSTD_decompressStream(d, &ob, &ib);
            if (ZSTD_isError(rc)) break;
        }
        ZSTD_freeDCtx(d);
        return !ZSTD_isError(rc) && ob.pos == out_len ? 0 : -1;
#else
        return -1;
#endif
    }
    if (kind == PH_CODEC_BROTLI) {
#ifdef POSTHOG_HAVE_BROTLI
        BrotliDecoderState *d =
            BrotliDecoderCreateInstance(posthog__opaque_alloc, posthog__opaque_free, NULL);
        if (!d) return -1;
        size_t avail_in = n, avail_out = out_len;
        const uint8_t *next_in = (const uint8_t *)in;
        uint8_t *next_out = (uint8_t *)out;
        BrotliDecoderResult r = BrotliDecoderDecompressStream(d, &avail_in, &next_in, &avail_out,
                                                              &next_out, NULL);
        BrotliDecoderDestroyInstance(d);
        return r == BROTLI_DECODER_RESULT_SUCCESS && avail_out == 0 ? 0 : -1;
#else
        return -1;
#endif
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    z.zalloc = (alloc_func)posthog__zalloc;
    z.zfree = (free_func)posthog__zfree;
    /* 15: decodes a stream made with any window */
    if (inflateInit2(&z, zlib_bits(kind, raw, 15)) != Z_OK) return -1;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)out_len;
    int rc = inflate(&z, Z_SYNC_FLUSH);
    size_t got = out_len - z.avail_out;
    inflateEnd(&z);
    if ((rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) || got != out_len) return -1;
    return 0;
}
