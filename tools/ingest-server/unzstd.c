/*
 * unzstd: bounded zstd decoding of a whole request body (libzstd streaming
 * API, so frames without a content size and concatenated frames work). The
 * buffer is sized from the first frame's content size when it is declared,
 * growing geometrically but never past max_out + 1.
 */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "gunzip.h"

int ph_unzstd(const char *in, size_t inlen, size_t max_out, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (inlen < 4)
        return PH_GUNZIP_CORRUPT;
    unsigned long long fcs = ZSTD_getFrameContentSize(in, inlen);
    if (fcs == ZSTD_CONTENTSIZE_ERROR)
        return PH_GUNZIP_CORRUPT;
    size_t limit = max_out + 1; /* one byte more tells "too large" apart */
    size_t hint = fcs == ZSTD_CONTENTSIZE_UNKNOWN || fcs > limit ? inlen * 4 : (size_t)fcs;
    size_t cap = hint + 1;
    if (cap < 4096)
        cap = 4096;
    if (cap > limit + 1)
        cap = limit + 1;
    char *buf = malloc(cap);
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    if (!buf || !dc) {
        free(buf);
        ZSTD_freeDCtx(dc);
        return PH_GUNZIP_NOMEM;
    }
    ZSTD_inBuffer ib = {in, inlen, 0};
    size_t used = 0;
    int rc = PH_GUNZIP_OK;
    for (;;) {
        if (used + 1 >= cap && (rc = ph_out_grow(&buf, &cap, limit)) != PH_GUNZIP_OK)
            break;
        ZSTD_outBuffer ob = {buf + used, cap - 1 - used, 0};
        size_t r = ZSTD_decompressStream(dc, &ob, &ib);
        used += ob.pos;
        if (ZSTD_isError(r)) {
            rc = PH_GUNZIP_CORRUPT; /* allocation failures included: rare, and 400 is safe */
            break;
        }
        if (used > max_out) {
            rc = PH_GUNZIP_TOO_LARGE;
            break;
        }
        if (ib.pos == ib.size) {
            if (r == 0)
                break; /* the last frame is complete */
            if (ob.pos < ob.size) { /* input ended mid-frame */
                rc = PH_GUNZIP_CORRUPT;
                break;
            }
        }
    }
    ZSTD_freeDCtx(dc);
    if (rc != PH_GUNZIP_OK) {
        free(buf);
        return rc;
    }
    buf[used] = '\0';
    *out = buf;
    *outlen = used;
    return PH_GUNZIP_OK;
}
