/*
 * gunzip: inflates gzip bodies into one buffer sized from the gzip trailer
 * (ISIZE) when plausible, growing geometrically but never past max_out + 1.
 */
#include "gunzip.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int ph_gunzip(const char *in, size_t inlen, size_t max_out, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (inlen < 18 || (unsigned char)in[0] != 0x1f || (unsigned char)in[1] != 0x8b)
        return PH_GUNZIP_CORRUPT;
    const unsigned char *t = (const unsigned char *)in + inlen - 4;
    size_t hint = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
    size_t limit = max_out + 1; /* one byte more tells "too large" apart */
    size_t cap = hint + 1;
    if (cap < 4096)
        cap = 4096;
    if (cap > limit + 1)
        cap = limit + 1;
    char *buf = malloc(cap);
    if (!buf)
        return PH_GUNZIP_NOMEM;

    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        free(buf);
        return PH_GUNZIP_NOMEM;
    }
    size_t used = 0, consumed = 0;
    int rc = PH_GUNZIP_OK;
    for (;;) {
        if (used + 1 >= cap) { /* keep one byte for the NUL */
            if (cap >= limit + 1) {
                rc = PH_GUNZIP_TOO_LARGE;
                break;
            }
            size_t ncap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                rc = PH_GUNZIP_NOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t in_left = inlen - consumed, out_left = cap - 1 - used;
        z.next_in = (unsigned char *)in + consumed;
        z.avail_in = in_left > UINT_MAX ? UINT_MAX : (unsigned)in_left;
        z.next_out = (unsigned char *)buf + used;
        z.avail_out = out_left > UINT_MAX ? UINT_MAX : (unsigned)out_left;
        unsigned ai = z.avail_in, ao = z.avail_out;
        int zr = inflate(&z, Z_NO_FLUSH);
        consumed += ai - z.avail_in;
        used += ao - z.avail_out;
        if (used > max_out) {
            rc = PH_GUNZIP_TOO_LARGE;
            break;
        }
        if (zr == Z_STREAM_END) {
            if (consumed == inlen)
                break;
            /* Another member follows (concatenated gzip). */
            if (inflateReset(&z) != Z_OK) {
                rc = PH_GUNZIP_CORRUPT;
                break;
            }
            continue;
        }
        if (zr == Z_BUF_ERROR && z.avail_out != 0) { /* input ended mid-stream */
            rc = PH_GUNZIP_CORRUPT;
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = zr == Z_MEM_ERROR ? PH_GUNZIP_NOMEM : PH_GUNZIP_CORRUPT;
            break;
        }
    }
    inflateEnd(&z);
    if (rc != PH_GUNZIP_OK) {
        free(buf);
        return rc;
    }
    buf[used] = '\0';
    *out = buf;
    *outlen = used;
    return PH_GUNZIP_OK;
}
