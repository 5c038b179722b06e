/*
 * codec: the request-body compressors behind one interface (none, gzip,
 * deflate, zstd, br), streaming so a batch is compressed as its events are
 * drained, never twice.
 *
 * Modes of posthog__codec_write:
 *  PH_CODEC_MORE  buffer freely (the output may lag the input)
 *  PH_CODEC_SYNC  everything written so far is decodable, the stream stays
 *                 open and ends on a byte boundary (v0 appends its per-attempt
 *                 tail as a stored block after this)
 *  PH_CODEC_END   finish the stream (trailer included); reset before reuse
 *
 * `raw` gzip is the v0 form: a raw deflate stream whose gzip header and
 * trailer the batch writes itself (see batch.h). Only the flusher thread
 * uses a codec; decoding is for the rare paths (split, spool, drop reports).
 */
#ifndef POSTHOG_CODEC_H
#define POSTHOG_CODEC_H

#include <zlib.h>

#include "common.h"

typedef enum {
    PH_CODEC_NONE = 0,
    PH_CODEC_GZIP = 1,
    PH_CODEC_DEFLATE = 2, /* zlib-wrapped (RFC 1950), as HTTP's "deflate" */
    PH_CODEC_ZSTD = 3,
    PH_CODEC_BROTLI = 4   /* "br" */
} ph_codec_kind_t;

enum { PH_CODEC_MORE = 0, PH_CODEC_SYNC = 1, PH_CODEC_END = 2 };

typedef struct {
    ph_codec_kind_t kind;
    int level;
    bool raw;
    bool ready;
    z_stream z;
    void *zs; /* ZSTD_CCtx */
    bool fresh;       /* nothing written to the current stream yet */
    ph_buf_t once;    /* zstd one-shot output, reused by every batch: the body then gets
                       * exactly the compressed size (no bound-sized buffer per batch, which
                       * glibc would mmap, shrink and unmap each time) */
    void *br; /* BrotliEncoderState */
    size_t mem; /* 0, or the bytes its state and buffers may take (posthog__codec_limit) */
} ph_codec_t;

/* deflate's own state beside its window and hash tables (zlib 1.2: 5.8 KiB
 * on 64-bit), rounded up */
#define PH_CODEC_ZLIB_STATE 6144

/* Whether the codec is faster given a whole body at once (PH_CODEC_END on
 * everything) than fed in chunks: zstd then compresses in one pass with
 * tables sized to the input, with no internal copy of it. */
bool posthog__codec_prefers_whole(ph_codec_kind_t kind);

/* Whether this build has the codec (zstd is optional at build time). */
bool posthog__codec_available(ph_codec_kind_t kind);
/* "none", "gzip", "deflate", "zstd", "br" -> kind; -1 when unknown. */
int posthog__codec_parse(const char *name, ph_codec_kind_t *out);
const char *posthog__codec_name(ph_codec_kind_t kind);
/* The Content-Encoding value, NULL for none. */
const char *posthog__codec_encoding(ph_codec_kind_t kind);

/* Sets the codec up; its compressor state is created lazily, at the first
 * write, so an idle client holds none. -1 when the codec is not built in. */
int posthog__codec_init(ph_codec_t *c, ph_codec_kind_t kind, int level, bool raw);
/* Before the first write: the bytes the compressor may take (0: no limit).
 * zlib's windowBits/memLevel, zstd's window and tables and brotli's window
 * are chosen to fit (posthog__codec_zlib_params). Output buffers are the
 * caller's (bounded by the batch size). */
void posthog__codec_limit(ph_codec_t *c, size_t mem);
/* The least limit the codec can keep to (its smallest window and tables);
 * SIZE_MAX for br, whose encoder's memory is not bounded here. */
size_t posthog__codec_min_mem(ph_codec_kind_t kind, int level);
/* zlib's windowBits and memLevel for a limit (0: 15 and 8). */
void posthog__codec_zlib_params(size_t mem, int *wbits, int *mlevel);
void posthog__codec_free(ph_codec_t *c);
/* Frees the compressor's state and buffers but keeps the settings: the next
 * write creates them again. */
void posthog__codec_release(ph_codec_t *c);
/* Starts a new stream (after END, or to abandon one). */
void posthog__codec_reset(ph_codec_t *c);
/* Compresses n bytes (n may be 0) and appends the output to out. -1 on
 * allocation failure or when out would pass its maximum. */
int posthog__codec_write(ph_codec_t *c, ph_buf_t *out, const char *in, size_t n, int mode);
/* Decodes a whole body into exactly `out_len` bytes at out. 0 ok. */
int posthog__codec_decode(ph_codec_kind_t kind, bool raw, const char *in, size_t n, char *out,
                          size_t out_len);

#endif
