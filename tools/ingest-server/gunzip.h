/*
 * gunzip: bounded gzip decoding of a whole request body (zlib).
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

#endif
