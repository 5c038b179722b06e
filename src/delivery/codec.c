/*
 * codec: zlib (gzip, deflate, raw deflate for v0) and libzstd behind one
 * streaming interface (see codec.h).
 */
#include "codec.h"

#include <stdlib.h>

#ifdef POSTHOG_HAVE_ZSTD
#include <zstd.h>
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

static int zlib_bits(ph_codec_kind_t kind, bool raw) {
    if (kind == PH_CODEC_GZIP) return raw ? -15 : 16 + 15;
    return 15; /* deflate: zlib wrapper */
}

int posthog__codec_init(ph_codec_t *c, ph_codec_kind_t kind, int level, bool raw) {
    memset(c, 0, sizeof *c);
    c->fresh = true;
    c->kind = kind;
    c->level = level;
    c->raw = raw && kind == PH_CODEC_GZIP;
    posthog__buf_init(&c->once, SIZE_MAX / 2);
    if (kind == PH_CODEC_GZIP || kind == PH_CODEC_DEFLATE) {
        if (deflateInit2(&c->z, level, Z_DEFLATED, zlib_bits(kind, c->raw), 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return -1;
        c->ready = true;
    } else if (kind == PH_CODEC_ZSTD) {
#ifdef POSTHOG_HAVE_ZSTD
        ZSTD_CCtx *z = ZSTD_createCCtx();
        if (!z) return -1;
        ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level);
        ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 0);
        c->zs = z;
        c->ready = true;
#else
        return -1;
#endif
    } else if (kind == PH_CODEC_BROTLI) {
#ifdef POSTHOG_HAVE_BROTLI
        BrotliEncoderState *e = BrotliEncoderCreateInstance(NULL, NULL, NULL);
        if (!e) return -1;
        BrotliEncoderSetParameter(e, BROTLI_PARAM_QUALITY, (uint32_t)PH_MIN(level, 11));
        BrotliEncoderSetParameter(e, BROTLI_PARAM_MODE, BROTLI_MODE_TEXT);
        c->br = e;
        c->ready = true;
#else
        return -1;
#endif
    }
    return 0;
}

#ifdef POSTHOG_HAVE_BROTLI
/* A brotli encoder cannot be reset: a new stream is a new instance. */
static int brotli_renew(ph_codec_t *c) {
    BrotliEncoderDestroyInstance(c->br);
    c->br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
    if (!c->br) {
        c->ready = false;
        return -1;
    }
    BrotliEncoderSetParameter(c->br, BROTLI_PARAM_QUALITY, (uint32_t)PH_MIN(c->level, 11));
    BrotliEncoderSetParameter(c->br, BROTLI_PARAM_MODE, BROTLI_MODE_TEXT);
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
    c->ready = false;
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
        ZSTD_DCtx *d = ZSTD_createDCtx();
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
        size_t got = out_len;
        return BrotliDecoderDecompress(n, (const uint8_t *)in, &got, (uint8_t *)out) ==
                           BROTLI_DECODER_RESULT_SUCCESS &&
                       got == out_len
                   ? 0
                   : -1;
#else
        return -1;
#endif
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, zlib_bits(kind, raw)) != Z_OK) return -1;
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
