/*
 * gunzip: bounded gzip / zlib ("deflate") / zstd decoding of a whole request
 * body. gzip and zlib use zlib (gunzip.c), zstd uses libzstd (unzstd.c),
 * brotli libbrotlidec (unbrotli.c).
 */
#ifndef PH_GUNZIP_H
#define PH_GUNZIP_H

#include <stddef.h>

enum { PH_GUNZIP_OK = 0, PH_GUNZIP_TOO_LARGE = 1, PH_GUNZIP_CORRUPT = -1, PH_GUNZIP_NOMEM = -2 };

/* Decodes in[0..inlen) (one or more gzip members). On PH_GUNZIP_OK *out is a
 * malloc()ed, NUL-terminated buffer of *outlen bytes (caller frees); on any
 * other result *out is NULL. Output beyond max_out bytes gives
 * PH_GUNZIP_TOO_LARGE. in borrows. */
int ph_gunzip(const char *in, size_t inlen, size_t max_out, char **out, size_t *outlen);
/* The same for one zlib-wrapped deflate stream (RFC 1950, HTTP "deflate");
 * bytes after the stream's end make it corrupt. */
int ph_zinflate(const char *in, size_t inlen, size_t max_out, char **out, size_t *outlen);
/* The same for zstd (one or more frames). Defined in unzstd.c. */
int ph_unzstd(const char *in, size_t inlen, size_t max_out, char **out, size_t *outlen);
/* The same for brotli ("br"). Defined in unbrotli.c. */
int ph_unbrotli(const char *in, size_t inlen, size_t max_out, char **out, size_t *outlen);

/* Doubles a decoder's output buffer, never past limit + 1 bytes (one more
 * than allowed tells "too large" apart): PH_GUNZIP_OK, _TOO_LARGE or _NOMEM. */
int ph_out_grow(char **buf, size_t *cap, size_t limit);

#endif
